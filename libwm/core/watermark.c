/* The watermark object: a key bound to a vocabulary, with derived
 * sub-keys and the PRF kernels this CPU runs; immutable once made. */
#include "internal.h"

#include <sodium.h>

/* Offsets in the block are multiples of 16, and so is its size, which
 * keeps sodium_malloc's end-of-page placement 16-byte aligned. */
static size_t round16(size_t n) { return (n + 15) & ~(size_t)15; }

/* The account layer when the key turns it on, else NULL. */
static const wm__account_layer *layer_of(const wm_key *key)
{
    const wm__scheme *sc = key->scheme;
    return sc->account && key->param[sc->account_param] > 0 ? sc->account : NULL;
}

/* Give back what the scheme and the layer took beyond their states; the
 * block itself (states included) is wiped by wm__secure_free. */
static void release(wm_watermark *wm)
{
    sodium_mprotect_readwrite(wm);
    if (wm->scheme->free) wm->scheme->free((void *)wm->scheme_state);
    if (wm->account && wm->account->free) wm->account->free((void *)wm->account_state);
    wm__secure_free(wm);
}

wm_status wm_watermark_new(wm_watermark **out, const wm_key *key, uint32_t n_vocab)
{
    if (!out || !key) return WM_ERR_ARG;
    *out = NULL;
    if (n_vocab == 0 || n_vocab > (uint32_t)INT32_MAX) return WM_ERR_SIZE;
    if (key->n_vocab && key->n_vocab != n_vocab) return WM_ERR_SIZE;
    if (sodium_init() < 0) return WM_ERR_CRYPTO;
    const wm__scheme *sc = key->scheme;
    const wm__account_layer *layer = layer_of(key);
    size_t at_scheme = round16(sizeof(struct wm_watermark)), at_layer = at_scheme + round16(sc->state_bytes);
    size_t bytes = at_layer + round16(layer ? layer->state_bytes : 0);
    unsigned char *block = wm__secure_malloc(bytes);
    if (!block) return WM_ERR_NOMEM;
    memset(block, 0, bytes);
    wm_watermark *wm = (wm_watermark *)block;
    int kdf_failed = crypto_kdf_derive_from_key(wm->km, sizeof wm->km, 2, "libwm-gl", key->secret);
    wm->n_vocab = n_vocab;
    wm->scheme = sc;
    wm->scheme_state = block + at_scheme;
    memcpy(wm->param, key->param, sizeof wm->param);
    wm->seeding = key->seeding;
    wm->h = key->h;
    wm_status st = kdf_failed ? WM_ERR_CRYPTO : wm__compute_id(key, wm->key_id);
    if (!st) st = wm__pick_kernels(wm);
    if (!st) st = sc->prepare(wm, block + at_scheme, key->secret);
    if (!st && layer) {
        wm->account = layer;
        wm->account_state = block + at_layer;
        st = layer->prepare(wm, block + at_layer, key->secret, key->param[sc->account_param]);
    }
    if (st) { /* fail closed: never a watermark with a missing or zeroed sub-key; wipes the derived keys */
        release(wm);
        return st;
    }
    sodium_mprotect_readonly(wm);
    *out = wm;
    return WM_OK;
}

void wm_watermark_free(wm_watermark *wm)
{
    if (wm) release(wm);
}

wm_status wm_watermark_n_vocab(const wm_watermark *wm, uint32_t *out)
{
    if (!wm || !out) return WM_ERR_ARG;
    *out = wm->n_vocab;
    return WM_OK;
}

wm_status wm_watermark_params(const wm_watermark *wm, wm_params *out)
{
    if (!wm || !out || !WM__SIZED(out, wm_params)) return WM_ERR_ARG;
    wm__params_of(wm->scheme, wm->param, wm->seeding, wm->h, out);
    return WM_OK;
}

wm_status wm_watermark_key_id(const wm_watermark *wm, char out[WM_KEY_ID_SIZE])
{
    if (!wm || !out) return WM_ERR_ARG;
    memcpy(out, wm->key_id, WM_KEY_ID_SIZE);
    return WM_OK;
}

wm_status wm_watermark_selects(const wm_watermark *wm, bool *out)
{
    if (!wm || !out) return WM_ERR_ARG;
    *out = wm__has(wm->scheme, WM__CAP_SELECTS);
    return WM_OK;
}

/* The scored context of `token` after ctx: *c = NULL when n_ctx < h. */
static wm_status tuple_of(const wm_watermark *wm, const wm_token *ctx, size_t n_ctx, wm_token token,
                          const wm_token **c)
{
    *c = NULL;
    if (token < 0 || (uint32_t)token >= wm->n_vocab) return WM_ERR_TOKEN;
    if (n_ctx < wm->h) return WM_OK;
    wm_status st = wm__check_tokens(wm, ctx + n_ctx - wm->h, wm->h);
    if (st == WM_OK) *c = ctx + n_ctx - wm->h;
    return st;
}

wm_status wm_tuple_score(const wm_watermark *wm, const wm_token *ctx, size_t n_ctx, wm_token token,
                         double *score)
{
    if (!wm || !score || (n_ctx && !ctx)) return WM_ERR_ARG;
    *score = 0;
    const wm_token *c;
    wm_status st = tuple_of(wm, ctx, n_ctx, token, &c);
    if (st || !c) return st;
    uint64_t seed = wm__seed(wm, c);
    wm->scheme->score_many(wm, &seed, &token, 1, score);
    return WM_OK;
}

wm_status wm_is_green(const wm_watermark *wm, const wm_token *ctx, size_t n_ctx, wm_token token,
                      bool *green)
{
    if (!wm || !green || (n_ctx && !ctx)) return WM_ERR_ARG;
    *green = false;
    if (!wm__has(wm->scheme, WM__CAP_GREEN_LIST)) return WM_ERR_UNSUPPORTED;
    double score;
    wm_status st = wm_tuple_score(wm, ctx, n_ctx, token, &score);
    if (st == WM_OK) *green = score != 0;
    return st;
}
