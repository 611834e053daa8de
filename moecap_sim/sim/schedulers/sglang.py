"""SGLang scheduling: prefill batches first and on their own, decode batches otherwise; KV at
token granularity; admission against the tokens running requests are still expected to need.

A waiting request is admitted when the free KV tokens cover its prompt plus, for it and every
running request, ``new_token_ratio`` of the output tokens still to come (SGLang's PrefillAdder;
the ratio starts at 0.7 and adapts — held at 0.7 here).  Prefill passes take up to
``max_num_batched_tokens`` (``--chunked-prefill-size``) prompt tokens; when none is waiting for
its prompt, all running requests decode one token.  A decode step that finds no free KV token
retracts the most recently admitted request (recomputed later from prompt + generated tokens).
"""

from __future__ import annotations

NEW_TOKEN_RATIO = 0.7


class Sglang:
    name = "sglang"
    paged = True  # True: admits on KV blocks, preempting when they run out; False: reserves whole requests
    block_tokens = 1

    def _admit(self, rep) -> None:
        reserved = sum(NEW_TOKEN_RATIO * (r.output_tokens - r.generated) for r in rep.running)
        while rep.waiting and len(rep.running) < rep.max_seqs:
            r = rep.waiting[0]
            need = (r.target or r.input_tokens) + NEW_TOKEN_RATIO * (r.output_tokens - r.generated)
            if rep.running and rep.kv.level < need + reserved:
                break
            rep.waiting.popleft()
            rep.admit(r)
            reserved += NEW_TOKEN_RATIO * (r.output_tokens - r.generated)

    def loop(self, rep):
        while True:
            if not (rep.waiting or rep.running):
                yield rep.idle()
                continue
            self._admit(rep)
            prefilling = [r for r in rep.running if r.computed < r.target]
            if prefilling:
                chunk = rep.prefill_chunk(prefilling, reserve=True)
                if chunk:
                    yield from rep.prefill(chunk)
                    continue
                if not any(r.computed >= r.target for r in rep.running):
                    rep.preempt(rep.running[-1])  # partial prompts hold the pool: retract one
                    continue
            decoding = [r for r in rep.running if r.computed >= r.target]
            for r in list(reversed(decoding)):
                while r in rep.running and not rep.reserve(r, r.computed + 1):
                    victim = rep.running[-1]  # retract the most recently admitted
                    rep.preempt(victim)
            decoding = [r for r in rep.running if r.computed >= r.target]
            if not decoding:
                if not prefilling:
                    yield rep.idle()
                continue
            yield from rep.decode(decoding, sum(r.computed for r in decoding) / len(decoding))
