/* Error paths, sampler behaviour, detection bookkeeping. */
#include "testutil.h"
#include "embed/softmax.h"

#include <pthread.h>

static void test_bad_params(void **state)
{
    (void)state;
    wm_key *k = NULL;
    const wm_params bad[] = {
        { .size = sizeof(wm_params), .scheme = "kgw", .seeding = WM_SEEDING_LEFTHASH, .context_width = 1, .gamma = 0.0, .delta = 2, .account_delta = 0 }, { .size = sizeof(wm_params), .scheme = "kgw", .seeding = WM_SEEDING_LEFTHASH, .context_width = 1, .gamma = 1.0, .delta = 2, .account_delta = 0 },
        { .size = sizeof(wm_params), .scheme = "kgw", .seeding = WM_SEEDING_LEFTHASH, .context_width = 1, .gamma = -0.5, .delta = 2, .account_delta = 0 }, { .size = sizeof(wm_params), .scheme = "kgw", .seeding = WM_SEEDING_LEFTHASH, .context_width = 1, .gamma = NAN, .delta = 2, .account_delta = 0 },
        { .size = sizeof(wm_params), .scheme = "kgw", .seeding = WM_SEEDING_LEFTHASH, .context_width = 1, .gamma = 0.25, .delta = 0, .account_delta = 0 }, { .size = sizeof(wm_params), .scheme = "kgw", .seeding = WM_SEEDING_LEFTHASH, .context_width = 1, .gamma = 0.25, .delta = INFINITY, .account_delta = 0 },
        { .size = sizeof(wm_params), .scheme = "kgw", .seeding = WM_SEEDING_LEFTHASH, .context_width = 1, .gamma = 0.25, .delta = NAN, .account_delta = 0 }, { .size = sizeof(wm_params), .scheme = "kgw", .seeding = WM_SEEDING_LEFTHASH, .context_width = 17, .gamma = 0.25, .delta = 2, .account_delta = 0 },
        { .size = sizeof(wm_params), .scheme = "kgw", .seeding = WM_SEEDING_MINHASH, .context_width = 0, .gamma = 0.25, .delta = 2, .account_delta = 0 }, { .size = sizeof(wm_params), .scheme = "kgw", .seeding = (wm_seeding)7, .context_width = 1, .gamma = 0.25, .delta = 2, .account_delta = 0 },
        { .size = sizeof(wm_params), .scheme = "nosuch", .seeding = WM_SEEDING_LEFTHASH, .context_width = 1, .gamma = 0.25, .delta = 2, .account_delta = 0 }, { .size = sizeof(wm_params), .scheme = "KGW", .seeding = WM_SEEDING_LEFTHASH, .context_width = 1, .gamma = 0.25, .delta = 2, .account_delta = 0 },
        /* gumbel has no gamma or delta: a value there is a mistake, not ignored */
        { .size = sizeof(wm_params), .scheme = "gumbel", .seeding = WM_SEEDING_LEFTHASH, .context_width = 4, .gamma = 0.25, .delta = 0, .account_delta = 0 }, { .size = sizeof(wm_params), .scheme = "gumbel", .seeding = WM_SEEDING_LEFTHASH, .context_width = 4, .gamma = 0, .delta = 2, .account_delta = 0 },
        { .size = sizeof(wm_params), .scheme = "gumbel", .seeding = WM_SEEDING_LEFTHASH, .context_width = 17, .gamma = 0, .delta = 0, .account_delta = 0 }, { .size = sizeof(wm_params), .scheme = "gumbel", .seeding = WM_SEEDING_MINHASH, .context_width = 0, .gamma = 0, .delta = 0, .account_delta = 0 },
        /* the account layer: 0 or a usable bias, and kgw only */
        { .size = sizeof(wm_params), .scheme = "kgw", .seeding = WM_SEEDING_LEFTHASH, .context_width = 1, .gamma = 0.25, .delta = 2, .account_delta = 1e-5 }, { .size = sizeof(wm_params), .scheme = "kgw", .seeding = WM_SEEDING_LEFTHASH, .context_width = 1, .gamma = 0.25, .delta = 2, .account_delta = -1 },
        { .size = sizeof(wm_params), .scheme = "kgw", .seeding = WM_SEEDING_LEFTHASH, .context_width = 1, .gamma = 0.25, .delta = 2, .account_delta = 65 }, { .size = sizeof(wm_params), .scheme = "kgw", .seeding = WM_SEEDING_LEFTHASH, .context_width = 1, .gamma = 0.25, .delta = 2, .account_delta = NAN },
        { .size = sizeof(wm_params), .scheme = "gumbel", .seeding = WM_SEEDING_LEFTHASH, .context_width = 4, .gamma = 0, .delta = 0, .account_delta = 1 },
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal(wm_key_generate(&k, &bad[i]), WM_ERR_PARAM);
        assert_null(k);
    }
    wm_params p = WM_INIT(wm_params);
    assert_int_equal(wm_params_init(&p, "kgw"), WM_OK);
    assert_int_equal(wm_key_generate(NULL, &p), WM_ERR_ARG);
    assert_int_equal(wm_key_generate(&k, NULL), WM_ERR_ARG);
    /* Gamma is quantised to k / 65536 and reported as such. */
    p.gamma = 0.1;
    assert_int_equal(wm_key_generate(&k, &p), WM_OK);
    wm_params q = WM_INIT(wm_params);
    assert_int_equal(wm_key_params(k, &q), WM_OK);
    assert_true(q.gamma == 6554.0 / 65536);
    wm_watermark *wm;
    assert_int_equal(wm_watermark_new(&wm, k, 0), WM_ERR_SIZE);
    assert_int_equal(wm_watermark_new(&wm, NULL, 10), WM_ERR_ARG);
    wm_key_free(k);
    wm_key_free(NULL);
    wm_watermark_free(NULL);
    assert_string_equal(wm_strerror(WM_ERR_TOKEN), "token id outside the vocabulary");
    assert_string_equal(wm_strerror((wm_status)999), "unknown status");
}

static void test_bad_calls(void **state)
{
    (void)state;
    const uint32_t V = 1000;
    wm_watermark *wm = test_wm(0.25, 2, WM_SEEDING_LEFTHASH, V);
    float logits[1010] = { 0 }, copy[1010];
    wm_token ctx[3] = { 1, 2, 3 }, bad_ctx[3] = { 1, 1000, 3 }, neg[3] = { 1, -5, 3 };
    bool g;
    assert_int_equal(wm_bias_logits(NULL, WM_ACCOUNT_NONE, ctx, 3, logits, V), WM_ERR_ARG);
    assert_int_equal(wm_bias_logits(wm, WM_ACCOUNT_NONE, ctx, 3, NULL, V), WM_ERR_ARG);
    assert_int_equal(wm_bias_logits(wm, WM_ACCOUNT_NONE, NULL, 3, logits, V), WM_ERR_ARG);
    assert_int_equal(wm_bias_logits(wm, WM_ACCOUNT_NONE, ctx, 3, logits, V - 1), WM_ERR_SIZE);
    memcpy(copy, logits, sizeof logits);
    assert_int_equal(wm_bias_logits(wm, WM_ACCOUNT_NONE, bad_ctx, 3, logits, V), WM_ERR_TOKEN);
    assert_int_equal(wm_bias_logits(wm, WM_ACCOUNT_NONE, neg, 3, logits, V), WM_ERR_TOKEN);
    assert_memory_equal(copy, logits, sizeof logits);
    /* Context shorter than h: nothing biased, not an error. */
    assert_int_equal(wm_bias_logits(wm, WM_ACCOUNT_NONE, ctx, 1, logits, V), WM_OK);
    assert_int_equal(wm_bias_logits(wm, WM_ACCOUNT_NONE, NULL, 0, logits, V), WM_OK);
    assert_memory_equal(copy, logits, sizeof logits);
    assert_int_equal(wm_is_green(wm, ctx, 1, 5, &g), WM_OK);
    assert_int_equal(g, 0);
    assert_int_equal(wm_is_green(wm, ctx, 3, 1000, &g), WM_ERR_TOKEN);
    assert_int_equal(wm_is_green(wm, ctx, 3, -1, &g), WM_ERR_TOKEN);
    assert_int_equal(wm_is_green(wm, ctx, 3, 1, NULL), WM_ERR_ARG);
    /* Batch: one bad context and no row changes. */
    const wm_token *cp[2] = { ctx, bad_ctx };
    size_t nc[2] = { 3, 3 };
    float rows[2 * 1000] = { 0 };
    assert_int_equal(wm_bias_logits_batch(wm, 2, NULL, cp, nc, rows, WM_DTYPE_F32, V, V), WM_ERR_TOKEN);
    for (int i = 0; i < 2000; i++) assert_true(rows[i] == 0.0f);
    assert_int_equal(wm_bias_logits_batch(wm, 2, NULL, cp, nc, rows, WM_DTYPE_F32, V, V - 1), WM_ERR_ARG);
    assert_int_equal(wm_bias_logits_batch(wm, 0, NULL, NULL, NULL, NULL, WM_DTYPE_F32, V, V), WM_OK);
    /* Detection. */
    wm_score s = WM_INIT(wm_score);
    wm_window w = WM_INIT(wm_window);
    assert_int_equal(wm_detect(wm, bad_ctx, 3, 0, 0, 0.01, &s), WM_ERR_TOKEN);
    assert_int_equal(wm_detect(wm, ctx, 3, 0, 0, 0.0, &s), WM_ERR_ARG);
    assert_int_equal(wm_detect(wm, ctx, 3, 0, 0, 1.0, &s), WM_ERR_ARG);
    assert_int_equal(wm_detect(wm, ctx, 3, 0, 0, NAN, &s), WM_ERR_ARG);
    assert_int_equal(wm_detect(wm, NULL, 3, 0, 0, 0.01, &s), WM_ERR_ARG);
    assert_int_equal(wm_detect(wm, ctx, 3, 0, 0, 0.01, NULL), WM_ERR_ARG);
    assert_int_equal(wm_detect_window(wm, neg, 3, 0, 0, 0.01, &w), WM_ERR_TOKEN);
    /* Empty and too-short texts: nothing scored, p = 1. */
    assert_int_equal(wm_detect(wm, NULL, 0, 0, 0, 0.01, &s), WM_OK);
    assert_true(s.scored == 0 && s.p_value == 1.0 && s.log10_p == 0.0 && !s.watermarked);
    assert_int_equal(wm_detect(wm, ctx, 2, 0, 0, 0.01, &s), WM_OK);
    assert_true(s.scored == 0 && s.tokens == 2);
    assert_int_equal(wm_detect(wm, ctx, 3, 0, 0, 0.01, &s), WM_OK);
    assert_true(s.scored == 1);
    assert_int_equal(wm_detect(wm, ctx, 3, SIZE_MAX, 0, 0.01, &s), WM_OK);
    assert_true(s.scored == 0);
    assert_int_equal(wm_detect_window(wm, NULL, 0, 0, 0, 0.01, &w), WM_OK);
    assert_true(w.score.scored == 0 && w.score.p_value == 1.0);
    /* Corpus and context sets. */
    wm_corpus *c;
    wm_ctxset *cs;
    assert_int_equal(wm_corpus_new(&c, wm, 0x80), WM_ERR_ARG);
    assert_int_equal(wm_corpus_new(&c, wm, 0), WM_OK);
    assert_int_equal(wm_corpus_add(c, bad_ctx, 3, 0), WM_ERR_TOKEN);
    assert_int_equal(wm_corpus_score(c, 2.0, &s), WM_ERR_ARG);
    assert_int_equal(wm_ctxset_new(&cs, wm), WM_OK);
    assert_int_equal(wm_ctxset_add(cs, neg, 3), WM_ERR_TOKEN);
    assert_int_equal(wm_corpus_set_filter(NULL, cs), WM_ERR_ARG);
    assert_int_equal(wm_corpus_add(c, ctx, 3, 0), WM_OK);
    assert_int_equal(wm_corpus_set_filter(c, cs), WM_ERR_ARG); /* too late */
    wm_ctxset_free(cs);
    wm_corpus_free(c);
    /* Sampler. */
    wm_sampler *sm;
    wm_sampler_params sp = WM_SAMPLER_PARAMS_DEFAULT;
    sp.top_p = 0;
    assert_int_equal(wm_sampler_new(&sm, wm, &sp), WM_ERR_ARG);
    sp.top_p = 1;
    sp.temperature = -1;
    assert_int_equal(wm_sampler_new(&sm, wm, &sp), WM_ERR_ARG);
    sp.temperature = 1;
    assert_int_equal(wm_sampler_new(&sm, wm, &sp), WM_OK);
    wm_token out = 77;
    for (uint32_t v = 0; v < V; v++) logits[v] = 0;
    logits[500] = NAN;
    memcpy(copy, logits, sizeof logits);
    assert_int_equal(wm_sampler_sample(sm, ctx, 3, logits, V, 1, &out), WM_ERR_LOGITS);
    assert_int_equal(out, 77);
    logits[500] = INFINITY;
    assert_int_equal(wm_sampler_sample(sm, ctx, 3, logits, V, 1, &out), WM_ERR_LOGITS);
    for (uint32_t v = 0; v < V; v++) logits[v] = -INFINITY;
    assert_int_equal(wm_sampler_sample(sm, ctx, 3, logits, V, 1, &out), WM_ERR_LOGITS);
    logits[3] = 0; /* -inf elsewhere is legitimate masking */
    assert_int_equal(wm_sampler_sample(sm, ctx, 3, logits, V, 1, &out), WM_OK);
    assert_int_equal(out, 3);
    assert_int_equal(wm_sampler_sample(sm, ctx, 3, logits, V - 1, 1, &out), WM_ERR_SIZE);
    wm_sampler_free(sm);
    wm_sampler_free(NULL);
    wm_watermark_free(wm);
}

/* The sampler's vector kernels equal the scalar reference bit for bit
 * (weights, chunk sums, compaction), over sizes around the 16-lane,
 * 64-token block and 1,024-token chunk edges, -inf logits and values at the
 * flush-to-zero edge; and the exp is within 2 ulp of libm's expf. */
static void test_softmax_kernels(void **state)
{
    (void)state;
    const size_t sizes[] = { 1, 15, 16, 17, 63, 64, 65, 1023, 1024, 1025, 3000, 151936 };
    const float thrs[] = { 0.0f, 1e-7f, 0.3f };
    struct { const char *name; wm_maxcheck_fn mc; wm_softmax_fn sm; } k[] = {
        { "avx512", wm__maxcheck_avx512(), wm__softmax_avx512() },
        { "avx2", wm__maxcheck_avx2(), wm__softmax_avx2() },
    };
    size_t N = 151936 + 16;
    float *x = malloc(N * sizeof *x), *w0 = malloc(N * sizeof *w0), *w1 = malloc(N * sizeof *w1);
    float *c0 = malloc(N * sizeof *c0), *c1 = malloc(N * sizeof *c1);
    wm_token *i0 = malloc(N * sizeof *i0), *i1 = malloc(N * sizeof *i1);
    double s0[200], s1[200];
    wm__rng r;
    wm__rng_seed(&r, 17);
    int ran = 0;
    for (size_t si = 0; si < sizeof sizes / sizeof sizes[0]; si++) {
        size_t n = sizes[si];
        for (size_t i = 0; i < n; i++) {
            double u = wm__rng_uniform(&r);
            x[i] = u < 0.05 ? -INFINITY : u < 0.1 ? -87.0f + (float)(wm__rng_uniform(&r) - 0.5) * 0.01f
                                                   : (float)(-100 * wm__rng_uniform(&r));
        }
        x[n / 2] = 0; /* the max */
        float mref;
        assert_int_equal(wm__maxcheck_scalar(x, n, &mref), 0);
        for (size_t t = 0; t < 3; t++) {
            size_t n0 = wm__softmax_scalar(x, n, mref, 1.0f, thrs[t], w0, s0, i0, c0);
            for (size_t ki = 0; ki < 2; ki++) {
                if (!k[ki].sm) continue; /* reported below */
                float m1;
                assert_int_equal(k[ki].mc(x, n, &m1), 0);
                assert_true(m1 == mref);
                size_t n1 = k[ki].sm(x, n, mref, 1.0f, thrs[t], w1, s1, i1, c1);
                assert_int_equal(n1, n0);
                assert_memory_equal(w0, w1, n * sizeof *w0);
                assert_memory_equal(s0, s1, ((n + WM_SOFTMAX_CHUNK - 1) / WM_SOFTMAX_CHUNK) * sizeof *s0);
                assert_memory_equal(i0, i1, n0 * sizeof *i0);
                assert_memory_equal(c0, c1, n0 * sizeof *c0);
                ran++;
            }
        }
        /* NaN and +inf are reported by every kernel */
        for (int bad = 0; bad < 2; bad++) {
            x[n - 1] = bad ? INFINITY : NAN;
            float mm;
            assert_int_equal(wm__maxcheck_scalar(x, n, &mm), 1);
            for (size_t ki = 0; ki < 2; ki++)
                if (k[ki].mc) assert_int_equal(k[ki].mc(x, n, &mm), 1);
        }
    }
    for (int ki = 0; ki < 2; ki++) test_kernel_runs("softmax", 2 - ki, k[ki].mc && k[ki].sm);
    print_message("softmax kernels equal to scalar in %d configurations\n", ran);
    /* accuracy of the exp against libm, over [-87, 0] */
    double worst = 0;
    for (int i = 0; i <= 870000; i++) {
        float v = -(float)i * 1e-4f, e;
        double acc;
        assert_int_equal(wm__softmax_scalar(&v, 1, 0.0f, 1.0f, 0.0f, &e, &acc, i0, c0), 0);
        double rel = fabs((double)e - exp((double)v)) / exp((double)v);
        worst = rel > worst ? rel : worst;
    }
    print_message("exp: worst relative error %.2e over [-87, 0]\n", worst);
    assert_true(worst < 2.5e-7);
    float ninf = -INFINITY, e;
    double acc;
    assert_int_equal(wm__softmax_scalar(&ninf, 1, 0.0f, 1.0f, 0.0f, &e, &acc, i0, c0), 0);
    assert_true(e == 0.0f && acc == 0.0);
    free(x); free(w0); free(w1); free(c0); free(c1); free(i0); free(i1);
}

static void test_sampler(void **state)
{
    (void)state;
    const uint32_t V = 5000;
    wm_watermark *wm = test_wm(0.25, 1, WM_SEEDING_LEFTHASH, V);
    float *logits = malloc(V * sizeof *logits), *base = malloc(V * sizeof *base);
    wm__rng r;
    wm__rng_seed(&r, 11);
    for (uint32_t v = 0; v < V; v++) base[v] = (float)(wm__rng_uniform(&r) * 4);
    base[42] = 30; /* ~all the mass */
    base[43] = 29;
    wm_token ctx[1] = { 9 }, a, b;
    struct { float t; uint32_t k; float p; } cfg[] = { { 0, 0, 1 }, { 1, 1, 1 }, { 1, 0, 0.5f } };
    for (int c = 0; c < 3; c++) {
        wm_sampler_params sp = { .size = sizeof(wm_sampler_params), .temperature = cfg[c].t, .top_k = cfg[c].k, .top_p = cfg[c].p, .seed = 5, .account = WM_ACCOUNT_NONE };
        wm_sampler *s;
        assert_int_equal(wm_sampler_new(&s, wm, &sp), WM_OK);
        memcpy(logits, base, V * sizeof *logits);
        assert_int_equal(wm_sampler_sample(s, ctx, 1, logits, V, 0, &a), WM_OK);
        assert_int_equal(a, 42);
        wm_sampler_free(s);
    }
    /* top-k = 2 only ever draws 42 or 43; same seed, same sequence. */
    base[42] = base[43] = 10; /* stays top-2 after the +2 bias */
    wm_sampler_params sp = { .size = sizeof(wm_sampler_params), .temperature = 1.0f, .top_k = 2, .top_p = 1.0f, .seed = 99, .account = WM_ACCOUNT_NONE };
    wm_sampler *s1, *s2;
    assert_int_equal(wm_sampler_new(&s1, wm, &sp), WM_OK);
    assert_int_equal(wm_sampler_new(&s2, wm, &sp), WM_OK);
    int seen[2] = { 0, 0 };
    for (int i = 0; i < 400; i++) {
        memcpy(logits, base, V * sizeof *logits);
        assert_int_equal(wm_sampler_sample(s1, ctx, 1, logits, V, 1, &a), WM_OK);
        memcpy(logits, base, V * sizeof *logits);
        assert_int_equal(wm_sampler_sample(s2, ctx, 1, logits, V, 1, &b), WM_OK);
        assert_int_equal(a, b);
        assert_true(a == 42 || a == 43);
        seen[a - 42]++;
    }
    assert_true(seen[0] > 50 && seen[1] > 50);
    wm_sampler_free(s1);
    wm_sampler_free(s2);
    /* Unbiased sampling at temperature 1 follows softmax: chi-square over a
     * 4-token vocabulary, 40000 draws, 3 dof, p = 1e-4 critical 21.1. */
    wm_watermark *w4 = test_wm(0.25, 1, WM_SEEDING_LEFTHASH, 4);
    float l4[4], base4[4] = { 0.0f, 1.0f, -1.0f, 0.5f };
    sp = (wm_sampler_params){ .size = sizeof(wm_sampler_params), .temperature = 1.0f, .top_k = 0, .top_p = 1.0f, .seed = 3, .account = WM_ACCOUNT_NONE };
    assert_int_equal(wm_sampler_new(&s1, w4, &sp), WM_OK);
    double cnt[4] = { 0 }, z = 0;
    for (int i = 0; i < 4; i++) z += exp(base4[i]);
    for (int i = 0; i < 40000; i++) {
        memcpy(l4, base4, sizeof l4);
        assert_int_equal(wm_sampler_sample(s1, ctx, 1, l4, 4, 0, &a), WM_OK);
        cnt[a]++;
    }
    double chi = 0;
    for (int i = 0; i < 4; i++) {
        double e = 40000 * exp(base4[i]) / z;
        chi += (cnt[i] - e) * (cnt[i] - e) / e;
    }
    assert_true(chi < 21.1);
    wm_sampler_free(s1);
    wm_watermark_free(w4);
    free(logits);
    free(base);
    wm_watermark_free(wm);
}

/* The head kernels (check, max, head against a lower bound m of the max)
 * equal the scalar one: return value, max, ids, logits and tail flag, over
 * sizes around the 16- and 64-lane edges, -inf logits, logits at the head
 * threshold, m the max itself and a lower bound. */
static void test_head_kernels(void **state)
{
    (void)state;
    const size_t sizes[] = { 1, 7, 8, 15, 16, 17, 63, 64, 65, 127, 1000, 1025, 151936 };
    wm_head_fn k[2] = { wm__head_avx512(), wm__head_avx2() };
    size_t N = 151936 + 16;
    float *x = malloc(N * sizeof *x), *h0 = malloc(N * sizeof *h0), *h1 = malloc(N * sizeof *h1);
    wm_token *i0 = malloc(N * sizeof *i0), *i1 = malloc(N * sizeof *i1);
    wm__rng r;
    wm__rng_seed(&r, 23);
    int ran = 0;
    for (size_t si = 0; si < sizeof sizes / sizeof sizes[0]; si++) {
        size_t n = sizes[si];
        for (int dist = 0; dist < 3; dist++) {
            for (size_t i = 0; i < n; i++) {
                double u = wm__rng_uniform(&r);
                /* dist 2: no tail of non-zero weight (tail_live 0) */
                x[i] = u < 0.1 ? -INFINITY
                     : dist == 0 ? (float)(-30 * wm__rng_uniform(&r))
                     : dist == 1 ? -8.0f + (float)(wm__rng_uniform(&r) - 0.5) * 1e-5f /* at the threshold */
                                 : (u < 0.5 ? -90.0f : (float)(-2 * wm__rng_uniform(&r)));
            }
            x[n / 3] = 0.5f; /* the max */
            const float ms[] = { 0.5f, -0.25f }, ss[] = { 1.0f, 1.0f / 0.7f };
            for (int mi = 0; mi < 2; mi++)
                for (int sc = 0; sc < 2; sc++) {
                    float mx0, mx1;
                    size_t n0, n1;
                    int l0, l1;
                    int b0 = wm__head_scalar(x, n, ms[mi], ss[sc], -8.0f, &mx0, i0, h0, &n0, &l0);
                    assert_int_equal(b0, 0);
                    assert_true(mx0 == 0.5f);
                    if (dist == 2 && mi == 0 && sc == 0) assert_int_equal(l0, 0);
                    if (dist == 1 && n >= 64 && mi == 0 && sc == 0) assert_int_equal(l0, 1);
                    for (int ki = 0; ki < 2; ki++) {
                        if (!k[ki]) continue;
                        assert_int_equal(k[ki](x, n, ms[mi], ss[sc], -8.0f, &mx1, i1, h1, &n1, &l1), 0);
                        assert_true(mx1 == mx0);
                        assert_int_equal(n1, n0);
                        assert_int_equal(l1, l0);
                        assert_memory_equal(i0, i1, n0 * sizeof *i0);
                        assert_memory_equal(h0, h1, n0 * sizeof *h0);
                        ran++;
                    }
                }
        }
        for (int bad = 0; bad < 2; bad++) { /* NaN and +inf, reported by every kernel */
            x[n - 1] = bad ? INFINITY : NAN;
            float mm;
            size_t nn;
            int ll;
            assert_int_equal(wm__head_scalar(x, n, 0.5f, 1.0f, -8.0f, &mm, i0, h0, &nn, &ll), 1);
            for (int ki = 0; ki < 2; ki++)
                if (k[ki]) assert_int_equal(k[ki](x, n, 0.5f, 1.0f, -8.0f, &mm, i1, h1, &nn, &ll), 1);
        }
    }
    for (int ki = 0; ki < 2; ki++) test_kernel_runs("head", 2 - ki, k[ki] != NULL);
    print_message("head kernels equal to scalar in %d configurations\n", ran);
    free(x); free(h0); free(h1); free(i0); free(i1);
}

/* The envelope of the exact draw (embed/sampler.c): a tail token's weight
 * wm__exp_scalar(a), a < -t, must be at most E = e^-t (1 + 2^-16), or its
 * acceptance probability w / E would exceed 1.  Checked over every float a
 * in [WM_EXP_MIN, -1) (t >= 1): wm__exp_scalar(a) <= e^a (1 + 2^-17), and
 * e^a < e^-t.  The worst ratio is printed: 1 + 7.8e-8, so the margin is
 * needed (a bound of exactly e^-t fails this test with "<= 1"). */
static void test_exact_envelope(void **state)
{
    (void)state;
    float a = -1.0f;
    uint32_t bits, end;
    memcpy(&bits, &a, sizeof bits);
    a = WM_EXP_MIN;
    memcpy(&end, &a, sizeof end);
    double worst = 0;
    for (bits++; bits <= end; bits++) { /* negative floats: the bit pattern grows with the magnitude */
        memcpy(&a, &bits, sizeof a);
        double ratio = (double)wm__exp_scalar(a) / exp((double)a);
        worst = ratio > worst ? ratio : worst;
    }
    print_message("envelope: exp within a factor %.9f of e^a over [-87, -1)\n", worst);
    assert_true(worst <= 1 + 0x1p-17);
}

/* Wilson-Hilferty: the chi-square critical value for d degrees of freedom
 * at alpha = 1e-4 (z = 3.719), within 1% for d >= 10. */
static double chi2_crit_1e4(int d)
{
    double c = 2.0 / (9.0 * d), t = 1 - c + 3.719 * sqrt(c);
    return d * t * t * t;
}

/* Chi-square of n draws of sampler s over logits base[0..V) (restored each
 * call; biased in place when `watermark`) against the exact softmax of the
 * logits the sampler drew from, at temperature `temp`: tokens whose
 * expected count is at least 20 one by one, the others in one bin.  Returns
 * the statistic, *dof its degrees of freedom; tokens of zero weight must
 * never come out. */
static double chi2_sampler(wm_sampler *s, const float *base, float *l, size_t V, int watermark, float temp, int n,
                           int *dof)
{
    wm_token ctx[1] = { 9 }, out;
    double *cnt = calloc(V, sizeof *cnt), *p = calloc(V, sizeof *p);
    for (int i = 0; i < n; i++) {
        memcpy(l, base, V * sizeof *l);
        assert_int_equal(wm_sampler_sample(s, ctx, 1, l, V, watermark, &out), WM_OK);
        cnt[out]++;
    }
    /* l: the last call's (biased) logits, the same every call */
    double mx = -INFINITY, z = 0;
    for (size_t v = 0; v < V; v++) mx = l[v] > mx ? l[v] : mx;
    for (size_t v = 0; v < V; v++) z += p[v] = isinf(l[v]) ? 0 : exp(((double)l[v] - mx) / temp);
    double chi = 0, rest_c = 0, rest_e = 0;
    int bins = 0;
    for (size_t v = 0; v < V; v++) {
        double e = n * p[v] / z;
        if (p[v] == 0) assert_true(cnt[v] == 0);
        if (e >= 20) chi += (cnt[v] - e) * (cnt[v] - e) / e, bins++;
        else rest_c += cnt[v], rest_e += e;
    }
    if (rest_e >= 20) chi += (rest_c - rest_e) * (rest_c - rest_e) / rest_e, bins++;
    *dof = bins - 1;
    free(cnt);
    free(p);
    return chi;
}

/* The exact untruncated draw (embed/sampler.c) follows the softmax,
 * including where the tail matters: V = 64 (t = 1) with most of the mass in
 * tail tokens just below the threshold (accepted nearly always) and far
 * below it (rejected mostly), -inf tokens (never drawn), at temperature 1
 * and 0.7; and V = 5,000 biased by kgw.  200,000 draws each, alpha = 1e-4
 * (Wilson-Hilferty critical values).  Mutations of embed/sampler.c caught
 * (first V = 64 statistic, critical 97.5): accepting every tail proposal (a
 * -inf token drawn; test_sampler's chi-square fails too), an envelope half
 * as large (9,846), a head token proposed as tail accepted instead of
 * restarting (4,379), u scaled by H alone, never proposing the tail
 * (1.4e6), B > 0 with no live tail (the identical-draws check below). */
static void test_exact_sampler(void **state)
{
    (void)state;
    const size_t V = 64;
    wm_watermark *w64 = test_wm(0.25, 1, WM_SEEDING_LEFTHASH, V);
    float base[64], l[64];
    base[0] = 0.0f;
    base[1] = -0.5f;
    for (size_t v = 2; v < 40; v++) base[v] = -1.0f - 0.01f * (float)v; /* just below -t = -1 */
    for (size_t v = 40; v < 52; v++) base[v] = -4.0f - 0.1f * (float)(v - 40);
    for (size_t v = 52; v < V; v++) base[v] = -INFINITY;
    const float temps[] = { 1.0f, 0.7f };
    for (int ti = 0; ti < 2; ti++) {
        wm_sampler_params sp = { .size = sizeof(wm_sampler_params), .temperature = temps[ti], .top_k = 0, .top_p = 1.0f, .seed = 41, .account = WM_ACCOUNT_NONE };
        wm_sampler *s;
        assert_int_equal(wm_sampler_new(&s, w64, &sp), WM_OK);
        int dof;
        double chi = chi2_sampler(s, base, l, V, 0, temps[ti], 200000, &dof);
        print_message("exact draw, V = 64, T = %.1f: chi-square %.1f, %d dof (critical %.1f)\n", temps[ti], chi, dof,
                      chi2_crit_1e4(dof));
        assert_true(dof >= 40);
        assert_true(chi < chi2_crit_1e4(dof));
        wm_sampler_free(s);
    }
    wm_watermark_free(w64);
    /* V = 5,000, kgw-biased N(0, 2^2) logits, a tenth -inf */
    const size_t V2 = 5000;
    wm_watermark *wm = test_wm(0.25, 1, WM_SEEDING_LEFTHASH, (uint32_t)V2);
    float *b2 = malloc(V2 * sizeof *b2), *l2 = malloc(V2 * sizeof *l2);
    wm__rng r;
    wm__rng_seed(&r, 31);
    for (size_t v = 0; v < V2; v++) {
        double u1 = wm__rng_uniform(&r), u2 = wm__rng_uniform(&r);
        b2[v] = u1 < 0.1 ? -INFINITY : (float)(2 * sqrt(-2 * log(1 - u2)) * cos(2 * M_PI * wm__rng_uniform(&r)));
    }
    wm_sampler_params sp = { .size = sizeof(wm_sampler_params), .temperature = 1.0f, .top_k = 0, .top_p = 1.0f, .seed = 43, .account = WM_ACCOUNT_NONE };
    wm_sampler *s;
    assert_int_equal(wm_sampler_new(&s, wm, &sp), WM_OK);
    int dof;
    double chi = chi2_sampler(s, b2, l2, V2, 1, 1.0f, 200000, &dof);
    print_message("exact draw, V = 5000, kgw: chi-square %.1f, %d dof (critical %.1f)\n", chi, dof, chi2_crit_1e4(dof));
    assert_true(dof >= 100);
    assert_true(chi < chi2_crit_1e4(dof));
    wm_sampler_free(s);
    /* V = 1: the one token */
    wm_watermark *w1 = test_wm(0.25, 1, WM_SEEDING_LEFTHASH, 1);
    assert_int_equal(wm_sampler_new(&s, w1, &sp), WM_OK);
    for (int i = 0; i < 10; i++) {
        float one = -3.0f;
        wm_token ctx[1] = { 0 }, out = 7;
        assert_int_equal(wm_sampler_sample(s, ctx, 1, &one, 1, 1, &out), WM_OK);
        assert_int_equal(out, 0);
    }
    wm_sampler_free(s);
    wm_watermark_free(w1);
    /* Where every token is in the head (all within t of the top; t = 3 at V
     * = 1,000) the head's weights and chunk sums are the dense draw's and
     * the draw is the old one, the same RNG stream: identical tokens, also
     * with all logits equal.  (Caught: scaling u by H + B with B > 0.) */
    const size_t V3 = 1000;
    wm_watermark *w3 = test_wm(0.25, 1, WM_SEEDING_LEFTHASH, (uint32_t)V3);
    float *b3 = malloc(V3 * sizeof *b3), *l3 = malloc(V3 * sizeof *l3);
    for (int flat = 0; flat < 2; flat++) {
        for (size_t v = 0; v < V3; v++) b3[v] = flat ? 1.5f : (float)(0.5 * wm__rng_uniform(&r));
        wm_sampler *se, *sd;
        sp.seed = 47;
        assert_int_equal(wm_sampler_new(&se, w3, &sp), WM_OK);
        assert_int_equal(wm_sampler_new(&sd, w3, &sp), WM_OK);
        wm__sampler_all_weights(sd, 1);
        int distinct = 0, last = -1;
        for (int i = 0; i < 3000; i++) {
            wm_token ctx[1] = { (wm_token)(i % 7) }, a, b;
            memcpy(l3, b3, V3 * sizeof *l3);
            assert_int_equal(wm_sampler_sample(se, ctx, 1, l3, V3, i % 2, &a), WM_OK);
            memcpy(l3, b3, V3 * sizeof *l3);
            assert_int_equal(wm_sampler_sample(sd, ctx, 1, l3, V3, i % 2, &b), WM_OK);
            assert_int_equal(a, b);
            distinct += a != last;
            last = a;
        }
        assert_true(distinct > 2900);
        wm_sampler_free(se);
        wm_sampler_free(sd);
    }
    wm_watermark_free(w3);
    free(b2); free(l2); free(b3); free(l3);
    wm_watermark_free(wm);
}

static void test_dedup_prompt_corpus(void **state)
{
    (void)state;
    const uint32_t V = 50000;
    wm_watermark *wm = test_wm(0.25, 1, WM_SEEDING_LEFTHASH, V);
    wm_token t[400];
    wm__rng r;
    wm__rng_seed(&r, 12);
    random_tokens(&r, t, 200, V);
    memcpy(t + 200, t, 200 * sizeof *t); /* the same text twice */
    wm_score a = WM_INIT(wm_score), b = WM_INIT(wm_score), nd = WM_INIT(wm_score);
    assert_int_equal(wm_detect(wm, t, 200, 0, 0, 0.01, &a), WM_OK);
    assert_int_equal(wm_detect(wm, t, 400, 0, 0, 0.01, &b), WM_OK);
    assert_int_equal(wm_detect(wm, t, 400, 0, WM_NO_DEDUP, 0.01, &nd), WM_OK);
    assert_true(a.scored == 199 && b.scored == 200); /* + the one new pair at the seam */
    assert_true(nd.scored == 399);
    /* Prompt: token i scored iff i >= h and i > n_prompt (h = 1 here). */
    assert_int_equal(wm_detect(wm, t, 200, 50, 0, 0.01, &a), WM_OK);
    assert_int_equal(a.scored, 149);
    /* h = 3: the window of token 51 is (48, 49, 50), partly generated: scored. */
    wm_watermark *w3 = test_wm(0.25, 3, WM_SEEDING_LEFTHASH, V);
    assert_int_equal(wm_detect(w3, t, 200, 50, 0, 0.01, &a), WM_OK);
    assert_int_equal(a.scored, 149);
    assert_int_equal(wm_detect(w3, t, 200, 1, 0, 0.01, &a), WM_OK);
    assert_int_equal(a.scored, 197); /* from i = 3 */
    assert_int_equal(wm_detect(w3, t, 200, 0, 0, 0.01, &a), WM_OK);
    assert_int_equal(a.scored, 197);
    wm_watermark_free(w3);
    /* Corpus: one doc == wm_detect; adding it again changes nothing. */
    wm_corpus *c;
    assert_int_equal(wm_corpus_new(&c, wm, 0), WM_OK);
    assert_int_equal(wm_corpus_add(c, t, 200, 0), WM_OK);
    wm_score cs = WM_INIT(wm_score);
    assert_int_equal(wm_corpus_score(c, 0.01, &cs), WM_OK);
    assert_int_equal(wm_detect(wm, t, 200, 0, 0, 0.01, &a), WM_OK);
    assert_true(cs.scored == a.scored && cs.statistic == a.statistic && cs.log10_p == a.log10_p);
    assert_int_equal(wm_corpus_add(c, t, 200, 0), WM_OK);
    assert_int_equal(wm_corpus_score(c, 0.01, &cs), WM_OK);
    assert_true(cs.scored == a.scored && cs.tokens == 400);
    wm_corpus_free(c);
    /* Filter: empty set scores nothing; the text's own contexts score all. */
    wm_ctxset *set;
    assert_int_equal(wm_ctxset_new(&set, wm), WM_OK);
    assert_int_equal(wm_corpus_new(&c, wm, 0), WM_OK);
    assert_int_equal(wm_corpus_set_filter(c, set), WM_OK);
    assert_int_equal(wm_corpus_add(c, t, 200, 0), WM_OK);
    assert_int_equal(wm_corpus_score(c, 0.01, &cs), WM_OK);
    assert_int_equal(cs.scored, 0);
    wm_corpus_free(c);
    assert_int_equal(wm_ctxset_add(set, t, 100), WM_OK); /* contexts of the first half */
    uint64_t n_ctx_set;
    assert_int_equal(wm_ctxset_size(set, &n_ctx_set), WM_OK);
    assert_int_equal(n_ctx_set, 99);
    assert_int_equal(wm_corpus_new(&c, wm, 0), WM_OK);
    assert_int_equal(wm_corpus_set_filter(c, set), WM_OK);
    assert_int_equal(wm_corpus_add(c, t, 200, 0), WM_OK);
    assert_int_equal(wm_corpus_score(c, 0.01, &cs), WM_OK);
    /* exactly the distinct (context, token) pairs whose context is in the set, by brute force */
    uint64_t want = 0;
    for (int i = 1; i < 200; i++) {
        int in_set = 0, seen = 0;
        for (int j = 0; j < 99; j++) in_set |= t[j] == t[i - 1];
        for (int j = 1; j < i; j++) seen |= t[j - 1] == t[i - 1] && t[j] == t[i];
        want += in_set && !seen;
    }
    assert_int_equal(cs.scored, want);
    wm_corpus_free(c);
    wm_ctxset_free(set);
    wm_watermark_free(wm);
}

/* Issue 11.4: an answer that repeats its prompt's tuples (a copied or quoted
 * watermarked prompt) scores none of them, in every entry point; only tuples
 * the answer adds count.  Exactness: the count equals a brute-force count. */
static void test_prompt_copy(void **state)
{
    (void)state;
    const uint32_t V = 50000;
    wm_token t[600];
    wm__rng r;
    wm__rng_seed(&r, 99);
    for (uint32_t h = 1; h <= 3; h += 2) {
        wm_watermark *wm = test_wm(0.25, h, WM_SEEDING_LEFTHASH, V);
        random_tokens(&r, t, 300, V);              /* prompt: 300 tokens */
        memcpy(t + 300, t + 20, 250 * sizeof *t);  /* answer: copies most of it */
        random_tokens(&r, t + 550, 50, V);         /* then 50 tokens of its own */
        /* brute force: answer tuples i >= 300 (window not all in the prompt)
         * whose tuple is new to both the prompt and the answer so far */
        uint64_t fps[600];
        size_t nf = 0, want = 0;
        for (size_t i = h; i < 600; i++) {
            if (i == 300) continue; /* its window lies inside the prompt: neither scored nor seen */
            uint64_t fp = wm__tuple_fp(wm__seed(wm, t + i - h), t[i]);
            int dup = 0;
            for (size_t j = 0; j < nf; j++) dup |= fps[j] == fp;
            if (!dup) fps[nf++] = fp;
            if (i > 300 && !dup) want++;
        }
        wm_score a = WM_INIT(wm_score), nd = WM_INIT(wm_score);
        assert_int_equal(wm_detect(wm, t, 600, 300, 0, 0.01, &a), WM_OK);
        assert_int_equal(a.scored, want);
        assert_true(a.scored < 60);
        wm_window w = WM_INIT(wm_window);
        assert_int_equal(wm_detect_window(wm, t, 600, 300, 0, 0.01, &w), WM_OK);
        assert_true(w.score.scored <= want);
        wm_corpus *c;
        wm_score cs = WM_INIT(wm_score);
        assert_int_equal(wm_corpus_new(&c, wm, 0), WM_OK);
        assert_int_equal(wm_corpus_add(c, t, 600, 300), WM_OK);
        assert_int_equal(wm_corpus_score(c, 0.01, &cs), WM_OK);
        assert_int_equal(cs.scored, want);
        /* the exclusion is per document: the same answer without a prompt
         * in a second document scores its tuples */
        assert_int_equal(wm_corpus_add(c, t + 300, 300, 0), WM_OK);
        assert_int_equal(wm_corpus_score(c, 0.01, &cs), WM_OK);
        assert_true(cs.scored > 250);
        wm_corpus_free(c);
        /* without dedup prompt tuples are still skipped, and there is no verdict */
        assert_int_equal(wm_detect(wm, t, 600, 300, WM_NO_DEDUP, 0.5, &nd), WM_OK);
        assert_true(nd.scored >= want && nd.scored < 60);
        wm_watermark_free(wm);
    }
}

/* A document added in parts counts exactly as one wm_detect of the whole:
 * tuples across part boundaries included, every scheme, with and without
 * dedup, parts of every size down to empty ones. */
static void test_corpus_parts(void **state)
{
    (void)state;
    const uint32_t V = 3000; /* small: many repeated tuples */
    struct { const char *scheme; uint32_t h; wm_seeding s; } cfg[] = {
        { "kgw", 1, WM_SEEDING_LEFTHASH }, { "kgw", 3, WM_SEEDING_LEFTHASH }, { "kgw", 4, WM_SEEDING_MINHASH },
        { "kgw", 0, WM_SEEDING_LEFTHASH }, { "gumbel", 1, WM_SEEDING_LEFTHASH }, { "gumbel", 4, WM_SEEDING_MINHASH } };
    wm__rng r;
    wm__rng_seed(&r, 4242);
    wm_token t[5000];
    for (size_t c = 0; c < sizeof cfg / sizeof cfg[0]; c++) {
        wm_params prm = { .size = sizeof(wm_params), .scheme = cfg[c].scheme, .seeding = cfg[c].s, .context_width = cfg[c].h, .gamma = 0, .delta = 0, .account_delta = 0.0 };
        if (!strcmp(cfg[c].scheme, "kgw")) prm.gamma = 0.25, prm.delta = 2;
        wm_watermark *wm = test_wm_params(&prm, V);
        random_tokens(&r, t, 5000, V);
        for (unsigned flags = 0; flags <= WM_NO_DEDUP; flags++) {
            wm_score whole = WM_INIT(wm_score), parts = WM_INIT(wm_score);
            assert_int_equal(wm_detect(wm, t, 5000, 0, flags, 0.01, &whole), WM_OK);
            wm_corpus *cp;
            assert_int_equal(wm_corpus_new(&cp, wm, flags), WM_OK);
            size_t off = 0;
            while (off < 5000) {
                size_t k = (size_t)(wm__rng_next(&r) % 7); /* 0..6: empty parts too */
                if (k > 5000 - off) k = 5000 - off;
                assert_int_equal(wm_corpus_add_part(cp, t + off, k, false), WM_OK);
                assert_int_equal(wm_corpus_add(cp, t, 10, 0), WM_ERR_ARG); /* a document is open */
                off += k;
            }
            assert_int_equal(wm_corpus_add_part(cp, NULL, 0, true), WM_OK);
            assert_int_equal(wm_corpus_score(cp, 0.01, &parts), WM_OK);
            assert_int_equal(parts.tokens, whole.tokens);
            assert_int_equal(parts.scored, whole.scored);
            assert_true(parts.statistic == whole.statistic);
            assert_true(parts.log10_p == whole.log10_p);
            /* a second document after it: as wm_corpus_add */
            assert_int_equal(wm_corpus_add(cp, t, 100, 0), WM_OK);
            wm_corpus_free(cp);
        }
        wm_watermark_free(wm);
    }
}

/* Issue 11.5, 11.12, 11.14: no verdict without dedup; tiny deltas and
 * temperatures; unknown flag bits; the status table. */
/* Each flag family has its own bits (common.h, "Flags"): a flag given to a
 * call of another family is refused, never read as that family's flag of
 * the same value (WM_NO_DEDUP once built a weighted reader). */
_Static_assert(((WM_NO_DEDUP | WM_ACCOUNTS) & WM_READ_WEIGHTED) == 0, "detection and reading flags share bits");
_Static_assert(((WM_NO_DEDUP | WM_ACCOUNTS | WM_READ_WEIGHTED) & (WM_ENC_SPECIAL_AS_TEXT | WM_ENC_LOSSY)) == 0,
               "encoding flags share bits with detection or reading flags");
_Static_assert((WM_NO_DEDUP & WM_ACCOUNTS) == 0 && (WM_ENC_SPECIAL_AS_TEXT & WM_ENC_LOSSY) == 0,
               "flags of one family share bits");

static void test_flag_families(void **state)
{
    (void)state;
    wm_watermark *wm = test_wm(0.25, 1, WM_SEEDING_LEFTHASH, 100);
    wm_token t[20] = { 0 };
    wm_score s = WM_INIT(wm_score);
    wm_window w = WM_INIT(wm_window);
    wm_reader *r = NULL;
    wm_corpus *c = NULL;
    const unsigned foreign_to_reader[] = { WM_NO_DEDUP, WM_ENC_SPECIAL_AS_TEXT, WM_ENC_LOSSY };
    for (size_t i = 0; i < sizeof foreign_to_reader / sizeof *foreign_to_reader; i++) {
        assert_int_equal(wm_reader_new(&r, wm, foreign_to_reader[i]), WM_ERR_ARG);
        assert_null(r);
    }
    const unsigned foreign_to_detect[] = { WM_READ_WEIGHTED, WM_ENC_SPECIAL_AS_TEXT, WM_ENC_LOSSY };
    for (size_t i = 0; i < sizeof foreign_to_detect / sizeof *foreign_to_detect; i++) {
        assert_int_equal(wm_detect(wm, t, 20, 0, foreign_to_detect[i], 0.5, &s), WM_ERR_ARG);
        assert_int_equal(wm_detect_window(wm, t, 20, 0, foreign_to_detect[i], 0.5, &w), WM_ERR_ARG);
        assert_int_equal(wm_corpus_new(&c, wm, foreign_to_detect[i]), WM_ERR_ARG);
        assert_null(c);
    }
    /* the reader's own flag still builds a weighted reader: weights required */
    assert_int_equal(wm_reader_new(&r, wm, WM_READ_WEIGHTED), WM_OK);
    assert_int_equal(wm_reader_add(r, t, 20, 0, t, NULL, 1), WM_ERR_ARG);
    wm_reader_free(r);
    wm_watermark_free(wm);
}

static void test_hardening(void **state)
{
    (void)state;
    const uint32_t V = 1000;
    wm_watermark *wm = test_wm(0.25, 1, WM_SEEDING_LEFTHASH, V);
    wm_token t[3000];
    for (size_t i = 0; i < 3000; i++) t[i] = 7; /* one repeated tuple */
    wm_score s = WM_INIT(wm_score);
    wm_window w = WM_INIT(wm_window);
    bool g;
    assert_int_equal(wm_is_green(wm, t, 1, 7, &g), WM_OK);
    assert_int_equal(wm_detect(wm, t, 3000, 0, WM_NO_DEDUP, 0.5, &s), WM_OK);
    assert_true(s.scored == 2999 && !s.watermarked);
    assert_int_equal(wm_detect_window(wm, t, 3000, 0, WM_NO_DEDUP, 0.5, &w), WM_OK);
    assert_false(w.score.watermarked);
    wm_corpus *c;
    assert_int_equal(wm_corpus_new(&c, wm, WM_NO_DEDUP), WM_OK);
    assert_int_equal(wm_corpus_add(c, t, 3000, 0), WM_OK);
    assert_int_equal(wm_corpus_score(c, 0.5, &s), WM_OK);
    assert_false(s.watermarked);
    wm_corpus_free(c);
    /* unknown flags: refused everywhere */
    assert_int_equal(wm_detect(wm, t, 10, 0, 2u, 0.5, &s), WM_ERR_ARG);
    assert_int_equal(wm_detect_window(wm, t, 10, 0, 0x80u, 0.5, &w), WM_ERR_ARG);
    assert_int_equal(wm_corpus_new(&c, wm, 8u), WM_ERR_ARG); /* 4u is WM_CORPUS_MAP (cluster.h) */
    assert_int_equal(wm_corpus_new(&c, wm, WM_CORPUS_MAP | WM_NO_DEDUP), WM_ERR_ARG);
    /* WM_ACCOUNTS needs a key with an account layer, and dedup */
    assert_int_equal(wm_corpus_new(&c, wm, WM_ACCOUNTS), WM_ERR_UNSUPPORTED);
    assert_int_equal(wm_corpus_new(&c, wm, WM_ACCOUNTS | WM_NO_DEDUP), WM_ERR_ARG);
    /* delta: below WM_DELTA_MIN is refused (1e-50 is float 0) */
    wm_key *k = NULL;
    wm_params p = WM_INIT(wm_params);
    assert_int_equal(wm_params_init(&p, "kgw"), WM_OK);
    p.delta = 1e-50;
    assert_int_equal(wm_key_generate(&k, &p), WM_ERR_PARAM);
    p.delta = WM_DELTA_MIN / 2;
    assert_int_equal(wm_key_generate(&k, &p), WM_ERR_PARAM);
    p.delta = WM_DELTA_MIN;
    assert_int_equal(wm_key_generate(&k, &p), WM_OK);
    wm_key_free(k);
    /* temperature: a denormal means greedy, not NaN weights */
    float logits[1000];
    for (uint32_t v = 0; v < V; v++) logits[v] = (float)((v * 7919u) % 1000) / 100.0f;
    logits[321] = 50.0f;
    const float temps[] = { 1e-45f, 1e-38f, 1e-5f, 0.0f };
    for (size_t i = 0; i < 4; i++) {
        wm_sampler_params sp = { .size = sizeof(wm_sampler_params), .temperature = temps[i], .top_k = 0, .top_p = 1.0f, .seed = 3, .account = WM_ACCOUNT_NONE };
        wm_sampler *sm;
        assert_int_equal(wm_sampler_new(&sm, wm, &sp), WM_OK);
        for (int rep = 0; rep < 20; rep++) {
            float l[1000];
            memcpy(l, logits, sizeof l);
            wm_token out = -1;
            assert_int_equal(wm_sampler_sample(sm, t, 1, l, V, 1, &out), WM_OK);
            assert_int_equal(out, 321);
        }
        wm_sampler_free(sm);
    }
    /* one table: names and texts for every code, none for others */
#define CHECK_STATUS(name, value, text)                                  \
    assert_int_equal(WM_##name, value);                                  \
    assert_string_equal(wm_status_name(WM_##name), #name);               \
    assert_string_equal(wm_strerror(WM_##name), text);
    WM_STATUS_MAP(CHECK_STATUS)
#undef CHECK_STATUS
    assert_null(wm_status_name((wm_status)999));
    /* the version: one place (meson.build), the header and the library agree */
    assert_string_equal(wm_version(), WM_VERSION_STRING);
    assert_int_equal(wm_version_number(), WM_VERSION_NUMBER);
    char v[32];
    snprintf(v, sizeof v, "%d.%d.%d", WM_VERSION_MAJOR, WM_VERSION_MINOR, WM_VERSION_PATCH);
    assert_string_equal(v, WM_VERSION_STRING);
    wm_watermark_free(wm);
}

/* The watermark fails closed: every public call that takes a
 * floating-point weight, score, gamma, delta, alpha, target, temperature
 * or threshold refuses NaN and infinities with its documented status,
 * and leaves no verdict behind.  (The stats primitives: tests/test_read.c
 * for wm_wbinom_log10_bound, tests/test_stats.c for the tails.) */
static void test_nonfinite_refused(void **state)
{
    (void)state;
    const double bad[] = { NAN, -NAN, INFINITY, -INFINITY };
    const uint32_t V = 100;
    wm_params ap = { .size = sizeof(wm_params), .scheme = "kgw", .seeding = WM_SEEDING_LEFTHASH, .context_width = 1, .gamma = 0.25, .delta = 2, .account_delta = 1.0 }; /* with an account layer */
    wm_watermark *wm = test_wm_params(&ap, V), *gw = test_wm_gumbel(1, WM_SEEDING_LEFTHASH, V);
    wm_token t[64], preds[64];
    for (int i = 0; i < 64; i++) t[i] = (wm_token)(i * 37 % V), preds[i] = (wm_token)(i * 11 % V);
    float wt[64];
    for (int i = 0; i < 64; i++) wt[i] = 0.5f;
    uint64_t acc[2] = { 5, 6 };
    wm_account_score top[2] = { WM_INIT(wm_account_score) };
    wm_attribution at = WM_INIT(wm_attribution);
    wm_corpus *c;
    wm_reader *rd, *rw;
    assert_int_equal(wm_corpus_new(&c, wm, WM_ACCOUNTS), WM_OK);
    assert_int_equal(wm_corpus_add(c, t, 64, 0), WM_OK);
    assert_int_equal(wm_reader_new(&rd, wm, WM_ACCOUNTS), WM_OK);
    assert_int_equal(wm_reader_add(rd, t, 64, 0, preds, NULL, 1), WM_OK);
    assert_int_equal(wm_reader_new(&rw, wm, WM_READ_WEIGHTED), WM_OK);
    for (size_t b = 0; b < sizeof bad / sizeof bad[0]; b++) {
        double x = bad[b];
        wm_score s = WM_INIT(wm_score);
        wm_window w = WM_INIT(wm_window);
        wm_audit au = WM_INIT(wm_audit);
        memset(&s, 0, sizeof s);
        assert_int_equal(wm_detect(wm, t, 64, 0, 0, x, &s), WM_ERR_ARG);
        assert_false(s.watermarked);
        assert_int_equal(wm_detect(gw, t, 64, 0, 0, x, &s), WM_ERR_ARG);
        assert_int_equal(wm_detect_window(wm, t, 64, 0, 0, x, &w), WM_ERR_ARG);
        assert_int_equal(wm_corpus_score(c, x, &s), WM_ERR_ARG);
        assert_int_equal(wm_corpus_audit(c, x, 1e-3, &au), WM_ERR_ARG);
        assert_int_equal(wm_corpus_audit(c, 0.01, x, &au), WM_ERR_ARG);
        assert_int_equal(wm_corpus_attribute(c, acc, 2, x, top, 2, &at), WM_ERR_ARG);
        assert_int_equal(wm_reader_score(rd, x, &s, NULL), WM_ERR_ARG);
        assert_int_equal(wm_reader_attribute(rd, acc, 2, x, top, 2, &at), WM_ERR_ARG);
        /* weights: one bad one anywhere refuses the whole document */
        wt[17] = (float)x;
        assert_int_equal(wm_reader_add(rw, t, 64, 0, preds, wt, 1), WM_ERR_ARG);
        wt[17] = 0.5f;
        /* wm_select's weights: WM_ERR_LOGITS, nothing chosen */
        float sw[3] = { 0.5f, (float)x, 0.25f };
        wm_token ids[3] = { 1, 2, 3 }, out = -1;
        bool sel = true;
        assert_int_equal(wm_select(gw, NULL, t, 4, 3, ids, sizeof ids[0], sw, sizeof sw[0], &out, &sel),
                         WM_ERR_LOGITS);
        assert_false(sel);
        assert_int_equal(out, -1);
        /* key parameters */
        wm_key *k = NULL;
        wm_params p = WM_INIT(wm_params);
        assert_int_equal(wm_params_init(&p, "kgw"), WM_OK);
        p.gamma = x;
        assert_int_equal(wm_key_generate(&k, &p), WM_ERR_PARAM);
        assert_int_equal(wm_params_init(&p, "kgw"), WM_OK);
        p.delta = x;
        assert_int_equal(wm_key_generate(&k, &p), WM_ERR_PARAM);
        assert_int_equal(wm_params_init(&p, "kgw"), WM_OK);
        p.account_delta = x;
        assert_int_equal(wm_key_generate(&k, &p), WM_ERR_PARAM);
        wm_params gp = WM_INIT(wm_params);
        assert_int_equal(wm_params_init(&gp, "gumbel"), WM_OK);
        gp.gamma = x; /* a parameter the scheme does not own must be 0, not NaN */
        assert_int_equal(wm_key_generate(&k, &gp), WM_ERR_PARAM);
        assert_null(k);
        /* sampler temperature and top_p */
        wm_sampler *sm = NULL;
        wm_sampler_params sp = WM_SAMPLER_PARAMS_DEFAULT;
        sp.temperature = (float)x;
        assert_int_equal(wm_sampler_new(&sm, wm, &sp), WM_ERR_ARG);
        sp = (wm_sampler_params)WM_SAMPLER_PARAMS_DEFAULT;
        sp.top_p = (float)x;
        assert_int_equal(wm_sampler_new(&sm, wm, &sp), WM_ERR_ARG);
        assert_null(sm);
    }
    /* the weighted reader took nothing from the refused calls */
    wm_score s = WM_INIT(wm_score);
    assert_int_equal(wm_reader_score(rw, 0.01, &s, NULL), WM_OK);
    assert_int_equal(s.tokens, 0);
    /* and a key file never carries one */
    const char *vals[] = { "nan", "-nan", "inf", "-inf", "infinity", "1e999", "-1e999" };
    for (size_t i = 0; i < sizeof vals / sizeof vals[0]; i++) {
        char text[400];
        snprintf(text, sizeof text, "libwm-key 2\nid 0123456789abcdef\nscheme kgw\nseeding lefthash\n"
                 "context-width 1\ngamma 0.25\ndelta %s\nsecret %064d\n", vals[i], 0);
        wm_key *k = NULL;
        wm_error err = { "" };
        assert_int_equal(wm__key_parse(&k, text, strlen(text), "t", &err), WM_ERR_FORMAT);
        assert_null(k);
        assert_non_null(strstr(err.message, "t:7: delta"));
    }
    wm_reader_free(rw);
    wm_reader_free(rd);
    wm_corpus_free(c);
    wm_watermark_free(gw);
    wm_watermark_free(wm);
}

/* Memory per unique tuple stays within 16 bytes once the table is warm. */
static void test_corpus_memory(void **state)
{
    (void)state;
    const uint32_t V = 1u << 30;
    wm_watermark *wm = test_wm(0.25, 2, WM_SEEDING_LEFTHASH, V);
    wm_corpus *c;
    assert_int_equal(wm_corpus_new(&c, wm, 0), WM_OK);
    wm__rng r;
    wm__rng_seed(&r, 13);
    wm_token *t = malloc(100000 * sizeof *t);
    uint64_t total = 0;
    for (int d = 0; d < 20; d++) {
        random_tokens(&r, t, 100000, V);
        assert_int_equal(wm_corpus_add(c, t, 100000, 0), WM_OK);
        total += 100000 - 2;
        size_t mem;
        assert_int_equal(wm_corpus_memory(c, &mem), WM_OK);
        double per = (double)mem / (double)total;
        assert_true(per <= 16.5 && per >= 8);
    }
    free(t);
    wm_corpus_free(c);
    wm_watermark_free(wm);
}

/* One watermark shared by threads, each with its own sampler: the tokens
 * each thread draws equal a single-threaded run with the same seeds. */
typedef struct thread_job {
    const wm_watermark *wm;
    uint64_t seed;
    wm_token out[300];
    wm_status st;
} thread_job;

static void *thread_main(void *arg)
{
    thread_job *j = arg;
    const uint32_t V = 20000;
    wm_sampler_params sp = { .size = sizeof(wm_sampler_params), .temperature = 0.8f, .top_k = 50, .top_p = 0.95f, .seed = j->seed, .account = WM_ACCOUNT_NONE };
    wm_sampler *s;
    float *l = malloc(V * sizeof *l);
    wm__rng r;
    wm__rng_seed(&r, j->seed);
    j->st = wm_sampler_new(&s, j->wm, &sp);
    j->out[0] = 1;
    for (int i = 1; i < 300 && j->st == WM_OK; i++) {
        for (uint32_t v = 0; v < V; v++) l[v] = (float)(wm__rng_uniform(&r) * 8);
        j->st = wm_sampler_sample(s, j->out, (size_t)i, l, V, 1, &j->out[i]);
    }
    wm_sampler_free(s);
    free(l);
    return NULL;
}

static void test_threads_share_watermark(void **state)
{
    (void)state;
    wm_watermark *wm = test_wm(0.25, 2, WM_SEEDING_MINHASH, 20000);
    thread_job solo[4], par[4];
    pthread_t th[4];
    for (int i = 0; i < 4; i++) {
        solo[i] = (thread_job){ wm, 1000 + (uint64_t)i, { 0 }, WM_OK };
        thread_main(&solo[i]);
        par[i] = (thread_job){ wm, 1000 + (uint64_t)i, { 0 }, WM_OK };
    }
    for (int i = 0; i < 4; i++) assert_int_equal(pthread_create(&th[i], NULL, thread_main, &par[i]), 0);
    for (int i = 0; i < 4; i++) pthread_join(th[i], NULL);
    for (int i = 0; i < 4; i++) {
        assert_int_equal(par[i].st, WM_OK);
        assert_memory_equal(solo[i].out, par[i].out, sizeof solo[i].out);
    }
    wm_watermark_free(wm);
}

int main(void)
{
    test_forced_isa();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bad_params),
        cmocka_unit_test(test_bad_calls),
        cmocka_unit_test(test_softmax_kernels),
        cmocka_unit_test(test_sampler),
        cmocka_unit_test(test_head_kernels),
        cmocka_unit_test(test_exact_envelope),
        cmocka_unit_test(test_exact_sampler),
        cmocka_unit_test(test_dedup_prompt_corpus),
        cmocka_unit_test(test_corpus_memory),
        cmocka_unit_test(test_threads_share_watermark),
        cmocka_unit_test(test_prompt_copy),
        cmocka_unit_test(test_hardening),
        cmocka_unit_test(test_flag_families),
        cmocka_unit_test(test_nonfinite_refused),
        cmocka_unit_test(test_corpus_parts),
    };
    return cmocka_run_group_tests_name("api", tests, NULL, NULL);
}
