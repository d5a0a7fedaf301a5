/* A fault injected into the real llama-server, for server_test.py: loaded
 * with LD_PRELOAD, it stands in front of libwm's two biasing calls the
 * sampler makes (wm_bias_logits for a whole vocabulary in id order,
 * wm_bias_candidates otherwise: libwm/llama/wm_llama.c) and makes them
 * fail with WM_ERR_NOMEM while the file named by
 * $WM_FAIL_FILE exists, so the test can show that a failure of the
 * watermark stops the request (and is counted) instead of letting an
 * unwatermarked token out.  Test-only: never linked into anything. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdlib.h>
#include <unistd.h>

#include <wm.h>

static int failing(void)
{
    const char *f = getenv("WM_FAIL_FILE");
    return f && access(f, F_OK) == 0;
}

wm_status wm_bias_candidates(const wm_watermark *wm, uint64_t account, const wm_token *ctx, size_t n_ctx, size_t n,
                             const wm_token *ids, size_t ids_stride, float *logits, size_t logits_stride)
{
    typedef wm_status (*fn)(const wm_watermark *, uint64_t, const wm_token *, size_t, size_t, const wm_token *, size_t,
                            float *, size_t);
    if (failing()) return WM_ERR_NOMEM;
    fn real = (fn)dlsym(RTLD_NEXT, "wm_bias_candidates");
    return real ? real(wm, account, ctx, n_ctx, n, ids, ids_stride, logits, logits_stride) : WM_ERR_UNSUPPORTED;
}

wm_status wm_bias_logits(const wm_watermark *wm, uint64_t account, const wm_token *ctx, size_t n_ctx, float *logits,
                         size_t n_logits)
{
    typedef wm_status (*fn)(const wm_watermark *, uint64_t, const wm_token *, size_t, float *, size_t);
    if (failing()) return WM_ERR_NOMEM;
    fn real = (fn)dlsym(RTLD_NEXT, "wm_bias_logits");
    return real ? real(wm, account, ctx, n_ctx, logits, n_logits) : WM_ERR_UNSUPPORTED;
}
