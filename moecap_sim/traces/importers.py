"""Importers: upstream and third-party routing logs → ``moecap-trace/1``.

Formats (``--format`` names; detected from the content when not given):

* ``speculative-moe`` — per-token JSONL with every layer (Mario928/speculative-moe, Mixtral):
  ``{"dataset","problem_id","layer","token_idx"|"token_pos","experts","gating_probs"}``;
* ``vllm-moe-logger`` — vLLM-MoE-Logger JSONL: a ``meta`` line, then ``route`` rows whose
  ``token_idx`` restarts at 0 in every forward pass;
* ``vllm-moe-logger-global`` — the same schema with a global running ``token_idx`` (the OLMoE
  variant); forward-pass boundaries are not recorded (give ``pass_sizes`` if you know them);
* ``moecap-recorder`` — the MoE-CAP server recorders' per-forward-pass records (JSONL or a JSON
  list): ``latency``, ``batch_size``, ``seq_lens_sum``, ``forward_mode``, ``expert_activation``
  (a number = distinct experts averaged over layers, a per-layer list of distinct counts, or a
  per-layer list of per-expert token counts), optional ``gpu_num``, ``gpu_raw_type``,
  ``req_ids``, ``scheduled_tokens``, ``per_req_info``;
* ``vllm-routed-experts`` — vLLM ``routed_experts`` arrays ``[seq_len, layers, top_k]`` in an
  ``.npy`` (one request) or ``.npz`` (one array per request; optional ``prompt_len`` entries);
* ``generic`` — CSV or JSONL, one row per (token, layer), with an explicit column mapping.

Malformed input raises :class:`UserError` naming the file and line; the output file is written
atomically, so a failed import leaves nothing behind.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import re
from pathlib import Path
from typing import Any, Iterator, Optional

import numpy as np

from moecap_sim.errors import UserError
from moecap_sim.traces.format import DECODE, PREFILL, UNKNOWN, Trace, is_trace_file, validate_trace
from moecap_sim.traces.known import KNOWN_FILES, canonical_model_name, model_geometry

FORMATS = ("speculative-moe", "vllm-moe-logger", "vllm-moe-logger-global", "moecap-recorder",
           "vllm-routed-experts", "generic")
ALIASES = {"mixtral-jsonl": "speculative-moe", "speculative": "speculative-moe",
           "moe-logger": "vllm-moe-logger", "olmoe": "vllm-moe-logger-global",
           "moe-cap": "moecap-recorder", "moecap": "moecap-recorder", "recorder": "moecap-recorder",
           "routed-experts": "vllm-routed-experts", "npz": "vllm-routed-experts", "npy": "vllm-routed-experts",
           "csv": "generic", "jsonl": "generic"}
MAPPING_FIELDS = ("experts", "layer", "token", "request", "pass", "phase", "weights", "position")


# --- small helpers ---------------------------------------------------------------------------

def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _err(path: Path, lineno: Optional[int], msg: str) -> UserError:
    where = f"{path}:{lineno}" if lineno else str(path)
    return UserError(f"{where}: {msg}")


def iter_jsonl(path: Path) -> Iterator[tuple[int, dict]]:
    """Yield ``(line_number, object)``; blank lines are skipped; errors name the line."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise UserError(f"cannot read {path}: {exc.strerror}") from None
    text = data.decode("utf-8", errors="replace")
    lines = text.split("\n")
    last = len(lines)
    for i, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            truncated = i == last and not text.endswith("\n")
            kind = "truncated record (file cut off?)" if truncated else "malformed JSON"
            raise _err(path, i, f"{kind}: {exc.msg} at column {exc.colno}") from None
        if not isinstance(obj, dict):
            raise _err(path, i, f"expected a JSON object, got {type(obj).__name__}")
        yield i, obj


def _int_list(v: Any, path: Path, lineno: int, field: str) -> list[int]:
    if isinstance(v, str):
        v = [x for x in re.split(r"[\s,;\[\]]+", v) if x]
    if not isinstance(v, (list, tuple)) or not v:
        raise _err(path, lineno, f"'{field}' must be a non-empty list of expert ids, got {v!r}")
    try:
        out = [int(x) for x in v]
        if any(float(x) != int(float(x)) for x in v):
            raise ValueError
    except (TypeError, ValueError):
        raise _err(path, lineno, f"'{field}' must hold integer expert ids, got {v!r}") from None
    return out


def _float_list(v: Any, path: Path, lineno: int, field: str) -> list[float]:
    if isinstance(v, str):
        v = [x for x in re.split(r"[\s,;\[\]]+", v) if x]
    try:
        return [float(x) for x in v]
    except (TypeError, ValueError):
        raise _err(path, lineno, f"'{field}' must be a list of numbers, got {v!r}") from None


def _need(obj: dict, key: str, path: Path, lineno: int, kind=int):
    if key not in obj:
        raise _err(path, lineno, f"missing field '{key}'")
    v = obj[key]
    if kind is int:
        if isinstance(v, bool) or not isinstance(v, (int, float)) or int(v) != v:
            raise _err(path, lineno, f"field '{key}' must be an integer, got {v!r}")
        return int(v)
    return v


class _Builder:
    """Collect (token, layer) → top-k rows, then build dense arrays."""

    def __init__(self, path: Path):
        self.path = path
        self.tokens: dict[Any, int] = {}
        self.attrs: list[tuple[int, int, int, int]] = []  # pass, phase, request, position
        self.rows: list[int] = []
        self.layer: list[int] = []
        self.ids: list[list[int]] = []
        self.w: list[Optional[list[float]]] = []
        self.seen: set = set()
        self.k: Optional[int] = None

    def token(self, key, attrs: tuple[int, int, int, int]) -> int:
        t = self.tokens.get(key)
        if t is None:
            t = self.tokens[key] = len(self.attrs)
            self.attrs.append(attrs)
        return t

    def add(self, t: int, layer: int, ids: list[int], w: Optional[list[float]], lineno: int) -> None:
        if self.k is None:
            self.k = len(ids)
        if len(ids) != self.k:
            raise _err(self.path, lineno, f"{len(ids)} expert ids but earlier rows have {self.k} (top-k)")
        if w is not None and len(w) != len(ids):
            raise _err(self.path, lineno, f"{len(w)} gate weights for {len(ids)} expert ids")
        if len(set(ids)) != len(ids):
            raise _err(self.path, lineno, f"repeated expert id in one top-k row: {ids}")
        if min(ids) < 0:
            raise _err(self.path, lineno, f"negative expert id in {ids}")
        if (t, layer) in self.seen:
            raise _err(self.path, lineno, f"second row for the same token and layer {layer}")
        self.seen.add((t, layer))
        self.rows.append(t)
        self.layer.append(layer)
        self.ids.append(ids)
        self.w.append(w)

    def build(self) -> dict:
        if not self.rows:
            raise _err(self.path, None, "no routing rows found")
        layers = np.array(sorted(set(self.layer)), dtype=np.int32)
        lpos = {int(l): i for i, l in enumerate(layers)}
        t, k = len(self.attrs), int(self.k)
        experts = np.full((t, len(layers), k), -1, dtype=np.int32)
        rows = np.asarray(self.rows)
        lidx = np.array([lpos[l] for l in self.layer])
        experts[rows, lidx] = np.asarray(self.ids, dtype=np.int32)
        weights = None
        if any(w is not None for w in self.w):
            weights = np.full((t, len(layers), k), np.nan, dtype=np.float32)
            have = np.array([w is not None for w in self.w])
            weights[rows[have], lidx[have]] = np.asarray([w for w in self.w if w is not None], dtype=np.float32)
        a = np.asarray(self.attrs, dtype=np.int64).reshape(-1, 4)
        return dict(layers=layers, experts=experts, weights=weights, pass_id=a[:, 0], phase=a[:, 1],
                    request=a[:, 2], position=a[:, 3])


def _phase_of(v: Any) -> int:
    s = str(v).strip().lower()
    if s in ("prefill", "extend", "0", "p", "context", "prompt"):
        return PREFILL
    if s in ("decode", "1", "d", "generate", "generation"):
        return DECODE
    return UNKNOWN


def _geometry(meta: dict, opts: dict, experts: Optional[np.ndarray], notes: list[str]) -> dict:
    """Fill model / num_experts / top_k / num_shared_experts / num_moe_layers: options first, then
    the file's own metadata, then the catalog, then the data (max id + 1, flagged)."""
    model = opts.get("model") or meta.get("model")
    if model:
        meta["model"] = canonical_model_name(model)
    geo = model_geometry(meta["model"]) if meta.get("model") else None
    for key in ("num_experts", "top_k", "num_shared_experts", "num_moe_layers"):
        if opts.get(key) is not None:
            meta[key] = int(opts[key])
        elif meta.get(key) is None and geo is not None:
            meta[key] = geo[key]
    if experts is not None and experts.size:
        k = int(experts.shape[2])
        if meta.get("top_k") is None:
            meta["top_k"] = k
        elif int(meta["top_k"]) != k:
            raise UserError(f"the rows hold {k} expert ids but top_k is {meta['top_k']}: check --top-k/--model")
        mx = int(experts.max()) + 1
        from moecap_sim.inputs import MAX_EXPERTS

        if mx > MAX_EXPERTS:
            raise UserError(f"expert id {mx - 1} found: above the bound {MAX_EXPERTS - 1} for expert ids")
        if meta.get("num_experts") is None:
            meta["num_experts"] = mx
            notes.append(f"num_experts not given: taken as the largest expert id + 1 = {mx} (a lower bound)")
        elif mx > int(meta["num_experts"]):
            raise UserError(f"expert id {mx - 1} found but the model has {meta['num_experts']} experts")
    meta.setdefault("num_shared_experts", 0)
    return meta


def _base_meta(srcs: list[Path], fmt: str, opts: dict) -> tuple[dict, Optional[dict]]:
    files, known, datasets = [], None, []
    for p in srcs:
        digest = sha256_of(p)
        k = KNOWN_FILES.get(digest)
        entry = {"path": k["path"] if k else p.name, "sha256": digest, "bytes": p.stat().st_size}
        files.append(entry)
        if k is not None:
            known = known or k
            if k.get("dataset") and k["dataset"] not in datasets:
                datasets.append(k["dataset"])
    meta: dict = {"format_imported": fmt, "synthetic": False, "filters": [], "notes": [],
                  "pass_structure": "none", "request_ids": "none"}
    if known is not None:
        for key in ("model", "hf_id", "num_experts", "top_k", "num_shared_experts", "num_moe_layers",
                    "license", "engine", "dataset", "weights_kind"):
            if key in known:
                meta[key] = known[key]
        meta["dataset"] = "; ".join(datasets)
        meta["notes"] = list(known.get("notes", []))
        meta["source"] = {"kind": "upstream", "repo": known["repo"], "commit": known["commit"], "files": files}
    else:
        meta["source"] = {"kind": "local", "files": files}
        meta["license"] = opts.get("license") or "unknown (not stated)"
    for key in ("dataset", "engine", "license"):
        if opts.get(key):
            meta[key] = opts[key]
    return meta, known


# --- format detection ------------------------------------------------------------------------

def detect_format(path: Path) -> str:
    """Guess the format of ``path`` from its suffix and first records."""
    suffix = path.suffix.lower()
    if suffix in (".npy", ".npz"):
        if is_trace_file(path):
            raise UserError(f"{path} is already a moecap-trace/1 file; nothing to import")
        return "vllm-routed-experts"
    if suffix in (".csv", ".tsv"):
        return "generic"
    head: list[dict] = []
    try:
        with open(path, "r", encoding="utf-8", errors="replace") as fh:
            first = fh.read(1)
            fh.seek(0)
            if first == "[":  # a JSON list of records (MoE-CAP style)
                return "moecap-recorder"
            for line in fh:
                if line.strip():
                    try:
                        head.append(json.loads(line))
                    except json.JSONDecodeError:
                        break
                if len(head) >= 3:
                    break
    except OSError as exc:
        raise UserError(f"cannot read {path}: {exc.strerror}") from None
    objs = [h for h in head if isinstance(h, dict)]
    if not objs:
        raise UserError(f"{path}: cannot detect the trace format (first line is not a JSON object); "
                        f"pass --format ({', '.join(FORMATS)})")
    keys = set().union(*[set(o) for o in objs])
    if "expert_activation" in keys:
        return "moecap-recorder"
    if {"experts", "layer"} <= keys and ("token_idx" in keys or "token_pos" in keys):
        return "speculative-moe"
    if "topk_ids" in keys or any(o.get("type") == "meta" for o in objs):
        # per-pass vs global counter: scan token_idx for restarts
        seen: set = set()
        for _, o in iter_jsonl(path):
            if o.get("type", "route") != "route":
                continue
            key = (o.get("layer"), o.get("token_idx"))
            if key in seen:
                return "vllm-moe-logger"
            seen.add(key)
        return "vllm-moe-logger-global"
    raise UserError(f"{path}: cannot detect the trace format (fields: {', '.join(sorted(keys))}); "
                    f"pass --format generic with a column mapping (--map experts=COL --map layer=COL "
                    f"--map token=COL ...)")


def normalize_format(fmt: Optional[str]) -> Optional[str]:
    if fmt is None:
        return None
    f = fmt.strip().lower()
    f = ALIASES.get(f, f)
    if f not in FORMATS:
        from moecap_sim.errors import close_matches

        m = close_matches(fmt, list(FORMATS) + list(ALIASES))
        raise UserError(f"unknown trace format --format '{fmt}'." + (f" Did you mean: {', '.join(m)}?" if m else "")
                        + f" Known: {', '.join(FORMATS)}")
    return f


# --- parsers ---------------------------------------------------------------------------------

def _parse_speculative(path: Path, req_offset: dict) -> dict:
    b = _Builder(path)
    prev_layer, pass_no = None, -1
    raw_mode = None
    for lineno, o in iter_jsonl(path):
        layer = _need(o, "layer", path, lineno)
        ids = _int_list(_need(o, "experts", path, lineno, kind=object), path, lineno, "experts")
        w = _float_list(o["gating_probs"], path, lineno, "gating_probs") if "gating_probs" in o else None
        rkey = (str(o.get("dataset", "")), o.get("problem_id", 0))
        req = req_offset.setdefault(rkey, len(req_offset))
        if raw_mode is None:
            raw_mode = "token_pos" in o and "token_idx" not in o
        if not raw_mode:
            tok = _need(o, "token_idx", path, lineno)
            t = b.token((req, tok), (-1, DECODE, req, tok))
        else:
            pos = _need(o, "token_pos", path, lineno)
            if prev_layer is None or layer < prev_layer:
                pass_no += 1
            prev_layer = layer
            t = b.token((pass_no, pos), (pass_no, UNKNOWN, req, pos))
        b.add(t, layer, ids, w, lineno)
    out = b.build()
    if not raw_mode:
        # batch-1 decode: every token is its own forward pass, in (request, token) order
        order = np.lexsort((out["position"], out["request"]))
        pid = np.empty(len(order), dtype=np.int64)
        pid[order] = np.arange(len(order))
        out["pass_id"] = pid
    else:
        pid = out["pass_id"]
        sizes = np.bincount(pid)
        phase = np.where((sizes[pid] > 1) | (pid == 0), PREFILL, DECODE)
        out["phase"] = phase
        # decode positions continue after the prompt
        plen = int(sizes[0])
        dec = phase == DECODE
        first_dec = np.min(pid[dec]) if dec.any() else 0
        out["position"] = np.where(dec, plen + (pid - first_dec), out["position"])
    out["_pass_recorded"] = True
    out["_requests_recorded"] = True
    return out


def _parse_moe_logger(path: Path, global_counter: bool) -> tuple[dict, dict]:
    """Returns the builder output and the file's meta line (may be empty)."""
    b = _Builder(path)
    fmeta: dict = {}
    pass_no, in_pass = -1, set()
    order_rows = []
    for lineno, o in iter_jsonl(path):
        typ = o.get("type", "route")
        if typ == "meta":
            fmeta = o
            continue
        if typ != "route":
            continue
        layer = _need(o, "layer", path, lineno)
        tok = _need(o, "token_idx", path, lineno)
        ids = _int_list(_need(o, "topk_ids", path, lineno, kind=object), path, lineno, "topk_ids")
        w = _float_list(o["topk_weights"], path, lineno, "topk_weights") if "topk_weights" in o else None
        if global_counter:
            t = b.token(tok, (-1, UNKNOWN, -1, -1))
        else:
            if pass_no < 0 or (layer, tok) in in_pass:
                pass_no += 1
                in_pass = set()
            in_pass.add((layer, tok))
            t = b.token((pass_no, tok), (pass_no, UNKNOWN, -1, -1))
        b.add(t, layer, ids, w, lineno)
        order_rows.append(t)
    out = b.build()
    return out, fmeta


def _drop_leading_dummy(out: dict, per_pass: bool) -> tuple[dict, Optional[str]]:
    """Drop vLLM's memory-profiling / CUDA-graph warm-up rows: the leading passes (or rows, when
    passes are unknown) in which every row routes to the same expert set as the first row."""
    ex = out["experts"]
    if len(ex) < 2:
        return out, None
    ref = np.sort(ex[0], axis=-1)
    same = np.all(np.sort(ex, axis=-1) == ref[None], axis=(1, 2))
    if per_pass:
        pid = out["pass_id"]
        drop = np.zeros(len(ex), dtype=bool)
        dropped_passes = []
        for p in np.unique(pid):  # ascending = execution order
            rows = pid == p
            if rows.sum() >= 2 and same[rows].all():
                drop |= rows
                dropped_passes.append(int(rows.sum()))
            else:
                break
        if not dropped_passes:
            return out, None
        msg = (f"dropped the first {len(dropped_passes)} forward passes ({' + '.join(map(str, dropped_passes))} "
               f"rows): vLLM memory-profiling / CUDA-graph dummy runs (every row routes to the same "
               f"experts {ex[0, 0].tolist()})")
    else:
        n = int(np.argmin(same)) if not same.all() else len(same)
        if n < 2:
            return out, None
        drop = np.arange(len(ex)) < n
        msg = (f"dropped the first {n} rows: vLLM memory-profiling dummy pass (every row routes to the "
               f"same experts {ex[0, 0].tolist()})")
    keep = ~drop
    out = {k: (v[keep] if isinstance(v, np.ndarray) and v.ndim >= 1 and len(v) == len(ex) and k != "layers" else v)
           for k, v in out.items()}
    if per_pass:
        _, out["pass_id"] = np.unique(out["pass_id"], return_inverse=True)
    return out, msg


def _label_phases_by_size(pid: np.ndarray) -> np.ndarray:
    """Heuristic when the log does not say: the first pass and any pass larger than the one
    before it are prefill (or mixed); the rest are decode steps."""
    sizes = np.bincount(pid)
    ph = np.full(len(sizes), DECODE)
    ph[0] = PREFILL
    for i in range(1, len(sizes)):
        if sizes[i] > sizes[i - 1]:
            ph[i] = PREFILL
    return ph[pid]


def _apply_pass_sizes(out: dict, sizes: list[int], where: Path) -> dict:
    t = len(out["experts"])
    if sum(sizes) != t:
        raise UserError(f"{where}: pass sizes add up to {sum(sizes)} but the trace has {t} token rows")
    out["pass_id"] = np.repeat(np.arange(len(sizes)), sizes)
    return out


def _parse_pass_sizes(spec) -> Optional[list[int]]:
    """``"1377,25x46,24x81"`` or a list of ints → list of pass sizes."""
    if spec is None:
        return None
    if isinstance(spec, (list, tuple)):
        return [int(x) for x in spec]
    sizes = []
    for part in str(spec).split(","):
        part = part.strip()
        if not part:
            continue
        m = re.fullmatch(r"(\d+)(?:[x*](\d+))?", part)
        if not m:
            raise UserError(f"bad --pass-sizes item '{part}': use e.g. 1377,25x46,24x81")
        reps = int(m.group(2) or 1)
        if len(sizes) + reps > 10_000_000 or int(m.group(1)) > 1 << 31:
            raise UserError(f"--pass-sizes item '{part}': more passes or tokens than any trace holds")
        sizes += [int(m.group(1))] * reps
    return sizes


def _moecap_records(path: Path, meta: dict, opts: dict, notes: list[str]) -> dict:
    from moecap_sim.inputs import read_recorder_records

    recs = read_recorder_records(path, required=("expert_activation",))  # the one record schema
    phase, tokens, batch, lat, sls, acts = [], [], [], [], [], []
    kind = None
    gpu = None
    for n, r, where in recs:
        if r.expert_activation is None:
            raise UserError(f"{where}: field 'expert_activation' = null: a number, a per-layer list, or per-layer "
                            f"lists of per-expert counts (line {n})")
        mode = r.mode
        ph = PREFILL if ("prefill" in mode or "extend" in mode or "mixed" in mode) else \
            DECODE if "decode" in mode else UNKNOWN
        bs, s, st = r.batch_size, r.seq_lens_sum, r.scheduled
        if st is not None:
            ntok = int(st)
        elif ph == DECODE and bs is not None:
            ntok = int(bs)
        elif s is not None:
            ntok = int(s)
        else:
            ntok = -1
        kind = r.activation_kind()
        a = r.expert_activation
        val = [float(a)] if kind == "mean" else ([float(x) for x in a] if kind == "per_layer" else [list(x) for x in a])
        acts.append(val)
        phase.append(ph)
        tokens.append(ntok)
        batch.append(int(bs) if bs is not None else -1)
        lat.append(float(r.latency) if r.latency is not None else np.nan)
        sls.append(int(s) if s is not None else -1)
        gpu = gpu or r.gpu_raw_type
        if r.gpu_num is not None and "gpu_num" not in meta:
            meta["gpu_num"] = r.gpu_num
    if gpu:
        meta.setdefault("engine", f"MoE-CAP recorder on {gpu}")
    passes = {"pass_phase": np.array(phase, dtype=np.int8), "pass_tokens": np.array(tokens, dtype=np.int64),
              "pass_batch": np.array(batch, dtype=np.int64), "pass_latency_s": np.array(lat, dtype=np.float64),
              "pass_seq_lens_sum": np.array(sls, dtype=np.int64)}
    if kind == "counts":
        counts = np.array(acts, dtype=np.int64)
        passes["pass_counts"] = counts.astype(np.int32)
        passes["pass_distinct"] = (counts > 0).sum(axis=2).astype(np.float32)
        layers = np.arange(counts.shape[1])
        if opts.get("num_experts") is None and meta.get("num_experts") is None:
            opts = dict(opts, num_experts=counts.shape[2])
        elif int(opts.get("num_experts") or meta.get("num_experts")) != counts.shape[2]:
            raise UserError(f"{path}: per-expert counts have {counts.shape[2]} entries but the model has "
                            f"{opts.get('num_experts') or meta.get('num_experts')} experts")
    elif kind == "per_layer":
        passes["pass_distinct"] = np.array(acts, dtype=np.float32)
        layers = np.arange(len(acts[0]))
    else:
        passes["pass_distinct"] = np.array(acts, dtype=np.float32).reshape(-1, 1)
        layers = np.array([-1])
        notes.append("expert_activation is the recorder's mean over layers of distinct experts per pass "
                     "(layer -1 = mean over layers)")
    meta["activation_kind"] = kind
    _geometry(meta, opts, None, notes)
    for key in ("num_experts", "top_k"):
        if meta.get(key) is None:
            raise UserError(f"{path}: the MoE-CAP records do not say the model's {key.replace('_', ' ')}; "
                            f"pass --model NAME or --{key.replace('_', '-')} N")
    if meta.get("num_moe_layers") is None and kind != "mean":
        meta["num_moe_layers"] = int(len(layers))
    return dict(layers=layers, passes=passes)


def _routed_experts(path: Path, opts: dict) -> dict:
    import zipfile
    import zlib

    try:
        z = np.load(path, allow_pickle=False)
    except ValueError as exc:
        raise UserError(f"{path}: cannot read the array ({exc}); object/pickled arrays are not accepted") from None
    except (OSError, EOFError, TypeError, zipfile.BadZipFile, zlib.error) as exc:  # corrupt, truncated or empty files
        raise UserError(f"{path}: not a readable .npy/.npz file ({type(exc).__name__}: {str(exc)[:120]})") from None
    arrays: list[tuple[str, np.ndarray]] = []
    prompt: dict[str, int] = {}
    if isinstance(z, np.ndarray):
        arrays = [(path.stem, z)]
    else:
        with z:
            for key in z.files:
                try:
                    a = z[key]
                except (ValueError, OSError, EOFError, zipfile.BadZipFile, zlib.error) as exc:
                    raise UserError(f"{path}: entry '{key}': {type(exc).__name__}: {str(exc)[:120]}") from None
                if a.ndim == 3:
                    arrays.append((key, a))
                elif a.ndim == 0 and ("prompt" in key):
                    base = key.replace("_prompt_len", "").replace("prompt_len", "").replace("num_prompt_tokens", "")
                    if not np.issubdtype(a.dtype, np.integer) or not 0 <= int(a) <= 1 << 24:
                        raise UserError(f"{path}: field '{key}' = {a!r}: a prompt length must be an integer ≥ 0")
                    prompt[base.strip("_")] = int(a)
    if not arrays:
        raise UserError(f"{path}: no [seq_len, layers, top_k] array found")
    plen_opt = opts.get("prompt_len")
    exp, req, pos, ph = [], [], [], []
    shape_lk = None
    for r, (key, a) in enumerate(arrays):
        if a.ndim != 3:
            raise UserError(f"{path}: '{key}' has shape {a.shape}; expected [seq_len, layers, top_k]")
        if not np.issubdtype(a.dtype, np.integer):
            if np.issubdtype(a.dtype, np.floating) and np.all(np.isfinite(a)) and np.all(a == np.round(a)):
                a = a.astype(np.int64)
            else:
                raise UserError(f"{path}: '{key}' must hold integer expert ids (dtype {a.dtype})")
        if shape_lk is None:
            shape_lk = a.shape[1:]
        elif a.shape[1:] != shape_lk:
            raise UserError(f"{path}: '{key}' has {a.shape[1:]} (layers, top_k) but the first array has {shape_lk}")
        n = a.shape[0]
        plen = prompt.get(key, prompt.get("", plen_opt))
        exp.append(a)
        req += [r] * n
        pos += list(range(n))
        if plen is None:
            ph += [UNKNOWN] * n
        else:
            ph += [PREFILL if i < int(plen) else DECODE for i in range(n)]
    experts = np.concatenate(exp).astype(np.int32)
    if experts.size and experts.min() < -1:
        raise UserError(f"{path}: negative expert ids other than -1 (padding)")
    return dict(layers=np.arange(experts.shape[1]), experts=experts, weights=None,
                pass_id=np.full(len(req), -1), phase=np.array(ph), request=np.array(req),
                position=np.array(pos), _request_names=[k for k, _ in arrays],
                _requests_recorded=True)


def _read_generic_rows(path: Path) -> Iterator[tuple[int, dict]]:
    if path.suffix.lower() in (".csv", ".tsv"):
        try:
            text = path.read_text(encoding="utf-8", errors="replace")
        except OSError as exc:
            raise UserError(f"cannot read {path}: {exc.strerror}") from None
        delim = "\t" if path.suffix.lower() == ".tsv" else ","
        reader = csv.DictReader(io.StringIO(text), delimiter=delim)
        if reader.fieldnames is None:
            raise _err(path, 1, "empty CSV (no header)")
        for row in reader:
            if None in row or any(v is None for v in row.values()):
                raise _err(path, reader.line_num, "wrong number of columns (truncated or malformed row)")
            yield reader.line_num, row
    else:
        yield from iter_jsonl(path)


def parse_mapping(mapping) -> dict:
    """Mapping from our fields to the file's columns: a dict, a JSON string/file, or
    ``["experts=topk", "layer=layer_id"]``.  ``experts``/``weights`` may name several columns
    (a list, or a comma-separated string) holding one id each."""
    if mapping is None:
        return {}
    if isinstance(mapping, (str, Path)):
        s = str(mapping)
        if Path(s).is_file():
            from moecap_sim.inputs import read_text_file

            s = read_text_file(s, "mapping file")
        try:
            mapping = json.loads(s)
        except json.JSONDecodeError:
            mapping = [x for x in s.split(";") if x]
    if isinstance(mapping, (list, tuple)):
        out = {}
        for item in mapping:
            if "=" not in item:
                raise UserError(f"bad mapping item '{item}': use FIELD=COLUMN (fields: {', '.join(MAPPING_FIELDS)})")
            k, v = item.split("=", 1)
            out[k.strip()] = v.strip()
        mapping = out
    if not isinstance(mapping, dict):
        raise UserError("the column mapping must be an object FIELD -> COLUMN")
    bad = [k for k in mapping if k not in MAPPING_FIELDS]
    if bad:
        raise UserError(f"unknown mapping field(s) {', '.join(bad)}; known: {', '.join(MAPPING_FIELDS)}")
    for k in ("experts", "weights"):
        v = mapping.get(k)
        if isinstance(v, str) and "," in v:
            mapping[k] = [x.strip() for x in v.split(",") if x.strip()]
    return mapping


def _generic(path: Path, mapping: dict) -> dict:
    if "experts" not in mapping:
        raise UserError("the generic format needs a column mapping with at least experts=COLUMN and "
                        "token=COLUMN (e.g. --map experts=topk_ids --map layer=layer --map token=tok)")
    if "token" not in mapping and "position" not in mapping:
        raise UserError("the column mapping must name a 'token' (or 'position') column identifying each token")
    b = _Builder(path)
    pass_ids: dict = {}
    req_ids: dict = {}
    names: list[str] = []

    def cell(row, col, lineno):
        if col not in row:
            raise _err(path, lineno, f"column '{col}' not found (have: {', '.join(map(str, row))})")
        return row[col]

    for lineno, row in _read_generic_rows(path):
        em = mapping["experts"]
        ids_raw = [cell(row, c, lineno) for c in em] if isinstance(em, list) else cell(row, em, lineno)
        ids = _int_list(ids_raw, path, lineno, "experts")
        w = None
        if mapping.get("weights"):
            wm = mapping["weights"]
            w = _float_list([cell(row, c, lineno) for c in wm] if isinstance(wm, list) else cell(row, wm, lineno),
                            path, lineno, "weights")
        layer = 0
        if "layer" in mapping:
            try:
                layer = int(float(cell(row, mapping["layer"], lineno)))
            except (TypeError, ValueError):
                raise _err(path, lineno, f"layer must be an integer, got {row[mapping['layer']]!r}") from None
        req = -1
        if "request" in mapping:
            rv = str(cell(row, mapping["request"], lineno))
            if rv not in req_ids:
                req_ids[rv] = len(req_ids)
                names.append(rv)
            req = req_ids[rv]
        pas = -1
        if "pass" in mapping:
            pv = str(cell(row, mapping["pass"], lineno))
            pas = pass_ids.setdefault(pv, len(pass_ids))
        ph = _phase_of(cell(row, mapping["phase"], lineno)) if "phase" in mapping else UNKNOWN
        tcol = mapping.get("token", mapping.get("position"))
        try:
            tok = int(float(cell(row, tcol, lineno)))
        except (TypeError, ValueError):
            raise _err(path, lineno, f"token must be an integer, got {row[tcol]!r}") from None
        position = tok if ("position" in mapping or req >= 0) else -1
        if "position" in mapping and "token" in mapping:
            try:
                position = int(float(cell(row, mapping["position"], lineno)))
            except (TypeError, ValueError):
                raise _err(path, lineno, "position must be an integer") from None
        t = b.token((req, pas, tok), (pas, ph, req, position))
        b.add(t, layer, ids, w, lineno)
    out = b.build()
    out["_request_names"] = names
    out["_pass_recorded"] = "pass" in mapping
    out["_requests_recorded"] = "request" in mapping
    return out


# --- combining several sources ----------------------------------------------------------------

def _combine(parts: list[dict], srcs: list[Path]) -> dict:
    if len(parts) == 1:
        return parts[0]
    layer_sets = [set(map(int, p["layers"])) for p in parts]
    disjoint = sum(len(s) for s in layer_sets) == len(set().union(*layer_sets))
    same_rows = all(len(p["experts"]) == len(parts[0]["experts"]) for p in parts) and all(
        np.array_equal(p["pass_id"], parts[0]["pass_id"]) for p in parts)
    if disjoint and same_rows:
        # the same workload logged one layer (set) per file: merge row by row
        layers = np.concatenate([p["layers"] for p in parts])
        order = np.argsort(layers)
        out = dict(parts[0])
        out["layers"] = layers[order]
        out["experts"] = np.concatenate([p["experts"] for p in parts], axis=1)[:, order]
        if all(p.get("weights") is not None for p in parts):
            out["weights"] = np.concatenate([p["weights"] for p in parts], axis=1)[:, order]
        else:
            out["weights"] = None
        out["_combined"] = "layers"
        return out
    if all(s == layer_sets[0] for s in layer_sets) and all(p["experts"].shape[2] == parts[0]["experts"].shape[2]
                                                          for p in parts):
        out = dict(parts[0])
        pid_off = 0
        pids, reqs = [], []
        for p in parts:
            pid = np.asarray(p["pass_id"])
            pids.append(np.where(pid >= 0, pid + pid_off, -1))
            pid_off += int(pid.max()) + 1 if (pid >= 0).any() else 0
            req = np.asarray(p["request"])
            # speculative-moe parts share one request table (dataset, problem) already
            reqs.append(req)
        out["experts"] = np.concatenate([p["experts"] for p in parts])
        out["weights"] = (np.concatenate([p["weights"] for p in parts])
                          if all(p.get("weights") is not None for p in parts) else None)
        for key in ("phase", "position"):
            out[key] = np.concatenate([p[key] for p in parts])
        out["pass_id"] = np.concatenate(pids)
        out["request"] = np.concatenate(reqs)
        out["_combined"] = "concat"
        return out
    raise UserError("cannot combine these sources: they log neither disjoint layers of the same workload "
                    "(identical pass structure) nor the same layers: " + ", ".join(map(str, srcs)))


# --- entry point -----------------------------------------------------------------------------

def import_sources(srcs: list[Path], fmt: Optional[str] = None, mapping=None, **opts) -> Trace:
    """Parse one or more source files into a :class:`Trace` (not yet saved)."""
    srcs = [Path(s) for s in srcs]
    if not srcs:
        raise UserError("no source file given")
    from moecap_sim.inputs import MAX_DATA_BYTES, ImportArgs, check_args, check_input_file

    check_args(ImportArgs, **{k: opts.get(k) for k in ImportArgs.model_fields})
    _parse_pass_sizes(opts.get("pass_sizes"))  # malformed or runaway sizes fail before any parsing
    for s in srcs:
        if s.is_dir():
            raise UserError(f"{s} is a directory; pass the files (e.g. {s}/*.jsonl)")
        check_input_file(s, "source file", MAX_DATA_BYTES)
    fmt = normalize_format(fmt)
    fmts = [fmt or detect_format(s) for s in srcs]
    if len(set(fmts)) != 1:
        raise UserError("all sources must have the same format; detected: " +
                        ", ".join(f"{s.name}={f}" for s, f in zip(srcs, fmts)))
    fmt = fmts[0]
    meta, known = _base_meta(srcs, fmt, opts)
    notes: list[str] = meta["notes"]
    filters: list[str] = meta["filters"]

    if fmt == "moecap-recorder":
        if len(srcs) != 1:
            raise UserError("import MoE-CAP records one file at a time")
        d = _moecap_records(srcs[0], meta, opts, notes)
        meta["pass_structure"] = "recorded"
        tr = Trace(meta=meta, layers=d["layers"], experts=np.zeros((0, len(d["layers"]), int(meta["top_k"]))),
                   passes=d["passes"])
        validate_trace(tr, str(srcs[0]))
        return tr

    parts = []
    req_table: dict = {}
    file_meta: dict = {}
    for s in srcs:
        if fmt == "speculative-moe":
            d = _parse_speculative(s, req_table)
        elif fmt in ("vllm-moe-logger", "vllm-moe-logger-global"):
            glob = fmt == "vllm-moe-logger-global"
            d, fm = _parse_moe_logger(s, glob)
            file_meta = file_meta or fm
            if not opts.get("keep_warmup"):
                d, msg = _drop_leading_dummy(d, per_pass=not glob)
                if msg:
                    filters.append(f"{s.name}: {msg}")
            if not glob:
                d["pass_id"] = np.asarray(d["pass_id"])
                d["_pass_recorded"] = True
        elif fmt == "vllm-routed-experts":
            d = _routed_experts(s, opts)
        else:
            d = _generic(s, parse_mapping(mapping))
        parts.append(d)
    d = _combine(parts, srcs)
    if d.get("_combined") == "layers":
        notes.append(f"{len(srcs)} files logging different layers of the same workload merged row by row "
                     f"(identical forward-pass structure checked)")

    if fmt in ("vllm-moe-logger", "vllm-moe-logger-global"):
        if file_meta:
            meta.setdefault("model", file_meta.get("model_id"))
            meta.setdefault("hf_id", file_meta.get("model_id"))
            if meta.get("top_k") is None and file_meta.get("top_k"):
                meta["top_k"] = int(file_meta["top_k"])
            if meta.get("num_experts") is None and file_meta.get("num_experts"):
                meta["num_experts"] = int(file_meta["num_experts"])
            if "engine" not in meta and file_meta.get("vllm_version"):
                meta["engine"] = f"vLLM {file_meta['vllm_version']} on {file_meta.get('device', '?')}"
        sizes = _parse_pass_sizes(opts.get("pass_sizes"))
        if sizes is None and fmt == "vllm-moe-logger-global" and known and known.get("pass_sizes"):
            sizes = known["pass_sizes"]
            meta["pass_structure"] = "inferred"
            notes.append("forward passes " + known["pass_structure_note"])
        if sizes is not None:
            d = _apply_pass_sizes(d, sizes, srcs[0])
            if meta["pass_structure"] != "inferred":
                meta["pass_structure"] = "given"
                notes.append(f"forward-pass sizes given by the user: {opts.get('pass_sizes')}")
            ph = np.full(len(sizes), DECODE)
            ph[0] = PREFILL
            d["phase"] = ph[d["pass_id"]]
            filters.append("phase: first pass prefill, all later passes decode (pass sizes given)")
        elif fmt == "vllm-moe-logger":
            meta["pass_structure"] = "recorded"
            d["phase"] = _label_phases_by_size(d["pass_id"])
            filters.append("phase inferred from pass sizes: the first pass and any pass larger than its "
                           "predecessor are prefill (or mixed prefill+decode); the others decode steps")
    elif d.get("_pass_recorded"):
        meta["pass_structure"] = "recorded"
    if d.get("_requests_recorded"):
        meta["request_ids"] = "recorded"
    if fmt == "speculative-moe":
        names = [f"{ds}:{pid}" for (ds, pid) in sorted(req_table, key=req_table.get)]
        meta["request_names"] = names
        if meta["pass_structure"] == "recorded" and np.all(d["phase"] == DECODE):
            notes.append("batch-1 decode log: each token is its own forward pass")
    elif d.get("_request_names"):
        meta["request_names"] = list(d["_request_names"])
    if opts.get("prompt_len") is not None and fmt == "vllm-routed-experts":
        filters.append(f"phase from --prompt-len {opts['prompt_len']}")

    if meta.get("model") is None and opts.get("model") is None:
        notes.append("model not named: pass --model NAME to attach its geometry")
    _geometry(meta, opts, d["experts"], notes)
    if meta.get("num_moe_layers") is None:
        meta["num_moe_layers"] = int(max(d["layers"]) + 1)
        notes.append(f"num_moe_layers not known: taken as the highest logged layer + 1 = {meta['num_moe_layers']}")
    meta.setdefault("dataset", opts.get("dataset") or "unknown")
    meta.setdefault("engine", opts.get("engine") or "unknown")
    tr = Trace(meta=meta, layers=d["layers"], experts=d["experts"], weights=d.get("weights"),
               pass_id=d["pass_id"], phase=d["phase"], request=d["request"], position=d["position"])
    validate_trace(tr, str(srcs[0]))
    return tr
