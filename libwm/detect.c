/* Detection: per text, best window, whole corpus. */
#include "internal.h"

#include <math.h>
#include <stdlib.h>

static double gamma_of(const wm_watermark *wm) { return (double)wm->gamma_k / WM_GAMMA_ONE; }

static int valid_alpha(double alpha) { return alpha > 0 && alpha < 1; }

static uint64_t ctx_key(uint64_t seed)
{
    uint64_t k = wm__mix64(seed + 0x9e3779b97f4a7c15ULL);
    return k ? k : 1;
}

/* Calls visit(arg, green, token index) for every scored tuple (first
 * occurrences only unless WM_NO_DEDUP).  Returns WM_ERR_NOMEM or WM_OK. */
typedef void (*visit_fn)(void *arg, int green, size_t i);

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
static wm_status scan_doc_at(const wm_watermark *wm, const wm_token *t, size_t n, size_t n_prompt, size_t from,
                             unsigned flags, wm__u64set *seen, wm__u64set *prompt, const wm__u64set *filter,
                             visit_fn visit, void *arg);

static wm_status scan_doc(const wm_watermark *wm, const wm_token *t, size_t n, size_t n_prompt,
                          unsigned flags, wm__u64set *seen, wm__u64set *prompt,
                          const wm__u64set *filter, visit_fn visit, void *arg)
{
    return scan_doc_at(wm, t, n, n_prompt, 0, flags, seen, prompt, filter, visit, arg);
}

/* from > 0: t[0..from) is the tail of an earlier part of the same
 * document, context only (no prompt then). */
static wm_status scan_doc_at(const wm_watermark *wm, const wm_token *t, size_t n, size_t n_prompt, size_t from,
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
        if (filter && !wm__u64set_contains(filter, ctx_key(seed))) continue;
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

/* Without dedup the p-value is not valid, so there is no verdict. */
static void no_dedup_verdict(unsigned flags, wm_score *s)
{
    if (flags & WM_NO_DEDUP) s->watermarked = 0;
}

/* Both per-document sets: one when deduplicating (prompt tuples then count
 * as already seen), two without. */
typedef struct doc_sets { wm__u64set seen, prompt; } doc_sets;

static wm_status doc_sets_init(doc_sets *d, unsigned flags, size_t n, size_t n_prompt)
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

static wm__u64set *doc_sets_prompt(doc_sets *d, unsigned flags)
{
    return flags & WM_NO_DEDUP ? &d->prompt : &d->seen;
}

static void doc_sets_free(doc_sets *d)
{
    wm__u64set_free(&d->seen);
    wm__u64set_free(&d->prompt);
}

typedef struct counts { uint64_t scored, green; } counts;

static void count_visit(void *arg, int green, size_t i)
{
    (void)i;
    counts *c = arg;
    c->scored++;
    c->green += (uint64_t)green;
}

static wm_status check_detect_args(const wm_watermark *wm, const wm_token *t, size_t n,
                                   unsigned flags, double alpha, const void *out)
{
    if (!wm || !out || !valid_alpha(alpha) || (flags & ~WM_NO_DEDUP)) return WM_ERR_ARG;
    return wm__check_tokens(wm, t, n);
}

wm_status wm_detect(const wm_watermark *wm, const wm_token *tokens, size_t n, size_t n_prompt,
                    unsigned flags, double alpha, wm_score *out)
{
    wm_status st = check_detect_args(wm, tokens, n, flags, alpha, out);
    if (st) return st;
    doc_sets ds;
    if ((st = doc_sets_init(&ds, flags, n, n_prompt))) return st;
    counts c = { 0, 0 };
    st = scan_doc(wm, tokens, n, n_prompt, flags, &ds.seen, doc_sets_prompt(&ds, flags), NULL, count_visit, &c);
    doc_sets_free(&ds);
    if (st == WM_OK) {
        wm__fill_score(out, n, c.scored, c.green, gamma_of(wm), alpha);
        no_dedup_verdict(flags, out);
    }
    return st;
}

/* ---- windows -------------------------------------------------------------- */

typedef struct trail {
    uint32_t *cum; /* cum[j] = green among the first j scored tuples */
    size_t *pos;   /* token index of scored tuple j */
    size_t len;
} trail;

static void trail_visit(void *arg, int green, size_t i)
{
    trail *tr = arg;
    tr->cum[tr->len + 1] = tr->cum[tr->len] + (uint32_t)green;
    tr->pos[tr->len++] = i;
}

wm_status wm_detect_window(const wm_watermark *wm, const wm_token *tokens, size_t n,
                           size_t n_prompt, unsigned flags, double alpha, wm_window *out)
{
    wm_status st = check_detect_args(wm, tokens, n, flags, alpha, out);
    if (st) return st;
    if (n > UINT32_MAX) return WM_ERR_SIZE;
    trail tr = { calloc(n + 1, sizeof *tr.cum), malloc((n ? n : 1) * sizeof *tr.pos), 0 };
    doc_sets ds;
    memset(&ds, 0, sizeof ds);
    if (!tr.cum || !tr.pos || doc_sets_init(&ds, flags, n, n_prompt)) {
        st = WM_ERR_NOMEM;
        goto done;
    }
    if ((st = scan_doc(wm, tokens, n, n_prompt, flags, &ds.seen, doc_sets_prompt(&ds, flags), NULL, trail_visit,
                       &tr)))
        goto done;

    double gamma = gamma_of(wm), best_lp = 1;
    size_t N = tr.len, best_a = 0, best_len = 0;
    uint64_t tests = 0;
    size_t L = N < 16 ? N : 16;
    while (L > 0) {
        /* For a fixed length the p-value falls with the green count, so the
         * best window of length L is the one with the most green tuples. */
        size_t arg = 0;
        uint32_t most = 0;
        for (size_t a = 0; a + L <= N; a++) {
            uint32_t g = tr.cum[a + L] - tr.cum[a];
            if (g > most || a == 0) most = g, arg = a;
        }
        tests += N - L + 1;
        double lp = wm__binom_log_sf(L, most, gamma);
        if (best_len == 0 || lp < best_lp) best_lp = lp, best_a = arg, best_len = L;
        if (L == N) break;
        size_t next = (size_t)ceil(L * 1.25);
        L = next > N ? N : next;
    }
    memset(out, 0, sizeof *out);
    if (best_len == 0) {
        wm__fill_score(&out->score, n, 0, 0, gamma, alpha);
    } else {
        uint32_t g = tr.cum[best_a + best_len] - tr.cum[best_a];
        wm__fill_score(&out->score, n, best_len, g, gamma, alpha);
        double lp = best_lp + log((double)tests);
        if (lp > 0) lp = 0;
        out->score.log10_p = lp / M_LN10;
        out->score.p_value = exp(lp);
        out->score.watermarked = out->score.log10_p < log10(alpha);
        no_dedup_verdict(flags, &out->score);
        out->begin = tr.pos[best_a];
        out->end = tr.pos[best_a + best_len - 1] + 1;
    }
    out->n_tests = tests;
done:
    doc_sets_free(&ds);
    free(tr.cum);
    free(tr.pos);
    return st;
}

/* ---- context sets and corpora ------------------------------------------- */

struct wm_ctxset {
    const wm_watermark *wm;
    wm__u64set set;
};

wm_status wm_ctxset_new(wm_ctxset **out, const wm_watermark *wm)
{
    if (!out || !wm) return WM_ERR_ARG;
    *out = NULL;
    wm_ctxset *s = calloc(1, sizeof *s);
    if (!s) return WM_ERR_NOMEM;
    if (wm__u64set_init(&s->set, 0)) {
        free(s);
        return WM_ERR_NOMEM;
    }
    s->wm = wm;
    *out = s;
    return WM_OK;
}

wm_status wm_ctxset_add(wm_ctxset *s, const wm_token *t, size_t n)
{
    if (!s) return WM_ERR_ARG;
    wm_status st = wm__check_tokens(s->wm, t, n);
    if (st) return st;
    wm__scan sc;
    uint64_t seed;
    wm_token tok;
    wm__scan_init(&sc, s->wm, t, n, 0);
    while (wm__scan_next(&sc, &seed, &tok))
        if (wm__u64set_insert(&s->set, ctx_key(seed)) < 0) return WM_ERR_NOMEM;
    return WM_OK;
}

uint64_t wm_ctxset_size(const wm_ctxset *s) { return s ? s->set.len : 0; }

void wm_ctxset_free(wm_ctxset *s)
{
    if (!s) return;
    wm__u64set_free(&s->set);
    free(s);
}

struct wm_corpus {
    const wm_watermark *wm;
    const wm_ctxset *filter;
    unsigned flags;
    int started;
    wm__u64set seen;
    wm__u64set prompt; /* the current document's prompt tuples */
    /* wm_corpus_add_part: the open document's last h tokens, then the part */
    wm_token *part;
    size_t part_cap, tail_len;
    int in_part;
    uint64_t tokens;
    counts c;
};

wm_status wm_corpus_new(wm_corpus **out, const wm_watermark *wm, unsigned flags)
{
    if (!out || !wm || (flags & ~WM_NO_DEDUP)) return WM_ERR_ARG;
    *out = NULL;
    wm_corpus *c = calloc(1, sizeof *c);
    if (!c) return WM_ERR_NOMEM;
    if ((!(flags & WM_NO_DEDUP) && wm__u64set_init(&c->seen, 0)) || wm__u64set_init(&c->prompt, 0)) {
        wm__u64set_free(&c->seen);
        free(c);
        return WM_ERR_NOMEM;
    }
    c->wm = wm;
    c->flags = flags;
    *out = c;
    return WM_OK;
}

wm_status wm_corpus_set_filter(wm_corpus *c, const wm_ctxset *filter)
{
    if (!c || c->started || (filter && filter->wm != c->wm)) return WM_ERR_ARG;
    c->filter = filter;
    return WM_OK;
}

wm_status wm_corpus_add(wm_corpus *c, const wm_token *t, size_t n, size_t n_prompt)
{
    if (!c || c->in_part) return WM_ERR_ARG;
    wm_status st = wm__check_tokens(c->wm, t, n);
    if (st) return st;
    c->started = 1;
    /* Prompt tuples are excluded per document: the corpus-wide dedup set
     * must not learn them, or whether a tuple counts would depend on the
     * order of documents.  A set grown by a huge prompt is given back. */
    if (c->prompt.cap > (1u << 16)) {
        wm__u64set_free(&c->prompt);
        if (wm__u64set_init(&c->prompt, 0)) return WM_ERR_NOMEM;
    } else {
        wm__u64set_clear(&c->prompt);
    }
    /* On NOMEM the tuples already counted stay counted and consistent. */
    st = scan_doc(c->wm, t, n, n_prompt, c->flags, &c->seen, &c->prompt, c->filter ? &c->filter->set : NULL,
                  count_visit, &c->c);
    c->tokens += n;
    return st;
}

wm_status wm_corpus_add_part(wm_corpus *c, const wm_token *t, size_t n, bool last)
{
    if (!c) return WM_ERR_ARG;
    wm_status st = wm__check_tokens(c->wm, t, n);
    if (st) return st;
    size_t k = c->in_part ? c->tail_len : 0, total = k + n;
    if (total > c->part_cap) {
        size_t cap = c->part_cap ? c->part_cap : 1024;
        while (cap < total) cap *= 2;
        wm_token *p = realloc(c->part, cap * sizeof *p);
        if (!p) return WM_ERR_NOMEM;
        c->part = p;
        c->part_cap = cap;
    }
    if (n) memcpy(c->part + k, t, n * sizeof *t);
    c->started = 1;
    c->in_part = !last;
    wm__u64set_clear(&c->prompt);
    st = scan_doc_at(c->wm, c->part, total, 0, k, c->flags, &c->seen, &c->prompt,
                     c->filter ? &c->filter->set : NULL, count_visit, &c->c);
    c->tokens += n;
    /* keep the last h tokens as the next part's context */
    size_t h = c->wm->h, keep = total < h ? total : h;
    if (keep) memmove(c->part, c->part + total - keep, keep * sizeof *c->part);
    c->tail_len = last ? 0 : keep;
    if (st) c->in_part = 0;
    return st;
}

wm_status wm_corpus_score(const wm_corpus *c, double alpha, wm_score *out)
{
    if (!c || !out || !valid_alpha(alpha)) return WM_ERR_ARG;
    wm__fill_score(out, c->tokens, c->c.scored, c->c.green, gamma_of(c->wm), alpha);
    no_dedup_verdict(c->flags, out);
    return WM_OK;
}

size_t wm_corpus_memory(const wm_corpus *c)
{
    return c ? sizeof *c + (c->seen.cap + c->prompt.cap) * sizeof *c->seen.slot : 0;
}

void wm_corpus_free(wm_corpus *c)
{
    if (!c) return;
    wm__u64set_free(&c->seen);
    wm__u64set_free(&c->prompt);
    free(c->part);
    free(c);
}
