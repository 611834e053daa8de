"""`metrics` on MoE-CAP recorder records: corrected S-MBU/S-MFU by hand, errors, CLI."""

import json

import pytest

from moecap_sim.catalog.hardware import devices
from moecap_sim.catalog.models import get_model
from moecap_sim.cli import main
from moecap_sim.errors import UserError
from moecap_sim.perf.measured import metrics_from_records


def _write(tmp_path, recs):
    p = tmp_path / "records.jsonl"
    p.write_text("\n".join(json.dumps(r) for r in recs) + "\n")
    return p


def test_decode_smbu_by_hand(tmp_path):
    recs = [{"latency": 0.03, "batch_size": 4, "seq_lens_sum": 4000, "forward_mode": "decode", "expert_activation": 6.0,
             "gpu_num": 1}]
    d = metrics_from_records(str(_write(tmp_path, recs)), "mixtral-8x7b", "h100x1")
    a = get_model("mixtral-8x7b").arch
    g = a.params_by_group()
    weights = sum(v for k, v in g.items() if k not in ("experts", "embeddings")) * 2 + 32 * 6.0 * a.expert_params * 2
    kv = 4000 * a.kv_bytes_per_token(2.0)
    bw = devices().get("h100-sxm").memory.bandwidth_gb_s * 1e9
    assert d["decode"]["s_mbu"] == pytest.approx((weights + kv) / 0.03 / bw)
    # S-MFU counts top-2 experts, not one (the reference code's bug)
    flops_top2 = 2 * 4 * (a.matmul_params_per_token()) + a.attention_flops_per_token(1) * 4000
    assert d["decode"]["s_mfu"] == pytest.approx(flops_top2 / 0.03 / 989.4e12)
    # vanilla MBU would charge all 8 experts per layer instead of the 6 the batch touched
    dense = sum(v for k, v in g.items() if k not in ("experts", "embeddings")) * 2 + g["experts"] * 2 + kv
    assert d["decode"]["vanilla_overcount"]["bytes"] == pytest.approx(dense / (weights + kv))
    assert d["tpot_s"] == 0.03


def test_shipped_example_utilisation_at_most_100_percent():
    # the README's example: vanilla MBU/MFU (all experts charged) gave 146.7 % / 303.9 % here
    from moecap_sim.catalog import data_dir
    d = metrics_from_records(str(data_dir("traces") / "examples" / "moecap-records.jsonl"), "qwen3-30b-a3b", "h100x4")
    for ph in ("prefill", "decode"):
        assert 0 < d[ph]["s_mbu"] <= 1 and 0 < d[ph]["s_mfu"] <= 1
        assert "mbu" not in d[ph] and "mfu" not in d[ph]
    assert d["decode"]["vanilla_overcount"]["bytes"] > 1.4  # 80 of 128 experts touched per layer


def test_physically_impossible_records_exit_2(tmp_path, capsys):
    # 10x too fast for an H100: the records cannot be from this hardware / precision
    recs = [{"latency": 0.002, "batch_size": 4, "seq_lens_sum": 4000, "forward_mode": "decode", "expert_activation": 6.0}]
    rc = main(["metrics", str(_write(tmp_path, recs)), "--model", "mixtral-8x7b", "--hw", "h100x1"])
    err = capsys.readouterr().err
    assert rc == 2 and "bandwidth peak" in err and "Traceback" not in err


def test_ratio_of_sums_and_warmup_drop(tmp_path):
    recs = [{"latency": 0.5, "batch_size": 1, "seq_lens_sum": 5, "forward_mode": "prefill"},  # warm-up probe
            {"latency": 0.1, "batch_size": 2, "seq_lens_sum": 2048, "forward_mode": "extend"},
            {"latency": 0.3, "batch_size": 2, "seq_lens_sum": 4096, "forward_mode": "prefill"},
            {"latency": 0.04, "batch_size": 8, "seq_lens_sum": 8, "forward_mode": "decode", "expert_activation": [8] * 32}]
    d = metrics_from_records(str(_write(tmp_path, recs)), "mixtral-8x7b", "h100x1")
    assert d["dropped_warmup_prefill"] == 1
    assert d["prefill"]["tokens_per_s"] == pytest.approx((2048 + 4096) / 0.4)
    assert any("vLLM" in n for n in d["notes"])  # decode context missing is detected


def test_bad_records_name_the_line(tmp_path):
    p = tmp_path / "r.jsonl"
    p.write_text('{"latency": 0.1, "batch_size": 1, "forward_mode": "decode"}\n{"latency": \n')
    with pytest.raises(UserError, match="line 2"):
        metrics_from_records(str(p), "mixtral-8x7b", "h100x1")
    p.write_text('{"latency": -1, "batch_size": 1, "forward_mode": "decode"}\n')
    with pytest.raises(UserError, match="latency"):
        metrics_from_records(str(p), "mixtral-8x7b", "h100x1")


def test_cli_metrics_json(tmp_path, capsys):
    recs = [{"latency": 0.05, "batch_size": 4, "seq_lens_sum": 4000, "forward_mode": "decode", "expert_activation": 6.0}]
    rc = main(["metrics", str(_write(tmp_path, recs)), "--model", "mixtral-8x7b", "--hw", "h100x1", "--json"])
    assert rc == 0
    out = json.loads(capsys.readouterr().out)
    assert 0 < out["decode"]["s_mbu"] < 1
