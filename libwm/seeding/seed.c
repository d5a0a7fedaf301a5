/* Seeding rules: which seed the h tokens before a position give its green
 * list (lefthash: the context itself or its hash; minhash: the context token
 * of least keyed hash), and the walk over a sequence's scored positions that
 * detection and the context sets share. */
#include "internal.h"

#include <sodium.h>

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
    if (wm->seeding == WM_SEEDING_LEFTHASH) return lefthash_seed(ctx, wm->h);
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
    if (wm->seeding == WM_SEEDING_MINHASH && s->i < n)
        for (size_t k = s->i - wm->h; k < s->i; k++) s->ring[k % wm->h] = wm__minhash_value(wm, t[k]);
}

int wm__scan_next(wm__scan *s, uint64_t *seed, wm_token *tok)
{
    if (s->i >= s->n) return 0;
    const struct wm_watermark *wm = s->wm;
    size_t i = s->i;
    if (wm->seeding == WM_SEEDING_LEFTHASH) {
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
