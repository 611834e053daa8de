"""Accuracy against published measurements of real MoE deployments.

``validation/published/cases.yaml`` maps every row of the published set (audited MLPerf results,
vendor recipes, engine benchmarks, community reports; each with its source and a reliability
grade A/B/C) to ``predict`` arguments and the predict key that corresponds to the measured
figure.  :func:`run_published` predicts every case and reports, per class and overall:

* ``mape`` — mean absolute percentage error, ``|pred − meas| / meas``;
* ``median_ape`` / ``max_ape``;
* ``bias`` — the signed geometric-mean ratio minus one (``exp(mean(log(pred/meas))) − 1``;
  positive = the tool is optimistic: predicted throughput too high or latency too low is
  reported with the metric's own sign, see :func:`signed_ratio`);
* ``cross_validated_mape`` — the same error when every case is predicted by efficiency factors
  fitted without it (k-fold, :mod:`moecap_sim.validation.published_fit`); equal to ``mape``
  when no fitted factors are in use.

A case the tool cannot run (unknown model or system, impossible layout, does not fit) is a
failure in the table (``refused``), never a silent skip.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

import yaml

from moecap_sim.errors import SpecError, UserError
from moecap_sim.inputs import atomic_write_bytes
from moecap_sim.perf.efficiency import Calibration, fitted_data

CLASSES = ("gpu-throughput", "gpu-latency", "gpu-cluster", "cpu", "hybrid", "offload", "apple")
METRICS = ("output_tokens_per_s", "total_tokens_per_s", "prefill_tokens_per_s", "per_user_tokens_per_s",
           "tpot_s", "ttft_s", "e2e_s")
#: metrics where a larger number is better (throughputs); the others are latencies
HIGHER_IS_BETTER = {"output_tokens_per_s", "total_tokens_per_s", "prefill_tokens_per_s", "per_user_tokens_per_s"}
#: weight of a case in fits and weighted errors, by source reliability (A audited/reproducible,
#: B documented single source, C anecdotal or underspecified)
RELIABILITY_WEIGHT = {"A": 1.0, "B": 0.7, "C": 0.4}


def _shown_path(p: Path) -> str:
    """A path as written into outputs: relative to the source tree when inside it (no machine's
    absolute paths in committed summaries), else as given."""
    root = default_cases_path().parents[2]
    try:
        return str(p.resolve().relative_to(root))
    except ValueError:
        return str(p)


def default_cases_path() -> Path:
    """``validation/published/cases.yaml`` of the source tree this package was installed from."""
    return Path(__file__).resolve().parents[2] / "validation" / "published" / "cases.yaml"


@dataclass(frozen=True)
class Case:
    """One published measurement mapped to a prediction."""

    id: str
    cls: str
    reliability: str
    source: str
    metric: str
    measured: float
    per: str  # system | node | gpu
    per_count: int
    predict: dict
    exact: bool
    note: str
    refused_reason: Optional[str] = None

    @property
    def weight(self) -> float:
        return RELIABILITY_WEIGHT.get(self.reliability, 0.4)


def load_cases(path: Optional[str | Path] = None) -> list[Case]:
    """Read and check a cases file (see ``validation/published/README.md`` for the format)."""
    p = Path(path) if path else default_cases_path()
    if not p.is_file():
        raise UserError(f"published cases file not found: {p} (pass --cases FILE; the file ships in the source "
                        f"tree under validation/published/)")
    try:
        raw = yaml.safe_load(p.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as e:
        raise SpecError(str(p), [f"not valid YAML: {str(e).splitlines()[0]}"]) from None
    if not isinstance(raw, list) or not raw:
        raise SpecError(str(p), ["expected a non-empty list of cases"])
    out, problems, seen = [], [], set()
    for i, c in enumerate(raw):
        where = f"case {i}" + (f" ({c.get('id')})" if isinstance(c, dict) else "")
        if not isinstance(c, dict):
            problems.append(f"{where}: must be a mapping")
            continue
        m = c.get("measured") or {}
        try:
            case = Case(id=str(c["id"]), cls=str(c["class"]), reliability=str(c.get("reliability", "C"))[:1].upper(),
                        source=str(c.get("source", "")), metric=str(m["metric"]), measured=float(m["value"]),
                        per=str(m.get("per", "system")), per_count=int(m.get("per_count", 1) or 1),
                        predict=dict(c.get("predict") or {}), exact=bool(c.get("exact", False)),
                        note=str(c.get("note", "") or ""), refused_reason=c.get("refused_reason"))
        except (KeyError, TypeError, ValueError) as e:
            problems.append(f"{where}: missing or malformed field {e}")
            continue
        if case.id in seen:
            problems.append(f"{where}: duplicate id")
        seen.add(case.id)
        if case.cls not in CLASSES:
            problems.append(f"{where}: field 'class' = {case.cls!r} is not one of {', '.join(CLASSES)}")
        if case.metric not in METRICS:
            problems.append(f"{where}: field 'measured.metric' = {case.metric!r} is not one of {', '.join(METRICS)}")
        if not (math.isfinite(case.measured) and case.measured > 0):
            problems.append(f"{where}: field 'measured.value' = {case.measured!r} must be a positive number")
        if case.per not in ("system", "node", "gpu"):
            problems.append(f"{where}: field 'measured.per' = {case.per!r} must be system, node or gpu")
        out.append(case)
    if problems:
        raise SpecError(str(p), problems)
    return out


@dataclass
class CaseResult:
    case: Case
    predicted: Optional[float] = None
    refused: Optional[str] = None
    placement: Optional[str] = None
    engine: Optional[str] = None
    bottleneck: Optional[str] = None
    extra: dict = field(default_factory=dict)

    @property
    def ratio(self) -> Optional[float]:
        """predicted / measured."""
        return None if self.predicted is None else self.predicted / self.case.measured

    @property
    def ape(self) -> Optional[float]:
        r = self.ratio
        return None if r is None else abs(r - 1.0)

    def as_dict(self) -> dict:
        c = self.case
        return {"id": c.id, "class": c.cls, "reliability": c.reliability, "metric": c.metric, "per": c.per,
                "measured": c.measured, "predicted": self.predicted, "ratio": self.ratio,
                "error_pct": None if self.ape is None else 100 * self.ape, "refused": self.refused,
                "placement": self.placement, "engine": self.engine, "bottleneck": self.bottleneck,
                "exact": c.exact, "predict": c.predict, "source": c.source, **self.extra}


def signed_ratio(metric: str, ratio: float) -> float:
    """Ratio oriented so that > 1 means optimistic (faster than measured)."""
    return ratio if metric in HIGHER_IS_BETTER else 1.0 / ratio


def predict_case(case: Case, predict_fn: Optional[Callable[..., dict]] = None,
                 calibration: Optional[str] = None) -> CaseResult:
    """Predict one case; a refusal (bad mapping, does not fit) is recorded, not raised."""
    from moecap_sim.predict import predict_with_context

    fn = predict_fn or (lambda m, h, **kw: predict_with_context(m, h, **kw).result)  # no best_feasible search
    if case.refused_reason:
        return CaseResult(case, refused=str(case.refused_reason))
    args = dict(case.predict)
    model, hw = args.pop("model", None), args.pop("hw", None)
    mtp = args.pop("mtp", None)
    if isinstance(mtp, dict):
        args["mtp_draft_tokens"] = int(mtp.get("draft_tokens", 0))
        if "acceptance" in mtp:
            args["mtp_acceptance"] = float(mtp["acceptance"])
    for k in ("gpu_layers", "numa"):  # recorded for provenance; not serving options (placement says it)
        args.pop(k, None)
    if calibration and "calibration" not in args:
        args["calibration"] = calibration
    try:
        res = fn(model, hw, **args)
    except UserError as e:
        return CaseResult(case, refused=f"error: {str(e).splitlines()[0]}")
    if not res.get("fits"):
        return CaseResult(case, refused=f"does not fit: {str(res.get('reason', ''))[:200]}")
    value = res.get(case.metric)
    if value is None or not math.isfinite(value) or value <= 0:
        return CaseResult(case, refused=f"prediction has no {case.metric}")
    if case.per in ("node", "gpu"):  # the figure is per box or per device: divide the system's
        value /= max(1, case.per_count)
    return CaseResult(case, predicted=float(value), placement=(res.get("placement") or {}).get("strategy"),
                      engine=res.get("engine"), bottleneck=str((res.get("bottleneck") or {}).get(
                          "prefill" if case.metric in ("prefill_tokens_per_s", "ttft_s") else "decode")))


def error_stats(results: list[CaseResult]) -> dict:
    """MAPE, median/max APE, weighted MAPE, signed bias (geometric) over the predicted cases, in %."""
    ok = [r for r in results if r.ratio is not None]
    n = len(ok)
    if not n:
        return {"n": 0, "refused": len(results), "mape": None, "median_ape": None, "max_ape": None,
                "weighted_mape": None, "bias": None}
    apes = sorted(r.ape for r in ok)
    w = [r.case.weight for r in ok]
    logs = [math.log(signed_ratio(r.case.metric, r.ratio)) for r in ok]
    return {
        "n": n, "refused": len(results) - n,
        "mape": 100 * sum(apes) / n,
        "median_ape": 100 * (apes[n // 2] if n % 2 else 0.5 * (apes[n // 2 - 1] + apes[n // 2])),
        "max_ape": 100 * apes[-1],
        "weighted_mape": 100 * sum(r.ape * wi for r, wi in zip(ok, w)) / sum(w),
        "bias": 100 * (math.exp(sum(logs) / n) - 1.0),
    }


def summarize(results: list[CaseResult], cv_results: Optional[list[CaseResult]] = None) -> dict:
    """The JSON contract of ``validate --published --json``."""
    overall = error_stats(results)
    cv_overall = error_stats(cv_results) if cv_results else overall
    classes = {}
    for cls in CLASSES:
        rs = [r for r in results if r.case.cls == cls]
        if not rs:
            continue
        st = error_stats(rs)
        cv = error_stats([r for r in cv_results if r.case.cls == cls]) if cv_results else st
        classes[cls] = {"n": len(rs), "predicted": st["n"], "refused": st["refused"], "mape": st["mape"],
                        "median_ape": st["median_ape"], "max_ape": st["max_ape"], "bias": st["bias"],
                        "cross_validated_mape": cv["mape"], "cross_validated_median_ape": cv["median_ape"],
                        "cross_validated_bias": cv["bias"]}
    return {"points": len(results), "predicted": overall["n"], "refused": overall["refused"],
            "mape": overall["mape"], "median_ape": overall["median_ape"], "max_ape": overall["max_ape"],
            "weighted_mape": overall["weighted_mape"], "bias": overall["bias"],
            "cross_validated_mape": cv_overall["mape"], "cross_validated_median_ape": cv_overall["median_ape"],
            "classes": classes}


def run_published(cases_path: Optional[str | Path] = None, *, calibration: Optional[str] = None,
                  cross_validate: bool = True, progress: Optional[Callable[[int, int], None]] = None) -> dict:
    """Predict every published case; returns the summary plus per-case rows (``cases``)."""
    cases = load_cases(cases_path)
    results = []
    for i, c in enumerate(cases):
        results.append(predict_case(c, calibration=calibration))
        if progress:
            progress(i + 1, len(cases))
    cv_results = None
    if cross_validate and calibration is None:
        cv_results = cross_validated_results(cases)
    summary = summarize(results, cv_results)
    rows = [r.as_dict() for r in results]
    if cv_results:
        by_id = {r.case.id: r for r in cv_results}
        for row in rows:
            cv = by_id.get(row["id"])
            row["cv_predicted"] = cv.predicted if cv else None
            row["cv_error_pct"] = None if (cv is None or cv.ape is None) else 100 * cv.ape
    summary["cases"] = rows
    summary["cases_file"] = _shown_path(Path(cases_path) if cases_path else default_cases_path())
    return summary


# ------------------------------------------------------------------------------------------
# fitted factors (moecap_sim/perf/fitted_efficiency.json, written by published_fit)
# ------------------------------------------------------------------------------------------

#: predict with the documented priors only (no shipped fit) — what the fit starts from
PRIOR = Calibration(by_key={}, path="documented priors", exclusive=True)


def factors(group: str, bw: float, flop: float, kernel_scale: float) -> dict:
    """Calibration values of one grid point (kernel times scale the class's documented prior)."""
    from moecap_sim.perf.efficiency import default_efficiency

    prior = default_efficiency(group.split("@")[0])
    # attention kernels run on the same tensor/matrix units as the GEMMs: the achieved fraction
    # fitted for GEMMs carries over, in the prior's proportion (FlashAttention-class kernels reach
    # less of the peak than large GEMMs)
    attention = min(1.0, round(prior.attention * flop / prior.flop, 4))
    return {"bw": bw, "flop": flop, "attention": attention,
            "kernel_launch_us": round(prior.kernel_launch_us * kernel_scale, 4),
            "graph_kernel_us": round(prior.graph_kernel_us * kernel_scale, 4)}


def grid_calibration(group: str, bw: float, flop: float, kernel_scale: float) -> Calibration:
    return Calibration(by_key={group: factors(group, bw, flop, kernel_scale)},
                       path=f"fit grid {group} bw={bw} flop={flop} kernel×{kernel_scale}", exclusive=True)


def cross_validated_results(cases: list[Case], fit_data: Optional[dict] = None) -> list[CaseResult]:
    """Each case predicted with the factors fitted without it (from ``fit_data``, default the
    shipped fit); cases of unfitted groups with their priors."""
    data = fit_data if fit_data is not None else load_fit()
    out = []
    for c in cases:
        f = (data or {}).get("cv_points", {}).get(c.id)
        g = (data or {}).get("case_groups", {}).get(c.id)
        cal = grid_calibration(g, *f) if (f and g) else PRIOR
        out.append(predict_case(c, calibration=cal))
    return out


def load_fit() -> Optional[dict]:
    """The shipped fit (None when none is committed)."""
    return fitted_data() or None




# ------------------------------------------------------------------------------------------
# outputs
# ------------------------------------------------------------------------------------------

def _fmt(x: Optional[float], nd: int = 1) -> str:
    return "—" if x is None else f"{x:.{nd}f}"


def summary_markdown(s: dict, command: str) -> str:
    """A human summary: overall and per-class errors, then every case."""
    lines = ["# Accuracy against published measurements", "",
             f"Produced by `{command}` from `{Path(s['cases_file']).name}` "
             f"({s['points']} cases, {s['refused']} refused).", "",
             "Errors in percent. `bias` is the geometric-mean signed ratio − 1 (positive: the tool is optimistic, "
             "i.e. predicts more throughput or less latency than measured). `CV` columns: each case predicted with "
             "efficiency factors fitted without it (k-fold).", "",
             "| class | n | refused | MAPE | median | max | bias | CV MAPE | CV median |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for cls, c in s["classes"].items():
        lines.append(f"| {cls} | {c['n']} | {c['refused']} | {_fmt(c['mape'])} | {_fmt(c['median_ape'])} | "
                     f"{_fmt(c['max_ape'])} | {_fmt(c['bias'])} | {_fmt(c['cross_validated_mape'])} | "
                     f"{_fmt(c['cross_validated_median_ape'])} |")
    lines.append(f"| **all** | {s['points']} | {s['refused']} | {_fmt(s['mape'])} | {_fmt(s['median_ape'])} | "
                 f"{_fmt(s['max_ape'])} | {_fmt(s['bias'])} | {_fmt(s['cross_validated_mape'])} | "
                 f"{_fmt(s['cross_validated_median_ape'])} |")
    lines += ["", "## Cases", "",
              "| id | class | rel | metric | measured | predicted | error % | CV error % | placement | engine | note |",
              "|---|---|---|---|---:|---:|---:|---:|---|---|---|"]
    for r in s["cases"]:
        pred = "refused" if r["predicted"] is None else f"{r['predicted']:.4g}"
        note = (r["refused"] or "").replace("|", "/")[:120]
        lines.append(f"| {r['id']} | {r['class']} | {r['reliability']} | {r['metric']} | {r['measured']:.4g} | {pred} | "
                     f"{_fmt(r['error_pct'])} | {_fmt(r.get('cv_error_pct'))} | {r['placement'] or ''} | "
                     f"{r['engine'] or ''} | {note} |")
    return "\n".join(lines) + "\n"


def plot_predicted_vs_measured(s: dict, path: Path) -> None:
    """Log-log predicted vs measured, one colour per class, per metric family marker."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.5, 7))
    colors = dict(zip(CLASSES, plt.get_cmap("tab10").colors))
    lo, hi = math.inf, 0.0
    for cls in CLASSES:
        pts = [(r["measured"], r["predicted"], r["metric"]) for r in s["cases"]
               if r["class"] == cls and r["predicted"]]
        if not pts:
            continue
        for marker, lat in (("o", False), ("s", True)):
            sel = [(m, p) for m, p, k in pts if (k not in HIGHER_IS_BETTER) == lat]
            if sel:
                ax.scatter([m for m, _ in sel], [p for _, p in sel], c=[colors[cls]], marker=marker, s=28,
                           alpha=0.85, label=f"{cls}" + (" (latency)" if lat else ""), edgecolors="k", linewidths=0.3)
        lo = min(lo, *(min(m, p) for m, p, _ in pts))
        hi = max(hi, *(max(m, p) for m, p, _ in pts))
    if hi > 0:
        xs = [lo / 1.5, hi * 1.5]
        ax.plot(xs, xs, "k-", lw=0.8)
        ax.plot(xs, [x * 1.25 for x in xs], "k:", lw=0.6)
        ax.plot(xs, [x / 1.25 for x in xs], "k:", lw=0.6)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("measured (tok/s, or s for latencies)")
    ax.set_ylabel("predicted")
    ax.set_title(f"moecap-sim vs {s['points']} published measurements\n"
                 f"MAPE {_fmt(s['mape'])}%, cross-validated {_fmt(s['cross_validated_mape'])}%, "
                 f"{s['refused']} refused (dotted: ±25%)", fontsize=10)
    ax.legend(fontsize=7, loc="upper left")
    ax.grid(True, which="both", lw=0.3, alpha=0.5)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp.png")
    fig.savefig(tmp, dpi=120)
    plt.close(fig)
    tmp.replace(path)


def write_outputs(s: dict, out_dir: Path, command: str) -> list[Path]:
    """``summary.md``, ``summary.json`` and ``predicted_vs_measured.png`` in ``out_dir`` (atomic)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in (("summary.json", json.dumps(s, indent=1, default=str) + "\n"),
                       ("summary.md", summary_markdown(s, command))):
        written.append(atomic_write_bytes(out_dir / name, lambda fh, t=text: fh.write(t.encode("utf-8"))))
    png = out_dir / "predicted_vs_measured.png"
    plot_predicted_vs_measured(s, png)
    written.append(png)
    return written

