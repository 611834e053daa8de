"""Routing profiles fitted to the real traces and the synthetic generator."""

import json
from pathlib import Path

import numpy as np
import pytest

from moecap_sim.errors import UserError
from moecap_sim.routing.profiles import load_shipped_profile, profiles_dir
from moecap_sim.traces import load_trace, trace_stats, trace_synth
from moecap_sim.traces.fit import fit_profile
from moecap_sim.traces.format import DECODE
from moecap_sim.traces.importers import import_sources
from moecap_sim.traces.synth import holdout_check, sample_topk

UPSTREAM = Path(__file__).resolve().parents[2] / "shared" / "traces_upstream"
needs_upstream = pytest.mark.skipif(not UPSTREAM.is_dir(), reason=f"upstream traces not found at {UPSTREAM}")


@pytest.fixture(scope="module")
def traces():
    if not UPSTREAM.is_dir():
        pytest.skip(f"upstream traces not found at {UPSTREAM}")
    from moecap_sim.traces.shipped import RECIPES

    return {m: import_sources([UPSTREAM / f for f in files]) for m, files in RECIPES.items()}


def test_qwen_profile_predicts_recorded_steps(traces):
    tr = traces["qwen1.5-moe-a2.7b"]
    prof = load_shipped_profile("qwen1.5-moe-a2.7b")
    pt = tr.pass_table()
    dec = np.nonzero(pt["phase"] == DECODE)[0]
    for li, layer in enumerate(tr.layers):
        rec = pt["distinct"][dec, li]
        pred = np.array([prof.expected_distinct_experts(int(b), int(layer), step=s)
                         for s, b in enumerate(pt["tokens"][dec])])
        assert abs(pred.mean() / rec.mean() - 1) < 0.05
        assert np.mean(np.abs(pred / rec - 1)) < 0.07  # per step; sampling-noise floor ~4.7 %
        late = np.arange(len(dec)) >= 16  # steady state: the default (no step) prediction
        steady = np.array([prof.expected_distinct_experts(int(b), int(layer)) for b in pt["tokens"][dec][late]])
        assert abs(steady.mean() / rec[late].mean() - 1) < 0.05
    s = prof.data["fit"]["per_step_summary"]
    assert s["mean_rel_err_max_abs"] < 0.05 and s["holdout_mean_rel_err_max_abs"] < 0.05


@pytest.mark.parametrize("model", ["mixtral-8x7b", "qwen1.5-moe-a2.7b", "olmoe-1b-7b"])
def test_generator_matches_heldout_within_5pct(traces, model):
    res = holdout_check(traces[model], seed=0)
    assert res["batch_sizes"] == [1, 64]
    assert res["max_abs_rel_err"] < 0.05, res["layers"]


def test_shipped_profiles_reproducible(traces):
    """Refitting the upstream trace gives the shipped numbers (same recipe)."""
    prof = fit_profile([traces["olmoe-1b-7b"]], model="olmoe-1b-7b")
    shipped = json.loads((profiles_dir() / "olmoe-1b-7b.json").read_text())
    np.testing.assert_allclose(prof.q[0], shipped["layers"][0]["q"], rtol=1e-5)
    assert shipped["provenance"]["source"]["files"][0]["sha256"].startswith("a1e7cb45")
    assert any("dummy" in f for f in shipped["provenance"]["filters"])


def test_fit_on_synthetic_is_labelled(tmp_path):
    out = trace_synth(None, 400, tmp_path / "s.trace.npz", batch=8, profile=load_shipped_profile("olmoe-1b-7b"))
    tr = load_trace(out)
    assert tr.is_synthetic and "SYNTHETIC" in tr.meta["source"]["description"]
    assert fit_profile([tr]).kind == "synthetic"


def test_synth_for_untraced_catalog_model(tmp_path):
    out = trace_synth("qwen3-30b-a3b", 256, tmp_path / "q3.trace.npz", batch=16, seed=1)
    tr = load_trace(out)
    assert (tr.num_experts, tr.top_k, tr.meta["num_moe_layers"]) == (128, 8, 48)
    assert tr.is_synthetic and "transferred" in tr.meta["source"]["description"]
    st = trace_stats(out, batch_sizes=[1, 8, 16])
    assert any("SYNTHETIC" in w for w in st["warnings"])
    d = st["summary"]["distinct_vs_batch"]
    assert d["1"] == 8 and 8 < d["8"] < 64


def test_synth_geometry_errors(tmp_path):
    with pytest.raises(UserError, match="geometry"):
        trace_synth(None, 10, tmp_path / "x.npz")
    with pytest.raises(UserError, match="unknown model"):
        trace_synth("no-such-model-xyz", 10, tmp_path / "x.npz")
    out = trace_synth(None, 50, tmp_path / "y.npz", num_experts=16, top_k=2, num_moe_layers=4)
    assert load_trace(out).experts.shape == (50, 4, 2)


def test_systematic_sampling_inclusion_probabilities():
    rng = np.random.default_rng(0)
    p = np.array([0.9, 0.5, 0.3, 0.2, 0.1])
    rows = sample_topk(np.broadcast_to(p, (20000, 5)), np.full(20000, 2), rng)
    assert all(len(set(r)) == 2 for r in rows[:100])
    np.testing.assert_allclose(np.bincount(rows.ravel(), minlength=5) / 20000, p, atol=0.015)
