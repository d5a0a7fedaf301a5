/* Detection of one text: the exact binomial test over its tuples. */
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
    wm_status st = check_detect_args(wm, tokens, n, flags, alpha, out);
    if (st) return st;
    doc_sets ds;
    if ((st = doc_sets_init(&ds, flags, n, n_prompt))) return st;
    counts c = { 0, 0 };
    st = scan_doc(wm, tokens, n, n_prompt, flags, &ds.seen, doc_sets_prompt(&ds, flags), NULL, count_visit, &c);
    doc_sets_free(&ds);
    if (st == WM_OK) {
        wm__fill_score(out, n, c.scored, c.green, wm__gamma_of(wm), alpha);
        no_dedup_verdict(flags, out);
    }
    return st;
}
