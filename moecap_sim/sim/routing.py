"""Routing replay for the simulator: the experts each token of a simulated pass activates.

Two routers answer the same question — for the tokens of one forward pass (a list of
``(sequence, tokens)``), how many tokens each MoE layer sends to each expert — as a count matrix
``[MoE layers, experts]``:

* :class:`TraceRouter` replays a real ``moecap-trace/1`` file (``simulate --routing FILE``) in
  order, wrapping at the end.  Each simulated sequence follows one trace sequence (a recorded
  request, or the whole token stream when requests were not recorded) from its own offset, so
  the tokens of a batch come from distinct trace sequences (or distinct places of one) and a
  sequence's consecutive tokens keep their real temporal reuse.  Model layers the trace did not
  log take the nearest logged layer.
* :class:`ProfileRouter` synthesises routing on the fly (seeded) from the routing profile the
  cost model uses (fitted to a real trace, or transferred to a model without one; uniform when
  there is none): per pass a shared step popularity ``pi ~ Beta(kappa*q, kappa*(1-q))`` (in-batch
  correlation), per token its previous experts kept with probability ``rho`` (temporal reuse),
  the rest drawn from ``pi`` (:meth:`moecap_sim.traces.synth.Generator.draw_tokens`).  Expert
  identities per token are drawn when an expert cache needs them; otherwise each expert's token
  count is drawn directly (Binomial(tokens, pi_e)), which has the same distinct-expert and
  per-rank-load statistics at a fraction of the cost.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from moecap_sim.errors import UserError


def _layer_map(model_layers: int, logged: np.ndarray) -> np.ndarray:
    """For each model MoE layer, the column of the nearest logged layer (``-1`` = mean column)."""
    logged = np.asarray(logged)
    if len(logged) == 1 or np.all(logged < 0):
        return np.zeros(model_layers, dtype=np.int64)
    return np.array([int(np.argmin(np.abs(logged - l))) for l in range(model_layers)], dtype=np.int64)


class TraceRouter:
    """Replays a real routing trace (see the module docstring).  ``num_moe_layers``, ``num_experts``
    and ``top_k`` are the served model's; a trace of another geometry is refused."""

    kind = "trace"

    def __init__(self, path, num_moe_layers: int, num_experts: int, top_k: int, model: str = ""):
        from moecap_sim.traces.format import load_trace

        tr = load_trace(path)
        if not tr.has_token_level:
            raise UserError(f"{path}: --routing needs a token-level trace (expert ids per token); this one has "
                            f"pass-level aggregates only")
        if (tr.num_experts, tr.top_k) != (num_experts, top_k):
            raise UserError(f"{path}: trace routes {tr.top_k} of {tr.num_experts} experts, the model {model or ''} "
                            f"{top_k} of {num_experts}: use a trace of this model")
        self.source = f"routing replayed from {Path(str(path)).name} ({tr.source_label()}, {tr.num_tokens} tokens)"
        self.num_experts, self.top_k, self.L = num_experts, top_k, num_moe_layers
        ex = tr.experts.astype(np.int64)  # [T, Lt, K]
        if tr.meta.get("request_ids") in ("recorded", "given") and np.all(tr.request >= 0):
            keys = np.lexsort((np.where(tr.position >= 0, tr.position, np.arange(tr.num_tokens)), tr.request))
            reqs = tr.request[keys]
            bounds = np.flatnonzero(np.diff(reqs)) + 1
            streams = np.split(keys, bounds)
        else:
            streams = [np.arange(tr.num_tokens)]
        streams = [s for s in streams if len(s)]
        rows = np.concatenate(streams)
        ex = self._fill_missing(ex[rows], np.repeat(np.arange(len(streams)), [len(s) for s in streams]))
        self.ex = ex  # [rows, Lt, K], streams back to back
        self.lengths = np.array([len(s) for s in streams], dtype=np.int64)
        self.offsets = np.concatenate([[0], np.cumsum(self.lengths)[:-1]])
        self.col = _layer_map(num_moe_layers, tr.layers)  # model layer -> logged column
        lt, e = ex.shape[1], num_experts
        # prefix sums of per-(column, expert) counts along the concatenated rows: a run of a
        # stream's rows (a prefill chunk) is counted in O(columns x experts)
        onehot = np.zeros((len(ex), lt, e), dtype=np.int32)
        t_idx, l_idx, k_idx = np.nonzero(ex >= 0)
        np.add.at(onehot, (t_idx, l_idx, ex[t_idx, l_idx, k_idx]), 1)
        self.cum = np.concatenate([np.zeros((1, lt, e), np.int32), np.cumsum(onehot, axis=0, dtype=np.int32)])
        self.cursor: dict[int, tuple[int, int]] = {}  # sequence -> (stream, position)
        self._next = 0

    @staticmethod
    def _fill_missing(ex: np.ndarray, stream: np.ndarray) -> np.ndarray:
        """Cells the logger did not record (``-1``) take the same sequence's previous token's
        experts in that layer (else the next one's): reuse, never a made-up expert."""
        ex = ex.copy()
        bad = np.argwhere(np.any(ex < 0, axis=2))
        for t, l in bad:
            for u in list(range(t - 1, -1, -1)) + list(range(t + 1, len(ex))):
                if stream[u] == stream[t] and np.all(ex[u, l] >= 0):
                    ex[t, l] = ex[u, l]
                    break
        return ex

    def start(self, seq: int) -> None:
        """A new sequence: the next trace stream, at an offset distinct from earlier ones there."""
        j = self._next
        self._next += 1
        s = j % len(self.lengths)
        lap = j // len(self.lengths)
        self.cursor[seq] = (s, (lap * 61) % int(self.lengths[s]))

    def finish(self, seq: int) -> None:
        self.cursor.pop(seq, None)

    def _advance(self, seq: int, n: int) -> tuple[int, int]:
        if seq not in self.cursor:
            self.start(seq)
        s, p = self.cursor[seq]
        self.cursor[seq] = (s, (p + n) % int(self.lengths[s]))
        return s, p

    def counts(self, tokens: Sequence[tuple[int, int]], need_ids: bool = False,
               need_loads: bool = False) -> np.ndarray:
        """``[MoE layers, experts]`` token counts of a pass: ``tokens`` = (sequence, tokens) pairs,
        each sequence's next rows in its stream."""
        lt, e = self.ex.shape[1], self.num_experts
        singles = [self._advance(q, 1) for q, n in tokens if n == 1]
        out = np.zeros((lt, e), dtype=np.int64)
        if singles:
            idx = np.array([self.offsets[s] + p for s, p in singles], dtype=np.int64)
            ids = self.ex[idx]  # [B, Lt, K]
            flat = (np.arange(lt)[None, :, None] * e + ids).reshape(-1)
            out += np.bincount(flat, minlength=lt * e).reshape(lt, e)
        for q, n in tokens:
            if n == 1 or n <= 0:
                continue
            s, p = self._advance(q, n)
            length, off = int(self.lengths[s]), int(self.offsets[s])
            laps, rest = divmod(n, length)
            full = self.cum[off + length] - self.cum[off]
            out += laps * full
            end = p + rest
            if end <= length:
                out += self.cum[off + end] - self.cum[off + p]
            else:
                out += (self.cum[off + length] - self.cum[off + p]) + (self.cum[off + end - length] - self.cum[off])
        return out[self.col]


class ProfileRouter:
    """Synthesises routing from a routing profile, seeded (see the module docstring)."""

    kind = "profile"

    def __init__(self, profile, num_moe_layers: int, seed: int = 0):
        from moecap_sim.traces.synth import Generator

        e, k = int(profile.num_experts), int(profile.top_k)
        self.num_experts, self.top_k, self.L = e, k, num_moe_layers
        if hasattr(profile, "q"):  # a fitted (or transferred) profile: interpolate to every layer
            w = np.stack([profile._layer_weights(min(l, profile.num_moe_layers - 1)) for l in range(num_moe_layers)])
            self._w = w
            q = w @ profile.q
            near = np.argmax(w, axis=1)
            kappa = profile.kappa[near]
            rho = np.nan_to_num(profile.rho[near], nan=0.0)
            self.source = f"routing synthesised per pass (seeded) from the profile: {profile.source}"
        else:  # uniform independent routing
            self._w = None
            q = np.full((num_moe_layers, e), k / e)
            kappa, rho = np.full(num_moe_layers, np.inf), np.zeros(num_moe_layers)
            self.source = "routing synthesised per pass (seeded): uniform independent top-k (no trace for this model)"
        self.profile = profile
        self.gen = Generator(q, kappa, rho, k)
        self._used: dict[int, np.ndarray] = {}
        self._none = np.full((num_moe_layers, k), -1, dtype=np.int64)
        self.rng = np.random.default_rng(seed)
        self.prev: dict[int, np.ndarray] = {}  # sequence -> its last token's experts [L, K]

    def start(self, seq: int) -> None:
        self.prev.pop(seq, None)

    def finish(self, seq: int) -> None:
        self.prev.pop(seq, None)

    def _p_used(self, n: int) -> np.ndarray:
        """``[L, E]``: probability that ``n`` tokens of one pass use each expert, the step
        popularity integrated out (the profile's own closed form; independent across experts)."""
        if n > 64:  # long passes: nearest point of a 1 %-spaced grid (p moves < 2e-3 to the nearest point)
            n = int(round(64 * 1.01 ** round(math.log(n / 64) / math.log(1.01))))
        p = self._used.get(n)
        if p is None:
            if self._w is not None:
                p = self._w @ self.profile._p_used(float(n))
            else:
                p = np.full((self.L, self.num_experts), 1.0 - (1.0 - self.top_k / self.num_experts) ** n)
            if len(self._used) > 8192:
                self._used.clear()
            self._used[n] = p
        return p

    def counts(self, tokens: Sequence[tuple[int, int]], need_ids: bool = False,
               need_loads: bool = False) -> np.ndarray:
        """``[MoE layers, experts]`` token counts of a pass.  With ``need_ids`` decode tokens get
        expert identities (temporal reuse from each sequence's previous token); with
        ``need_loads`` (EP rank loads) each expert's count is Binomial(tokens, pi_e) under the
        pass's popularity ``pi``; otherwise only whether each expert is used is drawn (a boolean
        matrix, from the probability with ``pi`` integrated out: enough for distinct experts)."""
        L, e = self.L, self.num_experts
        single = [q for q, n in tokens if n == 1]
        many = sum(n for q, n in tokens if n > 1)
        for q, n in tokens:
            if n > 1:
                self.prev.pop(q, None)  # after a prompt chunk the next token draws afresh
        out = np.zeros((L, e), dtype=np.int64)
        if not (need_ids or need_loads):
            return self.rng.random((L, e)) < self._p_used(len(single) + many)  # bool: used or not
        pi = self.gen.step_popularity(self.rng)  # [L, E], rows sum to top_k
        if need_ids and single:
            prev = np.stack([self.prev.get(q, self._none) for q in single])
            ids = self.gen.draw_tokens(pi, prev, self.rng)  # [B, L, K]
            for i, q in enumerate(single):
                self.prev[q] = ids[i]
            flat = (np.arange(L)[None, :, None] * e + ids).reshape(-1)
            out += np.bincount(flat, minlength=L * e).reshape(L, e)
        elif single:
            out += self.rng.binomial(len(single), pi)
        if many:
            out += self.rng.binomial(many, pi)
        return out


def make_router(routing_file: Optional[str], profile, num_moe_layers: int, num_experts: int, top_k: int,
                seed: int, model: str = ""):
    """A :class:`TraceRouter` for ``routing_file``, else a :class:`ProfileRouter` on ``profile``."""
    if routing_file:
        return TraceRouter(routing_file, num_moe_layers, num_experts, top_k, model)
    return ProfileRouter(profile, num_moe_layers, seed)
