/* Embed a watermark while sampling from a toy language model, then detect it.
 *
 *   embed_detect [KEYFILE]
 *
 * With KEYFILE the key is loaded from it (create one with a fresh key the
 * first time: the file must not exist yet); without it a key is generated
 * in memory.  Prints one line per text: watermarked and not. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <wm.h>

#define V 32000
#define LEN 200

/* Toy LM: Gaussian logits (sd 5, ~2.8 nats of entropy a step) from a
 * deterministic generator, so runs are reproducible. */
static uint64_t lcg = 0x2545f4914f6cdd1dULL;
static double uniform(void)
{
    lcg = lcg * 6364136223846793005ULL + 1442695040888963407ULL;
    return ((lcg >> 11) + 0.5) * 0x1.0p-53;
}
static void toy_logits(float *l)
{
    for (int v = 0; v < V; v += 2) {
        double m = 5 * sqrt(-2 * log(uniform())), a = 2 * M_PI * uniform();
        l[v] = (float)(m * cos(a));
        l[v + 1] = (float)(m * sin(a));
    }
}

static int fail(const char *what, wm_status st, const wm_error *err)
{
    fprintf(stderr, "embed_detect: %s: %s%s%s\n", what, wm_strerror(st), err ? ": " : "",
            err ? err->message : "");
    return 1;
}

int main(int argc, char **argv)
{
    wm_key *key;
    wm_error err;
    wm_status st;
    wm_params params; /* versioned: wm_params_init sets its size and the defaults */
    if ((st = wm_params_init(&params, "kgw"))) return fail("default parameters", st, NULL);
    if (argc > 1 && access(argv[1], F_OK) == 0) {
        if ((st = wm_key_load(&key, argv[1], &err))) return fail("loading key", st, &err);
    } else {
        if ((st = wm_key_generate(&key, &params))) return fail("generating key", st, NULL);
        if (argc > 1 && (st = wm_key_save(key, argv[1], &err))) return fail("saving key", st, &err);
    }
    wm_watermark *wm;
    if ((st = wm_watermark_new(&wm, key, V))) return fail("binding key", st, NULL);
    wm_key_free(key); /* the watermark keeps only derived sub-keys */
    if ((st = wm_watermark_params(wm, &params))) return fail("reading parameters", st, NULL);

    wm_sampler *sampler;
    wm_sampler_params sp = { .size = sizeof(wm_sampler_params), .temperature = 1.0f, .top_k = 0, .top_p = 1.0f, .seed = 42, .account = WM_ACCOUNT_NONE };
    if ((st = wm_sampler_new(&sampler, wm, &sp))) return fail("sampler", st, NULL);

    static float logits[V];
    wm_token text[LEN + 1] = { 7 }; /* a one-token prompt */
    char id[WM_KEY_ID_SIZE];
    if ((st = wm_watermark_key_id(wm, id))) return fail("reading the key id", st, NULL);
    printf("key %s  gamma %.4f  delta %.1f  h %u\n", id, params.gamma, params.delta,
           params.context_width);
    for (int watermark = 1; watermark >= 0; watermark--) {
        for (int i = 1; i <= LEN; i++) {
            toy_logits(logits);
            st = wm_sampler_sample(sampler, text, (size_t)i, logits, V, watermark, &text[i]);
            if (st) return fail("sampling", st, NULL);
        }
        wm_score s = WM_INIT(wm_score);
        if ((st = wm_detect(wm, text, LEN + 1, 1, 0, 1e-3, &s))) return fail("detecting", st, NULL);
        printf("%-13s scored %3llu  green %3.0f (%.3f)  z %6.2f  p %.3g  log10 p %8.2f  %s\n",
               watermark ? "watermarked" : "unwatermarked", (unsigned long long)s.scored,
               s.statistic, s.scored ? s.statistic / (double)s.scored : 0, s.z, s.p_value, s.log10_p,
               s.watermarked ? "WATERMARK PRESENT" : "no watermark");
    }
    wm_sampler_free(sampler);
    wm_watermark_free(wm);
    return 0;
}
