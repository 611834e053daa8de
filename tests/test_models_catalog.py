"""Model catalog: parameter counts against vendors' published figures, aliases, HF configs."""

import json

import pytest

from moecap_sim.catalog.models import get_model, list_models, registry
from moecap_sim.errors import UserError

REQUIRED = ["deepseek-r1", "deepseek-v3", "deepseek-v2", "deepseek-v2-lite", "deepseek-moe-16b", "mixtral-8x7b",
            "mixtral-8x22b", "qwen1.5-moe-a2.7b", "qwen2-57b-a14b", "qwen3-30b-a3b", "qwen3-235b-a22b",
            "qwen3-next-80b-a3b", "olmoe-1b-7b", "dbrx", "snowflake-arctic", "grok-1", "switch-c-2048",
            "gpt-oss-20b", "gpt-oss-120b", "llama-4-scout", "llama-4-maverick", "phi-3.5-moe", "kimi-k2", "glm-4.5"]


def test_catalog_has_every_required_model():
    assert set(REQUIRED) <= set(registry().names())


@pytest.mark.parametrize("name", REQUIRED)
def test_total_params_match_vendor(name):
    m = get_model(name)
    pub = m.published
    assert pub is not None, f"{name} has no published figures"
    err = m.arch.total_params / pub.total_params - 1
    assert abs(err) <= 0.03, f"{name}: total {m.arch.total_params / 1e9:.2f}B vs published {pub.total_params / 1e9:.2f}B"


@pytest.mark.parametrize("name", REQUIRED)
def test_active_params_match_vendor(name):
    m = get_model(name)
    pub = m.published
    if pub.active_params is None:
        assert name == "switch-c-2048"  # the Switch paper publishes no active count
        return
    got = m.arch.active_params(pub.active_convention)
    err = got / pub.active_params - 1
    assert abs(err) <= pub.tolerance, f"{name}: active {got / 1e9:.2f}B vs published {pub.active_params / 1e9:.2f}B"
    if pub.tolerance > 0.03:
        assert pub.note, "a widened tolerance must be explained"


def test_known_geometry_figures():
    ds = get_model("deepseek-r1").arch
    assert ds.num_experts == 256 and ds.top_k == 8 and ds.num_shared_experts == 1
    assert len(ds.moe_layers) == 58
    assert ds.expert_params == pytest.approx(3 * 7168 * 2048)  # 44.0M per expert
    # MLA caches the 512-d latent + 64-d rope key per layer: 576 elements
    assert ds.kv_bytes_per_token(2.0) == pytest.approx(61 * 576 * 2)
    mix = get_model("mixtral-8x7b").arch
    assert mix.kv_bytes_per_token(2.0) == pytest.approx(32 * 2 * 8 * 128 * 2)  # 128 KiB/token
    assert mix.expert_params == pytest.approx(176_160_768)
    maverick = get_model("llama-4-maverick").arch
    assert len(maverick.moe_layers) == 24 and maverick.moe_layer_indices[:2] == [1, 3]


def test_sliding_window_caps_kv():
    g = get_model("gpt-oss-120b").arch
    short = g.kv_bytes_per_token(2.0, 128)
    long = g.kv_bytes_per_token(2.0, 128 * 64)
    # half the layers are 128-token sliding window: per-token KV at long context tends to half
    assert long < short and long == pytest.approx(short / 2, rel=0.05)


def test_linear_attention_has_constant_state():
    q = get_model("qwen3-next-80b-a3b").arch
    assert q.state_bytes_per_sequence() > 0
    full_layers = sum(1 for l in q.layers if l.attention.kind != "linear")
    assert full_layers == 12
    assert q.kv_bytes_per_token(2.0) == pytest.approx(12 * 2 * 2 * 256 * 2)


@pytest.mark.parametrize("alias,canonical", [("DeepSeek-R1", "deepseek-r1"), ("mixtral", "mixtral-8x7b"),
                                             ("Qwen3-235B-A22B", "qwen3-235b-a22b"), ("openai/gpt-oss-120b", "gpt-oss-120b"),
                                             ("OLMOE", "olmoe-1b-7b")])
def test_aliases_case_insensitive(alias, canonical):
    assert get_model(alias).name == canonical


def test_aliases_are_unique():
    seen = {}
    for m in list_models():
        for n in [m.name] + m.aliases:
            assert n.lower() not in seen or seen[n.lower()] == m.name, f"{n} used by {seen.get(n.lower())} and {m.name}"
            seen[n.lower()] = m.name


def test_unknown_model_suggests_close_matches():
    with pytest.raises(UserError) as e:
        get_model("deepseek-r2")
    assert "deepseek-r1" in str(e.value)


def test_hf_config_json_path(tmp_path):
    cfg = dict(get_model("qwen3-30b-a3b").config)
    p = tmp_path / "config.json"
    p.write_text(json.dumps(cfg))
    m = get_model(str(p))
    assert m.arch.total_params == pytest.approx(get_model("qwen3-30b-a3b").arch.total_params)
    # a Llama-4 style nested text_config and an MXFP4 quantization_config are read too
    cfg = {"model_type": "llama4", "text_config": dict(get_model("llama-4-scout").config["text_config"])}
    p2 = tmp_path / "scout" / "config.json"
    p2.parent.mkdir()
    p2.write_text(json.dumps(cfg))
    assert get_model(str(p2)).arch.total_params == pytest.approx(get_model("llama-4-scout").arch.total_params)
    p3 = tmp_path / "oss" / "config.json"
    p3.parent.mkdir()
    p3.write_text(json.dumps(get_model("gpt-oss-20b").config))
    assert get_model(str(p3)).native_precision == {"default": "bf16", "experts": "mxfp4"}


def test_hf_config_errors(tmp_path):
    bad = tmp_path / "config.json"
    bad.write_text(json.dumps({"model_type": "llama", "hidden_size": 4096}))
    with pytest.raises(UserError, match="not a supported MoE family"):
        get_model(str(bad))
    miss = tmp_path / "m" / "config.json"
    miss.parent.mkdir()
    miss.write_text(json.dumps({"model_type": "mixtral", "hidden_size": 4096}))
    with pytest.raises(UserError, match="num_hidden_layers"):
        get_model(str(miss))
    broken = tmp_path / "b" / "config.json"
    broken.parent.mkdir()
    broken.write_text('{"model_type": "mixtral",\n "hidden_size": }')
    with pytest.raises(UserError, match="line 2"):
        get_model(str(broken))


def test_flops_per_token_is_twice_matmul_params_plus_attention():
    m = get_model("mixtral-8x7b").arch
    f0 = m.flops_per_token(0)
    # 2 x (active params without the input embedding table and norms)
    assert f0 == pytest.approx(2 * (m.active_params("without_input_embedding") - m.params_by_group()["other"]))
    assert m.flops_per_token(4096) - f0 == pytest.approx(32 * 2 * 32 * 256 * 4096)
