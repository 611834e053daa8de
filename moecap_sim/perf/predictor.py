"""Step-time predictors: what the simulator asks of a cost model, behind one small interface.

A predictor answers two questions in seconds for one model replica: how long a decode step of
``seqs`` sequences takes at a mean context, and how long a prefill pass of ``seqs`` prompts of
``tokens_per_seq`` tokens takes after ``context`` cached tokens.  Today the implementation is the
analytical cost model (:func:`moecap_sim.perf.step.step_time`); a predictor backed by measured
step tables (profiled on real hardware, Vidur-style) plugs in by registering a class here,
without touching the simulator (:class:`moecap_sim.sim.steptable.StepTable` memoizes any
predictor).
"""

from __future__ import annotations

from typing import Callable, Protocol

from moecap_sim.errors import unknown_name
from moecap_sim.perf.step import CostContext, step_time


class StepTimePredictor(Protocol):
    """Seconds per forward pass of one replica."""

    source: str  # "silicon" (analytical, from specs) or "empirical" (measured tables)

    def decode_s(self, seqs: int, context: float) -> float: ...

    def prefill_s(self, seqs: int, tokens_per_seq: int, context: float) -> float: ...


class AnalyticalPredictor:
    """The per-operator roofline cost model of :mod:`moecap_sim.perf.step`."""

    source = "silicon"

    def __init__(self, ctx: CostContext):
        self.ctx = ctx

    def decode_s(self, seqs: int, context: float) -> float:
        return step_time(self.ctx, "decode", seqs, 1, context).time_s

    def prefill_s(self, seqs: int, tokens_per_seq: int, context: float) -> float:
        return step_time(self.ctx, "prefill", seqs, tokens_per_seq, context).time_s

    def mixed_s(self, seqs: int, context: float, prefill_tokens: int, prefill_seqs: int,
                prefill_context: float) -> float:
        """A decode pass with prefill chunks riding in it (chunked prefill mixed with decode)."""
        return step_time(self.ctx, "decode", seqs, 1, context, prefill_tokens=prefill_tokens,
                         prefill_seqs=prefill_seqs, prefill_context=prefill_context).time_s


#: predictor kinds by name; a measured-table predictor registers itself here
PREDICTORS: dict[str, Callable[[CostContext], StepTimePredictor]] = {"analytical": AnalyticalPredictor}


def make_predictor(kind: str, ctx: CostContext) -> StepTimePredictor:
    """A predictor of the registered ``kind`` for the resolved cost context."""
    if kind not in PREDICTORS:
        raise unknown_name("step-time predictor", kind, PREDICTORS)
    return PREDICTORS[kind](ctx)
