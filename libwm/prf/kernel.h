/* Shared by the SIMD kernels (avx2.c, avx512.c) and their dispatcher.
 * Internal.  Every kernel equals its scalar twin in scalar.c bit for bit
 * (tests/test_prf.c): the PRF is libsodium's crypto_shorthash_siphashx24
 * computed several lanes at a time, and the bias is the same single float
 * add per logit. */
#ifndef WM_PRF_KERNEL_H
#define WM_PRF_KERNEL_H

#include "internal.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define WM_HAVE_X86_KERNELS 1
#include <immintrin.h>

#define AVX2 __attribute__((target("avx2")))
#define AVX512 __attribute__((target("avx512f")))
#define AVX512_BMI2 __attribute__((target("avx512f,bmi2")))
#define NOINLINE __attribute__((noinline))

#define ROTL64(x, b) (((x) << (b)) | ((x) >> (64 - (b))))
#define SIPROUND_S                                                              \
    do {                                                                        \
        s0 += s1; s1 = ROTL64(s1, 13); s1 ^= s0; s0 = ROTL64(s0, 32);           \
        s2 += s3; s3 = ROTL64(s3, 16); s3 ^= s2; s0 += s3; s3 = ROTL64(s3, 21); \
        s3 ^= s0; s2 += s1; s1 = ROTL64(s1, 17); s1 ^= s2; s2 = ROTL64(s2, 32); \
    } while (0)

static inline uint64_t load64_le(const unsigned char *p)
{
    uint64_t x = 0;
    for (int i = 7; i >= 0; i--) x = (x << 8) | p[i];
    return x;
}

/* SipHash state after the first message word, the seed: it is common to
 * every block of a step, so it is absorbed once and then fanned out. */
static inline void sip_absorb_seed(const unsigned char kg[16], uint64_t seed, uint64_t s[4])
{
    uint64_t k0 = load64_le(kg), k1 = load64_le(kg + 8);
    uint64_t s0 = 0x736f6d6570736575ULL ^ k0, s1 = 0x646f72616e646f83ULL ^ k1;
    uint64_t s2 = 0x6c7967656e657261ULL ^ k0, s3 = 0x7465646279746573ULL ^ k1;
    s3 ^= seed; SIPROUND_S; SIPROUND_S; s0 ^= seed;
    s[0] = s0, s[1] = s1, s[2] = s2, s[3] = s3;
}


/* The kernels proper (their exported, stack-scrubbing wrappers are in
 * dispatch.c).  fill_avx2 also serves the AVX-512 kernels' tails. */
void wm__fill_avx2_raw(const unsigned char kg[16], uint64_t seed, uint64_t j0, size_t n_blocks, unsigned char *out);
void wm__apply_avx2_raw(const unsigned char *fields, size_t n_tok, unsigned bits, uint32_t thresh, float delta,
                        float *logits);
void wm__fill_avx512_raw(const unsigned char kg[16], uint64_t seed, uint64_t j0, size_t n_blocks, unsigned char *out);
void wm__prf_many_avx512_raw(const unsigned char kg[16], const uint64_t *seed, const uint64_t *j, size_t n,
                             unsigned char *out);
void wm__bias_row_avx512_raw(const unsigned char kg[16], uint64_t seed, uint64_t j0, size_t n_tok, unsigned bits,
                             uint32_t thresh, float delta, float *logits);
void wm__bias_row2_avx512_raw(const wm__fields *g, const wm__fields *a, uint64_t seed, uint64_t j0, size_t n_tok,
                              wm_dtype round, float *logits);
void wm__apply_avx512_raw(const unsigned char *fields, size_t n_tok, unsigned bits, uint32_t thresh, float delta,
                          float *logits);
/* embed/dtype_avx512.c and embed/dtype_avx2.c (AVX2 + F16C). */
void wm__widen_avx512_raw(const void *src, wm_dtype dtype, size_t n, float *dst);
void wm__narrow_avx512_raw(const float *src, size_t n, wm_dtype dtype, void *dst);
void wm__widen_avx2_raw(const void *src, wm_dtype dtype, size_t n, float *dst);
void wm__narrow_avx2_raw(const float *src, size_t n, wm_dtype dtype, void *dst);
/* __builtin_cpu_supports has no "f16c" in every compiler: CPUID leaf 1, ECX bit 29. */
static inline int wm__cpu_has_f16c(void)
{
    unsigned a = 1, b, c = 0, d;
    __asm__ volatile("cpuid" : "+a"(a), "=b"(b), "+c"(c), "=d"(d));
    return (c >> 29) & 1;
}
#endif
#endif
