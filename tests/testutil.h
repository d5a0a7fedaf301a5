/* Shared helpers for the cmocka suites. */
#ifndef WM_TESTUTIL_H
#define WM_TESTUTIL_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

/* The fixed test key: seed bytes 0, 1, ..., 31.  Never use it for real. */
static inline wm_watermark *test_wm(double gamma, uint32_t h, wm_scheme scheme, uint32_t n_vocab)
{
    unsigned char seed[32];
    for (int i = 0; i < 32; i++) seed[i] = (unsigned char)i;
    wm_params p = { gamma, 2.0, h, scheme };
    wm_key *k = NULL;
    wm_watermark *wm = NULL;
    assert_int_equal(wm_key_from_seed(&k, &p, seed), WM_OK);
    assert_int_equal(wm_watermark_new(&wm, k, n_vocab), WM_OK);
    wm_key_free(k);
    return wm;
}

static inline void random_tokens(wm__rng *r, wm_token *t, size_t n, uint32_t n_vocab)
{
    for (size_t i = 0; i < n; i++) t[i] = (wm_token)(wm__rng_next(r) % n_vocab);
}

#endif
