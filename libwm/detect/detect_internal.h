/* Detection internals shared by detect/: the walk over a document's scored
 * tuples (scan.c) that per-text detection, windows and corpora build on. */
#ifndef WM_DETECT_INTERNAL_H
#define WM_DETECT_INTERNAL_H

#include "internal.h"

static inline double wm__gamma_of(const wm_watermark *wm) { return (double)wm->gamma_k / WM_GAMMA_ONE; }
static inline int wm__valid_alpha(double alpha) { return alpha > 0 && alpha < 1; }

/* Key of a context seed in a context set (never 0). */
static inline uint64_t wm__ctx_key(uint64_t seed)
{
    uint64_t k = wm__mix64(seed + 0x9e3779b97f4a7c15ULL);
    return k ? k : 1;
}

/* Calls visit(arg, green, token index) for every scored tuple (first
 * occurrences only unless WM_NO_DEDUP).  Returns WM_ERR_NOMEM or WM_OK. */
typedef void (*visit_fn)(void *arg, int green, size_t i);

/* Scores document t[0..n): prompt tuples into `prompt` first (see detect.h
 * for the rule), then visit(arg, green, i) for every scored tuple in text
 * order (`seen`: the dedup set).  from > 0: t[0..from) is the tail of an
 * earlier part of the same document, context only.  filter: score only
 * contexts in it. */
wm_status scan_doc_at(const wm_watermark *wm, const wm_token *t, size_t n, size_t n_prompt, size_t from,
                      unsigned flags, wm__u64set *seen, wm__u64set *prompt, const wm__u64set *filter,
                      visit_fn visit, void *arg);
wm_status scan_doc(const wm_watermark *wm, const wm_token *t, size_t n, size_t n_prompt, unsigned flags,
                   wm__u64set *seen, wm__u64set *prompt, const wm__u64set *filter, visit_fn visit, void *arg);
/* Without dedup the p-value is not valid, so there is no verdict. */
void no_dedup_verdict(unsigned flags, wm_score *s);

/* Both per-document sets: one when deduplicating (prompt tuples then count
 * as already seen), two without. */
typedef struct doc_sets { wm__u64set seen, prompt; } doc_sets;
wm_status doc_sets_init(doc_sets *d, unsigned flags, size_t n, size_t n_prompt);
wm__u64set *doc_sets_prompt(doc_sets *d, unsigned flags);
void doc_sets_free(doc_sets *d);

/* Arguments common to wm_detect and wm_detect_window. */
wm_status check_detect_args(const wm_watermark *wm, const wm_token *t, size_t n, unsigned flags, double alpha,
                            const void *out);

typedef struct counts { uint64_t scored, green; } counts;
void count_visit(void *arg, int green, size_t i);

#endif
