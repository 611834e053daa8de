"""The shipped hardware catalog: every device and system spec loads, references resolve, names
and aliases are unique, and the published datasheet figures are exact (dense, not sparse)."""

from __future__ import annotations

import re

import pytest

from moecap_sim.catalog import data_dir
from moecap_sim.catalog.hardware import devices, systems
from moecap_sim.errors import UserError
from moecap_sim.specs.hardware import DTYPES, source_for, uncertain_fields

DEVICE_NAMES = devices().names()
SYSTEM_NAMES = systems().names()

EFFICIENCY_CLASSES = {
    "nvidia-datacenter", "nvidia-workstation", "nvidia-consumer", "amd-instinct", "intel-gaudi",
    "cpu-x86", "cpu-arm", "apple-silicon",
}
NAME_RE = re.compile(r"^[a-z0-9]+(?:[-.][a-z0-9]+)*$")

# Devices the brief requires (at least); systems likewise.
REQUIRED_DEVICES = {
    "l4", "l40s", "a10g", "t4", "rtx-4090", "rtx-6000-ada", "rtx-a6000", "rtx-a5000",
    "a100-40gb-pcie", "a100-80gb-pcie", "a100-40gb-sxm", "a100-80gb-sxm", "h100-pcie", "h100-sxm",
    "h100-nvl", "h200-sxm", "h200-nvl", "h20", "gh200", "b200", "gb200", "rtx-pro-6000", "mi300x",
    "mi325x", "mi355x", "gaudi3", "xeon-8480p", "xeon-8592p", "xeon-6980p", "xeon-6454s",
    "epyc-9654", "epyc-9755", "ryzen-9-7950x", "epyc-7r13", "xeon-8275cl", "epyc-7r32", "grace",
    "m3-max", "m3-ultra", "m3-ultra-cpu",
}
REQUIRED_SYSTEMS = {
    "l4x1", "l4x4", "l40sx4", "a10gx4", "a100-40x8", "a100x8", "h100x1", "h100x4", "h100x8",
    "h200x1", "h200x8", "b200x1", "b200x8", "gh200x1", "mi300xx8", "mi325xx8", "rtx4090x1",
    "rtxpro6000x1", "rtxpro6000x8", "a5000x1", "a6000x4", "h20x8", "xeon6980p-2s",
    "xeon6454s-2s-rtx4090", "m3-ultra",
}


def dev(name):
    return devices().get(name)


def sysm(name):
    return systems().get(name)


# ----------------------------------------------------------------------------- loading


def test_required_files_present():
    assert REQUIRED_DEVICES <= set(DEVICE_NAMES), REQUIRED_DEVICES - set(DEVICE_NAMES)
    assert REQUIRED_SYSTEMS <= set(SYSTEM_NAMES), REQUIRED_SYSTEMS - set(SYSTEM_NAMES)


@pytest.mark.parametrize("name", DEVICE_NAMES)
def test_device_loads_and_is_well_formed(name):
    d = dev(name)
    path = devices().path_of(name)
    assert path.stem == d.name == name, "file name must be <name>.yaml"
    assert NAME_RE.match(d.name), d.name
    assert path.read_text().startswith("#"), "each file starts with a comment header"
    assert d.efficiency_class in EFFICIENCY_CLASSES
    assert set(d.compute.dense_tflops) <= set(DTYPES)
    if d.kind == "cpu":
        assert d.cpu is not None and d.memory.capacity_gb is None
        assert d.efficiency_class in ("cpu-x86", "cpu-arm")
    else:
        assert d.memory.capacity_gb and d.memory.capacity_gb > 0
        assert d.efficiency_class not in ("cpu-x86", "cpu-arm")
    if d.price is not None:
        assert d.price.date == "2026-11"
    assert d.power.idle_w is not None and d.power.idle_w < d.power.tdp_w


@pytest.mark.parametrize("name", SYSTEM_NAMES)
def test_system_loads_and_references_resolve(name):
    s = sysm(name)
    path = systems().path_of(name)
    assert path.stem == s.name == name
    assert NAME_RE.match(s.name), s.name
    assert path.read_text().startswith("#")
    cpu = dev(s.host.cpu.device)
    assert cpu.kind == "cpu", f"{name}: host.cpu.device {cpu.name} is not a CPU"
    if s.accelerators is not None:
        acc = dev(s.accelerators.device)
        assert acc.kind != "cpu", f"{name}: accelerator {acc.name} is a CPU"
    # every system has a price: on-demand or purchase
    p = s.pricing
    assert p.on_demand_usd_per_hour or p.purchase_usd, f"{name} has no price"
    if p.spot_usd_per_hour:
        assert p.on_demand_usd_per_hour and p.spot_usd_per_hour < p.on_demand_usd_per_hour
        assert source_for(s, "pricing.spot_usd_per_hour").endswith("?"), "spot is a snapshot midpoint"
    # a slice of a socket never has more DRAM bandwidth than the sockets it sits on
    if s.host.dram_bandwidth_gb_s is not None:
        assert s.host.dram_bandwidth_gb_s <= s.host.cpu.sockets * cpu.memory.bandwidth_gb_s + 1e-6


def test_aliases_unique_and_case_insensitive():
    for reg in (devices(), systems()):
        seen: dict[str, str] = {}
        for name in reg.names():
            spec = reg.get(name)
            for n in [spec.name, *spec.aliases]:
                key = n.lower()
                assert key not in seen, f"'{n}' is used by both {seen[key]} and {name}"
                seen[key] = name
    # aliases must not collide across the two registries either (canonical names may: the
    # device m3-ultra and the Mac Studio system m3-ultra are both required names)
    dev_aliases = {a.lower() for n in DEVICE_NAMES for a in dev(n).aliases}
    sys_keys = {k.lower() for n in SYSTEM_NAMES for k in [n, *sysm(n).aliases]}
    assert not dev_aliases & sys_keys
    assert dev("A100-SXM4-80GB").name == "a100-80gb-sxm"
    assert dev("a100").name == "a100-80gb-sxm"
    assert dev("H100").name == "h100-sxm"
    assert sysm("P5.48XLARGE").name == "h100x8"


def test_unknown_reference_gives_close_matches():
    with pytest.raises(UserError, match="h100"):
        devices().get("h100-sxmm")


def test_spec_dirs_found():
    assert (data_dir("hardware_specs") / "README.md").is_file()


# ----------------------------------------------------------------------------- datasheet figures


def test_published_datasheet_figures_exact():
    h = dev("h100-sxm")
    assert h.peak_tflops("bf16") == 989.4
    assert h.peak_tflops("fp8") == 1978.9
    assert h.memory.bandwidth_gb_s == 3350
    assert h.memory.capacity_gb == 80
    a = dev("a100-80gb-sxm")
    assert a.peak_tflops("bf16") == 312
    assert a.memory.bandwidth_gb_s == 2039
    l4 = dev("l4")
    assert (l4.peak_tflops("bf16"), l4.memory.bandwidth_gb_s, l4.memory.capacity_gb) == (121, 300, 24)
    assert dev("b200").peak_tflops("bf16") == 2250
    m = dev("mi300x")
    assert (m.peak_tflops("bf16"), m.memory.bandwidth_gb_s, m.memory.capacity_gb) == (1307, 5300, 192)
    assert dev("h200-sxm").memory.capacity_gb == 141 and dev("h200-sxm").memory.bandwidth_gb_s == 4800
    assert dev("rtx-4090").peak_tflops("bf16") == 165.2  # FP32 accumulate
    assert dev("rtx-4090").peak_tflops("fp8") == 330.3
    assert dev("rtx-4090").peak_tflops("int8") == 660.6


def test_xeon_amx_peak():
    x = dev("xeon-8480p")
    assert x.peak_tflops("bf16") == pytest.approx(56 * 1024 * 2.0e9 / 1e12, rel=1e-4)
    assert x.peak_tflops("bf16") == pytest.approx(114.7, abs=0.05)
    assert x.memory.bandwidth_gb_s == 307.2


@pytest.mark.parametrize("name", [n for n in DEVICE_NAMES if "amx" in (dev(n).cpu.isa if dev(n).cpu else [])])
def test_amx_rule(name):
    d = dev(name)
    bf16 = d.cpu.cores * 1024 * d.cpu.base_ghz / 1000
    assert d.peak_tflops("bf16") == pytest.approx(bf16, rel=1e-4)
    assert d.peak_tflops("int8") == pytest.approx(2 * bf16, rel=1e-4)
    assert d.peak_tflops("fp32") == pytest.approx(d.cpu.cores * 64 * d.cpu.base_ghz / 1000, rel=1e-3)


AMPERE_OR_OLDER = ["a10g", "a10", "t4", "rtx-3090", "rtx-2080", "rtx-a6000", "rtx-a5000", "a100-40gb-pcie", "a100-80gb-pcie",
                   "a100-40gb-sxm", "a100-80gb-sxm"]
FP4_CAPABLE = {"b200", "gb200", "gb300", "rtx-pro-6000", "rtx-5090", "mi355x"}  # Blackwell (incl. Ultra, GeForce) and MI355X


@pytest.mark.parametrize("name", AMPERE_OR_OLDER)
def test_no_fp8_before_hopper_and_ada(name):
    assert not dev(name).supports("fp8")
    assert not dev(name).supports("fp4")


def test_missing_dtypes():
    assert not dev("t4").supports("bf16") and not dev("t4").supports("tf32")
    for name in DEVICE_NAMES:
        if dev(name).supports("fp4") or dev(name).supports("fp6"):
            assert name in FP4_CAPABLE, f"{name} lists FP4/FP6, which only Blackwell and MI355X have"
    for name in ("h100-sxm", "h100-pcie", "h100-nvl", "h200-sxm", "h200-nvl", "h20", "gh200"):
        assert not dev(name).supports("int4"), "Hopper dropped the INT4 tensor path"


# The vendors' 2:4-sparse headline BF16/FP16 figures.  A dense peak equal to one of these is the
# classic mistake (MoE-CAP's hardware table, reference §5).
SPARSE_BF16_HEADLINE = {
    "h100-sxm": 1979, "h200-sxm": 1979, "gh200": 1979, "h100-pcie": 1513, "h100-nvl": 1671,
    "h200-nvl": 1671, "a100-40gb-pcie": 624, "a100-80gb-pcie": 624, "a100-40gb-sxm": 624,
    "a100-80gb-sxm": 624, "l4": 242, "l40s": 733, "a10": 250, "rtx-6000-ada": 728.5,
    "rtx-a6000": 309.7, "rtx-a5000": 222.2, "rtx-4090": 330.4, "b200": 4500, "gb200": 5000,
    "rtx-pro-6000": 1000, "mi300x": 2615, "mi325x": 2615, "mi355x": 5000,
}


@pytest.mark.parametrize("name", sorted(SPARSE_BF16_HEADLINE))
def test_dense_not_sparse(name):
    d = dev(name)
    sparse = SPARSE_BF16_HEADLINE[name]
    for dtype in ("bf16", "fp16"):
        if d.supports(dtype):
            assert abs(d.peak_tflops(dtype) - sparse) > 1, f"{name} {dtype} is the sparse headline"
            assert d.peak_tflops(dtype) == pytest.approx(sparse / 2, rel=0.02)  # L40S: 362 vs 733/2


@pytest.mark.parametrize("name", [n for n in DEVICE_NAMES if dev(n).vendor in ("nvidia", "amd")
                                  and dev(n).kind == "gpu" and dev(n).supports("fp8")])
def test_fp8_is_twice_bf16(name):
    d = dev(name)
    assert d.peak_tflops("fp8") == pytest.approx(2 * d.peak_tflops("bf16"), rel=0.02)  # L40S datasheet: 733 vs 2 x 362
    if d.supports("int8"):
        assert d.peak_tflops("int8") >= d.peak_tflops("fp8") * 0.99


def test_links_per_direction():
    pcie = {15.75, 31.5, 63.0}
    for name in DEVICE_NAMES:
        d = dev(name)
        if d.host_link is not None and "PCIe" in d.host_link.name:
            assert d.host_link.bandwidth_gb_s in pcie, name
    assert dev("gh200").host_link.bandwidth_gb_s == 450
    assert dev("gb200").host_link.bandwidth_gb_s == 450
    assert dev("h100-sxm").device_link.bandwidth_gb_s == 450
    assert dev("b200").device_link.bandwidth_gb_s == 900
    assert dev("a100-80gb-sxm").device_link.bandwidth_gb_s == 300
    for name in ("l4", "l40s", "a10g", "t4", "rtx-4090", "rtx-6000-ada", "rtx-pro-6000"):
        assert dev(name).device_link is None, f"{name} is PCIe-only"


def test_system_interconnects():
    for name in SYSTEM_NAMES:
        s = sysm(name)
        if s.accelerators is None or s.accelerators.count == 1:
            continue
        acc = dev(s.accelerators.device)
        ic = s.interconnect
        assert ic is not None, f"{name}: multi-accelerator box needs an interconnect"
        if "NVSwitch" in ic.name:
            assert ic.bandwidth_gb_s == acc.device_link.bandwidth_gb_s
        if "PCIe" in ic.name:
            assert ic.bandwidth_gb_s == pytest.approx(0.8 * acc.host_link.bandwidth_gb_s, rel=0.01)
            assert ic.latency_us == 10
    assert sysm("h100x8").interconnect.bandwidth_gb_s == 450
    assert sysm("l4x4").interconnect.bandwidth_gb_s == 25.2
    assert sysm("gh200x1").interconnect is None


def test_specific_systems():
    assert sysm("xeon6980p-2s").accelerators is None
    assert sysm("xeon6980p-2s").host.dram_bandwidth_gb_s == pytest.approx(2 * 614.4)
    assert sysm("xeon6980p-2s").host.cpu.sockets == 2
    g = sysm("gh200x1")
    assert g.host.cpu.device == "grace" and g.host.dram_gb == 480 and g.host.dram_bandwidth_gb_s == 512
    m = sysm("m3-ultra")
    assert m.accelerators.device == "m3-ultra" and m.host.cpu.device == "m3-ultra-cpu"
    assert m.host.dram_gb == 512 and "unified" in m.notes
    assert m.pricing.purchase_usd == 9499
    assert dev("m3-ultra").kind == "unified" and dev("m3-ultra").memory.capacity_gb == 512
    assert dev("m3-max").memory.bandwidth_gb_s == 400
    assert dev("grace").kind == "cpu" and dev("grace").cpu.cores == 72
    assert sysm("h100x8").pricing.on_demand_usd_per_hour == 55.04
    assert sysm("h20x8").pricing.on_demand_usd_per_hour is None and sysm("h20x8").pricing.purchase_usd
    assert sysm("mi325xx8").pricing.on_demand_usd_per_hour is None


def test_uncertainty_is_reported():
    assert "compute.dense_tflops.bf16" in uncertain_fields(dev("rtx-pro-6000"))
    assert "compute.dense_tflops.bf16" in uncertain_fields(dev("a10g"))
    assert "compute.dense_tflops.bf16" not in uncertain_fields(dev("h100-sxm"))
    assert "memory.bandwidth_gb_s" not in uncertain_fields(dev("h100-sxm"))
    assert "pricing.purchase_usd" in uncertain_fields(sysm("h20x8"))
    assert "pricing.on_demand_usd_per_hour" not in uncertain_fields(sysm("h100x8"))
