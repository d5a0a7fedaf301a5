/* libwm, advanced calls: NOT part of <wm.h>, and not for ordinary embedding
 * or detection.  #include <wm/advanced.h> explicitly (as zstd gates such
 * calls behind ZSTD_STATIC_LINKING_ONLY): what is declared here exports the
 * watermark's secret sub-keys, or values that together with them let anyone
 * embed or strip the watermark.  The calls are as stable as the rest of the
 * ABI; the rule is about who should call them (a GPU kernel that biases
 * logits on its own device), not about their stability. */
#ifndef WM_ADVANCED_H
#define WM_ADVANCED_H

#include "key.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- the bias computed elsewhere ----------------------------------------
 * A GPU server biases logits on their own device, from token history that
 * is already there (python/libwm/torch_kernel.py does it with PyTorch
 * integer ops, bit for bit with the calls above; tests/test_engines.py
 * checks it).  These values define the bias completely:
 *
 *   seed(ctx)   wm_context_seed (lefthash: the context itself for h <= 2, a
 *               wm__mix64 chain beyond; minhash: the context token whose
 *               SipHash-2-4-64_minhash_key(LE32(t)) is least, ties to the
 *               smaller id; seeding/seed.c)
 *   PRF_k(s, j) SipHash-2-4-128_k(LE64(s) || LE64(j)), 16 bytes, whose bits
 *               are read least significant first
 *   green       token v < n_vocab after seed s iff field (v mod T) of
 *               PRF_green_key(s, v div T) < threshold, fields of field_bits
 *               bits, T = 128 / field_bits; it gets delta
 *   accounts    an account's sequence also gets account_delta on token v iff
 *               the 2-bit field (v mod 64) of PRF_account_key(s, v div 64)
 *               equals symbols[j(s)], j(s) = byte 0 of
 *               PRF_account_key(s, 2^63), symbols from wm_account_symbols
 *
 * The keys are secret: whoever holds them can strip or forge the
 * watermark.  Wipe every copy (sodium_memzero) when done. */
typedef struct wm_kernel_params {
    size_t size;                   /* sizeof(wm_kernel_params): common.h, "Versioned structs" */
    uint32_t n_vocab;
    uint32_t context_width;        /* h */
    wm_seeding seeding;
    uint32_t field_bits;           /* 1, 2, 4, 8 or 16 */
    uint32_t threshold;            /* threshold / 2^field_bits = gamma */
    float delta;
    float account_delta;           /* 0: no account layer */
    unsigned char green_key[16];   /* secret */
    unsigned char minhash_key[16]; /* secret; used by minhash seeding only */
    unsigned char account_key[16]; /* secret; used by the account layer only */
} wm_kernel_params;

/* Fills *out with the watermark's kernel parameters, secret keys included.
 * @return WM_OK; WM_ERR_ARG (NULL wm or out, out->size unknown); WM_ERR_UNSUPPORTED (a selecting
 * scheme).  OUT: *out.  Thread-safe. */
WM_API WM_NODISCARD wm_status wm_kernel_params_get(const wm_watermark *wm, wm_kernel_params *out);

/* The seed after ctx (the last h of n_ctx tokens) into *seed, and
 * *has_seed false when n_ctx < h (nothing is biased there).
 * @return WM_OK; WM_ERR_ARG (NULL wm, seed or has_seed, NULL ctx with n_ctx > 0); WM_ERR_TOKEN (a
 * context token outside the vocabulary).  OUT: *seed, *has_seed.  Thread-safe. */
WM_API WM_NODISCARD wm_status wm_context_seed(const wm_watermark *wm, const wm_token *ctx, size_t n_ctx,
                                              uint64_t *seed, bool *has_seed);

/* Account `account`'s codeword: symbols[j] in 0..3 is the part it
 * names at position j.  Not secret on its own, but together with the
 * account key it is what lets anyone embed that account.
 * @return WM_OK; WM_ERR_ARG (NULL wm or symbols); WM_ERR_UNSUPPORTED (a key without an account
 * layer).  OUT: symbols.  Thread-safe. */
WM_API WM_NODISCARD wm_status wm_account_symbols(const wm_watermark *wm, uint64_t account,
                                                 uint8_t symbols[WM_ACCOUNT_POSITIONS]);

/* ---- which kernels run ---------------------------------------------------
 * The PRF, bias, conversion and sampler kernels exist once per instruction
 * set (scalar, AVX2 with FMA and F16C, AVX-512F with BMI2); every set gives
 * the same results bit for bit (tests/test_prf.c, test_api.c, test_dtype.c).
 * By default each watermark and sampler runs the widest this CPU has.  The
 * environment variable WM_CPU=scalar|avx2|avx512, read once per process
 * (at the first watermark made), forces one set, to test or measure the
 * narrower paths on a wide CPU.  Fail-closed: an unknown value, or a set
 * this CPU or build cannot run every kernel of, is refused, and then every
 * wm_watermark_new fails with WM_ERR_UNSUPPORTED; nothing silently runs
 * another set.  (Under avx2 the detection PRF, which has no AVX2 kernel,
 * runs the scalar one.)
 *
 * The set in use: "scalar", "avx2" or "avx512".
 * @return WM_OK; WM_ERR_ARG (NULL name); WM_ERR_UNSUPPORTED (WM_CPU refused, *name NULL).
 * OUT: *name, a static string.  Thread-safe. */
WM_API WM_NODISCARD wm_status wm_cpu_kernels(const char **name);

#ifdef __cplusplus
}
#endif
#endif
