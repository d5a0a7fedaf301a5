/* Reading mode: the suspect model's own predictions on the provider's
 * watermarked text, scored as (context seed, predicted token) tuples.
 * detect.h states the null and why these rules keep each tuple exact. */
#include "detect_internal.h"

#include <stdlib.h>

struct wm_reader {
    const wm_watermark *wm;
    wm__u64set seen;  /* (seed, prediction) fingerprints, corpus-wide */
    wm__u64set seeds; /* the current document's context seeds so far */
    uint64_t tokens, positions;
    counts c;
};

wm_status wm_reader_new(wm_reader **out, const wm_watermark *wm, unsigned flags)
{
    if (!out || !wm || flags) return WM_ERR_ARG;
    *out = NULL;
    wm_reader *r = calloc(1, sizeof *r);
    if (!r) return WM_ERR_NOMEM;
    if (wm__u64set_init(&r->seen, 0) || wm__u64set_init(&r->seeds, 0)) {
        wm__u64set_free(&r->seen);
        free(r);
        return WM_ERR_NOMEM;
    }
    r->wm = wm;
    *out = r;
    return WM_OK;
}

/* The k predictions at one read position: each new (seed, prediction)
 * tuple is scored.  -1 on allocation failure. */
static int read_row(wm_reader *r, pending *b, uint64_t seed, const wm_token *row, size_t k, size_t i)
{
    for (size_t j = 0; j < k; j++) {
        int ins = wm__u64set_insert(&r->seen, wm__tuple_fp(seed, row[j]));
        if (ins < 0) return -1;
        if (!ins) continue;
        b->seed[b->n] = seed;
        b->tok[b->n] = row[j];
        b->pos[b->n++] = i;
        if (b->n == WM_SCORE_BATCH) pending_flush(r->wm, b, count_visit, &r->c);
    }
    return 0;
}

wm_status wm_reader_add(wm_reader *r, const wm_token *t, size_t n, size_t n_prompt, const wm_token *preds,
                        size_t k)
{
    if (!r || k == 0 || (n && !preds) || n_prompt > n || n > SIZE_MAX / k) return WM_ERR_ARG;
    wm_status st = wm__check_tokens(r->wm, t, n);
    if (st || (st = wm__check_tokens(r->wm, preds, n * k))) return st;
    if ((st = reset_doc_set(&r->seeds))) return st;
    const wm_watermark *wm = r->wm;
    /* the detection rule for which positions are answer positions */
    size_t first = n_prompt + (wm->h > 0 && n_prompt > 0);
    wm__scan sc;
    uint64_t seed;
    wm_token tok;
    pending b;
    b.n = 0;
    wm__scan_init_at(&sc, wm, t, n, wm->h);
    while (wm__scan_next(&sc, &seed, &tok)) {
        size_t i = sc.i - 1;
        /* the seed's first occurrence in the document: nothing before it
         * was drawn from, or tells of, this seed's green list */
        int fresh = wm__u64set_insert(&r->seeds, wm__ctx_key(seed));
        if (fresh < 0 || (fresh && i >= first && read_row(r, &b, seed, preds + i * k, k, i) < 0)) {
            st = WM_ERR_NOMEM;
            break;
        }
        r->positions += fresh && i >= first;
    }
    pending_flush(wm, &b, count_visit, &r->c); /* tuples already in the set are always counted */
    r->tokens += n;
    return st;
}

wm_status wm_reader_score(const wm_reader *r, double alpha, wm_score *out, uint64_t *positions)
{
    if (!r || !out || !wm__valid_alpha(alpha)) return WM_ERR_ARG;
    wm__fill_score(r->wm, out, r->tokens, r->c.scored, r->c.stat + r->c.comp, alpha);
    if (positions) *positions = r->positions;
    return WM_OK;
}

void wm_reader_free(wm_reader *r)
{
    if (!r) return;
    wm__u64set_free(&r->seen);
    wm__u64set_free(&r->seeds);
    free(r);
}
