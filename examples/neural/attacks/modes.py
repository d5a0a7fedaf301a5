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
