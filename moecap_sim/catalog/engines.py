"""Engine presets: the physically meaningful differences between serving engines."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Literal, Optional

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
    #: exposed host time per running sequence per step (input preparation, sampling metadata,
    #: stop checks, output processing) that the engine does not overlap with the GPU
    host_us_per_seq: float = Field(default=0.0, ge=0, le=10_000)
    kernels_per_layer: int = Field(gt=0, le=1000)
    #: KV admission: True when the scheduler admits a request only if KV for its prompt plus its
    #: *maximum* output (the request's max_tokens) is free and holds it to the end (TRT-LLM's
    #: default GUARANTEED_NO_EVICT capacity scheduler); False when KV pages are allocated as
    #: tokens are generated and a request is preempted if they run out (vLLM, SGLang)
    kv_reserve_max_tokens: bool = False
    cpu_sync_us: float = Field(default=30.0, ge=0, le=100_000)
    #: places CPU-resident weights per NUMA node, so every socket streams its own DRAM
    numa_aware: bool = False
    #: operators dispatched per activated expert by a per-expert loop (slice, GEMMs, activation)
    kernels_per_expert: int = Field(default=3, gt=0, le=200)
    #: times an unfused decode attention streams the KV cache, per attention kind (default once)
    decode_kv_passes: dict[str, int] = {}
    #: decode attention costs every query head its own pass over the shared K/V (GQA run as if
    #: the KV heads were repeated: CPU SDPA with enable_gqa times like MHA with as many KV heads)
    gqa_kv_expansion: bool = False
    #: scheduler caps the engine picks by itself on large devices (vLLM V1: >= 70 GiB, not A100):
    #: ``{min_memory_gib, exclude_devices, max_num_seqs, max_num_batched_tokens}``
    large_device_defaults: Optional[dict] = None
    #: kernels a layer launches beyond ``kernels_per_layer`` (a GQA attention block and a plain
    #: MoE/dense FFN) for heavier blocks: ``mla`` (q/kv down- and up-projections, their norms,
    #: split-KV decode + combine), ``linear`` (linear-attention conv/state kernels),
    #: ``shared_experts`` (gate-up, activation, down)
    extra_kernels: dict[str, int] = {}
    #: fraction of device memory the engine takes for weights, activations and KV (vLLM's
    #: --gpu-memory-utilization; 1.0 for engines that allocate what they need without a pool)
    gpu_memory_utilization: float = Field(default=0.9, gt=0.05, le=1.0)
    #: device memory outside the engine's pool per GPU: CUDA context, cuBLAS/NCCL workspaces,
    #: CUDA-graph pools (vLLM measures ~1.5 GB of non-torch memory on a datacenter GPU)
    runtime_reserve_gb: float = Field(default=1.5, ge=0, le=64)
    #: host DRAM kept for the OS when weights live in host memory (None: 10 % of the DRAM)
    host_reserve_gb: Optional[float] = Field(default=None, ge=0, le=10_000)
    #: host-resident weights live in page-locked (pinned) memory; False for mmap'd GGUF files,
    #: whose host→device copies are staged through a pinned bounce buffer
    host_memory_pinned: bool = True
    #: uploads of CPU-resident weights for GPU compute overlap the compute (False: the op's
    #: weights are copied, then it runs, on one stream — llama.cpp's op offload)
    upload_overlap: bool = True
    #: False for CPU GEMMs that repack plain-layout weights before multiplying (time = mem + compute)
    overlap_mem_compute: bool = True
    sources: dict[str, str]

    def for_device(self, device_name: Optional[str], memory_bytes: float) -> "EngineSpec":
        """The preset as the engine configures itself on a device (its large-device defaults)."""
        d = self.large_device_defaults
        if not d or device_name is None or memory_bytes < d.get("min_memory_gib", 0) * 2**30:
            return self
        if any(x in device_name for x in d.get("exclude_devices", [])):
            return self
        return self.model_copy(update={k: d[k] for k in ("max_num_seqs", "max_num_batched_tokens") if k in d})

    def serves(self, dtype: str) -> bool:
        """Whether the engine has a weight path for ``dtype``; ``gguf`` in ``weight_precisions``
        stands for every ggml block type (q4_k, iq1_s, ...)."""
        if dtype in self.weight_precisions:
            return True
        from moecap_sim.precision import GGML_BLOCKS

        return "gguf" in self.weight_precisions and dtype in GGML_BLOCKS


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
