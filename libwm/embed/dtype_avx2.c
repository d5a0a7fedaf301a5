/* 16-bit logits with AVX2 + F16C, 8 a step; equal to dtype_scalar.c bit for
 * bit.  bf16: integer shifts and the same round-to-nearest-even add; f16:
 * the hardware conversions (IEEE round to nearest even), with NaN made the
 * sign's canonical NaN first, as the scalar path and PyTorch produce. */
#include "prf/kernel.h"

#ifdef WM_HAVE_X86_KERNELS
#define AVX2_F16C __attribute__((target("avx2,f16c")))

AVX2_F16C void wm__widen_avx2_raw(const void *src, wm_dtype dtype, size_t n, float *dst)
{
    const uint16_t *s = src;
    size_t i = 0;
    if (dtype == WM_DTYPE_BF16)
        for (; i + 8 <= n; i += 8) {
            __m256i x = _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)(s + i)));
            _mm256_storeu_ps(dst + i, _mm256_castsi256_ps(_mm256_slli_epi32(x, 16)));
        }
    else
        for (; i + 8 <= n; i += 8) _mm256_storeu_ps(dst + i, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(s + i))));
    wm__widen_scalar(s + i, dtype, n - i, dst + i);
}

/* 8 lanes of 32-bit values < 2^16 to 8 uint16. */
AVX2_F16C static inline __m128i pack16(__m256i x)
{
    __m256i p = _mm256_packus_epi32(x, x); /* per 128-bit lane: a0..a3 a0..a3 | b0..b3 b0..b3 */
    return _mm256_castsi256_si128(_mm256_permute4x64_epi64(p, 0x08)); /* a0..a3 b0..b3 */
}

AVX2_F16C void wm__narrow_avx2_raw(const float *src, size_t n, wm_dtype dtype, void *dst)
{
    uint16_t *d = dst;
    size_t i = 0;
    if (dtype == WM_DTYPE_BF16) {
        const __m256i one = _mm256_set1_epi32(1), half = _mm256_set1_epi32(0x7fff), qnan = _mm256_set1_epi32(0x7fc0);
        for (; i + 8 <= n; i += 8) {
            __m256 v = _mm256_loadu_ps(src + i);
            __m256i u = _mm256_castps_si256(v);
            __m256i r = _mm256_add_epi32(u, _mm256_add_epi32(half, _mm256_and_si256(_mm256_srli_epi32(u, 16), one)));
            r = _mm256_srli_epi32(r, 16);
            r = _mm256_blendv_epi8(r, qnan, _mm256_castps_si256(_mm256_cmp_ps(v, v, _CMP_UNORD_Q)));
            _mm_storeu_si128((__m128i *)(d + i), pack16(r));
        }
    } else {
        const __m256 sign = _mm256_set1_ps(-0.0f), qnan = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fc00000));
        for (; i + 8 <= n; i += 8) {
            __m256 v = _mm256_loadu_ps(src + i);
            __m256 canon = _mm256_or_ps(_mm256_and_ps(v, sign), qnan); /* converts to sign | 0x7e00 */
            v = _mm256_blendv_ps(v, canon, _mm256_cmp_ps(v, v, _CMP_UNORD_Q));
            _mm_storeu_si128((__m128i *)(d + i), _mm256_cvtps_ph(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
        }
    }
    wm__narrow_scalar(src + i, n - i, dtype, d + i);
}
#endif
