/* Binomial and Gamma tails against exact values and their mathematical
 * properties. */
#include "testutil.h"

#include "binom_vectors.h"

/* Exact rational sums (tests/gen_binom_vectors.py), down to 1e-96329.
 * Tolerance: 1e-9 relative error on p, i.e. absolute on ln p. */
static void test_exact_vectors(void **state)
{
    (void)state;
    size_t n_vec = sizeof binom_vectors / sizeof binom_vectors[0];
    assert_true(n_vec > 200);
    double worst = 0;
    for (size_t i = 0; i < n_vec; i++) {
        double got = wm_binom_log10_sf(binom_vectors[i].n, binom_vectors[i].k,
                                       binom_vectors[i].a / 65536.0);
        double want = binom_vectors[i].log10_p;
        double err = fabs(got - want) * M_LN10; /* = relative error of p */
        if (err > worst) worst = err;
        if (!(err <= 1e-9)) {
            print_error("n=%llu k=%llu a=%u: got %.17g want %.17g\n",
                        (unsigned long long)binom_vectors[i].n, (unsigned long long)binom_vectors[i].k,
                        binom_vectors[i].a, got, want);
            fail();
        }
    }
    print_message("worst relative error of p over %zu exact vectors: %.3g\n", n_vec, worst);
}

/* Direct summation of pmf terms in long double, for moderate n. */
static void test_against_direct_sum(void **state)
{
    (void)state;
    const double gammas[] = { 0.25, 0.5, 0.1 };
    for (int gi = 0; gi < 3; gi++) {
        double p = gammas[gi];
        for (uint64_t n = 1; n <= 400; n += 13) {
            long double pmf = powl(1 - p, (long double)n), tail[401];
            long double terms[401];
            for (uint64_t i = 0; i <= n; i++) {
                terms[i] = pmf;
                pmf = pmf * (long double)(n - i) / (long double)(i + 1) * p / (1 - p);
            }
            tail[n] = terms[n];
            for (uint64_t i = n; i-- > 0;) tail[i] = tail[i + 1] + terms[i];
            for (uint64_t k = 0; k <= n; k++) {
                if (tail[k] < 1e-4000L || tail[k] == 0) continue;
                double want = (double)log10l(tail[k]);
                double got = wm_binom_log10_sf(n, k, p);
                assert_true(fabs(got - want) < 1e-10 * (1 + fabs(want)));
            }
        }
    }
}

static void test_edges(void **state)
{
    (void)state;
    assert_true(wm_binom_log10_sf(10, 0, 0.25) == 0.0);
    assert_true(isinf(wm_binom_log10_sf(10, 11, 0.25)));
    assert_true(isinf(wm_binom_log10_sf(10, 1, 0.0)));
    assert_true(wm_binom_log10_sf(10, 10, 1.0) == 0.0);
    assert_true(isnan(wm_binom_log10_sf(10, 1, 1.5)));
    /* k = n: exactly n log10 p. */
    assert_true(fabs(wm_binom_log10_sf(1000, 1000, 0.25) - 1000 * log10(0.25)) < 1e-9);
    /* Far below 1e-300, never -inf: a billion tuples all green. */
    double lp = wm_binom_log10_sf(1000000000ULL, 1000000000ULL, 0.25);
    assert_true(isfinite(lp));
    assert_true(fabs(lp - 1e9 * log10(0.25)) < 1e-6 * 1e9 * 0.6);
    /* Large n near the mean: p about 1/2, finite and sane. */
    lp = wm_binom_log10_sf(100000000ULL, 25000000ULL, 0.25);
    assert_true(lp < 0 && lp > -0.5);
}

/* The score's p_value underflows but log10_p keeps the true value. */
static void test_score_underflow(void **state)
{
    (void)state;
    wm_score s = WM_INIT(wm_score);
    wm_watermark *wm = test_wm(0.25, 1, WM_SEEDING_LEFTHASH, 100);
    wm__fill_score(wm, &s, 20000, 20000, 15000, 1e-3);
    wm_watermark_free(wm);
    assert_true(s.p_value == 0.0);
    assert_true(s.log10_p < -3000 && isfinite(s.log10_p));
    assert_true(s.watermarked);
    assert_true(fabs(s.z - (15000 - 5000) / sqrt(20000 * 0.1875)) < 1e-9);
}

/* Properties: decreasing in k, increasing in n, over random points. */
static void test_monotone(void **state)
{
    (void)state;
    wm__rng r;
    wm__rng_seed(&r, 7);
    for (int it = 0; it < 20000; it++) {
        uint64_t n = 1 + wm__rng_next(&r) % (it < 10000 ? 1000 : 10000000);
        uint64_t k = wm__rng_next(&r) % (n + 1);
        double p = (1 + wm__rng_next(&r) % 65535) / 65536.0;
        double a = wm_binom_log10_sf(n, k, p), b = wm_binom_log10_sf(n, k + 1, p),
               c = wm_binom_log10_sf(n + 1, k, p);
        assert_true(a <= 0);
        assert_true(b <= a + 1e-12 * (1 + fabs(a)));
        assert_true(c >= a - 1e-12 * (1 + fabs(a)));
    }
}

/* ln Q(n, x) for integer n: Q(n, x) = e^-x sum_{k<n} x^k / k!, a sum of
 * positive terms added in log space in long double: no cancellation. */
static double gamma_ref(unsigned long n, double x)
{
    long double lt = 0, acc = -INFINITY; /* lt = ln(x^k / k!) */
    for (unsigned long k = 0; k < n; k++) {
        if (k) lt += logl((long double)x) - logl((long double)k);
        long double hi = acc > lt ? acc : lt, lo = acc > lt ? lt : acc;
        acc = hi + log1pl(expl(lo - hi));
    }
    return (double)(acc - x);
}

/* The Gamma(n, 1) upper tail (gumbel's null) against the exact finite sum
 * for integer n, from the bulk to 1e-400000: 1e-10 relative on ln p, plus
 * the reference's own rounding where p is near 1. */
static void test_gamma_exact(void **state)
{
    (void)state;
    const unsigned long ns[] = { 1, 2, 3, 5, 10, 16, 50, 120, 200, 1000, 20000, 1000000 };
    const double ratios[] = { 0.01, 0.3, 0.8, 0.95, 1.0, 1.02, 1.1, 1.5, 2, 4, 10, 50 };
    int checked = 0;
    for (size_t i = 0; i < sizeof ns / sizeof ns[0]; i++)
        for (size_t j = 0; j < sizeof ratios / sizeof ratios[0]; j++) {
            double x = ratios[j] * (double)ns[i];
            if (ns[i] >= 20000 && (ratios[j] < 0.9 || ratios[j] > 1.5)) continue; /* keep the reference fast */
            double ref = gamma_ref(ns[i], x), got = wm_gamma_log10_sf((double)ns[i], x) * M_LN10;
            /* the reference's own rounding: ~1e-15 per term of its sum */
            double tol = 1e-10 * fabs(ref) + 1e-12 + 1e-15 * (double)ns[i];
            if (!(fabs(got - ref) <= tol))
                print_message("n %lu x %.17g: got %.17g ref %.17g\n", ns[i], x, got, ref);
            assert_true(fabs(got - ref) <= tol);
            checked++;
        }
    assert_true(checked > 120);
    /* Closed forms far in the tail: Q(1, x) = e^-x, Q(2, x) = e^-x (1 + x). */
    assert_true(fabs(wm_gamma_log10_sf(1, 1e6) * M_LN10 + 1e6) < 1e-6);
    assert_true(fabs(wm_gamma_log10_sf(2, 1e5) * M_LN10 - (-1e5 + log(1e5 + 1))) < 1e-7);
    /* Edges. */
    assert_true(wm_gamma_log10_sf(5, 0) == 0 && wm_gamma_log10_sf(5, -3) == 0);
    assert_true(isnan(wm_gamma_log10_sf(0, 1)) && isnan(wm_gamma_log10_sf(-1, 1)) && isnan(wm_gamma_log10_sf(1, NAN)));
    /* An infinite score or shape is refused (NaN), never p = 0 or p = 1. */
    assert_true(isnan(wm_gamma_log10_sf(3, INFINITY)) && isnan(wm_gamma_log10_sf(3, -INFINITY)) &&
                isnan(wm_gamma_log10_sf(INFINITY, 1)) && isnan(wm_gamma_log10_sf(NAN, 1)));
    assert_true(isnan(wm_binom_log10_sf(10, 1, NAN)) && isnan(wm_binom_log10_sf(10, 1, INFINITY)) &&
                isnan(wm_binom_log10_sf(10, 1, -INFINITY)));
    /* Huge n near the mean: p about 1/2. */
    double lp = wm_gamma_log10_sf(1e9, 1e9);
    assert_true(lp < 0 && lp > -0.5);
}

/* Properties over random points: decreasing in x, increasing in n, <= 0. */
static void test_gamma_monotone(void **state)
{
    (void)state;
    wm__rng r;
    wm__rng_seed(&r, 11);
    for (int it = 0; it < 20000; it++) {
        double n = (double)(1 + wm__rng_next(&r) % (it < 10000 ? 1000 : 10000000));
        double x = n * 3 * wm__rng_uniform(&r);
        double a = wm_gamma_log10_sf(n, x), b = wm_gamma_log10_sf(n, x * 1.001 + 1e-9),
               c = wm_gamma_log10_sf(n + 1, x);
        assert_true(a <= 0 && isfinite(a));
        assert_true(b <= a + 1e-12 * fabs(a) + 1e-15);
        assert_true(c >= a - 1e-12 * fabs(a) - 1e-15);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_exact_vectors),
        cmocka_unit_test(test_against_direct_sum),
        cmocka_unit_test(test_edges),
        cmocka_unit_test(test_score_underflow),
        cmocka_unit_test(test_monotone),
        cmocka_unit_test(test_gamma_exact),
        cmocka_unit_test(test_gamma_monotone),
    };
    return cmocka_run_group_tests_name("stats", tests, NULL, NULL);
}
