"""CI gate: the quick validation (real torch MoE layer on this machine vs the cost model).

Runs ``moecap-sim validate --quick --calibrate --json`` (a quick probe, OLMoE-1B-7B with one
layer at real dimensions and routing forced from the real trace, 8 decode + 3 prefill points,
~1 minute here) and fails when the error exceeds bounds justified from the measured run-to-run
noise of this very command (``benchmarks/validation_noise.py``, numbers in validation/README.md):

    bound = min(cap, max(target, mean + 3·sd))   over repeated quick runs on the CI machine

``target`` is the issue's goal (decode ≤ 10 % uncalibrated / ≤ 5 % calibrated held-out, prefill ≤
10 %); ``cap`` stops a broken model from hiding behind a noisy machine.  A physics regression
(a missing term, a wrong byte count) moves these errors by far more than 3 sd.

Host interference (other tenants of the physical machine) comes in phases of minutes and shows in
the run itself as a large median/min spread of the repeats.  A noisy run is measured once more
after a pause (up to three runs); a quiet run is held to the quiet-run bounds (calibrated
decode ≤ 5 %), a noisy one to the bounds over all runs.  See :mod:`moecap_sim.validation.noise_bounds`.
"""

import json

import pytest

import time

from moecap_sim.validation.noise_bounds import BOUNDS, BOUNDS_QUIET, NOISY_RUN_MEDIAN_OVER_MIN_PCT

pytestmark = pytest.mark.slow


def _json(text: str) -> dict:
    lines = text.splitlines()
    start = next(i for i, l in enumerate(lines) if l.strip() == "{")
    return json.loads("\n".join(lines[start:]))


def test_quick_validation_within_noise_justified_bounds(tmp_path):
    pytest.importorskip("torch")
    pytest.importorskip("scipy")
    from typer.testing import CliRunner

    from moecap_sim.cli.validate import app
    from moecap_sim.perf.efficiency import load_calibration
    from moecap_sim.validation.routing import default_traces_dir

    def run(out):
        args = ["validate", "--quick", "--calibrate", "--estimator", "min", "--json", "-o", str(out)]
        if not (default_traces_dir() / "SOURCES.md").exists():
            args.append("--no-trace")
        res = CliRunner().invoke(app, args)
        assert res.exit_code == 0, res.output
        return _json(res.stdout)

    # Host interference does not always show in a run's own median/min indicator (it can slow
    # every repeat of a point alike), so a run that misses its bounds is measured again, up to
    # three runs; a physics regression misses them in every run (see noise_bounds).
    reports = []
    for attempt in range(3):
        if attempt:
            time.sleep(30)
        out_dir = tmp_path / f"run{attempt}"
        d = run(out_dir)
        noisy = d["noise"]["median_over_min_pct"] > NOISY_RUN_MEDIAN_OVER_MIN_PCT
        bounds = BOUNDS if noisy else BOUNDS_QUIET
        assert d["points"] >= 8 and d["calibrated"] is True
        u, c = d["uncalibrated"], d["calibrated_held_out"]
        reports.append({"bounds": bounds, "noisy": noisy, "uncalibrated": u, "calibrated_held_out": c,
                        "noise": d["noise"]})
        if (u["decode_mape"] <= bounds["decode_uncalibrated"] and u["prefill_mape"] <= bounds["prefill_uncalibrated"]
                and c["decode_mape"] <= bounds["decode_calibrated"]):
            break
    report = json.dumps(reports, indent=1)
    assert u["decode_mape"] <= bounds["decode_uncalibrated"], report
    assert u["prefill_mape"] <= bounds["prefill_uncalibrated"], report
    assert c["decode_mape"] <= bounds["decode_calibrated"], report
    assert d["decode_mape"] == c["decode_mape"]  # headline = held-out calibrated when --calibrate
    out = out_dir / d["hardware"] / "quick"
    for f in ("measurements.csv", "summary.md", "predicted_vs_measured.png", "routing_used.npz"):
        assert (out / "olmoe-1b-7b" / f).exists(), f
    cal = load_calibration(str(out / "calibration.json"))
    assert cal.by_key  # the written calibration is what predict --calibration reads
