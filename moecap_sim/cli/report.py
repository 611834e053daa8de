"""Human-readable rendering of a prediction: memory plan, latency/throughput, utilisation,
bottleneck, cost, energy, accuracy, assumptions."""

from __future__ import annotations

from typing import Any

from moecap_sim.cli.render import console, fmt, table


def _ms(x):
    return "—" if x is None else (f"{x * 1e3:.1f} ms" if x < 10 else f"{x:.1f} s")


def _pct(x):
    return "—" if x is None else f"{100 * x:.1f}%"


def _band(u: dict[str, Any]) -> str:
    """'±x % (80 % band, n = …)' from the prediction's cross-validated residual band."""
    text = f"±{u['band_pct']:.0f}% (80% band of real/predicted, n = {u['n']} published {u['class']} measurements)"
    return text + (f" — extrapolated: {u['extrapolation']}" if u.get("extrapolated") else "")


def _ratio(dense, sparse):
    return "—" if not dense or not sparse else f"{dense / sparse:.2f}×"


def render_prediction(r: dict[str, Any]) -> None:
    m, hw, mem = r["model"], r["hardware"], r["memory"]
    par = r["parallelism"]
    console.print(f"[bold]{m['display_name']}[/bold] on [bold]{hw['display_name']}[/bold] — engine {r['engine'] or '—'}, "
                  f"TP{par['tp']} PP{par['pp']} DP{par['dp']} EP{par['ep']}, weights {r['precision']['weights_short']}, "
                  f"KV {r['precision']['kv_cache']}")
    verdict = "[green]runs[/green]" if r["fits"] else "[red]does not fit[/red]"
    console.print(f"{verdict} — placement [bold]{r['placement']['strategy']}[/bold]: {r['placement']['reason']}")
    unit = "per device" if hw["accelerator"] else "host"
    rows = [
        ["capacity / usable", f"{mem['capacity_gb']:.1f} / {mem['usable_gb']:.1f} GB {unit}"],
        ["weights (GPU-resident layout)", f"{mem['weights_gb']:.1f} GB {unit} (model {mem['weights_total_gb']:.1f} GB, "
                                          f"routed experts {mem['expert_weights_total_gb']:.1f} GB)"],
        ["activation peak / runtime reserve", f"{mem['activation_gb']:.2f} / {mem['reserve_gb']:.2f} GB"],
        ["KV budget / per sequence", f"{mem['kv_budget_gb']:.1f} GB / {mem['kv_gb_per_sequence'] * 1e3:.1f} MB {unit} "
                                     f"({r['workload']['input_len'] + r['workload']['output_len']} tokens)"],
    ]
    opts = mem.get("options") or []
    chosen = next((o for o in opts if o["strategy"] == r["placement"]["strategy"]), None)
    rows.append(["max concurrent sequences", f"{chosen['max_concurrent_seqs'] if chosen else mem['max_concurrent_seqs']} (whole system)"])
    console.print(table("Memory", ["", ""], rows))
    if len(opts) > 1 and (not r["fits"] or r["placement"]["strategy"] != "none"):
        console.print(table("Placements", ["strategy", "fits", "GB/device", "host GB", "max seqs", "why"],
                            [[o["strategy"], o["fits"], o["device_gb"], o["host_gb"], o["max_concurrent_seqs"], o["reason"]]
                             for o in opts]))
    if not r["fits"]:
        console.print(f"[red]Why not:[/red] {r.get('reason', '')}")
        if r.get("suggestions"):
            console.print("[bold]Nearest feasible options[/bold]")
            for s in r["suggestions"]:
                console.print(f"  • {s}")
        b = r.get("best_feasible")
        if b:
            console.print(f"[bold green]What does run here[/bold green] — {b['label']}: "
                          f"TPOT {_ms(b['tpot_s'])} ({fmt(b['per_user_tokens_per_s'])} tok/s per user), "
                          f"TTFT {_ms(b['ttft_s'])}, {b['placement']['reason']}"
                          + (f"; ${fmt(b['cost']['usd_per_million_output_tokens'])}/M output tokens"
                             if b.get("cost") and b["cost"].get("usd_per_million_output_tokens") else "")
                          + (f"; {_band(b['uncertainty'])}" if b.get("uncertainty") else ""))
        else:
            console.print("[red]Nothing runs on this hardware at any modelled precision or placement.[/red]")
        _render_tail(r)
        return
    w = r["workload"]
    ph = r["phases"]
    perf = [
        ["concurrency", f"{w['concurrency']} sequences ({w['batch_per_replica']} per replica), "
                        f"{w['input_len']} in / {w['output_len']} out tokens"],
        ["TTFT", _ms(r["ttft_s"])], ["TPOT (client-visible)", _ms(r["tpot_s"])],
        ["decode step", _ms(ph["decode"]["step_time_s"])], ["end-to-end per request", _ms(r.get("e2e_s"))],
        ["output tokens/s (system)", fmt(r["output_tokens_per_s"])], ["total tokens/s", fmt(r["total_tokens_per_s"])],
        ["prefill tokens/s", fmt(r["prefill_tokens_per_s"])], ["per-user tokens/s", fmt(r["per_user_tokens_per_s"])],
        ["requests/s", fmt(r["requests_per_s"])],
    ]
    if r.get("uncertainty"):
        perf.append(["uncertainty", _band(r["uncertainty"])])
    console.print(table("Performance", ["", ""], perf))
    util = []
    for name in ("prefill", "decode"):
        p = ph[name]
        util.append([name, _ms(p["time_s"]), p["tokens"], _pct(p["s_mbu"]), _pct(p["s_mfu"]),
                     f"{_ratio(p['mbu'], p['s_mbu'])} / {_ratio(p['mfu'], p['s_mfu'])}",
                     f"{p['distinct_experts_per_layer']:.1f}", p["bottleneck"]])
    # vanilla (dense) MBU/MFU charge every expert: not utilisations (they exceed 100 % on MoE
    # models), so they are shown as the factor by which they over-count the sparse figures
    console.print(table("Utilisation per pass (S- = sparsity-aware)",
                        ["phase", "pass time", "tokens", "S-MBU", "S-MFU", "vanilla over-count bytes / FLOPs",
                         "experts/layer", "bottleneck"], util))
    ops = ph["decode"]["ops"]
    total = sum(o["time_s"] for o in ops.values()) or 1.0
    console.print(table("Decode step by operator", ["operator", "time", "share", "bound by"],
                        [[k, _ms(o["time_s"]), f"{100 * o['time_s'] / total:.0f}%", o["resource"]] for k, o in list(ops.items())[:10]]))
    c, e = r["cost"], r["energy"]
    console.print(table("Cost and energy", ["", ""], [
        ["$/hour", (f"${c['usd_per_hour']:.3f} — " if c["usd_per_hour"] is not None else "— ") + c["basis"]],
        ["$/M output tokens", f"${fmt(c['usd_per_million_output_tokens'])}"],
        ["$/M tokens (in+out)", f"${fmt(c['usd_per_million_tokens'])}"],
        ["average power", f"{e['average_power_w']:.0f} W"], ["energy", f"{e['joules_per_output_token']:.3g} J per output token"]]))
    _render_tail(r)


def _render_tail(r: dict[str, Any]) -> None:
    acc = r.get("accuracy")
    if acc and acc.get("scores"):
        scores = ", ".join(f"{s['benchmark']} {s['score']:g}" for s in acc["scores"][:6])
        q = acc.get("quantization") or {}
        delta = q.get("delta_points")
        console.print(f"[bold]Accuracy[/bold] (published, {acc.get('precision_scored')}): {scores}"
                      + (f"; {acc.get('precision_used')}: {delta:+.1f} points ({q.get('basis')})" if delta is not None else "")
                      + (f" — {q.get('note')}" if q.get("note") and delta is None else ""))
    elif acc is not None:
        console.print("[bold]Accuracy[/bold]: no published scores in the catalog for this model")
    routing = r.get("routing") or {}
    console.print(f"[dim]routing: {routing.get('source')}[/dim]")
    a = r.get("assumptions") or {}
    for n in a.get("notes", []):
        console.print(f"[dim]note: {n}[/dim]")
    if a.get("efficiency"):
        eff = a["efficiency"]["accelerator"] or a["efficiency"]["cpu"]
        console.print(f"[dim]efficiencies: η_bw {eff['bw']}, η_flop {eff['flop']}, η_attn {eff['attention']} "
                      f"({eff['source']}); prices dated {a.get('prices_date')}[/dim]")


def _scenario_detail(name: str, c: dict) -> str:
    """One line of what drives a scenario's cost."""
    if c.get("no_price"):
        return f"no price: {c['reason']}"
    if name == "dedicated":
        rvb = c.get("rent_vs_buy")
        return c["basis"] + (f"; {rvb['verdict']}" if rvb else "")
    if name == "elastic":
        return (f"{c['replica_hours_per_day']:.1f} replica-h/day, provisioning {c['provisioning_delay_s']['total_s']:.0f} s, "
                f"{100 * c['requests_at_risk_fraction']:.2f}% requests during scale-up")
    if name == "serverless":
        return (f"{c['unit_hours_per_day']:.1f} unit-h/day, cold start {c['cold_start_s']['total_s']:.0f} s, "
                f"{c['cold_starts_per_day']} cold starts/day, {100 * c['cold_start_hit_fraction']:.2f}% requests hit")
    if name == "spot":
        return (f"{c['interruptions_per_day']:.2f} interruptions/day, {c['requests_requeued_per_day']:.1f} requests "
                f"re-queued/day, fallback ${c['fallback_usd_per_hour']:.3g}/h")
    return ""


def _first(names: list, n: int) -> str:
    """``a, b, c (+4 more)`` — long lists stay in --json."""
    if not names:
        return "—"
    return ", ".join(names[:n]) + (f" (+{len(names) - n} more)" if len(names) > n else "")


def render_plan(r: dict[str, Any]) -> None:
    """The plan: verified candidates, the cheapest per scenario, rejections by stage, assumptions."""
    t = r["target"]
    slo = ", ".join(f"{s['metric'][:-2]} {s['stat']} ≤ {s['bound_s']:g} s" for s in r["slo"]) or "none"
    console.print(f"[bold]{r['model']}[/bold]: peak {t['peak_rate_req_s']:g} req/s (day mean "
                  f"{t['mean_rate_req_s']:.3g}), {t['input_len']} in / {t['output_len']} out tokens; SLO {slo}")
    console.print(f"[dim]workload: {r['workload']}[/dim]")
    s = r["search"]
    console.print(f"stage 1: {s['stage1_feasible']} feasible of {s['stage1_evaluated']} configurations on {s['systems']} "
                  f"systems ({s['stage1_s']:.1f} s); stage 2: {s['des_runs']} DES runs ({s['stage2_s']:.1f} s), "
                  f"{r['verified']} verified — {s['stop']}")
    prim = r["scenarios_requested"][0]
    console.print(table(f"Verified configurations (ranked by {prim} $/h; latency percentiles simulated)",
                        ["#", "system", "precision", "engine", "layout", "units", "TTFT p50/p99 s", "TPOT p90/p99 s",
                         "$/h", "$/M out", "accuracy", "CAP"],
                        [[c["rank"], c["system"], c["config"]["precision_label"], c["config"]["engine"],
                          c["config"]["layout"]["label"], c["units"],
                          f"{fmt(c['simulated']['ttft_s']['p50'])} / {fmt(c['simulated']['ttft_s']['p99'])}",
                          f"{fmt(c['simulated']['tpot_s']['p90'])} / {fmt(c['simulated']['tpot_s']['p99'])}",
                          c["usd_per_hour"], c["usd_per_million_output_tokens"], c["accuracy"],
                          c["cap"]["tradeoff_class"]]
                         for c in r["candidates"]]))
    by = {c["key"]: c for c in r["candidates"]}
    rows = []
    for name, sc in r["scenarios"].items():
        ch = sc["cheapest"]
        detail = ""
        if ch and ch["key"] in by:
            detail = _scenario_detail(name, by[ch["key"]]["cost"][name])
        rows.append([name, f"{ch['system']} ×{ch['units']}" if ch else "—", ch and ch["usd_per_hour"],
                     ch and ch["usd_per_million_output_tokens"], detail or (sc["note"] or ""),
                     _first(sc["systems_without_price"], 6)])
    console.print(table("Cheapest verified fleet per scenario ($/M at the day's mean load)",
                        ["scenario", "fleet", "$/h", "$/M out", "details", "no price for this scenario"], rows))
    h = r.get("heterogeneous")
    if h and h.get("fleet"):
        parts = " + ".join(f"{p['units']}× {p['key']}" for p in h["fleet"])
        console.print(f"[green]mixed fleet[/green] {parts}: ${h['usd_per_hour']:.3g}/h (saves "
                      f"${h['saves_usd_per_hour']:.3g}/h), TTFT p99 {fmt(h['simulated']['ttft_s']['p99'])} s, "
                      f"TPOT p99 {fmt(h['simulated']['tpot_s']['p99'])} s (simulated, capacity-weighted dispatch)")
    elif h:
        console.print(f"[dim]mixed fleets: {h['note']}[/dim]")
    from collections import Counter

    counts = Counter(x["stage"] for x in r["rejected"])
    console.print("rejected: " + (", ".join(f"{n} at {k}" for k, n in counts.items()) or "none")
                  + " (all with reasons in --json)")
    shown = [x for x in r["rejected"] if x["stage"] == "simulation"][:5]
    if not r["candidates"]:
        shown = shown or [x for x in r["rejected"] if x["stage"] == "analytical"][:5]
    for x in shown:
        console.print(f"  [yellow]{x['key']}[/yellow]: {x['reason']}")
    a = r["assumptions"]["constants"]
    flagged = [k for k, v in a.items() if v["assumption"]]
    if flagged:
        console.print(f"[dim]assumptions (source marked '?'): {', '.join(flagged)} — see --json 'assumptions'[/dim]")
    for k in ("plot", "radar_plot"):
        if r.get(k):
            console.print(f"{k.replace('_', ' ')}: {r[k]}")
