"""Statistics of a routing trace (``moecap-sim trace stats``).

Per logged MoE layer:

* **load distribution** over the decode tokens (prefill when there is no decode): per-expert
  counts, max/mean, Gini, normalised entropy, coefficient of variation;
* **distinct experts per forward pass as recorded** (decode steps and prefill passes);
* **distinct experts versus batch size B** — the expected number of distinct experts touched by B
  tokens of B different requests in one decode step.  Where the trace has decode steps of at
  least B requests, B rows are drawn from one step (exact hypergeometric expectation, averaged
  over steps: this keeps the in-step correlation of real batches); otherwise B tokens are drawn at
  random from all decode tokens (``pooled``).  The method used is reported per B;
* **distinct experts versus prefill chunk length** (contiguous tokens of prefill passes);
* **temporal reuse** between consecutive decode tokens of one request (fraction of the top-k
  experts of token t already used by token t-1), with the chance level for independent tokens,
  and the steady-state **LRU expert-cache hit rate** versus cache size;
* **cross-layer correlation**: normalised mutual information between the expert sets of a token in
  consecutive logged layers (and its value for shuffled tokens, the finite-sample floor);
* **expert-parallel rank imbalance** for an EP size and a placement (contiguous, round-robin,
  balanced by measured load, or an explicit expert→rank list): max/mean token-expert assignments
  and the distinct experts on the busiest rank per decode step.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from moecap_sim.errors import UserError
from moecap_sim.traces.format import DECODE, PHASE_NAMES, PREFILL, Trace

DEFAULT_BATCH_SIZES = (1, 2, 4, 8, 16, 32, 64, 128, 256)
DEFAULT_CHUNKS = (1, 16, 64, 256, 512, 1024, 2048)


# --- elementary statistics -------------------------------------------------------------------

def gini(x: np.ndarray) -> float:
    x = np.sort(np.asarray(x, dtype=float))
    n = len(x)
    if n == 0 or x.sum() <= 0:
        return 0.0
    return float((2 * np.arange(1, n + 1) - n - 1) @ x / (n * x.sum()))


def norm_entropy(x: np.ndarray) -> float:
    x = np.asarray(x, dtype=float)
    if x.sum() <= 0 or len(x) < 2:
        return 1.0
    p = x[x > 0] / x.sum()
    return float(-(p * np.log(p)).sum() / math.log(len(x)))


def load_stats(counts: np.ndarray) -> dict:
    c = np.asarray(counts, dtype=float)
    mean = c.mean() if c.size else 0.0
    return {"max_over_mean": float(c.max() / mean) if mean > 0 else None,
            "min_over_mean": float(c.min() / mean) if mean > 0 else None,
            "gini": round(gini(c), 4), "entropy": round(norm_entropy(c), 4),
            "cv": float(c.std() / mean) if mean > 0 else None,
            "load_counts": [int(v) for v in c]}


def _log_comb_ratio(n_minus_c: np.ndarray, n: int, b: int) -> np.ndarray:
    """log( C(n-c, b) / C(n, b) ), -inf where n-c < b."""
    from scipy.special import gammaln

    nm = np.asarray(n_minus_c, dtype=float)
    out = np.full(nm.shape, -np.inf)
    ok = nm >= b
    out[ok] = (gammaln(nm[ok] + 1) - gammaln(nm[ok] - b + 1)) - (gammaln(n + 1) - gammaln(n - b + 1))
    return out


def expected_distinct_subset(counts: np.ndarray, n: int, b: int) -> float:
    """Expected distinct experts in a uniformly random ``b``-subset of ``n`` tokens, where
    ``counts[e]`` tokens of the ``n`` selected expert ``e``."""
    if b <= 0 or n <= 0:
        return 0.0
    b = min(b, n)
    c = np.asarray(counts, dtype=float)
    return float(np.sum(1.0 - np.exp(_log_comb_ratio(n - c, n, b))))


# --- helpers on traces -----------------------------------------------------------------------

def decode_mask(tr: Trace) -> tuple[np.ndarray, str]:
    dec = tr.phase == DECODE
    if dec.any():
        return dec, "decode tokens"
    return np.ones(tr.num_tokens, dtype=bool), "all tokens (no decode phase recorded)"


def layer_rows(tr: Trace, li: int, mask: Optional[np.ndarray] = None) -> np.ndarray:
    """Top-k rows of logged layer ``li`` (rows with a missing layer dropped)."""
    ex = tr.experts[:, li, :] if mask is None else tr.experts[mask, li, :]
    return ex[(ex >= 0).all(axis=1)]


def expert_counts(rows: np.ndarray, e: int) -> np.ndarray:
    return np.bincount(rows.ravel().astype(np.int64), minlength=e)


def multi_hot(rows: np.ndarray, e: int) -> np.ndarray:
    m = np.zeros((len(rows), e), dtype=bool)
    if len(rows):
        m[np.arange(len(rows))[:, None], rows.astype(np.int64)] = True
    return m


def decode_steps(tr: Trace) -> list[np.ndarray]:
    """Row indices of each decode forward pass, in execution order (empty without passes)."""
    if not tr.has_pass_structure:
        return []
    dec = tr.phase == DECODE
    pids = tr.pass_id[dec]
    rows = np.nonzero(dec)[0]
    if not len(rows):
        return []
    order = np.argsort(pids, kind="stable")
    pids, rows = pids[order], rows[order]
    cuts = np.nonzero(np.diff(pids))[0] + 1
    return np.split(rows, cuts)


def token_chains(tr: Trace) -> tuple[list[np.ndarray], str]:
    """Sequences of row indices, each one request's consecutive decode tokens.

    Recorded request ids and positions are used when present; otherwise, for batched decode
    steps, row i of consecutive steps with the same batch size is taken as the same request
    (engines keep a persistent batch order; inferred, stated in the basis)."""
    dec, _ = decode_mask(tr)
    if np.all(tr.request[dec] >= 0) and np.all(tr.position[dec] >= 0) and dec.any():
        rows = np.nonzero(dec)[0]
        order = np.lexsort((tr.position[rows], tr.request[rows]))
        rows = rows[order]
        req, pos = tr.request[rows], tr.position[rows]
        brk = np.nonzero((np.diff(req) != 0) | (np.diff(pos) != 1))[0] + 1
        return [c for c in np.split(rows, brk) if len(c) >= 2], "recorded request ids and positions"
    steps = decode_steps(tr)
    if len(steps) >= 2 and max(len(s) for s in steps) >= 1:
        chains: list[np.ndarray] = []
        run: list[np.ndarray] = [steps[0]]
        for s in steps[1:] + [np.array([], dtype=int)]:
            if len(s) == len(run[-1]) and len(s):
                run.append(s)
                continue
            if len(run) >= 2:
                mat = np.stack(run)  # [steps, batch]
                chains += [mat[:, i] for i in range(mat.shape[1])]
            run = [s]
        if chains:
            return chains, ("inferred: row i of consecutive decode steps of equal batch size is taken "
                            "as the same request (request ids not recorded)")
    return [], "not available (request identity not recorded and no batched decode steps)"


def placement_ranks(placement, e: int, ep: int, counts: Optional[np.ndarray] = None) -> np.ndarray:
    """Expert → rank for ``ep`` ranks: ``contiguous`` (vLLM/SGLang default), ``round-robin``,
    ``balanced`` (greedy by ``counts``, equal experts per rank), or an explicit list / JSON file."""
    if isinstance(placement, (list, tuple, np.ndarray)):
        r = np.asarray(placement, dtype=int)
    elif isinstance(placement, str) and placement.lower() in ("contiguous", "linear", "default"):
        r = np.concatenate([np.full(len(a), i) for i, a in enumerate(np.array_split(np.arange(e), ep))])
    elif isinstance(placement, str) and placement.lower() in ("round-robin", "roundrobin", "strided"):
        r = np.arange(e) % ep
    elif isinstance(placement, str) and placement.lower() in ("balanced", "greedy", "eplb"):
        c = np.ones(e) if counts is None else np.asarray(counts, dtype=float)
        cap = -(-e // ep)
        r = np.full(e, -1)
        load = np.zeros(ep)
        n = np.zeros(ep, dtype=int)
        for ex in np.argsort(-c, kind="stable"):
            free = np.nonzero(n < cap)[0]
            rank = free[np.argmin(load[free])]
            r[ex] = rank
            load[rank] += c[ex]
            n[rank] += 1
    elif isinstance(placement, (str, Path)) and Path(str(placement)).exists():
        r = np.asarray(json.loads(Path(str(placement)).read_text()), dtype=int)
    else:
        raise UserError(f"unknown placement '{placement}': use contiguous, round-robin, balanced, "
                        f"or a JSON file with one rank per expert")
    if r.shape != (e,) or r.min() < 0 or r.max() >= ep:
        raise UserError(f"placement must give one rank in 0..{ep - 1} for each of the {e} experts")
    return r


def default_ep_size(e: int) -> int:
    for p in (8, 4, 2):
        if e % p == 0 and e >= p:
            return p
    return 1


# --- the statistics ----------------------------------------------------------------------------

def _step_count_matrix(tr: Trace, li: int, steps: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Per decode step: rows with this layer recorded, and per-expert counts [steps, E]."""
    e = tr.num_experts
    if not steps:
        return np.zeros(0, dtype=int), np.zeros((0, e))
    rows = np.concatenate(steps)
    sid = np.repeat(np.arange(len(steps)), [len(x) for x in steps])
    ex = tr.experts[rows, li, :]
    ok = (ex >= 0).all(axis=1)
    ex, sid = ex[ok], sid[ok]
    n = np.bincount(sid, minlength=len(steps))
    c = np.zeros((len(steps), e))
    np.add.at(c, (np.repeat(sid, ex.shape[1]), ex.ravel().astype(np.int64)), 1.0)
    return n, c


def _distinct_vs_batch(tr: Trace, li: int, grid: Sequence[int], steps: list[np.ndarray],
                       pool: np.ndarray) -> tuple[dict, dict, dict]:
    from scipy.special import gammaln

    e = tr.num_experts
    rows_pool = layer_rows(tr, li, pool)
    n_pool = len(rows_pool)
    c_pool = expert_counts(rows_pool, e)
    n_step, c_step = _step_count_matrix(tr, li, steps)
    max_step = int(n_step.max()) if len(n_step) else 0
    same, pooled, method = {}, {}, {}
    for b in grid:
        if b > n_pool:
            break
        pooled[str(b)] = round(expected_distinct_subset(c_pool, n_pool, b), 4)
        if b == 1:
            same[str(b)] = round(float(tr.top_k), 4)
            method[str(b)] = "exact"
        elif b <= max_step and max_step >= 2:
            el = n_step >= b
            n = n_step[el][:, None].astype(float)
            nm = n - c_step[el]
            with np.errstate(invalid="ignore"):
                lr = np.where(nm >= b, gammaln(nm + 1) - gammaln(np.maximum(nm - b + 1, 1e-300))
                              - gammaln(n + 1) + gammaln(n - b + 1), -np.inf)
            vals = (1.0 - np.exp(lr)).sum(axis=1)
            same[str(b)] = round(float(vals.mean()), 4)
            method[str(b)] = f"same-step ({int(el.sum())} decode steps with >= {b} rows)"
        else:
            same[str(b)] = pooled[str(b)]
            method[str(b)] = "pooled (random decode tokens)"
    return same, pooled, method


def _distinct_vs_chunk(tr: Trace, li: int, grid: Sequence[int]) -> dict:
    """Mean distinct experts over contiguous windows of C tokens inside prefill passes."""
    if not tr.has_pass_structure:
        return {}
    pre = tr.phase == PREFILL
    e = tr.num_experts
    out: dict = {}
    passes = [np.nonzero(pre & (tr.pass_id == p))[0] for p in np.unique(tr.pass_id[pre])]
    for c in grid:
        vals = []
        for rows in passes:
            r = tr.experts[rows, li, :]
            r = r[(r >= 0).all(axis=1)]
            if len(r) < c:
                continue
            mh = multi_hot(r, e).astype(np.int32)
            cum = np.vstack([np.zeros((1, e), dtype=np.int32), np.cumsum(mh, axis=0)])
            win = cum[c:] - cum[:-c]
            stride = max(1, (len(win)) // 256)
            vals.append((win[::stride] > 0).sum(axis=1).mean())
        if vals:
            out[str(c)] = round(float(np.mean(vals)), 3)
    return out


def _reuse_and_lru(tr: Trace, li: int, chains: list[np.ndarray]) -> tuple[Optional[float], int, list, float]:
    """Mean fraction of a token's experts also used by the previous token of its request; the
    steady-state LRU hit-rate curve (index = cache size 0..E); the compulsory-miss share.

    LRU with whole-token updates: an expert needed at token t, last used at token s, is a hit in a
    cache of C experts iff the experts used in tokens s..t-1 number at most C."""
    e, k = tr.num_experts, tr.top_k
    overlaps, hist, cold, total = [], np.zeros(e + 2, dtype=np.int64), 0, 0
    for ch in chains:
        r = tr.experts[ch, li, :]
        ok = (r >= 0).all(axis=1)
        if ok.sum() < 2:
            continue
        mh_all = multi_hot(np.where(r >= 0, r, 0), e)
        both = ok[1:] & ok[:-1]
        overlaps.append(((mh_all[1:] & mh_all[:-1]).sum(axis=1) / k)[both])
        r = r[ok].astype(np.int64)
        n = len(r)
        mh = mh_all[ok]
        idx = np.where(mh, np.arange(n)[:, None], -1)
        last_incl = np.maximum.accumulate(idx, axis=0)          # last use at or before t
        lb = np.vstack([np.full((1, e), -1), last_incl[:-1]])    # last use strictly before t
        s = np.take_along_axis(lb, r, axis=1)                    # [n, k] last use of each needed expert
        seen = s >= 0
        total += r.size
        cold += int((~seen).sum())
        d = (lb[:, None, :] >= s[:, :, None]).sum(axis=2)       # [n, k]
        hist += np.bincount(d[seen], minlength=e + 2)[: e + 2]
    if not overlaps:
        return None, 0, [], 0.0
    ov = np.concatenate(overlaps)
    warm = max(1, total - cold)
    curve = (np.cumsum(hist[: e + 1]) / warm).tolist()
    return float(ov.mean()), int(len(ov)), [round(x, 4) for x in curve], cold / max(1, total)


def _nmi(a: np.ndarray, b: np.ndarray, e: int) -> float:
    """NMI between the expert sets of the same tokens in two layers (all k×k id pairs)."""
    n, k = a.shape
    joint = np.zeros((e, e))
    ia = np.repeat(a, k, axis=1).ravel()
    ib = np.tile(b, (1, k)).ravel()
    np.add.at(joint, (ia, ib), 1.0)
    joint /= joint.sum()
    pa, pb = joint.sum(1), joint.sum(0)
    nz = joint > 0
    mi = float((joint[nz] * np.log(joint[nz] / (pa[:, None] * pb[None, :])[nz])).sum())
    ha = float(-(pa[pa > 0] * np.log(pa[pa > 0])).sum())
    hb = float(-(pb[pb > 0] * np.log(pb[pb > 0])).sum())
    return mi / math.sqrt(ha * hb) if ha > 0 and hb > 0 else 0.0


def _ep_stats(tr: Trace, li: int, ep: int, ranks: np.ndarray, steps: list[np.ndarray], pool: np.ndarray,
              rng: np.random.Generator, sample_batch: int = 32) -> dict:
    e, k = tr.num_experts, tr.top_k
    multi = [s for s in steps if len(s) >= 2]
    if multi and np.mean([len(s) for s in steps]) >= 2:
        n, c = _step_count_matrix(tr, li, multi)
        basis = f"recorded decode steps ({len(multi)}, mean batch {np.mean([len(s) for s in multi]):.1f})"
    else:
        rows = layer_rows(tr, li, pool)
        b = min(sample_batch, len(rows))
        if b < 1:
            return {}
        per = max(1, len(rows) // b)
        idx = np.concatenate([rng.permutation(len(rows))[: per * b].reshape(per, b)
                              for _ in range(-(-200 // per))])[:200]
        ids = rows[idx].reshape(200, -1).astype(np.int64)
        c = np.zeros((200, e))
        np.add.at(c, (np.repeat(np.arange(200), ids.shape[1]), ids.ravel()), 1.0)
        n = np.full(200, b)
        basis = f"200 random batches of {b} decode tokens (the trace has no batched steps)"
    onehot = np.zeros((e, ep))
    onehot[np.arange(e), ranks] = 1.0
    good = n > 0
    load = c[good] @ onehot
    dist = (c[good] > 0).astype(float) @ onehot
    imb = load.max(axis=1) / (n[good] * k / ep)
    return {"ep_size": ep, "max_over_mean_load": round(float(imb.mean()), 4),
            "max_rank_load_mean": round(float(load.max(axis=1).mean()), 3),
            "max_rank_distinct_mean": round(float(dist.max(axis=1).mean()), 3), "basis": basis}


def _pass_level_stats(tr: Trace, ep: int, placement) -> dict:
    """Stats for traces that only hold per-pass aggregates (MoE-CAP records)."""
    pt = tr.pass_table()
    ph, tok, batch = pt["phase"], pt["tokens"], pt["batch"]
    dist = pt["distinct"]
    layers = []
    for li, lay in enumerate(tr.layers):
        d = dist[:, li]
        item: dict = {"layer": int(lay) if lay >= 0 else "mean-over-layers"}
        decm = (ph == DECODE) & np.isfinite(d)
        prem = (ph == PREFILL) & np.isfinite(d)
        item["distinct_per_step_mean"] = round(float(d[decm].mean()), 4) if decm.any() else None
        item["distinct_per_prefill_pass_mean"] = round(float(d[prem].mean()), 4) if prem.any() else None
        dvb = {}
        bsz = np.where(batch > 0, batch, tok)
        for b in sorted(set(bsz[decm].tolist())):
            dvb[str(int(b))] = round(float(d[decm & (bsz == b)].mean()), 4)
        item["distinct_vs_batch"] = dvb
        item["distinct_vs_batch_method"] = "as recorded: decode passes grouped by batch size"
        if pt.get("counts") is not None:
            c = pt["counts"][:, li, :]
            item.update(load_stats(c[ph == DECODE].sum(axis=0) if (ph == DECODE).any() else c.sum(axis=0)))
            ranks = placement_ranks(placement, tr.num_experts, ep, c.sum(axis=0))
            imb = []
            for row, n in zip(c[decm], tok[decm]):
                load = np.bincount(ranks, weights=row, minlength=ep)
                if load.sum() > 0:
                    imb.append(load.max() / (load.sum() / ep))
            item["ep"] = {"ep_size": ep, "max_over_mean_load": round(float(np.mean(imb)), 4) if imb else None,
                          "basis": "recorded per-expert counts of decode passes"}
        layers.append(item)
    return {"layers": layers}


def compute_stats(tr: Trace, ep_size: Optional[int] = None, placement="contiguous",
                  batch_sizes: Optional[Sequence[int]] = None, chunks: Sequence[int] = DEFAULT_CHUNKS,
                  seed: int = 0) -> dict:
    """All statistics of ``tr`` as a JSON-ready dict (``layers`` list + summaries)."""
    e, k = tr.num_experts, tr.top_k
    ep = int(ep_size) if ep_size else default_ep_size(e)
    if ep < 1 or ep > e:
        raise UserError(f"--ep-size must be between 1 and the number of experts ({e})")
    grid = sorted(set(int(b) for b in (batch_sizes or DEFAULT_BATCH_SIZES) if int(b) >= 1))
    out: dict = {
        "model": tr.model, "num_experts": e, "top_k": k,
        "num_shared_experts": int(tr.meta.get("num_shared_experts", 0)),
        "num_moe_layers": tr.meta.get("num_moe_layers"), "logged_layers": [int(x) for x in tr.layers],
        "synthetic": tr.is_synthetic, "source": tr.source_label(),
        "pass_structure": tr.meta.get("pass_structure"), "request_ids": tr.meta.get("request_ids"),
        "filters": tr.meta.get("filters", []), "tokens": tr.num_tokens,
        "placement": placement if isinstance(placement, str) else "explicit", "warnings": [],
    }
    pt = tr.pass_table()
    if pt:
        ph, tok = pt["phase"], pt["tokens"]
        dec = ph == DECODE
        bsz = np.where(pt["batch"] > 0, pt["batch"], tok)
        out["passes"] = {
            "count": int(len(ph)), "prefill": int((ph == PREFILL).sum()), "decode": int(dec.sum()),
            "prefill_tokens": [int(x) for x in tok[ph == PREFILL]][:50],
            "decode_batch_first": int(bsz[dec][0]) if dec.any() else None,
            "decode_batch_last": int(bsz[dec][-1]) if dec.any() else None,
            "decode_batch_mean": round(float(bsz[dec].mean()), 4) if dec.any() else None,
            "decode_batch_max": int(bsz[dec].max()) if dec.any() else None,
        }
        if pt.get("distinct") is not None and len(ph) <= 5000 and (tok.max() > 1 or not tr.has_token_level):
            out["per_pass"] = [
                {"pass": i, "phase": PHASE_NAMES.get(int(ph[i]), "unknown"), "tokens": int(tok[i]),
                 "batch": int(bsz[i]), "distinct": [round(float(x), 3) for x in pt["distinct"][i]]}
                for i in range(len(ph))]
    if not tr.has_token_level:
        out.update(_pass_level_stats(tr, ep, placement))
        out["summary"] = _summary(out["layers"])
        return out

    rng = np.random.default_rng(seed)
    pool, basis = decode_mask(tr)
    out["load_basis"] = basis
    steps = decode_steps(tr)
    chains, chain_basis = token_chains(tr)
    out["temporal_reuse_basis"] = chain_basis
    layers = []
    for li, lay in enumerate(tr.layers):
        rows = layer_rows(tr, li, pool)
        c = expert_counts(rows, e)
        item: dict = {"layer": int(lay), "tokens": int(len(rows))}
        if pt and pt.get("distinct") is not None:
            d = pt["distinct"][:, li]
            item["distinct_per_step_mean"] = round(float(d[pt["phase"] == DECODE].mean()), 4) \
                if (pt["phase"] == DECODE).any() else None
            pre = pt["phase"] == PREFILL
            item["distinct_per_prefill_pass"] = [int(x) for x in d[pre]][:50]
        else:
            item["distinct_per_step_mean"] = None
        item.update(load_stats(c))
        same, pooled, method = _distinct_vs_batch(tr, li, grid, steps, pool)
        item["distinct_vs_batch"] = same
        item["distinct_vs_batch_method"] = method
        item["distinct_vs_batch_pooled"] = pooled
        item["distinct_vs_batch_uniform"] = {b: round(e * (1 - (1 - k / e) ** int(b)), 4) for b in same}
        chunk = _distinct_vs_chunk(tr, li, chunks)
        if chunk:
            item["distinct_vs_prefill_chunk"] = chunk
        q = c / max(1, len(rows))
        item["temporal_reuse_chance"] = round(float((q ** 2).sum() / k), 4)
        reuse, npairs, lru, cold = _reuse_and_lru(tr, li, chains)
        item["temporal_reuse"] = None if reuse is None else round(reuse, 4)
        item["temporal_reuse_pairs"] = npairs
        if lru:
            item["lru_hit_rate"] = lru
            item["lru_cold_miss_share"] = round(cold, 4)
        if li + 1 < len(tr.layers):
            ok = (tr.experts[:, li, :] >= 0).all(1) & (tr.experts[:, li + 1, :] >= 0).all(1)
            a, b = tr.experts[ok, li, :], tr.experts[ok, li + 1, :]
            if len(a) >= 50:
                item["cross_layer_next"] = int(tr.layers[li + 1])
                item["cross_layer_nmi"] = round(_nmi(a, b, e), 4)
                item["cross_layer_nmi_shuffled"] = round(_nmi(a, b[rng.permutation(len(b))], e), 4)
        ranks = placement_ranks(placement, e, ep, c)
        item["ep"] = _ep_stats(tr, li, ep, ranks, steps, pool, rng)
        layers.append(item)
    out["layers"] = layers
    out["summary"] = _summary(layers)
    if tr.meta.get("pass_structure") == "inferred":
        out["warnings"].append("forward-pass boundaries were inferred, not recorded (see meta notes)")
    if tr.is_synthetic:
        out["warnings"].append("SYNTHETIC trace: not measured routing")
    return out


def _summary(layers: list[dict]) -> dict:
    """Means over layers of the headline numbers."""
    def mean_of(key):
        vals = [it[key] for it in layers if isinstance(it.get(key), (int, float))]
        return round(float(np.mean(vals)), 4) if vals else None

    s = {key: mean_of(key) for key in ("distinct_per_step_mean", "max_over_mean", "gini", "entropy",
                                       "temporal_reuse", "temporal_reuse_chance", "cross_layer_nmi")}
    bs = sorted({b for it in layers for b in it.get("distinct_vs_batch", {})}, key=int)
    s["distinct_vs_batch"] = {b: round(float(np.mean([it["distinct_vs_batch"][b] for it in layers
                                                      if b in it.get("distinct_vs_batch", {})])), 4) for b in bs}
    eps = [it["ep"] for it in layers if it.get("ep") and it["ep"].get("max_over_mean_load") is not None]
    if eps:
        s["ep_size"] = eps[0]["ep_size"]
        s["ep_max_over_mean_load"] = round(float(np.mean([x["max_over_mean_load"] for x in eps])), 4)
    return s
