/* The layout of every public struct, as this library was compiled, so that a
 * binding that re-declares the structs (python/libwm's ctypes) checks its
 * declarations against the real ones at load time instead of trusting them:
 * a field added, moved or retyped on either side is then an error, never
 * silent corruption.  The table is built with offsetof and sizeof from the
 * headers themselves; a field the list below forgets still shows, as a
 * struct size that differs from the binding's. */
#include "internal.h"

#define STRUCTS(X) X(wm_error) X(wm_params) X(wm_sampler_params) X(wm_score) X(wm_window) X(wm_audit) \
    X(wm_account_score) X(wm_attribution) X(wm_kernel_params) X(wm_corpus_record) X(wm_corpus_delta) \
    X(wm_corpus_totals)

#define FIELDS(F)                                                                                     \
    F(wm_error, message)                                                                              \
    F(wm_params, size) F(wm_params, scheme) F(wm_params, seeding) F(wm_params, context_width)           \
    F(wm_params, gamma) F(wm_params, delta) F(wm_params, account_delta)                                \
    F(wm_sampler_params, size) F(wm_sampler_params, temperature) F(wm_sampler_params, top_k)           \
    F(wm_sampler_params, top_p) F(wm_sampler_params, seed) F(wm_sampler_params, account)               \
    F(wm_score, size) F(wm_score, tokens) F(wm_score, scored) F(wm_score, statistic) F(wm_score, z)    \
    F(wm_score, p_value) F(wm_score, log10_p) F(wm_score, watermarked)                                 \
    F(wm_window, size) F(wm_window, score) F(wm_window, begin) F(wm_window, end) F(wm_window, n_tests) \
    F(wm_audit, size) F(wm_audit, fixed) F(wm_audit, log10_p) F(wm_audit, watermarked)                 \
    F(wm_audit, excess) F(wm_audit, excess_lo) F(wm_audit, excess_hi) F(wm_audit, more_tuples)         \
    F(wm_audit, more_tokens) F(wm_audit, more_tokens_fixed)                                            \
    F(wm_account_score, size) F(wm_account_score, account) F(wm_account_score, statistic)              \
    F(wm_account_score, log10_p) F(wm_account_score, log10_p_family) F(wm_account_score, named)        \
    F(wm_attribution, size) F(wm_attribution, accounts) F(wm_attribution, tuples)                      \
    F(wm_attribution, named) F(wm_attribution, n_top) F(wm_attribution, null_mean)                     \
    F(wm_attribution, null_sd) F(wm_attribution, exact)                                                \
    F(wm_kernel_params, size) F(wm_kernel_params, n_vocab) F(wm_kernel_params, context_width)          \
    F(wm_kernel_params, seeding) F(wm_kernel_params, field_bits) F(wm_kernel_params, threshold)        \
    F(wm_kernel_params, delta) F(wm_kernel_params, account_delta) F(wm_kernel_params, green_key)       \
    F(wm_kernel_params, minhash_key) F(wm_kernel_params, account_key)                                  \
    F(wm_corpus_record, fp) F(wm_corpus_record, doc) F(wm_corpus_record, score)                        \
    F(wm_corpus_record, cell) F(wm_corpus_record, reserved)                                            \
    F(wm_corpus_delta, doc) F(wm_corpus_delta, scored) F(wm_corpus_delta, stat_hi)                     \
    F(wm_corpus_delta, stat_lo)                                                                        \
    F(wm_corpus_totals, size) F(wm_corpus_totals, docs) F(wm_corpus_totals, tokens)                    \
    F(wm_corpus_totals, scored) F(wm_corpus_totals, stat_hi) F(wm_corpus_totals, stat_lo)

static const struct {
    const char *structure, *field;
    size_t offset, size;
} table[] = {
#define WHOLE(S) { #S, "", 0, sizeof(S) },
#define FIELD(S, f) { #S, #f, offsetof(S, f), sizeof(((S *)0)->f) },
    STRUCTS(WHOLE) FIELDS(FIELD)
#undef WHOLE
#undef FIELD
};

#define N_ENTRIES (sizeof table / sizeof table[0])

size_t wm_abi_n_fields(void) { return N_ENTRIES; }

wm_status wm_abi_field(size_t i, const char **structure, const char **field, size_t *offset, size_t *size)
{
    if (i >= N_ENTRIES || !structure || !field || !offset || !size) return WM_ERR_ARG;
    *structure = table[i].structure;
    *field = table[i].field;
    *offset = table[i].offset;
    *size = table[i].size;
    return WM_OK;
}
