"""Forced routing from real upstream traces, and the routing profile handed to the cost model.

Which upstream file feeds which model (``../shared/traces_upstream/``, read in place, never
copied; imported with :func:`moecap_sim.traces.importers.import_sources`, which applies the
documented filters — vLLM warm-up rows dropped, pass structure recorded or inferred):

* **Mixtral-8x7B** — per-token decode traces of all 32 layers (HumanEval + GSM8K, batch 1) and
  one raw prefill of 135 prompt tokens.  A decode batch of B takes B tokens spread evenly over
  the decode rows (different problems and positions, like B concurrent requests); a prefill
  chunk takes the 135 real prefill rows first, then continues with decode-token rows (there is
  no longer recorded prefill).  MoE layer i replays trace layer i.
* **Qwen1.5-MoE-A2.7B** — batched vLLM serving of 25 GSM8K prompts, layers 0/8/12/18/23.  A
  decode batch of B takes the rows of one real decode step (batch 25 → 11), continuing into the
  next steps when B is larger; prefill takes consecutive rows of the real prefill passes.  MoE
  layer i replays logged layer i mod 5 (the trace has 5 of 24 layers).
* **OLMoE-1B-7B** — batched vLLM serving, layer 0 only: every MoE layer replays layer 0 (so
  all layers activate the same expert counts); decode steps of 25/24 rows (inferred), prefill
  from the 1,377-row prefill pass.
* **DeepSeek-V2-Lite** — no trace exists: the layer's own router (random weights) decides, and
  the report says so.

(token, layer) entries missing upstream (Mixtral: the logger drops rows whose gate weights are
exactly [0.5, 0.5], ~1–2 %) are filled with the same layer's routing of the nearest earlier token.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import numpy as np

from moecap_sim.errors import UserError

UPSTREAM = {
    "mixtral-8x7b": {
        "decode": ["Mario928__speculative-moe/humaneval_2_routing.jsonl",
                   "Mario928__speculative-moe/gsm8k_2_routing.jsonl"],
        "prefill": ["Mario928__speculative-moe/routing_raw.jsonl"],
    },
    "qwen1.5-moe-a2.7b": {
        "all": [f"weiran0129__vLLM-MoE-Logger/moe_layer{i}.jsonl" for i in (0, 8, 12, 18, 23)],
    },
    "olmoe-1b-7b": {"all": ["KaxitPandya__cerebras-assesment2/moe_routes.jsonl"]},
}


def default_traces_dir() -> Path:
    import moecap_sim

    return Path(moecap_sim.__file__).resolve().parents[2] / "shared" / "traces_upstream"


def _fill_missing(ex: np.ndarray) -> np.ndarray:
    """Replace rows with -1 (per layer) by the nearest earlier valid row of that layer."""
    ex = ex.copy()
    for li in range(ex.shape[1]):
        bad = (ex[:, li, :] < 0).any(axis=1)
        if not bad.any():
            continue
        good = np.nonzero(~bad)[0]
        if not len(good):
            raise UserError("a trace layer has no valid rows")
        for r in np.nonzero(bad)[0]:
            j = good[np.searchsorted(good, r) - 1] if np.searchsorted(good, r) > 0 else good[0]
            ex[r, li, :] = ex[j, li, :]
    return ex


@dataclass
class TraceRouting:
    """Token routings from a real trace, ready to be cut into decode batches and prefill chunks."""

    model: str
    num_experts: int
    top_k: int
    layer_map: list  # our MoE layer i -> trace column
    trace_layers: list  # MoE-layer index of each trace column
    decode_experts: np.ndarray  # [N, Lt, k]
    decode_steps: list  # row-index arrays of real batched decode steps (empty for batch-1 traces)
    prefill_experts: np.ndarray  # [M, Lt, k] (real prefill rows first)
    prefill_real_rows: int
    source: str
    notes: list = field(default_factory=list)

    def _map(self, ex: np.ndarray) -> np.ndarray:
        return ex[:, self.layer_map, :]

    def decode_batch(self, batch: int, index: int) -> np.ndarray:
        """[batch, our MoE layers, k] expert ids for decode point number ``index``."""
        if self.decode_steps:
            n = len(self.decode_steps)
            s = (index * 7) % n
            rows: list = []
            while len(rows) < batch:
                rows.extend(self.decode_steps[s % n].tolist())
                s += 1
            return self._map(self.decode_experts[np.asarray(rows[:batch])])
        n = len(self.decode_experts)
        stride = max(1, n // batch)
        rows = (index * 37 + np.arange(batch) * stride) % n
        return self._map(self.decode_experts[rows])

    def prefill_chunk(self, tokens: int, index: int = 0) -> np.ndarray:
        """[tokens, our MoE layers, k]: consecutive prefill rows (wrapping), starting at a
        point-dependent offset so different chunks see different prompts."""
        m = len(self.prefill_experts)
        start = (index * 97) % m if tokens < m else 0
        rows = (start + np.arange(tokens)) % m
        return self._map(self.prefill_experts[rows])


def load_trace_routing(model: str, num_moe_layers: int, traces_dir: Optional[Path] = None) -> Optional[TraceRouting]:
    """Routing from the upstream trace of ``model`` (catalog name), or None when it has none."""
    from moecap_sim.traces.importers import import_sources
    from moecap_sim.traces.format import DECODE, PREFILL
    from moecap_sim.traces.stats import decode_steps

    spec = UPSTREAM.get(model)
    if spec is None:
        return None
    base = Path(traces_dir) if traces_dir else default_traces_dir()
    files = {k: [base / f for f in v] for k, v in spec.items()}
    missing = [str(f) for fs in files.values() for f in fs if not f.exists()]
    if missing:
        raise UserError(f"trace files for {model} not found: {', '.join(missing)} "
                        f"(pass --traces-dir pointing at shared/traces_upstream, or --no-trace)")
    notes = []
    if "all" in files:
        tr = import_sources(files["all"])
        dec = tr.phase == DECODE
        pre = tr.phase == PREFILL
        ex = _fill_missing(tr.experts)
        steps_all = decode_steps(tr)
        # re-index decode steps into the decode-row array
        dec_idx = np.nonzero(dec)[0]
        pos = {r: i for i, r in enumerate(dec_idx)}
        steps = [np.asarray([pos[r] for r in s]) for s in steps_all if len(s)]
        decode_ex = ex[dec]
        prefill_ex = ex[pre]
        real_pre = int(pre.sum())
        layers = tr.layers.tolist()
        src = tr.source_label()
    else:
        trd = import_sources(files["decode"])
        trp = import_sources(files["prefill"])
        exd = _fill_missing(trd.experts)
        exp_ = _fill_missing(trp.experts)
        decode_ex = exd[trd.phase == DECODE]
        pre_rows = exp_[trp.phase == PREFILL]
        raw_dec = exp_[trp.phase == DECODE]
        real_pre = len(pre_rows)
        prefill_ex = np.concatenate([pre_rows, raw_dec, decode_ex])
        steps = []
        layers = trd.layers.tolist()
        src = trd.source_label() + "; " + trp.source_label()
        notes.append(f"prefill chunks: the {real_pre} recorded prefill rows first, then decode-token rows "
                     f"(no longer prefill was recorded)")
        notes.append("decode batches: B tokens spread evenly over the batch-1 decode rows (different problems "
                     "and positions stand in for B concurrent requests)")
    tcols = len(layers)
    layer_map = [i % tcols for i in range(num_moe_layers)]
    if tcols < num_moe_layers or layers[:num_moe_layers] != list(range(min(tcols, num_moe_layers))):
        notes.append("MoE layer i replays trace layer " + ", ".join(
            f"{i}->{layers[c]}" for i, c in enumerate(layer_map)) + f" (the trace logs layers {layers})")
    if steps:
        sizes = [len(s) for s in steps]
        notes.append(f"decode batches from real batched decode steps ({len(steps)} steps of {min(sizes)}-{max(sizes)} "
                     f"rows); a batch larger than one step continues with the rows of the following steps")
    e = int(tr.num_experts if "all" in files else trd.num_experts)
    k = int(tr.top_k if "all" in files else trd.top_k)
    return TraceRouting(model=model, num_experts=e, top_k=k, layer_map=layer_map, trace_layers=layers,
                        decode_experts=decode_ex.astype(np.int64), decode_steps=steps,
                        prefill_experts=prefill_ex.astype(np.int64), prefill_real_rows=real_pre, source=src,
                        notes=notes)


@dataclass(frozen=True)
class StepRouting:
    """Routing profile for one measured step: the distinct experts each MoE layer actually ran.

    Implements :class:`moecap_sim.routing.base.RoutingProfile` for the cost model."""

    distinct: tuple
    num_experts: int
    top_k: int
    kind: str = "trace"
    source: str = ""

    def expected_distinct_experts(self, tokens: int, layer: Optional[int] = None) -> float:
        if tokens <= 0:
            return 0.0
        if layer is None or layer >= len(self.distinct):
            return float(np.mean(self.distinct))
        return float(self.distinct[layer])

    def ep_max_rank_load(self, tokens: int, ep_size: int, layer: Optional[int] = None) -> float:
        return float(tokens * self.top_k) / max(1, ep_size)

    def ep_max_rank_distinct(self, tokens: int, ep_size: int, layer: Optional[int] = None) -> float:
        return self.expected_distinct_experts(tokens, layer) / max(1, ep_size)

    def cache_hit_rate(self, cached_experts_per_layer: int) -> float:
        return max(0.0, min(1.0, cached_experts_per_layer / self.num_experts))


def distinct_per_layer(experts: np.ndarray) -> list[int]:
    """experts [tokens, layers, k] -> distinct expert ids per layer."""
    return [int(len(np.unique(experts[:, li, :]))) for li in range(experts.shape[1])]


def missing_trace_files(model: str, traces_dir: Optional[Path] = None) -> list[str]:
    """Upstream trace files ``model`` needs that are not there ([] when all are, or it has none)."""
    spec = UPSTREAM.get(model)
    if spec is None:
        return []
    base = Path(traces_dir) if traces_dir else default_traces_dir()
    return [str(base / f) for fs in spec.values() for f in fs if not (base / f).exists()]


@dataclass
class ProfileRouting:
    """Token routings sampled from a routing profile shipped with the package
    (``traces/profiles/<model>.json``, fitted to the model's real trace): each token picks top-k
    distinct experts of its layer with probabilities ∝ the fitted per-expert popularity
    (Gumbel-top-k sampling; tokens independent, the profile's steady state).  Used when the
    upstream traces are not installed; same interface as :class:`TraceRouting`."""

    model: str
    num_experts: int
    top_k: int
    log_q: np.ndarray  # [our MoE layers, E]
    source: str
    seed: int = 0
    notes: list = field(default_factory=list)

    def _sample(self, tokens: int, index: int, salt: int) -> np.ndarray:
        rng = np.random.default_rng([self.seed, int(index), salt])
        g = rng.gumbel(size=(tokens,) + self.log_q.shape)
        scores = self.log_q[None, :, :] + g
        return np.argsort(-scores, axis=-1)[..., :self.top_k].astype(np.int64)

    def decode_batch(self, batch: int, index: int) -> np.ndarray:
        return self._sample(batch, index, 1)

    def prefill_chunk(self, tokens: int, index: int = 0) -> np.ndarray:
        return self._sample(tokens, index, 2)


def load_profile_routing(model: str, num_moe_layers: int, seed: int = 0) -> Optional[ProfileRouting]:
    """Routing sampled from the shipped fitted profile of ``model``, or None when none is shipped."""
    from moecap_sim.routing.profiles import load_shipped_profile

    prof = load_shipped_profile(model)
    if prof is None:
        return None
    q = np.stack([prof._layer_weights(min(i, prof.num_moe_layers - 1)) @ prof.q for i in range(num_moe_layers)])
    q = np.clip(q, 1e-9, None)
    return ProfileRouting(model=model, num_experts=prof.num_experts, top_k=prof.top_k, log_q=np.log(q),
                          source=f"sampled from the shipped profile traces/profiles/{model}.json ({prof.source})",
                          seed=seed, notes=["upstream traces not installed: tokens sampled independently from the "
                                            "fitted per-expert popularity of each layer"])
