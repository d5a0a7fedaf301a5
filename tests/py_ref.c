/* Test helper: the C API's own answers, for checking the Python binding bit
 * for bit.  Reads records from stdin until EOF, each
 *     int32 n_ctx, int32 ctx[n_ctx], int32 n_logits, float logits[n_logits]
 * and writes the logits after wm_bias_logits, as raw float32.
 *
 *   py_ref KEYFILE N_VOCAB [ACCOUNT] */
#include <stdio.h>
#include <stdlib.h>

#include <wm.h>

static int read_exact(void *p, size_t size, size_t n) { return fread(p, size, n, stdin) == n; }

int main(int argc, char **argv)
{
    if (argc != 3 && argc != 4) return fprintf(stderr, "usage: py_ref KEYFILE N_VOCAB [ACCOUNT]\n"), 2;
    uint64_t account = argc == 4 ? strtoull(argv[3], NULL, 10) : WM_ACCOUNT_NONE;
    wm_key *key;
    wm_watermark *wm;
    wm_error err;
    if (wm_key_load(&key, argv[1], &err)) return fprintf(stderr, "py_ref: %s\n", err.message), 2;
    wm_status st = wm_watermark_new(&wm, key, (uint32_t)atol(argv[2]));
    wm_key_free(key);
    if (st) return fprintf(stderr, "py_ref: %s\n", wm_strerror(st)), 2;
    int32_t n_ctx, n_logits;
    while (read_exact(&n_ctx, 4, 1)) {
        wm_token *ctx = malloc(4 * (size_t)n_ctx + 4);
        if (!ctx || !read_exact(ctx, 4, (size_t)n_ctx) || !read_exact(&n_logits, 4, 1)) return 2;
        float *logits = malloc(4 * (size_t)n_logits + 4);
        if (!logits || !read_exact(logits, 4, (size_t)n_logits)) return 2;
        if ((st = wm_bias_logits(wm, account, ctx, (size_t)n_ctx, logits, (size_t)n_logits)))
            return fprintf(stderr, "py_ref: %s\n", wm_strerror(st)), 2;
        fwrite(logits, 4, (size_t)n_logits, stdout);
        free(ctx);
        free(logits);
    }
    wm_watermark_free(wm);
    return fflush(stdout) ? 2 : 0;
}
