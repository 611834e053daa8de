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
        bt = rep.block_tokens
        for r in list(rep.running):
            if budget <= 0:
                break
            if r.computed >= r.target and r.computed < r.blocks * bt:  # decoding inside its last block
                plan.append((r, 1))
                budget -= 1
                continue
            if r.preempted and r not in rep.running:  # preempted below to make room for an earlier one
                continue
            n = min(budget, r.target - r.computed) if r.computed < r.target else 1
            while not rep.reserve(r, r.computed + n):
                victim = rep.running[-1]
                rep.preempt(victim)
                preempted = True
                if victim is r:
                    break
            if not (preempted and r not in rep.running):
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
        replay = rep.replay is not None
        while True:
            if not (rep.waiting or rep.running):
                yield rep.idle()
                continue
            plan = self.schedule(rep)
            if not plan:  # nothing fits until something else arrives (cannot happen with a lone request)
                yield rep.idle()
                continue
            nd = ctx_d = ptok = ctx_p = 0
            np_ = 0
            for r, n in plan:
                if r.computed >= r.target:
                    nd += 1
                    ctx_d += r.computed
                else:
                    np_ += 1
                    ptok += n
                    ctx_p += r.computed
            if not nd:  # prompt chunks only
                yield from rep.prefill(plan)
                continue
            if not np_:  # decode only
                yield from rep.decode([r for r, _ in plan], ctx_d / nd)
                continue
            tokens = [(r.rid, n) for r, n in plan] if replay else ()
            yield from rep.run_pass("decode", tokens, nd, 1, ctx_d / nd, ptok, np_, ctx_p / np_)
            now = rep.env.now
            for r, n in plan:
                was_prefill = r.computed < r.target
                r.computed += n
                if was_prefill and r.computed < r.target:
                    continue  # more chunks to go
                r.generated += 1  # the pass completing a prompt samples a token, as does every decode step
                r.token_times.append(now)
                if r.generated == 1:
                    r.first_token_s = now
                if r.generated >= r.output_tokens:
                    rep.finish(r)
