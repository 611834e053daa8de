"""Sampling helpers shared by the routing profiles and the trace fitter/synthesiser: the one
water-filling routine (inclusion probabilities that sum to k with none above 1) and systematic
top-k sampling from such probabilities."""

from __future__ import annotations

import numpy as np


def waterfill_rows(w: np.ndarray, m: np.ndarray) -> np.ndarray:
    """Rows of non-negative weights scaled to sum ``m`` (per row) with entries capped at 1."""
    w = np.asarray(w, dtype=float)
    m = np.asarray(m, dtype=float)
    p = np.zeros_like(w)
    capped = np.zeros(w.shape, dtype=bool)
    for _ in range(w.shape[1] + 1):
        free_w = np.where(capped, 0.0, w)
        s = free_w.sum(axis=1)
        rem = m - capped.sum(axis=1)
        scale = np.divide(rem, s, out=np.zeros_like(s), where=s > 0)
        p = np.where(capped, 1.0, free_w * scale[:, None])
        over = p > 1.0 + 1e-12
        if not over.any():
            break
        capped |= over
    return np.minimum(p, 1.0)


def sample_topk(p: np.ndarray, m: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """For each row, ``m`` distinct experts with inclusion probabilities ``p`` (rows sum to ``m``,
    entries <= 1), by systematic sampling in a random order.  Returns ids, -1 padded to max(m)."""
    p = np.asarray(p, dtype=float)
    n, e = p.shape
    m = np.asarray(m, dtype=int)
    if n == 0:
        return np.zeros((0, int(m.max(initial=0))), dtype=np.int64)
    order = np.argsort(rng.random((n, e)), axis=1)
    pp = np.take_along_axis(p, order, axis=1)
    cum = np.cumsum(pp, axis=1)
    tot = cum[:, -1:]
    cum = cum * np.divide(m[:, None], tot, out=np.ones_like(tot), where=tot > 0)
    u = rng.random(n)[:, None]
    hi = np.floor(cum - u + 1e-12)
    lo = np.concatenate([np.floor(-u + 1e-12), hi[:, :-1]], axis=1)
    sel = hi > lo
    kmax = int(m.max(initial=0))
    out = np.full((n, kmax), -1, dtype=np.int64)
    cnt = sel.sum(axis=1)
    # rows where rounding lost/added a pick: fix by taking the largest remaining probabilities
    bad = cnt != m
    if bad.any():
        for i in np.nonzero(bad)[0]:
            ranked = order[i][np.argsort(-pp[i], kind="stable")]
            pick = list(order[i][sel[i]])[: m[i]]
            for x in ranked:
                if len(pick) >= m[i]:
                    break
                if x not in pick:
                    pick.append(x)
            out[i, : m[i]] = pick
    good = ~bad
    if good.any():
        ids = np.where(sel[good], order[good], e)
        ids = np.sort(ids, axis=1)[:, :kmax]
        ids[ids == e] = -1
        out[good] = ids
    return out


def waterfill(w: np.ndarray, total: float) -> np.ndarray:
    """Scale non-negative weights to sum ``total`` with no entry above 1 (capped entries fixed at
    1): :func:`waterfill_rows` for one row."""
    return waterfill_rows(np.asarray(w, dtype=float)[None, :], np.array([float(total)]))[0]
