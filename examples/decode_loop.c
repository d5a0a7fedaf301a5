/* A server-style decode loop with libwm in it: where a real inference server
 * calls the library, and what it keeps per request.
 *
 *   decode_loop [N_REQUESTS]
 *
 * The shape is that of vLLM or llama-server: a queue of requests, decode
 * workers (two threads here, think two model replicas) that each run a
 * continuous batch of up to SLOTS sequences, one model forward per step for
 * the whole batch, then sampling per sequence.  The "model" is a toy (a
 * fixed distribution of 2.8 nats, relabelled pseudorandomly at every step);
 * everything around it is what a server does.
 *
 * libwm enters at four points, marked [libwm 1..4]:
 *   1. startup: load the key, bind it to the vocabulary -> ONE wm_watermark,
 *      immutable, shared by every thread without locks;
 *   2. per request: nothing but its own token history (and here the sampler
 *      RNG, which a server has anyway);
 *   3. per step: ONE wm_bias_logits_batch over the batch's logits rows,
 *      after the forward pass and before sampling (temperature, top-k/p);
 *   4. offline: wm_detect on any text, with the same key.
 * It checks its own result: every request's output must be detected at
 * p < 1e-6 (exit 1 otherwise). */
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <wm.h>

#define N_VOCAB 151936  /* tokenizer vocabulary (Qwen2-sized) */
#define N_LOGITS 152064 /* the model's padded output layer: padding is never green */
#define SLOTS 4         /* sequences per batch, per worker */
#define WORKERS 2
#define MAX_CTX 512

/* ---- per request ---------------------------------------------------------- */

typedef struct request {
    int id;
    size_t n_prompt, max_new;
    size_t n;                /* tokens so far, prompt included */
    wm_token tokens[MAX_CTX];
    wm_sampler *sampler;     /* [libwm 2] the request's RNG; draws without bias (see step 3) */
} request;

typedef struct server {
    const wm_watermark *wm;  /* [libwm 1] shared, read-only */
    request *queue;
    size_t n_requests, next; /* next request to admit */
    pthread_mutex_t lock;
    const float *base;       /* the toy model's fixed distribution */
} server;

static uint64_t mix(uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* The toy model's forward pass for one sequence: the fixed distribution with
 * its labels permuted by a hash of the sequence (so it depends on context). */
static void toy_forward(const float *base, const request *r, float *row)
{
    uint64_t h = mix((uint64_t)r->id * 0x9e3779b97f4a7c15ull ^ mix(r->n) ^ (uint64_t)r->tokens[r->n - 1]);
    uint64_t shift = h % N_VOCAB;
    for (uint64_t v = 0; v < N_VOCAB; v++) row[v] = base[(v * 1000003u + shift) % N_VOCAB];
    for (size_t v = N_VOCAB; v < N_LOGITS; v++) row[v] = -30.0f; /* padding rows of the output layer */
}

static request *admit(server *s)
{
    pthread_mutex_lock(&s->lock);
    request *r = s->next < s->n_requests ? &s->queue[s->next++] : NULL;
    pthread_mutex_unlock(&s->lock);
    return r;
}

/* One decode worker: a continuous batch. */
static void *decode_worker(void *arg)
{
    server *s = arg;
    request *slot[SLOTS] = { 0 };
    float *logits = malloc((size_t)SLOTS * N_LOGITS * sizeof *logits); /* [SLOTS][N_LOGITS] */
    if (!logits) return "out of memory";
    for (;;) {
        /* Fill free slots from the queue; a finished batch with an empty queue ends. */
        size_t n_active = 0;
        request *batch[SLOTS];
        for (int i = 0; i < SLOTS; i++) {
            if (!slot[i]) slot[i] = admit(s);
            if (slot[i]) batch[n_active++] = slot[i];
        }
        if (!n_active) break;

        /* Model forward for the whole batch (on a GPU in real life). */
        const wm_token *ctx[SLOTS];
        size_t n_ctx[SLOTS];
        for (size_t b = 0; b < n_active; b++) {
            toy_forward(s->base, batch[b], logits + b * N_LOGITS);
            ctx[b] = batch[b]->tokens; /* libwm reads only the last h tokens */
            n_ctx[b] = batch[b]->n;
        }

        /* [libwm 3] One call biases every row; no allocation, no lock.  A
         * server that serves some requests unwatermarked calls
         * wm_bias_logits per row instead, for the rows that want it. */
        wm_status st = wm_bias_logits_batch(s->wm, n_active, NULL, ctx, n_ctx, logits, WM_DTYPE_F32, N_LOGITS, N_LOGITS);
        if (st) {
            free(logits);
            return (void *)wm_strerror(st);
        }

        /* Sampling per sequence: the server's own sampler would go here; we
         * use libwm's with watermark = 0, since the rows are already biased. */
        for (size_t b = 0; b < n_active; b++) {
            request *r = batch[b];
            wm_token t;
            st = wm_sampler_sample(r->sampler, r->tokens, r->n, logits + b * N_LOGITS, N_LOGITS, 0, &t);
            if (st) {
                free(logits);
                return (void *)wm_strerror(st);
            }
            r->tokens[r->n++] = t;
        }
        for (int i = 0; i < SLOTS; i++)
            if (slot[i] && slot[i]->n == slot[i]->n_prompt + slot[i]->max_new) slot[i] = NULL; /* done */
    }
    free(logits);
    return NULL;
}

int main(int argc, char **argv)
{
    size_t n_requests = argc > 1 ? (size_t)atoi(argv[1]) : 12;
    if (n_requests < 1 || n_requests > 1000) return fprintf(stderr, "decode_loop: 1..1000 requests\n"), 2;

    /* [libwm 1] At startup.  A real server loads its key file:
     *     wm_key_load(&key, "/etc/llm/provider.wmkey", &err)
     * Here a fixed seed keeps the run reproducible. */
    unsigned char seed[32] = "decode_loop example, not secret";
    wm_params params;
    wm_key *key;
    wm_watermark *wm;
    if (wm_params_init(&params, "kgw") || wm_key_from_seed(&key, &params, seed) || wm_watermark_new(&wm, key, N_VOCAB))
        return fprintf(stderr, "decode_loop: cannot set up the watermark\n"), 1;
    wm_key_free(key); /* the watermark holds what it needs */

    /* The toy model's fixed distribution: Gaussian logits, sd 5. */
    float *base = malloc(N_VOCAB * sizeof *base);
    request *queue = calloc(n_requests, sizeof *queue);
    if (!base || !queue) return fprintf(stderr, "decode_loop: out of memory\n"), 1;
    for (uint64_t v = 0; v < N_VOCAB; v += 2) {
        double u1 = ((double)(mix(v + 1) >> 11) + 0.5) / 9007199254740992.0;
        double u2 = ((double)(mix(v + 2 + (1ull << 40)) >> 11) + 0.5) / 9007199254740992.0;
        base[v] = (float)(5 * sqrt(-2 * log(u1)) * cos(2 * M_PI * u2));
        base[v + 1] = (float)(5 * sqrt(-2 * log(u1)) * sin(2 * M_PI * u2));
    }

    for (size_t i = 0; i < n_requests; i++) {
        request *r = &queue[i];
        r->id = (int)i;
        r->n_prompt = r->n = 3 + i % 5;
        for (size_t k = 0; k < r->n_prompt; k++) r->tokens[k] = (wm_token)(mix(i * 100 + k) % N_VOCAB);
        r->max_new = 120 + 20 * (i % 4);
        wm_sampler_params sp = { .size = sizeof(wm_sampler_params), .temperature = 1.0f, .top_k = 0, .top_p = 1.0f, .seed = 1000 + i, .account = WM_ACCOUNT_NONE };
        if (wm_sampler_new(&r->sampler, wm, &sp)) return fprintf(stderr, "decode_loop: sampler\n"), 1;
    }

    server s = { wm, queue, n_requests, 0, PTHREAD_MUTEX_INITIALIZER, base };
    pthread_t th[WORKERS];
    for (int w = 0; w < WORKERS; w++) pthread_create(&th[w], NULL, decode_worker, &s);
    int bad = 0;
    for (int w = 0; w < WORKERS; w++) {
        void *res;
        pthread_join(th[w], &res);
        if (res) fprintf(stderr, "decode_loop: worker %d: %s\n", w, (const char *)res), bad = 1;
    }

    /* [libwm 4] Detection, e.g. by an analyst with `wm detect`: the prompt's
     * tokens are not scored (n_prompt). */
    printf("request  prompt  generated  green   z      log10 p  verdict\n");
    for (size_t i = 0; i < n_requests && !bad; i++) {
        request *r = &queue[i];
        wm_score sc = WM_INIT(wm_score);
        if (wm_detect(wm, r->tokens, r->n, r->n_prompt, 0, 1e-6, &sc)) return 1;
        printf("%7d  %6zu  %9zu  %.3f  %5.2f  %8.2f  %s\n", r->id, r->n_prompt, r->n - r->n_prompt,
               sc.scored ? sc.statistic / (double)sc.scored : 0, sc.z, sc.log10_p, sc.watermarked ? "watermarked" : "NOT DETECTED");
        bad |= !sc.watermarked;
    }
    for (size_t i = 0; i < n_requests; i++) wm_sampler_free(queue[i].sampler);
    free(queue);
    free(base);
    wm_watermark_free(wm);
    return bad;
}
