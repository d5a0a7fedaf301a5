"""Watermark neutralization (WN), Pan et al., ACL 2025, "Can LLM Watermarks
Robustly Prevent Unauthorized Knowledge Distillation?", as their released
code does it (THU-BPM/Watermark-Radioactivity-Attack at commit
cfeb123c8f3613626f83012522eb00147ac71cab):

  utils/analyze_prefix_frequency.py  prefix frequency f = count / all
      prefixes, over each answer's tokens without its last one, n = 1, 2;
  watermark_stealing/calculate_d_n.py  for each prefix with f > 5e-5: its
      contexts (answer tokens up to and including an occurrence of the
      prefix, at most 200 tokens, at most 1000 of them drawn at random), the
      student's next-token distribution averaged over them before and after
      fine-tuning, the top 50 tokens of the "after" average, and for those
      whose probability rose d = 0.5 min(after / before, 2);
  watermark_stealing/calculate_d_0.py  n = 0: the same averaged over every
      position of every answer (first 200 tokens), every token with
      after > before: d = 0.5 min(2, after / before) (1 where before = 0);
  watermark_stealing/calculate_w.py  weight 1 / (log f / log f_max)^0.3,
      f_max the largest frequency among the kept prefixes of that n;
  lm_eval/watermark/reverse_watermark/reverse_watermark.py  at inference
      logits -= delta' d_0 (every step), and -= delta' w d_n for the last
      n tokens' prefix, n = 1, 2 (delta' = 2.5 in their config).

Demo scale: the contexts are run through our GPT once per answer (a causal
model's output at position j is that of the context truncated at j, so this
equals their per-context forward passes).  Their released inference looks
n = 2 prefixes up as str(tuple([[a, b]])), which never matches the
"(a, b)" keys calculate_d_n writes, so their published numbers come from
n = 0 and 1 only; `parts` selects (default 0, 1, 2: the method as the paper
states it; "0,1" reproduces the released code's behaviour).

What can be baked into released weights: only n = 0 (a context-free
vector, an output bias on the logits: here `Processed` with that bias,
equal to a head bias).  n = 1 and n = 2 depend on the input tokens and are
not a function of the final hidden state alone, so the gpt2 layout cannot
hold them without a new lookup-table layer (a |V| x |V| input-token-to-logit
table for n = 1); a distiller releasing weights in a standard layout can
only bake n = 0, or fine-tune the student on its own neutralized outputs
(not done here)."""
import numpy as np
import torch

FREQ_THRESHOLD = 5e-5
TOP_K = 50
MAX_CONTEXTS = 1000
MAX_LEN = 200
ALPHA = 0.3


def prefix_freq(answers, n):
    """analyze_prefix_frequency.py: {prefix tuple: frequency} over each
    answer without its last token."""
    c = {}
    for a in answers:
        e = a[:-1]
        for i in range(len(e) - n + 1):
            t = tuple(e[i:i + n])
            c[t] = c.get(t, 0) + 1
    tot = sum(c.values())
    return {k: v / tot for k, v in c.items()}


@torch.no_grad()
def _probs(model, answers):
    """Softmax at every position of every answer (first MAX_LEN tokens), one pass per answer batch."""
    out = []
    for i in range(0, len(answers), 32):
        part = [a[:MAX_LEN] for a in answers[i:i + 32]]
        w = max(len(a) for a in part)
        x = torch.zeros((len(part), w), dtype=torch.long)
        for r, a in enumerate(part):
            x[r, :len(a)] = torch.tensor(a)
        p = model(x).softmax(-1)
        out += [p[r, :len(a)] for r, a in enumerate(part)]
    return out


def fit(before, after, answers, parts=(0, 1, 2), seed=0):
    """The neutralization tables from the student before and after
    fine-tuning and the harvested answers (id lists, the distiller's whole
    fine-tuning set): dict with d0 (a V-vector), and for n in 1, 2 a dict
    {prefix: (token ids, d values, weight)}."""
    pb, pa = _probs(before, answers), _probs(after, answers)
    V = pb[0].shape[-1]
    T = {"parts": tuple(parts), "n_prefixes": {}}
    if 0 in parts:  # calculate_d_0.py
        sb = sum(p.sum(0) for p in pb) / sum(len(p) for p in pb)
        sa = sum(p.sum(0) for p in pa) / sum(len(p) for p in pa)
        d0 = torch.where(sb > 0, 0.5 * torch.clamp(sa / sb, max=2.0), torch.ones(V))
        T["d0"] = torch.where(sa > sb, d0, torch.zeros(V))
    rng = np.random.default_rng(seed)
    for n in (1, 2):
        if n not in parts:
            continue
        f = {k: v for k, v in prefix_freq(answers, n).items() if v > FREQ_THRESHOLD}
        if not f:
            T[n] = {}
            continue
        fmax = max(f.values())
        occ = {k: [] for k in f}  # (answer, position of the prefix's last token), within MAX_LEN tokens
        for ai, a in enumerate(answers):
            for i in range(len(a) - n + 1):
                t = tuple(a[i:i + n])
                if t in occ and i + n <= MAX_LEN:
                    occ[t].append((ai, i + n - 1))
        tab = {}
        for k, where in occ.items():
            if not where:
                continue
            if len(where) > MAX_CONTEXTS:
                where = [where[j] for j in rng.permutation(len(where))[:MAX_CONTEXTS]]
            b = torch.stack([pb[ai][j] for ai, j in where]).mean(0)
            af = torch.stack([pa[ai][j] for ai, j in where]).mean(0)
            top_v, top_i = torch.topk(af, TOP_K)
            up = top_v > b[top_i]
            ids, r = top_i[up], top_v[up] / b[top_i][up]
            w = 1.0 / (np.log(f[k]) / np.log(fmax)) ** ALPHA  # calculate_w.py
            tab[k] = (ids, 0.5 * torch.clamp(r, max=2.0), float(w))
        T[n] = tab
        T["n_prefixes"][n] = len(tab)
    return T


def bias_row(T, hist, V):
    """The subtraction (before delta') after history `hist` (id list)."""
    b = T["d0"].clone() if "d0" in T else torch.zeros(V)
    for n in (1, 2):
        if n in T and len(hist) >= n:
            e = T[n].get(tuple(hist[-n:]))
            if e is not None:
                ids, d, w = e
                b[ids] += d * w
    return b


def processor(T, delta):
    """The served attack: logits -= delta' (d0 + w1 d1 + w2 d2) at each step."""
    def proc(logits, hist):
        V = logits.shape[-1]
        return logits - delta * torch.stack([bias_row(T, h, V) for h in hist])
    return proc


def full(T, delta, parts=None):
    """The same on teacher-forced logits [B, L, V] (for perplexity and reading);
    parts=(0,) gives the bakeable part only."""
    use = dict(T)
    if parts is not None:
        use = {k: v for k, v in T.items() if k not in (1, 2, "d0") or k in parts or (k == "d0" and 0 in parts)}

    def f(idx, logits):
        B, L, V = logits.shape
        out = logits.clone()
        rows = idx.tolist()
        for bi in range(B):
            for j in range(L):
                out[bi, j] -= delta * bias_row(use, rows[bi][:j + 1], V)
        return out
    return f
