"""hw probe: the written spec follows the catalog schema and works with --hw FILE."""

import json

import pytest

from moecap_sim.validation.probe import flops_per_cycle, slug


def test_flops_per_cycle_from_isa():
    amx = flops_per_cycle(["avx2", "avx512", "avx512_bf16", "amx"], "GenuineIntel", 6, ["avx512_vnni"])
    assert amx["bf16"] == 1024 and amx["int8"] == 2048 and amx["fp32"] == 64
    zen4 = flops_per_cycle(["avx2", "avx512", "avx512_bf16"], "AuthenticAMD", 25, [])
    assert zen4["fp32"] == 32 and zen4["bf16"] == 64
    zen5 = flops_per_cycle(["avx2", "avx512", "avx512_bf16"], "AuthenticAMD", 26, [])
    assert zen5["fp32"] == 64
    assert flops_per_cycle(["avx2"], "GenuineIntel", 6, ["fma"]) == {"fp32": 32}
    assert slug("Intel(R) Xeon(R) Platinum 8480+ CPU @ 2.00GHz") == "intel-xeon-platinum-8480"


@pytest.fixture(scope="module")
def probed(tmp_path_factory):
    pytest.importorskip("torch")
    from moecap_sim.validation.probe import probe_machine, write_specs

    rep = probe_machine(threads=1, tiny=True, gpu=False, name="testbox")
    out = tmp_path_factory.mktemp("probe")
    files = write_specs(rep, str(out))
    return rep, files


def test_probe_report_has_the_measurements(probed):
    rep, _ = probed
    cpu = rep["cpu"]
    assert cpu["stream"]["triad_gb_s"] > 0 and cpu["stream"]["copy_gb_s"] > 0
    assert cpu["dispatch"]["elementwise_us"] > 0 and cpu["dispatch"]["linear_us"] > 0
    assert {r["dtype"] for r in cpu["gemv"]} >= {"bf16", "fp32"}
    assert all(r["gb_s"] > 0 for r in cpu["gemv"]) and all(r["tflops"] > 0 for r in cpu["gemm"])
    assert set(cpu["peak_tflops"]) >= {"bf16", "fp32"}
    assert rep["machine"]["threads_used"] == 1


def test_probe_writes_catalog_specs_usable_as_hw(probed):
    from moecap_sim.catalog import load_spec_file
    from moecap_sim.deployment import resolve_deployment
    from moecap_sim.perf.step import build_context, step_time
    from moecap_sim.routing.base import UniformRouting
    from moecap_sim.catalog.engines import get_engine
    from moecap_sim.specs.hardware import DeviceSpec, SystemSpec
    from pathlib import Path

    rep, files = probed
    dev = load_spec_file(DeviceSpec, Path(files["cpu"]))
    sysm = load_spec_file(SystemSpec, Path(files["system"]))
    assert dev.measured and sysm.measured
    assert dev.kind == "cpu" and dev.cpu.cores == 1 and dev.efficiency_class in ("cpu-x86", "cpu-arm")
    assert dev.memory.bandwidth_gb_s == pytest.approx(rep["cpu"]["stream"]["triad_gb_s"], rel=0.01)
    assert "measured" in dev.sources["memory.bandwidth_gb_s"]
    assert "derived" in dev.sources["compute.dense_tflops"]
    assert sysm.accelerators is None and sysm.host.cpu.device == Path(files["cpu"]).name  # relative reference
    assert json.loads(Path(files["report"]).read_text())["format"] == "moecap-probe/1"
    dep = resolve_deployment("olmoe-1b-7b", files["system"])  # what --hw FILE does
    assert dep.cpu_only and dep.host_cpu.name == "testbox-cpu"
    ctx = build_context(dep, get_engine("llama.cpp"), UniformRouting(64, 8), "cpu-only")
    assert step_time(ctx, "decode", 1, 1, 512).time_s > 0


def test_probe_output_as_file_path(probed, tmp_path):
    from moecap_sim.validation.probe import write_specs

    rep, _ = probed
    files = write_specs(rep, str(tmp_path / "mine.yaml"))
    assert files["system"].endswith("mine.yaml") and files["cpu"].endswith("mine-cpu.yaml")
