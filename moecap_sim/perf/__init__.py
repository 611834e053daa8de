"""The one cost model: per-operator roofline step times, serving metrics, S-MBU/S-MFU, cost
and energy.  ``predict``, ``simulate`` and ``plan`` all call :func:`moecap_sim.perf.step.step_time`."""
