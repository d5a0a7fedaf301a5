/* The kernel dispatcher: which implementation of each PRF kernel (and of
 * the sampler's softmax kernels, embed/softmax*.c) this CPU runs, chosen once
 * per watermark or sampler from CPU features probed once per process, or
 * the set the environment variable WM_CPU forces (advanced.h,
 * wm_cpu_kernels).  One
 * file per instruction set (scalar.c, avx2.c, avx512.c); the scalar ones are
 * the reference every other must equal bit for bit. */
#include "kernel.h"
#include "embed/softmax.h"

#include <sodium.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

/* CPU features; F_REFUSED: WM_CPU was refused. */
enum { F_KNOWN = 1, F_AVX2 = 2, F_AVX512F = 4, F_BMI2 = 8, F_FMA = 16, F_F16C = 32, F_REFUSED = 64, LEVEL_SHIFT = 8 };

/* SipRounds are invertible, so a keyed state left on the stack gives the
 * green-list key away (a core dump, a later read of the stack).  The kernels
 * hold it in locals and spills the compiler places, out of C's reach (the
 * scalar ones inside libsodium's SipHash), so each kernel handed out below
 * is a wrapper that calls the real one (never inlined) and then zeroes the
 * stack area it used, as libgcrypt's burn_stack does. */
__attribute__((noinline)) static void burn_stack(void) /* embedding: once a row */
{
    unsigned char b[4096]; /* frames: bias_row 1,088 + fill 96 bytes at -O2 (-fstack-usage) */
    sodium_memzero(b, sizeof b);
    __asm__ volatile("" ::"r"(b) : "memory");
}
__attribute__((noinline)) void wm__burn_stack_small(void) /* detection: once per 16 tuples */
{
    unsigned char b[1024]; /* prf_many's frame is 24 bytes at -O2, SipHash's below it */
    sodium_memzero(b, sizeof b);
    __asm__ volatile("" ::"r"(b) : "memory");
}

static void fill_scalar_scrubbed(const unsigned char kg[16], uint64_t seed, uint64_t j0, size_t n_blocks,
                                 unsigned char *out)
{
    wm__fill_scalar(kg, seed, j0, n_blocks, out);
    burn_stack();
}
static void prf_many_scalar_scrubbed(const unsigned char kg[16], const uint64_t *seed, const uint64_t *j, size_t n,
                                     unsigned char *out)
{
    wm__prf_many_scalar(kg, seed, j, n, out);
    wm__burn_stack_small();
}
wm_fill_fn wm__fill_scalar_kernel(void) { return fill_scalar_scrubbed; }
wm_prf_many_fn wm__prf_many_scalar_kernel(void) { return prf_many_scalar_scrubbed; }

#ifdef WM_HAVE_X86_KERNELS
/* apply does not touch the key: no scrub needed */
static void apply_avx2(const unsigned char *fields, size_t n_tok, unsigned bits, uint32_t thresh, float delta,
                       float *logits)
{
    wm__apply_avx2_raw(fields, n_tok, bits, thresh, delta, logits);
}
static void apply_avx512(const unsigned char *fields, size_t n_tok, unsigned bits, uint32_t thresh, float delta,
                         float *logits)
{
    wm__apply_avx512_raw(fields, n_tok, bits, thresh, delta, logits);
}

/* The exported kernels: the real one, then the stack it used zeroed. */
static void fill_avx2_scrubbed(const unsigned char kg[16], uint64_t seed, uint64_t j0, size_t n_blocks,
                               unsigned char *out)
{
    wm__fill_avx2_raw(kg, seed, j0, n_blocks, out);
    burn_stack();
}
static void fill_avx512_scrubbed(const unsigned char kg[16], uint64_t seed, uint64_t j0, size_t n_blocks,
                                 unsigned char *out)
{
    wm__fill_avx512_raw(kg, seed, j0, n_blocks, out);
    burn_stack();
}
static void prf_many_avx512_scrubbed(const unsigned char kg[16], const uint64_t *seed, const uint64_t *j,
                                     size_t n, unsigned char *out)
{
    wm__prf_many_avx512_raw(kg, seed, j, n, out);
    wm__burn_stack_small();
}
static void bias_row_avx512_scrubbed(const unsigned char kg[16], uint64_t seed, uint64_t j0, size_t n_tok,
                                     unsigned bits, uint32_t thresh, float delta, float *logits)
{
    wm__bias_row_avx512_raw(kg, seed, j0, n_tok, bits, thresh, delta, logits);
    burn_stack();
}

static void bias_row2_avx512_scrubbed(const wm__fields *g, const wm__fields *a, uint64_t seed, uint64_t j0,
                                      size_t n_tok, wm_dtype round, float *logits)
{
    wm__bias_row2_avx512_raw(g, a, seed, j0, n_tok, round, logits);
    burn_stack();
}

/* CPU features, probed once (BLAKE3's dispatch does the same). */
static int probe(void)
{
    __builtin_cpu_init();
    return (__builtin_cpu_supports("avx2") ? F_AVX2 : 0) | (__builtin_cpu_supports("avx512f") ? F_AVX512F : 0) |
           (__builtin_cpu_supports("bmi2") ? F_BMI2 : 0) | (__builtin_cpu_supports("fma") ? F_FMA : 0) |
           (wm__cpu_has_f16c() ? F_F16C : 0);
}
#else
static int probe(void) { return 0; }
#endif

/* The instruction sets, narrowest first: what WM_CPU names, the features
 * every kernel of the set needs (forcing a set the CPU cannot run all of is
 * refused), and the features the kernels chosen under it may use. */
static const struct {
    const char *name;
    int needs, allows;
} isa[] = {
    { "scalar", 0, 0 },
    { "avx2", F_AVX2 | F_FMA | F_F16C, F_AVX2 | F_FMA | F_F16C | F_BMI2 },
    { "avx512", F_AVX2 | F_FMA | F_F16C | F_AVX512F | F_BMI2, ~0 },
};
enum { N_ISA = sizeof isa / sizeof isa[0] };

/* The features the kernels may use and the set they belong to, decided once
 * per process: what the CPU has, narrowed to WM_CPU's set when it is set
 * (read here only). */
static int g_features;
static pthread_once_t g_features_once = PTHREAD_ONCE_INIT;

static void features_init(void)
{
    int f, cpu = probe(), level = 0;
    const char *env = getenv("WM_CPU");
    if (env) {
        while (level < N_ISA && strcmp(env, isa[level].name)) level++;
        if (level == N_ISA || (cpu & isa[level].needs) != isa[level].needs) f = F_KNOWN | F_REFUSED;
        else f = F_KNOWN | (cpu & isa[level].allows) | level << LEVEL_SHIFT;
    } else {
        /* unforced: the widest set whose PRF kernel (fill) runs here */
        if (cpu & F_AVX2) level = 1;
        if ((cpu & (F_AVX2 | F_AVX512F | F_BMI2)) == (F_AVX2 | F_AVX512F | F_BMI2)) level = 2;
        f = F_KNOWN | cpu | level << LEVEL_SHIFT;
    }
    g_features = f;
}

/* Once per process (pthread_once): every thread sees the same set, and
 * WM_CPU is read by one getenv only. */
static int features(void)
{
    pthread_once(&g_features_once, features_init);
    return g_features;
}

#ifdef WM_HAVE_X86_KERNELS
static int has(int want) { return !(features() & F_REFUSED) && (features() & want) == want; }

wm_fill_fn wm__fill_avx2(void) { return has(F_AVX2) ? fill_avx2_scrubbed : NULL; }
wm_apply_fn wm__apply_avx2(void) { return has(F_AVX2) ? apply_avx2 : NULL; }
wm_fill_fn wm__fill_avx512(void) { return has(F_AVX512F | F_BMI2 | F_AVX2) ? fill_avx512_scrubbed : NULL; }
wm_prf_many_fn wm__prf_many_avx512(void) { return has(F_AVX512F) ? prf_many_avx512_scrubbed : NULL; }
wm_bias_row_fn wm__bias_row_avx512(void) { return has(F_AVX512F | F_BMI2 | F_AVX2) ? bias_row_avx512_scrubbed : NULL; }
wm_bias_row2_fn wm__bias_row2_avx512(void)
{
    return has(F_AVX512F | F_BMI2 | F_AVX2) ? bias_row2_avx512_scrubbed : NULL;
}
wm_apply_fn wm__apply_avx512(void) { return has(F_AVX512F | F_BMI2) ? apply_avx512 : NULL; }
/* The sampler's kernels touch no key: no scrub. */
wm_maxcheck_fn wm__maxcheck_avx512(void) { return has(F_AVX512F) ? wm__maxcheck_avx512_raw : NULL; }
wm_softmax_fn wm__softmax_avx512(void) { return has(F_AVX512F) ? wm__softmax_avx512_raw : NULL; }
wm_maxcheck_fn wm__maxcheck_avx2(void) { return has(F_AVX2 | F_FMA) ? wm__maxcheck_avx2_raw : NULL; }
wm_softmax_fn wm__softmax_avx2(void) { return has(F_AVX2 | F_FMA) ? wm__softmax_avx2_raw : NULL; }
wm_head_fn wm__head_avx512(void) { return has(F_AVX512F) ? wm__head_avx512_raw : NULL; }
wm_head_fn wm__head_avx2(void) { return has(F_AVX2) ? wm__head_avx2_raw : NULL; }
/* Conversions of logits: no key either. */
wm_widen_fn wm__widen_avx512(void) { return has(F_AVX512F) ? wm__widen_avx512_raw : NULL; }
wm_narrow_fn wm__narrow_avx512(void) { return has(F_AVX512F) ? wm__narrow_avx512_raw : NULL; }
wm_widen_fn wm__widen_avx2(void) { return has(F_AVX2 | F_F16C) ? wm__widen_avx2_raw : NULL; }
wm_narrow_fn wm__narrow_avx2(void) { return has(F_AVX2 | F_F16C) ? wm__narrow_avx2_raw : NULL; }
#else
wm_fill_fn wm__fill_avx2(void) { return NULL; }
wm_apply_fn wm__apply_avx2(void) { return NULL; }
wm_fill_fn wm__fill_avx512(void) { return NULL; }
wm_prf_many_fn wm__prf_many_avx512(void) { return NULL; }
wm_bias_row_fn wm__bias_row_avx512(void) { return NULL; }
wm_bias_row2_fn wm__bias_row2_avx512(void) { return NULL; }
wm_apply_fn wm__apply_avx512(void) { return NULL; }
wm_maxcheck_fn wm__maxcheck_avx512(void) { return NULL; }
wm_softmax_fn wm__softmax_avx512(void) { return NULL; }
wm_maxcheck_fn wm__maxcheck_avx2(void) { return NULL; }
wm_softmax_fn wm__softmax_avx2(void) { return NULL; }
wm_head_fn wm__head_avx512(void) { return NULL; }
wm_head_fn wm__head_avx2(void) { return NULL; }
wm_widen_fn wm__widen_avx512(void) { return NULL; }
wm_narrow_fn wm__narrow_avx512(void) { return NULL; }
wm_widen_fn wm__widen_avx2(void) { return NULL; }
wm_narrow_fn wm__narrow_avx2(void) { return NULL; }
#endif

void wm__pick_sampler_kernels(wm_maxcheck_fn *maxcheck, wm_softmax_fn *softmax, wm_head_fn *head)
{
    *head = wm__head_avx512();
    if (!*head) *head = wm__head_avx2();
    if (!*head) *head = wm__head_scalar;
    *maxcheck = wm__maxcheck_avx512();
    if (!*maxcheck) *maxcheck = wm__maxcheck_avx2();
    if (!*maxcheck) *maxcheck = wm__maxcheck_scalar;
    *softmax = wm__softmax_avx512();
    if (!*softmax) *softmax = wm__softmax_avx2();
    if (!*softmax) *softmax = wm__softmax_scalar;
}

wm_status wm_cpu_kernels(const char **name)
{
    if (!name) return WM_ERR_ARG;
    int f = features();
    *name = f & F_REFUSED ? NULL : isa[f >> LEVEL_SHIFT].name;
    return f & F_REFUSED ? WM_ERR_UNSUPPORTED : WM_OK;
}

wm_status wm__pick_kernels(struct wm_watermark *wm)
{
    if (features() & F_REFUSED) return WM_ERR_UNSUPPORTED; /* fail closed: not a silent scalar fallback */
    wm->fill = wm__fill_avx512();
    if (!wm->fill) wm->fill = wm__fill_avx2();
    if (!wm->fill) wm->fill = fill_scalar_scrubbed;
    wm->prf_many = wm__prf_many_avx512();
    if (!wm->prf_many) wm->prf_many = prf_many_scalar_scrubbed;
    wm->apply = wm__apply_avx512();
    if (!wm->apply) wm->apply = wm__apply_avx2();
    if (!wm->apply) wm->apply = wm__apply_scalar;
    wm->widen = wm__widen_avx512();
    if (!wm->widen) wm->widen = wm__widen_avx2();
    if (!wm->widen) wm->widen = wm__widen_scalar;
    wm->narrow = wm__narrow_avx512();
    if (!wm->narrow) wm->narrow = wm__narrow_avx2();
    if (!wm->narrow) wm->narrow = wm__narrow_scalar;
    return WM_OK;
}
