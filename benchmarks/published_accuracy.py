"""Accuracy of moecap-sim against the published measurements (validation/published/cases.yaml).

    python benchmarks/published_accuracy.py            # predict every case with the shipped factors
    python benchmarks/published_accuracy.py --fit      # refit the efficiency factors (k-fold CV), then predict

Prints MAPE, median and max error and signed bias per class and overall, in-sample and
cross-validated, and writes validation/published/{summary.md, summary.json,
predicted_vs_measured.png} (the same as ``moecap-sim validate --published``).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from moecap_sim.validation.published import default_cases_path, run_published, write_outputs


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--fit", action="store_true", help="refit the efficiency factors before predicting")
    ap.add_argument("--cases", default=None, help="cases YAML (default: validation/published/cases.yaml)")
    ap.add_argument("-o", "--output", default=None, help="output directory (default: next to the cases file)")
    args = ap.parse_args()
    t0 = time.perf_counter()
    if args.fit:
        from moecap_sim.validation.published_fit import refit

        _, path = refit(args.cases, progress=lambda m: print("fit:", m, file=sys.stderr, flush=True))
        print(f"fit written to {path} in {time.perf_counter() - t0:.0f} s", file=sys.stderr)
    s = run_published(args.cases)
    out = Path(args.output) if args.output else (Path(args.cases).parent if args.cases else default_cases_path().parent)
    write_outputs(s, out, "python benchmarks/published_accuracy.py" + (" --fit" if args.fit else ""))
    print(f"{'class':16s} {'n':>4s} {'refused':>7s} {'MAPE':>7s} {'median':>7s} {'max':>7s} {'bias':>7s} {'CV MAPE':>8s}")
    rows = list(s["classes"].items()) + [("all", {**s, "n": s["points"]})]
    for cls, c in rows:
        f = lambda x: "—" if x is None else f"{x:.1f}"  # noqa: E731
        print(f"{cls:16s} {c['n']:4d} {c['refused']:7d} {f(c['mape']):>7s} {f(c['median_ape']):>7s} "
              f"{f(c['max_ape']):>7s} {f(c['bias']):>7s} {f(c['cross_validated_mape']):>8s}")
    print(f"wrote {out}/summary.md, summary.json, predicted_vs_measured.png in {time.perf_counter() - t0:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
