"""Accuracy axis: published scores with sources, quantization deltas, the radar value.

Spot-check values are copied from ../shared/reference/accuracy.md (the tag in each comment
is the row's source there).
"""

import ast
import json
from pathlib import Path

import pytest
import yaml

from moecap_sim import accuracy as acc

PKG = Path(acc.__file__).resolve().parent
MODEL_DIR = PKG / "catalog" / "models"
PRECISIONS = ["fp32", "bf16", "fp16", "fp8", "int8", "int4", "mxfp4", "nvfp4"]
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def _catalog_models() -> dict:
    """name -> native precision, read straight from the model catalog files (no pydantic)."""
    out = {}
    for path in sorted(MODEL_DIR.glob("*.yaml")):
        data = yaml.load(path.read_text(), Loader=_LOADER)
        out[data["name"]] = data.get("native_precision", "bf16")
    return out


CATALOG = _catalog_models()
RAW = acc._catalog()


# ----------------------------------------------------------------------------- coverage

def test_every_catalog_model_has_scores_or_a_reason():
    with_scores = set(acc.models_with_scores())
    without = acc.models_without_scores()
    assert len(CATALOG) == 24
    for name in CATALOG:
        assert (name in with_scores) != (name in without), f"{name}: needs scores xor a no-scores reason"
        if name in without:
            assert len(without[name]) > 20, f"{name}: the reason must say why"
    assert with_scores | set(without) == set(CATALOG), "accuracy.yaml names a model the catalog lacks"


def test_native_precision_matches_model_catalog():
    for name, spec in RAW["models"].items():
        assert spec["native_precision"] == acc.normalize_precision(CATALOG[name]), name


# ------------------------------------------------------------------------------ entries

def test_every_score_entry_is_sourced_and_in_range():
    known_tags = set(RAW["sources"])
    benchmarks = set(acc.list_benchmarks())
    n = 0
    for name in acc.models_with_scores():
        for e in acc.scores_for(name):
            n += 1
            assert e["source"] and e["source_tags"], (name, e)
            assert set(e["source_tags"]) <= known_tags, (name, e["source_tags"])
            assert 0.0 <= e["score"] <= 100.0, (name, e)
            assert e["benchmark"] in benchmarks, (name, e["benchmark"])
            assert e["precision"] in PRECISIONS + [None], (name, e["precision"])
            assert e["provenance"] in ("vendor", "third-party")
            assert e["checkpoint_kind"] in ("base", "instruct", "reasoning", "unstated")
            assert e["checkpoint"]
    assert n > 250


def test_quantization_entries_are_sourced():
    known_tags = set(RAW["sources"])
    for q in RAW["quantization"]:
        tags = acc._tags(q["source"])
        assert tags and set(tags) <= known_tags, q
        assert q["kind"] in ("measured", "vendor-statement", "prior"), q
        assert q["model"] in CATALOG or (q["model"] == "any MoE" and q["kind"] == "prior"), q
        if q["kind"] == "measured":
            for r in q["results"]:
                if "baseline" in r and "quantized" in r and "delta_points" in r:
                    assert r["delta_points"] == pytest.approx(r["quantized"] - r["baseline"], abs=0.006), r
    for e in RAW["expert_reduction"]:
        assert set(acc._tags(e["source"])) <= known_tags


@pytest.mark.parametrize("model, checkpoint_part, benchmark, score, tag", [
    ("mixtral-8x7b", "v0.1 (base)", "MMLU", 70.6, "MIXTRAL"),          # [MIXTRAL] T2, 5-shot
    ("deepseek-v3", "DeepSeek-V3 (chat)", "MMLU", 88.5, "DSV3"),       # [DSV3] chat table
    ("deepseek-v3", "DeepSeek-V3-Base", "MMLU", 87.1, "DSV3"),         # [DSV3] base table
    ("qwen3-235b-a22b", "Base", "MMLU", 87.81, "QWEN3-TR"),            # [QWEN3-TR T3]
    ("deepseek-r1", "DeepSeek-R1", "MATH-500", 97.3, "R1-CARD"),       # [R1-CARD]
    ("kimi-k2", "Kimi-K2-Instruct", "MMLU", 89.5, "KIMI"),             # [KIMI]
    ("gpt-oss-120b", "high", "GPQA-Diamond", 80.1, "GPTOSS"),          # [GPTOSS] high, no tools
    ("qwen1.5-moe-a2.7b", "Chat", "GSM8K", 47.69, "MOECAP-T6"),        # MoE-CAP Table 6, 0.4769
])
def test_published_values_spot_check(model, checkpoint_part, benchmark, score, tag):
    hits = [e for e in acc.scores_for(model, benchmark)
            if checkpoint_part in e["checkpoint"] and tag in e["source_tags"]]
    assert hits, f"{model} {benchmark} from [{tag}] missing"
    assert hits[0]["score"] == score


# -------------------------------------------------------------------------- quantization

@pytest.mark.parametrize("model", ["deepseek-v3", "deepseek-r1", "kimi-k2"])
def test_fp8_on_fp8_native_model_has_no_delta(model):
    r = acc.accuracy_for(model, "fp8", "fp8")
    assert r["precision_scored"] == "fp8"
    assert r["quantization"]["applies"] is False
    assert r["quantization"]["delta_points"] is None
    assert r["radar_score"] == r["radar_baseline"] is not None


def test_native_request_means_no_delta():
    r = acc.accuracy_for("gpt-oss-120b", None, {"default": "bf16", "experts": "mxfp4"})
    assert r["precision_used"] == r["precision_scored"] == "mxfp4"
    assert r["quantization"]["applies"] is False and r["radar_score"] == 90.0


def test_upcast_keeps_published_score():
    r = acc.accuracy_for("deepseek-v3", "bf16", "fp8")
    assert r["quantization"]["applies"] is False
    assert r["radar_score"] == 88.5


def test_int4_uses_measured_paired_delta_with_source():
    r = acc.accuracy_for("mixtral-8x7b", "int4", "bf16")
    q = r["quantization"]
    assert q["applies"] is True and q["kind"] == "measured"
    assert q["delta_points"] == -1.09                     # [AR-MIXTRAL]: MMLU 68.02 -> 66.93
    assert "[AR-MIXTRAL]" in q["source"] and "[AR-MIXTRAL]" in q["basis"]
    assert r["radar_score"] == round(70.6 - 1.09, 2)


def test_nvfp4_on_r1_uses_nvidia_measurement():
    q = acc.accuracy_for("deepseek-r1", "nvfp4", "fp8")["quantization"]
    assert q["kind"] == "measured" and q["delta_points"] == -0.1 and "[NV-R1-FP4]" in q["source"]
    assert {o["benchmark"] for o in q["other_benchmarks"]} >= {"GSM8K", "MATH-500"}


def test_prior_used_and_labelled_when_no_measurement():
    r = acc.accuracy_for("qwen3-30b-a3b", "int4", "bf16")
    q = r["quantization"]
    assert q["kind"] == "prior" and q["delta_range"] == [-2.0, -1.0] and q["delta_points"] == -1.5
    assert q["basis"].startswith("prior:") and "[ACC-S5]" in q["source"]
    assert r["radar_score"] == round(81.38 - 1.5, 2)


def test_unverified_or_confounded_measurements_are_not_applied():
    # Qwen3-235B FP8->AWQ is read off a figure; it is shown as related, the prior is applied.
    q = acc.accuracy_for("qwen3-235b-a22b", "int4", "bf16")["quantization"]
    assert q["kind"] == "prior"
    assert any(x["verified"] is False for x in q["related"])
    # Mixtral NVFP4 community numbers carry caveats.
    assert acc.accuracy_for("mixtral-8x7b", "nvfp4", "bf16")["quantization"]["kind"] == "prior"


def test_no_published_delta_gives_null():
    r = acc.accuracy_for("gpt-oss-120b", "fp8", {"default": "bf16", "experts": "mxfp4"})
    q = r["quantization"]
    assert q["applies"] is True and q["delta_points"] is None and q["kind"] is None
    assert acc.NO_DELTA_NOTE in q["note"]
    assert r["radar_score"] is None and r["radar_baseline"] == 90.0


# ---------------------------------------------------------------------------- no data

@pytest.mark.parametrize("model, native", [("deepseek-moe-16b", "bf16"), ("qwen3-next-80b-a3b", "bf16"),
                                           ("switch-c-2048", "fp32"), ("not-a-model", "bf16")])
def test_model_without_data_returns_nulls(model, native):
    r = acc.accuracy_for(model, native, native)
    assert r["scores"] == []
    assert r["radar_score"] is None and r["radar_baseline"] is None and r["radar_entry"] is None
    assert r["no_scores_reason"]


# ------------------------------------------------------------------------------- radar

EXPECTED_RADAR = {  # the rule's pick at the native precision (MMLU; vendor > third-party; served > base)
    "deepseek-r1": 90.8, "deepseek-v3": 88.5, "deepseek-v2": 77.8, "deepseek-v2-lite": 55.7,
    "deepseek-moe-16b": None, "mixtral-8x7b": 70.6, "mixtral-8x22b": 77.8, "qwen1.5-moe-a2.7b": 62.5,
    "qwen2-57b-a14b": 75.4, "qwen3-30b-a3b": 81.38, "qwen3-235b-a22b": 87.81, "qwen3-next-80b-a3b": None,
    "olmoe-1b-7b": 54.1, "dbrx": 73.7, "snowflake-arctic": 67.3, "grok-1": 73.0, "switch-c-2048": None,
    "gpt-oss-20b": 85.3, "gpt-oss-120b": 90.0, "llama-4-scout": 79.6, "llama-4-maverick": 85.5,
    "phi-3.5-moe": 78.9, "kimi-k2": 89.5, "glm-4.5": None,
}


def test_radar_follows_documented_rule():
    assert set(EXPECTED_RADAR) == set(CATALOG)
    for name, native in CATALOG.items():
        r = acc.accuracy_for(name, None, native)
        assert r["radar_score"] == EXPECTED_RADAR[name], name
        e = r["radar_entry"]
        if e is None:
            assert not [x for x in r["scores"] if x["benchmark"] == "MMLU" and x["verified"]]
            continue
        assert e["benchmark"] == "MMLU" and e["verified"]
        mmlu = [x for x in r["scores"] if x["benchmark"] == "MMLU" and x["verified"]]
        if e["provenance"] == "third-party":      # only when no verified vendor MMLU exists
            assert all(x["provenance"] == "third-party" for x in mmlu), name
        if e["checkpoint_kind"] == "base":          # only when no served checkpoint of that provenance
            assert not [x for x in mmlu if x["provenance"] == e["provenance"]
                        and x["checkpoint_kind"] in ("instruct", "reasoning")], name


def test_unverified_value_never_feeds_radar():
    e = acc.radar_entry("mixtral-8x22b")  # vendor 77.75 is read off a figure ('?')
    assert e["score"] == 77.8 and e["provenance"] == "third-party" and "[DSV2]" in e["source"]


def test_output_is_json_ready_for_every_model_and_precision():
    for name, native in CATALOG.items():
        for p in PRECISIONS:
            r = acc.accuracy_for(name, p, native)
            json.dumps(r)
            assert set(r) >= {"scores", "precision_scored", "precision_used", "quantization",
                              "radar_score", "source_summary"}
            q = r["quantization"]
            assert isinstance(q["applies"], bool)
            if q["delta_points"] is not None:
                assert q["kind"] in ("measured", "prior") and q["basis"] and q["source"]
            if r["radar_score"] is not None:
                assert 0 <= r["radar_score"] <= 100


def test_results_are_copies():
    acc.scores_for("dbrx")[0]["score"] = -1
    assert acc.scores_for("dbrx")[0]["score"] == 73.7


def test_module_imports_only_yaml_and_stdlib():
    tree = ast.parse(Path(acc.__file__).read_text())
    roots = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            roots |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            roots.add((node.module or "").split(".")[0])
    assert roots <= {"__future__", "copy", "functools", "pathlib", "typing", "yaml"}, roots
