"""Stage 1 of ``plan``: analytical search over systems × precisions × engines × layouts.

Each candidate is one ``predict`` (the one cost model; ``--offload auto`` picks the fastest
feasible placement) at ``batch=max``: its throughput there bounds the units needed for the peak
load from below.  :func:`refine` (run lazily by stage 2 on the candidates it reaches) finds the
largest per-replica batch whose steady-state TTFT/TPOT meet the tightest SLO bounds (bisection
on :func:`moecap_sim.perf.serving.serve` over a batch grid) and the units needed at that batch.  Pruned here, with a
reason each: does not fit in memory; misses an SLO even at batch 1 (a lower bound on any
simulated percentile at the mean lengths); needs more than ``max_systems`` units; accuracy below
the floor; no price for any requested scenario.  The result per candidate is plain data (no
cost-model context) so a Dask worker can return it.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Optional

from moecap_sim.errors import UserError

from .config import PlanConfig, tightest


@dataclass(frozen=True)
class Layout:
    """A parallel layout of one system unit (``nodes`` boxes over the system's scale-out network)."""

    tp: int = 1
    dp: int = 1
    ep: int = 1
    pp: int = 1
    nodes: int = 1
    attention_dp: bool = False

    @property
    def label(self) -> str:
        s = f"TP{self.tp}×DP{self.dp}"
        if self.attention_dp:
            s = f"attn-DP{self.dp}+EP{self.ep}"
        elif self.ep > 1:
            s += f"+EP{self.ep}"
        if self.pp > 1:
            s += f"×PP{self.pp}"
        if self.nodes > 1:
            s += f" on {self.nodes} nodes"
        return s


def layouts(devices: int, scale_out: bool, max_nodes: int, moe: bool) -> list[Layout]:
    """Layouts using every device of a unit: TP groups of powers of two (inside a box) with DP over
    the rest, the same with EP over all ranks (MoE), attention-DP + EP, 2-stage PP inside a box,
    and all of it over 2, 4, ... boxes (≤ ``max_nodes``) where the system has a scale-out network."""
    if devices <= 1 and not (scale_out and max_nodes > 1):
        return [Layout()]
    out: list[Layout] = []
    node_counts = [1] + ([n for n in (2, 4, 8, 16) if n <= max_nodes] if scale_out else [])
    for nodes in node_counts:
        total = devices * nodes
        tp = 1
        while tp <= devices:
            if devices % tp == 0:
                dp = total // tp
                out.append(Layout(tp=tp, dp=dp, nodes=nodes))
                if moe and total > 1 and tp > 1:
                    out.append(Layout(tp=tp, dp=dp, ep=total, nodes=nodes))
            tp *= 2
        if devices not in [l.tp for l in out if l.nodes == nodes] and total > 1:
            out.append(Layout(tp=devices, dp=nodes, nodes=nodes))
        if moe and total > 1:
            out.append(Layout(tp=1, dp=total, ep=total, nodes=nodes, attention_dp=True))
        if nodes == 1 and devices >= 2 and devices % 2 == 0:
            out.append(Layout(tp=devices // 2, pp=2, nodes=1))
    seen, uniq = set(), []
    for l in out:
        if l not in seen:
            seen.add(l)
            uniq.append(l)
    return uniq


@dataclass
class Candidate:
    """One stage-1 configuration (a *unit* is ``layout.nodes`` boxes of ``system``)."""

    system: str
    precision: str  # as requested ("native", "fp8", ...)
    precision_label: str  # as predict resolved it
    engine: str
    layout: Layout
    placement: str
    batch_per_replica: int
    steady_ttft_s: float
    steady_tpot_s: float
    unit_output_tokens_per_s: float  # one unit at the SLO batch, steady state
    units_needed: int  # for the peak load (stage 1; stage 2 may raise it)
    usd_per_hour_unit: dict  # basis -> $/h of one unit or None: on-demand, owned, spot
    cost_basis: dict  # basis -> text
    power_w_unit: float
    weights_gb: float
    accuracy: Optional[float]
    accuracy_reference: Optional[float]
    provider: Optional[str]
    nvme_gb_s: Optional[float]
    host_link_gb_s: Optional[float]
    refined: bool = False  # False: units/batch are the max-batch lower bound, not yet the SLO batch
    units_lower_bound: int = 1  # units at the largest batch's steady throughput (no fleet does with fewer)
    notes: list = field(default_factory=list)

    @property
    def key(self) -> str:
        return f"{self.system}/{self.precision}/{self.engine}/{self.layout.label}"

    def serving_kwargs(self) -> dict:
        """Keyword arguments that reproduce this configuration in ``predict``/``simulate``."""
        l = self.layout
        kw = dict(precision=None if self.precision == "native" else self.precision, engine=self.engine,
                  tp=l.tp, dp=l.dp, ep=l.ep, pp=l.pp, nodes=l.nodes, attention_dp=l.attention_dp)
        return kw

    def as_dict(self) -> dict:
        d = asdict(self)
        d["layout"] = {**asdict(self.layout), "label": self.layout.label}
        d["key"] = self.key
        return d


def batch_grid(max_b: int) -> list[int]:
    """Batch sizes stage 1 tries: 1, 2, 3, 4, 6, 8, 12, 16, ... (steps of ×1.5/×1.33) and ``max_b``.
    A coarse grid keeps the routing model's per-batch caches shared across layouts and precisions
    (an exact bisection costs ~20× more on EP layouts) and loses at most one grid step of batch."""
    out, b = [], 1
    while b < max_b:
        out.append(b)
        b = b * 3 // 2 if b % 2 == 0 else b * 4 // 3 + (1 if b * 4 % 3 else 0)
        b = max(b, out[-1] + 1)
    out.append(max_b)
    return sorted(set(out))


def _best_batch(ctx, max_b: int, input_len: int, output_len: int, ttft: Optional[float], tpot: Optional[float]):
    """Largest grid batch in [1, max_b] whose steady-state TTFT/TPOT meet the bounds (None: not
    even batch 1), and the batch-1 serving point."""
    from moecap_sim.perf.serving import serve

    def ok(b):
        sv = serve(ctx, b, input_len, output_len)
        return (tpot is None or sv.tpot_s <= tpot) and (ttft is None or sv.ttft_s <= ttft), sv

    good, sv1 = ok(1)
    if not good:
        return None, sv1
    grid = batch_grid(max_b)
    g, sv = ok(grid[-1])
    if g:
        return sv, sv1
    lo, hi, best = 0, len(grid) - 1, sv1  # grid[lo] meets the bounds, grid[hi] does not
    while hi - lo > 1:
        mid = (lo + hi) // 2
        g, sv = ok(grid[mid])
        if g:
            lo, best = mid, sv
        else:
            hi = mid
    return best, sv1


def _prices(ctx, power_w: float, cfg: PlanConfig, consts) -> tuple[dict, dict]:
    """$/h of one unit per basis through the one cost model (perf/cost.py); None where the
    system has no such price (no silent fallback to another basis)."""
    from moecap_sim.perf.cost import CostInputs, hourly_cost

    amort = cfg.amortize_years if cfg.amortize_years is not None else consts["amortize_years"]
    kwh = cfg.usd_per_kwh if cfg.usd_per_kwh is not None else consts["usd_per_kwh"]
    pue = cfg.pue if cfg.pue is not None else consts["pue"]
    usd, basis = {}, {}
    for b in ("on-demand", "owned", "spot"):
        try:
            c = hourly_cost(ctx.dep, CostInputs(b, amort, kwh, pue), power_w)
        except UserError as exc:
            usd[b], basis[b] = None, f"no price: {exc}"
            continue
        if c["pricing"] != b:
            usd[b], basis[b] = None, f"no {b} price recorded for {ctx.dep.system.name}"
        else:
            usd[b], basis[b] = c["usd_per_hour"], c["basis"]
            if b == "owned":
                usd["owned_capex"], usd["owned_energy"] = c["capex_usd_per_hour"], c["energy_usd_per_hour"]
    return usd, basis


def evaluate_system(cfg: PlanConfig, system: str, input_len: int, output_len: int,
                    consts: dict) -> tuple[list[Candidate], list[dict]]:
    """Every (precision, engine, layout) of one system: feasible candidates and rejections."""
    from moecap_sim.catalog.hardware import systems
    from moecap_sim.catalog.models import get_model
    from moecap_sim.perf.serving import serve
    from moecap_sim.predict import predict_with_context

    spec = systems().get(system)
    n = spec.accelerators.count if spec.accelerators else 1
    moe = bool(get_model(cfg.model).arch.moe_layers)
    lays = layouts(n, spec.scale_out is not None and spec.accelerators is not None, cfg.max_nodes, moe) \
        if spec.accelerators else [Layout()]
    target = cfg.rate_req_s * output_len
    ttft_t, tpot_t = tightest(cfg.slos, "ttft_s"), tightest(cfg.slos, "tpot_s")
    cands: list[Candidate] = []
    rejected: list[dict] = []
    seen_engines: set = set()
    for prec in cfg.precisions:
        for eng in cfg.engines:
            for lay in lays:
                key = f"{system}/{prec}/{eng or 'auto'}/{lay.label}"

                def reject(stage_reason: str) -> None:
                    rejected.append({"key": key, "system": system, "stage": "analytical", "reason": stage_reason})
                try:
                    p = predict_with_context(cfg.model, system, precision=None if prec == "native" else prec,
                                             engine=eng, tp=lay.tp, dp=lay.dp, ep=lay.ep, pp=lay.pp, nodes=lay.nodes,
                                             attention_dp=lay.attention_dp, batch="max", input_len=input_len,
                                             output_len=output_len)
                except UserError as exc:
                    reject(str(exc).splitlines()[0])
                    continue
                r = p.result
                if not r["fits"] or p.context is None:
                    reject(f"does not fit: {r.get('reason') or 'memory'}")
                    continue
                ekey = (prec, r["engine"], lay)
                if ekey in seen_engines:  # 'auto' resolved to an engine also listed explicitly
                    continue
                seen_engines.add(ekey)
                ctx = p.context
                max_b = r["workload"]["batch_per_replica"]
                sv1 = serve(ctx, 1, input_len, output_len)
                if (tpot_t is not None and sv1.tpot_s > tpot_t) or (ttft_t is not None and sv1.ttft_s > ttft_t):
                    reject(f"misses the SLO even at batch 1 (steady state: TTFT {sv1.ttft_s:.3g} s, "
                           f"TPOT {sv1.tpot_s:.3g} s at the mean lengths)")
                    continue
                acc = (r.get("accuracy") or {}).get("radar_score")
                if cfg.min_accuracy is not None and (acc is None or acc < cfg.min_accuracy):
                    reject(f"accuracy {acc} below the floor {cfg.min_accuracy}")
                    continue
                unit_tps = r["output_tokens_per_s"]  # at the largest batch: an upper bound on throughput
                needed = math.ceil(target / unit_tps) if unit_tps > 0 else 10 ** 9
                if needed > cfg.max_systems:
                    reject(f"needs at least {needed} units even at the largest batch (> --max-systems {cfg.max_systems})")
                    continue
                sv = sv1
                power = r["energy"]["average_power_w"]
                usd, basis = _prices(ctx, power, cfg, consts)
                dev = ctx.dep.accelerator
                cands.append(Candidate(
                    system=system, precision=prec, precision_label=r["precision"]["weights_short"], engine=r["engine"],
                    layout=lay, placement=r["placement"]["strategy"], batch_per_replica=max_b,
                    steady_ttft_s=sv.ttft_s, steady_tpot_s=sv.tpot_s, unit_output_tokens_per_s=unit_tps,
                    units_needed=needed, units_lower_bound=needed, usd_per_hour_unit=usd, cost_basis=basis, power_w_unit=power,
                    weights_gb=r["memory"].get("weights_total_gb") or 0.0, accuracy=acc,
                    accuracy_reference=(r.get("accuracy") or {}).get("radar_baseline"),
                    provider=spec.pricing.provider, nvme_gb_s=spec.host.nvme_bandwidth_gb_s,
                    host_link_gb_s=dev.host_link.bandwidth_gb_s if dev is not None and dev.host_link else None))
    return cands, rejected


def refine(cfg: PlanConfig, c: Candidate, input_len: int, output_len: int) -> Optional[Candidate]:
    """``c`` at the largest grid batch meeting the tightest SLO bounds in steady state (stage 1's
    lower bound made exact, done lazily for the candidates stage 2 reaches); None if the config
    needs more than ``max_systems`` units there."""
    from dataclasses import replace as _replace

    from moecap_sim.predict import predict_with_context

    l = c.layout
    p = predict_with_context(cfg.model, c.system, precision=None if c.precision == "native" else c.precision,
                             engine=c.engine, tp=l.tp, dp=l.dp, ep=l.ep, pp=l.pp, nodes=l.nodes,
                             attention_dp=l.attention_dp, batch="max", input_len=input_len, output_len=output_len)
    sv, _ = _best_batch(p.context, p.result["workload"]["batch_per_replica"], input_len, output_len,
                        tightest(cfg.slos, "ttft_s"), tightest(cfg.slos, "tpot_s"))
    if sv is None:  # cannot happen after the batch-1 check, kept for safety
        return None
    needed = math.ceil(cfg.rate_req_s * output_len / sv.output_tokens_per_s) if sv.output_tokens_per_s > 0 else 10 ** 9
    if needed > cfg.max_systems:
        return None
    return _replace(c, batch_per_replica=sv.batch_per_replica, steady_ttft_s=sv.ttft_s, steady_tpot_s=sv.tpot_s,
                    unit_output_tokens_per_s=sv.output_tokens_per_s, units_needed=max(needed, c.units_needed),
                    refined=True)
