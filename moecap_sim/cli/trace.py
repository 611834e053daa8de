"""``moecap-sim trace import|stats|fit|synth`` — thin layer over :mod:`moecap_sim.traces`."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer
from rich.table import Table

from moecap_sim.errors import UserError

app = typer.Typer(help="Expert-routing traces: import logs, statistics, routing profiles, synthesis.",
                  no_args_is_help=False, add_completion=False)
from moecap_sim.cli.render import console, print_json  # shared console (wide when not a TTY)


def _fmt(x, nd=2) -> str:
    if x is None:
        return "-"
    if isinstance(x, float):
        return f"{x:.{nd}f}"
    return str(x)


def _ints(spec: Optional[str], what: str) -> Optional[list[int]]:
    if spec is None:
        return None
    try:
        return [int(x) for x in spec.replace(" ", "").split(",")[:1000] if x]
    except ValueError:
        raise UserError(f"{what} must be a comma-separated list of integers, got '{spec}'") from None


@app.command("import")
def import_cmd(
    src: List[Path] = typer.Argument(..., help="routing log(s); several files of one workload are merged"),
    out: Path = typer.Option(..., "-o", "--out", help="output trace (.trace.npz)"),
    fmt: Optional[str] = typer.Option(None, "--format", "-f",
                                      help="speculative-moe | vllm-moe-logger | vllm-moe-logger-global | "
                                           "moecap-recorder | vllm-routed-experts | generic (default: detect)"),
    map_: Optional[List[str]] = typer.Option(None, "--map", help="generic format: FIELD=COLUMN (experts, layer, "
                                                                  "token, request, pass, phase, weights, position)"),
    mapping: Optional[str] = typer.Option(None, "--mapping", help="generic format: mapping as JSON or a JSON file"),
    model: Optional[str] = typer.Option(None, "--model", help="model name (catalog) or HF id"),
    num_experts: Optional[int] = typer.Option(None, "--num-experts"),
    top_k: Optional[int] = typer.Option(None, "--top-k"),
    num_shared_experts: Optional[int] = typer.Option(None, "--num-shared-experts"),
    num_moe_layers: Optional[int] = typer.Option(None, "--num-moe-layers"),
    pass_sizes: Optional[str] = typer.Option(None, "--pass-sizes", help="forward-pass sizes when the log does not "
                                                                         "mark them, e.g. 1377,25x46,24x81"),
    prompt_len: Optional[int] = typer.Option(None, "--prompt-len", help="routed-experts arrays: prompt tokens"),
    dataset: Optional[str] = typer.Option(None, "--dataset"),
    engine: Optional[str] = typer.Option(None, "--engine"),
    license_: Optional[str] = typer.Option(None, "--license"),
    keep_warmup: bool = typer.Option(False, "--keep-warmup", help="keep vLLM's dummy warm-up passes"),
    as_json: bool = typer.Option(False, "--json", help="print one JSON object describing the written trace"),
) -> None:
    """Convert routing logs to the project's trace format (see traces/README.md)."""
    from moecap_sim.traces import load_trace, trace_import

    mp = list(map_) if map_ else (mapping if mapping else None)
    path = trace_import(src, out, fmt=fmt, mapping=mp, model=model, num_experts=num_experts, top_k=top_k,
                        num_shared_experts=num_shared_experts, num_moe_layers=num_moe_layers,
                        pass_sizes=pass_sizes, prompt_len=prompt_len, dataset=dataset, engine=engine,
                        license=license_, keep_warmup=keep_warmup)
    tr = load_trace(path)
    if as_json:
        return print_json({"out": str(path), "model": tr.model, "num_experts": tr.num_experts, "top_k": tr.top_k,
                           "num_shared_experts": tr.meta.get("num_shared_experts", 0),
                           "num_moe_layers": tr.meta.get("num_moe_layers"), "format": tr.meta.get("format_imported"),
                           "source": tr.source_label(), "token_rows": tr.num_tokens, "layers": tr.layers.tolist(),
                           "forward_passes": len(tr.pass_table().get("phase", [])),
                           "pass_structure": tr.meta.get("pass_structure"), "request_ids": tr.meta.get("request_ids"),
                           "filters": tr.meta.get("filters", []), "notes": tr.meta.get("notes", [])})
    t = Table(title=f"imported {path}", show_header=False)
    t.add_row("model", f"{tr.model}  (E={tr.num_experts}, top-{tr.top_k}, shared {tr.meta.get('num_shared_experts', 0)}, "
                       f"{tr.meta.get('num_moe_layers')} MoE layers)")
    t.add_row("format", str(tr.meta.get("format_imported")))
    t.add_row("source", tr.source_label())
    t.add_row("token rows", str(tr.num_tokens))
    t.add_row("logged layers", ", ".join(map(str, tr.layers.tolist()[:12])) + (" ..." if len(tr.layers) > 12 else ""))
    pt = tr.pass_table()
    if pt:
        t.add_row("forward passes", f"{len(pt['phase'])} ({tr.meta.get('pass_structure')}): "
                                    f"{int((pt['phase'] == 0).sum())} prefill, {int((pt['phase'] == 1).sum())} decode")
    t.add_row("request ids", str(tr.meta.get("request_ids")))
    for f in tr.meta.get("filters", []):
        t.add_row("filter", f)
    for n in tr.meta.get("notes", []):
        t.add_row("note", n)
    console.print(t)


@app.command("stats")
def stats_cmd(
    file: Path = typer.Argument(..., help="trace (.trace.npz) made by `trace import` or `trace synth`"),
    as_json: bool = typer.Option(False, "--json", help="print one JSON object"),
    plots: Optional[Path] = typer.Option(None, "--plots", help="write PNG plots into this directory"),
    ep_size: Optional[int] = typer.Option(None, "--ep-size", help="expert-parallel ranks (default 8, or 4, 2)"),
    placement: str = typer.Option("contiguous", "--placement",
                                  help="contiguous | round-robin | balanced | JSON file (rank per expert)"),
    batch_sizes: Optional[str] = typer.Option(None, "--batch-sizes", help="B values, e.g. 1,8,32"),
) -> None:
    """Per-layer load, distinct experts per pass and vs batch size, reuse, cross-layer, EP imbalance."""
    from moecap_sim.traces import trace_stats

    st = trace_stats(file, ep_size=ep_size, plots_dir=plots, placement=placement,
                     batch_sizes=_ints(batch_sizes, "--batch-sizes"))
    if as_json:
        return print_json(st)  # NaN/inf become null: always valid JSON
    title = f"{st['model']}{' [SYNTHETIC]' if st['synthetic'] else ''} — {st['source']}"
    t = Table(title=title, title_justify="left")
    bs = [b for b in ("1", "8", "32") if any(b in it.get("distinct_vs_batch", {}) for it in st["layers"])]
    cols = ["layer", "max/mean", "gini", "entropy", "distinct/step"] + [f"B={b}" for b in bs] + \
           ["reuse (chance)", "NMI next", "EP max/mean"]
    for c in cols:
        t.add_column(c, justify="right")
    layers = st["layers"]
    if len(layers) > 16:  # deep models: every n-th layer, the last, and the mean
        stride = -(-len(layers) // 12)
        layers = layers[::stride] + ([layers[-1]] if (len(layers) - 1) % stride else [])
    rows = layers + [dict(st["summary"], layer="mean")]
    for it in rows:
        d = it.get("distinct_vs_batch", {})
        ep = it.get("ep") or {}
        t.add_row(str(it.get("layer")), _fmt(it.get("max_over_mean")), _fmt(it.get("gini"), 3), _fmt(it.get("entropy"), 3),
                  _fmt(it.get("distinct_per_step_mean"), 1), *[_fmt(d.get(b), 1) for b in bs],
                  f"{_fmt(it.get('temporal_reuse'))} ({_fmt(it.get('temporal_reuse_chance'))})",
                  _fmt(it.get("cross_layer_nmi"), 3),
                  _fmt(ep.get("max_over_mean_load") if ep else it.get("ep_max_over_mean_load")))
    console.print(t)
    p = st.get("passes")
    if p:
        console.print(f"forward passes: {p['count']} ({st.get('pass_structure')}), {p['prefill']} prefill, "
                      f"{p['decode']} decode; decode batch {p['decode_batch_first']} → {p['decode_batch_last']} "
                      f"(mean {_fmt(p['decode_batch_mean'])})")
    if st["summary"].get("ep_size"):
        console.print(f"EP: {st['summary']['ep_size']} ranks, placement {st['placement']}")
    if st.get("temporal_reuse_basis"):
        console.print(f"temporal reuse: {st['temporal_reuse_basis']}")
    for w in st.get("warnings", []):
        console.print(f"[yellow]warning:[/] {w}")
    for f in st.get("plots", []):
        console.print(f"plot: {f}")


@app.command("fit")
def fit_cmd(
    files: List[Path] = typer.Argument(..., help="trace(s) of one model"),
    out: Path = typer.Option(..., "-o", "--out", help="output routing profile (.json)"),
    model: Optional[str] = typer.Option(None, "--model", help="model name to record (default: the trace's)"),
    as_json: bool = typer.Option(False, "--json", help="print one JSON object describing the fitted profile"),
) -> None:
    """Fit a routing profile (compact statistics with provenance) to real traces."""
    from moecap_sim.traces import trace_fit

    prof = trace_fit(list(files) if len(files) > 1 else files[0], out, model=model)
    if as_json:
        return print_json({"out": str(out), "kind": prof.kind, "model": prof.model, "num_experts": prof.num_experts,
                           "top_k": prof.top_k, "source": prof.source,
                           "expected_distinct_experts": {str(b): prof.expected_distinct_experts(b) for b in (1, 8, 32)},
                           "fit": prof.data.get("fit", {}).get("per_step_summary"), "notes": prof.data.get("notes", [])})
    t = Table(title=f"{out}: {prof.kind} for {prof.model}", show_header=False, title_justify="left")
    t.add_row("source", prof.source)
    t.add_row("distinct experts, B = 1 / 8 / 32",
              " / ".join(f"{prof.expected_distinct_experts(b):.2f}" for b in (1, 8, 32)) + f"  (of {prof.num_experts})")
    ep = 8 if prof.num_experts % 8 == 0 else 4
    t.add_row(f"EP={ep} max/mean load, B = 8 / 32",
              " / ".join(f"{prof.ep_max_rank_load(b, ep) / (b * prof.top_k / ep):.3f}" for b in (8, 32)))
    t.add_row("in-batch correlation", prof.data.get("kappa_basis", "-"))
    fit = prof.data.get("fit", {})
    if fit.get("per_step_summary"):
        s = fit["per_step_summary"]
        t.add_row("per-step distinct (recorded)", f"mean error ≤ {s['mean_rel_err_max_abs']:.2%} per layer, held-out steps "
                                                  f"≤ {s['holdout_mean_rel_err_max_abs']:.2%}, per-step MAPE {s['mape_mean']:.1%} "
                                                  f"(noise floor {s['noise_floor_mape_mean']:.1%})")
    for n in prof.data.get("notes", []):
        t.add_row("note", n)
    console.print(t)


@app.command("synth")
def synth_cmd(
    out: Optional[Path] = typer.Option(None, "-o", "--out", help="output synthetic trace (.trace.npz)"),
    model: Optional[str] = typer.Option(None, "--model", help="catalog model (geometry from the catalog)"),
    tokens: int = typer.Option(4096, "--tokens", help="decode tokens to generate"),
    batch: int = typer.Option(1, "--batch", help="concurrent requests per decode step"),
    seed: int = typer.Option(0, "--seed"),
    profile: Optional[Path] = typer.Option(None, "--profile", help="fitted profile to take the parameters from"),
    skew: str = typer.Option("lognormal", "--skew", help="lognormal (transferable) | empirical (profile's q)"),
    num_experts: Optional[int] = typer.Option(None, "--num-experts"),
    top_k: Optional[int] = typer.Option(None, "--top-k"),
    num_shared_experts: Optional[int] = typer.Option(None, "--num-shared-experts"),
    num_moe_layers: Optional[int] = typer.Option(None, "--num-moe-layers"),
    synchronized: bool = typer.Option(False, "--synchronized", help="requests of a batch start together "
                                                                     "(offline benchmark) instead of steady state"),
    check: Optional[Path] = typer.Option(None, "--check", help="validate instead: fit on part of this real trace, "
                                                               "compare the synthetic curve with the held-out part"),
    split: str = typer.Option("auto", "--split", help="--check split: auto | requests | blocks | halves"),
    as_json: bool = typer.Option(False, "--json", help="print one JSON object (the written trace, or the --check result)"),
) -> None:
    """Generate a SYNTHETIC routing trace for a model without a real one (or --check the generator)."""
    from moecap_sim.traces import load_trace, trace_synth

    if check is not None:
        from moecap_sim.traces.synth import holdout_check

        from moecap_sim.inputs import SynthArgs, check_args

        check_args(SynthArgs, seed=seed, skew=skew)
        if split not in ("auto", "requests", "blocks", "halves"):
            raise UserError(f"--split = {split!r}: must be auto, requests, blocks or halves")
        res = holdout_check(load_trace(check), split=split, skew=skew, seed=seed)
        if as_json:
            return print_json(res)
        t = Table(title=f"generator held-out check on {check} ({res['split']}; skew {skew})", title_justify="left")
        t.add_column("layer", justify="right")
        t.add_column("max |error|, B=1..64", justify="right")
        t.add_column("worst B", justify="right")
        for it in res["layers"]:
            t.add_row(str(it["layer"]), f"{it['max_abs_rel_err']:.2%}", str(it["worst_B"]))
        console.print(t)
        verdict = "[green]within 5%[/]" if res["max_abs_rel_err"] <= 0.05 else "[red]outside 5%[/]"
        console.print(f"worst over layers and B: {res['max_abs_rel_err']:.2%} {verdict}")
        return
    if out is None:
        raise UserError("synth needs -o OUT (or --check TRACE)")
    trace_synth(model, tokens, out, batch=batch, seed=seed, profile=profile, num_experts=num_experts, top_k=top_k,
                num_shared_experts=num_shared_experts, num_moe_layers=num_moe_layers, skew=skew,
                synchronized=synchronized)
    tr = load_trace(out)
    if as_json:
        return print_json({"out": str(out), "synthetic": True, "model": tr.model, "num_experts": tr.num_experts,
                           "top_k": tr.top_k, "layers": tr.layers.tolist(), "token_rows": tr.num_tokens,
                           "batch": batch, "seed": seed, "source": tr.meta["source"]["description"]})
    console.print(f"wrote {out}: [bold yellow]SYNTHETIC[/] routing for {tr.model} "
                  f"(E={tr.num_experts}, top-{tr.top_k}, {len(tr.layers)} layers, {tr.num_tokens} tokens, batch {batch})")
    console.print(tr.meta["source"]["description"])
