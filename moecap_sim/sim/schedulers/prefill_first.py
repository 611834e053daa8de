"""Prefill-first continuous batching: whenever waiting requests can be admitted (a free sequence
slot and KV room for prompt + output, reserved at admission so nothing is ever preempted), the
next pass prefills up to ``max_num_batched_tokens`` prompt tokens (long prompts chunked over
several passes); otherwise every running sequence decodes one token."""

from __future__ import annotations


class PrefillFirst:
    name = "prefill-first"
    paged = False  # True: admits on KV blocks, preempting when they run out; False: reserves whole requests
    block_tokens = 1

    def _admit(self, rep) -> None:
        while rep.waiting and len(rep.running) < rep.max_seqs:
            r = rep.waiting[0]
            need = r.input_tokens + r.output_tokens
            if not rep.reserve(r, need) and rep.running:
                break  # wait for KV to free up (a lone request is always admitted: it was checked to fit)
            rep.reserve(r, need)
            rep.waiting.popleft()
            rep.admit(r)

    def loop(self, rep):
        while True:
            if not (rep.waiting or rep.running):
                yield rep.idle()
                continue
            self._admit(rep)
            prefilling = [r for r in rep.running if r.computed < r.target]
            if prefilling:
                yield from rep.prefill(rep.prefill_chunk(prefilling))
                continue
            running = list(rep.running)
            yield from rep.decode(running, sum(r.context for r in running) / len(running))
