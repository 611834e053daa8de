"""One serving configuration, built once (from the CLI or the API) and passed to ``predict``.

Every field carries its help text (``metadata["help"]``) so the CLI, the API docs and the
published-validation cases share one description.  Units are in the names: lengths in tokens,
prices in USD.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any, Optional, Union

from moecap_sim.errors import UserError

Batch = Union[int, str]  # a positive int or "max"

#: where routed experts (or the whole model) live — the one list of placements
OFFLOAD_STRATEGIES = ("none", "expert-cache", "cpu-experts", "cpu-only", "nvme")


def _f(default: Any, help_text: str) -> Any:
    return field(default=default, metadata={"help": help_text})


@dataclass(frozen=True)
class ServingConfig:
    """What to serve, where, and how: the single input of the cost model."""

    model: str = _f("", "Catalog model name/alias, or a path to a HF config.json.")
    hw: str = _f("", "System name (`moecap-sim hw list`) or a path to a system YAML.")
    precision: Optional[str] = _f(None, "Weight precision (bf16, fp8, int4, nvfp4, mxfp4, GGUF presets such as "
                                        "q4_k_m); default: the model's native checkpoint.")
    kv_dtype: Optional[str] = _f(None, "KV-cache dtype (bf16, fp16, fp8); default bf16.")
    engine: Optional[str] = _f(None, "Engine preset (vllm, sglang, trtllm, ktransformers, moe-infinity, llama.cpp, hf).")
    tp: Optional[int] = _f(None, "Tensor-parallel size (default: every accelerator not used by PP/DP).")
    ep: int = _f(1, "Expert-parallel size (ranks among TP×DP).")
    pp: int = _f(1, "Pipeline-parallel stages.")
    dp: int = _f(1, "Data-parallel replicas (attention-DP ranks with --attention-dp).")
    nodes: int = _f(1, "Identical boxes of --hw joined by the system's scale-out network.")
    attention_dp: bool = _f(False, "Attention data-parallel + expert-parallel MoE over every device (SGLang "
                                   "--enable-dp-attention, TRT-LLM attention DP, vLLM DP+EP).")
    disaggregated: bool = _f(False, "Prefill/decode disaggregation: decode passes carry no prefill (other nodes "
                                    "prefill); output tok/s is the decode pool's, prefill tok/s the prefill pool's.")
    overlap_comm: bool = _f(False, "Two-batch overlap of the EP all-to-all with compute (SGLang "
                                   "--enable-two-batch-overlap, vLLM --enable-dbo, DeepSeek's two micro-batches).")
    requests: Optional[int] = _f(None, "Closed burst: this many requests submitted at once and run to completion "
                                       "(a benchmark at request rate inf); throughput counts the drain of the last "
                                       "wave.  Default: steady state.")
    output_len_dist: str = _f("fixed", "Output lengths of a burst: fixed, or exponential with mean --output-len "
                                       "(chat datasets such as ShareGPT).")
    batch: Batch = _f(1, "Concurrent sequences system-wide, or 'max' (KV-limited, up to the engine cap).")
    input_len: int = _f(1024, "Prompt tokens per request.")
    output_len: int = _f(256, "Generated tokens per request.")
    max_output_len: Optional[int] = _f(None, "The requests' max_tokens. An engine that reserves KV for it at "
                                             "admission (TRT-LLM's default GUARANTEED_NO_EVICT scheduler) holds "
                                             "input + this per sequence, which caps concurrency; engines that page "
                                             "KV on demand (vLLM, SGLang) ignore it.  Default: --output-len.")
    offload: str = _f("auto", "auto | none | expert-cache | cpu-experts | cpu-only | nvme.")
    n_cpu_moe: Optional[int] = _f(None, "llama.cpp --n-cpu-moe: routed experts of this many layers stay in host "
                                        "DRAM and run on the CPU; the rest on the GPU (cpu-experts placement).")
    threads: Optional[int] = _f(None, "CPU threads the engine runs (llama.cpp -t, KTransformers --cpu_infer); "
                                      "default: every core of the host.")
    max_num_seqs: Optional[int] = _f(None, "Engine scheduler cap on concurrent sequences per replica (default: "
                                           "the engine preset's).")
    max_num_batched_tokens: Optional[int] = _f(None, "Engine cap on tokens per forward pass (prefill chunk).")
    max_tpot_s: Optional[float] = _f(None, "Operating point: the largest batch whose client TPOT (s) stays within "
                                           "this (SLO-bound serving; 1/target per-user tok/s).")
    mtp_draft_tokens: int = _f(0, "Speculative decoding (MTP/EAGLE): draft tokens proposed per step.")
    mtp_acceptance: float = _f(0.7, "Speculative decoding: probability each successive draft token is accepted.")
    gpu_memory_utilization: Optional[float] = _f(None, "Fraction of device memory the engine may use (default: "
                                                       "the engine's own: vLLM 0.9; llama.cpp has no pool, 1.0).")
    pricing: str = _f("on-demand", "on-demand | spot | owned.")
    calibration: Optional[Any] = _f(None, "Calibration file (`moecap-sim calibrate`), or a Calibration object; "
                                          "replaces the fitted/default efficiency factors.")
    amortize_years: float = _f(3.0, "Owned pricing: years to amortise the purchase over.")
    usd_per_kwh: float = _f(0.10, "Owned pricing: electricity price, USD per kWh.")
    pue: float = _f(1.3, "Owned pricing: data-centre power usage effectiveness.")

    def __post_init__(self) -> None:
        """Check every option once, at the boundary (:class:`moecap_sim.inputs.ServingOptionsArgs`:
        finite, in range, names known); errors name the CLI flag.  ``batch`` is parsed here."""
        from moecap_sim.inputs import ServingOptionsArgs, check_args

        kw = {name: getattr(self, name) for name in ServingOptionsArgs.model_fields}
        kw["calibration"] = self.calibration if isinstance(self.calibration, str) else None
        object.__setattr__(self, "batch", check_args(ServingOptionsArgs, **kw).batch)

    @classmethod
    def from_kwargs(cls, model: str, hw: str, **kwargs: Any) -> "ServingConfig":
        """Build from keyword arguments, naming unknown ones with close matches."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(kwargs) - known)
        if unknown:
            from moecap_sim.errors import close_matches

            hints = [f"{u} (did you mean {', '.join(close_matches(u, known))}?)" if close_matches(u, known) else u
                     for u in unknown]
            raise UserError(f"unknown serving option(s): {', '.join(hints)}")
        return cls(model=model, hw=hw, **kwargs)

    def as_dict(self) -> dict:
        return asdict(self)


def field_help(name: str) -> str:
    """The help text of a :class:`ServingConfig` field (for CLI options)."""
    return next(f.metadata["help"] for f in fields(ServingConfig) if f.name == name)
