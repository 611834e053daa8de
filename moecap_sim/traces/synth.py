"""Synthetic routing traces (``moecap-sim trace synth``) for models without a real trace.

Generator, per MoE layer (parameters: popularity skew ``sigma`` or an explicit popularity ``q``,
in-batch correlation ``kappa``, temporal reuse ``rho``, top-k; shared experts are always on and
not routed):

1. each decode step draws a step popularity ``pi_e ~ Beta(kappa*q_e, kappa*(1-q_e))``, rescaled
   to sum top-k (no entry above 1) — the tokens of one batch share it;
2. each request keeps each expert of its previous token with probability ``rho``;
3. the remaining slots are filled by systematic probability-proportional-to-size sampling over
   the other experts in a random order, which draws exactly ``m`` distinct experts with inclusion
   probabilities exactly proportional to ``pi`` (capped at 1).

Where the parameters come from, in order: an explicit profile (e.g. one fitted on part of a real
trace), the shipped profile of the model (real trace), or the transfer rule of
:data:`moecap_sim.routing.profiles.TRANSFER_RULE` from the three real-trace fits.  Every output
says ``synthetic: true`` and names its source.
"""

from __future__ import annotations

from typing import Optional, Sequence

import numpy as np

from moecap_sim.errors import UserError
from moecap_sim.routing.sampling import sample_topk, waterfill_rows  # noqa: F401  (re-exported)
from moecap_sim.routing.profiles import (FittedProfile, TRANSFER_RULE, kappa_at, load_profile, load_shipped_profile,
                                         lognormal_q, synthetic_profile_data)
from moecap_sim.traces.format import DECODE, Trace
from moecap_sim.traces.known import canonical_model_name, model_geometry


class Generator:
    """Per-layer parameters: ``q[L, E]`` (popularity, sums to top-k), ``kappa[L]``, ``rho[L]``."""

    def __init__(self, q: np.ndarray, kappa: Sequence[float], rho: Sequence[float], top_k: int,
                 transient: Optional[list] = None):
        self.q = np.asarray(q, dtype=float)
        self.kappa = np.array([np.inf if k is None else float(k) for k in kappa])
        self.transient = list(transient) if transient is not None else [[] for _ in self.kappa]
        self.rho = np.array([0.0 if (r is None or not np.isfinite(r)) else float(r) for r in rho])
        self.top_k = int(top_k)

    @classmethod
    def from_profile(cls, prof: FittedProfile, skew: str = "lognormal", seed: int = 0) -> "Generator":
        """``skew='lognormal'`` uses the profile's fitted skew sigma (the transferable parameter,
        expert identities drawn at random); ``'empirical'`` uses its per-expert popularity q."""
        e, k = prof.num_experts, prof.top_k
        if skew == "empirical" or not np.all(np.isfinite(prof.sigma)):
            q = prof.q.copy()
        elif skew == "lognormal":
            rng = np.random.default_rng(seed + 7)
            q = np.stack([lognormal_q(s, e, k)[rng.permutation(e)] for s in prof.sigma])
        else:
            raise UserError(f"unknown skew '{skew}': use lognormal or empirical")
        return cls(q, prof.kappa, prof.rho, k, prof.transient)

    def subset(self, idx: Sequence[int]) -> "Generator":
        idx = list(idx)
        return Generator(self.q[idx], self.kappa[idx], self.rho[idx], self.top_k, [self.transient[i] for i in idx])

    def kappa_at(self, step: Optional[float]) -> np.ndarray:
        return kappa_at(self.kappa, self.transient, step)

    def step_popularity(self, rng: np.random.Generator, groups: Optional[int] = None,
                        step: Optional[float] = None) -> np.ndarray:
        """The popularity one pass's tokens share, ``[L, E]`` (``[groups, L, E]`` when ``groups``
        is given): ``pi_e ~ Beta(kappa*q_e, kappa*(1-q_e))`` per layer, rescaled to sum top-k."""
        L, e = self.q.shape
        kappas = self.kappa_at(step)
        if groups is None:  # one pass: every layer's Beta draws at once
            fin = np.isfinite(kappas)
            pi = self.q.copy()
            if fin.any():
                kq = kappas[fin, None] * self.q[fin]
                pi[fin] = rng.beta(np.maximum(kq, 1e-9), np.maximum(kappas[fin, None] - kq, 1e-9))
            return waterfill_rows(pi, np.full(L, self.top_k))
        g = groups
        pi = np.broadcast_to(self.q[None], (g, L, e)).copy()
        for li in range(L):
            kap = kappas[li]
            if np.isfinite(kap):
                a = np.maximum(kap * self.q[li], 1e-9)
                b = np.maximum(kap * (1 - self.q[li]), 1e-9)
                pi[:, li, :] = rng.beta(a[None].repeat(g, 0), b[None].repeat(g, 0))
        pi = waterfill_rows(pi.reshape(g * L, e), np.full(g * L, self.top_k)).reshape(g, L, e)
        return pi

    def draw_tokens(self, pi: np.ndarray, prev: Optional[np.ndarray], rng: np.random.Generator) -> np.ndarray:
        """``[lanes, L, K]`` expert ids of one token per lane: each expert of the lane's previous
        token (``prev[lanes, L, K]``, ``-1`` = none) kept with probability ``rho``, the other slots
        drawn from the popularity ``pi`` (``[L, E]`` shared, or ``[lanes, L, E]``)."""
        L, e = self.q.shape
        k = self.top_k
        w = np.broadcast_to(pi, (len(prev) if prev is not None else pi.shape[0], L, e)) if pi.ndim == 2 else pi
        lanes = w.shape[0]
        keep = np.zeros((lanes, L, e), dtype=bool)
        if prev is not None:
            kept_mask = (rng.random((lanes, L, k)) < self.rho[None, :, None]) & (prev >= 0)
            li_idx = np.broadcast_to(np.arange(L)[None, :, None], prev.shape)
            ln_idx = np.broadcast_to(np.arange(lanes)[:, None, None], prev.shape)
            keep[ln_idx[kept_mask], li_idx[kept_mask], prev[kept_mask]] = True
        nkeep = keep.sum(axis=2)
        wf = np.where(keep, 0.0, w).reshape(lanes * L, e)
        mneed = (k - nkeep).reshape(-1)
        pfill = waterfill_rows(wf, mneed)
        fresh = sample_topk(pfill, mneed, rng)
        mask = keep.reshape(lanes * L, e).copy()
        rr, cc = np.nonzero(fresh >= 0)
        mask[rr, fresh[rr, cc]] = True
        return np.nonzero(mask)[1].reshape(lanes, L, k)

    def generate(self, steps: int, batch: int, rng: np.random.Generator, groups: int = 1,
                 step_index: Optional[Sequence[float]] = None) -> np.ndarray:
        """``[groups, steps, batch, L, K]`` expert ids: ``groups`` independent batches of ``batch``
        requests decoding ``steps`` tokens each.  ``step_index[t]``: decode steps since the
        batch's requests started together (synchronised start); None: steady state."""
        L, e = self.q.shape
        k = self.top_k
        lanes = groups * batch
        out = np.empty((groups, steps, batch, L, k), dtype=np.int16)
        prev = None
        for t in range(steps):
            pi = self.step_popularity(rng, groups, None if step_index is None else step_index[t])
            w = np.repeat(pi[:, None], batch, axis=1).reshape(lanes, L, e)
            cur = self.draw_tokens(w, prev, rng)
            out[:, t] = cur.reshape(groups, batch, L, k)
            prev = cur
        return out


def _geometry(model: Optional[str], num_experts, top_k, num_shared_experts, num_moe_layers) -> dict:
    geo = model_geometry(model) if model else None
    if model and geo is None and (num_experts is None or top_k is None):
        from moecap_sim.catalog.models import get_model

        get_model(model)  # raises the catalog's "unknown model ... did you mean" error
    g = dict(geo or {})
    for key, val in (("num_experts", num_experts), ("top_k", top_k), ("num_shared_experts", num_shared_experts),
                     ("num_moe_layers", num_moe_layers)):
        if val is not None:
            g[key] = int(val)
    if g.get("num_experts") is None or g.get("top_k") is None:
        raise UserError("synth needs the model's geometry: --model NAME (a catalog model) or "
                        "--num-experts and --top-k (and --num-moe-layers)")
    if not 1 <= g["top_k"] <= g["num_experts"]:
        raise UserError(f"top-k must be between 1 and the number of experts ({g['num_experts']})")
    g.setdefault("num_shared_experts", 0)
    g.setdefault("num_moe_layers", 1)
    return g


def resolve_profile(model: Optional[str], profile=None, **geometry) -> tuple[FittedProfile, str]:
    """The profile that parameterises the generator, and a sentence saying where it came from."""
    if profile is not None:
        prof = profile if isinstance(profile, FittedProfile) else load_profile(profile)
        return prof, f"generator parameters fitted to {prof.source}"
    name = canonical_model_name(model) if model else None
    g = _geometry(name, **geometry)
    shipped = load_shipped_profile(g.get("model", name) or "") if (g.get("model") or name) else None
    if shipped is not None and (shipped.num_experts, shipped.top_k) == (g["num_experts"], g["top_k"]):
        return shipped, f"generator parameters from the shipped profile of {shipped.model} ({shipped.source})"
    data = synthetic_profile_data(g["num_experts"], g["top_k"], g["num_moe_layers"], g["num_shared_experts"],
                                  g.get("model", name))
    if data is None:
        raise UserError("no shipped real-trace profiles found to transfer from (traces/profiles/ is empty)")
    return FittedProfile(data), "generator parameters transferred from the real-trace fits: " + TRANSFER_RULE


def synth_trace(model: Optional[str], tokens: int, batch: int = 1, seed: int = 0, profile=None,
                num_experts=None, top_k=None, num_shared_experts=None, num_moe_layers=None,
                layers: Optional[Sequence[int]] = None, skew: str = "lognormal",
                step_sizes: Optional[Sequence[int]] = None, step_index: Optional[Sequence[float]] = None,
                synchronized: bool = False) -> Trace:
    """Generate a synthetic decode trace: ``tokens`` tokens from batches of ``batch`` requests
    (or decode steps of the given ``step_sizes``, e.g. a real trace's, at ``step_index`` steps
    since a synchronised start).  By default batches are in steady state (continuous batching);
    ``synchronized=True`` starts every batch's requests together (offline-benchmark style)."""
    if tokens < 1 or batch < 1:
        raise UserError("--tokens and --batch must be positive")
    prof, how = resolve_profile(model, profile, num_experts=num_experts, top_k=top_k,
                                num_shared_experts=num_shared_experts, num_moe_layers=num_moe_layers)
    rng = np.random.default_rng(seed)
    gen = Generator.from_profile(prof, skew=skew, seed=seed)
    mlayers = prof.measured_layers
    if layers is not None:
        want = [int(x) for x in layers]
        bad = [x for x in want if x not in set(mlayers.tolist())]
        if bad:
            raise UserError(f"layers {bad} are not parameterised by this profile (have {mlayers.tolist()})")
        sel = [int(np.nonzero(mlayers == x)[0][0]) for x in want]
        gen = gen.subset(sel)
        mlayers = np.array(want)
    if step_sizes is not None:
        sizes = [int(s) for s in step_sizes if int(s) > 0]
        bmax = max(sizes)
        ex = gen.generate(len(sizes), bmax, rng, groups=1, step_index=step_index)[0]  # [steps, bmax, L, K]
        rows, pid, req, pos = [], [], [], []
        for t, s in enumerate(sizes):
            rows.append(ex[t, :s])
            pid += [t] * s
            req += list(range(s))
            pos += [t] * s
        experts = np.concatenate(rows)
    else:
        # several independent batches run in parallel (vectorised); each request still gets a
        # run of at least ~32 tokens when there are enough tokens
        groups = max(1, min(-(-64 // batch), tokens // (batch * 32)))
        steps = -(-tokens // (groups * batch))
        ex = gen.generate(steps, batch, rng, groups=groups,
                          step_index=np.arange(steps) if synchronized else None)  # [G, S, B, L, K]
        g_, s_, b_ = np.meshgrid(np.arange(groups), np.arange(steps), np.arange(batch), indexing="ij")
        experts = ex.reshape(-1, len(mlayers), gen.top_k)
        pid = (g_ * steps + s_).reshape(-1)
        req = (g_ * batch + b_).reshape(-1)
        pos = s_.reshape(-1)
        keep = np.arange(len(experts)) < tokens
        experts, pid, req, pos = experts[keep], pid[keep], req[keep], pos[keep]
    meta = {
        "model": prof.model if model is None else (canonical_model_name(model) or model),
        "num_experts": prof.num_experts, "top_k": prof.top_k, "num_shared_experts": prof.num_shared_experts,
        "num_moe_layers": prof.num_moe_layers, "synthetic": True,
        "source": {"kind": "synthetic", "description": f"SYNTHETIC routing (moecap-sim trace synth, seed {seed}, "
                                                       f"skew {skew}): {how}"},
        "license": "generated by moecap-sim (project data)", "dataset": "none (synthetic)",
        "engine": "none (synthetic)", "pass_structure": "recorded", "request_ids": "recorded",
        "filters": [], "notes": [f"decode only; batch {batch if step_sizes is None else 'as given'}; shared experts "
                                 f"({prof.num_shared_experts}) are always active and not listed"],
        "generator": {"skew": skew, "sigma": [None if not np.isfinite(s) else round(float(s), 4) for s in prof.sigma],
                      "kappa": [None if not np.isfinite(x) else round(float(x), 3) for x in gen.kappa],
                      "transient": [[[round(float(a), 5), float(t)] for a, t in tr] for tr in gen.transient],
                      "synchronized_start": bool(synchronized or step_index is not None),
                      "rho": [round(float(x), 4) for x in gen.rho]},
    }
    return Trace(meta=meta, layers=mlayers, experts=experts, pass_id=pid,
                 phase=np.full(len(experts), DECODE), request=req, position=pos)


# --- held-out validation of the generator ----------------------------------------------------------

def split_trace(tr: Trace, method: str = "auto", block: int = 8) -> tuple[Trace, Trace, str]:
    """Split a trace into (fit part, held-out part).

    ``requests``: whole requests alternate (needs recorded request ids; with a ``dataset:problem``
    naming, the first request of each dataset goes to the fit part, the rest are held out);
    ``blocks``: decode steps alternate in blocks of ``block`` steps (prefill stays in the fit
    part); ``halves``: first half of the decode steps / second half.  ``auto`` picks requests
    when ids are recorded and there are at least two, else blocks."""
    from moecap_sim.traces.stats import decode_steps

    if method == "auto":
        nreq = len(np.unique(tr.request[tr.request >= 0]))
        method = "requests" if tr.meta.get("request_ids") == "recorded" and nreq >= 2 and \
            np.all(tr.request >= 0) else "blocks"
    if method == "requests":
        reqs = np.unique(tr.request[tr.request >= 0])
        if len(reqs) < 2:
            raise UserError("a request split needs at least two recorded requests")
        names = tr.meta.get("request_names") or []
        if names and len(names) > int(reqs.max()):
            groups: dict = {}
            for r in reqs:
                groups.setdefault(str(names[r]).rsplit(":", 1)[0], []).append(int(r))
            held = [r for g in groups.values() for r in g[1::2]] if all(len(g) >= 2 for g in groups.values()) \
                else [int(r) for r in reqs[1::2]]
        else:
            held = [int(r) for r in reqs[1::2]]
        m = np.isin(tr.request, held)
        return tr.select_tokens(~m), tr.select_tokens(m), "requests (alternate requests held out)"
    steps = decode_steps(tr)
    if len(steps) < 2 * block and method == "blocks":
        block = max(1, len(steps) // 4)
    if len(steps) < 2:
        raise UserError("the trace has no decode-step structure to split; use a request split")
    pids = np.array([int(tr.pass_id[s[0]]) for s in steps])
    if method == "blocks":
        held_p = pids[(np.arange(len(pids)) // block) % 2 == 1]
        how = f"alternate blocks of {block} decode steps held out"
    elif method == "halves":
        held_p = pids[len(pids) // 2:]
        how = "second half of the decode steps held out"
    else:
        raise UserError(f"unknown split '{method}': use auto, requests, blocks or halves")
    m = np.isin(tr.pass_id, held_p)
    return tr.select_tokens(~m), tr.select_tokens(m), how


def holdout_check(tr: Trace, split: str = "auto", skew: str = "lognormal", seed: int = 0,
                  batch_sizes: Sequence[int] = tuple(range(1, 65)), replicas: int = 8) -> dict:
    """Fit the generator on part of ``tr``, generate a synthetic trace shaped like the held-out
    part, and compare their distinct-experts-vs-B curves (same estimator on both)."""
    from moecap_sim.traces.fit import fit_profile
    from moecap_sim.traces.stats import compute_stats, decode_steps

    fit_part, held, how = split_trace(tr, split)
    prof = fit_profile([fit_part])
    steps = decode_steps(held)
    if steps and np.mean([len(s) for s in steps]) >= 2:
        order = {int(tr.pass_id[s_[0]]): i for i, s_ in enumerate(decode_steps(tr))}
        idx = [order[int(held.pass_id[s_[0]])] for s_ in steps] * replicas
        sizes = [len(s) for s in steps] * replicas
        syn = synth_trace(None, sum(sizes), profile=prof, skew=skew, step_sizes=sizes, step_index=idx, seed=seed)
    else:
        syn = synth_trace(None, max(held.num_tokens * replicas * 2, 2000), batch=1, profile=prof, skew=skew, seed=seed)
    grid = [b for b in batch_sizes]
    sh = compute_stats(held, batch_sizes=grid)
    ss = compute_stats(syn, batch_sizes=grid)
    per_layer, worst = [], 0.0
    for a, b in zip(sh["layers"], ss["layers"]):
        errs = {bb: b["distinct_vs_batch"][bb] / a["distinct_vs_batch"][bb] - 1
                for bb in a["distinct_vs_batch"] if bb in b["distinct_vs_batch"]}
        w = max(abs(x) for x in errs.values())
        worst = max(worst, w)
        per_layer.append({"layer": a["layer"], "max_abs_rel_err": round(w, 5),
                          "worst_B": int(max(errs, key=lambda x: abs(errs[x])))})
    return {"model": tr.model, "split": how, "skew": skew, "seed": seed,
            "fit_tokens": fit_part.num_tokens, "heldout_tokens": held.num_tokens,
            "batch_sizes": [min(grid), max(grid)], "max_abs_rel_err": round(worst, 5), "layers": per_layer,
            "heldout_curve_mean": sh["summary"]["distinct_vs_batch"],
            "synthetic_curve_mean": ss["summary"]["distinct_vs_batch"]}
