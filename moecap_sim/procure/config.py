"""The plan's configuration (one frozen dataclass) and percentile SLOs."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

from moecap_sim.errors import UserError

SCENARIOS = ("dedicated", "elastic", "serverless", "spot")
#: percentiles an SLO may bound; "mean" keeps the old --slo-ttft / --slo-tpot meaning
STATS = ("mean", "p50", "p90", "p99")
METRICS = ("ttft_s", "tpot_s", "e2e_s")


@dataclass(frozen=True)
class SLO:
    """One bound: ``metric`` (ttft_s | tpot_s | e2e_s, seconds) at ``stat`` (mean | p50 | p90 |
    p99) ≤ ``bound_s``, judged on the simulated requests."""

    metric: str
    stat: str
    bound_s: float

    @property
    def name(self) -> str:
        return f"{self.metric[:-2]}_{self.stat}"

    def met(self, simulated: dict) -> bool:
        v = (simulated.get(self.metric) or {}).get(self.stat)
        return v is not None and v <= self.bound_s


@dataclass(frozen=True)
class PlanConfig:
    """What to plan for.  Rates in requests/s (``rate_req_s`` is the PEAK of the day), lengths in
    tokens (means of the workload), prices in USD."""

    model: str
    rate_req_s: float
    input_len: int = 1024
    output_len: int = 256
    slos: tuple[SLO, ...] = ()
    systems: Optional[tuple[str, ...]] = None
    precisions: tuple[str, ...] = ("native", "fp8", "int4")
    engines: tuple[Optional[str], ...] = (None,)  # None: the engine predict picks for the system
    max_nodes: int = 2
    scenarios: tuple[str, ...] = ("dedicated",)
    dedicated_basis: str = "on-demand"  # or "owned"
    amortize_years: Optional[float] = None  # None: the constants table
    usd_per_kwh: Optional[float] = None
    pue: Optional[float] = None
    workload: str = "azure-conv"
    requests: Optional[int] = None
    seed: int = 0
    verify_top: int = 8  # verified candidates wanted (stage 2)
    max_des_runs: int = 40
    max_systems: int = 64
    min_accuracy: Optional[float] = None
    top: int = 10
    constants: dict = field(default_factory=dict)
    dask: Optional[str] = None

    def __post_init__(self) -> None:
        bad = [s for s in self.scenarios if s not in SCENARIOS]
        if bad:
            raise UserError(f"--scenario {bad[0]}: unknown scenario (known: {', '.join(SCENARIOS)})")
        if not self.scenarios:
            raise UserError("--scenario: give at least one scenario")
        if self.dedicated_basis not in ("on-demand", "owned"):
            raise UserError(f"--pricing {self.dedicated_basis}: dedicated capacity is on-demand or owned "
                            "(spot is its own scenario: --scenario spot)")


def slos_from_flags(ttft_mean: Optional[float] = None, tpot_mean: Optional[float] = None,
                    **percentiles: Optional[float]) -> tuple[SLO, ...]:
    """SLOs from keyword flags: ``slo_ttft_p99_s=0.5`` → ttft_s p99 ≤ 0.5.  ``ttft_mean`` /
    ``tpot_mean`` are the old ``--slo-ttft`` / ``--slo-tpot`` (bounds on the simulated mean)."""
    out = []
    if ttft_mean is not None:
        out.append(SLO("ttft_s", "mean", float(ttft_mean)))
    if tpot_mean is not None:
        out.append(SLO("tpot_s", "mean", float(tpot_mean)))
    for key, v in percentiles.items():
        if v is None:
            continue
        parts = key.split("_")  # slo_ttft_p99_s
        if len(parts) != 4 or parts[0] != "slo" or f"{parts[1]}_s" not in METRICS or parts[2] not in STATS:
            raise UserError(f"unknown SLO '{key}' (use slo_<ttft|tpot|e2e>_<p50|p90|p99>_s)")
        if not (v > 0 and v < 1e6):
            raise UserError(f"--slo-{parts[1]}-{parts[2]} = {v!r}: must be a positive number of seconds")
        out.append(SLO(f"{parts[1]}_s", parts[2], float(v)))
    return tuple(out)


def tightest(slos: tuple[SLO, ...], metric: str) -> Optional[float]:
    """The smallest bound on ``metric`` (the steady-state target stage 1 searches batch sizes for)."""
    vals = [s.bound_s for s in slos if s.metric == metric]
    return min(vals) if vals else None
