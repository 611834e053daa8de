"""vLLM V1 scheduling: every pass mixes decode tokens with prefill chunks under a token budget.

Per pass (budget ``max_num_batched_tokens``): running sequences first, in admission order — one
token for each decoding sequence, the rest of its prompt (up to the budget) for one still
prefilling; each must hold KV blocks for what it will have computed, and when the pool is
empty the most recently admitted running sequence is preempted (blocks freed, recomputed later
from its prompt + generated tokens) until it fits.  Then, if nothing was preempted, waiting
requests in arrival order while budget, sequence slots (``max_num_seqs``) and blocks last.
KV blocks hold 16 tokens (vLLM's default ``block_size``).
"""

from __future__ import annotations

from moecap_sim.sim.requests import Request


class VllmV1:
    name = "vllm-v1"
    paged = True  # True: admits on KV blocks, preempting when they run out; False: reserves whole requests
    block_tokens = 16

    def schedule(self, rep) -> list[tuple[Request, int]]:
        """(request, tokens) of the next pass; reserves their KV blocks, preempting if needed."""
        budget = rep.chunk
        plan: list[tuple[Request, int]] = []
        preempted = False
        for r in list(rep.running):
            if budget <= 0:
                break
            if r not in rep.running:  # preempted below to make room for an earlier one
                continue
            n = min(budget, r.target - r.computed) if r.computed < r.target else 1
            while not rep.reserve(r, r.computed + n):
                victim = rep.running[-1]
                rep.preempt(victim)
                preempted = True
                if victim is r:
                    break
            if r in rep.running:
                plan.append((r, n))
                budget -= n
        if not preempted:
            while rep.waiting and budget > 0 and len(rep.running) < rep.max_seqs:
                r = rep.waiting[0]
                n = min(budget, (r.target or r.input_tokens) - r.computed)
                if not rep.reserve(r, r.computed + n):
                    break
                rep.waiting.popleft()
                rep.admit(r)
                plan.append((r, n))
                budget -= n
        return plan

    def loop(self, rep):
        while True:
            if not (rep.waiting or rep.running):
                yield rep.idle()
                continue
            plan = self.schedule(rep)
            if not plan:  # nothing fits until something else arrives (cannot happen with a lone request)
                yield rep.idle()
                continue
            decode = [(r, n) for r, n in plan if r.computed >= r.target]
            prefill = [(r, n) for r, n in plan if r.computed < r.target]
            tokens = [(r.rid, n) for r, n in plan]
            if decode:
                ptok = sum(n for _, n in prefill)
                yield from rep.run_pass("decode", tokens, len(decode), 1,
                                        sum(r.computed for r, _ in decode) / len(decode), ptok, max(1, len(prefill)),
                                        sum(r.computed for r, _ in prefill) / len(prefill) if prefill else 0.0)
            else:
                ptok = sum(n for _, n in prefill)
                yield from rep.run_pass("prefill", tokens, len(prefill), ptok / len(prefill),
                                        sum(r.computed for r, _ in prefill) / len(prefill))
            for r, n in plan:
                was_prefill = r.computed < r.target
                r.computed += n
                if r not in rep.running:
                    continue
                if was_prefill and r.computed < r.target:
                    continue  # more chunks to go
                rep.emit(r)  # the pass completing a prompt samples a token, as does every decode step
                if r.generated >= r.output_tokens:
                    rep.finish(r)
