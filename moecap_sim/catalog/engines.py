"""Engine presets: the physically meaningful differences between serving engines."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from moecap_sim.catalog import Registry

_DIR = Path(__file__).resolve().parent / "engines"


class EngineSpec(BaseModel):
    """How an engine batches, launches kernels, runs MoE layers and offloads experts."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    name: str
    display_name: str
    aliases: list[str] = []
    batching: Literal["continuous", "static"]
    cuda_graphs: bool
    moe_kernel: Literal["fused", "per-expert"]
    offload: list[Literal["none", "expert-cache", "cpu-experts", "cpu-only", "nvme"]]
    prefetch: bool
    weight_precisions: list[str]
    max_num_batched_tokens: int = Field(gt=0)
    max_num_seqs: int = Field(gt=0)
    scheduler_overhead_ms: float = Field(ge=0, le=1000)
    kernels_per_layer: int = Field(gt=0, le=1000)
    cpu_sync_us: float = Field(default=30.0, ge=0, le=100_000)
    #: places CPU-resident weights per NUMA node, so every socket streams its own DRAM
    numa_aware: bool = False
    #: operators dispatched per activated expert by a per-expert loop (slice, GEMMs, activation)
    kernels_per_expert: int = Field(default=3, gt=0, le=200)
    #: times an unfused decode attention streams the KV cache, per attention kind (default once)
    decode_kv_passes: dict[str, int] = {}
    #: False for CPU GEMMs that repack plain-layout weights before multiplying (time = mem + compute)
    overlap_mem_compute: bool = True
    sources: dict[str, str]


@functools.lru_cache(maxsize=None)
def engines() -> Registry:
    return Registry("engine", lambda: _DIR, EngineSpec)


def get_engine(name: str) -> EngineSpec:
    return engines().get(name)


def default_engine_name(cpu_only: bool, offload: str) -> str:
    """vLLM on GPUs; KTransformers for CPU-computed experts; MoE-Infinity for an expert cache;
    llama.cpp on CPU-only hosts."""
    if cpu_only or offload == "cpu-only":
        return "llama.cpp"
    return {"cpu-experts": "ktransformers", "expert-cache": "moe-infinity", "nvme": "moe-infinity"}.get(offload, "vllm")
