"""Error bounds for the CI gate (``tests/test_validation_quick.py``), justified from measured noise.

``moecap-sim validate --quick --calibrate --estimator min`` was run repeatedly on the CI machine
(``benchmarks/validation_noise.py``; a 2-vCPU KVM guest on a shared Xeon host with AMX, 1
thread).  Each run probes the machine afresh and measures the same 11 points, so the spread of
its MAPE over runs is the run-to-run noise of the statistic CI checks.  The bound for each
statistic is

    bound = min(cap, max(target, mean + 3·sd))

* ``target`` — the issue's goal (decode ≤ 10 % uncalibrated, ≤ 5 % calibrated held-out;
  prefill ≤ 10 %): a quiet machine must never be held to less;
* ``mean + 3·sd`` — what this machine's noise alone produces in ~99.9 % of runs (one-sided);
* ``cap`` — stops a noisy machine from hiding a broken model: a physics regression (a missing
  operator, a wrong byte count) moves these errors far more (on a quiet run, dropping the MoE
  dispatch traffic and the no-overlap CPU roofline from the cost model takes the uncalibrated
  prefill MAPE from 2.1 % to 25.2 %).

Measured (10 runs, minimum of 5 repeats per point, 2026-11-29): the run's own interference
indicator — the median over points of (median / minimum of its repeats) − 1 — separates two
regimes.  Quiet runs (indicator 3.7–5.0 %, 5 runs): uncalibrated decode MAPE 1.9–9.4 %, prefill
2.1–10.6 %, calibrated held-out decode 0.3–2.9 %.  Runs while other tenants loaded the physical
host (phases of minutes, invisible from inside the VM; indicator 11.8–25.7 %, 5 runs): decode
6.3–15.4 %, prefill 10.9–32.1 %.  The gate therefore measures once more when a run is noisy,
and judges a quiet run by the quiet-run bounds, a noisy one by the all-run bounds.
"""

from __future__ import annotations

import statistics

# MAPE (%) of each run of benchmarks/validation_noise.py --runs 5 (twice), in run order, with the
# run's interference indicator (median over points of median/min − 1, %)
RUNS = [
    # indicator, decode uncal., prefill uncal., decode cal. held-out
    (4.9, 7.3, 2.1, 1.4), (25.7, 15.2, 26.9, 7.8), (18.6, 15.4, 32.1, 6.2), (24.8, 9.6, 21.6, 9.0),
    (24.8, 7.8, 16.2, 3.8), (3.7, 1.9, 7.5, 1.3), (11.8, 6.3, 10.9, 1.8), (3.7, 9.4, 3.7, 0.3),
    (4.2, 5.7, 10.2, 1.5), (5.0, 8.5, 10.6, 2.9),
]
STATS = ("decode_uncalibrated", "prefill_uncalibrated", "decode_calibrated")
TARGET = {"decode_uncalibrated": 10.0, "prefill_uncalibrated": 10.0, "decode_calibrated": 5.0}
CAP = {"decode_uncalibrated": 25.0, "prefill_uncalibrated": 40.0, "decode_calibrated": 15.0}

# a run whose median point is this much slower (%) than its best repeat ran under heavy host
# interference; the CI gate then measures once more before judging
NOISY_RUN_MEDIAN_OVER_MIN_PCT = 8.0


def _bounds(runs) -> dict:
    out = {}
    for i, stat in enumerate(STATS):
        xs = [r[i + 1] for r in runs]
        mean, sd = statistics.mean(xs), statistics.stdev(xs)
        out[stat] = round(min(CAP[stat], max(TARGET[stat], mean + 3.0 * sd)), 1)
    return out


BOUNDS = _bounds(RUNS)  # any run
BOUNDS_QUIET = _bounds([r for r in RUNS if r[0] <= NOISY_RUN_MEDIAN_OVER_MIN_PCT])  # a quiet run
