"""Schemas for hardware spec files: devices (one accelerator or CPU SKU) and systems.

Units are in the field names: GB = 1e9 bytes, GB/s = 1e9 bytes/s *per direction*, TFLOPS =
1e12 operations/s, *dense* (no 2:4 sparsity), W, USD, µs.  Every numeric field needs an entry in
the file's ``sources`` mapping (a dotted field path, or a prefix of it such as
``compute``) saying where the value comes from; a trailing ``?`` in a source marks a value as
uncertain, and :func:`uncertain_fields` lists those.
"""

from __future__ import annotations

import datetime as _dt
from typing import Literal, Optional

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from moecap_sim.units import parse_quantity

DTYPES = ("fp64", "fp32", "tf32", "bf16", "fp16", "fp8", "int8", "fp6", "int4", "fp4")
"""Compute dtypes a device may support natively (tensor/matrix units, or vector for CPUs)."""

DEVICE_KINDS = ("gpu", "cpu", "unified", "accelerator")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _qty(dimension: str, lo: float, hi: float):
    """A field validator: parse a quantity and check it lies in (lo, hi]."""

    def check(cls, v):
        if v is None:
            return v
        x = parse_quantity(v, dimension)
        if not (lo < x <= hi):
            raise ValueError(f"{x:g} is outside the plausible range ({lo:g}, {hi:g}]")
        return x

    return classmethod(check)


class Memory(_Strict):
    type: Optional[str] = None
    capacity_gb: Optional[float] = None  # None for CPUs: capacity belongs to the system
    bandwidth_gb_s: float
    #: total memory the driver reports (MiB), which engines size their pools from; datasheet
    #: "80 GB" HBM is 80 GiB-ish (81559 MiB on H100), so the planner prefers this when given
    visible_mib: Optional[float] = Field(default=None, gt=0, le=10_000_000)
    check_cap = field_validator("capacity_gb", mode="before")(_qty("size_gb", 0.0, 100_000.0))
    check_bw = field_validator("bandwidth_gb_s", mode="before")(_qty("bandwidth_gb_s", 0.0, 100_000.0))


class Link(_Strict):
    """A point-to-point or switched link; ``bandwidth_gb_s`` is per direction."""

    name: str
    bandwidth_gb_s: float
    latency_us: float = 5.0
    check_bw = field_validator("bandwidth_gb_s", mode="before")(_qty("bandwidth_gb_s", 0.0, 100_000.0))

    @field_validator("latency_us", mode="before")
    @classmethod
    def _lat(cls, v):
        if isinstance(v, bool) or not isinstance(v, (str, int, float)):
            raise ValueError(f"expected a latency in µs (or a string with a unit), got {type(v).__name__}")
        x = parse_quantity(v, "seconds") * 1e6 if isinstance(v, str) else float(v)
        if not (0 < x <= 100_000):
            raise ValueError(f"{x:g} µs is outside the plausible range (0, 100000]")
        return x


class Compute(_Strict):
    """Dense peak throughput per dtype in TFLOPS (TOPS for integers).  A dtype that is absent
    is not supported natively by the device."""

    dense_tflops: dict[str, float]

    @field_validator("dense_tflops", mode="before")
    @classmethod
    def _peaks(cls, v):
        if not isinstance(v, dict) or not v:
            raise ValueError("expected a non-empty mapping dtype -> dense TFLOPS")
        out = {}
        for k, x in v.items():
            if k not in DTYPES:
                raise ValueError(f"unknown dtype '{k}' (known: {', '.join(DTYPES)})")
            try:
                val = parse_quantity(x, "tflops")
            except (ValueError, TypeError) as exc:
                raise ValueError(f"{k}: {exc}") from None
            if not (0 < val <= 100_000):
                raise ValueError(f"{k}: {val:g} TFLOPS is outside the plausible range (0, 100000]")
            out[k] = val
        return out


class CpuInfo(_Strict):
    cores: int = Field(gt=0, le=1024)
    base_ghz: float = Field(gt=0, le=10)
    memory_channels: Optional[int] = Field(default=None, gt=0, le=64)
    memory_speed_mt_s: Optional[int] = Field(default=None, gt=0, le=20_000)
    isa: list[Literal["avx2", "avx512", "avx512_bf16", "amx", "neon", "sve", "sme"]] = []


class Power(_Strict):
    tdp_w: float
    idle_w: Optional[float] = None
    check_tdp = field_validator("tdp_w", "idle_w", mode="before")(_qty("watts", 0.0, 20_000.0))

    @model_validator(mode="after")
    def _idle_below_tdp(self):
        if self.idle_w is not None and self.idle_w > self.tdp_w:
            raise ValueError(f"idle_w ({self.idle_w:g}) exceeds tdp_w ({self.tdp_w:g})")
        return self


class Price(_Strict):
    purchase_usd: float = Field(gt=0, le=5_000_000)
    date: str

    @field_validator("date", mode="before")
    @classmethod
    def _date(cls, v):
        return _check_date(v)


def _check_date(v) -> str:
    """Accept YYYY-MM or YYYY-MM-DD (YAML may already parse the latter as a date)."""
    if isinstance(v, (_dt.date,)):
        return v.isoformat()
    s = str(v)
    for fmt in ("%Y-%m", "%Y-%m-%d"):
        try:
            _dt.datetime.strptime(s, fmt)
            return s
        except ValueError:
            pass
    raise ValueError(f"expected a date as YYYY-MM or YYYY-MM-DD, got {s!r}")


class Achieved(_Strict):
    """What a probe *measured* this device's kernels achieve (``moecap-sim hw probe``), used by the
    cost model instead of datasheet × efficiency priors (:mod:`moecap_sim.perf.achieved`).

    * ``gemm_weight_gb_s_by_rows`` — per dtype, ``[[rows M, GB/s], …]``: bytes of weight matrix a
      GEMM ``[M, K]·[K, N]ᵀ`` gets through per second with the weights streamed from DRAM (time =
      weight bytes / this).  M = 1 is the GEMV (bandwidth) end, large M the compute end (TFLOPS =
      GB/s × 2M / bytes per element / 1000): one curve covers skinny and square shapes.
    * ``gemv_gb_s_by_bytes`` — per dtype, ``[[matrix bytes, GB/s], …]`` at M = 1 (DRAM-streamed),
      and ``gemv_in_cache_gb_s`` with the matrix cache-resident (how size and residency matter).
    * ``attention_kv_gb_s`` / ``attention_tflops`` — the attention kernel (SDPA): KV-cache bytes
      per second of a decode step, FLOP/s of a causal prefill (FLOPs counted as the cost model does).
    * ``attention_gqa_expansion`` — how a grouped-query decode step reads the shared K/V: 1 when
      every query head streams it again (the kernel repeats the KV heads), 0 when a group's query
      heads share one pass; measured against MHA timings of the same kernel.
    * ``elementwise_gb_s`` — bf16 elementwise kernels (bytes read + written per second).
    * ``dispatch_us`` — eager cost of one operator that does no work; ``gemm_call_us`` — the fixed
      cost of one bf16 GEMM call.
    """

    threads: int = Field(gt=0, le=4096)
    source: str
    gemm_weight_gb_s_by_rows: dict[str, list[list[float]]]
    gemv_gb_s_by_bytes: dict[str, list[list[float]]] = {}
    gemv_in_cache_gb_s: Optional[float] = Field(default=None, gt=0, le=100_000)
    attention_kv_gb_s: Optional[float] = Field(default=None, gt=0, le=100_000)
    attention_tflops: Optional[float] = Field(default=None, gt=0, le=100_000)
    attention_gqa_expansion: Optional[float] = Field(default=None, ge=0, le=1)
    elementwise_gb_s: Optional[float] = Field(default=None, gt=0, le=100_000)
    dispatch_us: float = Field(ge=0, le=10_000)
    gemm_call_us: Optional[float] = Field(default=None, ge=0, le=100_000)

    @field_validator("gemm_weight_gb_s_by_rows", "gemv_gb_s_by_bytes")
    @classmethod
    def _curves(cls, v):
        for dt, pts in v.items():
            if dt not in DTYPES:
                raise ValueError(f"unknown dtype '{dt}' (known: {', '.join(DTYPES)})")
            if not pts or any(len(p) != 2 or not (p[0] > 0 and 0 < p[1] <= 100_000) for p in pts):
                raise ValueError(f"{dt}: expected a non-empty list of [x > 0, GB/s in (0, 100000]] pairs")
        return v


class DeviceSpec(_Strict):
    """One accelerator or CPU SKU (a file in ``hardware_specs/devices/``)."""

    name: str
    display_name: str
    aliases: list[str] = []
    kind: Literal["gpu", "cpu", "unified", "accelerator"]
    vendor: str
    efficiency_class: str = Field(description="key of the default efficiency table (see perf/efficiency.py)")
    memory: Memory
    compute: Compute
    host_link: Optional[Link] = None
    device_link: Optional[Link] = None
    cpu: Optional[CpuInfo] = None
    power: Power
    price: Optional[Price] = None
    measured: bool = False
    #: measured achieved kernel figures (probed devices); None: datasheet values with priors
    achieved: Optional[Achieved] = None
    notes: Optional[str] = None
    sources: dict[str, str]
    path: Optional[str] = None  # file it was loaded from (set by the loader, not written in files)

    @model_validator(mode="after")
    def _consistency(self):
        if self.kind in ("gpu", "accelerator", "unified") and self.memory.capacity_gb is None:
            raise ValueError("memory.capacity_gb is required for a GPU, accelerator or unified-memory device")
        if self.kind == "cpu" and self.cpu is None:
            raise ValueError("a CPU device needs a 'cpu' section (cores, base_ghz, isa)")
        _check_sources(self)
        return self

    @property
    def usable_capacity_bytes(self) -> float:
        """Device memory an engine sees: ``visible_mib`` when recorded, else the datasheet GB."""
        if self.memory.visible_mib:
            return self.memory.visible_mib * 2**20
        return (self.memory.capacity_gb or 0.0) * 1e9

    def supports(self, dtype: str) -> bool:
        """True when the device has native (tensor/matrix or vector) support for ``dtype``."""
        return dtype in self.compute.dense_tflops

    def peak_tflops(self, dtype: str) -> float:
        """Dense peak for ``dtype`` in TFLOPS; raises KeyError when not native."""
        return self.compute.dense_tflops[dtype]


class AcceleratorGroup(_Strict):
    device: str
    count: int = Field(gt=0, le=1024)


class HostCpu(_Strict):
    device: str
    sockets: int = Field(default=1, gt=0, le=8)
    vcpus: Optional[int] = Field(default=None, gt=0, le=4096)


class Host(_Strict):
    cpu: HostCpu
    dram_gb: float
    dram_bandwidth_gb_s: Optional[float] = None  # default: sockets × CPU socket bandwidth
    nvme_gb: Optional[float] = None
    nvme_bandwidth_gb_s: Optional[float] = None
    host_power_w: Optional[float] = None  # chassis, fans, NICs, DRAM: everything but the devices and CPUs
    check_gb = field_validator("dram_gb", "nvme_gb", mode="before")(_qty("size_gb", 0.0, 1_000_000.0))
    check_bw = field_validator("dram_bandwidth_gb_s", "nvme_bandwidth_gb_s", mode="before")(_qty("bandwidth_gb_s", 0.0, 100_000.0))
    check_w = field_validator("host_power_w", mode="before")(_qty("watts", 0.0, 100_000.0))


class ScaleOut(_Strict):
    """The network joining N identical boxes (``predict --nodes N``): InfiniBand, RoCE, EFA or a
    rack-to-rack NVLink/InfiniBand fabric.  ``bandwidth_gb_s`` is per accelerator per direction
    (e.g. one 400 Gb/s ConnectX-7 NIC per GPU = 50 GB/s)."""

    fabric: str
    bandwidth_gb_s: float
    latency_us: float

    check_bw = field_validator("bandwidth_gb_s", mode="before")(_qty("bandwidth_gb_s", 0.0, 100_000.0))

    @field_validator("latency_us", mode="before")
    @classmethod
    def _lat(cls, v):
        x = parse_quantity(v, "seconds") * 1e6 if isinstance(v, str) else float(v)
        if not (0 < x <= 100_000):
            raise ValueError(f"{x:g} µs is outside the plausible range (0, 100000]")
        return x


class Pricing(_Strict):
    provider: Optional[str] = None
    instance: Optional[str] = None
    region: Optional[str] = None
    date: str
    on_demand_usd_per_hour: Optional[float] = Field(default=None, gt=0, le=10_000)
    spot_usd_per_hour: Optional[float] = Field(default=None, gt=0, le=10_000)
    purchase_usd: Optional[float] = Field(default=None, gt=0, le=100_000_000)  # whole box, for 'owned'

    @field_validator("date", mode="before")
    @classmethod
    def _date(cls, v):
        return _check_date(v)

    @model_validator(mode="after")
    def _spot_below_on_demand(self):
        if self.spot_usd_per_hour and self.on_demand_usd_per_hour and self.spot_usd_per_hour > self.on_demand_usd_per_hour:
            raise ValueError(f"spot_usd_per_hour ({self.spot_usd_per_hour}) exceeds on_demand_usd_per_hour ({self.on_demand_usd_per_hour})")
        return self


class SystemSpec(_Strict):
    """A named box: accelerators × count, host CPU/DRAM/NVMe, links and prices
    (a file in ``hardware_specs/systems/``).  A CPU-only system has no ``accelerators``."""

    name: str
    display_name: str
    aliases: list[str] = []
    accelerators: Optional[AcceleratorGroup] = None
    host: Host
    interconnect: Optional[Link] = None  # accelerator-to-accelerator inside the box
    scale_out: Optional[ScaleOut] = None  # box-to-box network, for multi-node deployments
    pricing: Pricing
    measured: bool = False
    notes: Optional[str] = None
    sources: dict[str, str]
    path: Optional[str] = None  # file it was loaded from (set by the loader, not written in files)

    @model_validator(mode="after")
    def _consistency(self):
        _check_sources(self)
        return self


def _numeric_paths(obj: BaseModel, prefix: str = "") -> list[str]:
    """Dotted paths of every numeric leaf (ints, floats, numeric dict values)."""
    out = []
    for name in type(obj).model_fields:
        if name in ("sources", "measured", "count", "sockets", "path"):
            continue  # structural integers (how many), described by the system's own source
        v = getattr(obj, name)
        path = f"{prefix}{name}"
        if isinstance(v, BaseModel):
            out += _numeric_paths(v, path + ".")
        elif isinstance(v, dict):
            out += [f"{path}.{k}" for k, x in v.items() if isinstance(x, (int, float))]
        elif isinstance(v, (int, float)) and not isinstance(v, bool):
            out.append(path)
    return out


def source_for(spec: BaseModel, path: str) -> Optional[str]:
    """The source recorded for a dotted field path (the longest matching prefix wins)."""
    sources = getattr(spec, "sources", {})
    parts = path.split(".")
    for i in range(len(parts), 0, -1):
        key = ".".join(parts[:i])
        if key in sources:
            return sources[key]
    return None


def _check_sources(spec: BaseModel) -> None:
    missing = [p for p in _numeric_paths(spec) if not source_for(spec, p)]
    if missing and not getattr(spec, "measured", False):
        raise ValueError("no source given for: " + ", ".join(missing) + " (add them under 'sources:')")


def uncertain_fields(spec: BaseModel) -> list[str]:
    """Numeric fields whose source is marked uncertain with a trailing '?'."""
    return [p for p in _numeric_paths(spec) if (source_for(spec, p) or "").rstrip().endswith("?")]
