"""The SimPy serving simulator: conservation, determinism, physics, agreement with predict."""

import pytest

from moecap_sim.cli import main
from moecap_sim.errors import UserError
from moecap_sim.sim.simulate import simulate


def test_tokens_conserved_and_every_request_finishes():
    s = simulate("qwen3-30b-a3b", "h100x1", workload="poisson-exp", requests=150, rate=4.0, input_len=600,
                 output_len=120, seed=3, return_requests=True)
    reqs = s["_requests"]
    assert s["completed"] == len(reqs) == 150
    assert all(r.generated == r.output_tokens for r in reqs)
    assert s["output_tokens"] == sum(r.output_tokens for r in reqs)
    for r in reqs:
        assert r.arrival_s <= r.admitted_s <= r.first_token_s <= r.finished_s
        assert len(r.token_times) == r.output_tokens and r.token_times == sorted(r.token_times)


def test_same_seed_same_result_and_seed_matters():
    a = simulate("olmoe-1b-7b", "l4x1", workload="poisson-exp", requests=80, rate=3.0, seed=11)
    b = simulate("olmoe-1b-7b", "l4x1", workload="poisson-exp", requests=80, rate=3.0, seed=11)
    c = simulate("olmoe-1b-7b", "l4x1", workload="poisson-exp", requests=80, rate=3.0, seed=12)
    for k in ("ttft_s", "tpot_s", "e2e_s"):
        assert a[k] == b[k]
    assert a["e2e_s"] != c["e2e_s"]


def test_throughput_bounded_by_offered_load_and_saturation():
    light = simulate("qwen3-30b-a3b", "h100x1", workload="poisson", requests=120, rate=0.5, seed=1)
    # at light load the system keeps up: throughput ≈ offered output tokens per second
    offered = 0.5 * 256
    assert light["output_tokens_per_s"] == pytest.approx(offered, rel=0.35)
    heavy = simulate("qwen3-30b-a3b", "h100x1", workload="fixed", requests=256)
    assert heavy["output_tokens_per_s"] > 5 * light["output_tokens_per_s"]
    assert heavy["queueing_s"]["p99"] >= light["queueing_s"]["p99"]


def test_more_replicas_never_slower():
    one = simulate("mixtral-8x7b", "h100x8", precision="fp8", dp=1, tp=1, workload="azure-conv", requests=300, rate_scale=4)
    eight = simulate("mixtral-8x7b", "h100x8", precision="fp8", dp=8, tp=1, workload="azure-conv", requests=300, rate_scale=4)
    assert eight["e2e_s"]["p90"] <= one["e2e_s"]["p90"]
    assert eight["makespan_s"] <= one["makespan_s"] * 1.0001


def test_des_agrees_with_analytical_decode_step():
    """A closed batch of 32 identical requests decodes at predict's decode step time for batch 32
    (both use the one cost model; the DES grows the context token by token)."""
    from moecap_sim.predict import predict

    s = simulate("qwen3-30b-a3b", "h100x1", workload="fixed", requests=32, input_len=512, output_len=256)
    p = predict("qwen3-30b-a3b", "h100x1", batch=32, input_len=512, output_len=256)
    assert s["tpot_s"]["p50"] == pytest.approx(p["phases"]["decode"]["decode_only_step_s"], rel=0.05)


def test_static_batching_engine():
    s = simulate("olmoe-1b-7b", "l4x1", engine="hf", workload="poisson", requests=20, rate=2.0, input_len=128,
                 output_len=32, return_requests=True)
    assert s["completed"] == 20 and s["engine"] == "hf"


def test_workload_errors(tmp_path):
    with pytest.raises(UserError, match="azure-conv"):
        simulate("olmoe-1b-7b", "l4x1", workload="azure-cnv")
    bad = tmp_path / "w.csv"
    bad.write_text("arrival_s,input_tokens,output_tokens\n0,10,5\n1,abc,5\n")
    with pytest.raises(UserError, match="line 3: field .input_tokens."):
        simulate("olmoe-1b-7b", "l4x1", workload=str(bad))


def test_cli_simulate_with_plot(tmp_path, capsys):
    rc = main(["simulate", "--model", "olmoe-1b-7b", "--hw", "l4x1", "--workload", "poisson", "--requests", "30",
               "--rate", "2", "--plots", str(tmp_path), "--json"])
    assert rc == 0
    assert (tmp_path / "latency_cdf.png").stat().st_size > 10_000
    assert (tmp_path / "queue_and_cache.png").stat().st_size > 10_000


def test_simulator_depends_on_the_step_time_predictor_interface():
    """StepTable memoizes any StepTimePredictor; the analytical one is the cost model itself."""
    from moecap_sim.errors import UserError
    from moecap_sim.perf.predictor import AnalyticalPredictor, make_predictor
    from moecap_sim.predict import predict_with_context
    from moecap_sim.sim.steptable import StepTable

    ctx = predict_with_context("qwen3-30b-a3b", "h100x1", batch=8).context
    an = make_predictor("analytical", ctx)
    assert isinstance(an, AnalyticalPredictor) and an.source == "silicon"

    class Doubled:  # a stand-in for a measured-table predictor
        source = "empirical"

        def decode_s(self, seqs, context):
            return 2 * an.decode_s(seqs, context)

        def prefill_s(self, seqs, tokens_per_seq, context):
            return 2 * an.prefill_s(seqs, tokens_per_seq, context)

    base, twice = StepTable(ctx), StepTable(Doubled())
    assert twice.decode(8, 1000) == pytest.approx(2 * base.decode(8, 1000))
    assert twice.prefill(2, 512) == pytest.approx(2 * base.prefill(2, 512))
    with pytest.raises(UserError, match="analytical"):
        make_predictor("analytic", ctx)


@pytest.mark.parametrize("scheduler", ["vllm-v1", "sglang", "prefill-first"])
def test_back_to_back_decode_steps_change_nothing_but_speed(monkeypatch, scheduler):
    """Running quiet decode steps in one SimPy timeout gives the same latencies as one step per
    event (every token keeps its own time), and it does run multi-step stretches."""
    from moecap_sim import api
    from moecap_sim.sim.replica import Replica

    kw = dict(workload="azure-conv", scheduler=scheduler, replay=False, requests=400)
    runs = []
    orig = Replica._quiet_steps
    monkeypatch.setattr(Replica, "_quiet_steps", lambda self, d, s: runs.append(orig(self, d, s)) or runs[-1])
    fast = api.simulate("qwen3-30b-a3b", "h100x1", **kw)
    assert max(runs) > 1
    monkeypatch.setattr(Replica, "_quiet_steps", lambda self, d, s: 1)
    slow = api.simulate("qwen3-30b-a3b", "h100x1", **kw)
    for key in ("ttft_s", "tpot_s", "itl_s", "e2e_s"):
        for q in ("p50", "p90", "p99", "mean"):
            assert fast[key][q] == pytest.approx(slow[key][q], rel=1e-9, abs=1e-12)
    assert fast["requests_completed"] == slow["requests_completed"]
    assert fast["output_tokens_per_s"] == pytest.approx(slow["output_tokens_per_s"], rel=1e-9)
