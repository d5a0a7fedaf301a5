/* Detection internals shared by detect/: the walk over a document's scored
 * tuples (scan.c) that per-text detection, windows and corpora build on. */
#ifndef WM_DETECT_INTERNAL_H
#define WM_DETECT_INTERNAL_H

#include "internal.h"

static inline int wm__valid_alpha(double alpha) { return alpha > 0 && alpha < 1; }

/* Key of a context seed in a context set (never 0). */
static inline uint64_t wm__ctx_key(uint64_t seed)
{
    uint64_t k = wm__mix64(seed + 0x9e3779b97f4a7c15ULL);
    return k ? k : 1;
}

/* Called for every scored tuple, in text order: its contribution to the
 * statistic, its token index and the tuple itself. */
typedef void (*visit_fn)(void *arg, double score, size_t i, uint64_t seed, wm_token tok);

/* The sets one scan uses.  seen: the dedup set (unused with WM_NO_DEDUP).
 * prompt: where the prompt's tuples go, `seen` itself when deduplicating
 * one document.  seeds: the document's context seeds so far, for schemes
 * that score a seed once per document (NULL otherwise).  filter: score only
 * contexts in it (NULL: all). */
typedef struct scan_sets {
    wm__u64set *seen, *prompt, *seeds;
    const wm__u64set *filter;
} scan_sets;

/* Scores document t[0..n): prompt tuples into sets->prompt first (see
 * detect.h for the rule), then visit(arg, score, i) for every scored tuple.
 * from > 0: t[0..from) is the tail of an earlier part of the same document,
 * context only (no prompt then).  Returns WM_ERR_NOMEM or WM_OK. */
wm_status scan_doc_at(const wm_watermark *wm, const wm_token *t, size_t n, size_t n_prompt, size_t from,
                      unsigned flags, const scan_sets *sets, visit_fn visit, void *arg);
/* Tuples waiting for their scores, computed WM_SCORE_BATCH at a time
 * (SIMD across tuples); visits happen in the order added. */
typedef struct pending {
    uint64_t seed[WM_SCORE_BATCH];
    wm_token tok[WM_SCORE_BATCH];
    size_t pos[WM_SCORE_BATCH];
    size_t n;
} pending;
/* Scores the pending tuples, visits each, empties pd. */
void pending_flush(const wm_watermark *wm, pending *pd, visit_fn visit, void *arg);

/* Empty a per-document set; one grown by a huge document is given back
 * when a small one can be had.  Cannot fail: the set is empty after it. */
void reset_doc_set(wm__u64set *s);

/* Without dedup the p-value is not valid, so there is no verdict. */
void no_dedup_verdict(unsigned flags, wm_score *s);

/* The per-document sets of wm_detect and wm_detect_window. */
typedef struct doc_sets { wm__u64set seen, prompt, seeds; scan_sets sets; } doc_sets;
wm_status doc_sets_init(doc_sets *d, const wm_watermark *wm, unsigned flags, size_t n, size_t n_prompt);
void doc_sets_free(doc_sets *d);

/* Arguments common to wm_detect and wm_detect_window. */
wm_status check_detect_args(const wm_watermark *wm, const wm_token *t, size_t n, unsigned flags, double alpha,
                            const void *out);

/* audit.c: ln of the audit's mixture e-value at (n, stat); the report of
 * wm_corpus_audit from the corpus's score and its largest ln e so far. */
double wm__audit_log_e(const wm_watermark *wm, uint64_t n, double stat);
void wm__audit_fill(const wm_watermark *wm, const wm_score *fixed, double log_e_max, double alpha, double target,
                    wm_audit *out);

/* attribute.c: attribution over an account tally (tally[j][a]: distinct
 * scored tuples at position j in part a, or their summed weights); sets
 * every field of out but tuples. */
/* The arguments of wm_corpus_attribute and wm_reader_attribute, valid
 * (sizes known, no account 0, alpha in (0,1))? */
int wm__attribute_args(const uint64_t *accounts, size_t n, double alpha, const wm_account_score *top, size_t k,
                       const wm_attribution *out);
wm_status wm__attribute(const wm_watermark *wm, const double tally[WM_ACCOUNT_POSITIONS][WM_ACCOUNT_SYMBOLS],
                        const uint64_t *accounts, size_t n, double alpha, wm_account_score *top, size_t k,
                        wm_attribution *out);
/* The tests' view: ln P(D >= x) under the law of `tally`, D the statistic
 * minus the sum of each position's smallest count; *exact = 0 when it is
 * Chernoff's bound. */
double wm__attribution_log_tail(const double tally[WM_ACCOUNT_POSITIONS][WM_ACCOUNT_SYMBOLS], double x,
                                int *exact);

/* The exact, order-free sum of scores.  Every score of every scheme is a
 * non-negative multiple of 2^-84 below 2^5 (kgw: 0 or 1; gumbel: -ln(1 -
 * u 2^-32), whose smallest non-zero value is above 2^-32, so its last bit
 * is worth 2^-84 or more, and whose largest is 32 ln 2), so it is held
 * exactly as an integer count of 2^-84 in 128 bits: any order of addition,
 * on any machine, gives the same total, which is rounded once, to nearest,
 * when read (wm__fixed_double).  A sum overflows past 2^44 (about 1.7e13
 * tuples at gumbel's mean score); a score that is not such a multiple, or
 * an overflow, sets `bad` and the totals are then refused (WM_ERR_LIMIT). */
#define WM__FIXED_FRAC 84
__extension__ typedef unsigned __int128 wm__u128;
typedef struct counts { uint64_t scored; wm__u128 fx; int bad; } counts;
void count_visit(void *arg, double score, size_t i, uint64_t seed, wm_token tok);
/* score as a count of 2^-84 into *out: 0, or -1 when it is not one below 2^89. */
int wm__fixed_of(double score, wm__u128 *out);
/* x 2^-84 rounded to the nearest double (ties to even), the same on every machine. */
double wm__fixed_double(wm__u128 x);
static inline double counts_stat(const counts *c) { return wm__fixed_double(c->fx); }
/* a += b, setting *bad on overflow. */
static inline void fixed_add(wm__u128 *a, wm__u128 b, int *bad)
{
    wm__u128 s = *a + b;
    if (s < b) *bad = 1;
    *a = s;
}

#endif
