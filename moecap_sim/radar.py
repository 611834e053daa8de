"""The CAP radar diagram (MoE-CAP §4) and the trade-off class of each configuration.

Three axes — Performance (TPOT, s/token, lower is better), Cost (lower is better: $ per million
output tokens by default, or purchase $, or average W) and Accuracy (published score with
quantization deltas, higher is better) — on MoE-CAP's radial scale: the worst plotted value
sits at radius 20 and the best at 100 (min-max over the plotted configurations; equal values
all get 100).  Each configuration is classed by the property it gives up (its lowest axis):
PA (performance+accuracy, gives up cost), PC (gives up accuracy), CA (gives up performance).
"""

from __future__ import annotations

from typing import Any, Optional

from moecap_sim.errors import UserError
from moecap_sim.predict import predict

COST_AXES = {"usd_per_million_output_tokens": "Cost ($/M output tokens)", "purchase_usd": "Cost ($ purchase)",
             "power_w": "Cost (W)"}


def parse_case(text: str) -> dict:
    """``MODEL@SYSTEM[:key=value,...]`` → predict keyword arguments (and an optional label)."""
    if "@" not in text:
        raise UserError(f"case '{text}': expected MODEL@SYSTEM[:key=value,...], e.g. qwen3-30b-a3b@a6000x4:engine=sglang")
    head, _, opts = text.partition(":")
    model, _, hw = head.partition("@")
    case: dict[str, Any] = {"model": model, "hw": hw}
    allowed = {"precision", "engine", "tp", "dp", "ep", "pp", "batch", "offload", "kv_dtype", "label", "pricing"}
    for kv in filter(None, opts.split(",")):
        k, _, v = kv.partition("=")
        k = k.strip().replace("-", "_")
        if k not in allowed or not v:
            raise UserError(f"case '{text}': unknown option '{kv}' (allowed: {', '.join(sorted(allowed))})")
        if k in ("tp", "dp", "ep", "pp") or (k == "batch" and v != "max"):
            try:
                case[k] = int(v)
            except ValueError:
                raise UserError(f"case '{text}': {k} = {v!r} is not an integer") from None
        else:
            case[k] = v
    if not model or not hw:
        raise UserError(f"case '{text}': both MODEL and SYSTEM are needed (MODEL@SYSTEM)")
    return case


def _scale(values: list[Optional[float]], higher_better: bool) -> list[Optional[float]]:
    known = [v for v in values if v is not None]
    if not known:
        return [None] * len(values)
    lo, hi = min(known), max(known)
    out = []
    for v in values:
        if v is None:
            out.append(None)
        elif hi == lo:
            out.append(100.0)
        else:
            frac = (v - lo) / (hi - lo)
            out.append(20.0 + 80.0 * (frac if higher_better else 1.0 - frac))
    return out


def radar(cases: list[dict], *, cost_axis: str = "usd_per_million_output_tokens", input_len: int = 1024,
          output_len: int = 256, out: Optional[str] = None) -> dict[str, Any]:
    """Predict each case, place it on the CAP radar, class its trade-off, optionally plot."""
    from moecap_sim.inputs import RadarArgs, ServingArgs, check_args, check_output_path

    check_args(RadarArgs, cost_axis=cost_axis, input_len=input_len, output_len=output_len)
    check_output_path(out, "-o/--out", (".png", ".pdf", ".svg"))
    if len(cases) < 2:
        raise UserError("a radar compares at least two cases")
    for c in cases:  # every case is checked before the first prediction runs
        try:
            check_args(ServingArgs, **{k: v for k, v in c.items() if k not in ("model", "hw", "label")})
        except UserError as exc:
            raise UserError(f"case {c.get('label') or c['model'] + '@' + c['hw']}: {exc}") from None
    rows = []
    for c in cases:
        kw = {k: v for k, v in c.items() if k not in ("model", "hw", "label")}
        r = predict(c["model"], c["hw"], input_len=input_len, output_len=output_len, **kw)
        label = c.get("label") or f"{c['model']}@{c['hw']}" + (f" {kw['engine']}" if "engine" in kw else "") + \
            (f" {kw['precision']}" if "precision" in kw else "")
        if not r["fits"]:
            rows.append({"label": label, "fits": False, "reason": r.get("reason")})
            continue
        cost = {"usd_per_million_output_tokens": r["cost"]["usd_per_million_output_tokens"],
                "purchase_usd": _purchase(r), "power_w": r["energy"]["average_power_w"]}[cost_axis]
        acc = (r.get("accuracy") or {}).get("radar_score")
        rows.append({"label": label, "fits": True, "tpot_s": r["tpot_s"], "cost": cost, "accuracy": acc,
                     "engine": r["engine"], "placement": r["placement"]["strategy"],
                     "precision": r["precision"]["weights_short"], "output_tokens_per_s": r["output_tokens_per_s"]})
    ok = [x for x in rows if x["fits"]]
    if len(ok) < 2:
        raise UserError("fewer than two cases fit; nothing to compare (see each case with `predict`)")
    perf = _scale([x["tpot_s"] for x in ok], higher_better=False)
    cost = _scale([x["cost"] for x in ok], higher_better=False)
    acc = _scale([x["accuracy"] for x in ok], higher_better=True)
    for x, p, c, a in zip(ok, perf, cost, acc):
        x["radius"] = {"performance": p, "cost": c, "accuracy": a}
        axes = {k: v for k, v in x["radius"].items() if v is not None}
        if len(axes) == 3 and min(axes.values()) == 100.0:
            x["tradeoff_class"] = "dominant (best on every axis)"
            continue
        weakest = min(axes, key=axes.get) if len(axes) == 3 and len(set(axes.values())) > 1 else None
        x["tradeoff_class"] = {"cost": "PA", "accuracy": "PC", "performance": "CA", None: "undetermined"}[weakest]
    result = {"cost_axis": COST_AXES[cost_axis], "cases": rows,
              "scale": "MoE-CAP radial scale: worst plotted value at 20, best at 100 (min-max over cases)"}
    if out:
        result["plot"] = _plot(ok, COST_AXES[cost_axis], out)
    return result


def _purchase(r: dict) -> Optional[float]:
    from moecap_sim.catalog.hardware import systems
    return systems().get(r["hardware"]["name"]).pricing.purchase_usd


def _plot(rows: list[dict], cost_label: str, path: str) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    labels = ["Performance\n(TPOT s/token)", cost_label.replace(" (", "\n("), "Accuracy\n(published)"]
    keys = ["performance", "cost", "accuracy"]
    ang = np.linspace(0, 2 * np.pi, 3, endpoint=False) + np.pi / 2
    fig = plt.figure(figsize=(6.4, 6.4))
    ax = fig.add_subplot(111, polar=True)
    for x in rows:
        vals = [x["radius"][k] if x["radius"][k] is not None else 20.0 for k in keys]
        a = np.r_[ang, ang[:1]]
        v = np.r_[vals, vals[:1]]
        ax.plot(a, v, lw=2, label=f"{x['label']} [{x['tradeoff_class']}]")
        ax.fill(a, v, alpha=0.12)
    ax.set_xticks(ang)
    ax.set_xticklabels(labels, fontsize=10)
    ax.set_ylim(0, 100)
    ax.set_yticks([20, 40, 60, 80, 100])
    ax.set_yticklabels(["worst", "", "", "", "best"], fontsize=8)
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.08), fontsize=8, ncol=1)
    ax.set_title("CAP radar (bigger area is better)", fontsize=11, pad=18)
    fig.tight_layout()
    from moecap_sim.inputs import atomic_savefig

    try:
        atomic_savefig(fig, path, dpi=110, bbox_inches="tight")
    finally:
        plt.close(fig)
    return path
