/* The walk over a document's scored tuples: prompt rule, dedup, filter,
 * membership 16 tuples at a time (SIMD across tuples). */
#include "detect_internal.h"

#include <stdlib.h>

/* Tuples waiting for their membership, computed WM_GREEN_BATCH at a time
 * (SIMD across tuples); visits happen in text order. */
typedef struct pending {
    uint64_t seed[WM_GREEN_BATCH];
    wm_token tok[WM_GREEN_BATCH];
    size_t pos[WM_GREEN_BATCH];
    size_t n;
} pending;

static void flush(const wm_watermark *wm, pending *pd, visit_fn visit, void *arg)
{
    unsigned char green[WM_GREEN_BATCH];
    wm__green_many(wm, pd->seed, pd->tok, pd->n, green);
    for (size_t i = 0; i < pd->n; i++) visit(arg, green[i], pd->pos[i]);
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

/* `seen`: the dedup set (unused with WM_NO_DEDUP).  `prompt`: where the
 * prompt's tuples go, `seen` itself when deduplicating one document. */
wm_status scan_doc(const wm_watermark *wm, const wm_token *t, size_t n, size_t n_prompt,
                          unsigned flags, wm__u64set *seen, wm__u64set *prompt,
                          const wm__u64set *filter, visit_fn visit, void *arg)
{
    return scan_doc_at(wm, t, n, n_prompt, 0, flags, seen, prompt, filter, visit, arg);
}

/* from > 0: t[0..from) is the tail of an earlier part of the same
 * document, context only (no prompt then). */
wm_status scan_doc_at(const wm_watermark *wm, const wm_token *t, size_t n, size_t n_prompt, size_t from,
                             unsigned flags, wm__u64set *seen, wm__u64set *prompt, const wm__u64set *filter,
                             visit_fn visit, void *arg)
{
    wm__scan sc;
    uint64_t seed;
    wm_token tok;
    pending pd;
    pd.n = 0;
    wm_status st = add_prompt_tuples(wm, t, n_prompt < n ? n_prompt : n, prompt);
    if (st) return st;
    const int check_prompt = prompt != seen && prompt->len > 0;
    if (from) wm__scan_init_at(&sc, wm, t, n, from);
    else wm__scan_init(&sc, wm, t, n, n_prompt);
    while (wm__scan_next(&sc, &seed, &tok)) {
        if (filter && !wm__u64set_contains(filter, wm__ctx_key(seed))) continue;
        uint64_t fp = wm__tuple_fp(seed, tok);
        if (check_prompt && wm__u64set_contains(prompt, fp)) continue;
        if (!(flags & WM_NO_DEDUP)) {
            int r = wm__u64set_insert(seen, fp);
            if (r < 0) {
                st = WM_ERR_NOMEM;
                break;
            }
            if (r == 0) continue;
        }
        pd.seed[pd.n] = seed;
        pd.tok[pd.n] = tok;
        pd.pos[pd.n++] = sc.i - 1;
        if (pd.n == WM_GREEN_BATCH) flush(wm, &pd, visit, arg);
    }
    flush(wm, &pd, visit, arg); /* tuples already in the set are always counted */
    return st;
}

void no_dedup_verdict(unsigned flags, wm_score *s)
{
    if (flags & WM_NO_DEDUP) s->watermarked = 0;
}


wm_status doc_sets_init(doc_sets *d, unsigned flags, size_t n, size_t n_prompt)
{
    memset(d, 0, sizeof *d);
    /* Sized for at most 64 Ki tuples and grown on demand: a long, repetitive
     * document has far fewer unique tuples than tokens (88 M tokens, 0.8 M
     * tuples in one 150 MB file), and a table sized by tokens would be
     * touched all over by the hashing. */
    size_t cap = (size_t)1 << 16;
    if (flags & WM_NO_DEDUP) return wm__u64set_init(&d->prompt, n_prompt < cap ? n_prompt : cap);
    return wm__u64set_init(&d->seen, n < cap ? n : cap);
}

wm__u64set *doc_sets_prompt(doc_sets *d, unsigned flags)
{
    return flags & WM_NO_DEDUP ? &d->prompt : &d->seen;
}

void doc_sets_free(doc_sets *d)
{
    wm__u64set_free(&d->seen);
    wm__u64set_free(&d->prompt);
}

void count_visit(void *arg, int green, size_t i)
{
    (void)i;
    counts *c = arg;
    c->scored++;
    c->green += (uint64_t)green;
}
