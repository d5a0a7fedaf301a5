/* The watermark object: a key bound to a vocabulary, with derived
 * sub-keys and the PRF kernels this CPU runs; immutable once made. */
#include "internal.h"

#include <sodium.h>

wm_status wm_watermark_new(wm_watermark **out, const wm_key *key, uint32_t n_vocab)
{
    if (!out || !key) return WM_ERR_ARG;
    *out = NULL;
    if (n_vocab == 0 || n_vocab > (uint32_t)INT32_MAX) return WM_ERR_SIZE;
    if (key->n_vocab && key->n_vocab != n_vocab) return WM_ERR_SIZE;
    if (sodium_init() < 0) return WM_ERR_CRYPTO;
    wm_watermark *wm = sodium_malloc(sizeof *wm);
    if (!wm) return WM_ERR_NOMEM;
    memset(wm, 0, sizeof *wm);
    crypto_kdf_derive_from_key(wm->kg, sizeof wm->kg, 1, "libwm-gl", key->secret);
    crypto_kdf_derive_from_key(wm->km, sizeof wm->km, 2, "libwm-gl", key->secret);
    wm->n_vocab = n_vocab;
    wm->gamma_k = key->gamma_k;
    /* Smallest power-of-two field width b with gamma_k / 2^16 = thresh / 2^b. */
    unsigned tz = (unsigned)__builtin_ctz(key->gamma_k), bits = 16 - (tz > 15 ? 15 : tz);
    unsigned b2 = 1;
    while (b2 < bits) b2 <<= 1;
    wm->bits = b2;
    wm->thresh = key->gamma_k >> (16 - b2);
    wm->tok_per_block = 128 / b2;
    wm->delta = (float)key->delta;
    wm->h = key->h;
    wm->scheme = key->scheme;
    wm__compute_id(key, wm->key_id);
    wm__pick_kernels(wm);
    sodium_mprotect_readonly(wm);
    *out = wm;
    return WM_OK;
}

void wm_watermark_free(wm_watermark *wm)
{
    if (wm) sodium_free(wm);
}

wm_status wm_watermark_n_vocab(const wm_watermark *wm, uint32_t *out)
{
    if (!wm || !out) return WM_ERR_ARG;
    *out = wm->n_vocab;
    return WM_OK;
}

wm_status wm_watermark_params(const wm_watermark *wm, wm_params *out)
{
    if (!wm || !out) return WM_ERR_ARG;
    out->gamma = (double)wm->gamma_k / WM_GAMMA_ONE;
    out->delta = wm->delta;
    out->context_width = wm->h;
    out->scheme = wm->scheme;
    return WM_OK;
}

wm_status wm_watermark_key_id(const wm_watermark *wm, char out[WM_KEY_ID_SIZE])
{
    if (!wm || !out) return WM_ERR_ARG;
    memcpy(out, wm->key_id, WM_KEY_ID_SIZE);
    return WM_OK;
}

wm_status wm_is_green(const wm_watermark *wm, const wm_token *ctx, size_t n_ctx, wm_token token,
                      bool *green)
{
    if (!wm || !green || (n_ctx && !ctx)) return WM_ERR_ARG;
    *green = false;
    if (token < 0 || (uint32_t)token >= wm->n_vocab) return WM_ERR_TOKEN;
    if (n_ctx < wm->h) return WM_OK;
    const wm_token *c = ctx + n_ctx - wm->h;
    wm_status st = wm__check_tokens(wm, c, wm->h);
    if (st) return st;
    *green = wm__green(wm, wm__seed(wm, c), (uint32_t)token);
    return WM_OK;
}
