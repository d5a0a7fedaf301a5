/* kgw: the green-list scheme (Kirchenbauer et al., "A Watermark for Large
 * Language Models", 2023).
 *
 * A keyed fraction gamma of the vocabulary is green after each seed (the
 * field test in prf/scalar.c); embedding adds delta to green logits;
 * detection counts green tuples.  Under H0 each distinct tuple is green
 * independently with probability exactly gamma, so the count G of N is
 * Binomial(N, gamma) and p = P(G >= g) is exact. */
#include "internal.h"

#include <math.h>
#include <sodium.h>
#include <stddef.h>

/* The scheme's state (wm->scheme_state): the green list as a keyed field
 * list (schemes/fields.c) under the scheme's own sub-key. */
typedef struct kgw_state {
    unsigned char kg[16];   /* the green list's PRF key */
    uint32_t gamma_k;       /* gamma = gamma_k / 65536 */
    unsigned tok_per_block; /* 128 / green.bits */
    wm__fields green;       /* key kg, field width b in 1, 2, 4, 8, 16, green iff
                               field < thresh (thresh / 2^b = gamma), delta,
                               the fused kernel or NULL */
    wm_bias_row2_fn fused2; /* the green list and an account's part (both
                               2-bit) in one kernel, or NULL */
} kgw_state;

static const kgw_state *state(const wm_watermark *wm) { return wm->scheme_state; }

/* NaN (refused) outside (0, 1), where rounding would otherwise invent a
 * valid gamma. */
static double quantise_gamma(double g)
{
    if (!(g > 0 && g < 1)) return NAN;
    double k = nearbyint(g * WM_GAMMA_ONE);
    if (k < 1) k = 1;
    if (k > WM_GAMMA_ONE - 1) k = WM_GAMMA_ONE - 1;
    return k / WM_GAMMA_ONE;
}
static int valid_gamma(double g)
{
    return g > 0 && g < 1 && g * WM_GAMMA_ONE == nearbyint(g * WM_GAMMA_ONE);
}
static int valid_delta(double d) { return d >= WM_DELTA_MIN && d <= 64; }
static int valid_account_delta(double d) { return d == 0 || valid_delta(d); }

static wm_status prepare(const wm_watermark *wm, void *state, const unsigned char secret[32])
{
    kgw_state *k = state;
    if (crypto_kdf_derive_from_key(k->kg, sizeof k->kg, 1, "libwm-gl", secret)) return WM_ERR_CRYPTO;
    k->gamma_k = (uint32_t)(wm->param[0] * WM_GAMMA_ONE);
    /* Smallest power-of-two field width b with gamma_k / 2^16 = thresh / 2^b. */
    unsigned tz = (unsigned)__builtin_ctz(k->gamma_k), bits = 16 - (tz > 15 ? 15 : tz);
    unsigned b2 = 1;
    while (b2 < bits) b2 <<= 1;
    k->tok_per_block = 128 / b2;
    k->green = (wm__fields){ .key = k->kg, .bits = b2, .mask = 0, .thresh = k->gamma_k >> (16 - b2),
                             .delta = (float)wm->param[1], .fused = b2 <= 2 ? wm__bias_row_avx512() : NULL };
    k->fused2 = b2 == 2 ? wm__bias_row2_avx512() : NULL;
    return WM_OK;
}

static void bias_row(const wm_watermark *wm, uint64_t seed, void *logits, wm_dtype dtype)
{
    const wm__fields *g = &state(wm)->green;
    if (g->fused && dtype == WM_DTYPE_F32) {
        g->fused(g->key, seed, 0, wm->n_vocab, g->bits, g->thresh, g->delta, logits);
        return;
    }
    wm__bias_fields_row(wm, g, seed, logits, dtype);
}

/* The green list and `extra` (an account's part) in one sweep: the fused
 * kernel when both are 2-bit fields (64 tokens a block each, so a block
 * index serves both), else a chunk at a time (fields.c). */
static void bias_row_with(const wm_watermark *wm, uint64_t seed, const wm__fields *extra, void *logits,
                          wm_dtype dtype)
{
    const kgw_state *k = state(wm);
    wm_bias_row2_fn f2 = k->fused2 && extra->bits == 2 ? k->fused2 : NULL;
    wm__bias_fields2_row(wm, &k->green, extra, f2, seed, logits, dtype);
}

static int green(const kgw_state *k, const unsigned char *block, uint32_t token)
{
    return wm__field(block, token % k->tok_per_block, k->green.bits) < k->green.thresh;
}

static void bias_candidates(const wm_watermark *wm, uint64_t seed, size_t n, const wm_token *ids,
                            size_t ids_stride, float *logits, size_t logits_stride)
{
    wm__bias_fields_candidates(wm, &state(wm)->green, seed, n, ids, ids_stride, logits, logits_stride);
}

static void kernel_params(const wm_watermark *wm, wm_kernel_params *out)
{
    const kgw_state *k = state(wm);
    out->field_bits = k->green.bits;
    out->threshold = k->green.thresh;
    out->delta = k->green.delta;
    memcpy(out->green_key, k->kg, sizeof k->kg);
}

/* Membership of n tuples at once, SIMD across tuples: 1 if green, else 0. */
static void score_many(const wm_watermark *wm, const uint64_t *seed, const wm_token *tok, size_t n,
                       double *out)
{
    uint64_t j[WM_SCORE_BATCH] = { 0 };
    unsigned char blk[WM_SCORE_BATCH * WM_BLOCK_BYTES];
    if (n == 0 || n > WM_SCORE_BATCH) return;
    const kgw_state *k = state(wm);
    for (size_t i = 0; i < n; i++) j[i] = (uint32_t)tok[i] / k->tok_per_block;
    wm->prf_many(k->kg, seed, j, n, blk);
    for (size_t i = 0; i < n; i++) out[i] = green(k, blk + i * WM_BLOCK_BYTES, (uint32_t)tok[i]);
}

static double gamma_of(const wm_watermark *wm) { return (double)state(wm)->gamma_k / WM_GAMMA_ONE; }

/* The statistic is an integer count held exactly in a double (< 2^53). */
static double log_sf(const wm_watermark *wm, uint64_t n, double stat)
{
    return wm__binom_log_sf(n, (uint64_t)stat, gamma_of(wm));
}

static void moments(const wm_watermark *wm, double *mean, double *var)
{
    double g = gamma_of(wm);
    *mean = g;
    *var = g * (1 - g);
}

/* Bernoulli(g + (1 - g) eps) against Bernoulli(g): a martingale. */
static double log_e(const wm_watermark *wm, double eps, uint64_t n, double stat)
{
    double g = gamma_of(wm), p = g + (1 - g) * eps;
    return stat * log(p / g) + ((double)n - stat) * log1p(-eps); /* (1 - p) / (1 - g) = 1 - eps */
}

extern const wm__account_layer wm__account_parts; /* schemes/account.c */

const wm__scheme wm__scheme_kgw = {
    .version = WM__SCHEME_VERSION,
    .size = sizeof(wm__scheme),
    .name = "kgw",
    .caps = WM__CAP_BINARY | WM__CAP_BIASES | WM__CAP_GREEN_LIST,
    .n_params = 3,
    .param = { { "gamma", offsetof(wm_params, gamma), quantise_gamma, valid_gamma, "k/65536 with 0 < k < 65536", 0, 0.25 },
               { "delta", offsetof(wm_params, delta), NULL, valid_delta, "a number in [1/1024, 64]", 0, 2.0 },
               { "account-delta", offsetof(wm_params, account_delta), NULL, valid_account_delta,
                 "a number in [1/1024, 64] (leave the line out for no account layer)", 1, 0.0 } },
    .default_h = 1,
    .state_bytes = sizeof(kgw_state),
    .prepare = prepare,
    .account = &wm__account_parts,
    .account_param = 2, /* account-delta */
    .bias_row = bias_row,
    .bias_candidates = bias_candidates,
    .bias_row_with = bias_row_with,
    .kernel_params = kernel_params,
    .score_many = score_many,
    .log_sf = log_sf,
    .moments = moments,
    .log_e = log_e,
};
