"""Provenance of the upstream trace files the project knows (by SHA-256).

When an imported file matches one of these hashes, its metadata (model, geometry, engine,
dataset, repository, commit, license) is filled in from here, and the documented filters are
applied.  The data files themselves are never copied into the repository (no license).
"""

from __future__ import annotations

_MIXTRAL = dict(
    model="mixtral-8x7b", hf_id="neuralmagic/Mixtral-8x7B-Instruct-v0.1-FP8",
    num_experts=8, top_k=2, num_shared_experts=0, num_moe_layers=32,
    repo="https://github.com/Mario928/speculative-moe",
    commit="216e26eb86ee09fa46bb0e8c000be7e9758e10b6",
    license="none stated upstream (all rights reserved; used in place, never redistributed)",
    engine="vLLM with a patched fused_moe hook; FP8 expert weights, BF16 router; greedy; batch 1",
    weights_kind="top-k renormalised",
    notes=["the upstream logger drops rows whose two gate weights are exactly [0.5, 0.5] "
           "(~1-2% of (token, layer) pairs are missing; stored as -1)"],
)

_QWEN = dict(
    model="qwen1.5-moe-a2.7b", hf_id="Qwen/Qwen1.5-MoE-A2.7B-Chat",
    num_experts=60, top_k=4, num_shared_experts=1, num_moe_layers=24,
    repo="https://github.com/weiran0129/vLLM-MoE-Logger",
    commit="2c3c87c10e045aea0c495044d9b4f94cf16675b2",
    license="none stated upstream (all rights reserved; used in place, never redistributed)",
    engine="vLLM 0.11.2.dev344 (V1), torch 2.9.0, one A100 80GB PCIe, BF16, seed 1234, "
           "25 prompts submitted together (continuous batching)",
    dataset="GSM8K test questions 1-25",
    weights_kind="softmax over all experts (not renormalised)",
    notes=["req_id is always 'r1' upstream (not a request id)",
           "shared expert (always on, 4x expert width) is not logged",
           "pass 0 (65 rows) is the prefill of the first request alone; pass 1 (1406 rows) the "
           "prefill of the other 24 prompts (plus, probably, the first decode token of request 1); "
           "then 127 decode steps with the batch shrinking 25 -> 11 as requests finish",
           "the five layer files are five re-runs of the same deterministic workload; their pass "
           "structure is identical, so they are merged row by row into one 5-layer trace"],
)

_OLMOE = dict(
    model="olmoe-1b-7b", hf_id="allenai/OLMoE-1B-7B-0924",
    num_experts=64, top_k=8, num_shared_experts=0, num_moe_layers=16,
    repo="https://github.com/KaxitPandya/cerebras-assesment2",
    commit="e89e8f6ff004ff03d0e4d71c730c8d21c859e95c",
    license="none stated upstream (all rights reserved; used in place, never redistributed)",
    engine="vLLM 0.6.6.post1 (V0), torch 2.5.1, one Tesla T4, seed 1234, 25 prompts together",
    dataset="GSM8K test questions 1-25",
    weights_kind="top-k renormalised",
    # Not recorded upstream (token_idx is a global counter).  Inferred: timing.json reports 3,119
    # generated tokens = 24 requests x 128 + 1 x 47, so after the dummy pass the 4,471 rows are one
    # prefill pass of 1,377 prompt tokens, 46 decode steps of batch 25 and 81 of batch 24.  The
    # same-row-position overlap between consecutive steps peaks at lag 25 in the first block
    # (0.305 vs 0.23 at lags 24/26) and at lag 24 in the second (0.278 vs 0.16), confirming it.
    pass_sizes=[1377] + [25] * 46 + [24] * 81,
    pass_structure_note=("inferred, not recorded: 1 prefill pass of 1,377 rows, then 46 decode steps "
                         "of 25 rows and 81 of 24 (from timing.json's 3,119 generated tokens = "
                         "24x128 + 47, confirmed by the same-position token overlap peaking at "
                         "lag 25, then 24)"),
    notes=["only layer 0 of 16 MoE layers is logged", "req_id is always 'r0' upstream"],
)

KNOWN_FILES: dict[str, dict] = {
    "761a87b678ffb713c40f0306d1bacc4346e70b78e5b767529495e8093d47609e":
        dict(_MIXTRAL, path="humaneval_2_routing.jsonl", dataset="HumanEval problems 0-1 (decode tokens)"),
    "1bb2e9f769561165e952b1372cfaa61c678d93fb3edf298c0b34bfe9eee13e3a":
        dict(_MIXTRAL, path="gsm8k_2_routing.jsonl", dataset="GSM8K test problems 0-1 (decode tokens)"),
    "f8d016404ed2c83e114c6b34f04858ba97eeaa1c5705e5c2b586bf501ca41e6b":
        dict(_MIXTRAL, path="routing_raw.jsonl", dataset="HumanEval problem 0 (prefill + decode)"),
    "d2f198e22025ca3176c8378f4bd3a89abd5155fc02f8d76facfed6a24b0c916a": dict(_QWEN, path="Logs/moe_layer0.jsonl"),
    "3d58957a1d6c293916cf6be84966068b838163002fb9f6d09a0a93153f40a652": dict(_QWEN, path="Logs/moe_layer8.jsonl"),
    "fea1b84dc8bacc244f95891388ea6b210c7579ca6fd26299c7d4a9f452828d19": dict(_QWEN, path="Logs/moe_layer12.jsonl"),
    "ce8ac4e0de3a3731eeccf9c59aca3661980f9cab718133c7fa260eacb7cf0905": dict(_QWEN, path="Logs/moe_layer18.jsonl"),
    "9efb3a01ccc33923de9eb2298e7c255f34b813959806ad24c67a851b73b39e27": dict(_QWEN, path="Logs/moe_layer23.jsonl"),
    "a1e7cb45e16bd20f8e6adab525d94c8aa6462843e2fe644b68af9e0c0155d056": dict(_OLMOE, path="moe_routes.jsonl"),
}

# Hugging Face ids seen in trace metadata → catalog names (the catalog is also consulted).
HF_TO_CATALOG = {
    "qwen/qwen1.5-moe-a2.7b-chat": "qwen1.5-moe-a2.7b",
    "qwen/qwen1.5-moe-a2.7b": "qwen1.5-moe-a2.7b",
    "allenai/olmoe-1b-7b-0924": "olmoe-1b-7b",
    "allenai/olmoe-1b-7b-0924-instruct": "olmoe-1b-7b",
    "mistralai/mixtral-8x7b-v0.1": "mixtral-8x7b",
    "mistralai/mixtral-8x7b-instruct-v0.1": "mixtral-8x7b",
    "neuralmagic/mixtral-8x7b-instruct-v0.1-fp8": "mixtral-8x7b",
}


def canonical_model_name(name: str | None) -> str | None:
    """Map an HF id or alias to the catalog's canonical name where we can; else lower-case it."""
    if not name:
        return None
    key = str(name).strip().lower()
    if key in HF_TO_CATALOG:
        return HF_TO_CATALOG[key]
    try:
        from moecap_sim.catalog.models import registry

        reg = registry()
        idx = {n: reg.path_of(n).stem for n in reg.all_names_and_aliases()}
        for cand in (key, key.split("/")[-1], key.split("/")[-1].removesuffix("-chat").removesuffix("-instruct")):
            if cand in idx:
                return idx[cand]
    except Exception:  # catalog unavailable or unreadable: keep the given name
        pass
    return key


def model_geometry(name: str) -> dict | None:
    """num_experts / top_k / num_shared_experts / num_moe_layers of a catalog model, or None."""
    try:
        from moecap_sim.catalog.models import get_model

        arch = get_model(name).arch
        return dict(num_experts=int(arch.num_experts), top_k=int(arch.top_k),
                    num_shared_experts=int(arch.num_shared_experts),
                    num_moe_layers=len(arch.moe_layer_indices), model=get_model(name).name)
    except Exception:
        return None
