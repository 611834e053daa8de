"""validation/published/cases.yaml: one runnable case per row of the published-measurements CSV."""

import csv
import dataclasses
import math
from pathlib import Path

import pytest
import yaml

from moecap_sim.catalog.engines import engines
from moecap_sim.catalog.hardware import systems
from moecap_sim.catalog.models import get_model
from moecap_sim.config import ServingConfig
from moecap_sim.precision import KV_BYTES, resolve_scheme

ROOT = Path(__file__).resolve().parents[1]
CASES_PATH = ROOT / "validation" / "published" / "cases.yaml"
CSV_PATH = ROOT.parent / "shared" / "reference" / "published_measurements.csv"

CLASSES = {"gpu-throughput", "gpu-latency", "gpu-cluster", "cpu", "hybrid", "offload", "apple"}
METRICS = {"output_tokens_per_s", "total_tokens_per_s", "prefill_tokens_per_s", "per_user_tokens_per_s",
           "tpot_s", "ttft_s", "e2e_s"}
# every ServingConfig field, plus the keys recorded for provenance (mtp maps to mtp_draft_tokens/
# mtp_acceptance; gpu_layers, threads and numa are not serving options yet)
PREDICT_KEYS = {f.name for f in dataclasses.fields(ServingConfig)} | {"mtp", "gpu_layers", "numa"}
OFFLOADS = {"auto", "none", "expert-cache", "cpu-experts", "cpu-only", "nvme"}
NUMA = {"one-socket", "two-socket", "replicated"}
CASE_KEYS = {"id", "class", "reliability", "source", "measured", "predict", "exact", "note", "refused_reason"}

CASES = yaml.safe_load(CASES_PATH.read_text())
BY_ID = {c["id"]: c for c in CASES}


def test_count_and_unique_ids():
    assert len(CASES) == 102
    assert len(BY_ID) == 102


@pytest.mark.skipif(not CSV_PATH.is_file(), reason="shared/reference CSV not beside the checkout")
def test_ids_match_csv_one_to_one():
    rows = list(csv.DictReader(open(CSV_PATH, newline="")))
    assert [r["id"] for r in rows] == [c["id"] for c in CASES]
    for r in rows:
        c = BY_ID[r["id"]]
        assert c["class"] == r["class"], r["id"]
        assert c["reliability"] == r["reliability"].strip()[0], r["id"]
        assert c["source"] == r["source"].strip(), r["id"]


@pytest.mark.skipif(not CSV_PATH.is_file(), reason="shared/reference CSV not beside the checkout")
def test_cases_yaml_is_regenerated_from_the_mapping():
    import importlib.util
    spec = importlib.util.spec_from_file_location("build_cases", ROOT / "validation" / "published" / "build_cases.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    assert mod.build(CSV_PATH) == CASES, "run python validation/published/build_cases.py"


@pytest.mark.parametrize("case", CASES, ids=[c["id"] for c in CASES])
def test_case_is_well_formed_and_resolves(case):
    assert set(case) <= CASE_KEYS and CASE_KEYS - {"refused_reason"} <= set(case)
    assert case["class"] in CLASSES
    assert case["reliability"] in ("A", "B", "C")
    assert case["source"].startswith("http")
    assert isinstance(case["exact"], bool)
    assert case["note"].strip()
    m = case["measured"]
    assert m["metric"] in METRICS
    v = m["value"]
    assert isinstance(v, (int, float)) and math.isfinite(v) and v > 0
    assert m["per"] in ("system", "node", "gpu")
    if m["per"] != "system":
        assert isinstance(m["per_count"], int) and m["per_count"] >= 1
    p = case["predict"]
    assert set(p) <= PREDICT_KEYS, set(p) - PREDICT_KEYS
    # every model / hw / engine / precision name resolves in the catalog
    model = get_model(p["model"])
    sysm = systems().get(p["hw"])
    assert p["engine"] in engines().names()
    if "precision" in p:
        resolve_scheme(model.native_precision, p["precision"])
    if "kv_dtype" in p:
        assert p["kv_dtype"] in KV_BYTES
    if "offload" in p:
        assert p["offload"] in OFFLOADS
    if "numa" in p:
        assert p["numa"] in NUMA
    assert p["batch"] == "max" or (isinstance(p["batch"], int) and p["batch"] >= 1)
    assert p["input_len"] >= 1 and p["output_len"] >= 1
    for k in ("tp", "ep", "pp", "dp", "nodes", "max_num_seqs", "max_num_batched_tokens", "n_cpu_moe", "gpu_layers", "threads"):
        if k in p:
            assert isinstance(p[k], int) and p[k] >= 1, k
    if "nodes" in p:
        assert sysm.scale_out is not None, f"{p['hw']} has no scale_out for nodes={p['nodes']}"
    accel = sysm.accelerators.count if sysm.accelerators else 0
    gpus = accel * p.get("nodes", 1)
    if accel:
        assert p.get("tp", 1) * p.get("pp", 1) * p.get("dp", 1) <= gpus
    if "mtp" in p:
        assert p["mtp"]["draft_tokens"] >= 1
    if m["per"] == "node":
        assert m["per_count"] == p["nodes"]
    if m["per"] == "gpu" and accel:
        assert m["per_count"] <= gpus
    if "refused_reason" in case:
        assert not case["exact"] and case["refused_reason"] in case["note"]
    # batch-1 per-user speeds are measured at batch 1
    if m["metric"] in ("per_user_tokens_per_s",) and case["class"] in ("cpu", "hybrid", "apple", "offload"):
        assert p["batch"] == 1


def test_units_converted():
    assert BY_ID["P047"]["measured"] == {"metric": "tpot_s", "value": 0.02573, "per": "system"}
    assert BY_ID["V02"]["measured"]["metric"] == "e2e_s" and BY_ID["V02"]["measured"]["value"] == pytest.approx(1.91744)
    assert BY_ID["C04"]["measured"]["value"] == pytest.approx(0.17201)
