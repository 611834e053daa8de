"""Expert caches as state in simulated time, and the link their misses travel over.

An offloaded deployment (``expert-cache``/``nvme`` placements: MoE-Infinity, HF accelerate)
keeps every routed expert in host memory and a cache of ``capacity`` experts per MoE layer on
each device (the memory planner's ``expert_cache_experts_per_layer``; per layer, as the planner
sizes it).  Every pass, each layer's activated experts are looked up: a hit is free, a miss is
fetched over the host link and becomes resident, evicting by the policy (registry
:data:`POLICIES`: ``lru``, ``lfu``).  Counts are in experts (per layer and pass); bytes follow
from the cost model.  The link is a SimPy :class:`~simpy.resources.resource.Resource` shared by
every fetch that uses it; its busy time is reported as a fraction of the run.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import simpy


class ExpertCache:
    """Per-layer expert cache of ``capacity`` experts (``[layers, experts]`` state).
    :meth:`access` takes one pass's activated-expert mask and returns the misses per layer."""

    policy = "base"

    def __init__(self, layers: int, experts: int, capacity: int):
        self.capacity = max(0, min(int(capacity), experts))
        self.resident = np.zeros((layers, experts), dtype=bool)
        self.score = np.zeros((layers, experts), dtype=np.float64)  # eviction key: lowest goes first
        self.clock = 0
        self.hits = 0
        self.misses = 0
        self.history: list[tuple[int, int]] = []  # cumulative (hits, misses) after each pass

    def _touch(self, active: np.ndarray) -> None:
        raise NotImplementedError

    def access(self, active: np.ndarray) -> np.ndarray:
        """Look up one pass's ``active[layers, experts]`` experts; return misses per layer."""
        self.clock += 1
        miss = active & ~self.resident
        m = miss.sum(axis=1)
        self.misses += int(m.sum())
        self.hits += int(active.sum()) - int(m.sum())
        self.history.append((self.hits, self.misses))
        self._touch(active)
        self.resident |= active
        over = self.resident.sum(axis=1) - self.capacity
        if over.max() > 0:
            # evict the lowest-scored residents; this pass's experts only once nothing else is left
            key = np.where(self.resident, self.score + np.where(active, 1e18, 0.0), np.inf)
            order = np.argsort(key, axis=1, kind="stable")
            rank = np.empty_like(order)
            np.put_along_axis(rank, order, np.arange(order.shape[1])[None, :].repeat(len(order), 0), axis=1)
            self.resident &= ~(rank < over[:, None])
        return m

    @property
    def hit_rate(self) -> float:
        n = self.hits + self.misses
        return self.hits / n if n else float("nan")


class LRUCache(ExpertCache):
    """Least recently used expert goes first."""

    policy = "lru"

    def _touch(self, active: np.ndarray) -> None:
        self.score[active] = self.clock


class LFUCache(ExpertCache):
    """Least frequently used expert goes first (ties: least recently used)."""

    policy = "lfu"

    def _touch(self, active: np.ndarray) -> None:
        self.score[active] = np.floor(self.score[active]) + 1.0 + self.clock * 1e-12


POLICIES: dict[str, Callable[[int, int, int], ExpertCache]] = {"lru": LRUCache, "lfu": LFUCache}


def make_cache(policy: str, layers: int, experts: int, capacity: int) -> ExpertCache:
    from moecap_sim.errors import UserError

    if policy not in POLICIES:
        raise UserError(f"unknown --cache-policy '{policy}': use {' or '.join(POLICIES)}")
    return POLICIES[policy](layers, experts, capacity)


class Link:
    """A host→device (or NVMe) link as a SimPy resource: one transfer at a time; ``busy_s``
    accumulates the time it carried data."""

    def __init__(self, env: simpy.Environment, name: str):
        self.env = env
        self.name = name
        self.resource = simpy.Resource(env, capacity=1)
        self.busy_s = 0.0
        self.bytes = 0.0

    def transfer(self, seconds: float, nbytes: float):
        """SimPy process: wait for the link, hold it ``seconds``."""
        with self.resource.request() as req:
            yield req
            yield self.env.timeout(seconds)
            self.busy_s += seconds
            self.bytes += nbytes
