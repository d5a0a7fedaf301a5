/* Statistical behaviour, with fixed seeds and stated tolerances:
 * - under H0 (text independent of the key) the green rate is gamma, p-values
 *   are uniform and the false-positive rate is what alpha promises;
 * - with the watermark on, text from a synthetic language model of realistic
 *   entropy is detected at p < 1e-10 within 200 tokens (gamma 0.25, delta 2). */
#include "testutil.h"

/* Randomised p-value P(X > g) + U P(X = g): exactly U(0,1) under H0, which
 * the plain (discrete, conservative) p-value is not. */
static double randomised_p(const wm_score *s, double gamma, wm__rng *r)
{
    uint64_t g = (uint64_t)s->statistic;
    double hi = exp(M_LN10 * wm_binom_log10_sf(s->scored, g, gamma));
    double lo = exp(M_LN10 * wm_binom_log10_sf(s->scored, g + 1, gamma));
    return lo + wm__rng_uniform(r) * (hi - lo);
}

/* Whether k is inside the two-sided exact Binomial(n, p) acceptance region
 * at level eps: P(X >= k) > eps / 2 and P(X <= k) > eps / 2.  The tails are
 * the library's (checked against exact vectors by test_stats). */
static int binom_accepts(uint64_t n, uint64_t k, double p, double eps)
{
    double upper = exp(M_LN10 * wm_binom_log10_sf(n, k, p));
    double lower = -expm1(M_LN10 * wm_binom_log10_sf(n, k + 1, p)); /* 1 - P(X > k) */
    return upper > eps / 2 && lower > eps / 2;
}

/* The smallest k with P(Binomial(n, p) > k) <= eps: the one-sided bound
 * whose false-failure probability is at most eps, exactly. */
static uint64_t binom_upper_quantile(uint64_t n, double p, double eps)
{
    uint64_t k = 0;
    while (k < n && wm_binom_log10_sf(n, k + 1, p) > log10(eps)) k++;
    return k;
}

/* For one configuration, over n_docs random documents (each scored tuple
 * green with probability gamma, independently, under H0): the green count
 * in the exact two-sided binomial region at level 0.001, and the
 * randomised p-values' KS distance below its 0.001 critical value; each
 * check's false-failure probability is 0.001. */
static void null_uniform(double gamma, uint32_t h, wm_seeding scheme, size_t n_docs, size_t len,
                         uint64_t seed)
{
    const uint32_t V = 50000;
    wm_watermark *wm = test_wm(gamma, h, scheme, V);
    wm_params prm = WM_INIT(wm_params);
    assert_int_equal(wm_watermark_params(wm, &prm), WM_OK);
    wm__rng r;
    wm__rng_seed(&r, seed);
    wm_token *t = malloc(len * sizeof *t);
    double *p = malloc(n_docs * sizeof *p);
    uint64_t scored = 0, green = 0;
    for (size_t d = 0; d < n_docs; d++) {
        random_tokens(&r, t, len, V);
        wm_score s = WM_INIT(wm_score);
        assert_int_equal(wm_detect(wm, t, len, 0, 0, 0.01, &s), WM_OK);
        p[d] = randomised_p(&s, prm.gamma, &r);
        scored += s.scored;
        green += (uint64_t)s.statistic;
    }
    double sd = sqrt(scored * prm.gamma * (1 - prm.gamma));
    double z = ((double)green - scored * prm.gamma) / sd, D = ks_uniform(p, n_docs);
    print_message("gamma %.4f h %u %s: green rate %.5f (z %.2f), KS D %.4f (crit %.4f)\n",
                  prm.gamma, h, scheme ? "minhash" : "lefthash", (double)green / scored, z, D,
                  1.95 / sqrt((double)n_docs));
    assert_true(binom_accepts(scored, green, prm.gamma, 1e-3));
    assert_true(D < 1.95 / sqrt((double)n_docs)); /* KS critical value, alpha = 0.001 */
    free(t);
    free(p);
    wm_watermark_free(wm);
}

static void test_null_default(void **state)
{
    (void)state;
    null_uniform(0.25, 1, WM_SEEDING_LEFTHASH, 2000, 200, 100);
}

static void test_null_other_schemes(void **state)
{
    (void)state;
    null_uniform(0.5, 2, WM_SEEDING_LEFTHASH, 1000, 150, 101);
    null_uniform(0.1, 3, WM_SEEDING_LEFTHASH, 1000, 150, 102);
    null_uniform(0.25, 4, WM_SEEDING_MINHASH, 1000, 150, 103);
    null_uniform(0.25, 0, WM_SEEDING_LEFTHASH, 1000, 150, 104);
}

/* 10,000 clean documents at alpha = 0.01.  Binomial p-values are discrete, so
 * the exact size for N scored tuples is a(N) = P(X >= g*) <= 0.01 with g*
 * the smallest count flagged; the number flagged must be within 4 sd of
 * sum a(N_i). */
static void test_false_positive_rate(void **state)
{
    (void)state;
    const uint32_t V = 50000;
    const size_t n_docs = 10000, len = 200;
    const double alpha = 0.01, gamma = 0.25;
    wm_watermark *wm = test_wm(gamma, 1, WM_SEEDING_LEFTHASH, V);
    wm__rng r;
    wm__rng_seed(&r, 200);
    wm_token t[200];
    double expect = 0, var = 0;
    size_t flagged = 0;
    for (size_t d = 0; d < n_docs; d++) {
        random_tokens(&r, t, len, V);
        wm_score s = WM_INIT(wm_score);
        assert_int_equal(wm_detect(wm, t, len, 0, 0, alpha, &s), WM_OK);
        flagged += (size_t)s.watermarked;
        uint64_t g = (uint64_t)(s.scored * gamma);
        while (wm_binom_log10_sf(s.scored, g, gamma) >= log10(alpha)) g++;
        double a = exp(M_LN10 * wm_binom_log10_sf(s.scored, g, gamma));
        expect += a;
        var += a * (1 - a);
    }
    print_message("flagged %zu of %zu clean docs at alpha 0.01; exact expectation %.1f +- %.1f\n",
                  flagged, n_docs, expect, sqrt(var));
    assert_true(fabs((double)flagged - expect) <= 4 * sqrt(var));
    assert_true(expect <= alpha * n_docs);
    wm_watermark_free(wm);
}


static double entropy(const float *l, uint32_t V)
{
    double mx = -INFINITY, z = 0, h = 0;
    for (uint32_t v = 0; v < V; v++) mx = l[v] > mx ? l[v] : mx;
    for (uint32_t v = 0; v < V; v++) z += exp(l[v] - mx);
    for (uint32_t v = 0; v < V; v++) {
        double p = exp(l[v] - mx) / z;
        if (p > 0) h -= p * log(p);
    }
    return h;
}

/* Generate len tokens after t[0..start) with the sampler (watermark on/off). */
static void generate(wm_sampler *s, wm__rng *r, wm_token *t, size_t start, size_t len,
                     float *l, uint32_t V, int watermark, double *h_sum)
{
    for (size_t i = start; i < start + len; i++) {
        synth_logits(r, l, V);
        if (h_sum) *h_sum += entropy(l, V);
        assert_int_equal(wm_sampler_sample(s, t, i, l, V, watermark, &t[i]), WM_OK);
    }
}

static void test_power(void **state)
{
    (void)state;
    const uint32_t V = 32000;
    wm_watermark *wm = test_wm(0.25, 1, WM_SEEDING_LEFTHASH, V);
    wm_sampler_params sp = { .size = sizeof(wm_sampler_params), .temperature = 1.0f, .top_k = 0, .top_p = 1.0f, .seed = 300, .account = WM_ACCOUNT_NONE };
    wm_sampler *s;
    assert_int_equal(wm_sampler_new(&s, wm, &sp), WM_OK);
    wm__rng r;
    wm__rng_seed(&r, 300);
    float *l = malloc(V * sizeof *l);
    wm_token t[201];
    double worst = -INFINITY, h_sum = 0, frac = 0;
    const int n_docs = 20;
    for (int d = 0; d < n_docs; d++) {
        t[0] = (wm_token)(wm__rng_next(&r) % V);
        generate(s, &r, t, 1, 200, l, V, 1, &h_sum);
        wm_score sc = WM_INIT(wm_score);
        assert_int_equal(wm_detect(wm, t, 201, 1, 0, 1e-10, &sc), WM_OK); /* the 200 generated tokens */
        assert_true(sc.scored >= 190);
        if (sc.log10_p > worst) worst = sc.log10_p;
        frac += sc.statistic / (double)sc.scored;
        assert_true(sc.watermarked);
    }
    double mean_h = h_sum / (n_docs * 200);
    print_message("power: mean entropy %.2f nats, green fraction %.3f, worst log10 p %.1f over %d docs\n",
                  mean_h, frac / n_docs, worst, n_docs);
    assert_true(mean_h > 1.5 && mean_h < 4.0);
    assert_true(worst < -10);
    wm_sampler_free(s);
    free(l);
    wm_watermark_free(wm);
}

/* A 200-token watermarked passage inside 800 clean tokens is found, and
 * the window p-value stays valid on clean text. */
static void test_window(void **state)
{
    (void)state;
    const uint32_t V = 32000;
    wm_watermark *wm = test_wm(0.25, 1, WM_SEEDING_LEFTHASH, V);
    wm_sampler_params sp = { .size = sizeof(wm_sampler_params), .temperature = 1.0f, .top_k = 0, .top_p = 1.0f, .seed = 400, .account = WM_ACCOUNT_NONE };
    wm_sampler *s;
    assert_int_equal(wm_sampler_new(&s, wm, &sp), WM_OK);
    wm__rng r;
    wm__rng_seed(&r, 400);
    float *l = malloc(V * sizeof *l);
    wm_token t[1000];
    random_tokens(&r, t, 400, V);
    generate(s, &r, t, 400, 200, l, V, 1, NULL);
    random_tokens(&r, t + 600, 400, V);
    wm_window w = WM_INIT(wm_window);
    wm_score whole = WM_INIT(wm_score);
    assert_int_equal(wm_detect_window(wm, t, 1000, 0, 0, 1e-3, &w), WM_OK);
    assert_int_equal(wm_detect(wm, t, 1000, 0, 0, 1e-3, &whole), WM_OK);
    print_message("window [%zu, %zu) log10 p %.1f after %llu tests; whole text log10 p %.1f\n",
                  w.begin, w.end, w.score.log10_p, (unsigned long long)w.n_tests, whole.log10_p);
    assert_true(w.begin >= 360 && w.begin <= 440 && w.end >= 560 && w.end <= 640);
    assert_true(w.score.log10_p < -10 && w.score.log10_p < whole.log10_p);
    /* Clean text: each document flagged with probability at most alpha =
     * 0.01 (Bonferroni makes it conservative), so the count is at most
     * Binomial(400, 0.01) stochastically: allowed up to its exact upper
     * 1e-6 quantile, a false-failure probability of at most 1e-6. */
    size_t flagged = 0;
    for (int d = 0; d < 400; d++) {
        random_tokens(&r, t, 500, V);
        assert_int_equal(wm_detect_window(wm, t, 500, 0, 0, 0.01, &w), WM_OK);
        flagged += (size_t)w.score.watermarked;
    }
    uint64_t bound = binom_upper_quantile(400, 0.01, 1e-6);
    print_message("window on clean text: %zu of 400 flagged at alpha 0.01 (bound %llu)\n", flagged,
                  (unsigned long long)bound);
    assert_true(flagged <= bound);
    wm_sampler_free(s);
    free(l);
    wm_watermark_free(wm);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_null_default),
        cmocka_unit_test(test_null_other_schemes),
        cmocka_unit_test(test_false_positive_rate),
        cmocka_unit_test(test_power),
        cmocka_unit_test(test_window),
    };
    return cmocka_run_group_tests_name("statistics", tests, NULL, NULL);
}
