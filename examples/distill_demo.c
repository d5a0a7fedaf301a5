/* The distillation story, with real text and real (small) models.
 *
 *   distill_demo OUTDIR KEYFILE TOKENIZER.json KJV.txt [--quick]
 *
 * 1. A teacher, an interpolated trigram model, is trained on the King James
 *    Bible tokenized with GPT-2's tokenizer.json.
 * 2. It answers the same prompts twice through libwm's sampler: once with the
 *    watermark (the "API outputs"), once without.
 * 3. Students, bigram models with Dirichlet smoothing (another order, another
 *    smoothing: they can only learn the watermark from the data), are trained
 *    on teacher outputs only, with 0, 1, 5, 10, 25, 50 and 100% of it
 *    watermarked.
 * 4. Each student answers fresh prompts.  Everything is written as JSONL
 *    (prompt, text) for `wm detect`, which scripts/demo.sh then runs.
 *
 * Also writes teacher.json: the teacher's perplexity on its own outputs with
 * and without the watermark (the quality cost), and the diversity of 10
 * answers to each of 50 prompts with and without it: the mean number of
 * distinct answers among the 10 and distinct-2 (distinct token bigrams over
 * all bigrams of the 10).  A selecting scheme (gumbel) starts a new
 * sequence for every answer (wm_sampler_reset). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <wm.h>

#define MAXT (1u << 14) /* distinct KJV token types fit in 14 bits */

static uint64_t rng_state = 0x853c49e6748fea9bULL;
static double uniform(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return ((rng_state >> 11) + 0.5) * 0x1.0p-53;
}

static void fail(const char *what)
{
    fprintf(stderr, "distill_demo: %s\n", what);
    exit(2);
}

/* ---- token data ------------------------------------------------------------ */

typedef struct seqs { wm_token *tok; size_t *start; size_t n, len; } seqs; /* n sequences, CSR */

static void seqs_push(seqs *s, const wm_token *t, size_t n)
{
    s->tok = realloc(s->tok, (s->len + n) * sizeof *s->tok);
    s->start = realloc(s->start, (s->n + 2) * sizeof *s->start);
    if (!s->tok || !s->start) fail("out of memory");
    if (s->n == 0) s->start[0] = 0;
    memcpy(s->tok + s->len, t, n * sizeof *t);
    s->len += n;
    s->start[++s->n] = s->len;
}

/* Dense type ids for the model (GPT-2 ids seen in KJV). */
static int32_t dense_of[1 << 17];
static wm_token id_of[MAXT];
static uint32_t n_types;

static uint32_t dense(wm_token id)
{
    if (dense_of[id] < 0) {
        if (n_types == MAXT) fail("too many token types");
        dense_of[id] = (int32_t)n_types;
        id_of[n_types++] = id;
    }
    return (uint32_t)dense_of[id];
}

/* ---- n-gram counts: sorted (context, word) keys with counts ------------- */

typedef struct ngrams {
    uint64_t *ctx;     /* distinct contexts, sorted */
    size_t *first;     /* their continuations: [first[i], first[i+1]) */
    uint32_t *word, *count;
    uint64_t *ctx_total;
    size_t n_ctx;
} ngrams;

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

/* keys: (context << 14 | word), any order, n of them. */
static void ngrams_build(ngrams *g, uint64_t *keys, size_t n)
{
    qsort(keys, n, sizeof *keys, cmp_u64);
    memset(g, 0, sizeof *g);
    g->ctx = malloc((n + 1) * sizeof *g->ctx);
    g->first = malloc((n + 2) * sizeof *g->first);
    g->word = malloc((n + 1) * sizeof *g->word);
    g->count = malloc((n + 1) * sizeof *g->count);
    g->ctx_total = malloc((n + 1) * sizeof *g->ctx_total);
    size_t m = 0;
    for (size_t i = 0; i < n;) {
        size_t j = i;
        while (j < n && keys[j] == keys[i]) j++;
        uint64_t c = keys[i] >> 14;
        if (g->n_ctx == 0 || g->ctx[g->n_ctx - 1] != c) {
            g->ctx[g->n_ctx] = c;
            g->first[g->n_ctx] = m;
            g->ctx_total[g->n_ctx++] = 0;
        }
        g->word[m] = (uint32_t)(keys[i] & (MAXT - 1));
        g->count[m++] = (uint32_t)(j - i);
        g->ctx_total[g->n_ctx - 1] += j - i;
        i = j;
    }
    g->first[g->n_ctx] = m;
}

static long ngrams_find(const ngrams *g, uint64_t ctx)
{
    size_t lo = 0, hi = g->n_ctx;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (g->ctx[mid] < ctx) lo = mid + 1;
        else hi = mid;
    }
    return lo < g->n_ctx && g->ctx[lo] == ctx ? (long)lo : -1;
}

static void ngrams_free(ngrams *g)
{
    free(g->ctx);
    free(g->first);
    free(g->word);
    free(g->count);
    free(g->ctx_total);
}

/* ---- the teacher: trigram, bigram and unigram, linearly interpolated ---- */

typedef struct teacher {
    ngrams tri, bi;
    double *uni;          /* unigram probabilities, dense */
    uint32_t top[256];    /* most frequent types: always candidates */
} teacher;

static const double L3 = 0.6, L2 = 0.3, L1 = 0.1;

static void teacher_train(teacher *T, const seqs *data)
{
    uint64_t *k3 = malloc(data->len * sizeof *k3), *k2 = malloc(data->len * sizeof *k2);
    size_t n3 = 0, n2 = 0;
    T->uni = calloc(MAXT, sizeof *T->uni);
    for (size_t s = 0; s < data->n; s++) {
        const wm_token *t = data->tok + data->start[s];
        size_t n = data->start[s + 1] - data->start[s];
        for (size_t i = 0; i < n; i++) {
            uint64_t w = dense(t[i]);
            T->uni[w] += 1;
            if (i >= 1) k2[n2++] = (uint64_t)dense(t[i - 1]) << 14 | w;
            if (i >= 2) k3[n3++] = ((uint64_t)dense(t[i - 2]) << 14 | dense(t[i - 1])) << 14 | w;
        }
    }
    ngrams_build(&T->tri, k3, n3);
    ngrams_build(&T->bi, k2, n2);
    free(k3);
    free(k2);
    for (uint32_t w = 0; w < n_types; w++) T->uni[w] /= (double)data->len;
    /* top 256 by frequency */
    for (int k = 0; k < 256; k++) {
        uint32_t best = 0;
        double bp = -1;
        for (uint32_t w = 0; w < n_types; w++) {
            int taken = 0;
            for (int j = 0; j < k && !taken; j++) taken = T->top[j] == w;
            if (!taken && T->uni[w] > bp) bp = T->uni[w], best = w;
        }
        T->top[k] = best;
    }
}

/* Candidates and their probabilities after dense context (u, v). */
static size_t teacher_dist(const teacher *T, uint32_t u, uint32_t v, uint32_t *cand, double *prob,
                           double *scratch, uint32_t *stamp, uint32_t tick)
{
    size_t n = 0;
    long c3 = ngrams_find(&T->tri, (uint64_t)u << 14 | v), c2 = ngrams_find(&T->bi, v);
    double l3 = c3 >= 0 ? L3 : 0, l2 = c2 >= 0 ? L2 : 0, l1 = L1, norm = l1 + l2 + l3;
#define ADD(w, p)                                   \
    do {                                            \
        uint32_t w_ = (w);                          \
        if (stamp[w_] != tick) {                    \
            stamp[w_] = tick;                       \
            scratch[w_] = l1 / norm * T->uni[w_];   \
            cand[n++] = w_;                         \
        }                                           \
        scratch[w_] += (p);                         \
    } while (0)
    if (c3 >= 0)
        for (size_t i = T->tri.first[c3]; i < T->tri.first[c3 + 1]; i++)
            ADD(T->tri.word[i], l3 / norm * T->tri.count[i] / (double)T->tri.ctx_total[c3]);
    if (c2 >= 0)
        for (size_t i = T->bi.first[c2]; i < T->bi.first[c2 + 1]; i++)
            ADD(T->bi.word[i], l2 / norm * T->bi.count[i] / (double)T->bi.ctx_total[c2]);
    for (int k = 0; k < 256; k++) ADD(T->top[k], 0.0);
#undef ADD
    for (size_t i = 0; i < n; i++) prob[i] = scratch[cand[i]];
    return n;
}

/* ---- the student: bigram with a Dirichlet prior on the unigram ----------- */

typedef struct student {
    ngrams bi;
    double *uni_cum;   /* cumulative unigram distribution, dense */
    double beta;
} student;

static void student_train(student *S, const seqs *data)
{
    uint64_t *k2 = malloc(data->len * sizeof *k2);
    double *uni = calloc(MAXT, sizeof *uni);
    size_t n2 = 0;
    for (size_t s = 0; s < data->n; s++) {
        const wm_token *t = data->tok + data->start[s];
        size_t n = data->start[s + 1] - data->start[s];
        for (size_t i = 0; i < n; i++) {
            uni[dense(t[i])] += 1;
            if (i >= 1) k2[n2++] = (uint64_t)dense(t[i - 1]) << 14 | dense(t[i]);
        }
    }
    ngrams_build(&S->bi, k2, n2);
    free(k2);
    S->uni_cum = malloc(MAXT * sizeof *S->uni_cum);
    double acc = 0;
    for (uint32_t w = 0; w < MAXT; w++) S->uni_cum[w] = (acc += uni[w] / (double)data->len);
    free(uni);
    S->beta = 2.0;
}

static uint32_t student_next(const student *S, uint32_t v)
{
    long c = ngrams_find(&S->bi, v);
    double tot = c >= 0 ? (double)S->bi.ctx_total[c] : 0;
    if (c >= 0 && uniform() * (tot + S->beta) < tot) {
        double r = uniform() * tot;
        for (size_t i = S->bi.first[c]; i < S->bi.first[c + 1]; i++)
            if ((r -= S->bi.count[i]) < 0) return S->bi.word[i];
        return S->bi.word[S->bi.first[c + 1] - 1];
    }
    double r = uniform() * S->uni_cum[MAXT - 1];
    size_t lo = 0, hi = MAXT - 1;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (S->uni_cum[mid] <= r) lo = mid + 1;
        else hi = mid;
    }
    return (uint32_t)lo;
}

/* ---- output ------------------------------------------------------------ */

static void json_text(FILE *f, const char *s, size_t n)
{
    fputc('"', f);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\') fprintf(f, "\\%c", c);
        else if (c < 0x20) fprintf(f, "\\u%04x", c);
        else fputc(c, f);
    }
    fputc('"', f);
}

static wm_status write_doc(FILE *f, wm_encoder *enc, const wm_token *t, size_t n_prompt, size_t n)
{
    const char *s;
    size_t len;
    wm_status st;
    fputs("{\"prompt\":", f);
    if ((st = wm_decode(enc, t, n_prompt, &s, &len))) return st;
    json_text(f, s, len);
    fputs(",\"text\":", f);
    if ((st = wm_decode(enc, t + n_prompt, n - n_prompt, &s, &len))) return st;
    json_text(f, s, len);
    fputs("}\n", f);
    return WM_OK;
}

static FILE *open_out(const char *dir, const char *name)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    if (!f) fail(path);
    return f;
}

int main(int argc, char **argv)
{
    if (argc < 5) fail("usage: distill_demo OUTDIR KEYFILE TOKENIZER.json KJV.txt [--quick]");
    const char *out = argv[1];
    int quick = argc > 5 && !strcmp(argv[5], "--quick");
    const size_t n_answers = quick ? 400 : 2000, answer_len = 120, n_student = quick ? 400 : 2000;
    memset(dense_of, 0xff, sizeof dense_of);

    wm_tokenizer *tok = NULL;
    wm_key *key = NULL;
    wm_error err;
    if (wm_tokenizer_load(&tok, argv[3], &err) || wm_key_load(&key, argv[2], &err)) fail(err.message);
    uint32_t V;
    if (wm_tokenizer_n_vocab(tok, &V)) fail("tokenizer");
    if (V > (1u << 17)) fail("vocabulary too large for this demo");
    wm_watermark *wm;
    wm_encoder *enc;
    if (wm_watermark_new(&wm, key, V) || wm_encoder_new(&enc, tok)) fail("cannot bind the key");
    wm_key_free(key);

    /* 1. KJV -> verses -> ids. */
    FILE *kjv = fopen(argv[4], "r");
    if (!kjv) fail(argv[4]);
    seqs bible = { 0 };
    char *line = NULL;
    size_t cap = 0;
    ssize_t got;
    while ((got = getline(&line, &cap, kjv)) > 0) {
        char *text = strchr(line, ' '); /* drop the "Ge1:1" reference */
        if (!text) continue;
        const wm_token *ids;
        size_t n;
        if (wm_encode(enc, text, (size_t)(line + got - text), 0, &ids, &n, &err)) fail(err.message);
        if (n >= 4) seqs_push(&bible, ids, n);
    }
    fclose(kjv);
    free(line);
    for (size_t i = 0; i < bible.len; i++) dense(bible.tok[i]);
    fprintf(stderr, "demo: King James Bible: %zu verses, %zu tokens, %u token types\n", bible.n, bible.len, n_types);

    teacher T;
    teacher_train(&T, &bible);
    fprintf(stderr, "demo: teacher trained: %zu trigram contexts, %zu bigram contexts\n", T.tri.n_ctx, T.bi.n_ctx);

    /* 2. The teacher answers the same prompts with and without the watermark. */
    float *logits = malloc(V * sizeof *logits);
    for (uint32_t i = 0; i < V; i++) logits[i] = -INFINITY;
    uint32_t *cand = malloc(MAXT * sizeof *cand), *stamp = calloc(MAXT, sizeof *stamp), tick = 0;
    double *prob = malloc(MAXT * sizeof *prob), *scratch = malloc(MAXT * sizeof *scratch);
    seqs corpus[2] = { { 0 }, { 0 } };
    double nll[2] = { 0, 0 };
    size_t nll_n[2] = { 0, 0 };
    wm_token *doc = malloc((answer_len + 8) * sizeof *doc);
    bool selects;
    if (wm_watermark_selects(wm, &selects)) fail("wm_watermark_selects");
    for (int watermark = 1; watermark >= 0; watermark--) {
        wm_sampler *sm;
        wm_sampler_params sp = { .size = sizeof(wm_sampler_params), .temperature = 1.0f, .top_k = 0, .top_p = 1.0f, .seed = 7, .account = WM_ACCOUNT_NONE };
        if (wm_sampler_new(&sm, wm, &sp)) fail("sampler");
        rng_state = 0x853c49e6748fea9bULL; /* same prompts for both */
        FILE *f = open_out(out, watermark ? "teacher_wm.jsonl" : "teacher_plain.jsonl");
        for (size_t a = 0; a < n_answers; a++) {
            size_t v = 2 * (size_t)(uniform() * (double)(bible.n / 2)); /* even verses: teacher prompts */
            if (selects && wm_sampler_reset(sm, 7 + a, WM_ACCOUNT_NONE)) fail("sampler reset");
            const wm_token *src = bible.tok + bible.start[v];
            size_t n = 3;
            memcpy(doc, src, n * sizeof *doc);
            while (n < answer_len + 3) {
                size_t k = teacher_dist(&T, dense(doc[n - 2]), dense(doc[n - 1]), cand, prob, scratch, stamp, ++tick);
                for (size_t i = 0; i < k; i++) logits[id_of[cand[i]]] = (float)log(prob[i]);
                if (wm_sampler_sample(sm, doc, n, logits, V, watermark, &doc[n])) fail("sampling");
                /* perplexity under the unbiased teacher */
                for (size_t i = 0; i < k; i++) {
                    if (id_of[cand[i]] == doc[n]) nll[watermark] -= log(prob[i]), nll_n[watermark]++;
                    logits[id_of[cand[i]]] = -INFINITY;
                }
                n++;
            }
            seqs_push(&corpus[watermark], doc, n);
            if (write_doc(f, enc, doc, 3, n)) fail("decoding");
            if (a % 200 == 0) fprintf(stderr, "\rdemo: teacher %s: %zu/%zu answers", watermark ? "with watermark" : "without   ", a, n_answers);
        }
        fprintf(stderr, "\rdemo: teacher %s: %zu answers, %zu tokens\n", watermark ? "with watermark" : "without   ", n_answers, corpus[watermark].len);
        fclose(f);
        wm_sampler_free(sm);
    }
    /* Diversity: 10 answers (fresh sequences, different RNG seeds) to each of
     * the first 50 teacher prompts, with and without the watermark. */
    double distinct[2] = { 0, 0 }, distinct2[2] = { 0, 0 };
    const size_t n_prompts = 50, n_samples = 10;
    wm_token *samples = malloc(n_samples * (answer_len + 3) * sizeof *samples);
    uint64_t *bigrams = malloc(n_samples * answer_len * sizeof *bigrams);
    for (int watermark = 1; watermark >= 0; watermark--) {
        wm_sampler *sm;
        wm_sampler_params sp = { .size = sizeof(wm_sampler_params), .temperature = 1.0f, .top_k = 0, .top_p = 1.0f, .seed = 11, .account = WM_ACCOUNT_NONE };
        if (wm_sampler_new(&sm, wm, &sp)) fail("sampler");
        for (size_t q = 0; q < n_prompts; q++) {
            const wm_token *src = corpus[1].tok + corpus[1].start[q]; /* its first 3 tokens: the prompt */
            size_t nb = 0, nd = 0;
            for (size_t r = 0; r < n_samples; r++) {
                if (wm_sampler_reset(sm, 1000 * q + r, WM_ACCOUNT_NONE)) fail("sampler reset");
                wm_token *d = samples + r * (answer_len + 3);
                memcpy(d, src, 3 * sizeof *d);
                for (size_t n = 3; n < answer_len + 3; n++) {
                    size_t k = teacher_dist(&T, dense(d[n - 2]), dense(d[n - 1]), cand, prob, scratch, stamp, ++tick);
                    for (size_t i = 0; i < k; i++) logits[id_of[cand[i]]] = (float)log(prob[i]);
                    if (wm_sampler_sample(sm, d, n, logits, V, watermark, &d[n])) fail("sampling");
                    for (size_t i = 0; i < k; i++) logits[id_of[cand[i]]] = -INFINITY;
                    if (n > 3) bigrams[nb++] = (uint64_t)(uint32_t)d[n - 1] << 32 | (uint32_t)d[n];
                }
                int dup = 0;
                for (size_t r2 = 0; r2 < r && !dup; r2++)
                    dup = !memcmp(d, samples + r2 * (answer_len + 3), (answer_len + 3) * sizeof *d);
                nd += !dup;
            }
            size_t u = 0; /* distinct bigrams: quadratic, 1,190 of them */
            for (size_t i = 0; i < nb; i++) {
                size_t j = 0;
                while (j < i && bigrams[j] != bigrams[i]) j++;
                u += j == i;
            }
            distinct[watermark] += (double)nd / n_prompts;
            distinct2[watermark] += (double)u / (double)nb / n_prompts;
        }
        wm_sampler_free(sm);
    }
    free(samples);
    free(bigrams);
    FILE *tf = open_out(out, "teacher.json");
    fprintf(tf, "{\"perplexity_watermarked\":%.3f,\"perplexity_plain\":%.3f,\"tokens\":%zu,"
            "\"distinct_answers_of_10_watermarked\":%.2f,\"distinct_answers_of_10_plain\":%.2f,"
            "\"distinct2_watermarked\":%.4f,\"distinct2_plain\":%.4f}\n",
            exp(nll[1] / (double)nll_n[1]), exp(nll[0] / (double)nll_n[0]), corpus[1].len, distinct[1], distinct[0],
            distinct2[1], distinct2[0]);
    fclose(tf);

    /* 3 and 4. Students on mixtures, answering fresh prompts (odd verses). */
    static const int shares[] = { 0, 1, 5, 10, 25, 50, 100 };
    for (int si = 0; si < 7; si++) {
        seqs mix = { 0 };
        size_t n_wm = n_answers * (size_t)shares[si] / 100;
        for (size_t a = 0; a < n_answers; a++) { /* first n_wm answers watermarked, the rest plain */
            const seqs *c = a < n_wm ? &corpus[1] : &corpus[0];
            seqs_push(&mix, c->tok + c->start[a], c->start[a + 1] - c->start[a]);
        }
        student S;
        student_train(&S, &mix);
        char name[64];
        snprintf(name, sizeof name, "student_%03d.jsonl", shares[si]);
        FILE *f = open_out(out, name);
        rng_state = 0x9e3779b97f4a7c15ULL ^ (uint64_t)shares[si];
        for (size_t a = 0; a < n_student; a++) {
            size_t v = 2 * (size_t)(uniform() * (double)(bible.n / 2 - 1)) + 1;
            memcpy(doc, bible.tok + bible.start[v], 3 * sizeof *doc);
            for (size_t n = 3; n < answer_len + 3; n++) doc[n] = id_of[student_next(&S, dense(doc[n - 1]))];
            if (write_doc(f, enc, doc, 3, answer_len + 3)) fail("decoding");
        }
        fclose(f);
        fprintf(stderr, "demo: student trained on %3d%% watermarked data (%zu tokens): %zu answers\n", shares[si],
                mix.len, n_student);
        ngrams_free(&S.bi);
        free(S.uni_cum);
        free(mix.tok);
        free(mix.start);
    }
    free(doc);
    free(logits);
    free(cand);
    free(stamp);
    free(prob);
    free(scratch);
    ngrams_free(&T.tri);
    ngrams_free(&T.bi);
    free(T.uni);
    for (int i = 0; i < 2; i++) free(corpus[i].tok), free(corpus[i].start);
    free(bible.tok);
    free(bible.start);
    wm_encoder_free(enc);
    wm_watermark_free(wm);
    wm_tokenizer_free(tok);
    return 0;
}
