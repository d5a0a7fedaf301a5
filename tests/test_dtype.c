/* 16-bit logits (embed/dtype.c, wm_bias_logits_batch with WM_DTYPE_BF16 /
 * WM_DTYPE_F16):
 * - the conversions: widening then narrowing is the identity on all 65,536
 *   patterns of each type (NaN to NaN); narrowing rounds to nearest even,
 *   checked against an independent reference (bf16: the two neighbours
 *   compared in double; f16: the compiler's _Float16) on 2^24 random floats
 *   and every edge (halfway points, subnormals, overflow, inf, NaN);
 * - the AVX2 + F16C and AVX-512F kernels equal the scalar ones bit for bit (all 65,536
 *   patterns widened; 2^20 random floats, specials and odd lengths narrowed);
 * - biasing: every 16-bit row, with and without an account, equals the
 *   binary32 path applied step by step (green list, then account part,
 *   each rounded), so the same tokens move; padding and other rows stay
 *   untouched; the kernel-parameter and seed calls agree with the bias. */
#include "testutil.h"

#include <math.h>

static float f32_of(uint32_t u)
{
    float f;
    memcpy(&f, &u, 4);
    return f;
}
static uint32_t bits_of(float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}

static uint16_t narrow1(float f, wm_dtype t)
{
    uint16_t h;
    wm__narrow_scalar(&f, 1, t, &h);
    return h;
}
static float widen1(uint16_t h, wm_dtype t)
{
    float f;
    wm__widen_scalar(&h, t, 1, &f);
    return f;
}

static void test_roundtrip(void **state)
{
    (void)state;
    for (int t = WM_DTYPE_BF16; t <= WM_DTYPE_F16; t++)
        for (uint32_t h = 0; h < 65536; h++) {
            float f = widen1((uint16_t)h, (wm_dtype)t);
            if (f != f) {
                assert_true(narrow1(f, (wm_dtype)t) != narrow1(0.0f, (wm_dtype)t));
                assert_true(widen1(narrow1(f, (wm_dtype)t), (wm_dtype)t) != widen1(narrow1(f, (wm_dtype)t), (wm_dtype)t));
                continue;
            }
            assert_int_equal(narrow1(f, (wm_dtype)t), h);
        }
}

/* Nearest bf16 by comparing the two neighbours; ties to the even one. */
static uint16_t bf16_ref(float f)
{
    if (f != f) return 0x7fc0;
    uint32_t u = bits_of(f), lo = u & 0xffff0000u, hi = lo + 0x10000u;
    if (isinf(f) || u == lo) return (uint16_t)(lo >> 16);
    double dl = fabs((double)f - (double)f32_of(lo)), dh = fabs((double)f32_of(hi) - (double)f);
    if ((hi & 0x7fffffffu) > 0x7f800000u) dh = INFINITY; /* past inf */
    if ((hi & 0x7fffffffu) == 0x7f800000u) /* overflow rounds to inf past the halfway point */
        dh = ldexp(1.0, 128) - fabs((double)f);
    if (dl < dh || (dl == dh && !((lo >> 16) & 1))) return (uint16_t)(lo >> 16);
    return (uint16_t)(hi >> 16);
}

static void check_narrow(float f)
{
    assert_int_equal(narrow1(f, WM_DTYPE_BF16), bf16_ref(f));
#ifdef __FLT16_MAX__
    _Float16 r = (_Float16)f;
    uint16_t want;
    memcpy(&want, &r, 2);
    uint16_t got = narrow1(f, WM_DTYPE_F16);
    if (f != f) assert_true((got & 0x7c00) == 0x7c00 && (got & 0x3ff));
    else assert_int_equal(got, want);
#endif
}

static void test_rounding(void **state)
{
    (void)state;
    wm__rng r;
    wm__rng_seed(&r, 16);
    for (int i = 0; i < (1 << 24); i++) check_narrow(f32_of((uint32_t)wm__rng_next(&r)));
    /* Every halfway point and its neighbours, for both types. */
    for (uint32_t h = 0; h < 65536; h++) {
        uint32_t b = h << 16;
        for (int d = -1; d <= 1; d++) check_narrow(f32_of(b + 0x8000u + (uint32_t)d));
        float x = widen1((uint16_t)h, WM_DTYPE_F16), y = widen1((uint16_t)(h + 1), WM_DTYPE_F16);
        if (x == x && y == y && !isinf(x) && !isinf(y) && (h & 0x7fff) != 0x7fff) {
            float mid = (float)(((double)x + (double)y) / 2);
            check_narrow(mid);
            check_narrow(nextafterf(mid, INFINITY));
            check_narrow(nextafterf(mid, -INFINITY));
        }
    }
    float edge[] = { 0.0f, -0.0f, INFINITY, -INFINITY, NAN, 65504.0f, 65520.0f, 65519.99f, 6e-8f, 3e-8f, 1e-45f,
                     3.4028235e38f, -3.4028235e38f };
    for (size_t i = 0; i < sizeof edge / sizeof *edge; i++) check_narrow(edge[i]);
}

static void check_simd(wm_widen_fn widen, wm_narrow_fn narrow)
{
    enum { N = 1 << 16 };
    uint16_t *h = malloc(N * 2), *a = malloc(N * 2), *b = malloc(N * 2);
    float *fa = malloc(N * 4), *fb = malloc(N * 4);
    wm__rng r;
    wm__rng_seed(&r, 19);
    for (int t = WM_DTYPE_BF16; t <= WM_DTYPE_F16; t++) {
        for (uint32_t i = 0; i < N; i++) h[i] = (uint16_t)i;
        for (size_t off = 0; off < 9; off++) { /* every pattern, odd starts and lengths */
            widen(h + off, (wm_dtype)t, N - off, fa);
            wm__widen_scalar(h + off, (wm_dtype)t, N - off, fb);
            assert_memory_equal(fa, fb, (N - off) * 4);
        }
        for (int round = 0; round < 16; round++) {
            for (uint32_t i = 0; i < N; i++) {
                uint32_t u = (uint32_t)wm__rng_next(&r);
                if (i % 7 == 0) u = (u & 0x8000ffffu) | 0x7f800000u; /* inf and NaNs of every payload */
                if (i % 11 == 0) u = ((uint32_t)(i & 0xffff) << 16) | 0x8000u; /* bf16 halfway points */
                if (i % 13 == 0) u &= 0x807fffffu; /* binary32 subnormals */
                memcpy(fa + i, &u, 4);
            }
            size_t off = (size_t)round % 8;
            narrow(fa + off, N - off, (wm_dtype)t, a);
            wm__narrow_scalar(fa + off, N - off, (wm_dtype)t, b);
            assert_memory_equal(a, b, (N - off) * 2);
        }
    }
    free(h), free(a), free(b), free(fa), free(fb);
}

static void test_simd(void **state)
{
    (void)state;
    wm_widen_fn w[2] = { wm__widen_avx2(), wm__widen_avx512() };
    wm_narrow_fn n[2] = { wm__narrow_avx2(), wm__narrow_avx512() };
    for (int k = 0; k < 2; k++)
        if (test_kernel_runs("widen/narrow", k + 1, w[k] && n[k])) check_simd(w[k], n[k]);
}

/* The binary32 path, step by step: the green list alone, then the account's
 * part alone (the difference of the two binary32 calls), each rounded. */
static void reference(const wm_watermark *wm, uint64_t account, const wm_token *ctx, size_t n_ctx,
                      const uint16_t *in, wm_dtype t, uint32_t V, uint16_t *out)
{
    float *zero = calloc(V, sizeof *zero), *both = calloc(V, sizeof *both);
    assert_int_equal(wm_bias_logits(wm, 0, ctx, n_ctx, zero, V), WM_OK);
    assert_int_equal(wm_bias_logits(wm, account, ctx, n_ctx, both, V), WM_OK);
    for (uint32_t v = 0; v < V; v++) {
        float x = widen1(in[v], t);
        uint16_t g = narrow1(x + zero[v], t);
        out[v] = narrow1(widen1(g, t) + (both[v] - zero[v]), t);
    }
    free(zero);
    free(both);
}

static void test_rows(void **state)
{
    (void)state;
    wm__rng r;
    wm__rng_seed(&r, 17);
    const uint32_t Vs[] = { 1, 63, 1000, 4097, 50257 };
    for (size_t vi = 0; vi < sizeof Vs / sizeof *Vs; vi++)
        for (int t = WM_DTYPE_BF16; t <= WM_DTYPE_F16; t++)
            for (int seeding = 0; seeding < 2; seeding++) {
                uint32_t V = Vs[vi], stride = V + 7;
                wm_params p = { .size = sizeof(wm_params), .scheme = "kgw", .seeding = seeding ? WM_SEEDING_MINHASH : WM_SEEDING_LEFTHASH, .context_width = seeding ? 3 : 1, .gamma = vi % 2 ? 0.5 : 0.25, .delta = 2.0, .account_delta = 1.5 };
                wm_watermark *wm = random_wm_params(&r, &p, V);
                enum { B = 3 };
                wm_token ctx[B][4];
                const wm_token *cp[B];
                size_t nc[B] = { 4, 4, 1 }; /* the last row lacks a context under minhash (h 3) */
                uint64_t acc[B] = { 0, 77, 1ull << 63 };
                for (int s = 0; s < B; s++) {
                    random_tokens(&r, ctx[s], 4, V);
                    cp[s] = ctx[s];
                }
                uint16_t *in = malloc((size_t)B * stride * 2), *got = malloc((size_t)B * stride * 2);
                uint16_t *want = malloc((size_t)V * 2);
                for (size_t i = 0; i < (size_t)B * stride; i++) {
                    float f = (float)(wm__rng_uniform(&r) * 40 - 20);
                    in[i] = narrow1(i % 97 == 0 ? -INFINITY : i % 89 == 0 ? NAN : f, (wm_dtype)t);
                }
                memcpy(got, in, (size_t)B * stride * 2);
                assert_int_equal(wm_bias_logits_batch(wm, B, acc, cp, nc, got, (wm_dtype)t, V, stride), WM_OK);
                for (int s = 0; s < B; s++) {
                    if (nc[s] < p.context_width) {
                        assert_memory_equal(got + s * stride, in + s * stride, (size_t)stride * 2);
                        continue;
                    }
                    reference(wm, acc[s], ctx[s], nc[s], in + s * stride, (wm_dtype)t, V, want);
                    for (uint32_t v = 0; v < V; v++) {
                        uint16_t a = got[s * stride + v], b = want[v];
                        if (widen1(b, (wm_dtype)t) != widen1(b, (wm_dtype)t)) assert_true(widen1(a, (wm_dtype)t) != widen1(a, (wm_dtype)t));
                        else assert_int_equal(a, b);
                    }
                    assert_memory_equal(got + s * stride + V, in + s * stride + V, 7 * 2); /* padding */
                }
                free(in);
                free(got);
                free(want);
                wm_watermark_free(wm);
            }
}

/* What a kernel elsewhere gets: the parameters and seeds behind the bias. */
static void test_kernel_params(void **state)
{
    (void)state;
    wm__rng r;
    wm__rng_seed(&r, 18);
    wm_params p = { .size = sizeof(wm_params), .scheme = "kgw", .seeding = WM_SEEDING_LEFTHASH, .context_width = 2, .gamma = 0.25, .delta = 2.0, .account_delta = 1.0 };
    wm_watermark *wm = random_wm_params(&r, &p, 500);
    wm_kernel_params k = WM_INIT(wm_kernel_params);
    assert_int_equal(wm_kernel_params_get(wm, &k), WM_OK);
    assert_int_equal(k.n_vocab, 500);
    assert_int_equal(k.context_width, 2);
    assert_int_equal(k.field_bits, 2);
    assert_int_equal(k.threshold, 1);
    assert_true(k.delta == 2.0f && k.account_delta == 1.0f);
    wm_token ctx[3] = { 5, 6, 7 };
    uint64_t seed = 0;
    bool has = true;
    assert_int_equal(wm_context_seed(wm, ctx, 1, &seed, &has), WM_OK);
    assert_false(has);
    assert_int_equal(wm_context_seed(wm, ctx, 3, &seed, &has), WM_OK);
    assert_true(has);
    assert_true(seed == ((uint64_t)6 << 32 | 7)); /* lefthash, h 2: the context itself */
    ctx[2] = 500;
    assert_int_equal(wm_context_seed(wm, ctx, 3, &seed, &has), WM_ERR_TOKEN);
    uint8_t sym[WM_ACCOUNT_POSITIONS];
    assert_int_equal(wm_account_symbols(wm, 9, sym), WM_OK);
    int seen[4] = { 0 };
    for (int j = 0; j < WM_ACCOUNT_POSITIONS; j++) seen[sym[j] & 3]++, assert_true(sym[j] < 4);
    for (int a = 0; a < 4; a++) assert_true(seen[a] > 30); /* ~64 each */
    wm_params q = { .size = sizeof(wm_params), .scheme = "kgw", .seeding = WM_SEEDING_LEFTHASH, .context_width = 1, .gamma = 0.25, .delta = 2.0, .account_delta = 0 };
    wm_watermark *plain = random_wm_params(&r, &q, 500);
    assert_int_equal(wm_account_symbols(plain, 9, sym), WM_ERR_UNSUPPORTED);
    wm_watermark *g = test_wm_gumbel(4, WM_SEEDING_LEFTHASH, 500);
    assert_int_equal(wm_kernel_params_get(g, &k), WM_ERR_UNSUPPORTED);
    uint16_t row[500] = { 0 };
    const wm_token *cp = ctx;
    size_t n = 2;
    assert_int_equal(wm_bias_logits_batch(wm, 1, NULL, &cp, &n, row, (wm_dtype)7, 500, 500), WM_ERR_ARG);
    wm_watermark_free(g);
    wm_watermark_free(plain);
    wm_watermark_free(wm);
}

int main(void)
{
    test_forced_isa();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_roundtrip),
        cmocka_unit_test(test_rounding),
        cmocka_unit_test(test_simd),
        cmocka_unit_test(test_rows),
        cmocka_unit_test(test_kernel_params),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
