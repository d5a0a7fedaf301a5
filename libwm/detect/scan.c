/* The walk over a document's scored tuples: prompt rule, the scheme's
 * seed-once rule, dedup, filter, and the scheme's scores 16 tuples at a time
 * (SIMD across tuples). */
#include "detect_internal.h"

#include <math.h>
#include <stdlib.h>

void pending_flush(const wm_watermark *wm, pending *pd, visit_fn visit, void *arg)
{
    double score[WM_SCORE_BATCH];
    if (pd->n) wm->scheme->score_many(wm, pd->seed, pd->tok, pd->n, score);
    for (size_t i = 0; i < pd->n; i++) visit(arg, score[i], pd->pos[i], pd->seed[i], pd->tok[i]);
    pd->n = 0;
}

/* Fingerprints of the prompt's own tuples (full context inside the prompt)
 * into `set`: an answer that repeats them (quoting, copying, summarising a
 * watermarked prompt) must not be scored on them, or any model that copies
 * provider text would be attributed to the provider. */
static wm_status add_prompt_tuples(const wm_watermark *wm, const wm_token *t, size_t n_prompt,
                                   wm__u64set *set)
{
    wm__scan sc;
    uint64_t seed;
    wm_token tok;
    wm__scan_init(&sc, wm, t, n_prompt, 0);
    while (wm__scan_next(&sc, &seed, &tok))
        if (wm__u64set_insert(set, wm__tuple_fp(seed, tok)) < 0) return WM_ERR_NOMEM;
    return WM_OK;
}

/* Should the tuple (seed, tok) be scored?  1 yes, 0 no, -1 no memory. */
static int admit(unsigned flags, const scan_sets *ss, int check_prompt, uint64_t seed, wm_token tok)
{
    if (ss->seeds) { /* a seed's first position in the document only */
        int r = wm__u64set_insert(ss->seeds, wm__ctx_key(seed));
        if (r <= 0) return r;
    }
    if (ss->filter && !wm__u64set_contains(ss->filter, wm__ctx_key(seed))) return 0;
    uint64_t fp = wm__tuple_fp(seed, tok);
    if (check_prompt && wm__u64set_contains(ss->prompt, fp)) return 0;
    if (flags & WM_NO_DEDUP) return 1;
    return wm__u64set_insert(ss->seen, fp);
}

wm_status scan_doc_at(const wm_watermark *wm, const wm_token *t, size_t n, size_t n_prompt, size_t from,
                      unsigned flags, const scan_sets *ss, visit_fn visit, void *arg)
{
    wm__scan sc;
    uint64_t seed;
    wm_token tok;
    pending pd;
    pd.n = 0;
    wm_status st = add_prompt_tuples(wm, t, n_prompt < n ? n_prompt : n, ss->prompt);
    if (st) return st;
    const int check_prompt = ss->prompt != ss->seen && ss->prompt->len > 0;
    if (from) wm__scan_init_at(&sc, wm, t, n, from);
    else wm__scan_init(&sc, wm, t, n, n_prompt);
    while (wm__scan_next(&sc, &seed, &tok)) {
        int r = admit(flags, ss, check_prompt, seed, tok);
        if (r < 0) {
            st = WM_ERR_NOMEM;
            break;
        }
        if (r == 0) continue;
        pd.seed[pd.n] = seed;
        pd.tok[pd.n] = tok;
        pd.pos[pd.n++] = sc.i - 1;
        if (pd.n == WM_SCORE_BATCH) pending_flush(wm, &pd, visit, arg);
    }
    pending_flush(wm, &pd, visit, arg); /* tuples already in the set are always counted */
    return st;
}

void reset_doc_set(wm__u64set *s)
{
    /* A table grown past 64 Ki slots by one huge document is swapped for a
     * small one, so that memory follows the current document.  The small one
     * is taken before the big one is let go: when it cannot be had, the big
     * table is emptied instead, which is the same empty set, only larger.
     * (Freeing first left a set with no table after a failed allocation, and
     * the next document's first insert wrote into a zero-size block.) */
    if (s->cap > (1u << 16)) {
        wm__u64set fresh;
        if (wm__u64set_init(&fresh, 0) == WM_OK) {
            wm__u64set_free(s);
            *s = fresh;
            return;
        }
    }
    wm__u64set_clear(s);
}

void no_dedup_verdict(unsigned flags, wm_score *s)
{
    if (flags & WM_NO_DEDUP) s->watermarked = 0;
}

wm_status doc_sets_init(doc_sets *d, const wm_watermark *wm, unsigned flags, size_t n, size_t n_prompt)
{
    memset(d, 0, sizeof *d);
    /* Sized for at most 64 Ki tuples and grown on demand: a long, repetitive
     * document has far fewer unique tuples than tokens (88 M tokens, 0.8 M
     * tuples in one 150 MB file), and a table sized by tokens would be
     * touched all over by the hashing. */
    size_t cap = (size_t)1 << 16;
    wm_status st = WM_OK;
    if (wm__has(wm->scheme, WM__CAP_SEED_ONCE)) {
        if ((st = wm__u64set_init(&d->seeds, n < cap ? n : cap))) return st;
        d->sets.seeds = &d->seeds;
    }
    if (flags & WM_NO_DEDUP) {
        st = wm__u64set_init(&d->prompt, n_prompt < cap ? n_prompt : cap);
        d->sets.prompt = &d->prompt;
    } else {
        st = wm__u64set_init(&d->seen, n < cap ? n : cap);
        d->sets.prompt = &d->seen;
    }
    d->sets.seen = &d->seen;
    return st;
}

void doc_sets_free(doc_sets *d)
{
    wm__u64set_free(&d->seen);
    wm__u64set_free(&d->prompt);
    wm__u64set_free(&d->seeds);
}

int wm__fixed_of(double score, wm__u128 *out)
{
    double x = ldexp(score, WM__FIXED_FRAC); /* exact: a power of two, far from overflow */
    if (!(x >= 0 && x < 0x1p89) || x != floor(x)) return -1;
    /* x < 2^89: its top 64 bits and the rest are each exact doubles */
    double hi = floor(ldexp(x, -64));
    *out = ((wm__u128)(uint64_t)hi << 64) | (uint64_t)(x - ldexp(hi, 64));
    return 0;
}

double wm__fixed_double(wm__u128 x)
{
    if (x >> 53 == 0) return ldexp((double)(uint64_t)x, -WM__FIXED_FRAC); /* exact */
    int top = 127;
    while (!(x >> top & 1)) top--;
    int drop = top - 52; /* bits below the 53 kept */
    uint64_t m = (uint64_t)(x >> drop);
    wm__u128 rest = x & (((wm__u128)1 << drop) - 1), half = (wm__u128)1 << (drop - 1);
    if (rest > half || (rest == half && (m & 1))) m++; /* to nearest, ties to even; 2^53 stays exact */
    return ldexp((double)m, drop - WM__FIXED_FRAC);
}

/* The exact sum (detect_internal.h): a corpus adds up billions of scores,
 * and a cluster adds them in any order. */
void count_visit(void *arg, double score, size_t i, uint64_t seed, wm_token tok)
{
    (void)i, (void)seed, (void)tok;
    counts *c = arg;
    wm__u128 f;
    if (wm__fixed_of(score, &f)) c->bad = 1;
    else fixed_add(&c->fx, f, &c->bad);
    c->scored++;
}
