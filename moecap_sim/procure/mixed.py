"""Heterogeneous fleets: two verified configurations mixed to round the unit count down.

A verified configuration needing 2 units where 1.2 would do pays for 0.8 of an idle unit; a unit
of a cheaper configuration may cover that remainder.  Capacities are the verified ones (peak
rate / units, per unit); a mixed fleet ``k × A + m × B`` is a candidate when ``k·cap_A + m·cap_B
≥ peak`` and it costs less than the cheapest single-configuration fleet.  Candidates are then
verified in the DES with a capacity-weighted split of the stream (dedicated scenario only: the
other scenario models assume identical units).
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class Option:
    """One configuration of a mixed fleet: ``usd_per_hour`` per unit, ``capacity_req_s`` per unit."""

    key: str
    units: int
    usd_per_hour: float
    capacity_req_s: float


def mixed_fleets(options: list[Option], peak_req_s: float, limit: int = 3) -> list[tuple[float, list[tuple[Option, int]]]]:
    """The ``limit`` cheapest two-configuration fleets cheaper than every single-configuration
    fleet (``(usd_per_hour, [(option, units), ...])``, cheapest first)."""
    if not options:
        return []
    best_pure = min(o.units * o.usd_per_hour for o in options)
    found = []
    for a in options:
        for b in options:
            if a.key == b.key:
                continue
            for k in range(1, a.units):
                rest = peak_req_s - k * a.capacity_req_s
                if rest <= 0:
                    continue
                m = math.ceil(rest / b.capacity_req_s - 1e-9)
                cost = k * a.usd_per_hour + m * b.usd_per_hour
                if cost < best_pure - 1e-9:
                    found.append((cost, [(a, k), (b, m)]))
    seen, out = set(), []
    for cost, parts in sorted(found, key=lambda x: (x[0], [p[0].key for p in x[1]])):
        sig = frozenset((o.key, n) for o, n in parts)
        if sig not in seen:
            seen.add(sig)
            out.append((cost, parts))
    return out[:limit]
