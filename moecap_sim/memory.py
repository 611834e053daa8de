"""Memory planner: does a deployment fit, where does each byte live, how many sequences fit.

Engine-faithful accounting, per accelerator (vLLM's model):

    usable   = capacity × gpu_memory_utilization
    kv_budget = usable − weights − activation_peak − runtime_reserve
    max_seqs = floor(kv_budget / kv_bytes_per_sequence(input_len + output_len)) × DP replicas

* weights: attention/dense/shared tensors split over TP (and layers over PP); routed experts
  split over max(TP, EP) ranks; embeddings and LM head vocab-parallel over TP.
* KV: GQA heads split over TP but never below one KV head per rank (replicated when
  kv_heads < TP); the MLA latent is *replicated* on every TP rank (it has no head axis);
  sliding-window/chunked layers hold at most their window; linear-attention layers a constant
  state per sequence.
* activation peak: the engine profiles a forward of ``max_num_batched_tokens`` tokens; we count
  the residual stream, QKV, the fused-MoE intermediate (top-k copies of 2·moe_inter + hidden)
  and fp32 logits for ``max_num_seqs`` sampled rows.
* runtime reserve: CUDA context, cuBLAS/NCCL workspaces and CUDA-graph pools outside
  PyTorch's allocator (default 1.5 GB per GPU; see :class:`MemoryPolicy`).

When the weights do not fit, each offload placement is checked: ``expert-cache`` (experts in
pinned host DRAM, an LRU cache of them on the GPU, fetched over PCIe), ``cpu-experts``
(routed experts stay in DRAM and the CPU computes them), ``cpu-only`` and ``nvme`` (experts
streamed from NVMe through DRAM).  All sizes in GB (1e9 bytes).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Optional

from moecap_sim.config import OFFLOAD_STRATEGIES  # noqa: F401  (re-exported: the planner's placements)
from moecap_sim.deployment import Deployment
from moecap_sim.units import GB



@dataclass(frozen=True)
class MemoryPolicy:
    """Engine memory knobs.  Defaults follow vLLM V1: ``max_num_batched_tokens`` 8192,
    ``max_num_seqs`` 256; reserve 1.5 GB (CUDA context ≈0.5 GB + NCCL/cuBLAS workspaces +
    CUDA graphs, measured by vLLM as non-torch memory); host keeps 10% of DRAM for the OS."""

    max_num_batched_tokens: int = 8192
    max_num_seqs: int = 256
    runtime_reserve_gb: float = 1.5
    host_reserve_fraction: float = 0.10
    #: an absolute host reserve instead of the fraction (engines whose weights are mmap'd into the
    #: page cache need only the OS's few GB)
    host_reserve_gb: Optional[float] = None

    def host_usable_bytes(self, dram_gb: float) -> float:
        """Host DRAM the placement may fill — the one home of the host reserve."""
        if self.host_reserve_gb is not None:
            return max(0.0, (dram_gb - self.host_reserve_gb) * GB)
        return dram_gb * GB * (1 - self.host_reserve_fraction)
    min_cached_layers: int = 2  # expert cache must hold the active experts of this many layers


@dataclass
class PlacementOption:
    strategy: str
    fits: bool
    device_gb: float  # per accelerator
    host_gb: float
    nvme_gb: float = 0.0
    max_concurrent_seqs: int = 0
    expert_cache_experts_per_layer: Optional[float] = None
    cpu_moe_layers: Optional[int] = None  # cpu-experts: MoE layers whose routed experts the CPU computes
    reason: str = ""


@dataclass
class MemoryPlan:
    fits: bool  # the chosen placement is feasible
    fits_on_devices: bool  # all weights resident in accelerator memory
    placement: str
    reason: str
    capacity_gb: float  # per accelerator (or host DRAM for CPU-only)
    usable_gb: float
    weights_gb: float  # per accelerator, GPU-resident placement
    weights_total_gb: float
    expert_weights_total_gb: float
    activation_gb: float
    reserve_gb: float
    kv_budget_gb: float
    kv_bytes_per_token: float  # whole model, per token of context (all layers, unsharded)
    kv_gb_per_sequence: float  # per device (after TP sharding / replication)
    max_concurrent_seqs: int  # whole system (all DP replicas)
    host_dram_gb: float
    options: list[PlacementOption] = field(default_factory=list)
    suggestions: list[str] = field(default_factory=list)
    weights_by_group_gb: dict = field(default_factory=dict)

    def as_dict(self) -> dict:
        return asdict(self)


# ------------------------------------------------------------------------------------------
# pure byte counts
# ------------------------------------------------------------------------------------------

def weight_bytes_by_group(dep: Deployment) -> dict[str, float]:
    """Bytes of every tensor group for the whole model, in the deployment's weight scheme."""
    return {g: p * dep.scheme.bytes_per_param(g) for g, p in dep.model.arch.params_by_group().items()}


def device_weight_bytes(dep: Deployment, include_experts: bool = True, include_shared: bool = True) -> float:
    """Weight bytes on the most loaded accelerator for the GPU-resident layout."""
    par = dep.parallelism
    b = weight_bytes_by_group(dep)
    layer_dense = b["attention"] + b["dense_ffn"] + b["other"] + (b["shared_experts"] if include_shared else 0.0)
    per_dev = layer_dense / (par.tp * par.pp) + b["router"] / par.pp
    if include_experts:
        per_dev += b["experts"] / (par.expert_shards * par.pp)
    vocab = (b["embeddings"] + b["lm_head"]) if par.pp == 1 else max(b["embeddings"], b["lm_head"])
    return per_dev + vocab / par.tp


def kv_bytes_per_sequence_per_device(dep: Deployment, context: int) -> float:
    """KV cache (and recurrent state) of one sequence of ``context`` tokens on one accelerator."""
    par = dep.parallelism
    total = 0.0
    for layer in dep.model.arch.layers:
        if layer.role == "encoder":
            continue
        a = layer.attention
        if a.kind == "linear":
            total += a.state_elems * 4.0 / par.tp  # fp32 state, heads split over TP
            continue
        elems = a.kv_elems_per_token_per_rank(par.tp)
        tokens = min(context, a.window) if a.window else context
        if a.cross_attention_params:
            tokens += context  # encoder-decoder: cross-attention KV over the input
        total += elems * dep.kv_bytes * tokens
    return total / par.pp


def activation_peak_bytes(dep: Deployment, policy: MemoryPolicy) -> float:
    """Peak transient memory of one profiled forward pass of ``max_num_batched_tokens``."""
    arch = dep.model.arch
    t = policy.max_num_batched_tokens
    h = arch.hidden_size
    act_b = 2.0  # activations in 16-bit
    a0 = arch.layers[0].attention
    qkv = (a0.num_heads * a0.head_dim + 2 * a0.num_kv_heads * a0.v_head_dim) / dep.parallelism.tp
    moe_tmp = 0.0
    if arch.moe_layers:
        m = arch.moe_layers[0].moe
        inter = m.intermediate_size(h)
        moe_tmp = m.top_k * (2 * inter / dep.parallelism.tp + h)
    dense_tmp = max((l.dense_ffn_params / (3 * h) for l in arch.layers), default=0.0) * 2 / dep.parallelism.tp
    per_token = 4 * h + qkv + max(moe_tmp, dense_tmp)
    logits = min(policy.max_num_seqs, t) * arch.vocab_size / dep.parallelism.tp * 4.0
    return t * per_token * act_b + logits


# ------------------------------------------------------------------------------------------
# the planner
# ------------------------------------------------------------------------------------------

def plan_memory(dep: Deployment, *, input_len: int = 1024, output_len: int = 256,
                offload: str = "auto", policy: Optional[MemoryPolicy] = None,
                suggest: bool = True, batch: Optional[int] = None,
                cpu_moe_layers: Optional[int] = None) -> MemoryPlan:
    """Plan where weights and KV live for ``dep`` and how many sequences fit.

    ``offload``: ``auto`` (GPU-resident if it fits, else the first feasible of cpu-experts,
    expert-cache, cpu-only; the cost model may re-rank by speed), ``none`` or one strategy.
    ``batch``: target concurrency (system-wide); with an expert cache, KV is reserved for that
    many sequences and the rest of device memory caches experts (None = as many as fit).
    ``cpu_moe_layers``: for ``cpu-experts``, how many MoE layers keep their routed experts in
    DRAM (llama.cpp ``--n-cpu-moe``); the other layers' experts live on the accelerators.  None =
    all of them (KTransformers' default).
    """
    policy = policy or MemoryPolicy()
    par = dep.parallelism
    ctx = input_len + output_len
    wb = weight_bytes_by_group(dep)
    w_total = sum(wb.values())
    experts_total = wb["experts"]
    host = dep.system.host
    host_usable = policy.host_usable_bytes(host.dram_gb)
    nvme = (host.nvme_gb or 0.0) * GB

    if dep.cpu_only:
        return _plan_cpu_only_system(dep, policy, ctx, wb, w_total, experts_total, host_usable, suggest, input_len, output_len)

    cap = dep.accelerator.usable_capacity_bytes
    usable = cap * dep.gpu_memory_utilization
    reserve = policy.runtime_reserve_gb * GB
    act = activation_peak_bytes(dep, policy)
    w_dev = device_weight_bytes(dep)
    kv_seq = kv_bytes_per_sequence_per_device(dep, ctx)
    kv_budget = usable - w_dev - act - reserve
    replicas = par.dp

    def seqs(budget: float) -> int:
        if budget <= 0 or kv_seq <= 0:
            return 0
        return int(min(policy.max_num_seqs, budget // kv_seq)) * replicas

    options: list[PlacementOption] = []
    gpu_seqs = seqs(kv_budget)
    fits_dev = kv_budget > 0 and gpu_seqs >= replicas
    if fits_dev:
        gpu_reason = f"weights {w_dev / GB:.1f} GB + activations {act / GB:.1f} GB + reserve {reserve / GB:.1f} GB leave {kv_budget / GB:.1f} GB for KV per device"
    elif w_dev + act + reserve > usable:
        gpu_reason = (f"weights need {w_dev / GB:.1f} GB per device (+{(act + reserve) / GB:.1f} GB activations and reserve) "
                      f"but {dep.gpu_memory_utilization:.0%} of {cap / GB:.0f} GB = {usable / GB:.1f} GB is usable")
    else:
        gpu_reason = f"weights fit but the {kv_budget / GB:.2f} GB left cannot hold one {ctx}-token sequence ({kv_seq / GB:.2f} GB)"
    options.append(PlacementOption("none", fits_dev, (w_dev + act + reserve) / GB, 0.0, max_concurrent_seqs=gpu_seqs,
                                   reason=gpu_reason))

    has_moe = bool(dep.model.arch.moe_layers)
    dense_dev = device_weight_bytes(dep, include_experts=False)
    if has_moe and not dep.unified_memory:
        # cpu-experts: routed experts (of all MoE layers, or of cpu_moe_layers of them) in DRAM,
        # computed by the CPU; the other layers' experts stay on the accelerators
        n_moe = len(dep.model.arch.moe_layers)
        k = n_moe if cpu_moe_layers is None else min(n_moe, cpu_moe_layers)
        gpu_experts_dev = experts_total * (n_moe - k) / n_moe / (par.expert_shards * par.pp)
        host_experts = experts_total * k / n_moe
        budget = usable - dense_dev - gpu_experts_dev - act - reserve
        n = seqs(budget)
        ok_host = host_experts <= host_usable
        ok = ok_host and n >= replicas
        reason = _why(ok_host, host_experts, host_usable, "routed experts", "host DRAM", budget, kv_seq, n, replicas)
        if k < n_moe:
            reason += f"; experts of {n_moe - k} of {n_moe} MoE layers on the accelerators"
        options.append(PlacementOption("cpu-experts", ok, (dense_dev + gpu_experts_dev + act + reserve) / GB,
                                       host_experts / GB, max_concurrent_seqs=n, cpu_moe_layers=k, reason=reason))
        # expert-cache: experts in pinned DRAM, an LRU cache on the GPU
        arch = dep.model.arch
        moe_layers_dev = len(arch.moe_layers) / par.pp
        expert_b = arch.expert_params * dep.scheme.bytes_per_param("experts") / par.expert_shards
        min_cache = policy.min_cached_layers * arch.top_k * expert_b
        budget = usable - dense_dev - act - reserve - min_cache
        # KV for the requested concurrency first (at least one sequence), the rest is cache
        n = seqs(budget)
        want = n // max(1, replicas) if batch is None else -(-batch // max(1, replicas))
        kv_keep = kv_seq * max(1, min(n // max(1, replicas), want, policy.max_num_seqs))
        cache_bytes = max(0.0, usable - dense_dev - act - reserve - kv_keep)
        # a device caches its shard (1/TP) of any expert its EP rank owns (E/EP of them)
        per_layer = min(arch.num_experts / max(1, par.ep), cache_bytes / expert_b / max(1.0, moe_layers_dev))
        ok = ok_host and n >= replicas
        reason = _why(ok_host, experts_total, host_usable, "routed experts", "host DRAM", budget, kv_seq, n, replicas)
        if ok:
            reason += (f"; with KV reserved for {int(round(kv_keep / kv_seq)) * replicas} sequence(s) the GPU expert cache "
                       f"holds {per_layer:.1f} experts per layer per device")
        options.append(PlacementOption("expert-cache", ok, (dense_dev + act + reserve + min_cache) / GB,
                                       experts_total / GB, max_concurrent_seqs=n,
                                       expert_cache_experts_per_layer=per_layer, reason=reason))
        # nvme: experts on NVMe, streamed through DRAM into the GPU cache
        ok_nvme = nvme >= experts_total and budget > 0 and n >= replicas
        options.append(PlacementOption(
            "nvme", ok_nvme, (dense_dev + act + reserve + min_cache) / GB, min(experts_total, host_usable) / GB,
            nvme_gb=experts_total / GB, max_concurrent_seqs=n if ok_nvme else 0, expert_cache_experts_per_layer=per_layer,
            reason=("experts streamed from NVMe (" + f"{(host.nvme_bandwidth_gb_s or 0):.1f} GB/s): feasible but slow"
                    if ok_nvme else f"needs {experts_total / GB:.0f} GB of NVMe, system has {nvme / GB:.0f} GB")))
    if not dep.unified_memory:
        kv_host = kv_bytes_per_sequence_per_device(_unsharded(dep), ctx)
        budget = host_usable - w_total
        n = int(min(policy.max_num_seqs, budget // kv_host)) if budget > 0 and kv_host > 0 else 0
        ok = n >= 1
        options.append(PlacementOption("cpu-only", ok, 0.0, (w_total + max(n, 1) * kv_host) / GB,
                                       max_concurrent_seqs=n,
                                       reason=_why(w_total <= host_usable, w_total, host_usable, "all weights", "host DRAM",
                                                   budget, kv_host, n, 1)))

    chosen = _choose(options, offload)
    plan = MemoryPlan(
        fits=chosen.fits, fits_on_devices=fits_dev, placement=chosen.strategy, reason=chosen.reason,
        capacity_gb=cap / GB, usable_gb=usable / GB, weights_gb=w_dev / GB, weights_total_gb=w_total / GB,
        expert_weights_total_gb=experts_total / GB, activation_gb=act / GB, reserve_gb=reserve / GB,
        kv_budget_gb=max(0.0, kv_budget) / GB, kv_bytes_per_token=dep.model.arch.kv_bytes_per_token(dep.kv_bytes, ctx),
        kv_gb_per_sequence=kv_seq / GB, max_concurrent_seqs=chosen.max_concurrent_seqs, host_dram_gb=host.dram_gb,
        options=options, weights_by_group_gb={g: v / GB for g, v in wb.items()})
    if suggest and not fits_dev:
        plan.suggestions = suggest_changes(dep, input_len=input_len, output_len=output_len, policy=policy, plan=plan)
    return plan


def _unsharded(dep: Deployment) -> Deployment:
    from dataclasses import replace
    from moecap_sim.deployment import Parallelism
    return replace(dep, parallelism=Parallelism())


def _why(ok_host: bool, need: float, have: float, what: str, where: str, budget: float, kv_seq: float, n: int, replicas: int) -> str:
    if not ok_host:
        return f"{what} need {need / GB:.0f} GB but {where} offers {have / GB:.0f} GB (installed less the OS reserve)"
    if budget <= 0:
        return f"the rest of the weights and activations do not fit in device memory ({budget / GB:.1f} GB short)"
    if n < replicas:
        return f"no room for one sequence's KV ({kv_seq / GB:.2f} GB) in the {budget / GB:.2f} GB left"
    return f"{what} ({need / GB:.0f} GB) in {where}; {n} concurrent sequences fit"


def _choose(options: list[PlacementOption], offload: str) -> PlacementOption:
    by = {o.strategy: o for o in options}
    if offload == "auto":
        for s in ("none", "cpu-experts", "expert-cache", "cpu-only"):
            if s in by and by[s].fits:
                return by[s]
        return by["none"]
    if offload not in by:
        from moecap_sim.errors import UserError
        avail = ", ".join(by)
        raise UserError(f"--offload {offload} is not possible for this model/system (possible: {avail})")
    return by[offload]


def _plan_cpu_only_system(dep, policy, ctx, wb, w_total, experts_total, host_usable, suggest, input_len, output_len):
    kv_seq = kv_bytes_per_sequence_per_device(dep, ctx)
    reserve = 0.0  # no CUDA context or NCCL buffers on a CPU-only host
    act = activation_peak_bytes(dep, MemoryPolicy(max_num_batched_tokens=2048, max_num_seqs=64))
    budget = host_usable - w_total - act
    n = int(min(policy.max_num_seqs, budget // kv_seq)) if budget > 0 and kv_seq > 0 else 0
    ok = n >= 1
    reason = _why(w_total + act <= host_usable, w_total, host_usable, "all weights", "host DRAM", budget, kv_seq, n, 1)
    opt = PlacementOption("cpu-only", ok, 0.0, (w_total + act + max(n, 1) * kv_seq) / GB, max_concurrent_seqs=n, reason=reason)
    plan = MemoryPlan(fits=ok, fits_on_devices=ok, placement="cpu-only", reason=reason, capacity_gb=dep.system.host.dram_gb,
                      usable_gb=host_usable / GB, weights_gb=w_total / GB, weights_total_gb=w_total / GB,
                      expert_weights_total_gb=experts_total / GB, activation_gb=act / GB, reserve_gb=reserve / GB,
                      kv_budget_gb=max(0.0, budget) / GB, kv_bytes_per_token=dep.model.arch.kv_bytes_per_token(dep.kv_bytes, ctx),
                      kv_gb_per_sequence=kv_seq / GB, max_concurrent_seqs=n, host_dram_gb=dep.system.host.dram_gb,
                      options=[opt], weights_by_group_gb={g: v / GB for g, v in wb.items()})
    if suggest and not ok:
        plan.suggestions = suggest_changes(dep, input_len=input_len, output_len=output_len, policy=policy, plan=plan)
    return plan


# ------------------------------------------------------------------------------------------
# nearest feasible alternatives
# ------------------------------------------------------------------------------------------

_SMALLER = {"fp32": ["bf16", "fp8", "int4"], "bf16": ["fp8", "int4"], "fp16": ["fp8", "int4"],
            "fp8": ["int4"], "int8": ["int4"], "mxfp4": [], "nvfp4": [], "int4": []}


def suggest_changes(dep: Deployment, *, input_len: int, output_len: int, policy: MemoryPolicy,
                    plan: MemoryPlan, max_systems: int = 3) -> list[str]:
    """The smallest changes that make the deployment fit on accelerators: a lower precision on
    the same system, the cheapest catalog systems that hold it at the same precision, and the
    host DRAM an offload placement would need."""
    from dataclasses import replace

    from moecap_sim.catalog.hardware import systems
    from moecap_sim.deployment import Parallelism, device_of
    from moecap_sim.precision import uniform_scheme

    out: list[str] = []
    current = dep.scheme.experts
    for p in _SMALLER.get(current, []):
        alt = replace(dep, scheme=uniform_scheme(p))
        alt_plan = plan_memory(alt, input_len=input_len, output_len=output_len, offload="auto", policy=policy, suggest=False)
        if alt_plan.fits_on_devices:
            out.append(f"precision {p}: fits on {dep.system.name} ({alt_plan.weights_gb:.0f} GB weights per device, "
                       f"{alt_plan.max_concurrent_seqs} concurrent sequences)")
            break
        if alt_plan.fits:
            out.append(f"precision {p}: fits on {dep.system.name} with {alt_plan.placement} offload")
            break
    fitting = []
    for sys_name in systems().names():
        s = systems().get(sys_name)
        if s.name == dep.system.name or not s.accelerators:
            continue
        accel = device_of(s, s.accelerators.device)
        alt = replace(dep, system=s, accelerator=accel, host_cpu=device_of(s, s.host.cpu.device),
                      parallelism=Parallelism(tp=s.accelerators.count))
        alt_plan = plan_memory(alt, input_len=input_len, output_len=output_len, offload="none", policy=policy, suggest=False)
        if alt_plan.fits_on_devices:
            price = s.pricing.on_demand_usd_per_hour
            fitting.append((price if price else float("inf"), s.pricing.purchase_usd or float("inf"), s.name, alt_plan))
    fitting.sort()
    for price, purchase, name, p in fitting[:max_systems]:
        cost = f"${price:.2f}/h on demand" if price != float("inf") else (f"~${purchase:,.0f} to buy" if purchase != float("inf") else "no price")
        out.append(f"system {name}: fits at {dep.scheme.name} with TP over all devices ({p.max_concurrent_seqs} concurrent sequences, {cost})")
    need_host = (plan.expert_weights_total_gb + policy.host_reserve_gb if policy.host_reserve_gb is not None
                 else plan.expert_weights_total_gb / (1 - policy.host_reserve_fraction))
    if need_host > dep.system.host.dram_gb and dep.model.arch.moe_layers and not dep.cpu_only:
        out.append(f"host memory: offloading the routed experts needs ≥ {need_host:.0f} GB of DRAM "
                   f"(system has {dep.system.host.dram_gb:.0f} GB)")
    return out
