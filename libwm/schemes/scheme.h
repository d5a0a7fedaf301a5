/* The scheme seam: what a watermarking scheme is to the rest of libwm.
 * Internal.
 *
 * A scheme turns a context seed (seeding/seed.c) into a change of sampling
 * and turns one scored (seed, token) tuple into a contribution to a test
 * statistic whose null distribution it knows exactly.  Everything else (key
 * files, seeding, the prompt rule, dedup, windows, corpora, the CLI) is
 * shared.  Schemes are method tables found by name in registry.c, as
 * SQLite's VFSes and zstd's strategies are.
 *
 * Adding a scheme: one file here defining a const wm__scheme, one line in
 * registry.c, its known-answer and null tests.  Its parameters are doubles
 * in wm_params (a new one is a new wm_params field and a WM__PARAM_FIELDS
 * line); the key file stores them by the names given here. */
#ifndef WM_SCHEME_H
#define WM_SCHEME_H

#include "wm.h"

#include <stddef.h>

struct wm_watermark;

#define WM__MAX_SCHEME_PARAMS 3
/* Tuples scored per score_many call (SIMD across tuples). */
#define WM_SCORE_BATCH 16

/* One parameter: a double field of wm_params, stored in the key file as
 * "name value". */
typedef struct wm__scheme_param {
    const char *name;   /* key-file field and wm_params member */
    size_t offset;      /* offsetof(wm_params, member) */
    double (*quantise)(double v); /* the value a key stores; NULL: v itself */
    int (*valid)(double v);       /* of a stored (quantised) value */
    const char *domain;           /* what valid accepts, for error messages */
    int optional;                 /* 0 may be left out of a key file, and then is:
                                     keys made before the parameter existed keep
                                     their files and ids */
    double dflt;                  /* wm_params_init's value */
} wm__scheme_param;

typedef struct wm__scheme {
    const char *name;
    unsigned n_params;
    wm__scheme_param param[WM__MAX_SCHEME_PARAMS];
    uint32_t default_h;           /* wm_params_init's context width (lefthash) */

    /* Derive the scheme's sub-keys and tables into wm (wm->param is set). */
    void (*prepare)(struct wm_watermark *wm, const unsigned char secret[32]);

    /* Embedding: a reweighting scheme sets both bias functions, a selecting
     * one sets select; the others are NULL. */
    void (*bias_row)(const struct wm_watermark *wm, uint64_t seed, void *logits, wm_dtype dtype);
    void (*bias_candidates)(const struct wm_watermark *wm, uint64_t seed, size_t n, const wm_token *ids,
                            size_t ids_stride, float *logits, size_t logits_stride);
    /* Index of the chosen candidate among n (weights >= 0, one > 0). */
    size_t (*select)(const struct wm_watermark *wm, uint64_t seed, size_t n, const wm_token *ids,
                     size_t ids_stride, const float *w, size_t w_stride);
    /* Selection is deterministic given the seed, so a repeated seed would
     * repeat the choice: such positions are sampled normally and never
     * scored (within one document). */
    int seed_once;

    /* Detection: contributions of n <= WM_SCORE_BATCH tuples (ids valid). */
    void (*score_many)(const struct wm_watermark *wm, const uint64_t *seed, const wm_token *tok, size_t n,
                       double *out);
    /* ln P(S >= stat) under H0 for N scored tuples; exact, never -inf
     * unless the probability is 0. */
    double (*log_sf)(const struct wm_watermark *wm, uint64_t n, double stat);
    /* Mean and variance of one tuple's contribution under H0 (for z). */
    double mean, var; /* used when moments is NULL */
    void (*moments)(const struct wm_watermark *wm, double *mean, double *var);
    /* ln of an e-value after n tuples with statistic stat, for a fixed
     * alternative of strength eps in (0, 1): a likelihood ratio whose
     * expectation under H0 is at most 1 after every tuple, so that its
     * product over tuples is a test supermartingale (the sequential audit,
     * detect/audit.c). */
    double (*log_e)(const struct wm_watermark *wm, double eps, uint64_t n, double stat);
    /* Contributions are exactly 0 or 1, 1 with probability `mean` under H0
     * (what the weighted reading test needs: detect/read.c). */
    int binary;
} wm__scheme;

/* registry.c: the scheme called `name`, NULL if none. */
const wm__scheme *wm__scheme_find(const char *name);

/* The double fields of wm_params a scheme may own (a field a scheme does
 * not own must be 0). */
#define WM__PARAM_FIELDS(X) X(gamma) X(delta) X(account_delta)

#endif
