/* The README's quick start: generate a key, bind it to a vocabulary, bias
 * the logits of a toy model in a decode loop, then detect the watermark in
 * the text it produced.  Built and run by the test suite ("example
 * quickstart"); README.md quotes the part between the [quickstart] marks,
 * and the `docs` test checks that the quote still matches this file.
 *
 *   cc quickstart.c $(pkg-config --cflags --libs libwm) -lm && ./a.out
 *
 * Exit status 0 when the watermarked text is detected. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include <wm.h>

#define V 32000  /* vocabulary size */
#define LEN 200  /* tokens to generate */

/* A toy language model: random logits (sd 3), the same every run. */
static uint64_t rng = 42;
static double uniform(void) /* in (0, 1) */
{
    rng = rng * 6364136223846793005ULL + 1442695040888963407ULL;
    return ((rng >> 11) + 0.5) * 0x1.0p-53;
}
static void toy_logits(float *logits)
{
    for (int v = 0; v < V; v++)
        logits[v] = (float)(3 * sqrt(-2 * log(uniform())) * cos(6.283185307179586 * uniform()));
}
/* Sample a token from softmax(logits). */
static wm_token sample(const float *logits)
{
    double sum = 0, max = logits[0];
    for (int v = 1; v < V; v++) max = logits[v] > max ? logits[v] : max;
    for (int v = 0; v < V; v++) sum += exp(logits[v] - max);
    double r = uniform() * sum;
    for (int v = 0; v < V; v++)
        if ((r -= exp(logits[v] - max)) <= 0) return v;
    return V - 1;
}

/* [quickstart] */
int main(void)
{
    /* 1. A fresh secret key with the default parameters (kgw: gamma 0.25,
     *    delta 2, one token of context).  A provider saves it once with
     *    wm_key_save (or `wm keygen`) and loads it with wm_key_load. */
    wm_params params; /* versioned: wm_params_init sets its size and the defaults */
    wm_key *key;
    if (wm_params_init(&params, "kgw") != WM_OK || wm_key_generate(&key, &params) != WM_OK) return 1;

    /* 2. Bind it to the model's vocabulary: an immutable object that any
     *    number of threads may share. */
    wm_watermark *wm;
    wm_status st = wm_watermark_new(&wm, key, V);
    wm_key_free(key);
    if (st != WM_OK) return 1;

    /* 3. Embed: at every decode step, bias the logits before sampling.
     *    The context is the text so far (here a one-token prompt). */
    static float logits[V];
    wm_token text[1 + LEN] = { 7 };
    for (size_t i = 1; i <= LEN; i++) {
        toy_logits(logits);
        st = wm_bias_logits(wm, WM_ACCOUNT_NONE, text, i, logits, V);
        if (st != WM_OK) return fprintf(stderr, "bias: %s\n", wm_strerror(st)), 1;
        text[i] = sample(logits);
    }

    /* 4. Detect: an exact one-sided test on the token ids (one prompt
     *    token, no flags, verdict at alpha = 1e-3). */
    wm_score s = WM_INIT(wm_score); /* versioned: the size leads */
    st = wm_detect(wm, text, 1 + LEN, 1, 0, 1e-3, &s);
    if (st != WM_OK) return fprintf(stderr, "detect: %s\n", wm_strerror(st)), 1;
    printf("scored %llu tuples, %.0f green, z %.2f, log10 p %.1f: %s\n",
           (unsigned long long)s.scored, s.statistic, s.z, s.log10_p,
           s.watermarked ? "watermarked" : "clean");
    wm_watermark_free(wm);
    return s.watermarked ? 0 : 1;
}
/* [/quickstart] */
