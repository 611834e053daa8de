"""Stage 2 of ``plan``: replay the workload through the DES and judge percentile SLOs.

``units`` system units get round-robin shards of the stream; each shard is simulated with
:func:`moecap_sim.api.simulate` (the simulator's public API) in the candidate's configuration,
with the engine's own scheduler cap (KV-limited); the DES judges TPOT as well as TTFT.  Up to ``MAX_SHARDS`` shards
are simulated (they are statistically alike); a percentile is the worst shard's (conservative),
a mean is request-weighted.
"""

from __future__ import annotations

import time
from moecap_sim.errors import UserError

from .config import SLO
from .search import Candidate
from .workload import ShardFiles, Workload

MAX_SHARDS = 8
STATS = ("mean", "p50", "p90", "p99")


def verify(model: str, cand: Candidate, units: int, workload: Workload, slos: tuple[SLO, ...],
           seed: int = 0) -> dict:
    """Simulate ``units`` units of ``cand`` on ``workload``; ``{"ok", "simulated", "reason"}``.
    Self-contained (writes its own temporary shard files), so a Dask worker can run it."""
    with ShardFiles() as files:
        return _verify(model, cand, units, workload, slos, files, seed)


def _verify(model: str, cand: Candidate, units: int, workload: Workload, slos: tuple[SLO, ...],
            files: ShardFiles, seed: int) -> dict:
    from moecap_sim import api

    t0 = time.perf_counter()
    shards = min(units, MAX_SHARDS)
    merged: dict = {m: {s: None for s in STATS} for m in ("ttft_s", "tpot_s", "e2e_s", "queueing_s")}
    weights: list[int] = []
    per_shard: list[dict] = []
    for k in range(shards):
        w = workload.shard(units, k)
        if len(w.arrival_s) == 0:
            continue
        path = files.path(w, f"{abs(hash(cand.key)) % 10**9}-{units}-{k}")
        try:
            s = api.simulate(model, cand.system, workload=path, seed=seed, input_len=cand_input(w),
                             output_len=cand_output(w), **cand.serving_kwargs())
        except UserError as exc:
            return {"ok": False, "reason": f"simulation refused: {str(exc).splitlines()[0]}", "simulated": None,
                    "wall_s": time.perf_counter() - t0}
        if not s.get("fits"):
            return {"ok": False, "reason": f"does not fit in the simulator: {s.get('reason')}", "simulated": None,
                    "wall_s": time.perf_counter() - t0}
        if s["completed"] < len(w.arrival_s):
            return {"ok": False, "reason": f"{len(w.arrival_s) - s['completed']} requests never finished",
                    "simulated": None, "wall_s": time.perf_counter() - t0}
        per_shard.append(s)
        weights.append(s["completed"])
    n = sum(weights)
    for m in merged:
        for st in STATS:
            vals = [s[m][st] for s in per_shard if s[m][st] is not None]
            if not vals:
                continue
            if st == "mean":
                merged[m][st] = sum(s[m]["mean"] * wt for s, wt in zip(per_shard, weights)
                                    if s[m]["mean"] is not None) / n
            else:
                merged[m][st] = max(vals)
    simulated = {**merged, "units": units, "shards_simulated": len(per_shard), "requests_simulated": n,
                 "output_tokens_per_s_per_unit": sum(s["output_tokens_per_s"] for s in per_shard) / len(per_shard),
                 "max_concurrency_per_replica": per_shard[0]["max_concurrency_per_replica"],
                 "workload": per_shard[0]["workload"]["source"].split("; round-robin")[0]}
    misses = [f"{x.name} {merged[x.metric][x.stat]:.3g} s > {x.bound_s:g} s" for x in slos if not x.met(merged)]
    return {"ok": not misses, "reason": "; ".join(misses) if misses else None, "simulated": simulated,
            "wall_s": time.perf_counter() - t0}


def cand_input(w: Workload) -> int:
    return max(1, w.mean_input)


def cand_output(w: Workload) -> int:
    return max(1, w.mean_output)
