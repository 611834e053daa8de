"""What every scenario needs: the verified fleet, the day's load profile, a cold start, and the
autoscaler the elastic and serverless models share."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

import numpy as np

from moecap_sim.perf.cost import usd_per_million


@dataclass(frozen=True)
class Fleet:
    """A verified configuration: ``units`` system units meet the SLOs at the peak rate.

    Prices are $/h of one unit per basis (None: no such price).  ``e2e_mean_s`` is the simulated
    mean request latency (s) at the peak load; ``weights_gb`` what a cold start loads."""

    system: str
    units: int
    peak_rate_req_s: float
    output_len: int
    usd_per_hour_unit: dict
    power_w_unit: float
    weights_gb: float
    e2e_mean_s: float
    provider: Optional[str] = None
    nvme_gb_s: Optional[float] = None
    host_link_gb_s: Optional[float] = None

    @property
    def unit_capacity_req_s(self) -> float:
        """Requests/s one unit carries within the SLOs (the verified peak split evenly)."""
        return self.peak_rate_req_s / self.units


@dataclass(frozen=True)
class LoadProfile:
    """The day's load: ``rate(t) = peak × (trough + (1 − trough) × (1 − cos 2πt/P) / 2)`` req/s —
    ``trough`` × peak at t = 0 (night), the peak at t = P/2."""

    peak_req_s: float
    trough_fraction: float
    period_s: float = 86400.0

    def rate(self, t_s: np.ndarray) -> np.ndarray:
        f = self.trough_fraction + (1 - self.trough_fraction) * (1 - np.cos(2 * np.pi * t_s / self.period_s)) / 2
        return self.peak_req_s * f

    @property
    def mean_req_s(self) -> float:
        return self.peak_req_s * (self.trough_fraction + (1 - self.trough_fraction) / 2)


def per_million(usd_per_hour: Optional[float], load: LoadProfile, output_len: int) -> dict:
    """$/M output tokens at the day's mean load (idle capacity is paid for) and at the peak."""
    if usd_per_hour is None:
        return {"usd_per_million_output_tokens": None, "usd_per_million_output_tokens_at_peak": None}
    return {"usd_per_million_output_tokens": usd_per_million(usd_per_hour, load.mean_req_s * output_len),
            "usd_per_million_output_tokens_at_peak": usd_per_million(usd_per_hour, load.peak_req_s * output_len)}


def cold_start_s(fleet: Fleet, consts, scenario: str, *, include_boot: bool) -> dict:
    """Seconds from launch to serving: [VM boot] + weight bytes / load bandwidth + engine start.
    Load bandwidth = min(storage, host link): the system's NVMe read bandwidth where its spec
    gives one (weights cached on the machine's local disk), else the scenario's constant
    (elastic: ``elastic.storage_gb_s``; serverless: ``serverless.network_gb_s``, a cold worker
    pulling from a model store)."""
    if fleet.nvme_gb_s:
        store, store_src = fleet.nvme_gb_s, f"{fleet.system} spec host.nvme_bandwidth_gb_s"
    else:
        key = "serverless.network_gb_s" if scenario == "serverless" else "elastic.storage_gb_s"
        store, store_src = float(consts.get(key)), key
    bw = min(store, fleet.host_link_gb_s) if fleet.host_link_gb_s else store
    load_s = fleet.weights_gb / bw if bw > 0 else 0.0
    engine_s = float(consts.get(f"{scenario}.engine_start_s"))
    boot_s = float(consts.get("elastic.vm_boot_s")) if include_boot else 0.0
    return {"total_s": boot_s + load_s + engine_s, "vm_boot_s": boot_s, "weights_load_s": load_s,
            "engine_start_s": engine_s, "load_gb_s": bw, "load_bandwidth_from": store_src
            + (" (capped by the host link)" if fleet.host_link_gb_s and fleet.host_link_gb_s < store else "")}


def run_autoscaler(needed: np.ndarray, step_s: float, ready_delay_s: float, scale_down_after_s: float,
                   min_units: int, max_units: int) -> dict:
    """A reactive autoscaler over ``needed[i]`` units at step i (length ``step_s`` s).

    Launches when fewer units are active (ready + starting) than needed; a launched unit is billed
    from launch and serves after ``ready_delay_s``; surplus units stop once the surplus has lasted
    ``scale_down_after_s``.  Returns billed unit-seconds and a mask of under-provisioned steps
    (fewer ready units than needed)."""
    needed = np.clip(needed, min_units, max_units)
    ready = min_units
    pending: list[float] = []  # ready times of starting units
    low_since: Optional[float] = None
    billed = 0.0
    under = np.zeros(len(needed), dtype=bool)
    launches = 0
    for i, want in enumerate(needed):
        t = i * step_s
        if pending:
            done = [x for x in pending if x <= t]
            if done:
                ready += len(done)
                pending = [x for x in pending if x > t]
        active = ready + len(pending)
        if want > active:
            pending += [t + ready_delay_s] * int(want - active)
            launches += int(want - active)
            low_since = None
        elif want < active:
            low_since = t if low_since is None else low_since
            if t - low_since >= scale_down_after_s:
                surplus = int(active - want)
                drop_pending = min(surplus, len(pending))
                if drop_pending:
                    pending = sorted(pending)[:len(pending) - drop_pending]
                ready -= surplus - drop_pending
                low_since = None
        else:
            low_since = None
        if pending and min(pending) <= t:  # zero delay: ready within the step
            ready += sum(1 for x in pending if x <= t)
            pending = [x for x in pending if x > t]
        billed += (ready + len(pending)) * step_s
        under[i] = ready < want
    return {"unit_seconds": billed, "under": under, "launches": launches}


def needed_units_fluid(rate: np.ndarray, capacity_req_s: float) -> np.ndarray:
    """Units needed to carry ``rate`` at ``capacity_req_s`` per unit (ceil)."""
    return np.ceil(rate / capacity_req_s - 1e-9).astype(int)


def hours(x_s: float) -> float:
    return x_s / 3600.0


def ceil_div(a: float, b: float) -> int:
    return int(math.ceil(a / b - 1e-12))
