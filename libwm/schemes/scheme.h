/* The scheme seam: what a watermarking scheme is to the rest of libwm.
 * Internal.
 *
 * A scheme turns a context seed (seeding/seed.c) into a change of sampling
 * and turns one scored (seed, token) tuple into a contribution to a test
 * statistic whose null distribution it knows exactly.  Everything else (key
 * files, seeding, the prompt rule, dedup, windows, corpora, the CLI) is
 * shared.  Schemes are method tables found by name in registry.c, as
 * SQLite's VFSes and zstd's strategies are; an account layer (schemes/
 * account.c) is a second kind of table a scheme may carry.
 *
 * The core knows a scheme only through its table: what it can do is in
 * `caps` (never in its name), and its sub-keys and tables live in its own
 * state, state_bytes of them that the core allocates inside the watermark's
 * guarded block (libsodium's *_statebytes()), wipes and frees; prepare fills
 * them, free releases anything prepare took beyond them.  Each table leads
 * with a version and its size (SQLite's iVersion): registry.c refuses a
 * table of a version or size this build does not know.
 *
 * Adding a scheme: docs/ARCHITECTURE.md, "How to add a scheme". */
#ifndef WM_SCHEME_H
#define WM_SCHEME_H

#include "wm.h"
#include "wm/advanced.h" /* wm_kernel_params */

#include <stddef.h>

struct wm_watermark;
struct wm__fields; /* internal.h: a keyed field list (schemes/fields.c) */

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

/* What a scheme can do; the core asks these, never the scheme's name.  The
 * same bits as the public WM_CAP_* (key.h, wm_scheme_caps). */
enum {
    WM__CAP_BINARY = WM_CAP_BINARY,     /* contributions are exactly 0 or 1, 1 with probability `mean`
                                     under H0 (what the weighted reading test needs: detect/read.c) */
    WM__CAP_BIASES = WM_CAP_BIASES,     /* reweights logits: bias_row and bias_candidates */
    WM__CAP_SELECTS = WM_CAP_SELECTS,    /* chooses the token: select */
    WM__CAP_GREEN_LIST = WM_CAP_GREEN_LIST, /* a contribution of 1 is "green" (wm_is_green); implies BINARY */
    WM__CAP_SEED_ONCE = WM_CAP_SEED_ONCE,  /* selection is deterministic given the seed, so a repeated
                                     seed would repeat the choice: such positions are sampled
                                     normally and never scored (within one document) */
};

/* The account layer's codeword of an account: 2 bits a position. */
#define WM__CODE_BYTES (WM_ACCOUNT_POSITIONS / 4)
static inline unsigned wm__account_symbol(const unsigned char *code, unsigned j)
{
    return (code[j >> 2] >> (2 * (j & 3))) & 3u;
}

/* 2: `fields`, the layer's part as a keyed field list. */
#define WM__ACCOUNT_LAYER_VERSION 2

/* An account layer: which account's outputs these are, embedded on top of
 * a scheme's watermark (schemes/account.c has the one there is).  Its
 * methods read their state at wm->account_state. */
typedef struct wm__account_layer {
    int version;                  /* WM__ACCOUNT_LAYER_VERSION */
    size_t size;                  /* sizeof(wm__account_layer) */
    size_t state_bytes;
    /* Derive the layer's sub-keys into state; delta > 0 is its strength.
     * Fails as a scheme's prepare does. */
    wm_status (*prepare)(const struct wm_watermark *wm, void *state, const unsigned char secret[32], double delta);
    void (*free)(void *state);    /* NULL: the state holds nothing but its bytes */
    /* Codewords of n accounts, WM__CODE_BYTES each (wm__account_symbol). */
    void (*codes)(const struct wm_watermark *wm, const uint64_t *account, size_t n, unsigned char *code);
    /* The codeword position seed reads, and token t's part after seed. */
    unsigned (*pos)(const struct wm_watermark *wm, uint64_t seed);
    unsigned (*part)(const struct wm_watermark *wm, uint64_t seed, wm_token t);
    /* Add the layer's delta to the tokens of part c: a row, or candidates. */
    void (*bias_row)(const struct wm_watermark *wm, uint64_t seed, unsigned c, void *logits, wm_dtype dtype);
    void (*bias_candidates)(const struct wm_watermark *wm, uint64_t seed, unsigned c, size_t n,
                            const wm_token *ids, size_t ids_stride, float *logits, size_t logits_stride);
    /* Its fields of wm_kernel_params (account_key, account_delta). */
    void (*kernel_params)(const struct wm_watermark *wm, wm_kernel_params *out);
    /* Part c as a keyed field list whose wm__bias_fields_row is bias_row's
     * change, bit for bit (NULL: it is none): what a scheme's bias_row_with
     * folds into its own pass. */
    void (*fields)(const struct wm_watermark *wm, unsigned c, struct wm__fields *out);
} wm__account_layer;

/* 2: bias_row_with. */
#define WM__SCHEME_VERSION 2

typedef struct wm__scheme {
    int version;                  /* WM__SCHEME_VERSION */
    size_t size;                  /* sizeof(wm__scheme) */
    const char *name;
    unsigned caps;                /* WM__CAP_* */
    unsigned n_params;
    wm__scheme_param param[WM__MAX_SCHEME_PARAMS];
    uint32_t default_h;           /* wm_params_init's context width (lefthash) */

    /* Its state: state_bytes at wm->scheme_state, zeroed, then prepare
     * derives the scheme's sub-keys and tables into it (wm->param, n_vocab
     * and the kernels are set); free releases what prepare took beyond
     * them (NULL: nothing; it must accept a state prepare failed on).  The
     * core wipes the bytes either way.  A prepare that fails (WM_ERR_NOMEM,
     * ...) fails wm_watermark_new: no watermark with half a state. */
    size_t state_bytes;
    wm_status (*prepare)(const struct wm_watermark *wm, void *state, const unsigned char secret[32]);
    void (*free)(void *state);

    /* The account layer the scheme carries (NULL: none) and the index of the
     * parameter that is its strength: on when that parameter is > 0. */
    const wm__account_layer *account;
    unsigned account_param;

    /* Embedding (WM__CAP_BIASES): the logits of a row, or of candidates. */
    void (*bias_row)(const struct wm_watermark *wm, uint64_t seed, void *logits, wm_dtype dtype);
    void (*bias_candidates)(const struct wm_watermark *wm, uint64_t seed, size_t n, const wm_token *ids,
                            size_t ids_stride, float *logits, size_t logits_stride);
    /* Optional: bias_row and then an account layer's field list `extra` in
     * one pass over the row, equal bit for bit to bias_row followed by
     * wm__bias_fields_row(extra) (NULL: the core runs the account layer's
     * bias_row after bias_row, a second sweep). */
    void (*bias_row_with)(const struct wm_watermark *wm, uint64_t seed, const struct wm__fields *extra,
                          void *logits, wm_dtype dtype);
    /* Its fields of wm_kernel_params (a scheme the torch kernel can run;
     * NULL: wm_kernel_params_get is WM_ERR_UNSUPPORTED). */
    void (*kernel_params)(const struct wm_watermark *wm, wm_kernel_params *out);
    /* Embedding (WM__CAP_SELECTS): index of the chosen candidate among n
     * (weights >= 0, one > 0). */
    size_t (*select)(const struct wm_watermark *wm, uint64_t seed, size_t n, const wm_token *ids,
                     size_t ids_stride, const float *w, size_t w_stride);

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
} wm__scheme;

static inline int wm__has(const wm__scheme *sc, unsigned cap) { return (sc->caps & cap) == cap; }

/* registry.c: the scheme called `name`, NULL if none (or if its table is
 * of a version, size or shape this build does not know). */
const wm__scheme *wm__scheme_find(const char *name);
/* The scheme of wm_params.scheme = NULL (key.h) and of format-1 key
 * files, which predate the scheme line. */
#define WM__DEFAULT_SCHEME "kgw"

/* The double fields of wm_params a scheme may own (a field a scheme does
 * not own must be 0). */
#define WM__PARAM_FIELDS(X) X(gamma) X(delta) X(account_delta)

#endif
