"""``plan``: the cheapest fleet that meets percentile SLOs at a load, per cost scenario.

Two stages (``moecap_sim/procure/``):

1. **Analytical** (:mod:`~moecap_sim.procure.search`): every system × precision × engine ×
   layout (TP/DP, +EP, attention-DP+EP, PP, multi-node where the system has a scale-out network)
   × placement through ``predict`` (the one cost model); the largest batch meeting the tightest
   SLO bounds in steady state gives a unit's throughput and the units needed for the peak rate.
2. **Simulated** (:mod:`~moecap_sim.procure.verify`): candidates in order of a cost lower bound
   are replayed in the DES (Azure-shaped arrivals at the target rate by default) and judged on
   the percentile SLOs; a candidate that misses gets more units (up to 4 tries).  The search
   stops when ``verify_top`` candidates pass and no unverified one can be cheaper (its lower
   bound — stage 1's unit count at its price — is above the K-th verified cost), or when the
   DES budget is spent.  The answer reports the simulated percentiles.

Each verified fleet is then costed under the requested scenarios (dedicated, elastic,
serverless, spot; :mod:`~moecap_sim.procure.scenarios`) over the day's load profile (``rate`` is
the peak).  Outputs: ``candidates`` (best first), ``rejected`` (with the stage and reason),
``pareto`` ($/M tokens vs simulated p99 TPOT, and vs accuracy), ``scenarios`` (the cheapest per
scenario and the systems without a price for it), ``assumptions`` (every constant used, with
its source).
"""

from __future__ import annotations

import math
import time
from typing import Any, Callable, Optional

from moecap_sim.errors import UserError
from moecap_sim.procure.config import PlanConfig, slos_from_flags
from moecap_sim.procure.constants import Constants
from moecap_sim.procure.search import Candidate, refine

MAX_ESCALATIONS = 4


def _consts_for_search(cfg: PlanConfig, consts: Constants) -> dict:
    return {"amortize_years": consts.get("dedicated.amortize_years") if cfg.amortize_years is None else cfg.amortize_years,
            "usd_per_kwh": consts.get("dedicated.usd_per_kwh") if cfg.usd_per_kwh is None else cfg.usd_per_kwh,
            "pue": consts.get("dedicated.pue") if cfg.pue is None else cfg.pue}


def _lb(c: Candidate, units: int, scenario: str, cfg: PlanConfig, mean_over_peak: float,
                 premium: float, min_replicas: float = 1.0) -> Optional[float]:
    """A lower bound on the scenario's $/h for ``units`` units of ``c`` (None: no price)."""
    p = c.usd_per_hour_unit
    if scenario == "dedicated":
        return None if p.get(cfg.dedicated_basis) is None else units * p[cfg.dedicated_basis]
    if scenario == "spot":
        return None if p.get("spot") is None else units * p["spot"]
    od = p.get("on-demand")
    if od is None:
        return None
    if scenario == "elastic":
        return od * max(min_replicas, units * mean_over_peak)
    return od * premium * units * mean_over_peak  # serverless: the fluid bound




def _stage1(cfg: PlanConfig, names: list[str], input_len: int, output_len: int, sc: dict,
            progress: Optional[Callable[[int, int], None]], client=None) -> tuple[list[Candidate], list[dict]]:
    from moecap_sim.procure.distributed import map_systems

    cands: list[Candidate] = []
    rejected: list[dict] = []
    for cs, rj in map_systems(cfg, names, input_len, output_len, sc, progress, client):
        cands += cs
        rejected += rj
    return cands, rejected


def plan_config(cfg: PlanConfig, progress: Optional[Callable[[int, int], None]] = None,
                plot: Optional[str] = None, radar_plot: Optional[str] = None,
                des_progress: Optional[Callable[[int, int], None]] = None) -> dict[str, Any]:
    """Run the two-stage plan for ``cfg`` (see the module docstring); ``plot`` writes the Pareto
    plot, ``radar_plot`` the Pareto candidates on the CAP radar's fixed scales."""
    from moecap_sim.catalog.hardware import systems
    from moecap_sim.catalog.models import get_model
    from moecap_sim.inputs import check_output_path
    from moecap_sim.procure import workload as wl
    from moecap_sim.procure.scenarios.fleet import LoadProfile

    t_start = time.perf_counter()
    check_output_path(plot, "--plot", (".png", ".pdf", ".svg"))
    check_output_path(radar_plot, "--radar", (".png", ".pdf", ".svg"))
    consts = Constants(cfg.constants)
    get_model(cfg.model)
    names = list(cfg.systems) if cfg.systems else systems().names()
    for n in names:  # unknown names fail here, before any search
        systems().get(n)
    work = wl.build(cfg.workload, cfg.rate_req_s, cfg.input_len, cfg.output_len, cfg.requests, cfg.seed)
    trough = float(consts.get("load.diurnal_trough_fraction"))
    load = LoadProfile(cfg.rate_req_s, trough, float(consts.get("load.period_h")) * 3600.0)
    from moecap_sim.procure.distributed import Verifier

    with Verifier(cfg.dask) as verifier:
        return _search(cfg, consts, names, work, load, progress, plot, radar_plot, verifier, t_start, des_progress)


def _search(cfg: PlanConfig, consts: Constants, names: list[str], work, load, progress, plot, radar_plot,
            verifier, t_start: float, des_progress=None) -> dict[str, Any]:
    """Stages 1 and 2, the scenarios and the outputs of :func:`plan_config` (``verifier`` runs
    the DES here or on Dask)."""
    from moecap_sim.procure import scenarios as scen
    from moecap_sim.procure.pareto import front, plot as plot_pareto
    from moecap_sim.procure.scenarios.fleet import Fleet
    from moecap_sim.radar import classify

    input_len, output_len = work.mean_input, work.mean_output
    trough = load.trough_fraction
    mop = load.mean_req_s / load.peak_req_s
    premium = float(consts.get("serverless.price_premium")) if "serverless" in cfg.scenarios else 1.0
    min_rep = float(consts.get("elastic.min_replicas")) if "elastic" in cfg.scenarios else 1.0

    def bound(c: Candidate, units: int, s: str) -> Optional[float]:
        """Lower bound on scenario ``s``'s $/h for ``units`` units of ``c`` (None: no price)."""
        return _lb(c, units, s, cfg, mop, premium, min_rep)

    def key_of(c: Candidate, units: int) -> Optional[float]:
        """The smallest lower bound over the requested scenarios (the search order)."""
        vals = [v for s in cfg.scenarios if (v := bound(c, units, s)) is not None]
        return min(vals) if vals else None

    # ---- stage 1: analytical search
    t1 = time.perf_counter()
    cands, rejected = _stage1(cfg, names, input_len, output_len, _consts_for_search(cfg, consts), progress,
                              verifier.client)
    stage1_s = time.perf_counter() - t1
    no_price: dict[str, set] = {s: set() for s in cfg.scenarios}
    queue: list[list] = []  # [candidate index, units, tries, 'start' | 'up' | 'down']
    for i, c in enumerate(cands):
        for s in cfg.scenarios:
            if bound(c, c.units_needed, s) is None:
                no_price[s].add(c.system)
        if key_of(c, c.units_needed) is None:
            rejected.append({"key": c.key, "system": c.system, "stage": "price",
                             "reason": f"no price for any requested scenario ({', '.join(cfg.scenarios)})"})
            continue
        queue.append([i, c.units_needed, 0, "start"])

    def lb(entry, s):
        return bound(cands[entry[0]], entry[1], s)

    def key(entry):
        return key_of(cands[entry[0]], entry[1])

    def fleet_of(c: Candidate, units: int, sim: dict) -> Fleet:
        return Fleet(system=c.system, units=units, peak_rate_req_s=cfg.rate_req_s, output_len=output_len,
                     usd_per_hour_unit=c.usd_per_hour_unit, power_w_unit=c.power_w_unit, weights_gb=c.weights_gb,
                     e2e_mean_s=sim["e2e_s"]["mean"] or 0.0, provider=c.provider, nvme_gb_s=c.nvme_gb_s,
                     host_link_gb_s=c.host_link_gb_s)

    def unproven(s: str) -> Optional[int]:
        """Index of the queue entry with the lowest ``s`` lower bound, if that bound is below the
        cheapest verified ``s`` cost (scenario ``s`` is not yet proven); else None."""
        best_s = min((costs[s]["usd_per_hour"] for _, _, _, costs in verified if not costs[s].get("no_price")),
                     default=math.inf)
        lbs = [(v, j) for j, e in enumerate(queue) if (v := lb(e, s)) is not None]
        if lbs and min(lbs)[0] < best_s:
            return min(lbs)[1]
        return None

    turn = [0]

    def next_entry() -> Optional[int]:
        """Index into ``queue`` of the next candidate to verify, or None when the answer is proven:
        for every scenario the cheapest verified cost is at most every unverified lower bound, and
        ``verify_top`` are verified with none unverified able to beat the K-th.  Scenarios take
        turns (the cheapest spot fleet is searched for as early as the cheapest dedicated one)."""
        if not queue:
            return None
        for step in range(len(cfg.scenarios)):
            s = cfg.scenarios[(turn[0] + step) % len(cfg.scenarios)]
            j = unproven(s)
            if j is not None:
                turn[0] = (turn[0] + step + 1) % len(cfg.scenarios)
                return j
        keys = [key(e) for e in queue]
        top = min(range(len(queue)), key=lambda j: keys[j])
        if len(verified) < cfg.verify_top:
            return top
        vals = sorted(min((v["usd_per_hour"] for v in costs.values() if not v.get("no_price")), default=math.inf)
                      for _, _, _, costs in verified)
        return top if keys[top] < vals[cfg.verify_top - 1] else None

    # ---- stage 2: DES verification in order of the cost lower bound
    t2 = time.perf_counter()
    verified: list[tuple[Candidate, int, dict, dict]] = []
    des_runs = 0
    stop_reason = "proven: no unverified candidate can be cheaper"
    while True:
        batch: list[list] = []
        while len(batch) < verifier.width and des_runs + len(batch) < cfg.max_des_runs:
            j = next_entry()
            if j is None:
                break
            if not cands[queue[j][0]].refined:  # lazy: the exact stage-1 bound only where the search reaches
                i = queue[j][0]
                rc = refine(cfg, cands[i], input_len, output_len)
                if rc is None:
                    queue.pop(j)
                    rejected.append({"key": cands[i].key, "system": cands[i].system, "stage": "analytical",
                                     "reason": f"needs more than --max-systems {cfg.max_systems} units at the "
                                               "SLO batch"})
                    continue
                cands[i] = rc
                queue[j][1] = max(queue[j][1], rc.units_needed)
                continue
            batch.append(queue.pop(j))
        if not batch:
            if queue and des_runs >= cfg.max_des_runs and next_entry() is not None:
                stop_reason = f"DES budget of {cfg.max_des_runs} runs spent"
            elif not queue:
                stop_reason = "every candidate was verified or rejected"
            break
        results = verifier.run([(cfg.model, cands[i], units, work, cfg.slos, cfg.seed) for i, units, _, _ in batch])
        des_runs += len(batch)
        if des_progress is not None:
            des_progress(des_runs, cfg.max_des_runs)
        for (i, units, tries, way), res in zip(batch, results):
            c = cands[i]
            if res["ok"]:
                fl = fleet_of(c, units, res["simulated"])
                costs = {s: scen.evaluate(s, fl, load, consts, basis=cfg.dedicated_basis,
                                          amortize_years=cfg.amortize_years, seed=cfg.seed) for s in cfg.scenarios}
                verified[:] = [v for v in verified if v[0].key != c.key]  # a fleet with fewer units passed
                verified.append((c, units, res, costs))
                if way in ("start", "down") and units - 1 >= max(1, c.units_lower_bound):
                    queue.append([i, units - 1, tries, "down"])  # stage 1's estimate may be pessimistic
                continue
            if way == "down":  # the probe failed: the passing fleet one unit larger is the answer
                continue
            latency_miss = res["simulated"] is not None
            nxt = max(units + 1, math.ceil(units * 1.25))
            if latency_miss and tries + 1 < MAX_ESCALATIONS and nxt <= cfg.max_systems:
                queue.append([i, nxt, tries + 1, "up"])
            else:
                rejected.append({"key": c.key, "system": c.system, "stage": "simulation",
                                 "reason": f"with {units} unit(s): {res['reason']}"
                                           + (f" (gave up after {tries + 1} unit counts)" if latency_miss else ""),
                                 "simulated": res["simulated"]})
    for i, units, tries, way in queue:  # never verified: the bound or the budget stopped the search
        c = cands[i]
        k = key_of(c, units)
        budget = stop_reason.startswith("DES budget")
        rejected.append({"key": c.key, "system": c.system, "stage": "budget" if budget else "bound",
                         "reason": ("not verified: the DES budget (--max-des-runs) was spent first" if budget else
                                    f"pruned by the bound: cost lower bound ${k:.4g}/h cannot beat the verified ones")
                                   + (f" (after {tries} unit increases)" if tries else ""),
                         "lower_bound_usd_per_hour": k})
    stage2_s = time.perf_counter() - t2

    # ---- heterogeneous fleets (dedicated): two verified configurations mixed to round units down
    hetero = _heterogeneous(cfg, verified, work, verifier) if "dedicated" in cfg.scenarios else None

    # ---- scenarios, ranking, Pareto
    out_cands = []
    for c, units, res, costs in verified:
        sim = res["simulated"]
        prim = costs[cfg.scenarios[0]]
        out_cands.append({
            "key": c.key, "system": c.system,
            "config": {"precision": c.precision, "precision_label": c.precision_label, "engine": c.engine,
                       "layout": {"tp": c.layout.tp, "dp": c.layout.dp, "ep": c.layout.ep, "pp": c.layout.pp,
                                  "nodes": c.layout.nodes, "attention_dp": c.layout.attention_dp,
                                  "label": c.layout.label},
                       "placement": c.placement, "max_num_seqs": sim["max_concurrency_per_replica"],
                       "slo_batch_steady_state": c.batch_per_replica},
            "units": units, "boxes": units * c.layout.nodes,
            "analytical": {"units_needed": c.units_needed, "units_lower_bound": c.units_lower_bound,
                           "steady_ttft_s": c.steady_ttft_s,
                           "steady_tpot_s": c.steady_tpot_s, "unit_output_tokens_per_s": c.unit_output_tokens_per_s},
            "simulated": {m: {s: sim[m][s] for s in ("mean", "p50", "p90", "p99")}
                          for m in ("ttft_s", "tpot_s", "e2e_s", "queueing_s")}
                         | {"shards_simulated": sim["shards_simulated"], "requests_simulated": sim["requests_simulated"]},
            "slo_met": {x.name: x.met(sim) for x in cfg.slos},
            "cost": costs, "usd_per_hour": None if prim.get("no_price") else prim["usd_per_hour"],
            "usd_per_million_output_tokens": None if prim.get("no_price") else prim["usd_per_million_output_tokens"],
            "accuracy": c.accuracy, "accuracy_reference": c.accuracy_reference, "cost_basis": c.cost_basis,
        })
        d = out_cands[-1]  # its place on the CAP radar's fixed scales (the same class as `radar` gives)
        ratio = c.accuracy / c.accuracy_reference if (c.accuracy is not None and c.accuracy_reference) else None
        d["cap"] = classify(sim["tpot_s"]["p50"], d["usd_per_million_output_tokens"], ratio)
    out_cands.sort(key=lambda d: (d["usd_per_hour"] is None, d["usd_per_hour"] or 0.0,
                                  d["simulated"]["tpot_s"]["p99"] or 0.0))
    seen, best = set(), []
    for d in out_cands:  # one row per (system, precision, engine): its cheapest verified layout
        kk = (d["system"], d["config"]["precision"], d["config"]["engine"])
        if kk not in seen:
            seen.add(kk)
            best.append(d)
    for r, d in enumerate(best, 1):
        d["rank"] = r
    scenarios_out = {}
    for s in cfg.scenarios:
        priced = [d for d in out_cands if not d["cost"][s].get("no_price")]
        cheapest = min(priced, key=lambda d: d["cost"][s]["usd_per_hour"], default=None)
        scenarios_out[s] = {
            "cheapest": None if cheapest is None else {
                "key": cheapest["key"], "system": cheapest["system"], "units": cheapest["units"],
                "usd_per_hour": cheapest["cost"][s]["usd_per_hour"],
                "usd_per_million_output_tokens": cheapest["cost"][s]["usd_per_million_output_tokens"],
                "simulated_tpot_p99_s": cheapest["simulated"]["tpot_s"]["p99"],
                "simulated_ttft_p99_s": cheapest["simulated"]["ttft_s"]["p99"]},
            "verified_without_price": sorted({d["system"] for d in out_cands if d["cost"][s].get("no_price")}),
            "systems_without_price": sorted(no_price[s]),
            "note": None if cheapest else ("no candidate passed the DES (see rejected)" if not out_cands
                                           else f"no verified candidate has a {s} price"),
        }
    pts_t = [(d["key"], d["usd_per_million_output_tokens"], d["simulated"]["tpot_s"]["p99"]) for d in out_cands]
    pts_a = [(d["key"], d["usd_per_million_output_tokens"], d["accuracy"]) for d in out_cands]
    pareto = {"scenario": cfg.scenarios[0], "tpot_p99": front(pts_t), "accuracy": front(pts_a, maximize_second=True)}
    result = {
        "model": cfg.model,
        "target": {"peak_rate_req_s": cfg.rate_req_s, "mean_rate_req_s": load.mean_req_s,
                   "peak_output_tokens_per_s": cfg.rate_req_s * output_len, "input_len": input_len,
                   "output_len": output_len},
        "slo": [{"metric": x.metric, "stat": x.stat, "bound_s": x.bound_s} for x in cfg.slos],
        "workload": work.description,
        "scenarios_requested": list(cfg.scenarios), "dedicated_basis": cfg.dedicated_basis,
        "heterogeneous": hetero,
        "candidates": best[:cfg.top], "verified": len(out_cands),
        "rejected": rejected, "pareto": pareto, "scenarios": scenarios_out,
        "pareto_points": {d["key"]: {"usd_per_million_output_tokens": d["usd_per_million_output_tokens"],
                                     "tpot_p99_s": d["simulated"]["tpot_s"]["p99"], "accuracy": d["accuracy"]}
                          for d in out_cands if d["key"] in set(pareto["tpot_p99"]) | set(pareto["accuracy"])},
        "search": {"systems": len(names), "stage1_feasible": len(cands),
                   "stage1_evaluated": len(cands) + sum(1 for r in rejected if r["stage"] == "analytical"),
                   "des_runs": des_runs, "stop": stop_reason, "stage1_s": stage1_s, "stage2_s": stage2_s,
                   "wall_s": time.perf_counter() - t_start, "dask": cfg.dask},
        "assumptions": {"constants": consts.used,
                        "load_profile": f"rate(t) follows a {load.period_s / 3600:g}-h cosine from "
                                        f"{trough:g}× peak to the peak {cfg.rate_req_s:g} req/s; "
                                        f"mean {load.mean_req_s:.3g} req/s",
                        "stage1": "steady state at the tightest SLO bounds (mean lengths); a lower bound for the DES",
                        "stage2": "round-robin shards, worst shard's percentile (up to 8 shards simulated); "
                                  "engine scheduler caps as configured (KV-limited); units start at stage 1's "
                                  "estimate, go up on a miss and down (not below the max-batch bound) on a pass",
                        "slo_mapping": "--slo-ttft/--slo-tpot bound the simulated MEAN; --slo-<metric>-<pNN> "
                                       "the simulated percentile"},
    }
    if radar_plot:
        result["radar_plot"] = _plan_radar(out_cands, set(pareto["tpot_p99"]) | set(pareto["accuracy"]),
                                           cfg.scenarios[0], radar_plot) if out_cands else None
    if plot:
        if out_cands:
            result["plot"] = plot_pareto(out_cands, {"tpot_p99": pareto["tpot_p99"], "accuracy": pareto["accuracy"]},
                                         cfg.scenarios[0], plot,
                                         f"{cfg.model}: peak {cfg.rate_req_s:g} req/s, SLO "
                                         + ", ".join(f"{x.name} ≤ {x.bound_s:g} s" for x in cfg.slos))
        else:
            result["plot"] = None
            result["plot_note"] = "no verified candidate: nothing to plot"
    return result


def plan(model: str, *, rate: Optional[float] = None, output_tokens_per_s: Optional[float] = None,
         input_len: int = 1024, output_len: int = 256, slo_ttft_s: Optional[float] = None,
         slo_tpot_s: Optional[float] = None, systems_list: Optional[list[str]] = None,
         precisions: Optional[list[str]] = None, engines: Optional[list[str]] = None, pricing: str = "on-demand",
         scenarios: Optional[list[str]] = None, amortize_years: Optional[float] = None,
         usd_per_kwh: Optional[float] = None, pue: Optional[float] = None, workload: str = "azure-conv",
         requests: Optional[int] = None, seed: int = 0, verify_top: int = 8, max_des_runs: int = 40,
         max_systems: int = 64, max_nodes: int = 2, top: int = 10, min_accuracy: Optional[float] = None,
         constants: Optional[dict] = None, plot: Optional[str] = None, radar_plot: Optional[str] = None,
         dask: Optional[str] = None, progress: Optional[Callable[[int, int], None]] = None,
         des_progress: Optional[Callable[[int, int], None]] = None,
         **slo_percentiles: Optional[float]) -> dict[str, Any]:
    """The cheapest verified fleet for a peak load (``rate`` req/s or ``output_tokens_per_s``)
    meeting the SLOs: ``slo_ttft_s``/``slo_tpot_s`` bound the simulated means (the old flags),
    ``slo_<ttft|tpot|e2e>_<p50|p90|p99>_s=...`` the simulated percentiles (seconds).
    ``scenarios`` ⊂ dedicated, elastic, serverless, spot (first = ranking); ``pricing`` is the
    dedicated basis (on-demand | owned; 'spot' means ``scenarios=['spot']``).  ``progress(done,
    total)`` is called per system in stage 1, ``des_progress(runs, budget)`` after DES runs."""
    from moecap_sim.inputs import PlanArgs, check_args

    check_args(PlanArgs, rate=rate, output_tokens_per_s=output_tokens_per_s, input_len=input_len,
               output_len=output_len, slo_ttft_s=slo_ttft_s, slo_tpot_s=slo_tpot_s, precisions=precisions,
               pricing=pricing, max_systems=max_systems, top=top, min_accuracy=min_accuracy,
               amortize_years=amortize_years, usd_per_kwh=usd_per_kwh, pue=pue, verify_top=verify_top,
               max_des_runs=max_des_runs, max_nodes=max_nodes, requests=requests, seed=seed)
    if rate is None and output_tokens_per_s is None:
        raise UserError("give the target load: --rate (requests/s) or --output-tokens-per-s")
    rate_req_s = rate if rate is not None else output_tokens_per_s / output_len
    slos = slos_from_flags(slo_ttft_s, slo_tpot_s, **slo_percentiles)
    basis = pricing
    if pricing == "spot":  # the old flag: spot is a scenario now
        scenarios = ["spot"] + [s for s in (scenarios or []) if s != "spot"]
        basis = "on-demand"
    from moecap_sim.procure.distributed import check_dask_address

    cfg = PlanConfig(model=model, rate_req_s=rate_req_s, input_len=input_len, output_len=output_len, slos=slos,
                     systems=tuple(systems_list) if systems_list else None,
                     precisions=tuple(precisions or ("native", "fp8", "int4")),
                     engines=tuple(engines) if engines else (None,), max_nodes=max_nodes,
                     scenarios=tuple(dict.fromkeys(scenarios or ["dedicated"])), dedicated_basis=basis,
                     amortize_years=amortize_years, usd_per_kwh=usd_per_kwh, pue=pue, workload=workload,
                     requests=requests, seed=seed, verify_top=verify_top, max_des_runs=max_des_runs,
                     max_systems=max_systems, min_accuracy=min_accuracy, top=top, constants=constants or {},
                     dask=check_dask_address(dask))
    if engines:
        from moecap_sim.catalog.engines import get_engine

        for e in engines:
            get_engine(e)
    return plan_config(cfg, progress=progress, plot=plot, radar_plot=radar_plot, des_progress=des_progress)


def parse_constants(items: list[str]) -> dict[str, float]:
    """``["spot.reacquire_s=600", ...]`` → ``{"spot.reacquire_s": 600.0}`` (keys checked by the plan)."""
    out: dict[str, float] = {}
    for it in items:
        k, sep, v = it.partition("=")
        try:
            x = float(v)
        except ValueError:
            x = math.nan
        if not sep or not k.strip() or not math.isfinite(x) or x < 0:
            raise UserError(f"--set {it!r}: expected KEY=VALUE with a finite non-negative number, e.g. spot.reacquire_s=600")
        out[k.strip()] = x
    return out


def _plan_radar(cands: list[dict], keys: set, scenario: str, path: str) -> str:
    """The plan's trade-off view: its Pareto candidates on the CAP radar's fixed scales (simulated
    TPOT p50, $/M output tokens of ``scenario``, accuracy vs the full-precision reference)."""
    from moecap_sim.radar import COST_SCALES, _plot

    rows = []
    for d in cands:
        if d["key"] not in keys:
            continue
        cap = d["cap"]
        ratio = d["accuracy"] / d["accuracy_reference"] if (d["accuracy"] is not None and d["accuracy_reference"]) else None
        rows.append({"label": f"{d['system']} {d['config']['precision_label'].replace('native ', '')} ×{d['units']}",
                     "fits": True, "plotted": d["usd_per_million_output_tokens"] is not None,
                     "radius": cap["radius"], "tradeoff_class": cap["tradeoff_class"],
                     "tpot_s": d["simulated"]["tpot_s"]["p50"], "cost": d["usd_per_million_output_tokens"],
                     "accuracy": d["accuracy"], "accuracy_ratio": ratio,
                     "cost_basis": f"no {scenario} price"})
    return _plot(rows, COST_SCALES["usd_per_million_output_tokens"],
                 f"plan's Pareto candidates: $/M output tokens, {scenario} scenario at the day's mean load; "
                 "TPOT = simulated p50", path)


MAX_MIXED_RUNS = 3


def _heterogeneous(cfg: PlanConfig, verified: list, work, verifier) -> Optional[dict]:
    """The cheapest verified two-configuration dedicated fleet cheaper than every verified
    single-configuration one (:mod:`moecap_sim.procure.mixed`), or why there is none."""
    from moecap_sim.perf.cost import usd_per_million
    from moecap_sim.procure.mixed import Option, mixed_fleets

    opts, by = [], {}
    for c, units, res, costs in verified:
        d = costs.get("dedicated") or {}
        if d.get("no_price"):
            continue
        opts.append(Option(c.key, units, c.usd_per_hour_unit[cfg.dedicated_basis], cfg.rate_req_s / units))
        by[c.key] = c
    tried = []
    for cost, parts in mixed_fleets(opts, cfg.rate_req_s, limit=MAX_MIXED_RUNS):
        res = verifier.run_mixed([(cfg.model, [(by[o.key], n, o.capacity_req_s) for o, n in parts], work, cfg.slos,
                                   cfg.seed)])[0]
        fleet = [{"key": o.key, "system": by[o.key].system, "units": n} for o, n in parts]
        tried.append({"fleet": fleet, "usd_per_hour": cost, "ok": res["ok"], "reason": res["reason"]})
        if res["ok"]:
            best_pure = min(o.units * o.usd_per_hour for o in opts)
            sim = res["simulated"]
            return {"fleet": fleet, "usd_per_hour": cost, "saves_usd_per_hour": best_pure - cost,
                    "usd_per_million_output_tokens_at_peak": usd_per_million(cost, cfg.rate_req_s * work.mean_output),
                    "simulated": {m: sim[m] for m in ("ttft_s", "tpot_s", "e2e_s")}, "dispatch":
                    "capacity-weighted round-robin", "tried": tried}
    return {"fleet": None, "tried": tried,
            "note": ("no two-configuration mix is cheaper than the best single-configuration fleet" if not tried
                     else "the cheaper mixes tried miss the SLOs in the DES")}
