"""Discrete-event serving simulator (SimPy): request generators → per-replica schedulers →
per-pass routing replay → step times from the shared cost model → latency distributions,
throughput, expert-cache behaviour, cost.

Layout (after Vidur): :mod:`requests` (request entities and workloads), :mod:`replica` (one DP
replica: queue, KV pool, passes), :mod:`schedulers` (engine policies, one file each),
:mod:`routing` (trace and profile routers), :mod:`replay` (per-pass counts, EP loads, cache
lookups), :mod:`experts` (expert caches and the link), :mod:`steptable` (memoized step times
over the cost model, per-pass counts included), :mod:`simulate` (the API and metrics).
"""
