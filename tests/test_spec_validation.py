"""Malformed hardware spec files are rejected with a SpecError naming the file, the field and the
bad value, both through ``load_spec_file`` and through the registry's path lookup."""

from __future__ import annotations

import copy

import pytest
import yaml

from moecap_sim.catalog import load_spec_file
from moecap_sim.catalog.hardware import devices, systems
from moecap_sim.errors import SpecError, UserError
from moecap_sim.specs.hardware import DeviceSpec, SystemSpec

DEVICE = {
    "name": "my-gpu",
    "display_name": "My GPU",
    "aliases": ["mine"],
    "kind": "gpu",
    "vendor": "nvidia",
    "efficiency_class": "nvidia-datacenter",
    "memory": {"type": "HBM3", "capacity_gb": 80, "bandwidth_gb_s": 3350},
    "compute": {"dense_tflops": {"bf16": 989.4, "fp8": 1978.9}},
    "host_link": {"name": "PCIe Gen5 x16", "bandwidth_gb_s": 63.0, "latency_us": 5},
    "power": {"tdp_w": 700, "idle_w": 70},
    "price": {"purchase_usd": 30000, "date": "2026-11"},
    "sources": {"memory": "datasheet", "compute": "datasheet", "host_link": "PCIe spec",
                "power": "datasheet", "price": "street?"},
}

CPU = {
    "name": "my-cpu",
    "display_name": "My CPU",
    "kind": "cpu",
    "vendor": "intel",
    "efficiency_class": "cpu-x86",
    "memory": {"bandwidth_gb_s": 307.2},
    "compute": {"dense_tflops": {"bf16": 114.688}},
    "cpu": {"cores": 56, "base_ghz": 2.0, "isa": ["amx"]},
    "power": {"tdp_w": 350},
    "sources": {"memory": "ARK", "compute": "AMX rule", "cpu": "ARK", "power": "ARK"},
}

SYSTEM = {
    "name": "my-box",
    "display_name": "My box",
    "accelerators": {"device": "l4", "count": 4},
    "host": {"cpu": {"device": "epyc-7r13", "sockets": 1, "vcpus": 48}, "dram_gb": 206.2},
    "interconnect": {"name": "PCIe", "bandwidth_gb_s": 25.2, "latency_us": 10},
    "pricing": {"provider": "aws", "date": "2026-11", "on_demand_usd_per_hour": 4.6016,
                "spot_usd_per_hour": 2.0},
    "sources": {"accelerators": "x", "host": "x", "interconnect": "x", "pricing": "x?"},
}


def _set(d, path, value):
    *head, last = path.split(".")
    for k in head:
        d = d[k]
    d[last] = value


def _del(d, path):
    *head, last = path.split(".")
    for k in head:
        d = d[k]
    del d[last]


def mutate(base, sets=(), dels=()):
    d = copy.deepcopy(base)
    for path, value in sets:
        _set(d, path, value)
    for path in dels:
        _del(d, path)
    return yaml.safe_dump(d, sort_keys=False)


def raw_bandwidth(text):
    """The base device with ``bandwidth_gb_s`` written verbatim (so YAML parses it itself)."""
    return mutate(DEVICE).replace("bandwidth_gb_s: 3350", f"bandwidth_gb_s: {text}")


# (id, schema, file text, substrings the message must contain: the field and the bad value)
CASES = [
    ("missing-field", DeviceSpec, mutate(DEVICE, dels=["memory.bandwidth_gb_s"]),
     ["memory.bandwidth_gb_s", "missing"]),
    ("missing-section", SystemSpec, mutate(SYSTEM, dels=["pricing"]), ["'pricing'", "missing"]),
    ("unknown-field-suggests", DeviceSpec,
     mutate(DEVICE, dels=["memory.bandwidth_gb_s"], sets=[("memory.bandwith_gb_s", 3350)]),
     ["memory.bandwith_gb_s", "not a known field", "did you mean 'bandwidth_gb_s'"]),
    ("unknown-top-level-field", DeviceSpec,
     mutate(DEVICE, dels=["efficiency_class"], sets=[("efficency_class", "nvidia-datacenter")]),
     ["efficency_class", "did you mean 'efficiency_class'"]),
    ("wrong-unit", DeviceSpec, mutate(DEVICE, sets=[("memory.bandwidth_gb_s", "80 GB")]),
     ["memory.bandwidth_gb_s", "'80 GB'", "wrong unit", "GB/s"]),
    ("wrong-unit-tflops", DeviceSpec, mutate(DEVICE, sets=[("compute.dense_tflops.bf16", "989 GB/s")]),
     ["compute.dense_tflops", "989 GB/s", "TFLOPS"]),
    ("wrong-unit-latency", DeviceSpec, mutate(DEVICE, sets=[("host_link.latency_us", "5 GB")]),
     ["host_link.latency_us", "'5 GB'", "wrong unit"]),
    ("negative-bandwidth", DeviceSpec, raw_bandwidth("-3350"),
     ["memory.bandwidth_gb_s", "-3350", "outside the plausible range"]),
    ("absurd-bandwidth-in-bytes", DeviceSpec, raw_bandwidth("3350000000000"),
     ["memory.bandwidth_gb_s", "3350000000000", "outside the plausible range"]),
    ("absurd-bandwidth-exponent", DeviceSpec, raw_bandwidth("3.35e12"),
     ["memory.bandwidth_gb_s", "3.35e", "outside the plausible range"]),
    ("unknown-dtype", DeviceSpec, mutate(DEVICE, sets=[("compute.dense_tflops.fp9", 100)]),
     ["compute.dense_tflops", "unknown dtype 'fp9'"]),
    ("value-without-source", DeviceSpec, mutate(DEVICE, dels=["sources.power"]),
     ["no source given", "power.tdp_w", "power.idle_w"]),
    ("idle-above-tdp", DeviceSpec, mutate(DEVICE, sets=[("power.idle_w", 800)]),
     ["power", "idle_w (800)", "tdp_w (700)"]),
    ("spot-above-on-demand", SystemSpec, mutate(SYSTEM, sets=[("pricing.spot_usd_per_hour", 9.5)]),
     ["pricing", "spot_usd_per_hour (9.5)", "on_demand_usd_per_hour (4.6016)"]),
    ("bad-date", SystemSpec, mutate(SYSTEM, sets=[("pricing.date", "2026-13")]),
     ["pricing.date", "'2026-13'", "YYYY-MM"]),
    ("bad-device-price-date", DeviceSpec, mutate(DEVICE, sets=[("price.date", "Nov 2026")]),
     ["price.date", "'Nov 2026'"]),
    ("string-for-number", DeviceSpec, mutate(DEVICE, sets=[("memory.capacity_gb", "eighty")]),
     ["memory.capacity_gb", "'eighty'"]),
    ("string-for-int", DeviceSpec, mutate(CPU, sets=[("cpu.cores", "many")]),
     ["cpu.cores", "'many'"]),
    ("bad-kind", DeviceSpec, mutate(DEVICE, sets=[("kind", "tpu")]), ["kind", "'tpu'"]),
    ("cpu-without-cpu-section", DeviceSpec, mutate(CPU, dels=["cpu"]), ["'cpu' section"]),
    ("gpu-without-capacity", DeviceSpec, mutate(DEVICE, dels=["memory.capacity_gb"]),
     ["memory.capacity_gb is required"]),
    ("zero-count", SystemSpec, mutate(SYSTEM, sets=[("accelerators.count", 0)]),
     ["accelerators.count", "0"]),
    ("top-level-list", DeviceSpec, "- name: my-gpu\n- kind: gpu\n", ["top level", "list"]),
    ("empty-file", DeviceSpec, "", ["top level", "NoneType"]),
]


def _write(tmp_path, cid, text):
    path = tmp_path / f"{cid}.yaml"
    path.write_text(text)
    return path


def _check(err: SpecError, path, expected):
    msg = str(err)
    assert str(path) in msg, msg
    for s in expected:
        assert s in msg, f"{s!r} not in:\n{msg}"


def test_bases_are_valid(tmp_path):
    load_spec_file(DeviceSpec, _write(tmp_path, "dev", mutate(DEVICE)))
    load_spec_file(DeviceSpec, _write(tmp_path, "cpu", mutate(CPU)))
    load_spec_file(SystemSpec, _write(tmp_path, "sys", mutate(SYSTEM)))


@pytest.mark.parametrize("cid,schema,text,expected", CASES, ids=[c[0] for c in CASES])
def test_malformed_file_rejected(tmp_path, cid, schema, text, expected):
    path = _write(tmp_path, cid, text)
    with pytest.raises(SpecError) as exc:
        load_spec_file(schema, path)
    _check(exc.value, path, expected)
    assert exc.value.path == str(path)
    registry = devices() if schema is DeviceSpec else systems()
    with pytest.raises(SpecError) as exc2:
        registry.get(str(path))
    _check(exc2.value, path, expected)


def test_yaml_syntax_error_has_line_number(tmp_path):
    text = mutate(DEVICE).splitlines()
    # line 9 (1-based) becomes an unclosed flow mapping
    text[8] = "  bandwidth_gb_s: {3350"
    path = _write(tmp_path, "syntax", "\n".join(text) + "\n")
    for load in (lambda: load_spec_file(DeviceSpec, path), lambda: devices().get(str(path))):
        with pytest.raises(SpecError) as exc:
            load()
        msg = str(exc.value)
        assert str(path) in msg and "not valid YAML at line" in msg
        line = int(msg.split("at line ")[1].split(",")[0])
        assert 9 <= line <= 11, msg


def test_yaml_bad_indentation_line(tmp_path):
    path = _write(tmp_path, "indent", "name: x\nmemory:\n  capacity_gb: 80\n bandwidth_gb_s: 3\n")
    with pytest.raises(SpecError, match=r"line 4"):
        load_spec_file(DeviceSpec, path)


def test_several_problems_reported_together(tmp_path):
    text = mutate(DEVICE, sets=[("memory.bandwidth_gb_s", -1), ("power.idle_w", 900)])
    path = _write(tmp_path, "multi", text)
    with pytest.raises(SpecError) as exc:
        load_spec_file(DeviceSpec, path)
    assert len(exc.value.problems) >= 2
    assert "memory.bandwidth_gb_s" in str(exc.value) and "idle_w (900)" in str(exc.value)


def test_units_are_converted(tmp_path):
    text = mutate(DEVICE, sets=[("memory.bandwidth_gb_s", "3.35 TB/s"), ("memory.capacity_gb", "80 GiB"),
                                ("compute.dense_tflops.fp8", "1.9789 PFLOPS"), ("host_link.latency_us", "5 us")])
    d = load_spec_file(DeviceSpec, _write(tmp_path, "units", text))
    assert d.memory.bandwidth_gb_s == pytest.approx(3350)
    assert d.memory.capacity_gb == pytest.approx(85.899, rel=1e-4)
    assert d.compute.dense_tflops["fp8"] == pytest.approx(1978.9)
    assert d.host_link.latency_us == pytest.approx(5)


def test_missing_file_is_user_error(tmp_path):
    with pytest.raises(UserError, match="not found"):
        devices().get(str(tmp_path / "nope.yaml"))


def test_measured_files_need_no_sources(tmp_path):
    d = copy.deepcopy(DEVICE)
    d["sources"] = {}
    d["measured"] = True
    load_spec_file(DeviceSpec, _write(tmp_path, "measured", yaml.safe_dump(d)))
