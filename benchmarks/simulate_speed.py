"""Speed of `simulate`: one hour of real Azure traffic (conversation trace, 19,366 requests).

Target (design brief): an hour of real traffic simulated in seconds.  Reads the full trace
from ../shared/requests_upstream when present, else the shipped 10-minute sample.

    python benchmarks/simulate_speed.py
"""

from __future__ import annotations

import time
from pathlib import Path

from moecap_sim.sim.simulate import simulate

FULL = Path(__file__).resolve().parents[2] / "shared/requests_upstream/Azure__AzurePublicDataset/AzureLLMInferenceTrace_conv.csv"


def main() -> None:
    workload = str(FULL) if FULL.exists() else "azure-conv"
    for model, hw, kw in (("mixtral-8x7b", "h100x8", {"precision": "fp8", "dp": 8, "tp": 1}),
                          ("qwen3-30b-a3b", "h100x4", {"dp": 4, "tp": 1}),
                          ("deepseek-r1", "h200x8", {"tp": 8})):
        t = time.perf_counter()
        s = simulate(model, hw, workload=workload, **kw)
        wall = time.perf_counter() - t
        print(f"{model} on {hw}: {s['workload']['requests']} requests, {s['makespan_s']:.0f} s simulated in {wall:.1f} s wall "
              f"({s['makespan_s'] / wall:.0f}× real time); {s['steps']['decode_steps']} decode steps, "
              f"{s['steps']['cost_model_evaluations']} cost-model evaluations; p99 TTFT {s['ttft_s']['p99']:.3f} s, "
              f"p99 TPOT {s['tpot_s']['p99'] * 1e3:.1f} ms, {s['output_tokens_per_s']:.0f} output tok/s")


if __name__ == "__main__":
    main()
