"""Memoized step times for the simulator, over any step-time predictor
(:mod:`moecap_sim.perf.predictor`; the analytical cost model by default).

Decode steps depend on (sequences, mean context): times are asked of the predictor at context
grid points and interpolated linearly (KV
reads and attention FLOPs are linear in context, so this is exact between grid points except
where a sliding window starts to cap).  Prefill passes are keyed by (sequences, tokens per
sequence rounded up to 32, prior context rounded up to 256).
"""

from __future__ import annotations

import bisect
import math
from functools import lru_cache

from typing import Union

from moecap_sim.perf.predictor import AnalyticalPredictor, StepTimePredictor
from moecap_sim.perf.step import CostContext

CONTEXT_GRID = (0, 256, 512, 1024, 2048, 4096, 8192, 16384, 32768, 65536, 131072, 262144)


class StepTable:
    """Memoizes a :class:`~moecap_sim.perf.predictor.StepTimePredictor` (or builds the
    analytical one from a cost context)."""

    def __init__(self, predictor: Union[StepTimePredictor, CostContext]):
        self.predictor = AnalyticalPredictor(predictor) if isinstance(predictor, CostContext) else predictor
        self._decode = lru_cache(maxsize=None)(self._decode_at)
        self._prefill = lru_cache(maxsize=None)(self._prefill_at)
        self.calls = 0

    def _decode_at(self, seqs: int, context: int) -> float:
        self.calls += 1
        return self.predictor.decode_s(seqs, context)

    def _prefill_at(self, seqs: int, tokens: int, context: int) -> float:
        self.calls += 1
        return self.predictor.prefill_s(seqs, tokens, context)

    def decode(self, seqs: int, mean_context: float) -> float:
        c = max(0.0, mean_context)
        i = min(bisect.bisect_right(CONTEXT_GRID, c), len(CONTEXT_GRID) - 1)
        lo, hi = CONTEXT_GRID[i - 1], CONTEXT_GRID[i]
        if c >= hi:
            return self._decode(seqs, hi) * c / hi if hi else self._decode(seqs, 0)
        t0, t1 = self._decode(seqs, lo), self._decode(seqs, hi)
        return t0 + (t1 - t0) * (c - lo) / (hi - lo)

    def prefill(self, seqs: int, tokens_per_seq: float, context: float = 0.0) -> float:
        tok = max(1, int(math.ceil(tokens_per_seq / 32.0) * 32))
        ctx = int(math.ceil(context / 256.0) * 256)
        return self._prefill(max(1, seqs), tok, ctx)
