/* libwm internals shared by the library's own files and its tests.  Not
 * installed; nothing here is part of the ABI. */
#ifndef WM_INTERNAL_H
#define WM_INTERNAL_H

#include "wm.h"
#include "wm/advanced.h" /* the library implements these too */
#include "core/alloc.h"
#include "schemes/scheme.h"

#include <string.h>

/* A caller's versioned struct (common.h, "Versioned structs") of a size
 * this libwm knows.  One layout per struct so far. */
#define WM__SIZED(p, type) ((p)->size == sizeof(type))

/* One PRF call (SipHash-2-4 with 128-bit output over seed || block index)
 * yields 16 bytes = 128 / bits token fields. */
#define WM_BLOCK_BYTES 16

typedef void (*wm_fill_fn)(const unsigned char kg[16], uint64_t seed, uint64_t j0,
                           size_t n_blocks, unsigned char *out);
typedef void (*wm_prf_many_fn)(const unsigned char kg[16], const uint64_t *seed, const uint64_t *j,
                               size_t n, unsigned char *out);
typedef void (*wm_apply_fn)(const unsigned char *fields, size_t n_tok, unsigned bits,
                            uint32_t thresh, float delta, float *logits);
typedef void (*wm_widen_fn)(const void *src, wm_dtype dtype, size_t n, float *dst);
typedef void (*wm_narrow_fn)(const float *src, size_t n, wm_dtype dtype, void *dst);
/* fill + apply over n_tok logits whose first token is block j0's first. */
typedef void (*wm_bias_row_fn)(const unsigned char kg[16], uint64_t seed, uint64_t j0, size_t n_tok,
                               unsigned bits, uint32_t thresh, float delta, float *logits);

struct wm__fields;
/* Two keyed field lists of 2-bit fields over the same blocks (a's delta
 * added after g's, one load and one store per logit) across n_tok logits
 * whose first token is block j0's first.  round (WM_DTYPE_BF16 or F16)
 * rounds each logit to that dtype between the two adds, as a 16-bit row
 * biased by one list and then the other is; WM_DTYPE_F32 does not. */
typedef void (*wm_bias_row2_fn)(const struct wm__fields *g, const struct wm__fields *a, uint64_t seed,
                                uint64_t j0, size_t n_tok, wm_dtype round, float *logits);

/* A stored key (core/key.c). */
struct wm_key {
    unsigned char secret[32];
    const wm__scheme *scheme;
    double param[WM__MAX_SCHEME_PARAMS]; /* the scheme's, in its order; stored values */
    wm_seeding seeding;
    uint32_t h;
    uint32_t n_vocab;          /* 0: not recorded */
    unsigned char tok_sha[32]; /* valid when n_vocab != 0 */
    int format;                /* key-file format it is saved in: 1 or 2 */
};

/* Public id of a key: BLAKE2b keyed with the secret over its parameters.
 * Fails only when the "C" locale the parameters are formatted in cannot be
 * had (core/key.c): WM_ERR_NOMEM or WM_ERR_UNSUPPORTED. */
wm_status wm__compute_id(const wm_key *k, char out[WM_KEY_ID_SIZE]);
/* The wm_params a scheme's stored parameters stand for. */
void wm__params_of(const wm__scheme *sc, const double *param, wm_seeding seeding, uint32_t h, wm_params *out);
/* schemes/gumbel.c: -ln(1 - u / 2^bits), a tuple's floor-quantised score. */
double wm__gumbel_score(uint32_t u, unsigned bits);

/* A watermark: one guarded block (wm__secure_malloc), this struct and then
 * the scheme's and the account layer's states (core/watermark.c), read-only
 * once prepared.  Nothing here belongs to one scheme: a scheme's sub-keys
 * and tables are in its state, which only its own file reads. */
struct wm_watermark {
    const wm__scheme *scheme;
    const wm__account_layer *account; /* the scheme's account layer when on, else NULL */
    const void *scheme_state;         /* scheme->state_bytes */
    const void *account_state;        /* account->state_bytes; NULL without a layer */
    double param[WM__MAX_SCHEME_PARAMS];
    wm_seeding seeding;
    uint32_t h;
    uint32_t n_vocab;
    unsigned char km[16];    /* minhash token-hash key (derived; seeding) */
    char key_id[WM_KEY_ID_SIZE];
    wm_fill_fn fill;         /* best available implementations */
    wm_prf_many_fn prf_many;
    wm_apply_fn apply;
    wm_widen_fn widen;       /* 16-bit logits to binary32 and back */
    wm_narrow_fn narrow;
};

/* prf/scalar.c: the green-list function.  Membership of token v after a context
 * with seed s: field (v mod T) of PRF(s, v div T), T = tok_per_block. */
void wm__fill_scalar(const unsigned char kg[16], uint64_t seed, uint64_t j0,
                     size_t n_blocks, unsigned char *out);
/* PRF of n independent (seed, block) pairs: 16 bytes each. */
void wm__prf_many_scalar(const unsigned char kg[16], const uint64_t *seed, const uint64_t *j,
                         size_t n, unsigned char *out);
void wm__apply_scalar(const unsigned char *fields, size_t n_tok, unsigned bits,
                      uint32_t thresh, float delta, float *logits);
/* prf/dispatch.c: zeroes the 1 KiB of stack below the caller's frame, where
 * the keyed SipHash state of the calls it just made lay.  Called after the
 * scalar kernels are called directly with a key, once per call of the
 * caller, never per token: the per-token direct calls (wm__account_pos,
 * wm__account_part, wm__minhash_value) are not followed by one, as a burn
 * would cost as much as their SipHash; on Debian's libsodium the state stays
 * in registers (test_prf's check passes without any burn). */
void wm__burn_stack_small(void);
/* prf/dispatch.c: the scalar kernels as handed out (the stack they used
 * zeroed after each call), never NULL. */
wm_fill_fn wm__fill_scalar_kernel(void);
wm_prf_many_fn wm__prf_many_scalar_kernel(void);
/* prf/dispatch.c: NULL when the CPU or compiler lacks the instruction set. */
wm_fill_fn wm__fill_avx512(void);
wm_prf_many_fn wm__prf_many_avx512(void);
wm_fill_fn wm__fill_avx2(void);
wm_apply_fn wm__apply_avx2(void);
wm_apply_fn wm__apply_avx512(void);
/* Fused fill + apply for 1- and 2-bit fields only. */
wm_bias_row_fn wm__bias_row_avx512(void);
/* Two 2-bit field lists fused (wm_bias_row2_fn): NULL without AVX-512F + BMI2. */
wm_bias_row2_fn wm__bias_row2_avx512(void);
/* prf/dispatch.c: the best kernels this CPU runs (or WM_CPU's), into wm;
 * WM_ERR_UNSUPPORTED when WM_CPU is refused (wm_cpu_kernels). */
wm_status wm__pick_kernels(struct wm_watermark *wm);
/* prf/dispatch.c: the best sampler kernels (embed/softmax.h). */
typedef int (*wm_maxcheck_fn)(const float *x, size_t n, float *max);
typedef size_t (*wm_softmax_fn)(const float *x, size_t n, float m, float s, float thr, float *w,
                                double *chunk_sum, wm_token *ids, float *cw);
typedef int (*wm_head_fn)(const float *x, size_t n, float m, float s, float lo, float *max, wm_token *ids,
                          float *hx, size_t *n_head, int *tail_live);
void wm__pick_sampler_kernels(wm_maxcheck_fn *maxcheck, wm_softmax_fn *softmax, wm_head_fn *head);
/* embed/sampler.c: 1 makes s's untruncated draw the dense one (every
 * weight computed, one uniform a step), the exact draw it replaced: for
 * tests that compare the two, and the benchmark. */
void wm__sampler_all_weights(struct wm_sampler *s, int on);

static inline uint32_t wm__field(const unsigned char *block, unsigned f, unsigned bits)
{
    switch (bits) {
    case 16: return (uint32_t)block[2 * f] | ((uint32_t)block[2 * f + 1] << 8);
    case 8: return block[f];
    default: {
        unsigned bit = f * bits;
        return (block[bit >> 3] >> (bit & 7)) & ((1u << bits) - 1);
    }
    }
}

/* schemes/fields.c: a keyed field list, the tokens whose b-bit field of
 * PRF_key(seed, .), XORed with the byte `mask`, is below thresh; adding
 * delta to them in a whole row, or in n candidates (padding ids never).
 * kgw's green list and the account layer's parts are both one. */
typedef struct wm__fields {
    const unsigned char *key; /* 16 bytes */
    unsigned bits;            /* 1, 2, 4, 8 or 16 */
    unsigned char mask;
    uint32_t thresh;
    float delta;
    wm_bias_row_fn fused;     /* fill + apply of these fields (mask 0), or NULL */
} wm__fields;
void wm__bias_fields_row(const struct wm_watermark *wm, const wm__fields *f, uint64_t seed, void *logits,
                         wm_dtype dtype);
/* f1's delta and then f2's over a whole row in one sweep, equal bit for bit
 * to wm__bias_fields_row of f1 and then of f2 (16-bit rows rounded between
 * the two, as there).  fused2: a wm_bias_row2_fn for the pair (both 2-bit),
 * or NULL: a chunk at a time, each list's kernels on the chunk while it is
 * in L1. */
void wm__bias_fields2_row(const struct wm_watermark *wm, const wm__fields *f1, const wm__fields *f2,
                          wm_bias_row2_fn fused2, uint64_t seed, void *logits, wm_dtype dtype);
void wm__bias_fields_candidates(const struct wm_watermark *wm, const wm__fields *f, uint64_t seed, size_t n,
                                const wm_token *ids, size_t ids_stride, float *logits, size_t logits_stride);

/* embed/dtype_*.c: n logits of a 16-bit dtype to binary32 exactly, and back
 * rounded to nearest even (NaN to the sign's canonical NaN), as PyTorch
 * converts them; wm->widen and wm->narrow are the best this CPU runs. */
void wm__widen_scalar(const void *src, wm_dtype dtype, size_t n, float *dst);
void wm__narrow_scalar(const float *src, size_t n, wm_dtype dtype, void *dst);
wm_widen_fn wm__widen_avx512(void); /* prf/dispatch.c: NULL without AVX-512F */
wm_narrow_fn wm__narrow_avx512(void);
wm_widen_fn wm__widen_avx2(void); /* NULL without AVX2 + F16C */
wm_narrow_fn wm__narrow_avx2(void);

/* schemes/account.c: the account layer's methods (wm->account), exported
 * for its tests; the library calls them through the table. */
void wm__account_code(const struct wm_watermark *wm, uint64_t account, unsigned char code[WM__CODE_BYTES]);
unsigned wm__account_pos(const struct wm_watermark *wm, uint64_t seed);
unsigned wm__account_part(const struct wm_watermark *wm, uint64_t seed, wm_token t);

uint64_t wm__minhash_value(const struct wm_watermark *wm, wm_token t);
/* Seed of the context ctx[0..h-1] (exactly h tokens, oldest first). */
uint64_t wm__seed(const struct wm_watermark *wm, const wm_token *ctx);

/* Walks the scored tuples of a sequence (see detect.h for which). */
typedef struct wm__scan {
    const struct wm_watermark *wm;
    const wm_token *t;
    size_t n, i;
    uint64_t ring[WM_MAX_CONTEXT]; /* minhash values of the last h tokens */
} wm__scan;

void wm__scan_init(wm__scan *s, const struct wm_watermark *wm, const wm_token *t,
                   size_t n, size_t n_prompt);
int wm__scan_next(wm__scan *s, uint64_t *seed, wm_token *tok);
/* The same from position `first` on (at least h), no prompt rule: for a
 * document continued from an earlier part, whose tail is t[0..first). */
void wm__scan_init_at(wm__scan *s, const struct wm_watermark *wm, const wm_token *t, size_t n, size_t first);

/* detect/corpus.c: a context seed into a set (1 inserted, 0 present, -1
 * no memory), and the watermark a set belongs to. */
int wm__ctxset_insert(wm_ctxset *s, uint64_t seed);
const wm_watermark *wm__ctxset_wm(const wm_ctxset *s);

/* Tokens all in [0, n_vocab)? */
wm_status wm__check_tokens(const struct wm_watermark *wm, const wm_token *t, size_t n);

static inline uint64_t wm__mix64(uint64_t x)
{
    x ^= x >> 30; x *= 0xbf58476d1ce4e5b9ULL;
    x ^= x >> 27; x *= 0x94d049bb133111ebULL;
    return x ^ (x >> 31);
}

/* Fingerprint of a (seed, token) tuple for deduplication; never 0.  A
 * test build may narrow it to WM_TUPLE_FP_BITS bits (-Dtuple_fp_bits, e.g.
 * 10: a collision in every few dozen tuples), so the tests see collisions
 * drop the same tuples on one machine and on a cluster. */
#ifndef WM_TUPLE_FP_BITS
#define WM_TUPLE_FP_BITS 64
#endif
static inline uint64_t wm__tuple_fp(uint64_t seed, wm_token tok)
{
    uint64_t fp = wm__mix64(seed ^ wm__mix64((uint64_t)(uint32_t)tok + 0x9e3779b97f4a7c15ULL));
#if WM_TUPLE_FP_BITS < 64
    fp &= ~(UINT64_MAX >> WM_TUPLE_FP_BITS); /* the top bits: the sets place a key by its top bits */
#endif
    return fp ? fp : 1;
}

/* u64set.c: open-addressing set of non-zero 64-bit keys (already mixed),
 * or map to 32-bit values. */
typedef struct wm__u64set {
    uint64_t *slot;
    uint32_t *val; /* NULL for a set; a map's value of slot i */
    size_t cap, len;
} wm__u64set;

wm_status wm__u64set_init(wm__u64set *s, size_t expected);
wm_status wm__u64map_init(wm__u64set *s, size_t expected);
wm_status wm__u64set_copy(wm__u64set *dst, const wm__u64set *src); /* dst uninitialised */
/* 1 if inserted, 0 if present, -1 on allocation failure. */
int wm__u64set_insert(wm__u64set *s, uint64_t key);
/* The same, and *at = the key's slot (until the next insert), whose value
 * is s->val[*at] in a map (unset when just inserted). */
int wm__u64set_insert_at(wm__u64set *s, uint64_t key, size_t *at);
int wm__u64set_contains(const wm__u64set *s, uint64_t key);
void wm__u64set_clear(wm__u64set *s); /* empty, keeping the capacity */
void wm__u64set_free(wm__u64set *s);

/* stats.c: natural log of P(X >= k), X ~ Binomial(n, p). */
double wm__binom_log_sf(uint64_t n, uint64_t k, double p);
/* stats.c: natural log of the Chernoff bound on P(sum w_i X_i >= s), X_i
 * independent Bernoulli(p) (wm_wbinom_log10_bound). */
double wm__wbinom_log_bound(const double *w, size_t n, double s, double p);
/* stats.c: natural log of Q(a, x) = P(X >= x), X ~ Gamma(a, 1). */
double wm__gamma_log_sf(double a, double x);
/* The score of `scored` tuples with statistic `stat`, by wm's scheme. */
void wm__fill_score(const struct wm_watermark *wm, wm_score *out, uint64_t tokens, uint64_t scored,
                    double stat, double alpha);

/* key.c: parse a key file held in memory (used by wm_key_load and the
 * fuzzer).  `name` is used in error messages only. */
wm_status wm__key_parse(wm_key **out, const char *buf, size_t len, const char *name,
                        wm_error *err);

/* tokenizer.c: how many pieces of a segment's first Split step are held
 * before they go through the rest of the pipeline (tests: results must not
 * depend on it). */
void wm__encoder_set_stream_pieces(wm_encoder *e, size_t n);
/* Bytes wm_encode_stream holds between calls (tests: bounded). */
size_t wm__encoder_stream_held(const wm_encoder *e);

/* xoshiro256** for the sampler and the tests' synthetic data. */
typedef struct wm__rng { uint64_t s[4]; } wm__rng;
void wm__rng_seed(wm__rng *r, uint64_t seed);
uint64_t wm__rng_next(wm__rng *r);
double wm__rng_uniform(wm__rng *r); /* [0, 1), 53 bits */

#endif
