"""Serverless endpoint: scale to zero, cold starts, per-second billing.

Requests arrive as a Poisson process following the day's load (seeded); each occupies its unit
for the simulated mean E2E latency, and a unit holds as many at once as it did in the DES at the
verified peak (Little's law: unit capacity × E2E).  Units start when the requests in flight need
them — cold start = weight bytes / the spec's NVMe bandwidth (weights cached on the worker's
disk; a model-store network constant where the spec has none; capped by the host link) + engine
start — are billed per second from start, and stop after ``keep_warm_s`` without work.
Requests arriving while fewer units are ready than needed waited for a cold start (counted).
At a constant high load the fleet stays warm and the cost converges to dedicated at the same
price; at low load it pays only for busy time.
"""

from __future__ import annotations

import numpy as np

from .fleet import Fleet, LoadProfile, cold_start_s, per_million, run_autoscaler


def cost(fleet: Fleet, load: LoadProfile, consts, seed: int = 0, **_) -> dict:
    od = fleet.usd_per_hour_unit.get("on-demand")
    if od is None:
        return {"no_price": True, "reason": f"{fleet.system} has no on-demand price to bill per second"}
    price = od * float(consts.get("serverless.price_premium"))
    step = float(consts.get("serverless.step_s"))
    t = np.arange(0.0, load.period_s, step)
    rate = load.rate(t)
    rng = np.random.default_rng(seed)
    arrivals = rng.poisson(rate * step)
    hold = fleet.e2e_mean_s / step  # steps each request stays in flight (fractional tail)
    kernel = np.r_[np.ones(int(hold)), [hold - int(hold)]] if hold - int(hold) > 1e-9 else np.ones(max(1, int(hold)))
    in_flight = np.convolve(arrivals, kernel, mode="full")[:len(arrivals)]
    per_unit = max(1.0, fleet.unit_capacity_req_s * fleet.e2e_mean_s)
    needed = np.ceil(in_flight / per_unit - 1e-9).astype(int)
    cs = cold_start_s(fleet, consts, "serverless", include_boot=False)
    run = run_autoscaler(needed, step, cs["total_s"], float(consts.get("serverless.keep_warm_s")), 0, fleet.units)
    usd_day = run["unit_seconds"] * price / 3600.0
    usd_h = usd_day / (load.period_s / 3600.0)
    n_req = int(arrivals.sum())
    hit = int(arrivals[run["under"]].sum())
    return {"no_price": False, "basis": f"per-second at on-demand/3600 × {consts.get('serverless.price_premium'):g}",
            "usd_per_hour": usd_h, "usd_per_day": usd_day, "unit_hours_per_day": run["unit_seconds"] / 3600.0,
            "cold_start_s": cs, "cold_starts_per_day": run["launches"], "requests_per_day": n_req,
            "requests_hit_by_cold_start": hit, "cold_start_hit_fraction": hit / n_req if n_req else 0.0,
            **per_million(usd_h, load, fleet.output_len)}
