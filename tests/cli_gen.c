/* Test helper for test_cli.py: writes documents sampled from a synthetic
 * language model, with or without the watermark of KEYFILE, and the
 * library's own scores of them.
 *
 *   cli_gen KEYFILE TOKENIZER.json N_DOCS LEN WATERMARK(0|1) SEED [ACCOUNT]
 *
 * stdout, one line per document:  {"ids":[...],"text":"...","scored":S,"statistic":G,"log10_p":L}
 * (text is the decoded ids; scores are wm_detect on the ids, dedup on). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <wm.h>

/* A failed call is a broken benchmark or helper, never a number. */
static void must(wm_status st, const char *what)
{
    if (st) {
        fprintf(stderr, "%s: %s\n", what, wm_strerror(st));
        exit(2);
    }
}

static uint64_t rng = 88172645463325252ULL;
static double uniform(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return ((rng >> 11) + 0.5) * 0x1.0p-53;
}

int main(int argc, char **argv)
{
    if (argc != 7 && argc != 8) return fprintf(stderr, "usage: cli_gen KEY TOKENIZER N LEN WATERMARK SEED [ACCOUNT]\n"), 2;
    uint64_t account = argc == 8 ? strtoull(argv[7], NULL, 10) : WM_ACCOUNT_NONE;
    wm_key *key;
    wm_tokenizer *tok;
    wm_error err;
    if (wm_key_load(&key, argv[1], &err) || wm_tokenizer_load(&tok, argv[2], &err))
        return fprintf(stderr, "cli_gen: %s\n", err.message), 2;
    int n = atoi(argv[3]), len = atoi(argv[4]), watermark = atoi(argv[5]);
    rng += strtoull(argv[6], NULL, 10) * 0x9e3779b97f4a7c15ULL;
    uint32_t V;
    must(wm_tokenizer_n_vocab(tok, &V), "wm_tokenizer_n_vocab");
    wm_watermark *wm;
    wm_encoder *enc;
    wm_sampler *s;
    wm_sampler_params sp = { .size = sizeof(wm_sampler_params), .temperature = 1.0f, .top_k = 0, .top_p = 1.0f, .seed = rng, .account = account };
    if (wm_watermark_new(&wm, key, V) || wm_encoder_new(&enc, tok) || wm_sampler_new(&s, wm, &sp)) return 2;
    float *l = malloc(V * sizeof *l);
    wm_token *t = malloc((size_t)(len + 1) * sizeof *t);
    for (int d = 0; d < n; d++) {
        must(wm_sampler_reset(s, rng + (uint64_t)d, account), "wm_sampler_reset"); /* a new sequence */
        /* stay in the first 10,000 ids: ordinary tokens that decode to text */
        t[0] = (wm_token)(uniform() * 10000);
        for (int i = 1; i <= len; i++) {
            for (uint32_t v = 0; v < V; v++) {
                double m = 5 * sqrt(-2 * log(uniform())), a = 2 * M_PI * uniform();
                l[v] = v < 10000 ? (float)(m * cos(a)) : -INFINITY;
            }
            if (wm_sampler_sample(s, t, (size_t)i, l, V, watermark, &t[i])) return 2;
        }
        wm_score sc = WM_INIT(wm_score);
        must(wm_detect(wm, t, (size_t)len + 1, 0, 0, 1e-3, &sc), "wm_detect");
        const char *text;
        size_t tl;
        must(wm_decode(enc, t, (size_t)len + 1, &text, &tl), "wm_decode");
        printf("{\"ids\":[");
        for (int i = 0; i <= len; i++) printf(i ? ",%d" : "%d", t[i]);
        printf("],\"text\":\"");
        for (size_t i = 0; i < tl; i++) {
            unsigned char c = (unsigned char)text[i];
            if (c == '"' || c == '\\') printf("\\%c", c);
            else if (c < 0x20) printf("\\u%04x", c);
            else putchar(c < 0x80 ? c : '?'); /* keep the JSON valid UTF-8 */
        }
        printf("\",\"scored\":%llu,\"statistic\":%.17g,\"log10_p\":%.17g}\n", (unsigned long long)sc.scored,
               sc.statistic, sc.log10_p);
    }
    free(l);
    free(t);
    wm_sampler_free(s);
    wm_encoder_free(enc);
    wm_watermark_free(wm);
    wm_tokenizer_free(tok);
    wm_key_free(key);
    return 0;
}
