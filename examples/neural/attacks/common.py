"""Shared pieces of the attacks: batched sampling with a logits processor
(the distiller's own decoding: WN, paraphrase), full-sequence logits with a
processor (perplexity and reading of a served attack), and the quality
costs every attack reports."""
import math

import numpy as np
import torch
import torch.nn.functional as F
from gpt import answer_nll  # examples/neural is on the path: attacks is its package


@torch.no_grad()
def sample(model, prompts, n_new, processor=None, seed=1, batch=256, banned=None, forced=None):
    """Continuations of equal-length prompts (id lists), n_new tokens each.
    processor(logits [B, V], histories: list of id lists) -> logits, applied
    before sampling at every step.  forced(step, rows, histories) -> a
    LongTensor [B] of tokens to emit instead of sampling where >= 0 (the
    paraphrases keep a share of the original tokens); sampled tokens are
    drawn for every row either way so the generator's stream does not
    depend on what was forced."""
    g = torch.Generator().manual_seed(seed)
    out = []
    for i in range(0, len(prompts), batch):
        rows = list(range(i, min(i + batch, len(prompts))))
        x = torch.tensor([prompts[r] for r in rows])
        hist = [list(p) for p in x.tolist()]
        caches = [[] for _ in model.blocks]
        logits = model(x, 0, caches)[:, -1]
        pos, new = x.shape[1], []
        for step in range(n_new):
            if banned is not None:
                logits[:, banned] = float("-inf")
            if processor is not None:
                logits = processor(logits, hist)
            t = torch.multinomial(logits.softmax(-1), 1, generator=g)
            if forced is not None:
                f = forced(step, rows, hist)
                t = torch.where(f[:, None] >= 0, f[:, None], t)
            new.append(t)
            for r, v in enumerate(t[:, 0].tolist()):
                hist[r].append(v)
            logits = model(t, pos, caches)[:, -1]
            pos += 1
        out += torch.cat(new, 1).tolist()
    return out


class Processed(torch.nn.Module):
    """model(idx) -> logits with `full(idx, logits)` applied at every
    position (a served attack teacher-forced: its perplexity, its reading)."""

    def __init__(self, model, full):
        super().__init__()
        self.m, self.full, self.c = model, full, model.c

    def forward(self, idx, start=0, caches=None):
        return self.full(idx, self.m(idx, start, caches))


@torch.no_grad()
def stream_nll(model, stream, seq=128, max_windows=64):
    """Mean NLL over consecutive windows of a held-out token stream."""
    n = min((len(stream) - 1) // seq, max_windows)
    x = torch.from_numpy(np.asarray(stream[:n * seq + 1], dtype=np.int64))
    xs = torch.stack([x[k * seq:(k + 1) * seq + 1] for k in range(n)])
    tot = 0.0
    for i in range(0, n, 16):
        b = xs[i:i + 16]
        tot += F.cross_entropy(model(b[:, :-1]).reshape(-1, model.c.n_vocab), b[:, 1:].reshape(-1),
                               reduction="sum").item()
    return tot / (n * seq)


def quality(model, held, plain_prompts, plain_answers):
    """The cost to the student: perplexity on unseen plain verses (the last
    20,000 tokens of the students' half, `held`, out of every training) and on
    the teacher's plain answers (given their prompts)."""
    return dict(ppl_verses=math.exp(stream_nll(model, held)),
                ppl_teacher_plain=math.exp(answer_nll(model, plain_prompts, plain_answers)))
