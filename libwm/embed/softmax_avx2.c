/* The sampler kernels with AVX2 + FMA: 8 floats a step (see softmax.h). */
#include "softmax.h"
#include "prf/kernel.h"

#ifdef WM_HAVE_X86_KERNELS
#include <math.h>

#define AVX2_FMA __attribute__((target("avx2,fma")))

AVX2_FMA int wm__maxcheck_avx2_raw(const float *x, size_t n, float *max)
{
    __m256 m[4] = { _mm256_set1_ps(-INFINITY), _mm256_set1_ps(-INFINITY), _mm256_set1_ps(-INFINITY),
                    _mm256_set1_ps(-INFINITY) }, inf = _mm256_set1_ps(INFINITY), bad = _mm256_setzero_ps();
    size_t i = 0;
    /* four max accumulators: one would make the pass wait on vmaxps latency */
    for (; i + 32 <= n; i += 32)
        for (int u = 0; u < 4; u++) {
            __m256 v = _mm256_loadu_ps(x + i + 8 * u);
            bad = _mm256_or_ps(bad, _mm256_or_ps(_mm256_cmp_ps(v, v, _CMP_UNORD_Q), _mm256_cmp_ps(v, inf, _CMP_EQ_OQ)));
            m[u] = _mm256_max_ps(m[u], v);
        }
    for (; i + 8 <= n; i += 8) {
        __m256 v = _mm256_loadu_ps(x + i);
        bad = _mm256_or_ps(bad, _mm256_or_ps(_mm256_cmp_ps(v, v, _CMP_UNORD_Q), _mm256_cmp_ps(v, inf, _CMP_EQ_OQ)));
        m[0] = _mm256_max_ps(m[0], v);
    }
    float lanes[8], r = -INFINITY;
    _mm256_storeu_ps(lanes, _mm256_max_ps(_mm256_max_ps(m[0], m[1]), _mm256_max_ps(m[2], m[3])));
    for (int l = 0; l < 8; l++) r = lanes[l] > r ? lanes[l] : r;
    int b = _mm256_movemask_ps(bad) != 0;
    for (; i < n; i++) {
        b |= isnan(x[i]) || x[i] == INFINITY;
        r = x[i] > r ? x[i] : r;
    }
    *max = r;
    return b;
}

static AVX2_FMA __m256 exp8(__m256 x)
{
    __m256 keep = _mm256_cmp_ps(x, _mm256_set1_ps(WM_EXP_MIN), _CMP_GE_OQ);
    x = _mm256_max_ps(x, _mm256_set1_ps(WM_EXP_MIN));
    __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(WM_EXP_LOG2E)),
                               _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(WM_EXP_LN2_HI), x);
    r = _mm256_fnmadd_ps(n, _mm256_set1_ps(WM_EXP_LN2_LO), r);
    __m256 p = _mm256_set1_ps(WM_EXP_P0);
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(WM_EXP_P1));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(WM_EXP_P2));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(WM_EXP_P3));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(WM_EXP_P4));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(WM_EXP_P5));
    p = _mm256_add_ps(_mm256_fmadd_ps(p, _mm256_mul_ps(r, r), r), _mm256_set1_ps(1.0f));
    __m256i e = _mm256_slli_epi32(_mm256_cvtps_epi32(n), 23);
    __m256 out = _mm256_castsi256_ps(_mm256_add_epi32(_mm256_castps_si256(p), e));
    return _mm256_and_ps(out, keep);
}

AVX2_FMA size_t wm__softmax_avx2_raw(const float *x, size_t n, float m, float s, float thr, float *w,
                                     double *chunk_sum, wm_token *ids, float *cw)
{
    const __m256 vm = _mm256_set1_ps(m), vs = _mm256_set1_ps(s);
    size_t k = 0;
    for (size_t c0 = 0; c0 < n; c0 += WM_SOFTMAX_CHUNK) {
        size_t c1 = c0 + WM_SOFTMAX_CHUNK < n ? c0 + WM_SOFTMAX_CHUNK : n;
        /* 16 double lanes as four 4-lane accumulators: lane = index mod 16 */
        __m256d a[4] = { _mm256_setzero_pd(), _mm256_setzero_pd(), _mm256_setzero_pd(), _mm256_setzero_pd() };
        for (size_t b0 = c0; b0 < c1; b0 += WM_SOFTMAX_BLOCK) {
            size_t b1 = b0 + WM_SOFTMAX_BLOCK < c1 ? b0 + WM_SOFTMAX_BLOCK : c1, i = b0;
            __m256 f[2] = { _mm256_setzero_ps(), _mm256_setzero_ps() }; /* float lanes 0-7, 8-15 */
            for (; i + 8 <= b1; i += 8) {
                __m256 e = exp8(_mm256_mul_ps(_mm256_sub_ps(_mm256_loadu_ps(x + i), vm), vs));
                _mm256_storeu_ps(w + i, e);
                f[(i - b0) % 16 / 8] = _mm256_add_ps(f[(i - b0) % 16 / 8], e);
                if (thr > 0) {
                    int sel = _mm256_movemask_ps(_mm256_cmp_ps(e, _mm256_set1_ps(thr), _CMP_GE_OQ));
                    for (; sel; sel &= sel - 1) {
                        int l = __builtin_ctz((unsigned)sel);
                        ids[k] = (wm_token)(i + (size_t)l);
                        cw[k++] = w[i + (size_t)l];
                    }
                }
            }
            float fl[16];
            _mm256_storeu_ps(fl, f[0]);
            _mm256_storeu_ps(fl + 8, f[1]);
            for (; i < b1; i++) { /* the tail, as the scalar kernel */
                float e = _mm_cvtss_f32(_mm256_castps256_ps128(exp8(_mm256_set1_ps((x[i] - m) * s))));
                w[i] = e;
                fl[(i - b0) % 16] += e;
                if (thr > 0 && e >= thr) ids[k] = (wm_token)i, cw[k++] = e;
            }
            for (int q = 0; q < 4; q++) a[q] = _mm256_add_pd(a[q], _mm256_cvtps_pd(_mm_loadu_ps(fl + 4 * q)));
        }
        double acc[16];
        for (int q = 0; q < 4; q++) _mm256_storeu_pd(acc + 4 * q, a[q]);
        double sum = 0;
        for (int l = 0; l < 16; l++) sum += acc[l];
        chunk_sum[c0 / WM_SOFTMAX_CHUNK] = sum;
    }
    return k;
}

/* Check and head (softmax.h): 8 logits a step, compared, no exp; the few
 * head lanes appended one by one (AVX2 has no compress). */
AVX2_FMA int wm__head_avx2_raw(const float *x, size_t n, float m, float s, float lo, float *max, wm_token *ids,
                               float *hx, size_t *n_head, int *tail_live)
{
    const __m256 vm = _mm256_set1_ps(m), vs = _mm256_set1_ps(s), vlo = _mm256_set1_ps(lo),
                 vmin = _mm256_set1_ps(WM_EXP_MIN), inf = _mm256_set1_ps(INFINITY);
    __m256 live = _mm256_setzero_ps(), bad = _mm256_setzero_ps(),
           mxs[4] = { _mm256_set1_ps(-INFINITY), _mm256_set1_ps(-INFINITY), _mm256_set1_ps(-INFINITY),
                      _mm256_set1_ps(-INFINITY) };
    size_t k = 0, i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 v = _mm256_loadu_ps(x + i), a = _mm256_mul_ps(_mm256_sub_ps(v, vm), vs);
        bad = _mm256_or_ps(bad, _mm256_or_ps(_mm256_cmp_ps(v, v, _CMP_UNORD_Q), _mm256_cmp_ps(v, inf, _CMP_EQ_OQ)));
        mxs[i / 8 % 4] = _mm256_max_ps(mxs[i / 8 % 4], v); /* four accumulators: vmaxps latency */
        __m256 head = _mm256_cmp_ps(a, vlo, _CMP_GE_OQ);
        live = _mm256_or_ps(live, _mm256_andnot_ps(head, _mm256_cmp_ps(a, vmin, _CMP_GE_OQ)));
        int sel = _mm256_movemask_ps(head);
        for (; sel; sel &= sel - 1) {
            size_t l = (size_t)__builtin_ctz((unsigned)sel);
            ids[k] = (wm_token)(i + l);
            hx[k++] = x[i + l];
        }
    }
    float lanes[8], r = -INFINITY;
    _mm256_storeu_ps(lanes, _mm256_max_ps(_mm256_max_ps(mxs[0], mxs[1]), _mm256_max_ps(mxs[2], mxs[3])));
    for (int l = 0; l < 8; l++) r = lanes[l] > r ? lanes[l] : r;
    int tl = _mm256_movemask_ps(live) != 0, b = _mm256_movemask_ps(bad) != 0;
    for (; i < n; i++) { /* the tail, as the scalar kernel */
        b |= isnan(x[i]) || x[i] == INFINITY;
        r = x[i] > r ? x[i] : r;
        float a = (x[i] - m) * s;
        if (a >= lo) ids[k] = (wm_token)i, hx[k++] = x[i];
        else tl |= a >= WM_EXP_MIN;
    }
    *max = r;
    *n_head = k;
    *tail_live = tl;
    return b;
}
#endif
