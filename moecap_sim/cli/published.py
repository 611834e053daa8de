"""``moecap-sim validate --published``: accuracy against published measurements of real MoE
deployments (``validation/published/cases.yaml``), per class, in-sample and cross-validated."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Optional


def run_published_cli(cases: Optional[str], out: Optional[str], fit: bool, json_out: bool, command: str) -> dict:
    """Predict every published case (refitting the efficiency factors first with ``fit``), write
    ``summary.md``, ``summary.json`` and ``predicted_vs_measured.png`` to ``out`` and print the
    per-class table (or the JSON contract with ``json_out``)."""
    from rich.console import Console

    from moecap_sim.cli.render import console, print_json, table
    from moecap_sim.validation.published import load_cases, run_published, write_outputs

    err = Console(stderr=True, highlight=False)
    load_cases(cases)  # a malformed cases file fails here, before any long work
    t0 = time.perf_counter()
    if fit:
        from moecap_sim.validation.published_fit import refit

        with err.status("fitting efficiency factors on the published measurements (k-fold CV)") as st:
            _, path = refit(cases, progress=lambda m: st.update(f"fit: {m}"))
        err.print(f"fitted factors written to {path} ({time.perf_counter() - t0:.0f} s)")
    with err.status("predicting the published cases") as st:
        s = run_published(cases, progress=lambda i, n: st.update(f"predicting the published cases {i}/{n}"))
    out_dir = Path(out) if out else Path("moecap-validation") / "published"
    written = write_outputs(s, out_dir, command)
    if json_out:
        print_json(s)
        return s
    f = lambda x: "—" if x is None else f"{x:.1f}"  # noqa: E731
    rows = [[cls, c["n"], c["refused"], f(c["mape"]), f(c["median_ape"]), f(c["max_ape"]), f(c["bias"]),
             f(c["cross_validated_mape"])] for cls, c in s["classes"].items()]
    rows.append(["all", s["points"], s["refused"], f(s["mape"]), f(s["median_ape"]), f(s["max_ape"]), f(s["bias"]),
                 f(s["cross_validated_mape"])])
    console.print(table(f"Accuracy against {s['points']} published measurements ({Path(s['cases_file']).name}); "
                        f"errors in %", ["class", "n", "refused", "MAPE", "median", "max", "bias", "CV MAPE"], rows))
    console.print(f"[dim]bias > 0: optimistic (more throughput / less latency than measured). CV: each case "
                  f"predicted with factors fitted without it. Wrote {', '.join(str(p) for p in written)}.[/dim]")
    return s
