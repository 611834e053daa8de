"""Serving metrics from step times: TTFT, TPOT, throughputs, S-MBU/S-MFU per phase.

Steady state of a continuously batched server holding ``B`` sequences per replica: while the
``B`` sequences each decode ``output_len`` tokens, ``B`` new prompts are prefilled (one per
retired request), so one "cycle" retires ``B`` requests in
``output_len × decode_step(B) + B × prefill_time_per_request``.  Each request's own decode is
stretched by the ``B − 1`` other prefills interleaved with it, which is the TPOT a client
measures.  TTFT is the prefill latency of one request on an otherwise idle replica (no
queueing; the simulator adds queueing).  Prefill is chunked at the engine's
``max_num_batched_tokens``.  With PP, ``pp`` micro-batches of ``B/pp`` sequences are in flight.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

from moecap_sim.perf.metrics import s_mbu, s_mfu
from moecap_sim.perf.step import CostContext, StepBreakdown, step_time
from moecap_sim.units import GB



@dataclass(frozen=True)
class Speculation:
    """Speculative decoding (DeepSeek MTP, EAGLE): ``draft_tokens`` proposed per step, each
    accepted with probability ``acceptance`` given the previous one was (the usual i.i.d.
    model of Leviathan et al. 2023).  A step verifies ``1 + draft_tokens`` tokens per sequence in
    one target pass and runs the draft head ``draft_tokens`` times; it emits on average
    ``(1 − a^(k+1)) / (1 − a)`` tokens."""

    draft_tokens: int
    acceptance: float

    @property
    def tokens_per_step(self) -> float:
        a, k = self.acceptance, self.draft_tokens
        return float(k + 1) if a >= 1.0 else (1.0 - a ** (k + 1)) / (1.0 - a)


@dataclass
class Serving:
    batch_per_replica: int
    ttft_s: float
    decode_step_s: float  # one steady-state pass (decode tokens + the prefill chunk riding with them)
    tpot_s: float  # as a client measures it (interleaved prefills included)
    e2e_s: float
    prefill_tokens_per_s: float  # whole system
    output_tokens_per_s: float
    total_tokens_per_s: float
    per_user_tokens_per_s: float
    requests_per_s: float
    prefill: StepBreakdown
    decode: StepBreakdown
    phase_metrics: dict
    decode_time_fraction: float
    decode_only_step_s: float = 0.0  # the same decode batch without any prefill in the pass


def prefill_latency(ctx: CostContext, input_len: int) -> tuple[float, StepBreakdown]:
    """Latency of prefilling one prompt in chunks of ``max_num_batched_tokens``; returns the
    total and the breakdown of the largest chunk."""
    chunk = ctx.engine.max_num_batched_tokens
    done, total, first = 0, 0.0, None
    while done < input_len:
        c = min(chunk, input_len - done)
        sb = step_time(ctx, "prefill", 1, c, done)
        total += sb.time_s
        first = first or sb
        done += c
    return total, first


def phase_utilisation(ctx: CostContext, sb: StepBreakdown) -> dict:
    """S-MBU, S-MFU, dense MBU/MFU and the bottleneck of one pass."""
    dep = ctx.dep
    unit = ctx.main
    devices = 1 if unit.is_cpu else dep.parallelism.tp * dep.parallelism.pp
    peak_bw = unit.mem_gb_s * GB
    dtype = unit.compute_dtype(dep.scheme.experts)[0]
    peak_flops = unit.peak_flops(dtype)
    return {
        "time_s": sb.time_s, "tokens": sb.tokens, "seqs": sb.seqs,
        "s_mbu": s_mbu(sb.weight_bytes_total, sb.kv_bytes_total, sb.time_s, peak_bw, devices),
        "mbu": s_mbu(sb.dense_weight_bytes_total, sb.kv_bytes_total, sb.time_s, peak_bw, devices),
        "s_mfu": s_mfu(sb.flops_total, sb.time_s, peak_flops, devices),
        "mfu": s_mfu(sb.dense_flops_total, sb.time_s, peak_flops, devices),
        "host_dram_utilisation": (sb.host_bytes_total / sb.time_s / (ctx.cpu.mem_gb_s * GB)) if sb.time_s else 0.0,
        "peak_compute_dtype": dtype,
        "weight_bytes_read": sb.weight_bytes_total, "kv_bytes_read": sb.kv_bytes_total, "flops": sb.flops_total,
        "distinct_experts_per_layer": sb.distinct_experts_per_layer,
        "bottleneck": sb.bottleneck, "time_by_resource_s": sb.by_resource(),
        "ops": {k: {"time_s": o.time_s, "resource": o.resource, "unit": o.unit, "bytes": o.bytes, "flops": o.flops}
                for k, o in sorted(sb.ops.items(), key=lambda kv: -kv[1].time_s)},
    }


@dataclass(frozen=True)
class Chunk:
    """Prefill work riding in a decode pass: ``seqs`` prompts × ``tokens`` each after ``context``."""

    seqs: int = 0
    tokens: int = 0
    context: float = 0.0

    @property
    def total(self) -> int:
        return self.seqs * self.tokens


def _prefill_chunk(tokens: float, input_len: int) -> Chunk:
    """``tokens`` prefill tokens per pass as whole prompts (when a pass holds several) or a slice
    of one prompt at its mean offset (each token then attends to ~input_len/2 tokens)."""
    t = int(round(tokens))
    if t <= 0:
        return Chunk()
    if t >= input_len:
        return Chunk(seqs=max(1, t // input_len), tokens=input_len, context=0.0)
    return Chunk(seqs=1, tokens=t, context=max(0.0, (input_len - t) / 2.0))


def _decode_step(ctx: CostContext, micro: int, context: float, spec: Optional[Speculation],
                 chunk: Chunk = Chunk()) -> tuple[float, StepBreakdown]:
    """Seconds per *emitted token* of one decode micro-batch (with ``chunk`` of prefill riding in
    the same pass), and the target pass's breakdown.  With speculation, the target pass
    verifies ``1 + k`` tokens per sequence and the draft head (one extra decoder layer, as
    DeepSeek's MTP module) runs ``k`` times at one token."""
    def target(new_tokens: int) -> StepBreakdown:
        if not chunk.total:
            return step_time(ctx, "decode", micro, new_tokens, context)
        return step_time(ctx, "decode", micro, new_tokens, context, prefill_tokens=chunk.total,
                         prefill_seqs=chunk.seqs, prefill_context=chunk.context)

    if spec is None:
        sb = target(1)
        return sb.time_s, sb
    k = spec.draft_tokens
    sb = target(1 + k)
    one = step_time(ctx, "decode", micro, 1, context)
    layers = max(1, len(ctx.dep.model.arch.layers))
    fixed = ctx.engine.scheduler_overhead_ms * 1e-3
    draft = k * (one.time_s - fixed) / layers
    return (sb.time_s + draft) / spec.tokens_per_step, sb


def serve(ctx: CostContext, batch_per_replica: int, input_len: int, output_len: int,
          speculation: Optional[Speculation] = None, disaggregated: bool = False) -> Serving:
    """Steady-state serving metrics for ``batch_per_replica`` concurrent sequences.

    Continuous batching with chunked prefill (vLLM V1, SGLang, TRT-LLM, llama-server): every
    pass carries one token of each decoding sequence plus a prefill chunk, weights read once for
    both.  In steady state requests finish at ``d / output_len`` per pass, so prompts must be
    prefilled at the same rate: ``p = d · input_len / output_len`` prefill tokens per pass,
    within the engine's token budget (``d + p ≤ max_num_batched_tokens``, which caps the
    decoding sequences at ``budget · output_len / (input_len + output_len)``).  A client's TPOT
    is the pass time with the *other* requests' prefills (``(d − 1)/d`` of the chunk).
    Static batching (HF generate, MoE-Infinity): prefill the batch, then decode it.
    Disaggregated (prefill and decode on separate pools): decode passes carry no prefill; the
    output rate is the decode pool's and ``prefill_tokens_per_s`` the prefill pool's, each for
    the devices of this system.
    """
    dep = ctx.dep
    par = dep.parallelism
    replicas = par.dp
    B = max(1, batch_per_replica)
    ttft, _ = prefill_latency(ctx, input_len)
    # batched prefill throughput: a full chunk of prompts (the prefill phase's own metrics)
    budget = ctx.engine.max_num_batched_tokens
    per = min(input_len, budget)
    n = max(1, min(B, budget // per)) if ctx.engine.batching == "continuous" else B
    full = step_time(ctx, "prefill", n, per, 0)
    prefill_tps_replica = n * per / full.time_s
    context = input_len + output_len / 2.0
    if disaggregated:
        micro = max(1, math.ceil(B / par.pp))
        step, decode_sb = _decode_step(ctx, micro, context, speculation)
        tpot = decode_only = step
        out_tps = replicas * micro * par.pp / step
        decode_fraction = 1.0
    elif ctx.engine.batching == "continuous":
        d = max(1, min(B, int(budget * output_len / (input_len + output_len))))
        micro = max(1, math.ceil(d / par.pp))
        p_pass = micro * input_len / output_len  # prefill tokens per pass in steady state
        step, decode_sb = _decode_step(ctx, micro, context, speculation, _prefill_chunk(p_pass, input_len))
        decode_only = _decode_step(ctx, micro, context, speculation)[0]
        # a client's TPOT carries the other requests' prefills; alone in the batch, none
        tpot = _decode_step(ctx, micro, context, speculation,
                            _prefill_chunk(p_pass * (micro - 1) / micro, input_len))[0] if micro > 1 else decode_only
        out_tps = replicas * d / step if par.pp == 1 else replicas * micro * par.pp / step
        decode_fraction = 1.0 - min(1.0, p_pass / max(1.0, p_pass + micro))
        B = d
    else:  # static batches: prefill the whole batch, then decode it
        micro = max(1, math.ceil(B / par.pp))
        step, decode_sb = _decode_step(ctx, micro, context, speculation)
        prefill_per_request = input_len / prefill_tps_replica
        cycle = output_len * step + ttft + (B - 1) * prefill_per_request
        tpot = decode_only = step
        out_tps = replicas * B * output_len / cycle
        decode_fraction = output_len * step / cycle
    req_s = out_tps / output_len
    return Serving(batch_per_replica=B, ttft_s=ttft, decode_step_s=step, tpot_s=tpot, e2e_s=ttft + output_len * tpot,
                   prefill_tokens_per_s=replicas * prefill_tps_replica, output_tokens_per_s=out_tps,
                   total_tokens_per_s=req_s * (input_len + output_len), per_user_tokens_per_s=1.0 / tpot,
                   requests_per_s=req_s, prefill=full, decode=decode_sb,
                   phase_metrics={"prefill": phase_utilisation(ctx, full), "decode": phase_utilisation(ctx, decode_sb)},
                   decode_time_fraction=decode_fraction,
                   decode_only_step_s=decode_only)


def burst(ctx: CostContext, sv: Serving, requests_per_replica: int, input_len: int, output_len: int,
          length_dist: str = "exponential", speculation: Optional[Speculation] = None) -> Serving:
    """Throughput of a *closed burst*: ``requests_per_replica`` requests submitted at once (a
    benchmark at request rate ∞, ``vllm bench serve --num-prompts N``), run to completion.

    Throughput is output tokens over the makespan, which has three parts: the first wave's
    prefill; the steady state (``sv``) while queued requests refill the slots; and the tail,
    when the last ``B`` running sequences drain.  With ``exponential`` output lengths (the heavy
    tail of chat datasets such as ShareGPT; memoryless, so the residual lengths of the last wave
    are exponential too) the running batch decays as ``B·e^(−s/mean)`` over decode step ``s``: the
    tail spends ``mean·ln 2`` steps at each halving of the batch, at that batch's step time.  With
    ``fixed`` lengths the last wave decodes at the full batch until it ends.
    """
    B = sv.batch_per_replica
    N = max(1, requests_per_replica)
    replicas = ctx.dep.parallelism.dp
    first = min(B, N)
    t_first_prefill = first * input_len / (sv.prefill_tokens_per_s / replicas)
    t_steady = max(0, N - first) / (sv.requests_per_s / replicas)
    context = input_len + output_len / 2.0
    if length_dist == "fixed":
        t_tail = output_len * _decode_step(ctx, max(1, math.ceil(first / ctx.dep.parallelism.pp)), context,
                                           speculation)[0]
    else:
        t_tail, n = 0.0, float(first)
        while n >= 1.0:
            micro = max(1, math.ceil(n / ctx.dep.parallelism.pp))
            t_tail += output_len * math.log(2.0) * _decode_step(ctx, micro, context, speculation)[0]
            n /= 2.0
    makespan = t_first_prefill + t_steady + t_tail
    out_tps = replicas * N * output_len / makespan
    req_s = replicas * N / makespan
    from dataclasses import replace

    return replace(sv, output_tokens_per_s=out_tps, requests_per_s=req_s,
                   total_tokens_per_s=req_s * (input_len + output_len))
