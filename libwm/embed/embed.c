/* Embedding: bias the green logits of one decode step. */
#include "internal.h"

/* PRF output generated per pass: small enough for the stack and L1, large
 * enough that the per-call overhead vanishes. */
#define CHUNK_BLOCKS 64

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

static void bias_row(const wm_watermark *wm, uint64_t seed, float *logits)
{
    if (wm->bias_row) {
        wm->bias_row(wm->kg, seed, wm->n_vocab, wm->bits, wm->thresh, wm->delta, logits);
        return;
    }
    unsigned char buf[CHUNK_BLOCKS * WM_BLOCK_BYTES];
    size_t tpb = wm->tok_per_block, n_blocks = (wm->n_vocab + tpb - 1) / tpb;
    for (size_t j = 0; j < n_blocks; j += CHUNK_BLOCKS) {
        size_t m = n_blocks - j < CHUNK_BLOCKS ? n_blocks - j : CHUNK_BLOCKS;
        size_t v0 = j * tpb, n_tok = m * tpb;
        if (n_tok > wm->n_vocab - v0) n_tok = wm->n_vocab - v0;
        wm->fill(wm->kg, seed, j, m, buf);
        wm->apply(buf, n_tok, wm->bits, wm->thresh, wm->delta, logits + v0);
    }
}

wm_status wm_bias_logits(const wm_watermark *wm, const wm_token *ctx, size_t n_ctx, float *logits,
                         size_t n_logits)
{
    if (!wm || !logits) return WM_ERR_ARG;
    if (n_logits < wm->n_vocab) return WM_ERR_SIZE;
    const wm_token *c;
    wm_status st = context_of(wm, ctx, n_ctx, &c);
    if (st || !c) return st;
    bias_row(wm, wm__seed(wm, c), logits);
    return WM_OK;
}

wm_status wm_bias_logits_batch(const wm_watermark *wm, size_t n_seq, const wm_token *const *ctx,
                               const size_t *n_ctx, float *logits, size_t n_logits,
                               size_t row_stride)
{
    if (!wm || (n_seq && (!ctx || !n_ctx || !logits))) return WM_ERR_ARG;
    if (n_logits < wm->n_vocab) return WM_ERR_SIZE;
    if (row_stride < n_logits) return WM_ERR_ARG;
    const wm_token *c;
    for (size_t s = 0; s < n_seq; s++) {
        wm_status st = context_of(wm, ctx[s], n_ctx[s], &c);
        if (st) return st;
    }
    for (size_t s = 0; s < n_seq; s++) {
        context_of(wm, ctx[s], n_ctx[s], &c);
        if (c) bias_row(wm, wm__seed(wm, c), logits + s * row_stride);
    }
    return WM_OK;
}

wm_status wm_bias_candidates(const wm_watermark *wm, const wm_token *ctx, size_t n_ctx, size_t n,
                             const wm_token *ids, size_t ids_stride, float *logits, size_t logits_stride)
{
    if (!wm || (n && (!ids || !logits))) return WM_ERR_ARG;
    const char *ip = (const char *)ids;
    char *lp = (char *)logits;
    for (size_t i = 0; i < n; i++) {
        wm_token t;
        memcpy(&t, ip + i * ids_stride, sizeof t);
        if (t < 0) return WM_ERR_TOKEN;
    }
    const wm_token *c;
    wm_status st = context_of(wm, ctx, n_ctx, &c);
    if (st || !c) return st;
    uint64_t seed = wm__seed(wm, c), have = UINT64_MAX;
    unsigned char block[WM_BLOCK_BYTES];
    for (size_t i = 0; i < n; i++) {
        wm_token t;
        memcpy(&t, ip + i * ids_stride, sizeof t);
        if ((uint32_t)t >= wm->n_vocab) continue; /* padding is never green */
        uint64_t j = (uint32_t)t / wm->tok_per_block;
        if (j != have) { /* candidates often share a block after sorting */
            wm__fill_scalar(wm->kg, seed, j, 1, block);
            have = j;
        }
        if (wm__field(block, (uint32_t)t % wm->tok_per_block, wm->bits) < wm->thresh) {
            float f;
            memcpy(&f, lp + i * logits_stride, sizeof f);
            f += wm->delta;
            memcpy(lp + i * logits_stride, &f, sizeof f);
        }
    }
    return WM_OK;
}
