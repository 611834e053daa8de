"""``predict``: the analytical CAP answer for one model on one system.

Sections, in order: resolve the deployment, plan memory (does it fit, where each byte lives,
how many sequences), then — where it can run — step times from the cost model, serving
metrics, S-MBU/S-MFU, cost, energy and accuracy.  The result is a plain dict following the
JSON contract of ``moecap-sim predict --json``.
"""

from __future__ import annotations

from typing import Any, Optional

from moecap_sim.deployment import resolve_deployment
from moecap_sim.memory import OFFLOAD_STRATEGIES, plan_memory
from moecap_sim.errors import UserError

CONTRACT_KEYS = ("model", "hardware", "engine", "precision", "parallelism", "workload", "fits", "memory", "placement",
                 "ttft_s", "tpot_s", "prefill_tokens_per_s", "output_tokens_per_s", "total_tokens_per_s",
                 "per_user_tokens_per_s", "requests_per_s", "s_mbu", "s_mfu", "mbu", "mfu", "bottleneck", "cost",
                 "energy", "accuracy", "routing", "assumptions")


def predict(model: str, hw: str, *, precision: Optional[str] = None, kv_dtype: Optional[str] = None,
            engine: Optional[str] = None, tp: Optional[int] = None, ep: int = 1, pp: int = 1, dp: int = 1,
            batch: int | str = 1, input_len: int = 1024, output_len: int = 256, offload: str = "auto",
            gpu_memory_utilization: float = 0.9, pricing: str = "on-demand", calibration: Optional[str] = None,
            ) -> dict[str, Any]:
    """Predict memory placement (and, once the cost model runs, latency, throughput, S-MBU/S-MFU,
    cost, energy, accuracy) for ``model`` on system ``hw``.  Lengths are in tokens."""
    if offload not in ("auto",) + OFFLOAD_STRATEGIES:
        raise UserError(f"--offload must be one of auto, {', '.join(OFFLOAD_STRATEGIES)}; got '{offload}'")
    if input_len < 1 or output_len < 1:
        raise UserError(f"--input-len and --output-len must be ≥ 1 (got {input_len}, {output_len})")
    dep = resolve_deployment(model, hw, precision=precision, kv_dtype=kv_dtype, tp=tp, pp=pp, dp=dp, ep=ep,
                             gpu_memory_utilization=gpu_memory_utilization)
    plan = plan_memory(dep, input_len=input_len, output_len=output_len, offload=offload)
    result: dict[str, Any] = {k: None for k in CONTRACT_KEYS}
    result.update({
        "model": {"name": dep.model.name, "display_name": dep.model.display_name,
                  "total_params": int(round(dep.model.arch.total_params)),
                  "active_params": int(round(dep.model.arch.active_params()))},
        "hardware": {"name": dep.system.name, "display_name": dep.system.display_name,
                     "accelerator": dep.accelerator.name if dep.accelerator else None,
                     "count": dep.device_count, "host_cpu": dep.host_cpu.name},
        "engine": engine,
        "precision": {"weights": dep.scheme.describe(), "kv_cache": dep.kv_dtype},
        "parallelism": dep.parallelism.as_dict(),
        "workload": {"batch": batch, "input_len": input_len, "output_len": output_len},
        "fits": plan.fits,
        "memory": plan.as_dict(),
        "placement": {"strategy": plan.placement, "reason": plan.reason},
        "assumptions": {"notes": list(dep.notes), "gpu_memory_utilization": gpu_memory_utilization},
    })
    if not plan.fits:
        result["reason"] = plan.reason
        result["suggestions"] = plan.suggestions
    return result
