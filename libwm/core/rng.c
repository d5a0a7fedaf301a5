/* xoshiro256** for the sampler and the tests' synthetic data. */
#include "internal.h"

/* ---- xoshiro256** (Blackman & Vigna), seeded through splitmix64 ---------- */

void wm__rng_seed(wm__rng *r, uint64_t seed)
{
    for (int i = 0; i < 4; i++) {
        seed += 0x9e3779b97f4a7c15ULL;
        r->s[i] = wm__mix64(seed);
    }
}

static uint64_t rotl64(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

uint64_t wm__rng_next(wm__rng *r)
{
    uint64_t *s = r->s;
    uint64_t result = rotl64(s[1] * 5, 7) * 9, t = s[1] << 17;
    s[2] ^= s[0]; s[3] ^= s[1]; s[1] ^= s[2]; s[0] ^= s[3];
    s[2] ^= t; s[3] = rotl64(s[3], 45);
    return result;
}

double wm__rng_uniform(wm__rng *r) { return (double)(wm__rng_next(r) >> 11) * 0x1.0p-53; }
