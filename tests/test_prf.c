/* The green-list function: known answers, the written spec, SIMD = scalar,
 * and every embedding path agreeing with single-token membership. */
#include "testutil.h"

#include <sodium.h>

static const wm_token kat_ctx[4] = { 11, 2024, 7, 50000 };

/* Pinned: if one of these changes, every deployed watermark breaks. */
/* A format-1 key file (libwm 0.1) of the test secret: it must load, keep
 * its id and mean what it meant. */
static wm_watermark *v1_wm(double gamma, uint32_t h, wm_seeding seeding, const char *id)
{
    char text[600], hex[65];
    unsigned char secret[32];
    for (int i = 0; i < 32; i++) secret[i] = (unsigned char)i;
    sodium_bin2hex(hex, sizeof hex, secret, 32);
    snprintf(text, sizeof text, "libwm-key 1\nid %s\nscheme %s\ncontext-width %u\ngamma %.17g\ndelta 2\nsecret %s\n",
             id, seeding == WM_SEEDING_MINHASH ? "minhash" : "lefthash", h, nearbyint(gamma * 65536) / 65536, hex);
    wm_key *k;
    wm_error err;
    assert_int_equal(wm__key_parse(&k, text, strlen(text), "v1.wmkey", &err), WM_OK);
    char got[WM_KEY_ID_SIZE];
    assert_int_equal(wm_key_id(k, got), WM_OK);
    assert_string_equal(got, id);
    wm_params p = WM_INIT(wm_params);
    assert_int_equal(wm_key_params(k, &p), WM_OK);
    assert_string_equal(p.scheme, "kgw");
    wm_watermark *wm;
    assert_int_equal(wm_watermark_new(&wm, k, 50257), WM_OK);
    wm_key_free(k);
    return wm;
}

static uint64_t kat_mask(const wm_watermark *wm)
{
    uint64_t mask = 0;
    for (int v = 0; v < 64; v++) {
        bool g;
        assert_int_equal(wm_is_green(wm, kat_ctx, 4, v * 787, &g), WM_OK);
        mask |= (uint64_t)g << v;
    }
    return mask;
}

static void test_known_answers(void **state)
{
    (void)state;
    static const struct {
        double gamma;
        uint32_t h;
        wm_seeding seeding;
        const char *id, *id_v1; /* key-file formats 2 and 1 */
        uint64_t mask; /* bit v: token 787 v green after kat_ctx */
    } kat[] = {
        { 0.25, 1, WM_SEEDING_LEFTHASH, "4d769d1639e21030", "e6924ca3962156b1", 0x2161e48092043504ULL },
        { 0.5, 2, WM_SEEDING_LEFTHASH, "9ca97db06794c155", "bd8195a9d6b9fb7c", 0x27a856d2bf4f45feULL },
        { 0.1, 3, WM_SEEDING_LEFTHASH, "fd038e26cf709683", "f16dc287c95bb5cf", 0x500300a140000002ULL },
        { 0.25, 4, WM_SEEDING_MINHASH, "6a7f9851cf372bad", "551408a5dcc34a34", 0x48110810580ca4a4ULL },
        { 0.25, 0, WM_SEEDING_LEFTHASH, "bf0673907283351e", "4562dbabc6751d76", 0xa4020ac072a78434ULL },
    };
    for (size_t c = 0; c < sizeof kat / sizeof kat[0]; c++) {
        wm_watermark *wm = test_wm(kat[c].gamma, kat[c].h, kat[c].seeding, 50257);
        char id[WM_KEY_ID_SIZE];
        assert_int_equal(wm_watermark_key_id(wm, id), WM_OK);
        assert_string_equal(id, kat[c].id);
        assert_true(kat_mask(wm) == kat[c].mask);
        wm_watermark_free(wm);
        /* The same key in a libwm 0.1 file: same green lists. */
        wm = v1_wm(kat[c].gamma, kat[c].h, kat[c].seeding, kat[c].id_v1);
        assert_true(kat_mask(wm) == kat[c].mask);
        wm_watermark_free(wm);
    }
}

/* Recompute membership from the documented construction with libsodium
 * directly (lefthash, h = 1, gamma = 0.25 -> 2-bit fields, 64 per block). */
static void test_spec(void **state)
{
    (void)state;
    wm_watermark *wm = test_wm(0.25, 1, WM_SEEDING_LEFTHASH, 50257);
    unsigned char seed[32], kg[16], in[16], out[16];
    for (int i = 0; i < 32; i++) seed[i] = (unsigned char)i;
    crypto_kdf_derive_from_key(kg, sizeof kg, 1, "libwm-gl", seed);
    for (wm_token prev = 0; prev < 50257; prev += 997) {
        for (wm_token v = 0; v < 50257; v += 13) {
            uint64_t s = (uint32_t)prev, j = (uint32_t)v / 64;
            for (int b = 0; b < 8; b++) in[b] = (unsigned char)(s >> (8 * b)), in[8 + b] = (unsigned char)(j >> (8 * b));
            crypto_shorthash_siphashx24(out, in, 16, kg);
            unsigned f = (unsigned)(v % 64) * 2;
            int want = ((out[f / 8] >> (f % 8)) & 3) < 1;
            bool got;
            assert_int_equal(wm_is_green(wm, &prev, 1, v, &got), WM_OK);
            assert_int_equal(got, want);
        }
    }
    wm_watermark_free(wm);
}

static void check_fill(wm_fill_fn simd)
{
    unsigned char kg[16], a[16 * 37], b[16 * 37];
    wm__rng r;
    wm__rng_seed(&r, 1);
    for (int it = 0; it < 2000; it++) {
        for (int i = 0; i < 16; i++) kg[i] = (unsigned char)wm__rng_next(&r);
        uint64_t seed = wm__rng_next(&r), j0 = wm__rng_next(&r) >> (it % 64);
        size_t n = (size_t)(wm__rng_next(&r) % 38);
        wm__fill_scalar(kg, seed, j0, n, a);
        simd(kg, seed, j0, n, b);
        assert_memory_equal(a, b, n * 16 + (n == 0));
    }
}

static void test_simd_fill_equals_scalar(void **state)
{
    (void)state;
    if (!test_kernel_runs("fill", 1, wm__fill_avx2() != NULL)) skip();
    check_fill(wm__fill_avx2());
}

static void test_avx512_fill_equals_scalar(void **state)
{
    (void)state;
    if (!test_kernel_runs("fill", 2, wm__fill_avx512() != NULL)) skip();
    check_fill(wm__fill_avx512());
}

static void test_avx512_prf_many_equals_scalar(void **state)
{
    (void)state;
    wm_prf_many_fn simd = wm__prf_many_avx512();
    if (!test_kernel_runs("prf_many", 2, simd != NULL)) skip();
    unsigned char kg[16], a[16 * 37], b[16 * 37];
    uint64_t seed[37], j[37];
    wm__rng r;
    wm__rng_seed(&r, 5);
    for (int it = 0; it < 2000; it++) {
        for (int i = 0; i < 16; i++) kg[i] = (unsigned char)wm__rng_next(&r);
        size_t n = (size_t)(wm__rng_next(&r) % 38);
        for (size_t i = 0; i < n; i++) seed[i] = wm__rng_next(&r), j[i] = wm__rng_next(&r) >> (i % 64);
        wm__prf_many_scalar(kg, seed, j, n, a);
        simd(kg, seed, j, n, b);
        assert_memory_equal(a, b, n * 16 + (n == 0));
    }
}

static void check_apply(wm_apply_fn simd)
{
    static const float special[] = { -INFINITY, INFINITY, NAN, -0.0f, 0.0f, 1e38f, -1e38f, 1e-45f };
    unsigned char fields[2 * 300];
    float a[300], b[300];
    wm__rng r;
    wm__rng_seed(&r, 2);
    const unsigned widths[] = { 1, 2, 4, 8, 16 };
    for (int it = 0; it < 5000; it++) {
        unsigned bits = widths[it % 5];
        uint32_t thresh = 1 + (uint32_t)(wm__rng_next(&r) % ((1u << bits) - 1 + (bits == 1)));
        size_t n = (size_t)(wm__rng_next(&r) % 300);
        for (size_t i = 0; i < sizeof fields; i++) fields[i] = (unsigned char)wm__rng_next(&r);
        for (size_t i = 0; i < n; i++) {
            uint64_t x = wm__rng_next(&r);
            a[i] = x % 10 == 0 ? special[x / 10 % 8] : (float)((double)(int64_t)x / 1e18);
            b[i] = a[i];
        }
        float delta = (float)(0.5 + (double)(wm__rng_next(&r) % 1000) / 100);
        wm__apply_scalar(fields, n, bits, thresh, delta, a);
        simd(fields, n, bits, thresh, delta, b);
        assert_memory_equal(a, b, n * sizeof(float) + (n == 0));
    }
}

static void test_simd_apply_equals_scalar(void **state)
{
    (void)state;
    if (!test_kernel_runs("apply", 1, wm__apply_avx2() != NULL)) skip();
    check_apply(wm__apply_avx2());
}

static void test_avx512_apply_equals_scalar(void **state)
{
    (void)state;
    if (!test_kernel_runs("apply", 2, wm__apply_avx512() != NULL)) skip();
    check_apply(wm__apply_avx512());
}

/* The fused fill + apply row kernel == scalar fill + scalar apply, bit for
 * bit: 1- and 2-bit fields, every threshold, sizes around the 16-block
 * group, logits at every 4-byte alignment, special values included, from
 * block 0 and from a later block (16-bit rows are fused a chunk at a time). */
static void test_fused_row_equals_scalar(void **state)
{
    (void)state;
    wm_bias_row_fn fused = wm__bias_row_avx512();
    if (!test_kernel_runs("bias_row", 2, fused != NULL)) skip();
    static const float special[] = { -INFINITY, INFINITY, NAN, -0.0f, 0.0f, 1e38f, -1e38f, 1e-45f };
    enum { MAX = 9000 };
    float *a = malloc((MAX + 16) * sizeof *a), *b = malloc((MAX + 16) * sizeof *b);
    unsigned char *fields = malloc(MAX / 4 + 64);
    assert_non_null(a);
    assert_non_null(b);
    assert_non_null(fields);
    const unsigned char kg[16] = { 9, 8, 7, 6, 5, 4, 3, 2, 1 };
    const size_t sizes[] = { 0, 1, 15, 63, 64, 1023, 1024, 1025, 2047, 2048, 2049, 4096, 5000, MAX };
    wm__rng r;
    wm__rng_seed(&r, 3);
    for (unsigned bits = 1; bits <= 2; bits++)
        for (uint32_t thresh = 1; thresh < (1u << bits); thresh++)
            for (size_t si = 0; si < sizeof sizes / sizeof *sizes; si++)
                for (size_t off = 0; off < 16; off += 5) {
                    size_t n = sizes[si], tpb = 128 / bits;
                    uint64_t seed = wm__rng_next(&r);
                    for (size_t i = 0; i < n; i++) {
                        uint64_t x = wm__rng_next(&r);
                        a[off + i] = b[off + i] =
                            x % 10 == 0 ? special[x / 10 % 8] : (float)((double)(int64_t)x / 1e18);
                    }
                    uint64_t j0 = off == 5 ? 64 * si + 3 : 0; /* a chunk further along the row */
                    wm__fill_scalar(kg, seed, j0, (n + tpb - 1) / tpb, fields);
                    wm__apply_scalar(fields, n, bits, thresh, 1.75f, a + off);
                    fused(kg, seed, j0, n, bits, thresh, 1.75f, b + off);
                    assert_memory_equal(a + off, b + off, n * sizeof(float) + (n == 0));
                }
    free(a);
    free(b);
    free(fields);
}

/* Full-vocabulary bias == per-token membership, padded logits untouched,
 * for every field width and a vocabulary that is not a multiple of a block. */
/* Issue 11.10: a kernel (SIMD or scalar) must not leave the keyed SipHash state (or the
 * key words) on the stack after it returns.  The kernel runs, then a frame
 * of the same depth reads the stack area it used and looks for the key words
 * and the state after the seed is absorbed (SipRounds are invertible: that
 * state gives the key away).  Skipped where the kernel is not available. */
#define ROTL(x, b) (uint64_t)(((x) << (b)) | ((x) >> (64 - (b))))
static void sipround(uint64_t v[4])
{
    v[0] += v[1]; v[1] = ROTL(v[1], 13); v[1] ^= v[0]; v[0] = ROTL(v[0], 32);
    v[2] += v[3]; v[3] = ROTL(v[3], 16); v[3] ^= v[2]; v[0] += v[3]; v[3] = ROTL(v[3], 21);
    v[3] ^= v[0]; v[2] += v[1]; v[1] = ROTL(v[1], 17); v[1] ^= v[2]; v[2] = ROTL(v[2], 32);
}

static __attribute__((noinline)) void run_kernel(int which, const unsigned char kg[16], uint64_t seed)
{
    unsigned char out[64 * 16];
    uint64_t seeds[16], js[16];
    float logits[4096];
    memset(logits, 0, sizeof logits);
    for (int i = 0; i < 16; i++) seeds[i] = seed, js[i] = (uint64_t)i;
    if (which == 0 && wm__fill_avx2()) wm__fill_avx2()(kg, seed, 0, 64, out);
    if (which == 1 && wm__fill_avx512()) wm__fill_avx512()(kg, seed, 0, 64, out);
    if (which == 2 && wm__prf_many_avx512()) wm__prf_many_avx512()(kg, seeds, js, 16, out);
    if (which == 3 && wm__bias_row_avx512()) wm__bias_row_avx512()(kg, seed, 0, 4096, 2, 1, 2.0f, logits);
    if (which == 4) wm__fill_scalar_kernel()(kg, seed, 0, 64, out);
    if (which == 5) wm__prf_many_scalar_kernel()(kg, seeds, js, 16, out);
    __asm__ volatile("" ::"r"(out), "r"(logits) : "memory");
}

static __attribute__((noinline)) int stack_holds(const uint64_t *needles, int n)
{
    uint64_t area[4096]; /* not initialised on purpose: what the kernel left there */
    __asm__ volatile("" ::"r"(area) : "memory"); /* as if written: the reads below are kept */
    const volatile uint64_t *p = area;
    int found = 0;
    for (size_t i = 0; i < 4096; i++)
        for (int k = 0; k < n; k++) found |= p[i] == needles[k];
    return found;
}

static void test_kernels_wipe_key_state(void **state)
{
    (void)state;
#if defined(__SANITIZE_ADDRESS__)
    /* Instrumented frames (redzones, -O0 spills) are not the shipped ones
     * and outgrow the scrubbed area: the optimised builds test this. */
    skip();
#endif
    unsigned char kg[16];
    for (int i = 0; i < 16; i++) kg[i] = (unsigned char)(0xa5 ^ (i * 37));
    uint64_t k0 = 0, k1 = 0, seed = 0x0123456789abcdefULL;
    for (int i = 7; i >= 0; i--) k0 = (k0 << 8) | kg[i], k1 = (k1 << 8) | kg[8 + i];
    uint64_t v[4] = { 0x736f6d6570736575ULL ^ k0, 0x646f72616e646f83ULL ^ k1, 0x6c7967656e657261ULL ^ k0,
                      0x7465646279746573ULL ^ k1 };
    v[3] ^= seed;
    sipround(v);
    sipround(v);
    v[0] ^= seed;
    const uint64_t needles[6] = { k0, k1, v[0], v[1], v[2], v[3] };
    const struct { const char *name; int rank, present; } k[6] = {
        { "fill", 1, wm__fill_avx2() != NULL }, { "fill", 2, wm__fill_avx512() != NULL },
        { "prf_many", 2, wm__prf_many_avx512() != NULL }, { "bias_row", 2, wm__bias_row_avx512() != NULL },
        { "fill", 0, 1 }, { "prf_many", 0, 1 }, /* the scalar ones (libsodium's SipHash): WM_CPU=scalar */
    };
    for (int which = 0; which < 6; which++) {
        /* a kernel not run leaves this frame's own SipRounds below it */
        if (!test_kernel_runs(k[which].name, k[which].rank, k[which].present)) continue;
        run_kernel(which, kg, seed);
        if (stack_holds(needles, 6)) fail_msg("kernel %d left key material on the stack", which);
    }
}

static void test_bias_matches_membership(void **state)
{
    (void)state;
    const double gammas[] = { 0.5, 0.25, 0.125, 1.0 / 256, 0.1 };
    const uint32_t V = 50265, PAD = 7; /* OPT: 50,265 tokens, 50,272 logits */
    float *logits = malloc((V + PAD) * sizeof *logits);
    for (int gi = 0; gi < 5; gi++) {
        for (int scheme = 0; scheme < 2; scheme++) {
            wm_watermark *wm = test_wm(gammas[gi], 3, (wm_seeding)scheme, V);
            wm_token ctx[5] = { 5, 50264, 0, 17, 31337 };
            for (uint32_t v = 0; v < V + PAD; v++) logits[v] = -1.0f;
            assert_int_equal(wm_bias_logits(wm, WM_ACCOUNT_NONE, ctx, 5, logits, V + PAD), WM_OK);
            uint32_t greens = 0;
            for (uint32_t v = 0; v < V; v++) {
                bool g;
                assert_int_equal(wm_is_green(wm, ctx, 5, (wm_token)v, &g), WM_OK);
                assert_true(logits[v] == (g ? 1.0f : -1.0f));
                greens += (uint32_t)g;
            }
            for (uint32_t v = V; v < V + PAD; v++) assert_true(logits[v] == -1.0f);
            /* Over the vocabulary the green count is Binomial(V, gamma): 5 sigma. */
            double gq = round(gammas[gi] * 65536) / 65536, sd = sqrt(V * gq * (1 - gq));
            assert_true(fabs(greens - V * gq) < 5 * sd);
            wm_watermark_free(wm);
        }
    }
    free(logits);
}

typedef struct cand { wm_token id; float logit; float p; } cand; /* llama_token_data */

static void test_candidates_and_batch(void **state)
{
    (void)state;
    const uint32_t V = 32000;
    wm_watermark *wm = test_wm(0.25, 2, WM_SEEDING_LEFTHASH, V);
    wm__rng r;
    wm__rng_seed(&r, 3);
    float *full = malloc(4 * V * sizeof *full), *rows = malloc(4 * (V + 16) * sizeof *rows);
    wm_token ctxs[4][3];
    const wm_token *cp[4];
    size_t nc[4] = { 3, 3, 1, 2 }; /* row 2 is shorter than h: untouched */
    for (int s = 0; s < 4; s++) {
        random_tokens(&r, ctxs[s], 3, V);
        cp[s] = ctxs[s];
        for (uint32_t v = 0; v < V; v++) full[s * V + v] = rows[s * (V + 16) + v] = (float)(v % 97);
        assert_int_equal(wm_bias_logits(wm, WM_ACCOUNT_NONE, cp[s], nc[s], full + s * V, V), WM_OK);
    }
    assert_int_equal(wm_bias_logits_batch(wm, 4, NULL, cp, nc, rows, WM_DTYPE_F32, V, V + 16), WM_OK);
    for (int s = 0; s < 4; s++) assert_memory_equal(full + s * V, rows + s * (V + 16), V * sizeof(float));
    for (uint32_t v = 0; v < V; v++) assert_true(rows[2 * (V + 16) + v] == (float)(v % 97));

    cand c[40];
    for (int i = 0; i < 40; i++) {
        c[i].id = (wm_token)(wm__rng_next(&r) % (V + 8)); /* some ids in the padding */
        c[i].logit = (float)(c[i].id % 97);
        c[i].p = 0;
    }
    assert_int_equal(wm_bias_candidates(wm, WM_ACCOUNT_NONE, cp[0], 3, 40, &c[0].id, sizeof(cand), &c[0].logit,
                                        sizeof(cand)), WM_OK);
    for (int i = 0; i < 40; i++) {
        float want = (uint32_t)c[i].id < V ? full[c[i].id] : (float)(c[i].id % 97);
        assert_true(c[i].logit == want);
    }
    /* A negative id is refused before anything changes. */
    cand before[40];
    memcpy(before, c, sizeof c);
    c[39].id = -1;
    before[39].id = -1;
    assert_int_equal(wm_bias_candidates(wm, WM_ACCOUNT_NONE, cp[0], 3, 40, &c[0].id, sizeof(cand), &c[0].logit,
                                        sizeof(cand)), WM_ERR_TOKEN);
    assert_memory_equal(c, before, sizeof c);
    free(full);
    free(rows);
    wm_watermark_free(wm);
}

/* Minhash: replacing a context token that is not the minimum keeps the list. */
static void test_minhash_robust(void **state)
{
    (void)state;
    wm_watermark *wm = test_wm(0.25, 4, WM_SEEDING_MINHASH, 50000);
    wm__rng r;
    wm__rng_seed(&r, 4);
    int kept = 0;
    for (int it = 0; it < 200; it++) {
        wm_token ctx[4];
        random_tokens(&r, ctx, 4, 50000);
        uint64_t s = wm__seed(wm, ctx);
        int pos = (int)(wm__rng_next(&r) % 4);
        if ((uint64_t)(uint32_t)ctx[pos] == s) continue;
        ctx[pos] = (wm_token)(wm__rng_next(&r) % 50000);
        if (wm__minhash_value(wm, ctx[pos]) > wm__minhash_value(wm, (wm_token)s)) {
            assert_true(wm__seed(wm, ctx) == s);
            kept++;
        }
    }
    assert_true(kept > 50);
    wm_watermark_free(wm);
}

int main(void)
{
    test_forced_isa();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_known_answers),
        cmocka_unit_test(test_spec),
        cmocka_unit_test(test_simd_fill_equals_scalar),
        cmocka_unit_test(test_avx512_fill_equals_scalar),
        cmocka_unit_test(test_avx512_prf_many_equals_scalar),
        cmocka_unit_test(test_simd_apply_equals_scalar),
        cmocka_unit_test(test_avx512_apply_equals_scalar),
        cmocka_unit_test(test_fused_row_equals_scalar),
        cmocka_unit_test(test_bias_matches_membership),
        cmocka_unit_test(test_kernels_wipe_key_state),
        cmocka_unit_test(test_candidates_and_batch),
        cmocka_unit_test(test_minhash_robust),
    };
    return cmocka_run_group_tests_name("prf", tests, NULL, NULL);
}
