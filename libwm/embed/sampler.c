/* A complete watermarking sampler: (kgw) bias, temperature, top-k, top-p,
 * then a draw, or (gumbel) the scheme's selection among the candidates.
 *
 * One vector pass checks the logits and finds the top; one more computes
 * every weight e^((l - max) / T) into a dense array with per-chunk sums
 * and, when truncating, compacts the few tokens that can be in the top-k
 * or the nucleus (embed/softmax*.c, one file per instruction set, equal bit
 * for bit).  Then a top-k is a quickselect over those, a top-p histograms
 * their mass in quarter-nat buckets below the top logit so only the bucket
 * the nucleus ends in needs a quickselect, and a draw over the whole
 * vocabulary picks a chunk from the chunk sums and scans only it.  Nothing
 * sorted, nothing allocated per step.
 *
 * Which tokens can be in the nucleus: if T is the total weight, every token
 * of weight below (1 - top_p) T / V lies outside it (all of them together
 * weigh less than (1 - top_p) T, and they are the lightest), and T >= 1 (the
 * top token weighs e^0 = 1), so the compaction keeps weights >= (1 - top_p)
 * / V.  For top-k it keeps weights >= e^-16 and falls back to every token of
 * non-zero weight when fewer than k are that heavy.
 *
 * Without truncation (and unless a selecting scheme needs every weight), no
 * exponential is computed for most of the vocabulary: an exact rejection
 * draw.  Write a_v = (l_v - max) / T (the float exponent the kernels give
 * token v) and w_v = exp(a_v) (wm__exp_scalar, which every kernel's exp
 * equals bit for bit): the target is P(v) = w_v / Z, Z = sum of w, the very
 * weights the dense draw uses.  One pass without exponentials (wm_head_fn)
 * collects the head, the tokens with a_v >= -t; only their weights are
 * computed (wm_softmax_fn over the compacted logits), H = their sum (H >=
 * 1: the top token weighs exp(0) = 1).  Every other token weighs at most E
 * = e^-t (1 + 2^-16) (the exp is within 2.5e-7 of e^a and increasing
 * enough: tests/test_api.c checks w <= E over every float a < -t), so
 * let B = V E.  One round: u uniform on [0, H + B); if u < H, the head token
 * at u by its cumulative weights (exactly as the dense draw does it over the
 * vocabulary); else v uniform on [0, V) (unbiased: rejection on the 64-bit
 * word) and, if v is a tail token, accept it when u' E < w_v (u' uniform on
 * [0, 1)); anything else (a head token, a rejection) starts a fresh round.
 * In one round each head token v comes out with probability w_v / (H + B)
 * and each tail token with (B / (H + B)) (1 / V) (w_v / E) = w_v / (H + B):
 * proportional to w_v for every v; rounds are independent, so the output is
 * w_v / Z exactly (up to the 53-bit uniforms and double sums, as before).
 * A round ends with probability Z / (H + B) >= H / (H + B) >= 1 / (1 + V E),
 * and t = ceil(ln(V / 64)) makes V E <= 64 (1 + 2^-16): at most 65 rounds on
 * average for any logits (a round is two or three uniforms and at most one
 * exp), and tail weights are only computed for the proposals.  The head may
 * be any superset of {a_v >= -t} as long as the test "v is in the head" in
 * a round is the same set: it is taken against the max before the bias, a
 * lower bound of the max, so that one pass checks and compacts.  When
 * no tail token has non-zero weight (tail_live 0), B = 0 and a step is one
 * uniform and the head's draw: for a vocabulary that is all head the head's
 * weights and chunk sums are the dense draw's, so the draw is the old one
 * bit for bit (the same RNG stream); with a live tail the stream differs
 * (u scaled by H + B, uniforms spent on proposals), the distribution not. */
#include "embed/softmax.h"

#include <math.h>
#include <stdlib.h>

struct wm_sampler {
    const wm_watermark *wm;
    wm_sampler_params p;
    wm__rng rng;
    wm_token *idx;   /* candidate token ids */
    float *w;        /* their weights */
    float *dense;    /* every token's weight, by id */
    double *chunk;   /* sums of dense per WM_SOFTMAX_CHUNK tokens */
    wm_token *all;   /* 0, 1, ..., V - 1: the ids of dense */
    wm_ctxset *used; /* selecting schemes: seeds watermarked in this sequence */
    wm_maxcheck_fn maxcheck;
    wm_softmax_fn softmax;
    wm_head_fn head;
    float head_lo; /* -t: the head is a_v >= head_lo */
    double env;    /* E: every tail weight is at most this */
    int all_weights; /* 1: the untruncated draw computes every weight (wm__sampler_all_weights) */
};

wm_status wm_sampler_new(wm_sampler **out, const wm_watermark *wm, const wm_sampler_params *p)
{
    if (!out || !wm || !p || !WM__SIZED(p, wm_sampler_params)) return WM_ERR_ARG;
    *out = NULL;
    if (!(p->temperature >= 0.0f && isfinite(p->temperature))) return WM_ERR_ARG;
    if (!(p->top_p > 0.0f && p->top_p <= 1.0f)) return WM_ERR_ARG;
    if (p->account != WM_ACCOUNT_NONE && !wm->account) return WM_ERR_UNSUPPORTED;
    wm_sampler *s = wm__calloc(1, sizeof *s);
    if (!s) return WM_ERR_NOMEM;
    size_t V = wm->n_vocab;
    s->idx = wm__malloc((V + 16) * sizeof *s->idx); /* + 16: see softmax.h */
    s->w = wm__malloc((V + 16) * sizeof *s->w);
    s->dense = wm__malloc((V + 16) * sizeof *s->dense); /* also the head's logits: + 16, see softmax.h */
    s->chunk = wm__malloc((V / WM_SOFTMAX_CHUNK + 1) * sizeof *s->chunk);
    s->all = wm__has(wm->scheme, WM__CAP_SELECTS) ? wm__malloc(V * sizeof *s->all) : NULL;
    if (!s->idx || !s->w || !s->dense || !s->chunk || (wm__has(wm->scheme, WM__CAP_SELECTS) && (!s->all || wm_ctxset_new(&s->used, wm)))) {
        wm_sampler_free(s);
        return WM_ERR_NOMEM;
    }
    for (size_t v = 0; s->all && v < V; v++) s->all[v] = (wm_token)v;
    wm__pick_sampler_kernels(&s->maxcheck, &s->softmax, &s->head);
    /* t = ceil(ln(V / 64)), at least 1: V e^-t <= 64 (for V >= 64), so the
     * tail's envelope B outweighs the top token at most 64-fold (at most 65
     * rounds a draw on average), while the head stays small enough that the
     * head pass's branch on it is mostly predicted (at V = 151,936, t = 8).
     * V < 2^32: t <= 19, far above WM_EXP_MIN. */
    double t = ceil(log((double)V / 64));
    if (t < 1) t = 1;
    s->head_lo = (float)-t;
    s->env = exp(-t) * (1 + 0x1p-16);
    s->wm = wm;
    s->p = *p;
    wm__rng_seed(&s->rng, p->seed);
    *out = s;
    return WM_OK;
}

wm_status wm_sampler_reset(wm_sampler *s, uint64_t seed, uint64_t account)
{
    if (!s) return WM_ERR_ARG;
    if (account != WM_ACCOUNT_NONE && !s->wm->account) return WM_ERR_UNSUPPORTED;
    s->p.account = account;
    if (s->used) {
        wm_status st = wm_ctxset_clear(s->used);
        if (st) return st;
    }
    s->p.seed = seed;
    wm__rng_seed(&s->rng, seed);
    return WM_OK;
}

void wm_sampler_free(wm_sampler *s)
{
    if (!s) return;
    wm_ctxset_free(s->used);
    wm__free(s->idx);
    wm__free(s->w);
    wm__free(s->dense);
    wm__free(s->chunk);
    wm__free(s->all);
    wm__free(s);
}

static void swap(wm_token *idx, float *w, size_t a, size_t b)
{
    wm_token ti = idx[a]; idx[a] = idx[b]; idx[b] = ti;
    float tw = w[a]; w[a] = w[b]; w[b] = tw;
}

/* Three-way partition of [lo, hi) around pivot: > pivot first, then ==,
 * then <.  Returns the two boundaries. */
static void partition3(wm_token *idx, float *w, size_t lo, size_t hi, float pivot,
                       size_t *gt_end, size_t *eq_end)
{
    size_t a = lo, i = lo, b = hi;
    while (i < b) {
        if (w[i] > pivot) swap(idx, w, a++, i++);
        else if (w[i] < pivot) swap(idx, w, i, --b);
        else i++;
    }
    *gt_end = a;
    *eq_end = b;
}

static float pick_pivot(const float *w, size_t lo, size_t hi, wm__rng *rng)
{
    return w[lo + (size_t)(wm__rng_next(rng) % (hi - lo))];
}

/* Move the k largest weights to [0, k). */
static void select_top_k(wm_token *idx, float *w, size_t n, size_t k, wm__rng *rng)
{
    size_t lo = 0, hi = n;
    while (hi - lo > 1 && k > lo && k < hi) {
        size_t a, b;
        partition3(idx, w, lo, hi, pick_pivot(w, lo, hi, rng), &a, &b);
        if (k <= a) hi = a;
        else if (k <= b) return;
        else lo = b;
    }
}

/* Smallest prefix [0, m) of largest weights whose sum reaches `need`. */
static size_t select_nucleus(wm_token *idx, float *w, size_t n, double need, wm__rng *rng)
{
    size_t lo = 0, hi = n;
    while (hi - lo > 1) {
        size_t a, b;
        float pivot = pick_pivot(w, lo, hi, rng);
        double gt = 0, eq = 0;
        partition3(idx, w, lo, hi, pivot, &a, &b);
        for (size_t i = lo; i < a; i++) gt += w[i];
        for (size_t i = a; i < b; i++) eq += w[i];
        if (gt >= need && a > lo) {
            hi = a;
        } else if (gt + eq >= need) {
            size_t take = (size_t)ceil((need - gt) / pivot);
            if (take < 1) take = 1;
            return a + (take < b - a ? take : b - a);
        } else {
            need -= gt + eq;
            lo = b;
        }
    }
    return hi;
}

#define N_BUCKETS 256 /* quarter nats: 64 nats below the top, then one tail bucket */

static size_t bucket_of(float logit, float max, double inv_t)
{
    double d = ((double)max - (double)logit) * inv_t * 4;
    return d < N_BUCKETS - 1 ? (size_t)d : N_BUCKETS - 1;
}

/* Nucleus of mass `need` among [0, m): every candidate of the buckets above
 * the one where the cumulative mass reaches `need`, plus the heaviest part
 * of that bucket.  Moves the nucleus to the front; returns its size. */
static size_t top_p_select(wm_sampler *s, const float *logits, float max, double inv_t, size_t m,
                           double need)
{
    double mass[N_BUCKETS] = { 0 };
    for (size_t i = 0; i < m; i++) mass[bucket_of(logits[s->idx[i]], max, inv_t)] += s->w[i];
    size_t cut = 0;
    double before = 0;
    while (cut + 1 < N_BUCKETS && before + mass[cut] < need) before += mass[cut++];
    /* Three-way partition by bucket: above the cut | at the cut | below. */
    size_t a = 0, i = 0, b = m;
    while (i < b) {
        size_t k = bucket_of(logits[s->idx[i]], max, inv_t);
        if (k < cut) swap(s->idx, s->w, a++, i++);
        else if (k > cut) swap(s->idx, s->w, i, --b);
        else i++;
    }
    if (b == a) return a ? a : 1;
    return a + select_nucleus(s->idx + a, s->w + a, b - a, need - before, &s->rng);
}

static wm_token draw(wm_sampler *s, size_t m)
{
    double total = 0;
    for (size_t i = 0; i < m; i++) total += s->w[i];
    double u = wm__rng_uniform(&s->rng) * total, acc = 0;
    for (size_t i = 0; i < m; i++) {
        acc += s->w[i];
        if (u < acc) return (wm_token)s->idx[i];
    }
    return (wm_token)s->idx[m - 1]; /* rounding: u landed on the very top */
}

static double chunk_total(const double *chunk, size_t n)
{
    double total = 0;
    for (size_t c = 0; c * WM_SOFTMAX_CHUNK < n; c++) total += chunk[c];
    return total;
}

/* The index at u in [0, sum of chunk) of the weights w[0..n) with their
 * chunk sums: the chunk from the chunk sums, then a scan of that chunk
 * only. */
static size_t scan_chunks(const float *w, const double *chunk, size_t n, double u)
{
    size_t n_chunks = (n + WM_SOFTMAX_CHUNK - 1) / WM_SOFTMAX_CHUNK, c = 0;
    double acc = 0;
    while (c + 1 < n_chunks && !(u < acc + chunk[c])) acc += chunk[c++];
    size_t v0 = c * WM_SOFTMAX_CHUNK, v1 = v0 + WM_SOFTMAX_CHUNK < n ? v0 + WM_SOFTMAX_CHUNK : n, last = v0;
    for (size_t v = v0; v < v1; v++) {
        if (w[v] > 0) last = v;
        acc += w[v];
        if (u < acc) return v;
    }
    return last; /* rounding: the chunk's scan fell short of its lane-wise sum */
}

/* A draw over the whole vocabulary, every weight in dense. */
static wm_token draw_dense(wm_sampler *s, size_t V)
{
    double u = wm__rng_uniform(&s->rng) * chunk_total(s->chunk, V);
    return (wm_token)scan_chunks(s->dense, s->chunk, V, u);
}

/* Uniform on [0, n), n >= 1, unbiased: words below 2^64 mod n are redrawn,
 * so the rest is a whole number of copies of [0, n). */
static size_t uniform_below(wm__rng *rng, size_t n)
{
    uint64_t lim = (uint64_t)(-(uint64_t)n) % (uint64_t)n, x;
    do x = wm__rng_next(rng);
    while (x < lim);
    return (size_t)(x % (uint64_t)n);
}

/* The exact untruncated draw (see the top of this file): head, then rounds
 * of a head draw or a tail proposal with its acceptance. */
static wm_token draw_head_tail(wm_sampler *s, const float *logits, size_t V, float max, float lb, float inv_t,
                               size_t h, int tail_live)
{
    s->softmax(s->dense, h, max, inv_t, 0.0f, s->w, s->chunk, NULL, NULL); /* the head's weights */
    double H = chunk_total(s->chunk, h), B = tail_live ? (double)V * s->env : 0.0;
    for (;;) {
        double u = wm__rng_uniform(&s->rng) * (H + B);
        if (u < H || B == 0) return s->idx[scan_chunks(s->w, s->chunk, h, u)];
        size_t v = uniform_below(&s->rng, V);
        if ((logits[v] - lb) * inv_t >= s->head_lo) continue; /* in the head: its mass is in H */
        float a = (logits[v] - max) * inv_t;                   /* the exponent the kernels give v */
        if (wm__rng_uniform(&s->rng) * s->env < (double)wm__exp_scalar(a)) return (wm_token)v;
    }
}

void wm__sampler_all_weights(wm_sampler *s, int on) { s->all_weights = on; }

/* Every token of non-zero weight into idx/w: the fallback when fewer than
 * k tokens passed the compaction. */
static size_t compact_all(wm_sampler *s, size_t V)
{
    size_t m = 0;
    for (size_t v = 0; v < V; v++)
        if (s->dense[v] > 0) s->idx[m] = (wm_token)v, s->w[m++] = s->dense[v];
    return m;
}

wm_status wm_sampler_sample(wm_sampler *s, const wm_token *ctx, size_t n_ctx, float *logits,
                            size_t n_logits, bool watermark, wm_token *out)
{
    if (!s || !logits || !out) return WM_ERR_ARG;
    const wm_watermark *wm = s->wm;
    size_t V = wm->n_vocab;
    if (n_logits < V) return WM_ERR_SIZE;
    float max;
    if (s->maxcheck(logits, V, &max) || max == -INFINITY) return WM_ERR_LOGITS;
    int top_k = s->p.top_k && s->p.top_k < V, top_p = s->p.top_p < 1.0f;
    int exact = !top_k && !top_p && !s->all_weights && s->p.temperature >= WM_TEMPERATURE_MIN &&
                !(watermark && wm__has(wm->scheme, WM__CAP_SELECTS));
    float inv_t = 1.0f / s->p.temperature, lb = max; /* lb: the max before the bias */
    if (watermark && wm__has(wm->scheme, WM__CAP_BIASES)) {
        wm_status st = wm_bias_logits(wm, s->p.account, ctx, n_ctx, logits, n_logits);
        if (st) return st;
        if (!exact && s->maxcheck(logits, V, &max)) return WM_ERR_LOGITS;
    }
    if (exact) {
        /* The head against lb in the pass that checks the biased logits and
         * finds their max (one pass, not two).  The head is then every token
         * with (l - lb) / T >= -t: a superset of the head against the true
         * max when lb <= max (draw_head_tail's argument needs only that the
         * tokens left out weigh at most E, and (l - max) / T <= (l - lb) / T,
         * float rounding being monotone).  A bias only adds (delta > 0), so
         * lb <= max; were it ever not, the head is taken again against max. */
        size_t h;
        int live;
        if (s->head(logits, V, lb, inv_t, s->head_lo, &max, s->idx, s->dense, &h, &live)) return WM_ERR_LOGITS;
        if (max < lb) {
            lb = max;
            (void)s->head(logits, V, lb, inv_t, s->head_lo, &max, s->idx, s->dense, &h, &live);
        }
        *out = draw_head_tail(s, logits, V, max, lb, inv_t, h, live);
        return WM_OK;
    }
    if (s->p.temperature < WM_TEMPERATURE_MIN) {
        size_t arg = 0;
        while (logits[arg] != max) arg++; /* lowest id on ties */
        *out = (wm_token)arg;
        return WM_OK;
    }
    float thr = top_k ? 1.12535175e-07f /* e^-16 */ : top_p ? (1.0f - s->p.top_p) / (float)V : 0.0f;
    size_t m = s->softmax(logits, V, max, inv_t, thr, s->dense, s->chunk, s->idx, s->w);
    if (top_k) {
        if (m < s->p.top_k) m = compact_all(s, V);
        if (m > s->p.top_k) {
            select_top_k(s->idx, s->w, m, s->p.top_k, &s->rng);
            m = s->p.top_k;
        }
    }
    if (top_p) {
        double total = 0;
        if (top_k) {
            for (size_t i = 0; i < m; i++) total += s->w[i];
        } else {
            for (size_t c = 0; c * WM_SOFTMAX_CHUNK < V; c++) total += s->chunk[c];
            /* now that the total is known, the tight bound (1 - top_p) T / V */
            double tight = (1.0 - s->p.top_p) * total / (double)V;
            size_t k = 0;
            for (size_t i = 0; i < m; i++)
                if (s->w[i] >= tight) s->idx[k] = s->idx[i], s->w[k++] = s->w[i];
            m = k;
        }
        m = top_p_select(s, logits, max, inv_t, m, s->p.top_p * total);
    }
    int truncated = top_k || top_p;
    if (watermark && wm__has(wm->scheme, WM__CAP_SELECTS)) {
        bool selected;
        wm_status st = truncated ? wm_select(wm, s->used, ctx, n_ctx, m, s->idx, sizeof *s->idx, s->w, sizeof *s->w,
                                             out, &selected)
                                 : wm_select(wm, s->used, ctx, n_ctx, V, s->all, sizeof *s->all, s->dense,
                                             sizeof *s->dense, out, &selected);
        if (st || selected) return st;
    }
    *out = truncated ? draw(s, m) : draw_dense(s, V);
    return WM_OK;
}
