/* Context sets and corpora: tuples scored once across many documents. */
#include "detect_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "wm/cluster.h"

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
    uint64_t docs;     /* documents ended (the next one's index: WM_CORPUS_MAP's records) */
    int merged;        /* totals came from wm_corpus_merge: no document may be added */
    int sink_bad;      /* WM_CORPUS_MAP: a record could not be kept (sticky) */
    wm_corpus_record *rec; /* WM_CORPUS_MAP: the records not yet taken */
    size_t n_rec, cap_rec;
    int has_filter_digest;
    unsigned char filter_digest[32];
};

wm_status wm_corpus_new(wm_corpus **out, const wm_watermark *wm, unsigned flags)
{
    if (!out || !wm || (flags & ~(WM_NO_DEDUP | WM_ACCOUNTS | WM_CORPUS_MAP)) ||
        ((flags & WM_NO_DEDUP) && (flags & (WM_ACCOUNTS | WM_CORPUS_MAP))))
        return WM_ERR_ARG;
    if ((flags & WM_ACCOUNTS) && !wm->account) return WM_ERR_UNSUPPORTED;
    *out = NULL;
    wm_corpus *c = wm__calloc(1, sizeof *c);
    if (!c) return WM_ERR_NOMEM;
    if ((!(flags & WM_NO_DEDUP) && wm__u64set_init(&c->seen, 0)) || wm__u64set_init(&c->prompt, 0) ||
        (wm__has(wm->scheme, WM__CAP_SEED_ONCE) && wm__u64set_init(&c->seeds, 0))) {
        wm__u64set_free(&c->seen);
        wm__u64set_free(&c->prompt);
        wm__free(c);
        return WM_ERR_NOMEM;
    }
    c->sets.seen = &c->seen;
    c->sets.prompt = &c->prompt;
    c->sets.seeds = wm__has(wm->scheme, WM__CAP_SEED_ONCE) ? &c->seeds : NULL;
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
    if (c->flags & WM_CORPUS_MAP) reset_doc_set(&c->seen); /* each document deduplicated on its own */
    reset_doc_set(&c->prompt);
    if (c->sets.seeds) reset_doc_set(&c->seeds);
}

/* The audit looks at every document's end (a stopping time), and keeps
 * the largest e-value. */
static void look(wm_corpus *c)
{
    c->log_e_max = fmax(c->log_e_max, wm__audit_log_e(c->wm, c->c.scored, counts_stat(&c->c)));
}

/* A document has ended: the audit's look, and the next document's index. */
static void end_doc(wm_corpus *c)
{
    look(c);
    c->docs++;
}

static void keep_record(wm_corpus *c, double score, uint64_t seed, wm_token tok, uint32_t cell)
{
    if (c->n_rec == c->cap_rec) {
        size_t cap = c->cap_rec ? c->cap_rec + c->cap_rec / 2 : 1024;
        wm_corpus_record *r = cap < SIZE_MAX / sizeof *r ? wm__realloc(c->rec, cap * sizeof *r) : NULL;
        if (!r) {
            c->sink_bad = 1;
            return;
        }
        c->rec = r;
        c->cap_rec = cap;
    }
    c->rec[c->n_rec++] = (wm_corpus_record){ .fp = wm__tuple_fp(seed, tok), .doc = c->docs, .score = score,
                                             .cell = cell };
}

static void corpus_visit(void *arg, double score, size_t i, uint64_t seed, wm_token tok)
{
    wm_corpus *c = arg;
    count_visit(&c->c, score, i, seed, tok);
    uint32_t cell = WM_CELL_NONE;
    if (c->flags & WM_ACCOUNTS) {
        unsigned pos = c->wm->account->pos(c->wm, seed), part = c->wm->account->part(c->wm, seed, tok);
        c->tally[pos][part]++;
        cell = pos * WM_ACCOUNT_SYMBOLS + part;
    }
    if (c->flags & WM_CORPUS_MAP) keep_record(c, score, seed, tok, cell);
}

wm_status wm_corpus_add(wm_corpus *c, const wm_token *t, size_t n, size_t n_prompt)
{
    if (!c || c->in_part || c->merged) return WM_ERR_ARG;
    wm_status st = wm__check_tokens(c->wm, t, n);
    if (st) return st;
    begin_doc(c);
    /* On NOMEM the tuples already counted stay counted and consistent. */
    st = scan_doc_at(c->wm, t, n, n_prompt, 0, c->flags, &c->sets, corpus_visit, c);
    c->tokens += n;
    end_doc(c);
    return st ? st : c->sink_bad ? WM_ERR_NOMEM : WM_OK;
}

wm_status wm_corpus_add_part(wm_corpus *c, const wm_token *t, size_t n, bool last)
{
    if (!c || c->merged) return WM_ERR_ARG;
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
    if (!st && c->sink_bad) st = WM_ERR_NOMEM;
    c->in_part = !last && !st;
    if (!c->in_part) end_doc(c);
    return st;
}

wm_status wm_corpus_score(const wm_corpus *c, double alpha, wm_score *out)
{
    if (!c || !out || !WM__SIZED(out, wm_score) || !wm__valid_alpha(alpha) || (c->flags & WM_CORPUS_MAP)) return WM_ERR_ARG;
    if (c->c.bad) return WM_ERR_LIMIT;
    wm__fill_score(c->wm, out, c->tokens, c->c.scored, counts_stat(&c->c), alpha);
    no_dedup_verdict(c->flags, out);
    return WM_OK;
}

wm_status wm_corpus_audit(const wm_corpus *c, double alpha, double target, wm_audit *out)
{
    if (!c || !out || !WM__SIZED(out, wm_audit) || !wm__valid_alpha(alpha) || !wm__valid_alpha(target) ||
        (c->flags & (WM_NO_DEDUP | WM_CORPUS_MAP)))
        return WM_ERR_ARG;
    if (c->c.bad) return WM_ERR_LIMIT;
    wm_score s;
    wm__fill_score(c->wm, &s, c->tokens, c->c.scored, counts_stat(&c->c), alpha);
    wm__audit_fill(c->wm, &s, c->log_e_max, alpha, target, out);
    return WM_OK;
}

wm_status wm_corpus_attribute(const wm_corpus *c, const uint64_t *accounts, size_t n, double alpha,
                              wm_account_score *top, size_t k, wm_attribution *out)
{
    if (!c || !wm__attribute_args(accounts, n, alpha, top, k, out) || !(c->flags & WM_ACCOUNTS) ||
        (c->flags & WM_CORPUS_MAP))
        return WM_ERR_ARG;
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
    *out = sizeof *c + (c->seen.cap + c->prompt.cap + c->seeds.cap) * sizeof *c->seen.slot +
           c->cap_rec * sizeof *c->rec;
    return WM_OK;
}

void wm_corpus_free(wm_corpus *c)
{
    if (!c) return;
    wm__u64set_free(&c->seen);
    wm__u64set_free(&c->prompt);
    wm__u64set_free(&c->seeds);
    wm__free(c->rec);
    wm__free(c);
}

/* ---- across machines (cluster.h) ------------------------------------------ */

wm_status wm_corpus_set_next_doc(wm_corpus *c, uint64_t doc)
{
    if (!c || !(c->flags & WM_CORPUS_MAP) || c->in_part) return WM_ERR_ARG;
    c->docs = doc;
    return WM_OK;
}

wm_status wm_corpus_records(const wm_corpus *c, const wm_corpus_record **records, size_t *n)
{
    if (!c || !records || !n || !(c->flags & WM_CORPUS_MAP)) return WM_ERR_ARG;
    *records = c->rec;
    *n = c->n_rec;
    return WM_OK;
}

wm_status wm_corpus_records_clear(wm_corpus *c)
{
    if (!c || !(c->flags & WM_CORPUS_MAP)) return WM_ERR_ARG;
    c->n_rec = 0;
    return WM_OK;
}

wm_status wm_corpus_deltas(const double *score, const uint64_t *doc, size_t n, wm_corpus_delta *out,
                           size_t *n_out)
{
    if ((n && (!score || !doc || !out)) || !n_out) return WM_ERR_ARG;
    size_t m = 0;
    wm__u128 sum = 0;
    int bad = 0;
    for (size_t i = 0; i < n; i++) {
        wm__u128 f;
        if (wm__fixed_of(score[i], &f) || (i && doc[i] < doc[i - 1])) return WM_ERR_ARG;
        if (i == 0 || doc[i] != doc[i - 1]) {
            if (i) out[m - 1].stat_hi = (uint64_t)(sum >> 64), out[m - 1].stat_lo = (uint64_t)sum;
            out[m++] = (wm_corpus_delta){ .doc = doc[i] };
            sum = 0;
        }
        fixed_add(&sum, f, &bad);
        out[m - 1].scored++;
    }
    if (bad) return WM_ERR_LIMIT;
    if (m) out[m - 1].stat_hi = (uint64_t)(sum >> 64), out[m - 1].stat_lo = (uint64_t)sum;
    *n_out = m;
    return WM_OK;
}

wm_status wm_corpus_totals_get(const wm_corpus *c, wm_corpus_totals *out)
{
    if (!c || !out || !WM__SIZED(out, wm_corpus_totals)) return WM_ERR_ARG;
    *out = (wm_corpus_totals){ .size = sizeof *out, .docs = c->docs, .tokens = c->tokens, .scored = c->c.scored,
                               .stat_hi = (uint64_t)(c->c.fx >> 64), .stat_lo = (uint64_t)c->c.fx };
    return WM_OK;
}

wm_status wm_corpus_merge(wm_corpus *c, const wm_corpus_delta *d, size_t n, uint64_t tokens, uint64_t docs,
                          const uint64_t *tally)
{
    if (!c || (n && !d) || (c->flags & (WM_NO_DEDUP | WM_CORPUS_MAP)) || (c->started && !c->merged) ||
        c->c.bad || (!tally) != !(c->flags & WM_ACCOUNTS))
        return WM_ERR_ARG;
    /* everything checked before anything changes */
    uint64_t scored = 0, cells = 0;
    wm__u128 fx = c->c.fx;
    int bad = 0;
    for (size_t i = 0; i < n; i++) {
        if (d[i].doc < (i ? d[i - 1].doc : c->docs)) return WM_ERR_ARG;
        if (scored + d[i].scored < scored) return WM_ERR_LIMIT;
        scored += d[i].scored;
        fixed_add(&fx, (wm__u128)d[i].stat_hi << 64 | d[i].stat_lo, &bad);
    }
    if (bad || c->c.scored + scored < scored || c->tokens + tokens < tokens) return WM_ERR_LIMIT;
    if (tally) {
        for (size_t i = 0; i < WM_ACCOUNT_POSITIONS * WM_ACCOUNT_SYMBOLS; i++) {
            if (cells + tally[i] < cells) return WM_ERR_LIMIT;
            cells += tally[i];
        }
        if (cells != scored) return WM_ERR_ARG; /* every scored tuple has one cell */
    }
    c->started = c->merged = 1;
    for (size_t i = 0; i < n; i++) {
        c->c.scored += d[i].scored;
        fixed_add(&c->c.fx, (wm__u128)d[i].stat_hi << 64 | d[i].stat_lo, &c->c.bad);
        if (i + 1 == n || d[i + 1].doc != d[i].doc) { /* the document's end */
            look(c);
            c->docs = d[i].doc + 1;
        }
    }
    if (docs > c->docs) c->docs = docs;
    c->tokens += tokens;
    if (tally)
        for (size_t i = 0; i < WM_ACCOUNT_POSITIONS * WM_ACCOUNT_SYMBOLS; i++)
            c->tally[i / WM_ACCOUNT_SYMBOLS][i % WM_ACCOUNT_SYMBOLS] += tally[i];
    return WM_OK;
}

/* ---- checkpoints ------------------------------------------------------------ */

#define CK_MAGIC "wmcorpus"
#define CK_VERSION 1u
#define CK_CELLS (WM_ACCOUNT_POSITIONS * WM_ACCOUNT_SYMBOLS)
/* magic, version, flags, n_vocab, h, key id, filter digest, then 8 u64:
 * docs tokens scored fx_hi fx_lo bad log_e_max n_seen meta_len (9) */
#define CK_HEAD (8 + 4 * 4 + WM_KEY_ID_SIZE + 32 + 9 * 8)

static void ck_err(wm_error *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void ck_err(wm_error *err, const char *fmt, ...)
{
    if (!err) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->message, sizeof err->message, fmt, ap);
    va_end(ap);
}

static void put32(unsigned char *p, uint32_t v)
{
    for (int i = 0; i < 4; i++) p[i] = (unsigned char)(v >> (8 * i));
}
static void put64(unsigned char *p, uint64_t v)
{
    for (int i = 0; i < 8; i++) p[i] = (unsigned char)(v >> (8 * i));
}
static uint32_t get32(const unsigned char *p)
{
    uint32_t v = 0;
    for (int i = 3; i >= 0; i--) v = v << 8 | p[i];
    return v;
}
static uint64_t get64(const unsigned char *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--) v = v << 8 | p[i];
    return v;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* BLAKE2b-256 of the filter's context keys in increasing order (all zero
 * without a filter): the same set gives the same digest whatever the order
 * it was filled in. */
static wm_status filter_digest(const wm_corpus *c, unsigned char out[32])
{
    memset(out, 0, 32);
    if (!c->sets.filter) return WM_OK;
    const wm__u64set *f = c->sets.filter;
    uint64_t *k = wm__malloc((f->len ? f->len : 1) * sizeof *k);
    if (!k) return WM_ERR_NOMEM;
    size_t m = 0;
    for (size_t i = 0; i < f->cap; i++)
        if (f->slot[i]) k[m++] = f->slot[i];
    if (m) qsort(k, m, sizeof *k, cmp_u64);
    crypto_generichash_state h;
    unsigned char b[8];
    crypto_generichash_init(&h, (const unsigned char *)"libwm-filter", 12, 32);
    for (size_t i = 0; i < m; i++) {
        put64(b, k[i]);
        crypto_generichash_update(&h, b, 8);
    }
    crypto_generichash_final(&h, out, 32);
    wm__free(k);
    return WM_OK;
}

static void ck_head(const wm_corpus *c, const unsigned char digest[32], size_t meta_len, unsigned char *p)
{
    uint64_t bits;
    memcpy(&bits, &c->log_e_max, 8);
    memcpy(p, CK_MAGIC, 8);
    put32(p + 8, CK_VERSION);
    put32(p + 12, c->flags);
    put32(p + 16, c->wm->n_vocab);
    put32(p + 20, c->wm->h);
    memcpy(p + 24, c->wm->key_id, WM_KEY_ID_SIZE);
    unsigned char *q = p + 24 + WM_KEY_ID_SIZE;
    memcpy(q, digest, 32);
    q += 32;
    const uint64_t v[9] = { c->docs, c->tokens, c->c.scored, (uint64_t)(c->c.fx >> 64), (uint64_t)c->c.fx,
                            (uint64_t)c->c.bad, bits, c->seen.len, meta_len };
    for (int i = 0; i < 9; i++) put64(q + 8 * i, v[i]);
}

typedef struct ck_out {
    FILE *f;
    crypto_generichash_state h;
} ck_out;

static int ck_write(ck_out *o, const void *p, size_t n)
{
    crypto_generichash_update(&o->h, p, n);
    return fwrite(p, 1, n, o->f) == n ? 0 : -1;
}

wm_status wm_corpus_save(const wm_corpus *c, const char *path, const void *meta, size_t meta_len, wm_error *err)
{
    if (!c || !path || (meta_len && !meta) || meta_len > WM_CHECKPOINT_META || c->in_part ||
        (c->flags & WM_CORPUS_MAP)) {
        ck_err(err, "%s: wm_corpus_save: invalid arguments (NULL, a document open, a map corpus, or %zu bytes "
                    "of meta over %d)", path ? path : "(null)", meta_len, WM_CHECKPOINT_META);
        return WM_ERR_ARG;
    }
    unsigned char digest[32], head[CK_HEAD], sum[32], b[8 * 64];
    wm_status st = filter_digest(c, digest);
    if (st) {
        ck_err(err, "%s: out of memory for the filter's digest", path);
        return st;
    }
    size_t plen = strlen(path);
    char *tmp = wm__malloc(plen + 5);
    if (!tmp) {
        ck_err(err, "%s: out of memory", path);
        return WM_ERR_NOMEM;
    }
    memcpy(tmp, path, plen);
    memcpy(tmp + plen, ".tmp", 5);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    ck_out o = { fd >= 0 ? fdopen(fd, "wb") : NULL, { { 0 } } };
    if (!o.f) {
        int e = errno;
        if (fd >= 0) close(fd);
        ck_err(err, "%s: %s", tmp, strerror(e));
        wm__free(tmp);
        return WM_ERR_IO;
    }
    crypto_generichash_init(&o.h, NULL, 0, 32);
    ck_head(c, digest, meta_len, head);
    int bad = ck_write(&o, head, sizeof head);
    for (size_t i = 0; !bad && i < CK_CELLS; i++) {
        put64(b, c->tally[i / WM_ACCOUNT_SYMBOLS][i % WM_ACCOUNT_SYMBOLS]);
        bad = ck_write(&o, b, 8);
    }
    size_t m = 0;
    for (size_t i = 0; !bad && i < c->seen.cap; i++) {
        if (!c->seen.slot[i]) continue;
        put64(b + 8 * m++, c->seen.slot[i]);
        if (m == 64) bad = ck_write(&o, b, 8 * m), m = 0;
    }
    if (!bad && m) bad = ck_write(&o, b, 8 * m);
    if (!bad && meta_len) bad = ck_write(&o, meta, meta_len);
    crypto_generichash_final(&o.h, sum, 32);
    if (!bad) bad = fwrite(sum, 1, 32, o.f) != 32;
    int e = bad ? errno : 0;
    if (!e && fflush(o.f) != 0) e = errno;
    if (!e && fsync(fileno(o.f)) != 0) e = errno;
    if (fclose(o.f) != 0 && !e) e = errno;
    if (!e && rename(tmp, path) != 0) e = errno;
    if (e) {
        unlink(tmp);
        ck_err(err, "%s: write failed: %s", tmp, strerror(e ? e : EIO));
        wm__free(tmp);
        return WM_ERR_IO;
    }
    wm__free(tmp);
    /* the rename itself must reach the disk: fsync the folder */
    char *dir = wm__malloc(plen + 2);
    if (dir) {
        memcpy(dir, path, plen + 1);
        char *slash = strrchr(dir, '/');
        if (!slash) strcpy(dir, ".");
        else if (slash == dir) dir[1] = 0;
        else *slash = 0;
        int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dfd >= 0) {
            fsync(dfd); /* some file systems refuse a folder's fsync: the file itself is synced */
            close(dfd);
        }
        wm__free(dir);
    }
    return WM_OK;
}

static wm_status ck_read(FILE *f, const char *path, size_t at, void *p, size_t n, wm_error *err)
{
    if (fread(p, 1, n, f) == n) return WM_OK;
    if (ferror(f)) {
        ck_err(err, "%s: byte %zu: read error: %s", path, at, strerror(errno));
        return WM_ERR_IO;
    }
    ck_err(err, "%s: byte %zu: truncated checkpoint", path, at);
    return WM_ERR_FORMAT;
}

wm_status wm_corpus_load(wm_corpus *c, const char *path, void *meta, size_t meta_cap, size_t *meta_len,
                         wm_error *err)
{
    if (!c || !path || !meta_len || (meta_cap && !meta) || c->started || c->merged ||
        (c->flags & WM_CORPUS_MAP)) {
        ck_err(err, "%s: wm_corpus_load: invalid arguments (NULL, or a corpus already fed or a map corpus)",
               path ? path : "(null)");
        return WM_ERR_ARG;
    }
    FILE *f = fopen(path, "rb");
    if (!f) {
        ck_err(err, "%s: %s", path, strerror(errno));
        return WM_ERR_IO;
    }
    unsigned char head[CK_HEAD], b[8 * 64], sum[32], want[32], digest[32];
    wm_status st;
    wm__u64set seen = { 0 };
    long size = -1;
    if (fseek(f, 0, SEEK_END) == 0) size = ftell(f);
    if (size < 0 || fseek(f, 0, SEEK_SET) != 0) {
        ck_err(err, "%s: cannot seek: %s", path, strerror(errno));
        fclose(f);
        return WM_ERR_IO;
    }
    /* pass 1: the checksum over everything before the last 32 bytes */
    if ((size_t)size < CK_HEAD + 8 * CK_CELLS + 32) {
        ck_err(err, "%s: byte %ld: truncated checkpoint (%ld bytes)", path, size, size);
        fclose(f);
        return WM_ERR_FORMAT;
    }
    if ((st = ck_read(f, path, 0, head, 8, err))) goto out;
    if (memcmp(head, CK_MAGIC, 8) != 0) {
        ck_err(err, "%s: byte 0: not a libwm corpus checkpoint", path);
        st = WM_ERR_FORMAT;
        goto out;
    }
    crypto_generichash_state h;
    crypto_generichash_init(&h, NULL, 0, 32);
    crypto_generichash_update(&h, head, 8);
    for (size_t at = 8, end = (size_t)size - 32; at < end;) {
        size_t k = end - at < sizeof b ? end - at : sizeof b;
        if ((st = ck_read(f, path, at, b, k, err))) goto out;
        crypto_generichash_update(&h, b, k);
        at += k;
    }
    crypto_generichash_final(&h, want, 32);
    if ((st = ck_read(f, path, (size_t)size - 32, sum, 32, err))) goto out;
    if (sodium_memcmp(sum, want, 32) != 0) {
        ck_err(err, "%s: byte %ld: checksum mismatch: the checkpoint is damaged", path, size - 32);
        st = WM_ERR_CORRUPT;
        goto out;
    }
    /* pass 2: the fields, now known to be as written */
    if (fseek(f, 0, SEEK_SET) != 0) {
        ck_err(err, "%s: cannot seek: %s", path, strerror(errno));
        st = WM_ERR_IO;
        goto out;
    }
    if ((st = ck_read(f, path, 0, head, CK_HEAD, err))) goto out;
    uint32_t version = get32(head + 8), flags = get32(head + 12), nv = get32(head + 16), hh = get32(head + 20);
    const unsigned char *q = head + 24 + WM_KEY_ID_SIZE;
    uint64_t v[9];
    for (int i = 0; i < 9; i++) v[i] = get64(q + 32 + 8 * i);
    if (version != CK_VERSION) {
        ck_err(err, "%s: byte 8: checkpoint format version %u; this libwm reads version %u", path, version,
               CK_VERSION);
        st = WM_ERR_FORMAT;
        goto out;
    }
    if (memcmp(head + 24, c->wm->key_id, WM_KEY_ID_SIZE) != 0 || hh != c->wm->h) {
        char id[WM_KEY_ID_SIZE];
        memcpy(id, head + 24, WM_KEY_ID_SIZE);
        id[WM_KEY_ID_SIZE - 1] = 0;
        ck_err(err, "%s: byte 24: checkpoint of key %s, not of this key %s", path, id, c->wm->key_id);
        st = WM_ERR_ARG;
        goto out;
    }
    if (nv != c->wm->n_vocab) {
        ck_err(err, "%s: byte 16: checkpoint made with a vocabulary of %u (another tokenizer), not %u", path, nv,
               c->wm->n_vocab);
        st = WM_ERR_ARG;
        goto out;
    }
    if (flags != c->flags) {
        ck_err(err, "%s: byte 12: checkpoint made with flags %#x (dedup, accounts), not %#x", path, flags,
               c->flags);
        st = WM_ERR_ARG;
        goto out;
    }
    if ((st = filter_digest(c, digest))) {
        ck_err(err, "%s: out of memory for the filter's digest", path);
        goto out;
    }
    if (memcmp(q, digest, 32) != 0) {
        ck_err(err, "%s: byte %zu: checkpoint made with %s filter than this run's", path, (size_t)(q - head),
               digest[0] | digest[1] | digest[2] ? "another" : "a");
        st = WM_ERR_ARG;
        goto out;
    }
    uint64_t n_seen = v[7], mlen = v[8];
    if (mlen > WM_CHECKPOINT_META || n_seen > (uint64_t)size / 8 ||
        (uint64_t)size != CK_HEAD + 8 * CK_CELLS + 8 * n_seen + mlen + 32 || v[5] > 1 ||
        ((flags & WM_NO_DEDUP) && n_seen)) {
        ck_err(err, "%s: byte %d: inconsistent sizes in the checkpoint's header", path, CK_HEAD - 16);
        st = WM_ERR_FORMAT;
        goto out;
    }
    if (mlen > meta_cap) {
        ck_err(err, "%s: %llu bytes of caller data, room for %zu", path, (unsigned long long)mlen, meta_cap);
        st = WM_ERR_ARG;
        goto out;
    }
    uint64_t tally[CK_CELLS], cells = 0;
    for (size_t i = 0; i < CK_CELLS; i++) {
        if ((st = ck_read(f, path, CK_HEAD + 8 * i, b, 8, err))) goto out;
        cells += tally[i] = get64(b);
    }
    if ((flags & WM_ACCOUNTS) && cells != v[2]) {
        ck_err(err, "%s: byte %d: the account tally does not add up to the tuples scored", path, CK_HEAD);
        st = WM_ERR_FORMAT;
        goto out;
    }
    if ((st = wm__u64set_init(&seen, (size_t)n_seen))) {
        ck_err(err, "%s: out of memory for %llu fingerprints", path, (unsigned long long)n_seen);
        goto out;
    }
    size_t at = CK_HEAD + 8 * CK_CELLS;
    for (uint64_t i = 0; i < n_seen; i++, at += 8) {
        if ((st = ck_read(f, path, at, b, 8, err))) goto out;
        uint64_t k = get64(b);
        int r = k ? wm__u64set_insert(&seen, k) : 0;
        if (r < 0) {
            ck_err(err, "%s: out of memory for %llu fingerprints", path, (unsigned long long)n_seen);
            st = WM_ERR_NOMEM;
            goto out;
        }
        if (r == 0) {
            ck_err(err, "%s: byte %zu: fingerprint %s", path, at, k ? "repeated" : "0");
            st = WM_ERR_FORMAT;
            goto out;
        }
    }
    if (mlen && (st = ck_read(f, path, at, meta, (size_t)mlen, err))) goto out;
    /* commit */
    wm__u64set_free(&c->seen);
    c->seen = seen;
    seen = (wm__u64set){ 0 };
    c->docs = v[0];
    c->tokens = v[1];
    c->c.scored = v[2];
    c->c.fx = (wm__u128)v[3] << 64 | v[4];
    c->c.bad = (int)v[5];
    memcpy(&c->log_e_max, &v[6], 8);
    for (size_t i = 0; i < CK_CELLS; i++) c->tally[i / WM_ACCOUNT_SYMBOLS][i % WM_ACCOUNT_SYMBOLS] = tally[i];
    c->started = 1;
    *meta_len = (size_t)mlen;
out:
    wm__u64set_free(&seen);
    fclose(f);
    return st;
}
