"""Efficiency factors η and fixed overheads, per device class, replaceable by calibration.

Every operator time is ``max(bytes / (BW·η_bw), flops / (dense_peak·η_flop)) + overhead``.
The defaults below are *documented priors*, not fitted to any published end-to-end result:

* ``bw`` — achieved fraction of datasheet memory bandwidth by large streaming kernels.
  NVIDIA HBM/GDDR: 0.85 (STREAM-like copies reach 80–90% of peak; reference table §1b note).
  AMD Instinct: 0.75 (MI300X measured ~4.0 of 5.3 TB/s in public microbenchmarks, mem?).
  x86 DRAM: 0.70 (STREAM triad typically 70–85% of theoretical; reference table §3).
  Apple unified memory: 0.75 (mem?).
* ``flop`` — achieved fraction of the dense tensor peak by large GEMMs: 0.70 NVIDIA
  (cuBLAS bf16 GEMMs reach 70–80% of dense peak, mem?), 0.55 AMD, 0.60 Gaudi, 0.45 CPU AMX /
  AVX-512 (oneDNN GEMM, mem?), 0.50 Apple GPU.
* ``attention`` — FlashAttention-class kernels reach ~50% of dense peak (FA2 paper: 50–73% on
  A100 forward), applied to the score/value FLOPs.
* ``moe_grouped`` — multiplier on ``bw`` for fused grouped-GEMM MoE kernels reading many small
  expert matrices (vLLM/SGLang Triton fused_moe reaches ~70–80% of a dense GEMV's bandwidth, mem?).
* ``link`` — achieved fraction of interconnect bandwidth: 0.80 (NCCL bus bandwidth ~80% of
  NVLink; pinned PCIe copies 80–88% of theoretical, reference table §3).
* ``kernel_launch_us`` — per kernel without CUDA graphs (PyTorch eager dispatch + launch,
  ~5–10 µs, mem?); ``graph_kernel_us`` — per kernel inside a replayed CUDA graph (~1.5 µs gap).
* ``collective_latency_us`` — per all-reduce/all-to-all step on NVLink (NCCL small-message
  latency ~5–10 µs, mem?); PCIe-only systems use their link's own latency.

A calibration file (``moecap-sim calibrate``) replaces any of these with values fitted on
measurements of the user's own hardware; :func:`load_calibration` rejects a factor outside its
physical range (efficiencies in (0, 1], overheads ≥ 0), naming the file, field and value.

A *probed* CPU spec carries measured achieved figures (``achieved``: weight-GEMM throughput by
rows, attention, elementwise, dispatch); its unit is timed against those
(:mod:`moecap_sim.perf.achieved`) and the efficiencies become fractions of the measured ceilings,
prior 1 (:func:`moecap_sim.perf.achieved.measured_efficiency`).
"""

from __future__ import annotations

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


@dataclass(frozen=True)
class Calibration:
    """Fitted efficiencies per efficiency class or device name (device names win)."""

    by_key: dict
    path: str

    def for_device(self, name: str, efficiency_class: str, base: Optional[Efficiency] = None) -> Optional[Efficiency]:
        """The calibrated efficiencies of a device: fitted factors over ``base`` (default: the
        class prior; a probed device passes its measured-ceiling efficiencies)."""
        for key in (name, efficiency_class):
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
            elif k in OVERHEADS_US and not (0 <= v <= MAX_OVERHEAD_US):
                problems.append(f"field 'efficiency.{key}.{k}' = {v!r}: an overhead in microseconds must be in "
                                f"[0, {MAX_OVERHEAD_US:g}]")
    if problems:
        raise SpecError(path, problems)
    return Calibration(by_key=eff, path=str(p))
