/* libwm: detection.  Part of <wm.h>.
 *
 * Null hypothesis H0: the text was produced without knowledge of the key.
 * Under H0, and modelling SipHash-2-4 as a random function, the PRF values
 * of distinct (context seed, token) tuples are independent and uniform, so
 * with deduplication (the default) the scheme's statistic S over N scored
 * tuples has an exactly known law and p = P(S >= s) is exact:
 *   kgw:    S = green tuples ~ Binomial(N, gamma) (the quantised gamma);
 *   gumbel: S = sum of -ln(1 - r) ~ Gamma(N, 1), or stochastically
 *           smaller (r is floor-quantised to 32 bits, which can only make
 *           p too large: proof in schemes/gumbel.c).
 * Without deduplication repeated tuples are dependent and the p-value is
 * NOT valid; that mode exists for comparison with tools that do not
 * deduplicate.
 *
 * Which tokens are scored: token i is scored iff it has a full context (i >=
 * h), it was generated (i >= n_prompt), its context window does not lie
 * entirely inside the prompt (i > n_prompt when h >= 1 and there is a
 * prompt), as in Sander et al.: scoring tuples fixed by the prompt biases the
 * test, and its tuple is not one of the prompt's own tuples (those of prompt
 * tokens with a full context inside the prompt).  The last rule keeps an
 * answer that quotes, copies or summarises a watermarked prompt from being
 * attributed to the key's owner: such text was produced with knowledge of
 * watermarked text, which H0 does not cover.  In corpus mode the prompt's
 * tuples are excluded from its own document only.  For a selecting scheme
 * (gumbel) a position whose context seed already occurred at an earlier
 * position of the same document (past the prompt) is not scored either:
 * the embedder sampled it without the watermark (embed.h).  All these rules
 * look at the text only, never at the key, so under H0 the scored tuples'
 * PRF values stay independent and uniform.  Dedup key: the context seed
 * (for lefthash with h <= 2 that is the context itself) and the token, as
 * a 64-bit fingerprint; a fingerprint collision (about n^2 / 2^65 expected
 * among n tuples) merely drops a tuple, which keeps the test valid.
 */
#ifndef WM_DETECT_H
#define WM_DETECT_H

#include "key.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct wm_score {
    uint64_t tokens;       /* tokens given */
    uint64_t scored;       /* tuples scored (N) */
    double statistic;      /* S: kgw: green tuples (an integer); gumbel: sum of -ln(1 - r) */
    double z;              /* (S - N mean) / sqrt(N var), H0's per-tuple moments
                              (kgw: gamma, gamma (1 - gamma); gumbel: 1, 1); 0 when N = 0 */
    double p_value;        /* P(S >= s) under H0; may underflow to 0 ... */
    double log10_p;        /* ... this never does; p to 1e-10 relative, <= 0 */
    bool watermarked;      /* p_value < alpha (decided on log10_p); always false
                              with WM_NO_DEDUP, whose p-value is not valid */
} wm_score;

/* Flags of wm_detect, wm_detect_window and wm_corpus_new; any other bit is
 * WM_ERR_ARG. */
#define WM_NO_DEDUP 1u /* score repeated tuples again (p-value not valid, no verdict) */

/* Score one token sequence.  n_prompt leading tokens are prompt (0: none).
 * Fewer than h + 1 tokens gives N = 0, p = 1, WM_OK.  alpha in (0,1).
 * Allocates O(n) temporary memory.  Thread-safe. */
WM_API WM_NODISCARD wm_status wm_detect(const wm_watermark *wm, const wm_token *tokens, size_t n,
                           size_t n_prompt, unsigned flags, double alpha, wm_score *out);

/* Best-scoring span of a long text, for when only part was watermarked.  Scans
 * windows of N_w consecutive scored tuples, for N_w on a geometric grid
 * (ratio 1.25, from min(16, N) to N) at every offset, and reports the one with
 * the smallest p (for a fixed N_w: the largest statistic).  score.p_value is that p multiplied by the number
 * of windows examined (Bonferroni, capped at 1), so it stays a valid p-value
 * after the search; unlike the reference WinMax z-score.  score.z, statistic
 * and scored describe the best window; [begin, end) are its token indices. */
typedef struct wm_window {
    wm_score score;
    size_t begin, end;
    uint64_t n_tests;
} wm_window;

WM_API WM_NODISCARD wm_status wm_detect_window(const wm_watermark *wm, const wm_token *tokens, size_t n,
                                  size_t n_prompt, unsigned flags, double alpha,
                                  wm_window *out);

/* ---- corpus mode -------------------------------------------------------- */

/* A set of contexts (their seeds), e.g. from the watermarked outputs a suspect
 * model may have trained on.  8 bytes per distinct context at load >= 0.5.
 * Not thread-safe while being filled; read-only use afterwards is. */
typedef struct wm_ctxset wm_ctxset;

WM_API WM_NODISCARD wm_status wm_ctxset_new(wm_ctxset **out, const wm_watermark *wm);
WM_API WM_NODISCARD wm_status wm_ctxset_add(wm_ctxset *set, const wm_token *tokens, size_t n);
/* A copy of src (same watermark) into *out.  WM_ERR_NOMEM. */
WM_API WM_NODISCARD wm_status wm_ctxset_copy(wm_ctxset **out, const wm_ctxset *src);
/* Empty the set, keeping its memory (e.g. wm_select's `used` at each new
 * sequence). */
WM_API WM_NODISCARD wm_status wm_ctxset_clear(wm_ctxset *set);
/* Number of distinct contexts, into *out. */
WM_API WM_NODISCARD wm_status wm_ctxset_size(const wm_ctxset *set, uint64_t *out);
WM_API void wm_ctxset_free(wm_ctxset *set);

/* Streaming accumulator over a whole corpus: each distinct (context, token)
 * tuple is scored once across all documents added.  Memory: one 8-byte slot
 * per distinct tuple at a load factor kept in [0.5, 0.8], i.e. 10 to 16 bytes
 * per unique tuple (a resize briefly holds both tables).  One thread at a time
 * per corpus; borrows wm (and the filter), which must outlive it. */
typedef struct wm_corpus wm_corpus;

WM_API WM_NODISCARD wm_status wm_corpus_new(wm_corpus **out, const wm_watermark *wm, unsigned flags);
/* Score only tuples whose context is in `filter` (NULL: all).  Call before the
 * first wm_corpus_add. */
WM_API WM_NODISCARD wm_status wm_corpus_set_filter(wm_corpus *c, const wm_ctxset *filter);
WM_API WM_NODISCARD wm_status wm_corpus_add(wm_corpus *c, const wm_token *tokens, size_t n,
                               size_t n_prompt);
/* One document in parts, e.g. a large file tokenized by wm_encode_stream:
 * the parts' tuples, those across part boundaries included, count exactly
 * as one wm_corpus_add of the concatenation with no prompt.  last = true
 * ends the document (it may come with n = 0).  The document's last h
 * tokens are kept between parts.  wm_corpus_add while a document is open
 * is WM_ERR_ARG. */
WM_API WM_NODISCARD wm_status wm_corpus_add_part(wm_corpus *c, const wm_token *tokens, size_t n, bool last);
WM_API WM_NODISCARD wm_status wm_corpus_score(const wm_corpus *c, double alpha, wm_score *out);
/* Bytes held by the corpus (tables included). */
WM_API WM_NODISCARD wm_status wm_corpus_memory(const wm_corpus *c, size_t *out);
WM_API void wm_corpus_free(wm_corpus *c);

/* ---- statistics ---------------------------------------------------------- */

/* log10 P(X >= k) for X ~ Binomial(n, p), 0 <= p <= 1: exact (incomplete beta
 * by continued fraction around Loader's saddle-point pmf), never rounded to
 * -inf unless the probability is exactly 0 (k > n, or p = 0 < k).  Pure. */
WM_API double wm_binom_log10_sf(uint64_t n, uint64_t k, double p);

/* log10 Q(a, x) = log10 P(X >= x) for X ~ Gamma(a, 1), a > 0 (regularised
 * upper incomplete gamma): continued fraction (x > a + 1) or series around
 * Loader's saddle-point Poisson pmf, relative accuracy ~1e-12 in the log,
 * never -inf for finite x.  x <= 0 gives 0; NaN for a <= 0 or NaN input.
 * Pure. */
WM_API double wm_gamma_log10_sf(double a, double x);

#ifdef __cplusplus
}
#endif
#endif
