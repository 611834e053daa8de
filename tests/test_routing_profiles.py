"""The RoutingProfile the cost model calls: shipped profiles, synthetic fallback, properties,
import weight and speed."""

import subprocess
import sys

import numpy as np
import pytest

from moecap_sim.routing import RoutingProfile, UniformRouting, get_routing_profile
from moecap_sim.routing.profiles import load_shipped_profile, synthetic_profile

TRACED = {"mixtral-8x7b": (8, 2, "Mario928/speculative-moe"), "qwen1.5-moe-a2.7b": (60, 4, "vLLM-MoE-Logger"),
          "olmoe-1b-7b": (64, 8, "cerebras-assesment2")}


@pytest.mark.parametrize("model", sorted(TRACED))
def test_traced_models_use_their_profiles(model):
    e, k, repo = TRACED[model]
    prof = get_routing_profile(model, e, k)
    assert isinstance(prof, RoutingProfile)
    assert prof.kind == "profile" and repo in prof.source and (prof.num_experts, prof.top_k) == (e, k)
    assert load_shipped_profile(model) is prof  # cached


def test_untraced_models_get_labelled_synthetic():
    prof = get_routing_profile("deepseek-v3", 256, 8)
    assert prof.kind == "synthetic" and prof.source.startswith("synthetic")
    assert "deepseek-v3" in prof.source and prof.num_moe_layers == 58
    assert load_shipped_profile("deepseek-v3") is None
    uni = get_routing_profile("deepseek-v3", 256, 8, synthetic="uniform")
    assert isinstance(uni, UniformRouting) and uni.kind == "synthetic"
    # geometry mismatch with the shipped profile: not silently used
    assert get_routing_profile("mixtral-8x7b", 8, 1).kind == "synthetic"


@pytest.mark.parametrize("prof", [load_shipped_profile("qwen1.5-moe-a2.7b"), load_shipped_profile("mixtral-8x7b"),
                                  load_shipped_profile("olmoe-1b-7b"), synthetic_profile(128, 8, 48, 0, "x")],
                         ids=["qwen", "mixtral", "olmoe", "synthetic"])
def test_profile_properties(prof):
    e, k = prof.num_experts, prof.top_k
    vals = [prof.expected_distinct_experts(t) for t in (1, 2, 4, 8, 32, 128, 1024, 16384)]
    assert vals[0] == pytest.approx(k) and all(a <= b + 1e-9 for a, b in zip(vals, vals[1:]))
    assert vals[-1] <= e and vals[-1] > 0.99 * e
    uni = UniformRouting(e, k)
    assert prof.expected_distinct_experts(16) <= uni.expected_distinct_experts(16) + 1e-9  # skew → fewer
    assert prof.expected_distinct_experts(16, step=0) < prof.expected_distinct_experts(16)  # synchronised start
    for layer in (0, prof.num_moe_layers - 1):
        assert k <= prof.expected_distinct_experts(8, layer) <= e
    for ep in (2, 4, 8):
        for t in (1, 8, 64):
            load = prof.ep_max_rank_load(t, ep)
            assert t * k / ep - 1e-9 <= load <= t * k + 1e-9
            assert prof.ep_max_rank_distinct(t, ep) <= -(-e // ep) + 1e-9
        assert prof.ep_max_rank_load(64, ep) / (64 * k / ep) < prof.ep_max_rank_load(8, ep) / (8 * k / ep)
    assert prof.ep_max_rank_load(5, 1) == 5 * k
    hits = [prof.cache_hit_rate(c) for c in range(0, e + 1, max(1, e // 8))]
    assert all(0 <= h <= 1 for h in hits) and all(a <= b + 1e-9 for a, b in zip(hits, hits[1:]))
    assert prof.cache_hit_rate(e) == 1.0
    with pytest.raises(ValueError):
        prof.expected_distinct_experts(4, prof.num_moe_layers)


def test_predict_path_is_light():
    """The routing path predict imports pulls in none of the heavy libraries (speed itself is
    measured by benchmarks/predict_speed.py, not asserted here)."""
    code = ("import sys;"
            "from moecap_sim.routing import get_routing_profile;"
            "p=get_routing_profile('qwen1.5-moe-a2.7b', 60, 4);"
            "[p.expected_distinct_experts(b, l) for b in range(1, 65) for l in range(24)];"
            "p.ep_max_rank_load(32, 4); p.cache_hit_rate(16);"
            "print(sorted({m.split('.')[0] for m in sys.modules} & {'scipy','pandas','matplotlib','torch','simpy'}))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split("\n")
    assert out[0] == "[]"
    prof = load_shipped_profile("mixtral-8x7b")
    vals = [prof.expected_distinct_experts(b, layer) for b in range(1, 200) for layer in range(32)]
    assert all(2.0 <= v <= 8.0 for v in vals)