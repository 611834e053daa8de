"""``predict``: the analytical CAP answer for one model on one system.

Sections, in order: resolve the deployment; plan memory (does it fit, where each byte lives, how
many sequences); for every feasible placement the engine supports, time prefill and decode with
the cost model (:mod:`moecap_sim.perf.step`) and keep the fastest (``--offload auto``) or the
requested one; then serving metrics, S-MBU/S-MFU, bottleneck, cost, energy and accuracy.  The
result is a plain dict following the JSON contract of ``moecap-sim predict --json``.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Optional, Union

from moecap_sim.config import ServingConfig
from moecap_sim.catalog.engines import EngineSpec, default_engine_name, get_engine
from moecap_sim.deployment import Deployment, resolve_deployment
from moecap_sim.errors import UserError
from moecap_sim.memory import MemoryPlan, MemoryPolicy, plan_memory
from moecap_sim.perf.cost import CostInputs, average_power_w, hourly_cost, usd_per_million
from moecap_sim.perf.efficiency import Calibration, engine_family, load_calibration
from moecap_sim.perf.uncertainty import prediction_class, uncertainty
from moecap_sim.perf.serving import Serving, Speculation, burst, serve
from moecap_sim.perf.step import build_context
from moecap_sim.results import CONTRACT_KEYS  # the keys of the JSON contract (one home)
from moecap_sim.routing import get_routing_profile

_STRATEGY_ORDER = ("none", "cpu-experts", "expert-cache", "cpu-only", "nvme")


def _policy(engine: EngineSpec, input_len: int) -> MemoryPolicy:
    """Memory knobs of ``engine``.  Continuous-batching engines profile a full
    ``max_num_batched_tokens`` pass at start-up (vLLM, SGLang, TRT-LLM reserve that much); a
    static-batching runtime allocates activations for the largest pass it actually runs, a
    batch of whole prompts."""
    tokens = engine.max_num_batched_tokens
    if engine.batching == "static":
        tokens = min(tokens, engine.max_num_seqs * input_len)
    return MemoryPolicy(max_num_batched_tokens=tokens, max_num_seqs=engine.max_num_seqs,
                        runtime_reserve_gb=engine.runtime_reserve_gb, host_reserve_gb=engine.host_reserve_gb)


def _with_overrides(engine: EngineSpec, cfg: ServingConfig, dep: Optional[Deployment] = None) -> EngineSpec:
    """The engine preset as it configures itself on the deployment's accelerator, with the
    user's scheduler caps (``--max-num-seqs``, ``--max-num-batched-tokens``) applied."""
    if dep is not None and dep.accelerator is not None:
        engine = engine.for_device(dep.accelerator.name, dep.accelerator.usable_capacity_bytes)
    upd = {k: getattr(cfg, k) for k in ("max_num_seqs", "max_num_batched_tokens") if getattr(cfg, k) is not None}
    return engine.model_copy(update=upd) if upd else engine


def _batch_per_replica(batch: int | str, plan_seqs: int, dep: Deployment, engine: EngineSpec, notes: list) -> int:
    dp = dep.parallelism.dp
    cap = max(1, plan_seqs // dp) if plan_seqs else 1
    cap = min(cap, engine.max_num_seqs)
    if batch == "max":
        return cap
    want = -(-int(batch) // dp)  # ceil: --batch is system-wide concurrency
    if want > cap:
        notes.append(f"--batch {batch} exceeds what fits ({cap * dp} sequences: KV budget or engine max_num_seqs); "
                     f"requests beyond that queue, so the prediction uses {cap * dp}")
        return cap
    return want


def evaluate(dep: Deployment, engine: EngineSpec, placement: str, plan: MemoryPlan, batch: int | str,
             input_len: int, output_len: int, calibration: Optional[Calibration], notes: list,
             cfg: Optional[ServingConfig] = None) -> tuple[Serving, Any]:
    """Serving metrics of one (deployment, engine, placement); the cost-model entry point that
    ``simulate`` and ``plan`` share."""
    a = dep.model.arch
    routing = get_routing_profile(dep.model.name, a.num_experts, a.top_k) if a.moe_layers else None
    if routing is None:
        from moecap_sim.routing.base import UniformRouting
        routing = UniformRouting(num_experts=1, top_k=1)
    opt = next((o for o in plan.options if o.strategy == placement), None)
    seqs = opt.max_concurrent_seqs if opt else plan.max_concurrent_seqs
    d = dep if placement != "cpu-only" else replace(dep, parallelism=replace(dep.parallelism, tp=1, pp=1, ep=1, dp=1))
    ctx = build_context(d, engine, routing, placement, calibration,
                        cache_experts_per_layer=opt.expert_cache_experts_per_layer if opt else None,
                        cpu_moe_layers=opt.cpu_moe_layers if opt else None,
                        overlap_comm=bool(cfg and cfg.overlap_comm), cpu_threads=cfg.threads if cfg else None)
    b = _batch_per_replica(batch, seqs, d, engine, notes)
    spec = Speculation(cfg.mtp_draft_tokens, cfg.mtp_acceptance) if cfg is not None and cfg.mtp_draft_tokens else None
    disagg = bool(cfg and cfg.disaggregated)
    sv = serve(ctx, b, input_len, output_len, speculation=spec, disaggregated=disagg)
    if cfg is not None and cfg.max_tpot_s is not None and sv.tpot_s > cfg.max_tpot_s:
        sv = _largest_batch_within(ctx, b, input_len, output_len, spec, cfg.max_tpot_s, notes, disagg) or sv
    if cfg is not None and cfg.requests:
        per_replica = -(-cfg.requests // d.parallelism.dp)
        sv = burst(ctx, sv, per_replica, input_len, output_len, cfg.output_len_dist, spec)
        notes.append(f"closed burst of {cfg.requests} requests ({cfg.output_len_dist} output lengths): throughput "
                     f"over the makespan, the drain of the last wave included")
    return sv, ctx


def _largest_batch_within(ctx, b_max: int, input_len: int, output_len: int, spec, max_tpot_s: float,
                          notes: list, disaggregated: bool = False) -> Optional[Serving]:
    """The largest concurrency (per replica, ≤ ``b_max``) whose client TPOT stays within
    ``max_tpot_s`` — the operating point of an SLO-bound server (MLPerf Server, InferenceX
    'throughput at N tok/s per user').  TPOT grows with the batch, so bisect."""
    lo, hi, best = 1, b_max, None
    while lo <= hi:
        mid = (lo + hi) // 2
        sv = serve(ctx, mid, input_len, output_len, speculation=spec, disaggregated=disaggregated)
        if sv.tpot_s <= max_tpot_s:
            best, lo = sv, mid + 1
        else:
            hi = mid - 1
    if best is None:
        notes.append(f"--max-tpot-s {max_tpot_s:g}: even one sequence decodes slower than that; batch 1 reported")
        return None
    notes.append(f"--max-tpot-s {max_tpot_s:g}: {best.batch_per_replica} sequences per replica is the largest "
                 f"batch within the TPOT target")
    return best


def predict(model: Union[str, ServingConfig], hw: Optional[str] = None, **options: Any) -> dict[str, Any]:
    """Predict fit, placement, TTFT/TPOT/throughput, S-MBU/S-MFU, bottleneck, cost, energy and
    accuracy.  Pass a :class:`~moecap_sim.config.ServingConfig`, or ``model``, ``hw`` and any of
    its fields as keywords (lengths in tokens; ``batch`` is the system-wide number of concurrent
    sequences or ``"max"``)."""
    return predict_with_context(model, hw, search_feasible=True, **options).result


@dataclass
class Prediction:
    """A prediction plus the resolved objects ``simulate`` and ``plan`` reuse."""

    result: dict
    deployment: Deployment
    plan: MemoryPlan
    context: Optional[Any] = None  # CostContext of the chosen placement (None when it does not fit)


def _config(model: Union[str, ServingConfig], hw: Optional[str], options: dict) -> ServingConfig:
    if isinstance(model, ServingConfig):
        return replace(model, **options) if options else model
    if hw is None:
        raise UserError("predict needs a model and a system (hw)")
    return ServingConfig.from_kwargs(model, hw, **options)


#: precisions tried, in order, when searching for a deployment that runs (best_feasible)
_FEASIBLE_PRECISIONS = ("native", "fp8", "int8", "int4", "q4_k_m", "q3_k_m", "q2_k", "ud-iq1_s")


def best_feasible(cfg: ServingConfig) -> Optional[dict[str, Any]]:
    """The fastest deployment of ``cfg.model`` that runs on ``cfg.hw`` (single-stream decode
    speed decides): every placement (GPU-resident, CPU experts, expert cache, CPU-only, NVMe
    streaming) × weight precision, each with the default engine of its placement.  None when
    nothing runs at all.  Same keys as a prediction."""
    best = None
    # streaming experts from NVMe is slower than any DRAM or HBM placement: tried only when none runs
    for tier in (("none", "cpu-experts", "expert-cache", "cpu-only"), ("nvme",)):
        for prec, offload in ((p, o) for p in _FEASIBLE_PRECISIONS for o in tier):
            try:
                p = predict_with_context(replace(cfg, precision=None if prec == "native" else prec, offload=offload,
                                                 engine=None, n_cpu_moe=None, batch=1, requests=None, max_tpot_s=None),
                                         suggest=False).result
            except UserError:
                continue
            if not p["fits"]:
                continue
            eng = get_engine(p["engine"])
            if not all(eng.serves(p["precision"][g]) for g in ("experts", "attention")):
                continue  # the placement's engine has no weight path for this format
            if best is None or p["output_tokens_per_s"] > best["output_tokens_per_s"]:
                best = p
        if best is not None:
            break
    if best is not None:
        best["label"] = (f"fastest deployment that runs on {best['hardware']['name']}: "
                         f"{best['placement']['strategy']} at {best['precision']['weights_short']} "
                         f"with {best['engine']}, batch 1")
    return best


def kv_reserved_output_len(cfg: ServingConfig, engine: Optional[EngineSpec]) -> int:
    """Output tokens of KV each admitted sequence holds: the requests' max_tokens for an engine
    that reserves it at admission (``kv_reserve_max_tokens``), else the output length."""
    if cfg.max_output_len and engine is not None and engine.kv_reserve_max_tokens:
        return max(cfg.output_len, cfg.max_output_len)
    return cfg.output_len


def predict_with_context(model: Union[str, ServingConfig], hw: Optional[str] = None, *, search_feasible: bool = False,
                         suggest: bool = True, **options: Any) -> Prediction:
    """:func:`predict`, also returning the deployment, memory plan and cost-model context.
    When the requested deployment does not fit and ``search_feasible`` (what :func:`predict`
    asks for; the internal callers — simulate, plan, the published runner and its fit — skip the
    search), the result carries ``best_feasible`` (see :func:`best_feasible`).  ``suggest=False``
    skips the memory planner's "what would fit" suggestions for a deployment that does not fit
    (a search that only wants to know whether it runs)."""
    cfg = _config(model, hw, options)
    _check_config(cfg)
    requested_engine = get_engine(cfg.engine) if cfg.engine else None
    gmu = cfg.gpu_memory_utilization or (requested_engine.gpu_memory_utilization if requested_engine else
                                         get_engine("vllm").gpu_memory_utilization)
    dep = resolve_deployment(cfg.model, cfg.hw, precision=cfg.precision, kv_dtype=cfg.kv_dtype, tp=cfg.tp,
                             pp=cfg.pp, dp=cfg.dp, ep=cfg.ep, nodes=cfg.nodes, attention_dp=cfg.attention_dp,
                             gpu_memory_utilization=gmu)
    calib = (cfg.calibration if isinstance(cfg.calibration, Calibration)
             else load_calibration(cfg.calibration) if cfg.calibration else None)
    notes: list[str] = list(dep.notes)
    eng_fixed = _fixed_engine(cfg, dep)
    # memory plan: with the engine's batching limits (vLLM's when choosing automatically)
    policy = _policy(eng_fixed or _with_overrides(get_engine("vllm" if not dep.cpu_only else "llama.cpp"), cfg, dep),
                     cfg.input_len)
    plan = plan_memory(dep, input_len=cfg.input_len, output_len=kv_reserved_output_len(cfg, eng_fixed),
                       offload=cfg.offload, policy=policy,
                       batch=None if cfg.batch == "max" else int(cfg.batch), cpu_moe_layers=cfg.n_cpu_moe,
                       suggest=suggest)
    reserved = kv_reserved_output_len(cfg, eng_fixed)
    if reserved != cfg.output_len:
        notes.append(f"KV reserved at admission for {cfg.input_len} + {reserved} tokens per sequence "
                     f"({eng_fixed.display_name} admits a request only when KV for its whole max_tokens budget is "
                     f"free): concurrency {plan.max_concurrent_seqs} where paged KV would admit more")
    result = _result_header(dep, plan, cfg)
    candidates = _candidates(dep, plan, cfg.offload, eng_fixed)
    if not candidates:
        result.update({"fits": False, "placement": {"strategy": plan.placement, "reason": plan.reason},
                       "reason": _no_fit_reason(plan, cfg.offload), "suggestions": plan.suggestions,
                       "engine": eng_fixed.name if eng_fixed else None,
                       "assumptions": _assumptions(dep, None, None, notes, cfg.pricing, calib)})
        if search_feasible:
            result["best_feasible"] = best_feasible(cfg)
        return Prediction(result, dep, plan, None)

    evaluated = []
    for strategy in candidates:
        eng = eng_fixed or _with_overrides(get_engine(default_engine_name(dep.cpu_only, strategy)), cfg, dep)
        local_notes: list[str] = []
        sv, ctx = evaluate(dep, eng, strategy, plan, cfg.batch, cfg.input_len, cfg.output_len, calib, local_notes, cfg)
        evaluated.append((sv.output_tokens_per_s, strategy, eng, sv, ctx, local_notes))
    evaluated.sort(key=lambda e: -e[0])
    _, strategy, eng, sv, ctx, local_notes = evaluated[0]
    notes += local_notes
    if len(evaluated) > 1:
        notes.append("offload auto: chose " + strategy + " — fastest of " +
                     ", ".join(f"{s} ({t:.3g} output tok/s)" for t, s, *_ in evaluated))
    missing = sorted(d for d in {dep.scheme.dtype_of(g) for g in ("experts", "attention")} if not eng.serves(d))
    if missing and eng_fixed is None:
        notes.append(f"{eng.name} (chosen for the {strategy} placement) has no {', '.join(missing)} weight path; "
                     f"the prediction keeps {', '.join(missing)}-sized weights — in practice convert the checkpoint "
                     f"to one of {', '.join(eng.weight_precisions)} (--precision)")
    opt = next(o for o in plan.options if o.strategy == strategy)
    result.update({"fits": True, "engine": eng.name,
                   "placement": {"strategy": strategy, "reason": opt.reason,
                                 "expert_cache_experts_per_layer": opt.expert_cache_experts_per_layer,
                                 "alternatives": [{"strategy": s, "output_tokens_per_s": t}
                                                  for t, s, *_ in evaluated[1:]]}})
    result.update(_performance(sv, dep))
    result["workload"].update(batch_per_replica=sv.batch_per_replica,
                              concurrency=sv.batch_per_replica * dep.parallelism.dp)
    result["cost"], result["energy"] = _cost_and_energy(dep, sv, strategy, cfg, notes)
    result["assumptions"] = _assumptions(dep, eng, ctx, notes, cfg.pricing, calib)
    main_dev = dep.host_cpu if (strategy in ("cpu-only", "cpu-experts") or dep.accelerator is None) else dep.accelerator
    result["uncertainty"] = uncertainty(
        prediction_class(strategy, dep.unified_memory, dep.nodes, sv.batch_per_replica),
        f"{main_dev.efficiency_class}@{engine_family(eng.name)}")
    return Prediction(result, dep, plan, ctx)


def _check_config(cfg: ServingConfig) -> None:
    """What the configuration's own checks cannot see: the calibration file's content and
    options that contradict each other."""
    from moecap_sim.inputs import check_calibration_file

    if isinstance(cfg.calibration, str):
        check_calibration_file(cfg.calibration)
    if cfg.n_cpu_moe is not None and cfg.offload not in ("auto", "cpu-experts"):
        raise UserError(f"--n-cpu-moe keeps some layers' experts on the CPU: it needs --offload cpu-experts or auto, "
                        f"got --offload {cfg.offload}")


def _fixed_engine(cfg: ServingConfig, dep: Deployment) -> Optional[EngineSpec]:
    """The engine the user asked for, checked against the weights and placement it must serve."""
    if not cfg.engine:
        return None
    eng = _with_overrides(get_engine(cfg.engine), cfg, dep)
    unsupported = sorted(d for d in {dep.scheme.dtype_of(g) for g in ("experts", "attention")} if not eng.serves(d))
    if unsupported:
        raise UserError(f"engine {eng.name} does not serve {', '.join(unsupported)} weights "
                        f"(supported: {', '.join(eng.weight_precisions)}); choose --precision accordingly")
    off = cfg.offload
    if off != "auto" and off not in eng.offload and not (dep.cpu_only and off == "cpu-only"):
        raise UserError(f"engine {eng.name} does not support --offload {off} (it supports: {', '.join(eng.offload)})")
    return eng


def _candidates(dep: Deployment, plan: MemoryPlan, offload: str, eng_fixed: Optional[EngineSpec]) -> list[str]:
    """Placements to evaluate: the requested one if it fits; with ``auto`` GPU-resident when it
    fits (offloading would only be slower), else every feasible one but NVMe streaming."""
    if dep.cpu_only:
        return ["cpu-only"] if plan.fits else []
    if offload != "auto":
        return [offload] if any(o.strategy == offload and o.fits for o in plan.options) else []
    feasible = [o.strategy for o in plan.options if o.fits and o.strategy != "nvme"]
    if eng_fixed is not None:
        feasible = [s for s in feasible if s in eng_fixed.offload]
    if "none" in feasible:
        feasible = ["none"]
    return sorted(feasible, key=_STRATEGY_ORDER.index)


def _result_header(dep: Deployment, plan: MemoryPlan, cfg: ServingConfig) -> dict[str, Any]:
    """The contract keys that do not depend on the placement: model, hardware, precision,
    parallelism, workload, memory, routing, accuracy."""
    result: dict[str, Any] = {k: None for k in CONTRACT_KEYS}
    a = dep.model.arch
    routing = get_routing_profile(dep.model.name, a.num_experts, a.top_k) if a.moe_layers else None
    result.update({
        "model": {"name": dep.model.name, "display_name": dep.model.display_name,
                  "total_params": int(round(a.total_params)), "active_params": int(round(a.active_params()))},
        "hardware": {"name": dep.system.name, "display_name": dep.system.display_name,
                     "accelerator": dep.accelerator.name if dep.accelerator else None,
                     "count": dep.device_count, "host_cpu": dep.host_cpu.name, "host_sockets": dep.system.host.cpu.sockets},
        "precision": {"weights": dep.scheme.describe(), "weights_short": dep.scheme.name, "kv_cache": dep.kv_dtype,
                      "experts": dep.scheme.experts, "attention": dep.scheme.attention},
        "parallelism": {**dep.parallelism.as_dict(), "nodes": dep.nodes, "attention_dp": dep.attention_dp},
        "workload": {"batch": cfg.batch, "input_len": cfg.input_len, "output_len": cfg.output_len,
                     "max_output_len": cfg.max_output_len, "requests": cfg.requests, "disaggregated": cfg.disaggregated,
                     "speculative_draft_tokens": cfg.mtp_draft_tokens},
        "memory": plan.as_dict(),
        "routing": ({"kind": routing.kind, "source": routing.source} if routing
                    else {"kind": "dense", "source": "no MoE layers"}),
        "accuracy": _accuracy(dep),
    })
    return result


def _performance(sv: Serving, dep: Deployment) -> dict[str, Any]:
    """Latency, throughput, utilisation and per-phase breakdown of the chosen placement."""
    dec, pre = sv.phase_metrics["decode"], sv.phase_metrics["prefill"]
    return {
        "ttft_s": sv.ttft_s, "tpot_s": sv.tpot_s, "e2e_s": sv.e2e_s,
        "prefill_tokens_per_s": sv.prefill_tokens_per_s, "output_tokens_per_s": sv.output_tokens_per_s,
        "total_tokens_per_s": sv.total_tokens_per_s, "per_user_tokens_per_s": sv.per_user_tokens_per_s,
        "requests_per_s": sv.requests_per_s,
        "s_mbu": dec["s_mbu"], "s_mfu": dec["s_mfu"], "mbu": dec["mbu"], "mfu": dec["mfu"],
        "bottleneck": {"decode": dec["bottleneck"], "prefill": pre["bottleneck"]},
        "phases": {"decode": {**dec, "step_time_s": sv.decode_step_s, "decode_only_step_s": sv.decode_only_step_s,
                              "batch_per_replica": sv.batch_per_replica},
                   "prefill": pre},
    }


def _cost_and_energy(dep: Deployment, sv: Serving, strategy: str, cfg: ServingConfig,
                     notes: list) -> tuple[dict, dict]:
    """$/hour and $/M tokens under the pricing basis, average power and J per token."""
    dec, pre = sv.phase_metrics["decode"], sv.phase_metrics["prefill"]
    f = sv.decode_time_fraction
    acc_util = f * max(dec["s_mbu"], dec["s_mfu"]) + (1 - f) * max(pre["s_mbu"], pre["s_mfu"])
    cpu_util = 0.1
    if strategy in ("cpu-experts", "cpu-only"):
        key = "host_dram_utilisation" if strategy == "cpu-experts" else "s_mbu"
        cpu_util = max(0.1, f * dec[key] + (1 - f) * pre[key])
    power = average_power_w(dep, acc_util, cpu_util, accelerators_busy=strategy != "cpu-only")
    try:
        cost = hourly_cost(dep, CostInputs(cfg.pricing, cfg.amortize_years, cfg.usd_per_kwh, cfg.pue), power["total_w"])
    except UserError as exc:  # a user's system file without any price: performance still answers
        cost = {"usd_per_hour": None, "pricing": None, "basis": f"no price: {exc}", "notes": []}
    notes += cost.pop("notes", [])
    usd_h = cost["usd_per_hour"]
    cost["usd_per_million_output_tokens"] = usd_per_million(usd_h, sv.output_tokens_per_s) if usd_h is not None else None
    cost["usd_per_million_tokens"] = usd_per_million(usd_h, sv.total_tokens_per_s) if usd_h is not None else None
    energy = {"average_power_w": power["total_w"], "power_breakdown_w": power,
              "joules_per_output_token": power["total_w"] / sv.output_tokens_per_s,
              "joules_per_token": power["total_w"] / sv.total_tokens_per_s,
              "basis": "idle + (TDP − idle) × (0.35 + 0.65·max(S-MBU, S-MFU)) per busy accelerator; "
                       "CPUs 0.3–1.0 × TDP; chassis host_power_w (see perf/cost.py)"}
    return cost, energy


def _no_fit_reason(plan: MemoryPlan, offload: str) -> str:
    if offload != "auto":
        return f"--offload {offload}: {plan.reason}"
    offl = [o for o in plan.options if o.strategy not in ("none",)]
    parts = [f"GPU-resident: {plan.options[0].reason}"] if plan.options and plan.options[0].strategy == "none" else [plan.reason]
    for o in offl:
        if o.strategy == "nvme" and o.fits:
            parts.append("nvme: feasible only by streaming experts from NVMe (use --offload nvme to see how slow)")
        elif not o.fits:
            parts.append(f"{o.strategy}: {o.reason}")
    return "; ".join(parts)


def _assumptions(dep: Deployment, eng: Optional[EngineSpec], ctx, notes: list, pricing: str,
                 calib: Optional[Calibration]) -> dict:
    out: dict[str, Any] = {"notes": notes, "gpu_memory_utilization": dep.gpu_memory_utilization,
                           "weight_scheme": dep.scheme.describe(), "kv_dtype": dep.kv_dtype,
                           "pricing": pricing, "prices_date": dep.system.pricing.date,
                           "calibration": calib.path if calib else None}
    if ctx is not None:
        out["efficiency"] = {"accelerator": ctx.accel.eff.as_dict() if ctx.accel else None, "cpu": ctx.cpu.eff.as_dict()}
        out["engine"] = {"name": eng.name, "batching": eng.batching, "cuda_graphs": eng.cuda_graphs,
                         "moe_kernel": eng.moe_kernel, "max_num_batched_tokens": eng.max_num_batched_tokens,
                         "max_num_seqs": eng.max_num_seqs, "scheduler_overhead_ms": eng.scheduler_overhead_ms}
        unit = ctx.main
        for grp in ("experts", "attention"):
            wd = dep.scheme.dtype_of(grp)
            cd, weight_only = unit.compute_dtype(wd)
            from moecap_sim.precision import NATIVE_COMPUTE_DTYPE
            if cd != NATIVE_COMPUTE_DTYPE[wd]:
                notes.append(f"{grp} weights are {wd} but {unit.name} has no native {NATIVE_COMPUTE_DTYPE[wd]} "
                             f"tensor path: computed at {cd} after dequantization (weight-only, bytes still {wd})")
        if dep.system.host.cpu.sockets > 1 and ctx.placement in ("cpu-only", "cpu-experts"):
            notes.append(f"{dep.system.host.cpu.sockets}-socket host: {eng.name} is "
                         + ("NUMA-aware: every socket streams its own DRAM" if eng.numa_aware else
                            "not NUMA-aware: CPU work streams at about one socket's DRAM bandwidth"))
        out["ttft"] = "prefill latency of one request on an idle replica (no queueing; use `simulate` for queueing)"
        out["throughput"] = "steady state of a continuously batched server holding the batch, prefill included"
    return out


def _accuracy(dep: Deployment) -> Optional[dict]:
    try:
        from moecap_sim.accuracy import accuracy_for
    except ImportError:
        return None
    native = dep.model.native_precision
    native_main = native if isinstance(native, str) else native.get("experts", native.get("default", "bf16"))
    return accuracy_for(dep.model.name, dep.scheme.experts, native_main)
