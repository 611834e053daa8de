"""Forced routing: the torch layers really compute with the experts a trace dictates."""

import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from moecap_sim.geometry import parse_hf_config  # noqa: E402
from moecap_sim.routing.base import RoutingProfile  # noqa: E402
from moecap_sim.validation.layers import TorchMoEModel  # noqa: E402
from moecap_sim.validation.routing import StepRouting, distinct_per_layer, load_trace_routing, default_traces_dir  # noqa: E402

TINY = {
    "olmoe": {"model_type": "olmoe", "hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4,
              "num_key_value_heads": 4, "intermediate_size": 32, "num_experts": 64, "num_experts_per_tok": 8,
              "vocab_size": 100},
    "mixtral": {"model_type": "mixtral", "hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4,
                "num_key_value_heads": 2, "head_dim": 16, "intermediate_size": 32, "num_local_experts": 8,
                "num_experts_per_tok": 2, "vocab_size": 100},
    "qwen": {"model_type": "qwen2_moe", "hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4,
             "num_key_value_heads": 4, "intermediate_size": 64, "moe_intermediate_size": 32,
             "shared_expert_intermediate_size": 64, "num_experts": 60, "num_experts_per_tok": 4, "vocab_size": 100},
    "deepseek": {"model_type": "deepseek_v2", "hidden_size": 64, "num_hidden_layers": 3, "num_attention_heads": 4,
                 "q_lora_rank": None, "kv_lora_rank": 32, "qk_nope_head_dim": 16, "qk_rope_head_dim": 8,
                 "v_head_dim": 16, "vocab_size": 100, "intermediate_size": 96, "moe_intermediate_size": 32,
                 "n_routed_experts": 16, "n_shared_experts": 2, "num_experts_per_tok": 3, "first_k_dense_replace": 1},
}


def _model(kind: str) -> TorchMoEModel:
    cfg = TINY[kind]
    return TorchMoEModel(cfg, parse_hf_config(cfg), seed=1, max_pos=256)


def _force(model, tokens: int, seed: int = 0) -> list:
    rng = np.random.default_rng(seed)
    forced = []
    for blk in model.moe_blocks:
        ids = np.stack([rng.choice(blk.E, size=blk.k, replace=False) for _ in range(tokens)])
        forced.append(torch.as_tensor(ids))
    model.force_routing(forced)
    return forced


@pytest.mark.parametrize("kind", list(TINY))
def test_decode_and_prefill_run_at_every_attention_kind(kind):
    m = _model(kind)
    with torch.inference_mode():
        m.alloc_cache(1, 40)
        out = m.forward(torch.randint(0, 100, (1, 16)), 0)
        assert out.shape == (1, 100) and torch.isfinite(out.float()).all()
        m.alloc_cache(3, 40)
        out = m.forward(torch.randint(0, 100, (3, 1)), 20)
        assert out.shape == (3, 100) and torch.isfinite(out.float()).all()


@pytest.mark.parametrize("kind", ["olmoe", "mixtral", "deepseek"])
def test_forced_experts_are_the_ones_computed(kind):
    """Poison every expert the forced routing does not name with NaN: the output stays finite,
    so those experts were never computed; poisoning one named expert reaches the output."""
    m = _model(kind)
    B = 4
    with torch.inference_mode():
        m.alloc_cache(B, 20)
        toks = torch.randint(0, 100, (B, 1))
        forced = _force(m, B)
        for blk, f in zip(m.moe_blocks, forced):
            used = set(f.flatten().tolist())
            for e in range(blk.E):
                if e not in used:
                    blk.w_gu[e].fill_(float("nan"))
        out = m.forward(toks, 10)
        assert torch.isfinite(out.float()).all()
        for blk, f in zip(m.moe_blocks, forced):
            assert blk.last_experts_run == sorted(set(f.flatten().tolist()))
            assert torch.equal(blk.last_routing, f)
        e0 = int(forced[0][0, 0])
        m.moe_blocks[0].w_gu[e0].fill_(float("nan"))
        assert not torch.isfinite(m.forward(toks, 10).float()).all()


def test_unforced_router_decides_and_is_recorded():
    m = _model("deepseek")
    with torch.inference_mode():
        m.alloc_cache(1, 40)
        m.force_routing(None)
        m.forward(torch.randint(0, 100, (1, 12)), 0)
    used = np.stack([r.numpy() for r in m.routing_used()], axis=1)
    assert used.shape == (12, len(m.moe_blocks), 3)
    assert len(np.unique(used)) > 3  # a random router spreads tokens over several experts
    assert all(len(set(row)) == 3 for row in used[:, 0, :])  # top-k ids are distinct per token


def test_step_routing_is_a_routing_profile():
    prof = StepRouting(distinct=(5.0, 7.0), num_experts=8, top_k=2, source="test")
    assert isinstance(prof, RoutingProfile)
    assert prof.expected_distinct_experts(4, 1) == 7.0
    assert prof.expected_distinct_experts(4) == 6.0
    assert distinct_per_layer(np.array([[[0, 1], [2, 3]], [[1, 4], [2, 3]]])) == [3, 2]


needs_traces = pytest.mark.skipif(not (default_traces_dir() / "SOURCES.md").exists(),
                                  reason="shared/traces_upstream not available")


@needs_traces
@pytest.mark.parametrize("model,layers", [("mixtral-8x7b", 2), ("qwen1.5-moe-a2.7b", 3), ("olmoe-1b-7b", 2)])
def test_trace_batches_are_valid_real_routings(model, layers):
    tr = load_trace_routing(model, layers)
    assert tr is not None
    for b in (1, 7, 64):
        ex = tr.decode_batch(b, 3)
        assert ex.shape == (b, layers, tr.top_k)
        assert ex.min() >= 0 and ex.max() < tr.num_experts
        assert all(len(set(r)) == tr.top_k for r in ex[:, 0, :])
        assert np.array_equal(ex, tr.decode_batch(b, 3))  # deterministic
    p = tr.prefill_chunk(300)
    assert p.shape == (300, layers, tr.top_k) and p.min() >= 0


def test_no_trace_for_deepseek_v2_lite():
    assert load_trace_routing("deepseek-v2-lite", 3) is None


@needs_traces
def test_real_trace_drives_a_real_geometry_layer():
    """OLMoE geometry (64 experts, top-8): a decode batch from the real trace is what runs."""
    m = _model("olmoe")
    tr = load_trace_routing("olmoe-1b-7b", len(m.moe_blocks))
    ex = tr.decode_batch(16, 5)
    with torch.inference_mode():
        m.alloc_cache(16, 8)
        m.force_routing([torch.as_tensor(ex[:, i, :]) for i in range(len(m.moe_blocks))])
        m.forward(torch.randint(0, 100, (16, 1)), 4)
    for i, blk in enumerate(m.moe_blocks):
        assert blk.last_experts_run == sorted(set(ex[:, i, :].flatten().tolist()))
    assert math.isclose(len(m.moe_blocks[0].last_experts_run), distinct_per_layer(ex)[0])
