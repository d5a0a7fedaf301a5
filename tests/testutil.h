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
#include "embed/softmax.h"

/* ---- instruction sets (prf/dispatch.c, wm/advanced.h's wm_cpu_kernels) --
 * Probed here apart from the dispatcher, so that a dispatcher that hides a
 * set, or hands out one that WM_CPU forbids, fails the kernel suites
 * instead of letting their comparisons pass without running. */
static const char *const test_isa[] = { "scalar", "avx2", "avx512" }; /* narrowest first */

/* The rank of `name` in test_isa, -1 for an unknown name. */
static inline int test_isa_rank(const char *name)
{
    for (int i = 0; i < 3; i++)
        if (!strcmp(name, test_isa[i])) return i;
    return -1;
}

/* Whether this CPU runs every kernel of set `rank`: AVX2 with FMA and F16C;
 * AVX-512F with BMI2, and those. */
static inline int test_cpu_runs(int rank)
{
#if defined(__x86_64__) && defined(__GNUC__)
    unsigned a = 1, b, c = 0, d;
    __asm__ volatile("cpuid" : "+a"(a), "=b"(b), "+c"(c), "=d"(d));
    __builtin_cpu_init();
    int avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && ((c >> 29) & 1);
    if (rank == 1) return avx2;
    if (rank == 2) return avx2 && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("bmi2");
#endif
    return rank == 0;
}

/* The widest set this process's kernels may be: WM_CPU's, else the CPU's. */
static inline int test_isa_allowed(void)
{
    const char *env = getenv("WM_CPU");
    if (env) return test_isa_rank(env);
    int r = 2;
    while (r > 0 && !test_cpu_runs(r)) r--;
    return r;
}

/* Whether to compare kernel `what` of set `rank` with the scalar one:
 * `present` is whether the dispatcher gave one.  Present beyond the allowed
 * set, or absent within it, fails; absent beyond it is reported, never
 * passed over silently. */
static inline int test_kernel_runs(const char *what, int rank, int present)
{
    int allowed = rank <= test_isa_allowed();
    if (present && !allowed) fail_msg("%s: a %s kernel handed out under WM_CPU=%s", what, test_isa[rank], getenv("WM_CPU"));
    if (!present && allowed) fail_msg("%s: this CPU runs %s, but the dispatcher gives no kernel", what, test_isa[rank]);
    if (!present)
        print_message("NOT RUN: %s %s (%s)\n", what, test_isa[rank],
                      getenv("WM_CPU") ? "WM_CPU forbids it" : "this CPU lacks it");
    return present;
}

/* Kernel `got` is set `level`'s: k[level] (k[] the avx512, avx2 and scalar
 * kernels the dispatcher gives, NULL where none), with nothing wider given.
 * void (*)(void): the one type every function pointer converts to and back. */
typedef void (*test_fn)(void);
static inline int test_picked(test_fn got, int level, test_fn k512, test_fn k2, test_fn k0)
{
    test_fn want = level == 2 ? k512 : level == 1 ? k2 : k0;
    return got && got == want && (level >= 2 || !k512) && (level >= 1 || !k2 || k2 == k0);
}
#define TEST_PICKED(got, level, k512, k2, k0) test_picked((test_fn)(got), level, (test_fn)(k512), (test_fn)(k2), (test_fn)(k0))

/* Run first by every kernel suite's main.  Under WM_CPU (meson runs those
 * suites once per set): exactly the forced set is in use, every kernel of a
 * watermark and a sampler being that set's; or, on a CPU that lacks it (or
 * for an unknown name), it is refused fail-closed, wm_watermark_new
 * included, and the suite exits saying so: 0 for an unknown name (the
 * refusal was the test), 77 (a meson SKIP) for a set the CPU lacks.  A failure
 * exits 1.  Returns only when the suite is to run. */
static inline void test_forced_isa(void)
{
    const char *env = getenv("WM_CPU"), *name = NULL;
    if (!env) return;
    int want = test_isa_rank(env), refused = want < 0 || !test_cpu_runs(want);
    wm_status st = wm_cpu_kernels(&name);
    wm_params p = { .size = sizeof(wm_params), .scheme = "kgw", .seeding = WM_SEEDING_LEFTHASH, .context_width = 1, .gamma = 0.25, .delta = 2.0 };
    unsigned char seed[32] = { 0 };
    wm_key *k = NULL;
    wm_watermark *wm = NULL;
    if (wm_key_from_seed(&k, &p, seed)) exit(1);
    wm_status made = wm_watermark_new(&wm, k, 1000);
    wm_key_free(k);
    if (refused) {
        if (st != WM_ERR_UNSUPPORTED || name || made != WM_ERR_UNSUPPORTED || wm) {
            fprintf(stderr, "FAIL: WM_CPU=%s is not refused (%d, %d)\n", env, st, made);
            exit(1);
        }
        printf("%sWM_CPU=%s: %s; refused, as it must be\n", want < 0 ? "" : "SKIP: ", env,
               want < 0 ? "no such set" : "this CPU lacks it");
        exit(want < 0 ? 0 : 77); /* an unknown name: the refusal is the test */
    }
    wm_maxcheck_fn mc;
    wm_softmax_fn sm;
    wm_head_fn hd;
    wm__pick_sampler_kernels(&mc, &sm, &hd);
    int L = want;
    int ok = st == WM_OK && name && !strcmp(name, env) && made == WM_OK &&
             TEST_PICKED(wm->fill, L, wm__fill_avx512(), wm__fill_avx2(), wm__fill_scalar_kernel()) &&
             TEST_PICKED(wm->apply, L, wm__apply_avx512(), wm__apply_avx2(), wm__apply_scalar) &&
             TEST_PICKED(wm->prf_many, L, wm__prf_many_avx512(), wm__prf_many_scalar_kernel(), wm__prf_many_scalar_kernel()) &&
             TEST_PICKED(wm->widen, L, wm__widen_avx512(), wm__widen_avx2(), wm__widen_scalar) &&
             TEST_PICKED(wm->narrow, L, wm__narrow_avx512(), wm__narrow_avx2(), wm__narrow_scalar) &&
             TEST_PICKED(mc, L, wm__maxcheck_avx512(), wm__maxcheck_avx2(), wm__maxcheck_scalar) &&
             TEST_PICKED(sm, L, wm__softmax_avx512(), wm__softmax_avx2(), wm__softmax_scalar) &&
             TEST_PICKED(hd, L, wm__head_avx512(), wm__head_avx2(), wm__head_scalar) &&
             /* kgw's fused kernel: what its prepare stores (schemes/kgw.c) */
             (L == 2 ? wm__bias_row_avx512() != NULL : !wm__bias_row_avx512());
    wm_watermark_free(wm);
    if (!ok) {
        fprintf(stderr, "FAIL: WM_CPU=%s, but the kernels in use are not that set's (wm_cpu_kernels: %s)\n", env,
                name ? name : "refused");
        exit(1);
    }
    printf("WM_CPU=%s: every kernel is that set's\n", env);
}

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
 * of real LMs at temperature 1.  Every one of the V logits is written (Box-
 * Muller pairs; an odd V's last takes the cosine of one more pair). */
static inline void synth_logits(wm__rng *r, float *l, uint32_t V)
{
    for (uint32_t v = 0; v < V; v += 2) {
        double u1 = wm__rng_uniform(r), u2 = wm__rng_uniform(r);
        double m = 5 * sqrt(-2 * log(1 - u1));
        l[v] = (float)(m * cos(2 * M_PI * u2));
        if (v + 1 < V) l[v + 1] = (float)(m * sin(2 * M_PI * u2));
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
