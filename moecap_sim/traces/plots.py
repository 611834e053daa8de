"""Plots for ``trace stats --plots DIR`` (matplotlib, Agg backend, imported here only)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from moecap_sim.traces.format import Trace


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(plt, fig, out: Path) -> Path:
    """Lay out, write the PNG and free the figure."""
    fig.tight_layout()
    from moecap_sim.inputs import atomic_savefig
    atomic_savefig(fig, out, dpi=120)
    plt.close(fig)
    return out


def _title(tr: Trace, what: str) -> str:
    tag = " [SYNTHETIC]" if tr.is_synthetic else ""
    return f"{tr.model}{tag}: {what}"


def _profile_for(tr: Trace):
    if tr.is_synthetic:
        return None
    try:
        from moecap_sim.routing.profiles import load_shipped_profile

        p = load_shipped_profile(tr.model)
    except Exception:
        return None
    if p is None or (p.num_experts, p.top_k) != (tr.num_experts, tr.top_k):
        return None
    return p


def plot_load_heatmap(tr: Trace, stats: dict, out: Path) -> Path:
    from matplotlib.colors import TwoSlopeNorm

    plt = _plt()
    layers = [it for it in stats["layers"] if it.get("load_counts")]
    mat = np.array([np.asarray(it["load_counts"], float) / max(1e-9, np.mean(it["load_counts"])) for it in layers])
    e = tr.num_experts
    fig_h = 1.6 + 0.22 * len(layers)
    fig, ax = plt.subplots(figsize=(min(12, max(6.5, 3 + 0.14 * e)), min(9, max(3.0, fig_h))),
                           constrained_layout=True)
    vmax = max(2.0, float(mat.max()))
    im = ax.imshow(mat, aspect="auto", cmap="RdBu_r", norm=TwoSlopeNorm(vmin=0.0, vcenter=1.0, vmax=vmax),
                   interpolation="nearest")
    ax.set_yticks(range(len(layers)))
    ax.set_yticklabels([str(it["layer"]) for it in layers], fontsize=7 if len(layers) > 12 else 9)
    ax.set_xlabel("expert id")
    ax.set_ylabel("MoE layer")
    step = max(1, e // 16)
    ax.set_xticks(range(0, e, step))
    cb = fig.colorbar(im, ax=ax)
    cb.set_label("load / mean load")
    ntok = max(int(it.get("tokens", 0)) for it in layers)
    ax.set_title(_title(tr, f"expert load ({stats.get('load_basis', 'tokens')}, {ntok} tokens)"), fontsize=10)
    from moecap_sim.inputs import atomic_savefig
    atomic_savefig(fig, out, dpi=120)
    plt.close(fig)
    return out


def plot_distinct_vs_batch(tr: Trace, stats: dict, out: Path) -> Path:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7, 4.6))
    e, k = tr.num_experts, tr.top_k
    layers = stats["layers"]
    for i, it in enumerate(layers):
        d = it.get("distinct_vs_batch") or {}
        if not d:
            continue
        bs = np.array([int(b) for b in d])
        ax.plot(bs, [d[str(b)] for b in bs], color="tab:blue", alpha=0.25, lw=0.8,
                label="measured, each layer" if i == 0 else None)
    s = stats["summary"].get("distinct_vs_batch") or {}
    if s:
        bs = np.array([int(b) for b in s])
        ax.plot(bs, [s[str(b)] for b in bs], "o-", color="tab:blue", lw=2, label="measured, mean over layers")
        methods = layers[0].get("distinct_vs_batch_method", {})
        pooled_from = [int(b) for b, m in methods.items() if m.startswith("pooled")]
        if pooled_from and any(m.startswith("same-step") for m in methods.values()):
            ax.axvline(min(pooled_from), color="grey", ls=":", lw=1)
            ax.text(min(pooled_from), 0.03 * e, " pooled tokens beyond\n the largest decode step", fontsize=7,
                    color="grey", va="bottom")
        xs = np.unique(np.round(np.geomspace(1, max(bs.max(), 2), 60)))
        ax.plot(xs, e * (1 - (1 - k / e) ** xs), "--", color="tab:red", lw=1.2,
                label="uniform independent routing")
        prof = _profile_for(tr)
        if prof is not None:
            ax.plot(xs, [prof.expected_distinct_experts(x) for x in xs], "-", color="tab:green", lw=1.2,
                    label="shipped routing profile (mean over layers)")
    ax.axhline(e, color="black", lw=0.6)
    ax.set_xscale("log", base=2)
    ax.set_xlabel("batch size B (tokens of B different requests in one decode step)")
    ax.set_ylabel(f"distinct routed experts per layer (of {e})")
    ax.set_ylim(0, e * 1.05)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    ax.set_title(_title(tr, "distinct experts vs batch size"), fontsize=10)
    return _save(plt, fig, out)


def plot_per_step(tr: Trace, stats: dict, out: Path) -> Path:
    """Recorded distinct experts per decode step (mean over logged layers) with the batch size,
    and the shipped profile's prediction for each step's batch."""
    plt = _plt()
    pp = [p for p in stats.get("per_pass", []) if p["phase"] == "decode"]
    steps = np.arange(len(pp))
    d = np.array([np.mean(p["distinct"]) for p in pp])
    b = np.array([p["batch"] for p in pp])
    fig, ax = plt.subplots(figsize=(8, 4.4))
    ax.plot(steps, d, "o", ms=3, color="tab:blue", label="recorded (mean over logged layers)")
    prof = _profile_for(tr)
    if prof is not None:
        logged = [int(x) for x in tr.layers]
        pred = np.array([np.mean([prof.expected_distinct_experts(int(x), l, step=i) for l in logged])
                         for i, x in enumerate(b)])
        steady = np.array([np.mean([prof.expected_distinct_experts(int(x), l) for l in logged]) for x in b])
        err = pred.mean() / d.mean() - 1
        mape = float(np.mean(np.abs(pred / d - 1)))
        ax.plot(steps, pred, "-", color="tab:green", lw=1.5,
                label=f"profile, synchronised start (mean {err:+.1%}, per-step MAPE {mape:.1%})")
        ax.plot(steps, steady, "--", color="tab:green", lw=1, alpha=0.7, label="profile, steady state (predict default)")
    ax.set_xlabel("decode step")
    ax.set_ylabel(f"distinct routed experts (of {tr.num_experts})")
    ax.set_ylim(0, tr.num_experts * 1.05)
    ax2 = ax.twinx()
    ax2.step(steps, b, where="mid", color="grey", lw=1, alpha=0.7)
    ax2.set_ylabel("batch size (requests in the step)", color="grey")
    ax2.set_ylim(0, max(b.max(), 1) * 1.6)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower left")
    ax.set_title(_title(tr, "distinct experts per decode step"), fontsize=10)
    return _save(plt, fig, out)


def write_stats_plots(tr: Trace, stats: dict, plots_dir: Path) -> list[Path]:
    plots_dir = Path(plots_dir)
    plots_dir.mkdir(parents=True, exist_ok=True)
    stem = (tr.model or "trace").replace("/", "_")
    out = []
    if any(it.get("load_counts") for it in stats["layers"]):
        out.append(plot_load_heatmap(tr, stats, plots_dir / f"{stem}_load_heatmap.png"))
    if any(it.get("distinct_vs_batch") for it in stats["layers"]):
        out.append(plot_distinct_vs_batch(tr, stats, plots_dir / f"{stem}_distinct_vs_batch.png"))
    pp = [p for p in stats.get("per_pass", []) if p["phase"] == "decode"]
    if len(pp) >= 5 and max(p["batch"] for p in pp) >= 2:
        out.append(plot_per_step(tr, stats, plots_dir / f"{stem}_distinct_per_step.png"))
    return out
