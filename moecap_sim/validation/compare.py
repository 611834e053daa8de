"""Cost-model predictions for measured validation points, their errors, and the calibration /
held-out split — shared by :mod:`~moecap_sim.validation.runner` (measuring) and
:mod:`~moecap_sim.validation.calibrate` (fitting), which both import this module and not each
other's internals."""

from __future__ import annotations

import numpy as np



def truncated_spec(name: str, layers: int):
    from moecap_sim.catalog.models import get_model
    from moecap_sim.specs.model import ModelSpec

    spec = get_model(name)
    cfg = dict(spec.config)
    key = "num_hidden_layers" if "num_hidden_layers" in cfg else "n_layers"
    cfg[key] = layers
    return ModelSpec(**{**spec.model_dump(exclude={"path"}), "config": cfg}), spec


def assign_split(rows: list[dict]) -> None:
    """Deterministic calibration / held-out split, a checkerboard over the grid: within each
    (model, phase), points are grouped by context and sorted by tokens; point j of context group
    g goes to calibration when j + g is even, else it is held out — so both subsets span every
    batch size and every context length."""
    groups: dict = {}
    for r in rows:
        groups.setdefault((r["model"], r["phase"]), []).append(r)
    for g in groups.values():
        ctxs = sorted({int(r["context"]) for r in g})
        for gi, c in enumerate(ctxs):
            sub = sorted([r for r in g if int(r["context"]) == c], key=lambda r: int(r["seqs"]) * int(r["new_tokens"]))
            for j, r in enumerate(sub):
                r["split"] = "cal" if (j + gi) % 2 == 0 else "held"


_DEPLOYMENTS: dict = {}


def predict_rows(rows: list[dict], system_path: str, calibration=None) -> list[dict]:
    """Cost-model step time for every measured row (uses only columns of the CSV)."""
    from moecap_sim.catalog.hardware import systems
    from moecap_sim.deployment import resolve_deployment
    from moecap_sim.perf.step import build_context, step_time
    from moecap_sim.validation.engine import torch_eager_engine
    from moecap_sim.validation.routing import StepRouting

    system = systems().get(str(system_path))
    out = []
    for r in rows:
        key = (r["model"], int(r["layers"]), str(system_path))
        if key not in _DEPLOYMENTS:
            spec, _ = truncated_spec(r["model"], int(r["layers"]))
            _DEPLOYMENTS[key] = resolve_deployment(spec, system, precision="bf16", kv_dtype="bf16")
        dep = _DEPLOYMENTS[key]
        arch = dep.model.arch
        eng = torch_eager_engine(r.get("device", "cpu"), float(r["kernels_per_layer"]), float(r["kernels_per_expert"]))
        distinct = tuple(float(x) for x in str(r["distinct_per_layer"]).split(";") if x != "")
        prof = StepRouting(distinct=distinct, num_experts=arch.num_experts, top_k=arch.top_k,
                           kind="trace" if r.get("routing") == "trace" else "router",
                           source=str(r.get("routing_source", "")))
        placement = "cpu-only" if dep.accelerator is None else "none"
        ctx = build_context(dep, eng, prof, placement, calibration)
        sb = step_time(ctx, r["phase"], int(r["seqs"]), int(r["new_tokens"]), float(r["context"]))
        res = sb.by_resource()
        out.append({"predicted_s": sb.time_s, "bottleneck": sb.bottleneck,
                    "pred_ops": ";".join(f"{k}={v.time_s * 1e3:.3f}" for k, v in sb.ops.items() if v.time_s > 0),
                    "pred_overhead_s": res.get("overhead", 0.0)})
    return out


def errors(rows: list[dict], pred_key: str = "predicted_s", meas_key: str = "measured_s") -> dict:
    """MAPE / max error per phase (percent)."""
    out = {}
    for phase in ("decode", "prefill"):
        e = [abs(r[pred_key] / r[meas_key] - 1.0) * 100 for r in rows if r["phase"] == phase]
        s = [(r[pred_key] / r[meas_key] - 1.0) * 100 for r in rows if r["phase"] == phase]
        out[phase] = {"mape": float(np.mean(e)) if e else None, "max_abs_error": float(np.max(e)) if e else None,
                      "mean_signed_error": float(np.mean(s)) if s else None, "points": len(e)}
    return out
