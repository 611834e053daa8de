"""The workload stage 2 replays: Azure-shaped arrivals at the target rate by default.

Named workloads (``azure-conv``, ``azure-code``) keep the real trace's arrival pattern and length
distributions, with arrivals rescaled to the target peak rate and lengths rescaled to the
requested means; ``poisson``/``poisson-exp`` draw arrivals at the rate; a CSV path
(``arrival_s,input_tokens,output_tokens``) keeps its lengths and is rescaled to the rate.
N system units are replayed as N round-robin shards of the stream (what a round-robin load
balancer sends each unit).
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from typing import Optional

import numpy as np

from moecap_sim.errors import UserError

NAMED = ("azure-conv", "azure-code", "poisson", "poisson-exp")


@dataclass
class Workload:
    """Requests as arrays: arrival (s), input and output tokens; ``description`` says where from."""

    arrival_s: np.ndarray
    input_tokens: np.ndarray
    output_tokens: np.ndarray
    description: str

    @property
    def mean_input(self) -> int:
        return int(round(float(self.input_tokens.mean())))

    @property
    def mean_output(self) -> int:
        return int(round(float(self.output_tokens.mean())))

    def shard(self, n: int, k: int) -> "Workload":
        """Every n-th request starting at k (round-robin dispatch to n units)."""
        return Workload(self.arrival_s[k::n], self.input_tokens[k::n], self.output_tokens[k::n],
                        f"{self.description}; round-robin shard {k + 1} of {n}")

    def write_csv(self, path: str) -> str:
        with open(path, "w") as fh:
            fh.write("arrival_s,input_tokens,output_tokens\n")
            for a, i, o in zip(self.arrival_s, self.input_tokens, self.output_tokens):
                fh.write(f"{a:.6f},{int(i)},{int(o)}\n")
        return path


def build(name: str, rate_req_s: float, input_len: int, output_len: int, requests: Optional[int],
          seed: int) -> Workload:
    """The stage-2 workload for a target ``rate_req_s`` (requests/s, the peak)."""
    from moecap_sim.sim.requests import load_workload  # the one reader of request files

    if name in ("poisson", "poisson-exp"):
        reqs, desc = load_workload(name, requests=requests or 2000, rate=rate_req_s, input_len=input_len,
                                   output_len=output_len, seed=seed)
    else:
        reqs, desc = load_workload(name, requests=requests, rate=rate_req_s, input_len=input_len,
                                   output_len=output_len, seed=seed)
    a = np.array([r.arrival_s for r in reqs], dtype=float)
    i = np.array([r.input_tokens for r in reqs], dtype=float)
    o = np.array([r.output_tokens for r in reqs], dtype=float)
    if len(a) < 2:
        raise UserError(f"--workload {name}: needs at least 2 requests to define a rate")
    if name not in ("poisson", "poisson-exp"):
        a = a - a[0]
        span = a[-1]
        if span <= 0:
            raise UserError(f"--workload {name}: all requests arrive at once; it has no rate to rescale")
        native = (len(a) - 1) / span
        a = a * (native / rate_req_s)
        desc += f"; arrivals rescaled ×{native / rate_req_s:.3g} to {rate_req_s:g} req/s"
        if name in ("azure-conv", "azure-code"):
            i = np.maximum(1, np.round(i * input_len / i.mean()))
            o = np.maximum(1, np.round(o * output_len / o.mean()))
            desc += f"; lengths rescaled to means {input_len} in / {output_len} out"
    return Workload(a, i.astype(int), o.astype(int), desc)


class ShardFiles:
    """Temporary CSVs for the shards (removed on exit)."""

    def __enter__(self) -> "ShardFiles":
        self.dir = tempfile.mkdtemp(prefix="moecap-plan-")
        return self

    def path(self, w: Workload, tag: str) -> str:
        return w.write_csv(os.path.join(self.dir, f"{tag}.csv"))

    def __exit__(self, *exc) -> None:
        import shutil

        shutil.rmtree(self.dir, ignore_errors=True)
