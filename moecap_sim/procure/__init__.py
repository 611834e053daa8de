"""Capacity planning for procurement (``moecap-sim plan``).

* :mod:`.search` — stage 1: analytical enumeration of systems × precisions × engines × layouts
  (TP/DP/EP/PP, attention-DP+EP, multi-node) × placements with the one cost model (``predict``);
* :mod:`.verify` — stage 2: the cheapest candidates replayed in the DES (``moecap_sim.api.simulate``)
  and judged on percentile SLOs;
* :mod:`.scenarios` — cost scenarios (dedicated, elastic, serverless, spot), one small model each;
* :mod:`.pareto` — Pareto fronts ($/M tokens vs p99 TPOT, vs accuracy) and their plot;
* :mod:`.mixed` — heterogeneous (two-configuration) dedicated fleets;
* :mod:`.distributed` — stage 1 and the DES runs on a Dask cluster (optional ``dist`` extra);
* :mod:`.constants` — the scenario constants with their sources (``scenario_constants.yaml``).

The entry points are :func:`moecap_sim.planner.plan` (keyword arguments, as the CLI) and
:func:`moecap_sim.planner.plan_config` (a :class:`~moecap_sim.procure.config.PlanConfig`).
"""
