/* What the llama.cpp sampler costs a token at a real vocabulary: libwm's
 * sampler (libwm-llama) applied to llama.cpp's candidate records for the
 * whole vocabulary in id order, as llama-server hands them over, against
 * wm_bias_logits on the same logits as one contiguous row (the floor), and
 * the passes over the records alone (check the id order, gather, write
 * back) that the sampler adds.  V = 151,936 (Qwen's padded vocabulary),
 * kgw gamma 0.25 delta 2, without and with an account layer; best of 200.
 * JSON lines on stdout (docs/PERFORMANCE.md, "llama-server at a real
 * vocabulary").
 *
 *   llama_apply */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <wm.h>
#include <wm/advanced.h>
#include <wm/llama.h>

enum { V = 151936, REPEATS = 200 };

static void must(wm_status st, const char *what)
{
    if (st) {
        fprintf(stderr, "llama_apply: %s: %s\n", what, wm_strerror(st));
        exit(2);
    }
}

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static llama_token_data rec[V];
static float row[V], base[V];

static void fill(void)
{
    for (size_t i = 0; i < V; i++) rec[i] = (llama_token_data){ (llama_token)i, base[i], 0.0f };
}

/* The sampler's own passes, as wm_llama.c makes them, without the bias. */
static __attribute__((noinline)) int passes(void)
{
    for (size_t i = 0; i < V; i++)
        if (rec[i].id != (llama_token)i) return 1;
    for (size_t i = 0; i < V; i++) row[i] = rec[i].logit;
    __asm__ volatile("" ::"r"(row) : "memory");
    for (size_t i = 0; i < V; i++) rec[i].logit = row[i];
    return 0;
}

static void run(double account_delta)
{
    unsigned char seed[32];
    for (int i = 0; i < 32; i++) seed[i] = (unsigned char)(3 * i + 1);
    wm_params p = WM_INIT(wm_params);
    must(wm_params_init(&p, "kgw"), "wm_params_init");
    p.gamma = 0.25, p.delta = 2.0, p.account_delta = account_delta;
    wm_key *k;
    wm_watermark *wm;
    must(wm_key_from_seed(&k, &p, seed), "wm_key_from_seed");
    must(wm_watermark_new(&wm, k, V), "wm_watermark_new");
    uint64_t account = account_delta > 0 ? 7 : WM_ACCOUNT_NONE;
    llama_token prompt[1] = { 42 };
    struct llama_sampler *s;
    must(wm_llama_sampler_new(&s, wm, account, prompt, 1), "wm_llama_sampler_new");
    double t_apply = 1e9, t_row = 1e9, t_pass = 1e9;
    for (int r = 0; r < REPEATS; r++) {
        fill();
        llama_token_data_array cur = { rec, V, -1, false };
        double t0 = now();
        llama_sampler_apply(s, &cur);
        double t1 = now();
        wm_status st;
        must(wm_llama_sampler_status(s, &st), "status");
        must(st, "apply");
        memcpy(row, base, sizeof row);
        wm_token ctx[1] = { 42 };
        double t2 = now();
        must(wm_bias_logits(wm, account, ctx, 1, row, V), "wm_bias_logits");
        double t3 = now();
        fill();
        double t4 = now();
        if (passes()) exit(2);
        double t5 = now();
        if (t1 - t0 < t_apply) t_apply = t1 - t0;
        if (t3 - t2 < t_row) t_row = t3 - t2;
        if (t5 - t4 < t_pass) t_pass = t5 - t4;
    }
    printf("{\"bench\":\"llama_sampler_apply\",\"V\":%d,\"account\":%s,\"best_of\":%d,\"apply_us\":%.1f,"
           "\"bias_row_us\":%.1f,\"record_passes_us\":%.1f,\"ratio_to_row\":%.2f}\n",
           V, account_delta > 0 ? "true" : "false", REPEATS, 1e6 * t_apply, 1e6 * t_row, 1e6 * t_pass,
           t_apply / t_row);
    llama_sampler_free(s);
    wm_watermark_free(wm);
    wm_key_free(k);
}

int main(void)
{
    srand(1);
    for (size_t i = 0; i < V; i++) base[i] = (float)rand() / (float)RAND_MAX * 10.0f - 5.0f;
    const char *isa = NULL;
    must(wm_cpu_kernels(&isa), "wm_cpu_kernels");
    printf("{\"bench\":\"machine\",\"program\":\"bench/llama_apply\",\"kernels\":\"%s\"}\n", isa);
    run(0.0);
    run(1.0);
    return 0;
}
