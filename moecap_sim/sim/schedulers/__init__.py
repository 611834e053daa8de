"""Engine schedulers as small pluggable policies (one file each, registry :data:`SCHEDULERS`).

A policy is a class with ``name``, ``block_tokens`` (KV block size) and ``loop(replica)``, the
replica's SimPy process: it decides what each forward pass carries and runs it with
:meth:`moecap_sim.sim.replica.Replica.run_pass`.

* ``vllm-v1`` — chunked prefill mixed with decode under ``max_num_batched_tokens``, paged KV
  blocks, preemption by recompute (vLLM V1; TRT-LLM in-flight batching and the other
  continuous-batching engines are scheduled the same way here);
* ``sglang`` — prefill batches first and on their own, token-level KV, admission against the
  output tokens running requests still expect, retraction when decode runs out of KV;
* ``prefill-first`` — prompts prefilled in their own passes before decoding resumes, KV for
  prompt + output reserved at admission (the simulator's earlier scheduler, for comparison);
* ``static`` — static batches padded to the longest request (HF generate, MoE-Infinity,
  llama.cpp server slots).
"""

from __future__ import annotations

from moecap_sim.errors import UserError
from moecap_sim.sim.schedulers.prefill_first import PrefillFirst
from moecap_sim.sim.schedulers.sglang import Sglang
from moecap_sim.sim.schedulers.static import Static
from moecap_sim.sim.schedulers.vllm_v1 import VllmV1

SCHEDULERS = {c.name: c for c in (VllmV1, Sglang, PrefillFirst, Static)}
#: engines whose own policy is registered (the others: by their batching kind)
ENGINE_POLICY = {"sglang": "sglang"}


def scheduler_for(batching: str, name: str | None = None, engine: str | None = None):
    """The policy named ``name``, else the engine's own, else the default of its ``batching`` kind."""
    if name is None:
        name = ENGINE_POLICY.get(engine or "") or ("static" if batching == "static" else "vllm-v1")
    if name not in SCHEDULERS:
        from moecap_sim.errors import close_matches

        hint = close_matches(name, SCHEDULERS)
        raise UserError(f"unknown --scheduler '{name}' (known: {', '.join(SCHEDULERS)})"
                        + (f"; did you mean {hint[0]}?" if hint else ""))
    return SCHEDULERS[name]()
