/* Shared helpers for the cmocka suites. */
#ifndef WM_TESTUTIL_H
#define WM_TESTUTIL_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

/* A watermark from the fixed test key: seed bytes 0, 1, ..., 31.  Never
 * use it for real. */
/* Fails the test unless `call` returns `want` and leaves a non-empty,
 * terminated message in the caller's `wm_error err` (zeroed first): every
 * call taking a wm_error fills it on every failure (common.h). */
#define FAILS_WITH_MESSAGE(want, call)                                                                  \
    do {                                                                                            \
        memset(&err, 0, sizeof err);                                                                \
        wm_status st_ = (call);                                                                     \
        if (st_ != (want) || !err.message[0] || !memchr(err.message, 0, sizeof err.message))       \
            fail_msg("%s: status %d (want %d), message '%.*s'", #call, st_, (int)(want),            \
                     (int)sizeof err.message, err.message);                                         \
    } while (0)

static inline wm_watermark *test_wm_params(const wm_params *p, uint32_t n_vocab)
{
    unsigned char seed[32];
    for (int i = 0; i < 32; i++) seed[i] = (unsigned char)i;
    wm_key *k = NULL;
    wm_watermark *wm = NULL;
    assert_int_equal(wm_key_from_seed(&k, p, seed), WM_OK);
    assert_int_equal(wm_watermark_new(&wm, k, n_vocab), WM_OK);
    wm_key_free(k);
    return wm;
}

/* kgw with delta 2. */
static inline wm_watermark *test_wm(double gamma, uint32_t h, wm_seeding seeding, uint32_t n_vocab)
{
    wm_params p = { .size = sizeof(wm_params), .scheme = "kgw", .seeding = seeding, .context_width = h, .gamma = gamma, .delta = 2.0, .account_delta = 0.0 };
    return test_wm_params(&p, n_vocab);
}

static inline wm_watermark *test_wm_gumbel(uint32_t h, wm_seeding seeding, uint32_t n_vocab)
{
    wm_params p = { .size = sizeof(wm_params), .scheme = "gumbel", .seeding = seeding, .context_width = h, .gamma = 0, .delta = 0, .account_delta = 0.0 };
    return test_wm_params(&p, n_vocab);
}

static inline void random_tokens(wm__rng *r, wm_token *t, size_t n, uint32_t n_vocab)
{
    for (size_t i = 0; i < n; i++) t[i] = (wm_token)(wm__rng_next(r) % n_vocab);
}

/* A watermark with parameters p under a key drawn from r: a fresh key per
 * null trial, so that trials sharing token pairs do not share green lists. */
static inline wm_watermark *random_wm_params(wm__rng *r, const wm_params *p, uint32_t V)
{
    unsigned char seed[32];
    for (int i = 0; i < 32; i++) seed[i] = (unsigned char)wm__rng_next(r);
    wm_key *k = NULL;
    wm_watermark *wm = NULL;
    assert_int_equal(wm_key_from_seed(&k, p, seed), WM_OK);
    assert_int_equal(wm_watermark_new(&wm, k, V), WM_OK);
    wm_key_free(k);
    return wm;
}

/* The same with h = 1 lefthash, kgw at gamma 0.25, delta 2, or gumbel. */
static inline wm_watermark *random_wm(wm__rng *r, const char *scheme, uint32_t V)
{
    int kgw = !strcmp(scheme, "kgw");
    wm_params p = { .size = sizeof(wm_params), .scheme = scheme, .seeding = WM_SEEDING_LEFTHASH, .context_width = 1, .gamma = kgw ? 0.25 : 0, .delta = kgw ? 2 : 0, .account_delta = 0.0 };
    return random_wm_params(r, &p, V);
}

/* Text t[0..n) whose every token (after the first) is green for its h = 1
 * context with probability `rate` (rejection sampling over V tokens). */
static inline void green_text(const wm_watermark *wm, wm__rng *r, wm_token *t, size_t n, uint32_t V, double rate)
{
    t[0] = (wm_token)(wm__rng_next(r) % V);
    for (size_t i = 1; i < n; i++) {
        int want = wm__rng_uniform(r) < rate;
        bool g;
        do {
            t[i] = (wm_token)(wm__rng_next(r) % V);
            assert_int_equal(wm_is_green(wm, t + i - 1, 1, t[i], &g), WM_OK);
        } while (g != want);
    }
}

/* A synthetic language model: fresh N(0, 5^2) logits each step over 32,000
 * tokens, mean entropy about 2.8 nats (0.1 to 4.5 step to step), the range
 * of real LMs at temperature 1. */
static inline void synth_logits(wm__rng *r, float *l, uint32_t V)
{
    for (uint32_t v = 0; v + 1 < V; v += 2) {
        double u1 = wm__rng_uniform(r), u2 = wm__rng_uniform(r);
        double m = 5 * sqrt(-2 * log(1 - u1));
        l[v] = (float)(m * cos(2 * M_PI * u2));
        l[v + 1] = (float)(m * sin(2 * M_PI * u2));
    }
}

static inline int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Kolmogorov-Smirnov distance of a sample from U(0,1). */
static inline double ks_uniform(double *p, size_t n)
{
    qsort(p, n, sizeof *p, cmp_double);
    double d = 0;
    for (size_t i = 0; i < n; i++) {
        double lo = p[i] - (double)i / n, hi = (double)(i + 1) / n - p[i];
        if (lo > d) d = lo;
        if (hi > d) d = hi;
    }
    return d;
}

#endif
