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

/* The layer's state (wm->account_state). */
typedef struct account_state {
    unsigned char ka[16]; /* positions and parts */
    unsigned char kc[16]; /* codewords */
    float delta;
} account_state;

static const account_state *state(const wm_watermark *wm) { return wm->account_state; }

static wm_status prepare(const wm_watermark *wm, void *state, const unsigned char secret[32], double delta)
{
    (void)wm;
    account_state *a = state;
    if (crypto_kdf_derive_from_key(a->ka, sizeof a->ka, 1, "libwm-ac", secret) ||
        crypto_kdf_derive_from_key(a->kc, sizeof a->kc, 2, "libwm-ac", secret))
        return WM_ERR_CRYPTO;
    a->delta = (float)delta;
    return WM_OK;
}

void wm__account_code(const wm_watermark *wm, uint64_t account, unsigned char code[WM__CODE_BYTES])
{
    wm__fill_scalar(state(wm)->kc, account, 0, WM__CODE_BYTES / WM_BLOCK_BYTES, code);
    wm__burn_stack_small(); /* the keyed SipHash state: not left behind */
}

/* n codewords at once: 4 blocks each, SIMD across (account, block) pairs. */
static void codes(const wm_watermark *wm, const uint64_t *account, size_t n, unsigned char *code)
{
    enum { PAIRS = 64, PER = WM__CODE_BYTES / WM_BLOCK_BYTES };
    uint64_t seed[PAIRS], j[PAIRS];
    for (size_t i = 0; i < n; i += PAIRS / PER) {
        size_t m = n - i < PAIRS / PER ? n - i : PAIRS / PER;
        for (size_t a = 0; a < PER * m; a++) seed[a] = account[i + a / PER], j[a] = a % PER;
        wm->prf_many(state(wm)->kc, seed, j, PER * m, code + i * WM__CODE_BYTES);
    }
}

unsigned wm__account_pos(const wm_watermark *wm, uint64_t seed)
{
    unsigned char b[WM_BLOCK_BYTES];
    wm__fill_scalar(state(wm)->ka, seed, POS_BLOCK, 1, b);
    return b[0];
}

unsigned wm__account_part(const wm_watermark *wm, uint64_t seed, wm_token t)
{
    unsigned char b[WM_BLOCK_BYTES];
    wm__fill_scalar(state(wm)->ka, seed, (uint32_t)t / 64, 1, b);
    return wm__field(b, (uint32_t)t % 64, 2);
}

/* The tokens of part c get delta: XOR every 2-bit field with c, and the
 * field test (field < 1 gets delta) does the rest, SIMD kernels included. */
static wm__fields part_fields(const wm_watermark *wm, unsigned c)
{
    return (wm__fields){ .key = state(wm)->ka, .bits = 2, .mask = (unsigned char)(c * 0x55u), .thresh = 1,
                         .delta = state(wm)->delta, .fused = NULL };
}

static void fields(const wm_watermark *wm, unsigned c, wm__fields *out) { *out = part_fields(wm, c); }

static void bias_row(const wm_watermark *wm, uint64_t seed, unsigned c, void *logits, wm_dtype dtype)
{
    wm__fields f = part_fields(wm, c);
    wm__bias_fields_row(wm, &f, seed, logits, dtype);
}

static void bias_candidates(const wm_watermark *wm, uint64_t seed, unsigned c, size_t n, const wm_token *ids,
                            size_t ids_stride, float *logits, size_t logits_stride)
{
    wm__fields f = part_fields(wm, c);
    wm__bias_fields_candidates(wm, &f, seed, n, ids, ids_stride, logits, logits_stride);
}

static void kernel_params(const wm_watermark *wm, wm_kernel_params *out)
{
    out->account_delta = state(wm)->delta;
    memcpy(out->account_key, state(wm)->ka, sizeof state(wm)->ka);
}

const wm__account_layer wm__account_parts = {
    .version = WM__ACCOUNT_LAYER_VERSION,
    .size = sizeof(wm__account_layer),
    .state_bytes = sizeof(account_state),
    .prepare = prepare,
    .codes = codes,
    .pos = wm__account_pos,
    .part = wm__account_part,
    .bias_row = bias_row,
    .bias_candidates = bias_candidates,
    .kernel_params = kernel_params,
    .fields = fields,
};
