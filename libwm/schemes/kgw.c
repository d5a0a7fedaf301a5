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

/* PRF output generated per pass: small enough for the stack and L1, large
 * enough that the per-call overhead vanishes. */
#define CHUNK_BLOCKS 64

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

static void prepare(struct wm_watermark *wm, const unsigned char secret[32])
{
    crypto_kdf_derive_from_key(wm->kg, sizeof wm->kg, 1, "libwm-gl", secret);
    wm->gamma_k = (uint32_t)(wm->param[0] * WM_GAMMA_ONE);
    /* Smallest power-of-two field width b with gamma_k / 2^16 = thresh / 2^b. */
    unsigned tz = (unsigned)__builtin_ctz(wm->gamma_k), bits = 16 - (tz > 15 ? 15 : tz);
    unsigned b2 = 1;
    while (b2 < bits) b2 <<= 1;
    wm->bits = b2;
    wm->thresh = wm->gamma_k >> (16 - b2);
    wm->tok_per_block = 128 / b2;
    wm->delta = (float)wm->param[1];
    wm->bias_row = wm->bits <= 2 ? wm__bias_row_avx512() : NULL;
    wm->account_delta = (float)wm->param[2];
    wm__account_prepare(wm, secret);
}

/* A keyed field list: the tokens v whose b-bit field (v mod 128/b) of
 * PRF_key(seed, v div 128/b), XORed with the byte pattern `mask`, is below
 * thresh get delta.  kgw's green list is (kg, bits, 0, thresh); the account
 * layer's part c is (ka, 2, c * 0x55, 1) (schemes/account.c). */
void wm__bias_fields_row(const wm_watermark *wm, const unsigned char key[16], uint64_t seed, unsigned bits,
                         unsigned char mask, uint32_t thresh, float delta, void *logits, wm_dtype dtype)
{
    unsigned char buf[CHUNK_BLOCKS * WM_BLOCK_BYTES];
    float wide[CHUNK_BLOCKS * 128]; /* a 16-bit chunk widened: up to 128 tokens a block */
    size_t tpb = 128 / bits, n_blocks = (wm->n_vocab + tpb - 1) / tpb, esize = dtype == WM_DTYPE_F32 ? 4 : 2;
    /* 16-bit rows of a plain field list (kgw's green list) go through the
     * fused kernel a chunk at a time; float32 rows take it whole (bias_row). */
    int fused = dtype != WM_DTYPE_F32 && !mask && wm->bias_row && bits == wm->bits;
    for (size_t j = 0; j < n_blocks; j += CHUNK_BLOCKS) {
        size_t m = n_blocks - j < CHUNK_BLOCKS ? n_blocks - j : CHUNK_BLOCKS;
        size_t v0 = j * tpb, n_tok = m * tpb;
        if (n_tok > wm->n_vocab - v0) n_tok = wm->n_vocab - v0;
        char *row = (char *)logits + v0 * esize;
        if (!fused) {
            wm->fill(key, seed, j, m, buf);
            for (size_t i = 0; mask && i < m * WM_BLOCK_BYTES; i++) buf[i] ^= mask;
        }
        if (dtype == WM_DTYPE_F32) {
            wm->apply(buf, n_tok, bits, thresh, delta, (float *)row);
            continue;
        }
        wm->widen(row, dtype, n_tok, wide);
        if (fused) /* the AVX-512 kernel hashes this chunk while applying it */
            wm->bias_row(key, seed, j, n_tok, bits, thresh, delta, wide);
        else
            wm->apply(buf, n_tok, bits, thresh, delta, wide);
        wm->narrow(wide, n_tok, dtype, row);
    }
}

void wm__bias_fields_candidates(const wm_watermark *wm, const unsigned char key[16], uint64_t seed, unsigned bits,
                                unsigned char mask, uint32_t thresh, float delta, size_t n, const wm_token *ids,
                                size_t ids_stride, float *logits, size_t logits_stride)
{
    const char *ip = (const char *)ids;
    char *lp = (char *)logits;
    const unsigned tpb = 128 / bits;
    uint64_t have = UINT64_MAX;
    unsigned char block[WM_BLOCK_BYTES];
    for (size_t i = 0; i < n; i++) {
        wm_token t;
        memcpy(&t, ip + i * ids_stride, sizeof t);
        if ((uint32_t)t >= wm->n_vocab) continue; /* padding is in no list */
        uint64_t j = (uint32_t)t / tpb;
        if (j != have) { /* candidates often share a block after sorting */
            wm__fill_scalar(key, seed, j, 1, block);
            for (size_t b = 0; mask && b < WM_BLOCK_BYTES; b++) block[b] ^= mask;
            have = j;
        }
        /* A select, not a branch: membership is a coin flip per candidate, and
         * a mispredicted branch costs more than the PRF when candidates share
         * blocks (a whole unsorted vocabulary, as llama.cpp passes it). */
        float f;
        memcpy(&f, lp + i * logits_stride, sizeof f);
        f = wm__field(block, (uint32_t)t % tpb, bits) < thresh ? f + delta : f;
        memcpy(lp + i * logits_stride, &f, sizeof f);
    }
}

static void bias_row(const wm_watermark *wm, uint64_t seed, void *logits, wm_dtype dtype)
{
    if (wm->bias_row && dtype == WM_DTYPE_F32) {
        wm->bias_row(wm->kg, seed, 0, wm->n_vocab, wm->bits, wm->thresh, wm->delta, logits);
        return;
    }
    wm__bias_fields_row(wm, wm->kg, seed, wm->bits, 0, wm->thresh, wm->delta, logits, dtype);
}

static int green(const wm_watermark *wm, const unsigned char *block, uint32_t token)
{
    return wm__field(block, token % wm->tok_per_block, wm->bits) < wm->thresh;
}

static void bias_candidates(const wm_watermark *wm, uint64_t seed, size_t n, const wm_token *ids,
                            size_t ids_stride, float *logits, size_t logits_stride)
{
    wm__bias_fields_candidates(wm, wm->kg, seed, wm->bits, 0, wm->thresh, wm->delta, n, ids, ids_stride, logits,
                               logits_stride);
}

/* Membership of n tuples at once, SIMD across tuples: 1 if green, else 0. */
static void score_many(const wm_watermark *wm, const uint64_t *seed, const wm_token *tok, size_t n,
                       double *out)
{
    uint64_t j[WM_SCORE_BATCH] = { 0 };
    unsigned char blk[WM_SCORE_BATCH * WM_BLOCK_BYTES];
    if (n == 0 || n > WM_SCORE_BATCH) return;
    for (size_t i = 0; i < n; i++) j[i] = (uint32_t)tok[i] / wm->tok_per_block;
    wm->prf_many(wm->kg, seed, j, n, blk);
    for (size_t i = 0; i < n; i++) out[i] = green(wm, blk + i * WM_BLOCK_BYTES, (uint32_t)tok[i]);
}

static double gamma_of(const wm_watermark *wm) { return (double)wm->gamma_k / WM_GAMMA_ONE; }

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

const wm__scheme wm__scheme_kgw = {
    .name = "kgw",
    .n_params = 3,
    .param = { { "gamma", offsetof(wm_params, gamma), quantise_gamma, valid_gamma, "k/65536 with 0 < k < 65536", 0, 0.25 },
               { "delta", offsetof(wm_params, delta), NULL, valid_delta, "a number in [1/1024, 64]", 0, 2.0 },
               { "account-delta", offsetof(wm_params, account_delta), NULL, valid_account_delta,
                 "a number in [1/1024, 64] (leave the line out for no account layer)", 1, 0.0 } },
    .default_h = 1,
    .prepare = prepare,
    .bias_row = bias_row,
    .bias_candidates = bias_candidates,
    .score_many = score_many,
    .log_sf = log_sf,
    .moments = moments,
    .log_e = log_e,
    .binary = 1,
};
