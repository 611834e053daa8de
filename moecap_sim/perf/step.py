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

import math
from dataclasses import dataclass, field, replace
from typing import Optional

from moecap_sim.catalog.engines import EngineSpec
from moecap_sim.deployment import Deployment
from moecap_sim.geometry import Layer
from moecap_sim.perf.achieved import AttentionFactor, measured_efficiency
from moecap_sim.perf.efficiency import Calibration, Efficiency, default_efficiency
from moecap_sim.precision import NATIVE_COMPUTE_DTYPE
from moecap_sim.routing.base import RoutingProfile
from moecap_sim.specs.hardware import DeviceSpec

GB = 1e9
ACT_BYTES = 2.0  # 16-bit activations
_FALLBACK = {"fp4": ["fp4", "fp8", "bf16", "fp16", "fp32"], "fp8": ["fp8", "bf16", "fp16", "fp32"],
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
        """``max(t_mem, t_cmp)`` when the kernel overlaps streaming with compute; their sum when
        it does not (``overlap=False``: a CPU GEMM that repacks each weight block into the matrix
        unit's layout before multiplying it, as eager PyTorch/oneDNN does with plain weights)."""
        t_mem, t_cmp = self.times(bytes_, flops, dtype, flop_eff, bw_eff)
        if self.achieved is not None:
            return t_mem + t_cmp  # measured curves split a kernel's time additively (perf/achieved.py)
        return max(t_mem, t_cmp) if overlap else t_mem + t_cmp

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

    @property
    def main(self) -> Unit:
        """The unit that runs the dense part of the model."""
        return self.cpu if (self.accel is None or self.placement == "cpu-only") else self.accel


def make_unit(dev: DeviceSpec, count: int = 1, calibration: Optional[Calibration] = None,
              mem_gb_s: Optional[float] = None, compute_fraction: float = 1.0) -> Unit:
    """A unit from a device spec; ``count`` sockets/devices, ``compute_fraction`` of their cores
    (a cloud VM that gets only some vCPUs of a socket)."""
    ach = dev.achieved if (dev.kind == "cpu" and count == 1 and compute_fraction == 1.0) else None
    base = default_efficiency(dev.efficiency_class)
    if ach is not None:  # η become fractions of measured ceilings (prior 1)
        base = measured_efficiency(ach, base)
    eff = (calibration.for_device(dev.name, dev.efficiency_class, base=base) if calibration else None) or base
    if ach is not None:  # mark the attention factor so Unit.times recognises the attention operator
        eff = replace(eff, attention=AttentionFactor(eff.attention))
    peaks = {k: v * compute_fraction for k, v in dev.compute.dense_tflops.items()}
    return Unit(name=dev.name, mem_gb_s=mem_gb_s or dev.memory.bandwidth_gb_s * count, peaks=peaks,
                eff=eff, count=count, is_cpu=dev.kind == "cpu", achieved=ach)


def build_context(dep: Deployment, engine: EngineSpec, routing: RoutingProfile, placement: str,
                  calibration: Optional[Calibration] = None, cache_experts_per_layer: Optional[float] = None
                  ) -> CostContext:
    s = dep.system
    sockets = s.host.cpu.sockets
    frac = 1.0
    if s.host.cpu.vcpus and dep.host_cpu.cpu is not None:
        # a VM slice: its vCPUs are hyper-threads of part of the sockets' cores
        frac = min(1.0, s.host.cpu.vcpus / (2.0 * dep.host_cpu.cpu.cores * sockets))
    dram_gb_s = dep.host_dram_bandwidth_gb_s
    if sockets > 1 and not engine.numa_aware:
        # Weights are first-touched into one NUMA node; threads on the other socket read them over
        # the socket link, so a NUMA-unaware engine streams at about one socket's bandwidth.
        dram_gb_s /= sockets
    cpu = make_unit(dep.host_cpu, count=sockets, calibration=calibration, mem_gb_s=dram_gb_s,
                    compute_fraction=frac)
    accel = make_unit(dep.accelerator, calibration=calibration) if dep.accelerator else None
    if s.interconnect is not None:
        link, lat = s.interconnect.bandwidth_gb_s, s.interconnect.latency_us
    elif dep.accelerator is not None and dep.accelerator.device_link is not None:
        link, lat = dep.accelerator.device_link.bandwidth_gb_s, dep.accelerator.device_link.latency_us
    else:
        link, lat = 25.0, 10.0  # through host PCIe (assumption, used only if TP/EP > 1)
    host_link = dep.accelerator.host_link if dep.accelerator is not None and dep.accelerator.host_link else None
    experts_total = dep.model.arch.params_by_group()["experts"] * dep.scheme.bytes_per_param("experts")
    dram_frac = min(1.0, s.host.dram_gb * GB * 0.9 / experts_total) if experts_total else 1.0
    return CostContext(dep=dep, engine=engine, routing=routing, placement=placement, accel=accel, cpu=cpu,
                       link_gb_s=link, link_latency_us=lat,
                       host_link_gb_s=host_link.bandwidth_gb_s if host_link else 25.0,
                       host_link_latency_us=host_link.latency_us if host_link else 10.0,
                       nvme_gb_s=s.host.nvme_bandwidth_gb_s or 2.0,
                       cache_experts_per_layer=cache_experts_per_layer, dram_fraction_of_experts=dram_frac)


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


def _layer_ops(ctx: CostContext, layer: Layer, moe_idx: Optional[int], phase: str, seqs: int, new_tokens: int,
               context: float, ops: dict[str, Op], acc: dict) -> float:
    """Append one layer's operators; return the layer's time on the critical path."""
    dep = ctx.dep
    par = dep.parallelism
    arch = dep.model.arch
    scheme = dep.scheme
    unit = ctx.main
    on_cpu = unit is ctx.cpu
    tp = 1 if on_cpu else par.tp
    h = arch.hidden_size
    T = seqs * new_tokens
    a = layer.attention
    gpu_time = 0.0
    overlap_ok = _overlaps(ctx, unit)

    def run(name, bytes_, flops, dtype_group=None, dtype=None, wbytes=0.0, kvbytes=0.0, flop_eff=None, bw_eff=None,
            u=None):
        nonlocal gpu_time
        u = u or unit
        if dtype is None:
            dtype, weight_only = u.compute_dtype(scheme.dtype_of(dtype_group))
            if weight_only and flop_eff is None:
                flop_eff = u.eff.flop * 0.8  # dequantize in the GEMM main loop
        t = u.roofline(bytes_, flops, dtype, flop_eff, bw_eff, overlap=overlap_ok or u is not unit)
        _add(ops, Op(name, "cpu" if u is ctx.cpu else "accelerator", _resource(u, bytes_, flops, dtype, flop_eff, bw_eff),
                     t, bytes_, flops, wbytes, kvbytes))
        return t

    def weight_gemm(name: str, params: float, group: str, split: int, extra_bytes: float = 0.0) -> None:
        """A GEMM every token of the pass runs (not routed): ``params`` split ``split`` ways on
        each device; counted alike in the sparse and the dense (vanilla) totals."""
        nonlocal gpu_time
        w = params * scheme.bytes_per_param(group) / split
        gpu_time += run(name, w + extra_bytes, 2.0 * T * params / split, group, wbytes=w)
        acc["w"] += w * tp
        acc["dense_w"] += w * tp
        acc["flops"] += 2.0 * T * params
        acc["dense_flops"] += 2.0 * T * params

    act_dtype = unit.compute_dtype("bf16")[0]
    # --- attention projections
    weight_gemm("attn_proj", a.params, "attention", tp, extra_bytes=T * 4 * h * ACT_BYTES / tp)
    # --- attention core (scores + values over the KV cache)
    if a.kind == "linear":
        state = seqs * a.state_elems * 4.0 * 2 / tp
        gpu_time += run("attn_core", state, 4.0 * T * a.state_elems / tp, dtype=act_dtype, kvbytes=state,
                        flop_eff=unit.eff.attention)
        acc["kv"] += state * tp
    else:
        ctx_eff = min(context, a.window) if a.window else context
        if a.kind == "mla":
            kv_elems_dev = a.kv_elems_per_token()  # latent replicated on each TP rank
            per_ctx_flops = 2.0 * a.num_heads * (2 * a.kv_lora_rank + a.qk_rope_head_dim) if phase == "decode" \
                else 2.0 * a.num_heads * (a.head_dim + a.v_head_dim)
        else:
            kv_elems_dev = max(1, math.ceil(a.num_kv_heads / tp)) * (a.head_dim + a.v_head_dim)
            per_ctx_flops = 2.0 * a.num_heads * (a.head_dim + a.v_head_dim)
        if phase == "decode":
            # an unfused decode attention (scores and values as two batched GEMMs, e.g. absorbed
            # MLA in eager PyTorch) streams the cache once per GEMM; fused kernels read it once
            passes = ctx.engine.decode_kv_passes.get(a.kind, 1)
            kv_read = seqs * ctx_eff * kv_elems_dev * dep.kv_bytes * passes
            flops = seqs * per_ctx_flops * ctx_eff / tp
        else:
            span = min(context + new_tokens, a.window) if a.window else context + new_tokens
            kv_read = seqs * span * kv_elems_dev * dep.kv_bytes
            causal = (min(context, a.window) if a.window else context) + new_tokens / 2.0
            flops = seqs * new_tokens * per_ctx_flops * causal / tp
        if a.cross_attention_params:
            kv_read *= 2
            flops *= 2
        gpu_time += run("attn_core", kv_read, flops, dtype=act_dtype, kvbytes=kv_read, flop_eff=unit.eff.attention)
        acc["kv"] += kv_read * tp
    # --- FFN part
    m = layer.moe
    elementwise = T * h * ACT_BYTES * 10  # residual stream is replicated on every TP rank
    gpu_time += run("norm_elementwise", elementwise, 0.0, dtype=act_dtype)
    if layer.dense_ffn_params:
        weight_gemm("dense_ffn", layer.dense_ffn_params, "dense_ffn", tp)
    cpu_time = 0.0
    if m is not None:
        weight_gemm("router", m.router_params, "router", 1)  # replicated on every TP rank
        if m.shared_params:
            weight_gemm("shared", m.shared_params, "shared_experts", tp)
        expert_bytes = m.expert_params * scheme.bytes_per_param("experts")
        ep = par.ep if not on_cpu else 1
        shards = 1 if on_cpu else max(tp, ep)
        # With EP wider than TP (DeepSeek-style DP-attention + EP), each MoE layer gathers the
        # tokens of ep/tp data-parallel ranks: the expert GEMMs see that many more tokens.
        t_moe = T * (ep // tp) if ep > tp else T
        distinct = ctx.routing.expected_distinct_experts(t_moe, moe_idx) if t_moe > 0 else 0.0
        distinct = min(float(m.num_experts), max(distinct, min(m.top_k, m.num_experts) if T else 0.0))
        acc["distinct"] += distinct
        if ep > 1:
            d_rank = min(m.num_experts / ep, ctx.routing.ep_max_rank_distinct(t_moe, ep, moe_idx))
            load_rank = ctx.routing.ep_max_rank_load(t_moe, ep, moe_idx)
            split = ep / shards  # an expert further split over TP ranks when tp > ep
            e_bytes_dev = d_rank * expert_bytes * split
            e_flops_dev = 2.0 * load_rank * m.expert_params * split
        else:
            e_bytes_dev = distinct * expert_bytes / shards
            e_flops_dev = 2.0 * T * m.top_k * m.expert_params / shards
        acc["w"] += e_bytes_dev * tp  # bytes this replica's devices read
        acc["dense_w"] += m.num_experts * expert_bytes
        acc["flops"] += 2.0 * T * m.top_k * m.expert_params
        acc["dense_flops"] += 2.0 * T * m.num_experts * m.expert_params
        per_expert_kernels = ctx.engine.moe_kernel == "per-expert"
        if ctx.placement == "cpu-experts" and not on_cpu:
            dt, wo = ctx.cpu.compute_dtype(scheme.dtype_of("experts"))
            b = distinct * expert_bytes
            f = 2.0 * T * m.top_k * m.expert_params
            t = ctx.cpu.roofline(b, f, dt, ctx.cpu.eff.flop * (0.8 if wo else 1.0), ctx.cpu.eff.bw * ctx.cpu.eff.moe_grouped)
            res = _resource(ctx.cpu, b, f, dt, ctx.cpu.eff.flop * (0.8 if wo else 1.0), ctx.cpu.eff.bw * ctx.cpu.eff.moe_grouped)
            # For large batches (prefill) engines upload the CPU-resident experts to the GPU and
            # multiply there when that is faster (llama.cpp offloads ops with ≥32 rows; KTransformers
            # does the same for long prompts): PCIe streaming overlapped with GPU compute.
            t_up = b / (ctx.host_link_gb_s * GB * unit.eff.link)
            t_gpu = unit.roofline(0.0, f, unit.compute_dtype(scheme.dtype_of("experts"))[0])
            if phase == "prefill" and max(t_up, t_gpu) < t:
                _add(ops, Op("expert_upload", "link", "pcie", max(t_up, t_gpu), b, f, b, 0.0))
                acc["host"] += b
                gpu_time += max(t_up, t_gpu)
            else:
                _add(ops, Op("cpu_experts", "cpu", res, t, b, f, b, 0.0))
                acc["host"] += b
                sync = ctx.engine.cpu_sync_us * 1e-6 + 2 * T * h * ACT_BYTES / (ctx.host_link_gb_s * GB)
                _add(ops, Op("cpu_gpu_sync", "link", "pcie", sync))
                cpu_time = t + sync
            acc["w"] -= e_bytes_dev * tp  # not read from accelerator memory
        else:
            bw_eff = unit.eff.bw * (unit.eff.moe_grouped if not per_expert_kernels else 1.0)
            gpu_time += run("experts", e_bytes_dev, e_flops_dev, "experts", wbytes=e_bytes_dev, bw_eff=bw_eff)
            # activation traffic of routing tokens to their experts and back, which scales with
            # top_k (norm_elementwise counts passes over T×h only).  Elements moved per
            # (token, expert) assignment — a per-expert loop (HF style): gather the row (r+w h),
            # gate/up GEMM in/out (h + 2I), SiLU·mul (5I), down GEMM in/out (I + h), gate-weight
            # multiply (2h), index_add into the output (3h) = 9h + 8I; a fused kernel reads the
            # rows in place: GEMM1 in/out (h + 2I), act·mul (3I), GEMM2 in/out (I + h), top-k
            # sum (h) = 3h + 6I
            inter = m.expert_params / (3.0 * h)
            per_assign = (9.0 * h + 8.0 * inter) if per_expert_kernels else (3.0 * h + 6.0 * inter)
            assign = ctx.routing.ep_max_rank_load(T, ep, moe_idx) if ep > 1 else T * m.top_k / shards
            gpu_time += run("moe_dispatch", assign * per_assign * ACT_BYTES, 0.0, dtype=act_dtype)
            if per_expert_kernels:
                # an eager loop over the activated experts dispatches its own operators per expert
                # (GEMMs, activation, slicing) on a CPU exactly as on a GPU
                d_dev = distinct / shards if ep == 1 else e_bytes_dev / max(expert_bytes, 1)
                per_expert = ctx.engine.kernels_per_expert
                t = per_expert * max(1.0, d_dev) * unit.eff.kernel_launch_us * 1e-6
                _add(ops, Op("launch", "cpu" if on_cpu else "accelerator", "overhead", t))
                gpu_time += t
            if ctx.placement in ("expert-cache", "nvme") and not on_cpu:
                cached = ctx.cache_experts_per_layer if ctx.cache_experts_per_layer is not None else 0.0
                hit = ctx.routing.cache_hit_rate(int(cached)) if phase == "decode" else min(1.0, cached / m.num_experts)
                miss_bytes = e_bytes_dev * (1.0 - hit)
                bw = ctx.host_link_gb_s * GB * unit.eff.link
                t_fetch = miss_bytes / bw + (ctx.host_link_latency_us * 1e-6 if miss_bytes else 0.0)
                if ctx.placement == "nvme":
                    frac = ctx.dram_fraction_of_experts
                    # each device has its own PCIe link, but the NVMe drive is shared by all of them
                    t_fetch = (miss_bytes * (frac / bw + (1 - frac) * shards / (ctx.nvme_gb_s * GB))
                               + (ctx.host_link_latency_us * 1e-6 if miss_bytes else 0.0))
                _add(ops, Op("expert_fetch", "link", "nvme" if ctx.placement == "nvme" and ctx.dram_fraction_of_experts < 1 else "pcie",
                             t_fetch, miss_bytes))
                acc["host"] += miss_bytes * shards
                if ctx.engine.prefetch:
                    saved = min(t_fetch, gpu_time)
                    acc["saved"] += saved
                    gpu_time += t_fetch - saved
                else:
                    gpu_time += t_fetch
        if ep > tp and not on_cpu:
            # tokens live on different DP ranks: all-to-all dispatch and combine.  (With ep ≤ tp
            # every rank already holds all tokens and the TP all-reduce combines the experts.)
            vol = 2 * T * m.top_k * h * ACT_BYTES * (ep - 1) / ep  # dispatch + combine of this rank's tokens
            alpha = max(unit.eff.collective_latency_us, ctx.link_latency_us * math.log2(ep)) * 1e-6
            t = vol / (ctx.link_gb_s * GB * unit.eff.link) + 2 * alpha
            _add(ops, Op("ep_alltoall", "link", "interconnect", t, vol))
            gpu_time += t
    # --- TP all-reduces: after attention and after the FFN (ring)
    if tp > 1:
        msg = T * h * ACT_BYTES
        alpha = max(unit.eff.collective_latency_us, ctx.link_latency_us * math.log2(tp)) * 1e-6
        t = 2 * (2 * (tp - 1) / tp * msg / (ctx.link_gb_s * GB * unit.eff.link) + alpha)
        _add(ops, Op("tp_allreduce", "link", "interconnect", t, 2 * msg))
        gpu_time += t
    # --- kernel launches
    if not on_cpu:
        per_kernel = unit.eff.graph_kernel_us if (ctx.engine.cuda_graphs and phase == "decode") else unit.eff.kernel_launch_us
        t = ctx.engine.kernels_per_layer * per_kernel * 1e-6
    else:
        t = ctx.engine.kernels_per_layer * unit.eff.kernel_launch_us * 1e-6
    _add(ops, Op("launch", "accelerator", "overhead", t))
    gpu_time += t
    if cpu_time > 0:
        # CPU experts overlap the GPU part of the layer (KTransformers / llama.cpp --cpu-moe)
        layer_time = max(gpu_time, cpu_time)
        acc["saved"] += gpu_time + cpu_time - layer_time
        return layer_time
    return gpu_time


def step_time(ctx: CostContext, phase: str, seqs: int, new_tokens: int, context: float) -> StepBreakdown:
    """Time of one forward pass of one replica: ``seqs`` sequences, each adding ``new_tokens``
    tokens (1 in decode) on top of ``context`` tokens already in its KV cache (mean)."""
    if phase not in ("prefill", "decode"):
        raise ValueError(phase)
    dep = ctx.dep
    arch = dep.model.arch
    par = dep.parallelism
    ops: dict[str, Op] = {}
    acc = dict(w=0.0, kv=0.0, flops=0.0, dense_w=0.0, dense_flops=0.0, host=0.0, distinct=0.0, saved=0.0)
    total = 0.0
    moe_idx = 0
    n_moe = 0
    for layer in arch.layers:
        if layer.role == "encoder" and phase == "decode":
            continue
        idx = None
        if layer.moe is not None:
            idx = moe_idx
            moe_idx += 1
            n_moe += 1
        total += _layer_ops(ctx, layer, idx, phase, seqs, new_tokens, context, ops, acc)
    unit = ctx.main
    on_cpu = unit is ctx.cpu
    tp = 1 if on_cpu else par.tp
    # LM head over the sampled rows (one per sequence)
    V, h = arch.vocab_size, arch.hidden_size
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
        msg = seqs * new_tokens * h * ACT_BYTES
        t = (par.pp - 1) * (msg / (ctx.link_gb_s * GB * unit.eff.link) + ctx.link_latency_us * 1e-6)
        _add(ops, Op("pp_send", "link", "interconnect", t, msg))
        total += t
    t = ctx.engine.scheduler_overhead_ms * 1e-3
    _add(ops, Op("scheduler", "cpu", "overhead", t))
    total += t
    return StepBreakdown(phase=phase, seqs=seqs, tokens=seqs * new_tokens, context=context, time_s=total, ops=ops,
                         weight_bytes_total=acc["w"], kv_bytes_total=acc["kv"], flops_total=acc["flops"],
                         dense_weight_bytes_total=acc["dense_w"], dense_flops_total=acc["dense_flops"],
                         host_bytes_total=acc["host"], distinct_experts_per_layer=acc["distinct"] / max(1, n_moe),
                         overlap_saved_s=acc["saved"])
