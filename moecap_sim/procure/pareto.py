"""Pareto fronts of the verified candidates and their plot (matplotlib, Agg)."""

from __future__ import annotations

from typing import Optional


def front(points: list[tuple[str, Optional[float], Optional[float]]], maximize_second: bool = False) -> list[str]:
    """Keys of the non-dominated points (minimise the first value; minimise — or maximise — the
    second), ordered by the first.  Points with a missing value are left out."""
    pts = [(k, a, b if not maximize_second else -b) for k, a, b in points if a is not None and b is not None]
    pts.sort(key=lambda p: (p[1], p[2]))
    out, best = [], float("inf")
    for k, a, b in pts:
        if b < best:
            out.append(k)
            best = b
    return out


def plot(cands: list[dict], fronts: dict, scenario: str, path: str, title: str) -> str:
    """Two panels: $/M output tokens vs simulated p99 TPOT, and vs accuracy; the front joined."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from moecap_sim.inputs import finish_figure

    fig, axes = plt.subplots(1, 2, figsize=(12.5, 5.0))
    by = {c["key"]: c for c in cands}
    specs = [("tpot_p99", "simulated TPOT p99 (s/token)", lambda c: c["simulated"]["tpot_s"]["p99"]),
             ("accuracy", "accuracy (published, with quantization delta)", lambda c: c["accuracy"])]
    for ax, (name, ylabel, get) in zip(axes, specs):
        xs = [c["usd_per_million_output_tokens"] for c in cands]
        ys = [get(c) for c in cands]
        ok = [(x, y) for x, y in zip(xs, ys) if x is not None and y is not None]
        if ok:
            ax.scatter([p[0] for p in ok], [p[1] for p in ok], s=28, color="0.6", label="verified candidates", zorder=2)
        keys = fronts.get(name, [])
        fx = [by[k]["usd_per_million_output_tokens"] for k in keys]
        fy = [get(by[k]) for k in keys]
        if keys:
            ax.step(fx, fy, where="post", color="tab:red", lw=1.5, zorder=3)
            ax.scatter(fx, fy, s=50, color="tab:red", zorder=4, label="Pareto front")
            for k, x, y in zip(keys, fx, fy):
                c = by[k]
                ax.annotate(f"{c['system']} {c['config']['precision_label'].replace('native ', '')} ×{c['units']}",
                            (x, y), textcoords="offset points", xytext=(5, 4), fontsize=7)
        ax.set_xscale("log")
        from matplotlib.ticker import FuncFormatter

        money = FuncFormatter(lambda v, _: f"${v:.3g}")
        ax.xaxis.set_major_formatter(money)
        ax.xaxis.set_minor_formatter(FuncFormatter(lambda v, _: f"${v:.2g}" if f"{v:.0e}"[0] in "25" else ""))
        ax.set_xlabel(f"$ per million output tokens ({scenario}, at the day's mean load)")
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=8, loc="best")
    axes[0].set_title("cost vs tail latency (lower-left is better)", fontsize=10)
    axes[1].set_title("cost vs accuracy (upper-left is better)", fontsize=10)
    return finish_figure(fig, path, title)
