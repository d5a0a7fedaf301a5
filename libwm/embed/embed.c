/* Embedding: what a decode step calls, forwarded to the key's scheme
 * (schemes/): reweighting schemes bias logits, selecting ones choose the
 * token from the final distribution. */
#include "internal.h"

#include <math.h>

/* No negative id among n candidates. */
static wm_status check_ids(size_t n, const wm_token *ids, size_t ids_stride)
{
    for (size_t i = 0; i < n; i++) {
        wm_token t;
        memcpy(&t, (const char *)ids + i * ids_stride, sizeof t);
        if (t < 0) return WM_ERR_TOKEN;
    }
    return WM_OK;
}

/* The last h context tokens, validated; NULL with WM_OK when n_ctx < h. */
static wm_status context_of(const wm_watermark *wm, const wm_token *ctx, size_t n_ctx,
                            const wm_token **c)
{
    *c = NULL;
    if (n_ctx && !ctx) return WM_ERR_ARG;
    if (n_ctx < wm->h) return WM_OK;
    wm_status st = wm__check_tokens(wm, ctx + n_ctx - wm->h, wm->h);
    if (st == WM_OK) *c = ctx + n_ctx - wm->h;
    return st;
}

/* Can wm embed `account`?  0 always; any other needs an account layer. */
static wm_status check_account(const wm_watermark *wm, uint64_t account)
{
    return account == WM_ACCOUNT_NONE || wm->account ? WM_OK : WM_ERR_UNSUPPORTED;
}

/* The symbol account's codeword has at seed's position. */
static unsigned symbol_at(const wm_watermark *wm, uint64_t account, uint64_t seed)
{
    unsigned char code[WM__CODE_BYTES];
    wm->account->codes(wm, &account, 1, code);
    return wm__account_symbol(code, wm->account->pos(wm, seed));
}

/* With an account: one sweep when the scheme can fold the layer's field
 * list into its own pass (both tables say so by their methods), else the
 * scheme's pass and then the layer's. */
static void bias_row(const wm_watermark *wm, uint64_t account, uint64_t seed, void *logits, wm_dtype dtype)
{
    if (account == WM_ACCOUNT_NONE) {
        wm->scheme->bias_row(wm, seed, logits, dtype);
        return;
    }
    unsigned c = symbol_at(wm, account, seed);
    if (wm->scheme->bias_row_with && wm->account->fields) {
        wm__fields f;
        wm->account->fields(wm, c, &f);
        wm->scheme->bias_row_with(wm, seed, &f, logits, dtype);
        return;
    }
    wm->scheme->bias_row(wm, seed, logits, dtype);
    wm->account->bias_row(wm, seed, c, logits, dtype);
}

wm_status wm_bias_logits(const wm_watermark *wm, uint64_t account, const wm_token *ctx, size_t n_ctx,
                         float *logits, size_t n_logits)
{
    if (!wm || !logits) return WM_ERR_ARG;
    if (!wm__has(wm->scheme, WM__CAP_BIASES)) return WM_ERR_UNSUPPORTED;
    if (n_logits < wm->n_vocab) return WM_ERR_SIZE;
    const wm_token *c;
    wm_status st = check_account(wm, account);
    if (st || (st = context_of(wm, ctx, n_ctx, &c)) || !c) return st;
    bias_row(wm, account, wm__seed(wm, c), logits, WM_DTYPE_F32);
    return WM_OK;
}

wm_status wm_bias_logits_batch(const wm_watermark *wm, size_t n_seq, const uint64_t *accounts,
                               const wm_token *const *ctx, const size_t *n_ctx, void *logits, wm_dtype dtype,
                               size_t n_logits, size_t row_stride)
{
    if (!wm || (n_seq && (!ctx || !n_ctx || !logits))) return WM_ERR_ARG;
    if (dtype != WM_DTYPE_F32 && dtype != WM_DTYPE_BF16 && dtype != WM_DTYPE_F16) return WM_ERR_ARG;
    if (!wm__has(wm->scheme, WM__CAP_BIASES)) return WM_ERR_UNSUPPORTED;
    if (n_logits < wm->n_vocab) return WM_ERR_SIZE;
    if (row_stride < n_logits) return WM_ERR_ARG;
    const wm_token *c;
    for (size_t s = 0; s < n_seq; s++) {
        wm_status st = context_of(wm, ctx[s], n_ctx[s], &c);
        if (st || (accounts && (st = check_account(wm, accounts[s])))) return st;
    }
    size_t esize = dtype == WM_DTYPE_F32 ? 4 : 2;
    for (size_t s = 0; s < n_seq; s++) {
        context_of(wm, ctx[s], n_ctx[s], &c);
        if (c)
            bias_row(wm, accounts ? accounts[s] : WM_ACCOUNT_NONE, wm__seed(wm, c),
                     (char *)logits + s * row_stride * esize, dtype);
    }
    return WM_OK;
}

wm_status wm_kernel_params_get(const wm_watermark *wm, wm_kernel_params *out)
{
    if (!wm || !out || !WM__SIZED(out, wm_kernel_params)) return WM_ERR_ARG;
    if (!wm->scheme->kernel_params) return WM_ERR_UNSUPPORTED;
    *out = (wm_kernel_params){ .size = sizeof *out, .n_vocab = wm->n_vocab, .context_width = wm->h, .seeding = wm->seeding };
    memcpy(out->minhash_key, wm->km, 16);
    wm->scheme->kernel_params(wm, out);
    if (wm->account) wm->account->kernel_params(wm, out);
    return WM_OK;
}

wm_status wm_context_seed(const wm_watermark *wm, const wm_token *ctx, size_t n_ctx, uint64_t *seed, bool *has_seed)
{
    if (!wm || !seed || !has_seed) return WM_ERR_ARG;
    const wm_token *c;
    *has_seed = false;
    wm_status st = context_of(wm, ctx, n_ctx, &c);
    if (st || !c) return st;
    *seed = wm__seed(wm, c);
    *has_seed = true;
    return WM_OK;
}

wm_status wm_account_symbols(const wm_watermark *wm, uint64_t account, uint8_t symbols[WM_ACCOUNT_POSITIONS])
{
    if (!wm || !symbols) return WM_ERR_ARG;
    if (!wm->account) return WM_ERR_UNSUPPORTED;
    unsigned char code[WM__CODE_BYTES];
    wm->account->codes(wm, &account, 1, code);
    for (unsigned j = 0; j < WM_ACCOUNT_POSITIONS; j++) symbols[j] = (uint8_t)wm__account_symbol(code, j);
    return WM_OK;
}

wm_status wm_bias_candidates(const wm_watermark *wm, uint64_t account, const wm_token *ctx, size_t n_ctx,
                             size_t n, const wm_token *ids, size_t ids_stride, float *logits, size_t logits_stride)
{
    if (!wm || (n && (!ids || !logits))) return WM_ERR_ARG;
    if (!wm__has(wm->scheme, WM__CAP_BIASES)) return WM_ERR_UNSUPPORTED;
    wm_status st = check_account(wm, account);
    const wm_token *c;
    if (st || (st = check_ids(n, ids, ids_stride)) || (st = context_of(wm, ctx, n_ctx, &c)) || !c) return st;
    uint64_t seed = wm__seed(wm, c);
    wm->scheme->bias_candidates(wm, seed, n, ids, ids_stride, logits, logits_stride);
    if (account != WM_ACCOUNT_NONE)
        wm->account->bias_candidates(wm, seed, symbol_at(wm, account, seed), n, ids, ids_stride, logits,
                                     logits_stride);
    return WM_OK;
}

wm_status wm_select(const wm_watermark *wm, wm_ctxset *used, const wm_token *ctx, size_t n_ctx, size_t n,
                    const wm_token *ids, size_t ids_stride, const float *weights, size_t weights_stride,
                    wm_token *out, bool *selected)
{
    if (!wm || !out || !selected || (n && (!ids || !weights))) return WM_ERR_ARG;
    *selected = false;
    if (!wm__has(wm->scheme, WM__CAP_SELECTS)) return WM_ERR_UNSUPPORTED;
    if (used && wm__ctxset_wm(used) != wm) return WM_ERR_ARG;
    wm_status st = check_ids(n, ids, ids_stride);
    if (st) return st;
    int any = 0;
    for (size_t i = 0; i < n; i++) {
        float w;
        wm_token t;
        memcpy(&w, (const char *)weights + i * weights_stride, sizeof w);
        memcpy(&t, (const char *)ids + i * ids_stride, sizeof t);
        if (!(w >= 0) || w == INFINITY) return WM_ERR_LOGITS;
        if (w > 0 && (uint32_t)t >= wm->n_vocab) return WM_ERR_TOKEN; /* padding has no uniform */
        any |= w > 0;
    }
    if (!any) return WM_ERR_LOGITS;
    const wm_token *c;
    if ((st = context_of(wm, ctx, n_ctx, &c)) || !c) return st;
    uint64_t seed = wm__seed(wm, c);
    if (used) {
        int r = wm__ctxset_insert(used, seed);
        if (r < 0) return WM_ERR_NOMEM;
        if (r == 0) return WM_OK; /* a repeated seed: the caller samples normally */
    }
    size_t i = wm->scheme->select(wm, seed, n, ids, ids_stride, weights, weights_stride);
    memcpy(out, (const char *)ids + i * ids_stride, sizeof *out);
    *selected = true;
    return WM_OK;
}
