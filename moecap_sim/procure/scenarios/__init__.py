"""Cost scenarios for a verified fleet: one small documented model per module.

``dedicated`` (on-demand or owned, rent-vs-buy break-even), ``elastic`` (replicas follow the
diurnal load with a provisioning delay), ``serverless`` (scale to zero, cold starts, per-second
billing), ``spot`` (Poisson interruptions, lost work re-queued, on-demand fallback).  Every
scenario reads its constants through :class:`moecap_sim.procure.constants.Constants` (each with
a source or marked as an assumption) and prices through the one cost model
(:mod:`moecap_sim.perf.cost`): $/M tokens always comes from ``usd_per_million``.
A scenario a system has no price for returns ``{"no_price": True, "reason": ...}``.
"""

from __future__ import annotations

from .fleet import Fleet, LoadProfile
from . import dedicated, elastic, serverless, spot

MODELS = {"dedicated": dedicated.cost, "elastic": elastic.cost, "serverless": serverless.cost, "spot": spot.cost}


def evaluate(name: str, fleet: Fleet, load: LoadProfile, consts, **kw) -> dict:
    """The cost of ``fleet`` under scenario ``name`` (see each module)."""
    return MODELS[name](fleet, load, consts, **kw)
