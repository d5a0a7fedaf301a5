/* Reading mode: the suspect model's own predictions on the provider's
 * watermarked text, scored as (context seed, predicted token) tuples.
 * detect.h states the null and why these rules keep each tuple exact. */
#include "detect_internal.h"

#include <math.h>
#include <stdlib.h>

struct wm_reader {
    const wm_watermark *wm;
    wm__u64set seen;  /* (seed, prediction) fingerprints, corpus-wide;
                         weighted: a map to the tuple's index */
    wm__u64set seeds; /* the current document's context seeds so far */
    uint64_t tokens, positions;
    counts c;
    /* WM_READ_WEIGHTED: per distinct tuple, its summed weight and score */
    int weighted;
    double *w;
    unsigned char *green;
    size_t n, cap;
    /* WM_ACCOUNTS: distinct tuples per (position, part) cell (plain), or
     * each tuple's cell, summed with its weight at attribution (weighted) */
    int accounts;
    double tally[WM_ACCOUNT_POSITIONS][WM_ACCOUNT_SYMBOLS];
    uint16_t *cell;
    /* WM_CORPUS_MAP (cluster.h): each document deduplicated on its own, one
     * record per admitted prediction; merged: totals from wm_reader_merge */
    int map, merged, started, sink_bad;
    uint64_t docs;
    wm_corpus_record *rec;
    size_t n_rec, cap_rec;
};

wm_status wm_reader_new(wm_reader **out, const wm_watermark *wm, unsigned flags)
{
    if (!out || !wm || (flags & ~(WM_READ_WEIGHTED | WM_ACCOUNTS | WM_CORPUS_MAP)) ||
        ((flags & WM_READ_WEIGHTED) && (flags & WM_CORPUS_MAP)))
        return WM_ERR_ARG;
    *out = NULL;
    if ((flags & WM_READ_WEIGHTED) && !wm__has(wm->scheme, WM__CAP_BINARY)) return WM_ERR_UNSUPPORTED;
    if ((flags & WM_ACCOUNTS) && !wm->account) return WM_ERR_UNSUPPORTED;
    wm_reader *r = wm__calloc(1, sizeof *r);
    if (!r) return WM_ERR_NOMEM;
    wm_status st = flags & WM_READ_WEIGHTED ? wm__u64map_init(&r->seen, 0) : wm__u64set_init(&r->seen, 0);
    if (st || wm__u64set_init(&r->seeds, 0)) {
        wm__u64set_free(&r->seen);
        wm__free(r);
        return WM_ERR_NOMEM;
    }
    r->wm = wm;
    r->weighted = (flags & WM_READ_WEIGHTED) != 0;
    r->accounts = (flags & WM_ACCOUNTS) != 0;
    r->map = (flags & WM_CORPUS_MAP) != 0;
    *out = r;
    return WM_OK;
}

/* Scores land in the tuple's slot of r->green (pos is its index). */
static void green_visit(void *arg, double score, size_t i, uint64_t seed, wm_token tok)
{
    (void)seed, (void)tok;
    ((wm_reader *)arg)->green[i] = score != 0;
}

/* A map reader: the count, and the tuple's record (as the map corpus's). */
static void map_visit(void *arg, double score, size_t i, uint64_t seed, wm_token tok)
{
    wm_reader *r = arg;
    count_visit(&r->c, score, i, seed, tok);
    uint32_t cell = WM_CELL_NONE;
    if (r->accounts)
        cell = r->wm->account->pos(r->wm, seed) * WM_ACCOUNT_SYMBOLS + r->wm->account->part(r->wm, seed, tok);
    if (r->n_rec == r->cap_rec) {
        size_t cap = r->cap_rec ? r->cap_rec + r->cap_rec / 2 : 1024;
        wm_corpus_record *g = cap < SIZE_MAX / sizeof *g ? wm__realloc(r->rec, cap * sizeof *g) : NULL;
        if (!g) {
            r->sink_bad = 1;
            return;
        }
        r->rec = g;
        r->cap_rec = cap;
    }
    r->rec[r->n_rec++] = (wm_corpus_record){ .fp = wm__tuple_fp(seed, tok), .doc = r->docs, .score = score,
                                             .cell = cell };
}

static void flush(wm_reader *r, pending *b)
{
    if (r->weighted)
        pending_flush(r->wm, b, green_visit, r);
    else
        pending_flush(r->wm, b, r->map ? map_visit : count_visit, r->map ? (void *)r : (void *)&r->c);
}

/* Index of tuple fp in the weighted tables, added with weight 0 when new
 * (*fresh = 1); (size_t)-1 on allocation failure or past 2^32 tuples. */
static size_t tuple_index(wm_reader *r, uint64_t fp, int *fresh)
{
    size_t at;
    if (r->n == r->cap) {
        size_t cap = r->cap < 1024 ? 1024 : r->cap + r->cap / 2;
        if (cap > UINT32_MAX) return (size_t)-1;
        double *w = wm__realloc(r->w, cap * sizeof *w);
        if (w) r->w = w;
        unsigned char *g = w ? wm__realloc(r->green, cap) : NULL;
        if (g) r->green = g;
        uint16_t *c = g && r->accounts ? wm__realloc(r->cell, cap * sizeof *c) : NULL;
        if (c) r->cell = c;
        if (!g || (r->accounts && !c)) return (size_t)-1;
        r->cap = cap;
    }
    if ((*fresh = wm__u64set_insert_at(&r->seen, fp, &at)) < 0) return (size_t)-1;
    if (*fresh) {
        r->seen.val[at] = (uint32_t)r->n;
        r->w[r->n] = 0;
        return r->n++;
    }
    return r->seen.val[at];
}

/* The k predictions at one read position: each new (seed, prediction)
 * tuple is scored (weighted: each adds its weight to its tuple's); a
 * WM_TOKEN_NONE entry is no prediction.  The number of real entries, or -1
 * on allocation failure. */
static int read_row(wm_reader *r, pending *b, uint64_t seed, const wm_token *row, const float *wrow, size_t k,
                    size_t i)
{
    int got = 0;
    for (size_t j = 0; j < k; j++) {
        if (row[j] == WM_TOKEN_NONE) continue;
        got = 1;
        uint64_t fp = wm__tuple_fp(seed, row[j]);
        int ins;
        size_t at = i;
        if (wrow) {
            if ((at = tuple_index(r, fp, &ins)) == (size_t)-1) return -1;
            r->w[at] += wrow[j];
        } else if ((ins = wm__u64set_insert(&r->seen, fp)) < 0) {
            return -1;
        }
        if (!ins) continue;
        if (r->accounts) {
            unsigned pos = r->wm->account->pos(r->wm, seed), part = r->wm->account->part(r->wm, seed, row[j]);
            if (wrow) r->cell[at] = (uint16_t)(pos * WM_ACCOUNT_SYMBOLS + part);
            else r->tally[pos][part] += 1;
        }
        b->seed[b->n] = seed;
        b->tok[b->n] = row[j];
        b->pos[b->n++] = at;
        if (b->n == WM_SCORE_BATCH) flush(r, b);
    }
    return got;
}

/* Predictions: valid ids or WM_TOKEN_NONE. */
static wm_status check_preds(const wm_watermark *wm, const wm_token *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i] != WM_TOKEN_NONE && wm__check_tokens(wm, p + i, 1)) return WM_ERR_TOKEN;
    return WM_OK;
}

/* Weights must be finite: one infinity or NaN would make any sum meaningless. */
static wm_status check_weights(const float *w, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!isfinite(w[i])) return WM_ERR_ARG;
    return WM_OK;
}

wm_status wm_reader_add(wm_reader *r, const wm_token *t, size_t n, size_t n_prompt, const wm_token *preds,
                        const float *weights, size_t k)
{
    if (!r || k == 0 || (n && !preds) || n_prompt > n || n > SIZE_MAX / k ||
        (n && r->weighted != (weights != NULL)) || r->merged)
        return WM_ERR_ARG;
    if (r->sink_bad) return WM_ERR_NOMEM; /* a map reader never hands out a short list */
    wm_status st = wm__check_tokens(r->wm, t, n);
    if (st || (st = check_preds(r->wm, preds, n * k)) || (weights && (st = check_weights(weights, n * k))))
        return st;
    reset_doc_set(&r->seeds);
    if (r->map) reset_doc_set(&r->seen); /* each document deduplicated on its own */
    r->started = 1;
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
        int fresh = wm__u64set_insert(&r->seeds, wm__ctx_key(seed)), got = 0;
        if (fresh < 0 ||
            (fresh && i >= first &&
             (got = read_row(r, &b, seed, preds + i * k, weights ? weights + i * k : NULL, k, i)) < 0)) {
            st = WM_ERR_NOMEM;
            break;
        }
        r->positions += got > 0;
    }
    flush(r, &b); /* tuples already in the set are always scored */
    r->tokens += n;
    r->docs++;
    if (!st && r->sink_bad) st = WM_ERR_NOMEM;
    return st;
}

/* The weighted statistic: S = sum of w over green tuples, its z under the
 * Bernoulli(gamma) null, and the Chernoff bound as the p-value. */
static void weighted_score(const wm_reader *r, double alpha, wm_score *out)
{
    double g, v, s = 0, sw = 0, sw2 = 0;
    r->wm->scheme->moments(r->wm, &g, &v);
    for (size_t i = 0; i < r->n; i++) {
        s += r->green[i] ? r->w[i] : 0;
        sw += r->w[i];
        sw2 += r->w[i] * r->w[i];
    }
    out->size = sizeof *out;
    out->tokens = r->tokens;
    out->scored = r->n;
    out->statistic = s;
    out->z = sw2 > 0 ? (s - g * sw) / sqrt(v * sw2) : 0;
    out->log10_p = wm__wbinom_log_bound(r->w, r->n, s, g) / M_LN10;
    out->p_value = pow(10, out->log10_p);
    out->watermarked = out->log10_p < log10(alpha);
}

wm_status wm_reader_score(const wm_reader *r, double alpha, wm_score *out, uint64_t *positions)
{
    if (!r || !out || !WM__SIZED(out, wm_score) || !wm__valid_alpha(alpha) || r->map) return WM_ERR_ARG;
    if (!r->weighted && r->c.bad) return WM_ERR_LIMIT; /* no p-value from a wrong sum */
    if (r->weighted)
        weighted_score(r, alpha, out);
    else
        wm__fill_score(r->wm, out, r->tokens, r->c.scored, counts_stat(&r->c), alpha);
    if (positions) *positions = r->positions;
    return WM_OK;
}

wm_status wm_reader_attribute(const wm_reader *r, const uint64_t *accounts, size_t n, double alpha,
                              wm_account_score *top, size_t k, wm_attribution *out)
{
    if (!r || !wm__attribute_args(accounts, n, alpha, top, k, out) || !r->accounts || r->map) return WM_ERR_ARG;
    uint64_t tuples = r->weighted ? r->n : r->c.scored;
    if (n == 0) {
        memset(out, 0, sizeof *out);
        out->size = sizeof *out;
        out->tuples = tuples;
        return WM_OK;
    }
    double(*h)[WM_ACCOUNT_SYMBOLS] = wm__malloc(sizeof r->tally);
    if (!h) return WM_ERR_NOMEM;
    memcpy(h, r->tally, sizeof r->tally);
    for (size_t i = 0; r->weighted && i < r->n; i++) /* the weights as summed over the whole corpus */
        h[r->cell[i] / WM_ACCOUNT_SYMBOLS][r->cell[i] % WM_ACCOUNT_SYMBOLS] += r->w[i];
    wm_status st = wm__attribute(r->wm, (const double(*)[WM_ACCOUNT_SYMBOLS])h, accounts, n, alpha, top,
                                 k < n ? k : n, out);
    wm__free(h);
    out->tuples = tuples;
    return st;
}

void wm_reader_free(wm_reader *r)
{
    if (!r) return;
    wm__free(r->cell);
    wm__free(r->rec);
    wm__u64set_free(&r->seen);
    wm__u64set_free(&r->seeds);
    wm__free(r->w);
    wm__free(r->green);
    wm__free(r);
}

/* ---- on a cluster (cluster.h) ----------------------------------------------- */

wm_status wm_reader_set_next_doc(wm_reader *r, uint64_t doc)
{
    if (!r || !r->map) return WM_ERR_ARG;
    r->docs = doc;
    return WM_OK;
}

wm_status wm_reader_records(const wm_reader *r, const wm_corpus_record **records, size_t *n)
{
    if (!r || !records || !n || !r->map) return WM_ERR_ARG;
    *records = r->rec;
    *n = r->n_rec;
    return WM_OK;
}

wm_status wm_reader_records_clear(wm_reader *r)
{
    if (!r || !r->map) return WM_ERR_ARG;
    r->n_rec = 0;
    return WM_OK;
}

wm_status wm_reader_counts(const wm_reader *r, uint64_t *tokens, uint64_t *positions)
{
    if (!r || !tokens || !positions) return WM_ERR_ARG;
    *tokens = r->tokens;
    *positions = r->positions;
    return WM_OK;
}

wm_status wm_reader_merge(wm_reader *r, const wm_corpus_delta *d, size_t n, uint64_t tokens, uint64_t positions,
                          const uint64_t *tally)
{
    if (!r || (n && !d) || r->map || r->weighted || (r->started && !r->merged) || r->c.bad ||
        (!tally) != !r->accounts)
        return WM_ERR_ARG;
    /* everything checked before anything changes */
    uint64_t scored = 0, cells = 0;
    wm__u128 fx = r->c.fx;
    int bad = 0;
    for (size_t i = 0; i < n; i++) {
        if (scored + d[i].scored < scored) return WM_ERR_LIMIT;
        scored += d[i].scored;
        fixed_add(&fx, (wm__u128)d[i].stat_hi << 64 | d[i].stat_lo, &bad);
    }
    if (bad || r->c.scored + scored < scored || r->tokens + tokens < tokens || r->positions + positions < positions)
        return WM_ERR_LIMIT;
    if (tally) {
        for (size_t i = 0; i < WM_ACCOUNT_POSITIONS * WM_ACCOUNT_SYMBOLS; i++) {
            if (cells + tally[i] < cells) return WM_ERR_LIMIT;
            cells += tally[i];
        }
        if (cells != scored) return WM_ERR_ARG; /* every scored tuple has one cell */
    }
    r->started = r->merged = 1;
    r->c.scored += scored;
    r->c.fx = fx;
    r->tokens += tokens;
    r->positions += positions;
    if (tally)
        for (size_t i = 0; i < WM_ACCOUNT_POSITIONS * WM_ACCOUNT_SYMBOLS; i++)
            r->tally[i / WM_ACCOUNT_SYMBOLS][i % WM_ACCOUNT_SYMBOLS] += (double)tally[i];
    return WM_OK;
}
