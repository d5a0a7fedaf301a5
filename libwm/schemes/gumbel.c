/* gumbel: the Gumbel-max scheme (Aaronson 2022; Fernandez et al., "Three
 * Bricks to Consolidate Watermarks for LLMs", 2023).
 *
 * Keyed uniforms.  Token v after seed s gets the 32-bit integer
 *
 *     u_v = LE32 of bytes [4 (v mod 4), 4 (v mod 4) + 4) of PRF_k(s, v div 4)
 *
 * (the PRF of prf/scalar.c under the scheme's own derived key), the same on
 * every machine.  Distinct (s, v) read distinct bits of distinct PRF inputs,
 * so under H0 the u of distinct tuples are independent and uniform on
 * {0, ..., 2^32 - 1}.
 *
 * Embedding selects argmax_v r_v^(1/p_v), i.e. argmax ln(r_v) / p_v, with
 * r_v = (u_v + 1/2) / 2^32 over the candidates with p_v > 0.  For exactly
 * uniform r this is exactly a draw from p (the Gumbel-max trick), so over
 * keys every step samples from p; 32-bit r moves each token's probability
 * by at most ~2^-32 relative.  Only candidates can win: a token with p_v = 0
 * has r^(1/0) = 0, so after top-k / top-p the cost is O(candidates), and it
 * is exact for the distribution the caller gives.
 *
 * Detection scores s = -ln(1 - u / 2^32) for each tuple.  Quantisation is
 * conservative: with V uniform on [0, 1) and independent, U = (u + V) / 2^32
 * is exactly uniform on [0, 1) and u / 2^32 <= U, so s <= -ln(1 - U) ~ Exp(1):
 * the sum S of N scores is stochastically smaller than Gamma(N, 1), and
 * P(S >= x) <= Q(N, x), the Gamma upper tail we report.  A p-value can only
 * be too large, never too small (tests/test_gumbel.c checks this exactly
 * with 4-bit uniforms). */
#include "internal.h"

#include <math.h>
#include <sodium.h>

#define U_BITS 32
#define TOK_PER_BLOCK (128 / U_BITS)

/* The scheme's state (wm->scheme_state): its PRF key. */
typedef struct gumbel_state {
    unsigned char kg[16];
} gumbel_state;

static const unsigned char *key_of(const wm_watermark *wm) { return ((const gumbel_state *)wm->scheme_state)->kg; }

static wm_status prepare(const wm_watermark *wm, void *state, const unsigned char secret[32])
{
    (void)wm;
    gumbel_state *g = state;
    return crypto_kdf_derive_from_key(g->kg, sizeof g->kg, 3, "libwm-gl", secret) ? WM_ERR_CRYPTO : WM_OK;
}

static uint32_t field32(const unsigned char *block, uint32_t token)
{
    const unsigned char *p = block + 4 * (token % TOK_PER_BLOCK);
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* -ln(1 - u / 2^bits): the floor-quantised score (see above).  Exported to
 * the tests, which check the direction of the error with small `bits`. */
double wm__gumbel_score(uint32_t u, unsigned bits)
{
    return -log1p(-ldexp((double)u, -(int)bits));
}

/* argmax ln(r_i) / w_i, i.e. argmin E_i / w_i with E_i = -ln r_i.  Two
 * exact shortcuts: candidates with consecutive ids share PRF blocks (a full
 * vocabulary in id order costs V / 4 PRF calls), and since E >= 1 - r, a
 * candidate whose (1 - r) / w already exceeds the best E / w so far cannot
 * win, so its logarithm is never taken (almost all of them: the best key
 * is small once a heavy candidate has been seen). */
static size_t select_token(const wm_watermark *wm, uint64_t seed, size_t n, const wm_token *ids,
                           size_t ids_stride, const float *w, size_t w_stride)
{
    const char *ip = (const char *)ids, *wp = (const char *)w;
    uint64_t seeds[WM_SCORE_BATCH], j[WM_SCORE_BATCH] = { 0 };
    unsigned char blk[WM_SCORE_BATCH * WM_BLOCK_BYTES];
    size_t best = SIZE_MAX;
    double best_key = INFINITY; /* E / w of the best so far */
    for (size_t i = 0; i < WM_SCORE_BATCH; i++) seeds[i] = seed;
    for (size_t i = 0; i < n;) {
        /* Up to 16 distinct blocks; the candidates they cover are [i, end). */
        size_t m = 0, end = i;
        for (; end < n; end++) {
            wm_token t;
            memcpy(&t, ip + end * ids_stride, sizeof t);
            uint64_t jb = (uint32_t)t / TOK_PER_BLOCK;
            if (m && j[m - 1] == jb) continue;
            if (m == WM_SCORE_BATCH) break;
            j[m++] = jb;
        }
        wm->prf_many(key_of(wm), seeds, j, m, blk);
        for (size_t lane = 0, c = i; c < end; c++) {
            wm_token t;
            float wt;
            memcpy(&t, ip + c * ids_stride, sizeof t);
            memcpy(&wt, wp + c * w_stride, sizeof wt);
            if ((uint32_t)t / TOK_PER_BLOCK != j[lane]) lane++;
            if (!(wt > 0)) continue; /* r^(1/0) = 0: cannot win */
            double r = ((double)field32(blk + lane * WM_BLOCK_BYTES, (uint32_t)t) + 0.5) * 0x1p-32;
            if ((1 - r) / (double)wt > best_key) continue; /* E / w >= (1 - r) / w > best */
            double key = -log(r) / (double)wt;
            if (key < best_key || best == SIZE_MAX) best_key = key, best = c; /* ties: first */
        }
        i = end;
    }
    return best;
}

static void score_many(const wm_watermark *wm, const uint64_t *seed, const wm_token *tok, size_t n,
                       double *out)
{
    uint64_t j[WM_SCORE_BATCH] = { 0 };
    unsigned char blk[WM_SCORE_BATCH * WM_BLOCK_BYTES];
    if (n == 0 || n > WM_SCORE_BATCH) return;
    for (size_t i = 0; i < n; i++) j[i] = (uint32_t)tok[i] / TOK_PER_BLOCK;
    wm->prf_many(key_of(wm), seed, j, n, blk);
    for (size_t i = 0; i < n; i++)
        out[i] = wm__gumbel_score(field32(blk + i * WM_BLOCK_BYTES, (uint32_t)tok[i]), U_BITS);
}

static double log_sf(const wm_watermark *wm, uint64_t n, double stat)
{
    (void)wm;
    return wm__gamma_log_sf((double)n, stat);
}

/* Exponential tilt: E[(1 - t) e^(t X)] = 1 for X ~ Exp(1) and t in
 * (0, 1); the quantised score is stochastically smaller, so <= 1. */
static double log_e(const wm_watermark *wm, double eps, uint64_t n, double stat)
{
    (void)wm;
    return eps * stat + (double)n * log1p(-eps);
}

const wm__scheme wm__scheme_gumbel = {
    .version = WM__SCHEME_VERSION,
    .size = sizeof(wm__scheme),
    .name = "gumbel",
    .caps = WM__CAP_SELECTS | WM__CAP_SEED_ONCE,
    .n_params = 0,
    .default_h = 4,
    .state_bytes = sizeof(gumbel_state),
    .prepare = prepare,
    .select = select_token,
    .score_many = score_many,
    .log_sf = log_sf,
    .log_e = log_e,
    .mean = 1,
    .var = 1,
};
