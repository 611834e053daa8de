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

GGUF (llama.cpp / ik_llama.cpp) block formats
---------------------------------------------
ggml stores quantized weights in fixed-size blocks; bytes per weight = block bytes / block
weights, from the ``block_*`` structs of ``ggml/src/ggml-common.h`` (QK4_0 = QK8_0 = QK4_NL =
QK_MXFP4 = 32, QK_K = 256; ``ggml_half`` = 2 bytes):

=========  =========================================================  ==========  =====
type       block layout (ggml-common.h)                               bytes/blk   bpw
=========  =========================================================  ==========  =====
q4_0       d (half) + qs[16]                                          18 / 32     4.5
q4_1       d, m (2 half) + qs[16]                                     20 / 32     5.0
q5_0       d + qh[4] + qs[16]                                         22 / 32     5.5
q5_1       d, m + qh[4] + qs[16]                                      24 / 32     6.0
q8_0       d + qs[32] (int8)                                          34 / 32     8.5
iq4_nl     d + qs[16] (non-linear 4-bit grid)                         18 / 32     4.5
q2_k       scales[16] + qs[64] + d, dmin                              84 / 256    2.625
q3_k       hmask[32] + qs[64] + scales[12] + d                        110 / 256   3.4375
q4_k       d, dmin + scales[12] + qs[128]                             144 / 256   4.5
q5_k       d, dmin + scales[12] + qh[32] + qs[128]                    176 / 256   5.5
q6_k       ql[128] + qh[64] + scales[16] (int8) + d                   210 / 256   6.5625
iq4_xs     d + scales_h (u16) + scales_l[4] + qs[128]                 136 / 256   4.25
iq3_s      d + qs[64] + qh[8] + signs[32] + scales[4]                 110 / 256   3.4375
iq3_xxs    d + qs[96] (3*QK_K/8)                                      98 / 256    3.0625
iq2_s      d + qs[64] + qh[8] + scales[8]                             82 / 256    2.5625
iq2_xs     d + qs[32] (u16) + scales[8]                               74 / 256    2.3125
iq2_xxs    d + qs[32] (u16, QK_K/8)                                   66 / 256    2.0625
iq1_m      qs[32] + qh[16] + scales[8] (d packed in scales)           56 / 256    1.75
iq1_s      d + qs[32] + qh[8] (u16)                                   50 / 256    1.5625
=========  =========================================================  ==========  =====

(ggml's MXFP4 block, e8m0 + qs[16] = 17 / 32 bytes, equals ``mxfp4`` above.)  ik_llama.cpp's
repacked ``_r4``/``_r8`` variants (e.g. IQ4_NL_R4, made by ``-rtr``) interleave rows but keep the
same bytes per weight, so they map to the base type.  All GGUF types compute as **int8**: the
CPU/CUDA/Metal matmul kernels quantize the activations to Q8 blocks (``vec_dot_type`` q8_0/q8_K)
and use integer dot products (``NATIVE_COMPUTE_DTYPE``).

GGUF presets (``--precision q4_k_m``)
-------------------------------------
A GGUF *file type* (``llama-quantize ... Q4_K_M``) is not one block type: llama.cpp's
``llama_tensor_get_type`` (src/llama-quant.cpp) upgrades some tensors.  The presets below give
each tensor group its mix of block types, so ``bytes_per_param`` is the group's effective
bytes per weight and ``dtype_of`` its dominant type.  Rules used (approximations, per group):

* ``use_more_bits(i, n)`` = i < n/8 or i >= 7n/8 or (i - n/8) % 3 == 2 selects ~1/2 of the
  layers; ``ffn_down`` (1/3 of an FFN's/expert's weights) of those layers is upgraded:
  Q4_K_M and Q5_K_M -> q6_k; Q3_K_M -> q4_k (and q5_k for the first n/16 layers); Q2_K ->
  q3_k on every layer.  So an FFN group is 5/6 base + 1/6 q6_k for Q4_K_M/Q5_K_M.
* ``attn_v`` (about 1/10 of attention weights with GQA/MLA) goes to q6_k in the same layers
  (Q4_K_M, Q5_K_M), to q4_k/q5_k for Q3_K_M (plus ``attn_output`` -> q4_k), to q4_k for Q2_K,
  and to q5_k for IQ4_XS/IQ4_NL when n_gqa >= 4; modelled as 10-40 % of the group upgraded.
* ``output.weight`` (lm_head) is q6_k for every preset below Q8_0; ``token_embd`` keeps the
  base type; expert routers (``ffn_gate_inp``) and norms are never quantized (f32).
* Q8_0 / Q6_K / Q4_0: every linear weight in that type (lm_head q6_k for Q4_0).
* ``q4_k_l`` (bartowski's naming): Q4_K_M with token_embd and output in q8_0.
* ``iq4_xs-q5_k``: ikawrakow's Qwen3-30B-A3B test quant of ik_llama.cpp discussion #357
  (experts IQ4_XS, attention Q5_K, output Q6_K; 15.4 GiB).
* unsloth dynamic quants (``ud-*``; unsloth.ai blog "Run DeepSeek-R1 Dynamic 1.58-bit",
  2025-01, and the DeepSeek-R1-GGUF model card): routed experts at the low type (down_proj
  partly one step higher), attention and the first dense layers at 4-6 bit (q4_k/q6_k half and
  half), shared experts q6_k, embeddings q4_k, output q6_k.  Published DeepSeek-R1 sizes:
  UD-IQ1_S 131 GiB, UD-IQ1_M 158, UD-IQ2_XXS 183, UD-Q2_K_XL 212 (the blog's "GB" are GiB: the
  Q2_K_XL experts alone at 2.625 bpw are 215 GB), Q4_K_M 404 GB = 376.65 GiB.  The down_proj
  shares are chosen so these sizes come out within ~4 % (tests/test_gguf_precision.py); the
  per-type mixes are approximate.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
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

#: ggml block formats: (bytes per block, weights per block), from ggml/src/ggml-common.h.
GGML_BLOCKS: dict[str, tuple[int, int]] = {
    "q4_0": (18, 32), "q4_1": (20, 32), "q5_0": (22, 32), "q5_1": (24, 32), "q8_0": (34, 32),
    "iq4_nl": (18, 32),
    "q2_k": (84, 256), "q3_k": (110, 256), "q4_k": (144, 256), "q5_k": (176, 256), "q6_k": (210, 256),
    "iq4_xs": (136, 256), "iq3_s": (110, 256), "iq3_xxs": (98, 256), "iq2_s": (82, 256),
    "iq2_xs": (74, 256), "iq2_xxs": (66, 256), "iq1_m": (56, 256), "iq1_s": (50, 256),
}
BYTES_PER_PARAM.update({t: b / n for t, (b, n) in GGML_BLOCKS.items()})
PRECISIONS = tuple(BYTES_PER_PARAM)

KV_BYTES: dict[str, float] = {"fp32": 4.0, "bf16": 2.0, "fp16": 2.0, "fp8": 1.0, "int8": 1.0, "int4": 0.5,
                              "q8_0": 34 / 32, "q4_0": 18 / 32}  # llama.cpp -ctk/-ctv q8_0, q4_0

#: The compute dtype a weight format is *natively* multiplied in (W8A8 for fp8/int8, FP4 tensor
#: cores for the 4-bit float formats).  int4 is weight-only on every GPU we model.
NATIVE_COMPUTE_DTYPE = {"fp32": "fp32", "bf16": "bf16", "fp16": "fp16", "fp8": "fp8", "int8": "int8",
                        "int4": "bf16", "mxfp4": "fp4", "nvfp4": "fp4"}
NATIVE_COMPUTE_DTYPE.update({t: "int8" for t in GGML_BLOCKS})

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
    #: effective bytes per parameter of groups stored as a mix of types (GGUF presets): the
    #: group's ``dtype_of`` is then its dominant type.  ``((group, bytes), ...)``
    mixed_bytes: tuple = field(default=(), compare=True)

    def dtype_of(self, group: str) -> str:
        return getattr(self, group)

    def bytes_per_param(self, group: str) -> float:
        for g, b in self.mixed_bytes:
            if g == group:
                return b
        return BYTES_PER_PARAM[self.dtype_of(group)]

    def describe(self) -> str:
        """e.g. ``native fp8 (fp8: attention, experts, ...; bf16: embeddings, lm_head, ...)``."""
        by_dtype: dict[str, list[str]] = {}
        for g in GROUPS:
            by_dtype.setdefault(self.dtype_of(g), []).append(g)
        parts = "; ".join(f"{d}: {', '.join(gs)}" for d, gs in by_dtype.items())
        if self.mixed_bytes:  # GGUF presets: the effective bits per weight of the mixed groups
            parts += "; effective bpw " + ", ".join(f"{g} {8 * b:.2f}" for g, b in self.mixed_bytes)
        return f"{self.name} ({parts})"


# --- GGUF presets -----------------------------------------------------------------------------
# Each group: a mix {block type: fraction of the group's weights}; see the module docstring.
_FFN = ("experts", "shared_experts", "dense_ffn")


def _kquant_m(base: str, up: str, attn_up_frac: float = 0.1) -> dict:
    """Q4_K_M / Q5_K_M: ffn_down of half the layers and attn_v of those layers -> ``up``."""
    ffn = {base: 5 / 6, up: 1 / 6}
    return {"attention": {base: 1 - attn_up_frac, up: attn_up_frac}, **{g: ffn for g in _FFN},
            "embeddings": {base: 1.0}, "lm_head": {"q6_k": 1.0}}


def _uniform_gguf(t: str, lm_head: str = "q6_k", embeddings: Optional[str] = None) -> dict:
    return {"attention": {t: 1.0}, **{g: {t: 1.0} for g in _FFN},
            "embeddings": {embeddings or t: 1.0}, "lm_head": {lm_head: 1.0}}


def _unsloth(experts: dict) -> dict:
    """unsloth dynamic quant: low-bit routed experts, 4-6 bit elsewhere."""
    hi = {"q4_k": 0.5, "q6_k": 0.5}
    return {"attention": hi, "experts": experts, "shared_experts": {"q6_k": 1.0}, "dense_ffn": hi,
            "embeddings": {"q4_k": 1.0}, "lm_head": {"q6_k": 1.0}}


GGUF_PRESETS: dict[str, dict] = {
    "q8_0": _uniform_gguf("q8_0", lm_head="q8_0"),
    "q6_k": _uniform_gguf("q6_k"),
    "q5_k_m": _kquant_m("q5_k", "q6_k"),
    "q4_k_m": _kquant_m("q4_k", "q6_k"),
    "q4_k_l": {**_kquant_m("q4_k", "q6_k"), "embeddings": {"q8_0": 1.0}, "lm_head": {"q8_0": 1.0}},
    "q3_k_m": {"attention": {"q3_k": 0.6, "q4_k": 0.4},
               **{g: {"q3_k": 5 / 6, "q4_k": 7 / 48, "q5_k": 1 / 48} for g in _FFN},
               "embeddings": {"q3_k": 1.0}, "lm_head": {"q6_k": 1.0}},
    "q2_k": {"attention": {"q2_k": 0.6, "q3_k": 0.2, "q4_k": 0.2},
             **{g: {"q2_k": 2 / 3, "q3_k": 1 / 3} for g in _FFN},
             "embeddings": {"q2_k": 1.0}, "lm_head": {"q6_k": 1.0}},
    "q4_0": _uniform_gguf("q4_0"),
    "iq4_xs": {**_uniform_gguf("iq4_xs"), "attention": {"iq4_xs": 0.9, "q5_k": 0.1}},
    "iq4_nl": {**_uniform_gguf("iq4_nl"), "attention": {"iq4_nl": 0.9, "q5_k": 0.1}},
    "iq4_xs-q5_k": {**_uniform_gguf("iq4_xs", embeddings="q4_k"), "attention": {"q5_k": 1.0}},
    # routed experts: gate/up at the low type; down_proj partly one step up (shares fitted to the
    # published DeepSeek-R1 file sizes, see the docstring)
    "ud-iq1_s": _unsloth({"iq1_s": 1 - 0.1 / 3, "iq2_xxs": 0.1 / 3}),
    "ud-iq1_m": _unsloth({"iq1_m": 2 / 3, "iq2_xxs": 1 / 3}),
    "ud-iq2_xxs": _unsloth({"iq2_xxs": 2 / 3, "iq2_s": 1 / 3}),
    "ud-q2_k_xl": _unsloth({"q2_k": 1 - 0.1 / 3, "q3_k": 0.1 / 3}),
    "ud-iq3_xxs": _unsloth({"iq3_xxs": 5 / 6, "iq3_s": 1 / 6}),
    "ud-q4_k_xl": _unsloth({"q4_k": 5 / 6, "q5_k": 1 / 6}),
}
PRESETS = tuple(GGUF_PRESETS)


def _mix_bytes(mix: Mapping[str, float]) -> float:
    return sum(BYTES_PER_PARAM[t] * f for t, f in mix.items()) / sum(mix.values())


def gguf_scheme(preset: str) -> WeightScheme:
    """The :class:`WeightScheme` of a GGUF preset (``q4_k_m``, ``ud-iq1_s``, ...): each group's
    dominant block type and effective bytes per weight; routers and norms stay f32."""
    key = preset.strip().lower()
    groups = GGUF_PRESETS[key]
    dtypes = {g: max(mix, key=mix.get) for g, mix in groups.items()}
    mixed = tuple((g, _mix_bytes(mix)) for g, mix in groups.items() if len(mix) > 1)
    return WeightScheme(name=f"gguf {key}", router="fp32", other="fp32", mixed_bytes=mixed, **dtypes)


def check_precision(name: str, what: str = "precision") -> str:
    key = name.strip().lower()
    if key not in BYTES_PER_PARAM:
        known = PRECISIONS + (PRESETS if what == "precision" else ())
        hint = close_matches(key, known)
        raise UserError(f"unknown {what} '{name}' (known: {', '.join(known)})" + (f"; did you mean {hint[0]}?" if hint else ""))
    return key


def check_requested_precision(name: str, what: str = "precision") -> str:
    """A ``--precision`` value: a weight format or a GGUF preset (``q4_k_m``, ``ud-iq1_s``)."""
    key = name.strip().lower()
    return key if key in GGUF_PRESETS else check_precision(key, what)


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
    if requested.strip().lower() in GGUF_PRESETS:
        return gguf_scheme(requested)
    return uniform_scheme(requested)
