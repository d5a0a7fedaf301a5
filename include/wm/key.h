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

/* A watermark is two independent choices (docs/DESIGN.md#which-scheme-and-which-parameters):
 *
 * The SEEDING RULE: which seed the h = context_width tokens before position
 * i give position i.  The seed is also detection's unit of deduplication.
 * WM_SEEDING_LEFTHASH: the seed depends on all h previous tokens (for h <= 2
 *   the context itself is the seed, so distinct contexts never share one).
 *   Strongest signal and best "radioactivity" (a student model copies exact
 *   (context, token) pairs); any edit inside the window changes the seed.
 *   Pick h = 1 for maximum robustness, h = 2..4 to make the lists harder to
 *   estimate from watermarked text.
 * WM_SEEDING_MINHASH: the seed is the context token with the smallest keyed
 *   hash in the window (Kirchenbauer et al., "On the Reliability of
 *   Watermarks for LLMs").  An edit changes the seed only when it hits that
 *   one token, so with h = 4 it keeps most of h = 1's robustness to
 *   paraphrase while spreading over more seeds.  Needs h >= 1.
 *
 * The SCHEME: how a seed changes sampling and how one scored (seed, token)
 * tuple adds to a test statistic with an exact null distribution.  Chosen
 * by name:
 *   "kgw"     green list (Kirchenbauer et al. 2023): a keyed fraction gamma
 *             of the vocabulary gets delta added to its logits; statistic:
 *             green count, Binomial(N, gamma) under H0.  Changes the
 *             distribution (quality cost grows with delta).
 *   "gumbel"  Gumbel-max (Aaronson 2022): the token is argmax r_v^(1/p_v)
 *             for keyed uniforms r_v; distortion-free (over keys each step
 *             samples exactly from p).  Statistic: sum of -ln(1 - r),
 *             Gamma(N, 1) under H0.  No parameters: gamma and delta must
 *             be 0.  Embeds by selecting the token (wm_select, the
 *             sampler), never by biasing logits. */
typedef enum wm_seeding {
    WM_SEEDING_LEFTHASH = 0,
    WM_SEEDING_MINHASH = 1
} wm_seeding;

#define WM_MAX_CONTEXT 16   /* largest context width h */
#define WM_GAMMA_ONE 65536u /* gamma is stored as an integer k / 65536 */
/* Smallest delta a key accepts.  Logits of real models reach 20-40, where a
 * float's spacing is 2^-19..2^-18; a delta near that is rounded away by the
 * addition itself (1e-50 even becomes float 0), so the key would embed
 * nothing while looking valid.  At 1/1024 the bias survives every logit
 * below 2^13 exactly enough to move probabilities by ~0.1%. */
#define WM_DELTA_MIN (1.0 / 1024)

typedef struct wm_params {
    size_t size;            /* sizeof(wm_params): common.h, "Versioned structs" */
    const char *scheme;     /* "kgw" or "gumbel" (wm_scheme_name lists them); NULL: "kgw" */
    wm_seeding seeding;
    uint32_t context_width; /* h: tokens of left context, 0..WM_MAX_CONTEXT */
    double gamma;           /* kgw: green fraction in (0,1), quantised (below); others: 0 */
    double delta;           /* kgw: bias added to green logits, in [WM_DELTA_MIN, 64]; others: 0 */
    double account_delta;   /* kgw: the account layer's bias (embed.h, "Accounts"): 0 (no
                               account layer) or in [WM_DELTA_MIN, 64]; others: 0 */
} wm_params;

/* The account layer (kgw with account_delta > 0; embed.h, "Accounts", and
 * detect.h, "Attribution"): each scored seed reads one of
 * WM_ACCOUNT_POSITIONS positions of the account's keyed codeword, whose
 * symbol, one of WM_ACCOUNT_SYMBOLS, picks the keyed part of the vocabulary
 * that gets account_delta.  Fixed by the library: every key shares them. */
#define WM_ACCOUNT_POSITIONS 256
#define WM_ACCOUNT_SYMBOLS 4
/* Account ids are the provider's 64-bit ids; 0 means "no account". */
#define WM_ACCOUNT_NONE UINT64_C(0)

/* *p (OUT) = the defaults of `scheme` (NULL: "kgw"), chosen from the
 * measurements in docs/RESULTS.md#choosing-the-defaults: kgw lefthash h = 1, gamma 0.25, delta 2, no
 * account layer; gumbel lefthash h = 4.  p->size is set.  wm_params_init is
 * a macro that passes sizeof *p: *p may be uninitialised, so only the
 * caller's compiler knows how much it holds, and a libwm newer than the
 * caller's header must not write past it.
 * @return WM_OK; WM_ERR_ARG for a NULL p or a size this libwm does not know; WM_ERR_PARAM for a
 * scheme this libwm does not implement (wm_scheme_name lists them), *p then untouched.
 * Thread-safe. */
/* OUT: *p. */
WM_API WM_NODISCARD wm_status wm_params_init_sized(wm_params *p, size_t size, const char *scheme);
#define wm_params_init(p, scheme) wm_params_init_sized((p), sizeof *(p), (scheme))

/* Set one parameter by the name the key file stores it under ("scheme",
 * "seeding", "context-width", "gamma", "delta", "account-delta"), from its
 * text as the key file writes it, parsed and checked by the key-file
 * reader's own rules (numbers in the "C" locale whatever the caller's).
 * "scheme" names a scheme and keeps the other fields: set it first, then
 * the scheme's parameters (or wm_params_init).  A parameter the current
 * scheme does not have is WM_ERR_PARAM (gumbel has no gamma); the whole
 * set is checked again by wm_key_generate.  Nothing changes on failure.
 * @return WM_OK; WM_ERR_ARG (NULL argument, p->size not a known size, an
 * unknown name); WM_ERR_PARAM (a value the key file would refuse: not a
 * number, outside its domain); WM_ERR_NOMEM or WM_ERR_UNSUPPORTED (the "C"
 * locale cannot be had, as for wm_key_load).  Thread-safe for distinct p. */
/* IN/OUT: *p. */
WM_API WM_NODISCARD wm_status wm_params_set(wm_params *p, const char *name, const char *value);

/* Gamma quantisation: a key stores gamma as k / 65536 with k = round(gamma *
 * 65536), 1 <= k <= 65535.  Detection uses exactly that value.  A token's
 * membership is a b-bit field of a PRF output compared against a threshold,
 * where b is the smallest power of two with k / 65536 = k' / 2^b; gamma = 0.25
 * needs 2 bits a token and is the fastest kind, 0.1 needs 16. */

/* Name of the i-th scheme this library implements (i = 0, 1, ...), NULL past
 * the last: for listing them.  The returned string is static.  Thread-safe. */
/* @return a static string, or NULL past the last. */
WM_API const char *wm_scheme_name(size_t i);

/* What a scheme does, as bits: callers that present a scheme (the CLI's
 * labels, a binding's options) ask these, never the scheme's name. */
#define WM_CAP_BINARY 0x01u     /* each scored tuple counts 0 or 1: the exact binomial test */
#define WM_CAP_BIASES 0x02u     /* embeds by biasing logits (wm_bias_*) */
#define WM_CAP_SELECTS 0x04u    /* embeds by choosing the token (wm_select) */
#define WM_CAP_GREEN_LIST 0x08u /* a 1 is "green" (wm_is_green); the parameters gamma, delta and
                                   account_delta belong to it */
#define WM_CAP_SEED_ONCE 0x10u  /* a context seed watermarks one position per document */
/* The capability bits of the scheme named `scheme` (as in wm_params.scheme;
 * NULL: "kgw").
 * @return WM_OK; WM_ERR_ARG (NULL caps); WM_ERR_PARAM (no scheme of that name; *caps then
 * untouched).  OUT: *caps.  Thread-safe. */
WM_API WM_NODISCARD wm_status wm_scheme_caps(const char *scheme, unsigned *caps);

typedef struct wm_key wm_key;

/* Fresh random key (libsodium randombytes) with validated parameters:
 * WM_ERR_PARAM for any outside its domain above, a NaN or infinite gamma,
 * delta or account_delta included.
 * *out is owned by the caller; free with wm_key_free.  Thread-safe. */
/* @return WM_OK; WM_ERR_ARG (NULL out or params, params->size unknown); WM_ERR_PARAM;
 * WM_ERR_CRYPTO (libsodium cannot start); WM_ERR_NOMEM; *out NULL on failure.  OUT: *out. */
WM_API WM_NODISCARD wm_status wm_key_generate(wm_key **out, const wm_params *params);

/* Deterministic key from a 32-byte seed.  For tests and reproducible demos
 * only: whoever knows the seed can compute every green list. */
/* @return as wm_key_generate's (WM_ERR_ARG also for a NULL seed).  OUT: *out, owned by the caller
 * (wm_key_free).  Thread-safe. */
WM_API WM_NODISCARD wm_status wm_key_from_seed(wm_key **out, const wm_params *params,
                                  const unsigned char seed[32]);

/* Write the key to a new file created with mode 0600.  Never overwrites:
 * WM_ERR_EXISTS if path exists.  On failure nothing is left behind.  New
 * keys are written in key-file format 2 (it names the scheme); a key read
 * from a format-1 file (kgw only) is written in format 1 again, so its id
 * never changes.  The file is the same byte for byte whatever the caller's
 * locale (numbers always as in the "C" locale: "gamma 0.25", never "0,25").
 * err (may be NULL) is filled on every failure: WM_ERR_ARG (NULL key or
 * path), WM_ERR_EXISTS, WM_ERR_IO, WM_ERR_NOMEM (also when the "C" locale
 * cannot be made for want of memory), WM_ERR_UNSUPPORTED (the system
 * refuses that locale). */
/* @return WM_OK or one of the codes above, err filled.  Thread-safe with other readers of key.
 * Two saves to one path: one gets WM_ERR_EXISTS (O_EXCL). */
WM_API WM_NODISCARD wm_status wm_key_save(const wm_key *key, const char *path, wm_error *err);

/* Read a key file.  Strict: unknown or repeated fields, bad values, a file
 * readable by group or others (WM_ERR_PERM) or a key id that does not match
 * the contents (WM_ERR_CORRUPT) are refused, with file and line in err.
 * Numbers are read as in the "C" locale whatever the caller's.  err (may be
 * NULL) is filled on every failure: WM_ERR_ARG (NULL out or path),
 * WM_ERR_IO, WM_ERR_PERM, WM_ERR_FORMAT, WM_ERR_CORRUPT, WM_ERR_CRYPTO,
 * WM_ERR_NOMEM and WM_ERR_UNSUPPORTED (as for wm_key_save); *out is then
 * NULL.  Secret bytes are kept in guarded memory and wiped on free. */
/* @return WM_OK or one of the codes above, err filled.  OUT: *out, owned by the caller
 * (wm_key_free).  Thread-safe. */
WM_API WM_NODISCARD wm_status wm_key_load(wm_key **out, const char *path, wm_error *err);

/* Parameters as used by detection (gamma is the exact quantised value;
 * out->scheme points to a static string). */
/* @return WM_OK; WM_ERR_ARG (NULL key or out, out->size unknown).  OUT: *out.  Thread-safe with
 * other readers of key. */
WM_API WM_NODISCARD wm_status wm_key_params(const wm_key *key, wm_params *out);

/* Public key id: 16 hex digits + NUL.  A keyed BLAKE2b fingerprint of the
 * secret and all parameters as the key file writes them (in the "C"
 * locale, so the id does not depend on the caller's); reveals nothing
 * about the secret.  WM_ERR_NOMEM or WM_ERR_UNSUPPORTED when that locale
 * cannot be had. */
#define WM_KEY_ID_SIZE 17
/* @return WM_OK; WM_ERR_ARG (NULL key or out); WM_ERR_NOMEM; WM_ERR_UNSUPPORTED.  OUT: out.
 * Thread-safe with other readers of key. */
WM_API WM_NODISCARD wm_status wm_key_id(const wm_key *key, char out[WM_KEY_ID_SIZE]);

/* Record the tokenizer the key is meant for (vocabulary size and SHA-256 of
 * its tokenizer.json), so detection can refuse a different one.  Call before
 * wm_key_save.  n_vocab 0 clears it. */
/* @return WM_OK; WM_ERR_ARG (NULL key, NULL sha256 with n_vocab > 0).  Not thread-safe: one
 * thread at a time per key. */
WM_API WM_NODISCARD wm_status wm_key_set_tokenizer(wm_key *key, uint32_t n_vocab,
                                      const unsigned char sha256[32]);
/* *n_vocab = 0 when none is recorded; sha256 may be NULL. */
/* @return WM_OK; WM_ERR_ARG (NULL key or n_vocab).  OUT: *n_vocab, sha256.  Thread-safe with
 * other readers of key. */
WM_API WM_NODISCARD wm_status wm_key_tokenizer(const wm_key *key, uint32_t *n_vocab,
                                  unsigned char sha256[32]);

/* Wipes and frees.  NULL is a no-op. */
/* Not thread-safe: no other thread may use key. */
WM_API void wm_key_free(wm_key *key);

/* ---- the watermark object ---------------------------------------------- */

typedef struct wm_watermark wm_watermark;

/* Bind a key to a vocabulary of n_vocab real tokens (ids 0..n_vocab-1).  If
 * the key records a vocabulary size it must equal n_vocab (WM_ERR_SIZE).  It
 * keeps the key's id, with wm_key_id's errors.  The
 * key may be freed afterwards.  The result is immutable: one object can be
 * shared by any number of threads without locking. */
/* @return WM_OK; WM_ERR_ARG (NULL out or key); WM_ERR_SIZE (n_vocab 0, above INT32_MAX, or not the
 * key's); WM_ERR_CRYPTO; WM_ERR_NOMEM; WM_ERR_UNSUPPORTED (wm_key_id's, or the
 * environment variable WM_CPU refused: wm/advanced.h, wm_cpu_kernels); *out NULL on failure.
 * OUT: *out, owned by the caller (wm_watermark_free).  Thread-safe with other readers of key. */
WM_API WM_NODISCARD wm_status wm_watermark_new(wm_watermark **out, const wm_key *key,
                                  uint32_t n_vocab);
/* Wipes and frees.  NULL is a no-op.  Not thread-safe: no other thread may use wm. */
WM_API void wm_watermark_free(wm_watermark *wm);

/* @return WM_OK; WM_ERR_ARG (NULL wm or out).  OUT: *out.  Thread-safe. */
WM_API WM_NODISCARD wm_status wm_watermark_n_vocab(const wm_watermark *wm, uint32_t *out);
/* @return WM_OK; WM_ERR_ARG (NULL wm or out, out->size unknown).  OUT: *out (out->scheme
 * static).  Thread-safe. */
WM_API WM_NODISCARD wm_status wm_watermark_params(const wm_watermark *wm, wm_params *out);
/* @return WM_OK; WM_ERR_ARG (NULL wm or out).  OUT: out.  Thread-safe. */
WM_API WM_NODISCARD wm_status wm_watermark_key_id(const wm_watermark *wm, char out[WM_KEY_ID_SIZE]);
/* true: the scheme embeds by choosing the token (wm_select: gumbel); false:
 * by biasing logits (wm_bias_logits and friends: kgw). */
/* @return WM_OK; WM_ERR_ARG (NULL wm or out).  OUT: *out.  Thread-safe. */
WM_API WM_NODISCARD wm_status wm_watermark_selects(const wm_watermark *wm, bool *out);

/* ---- context sets ------------------------------------------------------- */

/* A set of contexts (their seeds), e.g. from the watermarked outputs a suspect
 * model may have trained on.  8 bytes per distinct context at load >= 0.5.
 * Not thread-safe while being filled; read-only use afterwards is. */
typedef struct wm_ctxset wm_ctxset;

/* @return WM_OK; WM_ERR_ARG (NULL out or wm); WM_ERR_NOMEM.  OUT: *out, owned by the caller
 * (wm_ctxset_free); it borrows wm.  Thread-safe. */
WM_API WM_NODISCARD wm_status wm_ctxset_new(wm_ctxset **out, const wm_watermark *wm);
/* @return WM_OK; WM_ERR_ARG (NULL set, NULL tokens with n > 0); WM_ERR_TOKEN (nothing is added);
 * WM_ERR_NOMEM.  Adds the contexts of tokens[0..n).
 * Not thread-safe: one thread at a time per set. */
WM_API WM_NODISCARD wm_status wm_ctxset_add(wm_ctxset *set, const wm_token *tokens, size_t n);
/* A copy of src (same watermark) into *out.  WM_ERR_NOMEM. */
/* @return WM_OK; WM_ERR_ARG (NULL out or src); WM_ERR_NOMEM; *out NULL on failure.  OUT: *out,
 * owned by the caller (wm_ctxset_free).  Thread-safe with other readers of src. */
WM_API WM_NODISCARD wm_status wm_ctxset_copy(wm_ctxset **out, const wm_ctxset *src);
/* Empty the set, keeping its memory (e.g. wm_select's `used` at each new
 * sequence). */
/* @return WM_OK; WM_ERR_ARG (NULL set).  Not thread-safe: one thread at a time per set. */
WM_API WM_NODISCARD wm_status wm_ctxset_clear(wm_ctxset *set);
/* Number of distinct contexts, into *out. */
/* @return WM_OK; WM_ERR_ARG (NULL set or out).  OUT: *out.  Thread-safe with other readers of
 * set. */
WM_API WM_NODISCARD wm_status wm_ctxset_size(const wm_ctxset *set, uint64_t *out);
/* NULL is a no-op.  Not thread-safe: no other thread may use set. */
WM_API void wm_ctxset_free(wm_ctxset *set);

#ifdef __cplusplus
}
#endif
#endif
