"""Fuzz the CLI with generated bad inputs: every command, every input file kind.

Each case must exit 2 with a one-line-per-problem message on stderr that names the offending
flag, field or file, never a traceback; it must leave no partial output file behind and must
not clobber an existing one.  Cases are generated from a fixed seed (deterministic) and run
in-process through ``typer.testing.CliRunner``'s isolation (no subprocesses).  ``validate``,
``calibrate`` and ``hw probe`` are fuzzed on their argument parsing only (their work is long).
"""

from __future__ import annotations

import json
import os
import random
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

from moecap_sim.catalog.hardware import devices, systems
from moecap_sim.catalog.models import get_model
from moecap_sim.cli import main

SEED = 20261204
BASE_PREDICT = ["predict", "--model", "olmoe-1b-7b", "--hw", "l4x1"]
BASE_SIM = ["simulate", "--model", "olmoe-1b-7b", "--hw", "l4x1", "--workload", "poisson", "--requests", "5"]
BASE_PLAN = ["plan", "--model", "olmoe-1b-7b", "--rate", "1", "--system", "l4x1"]
BASE_METRICS = ["metrics", "--model", "olmoe-1b-7b", "--hw", "l4x1"]
CASES_OK = ("olmoe-1b-7b@l4x1", "olmoe-1b-7b@l4x1:precision=int4")

BAD_INT_PARSE = ["abc", "1.5", "nan", "", "1e3", "0x10", "--", "½"]
BAD_FLOAT_PARSE = ["abc", "", "1,5", "one", "0x1p-2x"]


def _gen_flag_cases(rng: random.Random) -> list[tuple[list[str], str]]:
    """(argv, needle) pairs: bad numbers and names on every numeric/enum flag of every command."""
    cases: list[tuple[list[str], str]] = []
    par_ints = {"--tp": [0, -1, 5000], "--ep": [0, -2, 9999], "--pp": [0, -1, 10**6], "--dp": [0, -4, 5000],
                "--input-len": [0, -1, 3_000_000, 10**12], "--output-len": [0, -5, 3_000_000]}
    floats = {"--gpu-memory-utilization": ["nan", "inf", "0", "1.5", "-0.1", "0.01"],
              "--amortize-years": ["nan", "0", "-1", "inf", "1000"], "--usd-per-kwh": ["nan", "-1", "inf", "1e9"],
              "--pue": ["nan", "0.5", "inf", "-inf", "10"]}
    enums = {"--offload": ["disk", "AUTO", "cpu_experts", " "], "--pricing": ["free", "spot2", "ondemand"],
             "--precision": ["fp9", "int3", "bf-16"], "--kv-dtype": ["fp4x", "int2"], "--engine": ["vlm", "tensorrt"]}
    for base in (BASE_PREDICT, BASE_SIM):
        for flag, bad in par_ints.items():
            for v in bad + BAD_INT_PARSE:
                cases.append((base + [flag, str(v)], flag))
        for flag, bad in floats.items():
            if base is BASE_SIM and flag in ("--amortize-years", "--usd-per-kwh", "--pue", "--gpu-memory-utilization"):
                continue  # not options of simulate
            for v in bad + BAD_FLOAT_PARSE:
                cases.append((base + [flag, v], flag))
        for flag, bad in enums.items():
            for v in bad:
                cases.append((base + [flag, v], flag.lstrip("-").split("-")[0] if flag != "--kv-dtype" else "KV"))
    for v in ["0", "-1", "abc", "1.5", "2000000", "", "max2"]:
        cases.append((BASE_PREDICT + ["--batch", v], "--batch"))
    sim = {"--rate": ["nan", "inf", "0", "-1", "1e7"] + BAD_FLOAT_PARSE, "--rate-scale": ["0", "nan", "-2", "1e9"],
           "--requests": ["0", "-1", "10000000"] + BAD_INT_PARSE, "--seed": ["-1", "99999999999"] + BAD_INT_PARSE}
    for flag, bad in sim.items():
        for v in bad:
            cases.append((BASE_SIM + [flag, v], flag))
    for v in ["poison", "azure", "azure-convo", "fixd"]:
        cases.append((["simulate", "--model", "olmoe-1b-7b", "--hw", "l4x1", "--workload", v], "workload"))
    plan = {"--rate": ["nan", "0", "-5", "inf"] + BAD_FLOAT_PARSE, "--output-tokens-per-s": ["nan", "0", "-1", "1e20"],
            "--slo-ttft": ["0", "nan", "-1", "inf"], "--slo-tpot": ["0", "nan", "-0.5"], "--top": ["0", "-1", "100000", "x"],
            "--min-accuracy": ["-1", "101", "nan"], "--input-len": ["0", "-1", "9999999"], "--output-len": ["0", "x"],
            "--precision": ["fp9", "int3", "fp7"], "--pricing": ["free", "owned2", ""],
            "--slo-ttft-p99": ["0", "nan", "-1", "inf", "x"], "--slo-tpot-p90": ["0", "-0.5", "nan"],
            "--scenario": ["cheap", "", "spot2"], "--set": ["x", "spot.reacquire_s=-1", "spot.reacquire_s=nan", "a.b=1"],
            "--verify-top": ["0", "-1", "x"], "--max-des-runs": ["0", "100000"], "--max-nodes": ["0", "17"],
            "--amortize-years": ["0", "-1", "nan"], "--pue": ["0.5", "nan", "9"], "--usd-per-kwh": ["-1", "inf"],
            "--dask": ["udp://x:1", "local2", "tcp://host"], "--requests": ["1", "0", "10000000"],
            "--workload": ["azure", "nope.csv"]}
    for flag, bad in plan.items():
        for v in bad:
            cases.append((BASE_PLAN + [flag, v], flag.lstrip("-")))
    cases.append((["plan", "--model", "olmoe-1b-7b", "--system", "l4x1"], "--rate"))
    cases.append((BASE_PLAN[:-1] + ["h1000"], "h1000"))
    for c, needle in [("m@h:tp=abc", "tp"), ("nomodel", "MODEL@SYSTEM"), ("@l4x1", "MODEL"), ("olmoe-1b-7b@", "SYSTEM"),
                      ("olmoe-1b-7b@l4x1:foo=1", "foo"), ("olmoe-1b-7b@l4x1:tp=", "tp"),
                      ("olmoe-1b-7b@l4x1:batch=x", "batch"), ("olmoe-1b-7b@l4x1:tp=0", "--tp"),
                      ("olmoe-1b-7b@l4x1:dp=-1", "--dp"), ("olmoe-1b-7b@l4x1:offload=disk", "--offload"),
                      ("olmoe-1b-7b@l4x1:pricing=free", "--pricing"), ("olmoe-1b-7b@l4x1:precision=fp9", "fp9"),
                      ("olmoe-1b-7b@l4x1:batch=0", "--batch"), ("olmoe-1b-7b@l4x1:ep=1.5", "ep")]:
        cases.append((["radar", CASES_OK[0], c, "--json"], needle))
    for flag, v in [("--cost", "dollars"), ("--cost", ""), ("--input-len", "0"), ("--output-len", "-3"),
                    ("--input-len", "abc")]:
        cases.append((["radar", *CASES_OK, flag, v], flag.lstrip("-")))
    cases.append((["radar", CASES_OK[0]], "at least two"))
    for name in ["deepseek-r2", "mixtrel", "qwen4", "", "../../etc/passwd.yaml", "olmoe-1b-7b.json"]:
        cases.append((["predict", "--model", name, "--hw", "l4x1"], "model"))
        cases.append((["models", "show", name], "model"))
    for name in ["h100x9", "l4x5", "h1000", "nope.yaml", ""]:
        cases.append((["predict", "--model", "olmoe-1b-7b", "--hw", name], "system" if "yaml" not in name else "not found"))
        cases.append((["hw", "show", name], "hardware" if "yaml" not in name else "not found"))
    # usage errors: missing/unknown options, missing commands, unknown commands
    usage = [(["hw"], "missing command"), (["models"], "missing command"), (["trace"], "missing command"), ([], "missing command"),
             (["predict"], "--model"), (["predict", "--model", "olmoe-1b-7b"], "--hw"), (["predict", "--bogus"], "--bogus"),
             (["simulate", "--hw", "l4x1"], "--model"), (["plan"], "--model"), (["radar"], "CASE"),
             (["metrics"], "RECORDS"), (["models", "lst"], "lst"), (["hw", "shw", "l4x1"], "shw"), (["predict2"], "predict2"),
             (["trace", "import"], "SRC"), (["trace", "stats"], "FILE"), (["trace", "fit", "x.npz"], "--out"),
             (["trace", "synth", "--tokens", "x"], "--tokens"), (["models", "list", "--jsn"], "--jsn"),
             (["hw", "list", "extra"], "extra"), (["--versio"], "--versio")]
    # validate / calibrate / hw probe: argument parsing only (their work takes minutes)
    for flag, v in [("--repeats", "abc"), ("--threads", "x"), ("--warmup", "1.5"), ("--layers", "many"),
                    ("--max-weight-gb", "lots"), ("--max-kv-gb", ""), ("--seed", "s"), ("--bogus", None)]:
        usage.append(((["validate", flag] + ([v] if v is not None else [])), flag))
    for flag, v in [("--tdp-w", "abc"), ("--threads", "x"), ("--purchase-usd", "free"), ("--usd-per-hour", "?"),
                    ("--bogus", None)]:
        usage.append(((["hw", "probe", flag] + ([v] if v is not None else [])), flag))
    usage += [(["calibrate"], "PATHS"), (["calibrate", "x", "--bogus"], "--bogus")]
    cases += usage
    rng.shuffle(cases)
    return cases


# --- file kinds -------------------------------------------------------------------------------

def _nonutf8(p: Path) -> Path:
    p.write_bytes(b"\xff\xfe\x00bad \xc3\x28 bytes\n")
    return p


def _huge(p: Path) -> Path:
    with open(p, "wb") as fh:  # sparse: 30 MB of zeros without writing them
        fh.truncate(30_000_000)
    return p


def _generic_bad(d: Path, stem: str, suffix: str, data: bool = False) -> list[tuple[Path, str]]:
    """Bad files any reader must refuse: empty, non-UTF-8, a directory, 30 MB (over the bound
    for spec/config files; for data files, 30 MB of NUL bytes that are not records)."""
    out = []
    e = d / f"{stem}-empty{suffix}"
    e.write_bytes(b"")
    out.append((e, e.name))
    out.append((_nonutf8(d / f"{stem}-latin{suffix}"), f"{stem}-latin"))
    dd = d / f"{stem}-dir{suffix}"
    dd.mkdir()
    out.append((dd, "directory"))
    out.append((_huge(d / f"{stem}-huge{suffix}"), f"{stem}-huge" if data else "MB"))
    return out


def _hf_configs(d: Path, rng: random.Random) -> list[tuple[Path, str]]:
    base = dict(get_model("mixtral-8x7b").config)
    out = []
    positive = ["hidden_size", "num_hidden_layers", "num_attention_heads", "num_key_value_heads", "intermediate_size",
                "num_local_experts", "num_experts_per_tok", "vocab_size"]
    for i, key in enumerate(positive):
        for j, v in enumerate([0, -1, 1e9, 2**40, "x", 1.5, True, float("nan"), [8], {"a": 1}]):
            cfg = dict(base, **{key: v})
            p = d / f"cfg-{i}-{j}.json"
            p.write_text(json.dumps(cfg))  # NaN is written as the JSON extension literal NaN
            out.append((p, key))
    for j, k in enumerate([9, 17, 100]):  # top-k above the 8 experts: active > total
        p = d / f"cfg-topk-{j}.json"
        p.write_text(json.dumps(dict(base, num_experts_per_tok=k)))
        out.append((p, "num_experts_per_tok"))
    p = d / "cfg-kvheads.json"
    p.write_text(json.dumps(dict(base, num_key_value_heads=64)))
    out.append((p, "num_key_value_heads"))
    for j, mt in enumerate(["mixtrall", "llama", 7, None]):
        p = d / f"cfg-mt-{j}.json"
        p.write_text(json.dumps(dict(base, model_type=mt)))
        out.append((p, "model_type"))
    for j, text in enumerate(['{"model_type": "mixtral", ', "[1, 2, 3]", "null", '"text"', "{"]):
        p = d / f"cfg-syntax-{j}.json"
        p.write_text(text)
        out.append((p, p.name))
    for key in ("hidden_size", "num_hidden_layers", "num_attention_heads"):
        cfg = dict(base)
        cfg.pop(key)
        p = d / f"cfg-missing-{key}.json"
        p.write_text(json.dumps(cfg))
        out.append((p, key))
    return out + _generic_bad(d, "cfg", ".json")


def _numeric_leaves(obj, prefix=()):
    if isinstance(obj, dict):
        for k, v in obj.items():
            if k == "sources":
                continue
            yield from _numeric_leaves(v, prefix + (k,))
    elif isinstance(obj, (int, float)) and not isinstance(obj, bool):
        yield prefix


def _set(obj, path, value):
    obj = json.loads(json.dumps(obj, default=str))
    cur = obj
    for k in path[:-1]:
        cur = cur[k]
    cur[path[-1]] = value
    return obj


def _hw_files(d: Path, rng: random.Random) -> list[tuple[Path, str]]:
    out = []
    for kind, reg, name in (("system", systems(), "l4x1"), ("device", devices(), "l4")):
        base = yaml.safe_load(reg.path_of(name).read_text())
        leaves = list(_numeric_leaves(base))
        for i, path in enumerate(leaves):
            for j, v in enumerate([-1, 0, 1e15, "abc", float("nan"), float("inf"), [1]]):
                p = d / f"{kind}-{i}-{j}.yaml"
                p.write_text(yaml.safe_dump(_set(base, path, v)))
                out.append((p, path[-1]))
        for j, (typo, right) in enumerate([("acelerators", "accelerators"), ("hots", "host"), ("pricng", "pricing")]
                                          if kind == "system" else [("memroy", "memory"), ("powr", "power"),
                                                                    ("compte", "compute")]):
            data = dict(base)
            data[typo] = data.pop(right)
            p = d / f"{kind}-typo-{j}.yaml"
            p.write_text(yaml.safe_dump(data))
            out.append((p, typo))
        for j, text in enumerate(["name: [unclosed", "- a\n- b\n", "key: value\n  bad indent: 1\n", "::\n"]):
            p = d / f"{kind}-syntax-{j}.yaml"
            p.write_text(text)
            out.append((p, p.name))
        out += _generic_bad(d, kind, ".yaml")
    return out


def _records(d: Path, rng: random.Random) -> list[tuple[Path, str]]:
    good = {"latency": 0.05, "batch_size": 4, "seq_lens_sum": 4000, "forward_mode": "decode",
            "expert_activation": [6] * 16}
    out = []
    bad_fields = {"latency": [0, -1, "fast", None, float("nan"), 1e9, True, [0.1]],
                  "batch_size": [-1, "four", 1.5, None, 1e12, True],
                  "seq_lens_sum": [-5, "x", 1.5, 1e15],
                  "forward_mode": [7, None, ["decode"]],
                  "expert_activation": [-1, "x", [], [1, [2]], float("inf"), [[1, 2], [1]], [1e9], True],
                  "scheduled_tokens": [-1, "x", [1, -2], {"a": "b"}],
                  "gpu_num": [0, -1, "x", 10**6, 8]}  # 8: more GPUs than the l4x1 the metrics are asked for
    for f, vals in bad_fields.items():
        for j, v in enumerate(vals):
            lines = [dict(good) for _ in range(3)]
            at = rng.randrange(3)
            lines[at][f] = v
            p = d / f"rec-{f}-{j}.jsonl"
            p.write_text("\n".join(json.dumps(x) for x in lines) + "\n")
            out.append((p, f))
    for j, f in enumerate(["latency", "batch_size", "forward_mode"]):
        rec = dict(good)
        rec.pop(f)
        p = d / f"rec-missing-{j}.jsonl"
        p.write_text(json.dumps(rec) + "\n")
        out.append((p, f))
    for j, text in enumerate(['{"latency": 0.1,', "[1, 2]", "not json\n", '[{"latency": 0.1}', "42\n"]):
        p = d / f"rec-syntax-{j}.jsonl"
        p.write_text(text)
        out.append((p, p.name))
    p = d / "rec-toofast.jsonl"  # 1000x faster than an L4 can read the weights
    p.write_text(json.dumps(dict(good, latency=1e-6)) + "\n")
    out.append((p, "peak"))
    return out + _generic_bad(d, "rec", ".jsonl", data=True)


def _request_csvs(d: Path, rng: random.Random) -> list[tuple[Path, str]]:
    out = []
    rows = [(0.0, 100, 20), (0.5, 200, 30), (1.0, 50, 10)]
    bad = {"arrival_s": ["nan", "inf", "-1", "abc", "1e300"], "input_tokens": ["0", "-3", "1.5", "x", "99999999"],
           "output_tokens": ["0", "-1", "abc", "1e3", "5000000"]}
    for col, vals in bad.items():
        for j, v in enumerate(vals):
            r = [list(map(str, x)) for x in rows]
            r[rng.randrange(3)][["arrival_s", "input_tokens", "output_tokens"].index(col)] = v
            p = d / f"req-{col}-{j}.csv"
            p.write_text("arrival_s,input_tokens,output_tokens\n" + "\n".join(",".join(x) for x in r) + "\n")
            out.append((p, col))
    for j, header in enumerate(["arrival,input,output", "arrival_s,input_tokens", "a;b;c", ""]):
        p = d / f"req-header-{j}.csv"
        p.write_text(header + "\n1,2,3\n")
        out.append((p, p.name))
    p = d / "req-norows.csv"
    p.write_text("arrival_s,input_tokens,output_tokens\n")
    out.append((p, "no requests"))
    return out + _generic_bad(d, "req", ".csv", data=True)


def _calibrations(d: Path, rng: random.Random) -> list[tuple[Path, str]]:
    out = []
    for j, v in enumerate(["NaN", "Infinity", "-1", "0", "\"x\"", "true", "7"]):
        p = d / f"cal-{j}.json"
        p.write_text('{"efficiency": {"l4": {"bw": %s}}}' % v)
        out.append((p, "bw"))
    for j, text in enumerate(['{"efficiency": {}}', '{"eff": {"l4": {"bw": 0.8}}}', "[]", '{"efficiency": {"l4": 3}}',
                              '{"efficiency": {"l4": {"bandwith": 0.8}}}', "{"]):
        p = d / f"cal-shape-{j}.json"
        p.write_text(text)
        out.append((p, "efficiency" if j < 5 else p.name))
    return out + _generic_bad(d, "cal", ".json")


def _trace_files(d: Path, rng: random.Random) -> list[tuple[Path, str]]:
    """Corrupt, truncated, empty and inconsistent ``.trace.npz`` files."""
    from moecap_sim.catalog import data_dir

    good = data_dir("traces") / "examples" / "synthetic-qwen3-30b-a3b-b16.trace.npz"
    raw = good.read_bytes()
    out = []
    for j, cut in enumerate([0, 10, 100, len(raw) // 3, len(raw) // 2, len(raw) - 10]):
        p = d / f"tr-cut-{j}.trace.npz"
        p.write_bytes(raw[:cut])
        out.append((p, p.name))
    for j in range(6):
        b = bytearray(raw)
        for _ in range(20):
            b[rng.randrange(30, len(b))] = rng.randrange(256)
        p = d / f"tr-flip-{j}.trace.npz"
        p.write_bytes(bytes(b))
        out.append((p, p.name))
    p = d / "tr-random.trace.npz"
    p.write_bytes(bytes(rng.randrange(256) for _ in range(4096)))
    out.append((p, p.name))
    with np.load(good) as z:
        arrays = {k: z[k] for k in z.files}
    meta = json.loads(str(arrays["meta"]))
    variants = {"format": {"format": np.array("other/1")}, "meta-list": {"meta": np.array("[1, 2]")},
                "meta-json": {"meta": np.array("{not json")}, "topk0": {"meta": np.array(json.dumps(dict(meta, top_k=0)))},
                "experts-huge": {"meta": np.array(json.dumps(dict(meta, num_experts=10**9)))},
                "topk-gt-e": {"meta": np.array(json.dumps(dict(meta, top_k=meta["num_experts"] + 1)))},
                "ids": {"experts": np.full_like(arrays["experts"], meta["num_experts"] + 5)},
                "shape": {"experts": arrays["experts"].reshape(-1)[: arrays["experts"].size // 2]},
                "layers": {"layers": np.arange(3)}, "phase-len": {"phase": np.zeros(3, dtype=np.int8)},
                "no-layers": {"layers": None}, "no-meta": {"meta": None}}
    for name, change in variants.items():
        a = dict(arrays)
        for k, v in change.items():
            if v is None:
                a.pop(k)
            else:
                a[k] = v
        p = d / f"tr-{name}.trace.npz"
        with open(p, "wb") as fh:
            np.savez(fh, **a)
        out.append((p, p.name))
    p = d / "tr-bare.npy"
    np.save(p, np.zeros((3, 3)))
    out.append((p, "tr-bare"))
    return out + _generic_bad(d, "tr", ".trace.npz", data=True)


def _routing_logs(d: Path, rng: random.Random) -> list[tuple[Path, str, list[str]]]:
    """Routing logs for ``trace import`` (with the extra arguments each needs)."""
    out: list[tuple[Path, str, list[str]]] = []
    spec = {"dataset": "d", "problem_id": 0, "layer": 0, "token_idx": 0, "experts": [1, 3], "gating_probs": [0.6, 0.4]}
    for j, (f, v) in enumerate([("layer", "x"), ("layer", 1.5), ("experts", []), ("experts", ["a", "b"]),
                                ("experts", [1, 1]), ("experts", [-1, 2]), ("token_idx", None), ("experts", [1, 2, 3]),
                                ("gating_probs", ["x", 1]), ("experts", [40000, 1])]):
        rows = [dict(spec, token_idx=i) for i in range(3)]
        rows[1][f] = v
        if v is None:
            rows[1].pop(f)
        p = d / f"log-spec-{j}.jsonl"
        p.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
        out.append((p, p.name if f != "experts" else "expert", ["--format", "speculative-moe"]))
    csv_rows = "request,token,layer,expert_a,expert_b\nr0,0,0,1,3\nr0,1,0,x,2\n"
    p = d / "log-generic.csv"
    p.write_text(csv_rows)
    for j, m in enumerate([["experts=expert_a,expert_b", "token=token", "layer=layer"],
                           ["experts=nope", "token=token"], ["bogus=1"], ["experts"]]):
        out.append((p, p.name if j == 0 else ("nope" if j == 1 else "mapping"),
                    ["--format", "generic"] + [x for item in m for x in ("--map", item)]))
    p = d / "log-truncated.jsonl"
    p.write_text(json.dumps(spec) + '\n{"layer": 0, "tok')
    out.append((p, p.name, []))
    p = d / "log-unknown.jsonl"
    p.write_text('{"foo": 1}\n')
    out.append((p, "--format", []))
    for j, a in enumerate([np.full((4, 2, 2), -7), np.zeros((4, 2)), np.full((4, 2, 2), 1.5)]):
        p = d / f"log-routed-{j}.npz"
        np.savez(p, r=a)
        out.append((p, p.name, []))
    raw = (Path(__file__).resolve().parents[1] / "traces" / "examples" / "vllm-routed-experts.npz").read_bytes()
    p = d / "log-routed-cut.npz"
    p.write_bytes(raw[: len(raw) // 2])
    out.append((p, p.name, []))
    for path, needle in _generic_bad(d, "log", ".jsonl", data=True):
        out.append((path, needle, []))
    for j, (flag, v) in enumerate([("--num-experts", "0"), ("--top-k", "-1"), ("--num-moe-layers", "5000"),
                                   ("--prompt-len", "-1"), ("--pass-sizes", "1x99999999999"), ("--pass-sizes", "a,b"),
                                   ("--format", "vlm-logger"), ("--num-experts", "x")]):
        out.append((d / "log-generic.csv", flag, [flag, v]))
    return out


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    rng = random.Random(SEED)
    root = tmp_path_factory.mktemp("fuzz")
    kinds = {}
    for name, fn in (("hf", _hf_configs), ("hw", _hw_files), ("rec", _records), ("req", _request_csvs),
                     ("cal", _calibrations), ("trace", _trace_files)):
        sub = root / name
        sub.mkdir()
        kinds[name] = fn(sub, rng)
    logs = root / "logs"
    logs.mkdir()
    kinds["logs"] = _routing_logs(logs, rng)
    return root, kinds, rng


def _file_cases(root: Path, kinds: dict, rng: random.Random) -> list[tuple[list[str], str, str]]:
    """(argv, needle, output-or-'') for every file kind through every command that reads it."""
    out_dir = root / "out"
    cases = []
    for p, needle in kinds["hf"]:
        cases.append((["models", "show", str(p)], needle, ""))
        if rng.random() < 0.5:
            cases.append((["predict", "--model", str(p), "--hw", "l4x1", "--json"], needle, ""))
        if rng.random() < 0.2:
            cases.append((["trace", "synth", "--model", str(p), "-o", str(out_dir / "s.trace.npz")], needle,
                          str(out_dir / "s.trace.npz")))
    for p, needle in kinds["hw"]:
        if p.name.startswith("device"):
            cases.append((["hw", "show", str(p)], needle, ""))
        else:
            cases.append((["hw", "show", str(p)], needle, ""))
            cases.append((["predict", "--model", "olmoe-1b-7b", "--hw", str(p)], needle, ""))
    # valid for `trace import` (which needs only expert_activation), invalid for `metrics`
    metrics_only = {"rec-latency-3.jsonl", "rec-batch_size-3.jsonl", "rec-forward_mode-1.jsonl", "rec-toofast.jsonl",
                    "rec-missing-0.jsonl", "rec-missing-1.jsonl", "rec-missing-2.jsonl", "rec-gpu_num-4.jsonl"}
    for p, needle in kinds["rec"]:
        cases.append((["metrics", str(p)] + BASE_METRICS[1:], needle, ""))
        out = str(out_dir / "rec.trace.npz")
        if p.name not in metrics_only:
            cases.append((["trace", "import", str(p), "--format", "moecap-recorder", "--model", "olmoe-1b-7b", "-o",
                           out], needle, out))
    for p, needle in kinds["req"]:
        cases.append((["simulate", "--model", "olmoe-1b-7b", "--hw", "l4x1", "--workload", str(p)], needle, ""))
    for p, needle in kinds["cal"]:
        cases.append((BASE_PREDICT + ["--calibration", str(p)], needle, ""))
        cases.append((BASE_SIM + ["--calibration", str(p)], needle, ""))
    for p, needle in kinds["trace"]:
        cases.append((["trace", "stats", str(p), "--json"], needle, ""))
        fit_out = str(out_dir / "prof.json")
        cases.append((["trace", "fit", str(p), "-o", fit_out, "--json"], needle, fit_out))
        cases.append((["trace", "synth", "--check", str(p), "--json"], needle, ""))
    for p, needle, extra in kinds["logs"]:
        out = str(out_dir / "log.trace.npz")
        cases.append((["trace", "import", str(p), "-o", out] + extra, needle, out))
    # output paths that cannot be written (and must not be half-written)
    good_trace = str(Path(__file__).resolve().parents[1] / "traces" / "examples" / "synthetic-qwen3-30b-a3b-b16.trace.npz")
    a_file = root / "hf" / "cfg-0-0.json"
    for o in ["", " ", str(root / "hf"), str(a_file) + "/x.png", str(root / "out") + "/", "plot.txt", "plot"]:
        cases.append((["radar", *CASES_OK, "-o", o], "-o/--out" if o else "-o/--out", ""))
        cases.append((["trace", "synth", "--model", "qwen3-30b-a3b", "--tokens", "8", "-o", o], "-o/--out", ""))
        cases.append((["trace", "fit", good_trace, "-o", o.replace(".png", ".json")], "-o/--out", ""))
    for o in [str(a_file), str(a_file) + "/sub"]:
        cases.append((["simulate", "--model", "olmoe-1b-7b", "--hw", "l4x1", "--workload", "poisson", "--plots", o],
                      "--plots", ""))
        cases.append((["trace", "stats", good_trace, "--plots", o], "--plots", ""))
    synth = {"--batch": ["100000", "0", "-1", "x"], "--tokens": ["0", "-5", "1000000000", "abc"],
             "--seed": ["-1", "x"], "--num-experts": ["0", "-1", "100000"], "--top-k": ["0", "-2"],
             "--num-moe-layers": ["0", "5000"], "--skew": ["gaussian", ""]}
    for flag, vals in synth.items():
        for v in vals:
            o = str(out_dir / "syn.trace.npz")
            cases.append((["trace", "synth", "--model", "qwen3-30b-a3b", "-o", o, flag, v], flag, o))
    cases.append((["trace", "synth", "--num-experts", "8", "--top-k", "9", "--num-moe-layers", "2", "-o",
                   str(out_dir / "k.trace.npz")], "--top-k", str(out_dir / "k.trace.npz")))
    cases.append((["trace", "synth", "--model", "qwen3-30b-a3b", "--tokens", "100000", "--batch", "1000", "-o",
                   str(out_dir / "big.trace.npz")], "--tokens", str(out_dir / "big.trace.npz")))
    for flag, v in [("--ep-size", "0"), ("--ep-size", "-1"), ("--batch-sizes", "1,x"), ("--batch-sizes", "0,8"),
                    ("--placement", str(root / "hf" / "cfg-latin.json")), ("--placement", "nowhere.json")]:
        cases.append((["trace", "stats", good_trace, flag, v], flag if "placement" not in flag else "placement", ""))
    return cases


def _snapshot(d: Path, out_dir: Path) -> dict[str, object]:
    """Every path under ``d`` (a new or vanished file shows); the output folder's files by content
    (an existing output that a failed command overwrote shows)."""
    snap: dict[str, object] = {}
    for dirpath, dirnames, filenames in os.walk(d):
        for f in filenames:
            snap[os.path.join(dirpath, f)] = None
    for p in out_dir.iterdir():
        if p.is_file():
            snap[str(p)] = p.read_bytes()
    return snap


def _run(argv: list[str]) -> tuple[int, str, str]:
    import sys
    import traceback

    runner = CliRunner()
    with runner.isolation() as streams:
        try:
            rc = main(argv)
        except BaseException:  # noqa: BLE001 - a crash is what the fuzz looks for
            rc, tb = -1, "Traceback\n" + traceback.format_exc()
        else:
            tb = ""
        sys.stdout.flush()
        sys.stderr.flush()
        out, err = streams[0].getvalue().decode(errors="replace"), streams[1].getvalue().decode(errors="replace")
    return rc, out, err + tb


def test_fuzz_cli_bad_inputs(corpus):
    root, kinds, rng = corpus
    out_dir = root / "out"
    out_dir.mkdir(exist_ok=True)
    cases = [(a, n, "") for a, n in _gen_flag_cases(rng)] + _file_cases(root, kinds, rng)
    assert len(cases) >= 1000, len(cases)
    # existing outputs that a failed command must not clobber
    sentinel = b"existing file: must survive a failed command\n"
    cwd = os.getcwd()
    os.chdir(out_dir)  # relative outputs (e.g. radar's default cap_radar.png) land here
    failures = []
    timings: list = []
    t0 = time.perf_counter()
    try:
        for argv, needle, out in cases:
            for f in ("s.trace.npz", "rec.trace.npz", "prof.json", "log.trace.npz", "syn.trace.npz"):
                (out_dir / f).write_bytes(sentinel)
            before = _snapshot(root, out_dir)
            t1 = time.perf_counter()
            rc, stdout, stderr = _run(argv)
            timings.append((time.perf_counter() - t1, argv))
            after = _snapshot(root, out_dir)
            problems = []
            if rc != 2:
                problems.append(f"exit {rc}")
            if "Traceback" in stderr or "Traceback" in stdout:
                problems.append("traceback")
            if needle.lower() not in stderr.lower():
                problems.append(f"message lacks {needle!r}")
            if not stderr.startswith("error: "):
                problems.append("no 'error:' line")
            if after != before:
                changed = sorted(set(after) ^ set(before) | {k for k in after if k in before and after[k] != before[k]})
                problems.append(f"files changed: {changed[:3]}")
            if problems:
                failures.append(f"{argv}: {problems}: {stderr.strip()[:300]}")
    finally:
        os.chdir(cwd)
    elapsed = time.perf_counter() - t0
    print(f"\nfuzz: {len(cases)} cases, {len(failures)} failures, {elapsed:.1f} s; slowest: "
          + "; ".join(f"{t:.2f}s {' '.join(a)[:80]}" for t, a in sorted(timings, key=lambda x: -x[0])[:8]))
    assert not failures, f"{len(failures)} of {len(cases)} cases failed:\n" + "\n".join(failures[:40])
    assert elapsed < 60


def test_fuzz_harness_sees_success_and_tracebacks(tmp_path, monkeypatch):
    # the harness must be able to tell a good run and a crash from a clean exit 2
    rc, out, err = _run(["predict", "--model", "olmoe-1b-7b", "--hw", "l4x1", "--json"])
    assert rc == 0 and json.loads(out)["fits"] is True and err == ""
    import moecap_sim.api as api

    monkeypatch.setattr(api, "models_list", lambda: 1 / 0)  # a bug, not a user mistake
    rc, out, err = _run(["models", "list"])
    assert rc == -1 and "Traceback" in err and "ZeroDivisionError" in err


def test_usage_errors_are_one_line(capsys):
    for argv, needle in ((["hw"], "missing command"), (["predict", "--model", "x", "--hw", "y", "--tp", "abc"], "--tp"),
                         (["radar", "m@h:tp=abc", "n@h"], "tp"), (["predict", "--hw", "l4x1"], "--model"),
                         (["--nope"], "--nope")):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and err.startswith("error: ") and needle in err, err


def test_version(capsys):
    from moecap_sim import __version__

    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"moecap-sim {__version__}"
