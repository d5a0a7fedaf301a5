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
#define CHUNK_BLOCKS 64

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
 * green list's own kernel (field < 1 gets delta) does the rest, SIMD
 * included. */
void wm__account_bias_row(const wm_watermark *wm, uint64_t seed, unsigned c, float *logits)
{
    unsigned char buf[CHUNK_BLOCKS * WM_BLOCK_BYTES];
    const unsigned char mask = (unsigned char)(c * 0x55u);
    size_t n_blocks = (wm->n_vocab + 63) / 64;
    for (size_t j = 0; j < n_blocks; j += CHUNK_BLOCKS) {
        size_t m = n_blocks - j < CHUNK_BLOCKS ? n_blocks - j : CHUNK_BLOCKS;
        size_t v0 = j * 64, n_tok = m * 64;
        if (n_tok > wm->n_vocab - v0) n_tok = wm->n_vocab - v0;
        wm->fill(wm->ka, seed, j, m, buf);
        for (size_t i = 0; i < m * WM_BLOCK_BYTES; i++) buf[i] ^= mask;
        wm->apply(buf, n_tok, 2, 1, wm->account_delta, logits + v0);
    }
}

void wm__account_bias_candidates(const wm_watermark *wm, uint64_t seed, unsigned c, size_t n, const wm_token *ids,
                                 size_t ids_stride, float *logits, size_t logits_stride)
{
    const char *ip = (const char *)ids;
    char *lp = (char *)logits;
    uint64_t have = UINT64_MAX;
    unsigned char block[WM_BLOCK_BYTES];
    for (size_t i = 0; i < n; i++) {
        wm_token t;
        memcpy(&t, ip + i * ids_stride, sizeof t);
        if ((uint32_t)t >= wm->n_vocab) continue; /* padding is in no part */
        uint64_t j = (uint32_t)t / 64;
        if (j != have) {
            wm__fill_scalar(wm->ka, seed, j, 1, block);
            have = j;
        }
        float f;
        memcpy(&f, lp + i * logits_stride, sizeof f);
        f = wm__field(block, (uint32_t)t % 64, 2) == c ? f + wm->account_delta : f;
        memcpy(lp + i * logits_stride, &f, sizeof f);
    }
}
