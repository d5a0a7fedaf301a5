"""Byte-level BPE, trained here on the King James Bible, written as a
Hugging Face tokenizer.json (GPT-2's layout, so libwm's tokenizer and
llama.cpp's "gpt2" tokenizer both read it) and as GGUF tokenizer metadata.

Deterministic: merges are chosen by (count, pair), ties to the larger pair."""
import collections
import json
import re

# GPT-2's pre-tokenizer on ASCII text (the KJV is pure ASCII; checked by the caller)
PRETOK = re.compile(r"""'s|'t|'re|'ve|'m|'ll|'d| ?[A-Za-z]+| ?[0-9]+| ?[^\sA-Za-z0-9]+|\s+(?!\S)|\s+""")
EOS = "<|endoftext|>"


def byte_chars():
    """GPT-2's bytes_to_unicode: every byte as a printable character."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAD)) + list(range(0xAE, 0x100))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, map(chr, cs)))


def train(text, vocab_size):
    """Returns (tokens, merges): tokens[id] in byte-level characters, the
    256 bytes first, then one per merge, then EOS as the last id."""
    bc = byte_chars()
    counts = collections.Counter(PRETOK.findall(text))
    words = [[bc[b] for b in w.encode()] for w in counts]
    freq = list(counts.values())
    pairs = collections.Counter()
    where = collections.defaultdict(set)
    for i, w in enumerate(words):
        for p in zip(w, w[1:]):
            pairs[p] += freq[i]
            where[p].add(i)
    tokens = [bc[b] for b in range(256)]
    known = set(tokens)
    merges = []
    while len(tokens) < vocab_size - 1 and pairs:
        best = max(pairs.items(), key=lambda kv: (kv[1], kv[0]))[0]
        merges.append(best)
        new = best[0] + best[1]
        if new not in known:  # two merge paths can spell one token: one id
            known.add(new)
            tokens.append(new)
        for i in sorted(where.pop(best, ())):
            w = words[i]
            for p in zip(w, w[1:]):
                pairs[p] -= freq[i]
                if pairs[p] <= 0:
                    del pairs[p]
            out, j = [], 0
            while j < len(w):
                if j + 1 < len(w) and (w[j], w[j + 1]) == best:
                    out.append(new)
                    j += 2
                else:
                    out.append(w[j])
                    j += 1
            words[i] = out
            for p in zip(out, out[1:]):
                pairs[p] += freq[i]
                where[p].add(i)
    tokens.append(EOS)
    return tokens, [f"{a} {b}" for a, b in merges]


def tokenizer_json(tokens, merges):
    bl = {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True}
    return {
        "version": "1.0", "truncation": None, "padding": None,
        "added_tokens": [{"id": len(tokens) - 1, "content": EOS, "single_word": False, "lstrip": False,
                          "rstrip": False, "normalized": True, "special": True}],
        "normalizer": None, "pre_tokenizer": bl, "post_processor": bl, "decoder": bl,
        "model": {"type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": "",
                  "end_of_word_suffix": "", "fuse_unk": False, "byte_fallback": False,
                  "vocab": {t: i for i, t in enumerate(tokens)}, "merges": merges},
    }


class Codec:
    """Encoder/decoder for a trained vocabulary (encoding: greedy by merge rank, as BPE does)."""

    def __init__(self, tokens, merges):
        self.tokens = tokens
        self.ids = {t: i for i, t in enumerate(tokens)}
        self.rank = {tuple(m.split(" ")): r for r, m in enumerate(merges)}
        self.bc = byte_chars()
        self.cb = {c: b for b, c in self.bc.items()}
        self.cache = {}

    def _word(self, w):
        if w in self.cache:
            return self.cache[w]
        s = [self.bc[b] for b in w.encode()]
        while len(s) > 1:
            r, j = min((self.rank.get(p, 1 << 30), j) for j, p in enumerate(zip(s, s[1:])))
            if r == 1 << 30:
                break
            s[j:j + 2] = [s[j] + s[j + 1]]
        ids = [self.ids[t] for t in s]
        self.cache[w] = ids
        return ids

    def encode(self, text):
        return [i for w in PRETOK.findall(text) for i in self._word(w)]

    def decode(self, ids):
        eos = len(self.tokens) - 1
        return bytes(self.cb[c] for i in ids if i != eos for c in self.tokens[i]).decode("utf-8", "replace")


def save(path, tokens, merges):
    with open(path, "w") as f:
        json.dump(tokenizer_json(tokens, merges), f, ensure_ascii=False)


def load(path):
    m = json.load(open(path))["model"]
    tokens = sorted(m["vocab"], key=m["vocab"].get)  # EOS included, last
    return tokens, m["merges"]
