/* Reading mode (wm_reader):
 * - exactness against a brute-force re-implementation of detect.h's rules
 *   (first occurrence of a seed in the document, answer positions, dedup of
 *   (seed, prediction) over the corpus, WM_TOKEN_NONE entries making no
 *   tuple) on small vocabularies where every rule fires;
 * - the null with text that IS watermarked and a reader that exploits it
 *   the way a clean model can (copying tokens seen earlier in the document):
 *   false-positive rate over 10,000 documents within its binomial interval,
 *   randomised p-values uniform (KS at the 0.001 level);
 * - power: a reader that learned the green lists is flagged;
 * - argument checks. */
#include "testutil.h"

/* detect.h's rule for h = 1 lefthash (seed = the previous token): position
 * i is read iff it is an answer position and its seed t[i - 1] occurs there
 * for the first time in the document. */
static int read_here(const wm_token *t, size_t i, size_t n_prompt)
{
    for (size_t j = 1; j < i; j++)
        if (t[j - 1] == t[i - 1]) return 0;
    return i >= n_prompt + (n_prompt > 0);
}

/* Brute force, h = 1 lefthash, straight from the rules in detect.h.  fps: the corpus's tuples so far (ctx * V + tok). */
static void brute(const wm_watermark *wm, const wm_token *t, size_t n, size_t n_prompt, const wm_token *preds,
                  size_t k, uint32_t V, uint8_t *seen, uint64_t *scored, uint64_t *green, uint64_t *positions)
{
    for (size_t i = 1; i < n; i++) {
        if (!read_here(t, i, n_prompt)) continue;
        int any = 0; /* a row of WM_TOKEN_NONE only is not read */
        for (size_t q = 0; q < k; q++) any |= preds[i * k + q] != WM_TOKEN_NONE;
        *positions += any;
        for (size_t q = 0; q < k; q++) {
            wm_token p = preds[i * k + q];
            if (p == WM_TOKEN_NONE) continue; /* no prediction: no tuple */
            size_t id = (size_t)t[i - 1] * V + (size_t)p;
            if (seen[id]) continue;
            seen[id] = 1;
            bool g;
            assert_int_equal(wm_is_green(wm, t + i - 1, 1, p, &g), WM_OK);
            ++*scored;
            *green += g;
        }
    }
}

static void test_brute_force(void **state)
{
    (void)state;
    const uint32_t V = 13;
    wm_watermark *wm = test_wm(0.25, 1, WM_SEEDING_LEFTHASH, V);
    wm__rng r;
    wm__rng_seed(&r, 7);
    for (int trial = 0; trial < 200; trial++) {
        wm_reader *rd;
        assert_int_equal(wm_reader_new(&rd, wm, 0), WM_OK);
        uint8_t seen[13 * 13] = { 0 };
        uint64_t scored = 0, green = 0, positions = 0;
        for (int doc = 0; doc < 1 + trial % 5; doc++) {
            wm_token t[30], preds[30 * 3];
            size_t n = wm__rng_next(&r) % 31, k = 1 + wm__rng_next(&r) % 3, np = n ? wm__rng_next(&r) % (n + 1) : 0;
            random_tokens(&r, t, n, V);
            random_tokens(&r, preds, n * k, V);
            for (size_t j = 0; j < n * k; j++) /* a quarter "not read" */
                if (wm__rng_next(&r) % 4 == 0) preds[j] = WM_TOKEN_NONE;
            assert_int_equal(wm_reader_add(rd, t, n, np, preds, NULL, k), WM_OK);
            brute(wm, t, n, np, preds, k, V, seen, &scored, &green, &positions);
        }
        wm_score s = WM_INIT(wm_score);
        uint64_t pos;
        assert_int_equal(wm_reader_score(rd, 0.01, &s, &pos), WM_OK);
        assert_int_equal(s.scored, scored);
        assert_int_equal((uint64_t)s.statistic, green);
        assert_int_equal(pos, positions);
        double want = scored ? wm_binom_log10_sf(scored, green, 0.25) : 0;
        assert_true(fabs(s.log10_p - want) < 1e-9);
        wm_reader_free(rd);
    }
    wm_watermark_free(wm);
}

/* A reader with no knowledge of the key that exploits the text as a clean
 * model can: it predicts the tokens that followed its context earlier in
 * the document (an induction head; green there 90% of the time), then the
 * most recent tokens. */
static void copy_reader(const wm_token *t, size_t n, wm_token *preds, size_t k)
{
    for (size_t i = 0; i < n; i++) {
        size_t q = 0;
        for (size_t j = i; j-- > 1 && q < k;)
            if (t[j - 1] == t[i ? i - 1 : 0]) preds[i * k + q++] = t[j];
        for (size_t j = i; j-- > 0 && q < k;) preds[i * k + q++] = t[j];
        while (q < k) preds[i * k + q++] = 0;
    }
}

static void test_null_copying_reader(void **state)
{
    (void)state;
    const uint32_t V = 400;
    const size_t n = 120, k = 3, docs = 10000;
    const double alpha = 0.01;
    wm__rng r;
    wm__rng_seed(&r, 11);
    wm_token t[120], preds[120 * 3];
    size_t flagged = 0;
    uint64_t tot_n = 0, tot_g = 0;
    double *p = malloc(docs * sizeof *p);
    for (size_t d = 0; d < docs; d++) {
        wm_watermark *wm = random_wm(&r, "kgw", V);
        green_text(wm, &r, t, n, V, 0.9); /* watermarked, strongly */
        copy_reader(t, n, preds, k);
        wm_reader *rd;
        assert_int_equal(wm_reader_new(&rd, wm, 0), WM_OK);
        assert_int_equal(wm_reader_add(rd, t, n, 0, preds, NULL, k), WM_OK);
        wm_score s = WM_INIT(wm_score);
        assert_int_equal(wm_reader_score(rd, alpha, &s, NULL), WM_OK);
        flagged += s.watermarked;
        uint64_t g = (uint64_t)s.statistic;
        double hi = exp(M_LN10 * wm_binom_log10_sf(s.scored, g, 0.25));
        double lo = exp(M_LN10 * wm_binom_log10_sf(s.scored, g + 1, 0.25));
        p[d] = lo + wm__rng_uniform(&r) * (hi - lo);
        tot_n += s.scored;
        tot_g += g;
        wm_reader_free(rd);
        wm_watermark_free(wm);
    }
    /* the discrete test is conservative: FPR <= alpha, up to 3.3 sd */
    double sd = sqrt(docs * alpha * (1 - alpha));
    print_message("copying reader on watermarked text: %zu/%zu flagged at alpha %.2f (bound %.0f)\n", flagged,
                  docs, alpha, docs * alpha + 3.3 * sd);
    assert_true(flagged <= docs * alpha + 3.3 * sd);
    /* KS on the randomised p-values: exact uniform if the rule is right */
    double z = (tot_g - 0.25 * tot_n) / sqrt(tot_n * 0.25 * 0.75);
    print_message("%llu tuples, green rate %.5f (z %.2f)\n", (unsigned long long)tot_n, (double)tot_g / tot_n, z);
    double D = ks_uniform(p, docs), crit = 1.949 / sqrt((double)docs);
    print_message("randomised p-values: KS D %.4f (crit %.4f at 0.001)\n", D, crit);
    assert_true(D < crit && fabs(z) < 4);
    free(p);
}

static void test_power(void **state)
{
    (void)state;
    const uint32_t V = 400;
    const size_t n = 120, k = 1;
    wm_watermark *wm = test_wm(0.25, 1, WM_SEEDING_LEFTHASH, V);
    wm__rng r;
    wm__rng_seed(&r, 3);
    wm_token t[120], preds[120];
    wm_reader *rd;
    assert_int_equal(wm_reader_new(&rd, wm, 0), WM_OK);
    for (int d = 0; d < 20; d++) {
        green_text(wm, &r, t, n, V, 0.9); /* watermarked, strongly */
        /* a student that learned the lists: green for its context twice as
         * often as chance (a red draw is kept half the time) */
        preds[0] = 0;
        for (size_t i = 1; i < n; i++) {
            bool g;
            do {
                preds[i] = (wm_token)(wm__rng_next(&r) % V);
                assert_int_equal(wm_is_green(wm, t + i - 1, 1, preds[i], &g), WM_OK);
            } while (!g && wm__rng_uniform(&r) < 0.5);
        }
        assert_int_equal(wm_reader_add(rd, t, n, 0, preds, NULL, k), WM_OK);
    }
    wm_score s = WM_INIT(wm_score);
    assert_int_equal(wm_reader_score(rd, 1e-6, &s, NULL), WM_OK);
    print_message("reader that learned the lists: %llu tuples, log10 p %.1f\n", (unsigned long long)s.scored,
                  s.log10_p);
    assert_true(s.watermarked);
    wm_reader_free(rd);
    wm_watermark_free(wm);
}

static void test_args(void **state)
{
    (void)state;
    wm_watermark *wm = test_wm(0.25, 1, WM_SEEDING_LEFTHASH, 10);
    wm_reader *rd;
    wm_token t[3] = { 1, 2, 3 }, bad[3] = { 1, 10, 3 }, preds[6] = { 0 };
    wm_score s = WM_INIT(wm_score);
    assert_int_equal(wm_reader_new(&rd, wm, 8), WM_ERR_ARG); /* 4 is WM_CORPUS_MAP (test_cluster) */
    assert_int_equal(wm_reader_new(&rd, wm, WM_ACCOUNTS), WM_ERR_UNSUPPORTED); /* no account layer */
    float wt[6] = { 0 };
    assert_int_equal(wm_reader_new(&rd, NULL, 0), WM_ERR_ARG);
    assert_int_equal(wm_reader_new(&rd, wm, 0), WM_OK);
    assert_int_equal(wm_reader_add(rd, t, 3, 0, preds, NULL, 0), WM_ERR_ARG);
    assert_int_equal(wm_reader_add(rd, t, 3, 4, preds, NULL, 1), WM_ERR_ARG);
    assert_int_equal(wm_reader_add(rd, t, 3, 0, NULL, NULL, 1), WM_ERR_ARG);
    assert_int_equal(wm_reader_add(rd, bad, 3, 0, preds, NULL, 1), WM_ERR_TOKEN);
    assert_int_equal(wm_reader_add(rd, t, 3, 0, bad, NULL, 1), WM_ERR_TOKEN);
    assert_int_equal(wm_reader_add(rd, t, 3, 0, preds, wt, 1), WM_ERR_ARG); /* weights to a plain reader */
    assert_int_equal(wm_reader_add(rd, t, 3, 0, preds, NULL, 2), WM_OK);
    assert_int_equal(wm_reader_score(rd, 0, &s, NULL), WM_ERR_ARG);
    assert_int_equal(wm_reader_score(rd, 0.5, &s, NULL), WM_OK);
    assert_int_equal(s.tokens, 3);
    wm_reader_free(rd);
    wm_reader_free(NULL);
    assert_int_equal(wm_reader_new(&rd, wm, WM_READ_WEIGHTED), WM_OK);
    assert_int_equal(wm_reader_add(rd, t, 3, 0, preds, NULL, 1), WM_ERR_ARG); /* weights missing */
    wt[1] = NAN;
    assert_int_equal(wm_reader_add(rd, t, 3, 0, preds, wt, 1), WM_ERR_ARG);
    wt[1] = 0.5f;
    assert_int_equal(wm_reader_add(rd, t, 3, 0, preds, wt, 1), WM_OK);
    assert_int_equal(wm_reader_score(rd, 0.5, &s, NULL), WM_OK);
    wm_reader_free(rd);
    wm_watermark_free(wm);
    wm_watermark *gw = test_wm_gumbel(1, WM_SEEDING_LEFTHASH, 10);
    assert_int_equal(wm_reader_new(&rd, gw, WM_READ_WEIGHTED), WM_ERR_UNSUPPORTED);
    wm_watermark_free(gw);
    /* The bound refuses what it cannot bound, and leaves NaN for a caller
     * that reads *out anyway: a NaN or infinite weight (the Chernoff sum
     * would skip it, p = 1, or turn it into p = 1 or 0), an infinite s (p = 0
     * from nothing), p outside (0, 1). */
    double lp = 0, wok[3] = { 1, 0.5, -0.25 };
    assert_int_equal(wm_wbinom_log10_bound(NULL, 1, 1, 0.5, &lp), WM_ERR_ARG);
    assert_true(isnan(lp));
    assert_int_equal(wm_wbinom_log10_bound(NULL, 0, 1, 1, &lp), WM_ERR_ARG);
    assert_int_equal(wm_wbinom_log10_bound(wok, 3, 1, 0.25, NULL), WM_ERR_ARG);
    const double nonfinite[] = { NAN, INFINITY, -INFINITY };
    for (int i = 0; i < 3; i++) {
        double wb[3] = { 1, 0.5, -0.25 };
        wb[1] = nonfinite[i];
        lp = 0;
        assert_int_equal(wm_wbinom_log10_bound(wb, 3, 1, 0.25, &lp), WM_ERR_ARG);
        assert_true(isnan(lp));
        double all[3] = { nonfinite[i], nonfinite[i], nonfinite[i] };
        assert_int_equal(wm_wbinom_log10_bound(all, 3, 1, 0.25, &lp), WM_ERR_ARG);
        assert_true(isnan(lp));
        lp = 0;
        assert_int_equal(wm_wbinom_log10_bound(wok, 3, nonfinite[i], 0.25, &lp), WM_ERR_ARG);
        assert_true(isnan(lp));
        assert_int_equal(wm_wbinom_log10_bound(wok, 3, 1, nonfinite[i], &lp), WM_ERR_ARG);
    }
    assert_int_equal(wm_wbinom_log10_bound(wok, 3, 1, 0, &lp), WM_ERR_ARG);
    assert_int_equal(wm_wbinom_log10_bound(wok, 3, 1, 1, &lp), WM_ERR_ARG);
    assert_int_equal(wm_wbinom_log10_bound(wok, 3, 1.5, 0.25, &lp), WM_OK);
    assert_true(lp < 0 && lp > -3);
    assert_int_equal(wm_wbinom_log10_bound(NULL, 0, 1, 0.25, &lp), WM_OK); /* empty sum: s = 1 impossible... */
    assert_true(lp == 0); /* ... yet the bound at l = 0 is all it can say */
}

/* ---- the weighted test ---------------------------------------------------- */

/* The Chernoff bound against the exact tail by enumeration of all 2^m
 * outcomes (m <= 14, weights of both signs, several p): never below it at
 * any achievable s.  With equal weights the minimum is known in closed form,
 * -n KL(s/n || p), which checks the minimiser to 1e-9. */
static void test_wbinom_bound(void **state)
{
    (void)state;
    wm__rng r;
    wm__rng_seed(&r, 5);
    static double sums[1 << 14], probs[1 << 14];
    for (int trial = 0; trial < 300; trial++) {
        size_t m = 1 + wm__rng_next(&r) % 14;
        double w[14], p = 0.05 + 0.9 * wm__rng_uniform(&r);
        for (size_t i = 0; i < m; i++)
            w[i] = trial % 3 == 0 ? 1.0 : (wm__rng_uniform(&r) - (trial % 3 == 1 ? 0.3 : 0.0)) * 3;
        for (size_t x = 0; x < ((size_t)1 << m); x++) {
            double s = 0, pr = 1;
            for (size_t i = 0; i < m; i++) {
                s += (x >> i & 1) ? w[i] : 0;
                pr *= (x >> i & 1) ? p : 1 - p;
            }
            sums[x] = s, probs[x] = pr;
        }
        for (size_t x = 0; x < ((size_t)1 << m); x++) {
            double tail = 0;
            for (size_t y = 0; y < ((size_t)1 << m); y++) tail += sums[y] >= sums[x] ? probs[y] : 0;
            double b;
            assert_int_equal(wm_wbinom_log10_bound(w, m, sums[x], p, &b), WM_OK);
            assert_true(b <= 0 && b >= log10(tail) - 1e-9);
            if (trial % 3 == 0) {
                double a = sums[x] / m, kl = a >= 1 ? log(1 / p) : a * log(a / p) + (1 - a) * log((1 - a) / (1 - p));
                if (a == 0) kl = log(1 / (1 - p));
                double want = a <= p ? 0 : -(double)m * kl / M_LN10;
                if (fabs(b - want) > 1e-9) print_message("m %zu s %g p %g: %.12f vs %.12f\n", m, sums[x], p, b, want);
                assert_true(fabs(b - want) < 1e-9);
            }
        }
    }
}

/* Brute force of the weighted reader: W(s, q) summed over the read
 * positions, S over green tuples, and the bound of those numbers. */
static void test_weighted_brute_force(void **state)
{
    (void)state;
    const uint32_t V = 11;
    wm_watermark *wm = test_wm(0.25, 1, WM_SEEDING_LEFTHASH, V);
    wm__rng r;
    wm__rng_seed(&r, 9);
    for (int trial = 0; trial < 100; trial++) {
        wm_reader *rd;
        assert_int_equal(wm_reader_new(&rd, wm, WM_READ_WEIGHTED), WM_OK);
        double W[11 * 11] = { 0 };
        uint8_t used[11 * 11] = { 0 };
        for (int doc = 0; doc < 1 + trial % 4; doc++) {
            wm_token t[30], preds[30 * 3];
            float wt[30 * 3];
            size_t n = wm__rng_next(&r) % 31, k = 1 + wm__rng_next(&r) % 3, np = n ? wm__rng_next(&r) % (n + 1) : 0;
            random_tokens(&r, t, n, V);
            random_tokens(&r, preds, n * k, V);
            for (size_t i = 0; i < n * k; i++) wt[i] = (float)(wm__rng_uniform(&r) * 2 - 0.7);
            assert_int_equal(wm_reader_add(rd, t, n, np, preds, wt, k), WM_OK);
            for (size_t i = 1; i < n; i++) {
                if (!read_here(t, i, np)) continue;
                for (size_t q = 0; q < k; q++) {
                    size_t id = (size_t)t[i - 1] * V + (size_t)preds[i * k + q];
                    W[id] += wt[i * k + q];
                    used[id] = 1;
                }
            }
        }
        double w[11 * 11], S = 0;
        size_t m = 0;
        for (size_t id = 0; id < V * V; id++) {
            if (!used[id]) continue;
            bool g;
            wm_token ctx = (wm_token)(id / V);
            assert_int_equal(wm_is_green(wm, &ctx, 1, (wm_token)(id % V), &g), WM_OK);
            S += g ? W[id] : 0;
            w[m++] = W[id];
        }
        wm_score s = WM_INIT(wm_score);
        assert_int_equal(wm_reader_score(rd, 0.01, &s, NULL), WM_OK);
        assert_int_equal(s.scored, m);
        assert_true(fabs(s.statistic - S) < 1e-9);
        double bound;
        assert_int_equal(wm_wbinom_log10_bound(w, m, S, 0.25, &bound), WM_OK);
        assert_true(fabs(s.log10_p - bound) < 1e-6);
        wm_reader_free(rd);
    }
    wm_watermark_free(wm);
}

/* The weighted test's null as test_null_copying_reader's: watermarked text,
 * a copying reader whose weights favour what it copies (1, 0.5, -0.25 by
 * rank), fresh key per document.  A bound can only be conservative: the
 * false-positive rate must stay within alpha's binomial interval at two
 * levels. */
static void test_weighted_null(void **state)
{
    (void)state;
    const uint32_t V = 400;
    const size_t n = 120, k = 3, docs = 10000;
    wm__rng r;
    wm__rng_seed(&r, 13);
    wm_token t[120], preds[120 * 3];
    float wt[120 * 3];
    size_t flagged[2] = { 0, 0 };
    const double alpha[2] = { 0.01, 0.1 };
    for (size_t i = 0; i < n * k; i++) wt[i] = i % 3 == 0 ? 1.0f : i % 3 == 1 ? 0.5f : -0.25f;
    for (size_t d = 0; d < docs; d++) {
        wm_watermark *wm = random_wm(&r, "kgw", V);
        green_text(wm, &r, t, n, V, 0.9); /* watermarked, strongly */
        copy_reader(t, n, preds, k);
        wm_reader *rd;
        assert_int_equal(wm_reader_new(&rd, wm, WM_READ_WEIGHTED), WM_OK);
        assert_int_equal(wm_reader_add(rd, t, n, 0, preds, wt, k), WM_OK);
        wm_score s = WM_INIT(wm_score);
        assert_int_equal(wm_reader_score(rd, 0.5, &s, NULL), WM_OK);
        for (int a = 0; a < 2; a++) flagged[a] += s.log10_p < log10(alpha[a]);
        wm_reader_free(rd);
        wm_watermark_free(wm);
    }
    for (int a = 0; a < 2; a++) {
        double bound = docs * alpha[a] + 3.3 * sqrt(docs * alpha[a] * (1 - alpha[a]));
        print_message("weighted, copying reader: %zu/%zu flagged at alpha %.2f (bound %.0f)\n", flagged[a], docs,
                      alpha[a], bound);
        assert_true(flagged[a] <= bound);
    }
}

/* Power: the reader of test_power with weights = its confidence (1 for what
 * it learned, 0.2 for its random guesses) beats the plain count. */
static void test_weighted_power(void **state)
{
    (void)state;
    const uint32_t V = 400;
    const size_t n = 120, k = 2;
    wm_watermark *wm = test_wm(0.25, 1, WM_SEEDING_LEFTHASH, V);
    wm__rng r;
    wm__rng_seed(&r, 17);
    wm_token t[120], preds[120 * 2];
    float wt[120 * 2];
    wm_reader *plain, *wr;
    assert_int_equal(wm_reader_new(&plain, wm, 0), WM_OK);
    assert_int_equal(wm_reader_new(&wr, wm, WM_READ_WEIGHTED), WM_OK);
    for (int d = 0; d < 10; d++) {
        green_text(wm, &r, t, n, V, 0.9); /* watermarked, strongly */
        for (size_t i = 0; i < n; i++) {
            bool g;
            do { /* first guess: learned, green 2/3 of the time */
                preds[i * k] = (wm_token)(wm__rng_next(&r) % V);
                assert_int_equal(wm_is_green(wm, t + (i ? i - 1 : 0), 1, preds[i * k], &g), WM_OK);
            } while (!g && wm__rng_uniform(&r) < 0.5);
            preds[i * k + 1] = (wm_token)(wm__rng_next(&r) % V);
            wt[i * k] = 1.0f;
            wt[i * k + 1] = 0.2f;
        }
        assert_int_equal(wm_reader_add(plain, t, n, 0, preds, NULL, k), WM_OK);
        assert_int_equal(wm_reader_add(wr, t, n, 0, preds, wt, k), WM_OK);
    }
    wm_score a = WM_INIT(wm_score), b = WM_INIT(wm_score);
    assert_int_equal(wm_reader_score(plain, 1e-6, &a, NULL), WM_OK);
    assert_int_equal(wm_reader_score(wr, 1e-6, &b, NULL), WM_OK);
    print_message("plain log10 p %.1f, weighted %.1f (z %.1f)\n", a.log10_p, b.log10_p, b.z);
    assert_true(b.log10_p < a.log10_p - 1 && b.watermarked);
    wm_reader_free(plain);
    wm_reader_free(wr);
    wm_watermark_free(wm);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_brute_force),
        cmocka_unit_test(test_null_copying_reader),
        cmocka_unit_test(test_power),
        cmocka_unit_test(test_args),
        cmocka_unit_test(test_wbinom_bound),
        cmocka_unit_test(test_weighted_brute_force),
        cmocka_unit_test(test_weighted_null),
        cmocka_unit_test(test_weighted_power),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
