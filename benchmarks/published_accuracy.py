"""Accuracy of moecap-sim against the published measurements (validation/published/cases.yaml).

    python benchmarks/published_accuracy.py            # predict every case with the shipped factors
    python benchmarks/published_accuracy.py --fit      # refit the efficiency factors (k-fold CV), then predict

Prints MAPE, median and max error and signed bias per class and overall, in-sample and
cross-validated, and writes validation/published/{summary.md, summary.json,
predicted_vs_measured.png} — the same as ``moecap-sim validate --published -o validation/published``,
whose code it runs.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from moecap_sim.cli.published import run_published_cli
from moecap_sim.validation.published import default_cases_path


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--fit", action="store_true", help="refit the efficiency factors before predicting")
    ap.add_argument("--cases", default=None, help="cases YAML (default: validation/published/cases.yaml)")
    ap.add_argument("-o", "--output", default=None, help="output directory (default: next to the cases file)")
    args = ap.parse_args()
    out = args.output or str(Path(args.cases).parent if args.cases else default_cases_path().parent)
    run_published_cli(args.cases, out, args.fit, False,
                      "python benchmarks/published_accuracy.py" + (" --fit" if args.fit else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
