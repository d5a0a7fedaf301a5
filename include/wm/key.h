/* libwm: watermark keys and the read-only watermark object.  Part of <wm.h>.
 *
 * A watermark is a 256-bit secret plus the parameters that embedder and
 * detector must share.  Both live in one versioned key file so they can never
 * disagree.  A wm_key is what is stored; a wm_watermark is a key bound to a
 * vocabulary size, with derived sub-keys and tables, ready for embedding and
 * detection. */
#ifndef WM_KEY_H
#define WM_KEY_H

#include "common.h"

#ifdef __cplusplus
extern "C" {
#endif

/* How the h tokens before position i select the green list of position i.
 *
 * WM_SCHEME_LEFTHASH: the green list depends on all h previous tokens (for
 *   h <= 2 the context itself is the seed, so distinct contexts never share a
 *   green list).  Strongest signal and best "radioactivity" (a student model
 *   copies exact (context, token) pairs); any edit inside the window changes
 *   the list.  Pick h = 1 for maximum robustness, h = 2..4 to make the green
 *   lists harder to estimate from watermarked text.
 * WM_SCHEME_MINHASH: the green list depends only on the context token with the
 *   smallest keyed hash in the window (Kirchenbauer et al., "On the
 *   Reliability of Watermarks for LLMs").  An edit changes the list only when
 *   it hits that one token, so with h = 4 it keeps most of h = 1's robustness
 *   to paraphrase while spreading the lists over more contexts.  Needs h >= 1. */
typedef enum wm_scheme {
    WM_SCHEME_LEFTHASH = 0,
    WM_SCHEME_MINHASH = 1
} wm_scheme;

#define WM_MAX_CONTEXT 16   /* largest context width h */
#define WM_GAMMA_ONE 65536u /* gamma is stored as an integer k / 65536 */
/* Smallest delta a key accepts.  Logits of real models reach 20-40, where a
 * float's spacing is 2^-19..2^-18; a delta near that is rounded away by the
 * addition itself (1e-50 even becomes float 0), so the key would embed
 * nothing while looking valid.  At 1/1024 the bias survives every logit
 * below 2^13 exactly enough to move probabilities by ~0.1%. */
#define WM_DELTA_MIN (1.0 / 1024)

typedef struct wm_params {
    double gamma;           /* green fraction, in (0,1); quantised, see below */
    double delta;           /* bias added to green logits, in [WM_DELTA_MIN, 64] */
    uint32_t context_width; /* h: tokens of left context, 0..WM_MAX_CONTEXT */
    wm_scheme scheme;
} wm_params;

/* The defaults chosen from the measurements in README.md. */
#define WM_PARAMS_DEFAULT { 0.25, 2.0, 1u, WM_SCHEME_LEFTHASH }

/* Gamma quantisation: a key stores gamma as k / 65536 with k = round(gamma *
 * 65536), 1 <= k <= 65535.  Detection uses exactly that value.  A token's
 * membership is a b-bit field of a PRF output compared against a threshold,
 * where b is the smallest power of two with k / 65536 = k' / 2^b; gamma = 0.25
 * needs 2 bits a token and is the fastest kind, 0.1 needs 16. */

typedef struct wm_key wm_key;

/* Fresh random key (libsodium randombytes) with validated parameters.
 * *out is owned by the caller; free with wm_key_free.  Thread-safe. */
WM_API WM_NODISCARD wm_status wm_key_generate(wm_key **out, const wm_params *params);

/* Deterministic key from a 32-byte seed.  For tests and reproducible demos
 * only: whoever knows the seed can compute every green list. */
WM_API WM_NODISCARD wm_status wm_key_from_seed(wm_key **out, const wm_params *params,
                                  const unsigned char seed[32]);

/* Write the key to a new file created with mode 0600.  Never overwrites:
 * WM_ERR_EXISTS if path exists.  On failure nothing is left behind. */
WM_API WM_NODISCARD wm_status wm_key_save(const wm_key *key, const char *path, wm_error *err);

/* Read a key file.  Strict: unknown or repeated fields, bad values, a file
 * readable by group or others (WM_ERR_PERM) or a key id that does not match
 * the contents (WM_ERR_CORRUPT) are refused, with file and line in err.
 * Secret bytes are kept in guarded memory and wiped on free. */
WM_API WM_NODISCARD wm_status wm_key_load(wm_key **out, const char *path, wm_error *err);

/* Parameters as used by detection (gamma is the exact quantised value). */
WM_API WM_NODISCARD wm_status wm_key_params(const wm_key *key, wm_params *out);

/* Public key id: 16 hex digits + NUL.  A keyed BLAKE2b fingerprint of the
 * secret and all parameters; reveals nothing about the secret. */
#define WM_KEY_ID_SIZE 17
WM_API WM_NODISCARD wm_status wm_key_id(const wm_key *key, char out[WM_KEY_ID_SIZE]);

/* Record the tokenizer the key is meant for (vocabulary size and SHA-256 of
 * its tokenizer.json), so detection can refuse a different one.  Call before
 * wm_key_save.  n_vocab 0 clears it. */
WM_API WM_NODISCARD wm_status wm_key_set_tokenizer(wm_key *key, uint32_t n_vocab,
                                      const unsigned char sha256[32]);
/* *n_vocab = 0 when none is recorded; sha256 may be NULL. */
WM_API WM_NODISCARD wm_status wm_key_tokenizer(const wm_key *key, uint32_t *n_vocab,
                                  unsigned char sha256[32]);

/* Wipes and frees.  NULL is a no-op. */
WM_API void wm_key_free(wm_key *key);

/* ---- the watermark object ---------------------------------------------- */

typedef struct wm_watermark wm_watermark;

/* Bind a key to a vocabulary of n_vocab real tokens (ids 0..n_vocab-1).  If
 * the key records a vocabulary size it must equal n_vocab (WM_ERR_SIZE).  The
 * key may be freed afterwards.  The result is immutable: one object can be
 * shared by any number of threads without locking. */
WM_API WM_NODISCARD wm_status wm_watermark_new(wm_watermark **out, const wm_key *key,
                                  uint32_t n_vocab);
WM_API void wm_watermark_free(wm_watermark *wm);

WM_API WM_NODISCARD wm_status wm_watermark_n_vocab(const wm_watermark *wm, uint32_t *out);
WM_API WM_NODISCARD wm_status wm_watermark_params(const wm_watermark *wm, wm_params *out);
WM_API WM_NODISCARD wm_status wm_watermark_key_id(const wm_watermark *wm, char out[WM_KEY_ID_SIZE]);

/* Is `token` green after the context ctx[0..n_ctx-1] (oldest first; only the
 * last h tokens matter)?  O(1).  n_ctx < h: *green = false and WM_OK, since
 * such positions are neither biased nor scored.  Thread-safe. */
WM_API WM_NODISCARD wm_status wm_is_green(const wm_watermark *wm, const wm_token *ctx, size_t n_ctx,
                                          wm_token token, bool *green);

#ifdef __cplusplus
}
#endif
#endif
