"""The CAP radar diagram (MoE-CAP §4) on fixed, labelled scales, and the trade-off class of each case.

Three axes, each mapped to a radius in [20, 100] by a **fixed** scale (never min-max over the
plotted cases, so a case's radii and class do not depend on its neighbours):

* **Performance** — TPOT (s/token), log scale: 0.02 s (50 tok/s per user) at 100, 0.5 s
  (2 tok/s) at 20.
* **Cost** — one basis per radar, stated on the plot: $/M output tokens at one pricing model
  (``on-demand`` by default; log scale $0.05 → 100, $50 → 20), or purchase $ (log $1k → 100,
  $100k → 20; the MoE-CAP Qwen3-30B radar's "Cost ($)"), or average power W (log 100 W → 100,
  10 kW → 20; the Qwen3-235B radar's "Cost (W)").
* **Accuracy** — the case's published score (with quantization delta) relative to the model's
  own full-precision reference score (``accuracy.radar_baseline``), linear: 100 % of the
  reference at 100, 80 % at 20.  The absolute score is shown beside it.

Values beyond an anchor are clipped to 20 or 100 (and say so).  The class names the property a
case gives up — its lowest radius (MoE-CAP §1: systems "compromise one of three key properties
while prioritizing the other two"): PA (performance + accuracy; gives up cost), PC (gives up
accuracy), CA (gives up performance).  The anchors are chosen so the paper's own Qwen3-30B-A3B
radar cases reproduce its classes (SGLang PA, K-Transformers PC, MoE-Infinity CA; a test).
Cases that do not fit, or have no price on the radar's basis, are listed with a warning and not
drawn.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Optional

from moecap_sim.errors import UserError
from moecap_sim.predict import predict


@dataclass(frozen=True)
class AxisScale:
    """``value → radius``: ``good`` maps to 100, ``poor`` to 20, log or linear in between, clipped."""

    label: str
    unit: str
    good: float
    poor: float
    log: bool = True

    def radius(self, v: Optional[float]) -> Optional[float]:
        if v is None or (self.log and v <= 0):
            return None
        if self.log:
            frac = math.log(v / self.poor) / math.log(self.good / self.poor)
        else:
            frac = (v - self.poor) / (self.good - self.poor)
        return 20.0 + 80.0 * min(1.0, max(0.0, frac))

    def value_at(self, r: float) -> float:
        """The axis value at radius ``r`` (for tick labels)."""
        frac = (r - 20.0) / 80.0
        if self.log:
            return self.poor * (self.good / self.poor) ** frac
        return self.poor + frac * (self.good - self.poor)

    def ticks(self) -> list[float]:
        """Round values (1-2-5 per decade on a log scale, 5 % steps on accuracy) within the scale."""
        lo, hi = sorted((self.good, self.poor))
        if not self.log:
            n = int(round((hi - lo) / 0.05))
            return [lo + i * (hi - lo) / n for i in range(n + 1)]
        out = []
        for e in range(math.floor(math.log10(lo)) - 1, math.ceil(math.log10(hi)) + 1):
            for m in (1, 2, 5):
                v = m * 10 ** e
                if lo * (1 - 1e-9) <= v <= hi * (1 + 1e-9):
                    out.append(v)
        return out

    def describe(self) -> str:
        kind = "log" if self.log else "linear"
        return f"{self.label}: {self.good:g} {self.unit} at radius 100, {self.poor:g} {self.unit} at 20 ({kind}, clipped)"


PERFORMANCE = AxisScale("Performance (TPOT)", "s/token", good=0.02, poor=0.5)
ACCURACY = AxisScale("Accuracy (vs the model's full-precision reference)", "× reference", good=1.0, poor=0.8, log=False)
COST_SCALES = {
    "usd_per_million_output_tokens": AxisScale("Cost ($/M output tokens)", "$/M", good=0.05, poor=50.0),
    "purchase_usd": AxisScale("Cost ($ purchase)", "$", good=1_000.0, poor=100_000.0),
    "power_w": AxisScale("Cost (W average power)", "W", good=100.0, poor=10_000.0),
}
COST_AXES = {k: v.label for k, v in COST_SCALES.items()}
CLASSES = {"cost": "PA", "accuracy": "PC", "performance": "CA"}


def classify(tpot_s: Optional[float], cost: Optional[float], accuracy_ratio: Optional[float],
             cost_axis: str = "usd_per_million_output_tokens") -> dict[str, Any]:
    """Radii on the fixed scales and the trade-off class of ONE case (no other case involved)."""
    radius = {"performance": PERFORMANCE.radius(tpot_s), "cost": COST_SCALES[cost_axis].radius(cost),
              "accuracy": ACCURACY.radius(accuracy_ratio)}
    known = {k: v for k, v in radius.items() if v is not None}
    if len(known) < 3:
        missing = ", ".join(k for k in radius if radius[k] is None)
        return {"radius": radius, "tradeoff_class": "undetermined", "class_note": f"no value for: {missing}"}
    lo = min(known.values())
    weakest = [k for k, v in known.items() if v == lo]
    if len(weakest) > 1:
        return {"radius": radius, "tradeoff_class": "undetermined",
                "class_note": f"tie between {' and '.join(weakest)} at radius {lo:.0f}"}
    return {"radius": radius, "tradeoff_class": CLASSES[weakest[0]],
            "class_note": f"gives up {weakest[0]} (radius {lo:.0f}, its lowest)"}


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


def radar(cases: list[dict], *, cost_axis: str = "usd_per_million_output_tokens", pricing: str = "on-demand",
          input_len: int = 1024, output_len: int = 256, out: Optional[str] = None) -> dict[str, Any]:
    """Predict each case, place it on the fixed-scale CAP radar, class its trade-off, optionally
    plot.  ``pricing`` (on-demand | spot | owned) is the one price model of a $/M cost axis."""
    from moecap_sim.inputs import RadarArgs, ServingArgs, check_args, check_output_path

    check_args(RadarArgs, cost_axis=cost_axis, input_len=input_len, output_len=output_len, pricing=pricing)
    check_output_path(out, "-o/--out", (".png", ".pdf", ".svg"))
    if len(cases) < 2:
        raise UserError("a radar compares at least two cases")
    for c in cases:  # every case is checked before the first prediction runs
        name = c.get("label") or c["model"] + "@" + c["hw"]
        try:
            check_args(ServingArgs, **{k: v for k, v in c.items() if k not in ("model", "hw", "label")})
        except UserError as exc:
            raise UserError(f"case {name}: {exc}") from None
        if c.get("pricing", pricing) != pricing:
            raise UserError(f"case {name}: pricing={c['pricing']} differs from the radar's --pricing {pricing}: "
                            "one price model per radar")
    rows, warnings = [], []
    scale = COST_SCALES[cost_axis]
    for c in cases:
        kw = {k: v for k, v in c.items() if k not in ("model", "hw", "label", "pricing")}
        r = predict(c["model"], c["hw"], input_len=input_len, output_len=output_len, pricing=pricing, **kw)
        label = c.get("label") or f"{c['model']}@{c['hw']}" + (f" {kw['engine']}" if "engine" in kw else "") + \
            (f" {kw['precision']}" if "precision" in kw else "")
        if not r["fits"]:
            rows.append({"label": label, "fits": False, "plotted": False, "reason": r.get("reason"),
                         "tradeoff_class": "cannot run"})
            warnings.append(f"{label}: does not fit ({r.get('reason')}); not drawn")
            continue
        acc = r.get("accuracy") or {}
        score, ref = acc.get("radar_score"), acc.get("radar_baseline")
        ratio = score / ref if (score is not None and ref) else None
        cost, cost_note = _cost_value(r, cost_axis, pricing)
        x = {"label": label, "fits": True, "tpot_s": r["tpot_s"], "cost": cost, "accuracy": score,
             "accuracy_reference": ref, "accuracy_ratio": ratio, "engine": r["engine"],
             "placement": r["placement"]["strategy"], "precision": r["precision"]["weights_short"],
             "output_tokens_per_s": r["output_tokens_per_s"], "cost_basis": cost_note}
        x.update(classify(r["tpot_s"], cost, ratio, cost_axis))
        x["plotted"] = cost is not None
        if cost is None:
            warnings.append(f"{label}: {cost_note}; not drawn")
        rows.append(x)
    result = {"cost_axis": scale.label, "pricing": pricing if cost_axis == "usd_per_million_output_tokens" else None,
              "cost_basis": (f"$/M output tokens at {pricing} prices for every case" if cost_axis ==
                             "usd_per_million_output_tokens" else scale.label),
              "cases": rows, "warnings": warnings,
              "scales": {"performance": PERFORMANCE.describe(), "cost": scale.describe(), "accuracy": ACCURACY.describe()},
              "classes": "PA gives up cost, PC gives up accuracy, CA gives up performance: the lowest radius on the "
                         "fixed scales (independent of the other cases)"}
    if out:
        result["plot"] = _plot(rows, scale, result["cost_basis"], out)
    return result


def _cost_value(r: dict, cost_axis: str, pricing: str) -> tuple[Optional[float], str]:
    """The case's value on the cost axis and its basis; None when the system has no such price
    (no silent switch to another price model)."""
    if cost_axis == "power_w":
        return r["energy"]["average_power_w"], "average wall power (perf/cost.py power model)"
    if cost_axis == "purchase_usd":
        from moecap_sim.catalog.hardware import systems

        try:
            p = systems().get(r["hardware"]["name"]).pricing.purchase_usd
        except UserError:
            p = None
        return p, ("system purchase price from its spec" if p else "no purchase price in the system's spec")
    if r["cost"].get("pricing") != pricing:
        return None, f"no {pricing} price for {r['hardware']['name']}"
    return r["cost"]["usd_per_million_output_tokens"], r["cost"]["basis"]


def _plot(rows: list[dict], scale: AxisScale, cost_basis: str, path: str) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    scales = {"performance": PERFORMANCE, "cost": scale, "accuracy": ACCURACY}
    keys = ["performance", "cost", "accuracy"]
    labels = ["Performance\nTPOT (s/token)", scale.label.replace(" (", "\n("), "Accuracy\n(× full-precision ref.)"]
    ang = np.linspace(0, 2 * np.pi, 3, endpoint=False) + np.pi / 2
    fig = plt.figure(figsize=(8.2, 8.2))
    ax = fig.add_subplot(111, polar=True)
    drawn = [x for x in rows if x.get("plotted")]
    for x in drawn:
        vals = [x["radius"][k] if x["radius"][k] is not None else 20.0 for k in keys]
        a = np.r_[ang, ang[:1]]
        v = np.r_[vals, vals[:1]]
        raw = (f"TPOT {x['tpot_s']:.3g} s, cost {x['cost']:.3g} {scale.unit}, acc "
               + ("—" if x["accuracy"] is None else f"{x['accuracy']:.2f} ({x['accuracy_ratio']:.1%})"))
        line, = ax.plot(a, v, lw=2, label=f"{x['label']} [{x['tradeoff_class']}]\n  {raw}")
        ax.fill(a, v, alpha=0.10, color=line.get_color())
        ax.scatter(ang, vals, s=18, color=line.get_color(), zorder=3)
    for x in rows:
        if not x.get("plotted"):
            why = x.get("reason") or x.get("cost_basis")
            ax.plot([], [], " ", label=f"{x['label']}: NOT DRAWN — {'does not fit' if not x['fits'] else why}")
    # fixed tick values along each spoke, in the axis's own units
    for k, th in zip(keys, ang):
        sc = scales[k]
        for v in sc.ticks():
            rad = sc.radius(v)
            txt = f"{v:.0%}" if k == "accuracy" else (f"{v:g}" if v < 1000 else f"{v:,.0f}")
            ax.text(th + 0.09, rad, txt, fontsize=7, color="0.3", ha="center", va="center",
                    bbox=dict(boxstyle="round,pad=0.1", fc="white", ec="none", alpha=0.7))
    ax.set_xticks(ang)
    ax.set_xticklabels(labels, fontsize=10)
    ax.tick_params(axis="x", pad=34)
    ax.set_ylim(0, 104)
    ax.set_yticks([20, 40, 60, 80, 100])
    ax.set_yticklabels([])
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.06), fontsize=8, ncol=1, frameon=False)
    ax.set_title("CAP radar on fixed scales (bigger is better; ticks in real units)\n" + cost_basis, fontsize=10, pad=22)
    fig.tight_layout()
    from moecap_sim.inputs import atomic_savefig

    try:
        atomic_savefig(fig, path, dpi=110, bbox_inches="tight")
    finally:
        plt.close(fig)
    return path
