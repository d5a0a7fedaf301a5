/* The sampler kernels with AVX-512F: 16 floats a step (see softmax.h). */
#include "softmax.h"
#include "prf/kernel.h"

#ifdef WM_HAVE_X86_KERNELS
#include <math.h>

AVX512 int wm__maxcheck_avx512_raw(const float *x, size_t n, float *max)
{
    __m512 m[4] = { _mm512_set1_ps(-INFINITY), _mm512_set1_ps(-INFINITY), _mm512_set1_ps(-INFINITY),
                    _mm512_set1_ps(-INFINITY) }, inf = _mm512_set1_ps(INFINITY);
    __mmask16 bad = 0;
    size_t i = 0;
    /* four max accumulators: one would make the pass wait on vmaxps latency */
    for (; i + 64 <= n; i += 64)
        for (int u = 0; u < 4; u++) {
            __m512 v = _mm512_loadu_ps(x + i + 16 * u);
            bad |= _mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q) | _mm512_cmp_ps_mask(v, inf, _CMP_EQ_OQ);
            m[u] = _mm512_max_ps(m[u], v);
        }
    for (; i + 16 <= n; i += 16) {
        __m512 v = _mm512_loadu_ps(x + i);
        bad |= _mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q) | _mm512_cmp_ps_mask(v, inf, _CMP_EQ_OQ);
        m[0] = _mm512_max_ps(m[0], v);
    }
    float r = _mm512_reduce_max_ps(_mm512_max_ps(_mm512_max_ps(m[0], m[1]), _mm512_max_ps(m[2], m[3])));
    int b = bad != 0;
    for (; i < n; i++) {
        b |= isnan(x[i]) || x[i] == INFINITY;
        r = x[i] > r ? x[i] : r;
    }
    *max = r;
    return b;
}

/* exp of 16 lanes, exactly as wm__exp_scalar in softmax_scalar.c: scalef by 2^n
 * of a normal p is exact, as the scalar exponent-field add is. */
static AVX512 __m512 exp16(__m512 x)
{
    __mmask16 keep = _mm512_cmp_ps_mask(x, _mm512_set1_ps(WM_EXP_MIN), _CMP_GE_OQ);
    x = _mm512_max_ps(x, _mm512_set1_ps(WM_EXP_MIN)); /* -inf lanes: any finite value, masked below */
    __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(WM_EXP_LOG2E)),
                                    _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(WM_EXP_LN2_HI), x);
    r = _mm512_fnmadd_ps(n, _mm512_set1_ps(WM_EXP_LN2_LO), r);
    __m512 p = _mm512_set1_ps(WM_EXP_P0);
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(WM_EXP_P1));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(WM_EXP_P2));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(WM_EXP_P3));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(WM_EXP_P4));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(WM_EXP_P5));
    p = _mm512_add_ps(_mm512_fmadd_ps(p, _mm512_mul_ps(r, r), r), _mm512_set1_ps(1.0f));
    return _mm512_maskz_scalef_ps(keep, p, n);
}

/* 16 weights from x[i..]: store, add to the float lanes, compact. */
static AVX512 inline size_t step16(__m512 v, __m512 vm, __m512 vs, __m512 vt, float thr, __mmask16 live, size_t i,
                                   float *w, __m512 *f, wm_token *ids, float *cw, size_t k)
{
    __m512 e = _mm512_maskz_mov_ps(live, exp16(_mm512_mul_ps(_mm512_sub_ps(v, vm), vs)));
    _mm512_mask_storeu_ps(w + i, live, e);
    *f = _mm512_add_ps(*f, e);
    if (thr > 0) {
        __mmask16 sel = _mm512_cmp_ps_mask(e, vt, _CMP_GE_OQ);
        if (sel) { /* compress in a register, store all 16 lanes (ids/cw have 16 spare):
                      a compressing store to memory is microcoded on Zen 4 */
            __m512i idx = _mm512_add_epi32(_mm512_set1_epi32((int)i),
                                           _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15));
            _mm512_storeu_si512(ids + k, _mm512_maskz_compress_epi32(sel, idx));
            _mm512_storeu_ps(cw + k, _mm512_maskz_compress_ps(sel, e));
            k += (size_t)__builtin_popcount(sel);
        }
    }
    return k;
}

AVX512 size_t wm__softmax_avx512_raw(const float *x, size_t n, float m, float s, float thr, float *w,
                                     double *chunk_sum, wm_token *ids, float *cw)
{
    const __m512 vm = _mm512_set1_ps(m), vs = _mm512_set1_ps(s), vt = _mm512_set1_ps(thr);
    size_t k = 0;
    for (size_t c0 = 0; c0 < n; c0 += WM_SOFTMAX_CHUNK) {
        size_t c1 = c0 + WM_SOFTMAX_CHUNK < n ? c0 + WM_SOFTMAX_CHUNK : n;
        __m512d lo = _mm512_setzero_pd(), hi = _mm512_setzero_pd();
        for (size_t b0 = c0; b0 < c1; b0 += WM_SOFTMAX_BLOCK) {
            size_t b1 = b0 + WM_SOFTMAX_BLOCK < c1 ? b0 + WM_SOFTMAX_BLOCK : c1, i = b0;
            __m512 f = _mm512_setzero_ps();
            for (; i + 16 <= b1; i += 16)
                k = step16(_mm512_loadu_ps(x + i), vm, vs, vt, thr, 0xffff, i, w, &f, ids, cw, k);
            if (i < b1) {
                __mmask16 live = (__mmask16)((1u << (b1 - i)) - 1);
                k = step16(_mm512_maskz_loadu_ps(live, x + i), vm, vs, vt, thr, live, i, w, &f, ids, cw, k);
            }
            lo = _mm512_add_pd(lo, _mm512_cvtps_pd(_mm512_castps512_ps256(f)));
            hi = _mm512_add_pd(hi, _mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(f), 1))));
        }
        double acc[16];
        _mm512_storeu_pd(acc, lo);
        _mm512_storeu_pd(acc + 8, hi);
        double sum = 0;
        for (int l = 0; l < 16; l++) sum += acc[l];
        chunk_sum[c0 / WM_SOFTMAX_CHUNK] = sum;
    }
    return k;
}

/* Check and head (softmax.h): 16 logits a step, compared, no exp; head
 * lanes compressed in a register and stored whole (ids/hx have 16 spare),
 * as in step16. */
static AVX512 inline size_t head16(__m512 v, __mmask16 valid, __m512 vm, __m512 vs, __m512 vlo, size_t i,
                                   wm_token *ids, float *hx, size_t k, __mmask16 *live, __mmask16 *bad, __m512 *mx)
{
    *bad |= _mm512_mask_cmp_ps_mask(valid, v, v, _CMP_UNORD_Q) |
            _mm512_mask_cmp_ps_mask(valid, v, _mm512_set1_ps(INFINITY), _CMP_EQ_OQ);
    *mx = _mm512_mask_max_ps(*mx, valid, *mx, v);
    __m512 a = _mm512_mul_ps(_mm512_sub_ps(v, vm), vs);
    __mmask16 head = _mm512_mask_cmp_ps_mask(valid, a, vlo, _CMP_GE_OQ);
    *live |= _mm512_mask_cmp_ps_mask(valid & (__mmask16)~head, a, _mm512_set1_ps(WM_EXP_MIN), _CMP_GE_OQ);
    if (head) {
        __m512i idx = _mm512_add_epi32(_mm512_set1_epi32((int)i),
                                       _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15));
        _mm512_storeu_si512(ids + k, _mm512_maskz_compress_epi32(head, idx));
        _mm512_storeu_ps(hx + k, _mm512_maskz_compress_ps(head, v));
        k += (size_t)__builtin_popcount(head);
    }
    return k;
}

AVX512 int wm__head_avx512_raw(const float *x, size_t n, float m, float s, float lo, float *max, wm_token *ids,
                               float *hx, size_t *n_head, int *tail_live)
{
    const __m512 vm = _mm512_set1_ps(m), vs = _mm512_set1_ps(s), vlo = _mm512_set1_ps(lo);
    /* four max accumulators: one would make the pass wait on vmaxps latency */
    __m512 mx[4] = { _mm512_set1_ps(-INFINITY), _mm512_set1_ps(-INFINITY), _mm512_set1_ps(-INFINITY),
                     _mm512_set1_ps(-INFINITY) };
    __mmask16 live = 0, bad = 0;
    size_t k = 0, i = 0;
    for (; i + 64 <= n; i += 64)
        for (int u = 0; u < 4; u++)
            k = head16(_mm512_loadu_ps(x + i + 16 * u), 0xffff, vm, vs, vlo, i + 16 * (size_t)u, ids, hx, k, &live,
                       &bad, &mx[u]);
    for (; i + 16 <= n; i += 16)
        k = head16(_mm512_loadu_ps(x + i), 0xffff, vm, vs, vlo, i, ids, hx, k, &live, &bad, &mx[0]);
    if (i < n) {
        __mmask16 valid = (__mmask16)((1u << (n - i)) - 1);
        k = head16(_mm512_maskz_loadu_ps(valid, x + i), valid, vm, vs, vlo, i, ids, hx, k, &live, &bad, &mx[0]);
    }
    *max = _mm512_reduce_max_ps(_mm512_max_ps(_mm512_max_ps(mx[0], mx[1]), _mm512_max_ps(mx[2], mx[3])));
    *n_head = k;
    *tail_live = live != 0;
    return bad != 0;
}
#endif
