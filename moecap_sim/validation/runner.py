"""``moecap-sim validate``: time real torch MoE layers and compare with the cost model.

For each model: build its first N layers at real dimensions (N chosen so the weights fit a
memory budget), count the operators one forward dispatches, then time decode steps (batch 1 …
64 at several context lengths) and prefill chunks: a warm-up round, then round-robin rounds in
which every point runs once (so all points sample the same stretch of a shared machine's time),
each run after a last-level-cache flush (a truncated model would otherwise stay cache-resident,
which a full model never does), CPU samples taken while the process was preempted or another
core was busy retried.  A point's measured time is the median (default) or the minimum
(``estimator="min"``) of its repeats; both are recorded.  Routing is forced from the model's real
trace when there is one.  Each measured step is predicted with
:func:`moecap_sim.perf.step.step_time` on the probed spec, with the distinct experts the step
really activated per layer, and the errors are reported per point and in aggregate (MAPE, max
error), as CSV + Markdown + a predicted-vs-measured plot; ``calibrate=True`` also fits the
efficiency factors on half the points and reports the other half.
"""

from __future__ import annotations

import datetime as _dt
import json
import platform
import subprocess
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Optional

import numpy as np

from moecap_sim.errors import UserError
from moecap_sim.validation.compare import assign_split, errors, predict_rows, truncated_spec  # noqa: F401 (API)
from moecap_sim.units import GB

DEFAULT_MODELS = ["olmoe-1b-7b", "qwen1.5-moe-a2.7b", "deepseek-v2-lite", "mixtral-8x7b"]
QUICK_MODELS = ["olmoe-1b-7b"]


@dataclass
class Point:
    phase: str
    seqs: int
    new_tokens: int
    context: int

    @property
    def id(self) -> str:
        if self.phase == "decode":
            return f"decode-b{self.seqs}-c{self.context}"
        return f"prefill-b{self.seqs}-t{self.new_tokens}-c{self.context}"


@dataclass
class ValidateConfig:
    models: list = field(default_factory=lambda: list(DEFAULT_MODELS))
    hw: Optional[str] = None  # a probed system YAML; None: probe now
    out_dir: str = "moecap-validation"  # relative to the working directory, never the package
    quick: bool = False
    threads: Optional[object] = None  # int, 'all', or a list of them; None: 1 and all cores (probed here)
    repeats: Optional[int] = None
    warmup: int = 1
    max_weight_gb: Optional[float] = None
    max_kv_gb: Optional[float] = None
    layers: Optional[int] = None
    traces_dir: Optional[str] = None
    use_trace: bool = True
    calibration: Optional[str] = None
    calibrate: bool = False
    device: str = "cpu"
    seed: int = 0
    command: str = ""
    estimator: str = "median"

    def resolved(self) -> "ValidateConfig":
        c = ValidateConfig(**asdict(self))
        c.repeats = c.repeats or (5 if c.quick else 7)
        c.max_weight_gb = c.max_weight_gb or (1.8 if c.quick else 7.0)
        c.max_kv_gb = c.max_kv_gb or (1.2 if c.quick else 2.5)
        return c


# ---------------------------------------------------------------------------------------------
# model truncation and grids
# ---------------------------------------------------------------------------------------------

def layer_bytes(arch, bytes_per_param: float = 2.0) -> list[float]:
    out = []
    for l in arch.layers:
        p = l.attention.params + l.dense_ffn_params + l.norm_params
        if l.moe:
            p += l.moe.num_experts * l.moe.expert_params + l.moe.shared_params + l.moe.router_params
        out.append(p * bytes_per_param)
    return out


def choose_layers(name: str, max_weight_gb: float, forced: Optional[int] = None) -> int:
    from moecap_sim.catalog.models import get_model

    arch = get_model(name).arch
    if forced:
        return max(1, min(forced, arch.num_layers))
    per = layer_bytes(arch)
    first_moe = next(i for i, l in enumerate(arch.layers) if l.moe is not None)
    emb = (arch.embedding_params + arch.lm_head_params) * 2.0
    total, n = emb, 0
    for b in per:
        if total + b > max_weight_gb * GB and n > first_moe:
            break
        total += b
        n += 1
    return max(n, first_moe + 1)


def make_grid(arch, quick: bool, max_kv_gb: float, kv_bytes_per_token: float, max_prefill_tflop: float) -> list[Point]:
    if quick:
        batches, ctxs, chunks, chunked = [1, 4, 16, 64], [256, 2048], [64, 256, 1024], []
    else:
        batches, ctxs, chunks = [1, 2, 4, 8, 16, 32, 64], [128, 1024, 4096], [32, 128, 512, 2048]
        chunked = [(512, 2048)] if arch.layers[0].attention.kind != "mla" else []
    pts = []
    for c in ctxs:
        for b in batches:
            if b * (c + 1) * kv_bytes_per_token <= max_kv_gb * GB:
                pts.append(Point("decode", b, 1, c))
    flops_tok = arch.flops_per_token(0)
    for t in chunks:
        if t * flops_tok / 1e12 <= max_prefill_tflop:
            pts.append(Point("prefill", 1, t, 0))
    for t, c in chunked:
        if t * arch.flops_per_token(c) / 1e12 <= max_prefill_tflop and (c + t) * kv_bytes_per_token <= max_kv_gb * GB:
            pts.append(Point("prefill", 1, t, c))
    return pts


# ---------------------------------------------------------------------------------------------
# measuring one model
# ---------------------------------------------------------------------------------------------

def _versions() -> dict:
    import torch

    import moecap_sim

    try:
        rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, timeout=5,
                             cwd=Path(moecap_sim.__file__).resolve().parents[1]).stdout.strip()
    except Exception:  # noqa: BLE001
        rev = ""
    return {"python": platform.python_version(), "torch": torch.__version__, "numpy": np.__version__,
            "moecap_sim": getattr(moecap_sim, "__version__", "0.1.0"), "git": rev or "unknown",
            "platform": platform.platform()}


def measure_model(name: str, cfg: ValidateConfig, system_path: str, threads: int,
                  log: Callable[[str], None] = print) -> dict:
    import torch

    from moecap_sim.catalog.hardware import systems
    from moecap_sim.validation.engine import count_ops
    from moecap_sim.validation.layers import TorchMoEModel
    from moecap_sim.validation.routing import distinct_per_layer, load_profile_routing, load_trace_routing
    from moecap_sim.validation.timing import CacheFlusher, Timer

    dev = cfg.device
    n_layers = choose_layers(name, cfg.max_weight_gb, cfg.layers)
    spec, full = truncated_spec(name, n_layers)
    arch = spec.arch
    n_moe = len(arch.moe_layers)
    log(f"[{name}] building {n_layers} of {full.arch.num_layers} layers ({n_moe} MoE) at real dimensions")
    t0 = time.time()
    model = TorchMoEModel(spec.config, arch, seed=cfg.seed, device=dev)
    build_s = time.time() - t0
    trace = None
    mode = routing_mode(full.name, cfg)
    if mode == "trace":
        trace = load_trace_routing(full.name, n_moe, Path(cfg.traces_dir) if cfg.traces_dir else None)
    elif mode == "profile":
        trace = load_profile_routing(full.name, n_moe, seed=cfg.seed)
    routing_kind = mode if trace is not None else "router"
    routing_source = trace.source if trace is not None else \
        "no real trace for this model: the layers' own routers (random weights) chose the experts"
    kv_tok = arch.kv_bytes_per_token(2.0)
    system = systems().get(str(system_path))
    from moecap_sim.deployment import device_of

    unit_dev = device_of(system, system.accelerators.device) if system.accelerators else device_of(system, system.host.cpu.device)
    peak = unit_dev.compute.dense_tflops.get("bf16", max(unit_dev.compute.dense_tflops.values()))
    from moecap_sim.perf.efficiency import default_efficiency

    # cap prefill steps at ≈ 8 s (quick: 2 s) of work at the prior GEMM efficiency
    max_prefill_tflop = peak * default_efficiency(unit_dev.efficiency_class).flop * (2.0 if cfg.quick else 8.0)
    points = make_grid(arch, cfg.quick, cfg.max_kv_gb, kv_tok, max_prefill_tflop)
    # operator counts (dispatch-counted, two routings with different distinct experts)
    gen = torch.Generator().manual_seed(cfg.seed)
    V = arch.vocab_size
    small = torch.randint(0, V, (1, 1), generator=gen).to(dev)
    big = torch.randint(0, V, (8, 1), generator=gen).to(dev)
    fs = fb = None
    if trace is not None:
        fs = [torch.as_tensor(trace.decode_batch(1, 0)[:, i, :]).to(dev) for i in range(n_moe)]
        fb = [torch.as_tensor(trace.decode_batch(8, 1)[:, i, :]).to(dev) for i in range(n_moe)]
    model.alloc_cache(1, 130)
    n1, d1 = count_ops(model, small, 128, fs)
    model.alloc_cache(8, 130)
    n2, d2 = count_ops(model, big, 128, fb)
    kpe = (n2 - n1) / (d2 - d1) if d2 != d1 else 9.0
    kpl = (n1 - kpe * d1) / n_layers
    model.alloc_cache(1, 8)
    log(f"[{name}] operators: {kpl:.1f} per layer outside the expert loop + {kpe:.1f} per activated expert; "
        f"{len(points)} points")
    flusher = CacheFlusher() if dev == "cpu" else None
    timer = Timer(dev, threads=threads, flush=flusher, max_wait_s=10.0 if cfg.quick else 30.0, estimator=cfg.estimator,
                  max_total_wait_s=30.0 if cfg.quick else 600.0)

    # Per point: its tokens and forced routing, fixed for the whole run.
    prepared = []
    for pi, p in enumerate(points):
        toks = torch.randint(0, V, (p.seqs, p.new_tokens), generator=gen).to(dev)
        forced = None
        if trace is not None:
            ex = trace.decode_batch(p.seqs, pi) if p.phase == "decode" else \
                np.concatenate([trace.prefill_chunk(p.new_tokens, pi + s) for s in range(p.seqs)])
            forced = [torch.as_tensor(ex[:, i, :]).to(dev) for i in range(n_moe)]
        prepared.append((toks, forced))

    def one_pass(pi: int, timed: bool):
        p = points[pi]
        toks, forced = prepared[pi]
        model.alloc_cache(p.seqs, p.context + p.new_tokens)
        model.force_routing(forced)
        with torch.inference_mode():
            if timed:
                m = timer.measure(lambda: model.forward(toks, p.context), repeats=1, warmup=0)
            else:
                model.forward(toks, p.context)
                m = None
        used = np.stack([r.cpu().numpy() for r in model.routing_used()], axis=1)  # [T, L, k]
        if forced is not None and not np.array_equal(used, np.stack([f.cpu().numpy() for f in forced], axis=1)):
            raise RuntimeError("the layers did not use the forced routing")
        model.alloc_cache(1, 8)
        return m, used

    # Round-robin: warm-up round(s), then every point once per round, so that every point's
    # median samples the same stretch of (shared) machine time rather than its own few seconds.
    from moecap_sim.validation.timing import stream_triad_gb_s

    t_start = time.time()
    used_by_point = {}
    for _ in range(cfg.warmup):
        for pi in range(len(points)):
            _, used_by_point[pi] = one_pass(pi, timed=False)
    samples = {pi: [] for pi in range(len(points))}
    rejected = {pi: 0 for pi in range(len(points))}
    contended = {pi: False for pi in range(len(points))}
    triads = []
    for rnd in range(cfg.repeats):
        if dev == "cpu":
            triads.append(stream_triad_gb_s(timer))
        for pi in range(len(points)):
            m, used_by_point[pi] = one_pass(pi, timed=True)
            samples[pi] += m.samples_s
            rejected[pi] += m.rejected
            contended[pi] |= m.contended
        log(f"[{name}] round {rnd + 1}/{cfg.repeats} done ({time.time() - t_start:.0f} s)")
    import statistics

    from moecap_sim.validation.timing import Measurement

    results = {}
    for pi, p in enumerate(points):
        xs = samples[pi]
        m = Measurement(min(xs), statistics.median(xs), xs, rejected[pi], contended[pi])
        results[pi] = (m, used_by_point[pi])
        log(f"[{name}] {p.id}: median {m.median_s * 1e3:.1f} ms, min {m.min_s * 1e3:.1f} ({m.rejected} rejected) "
            f"distinct {np.mean(distinct_per_layer(used_by_point[pi])):.1f}")
    rows = []
    routing_log = []
    for pi, p in enumerate(points):
        m, used = results[pi]
        distinct = distinct_per_layer(used)
        routing_log.append((p, used))
        rows.append({
            "model": full.name, "hardware": system.name, "device": dev, "threads": threads, "point": p.id,
            "phase": p.phase, "seqs": p.seqs, "new_tokens": p.new_tokens, "context": p.context,
            "tokens": p.seqs * p.new_tokens, "layers": n_layers, "moe_layers": n_moe,
            "distinct_per_layer": ";".join(map(str, distinct)), "distinct_mean": float(np.mean(distinct)),
            "routing": routing_kind, "routing_source": routing_source if routing_kind != "trace" else "trace",
            "kernels_per_layer": round(kpl, 2), "kernels_per_expert": round(kpe, 2),
            "measured_s": m.value(cfg.estimator), "median_s": m.median_s, "min_s": m.min_s,
            "median_over_min": m.median_over_min,
            "samples_s": ";".join(f"{x:.6f}" for x in m.samples_s),
            "rejected": m.rejected, "contended": m.contended, "spread": m.spread, "mad_rel": m.mad_rel,
        })
    elapsed = time.time() - t_start
    from moecap_sim.validation.timing import _TRIAD

    _TRIAD.clear()
    del model
    if flusher is not None:
        del flusher
    return {"model": full.name, "display_name": full.display_name, "layers": n_layers,
            "total_layers": full.arch.num_layers, "moe_layers": n_moe, "rows": rows, "routing_log": routing_log,
            "routing_kind": routing_kind, "routing_source": routing_source,
            "routing_notes": trace.notes if trace is not None else [], "build_s": build_s, "elapsed_s": elapsed,
            "weight_gb": sum(layer_bytes(arch)) / GB + (arch.embedding_params + arch.lm_head_params) * 2 / GB,
            "kernels_per_layer": kpl, "kernels_per_expert": kpe, "rejections": dict(timer.reasons),
            "triad_gb_s_during_run": float(np.median(triads)) if triads else None,
            "num_experts": arch.num_experts, "top_k": arch.top_k}



# ---------------------------------------------------------------------------------------------
# the whole run
# ---------------------------------------------------------------------------------------------

def resolve_spec_path(hw: str) -> str:
    """A system spec from ``--hw``: a catalog name, a ``*-system.yaml`` file, or a folder written
    by ``moecap-sim hw probe -o DIR`` (its one ``*-system.yaml``)."""
    p = Path(hw).expanduser()
    if p.is_dir():
        cands = sorted(p.glob("*-system.yaml"))
        if not cands:
            raise UserError(f"--hw {hw}: no *-system.yaml in this folder (write one with `moecap-sim hw probe -o {hw}`)")
        if len(cands) > 1:
            raise UserError(f"--hw {hw}: several system specs in this folder ({', '.join(c.name for c in cands)}); "
                            f"pass one of them")
        return str(cands[0])
    return hw


def routing_mode(model: str, cfg: ValidateConfig) -> str:
    """How ``model``'s routing is forced: 'trace' (upstream trace installed), 'profile' (the
    shipped fitted profile, when the traces are not installed), or 'router' (the layers decide)."""
    from moecap_sim.routing.profiles import load_shipped_profile
    from moecap_sim.validation.routing import UPSTREAM, missing_trace_files

    if not cfg.use_trace or model not in UPSTREAM:
        return "router"
    if not missing_trace_files(model, Path(cfg.traces_dir) if cfg.traces_dir else None):
        return "trace"
    if cfg.traces_dir:  # asked for explicitly: a wrong folder is an error, not a fallback
        raise UserError(f"trace files for {model} not found under --traces-dir {cfg.traces_dir}: "
                        f"{', '.join(missing_trace_files(model, Path(cfg.traces_dir)))}")
    return "profile" if load_shipped_profile(model) is not None else "router"


def thread_counts(cfg: ValidateConfig) -> list[int]:
    """Thread counts to validate at: ``cfg.threads`` (an int, 'all', or a list), default 1 and
    all cores of this process."""
    from moecap_sim.validation.timing import available_cores

    cores = available_cores()
    spec = cfg.threads if cfg.threads is not None else [1, "all"]
    items = spec if isinstance(spec, (list, tuple)) else [spec]
    out: list[int] = []
    for t in items:
        n = cores if str(t).strip().lower() == "all" else t
        try:
            n = int(n)
        except (TypeError, ValueError):
            raise UserError(f"--threads must be a positive integer, 'all', or a comma list of them, got {t!r}") from None
        if n < 1:
            raise UserError(f"--threads must be ≥ 1, got {n}")
        if n > cores:
            raise UserError(f"--threads {n} exceeds the {cores} cores available to this process")
        if n not in out:
            out.append(n)
    return out


def check_config(cfg: ValidateConfig) -> None:
    """Reject bad numeric settings before any work starts (exit 2 with a message)."""
    for name, v, lo in (("--repeats", cfg.repeats, 1), ("--warmup", cfg.warmup, 0), ("--layers", cfg.layers, 1)):
        if v is not None and (isinstance(v, bool) or int(v) != v or v < lo):
            raise UserError(f"{name} must be an integer ≥ {lo}, got {v}")
    for name, v in (("--max-weight-gb", cfg.max_weight_gb), ("--max-kv-gb", cfg.max_kv_gb)):
        if v is not None and not (v > 0):
            raise UserError(f"{name} must be > 0, got {v}")
    if cfg.estimator not in ("median", "min"):
        raise UserError(f"--estimator must be median or min, got {cfg.estimator!r}")


def _resolve_hw(cfg: ValidateConfig, log, threads: Optional[int]) -> tuple[str, str, int, Optional[dict]]:
    """(system spec path, hardware name, threads, probe report or None)."""
    from moecap_sim.catalog.hardware import systems
    from moecap_sim.deployment import device_of
    from moecap_sim.validation.probe import probe_machine, write_specs
    from moecap_sim.validation.timing import available_cores

    cores = available_cores()
    if cfg.hw:
        s = systems().get(resolve_spec_path(cfg.hw))
        host = device_of(s, s.host.cpu.device)
        spec_threads = (host.cpu.cores if host.cpu else 1) * s.host.cpu.sockets
        if host.achieved is not None:
            spec_threads = host.achieved.threads
        run_threads = threads or min(spec_threads, cores)
        if cfg.device == "cpu" and run_threads != spec_threads:
            if host.achieved is not None:
                raise UserError(f"the spec {s.path or cfg.hw} was probed with {spec_threads} thread(s), its measured "
                                f"figures do not describe {run_threads}: probe again with --threads {run_threads}")
            log(f"note: the spec describes {spec_threads} core(s) but {run_threads} thread(s) will run")
        if run_threads > cores:
            raise UserError(f"the spec needs {run_threads} threads but only {cores} cores are available")
        return str(s.path or cfg.hw), s.name, run_threads, None
    threads = threads or 1
    log(f"probing this machine ({threads} thread(s){', quick' if cfg.quick else ''}) ...")
    rep = probe_machine(threads=threads, quick=cfg.quick, gpu=cfg.device.startswith("cuda"), log=log,
                        estimator=cfg.estimator)
    files = write_specs(rep, str(Path(cfg.out_dir) / rep["name"] / ("hw-quick" if cfg.quick else "hw")))
    log(f"probed spec written: {files['system']}")
    return files["system"], rep["name"], threads, rep


def run_validation(cfg: ValidateConfig, log: Callable[[str], None] = print) -> dict:
    """Run the validation suite at each thread count (default: 1 and all cores); write results;
    return the JSON summary (of the first thread count, with ``by_threads`` holding every run)."""
    try:
        import torch  # noqa: F401
    except ImportError:
        raise UserError("validate needs torch: pip install 'moecap-sim[validate]' (torch==2.13.0)") from None
    from moecap_sim.catalog.models import get_model
    from moecap_sim.perf.efficiency import load_calibration

    check_config(cfg)
    cfg = cfg.resolved()
    if cfg.device.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            raise UserError("--device cuda given but torch sees no CUDA GPU")
    names = []
    for m in cfg.models:
        spec = get_model(m)
        if spec.arch.layers[0].attention.kind not in ("gqa", "mla") or not spec.arch.moe_layers:
            raise UserError(f"model {m}: the torch validation layers implement GQA/MLA MoE decoders only")
        names.append(spec.name)
    if cfg.calibration:
        load_calibration(cfg.calibration)
    if cfg.hw:
        from moecap_sim.catalog.hardware import systems

        systems().get(resolve_spec_path(cfg.hw))  # a bad spec fails now, not after minutes
        counts = [None] if cfg.threads is None else thread_counts(cfg)
    else:
        counts = thread_counts(cfg)
    # routing is decided before any long work: a missing trace falls back to the shipped profile
    for name in names:
        mode = routing_mode(name, cfg)
        if mode == "profile":
            from moecap_sim.validation.routing import default_traces_dir

            log(f"{name}: upstream routing traces not found under {default_traces_dir()}: routing from the shipped "
                f"fitted profile traces/profiles/{name}.json instead (pass --traces-dir to use the real traces)")
    runs = [_run_threads(cfg, names, th, log) for th in counts]
    out = dict(runs[0])
    if len(runs) > 1:
        out["by_threads"] = {str(r["threads"]): {k: r.get(k) for k in
                                                 ("hardware", "system_spec", "uncalibrated", "calibrated_held_out",
                                                  "calibrated_in_sample", "noise", "points", "output_dir", "elapsed_s")}
                             for r in runs}
        both = Path(cfg.out_dir) / "threads-summary.json"
        both.parent.mkdir(parents=True, exist_ok=True)
        both.write_text(json.dumps(out["by_threads"], indent=2, default=str))
    return out


def _run_threads(cfg: ValidateConfig, names: list, threads: Optional[int], log) -> dict:
    import torch

    from moecap_sim.perf.efficiency import load_calibration
    from moecap_sim.validation import report
    from moecap_sim.validation.probe import machine_info
    from moecap_sim.validation.timing import tune_allocator

    allocator_tuned = tune_allocator()
    calibration = load_calibration(cfg.calibration) if cfg.calibration else None
    t0 = time.time()
    system_path, hw_name, threads, probe_rep = _resolve_hw(cfg, log, threads)
    torch.set_num_threads(threads)
    root = Path(cfg.out_dir) / hw_name / ("quick" if cfg.quick else "")
    meta = {"hardware": hw_name, "system_spec": system_path, "threads": threads, "device": cfg.device,
            "command": cfg.command or "moecap-sim validate", "date": _dt.datetime.now().isoformat(timespec="seconds"),
            "machine": machine_info(threads), "versions": _versions(), "repeats": cfg.repeats, "warmup": cfg.warmup,
            "allocator_tuned": allocator_tuned, "estimator": cfg.estimator}
    results = []
    for name in names:
        res = measure_model(name, cfg, system_path, threads, log)
        for r, p in zip(res["rows"], predict_rows(res["rows"], system_path, calibration)):
            r.update(p)
            r["error_pct"] = (r["predicted_s"] / r["measured_s"] - 1.0) * 100
        results.append(res)
        # write as we go: a long run keeps what it measured
        _write_model(res, root / name, meta, None, report)
    meta["elapsed_s"] = round(time.time() - t0, 1)
    out = finish(results, meta, root, system_path, calibrate=cfg.calibrate, calibration=cfg.calibration,
                 quick=cfg.quick)
    (root / "summary.json").write_text(json.dumps(out, indent=2, default=str))
    return out


def finish(results: list[dict], meta: dict, root: Path, system_path: str, calibrate: bool = False,
           calibration: Optional[str] = None, quick: bool = False) -> dict:
    """Split, fit (with ``calibrate``), write per-model and hardware summaries; return the JSON."""
    from moecap_sim.validation import report
    from moecap_sim.validation.calibrate import fit_efficiency, write_calibration

    names = [r["model"] for r in results]
    all_rows = [r for res in results for r in res["rows"]]
    assign_split(all_rows)
    fit = None
    cal_path = None
    hw_name = meta["hardware"]
    cal_doc = None
    if calibrate:
        cal_rows = [r for r in all_rows if r["split"] == "cal"]
        fit = fit_efficiency(cal_rows, system_path)
        cal_doc = write_calibration(fit, all_rows, system_path, root / "calibration.json", hardware=hw_name,
                                    command=meta["command"], date=meta["date"])
        cal_path = cal_doc["path"]
    per_model = {}
    for res in results:
        held = [r for r in res["rows"] if r.get("split") == "held"]
        e = errors(res["rows"])
        per_model[res["model"]] = {
            "layers": res["layers"], "points": len(res["rows"]), "routing": res["routing_kind"],
            "decode_mape": e["decode"]["mape"], "prefill_mape": e["prefill"]["mape"],
            "decode_max_error": e["decode"]["max_abs_error"], "prefill_max_error": e["prefill"]["max_abs_error"],
            "decode_mean_signed_error": e["decode"]["mean_signed_error"],
            "prefill_mean_signed_error": e["prefill"]["mean_signed_error"],
            "triad_gb_s_during_run": res.get("triad_gb_s_during_run"),
        }
        for est in ("median", "min"):
            if all(f"{est}_s" in r for r in res["rows"]):
                ee = errors(res["rows"], meas_key=f"{est}_s")
                per_model[res["model"]][f"vs_{est}"] = {"decode_mape": ee["decode"]["mape"],
                                                        "prefill_mape": ee["prefill"]["mape"]}
        if fit is not None:
            ec = errors(held, "predicted_cal_s")
            per_model[res["model"]].update({"decode_mape_calibrated_held_out": ec["decode"]["mape"],
                                            "prefill_mape_calibrated_held_out": ec["prefill"]["mape"],
                                            "held_out_points": len(held)})
        _write_model(res, root / res["model"], meta, fit, report)
    unc = errors(all_rows)
    noise = report.noise_stats(all_rows)
    out = {
        "hardware": hw_name, "system_spec": system_path, "device": meta["device"], "threads": meta["threads"],
        "quick": quick, "models": names, "points": len(all_rows),
        "uncalibrated": {"decode_mape": unc["decode"]["mape"], "prefill_mape": unc["prefill"]["mape"],
                         "decode_max_error": unc["decode"]["max_abs_error"],
                         "prefill_max_error": unc["prefill"]["max_abs_error"],
                         "with_calibration_file": calibration},
        "estimator": meta.get("estimator", "median"),
        "uncalibrated_vs": {est: {k: errors(all_rows, meas_key=f"{est}_s")[ph]["mape"]
                                  for k, ph in (("decode_mape", "decode"), ("prefill_mape", "prefill"))}
                            for est in ("median", "min") if all(f"{est}_s" in r for r in all_rows)},
        "noise": noise, "rejected_samples": int(sum(r["rejected"] for r in all_rows)),
        "per_model": per_model, "output_dir": str(root), "elapsed_s": meta.get("elapsed_s"),
    }
    if fit is not None:
        held = [r for r in all_rows if r["split"] == "held"]
        ec = errors(held, "predicted_cal_s")
        out["calibrated_held_out"] = {"decode_mape": ec["decode"]["mape"], "prefill_mape": ec["prefill"]["mape"],
                                      "decode_max_error": ec["decode"]["max_abs_error"],
                                      "prefill_max_error": ec["prefill"]["max_abs_error"], "points": len(held),
                                      "fitted_points": len(all_rows) - len(held), "efficiency": fit["params"],
                                      "bounds": fit["bounds"], "at_bound": fit["at_bound"],
                                      "calibration_file": str(cal_path)}
        ins = cal_doc["in_sample"]["calibrated"]
        out["calibrated_in_sample"] = {"decode_mape": ins["decode"]["mape"], "prefill_mape": ins["prefill"]["mape"],
                                       "points": cal_doc["in_sample"]["points"]}
        out.update(calibrated=True, decode_mape=ec["decode"]["mape"], prefill_mape=ec["prefill"]["mape"])
    else:
        out.update(calibrated=calibration is not None, decode_mape=unc["decode"]["mape"],
                   prefill_mape=unc["prefill"]["mape"])
    _write_hw_summary(out, all_rows, root, meta, report)
    (root / "meta.json").write_text(json.dumps(meta, indent=2, default=str))
    return out


def rereport(root: str, calibrate: bool = True, log: Callable[[str], None] = print) -> dict:
    """Re-predict recorded measurements with the current cost model and rewrite the reports
    (no torch, no re-measurement): ``root`` is ``validation/<hardware>`` (or its ``quick``)."""
    import pandas as pd

    from moecap_sim.validation.calibrate import _system_of

    root_p = Path(root)
    meta = json.loads((root_p / "meta.json").read_text())
    results = []
    for run_json in sorted(root_p.glob("*/run.json")):
        res = json.loads(run_json.read_text())
        rows = pd.read_csv(run_json.parent / "measurements.csv").to_dict("records")
        for r in rows:
            r["_file"] = str(run_json.parent / "measurements.csv")
        est = meta.get("estimator", "median")
        for r in rows:
            if f"{est}_s" in r:
                r["measured_s"] = r[f"{est}_s"]
        res["rows"] = rows
        results.append(res)
    if not results:
        raise UserError(f"no <model>/run.json under {root}")
    system_path = meta.get("system_spec") if Path(str(meta.get("system_spec"))).exists() else _system_of(results[0]["rows"])
    for res in results:
        for r, p in zip(res["rows"], predict_rows(res["rows"], system_path)):
            r.update(p)
            r["error_pct"] = (r["predicted_s"] / r["measured_s"] - 1.0) * 100
        log(f"re-predicted {res['model']}: {len(res['rows'])} points")
    return finish(results, meta, root_p, system_path, calibrate=calibrate, quick=root_p.name == "quick")


def _write_model(res: dict, folder: Path, meta: dict, fit: Optional[dict], report) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    rows = res["rows"]
    report.write_csv(rows, folder / "measurements.csv")
    if res.get("routing_log"):
        report.write_routing(res, folder / "routing_used.npz")
    (folder / "run.json").write_text(json.dumps({k: v for k, v in res.items() if k not in ("rows", "routing_log")},
                                                indent=2, default=str))
    report.plot(rows, folder / "predicted_vs_measured.png", f"{res['display_name']} ({res['layers']} layers) on "
                                                            f"{meta['hardware']}, {meta['threads']} thread(s)")
    cal_errs = errors([r for r in rows if r.get("split") == "held"], "predicted_cal_s") if fit else None
    (folder / "summary.md").write_text(report.model_summary(res, meta, errors(rows), cal_errs, report.noise_stats(rows)))


def _write_hw_summary(out: dict, rows: list[dict], root: Path, meta: dict, report) -> None:
    root.mkdir(parents=True, exist_ok=True)
    report.plot(rows, root / "predicted_vs_measured.png", f"all models on {meta['hardware']}, {meta['threads']} thread(s)")
    pct = report._pct
    lines = [f"# Validation on {meta['hardware']}", "", f"Command: `{meta['command']}`", "",
             f"* Date: {meta['date']}; {meta['machine']['cpu_model']}, {meta['threads']} thread(s) of "
             f"{meta['machine']['cores_available']}; device `{meta['device']}`; torch {meta['versions']['torch']}; "
             f"moecap-sim git {meta['versions']['git']}",
             f"* Probed spec: `{meta['system_spec']}`", f"* Total time: {out['elapsed_s'] or 0:.0f} s; samples rejected "
             f"for preemption: {out['rejected_samples']}", "",
             "| model | layers | routing | points | decode MAPE | decode max | prefill MAPE | prefill max |" +
             (" decode MAPE cal. (held-out) | prefill MAPE cal. (held-out) |" if out.get("calibrated_held_out") else ""),
             "|---|---:|---|---:|---:|---:|---:|---:|" + ("---:|---:|" if out.get("calibrated_held_out") else "")]
    for m, d in out["per_model"].items():
        line = (f"| {m} | {d['layers']} | {d['routing']} | {d['points']} | {pct(d['decode_mape'])} | "
                f"{pct(d['decode_max_error'])} | {pct(d['prefill_mape'])} | {pct(d['prefill_max_error'])} |")
        if out.get("calibrated_held_out"):
            line += f" {pct(d.get('decode_mape_calibrated_held_out'))} | {pct(d.get('prefill_mape_calibrated_held_out'))} |"
        lines.append(line)
    u = out["uncalibrated"]
    lines += ["", f"Measured time = the **{out.get('estimator', 'median')}** of the repeats.",
              "", f"All models, uncalibrated: decode MAPE {pct(u['decode_mape'])} (max {pct(u['decode_max_error'])}), "
                  f"prefill MAPE {pct(u['prefill_mape'])} (max {pct(u['prefill_max_error'])})."]
    for est, v in out.get("uncalibrated_vs", {}).items():
        lines.append(f"Against the {est} of the repeats instead: decode MAPE {pct(v['decode_mape'])}, "
                     f"prefill MAPE {pct(v['prefill_mape'])} (uncalibrated).")
    c = out.get("calibrated_held_out")
    if c:
        eff = ", ".join(f"{k} = {v:.3g}" for k, v in c["efficiency"].items())
        lines += [f"Calibrated on {c['fitted_points']} points, held-out {c['points']}: decode MAPE "
                  f"{pct(c['decode_mape'])} (max {pct(c['decode_max_error'])}), prefill MAPE {pct(c['prefill_mape'])} "
                  f"(max {pct(c['prefill_max_error'])}); fitted {eff} (`{Path(c['calibration_file']).name}`)."]
    n = out["noise"]
    lines += [f"Noise within points: median/min of the repeats {n['median_over_min_pct']:.1f}% at the median point "
              f"(max {n['max_median_over_min_pct']:.1f}%).", "",
              "![predicted vs measured](predicted_vs_measured.png)", ""]
    (root / "summary.md").write_text("\n".join(lines))
    (root / "summary.json").write_text(json.dumps(out, indent=2, default=str))
