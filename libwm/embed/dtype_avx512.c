/* 16-bit logits with AVX-512F, 16 a step; equal to dtype_scalar.c bit for
 * bit, as dtype_avx2.c (which explains the method). */
#include "prf/kernel.h"

#ifdef WM_HAVE_X86_KERNELS
AVX512 void wm__widen_avx512_raw(const void *src, wm_dtype dtype, size_t n, float *dst)
{
    const uint16_t *s = src;
    size_t i = 0;
    if (dtype == WM_DTYPE_BF16)
        for (; i + 16 <= n; i += 16) {
            __m512i x = _mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i *)(s + i)));
            _mm512_storeu_ps(dst + i, _mm512_castsi512_ps(_mm512_slli_epi32(x, 16)));
        }
    else
        for (; i + 16 <= n; i += 16) _mm512_storeu_ps(dst + i, _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(s + i))));
    wm__widen_scalar(s + i, dtype, n - i, dst + i);
}

AVX512 void wm__narrow_avx512_raw(const float *src, size_t n, wm_dtype dtype, void *dst)
{
    uint16_t *d = dst;
    size_t i = 0;
    if (dtype == WM_DTYPE_BF16) {
        const __m512i one = _mm512_set1_epi32(1), half = _mm512_set1_epi32(0x7fff), qnan = _mm512_set1_epi32(0x7fc0);
        for (; i + 16 <= n; i += 16) {
            __m512 v = _mm512_loadu_ps(src + i);
            __m512i u = _mm512_castps_si512(v);
            __m512i r = _mm512_add_epi32(u, _mm512_add_epi32(half, _mm512_and_si512(_mm512_srli_epi32(u, 16), one)));
            r = _mm512_mask_mov_epi32(_mm512_srli_epi32(r, 16), _mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q), qnan);
            _mm256_storeu_si256((__m256i *)(d + i), _mm512_cvtepi32_epi16(r));
        }
    } else {
        const __m512i sign = _mm512_set1_epi32((int)0x80000000u), qnan = _mm512_set1_epi32(0x7fc00000);
        for (; i + 16 <= n; i += 16) {
            __m512 v = _mm512_loadu_ps(src + i);
            __m512i canon = _mm512_or_si512(_mm512_and_si512(_mm512_castps_si512(v), sign), qnan);
            v = _mm512_mask_mov_ps(v, _mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q), _mm512_castsi512_ps(canon));
            _mm256_storeu_si256((__m256i *)(d + i), _mm512_cvtps_ph(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
        }
    }
    wm__narrow_scalar(src + i, n - i, dtype, d + i);
}
#endif
