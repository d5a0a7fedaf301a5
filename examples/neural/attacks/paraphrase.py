"""Untargeted paraphrase of the harvest (issue 26, 1a; Pan et al. section
on paraphrasing the training data): the distiller's own model, its
pretrained student base, regenerates a share of each harvested answer's
tokens from its plain distribution.  Position by position, with
probability `share` (a fixed-seed coin per position, independent of the
text) the token is drawn from the base given the answer so far (itself
partly rewritten); otherwise the harvested token is kept.  No knowledge of
the watermark is used (the targeted one is stealing.scrub)."""
import numpy as np
import torch

from attacks.common import sample


def paraphrase(base, prompts, answers, share, seed, banned=None):
    """Returns (new answers, share of tokens actually changed)."""
    L = max(len(a) for a in answers)
    ans = [a + [0] * (L - len(a)) for a in answers]
    coin = np.random.default_rng(seed).random((len(answers), L)) < share

    def forced(step, rows, hist):
        return torch.tensor([-1 if coin[r, step] else ans[r][step] for r in rows], dtype=torch.long)

    out = sample(base, prompts, L, seed=seed + 1, forced=forced, banned=banned)
    out = [o[:len(a)] for o, a in zip(out, answers)]
    changed = sum(x != y for o, a in zip(out, answers) for x, y in zip(o, a))
    return out, changed / max(sum(len(a) for a in answers), 1)
