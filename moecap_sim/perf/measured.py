"""Metrics from measured per-pass records (the MoE-CAP recorder's JSONL), with the corrected
definitions of :mod:`moecap_sim.perf.metrics`.

Each record is one forward pass: ``latency`` (s), ``batch_size``, ``seq_lens_sum``,
``forward_mode`` (``prefill``/``extend``/``decode``/``mixed``), ``expert_activation`` (mean
number of activated experts per MoE layer, or a per-layer list of counts, or per-layer lists
of per-expert token counts), optionally ``scheduled_tokens`` and ``gpu_num``.  Prefill records
with ``seq_lens_sum ≤ 10`` are warm-up probes and are dropped, as the reference does.

Corrections applied (see moe-cap-paper.md §1.2): top-k experts per token in S-MFU (not one),
router FLOPs included, dense peaks, a KV dtype separate from the weight dtype, and the
ratio-of-sums aggregate of Eq. (6) instead of a mean of per-pass ratios.  In vLLM decode
records ``seq_lens_sum`` equals the scheduled tokens, so the context KV read cannot be
recovered; this is detected and reported.
"""

from __future__ import annotations

from typing import Any, Optional

from moecap_sim.deployment import resolve_deployment
from moecap_sim.errors import UserError
from moecap_sim.perf.metrics import aggregate_ratio_of_sums
from moecap_sim.units import GB



def read_records(path: str) -> list[dict]:
    """Read recorder JSONL (one record per line) or a JSON list with the one record schema
    :class:`moecap_sim.inputs.RecorderRecord` (shared with ``trace import``); errors name the
    file, line, field and value.  ``metrics`` needs ``latency``, ``batch_size`` and ``forward_mode``."""
    from moecap_sim.inputs import read_recorder_records

    out = []
    for i, rec, where in read_recorder_records(path, required=("latency", "batch_size", "forward_mode")):
        for f in ("latency", "batch_size", "forward_mode"):
            if getattr(rec, f) is None:
                raise UserError(f"{where}: field '{f}' = null: {'a positive number of seconds' if f == 'latency' else 'required'} (line {i})")
        out.append(dict(rec.model_dump(), _line=i, _record=rec))
    return out


def metrics_from_records(records_path: str, model: str, hw: str, precision: Optional[str] = None,
                         kv_dtype: Optional[str] = None) -> dict[str, Any]:
    """S-MBU, S-MFU, TTFT, TPOT and throughputs of measured passes, and how much vanilla (all
    experts counted) MBU/MFU would over-count.  Utilisation above 100 % is refused as inconsistent input."""
    recs = read_records(records_path)
    gpus = [(r["_line"], r["gpu_num"]) for r in recs if r.get("gpu_num") is not None]
    if len({g for _, g in gpus}) > 1:
        line, g = next((ln, g) for ln, g in gpus if g != gpus[0][1])
        raise UserError(f"{records_path}:{line}: field 'gpu_num' = {g} differs from {gpus[0][1]} on line {gpus[0][0]}: "
                        f"the records must come from one deployment")
    first_gpus = gpus[0][1] if gpus else None
    try:
        dep = resolve_deployment(model, hw, precision=precision, kv_dtype=kv_dtype,
                                 tp=int(first_gpus) if isinstance(first_gpus, int) and first_gpus > 0 else None)
    except UserError as exc:
        if first_gpus and "devices, but" in str(exc):  # the records' GPU count does not fit --hw
            raise UserError(f"{records_path}:{gpus[0][0]}: field 'gpu_num' = {first_gpus}: {exc}") from None
        raise
    a = dep.model.arch
    s = dep.scheme
    g = a.params_by_group()
    devices = dep.parallelism.devices_used
    unit_bw = (dep.accelerator.memory.bandwidth_gb_s if dep.accelerator else dep.host_dram_bandwidth_gb_s) * GB
    dtype_pref = {"fp8": "fp8", "int8": "int8", "fp32": "fp32"}.get(s.experts, "bf16")
    peaks = (dep.accelerator or dep.host_cpu).compute.dense_tflops
    dtype = dtype_pref if dtype_pref in peaks else ("bf16" if "bf16" in peaks else next(iter(peaks)))
    peak_flops = peaks[dtype] * 1e12 * (1 if dep.accelerator else dep.system.host.cpu.sockets)
    moe = a.moe_layers
    n_moe = len(moe)
    k = a.top_k if moe else 0
    expert_b = a.expert_params * s.bytes_per_param("experts") if moe else 0.0
    always_b = sum(p * s.bytes_per_param(grp) for grp, p in g.items() if grp not in ("experts", "embeddings"))
    matmul_nonexpert = a.matmul_params_per_token() - (k * sum(l.moe.expert_params for l in moe))
    kv_tok = a.kv_bytes_per_token(dep.kv_bytes)
    per_ctx_attn = a.attention_flops_per_token(1)  # FLOPs per token per context token (all layers)
    phases: dict[str, dict[str, list]] = {"prefill": {}, "decode": {}}
    notes = []
    vllm_decode_context_missing = 0
    dropped = 0
    for r in recs:
        rec = r["_record"]
        mode = rec.mode
        phase = "decode" if mode == "decode" else "prefill"
        if mode == "mixed":
            notes.append("mixed prefill+decode passes are counted as prefill")
        lens = float(rec.seq_lens_sum or 0)
        bs = int(rec.batch_size)
        if phase == "prefill" and lens <= 10:
            dropped += 1
            continue
        tokens = float(rec.scheduled or (bs if phase == "decode" else lens))
        d = rec.distinct_per_layer() if moe else 0.0
        d = float(k) if d is None else d
        if moe and d > a.num_experts:
            raise UserError(f"{records_path}:{r['_line']}: field 'expert_activation' = {d:g} distinct experts per layer, "
                            f"but {dep.model.name} has {a.num_experts} experts")
        wbytes = always_b + n_moe * d * expert_b
        dense_wbytes = always_b + g["experts"] * s.bytes_per_param("experts")
        if phase == "decode" and lens <= bs:
            vllm_decode_context_missing += 1
        kv = lens * kv_tok
        ctx_mean = lens / max(1, bs)
        attn = per_ctx_attn * (lens if phase == "decode" else tokens * ctx_mean / 2.0)
        flops = 2.0 * tokens * (matmul_nonexpert + k * a.expert_params * n_moe) + attn
        dense_flops = 2.0 * tokens * (matmul_nonexpert + a.num_experts * a.expert_params * n_moe if moe else matmul_nonexpert) + attn
        p = phases[phase]
        for key, v in (("lat", r["latency"]), ("w", wbytes), ("dw", dense_wbytes), ("kv", kv), ("f", flops),
                       ("df", dense_flops), ("tok", tokens), ("bs", bs), ("d", d)):
            p.setdefault(key, []).append(v)
    if vllm_decode_context_missing:
        notes.append(f"{vllm_decode_context_missing} decode records have seq_lens_sum ≤ batch_size (vLLM records "
                     f"scheduled tokens there): the context KV read of those passes is missing from S-MBU")
    out: dict[str, Any] = {"model": dep.model.name, "hardware": dep.system.name, "devices": devices,
                           "peak_bandwidth_gb_s": unit_bw / GB, "peak_tflops": peak_flops / 1e12, "peak_dtype": dtype,
                           "weights": s.describe(), "kv_dtype": dep.kv_dtype, "records": len(recs),
                           "dropped_warmup_prefill": dropped, "notes": sorted(set(notes))}
    for phase, p in phases.items():
        if not p:
            out[phase] = None
            continue
        lat = p["lat"]
        bw_peak = unit_bw * devices
        fl_peak = peak_flops * devices
        read = [w + kv for w, kv in zip(p["w"], p["kv"])]
        dense_read = [w + kv for w, kv in zip(p["dw"], p["kv"])]
        out[phase] = {
            "passes": len(lat), "total_latency_s": sum(lat), "mean_pass_latency_s": sum(lat) / len(lat),
            "s_mbu": aggregate_ratio_of_sums(read, lat, bw_peak),
            "s_mfu": aggregate_ratio_of_sums(p["f"], lat, fl_peak),
            # Vanilla MBU/MFU charge every expert to every pass (bytes) and token (FLOPs): bytes never
            # read and FLOPs never executed, so as "utilisations" they exceed 100 % on MoE models
            # (146.7 % / 303.9 % on the shipped example).  Reported as the over-count factor instead.
            "vanilla_overcount": {"bytes": sum(dense_read) / sum(read) if sum(read) else None,
                                  "flops": sum(p["df"]) / sum(p["f"]) if sum(p["f"]) else None},
            "tokens_per_s": sum(p["tok"]) / sum(lat),
            "mean_activated_experts_per_layer": sum(p["d"]) / len(p["d"]) if moe else None,
        }
        for key, what, peak in (("s_mbu", "bandwidth", f"{bw_peak / GB:,.0f} GB/s"),
                                ("s_mfu", "compute", f"{fl_peak / 1e12:,.0f} TFLOPS {dtype}")):
            if out[phase][key] > 1.0:
                raise UserError(
                    f"{records_path}: the {phase} records imply {100 * out[phase][key]:.0f}% of the {what} peak "
                    f"({peak} on {devices} × {(dep.accelerator or dep.host_cpu).name}) — impossible: check --hw, "
                    f"--precision, gpu_num and that 'latency' is in seconds")
    out["ttft_s"] = out["prefill"]["mean_pass_latency_s"] if out["prefill"] else None
    out["tpot_s"] = out["decode"]["mean_pass_latency_s"] if out["decode"] else None
    out["decode_throughput_tokens_per_s"] = out["decode"]["tokens_per_s"] if out["decode"] else None
    out["prefill_throughput_tokens_per_s"] = out["prefill"]["tokens_per_s"] if out["prefill"] else None
    return out
