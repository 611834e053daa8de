"""Dollar cost and energy.

$/hour bases:

* ``on-demand`` / ``spot`` — the system's list price (provider, instance, date in its spec);
  energy is included in the price.
* ``owned`` — purchase price amortised linearly over ``amortize_years`` at 24×365 h/year plus
  energy: average wall power × PUE × $/kWh.  The purchase price is the system's
  ``pricing.purchase_usd`` (whole box: accelerators, CPUs, DRAM, chassis) or, where absent,
  accelerators' purchase prices × count × 1.25 (host share; assumption, said in ``basis``).

Power model (documented assumption, not fitted): an active accelerator draws
``idle + (TDP − idle) × (0.35 + 0.65 × u)`` where ``u = max(S-MBU, S-MFU)`` of the phase it runs
— GPUs that are streaming weights keep clocks up, so even memory-bound decode draws well
above idle (public measurements such as ML.ENERGY show 50–70% of TDP for LLM decode; assumption: recalled, not checked against a source).
Unused accelerators draw idle.  CPU sockets draw ``0.3 × TDP`` plus ``0.7 × TDP × u_cpu`` (u_cpu
is host DRAM utilisation when the CPU computes experts, 0.1 for an engine loop).  Plus the
chassis's ``host_power_w``.  Idle power defaults to 20% of TDP when a spec has none.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from moecap_sim.deployment import Deployment
from moecap_sim.errors import UserError

HOURS_PER_YEAR = 24 * 365


@dataclass(frozen=True)
class CostInputs:
    pricing: str = "on-demand"
    amortize_years: float = 3.0
    usd_per_kwh: float = 0.10
    pue: float = 1.3


def average_power_w(dep: Deployment, acc_util: float, cpu_util: float, accelerators_busy: bool = True) -> dict:
    """Average wall power of the whole system (W) and its parts."""
    s = dep.system
    parts = {}
    if dep.accelerator is not None:
        p = dep.accelerator.power
        idle = p.idle_w if p.idle_w is not None else 0.2 * p.tdp_w
        used = dep.parallelism.devices_used
        unused = dep.device_count - used
        u = min(1.0, max(0.0, acc_util))
        active = idle + (p.tdp_w - idle) * (0.35 + 0.65 * u) if accelerators_busy else idle
        parts["accelerators_w"] = used * active + unused * idle
    cp = dep.host_cpu.power
    sockets = s.host.cpu.sockets
    parts["cpus_w"] = sockets * cp.tdp_w * (0.3 + 0.7 * min(1.0, max(0.0, cpu_util)))
    parts["host_w"] = s.host.host_power_w or 0.0
    parts["total_w"] = sum(parts.values())
    return parts


def purchase_price_usd(dep: Deployment) -> tuple[float, str]:
    pr = dep.system.pricing
    if pr.purchase_usd:
        return pr.purchase_usd, f"system purchase price ${pr.purchase_usd:,.0f} ({pr.date})"
    if dep.accelerator is not None and dep.accelerator.price is not None:
        v = dep.accelerator.price.purchase_usd * dep.device_count * 1.25
        return v, (f"{dep.device_count}× {dep.accelerator.name} at ${dep.accelerator.price.purchase_usd:,.0f} "
                   f"({dep.accelerator.price.date}) + 25% host share (assumption)")
    if dep.host_cpu.price is not None:
        v = dep.host_cpu.price.purchase_usd * dep.system.host.cpu.sockets * 2.0
        return v, f"CPU price × sockets × 2 for the rest of the box (assumption)"
    raise UserError(f"system '{dep.system.name}' has no purchase price: owned pricing needs pricing.purchase_usd in its spec")


def hourly_cost(dep: Deployment, inputs: CostInputs, power_w: float) -> dict:
    """$/hour of the whole system under ``inputs.pricing`` with the basis spelled out."""
    pr = dep.system.pricing
    notes = []
    basis = inputs.pricing
    if basis not in ("on-demand", "spot", "owned"):
        raise UserError(f"--pricing must be on-demand, spot or owned; got '{basis}'")
    if basis == "spot" and pr.spot_usd_per_hour is None:
        notes.append(f"no spot price recorded for {dep.system.name}; using on-demand")
        basis = "on-demand"
    if basis == "on-demand" and pr.on_demand_usd_per_hour is None:
        notes.append(f"no on-demand price recorded for {dep.system.name}; using owned (amortised purchase + energy)")
        basis = "owned"
    if basis == "spot":
        usd = pr.spot_usd_per_hour
        text = f"spot ${usd:.4g}/h, {pr.provider or ''} {pr.instance or ''} {pr.region or ''} ({pr.date})"
        return {"usd_per_hour": usd, "basis": text.replace("  ", " "), "pricing": "spot", "notes": notes}
    if basis == "on-demand":
        usd = pr.on_demand_usd_per_hour
        text = f"on-demand ${usd:.4g}/h, {pr.provider or ''} {pr.instance or ''} {pr.region or ''} ({pr.date})"
        return {"usd_per_hour": usd, "basis": text.replace("  ", " "), "pricing": "on-demand", "notes": notes}
    capex, capex_basis = purchase_price_usd(dep)
    capex_h = capex / (inputs.amortize_years * HOURS_PER_YEAR)
    energy_h = power_w / 1000.0 * inputs.pue * inputs.usd_per_kwh
    return {"usd_per_hour": capex_h + energy_h, "pricing": "owned",
            "basis": (f"owned: {capex_basis} over {inputs.amortize_years:g} years = ${capex_h:.4g}/h, plus energy "
                      f"{power_w:.0f} W × PUE {inputs.pue:g} × ${inputs.usd_per_kwh:g}/kWh = ${energy_h:.4g}/h"),
            "capex_usd_per_hour": capex_h, "energy_usd_per_hour": energy_h, "notes": notes}


def usd_per_million(usd_per_hour: float, tokens_per_s: float) -> Optional[float]:
    """$ per million tokens at a sustained rate (None when nothing is produced)."""
    if tokens_per_s <= 0:
        return None
    return usd_per_hour / (tokens_per_s * 3600.0) * 1e6
