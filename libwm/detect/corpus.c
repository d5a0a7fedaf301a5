/* Context sets and corpora: tuples scored once across many documents. */
#include "detect_internal.h"

#include <math.h>
#include <stdlib.h>

struct wm_ctxset {
    const wm_watermark *wm;
    wm__u64set set;
};

wm_status wm_ctxset_new(wm_ctxset **out, const wm_watermark *wm)
{
    if (!out || !wm) return WM_ERR_ARG;
    *out = NULL;
    wm_ctxset *s = wm__calloc(1, sizeof *s);
    if (!s) return WM_ERR_NOMEM;
    if (wm__u64set_init(&s->set, 0)) {
        wm__free(s);
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
        if (wm__u64set_insert(&s->set, wm__ctx_key(seed)) < 0) return WM_ERR_NOMEM;
    return WM_OK;
}

wm_status wm_ctxset_copy(wm_ctxset **out, const wm_ctxset *src)
{
    if (!out || !src) return WM_ERR_ARG;
    *out = NULL;
    wm_ctxset *s = wm__calloc(1, sizeof *s);
    if (!s) return WM_ERR_NOMEM;
    s->wm = src->wm;
    if (wm__u64set_copy(&s->set, &src->set)) {
        wm__free(s);
        return WM_ERR_NOMEM;
    }
    *out = s;
    return WM_OK;
}

wm_status wm_ctxset_clear(wm_ctxset *s)
{
    if (!s) return WM_ERR_ARG;
    wm__u64set_clear(&s->set);
    return WM_OK;
}

int wm__ctxset_insert(wm_ctxset *s, uint64_t seed) { return wm__u64set_insert(&s->set, wm__ctx_key(seed)); }
const wm_watermark *wm__ctxset_wm(const wm_ctxset *s) { return s->wm; }

wm_status wm_ctxset_size(const wm_ctxset *s, uint64_t *out)
{
    if (!s || !out) return WM_ERR_ARG;
    *out = s->set.len;
    return WM_OK;
}

void wm_ctxset_free(wm_ctxset *s)
{
    if (!s) return;
    wm__u64set_free(&s->set);
    wm__free(s);
}

struct wm_corpus {
    const wm_watermark *wm;
    const wm_ctxset *filter;
    unsigned flags;
    int started;
    wm__u64set seen;
    wm__u64set prompt; /* the current document's prompt tuples */
    wm__u64set seeds;  /* the current document's seeds (seed-once schemes) */
    scan_sets sets;
    /* wm_corpus_add_part: the open document's last h tokens, then the
     * first h of the next part: the only tuples whose context spans parts */
    wm_token edge[2 * WM_MAX_CONTEXT];
    size_t tail_len;
    int in_part;
    uint64_t tokens;
    counts c;
    double log_e_max; /* the audit's largest ln e-value at a document's end */
    /* WM_ACCOUNTS: scored tuples per (position, part) of the account layer */
    uint64_t tally[WM_ACCOUNT_POSITIONS][WM_ACCOUNT_SYMBOLS];
};

wm_status wm_corpus_new(wm_corpus **out, const wm_watermark *wm, unsigned flags)
{
    if (!out || !wm || (flags & ~(WM_NO_DEDUP | WM_ACCOUNTS)) || flags == (WM_NO_DEDUP | WM_ACCOUNTS))
        return WM_ERR_ARG;
    if ((flags & WM_ACCOUNTS) && !(wm->account_delta > 0)) return WM_ERR_UNSUPPORTED;
    *out = NULL;
    wm_corpus *c = wm__calloc(1, sizeof *c);
    if (!c) return WM_ERR_NOMEM;
    if ((!(flags & WM_NO_DEDUP) && wm__u64set_init(&c->seen, 0)) || wm__u64set_init(&c->prompt, 0) ||
        (wm->scheme->seed_once && wm__u64set_init(&c->seeds, 0))) {
        wm__u64set_free(&c->seen);
        wm__u64set_free(&c->prompt);
        wm__free(c);
        return WM_ERR_NOMEM;
    }
    c->sets.seen = &c->seen;
    c->sets.prompt = &c->prompt;
    c->sets.seeds = wm->scheme->seed_once ? &c->seeds : NULL;
    c->wm = wm;
    c->flags = flags;
    *out = c;
    return WM_OK;
}

wm_status wm_corpus_set_filter(wm_corpus *c, const wm_ctxset *filter)
{
    if (!c || c->started || (filter && filter->wm != c->wm)) return WM_ERR_ARG;
    c->filter = filter;
    c->sets.filter = filter ? &filter->set : NULL;
    return WM_OK;
}

/* A new document: its own, empty prompt and seed sets.  Prompt tuples are
 * excluded per document: the corpus-wide dedup set must not learn them, or
 * whether a tuple counts would depend on the order of documents. */
static void begin_doc(wm_corpus *c)
{
    c->started = 1;
    reset_doc_set(&c->prompt);
    if (c->sets.seeds) reset_doc_set(&c->seeds);
}

/* The audit looks at every document's end (a stopping time), and keeps
 * the largest e-value. */
static void look(wm_corpus *c)
{
    c->log_e_max = fmax(c->log_e_max, wm__audit_log_e(c->wm, c->c.scored, c->c.stat + c->c.comp));
}

static void corpus_visit(void *arg, double score, size_t i, uint64_t seed, wm_token tok)
{
    wm_corpus *c = arg;
    count_visit(&c->c, score, i, seed, tok);
    if (c->flags & WM_ACCOUNTS) c->tally[wm__account_pos(c->wm, seed)][wm__account_part(c->wm, seed, tok)]++;
}

wm_status wm_corpus_add(wm_corpus *c, const wm_token *t, size_t n, size_t n_prompt)
{
    if (!c || c->in_part) return WM_ERR_ARG;
    wm_status st = wm__check_tokens(c->wm, t, n);
    if (st) return st;
    begin_doc(c);
    /* On NOMEM the tuples already counted stay counted and consistent. */
    st = scan_doc_at(c->wm, t, n, n_prompt, 0, c->flags, &c->sets, corpus_visit, c);
    c->tokens += n;
    look(c);
    return st;
}

wm_status wm_corpus_add_part(wm_corpus *c, const wm_token *t, size_t n, bool last)
{
    if (!c) return WM_ERR_ARG;
    wm_status st = wm__check_tokens(c->wm, t, n);
    if (st) return st;
    if (!c->in_part) begin_doc(c);
    size_t h = c->wm->h, k = c->in_part ? c->tail_len : 0, head = n < h ? n : h;
    /* the seam: the tail then the part's first h tokens, scored from the part
     * on; then the part itself from position h, where context is inside it.
     * Counts are those of one call over the whole document. */
    if (head) memcpy(c->edge + k, t, head * sizeof *t);
    st = scan_doc_at(c->wm, c->edge, k + head, 0, k, c->flags, &c->sets, corpus_visit, c);
    if (!st && n > h) st = scan_doc_at(c->wm, t, n, 0, h, c->flags, &c->sets, corpus_visit, c);
    c->tokens += n;
    /* the last h tokens of the document so far: the next part's context */
    if (n >= h) {
        if (h) memcpy(c->edge, t + n - h, h * sizeof *t);
        c->tail_len = h;
    } else {
        size_t total = k + n, keep = total < h ? total : h;
        if (keep) memmove(c->edge, c->edge + total - keep, keep * sizeof *c->edge);
        c->tail_len = keep;
    }
    c->in_part = !last && !st;
    if (!c->in_part) look(c);
    return st;
}

wm_status wm_corpus_score(const wm_corpus *c, double alpha, wm_score *out)
{
    if (!c || !out || !WM__SIZED(out, wm_score) || !wm__valid_alpha(alpha)) return WM_ERR_ARG;
    wm__fill_score(c->wm, out, c->tokens, c->c.scored, c->c.stat + c->c.comp, alpha);
    no_dedup_verdict(c->flags, out);
    return WM_OK;
}

wm_status wm_corpus_audit(const wm_corpus *c, double alpha, double target, wm_audit *out)
{
    if (!c || !out || !WM__SIZED(out, wm_audit) || !wm__valid_alpha(alpha) || !wm__valid_alpha(target) ||
        (c->flags & WM_NO_DEDUP))
        return WM_ERR_ARG;
    wm_score s;
    wm__fill_score(c->wm, &s, c->tokens, c->c.scored, c->c.stat + c->c.comp, alpha);
    wm__audit_fill(c->wm, &s, c->log_e_max, alpha, target, out);
    return WM_OK;
}

wm_status wm_corpus_attribute(const wm_corpus *c, const uint64_t *accounts, size_t n, double alpha,
                              wm_account_score *top, size_t k, wm_attribution *out)
{
    if (!c || !wm__attribute_args(accounts, n, alpha, top, k, out) || !(c->flags & WM_ACCOUNTS)) return WM_ERR_ARG;
    if (n == 0) {
        memset(out, 0, sizeof *out);
        out->size = sizeof *out;
        out->tuples = c->c.scored;
        return WM_OK;
    }
    static const size_t cells = WM_ACCOUNT_POSITIONS * WM_ACCOUNT_SYMBOLS;
    double(*h)[WM_ACCOUNT_SYMBOLS] = wm__malloc(cells * sizeof(double));
    if (!h) return WM_ERR_NOMEM;
    for (size_t i = 0; i < cells; i++) h[i / WM_ACCOUNT_SYMBOLS][i % WM_ACCOUNT_SYMBOLS] = (double)c->tally[i / WM_ACCOUNT_SYMBOLS][i % WM_ACCOUNT_SYMBOLS];
    wm_status st = wm__attribute(c->wm, (const double(*)[WM_ACCOUNT_SYMBOLS])h, accounts, n, alpha, top, k < n ? k : n, out);
    wm__free(h);
    out->tuples = c->c.scored;
    return st;
}

wm_status wm_corpus_memory(const wm_corpus *c, size_t *out)
{
    if (!c || !out) return WM_ERR_ARG;
    *out = sizeof *c + (c->seen.cap + c->prompt.cap + c->seeds.cap) * sizeof *c->seen.slot;
    return WM_OK;
}

void wm_corpus_free(wm_corpus *c)
{
    if (!c) return;
    wm__u64set_free(&c->seen);
    wm__u64set_free(&c->prompt);
    wm__u64set_free(&c->seeds);
    wm__free(c);
}
