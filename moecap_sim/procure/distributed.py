"""Stage 1 over systems, locally or on a Dask cluster (the optional ``dist`` extra).

``dask=None`` runs in this process.  ``"local"`` starts an in-process ``LocalCluster``;
``"tcp://host:port"`` connects to a running scheduler.  Each system is one task
(:func:`moecap_sim.procure.search.evaluate_system`, returning plain data), so the answer is the
same as the local run.  Without dask installed, a Dask address is a clear error.
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
        import distributed  # noqa: F401
    except ImportError:
        raise UserError("--dask needs the optional 'dist' extra: pip install 'moecap-sim[dist]'") from None
    return dask


def map_systems(cfg, names: list[str], input_len: int, output_len: int, consts: dict,
                progress: Optional[Callable[[int, int], None]] = None) -> Iterator[tuple[list, list]]:
    """(candidates, rejected) per system, in the order of ``names``."""
    from .search import evaluate_system

    if cfg.dask is None:
        for i, name in enumerate(names):
            if progress is not None:
                progress(i, len(names))
            yield evaluate_system(cfg, name, input_len, output_len, consts)
        if progress is not None:
            progress(len(names), len(names))
        return
    from distributed import Client, LocalCluster

    cluster = None
    if cfg.dask == "local":
        import os

        cluster = LocalCluster(n_workers=max(1, os.cpu_count() or 1), threads_per_worker=1, processes=True,
                               dashboard_address=":0", silence_logs=50)
        client = Client(cluster)
    else:
        try:
            client = Client(cfg.dask, timeout=10)
        except OSError as exc:
            raise UserError(f"--dask {cfg.dask}: cannot reach the scheduler ({exc})") from None
    try:
        futs = [client.submit(evaluate_system, cfg, n, input_len, output_len, consts, pure=False) for n in names]
        for i, f in enumerate(futs):
            res = f.result()
            if progress is not None:
                progress(i + 1, len(names))
            yield res
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
