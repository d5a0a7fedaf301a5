/* AVX2 kernels: the PRF four blocks at a time, the bias eight logits at a
 * time.  Bit-identical to scalar.c. */
#include "kernel.h"

#ifdef WM_HAVE_X86_KERNELS

AVX2 static inline __m256i rotl(__m256i x, int b)
{
    return _mm256_or_si256(_mm256_slli_epi64(x, b), _mm256_srli_epi64(x, 64 - b));
}

AVX2 static inline __m256i rotl16(__m256i x)
{
    const __m256i m = _mm256_setr_epi8(6, 7, 0, 1, 2, 3, 4, 5, 14, 15, 8, 9, 10, 11, 12, 13,
                                       6, 7, 0, 1, 2, 3, 4, 5, 14, 15, 8, 9, 10, 11, 12, 13);
    return _mm256_shuffle_epi8(x, m);
}

#define ROTL32(x) _mm256_shuffle_epi32((x), _MM_SHUFFLE(2, 3, 0, 1))

#define SIPROUND_V                                                   \
    do {                                                             \
        v0 = _mm256_add_epi64(v0, v1); v1 = rotl(v1, 13);            \
        v1 = _mm256_xor_si256(v1, v0); v0 = ROTL32(v0);              \
        v2 = _mm256_add_epi64(v2, v3); v3 = rotl16(v3);              \
        v3 = _mm256_xor_si256(v3, v2); v0 = _mm256_add_epi64(v0, v3);\
        v3 = rotl(v3, 21); v3 = _mm256_xor_si256(v3, v0);            \
        v2 = _mm256_add_epi64(v2, v1); v1 = rotl(v1, 17);            \
        v1 = _mm256_xor_si256(v1, v2); v2 = ROTL32(v2);              \
    } while (0)

NOINLINE AVX2 void wm__fill_avx2_raw(const unsigned char kg[16], uint64_t seed, uint64_t j0,
                           size_t n_blocks, unsigned char *out)
{
    uint64_t st[4];
    sip_absorb_seed(kg, seed, st);
    const uint64_t s0 = st[0], s1 = st[1], s2 = st[2], s3 = st[3];

    const __m256i fin = _mm256_set1_epi64x((long long)(16ULL << 56));
    const __m256i ee = _mm256_set1_epi64x(0xee), dd = _mm256_set1_epi64x(0xdd);
    size_t b = 0;
    for (; b + 4 <= n_blocks; b += 4) {
        uint64_t j = j0 + b;
        __m256i m = _mm256_setr_epi64x((long long)j, (long long)(j + 1), (long long)(j + 2),
                                       (long long)(j + 3));
        __m256i v0 = _mm256_set1_epi64x((long long)s0), v1 = _mm256_set1_epi64x((long long)s1);
        __m256i v2 = _mm256_set1_epi64x((long long)s2), v3 = _mm256_set1_epi64x((long long)s3);
        v3 = _mm256_xor_si256(v3, m); SIPROUND_V; SIPROUND_V; v0 = _mm256_xor_si256(v0, m);
        v3 = _mm256_xor_si256(v3, fin); SIPROUND_V; SIPROUND_V; v0 = _mm256_xor_si256(v0, fin);
        v2 = _mm256_xor_si256(v2, ee);
        SIPROUND_V; SIPROUND_V; SIPROUND_V; SIPROUND_V;
        __m256i lo = _mm256_xor_si256(_mm256_xor_si256(v0, v1), _mm256_xor_si256(v2, v3));
        v1 = _mm256_xor_si256(v1, dd);
        SIPROUND_V; SIPROUND_V; SIPROUND_V; SIPROUND_V;
        __m256i hi = _mm256_xor_si256(_mm256_xor_si256(v0, v1), _mm256_xor_si256(v2, v3));
        /* lanes (a,b,c,d) of lo and hi -> a.lo a.hi b.lo b.hi | c.lo c.hi d.lo d.hi */
        __m256i ul = _mm256_unpacklo_epi64(lo, hi), uh = _mm256_unpackhi_epi64(lo, hi);
        _mm256_storeu_si256((__m256i *)(out + b * 16), _mm256_permute2x128_si256(ul, uh, 0x20));
        _mm256_storeu_si256((__m256i *)(out + b * 16 + 32), _mm256_permute2x128_si256(ul, uh, 0x31));
    }
    if (b < n_blocks) wm__fill_scalar(kg, seed, j0 + b, n_blocks - b, out + b * 16);
}

/* Eight 8- or 16-bit fields starting at p as eight 32-bit lanes. */
AVX2 static inline __attribute__((always_inline)) __m256i load_fields(const unsigned char *p,
                                                                      unsigned bits)
{
    if (bits == 16) return _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)p));
    return _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)p));
}

AVX2 static inline __attribute__((always_inline)) __m256
bias8(__m256i fields, __m256i th, __m256i dv)
{
    return _mm256_castsi256_ps(_mm256_and_si256(_mm256_cmpgt_epi32(th, fields), dv));
}

AVX2 static inline __attribute__((always_inline)) void
apply_width(const unsigned char *fields, size_t n_tok, unsigned bits, uint32_t thresh, float delta,
            float *logits)
{
    const __m256i th = _mm256_set1_epi32((int)thresh);
    const __m256i dv = _mm256_castps_si256(_mm256_set1_ps(delta));
    size_t v = 0;
    if (bits <= 4) {
        /* One 32-bit word holds 32 / b fields: broadcast it once and peel off
         * eight fields per vector with per-lane shifts. */
        const unsigned per_word = 32 / bits;
        const __m256i mask = _mm256_set1_epi32((1 << bits) - 1);
        const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
        for (; v + per_word <= n_tok; v += per_word) {
            uint32_t w;
            memcpy(&w, fields + v * bits / 8, 4);
            const __m256i x = _mm256_set1_epi32((int)w);
            for (unsigned q = 0; q < per_word / 8; q++) {
                __m256i sh = _mm256_mullo_epi32(_mm256_add_epi32(lane, _mm256_set1_epi32((int)(8 * q))),
                                                _mm256_set1_epi32((int)bits));
                __m256i f = _mm256_and_si256(_mm256_srlv_epi32(x, sh), mask);
                float *l = logits + v + 8 * q;
                _mm256_storeu_ps(l, _mm256_add_ps(_mm256_loadu_ps(l), bias8(f, th, dv)));
            }
        }
    } else {
        for (; v + 8 <= n_tok; v += 8) {
            __m256i f = load_fields(fields + v * bits / 8, bits);
            _mm256_storeu_ps(logits + v, _mm256_add_ps(_mm256_loadu_ps(logits + v), bias8(f, th, dv)));
        }
    }
    if (v < n_tok) wm__apply_scalar(fields + v * bits / 8, n_tok - v, bits, thresh, delta, logits + v);
}

NOINLINE AVX2 void wm__apply_avx2_raw(const unsigned char *fields, size_t n_tok, unsigned bits,
                            uint32_t thresh, float delta, float *logits)
{
    switch (bits) {
    case 1: apply_width(fields, n_tok, 1, thresh, delta, logits); break;
    case 2: apply_width(fields, n_tok, 2, thresh, delta, logits); break;
    case 4: apply_width(fields, n_tok, 4, thresh, delta, logits); break;
    case 8: apply_width(fields, n_tok, 8, thresh, delta, logits); break;
    default: apply_width(fields, n_tok, 16, thresh, delta, logits); break;
    }
}

#endif
