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
                budget = rep.chunk
                chunk = []
                for r in prefilling:
                    if budget <= 0:
                        break
                    take = min(budget, r.target - r.computed)
                    chunk.append((r, take))
                    budget -= take
                n = len(chunk)
                tokens = sum(t for _, t in chunk)
                yield from rep.run_pass("prefill", [(r.rid, t) for r, t in chunk], n, tokens / n,
                                        sum(r.computed for r, _ in chunk) / n)
                for r, take in chunk:
                    r.computed += take
                    if r.computed >= r.target:
                        rep.emit(r)  # the pass that completes the prompt samples the first token
                        if r.generated >= r.output_tokens:
                            rep.finish(r)
                continue
            running = list(rep.running)
            n = len(running)
            yield from rep.run_pass("decode", [(r.rid, 1) for r in running], n, 1,
                                    sum(r.context for r in running) / n)
            for r in running:
                rep.emit(r)
                if r.generated >= r.output_tokens:
                    rep.finish(r)
