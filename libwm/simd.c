/* AVX2 versions of the two embedding kernels.  Each must equal its scalar
 * twin in prf.c bit for bit (tests/test_simd.c checks): the PRF is
 * libsodium's crypto_shorthash_siphashx24 computed four lanes at a time, and
 * the bias is the same single float add per logit. */
#include "internal.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>

#define AVX2 __attribute__((target("avx2")))

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

#define ROTL64(x, b) (((x) << (b)) | ((x) >> (64 - (b))))
#define SIPROUND_S                                                              \
    do {                                                                        \
        s0 += s1; s1 = ROTL64(s1, 13); s1 ^= s0; s0 = ROTL64(s0, 32);           \
        s2 += s3; s3 = ROTL64(s3, 16); s3 ^= s2; s0 += s3; s3 = ROTL64(s3, 21); \
        s3 ^= s0; s2 += s1; s1 = ROTL64(s1, 17); s1 ^= s2; s2 = ROTL64(s2, 32); \
    } while (0)

static uint64_t load64_le(const unsigned char *p)
{
    uint64_t x = 0;
    for (int i = 7; i >= 0; i--) x = (x << 8) | p[i];
    return x;
}

AVX2 static void fill_avx2(const unsigned char kg[16], uint64_t seed, uint64_t j0,
                           size_t n_blocks, unsigned char *out)
{
    uint64_t k0 = load64_le(kg), k1 = load64_le(kg + 8);
    /* The first message word (the seed) is common to every block of a step:
     * absorb it once, then fan out. */
    uint64_t s0 = 0x736f6d6570736575ULL ^ k0, s1 = 0x646f72616e646f83ULL ^ k1;
    uint64_t s2 = 0x6c7967656e657261ULL ^ k0, s3 = 0x7465646279746573ULL ^ k1;
    s3 ^= seed; SIPROUND_S; SIPROUND_S; s0 ^= seed;

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

AVX2 static void apply_avx2(const unsigned char *fields, size_t n_tok, unsigned bits,
                            uint32_t thresh, float delta, float *logits)
{
    const __m256i th = _mm256_set1_epi32((int)thresh);
    const __m256i dv = _mm256_castps_si256(_mm256_set1_ps(delta));
    const __m256i shifts = _mm256_setr_epi32(0, (int)bits, 2 * (int)bits, 3 * (int)bits,
                                             4 * (int)bits, 5 * (int)bits, 6 * (int)bits,
                                             7 * (int)bits);
    const __m256i mask = _mm256_set1_epi32(bits >= 16 ? 0xffff : (1 << bits) - 1);
    size_t v = 0;
    for (; v + 8 <= n_tok; v += 8) {
        __m256i f;
        const unsigned char *p = fields + v * bits / 8;
        if (bits == 16) {
            f = _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)p));
        } else if (bits == 8) {
            f = _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)p));
        } else {
            uint32_t w = 0;
            memcpy(&w, p, bits); /* 8 fields of b <= 4 bits: b bytes, little endian */
            f = _mm256_and_si256(_mm256_srlv_epi32(_mm256_set1_epi32((int)w), shifts), mask);
        }
        __m256i green = _mm256_cmpgt_epi32(th, f);
        __m256 bias = _mm256_castsi256_ps(_mm256_and_si256(green, dv));
        _mm256_storeu_ps(logits + v, _mm256_add_ps(_mm256_loadu_ps(logits + v), bias));
    }
    if (v < n_tok) wm__apply_scalar(fields + v * bits / 8, n_tok - v, bits, thresh, delta, logits + v);
}

wm_fill_fn wm__fill_avx2(void) { return __builtin_cpu_supports("avx2") ? fill_avx2 : NULL; }
wm_apply_fn wm__apply_avx2(void) { return __builtin_cpu_supports("avx2") ? apply_avx2 : NULL; }

#else
wm_fill_fn wm__fill_avx2(void) { return NULL; }
wm_apply_fn wm__apply_avx2(void) { return NULL; }
#endif
