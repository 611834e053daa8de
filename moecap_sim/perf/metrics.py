"""S-MBU / S-MFU (MoE-CAP, corrected) and their dense counterparts — pure functions.

Corrections to the reference implementation (see shared/reference/moe-cap-paper.md §1.2):
the expert term counts the *top-k* experts (plus shared) per token, not one; the router is
included; peaks are dense (no 2:4 sparsity, no ``/2`` fudge); the KV term reads the whole
context of every sequence in decode; the KV dtype is separate from the weight dtype; the
aggregate over passes is a ratio of sums (Eq. 6), not a mean of ratios.
"""

from __future__ import annotations


def s_mbu(weight_bytes_read: float, kv_bytes_read: float, time_s: float, peak_bw_bytes_s: float, devices: int) -> float:
    """Sparsity-aware memory-bandwidth utilisation: bytes actually read (activated weights —
    attention, router, shared, the *distinct* experts the batch touched, LM head — plus KV)
    per second over the devices' aggregate peak bandwidth."""
    if time_s <= 0 or peak_bw_bytes_s <= 0 or devices <= 0:
        return 0.0
    return (weight_bytes_read + kv_bytes_read) / time_s / (peak_bw_bytes_s * devices)


def s_mfu(flops: float, time_s: float, peak_flops: float, devices: int) -> float:
    """Sparsity-aware FLOP utilisation: FLOPs of top-k + shared experts, router, attention
    projections and scores, dense FFNs and LM head, over the aggregate *dense* peak."""
    if time_s <= 0 or peak_flops <= 0 or devices <= 0:
        return 0.0
    return flops / time_s / (peak_flops * devices)


def aggregate_ratio_of_sums(numerators: list[float], times: list[float], denominator_per_s: float) -> float:
    """Eq. (6): Σ bytes (or FLOPs) / Σ time / peak — the correct aggregate over forward passes."""
    total_t = sum(times)
    if total_t <= 0 or denominator_per_s <= 0:
        return 0.0
    return sum(numerators) / total_t / denominator_per_s
