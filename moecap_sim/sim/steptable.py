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

from typing import Optional, Union

import numpy as np

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
        self._mixed = lru_cache(maxsize=None)(self._mixed_at)
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

    def decode_run_ends(self, seqs: int, context: float, steps: int, start: float = 0.0) -> list[float]:
        """End times of ``steps`` back-to-back decode steps starting at ``start``, step ``i`` at
        context ``context + i``: within one context-grid segment the step time is linear in
        the context, so the steps are summed in closed form; across segments one by one."""
        c0, c1 = max(0.0, context), max(0.0, context + steps - 1)
        seg = bisect.bisect_right(CONTEXT_GRID, c0)
        if steps > 2 and seg == bisect.bisect_right(CONTEXT_GRID, c1) and seg < len(CONTEXT_GRID):
            t0, t1 = self.decode(seqs, c0), self.decode(seqs, c1)
            per = t0 + (t1 - t0) * np.arange(steps) / (steps - 1)
            return (start + np.cumsum(per)).tolist()
        ends, t = [], start
        for i in range(steps):
            t += self.decode(seqs, context + i)
            ends.append(t)
        return ends

    def prefill(self, seqs: int, tokens_per_seq: float, context: float = 0.0) -> float:
        tok = max(1, int(math.ceil(tokens_per_seq / 32.0) * 32))
        ctx = int(math.ceil(context / 256.0) * 256)
        return self._prefill(max(1, seqs), tok, ctx)

    def _mixed_at(self, seqs: int, context: int, mix: tuple) -> float:
        self.calls += 1
        return self.predictor.mixed_s(seqs, context, *mix)

    def mixed(self, seqs: int, mean_context: float, prefill_tokens: int, prefill_seqs: int,
              prefill_context: float) -> float:
        """A decode pass of ``seqs`` sequences with ``prefill_tokens`` of ``prefill_seqs`` prompt
        chunks riding in it (chunked prefill mixed with decode), interpolated in the context."""
        if prefill_tokens <= 0:
            return self.decode(seqs, mean_context)
        c = max(0.0, mean_context)
        i = min(bisect.bisect_right(CONTEXT_GRID, c), len(CONTEXT_GRID) - 1)
        lo, hi = CONTEXT_GRID[i - 1], CONTEXT_GRID[i]
        total = 0.0
        for mix, w in _mixes(prefill_tokens, prefill_seqs, prefill_context):
            if c >= hi:
                t = self._mixed(seqs, hi, mix) * c / hi if hi else self._mixed(seqs, 0, mix)
            else:
                t0, t1 = self._mixed(seqs, lo, mix), self._mixed(seqs, hi, mix)
                t = t0 + (t1 - t0) * (c - lo) / (hi - lo)
            total += w * t
        return total


def _token_grid(tokens: float) -> tuple[int, int, float]:
    """Grid points around a prefill chunk of ``tokens`` (every 32 tokens up to 256, 128 up to
    2048, 512 beyond) and the interpolation weight of the upper one: pass costs are smooth in
    the token count (GEMM FLOPs linear, weight bytes constant)."""
    step = 32 if tokens <= 256 else (128 if tokens <= 2048 else 512)
    lo = int(tokens // step * step)
    if lo == tokens:
        return lo, lo, 0.0
    return lo, lo + step, (tokens - lo) / step


def _mixes(prefill_tokens: int, prefill_seqs: int, prefill_context: float) -> list[tuple[tuple, float]]:
    """Memo keys of the prefill riding in a decode pass with their interpolation weights
    (tokens on :func:`_token_grid`, context rounded to 512)."""
    if prefill_tokens <= 0:
        return [((), 1.0)]
    lo, hi, f = _token_grid(prefill_tokens)
    pc = int(round(prefill_context / 512.0) * 512)
    ps = max(1, int(prefill_seqs))
    out = [((max(1, lo), ps, pc), 1.0 - f)] if lo > 0 and f < 1 else []
    if f > 0 or lo <= 0:
        out.append(((hi if lo > 0 else max(hi, 32), ps, pc), f if lo > 0 else 1.0))
    return out


class _OneLayerModel:
    """A model spec seen with one decoder layer (the MoE layer) — everything else delegated."""

    def __init__(self, model, arch):
        self._model, self.arch = model, arch

    def __getattr__(self, name):
        return getattr(self._model, name)


class ReplayStepTable:
    """Step times of replayed passes: the one cost model (:func:`moecap_sim.perf.step.step_time`)
    evaluated on each pass's own per-layer counts (:class:`~moecap_sim.perf.step.MoeCounts`).

    A layer's cost does not depend on the other layers, so a pass with per-layer counts ``c_l``
    costs ``full(ref) + Σ_l [one(c_l) − one(ref)]``: the whole model at reference counts plus,
    per MoE layer, the change of that layer alone (the cost model on a one-layer view of the
    model) — exact when the MoE layers share one geometry and placement (else every MoE layer
    is costed at each count in turn and averaged).  Costs are memoized on (shape, counts); when
    nothing overlaps inside a layer the change does not depend on the context and is memoized
    without it.  Decode contexts are interpolated between :data:`CONTEXT_GRID` points as in
    :class:`StepTable`.  Returns ``(seconds, link seconds, link bytes)`` per pass, the link terms
    being the cost model's expert-fetch operator (the cache misses)."""

    _BITS = 15  # per count field; the EP rank load takes the top 18 bits of an int64 key

    def __init__(self, ctx: CostContext):
        from dataclasses import replace

        from moecap_sim.perf.step import MoeCounts, step_time

        self.ctx = ctx
        self._step_time, self._counts_cls = step_time, MoeCounts
        arch = ctx.dep.model.arch
        moe = [l for l in arch.layers if l.moe is not None]
        self.n_moe = len(moe)
        self._memo: dict = {}
        self.calls = 0
        # a layer's time is the sum of its operators unless something overlaps inside it
        # (prefetched expert fetches, CPU experts beside the GPU, two-batch-overlapped all-to-all)
        self.additive = not (ctx.overlap_comm or ctx.placement == "cpu-experts"
                             or (ctx.placement in ("expert-cache", "nvme") and ctx.engine.prefetch))
        b = self._BITS  # reference counts: 1 distinct expert, rank load 1, the profile's cache hit rate
        self.ref_key = 1 | (1 << b) | (((1 << b) - 1) << 2 * b) | (1 << 3 * b)
        one_class = len({(l.role, l.attention, l.moe, l.dense_ffn_params) for l in moe}) == 1 and (
            ctx.cpu_moe_layers is None or ctx.cpu_moe_layers >= self.n_moe)
        self.one = None
        self.E = arch.num_experts
        self._dvec: dict = {}
        if one_class and moe:
            view = _OneLayerModel(ctx.dep.model, replace(arch, layers=(moe[0],)))
            self.one = replace(ctx, dep=replace(ctx.dep, model=view))

    def _eval(self, phase: str, seqs: int, tokens: int, context: int, key: int,
              one: bool = False, mix: tuple = ()) -> tuple[float, float, float]:
        memo_key = (phase, seqs, tokens, context, key, one, mix)
        hit = self._memo.get(memo_key)
        if hit is not None:
            return hit
        b = self._BITS
        mask = (1 << b) - 1
        d, rd, f = key & mask, (key >> b) & mask, (key >> 2 * b) & mask
        load = key >> 3 * b
        c = self._counts_cls(distinct=float(d), rank_distinct=float(rd), rank_load=float(load),
                             fetched=None if f == mask else float(f))
        kw = dict(prefill_tokens=mix[0], prefill_seqs=mix[1], prefill_context=float(mix[2])) if mix else {}
        if one:
            sb = self._step_time(self.one, phase, seqs, tokens, float(context), moe_counts=[c], **kw)
        else:
            sb = self._step_time(self.ctx, phase, seqs, tokens, float(context), moe_counts=[c] * self.n_moe, **kw)
        op = sb.ops.get("expert_fetch")
        out = (sb.time_s, op.time_s if op else 0.0, op.bytes if op else 0.0)
        self.calls += 1
        self._memo[memo_key] = out
        return out

    def keys(self, distinct: np.ndarray, rank_distinct: Optional[np.ndarray], rank_load: Optional[np.ndarray],
             fetched: Optional[np.ndarray]) -> tuple:
        """Unique per-layer count keys of a pass and how many layers have each.  When only the
        distinct experts vary (no EP: ``rank_load`` None; no cache), keys are None and the
        weights are (distinct count, layers with it) pairs, costed through memoized per-layer
        deltas."""
        if fetched is None and self.one is not None and rank_load is None:
            bc = np.bincount(distinct, minlength=self.E + 1).tolist()
            return None, [(d, w) for d, w in enumerate(bc) if w]
        b = self._BITS
        if rank_load is None:
            rank_load = rank_distinct = np.zeros_like(distinct)
        f = np.full(len(distinct), (1 << b) - 1, dtype=np.int64) if fetched is None else fetched.astype(np.int64)
        load = rank_load.astype(np.int64)
        small = distinct.astype(np.int64) | (rank_distinct.astype(np.int64) << b) | (f << 2 * b)
        if load.max(initial=0) < (1 << 18):
            return np.unique(small | (load << 3 * b), return_counts=True)
        rows, n = np.unique(np.stack([small, load], axis=1), axis=0, return_counts=True)  # rare: huge passes
        return np.array([int(a) | (int(c) << 3 * b) for a, c in rows], dtype=object), n

    def _combine(self, phase, seqs, tokens, context, keys, weights, mix: tuple = ()) -> tuple[float, float, float]:
        if self.one is None:  # several MoE layer classes: every layer at each count, averaged
            n = float(weights.sum())
            t = fs = fb = 0.0
            for k, w in zip(keys.tolist(), weights.tolist()):
                a, b_, c = self._eval(phase, seqs, tokens, context, k, mix=mix)
                t, fs, fb = t + w * a, fs + w * b_, fb + w * c
            return t / n, fs / n, fb / n
        t, fs, fb = self._eval(phase, seqs, tokens, context, self.ref_key, mix=mix)
        cl = 0 if self.additive else context
        if keys is None:  # distinct experts only: per-layer deltas as a vector over 0..E
            # additive layers: the MoE terms' change depends on the pass's token count alone
            dkey = (seqs * tokens + (mix[0] if mix else 0),) if self.additive else (phase, seqs, tokens, cl, mix)
            vec = self._dvec.get(dkey)
            if vec is None:
                vec = self._dvec[dkey] = {}
            for d, w in weights:  # (distinct experts, layers with that many)
                v = vec.get(d)
                if v is None:
                    ev = (lambda k: self._eval("decode", dkey[0], 1, 0, k, one=True)) if self.additive else \
                        (lambda k: self._eval(phase, seqs, tokens, cl, k, one=True, mix=mix))
                    mask = (1 << self._BITS) - 1
                    v = vec[d] = ev(d | (mask << 2 * self._BITS))[0] - ev(self.ref_key)[0]
                t += w * v
            return t, fs, fb
        r = self._eval(phase, seqs, tokens, cl, self.ref_key, one=True, mix=mix)
        for k, w in zip(keys.tolist(), weights.tolist()):
            if k != self.ref_key:
                a, b_, c = self._eval(phase, seqs, tokens, cl, k, one=True, mix=mix)
                t, fs, fb = t + w * (a - r[0]), fs + w * (b_ - r[1]), fb + w * (c - r[2])
        return t, fs, fb

    def decode(self, seqs: int, mean_context: float, keys, weights, prefill_tokens: int = 0,
               prefill_seqs: int = 1, prefill_context: float = 0.0) -> tuple[float, float, float]:
        """A decode pass (``prefill_tokens`` of ``prefill_seqs`` prompt chunks riding in it, rounded
        up to 32 tokens, their context to 256)."""
        c = max(0.0, mean_context)
        i = min(bisect.bisect_right(CONTEXT_GRID, c), len(CONTEXT_GRID) - 1)
        lo, hi = CONTEXT_GRID[i - 1], CONTEXT_GRID[i]
        out = [0.0, 0.0, 0.0]
        for mix, w in _mixes(prefill_tokens, prefill_seqs, prefill_context):
            if c >= hi:
                t = self._combine("decode", seqs, 1, hi, keys, weights, mix)
                t = (t[0] * c / hi, t[1], t[2]) if hi else t
            else:
                a = self._combine("decode", seqs, 1, lo, keys, weights, mix)
                b = self._combine("decode", seqs, 1, hi, keys, weights, mix)
                f = (c - lo) / (hi - lo)
                t = (a[0] + (b[0] - a[0]) * f, a[1] + (b[1] - a[1]) * f, a[2] + (b[2] - a[2]) * f)
            out = [o + w * x for o, x in zip(out, t)]
        return out[0], out[1], out[2]

    def prefill(self, seqs: int, tokens_per_seq: float, context: float, keys, weights) -> tuple[float, float, float]:
        tok = max(1, int(math.ceil(tokens_per_seq / 32.0) * 32))
        ctx = int(math.ceil(context / 256.0) * 256)
        return self._combine("prefill", max(1, seqs), tok, ctx, keys, weights)
