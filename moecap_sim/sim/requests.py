"""Requests and request generators (registry: ``poisson``, ``fixed``, ``azure-conv``,
``azure-code``, or a CSV path with ``arrival_s,input_tokens,output_tokens``)."""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

import numpy as np

from moecap_sim.catalog import data_dir
from moecap_sim.errors import UserError


@dataclass(eq=False)  # identity: requests are compared and removed by object
class Request:
    rid: int
    arrival_s: float
    input_tokens: int
    output_tokens: int
    replica: int = -1
    admitted_s: Optional[float] = None
    first_token_s: Optional[float] = None
    finished_s: Optional[float] = None
    prefilled: int = 0  # prompt tokens processed so far (chunked prefill)
    generated: int = 0  # output tokens produced so far
    computed: int = 0  # tokens whose KV is in the cache (paged schedulers)
    target: int = 0  # tokens to prefill before decoding: the prompt, or prompt + output after preemption
    blocks: int = 0  # KV blocks held
    preempted: int = 0  # times preempted (recompute)
    token_times: list = field(default_factory=list, repr=False)

    @property
    def context(self) -> int:
        return self.input_tokens + self.generated


def _read_gzip_text(path: Path, max_bytes: int) -> str:
    """A gzip-compressed UTF-8 CSV, decompressed to at most ``max_bytes``; a bad file → UserError."""
    import gzip
    import zlib

    from moecap_sim.inputs import check_input_file

    p = check_input_file(path, "request CSV", max_bytes)
    try:
        with gzip.open(p, "rb") as f:
            data = f.read(max_bytes + 1)
    except (OSError, EOFError, zlib.error) as exc:
        raise UserError(f"{path}: not a readable gzip file ({exc})") from None
    if len(data) > max_bytes:
        raise UserError(f"{path}: decompresses to more than {max_bytes:,} bytes")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise UserError(f"request CSV {path} is not UTF-8 text (byte {exc.start})") from None


def _read_csv(path: Path, limit: Optional[int], rate_scale: float) -> tuple[list[Request], Optional[str]]:
    """Requests from a CSV (ours or the raw Azure trace), sorted by arrival time; the second
    value is a note when the file was not in arrival order."""
    import io
    import math

    from moecap_sim.inputs import MAX_DATA_BYTES, MAX_REQUESTS, MAX_TOKENS, read_text_file

    if str(path).endswith(".gz"):
        text = _read_gzip_text(path, MAX_DATA_BYTES)
    else:
        text = read_text_file(path, "request CSV", MAX_DATA_BYTES)
    rows: list[tuple[float, int, int]] = []
    lines = (l for l in io.StringIO(text) if not l.startswith("#"))
    reader = csv.DictReader(lines)
    need = {"arrival_s", "input_tokens", "output_tokens"}
    azure = {"TIMESTAMP", "ContextTokens", "GeneratedTokens"}
    try:
        fields = set(reader.fieldnames or [])
    except csv.Error as exc:
        raise UserError(f"{path}: line 1: not a CSV header ({exc})") from None
    if not (need <= fields or azure <= fields):
        raise UserError(f"{path}: expected columns arrival_s,input_tokens,output_tokens "
                        f"(or Azure's TIMESTAMP,ContextTokens,GeneratedTokens); got {reader.fieldnames}")
    ours = need <= fields
    rows_iter = enumerate(reader)
    while True:
        try:
            i, row = next(rows_iter)
        except StopIteration:
            break
        except csv.Error as exc:  # e.g. a field over the csv module's size limit
            raise UserError(f"{path}: line {reader.line_num}: not a CSV row ({exc})") from None
        line = reader.line_num
        col = "arrival_s" if ours else "TIMESTAMP"
        try:
            if ours:
                col = "arrival_s"
                a = float(row["arrival_s"])
                col = "input_tokens"
                inp = int(row["input_tokens"])
                col = "output_tokens"
                out = int(row["output_tokens"])
            else:  # the raw Azure LLM inference trace
                import datetime as _dt
                a = _dt.datetime.fromisoformat(str(row["TIMESTAMP"])[:26]).timestamp()
                col = "ContextTokens"
                inp = int(row["ContextTokens"])
                col = "GeneratedTokens"
                out = int(row["GeneratedTokens"])
        except (TypeError, ValueError, OverflowError):
            raise UserError(f"{path}: line {line}: field '{col}' = {row.get(col)!r} is not a valid number") from None
        if not math.isfinite(a) or a < 0 or (ours and a > 1e9):
            raise UserError(f"{path}: line {line}: field 'arrival_s' = {a!r} must be a finite time in [0, 1e9] s")
        for name, v in (("input_tokens", inp), ("output_tokens", out)):
            if not 1 <= v <= MAX_TOKENS:
                raise UserError(f"{path}: line {line}: field '{name}' = {v} must be in [1, {MAX_TOKENS}]")
        rows.append((a, inp, out))
        if len(rows) > 5 * MAX_REQUESTS:
            raise UserError(f"{path}: more than {5 * MAX_REQUESTS:,} requests; use a smaller file")
    if not rows:
        raise UserError(f"{path}: no requests")
    note = None
    arrivals = [r[0] for r in rows]
    if any(b < a for a, b in zip(arrivals, arrivals[1:])):
        late = sum(1 for a, b in zip(arrivals, arrivals[1:]) if b < a)
        note = f"{late} arrival(s) in {path.name} were out of order: requests sorted by arrival time on load"
        rows.sort(key=lambda r: r[0])  # stable: ties keep file order
    t0 = rows[0][0] if not ours else 0.0
    if rows[-1][0] - t0 > 1e9:
        raise UserError(f"{path}: arrivals span {rows[-1][0] - t0:.3g} s; at most 1e9 s")
    if limit:
        rows = rows[:limit]
    if len(rows) > MAX_REQUESTS:
        raise UserError(f"{path}: {len(rows):,} requests exceed the bound {MAX_REQUESTS:,}; pass --requests N")
    return [Request(i, (a - t0) / rate_scale, inp, out) for i, (a, inp, out) in enumerate(rows)], note


def poisson(n: int, rate: float, input_len: int, output_len: int, seed: int, lengths: str = "fixed") -> list[Request]:
    """``n`` Poisson arrivals at ``rate`` req/s; lengths fixed or exponential around the means."""
    if rate <= 0 or n < 1:
        raise UserError("--rate must be > 0 and --requests ≥ 1")
    rng = np.random.default_rng(seed)
    t = np.cumsum(rng.exponential(1.0 / rate, n))
    if lengths == "exponential":
        inp = np.maximum(1, rng.exponential(input_len, n).round()).astype(int)
        out = np.maximum(1, rng.exponential(output_len, n).round()).astype(int)
    else:
        inp = np.full(n, input_len)
        out = np.full(n, output_len)
    return [Request(i, float(t[i]), int(inp[i]), int(out[i])) for i in range(n)]


WORKLOADS: dict[str, Callable[..., list[Request]]] = {}
#: shipped Azure LLM inference trace 2023 samples: the first 10 minutes, and the whole hour
AZURE = ("azure-conv", "azure-code", "azure-conv-1h", "azure-code-1h")


@dataclass(frozen=True)
class ClosedLoop:
    """``closed:N[:THINK_S]``: N users, each sending its next request ``think_s`` seconds after
    its previous one finished (a benchmark client with N concurrent requests)."""

    users: int
    think_s: float = 0.0


def parse_closed(name: str) -> Optional[ClosedLoop]:
    """The closed-loop spec of a workload name, None when it is not ``closed:...``."""
    if not name.startswith("closed:"):
        return None
    parts = name.split(":")[1:]
    try:
        users = int(parts[0])
        think = float(parts[1]) if len(parts) > 1 else 0.0
    except (ValueError, IndexError):
        users, think = 0, -1.0
    import math

    if len(parts) > 2 or not 1 <= users <= 100_000 or not (math.isfinite(think) and 0 <= think <= 1e6):
        raise UserError(f"workload '{name}': use closed:N or closed:N:THINK_S (1 ≤ N ≤ 100000 users, "
                        f"think time 0–1e6 s)")
    return ClosedLoop(users, think)


def load_workload(name: str, *, requests: Optional[int], rate: float, input_len: int, output_len: int, seed: int,
                  rate_scale: float = 1.0, max_input: Optional[int] = None) -> tuple[list[Request], str]:
    """Requests for a named workload or CSV path, and a description of where they come from."""
    if name == "poisson":
        return poisson(requests or 200, rate, input_len, output_len, seed), f"Poisson arrivals at {rate:g} req/s, {input_len} in / {output_len} out tokens (seed {seed})"
    if name == "poisson-exp":
        return (poisson(requests or 200, rate, input_len, output_len, seed, "exponential"),
                f"Poisson arrivals at {rate:g} req/s, exponential lengths (mean {input_len} in / {output_len} out; seed {seed})")
    closed = parse_closed(name)
    if closed is not None:
        n = requests or 8 * closed.users
        u = closed.users
        # users out of phase from the start: user j's first request is cut to (j+1)/N of the output
        # length, so equal-length requests do not move in lock-step waves (a long-running client)
        out = [max(1, math.ceil(output_len * (i + 1) / u)) if i < u else output_len for i in range(n)]
        return ([Request(i, float("nan"), input_len, out[i]) for i in range(n)],
                f"closed loop: {u} users, think time {closed.think_s:g} s, {n} requests of {input_len} in / "
                f"{output_len} out tokens (each user's first request shortened to stagger them)")
    if name == "fixed":
        n = requests or 64
        return [Request(i, 0.0, input_len, output_len) for i in range(n)], f"{n} requests at t=0, {input_len} in / {output_len} out"
    if name in AZURE:
        kind = name.split("-")[1]
        hour = name.endswith("-1h")
        path = data_dir("traces") / "requests" / (f"azure-{kind}-2023-1h.csv.gz" if hour else f"azure-{kind}-2023-10min.csv")
        desc = (f"Azure LLM inference trace 2023 ({kind}, {'the whole hour' if hour else 'first 10 min'}, CC-BY 4.0, "
                f"Patel et al. ISCA'24)" + (f", arrivals compressed ×{rate_scale:g}" if rate_scale != 1 else ""))
    else:
        path = Path(name)
        if not name.strip() or not path.exists():
            from moecap_sim.errors import close_matches
            hint = close_matches(name, ["poisson", "poisson-exp", "fixed", *AZURE, "closed:8"])
            raise UserError(f"unknown workload '{name}' (a name or a CSV path)" + (f"; did you mean {hint[0]}?" if hint else ""))
        desc = f"requests from {path}"
    reqs, note = _read_csv(path, requests, rate_scale)
    if note:
        desc += f" ({note})"
    if max_input:
        for r in reqs:
            r.input_tokens = min(r.input_tokens, max_input)
    return reqs, desc
