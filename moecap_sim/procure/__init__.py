"""Capacity planning for procurement (``moecap-sim plan``).

* :mod:`.search` — stage 1: analytical enumeration of systems × precisions × engines × layouts
  (TP/DP/EP/PP, attention-DP+EP, multi-node) × placements with the one cost model (``predict``);
* :mod:`.verify` — stage 2: the cheapest candidates replayed in the DES (``moecap_sim.api.simulate``)
  and judged on percentile SLOs;
* :mod:`.scenarios` — cost scenarios (dedicated, elastic, serverless, spot), one small model each;
* :mod:`.pareto` — Pareto fronts ($/M tokens vs p99 TPOT, vs accuracy) and their plot.

The entry point is :func:`moecap_sim.planner.plan`.
"""
