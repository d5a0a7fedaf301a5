"""Detection modes designed against a distiller who fights back (issue 26),
on top of libwm's own corpus scoring (libwm.Corpus: the deduplicated
(context, token) tuples, the provider's filter, the quantised gamma).

Each mode states its null and is checked exact by tests/test_attack_modes.py
(brute force on small cases, false-positive rate over 10,000 null documents).

two_sided(N, k, gamma)
    H0: the suspect was produced without the key, so its N distinct scored
    tuples are N independent Bernoulli(gamma) green bits (detect.h's model),
    K ~ Binomial(N, gamma).  An over-corrected neutralization shows as a
    green deficit, as improbable under H0 as an excess.  Combined p-value:
        p = min(1, 2 min(P[K >= k], P[K <= k])).
    Valid (P(p <= a) <= a for every a): p <= a needs one of the one-sided
    p-values <= a/2, each of which has probability <= a/2 (union bound).
    Conservative by at most a factor 2 against the better one-sided test.

rare contexts (rare_filter)
    Score only tuples whose context is rare in a reference set of texts
    fixed before the suspect is scored: contexts seen at most `max_count`
    times as a prefix.  Two references:
      * the provider's own unwatermarked answers to the harvest prompts
        ("plain"): the selection is a function of text produced without the
        key, so under H0 it is independent of the key and of the suspect,
        and the selected tuples are still N independent Bernoulli(gamma)
        bits: exact, as the plain corpus test;
      * the harvest itself ("harvest"), what the attacker estimates from:
        the selection depends on the key only through the harvest's context
        counts, never on a green bit of a suspect tuple; it is libwm's
        --filter with a smaller set, and exact in the same sense --filter is
        (detect.h's model, contexts chosen from the provider's outputs).
    Why: the attacker's estimate of a context's green list (stealing, WN's
    prefixes with frequency > 5e-5) needs that context many times in its
    harvest; a rare context's list cannot be estimated, so neutralization
    cannot reach the student's behaviour there.
"""
import math

import numpy as np


def _logsumexp(v):
    m = max(v)
    if m == -math.inf:
        return -math.inf
    return m + math.log(sum(math.exp(x - m) for x in v))


def log_pmf(n, k, g):
    return math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1) + k * math.log(g) + (n - k) * math.log1p(-g)


def log_upper(n, k, g):
    """ln P[K >= k], K ~ Binomial(n, g)."""
    if k <= 0:
        return 0.0
    if k > n:
        return -math.inf
    return min(0.0, _logsumexp([log_pmf(n, j, g) for j in range(k, n + 1)]))


def log_lower(n, k, g):
    """ln P[K <= k]."""
    if k >= n:
        return 0.0
    if k < 0:
        return -math.inf
    return min(0.0, _logsumexp([log_pmf(n, j, g) for j in range(0, k + 1)]))


def two_sided(n, k, g):
    """The two-sided p-value (module docstring): dict with log10 p, the side
    that is extreme, and both one-sided log10 p-values."""
    lu, ll = log_upper(n, k, g), log_lower(n, k, g)
    lp = min(0.0, math.log(2) + min(lu, ll))
    return dict(scored=n, green=k, log10_p=lp / math.log(10), p_value=math.exp(lp),
                side="excess" if lu <= ll else "deficit",
                log10_p_excess=lu / math.log(10), log10_p_deficit=ll / math.log(10))


def prefix_counts(docs, h):
    """Counts of each h-token context as a prefix (followed by a token) in
    docs (lists of ids): what WN's and stealing's frequency thresholds see."""
    c = {}
    for d in docs:
        for i in range(h, len(d)):
            t = tuple(d[i - h:i])
            c[t] = c.get(t, 0) + 1
    return c


def rare_filter(watermark, reference_docs, vocab_contexts, max_count):
    """A libwm.ContextSet of the contexts in `vocab_contexts` (h-tuples)
    seen at most max_count times as a prefix in reference_docs (0: never
    seen).  Each context goes in as the document context + (0,), whose only
    scanned tuple has that context."""
    import libwm
    h = watermark.context_width
    cnt = prefix_counts(reference_docs, h)
    keep = [c for c in vocab_contexts if cnt.get(tuple(c), 0) <= max_count]
    cs = libwm.ContextSet(watermark)
    for c in keep:
        keep_alive, ptr, n = libwm._tokens(list(c) + [0])
        libwm._check(libwm._lib.wm_ctxset_add(cs._h, ptr, n))
    return cs, len(keep)


def corpus_score(watermark, docs, filter_set=None):
    """libwm's corpus test over docs [(ids, n_prompt)], optionally restricted
    to a ContextSet: dict with scored (N), green (k), log10_p (one-sided,
    libwm's exact binomial tail) and the two-sided p on the same N, k."""
    import libwm
    c = libwm.Corpus(watermark)
    if filter_set is not None:
        libwm._check(libwm._lib.wm_corpus_set_filter(c._h, filter_set._h))
        c._filter = filter_set
    for ids, n_prompt in docs:
        c.add(ids, n_prompt)
    s = c.score()
    g = watermark.params["gamma"]
    t = two_sided(s["scored"], s["green"], g) if s["scored"] else dict(log10_p=0.0, side="-")
    return dict(scored=s["scored"], green=s["green"], green_fraction=s.get("green_fraction", 0.0),
                log10_p=s["log10_p"], two_sided_log10_p=t["log10_p"], two_sided_side=t["side"])


def contexts_of(docs, h):
    """Every h-token context present in docs (for building filters)."""
    return sorted(prefix_counts(docs, h))


def cross_read(watermark, docs, t1_pieces, t1_id, h=None):
    """Open-weight reading across tokenizers (TextSeal's
    `_cross_tokenizer_detection`, facebookresearch/textseal
    apps/wmtraining/eval_wm.py at dcacc3fc): the provider's watermarked text
    is read by a student with its own tokenizer T2.  docs: list of dicts
    with ids1 (the text in the provider's tokenizer T1), n_prompt1, and
    t2: a list of (end character offset of a T2 token, the student's top-1
    prediction after it, decoded to a string).  A T2 position is kept where
    its end is also the end of a T1 token j (shared character boundary) and
    its prediction is exactly one T1 token (t1_id: string -> id); it is then
    read as T1 position j + 1 (inside the document, as wm_reader reads)
    with T1 context ids1[j-h+1..j] and that target.  The rules of detect.h's reading mode apply on the T1 side: an
    answer position (j + 1 >= n_prompt1, and > n_prompt1 with a prompt and
    h >= 1), only where its context seed occurs for the first time in the
    document (prompt included), and (seed, target) deduplicated over the
    corpus.  H0 (detect.h's reading null): the student's weights are
    independent of the key; the prediction is a function of the characters
    before the boundary, i.e. of T1 tokens 0..j, before which the seed was
    never followed by a token drawn under it, so each read tuple is green
    with probability gamma given the text so far: K ~ Binomial(N, gamma).
    Returns dict with scored N, green K, one-sided and two-sided log10 p,
    and the share of T2 positions aligned and kept."""
    h = watermark.context_width if h is None else h
    g = watermark.params["gamma"]
    seen, n_t2, n_aligned, n_single, green = set(), 0, 0, 0, 0
    for d in docs:
        ids, npr = d["ids1"], d["n_prompt1"]
        ends, pos = {}, 0
        for j, t in enumerate(ids):
            pos += len(t1_pieces[t])
            ends[pos] = j
        first = {}
        for p in range(h, len(ids)):  # the first position each context seed appears at
            s = watermark.seed(ids[p - h:p])
            first.setdefault(s, p)
        for end, pred in d["t2"]:
            n_t2 += 1
            j = ends.get(end)
            if j is None:
                continue
            n_aligned += 1
            t = t1_id.get(pred)
            p = j + 1
            if t is None or p < h or p >= len(ids) or p < npr or (npr and h >= 1 and p == npr):
                continue
            s = watermark.seed(ids[p - h:p])
            if first.get(s) != p or (s, t) in seen:
                continue
            n_single += 1
            seen.add((s, t))
            green += watermark.is_green(ids[p - h:p], t)
    N = len(seen)
    ts = two_sided(N, green, g) if N else dict(log10_p=0.0, side="-")
    return dict(scored=N, green=green, log10_p=log_upper(N, green, g) / math.log(10) if N else 0.0,
                two_sided_log10_p=ts["log10_p"], t2_positions=n_t2, aligned=n_aligned / max(n_t2, 1),
                kept=N / max(n_t2, 1))
