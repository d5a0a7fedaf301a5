/* The sampler kernels' scalar reference (see softmax.h). */
#include "softmax.h"

#include <math.h>

int wm__maxcheck_scalar(const float *x, size_t n, float *max)
{
    float m = -INFINITY;
    int bad = 0;
    for (size_t i = 0; i < n; i++) {
        bad |= isnan(x[i]) || x[i] == INFINITY;
        m = x[i] > m ? x[i] : m;
    }
    *max = m;
    return bad;
}

float wm__exp_scalar(float x)
{
    if (!(x >= WM_EXP_MIN)) return 0.0f; /* also -inf and NaN-free by contract */
    float n = nearbyintf(x * WM_EXP_LOG2E);
    float r = fmaf(-n, WM_EXP_LN2_HI, x);
    r = fmaf(-n, WM_EXP_LN2_LO, r);
    float p = WM_EXP_P0;
    p = fmaf(p, r, WM_EXP_P1);
    p = fmaf(p, r, WM_EXP_P2);
    p = fmaf(p, r, WM_EXP_P3);
    p = fmaf(p, r, WM_EXP_P4);
    p = fmaf(p, r, WM_EXP_P5);
    p = fmaf(p, r * r, r) + 1.0f;
    /* 2^n by the exponent field: n >= -126 here, the result is normal */
    uint32_t bits;
    memcpy(&bits, &p, sizeof bits);
    bits += (uint32_t)(int32_t)n << 23; /* mod 2^32: adds n to the exponent */
    memcpy(&p, &bits, sizeof p);
    return p;
}

size_t wm__softmax_scalar(const float *x, size_t n, float m, float s, float thr, float *w, double *chunk_sum,
                          wm_token *ids, float *cw)
{
    size_t k = 0;
    for (size_t c0 = 0; c0 < n; c0 += WM_SOFTMAX_CHUNK) {
        size_t c1 = c0 + WM_SOFTMAX_CHUNK < n ? c0 + WM_SOFTMAX_CHUNK : n;
        double acc[16] = { 0 };
        for (size_t b0 = c0; b0 < c1; b0 += WM_SOFTMAX_BLOCK) {
            size_t b1 = b0 + WM_SOFTMAX_BLOCK < c1 ? b0 + WM_SOFTMAX_BLOCK : c1;
            float f[16] = { 0 };
            for (size_t i = b0; i < b1; i++) {
                float e = wm__exp_scalar((x[i] - m) * s);
                w[i] = e;
                f[i % 16] += e;
                if (thr > 0 && e >= thr) ids[k] = (wm_token)i, cw[k++] = e;
            }
            for (int l = 0; l < 16; l++) acc[l] += (double)f[l];
        }
        double sum = 0;
        for (int l = 0; l < 16; l++) sum += acc[l];
        chunk_sum[c0 / WM_SOFTMAX_CHUNK] = sum;
    }
    return k;
}

int wm__head_scalar(const float *x, size_t n, float m, float s, float lo, float *max, wm_token *ids, float *hx,
                    size_t *n_head, int *tail_live)
{
    size_t k = 0;
    int live = 0, bad = 0;
    float mx = -INFINITY;
    for (size_t i = 0; i < n; i++) {
        bad |= isnan(x[i]) || x[i] == INFINITY;
        mx = x[i] > mx ? x[i] : mx;
        float a = (x[i] - m) * s; /* the exponent wm__softmax_scalar gives this token against m */
        if (a >= lo) ids[k] = (wm_token)i, hx[k++] = x[i];
        else live |= a >= WM_EXP_MIN;
    }
    *max = mx;
    *n_head = k;
    *tail_live = live;
    return bad;
}
