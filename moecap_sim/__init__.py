"""moecap-sim: predict the Cost, Accuracy and Performance (CAP) of serving sparse MoE LLMs.

The public Python API mirrors the CLI one-to-one; see :mod:`moecap_sim.api`.
Importing this package is deliberately light (no torch, simpy, matplotlib or scipy).
"""

__version__ = "0.1.0"
