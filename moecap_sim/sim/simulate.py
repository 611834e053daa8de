"""``simulate``: replay a request workload through the serving system in a SimPy DES.

Each DP replica is a :class:`~moecap_sim.sim.replica.Replica` run by an engine scheduler policy
(:mod:`moecap_sim.sim.schedulers`); requests are dispatched to the least-loaded replica on
arrival (or sent by closed-loop users).  Every pass replays expert routing (a real trace or the
routing profile's generative model; :mod:`moecap_sim.sim.routing`) and is costed by the same
cost model as ``predict`` on its own counts, with expert caches in simulated time for offloaded
placements.  Results: TTFT / TPOT / ITL / E2E / queueing percentiles, throughput, rejected and
preempted requests, cache hit rate, EP imbalance, overload, and $ per million tokens at the
system's hourly price.  Same inputs and seed, same result.
"""

from __future__ import annotations

import time
from dataclasses import replace
from typing import Any, Callable, Optional, Union

import numpy as np
import simpy

from moecap_sim.config import ServingConfig
from moecap_sim.errors import UserError
from moecap_sim.perf.cost import usd_per_million
from moecap_sim.perf.predictor import make_predictor
from moecap_sim.predict import predict_with_context
from moecap_sim.sim.replica import EPGroup, Replica
from moecap_sim.sim.schedulers import scheduler_for
from moecap_sim.sim.requests import Request, load_workload, parse_closed
from moecap_sim.sim.steptable import StepTable


def _pct(values) -> dict[str, Optional[float]]:
    if len(values) == 0:
        return {"mean": None, "p50": None, "p90": None, "p99": None, "max": None}
    a = np.asarray(values, dtype=float)
    return {"mean": float(a.mean()), "p50": float(np.percentile(a, 50)), "p90": float(np.percentile(a, 90)),
            "p99": float(np.percentile(a, 99)), "max": float(a.max())}


def _replays(env: simpy.Environment, ctx, replicas: int, routing: Optional[str], replay: bool, cache_policy: str,
             seed: int, res: dict, group: int = 1) -> tuple[list, list, list]:
    """Per replica: its routing replay (or None; one shared by the ``group`` DP ranks of an EP
    group that step together), the link its expert-cache misses use (each device its own host
    link; one NVMe drive shared by all), and its expert cache."""
    from moecap_sim.sim.experts import Link, make_cache
    from moecap_sim.sim.replay import Replay
    from moecap_sim.sim.routing import make_router
    from moecap_sim.sim.steptable import ReplayStepTable

    arch = ctx.dep.model.arch
    n_moe = sum(1 for l in arch.layers if l.moe is not None)
    if not replay or not n_moe:
        return [None] * replicas, [None] * replicas, []
    profile = ctx.routing
    if routing == "uniform":
        from moecap_sim.routing.base import UniformRouting

        profile, routing = UniformRouting(num_experts=arch.num_experts, top_k=arch.top_k), None
    elif routing == "profile":
        routing = None
    offloaded = ctx.placement in ("expert-cache", "nvme") and ctx.accel is not None
    table = ReplayStepTable(ctx)
    shared = Link(env, "nvme") if ctx.placement == "nvme" else None
    reps, links, caches = [], [], []
    for i in range(replicas):
        if i % group:
            reps.append(reps[-1])
            links.append(links[-1])
            continue
        router = make_router(routing, profile, n_moe, arch.num_experts, arch.top_k, seed * 1009 + i,
                             res["model"]["name"] if isinstance(res.get("model"), dict) else "")
        cache = make_cache(cache_policy, n_moe, arch.num_experts, int(ctx.cache_experts_per_layer or 0)) \
            if offloaded else None
        reps.append(Replay(router, table, ep=ctx.dep.parallelism.ep, cache=cache))
        links.append((shared or Link(env, f"host link {i}")) if offloaded else None)
        if cache is not None:
            caches.append(cache)
    return reps, links, caches


def _overloaded(done: list[Request]) -> bool:
    """The queue grows without bound: requests arriving last wait far longer than the first ones
    (median queueing of the last tenth of arrivals above 4× the first tenth's and above 1 s)."""
    if len(done) < 20:
        return False
    by_arrival = sorted(done, key=lambda r: r.arrival_s)
    n = max(2, len(by_arrival) // 10)
    early = float(np.median([r.admitted_s - r.arrival_s for r in by_arrival[:n]]))
    late = float(np.median([r.admitted_s - r.arrival_s for r in by_arrival[-n:]]))
    return late > max(1.0, 4.0 * early)


def simulate(model: Union[str, ServingConfig], hw: Optional[str] = None, *, workload: str = "poisson",
             requests: Optional[int] = None, rate: float = 1.0, seed: int = 0, rate_scale: float = 1.0,
             max_sim_time_s: Optional[float] = None, return_requests: bool = False,
             progress: Optional[Callable[[int, int], None]] = None, routing: Optional[str] = None,
             replay: bool = True, cache_policy: str = "lru", scheduler: Optional[str] = None,
             **serving: Any) -> dict[str, Any]:
    """Simulate serving ``workload`` on ``hw``; lengths in tokens, times in seconds.  The serving
    configuration is a :class:`~moecap_sim.config.ServingConfig` (or ``model``, ``hw`` and its
    fields as keywords: precision, engine, tp, nodes, ...); ``input_len``/``output_len`` also
    shape the synthetic workloads.  ``progress(done, total)`` is called as requests finish (the
    CLI draws a bar with it).

    Routing is replayed pass by pass (``replay``, default on): from the token-level trace
    ``routing`` (a ``moecap-trace/1`` file of this model), or synthesised (seeded) from the
    model's routing profile (``routing`` None or ``"profile"``) or uniform random top-k
    (``"uniform"``); an offloaded placement keeps an expert cache per replica (``cache_policy``
    ``lru`` or ``lfu``) whose misses travel over the host link.  ``replay=False`` uses the
    profile's expectations (memoized, faster, no routing variance).  ``scheduler`` names the
    engine scheduler policy (:mod:`moecap_sim.sim.schedulers`; default: ``vllm-v1`` for
    continuous-batching engines, ``static`` for static ones)."""
    from moecap_sim.inputs import SimulateArgs, check_args

    cfg = model if isinstance(model, ServingConfig) else ServingConfig.from_kwargs(model, hw or "", **serving)
    if isinstance(model, ServingConfig) and serving:
        cfg = replace(cfg, **serving)
    check_args(SimulateArgs, requests=requests, rate=rate, input_len=cfg.input_len, output_len=cfg.output_len,
               seed=seed, rate_scale=rate_scale, precision=cfg.precision, kv_dtype=cfg.kv_dtype, engine=cfg.engine,
               tp=cfg.tp, ep=cfg.ep, pp=cfg.pp, dp=cfg.dp, offload=cfg.offload,
               gpu_memory_utilization=cfg.gpu_memory_utilization, pricing=cfg.pricing,
               calibration=cfg.calibration if isinstance(cfg.calibration, str) else None,
               max_sim_time_s=max_sim_time_s)
    input_len, output_len = cfg.input_len, cfg.output_len
    if routing is not None and not replay:
        raise UserError("--routing chooses the routing replayed per pass: it cannot be combined with --no-replay")
    if routing not in (None, "profile", "uniform"):
        from moecap_sim.inputs import MAX_DATA_BYTES, check_input_file

        check_input_file(routing, "routing trace (--routing)", MAX_DATA_BYTES)
    from moecap_sim.sim.experts import POLICIES

    if cache_policy not in POLICIES:
        raise UserError(f"unknown --cache-policy '{cache_policy}': use {' or '.join(POLICIES)}")
    scheduler_for("continuous", scheduler)  # an unknown --scheduler fails before any work
    reqs, desc = load_workload(workload, requests=requests, rate=rate, input_len=input_len, output_len=output_len,
                               seed=seed, rate_scale=rate_scale)
    mean_in = int(round(np.mean([r.input_tokens for r in reqs])))
    mean_out = int(round(np.mean([r.output_tokens for r in reqs])))
    closed = parse_closed(workload)
    # the planner sizes KV (and an expert cache) for the concurrency: N closed-loop users, else the most that fit
    pred = predict_with_context(replace(cfg, batch=closed.users if closed else "max", input_len=mean_in,
                                        output_len=mean_out, requests=None, max_tpot_s=None))
    res = pred.result
    if not res["fits"]:
        return {"fits": False, "reason": res.get("reason"), "suggestions": res.get("suggestions"),
                "model": res["model"], "hardware": res["hardware"], "workload": {"source": desc, "requests": len(reqs)}}
    ctx = pred.context
    dep = ctx.dep
    eng = ctx.engine
    replicas_n = dep.parallelism.dp if ctx.placement != "cpu-only" else 1
    opt = next(o for o in pred.plan.options if o.strategy == ctx.placement)
    seqs_per_replica = max(1, min(eng.max_num_seqs, opt.max_concurrent_seqs // max(1, replicas_n)))
    # KV room in tokens per replica, from the planner's budget (sequences of the mean length)
    kv_tokens = max(1, opt.max_concurrent_seqs // max(1, replicas_n)) * (mean_in + mean_out)
    policy = scheduler_for(eng.batching, scheduler, eng.name)
    # a request whose prompt + output can never fit a replica's KV is rejected and counted
    rejected = [r for r in reqs if r.input_tokens + r.output_tokens > kv_tokens]
    served = [r for r in reqs if r.input_tokens + r.output_tokens <= kv_tokens]
    table = StepTable(make_predictor("analytical", ctx))
    env = simpy.Environment()
    # attention DP + EP: the DP ranks of one EP group (ep/tp of them) step together
    par = dep.parallelism
    pp = par.pp if ctx.placement != "cpu-only" else 1
    gsize = par.ep // par.tp if (par.ep > par.tp and replicas_n > 1 and pp == 1) else 1
    replays, links, caches = _replays(env, ctx, replicas_n, routing, replay, cache_policy, seed, res, gsize)
    finished: list[Request] = []

    user_done: dict[int, simpy.Event] = {}

    def on_finish(r: Request) -> None:  # reports progress without adding simulation events
        finished.append(r)
        if r.rid in user_done:
            user_done.pop(r.rid).succeed()
        if progress is not None:
            progress(len(finished), len(served))
    # a paged scheduler admits on KV blocks up to the engine's cap; the others reserve whole requests
    slots = eng.max_num_seqs if policy.paged else seqs_per_replica
    # pipeline parallelism: each replica runs `pp` micro-batch lanes (vLLM's virtual engines) that
    # share its KV pool and flow through its `pp` stages
    groups = [EPGroup(env, replays[g * gsize]) for g in range(replicas_n // gsize)] if gsize > 1 else []
    reps = []
    for i in range(replicas_n):
        if pp > 1:
            blocks = max(1, int(kv_tokens // policy.block_tokens))
            kv = simpy.Container(env, capacity=blocks, init=blocks)
            stages = [simpy.Resource(env, capacity=1) for _ in range(pp)]
        else:
            kv, stages = None, ()
        for j in range(pp):
            reps.append(Replica(env, len(reps), table, scheduler=policy, max_seqs=max(1, slots // pp),
                                kv_capacity_tokens=kv_tokens, chunk_tokens=eng.max_num_batched_tokens,
                                on_finish=on_finish, replay=replays[i], link=links[i], kv=kv, stages=stages,
                                group=groups[i // gsize] if groups else None))

    def arrivals():
        for r in served:
            wait = r.arrival_s - env.now
            if wait > 0:
                yield env.timeout(wait)
            dispatch(r)

    def user(u: int, mine: list[Request]):
        """One closed-loop user: send a request, wait for it to finish, think, repeat."""
        for r in mine:
            r.arrival_s = env.now
            user_done[r.rid] = env.event()
            dispatch(r)
            yield user_done[r.rid]
            if closed.think_s:
                yield env.timeout(closed.think_s)

    def dispatch(r: Request) -> None:
        min(reps, key=lambda x: (x.load, x.index)).submit(r)

    if closed is not None:
        for u in range(closed.users):
            env.process(user(u, served[u::closed.users]))
    else:
        env.process(arrivals())
    wall0 = time.perf_counter()
    env.run(until=max_sim_time_s) if max_sim_time_s else env.run()
    wall = time.perf_counter() - wall0
    done = [r for r in finished if r.finished_s is not None]
    t0 = min((r.arrival_s for r in reqs if r.arrival_s == r.arrival_s), default=0.0)  # NaN: never sent
    t_end = max((r.finished_s for r in done), default=env.now)
    makespan = max(1e-12, t_end - t0)
    out_tokens = sum(r.generated for r in reqs)
    in_tokens = sum(r.input_tokens for r in done)
    ttft = [r.first_token_s - r.arrival_s for r in done]
    tpot = [(r.finished_s - r.first_token_s) / (r.output_tokens - 1) for r in done if r.output_tokens > 1]
    e2e = [r.finished_s - r.arrival_s for r in done]
    queue = [r.admitted_s - r.arrival_s for r in done]
    itl = np.concatenate([np.diff(r.token_times) for r in done if len(r.token_times) > 1] or [np.zeros(0)])
    overloaded = _overloaded(done)
    cache_json = None
    if caches:
        hits, misses = sum(c.hits for c in caches), sum(c.misses for c in caches)
        uniq_links = {id(l): l for l in links if l is not None}.values()
        cache_json = {"policy": cache_policy, "scope": "per device, per MoE layer",
                      "capacity_experts_per_layer": caches[0].capacity,
                      "hit_rate": hits / (hits + misses) if hits + misses else None, "hits": hits, "misses": misses,
                      "bytes_fetched": sum(l.bytes for l in uniq_links),
                      "link_busy_fraction": max(l.busy_s for l in uniq_links) / makespan,
                      "prefetch": bool(eng.prefetch)}
    replay_json = None
    if replays and replays[0] is not None:
        sums = [rp.summary() for rp in {id(r): r for r in replays}.values()]
        imb = [x["ep_imbalance"] for x in sums if x["ep_imbalance"] is not None]
        dist = [x["mean_distinct_experts_per_layer"] for x in sums if x["mean_distinct_experts_per_layer"] is not None]
        replay_json = {"source": replays[0].router.source, "passes": sum(x["passes"] for x in sums),
                       "mean_distinct_experts_per_layer": float(np.mean(dist)) if dist else None,
                       "cost_model_evaluations": replays[0].table.calls}
    usd_h = res["cost"]["usd_per_hour"]
    out_tps = out_tokens / makespan
    busy = [rp.busy_s / makespan for rp in reps]
    summary = {
        "fits": True, "model": res["model"], "hardware": res["hardware"], "engine": eng.name,
        "placement": res["placement"]["strategy"], "parallelism": res["parallelism"],
        "precision": res["precision"], "routing": res["routing"],
        "workload": {"source": desc, "requests": len(reqs), "mean_input_tokens": mean_in, "mean_output_tokens": mean_out,
                     "offered_rate_req_s": len(reqs) / max(1e-12, reqs[-1].arrival_s - t0)
                     if len(reqs) > 1 and closed is None else None},
        "requests_total": len(reqs), "requests_completed": len(done), "requests_rejected": len(rejected),
        "requests_preempted": sum(1 for r in reqs if r.preempted), "preemptions": sum(rp.preemptions for rp in reps),
        "completed": len(done), "output_tokens": out_tokens, "makespan_s": makespan,
        "ttft_s": _pct(ttft), "tpot_s": _pct(tpot), "itl_s": _pct(itl), "e2e_s": _pct(e2e), "queueing_s": _pct(queue),
        "output_tokens_per_s": out_tps, "total_tokens_per_s": (out_tokens + in_tokens) / makespan,
        "requests_per_s": len(done) / makespan,
        "replica_busy_fraction": busy, "max_concurrency_per_replica": seqs_per_replica,
        "kv_capacity_tokens_per_replica": kv_tokens,
        "routing_replay": replay_json, "expert_cache": cache_json,
        "ep_imbalance": (float(np.mean(imb)) if imb else None) if replay_json else None,
        "overloaded": overloaded,
        "steps": {"prefill_passes": sum(r.prefill_passes for r in reps), "decode_steps": sum(r.decode_steps for r in reps),
                  "cost_model_evaluations": table.calls},
        "cost": {"usd_per_hour": usd_h, "basis": res["cost"]["basis"],
                 "usd_per_million_output_tokens": usd_per_million(usd_h, out_tps) if (out_tps and usd_h) else None,
                 "meaningful": not overloaded,
                 "note": ("OVERLOADED: the queue grows without bound, so $/token is not a valid operating point; "
                          if overloaded else "") + "the system is paid for the whole makespan, idle or not"},
        "simulation": {"wall_time_s": wall, "seed": seed, "simulated_s": makespan},
        "steady_state_prediction": {k: res[k] for k in ("output_tokens_per_s", "ttft_s", "tpot_s")},
        "scheduler": policy.name,
        "assumptions": {"scheduler": (policy.__class__.__doc__ or policy.name).strip().split("\n\n")[0],
                        "dispatch": "least-loaded replica", "notes": res["assumptions"]["notes"]},
    }
    if return_requests:
        summary["_requests"] = reqs
        summary["_timeseries"] = {"replicas": [rp.trace for rp in reps],
                                  "cache_times": [[t for t, *_ in rp.trace] for rp in reps],
                                  "caches": [rp.replay.cache.history if rp.replay is not None and
                                             rp.replay.cache is not None else None for rp in reps]}
    return summary


def plot_timeseries(summary: dict, series: dict, path: str) -> str:
    """Queue length (waiting and running, replica 0) and expert-cache hit rate (per 100 passes)
    over simulated time, as a PNG (matplotlib, Agg)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    trace = np.asarray(series["replicas"][0] or [(0.0, 0, 0)], dtype=float)
    cache = series["caches"][0]
    fig, axes = plt.subplots(1, 2 if cache else 1, figsize=(13 if cache else 7, 3.8), squeeze=False)
    ax = axes[0][0]
    ax.plot(trace[:, 0], trace[:, 1], lw=1, label="waiting")
    ax.plot(trace[:, 0], trace[:, 2], lw=1, label="running")
    ax.set_xlabel("simulated time (s)")
    ax.set_ylabel("requests (replica 0)")
    ax.legend()
    ax.grid(alpha=0.3)
    if cache:
        h = np.asarray(cache, dtype=float)
        t = np.asarray(series["cache_times"][0][: len(h)])
        w = 100
        hits, miss = h[w:, 0] - h[:-w, 0], h[w:, 1] - h[:-w, 1]
        rate = np.divide(hits, hits + miss, out=np.zeros_like(hits), where=(hits + miss) > 0)
        ax2 = axes[0][1]
        ax2.plot(t[w:], rate, lw=1)
        ax2.set_ylim(0, 1)
        ax2.set_xlabel("simulated time (s)")
        ax2.set_ylabel(f"expert-cache hit rate (last {w} passes)")
        ax2.grid(alpha=0.3)
    from moecap_sim.inputs import finish_figure

    return finish_figure(fig, path, f"{summary['model']['display_name']} on {summary['hardware']['name']} — "
                                    "queue and expert cache")


def plot_cdfs(summary: dict, requests: list[Request], path: str) -> str:
    """TTFT / TPOT / E2E CDFs as a PNG (matplotlib, Agg)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    done = [r for r in requests if r.finished_s is not None]
    series = {"TTFT": [r.first_token_s - r.arrival_s for r in done],
              "TPOT": [(r.finished_s - r.first_token_s) / (r.output_tokens - 1) for r in done if r.output_tokens > 1],
              "E2E": [r.finished_s - r.arrival_s for r in done]}
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8))
    for ax, (name, vals) in zip(axes, series.items()):
        v = np.sort(np.asarray(vals))
        ax.plot(v, np.arange(1, len(v) + 1) / len(v), lw=2)
        ax.set_xlabel(f"{name} (s)")
        ax.set_ylabel("fraction of requests")
        ax.grid(alpha=0.3)
        ax.set_title(f"{name}: p50 {np.percentile(v, 50):.3g}s, p99 {np.percentile(v, 99):.3g}s", fontsize=10)
    from moecap_sim.inputs import finish_figure

    return finish_figure(fig, path, f"{summary['model']['display_name']} on {summary['hardware']['name']} — "
                                    f"{summary['workload']['source']}")
