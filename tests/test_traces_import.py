"""Importers: the three upstream formats (read in place), MoE-CAP records and vLLM routed_experts
arrays made here, the generic mapping, and malformed input."""

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from moecap_sim.cli.trace import app
from moecap_sim.errors import UserError
from moecap_sim.traces import load_trace, trace_fit, trace_import, trace_stats, trace_synth
from moecap_sim.traces.format import DECODE, PREFILL
from moecap_sim.traces.importers import detect_format, import_sources

UPSTREAM = Path(__file__).resolve().parents[2] / "shared" / "traces_upstream"
needs_upstream = pytest.mark.skipif(not UPSTREAM.is_dir(), reason=f"upstream traces not found at {UPSTREAM}")
MIX = UPSTREAM / "Mario928__speculative-moe"
QWEN = UPSTREAM / "weiran0129__vLLM-MoE-Logger"
OLMOE = UPSTREAM / "KaxitPandya__cerebras-assesment2"


# --- upstream files ----------------------------------------------------------------------------

@needs_upstream
def test_detect_upstream_formats():
    assert detect_format(MIX / "humaneval_2_routing.jsonl") == "speculative-moe"
    assert detect_format(MIX / "routing_raw.jsonl") == "speculative-moe"
    assert detect_format(QWEN / "moe_layer0.jsonl") == "vllm-moe-logger"
    assert detect_format(OLMOE / "moe_routes.jsonl") == "vllm-moe-logger-global"


@needs_upstream
def test_mixtral_decode_logs():
    tr = import_sources([MIX / "humaneval_2_routing.jsonl", MIX / "gsm8k_2_routing.jsonl"])
    assert tr.model == "mixtral-8x7b" and (tr.num_experts, tr.top_k) == (8, 2)
    assert tr.experts.shape == (585, 32, 2)
    assert tr.meta["request_names"] == ["humaneval:0", "humaneval:1", "gsm8k:0", "gsm8k:1"]
    assert np.all(tr.phase == DECODE) and tr.meta["pass_structure"] == "recorded"
    assert int(((tr.experts < 0).any(axis=2)).sum()) == 52  # rows dropped upstream ([0.5, 0.5] gates)
    src = tr.meta["source"]
    assert src["commit"].startswith("216e26eb") and src["files"][0]["sha256"].startswith("761a87b6")


@needs_upstream
def test_mixtral_raw_prefill_and_decode():
    tr = import_sources([MIX / "routing_raw.jsonl"])
    pt = tr.pass_table()
    assert tr.num_tokens == 218 and pt["tokens"][0] == 135 and len(pt["tokens"]) == 84
    assert pt["phase"][0] == PREFILL and np.all(pt["phase"][1:] == DECODE)
    assert tr.position[tr.phase == DECODE].min() == 135


@needs_upstream
def test_qwen_layers_merged_and_dummy_passes_dropped():
    tr = import_sources(sorted(QWEN.glob("moe_layer*.jsonl")))
    assert list(tr.layers) == [0, 8, 12, 18, 23]
    assert tr.num_tokens == 12805 - 8192 - 256
    assert any("dummy" in f and "8192 + 256" in f for f in tr.meta["filters"])
    pt = tr.pass_table()
    assert list(pt["tokens"][:3]) == [65, 1406, 25]
    assert int((pt["phase"] == DECODE).sum()) == 127
    assert tr.meta["num_shared_experts"] == 1 and tr.meta["num_moe_layers"] == 24


@needs_upstream
def test_olmoe_global_counter_inferred_passes():
    tr = import_sources([OLMOE / "moe_routes.jsonl"])
    assert tr.num_tokens == 4471 and (tr.num_experts, tr.top_k) == (64, 8)
    assert tr.meta["pass_structure"] == "inferred"
    pt = tr.pass_table()
    assert pt["tokens"][0] == 1377 and list(pt["tokens"][1:]) == [25] * 46 + [24] * 81
    # without the known-file table, --pass-sizes gives the same structure
    tr2 = import_sources([OLMOE / "moe_routes.jsonl"], pass_sizes="1377,25x46,24x81")
    assert np.array_equal(tr2.pass_id, tr.pass_id)


# --- MoE-CAP recorder records (made here) ----------------------------------------------------------

def _moecap_records(kind: str, n=12, layers=3, e=16, k=2, seed=0):
    rng = np.random.default_rng(seed)
    recs = []
    for i in range(n):
        mode = "prefill" if i == 0 else "decode"
        bs = 4 if i == 0 else int(rng.integers(1, 9))
        toks = 200 if i == 0 else bs
        counts = np.zeros((layers, e), dtype=int)
        for l in range(layers):
            for _ in range(toks):
                counts[l, rng.choice(e, k, replace=False)] += 1
        act = {"mean": float((counts > 0).sum(1).mean()), "per_layer": (counts > 0).sum(1).tolist(),
               "counts": counts.tolist()}[kind]
        recs.append({"latency": 0.01 + 0.001 * bs, "batch_size": bs, "seq_lens_sum": toks if mode == "prefill" else bs,
                     "forward_mode": mode, "expert_activation": act, "gpu_num": 1, "gpu_raw_type": "NVIDIA H100"})
    return recs


@pytest.mark.parametrize("kind", ["mean", "per_layer", "counts"])
def test_moecap_records(tmp_path, kind):
    src = tmp_path / "records.jsonl"
    src.write_text("\n".join(json.dumps(r) for r in _moecap_records(kind)) + "\n")
    assert detect_format(src) == "moecap-recorder"
    out = trace_import(src, tmp_path / "cap.trace.npz", num_experts=16, top_k=2, model="demo-moe")
    tr = load_trace(out)
    assert not tr.has_token_level and len(tr.passes["pass_phase"]) == 12
    assert tr.passes["pass_phase"][0] == PREFILL and tr.meta["engine"].endswith("NVIDIA H100")
    st = trace_stats(out)
    item = st["layers"][0]
    assert item["distinct_per_step_mean"] > 0 and item["distinct_vs_batch"]
    if kind == "counts":
        assert "gini" in item and item["ep"]["max_over_mean_load"] >= 1
    prof = trace_fit(out, tmp_path / "cap.json")
    assert prof.kind == "profile" and 2 <= prof.expected_distinct_experts(8) <= 16


def test_moecap_json_list_and_missing_geometry(tmp_path):
    src = tmp_path / "records.json"
    src.write_text(json.dumps(_moecap_records("mean", n=5)))
    with pytest.raises(UserError, match="--model|--num-experts"):
        trace_import(src, tmp_path / "x.npz")
    trace_import(src, tmp_path / "x.npz", model="qwen1.5-moe-a2.7b")  # geometry from the catalog
    assert load_trace(tmp_path / "x.npz").num_experts == 60


# --- vLLM routed_experts arrays (made here) ------------------------------------------------------

def _routed(n_req=3, seq=40, layers=4, k=2, e=8, seed=1):
    rng = np.random.default_rng(seed)
    return {f"req{r}": np.stack([np.stack([rng.choice(e, k, replace=False) for _ in range(layers)])
                                 for _ in range(seq)]).astype(np.int32) for r in range(n_req)}


def test_vllm_routed_experts_npz_and_npy(tmp_path):
    arrays = _routed()
    npz = tmp_path / "routed.npz"
    np.savez(npz, prompt_len=np.array(10), **arrays)
    out = trace_import(npz, tmp_path / "r.trace.npz", model="mixtral-8x7b")
    tr = load_trace(out)
    assert tr.experts.shape == (120, 4, 2) and tr.meta["request_names"] == ["req0", "req1", "req2"]
    assert int((tr.phase == PREFILL).sum()) == 30 and tr.meta["request_ids"] == "recorded"
    st = trace_stats(out)
    assert st["layers"][0]["temporal_reuse"] is not None and st["layers"][0]["distinct_vs_batch"]["1"] == 2
    prof = trace_fit(out, tmp_path / "r.json")
    syn = trace_synth(None, 64, tmp_path / "s.trace.npz", profile=tmp_path / "r.json")
    assert load_trace(syn).is_synthetic and prof.num_experts == 8
    npy = tmp_path / "one.npy"
    np.save(npy, arrays["req0"])
    tr1 = load_trace(trace_import(npy, tmp_path / "one.trace.npz", num_experts=8))
    assert tr1.num_tokens == 40 and np.all(tr1.phase == -1)


# --- generic mapping ------------------------------------------------------------------------------

def test_generic_csv_and_jsonl(tmp_path):
    csv = tmp_path / "t.csv"
    lines = ["req,tok,lay,e0,e1,ph"]
    rng = np.random.default_rng(2)
    for r in range(2):
        for t in range(5):
            for l in range(3):
                a, b = rng.choice(6, 2, replace=False)
                lines.append(f"r{r},{t},{l},{a},{b},decode")
    csv.write_text("\n".join(lines) + "\n")
    out = trace_import(csv, tmp_path / "g.trace.npz", mapping=["experts=e0,e1", "layer=lay", "token=tok",
                                                                "request=req", "phase=ph"], num_experts=6)
    tr = load_trace(out)
    assert tr.experts.shape == (10, 3, 2) and np.all(tr.phase == DECODE)
    assert tr.meta["request_names"] == ["r0", "r1"]
    js = tmp_path / "t.jsonl"
    js.write_text("\n".join(json.dumps({"t": i, "ids": [i % 4, (i + 1) % 4]}) for i in range(8)) + "\n")
    tr2 = load_trace(trace_import(js, tmp_path / "g2.trace.npz", fmt="generic",
                                  mapping={"experts": "ids", "token": "t"}, num_experts=4))
    assert tr2.experts.shape == (8, 1, 2)
    with pytest.raises(UserError, match="mapping"):
        trace_import(js, tmp_path / "g3.trace.npz", fmt="generic")


# --- malformed input --------------------------------------------------------------------------------

def _logger_lines(n=6):
    meta = {"type": "meta", "model_id": "x/y", "top_k": 2, "num_experts": 8, "layers_logged": [0]}
    rows = [{"type": "route", "req_id": "r", "token_idx": i % 3, "layer": 0, "topk_ids": [i % 8, (i + 3) % 8],
             "topk_weights": [0.6, 0.4]} for i in range(n)]
    return [json.dumps(meta)] + [json.dumps(r) for r in rows]


def test_truncated_file_names_line_and_leaves_nothing(tmp_path):
    src = tmp_path / "cut.jsonl"
    lines = _logger_lines()
    src.write_text("\n".join(lines[:-1]) + "\n" + lines[-1][:25])  # cut mid-record, no newline
    out = tmp_path / "out.trace.npz"
    with pytest.raises(UserError, match=r"cut\.jsonl:7: truncated"):
        trace_import(src, out)
    assert not out.exists() and sorted(p.name for p in tmp_path.iterdir()) == ["cut.jsonl"]


def test_malformed_lines(tmp_path):
    src = tmp_path / "bad.jsonl"
    lines = _logger_lines()
    lines[3] = lines[3].replace('"topk_ids": [', '"topk_ids": ["a", ')
    src.write_text("\n".join(lines) + "\n")
    with pytest.raises(UserError, match=r"bad\.jsonl:4: 'topk_ids' must hold integer"):
        trace_import(src, tmp_path / "o.npz")
    lines = _logger_lines()
    lines[2] = lines[2][:-1] + ",}"
    src.write_text("\n".join(lines) + "\n")
    with pytest.raises(UserError, match=r"bad\.jsonl:3: malformed JSON"):
        trace_import(src, tmp_path / "o.npz")
    lines = _logger_lines()
    lines[5] = lines[5].replace('"topk_ids": [', '"topk_ids": [1, ')
    src.write_text("\n".join(lines) + "\n")
    with pytest.raises(UserError, match=r"bad\.jsonl:6: 3 expert ids"):
        trace_import(src, tmp_path / "o.npz")
    csv = tmp_path / "bad.csv"
    csv.write_text("tok,ids\n0,1 2\n1\n")
    with pytest.raises(UserError, match=r"bad\.csv:3"):
        trace_import(csv, tmp_path / "o.npz", mapping={"experts": "ids", "token": "tok"})
    assert not (tmp_path / "o.npz").exists()
    with pytest.raises(UserError, match="unknown trace format"):
        trace_import(src, tmp_path / "o.npz", fmt="nonsense")


def test_cli_import_and_stats_json(tmp_path):
    src = tmp_path / "log.jsonl"
    src.write_text("\n".join(_logger_lines(30)) + "\n")
    runner = CliRunner()
    res = runner.invoke(app, ["import", str(src), "-o", str(tmp_path / "l.trace.npz")])
    assert res.exit_code == 0, res.output
    res = runner.invoke(app, ["stats", str(tmp_path / "l.trace.npz"), "--json"])
    assert res.exit_code == 0, res.output
    st = json.loads(res.output)
    assert {"layer", "distinct_per_step_mean", "distinct_vs_batch", "max_over_mean", "gini", "entropy"} <= set(st["layers"][0])
    res = runner.invoke(app, ["import", str(tmp_path / "nope.jsonl"), "-o", str(tmp_path / "x.npz")])
    assert isinstance(res.exception, UserError)
