"""One DP replica as a SimPy process: a scheduler loop over prefill passes and decode steps.

Continuous batching (vLLM/SGLang style, prefill-first): whenever waiting requests can be
admitted (a free sequence slot and KV room for prompt + output), the next pass prefills up to
``max_num_batched_tokens`` prompt tokens (long prompts are chunked over several passes);
otherwise every running sequence decodes one token.  KV is reserved for a request's prompt
and output at admission, so nothing is ever preempted (conservative: real engines admit on
the prompt alone and preempt on overflow).  Static batching (HF, MoE-Infinity) takes up to
``max_num_seqs`` waiting requests, prefills them together and decodes until the longest is
done, the batch size staying fixed (padding).
"""

from __future__ import annotations

from collections import deque
from typing import Callable

import simpy

from moecap_sim.sim.requests import Request
from moecap_sim.sim.steptable import StepTable


class Replica:
    def __init__(self, env: simpy.Environment, index: int, table: StepTable, *, batching: str, max_seqs: int,
                 kv_capacity_tokens: float, chunk_tokens: int, on_finish: Callable[[Request], None]):
        self.env = env
        self.index = index
        self.table = table
        self.batching = batching
        self.max_seqs = max(1, max_seqs)
        self.kv_capacity = kv_capacity_tokens
        self.chunk = max(1, chunk_tokens)
        self.on_finish = on_finish
        self.waiting: deque[Request] = deque()
        self.prefilling: list[Request] = []
        self.running: list[Request] = []
        self.kv_reserved = 0.0
        self.busy_s = 0.0
        self.prefill_passes = 0
        self.decode_steps = 0
        self._wake = env.event()
        self.process = env.process(self.loop())

    # ---- entry points
    def submit(self, req: Request) -> None:
        req.replica = self.index
        self.waiting.append(req)
        if not self._wake.triggered:
            self._wake.succeed()

    @property
    def load(self) -> int:
        return len(self.waiting) + len(self.prefilling) + len(self.running)

    # ---- scheduling
    def _admit(self) -> None:
        while self.waiting and len(self.prefilling) + len(self.running) < self.max_seqs:
            r = self.waiting[0]
            need = r.input_tokens + r.output_tokens
            if self.kv_reserved + need > self.kv_capacity and (self.prefilling or self.running):
                break  # wait for KV to free up (a lone request is always admitted)
            self.waiting.popleft()
            self.kv_reserved += need
            r.admitted_s = self.env.now
            self.prefilling.append(r)

    def _finish(self, r: Request) -> None:
        r.finished_s = self.env.now
        self.kv_reserved -= r.input_tokens + r.output_tokens
        self.on_finish(r)

    def _emit(self, r: Request) -> None:
        r.generated += 1
        r.token_times.append(self.env.now)
        if r.generated == 1:
            r.first_token_s = self.env.now

    def loop(self):
        while True:
            if not (self.waiting or self.prefilling or self.running):
                self._wake = self.env.event()
                yield self._wake
                continue
            if self.batching == "static":
                yield from self._static_batch()
            else:
                yield from self._continuous_pass()

    def _continuous_pass(self):
        self._admit()
        if self.prefilling:
            budget = self.chunk
            chunk: list[tuple[Request, int]] = []
            for r in self.prefilling:
                if budget <= 0:
                    break
                take = min(budget, r.input_tokens - r.prefilled)
                chunk.append((r, take))
                budget -= take
            n = len(chunk)
            tokens = sum(t for _, t in chunk)
            ctx = sum(r.prefilled for r, _ in chunk) / n
            dt = self.table.prefill(n, tokens / n, ctx)
            yield self.env.timeout(dt)
            self.busy_s += dt
            self.prefill_passes += 1
            for r, take in chunk:
                r.prefilled += take
                if r.prefilled >= r.input_tokens:
                    self.prefilling.remove(r)
                    self._emit(r)  # the pass that completes the prompt samples the first token
                    if r.generated >= r.output_tokens:
                        self._finish(r)
                    else:
                        self.running.append(r)
            return
        if self.running:
            n = len(self.running)
            dt = self.table.decode(n, sum(r.context for r in self.running) / n)
            yield self.env.timeout(dt)
            self.busy_s += dt
            self.decode_steps += 1
            still = []
            for r in self.running:
                self._emit(r)
                if r.generated >= r.output_tokens:
                    self._finish(r)
                else:
                    still.append(r)
            self.running = still

    def _static_batch(self):
        batch = [self.waiting.popleft() for _ in range(min(self.max_seqs, len(self.waiting)))]
        for r in batch:
            r.admitted_s = self.env.now
            self.kv_reserved += r.input_tokens + r.output_tokens
        n = len(batch)
        longest_in = max(r.input_tokens for r in batch)
        dt = self.table.prefill(n, longest_in, 0)  # padded to the longest prompt
        yield self.env.timeout(dt)
        self.busy_s += dt
        self.prefill_passes += 1
        for r in batch:
            r.prefilled = r.input_tokens
            self._emit(r)
        active = [r for r in batch if r.generated < r.output_tokens]
        for r in batch:
            if r.generated >= r.output_tokens:
                self._finish(r)
        steps = max((r.output_tokens - r.generated for r in active), default=0)
        for _ in range(steps):
            dt = self.table.decode(n, longest_in + max(r.generated for r in batch))
            yield self.env.timeout(dt)
            self.busy_s += dt
            self.decode_steps += 1
            for r in active:
                if r.generated < r.output_tokens:
                    self._emit(r)
                    if r.generated >= r.output_tokens:
                        self._finish(r)
