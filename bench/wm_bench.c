/* libwm benchmarks.  One JSON object per line on stdout.
 *
 *   wm_bench [--quick] [--repeats N] [--only embed|sampler|gumbel|detect|corpus|read|accounts|tokenize]
 *
 * Each figure is the median of R repeats (min and max alongside); a repeat
 * runs the operation until at least `min_s` seconds have passed.  Embedding
 * is reported next to a plain pass that adds a constant to the same logits
 * (the memory-bound floor) measured in alternating repeats of the same run,
 * and the median of the per-repeat ratios.  --quick (CI) uses few repeats and exits 1 only on gross regressions
 * relative to that floor, never on absolute times. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/resource.h>
#include <immintrin.h>

#include "internal.h"

/* A failed call is a broken benchmark or helper, never a number. */
static void must(wm_status st, const char *what)
{
    if (st) {
        fprintf(stderr, "%s: %s\n", what, wm_strerror(st));
        exit(2);
    }
}

static int quick;
static int repeats;
static double min_s;

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

typedef struct stat3 { double med, min, max; } stat3;

/* Seconds per call of fn(arg). */
static stat3 measure(void (*fn)(void *), void *arg)
{
    double t[32];
    fn(arg); /* warm */
    for (int r = 0; r < repeats; r++) {
        long n = 0;
        double t0 = now(), el;
        do {
            fn(arg);
            n++;
        } while ((el = now() - t0) < min_s);
        t[r] = el / (double)n;
    }
    qsort(t, (size_t)repeats, sizeof t[0], cmp_double);
    return (stat3){ t[repeats / 2], t[0], t[repeats - 1] };
}

/* Two operations measured in alternating repeats, so that both see the
 * same machine (shared VMs drift by 2x within minutes); *ratio is the
 * median of the per-repeat ratios b / a. */
static void measure_pair(void (*fa)(void *), void (*fb)(void *), void *arg, stat3 *sa, stat3 *sb,
                         double *ratio)
{
    double ta[32], tb[32], tr[32];
    fa(arg);
    fb(arg);
    for (int r = 0; r < repeats; r++) {
        for (int k = 0; k < 2; k++) {
            long n = 0;
            double t0 = now(), el;
            do {
                (k ? fb : fa)(arg);
                n++;
            } while ((el = now() - t0) < min_s);
            (k ? tb : ta)[r] = el / (double)n;
        }
        tr[r] = tb[r] / ta[r];
    }
    qsort(ta, (size_t)repeats, sizeof ta[0], cmp_double);
    qsort(tb, (size_t)repeats, sizeof tb[0], cmp_double);
    qsort(tr, (size_t)repeats, sizeof tr[0], cmp_double);
    *sa = (stat3){ ta[repeats / 2], ta[0], ta[repeats - 1] };
    *sb = (stat3){ tb[repeats / 2], tb[0], tb[repeats - 1] };
    *ratio = tr[repeats / 2];
}

static void print_stat(const char *name, stat3 s, double scale)
{
    printf("\"%s\":{\"median\":%.6g,\"min\":%.6g,\"max\":%.6g}", name, s.med * scale, s.min * scale,
           s.max * scale);
}

static wm_watermark *make_wm(double gamma, uint32_t h, wm_seeding scheme, uint32_t V)
{
    unsigned char seed[32] = { 1 };
    wm_params p = { .size = sizeof(wm_params), .scheme = "kgw", .seeding = scheme, .context_width = h, .gamma = gamma, .delta = 2.0, .account_delta = 0.0 };
    wm_key *k;
    wm_watermark *wm;
    if (wm_key_from_seed(&k, &p, seed) || wm_watermark_new(&wm, k, V)) {
        fprintf(stderr, "wm_bench: cannot create watermark\n");
        exit(2);
    }
    wm_key_free(k);
    return wm;
}

/* ---- embedding ------------------------------------------------------------ */

typedef struct embed_job {
    const wm_watermark *wm;
    float *logits;
    size_t V, B;
    const wm_token *const *ctx;
    const size_t *n_ctx;
    wm_sampler *sampler;
    wm_token *cand_ids;
    float *cand_logits;
} embed_job;

/* The floor: the cheapest possible pass over the same logits, one add per
 * logit, written with AVX2 explicitly so it is as fast as the machine allows
 * (at -O2 GCC 12 leaves the plain loop scalar, which would flatter libwm). */
__attribute__((target("avx2"))) static void floor_avx2(float *l, size_t n)
{
    const __m256 c = _mm256_set1_ps(1e-30f);
    size_t i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(l + i, _mm256_add_ps(_mm256_loadu_ps(l + i), c));
    for (; i < n; i++) l[i] += 1e-30f;
}

static void run_floor(void *a)
{
    embed_job *j = a;
    float *l = j->logits;
    size_t n = j->V * j->B;
    if (wm__fill_avx2()) {
        floor_avx2(l, n);
    } else {
        for (size_t i = 0; i < n; i++) l[i] += 1e-30f;
    }
    __asm__ volatile("" ::"r"(l) : "memory");
}

static void run_bias(void *a)
{
    embed_job *j = a;
    if (j->B == 1) must(wm_bias_logits(j->wm, WM_ACCOUNT_NONE, j->ctx[0], j->n_ctx[0], j->logits, j->V), "wm_bias_logits");
    else must(wm_bias_logits_batch(j->wm, j->B, NULL, j->ctx, j->n_ctx, j->logits, WM_DTYPE_F32, j->V, j->V), "wm_bias_logits_batch");
}

static void run_candidates(void *a)
{
    embed_job *j = a;
    must(wm_bias_candidates(j->wm, WM_ACCOUNT_NONE, j->ctx[0], j->n_ctx[0], 40, j->cand_ids, sizeof(wm_token), j->cand_logits,
                            sizeof(float)), "wm_bias_candidates");
}

/* The sampler biases in place, so each call restores the logits from a base
 * copy (a 600 KB memcpy at V = 151,936, included in the figure).  Base logits
 * are N(0, 5^2): about 2.8 nats of entropy, like a real model's step. */
static float *sampler_base;

static void run_sampler(void *a)
{
    embed_job *j = a;
    wm_token out;
    memcpy(j->logits, sampler_base, j->V * sizeof *j->logits);
    /* a fresh sequence each call, so a selecting scheme's seed is never a repeat */
    must(wm_sampler_reset(j->sampler, 1, WM_ACCOUNT_NONE), "wm_sampler_reset");
    must(wm_sampler_sample(j->sampler, j->ctx[0], j->n_ctx[0], j->logits, j->V, 1, &out), "wm_sampler_sample");
}

static int bench_embedding(void)
{
    const uint32_t vocabs[] = { 32000, 128256, 151936, 201088 };
    const size_t batches[] = { 1, 64 };
    int bad = 0;
    for (int vi = 0; vi < 4; vi++) {
        uint32_t V = vocabs[vi];
        for (int scheme = 0; scheme < 2; scheme++) {
            uint32_t h = scheme ? 4 : 1;
            wm_watermark *wm = make_wm(0.25, h, (wm_seeding)scheme, V);
            for (int bi = 0; bi < 2; bi++) {
                size_t B = batches[bi];
                if (quick && (B > 1 || V != 151936)) continue;
                embed_job j = { wm, calloc(V * B, sizeof(float)), V, B, NULL, NULL, NULL, NULL, NULL };
                wm_token *ctx = malloc(B * 8 * sizeof *ctx);
                const wm_token **cp = malloc(B * sizeof *cp);
                size_t *nc = malloc(B * sizeof *nc);
                for (size_t s = 0; s < B; s++) {
                    for (int i = 0; i < 8; i++) ctx[s * 8 + i] = (wm_token)((s * 7919 + (size_t)i * 104729) % V);
                    cp[s] = ctx + s * 8;
                    nc[s] = 8;
                }
                j.ctx = cp;
                j.n_ctx = nc;
                stat3 floor_, bias;
                double ratio;
                measure_pair(run_floor, run_bias, &j, &floor_, &bias, &ratio);
                printf("{\"bench\":\"embed\",\"V\":%u,\"B\":%zu,\"scheme\":\"%s\",\"h\":%u,\"gamma\":0.25,",
                       V, B, scheme ? "minhash" : "lefthash", h);
                print_stat("us_per_seq_step", bias, 1e6 / (double)B);
                printf(",");
                print_stat("floor_us_per_seq_step", floor_, 1e6 / (double)B);
                printf(",\"ratio_to_floor\":%.3f}\n", ratio);
                if (quick && ratio > 8) {
                    fprintf(stderr, "wm_bench: REGRESSION: embedding %.1fx the plain pass (limit 8x)\n", ratio);
                    bad = 1;
                }
                if (B == 1) {
                    wm_token ids[40];
                    float cl[40];
                    for (int i = 0; i < 40; i++) ids[i] = (wm_token)((i * 15485863u) % V), cl[i] = 0;
                    j.cand_ids = ids;
                    j.cand_logits = cl;
                    stat3 c = measure(run_candidates, &j);
                    printf("{\"bench\":\"embed_candidates\",\"V\":%u,\"k\":40,\"scheme\":\"%s\",\"h\":%u,",
                           V, scheme ? "minhash" : "lefthash", h);
                    print_stat("us_per_step", c, 1e6);
                    printf("}\n");
                    wm_sampler_params sp = { .size = sizeof(wm_sampler_params), .temperature = 1.0f, .top_k = 0, .top_p = 0.9f, .seed = 1, .account = WM_ACCOUNT_NONE };
                    wm__rng r;
                    wm__rng_seed(&r, 9);
                    sampler_base = malloc(V * sizeof *sampler_base);
                    for (size_t i = 0; i < V; i++) {
                        double u1 = wm__rng_uniform(&r), u2 = wm__rng_uniform(&r);
                        sampler_base[i] = (float)(5 * sqrt(-2 * log(1 - u1)) * cos(2 * M_PI * u2));
                    }
                    must(wm_sampler_new(&j.sampler, wm, &sp), "wm_sampler_new");
                    stat3 s = measure(run_sampler, &j);
                    printf("{\"bench\":\"sampler\",\"V\":%u,\"top_p\":0.9,\"scheme\":\"%s\",\"h\":%u,",
                           V, scheme ? "minhash" : "lefthash", h);
                    print_stat("us_per_step", s, 1e6);
                    printf("}\n");
                    wm_sampler_free(j.sampler);
                    free(sampler_base);
                }
                fflush(stdout);
                free(j.logits);
                free(ctx);
                free(cp);
                free(nc);
            }
            wm_watermark_free(wm);
        }
    }
    return bad;
}

/* ---- detection ------------------------------------------------------------ */

typedef struct detect_job {
    const wm_watermark *wm;
    const wm_token *t;
    size_t n, doc_len;
    unsigned flags;
} detect_job;

static void run_detect(void *a)
{
    detect_job *j = a;
    wm_score s = WM_INIT(wm_score);
    for (size_t off = 0; off + j->doc_len <= j->n; off += j->doc_len)
        must(wm_detect(j->wm, j->t + off, j->doc_len, 0, j->flags, 1e-3, &s), "wm_detect");
}

static void run_token_floor(void *a)
{
    detect_job *j = a;
    uint64_t sum = 0;
    for (size_t i = 0; i < j->n; i++) sum += (uint32_t)j->t[i] * 0x9e3779b97f4a7c15ULL;
    __asm__ volatile("" ::"r"(sum));
}

static int bench_detection(void)
{
    const uint32_t V = 151936;
    const size_t n = quick ? 200000 : 2000000;
    wm_token *t = malloc(n * sizeof *t);
    wm__rng r;
    wm__rng_seed(&r, 5);
    for (size_t i = 0; i < n; i++) t[i] = (wm_token)(wm__rng_next(&r) % V);
    wm_watermark *wm = make_wm(0.25, 1, WM_SEEDING_LEFTHASH, V);
    detect_job fl = { wm, t, n, n, 0 };
    stat3 floor_ = measure(run_token_floor, &fl);
    int bad = 0;
    const size_t lens[] = { 200, 100000 };
    for (int li = 0; li < 2; li++) {
        for (int dedup = 1; dedup >= 0; dedup--) {
            detect_job j = { wm, t, n, lens[li], dedup ? 0u : WM_NO_DEDUP };
            stat3 s = measure(run_detect, &j);
            double tps = (double)n / s.med;
            printf("{\"bench\":\"detect\",\"V\":%u,\"doc_tokens\":%zu,\"dedup\":%s,\"tokens_per_s\":%.4g,",
                   V, lens[li], dedup ? "true" : "false", tps);
            print_stat("ns_per_token", s, 1e9 / (double)n);
            printf(",\"ratio_to_token_pass\":%.1f}\n", s.med / floor_.med);
            if (quick && s.med / floor_.med > 2000) {
                fprintf(stderr, "wm_bench: REGRESSION: detection %.0fx a plain pass over the ids\n",
                        s.med / floor_.med);
                bad = 1;
            }
            fflush(stdout);
        }
    }
    free(t);
    wm_watermark_free(wm);
    return bad;
}

/* ---- Gumbel-max -------------------------------------------------------------- */

typedef struct select_job {
    const wm_watermark *wm;
    const wm_token *ctx;
    size_t n;          /* candidates */
    const wm_token *ids;
    const float *w;
    detect_job *det;
} select_job;

static void run_select(void *a)
{
    select_job *j = a;
    wm_token out;
    bool sel;
    must(wm_select(j->wm, NULL, j->ctx, 4, j->n, j->ids, sizeof *j->ids, j->w, sizeof *j->w, &out, &sel), "wm_select");
}

/* wm_select over 40, 1,000 and all 151,936 candidates (weights of N(0, 5^2)
 * logits), and the complete sampler (top-p 0.9 and none) for both schemes,
 * next to the plain pass over the same logits. */
static void bench_gumbel(void)
{
    const uint32_t V = 151936;
    unsigned char seed[32] = { 1 };
    wm_params gp;
    must(wm_params_init(&gp, "gumbel"), "params");
    wm_key *k;
    wm_watermark *g;
    must(wm_key_from_seed(&k, &gp, seed), "key");
    must(wm_watermark_new(&g, k, V), "watermark");
    wm_key_free(k);
    wm_watermark *kgw = make_wm(0.25, 1, WM_SEEDING_LEFTHASH, V);
    wm__rng r;
    wm__rng_seed(&r, 9);
    float *base = malloc(V * sizeof *base), *w = malloc(V * sizeof *w);
    wm_token *ids = malloc(V * sizeof *ids);
    float mx = -INFINITY;
    for (size_t i = 0; i < V; i++) {
        double u1 = wm__rng_uniform(&r), u2 = wm__rng_uniform(&r);
        base[i] = (float)(5 * sqrt(-2 * log(1 - u1)) * cos(2 * M_PI * u2));
        mx = base[i] > mx ? base[i] : mx;
    }
    for (size_t i = 0; i < V; i++) ids[i] = (wm_token)i, w[i] = expf(base[i] - mx);
    const wm_token ctx[4] = { 11, 2024, 7, 50000 };
    embed_job fj = { g, calloc(V, sizeof(float)), V, 1, NULL, NULL, NULL, NULL, NULL };
    stat3 floor_ = measure(run_floor, &fj);
    const size_t ns[] = { 40, 1000, V };
    for (int i = 0; i < 3; i++) {
        /* candidates spread over the vocabulary, as after a top-k */
        wm_token *cid = malloc(ns[i] * sizeof *cid);
        float *cw = malloc(ns[i] * sizeof *cw);
        for (size_t c = 0; c < ns[i]; c++) {
            size_t v = ns[i] == V ? c : (size_t)((c * 15485863u) % V);
            cid[c] = (wm_token)v;
            cw[c] = ns[i] == V ? w[v] : (float)(1.0 / (1 + c));
        }
        select_job j = { g, ctx, ns[i], cid, cw, NULL };
        stat3 st = measure(run_select, &j);
        printf("{\"bench\":\"gumbel_select\",\"V\":%u,\"candidates\":%zu,\"h\":4,", V, ns[i]);
        print_stat("us_per_step", st, 1e6);
        printf(",\"ratio_to_floor\":%.2f}\n", st.med / floor_.med);
        free(cid);
        free(cw);
    }
    for (int sc = 0; sc < 2; sc++)
        for (int tp = 0; tp < 2; tp++) {
            wm_sampler_params sp = { .size = sizeof(wm_sampler_params), .temperature = 1.0f, .top_k = 0, .top_p = tp ? 0.9f : 1.0f, .seed = 1, .account = WM_ACCOUNT_NONE };
            embed_job j = { sc ? g : kgw, fj.logits, V, 1, NULL, NULL, NULL, NULL, NULL };
            const wm_token *cp = ctx;
            size_t nc = 4;
            j.ctx = &cp;
            j.n_ctx = &nc;
            sampler_base = base;
            must(wm_sampler_new(&j.sampler, j.wm, &sp), "wm_sampler_new");
            stat3 st = measure(run_sampler, &j);
            printf("{\"bench\":\"sampler_scheme\",\"V\":%u,\"scheme\":\"%s\",\"top_p\":%.1f,", V,
                   sc ? "gumbel" : "kgw", tp ? 0.9 : 1.0);
            print_stat("us_per_step", st, 1e6);
            printf(",\"ratio_to_floor\":%.1f}\n", st.med / floor_.med);
            wm_sampler_free(j.sampler);
            fflush(stdout);
        }
    /* detection throughput (h = 4, 200-token documents) */
    const size_t n = quick ? 200000 : 2000000;
    wm_token *t = malloc(n * sizeof *t);
    for (size_t i = 0; i < n; i++) t[i] = (wm_token)(wm__rng_next(&r) % V);
    detect_job dj = { g, t, n, 200, 0 };
    stat3 ds = measure(run_detect, &dj);
    printf("{\"bench\":\"detect\",\"scheme\":\"gumbel\",\"V\":%u,\"doc_tokens\":200,\"tokens_per_s\":%.4g}\n", V,
           (double)n / ds.med);
    free(t);
    free(fj.logits);
    free(base);
    free(w);
    free(ids);
    wm_watermark_free(g);
    wm_watermark_free(kgw);
}

/* ---- the exact untruncated sampler ------------------------------------------ */

/* Several operations measured in alternating repeats (as measure_pair);
 * ratio[f] is the median of the per-repeat ratios f / fns[0]. */
static void measure_alt(void (*const *fns)(void *), void *const *args, int n, stat3 *st, double *ratio)
{
    double t[8][32], tr[8][32];
    for (int f = 0; f < n; f++) fns[f](args[f]);
    for (int r = 0; r < repeats; r++) {
        for (int f = 0; f < n; f++) {
            long k = 0;
            double t0 = now(), el;
            do {
                fns[f](args[f]);
                k++;
            } while ((el = now() - t0) < min_s);
            t[f][r] = el / (double)k;
        }
        for (int f = 0; f < n; f++) tr[f][r] = t[f][r] / t[0][r];
    }
    for (int f = 0; f < n; f++) {
        qsort(t[f], (size_t)repeats, sizeof t[f][0], cmp_double);
        qsort(tr[f], (size_t)repeats, sizeof tr[f][0], cmp_double);
        st[f] = (stat3){ t[f][repeats / 2], t[f][0], t[f][repeats - 1] };
        ratio[f] = tr[f][repeats / 2];
    }
}

/* What the sampler's timing includes besides the sampler: the restore of
 * the logits and the reset (run_sampler's first two lines). */
static void run_restore(void *a)
{
    embed_job *j = a;
    memcpy(j->logits, sampler_base, j->V * sizeof *j->logits);
    must(wm_sampler_reset(j->sampler, 1, WM_ACCOUNT_NONE), "wm_sampler_reset");
    __asm__ volatile("" ::"r"(j->logits) : "memory");
}

/* The complete kgw sampler without truncation at V = 151,936, batch 1:
 * the exact head/tail draw against the dense draw it replaced (every
 * weight computed; wm__sampler_all_weights), next to the plain pass and
 * the restore of the logits each sampler call includes, all in
 * alternating repeats.  Logits N(0, 5^2) (as the other sampler figures)
 * and N(0, 1): there every token is within ln V of the top, the head is
 * the whole vocabulary and the exact draw pays its extra pass for
 * nothing (its worst case). */
static int bench_sampler(void)
{
    const uint32_t V = 151936;
    const double sigmas[] = { 5.0, 1.0 };
    wm_watermark *wm = make_wm(0.25, 1, WM_SEEDING_LEFTHASH, V);
    const wm_token ctx[8] = { 11, 2024, 7, 50000, 3, 99, 123, 4567 };
    const wm_token *cp = ctx;
    size_t nc = 8;
    float *logits = calloc(V, sizeof *logits);
    sampler_base = malloc(V * sizeof *sampler_base);
    int bad = 0;
    for (int si = 0; si < 2; si++) {
        wm__rng r;
        wm__rng_seed(&r, 9);
        for (size_t i = 0; i < V; i++) {
            double u1 = wm__rng_uniform(&r), u2 = wm__rng_uniform(&r);
            sampler_base[i] = (float)(sigmas[si] * sqrt(-2 * log(1 - u1)) * cos(2 * M_PI * u2));
        }
        wm_sampler_params sp = { .size = sizeof(wm_sampler_params), .temperature = 1.0f, .top_k = 0, .top_p = 1.0f, .seed = 1, .account = WM_ACCOUNT_NONE };
        embed_job jf = { wm, logits, V, 1, &cp, &nc, NULL, NULL, NULL }, jd = jf, je = jf;
        must(wm_sampler_new(&jd.sampler, wm, &sp), "wm_sampler_new");
        must(wm_sampler_new(&je.sampler, wm, &sp), "wm_sampler_new");
        wm__sampler_all_weights(jd.sampler, 1);
        void (*const fns[4])(void *) = { run_floor, run_restore, run_sampler, run_sampler };
        void *const args[4] = { &jf, &je, &jd, &je };
        const char *names[4] = { "floor", "restore", "dense", "exact" };
        stat3 st[4];
        double ratio[4];
        measure_alt(fns, args, 4, st, ratio);
        for (int f = 0; f < 4; f++) {
            printf("{\"bench\":\"sampler_exact\",\"V\":%u,\"B\":1,\"scheme\":\"kgw\",\"h\":1,\"top_p\":1.0,"
                   "\"logit_sigma\":%.0f,\"what\":\"%s\",", V, sigmas[si], names[f]);
            print_stat("us_per_step", st[f], 1e6);
            printf(",\"ratio_to_floor\":%.3f}\n", ratio[f]);
        }
        fflush(stdout);
        if (quick && ratio[3] > 3 * ratio[2]) {
            fprintf(stderr, "wm_bench: REGRESSION: exact sampler %.1fx the dense one\n", ratio[3] / ratio[2]);
            bad = 1;
        }
        wm_sampler_free(jd.sampler);
        wm_sampler_free(je.sampler);
    }
    free(logits);
    free(sampler_base);
    wm_watermark_free(wm);
    return bad;
}

/* ---- corpus ---------------------------------------------------------------- */

static long peak_rss_kb(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_maxrss;
}

static void bench_corpus(void)
{
    const uint64_t sizes[] = { 1000000, 10000000, 100000000 };
    const uint32_t V = 151936;
    wm_watermark *wm = make_wm(0.25, 2, WM_SEEDING_LEFTHASH, V);
    const size_t doc = 1000;
    wm_token *t = malloc(doc * sizeof *t);
    for (int si = 0; si < 3; si++) {
        uint64_t total = sizes[si];
        if (quick && total > 1000000) break;
        wm_corpus *c;
        must(wm_corpus_new(&c, wm, 0), "wm_corpus_new");
        wm__rng r;
        wm__rng_seed(&r, 6);
        long rss0 = peak_rss_kb();
        double t0 = now(), gen = 0;
        for (uint64_t done = 0; done < total; done += doc) {
            double g0 = now();
            for (size_t i = 0; i < doc; i++) t[i] = (wm_token)(wm__rng_next(&r) % V);
            gen += now() - g0;
            must(wm_corpus_add(c, t, doc, 0), "wm_corpus_add");
        }
        double el = now() - t0 - gen;
        wm_score s = WM_INIT(wm_score);
        must(wm_corpus_score(c, 1e-3, &s), "wm_corpus_score");
        size_t mem;
        must(wm_corpus_memory(c, &mem), "wm_corpus_memory");
        printf("{\"bench\":\"corpus\",\"tokens\":%llu,\"unique_tuples\":%llu,\"tuples_per_s\":%.4g,"
               "\"bytes_per_unique_tuple\":%.2f,\"peak_rss_growth_mb\":%.1f}\n",
               (unsigned long long)total, (unsigned long long)s.scored, (double)total / el,
               (double)mem / (double)s.scored, (double)(peak_rss_kb() - rss0) / 1024);
        fflush(stdout);
        wm_corpus_free(c);
    }
    free(t);
    wm_watermark_free(wm);
}

/* ---- reading mode, the weighted test, the audit ------------------------------
 * Throughput of wm_reader_add (plain top-1 and weighted top-256, the demo's
 * settings, 128-token documents) and the time of the weighted score (the
 * Chernoff minimiser over every distinct pair); the floor is wm_corpus_add
 * over the same documents, whose audit look per document is included. */

static void bench_read(void)
{
    const uint32_t V = 2048;
    const size_t doc = 128, docs = quick ? 200 : 2000, kw = 256;
    wm_watermark *wm = make_wm(0.25, 1, WM_SEEDING_LEFTHASH, V); /* the demo's h = 1 */
    wm_token *t = malloc(docs * doc * sizeof *t), *p1 = malloc(doc * sizeof *p1), *pk = malloc(doc * kw * sizeof *pk);
    float *w = malloc(doc * kw * sizeof *w);
    wm__rng r;
    wm__rng_seed(&r, 12);
    for (size_t i = 0; i < docs * doc; i++) t[i] = (wm_token)(wm__rng_next(&r) % V);
    for (size_t i = 0; i < doc; i++) p1[i] = (wm_token)(wm__rng_next(&r) % V);
    for (size_t i = 0; i < doc * kw; i++) pk[i] = (wm_token)(wm__rng_next(&r) % V), w[i] = (float)(wm__rng_uniform(&r) - 0.5);
    wm_corpus *c;
    wm_reader *plain, *wr;
    must(wm_corpus_new(&c, wm, 0), "wm_corpus_new");
    must(wm_reader_new(&plain, wm, 0), "wm_reader_new");
    must(wm_reader_new(&wr, wm, WM_READ_WEIGHTED), "wm_reader_new");
    double t0 = now();
    for (size_t d = 0; d < docs; d++) must(wm_corpus_add(c, t + d * doc, doc, 0), "wm_corpus_add");
    double t1 = now();
    for (size_t d = 0; d < docs; d++) must(wm_reader_add(plain, t + d * doc, doc, 0, p1, NULL, 1), "wm_reader_add");
    double t2 = now();
    for (size_t d = 0; d < docs; d++) must(wm_reader_add(wr, t + d * doc, doc, 0, pk, w, kw), "wm_reader_add");
    double t3 = now();
    wm_score s = WM_INIT(wm_score);
    uint64_t pos;
    must(wm_reader_score(wr, 1e-3, &s, &pos), "wm_reader_score");
    double t4 = now();
    printf("{\"bench\":\"read\",\"docs\":%zu,\"corpus_with_audit_tokens_per_s\":%.4g,\"plain_top1_positions_per_s\":%.4g,"
           "\"weighted_top%zu_entries_per_s\":%.4g,\"weighted_pairs\":%llu,\"weighted_score_s\":%.3g,"
           "\"ratio_plain_to_corpus\":%.3f}\n",
           docs, docs * doc / (t1 - t0), docs * doc / (t2 - t1), kw, (double)(docs * doc * kw) / (t3 - t2),
           (unsigned long long)s.scored, t4 - t3, (t2 - t1) / (t1 - t0));
    fflush(stdout);
    wm_reader_free(plain);
    wm_reader_free(wr);
    wm_corpus_free(c);
    free(t);
    free(p1);
    free(pk);
    free(w);
    wm_watermark_free(wm);
}

/* ---- accounts ------------------------------------------------------------ */

typedef struct account_job { embed_job e; uint64_t account; wm_dtype dtype; const uint64_t *none, *accs; } account_job;

static void run_bias_base(void *a)
{
    account_job *j = a;
    must(wm_bias_logits(j->e.wm, WM_ACCOUNT_NONE, j->e.ctx[0], j->e.n_ctx[0], j->e.logits, j->e.V), "wm_bias_logits");
}

static void run_bias_account(void *a)
{
    account_job *j = a;
    must(wm_bias_logits(j->e.wm, j->account, j->e.ctx[0], j->e.n_ctx[0], j->e.logits, j->e.V), "wm_bias_logits");
}

static void run_floor_account(void *a) { run_floor(&((account_job *)a)->e); }

/* A batch of B rows of dtype, every row under no account or under one. */
static void run_batch_account(account_job *j, const uint64_t *accounts)
{
    must(wm_bias_logits_batch(j->e.wm, j->e.B, accounts, j->e.ctx, j->e.n_ctx, j->e.logits, j->dtype, j->e.V, j->e.V),
         "wm_bias_logits_batch");
}
static void run_batch_base(void *a) { run_batch_account(a, ((account_job *)a)->none); }
static void run_batch_with(void *a) { run_batch_account(a, ((account_job *)a)->accs); }
/* What the step cost before the fusion: the scheme's pass and then the
 * account layer's, through the same tables embed.c used (internal.h). */
static void run_batch_two_pass(void *a)
{
    account_job *j = a;
    const wm_watermark *wm = j->e.wm;
    size_t es = j->dtype == WM_DTYPE_F32 ? 4 : 2;
    for (size_t s = 0; s < j->e.B; s++) {
        uint64_t seed = wm__seed(wm, j->e.ctx[s]);
        unsigned char code[WM__CODE_BYTES];
        void *row = (char *)j->e.logits + s * j->e.V * es;
        wm->scheme->bias_row(wm, seed, row, j->dtype);
        wm->account->codes(wm, j->accs + s, 1, code);
        wm->account->bias_row(wm, seed, wm__account_symbol(code, wm->account->pos(wm, seed)), row, j->dtype);
    }
}

/* The account layer's price: one step at V = 151,936 with and without it
 * (ratio to the base watermark's own step, measured interleaved, and to
 * the add floor); a corpus with and without the tally; attribution over
 * 10^6 ids (10^5 with --quick), the null law included. */
static void bench_accounts(void)
{
    const uint32_t V = 151936;
    unsigned char seed[32] = { 2 };
    wm_params p = { .size = sizeof(wm_params), .scheme = "kgw", .seeding = WM_SEEDING_LEFTHASH, .context_width = 1, .gamma = 0.25, .delta = 2.0, .account_delta = 1.0 };
    wm_key *k;
    wm_watermark *wm;
    must(wm_key_from_seed(&k, &p, seed), "wm_key_from_seed");
    must(wm_watermark_new(&wm, k, V), "wm_watermark_new");
    wm_key_free(k);
    wm_token ctx[1] = { 4242 };
    const wm_token *cp[1] = { ctx };
    size_t nc[1] = { 1 };
    account_job j = { { wm, calloc(V, sizeof(float)), V, 1, cp, nc, NULL, NULL, NULL }, 0x1234567890abcdefULL, WM_DTYPE_F32, NULL, NULL };
    stat3 base, with, floor_, with2;
    double ratio, ratio_floor;
    measure_pair(run_bias_base, run_bias_account, &j, &base, &with, &ratio);
    measure_pair(run_floor_account, run_bias_account, &j, &floor_, &with2, &ratio_floor);
    printf("{\"bench\":\"embed_account\",\"V\":%u,\"B\":1,\"account_delta\":1,", V);
    print_stat("us_base", base, 1e6);
    printf(",");
    print_stat("us_with_account", with, 1e6);
    printf(",");
    print_stat("us_floor", floor_, 1e6);
    printf(",\"ratio_to_base\":%.3f,\"ratio_to_floor\":%.3f}\n", ratio, ratio_floor);
    free(j.e.logits);
    /* The same through the batch call, batch 1 and 64, float32 and 16-bit
     * rows, each with and without an account measured in alternating
     * repeats of this run (ratio_to_base: the account layer's price). */
    static const struct { wm_dtype dt; const char *name; size_t es; } dts[] = {
        { WM_DTYPE_F32, "f32", 4 }, { WM_DTYPE_BF16, "bf16", 2 }, { WM_DTYPE_F16, "f16", 2 } };
    enum { BMAX = 64 };
    wm_token bctx[BMAX];
    const wm_token *bcp[BMAX];
    size_t bnc[BMAX];
    uint64_t none[BMAX], accs[BMAX];
    for (size_t s = 0; s < BMAX; s++)
        bctx[s] = (wm_token)(1000 + 37 * s), bcp[s] = bctx + s, bnc[s] = 1, none[s] = WM_ACCOUNT_NONE,
        accs[s] = 0x1234567890abcdefULL + 2 * s;
    for (size_t d = 0; d < sizeof dts / sizeof dts[0]; d++)
        for (size_t B = 1; B <= BMAX; B += BMAX - 1) {
            account_job bj = { { wm, calloc(B * V, dts[d].es), V, B, bcp, bnc, NULL, NULL, NULL }, 0, dts[d].dt, none, accs };
            stat3 b0, b1, b2, b3;
            double rb, rt;
            measure_pair(run_batch_base, run_batch_with, &bj, &b0, &b1, &rb);
            measure_pair(run_batch_base, run_batch_two_pass, &bj, &b2, &b3, &rt);
            printf("{\"bench\":\"embed_account_batch\",\"V\":%u,\"B\":%zu,\"dtype\":\"%s\",\"account_delta\":1,", V, B,
                   dts[d].name);
            print_stat("us_base", b0, 1e6);
            printf(",");
            print_stat("us_with_account", b1, 1e6);
            printf(",");
            print_stat("us_two_pass", b3, 1e6);
            printf(",\"ratio_to_base\":%.3f,\"ratio_two_pass_to_base\":%.3f,\"goal_ratio\":1.3,\"goal_met\":%s}\n", rb, rt,
                   rb <= 1.3 ? "true" : "false");
            fflush(stdout);
            free(bj.e.logits);
        }
    /* corpus tally and attribution */
    const size_t doc = 128, docs = quick ? 200 : 2000;
    const size_t n_ids = quick ? 100000 : 1000000;
    wm_token *t = malloc(docs * doc * sizeof *t);
    uint64_t *ids = malloc(n_ids * sizeof *ids);
    wm__rng r;
    wm__rng_seed(&r, 13);
    for (size_t i = 0; i < docs * doc; i++) t[i] = (wm_token)(wm__rng_next(&r) % V);
    for (size_t i = 0; i < n_ids; i++) ids[i] = wm__rng_next(&r) | 1;
    /* corpora with and without the tally, alternately, best of 3 each: the
     * first pass over fresh tables is slower whichever it is */
    wm_corpus *c1 = NULL;
    double t_plain = 1e30, t_tally = 1e30;
    for (int rep = 0; rep < 6; rep++) {
        wm_corpus *c;
        must(wm_corpus_new(&c, wm, rep & 1 ? WM_ACCOUNTS : 0), "wm_corpus_new");
        double t0 = now();
        for (size_t d = 0; d < docs; d++) must(wm_corpus_add(c, t + d * doc, doc, 0), "wm_corpus_add");
        double el = now() - t0;
        if (rep & 1) t_tally = fmin(t_tally, el);
        else t_plain = fmin(t_plain, el);
        if (rep == 5) c1 = c;
        else wm_corpus_free(c);
    }
    double t2 = now();
    wm_account_score top[10] = { WM_INIT(wm_account_score) };
    wm_attribution at = WM_INIT(wm_attribution);
    must(wm_corpus_attribute(c1, ids, n_ids, 1e-3, top, 10, &at), "wm_corpus_attribute");
    double t3 = now();
    printf("{\"bench\":\"attribute\",\"docs\":%zu,\"corpus_tokens_per_s\":%.4g,\"corpus_with_tally_tokens_per_s\":%.4g,"
           "\"time_ratio_tally_to_plain\":%.3f,\"accounts\":%zu,\"attribute_s\":%.3g,\"accounts_per_s\":%.4g,\"exact\":%s}\n",
           docs, docs * doc / t_plain, docs * doc / t_tally, t_tally / t_plain, n_ids, t3 - t2,
           n_ids / (t3 - t2), at.exact ? "true" : "false");
    fflush(stdout);
    wm_corpus_free(c1);
    free(t);
    free(ids);
    wm_watermark_free(wm);
}

/* ---- tokenizers ---------------------------------------------------------- */

typedef struct tok_job {
    wm_encoder *enc;
    const char *text;
    size_t len;
} tok_job;

/* Encode the text as documents of about 4 KB cut at newlines, the size of a
 * typical model answer; the encoder's word cache stays warm across them, as
 * it does over a corpus. */
static void run_encode(void *a)
{
    tok_job *j = a;
    const wm_token *ids;
    size_t n, off = 0;
    while (off < j->len) {
        size_t end = off + 4096 < j->len ? off + 4096 : j->len;
        while (end < j->len && j->text[end - 1] != '\n') end++;
        if (wm_encode(j->enc, j->text + off, end - off, WM_ENC_LOSSY, &ids, &n, NULL) != WM_OK) exit(2);
        off = end;
    }
}

static char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    rewind(f);
    char *b = malloc((size_t)n + 1);
    *len = fread(b, 1, (size_t)n, f);
    fclose(f);
    return b;
}

static void bench_tokenizers(const char *fixtures, const char *texts)
{
    /* the byte-level family, then the SentencePiece-style one; with
     * WM_BENCH_TOKENIZERS (names separated by commas) only those */
    static const char *fams[] = { "gpt2", "llama3", "qwen3", "deepseek_v3", "gpt4o", "llama2", "gemma3", "gemini" };
    static const char *kinds[] = { "prose", "code", "cjk" };
    const char *only_tok = getenv("WM_BENCH_TOKENIZERS");
    for (int fi = 0; fi < (int)(sizeof fams / sizeof fams[0]); fi++) {
        if (only_tok) {
            const char *p = strstr(only_tok, fams[fi]);
            size_t fl = strlen(fams[fi]);
            if (!p || (p > only_tok && p[-1] != ',') || (p[fl] && p[fl] != ',')) continue;
        }
        char path[1024];
        snprintf(path, sizeof path, "%s/%s/tokenizer.json", fixtures, fams[fi]);
        wm_tokenizer *t;
        wm_error err;
        double t0 = now();
        if (wm_tokenizer_load(&t, path, &err) != WM_OK) {
            fprintf(stderr, "wm_bench: %s (run scripts/fetch-fixtures.sh)\n", err.message);
            return;
        }
        double load_s = now() - t0;
        for (int k = 0; k < 3; k++) {
            snprintf(path, sizeof path, "%s/%s.txt", texts, kinds[k]);
            size_t len;
            char *text = slurp(path, &len);
            if (!text) {
                fprintf(stderr, "wm_bench: %s missing (run scripts/bench.sh)\n", path);
                continue;
            }
            tok_job j = { NULL, text, len };
            must(wm_encoder_new(&j.enc, t), "wm_encoder_new");
            const wm_token *ids;
            size_t n_ids;
            must(wm_encode(j.enc, text, len, WM_ENC_LOSSY, &ids, &n_ids, NULL), "wm_encode");
            stat3 st = measure(run_encode, &j);
            printf("{\"bench\":\"tokenize\",\"tokenizer\":\"%s\",\"text\":\"%s\",\"bytes\":%zu,\"tokens\":%zu,"
                   "\"load_s\":%.3f,\"mb_per_s\":{\"median\":%.2f,\"min\":%.2f,\"max\":%.2f}}\n",
                   fams[fi], kinds[k], len, n_ids, load_s, len / st.med / 1e6, len / st.max / 1e6,
                   len / st.min / 1e6);
            fflush(stdout);
            wm_encoder_free(j.enc);
            free(text);
        }
        wm_tokenizer_free(t);
    }
}

static void print_machine(void)
{
    char model[256] = "unknown", line[512];
    FILE *f = fopen("/proc/cpuinfo", "r");
    while (f && fgets(line, sizeof line, f))
        if (!strncmp(line, "model name", 10)) {
            char *c = strchr(line, ':');
            if (c) {
                snprintf(model, sizeof model, "%s", c + 2);
                model[strcspn(model, "\n")] = 0;
            }
            break;
        }
    if (f) fclose(f);
    const char *kernels = NULL; /* the set in use: WM_CPU's, else the widest this CPU runs */
    if (wm_cpu_kernels(&kernels)) kernels = "refused";
    printf("{\"bench\":\"machine\",\"cpu\":\"%s\",\"avx2\":%s,\"kernels\":\"%s\",\"compiler\":\"%s\",\"cflags\":\"%s\","
           "\"mode\":\"%s\",\"repeats\":%d}\n",
           model, wm__fill_avx2() ? "true" : "false", kernels, __VERSION__, WM_BENCH_CFLAGS,
           quick ? "quick" : "full", repeats);
}

int main(int argc, char **argv)
{
    const char *only = NULL; /* --only embed|sampler|gumbel|detect|corpus|read|accounts|tokenize */
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--quick")) quick = 1;
        else if (!strcmp(argv[i], "--only") && i + 1 < argc) only = argv[++i];
        else if (!strcmp(argv[i], "--repeats") && i + 1 < argc) repeats = atoi(argv[++i]);
        else {
            fprintf(stderr, "usage: wm_bench [--quick] [--repeats N] [--only embed|sampler|gumbel|detect|corpus|read|accounts|tokenize]\n");
            return 2;
        }
    }
    if (repeats < 1 || repeats > 31) repeats = quick ? 3 : 11; /* --repeats: at most the 32 measure keeps */
    min_s = quick ? 0.02 : 0.2;
    print_machine();
    int bad = 0;
    if (!only || !strcmp(only, "embed")) bad |= bench_embedding();
    if (!only || !strcmp(only, "sampler")) bad |= bench_sampler();
    if (!only || !strcmp(only, "detect")) bad |= bench_detection();
    if (!only || !strcmp(only, "gumbel")) bench_gumbel();
    if (!only || !strcmp(only, "corpus")) bench_corpus();
    if (!only || !strcmp(only, "read")) bench_read();
    if (!only || !strcmp(only, "accounts")) bench_accounts();
    /* Tokenizers: needs the fixtures and the texts scripts/bench.sh prepares;
     * not in quick mode (no timing of them gates CI). */
    const char *fx = getenv("WM_FIXTURES"), *tx = getenv("WM_BENCH_TEXTS");
    if (!quick && fx && tx && (!only || !strcmp(only, "tokenize"))) bench_tokenizers(fx, tx);
    return bad;
}
