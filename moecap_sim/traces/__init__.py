"""Real expert-routing traces: format, importers, statistics, routing profiles and synthesis.

Python API (mirrors ``moecap-sim trace import|stats|fit|synth``)::

    trace_import(src, out, fmt=None, mapping=None, **options) -> Path
    trace_stats(path, ep_size=None, plots_dir=None, placement="contiguous") -> dict
    trace_fit(path, out) -> FittedProfile
    trace_synth(model, tokens, out, ...) -> Path

Heavy imports (scipy, matplotlib) happen inside the functions that need them.
"""

from __future__ import annotations

from moecap_sim.traces.api import trace_fit, trace_import, trace_stats, trace_synth
from moecap_sim.traces.format import FORMAT, Trace, load_trace, save_trace

__all__ = ["FORMAT", "Trace", "load_trace", "save_trace", "trace_import", "trace_stats", "trace_fit",
           "trace_synth"]
