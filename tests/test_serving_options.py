"""Serving options of the ServingConfig: scheduler caps, multi-node, attention-DP, partial CPU
experts, speculative decoding, and the best feasible deployment when a request does not fit."""

import dataclasses

import pytest

from moecap_sim.config import ServingConfig
from moecap_sim.errors import UserError
from moecap_sim.perf.serving import Speculation
from moecap_sim.predict import predict


def test_config_is_one_object_with_help_on_every_field():
    for f in dataclasses.fields(ServingConfig):
        assert f.metadata.get("help"), f.name
    cfg = ServingConfig(model="mixtral-8x7b", hw="h100x8", batch="16")
    assert cfg.batch == 16  # parsed once, at the boundary


@pytest.mark.parametrize("kw, needle", [
    ({"batch": 0}, "--batch"), ({"batch": "lots"}, "--batch"), ({"nodes": 0}, "--nodes"),
    ({"mtp_acceptance": 1.5}, "--mtp-acceptance"), ({"mtp_acceptance": float("nan")}, "--mtp-acceptance"),
    ({"pue": float("nan")}, "--pue"), ({"max_num_seqs": 0}, "--max-num-seqs"), ({"input_len": 0}, "--input-len"),
])
def test_config_rejects_bad_values_naming_the_flag(kw, needle):
    with pytest.raises(UserError, match=needle):
        ServingConfig(model="mixtral-8x7b", hw="h100x8", **kw)


def test_unknown_option_names_close_match():
    with pytest.raises(UserError, match="max_num_seqs"):
        predict("mixtral-8x7b", "h100x8", max_num_seq=4)


def test_max_num_seqs_caps_the_running_batch_and_raising_it_is_never_slower():
    base = dict(precision="fp8", tp=1, dp=8, batch="max", engine="trtllm", input_len=300, output_len=146)
    small = predict("mixtral-8x7b", "h100x8", max_num_seqs=64, **base)
    large = predict("mixtral-8x7b", "h100x8", max_num_seqs=1024, **base)
    assert small["workload"]["batch_per_replica"] == 64
    assert large["workload"]["batch_per_replica"] > 64
    assert large["output_tokens_per_s"] >= small["output_tokens_per_s"]


def test_speculation_tokens_per_step_and_faster_single_stream():
    assert Speculation(3, 1.0).tokens_per_step == 4.0
    assert Speculation(3, 0.0).tokens_per_step == 1.0
    assert Speculation(1, 0.5).tokens_per_step == pytest.approx(1.5)
    kw = dict(batch=1, engine="trtllm", input_len=1024, output_len=2048)
    plain = predict("deepseek-r1", "h200x8", **kw)
    mtp = predict("deepseek-r1", "h200x8", mtp_draft_tokens=3, mtp_acceptance=0.7, **kw)
    # batch-1 decode is bandwidth bound: verifying 4 tokens costs about one step, 2.5 tokens emitted
    assert 1.5 < mtp["per_user_tokens_per_s"] / plain["per_user_tokens_per_s"] < 2.6


def test_nodes_multiply_devices_and_price():
    kw = dict(attention_dp=True, batch="max", engine="sglang", input_len=2048, output_len=100)
    # one H100 box cannot hold DeepSeek-V3 with attention replicated on every rank (DP attention)
    assert predict("deepseek-v3", "h100x8", **kw)["fits"] is False
    two = predict("deepseek-v3", "h100x8", nodes=2, **kw)
    four = predict("deepseek-v3", "h100x8", nodes=4, **kw)
    assert four["parallelism"]["devices"] == 32 and four["parallelism"]["ep"] == 32
    assert four["cost"]["usd_per_hour"] == pytest.approx(2 * two["cost"]["usd_per_hour"], rel=0.05)
    assert four["fits"] and four["output_tokens_per_s"] > two["output_tokens_per_s"]


def test_partial_cpu_experts_needs_less_dram_and_more_gpu_layers_are_faster():
    kw = dict(engine="llama.cpp", offload="cpu-experts", precision="int4", batch=1, input_len=512, output_len=128)
    all_cpu = predict("qwen3-30b-a3b", "rtx4090x1", **kw)
    half = predict("qwen3-30b-a3b", "rtx4090x1", n_cpu_moe=24, **kw)
    opt_all = next(o for o in all_cpu["memory"]["options"] if o["strategy"] == "cpu-experts")
    opt_half = next(o for o in half["memory"]["options"] if o["strategy"] == "cpu-experts")
    assert opt_half["host_gb"] == pytest.approx(opt_all["host_gb"] / 2, rel=0.01)
    assert opt_half["device_gb"] > opt_all["device_gb"]
    assert half["per_user_tokens_per_s"] > all_cpu["per_user_tokens_per_s"]


def test_does_not_fit_still_answers_with_the_fastest_deployment_that_runs():
    r = predict("deepseek-r1", "l4x4")
    assert r["fits"] is False
    b = r["best_feasible"]
    assert b["fits"] and b["output_tokens_per_s"] > 0 and b["tpot_s"] > 0
    assert b["hardware"]["name"] == "l4x4" and "fastest deployment" in b["label"]
    for key in ("placement", "precision", "ttft_s", "tpot_s", "output_tokens_per_s", "cost"):
        assert key in b


def test_engine_that_reserves_max_tokens_admits_fewer_sequences_and_paged_engines_do_not():
    """TRT-LLM's default scheduler holds KV for input + max_tokens from admission: with the MLPerf
    DeepSeek-R1 budget (800 in, ~3,760 mean out, 20,000 max) concurrency drops to what input +
    max_tokens allows, and so does throughput; vLLM pages KV on demand and ignores the cap."""
    common = dict(precision="nvfp4", kv_dtype="fp8", tp=1, dp=8, ep=8, attention_dp=True, batch="max",
                  input_len=800, output_len=3760)
    free = predict("deepseek-r1", "b200x8", engine="trtllm", **common)
    held = predict("deepseek-r1", "b200x8", engine="trtllm", max_output_len=20000, **common)
    assert free["memory"]["kv_gb_per_sequence"] * (800 + 20000) / (800 + 3760) == pytest.approx(
        held["memory"]["kv_gb_per_sequence"], rel=1e-6)
    assert held["memory"]["max_concurrent_seqs"] < free["memory"]["max_concurrent_seqs"] / 3
    assert held["output_tokens_per_s"] < free["output_tokens_per_s"]
    assert held["tpot_s"] < free["tpot_s"]  # fewer sequences per step
    assert any("KV reserved at admission for 800 + 20000" in n for n in held["assumptions"]["notes"])
    assert held["workload"]["max_output_len"] == 20000
    assert held["memory"]["kv_bytes_per_token"] == free["memory"]["kv_bytes_per_token"]  # only the length held
    paged = [predict("deepseek-r1", "b200x8", engine="vllm", max_output_len=m, **common) for m in (None, 20000)]
    assert paged[0]["memory"] == paged[1]["memory"]
    assert paged[0]["output_tokens_per_s"] == paged[1]["output_tokens_per_s"]


def test_max_output_len_below_the_mean_output_is_a_user_error():
    with pytest.raises(UserError, match="--max-output-len 100 is below --output-len 256"):
        predict("mixtral-8x7b", "h100x8", max_output_len=100, output_len=256)
