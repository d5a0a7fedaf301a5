/* AVX-512 kernels: the PRF sixteen blocks at a time (two interleaved
 * SipHash states), the bias sixteen logits at a time, and the fused row
 * kernel for 1- and 2-bit fields.  Bit-identical to scalar.c. */
#include "kernel.h"

#ifdef WM_HAVE_X86_KERNELS

#define SIPROUND_Z                                                    \
    do {                                                              \
        v0 = _mm512_add_epi64(v0, v1); v1 = _mm512_rol_epi64(v1, 13); \
        v1 = _mm512_xor_si512(v1, v0); v0 = _mm512_rol_epi64(v0, 32); \
        v2 = _mm512_add_epi64(v2, v3); v3 = _mm512_rol_epi64(v3, 16); \
        v3 = _mm512_xor_si512(v3, v2); v0 = _mm512_add_epi64(v0, v3); \
        v3 = _mm512_rol_epi64(v3, 21); v3 = _mm512_xor_si512(v3, v0); \
        v2 = _mm512_add_epi64(v2, v1); v1 = _mm512_rol_epi64(v1, 17); \
        v1 = _mm512_xor_si512(v1, v2); v2 = _mm512_rol_epi64(v2, 32); \
    } while (0)

/* Two interleaved SipRounds on independent states (a and b): each round is a
 * chain of dependent adds, rotates and xors, so one state leaves most of the
 * core idle; two fill it. */
#define SIPROUND_Z2                                                                               \
    do {                                                                                          \
        a0 = _mm512_add_epi64(a0, a1); b0 = _mm512_add_epi64(b0, b1);                             \
        a1 = _mm512_rol_epi64(a1, 13); b1 = _mm512_rol_epi64(b1, 13);                             \
        a1 = _mm512_xor_si512(a1, a0); b1 = _mm512_xor_si512(b1, b0);                             \
        a0 = _mm512_rol_epi64(a0, 32); b0 = _mm512_rol_epi64(b0, 32);                             \
        a2 = _mm512_add_epi64(a2, a3); b2 = _mm512_add_epi64(b2, b3);                             \
        a3 = _mm512_rol_epi64(a3, 16); b3 = _mm512_rol_epi64(b3, 16);                             \
        a3 = _mm512_xor_si512(a3, a2); b3 = _mm512_xor_si512(b3, b2);                             \
        a0 = _mm512_add_epi64(a0, a3); b0 = _mm512_add_epi64(b0, b3);                             \
        a3 = _mm512_rol_epi64(a3, 21); b3 = _mm512_rol_epi64(b3, 21);                             \
        a3 = _mm512_xor_si512(a3, a0); b3 = _mm512_xor_si512(b3, b0);                             \
        a2 = _mm512_add_epi64(a2, a1); b2 = _mm512_add_epi64(b2, b1);                             \
        a1 = _mm512_rol_epi64(a1, 17); b1 = _mm512_rol_epi64(b1, 17);                             \
        a1 = _mm512_xor_si512(a1, a2); b1 = _mm512_xor_si512(b1, b2);                             \
        a2 = _mm512_rol_epi64(a2, 32); b2 = _mm512_rol_epi64(b2, 32);                             \
    } while (0)

#define X(v, m) _mm512_xor_si512((v), (m))

/* For 1- and 2-bit fields (gamma = k/2 or k/4, the default 0.25 among
 * them) the green mask of 64 / b tokens comes from scalar bit operations on
 * one 64-bit word (field < thresh as boolean algebra on a field's two bits,
 * then PEXT to one bit per token).  That replaces the permute/shift/compare
 * of fields16 and leaves the vector loop at load-add-store, which is what
 * the plain pass does. */
AVX512_BMI2 static inline __attribute__((always_inline)) uint64_t
green64_narrow(uint64_t w, unsigned bits, uint32_t thresh)
{
    if (bits == 1) return thresh == 0 ? 0 : thresh == 1 ? ~w : ~0ull;
    const uint64_t even = 0x5555555555555555ull;
    uint64_t lo = w & even, hi = (w >> 1) & even, sel;
    switch (thresh) {
    case 0: sel = 0; break;
    case 1: sel = ~(lo | hi); break; /* field == 0 */
    case 2: sel = ~hi; break;        /* field <= 1 */
    case 3: sel = ~(lo & hi); break; /* field <= 2 */
    default: sel = ~0ull; break;
    }
    return _pext_u64(sel & even, even);
}

/* Apply 64-bit words [w0, w1) of a PRF buffer (1- or 2-bit fields) to the
 * logits they cover. */
AVX512_BMI2 static inline __attribute__((always_inline)) void
apply_words(const unsigned char *buf, size_t w0, size_t w1, unsigned bits, uint32_t thresh,
            __m512 dv, float *logits)
{
    const size_t per_word = 64 / bits;
    for (size_t w = w0; w < w1; w++) {
        uint64_t x;
        memcpy(&x, buf + 8 * w, 8);
        uint64_t green = green64_narrow(x, bits, thresh);
        for (size_t q = 0; q < per_word; q += 16) {
            /* maskz: non-green lanes add +0.0f, exactly as the scalar path */
            __m512 bias = _mm512_maskz_mov_ps((__mmask16)(green >> q), dv);
            float *l = logits + w * per_word + q;
            _mm512_storeu_ps(l, _mm512_add_ps(_mm512_loadu_ps(l), bias));
        }
    }
}

/* SipHash of the 16 blocks j .. j + 15 from the state after the seed (st),
 * to out (256 bytes): two interleaved 8-lane states with native 64-bit
 * rotates, so a rotation costs one instruction instead of three and the two
 * dependency chains fill the core.  Meanwhile it applies np words of an
 * earlier group's buffer `prev` to pl, in four slices placed between the
 * SipRounds (np = 0: a pure fill; see bias_fused). */
AVX512_BMI2 static inline __attribute__((always_inline)) void
sip16_group(const __m512i st[4], uint64_t j, unsigned char *out, const unsigned char *prev,
            size_t np, unsigned bits, uint32_t thresh, __m512 dv, float *pl)
{
    const __m512i fin = _mm512_set1_epi64((long long)(16ULL << 56));
    const __m512i ee = _mm512_set1_epi64(0xee), dd = _mm512_set1_epi64(0xdd);
    const __m512i first = _mm512_setr_epi64(0, 8, 1, 9, 2, 10, 3, 11);
    const __m512i second = _mm512_setr_epi64(4, 12, 5, 13, 6, 14, 7, 15);
    __m512i ma = _mm512_add_epi64(_mm512_set1_epi64((long long)j), _mm512_setr_epi64(0, 1, 2, 3, 4, 5, 6, 7));
    __m512i mb = _mm512_add_epi64(ma, _mm512_set1_epi64(8));
    __m512i a0 = st[0], a1 = st[1], a2 = st[2], a3 = X(st[3], ma);
    __m512i b0 = st[0], b1 = st[1], b2 = st[2], b3 = X(st[3], mb);
    SIPROUND_Z2; SIPROUND_Z2;
    apply_words(prev, 0, np / 4, bits, thresh, dv, pl);
    a0 = X(a0, ma); b0 = X(b0, mb);
    a3 = X(a3, fin); b3 = X(b3, fin);
    SIPROUND_Z2; SIPROUND_Z2;
    a0 = X(a0, fin); b0 = X(b0, fin);
    a2 = X(a2, ee); b2 = X(b2, ee);
    SIPROUND_Z2; SIPROUND_Z2;
    apply_words(prev, np / 4, np / 2, bits, thresh, dv, pl);
    SIPROUND_Z2; SIPROUND_Z2;
    __m512i alo = X(X(a0, a1), X(a2, a3)), blo = X(X(b0, b1), X(b2, b3));
    a1 = X(a1, dd); b1 = X(b1, dd);
    SIPROUND_Z2; SIPROUND_Z2;
    apply_words(prev, np / 2, 3 * np / 4, bits, thresh, dv, pl);
    SIPROUND_Z2; SIPROUND_Z2;
    apply_words(prev, 3 * np / 4, np, bits, thresh, dv, pl);
    __m512i ahi = X(X(a0, a1), X(a2, a3)), bhi = X(X(b0, b1), X(b2, b3));
    _mm512_storeu_si512(out, _mm512_permutex2var_epi64(alo, first, ahi));
    _mm512_storeu_si512(out + 64, _mm512_permutex2var_epi64(alo, second, ahi));
    _mm512_storeu_si512(out + 128, _mm512_permutex2var_epi64(blo, first, bhi));
    _mm512_storeu_si512(out + 192, _mm512_permutex2var_epi64(blo, second, bhi));
}

AVX512_BMI2 static inline __attribute__((always_inline)) void
sip_broadcast(const unsigned char kg[16], uint64_t seed, __m512i st[4])
{
    uint64_t s[4];
    sip_absorb_seed(kg, seed, s);
    for (int i = 0; i < 4; i++) st[i] = _mm512_set1_epi64((long long)s[i]);
}

NOINLINE AVX512_BMI2 void wm__fill_avx512_raw(const unsigned char kg[16], uint64_t seed, uint64_t j0,
                                    size_t n_blocks, unsigned char *out)
{
    __m512i st[4];
    sip_broadcast(kg, seed, st);
    size_t b = 0;
    for (; b + 16 <= n_blocks; b += 16)
        sip16_group(st, j0 + b, out + b * 16, NULL, 0, 2, 0, _mm512_setzero_ps(), NULL);
    if (b < n_blocks) wm__fill_avx2_raw(kg, seed, j0 + b, n_blocks - b, out + b * 16);
}

/* SipHash over (seed[i], j[i]) for independent pairs: what detection needs,
 * where every scored token has its own context.  No shared first word, so
 * each lane runs all 14 rounds; eight lanes at a time. */
NOINLINE AVX512 void wm__prf_many_avx512_raw(const unsigned char kg[16], const uint64_t *seed,
                                   const uint64_t *j, size_t n, unsigned char *out)
{
    uint64_t k0 = load64_le(kg), k1 = load64_le(kg + 8);
    const __m512i fin = _mm512_set1_epi64((long long)(16ULL << 56));
    const __m512i ee = _mm512_set1_epi64(0xee), dd = _mm512_set1_epi64(0xdd);
    const __m512i first = _mm512_setr_epi64(0, 8, 1, 9, 2, 10, 3, 11);
    const __m512i second = _mm512_setr_epi64(4, 12, 5, 13, 6, 14, 7, 15);
    size_t b = 0;
    for (; b + 8 <= n; b += 8) {
        __m512i m0 = _mm512_loadu_si512(seed + b), m1 = _mm512_loadu_si512(j + b);
        __m512i v0 = _mm512_set1_epi64((long long)(0x736f6d6570736575ULL ^ k0));
        __m512i v1 = _mm512_set1_epi64((long long)(0x646f72616e646f83ULL ^ k1));
        __m512i v2 = _mm512_set1_epi64((long long)(0x6c7967656e657261ULL ^ k0));
        __m512i v3 = _mm512_set1_epi64((long long)(0x7465646279746573ULL ^ k1));
        v3 = _mm512_xor_si512(v3, m0); SIPROUND_Z; SIPROUND_Z; v0 = _mm512_xor_si512(v0, m0);
        v3 = _mm512_xor_si512(v3, m1); SIPROUND_Z; SIPROUND_Z; v0 = _mm512_xor_si512(v0, m1);
        v3 = _mm512_xor_si512(v3, fin); SIPROUND_Z; SIPROUND_Z; v0 = _mm512_xor_si512(v0, fin);
        v2 = _mm512_xor_si512(v2, ee);
        SIPROUND_Z; SIPROUND_Z; SIPROUND_Z; SIPROUND_Z;
        __m512i lo = _mm512_xor_si512(_mm512_xor_si512(v0, v1), _mm512_xor_si512(v2, v3));
        v1 = _mm512_xor_si512(v1, dd);
        SIPROUND_Z; SIPROUND_Z; SIPROUND_Z; SIPROUND_Z;
        __m512i hi = _mm512_xor_si512(_mm512_xor_si512(v0, v1), _mm512_xor_si512(v2, v3));
        _mm512_storeu_si512(out + b * 16, _mm512_permutex2var_epi64(lo, first, hi));
        _mm512_storeu_si512(out + b * 16 + 64, _mm512_permutex2var_epi64(lo, second, hi));
    }
    if (b < n) wm__prf_many_scalar(kg, seed + b, j + b, n - b, out + b * 16);
}

/* Sixteen b-bit fields (b = 4, 8 or 16; 1 and 2 take apply_narrow) from
 * exactly 2 b bytes at p (no over-read), as 32-bit lanes: lane i takes word
 * (i b) / 32 shifted right by (i b) mod 32. */
AVX512 static inline __attribute__((always_inline)) __m512i fields16(const unsigned char *p,
                                                                     unsigned bits)
{
    __m128i raw;
    if (bits == 4) {
        raw = _mm_loadl_epi64((const __m128i *)p);
    } else if (bits == 8) {
        raw = _mm_loadu_si128((const __m128i *)p);
    } else {
        __m512i wide = _mm512_castsi256_si512(_mm256_loadu_si256((const __m256i *)p));
        return _mm512_cvtepu16_epi32(_mm512_castsi512_si256(wide));
    }
    if (bits == 8) return _mm512_cvtepu8_epi32(raw);
    const __m512i lane = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    const __m512i pos = _mm512_mullo_epi32(lane, _mm512_set1_epi32((int)bits));
    const __m512i word = _mm512_srli_epi32(pos, 5), shift = _mm512_and_si512(pos, _mm512_set1_epi32(31));
    __m512i x = _mm512_permutexvar_epi32(word, _mm512_castsi128_si512(raw));
    return _mm512_and_si512(_mm512_srlv_epi32(x, shift), _mm512_set1_epi32((1 << bits) - 1));
}

AVX512_BMI2 static inline __attribute__((always_inline)) void
apply_narrow(const unsigned char *fields, size_t n_tok, unsigned bits, uint32_t thresh,
             float delta, float *logits)
{
    const size_t per_word = 64 / bits;
    /* Reach a 64-byte boundary first (when the fields allow it): a 512-bit
     * store that straddles two cache lines costs about twice as much, and
     * this loop is store-bound. */
    size_t v = ((64 - ((uintptr_t)logits & 63)) & 63) / 4;
    if ((uintptr_t)logits % 4 || (v * bits) % 8 || v > n_tok) v = 0;
    if (v) wm__apply_scalar(fields, v, bits, thresh, delta, logits);
    size_t n_words = (n_tok - v) / per_word;
    apply_words(fields + v * bits / 8, 0, n_words, bits, thresh, _mm512_set1_ps(delta), logits + v);
    v += n_words * per_word;
    if (v < n_tok) wm__apply_scalar(fields + v * bits / 8, n_tok - v, bits, thresh, delta, logits + v);
}

/* thresh as a compile-time constant for the common values, so the loop
 * carries no switch. */
AVX512_BMI2 static void apply_narrow_dispatch(const unsigned char *fields, size_t n_tok, unsigned bits,
                                              uint32_t thresh, float delta, float *logits)
{
    if (bits == 1) {
        apply_narrow(fields, n_tok, 1, thresh, delta, logits);
        return;
    }
    switch (thresh) {
    case 1: apply_narrow(fields, n_tok, 2, 1, delta, logits); break;
    case 2: apply_narrow(fields, n_tok, 2, 2, delta, logits); break;
    case 3: apply_narrow(fields, n_tok, 2, 3, delta, logits); break;
    default: apply_narrow(fields, n_tok, 2, thresh, delta, logits); break;
    }
}

/* Fill and apply fused, for 1- and 2-bit fields.  Filling is bound by the
 * vector ALUs (SipHash), applying by loads and stores; run one after the
 * other they add up, so each group of 16 blocks is hashed while the previous
 * group's 32 words are applied, in slices placed between the SipRounds so
 * that both sit in the out-of-order window together.  Same arithmetic as
 * fill + apply, so bit-identical to the scalar path. */
AVX512_BMI2 static inline __attribute__((always_inline)) void
bias_fused(const unsigned char kg[16], uint64_t seed, uint64_t j0, size_t n_tok, unsigned bits, uint32_t thresh,
           float delta, float *logits)
{
    __m512i st[4];
    sip_broadcast(kg, seed, st);
    const __m512 dv = _mm512_set1_ps(delta);
    const size_t group_tok = 16 * (128 / bits), n_groups = n_tok / group_tok;
    unsigned char buf[2][256];
    for (size_t g = 0; g < n_groups; g++) /* hash group g, apply group g - 1 */
        sip16_group(st, j0 + 16 * g, buf[g & 1], buf[(g + 1) & 1], g ? 32 : 0, bits, thresh, dv,
                    g ? logits + (g - 1) * group_tok : logits);
    if (n_groups) apply_words(buf[(n_groups - 1) & 1], 0, 32, bits, thresh, dv, logits + (n_groups - 1) * group_tok);
    /* The rest (fewer than 16 blocks) the unfused way. */
    size_t v = n_groups * group_tok, tpb = 128 / bits;
    if (v < n_tok) {
        unsigned char rest[16 * 16];
        size_t nb = (n_tok - v + tpb - 1) / tpb;
        wm__fill_avx2_raw(kg, seed, j0 + 16 * n_groups, nb, rest);
        apply_narrow(rest, n_tok - v, bits, thresh, delta, logits + v);
    }
}

NOINLINE AVX512_BMI2 void wm__bias_row_avx512_raw(const unsigned char kg[16], uint64_t seed, uint64_t j0,
                                                  size_t n_tok, unsigned bits, uint32_t thresh, float delta,
                                                  float *logits)
{
    if (bits == 1) bias_fused(kg, seed, j0, n_tok, 1, thresh, delta, logits);
    else if (thresh == 1) bias_fused(kg, seed, j0, n_tok, 2, 1, delta, logits);
    else bias_fused(kg, seed, j0, n_tok, 2, thresh, delta, logits);
}

/* ---- two 2-bit field lists in one pass (the green list and an account's
 * part: wm_bias_row2_fn) ---------------------------------------------------- */

/* x rounded to bf16 or f16 and widened back, in a register: what narrowing
 * the row and widening it again (dtype_avx512.c, equal to dtype_scalar.c)
 * gives, NaN made the canonical NaN of its sign included. */
AVX512 static inline __attribute__((always_inline)) __m512 round16(__m512 x, wm_dtype round)
{
    if (round == WM_DTYPE_BF16) {
        __m512i u = _mm512_castps_si512(x);
        __m512i r = _mm512_add_epi32(u, _mm512_add_epi32(_mm512_set1_epi32(0x7fff),
                                                         _mm512_and_si512(_mm512_srli_epi32(u, 16), _mm512_set1_epi32(1))));
        r = _mm512_and_si512(r, _mm512_set1_epi32((int)0xffff0000u));
        r = _mm512_mask_mov_epi32(r, _mm512_cmp_ps_mask(x, x, _CMP_UNORD_Q), _mm512_set1_epi32(0x7fc00000));
        return _mm512_castsi512_ps(r);
    }
    if (round == WM_DTYPE_F16) {
        __m512i canon = _mm512_or_si512(_mm512_and_si512(_mm512_castps_si512(x), _mm512_set1_epi32((int)0x80000000u)),
                                        _mm512_set1_epi32(0x7fc00000));
        x = _mm512_mask_mov_ps(x, _mm512_cmp_ps_mask(x, x, _CMP_UNORD_Q), _mm512_castsi512_ps(canon));
        return _mm512_cvtph_ps(_mm512_cvtps_ph(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
    }
    return x;
}

/* Words [w0, w1) of both lists' buffers (2-bit fields, 32 tokens a word;
 * a's bytes XORed with amask first) applied to the logits they cover: load,
 * add g's bias, round, add a's, store. */
AVX512_BMI2 static inline __attribute__((always_inline)) void
apply_words2(const unsigned char *bg, const unsigned char *ba, size_t w0, size_t w1, uint32_t tg, uint32_t ta,
             uint64_t amask, __m512 dg, __m512 da, wm_dtype round, float *logits)
{
    for (size_t w = w0; w < w1; w++) {
        uint64_t x, y;
        memcpy(&x, bg + 8 * w, 8);
        memcpy(&y, ba + 8 * w, 8);
        uint64_t mg = green64_narrow(x, 2, tg), ma = green64_narrow(y ^ amask, 2, ta);
        for (size_t q = 0; q < 32; q += 16) {
            float *l = logits + w * 32 + q;
            __m512 v = _mm512_add_ps(_mm512_loadu_ps(l), _mm512_maskz_mov_ps((__mmask16)(mg >> q), dg));
            v = round16(v, round);
            _mm512_storeu_ps(l, _mm512_add_ps(v, _mm512_maskz_mov_ps((__mmask16)(ma >> q), da)));
        }
    }
}

/* SipHash of blocks j .. j + 7 under both keys (states sg and sa after the
 * seed), the two 8-lane states interleaved as in sip16_group; g's 128 bytes
 * to out, a's to out + 128.  Meanwhile the previous group's np words of
 * both are applied to pl, in four slices between the SipRounds. */
AVX512_BMI2 static inline __attribute__((always_inline)) void
sip8x2_group(const __m512i sg[4], const __m512i sa[4], uint64_t j, unsigned char *out, const unsigned char *prev,
             size_t np, uint32_t tg, uint32_t ta, uint64_t amask, __m512 dg, __m512 da, wm_dtype round, float *pl)
{
    const __m512i fin = _mm512_set1_epi64((long long)(16ULL << 56));
    const __m512i ee = _mm512_set1_epi64(0xee), dd = _mm512_set1_epi64(0xdd);
    const __m512i first = _mm512_setr_epi64(0, 8, 1, 9, 2, 10, 3, 11);
    const __m512i second = _mm512_setr_epi64(4, 12, 5, 13, 6, 14, 7, 15);
    const unsigned char *pa = prev ? prev + 128 : NULL;
    __m512i m = _mm512_add_epi64(_mm512_set1_epi64((long long)j), _mm512_setr_epi64(0, 1, 2, 3, 4, 5, 6, 7));
    __m512i a0 = sg[0], a1 = sg[1], a2 = sg[2], a3 = X(sg[3], m);
    __m512i b0 = sa[0], b1 = sa[1], b2 = sa[2], b3 = X(sa[3], m);
    SIPROUND_Z2; SIPROUND_Z2;
    apply_words2(prev, pa, 0, np / 4, tg, ta, amask, dg, da, round, pl);
    a0 = X(a0, m); b0 = X(b0, m);
    a3 = X(a3, fin); b3 = X(b3, fin);
    SIPROUND_Z2; SIPROUND_Z2;
    a0 = X(a0, fin); b0 = X(b0, fin);
    a2 = X(a2, ee); b2 = X(b2, ee);
    SIPROUND_Z2; SIPROUND_Z2;
    apply_words2(prev, pa, np / 4, np / 2, tg, ta, amask, dg, da, round, pl);
    SIPROUND_Z2; SIPROUND_Z2;
    __m512i alo = X(X(a0, a1), X(a2, a3)), blo = X(X(b0, b1), X(b2, b3));
    a1 = X(a1, dd); b1 = X(b1, dd);
    SIPROUND_Z2; SIPROUND_Z2;
    apply_words2(prev, pa, np / 2, 3 * np / 4, tg, ta, amask, dg, da, round, pl);
    SIPROUND_Z2; SIPROUND_Z2;
    apply_words2(prev, pa, 3 * np / 4, np, tg, ta, amask, dg, da, round, pl);
    __m512i ahi = X(X(a0, a1), X(a2, a3)), bhi = X(X(b0, b1), X(b2, b3));
    _mm512_storeu_si512(out, _mm512_permutex2var_epi64(alo, first, ahi));
    _mm512_storeu_si512(out + 64, _mm512_permutex2var_epi64(alo, second, ahi));
    _mm512_storeu_si512(out + 128, _mm512_permutex2var_epi64(blo, first, bhi));
    _mm512_storeu_si512(out + 192, _mm512_permutex2var_epi64(blo, second, bhi));
}

/* Both lists fused, as bias_fused is for one: each group of 8 blocks (512
 * tokens) is hashed under both keys while the previous group is applied.
 * The same adds in the same order as g's pass and then a's, so bit-identical
 * to the two-pass composition (and to the scalar path). */
AVX512_BMI2 static inline __attribute__((always_inline)) void
bias_fused2(const wm__fields *g, const wm__fields *a, uint32_t tg, uint32_t ta, uint64_t seed, uint64_t j0,
            size_t n_tok, wm_dtype round, float *logits)
{
    __m512i sg[4], sa[4];
    sip_broadcast(g->key, seed, sg);
    sip_broadcast(a->key, seed, sa);
    const __m512 dg = _mm512_set1_ps(g->delta), da = _mm512_set1_ps(a->delta);
    const uint64_t amask = 0x0101010101010101ull * a->mask;
    const size_t group_tok = 8 * 64, n_groups = n_tok / group_tok;
    unsigned char buf[2][256];
    for (size_t k = 0; k < n_groups; k++) /* hash group k, apply group k - 1 */
        sip8x2_group(sg, sa, j0 + 8 * k, buf[k & 1], k ? buf[(k + 1) & 1] : NULL, k ? 16 : 0, tg, ta, amask, dg,
                     da, round, k ? logits + (k - 1) * group_tok : logits);
    if (n_groups)
        apply_words2(buf[(n_groups - 1) & 1], buf[(n_groups - 1) & 1] + 128, 0, 16, tg, ta, amask, dg, da, round,
                     logits + (n_groups - 1) * group_tok);
    /* The rest (fewer than 8 blocks) the unfused way: g, the rounding, a. */
    size_t v = n_groups * group_tok;
    if (v < n_tok) {
        unsigned char rg[8 * 16], ra[8 * 16];
        uint16_t r16[8 * 64];
        size_t n = n_tok - v, nb = (n + 63) / 64;
        wm__fill_avx2_raw(g->key, seed, j0 + 8 * n_groups, nb, rg);
        wm__fill_avx2_raw(a->key, seed, j0 + 8 * n_groups, nb, ra);
        for (size_t i = 0; i < nb * 16; i++) ra[i] ^= a->mask;
        apply_narrow(rg, n, 2, tg, g->delta, logits + v);
        if (round != WM_DTYPE_F32) {
            wm__narrow_avx512_raw(logits + v, n, round, r16);
            wm__widen_avx512_raw(r16, round, n, logits + v);
        }
        apply_narrow(ra, n, 2, ta, a->delta, logits + v);
    }
}

NOINLINE AVX512_BMI2 void wm__bias_row2_avx512_raw(const wm__fields *g, const wm__fields *a, uint64_t seed,
                                                   uint64_t j0, size_t n_tok, wm_dtype round, float *logits)
{
    /* thresh 1 (gamma 1/4, the default; an account's part) as a constant */
    int ones = g->thresh == 1 && a->thresh == 1;
    switch (round) {
    case WM_DTYPE_BF16:
        if (ones) bias_fused2(g, a, 1, 1, seed, j0, n_tok, WM_DTYPE_BF16, logits);
        else bias_fused2(g, a, g->thresh, a->thresh, seed, j0, n_tok, WM_DTYPE_BF16, logits);
        break;
    case WM_DTYPE_F16:
        if (ones) bias_fused2(g, a, 1, 1, seed, j0, n_tok, WM_DTYPE_F16, logits);
        else bias_fused2(g, a, g->thresh, a->thresh, seed, j0, n_tok, WM_DTYPE_F16, logits);
        break;
    default:
        if (ones) bias_fused2(g, a, 1, 1, seed, j0, n_tok, WM_DTYPE_F32, logits);
        else bias_fused2(g, a, g->thresh, a->thresh, seed, j0, n_tok, WM_DTYPE_F32, logits);
        break;
    }
}

AVX512 static inline __attribute__((always_inline)) void
apply16_width(const unsigned char *fields, size_t n_tok, unsigned bits, uint32_t thresh,
              float delta, float *logits)
{
    const __m512i th = _mm512_set1_epi32((int)thresh);
    const __m512 dv = _mm512_set1_ps(delta);
    size_t v = 0;
    for (; v + 16 <= n_tok; v += 16) {
        __mmask16 green = _mm512_cmplt_epu32_mask(fields16(fields + v * bits / 8, bits), th);
        /* maskz: non-green lanes add +0.0f, exactly as the scalar path */
        __m512 bias = _mm512_maskz_mov_ps(green, dv);
        _mm512_storeu_ps(logits + v, _mm512_add_ps(_mm512_loadu_ps(logits + v), bias));
    }
    if (v < n_tok) wm__apply_scalar(fields + v * bits / 8, n_tok - v, bits, thresh, delta, logits + v);
}

NOINLINE AVX512_BMI2 void wm__apply_avx512_raw(const unsigned char *fields, size_t n_tok, unsigned bits,
                                     uint32_t thresh, float delta, float *logits)
{
    switch (bits) {
    case 1:
    case 2: apply_narrow_dispatch(fields, n_tok, bits, thresh, delta, logits); break;
    case 4: apply16_width(fields, n_tok, 4, thresh, delta, logits); break;
    case 8: apply16_width(fields, n_tok, 8, thresh, delta, logits); break;
    default: apply16_width(fields, n_tok, 16, thresh, delta, logits); break;
    }
}

#endif
