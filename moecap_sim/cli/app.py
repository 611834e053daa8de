"""Typer application: command groups and the ``predict`` command."""

from __future__ import annotations

from typing import Optional

import typer

from moecap_sim.cli.render import console, human_params, print_json, table
from moecap_sim.config import field_help

app = typer.Typer(
    help="Predict the Cost, Accuracy and Performance of serving sparse Mixture-of-Experts LLMs "
         "on hardware you may not own (MoE-CAP, as a simulator and analytical predictor).",
    no_args_is_help=False, add_completion=False, pretty_exceptions_enable=False)
models_app = typer.Typer(help="The model catalog (names, aliases, geometry).", no_args_is_help=False)
hw_app = typer.Typer(help="The hardware catalog: devices and systems.", no_args_is_help=False)
app.add_typer(models_app, name="models")
app.add_typer(hw_app, name="hw")


def _version(value: bool) -> None:
    if value:
        from importlib.metadata import PackageNotFoundError, version

        try:
            v = version("moecap-sim")
        except PackageNotFoundError:  # a source checkout that was not installed
            from moecap_sim import __version__ as v
        typer.echo(f"moecap-sim {v}")
        raise typer.Exit()


@app.callback()
def _root(version: bool = typer.Option(False, "--version", is_eager=True, callback=_version,
                                       help="Print the version and exit.")) -> None:
    """Predict the Cost, Accuracy and Performance of serving sparse Mixture-of-Experts LLMs."""

try:  # the trace command group (routing traces) lives in its own module
    from moecap_sim.cli.trace import app as trace_app

    app.add_typer(trace_app, name="trace", help="Expert-routing traces: import, stats, fit, synth.")
except ImportError:  # pragma: no cover - during development only
    pass


@models_app.command("list")
def models_list(json_out: bool = typer.Option(False, "--json", help="Print JSON instead of a table.")):
    """List catalog models with total/active parameters and expert layout."""
    from moecap_sim import api

    rows = api.models_list()
    if json_out:
        return print_json(rows)
    console.print(table("Models", ["name", "family", "total", "active", "experts", "top-k"],
                        [[r["name"], r["family"], human_params(r["total_params"]), human_params(r["active_params"]),
                          r["experts"], r["top_k"]] for r in rows]))


@models_app.command("show")
def models_show(name: str = typer.Argument(..., help="Catalog name/alias, or a path to a Hugging Face config.json."),
                json_out: bool = typer.Option(False, "--json", help="Print JSON (counts as plain integers).")):
    """Show a model's derived geometry: parameters, experts, KV bytes per token, weight sizes."""
    from moecap_sim import api

    d = api.model_summary(name)
    if json_out:
        return print_json(d)
    pub = d["published"] or {}
    rows = [
        ["family", d["family"]], ["layers (MoE)", f"{d['num_layers']} ({d['num_moe_layers']})"],
        ["hidden / vocab", f"{d['hidden_size']} / {d['vocab_size']}"], ["attention", ", ".join(d["attention"])],
        ["routed experts / top-k / shared", f"{d['num_experts']} / {d['top_k']} / {d['num_shared_experts']}"],
        ["params per expert", human_params(d["params_per_expert"]) if d["params_per_expert"] else "—"],
        ["total params", f"{human_params(d['total_params'])} (published {human_params(pub['total_params']) if pub else '—'})"],
        ["active params / token", f"{human_params(d['active_params'])} (published "
                                  f"{human_params(pub['active_params']) if pub.get('active_params') else '—'})"],
        ["native precision", d["native_precision"]],
        ["weights, native", f"{d['weight_gb_native']:.1f} GB"],
        ["weights bf16 / fp8 / int4", " / ".join(f"{d['weight_gb'][p]:.1f}" for p in ("bf16", "fp8", "int4")) + " GB"],
        ["KV cache (bf16)", f"{d['kv_bytes_per_token_bf16'] / 1024:.1f} KiB per token"],
        ["max context", d["max_context"]], ["config source", d["config_source"]],
    ]
    console.print(table(d["display_name"], ["", ""], rows))
    for n in d["notes"]:
        console.print(f"[dim]note: {n}[/dim]")


@hw_app.command("list")
def hw_list(json_out: bool = typer.Option(False, "--json", help="Print JSON instead of tables.")):
    """List devices (accelerators and CPUs) and systems (named boxes with prices)."""
    from moecap_sim import api

    d = api.hw_list()
    if json_out:
        return print_json(d)
    console.print(table("Systems", ["name", "accelerators", "host CPU", "DRAM GB", "$/h on demand", "purchase $"],
                        [[s["name"], s["accelerators"], s["host_cpu"], s["dram_gb"], s["on_demand_usd_per_hour"],
                          s["purchase_usd"]] for s in d["systems"]]))
    console.print(table("Devices (dense peaks)", ["name", "kind", "memory GB", "GB/s", "bf16 TFLOPS", "fp8 TFLOPS", "TDP W"],
                        [[x["name"], x["kind"], x["memory_gb"], x["bandwidth_gb_s"], x["bf16_tflops"], x["fp8_tflops"],
                          x["tdp_w"]] for x in d["devices"]]))


@hw_app.command("show")
def hw_show(name: str = typer.Argument(..., help="System or device name/alias, or a path to a spec YAML."),
            json_out: bool = typer.Option(False, "--json", help="Print JSON.")):
    """Show a system or device spec with the source of every value."""
    from moecap_sim import api
    import yaml

    d = api.hw_show(name)
    if json_out:
        return print_json(d)
    d.pop("devices", None)
    console.print(f"[bold]{d['display_name']}[/bold] ({d['spec_kind']} '{d['name']}')")
    console.print(yaml.safe_dump({k: v for k, v in d.items() if k not in ("display_name", "sources", "uncertain_fields")},
                                 sort_keys=False).rstrip())
    console.print("[bold]sources[/bold]")
    for k, v in d["sources"].items():
        console.print(f"  {k}: {v}")
    if d["uncertain_fields"]:
        console.print(f"[yellow]uncertain values (source marked '?'): {', '.join(d['uncertain_fields'])}[/yellow]")


@app.command("predict")
def predict_cmd(
    model: str = typer.Option(..., "--model", "-m", help="Catalog model name/alias, or a path to a HF config.json."),
    hw: str = typer.Option(..., "--hw", help="System name (see `moecap-sim hw list`) or a path to a system YAML."),
    precision: Optional[str] = typer.Option(None, help="Weight precision: bf16|fp16|fp8|int8|int4|nvfp4|mxfp4|fp32 "
                                                       "(default: the model's native checkpoint)."),
    kv_dtype: Optional[str] = typer.Option(None, "--kv-dtype", help="KV-cache dtype: bf16|fp16|fp8 (default bf16)."),
    engine: Optional[str] = typer.Option(None, help="Engine preset: vllm|sglang|trtllm|ktransformers|moe-infinity|llama.cpp|hf."),
    tp: Optional[int] = typer.Option(None, help="Tensor-parallel size (default: all accelerators not used by PP/DP)."),
    ep: int = typer.Option(1, help="Expert-parallel size (ranks among TP×DP)."),
    pp: int = typer.Option(1, help="Pipeline-parallel stages."),
    dp: int = typer.Option(1, help="Data-parallel replicas."),
    batch: str = typer.Option("1", help="Concurrent sequences, or 'max' for the largest the KV budget allows."),
    input_len: int = typer.Option(1024, "--input-len", help="Prompt tokens per request."),
    output_len: int = typer.Option(256, "--output-len", help="Generated tokens per request."),
    max_output_len: Optional[int] = typer.Option(None, "--max-output-len", help=field_help("max_output_len")),
    offload: str = typer.Option("auto", help="auto|none|expert-cache|cpu-experts|cpu-only|nvme."),
    nodes: int = typer.Option(1, help=field_help("nodes")),
    attention_dp: bool = typer.Option(False, "--attention-dp", help=field_help("attention_dp")),
    n_cpu_moe: Optional[int] = typer.Option(None, "--n-cpu-moe", help=field_help("n_cpu_moe")),
    max_num_seqs: Optional[int] = typer.Option(None, "--max-num-seqs", help=field_help("max_num_seqs")),
    max_num_batched_tokens: Optional[int] = typer.Option(None, "--max-num-batched-tokens",
                                                         help=field_help("max_num_batched_tokens")),
    max_tpot_s: Optional[float] = typer.Option(None, "--max-tpot-s", help=field_help("max_tpot_s")),
    threads: Optional[int] = typer.Option(None, "--threads", help=field_help("threads")),
    requests: Optional[int] = typer.Option(None, "--requests", help=field_help("requests")),
    output_len_dist: str = typer.Option("fixed", "--output-len-dist", help=field_help("output_len_dist")),
    disaggregated: bool = typer.Option(False, "--disaggregated", help=field_help("disaggregated")),
    overlap_comm: bool = typer.Option(False, "--overlap-comm", help=field_help("overlap_comm")),
    mtp_draft_tokens: int = typer.Option(0, "--mtp-draft-tokens", help=field_help("mtp_draft_tokens")),
    mtp_acceptance: float = typer.Option(0.7, "--mtp-acceptance", help=field_help("mtp_acceptance")),
    gpu_memory_utilization: Optional[float] = typer.Option(None, "--gpu-memory-utilization",
                                                           help=field_help("gpu_memory_utilization")),
    pricing: str = typer.Option("on-demand", help="on-demand|spot|owned."),
    calibration: Optional[str] = typer.Option(None, help="Calibration file from `moecap-sim calibrate`."),
    amortize_years: float = typer.Option(3.0, "--amortize-years", help="Owned pricing: years to amortise the purchase over."),
    usd_per_kwh: float = typer.Option(0.10, "--usd-per-kwh", help="Owned pricing: electricity price."),
    pue: float = typer.Option(1.3, help="Owned pricing: data-centre power usage effectiveness."),
    json_out: bool = typer.Option(False, "--json", help="Print one JSON object (the stable contract)."),
):
    """Predict whether MODEL fits on HW, where weights and KV live, and its latency, throughput,
    S-MBU/S-MFU, bottleneck, cost, energy and accuracy, with an error band from published
    measurements; when it does not fit, the fastest deployment that does run there."""
    from moecap_sim.config import ServingConfig
    from moecap_sim.predict import predict
    from moecap_sim.cli.report import render_prediction

    cfg = ServingConfig(model=model, hw=hw, precision=precision, kv_dtype=kv_dtype, engine=engine, tp=tp, ep=ep,
                        pp=pp, dp=dp, nodes=nodes, attention_dp=attention_dp, batch=batch, input_len=input_len,
                        output_len=output_len, max_output_len=max_output_len, offload=offload, n_cpu_moe=n_cpu_moe,
                        max_num_seqs=max_num_seqs,
                        max_num_batched_tokens=max_num_batched_tokens, max_tpot_s=max_tpot_s, threads=threads,
                        requests=requests, output_len_dist=output_len_dist,
                        disaggregated=disaggregated, overlap_comm=overlap_comm,
                        mtp_draft_tokens=mtp_draft_tokens,
                        mtp_acceptance=mtp_acceptance, gpu_memory_utilization=gpu_memory_utilization,
                        pricing=pricing, calibration=calibration, amortize_years=amortize_years,
                        usd_per_kwh=usd_per_kwh, pue=pue)
    res = predict(cfg)
    if json_out:
        return print_json(res)
    render_prediction(res)


@app.command("metrics")
def metrics_cmd(
    records: str = typer.Argument(..., help="Per-pass records (MoE-CAP recorder JSONL: latency, batch_size, "
                                            "seq_lens_sum, forward_mode, expert_activation, ...)."),
    model: str = typer.Option(..., "--model", "-m", help="Model the records were measured on."),
    hw: str = typer.Option(..., "--hw", help="System the records were measured on (name or YAML path)."),
    precision: Optional[str] = typer.Option(None, help="Weight precision used (default: native)."),
    kv_dtype: Optional[str] = typer.Option(None, "--kv-dtype", help="KV-cache dtype used (default bf16)."),
    json_out: bool = typer.Option(False, "--json", help="Print JSON."),
):
    """Compute S-MBU, S-MFU, TTFT, TPOT and throughput from measured per-pass records with the
    corrected MoE-CAP definitions (top-k experts, router, dense peaks, full-context KV, Eq. 6).
    Vanilla MBU/MFU are shown as the factor by which they over-count (they charge every expert);
    records implying more than 100 % of the hardware's peak are refused (exit 2)."""
    from moecap_sim.perf.measured import metrics_from_records

    d = metrics_from_records(records, model, hw, precision=precision, kv_dtype=kv_dtype)
    if json_out:
        return print_json(d)
    rows = []
    for ph in ("prefill", "decode"):
        p = d[ph]
        if p:
            oc = p["vanilla_overcount"]
            rows.append([ph, p["passes"], p["mean_pass_latency_s"], p["tokens_per_s"], f"{100 * p['s_mbu']:.1f}%",
                         f"{100 * p['s_mfu']:.2f}%", f"{oc['bytes']:.2f}× / {oc['flops']:.2f}×" if oc["bytes"] else "—",
                         p["mean_activated_experts_per_layer"]])
    console.print(table(f"{d['model']} on {d['hardware']} ({d['devices']} devices, peak {d['peak_bandwidth_gb_s']:.0f} GB/s, "
                        f"{d['peak_tflops']:.0f} TFLOPS {d['peak_dtype']} dense)",
                        ["phase", "passes", "mean pass s", "tokens/s", "S-MBU", "S-MFU",
                         "vanilla over-count bytes / FLOPs", "experts/layer"], rows))
    console.print("[dim]vanilla MBU/MFU would charge every expert to every pass and token; the factor is how much "
                  "they over-count (not a utilisation)[/dim]")
    console.print(f"TTFT {d['ttft_s']} s, TPOT {d['tpot_s']} s")
    for n in d["notes"]:
        console.print(f"[yellow]note: {n}[/yellow]")


@app.command("simulate")
def simulate_cmd(
    model: str = typer.Option(..., "--model", "-m", help="Catalog model name/alias, or a path to a HF config.json."),
    hw: str = typer.Option(..., "--hw", help="System name or a path to a system YAML."),
    workload: str = typer.Option("azure-conv", help="poisson | poisson-exp | fixed | azure-conv | azure-code (first 10 min) | "
                                                   "azure-conv-1h | azure-code-1h (the whole hour) | "
                                                   "closed:N[:THINK_S] (N users, each sending its next request when "
                                                   "the last finished) | a CSV path (arrival_s,input_tokens,"
                                                   "output_tokens, or the raw Azure trace)."),
    requests: Optional[int] = typer.Option(None, help="Number of requests (default: all in the file; 200 for poisson)."),
    rate: float = typer.Option(1.0, help="Arrival rate, req/s (poisson workloads)."),
    rate_scale: float = typer.Option(1.0, "--rate-scale", help="Compress trace arrivals by this factor (2 = twice the load)."),
    input_len: int = typer.Option(1024, "--input-len", help="Prompt tokens (poisson/fixed workloads)."),
    output_len: int = typer.Option(256, "--output-len", help="Output tokens (poisson/fixed workloads)."),
    seed: int = typer.Option(0, help="Random seed (same seed, same result)."),
    precision: Optional[str] = typer.Option(None, help="Weight precision (default: native)."),
    kv_dtype: Optional[str] = typer.Option(None, "--kv-dtype", help="KV-cache dtype."),
    engine: Optional[str] = typer.Option(None, help="Engine preset."),
    tp: Optional[int] = typer.Option(None, help="Tensor-parallel size."),
    ep: int = typer.Option(1, help="Expert-parallel size."),
    pp: int = typer.Option(1, help="Pipeline stages."),
    dp: int = typer.Option(1, help="Data-parallel replicas."),
    attention_dp: bool = typer.Option(False, "--attention-dp", help=field_help("attention_dp")),
    max_num_seqs: Optional[int] = typer.Option(None, "--max-num-seqs", help=field_help("max_num_seqs")),
    max_num_batched_tokens: Optional[int] = typer.Option(None, "--max-num-batched-tokens",
                                                         help=field_help("max_num_batched_tokens")),
    offload: str = typer.Option("auto", help="auto|none|expert-cache|cpu-experts|cpu-only|nvme."),
    pricing: str = typer.Option("on-demand", help="on-demand|spot|owned."),
    calibration: Optional[str] = typer.Option(None, help="Calibration file from `moecap-sim calibrate`."),
    routing: Optional[str] = typer.Option(None, help="Expert routing replayed step by step: a token-level routing "
                                                     "trace of this model (moecap-trace/1 .npz, from `trace import`; "
                                                     "replayed in order and wrapped), 'profile' (default: synthesised "
                                                     "per pass from the model's routing profile, seeded) or 'uniform'."),
    replay: bool = typer.Option(True, "--replay/--no-replay", help="Replay routing per pass (expert caches, EP "
                                                                   "imbalance, routing variance); --no-replay uses the "
                                                                   "profile's expectations (faster, no variance)."),
    cache_policy: str = typer.Option("lru", "--cache-policy", help="Expert-cache eviction of offloaded placements: "
                                                                    "lru | lfu."),
    scheduler: Optional[str] = typer.Option(None, help="Scheduler policy: vllm-v1 (chunked prefill mixed with decode, "
                                                       "paged KV, preemption by recompute; default for continuous "
                                                       "batching) | sglang (prefill batches first, admission against "
                                                       "expected output tokens, retraction; default for --engine "
                                                       "sglang) | prefill-first | static (default for static batching "
                                                       "engines)."),
    plots: Optional[str] = typer.Option(None, help="Directory to write plots into: latency CDFs, queue length and "
                                                   "expert-cache hit rate over time."),
    json_out: bool = typer.Option(False, "--json", help="Print JSON."),
):
    """Replay a request workload (real Azure arrivals by default) through the serving system in a
    SimPy discrete-event simulation, replaying expert routing pass by pass (expert caches in
    simulated time, EP imbalance) under the engine's scheduler: TTFT/TPOT/ITL/E2E percentiles,
    throughput, rejected/preempted requests, cache hit rate, cost per token (marked not
    meaningful when the system is overloaded)."""
    from pathlib import Path

    from moecap_sim.sim.simulate import plot_cdfs, plot_timeseries, simulate

    from moecap_sim.cli.render import LazyProgress
    from moecap_sim.inputs import check_output_dir

    check_output_dir(plots, "--plots")
    with LazyProgress("simulating requests") as bar:
        s = simulate(model, hw, workload=workload, requests=requests, rate=rate, rate_scale=rate_scale,
                     input_len=input_len, output_len=output_len, seed=seed, precision=precision, kv_dtype=kv_dtype,
                     engine=engine, tp=tp, ep=ep, pp=pp, dp=dp, attention_dp=attention_dp, max_num_seqs=max_num_seqs,
                     max_num_batched_tokens=max_num_batched_tokens, offload=offload, pricing=pricing,
                     calibration=calibration, return_requests=bool(plots), progress=bar, routing=routing,
                     replay=replay, cache_policy=cache_policy, scheduler=scheduler)
    reqs = s.pop("_requests", None)
    series = s.pop("_timeseries", None)
    if plots and s["fits"]:
        Path(plots).mkdir(parents=True, exist_ok=True)
        s["plots"] = [plot_cdfs(s, reqs, str(Path(plots) / "latency_cdf.png")),
                      plot_timeseries(s, series, str(Path(plots) / "queue_and_cache.png"))]
    if json_out:
        return print_json(s)
    if not s["fits"]:
        console.print(f"[red]does not fit:[/red] {s['reason']}")
        for x in s.get("suggestions") or []:
            console.print(f"  • {x}")
        return
    console.print(f"[bold]{s['model']['display_name']}[/bold] on [bold]{s['hardware']['display_name']}[/bold] — "
                  f"engine {s['engine']}, placement {s['placement']}; workload: {s['workload']['source']}")
    rows = [[k.replace("_s", ""), s[k]["mean"], s[k]["p50"], s[k]["p90"], s[k]["p99"], s[k]["max"]]
            for k in ("ttft_s", "tpot_s", "itl_s", "e2e_s", "queueing_s")]
    console.print(table("Latency (s)", ["", "mean", "p50", "p90", "p99", "max"], rows))
    console.print(table("Throughput and cost", ["", ""], [
        ["completed requests", f"{s['completed']} of {s['workload']['requests']} in {s['makespan_s']:.1f} s simulated"
                               f" ({s['requests_rejected']} rejected: never fit the KV cache; {s['requests_preempted']} "
                               f"preempted)"],
        ["scheduler", s["scheduler"]],
        ["output tokens/s", s["output_tokens_per_s"]], ["total tokens/s", s["total_tokens_per_s"]],
        ["requests/s", s["requests_per_s"]], ["replica busy", ", ".join(f"{b:.0%}" for b in s["replica_busy_fraction"])],
        ["$/M output tokens", s["cost"]["usd_per_million_output_tokens"] if not s["overloaded"]
         else f"{s['cost']['usd_per_million_output_tokens']:.3g} (OVERLOADED: not a valid operating point)"],
        ["simulation wall time", f"{s['simulation']['wall_time_s']:.2f} s"]]))
    if s.get("expert_cache"):
        c = s["expert_cache"]
        console.print(f"expert cache ({c['policy']}, {c['capacity_experts_per_layer']} experts/layer): hit rate "
                      f"{c['hit_rate']:.1%}, {c['misses']} misses, {c['bytes_fetched'] / 1e9:.1f} GB fetched, link busy "
                      f"{c['link_busy_fraction']:.0%}")
    if s["overloaded"]:
        console.print("[red]overloaded:[/red] the queue grows without bound at this load")
    rr = s.get("routing_replay")
    console.print(f"[dim]routing: {rr['source'] if rr else s['routing']['source'] + ' (expectations, no replay)'}[/dim]")
    for p in s.get("plots", []):
        console.print(f"plot: {p}")


def _pct_opt(metric: str, stat: str):
    return typer.Option(None, f"--slo-{metric}-{stat}",
                        help=f"{metric.upper()} {stat} bound (s), judged on the simulated requests.")


@app.command("plan")
def plan_cmd(
    model: str = typer.Option(..., "--model", "-m", help="Catalog model name/alias, or a path to a HF config.json."),
    rate: Optional[float] = typer.Option(None, help="Target PEAK load in requests/s (the day's load profile peaks here)."),
    output_tokens_per_s: Optional[float] = typer.Option(None, "--output-tokens-per-s",
                                                        help="Target peak load in output tokens/s (instead of --rate)."),
    input_len: int = typer.Option(1024, "--input-len", help="Mean prompt tokens per request."),
    output_len: int = typer.Option(256, "--output-len", help="Mean output tokens per request."),
    slo_ttft: Optional[float] = typer.Option(None, "--slo-ttft", help="Bound on the simulated MEAN TTFT, s."),
    slo_tpot: Optional[float] = typer.Option(None, "--slo-tpot", help="Bound on the simulated MEAN TPOT, s/token."),
    slo_ttft_p50: Optional[float] = _pct_opt("ttft", "p50"), slo_ttft_p90: Optional[float] = _pct_opt("ttft", "p90"),
    slo_ttft_p99: Optional[float] = _pct_opt("ttft", "p99"), slo_tpot_p50: Optional[float] = _pct_opt("tpot", "p50"),
    slo_tpot_p90: Optional[float] = _pct_opt("tpot", "p90"), slo_tpot_p99: Optional[float] = _pct_opt("tpot", "p99"),
    slo_e2e_p50: Optional[float] = _pct_opt("e2e", "p50"), slo_e2e_p90: Optional[float] = _pct_opt("e2e", "p90"),
    slo_e2e_p99: Optional[float] = _pct_opt("e2e", "p99"),
    scenario: Optional[list[str]] = typer.Option(None, "--scenario", help="dedicated | elastic | serverless | spot "
                                                 "(repeatable, side by side; the first ranks). Default dedicated."),
    system: Optional[list[str]] = typer.Option(None, "--system", help="Restrict to these systems (repeatable)."),
    precision: Optional[list[str]] = typer.Option(None, "--precision", help="Precisions to try (repeatable; default native, fp8, int4)."),
    engine: Optional[list[str]] = typer.Option(None, "--engine", help="Engines to try (repeatable; default: the one "
                                                                      "predict picks per system)."),
    pricing: str = typer.Option("on-demand", help="Dedicated basis: on-demand | owned ('spot' = --scenario spot)."),
    amortize_years: Optional[float] = typer.Option(None, "--amortize-years", help="Owned: years to amortise the purchase (default 3)."),
    usd_per_kwh: Optional[float] = typer.Option(None, "--usd-per-kwh", help="Owned: electricity price (default 0.10)."),
    pue: Optional[float] = typer.Option(None, help="Owned: data-centre PUE (default 1.3)."),
    workload: str = typer.Option("azure-conv", help="Stage-2 workload: azure-conv | azure-code (arrival pattern and "
                                                    "length shapes rescaled to --rate and the lengths) | poisson | "
                                                    "poisson-exp | a CSV (arrival_s,input_tokens,output_tokens)."),
    requests: Optional[int] = typer.Option(None, help="Use only the first N requests of the workload."),
    seed: int = typer.Option(0, help="Random seed (same seed, same answer)."),
    verify_top: int = typer.Option(8, "--verify-top", help="Candidates to verify in the DES (stage 2)."),
    max_des_runs: int = typer.Option(40, "--max-des-runs", help="Budget of DES verifications."),
    max_systems: int = typer.Option(64, "--max-systems", help="Most system units a fleet may have."),
    max_nodes: int = typer.Option(2, "--max-nodes", help="Most boxes one multi-node unit may span (systems with a scale-out network)."),
    min_accuracy: Optional[float] = typer.Option(None, "--min-accuracy", help="Minimum published accuracy (radar score)."),
    set_: Optional[list[str]] = typer.Option(None, "--set", help="Override a scenario constant, KEY=VALUE (repeatable; "
                                                                "keys in moecap_sim/procure/scenario_constants.yaml)."),
    plot: Optional[str] = typer.Option(None, "--plot", help="Write the Pareto plot here (.png/.pdf/.svg)."),
    radar_out: Optional[str] = typer.Option(None, "--radar", help="Write the Pareto candidates on the CAP radar's "
                                                                  "fixed scales here (.png/.pdf/.svg)."),
    dask: Optional[str] = typer.Option(None, "--dask", help="Run stage 1 and the DES verifications on Dask: 'local' or "
                                                        "tcp://host:port (needs the dist extra)."),
    top: int = typer.Option(10, help="How many configurations to list."),
    json_out: bool = typer.Option(False, "--json", help="Print JSON (candidates, rejected, pareto, scenarios, assumptions)."),
):
    """Capacity planning: the cheapest fleet (system × precision × engine × layout × units) whose
    simulated percentiles meet the SLOs at a peak load — stage 1 searches with the analytical
    cost model, stage 2 verifies the cheapest candidates in the DES on Azure-shaped arrivals —
    costed per scenario (dedicated on-demand/owned with rent-vs-buy, elastic, serverless, spot)."""
    from moecap_sim.cli.render import LazyProgress
    from moecap_sim.planner import parse_constants, plan

    consts = parse_constants(set_ or [])
    with LazyProgress("stage 1: systems × precisions × engines × layouts") as bar, \
            LazyProgress("stage 2: DES verifications (of the budget)") as bar2:
        r = plan(model, rate=rate, output_tokens_per_s=output_tokens_per_s, input_len=input_len, output_len=output_len,
                 slo_ttft_s=slo_ttft, slo_tpot_s=slo_tpot, slo_ttft_p50_s=slo_ttft_p50, slo_ttft_p90_s=slo_ttft_p90,
                 slo_ttft_p99_s=slo_ttft_p99, slo_tpot_p50_s=slo_tpot_p50, slo_tpot_p90_s=slo_tpot_p90,
                 slo_tpot_p99_s=slo_tpot_p99, slo_e2e_p50_s=slo_e2e_p50, slo_e2e_p90_s=slo_e2e_p90,
                 slo_e2e_p99_s=slo_e2e_p99, scenarios=scenario, systems_list=system, precisions=precision,
                 engines=engine, pricing=pricing, amortize_years=amortize_years, usd_per_kwh=usd_per_kwh, pue=pue,
                 workload=workload, requests=requests, seed=seed, verify_top=verify_top, max_des_runs=max_des_runs,
                 max_systems=max_systems, max_nodes=max_nodes, min_accuracy=min_accuracy, constants=consts,
                 plot=plot, radar_plot=radar_out, dask=dask, top=top, progress=bar, des_progress=bar2)
    if json_out:
        return print_json(r)
    from moecap_sim.cli.report import render_plan

    render_plan(r)


@app.command("radar")
def radar_cmd(
    case: list[str] = typer.Argument(..., help="Cases MODEL@SYSTEM[:key=value,...], keys: precision, engine, tp, dp, "
                                               "ep, pp, batch, offload, kv_dtype, label."),
    cost: str = typer.Option("usd_per_million_output_tokens", help="Cost axis: usd_per_million_output_tokens | "
                                                                   "purchase_usd | power_w."),
    pricing: str = typer.Option("on-demand", help="The ONE price model of a $/M cost axis: on-demand | spot | owned "
                                                  "(cases without that price are listed, not drawn)."),
    input_len: int = typer.Option(1024, "--input-len", help="Prompt tokens per request."),
    output_len: int = typer.Option(256, "--output-len", help="Output tokens per request."),
    out: str = typer.Option("cap_radar.png", "-o", "--out", help="Plot file to write (.png, .pdf or .svg; written "
                                                                   "atomically)."),
    json_out: bool = typer.Option(False, "--json", help="Print JSON."),
):
    """Draw the CAP radar (performance, cost, accuracy) on fixed, labelled scales — TPOT 0.02–0.5 s
    (log), cost on one stated basis (log), accuracy 80–100 % of the model's full-precision score —
    and class each case PA / PC / CA by the axis it gives up (its lowest radius; independent of
    the other cases).  Cases that do not fit or lack a price on the basis are listed, not drawn."""
    from moecap_sim.radar import parse_case, radar

    r = radar([parse_case(c) for c in case], cost_axis=cost, pricing=pricing, input_len=input_len,
              output_len=output_len, out=out)
    if json_out:
        return print_json(r)
    console.print(table(f"CAP radar — {r['cost_basis']}", ["case", "TPOT s", "cost", "accuracy (× ref)",
                                                          "radii P/C/A", "class"],
                        [[x["label"], x.get("tpot_s"), x.get("cost"),
                          "—" if x.get("accuracy") is None else f"{x['accuracy']:.2f} ({x['accuracy_ratio']:.1%})",
                          "/".join("—" if v is None else f"{v:.0f}" for v in x["radius"].values()) if x["fits"]
                          else "does not fit", x.get("tradeoff_class", "—")] for x in r["cases"]]))
    for k, v in r["scales"].items():
        console.print(f"[dim]{v}[/dim]")
    for w in r["warnings"]:
        console.print(f"[yellow]warning: {w}[/yellow]")
    console.print(f"plot: {r['plot']}")


# validation commands: torch, scipy and matplotlib are imported inside the commands only
from moecap_sim.cli.validate import calibrate_cmd, probe_cmd, validate_cmd  # noqa: E402

app.command("validate")(validate_cmd)
app.command("calibrate")(calibrate_cmd)
hw_app.command("probe")(probe_cmd)
