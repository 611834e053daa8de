"""Public Python API — one function per CLI command, returning plain data (dicts/dataclasses).

    >>> from moecap_sim import api
    >>> api.predict(model="mixtral-8x7b", hw="h100x8")["tpot_s"]          # doctest: +SKIP

The CLI (``moecap_sim.cli``) only parses arguments, calls these functions and renders.
"""

from __future__ import annotations

from typing import Any, Optional

from moecap_sim.catalog.hardware import devices, systems
from moecap_sim.catalog.models import get_model, list_models
from moecap_sim.specs.hardware import uncertain_fields


# ---- models ----------------------------------------------------------------------------------

def model_summary(name: str) -> dict[str, Any]:
    """Derived geometry of a catalog model (or HF config.json path), as plain numbers."""
    m = get_model(name)
    a = m.arch
    from moecap_sim.precision import resolve_scheme, uniform_scheme
    groups = a.params_by_group()
    native = resolve_scheme(m.native_precision, None)
    moe = a.moe_layers
    out = {
        "name": m.name, "display_name": m.display_name, "aliases": m.aliases, "hf_repo": m.hf_repo,
        "family": a.family, "native_precision": native.describe(),
        "total_params": int(round(a.total_params)),
        "active_params": int(round(a.active_params(m.published.active_convention if m.published else "with_embeddings"))),
        "active_params_with_embeddings": int(round(a.active_params("with_embeddings"))),
        "active_params_without_input_embedding": int(round(a.active_params("without_input_embedding"))),
        "params_by_group": {g: int(round(v)) for g, v in groups.items()},
        "hidden_size": a.hidden_size, "num_layers": a.num_layers, "vocab_size": a.vocab_size,
        "num_moe_layers": len(moe), "num_experts": a.num_experts if moe else 0, "top_k": a.top_k if moe else 0,
        "num_shared_experts": a.num_shared_experts if moe else 0,
        "params_per_expert": int(round(a.expert_params)) if moe else 0,
        "attention": sorted({l.attention.kind for l in a.layers}),
        "kv_bytes_per_token_bf16": a.kv_bytes_per_token(2.0),
        "flops_per_token_at_1k_context": a.flops_per_token(1024),
        "weight_gb": {p: sum(v * uniform_scheme(p).bytes_per_param(g) for g, v in groups.items()) / 1e9
                      for p in ("bf16", "fp8", "int4", "mxfp4")},
        "weight_gb_native": sum(v * native.bytes_per_param(g) for g, v in groups.items()) / 1e9,
        "max_context": a.max_context,
        "published": m.published.model_dump() if m.published else None,
        "config_source": m.config_source, "notes": list(a.notes) + ([m.notes] if m.notes else []),
    }
    return out


def models_list() -> list[dict[str, Any]]:
    rows = []
    for m in list_models():
        a = m.arch
        rows.append({"name": m.name, "display_name": m.display_name, "family": a.family,
                     "total_params": int(round(a.total_params)),
                     "active_params": int(round(a.active_params(m.published.active_convention if m.published else "with_embeddings"))),
                     "experts": a.num_experts if a.moe_layers else 0, "top_k": a.top_k if a.moe_layers else 0,
                     "aliases": m.aliases})
    return rows


# ---- hardware ----------------------------------------------------------------------------------

def hw_list() -> dict[str, list[dict[str, Any]]]:
    devs = []
    for d in devices().all():
        devs.append({"name": d.name, "display_name": d.display_name, "kind": d.kind,
                     "memory_gb": d.memory.capacity_gb, "bandwidth_gb_s": d.memory.bandwidth_gb_s,
                     "bf16_tflops": d.compute.dense_tflops.get("bf16"), "fp8_tflops": d.compute.dense_tflops.get("fp8"),
                     "tdp_w": d.power.tdp_w})
    syss = []
    for s in systems().all():
        acc = s.accelerators
        syss.append({"name": s.name, "display_name": s.display_name,
                     "accelerators": f"{acc.count}× {acc.device}" if acc else "none (CPU only)",
                     "host_cpu": f"{s.host.cpu.sockets}× {s.host.cpu.device}", "dram_gb": s.host.dram_gb,
                     "on_demand_usd_per_hour": s.pricing.on_demand_usd_per_hour,
                     "purchase_usd": s.pricing.purchase_usd})
    return {"devices": devs, "systems": syss}


def hw_show(name: str) -> dict[str, Any]:
    """A system or device spec (systems win when a name is both), with uncertain fields listed."""
    from moecap_sim.errors import UserError, unknown_name
    for reg, kind in ((systems(), "system"), (devices(), "device")):
        try:
            spec = reg.get(name)
        except UserError:
            continue
        d = spec.model_dump()
        d["spec_kind"] = kind
        d["uncertain_fields"] = uncertain_fields(spec)
        if kind == "system":
            d["devices"] = {}
            from moecap_sim.deployment import device_of
            if spec.accelerators:
                d["devices"][spec.accelerators.device] = device_of(spec, spec.accelerators.device).model_dump()
            d["devices"][spec.host.cpu.device] = device_of(spec, spec.host.cpu.device).model_dump()
        return d
    raise unknown_name("hardware", name, systems().all_names_and_aliases() + devices().all_names_and_aliases())
