/* libwm: embedding, i.e. what an inference server calls every decode step.
 * Part of <wm.h>.
 *
 * Context convention everywhere: ctx[0..n_ctx-1] are the tokens before the
 * position being sampled, oldest first (prompt included).  Only the last h
 * matter.  With n_ctx < h nothing is biased (WM_OK): detection never scores
 * such positions either.
 *
 * None of these functions allocates: they are safe in the hot loop.  All take
 * a const wm_watermark and may run concurrently on distinct buffers. */
#ifndef WM_EMBED_H
#define WM_EMBED_H

#include "key.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Add delta to the logit of every green token, in place.  n_logits may exceed
 * the vocabulary (models pad their output layer): positions >= n_vocab are
 * never green.  n_logits < n_vocab is WM_ERR_SIZE.  Logits are not checked:
 * -inf stays -inf and NaN stays NaN (adding is all that happens); the
 * sampler below does check.  Cost: one SipHash per 128/b tokens plus one add
 * per logit. */
WM_API WM_NODISCARD wm_status wm_bias_logits(const wm_watermark *wm, const wm_token *ctx, size_t n_ctx,
                                float *logits, size_t n_logits);

/* The same for n_seq sequences in one call: sequence s has context ctx[s]
 * (n_ctx[s] tokens) and logits at logits + s * row_stride (row_stride >=
 * n_logits, in floats).  All contexts are validated before any row changes. */
WM_API WM_NODISCARD wm_status wm_bias_logits_batch(const wm_watermark *wm, size_t n_seq,
                                      const wm_token *const *ctx, const size_t *n_ctx,
                                      float *logits, size_t n_logits, size_t row_stride);

/* Bias a candidate list (e.g. after top-k) in O(n): candidate c < n has id
 * *(wm_token *)((char *)ids + c * ids_stride) and logit at the same offset
 * from logits with logits_stride.  Strides are in bytes, so an array of
 * structs such as llama.cpp's llama_token_data is used in place.  Ids >=
 * n_vocab (padding) are never green; a negative id is WM_ERR_TOKEN and
 * nothing is changed. */
WM_API WM_NODISCARD wm_status wm_bias_candidates(const wm_watermark *wm, const wm_token *ctx, size_t n_ctx,
                                                 size_t n, const wm_token *ids, size_t ids_stride, float *logits,
                                                 size_t logits_stride);

/* ---- a complete watermarking sampler ------------------------------------ */

typedef struct wm_sampler_params {
    float temperature; /* below WM_TEMPERATURE_MIN (0 included): greedy (argmax,
                          lowest id on ties); 1/T would overflow or turn
                          weights into inf * 0 = NaN near 0 */
    uint32_t top_k;    /* 0: no limit */
    float top_p;       /* nucleus mass in (0,1]; 1: no limit */
    uint64_t seed;     /* RNG seed: same seed, same inputs -> same tokens */
} wm_sampler_params;

#define WM_TEMPERATURE_MIN 1e-4f
#define WM_SAMPLER_PARAMS_DEFAULT { 1.0f, 0u, 1.0f, 0u }

/* One sampler per sequence (it holds the RNG state and an O(n_vocab) scratch
 * buffer allocated here, never per step).  Not thread-safe: one thread at a
 * time per sampler; samplers of one shared wm_watermark run in parallel.
 * The sampler borrows wm, which must outlive it. */
typedef struct wm_sampler wm_sampler;

WM_API WM_NODISCARD wm_status wm_sampler_new(wm_sampler **out, const wm_watermark *wm,
                                const wm_sampler_params *params);
WM_API void wm_sampler_free(wm_sampler *s);

/* Bias logits in place (as wm_bias_logits), then apply temperature, top-k and
 * top-p over the real vocabulary and draw a token into *out.  Returns
 * WM_ERR_LOGITS (and draws nothing) if a logit is NaN or +inf or none is
 * finite.  With `watermark` false the same sampler draws without bias (for
 * controls and A/B tests). */
WM_API WM_NODISCARD wm_status wm_sampler_sample(wm_sampler *s, const wm_token *ctx, size_t n_ctx,
                                   float *logits, size_t n_logits, bool watermark,
                                   wm_token *out);

#ifdef __cplusplus
}
#endif
#endif
