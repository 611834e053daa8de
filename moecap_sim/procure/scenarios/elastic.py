"""Elastic fleet: on-demand replicas follow the day's load with a provisioning delay.

Each minute the autoscaler sets the replicas the current rate needs (rate / the unit's verified
capacity, at least ``min_replicas``, at most the verified peak fleet); a new replica is billed
from launch and serves after VM boot + weight load + engine start; surplus replicas stop after a
cooldown.  Cost integrates billed replica-seconds at the on-demand price.  Requests arriving
while fewer replicas are ready than the load needs are counted as at risk of missing the SLO
(the DES verified the SLO only with the full capacity).  Never costs more than dedicated
peak provisioning at the same price: the fleet never exceeds the verified peak.
"""

from __future__ import annotations

import numpy as np

from .fleet import Fleet, LoadProfile, cold_start_s, needed_units_fluid, per_million, run_autoscaler


def cost(fleet: Fleet, load: LoadProfile, consts, **_) -> dict:
    price = fleet.usd_per_hour_unit.get("on-demand")
    if price is None:
        return {"no_price": True, "reason": f"{fleet.system} has no on-demand price (elastic rents by the second)"}
    step = float(consts.get("elastic.decision_interval_s"))
    t = np.arange(0.0, load.period_s, step)
    rate = load.rate(t)
    needed = needed_units_fluid(rate, fleet.unit_capacity_req_s)
    cs = cold_start_s(fleet, consts, "elastic", include_boot=True)
    consts.get("elastic.billing_granularity_s")
    run = run_autoscaler(needed, step, cs["total_s"], float(consts.get("elastic.scale_down_cooldown_s")),
                         int(consts.get("elastic.min_replicas")), fleet.units)
    usd_day = run["unit_seconds"] / 3600.0 * price
    usd_h = usd_day / (load.period_s / 3600.0)
    req_day = float(np.sum(rate) * step)
    at_risk = float(np.sum(rate[run["under"]]) * step)
    return {"no_price": False, "basis": "on-demand, billed per second", "usd_per_hour": usd_h, "usd_per_day": usd_day,
            "replica_hours_per_day": run["unit_seconds"] / 3600.0, "peak_replicas": fleet.units,
            "min_replicas": int(np.min(np.clip(needed, 1, fleet.units))), "launches_per_day": run["launches"],
            "provisioning_delay_s": cs, "under_provisioned_minutes_per_day": float(np.sum(run["under"]) * step / 60.0),
            "requests_at_risk_per_day": at_risk, "requests_at_risk_fraction": at_risk / req_day if req_day else 0.0,
            **per_million(usd_h, load, fleet.output_len)}
