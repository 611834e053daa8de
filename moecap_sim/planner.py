"""``plan``: the cheapest hardware × configuration that meets latency SLOs at a load.

Search space: every catalog system (or those given) × weight precisions (native, fp8, int4
by default) × parallel layouts (TP over all devices; DP replicas of TP groups of 1, 2, 4, ...)
× the placements ``predict`` finds feasible.  For each candidate, the largest per-replica batch
whose steady-state TPOT and TTFT meet the SLOs is found by bisection on the shared cost model
(throughput grows with batch until the KV budget binds); the number of systems needed for the
target load follows, and candidates are ranked by total $/hour.  Accuracy (published, with
quantization deltas) is reported beside each so a cheaper but less accurate option is visible.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Optional

from moecap_sim.catalog.hardware import systems
from moecap_sim.errors import UserError
from moecap_sim.perf.serving import serve
from moecap_sim.perf.cost import usd_per_million
from moecap_sim.predict import predict_with_context


@dataclass
class Candidate:
    system: str
    precision: str
    tp: int
    dp: int
    placement: str
    engine: str
    batch_per_replica: int
    ttft_s: float
    tpot_s: float
    output_tokens_per_s: float  # one system
    systems_needed: int
    usd_per_hour_each: float
    usd_per_hour_total: float
    usd_per_million_output_tokens: float
    accuracy: Optional[float]
    pricing_basis: str


def _layouts(n: int) -> list[tuple[int, int]]:
    """(tp, dp) pairs using all n devices: TP groups of powers of two, DP over the rest."""
    out = []
    tp = 1
    while tp <= n:
        if n % tp == 0:
            out.append((tp, n // tp))
        tp *= 2
    if (n, 1) not in out:
        out.append((n, 1))
    return out


def _best_batch(ctx, max_b: int, input_len: int, output_len: int, slo_ttft: Optional[float], slo_tpot: Optional[float]):
    """Largest batch in [1, max_b] meeting the SLOs (throughput is monotone in batch)."""
    def ok(b):
        sv = serve(ctx, b, input_len, output_len)
        return ((slo_tpot is None or sv.tpot_s <= slo_tpot) and (slo_ttft is None or sv.ttft_s <= slo_ttft)), sv

    good, sv1 = ok(1)
    if not good:
        return None
    lo, hi, best = 1, max_b, sv1
    g, sv = ok(hi)
    if g:
        return sv
    while hi - lo > 1:
        mid = (lo + hi) // 2
        g, sv = ok(mid)
        if g:
            lo, best = mid, sv
        else:
            hi = mid
    return best


def plan(model: str, *, rate: Optional[float] = None, output_tokens_per_s: Optional[float] = None,
         input_len: int = 1024, output_len: int = 256, slo_ttft_s: Optional[float] = None,
         slo_tpot_s: Optional[float] = None, systems_list: Optional[list[str]] = None,
         precisions: Optional[list[str]] = None, pricing: str = "on-demand", max_systems: int = 64,
         top: int = 10, min_accuracy: Optional[float] = None,
         progress: Optional[Callable[[int, int], None]] = None) -> dict[str, Any]:
    """Rank configurations by $/hour for a target load (``rate`` req/s or output tokens/s).
    ``progress(done, total)`` is called after each system (the CLI draws a bar with it)."""
    from moecap_sim.inputs import PlanArgs, check_args

    check_args(PlanArgs, rate=rate, output_tokens_per_s=output_tokens_per_s, input_len=input_len,
               output_len=output_len, slo_ttft_s=slo_ttft_s, slo_tpot_s=slo_tpot_s, precisions=precisions,
               pricing=pricing, max_systems=max_systems, top=top, min_accuracy=min_accuracy)
    if rate is None and output_tokens_per_s is None:
        raise UserError("give the target load: --rate (requests/s) or --output-tokens-per-s")
    target = output_tokens_per_s if output_tokens_per_s is not None else rate * output_len
    if target <= 0:
        raise UserError("the target load must be positive")
    names = systems_list or systems().names()
    precisions = precisions or ["native", "fp8", "int4"]
    cands: list[Candidate] = []
    rejected: dict[str, str] = {}
    specs = [systems().get(n) for n in names]  # unknown names fail here, before any search
    from moecap_sim.catalog.models import get_model

    get_model(model)
    for i, (sys_name, s) in enumerate(zip(names, specs)):
        if progress is not None:
            progress(i, len(names))
        n = s.accelerators.count if s.accelerators else 1
        for prec in precisions:
            for tp, dp in (_layouts(n) if s.accelerators else [(1, 1)]):
                try:
                    p = predict_with_context(model, sys_name, precision=None if prec == "native" else prec, tp=tp,
                                             dp=dp, batch="max", input_len=input_len, output_len=output_len,
                                             pricing=pricing)
                except UserError as e:
                    rejected[f"{sys_name}/{prec}/tp{tp}dp{dp}"] = str(e).splitlines()[0]
                    continue
                r = p.result
                if not r["fits"] or p.context is None:
                    rejected[f"{sys_name}/{prec}/tp{tp}dp{dp}"] = "does not fit"
                    continue
                ctx = p.context
                max_b = r["workload"]["batch_per_replica"]
                sv = _best_batch(ctx, max_b, input_len, output_len, slo_ttft_s, slo_tpot_s)
                if sv is None:
                    rejected[f"{sys_name}/{prec}/tp{tp}dp{dp}"] = "misses the SLO even at batch 1"
                    continue
                acc = (r.get("accuracy") or {}).get("radar_score")
                if min_accuracy is not None and (acc is None or acc < min_accuracy):
                    rejected[f"{sys_name}/{prec}/tp{tp}dp{dp}"] = f"accuracy {acc} below {min_accuracy}"
                    continue
                per_system = sv.output_tokens_per_s
                needed = math.ceil(target / per_system) if per_system > 0 else 10**9
                if needed > max_systems:
                    rejected[f"{sys_name}/{prec}/tp{tp}dp{dp}"] = f"needs {needed} systems (> {max_systems})"
                    continue
                if r["cost"]["pricing"] != pricing:
                    rejected[f"{sys_name}/{prec}/tp{tp}dp{dp}"] = f"no {pricing} price (only {r['cost']['pricing']})"
                    continue
                usd = r["cost"]["usd_per_hour"]
                cands.append(Candidate(sys_name, r["precision"]["weights_short"], tp, dp, r["placement"]["strategy"],
                                       r["engine"], sv.batch_per_replica, sv.ttft_s, sv.tpot_s, per_system, needed, usd,
                                       usd * needed, usd_per_million(usd * needed, target), acc, r["cost"]["basis"]))
    if progress is not None:
        progress(len(names), len(names))
    cands.sort(key=lambda c: (c.usd_per_hour_total, -c.output_tokens_per_s))
    # keep the best layout per (system, precision)
    seen, best = set(), []
    for c in cands:
        key = (c.system, c.precision)
        if key not in seen:
            seen.add(key)
            best.append(c)
    return {"model": model, "target_output_tokens_per_s": target, "input_len": input_len, "output_len": output_len,
            "slo": {"ttft_s": slo_ttft_s, "tpot_s": slo_tpot_s}, "pricing": pricing,
            "candidates": [c.__dict__ for c in best[:top]], "evaluated": len(cands) + len(rejected),
            "feasible": len(cands), "rejected_examples": dict(list(rejected.items())[:12])}
