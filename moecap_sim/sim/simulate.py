"""``simulate``: replay a request workload through the serving system in a SimPy DES.

Each DP replica is a :class:`~moecap_sim.sim.replica.Replica`; requests are dispatched to the
least-loaded replica on arrival.  Step times come from the same cost model as ``predict``
(memoized in :class:`~moecap_sim.sim.steptable.StepTable`), including the routing profile
fitted to a real trace where the model has one.  Results: TTFT / TPOT / E2E / queueing
percentiles, throughput over the run, utilisation, and $ per million tokens at the system's
hourly price.  Same inputs and seed, same result.
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
from moecap_sim.sim.replica import Replica
from moecap_sim.sim.requests import Request, load_workload
from moecap_sim.sim.steptable import StepTable


def _pct(values: list[float]) -> dict[str, Optional[float]]:
    if not values:
        return {"mean": None, "p50": None, "p90": None, "p99": None, "max": None}
    a = np.asarray(values, dtype=float)
    return {"mean": float(a.mean()), "p50": float(np.percentile(a, 50)), "p90": float(np.percentile(a, 90)),
            "p99": float(np.percentile(a, 99)), "max": float(a.max())}


def simulate(model: Union[str, ServingConfig], hw: Optional[str] = None, *, workload: str = "poisson",
             requests: Optional[int] = None, rate: float = 1.0, seed: int = 0, rate_scale: float = 1.0,
             max_sim_time_s: Optional[float] = None, return_requests: bool = False,
             progress: Optional[Callable[[int, int], None]] = None, **serving: Any) -> dict[str, Any]:
    """Simulate serving ``workload`` on ``hw``; lengths in tokens, times in seconds.  The serving
    configuration is a :class:`~moecap_sim.config.ServingConfig` (or ``model``, ``hw`` and its
    fields as keywords: precision, engine, tp, nodes, ...); ``input_len``/``output_len`` also
    shape the synthetic workloads.  ``progress(done, total)`` is called as requests finish (the
    CLI draws a bar with it)."""
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
    reqs, desc = load_workload(workload, requests=requests, rate=rate, input_len=input_len, output_len=output_len,
                               seed=seed, rate_scale=rate_scale)
    mean_in = int(round(np.mean([r.input_tokens for r in reqs])))
    mean_out = int(round(np.mean([r.output_tokens for r in reqs])))
    pred = predict_with_context(replace(cfg, batch="max", input_len=mean_in, output_len=mean_out, requests=None,
                                        max_tpot_s=None))
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
    kv_tokens = seqs_per_replica * (mean_in + mean_out)  # KV room in tokens, from the planner's budget
    max_len = max(r.input_tokens + r.output_tokens for r in reqs)
    too_long = [r.rid for r in reqs if r.input_tokens + r.output_tokens > kv_tokens]
    if too_long:
        raise UserError(f"{len(too_long)} request(s) need more KV than a replica holds ({kv_tokens:.0f} tokens; "
                        f"longest request {max_len} tokens): use a smaller workload or a bigger system")
    table = StepTable(make_predictor("analytical", ctx))
    env = simpy.Environment()
    finished: list[Request] = []

    def on_finish(r: Request) -> None:  # reports progress without adding simulation events
        finished.append(r)
        if progress is not None:
            progress(len(finished), len(reqs))
    reps = [Replica(env, i, table, batching=eng.batching, max_seqs=seqs_per_replica, kv_capacity_tokens=kv_tokens,
                    chunk_tokens=eng.max_num_batched_tokens, on_finish=on_finish) for i in range(replicas_n)]

    def arrivals():
        for r in reqs:
            wait = r.arrival_s - env.now
            if wait > 0:
                yield env.timeout(wait)
            min(reps, key=lambda x: (x.load, x.index)).submit(r)

    env.process(arrivals())
    wall0 = time.perf_counter()
    env.run(until=max_sim_time_s) if max_sim_time_s else env.run()
    wall = time.perf_counter() - wall0
    done = [r for r in finished if r.finished_s is not None]
    t0 = min(r.arrival_s for r in reqs)
    t_end = max((r.finished_s for r in done), default=env.now)
    makespan = max(1e-12, t_end - t0)
    out_tokens = sum(r.generated for r in reqs)
    in_tokens = sum(r.input_tokens for r in done)
    ttft = [r.first_token_s - r.arrival_s for r in done]
    tpot = [(r.finished_s - r.first_token_s) / (r.output_tokens - 1) for r in done if r.output_tokens > 1]
    e2e = [r.finished_s - r.arrival_s for r in done]
    queue = [r.admitted_s - r.arrival_s for r in done]
    usd_h = res["cost"]["usd_per_hour"]
    out_tps = out_tokens / makespan
    busy = [rp.busy_s / makespan for rp in reps]
    summary = {
        "fits": True, "model": res["model"], "hardware": res["hardware"], "engine": eng.name,
        "placement": res["placement"]["strategy"], "parallelism": res["parallelism"],
        "precision": res["precision"], "routing": res["routing"],
        "workload": {"source": desc, "requests": len(reqs), "mean_input_tokens": mean_in, "mean_output_tokens": mean_out,
                     "offered_rate_req_s": len(reqs) / max(1e-12, reqs[-1].arrival_s - t0) if len(reqs) > 1 else None},
        "completed": len(done), "output_tokens": out_tokens, "makespan_s": makespan,
        "ttft_s": _pct(ttft), "tpot_s": _pct(tpot), "e2e_s": _pct(e2e), "queueing_s": _pct(queue),
        "output_tokens_per_s": out_tps, "total_tokens_per_s": (out_tokens + in_tokens) / makespan,
        "requests_per_s": len(done) / makespan,
        "replica_busy_fraction": busy, "max_concurrency_per_replica": seqs_per_replica,
        "steps": {"prefill_passes": sum(r.prefill_passes for r in reps), "decode_steps": sum(r.decode_steps for r in reps),
                  "cost_model_evaluations": table.calls},
        "cost": {"usd_per_hour": usd_h, "basis": res["cost"]["basis"],
                 "usd_per_million_output_tokens": usd_per_million(usd_h, out_tps) if (out_tps and usd_h) else None,
                 "note": "the system is paid for the whole makespan, idle or not"},
        "simulation": {"wall_time_s": wall, "seed": seed, "simulated_s": makespan},
        "steady_state_prediction": {k: res[k] for k in ("output_tokens_per_s", "ttft_s", "tpot_s")},
        "assumptions": {"scheduler": "prefill-first continuous batching; KV reserved for prompt+output at admission"
                        if eng.batching == "continuous" else "static batches padded to the longest request",
                        "dispatch": "least-loaded replica", "notes": res["assumptions"]["notes"]},
    }
    if return_requests:
        summary["_requests"] = reqs
    return summary


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
    fig.suptitle(f"{summary['model']['display_name']} on {summary['hardware']['name']} — {summary['workload']['source']}",
                 fontsize=10)
    fig.tight_layout()
    from moecap_sim.inputs import atomic_savefig

    try:
        atomic_savefig(fig, path, dpi=110)
    finally:
        plt.close(fig)
    return path
