"""CLI: ``moecap-sim validate``, ``moecap-sim calibrate`` and ``moecap-sim hw probe``.

torch, scipy and matplotlib are imported inside the commands only, so importing this module
(and ``moecap_sim.cli.app``) stays light.
"""

from __future__ import annotations

import shlex
import sys
from typing import List, Optional

import typer

app = typer.Typer(help="Validate the cost model against real torch inference on this machine.",
                  no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False)


def _command_line() -> str:
    argv = list(sys.argv)
    if argv and argv[0].endswith(("moecap-sim", "__main__.py")):
        argv[0] = "moecap-sim"
    elif argv and argv[0].endswith("validate.py"):
        argv[0] = "python -m moecap_sim.cli.validate"
        return argv[0] + " " + " ".join(shlex.quote(a) for a in argv[1:])
    return " ".join(shlex.quote(a) for a in argv)


class _Progress:
    """Progress for the long commands (probe, validate): a rich progress bar on stderr whose
    description follows the log, with a bar over the timed rounds of each model; every log line
    is also printed above it."""

    def __init__(self):
        import re

        from rich.console import Console
        from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

        self._re = re.compile(r"round (\d+)/(\d+)")
        self.console = Console(stderr=True, highlight=False)
        self.progress = Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(),
                                 TextColumn("{task.completed}/{task.total}"), TimeElapsedColumn(),
                                 console=self.console, transient=True)
        self.task = None

    def __enter__(self):
        self.progress.__enter__()
        self.task = self.progress.add_task("starting", total=None)
        return self.log

    def __exit__(self, *exc):
        return self.progress.__exit__(*exc)

    def log(self, msg: str) -> None:
        self.progress.console.print(msg, markup=False)
        m = self._re.search(msg)
        if m:
            self.progress.update(self.task, description=msg.split(" round")[0] + " timing rounds",
                                 completed=int(m.group(1)), total=int(m.group(2)))
        else:
            self.progress.update(self.task, description=msg[:70], completed=0, total=None)


def _positive(name: str, v, allow_zero: bool = False) -> None:
    from moecap_sim.errors import UserError

    if v is not None and not (v >= 0 if allow_zero else v > 0):
        raise UserError(f"{name} must be {'≥ 0' if allow_zero else '> 0'}, got {v:g}")


@app.command("validate")
def validate_cmd(
    model: Optional[List[str]] = typer.Option(
        None, "--model", "-m", help="Model(s) to validate (repeatable). Default: olmoe-1b-7b, qwen1.5-moe-a2.7b, "
                                    "deepseek-v2-lite, mixtral-8x7b (--quick: olmoe-1b-7b)."),
    hw: Optional[str] = typer.Option(None, "--hw", "--hw-spec", help="A probed spec: the folder `moecap-sim hw probe -o "
                                                                     "DIR` wrote, or its *-system.yaml. Default: probe "
                                                                     "this machine now (at each thread count)."),
    out: str = typer.Option("moecap-validation", "--out", "-o", help="Results folder (default ./moecap-validation); "
                                                                     "results go to OUT/<hardware>/<model>/."),
    quick: bool = typer.Option(False, "--quick", help="CI mode (~1 min per thread count): a quick probe, OLMoE, 1 layer, "
                                                      "10 points."),
    threads: Optional[str] = typer.Option(None, "--threads", help="CPU threads: N, 'all', or a list such as '1,all' "
                                                                  "(default: 1 and all cores; with --hw, the threads "
                                                                  "the spec was probed with)."),
    repeats: Optional[int] = typer.Option(None, "--repeats", help="Timed repeats per point (median; default 5, quick 3)."),
    warmup: int = typer.Option(1, "--warmup", help="Warm-up runs per point."),
    layers: Optional[int] = typer.Option(None, "--layers", help="Layers to build (default: as many as --max-weight-gb allows)."),
    max_weight_gb: Optional[float] = typer.Option(None, "--max-weight-gb", help="Weight budget (default 7, quick 1.8)."),
    max_kv_gb: Optional[float] = typer.Option(None, "--max-kv-gb", help="KV-cache budget per point (default 2.5, quick 1.2)."),
    traces_dir: Optional[str] = typer.Option(None, "--traces-dir", help="Upstream traces folder "
                                                                        "(default: ../shared/traces_upstream)."),
    no_trace: bool = typer.Option(False, "--no-trace", help="Let the routers decide even where a real trace exists."),
    calibration: Optional[str] = typer.Option(None, "--calibration", help="Predict with this calibration file."),
    calibrate: bool = typer.Option(False, "--calibrate", help="Also fit efficiencies on half the points and report "
                                                              "the error on the other half (held out)."),
    device: str = typer.Option("cpu", "--device", help="cpu or cuda."),
    seed: int = typer.Option(0, "--seed"),
    estimator: str = typer.Option("median", "--estimator", help="Statistic of the repeats compared with the "
                                                                "prediction: median, or min (the uncontended machine; "
                                                                "use on a shared host, see validation/README.md)."),
    json_out: bool = typer.Option(False, "--json", help="Print one JSON object (decode_mape, prefill_mape, points, "
                                                        "calibrated, ...; with --published: points, refused, mape, "
                                                        "cross_validated_mape, classes)."),
    published: bool = typer.Option(False, "--published", help="Instead of timing torch here: predict the published "
                                                              "measurements of real MoE deployments "
                                                              "(validation/published/cases.yaml) and report the error "
                                                              "per class, in-sample and cross-validated."),
    cases: Optional[str] = typer.Option(None, "--cases", help="With --published: the cases file (default: "
                                                              "validation/published/cases.yaml)."),
    fit: bool = typer.Option(False, "--fit", help="With --published: refit the efficiency factors on the cases "
                                                  "(bounded grid, 5-fold held out) and ship them as the defaults."),
):
    """Time real MoE layers in torch and compare with the cost model's predictions; or, with
    --published, predict the published measurements of real deployments."""
    from moecap_sim.errors import UserError

    if published:
        from moecap_sim.cli.published import run_published_cli

        run_published_cli(cases, None if out == "moecap-validation" else out, fit, json_out, _command_line())
        return
    if fit or cases:
        raise UserError("--fit and --cases go with --published")
    from moecap_sim.validation.runner import (DEFAULT_MODELS, QUICK_MODELS, ValidateConfig, check_config,
                                              run_validation, thread_counts)

    if device not in ("cpu", "cuda") and not device.startswith("cuda:"):
        raise UserError(f"--device must be cpu or cuda, got {device!r}")
    if estimator not in ("median", "min"):
        raise UserError(f"--estimator must be median or min, got {estimator!r}")
    if calibration and calibrate:
        raise UserError("--calibration and --calibrate are exclusive (one predicts with a file, the other fits one)")
    cfg = ValidateConfig(models=list(model) if model else list(QUICK_MODELS if quick else DEFAULT_MODELS), hw=hw,
                         out_dir=out, quick=quick, threads=threads, repeats=repeats, warmup=warmup,
                         max_weight_gb=max_weight_gb, max_kv_gb=max_kv_gb, layers=layers, traces_dir=traces_dir,
                         use_trace=not no_trace, calibration=calibration, calibrate=calibrate, device=device,
                         seed=seed, command=_command_line(), estimator=estimator)
    if threads is not None:
        cfg.threads = [t.strip() for t in threads.split(",") if t.strip()] or threads
        thread_counts(cfg)  # bad values exit 2 now
    check_config(cfg)
    with _Progress() as log:
        res = run_validation(cfg, log=log)
    if json_out:
        from moecap_sim.cli.render import print_json

        return print_json(res)
    _print_result(res)


def _print_result(res: dict) -> None:
    from moecap_sim.cli.render import console, table

    def pct(x):
        return "—" if x is None else f"{x:.1f}%"

    cal = res.get("calibrated_held_out")
    cols = ["model", "layers", "routing", "points", "decode MAPE", "decode max", "prefill MAPE", "prefill max"]
    if cal:
        cols += ["decode MAPE cal.", "prefill MAPE cal."]
    rows = []
    for m, d in res["per_model"].items():
        r = [m, d["layers"], d["routing"], d["points"], pct(d["decode_mape"]), pct(d["decode_max_error"]),
             pct(d["prefill_mape"]), pct(d["prefill_max_error"])]
        if cal:
            r += [pct(d.get("decode_mape_calibrated_held_out")), pct(d.get("prefill_mape_calibrated_held_out"))]
        rows.append(r)
    console.print(table(f"Validation on {res['hardware']} ({res['threads']} thread(s), {res['device']})", cols, rows))
    u = res["uncalibrated"]
    console.print(f"uncalibrated: decode MAPE {pct(u['decode_mape'])}, prefill MAPE {pct(u['prefill_mape'])}")
    if cal:
        console.print(f"calibrated, held-out ({cal['points']} points): decode MAPE {pct(cal['decode_mape'])}, "
                      f"prefill MAPE {pct(cal['prefill_mape'])}; calibration written to {cal['calibration_file']}")
    for f in (cal or {}).get("at_bound", []):
        console.print(f"[yellow]fitted {f['factor']} = {f['value']:.3g} is at its {f['side']} bound {f['bound']:g}: "
                      f"{f['meaning']}[/yellow]")
    console.print(f"noise: median within-point MAD {res['noise']['median_mad_pct']:.1f}%; results in {res['output_dir']}")
    for th, r in (res.get("by_threads") or {}).items():
        u, c = r["uncalibrated"], r.get("calibrated_held_out") or {}
        console.print(f"{th} thread(s) [{r['hardware']}]: uncalibrated decode {pct(u['decode_mape'])}, prefill "
                      f"{pct(u['prefill_mape'])}" + (f"; calibrated held-out decode {pct(c.get('decode_mape'))}, "
                                                      f"prefill {pct(c.get('prefill_mape'))}" if c else "") +
                      f"; {r['output_dir']}")


@app.command("calibrate")
def calibrate_cmd(
    paths: List[str] = typer.Argument(..., help="measurements.csv files, or folders searched for them "
                                                "(e.g. validation/<hardware>)."),
    hw: Optional[str] = typer.Option(None, "--hw", help="The probed system spec the measurements were taken on "
                                                        "(default: the one saved beside them)."),
    output: Optional[str] = typer.Option(None, "--output", "-o", help="Calibration file to write "
                                                                      "(default: <hardware folder>/calibration.json)."),
    use_all: bool = typer.Option(False, "--all", help="Fit on every point (no held-out error is then reported)."),
    json_out: bool = typer.Option(False, "--json", help="Print the calibration result as JSON."),
):
    """Fit efficiency factors on the calibration subset; report error on held-out points only."""
    from moecap_sim.validation.calibrate import calibrate

    res = calibrate(paths, system_path=hw, output=output, use_all=use_all, command=_command_line())
    res.pop("rows", None)
    if json_out:
        from moecap_sim.cli.render import print_json

        out = dict(res)
        ho = res["held_out"]["calibrated"]
        out.update(decode_mape=ho["decode"]["mape"], prefill_mape=ho["prefill"]["mape"],
                   points=res["held_out"]["points"], calibrated=True)
        return print_json(out)
    from moecap_sim.cli.render import console, table

    eff = next(iter(res["efficiency"].values()))
    dev = next(iter(res["efficiency"]))
    console.print(table(f"Fitted efficiencies for {dev} ({res['fitted_on']['points']} points)",
                        ["factor", "fitted", "bounds", "default"],
                        [[k, v, (res.get("bounds") or {}).get(k), res["defaults"].get(k)] for k, v in eff.items()]))
    rows = []
    for label, key in (("calibrated", "calibrated"), ("uncalibrated", "uncalibrated")):
        e = res["held_out"][key]
        rows.append([label, e["decode"]["points"], e["decode"]["mape"], e["decode"]["max_abs_error"],
                     e["prefill"]["points"], e["prefill"]["mape"], e["prefill"]["max_abs_error"]])
    ins = res["in_sample"]["calibrated"]
    rows.append(["calibrated, in-sample", ins["decode"]["points"], ins["decode"]["mape"], ins["decode"]["max_abs_error"],
                 ins["prefill"]["points"], ins["prefill"]["mape"], ins["prefill"]["max_abs_error"]])
    console.print(table("Error (%): held-out unless marked", ["predictions", "decode pts", "decode MAPE", "decode max",
                                                             "prefill pts", "prefill MAPE", "prefill max"], rows))
    for f in res.get("at_bound", []):
        console.print(f"[yellow]fitted {f['factor']} = {f['value']:.3g} is at its {f['side']} bound {f['bound']:g} "
                      f"(unbounded fit: {f['unbounded_fit']}): {f['meaning']}[/yellow]")
    console.print(f"calibration written to {res['path']} (use it with --calibration)")


def probe_cmd(
    output: Optional[str] = typer.Option(None, "--output", "-o", help="Folder, or the system spec path (.yaml), to "
                                                                      "write (default: current folder)."),
    quick: bool = typer.Option(False, "--quick", help="Fewer shapes and repeats (~20 s)."),
    json_out: bool = typer.Option(False, "--json", help="Print the probe report as JSON."),
    threads: Optional[int] = typer.Option(None, "--threads", help="CPU threads to measure with (default: all cores "
                                                                  "available to this process)."),
    name: Optional[str] = typer.Option(None, "--name", help="System name (default: derived from the CPU/GPU model)."),
    tdp_w: Optional[float] = typer.Option(None, "--tdp-w", help="Power of the measured CPU cores, W (not measurable "
                                                                "in most VMs; default: an estimate marked '?')."),
    gpu: Optional[bool] = typer.Option(None, "--gpu/--no-gpu", help="Probe the CUDA GPU (default: when present)."),
    purchase_usd: Optional[float] = typer.Option(None, "--purchase-usd", help="Price of the whole box (for owned-cost "
                                                                              "predictions; a probe cannot measure it)."),
    usd_per_hour: Optional[float] = typer.Option(None, "--usd-per-hour", help="On-demand price of this machine, $/h."),
    estimator: str = typer.Option("median", "--estimator", help="Statistic of the repeats: median, or min (use the "
                                                                "one `validate --estimator` will use)."),
):
    """Measure this machine (memory bandwidth, GEMM throughput per dtype and shape, dispatch
    overhead; GPU HBM / GEMM / host link when present) and write a spec usable with --hw."""
    from moecap_sim.errors import UserError
    from moecap_sim.validation.probe import probe_machine, summary_rows, write_specs

    _positive("--tdp-w", tdp_w)
    _positive("--purchase-usd", purchase_usd)
    _positive("--usd-per-hour", usd_per_hour)
    if threads is not None and threads < 1:
        raise UserError(f"--threads must be ≥ 1, got {threads}")
    if estimator not in ("median", "min"):
        raise UserError(f"--estimator must be median or min, got {estimator!r}")
    with _Progress() as log:
        rep = probe_machine(threads=threads, quick=quick, gpu=gpu, name=name, log=log, estimator=estimator)
    files = write_specs(rep, output, tdp_w=tdp_w, purchase_usd=purchase_usd, usd_per_hour=usd_per_hour)
    if json_out:
        from moecap_sim.cli.render import print_json

        return print_json({**rep, "files": files})
    from moecap_sim.cli.render import console, table

    console.print(table(f"Probe of {rep['name']}", ["", ""], summary_rows(rep)))
    if not (purchase_usd or usd_per_hour):
        console.print("[yellow]no price given: cost predictions need --purchase-usd or --usd-per-hour "
                      "(add pricing.* to the system file)[/yellow]")
    console.print(f"spec written: {files['system']} (devices: "
                  f"{', '.join(v for k, v in files.items() if k not in ('system', 'report'))}); "
                  f"use it with --hw {files['system']}")


if __name__ == "__main__":  # python -m moecap_sim.cli.validate validate|calibrate ... (before it is mounted)
    app()
