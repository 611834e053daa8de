"""Validation of the cost model against real torch inference on this machine.

* :mod:`~moecap_sim.validation.probe` — ``moecap-sim hw probe``: measure memory bandwidth, GEMM
  throughput per dtype and shape, per-operator dispatch overhead (and, with a CUDA GPU, HBM and
  host-to-device bandwidth); write a device/system spec in the catalog schema.
* :mod:`~moecap_sim.validation.layers` — real MoE decoder layers in torch (GQA / MLA attention,
  router, routed experts with routing forced from a real trace, shared experts, dense FFN).
* :mod:`~moecap_sim.validation.runner` — ``moecap-sim validate``: time prefill chunks and decode
  steps, predict the same steps with :func:`moecap_sim.perf.step.step_time`, report errors.
* :mod:`~moecap_sim.validation.compare` — cost-model predictions of measured points, errors,
  the calibration / held-out split (shared by the runner and the calibration).
* :mod:`~moecap_sim.validation.calibrate` — ``moecap-sim calibrate``: fit efficiency factors within
  physical bounds on a calibration subset, report in-sample and held-out error; the one writer of
  calibration files.

torch, scipy and matplotlib are imported inside functions only.
"""
