"""Weight and KV-cache precisions, and mixed weight schemes.

A *precision* is what the user asks for (``--precision fp8``); a :class:`WeightScheme` says
which dtype each group of tensors is stored in.  Bytes per parameter include the quantization
scales a real checkpoint stores:

===========  ==========================================================  ============
precision    storage                                                      bytes/param
===========  ==========================================================  ============
fp32         IEEE float32                                                 4
bf16, fp16   16-bit float                                                 2
fp8          e4m3 + one fp32 scale per 128×128 block (DeepSeek-V3 style)  1 + 4/16384
int8         int8 + one fp16 scale per output channel (≈0 per parameter)  1 (+ row scales)
int4         int4 + fp16 scale and 4-bit zero per group of 128 (AWQ/GPTQ)  0.5 + 2.5/128
mxfp4        e2m1 + one e8m0 (1 byte) scale per 32 (OCP MX spec)          0.5 + 1/32
nvfp4        e2m1 + one fp8 scale per 16 (+ fp32 per tensor)              0.5 + 1/16
===========  ==========================================================  ============

When a precision is requested, it applies to the linear layers (attention projections, routed
and shared experts, dense FFNs), as vLLM/llama.cpp quantizers do; embeddings, the LM head,
the router and norms stay in 16-bit.  A model's *native* scheme (its released checkpoint)
comes from its catalog file.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Mapping, Optional, Union

from moecap_sim.errors import UserError, close_matches

BYTES_PER_PARAM: dict[str, float] = {
    "fp32": 4.0,
    "bf16": 2.0,
    "fp16": 2.0,
    "fp8": 1.0 + 4.0 / (128 * 128),
    "int8": 1.0,
    "int4": 0.5 + 2.5 / 128,
    "mxfp4": 0.5 + 1.0 / 32,
    "nvfp4": 0.5 + 1.0 / 16,
}
PRECISIONS = tuple(BYTES_PER_PARAM)

KV_BYTES: dict[str, float] = {"fp32": 4.0, "bf16": 2.0, "fp16": 2.0, "fp8": 1.0, "int8": 1.0, "int4": 0.5}

#: The compute dtype a weight format is *natively* multiplied in (W8A8 for fp8/int8, FP4 tensor
#: cores for the 4-bit float formats).  int4 is weight-only on every GPU we model.
NATIVE_COMPUTE_DTYPE = {"fp32": "fp32", "bf16": "bf16", "fp16": "fp16", "fp8": "fp8", "int8": "int8",
                        "int4": "bf16", "mxfp4": "fp4", "nvfp4": "fp4"}

GROUPS = ("attention", "experts", "shared_experts", "dense_ffn", "router", "embeddings", "lm_head", "other")


@dataclass(frozen=True)
class WeightScheme:
    """Storage dtype of each tensor group; ``name`` is how it is shown to the user."""

    name: str
    attention: str = "bf16"
    experts: str = "bf16"
    shared_experts: str = "bf16"
    dense_ffn: str = "bf16"
    router: str = "bf16"
    embeddings: str = "bf16"
    lm_head: str = "bf16"
    other: str = "bf16"  # norms, linear-attention small tensors, biases

    def dtype_of(self, group: str) -> str:
        return getattr(self, group)

    def bytes_per_param(self, group: str) -> float:
        return BYTES_PER_PARAM[self.dtype_of(group)]

    def describe(self) -> str:
        """e.g. ``native fp8 (fp8: attention, experts, ...; bf16: embeddings, lm_head, ...)``."""
        by_dtype: dict[str, list[str]] = {}
        for g in GROUPS:
            by_dtype.setdefault(self.dtype_of(g), []).append(g)
        parts = "; ".join(f"{d}: {', '.join(gs)}" for d, gs in by_dtype.items())
        return f"{self.name} ({parts})"


def check_precision(name: str, what: str = "precision") -> str:
    key = name.strip().lower()
    if key not in BYTES_PER_PARAM:
        hint = close_matches(key, PRECISIONS)
        raise UserError(f"unknown {what} '{name}' (known: {', '.join(PRECISIONS)})" + (f"; did you mean {hint[0]}?" if hint else ""))
    return key


def check_kv_dtype(name: str) -> str:
    key = name.strip().lower()
    if key not in KV_BYTES:
        raise UserError(f"unknown KV-cache dtype '{name}' (known: {', '.join(KV_BYTES)})")
    return key


def uniform_scheme(precision: str, sixteen_bit: str = "bf16") -> WeightScheme:
    """``precision`` on every linear layer; embeddings, LM head, router and norms 16-bit."""
    p = check_precision(precision)
    keep = "fp32" if p == "fp32" else sixteen_bit
    return WeightScheme(name=p, attention=p, experts=p, shared_experts=p, dense_ffn=p,
                        router=keep, embeddings=keep, lm_head=keep, other=keep)


def scheme_from_native(native: Union[str, Mapping[str, str]]) -> WeightScheme:
    """Build a model's native scheme from its catalog entry: a precision name, or a mapping
    with ``default`` plus per-group overrides (e.g. ``{default: bf16, experts: mxfp4}``)."""
    if isinstance(native, str):
        return replace(uniform_scheme(native), name=f"native {native}")
    base = uniform_scheme(native.get("default", "bf16"))
    overrides = {g: check_precision(d) for g, d in native.items() if g != "default"}
    label = ", ".join(f"{d} {g}" for g, d in overrides.items()) + f", {base.name} elsewhere"
    return replace(base, name=f"native {label}", **overrides)


def resolve_scheme(native: Union[str, Mapping[str, str]], requested: Optional[str]) -> WeightScheme:
    """The scheme to model: the native one when nothing (or 'native') is requested."""
    if requested is None or requested.strip().lower() in ("native", "auto"):
        return scheme_from_native(native)
    return uniform_scheme(requested)
