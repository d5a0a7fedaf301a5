/* libwm for llama.cpp: a watermarking sampler for llama.cpp's sampler chain.
 *
 * Not part of <wm.h> (it needs <llama.h>); link libwm-llama.  Built against
 * the llama.cpp release pinned in scripts/fetch-fixtures.sh; the sampler uses
 * only the stable llama_sampler_i callbacks name/accept/apply/reset/clone/free.
 *
 *     struct llama_sampler *chain = llama_sampler_chain_init(llama_sampler_chain_default_params());
 *     llama_sampler_chain_add(chain, llama_sampler_init_top_k(40));
 *     struct llama_sampler *wms;
 *     if (wm_llama_sampler_new(&wms, wm, account, prompt, n_prompt) != WM_OK) ...;
 *     llama_sampler_chain_add(chain, wms);                  // the chain owns it now
 *     llama_sampler_chain_add(chain, llama_sampler_init_dist(seed));
 *     ...
 *     llama_token t = llama_sampler_sample(chain, ctx, -1); // applies, then accepts t
 *     wm_status st;
 *     if (wm_llama_sampler_status(wms, &st) != WM_OK || st != WM_OK) ...; // t is not watermarked: drop it
 *
 * Where it goes decides what a request can do to it.  Before every
 * truncating or rescaling sampler (top-k, top-p, min-p, top-n-sigma,
 * temperature, mirostat), as llama-server puts it, it biases all n_vocab
 * candidates and whatever those samplers keep is the top of the biased
 * distribution: greedy decoding (temperature <= 0, top-k 1) picks the
 * biased argmax, which is watermarked.  After them it costs only O(k), but
 * a truncation to one candidate leaves it nothing to do.  Samplers that
 * prefer less likely tokens (typical-p, XTC, adaptive-p, infill) undo the
 * bias wherever they are. */
#ifndef WM_LLAMA_H
#define WM_LLAMA_H
#include <llama.h>

#include "key.h"
#ifdef __cplusplus
extern "C" {
#endif
/* A new sampler for one sequence, generated for `account` (embed.h,
 * "Accounts"; WM_ACCOUNT_NONE: none).  It keeps the last h tokens of that
 * sequence: `prompt` (n_prompt tokens, may be NULL when 0) seeds them, and
 * every llama_sampler_accept (which a chain and llama_sampler_sample call
 * with each chosen token) appends one.
 *
 *   apply  adds delta to the logit of each green candidate in cur_p, in place,
 *          in O(cur_p->size).  The array may be truncated or unsorted; ids
 *          >= the watermark's vocabulary are never green.  It clears
 *          cur_p->sorted (biasing can reorder) and leaves `selected` alone.
 *          Fewer than h tokens of history: nothing is biased (detection does
 *          not score those positions either).  A failure (a negative
 *          candidate id, a NaN weight for a selecting scheme, no memory)
 *          leaves the whole array unchanged and is recorded: see
 *          wm_llama_sampler_status.
 *   accept appends the token (a negative token is ignored).
 *   reset  forgets the history, as at the start of a sequence without prompt.
 *   clone  copies the history; the clone shares wm.
 *   free   frees the sampler's own state, never wm.
 *
 * wm is borrowed: it must outlive the sampler and its clones; it may be
 * shared by any number of samplers and threads.  One thread at a time per
 * sampler (as for every llama.cpp sampler).  Errors: WM_ERR_ARG (NULL out or
 * wm, NULL prompt with n_prompt > 0), WM_ERR_TOKEN (negative prompt token),
 * WM_ERR_UNSUPPORTED (an account with a key without an account layer),
 * WM_ERR_NOMEM; *out is then NULL. */
/* @return WM_OK or one of the errors above.  OUT: *out, owned by the caller (llama_sampler_free)
 * until added to a chain, which then owns it.  Thread-safe. */
WM_API WM_NODISCARD wm_status wm_llama_sampler_new(struct llama_sampler **out, const wm_watermark *wm,
                                                   uint64_t account, const llama_token *prompt, size_t n_prompt);

/* The first failure of smpl's apply (or reset) since it was made or last
 * reset, in *out: WM_OK when every apply so far watermarked its
 * candidates.  apply cannot return an error, so a caller that must never
 * emit an unwatermarked token checks this after every draw and fails the
 * request instead of using the token.  A clone inherits the status.
 * @return WM_OK; WM_ERR_ARG if smpl or out is NULL or smpl is not a libwm
 * sampler (for example another sampler of the same chain).  Not
 * thread-safe: one thread at a time per sampler.  OUT: *out. */
WM_API WM_NODISCARD wm_status wm_llama_sampler_status(const struct llama_sampler *smpl, wm_status *out);

/* @return the number of failures of every libwm sampler's apply or reset
 * in this process since it started (for a server's metrics).  Thread-safe. */
WM_API uint64_t wm_llama_failures(void);
#ifdef __cplusplus
}
#endif
#endif
