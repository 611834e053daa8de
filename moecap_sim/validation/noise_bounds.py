"""Error bounds for the CI gate (``tests/test_validation_quick.py``), justified from measured noise.

``moecap-sim validate --quick --calibrate --estimator min`` was run repeatedly
(``benchmarks/validation_noise.py``) on the CI machine class — a 2-vCPU AMD EPYC VM (Zen 4,
AVX-512 + bf16, no AMX) shared with three other jobs that keep its CPUs busy most of the time.
Each run probes the machine afresh (at 1 thread and at all threads) and measures the same quick
points, so the spread of its error over runs is the run-to-run noise of the statistic CI checks.
The bound for each statistic is

    bound = min(cap, max(target, mean + 3·sd))

* ``target`` — the issue's goal (uncalibrated decode and prefill MAPE ≤ 15 %, calibrated
  held-out decode ≤ 8 %): a quiet machine is never held to less;
* ``mean + 3·sd`` — what this machine's noise alone produces in ~99.9 % of runs (one-sided);
* ``cap`` — stops a noisy machine from hiding a broken model: removing a physics term moves
  these errors far more (the gate test removes the decode KV read and the routed-expert bytes
  and checks the gate trips on the same measurements).

All threads on a shared 2-core machine means competing with the neighbours for both cores: its
bounds would come from its own runs (``RUNS_ALL_THREADS``); none could be measured usefully, so
the caps apply and the gate checks all threads only on request (MOECAP_GATE_ALL_THREADS=1).
"""

from __future__ import annotations

import statistics

STATS = ("decode_uncalibrated", "prefill_uncalibrated", "decode_calibrated")
TARGET = {"decode_uncalibrated": 15.0, "prefill_uncalibrated": 15.0, "decode_calibrated": 8.0}
CAP = {"decode_uncalibrated": 25.0, "prefill_uncalibrated": 25.0, "decode_calibrated": 15.0}

# (decode uncal., prefill uncal., decode cal. held-out) MAPE % of each 1-thread quick run on the
# AMD EPYC 2-vCPU CI VM, 2026-12-04, while three other jobs kept ~2 CPUs busy: four runs of
# benchmarks/validation_noise.py --runs 4 --threads 1, then two earlier runs of the same command
# (validate --quick --calibrate --estimator min; the second under the heaviest interference seen,
# median/min of its repeats 17 %)
RUNS_1_THREAD = [
    (4.9, 3.6, 4.0), (7.9, 5.6, 5.9), (6.9, 6.8, 1.2), (7.6, 10.2, 2.8),
    (5.0, 7.2, 3.4), (5.6, 10.1, 8.8),
]
# No all-threads run could be measured with the CI VM's cores free (its neighbours kept both
# busy all day: 2-thread GEMMs ran 2-10x slower, median/min of the repeats ~100 %), so there is
# no noise figure for it: all threads are judged by the caps, and only when the machine's other
# processes leave the cores free (the gate checks /proc/stat before and during that run).
RUNS_ALL_THREADS: list = []
ALL_THREADS_MAX_BUSY_CPUS = 0.5  # other processes' load (CPUs) above which all-threads is not judged


def _bounds(runs) -> dict:
    if not runs:
        return dict(CAP)
    out = {}
    for i, stat in enumerate(STATS):
        xs = [r[i] for r in runs]
        mean = statistics.mean(xs)
        sd = statistics.stdev(xs) if len(xs) > 1 else 0.0
        out[stat] = round(min(CAP[stat], max(TARGET[stat], mean + 3.0 * sd)), 1)
    return out


BOUNDS_1_THREAD = _bounds(RUNS_1_THREAD)
BOUNDS_ALL_THREADS = _bounds(RUNS_ALL_THREADS)


def bounds_for(threads: int, run: dict | None = None) -> dict:
    """The bounds a run at ``threads`` threads is held to."""
    return BOUNDS_1_THREAD if threads == 1 else BOUNDS_ALL_THREADS


def gate_failures(run: dict, bounds: dict) -> list[str]:
    """What a validation summary (``validate --json``) misses of ``bounds``; [] when it passes."""
    u = run["uncalibrated"]
    c = run.get("calibrated_held_out") or {}
    out = []
    for stat, val in (("decode_uncalibrated", u.get("decode_mape")), ("prefill_uncalibrated", u.get("prefill_mape")),
                      ("decode_calibrated", c.get("decode_mape"))):
        if val is not None and val > bounds[stat]:
            out.append(f"{stat} MAPE {val:.1f}% > bound {bounds[stat]:.1f}%")
    return out
