"""Speed of routing replay in `simulate`: one hour of real Azure traffic (conversation trace,
19,366 requests, shipped as `azure-conv-1h`) on one H100, with and without per-pass routing
replay, on one core.

Targets (issue #9): with replay in ≤ 10 s on one core and ≤ 2× the time without replay; the cost
of a run linear in its passes (compare the 10-minute sample with the hour).

    python benchmarks/replay_speed.py
"""

from __future__ import annotations

import os

for _v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):  # one core
    os.environ.setdefault(_v, "1")

import time  # noqa: E402
from pathlib import Path  # noqa: E402

TRACES = Path(__file__).resolve().parents[2] / "shared/traces_upstream/Mario928__speculative-moe"


def _mixtral_trace() -> str | None:
    """The real Mixtral routing trace imported to a temporary file (never committed: no license)."""
    files = sorted(TRACES.glob("*_2_routing.jsonl"))
    if not files:
        return None
    import tempfile

    from moecap_sim.traces.api import trace_import

    out = Path(tempfile.mkdtemp()) / "mixtral.trace.npz"
    trace_import([str(f) for f in files], str(out))
    return str(out)


def run(model: str, hw: str, workload: str, **kw) -> tuple[float, dict]:
    from moecap_sim.sim.simulate import simulate

    t = time.perf_counter()
    s = simulate(model, hw, workload=workload, **kw)
    return time.perf_counter() - t, s


def main() -> None:
    trace = _mixtral_trace()
    cases = [("qwen3-30b-a3b", "h100x1", {}, "profile"),
             ("mixtral-8x7b", "h100x1", {"precision": "fp8"}, trace or "profile")]
    for model, hw, kw, routing in cases:
        base_s, base = run(model, hw, "azure-conv-1h", replay=False, **kw)
        rep_s, rep = run(model, hw, "azure-conv-1h", routing=routing, **kw)
        short_s, short = run(model, hw, "azure-conv", routing=routing, **kw)
        passes = rep["routing_replay"]["passes"]
        short_passes = short["routing_replay"]["passes"]
        print(f"{model} on {hw}, azure-conv-1h ({rep['requests_total']} requests, {rep['makespan_s']:.0f} s simulated), "
              f"routing {'real trace' if routing not in ('profile', 'uniform') else routing}:")
        print(f"  without replay {base_s:6.1f} s | with replay {rep_s:6.1f} s ({rep_s / base_s:.2f}x; target <= 10 s, "
              f"<= 2x) | {passes} passes, {1e6 * rep_s / passes:.0f} us/pass (10-min sample: "
              f"{1e6 * short_s / short_passes:.0f} us/pass over {short_passes} passes)")
        print(f"  TPOT p50/p99 {rep['tpot_s']['p50'] * 1e3:.1f}/{rep['tpot_s']['p99'] * 1e3:.1f} ms "
              f"(no replay {base['tpot_s']['p50'] * 1e3:.1f}/{base['tpot_s']['p99'] * 1e3:.1f} ms), mean distinct experts "
              f"per layer {rep['routing_replay']['mean_distinct_experts_per_layer']:.1f}, "
              f"{rep['routing_replay']['cost_model_evaluations']} cost-model evaluations")


if __name__ == "__main__":
    main()
