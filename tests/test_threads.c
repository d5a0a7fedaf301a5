/* The objects the headers call shareable, shared: one wm_watermark per
 * scheme (key.h: "one object can be shared by any number of threads without
 * locking"), one loaded wm_tokenizer (tokenizer.h: "share one between
 * threads freely"), a filled wm_ctxset ("read-only use afterwards is"
 * thread-safe) used as every thread's corpus filter, and a wm_corpus read
 * by all (score, audit and attribution: "thread-safe with other readers").
 * THREADS threads embed (bias, batch, candidates, their own samplers and
 * wm_select sets), tokenize (their own encoders), detect and read at once;
 * each thread's results must equal the same work done on one thread.
 *
 *   test_threads FIXTURES_DIR
 *
 * scripts/test.sh runs it under ThreadSanitizer (build-tsan, halt_on_error),
 * where any data race fails the run; in the other builds it checks the
 * results. */
#include "testutil.h"

#include <pthread.h>
#include <unistd.h>

#define THREADS 6
#define STEPS 120
#define V 8192u

static wm_watermark *kgw, *gum;
static wm_tokenizer *tok; /* test_concurrent_loads's; NULL without the fixture */
static wm_ctxset *filter;
static wm_corpus *shared_corpus;
static pthread_barrier_t start;
static const char *fixtures;

static const char *texts[] = {
    "A watermark is a keyed pattern in the choice of tokens, invisible to readers.",
    "Detection counts the green tuples; under the null hypothesis their count is binomial.",
    "Thread safety means one immutable object, many readers, and no lock on the hot path.",
    "Ünïcödé text, 日本語, and numbers 12345 go through the same byte-level BPE.",
};

/* FNV-1a over everything a job produces. */
typedef struct digest { uint64_t h; } digest;
static void mix(digest *d, const void *p, size_t n)
{
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++) d->h = (d->h ^ b[i]) * 0x100000001b3ULL;
}
#define MIX(d, x) mix((d), &(x), sizeof(x))

static void mix_score(digest *d, const wm_score *s)
{
    MIX(d, s->tokens), MIX(d, s->scored), MIX(d, s->statistic), MIX(d, s->log10_p);
    unsigned char w = s->watermarked;
    MIX(d, w);
}

typedef struct job {
    int id;
    digest d;
    wm_status st; /* the first failure */
    int wait;     /* meet the others at the barrier first */
} job;

#define CHECK(j, x)                                                                                            \
    do {                                                                                                       \
        wm_status s_ = (x);                                                                                    \
        if (s_ != WM_OK && (j)->st == WM_OK) (j)->st = s_;                                                    \
        MIX(&(j)->d, s_);                                                                                      \
    } while (0)

static void embed_and_detect(job *j, wm__rng *r, wm_token *t, float *l)
{
    /* biasing, three ways, for this thread's account */
    uint64_t account = (uint64_t)j->id + 1;
    synth_logits(r, l, V);
    CHECK(j, wm_bias_logits(kgw, account, t, 3, l, V));
    mix(&j->d, l, V * sizeof *l);
    uint16_t rows[2][V];
    for (size_t i = 0; i < V; i++) rows[0][i] = rows[1][i] = (uint16_t)(0x3f80 + (i & 0x7f)); /* bf16 */
    const wm_token *ctxs[2] = { t, t + 1 };
    size_t nctx[2] = { 3, 3 };
    uint64_t accs[2] = { account, WM_ACCOUNT_NONE };
    CHECK(j, wm_bias_logits_batch(kgw, 2, accs, ctxs, nctx, rows, WM_DTYPE_BF16, V, V));
    mix(&j->d, rows, sizeof rows);
    struct { wm_token id; float logit; } cand[40];
    for (int c = 0; c < 40; c++) cand[c].id = (wm_token)((c * 197 + j->id) % (int)V), cand[c].logit = (float)c;
    CHECK(j, wm_bias_candidates(kgw, account, t, 3, 40, &cand[0].id, sizeof cand[0], &cand[0].logit, sizeof cand[0]));
    mix(&j->d, cand, sizeof cand);

    /* a sampler of each scheme, owned by this thread, on the shared watermarks */
    wm_sampler_params kp = { .size = sizeof(wm_sampler_params), .temperature = 0.8f, .top_k = 50, .top_p = 0.95f, .seed = (uint64_t)j->id, .account = account };
    wm_sampler_params gp = { .size = sizeof(wm_sampler_params), .temperature = 1.0f, .top_k = 0, .top_p = 1.0f, .seed = (uint64_t)j->id + 100, .account = WM_ACCOUNT_NONE };
    wm_sampler *ks = NULL, *gs = NULL;
    CHECK(j, wm_sampler_new(&ks, kgw, &kp));
    CHECK(j, wm_sampler_new(&gs, gum, &gp));
    for (size_t i = 4; ks && i < STEPS; i++) {
        synth_logits(r, l, V);
        CHECK(j, wm_sampler_sample(ks, t, i, l, V, true, &t[i]));
    }
    mix(&j->d, t, STEPS * sizeof *t);
    wm_score s = WM_INIT(wm_score);
    wm_window w = WM_INIT(wm_window);
    CHECK(j, wm_detect(kgw, t, STEPS, 4, 0, 1e-3, &s));
    mix_score(&j->d, &s);
    CHECK(j, wm_detect_window(kgw, t, STEPS, 0, 0, 1e-3, &w));
    mix_score(&j->d, &w.score), MIX(&j->d, w.begin), MIX(&j->d, w.end);
    for (size_t i = 4; gs && i < STEPS; i++) {
        synth_logits(r, l, V);
        CHECK(j, wm_sampler_sample(gs, t, i, l, V, true, &t[i]));
    }
    mix(&j->d, t, STEPS * sizeof *t);
    CHECK(j, wm_detect(gum, t, STEPS, 0, 0, 1e-3, &s));
    mix_score(&j->d, &s);
    wm_sampler_free(ks);
    wm_sampler_free(gs);

    /* wm_select with this thread's own set of used seeds */
    wm_ctxset *used = NULL;
    CHECK(j, wm_ctxset_new(&used, gum));
    for (size_t i = 4; used && i < STEPS; i++) {
        wm_token ids[16];
        float wt[16];
        for (int c = 0; c < 16; c++) ids[c] = (wm_token)((i * 31 + (size_t)c * 509) % V), wt[c] = (float)(c + 1);
        bool sel;
        wm_token pick = 0;
        CHECK(j, wm_select(gum, used, t, i, 16, ids, sizeof *ids, wt, sizeof *wt, &pick, &sel));
        t[i] = sel ? pick : ids[0];
    }
    wm_ctxset_free(used);
    mix(&j->d, t, STEPS * sizeof *t);

    /* point queries */
    bool g;
    double sc;
    uint64_t seed;
    bool has;
    uint8_t sym[WM_ACCOUNT_POSITIONS];
    CHECK(j, wm_is_green(kgw, t, 10, t[10], &g));
    CHECK(j, wm_tuple_score(gum, t, 10, t[10], &sc));
    CHECK(j, wm_context_seed(kgw, t, 10, &seed, &has));
    CHECK(j, wm_account_symbols(kgw, account, sym));
    MIX(&j->d, g), MIX(&j->d, sc), MIX(&j->d, seed), MIX(&j->d, sym);

    /* this thread's corpus through the shared filter; a reader */
    wm_corpus *c = NULL;
    CHECK(j, wm_corpus_new(&c, kgw, 0));
    if (c) {
        CHECK(j, wm_corpus_set_filter(c, filter));
        CHECK(j, wm_corpus_add(c, t, STEPS, 2));
        CHECK(j, wm_corpus_score(c, 1e-3, &s));
        mix_score(&j->d, &s);
        wm_corpus_free(c);
    }
    wm_reader *rd = NULL;
    CHECK(j, wm_reader_new(&rd, kgw, 0));
    if (rd) {
        wm_token pred[STEPS];
        for (size_t i = 0; i < STEPS; i++) pred[i] = t[(i + 1) % STEPS];
        uint64_t pos;
        CHECK(j, wm_reader_add(rd, t, STEPS, 3, pred, NULL, 1));
        CHECK(j, wm_reader_score(rd, 1e-3, &s, &pos));
        mix_score(&j->d, &s), MIX(&j->d, pos);
        wm_reader_free(rd);
    }
}

/* The corpus every thread reads. */
static void read_shared(job *j)
{
    wm_score s = WM_INIT(wm_score);
    wm_audit a = WM_INIT(wm_audit);
    wm_attribution at = WM_INIT(wm_attribution);
    wm_account_score top[3] = { WM_INIT(wm_account_score) };
    uint64_t ids[64];
    for (int i = 0; i < 64; i++) ids[i] = (uint64_t)i + 1;
    CHECK(j, wm_corpus_score(shared_corpus, 1e-3, &s));
    mix_score(&j->d, &s);
    CHECK(j, wm_corpus_audit(shared_corpus, 1e-3, 1e-6, &a));
    MIX(&j->d, a.log10_p), MIX(&j->d, a.excess), MIX(&j->d, a.more_tuples);
    CHECK(j, wm_corpus_attribute(shared_corpus, ids, 64, 1e-3, top, 3, &at));
    MIX(&j->d, at.named), MIX(&j->d, at.null_mean);
    for (size_t i = 0; i < at.n_top; i++) MIX(&j->d, top[i].account), MIX(&j->d, top[i].log10_p);
}

/* Tokenize with this thread's encoder of the shared tokenizer, detect the ids. */
static void tokenize(job *j)
{
    if (!tok) return;
    wm_encoder *e = NULL;
    CHECK(j, wm_encoder_new(&e, tok));
    if (!e) return;
    uint32_t nv;
    CHECK(j, wm_tokenizer_n_vocab(tok, &nv));
    for (size_t k = 0; k < sizeof texts / sizeof texts[0]; k++) {
        const char *text = texts[(k + (size_t)j->id) % (sizeof texts / sizeof texts[0])];
        const wm_token *ids;
        size_t n;
        wm_error err;
        if (wm_encode(e, text, strlen(text), 0, &ids, &n, &err)) {
            CHECK(j, WM_ERR_FORMAT);
            break;
        }
        mix(&j->d, ids, n * sizeof *ids);
        /* ids of a vocabulary of nv: the kgw watermark is of V = 8192, so
         * fold them into it */
        wm_token folded[256];
        size_t m = n < 256 ? n : 256;
        for (size_t i = 0; i < m; i++) folded[i] = (wm_token)((uint32_t)ids[i] % V);
        wm_score s = WM_INIT(wm_score);
        CHECK(j, wm_detect(kgw, folded, m, 0, 0, 1e-3, &s));
        mix_score(&j->d, &s);
    }
    wm_encoder_free(e);
}

static void *work(void *arg)
{
    job *j = arg;
    j->d.h = 0xcbf29ce484222325ULL;
    j->st = WM_OK;
    if (j->wait) pthread_barrier_wait(&start);
    wm__rng r;
    wm__rng_seed(&r, 1000 + (uint64_t)j->id);
    wm_token *t = calloc(STEPS, sizeof *t);
    float *l = malloc(V * sizeof *l);
    for (int i = 0; i < 4; i++) t[i] = (wm_token)(j->id * 4 + i);
    for (int round = 0; round < 2; round++) {
        embed_and_detect(j, &r, t, l);
        read_shared(j);
        tokenize(j);
    }
    free(t);
    free(l);
    return NULL;
}

static void test_shared_objects(void **state)
{
    (void)state;
    job solo[THREADS], par[THREADS];
    pthread_t th[THREADS];
    for (int i = 0; i < THREADS; i++) { /* one thread, one job after the other: the reference */
        solo[i] = (job){ i, { 0 }, WM_OK, 0 };
        work(&solo[i]);
        assert_int_equal(solo[i].st, WM_OK);
        par[i] = (job){ i, { 0 }, WM_OK, 1 };
    }
    assert_int_equal(pthread_barrier_init(&start, NULL, THREADS), 0);
    for (int i = 0; i < THREADS; i++) assert_int_equal(pthread_create(&th[i], NULL, work, &par[i]), 0);
    for (int i = 0; i < THREADS; i++) pthread_join(th[i], NULL);
    pthread_barrier_destroy(&start);
    for (int i = 0; i < THREADS; i++) {
        assert_int_equal(par[i].st, WM_OK);
        if (par[i].d.h != solo[i].d.h) fail_msg("thread %d: results differ from the single-threaded run", i);
    }
}

/* Loading the shared tokenizer from four threads at once, first in the
 * process: the Unicode tables and the byte table are built once, by
 * whichever load gets there first, and every load must see them whole.
 * The first thread's tokenizer is the one the other test shares. */
static char tok_path[4096];
static int have_tok;

static void *load_one(void *arg)
{
    wm_tokenizer **t = arg;
    pthread_barrier_wait(&start);
    if (wm_tokenizer_load(t, tok_path, NULL) != WM_OK) *t = NULL;
    return NULL;
}

static void test_concurrent_loads(void **state)
{
    (void)state;
    if (!have_tok) {
        fprintf(stderr, "\n*** %s is missing: the shared tokenizer is NOT tested (scripts/fetch-fixtures.sh)\n\n",
                tok_path);
        skip();
    }
    pthread_t th[4];
    wm_tokenizer *t[4];
    assert_int_equal(pthread_barrier_init(&start, NULL, 4), 0);
    for (int i = 0; i < 4; i++) assert_int_equal(pthread_create(&th[i], NULL, load_one, &t[i]), 0);
    for (int i = 0; i < 4; i++) pthread_join(th[i], NULL);
    pthread_barrier_destroy(&start);
    for (int i = 0; i < 4; i++) assert_non_null(t[i]);
    unsigned char a[32], b[32];
    for (int i = 1; i < 4; i++) {
        assert_int_equal(wm_tokenizer_sha256(t[0], a), WM_OK);
        assert_int_equal(wm_tokenizer_sha256(t[i], b), WM_OK);
        assert_memory_equal(a, b, 32);
        wm_tokenizer_free(t[i]);
    }
    tok = t[0];
}

static int setup(void **state)
{
    (void)state;
    wm_params kp = { .size = sizeof(wm_params), .scheme = "kgw", .seeding = WM_SEEDING_MINHASH, .context_width = 2, .gamma = 0.25, .delta = 2.0, .account_delta = 2.0 };
    wm_params gp = { .size = sizeof(wm_params), .scheme = "gumbel", .seeding = WM_SEEDING_LEFTHASH, .context_width = 2, .gamma = 0, .delta = 0, .account_delta = 0 };
    kgw = test_wm_params(&kp, V);
    gum = test_wm_params(&gp, V);
    snprintf(tok_path, sizeof tok_path, "%s/gpt2/tokenizer.json", fixtures);
    have_tok = access(tok_path, R_OK) == 0;
    wm__rng r;
    wm__rng_seed(&r, 99);
    wm_token t[2000];
    random_tokens(&r, t, 2000, V);
    if (wm_ctxset_new(&filter, kgw) || wm_ctxset_add(filter, t, 2000)) return -1;
    if (wm_corpus_new(&shared_corpus, kgw, WM_ACCOUNTS) || wm_corpus_add(shared_corpus, t, 2000, 10)) return -1;
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    wm_corpus_free(shared_corpus);
    wm_ctxset_free(filter);
    wm_tokenizer_free(tok);
    wm_watermark_free(kgw);
    wm_watermark_free(gum);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s FIXTURES_DIR\n", argv[0]);
        return 2;
    }
    fixtures = argv[1];
    const struct CMUnitTest tests[] = {
        /* first, while the process has built no tables yet */
        cmocka_unit_test(test_concurrent_loads),
        cmocka_unit_test(test_shared_objects),
    };
    return cmocka_run_group_tests_name("threads", tests, setup, teardown);
}
