"""The engine the validation runs, described honestly for the cost model, and operator counting."""

from __future__ import annotations

from pydantic import Field

from moecap_sim.catalog.engines import EngineSpec


class TorchEagerEngine(EngineSpec):
    """Eager PyTorch forward passes (no serving engine around them).

    ``kernels_per_layer`` and ``kernels_per_expert`` are *counted*, not assumed: the validation
    runs one forward under a dispatch-counting mode and fits ``ops = a + b × Σ distinct experts``
    over two routings (see :func:`count_ops`)."""

    kernels_per_expert: int = Field(default=3, gt=0, le=200)
    decode_kv_passes: dict = Field(
        default_factory=lambda: {"mla": 2},
        description="passes over the KV cache per decode step by attention kind: the absorbed MLA decode runs "
                    "scores (q·latentᵀ) and values (p·latent) as two bmm's, each streaming the latent cache "
                    "(no fused FlashMLA-style kernel on CPU); GQA: see gqa_kv_expansion")
    gqa_kv_expansion: bool = Field(
        default=False, description="fallback only: a probed CPU's measured attention_gqa_expansion decides (CPU "
                                   "SDPA with enable_gqa timed like MHA with the KV heads repeated on an AMD EPYC, "
                                   "expansion 1.0; the recorded Intel Xeon Mixtral decode says it does not there), "
                                   "so without a measurement nothing extra is charged")
    overlap_mem_compute: bool = Field(
        default=False, description="False: oneDNN repacks plain-layout bf16 weights on every call, so on a CPU "
                                   "the weight stream and the matrix compute run one after the other")


def torch_eager_engine(device: str, kernels_per_layer: int, kernels_per_expert: int) -> TorchEagerEngine:
    return TorchEagerEngine(
        name=f"torch-eager-{device}", display_name=f"PyTorch eager ({device}), moecap-sim validation layers",
        batching="static", cuda_graphs=False, moe_kernel="per-expert", offload=["none", "cpu-only"], prefetch=False,
        weight_precisions=["bf16", "fp16", "fp32"], max_num_batched_tokens=1 << 20, max_num_seqs=4096,
        scheduler_overhead_ms=0.0, kernels_per_layer=max(1, min(1000, int(round(kernels_per_layer)))),
        kernels_per_expert=max(1, int(round(kernels_per_expert))),
        sources={
            "scheduler_overhead_ms": "0: only the model forward is timed (no scheduler, sampling or detokenisation)",
            "kernels_per_layer": "counted: aten operators dispatched per layer outside the expert loop "
                                 "(TorchDispatchMode over one decode forward), incl. the LM head share",
            "kernels_per_expert": "counted: aten operators dispatched per activated expert in the expert loop",
        })


def count_ops(model, tokens, start: int, forced=None) -> tuple[int, int]:
    """(aten operators dispatched by one forward, experts the loops ran) — run twice with
    different batches to separate the per-layer count from the per-expert count."""
    import torch
    from torch.utils._python_dispatch import TorchDispatchMode

    class Counter(TorchDispatchMode):
        n = 0

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            Counter.n += 1
            return func(*args, **(kwargs or {}))

    model.force_routing(forced)
    Counter.n = 0
    with torch.inference_mode(), Counter():
        model.forward(tokens, start)
    model.force_routing(None)
    return Counter.n, sum(len(b.last_experts_run) for b in model.moe_blocks)
