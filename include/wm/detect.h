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
    size_t size;           /* sizeof(wm_score): common.h, "Versioned structs" */
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

/* Detection flags (common.h, "Flags": bits 0x000000ff).  wm_detect and
 * wm_detect_window take WM_NO_DEDUP, wm_corpus_new WM_NO_DEDUP and
 * WM_ACCOUNTS, wm_reader_new WM_ACCOUNTS (with WM_READ_WEIGHTED); any
 * other bit is WM_ERR_ARG. */
#define WM_NO_DEDUP 0x01u /* score repeated tuples again (p-value not valid, no verdict) */
#define WM_ACCOUNTS 0x02u /* wm_corpus_new, wm_reader_new: tally the account layer (attribution) */

/* Score one token sequence.  n_prompt leading tokens are prompt (0: none).
 * Fewer than h + 1 tokens gives N = 0, p = 1, WM_OK.  alpha in (0,1); any
 * other alpha, NaN and infinities included, is WM_ERR_ARG (as for every
 * alpha and target below).  Allocates O(n) temporary memory.  Thread-safe. */
/* @return WM_OK; WM_ERR_ARG (NULL wm or out, out->size unknown, tokens NULL with n > 0, a flag
 * other than WM_NO_DEDUP, alpha outside (0,1)); WM_ERR_TOKEN (a token outside the vocabulary);
 * WM_ERR_LIMIT (a gumbel score outside the exact sum's range: no p-value from a wrong sum);
 * WM_ERR_NOMEM.  OUT: *out. */
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
    size_t size;           /* sizeof(wm_window); score's size is set by the library */
    wm_score score;
    size_t begin, end;
    uint64_t n_tests;
} wm_window;

/* Arguments and errors as wm_detect's (alpha outside (0,1) or NaN: WM_ERR_ARG). */
/* @return WM_OK; WM_ERR_ARG (as wm_detect); WM_ERR_TOKEN; WM_ERR_SIZE (n > UINT32_MAX);
 * WM_ERR_NOMEM.  OUT: *out.  Thread-safe. */
WM_API WM_NODISCARD wm_status wm_detect_window(const wm_watermark *wm, const wm_token *tokens, size_t n,
                                  size_t n_prompt, unsigned flags, double alpha,
                                  wm_window *out);

/* What `token` after ctx adds to the scheme's test statistic when it is
 * scored (kgw: 1 if green, else 0; gumbel: -ln(1 - r) with r quantised as
 * detect.h says).  n_ctx < h: *score = 0 and WM_OK.  O(1).  Thread-safe. */
/* @return WM_OK; WM_ERR_ARG (NULL wm or score, NULL ctx with n_ctx > 0); WM_ERR_TOKEN (a context
 * token or token outside the vocabulary).  OUT: *score. */
WM_API WM_NODISCARD wm_status wm_tuple_score(const wm_watermark *wm, const wm_token *ctx, size_t n_ctx,
                                             wm_token token, double *score);

/* ---- corpus mode -------------------------------------------------------- */

/* Streaming accumulator over a whole corpus: each distinct (context, token)
 * tuple is scored once across all documents added.  Memory: one 8-byte slot
 * per distinct tuple at a load factor kept in [0.5, 0.8], i.e. 10 to 16 bytes
 * per unique tuple (a resize briefly holds both tables).  One thread at a time
 * per corpus; borrows wm (and the filter), which must outlive it. */
typedef struct wm_corpus wm_corpus;

/* @return WM_OK; WM_ERR_ARG (NULL out or wm, a bit outside WM_NO_DEDUP | WM_ACCOUNTS, both
 * together); WM_ERR_UNSUPPORTED (WM_ACCOUNTS with a key without an account layer); WM_ERR_NOMEM;
 * *out NULL on failure.  OUT: *out, owned by the caller (wm_corpus_free).  Thread-safe. */
WM_API WM_NODISCARD wm_status wm_corpus_new(wm_corpus **out, const wm_watermark *wm, unsigned flags);
/* Score only tuples whose context is in `filter` (NULL: all).  Call before the
 * first wm_corpus_add. */
/* @return WM_OK; WM_ERR_ARG (NULL c, a document already added, a filter of another watermark).
 * Not thread-safe: one thread at a time per corpus. */
WM_API WM_NODISCARD wm_status wm_corpus_set_filter(wm_corpus *c, const wm_ctxset *filter);
/* @return WM_OK; WM_ERR_ARG (NULL c, NULL tokens with n > 0, a document open by
 * wm_corpus_add_part); WM_ERR_TOKEN (a token outside the vocabulary: nothing is added);
 * WM_ERR_NOMEM.  Not thread-safe: one thread at a time per corpus. */
WM_API WM_NODISCARD wm_status wm_corpus_add(wm_corpus *c, const wm_token *tokens, size_t n,
                               size_t n_prompt);
/* One document in parts, e.g. a large file tokenized by wm_encode_stream:
 * the parts' tuples, those across part boundaries included, count exactly
 * as one wm_corpus_add of the concatenation with no prompt.  last = true
 * ends the document (it may come with n = 0).  The document's last h
 * tokens are kept between parts.  wm_corpus_add while a document is open
 * is WM_ERR_ARG. */
/* @return WM_OK; WM_ERR_ARG (NULL c, NULL tokens with n > 0); WM_ERR_TOKEN (nothing is added);
 * WM_ERR_NOMEM.  Not thread-safe: one thread at a time per corpus. */
WM_API WM_NODISCARD wm_status wm_corpus_add_part(wm_corpus *c, const wm_token *tokens, size_t n, bool last);
/* The test over everything added.  alpha in (0,1), else (NaN, infinities)
 * WM_ERR_ARG. */
/* @return WM_OK; WM_ERR_ARG (NULL c or out, out->size unknown, alpha outside (0,1), a
 * WM_CORPUS_MAP corpus); WM_ERR_LIMIT (the exact gumbel sum overflowed or met an
 * unrepresentable score).  Pure; thread-safe with other readers of c.  OUT: *out. */
WM_API WM_NODISCARD wm_status wm_corpus_score(const wm_corpus *c, double alpha, wm_score *out);
/* ---- sequential audit ------------------------------------------------------
 *
 * Against a closed suspect the analyst pays per query and wants to stop as
 * soon as the evidence suffices, or give up when it will not.  A p-value
 * read after every batch and acted on is not valid if it is the fixed-n
 * test's: looking until it dips below alpha inflates the error.  The audit's
 * p-value is: the corpus keeps a test supermartingale over its distinct
 * tuples in arrival order (under H0 each new tuple's score is independent
 * of the past, detect.h), a mixture of the scheme's likelihood ratios over
 * 20 alternatives of strength 2^-1 .. 2^-20, evaluated at the end of every
 * document; p = 1 / its largest value so far, and by Ville's inequality
 * P(p ever <= alpha) <= alpha whatever the stopping rule.  The price: a
 * smaller log10 p than the fixed-n test on the same tuples (about
 * log10 20 plus half the log10 of the tuples; measured in
 * docs/RESULTS.md#radioactivity-power-reading-mode-the-weighted-test-and-the-sequential-audit). */
typedef struct wm_audit {
    size_t size;          /* sizeof(wm_audit); fixed's size is set by the library */
    wm_score fixed;       /* wm_corpus_score's test: exact only at a size fixed in advance */
    double log10_p;       /* anytime-valid (<= 0), never increases between looks */
    bool watermarked;     /* log10_p < log10 alpha */
    double excess;        /* mean score minus its null mean (kgw: green rate - gamma) */
    double excess_lo, excess_hi; /* kgw: 1 - alpha confidence sequence for it (Robbins'
                                    mixture, valid at any stopping time); NaN otherwise */
    double more_tuples;   /* further distinct tuples until the anytime p reaches target if
                             the excess holds (expected log e-value; INFINITY if excess <= 0) */
    double more_tokens;   /* the same in suspect tokens, at the tokens per tuple seen so far
                             (an underestimate once dedup saturates) */
    double more_tokens_fixed; /* the same for the fixed-n test planned in advance */
} wm_audit;

/* The audit of everything added so far.  alpha, target in (0, 1), else
 * (NaN, infinities) WM_ERR_ARG; a corpus
 * made with WM_NO_DEDUP is WM_ERR_ARG (its tuples are not independent).
 * Pure; thread-safe with other readers of c. */
/* @return WM_OK; WM_ERR_ARG (as above, out->size unknown, a WM_CORPUS_MAP corpus);
 * WM_ERR_LIMIT (as wm_corpus_score).  OUT: *out. */
WM_API WM_NODISCARD wm_status wm_corpus_audit(const wm_corpus *c, double alpha, double target, wm_audit *out);
/* ---- attribution: which accounts fed the corpus ----------------------------
 *
 * For keys with an account layer (key.h, embed.h "Accounts").  A corpus made
 * with WM_ACCOUNTS also counts, over its distinct scored tuples (the same
 * tuples as the base test: dedup, prompt rule and filter included), how
 * many fall in each of WM_ACCOUNT_POSITIONS x WM_ACCOUNT_SYMBOLS cells
 * (position read by the tuple's seed, part of the vocabulary its token is
 * in): 8 KB per corpus, nothing per tuple.  Account u's statistic S_u is
 * the count of tuples in the part u's codeword names at their position.
 *
 * H0_u: the outputs of account u were not used (other accounts' may have
 * been, in any share, colluding or not).  u's codeword is a PRF of the key
 * and u only, so under H0_u it is independent of the data and of the tally,
 * and given the tally S_u has exactly the law of a uniformly random
 * codeword's statistic: the same for every account, computed once by
 * convolution.  p_u = P(S_u >= s_u) under it, exact, and never below 4^-256
 * (a codeword matches all 256 positions with that probability).  Over the n
 * accounts searched the family-wise p is n p_u (Bonferroni): P(any account
 * that contributed nothing is named) <= alpha.  When the tally's spread
 * makes the convolution too large (over 2^20 values, far beyond the
 * corpora of docs/ATTRIBUTION.md#measured-which-accounts-fed-the-student-examplesneuralattributepy),
 * the p-values are Chernoff's bound on the
 * same law instead, never below the exact ones (wm_attribution.exact). */
typedef struct wm_account_score {
    size_t size;           /* top[0].size = sizeof(wm_account_score) describes the array;
                              the library sets every written entry's */
    uint64_t account;
    double statistic;      /* S_u: tuples in the parts u's codeword names (a weighted
                              reader: their summed weights) */
    double log10_p;        /* P(S >= S_u) under H0_u, one account alone */
    double log10_p_family; /* min(0, log10_p + log10 n): valid over the whole list */
    bool named;            /* log10_p_family < log10 alpha */
} wm_account_score;

typedef struct wm_attribution {
    size_t size;           /* sizeof(wm_attribution): common.h, "Versioned structs" */
    uint64_t accounts;     /* n, the accounts searched */
    uint64_t tuples;       /* tuples tallied (a corpus's scored tuples, a reader's read ones) */
    uint64_t named;        /* accounts named at alpha, over the whole list */
    size_t n_top;          /* entries written to top: min(k, n) */
    double null_mean, null_sd; /* of S_u under H0_u, given the tally */
    bool exact;            /* true: exact p-values; false: Chernoff bounds (a weighted
                              reader, or a tally too spread to convolve) */
} wm_attribution;

/* Score n account ids (none 0; repeats are searched, and counted in n,
 * twice) against a corpus made with WM_ACCOUNTS, and write the k best,
 * by statistic (smaller id first on ties), into top (k entries; k may be
 * 0).  out: the summary.  Errors: WM_ERR_ARG (bad arguments, alpha outside
 * (0,1) or NaN, a corpus
 * without WM_ACCOUNTS, an id 0), WM_ERR_UNSUPPORTED (the key has no account
 * layer), WM_ERR_NOMEM.  Cost: the null law once (up to about a second at
 * the exact limit, milliseconds for the corpora of docs/ATTRIBUTION.md), then four PRF
 * calls and 64 lookups per account; memory up to 8 MB for the law, 16 bytes per top
 * entry, nothing per account.  Pure; thread-safe with other readers of c. */
/* @return WM_OK or one of the errors above.  OUT: top, *out (top's first out->n_top entries). */
WM_API WM_NODISCARD wm_status wm_corpus_attribute(const wm_corpus *c, const uint64_t *accounts, size_t n,
                                                  double alpha, wm_account_score *top, size_t k,
                                                  wm_attribution *out);

/* Bytes held by the corpus (tables included). */
/* @return WM_OK; WM_ERR_ARG (NULL c or out).  OUT: *out.  Thread-safe with other readers of c. */
WM_API WM_NODISCARD wm_status wm_corpus_memory(const wm_corpus *c, size_t *out);
/* NULL is a no-op.  Not thread-safe: no other thread may use c. */
WM_API void wm_corpus_free(wm_corpus *c);

/* ---- reading mode (open-weight suspects) ---------------------------------
 *
 * The provider's own watermarked outputs are fed to the suspect model
 * (teacher forcing) and the suspect's top-k predictions at each answer
 * position are scored as (context seed, predicted token) tuples, deduplicated
 * over the corpus (Sander et al. 2024, "reading mode").  The evidence is what
 * the suspect's weights predict, not what it happens to sample.
 *
 * H0: the suspect's weights are independent of the key (they never trained,
 * directly or not, on text watermarked with it).  The text read is NOT
 * independent of the key: it was generated with it, so the tokens that
 * followed a seed s tell of s's green list, and a model that merely copies
 * or continues in context would be flagged by a naive count.  Hence the rule:
 * a position is read only if its context seed occurs there for the first
 * time in the document (prompt included).  The text before it then contains
 * no token drawn under s, so, modelling the PRF as a random function, the
 * suspect's predictions there are independent of s's green list under H0
 * and each read tuple's score has exactly the scheme's null law (kgw:
 * Bernoulli(gamma)) given the document so far; within a document the scores
 * are therefore independent in text order, and dedup removes the repeats
 * across documents.  Across documents one coupling remains: document A's
 * prediction at seed s may depend, through A's text, on the green list of a
 * seed t that document B reads, while B's prediction at t depends on s's
 * list.  Its effect on the count is second order and is not bounded here;
 * the suite measures the null on the strongest clean reader there is (the
 * unwatermarked model that generated the text), reported in
 * docs/RESULTS.md#radioactivity-power-reading-mode-the-weighted-test-and-the-sequential-audit.
 * The other detection rules apply: answer positions only (i >= n_prompt,
 * and i > n_prompt when there is a prompt and h >= 1). */
typedef struct wm_reader wm_reader;

/* Flag of wm_reader_new: the weighted test.  Each read (seed, prediction)
 * tuple carries a weight from the caller, e.g. p_suspect(q | prefix) -
 * p_ref(q | prefix) where p_ref is the provider's own unwatermarked model:
 * how much more the suspect believes q than a model that never saw the key.
 * The weights of a tuple read at several positions (other documents) add
 * up to W(s, q), and S = sum of W over green tuples.  Under H0 the weights
 * are functions of the suspect, the reference and the text before each
 * read position, so, as above, the green bits are independent
 * Bernoulli(gamma) given them, and the p-value is Chernoff's bound on
 * P(sum W X >= S) (wm_wbinom_log10_bound): never below the exact tail, so
 * never anti-conservative, and looser than exact by a factor that grows
 * like the square root of the tuples' count.  green-list schemes only
 * (kgw); other schemes give WM_ERR_UNSUPPORTED: a stochastically smaller
 * score (gumbel's quantised r) would make the bound invalid for negative
 * weights. */
#define WM_READ_WEIGHTED 0x0100u /* reading-mode family (common.h, "Flags") */

/* flags: 0 or WM_READ_WEIGHTED, and WM_ACCOUNTS for wm_reader_attribute,
 * or WM_CORPUS_MAP for a cluster's map reader (wm/cluster.h; not weighted)
 * (any other bit is WM_ERR_ARG; WM_ACCOUNTS needs a key with an account
 * layer, else WM_ERR_UNSUPPORTED).  Memory: the
 * corpus-wide dedup set (10 to 16 bytes per distinct tuple read; weighted:
 * about 30) and one document's seeds.  One thread at a time per reader;
 * borrows wm. */
/* @return WM_OK; WM_ERR_ARG (NULL out or wm, a bit outside WM_READ_WEIGHTED | WM_ACCOUNTS | WM_CORPUS_MAP, the last with WM_READ_WEIGHTED);
 * WM_ERR_UNSUPPORTED (as above); WM_ERR_NOMEM; *out NULL on failure.  OUT: *out, owned by the
 * caller (wm_reader_free).  Thread-safe. */
WM_API WM_NODISCARD wm_status wm_reader_new(wm_reader **out, const wm_watermark *wm, unsigned flags);
/* "Not read": an entry of wm_reader_add's preds with no prediction (a
 * suspect that returned fewer than k usable candidates, or none at a
 * position).  Such an entry makes no tuple and its weight is ignored, so no
 * position is ever scored from a made-up token; a position whose row holds
 * only WM_TOKEN_NONE is not counted as read. */
#define WM_TOKEN_NONE ((wm_token)-1)

/* One document t[0..n) of watermarked text, n_prompt leading tokens of
 * prompt, and the suspect's predictions: row i of preds (k ids, any order,
 * preds[i * k .. i * k + k)) is what it predicts for position i given
 * t[0..i).  Every row is checked (ids < vocabulary size or WM_TOKEN_NONE,
 * else WM_ERR_TOKEN), also those of positions that are not read, which the
 * caller may fill with WM_TOKEN_NONE.  k >= 1; repeated ids in a row count once
 * (weighted: their weights add).  weights: NULL for a plain reader; for a
 * weighted one, n * k finite floats laid out as preds (else, a NaN or
 * infinite weight included, WM_ERR_ARG, and nothing is added). */
/* @return WM_OK; WM_ERR_ARG (NULL r, t or preds with n > 0, k = 0, weights given to a plain reader
 * or missing for a weighted one, a bad weight); WM_ERR_TOKEN; WM_ERR_NOMEM; on failure nothing is
 * added.  Not thread-safe: one thread at a time per reader. */
WM_API WM_NODISCARD wm_status wm_reader_add(wm_reader *r, const wm_token *t, size_t n, size_t n_prompt,
                                            const wm_token *preds, const float *weights, size_t k);
/* The test over all tuples read so far (wm_score as in wm_detect;
 * score.tokens: tokens of text given).  Plain: the exact binomial test.
 * Weighted: statistic = S, scored = distinct tuples, z = (S - gamma sum W)
 * / sqrt(gamma (1 - gamma) sum W^2), p = the Chernoff bound.  OUT
 * positions (may be NULL): the positions read.  Weighted: O(tuples) time
 * per iteration of the bound's minimiser (about 20).  alpha in (0,1), else
 * (NaN, infinities) WM_ERR_ARG. */
/* @return WM_OK; WM_ERR_ARG (NULL r or out, out->size unknown, alpha outside (0,1));
 * WM_ERR_LIMIT (plain gumbel reading: the exact sum overflowed).  Pure; thread-safe with
 * other readers of r.  OUT: *out, *positions. */
WM_API WM_NODISCARD wm_status wm_reader_score(const wm_reader *r, double alpha, wm_score *out,
                                              uint64_t *positions);
/* Attribution from reading (a reader made with WM_ACCOUNTS): as
 * wm_corpus_attribute, over the distinct (seed, prediction) tuples read,
 * each counted once (plain) or with its summed weight (weighted: S_u is
 * then the weight in u's parts, and the p-values are Chernoff's bound on
 * the same conditional law, never below exact).  H0_u: u's outputs were not
 * used to train the suspect.  The law is exact given the tally when the
 * text read is independent of u's codeword: read the provider's text
 * generated WITHOUT an account (WM_ACCOUNT_NONE), or at least not for u;
 * text generated for u tells of u's codeword, and a suspect that continues
 * it in context could point at u without having trained on it.  Errors as
 * wm_corpus_attribute (a reader without WM_ACCOUNTS: WM_ERR_ARG). */
/* @return WM_OK; WM_ERR_ARG (as wm_corpus_attribute, or a reader without WM_ACCOUNTS);
 * WM_ERR_NOMEM.  OUT: top, *out.  Thread-safe with other readers of r. */
WM_API WM_NODISCARD wm_status wm_reader_attribute(const wm_reader *r, const uint64_t *accounts, size_t n,
                                                  double alpha, wm_account_score *top, size_t k,
                                                  wm_attribution *out);
/* NULL is a no-op.  Not thread-safe: no other thread may use r. */
WM_API void wm_reader_free(wm_reader *r);

/* ---- statistics ---------------------------------------------------------- */

/* log10 P(X >= k) for X ~ Binomial(n, p), 0 <= p <= 1: exact (incomplete beta
 * by continued fraction around Loader's saddle-point pmf), never rounded to
 * -inf unless the probability is exactly 0 (k > n, or p = 0 < k).  NaN (the
 * refusal: it compares false with every threshold) for p NaN, infinite or
 * outside [0, 1].  Pure. */
/* @return the log10 tail, or NaN.  Thread-safe. */
WM_API double wm_binom_log10_sf(uint64_t n, uint64_t k, double p);

/* Upper bound on log10 P(sum w_i X_i >= s), X_i independent Bernoulli(p),
 * 0 < p < 1, weights of any sign, into *out: Chernoff's min over l >= 0 of
 * sum ln(1 - p + p e^(l w_i)) - l s, which bounds the tail at every l, so
 * an imprecise minimum is only looser; 0 when s <= p sum w.  WM_ERR_ARG,
 * with *out NaN (when out is not NULL), for out NULL, w NULL with n > 0, a
 * weight or s NaN or infinite, or p NaN or outside (0, 1): no p-value is
 * made up for them.  Pure. */
/* @return WM_OK; WM_ERR_ARG.  OUT: *out.  Thread-safe. */
WM_API WM_NODISCARD wm_status wm_wbinom_log10_bound(const double *w, size_t n, double s, double p,
                                                    double *out);

/* log10 Q(a, x) = log10 P(X >= x) for X ~ Gamma(a, 1), a > 0 (regularised
 * upper incomplete gamma): continued fraction (x > a + 1) or series around
 * Loader's saddle-point Poisson pmf, relative accuracy ~1e-12 in the log,
 * never -inf.  x <= 0 gives 0.  NaN (the refusal, as wm_binom_log10_sf's)
 * for a <= 0, or a or x NaN or infinite.  Pure. */
/* @return the log10 tail, or NaN.  Thread-safe. */
WM_API double wm_gamma_log10_sf(double a, double x);

#ifdef __cplusplus
}
#endif
#endif
