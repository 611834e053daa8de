"""Stage 1 over systems and stage 2's DES runs, locally or on a Dask cluster (the ``dist`` extra).

``dask=None`` runs in this process.  ``"local"`` starts an in-process ``LocalCluster``;
``"tcp://host:port"`` connects to a running scheduler.  Each system is one task
(:func:`moecap_sim.procure.search.evaluate_system`, returning plain data), so stage 1 is the same
as the local run.  Stage 2 verifies as many candidates at a time as the cluster has workers
(:class:`Verifier`); the search then may verify a few more candidates than the local run, but it
stops on the same proof, so the cheapest fleet per scenario is the same.  Without dask installed, a Dask address is a clear error.
"""

from __future__ import annotations

from typing import Callable, Iterator, Optional

from moecap_sim.errors import UserError


def check_dask_address(dask: Optional[str]) -> Optional[str]:
    """``None``, ``"local"`` or ``tcp://host:port`` (checked before any work starts)."""
    if dask is None:
        return None
    if dask != "local" and not (dask.startswith(("tcp://", "inproc://")) and ":" in dask[6:] and dask[6:].split(":")[-1].isdigit()):
        raise UserError(f"--dask {dask!r}: expected 'local' or tcp://host:port")
    try:
        import distributed  # noqa: F401  (the optional 'dist' extra)
    except ImportError:
        raise UserError("--dask needs the optional 'dist' extra: pip install 'moecap-sim[dist]'") from None
    return dask


def map_systems(cfg, names: list[str], input_len: int, output_len: int, consts: dict,
                progress: Optional[Callable[[int, int], None]] = None, client=None) -> Iterator[tuple[list, list]]:
    """(candidates, rejected) per system, in the order of ``names`` (on ``client`` if given)."""
    from .search import evaluate_system

    if client is None:
        for i, name in enumerate(names):
            if progress is not None:
                progress(i, len(names))
            yield evaluate_system(cfg, name, input_len, output_len, consts)
        if progress is not None:
            progress(len(names), len(names))
        return
    futs = [client.submit(evaluate_system, cfg, n, input_len, output_len, consts, pure=False) for n in names]
    for i, f in enumerate(futs):
        res = f.result()
        if progress is not None:
            progress(i + 1, len(names))
        yield res


def _client(dask: str):
    from distributed import Client, LocalCluster

    if dask == "local":
        import os

        cluster = LocalCluster(n_workers=max(1, os.cpu_count() or 1), threads_per_worker=1, processes=True,
                               dashboard_address=":0", silence_logs=50)
        return Client(cluster), cluster
    try:
        return Client(dask, timeout=10), None
    except OSError as exc:
        raise UserError(f"--dask {dask}: cannot reach the scheduler ({exc})") from None


class Verifier:
    """Runs :func:`moecap_sim.procure.verify.verify` calls: one at a time here, or ``width`` at a
    time on a Dask cluster (one per worker)."""

    def __init__(self, dask: Optional[str]) -> None:
        self.dask = dask
        self.client = self.cluster = None
        self.width = 1

    def __enter__(self) -> "Verifier":
        if self.dask is not None:
            self.client, self.cluster = _client(self.dask)
            self.width = max(1, len(self.client.scheduler_info().get("workers", {})))
        return self

    def run(self, calls: list[tuple]) -> list[dict]:
        from .verify import verify

        if self.client is None:
            return [verify(*c) for c in calls]
        futs = [self.client.submit(verify, *c, pure=False) for c in calls]
        return [f.result() for f in futs]

    def run_mixed(self, calls: list[tuple]) -> list[dict]:
        """:func:`moecap_sim.procure.verify.verify_mixed` calls, like :meth:`run`."""
        from .verify import verify_mixed

        if self.client is None:
            return [verify_mixed(*c) for c in calls]
        return [f.result() for f in [self.client.submit(verify_mixed, *c, pure=False) for c in calls]]

    def __exit__(self, *exc) -> None:
        if self.client is not None:
            self.client.close()
        if self.cluster is not None:
            self.cluster.close()
