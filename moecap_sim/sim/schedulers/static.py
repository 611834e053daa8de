"""Static batching (HF generate, MoE-Infinity, llama.cpp server slots): take up to
``max_num_seqs`` waiting requests, prefill them together padded to the longest prompt, decode
until the longest output is done with the batch size fixed (padding), then take the next batch."""

from __future__ import annotations


class Static:
    name = "static"
    paged = False  # True: admits on KV blocks, preempting when they run out; False: reserves whole requests
    block_tokens = 1

    def loop(self, rep):
        while True:
            if not rep.waiting:
                yield rep.idle()
                continue
            batch = [rep.waiting.popleft() for _ in range(min(rep.max_seqs, len(rep.waiting)))]
            for r in batch:
                rep.reserve(r, r.input_tokens + r.output_tokens)
                rep.admit(r)
            n = len(batch)
            longest_in = max(r.input_tokens for r in batch)
            yield from rep.run_pass("prefill", [(r.rid, r.input_tokens) for r in batch], n, longest_in, 0)
            for r in batch:
                r.computed = r.input_tokens
                rep.emit(r)
            for r in batch:
                if r.generated >= r.output_tokens:
                    rep.finish(r)
            active = [r for r in batch if r.generated < r.output_tokens]
            steps = max((r.output_tokens - r.generated for r in active), default=0)
            for _ in range(steps):
                yield from rep.run_pass("decode", [(r.rid, 1) for r in batch], n, 1,
                                        longest_in + max(r.generated for r in batch))
                for r in active:
                    if r.generated < r.output_tokens:
                        rep.emit(r)
                        if r.generated >= r.output_tokens:
                            rep.finish(r)
