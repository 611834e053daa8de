"""Fit a routing profile (``moecap-sim trace fit``) to one or more traces of one model.

See :mod:`moecap_sim.routing.profiles` for the model.  Besides the parameters, the profile keeps
fit diagnostics: the measured distinct-experts-vs-B curve next to the profile's prediction, the
per-decode-step reproduction (recorded vs predicted distinct experts per step, with the sampling
noise floor a perfect model would show), and the EP imbalance measured vs predicted.
"""

from __future__ import annotations

import math
from typing import Optional, Sequence

import numpy as np

from moecap_sim.errors import UserError
from moecap_sim.routing.profiles import PROFILE_FORMAT, FittedProfile, lognormal_q, transfer_parameters
from moecap_sim.routing.sampling import sample_topk, waterfill, waterfill_rows
from moecap_sim.traces.format import DECODE, Trace
from moecap_sim.traces.known import canonical_model_name
from moecap_sim.traces.stats import compute_stats, decode_mask, expert_counts, layer_rows

PSEUDO_COUNT = 0.5
SIGMA_FIT_B = (1, 2, 4, 8, 16, 32, 64)


# --- small numerical pieces ------------------------------------------------------------------

def q_from_counts(counts: np.ndarray, n_tokens: int, top_k: int) -> np.ndarray:
    c = np.asarray(counts, dtype=float)
    e = len(c)
    return waterfill((c + PSEUDO_COUNT) / (n_tokens + PSEUDO_COUNT * e), top_k)


def distinct_beta(q: np.ndarray, b: np.ndarray, kappa: float) -> np.ndarray:
    """Expected distinct experts for batch sizes ``b`` under the Beta in-batch model."""
    from scipy.special import gammaln

    b = np.atleast_1d(np.asarray(b, dtype=float))
    if not np.isfinite(kappa):
        return np.array([np.sum(1 - (1 - q) ** x) for x in b])
    bb = kappa * (1 - q)
    pos = bb > 0
    out = []
    for x in b:
        log0 = np.full(len(q), -np.inf)
        log0[pos] = gammaln(bb[pos] + x) - gammaln(bb[pos]) - gammaln(kappa + x) + gammaln(kappa)
        out.append(np.sum(1 - np.exp(log0)))
    return np.array(out)


def _golden(f, lo: float, hi: float, iters: int = 60) -> float:
    g = (math.sqrt(5) - 1) / 2
    a, b = lo, hi
    c, d = b - g * (b - a), a + g * (b - a)
    fc, fd = f(c), f(d)
    for _ in range(iters):
        if fc < fd:
            b, d, fd = d, c, fc
            c = b - g * (b - a)
            fc = f(c)
        else:
            a, c, fc = c, d, fd
            d = a + g * (b - a)
            fd = f(d)
    return (a + b) / 2


def fit_sigma(q: np.ndarray, top_k: int) -> float:
    """Log-normal skew whose independent-token distinct curve best matches that of ``q``."""
    e = len(q)
    bs = np.array(SIGMA_FIT_B, dtype=float)
    target = distinct_beta(q, bs, np.inf)
    return float(_golden(lambda s: float(np.sum((distinct_beta(lognormal_q(s, e, top_k), bs, np.inf) / target - 1) ** 2)),
                         0.0, 4.0))


def fit_kappa(q: np.ndarray, batch: np.ndarray, distinct: np.ndarray) -> float:
    """In-batch correlation kappa minimising the squared error of per-step distinct counts
    (``inf`` when independence fits best)."""
    batch = np.asarray(batch, dtype=float)
    distinct = np.asarray(distinct, dtype=float)
    ub, inv = np.unique(batch, return_inverse=True)

    def sse(logk: float) -> float:
        pred = distinct_beta(q, ub, 10 ** logk)[inv]
        return float(np.sum((pred - distinct) ** 2))

    best = _golden(sse, -1.0, 6.0)
    if sse(best) >= float(np.sum((distinct_beta(q, ub, np.inf)[inv] - distinct) ** 2)):
        return float("inf")
    return float(10 ** best)


def distinct_steps(q: np.ndarray, b: np.ndarray, u: np.ndarray) -> np.ndarray:
    """Expected distinct experts per step for batch sizes ``b`` and ``u = 1/kappa`` per step."""
    from scipy.special import gammaln

    b = np.asarray(b, dtype=float)
    u = np.asarray(u, dtype=float)
    out = np.empty(len(b))
    ind = u <= 1e-12
    if ind.any():
        out[ind] = (1 - (1 - q[None, :]) ** b[ind, None]).sum(axis=1)
    if (~ind).any():
        kap = 1.0 / u[~ind]
        bb = kap[:, None] * (1 - q[None, :])
        bq = b[~ind, None]
        with np.errstate(divide="ignore", invalid="ignore"):
            log0 = np.where(bb > 0, gammaln(bb + bq) - gammaln(np.maximum(bb, 1e-300))
                            - gammaln(kap + b[~ind])[:, None] + gammaln(kap)[:, None], -np.inf)
        out[~ind] = (1 - np.exp(log0)).sum(axis=1)
    return out


FAST_TAUS = (1, 2, 4)
SLOW_TAUS = (8, 16, 32)


def kappa_schedule(kappa_inf: float, transient, steps: np.ndarray) -> np.ndarray:
    """``u = 1/kappa`` at each decode step since a synchronised start."""
    steps = np.asarray(steps, dtype=float)
    u = np.full(len(steps), 0.0 if not np.isfinite(kappa_inf) else 1.0 / kappa_inf)
    for a, tau in transient:
        u = u + a * np.exp(-steps / max(tau, 1e-9))
    return u


def _distinct_grid(q: np.ndarray, b: np.ndarray, u: np.ndarray) -> np.ndarray:
    """Distinct experts for a grid of schedules: ``u`` is [G, steps], ``b`` [steps] → [G, steps]."""
    from scipy.special import gammaln

    u = np.asarray(u, dtype=float)
    b = np.asarray(b, dtype=float)
    out = np.empty(u.shape)
    ind = u <= 1e-12
    base = (1 - (1 - q[None, :]) ** b[:, None]).sum(axis=1)  # independent, per step
    out[ind] = np.broadcast_to(base, u.shape)[ind]
    if (~ind).any():
        kap = 1.0 / u[~ind]
        bq = np.broadcast_to(b, u.shape)[~ind]
        bb = kap[:, None] * (1 - q[None, :])
        with np.errstate(divide="ignore", invalid="ignore"):
            log0 = np.where(bb > 0, gammaln(bb + bq[:, None]) - gammaln(np.maximum(bb, 1e-300))
                            - gammaln(kap + bq)[:, None] + gammaln(kap)[:, None], -np.inf)
        out[~ind] = (1 - np.exp(log0)).sum(axis=1)
    return out


class _DistinctTable:
    """Exact distinct counts on a fine log grid of ``u = 1/kappa`` for each batch size, then
    interpolated — makes the least-squares grid search cheap."""

    U_MIN = 1e-5

    def __init__(self, q: np.ndarray, batch: np.ndarray):
        self.ub, self.inv = np.unique(np.asarray(batch, dtype=float), return_inverse=True)
        self.lu = np.linspace(np.log(self.U_MIN), np.log(20.0), 140)
        grid = np.exp(self.lu)
        u = np.broadcast_to(grid[None, :], (len(self.ub), len(grid)))
        b = np.broadcast_to(self.ub[:, None], u.shape)
        self.table = _distinct_grid(q, b.ravel(), u.ravel()[None, :])[0].reshape(u.shape)
        self.indep = (1 - (1 - q[None, :]) ** self.ub[:, None]).sum(axis=1)

    def __call__(self, u: np.ndarray) -> np.ndarray:
        """``u``: [G, steps] → distinct [G, steps]."""
        u = np.atleast_2d(u)
        out = np.empty(u.shape)
        lu = np.log(np.maximum(u, self.U_MIN))
        for j in range(len(self.ub)):
            cols = self.inv == j
            vals = np.interp(lu[:, cols], self.lu, self.table[j])
            small = u[:, cols] < self.U_MIN
            # linear in u between independence (u=0) and the first grid point
            t0 = self.table[j, 0]
            vals = np.where(small, self.indep[j] + (t0 - self.indep[j]) * u[:, cols] / self.U_MIN, vals)
            out[:, cols] = vals
        return out


def fit_kappa_transient(q: np.ndarray, batch: np.ndarray, steps: np.ndarray, distinct: np.ndarray
                        ) -> tuple[float, list]:
    """Fit ``kappa_inf`` and a two-component start transient ``[[a1, tau1], [a2, tau2]]`` (fast
    tau1 in FAST_TAUS, slow tau2 in SLOW_TAUS) to recorded per-step distinct counts by least
    squares over a grid."""
    batch = np.asarray(batch, dtype=float)
    distinct = np.asarray(distinct, dtype=float)
    steps = np.asarray(steps, dtype=float)
    table = _DistinctTable(q, batch)
    u_grid = np.concatenate([[0.0], np.geomspace(1e-4, 0.05, 10)])
    a_grid = np.concatenate([[0.0], np.geomspace(1e-3, 10.0, 16)])
    na = len(a_grid)
    best = (np.inf, 0.0, 0.0, 1.0, 0.0, 8.0)
    for t1 in FAST_TAUS:
        d1 = np.exp(-steps / t1)
        for t2 in SLOW_TAUS:
            d2 = np.exp(-steps / t2)
            u = (u_grid[:, None, None, None] + a_grid[None, :, None, None] * d1 +
                 a_grid[None, None, :, None] * d2).reshape(-1, len(steps))
            err = ((table(u) - distinct[None, :]) ** 2).sum(axis=1)
            i = int(np.argmin(err))
            if err[i] < best[0] - 1e-12:
                iu, rest = divmod(i, na * na)
                i1, i2 = divmod(rest, na)
                best = (float(err[i]), float(u_grid[iu]), float(a_grid[i1]), float(t1), float(a_grid[i2]), float(t2))
    _, u_inf, a1, t1, a2, t2 = best
    k_inf = np.inf if u_inf <= 0 else 1.0 / u_inf
    return float(k_inf), [[a1, t1], [a2, t2]]


def _noise_floor_mape(q: np.ndarray, batch: np.ndarray, u: np.ndarray, top_k: int, rng, reps: int = 5) -> float:
    """MAPE per step that even a perfect model shows: simulated steps vs their expectation."""

    exp = distinct_steps(q, batch, u)
    b = batch.astype(int)
    e = len(q)
    sid = np.repeat(np.arange(len(b)), b)
    errs = []
    for _ in range(reps):
        kap = np.where(u > 1e-12, 1.0 / np.maximum(u, 1e-300), np.inf)
        pi = np.broadcast_to(q, (len(b), e)).copy()
        fin = np.isfinite(kap)
        if fin.any():
            a = np.maximum(kap[fin, None] * q[None, :], 1e-9)
            bb = np.maximum(kap[fin, None] * (1 - q[None, :]), 1e-9)
            pi[fin] = waterfill_rows(rng.beta(a, bb), np.full(int(fin.sum()), top_k))
        rows = sample_topk(pi[sid], np.full(len(sid), top_k), rng)
        used = np.zeros((len(b), e), dtype=bool)
        used[np.repeat(sid, top_k), rows.ravel()] = True
        errs.append(np.mean(np.abs(used.sum(axis=1) / exp - 1)))
    return float(np.mean(errs))


# --- combining traces --------------------------------------------------------------------------

def concat_traces(traces: Sequence[Trace]) -> Trace:
    if len(traces) == 1:
        return traces[0]
    t0 = traces[0]
    for t in traces[1:]:
        if (t.num_experts, t.top_k) != (t0.num_experts, t0.top_k) or not np.array_equal(t.layers, t0.layers):
            raise UserError("traces to fit together must have the same experts, top-k and logged layers")
        if canonical_model_name(t.model) != canonical_model_name(t0.model):
            raise UserError(f"traces of different models ({t0.model}, {t.model}) cannot be fitted together")
        if not t.has_token_level:
            raise UserError("pass-level (MoE-CAP) records are fitted one file at a time")
    pid_off, req_off = 0, 0
    parts = {k: [] for k in ("experts", "pass_id", "phase", "request", "position")}
    for t in traces:
        parts["experts"].append(t.experts)
        parts["pass_id"].append(np.where(t.pass_id >= 0, t.pass_id + pid_off, -1))
        parts["request"].append(np.where(t.request >= 0, t.request + req_off, -1))
        parts["phase"].append(t.phase)
        parts["position"].append(t.position)
        pid_off += int(t.pass_id.max()) + 1 if t.num_tokens else 0
        req_off += int(t.request.max()) + 1 if t.num_tokens else 0
    meta = dict(t0.meta)
    files = []
    for t in traces:
        files += (t.meta.get("source") or {}).get("files", [])
    meta["source"] = dict(meta.get("source") or {}, files=files)
    meta["filters"] = sorted({f for t in traces for f in t.meta.get("filters", [])})
    meta["dataset"] = "; ".join(dict.fromkeys(str(t.meta.get("dataset")) for t in traces))
    meta["synthetic"] = any(t.is_synthetic for t in traces)
    return Trace(meta=meta, layers=t0.layers, experts=np.concatenate(parts["experts"]),
                 pass_id=np.concatenate(parts["pass_id"]), phase=np.concatenate(parts["phase"]),
                 request=np.concatenate(parts["request"]), position=np.concatenate(parts["position"]))


def _source_line(tr: Trace) -> str:
    m = tr.meta
    if tr.is_synthetic:
        return "synthetic: fitted to a synthetic trace (" + str((m.get("source") or {}).get("description", "")) + ")"
    src = m.get("source") or {}
    files = [f["path"] for f in src.get("files", [])]
    if len(files) > 2:
        common = files[0].rsplit("/", 1)[0] + "/" if "/" in files[0] else ""
        files = [common + "{" + ",".join(f.rsplit("/", 1)[-1] for f in files) + "}"]
    where = src.get("repo", "local file").replace("https://github.com/", "")
    commit = str(src.get("commit", ""))[:7]
    at = f"{where}@{commit}" if commit else where
    return (f"profile fitted to real trace {at} {', '.join(files)} "
            f"({m.get('hf_id') or m.get('model')}; {m.get('dataset', '?')}; {m.get('engine', '?').split(',')[0]})")


# --- the fit ---------------------------------------------------------------------------------------

def fit_profile(traces: Sequence[Trace], model: Optional[str] = None, kappa: Optional[float] = None,
                seed: int = 0) -> FittedProfile:
    """Fit a :class:`FittedProfile` to ``traces`` (one model)."""
    tr = concat_traces(list(traces))
    name = canonical_model_name(model or tr.meta.get("model")) or "unknown"
    e, k = tr.num_experts, tr.top_k
    rng = np.random.default_rng(seed)
    if not tr.has_token_level:
        return _fit_pass_level(tr, name, kappa)
    st = compute_stats(tr)
    pt = tr.pass_table()
    dec_pass = (pt["phase"] == DECODE) if pt else np.array([], dtype=bool)
    batched = bool(pt) and dec_pass.any() and float(np.mean(pt["tokens"][dec_pass])) >= 2
    kappa_basis = "given" if kappa is not None else None
    tp: dict = {}
    if kappa is None and not batched:
        tp = transfer_parameters(exclude=name)
        kappa_basis = (f"transferred: medians of the in-batch correlation fitted to the batched traces "
                       f"({', '.join(tp['models'])}); this trace has no batched decode steps") if tp.get("measured") else \
            "none: independent tokens assumed (no batched decode steps and no batched trace to transfer from)"
    if kappa_basis is None:
        kappa_basis = ("measured: synchronised-start model fitted to the recorded distinct experts of each "
                       "batched decode step (kappa = steady state; transient = [[a, tau], ...] in 1/kappa units)")
    pool, pool_basis = decode_mask(tr)
    layers, diag_layers = [], []
    for li, lay in enumerate(tr.layers):
        rows = layer_rows(tr, li, pool)
        n = len(rows)
        if n == 0:
            raise UserError(f"layer {lay}: no complete token rows to fit")
        q = q_from_counts(expert_counts(rows, e), n, k)
        item: dict = {"layer": int(lay), "tokens": n}
        step_idx = np.arange(int(dec_pass.sum())) if batched else np.zeros(0)
        if batched and kappa is None:
            kap, trans = fit_kappa_transient(q, pt["tokens"][dec_pass], step_idx, pt["distinct"][dec_pass, li])
            item["kappa_measured"] = True
        elif kappa is not None:
            kap, trans = float(kappa), []
            item["kappa_measured"] = False
        else:
            kap = float(tp.get("kappa") or np.inf)
            trans = [list(c) for c in tp.get("transient", [])]
            item["kappa_measured"] = False
        item["kappa"] = None if not np.isfinite(kap) else kap
        u0 = float(kappa_schedule(kap, trans, [0.0])[0])
        item["kappa_start"] = None if u0 <= 0 else 1.0 / u0
        item["transient"] = trans
        s_item = st["layers"][li]
        reuse, chance = s_item.get("temporal_reuse"), s_item.get("temporal_reuse_chance")
        item["reuse"] = reuse
        item["reuse_chance"] = chance
        item["rho"] = None if reuse is None else max(0.0, (reuse - chance) / max(1e-9, 1 - chance))
        item["lru_hit_rate"] = s_item.get("lru_hit_rate")
        item["sigma"] = fit_sigma(q, k)
        item["q"] = q.tolist()
        layers.append(item)
        # diagnostics: measured vs predicted curves
        measured = s_item["distinct_vs_batch"]
        bs = [int(b) for b in measured]
        if batched:
            nsz = pt["tokens"][dec_pass]
            sched = kappa_schedule(kap, trans, step_idx)
            pred_same = np.array([float(np.mean(distinct_steps(q, np.full(int((nsz >= b).sum()), b),
                                                               sched[nsz >= b]))) if (nsz >= b).any() else 0.0
                                  for b in bs])
        else:
            pred_same = distinct_beta(q, np.array(bs), kap)
        pred_pool = distinct_beta(q, np.array(bs), np.inf)
        methods = s_item["distinct_vs_batch_method"]
        pred = [float(ps if methods[str(b)].startswith("same-step") else pp)
                for b, ps, pp in zip(bs, pred_same, pred_pool)]
        d = {"layer": int(lay), "distinct_vs_batch_measured": measured,
             "distinct_vs_batch_predicted": {str(b): round(v, 4) for b, v in zip(bs, pred)},
             "distinct_vs_batch_max_rel_err": round(max(abs(p / measured[str(b)] - 1) for b, p in zip(bs, pred)), 5)}
        if batched:
            bsz = pt["tokens"][dec_pass].astype(float)
            rec = pt["distinct"][dec_pass, li]
            u = kappa_schedule(kap, trans, step_idx)
            prd = distinct_steps(q, bsz, u)
            steady = distinct_beta(q, bsz, kap)
            late = step_idx >= 16
            half = (step_idx // 8) % 2 == 0
            cv = fit_kappa_transient(q, bsz[half], step_idx[half], rec[half]) if kappa is None else (kap, trans)
            prd_cv = distinct_steps(q, bsz[~half], kappa_schedule(cv[0], cv[1], step_idx[~half]))
            d["per_step"] = {
                "steps": int(len(rec)), "recorded_mean": round(float(rec.mean()), 4),
                "predicted_mean": round(float(prd.mean()), 4),
                "mean_rel_err": round(float(prd.mean() / rec.mean() - 1), 5),
                "mape": round(float(np.mean(np.abs(prd / rec - 1))), 5),
                "noise_floor_mape": round(_noise_floor_mape(q, bsz, u, k, rng), 5),
                "holdout_blocks_mean_rel_err": round(float(prd_cv.mean() / rec[~half].mean() - 1), 5),
                "steady_state_after_16_steps_mean_rel_err": round(float(steady[late].mean() / rec[late].mean() - 1), 5)
                if late.any() else None,
                "stationary_kappa_mape": None,
                "independent_tokens_mean_rel_err": round(float(distinct_beta(q, bsz, np.inf).mean() / rec.mean() - 1), 5),
            }
            try:
                ks = fit_kappa(q, bsz, rec)
                d["per_step"]["stationary_kappa_mape"] = round(float(np.mean(np.abs(distinct_beta(q, bsz, ks) / rec - 1))), 5)
            except Exception:  # pragma: no cover - diagnostic only
                pass
        if s_item.get("ep"):
            d["ep_measured"] = s_item["ep"]
        diag_layers.append(d)

    data = {
        "format": PROFILE_FORMAT, "kind": "synthetic" if tr.is_synthetic else "profile", "model": name,
        "source": _source_line(tr), "num_experts": e, "top_k": k,
        "num_shared_experts": int(tr.meta.get("num_shared_experts", 0)),
        "num_moe_layers": int(tr.meta.get("num_moe_layers") or (int(tr.layers.max()) + 1)),
        "provenance": {
            "hf_id": tr.meta.get("hf_id"), "dataset": tr.meta.get("dataset"), "engine": tr.meta.get("engine"),
            "license": tr.meta.get("license"), "source": tr.meta.get("source"),
            "filters": tr.meta.get("filters", []), "notes": tr.meta.get("notes", []),
            "pass_structure": tr.meta.get("pass_structure"), "request_ids": tr.meta.get("request_ids"),
            "tokens_used": pool_basis, "temporal_reuse_basis": st.get("temporal_reuse_basis"),
        },
        "kappa_basis": kappa_basis,
        "notes": _coverage_note(tr),
        "layers": layers,
    }
    prof = FittedProfile(data)
    # EP diagnostics need the profile itself
    for d, s_item in zip(diag_layers, st["layers"]):
        ep = s_item.get("ep") or {}
        if ep.get("max_over_mean_load"):
            bmean = (float(np.mean(pt["tokens"][dec_pass])) if batched else
                     float(ep["basis"].split("batches of ")[1].split()[0]))
            li = int(d["layer"])
            pred_load = prof.ep_max_rank_load(round(bmean), ep["ep_size"], li)
            d["ep_predicted_max_over_mean_load"] = round(pred_load / (round(bmean) * k / ep["ep_size"]), 4)
    data["fit"] = {"pseudo_count": PSEUDO_COUNT, "layers": diag_layers}
    if batched:
        ps = [d["per_step"] for d in diag_layers]
        data["fit"]["per_step_summary"] = {
            "mean_rel_err_max_abs": round(max(abs(p["mean_rel_err"]) for p in ps), 5),
            "holdout_mean_rel_err_max_abs": round(max(abs(p["holdout_blocks_mean_rel_err"]) for p in ps), 5),
            "steady_state_mean_rel_err_max_abs": round(max(abs(p["steady_state_after_16_steps_mean_rel_err"] or 0)
                                                           for p in ps), 5),
            "mape_mean": round(float(np.mean([p["mape"] for p in ps])), 5),
            "noise_floor_mape_mean": round(float(np.mean([p["noise_floor_mape"] for p in ps])), 5),
        }
    return FittedProfile(data)


def _coverage_note(tr: Trace) -> list[str]:
    L = int(tr.meta.get("num_moe_layers") or 0)
    got = [int(x) for x in tr.layers]
    notes = []
    if L and len(got) < L:
        if len(got) == 1:
            notes.append(f"only MoE layer {got[0]} of {L} was traced: all layers use its statistics (extrapolated)")
        else:
            notes.append(f"MoE layers {got} of {L} traced; the others are interpolated between them")
    return notes


def _fit_pass_level(tr: Trace, name: str, kappa: Optional[float]) -> FittedProfile:
    """Profiles from MoE-CAP records: q from per-expert counts when recorded, else a log-normal
    skew fitted to the recorded distinct-vs-batch points."""
    pt = tr.pass_table()
    e, k = tr.num_experts, tr.top_k
    dec = pt["phase"] == DECODE
    use = dec if dec.any() else np.ones(len(dec), dtype=bool)
    bsz = np.where(pt["batch"] > 0, pt["batch"], pt["tokens"]).astype(float)
    ok = use & (bsz > 0)
    if not ok.any():
        raise UserError("the records hold no pass with a known batch size to fit")
    tp_kappa = kappa if kappa is not None else transfer_parameters(exclude=name).get("kappa")
    layers = []
    for li, lay in enumerate(tr.layers):
        d = pt["distinct"][:, li]
        good = ok & np.isfinite(d)
        item = {"layer": int(lay) if lay >= 0 else 0}
        if pt.get("counts") is not None:
            c = pt["counts"][good, li, :].sum(axis=0)
            ntok = int(round(c.sum() / k))
            q = q_from_counts(c, max(1, ntok), k)
            kap = fit_kappa(q, bsz[good], d[good]) if kappa is None else float(kappa)
            item["kappa_measured"] = kappa is None
        else:
            kap = float(tp_kappa) if tp_kappa else float("inf")

            def err(s):
                return float(np.sum((distinct_beta(lognormal_q(s, e, k), bsz[good], kap) - d[good]) ** 2))

            sig = _golden(err, 0.0, 4.0)
            q = lognormal_q(sig, e, k)
            item["kappa_measured"] = False
        item.update({"tokens": int(bsz[good].sum()), "kappa": None if not np.isfinite(kap) else kap,
                     "kappa_start": None if not np.isfinite(kap) else kap, "transient": [],
                     "reuse": None, "rho": None, "lru_hit_rate": None, "sigma": fit_sigma(q, k), "q": q.tolist()})
        layers.append(item)
    data = {
        "format": PROFILE_FORMAT, "kind": "synthetic" if tr.is_synthetic else "profile", "model": name,
        "source": _source_line(tr) + " [MoE-CAP per-pass records]", "num_experts": e, "top_k": k,
        "num_shared_experts": int(tr.meta.get("num_shared_experts", 0)),
        "num_moe_layers": int(tr.meta.get("num_moe_layers") or max(1, len(tr.layers))),
        "provenance": {"source": tr.meta.get("source"), "filters": tr.meta.get("filters", []),
                       "activation_kind": tr.meta.get("activation_kind"), "engine": tr.meta.get("engine")},
        "kappa_basis": ("measured from per-pass counts" if pt.get("counts") is not None and kappa is None
                        else "transferred from the batched real traces" if tp_kappa else "independent tokens"),
        "notes": (["per-expert counts not recorded: popularity is a log-normal skew fitted to the recorded "
                   "distinct experts per pass"] if pt.get("counts") is None else []) +
                 (["the records give only the mean over layers: one profile layer stands for all"]
                  if tr.meta.get("activation_kind") == "mean" else []),
        "layers": layers,
    }
    return FittedProfile(data)
