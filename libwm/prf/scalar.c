/* The green-list function.
 *
 * green(s, v) = field(v mod T) of SipHash-2-4-128_kg(LE64(s) || LE64(v div T)) < thresh
 *
 * where s is the context seed, T = 128 / b tokens share one PRF output and
 * field i is bits [i b, i b + b) of the 16 output bytes read LSB first.
 * Distinct (s, v) use distinct bits of distinct PRF inputs, so under H0 they
 * are independent, each green with probability thresh / 2^b = gamma exactly.
 * Packing T tokens into one call is what makes a full-vocabulary step cheap
 * (V / T calls) while a single membership stays one call. */
#include "internal.h"

#include <sodium.h>

static void store64_le(unsigned char *p, uint64_t x)
{
    for (int i = 0; i < 8; i++) p[i] = (unsigned char)(x >> (8 * i));
}

void wm__fill_scalar(const unsigned char kg[16], uint64_t seed, uint64_t j0,
                     size_t n_blocks, unsigned char *out)
{
    unsigned char in[16];
    store64_le(in, seed);
    for (size_t b = 0; b < n_blocks; b++) {
        store64_le(in + 8, j0 + b);
        crypto_shorthash_siphashx24(out + b * WM_BLOCK_BYTES, in, sizeof in, kg);
    }
}

void wm__prf_many_scalar(const unsigned char kg[16], const uint64_t *seed, const uint64_t *j,
                         size_t n, unsigned char *out)
{
    unsigned char in[16];
    for (size_t i = 0; i < n; i++) {
        store64_le(in, seed[i]);
        store64_le(in + 8, j[i]);
        crypto_shorthash_siphashx24(out + i * WM_BLOCK_BYTES, in, sizeof in, kg);
    }
}

void wm__green_many(const struct wm_watermark *wm, const uint64_t *seed, const wm_token *token,
                    size_t n, unsigned char *green)
{
    uint64_t j[WM_GREEN_BATCH];
    unsigned char out[WM_GREEN_BATCH * WM_BLOCK_BYTES];
    if (n == 0 || n > WM_GREEN_BATCH) return;
    for (size_t i = 0; i < n; i++) j[i] = (uint32_t)token[i] / wm->tok_per_block;
    wm->prf_many(wm->kg, seed, j, n, out);
    for (size_t i = 0; i < n; i++)
        green[i] = wm__field(out + i * WM_BLOCK_BYTES, (uint32_t)token[i] % wm->tok_per_block,
                             wm->bits) < wm->thresh;
}

void wm__apply_scalar(const unsigned char *fields, size_t n_tok, unsigned bits,
                      uint32_t thresh, float delta, float *logits)
{
    /* Always add (0 or delta) so the SIMD path, which must add, matches bit
     * for bit, including -0.0f becoming +0.0f. */
    for (size_t v = 0; v < n_tok; v++) {
        unsigned bit = (unsigned)(v * bits);
        uint32_t f = bits == 16 ? (uint32_t)fields[2 * v] | ((uint32_t)fields[2 * v + 1] << 8)
                   : bits == 8  ? fields[v]
                                : (uint32_t)(fields[bit >> 3] >> (bit & 7)) & ((1u << bits) - 1);
        logits[v] += f < thresh ? delta : 0.0f;
    }
}

int wm__green(const struct wm_watermark *wm, uint64_t seed, uint32_t token)
{
    unsigned char block[WM_BLOCK_BYTES];
    wm__fill_scalar(wm->kg, seed, token / wm->tok_per_block, 1, block);
    return wm__field(block, token % wm->tok_per_block, wm->bits) < wm->thresh;
}

uint64_t wm__minhash_value(const struct wm_watermark *wm, wm_token t)
{
    unsigned char in[4], out[8];
    for (int i = 0; i < 4; i++) in[i] = (unsigned char)((uint32_t)t >> (8 * i));
    crypto_shorthash_siphash24(out, in, sizeof in, wm->km);
    uint64_t x = 0;
    for (int i = 7; i >= 0; i--) x = (x << 8) | out[i];
    return x;
}

/* Seed for lefthash: the context itself when it fits (h <= 2), so distinct
 * contexts never share a list; an unkeyed 64-bit hash beyond.  Either way the
 * detector deduplicates on the seed, the exact PRF input, so a collision
 * can only merge tuples, never make them dependent. */
static uint64_t lefthash_seed(const wm_token *ctx, uint32_t h)
{
    if (h == 0) return 0;
    if (h == 1) return (uint32_t)ctx[0];
    if (h == 2) return (uint32_t)ctx[1] | ((uint64_t)(uint32_t)ctx[0] << 32);
    uint64_t s = 0x243f6a8885a308d3ULL;
    for (uint32_t i = 0; i < h; i++) s = wm__mix64(s + (uint32_t)ctx[i] + 0x9e3779b97f4a7c15ULL);
    return s;
}

/* Minhash: the id of the context token with the least keyed hash (ties: the
 * smaller id).  The id itself is the seed: injective, no collisions. */
static uint64_t minhash_pick(const uint64_t *hv, const wm_token *tok, uint32_t h)
{
    uint32_t best = 0;
    for (uint32_t i = 1; i < h; i++)
        if (hv[i] < hv[best] || (hv[i] == hv[best] && (uint32_t)tok[i] < (uint32_t)tok[best]))
            best = i;
    return (uint32_t)tok[best];
}

uint64_t wm__seed(const struct wm_watermark *wm, const wm_token *ctx)
{
    if (wm->scheme == WM_SCHEME_LEFTHASH) return lefthash_seed(ctx, wm->h);
    uint64_t hv[WM_MAX_CONTEXT];
    for (uint32_t i = 0; i < wm->h; i++) hv[i] = wm__minhash_value(wm, ctx[i]);
    return minhash_pick(hv, ctx, wm->h);
}

void wm__scan_init(wm__scan *s, const struct wm_watermark *wm, const wm_token *t,
                   size_t n, size_t n_prompt)
{
    /* First scored position: a full context (i >= h), a generated token
     * (i >= n_prompt) whose context window is not entirely prompt (i - 1 >=
     * n_prompt when there is a context). */
    size_t first = n_prompt + (wm->h > 0 && n_prompt > 0);
    if (first < n_prompt) first = n; /* overflow: nothing to score */
    wm__scan_init_at(s, wm, t, n, first);
}

void wm__scan_init_at(wm__scan *s, const struct wm_watermark *wm, const wm_token *t, size_t n, size_t first)
{
    s->wm = wm;
    s->t = t;
    s->n = n;
    s->i = first > wm->h ? first : wm->h;
    if (wm->scheme == WM_SCHEME_MINHASH && s->i < n)
        for (size_t k = s->i - wm->h; k < s->i; k++) s->ring[k % wm->h] = wm__minhash_value(wm, t[k]);
}

int wm__scan_next(wm__scan *s, uint64_t *seed, wm_token *tok)
{
    if (s->i >= s->n) return 0;
    const struct wm_watermark *wm = s->wm;
    size_t i = s->i;
    if (wm->scheme == WM_SCHEME_LEFTHASH) {
        *seed = lefthash_seed(s->t + i - wm->h, wm->h);
    } else {
        /* ring[k % h] holds token k's hash; line them up oldest first so
         * ties break exactly as in wm__seed. */
        uint64_t hv[WM_MAX_CONTEXT];
        const wm_token *ctx = s->t + i - wm->h;
        for (uint32_t k = 0; k < wm->h; k++) hv[k] = s->ring[(i - wm->h + k) % wm->h];
        *seed = minhash_pick(hv, ctx, wm->h);
        s->ring[i % wm->h] = wm__minhash_value(wm, s->t[i]);
    }
    *tok = s->t[i];
    s->i = i + 1;
    return 1;
}

wm_status wm__check_tokens(const struct wm_watermark *wm, const wm_token *t, size_t n)
{
    if (n && !t) return WM_ERR_ARG;
    for (size_t i = 0; i < n; i++)
        if (t[i] < 0 || (uint32_t)t[i] >= wm->n_vocab) return WM_ERR_TOKEN;
    return WM_OK;
}

/* ---- xoshiro256** (Blackman & Vigna), seeded through splitmix64 ---------- */

void wm__rng_seed(wm__rng *r, uint64_t seed)
{
    for (int i = 0; i < 4; i++) {
        seed += 0x9e3779b97f4a7c15ULL;
        r->s[i] = wm__mix64(seed);
    }
}

static uint64_t rotl64(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

uint64_t wm__rng_next(wm__rng *r)
{
    uint64_t *s = r->s;
    uint64_t result = rotl64(s[1] * 5, 7) * 9, t = s[1] << 17;
    s[2] ^= s[0]; s[3] ^= s[1]; s[1] ^= s[2]; s[0] ^= s[3];
    s[2] ^= t; s[3] = rotl64(s[3], 45);
    return result;
}

double wm__rng_uniform(wm__rng *r) { return (double)(wm__rng_next(r) >> 11) * 0x1.0p-53; }
