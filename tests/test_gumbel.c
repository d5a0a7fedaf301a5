/* The Gumbel-max scheme: known answers and the written spec of its keyed
 * uniforms, SIMD = scalar, the direction of the quantisation error (exact
 * enumeration), distortion-freeness of the selection, the repeated-seed
 * rule, null false-positive rate over 10,000 documents, and power. */
#include "testutil.h"

#include <sodium.h>

static const wm_token kat_ctx[4] = { 11, 2024, 7, 50000 };

static wm_watermark *gwm(uint32_t h, wm_seeding s, uint32_t V) { return test_wm_gumbel(h, s, V); }

/* u_v by the spec in schemes/gumbel.c, from libsodium directly. */
static uint32_t spec_u(uint64_t seed, uint32_t v)
{
    unsigned char secret[32], k[16], in[16], out[16];
    for (int i = 0; i < 32; i++) secret[i] = (unsigned char)i;
    crypto_kdf_derive_from_key(k, sizeof k, 3, "libwm-gl", secret);
    for (int i = 0; i < 8; i++) in[i] = (unsigned char)(seed >> (8 * i));
    for (int i = 0; i < 8; i++) in[8 + i] = (unsigned char)((uint64_t)(v / 4) >> (8 * i));
    crypto_shorthash_siphashx24(out, in, sizeof in, k);
    const unsigned char *p = out + 4 * (v % 4);
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* Pinned: if one of these changes, every deployed gumbel watermark breaks. */
static void test_known_answers(void **state)
{
    (void)state;
    static const struct { uint32_t h; const char *id; } kat[] = {
        { 1, "0a7c6211e893471b" },
        { 4, "aea9295dcbc2d583" },
    };
    for (size_t c = 0; c < 2; c++) {
        wm_watermark *wm = gwm(kat[c].h, WM_SEEDING_LEFTHASH, 50257);
        char id[WM_KEY_ID_SIZE];
        assert_int_equal(wm_watermark_key_id(wm, id), WM_OK);
        assert_string_equal(id, kat[c].id);
        wm_watermark_free(wm);
    }
    /* The uniforms of tokens 0, 787, ..., after context token 50000 (h = 1:
     * the seed is the token id), and their scores. */
    static const uint32_t u_kat[4] = { 0xb7fe2aa7u, 0x35d27af4u, 0x077e351fu, 0x49c66a87u };
    wm_watermark *wm = gwm(1, WM_SEEDING_LEFTHASH, 50257);
    for (uint32_t v = 0; v < 4; v++) {
        assert_true(spec_u(50000, v * 787) == u_kat[v]);
        double s;
        assert_int_equal(wm_tuple_score(wm, kat_ctx, 4, (wm_token)(v * 787), &s), WM_OK);
        assert_true(s == -log1p(-(double)u_kat[v] / 4294967296.0));
    }
    wm_watermark_free(wm);
}

/* wm_tuple_score equals the spec for random tuples, h = 1 and 2 (where the
 * seed is the context itself). */
static void test_spec(void **state)
{
    (void)state;
    const uint32_t V = 151936;
    wm_watermark *w1 = gwm(1, WM_SEEDING_LEFTHASH, V), *w2 = gwm(2, WM_SEEDING_LEFTHASH, V);
    wm__rng r;
    wm__rng_seed(&r, 5);
    for (int it = 0; it < 5000; it++) {
        wm_token ctx[2] = { (wm_token)(wm__rng_next(&r) % V), (wm_token)(wm__rng_next(&r) % V) };
        wm_token t = (wm_token)(wm__rng_next(&r) % V);
        double s1, s2;
        assert_int_equal(wm_tuple_score(w1, ctx + 1, 1, t, &s1), WM_OK);
        assert_int_equal(wm_tuple_score(w2, ctx, 2, t, &s2), WM_OK);
        uint64_t seed2 = (uint32_t)ctx[1] | ((uint64_t)(uint32_t)ctx[0] << 32);
        assert_true(s1 == wm__gumbel_score(spec_u((uint32_t)ctx[1], (uint32_t)t), 32));
        assert_true(s2 == wm__gumbel_score(spec_u(seed2, (uint32_t)t), 32));
    }
    wm_watermark_free(w1);
    wm_watermark_free(w2);
}

/* The dispatched kernels (AVX-512 where present) against the scalar
 * reference, for scores and selections, bit for bit. */
static void test_simd_equals_scalar(void **state)
{
    (void)state;
    const uint32_t V = 151936;
    wm_watermark *wm = gwm(2, WM_SEEDING_LEFTHASH, V);
    struct wm_watermark scalar;
    memcpy(&scalar, wm, sizeof scalar);
    scalar.prf_many = wm__prf_many_scalar;
    wm__rng r;
    wm__rng_seed(&r, 9);
    for (int it = 0; it < 2000; it++) {
        uint64_t seed[WM_SCORE_BATCH];
        wm_token tok[WM_SCORE_BATCH];
        size_t n = 1 + wm__rng_next(&r) % WM_SCORE_BATCH;
        for (size_t i = 0; i < n; i++) seed[i] = wm__rng_next(&r), tok[i] = (wm_token)(wm__rng_next(&r) % V);
        double a[WM_SCORE_BATCH], b[WM_SCORE_BATCH];
        wm->scheme->score_many(wm, seed, tok, n, a);
        scalar.scheme->score_many(&scalar, seed, tok, n, b);
        assert_memory_equal(a, b, n * sizeof *a);
        /* selection over 1..100 candidates */
        size_t m = 1 + wm__rng_next(&r) % 100;
        wm_token ids[100];
        float w[100];
        for (size_t i = 0; i < m; i++) ids[i] = (wm_token)(wm__rng_next(&r) % V), w[i] = (float)wm__rng_uniform(&r);
        assert_int_equal(wm->scheme->select(wm, seed[0], m, ids, 4, w, 4),
                         scalar.scheme->select(&scalar, seed[0], m, ids, 4, w, 4));
    }
    wm_watermark_free(wm);
}

/* Floor quantisation makes the Gamma tail conservative: with 4-bit
 * uniforms, P(S_q >= x) (exact, by enumerating all 16^n outcomes) never
 * exceeds Q(n, x) at any support point, n = 1..4. */
static void test_quantisation_conservative(void **state)
{
    (void)state;
    for (unsigned n = 1; n <= 4; n++) {
        size_t total = (size_t)1 << (4 * n);
        double *s = malloc(total * sizeof *s);
        for (size_t c = 0; c < total; c++) {
            s[c] = 0;
            for (unsigned i = 0; i < n; i++) s[c] += wm__gumbel_score((uint32_t)((c >> (4 * i)) & 15), 4);
        }
        double worst = -INFINITY;
        for (size_t a = 0; a < total; a++) { /* each outcome's value as threshold x */
            size_t ge = 0;
            for (size_t c = 0; c < total; c++) ge += s[c] >= s[a];
            double exact = log((double)ge / (double)total), bound = wm_gamma_log10_sf(n, s[a]) * M_LN10;
            assert_true(exact <= bound + 1e-12);
            if (exact - bound > worst) worst = exact - bound;
        }
        print_message("n %u: max ln P_q(S >= x) - ln Q(n, x) = %.3f (must be <= 0)\n", n, worst);
        free(s);
    }
}

/* Distortion-free: over seeds, the selected token is distributed as the
 * weights say.  Chi-square over 8 candidates, 40,000 seeds, alpha 0.001. */
static void test_selection_is_a_draw(void **state)
{
    (void)state;
    wm_watermark *wm = gwm(1, WM_SEEDING_LEFTHASH, 50000);
    const wm_token ids[8] = { 5, 17, 900, 4000, 4001, 4002, 12345, 49999 };
    const float w[8] = { 0.30f, 0.20f, 0.15f, 0.12f, 0.10f, 0.08f, 0.04f, 0.01f };
    double count[8] = { 0 };
    const int n = 40000;
    for (int i = 0; i < n; i++) {
        wm_token ctx = (wm_token)i, out;
        bool sel;
        assert_int_equal(wm_select(wm, NULL, &ctx, 1, 8, ids, sizeof *ids, w, sizeof *w, &out, &sel), WM_OK);
        assert_true(sel);
        for (int k = 0; k < 8; k++) count[k] += out == ids[k];
    }
    double chi2 = 0;
    for (int k = 0; k < 8; k++) chi2 += (count[k] - n * w[k]) * (count[k] - n * w[k]) / (n * w[k]);
    print_message("selection vs weights: chi2 %.2f (7 df; 0.001 critical 24.32)\n", chi2);
    assert_true(chi2 < 24.32);
    /* zero weights never win; errors */
    const float w0[3] = { 0, 1, 0 };
    wm_token out, ctx = 3;
    bool sel;
    for (wm_token c = 0; c < 200; c++) {
        assert_int_equal(wm_select(wm, NULL, &c, 1, 3, ids, 4, w0, 4, &out, &sel), WM_OK);
        assert_true(sel && out == ids[1]);
    }
    const float wbad[2] = { 1, NAN }, wneg[2] = { 1, -1 }, wnone[2] = { 0, 0 };
    assert_int_equal(wm_select(wm, NULL, &ctx, 1, 2, ids, 4, wbad, 4, &out, &sel), WM_ERR_LOGITS);
    assert_int_equal(wm_select(wm, NULL, &ctx, 1, 2, ids, 4, wneg, 4, &out, &sel), WM_ERR_LOGITS);
    assert_int_equal(wm_select(wm, NULL, &ctx, 1, 2, ids, 4, wnone, 4, &out, &sel), WM_ERR_LOGITS);
    const wm_token pad[2] = { 1, 50000 }, neg[2] = { 1, -1 };
    assert_int_equal(wm_select(wm, NULL, &ctx, 1, 2, pad, 4, w, 4, &out, &sel), WM_ERR_TOKEN);
    assert_int_equal(wm_select(wm, NULL, &ctx, 1, 2, neg, 4, w, 4, &out, &sel), WM_ERR_TOKEN);
    /* short context: not selected, caller draws */
    assert_int_equal(wm_select(wm, NULL, NULL, 0, 2, ids, 4, w, 4, &out, &sel), WM_OK);
    assert_false(sel);
    /* the green-list calls are not this scheme's */
    float l[50000] = { 0 };
    bool g;
    assert_int_equal(wm_bias_logits(wm, WM_ACCOUNT_NONE, &ctx, 1, l, 50000), WM_ERR_UNSUPPORTED);
    assert_int_equal(wm_bias_candidates(wm, WM_ACCOUNT_NONE, &ctx, 1, 2, ids, 4, l, 4), WM_ERR_UNSUPPORTED);
    assert_int_equal(wm_is_green(wm, &ctx, 1, 5, &g), WM_ERR_UNSUPPORTED);
    bool selects;
    assert_int_equal(wm_watermark_selects(wm, &selects), WM_OK);
    assert_true(selects);
    wm_watermark *kgw = test_wm(0.25, 1, WM_SEEDING_LEFTHASH, 50000);
    assert_int_equal(wm_select(kgw, NULL, &ctx, 1, 2, ids, 4, w, 4, &out, &sel), WM_ERR_UNSUPPORTED);
    wm_ctxset *other;
    assert_int_equal(wm_ctxset_new(&other, kgw), WM_OK);
    assert_int_equal(wm_select(wm, other, &ctx, 1, 2, ids, 4, w, 4, &out, &sel), WM_ERR_ARG); /* another wm's set */
    wm_ctxset_free(other);
    wm_watermark_free(kgw);
    wm_watermark_free(wm);
}

/* A seed is watermarked once per sequence: the second time wm_select
 * declines, and detection does not score the position (brute force). */
static void test_repeated_seed(void **state)
{
    (void)state;
    const uint32_t V = 50;
    wm_watermark *wm = gwm(1, WM_SEEDING_LEFTHASH, V);
    wm_ctxset *used;
    assert_int_equal(wm_ctxset_new(&used, wm), WM_OK);
    const wm_token ids[3] = { 1, 2, 3 };
    const float w[3] = { 0.2f, 0.3f, 0.5f };
    wm_token ctx = 7, out;
    bool sel;
    assert_int_equal(wm_select(wm, used, &ctx, 1, 3, ids, 4, w, 4, &out, &sel), WM_OK);
    assert_true(sel);
    assert_int_equal(wm_select(wm, used, &ctx, 1, 3, ids, 4, w, 4, &out, &sel), WM_OK);
    assert_false(sel);
    assert_int_equal(wm_ctxset_clear(used), WM_OK);
    assert_int_equal(wm_select(wm, used, &ctx, 1, 3, ids, 4, w, 4, &out, &sel), WM_OK);
    assert_true(sel);
    wm_ctxset_free(used);
    /* Detection: over a small vocabulary contexts repeat constantly; the
     * scored tuples are the first occurrence of each context seed whose
     * (seed, token) tuple is new, and the statistic is their scores' sum. */
    wm__rng r;
    wm__rng_seed(&r, 77);
    wm_token t[400];
    random_tokens(&r, t, 400, V);
    unsigned char seen_ctx[50] = { 0 };
    uint64_t scored = 0;
    double stat = 0;
    for (size_t i = 1; i < 400; i++) {
        if (seen_ctx[t[i - 1]]) continue;
        seen_ctx[t[i - 1]] = 1;
        double s;
        assert_int_equal(wm_tuple_score(wm, t + i - 1, 1, t[i], &s), WM_OK);
        scored++;
        stat += s;
    }
    wm_score sc = WM_INIT(wm_score);
    assert_int_equal(wm_detect(wm, t, 400, 0, 0, 0.01, &sc), WM_OK);
    assert_int_equal(sc.scored, scored);
    assert_true(fabs(sc.statistic - stat) <= 1e-12 * stat);
    assert_true(fabs(sc.log10_p - wm_gamma_log10_sf((double)scored, sc.statistic)) < 1e-12);
    wm_watermark_free(wm);
}

/* 10,000 clean documents at alpha = 0.01: the number flagged must lie in
 * the 99.9% binomial interval of Binomial(10000, a) for some a <= 0.01, i.e.
 * at most 133 (quantisation can only lower the rate; it is continuous, so
 * it should sit near 100: at least 69).  And the p-values are uniform (KS
 * at 0.001) for h = 1 lefthash and h = 4 minhash. */
static void test_false_positive_rate(void **state)
{
    (void)state;
    const uint32_t V = 50000;
    struct { uint32_t h; wm_seeding s; size_t docs; } cfg[] = { { 1, WM_SEEDING_LEFTHASH, 10000 },
                                                               { 4, WM_SEEDING_MINHASH, 3000 } };
    for (size_t c = 0; c < 2; c++) {
        wm_watermark *wm = gwm(cfg[c].h, cfg[c].s, V);
        wm__rng r;
        wm__rng_seed(&r, 300 + c);
        wm_token t[200];
        size_t flagged = 0, n = cfg[c].docs;
        double *p = malloc(n * sizeof *p);
        for (size_t d = 0; d < n; d++) {
            random_tokens(&r, t, 200, V);
            wm_score s = WM_INIT(wm_score);
            assert_int_equal(wm_detect(wm, t, 200, 0, 0, 0.01, &s), WM_OK);
            flagged += s.watermarked;
            p[d] = s.p_value;
        }
        /* KS against U(0, 1) */
        for (size_t i = 1; i < n; i++)
            for (size_t j = i; j > 0 && p[j - 1] > p[j]; j--) {
                double x = p[j]; p[j] = p[j - 1]; p[j - 1] = x;
            }
        double D = 0;
        for (size_t i = 0; i < n; i++) {
            double lo = p[i] - (double)i / n, hi = (double)(i + 1) / n - p[i];
            D = lo > D ? lo : D;
            D = hi > D ? hi : D;
        }
        print_message("gumbel h %u: flagged %zu of %zu clean docs at alpha 0.01; KS D %.4f (crit %.4f)\n", cfg[c].h,
                      flagged, n, D, 1.95 / sqrt((double)n));
        if (n == 10000) assert_true(flagged >= 69 && flagged <= 133);
        assert_true(D < 1.95 / sqrt((double)n));
        free(p);
        wm_watermark_free(wm);
    }
}


/* Power: 200 tokens from the watermarking sampler (h = 1, top-k 0 and 40)
 * are detected far below 1e-10; the same sampler without the watermark is
 * not; a window finds a watermarked half. */
static void test_power(void **state)
{
    (void)state;
    const uint32_t V = 32000;
    wm_watermark *wm = gwm(1, WM_SEEDING_LEFTHASH, V);
    float *l = malloc(V * sizeof *l);
    wm__rng r;
    wm__rng_seed(&r, 31);
    for (uint32_t top_k = 0; top_k <= 40; top_k += 40) {
        wm_sampler_params sp = { .size = sizeof(wm_sampler_params), .temperature = 1.0f, .top_k = top_k, .top_p = 1.0f, .seed = 5, .account = WM_ACCOUNT_NONE };
        wm_sampler *s;
        assert_int_equal(wm_sampler_new(&s, wm, &sp), WM_OK);
        double worst = -INFINITY;
        wm_token t[401];
        for (int d = 0; d < 10; d++) {
            assert_int_equal(wm_sampler_reset(s, (uint64_t)d, WM_ACCOUNT_NONE), WM_OK);
            t[0] = (wm_token)(wm__rng_next(&r) % V);
            for (size_t i = 1; i < 201; i++) {
                synth_logits(&r, l, V);
                assert_int_equal(wm_sampler_sample(s, t, i, l, V, true, &t[i]), WM_OK);
            }
            wm_score sc = WM_INIT(wm_score);
            assert_int_equal(wm_detect(wm, t, 201, 1, 0, 1e-10, &sc), WM_OK);
            assert_true(sc.watermarked);
            worst = sc.log10_p > worst ? sc.log10_p : worst;
            /* unwatermarked control */
            for (size_t i = 1; i < 201; i++) {
                synth_logits(&r, l, V);
                assert_int_equal(wm_sampler_sample(s, t, i, l, V, false, &t[i]), WM_OK);
            }
            assert_int_equal(wm_detect(wm, t, 201, 1, 0, 1e-3, &sc), WM_OK);
            assert_false(sc.watermarked);
        }
        print_message("gumbel power, top-k %u: worst log10 p %.1f over 10 docs of 200 tokens\n", top_k, worst);
        assert_true(worst < -10);
        /* 200 clean tokens, then 200 watermarked: the window finds the second half */
        assert_int_equal(wm_sampler_reset(s, 99, WM_ACCOUNT_NONE), WM_OK);
        for (size_t i = 1; i < 401; i++) {
            synth_logits(&r, l, V);
            assert_int_equal(wm_sampler_sample(s, t, i, l, V, i > 200, &t[i]), WM_OK);
        }
        wm_window w = WM_INIT(wm_window);
        assert_int_equal(wm_detect_window(wm, t, 401, 1, 0, 1e-6, &w), WM_OK);
        assert_true(w.score.watermarked && w.begin >= 150 && w.end > 350);
        wm_sampler_free(s);
    }
    free(l);
    wm_watermark_free(wm);
}

int main(void)
{
    test_forced_isa();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_known_answers),
        cmocka_unit_test(test_spec),
        cmocka_unit_test(test_simd_equals_scalar),
        cmocka_unit_test(test_quantisation_conservative),
        cmocka_unit_test(test_selection_is_a_draw),
        cmocka_unit_test(test_repeated_seed),
        cmocka_unit_test(test_false_positive_rate),
        cmocka_unit_test(test_power),
    };
    return cmocka_run_group_tests_name("gumbel", tests, NULL, NULL);
}
