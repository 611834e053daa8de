"""Spot fleet: the verified fleet on spot instances, interrupted as a Poisson process.

Each unit is interrupted at ``λ`` per hour (per provider, from the constants table).  On an
interruption the unit's in-flight requests (unit capacity × E2E; ``lost_work_fraction`` of their work lost) are lost
and re-queued on the others; an on-demand fallback unit is launched at once and serves until a
replacement spot unit is ready (re-acquire time + cold start), billed at on-demand for that
time; until the fallback is up (its cold start) the fleet runs one unit short.  Expected cost
per hour = units × spot $/h + units × λ × (replacement time) × on-demand $/h + the re-done work
at spot.  With λ = 0 this is dedicated capacity at the spot price.
"""

from __future__ import annotations

from typing import Optional

from .fleet import Fleet, LoadProfile, cold_start_s, per_million


def cost(fleet: Fleet, load: LoadProfile, consts, interruptions_per_hour: Optional[float] = None, **_) -> dict:
    spot = fleet.usd_per_hour_unit.get("spot")
    if spot is None:
        return {"no_price": True, "reason": f"no spot price recorded for {fleet.system}"}
    if interruptions_per_hour is None:
        lam, lam_key = consts.spot_rate_per_hour(fleet.provider)
    else:
        lam, lam_key = float(interruptions_per_hour), "set by the caller"
    od = fleet.usd_per_hour_unit.get("on-demand")
    fallback_price = od if od is not None else spot
    cs = cold_start_s(fleet, consts, "elastic", include_boot=True)
    replace_s = float(consts.get("spot.reacquire_s")) + cs["total_s"]
    consts.get("spot.fallback")
    n = fleet.units
    interrupts_h = n * lam
    fallback_usd_h = interrupts_h * replace_s / 3600.0 * fallback_price
    in_flight = fleet.unit_capacity_req_s * fleet.e2e_mean_s
    lost = float(consts.get("spot.lost_work_fraction"))
    redo_usd_h = interrupts_h * lost * fleet.e2e_mean_s / 3600.0 * spot  # the lost part of in-flight work re-run
    usd_h = n * spot + fallback_usd_h + redo_usd_h
    short_s = cs["total_s"]
    return {"no_price": False, "basis": f"spot ${spot:.4g}/h per unit, on-demand fallback", "usd_per_hour": usd_h,
            "usd_per_day": usd_h * 24, "interruptions_per_unit_hour": lam, "interruption_rate_from": lam_key,
            "interruptions_per_day": interrupts_h * 24, "fallback_usd_per_hour": fallback_usd_h,
            "redo_usd_per_hour": redo_usd_h, "replacement_s": replace_s,
            "requests_requeued_per_day": interrupts_h * 24 * in_flight,
            "requests_at_risk_per_day": interrupts_h * 24 * short_s * fleet.unit_capacity_req_s,
            "fallback_without_on_demand_price": od is None,
            **per_million(usd_h, load, fleet.output_len)}
