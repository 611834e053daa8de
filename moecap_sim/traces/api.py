"""The trace API functions (the CLI is a thin layer over these)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional, Sequence, Union

from moecap_sim.errors import UserError
from moecap_sim.traces.format import Trace, load_trace, save_trace

PathLike = Union[str, Path]


def _paths(src) -> list[Path]:
    if isinstance(src, (str, Path)):
        return [Path(src)]
    return [Path(s) for s in src]


def trace_import(src: Union[PathLike, Sequence[PathLike]], out: PathLike, fmt: Optional[str] = None,
                 mapping=None, **options) -> Path:
    """Import one or more routing logs into a ``moecap-trace/1`` file at ``out``.

    ``options``: model, num_experts, top_k, num_shared_experts, num_moe_layers, dataset, engine,
    license, pass_sizes ("1377,25x46,24x81"), prompt_len (routed-experts arrays), keep_warmup.
    Nothing is written when the input is malformed.
    """
    from moecap_sim.inputs import check_output_path
    from moecap_sim.traces.importers import import_sources

    out = check_output_path(out, "-o/--out", (".npz",))
    srcs = _paths(src)
    if any(out.resolve() == s.resolve() for s in srcs if s.exists()):
        raise UserError("the output path must differ from the source file")
    tr = import_sources(srcs, fmt=fmt, mapping=mapping, **options)
    tr.meta["created_by"] = "moecap-sim trace import"
    save_trace(tr, out)
    return out


def _load(path) -> Trace:
    return path if isinstance(path, Trace) else load_trace(path)


def trace_stats(path, ep_size: Optional[int] = None, plots_dir: Optional[PathLike] = None,
                placement: str = "contiguous", batch_sizes: Optional[Sequence[int]] = None) -> dict:
    """Statistics of a trace (see :func:`moecap_sim.traces.stats.compute_stats`); with
    ``plots_dir``, also writes the load heatmap and distinct-vs-B plots there."""
    from moecap_sim.inputs import StatsArgs, check_args, check_output_dir
    from moecap_sim.traces.stats import compute_stats

    check_args(StatsArgs, ep_size=ep_size, batch_sizes=list(batch_sizes) if batch_sizes is not None else None)
    check_output_dir(plots_dir, "--plots")
    if placement not in ("contiguous", "round-robin", "balanced"):
        from moecap_sim.inputs import read_text_file

        read_text_file(placement, "--placement file")  # a JSON file: must be readable UTF-8 text
    tr = _load(path)
    st = compute_stats(tr, ep_size=ep_size, placement=placement, batch_sizes=batch_sizes)
    if not isinstance(path, Trace):
        st["trace"] = str(path)
    if plots_dir is not None:
        from moecap_sim.traces.plots import write_stats_plots

        st["plots"] = [str(p) for p in write_stats_plots(tr, st, Path(plots_dir))]
    return st


def trace_fit(path, out: Optional[PathLike] = None, model: Optional[str] = None):
    """Fit a routing profile to a trace (or several traces of one model); write it to ``out``
    (JSON) when given, and return it (a :class:`~moecap_sim.routing.profiles.FittedProfile`)."""
    from moecap_sim.inputs import check_output_path
    from moecap_sim.traces.fit import fit_profile

    check_output_path(out, "-o/--out", (".json",))
    traces = [_load(p) for p in (path if isinstance(path, (list, tuple)) else [path])]
    prof = fit_profile(traces, model=model)
    if out is not None:
        from moecap_sim.routing.profiles import save_profile

        save_profile(prof, Path(out))
    return prof


def trace_synth(model: Optional[str], tokens: int, out: PathLike, batch: int = 1, seed: int = 0,
                profile=None, like=None, num_experts: Optional[int] = None, top_k: Optional[int] = None,
                num_shared_experts: Optional[int] = None, num_moe_layers: Optional[int] = None,
                layers: Optional[Sequence[int]] = None, skew: str = "lognormal", synchronized: bool = False) -> Path:
    """Write a synthetic trace of ``tokens`` decode tokens (``batch`` concurrent requests) for a
    model without a real trace.  Parameters come from ``profile`` (a fitted profile or its JSON
    path; e.g. fitted on part of a real trace) or are transferred from the shipped real-trace fits
    by the rule in :mod:`moecap_sim.traces.synth`.  Batches are in steady state unless
    ``synchronized`` (every batch's requests start together, like an offline benchmark).
    The output is labelled synthetic."""
    from moecap_sim.inputs import SynthArgs, check_args, check_output_path
    from moecap_sim.traces.synth import synth_trace

    check_args(SynthArgs, tokens=tokens, batch=batch, seed=seed, skew=skew, num_experts=num_experts, top_k=top_k,
               num_shared_experts=num_shared_experts, num_moe_layers=num_moe_layers)
    check_output_path(out, "-o/--out", (".npz",))
    if isinstance(profile, (str, Path)):
        _check_profile_file(profile)
    tr = synth_trace(model=model, tokens=tokens, batch=batch, seed=seed, profile=profile,
                     num_experts=num_experts, top_k=top_k, num_shared_experts=num_shared_experts,
                     num_moe_layers=num_moe_layers, layers=layers, skew=skew, synchronized=synchronized)
    save_trace(tr, Path(out))
    return Path(out)


def _check_profile_file(path: PathLike) -> None:
    """A fitted-profile JSON must be readable UTF-8 JSON without NaN before the generator uses it."""
    import json

    from moecap_sim.inputs import read_text_file

    text = read_text_file(path, "profile file")

    def bad(c):
        raise UserError(f"profile file {path}: {c} is not a number (JSON has no NaN/Infinity)")

    try:
        data = json.loads(text, parse_constant=bad)
    except json.JSONDecodeError as exc:
        raise UserError(f"profile file {path}: not valid JSON at line {exc.lineno}: {exc.msg}") from None
    if not isinstance(data, dict):
        raise UserError(f"profile file {path}: expected a JSON object (a profile from `moecap-sim trace fit`)")
