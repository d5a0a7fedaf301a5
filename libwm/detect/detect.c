/* Detection of one text: the scheme's exact test over its tuples. */
#include "detect_internal.h"

wm_status check_detect_args(const wm_watermark *wm, const wm_token *t, size_t n,
                                   unsigned flags, double alpha, const void *out)
{
    if (!wm || !out || !wm__valid_alpha(alpha) || (flags & ~WM_NO_DEDUP)) return WM_ERR_ARG;
    return wm__check_tokens(wm, t, n);
}

wm_status wm_detect(const wm_watermark *wm, const wm_token *tokens, size_t n, size_t n_prompt,
                    unsigned flags, double alpha, wm_score *out)
{
    if (!out || !WM__SIZED(out, wm_score)) return WM_ERR_ARG;
    wm_status st = check_detect_args(wm, tokens, n, flags, alpha, out);
    if (st) return st;
    doc_sets ds;
    counts c = { 0, 0, 0 }; /* c.bad: an unrepresentable score or an overflow, refused below */
    if (!(st = doc_sets_init(&ds, wm, flags, n, n_prompt)))
        st = scan_doc_at(wm, tokens, n, n_prompt, 0, flags, &ds.sets, count_visit, &c);
    doc_sets_free(&ds);
    if (st == WM_OK && c.bad) st = WM_ERR_LIMIT;
    if (st == WM_OK) {
        wm__fill_score(wm, out, n, c.scored, counts_stat(&c), alpha);
        no_dedup_verdict(flags, out);
    }
    return st;
}
