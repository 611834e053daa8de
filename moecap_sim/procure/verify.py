"""Stage 2 of ``plan``: replay the workload through the DES and judge percentile SLOs.

``units`` system units get round-robin shards of the stream (a mixed fleet gets a smooth
weighted round-robin, weights = each unit's verified capacity); each shard is simulated with
:func:`moecap_sim.api.simulate` (the simulator's public API) in its unit's configuration, with
the engine's own scheduler cap (KV-limited); the DES judges TPOT as well as TTFT.  Up to
``MAX_SHARDS`` shards of a homogeneous fleet are simulated (they are statistically alike); a
percentile is the worst shard's (conservative), a mean is request-weighted.
"""

from __future__ import annotations

import time

import numpy as np

from moecap_sim.errors import UserError

from .config import SLO
from .search import Candidate
from .workload import ShardFiles, Workload

MAX_SHARDS = 8
STATS = ("mean", "p50", "p90", "p99")
METRICS = ("ttft_s", "tpot_s", "e2e_s", "queueing_s")


def verify(model: str, cand: Candidate, units: int, workload: Workload, slos: tuple[SLO, ...],
           seed: int = 0) -> dict:
    """Simulate ``units`` units of ``cand`` on ``workload``; ``{"ok", "simulated", "reason"}``.
    Self-contained (writes its own temporary shard files), so a Dask worker can run it."""
    jobs = [(cand, workload.shard(units, k)) for k in range(min(units, MAX_SHARDS))]
    res = _run(model, jobs, slos, seed)
    if res["simulated"] is not None:
        res["simulated"]["units"] = units
    return res


def weighted_shards(workload: Workload, weights: list[float]) -> list[Workload]:
    """Split the stream over units in proportion to ``weights`` (smooth weighted round-robin,
    deterministic: each request goes to the unit furthest behind its share)."""
    w = np.asarray(weights, dtype=float)
    cur = np.zeros(len(w))
    owner = np.empty(len(workload.arrival_s), dtype=int)
    for r in range(len(owner)):
        cur += w
        j = int(np.argmax(cur))
        cur[j] -= w.sum()
        owner[r] = j
    return [Workload(workload.arrival_s[owner == j], workload.input_tokens[owner == j],
                     workload.output_tokens[owner == j], f"{workload.description}; weighted shard {j + 1} of {len(w)}")
            for j in range(len(w))]


def verify_mixed(model: str, parts: list[tuple[Candidate, int, float]], workload: Workload,
                 slos: tuple[SLO, ...], seed: int = 0) -> dict:
    """A heterogeneous fleet: ``parts`` = (candidate, units, capacity req/s per unit); every unit
    is simulated on its weighted share of the stream."""
    units = [(c, cap) for c, n, cap in parts for _ in range(n)]
    shards = weighted_shards(workload, [cap for _, cap in units])
    return _run(model, [(c, w) for (c, _), w in zip(units, shards)], slos, seed)


def needs_routing_replay(cand: Candidate) -> bool:
    """Whether verifying ``cand`` needs the routing replayed pass by pass. An expert cache
    (misses, link contention) and EP (the busiest rank of each step) change step times with each
    pass's routing. A GPU-resident candidate without EP is timed on the routing profile's
    expected distinct experts, which the replay matches on average (DES vs predict within 3 %,
    tests/test_sim_replay.py) at a third of the simulation time."""
    return cand.placement in ("expert-cache", "nvme") or cand.layout.ep > 1


def _run(model: str, jobs: list[tuple[Candidate, Workload]], slos: tuple[SLO, ...], seed: int) -> dict:
    from moecap_sim import api

    t0 = time.perf_counter()
    per_shard: list[dict] = []
    with ShardFiles() as files:
        for k, (cand, w) in enumerate(jobs):
            if len(w.arrival_s) == 0:
                continue
            path = files.path(w, f"shard-{k}")
            try:
                s = api.simulate(model, cand.system, workload=path, seed=seed, input_len=max(1, w.mean_input),
                                 output_len=max(1, w.mean_output), replay=needs_routing_replay(cand),
                                 **cand.serving_kwargs())
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
    if not per_shard:
        return {"ok": False, "reason": "no requests to simulate", "simulated": None, "wall_s": time.perf_counter() - t0}
    weights = [s["completed"] for s in per_shard]
    n = sum(weights)
    merged: dict = {m: {st: None for st in STATS} for m in METRICS}
    for m in METRICS:
        for st in STATS:
            vals = [s[m][st] for s in per_shard if s[m][st] is not None]
            if not vals:
                continue
            if st == "mean":
                merged[m][st] = sum(s[m]["mean"] * wt for s, wt in zip(per_shard, weights)
                                    if s[m]["mean"] is not None) / n
            else:
                merged[m][st] = max(vals)
    simulated = {**merged, "shards_simulated": len(per_shard), "requests_simulated": n,
                 "output_tokens_per_s_per_unit": sum(s["output_tokens_per_s"] for s in per_shard) / len(per_shard),
                 "max_concurrency_per_replica": per_shard[0]["max_concurrency_per_replica"],
                 "workload": per_shard[0]["workload"]["source"].split("; ")[0]}
    misses = [f"{x.name} {merged[x.metric][x.stat]:.3g} s > {x.bound_s:g} s" for x in slos if not x.met(merged)]
    return {"ok": not misses, "reason": "; ".join(misses) if misses else None, "simulated": simulated,
            "wall_s": time.perf_counter() - t0}
