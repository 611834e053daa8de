"""Fit efficiency factors on the published measurements, with honest held-out error.

Which factors: per *fit group* — the efficiency class of the unit that does a case's main work
(the accelerator; the host CPU for ``cpu-only`` and ``cpu-experts`` placements) × the engine's
kernel family (:data:`moecap_sim.perf.efficiency.ENGINE_FAMILIES`) — two physically bounded
numbers: ``bw`` (achieved fraction of datasheet memory bandwidth) and ``flop`` (achieved
fraction of the dense tensor peak; attention kernels keep the prior's ratio to it), and one
fixed cost: ``kernel_scale``, the per-kernel time
(launch gap, minimum kernel duration, per-op dispatch on a CPU) relative to the class's
documented prior.  Bounds: ``bw`` ∈ [0.30, 1.00], ``flop`` ∈ [0.15, 1.00], ``kernel_scale`` ∈
[0.5, 16]; a factor that lands on a bound is reported (``at_bound``): the model lacks a term
there.

How: every case is predicted once per point of a fixed grid over (bw, flop) for its group (the
other units keep their documented priors), so each fit — the full one and every
cross-validation fold — is an argmin of the reliability-weighted mean squared log error over
that table, and k-fold cross-validation costs nothing more.  A group is fitted only with at
least :data:`MIN_CASES` cases from at least :data:`MIN_SOURCES` distinct sources (never a
factor from a single row); other groups keep their priors.  Held-out error: each case is
predicted with the factors fitted on the folds that exclude it (cases of unfitted groups are
predicted by their priors in both columns).

The result is written to ``moecap_sim/perf/fitted_efficiency.json`` (factors, per-group
in-sample and held-out error, the cross-validated residual bands per class that ``predict``
reports as its uncertainty) and becomes the default.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

import numpy as np

from moecap_sim.perf.efficiency import FITTED_PATH
from moecap_sim.validation.published import (CLASSES, PRIOR, Case, CaseResult, grid_calibration, signed_ratio,
                                             cross_validated_results, factors, load_cases, predict_case)

BW_GRID = (0.30, 0.40, 0.50, 0.60, 0.70, 0.80, 0.90, 1.00)
FLOP_GRID = (0.15, 0.25, 0.35, 0.45, 0.55, 0.70, 0.85, 1.00)
KERNEL_GRID = (0.5, 1.0, 2.0, 4.0, 8.0, 16.0)
#: a coarse grid for quick looks (``fit(..., coarse=True)``); the shipped fit uses the full one
COARSE = ((0.3, 0.5, 0.7, 0.9), (0.15, 0.35, 0.55, 0.85), (1.0, 4.0, 16.0))
MIN_CASES = 4
MIN_SOURCES = 2
FOLDS = 5


def _group_of(case: Case) -> Optional[str]:
    """``class@family`` of the unit doing the main work of ``case``, from a prior prediction."""
    from moecap_sim.catalog.hardware import devices
    from moecap_sim.perf.efficiency import engine_family
    from moecap_sim.predict import predict_with_context

    seen: list[dict] = []
    r = predict_case(case, calibration=PRIOR,
                     predict_fn=lambda m, h, **kw: seen.append(predict_with_context(m, h, **kw).result) or seen[-1])
    if r.predicted is None:
        return None
    hw = seen[-1]["hardware"]
    on_cpu = r.placement in ("cpu-only", "cpu-experts") or hw["accelerator"] is None
    dev = devices().get(hw["host_cpu"] if on_cpu else hw["accelerator"])
    return f"{dev.efficiency_class}@{engine_family(r.engine)}"


@dataclass
class GroupTable:
    group: str
    cases: list[Case]
    log_err: np.ndarray  # [cases, bw, flop, kernel] log(pred/meas), nan where refused

    def loss(self, idx: np.ndarray) -> np.ndarray:
        """Weighted mean squared log error over cases ``idx`` for every grid point."""
        w = np.array([self.cases[i].weight for i in idx])[:, None, None, None]
        e = self.log_err[idx]
        ok = np.isfinite(e)
        num = np.where(ok, w * e ** 2, 0.0).sum(axis=0)
        # a grid point that refuses a case the prior could run counts as a factor-2 error
        num = num + np.where(ok, 0.0, w * math.log(2.0) ** 2).sum(axis=0)
        return num / w.sum()

    def best(self, idx: np.ndarray) -> tuple[int, int, int]:
        L = self.loss(idx)
        i, j, k = np.unravel_index(int(np.nanargmin(L)), L.shape)
        return int(i), int(j), int(k)


def build_tables(cases: list[Case], progress: Optional[Callable[[str], None]] = None,
                 grid: tuple = (BW_GRID, FLOP_GRID, KERNEL_GRID)) -> tuple[dict, dict]:
    """Group the cases and predict each on the (bw, flop, kernel) grid of its group."""
    groups: dict[str, list[Case]] = {}
    group_of: dict[str, Optional[str]] = {}
    for c in cases:
        g = _group_of(c)
        group_of[c.id] = g
        if g:
            groups.setdefault(g, []).append(c)
    tables = {}
    shape = tuple(len(g) for g in grid)
    for g, cs in sorted(groups.items()):
        if len(cs) < MIN_CASES or len({c.source for c in cs}) < MIN_SOURCES:
            continue
        if progress:
            progress(f"{g}: {len(cs)} cases × {int(np.prod(shape))} grid points")
        err = np.full((len(cs),) + shape, np.nan)
        for i, bw in enumerate(grid[0]):
            for j, fl in enumerate(grid[1]):
                for k, ks in enumerate(grid[2]):
                    cal = grid_calibration(g, bw, fl, ks)
                    for n, c in enumerate(cs):
                        r = predict_case(c, calibration=cal)
                        if r.ratio is not None:
                            err[n, i, j, k] = math.log(r.ratio)
        tables[g] = GroupTable(g, cs, err)
    return tables, group_of


def _folds(n: int, k: int) -> list[np.ndarray]:
    """Deterministic interleaved folds (case i → fold i mod k)."""
    return [np.arange(f, n, k) for f in range(min(k, n))]


def fit(cases_path: Optional[str] = None, progress: Optional[Callable[[str], None]] = None,
        coarse: bool = False) -> dict:
    """Fit every eligible group; returns the content of ``fitted_efficiency.json``."""
    cases = load_cases(cases_path)
    grid = COARSE if coarse else (BW_GRID, FLOP_GRID, KERNEL_GRID)

    def _point(i: int, j: int, k: int) -> tuple[float, float, float]:
        return grid[0][i], grid[1][j], grid[2][k]

    tables, group_of = build_tables(cases, progress, grid)
    groups_out = {}
    cv_point: dict[str, tuple[float, float, float]] = {}  # case id → grid point fitted without it
    for g, t in tables.items():
        n = len(t.cases)
        best = t.best(np.arange(n))
        held = np.full(n, np.nan)
        for test in _folds(n, FOLDS):
            train = np.setdiff1d(np.arange(n), test)
            fold_best = t.best(train)
            for c in test:
                held[c] = t.log_err[(c,) + fold_best]
                cv_point[t.cases[c].id] = _point(*fold_best)
        ins = np.array([t.log_err[(c,) + best] for c in range(n)])
        bw, fl, ks = _point(*best)
        at_bound = [name for name, v, g in (("bw", bw, grid[0]), ("flop", fl, grid[1]), ("kernel_scale", ks, grid[2]))
                    if v in (g[0], g[-1])]
        groups_out[g] = {
            "factors": factors(g, bw, fl, ks), "kernel_scale": ks, "n": n,
            "sources": len({c.source for c in t.cases}), "cases": [c.id for c in t.cases],
            "in_sample_mape": _mape(ins), "cross_validated_mape": _mape(held), "at_bound": at_bound,
            "note": ("a factor sits on its bound: the model lacks a term for this group" if at_bound
                     else "interior optimum"),
        }
    return {"version": 1, "method": " ".join(__doc__.split("\n\n")[1].split()),
            "grid": {"bw": grid[0], "flop": grid[1], "kernel_scale": grid[2]},
            "folds": FOLDS, "min_cases": MIN_CASES, "min_sources": MIN_SOURCES, "groups": groups_out,
            "case_groups": group_of, "cv_points": {k: list(v) for k, v in cv_point.items()}}


def _mape(log_err: np.ndarray) -> Optional[float]:
    e = log_err[np.isfinite(log_err)]
    return None if not e.size else float(100 * np.mean(np.abs(np.exp(e) - 1.0)))


def residual_bands(results: list[CaseResult]) -> dict:
    """Per class (and overall) p10/p90 of predicted/measured from held-out predictions, oriented
    so that a band multiplies a *throughput* (latencies are inverted)."""
    out = {}
    for cls in CLASSES + ("all",):
        rs = [r for r in results if r.ratio is not None and (cls == "all" or r.case.cls == cls)]
        if len(rs) < 3:
            continue
        ratios = np.array([signed_ratio(r.case.metric, r.ratio) for r in rs])
        out[cls] = {"n": len(rs), "p10_ratio": float(np.percentile(ratios, 10)),
                    "p90_ratio": float(np.percentile(ratios, 90)),
                    "median_ratio": float(np.median(ratios)),
                    "mape": float(100 * np.mean(np.abs(ratios - 1.0)))}
    return out


def write_fit(data: dict, path: Path = FITTED_PATH) -> Path:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=1) + "\n", encoding="utf-8")
    tmp.replace(path)
    from moecap_sim.perf.efficiency import fitted_data, fitted_defaults

    fitted_data.cache_clear()  # the defaults and the error bands both read the new fit
    fitted_defaults.cache_clear()
    return path


def refit(cases_path: Optional[str] = None, progress: Optional[Callable[[str], None]] = None) -> tuple[dict, Path]:
    """Fit, attach the held-out residual bands per class, and ship the result as the defaults
    (``moecap_sim/perf/fitted_efficiency.json``); returns the fit and where it was written."""
    data = fit(cases_path, progress)
    data["bands"] = residual_bands(cross_validated_results(load_cases(cases_path), data))
    return data, write_fit(data)
