/* The best-scoring span of a long text, Bonferroni-corrected. */
#include "detect_internal.h"

#include <math.h>
#include <stdlib.h>

typedef struct trail {
    double *cum;   /* cum[j] = statistic of the first j scored tuples (exact for kgw's counts) */
    size_t *pos;   /* token index of scored tuple j */
    size_t len;
} trail;

static void trail_visit(void *arg, double score, size_t i, uint64_t seed, wm_token tok)
{
    (void)seed, (void)tok;
    trail *tr = arg;
    tr->cum[tr->len + 1] = tr->cum[tr->len] + score;
    tr->pos[tr->len++] = i;
}

wm_status wm_detect_window(const wm_watermark *wm, const wm_token *tokens, size_t n,
                           size_t n_prompt, unsigned flags, double alpha, wm_window *out)
{
    if (!out || !WM__SIZED(out, wm_window)) return WM_ERR_ARG;
    wm_status st = check_detect_args(wm, tokens, n, flags, alpha, out);
    if (st) return st;
    if (n > UINT32_MAX) return WM_ERR_SIZE;
    trail tr = { wm__calloc(n + 1, sizeof *tr.cum), wm__malloc((n ? n : 1) * sizeof *tr.pos), 0 };
    doc_sets ds;
    memset(&ds, 0, sizeof ds);
    if (!tr.cum || !tr.pos || doc_sets_init(&ds, wm, flags, n, n_prompt)) {
        st = WM_ERR_NOMEM;
        goto done;
    }
    if ((st = scan_doc_at(wm, tokens, n, n_prompt, 0, flags, &ds.sets, trail_visit, &tr))) goto done;

    double best_lp = 1;
    size_t N = tr.len, best_a = 0, best_len = 0;
    uint64_t tests = 0;
    size_t L = N < 16 ? N : 16;
    while (L > 0) {
        /* For a fixed length the p-value falls as the statistic grows, so
         * the best window of length L is the one with the largest. */
        size_t arg = 0;
        double most = 0;
        for (size_t a = 0; a + L <= N; a++) {
            double g = tr.cum[a + L] - tr.cum[a];
            if (g > most || a == 0) most = g, arg = a;
        }
        tests += N - L + 1;
        double lp = wm->scheme->log_sf(wm, L, most);
        if (best_len == 0 || lp < best_lp) best_lp = lp, best_a = arg, best_len = L;
        if (L == N) break;
        size_t next = (size_t)ceil(L * 1.25);
        L = next > N ? N : next;
    }
    memset(out, 0, sizeof *out);
    out->size = sizeof *out;
    if (best_len == 0) {
        wm__fill_score(wm, &out->score, n, 0, 0, alpha);
    } else {
        double g = tr.cum[best_a + best_len] - tr.cum[best_a];
        wm__fill_score(wm, &out->score, n, best_len, g, alpha);
        double lp = best_lp + log((double)tests);
        if (lp > 0) lp = 0;
        out->score.log10_p = lp / M_LN10;
        out->score.p_value = exp(lp);
        out->score.watermarked = out->score.log10_p < log10(alpha);
        no_dedup_verdict(flags, &out->score);
        out->begin = tr.pos[best_a];
        out->end = tr.pos[best_a + best_len - 1] + 1;
    }
    out->n_tests = tests;
done:
    doc_sets_free(&ds);
    wm__free(tr.cum);
    wm__free(tr.pos);
    return st;
}
