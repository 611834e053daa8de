"""``moecap-sim calibrate``: fit the cost model's efficiency factors on measured steps.

The fitted factors are the ones :mod:`moecap_sim.perf.efficiency` defines — ``bw`` (fraction of
the bandwidth ceiling reached by weight/KV streaming), ``flop`` (fraction of the compute ceiling
reached by GEMMs), ``attention`` (same, for the attention kernel) and ``kernel_launch_us`` (fixed
cost per dispatched operator) — for the device that runs the model.  On a probed device the
ceilings are what the probe *measured* (:mod:`moecap_sim.perf.achieved`; prior η = 1), otherwise
the datasheet values with the documented priors.

**Physical bounds.**  An efficiency is a fraction of a ceiling: ``0 < η ≤ 1``; an overhead is
``≥ 0``.  A fit that ends on a bound is *reported* (``at_bound``, with what it means: the model
lacks a term the factor is being stretched to absorb) — never silently stretched past it.
They are fitted by ``scipy.optimize.least_squares`` on the log of predicted/measured step time
(relative error; bounded, log-parameterised, with a weak log-normal prior centred on the
documented defaults, σ = ln 3) over the **calibration subset** only; the error is reported on the
**held-out** points only (a checkerboard over batch size and context of each model and phase,
see :func:`moecap_sim.validation.runner.assign_split`).  A factor is fitted only when some
calibration point's predicted time depends on it at all (points without context leave
``attention`` at its default, say).

The output file is what ``predict``, ``simulate`` and ``plan`` read with ``--calibration``::

    {"format": "moecap-calibration/1",
     "efficiency": {"<device name>": {"bw": …, "flop": …, "attention": …, "kernel_launch_us": …}},
     … provenance: hardware, spec, points fitted, held-out errors, defaults, command, date}
"""

from __future__ import annotations

import datetime as _dt
import json
import math
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from moecap_sim.errors import UserError

FIT_PARAMS = ("bw", "flop", "attention", "kernel_launch_us")
#: physical bounds: efficiencies are fractions of a ceiling (0, 1]; the overhead is ≥ 0 (the fit is
#: log-parameterised, so its lower end is 0.01 µs, indistinguishable from 0 next to ~1 µs dispatch)
BOUNDS = {"bw": (0.01, 1.0), "flop": (0.01, 1.0), "attention": (0.001, 1.0), "kernel_launch_us": (0.01, 1000.0)}
AT_BOUND_LOG_TOL = 0.01  # a fitted factor within 1 % of a bound is "at the bound"
# how far past a bound the unconstrained fit must go to count as hitting it: the run-to-run noise
# of a probed ceiling (the same quick probe gave 8.8-10.7 GB/s GEMV and 1.9-2.3 GB/s attention KV
# on the AMD CI VM, ±10 %), closer than that the bound is within the ceiling's own uncertainty
CEILING_TOLERANCE = 0.10
PRIOR_FACTOR = 3.0  # the prior allows a factor of ~3 either way of the default (1 sigma)
# On a probed device the defaults are *measured* ceilings (η = 1), known to the probe's
# run-to-run noise (10-20 % on a shared VM), not documented guesses: a 1.5× prior (1 sigma), and
# a factor is fitted only where it carries ≥ 5 % of some point's time (the points' own noise; a
# smaller share cannot be told from noise with the quick grid's 5 calibration points).
PRIOR_FACTOR_MEASURED = 1.5
MIN_SENSITIVITY_MEASURED = 0.05
PRIOR_NOISE = 0.05  # typical relative noise of one measured point
NUMERIC_COLS = ("seqs", "new_tokens", "context", "layers", "kernels_per_layer", "kernels_per_expert", "measured_s")


def at_bound_report(params: dict, unbounded: Optional[dict] = None) -> list[dict]:
    """Fitted factors the physical bounds stopped: on a bound, and — when the unbounded fit is
    known — with the data taking them more than ``CEILING_TOLERANCE`` past it (closer than that
    is within the run-to-run noise of the measured ceiling itself).  Each with what it means."""
    out = []
    for k, v in params.items():
        lo, hi = BOUNDS[k]
        for side, b in (("upper", hi), ("lower", lo)):
            if abs(math.log(v) - math.log(b)) >= AT_BOUND_LOG_TOL:
                continue
            free = (unbounded or {}).get(k)
            if free is not None and abs(math.log(free) - math.log(b)) < math.log(1.0 + CEILING_TOLERANCE):
                continue
            what = ("the measurements are faster than the measured ceiling allows: the model over-counts work "
                    "here, or the ceiling was measured low" if side == "upper" and k != "kernel_launch_us" else
                    "the measurements are slower than the model can explain with this factor: the model lacks "
                    "a term here" if side == "lower" and k != "kernel_launch_us" else
                    "no per-operator overhead fits: the model over-counts elsewhere" if side == "lower" else
                    "the per-operator overhead would have to exceed 1 ms: the model lacks a term here")
            out.append({"factor": k, "value": v, "bound": b, "side": side, "unbounded_fit": free, "meaning": what})
    return out


def base_efficiency(system_path: str):
    """The efficiencies the cost model uses for the main device before calibration (measured
    ceilings with η = 1 on a probed device, the class priors otherwise)."""
    from moecap_sim.perf.step import make_unit

    return make_unit(main_device(system_path)).eff


def main_device(system_path: str):
    """The device that runs the model on this system (accelerator, or the host CPU)."""
    from moecap_sim.catalog.hardware import systems
    from moecap_sim.deployment import device_of

    s = systems().get(str(system_path))
    ref = s.accelerators.device if s.accelerators else s.host.cpu.device
    return device_of(s, ref)


def sensitivities(rows: Sequence[dict], system_path: str, base) -> dict:
    """d log(predicted) / d log(factor) per point at ``base`` efficiencies, for each factor."""
    from moecap_sim.perf.efficiency import Calibration
    from moecap_sim.validation.compare import predict_rows

    dev = main_device(system_path)
    p0 = np.array([p["predicted_s"] for p in predict_rows(rows, system_path)])
    out = {}
    ach = getattr(dev, "achieved", None)
    for k in FIT_PARAMS:
        v, ref = float(getattr(base, k)), p0
        if k == "kernel_launch_us" and ach is not None and (ach.gemm_call_us or 0) > v:
            # the measured per-operator cost lies between a tiny op's dispatch (the prior) and a
            # GEMM call's fixed cost: judge the factor's weight at the upper end
            v = float(ach.gemm_call_us)
            ref = np.array([p["predicted_s"] for p in predict_rows(
                rows, system_path, Calibration(by_key={dev.name: {k: v}}, path="(sensitivity)"))])
        cal = Calibration(by_key={dev.name: {k: v * 1.1}}, path="(sensitivity)")
        p1 = np.array([p["predicted_s"] for p in predict_rows(rows, system_path, cal)])
        out[k] = np.abs(np.log(p1 / ref)) / math.log(1.1)
    return out


def _active_params(rows: Sequence[dict], system_path: str, base, min_sensitivity: float = 0.002) -> list[str]:
    """Factors some calibration point is sensitive to at all (≥ 0.2 % of its predicted time
    scales with the factor at the defaults); the others (attention without any context, say)
    cannot be identified and keep their defaults.  The threshold is low on purpose: a factor whose
    default is far off looks unimportant at its default (the 2 µs CPU dispatch prior against the
    ~75 µs a oneDNN bf16 GEMM call costs here), and the prior keeps a weakly constrained factor
    near its default."""
    sens = sensitivities(rows, system_path, base)
    return [k for k in FIT_PARAMS if float(np.max(sens[k])) >= min_sensitivity]


def fit_efficiency(rows: Sequence[dict], system_path: str, params: Optional[Sequence[str]] = None) -> dict:
    """Least-squares fit of efficiency factors on ``rows`` (dicts with the CSV columns)."""
    from scipy.optimize import least_squares

    from moecap_sim.perf.efficiency import Calibration
    from moecap_sim.validation.compare import predict_rows

    rows = list(rows)
    if len(rows) < 2:
        raise UserError(f"calibration needs at least 2 measured points, got {len(rows)}")
    dev = main_device(system_path)
    base = base_efficiency(system_path)
    measured = getattr(dev, "achieved", None) is not None and dev.kind == "cpu"
    prior_factor = PRIOR_FACTOR_MEASURED if measured else PRIOR_FACTOR
    params = list(params) if params else _active_params(rows, system_path, base,
                                                        MIN_SENSITIVITY_MEASURED if measured else 0.002)
    if not params:
        raise UserError("no efficiency factor is identifiable from these points")
    x0 = np.array([math.log(min(max(getattr(base, p), BOUNDS[p][0] * 1.01), BOUNDS[p][1] * 0.99)) for p in params])
    lo = np.array([math.log(BOUNDS[p][0]) for p in params])
    hi = np.array([math.log(BOUNDS[p][1]) for p in params])
    meas = np.array([float(r["measured_s"]) for r in rows])
    # weak log-normal prior centred on the documented defaults (σ = ln 3 against a ~5 % measurement
    # noise): keeps a factor the points barely constrain from drifting to a bound to absorb noise
    # the per-operator overhead is not one measured ceiling (a tiny op and a GEMM call are its two
    # measured ends), so it keeps the wide prior even on a probed device
    prior_w = np.array([PRIOR_NOISE / math.log(PRIOR_FACTOR if p == "kernel_launch_us" else prior_factor)
                        for p in params])

    def calib(x) -> Calibration:
        return Calibration(by_key={dev.name: {p: float(math.exp(v)) for p, v in zip(params, x)}}, path="(fit)")

    def resid(x):
        pred = np.array([p["predicted_s"] for p in predict_rows(rows, system_path, calib(x))])
        return np.concatenate([np.log(pred / meas), prior_w * (x - x0)])

    r0 = resid(x0)
    # multi-start: the defaults, and the defaults with each factor moved 3× either way (step
    # times are sums of terms, so the cost has shallow valleys a single start can stop in)
    starts = [x0]
    for i in range(len(params)):
        for f in (math.log(3.0), -math.log(3.0)):
            x = x0.copy()
            x[i] = min(max(x[i] + f, lo[i] + 1e-6), hi[i] - 1e-6)
            starts.append(x)
    sol = None
    for x in starts:
        cand = least_squares(resid, x, bounds=(lo, hi), x_scale=1.0, diff_step=1e-3, max_nfev=300,
                             ftol=1e-10, xtol=1e-10, gtol=1e-10)
        if sol is None or cand.cost < sol.cost:
            sol = cand
    fitted = {p: float(math.exp(v)) for p, v in zip(params, sol.x)}
    # a factor on a bound: where would the data take it without the bound?  (diagnostic only;
    # the bounded fit is what is used)
    unbounded = None
    if any(abs(v - lo[i]) < AT_BOUND_LOG_TOL or abs(v - hi[i]) < AT_BOUND_LOG_TOL for i, v in enumerate(sol.x)):
        wide = least_squares(resid, sol.x, bounds=(lo - math.log(100.0), hi + math.log(10.0)), x_scale=1.0,
                             diff_step=1e-3, max_nfev=300, ftol=1e-10, xtol=1e-10, gtol=1e-10)
        unbounded = {p: float(math.exp(v)) for p, v in zip(params, wide.x)}
    n = len(rows)
    return {"device": dev.name, "efficiency_class": dev.efficiency_class, "params": fitted,
            "defaults": {p: float(getattr(base, p)) for p in FIT_PARAMS}, "base_source": base.source,
            "bounds": {p: list(BOUNDS[p]) for p in params}, "at_bound": at_bound_report(fitted, unbounded),
            "unbounded_fit": unbounded,
            "rms_log_error_before": float(np.sqrt(np.mean(r0[:n] ** 2))),
            "rms_log_error_after": float(np.sqrt(np.mean(sol.fun[:n] ** 2))), "points": len(rows),
            "fitted_factors": params, "prior": f"log-normal around the defaults ({base.source}), sigma = ln {prior_factor:g}",
            "converged": bool(sol.success), "message": str(sol.message)}


def calibration_object(fit: dict):
    from moecap_sim.perf.efficiency import Calibration

    return Calibration(by_key={fit["device"]: dict(fit["params"])}, path="(fit)")


def read_rows(paths: Sequence[str]) -> list[dict]:
    """Rows of measurements CSVs (files, or directories searched for measurements.csv)."""
    import pandas as pd

    files: list[Path] = []
    for p in paths:
        q = Path(p)
        if q.is_dir():
            files += sorted(q.rglob("measurements.csv"))
        elif q.exists():
            files.append(q)
        else:
            raise UserError(f"measurements not found: {p}")
    if not files:
        raise UserError(f"no measurements.csv under {', '.join(map(str, paths))} (run `moecap-sim validate` first)")
    rows = []
    for f in files:
        df = pd.read_csv(f)
        missing = [c for c in ("model", "phase", "distinct_per_layer") + NUMERIC_COLS if c not in df.columns]
        if missing:
            raise UserError(f"{f}: not a validation measurements file (missing columns: {', '.join(missing)})")
        for r in df.to_dict("records"):
            r["_file"] = str(f)
            rows.append(r)
    return rows


def calibrate(paths: Sequence[str], system_path: Optional[str] = None, output: Optional[str] = None,
              use_all: bool = False, command: str = "") -> dict:
    """Fit on the calibration subset of the measurements at ``paths``; report held-out error;
    write the calibration file (default: ``calibration.json`` beside the hardware folder)."""
    from moecap_sim.validation.compare import assign_split

    rows = read_rows(paths)
    if system_path is None:
        system_path = _system_of(rows)
    if "split" not in rows[0] or any(str(r.get("split")) not in ("cal", "held") for r in rows):
        assign_split(rows)
    cal_rows = rows if use_all else [r for r in rows if r["split"] == "cal"]
    held = [r for r in rows if r["split"] == "held"]
    fit = fit_efficiency(cal_rows, system_path)
    if output is None:
        output = str(Path(rows[0]["_file"]).parent.parent / "calibration.json")
    res = write_calibration(fit, rows, system_path, output, hardware=rows[0].get("hardware"), command=command,
                            fitted_on_all=use_all)
    res["rows"] = rows
    return res


def write_calibration(fit: dict, rows: list, system_path: str, path, hardware: Optional[str] = None,
                      command: str = "", date: Optional[str] = None, fitted_on_all: bool = False) -> dict:
    """The one writer of calibration files (``validate --calibrate`` and ``calibrate`` both call
    it): predicts every row with and without the fit (``predicted_s`` / ``predicted_cal_s`` are
    set on the rows), reports in-sample and held-out errors and factors at a bound, writes
    ``path`` and returns the document (with ``path``)."""
    from moecap_sim.validation.compare import errors, predict_rows

    cal = calibration_object(fit)
    for r, a, b in zip(rows, predict_rows(rows, system_path), predict_rows(rows, system_path, cal)):
        r["predicted_s"] = a["predicted_s"]
        r["predicted_cal_s"] = b["predicted_s"]
        r["error_pct"] = (a["predicted_s"] / float(r["measured_s"]) - 1.0) * 100
        r["error_cal_pct"] = (b["predicted_s"] / float(r["measured_s"]) - 1.0) * 100
    cal_rows = rows if fitted_on_all else [r for r in rows if r.get("split") == "cal"]
    held_rows = rows if fitted_on_all else [r for r in rows if r.get("split") == "held"]
    doc = {
        "format": "moecap-calibration/1",
        "efficiency": {fit["device"]: {k: round(v, 5) for k, v in fit["params"].items()}},
        "hardware": hardware, "system_spec": str(system_path),
        "efficiency_class": fit["efficiency_class"], "defaults": fit["defaults"],
        "defaults_source": fit.get("base_source"),
        "bounds": fit.get("bounds"), "at_bound": fit.get("at_bound", []),
        "fitted_on": {"points": len(cal_rows), "models": sorted({r["model"] for r in cal_rows}),
                      "subset": "all points" if fitted_on_all else
                      "calibration subset (checkerboard over batch size and context per model and phase)"},
        "in_sample": {"points": len(cal_rows), "calibrated": errors(cal_rows, "predicted_cal_s"),
                      "uncalibrated": errors(cal_rows, "predicted_s")},
        "held_out": {"points": len(held_rows), "calibrated": errors(held_rows, "predicted_cal_s"),
                     "uncalibrated": errors(held_rows, "predicted_s")},
        "per_model_held_out": {m: {"calibrated": errors([r for r in held_rows if r["model"] == m], "predicted_cal_s"),
                                   "uncalibrated": errors([r for r in held_rows if r["model"] == m], "predicted_s")}
                               for m in sorted({r["model"] for r in held_rows})},
        "fit": {k: fit[k] for k in ("rms_log_error_before", "rms_log_error_after", "converged", "message",
                                    "fitted_factors", "prior")},
        "method": "scipy.optimize.least_squares on log(predicted/measured), log-parameterised, bounded "
                  "(0 < efficiency <= 1 of its ceiling, overhead >= 0)",
        "date": date or _dt.datetime.now().isoformat(timespec="seconds"), "command": command,
    }
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc, indent=2))
    doc["path"] = str(path)
    return doc


def _system_of(rows: list[dict]) -> str:
    """The probed system spec recorded beside the measurements: ``<hw>/hw/<hw>-system.yaml``
    (``<hw>/hw-quick/`` for quick runs, whose results live in ``<hw>/quick/<model>/``)."""
    f = Path(rows[0]["_file"]).resolve()
    hw = str(rows[0].get("hardware", ""))
    quick = f.parent.parent.name == "quick"
    for d in ([f.parent.parent.parent / "hw-quick", f.parent.parent.parent / "hw"] if quick else []) + \
             [f.parent.parent / "hw", f.parent.parent / "hw-quick"]:
        for cand in ([d / f"{hw}-system.yaml"] if hw else []) + (sorted(d.glob("*-system.yaml")) if d.exists() else []):
            if cand.exists():
                return str(cand)
    raise UserError("cannot find the probed system spec beside the measurements; pass --hw FILE")
