"""Calibration: the fit recovers known efficiency factors from synthetic measurements, and the
file it writes is the format --calibration reads."""

import json

import numpy as np
import pytest

from moecap_sim.perf.efficiency import Calibration, load_calibration
from moecap_sim.validation.calibrate import calibrate, fit_efficiency, main_device
from moecap_sim.validation.runner import assign_split, predict_rows

SYSTEM = "xeon6980p-2s"  # a catalog CPU-only system: the fit does not need the machine itself
TRUE = {"bw": 0.55, "flop": 0.30, "attention": 0.12, "kernel_launch_us": 9.0}


def _rows(model="olmoe-1b-7b", layers=2, seed=0, contexts=(256, 2048, 8192), prefill=True):
    rng = np.random.default_rng(seed)
    rows = []
    for ctx in contexts:
        for b in (1, 4, 16, 64, 256):
            d = min(64, int(8 + 56 * (1 - np.exp(-b / 12))))
            rows.append(dict(model=model, layers=layers, phase="decode", seqs=b, new_tokens=1, context=ctx,
                             distinct_per_layer=";".join([str(d)] * layers), kernels_per_layer=60,
                             kernels_per_expert=9, routing="trace", hardware=SYSTEM))
    for t in (32, 256, 1024, 4096, 16384) if prefill else ():
        rows.append(dict(model=model, layers=layers, phase="prefill", seqs=1, new_tokens=t, context=0,
                         distinct_per_layer=";".join(["64"] * layers), kernels_per_layer=60, kernels_per_expert=9,
                         routing="trace", hardware=SYSTEM))
    truth = Calibration(by_key={main_device(SYSTEM).name: TRUE}, path="truth")
    for r, p in zip(rows, predict_rows(rows, SYSTEM, truth)):
        r["measured_s"] = p["predicted_s"] * float(np.exp(rng.normal(0, 0.005)))  # 0.5% noise
    return rows


def test_fit_recovers_known_factors():
    rows = _rows()
    fit = fit_efficiency(rows, SYSTEM)
    assert fit["converged"]
    for k, v in TRUE.items():
        assert fit["params"][k] == pytest.approx(v, rel=0.08), k
    assert fit["rms_log_error_after"] < 0.01 < fit["rms_log_error_before"]


def test_unidentifiable_factors_stay_default():
    """Decode at context 0: nothing constrains attention (not fitted).  Weight bytes and operator
    counts both scale with the distinct experts, so bw and kernel_launch_us are nearly collinear
    here: the fit must still reproduce the times, with the prior deciding the split."""
    rows = [r for r in _rows(contexts=(0,), prefill=False) if r["seqs"] <= 16]
    fit = fit_efficiency(rows, SYSTEM)
    assert "attention" not in fit["params"]
    assert fit["rms_log_error_after"] < 0.03 < fit["rms_log_error_before"]


def test_split_is_a_checkerboard_over_batch_and_context():
    rows = _rows()
    assign_split(rows)
    dec = [r for r in rows if r["phase"] == "decode"]
    for ctx in (256, 2048, 8192):
        sub = [r["split"] for r in dec if r["context"] == ctx]
        assert "cal" in sub and "held" in sub
    for b in (1, 4, 16):
        sub = [r["split"] for r in dec if r["seqs"] == b]
        assert "cal" in sub and "held" in sub
    assert sum(r["split"] == "held" for r in rows) >= len(rows) // 2 - 1


def test_calibrate_writes_a_file_predict_accepts(tmp_path):
    import pandas as pd

    rows = _rows()
    folder = tmp_path / SYSTEM / "olmoe-1b-7b"
    folder.mkdir(parents=True)
    pd.DataFrame(rows).to_csv(folder / "measurements.csv", index=False)
    out = tmp_path / "cal.json"
    res = calibrate([str(tmp_path / SYSTEM)], system_path=SYSTEM, output=str(out))
    doc = json.loads(out.read_text())
    dev = main_device(SYSTEM).name
    assert set(doc["efficiency"]) == {dev}
    assert doc["held_out"]["points"] > 0 and doc["fitted_on"]["points"] > 0
    assert doc["held_out"]["calibrated"]["decode"]["mape"] < 2.0
    assert res["held_out"]["points"] + res["fitted_on"]["points"] == len(rows)
    cal = load_calibration(str(out))  # what predict/simulate/plan --calibration read
    assert cal.for_device(dev, "cpu-x86").bw == pytest.approx(TRUE["bw"], rel=0.1)
    base = predict_rows(rows[:3], SYSTEM)
    calibrated = predict_rows(rows[:3], SYSTEM, cal)
    assert all(c["predicted_s"] != b["predicted_s"] for b, c in zip(base, calibrated))


def test_calibrate_rejects_foreign_csv(tmp_path):
    from moecap_sim.errors import UserError

    (tmp_path / "measurements.csv").write_text("a,b\n1,2\n")
    with pytest.raises(UserError, match="not a validation measurements file"):
        calibrate([str(tmp_path / "measurements.csv")], system_path=SYSTEM)
