"""One replica's routing replay: routed tokens → per-layer counts → cache lookups → step cost.

Per pass: the router (:mod:`moecap_sim.sim.routing`) gives the token count of every (MoE layer,
expert); from it, distinct experts per layer, the most loaded EP rank's token-expert assignments
and distinct experts (experts placed contiguously, ``experts/ep`` per rank, as vLLM/SGLang do),
and, with an expert cache (:mod:`moecap_sim.sim.experts`), the experts it misses.  The cost is
the one cost model evaluated on those counts (:class:`~moecap_sim.sim.steptable.ReplayStepTable`).
"""

from __future__ import annotations

from typing import Optional, Sequence

import numpy as np

from moecap_sim.sim.experts import ExpertCache
from moecap_sim.sim.steptable import ReplayStepTable


class Replay:
    """Routing replay of one replica; accumulates what it saw (distinct experts, EP imbalance)."""

    def __init__(self, router, table: ReplayStepTable, ep: int = 1, cache: Optional[ExpertCache] = None):
        self.router, self.table, self.ep, self.cache = router, table, max(1, int(ep)), cache
        e = router.num_experts
        sizes = [len(x) for x in np.array_split(np.arange(e), self.ep)]
        self._rank_starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
        self.passes = 0
        self.distinct_sum = 0.0  # mean distinct experts per layer, summed over passes
        self.imbalance_sum = 0.0  # mean over layers of max/mean rank load, summed over passes with tokens
        self.imbalance_n = 0

    def start(self, seq: int) -> None:
        self.router.start(seq)

    def finish(self, seq: int) -> None:
        self.router.finish(seq)

    def cost(self, phase: str, tokens: Sequence[tuple[int, int]], seqs: int, tokens_per_seq: float,
             context: float, prefill_tokens: int = 0, prefill_seqs: int = 1,
             prefill_context: float = 0.0) -> tuple[float, float, float]:
        """(seconds, link seconds, link bytes) of one pass whose routed tokens are
        ``tokens`` = (sequence, tokens) pairs; ``seqs``/``tokens_per_seq``/``context`` shape it
        as the cost model expects (decode: ``context`` = mean context)."""
        keys, weights = self.route(tokens)
        return self.time(keys, weights, phase, seqs, tokens_per_seq, context, prefill_tokens, prefill_seqs,
                         prefill_context)

    def route(self, tokens: Sequence[tuple[int, int]]):
        """Route one pass's tokens (of every DP rank of an EP group that steps together); the
        per-layer count keys of the cost model and how many layers have each."""
        # expert identities per token matter only to a cache that can keep some experts but not all
        need_ids = self.cache is not None and 0 < self.cache.capacity < self.router.num_experts
        counts = self.router.counts(tokens, need_ids=need_ids, need_loads=self.ep > 1)
        active = counts if counts.dtype == bool else counts > 0
        distinct = active.sum(axis=1)
        self.passes += 1
        self.distinct_sum += int(distinct.sum()) / len(distinct)
        if self.ep > 1:
            loads = np.add.reduceat(counts, self._rank_starts, axis=1)
            rank_load = loads.max(axis=1)
            rank_distinct = np.add.reduceat(active.astype(np.int64), self._rank_starts, axis=1).max(axis=1)
            mean = loads.mean(axis=1)
            ok = mean > 0
            if ok.any():
                self.imbalance_sum += float(np.mean(rank_load[ok] / mean[ok]))
                self.imbalance_n += 1
        else:
            rank_load = rank_distinct = None
        fetched = self.cache.access(active) if self.cache is not None else None
        if self.ep > 1:  # the EP cost depends on the most loaded rank only: keep the memo keys few
            distinct = np.zeros_like(distinct)
        return self.table.keys(distinct, rank_distinct, rank_load, fetched)

    def time(self, keys, weights, phase: str, seqs: int, tokens_per_seq: float, context: float,
             prefill_tokens: int = 0, prefill_seqs: int = 1,
             prefill_context: float = 0.0) -> tuple[float, float, float]:
        """(seconds, link seconds, link bytes) of a pass of this shape at routed counts."""
        if phase == "decode":
            return self.table.decode(seqs, context, keys, weights, prefill_tokens, prefill_seqs, prefill_context)
        return self.table.prefill(seqs, tokens_per_seq, context, keys, weights)

    def summary(self) -> dict:
        return {"passes": self.passes,
                "mean_distinct_experts_per_layer": self.distinct_sum / self.passes if self.passes else None,
                "ep_imbalance": self.imbalance_sum / self.imbalance_n if self.imbalance_n else None}
