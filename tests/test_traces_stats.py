"""Statistics on the real traces: the Qwen1.5-MoE batched structure and per-step distinct counts,
Mixtral temporal reuse, plots."""

import json
from pathlib import Path

import numpy as np
import pytest

from moecap_sim.traces import trace_stats
from moecap_sim.traces.importers import import_sources
from moecap_sim.traces.stats import compute_stats, expected_distinct_subset, gini

UPSTREAM = Path(__file__).resolve().parents[2] / "shared" / "traces_upstream"
needs_upstream = pytest.mark.skipif(not UPSTREAM.is_dir(), reason=f"upstream traces not found at {UPSTREAM}")
QWEN = UPSTREAM / "weiran0129__vLLM-MoE-Logger"


@pytest.fixture(scope="module")
def qwen():
    if not UPSTREAM.is_dir():
        pytest.skip(f"upstream traces not found at {UPSTREAM}")
    return import_sources(sorted(QWEN.glob("moe_layer*.jsonl")))


def _direct_per_step_distinct(path: Path) -> list[int]:
    """Independent re-computation from the raw JSONL: split at token_idx == 0, drop the two passes
    whose rows all route to one expert set, keep the decode steps (after the two prefill passes)."""
    passes, cur = [], []
    for line in path.read_text().splitlines()[1:]:
        r = json.loads(line)
        if r["token_idx"] == 0 and cur:
            passes.append(cur)
            cur = []
        cur.append(tuple(r["topk_ids"]))
    passes.append(cur)
    real = [p for p in passes if len({tuple(sorted(x)) for x in p}) > 1]
    return [len({e for row in p for e in row}) for p in real[2:]]


def test_qwen_batched_structure_and_per_step_counts(qwen):
    st = compute_stats(qwen)
    p = st["passes"]
    assert (p["prefill"], p["decode"]) == (2, 127)
    assert p["prefill_tokens"] == [65, 1406]
    assert (p["decode_batch_first"], p["decode_batch_last"]) == (25, 11)
    assert abs(p["decode_batch_mean"] - 22.72) < 0.01
    dec = [x for x in st["per_pass"] if x["phase"] == "decode"]
    assert len(dec) == 127 and sum(x["tokens"] for x in dec) == 2886
    # the recorded distinct experts of every decode step, layer 0, recomputed from the raw file
    direct = _direct_per_step_distinct(QWEN / "moe_layer0.jsonl")
    assert [int(x["distinct"][0]) for x in dec] == direct
    means = [it["distinct_per_step_mean"] for it in st["layers"]]
    assert all(43.0 <= m <= 44.5 for m in means)  # SOURCES.md: mean 43-44 distinct of 60 per step
    item = st["layers"][0]
    for key in ("layer", "distinct_per_step_mean", "distinct_vs_batch", "max_over_mean", "gini", "entropy"):
        assert key in item
    d = item["distinct_vs_batch"]
    assert d["1"] == 4.0 and d["8"] < d["16"] < d["32"] <= 60
    assert item["distinct_vs_batch_method"]["16"].startswith("same-step")
    assert st["temporal_reuse_basis"].startswith("inferred")
    assert item["ep"]["ep_size"] == 4 and 1.0 < item["ep"]["max_over_mean_load"] < 2.0


@pytest.mark.skipif(not UPSTREAM.is_dir(), reason="upstream traces not found")
def test_mixtral_reuse_and_load_match_sources():
    mix = UPSTREAM / "Mario928__speculative-moe"
    for name, shared in (("humaneval_2_routing.jsonl", 0.80), ("gsm8k_2_routing.jsonl", 0.69)):
        st = compute_stats(import_sources([mix / name]), batch_sizes=[1, 8])
        assert abs(st["summary"]["temporal_reuse"] * 2 - shared) < 0.02  # SOURCES.md quick stats
        assert st["temporal_reuse_basis"].startswith("recorded")
        mm = [it["max_over_mean"] for it in st["layers"]]
        assert 1.0 < min(mm) and max(mm) < 2.1
        assert st["layers"][0]["lru_hit_rate"][-1] == 1.0


@pytest.mark.skipif(not UPSTREAM.is_dir(), reason="upstream traces not found")
def test_plots_and_placements(tmp_path):
    tr = import_sources([UPSTREAM / "KaxitPandya__cerebras-assesment2" / "moe_routes.jsonl"])
    st = trace_stats(tr, plots_dir=tmp_path)
    names = sorted(Path(p).name for p in st["plots"])
    assert names == ["olmoe-1b-7b_distinct_per_step.png", "olmoe-1b-7b_distinct_vs_batch.png",
                     "olmoe-1b-7b_load_heatmap.png"]
    for p in st["plots"]:
        assert Path(p).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and Path(p).stat().st_size > 10_000
    bal = compute_stats(tr, ep_size=8, placement="balanced")["summary"]["ep_max_over_mean_load"]
    assert bal < st["summary"]["ep_max_over_mean_load"]  # OLMoE layer 0 is skewed (max/mean 4.1)
    assert st["layers"][0]["max_over_mean"] > 3.5


def test_hypergeometric_distinct_matches_sampling():
    rng = np.random.default_rng(0)
    rows = np.stack([rng.choice(10, 3, replace=False, p=np.linspace(1, 3, 10) / 20) for _ in range(40)])
    counts = np.bincount(rows.ravel(), minlength=10)
    sims = [len(np.unique(rows[rng.choice(40, 5, replace=False)])) for _ in range(20000)]
    assert abs(expected_distinct_subset(counts, 40, 5) - np.mean(sims)) < 0.03
    assert gini(np.ones(5)) == 0.0 and gini(np.array([0, 0, 0, 1.0])) == pytest.approx(0.75)
