"""The error band of a prediction, from cross-validated residuals on published measurements.

Every prediction is assigned the class of published measurements it resembles (``gpu-throughput``,
``gpu-latency``, ``gpu-cluster``, ``cpu``, ``hybrid``, ``offload``, ``apple``: the classes of
``validation/published``).  Its band is the 10th–90th percentile of predicted/measured over that
class's *held-out* predictions (each published case predicted by factors fitted without it), so
it states how far real deployments of that kind have landed from our numbers.  Ratios are
oriented for throughputs: ``p10_ratio`` 0.8 means "10 % of real deployments ran at ≤ 0.8× what we
predicted"; for a latency the band is inverted.  When the prediction's device class and engine
family have no published measurement, the band is marked ``extrapolated``.
"""

from __future__ import annotations

from typing import Any, Optional

from moecap_sim.perf.efficiency import fitted_data


def prediction_class(placement: str, unified_memory: bool, nodes: int, batch_per_replica: int) -> str:
    """Which published class a prediction belongs to (see module docstring)."""
    if unified_memory:
        return "apple"
    if placement == "cpu-only":
        return "cpu"
    if placement == "cpu-experts":
        return "hybrid"
    if placement in ("expert-cache", "nvme"):
        return "offload"
    if nodes > 1:
        return "gpu-cluster"
    return "gpu-latency" if batch_per_replica <= 8 else "gpu-throughput"


def uncertainty(cls: str, group: str) -> Optional[dict[str, Any]]:
    """``{class, n, p10_ratio, p90_ratio, band_pct, basis, extrapolated}`` or None without a fit."""
    data = fitted_data()
    bands = data.get("bands") or {}
    band = bands.get(cls) or bands.get("all")
    if not band:
        return None
    covered = set(data.get("case_groups", {}).values())
    extrapolated = group not in covered
    lo, hi = band["p10_ratio"], band["p90_ratio"]
    return {"class": cls if cls in bands else "all", "n": band["n"], "p10_ratio": lo, "p90_ratio": hi,
            "band_pct": 100 * max(abs(1 - lo), abs(hi - 1)),
            "basis": "10th-90th percentile of predicted/measured over held-out predictions of published "
                     "measurements of this class (validation/published)",
            "extrapolated": extrapolated,
            **({"extrapolation": f"no published measurement covers {group}"} if extrapolated else {})}
