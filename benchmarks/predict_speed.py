"""Speed of `predict`: 200 in-process predictions over varied models/systems, and CLI cold start.

Targets (issue #3): < 50 ms per prediction in-process, < 1.5 s CLI cold start; torch, simpy,
matplotlib and scipy.optimize must stay off the predict import path.

    python benchmarks/predict_speed.py
"""

from __future__ import annotations

import itertools
import statistics
import subprocess
import sys
import time

CASES_MODELS = ["mixtral-8x7b", "qwen3-30b-a3b", "deepseek-v2-lite", "olmoe-1b-7b", "qwen3-235b-a22b",
                "deepseek-r1", "gpt-oss-120b", "llama-4-maverick", "dbrx", "phi-3.5-moe"]
CASES_HW = ["l4x4", "h100x8", "h200x8", "a100x8", "rtx4090x1", "mi300xx8", "b200x8", "xeon6980p-2s", "l40sx4", "h100x1"]
BATCHES = [1, 16, "max"]


def main() -> None:
    t0 = time.perf_counter()
    from moecap_sim.predict import predict
    import_s = time.perf_counter() - t0
    cases = list(itertools.islice(itertools.cycle(itertools.product(CASES_MODELS, CASES_HW, BATCHES)), 200))
    predict(*cases[0][:2], batch=cases[0][2])  # warm the spec caches
    times = []
    fits = 0
    for m, h, b in cases:
        t = time.perf_counter()
        r = predict(m, h, batch=b)
        times.append(time.perf_counter() - t)
        fits += bool(r["fits"])
    times_ms = sorted(1e3 * x for x in times)
    print(f"in-process: {len(times)} predictions, {fits} feasible; median {statistics.median(times_ms):.1f} ms, "
          f"p90 {times_ms[int(0.9 * len(times_ms))]:.1f} ms, max {times_ms[-1]:.1f} ms (import {import_s * 1e3:.0f} ms)")
    cold = []
    for _ in range(3):
        t = time.perf_counter()
        subprocess.run([sys.executable, "-m", "moecap_sim", "predict", "--model", "deepseek-r1", "--hw", "l4x4", "--json"],
                       check=True, capture_output=True)
        cold.append(time.perf_counter() - t)
    print(f"CLI cold start (predict --json): median {statistics.median(cold):.2f} s over {len(cold)} runs")
    out = subprocess.run([sys.executable, "-c", "import sys, moecap_sim.predict, moecap_sim.cli.app; "
                          "print(' '.join(m for m in ('torch','simpy','matplotlib','scipy.optimize','pandas','sklearn') if m in sys.modules))"],
                         check=True, capture_output=True, text=True).stdout.strip()
    print(f"heavy modules on the predict import path: {out or 'none'}")


if __name__ == "__main__":
    main()
