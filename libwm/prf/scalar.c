/* The PRF kernels' scalar reference: every SIMD kernel equals these bit
 * for bit.  The PRF is PRF_k(s, j) = SipHash-2-4-128_k(LE64(s) || LE64(j))
 * for a context seed s and a block index j.  The green list (kgw) reads it as
 *
 * green(s, v) = field(v mod T) of SipHash-2-4-128_kg(LE64(s) || LE64(v div T)) < thresh
 *
 * where s is the context seed, T = 128 / b tokens share one PRF output and
 * field i is bits [i b, i b + b) of the 16 output bytes read LSB first.
 * Distinct (s, v) use distinct bits of distinct PRF inputs, so under H0 they
 * are independent, each green with probability thresh / 2^b = gamma exactly.
 * Packing T tokens into one call is what makes a full-vocabulary step cheap
 * (V / T calls) while a single membership stays one call.  Gumbel-max
 * reads the same blocks as four 32-bit uniforms (schemes/gumbel.c). */
#include "internal.h"

#include <sodium.h>

static void store64_le(unsigned char *p, uint64_t x)
{
    for (int i = 0; i < 8; i++) p[i] = (unsigned char)(x >> (8 * i));
}

void wm__fill_scalar(const unsigned char kg[16], uint64_t seed, uint64_t j0,
                     size_t n_blocks, unsigned char *out)
{
    unsigned char in[16];
    store64_le(in, seed);
    for (size_t b = 0; b < n_blocks; b++) {
        store64_le(in + 8, j0 + b);
        crypto_shorthash_siphashx24(out + b * WM_BLOCK_BYTES, in, sizeof in, kg);
    }
}

void wm__prf_many_scalar(const unsigned char kg[16], const uint64_t *seed, const uint64_t *j,
                         size_t n, unsigned char *out)
{
    unsigned char in[16];
    for (size_t i = 0; i < n; i++) {
        store64_le(in, seed[i]);
        store64_le(in + 8, j[i]);
        crypto_shorthash_siphashx24(out + i * WM_BLOCK_BYTES, in, sizeof in, kg);
    }
}

void wm__apply_scalar(const unsigned char *fields, size_t n_tok, unsigned bits,
                      uint32_t thresh, float delta, float *logits)
{
    /* Always add (0 or delta) so the SIMD path, which must add, matches bit
     * for bit, including -0.0f becoming +0.0f. */
    for (size_t v = 0; v < n_tok; v++) {
        unsigned bit = (unsigned)(v * bits);
        uint32_t f = bits == 16 ? (uint32_t)fields[2 * v] | ((uint32_t)fields[2 * v + 1] << 8)
                   : bits == 8  ? fields[v]
                                : (uint32_t)(fields[bit >> 3] >> (bit & 7)) & ((1u << bits) - 1);
        logits[v] += f < thresh ? delta : 0.0f;
    }
}
