"""Operator times from what a probe *measured* the device's kernels achieve (pure functions).

A datasheet spec is read as ``bytes / (BW·η_bw)`` and ``flops / (peak·η_flop)`` with documented
priors η (:mod:`moecap_sim.perf.efficiency`).  A probed CPU (``moecap-sim hw probe``) carries
measured curves instead (:class:`moecap_sim.specs.hardware.Achieved`), and an operator is timed
against them — the efficiencies then mean *fraction of a measured ceiling* (prior 1, ``0 < η ≤ 1``):

* **weight GEMMs** (an operator with FLOPs that is not attention): the rows ``M`` it multiplies
  follow from its arithmetic intensity — a ``[M, K]·[K, N]ᵀ`` GEMM moves ``K·N·b`` weight bytes
  for ``2·M·K·N`` FLOPs, so ``M = flops·b / (2·bytes)`` (``b`` bytes per element of the compute
  dtype; routed experts give the mean rows per activated expert).  The measured curve of weight
  bytes per second against ``M`` (DRAM-streamed weights) gives the operator's time
  ``bytes / G(M)``, split into a streaming part ``bytes / G(1)`` (the GEMV end: what reading the
  weights costs) and a compute part, the rest.  One curve covers skinny decode shapes and square
  prefill GEMMs; beyond the largest measured ``M`` the compute part grows linearly with ``M``.
  The split is additive, as measured (eager CPU GEMMs do not overlap the two).
* **attention** (the operator given the unit's attention factor): KV bytes at the measured
  decode-attention bandwidth plus FLOPs at the measured causal-prefill attention throughput.
* **elementwise traffic** (bytes, no FLOPs): the measured bf16 elementwise bandwidth.

Anything the probe did not measure (another dtype, no attention figure) returns ``None`` for
that part and the caller falls back to the datasheet formula.
"""

from __future__ import annotations

import math
from typing import Optional

from moecap_sim.units import GB

BYTES_PER_ELEMENT = {"fp32": 4.0, "tf32": 4.0, "bf16": 2.0, "fp16": 2.0, "fp8": 1.0, "int8": 1.0, "fp6": 0.75,
                     "int4": 0.5, "fp4": 0.5, "fp64": 8.0}


class AttentionFactor(float):
    """The unit's attention efficiency, marked so :func:`op_times` recognises the attention
    operator by the factor it is handed (arithmetic on it gives a plain float)."""


def gemm_rows(flops: float, bytes_: float, dtype: str) -> float:
    """Rows M of a weight GEMM from its FLOPs and weight bytes (``M = flops·b / (2·bytes)``)."""
    if bytes_ <= 0:
        return math.inf
    return max(1.0, flops * BYTES_PER_ELEMENT.get(dtype, 2.0) / (2.0 * bytes_))


def interp_loglog(points, x: float) -> float:
    """Piecewise-linear interpolation in log-log space, clamped to the end values."""
    pts = sorted((float(a), float(b)) for a, b in points)
    if x <= pts[0][0]:
        return pts[0][1]
    if x >= pts[-1][0]:
        return pts[-1][1]
    for (x0, y0), (x1, y1) in zip(pts, pts[1:]):
        if x <= x1:
            f = (math.log(x) - math.log(x0)) / (math.log(x1) - math.log(x0))
            return math.exp(math.log(y0) + f * (math.log(y1) - math.log(y0)))
    return pts[-1][1]  # pragma: no cover


def weight_gb_s(curve, rows: float) -> float:
    """Weight bytes/s (GB/s) a GEMM with ``rows`` rows achieves, from a measured curve; beyond the
    largest measured M the GEMM is compute-bound (time ∝ M, so GB/s ∝ 1/M)."""
    pts = sorted((float(a), float(b)) for a, b in curve)
    m_max, g_max = pts[-1]
    if rows > m_max:
        return g_max * m_max / rows
    return interp_loglog(pts, rows)


def stream_gb_s(curve) -> float:
    """The streaming end of a curve: GB/s at the smallest measured M (the GEMV)."""
    return min(curve, key=lambda p: p[0])[1]


def op_times(ach, eff, bytes_: float, flops: float, dtype: str, flop_eff: Optional[float] = None,
             bw_eff: Optional[float] = None) -> Optional[tuple[float, float]]:
    """(memory time, compute time) in seconds of one operator from the measured curves ``ach``
    (:class:`~moecap_sim.specs.hardware.Achieved`), with efficiencies as fractions of those
    ceilings; ``None`` when the probe measured nothing that applies."""
    eta_bw = bw_eff or eff.bw
    eta_flop = flop_eff or eff.flop
    if flops > 0 and isinstance(flop_eff, AttentionFactor):
        if not (ach.attention_kv_gb_s and ach.attention_tflops):
            return None
        return (bytes_ / (ach.attention_kv_gb_s * GB * flop_eff) if bytes_ else 0.0,
                flops / (ach.attention_tflops * 1e12 * flop_eff))
    if flops <= 0:
        if not bytes_:
            return 0.0, 0.0
        if not ach.elementwise_gb_s:
            return None
        return bytes_ / (ach.elementwise_gb_s * GB * eta_bw), 0.0
    curve = ach.gemm_weight_gb_s_by_rows.get(dtype)
    if not curve:
        return None
    if not bytes_:
        return None
    rows = gemm_rows(flops, bytes_, dtype)
    t_total = bytes_ / (weight_gb_s(curve, rows) * GB)
    t_mem = bytes_ / (stream_gb_s(curve) * GB)
    t_cmp = max(0.0, t_total - t_mem)
    return t_mem / eta_bw, t_cmp / eta_flop


def measured_efficiency(ach, base):
    """Efficiencies for a unit timed against measured ceilings: η = 1 of each ceiling (the probe
    measured what the kernels reach), the measured dispatch cost per operator; the other factors
    (links, collectives, grouped-MoE, and attention when the probe did not measure it) keep the
    class prior ``base``."""
    from dataclasses import replace

    attention = 1.0 if (ach.attention_kv_gb_s and ach.attention_tflops) else base.attention  # else: datasheet + prior
    return replace(base, bw=1.0, flop=1.0, attention=attention, kernel_launch_us=float(ach.dispatch_us),
                   source=f"measured ceilings ({ach.source}); eta = 1 of each, dispatch {ach.dispatch_us:.2f} us/op")
