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

/* ---- reweighting schemes (kgw) ------------------------------------------
 * The three calls below return WM_ERR_UNSUPPORTED for a selecting scheme.
 *
 * Accounts.  Each call takes the account the sequence is generated for: a
 * provider's 64-bit account id, or WM_ACCOUNT_NONE (0).  With a key whose
 * account_delta is > 0, a sequence of account u also gets account_delta
 * added to the logits of one keyed quarter of the vocabulary after each
 * seed s, green or not: the part that u's codeword names at s's position
 * (schemes/account.c has the construction, detect.h's "Attribution" the
 * test).  Every account shares the green list, so the base test sees all
 * accounts' text alike; the extra bias costs quality like a second green
 * list of gamma 1/4 and strength account_delta (measured in
 * docs/ATTRIBUTION.md#measured-which-accounts-fed-the-student-examplesneuralattributepy).  An
 * account other than 0 with a key without an account layer, or with a
 * selecting scheme, is WM_ERR_UNSUPPORTED: nothing would be embedded, and
 * silently so. */

/* Add delta to the logit of every green token, in place.  n_logits may exceed
 * the vocabulary (models pad their output layer): positions >= n_vocab are
 * never green.  n_logits < n_vocab is WM_ERR_SIZE.  Logits are not checked:
 * -inf stays -inf and NaN stays NaN (adding is all that happens); the
 * sampler below does check.  Cost: one SipHash per 128/b tokens plus one add
 * per logit. */
/* @return WM_OK; WM_ERR_ARG (NULL wm or logits, NULL ctx with n_ctx > 0); WM_ERR_SIZE (n_logits <
 * n_vocab); WM_ERR_TOKEN (a context token outside the vocabulary); WM_ERR_UNSUPPORTED (a selecting
 * scheme, or an account the key cannot embed); on failure nothing changes.
 * IN/OUT: logits.  Thread-safe for distinct logits buffers. */
WM_API WM_NODISCARD wm_status wm_bias_logits(const wm_watermark *wm, uint64_t account, const wm_token *ctx,
                                             size_t n_ctx, float *logits, size_t n_logits);

/* Element types of a logits buffer, as inference engines hold them. */
typedef enum wm_dtype {
    WM_DTYPE_F32 = 0,  /* IEEE binary32 */
    WM_DTYPE_BF16 = 1, /* bfloat16: the high half of a binary32 */
    WM_DTYPE_F16 = 2   /* IEEE binary16 */
} wm_dtype;

/* The same for n_seq sequences in one call: sequence s has context ctx[s]
 * (n_ctx[s] tokens), account accounts[s] (accounts NULL: none for every
 * row) and logits of type dtype at element s * row_stride of `logits`
 * (row_stride >= n_logits, in elements).  All contexts and accounts are
 * validated before any row changes; an unknown dtype is WM_ERR_ARG.
 *
 * 16-bit rows are biased where they lie, a block at a time: each logit is
 * widened to binary32 exactly, gets the same additions as a WM_DTYPE_F32
 * row (each rounded to the row's type, to nearest even, as PyTorch rounds
 * x + y), so the same tokens change by the same deltas, to the type's
 * precision.  NaN stays NaN, +-inf stays +-inf.  No allocation. */
/* @return WM_OK; WM_ERR_ARG (NULL arrays with n_seq > 0, an unknown dtype, row_stride < n_logits);
 * WM_ERR_SIZE (n_logits < n_vocab); WM_ERR_TOKEN; WM_ERR_UNSUPPORTED (as wm_bias_logits); on
 * failure no row changes.  row_stride is in elements of dtype.
 * IN/OUT: logits.  Thread-safe for distinct logits buffers. */
WM_API WM_NODISCARD wm_status wm_bias_logits_batch(const wm_watermark *wm, size_t n_seq, const uint64_t *accounts,
                                                   const wm_token *const *ctx, const size_t *n_ctx, void *logits,
                                                   wm_dtype dtype, size_t n_logits, size_t row_stride);

/* Bias a candidate list (e.g. after top-k) in O(n): candidate c < n has id
 * *(wm_token *)((char *)ids + c * ids_stride) and logit at the same offset
 * from logits with logits_stride.  Strides are in bytes, so an array of
 * structs such as llama.cpp's llama_token_data is used in place.  Ids >=
 * n_vocab (padding) are never green; a negative id is WM_ERR_TOKEN and
 * nothing is changed. */
/* @return WM_OK; WM_ERR_ARG (NULL wm, NULL ids or logits with n > 0); WM_ERR_TOKEN (a negative id
 * or context token outside the vocabulary); WM_ERR_UNSUPPORTED (as wm_bias_logits); on failure
 * nothing changes.  Strides in bytes.  IN/OUT: logits.  Thread-safe for distinct logits buffers. */
WM_API WM_NODISCARD wm_status wm_bias_candidates(const wm_watermark *wm, uint64_t account, const wm_token *ctx,
                                                 size_t n_ctx, size_t n, const wm_token *ids, size_t ids_stride,
                                                 float *logits, size_t logits_stride);

/* ---- the green list ------------------------------------------------------ */

/* Is `token` green after the context ctx[0..n_ctx-1] (oldest first; only the
 * last h tokens matter)?  O(1).  n_ctx < h: *green = false and WM_OK, since
 * such positions are neither biased nor scored.  Schemes without a green
 * list: WM_ERR_UNSUPPORTED.  Thread-safe. */
/* @return WM_OK; WM_ERR_ARG (NULL wm or green, NULL ctx with n_ctx > 0); WM_ERR_TOKEN (a context
 * token outside the vocabulary); WM_ERR_UNSUPPORTED (no green list).  OUT: *green. */
WM_API WM_NODISCARD wm_status wm_is_green(const wm_watermark *wm, const wm_token *ctx, size_t n_ctx,
                                          wm_token token, bool *green);

/* ---- selecting schemes (gumbel) -------------------------------------------
 * The scheme picks the token itself from the distribution the engine would
 * sample from, after its temperature, top-k, top-p and other processing.
 * Over keys the choice is a draw from that distribution; for one key it is
 * a deterministic function of the context seed and the distribution.  So
 * the same seed twice in one sequence would repeat its choice (loops, and
 * outputs running to the length cap): the second time the step must be
 * sampled normally, and detection never scores it (detect.h). */

/* Choose the token after ctx among n candidates: candidate c has id at
 * (char *)ids + c * ids_stride and weight (a probability, or anything
 * proportional to one; >= 0) at (char *)weights + c * weights_stride.
 * Strides are in bytes.  Candidates of weight 0 are never chosen, so the
 * cost is O(candidates with weight > 0): one PRF lane and one log each.
 *
 * used: the context seeds already watermarked in this sequence (a
 * wm_ctxset of wm; wm_ctxset_clear it at each new sequence), or NULL to
 * skip the repeated-seed rule (only for tests and one-step uses).
 *
 * On WM_OK, *selected says whether the scheme chose: true with *out set;
 * false when n_ctx < h or the seed is already in `used`, and then the caller
 * must draw from the distribution itself.  A seed is added to `used` when
 * chosen.  Errors: WM_ERR_UNSUPPORTED for a reweighting scheme, WM_ERR_TOKEN
 * for a negative id or one >= n_vocab with weight > 0, WM_ERR_LOGITS for a
 * NaN, infinite or negative weight or none > 0, WM_ERR_NOMEM when `used`
 * cannot grow (its only allocation).  Thread-safe for distinct `used`. */
/* @return WM_OK or one of the errors above; on failure *out and `used` are unchanged and
 * *selected is false.  OUT: *out, *selected. */
WM_API WM_NODISCARD wm_status wm_select(const wm_watermark *wm, wm_ctxset *used, const wm_token *ctx,
                                        size_t n_ctx, size_t n, const wm_token *ids, size_t ids_stride,
                                        const float *weights, size_t weights_stride, wm_token *out,
                                        bool *selected);

/* ---- a complete watermarking sampler, for every scheme ------------------- */

typedef struct wm_sampler_params {
    size_t size;       /* sizeof(wm_sampler_params): common.h, "Versioned structs" */
    float temperature; /* below WM_TEMPERATURE_MIN (0 included): greedy (argmax,
                          lowest id on ties); 1/T would overflow or turn
                          weights into inf * 0 = NaN near 0 */
    uint32_t top_k;    /* 0: no limit */
    float top_p;       /* nucleus mass in (0,1]; 1: no limit */
    uint64_t seed;     /* RNG seed: same seed, same inputs -> same tokens */
    uint64_t account;  /* the sequence's account ("Accounts" above); 0: none */
} wm_sampler_params;

#define WM_TEMPERATURE_MIN 1e-4f
/* Plain sampling at temperature 1, no truncation, RNG seed 0, no account. */
#define WM_SAMPLER_PARAMS_DEFAULT                                                               \
    { .size = sizeof(wm_sampler_params), .temperature = 1.0f, .top_k = 0u, .top_p = 1.0f, .seed = 0u, \
      .account = WM_ACCOUNT_NONE }

/* One sampler per sequence (it holds the RNG state, an O(n_vocab) scratch
 * buffer allocated here, never per step, and for a selecting scheme the
 * seeds used so far; wm_sampler_reset starts a new sequence).  Not thread-safe: one thread at a
 * time per sampler; samplers of one shared wm_watermark run in parallel.
 * The sampler borrows wm, which must outlive it. */
typedef struct wm_sampler wm_sampler;

/* WM_ERR_ARG for a temperature that is negative, NaN or infinite, or a
 * top_p outside (0, 1] (NaN included); WM_ERR_UNSUPPORTED for an account
 * the key cannot embed; WM_ERR_NOMEM. */
/* @return WM_OK; WM_ERR_ARG; WM_ERR_UNSUPPORTED; WM_ERR_NOMEM; *out NULL on failure.  OUT: *out,
 * owned by the caller (wm_sampler_free); it borrows wm.  Thread-safe. */
WM_API WM_NODISCARD wm_status wm_sampler_new(wm_sampler **out, const wm_watermark *wm,
                                const wm_sampler_params *params);
/* NULL is a no-op.  Not thread-safe: no other thread may use s. */
WM_API void wm_sampler_free(wm_sampler *s);

/* Forget the sequence's used seeds (selecting schemes), reseed the RNG
 * with `seed` and take `account` for the next sequence: the sampler is as
 * new.  An account the key cannot embed is WM_ERR_UNSUPPORTED (as for
 * wm_sampler_new) and changes nothing. */
/* @return WM_OK; WM_ERR_ARG (NULL s); WM_ERR_UNSUPPORTED.  Not thread-safe: one thread at a time
 * per sampler. */
WM_API WM_NODISCARD wm_status wm_sampler_reset(wm_sampler *s, uint64_t seed, uint64_t account);

/* One decode step.  kgw: bias logits in place (as wm_bias_logits), then
 * apply temperature, top-k and top-p over the real vocabulary and draw a
 * token into *out.  gumbel: temperature, top-k and top-p, then wm_select
 * over the candidates (logits are not changed); a repeated seed or a short
 * context is drawn with the RNG.  Greedy (temperature below
 * WM_TEMPERATURE_MIN) takes the argmax of the (biased) logits for kgw and
 * is not watermarked for gumbel, whose distribution is then a point mass.
 * Returns WM_ERR_LOGITS (and draws nothing) if a logit is NaN or +inf or
 * none is finite.  With `watermark` false the same sampler draws without
 * the watermark (for controls and A/B tests). */
/* @return WM_OK; WM_ERR_ARG (NULL s, logits or out, NULL ctx with n_ctx > 0); WM_ERR_SIZE
 * (n_logits < n_vocab); WM_ERR_TOKEN (a context token outside the vocabulary); WM_ERR_LOGITS;
 * WM_ERR_UNSUPPORTED (as wm_bias_logits); WM_ERR_NOMEM (a selecting scheme's used seeds cannot
 * grow).  IN/OUT: logits (biased in place for kgw).  OUT: *out.  Not thread-safe: one thread at
 * a time per sampler. */
WM_API WM_NODISCARD wm_status wm_sampler_sample(wm_sampler *s, const wm_token *ctx, size_t n_ctx,
                                   float *logits, size_t n_logits, bool watermark,
                                   wm_token *out);

#ifdef __cplusplus
}
#endif
#endif
