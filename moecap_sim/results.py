"""The result of ``predict`` as a typed object: its JSON form is the stable contract of
``moecap-sim predict --json`` (JSON Schema in ``moecap_sim/schemas/predict.schema.json``,
regenerated with ``python -m moecap_sim.results``).

Nested sections stay mappings (their keys are documented in the README); the top level is
typed, with units in the names.  Latencies in seconds, throughputs in tokens (or requests) per
second for the whole system named by ``hardware`` (all DP replicas, all nodes).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, Optional

from pydantic import BaseModel, ConfigDict, Field

SCHEMA_PATH = Path(__file__).resolve().parent / "schemas" / "predict.schema.json"


def _d(text: str, default: Any = ...) -> Any:
    """A field with its help text (required unless a default is given)."""
    return Field(default, description=text)


class PredictionResult(BaseModel):
    """One prediction (``fits`` false: the latency/throughput/utilisation keys are null and
    ``reason``, ``suggestions`` and ``best_feasible`` say why and what runs instead)."""

    model_config = ConfigDict(extra="allow")
    model: dict = _d("name, display_name, total_params, active_params")
    hardware: dict = _d("name, display_name, accelerator, count, host_cpu, host_sockets")
    engine: Optional[str] = _d("engine preset used (null when nothing fits and none was requested)")
    precision: dict = _d("weights (scheme description), weights_short, kv_cache, experts, attention dtypes")
    parallelism: dict = _d("tp, pp, dp, ep, devices, nodes, attention_dp")
    workload: dict = _d("batch, input_len, output_len, max_output_len (the requests' max_tokens, when given), requests, disaggregated, batch_per_replica, concurrency")
    fits: bool = _d("whether any placement runs the request")
    memory: dict = _d("the memory plan: capacity/usable/weights/activation/reserve/KV budget (GB), options")
    placement: dict = _d("strategy (none, cpu-experts, expert-cache, cpu-only, nvme), reason, alternatives")
    ttft_s: Optional[float] = _d("time to first token of one request on an idle replica, s")
    tpot_s: Optional[float] = _d("time per output token a client sees, s")
    prefill_tokens_per_s: Optional[float] = _d("batched prefill throughput, tokens/s")
    output_tokens_per_s: Optional[float] = _d("generated tokens/s, whole system")
    total_tokens_per_s: Optional[float] = _d("input + output tokens/s, whole system")
    per_user_tokens_per_s: Optional[float] = _d("decode speed one user sees (1 / TPOT)")
    requests_per_s: Optional[float] = _d("completed requests/s, whole system")
    s_mbu: Optional[float] = _d("sparsity-aware memory-bandwidth utilisation of a decode step (MoE-CAP, corrected)")
    s_mfu: Optional[float] = _d("sparsity-aware FLOP utilisation of a decode step")
    mbu: Optional[float] = _d("vanilla MBU counting every expert's weights (over-counts; can exceed 1)")
    mfu: Optional[float] = _d("vanilla MFU counting every expert's FLOPs (over-counts; can exceed 1)")
    bottleneck: Optional[dict] = _d("bounding resource per phase: decode, prefill")
    cost: Optional[dict] = _d("usd_per_hour, usd_per_million_output_tokens, usd_per_million_tokens, basis")
    energy: Optional[dict] = _d("average_power_w, joules_per_output_token, joules_per_token, basis")
    accuracy: Optional[dict] = _d("published scores and quantization deltas with sources")
    routing: dict = _d("kind and source of the expert routing used (trace-derived profile or synthetic)")
    assumptions: dict = _d("efficiency factors and their source, engine preset, prices date, notes")
    uncertainty: Optional[dict] = _d("error band: class, n, p10_ratio, p90_ratio, band_pct, extrapolated")
    phases: Optional[dict] = _d("per-phase metrics and the per-operator breakdown", None)
    best_feasible: Optional[dict] = _d("when it does not fit: the fastest deployment that runs there", None)


#: the keys every ``predict --json`` object carries (the required fields of the model)
CONTRACT_KEYS = tuple(name for name, f in PredictionResult.model_fields.items() if f.is_required())


def schema() -> dict:
    """The JSON Schema of ``predict --json``."""
    return PredictionResult.model_json_schema()


if __name__ == "__main__":  # regenerate the committed schema
    text = json.dumps(schema(), indent=1, sort_keys=True) + "\n"
    if len(sys.argv) > 1 and sys.argv[1] == "--check":
        sys.exit(0 if SCHEMA_PATH.read_text() == text else 1)
    SCHEMA_PATH.write_text(text)
    print(f"wrote {SCHEMA_PATH}")
