"""CI gate: the quick validation (a real torch MoE layer on this machine vs the cost model).

Runs ``moecap-sim validate --quick --calibrate --estimator min --json`` once per module (a quick
probe and OLMoE-1B-7B with one layer at real dimensions, routing forced from the real trace or,
on an install without it, sampled from the shipped profile; 8 decode + 2-3 prefill points, at 1
thread and at all threads) and fails when an error exceeds bounds justified from the measured
run-to-run noise of this very command (``benchmarks/validation_noise.py``, numbers in
:mod:`moecap_sim.validation.noise_bounds` and validation/README.md):

    bound = min(cap, max(target, mean + 3·sd))   over repeated quick runs

A run that misses its bounds is measured again (up to three runs): interference from other
tenants comes in phases and slows a whole run, a physics regression misses in every run.

The gate must also *catch* regressions: :func:`test_gate_trips_when_a_physics_term_is_removed`
re-predicts the measured points with a term taken out of the cost model (the decode KV-cache
read, the bytes of the distinct routed experts) and checks the same gate fails.
"""

import json
import time

import pytest

from moecap_sim.validation.noise_bounds import bounds_for, gate_failures

pytestmark = pytest.mark.slow


def _json(text: str) -> dict:
    lines = text.splitlines()
    start = next(i for i, l in enumerate(lines) if l.strip() == "{")
    return json.loads("\n".join(lines[start:]))


def _run(out, threads: str) -> dict:
    from typer.testing import CliRunner

    from moecap_sim.cli.validate import app

    res = CliRunner().invoke(app, ["validate", "--quick", "--calibrate", "--estimator", "min", "--json", "-o", str(out),
                                   "--threads", threads])
    assert res.exit_code == 0, res.output
    return _json(res.stdout)


@pytest.fixture(scope="module")
def gated(tmp_path_factory):
    """The gated runs: re-measured (up to three runs) while one misses its bounds.  One thread
    always.  All threads only with MOECAP_GATE_ALL_THREADS=1 (a CI machine with free cores), and
    then only when the machine's other processes leave its cores free, before the run and on
    average during it (noise_bounds.ALL_THREADS_MAX_BUSY_CPUS): on the shared AMD CI VM a
    2-thread quick run takes ~4 min and misses by ~60 % even with the cores nominally free (its
    2-thread probe and measurements disagree; validation/README.md), so it is not gated by default."""
    pytest.importorskip("torch")
    pytest.importorskip("scipy")
    from moecap_sim.validation.noise_bounds import ALL_THREADS_MAX_BUSY_CPUS
    from moecap_sim.validation.timing import OthersLoad, available_cores, busy_cpus

    import os

    cores = available_cores()
    want_all = os.environ.get("MOECAP_GATE_ALL_THREADS") == "1"
    reports = []
    runs: dict = {}
    d = None
    for attempt in range(3):
        if attempt:
            time.sleep(20)
        out = tmp_path_factory.mktemp(f"quick{attempt}")
        d = _run(out / "1t", "1")
        runs = {"1": d}
        busy = busy_cpus(2.0) if (want_all and cores > 1) else None
        others = None
        if want_all and cores > 1 and busy <= ALL_THREADS_MAX_BUSY_CPUS:
            load = OthersLoad().start()
            da = _run(out / "all", "all")
            others = load.stop()
            if others <= ALL_THREADS_MAX_BUSY_CPUS:
                runs[str(cores)] = da
        fails = {th: gate_failures(r, bounds_for(int(th), r)) for th, r in runs.items()}
        reports.append({"attempt": attempt, "busy_cpus_before_all_threads": busy, "others_cpus_during": others,
                        "failures": fails, "runs": {th: {k: r.get(k) for k in ("uncalibrated", "calibrated_held_out",
                                                                             "noise", "elapsed_s")}
                                                    for th, r in runs.items()}})
        if not any(fails.values()):
            break
    return d, runs, reports


def test_quick_validation_within_noise_justified_bounds(gated):
    import warnings

    d, runs, reports = gated
    assert "1" in runs, "the gate validates at 1 thread"
    from moecap_sim.validation.timing import available_cores

    import os

    if os.environ.get("MOECAP_GATE_ALL_THREADS") == "1" and available_cores() > 1 and str(available_cores()) not in runs:
        r = reports[-1]
        warnings.warn(f"all-threads validation not judged: other processes kept the cores busy "
                      f"({r['busy_cpus_before_all_threads']} CPUs before, {r['others_cpus_during']} during; "
                      f"see noise_bounds.ALL_THREADS_MAX_BUSY_CPUS)")
    report = json.dumps(reports, indent=1, default=str)
    for th, r in runs.items():
        assert r["points"] >= 8 and r["calibrated_held_out"]["points"] >= 4, report
        assert not gate_failures(r, bounds_for(int(th), r)), report
    assert d["decode_mape"] == d["calibrated_held_out"]["decode_mape"]  # headline = held-out calibrated


def test_quick_validation_writes_reusable_results(gated):
    from pathlib import Path

    from moecap_sim.perf.efficiency import load_calibration

    d, runs, _ = gated
    for r in runs.values():
        out = Path(r["output_dir"])
        for f in ("measurements.csv", "summary.md", "predicted_vs_measured.png", "routing_used.npz"):
            assert (out / "olmoe-1b-7b" / f).exists(), f
        cal = load_calibration(str(out / "calibration.json"))  # what predict --calibration reads
        doc = json.loads((out / "calibration.json").read_text())
        assert cal.by_key and "in_sample" in doc and "held_out" in doc and isinstance(doc["at_bound"], list)
        for k, v in next(iter(doc["efficiency"].values())).items():
            lo, hi = doc["bounds"][k]
            assert lo <= v <= hi, (k, v)


@pytest.mark.parametrize("term", ["decode KV-cache read", "routed-expert bytes"])
def test_gate_trips_when_a_physics_term_is_removed(gated, term, monkeypatch):
    """The same gate, on the same measurements, with one physics term removed from the model."""
    import pandas as pd

    import moecap_sim.validation.engine as engine
    from moecap_sim.validation.compare import errors, predict_rows
    from moecap_sim.validation.routing import StepRouting

    _, runs, _ = gated
    r1 = runs["1"]
    from pathlib import Path

    rows = pd.read_csv(Path(r1["output_dir"]) / "olmoe-1b-7b" / "measurements.csv").to_dict("records")

    def gate_stats(pred):
        for r, p in zip(rows, pred):
            r["predicted_s"] = p["predicted_s"]
        e = errors(rows)
        return {"uncalibrated": {"decode_mape": e["decode"]["mape"], "prefill_mape": e["prefill"]["mape"]},
                "calibrated_held_out": r1["calibrated_held_out"], "noise": r1["noise"]}

    bounds = bounds_for(1, r1)
    intact = gate_stats(predict_rows(rows, r1["system_spec"]))
    assert not gate_failures(intact, bounds), intact  # the re-prediction itself passes
    if term == "decode KV-cache read":
        make = engine.torch_eager_engine

        def no_kv(*a, **k):
            return make(*a, **k).model_copy(update={"decode_kv_passes": {"gqa": 0, "mla": 0}})

        monkeypatch.setattr(engine, "torch_eager_engine", no_kv)
    else:
        monkeypatch.setattr(StepRouting, "expected_distinct_experts", lambda self, tokens, layer=None: 0.0)
    broken = gate_stats(predict_rows(rows, r1["system_spec"]))
    assert gate_failures(broken, bounds), (term, broken, bounds)
