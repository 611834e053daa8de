"""Validation at the boundary: every number a user gives (CLI flag, API argument, file field) is
checked here — finite, in range, consistent — before any long work starts.

* :func:`check_args` validates keyword arguments against a pydantic model and raises
  :class:`~moecap_sim.errors.UserError` naming the flag and the value (exit 2).
* :func:`read_text_file` reads a user file: it must exist, be a regular file, be UTF-8 and
  stay under a size bound (a 30 MB YAML is not a spec).
* :func:`check_output_path` refuses output paths that cannot be written (empty, a directory,
  wrong suffix); :func:`atomic_write_bytes` / :func:`atomic_savefig` write through a temporary
  file so a failure never leaves a half-written file or clobbers an existing one.
* :func:`check_hf_config` bounds the fields of a Hugging Face ``config.json`` (no zero or
  absurd head/layer/hidden counts, top-k ≤ experts).
* :class:`RecorderRecord` is the one schema of a MoE-CAP recorder record, used by both
  ``metrics`` (:mod:`moecap_sim.perf.measured`) and ``trace import`` (:mod:`moecap_sim.traces.importers`).

Bounds are generous (well beyond any released model or real deployment) and exist to stop
runaway memory or time, not to second-guess a plausible input.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from pathlib import Path
from typing import Annotated, Any, Literal, Optional, Sequence, Type, TypeVar, Union

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from moecap_sim.errors import SpecError, UserError, close_matches

# --- bounds ------------------------------------------------------------------------------------
MAX_TOKENS = 1 << 21            # prompt / output length per request (2 M tokens)
MAX_BATCH = 1 << 20             # concurrent sequences
MAX_PARALLEL = 4096             # TP / PP / DP / EP degree
MAX_REQUESTS = 200_000          # simulated requests (a ~1 h Azure trace is ~30 k)
MAX_SYNTH_ROWS = 4_000_000      # trace synth: tokens × batch
MAX_TEXT_BYTES = 4 << 20        # spec / config / calibration files
MAX_DATA_BYTES = 1 << 30        # request CSVs, recorder JSONL, routing logs
MAX_LAYERS = 1024
MAX_EXPERTS = 32_767           # expert ids are stored as int16 in traces

Tokens = Annotated[int, Field(ge=1, le=MAX_TOKENS)]
Par = Annotated[int, Field(ge=1, le=MAX_PARALLEL)]
Seed = Annotated[int, Field(ge=0, le=2**32 - 1)]
Pos = Annotated[float, Field(gt=0, allow_inf_nan=False)]


M = TypeVar("M", bound=BaseModel)


def _flag(loc: Sequence[Any]) -> str:
    name = ".".join(str(p) for p in loc)
    return "--" + name.replace("_", "-") if name else "arguments"


def check_args(model: Type[M], **kw: Any) -> M:
    """Validate keyword arguments against ``model``; a failure names the flag and the value."""
    try:
        return model.model_validate(kw)
    except ValidationError as exc:
        by_field: dict[str, list[str]] = {}
        for err in exc.errors():
            msg = err["msg"].removeprefix("Value error, ")
            if err["type"] == "literal_error":
                msg = f"{msg}{_hint(err.get('input'), err.get('ctx', {}).get('expected', ''))}"
            if err["loc"]:  # a union (e.g. --batch: 'max' or an integer) gives one error per member
                key = f"{_flag(err['loc'][:1])} = {kw.get(str(err['loc'][0]), err.get('input'))!r}"
            else:
                key = ""
            by_field.setdefault(key, []).append(msg)
        raise UserError("; ".join(f"{k}: {' or '.join(v)}" if k else " or ".join(v) for k, v in by_field.items())) from None


def _hint(word: Any, expected: str) -> str:
    cands = [c.strip().strip("'") for c in expected.replace(" or ", ", ").split(",")]
    m = close_matches(str(word), [c for c in cands if c])
    return f" (did you mean {m[0]}?)" if m else ""


class _Args(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _precision_ok(v: Optional[str]) -> Optional[str]:
    if v is not None and v != "native":
        from moecap_sim.precision import check_requested_precision

        check_requested_precision(v, "--precision")  # formats and GGUF presets; UserError with close matches
    return v


class ServingArgs(_Args):
    """Arguments shared by predict, simulate and each radar case."""

    precision: Optional[str] = None
    kv_dtype: Optional[str] = None
    engine: Optional[str] = None
    tp: Optional[Par] = None
    ep: Par = 1
    pp: Par = 1
    dp: Par = 1
    input_len: Tokens = 1024
    output_len: Tokens = 256
    offload: str = "auto"
    gpu_memory_utilization: Optional[Annotated[float, Field(ge=0.05, le=1.0, allow_inf_nan=False)]] = None
    pricing: Literal["on-demand", "spot", "owned"] = "on-demand"
    calibration: Optional[str] = None
    amortize_years: Annotated[float, Field(gt=0, le=50, allow_inf_nan=False)] = 3.0
    usd_per_kwh: Annotated[float, Field(ge=0, le=100, allow_inf_nan=False)] = 0.10
    pue: Annotated[float, Field(ge=1, le=5, allow_inf_nan=False)] = 1.3
    batch: Union[Literal["max"], Annotated[int, Field(ge=1, le=MAX_BATCH)]] = 1

    _prec = field_validator("precision")(classmethod(lambda cls, v: _precision_ok(v)))

    @field_validator("offload")
    @classmethod
    def _offload(cls, v):
        from moecap_sim.config import OFFLOAD_STRATEGIES  # the one list of placements

        if v not in ("auto",) + tuple(OFFLOAD_STRATEGIES):
            hint = close_matches(v, ("auto",) + tuple(OFFLOAD_STRATEGIES))
            raise ValueError(f"must be one of auto, {', '.join(OFFLOAD_STRATEGIES)}"
                             + (f" (did you mean {hint[0]}?)" if hint else ""))
        return v

    @model_validator(mode="after")
    def _layout(self):
        if (self.tp or 1) * self.pp * self.dp > MAX_PARALLEL:
            raise ValueError(f"--tp × --pp × --dp = {(self.tp or 1) * self.pp * self.dp} devices exceeds {MAX_PARALLEL}")
        return self


Count = Annotated[int, Field(ge=1, le=MAX_BATCH)]


class ServingOptionsArgs(ServingArgs):
    """Every numeric option of :class:`moecap_sim.config.ServingConfig` (layouts, scheduler caps,
    operating points, speculative decoding) — the one place they are checked."""

    nodes: Annotated[int, Field(ge=1, le=1024)] = 1
    requests: Optional[Annotated[int, Field(ge=1, le=100_000_000)]] = None
    output_len_dist: Literal["fixed", "exponential"] = "fixed"
    n_cpu_moe: Optional[Annotated[int, Field(ge=0, le=MAX_LAYERS)]] = None
    threads: Optional[Count] = None
    max_num_seqs: Optional[Count] = None
    max_num_batched_tokens: Optional[Annotated[int, Field(ge=1, le=1 << 30)]] = None
    max_tpot_s: Optional[Annotated[float, Field(gt=0, le=3600, allow_inf_nan=False)]] = None
    mtp_draft_tokens: Annotated[int, Field(ge=0, le=16)] = 0
    mtp_acceptance: Annotated[float, Field(ge=0, le=1, allow_inf_nan=False)] = 0.7
    max_output_len: Optional[Tokens] = None

    @model_validator(mode="after")
    def _max_output(self):
        if self.max_output_len is not None and self.max_output_len < self.output_len:
            raise ValueError(f"--max-output-len {self.max_output_len} is below --output-len {self.output_len} "
                             "(the mean output cannot exceed the requests' max_tokens)")
        return self


class SimulateArgs(ServingArgs):
    requests: Optional[Annotated[int, Field(ge=1, le=MAX_REQUESTS)]] = None
    rate: Annotated[float, Field(gt=0, le=1e6, allow_inf_nan=False)] = 1.0
    rate_scale: Annotated[float, Field(gt=0, le=1e4, allow_inf_nan=False)] = 1.0
    seed: Seed = 0
    max_sim_time_s: Optional[Annotated[float, Field(gt=0, le=1e9, allow_inf_nan=False)]] = None


class PlanArgs(_Args):
    rate: Optional[Annotated[float, Field(gt=0, le=1e7, allow_inf_nan=False)]] = None
    output_tokens_per_s: Optional[Annotated[float, Field(gt=0, le=1e10, allow_inf_nan=False)]] = None
    input_len: Tokens = 1024
    output_len: Tokens = 256
    slo_ttft_s: Optional[Annotated[float, Field(gt=0, le=1e6, allow_inf_nan=False)]] = None
    slo_tpot_s: Optional[Annotated[float, Field(gt=0, le=1e6, allow_inf_nan=False)]] = None
    precisions: Optional[list[str]] = None
    pricing: Literal["on-demand", "spot", "owned"] = "on-demand"
    max_systems: Annotated[int, Field(ge=1, le=100_000)] = 64
    top: Annotated[int, Field(ge=1, le=10_000)] = 10
    min_accuracy: Optional[Annotated[float, Field(ge=0, le=100, allow_inf_nan=False)]] = None
    amortize_years: Optional[Annotated[float, Field(gt=0, le=50, allow_inf_nan=False)]] = None
    usd_per_kwh: Optional[Annotated[float, Field(ge=0, le=100, allow_inf_nan=False)]] = None
    pue: Optional[Annotated[float, Field(ge=1, le=5, allow_inf_nan=False)]] = None
    verify_top: Annotated[int, Field(ge=1, le=1000)] = 8
    max_des_runs: Annotated[int, Field(ge=1, le=10_000)] = 40
    max_nodes: Annotated[int, Field(ge=1, le=16)] = 2
    requests: Optional[Annotated[int, Field(ge=2, le=MAX_REQUESTS)]] = None
    seed: Annotated[int, Field(ge=0, le=2**32 - 1)] = 0

    @field_validator("precisions")
    @classmethod
    def _precs(cls, v):
        for p in v or []:
            _precision_ok(p)
        return v


class RadarArgs(_Args):
    cost_axis: Literal["usd_per_million_output_tokens", "purchase_usd", "power_w"] = "usd_per_million_output_tokens"
    pricing: Literal["on-demand", "spot", "owned"] = "on-demand"
    input_len: Tokens = 1024
    output_len: Tokens = 256


class TraceGeometryArgs(_Args):
    num_experts: Optional[Annotated[int, Field(ge=1, le=MAX_EXPERTS)]] = None
    top_k: Optional[Annotated[int, Field(ge=1, le=MAX_EXPERTS)]] = None
    num_shared_experts: Optional[Annotated[int, Field(ge=0, le=MAX_EXPERTS)]] = None
    num_moe_layers: Optional[Annotated[int, Field(ge=1, le=MAX_LAYERS)]] = None

    @model_validator(mode="after")
    def _k_le_e(self):
        if self.top_k is not None and self.num_experts is not None and self.top_k > self.num_experts:
            raise ValueError(f"--top-k {self.top_k} exceeds --num-experts {self.num_experts}")
        return self


class ImportArgs(TraceGeometryArgs):
    prompt_len: Optional[Annotated[int, Field(ge=0, le=MAX_TOKENS)]] = None


class SynthArgs(TraceGeometryArgs):
    tokens: Annotated[int, Field(ge=1, le=MAX_SYNTH_ROWS)] = 4096
    batch: Annotated[int, Field(ge=1, le=65_536)] = 1
    seed: Seed = 0
    skew: Literal["lognormal", "empirical"] = "lognormal"

    @model_validator(mode="after")
    def _rows(self):
        if self.tokens * self.batch > MAX_SYNTH_ROWS:
            raise ValueError(f"--tokens × --batch = {self.tokens * self.batch:,} token rows exceeds the bound "
                             f"{MAX_SYNTH_ROWS:,}")
        return self


class StatsArgs(_Args):
    ep_size: Optional[Annotated[int, Field(ge=1, le=MAX_PARALLEL)]] = None
    batch_sizes: Optional[list[Annotated[int, Field(ge=1, le=65_536)]]] = Field(default=None, max_length=64)


# --- files ---------------------------------------------------------------------------------------

def check_input_file(path: Union[str, Path], what: str, max_bytes: int = MAX_DATA_BYTES) -> Path:
    """An existing regular file under ``max_bytes``; else :class:`UserError` naming it."""
    p = Path(path)
    if str(path) == "":
        raise UserError(f"{what}: empty path")
    if not p.exists():
        raise UserError(f"{what} not found: {path}")
    if p.is_dir():
        raise UserError(f"{what} {path} is a directory, not a file")
    try:
        size = p.stat().st_size
    except OSError as exc:
        raise UserError(f"cannot read {what} {path}: {exc.strerror}") from None
    if size > max_bytes:
        raise UserError(f"{what} {path} is {size / 1e6:.1f} MB, above the {max_bytes / 1e6:.0f} MB bound for this kind of file")
    return p


def read_text_file(path: Union[str, Path], what: str = "file", max_bytes: int = MAX_TEXT_BYTES) -> str:
    """Read a UTF-8 text file; missing, directory, oversized, unreadable or non-UTF-8 → :class:`UserError`."""
    p = check_input_file(path, what, max_bytes)
    try:
        data = p.read_bytes()
    except OSError as exc:
        raise UserError(f"cannot read {what} {path}: {exc.strerror}") from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise UserError(f"{what} {path} is not UTF-8 text (byte {exc.start}: {data[exc.start:exc.start + 1]!r})") from None


def check_output_path(path: Union[str, Path, None], flag: str, suffixes: Sequence[str] = ()) -> Optional[Path]:
    """An output file path that can be written: not empty, not a directory, the right suffix."""
    if path is None:
        return None
    s = str(path)
    if not s.strip():
        raise UserError(f"{flag} = {s!r}: an output file path is required")
    p = Path(s)
    if p.is_dir() or s.endswith(("/", os.sep)):
        raise UserError(f"{flag} = {s!r}: is a directory; give a file path")
    if suffixes and not s.lower().endswith(tuple(suffixes)):
        raise UserError(f"{flag} = {s!r}: must end with {' or '.join(suffixes)}")
    parent = p.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if parent.exists() and not parent.is_dir():
        raise UserError(f"{flag} = {s!r}: {parent} is a file, not a directory")
    return p


def check_output_dir(path: Union[str, Path, None], flag: str) -> Optional[Path]:
    """A directory that exists or can be created (an existing file is refused)."""
    if path is None:
        return None
    s = str(path)
    if not s.strip():
        raise UserError(f"{flag} = {s!r}: a directory path is required")
    p = Path(s)
    cur = p
    while not cur.exists() and cur != cur.parent:
        cur = cur.parent
    if cur.exists() and not cur.is_dir():
        raise UserError(f"{flag} = {s!r}: {cur} is a file, not a directory")
    return p


def atomic_write_bytes(out: Union[str, Path], write) -> Path:
    """Call ``write(fh)`` on a temporary file beside ``out`` and rename it into place; on any
    error the temporary file is removed and an existing ``out`` is left untouched."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".tmp", dir=str(out.parent))
    try:
        with os.fdopen(fd, "wb") as fh:
            write(fh)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, out)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    return out


def atomic_savefig(fig, path: Union[str, Path], **kw) -> str:
    """``fig.savefig`` through :func:`atomic_write_bytes` (format from the suffix, default PNG)."""
    fmt = Path(path).suffix.lstrip(".").lower() or "png"
    atomic_write_bytes(path, lambda fh: fig.savefig(fh, format=fmt, **kw))
    return str(path)


def finish_figure(fig, path: Union[str, Path], title: Optional[str] = None, **kw) -> str:
    """Title (``suptitle``), tight layout, :func:`atomic_savefig` (dpi 110 unless given), and
    close the figure whatever happens; returns the path."""
    import matplotlib.pyplot as plt

    try:
        if title:
            fig.suptitle(title, fontsize=10)
        fig.tight_layout()
        return atomic_savefig(fig, path, **{"dpi": 110, **kw})
    finally:
        plt.close(fig)


# --- Hugging Face config.json -------------------------------------------------------------------

_POSITIVE = ("hidden_size", "d_model", "num_hidden_layers", "n_layers", "num_layers", "num_decoder_layers",
             "num_attention_heads", "n_heads", "num_heads", "head_dim", "vocab_size", "intermediate_size",
             "moe_intermediate_size", "num_key_value_heads", "kv_n_heads", "num_local_experts", "num_experts",
             "n_routed_experts", "moe_num_experts", "num_experts_per_tok", "experts_per_token", "moe_top_k",
             "d_ff", "d_kv", "ffn_hidden_size", "kv_lora_rank", "qk_rope_head_dim", "v_head_dim",
             "shared_expert_intermediate_size", "intermediate_size_mlp", "linear_num_key_heads",
             "linear_num_value_heads", "linear_key_head_dim", "linear_value_head_dim")
_NON_NEGATIVE = ("n_shared_experts", "first_k_dense_replace", "q_lora_rank", "qk_nope_head_dim", "decoder_sparse_step",
                 "moe_layer_freq", "interleave_moe_layer_step", "num_nextn_predict_layers", "sliding_window",
                 "full_attention_interval", "linear_conv_kernel_dim", "encoder_sparse_step", "attention_chunk_size")
_UPPER = {"layers": MAX_LAYERS, "heads": 16_384, "experts": MAX_EXPERTS, "vocab": 10_000_000, "size": 1 << 20,
          "position": 1 << 27}
_EXPERTS = ("num_local_experts", "num_experts", "n_routed_experts", "moe_num_experts")
_TOPK = ("num_experts_per_tok", "experts_per_token", "moe_top_k")


def _upper(key: str) -> int:
    if "layer" in key:
        return _UPPER["layers"]
    if "experts" in key and "size" not in key or key in _TOPK:
        return _UPPER["experts"]
    if "heads" in key:
        return _UPPER["heads"]
    if "vocab" in key:
        return _UPPER["vocab"]
    if "position" in key or "seq_len" in key:
        return _UPPER["position"]
    return _UPPER["size"]


def check_hf_config(cfg: Any, where: str = "config") -> list[str]:
    """Problems with the numeric fields of an HF config (nested ``text_config``/``attn_config``/
    ``ffn_config`` included): integers, ≥ 1 (or ≥ 0), bounded, top-k ≤ experts, KV heads ≤ heads."""
    problems: list[str] = []
    if not isinstance(cfg, dict):
        return [f"expected a JSON object, got {type(cfg).__name__}"]

    def walk(d: dict, prefix: str) -> None:
        for key, v in d.items():
            name = f"{prefix}{key}"
            if isinstance(v, dict) and key in ("text_config", "attn_config", "ffn_config"):
                walk(v, name + ".")
                continue
            lo = 1 if key in _POSITIVE else 0 if key in _NON_NEGATIVE or key in ("max_position_embeddings", "max_seq_len") else None
            if lo is None or v is None:
                continue
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v != int(v):
                problems.append(f"field '{name}' = {v!r}: must be an integer")
                continue
            hi = _upper(key)
            if not lo <= v <= hi:
                problems.append(f"field '{name}' = {v!r}: must be in [{lo}, {hi}]")
        experts = next((d[k] for k in _EXPERTS if isinstance(d.get(k), int) and not isinstance(d.get(k), bool)), None)
        topk = next(((k, d[k]) for k in _TOPK if isinstance(d.get(k), int) and not isinstance(d.get(k), bool)), None)
        if experts and topk and topk[1] > experts:
            problems.append(f"field '{prefix}{topk[0]}' = {topk[1]}: more experts per token than the {experts} experts "
                            f"the model has (active parameters would exceed the total)")
        heads, kv = d.get("num_attention_heads"), d.get("num_key_value_heads")
        if isinstance(heads, int) and isinstance(kv, int) and heads >= 1 and kv > heads:
            problems.append(f"field '{prefix}num_key_value_heads' = {kv}: more KV heads than the {heads} attention heads")

    walk(cfg, "config." if where == "catalog" else "")
    return problems


# --- MoE-CAP recorder records (one schema for `metrics` and `trace import`) --------------------

Count = Annotated[int, Field(ge=0, le=1 << 40)]


class RecorderRecord(BaseModel):
    """One forward pass as logged by the MoE-CAP server recorders (JSONL line or JSON-list item)."""

    model_config = ConfigDict(extra="allow", frozen=True)
    latency: Optional[Annotated[float, Field(gt=0, le=1e6, allow_inf_nan=False)]] = None
    batch_size: Optional[Annotated[int, Field(ge=0, le=MAX_BATCH)]] = None
    seq_lens_sum: Optional[Annotated[int, Field(ge=0, le=1 << 40)]] = None
    forward_mode: Optional[str] = None
    expert_activation: Union[None, Annotated[float, Field(ge=0, le=MAX_EXPERTS, allow_inf_nan=False)],
                             list[Annotated[float, Field(ge=0, le=MAX_EXPERTS, allow_inf_nan=False)]],
                             list[list[Count]]] = None
    scheduled_tokens: Union[None, Count, list[Count], dict[str, Count]] = None
    gpu_num: Optional[Annotated[int, Field(ge=1, le=MAX_PARALLEL)]] = None
    gpu_raw_type: Optional[str] = None

    @field_validator("latency", "batch_size", "seq_lens_sum", "gpu_num", mode="before")
    @classmethod
    def _integral(cls, v):
        if isinstance(v, bool):
            raise ValueError("must be a number, not a boolean")
        if isinstance(v, float) and math.isfinite(v) and v == int(v):
            return int(v)
        return v

    @field_validator("expert_activation", mode="before")
    @classmethod
    def _act(cls, v):
        if isinstance(v, bool):
            raise ValueError("must be a number, a per-layer list, or per-layer lists of per-expert counts")
        if isinstance(v, list):
            if not v:
                raise ValueError("an empty list")
            if len(v) > MAX_LAYERS:
                raise ValueError(f"{len(v)} layers (more than {MAX_LAYERS})")
            if any(isinstance(x, list) for x in v) and not all(isinstance(x, list) for x in v):
                raise ValueError("mixes numbers and lists")
            if v and isinstance(v[0], list) and len({len(x) for x in v}) != 1:
                raise ValueError("per-expert count lists differ in length between layers")
        return v

    @field_validator("forward_mode", mode="before")
    @classmethod
    def _mode(cls, v):
        if v is not None and not isinstance(v, str):
            raise ValueError("must be a string (prefill, extend, decode or mixed)")
        return v

    @property
    def mode(self) -> str:
        return (self.forward_mode or "").strip().lower()

    @property
    def scheduled(self) -> Optional[int]:
        st = self.scheduled_tokens
        if isinstance(st, dict):
            return int(sum(st.values()))
        if isinstance(st, list):
            return int(sum(st))
        return st

    def activation_kind(self) -> Optional[str]:
        a = self.expert_activation
        if a is None:
            return None
        if isinstance(a, (int, float)):
            return "mean"
        return "counts" if isinstance(a[0], list) else "per_layer"

    def distinct_per_layer(self) -> Optional[float]:
        """Mean distinct experts per MoE layer (None when not recorded)."""
        a = self.expert_activation
        if a is None:
            return None
        if isinstance(a, (int, float)):
            return float(a)
        if isinstance(a[0], list):
            return sum(sum(1 for c in layer if c > 0) for layer in a) / len(a)
        return float(sum(a)) / len(a)


def read_recorder_records(path: Union[str, Path], required: Sequence[str] = ()) -> list[tuple[int, RecorderRecord, str]]:
    """Parse MoE-CAP recorder output — JSONL, a JSON list, or ``{"records": [...]}`` — into
    :class:`RecorderRecord` objects, with where each came from (``file:line`` or ``file record N``).
    ``required`` fields must be present in every record.  Errors name the file, line, field and value."""
    text = read_text_file(path, "records file", MAX_DATA_BYTES)
    items: list[tuple[int, Any, str]] = []
    if text.lstrip().startswith(("[", "{")) and (text.lstrip().startswith("[") or str(path).lower().endswith(".json")):
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise UserError(f"{path}:{exc.lineno}: malformed JSON: {exc.msg}") from None
        if isinstance(data, dict):
            data = data.get("records") or data.get("forward_records") or [data]
        if not isinstance(data, list):
            raise UserError(f"{path}: expected a list of per-forward-pass records")
        items = [(i, r, f"{path} record {i}") for i, r in enumerate(data, 1)]
    else:
        lines = text.split("\n")
        for i, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                truncated = i == len(lines) and not text.endswith("\n")
                kind = "truncated record (file cut off?)" if truncated else "malformed JSON"
                raise UserError(f"{path}:{i}: {kind}: {exc.msg} at column {exc.colno} (line {i})") from None
            items.append((i, obj, f"{path}:{i}"))
    if not items:
        raise UserError(f"{path}: no records")
    out = []
    first_kind = None
    for i, obj, where in items:
        if not isinstance(obj, dict):
            raise UserError(f"{where}: expected a JSON object, got {type(obj).__name__} (line {i})")
        for f in required:
            if f not in obj:
                raise UserError(f"{where}: record lacks field '{f}' (line {i})")
        try:
            rec = RecorderRecord.model_validate(obj)
        except ValidationError as exc:
            e = exc.errors()[0]
            field = str(e["loc"][0]) if e["loc"] else "record"
            val = obj.get(field, e.get("input"))
            raise UserError(f"{where}: field '{field}' = {str(val)[:60]}: {e['msg'].removeprefix('Value error, ')} "
                            f"(line {i})") from None
        kind = rec.activation_kind()
        if kind is not None:
            shape = (kind, None if kind == "mean" else len(rec.expert_activation),
                     len(rec.expert_activation[0]) if kind == "counts" else None)
            if first_kind is None:
                first_kind = shape
            elif shape != first_kind:
                raise UserError(f"{where}: field 'expert_activation' has a different shape than the first record (line {i})")
        out.append((i, rec, where))
    return out


# --- calibration file -----------------------------------------------------------------------------

def check_calibration_file(path: Union[str, Path]) -> None:
    """Pre-check a calibration JSON (finite factors, readable UTF-8, bounded size) before the
    cost model reads it."""
    text = read_text_file(path, "calibration file", MAX_TEXT_BYTES)
    try:
        data = json.loads(text)  # NaN/Infinity parse as floats and are refused per field below
    except json.JSONDecodeError as exc:
        raise SpecError(str(path), [f"not valid JSON at line {exc.lineno}: {exc.msg}"]) from None
    eff = data.get("efficiency") if isinstance(data, dict) else None
    if not isinstance(eff, dict) or not eff:
        raise SpecError(str(path), ["field 'efficiency' (a mapping of device or class → factors) is missing"])
    problems = []
    for key, vals in eff.items():
        if isinstance(vals, dict):
            for k, v in vals.items():
                if isinstance(v, bool) or (isinstance(v, (int, float)) and not math.isfinite(v)):
                    problems.append(f"field 'efficiency.{key}.{k}' = {v!r}: must be a finite number")
    if problems:
        raise SpecError(str(path), problems)


def check_spec_text_size(path: Union[str, Path]) -> None:
    check_input_file(path, "spec file", MAX_TEXT_BYTES)
