"""Step time of one forward pass (a prefill chunk or a decode step), per layer and per operator.

Each operator is timed as ``max(bytes / (BW·η_bw), flops / (dense_peak·η_flop)) + overhead`` on
the unit that runs it (accelerator, host CPU, or a link), never a single global max.  Operators:

* ``attn_proj``   — Q/K/V/O projections (MLA: q_a/q_b/kv_a/kv_b/o; the absorbed decode path has
                    the same weight bytes and FLOPs), split over TP;
* ``attn_core``   — scores and values: KV-cache bytes read (the whole context of every
                    sequence in decode; MLA latent replicated per TP rank) and 2·heads·(qk+v)·ctx
                    FLOPs per token (causal halving in prefill); linear attention reads/writes
                    its recurrent state;
* ``router``      — gate GEMM (16-bit, replicated on TP ranks);
* ``experts``     — only the *distinct* experts the batch activates (routing profile), split
                    over max(TP, EP); with EP the slowest rank's load and distinct experts;
* ``shared``, ``dense_ffn`` — always-on FFNs;
* ``norm_elementwise`` — residual/norm/activation traffic (≈10 passes over T×hidden);
* ``tp_allreduce`` (2 per layer, ring), ``ep_alltoall`` (dispatch + combine), ``pp_send``;
* ``expert_fetch`` (expert cache misses over PCIe / NVMe), ``cpu_experts`` (routed experts
  computed by the CPU from DRAM, overlapped with the GPU part of the layer);
* ``lm_head`` (sampled rows only), ``launch`` (kernel launches or CUDA-graph replay gaps) and
  ``scheduler`` (per-step engine overhead).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field, replace
from typing import Optional, Sequence

from moecap_sim.catalog.engines import EngineSpec
from moecap_sim.deployment import Deployment
from moecap_sim.geometry import Layer
from moecap_sim.memory import MemoryPolicy
from moecap_sim.perf.achieved import AttentionFactor, measured_efficiency
from moecap_sim.perf.efficiency import Calibration, Efficiency, default_efficiency, engine_family, resolve_efficiency
from moecap_sim.precision import NATIVE_COMPUTE_DTYPE
from moecap_sim.routing.base import RoutingProfile
from moecap_sim.specs.hardware import DeviceSpec
from moecap_sim.units import GB

ACT_BYTES = 2.0  # 16-bit activations
#: a device without a declared link (a user's spec): PCIe Gen4 x16, 31.5 GB/s per direction by
#: the PCI-SIG rate, ~25 GB/s achieved by pinned copies; ~10 µs per transfer (assumption)
FALLBACK_PCIE_GB_S = 25.0
FALLBACK_PCIE_LATENCY_US = 10.0
#: host→device copies from pageable memory run through a pinned staging buffer at about half the
#: pinned rate (CUDA bandwidthTest pageable vs pinned on PCIe Gen4/Gen5 hosts: 40–60 %; assumption)
PAGEABLE_COPY_FACTOR = 0.5
#: a host without a declared NVMe bandwidth: one PCIe Gen3 x4 drive, ~2 GB/s sequential read
#: (NVMe 1.3 drives of that generation; assumption)
FALLBACK_NVME_GB_S = 2.0
#: compute dtype a weight format falls back to on a device without its native path.  FP4 weights
#: on pre-Blackwell GPUs run as W4A16 (vLLM/SGLang Marlin and Triton mxfp4 MoE kernels dequantize
#: to 16-bit; there is no FP4→FP8 tensor path), FP8 on Ampere as W8A16 (Marlin FP8).
_FALLBACK = {"fp4": ["fp4", "bf16", "fp16", "fp32"], "fp8": ["fp8", "bf16", "fp16", "fp32"],
             "int8": ["int8", "bf16", "fp16", "fp32"], "bf16": ["bf16", "fp16", "fp32"],
             "fp16": ["fp16", "bf16", "fp32"], "fp32": ["fp32", "tf32", "bf16", "fp16"]}


@dataclass
class Op:
    name: str
    unit: str  # accelerator | cpu | link
    resource: str  # hbm | compute | interconnect | pcie | dram | cpu | nvme | overhead
    time_s: float
    bytes: float = 0.0  # per device (memory traffic of this op)
    flops: float = 0.0  # per device
    weight_bytes: float = 0.0  # part of `bytes` that is weights
    kv_bytes: float = 0.0  # part of `bytes` that is KV cache


@dataclass
class StepBreakdown:
    """One forward pass on one model replica.  Byte/FLOP totals are summed over the replica's
    devices (what the metrics' numerators need)."""

    phase: str
    seqs: int
    tokens: int
    context: float
    time_s: float
    ops: dict[str, Op] = field(default_factory=dict)
    weight_bytes_total: float = 0.0
    kv_bytes_total: float = 0.0
    flops_total: float = 0.0
    dense_weight_bytes_total: float = 0.0  # as if every expert were read (vanilla MBU)
    dense_flops_total: float = 0.0  # as if every expert computed every token (vanilla MFU)
    host_bytes_total: float = 0.0  # DRAM traffic of CPU-side work
    distinct_experts_per_layer: float = 0.0
    overlap_saved_s: float = 0.0

    def by_resource(self) -> dict[str, float]:
        out: dict[str, float] = {}
        for op in self.ops.values():
            out[op.resource] = out.get(op.resource, 0.0) + op.time_s
        return out

    @property
    def bottleneck(self) -> str:
        res = self.by_resource()
        return max(res, key=res.get) if res else "none"


@dataclass(frozen=True)
class MoeCounts:
    """Routing of one MoE layer in one pass as counted by a routing replay (the simulator's
    optional input to :func:`step_time`; unused, the routing profile's expectations apply).

    ``distinct``: experts the pass activates (whole layer); ``rank_distinct`` and ``rank_load``:
    distinct experts and token-expert assignments on the most loaded EP rank (ignored without
    EP); ``fetched``: experts the device's expert cache missed and fetched over the link (None:
    the profile's steady-state hit rate)."""

    distinct: float
    rank_distinct: float = 0.0
    rank_load: float = 0.0
    fetched: Optional[float] = None


@dataclass(frozen=True)
class Unit:
    """A place that runs operators: its memory bandwidth and dense peaks, with efficiencies."""

    name: str
    mem_gb_s: float
    peaks: dict
    eff: Efficiency
    count: int = 1  # sockets for a CPU
    is_cpu: bool = False
    #: measured kernel curves of a probed device (specs.hardware.Achieved; see perf/achieved.py)
    achieved: Optional[object] = None

    def compute_dtype(self, weight_dtype: str) -> tuple[str, bool]:
        """Dtype the matmul runs in and whether it is a weight-only (dequantize) path."""
        native = NATIVE_COMPUTE_DTYPE[weight_dtype]
        for d in _FALLBACK[native]:
            if d in self.peaks:
                return d, d != native or weight_dtype == "int4"
        return next(iter(self.peaks)), True

    def peak_flops(self, dtype: str) -> float:
        return self.peaks[dtype] * 1e12 * self.count

    def roofline(self, bytes_: float, flops: float, dtype: str, flop_eff: Optional[float] = None,
                 bw_eff: Optional[float] = None, overlap: bool = True) -> float:
        """``‖(t_mem, t_cmp)‖_p`` when the kernel overlaps streaming with compute (a smooth
        roofline: the max far from the ridge point, √2·max at it for p = 2); their sum when it does
        not (``overlap=False``: a CPU GEMM that repacks each weight block into the matrix
        unit's layout before multiplying it, as eager PyTorch/oneDNN does with plain weights)."""
        t_mem, t_cmp = self.times(bytes_, flops, dtype, flop_eff, bw_eff)
        if self.achieved is not None:
            return t_mem + t_cmp  # measured curves split a kernel's time additively (perf/achieved.py)
        if not overlap:
            return t_mem + t_cmp
        p = self.eff.overlap_p
        if t_mem == 0 or t_cmp == 0 or p >= 64:
            return max(t_mem, t_cmp)
        return (t_mem ** p + t_cmp ** p) ** (1.0 / p)  # smooth roofline: ≥ max, ≤ sum

    def times(self, bytes_: float, flops: float, dtype: str, flop_eff: Optional[float] = None,
              bw_eff: Optional[float] = None) -> tuple[float, float]:
        """(memory time, compute time) of an op in seconds, with this unit's efficiencies."""
        if self.achieved is not None:
            from moecap_sim.perf.achieved import op_times

            t = op_times(self.achieved, self.eff, bytes_, flops, dtype, flop_eff, bw_eff)
            if t is not None:
                return t
        t_mem = bytes_ / (self.mem_gb_s * GB * (bw_eff or self.eff.bw)) if bytes_ else 0.0
        t_cmp = flops / (self.peak_flops(dtype) * (flop_eff or self.eff.flop)) if flops else 0.0
        return t_mem, t_cmp


@dataclass(frozen=True)
class CostContext:
    """Everything resolved once per prediction that every step-time call needs."""

    dep: Deployment
    engine: EngineSpec
    routing: RoutingProfile
    placement: str
    accel: Optional[Unit]
    cpu: Unit
    link_gb_s: float
    link_latency_us: float
    host_link_gb_s: float
    host_link_latency_us: float
    nvme_gb_s: float
    cache_experts_per_layer: Optional[float] = None
    dram_fraction_of_experts: float = 1.0
    cpu_moe_layers: Optional[int] = None  # cpu-experts: MoE layers (the first ones) whose experts the CPU runs
    overlap_comm: bool = False  # two-batch overlap of EP all-to-all with compute

    @property
    def main(self) -> Unit:
        """The unit that runs the dense part of the model."""
        return self.cpu if (self.accel is None or self.placement == "cpu-only") else self.accel


def make_unit(dev: DeviceSpec, count: int = 1, calibration: Optional[Calibration] = None,
              mem_gb_s: Optional[float] = None, compute_fraction: float = 1.0, family: Optional[str] = None) -> Unit:
    """A unit from a device spec; ``count`` sockets/devices, ``compute_fraction`` of their cores
    (a cloud VM that gets only some vCPUs of a socket); efficiencies for engine ``family``: a
    probed CPU's measured ceilings (with the user's calibration over them), else the user's
    calibration, the factors fitted on published measurements, or the class prior."""
    ach = dev.achieved if (dev.kind == "cpu" and count == 1 and compute_fraction == 1.0) else None
    if ach is not None:  # η become fractions of measured ceilings (prior 1)
        base = measured_efficiency(ach, default_efficiency(dev.efficiency_class))
        eff = (calibration.for_device(dev.name, dev.efficiency_class, family, base=base) if calibration else None) or base
        # mark the attention factor so Unit.times recognises the attention operator
        eff = replace(eff, attention=AttentionFactor(eff.attention))
    else:
        eff = resolve_efficiency(dev.name, dev.efficiency_class, family, calibration)
    peaks = {k: v * compute_fraction for k, v in dev.compute.dense_tflops.items()}
    return Unit(name=dev.name, mem_gb_s=mem_gb_s or dev.memory.bandwidth_gb_s * count, peaks=peaks,
                eff=eff, count=count, is_cpu=dev.kind == "cpu", achieved=ach)


def build_context(dep: Deployment, engine: EngineSpec, routing: RoutingProfile, placement: str,
                  calibration: Optional[Calibration] = None, cache_experts_per_layer: Optional[float] = None,
                  cpu_moe_layers: Optional[int] = None, overlap_comm: bool = False,
                  cpu_threads: Optional[int] = None) -> CostContext:
    s = dep.system
    sockets = s.host.cpu.sockets
    frac = 1.0
    if s.host.cpu.vcpus and dep.host_cpu.cpu is not None:
        # a VM slice: its vCPUs are hyper-threads of part of the sockets' cores
        frac = min(1.0, s.host.cpu.vcpus / (2.0 * dep.host_cpu.cpu.cores * sockets))
    if cpu_threads and dep.host_cpu.cpu is not None:
        # the engine runs this many threads (llama.cpp -t, KTransformers --cpu_infer): matrix
        # throughput scales with the physical cores they occupy (SMT siblings share the units)
        frac = min(frac, cpu_threads / (dep.host_cpu.cpu.cores * sockets))
    dram_gb_s = dep.host_dram_bandwidth_gb_s
    if sockets > 1 and not engine.numa_aware:
        # Weights are first-touched into one NUMA node; threads on the other socket read them over
        # the socket link, so a NUMA-unaware engine streams at about one socket's bandwidth.
        dram_gb_s /= sockets
    family = engine_family(engine.name)
    cpu = make_unit(dep.host_cpu, count=sockets, calibration=calibration, mem_gb_s=dram_gb_s,
                    compute_fraction=frac, family=family)
    accel = make_unit(dep.accelerator, calibration=calibration, family=family) if dep.accelerator else None
    if s.interconnect is not None:
        link, lat = s.interconnect.bandwidth_gb_s, s.interconnect.latency_us
    elif dep.accelerator is not None and dep.accelerator.device_link is not None:
        link, lat = dep.accelerator.device_link.bandwidth_gb_s, dep.accelerator.device_link.latency_us
    else:
        link, lat = FALLBACK_PCIE_GB_S, FALLBACK_PCIE_LATENCY_US  # through host PCIe (only if TP/EP > 1)
    host_link = dep.accelerator.host_link if dep.accelerator is not None and dep.accelerator.host_link else None
    experts_total = dep.model.arch.params_by_group()["experts"] * dep.scheme.bytes_per_param("experts")
    host_usable = MemoryPolicy(host_reserve_gb=engine.host_reserve_gb).host_usable_bytes(s.host.dram_gb)
    dram_frac = min(1.0, host_usable / experts_total) if experts_total else 1.0
    return CostContext(dep=dep, engine=engine, routing=routing, placement=placement, accel=accel, cpu=cpu,
                       link_gb_s=link, link_latency_us=lat,
                       host_link_gb_s=host_link.bandwidth_gb_s if host_link else FALLBACK_PCIE_GB_S,
                       host_link_latency_us=host_link.latency_us if host_link else FALLBACK_PCIE_LATENCY_US,
                       nvme_gb_s=s.host.nvme_bandwidth_gb_s or FALLBACK_NVME_GB_S,
                       cache_experts_per_layer=cache_experts_per_layer, dram_fraction_of_experts=dram_frac,
                       cpu_moe_layers=cpu_moe_layers, overlap_comm=overlap_comm)


def _add(ops: dict[str, Op], op: Op) -> None:
    if op.name in ops:
        o = ops[op.name]
        o.time_s += op.time_s
        o.bytes += op.bytes
        o.flops += op.flops
        o.weight_bytes += op.weight_bytes
        o.kv_bytes += op.kv_bytes
    else:
        ops[op.name] = op


def _overlaps(ctx: CostContext, unit: Unit) -> bool:
    """Whether ops on ``unit`` overlap weight streaming with compute (max) or serialise them
    (sum): engines whose CPU GEMMs repack plain-layout weights on every call serialise them
    (measured: t ≈ t_mem + t_cmp within 5% on an AMX core)."""
    return not (unit.is_cpu and not ctx.engine.overlap_mem_compute)


def _resource(unit: Unit, bytes_: float, flops: float, dtype: str, flop_eff: float | None = None,
              bw_eff: float | None = None) -> str:
    """Which resource bounds this op on ``unit``: memory or compute (host DRAM/CPU for a CPU)."""
    t_mem, t_cmp = unit.times(bytes_, flops, dtype, flop_eff, bw_eff)
    if t_cmp >= t_mem:
        return "cpu" if unit.is_cpu else "compute"
    return "dram" if unit.is_cpu else "hbm"


def _collective_time(ctx: CostContext, unit: Unit, volume_bytes: float, ranks: int, ring: bool = False) -> float:
    """Time of a collective moving ``volume_bytes`` per rank among ``ranks`` ranks.

    Inside one box the volume crosses the scale-up link (NVLink/xGMI/PCIe).  When the group spans
    boxes (``ranks`` > devices per node), an all-to-all sends the share of its volume addressed
    to other boxes over the scale-out NIC, concurrently with the in-box share (the slower one
    bounds it); a ring all-reduce runs at its slowest hop, the NIC.  Latency: the engine's
    collective floor or log2(ranks) link hops, whichever is larger (2 phases for an all-to-all).
    """
    dep = ctx.dep
    eff = unit.eff.link
    per_node = dep.devices_per_node or ranks
    lat_us = ctx.link_latency_us
    if dep.nodes > 1 and ranks > per_node and dep.scale_out_gb_s:
        lat_us = max(lat_us, dep.scale_out_latency_us or 0.0)
        if ring:
            t_bw = volume_bytes / (min(ctx.link_gb_s, dep.scale_out_gb_s) * GB * eff)
        else:
            remote = 1.0 - per_node / ranks
            t_bw = max(volume_bytes * (1 - remote) / (ctx.link_gb_s * GB * eff),
                       volume_bytes * remote / (dep.scale_out_gb_s * GB * eff))
    else:
        t_bw = volume_bytes / (ctx.link_gb_s * GB * eff)
    alpha = max(unit.eff.collective_latency_us, lat_us * math.log2(max(2, ranks))) * 1e-6
    return t_bw + (alpha if ring else 2 * alpha)


def kernels_in_layer(engine: EngineSpec, layer: Layer, w8a8: bool = False) -> int:
    """Kernels one layer launches under ``engine``: its base count plus the extras (engine preset
    ``extra_kernels``) of an MLA or linear-attention block, shared experts, group-limited
    routing, and — for W8A8 (FP8/INT8 activation) GEMMs — one activation-quantization kernel per
    weight GEMM where the engine does not fuse it."""
    extra = engine.extra_kernels
    n = engine.kernels_per_layer
    kind = layer.attention.kind
    if kind in ("mla", "linear"):
        n += extra.get(kind, 0)
    gemms = 5 if kind == "mla" else 2  # MLA: q_a, q_b, kv_a, kv_b, o; GQA: qkv, o
    if layer.moe is not None:
        gemms += 2  # fused experts: input and intermediate activations
        if layer.moe.shared_params:
            n += extra.get("shared_experts", 0)
            gemms += 2
        if layer.moe.grouped_routing:
            n += extra.get("grouped_topk", 0)
    elif layer.dense_ffn_params:
        gemms += 2
    if w8a8:
        n += extra.get("w8a8_quant_per_gemm", 0) * gemms
    return n


def _ep_alltoall_time(ctx: CostContext, unit: Unit, tokens: float, top_k: int, hidden: int, ep: int,
                      dispatch_bytes: float) -> tuple[float, float]:
    """(seconds, bytes sent per rank) of one MoE layer's dispatch + combine over ``ep`` ranks.

    Dispatch sends each token's hidden state to every rank that holds one of its ``top_k``
    experts, in the dtype the expert GEMM consumes (FP8 for W8A8/FP4 experts: DeepEP and the
    engines built on it quantize before dispatch); combine returns BF16.  Across boxes a token
    crosses the scale-out NIC once per destination *node* (DeepEP's internode kernels forward
    inside the node over NVLink): E[distinct remote nodes] = (n−1)(1 − (1 − 1/n)^k) for k experts
    spread over n nodes.  In-box and cross-box shares run concurrently; the slower bounds it.
    """
    dep = ctx.dep
    eff = unit.eff.link
    per_elem = (dispatch_bytes + ACT_BYTES) * hidden
    per_node = min(ep, dep.devices_per_node) if dep.nodes > 1 and dep.devices_per_node else ep
    n = max(1, math.ceil(ep / per_node))
    local_copies = top_k * (per_node - 1) / ep
    intra = tokens * per_elem * local_copies
    lat_us = ctx.link_latency_us
    if n > 1 and dep.scale_out_gb_s:
        remote_nodes = (n - 1) * (1.0 - (1.0 - 1.0 / n) ** top_k)
        inter = tokens * per_elem * remote_nodes
        lat_us = max(lat_us, dep.scale_out_latency_us or 0.0)
        t_bw = max(intra / (ctx.link_gb_s * GB * eff), inter / (dep.scale_out_gb_s * GB * eff))
    else:
        inter = 0.0
        t_bw = intra / (ctx.link_gb_s * GB * eff)
    alpha = max(unit.eff.collective_latency_us, lat_us * math.log2(max(2, ep))) * 1e-6
    return t_bw + 2 * alpha, intra + inter


def _attention_core(ctx: CostContext, a, phase: str, seqs: int, new_tokens: int, context: float,
                    tp: int) -> tuple[float, float]:
    """(bytes, FLOPs) per device of scores + values for ``seqs`` sequences adding ``new_tokens``
    each on top of ``context`` cached tokens.  Decode reads the whole (windowed) context of every
    sequence; prefill reads the chunk's span and does causal FLOPs; linear attention reads and
    writes its recurrent state."""
    dep = ctx.dep
    T = seqs * new_tokens
    if a.kind == "linear":
        return seqs * a.state_elems * 4.0 * 2 / tp, 4.0 * T * a.state_elems / tp
    kv_elems_dev = a.kv_elems_per_token_per_rank(tp)
    if a.kind == "mla" and phase == "decode":  # absorbed: scores and values against the latent
        per_ctx_flops = 2.0 * a.num_heads * (2 * a.kv_lora_rank + a.qk_rope_head_dim)
    else:
        per_ctx_flops = 2.0 * a.num_heads * (a.head_dim + a.v_head_dim)
    if phase == "decode":
        ctx_eff = min(context, a.window) if a.window else context
        # an unfused decode attention (scores and values as two batched GEMMs, e.g. absorbed MLA
        # in eager PyTorch) streams the cache once per GEMM; fused kernels read it once
        passes = ctx.engine.decode_kv_passes.get(a.kind, 1)
        if a.kind == "gqa" and a.num_kv_heads < a.num_heads:
            # each query head of a group streams the shared K/V again, in the measured proportion
            passes *= 1.0 + _gqa_expansion(ctx) * (a.num_heads / a.num_kv_heads - 1.0)
        kv_read = seqs * ctx_eff * kv_elems_dev * dep.kv_bytes * passes
        flops = T * per_ctx_flops * ctx_eff / tp
    else:
        span = min(context + new_tokens, a.window) if a.window else context + new_tokens
        kv_read = seqs * span * kv_elems_dev * dep.kv_bytes
        causal = (min(context, a.window) if a.window else context) + new_tokens / 2.0
        flops = T * per_ctx_flops * causal / tp
    if a.cross_attention_params:
        kv_read *= 2
        flops *= 2
    return kv_read, flops


def _gqa_expansion(ctx: CostContext) -> float:
    """Fraction of the extra K/V passes a grouped-query decode pays (0: one pass per KV head,
    1: one per query head): a probed unit's measurement, else the engine preset's flag."""
    ach = ctx.main.achieved
    if ach is not None and ach.attention_gqa_expansion is not None:
        return float(ach.attention_gqa_expansion)
    return 1.0 if ctx.engine.gqa_kv_expansion else 0.0


def _layer_classes(ctx: CostContext, phase: str, moe_counts: Optional[Sequence[MoeCounts]] = None) -> dict:
    """Layers that cost the same, with how many there are: same attention, MoE and dense FFN
    geometry and, for MoE layers, the same placement of their experts (GPU or CPU under
    ``--n-cpu-moe``).  MoE layers are timed with the layer-averaged routing statistics
    (``moe_idx`` None): the expected distinct experts and EP loads are linear in the per-layer
    mixture weights of the routing profile, so their sum over layers is unchanged.  With
    ``moe_counts`` (one per MoE layer, a replayed pass) MoE layers are also keyed by their counts
    and the keys become ``(layer, moe_idx, counts)``."""
    if moe_counts is None:  # a pure function of the architecture, the phase and the CPU-MoE split
        return dict(_static_layer_classes(ctx.dep.model.arch, phase, ctx.cpu_moe_layers))
    return _count_layer_classes(ctx.dep.model.arch.layers, phase, ctx.cpu_moe_layers, moe_counts)


@functools.lru_cache(maxsize=256)
def _static_layer_classes(arch, phase: str, cpu_moe_layers: Optional[int]) -> dict:
    return _count_layer_classes(arch.layers, phase, cpu_moe_layers, None)


def _count_layer_classes(layers, phase: str, cpu_moe_layers: Optional[int],
                         moe_counts: Optional[Sequence[MoeCounts]]) -> dict:
    classes: dict = {}
    reps: dict = {}
    moe_idx = 0
    for layer in layers:
        if layer.role == "encoder" and phase == "decode":
            continue
        on_cpu = None
        counts = None
        if layer.moe is not None:
            on_cpu = cpu_moe_layers is not None and moe_idx < cpu_moe_layers
            if moe_counts is not None:
                counts = moe_counts[moe_idx]
            moe_idx += 1
        key = (layer.role, layer.attention, layer.moe, layer.dense_ffn_params, on_cpu, counts)
        if key not in reps:
            reps[key] = (layer, None if layer.moe is None else (0 if on_cpu or cpu_moe_layers is None else -1))
            if moe_counts is not None:
                reps[key] = reps[key] + (counts,)
        classes[reps[key]] = classes.get(reps[key], 0) + 1
    return classes


@dataclass
class _LayerPass:
    """One layer of one forward pass being costed: where its operators run, how many tokens
    they see, and the running totals (the critical-path time on the main unit, the op records
    and the byte/FLOP accumulators of the step)."""

    ctx: CostContext
    layer: Layer
    phase: str
    seqs: int
    new_tokens: int
    context: float
    ops: dict[str, Op]
    acc: dict
    prefill_tokens: int = 0
    prefill_context: float = 0.0
    prefill_seqs: int = 1
    time_s: float = 0.0  # critical path on the main unit so far
    cpu_time_s: float = 0.0  # CPU-side work that overlaps it (CPU experts)
    counts: Optional[MoeCounts] = None  # replayed routing of this layer (None: profile expectations)

    @property
    def unit(self) -> Unit:
        return self.ctx.main

    @property
    def on_cpu(self) -> bool:
        return self.ctx.main is self.ctx.cpu

    @property
    def tp(self) -> int:
        return 1 if self.on_cpu else self.ctx.dep.parallelism.tp

    @property
    def tokens(self) -> int:
        return self.seqs * self.new_tokens + self.prefill_tokens

    @property
    def act_dtype(self) -> str:
        return self.unit.compute_dtype("bf16")[0]

    def run(self, name: str, bytes_: float, flops: float, dtype_group: Optional[str] = None,
            dtype: Optional[str] = None, wbytes: float = 0.0, kvbytes: float = 0.0,
            flop_eff: Optional[float] = None, bw_eff: Optional[float] = None) -> float:
        """Time one operator on the main unit, record it, and return its seconds.  A weight-only
        path (weights dequantized in the GEMM main loop) reaches 0.8 of the unit's GEMM efficiency
        (assumption: the dequantize instructions share the issue slots of the matrix pipe)."""
        u = self.unit
        if dtype is None:
            dtype, weight_only = u.compute_dtype(self.ctx.dep.scheme.dtype_of(dtype_group))
            if weight_only and flop_eff is None:
                flop_eff = u.eff.flop * WEIGHT_ONLY_FLOP_FACTOR
        t = u.roofline(bytes_, flops, dtype, flop_eff, bw_eff, overlap=_overlaps(self.ctx, u))
        _add(self.ops, Op(name, "cpu" if u is self.ctx.cpu else "accelerator",
                          _resource(u, bytes_, flops, dtype, flop_eff, bw_eff), t, bytes_, flops, wbytes, kvbytes))
        return t

    def weight_gemm(self, name: str, params: float, group: str, split: int, extra_bytes: float = 0.0) -> None:
        """A GEMM every token of the pass runs (not routed): ``params`` split ``split`` ways on
        each device; counted alike in the sparse and the dense (vanilla) totals."""
        w = params * self.ctx.dep.scheme.bytes_per_param(group) / split
        self.time_s += self.run(name, w + extra_bytes, 2.0 * self.tokens * params / split, group, wbytes=w)
        acc = self.acc
        acc["w"] += w * self.tp
        acc["dense_w"] += w * self.tp
        acc["flops"] += 2.0 * self.tokens * params
        acc["dense_flops"] += 2.0 * self.tokens * params


#: fraction of the GEMM efficiency a weight-only (dequantize-in-main-loop) path reaches
WEIGHT_ONLY_FLOP_FACTOR = 0.8
#: residual-stream passes per layer counted as element-wise traffic (norms, residual adds,
#: rotary, activation casts: ~10 reads/writes of T × hidden; assumption)
ELEMENTWISE_PASSES = 10


def _attention(lp: _LayerPass) -> None:
    """Attention projections, then scores + values over the KV cache (a mixed pass adds its
    prefill chunk's attention)."""
    a = lp.layer.attention
    h = lp.ctx.dep.model.arch.hidden_size
    lp.weight_gemm("attn_proj", a.params, "attention", lp.tp, extra_bytes=lp.tokens * 4 * h * ACT_BYTES / lp.tp)
    kv_read, flops = _attention_core(lp.ctx, a, lp.phase, lp.seqs, lp.new_tokens, lp.context, lp.tp)
    if lp.prefill_tokens:
        kv_p, flops_p = _attention_core(lp.ctx, a, "prefill", lp.prefill_seqs,
                                        lp.prefill_tokens // max(1, lp.prefill_seqs), lp.prefill_context, lp.tp)
        kv_read, flops = kv_read + kv_p, flops + flops_p
    t = _mla_decode_as_gemms(lp, kv_read)
    if t is None:
        t = lp.run("attn_core", kv_read, flops, dtype=lp.act_dtype, kvbytes=kv_read, flop_eff=lp.unit.eff.attention)
    else:
        _add(lp.ops, Op("attn_core", "cpu" if lp.on_cpu else "accelerator", "dram" if lp.on_cpu else "hbm", t,
                        kv_read, flops, 0.0, kv_read))
    lp.time_s += t
    lp.acc["kv"] += kv_read * lp.tp


def _mla_decode_as_gemms(lp: _LayerPass, kv_read: float) -> Optional[float]:
    """Absorbed MLA decode run unfused (scores and values as two batched GEMMs over the latent
    cache, as eager PyTorch does) on a probed device: each pass is a GEMM whose "weights" are the
    cached latents and whose rows are the query heads, so it is timed on the probe's measured
    weight-GEMM curve at that many rows.  None where this does not apply (fused kernels, or a
    datasheet-only unit)."""
    from moecap_sim.perf.achieved import weight_gb_s

    a, unit, ctx = lp.layer.attention, lp.unit, lp.ctx
    passes = ctx.engine.decode_kv_passes.get("mla", 1)
    if a.kind != "mla" or lp.phase != "decode" or lp.prefill_tokens or passes < 2 or unit.achieved is None:
        return None
    curve = unit.achieved.gemm_weight_gb_s_by_rows.get(lp.act_dtype)
    if not curve or not kv_read:
        return None
    rows = max(1.0, a.num_heads * lp.new_tokens / lp.tp)
    return kv_read / (weight_gb_s(curve, rows) * GB * unit.eff.attention)


def _dense_parts(lp: _LayerPass) -> None:
    """Element-wise traffic (the residual stream is replicated on every TP rank) and a dense FFN."""
    h = lp.ctx.dep.model.arch.hidden_size
    lp.time_s += lp.run("norm_elementwise", lp.tokens * h * ACT_BYTES * ELEMENTWISE_PASSES, 0.0, dtype=lp.act_dtype)
    if lp.layer.dense_ffn_params:
        lp.weight_gemm("dense_ffn", lp.layer.dense_ffn_params, "dense_ffn", lp.tp)


@dataclass(frozen=True)
class _ExpertLoad:
    """What one device of an MoE layer reads and computes for its routed experts."""

    distinct: float  # distinct experts the pass activates (whole layer)
    bytes_dev: float
    flops_dev: float
    ep: int
    shards: int
    expert_bytes: float


def _expert_load(lp: _LayerPass) -> _ExpertLoad:
    """Only the *distinct* experts the batch activates are read; with EP the slowest rank's
    distinct experts and token load decide (from the routing profile).  With EP wider than TP
    (DeepSeek-style DP-attention + EP) each MoE layer gathers the tokens of ep/tp DP ranks."""
    ctx, m = lp.ctx, lp.layer.moe
    T, tp = lp.tokens, lp.tp
    expert_bytes = m.expert_params * ctx.dep.scheme.bytes_per_param("experts")
    ep = ctx.dep.parallelism.ep if not lp.on_cpu else 1
    shards = 1 if lp.on_cpu else max(tp, ep)
    t_moe = T * (ep // tp) if ep > tp else T
    c = lp.counts
    if c is not None:  # a replayed pass: its own counts
        distinct = min(float(m.num_experts), float(c.distinct)) if T else 0.0
    else:
        distinct = ctx.routing.expected_distinct_experts(t_moe, None) if t_moe > 0 else 0.0
        distinct = min(float(m.num_experts), max(distinct, min(m.top_k, m.num_experts) if T else 0.0))
    if ep > 1:
        if c is not None:
            d_rank, load_rank = min(m.num_experts / ep, float(c.rank_distinct)), float(c.rank_load)
        else:
            d_rank = min(m.num_experts / ep, ctx.routing.ep_max_rank_distinct(t_moe, ep, None))
            load_rank = ctx.routing.ep_max_rank_load(t_moe, ep, None)
        split = ep / shards  # an expert further split over TP ranks when tp > ep
        return _ExpertLoad(distinct, d_rank * expert_bytes * split, 2.0 * load_rank * m.expert_params * split, ep,
                           shards, expert_bytes)
    return _ExpertLoad(distinct, distinct * expert_bytes / shards, 2.0 * T * m.top_k * m.expert_params / shards, ep,
                       shards, expert_bytes)


def host_to_device_bytes_per_s(ctx: CostContext) -> float:
    """Achieved host→device copy rate: the link at its efficiency, halved from pageable memory."""
    pinned = 1.0 if ctx.engine.host_memory_pinned else PAGEABLE_COPY_FACTOR
    return ctx.host_link_gb_s * GB * ctx.main.eff.link * pinned


def _cpu_experts(lp: _LayerPass, load: _ExpertLoad) -> None:
    """Routed experts computed by the CPU from DRAM (KTransformers, llama.cpp --cpu-moe),
    overlapping the GPU part of the layer; for large passes (prefill) engines upload the
    CPU-resident experts and multiply on the GPU when that is faster (llama.cpp offloads ops with
    ≥ 32 rows; KTransformers does the same for long prompts)."""
    ctx, m, unit = lp.ctx, lp.layer.moe, lp.unit
    cpu, scheme = ctx.cpu, ctx.dep.scheme
    h = ctx.dep.model.arch.hidden_size
    dt, wo = cpu.compute_dtype(scheme.dtype_of("experts"))
    b = load.distinct * load.expert_bytes
    f = 2.0 * lp.tokens * m.top_k * m.expert_params
    flop_eff = cpu.eff.flop * (WEIGHT_ONLY_FLOP_FACTOR if wo else 1.0)
    bw_eff = cpu.eff.bw * cpu.eff.moe_grouped
    t = cpu.roofline(b, f, dt, flop_eff, bw_eff)
    t_up = b / host_to_device_bytes_per_s(ctx)
    t_gpu = unit.roofline(0.0, f, unit.compute_dtype(scheme.dtype_of("experts"))[0])
    t_offload = max(t_up, t_gpu) if ctx.engine.upload_overlap else t_up + t_gpu
    lp.acc["host"] += b
    if lp.phase == "prefill" and t_offload < t:
        _add(lp.ops, Op("expert_upload", "link", "pcie", t_offload, b, f, b, 0.0))
        lp.time_s += t_offload
    else:
        _add(lp.ops, Op("cpu_experts", "cpu", _resource(cpu, b, f, dt, flop_eff, bw_eff), t, b, f, b, 0.0))
        sync = ctx.engine.cpu_sync_us * 1e-6 + 2 * lp.tokens * h * ACT_BYTES / (ctx.host_link_gb_s * GB)
        _add(lp.ops, Op("cpu_gpu_sync", "link", "pcie", sync))
        lp.cpu_time_s = t + sync


def _device_experts(lp: _LayerPass, load: _ExpertLoad) -> None:
    """Routed experts on the accelerator (or a CPU-only host): the expert GEMMs, the activation
    traffic of routing tokens to their experts and back, per-expert launches of an eager loop,
    and expert-cache misses fetched over PCIe/NVMe (prefetched under compute where the engine
    prefetches)."""
    ctx, m, unit = lp.ctx, lp.layer.moe, lp.unit
    per_expert_kernels = ctx.engine.moe_kernel == "per-expert"
    bw_eff = unit.eff.bw * (unit.eff.moe_grouped if not per_expert_kernels else 1.0)
    lp.time_s += lp.run("experts", load.bytes_dev, load.flops_dev, "experts", wbytes=load.bytes_dev, bw_eff=bw_eff)
    # Elements moved per (token, expert) assignment — a per-expert loop (HF style): gather the
    # row (r+w h), gate/up GEMM in/out (h + 2I), SiLU·mul (5I), down GEMM in/out (I + h),
    # gate-weight multiply (2h), index_add into the output (3h) = 9h + 8I; a fused kernel reads
    # the rows in place: GEMM1 in/out (h + 2I), act·mul (3I), GEMM2 in/out (I + h), top-k sum (h)
    # = 3h + 6I
    h = ctx.dep.model.arch.hidden_size
    inter = m.intermediate_size(h)
    per_assign = (9.0 * h + 8.0 * inter) if per_expert_kernels else (3.0 * h + 6.0 * inter)
    if load.ep > 1:
        assign = float(lp.counts.rank_load) if lp.counts is not None else ctx.routing.ep_max_rank_load(lp.tokens, load.ep, None)
    else:
        assign = lp.tokens * m.top_k / load.shards
    lp.time_s += lp.run("moe_dispatch", assign * per_assign * ACT_BYTES, 0.0, dtype=lp.act_dtype)
    if per_expert_kernels:
        # an eager loop over the activated experts dispatches its own operators per expert
        d_dev = load.distinct / load.shards if load.ep == 1 else load.bytes_dev / max(load.expert_bytes, 1)
        t = ctx.engine.kernels_per_expert * max(1.0, d_dev) * unit.eff.kernel_launch_us * 1e-6
        _add(lp.ops, Op("launch", "cpu" if lp.on_cpu else "accelerator", "overhead", t))
        lp.time_s += t
    if ctx.placement in ("expert-cache", "nvme") and not lp.on_cpu:
        _expert_fetch(lp, load)


def _expert_fetch(lp: _LayerPass, load: _ExpertLoad) -> None:
    """Expert-cache misses: steady-state hit rate of the cache in decode (routing profile),
    the cached fraction in prefill; each device has its own PCIe link, the NVMe drive is shared."""
    ctx, m, unit = lp.ctx, lp.layer.moe, lp.unit
    cached = ctx.cache_experts_per_layer if ctx.cache_experts_per_layer is not None else 0.0
    if lp.counts is not None and lp.counts.fetched is not None:  # a replayed cache: its own misses
        per_expert_dev = load.expert_bytes * (load.ep / load.shards if load.ep > 1 else 1.0 / load.shards)
        miss_bytes = float(lp.counts.fetched) * per_expert_dev
    else:
        hit = ctx.routing.cache_hit_rate(int(cached)) if lp.phase == "decode" else min(1.0, cached / m.num_experts)
        miss_bytes = load.bytes_dev * (1.0 - hit)
    bw = host_to_device_bytes_per_s(ctx)
    latency = ctx.host_link_latency_us * 1e-6 if miss_bytes else 0.0
    t_fetch = miss_bytes / bw + latency
    if ctx.placement == "nvme":
        frac = ctx.dram_fraction_of_experts
        t_fetch = miss_bytes * (frac / bw + (1 - frac) * load.shards / (ctx.nvme_gb_s * GB)) + latency
    resource = "nvme" if ctx.placement == "nvme" and ctx.dram_fraction_of_experts < 1 else "pcie"
    _add(lp.ops, Op("expert_fetch", "link", resource, t_fetch, miss_bytes))
    lp.acc["host"] += miss_bytes * load.shards
    if ctx.engine.prefetch:
        saved = min(t_fetch, lp.time_s)
        lp.acc["saved"] += saved
        lp.time_s += t_fetch - saved
    else:
        lp.time_s += t_fetch


def _ep_alltoall(lp: _LayerPass) -> None:
    """Tokens live on different DP ranks when EP is wider than TP: all-to-all dispatch and
    combine (with ep ≤ tp every rank already holds all tokens and the TP all-reduce combines the
    experts); two-batch overlap hides it under the layer's compute."""
    ctx, unit, m = lp.ctx, lp.unit, lp.layer.moe
    h = ctx.dep.model.arch.hidden_size
    dispatch_bytes = 1.0 if unit.compute_dtype(ctx.dep.scheme.dtype_of("experts"))[0] in ("fp8", "fp4") else ACT_BYTES
    t, vol = _ep_alltoall_time(ctx, unit, lp.tokens, m.top_k, h, ctx.dep.parallelism.ep, dispatch_bytes)
    _add(lp.ops, Op("ep_alltoall", "link", "interconnect", t, vol))
    if ctx.overlap_comm:
        hidden = min(t, lp.time_s)
        lp.acc["saved"] += hidden
        lp.time_s += t - hidden
    else:
        lp.time_s += t


def _moe(lp: _LayerPass, moe_idx: Optional[int]) -> None:
    """Router, shared experts, the routed experts (on the device or the CPU), and the EP
    all-to-all.  ``moe_idx`` ≥ 0 or None marks a layer whose experts live on the CPU under
    ``cpu-experts`` (all of them without ``--n-cpu-moe``)."""
    ctx, m = lp.ctx, lp.layer.moe
    lp.weight_gemm("router", m.router_params, "router", 1)  # replicated on every TP rank
    if m.shared_params:
        lp.weight_gemm("shared", m.shared_params, "shared_experts", lp.tp)
    load = _expert_load(lp)
    acc = lp.acc
    acc["distinct"] += load.distinct
    acc["dense_w"] += m.num_experts * load.expert_bytes
    acc["flops"] += 2.0 * lp.tokens * m.top_k * m.expert_params
    acc["dense_flops"] += 2.0 * lp.tokens * m.num_experts * m.expert_params
    experts_on_cpu = ctx.placement == "cpu-experts" and not lp.on_cpu and (
        ctx.cpu_moe_layers is None or (moe_idx is not None and moe_idx >= 0))
    if experts_on_cpu:
        _cpu_experts(lp, load)  # not read from accelerator memory
    else:
        acc["w"] += load.bytes_dev * lp.tp  # bytes this replica's devices read
        _device_experts(lp, load)
    if load.ep > lp.tp and not lp.on_cpu:
        _ep_alltoall(lp)


def _tp_allreduce(lp: _LayerPass) -> None:
    """Two ring all-reduces per layer (after attention and after the FFN)."""
    if lp.tp > 1:
        msg = lp.tokens * lp.ctx.dep.model.arch.hidden_size * ACT_BYTES
        t = 2 * _collective_time(lp.ctx, lp.unit, 2 * (lp.tp - 1) / lp.tp * msg, lp.tp, ring=True)
        _add(lp.ops, Op("tp_allreduce", "link", "interconnect", t, 2 * msg))
        lp.time_s += t


def _launches(lp: _LayerPass) -> None:
    """A fixed cost per kernel: the launch gap (eager) or the minimum kernel duration inside a
    replayed CUDA graph (decode); per-op dispatch on a CPU."""
    ctx, unit = lp.ctx, lp.unit
    w8a8 = unit.compute_dtype(ctx.dep.scheme.dtype_of("experts"))[0] in ("fp8", "int8")
    kernels = kernels_in_layer(ctx.engine, lp.layer, w8a8)
    graphs = ctx.engine.cuda_graphs and lp.phase == "decode" and not lp.on_cpu
    t = kernels * (unit.eff.graph_kernel_us if graphs else unit.eff.kernel_launch_us) * 1e-6
    _add(lp.ops, Op("launch", "accelerator", "overhead", t))
    lp.time_s += t


def _layer_ops(ctx: CostContext, layer: Layer, moe_idx: Optional[int], phase: str, seqs: int, new_tokens: int,
               context: float, ops: dict[str, Op], acc: dict, prefill_tokens: int = 0,
               prefill_context: float = 0.0, prefill_seqs: int = 1, counts: Optional[MoeCounts] = None) -> float:
    """Append one layer's operators; return the layer's time on the critical path.  A mixed pass
    (``prefill_tokens`` > 0) carries a prefill chunk in the same forward as the decode tokens:
    every weight is read once for both, GEMMs and experts see all tokens.  CPU experts overlap
    the GPU part of the layer (KTransformers / llama.cpp --cpu-moe)."""
    lp = _LayerPass(ctx, layer, phase, seqs, new_tokens, context, ops, acc, prefill_tokens, prefill_context,
                    prefill_seqs, counts=counts)
    _attention(lp)
    _dense_parts(lp)
    if layer.moe is not None:
        _moe(lp, moe_idx)
    _tp_allreduce(lp)
    _launches(lp)
    if lp.cpu_time_s > 0:
        layer_time = max(lp.time_s, lp.cpu_time_s)
        acc["saved"] += lp.time_s + lp.cpu_time_s - layer_time
        return layer_time
    return lp.time_s


def step_time(ctx: CostContext, phase: str, seqs: int, new_tokens: int, context: float,
              prefill_tokens: int = 0, prefill_context: float = 0.0, prefill_seqs: int = 1,
              moe_counts: Optional[Sequence[MoeCounts]] = None) -> StepBreakdown:
    """Time of one forward pass of one replica: ``seqs`` sequences, each adding ``new_tokens``
    tokens (1 in decode) on top of ``context`` tokens already in its KV cache (mean).  In
    decode, ``prefill_tokens`` of ``prefill_seqs`` prompt chunks (each after ``prefill_context``
    tokens of its prompt) may ride in the same pass (chunked prefill mixed with decode: vLLM V1, SGLang, TRT-LLM).
    ``moe_counts`` (one :class:`MoeCounts` per MoE layer, in order) replaces the routing profile's
    expectations by a replayed pass's own counts (the simulator's routing replay)."""
    if phase not in ("prefill", "decode"):
        raise ValueError(phase)
    dep = ctx.dep
    arch = dep.model.arch
    par = dep.parallelism
    ops: dict[str, Op] = {}
    acc = dict(w=0.0, kv=0.0, flops=0.0, dense_w=0.0, dense_flops=0.0, host=0.0, distinct=0.0, saved=0.0)
    total = 0.0
    n_moe = 0
    for (layer, idx, *counts), count in _layer_classes(ctx, phase, moe_counts).items():
        cls_ops: dict[str, Op] = {}
        cls_acc = dict.fromkeys(acc, 0.0)
        t = _layer_ops(ctx, layer, idx, phase, seqs, new_tokens, context, cls_ops, cls_acc, prefill_tokens,
                       prefill_context, prefill_seqs, counts=counts[0] if counts else None)
        total += count * t
        n_moe += count if layer.moe is not None else 0
        for k, v in cls_acc.items():
            acc[k] += count * v
        for op in cls_ops.values():
            _add(ops, Op(op.name, op.unit, op.resource, count * op.time_s, count * op.bytes, count * op.flops,
                         count * op.weight_bytes, count * op.kv_bytes))
    unit = ctx.main
    on_cpu = unit is ctx.cpu
    tp = 1 if on_cpu else par.tp
    # LM head over the sampled rows (one per sequence)
    h = arch.hidden_size
    head_params = arch.lm_head_params or arch.embedding_params
    w = head_params * dep.scheme.bytes_per_param("lm_head") / tp
    dt = unit.compute_dtype(dep.scheme.dtype_of("lm_head"))[0]
    t = unit.roofline(w, 2.0 * seqs * head_params / tp, dt, overlap=_overlaps(ctx, unit))
    _add(ops, Op("lm_head", "cpu" if on_cpu else "accelerator", _resource(unit, w, 2.0 * seqs * head_params / tp, dt),
                 t, w, 2.0 * seqs * head_params / tp, w))
    total += t
    acc["w"] += w * tp
    acc["dense_w"] += w * tp
    acc["flops"] += 2.0 * seqs * head_params
    acc["dense_flops"] += 2.0 * seqs * head_params
    # pipeline hand-offs between stages
    if par.pp > 1 and not on_cpu:
        msg = (seqs * new_tokens + prefill_tokens) * h * ACT_BYTES
        t = (par.pp - 1) * (msg / (ctx.link_gb_s * GB * unit.eff.link) + ctx.link_latency_us * 1e-6)
        _add(ops, Op("pp_send", "link", "interconnect", t, msg))
        total += t
    t = ctx.engine.scheduler_overhead_ms * 1e-3 + (seqs + prefill_seqs * bool(prefill_tokens)) * ctx.engine.host_us_per_seq * 1e-6
    _add(ops, Op("scheduler", "cpu", "overhead", t))
    total += t
    return StepBreakdown(phase=phase, seqs=seqs, tokens=seqs * new_tokens + prefill_tokens, context=context,
                         time_s=total, ops=ops,
                         weight_bytes_total=acc["w"], kv_bytes_total=acc["kv"], flops_total=acc["flops"],
                         dense_weight_bytes_total=acc["dense_w"], dense_flops_total=acc["dense_flops"],
                         host_bytes_total=acc["host"], distinct_experts_per_layer=acc["distinct"] / max(1, n_moe),
                         overlap_saved_s=acc["saved"])
