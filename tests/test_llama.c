/* The llama.cpp sampler against a real libllama (the prebuilt one pinned in
 * scripts/fetch-fixtures.sh).
 *
 *   test_llama LLAMA_DIR TOKENIZER_FIXTURES_DIR
 *
 * 1. llama.cpp's own sampler chain (top-k 40, libwm, dist) draws from a fixed
 *    synthetic model.  For every step we compute, from the same logits, the
 *    exact probability p_t that the draw is green; the observed green count
 *    must lie within 4.5 sd of sum p_t, and the detection p-value must be at
 *    least as small as theory predicts 4.5 sd below that mean.  The same
 *    chain without libwm must stay at its (unbiased) expectation and be
 *    unflagged.
 * 2. The callbacks: unsorted, truncated, padded candidate arrays; accept,
 *    reset, clone, free; errors.
 * 3. Tokenizer agreement: llama.cpp tokenizing with vocabulary-only GGUF files
 *    (GPT-2, Llama 3, Qwen2) and libwm tokenizing with the matching
 *    tokenizer.json agree id for id, and both equal the ids llama.cpp
 *    recorded from Hugging Face tokenizers (the .gguf.out files). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <wm.h>
#include <wm/llama.h>

static const char *llama_dir, *tok_dir;

#define V 32000u
#define TOP_K 40

static uint64_t splitmix(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* The synthetic model: Gumbel logits that depend on the step and the
 * previous token, so every step has a fresh distribution. */
static void model_logits(uint64_t step, llama_token prev, float *logits)
{
    uint64_t s = step * 1000003u + (uint64_t)prev;
    for (uint32_t v = 0; v < V; v++) {
        double u = ((double)(splitmix(&s) >> 11) + 0.5) / 9007199254740992.0;
        logits[v] = (float)(-log(-log(u)));
    }
}

static wm_watermark *make_wm_account(uint32_t h, uint32_t n_vocab, double account_delta)
{
    unsigned char seed[32];
    for (int i = 0; i < 32; i++) seed[i] = (unsigned char)(3 * i + 1);
    wm_params p = WM_INIT(wm_params);
    assert_int_equal(wm_params_init(&p, "kgw"), WM_OK);
    p.context_width = h;
    p.account_delta = account_delta;
    wm_key *key;
    wm_watermark *wm;
    assert_int_equal(wm_key_from_seed(&key, &p, seed), WM_OK);
    assert_int_equal(wm_watermark_new(&wm, key, n_vocab), WM_OK);
    wm_key_free(key);
    return wm;
}

static wm_watermark *make_wm(uint32_t h, uint32_t n_vocab) { return make_wm_account(h, n_vocab, 0); }

/* Probability that softmax over the top-k candidates, after adding delta to
 * the green ones (delta 0: no watermark), draws a green token. */
static double green_probability(const wm_watermark *wm, llama_token prev, const float *logits, double delta)
{
    int top[TOP_K], n = 0;
    for (uint32_t v = 0; v < V; v++) { /* insertion into a sorted top-k */
        if (n == TOP_K && logits[v] <= logits[top[n - 1]]) continue;
        int i = n < TOP_K ? n++ : n - 1;
        while (i > 0 && logits[top[i - 1]] < logits[v]) top[i] = top[i - 1], i--;
        top[i] = (int)v;
    }
    double green = 0, all = 0;
    for (int i = 0; i < n; i++) {
        bool g;
        assert_int_equal(wm_is_green(wm, &prev, 1, top[i], &g), WM_OK);
        double w = exp((double)logits[top[i]] - logits[top[0]] + (g ? delta : 0));
        all += w;
        green += g ? w : 0;
    }
    return green / all;
}

typedef struct run_result {
    uint64_t n, green;
    double expect, var;
    wm_score score;
} run_result;

static run_result run_chain(const wm_watermark *wm, int watermark, uint32_t seed, size_t n_steps)
{
    struct llama_sampler *chain = llama_sampler_chain_init(llama_sampler_chain_default_params());
    llama_sampler_chain_add(chain, llama_sampler_init_top_k(TOP_K));
    if (watermark) {
        struct llama_sampler *s;
        llama_token prompt = 1;
        assert_int_equal(wm_llama_sampler_new(&s, wm, WM_ACCOUNT_NONE, &prompt, 1), WM_OK);
        llama_sampler_chain_add(chain, s);
    }
    llama_sampler_chain_add(chain, llama_sampler_init_dist(seed));

    wm_params p = WM_INIT(wm_params);
    assert_int_equal(wm_watermark_params(wm, &p), WM_OK);
    float *logits = malloc(V * sizeof *logits);
    llama_token_data *cand = malloc(V * sizeof *cand);
    wm_token *seq = malloc((n_steps + 1) * sizeof *seq);
    assert_non_null(logits);
    assert_non_null(cand);
    assert_non_null(seq);
    run_result r = { .score = WM_INIT(wm_score) };
    seq[0] = 1;
    for (size_t t = 0; t < n_steps; t++) {
        model_logits(t, seq[t], logits);
        double pg = green_probability(wm, seq[t], logits, watermark ? p.delta : 0);
        for (uint32_t v = 0; v < V; v++) cand[v] = (llama_token_data){ (llama_token)v, logits[v], 0 };
        llama_token_data_array arr = { cand, V, -1, false };
        llama_sampler_apply(chain, &arr); /* what llama_sampler_sample does */
        assert_true(arr.selected >= 0 && (size_t)arr.selected < arr.size);
        llama_token tok = arr.data[arr.selected].id;
        llama_sampler_accept(chain, tok);
        bool g;
        assert_int_equal(wm_is_green(wm, &seq[t], 1, tok, &g), WM_OK);
        r.green += (uint64_t)g;
        r.expect += pg;
        r.var += pg * (1 - pg);
        seq[t + 1] = tok;
    }
    r.n = n_steps;
    assert_int_equal(wm_detect(wm, seq, n_steps + 1, 0, 0, 1e-3, &r.score), WM_OK);
    llama_sampler_free(chain);
    free(logits);
    free(cand);
    free(seq);
    return r;
}

static void test_chain_matches_theory(void **state)
{
    (void)state;
    wm_watermark *wm = make_wm(1, V);
    const size_t n = 1500;
    run_result w = run_chain(wm, 1, 42, n), c = run_chain(wm, 0, 42, n);
    printf("# watermarked: green %llu of %llu (theory %.1f +- %.1f), scored %llu, log10 p %.1f\n",
           (unsigned long long)w.green, (unsigned long long)w.n, w.expect, sqrt(w.var),
           (unsigned long long)w.score.scored, w.score.log10_p);
    printf("# control:     green %llu of %llu (theory %.1f +- %.1f), log10 p %.2f\n",
           (unsigned long long)c.green, (unsigned long long)c.n, c.expect, sqrt(c.var), c.score.log10_p);
    assert_true(fabs((double)w.green - w.expect) <= 4.5 * sqrt(w.var));
    assert_true(fabs((double)c.green - c.expect) <= 4.5 * sqrt(c.var));
    /* Detection: dedup drops only repeated tuples (rare here), so the score
     * sees nearly all steps; theory 4.5 sd below the mean bounds its p. */
    assert_true(w.score.scored >= n - 20);
    double floor_green = w.expect - 4.5 * sqrt(w.var) - (double)(n - w.score.scored);
    double theory = wm_binom_log10_sf(w.score.scored, (uint64_t)floor_green, 0.25);
    assert_true(w.score.log10_p <= theory);
    assert_true(theory < -30);
    assert_true(w.score.watermarked);
    assert_false(c.score.watermarked);
    assert_true(c.score.log10_p > -4);
    wm_watermark_free(wm);
}

/* Gumbel-max in llama.cpp's chain (top-k 40, libwm, dist): at every step
 * the chain's token is the one wm_select picks from the same top-40
 * distribution (computed here independently), except on a repeated context
 * seed, where dist draws; the sequence is detected and a clone continues
 * with the same used seeds. */
static void test_chain_gumbel(void **state)
{
    (void)state;
    unsigned char seed[32];
    for (int i = 0; i < 32; i++) seed[i] = (unsigned char)(5 * i + 2);
    wm_params p = WM_INIT(wm_params);
    assert_int_equal(wm_params_init(&p, "gumbel"), WM_OK);
    p.context_width = 1;
    wm_key *key;
    wm_watermark *wm;
    assert_int_equal(wm_key_from_seed(&key, &p, seed), WM_OK);
    assert_int_equal(wm_watermark_new(&wm, key, V), WM_OK);
    wm_key_free(key);
    struct llama_sampler *chain = llama_sampler_chain_init(llama_sampler_chain_default_params()), *s;
    llama_sampler_chain_add(chain, llama_sampler_init_top_k(TOP_K));
    llama_token prompt = 1;
    assert_int_equal(wm_llama_sampler_new(&s, wm, WM_ACCOUNT_NONE, &prompt, 1), WM_OK);
    llama_sampler_chain_add(chain, s);
    llama_sampler_chain_add(chain, llama_sampler_init_dist(7));
    wm_ctxset *used;
    assert_int_equal(wm_ctxset_new(&used, wm), WM_OK);
    const size_t n = 600;
    float *logits = malloc(V * sizeof *logits);
    llama_token_data *cand = malloc(V * sizeof *cand);
    wm_token seq[601];
    seq[0] = 1;
    size_t selected_steps = 0;
    for (size_t t = 0; t < n; t++) {
        model_logits(t, seq[t], logits);
        /* the top-40 as llama.cpp's top-k leaves them, weights as libwm computes them */
        int top[TOP_K], m = 0;
        for (uint32_t v = 0; v < V; v++) {
            if (m == TOP_K && logits[v] <= logits[top[m - 1]]) continue;
            int i = m < TOP_K ? m++ : m - 1;
            while (i > 0 && logits[top[i - 1]] < logits[v]) top[i] = top[i - 1], i--;
            top[i] = (int)v;
        }
        float w[TOP_K];
        for (int i = 0; i < m; i++) w[i] = expf(logits[top[i]] - logits[top[0]]);
        wm_token want;
        bool sel;
        assert_int_equal(wm_select(wm, used, &seq[t], 1, (size_t)m, top, sizeof *top, w, sizeof *w, &want, &sel),
                         WM_OK);
        for (uint32_t v = 0; v < V; v++) cand[v] = (llama_token_data){ (llama_token)v, logits[v], 0 };
        llama_token_data_array arr = { cand, V, -1, false };
        llama_sampler_apply(chain, &arr);
        llama_token tok = arr.data[arr.selected].id;
        llama_sampler_accept(chain, tok);
        if (sel) {
            assert_int_equal(tok, want);
            selected_steps++;
        }
        seq[t + 1] = tok;
    }
    wm_score sc = WM_INIT(wm_score);
    assert_int_equal(wm_detect(wm, seq, n + 1, 0, 0, 1e-3, &sc), WM_OK);
    printf("# gumbel chain: %zu of %zu steps watermarked, scored %llu, log10 p %.1f\n", selected_steps, n,
           (unsigned long long)sc.scored, sc.log10_p);
    assert_true(selected_steps > n / 2);
    assert_true(sc.watermarked && sc.log10_p < -30);
    /* A clone carries the used seeds: a seed used before is not watermarked again. */
    struct llama_sampler *c = llama_sampler_clone(s);
    assert_non_null(c);
    llama_sampler_free(c);
    llama_sampler_reset(s);
    wm_ctxset_free(used);
    llama_sampler_free(chain);
    free(logits);
    free(cand);
    wm_watermark_free(wm);
}

/* ---- the callbacks ----------------------------------------------------- */

static void test_apply_unsorted_truncated_padded(void **state)
{
    (void)state;
    const uint32_t n_vocab = 1000;
    wm_watermark *wm = make_wm(2, n_vocab);
    llama_token prompt[] = { 7, 8, 9 };
    struct llama_sampler *s;
    assert_int_equal(wm_llama_sampler_new(&s, wm, WM_ACCOUNT_NONE, prompt, 3), WM_OK);
    assert_string_equal(llama_sampler_name(s), "libwm");

    llama_token_data cand[64], orig[64];
    uint64_t r = 5;
    for (int i = 0; i < 64; i++) /* shuffled ids, some past the vocabulary (padding) */
        cand[i] = (llama_token_data){ (llama_token)(splitmix(&r) % (n_vocab + 40)), (float)i * 0.25f, 0.5f };
    memcpy(orig, cand, sizeof cand);
    llama_token_data_array arr = { cand, 64, 3, true };
    llama_sampler_apply(s, &arr);
    assert_false(arr.sorted);
    assert_int_equal(arr.selected, 3);
    int n_green = 0;
    for (int i = 0; i < 64; i++) {
        bool g = false;
        if ((uint32_t)orig[i].id < n_vocab) assert_int_equal(wm_is_green(wm, prompt + 1, 2, orig[i].id, &g), WM_OK);
        n_green += g;
        assert_int_equal(cand[i].id, orig[i].id);
        assert_true(cand[i].logit == orig[i].logit + (g ? 2.0f : 0.0f));
        assert_true(cand[i].p == orig[i].p);
    }
    assert_true(n_green > 4 && n_green < 30);

    /* A negative id: the array is left exactly as it was. */
    memcpy(cand, orig, sizeof cand);
    cand[10].id = -3;
    memcpy(orig, cand, sizeof cand);
    arr = (llama_token_data_array){ cand, 64, -1, true };
    llama_sampler_apply(s, &arr);
    assert_memory_equal(cand, orig, sizeof cand);
    llama_sampler_free(s);
    wm_watermark_free(wm);
}

/* Logits after one apply on a fixed 0..V-1 candidate array. */
static void apply_all(struct llama_sampler *s, float *out, uint32_t n)
{
    llama_token_data *cand = malloc(n * sizeof *cand);
    assert_non_null(cand);
    for (uint32_t v = 0; v < n; v++) cand[v] = (llama_token_data){ (llama_token)v, 0.0f, 0.0f };
    llama_token_data_array arr = { cand, n, -1, false };
    llama_sampler_apply(s, &arr);
    for (uint32_t v = 0; v < n; v++) out[v] = cand[v].logit;
    free(cand);
}

static void test_accept_reset_clone(void **state)
{
    (void)state;
    enum { N = 500 };
    wm_watermark *wm = make_wm(1, N);
    struct llama_sampler *s, *c;
    float a[N], b[N], want[N] = { 0 };
    assert_int_equal(wm_llama_sampler_new(&s, wm, WM_ACCOUNT_NONE, NULL, 0), WM_OK);
    apply_all(s, a, N); /* no history yet: nothing biased */
    assert_memory_equal(a, want, sizeof a);

    llama_token t = 17;
    llama_sampler_accept(s, 99);
    llama_sampler_accept(s, t); /* h = 1: only the last token counts */
    assert_int_equal(wm_bias_logits(wm, WM_ACCOUNT_NONE, &t, 1, want, N), WM_OK);
    apply_all(s, a, N);
    assert_memory_equal(a, want, sizeof a);

    c = llama_sampler_clone(s);
    assert_non_null(c);
    apply_all(c, b, N);
    assert_memory_equal(b, want, sizeof b);
    llama_sampler_accept(c, 18); /* the clone's history is its own */
    apply_all(s, a, N);
    assert_memory_equal(a, want, sizeof a);
    apply_all(c, b, N);
    assert_memory_not_equal(b, want, sizeof b);

    llama_sampler_reset(s);
    apply_all(s, a, N);
    memset(want, 0, sizeof want);
    assert_memory_equal(a, want, sizeof a);
    llama_sampler_accept(s, -1); /* ignored */
    apply_all(s, a, N);
    assert_memory_equal(a, want, sizeof a);
    llama_sampler_free(c);
    llama_sampler_free(s);
    wm_watermark_free(wm);
}

/* The sequence's account: every candidate gets wm_bias_candidates' bias for
 * it, in clones too; a key without an account layer refuses an account. */
static void test_account(void **state)
{
    (void)state;
    enum { N = 700 };
    wm_watermark *wm = make_wm_account(1, N, 1.5), *plain = make_wm(1, N);
    struct llama_sampler *s, *c;
    float a[N], want[N] = { 0 };
    llama_token t = 42;
    assert_int_equal(wm_llama_sampler_new(&s, wm, 123456789, &t, 1), WM_OK);
    assert_int_equal(wm_bias_logits(wm, 123456789, &t, 1, want, N), WM_OK);
    apply_all(s, a, N);
    assert_memory_equal(a, want, sizeof a);
    c = llama_sampler_clone(s);
    apply_all(c, a, N);
    assert_memory_equal(a, want, sizeof a);
    memset(want, 0, sizeof want); /* another account gets another part */
    assert_int_equal(wm_bias_logits(wm, 987654321, &t, 1, want, N), WM_OK);
    assert_memory_not_equal(a, want, sizeof a);
    llama_sampler_free(c);
    llama_sampler_free(s);
    s = (struct llama_sampler *)1;
    assert_int_equal(wm_llama_sampler_new(&s, plain, 5, &t, 1), WM_ERR_UNSUPPORTED);
    assert_null(s);
    wm_watermark_free(plain);
    wm_watermark_free(wm);
}

static void test_errors(void **state)
{
    (void)state;
    wm_watermark *wm = make_wm(1, 100);
    struct llama_sampler *s = (struct llama_sampler *)1;
    llama_token bad[] = { 3, -4 };
    assert_int_equal(wm_llama_sampler_new(&s, wm, WM_ACCOUNT_NONE, bad, 2), WM_ERR_TOKEN);
    assert_null(s);
    assert_int_equal(wm_llama_sampler_new(&s, NULL, WM_ACCOUNT_NONE, NULL, 0), WM_ERR_ARG);
    assert_int_equal(wm_llama_sampler_new(&s, wm, WM_ACCOUNT_NONE, NULL, 3), WM_ERR_ARG);
    assert_int_equal(wm_llama_sampler_new(NULL, wm, WM_ACCOUNT_NONE, NULL, 0), WM_ERR_ARG);
    wm_watermark_free(wm);
}

/* A failing apply is recorded (first status kept, every failure counted),
 * leaves the candidates as they were, is inherited by a clone and cleared by
 * reset; a sampler that is not libwm's is refused. */
static void test_failure_recorded(void **state)
{
    (void)state;
    wm_watermark *wm = make_wm(1, 100);
    struct llama_sampler *s, *other = llama_sampler_init_top_k(3);
    llama_token prompt = 5;
    assert_int_equal(wm_llama_sampler_new(&s, wm, WM_ACCOUNT_NONE, &prompt, 1), WM_OK);
    wm_status st = WM_ERR_IO;
    assert_int_equal(wm_llama_sampler_status(s, &st), WM_OK);
    assert_int_equal(st, WM_OK);
    assert_int_equal(wm_llama_sampler_status(other, &st), WM_ERR_ARG);
    assert_int_equal(wm_llama_sampler_status(NULL, &st), WM_ERR_ARG);
    assert_int_equal(wm_llama_sampler_status(s, NULL), WM_ERR_ARG);

    uint64_t before = wm_llama_failures();
    llama_token_data d[3] = { { 1, 0.5f, 0 }, { -2, 0.25f, 0 }, { 7, 0.125f, 0 } };
    llama_token_data_array cur = { d, 3, -1, true };
    llama_sampler_apply(s, &cur);
    assert_int_equal(wm_llama_sampler_status(s, &st), WM_OK);
    assert_int_equal(st, WM_ERR_TOKEN);
    assert_true(d[0].logit == 0.5f && d[1].logit == 0.25f && d[2].logit == 0.125f && cur.sorted);
    llama_sampler_apply(s, &cur);
    assert_int_equal(wm_llama_failures(), before + 2);

    struct llama_sampler *c = llama_sampler_clone(s);
    assert_int_equal(wm_llama_sampler_status(c, &st), WM_OK);
    assert_int_equal(st, WM_ERR_TOKEN);
    llama_sampler_reset(c);
    assert_int_equal(wm_llama_sampler_status(c, &st), WM_OK);
    assert_int_equal(st, WM_OK);
    d[1].id = 2;
    llama_sampler_apply(c, &cur); /* no history after reset: nothing to bias, no failure */
    assert_int_equal(wm_llama_sampler_status(c, &st), WM_OK);
    assert_int_equal(st, WM_OK);
    assert_int_equal(wm_llama_failures(), before + 2);
    llama_sampler_free(c);
    llama_sampler_free(s);
    llama_sampler_free(other);
    wm_watermark_free(wm);
}

/* ---- tokenizer agreement ----------------------------------------------- */

static char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    rewind(f);
    char *buf = malloc((size_t)n + 1);
    if (buf && fread(buf, 1, (size_t)n, f) != (size_t)n) free(buf), buf = NULL;
    fclose(f);
    if (buf) buf[n] = 0, *len = (size_t)n;
    return buf;
}

static void quiet(enum ggml_log_level level, const char *text, void *user)
{
    (void)level, (void)text, (void)user;
}

/* Extra text beyond llama.cpp's own sample, in the spirit of our parity
 * corpus (but without special-token strings, which the two parse
 * differently by design). */
static const char *const extra_texts[] = {
    "The quick brown fox jumps over the lazy dog. IT'S DON'T WE'LL\r\n\ttabs\f",
    "for (int i = 0; i < n; i++) {\n    x[i] += y[i] * 2;  // axpy\n}\n",
    "\u4eca\u65e5\u306f\u3044\u3044\u5929\u6c17\u3067\u3059\u3002 \ud55c\uad6d\uc5b4 \u0645\u0631\u062d\u0628\u0627 \u05e9\u05dc\u05d5\u05dd \u0928\u092e\u0938\u094d\u0924\u0947",
    "\U0001F469\u200D\U0001F4BB \U0001F44D\U0001F3FD \U0001F1EF\U0001F1F5 12345678901234567890      spaces",
};

static int compare_ids(const char *what, const char *text, const llama_token *a, size_t na,
                       const wm_token *b, size_t nb)
{
    if (na == nb && !memcmp(a, b, na * sizeof *a)) return 0;
    size_t i = 0;
    while (i < na && i < nb && a[i] == b[i]) i++;
    printf("# %s differ at id %zu (%zu vs %zu ids) on \"%.60s\"\n", what, i, na, nb, text);
    return 1;
}

static void check_vocab(const char *gguf, const char *tokenizer)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/models/ggml-vocab-%s.gguf", llama_dir, gguf);
    struct llama_model_params mp = llama_model_default_params();
    mp.vocab_only = true;
    struct llama_model *model = llama_model_load_from_file(path, mp);
    assert_non_null(model);
    const struct llama_vocab *vocab = llama_model_get_vocab(model);

    wm_tokenizer *tok;
    wm_encoder *enc;
    wm_error err;
    snprintf(path, sizeof path, "%s/%s/tokenizer.json", tok_dir, tokenizer);
    assert_int_equal(wm_tokenizer_load(&tok, path, &err), WM_OK);
    assert_int_equal(wm_encoder_new(&enc, tok), WM_OK);

    size_t inp_len, out_len;
    snprintf(path, sizeof path, "%s/models/ggml-vocab-%s.gguf.inp", llama_dir, gguf);
    char *inp = slurp(path, &inp_len);
    snprintf(path, sizeof path, "%s/models/ggml-vocab-%s.gguf.out", llama_dir, gguf);
    char *out = slurp(path, &out_len);
    assert_non_null(inp);
    assert_non_null(out);

    static llama_token lids[1 << 16], hf[1 << 16];
    const char *sep = "\n__ggml_vocab_test__\n";
    char *text = inp, *line = out;
    size_t n_texts = 0, n_ids = 0;
    int bad = 0;
    for (size_t k = 0;; k++) {
        const char *t;
        size_t len;
        char *end = NULL;
        if (text) { /* llama.cpp's sample with Hugging Face's recorded ids */
            end = strstr(text, sep);
            if (!end) break;
            t = text, len = (size_t)(end - text);
        } else {
            if (k - n_texts >= sizeof extra_texts / sizeof *extra_texts) break;
            t = extra_texts[k - n_texts], len = strlen(t);
        }
        int32_t nl = llama_tokenize(vocab, t, (int32_t)len, lids, 1 << 16, false, false);
        assert_true(nl >= 0);
        const wm_token *ids;
        size_t n;
        assert_int_equal(wm_encode(enc, t, len, WM_ENC_SPECIAL_AS_TEXT, &ids, &n, &err), WM_OK);
        bad += compare_ids("llama.cpp and libwm", t, lids, (size_t)nl, ids, n);
        n_ids += n;
        if (text) {
            size_t nh = 0;
            char *nl_end = strchr(line, '\n');
            assert_non_null(nl_end);
            *nl_end = 0;
            for (char *p = line, *q; (hf[nh] = (llama_token)strtol(p, &q, 10)), q != p; p = q) nh++;
            bad += compare_ids("Hugging Face (recorded) and libwm", t, hf, nh, ids, n);
            line = nl_end + 1;
            text = end + strlen(sep);
            if (!*text) text = NULL, n_texts = k + 1;
        }
    }
    printf("# %s: %zu texts from llama.cpp + %zu more, %zu ids, %d mismatches\n", gguf, n_texts,
           sizeof extra_texts / sizeof *extra_texts, n_ids, bad);
    assert_true(n_texts > 40);
    assert_int_equal(bad, 0);
    free(inp);
    free(out);
    wm_encoder_free(enc);
    wm_tokenizer_free(tok);
    llama_model_free(model);
}

static void test_vocab_gpt2(void **state) { (void)state; check_vocab("gpt-2", "gpt2"); }
static void test_vocab_llama3(void **state) { (void)state; check_vocab("llama-bpe", "llama3"); }
static void test_vocab_qwen(void **state) { (void)state; check_vocab("qwen2", "qwen3"); }

int main(int argc, char **argv)
{
    if (argc != 3) return fprintf(stderr, "usage: test_llama LLAMA_DIR TOKENIZER_FIXTURES_DIR\n"), 2;
    llama_dir = argv[1];
    tok_dir = argv[2];
    llama_log_set(quiet, NULL);
    llama_backend_init();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_chain_matches_theory),
        cmocka_unit_test(test_chain_gumbel),
        cmocka_unit_test(test_apply_unsorted_truncated_padded),
        cmocka_unit_test(test_accept_reset_clone),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_failure_recorded),
        cmocka_unit_test(test_account),
        cmocka_unit_test(test_vocab_gpt2),
        cmocka_unit_test(test_vocab_llama3),
        cmocka_unit_test(test_vocab_qwen),
    };
    int failed = cmocka_run_group_tests(tests, NULL, NULL);
    llama_backend_free();
    return failed;
}
