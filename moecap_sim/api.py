"""Public Python API — one function per CLI command, returning plain data (dicts/dataclasses).

    >>> from moecap_sim import api
    >>> api.predict(model="mixtral-8x7b", hw="h100x8")["tpot_s"]          # doctest: +SKIP

=========================  ==========================================
CLI command                API function
=========================  ==========================================
``models list`` / ``show``  :func:`models_list` / :func:`model_summary`
``hw list`` / ``show``      :func:`hw_list` / :func:`hw_show`
``hw probe``                :func:`hw_probe`
``predict``                 :func:`predict`
``metrics``                 :func:`metrics`
``simulate``                :func:`simulate`
``plan``                    :func:`plan`
``radar``                   :func:`radar`
``trace import|stats|fit|synth``  :func:`trace_import` … :func:`trace_synth`
``validate`` / ``calibrate``  :func:`validate` / :func:`calibrate`
``validate --published``     :func:`validate_published`
=========================  ==========================================

These are thin wrappers: arguments are checked at the boundary (:mod:`moecap_sim.inputs`) by the
functions they call, and a mistake raises :class:`moecap_sim.errors.UserError`.  The CLI
(``moecap_sim.cli``) only parses arguments, calls the same functions and renders.
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
    regs = ((systems(), "system"), (devices(), "device"))
    if name.endswith((".yaml", ".yml", ".json")):  # a file: validate it against the schema its content names
        regs = regs[:1] if _is_system_file(name) else regs[1:]
    for reg, kind in regs:
        try:
            spec = reg.get(name)
        except UserError:
            if len(regs) == 1:
                raise
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


def _is_system_file(name: str) -> bool:
    """A path whose top-level mapping has a system's ``host`` or ``pricing`` section."""
    from pathlib import Path

    from moecap_sim.catalog import read_structured
    from moecap_sim.errors import UserError

    p = Path(name)
    if not p.is_file():
        return True  # the system registry says why (not found, a directory)
    try:
        data = read_structured(p)
    except UserError:  # unreadable: the system registry's own error says why
        return True
    return isinstance(data, dict) and ("host" in data or "pricing" in data)


# ---- prediction, simulation, planning, radar, measured metrics ---------------------------------

def predict(model: str, hw: str, **kwargs: Any) -> dict[str, Any]:
    """``moecap-sim predict``: see :func:`moecap_sim.predict.predict` for the keyword arguments."""
    from moecap_sim.predict import predict as _predict

    return _predict(model, hw, **kwargs)


def predict_result(model: str, hw: str, **kwargs: Any):
    """:func:`predict` as a typed :class:`moecap_sim.results.PredictionResult` (its JSON form
    is the contract; schema in ``moecap_sim/schemas/predict.schema.json``)."""
    from moecap_sim.results import PredictionResult

    return PredictionResult.model_validate(predict(model, hw, **kwargs))


def metrics(records: str, model: str, hw: str, precision: Optional[str] = None,
            kv_dtype: Optional[str] = None) -> dict[str, Any]:
    """``moecap-sim metrics``: S-MBU/S-MFU, TTFT, TPOT from MoE-CAP recorder records."""
    from moecap_sim.perf.measured import metrics_from_records

    return metrics_from_records(records, model, hw, precision=precision, kv_dtype=kv_dtype)


def simulate(model: str, hw: str, **kwargs: Any) -> dict[str, Any]:
    """``moecap-sim simulate``: see :func:`moecap_sim.sim.simulate.simulate`."""
    from moecap_sim.sim.simulate import simulate as _simulate

    return _simulate(model, hw, **kwargs)


def plan(model: str, **kwargs: Any) -> dict[str, Any]:
    """``moecap-sim plan``: see :func:`moecap_sim.planner.plan` (e.g. ``rate=5.53,
    slo_ttft_p99_s=0.5, slo_tpot_p90_s=0.03, scenarios=["dedicated", "spot"], plot="pareto.png"``)."""
    from moecap_sim.planner import plan as _plan

    return _plan(model, **kwargs)


def radar(cases: list, **kwargs: Any) -> dict[str, Any]:
    """``moecap-sim radar``: ``cases`` are ``"MODEL@SYSTEM[:key=value,...]"`` strings or dicts of
    predict arguments; see :func:`moecap_sim.radar.radar` for the keyword arguments."""
    from moecap_sim.radar import parse_case, radar as _radar

    return _radar([parse_case(c) if isinstance(c, str) else c for c in cases], **kwargs)


# ---- routing traces ---------------------------------------------------------------------------

def trace_import(src, out, **kwargs: Any):
    """``moecap-sim trace import``: see :func:`moecap_sim.traces.api.trace_import`."""
    from moecap_sim.traces.api import trace_import as _f

    return _f(src, out, **kwargs)


def trace_stats(path, **kwargs: Any) -> dict[str, Any]:
    """``moecap-sim trace stats``."""
    from moecap_sim.traces.api import trace_stats as _f

    return _f(path, **kwargs)


def trace_fit(path, out=None, model: Optional[str] = None):
    """``moecap-sim trace fit``."""
    from moecap_sim.traces.api import trace_fit as _f

    return _f(path, out, model=model)


def trace_synth(model: Optional[str], tokens: int, out, **kwargs: Any):
    """``moecap-sim trace synth``."""
    from moecap_sim.traces.api import trace_synth as _f

    return _f(model, tokens, out, **kwargs)


# ---- validation on real hardware (needs the ``validate`` extra: torch) --------------------------

def hw_probe(output: Optional[str] = None, *, threads: Optional[int] = None, quick: bool = False,
             gpu: Optional[bool] = None, name: Optional[str] = None, **spec_kwargs: Any) -> dict[str, Any]:
    """``moecap-sim hw probe``: measure this machine and write its spec files; returns the report
    with ``files`` (``spec_kwargs``: tdp_w, purchase_usd, usd_per_hour)."""
    from moecap_sim.validation.probe import probe_machine, write_specs

    rep = probe_machine(threads=threads, quick=quick, gpu=gpu, name=name, log=lambda msg: None)
    files = write_specs(rep, output, **spec_kwargs)
    return {"report": rep, "files": files}


def validate(**kwargs: Any) -> dict[str, Any]:
    """``moecap-sim validate``: keyword arguments are the fields of
    :class:`moecap_sim.validation.runner.ValidateConfig`."""
    from moecap_sim.validation.runner import DEFAULT_MODELS, QUICK_MODELS, ValidateConfig, run_validation

    kwargs.setdefault("models", list(QUICK_MODELS if kwargs.get("quick") else DEFAULT_MODELS))
    return run_validation(ValidateConfig(**kwargs), log=lambda msg: None)


def calibrate(paths: list, **kwargs: Any) -> dict[str, Any]:
    """``moecap-sim calibrate``: see :func:`moecap_sim.validation.calibrate.calibrate`."""
    from moecap_sim.validation.calibrate import calibrate as _f

    return _f(paths, **kwargs)


def validate_published(cases: Optional[str] = None, *, fit: bool = False) -> dict[str, Any]:
    """``moecap-sim validate --published [--fit]``: predict the published measurements
    (``validation/published/cases.yaml`` or ``cases``) and return the summary (``points``,
    ``refused``, ``mape``, ``cross_validated_mape``, ``classes``, ``cases``); ``fit`` refits and
    ships the efficiency factors first."""
    from moecap_sim.validation.published import run_published

    if fit:
        from moecap_sim.validation.published_fit import refit

        refit(cases)
    return run_published(cases)
