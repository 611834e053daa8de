"""Human-readable rendering of a prediction."""

from __future__ import annotations

from typing import Any

from moecap_sim.cli.render import console, fmt, table


def render_prediction(r: dict[str, Any]) -> None:
    m, hw, mem = r["model"], r["hardware"], r["memory"]
    par = r["parallelism"]
    console.print(f"[bold]{m['display_name']}[/bold] on [bold]{hw['display_name']}[/bold]  "
                  f"(TP{par['tp']} PP{par['pp']} DP{par['dp']} EP{par['ep']}; weights {r['precision']['weights']}; "
                  f"KV {r['precision']['kv_cache']})")
    verdict = "[green]fits[/green]" if r["fits"] else "[red]does not fit[/red]"
    console.print(f"Memory: {verdict} — placement [bold]{r['placement']['strategy']}[/bold]: {r['placement']['reason']}")
    unit = "per device" if hw["accelerator"] else "host"
    rows = [
        ["capacity / usable", f"{mem['capacity_gb']:.1f} / {mem['usable_gb']:.1f} GB {unit}"],
        ["weights (GPU-resident layout)", f"{mem['weights_gb']:.1f} GB {unit} ({mem['weights_total_gb']:.1f} GB total, "
                                          f"routed experts {mem['expert_weights_total_gb']:.1f} GB)"],
        ["activation peak / reserve", f"{mem['activation_gb']:.2f} / {mem['reserve_gb']:.2f} GB"],
        ["KV budget", f"{mem['kv_budget_gb']:.1f} GB {unit}"],
        ["KV per sequence", f"{mem['kv_gb_per_sequence'] * 1e3:.1f} MB {unit} "
                            f"({r['workload']['input_len'] + r['workload']['output_len']} tokens)"],
        ["max concurrent sequences", f"{mem['max_concurrent_seqs']} (whole system)"],
    ]
    console.print(table("Memory plan", ["", ""], rows))
    opts = mem.get("options") or []
    if len(opts) > 1:
        console.print(table("Placements", ["strategy", "fits", "per device GB", "host GB", "max seqs", "why"],
                            [[o["strategy"], o["fits"], o["device_gb"], o["host_gb"], o["max_concurrent_seqs"], o["reason"]]
                             for o in opts]))
    if r.get("suggestions"):
        console.print("[bold]Nearest feasible options[/bold]")
        for s in r["suggestions"]:
            console.print(f"  • {s}")
    for n in r["assumptions"].get("notes", []):
        console.print(f"[dim]note: {n}[/dim]")
