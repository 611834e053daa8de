"""Speed of `plan` over the whole catalog (issue #11 target: < 60 s locally on 2 cores with the
DES verification of the top 20 candidates), locally and on a Dask cluster.

    python benchmarks/plan_speed.py [--dask local|tcp://host:port] [--verify-top 20]

Prints stage-1 and stage-2 wall time, DES runs, and the cheapest fleet per scenario (the same
with and without Dask).
"""

from __future__ import annotations

import argparse
import time


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--dask", default=None)
    ap.add_argument("--verify-top", type=int, default=20)
    ap.add_argument("--max-des-runs", type=int, default=80)
    a = ap.parse_args()
    from moecap_sim.planner import plan

    t0 = time.perf_counter()
    r = plan("qwen3-30b-a3b", rate=5.53, input_len=1155, output_len=211, slo_tpot_p90_s=0.03, slo_ttft_p99_s=0.5,
             scenarios=["dedicated", "spot", "elastic", "serverless"], verify_top=a.verify_top,
             max_des_runs=a.max_des_runs, dask=a.dask)
    wall = time.perf_counter() - t0
    s = r["search"]
    print(f"catalog: {s['systems']} systems, {s['stage1_evaluated']} configurations, {s['stage1_feasible']} feasible")
    print(f"stage 1 {s['stage1_s']:.1f} s, stage 2 {s['stage2_s']:.1f} s ({s['des_runs']} DES runs, "
          f"{r['verified']} verified; {s['stop']}); total {wall:.1f} s (dask: {a.dask})")
    for name, sc in r["scenarios"].items():
        ch = sc["cheapest"]
        print(f"  {name:10s} " + (f"{ch['key']} x{ch['units']}  ${ch['usd_per_hour']:.3f}/h  "
                                   f"TTFT p99 {ch['simulated_ttft_p99_s']:.3f} s" if ch else "—"))


if __name__ == "__main__":
    main()
