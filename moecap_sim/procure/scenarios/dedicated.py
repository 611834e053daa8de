"""Dedicated capacity: the verified fleet runs all day, sized for the peak.

$/h = units × the unit's $/h on the chosen basis — ``on-demand`` (list price) or ``owned``
(purchase amortised linearly over ``amortize_years`` + energy = average power × PUE × $/kWh;
both from :func:`moecap_sim.perf.cost.hourly_cost`).  Idle capacity is paid for: $/M tokens is
at the day's mean load.  Rent vs buy: the month after which owning is cheaper than renting on
demand, ``purchase / ((on-demand $/h − energy $/h) × hours per month)`` (never when energy alone
costs more than the rent).
"""

from __future__ import annotations

from typing import Optional

from .fleet import Fleet, LoadProfile, per_million


def break_even_month(purchase_usd: float, on_demand_usd_per_hour: float, energy_usd_per_hour: float,
                     hours_per_month: float) -> Optional[float]:
    """Months of renting on demand that cost as much as buying and powering the box (None: never)."""
    saving = (on_demand_usd_per_hour - energy_usd_per_hour) * hours_per_month
    return purchase_usd / saving if saving > 0 else None


def cost(fleet: Fleet, load: LoadProfile, consts, basis: str = "on-demand", amortize_years: Optional[float] = None,
         **_) -> dict:
    price = fleet.usd_per_hour_unit.get(basis)
    if price is None:
        return {"no_price": True, "reason": f"{fleet.system} has no {basis} price", "basis": basis}
    usd_h = fleet.units * price
    out = {"no_price": False, "basis": basis, "units": fleet.units, "usd_per_hour": usd_h,
           "usd_per_day": usd_h * 24, **per_million(usd_h, load, fleet.output_len)}
    od, own = fleet.usd_per_hour_unit.get("on-demand"), fleet.usd_per_hour_unit.get("owned")
    if od is not None and own is not None:
        years = amortize_years if amortize_years is not None else float(consts.get("dedicated.amortize_years"))
        hpm = float(consts.get("dedicated.hours_per_month"))
        capex_h = fleet.usd_per_hour_unit["owned_capex"]
        energy_h = fleet.usd_per_hour_unit["owned_energy"]
        purchase = capex_h * years * 8760.0 * fleet.units
        m = break_even_month(purchase, od * fleet.units, energy_h * fleet.units, hpm)
        out["rent_vs_buy"] = {
            "purchase_usd": purchase, "on_demand_usd_per_month": od * fleet.units * hpm,
            "owned_energy_usd_per_month": energy_h * fleet.units * hpm, "break_even_month": m,
            "verdict": ("never: energy alone costs more than renting" if m is None else
                        f"buying pays off after {m:.1f} months" + (" (within the amortisation period)"
                                                                    if m <= years * 12 else
                                                                    " (after the amortisation period: rent)"))}
    return out
