/* The sampler's vector kernels: one file per instruction set
 * (softmax_scalar.c, softmax_avx2.c, softmax_avx512.c), picked by
 * prf/dispatch.c.  Internal.  Every kernel equals the scalar one bit for
 * bit (tests/test_api.c): the same operations in the same order, fused
 * multiply-adds where the scalar code calls fmaf, sums accumulated in 16
 * lanes (lane = index mod 16): in float over a block of 64 tokens (4 adds a
 * lane: relative error below 2e-7), then in double over the chunk, the 16
 * lanes added in lane order.  A draw scans its chunk in double, so its
 * weights agree with the chunk's sum to that 2e-7; where they do not (the
 * draw lands in the chunk's last 2e-7), it takes the chunk's last token of
 * non-zero weight.
 *
 * exp: x is clamped below at WM_EXP_MIN, where the weight is flushed to 0
 * (a token 87 nats below the top has probability under 1e-37), so every
 * result is a normal float; n = round-half-even(x log2 e); r = x - n ln2
 * (two fmas, Cody-Waite); e^r by Cephes' degree-6 polynomial (Horner, fma);
 * scaled by 2^n through the exponent bits.  Within 2 ulp of e^x. */
#ifndef WM_SOFTMAX_H
#define WM_SOFTMAX_H

#include "internal.h"

#define WM_EXP_MIN (-87.0f)
/* Weights are summed per chunk of this many tokens, so a draw scans one
 * chunk after choosing it from the chunk sums. */
#define WM_SOFTMAX_CHUNK 1024
#define WM_SOFTMAX_BLOCK 64

/* wm_maxcheck_fn (internal.h): largest of x[0..n) (n >= 1) into *max; 1
 * if some x is NaN or +inf (then *max is unspecified), else 0.
 *
 * wm_softmax_fn (internal.h): w[i] = exp((x[i] - m) * s) (0 when that
 * exponent is below WM_EXP_MIN or x[i] is -inf), chunk_sum[c] = sum of w
 * over chunk c; and when thr > 0, the ids i with w[i] >= thr and their
 * weights appended to ids/cw in id order.  Returns how many were appended.
 * x[i] <= m for all i.  ids and cw hold n + 16 entries: a kernel may write
 * up to 16 past the last one it appends. */

/* wm_head_fn (internal.h): the check of wm_maxcheck_fn (returns 1 if some
 * x is NaN or +inf, largest x into *max) and, in the same pass, the head
 * of a step for the exact untruncated draw (embed/sampler.c) against m, a
 * lower bound of that largest x: every i with (x[i] - m) * s >= lo, its id
 * appended to ids and x[i] (the logit itself) to hx, in id order, how many
 * into *n_head; *tail_live = 1 if some other i has (x[i] - m) * s >=
 * WM_EXP_MIN, else 0.  WM_EXP_MIN <= lo <= 0, s > 0.  ids and hx hold n +
 * 16 entries (a kernel may write up to 16 past the last one it appends).
 * No exponential: the head's weights come from wm_softmax_fn over hx, the
 * tail's one by one in the draw.  Outputs other than the return value are
 * unspecified when it is 1. */

int wm__maxcheck_scalar(const float *x, size_t n, float *max);
int wm__head_scalar(const float *x, size_t n, float m, float s, float lo, float *max, wm_token *ids, float *hx,
                    size_t *n_head, int *tail_live);
/* The scalar exp (the reference every kernel's exp equals): the weight of
 * one tail token in the draw. */
float wm__exp_scalar(float x);
size_t wm__softmax_scalar(const float *x, size_t n, float m, float s, float thr, float *w, double *chunk_sum,
                          wm_token *ids, float *cw);
/* NULL when the CPU or compiler lacks the instruction set (prf/dispatch.c). */
wm_maxcheck_fn wm__maxcheck_avx512(void);
wm_softmax_fn wm__softmax_avx512(void);
wm_maxcheck_fn wm__maxcheck_avx2(void);
wm_softmax_fn wm__softmax_avx2(void);
wm_head_fn wm__head_avx512(void);
wm_head_fn wm__head_avx2(void);

/* The kernels themselves, for the dispatcher. */
int wm__maxcheck_avx512_raw(const float *x, size_t n, float *max);
size_t wm__softmax_avx512_raw(const float *x, size_t n, float m, float s, float thr, float *w, double *chunk_sum,
                              wm_token *ids, float *cw);
int wm__maxcheck_avx2_raw(const float *x, size_t n, float *max);
size_t wm__softmax_avx2_raw(const float *x, size_t n, float m, float s, float thr, float *w, double *chunk_sum,
                            wm_token *ids, float *cw);
int wm__head_avx512_raw(const float *x, size_t n, float m, float s, float lo, float *max, wm_token *ids, float *hx,
                        size_t *n_head, int *tail_live);
int wm__head_avx2_raw(const float *x, size_t n, float m, float s, float lo, float *max, wm_token *ids, float *hx,
                      size_t *n_head, int *tail_live);

/* Constants shared by every path. */
#define WM_EXP_LOG2E 1.44269504088896341f
#define WM_EXP_LN2_HI 0.693359375f
#define WM_EXP_LN2_LO (-2.12194440e-4f)
#define WM_EXP_P0 1.9875691500e-4f
#define WM_EXP_P1 1.3981999507e-3f
#define WM_EXP_P2 8.3334519073e-3f
#define WM_EXP_P3 4.1665795894e-2f
#define WM_EXP_P4 1.6666665459e-1f
#define WM_EXP_P5 5.0000001201e-1f

#endif
