"""Run-to-run noise of the quick validation (the CI gate's bounds are justified from this).

Runs ``moecap-sim validate --quick --calibrate`` N times (each run probes the machine afresh,
as CI does, at 1 thread and at all threads) and reports, per thread count:

* per point: the coefficient of variation across runs of its median and of its minimum over the
  repeats (run-to-run noise of a measurement), next to the within-run MAD of its repeats;
* per run: uncalibrated decode / prefill MAPE and calibrated held-out MAPE, and their mean,
  standard deviation and maximum over the runs.

The CI bound for a MAPE statistic is ``min(cap, max(target, mean + 3·sd))`` over these runs, see
``tests/test_validation_quick.py``.  Usage::

    .venv/bin/python benchmarks/validation_noise.py --runs 5 --out /tmp/noise [--json noise.json]

The ``RUNS_*`` tuples it prints are what ``moecap_sim/validation/noise_bounds.py`` records.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--out", default="/tmp/moecap-validation-noise")
    ap.add_argument("--json", dest="json_path", default=None)
    ap.add_argument("--estimator", default="min", choices=["median", "min"])
    ap.add_argument("--threads", default="1,all", help="thread counts, as validate --threads (default 1,all)")
    args = ap.parse_args(argv)

    from moecap_sim.validation.runner import ValidateConfig, run_validation

    runs = []
    per_point: dict = {}
    for i in range(args.runs):
        t0 = time.time()
        cfg = ValidateConfig(quick=True, models=["olmoe-1b-7b"], out_dir=f"{args.out}/run{i}", calibrate=True,
                             command="benchmarks/validation_noise.py", estimator=args.estimator,
                             threads=[t for t in args.threads.split(",") if t])
        top = run_validation(cfg, log=lambda m: None)
        import pandas as pd

        for th, res in (top.get("by_threads") or {str(top["threads"]): top}).items():
            rows_file = Path(res["output_dir"]) / "olmoe-1b-7b" / "measurements.csv"
            df = pd.read_csv(rows_file)
            for r in df.to_dict("records"):
                per_point.setdefault((th, r["point"]), {"measured": [], "mad": [], "min": []})
                per_point[(th, r["point"])]["measured"].append(r["median_s"])
                per_point[(th, r["point"])]["min"].append(r["min_s"])
                per_point[(th, r["point"])]["mad"].append(r["mad_rel"])
            c = res.get("calibrated_held_out") or {}
            runs.append({"threads": th, "decode_mape": res["uncalibrated"]["decode_mape"],
                         "prefill_mape": res["uncalibrated"]["prefill_mape"],
                         "decode_mape_cal": c.get("decode_mape"), "prefill_mape_cal": c.get("prefill_mape"),
                         "median_over_min_pct": res["noise"]["median_over_min_pct"],
                         "at_bound": [f["factor"] for f in c.get("at_bound", [])],
                         "elapsed_s": round(time.time() - t0, 1)})
            print(f"run {i} ({th} thread(s)): " + ", ".join(f"{k} {v:.2f}" if isinstance(v, float) else f"{k} {v}"
                                                           for k, v in runs[-1].items()), flush=True)
    summary = {}
    for th in sorted({r["threads"] for r in runs}):
        sub = [r for r in runs if r["threads"] == th]
        for k in ("decode_mape", "prefill_mape", "decode_mape_cal", "prefill_mape_cal"):
            xs = [r[k] for r in sub if r[k] is not None]
            if xs:
                summary[f"{th}t {k}"] = {"mean": statistics.mean(xs), "sd": statistics.stdev(xs) if len(xs) > 1 else 0.0,
                                         "max": max(xs), "min": min(xs)}
        print(f"RUNS ({th} thread(s)): " + ", ".join(
            f"({r['decode_mape']:.1f}, {r['prefill_mape']:.1f}, {r['decode_mape_cal']:.1f})" for r in sub))
    points = {f"{th}t {p}": {"cv_pct": 100 * statistics.stdev(v["measured"]) / statistics.mean(v["measured"])
                             if len(v["measured"]) > 1 else 0.0,
                             "cv_of_min_pct": 100 * statistics.stdev(v["min"]) / statistics.mean(v["min"])
                             if len(v["min"]) > 1 else 0.0,
                             "within_run_mad_pct": 100 * statistics.median(v["mad"])} for (th, p), v in per_point.items()}
    out = {"estimator": args.estimator, "runs": runs, "summary": summary, "points": points,
           "median_run_to_run_cv_pct": statistics.median(p["cv_pct"] for p in points.values()),
           "median_run_to_run_cv_of_min_pct": statistics.median(p["cv_of_min_pct"] for p in points.values()),
           "max_run_to_run_cv_pct": max(p["cv_pct"] for p in points.values())}
    print(json.dumps(out["summary"], indent=1))
    print(f"run-to-run CV of a point's median: median {out['median_run_to_run_cv_pct']:.1f}%, "
          f"max {out['max_run_to_run_cv_pct']:.1f}%; of its minimum: median {out['median_run_to_run_cv_of_min_pct']:.1f}%")
    if args.json_path:
        Path(args.json_path).write_text(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
