"""How the shipped routing profiles in ``traces/profiles/`` are built (reproducible).

    python -m moecap_sim.traces.shipped ../shared/traces_upstream [--out traces/profiles]
    python -m moecap_sim.traces.shipped ../shared/traces_upstream --figures [--plots traces/figures]

Inputs are the upstream files listed in ``SOURCES.md`` (verified by SHA-256 on import); the
profiles hold only derived statistics with provenance.  The batched traces (Qwen, OLMoE) are fitted
first, because Mixtral's trace is batch 1 and its in-batch correlation is transferred from them.
"""

from __future__ import annotations

import sys
from pathlib import Path

RECIPES = {
    "qwen1.5-moe-a2.7b": ["weiran0129__vLLM-MoE-Logger/moe_layer0.jsonl", "weiran0129__vLLM-MoE-Logger/moe_layer8.jsonl",
                          "weiran0129__vLLM-MoE-Logger/moe_layer12.jsonl", "weiran0129__vLLM-MoE-Logger/moe_layer18.jsonl",
                          "weiran0129__vLLM-MoE-Logger/moe_layer23.jsonl"],
    "olmoe-1b-7b": ["KaxitPandya__cerebras-assesment2/moe_routes.jsonl"],
    # decode logs of 4 requests (HumanEval 0-1, GSM8K 0-1); routing_raw.jsonl repeats HumanEval 0
    "mixtral-8x7b": ["Mario928__speculative-moe/humaneval_2_routing.jsonl",
                     "Mario928__speculative-moe/gsm8k_2_routing.jsonl"],
}


def build(upstream: Path, out: Path) -> list[Path]:
    from moecap_sim.routing import profiles as P
    from moecap_sim.routing.profiles import save_profile
    from moecap_sim.traces.fit import fit_profile
    from moecap_sim.traces.importers import import_sources

    written = []
    for model, files in RECIPES.items():
        tr = import_sources([upstream / f for f in files])
        prof = fit_profile([tr], model=model)
        path = save_profile(prof, out / f"{model}.json")
        written.append(path)
        P.load_shipped_profile.cache_clear()
        P.transfer_parameters.cache_clear()
    return written


EP_SIZE = {"mixtral-8x7b": 8, "qwen1.5-moe-a2.7b": 4, "olmoe-1b-7b": 8}


def figures(upstream: Path, plots_dir: Path | None = None) -> dict:
    """Headline numbers per traced model (measured on the trace, and from the shipped profile),
    the generator's held-out error, and (optionally) the plots."""
    import numpy as np

    from moecap_sim.routing.profiles import load_shipped_profile
    from moecap_sim.traces.importers import import_sources
    from moecap_sim.traces.stats import compute_stats
    from moecap_sim.traces.synth import holdout_check

    out = {}
    for model, files in RECIPES.items():
        tr = import_sources([upstream / f for f in files])
        ep = EP_SIZE[model]
        st = compute_stats(tr, ep_size=ep, batch_sizes=[1, 8, 32])
        prof = load_shipped_profile(model)
        logged = [int(x) for x in tr.layers]
        s = st["summary"]
        ep_basis = st["layers"][0]["ep"]["basis"]
        b_ep = 32 if "random" in ep_basis else int(round(st["passes"]["decode_batch_mean"]))
        k = tr.top_k
        row = {
            "measured_distinct": {b: s["distinct_vs_batch"].get(b) for b in ("1", "8", "32")},
            "measured_distinct_method": st["layers"][0]["distinct_vs_batch_method"],
            "profile_distinct_steady": {b: round(float(np.mean([prof.expected_distinct_experts(int(b), l)
                                                               for l in logged])), 3) for b in ("1", "8", "32")},
            "temporal_reuse": s["temporal_reuse"], "temporal_reuse_chance": s["temporal_reuse_chance"],
            "temporal_reuse_basis": st["temporal_reuse_basis"],
            "load_max_over_mean": s["max_over_mean"], "gini": s["gini"],
            "ep_size": ep, "ep_batch": b_ep, "ep_max_over_mean_measured": s.get("ep_max_over_mean_load"),
            "ep_basis": ep_basis,
            "ep_max_over_mean_profile": round(float(np.mean([prof.ep_max_rank_load(b_ep, ep, l) for l in logged]))
                                              / (b_ep * k / ep), 4),
            "lru_hit_rate_profile_at_E/4": round(prof.cache_hit_rate(tr.num_experts // 4), 4),
            "holdout": holdout_check(tr)["max_abs_rel_err"],
        }
        ps = (prof.data.get("fit") or {}).get("per_step_summary")
        if ps:
            row["per_step"] = ps
        out[model] = row
        if plots_dir is not None:
            from moecap_sim.traces.plots import write_stats_plots

            st_full = compute_stats(tr, ep_size=ep)
            row["plots"] = [str(p) for p in write_stats_plots(tr, st_full, Path(plots_dir))]
    return out


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv:
        print(__doc__)
        return 2
    from moecap_sim.routing.profiles import profiles_dir

    if "--figures" in argv:
        import json

        plots = Path(argv[argv.index("--plots") + 1]) if "--plots" in argv else None
        print(json.dumps(figures(Path(argv[0]), plots), indent=1))
        return 0
    out = Path(argv[argv.index("--out") + 1]) if "--out" in argv else profiles_dir()
    for p in build(Path(argv[0]), out):
        print(p)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
