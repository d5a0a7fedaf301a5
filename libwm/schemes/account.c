/* The account layer of the green-list scheme: which account's outputs these
 * are, on top of a green list that every account shares.
 *
 * Three keyed functions, each a PRF of its own sub-key (distinct from the
 * green list's, so all are independent of it and of each other):
 *
 *   position  j(s) = byte 0 of PRF_ka(s, POS_BLOCK) mod L: the position of
 *             the account's codeword that seed s reads;
 *   part      part(s, v) = field (v mod 64) of PRF_ka(s, v div 64), 2 bits:
 *             a keyed split of the vocabulary into q = 4 parts after s;
 *   codeword  c_u[j] = field j of PRF_kc(u, 0..3): L = 256 symbols of 2 bits
 *             for account u, from the master key alone (nothing is stored
 *             per account).
 *
 * Embedding for account u after seed s adds account_delta to the logits of
 * the tokens whose part is c_u[j(s)], green or not.  The part is
 * independent of the green list, so the boosted set is green in proportion
 * gamma and the base test's green rate does not move in expectation.
 * Detection (detect/attribute.c) counts, over the distinct scored tuples,
 * how many fall in each (position, part) cell. */
#include "internal.h"

#include <sodium.h>

/* Block index of the position PRF: far above every token block (< 2^26). */
#define POS_BLOCK (UINT64_C(1) << 63)

_Static_assert(WM_ACCOUNT_POSITIONS == 256 && WM_ACCOUNT_SYMBOLS == 4,
               "position() reads one byte and parts are 2-bit fields");

void wm__account_prepare(struct wm_watermark *wm, const unsigned char secret[32])
{
    crypto_kdf_derive_from_key(wm->ka, sizeof wm->ka, 1, "libwm-ac", secret);
    crypto_kdf_derive_from_key(wm->kc, sizeof wm->kc, 2, "libwm-ac", secret);
}

void wm__account_code(const wm_watermark *wm, uint64_t account, unsigned char code[WM__CODE_BYTES])
{
    wm__fill_scalar(wm->kc, account, 0, WM__CODE_BYTES / WM_BLOCK_BYTES, code);
}

unsigned wm__account_pos(const wm_watermark *wm, uint64_t seed)
{
    unsigned char b[WM_BLOCK_BYTES];
    wm__fill_scalar(wm->ka, seed, POS_BLOCK, 1, b);
    return b[0];
}

unsigned wm__account_part(const wm_watermark *wm, uint64_t seed, wm_token t)
{
    unsigned char b[WM_BLOCK_BYTES];
    wm__fill_scalar(wm->ka, seed, (uint32_t)t / 64, 1, b);
    return wm__field(b, (uint32_t)t % 64, 2);
}

/* The tokens of part c get delta: XOR every 2-bit field with c, and the
 * green list's own field test (field < 1 gets delta) does the rest, SIMD
 * kernels included. */
void wm__account_bias_row(const wm_watermark *wm, uint64_t seed, unsigned c, void *logits, wm_dtype dtype)
{
    wm__bias_fields_row(wm, wm->ka, seed, 2, (unsigned char)(c * 0x55u), 1, wm->account_delta, logits, dtype);
}

void wm__account_bias_candidates(const wm_watermark *wm, uint64_t seed, unsigned c, size_t n, const wm_token *ids,
                                 size_t ids_stride, float *logits, size_t logits_stride)
{
    wm__bias_fields_candidates(wm, wm->ka, seed, 2, (unsigned char)(c * 0x55u), 1, wm->account_delta, n, ids,
                               ids_stride, logits, logits_stride);
}
