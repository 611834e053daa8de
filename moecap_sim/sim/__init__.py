"""Discrete-event serving simulator (SimPy): request generators → per-replica schedulers →
step times from the shared cost model → latency distributions, throughput, cost.

Layout (after Vidur): :mod:`requests` (request entities and generators, a small registry),
:mod:`replica` (the SimPy processes: one scheduler loop per DP replica), :mod:`steptable`
(memoized step-time predictor over the cost model), :mod:`simulate` (the API and metrics).
"""
