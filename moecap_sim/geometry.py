"""Model geometry derived from a Hugging Face ``config.json`` (pure functions, no I/O).

:func:`parse_hf_config` normalizes the config of every supported MoE family into an
:class:`Architecture`: per layer, the attention kind and its parameter count, the MoE block
(routed experts, top-k, shared experts, router) or dense FFN, and the KV-cache shape.
Everything else (parameters total/active, weight bytes per precision, KV bytes per token,
FLOPs per token) is computed from it.

Conventions: parameter counts include biases and norms; SwiGLU/GLU FFNs have three matrices,
plain GELU FFNs (T5/Switch) two.  Multi-token-prediction (MTP) modules are not counted: vendors'
headline totals exclude them and serving engines do not run them without speculative decoding.
"""

from __future__ import annotations

import functools

import math
from dataclasses import dataclass, field
from typing import Any, Mapping, Optional

from moecap_sim.errors import UserError

SUPPORTED_FAMILIES = (
    "mixtral", "phimoe", "qwen2_moe", "qwen3_moe", "qwen3_next", "deepseek", "deepseek_v2",
    "deepseek_v3", "kimi_k2", "olmoe", "dbrx", "arctic", "grok-1", "switch_transformers",
    "gpt_oss", "llama4", "llama4_text", "glm4_moe",
)


@dataclass(frozen=True)
class Attention:
    """One layer's attention block.

    ``kind``: ``gqa`` (MHA when kv heads == heads), ``mla`` (DeepSeek latent attention),
    ``linear`` (recurrent, e.g. Gated DeltaNet: constant state per sequence).
    ``window``: tokens kept in the KV cache for sliding-window / chunked-local layers
    (None = full context).
    """

    kind: str
    params: float
    num_heads: int
    num_kv_heads: int
    head_dim: int  # q·k dimension per head
    v_head_dim: int
    window: Optional[int] = None
    q_lora_rank: Optional[int] = None
    kv_lora_rank: int = 0
    qk_rope_head_dim: int = 0
    qk_nope_head_dim: int = 0
    state_elems: float = 0.0  # linear attention: recurrent + conv state elements per sequence
    cross_attention_params: float = 0.0  # encoder-decoder: decoder cross-attention block

    def kv_elems_per_token(self) -> float:
        """KV-cache elements stored per token (0 for linear attention)."""
        if self.kind == "mla":
            return float(self.kv_lora_rank + self.qk_rope_head_dim)
        if self.kind == "linear":
            return 0.0
        return float(self.num_kv_heads * (self.head_dim + self.v_head_dim))

    def kv_elems_per_token_per_rank(self, tp: int) -> float:
        """KV elements one TP rank stores per token — the one home of this rule: GQA/MHA heads
        split over TP but never below one KV head per rank (replicated when kv_heads < TP); the
        MLA latent has no head axis and is replicated on every rank; linear attention has none."""
        if self.kind == "mla":
            return self.kv_elems_per_token()
        if self.kind == "linear":
            return 0.0
        return float(max(1, math.ceil(self.num_kv_heads / tp)) * (self.head_dim + self.v_head_dim))


@dataclass(frozen=True)
class MoE:
    """One layer's MoE block.  ``expert_params`` is per routed expert; shared experts are
    always active and counted in ``shared_params`` (all of them together)."""

    num_experts: int
    top_k: int
    expert_params: float
    num_shared: int = 0
    shared_params: float = 0.0
    router_params: float = 0.0
    grouped_routing: bool = False  # DeepSeek-V3-style group-limited top-k (n_group > 1): more routing kernels
    expert_matrices: int = 3  # gate, up, down (SwiGLU); 2 for a plain FFN expert (Switch: wi, wo)

    def intermediate_size(self, hidden_size: int) -> float:
        """An expert's inner width — the one home of this rule: its parameters over
        ``expert_matrices`` × ``hidden_size``."""
        return self.expert_params / (self.expert_matrices * hidden_size)


@dataclass(frozen=True)
class Layer:
    index: int
    attention: Attention
    moe: Optional[MoE] = None
    dense_ffn_params: float = 0.0  # dense FFN (non-MoE layer) or a dense residual MLP beside the MoE
    norm_params: float = 0.0
    role: str = "decoder"  # or "encoder" (runs in prefill only)


@dataclass(frozen=True)
class Architecture:
    family: str
    hidden_size: int
    vocab_size: int
    layers: tuple[Layer, ...]
    embedding_params: float
    lm_head_params: float  # 0 when tied to the embeddings
    tied_embeddings: bool
    max_context: Optional[int] = None
    notes: tuple[str, ...] = field(default_factory=tuple)

    # ---- structure -------------------------------------------------------------------
    @property
    def num_layers(self) -> int:
        return len(self.layers)

    @property
    def moe_layers(self) -> list[Layer]:
        return [l for l in self.layers if l.moe is not None]

    @property
    def moe_layer_indices(self) -> list[int]:
        return [l.index for l in self.moe_layers]

    def _first_moe(self) -> MoE:
        moes = self.moe_layers
        if not moes:
            raise ValueError("model has no MoE layer")
        return moes[0].moe

    @property
    def num_experts(self) -> int:
        return self._first_moe().num_experts

    @property
    def top_k(self) -> int:
        return self._first_moe().top_k

    @property
    def num_shared_experts(self) -> int:
        return self._first_moe().num_shared

    @property
    def expert_params(self) -> float:
        return self._first_moe().expert_params

    @property
    def is_encoder_decoder(self) -> bool:
        return any(l.role == "encoder" for l in self.layers)

    # ---- parameter counts --------------------------------------------------------------
    def params_by_group(self) -> dict[str, float]:
        """Total parameters per tensor group (see :mod:`moecap_sim.precision`); a fresh dict (the
        counts are computed once per architecture: it is immutable)."""
        return dict(self._params_by_group)

    @functools.cached_property
    def _params_by_group(self) -> dict[str, float]:
        g = dict(attention=0.0, experts=0.0, shared_experts=0.0, dense_ffn=0.0, router=0.0,
                 embeddings=self.embedding_params, lm_head=self.lm_head_params, other=0.0)
        for l in self.layers:
            g["attention"] += l.attention.params + l.attention.cross_attention_params
            g["dense_ffn"] += l.dense_ffn_params
            g["other"] += l.norm_params
            if l.moe:
                g["experts"] += l.moe.num_experts * l.moe.expert_params
                g["shared_experts"] += l.moe.shared_params
                g["router"] += l.moe.router_params
        return g

    def active_params_by_group(self) -> dict[str, float]:
        """Parameters one token touches (top-k routed experts + everything dense), per group.
        The input embedding counts one row per token in reality; here it is listed in full so
        callers can choose the vendor's convention (see :meth:`active_params`)."""
        g = self.params_by_group()
        g["experts"] = sum(l.moe.top_k * l.moe.expert_params for l in self.moe_layers)
        return g

    @property
    def total_params(self) -> float:
        return sum(self.params_by_group().values())

    def active_params(self, convention: str = "with_embeddings") -> float:
        """Active parameters per token under a vendor's counting convention:

        * ``with_embeddings`` — everything a token touches including the whole input
          embedding table (Mistral, Qwen1.5/Qwen3-30B, DeepSeek-MoE);
        * ``without_input_embedding`` — what is multiplied: the LM head counts, the input
          table does not (OpenAI, Zhipu);
        * ``non_embedding`` — neither the input table nor the LM head.
        A tied table is the LM head too.
        """
        g = self.active_params_by_group()
        if convention in ("without_input_embedding", "non_embedding") and not self.tied_embeddings:
            g["embeddings"] = 0.0
        if convention == "non_embedding":
            g["embeddings"] = g["lm_head"] = 0.0
        elif convention not in ("with_embeddings", "without_input_embedding"):
            raise ValueError(f"unknown counting convention {convention!r}")
        return sum(g.values())

    # ---- memory --------------------------------------------------------------------------
    def kv_bytes_per_token(self, kv_bytes: float, context: Optional[int] = None) -> float:
        """KV-cache bytes per token of context summed over layers, for a sequence of length
        ``context`` (sliding-window layers stop growing at their window; linear-attention
        layers hold a constant state, see :meth:`state_bytes_per_sequence`)."""
        total = 0.0
        for l in self.layers:
            if l.role == "encoder":
                continue
            e = l.attention.kv_elems_per_token()
            if l.attention.window and context and context > l.attention.window:
                e *= l.attention.window / context
            total += e * kv_bytes
        return total

    def kv_bytes_per_sequence(self, context: int, kv_bytes: float, state_bytes: float = 4.0) -> float:
        """KV cache (plus recurrent state) of one sequence holding ``context`` tokens."""
        return self.kv_bytes_per_token(kv_bytes, context) * context + self.state_bytes_per_sequence(state_bytes)

    def state_bytes_per_sequence(self, state_bytes: float = 4.0) -> float:
        """Recurrent state of linear-attention layers per sequence (fp32 by default)."""
        return sum(l.attention.state_elems for l in self.layers) * state_bytes

    # ---- compute ----------------------------------------------------------------------------
    def matmul_params_per_token(self) -> float:
        """Parameters multiplied per decoder token: active parameters without the input
        embedding (a gather, not a matmul), norms and encoder layers."""
        enc = sum(l.attention.params + l.dense_ffn_params +
                  (l.moe.top_k * l.moe.expert_params + l.moe.shared_params + l.moe.router_params if l.moe else 0)
                  for l in self.layers if l.role == "encoder")
        return self.active_params("without_input_embedding") - self.params_by_group()["other"] - enc

    def attention_flops_per_token(self, context: int) -> float:
        """Score + value FLOPs for one new token attending to ``context`` tokens (decode),
        summed over decoder layers: 2·heads·(qk_dim + v_dim)·ctx per full-attention layer."""
        total = 0.0
        for l in self.layers:
            a = l.attention
            if l.role == "encoder" or a.kind == "linear":
                if a.kind == "linear":
                    total += 4.0 * a.state_elems  # state update and read, ~2 FLOPs per element each
                continue
            ctx = min(context, a.window) if a.window else context
            if a.kind == "mla":
                # absorbed decode path: scores over (kv_lora + rope), values over kv_lora
                total += 2.0 * a.num_heads * (a.kv_lora_rank + a.qk_rope_head_dim + a.kv_lora_rank) * ctx
            else:
                total += 2.0 * a.num_heads * (a.head_dim + a.v_head_dim) * ctx
        return total

    def flops_per_token(self, context: int) -> float:
        """FLOPs for one decode token at ``context``: 2 × matmul params + attention."""
        return 2.0 * self.matmul_params_per_token() + self.attention_flops_per_token(context)


# =============================================================================================
# Parsing Hugging Face configs
# =============================================================================================

class _Cfg:
    """Dict access that names the missing field and the source in its error."""

    def __init__(self, data: Mapping[str, Any], where: str):
        self.d = data
        self.where = where

    def get(self, *names: str, default: Any = ...) -> Any:
        for n in names:
            if n in self.d and self.d[n] is not None:
                return self.d[n]
        if default is ...:
            raise UserError(f"{self.where}: config field '{names[0]}' is missing (needed for model_type '{self.d.get('model_type')}')")
        return default

    def int(self, *names: str, default: Any = ...) -> int:
        v = self.get(*names, default=default)
        if v is None:
            return v
        if isinstance(v, bool) or not isinstance(v, (int, float)) or v < 0:
            raise UserError(f"{self.where}: config field '{names[0]}' = {v!r} is not a non-negative number")
        return int(v)


def _gqa(h: int, heads: int, kv_heads: int, head_dim: int, bias: bool = False, o_bias: bool = False,
         q_gate: bool = False, window: Optional[int] = None) -> Attention:
    q = h * heads * head_dim * (2 if q_gate else 1)
    kv = 2 * h * kv_heads * head_dim
    o = heads * head_dim * h
    b = (heads * head_dim + 2 * kv_heads * head_dim if bias else 0) + (h if o_bias else 0)
    return Attention(kind="gqa", params=float(q + kv + o + b), num_heads=heads, num_kv_heads=kv_heads,
                     head_dim=head_dim, v_head_dim=head_dim, window=window)


def _mla(c: _Cfg, h: int) -> Attention:
    heads = c.int("num_attention_heads")
    q_lora = c.get("q_lora_rank", default=None)
    kv_lora = c.int("kv_lora_rank")
    nope, rope, v = c.int("qk_nope_head_dim"), c.int("qk_rope_head_dim"), c.int("v_head_dim")
    qk = nope + rope
    if q_lora:
        q = h * q_lora + q_lora + q_lora * heads * qk  # q_a, q_a_layernorm, q_b
    else:
        q = h * heads * qk
    kv = h * (kv_lora + rope) + kv_lora + kv_lora * heads * (nope + v)  # kv_a (with MQA rope key), norm, kv_b
    o = heads * v * h
    return Attention(kind="mla", params=float(q + kv + o), num_heads=heads, num_kv_heads=heads, head_dim=qk,
                     v_head_dim=v, q_lora_rank=q_lora, kv_lora_rank=kv_lora, qk_rope_head_dim=rope,
                     qk_nope_head_dim=nope)


def _swiglu(h: int, inter: int) -> float:
    return 3.0 * h * inter


def parse_hf_config(cfg: Mapping[str, Any], where: str = "config") -> Architecture:
    """Normalize a Hugging Face ``config.json`` (as a dict) into an :class:`Architecture`.

    Raises :class:`UserError` for an unsupported ``model_type`` or a missing field.
    """
    if not isinstance(cfg, Mapping):
        raise UserError(f"{where}: expected a JSON object")
    mt = cfg.get("model_type")
    if mt in ("llama4",) and "text_config" in cfg:
        cfg = dict(cfg["text_config"], model_type="llama4_text")
        mt = "llama4_text"
    parser = _PARSERS.get(mt)
    if parser is None:
        from moecap_sim.errors import close_matches
        hint = close_matches(str(mt), SUPPORTED_FAMILIES)
        raise UserError(f"{where}: model_type {mt!r} is not a supported MoE family "
                        f"(supported: {', '.join(SUPPORTED_FAMILIES)})" + (f"; did you mean {hint[0]}?" if hint else ""))
    return parser(_Cfg(cfg, where))


def _finish(c: _Cfg, family: str, layers: list[Layer], h: int, vocab: int, tied: Optional[bool] = None,
            notes: tuple[str, ...] = ()) -> Architecture:
    if tied is None:
        tied = bool(c.get("tie_word_embeddings", default=False))
    emb = float(vocab * h)
    return Architecture(family=family, hidden_size=h, vocab_size=vocab, layers=tuple(layers),
                        embedding_params=emb, lm_head_params=0.0 if tied else emb, tied_embeddings=tied,
                        max_context=c.get("max_position_embeddings", "max_seq_len", default=None), notes=notes)


def _parse_mixtral_like(c: _Cfg) -> Architecture:
    """Mixtral, Phi-3.5-MoE and Grok-1 (HF ports): every layer MoE, no shared experts."""
    mt = c.get("model_type")
    h, n = c.int("hidden_size"), c.int("num_hidden_layers")
    heads = c.int("num_attention_heads")
    kv = c.int("num_key_value_heads", default=heads)
    hd = c.int("head_dim", default=h // heads)
    e = c.int("num_local_experts", "num_experts")
    k = c.int("num_experts_per_tok")
    inter = c.int("intermediate_size")
    bias = bool(c.get("attention_bias", default=mt == "phimoe"))
    window = c.get("sliding_window", default=None)
    layers = []
    for i in range(n):
        att = _gqa(h, heads, kv, hd, bias=bias, o_bias=bias, window=window)
        moe = MoE(num_experts=e, top_k=k, expert_params=_swiglu(h, inter), router_params=float(h * e))
        layers.append(Layer(i, att, moe, norm_params=2.0 * h * (2 if mt == "phimoe" else 1)))
    return _finish(c, mt, layers, h, c.int("vocab_size"))


def _parse_qwen_moe(c: _Cfg) -> Architecture:
    """Qwen1.5/Qwen2-MoE (shared expert with sigmoid gate, qkv bias) and Qwen3-MoE."""
    mt = c.get("model_type")
    h, n = c.int("hidden_size"), c.int("num_hidden_layers")
    heads = c.int("num_attention_heads")
    kv = c.int("num_key_value_heads", default=heads)
    hd = c.int("head_dim", default=h // heads)
    e, k = c.int("num_experts"), c.int("num_experts_per_tok")
    moe_inter = c.int("moe_intermediate_size")
    shared_inter = c.int("shared_expert_intermediate_size", default=0)
    dense_inter = c.int("intermediate_size", default=0)
    step = c.int("decoder_sparse_step", default=1)
    mlp_only = set(c.get("mlp_only_layers", default=[]) or [])
    bias = mt == "qwen2_moe" or bool(c.get("attention_bias", default=False))
    qk_norm = 2 * hd if mt == "qwen3_moe" else 0
    layers = []
    for i in range(n):
        att = _gqa(h, heads, kv, hd, bias=bias)
        if i not in mlp_only and e > 0 and (i + 1) % step == 0:
            moe = MoE(num_experts=e, top_k=k, expert_params=_swiglu(h, moe_inter),
                      num_shared=1 if shared_inter else 0,
                      shared_params=_swiglu(h, shared_inter) + (h if shared_inter else 0),
                      router_params=float(h * e))
            layers.append(Layer(i, att, moe, norm_params=2.0 * h + qk_norm))
        else:
            layers.append(Layer(i, att, None, dense_ffn_params=_swiglu(h, dense_inter), norm_params=2.0 * h + qk_norm))
    return _finish(c, mt, layers, h, c.int("vocab_size"))


def _parse_qwen3_next(c: _Cfg) -> Architecture:
    """Qwen3-Next: 3 Gated-DeltaNet layers to 1 gated full-attention layer; 512 experts + shared."""
    h, n = c.int("hidden_size"), c.int("num_hidden_layers")
    heads, kv, hd = c.int("num_attention_heads"), c.int("num_key_value_heads"), c.int("head_dim")
    interval = c.int("full_attention_interval", default=4)
    layer_types = c.get("layer_types", default=None)
    nk, nv = c.int("linear_num_key_heads"), c.int("linear_num_value_heads")
    dk, dv = c.int("linear_key_head_dim"), c.int("linear_value_head_dim")
    conv = c.int("linear_conv_kernel_dim", default=4)
    e, k = c.int("num_experts"), c.int("num_experts_per_tok")
    moe_inter, shared_inter = c.int("moe_intermediate_size"), c.int("shared_expert_intermediate_size")
    layers = []
    for i in range(n):
        full = (layer_types[i] == "full_attention") if layer_types else ((i + 1) % interval == 0)
        if full:
            att = _gqa(h, heads, kv, hd, q_gate=True)
        else:
            qkvz = h * (2 * nk * dk + 2 * nv * dv)
            ba = h * 2 * nv
            conv_p = (2 * nk * dk + nv * dv) * conv
            out = nv * dv * h
            params = qkvz + ba + conv_p + out + 2 * nv + dv
            state = nv * dk * dv + (2 * nk * dk + nv * dv) * (conv - 1)
            att = Attention(kind="linear", params=float(params), num_heads=nv, num_kv_heads=nk, head_dim=dk,
                            v_head_dim=dv, state_elems=float(state))
        moe = MoE(num_experts=e, top_k=k, expert_params=_swiglu(h, moe_inter), num_shared=1,
                  shared_params=_swiglu(h, shared_inter) + h, router_params=float(h * e))
        layers.append(Layer(i, att, moe, norm_params=2.0 * h))
    return _finish(c, "qwen3_next", layers, h, c.int("vocab_size"))


def _parse_deepseek(c: _Cfg) -> Architecture:
    """DeepSeek-MoE (MHA), DeepSeek-V2/V2-Lite/V3/R1 and Kimi-K2 (MLA): first_k_dense_replace
    dense layers, then MoE with shared experts.  MTP layers (num_nextn_predict_layers) excluded."""
    mt = c.get("model_type")
    h, n = c.int("hidden_size"), c.int("num_hidden_layers")
    e, k = c.int("n_routed_experts"), c.int("num_experts_per_tok")
    n_shared = c.int("n_shared_experts", default=0)
    moe_inter, dense_inter = c.int("moe_intermediate_size"), c.int("intermediate_size")
    first_dense = c.int("first_k_dense_replace", default=0)
    freq = c.int("moe_layer_freq", default=1)
    mla = c.get("kv_lora_rank", default=None) is not None
    heads = c.int("num_attention_heads")
    layers = []
    for i in range(n):
        if mla:
            att = _mla(c, h)
        else:
            kvh = c.int("num_key_value_heads", default=heads)
            att = _gqa(h, heads, kvh, c.int("head_dim", default=h // heads))
        norm = 2.0 * h
        if i >= first_dense and i % freq == 0:
            bias_term = e if c.get("topk_method", default="") == "noaux_tc" else 0  # e_score_correction_bias
            moe = MoE(num_experts=e, top_k=k, expert_params=_swiglu(h, moe_inter), num_shared=n_shared,
                      shared_params=n_shared * _swiglu(h, moe_inter), router_params=float(h * e + bias_term),
                      grouped_routing=c.int("n_group", default=1) > 1)
            layers.append(Layer(i, att, moe, norm_params=norm))
        else:
            layers.append(Layer(i, att, None, dense_ffn_params=_swiglu(h, dense_inter), norm_params=norm))
    mtp = c.int("num_nextn_predict_layers", default=0)
    notes = (f"{mtp} MTP layer(s) in the checkpoint are not counted (not run without speculative decoding)",) if mtp else ()
    return _finish(c, mt, layers, h, c.int("vocab_size"), notes=notes)


def _parse_olmoe(c: _Cfg) -> Architecture:
    h, n = c.int("hidden_size"), c.int("num_hidden_layers")
    heads = c.int("num_attention_heads")
    kv = c.int("num_key_value_heads", default=heads)
    hd = h // heads
    e, k, inter = c.int("num_experts"), c.int("num_experts_per_tok"), c.int("intermediate_size")
    layers = []
    for i in range(n):
        att = _gqa(h, heads, kv, hd, bias=bool(c.get("attention_bias", default=False)))
        moe = MoE(num_experts=e, top_k=k, expert_params=_swiglu(h, inter), router_params=float(h * e))
        layers.append(Layer(i, att, moe, norm_params=2.0 * h + h + kv * hd))  # + q/k norms
    return _finish(c, "olmoe", layers, h, c.int("vocab_size"))


def _parse_dbrx(c: _Cfg) -> Architecture:
    h, n, heads = c.int("d_model"), c.int("n_layers"), c.int("n_heads")
    attn = _Cfg(c.get("attn_config"), c.where + " attn_config")
    ffn = _Cfg(c.get("ffn_config"), c.where + " ffn_config")
    kv = attn.int("kv_n_heads")
    e, k, inter = ffn.int("moe_num_experts"), ffn.int("moe_top_k"), ffn.int("ffn_hidden_size")
    hd = h // heads
    layers = [Layer(i, _gqa(h, heads, kv, hd), MoE(num_experts=e, top_k=k, expert_params=_swiglu(h, inter),
                                                 router_params=float(h * e)), norm_params=2.0 * h) for i in range(n)]
    arch = _finish(c, "dbrx", layers, h, c.int("vocab_size"))
    return arch


def _parse_arctic(c: _Cfg) -> Architecture:
    """Snowflake Arctic: a dense transformer with a residual MLP (width = hidden) in every layer,
    plus a 128-expert top-2 MoE in parallel (moe_layer_frequency 1)."""
    h, n = c.int("hidden_size"), c.int("num_hidden_layers")
    heads = c.int("num_attention_heads")
    kv = c.int("num_key_value_heads", default=heads)
    hd = h // heads
    e, k, inter = c.int("num_local_experts"), c.int("num_experts_per_tok"), c.int("intermediate_size")
    freq = c.int("moe_layer_frequency", default=1)
    residual = bool(c.get("parallel_attn_mlp_res", default=True))
    layers = []
    for i in range(n):
        att = _gqa(h, heads, kv, hd)
        if (i + 1) % freq == 0:
            moe = MoE(num_experts=e, top_k=k, expert_params=_swiglu(h, inter), router_params=float(h * e))
            layers.append(Layer(i, att, moe, dense_ffn_params=_swiglu(h, h) if residual else 0.0, norm_params=4.0 * h))
        else:
            layers.append(Layer(i, att, None, dense_ffn_params=_swiglu(h, inter), norm_params=2.0 * h))
    return _finish(c, "arctic", layers, h, c.int("vocab_size"))


def _parse_switch(c: _Cfg) -> Architecture:
    """Switch Transformer (T5 encoder-decoder): sparse FFN every ``*_sparse_step`` layers, top-1,
    two-matrix ReLU/GELU FFN.  Encoder layers run in prefill only; decoder layers carry
    self-attention KV plus a cross-attention block."""
    h, dkv, heads = c.int("d_model"), c.int("d_kv"), c.int("num_heads")
    d_ff, e = c.int("d_ff"), c.int("num_experts")
    n_enc = c.int("num_layers")
    n_dec = c.int("num_decoder_layers", default=n_enc)
    enc_step, dec_step = c.int("encoder_sparse_step", default=1), c.int("decoder_sparse_step", default=1)
    attn_params = 4.0 * h * heads * dkv
    layers = []
    idx = 0
    for role, count, step in (("encoder", n_enc, enc_step), ("decoder", n_dec, dec_step)):
        for j in range(count):
            att = Attention(kind="gqa", params=attn_params, num_heads=heads, num_kv_heads=heads, head_dim=dkv,
                            v_head_dim=dkv, cross_attention_params=attn_params if role == "decoder" else 0.0)
            sparse = step > 0 and (j + 1) % step == 0 if step > 1 else step == 1
            if sparse:
                moe = MoE(num_experts=e, top_k=1, expert_params=2.0 * h * d_ff, router_params=float(h * e),
                          expert_matrices=2)
                layers.append(Layer(idx, att, moe, norm_params=2.0 * h, role=role))
            else:
                layers.append(Layer(idx, att, None, dense_ffn_params=2.0 * h * d_ff, norm_params=2.0 * h, role=role))
            idx += 1
    return _finish(c, "switch_transformers", layers, h, c.int("vocab_size"),
                   tied=bool(c.get("tie_word_embeddings", default=True)),
                   notes=("encoder-decoder: encoder layers run once per request (prefill), decoder layers per token",))


def _parse_gpt_oss(c: _Cfg) -> Architecture:
    """GPT-OSS: alternating sliding-window (128) and full attention, attention sinks, biased
    experts (fused gate_up + down), MXFP4 experts in the release."""
    h, n = c.int("hidden_size"), c.int("num_hidden_layers")
    heads, kv, hd = c.int("num_attention_heads"), c.int("num_key_value_heads"), c.int("head_dim")
    e = c.int("num_local_experts", "num_experts")
    k = c.int("num_experts_per_tok", "experts_per_token")
    inter = c.int("intermediate_size")
    window = c.int("sliding_window", default=128)
    types = c.get("layer_types", default=None)
    layers = []
    for i in range(n):
        sliding = (types[i] == "sliding_attention") if types else (i % 2 == 0)
        att = _gqa(h, heads, kv, hd, bias=True, o_bias=True, window=window if sliding else None)
        att = Attention(**{**att.__dict__, "params": att.params + heads})  # attention sinks
        expert = 3.0 * h * inter + 2 * inter + h  # gate_up (2·inter) and down biases
        moe = MoE(num_experts=e, top_k=k, expert_params=expert, router_params=float(h * e + e))
        layers.append(Layer(i, att, moe, norm_params=2.0 * h))
    return _finish(c, "gpt_oss", layers, h, c.int("vocab_size"))


def _parse_llama4(c: _Cfg) -> Architecture:
    """Llama-4 text model: MoE every ``interleave_moe_layer_step`` layers (top-1 routed + one
    shared expert), dense FFN (``intermediate_size_mlp``) elsewhere; 3 of 4 layers use chunked
    local attention (``attention_chunk_size``), every 4th is global NoPE."""
    h, n = c.int("hidden_size"), c.int("num_hidden_layers")
    heads, kv = c.int("num_attention_heads"), c.int("num_key_value_heads")
    hd = c.int("head_dim", default=h // heads)
    e, k = c.int("num_local_experts"), c.int("num_experts_per_tok")
    inter, inter_mlp = c.int("intermediate_size"), c.int("intermediate_size_mlp")
    step = c.int("interleave_moe_layer_step", default=1)
    moe_layers = c.get("moe_layers", default=None) or list(range(step - 1, n, step))
    chunk = c.get("attention_chunk_size", default=None)
    no_rope = c.get("no_rope_layers", default=None)
    layers = []
    for i in range(n):
        local = bool(no_rope[i]) if no_rope else ((i + 1) % 4 != 0)
        att = _gqa(h, heads, kv, hd, window=chunk if (chunk and local) else None)
        if i in moe_layers:
            moe = MoE(num_experts=e, top_k=k, expert_params=_swiglu(h, inter), num_shared=1,
                      shared_params=_swiglu(h, inter), router_params=float(h * e))
            layers.append(Layer(i, att, moe, norm_params=2.0 * h))
        else:
            layers.append(Layer(i, att, None, dense_ffn_params=_swiglu(h, inter_mlp), norm_params=2.0 * h))
    return _finish(c, "llama4", layers, h, c.int("vocab_size"))


def _parse_glm4_moe(c: _Cfg) -> Architecture:
    """GLM-4.5: GQA with bias and partial RoPE, first_k_dense_replace dense layers, 160 routed
    experts top-8 plus one shared expert; MTP layer excluded."""
    h, n = c.int("hidden_size"), c.int("num_hidden_layers")
    heads, kv = c.int("num_attention_heads"), c.int("num_key_value_heads")
    hd = c.int("head_dim", default=h // heads)
    e, k = c.int("n_routed_experts"), c.int("num_experts_per_tok")
    n_shared = c.int("n_shared_experts", default=0)
    moe_inter, dense_inter = c.int("moe_intermediate_size"), c.int("intermediate_size")
    first_dense = c.int("first_k_dense_replace", default=0)
    bias = bool(c.get("attention_bias", default=True))
    layers = []
    for i in range(n):
        att = _gqa(h, heads, kv, hd, bias=bias)
        if i >= first_dense:
            moe = MoE(num_experts=e, top_k=k, expert_params=_swiglu(h, moe_inter), num_shared=n_shared,
                      shared_params=n_shared * _swiglu(h, moe_inter), router_params=float(h * e + e))
            layers.append(Layer(i, att, moe, norm_params=2.0 * h))
        else:
            layers.append(Layer(i, att, None, dense_ffn_params=_swiglu(h, dense_inter), norm_params=2.0 * h))
    mtp = c.int("num_nextn_predict_layers", default=0)
    notes = (f"{mtp} MTP layer(s) not counted",) if mtp else ()
    return _finish(c, "glm4_moe", layers, h, c.int("vocab_size"), notes=notes)


_PARSERS = {
    "mixtral": _parse_mixtral_like, "phimoe": _parse_mixtral_like, "grok-1": _parse_mixtral_like,
    "qwen2_moe": _parse_qwen_moe, "qwen3_moe": _parse_qwen_moe, "qwen3_next": _parse_qwen3_next,
    "deepseek": _parse_deepseek, "deepseek_v2": _parse_deepseek, "deepseek_v3": _parse_deepseek,
    "kimi_k2": _parse_deepseek, "olmoe": _parse_olmoe, "dbrx": _parse_dbrx, "arctic": _parse_arctic,
    "switch_transformers": _parse_switch, "gpt_oss": _parse_gpt_oss, "llama4_text": _parse_llama4,
    "llama4": _parse_llama4, "glm4_moe": _parse_glm4_moe,
}
