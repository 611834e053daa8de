"""The routing-profile interface used by the cost model, and the synthetic fallback."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional, Protocol, runtime_checkable


@runtime_checkable
class RoutingProfile(Protocol):
    """What the cost model needs to know about a model's expert routing.

    ``kind`` is one of ``"trace"`` (replaying a real trace), ``"profile"`` (statistics fitted to a
    real trace) or ``"synthetic"``; ``source`` is a human-readable provenance string.
    Layers are indexed over MoE layers only (0 = first MoE layer); ``layer=None`` asks for the
    mean over layers.
    """

    kind: str
    source: str
    num_experts: int
    top_k: int

    def expected_distinct_experts(self, tokens: int, layer: Optional[int] = None) -> float:
        """Expected number of distinct routed experts activated by ``tokens`` tokens of
        different requests in one forward pass (1 ≤ result ≤ num_experts)."""
        ...

    def ep_max_rank_load(self, tokens: int, ep_size: int, layer: Optional[int] = None) -> float:
        """Expected token-expert assignments on the most loaded of ``ep_size`` ranks
        (experts placed contiguously, ``num_experts/ep_size`` per rank), for ``tokens`` tokens.
        The balanced value is ``tokens*top_k/ep_size``."""
        ...

    def ep_max_rank_distinct(self, tokens: int, ep_size: int, layer: Optional[int] = None) -> float:
        """Expected distinct experts activated on the most loaded rank (bytes read there)."""
        ...

    def cache_hit_rate(self, cached_experts_per_layer: int) -> float:
        """Probability that a routed expert needed by a decode token is already resident in an
        LRU cache holding ``cached_experts_per_layer`` experts of that layer."""
        ...


@dataclass(frozen=True)
class UniformRouting:
    """Synthetic assumption: every token picks ``top_k`` distinct experts uniformly at random,
    independently of other tokens and of its own previous tokens.

    Expected distinct experts for B tokens: ``E·(1 − (1 − k/E)^B)``.  This is the assumption
    most other simulators make; real routing is skewed and touches fewer experts, so it is an
    upper bound on bytes read in practice.
    """

    num_experts: int
    top_k: int
    kind: str = "synthetic"
    source: str = "synthetic: uniform independent top-k routing (no trace for this model)"

    def expected_distinct_experts(self, tokens: int, layer: Optional[int] = None) -> float:
        if tokens <= 0 or self.num_experts <= 0:
            return 0.0
        e, k = self.num_experts, min(self.top_k, self.num_experts)
        return e * (1.0 - (1.0 - k / e) ** tokens)

    def ep_max_rank_load(self, tokens: int, ep_size: int, layer: Optional[int] = None) -> float:
        if ep_size <= 1:
            return float(tokens * self.top_k)
        n = tokens * self.top_k
        mean = n / ep_size
        # Expected maximum of ep_size ~binomial loads: mean + sigma·sqrt(2 ln P) (Gaussian approx.)
        p = 1.0 / ep_size
        sigma = math.sqrt(n * p * (1 - p))
        return min(float(n), mean + sigma * math.sqrt(2 * math.log(ep_size)))

    def ep_max_rank_distinct(self, tokens: int, ep_size: int, layer: Optional[int] = None) -> float:
        # Uniform routing: every rank sees the same expected fraction of its experts.
        return self.expected_distinct_experts(tokens) / max(1, ep_size)

    def cache_hit_rate(self, cached_experts_per_layer: int) -> float:
        return max(0.0, min(1.0, cached_experts_per_layer / self.num_experts))


def get_routing_profile(model_name: str, num_experts: int, top_k: int, num_moe_layers: Optional[int] = None,
                        num_shared_experts: int = 0, synthetic: str = "transfer") -> RoutingProfile:
    """The best routing information we have for ``model_name``.

    1. a shipped profile fitted to a real trace of the model (``kind == "profile"``), when its
       experts/top-k match;
    2. else a synthetic profile whose skew, temporal reuse and in-batch correlation are transferred
       from the real-trace fits (``kind == "synthetic"``, ``source`` says so);
       ``synthetic="uniform"`` asks for :class:`UniformRouting` instead;
    3. :class:`UniformRouting` when no fits are shipped.
    """
    try:
        from moecap_sim.routing.profiles import load_shipped_profile, synthetic_profile
    except ImportError:  # pragma: no cover - partial installs
        return UniformRouting(num_experts=num_experts, top_k=top_k)
    name = str(model_name or "").strip().lower()
    prof = load_shipped_profile(name) if name else None
    if prof is not None and (prof.num_experts, prof.top_k) == (int(num_experts), int(top_k)):
        return prof
    if synthetic == "uniform":
        return UniformRouting(num_experts=num_experts, top_k=top_k)
    if num_moe_layers is None:
        try:
            from moecap_sim.traces.known import model_geometry

            geo = model_geometry(name) if name else None
        except Exception:  # pragma: no cover
            geo = None
        num_moe_layers = geo["num_moe_layers"] if geo else 32
    syn = synthetic_profile(int(num_experts), int(top_k), int(num_moe_layers), int(num_shared_experts), name or None)
    if syn is not None:
        return syn
    return UniformRouting(num_experts=num_experts, top_k=top_k)
