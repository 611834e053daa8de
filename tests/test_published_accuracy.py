"""Accuracy against the published measurements (validation/published): the CI regression gate,
the fit's honesty (held-out, bounded), and the error band every prediction carries."""

import json
import math
from pathlib import Path

import numpy as np
import pytest

from moecap_sim.perf.efficiency import FITTED_PATH, Calibration
from moecap_sim.predict import predict
from moecap_sim.validation import published_fit as pf
from moecap_sim.validation.published import CLASSES, error_stats, load_cases, predict_case, run_published

ROOT = Path(__file__).resolve().parents[1]
COMMITTED = ROOT / "validation" / "published" / "summary.json"


@pytest.fixture(scope="module")
def summary():
    return run_published(cross_validate=False)


def test_regression_gate_overall_mape_within_two_points_of_the_committed_figure(summary):
    committed = json.loads(COMMITTED.read_text())
    assert summary["points"] == committed["points"] == 102
    # a physics change that makes the predictions worse fails CI; improvements must be committed
    assert summary["mape"] <= committed["mape"] + 2.0, (summary["mape"], committed["mape"])
    assert summary["refused"] <= committed["refused"], [c["id"] for c in summary["cases"] if c["refused"]]


def test_every_class_is_reported_and_refusals_are_failures_not_skips(summary):
    assert set(summary["classes"]) == set(CLASSES)
    for cls, c in summary["classes"].items():
        rows = [r for r in summary["cases"] if r["class"] == cls]  # counted again from the per-case rows
        assert c["n"] == len(rows) == c["predicted"] + c["refused"]
        assert c["predicted"] == sum(r["predicted"] is not None for r in rows)
    refused = [c for c in summary["cases"] if c["predicted"] is None]
    assert len(refused) == summary["refused"]
    assert all(c["refused"] for c in refused)  # each says why


def test_error_statistics_by_hand():
    from moecap_sim.validation.published import Case, CaseResult

    def res(metric, meas, pred):
        c = Case(id="x", cls="cpu", reliability="A", source="s", metric=metric, measured=meas, per="system",
                 per_count=1, predict={}, exact=True, note="")
        return CaseResult(c, predicted=pred)

    st = error_stats([res("output_tokens_per_s", 100, 150), res("tpot_s", 0.1, 0.05), res("tpot_s", 1, None)])
    assert st["n"] == 2 and st["refused"] == 1
    assert st["mape"] == pytest.approx(50.0)  # |1.5−1| and |0.5−1|
    # bias is oriented: 1.5× the throughput and half the latency are both optimistic (×1.5, ×2)
    assert st["bias"] == pytest.approx(100 * (math.sqrt(1.5 * 2.0) - 1))


def test_fitted_factors_are_physical_and_never_from_a_single_row():
    data = json.loads(FITTED_PATH.read_text())
    assert data["groups"], "no fitted group shipped"
    for g, v in data["groups"].items():
        f = v["factors"]
        assert 0 < f["bw"] <= 1.0 and 0 < f["flop"] <= 1.0, g
        assert f["kernel_launch_us"] > 0 and f["graph_kernel_us"] > 0
        assert v["n"] >= pf.MIN_CASES and v["sources"] >= pf.MIN_SOURCES
        assert v["cross_validated_mape"] is not None and v["in_sample_mape"] is not None
    for cls, b in data["bands"].items():
        assert b["p10_ratio"] <= b["median_ratio"] <= b["p90_ratio"], cls


def test_held_out_folds_exclude_the_case_they_predict():
    n = 13
    folds = pf._folds(n, pf.FOLDS)
    assert sorted(np.concatenate(folds).tolist()) == list(range(n))
    for test in folds:
        train = np.setdiff1d(np.arange(n), test)
        assert not set(test) & set(train)


def test_grid_argmin_recovers_a_known_optimum():
    """A synthetic group whose log errors vanish at one grid point: the fit finds it, in-sample and
    in every fold."""
    from moecap_sim.validation.published import Case

    cases = [Case(id=f"c{i}", cls="cpu", reliability="A", source=f"s{i % 2}", metric="output_tokens_per_s",
                  measured=1.0, per="system", per_count=1, predict={}, exact=True, note="") for i in range(6)]
    shape = (4, 4, 3)
    truth = (2, 1, 0)
    idx = np.indices(shape)
    err = sum((idx[d] - truth[d]) ** 2 * 0.1 for d in range(3)).astype(float)
    t = pf.GroupTable("cpu-x86@ggml", cases, np.broadcast_to(err, (6,) + shape).copy())
    assert t.best(np.arange(6)) == truth
    for test in pf._folds(6, 3):
        assert t.best(np.setdiff1d(np.arange(6), test)) == truth


def test_prediction_carries_an_error_band_from_held_out_residuals():
    r = predict("mixtral-8x7b", "h100x8", precision="fp8", tp=1, dp=8, batch="max", engine="trtllm")
    u = r["uncertainty"]
    assert u is not None and u["class"] == "gpu-throughput" and u["n"] >= 5
    assert 0 < u["p10_ratio"] <= u["p90_ratio"]  # a band, oriented p10 below p90
    assert u["band_pct"] > 0 and u["extrapolated"] is False
    lat = predict("mixtral-8x7b", "h100x8", precision="fp8", batch=1)
    assert lat["uncertainty"]["class"] == "gpu-latency"


def test_prediction_outside_the_published_data_says_extrapolated():
    r = predict("mixtral-8x7b", "gaudi3x8", batch=8)
    assert r["uncertainty"]["extrapolated"] is True
    assert "gaudi" in r["uncertainty"]["extrapolation"]


def test_fitted_defaults_are_what_predict_uses_and_a_user_calibration_wins():
    r = predict("mixtral-8x7b", "h100x8", precision="fp8", tp=1, dp=8, batch="max", engine="trtllm")
    assert "fitted on published measurements" in r["assumptions"]["efficiency"]["accelerator"]["source"]
    own = Calibration(by_key={"nvidia-datacenter": {"bw": 0.61}}, path="mine.json")
    r2 = predict("mixtral-8x7b", "h100x8", precision="fp8", tp=1, dp=8, batch="max", engine="trtllm", calibration=own)
    assert r2["assumptions"]["efficiency"]["accelerator"]["bw"] == 0.61


def test_a_refused_case_is_recorded_with_its_reason():
    c = next(c for c in load_cases() if c.refused_reason)
    r = predict_case(c)
    assert r.predicted is None and r.refused


def test_cli_validate_published_json_contract(tmp_path, capsys):
    from moecap_sim.cli import main

    rc = main(["validate", "--published", "--json", "-o", str(tmp_path)])
    out = capsys.readouterr().out
    assert rc == 0
    d = json.loads(out[out.index("{"):])
    for key in ("points", "refused", "mape", "cross_validated_mape", "classes"):
        assert key in d
    for c in d["classes"].values():
        for key in ("n", "mape", "cross_validated_mape", "bias"):
            assert key in c
    for f in ("summary.md", "summary.json", "predicted_vs_measured.png"):
        assert (tmp_path / f).stat().st_size > 0
    assert main(["validate", "--fit"]) == 2
    assert "--published" in capsys.readouterr().err
