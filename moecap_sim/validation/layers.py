"""Real MoE decoder layers in torch, at a catalog model's real dimensions.

Built from the model's Hugging Face config (as parsed into :class:`~moecap_sim.geometry.Architecture`):

* attention — GQA/MHA with a fused QKV projection (bias where the model has it, OLMoE's q/k
  RMSNorm, RoPE) and ``F.scaled_dot_product_attention`` over a preallocated KV cache;
  DeepSeek-style **MLA** caches the compressed latent (kv_lora_rank + rope dims per token) and
  decodes with the *absorbed* path (q·W_uk against the latent, latent·W_uv after), prefill
  decompresses the new tokens with kv_b_proj (context 0);
* router — gate GEMM, softmax in fp32, top-k (renormalised where the model does);
  **forced routing**: when a trace is given, the top-k expert ids are taken from it (the gate
  GEMM still runs, and the gate weights are the softmax probabilities at the forced ids);
* routed experts — HF-style loop over the experts the batch activates (tokens sorted by expert,
  one fused gate/up GEMM, SiLU·mul, down GEMM per expert, weighted scatter-add back);
* shared experts (Qwen: sigmoid-gated; DeepSeek: n_shared × moe width) and dense FFN layers;
* RMSNorm, residual adds, a final norm and the LM head on the last token of each sequence.

Weights are bf16 (the models' native dtype) filled from a random pool (values do not change
the speed of dense kernels).  Every expert the loop runs is recorded (``last_routing``), so
tests can check that the forced trace really drove the computation.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Optional

from moecap_sim.geometry import Architecture


def _torch():
    import torch

    return torch


class WeightPool:
    """Fills tensors with pseudo-random values quickly by copying from a random pool (writing
    every page, so weights really live in DRAM), with a different offset each time."""

    def __init__(self, seed: int = 0, elems: int = 1 << 23, dtype=None, device: str = "cpu"):
        torch = _torch()
        g = torch.Generator().manual_seed(seed)
        self.dtype = dtype or torch.bfloat16
        self.device = device
        self.pool = torch.randn(elems, generator=g, dtype=torch.float32).to(device=device, dtype=self.dtype)
        self.offset = 0

    def new(self, *shape, std: float = 0.02):
        torch = _torch()
        t = torch.empty(*shape, dtype=self.dtype, device=self.device)
        flat = t.view(-1)
        n = flat.numel()
        p = self.pool.numel()
        pos = 0
        off = self.offset
        while pos < n:
            take = min(n - pos, p - off)
            flat[pos:pos + take].copy_(self.pool[off:off + take])
            pos += take
            off = (off + take) % p
        self.offset = (self.offset + 7919 * 13) % p
        if std != 1.0:
            t.mul_(std)
        return t


def rms_norm(x, w, eps: float = 1e-6):
    torch = _torch()
    return torch.nn.functional.rms_norm(x, (x.shape[-1],), w, eps)


class Rotary:
    """RoPE tables (cos/sin per position) for a rotary dimension ``dim``."""

    def __init__(self, dim: int, max_pos: int, theta: float = 10000.0, device: str = "cpu"):
        torch = _torch()
        inv = 1.0 / (theta ** (torch.arange(0, dim, 2, dtype=torch.float32) / dim))
        t = torch.arange(max_pos, dtype=torch.float32)
        f = torch.outer(t, inv)
        emb = torch.cat([f, f], dim=-1)
        self.cos = emb.cos().to(device=device, dtype=torch.bfloat16)
        self.sin = emb.sin().to(device=device, dtype=torch.bfloat16)

    def apply(self, x, start: int):
        """x: [B, heads, T, dim] rotated at positions start..start+T-1."""
        torch = _torch()
        T = x.shape[-2]
        cos = self.cos[start:start + T]
        sin = self.sin[start:start + T]
        h = x.shape[-1] // 2
        rot = torch.cat([-x[..., h:], x[..., :h]], dim=-1)
        return x * cos + rot * sin


@dataclass
class KVCache:
    """Per-layer caches: GQA ``k``/``v`` [B, kv_heads, max_ctx, d]; MLA ``latent`` [B, max_ctx, r+rope]."""

    k: list = field(default_factory=list)
    v: list = field(default_factory=list)
    latent: list = field(default_factory=list)
    batch: int = 0
    max_ctx: int = 0


class GQAAttention:
    def __init__(self, pool: WeightPool, h: int, heads: int, kv_heads: int, head_dim: int, bias: bool,
                 qk_norm: bool, rope: Rotary):
        self.h, self.heads, self.kvh, self.d = h, heads, kv_heads, head_dim
        out = (heads + 2 * kv_heads) * head_dim
        std = 1.0 / math.sqrt(h)
        self.w_qkv = pool.new(out, h, std=std)
        self.b_qkv = pool.new(out, std=0.01) if bias else None
        self.w_o = pool.new(h, heads * head_dim, std=1.0 / math.sqrt(heads * head_dim))
        self.q_norm = pool.new(heads * head_dim, std=0.0).add_(1.0) if qk_norm else None
        self.k_norm = pool.new(kv_heads * head_dim, std=0.0).add_(1.0) if qk_norm else None
        self.rope = rope

    def alloc_cache(self, batch: int, max_ctx: int, pool: WeightPool):
        torch = _torch()
        k = torch.empty(batch, self.kvh, max_ctx, self.d, dtype=torch.bfloat16, device=pool.device)
        v = torch.empty_like(k)
        _fill_tiled(k, pool)
        _fill_tiled(v, pool)
        return k, v

    def __call__(self, x, k_cache, v_cache, start: int):
        torch = _torch()
        F = torch.nn.functional
        B, T, _ = x.shape
        H, KV, d = self.heads, self.kvh, self.d
        qkv = F.linear(x, self.w_qkv, self.b_qkv)
        q, k, v = qkv.split([H * d, KV * d, KV * d], dim=-1)
        if self.q_norm is not None:
            q = rms_norm(q, self.q_norm)
            k = rms_norm(k, self.k_norm)
        q = q.view(B, T, H, d).transpose(1, 2)
        k = k.view(B, T, KV, d).transpose(1, 2)
        v = v.view(B, T, KV, d).transpose(1, 2)
        q = self.rope.apply(q, start)
        k = self.rope.apply(k, start)
        k_cache[:, :, start:start + T] = k
        v_cache[:, :, start:start + T] = v
        ks = k_cache[:, :, :start + T]
        vs = v_cache[:, :, :start + T]
        gqa = H != KV
        if T == 1:
            o = F.scaled_dot_product_attention(q, ks, vs, enable_gqa=gqa)
        elif start == 0:
            o = F.scaled_dot_product_attention(q, ks, vs, is_causal=True, enable_gqa=gqa)
        else:
            mask = torch.ones(T, start + T, dtype=torch.bool, device=x.device).tril(start)
            o = F.scaled_dot_product_attention(q, ks, vs, attn_mask=mask, enable_gqa=gqa)
        o = o.transpose(1, 2).reshape(B, T, H * d)
        return F.linear(o, self.w_o)


class MLAAttention:
    """DeepSeek-V2 multi-head latent attention (no q compression, as in V2-Lite; q_lora supported)."""

    def __init__(self, pool: WeightPool, h: int, heads: int, q_lora: Optional[int], kv_lora: int, nope: int,
                 rope_dim: int, v_dim: int, rope: Rotary):
        self.h, self.H, self.r, self.nope, self.rd, self.vd = h, heads, kv_lora, nope, rope_dim, v_dim
        qk = nope + rope_dim
        if q_lora:
            self.w_qa = pool.new(q_lora, h, std=1.0 / math.sqrt(h))
            self.qa_norm = pool.new(q_lora, std=0.0).add_(1.0)
            self.w_qb = pool.new(heads * qk, q_lora, std=1.0 / math.sqrt(q_lora))
            self.w_q = None
        else:
            self.w_q = pool.new(heads * qk, h, std=1.0 / math.sqrt(h))
        self.w_kva = pool.new(kv_lora + rope_dim, h, std=1.0 / math.sqrt(h))
        self.kv_norm = pool.new(kv_lora, std=0.0).add_(1.0)
        self.w_kvb = pool.new(heads * (nope + v_dim), kv_lora, std=1.0 / math.sqrt(kv_lora))
        wkvb = self.w_kvb.view(heads, nope + v_dim, kv_lora)
        self.w_uk = wkvb[:, :nope, :]  # [H, nope, r] (views: the same bytes as kv_b_proj)
        self.w_uv = wkvb[:, nope:, :]  # [H, v, r]
        self.w_o = pool.new(h, heads * v_dim, std=1.0 / math.sqrt(heads * v_dim))
        self.scale = 1.0 / math.sqrt(qk)
        self.rope = rope

    def alloc_cache(self, batch: int, max_ctx: int, pool: WeightPool):
        torch = _torch()
        lat = torch.empty(batch, max_ctx, self.r + self.rd, dtype=torch.bfloat16, device=pool.device)
        _fill_tiled(lat, pool)
        return lat

    def __call__(self, x, latent, start: int):
        torch = _torch()
        F = torch.nn.functional
        B, T, _ = x.shape
        H, r, nope, rd, vd = self.H, self.r, self.nope, self.rd, self.vd
        if self.w_q is not None:
            q = F.linear(x, self.w_q)
        else:
            q = F.linear(rms_norm(F.linear(x, self.w_qa), self.qa_norm), self.w_qb)
        q = q.view(B, T, H, nope + rd).transpose(1, 2)  # [B,H,T,qk]
        q_nope, q_pe = q.split([nope, rd], dim=-1)
        ckv = F.linear(x, self.w_kva)  # [B,T,r+rd]
        c, k_pe = ckv.split([r, rd], dim=-1)
        c = rms_norm(c, self.kv_norm)
        q_pe = self.rope.apply(q_pe, start)
        k_pe = self.rope.apply(k_pe.unsqueeze(1), start).squeeze(1)  # [B,T,rd]
        latent[:, start:start + T, :r] = c
        latent[:, start:start + T, r:] = k_pe
        if T == 1:
            # absorbed decode: scores against the latent cache, values from the latent
            q_lat = torch.bmm(q_nope.reshape(B, H, nope).transpose(0, 1), self.w_uk)  # [H,B,r]
            qf = torch.cat([q_lat.transpose(0, 1), q_pe.reshape(B, H, rd)], dim=-1)  # [B,H,r+rd]
            lat = latent[:, :start + 1]
            s = torch.bmm(qf, lat.transpose(1, 2)) * self.scale  # [B,H,ctx]
            p = torch.softmax(s.float(), dim=-1).to(x.dtype)
            o_lat = torch.bmm(p, lat[:, :, :r])  # [B,H,r]
            o = torch.bmm(o_lat.transpose(0, 1), self.w_uv.transpose(1, 2))  # [H,B,vd]
            o = o.transpose(0, 1).reshape(B, 1, H * vd)
        else:
            if start != 0:
                raise ValueError("MLA prefill with earlier context is not implemented (context must be 0)")
            kv = F.linear(c, self.w_kvb).view(B, T, H, nope + vd).transpose(1, 2)
            k_nope, v = kv.split([nope, vd], dim=-1)
            k = torch.cat([k_nope, k_pe.unsqueeze(1).expand(B, H, T, rd)], dim=-1)
            v = F.pad(v, (0, nope + rd - vd))  # SDPA's CPU flash kernel wants equal q/k/v head dims
            o = F.scaled_dot_product_attention(q.contiguous(), k, v, is_causal=True, scale=self.scale)[..., :vd]
            o = o.transpose(1, 2).reshape(B, T, H * vd)
        return F.linear(o, self.w_o)


def _fill_tiled(t, pool: WeightPool) -> None:
    flat = t.view(-1)
    n = flat.numel()
    src = pool.pool
    p = src.numel()
    pos = 0
    while pos < n:
        take = min(n - pos, p)
        flat[pos:pos + take].copy_(src[:take])
        pos += take


class FFN:
    """SwiGLU FFN with gate and up fused in one [2I, h] matrix."""

    def __init__(self, pool: WeightPool, h: int, inter: int):
        self.inter = inter
        self.w_gu = pool.new(2 * inter, h, std=1.0 / math.sqrt(h))
        self.w_down = pool.new(h, inter, std=1.0 / math.sqrt(inter))

    def __call__(self, x):
        torch = _torch()
        F = torch.nn.functional
        gu = F.linear(x, self.w_gu)
        g, u = gu.split([self.inter, self.inter], dim=-1)
        return F.linear(F.silu(g) * u, self.w_down)


class MoEBlock:
    """Router + routed experts (+ shared experts)."""

    def __init__(self, pool: WeightPool, h: int, num_experts: int, top_k: int, inter: int, norm_topk: bool,
                 shared_inter: int = 0, shared_gate: bool = False, softmax_after_topk: bool = False):
        torch = _torch()
        self.E, self.k, self.inter, self.norm_topk = num_experts, top_k, inter, norm_topk
        self.softmax_after_topk = softmax_after_topk
        # the router must be genuinely random (it decides when no trace is forced)
        g = torch.Generator().manual_seed(1234 + num_experts)
        self.w_router = (torch.randn(num_experts, h, generator=g) / math.sqrt(h)).to(device=pool.device,
                                                                                     dtype=torch.bfloat16)
        self.w_gu = pool.new(num_experts, 2 * inter, h, std=1.0 / math.sqrt(h))
        self.w_down = pool.new(num_experts, h, inter, std=1.0 / math.sqrt(inter))
        self.shared = FFN(pool, h, shared_inter) if shared_inter else None
        self.w_shared_gate = pool.new(1, h, std=1.0 / math.sqrt(h)) if shared_gate else None
        self.forced = None  # LongTensor [T, k] of expert ids for the next call, or None
        self.last_routing = None  # expert ids actually used by the last call [T, k]
        self.last_experts_run: list[int] = []

    def route(self, x2):
        torch = _torch()
        logits = torch.nn.functional.linear(x2, self.w_router)
        if self.forced is not None:
            idx = self.forced
            if idx.shape[0] != x2.shape[0]:
                raise ValueError(f"forced routing has {idx.shape[0]} rows for {x2.shape[0]} tokens")
            if self.softmax_after_topk:
                w = torch.softmax(logits.float().gather(1, idx), dim=-1)
            else:
                w = torch.softmax(logits.float(), dim=-1).gather(1, idx)
        elif self.softmax_after_topk:
            top, idx = torch.topk(logits.float(), self.k, dim=-1)
            w = torch.softmax(top, dim=-1)
        else:
            w, idx = torch.topk(torch.softmax(logits.float(), dim=-1), self.k, dim=-1)
        if self.norm_topk and not self.softmax_after_topk:
            w = w / w.sum(dim=-1, keepdim=True)
        return idx, w.to(x2.dtype)

    def __call__(self, x):
        torch = _torch()
        F = torch.nn.functional
        B, T, h = x.shape
        x2 = x.reshape(B * T, h)
        idx, w = self.route(x2)
        self.last_routing = idx
        flat = idx.reshape(-1)
        counts = torch.bincount(flat, minlength=self.E).tolist()
        order = torch.argsort(flat, stable=True)
        tok = order // self.k
        xs = x2.index_select(0, tok)
        ws = w.reshape(-1, 1).index_select(0, order)
        outs = []
        start = 0
        run = []
        for e, c in enumerate(counts):
            if c == 0:
                continue
            gu = F.linear(xs[start:start + c], self.w_gu[e])
            g, u = gu.split([self.inter, self.inter], dim=-1)
            outs.append(F.linear(F.silu(g) * u, self.w_down[e]))
            run.append(e)
            start += c
        self.last_experts_run = run
        y = torch.cat(outs) * ws
        out = torch.zeros_like(x2).index_add_(0, tok, y)
        if self.shared is not None:
            s = self.shared(x2)
            if self.w_shared_gate is not None:
                s = torch.sigmoid(F.linear(x2, self.w_shared_gate)) * s
            out = out + s
        return out.view(B, T, h)


class DecoderLayer:
    def __init__(self, attn, ffn, h: int, pool: WeightPool):
        self.attn = attn
        self.ffn = ffn
        self.n1 = pool.new(h, std=0.0).add_(1.0)
        self.n2 = pool.new(h, std=0.0).add_(1.0)

    def __call__(self, x, cache_args, start: int):
        x = x + self.attn(rms_norm(x, self.n1), *cache_args, start)
        return x + self.ffn(rms_norm(x, self.n2))


class TorchMoEModel:
    """A truncated MoE decoder (``arch.num_layers`` layers) with embeddings, final norm and LM head."""

    def __init__(self, config: dict, arch: Architecture, seed: int = 0, max_pos: int = 16384, device: str = "cpu"):
        self.config, self.arch = config, arch
        self.device = device
        pool = WeightPool(seed, device=device)
        self.pool = pool
        h, V = arch.hidden_size, arch.vocab_size
        self.h = h
        mt = config.get("model_type")
        self.family = mt
        self.embed = pool.new(V, h, std=0.02)
        self.lm_head = self.embed if arch.tied_embeddings else pool.new(V, h, std=1.0 / math.sqrt(h))
        self.final_norm = pool.new(h, std=0.0).add_(1.0)
        self.layers: list[DecoderLayer] = []
        self.moe_blocks: list[MoEBlock] = []
        theta = float(config.get("rope_theta", 10000.0 if mt != "mixtral" else 1e6))
        a0 = arch.layers[0].attention
        if a0.kind == "mla":
            rope = Rotary(a0.qk_rope_head_dim, max_pos, theta, device)
        else:
            rope = Rotary(a0.head_dim, max_pos, theta, device)
        self.rope = rope
        for layer in arch.layers:
            a = layer.attention
            if a.kind == "mla":
                attn = MLAAttention(pool, h, a.num_heads, a.q_lora_rank, a.kv_lora_rank, a.qk_nope_head_dim,
                                    a.qk_rope_head_dim, a.v_head_dim, rope)
            elif a.kind == "gqa":
                bias = mt == "qwen2_moe" or bool(config.get("attention_bias", False))
                attn = GQAAttention(pool, h, a.num_heads, a.num_kv_heads, a.head_dim, bias, qk_norm=mt == "olmoe",
                                    rope=rope)
            else:
                raise ValueError(f"attention kind {a.kind!r} is not implemented in the torch validation layers")
            if layer.moe is not None:
                m = layer.moe
                inter = int(round(m.intermediate_size(h)))
                shared_inter = 0
                if m.shared_params:
                    shared_inter = int(config.get("shared_expert_intermediate_size") or
                                       m.num_shared * config.get("moe_intermediate_size", inter))
                ffn = MoEBlock(pool, h, m.num_experts, m.top_k, inter,
                               norm_topk=bool(config.get("norm_topk_prob", mt == "mixtral")),
                               shared_inter=shared_inter, shared_gate=mt in ("qwen2_moe",),
                               softmax_after_topk=mt == "mixtral")
                self.moe_blocks.append(ffn)
            else:
                ffn = FFN(pool, h, int(round(layer.dense_ffn_params / (3 * h))))
            self.layers.append(DecoderLayer(attn, ffn, h, pool))
        self.cache: Optional[KVCache] = None

    def alloc_cache(self, batch: int, max_ctx: int) -> KVCache:
        """(Re)allocate the KV cache for ``batch`` sequences of up to ``max_ctx`` tokens."""
        self.cache = None
        cache = KVCache(batch=batch, max_ctx=max_ctx)
        for layer in self.layers:
            if isinstance(layer.attn, MLAAttention):
                cache.latent.append(layer.attn.alloc_cache(batch, max_ctx, self.pool))
                cache.k.append(None)
                cache.v.append(None)
            else:
                k, v = layer.attn.alloc_cache(batch, max_ctx, self.pool)
                cache.k.append(k)
                cache.v.append(v)
                cache.latent.append(None)
        self.cache = cache
        return cache

    # --- routing -----------------------------------------------------------------------------
    def force_routing(self, per_layer: Optional[list]) -> None:
        """Force the top-k expert ids of every MoE layer (a LongTensor [tokens, k] per MoE layer),
        or give the decision back to the routers with ``None``."""
        for i, blk in enumerate(self.moe_blocks):
            blk.forced = None if per_layer is None else per_layer[i]

    def routing_used(self) -> list:
        return [blk.last_routing for blk in self.moe_blocks]

    # --- forward -----------------------------------------------------------------------------
    def forward(self, tokens, start: int):
        """One forward pass: ``tokens`` [B, T] ids at positions start..start+T-1 of every sequence
        (the KV cache must hold ``start`` tokens of context).  Returns logits of the last token."""
        torch = _torch()
        F = torch.nn.functional
        if self.cache is None:
            raise RuntimeError("alloc_cache() first")
        x = F.embedding(tokens, self.embed)
        for i, layer in enumerate(self.layers):
            if isinstance(layer.attn, MLAAttention):
                x = layer(x, (self.cache.latent[i],), start)
            else:
                x = layer(x, (self.cache.k[i], self.cache.v[i]), start)
        last = rms_norm(x[:, -1], self.final_norm)
        return F.linear(last, self.lm_head)
