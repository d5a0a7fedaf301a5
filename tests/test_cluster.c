/* Corpus detection split across machines (cluster.h), in one process: map
 * corpora over chunks of documents, records shuffled and partitioned by
 * fingerprint, reduced to the smallest document index per fingerprint,
 * merged; the p-values, statistics, audit and attribution must equal one
 * corpus's bit for bit.  Then the exact accumulator and checkpoints. */
#include "testutil.h"

#include "detect/detect_internal.h"

#include <sodium.h>
#include <unistd.h>

#define N_ACC 40

typedef struct results {
    wm_score s;
    wm_audit a;
    int has_attr;
    wm_attribution at;
    wm_account_score top[N_ACC];
} results;

static void results_of(const wm_corpus *c, const uint64_t *acc, int accounts, results *r)
{
    memset(r, 0, sizeof *r);
    r->s.size = sizeof r->s;
    r->a.size = sizeof r->a;
    r->at.size = sizeof r->at;
    for (size_t i = 0; i < N_ACC; i++) r->top[i].size = sizeof r->top[i];
    assert_int_equal(wm_corpus_score(c, 1e-3, &r->s), WM_OK);
    assert_int_equal(wm_corpus_audit(c, 1e-3, 1e-6, &r->a), WM_OK);
    if (accounts) {
        r->has_attr = 1;
        assert_int_equal(wm_corpus_attribute(c, acc, N_ACC, 0.01, r->top, N_ACC, &r->at), WM_OK);
    }
}

/* Bit for bit: every double compared by its bytes (NaN included). */
static int same_bits(double x, double y) { return memcmp(&x, &y, sizeof x) == 0; }

static int same_score(const wm_score *x, const wm_score *y)
{
    return x->tokens == y->tokens && x->scored == y->scored && same_bits(x->statistic, y->statistic) &&
           same_bits(x->z, y->z) && same_bits(x->p_value, y->p_value) && same_bits(x->log10_p, y->log10_p) &&
           x->watermarked == y->watermarked;
}

static int same_results(const results *x, const results *y)
{
    int ok = same_score(&x->s, &y->s) && same_score(&x->a.fixed, &y->a.fixed) &&
             same_bits(x->a.log10_p, y->a.log10_p) && x->a.watermarked == y->a.watermarked &&
             same_bits(x->a.excess, y->a.excess) && same_bits(x->a.excess_lo, y->a.excess_lo) &&
             same_bits(x->a.excess_hi, y->a.excess_hi) && same_bits(x->a.more_tuples, y->a.more_tuples) &&
             same_bits(x->a.more_tokens, y->a.more_tokens) &&
             same_bits(x->a.more_tokens_fixed, y->a.more_tokens_fixed);
    if (!ok || x->has_attr != y->has_attr) return 0;
    if (!x->has_attr) return 1;
    if (x->at.accounts != y->at.accounts || x->at.tuples != y->at.tuples || x->at.named != y->at.named ||
        x->at.n_top != y->at.n_top || !same_bits(x->at.null_mean, y->at.null_mean) ||
        !same_bits(x->at.null_sd, y->at.null_sd) || x->at.exact != y->at.exact)
        return 0;
    for (size_t i = 0; i < x->at.n_top; i++)
        if (x->top[i].account != y->top[i].account || !same_bits(x->top[i].statistic, y->top[i].statistic) ||
            !same_bits(x->top[i].log10_p, y->top[i].log10_p) ||
            !same_bits(x->top[i].log10_p_family, y->top[i].log10_p_family) || x->top[i].named != y->top[i].named)
            return 0;
    return 1;
}

typedef struct docs {
    size_t n;
    wm_token **t;
    size_t *len, *prompt;
} docs;

/* Heavy duplication (a small vocabulary, repeated documents), empty and
 * shorter-than-h documents, prompts, and watermarked-looking repeats. */
static docs make_docs(wm__rng *r, const wm_watermark *wm, size_t n, uint32_t V, uint32_t h)
{
    docs d = { n, calloc(n, sizeof(wm_token *)), calloc(n, sizeof(size_t)), calloc(n, sizeof(size_t)) };
    for (size_t i = 0; i < n; i++) {
        size_t kind = wm__rng_next(r) % 8;
        size_t len = kind == 0 ? 0 : kind == 1 ? h : 1 + wm__rng_next(r) % 120;
        d.t[i] = malloc((len ? len : 1) * sizeof(wm_token));
        size_t from = i ? (size_t)(wm__rng_next(r) % i) : 0;
        if ((kind == 2 || kind == 4) && i > 0 && d.len[from] >= len) /* an earlier document's start, copied */
            memcpy(d.t[i], d.t[from], len * sizeof(wm_token));
        else
            random_tokens(r, d.t[i], len, V);
        /* the first half partly watermark-like (the best of 3 candidates by
         * score): the audit's e-value rises, then falls back, so its
         * maximum lies at a document in the middle, where crediting a
         * tuple to a later document (the negative control) shows */
        if ((kind >= 5 || kind == 4) && i < n / 2)
            for (size_t j = h; j < len; j++) {
                double best = -1, sc;
                for (int c = 0; c < 3; c++) {
                    wm_token cand = (wm_token)(wm__rng_next(r) % V);
                    assert_int_equal(wm_tuple_score(wm, d.t[i] + j - h, h, cand, &sc), WM_OK);
                    if (sc > best) best = sc, d.t[i][j] = cand;
                }
            }
        d.len[i] = len;
        d.prompt[i] = kind == 3 ? wm__rng_next(r) % (len + 1) : 0;
    }
    return d;
}

static void free_docs(docs *d)
{
    for (size_t i = 0; i < d->n; i++) free(d->t[i]);
    free(d->t);
    free(d->len);
    free(d->prompt);
}

typedef struct rec_order { wm_corpus_record r; uint64_t shuffle; } rec_order;

static int by_fp_doc(const void *a, const void *b)
{
    const wm_corpus_record *x = a, *y = b;
    if (x->fp != y->fp) return x->fp < y->fp ? -1 : 1;
    return x->doc < y->doc ? -1 : x->doc > y->doc;
}

static int by_fp_doc_desc(const void *a, const void *b)
{
    const wm_corpus_record *x = a, *y = b;
    if (x->fp != y->fp) return x->fp < y->fp ? -1 : 1;
    return x->doc > y->doc ? -1 : x->doc < y->doc;
}

static int by_doc(const void *a, const void *b)
{
    const wm_corpus_record *x = a, *y = b;
    return x->doc < y->doc ? -1 : x->doc > y->doc;
}

static int delta_by_doc(const void *a, const void *b)
{
    const wm_corpus_delta *x = a, *y = b;
    return x->doc < y->doc ? -1 : x->doc > y->doc;
}

/* Fingerprints shared by records of different payloads, over every
 * split_run: none with 64-bit fingerprints, many in a -Dtuple_fp_bits=10
 * build (WM_TUPLE_FP_BITS), where the equality must hold all the same. */
static size_t n_collisions;

/* The cluster in one process: `chunks` map corpora over a random
 * assignment of documents (any worker may hold any document), `shards`
 * reducers by fingerprint; keep_largest: the negative control. */
static void split_run(const wm_watermark *wm, const wm_ctxset *filter, unsigned flags, const docs *d,
                      size_t chunks, size_t shards, int keep_largest, wm__rng *r, const uint64_t *acc,
                      results *out)
{
    size_t cap = 0, n = 0;
    wm_corpus_record *all = NULL;
    uint64_t tokens = 0;
    size_t *owner = malloc((d->n ? d->n : 1) * sizeof *owner);
    for (size_t i = 0; i < d->n; i++) owner[i] = wm__rng_next(r) % chunks;
    for (size_t k = 0; k < chunks; k++) {
        wm_corpus *m;
        assert_int_equal(wm_corpus_new(&m, wm, flags | WM_CORPUS_MAP), WM_OK);
        if (filter) assert_int_equal(wm_corpus_set_filter(m, filter), WM_OK);
        for (size_t i = 0; i < d->n; i++) {
            if (owner[i] != k) continue;
            assert_int_equal(wm_corpus_set_next_doc(m, i), WM_OK);
            assert_int_equal(wm_corpus_add(m, d->t[i], d->len[i], d->prompt[i]), WM_OK);
        }
        const wm_corpus_record *rec;
        size_t nr;
        assert_int_equal(wm_corpus_records(m, &rec, &nr), WM_OK);
        if (n + nr > cap) {
            cap = (n + nr) * 2;
            all = realloc(all, cap * sizeof *all);
        }
        if (nr) memcpy(all + n, rec, nr * sizeof *rec);
        n += nr;
        wm_corpus_totals t = WM_INIT(wm_corpus_totals);
        assert_int_equal(wm_corpus_totals_get(m, &t), WM_OK);
        tokens += t.tokens;
        wm_score s = WM_INIT(wm_score);
        assert_int_equal(wm_corpus_score(m, 0.5, &s), WM_ERR_ARG); /* a map corpus is no test */
        wm_corpus_free(m);
    }
    /* shuffle: records in a random order, then each shard's in its own */
    for (size_t i = n; i > 1; i--) {
        size_t j = wm__rng_next(r) % i;
        wm_corpus_record x = all[i - 1];
        all[i - 1] = all[j], all[j] = x;
    }
    wm_corpus_delta *deltas = malloc((n ? n : 1) * sizeof *deltas);
    wm_corpus_record *part = malloc((n ? n : 1) * sizeof *part);
    uint64_t tally[WM_ACCOUNT_POSITIONS * WM_ACCOUNT_SYMBOLS] = { 0 };
    size_t nd = 0;
    for (size_t s = 0; s < shards; s++) {
        size_t np = 0;
        for (size_t i = 0; i < n; i++)
            if (all[i].fp % shards == s) part[np++] = all[i];
        if (np) qsort(part, np, sizeof *part, keep_largest ? by_fp_doc_desc : by_fp_doc);
        for (size_t i = 1; i < np; i++) /* two tuples behind one fingerprint (seen by their payloads) */
            n_collisions += part[i].fp == part[i - 1].fp &&
                            (part[i].score != part[i - 1].score || part[i].cell != part[i - 1].cell);
        size_t kept = 0;
        for (size_t i = 0; i < np; i++)
            if (i == 0 || part[i].fp != part[i - 1].fp) {
                if (part[i].cell != WM_CELL_NONE) tally[part[i].cell]++;
                part[kept++] = part[i];
            }
        if (kept) qsort(part, kept, sizeof *part, by_doc);
        double *score = malloc((kept ? kept : 1) * sizeof *score);
        uint64_t *doc = malloc((kept ? kept : 1) * sizeof *doc);
        for (size_t i = 0; i < kept; i++) score[i] = part[i].score, doc[i] = part[i].doc;
        size_t m;
        assert_int_equal(wm_corpus_deltas(score, doc, kept, deltas + nd, &m), WM_OK);
        nd += m;
        free(score);
        free(doc);
    }
    /* merge: the shards' deltas in document order (a stable order is not needed: sums) */
    if (nd) qsort(deltas, nd, sizeof *deltas, delta_by_doc);
    wm_corpus *c;
    assert_int_equal(wm_corpus_new(&c, wm, flags), WM_OK);
    assert_int_equal(wm_corpus_merge(c, deltas, nd, tokens, d->n, (flags & WM_ACCOUNTS) ? tally : NULL), WM_OK);
    wm_corpus_totals t = WM_INIT(wm_corpus_totals);
    assert_int_equal(wm_corpus_totals_get(c, &t), WM_OK);
    assert_true(t.docs == d->n);
    results_of(c, acc, (flags & WM_ACCOUNTS) != 0, out);
    /* no document may be added to merged totals */
    wm_token one = 0;
    assert_int_equal(wm_corpus_add(c, &one, 1, 0), WM_ERR_ARG);
    wm_corpus_free(c);
    free(all);
    free(part);
    free(deltas);
    free(owner);
}

static void single_run(const wm_watermark *wm, const wm_ctxset *filter, unsigned flags, const docs *d,
                       const uint64_t *acc, results *out)
{
    wm_corpus *c;
    assert_int_equal(wm_corpus_new(&c, wm, flags), WM_OK);
    if (filter) assert_int_equal(wm_corpus_set_filter(c, filter), WM_OK);
    for (size_t i = 0; i < d->n; i++) assert_int_equal(wm_corpus_add(c, d->t[i], d->len[i], d->prompt[i]), WM_OK);
    results_of(c, acc, (flags & WM_ACCOUNTS) != 0, out);
    wm_corpus_free(c);
}

typedef struct split_case {
    const char *scheme;
    uint32_t h, V;
    int accounts, filter;
} split_case;

static void test_split_equal(void **state)
{
    (void)state;
    static const split_case cases[] = {
        { "kgw", 1, 6, 0, 0 },    /* tiny vocabulary: heavy duplication */
        { "kgw", 2, 50, 1, 0 },   /* accounts */
        { "kgw", 2, 50, 1, 1 },   /* accounts and a filter */
        { "gumbel", 4, 40, 0, 0 },
        { "gumbel", 1, 12, 0, 1 },
    };
    static const size_t splits[][2] = { { 1, 1 }, { 3, 2 }, { 7, 5 }, { 23, 16 } };
    wm__rng r;
    wm__rng_seed(&r, 29);
    uint64_t acc[N_ACC];
    for (size_t i = 0; i < N_ACC; i++) acc[i] = 1 + wm__rng_next(&r) % 1000000;
    int control_failed = 0;
    for (size_t ci = 0; ci < sizeof cases / sizeof *cases; ci++) {
        const split_case *k = &cases[ci];
        int kgw = !strcmp(k->scheme, "kgw");
        wm_params p = { .size = sizeof(wm_params), .scheme = k->scheme, .seeding = WM_SEEDING_LEFTHASH, .context_width = k->h, .gamma = kgw ? 0.25 : 0, .delta = kgw ? 2 : 0, .account_delta = k->accounts ? 1.0 : 0 };
        wm_watermark *wm = test_wm_params(&p, k->V);
        docs d = make_docs(&r, wm, 150, k->V, k->h);
        wm_ctxset *f = NULL;
        if (k->filter) {
            assert_int_equal(wm_ctxset_new(&f, wm), WM_OK);
            for (size_t i = 0; i < d.n; i += 3) assert_int_equal(wm_ctxset_add(f, d.t[i], d.len[i]), WM_OK);
        }
        unsigned flags = k->accounts ? WM_ACCOUNTS : 0;
        results one, many;
        single_run(wm, f, flags, &d, acc, &one);
        assert_true(one.s.scored > 0);
        for (size_t si = 0; si < sizeof splits / sizeof *splits; si++) {
            split_run(wm, f, flags, &d, splits[si][0], splits[si][1], 0, &r, acc, &many);
            if (!same_results(&one, &many))
                fail_msg("%s h=%u V=%u accounts=%d filter=%d split %zu/%zu: results differ (statistic %a vs %a)",
                         k->scheme, k->h, k->V, k->accounts, k->filter, splits[si][0], splits[si][1],
                         one.s.statistic, many.s.statistic);
            /* negative control: the largest document index kept */
            split_run(wm, f, flags, &d, splits[si][0], splits[si][1], 1, &r, acc, &many);
            int differs = !same_results(&one, &many);
            if (!differs) print_message("control not caught: case %zu split %zu\n", ci, si);
            control_failed += differs;
        }
        wm_ctxset_free(f);
        free_docs(&d);
        wm_watermark_free(wm);
    }
    print_message("negative control (largest document index kept) differs in %d of 20 runs\n", control_failed);
    print_message("%d-bit fingerprints: %zu shared by two payloads\n", WM_TUPLE_FP_BITS, n_collisions);
    if (WM_TUPLE_FP_BITS == 64)
        assert_true(n_collisions == 0);
    else
        assert_true(n_collisions > 0);
    assert_int_equal(control_failed, 20); /* every case, every split */
}

/* Plain reading mode split like the corpus: map readers (WM_CORPUS_MAP)
 * over a random assignment of documents, records reduced per fingerprint
 * to the smallest document index, wm_reader_merge of the deltas: the score,
 * positions and attribution of one reader fed every document, bit for bit.
 * keep_all: the negative control, the reduce keeps every record. */
static void reader_results(const wm_reader *r, const uint64_t *acc, int accounts, results *out, uint64_t *pos)
{
    memset(out, 0, sizeof *out);
    out->s.size = sizeof out->s;
    out->at.size = sizeof out->at;
    for (size_t i = 0; i < N_ACC; i++) out->top[i].size = sizeof out->top[i];
    assert_int_equal(wm_reader_score(r, 1e-3, &out->s, pos), WM_OK);
    if (accounts) {
        out->has_attr = 1;
        assert_int_equal(wm_reader_attribute(r, acc, N_ACC, 0.01, out->top, N_ACC, &out->at), WM_OK);
    }
}

static void reader_split(const wm_watermark *wm, unsigned flags, const docs *d, wm_token *const *preds, size_t k,
                         size_t chunks, size_t shards, int keep_all, wm__rng *r, const uint64_t *acc, results *out,
                         uint64_t *pos)
{
    size_t n = 0, cap = 0;
    wm_corpus_record *all = NULL;
    uint64_t tokens = 0, positions = 0;
    size_t *owner = malloc((d->n ? d->n : 1) * sizeof *owner);
    for (size_t i = 0; i < d->n; i++) owner[i] = wm__rng_next(r) % chunks;
    for (size_t c = 0; c < chunks; c++) {
        wm_reader *m;
        assert_int_equal(wm_reader_new(&m, wm, flags | WM_CORPUS_MAP), WM_OK);
        for (size_t i = 0; i < d->n; i++) {
            if (owner[i] != c) continue;
            assert_int_equal(wm_reader_set_next_doc(m, i), WM_OK);
            assert_int_equal(wm_reader_add(m, d->t[i], d->len[i], d->prompt[i], preds[i], NULL, k), WM_OK);
        }
        const wm_corpus_record *rec;
        size_t nr;
        uint64_t t, p;
        assert_int_equal(wm_reader_records(m, &rec, &nr), WM_OK);
        assert_int_equal(wm_reader_counts(m, &t, &p), WM_OK);
        tokens += t, positions += p;
        wm_score sc = WM_INIT(wm_score);
        assert_int_equal(wm_reader_score(m, 0.5, &sc, NULL), WM_ERR_ARG); /* a map reader is no test */
        if (n + nr > cap) all = realloc(all, (cap = 2 * (n + nr)) * sizeof *all);
        if (nr) memcpy(all + n, rec, nr * sizeof *rec);
        n += nr;
        wm_reader_free(m);
    }
    wm_reader *one;
    assert_int_equal(wm_reader_new(&one, wm, flags), WM_OK);
    wm_corpus_record *part = malloc((n ? n : 1) * sizeof *part);
    wm_corpus_delta *deltas = malloc((n ? n : 1) * sizeof *deltas);
    uint64_t tally[WM_ACCOUNT_POSITIONS * WM_ACCOUNT_SYMBOLS] = { 0 };
    for (size_t s = 0; s < shards; s++) {
        size_t np = 0, kept = 0, nd;
        for (size_t i = 0; i < n; i++)
            if (all[i].fp % shards == s) part[np++] = all[i];
        if (np) qsort(part, np, sizeof *part, by_fp_doc);
        for (size_t i = 0; i < np; i++)
            if (keep_all || i == 0 || part[i].fp != part[i - 1].fp) {
                if (part[i].cell != WM_CELL_NONE) tally[part[i].cell]++;
                part[kept++] = part[i];
            }
        if (kept) qsort(part, kept, sizeof *part, by_doc);
        double *score = malloc((kept ? kept : 1) * sizeof *score);
        uint64_t *doc = malloc((kept ? kept : 1) * sizeof *doc);
        for (size_t i = 0; i < kept; i++) score[i] = part[i].score, doc[i] = part[i].doc;
        assert_int_equal(wm_corpus_deltas(score, doc, kept, deltas, &nd), WM_OK);
        /* one merge per shard: the deltas of a reader may come in any order */
        assert_int_equal(wm_reader_merge(one, deltas, nd, 0, 0, (flags & WM_ACCOUNTS) ? tally : NULL), WM_OK);
        memset(tally, 0, sizeof tally);
        free(score);
        free(doc);
    }
    assert_int_equal(wm_reader_merge(one, NULL, 0, tokens, positions, (flags & WM_ACCOUNTS) ? tally : NULL), WM_OK);
    reader_results(one, acc, (flags & WM_ACCOUNTS) != 0, out, pos);
    wm_token t0 = 0;
    assert_int_equal(wm_reader_add(one, &t0, 1, 0, &t0, NULL, 1), WM_ERR_ARG); /* merged: nothing more to add */
    wm_reader_free(one);
    free(owner);
    free(all);
    free(part);
    free(deltas);
}

static void test_reader_split(void **state)
{
    (void)state;
    static const split_case cases[] = { { "kgw", 1, 6, 1, 0 }, { "kgw", 2, 50, 1, 0 }, { "gumbel", 2, 40, 0, 0 } };
    static const size_t splits[][2] = { { 1, 1 }, { 3, 2 }, { 7, 5 }, { 23, 16 } };
    enum { K = 3 };
    wm__rng r;
    wm__rng_seed(&r, 31);
    uint64_t acc[N_ACC];
    for (size_t i = 0; i < N_ACC; i++) acc[i] = 1 + wm__rng_next(&r) % 1000000;
    for (size_t ci = 0; ci < sizeof cases / sizeof *cases; ci++) {
        const split_case *c = &cases[ci];
        int kgw = !strcmp(c->scheme, "kgw");
        wm_params p = { .size = sizeof(wm_params), .scheme = c->scheme, .seeding = WM_SEEDING_LEFTHASH,
                        .context_width = c->h, .gamma = kgw ? 0.25 : 0, .delta = kgw ? 2 : 0,
                        .account_delta = c->accounts ? 1.0 : 0 };
        wm_watermark *wm = test_wm_params(&p, c->V);
        docs d = make_docs(&r, wm, 150, c->V, c->h);
        wm_token **preds = calloc(d.n, sizeof *preds);
        for (size_t i = 0; i < d.n; i++) {
            preds[i] = malloc((d.len[i] ? d.len[i] : 1) * K * sizeof **preds);
            for (size_t j = 0; j < d.len[i] * K; j++) /* a tenth not read; heavy duplication from a small V */
                preds[i][j] = wm__rng_next(&r) % 10 == 0 ? WM_TOKEN_NONE : (wm_token)(wm__rng_next(&r) % c->V);
        }
        unsigned flags = c->accounts ? WM_ACCOUNTS : 0;
        wm_reader *single;
        assert_int_equal(wm_reader_new(&single, wm, flags), WM_OK);
        for (size_t i = 0; i < d.n; i++)
            assert_int_equal(wm_reader_add(single, d.t[i], d.len[i], d.prompt[i], preds[i], NULL, K), WM_OK);
        results one, many;
        uint64_t pos_one, pos_many;
        reader_results(single, acc, c->accounts, &one, &pos_one);
        wm_reader_free(single);
        assert_true(one.s.scored > 0 && pos_one > 0);
        for (size_t si = 0; si < sizeof splits / sizeof *splits; si++) {
            reader_split(wm, flags, &d, preds, K, splits[si][0], splits[si][1], 0, &r, acc, &many, &pos_many);
            if (!same_results(&one, &many) || pos_one != pos_many)
                fail_msg("reader %s h=%u split %zu/%zu: results differ (statistic %a vs %a, positions %llu vs %llu)",
                         c->scheme, c->h, splits[si][0], splits[si][1], one.s.statistic, many.s.statistic,
                         (unsigned long long)pos_one, (unsigned long long)pos_many);
            reader_split(wm, flags, &d, preds, K, splits[si][0], splits[si][1], 1, &r, acc, &many, &pos_many);
            assert_false(same_results(&one, &many)); /* the control: no dedup in the reduce */
        }
        for (size_t i = 0; i < d.n; i++) free(preds[i]);
        free(preds);
        free_docs(&d);
        wm_watermark_free(wm);
    }
    /* refusals: a weighted map reader; merging into a map, weighted or fed reader */
    wm_params p = { .size = sizeof(wm_params), .scheme = "kgw", .seeding = WM_SEEDING_LEFTHASH, .context_width = 1,
                    .gamma = 0.25, .delta = 2 };
    wm_watermark *wm = test_wm_params(&p, 20);
    wm_reader *x;
    assert_int_equal(wm_reader_new(&x, wm, WM_READ_WEIGHTED | WM_CORPUS_MAP), WM_ERR_ARG);
    assert_int_equal(wm_reader_new(&x, wm, WM_CORPUS_MAP), WM_OK);
    assert_int_equal(wm_reader_merge(x, NULL, 0, 1, 1, NULL), WM_ERR_ARG);
    wm_reader_free(x);
    assert_int_equal(wm_reader_new(&x, wm, 0), WM_OK);
    wm_token t[3] = { 1, 2, 3 }, pr[3] = { 4, 5, 6 };
    const wm_corpus_record *rec;
    size_t nr;
    assert_int_equal(wm_reader_records(x, &rec, &nr), WM_ERR_ARG);
    assert_int_equal(wm_reader_add(x, t, 3, 0, pr, NULL, 1), WM_OK);
    assert_int_equal(wm_reader_merge(x, NULL, 0, 1, 1, NULL), WM_ERR_ARG);
    wm_reader_free(x);
    wm_watermark_free(wm);
}

/* The exact sum: any order the same, rounded once to nearest (checked
 * against the compiler's own 128-bit conversion and against long double
 * partial sums), and what is not a score is refused. */
static void test_fixed(void **state)
{
    (void)state;
    wm__rng r;
    wm__rng_seed(&r, 7);
    enum { N = 20000 };
    double *x = malloc(N * sizeof *x);
    for (size_t i = 0; i < N; i++) {
        uint32_t u = (uint32_t)wm__rng_next(&r);
        if (i % 7 == 0) u = (uint32_t)(wm__rng_next(&r) % 4); /* the smallest scores */
        x[i] = wm__gumbel_score(u, 32);
    }
    uint64_t ref_hi = 0, ref_lo = 0;
    for (int round = 0; round < 5; round++) {
        counts c = { 0 };
        for (size_t i = 0; i < N; i++) count_visit(&c, x[i], 0, 0, 0);
        assert_false(c.bad);
        if (round == 0) ref_hi = (uint64_t)(c.fx >> 64), ref_lo = (uint64_t)c.fx;
        assert_true((uint64_t)(c.fx >> 64) == ref_hi && (uint64_t)c.fx == ref_lo);
        double want = ldexp((double)c.fx, -84); /* libgcc rounds 128-bit integers to nearest */
        assert_true(same_bits(counts_stat(&c), want));
        for (size_t i = N; i > 1; i--) { /* another order next round */
            size_t j = wm__rng_next(&r) % i;
            double t = x[i - 1];
            x[i - 1] = x[j], x[j] = t;
        }
    }
    /* rounding: ties to even, carries */
    wm__u128 one = 1;
    assert_true(wm__fixed_double((one << 53) + 1) == ldexp(1, 53 - 84));
    assert_true(wm__fixed_double((one << 53) + 3) == ldexp((double)((1ull << 53) + 4), -84));
    assert_true(wm__fixed_double((one << 100) - 1) == ldexp(1, 100 - 84));
    for (int i = 0; i < 100000; i++) {
        wm__u128 v = ((wm__u128)wm__rng_next(&r) << 64 | wm__rng_next(&r)) >> (wm__rng_next(&r) % 120);
        assert_true(same_bits(wm__fixed_double(v), ldexp((double)v, -84)));
    }
    /* not scores */
    wm__u128 f;
    const double bad[] = { -1, 32, 1e300, NAN, INFINITY, -INFINITY, 0x1p-90, 0x1.0000000000001p-33 };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) assert_int_equal(wm__fixed_of(bad[i], &f), -1);
    assert_int_equal(wm__fixed_of(1.0, &f), 0);
    assert_true(f == one << 84);
    wm_corpus_delta dl[2];
    size_t m;
    double s2[2] = { 1.0, NAN };
    uint64_t d2[2] = { 0, 1 }, d2r[2] = { 1, 0 };
    assert_int_equal(wm_corpus_deltas(s2, d2, 2, dl, &m), WM_ERR_ARG);
    s2[1] = 0.5;
    assert_int_equal(wm_corpus_deltas(s2, d2r, 2, dl, &m), WM_ERR_ARG); /* not sorted */
    assert_int_equal(wm_corpus_deltas(s2, d2, 2, dl, &m), WM_OK);
    assert_true(m == 2 && dl[0].scored == 1 && dl[0].stat_hi == 1u << 20 && dl[1].stat_hi == 1u << 19);
    free(x);
}

/* Merge refuses what cannot be a cluster's totals, and changes nothing. */
static void test_merge_refusals(void **state)
{
    (void)state;
    wm_params p = { .size = sizeof(wm_params), .scheme = "kgw", .seeding = WM_SEEDING_LEFTHASH, .context_width = 1, .gamma = 0.25, .delta = 2, .account_delta = 1.0 };
    wm_watermark *wm = test_wm_params(&p, 100);
    wm_corpus *c;
    uint64_t tally[WM_ACCOUNT_POSITIONS * WM_ACCOUNT_SYMBOLS] = { 0 };
    wm_corpus_delta d[2] = { { 5, 2, 0, 0 }, { 3, 1, 0, 0 } };
    assert_int_equal(wm_corpus_new(&c, wm, WM_ACCOUNTS), WM_OK);
    tally[0] = 3;
    assert_int_equal(wm_corpus_merge(c, d, 2, 10, 0, tally), WM_ERR_ARG); /* documents out of order */
    assert_int_equal(wm_corpus_merge(c, d, 1, 10, 0, NULL), WM_ERR_ARG);  /* no tally with accounts */
    assert_int_equal(wm_corpus_merge(c, d, 1, 10, 0, tally), WM_ERR_ARG); /* tally != tuples */
    tally[0] = 2;
    assert_int_equal(wm_corpus_merge(c, d, 1, 10, 0, tally), WM_OK);
    wm_corpus_totals t = WM_INIT(wm_corpus_totals);
    assert_int_equal(wm_corpus_totals_get(c, &t), WM_OK);
    assert_true(t.docs == 6 && t.scored == 2 && t.tokens == 10 && t.size == sizeof t);
    /* versioned output: a size the library does not know is refused, nothing written */
    wm_corpus_totals u = { .size = sizeof u - 1, .docs = 77 };
    assert_int_equal(wm_corpus_totals_get(c, &u), WM_ERR_ARG);
    assert_true(u.docs == 77);
    tally[0] = 1;
    assert_int_equal(wm_corpus_merge(c, d + 1, 1, 0, 0, tally), WM_ERR_ARG); /* document 3 is behind */
    wm_corpus_free(c);
    /* a corpus fed documents cannot take merged totals */
    wm_token t5[5] = { 1, 2, 3, 4, 5 };
    assert_int_equal(wm_corpus_new(&c, wm, 0), WM_OK);
    assert_int_equal(wm_corpus_add(c, t5, 5, 0), WM_OK);
    assert_int_equal(wm_corpus_merge(c, d, 1, 10, 0, NULL), WM_ERR_ARG);
    assert_int_equal(wm_corpus_records_clear(c), WM_ERR_ARG);
    assert_int_equal(wm_corpus_set_next_doc(c, 3), WM_ERR_ARG);
    wm_corpus_free(c);
    wm_watermark_free(wm);
}

static void write_file(const char *path, const unsigned char *b, size_t n)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(b, 1, n, f), n);
    fclose(f);
}

static unsigned char *read_file(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    *n = (size_t)ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *b = malloc(*n);
    assert_int_equal(fread(b, 1, *n, f), *n);
    fclose(f);
    return b;
}

/* A checkpoint, resumed, gives the uninterrupted run's bits; a checkpoint
 * of another key, vocabulary, flags or filter, a damaged one, a truncated
 * one and one of another version are refused with file and byte. */
static void test_checkpoint(void **state)
{
    (void)state;
    char dir[] = "/tmp/wm_ckXXXXXX", path[128], path2[128];
    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/state", dir);
    snprintf(path2, sizeof path2, "%s/bad", dir);
    wm__rng r;
    wm__rng_seed(&r, 3);
    uint64_t acc[N_ACC];
    for (size_t i = 0; i < N_ACC; i++) acc[i] = 1 + i;
    for (int g = 0; g < 2; g++) {
        wm_params p = { .size = sizeof(wm_params), .scheme = g ? "gumbel" : "kgw", .seeding = WM_SEEDING_LEFTHASH, .context_width = 2, .gamma = g ? 0 : 0.25, .delta = g ? 0 : 2, .account_delta = g ? 0 : 1.0 };
        unsigned flags = g ? 0 : WM_ACCOUNTS;
        wm_watermark *wm = test_wm_params(&p, 30);
        docs d = make_docs(&r, wm, 80, 30, 2);
        wm_ctxset *f;
        assert_int_equal(wm_ctxset_new(&f, wm), WM_OK);
        for (size_t i = 0; i < d.n; i += 2) assert_int_equal(wm_ctxset_add(f, d.t[i], d.len[i]), WM_OK);
        results one, resumed;
        single_run(wm, f, flags, &d, acc, &one);
        size_t last_cut = 0;
        for (size_t cut = 0; cut <= d.n; last_cut = cut, cut += 27) {
            wm_corpus *a, *b;
            wm_error err;
            assert_int_equal(wm_corpus_new(&a, wm, flags), WM_OK);
            assert_int_equal(wm_corpus_set_filter(a, f), WM_OK);
            for (size_t i = 0; i < cut; i++) assert_int_equal(wm_corpus_add(a, d.t[i], d.len[i], d.prompt[i]), WM_OK);
            const char meta[] = "position 17";
            assert_int_equal(wm_corpus_save(a, path, meta, sizeof meta, &err), WM_OK);
            wm_corpus_free(a);
            assert_int_equal(wm_corpus_new(&b, wm, flags), WM_OK);
            assert_int_equal(wm_corpus_set_filter(b, f), WM_OK);
            char got[64];
            size_t got_len;
            assert_int_equal(wm_corpus_load(b, path, got, sizeof got, &got_len, &err), WM_OK);
            assert_true(got_len == sizeof meta && !memcmp(got, meta, got_len));
            for (size_t i = cut; i < d.n; i++) assert_int_equal(wm_corpus_add(b, d.t[i], d.len[i], d.prompt[i]), WM_OK);
            results_of(b, acc, !g, &resumed);
            assert_true(same_results(&one, &resumed));
            wm_corpus_free(b);
        }
        /* refusals */
        wm_corpus *c;
        wm_error err;
        char got[64];
        size_t got_len;
        assert_int_equal(wm_corpus_new(&c, wm, flags), WM_OK);
        FAILS_WITH_MESSAGE(WM_ERR_ARG, wm_corpus_load(c, path, got, sizeof got, &got_len, &err)); /* no filter */
        assert_non_null(strstr(err.message, "filter"));
        wm_corpus_free(c);
        assert_int_equal(wm_corpus_new(&c, wm, g ? WM_NO_DEDUP : 0), WM_OK);
        assert_int_equal(wm_corpus_set_filter(c, f), WM_OK);
        FAILS_WITH_MESSAGE(WM_ERR_ARG, wm_corpus_load(c, path, got, sizeof got, &got_len, &err)); /* flags */
        assert_non_null(strstr(err.message, "flags"));
        wm_corpus_free(c);
        wm_params p2 = p;
        p2.context_width = 1;
        wm_watermark *other = test_wm_params(&p2, 30), *vocab = test_wm_params(&p, 31);
        wm_ctxset *f2;
        assert_int_equal(wm_ctxset_new(&f2, other), WM_OK);
        assert_int_equal(wm_corpus_new(&c, other, flags), WM_OK);
        assert_int_equal(wm_corpus_set_filter(c, f2), WM_OK);
        FAILS_WITH_MESSAGE(WM_ERR_ARG, wm_corpus_load(c, path, got, sizeof got, &got_len, &err)); /* key */
        assert_non_null(strstr(err.message, "key"));
        wm_corpus_free(c);
        wm_ctxset_free(f2);
        assert_int_equal(wm_corpus_new(&c, vocab, flags), WM_OK);
        FAILS_WITH_MESSAGE(WM_ERR_ARG, wm_corpus_load(c, path, got, sizeof got, &got_len, &err)); /* vocabulary */
        assert_non_null(strstr(err.message, "vocabulary"));
        wm_corpus_free(c);
        wm_watermark_free(other);
        wm_watermark_free(vocab);
        size_t n;
        unsigned char *b = read_file(path, &n);
        assert_int_equal(wm_corpus_new(&c, wm, flags), WM_OK);
        assert_int_equal(wm_corpus_set_filter(c, f), WM_OK);
        FAILS_WITH_MESSAGE(WM_ERR_ARG, wm_corpus_load(c, path, got, 4, &got_len, &err)); /* no room for meta */
        for (size_t at = 0; at < n; at += n / 13 + 1) { /* any byte changed: refused */
            b[at] ^= 0x10;
            write_file(path2, b, n);
            b[at] ^= 0x10;
            memset(&err, 0, sizeof err);
            wm_status st = wm_corpus_load(c, path2, got, sizeof got, &got_len, &err);
            assert_true(st == WM_ERR_CORRUPT || (at < 8 && st == WM_ERR_FORMAT));
            assert_non_null(strstr(err.message, path2));
        }
        write_file(path2, b, n - 1);
        FAILS_WITH_MESSAGE(WM_ERR_CORRUPT, wm_corpus_load(c, path2, got, sizeof got, &got_len, &err));
        write_file(path2, b, 50);
        FAILS_WITH_MESSAGE(WM_ERR_FORMAT, wm_corpus_load(c, path2, got, sizeof got, &got_len, &err));
        assert_non_null(strstr(err.message, "truncated"));
        b[8] = 2; /* version 2, checksum made right: refused by version */
        crypto_generichash(b + n - 32, 32, b, n - 32, NULL, 0);
        write_file(path2, b, n);
        FAILS_WITH_MESSAGE(WM_ERR_FORMAT, wm_corpus_load(c, path2, got, sizeof got, &got_len, &err));
        assert_non_null(strstr(err.message, "version 2"));
        /* nothing was changed by the refusals: the good file still loads into c */
        assert_int_equal(wm_corpus_load(c, path, got, sizeof got, &got_len, &err), WM_OK);
        for (size_t i = last_cut; i < d.n; i++) assert_int_equal(wm_corpus_add(c, d.t[i], d.len[i], d.prompt[i]), WM_OK);
        results_of(c, acc, !g, &resumed);
        assert_true(same_results(&one, &resumed));
        wm_corpus_free(c);
        free(b);
        wm_ctxset_free(f);
        free_docs(&d);
        wm_watermark_free(wm);
    }
    unlink(path);
    unlink(path2);
    rmdir(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fixed),
        cmocka_unit_test(test_merge_refusals),
        cmocka_unit_test(test_split_equal),
        cmocka_unit_test(test_reader_split),
        cmocka_unit_test(test_checkpoint),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
