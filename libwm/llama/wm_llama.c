/* The llama.cpp sampler: a thin adapter from llama_sampler_i to
 * wm_bias_candidates (reweighting schemes) or wm_select (selecting ones),
 * which read llama_token_data in place through strides.  apply cannot
 * return an error, so a failure is recorded in the sampler (and counted
 * process-wide) for the caller to check before it uses the token. */
#include <math.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include <wm.h>
#include <wm/llama.h>

_Static_assert(sizeof(llama_token) == sizeof(wm_token), "llama_token and wm_token differ");

typedef struct wm_llama_state {
    const wm_watermark *wm;
    uint64_t account; /* the sequence's account (0: none) */
    uint32_t h;       /* context width */
    uint32_t n_hist;  /* tokens held, <= h */
    wm_token hist[WM_MAX_CONTEXT]; /* the last n_hist tokens, oldest first */
    wm_ctxset *used;  /* selecting schemes only: seeds watermarked in this sequence */
    float *w;         /* candidate weights (selecting) or the gathered row (bias_dense), cap entries */
    size_t cap;
    wm_status err;    /* first failure since creation or reset */
} wm_llama_state;

static atomic_uint_least64_t n_failures;

/* Every failure is counted; the first is kept until reset. */
static void fail(wm_llama_state *s, wm_status st)
{
    if (s->err == WM_OK) s->err = st;
    atomic_fetch_add_explicit(&n_failures, 1, memory_order_relaxed);
}

static void history_push(wm_llama_state *s, llama_token t)
{
    if (s->h == 0 || t < 0) return;
    if (s->n_hist == s->h) memmove(s->hist, s->hist + 1, (s->h - 1) * sizeof *s->hist);
    else s->n_hist++;
    s->hist[s->n_hist - 1] = t;
}

static const char *wm_llama_name(const struct llama_sampler *smpl)
{
    (void)smpl;
    return "libwm";
}

static void wm_llama_accept(struct llama_sampler *smpl, llama_token token)
{
    history_push(smpl->ctx, token);
}

/* Selecting scheme: the candidates' weights from their logits as the chain
 * left them, the scheme's choice, then every other logit -inf, so no later
 * sampler (a truncation, a temperature, the draw) can take another.  A
 * repeated seed or short history: unchanged, drawn normally. */
static void select_apply(wm_llama_state *s, llama_token_data_array *cur_p)
{
    size_t n = cur_p->size;
    if (n > s->cap) {
        float *w = realloc(s->w, n * sizeof *w);
        if (!w) {
            fail(s, WM_ERR_NOMEM);
            return;
        }
        s->w = w;
        s->cap = n;
    }
    float max = -INFINITY;
    for (size_t i = 0; i < n; i++)
        if (cur_p->data[i].logit > max) max = cur_p->data[i].logit;
    if (isnan(max)) {
        fail(s, WM_ERR_ARG);
        return;
    }
    if (!(max > -INFINITY)) return; /* nothing can be drawn: the chain's own error */
    for (size_t i = 0; i < n; i++) s->w[i] = expf(cur_p->data[i].logit - max);
    wm_token tok;
    bool selected;
    wm_status st = wm_select(s->wm, s->used, s->hist, s->n_hist, n, &cur_p->data[0].id, sizeof *cur_p->data, s->w,
                             sizeof *s->w, &tok, &selected);
    if (st != WM_OK) {
        fail(s, st);
        return;
    }
    if (!selected) return;
    for (size_t i = 0; i < n; i++)
        if (cur_p->data[i].id != tok) cur_p->data[i].logit = -INFINITY;
    cur_p->sorted = false;
}

/* llama.cpp hands the sampler the whole vocabulary in id order.  Then the
 * logits are gathered into one row, biased by the dense pass (SIMD, the
 * account layer fused) and written back: at V = 151,936 that is 160 us a
 * token against 593 us for the strided candidates path (bench/llama_apply;
 * docs/PERFORMANCE.md), nearly all of it these three passes over the
 * records, the bias itself 13 us.  Both add the same delta to the same tokens; they
 * differ only in that the dense pass adds 0.0f to the others (turning -0.0f
 * into +0.0f, an equal logit), so the same tokens are drawn.  WM_ERR_SIZE
 * (fewer candidates than the key's vocabulary): not this case. */
static wm_status bias_dense(wm_llama_state *s, llama_token_data_array *cur_p)
{
    size_t n = cur_p->size;
    for (size_t i = 0; i < n; i++)
        if (cur_p->data[i].id != (llama_token)i) return WM_ERR_SIZE;
    if (n > s->cap) {
        float *w = realloc(s->w, n * sizeof *w);
        if (!w) return WM_ERR_NOMEM;
        s->w = w;
        s->cap = n;
    }
    for (size_t i = 0; i < n; i++) s->w[i] = cur_p->data[i].logit;
    wm_status st = wm_bias_logits(s->wm, s->account, s->hist, s->n_hist, s->w, n);
    if (st == WM_OK)
        for (size_t i = 0; i < n; i++) cur_p->data[i].logit = s->w[i];
    return st;
}

static void wm_llama_apply(struct llama_sampler *smpl, llama_token_data_array *cur_p)
{
    wm_llama_state *s = smpl->ctx;
    if (!cur_p->data || cur_p->size == 0) return;
    if (s->used) {
        select_apply(s, cur_p);
        return;
    }
    wm_status st = bias_dense(s, cur_p);
    if (st == WM_ERR_SIZE)
        st = wm_bias_candidates(s->wm, s->account, s->hist, s->n_hist, cur_p->size, &cur_p->data[0].id,
                                sizeof *cur_p->data, &cur_p->data[0].logit, sizeof *cur_p->data);
    if (st != WM_OK) {
        fail(s, st); /* nothing was changed: the caller must not use this draw */
        return;
    }
    cur_p->sorted = false;
}

static void wm_llama_reset(struct llama_sampler *smpl)
{
    wm_llama_state *s = smpl->ctx;
    s->n_hist = 0;
    s->err = WM_OK;
    wm_status st = s->used ? wm_ctxset_clear(s->used) : WM_OK;
    if (st != WM_OK) fail(s, st);
}

static struct llama_sampler *wm_llama_clone(const struct llama_sampler *smpl);

static void state_free(wm_llama_state *s)
{
    if (!s) return;
    wm_ctxset_free(s->used);
    free(s->w);
    free(s);
}

static void wm_llama_free(struct llama_sampler *smpl)
{
    state_free(smpl->ctx);
}

static struct llama_sampler_i wm_llama_iface = {
    .name = wm_llama_name,
    .accept = wm_llama_accept,
    .apply = wm_llama_apply,
    .reset = wm_llama_reset,
    .clone = wm_llama_clone,
    .free = wm_llama_free,
};

static struct llama_sampler *wm_llama_clone(const struct llama_sampler *smpl)
{
    const wm_llama_state *src = smpl->ctx;
    wm_llama_state *copy = calloc(1, sizeof *copy);
    if (!copy) return NULL;
    memcpy(copy->hist, src->hist, sizeof copy->hist);
    copy->wm = src->wm, copy->account = src->account, copy->h = src->h, copy->n_hist = src->n_hist;
    copy->err = src->err;
    if (src->used && wm_ctxset_copy(&copy->used, src->used) != WM_OK) {
        state_free(copy);
        return NULL;
    }
    struct llama_sampler *out = llama_sampler_init(&wm_llama_iface, copy);
    if (!out) state_free(copy);
    return out;
}

wm_status wm_llama_sampler_new(struct llama_sampler **out, const wm_watermark *wm, uint64_t account,
                               const llama_token *prompt, size_t n_prompt)
{
    if (out) *out = NULL;
    if (!out || !wm || (n_prompt && !prompt)) return WM_ERR_ARG;
    for (size_t i = 0; i < n_prompt; i++)
        if (prompt[i] < 0) return WM_ERR_TOKEN;
    wm_params p = WM_INIT(wm_params);
    wm_status st = wm_watermark_params(wm, &p);
    if (st) return st;
    if (account != WM_ACCOUNT_NONE && !(p.account_delta > 0)) return WM_ERR_UNSUPPORTED;
    wm_llama_state *s = calloc(1, sizeof *s);
    if (!s) return WM_ERR_NOMEM;
    s->wm = wm;
    s->account = account;
    s->h = p.context_width;
    bool selects;
    uint32_t nv;
    if ((st = wm_watermark_selects(wm, &selects)) || (st = wm_watermark_n_vocab(wm, &nv)) ||
        (selects && ((st = wm_ctxset_new(&s->used, wm)) || !(s->w = malloc((s->cap = nv) * sizeof *s->w))))) {
        state_free(s);
        return st ? st : WM_ERR_NOMEM;
    }
    /* Only the last h prompt tokens can matter. */
    for (size_t i = n_prompt > s->h ? n_prompt - s->h : 0; i < n_prompt; i++) history_push(s, prompt[i]);
    *out = llama_sampler_init(&wm_llama_iface, s);
    if (!*out) {
        state_free(s);
        return WM_ERR_NOMEM;
    }
    return WM_OK;
}

wm_status wm_llama_sampler_status(const struct llama_sampler *smpl, wm_status *out)
{
    if (!smpl || !out || smpl->iface != &wm_llama_iface) return WM_ERR_ARG;
    *out = ((const wm_llama_state *)smpl->ctx)->err;
    return WM_OK;
}

uint64_t wm_llama_failures(void)
{
    return atomic_load_explicit(&n_failures, memory_order_relaxed);
}
