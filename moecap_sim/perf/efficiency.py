"""Efficiency factors η and fixed overheads, per device class, replaceable by calibration.

Every operator time is ``max(bytes / (BW·η_bw), flops / (dense_peak·η_flop)) + overhead``.
The defaults below are *documented priors*, not fitted to any published end-to-end result:

* ``bw`` — achieved fraction of datasheet memory bandwidth by large streaming kernels.
  NVIDIA HBM/GDDR: 0.85 (STREAM-like copies reach 80–90% of peak; reference table §1b note).
  AMD Instinct: 0.75 (MI300X measured ~4.0 of 5.3 TB/s in public microbenchmarks; assumption: recalled, not checked against a source).
  x86 DRAM: 0.70 (STREAM triad typically 70–85% of theoretical; reference table §3).
  Apple unified memory: 0.75 (assumption: recalled, not checked against a source).
* ``flop`` — achieved fraction of the dense tensor peak by large GEMMs: 0.70 NVIDIA
  (cuBLAS bf16 GEMMs reach 70–80% of dense peak; assumption: recalled, not checked against a source), 0.55 AMD, 0.60 Gaudi, 0.45 CPU AMX /
  AVX-512 (oneDNN GEMM; assumption: recalled, not checked against a source), 0.50 Apple GPU.
* ``attention`` — FlashAttention-class kernels reach ~50% of dense peak (FA2 paper: 50–73% on
  A100 forward), applied to the score/value FLOPs.
* ``moe_grouped`` — multiplier on ``bw`` for fused grouped-GEMM MoE kernels reading many small
  expert matrices (vLLM/SGLang Triton fused_moe reaches ~70–80% of a dense GEMV's bandwidth; assumption: recalled, not checked against a source).
* ``link`` — achieved fraction of interconnect bandwidth: 0.80 (NCCL bus bandwidth ~80% of
  NVLink; pinned PCIe copies 80–88% of theoretical, reference table §3).
* ``kernel_launch_us`` — per kernel without CUDA graphs (PyTorch eager dispatch + launch,
  ~5–10 µs; assumption: recalled, not checked against a source); ``graph_kernel_us`` — per kernel inside a replayed CUDA graph (~1.5 µs gap).
* ``collective_latency_us`` — per all-reduce/all-to-all step on NVLink (NCCL small-message
  latency ~5–10 µs; assumption: recalled, not checked against a source); PCIe-only systems use their link's own latency.
* ``overlap_p`` — the smooth-roofline exponent: ``t = (t_mem^p + t_cmp^p)^(1/p)``.  p = 2 is an
  assumption (ridge-point kernels reach ~70% of either roof); adopting it lowered the
  cross-validated error on the published measurements (validation/published) from 45.7% to 44.2%
  with the same fitted factors, p = ∞ (hard max) being the other candidate tried.

A calibration file (``moecap-sim calibrate``) replaces any of these with values fitted on
measurements of the user's own hardware; :func:`load_calibration` rejects a factor outside its
physical range (efficiencies in (0, 1], overheads ≥ 0), naming the file, field and value.

A *probed* CPU spec carries measured achieved figures (``achieved``: weight-GEMM throughput by
rows, attention, elementwise, dispatch); its unit is timed against those
(:mod:`moecap_sim.perf.achieved`) and the efficiencies become fractions of the measured ceilings,
prior 1 (:func:`moecap_sim.perf.achieved.measured_efficiency`).
"""

from __future__ import annotations

import functools
import json
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Optional

from moecap_sim.errors import SpecError, UserError


@dataclass(frozen=True)
class Efficiency:
    bw: float = 0.85
    flop: float = 0.70
    attention: float = 0.50
    moe_grouped: float = 0.80
    link: float = 0.80
    kernel_launch_us: float = 6.0
    graph_kernel_us: float = 1.5
    collective_latency_us: float = 8.0
    #: p of the smooth roofline ``(t_mem^p + t_cmp^p)^(1/p)``: a kernel near its ridge point hides
    #: memory under compute only partly (loads and MMAs share issue slots and pipeline stages);
    #: p = 2 costs √2 at the ridge, nothing far from it; p ≥ 64 is the hard max
    overlap_p: float = 2.0
    source: str = "default"

    def as_dict(self) -> dict:
        return asdict(self)


DEFAULTS: dict[str, Efficiency] = {
    "nvidia-datacenter": Efficiency(source="default prior for nvidia-datacenter"),
    "nvidia-workstation": Efficiency(flop=0.65, source="default prior for nvidia-workstation"),
    "nvidia-consumer": Efficiency(flop=0.65, source="default prior for nvidia-consumer"),
    "amd-instinct": Efficiency(bw=0.75, flop=0.55, attention=0.40, kernel_launch_us=8.0,
                               source="default prior for amd-instinct"),
    "intel-gaudi": Efficiency(bw=0.80, flop=0.60, attention=0.40, source="default prior for intel-gaudi"),
    "cpu-x86": Efficiency(bw=0.70, flop=0.45, attention=0.30, moe_grouped=0.90, kernel_launch_us=2.0,
                          graph_kernel_us=2.0, source="default prior for cpu-x86"),
    "cpu-arm": Efficiency(bw=0.75, flop=0.45, attention=0.30, moe_grouped=0.90, kernel_launch_us=2.0,
                          graph_kernel_us=2.0, source="default prior for cpu-arm"),
    "apple-silicon": Efficiency(bw=0.75, flop=0.50, attention=0.35, kernel_launch_us=5.0, graph_kernel_us=3.0,
                                source="default prior for apple-silicon"),
}


EFFICIENCY_FACTORS = ("bw", "flop", "attention", "moe_grouped", "link")  # fractions of a ceiling: (0, 1]
OVERHEADS_US = ("kernel_launch_us", "graph_kernel_us", "collective_latency_us")  # ≥ 0
MAX_OVERHEAD_US = 1e6


def default_efficiency(efficiency_class: str) -> Efficiency:
    return DEFAULTS.get(efficiency_class, Efficiency(source=f"generic default (no prior for class '{efficiency_class}')"))


#: Engines whose kernels share a lineage (and so their achieved efficiencies): the GPU serving
#: engines (CUTLASS/Triton/FlashInfer kernels, CUDA graphs), llama.cpp-style ggml kernels,
#: KTransformers' CPU/GPU hybrid kernels, and eager-PyTorch offloading runtimes.
ENGINE_FAMILIES = {"vllm": "gpu-serving", "sglang": "gpu-serving", "trtllm": "gpu-serving",
                   "llama.cpp": "ggml", "ktransformers": "ktransformers",
                   "moe-infinity": "eager-offload", "hf": "eager-offload"}


def engine_family(engine_name: Optional[str]) -> Optional[str]:
    """The kernel family of an engine preset (None when unknown)."""
    return ENGINE_FAMILIES.get(engine_name or "", engine_name)


@dataclass(frozen=True)
class Calibration:
    """Fitted efficiencies keyed by device name or efficiency class, optionally restricted to
    one engine family with an ``@family`` suffix (``cpu-x86@ggml``).  Most specific key wins:
    ``name@family``, ``class@family``, ``name``, ``class``."""

    by_key: dict
    path: str
    #: when True, devices without a key here use the documented priors, not the shipped fitted
    #: factors (fitting itself needs this)
    exclusive: bool = False

    def for_device(self, name: str, efficiency_class: str, family: Optional[str] = None,
                   base: Optional[Efficiency] = None) -> Optional[Efficiency]:
        """The calibrated efficiencies of a device under engine ``family``: fitted factors over
        ``base`` (default: the class prior; a probed device passes its measured-ceiling
        efficiencies)."""
        keys = ([f"{name}@{family}", f"{efficiency_class}@{family}"] if family else []) + [name, efficiency_class]
        for key in keys:
            if key in self.by_key:
                base = base or default_efficiency(efficiency_class)
                vals = {k: v for k, v in self.by_key[key].items() if k in {f.name for f in fields(Efficiency)}}
                return replace(base, **vals, source=f"calibration {self.path} [{key}]")
        return None


def load_calibration(path: str) -> Calibration:
    """Read a calibration JSON written by ``moecap-sim calibrate``."""
    p = Path(path)
    if not p.exists():
        raise UserError(f"calibration file not found: {path}")
    try:
        data = json.loads(p.read_text())
    except json.JSONDecodeError as e:
        raise SpecError(path, [f"not valid JSON at line {e.lineno}: {e.msg}"]) from None
    eff = data.get("efficiency") if isinstance(data, dict) else None
    if not isinstance(eff, dict) or not eff:
        raise SpecError(path, ["field 'efficiency' (a mapping of device or class → factors) is missing"])
    return parse_calibration(eff, str(p))


FITTED_PATH = Path(__file__).resolve().parent / "fitted_efficiency.json"


@functools.lru_cache(maxsize=1)
def fitted_data() -> dict:
    """The fit on the published measurements as shipped (``fitted_efficiency.json``: factors per
    group, held-out residual bands, which group each case fell in); {} when none is committed.
    The one reader of that file: the efficiency defaults, the error bands and the published runner
    all use it."""
    return json.loads(FITTED_PATH.read_text(encoding="utf-8")) if FITTED_PATH.is_file() else {}


@functools.lru_cache(maxsize=1)
def fitted_defaults() -> Optional[Calibration]:
    """The efficiency factors fitted on the published measurements (``moecap-sim validate
    --published --fit``), shipped with the package; None when no fit has been committed."""
    groups = fitted_data().get("groups", {})
    if not groups:
        return None
    return parse_calibration({k: v["factors"] for k, v in groups.items() if v.get("factors")},
                             f"fitted on published measurements ({FITTED_PATH.name})")


def resolve_efficiency(name: str, efficiency_class: str, family: Optional[str],
                       calibration: Optional[Calibration] = None) -> Efficiency:
    """The efficiencies of one device under one engine family: the user's calibration, else the
    factors fitted on published measurements, else the documented prior of the device class."""
    for cal in (calibration, fitted_defaults()):
        if cal is not None:
            eff = cal.for_device(name, efficiency_class, family)
            if eff is not None:
                return eff
            if cal.exclusive:
                break
    return default_efficiency(efficiency_class)


def parse_calibration(eff: dict, path: str) -> Calibration:
    """Check a mapping of key → factors and wrap it (errors name the field and value)."""
    known = {f.name for f in fields(Efficiency)} - {"source"}
    problems = []
    for key, vals in eff.items():
        if not isinstance(vals, dict):
            problems.append(f"field 'efficiency.{key}' must be a mapping")
            continue
        for k, v in vals.items():
            if k not in known:
                problems.append(f"field 'efficiency.{key}.{k}' is not a known factor (known: {', '.join(sorted(known))})")
            elif isinstance(v, bool) or not isinstance(v, (int, float)) or v != v:
                problems.append(f"field 'efficiency.{key}.{k}' = {v!r}: must be a number")
            elif k in EFFICIENCY_FACTORS and not (0 < v <= 1):
                problems.append(f"field 'efficiency.{key}.{k}' = {v!r}: an efficiency is a fraction of a ceiling, "
                                f"0 < {k} <= 1 (a fit above 1 means the model lacks a term, see validation/README.md)")
            elif k == "overlap_p" and not v >= 1:
                problems.append(f"field 'efficiency.{key}.{k}' = {v!r}: the smooth-roofline exponent must be >= 1 "
                                f"(1 = memory and compute never overlap)")
            elif k in OVERHEADS_US and not (0 <= v <= MAX_OVERHEAD_US):
                problems.append(f"field 'efficiency.{key}.{k}' = {v!r}: an overhead in microseconds must be in "
                                f"[0, {MAX_OVERHEAD_US:g}]")
    if problems:
        raise SpecError(path, problems)
    return Calibration(by_key=eff, path=path)
