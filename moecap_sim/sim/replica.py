"""One DP replica as a SimPy process: its queue, its KV-cache pool and a scheduler policy
(:mod:`moecap_sim.sim.schedulers`) that decides what each forward pass carries.

The replica owns the state every policy shares — waiting requests, running sequences, the KV
pool (a :class:`simpy.Container` of KV blocks of the policy's size), the routing replay and
the link expert-cache misses travel over — and runs one pass at a time (:meth:`Replica.run_pass`):
its cost comes from the routing replay when there is one (per-pass counts), else from the
memoized step table (the routing profile's expectations).
"""

from __future__ import annotations

import math
from collections import deque
from typing import TYPE_CHECKING, Callable, Optional, Sequence

import simpy

from moecap_sim.sim.requests import Request
from moecap_sim.sim.steptable import StepTable

if TYPE_CHECKING:
    from moecap_sim.sim.experts import Link
    from moecap_sim.sim.replay import Replay


class Replica:
    def __init__(self, env: simpy.Environment, index: int, table: StepTable, *, scheduler, max_seqs: int,
                 kv_capacity_tokens: float, chunk_tokens: int, on_finish: Callable[[Request], None],
                 replay: "Optional[Replay]" = None, link: "Optional[Link]" = None,
                 kv: Optional[simpy.Container] = None, stages: Sequence[simpy.Resource] = (),
                 group: "Optional[EPGroup]" = None):
        self.env = env
        self.index = index
        self.table = table
        self.scheduler = scheduler
        self.max_seqs = max(1, max_seqs)
        self.kv_capacity = kv_capacity_tokens
        self.block_tokens = max(1, int(scheduler.block_tokens))
        blocks = max(1, int(kv_capacity_tokens // self.block_tokens))
        # free KV blocks (shared by the micro-batch lanes of one pipeline-parallel replica)
        self.kv = kv if kv is not None else simpy.Container(env, capacity=blocks, init=blocks)
        #: pipeline stages (PP > 1): a pass holds each stage in turn for its share of the time,
        #: so the micro-batch lanes of one replica overlap as a pipeline
        self.stages = list(stages)
        self.group = group  # DP ranks of one EP group step together (attention DP + EP)
        self.chunk = max(1, chunk_tokens)
        self.on_finish = on_finish
        self.replay = replay  # routing replay (None: memoized expectations of the routing profile)
        self.link = link  # the link expert-cache misses are fetched over
        self.waiting: deque[Request] = deque()
        self.running: list[Request] = []
        self.busy_s = 0.0
        self.prefill_passes = 0
        self.decode_steps = 0
        self.preemptions = 0
        self.trace: list[tuple[float, int, int]] = []  # per pass: (time s, waiting, running) for plots
        self._wake = env.event()
        self.process = env.process(scheduler.loop(self))

    # ---- entry points
    def submit(self, req: Request) -> None:
        req.replica = self.index
        self.waiting.append(req)
        if not self._wake.triggered:
            self._wake.succeed()

    @property
    def load(self) -> int:
        return len(self.waiting) + len(self.running)

    def idle(self) -> simpy.Event:
        """An event that fires on the next submission."""
        self._wake = self.env.event()
        return self._wake

    # ---- KV blocks
    def reserve(self, r: Request, tokens: int) -> bool:
        """Hold blocks for ``tokens`` tokens of ``r`` (True), or change nothing (False)."""
        need = math.ceil(tokens / self.block_tokens) - r.blocks
        if need <= 0:
            return True
        if self.kv.level < need:
            return False
        self.kv.get(need)  # immediate: the level covers it
        r.blocks += need
        return True

    def release(self, r: Request) -> None:
        if r.blocks:
            self.kv.put(r.blocks)
            r.blocks = 0

    # ---- request life cycle
    def admit(self, r: Request) -> None:
        if r.admitted_s is None:
            r.admitted_s = self.env.now
            if self.replay is not None:
                self.replay.start(r.rid)
        if not r.target:
            r.target = r.input_tokens
        self.running.append(r)

    def preempt(self, r: Request) -> None:
        """Preemption by recompute: blocks freed, back to the front of the queue; the prompt and
        the tokens generated so far are prefilled again on readmission."""
        self.running.remove(r)
        self.release(r)
        r.computed = 0
        r.target = r.input_tokens + r.generated
        r.preempted += 1
        self.preemptions += 1
        self.waiting.appendleft(r)

    def finish(self, r: Request) -> None:
        r.finished_s = self.env.now
        self.release(r)
        if r in self.running:
            self.running.remove(r)
        if self.replay is not None:
            self.replay.finish(r.rid)
        self.on_finish(r)

    def emit(self, r: Request) -> None:
        r.generated += 1
        r.token_times.append(self.env.now)
        if r.generated == 1:
            r.first_token_s = self.env.now

    def table_time(self, phase: str, seqs: int, tokens_per_seq: float, context: float, prefill_tokens: int = 0,
                   prefill_seqs: int = 1, prefill_context: float = 0.0) -> float:
        """Seconds of a pass from the memoized step table (the routing profile's expectations)."""
        if phase == "prefill":
            return self.table.prefill(seqs, tokens_per_seq, context)
        if prefill_tokens:
            return self.table.mixed(seqs, context, prefill_tokens, prefill_seqs, prefill_context)
        return self.table.decode(seqs, context)

    # ---- one forward pass
    def _compute(self, dt: float) -> simpy.Event:
        """The pass's compute: ``dt`` seconds, or a walk through the pipeline stages."""
        if not self.stages:
            return self.env.timeout(dt)
        return self.env.process(self._pipeline(dt / len(self.stages)))

    def _pipeline(self, per_stage_s: float):
        for stage in self.stages:
            with stage.request() as req:
                yield req
                yield self.env.timeout(per_stage_s)

    # ---- passes shared by the scheduling policies
    def prefill_chunk(self, prefilling: list[Request], reserve: bool = False) -> list[tuple[Request, int]]:
        """Prompt chunks of ``prefilling`` (in order) up to the token budget; with ``reserve``
        each chunk must first get its KV (stops at the first that cannot)."""
        budget, chunk = self.chunk, []
        for r in prefilling:
            if budget <= 0:
                break
            take = min(budget, r.target - r.computed)
            if reserve and not self.reserve(r, r.computed + take):
                break
            chunk.append((r, take))
            budget -= take
        return chunk

    def prefill(self, chunk: list[tuple[Request, int]]):
        """One prefill pass over ``chunk`` (a SimPy sub-generator); the pass that completes a
        prompt samples its first token."""
        n = len(chunk)
        yield from self.run_pass("prefill", [(r.rid, t) for r, t in chunk] if self.replay is not None else (), n,
                                 sum(t for _, t in chunk) / n, sum(r.computed for r, _ in chunk) / n)
        for r, take in chunk:
            r.computed += take
            if r.computed >= r.target:
                self.emit(r)
                if r.generated >= r.output_tokens:
                    self.finish(r)

    def decode(self, decoding: list[Request], context: float):
        """Decode ``decoding`` (KV held for this step) at mean ``context`` (a SimPy sub-generator):
        one step, or — when nothing else can happen in between (:meth:`_quiet_steps`) — as many
        back to back as can, in one SimPy timeout; every token gets its own time either way."""
        n = len(decoding)
        waiting = len(self.waiting)
        if self.env.peek() <= self.env.now:
            # let same-time bookkeeping (this step's KV container gets) settle, so that the
            # next event seen is a real one; an arrival that lands meanwhile ends the quiet
            yield self.env.timeout(0)
        steps = 1 if len(self.waiting) > waiting else self._quiet_steps(decoding, self.table.decode(n, context))
        if steps > 1:
            start = self.env.now
            self.trace.append((start, len(self.waiting), len(self.running)))
            ends = self.table.decode_run_ends(n, context, steps, start)
            yield self.env.timeout(ends[-1] - start)
            self.busy_s += self.env.now - start
            self.decode_steps += steps
        else:
            yield from self.run_pass("decode", [(r.rid, 1) for r in decoding] if self.replay is not None else (),
                                     n, 1, context)
            ends = [self.env.now]
        for r in decoding:
            r.computed += len(ends)
            r.generated += len(ends)
            r.token_times.extend(ends)
            if r.first_token_s is None:
                r.first_token_s = ends[0]
            if r.generated >= r.output_tokens:
                self.finish(r)

    def _quiet_steps(self, decoding: list[Request], step_s: float) -> int:
        """How many decode steps of ``decoding`` can run back to back with nothing else able to
        happen: no sequence finishes before the last of them, they end before the next
        scheduled event of the simulation (an arrival, another replica's pass), and the free KV
        covers every block the sequences will enter meanwhile — taken now, as the per-step
        allocations would have succeeded one by one (a waiting request not admitted now cannot
        be admitted before a sequence finishes: free KV only shrinks while everyone decodes).
        1 when any of that cannot be ruled out, or when each pass must be costed on its own
        (routing replay, an EP group, pipeline stages sharing the pool, a fetch link)."""
        if self.replay is not None or self.group is not None or self.stages or self.link is not None:
            return 1
        k = min(r.output_tokens - r.generated for r in decoding)
        nxt = self.env.peek()
        if nxt != float("inf") and step_s > 0:
            k = min(k, int((nxt - self.env.now) / step_s))
        bt = self.block_tokens

        def blocks_needed(steps: int) -> int:
            return sum(max(0, math.ceil((r.computed + steps) / bt) - r.blocks) for r in decoding)

        while k > 1 and blocks_needed(k) > self.kv.level:
            k //= 2
        if k <= 1:
            return 1
        for r in decoding:
            self.reserve(r, r.computed + k)  # covered by the level checked above
        return k

    def run_pass(self, phase: str, tokens: Sequence[tuple[int, int]], seqs: int, tokens_per_seq: float,
                 context: float, prefill_tokens: int = 0, prefill_seqs: int = 1, prefill_context: float = 0.0):
        """Run one forward pass (a SimPy sub-generator).  ``phase`` decode with
        ``prefill_tokens`` > 0 is a mixed pass (chunked prefill riding with decode).  Expert-cache
        misses are held on the link resource meanwhile; contention for the link can stretch
        the pass."""
        start = self.env.now
        self.trace.append((start, len(self.waiting), len(self.running)))
        if self.group is not None:
            yield from self.group.step(self, (phase, tokens, seqs, tokens_per_seq, context, prefill_tokens,
                                              prefill_seqs, prefill_context))
        elif self.replay is None:
            yield self._compute(self.table_time(phase, seqs, tokens_per_seq, context, prefill_tokens, prefill_seqs,
                                                prefill_context))
        else:
            dt, link_s, link_bytes = self.replay.cost(phase, tokens, seqs, tokens_per_seq, context,
                                                      prefill_tokens, prefill_seqs, prefill_context)
            if link_s > 0 and self.link is not None:
                yield self._compute(dt) & self.env.process(self.link.transfer(link_s, link_bytes))
            else:
                yield self._compute(dt)
        self.busy_s += self.env.now - start
        if phase == "prefill":
            self.prefill_passes += 1
        else:
            self.decode_steps += 1


class EPGroup:
    """DP ranks sharing an EP group (attention DP + EP: SGLang --enable-dp-attention, vLLM DP+EP)
    step together: every rank with work at a step boundary joins one pass, each MoE layer routes
    the tokens of all of them (replay: their union's per-layer counts, so the busiest EP rank
    carries the whole group's load), and the step lasts as long as the slowest rank's pass."""

    def __init__(self, env: simpy.Environment, replay: "Optional[Replay]" = None):
        self.env, self.replay = env, replay
        self.pending: list = []
        self.running = False  # a group step is being collected or is in flight
        self.steps = 0

    def step(self, rep: Replica, args: tuple):
        """A SimPy sub-generator: join the next group step (a rank that gets work while a step
        is in flight waits for its end) and wait for that step to end."""
        done = self.env.event()
        self.pending.append((rep, args, done))
        if not self.running:
            self.running = True
            self.env.process(self._run())
        yield done

    def _run(self):
        while self.pending:
            yield self.env.timeout(0)  # every rank ready at this instant joins
            batch, self.pending = self.pending, []
            if self.replay is not None:
                keys, weights = self.replay.route([t for _, a, _ in batch for t in a[1]])
                dt = max(self.replay.time(keys, weights, a[0], *a[2:])[0] for _, a, _ in batch)
            else:
                dt = max(r.table_time(a[0], *a[2:]) for r, a, _ in batch)
            self.steps += 1
            yield self.env.timeout(dt)
            for _, _, done in batch:
                done.succeed()
            yield self.env.timeout(0)  # the released ranks schedule their next passes
        self.running = False
