"""The project's expert-routing trace format (``moecap-trace/1``), documented in ``traces/README.md``.

One trace is one ``.npz`` file (numpy arrays, no pickles) holding two optional levels:

* **token level** — one row per token processed by a forward pass: ``experts[T, L, K]`` (top-k
  routed expert ids per logged MoE layer, ``-1`` where the row was not recorded), optional
  ``weights[T, L, K]`` (gate weights, NaN where unknown), and per token ``pass_id`` (forward pass
  index, ``-1`` unknown), ``phase`` (0 prefill, 1 decode, -1 unknown), ``request`` (request index,
  ``-1`` unknown) and ``position`` (token index inside its request, ``-1`` unknown);
* **pass level** — one row per forward pass for recorders that log aggregates only (MoE-CAP):
  ``pass_phase``, ``pass_tokens``, ``pass_batch``, ``pass_latency_s``, ``pass_seq_lens_sum``,
  ``pass_distinct[P, L]`` (distinct experts per layer, NaN unknown) and optionally
  ``pass_counts[P, L, E]`` (tokens routed to each expert).

``layers`` holds the MoE-layer index of each logged layer (0 = first MoE layer); ``-1`` is used
for a single column that is the *mean over layers* (the MoE-CAP recorder's scalar).  ``meta`` is a
JSON object: model, num_experts, top_k, num_shared_experts, num_moe_layers, source (upstream
repository/commit/files/sha256 or "synthetic"), license, dataset, engine, filters applied, how pass
structure and request ids were obtained (recorded / inferred / none), notes.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import numpy as np

from moecap_sim.errors import UserError

FORMAT = "moecap-trace/1"
PREFILL, DECODE, UNKNOWN = 0, 1, -1
PHASE_NAMES = {PREFILL: "prefill", DECODE: "decode", UNKNOWN: "unknown"}

_TOKEN_ARRAYS = ("experts", "weights", "pass_id", "phase", "request", "position")
_PASS_ARRAYS = ("pass_phase", "pass_tokens", "pass_batch", "pass_latency_s", "pass_seq_lens_sum",
                "pass_distinct", "pass_counts")


@dataclass
class Trace:
    """An expert-routing trace in memory.  See the module docstring for the arrays."""

    meta: dict
    layers: np.ndarray
    experts: np.ndarray
    weights: Optional[np.ndarray] = None
    pass_id: Optional[np.ndarray] = None
    phase: Optional[np.ndarray] = None
    request: Optional[np.ndarray] = None
    position: Optional[np.ndarray] = None
    passes: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.layers = np.asarray(self.layers, dtype=np.int32).reshape(-1)
        ex = np.asarray(self.experts)
        if ex.ndim != 3:
            ex = ex.reshape(0, len(self.layers), max(1, int(self.meta.get("top_k", 1))))
        self.experts = ex.astype(np.int16)
        t = self.experts.shape[0]
        for name, fill, dtype in (("pass_id", -1, np.int32), ("phase", UNKNOWN, np.int8),
                                  ("request", -1, np.int32), ("position", -1, np.int32)):
            arr = getattr(self, name)
            arr = np.full(t, fill, dtype=dtype) if arr is None else np.asarray(arr, dtype=dtype).reshape(-1)
            setattr(self, name, arr)
        if self.weights is not None:
            self.weights = np.asarray(self.weights, dtype=np.float32)
        self.passes = {k: np.asarray(v) for k, v in (self.passes or {}).items() if v is not None}

    # --- basic properties -------------------------------------------------------------------
    @property
    def num_tokens(self) -> int:
        return int(self.experts.shape[0])

    @property
    def num_experts(self) -> int:
        return int(self.meta["num_experts"])

    @property
    def top_k(self) -> int:
        return int(self.meta["top_k"])

    @property
    def model(self) -> str:
        return str(self.meta.get("model") or "unknown")

    @property
    def is_synthetic(self) -> bool:
        return bool(self.meta.get("synthetic", False))

    @property
    def has_token_level(self) -> bool:
        return self.num_tokens > 0

    @property
    def has_pass_structure(self) -> bool:
        return self.num_tokens > 0 and bool(np.all(self.pass_id >= 0))

    def source_label(self) -> str:
        """One line naming where this trace came from."""
        src = self.meta.get("source") or {}
        if self.is_synthetic:
            return str(src.get("description") or "synthetic routing")
        repo = src.get("repo", "")
        commit = str(src.get("commit", ""))[:7]
        files = ", ".join(Path(f["path"]).name for f in src.get("files", []))
        where = f"{repo.replace('https://github.com/', '')}@{commit}" if repo else "local file"
        return f"{where} {files}".strip()

    # --- pass table -------------------------------------------------------------------------
    def pass_table(self) -> dict:
        """Per forward pass: ``phase``, ``tokens`` and ``distinct[P, L]``, from the pass-level
        arrays when recorded, else derived from the token rows (needs pass structure)."""
        if self.passes:
            p = self.passes
            n = len(p["pass_phase"])
            distinct = p.get("pass_distinct")
            if distinct is None and "pass_counts" in p:
                distinct = (p["pass_counts"] > 0).sum(axis=2).astype(np.float64)
            return {"phase": p["pass_phase"].astype(int), "tokens": p["pass_tokens"].astype(int),
                    "batch": p.get("pass_batch", np.full(n, -1)).astype(int),
                    "distinct": None if distinct is None else np.asarray(distinct, dtype=np.float64),
                    "counts": p.get("pass_counts")}
        if not self.has_pass_structure:
            return {}
        ids, first, inv, tokens = np.unique(self.pass_id, return_index=True, return_inverse=True,
                                            return_counts=True)
        order = np.argsort(first, kind="stable")
        rank = np.empty_like(order)
        rank[order] = np.arange(len(order))
        row_pass = rank[inv]
        ids, start, tokens = ids[order], first[order], tokens[order]
        e = self.num_experts
        counts = np.zeros((len(ids), len(self.layers), e), dtype=np.int32)
        for li in range(len(self.layers)):
            ex = self.experts[:, li, :]
            ok = ex >= 0
            rp = np.broadcast_to(row_pass[:, None], ex.shape)[ok]
            np.add.at(counts[:, li, :], (rp, ex[ok].astype(np.int64)), 1)
        distinct = (counts > 0).sum(axis=2).astype(np.float64)
        phase = np.array([self.phase[s] for s in start], dtype=int)
        if self.request is not None and np.all(self.request >= 0):
            batch = np.array([len(np.unique(self.request[self.pass_id == pid])) for pid in ids])
        else:
            batch = np.where(phase == DECODE, tokens, -1)
        return {"phase": phase, "tokens": tokens.astype(int), "batch": batch.astype(int), "distinct": distinct,
                "counts": counts}

    # --- subsetting -------------------------------------------------------------------------
    def select_tokens(self, mask: np.ndarray) -> "Trace":
        """A new trace with only the token rows where ``mask`` is true (pass level dropped)."""
        mask = np.asarray(mask, dtype=bool)
        return Trace(meta=dict(self.meta), layers=self.layers.copy(), experts=self.experts[mask],
                     weights=None if self.weights is None else self.weights[mask],
                     pass_id=self.pass_id[mask], phase=self.phase[mask], request=self.request[mask],
                     position=self.position[mask])

    def select_passes(self, pass_ids) -> "Trace":
        """Token rows of the given forward passes (by pass id)."""
        return self.select_tokens(np.isin(self.pass_id, np.asarray(list(pass_ids))))


# --- validation ------------------------------------------------------------------------------

def validate_trace(tr: Trace, where: str = "trace") -> None:
    """Raise :class:`UserError` when the arrays are inconsistent."""
    problems = []
    for key in ("num_experts", "top_k"):
        if not isinstance(tr.meta.get(key), int) or tr.meta[key] <= 0:
            problems.append(f"meta.{key} must be a positive integer (got {tr.meta.get(key)!r})")
    if problems:
        raise UserError(f"{where}: " + "; ".join(problems))
    t, l_, k = tr.experts.shape
    if l_ != len(tr.layers):
        problems.append(f"experts has {l_} layers but 'layers' lists {len(tr.layers)}")
    if t and k != tr.top_k:
        problems.append(f"experts has {k} ids per row but top_k is {tr.top_k}")
    if t and (tr.experts.max() >= tr.num_experts or tr.experts.min() < -1):
        problems.append(f"expert ids must lie in 0..{tr.num_experts - 1} (or -1 for not recorded)")
    if tr.weights is not None and tr.weights.shape != tr.experts.shape:
        problems.append("weights must have the same shape as experts")
    for name in ("pass_id", "phase", "request", "position"):
        if len(getattr(tr, name)) != t:
            problems.append(f"{name} must have one entry per token row ({t})")
    if tr.passes:
        n = len(tr.passes.get("pass_phase", []))
        for name, arr in tr.passes.items():
            if len(arr) != n:
                problems.append(f"{name} must have one entry per pass ({n})")
    lat = tr.passes.get("pass_latency_s") if tr.passes else None
    if lat is not None and lat.size and np.issubdtype(lat.dtype, np.floating) and np.any(lat[np.isfinite(lat)] <= 0):
        problems.append("pass_latency_s must be positive (NaN where unknown)")
    if tr.weights is not None and tr.weights.size and np.any(np.isinf(tr.weights)):
        problems.append("weights must be finite (NaN where unknown)")
    if not t and not tr.passes:
        problems.append("the trace holds neither token rows nor pass records")
    if problems:
        raise UserError(f"{where}: invalid trace: " + "; ".join(problems))


# --- save / load -----------------------------------------------------------------------------

def _atomic_write(out: Path, write) -> None:
    """Write through a temporary file in the same directory; nothing is left behind on error."""
    from moecap_sim.inputs import atomic_write_bytes

    atomic_write_bytes(out, write)


def save_trace(tr: Trace, out: Path, compress: bool = True) -> Path:
    """Write ``tr`` to ``out`` (exactly that path; ``.trace.npz`` is the suggested suffix)."""
    validate_trace(tr, str(out))
    arrays: dict[str, Any] = {
        "format": np.array(FORMAT),
        "meta": np.array(json.dumps(tr.meta, sort_keys=True)),
        "layers": tr.layers.astype(np.int32),
        "experts": tr.experts.astype(np.int16 if tr.num_experts < 32767 else np.int32),
        "pass_id": tr.pass_id, "phase": tr.phase, "request": tr.request, "position": tr.position,
    }
    if tr.weights is not None:
        arrays["weights"] = tr.weights.astype(np.float16 if tr.meta.get("weights_precision") == "fp16"
                                              else np.float32)
    for k, v in tr.passes.items():
        arrays[k] = v
    saver = np.savez_compressed if compress else np.savez
    _atomic_write(Path(out), lambda fh: saver(fh, **arrays))
    return Path(out)


def load_trace(path) -> Trace:
    """Read a ``moecap-trace/1`` file; a file that is not one raises :class:`UserError`."""
    import zipfile
    import zlib

    from moecap_sim.inputs import MAX_DATA_BYTES, check_input_file

    path = check_input_file(path, "trace file", MAX_DATA_BYTES)
    try:
        with np.load(path, allow_pickle=False) as z:
            if not hasattr(z, "files"):
                raise UserError(f"{path} is a bare .npy array, not a {FORMAT} trace (import it first with "
                                f"`moecap-sim trace import {path} -o OUT.trace.npz`)")
            files = set(z.files)
            if "format" not in files or str(z["format"]) != FORMAT:
                raise UserError(f"{path} is not a {FORMAT} trace (import it first with "
                                f"`moecap-sim trace import {path} -o OUT.trace.npz`)")
            meta = json.loads(str(z["meta"]))
            if not isinstance(meta, dict):
                raise UserError(f"{path}: field 'meta' must be a JSON object, got {type(meta).__name__}")
            _check_meta(meta, str(path))
            kw = {name: z[name] for name in _TOKEN_ARRAYS if name in files}
            passes = {name: z[name] for name in _PASS_ARRAYS if name in files}
            tr = Trace(meta=meta, layers=z["layers"], passes=passes, **kw)
    except UserError:
        raise
    except (OSError, ValueError, KeyError, TypeError, IndexError, EOFError, zipfile.BadZipFile, zlib.error,
            json.JSONDecodeError) as exc:  # corrupt, truncated or empty archives and arrays
        raise UserError(f"cannot read trace {path}: not a valid {FORMAT} file "
                        f"({type(exc).__name__}: {str(exc)[:120]})") from None
    validate_trace(tr, str(path))
    return tr


def _check_meta(meta: dict, where: str) -> None:
    """Bounds on the geometry a trace declares (before any array is shaped from it)."""
    from moecap_sim.inputs import MAX_EXPERTS, MAX_LAYERS

    for key, hi in (("num_experts", MAX_EXPERTS), ("top_k", MAX_EXPERTS), ("num_moe_layers", MAX_LAYERS),
                    ("num_shared_experts", MAX_EXPERTS)):
        v = meta.get(key)
        if v is None and key in ("num_moe_layers", "num_shared_experts"):
            continue
        if isinstance(v, bool) or not isinstance(v, int) or not (0 if key == "num_shared_experts" else 1) <= v <= hi:
            raise UserError(f"{where}: field 'meta.{key}' = {v!r}: must be an integer in "
                            f"[{0 if key == 'num_shared_experts' else 1}, {hi}]")
    if meta["top_k"] > meta["num_experts"]:
        raise UserError(f"{where}: field 'meta.top_k' = {meta['top_k']}: exceeds meta.num_experts = {meta['num_experts']}")


def is_trace_file(path) -> bool:
    try:
        with np.load(path, allow_pickle=False) as z:
            return "format" in z.files and str(z["format"]) == FORMAT
    except Exception:
        return False
