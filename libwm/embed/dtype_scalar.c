/* 16-bit logits: widened to binary32 exactly, biased there, rounded back to
 * nearest even.  The roundings are PyTorch's own (c10::BFloat16's
 * round_to_nearest_even, c10::Half's fp16_ieee_from_fp32_value), so a row
 * biased here equals the row PyTorch computes as x + bias in that dtype.
 * The scalar reference: dtype_avx2.c equals it bit for bit, NaN included
 * (tests/test_dtype.c). */
#include "internal.h"

static inline float f32_of(uint32_t u)
{
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}
static inline uint32_t bits_of(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

static inline float bf16_to_f32(uint16_t h) { return f32_of((uint32_t)h << 16); }

static inline uint16_t f32_to_bf16(float f)
{
    uint32_t u = bits_of(f);
    if (f != f) return 0x7fc0; /* PyTorch's canonical NaN */
    return (uint16_t)((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
}

/* Exact: normal halves by rescaling the exponent, subnormals through a magic
 * bias (Maratyszcza's FP16, which PyTorch uses). */
static inline float f16_to_f32(uint16_t h)
{
    uint32_t w = (uint32_t)h << 16, sign = w & 0x80000000u, two_w = w + w;
    float normal = f32_of((two_w >> 4) + (0xe0u << 23)) * 0x1.0p-112f;
    float denormal = f32_of((two_w >> 17) | (126u << 23)) - 0.5f;
    return f32_of(sign | (two_w < (1u << 27) ? bits_of(denormal) : bits_of(normal)));
}

/* Round to nearest even by letting the FPU add at the target's precision. */
static inline uint16_t f32_to_f16(float f)
{
    float base = (__builtin_fabsf(f) * 0x1.0p+112f) * 0x1.0p-110f;
    uint32_t w = bits_of(f), shl1_w = w + w, sign = w & 0x80000000u;
    uint32_t bias = shl1_w & 0xff000000u;
    if (bias < 0x71000000u) bias = 0x71000000u;
    base = f32_of((bias >> 1) + 0x07800000u) + base;
    uint32_t b = bits_of(base), nonsign = ((b >> 13) & 0x7c00u) + (b & 0x0fffu);
    return (uint16_t)((sign >> 16) | (shl1_w > 0xff000000u ? 0x7e00u : nonsign));
}

void wm__widen_scalar(const void *src, wm_dtype dtype, size_t n, float *dst)
{
    const uint16_t *s = src;
    if (dtype == WM_DTYPE_BF16)
        for (size_t i = 0; i < n; i++) dst[i] = bf16_to_f32(s[i]);
    else
        for (size_t i = 0; i < n; i++) dst[i] = f16_to_f32(s[i]);
}

void wm__narrow_scalar(const float *src, size_t n, wm_dtype dtype, void *dst)
{
    uint16_t *d = dst;
    if (dtype == WM_DTYPE_BF16)
        for (size_t i = 0; i < n; i++) d[i] = f32_to_bf16(src[i]);
    else
        for (size_t i = 0; i < n; i++) d[i] = f32_to_f16(src[i]);
}
