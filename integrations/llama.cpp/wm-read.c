/* wm-read: reading mode (wm/detect.h, wm_reader) on a GGUF suspect through
 * the pinned libllama: the suspect is teacher-forced on the provider's own
 * watermarked outputs and its top-k predictions are scored.
 *
 *   wm-read --model SUSPECT.gguf --key KEY.wmkey [--reference REF.gguf]
 *           [--top K] [--alpha A] [DOCS.jsonl]
 *
 * Built by build-server.sh next to llama-server (.cache/llama-server/wm-read)
 * against the same pinned llama.cpp (v0.5.0, commit de3ff81): its API as
 * read in include/llama.h there (llama_model_load_from_file,
 * llama_init_from_model, llama_decode with a logit for every position,
 * llama_get_logits_ith).
 *
 * DOCS.jsonl: one document per line, {"ids": [...], "n_prompt": N} (token
 * ids of prompt + answer, as `wm tokenize` or the Python binding give
 * them).  --reference: the weighted test (WM_READ_WEIGHTED) with the
 * provider's unwatermarked model as reference: at each position the K
 * tokens where p_suspect - p_reference is largest in magnitude, weighted
 * by that difference.  Prints one JSON object: the wm_score fields and the
 * positions read.  Documents longer than the models' context are read up
 * to it.  Exit 0, or 2 with a message naming the file and line. */
#include <jansson.h>
#include <llama.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <wm.h>

typedef struct lm {
    struct llama_model *model;
    struct llama_context *ctx;
    int n_vocab, n_ctx;
} lm;

static void quiet(enum ggml_log_level level, const char *text, void *user)
{
    (void)user;
    if (level >= GGML_LOG_LEVEL_ERROR) fputs(text, stderr);
}

static bool no_progress(float progress, void *user)
{
    (void)progress, (void)user;
    return true;
}

static int lm_open(lm *m, const char *path)
{
    struct llama_model_params mp = llama_model_default_params();
    mp.progress_callback = no_progress;
    if (!(m->model = llama_model_load_from_file(path, mp))) return fprintf(stderr, "wm-read: %s: cannot load\n", path), -1;
    m->n_ctx = llama_model_n_ctx_train(m->model);
    m->n_vocab = llama_vocab_n_tokens(llama_model_get_vocab(m->model));
    struct llama_context_params cp = llama_context_default_params();
    cp.n_ctx = cp.n_batch = cp.n_ubatch = (uint32_t)m->n_ctx;
    if (!(m->ctx = llama_init_from_model(m->model, cp))) return fprintf(stderr, "wm-read: %s: no context\n", path), -1;
    return 0;
}

static void lm_close(lm *m)
{
    if (m->ctx) llama_free(m->ctx);
    if (m->model) llama_model_free(m->model);
}

/* Logits for every position of ids[0..n): row i at out + i * n_vocab. */
static int lm_forward(lm *m, const wm_token *ids, int n, float *out)
{
    struct llama_batch b = llama_batch_init(n, 0, 1);
    for (int i = 0; i < n; i++) {
        b.token[i] = ids[i];
        b.pos[i] = i;
        b.n_seq_id[i] = 1;
        b.seq_id[i][0] = 0;
        b.logits[i] = 1;
    }
    b.n_tokens = n;
    llama_memory_clear(llama_get_memory(m->ctx), true);
    int rc = llama_decode(m->ctx, b);
    for (int i = 0; !rc && i < n; i++) memcpy(out + (size_t)i * m->n_vocab, llama_get_logits_ith(m->ctx, i), m->n_vocab * sizeof *out);
    llama_batch_free(b);
    return rc;
}

static void softmax(float *x, int n)
{
    float mx = -INFINITY;
    double s = 0;
    for (int i = 0; i < n; i++) mx = x[i] > mx ? x[i] : mx;
    for (int i = 0; i < n; i++) s += x[i] = expf(x[i] - mx);
    for (int i = 0; i < n; i++) x[i] = (float)(x[i] / s);
}

/* The k largest of score[0..V) (by value, or by magnitude), into ids. */
static void top_k(const float *score, int V, int k, int by_abs, wm_token *ids)
{
    for (int j = 0; j < k; j++) ids[j] = -1;
    for (int v = 0; v < V; v++) {
        float s = by_abs ? fabsf(score[v]) : score[v];
        int j = k;
        while (j > 0 && (ids[j - 1] < 0 || s > (by_abs ? fabsf(score[ids[j - 1]]) : score[ids[j - 1]]))) j--;
        if (j == k) continue;
        memmove(ids + j + 1, ids + j, (size_t)(k - j - 1) * sizeof *ids);
        ids[j] = v;
    }
}

static int usage(void)
{
    fputs("usage: wm-read --model SUSPECT.gguf --key KEY.wmkey [--reference REF.gguf] [--top K] [--alpha A] [DOCS.jsonl]\n",
          stderr);
    return 2;
}

/* Everything one run holds. */
typedef struct run {
    lm s, r;                 /* suspect; reference (weighted test only) */
    int weighted, k, V, cap; /* cap: tokens read per document (the shorter context) */
    wm_reader *rd;
    float *ls, *lr, *w;
    wm_token *ids, *preds;
} run;

static int run_alloc(run *R)
{
    size_t rows = (size_t)R->cap, V = (size_t)R->s.n_vocab, k = (size_t)R->k;
    R->ls = malloc(rows * V * sizeof *R->ls);
    R->lr = R->weighted ? malloc(rows * V * sizeof *R->lr) : NULL;
    R->ids = malloc(rows * sizeof *R->ids);
    R->preds = malloc(rows * k * sizeof *R->preds);
    R->w = malloc(rows * k * sizeof *R->w);
    return R->ls && (!R->weighted || R->lr) && R->ids && R->preds && R->w ? 0 : -1;
}

/* The k predictions (weighted: and their weights) of every position of
 * ids[0..n): row i from the logits at i - 1; row 0 has no logits before
 * it, so it holds WM_TOKEN_NONE (a key of context width 0 would otherwise
 * read a made-up token there). */
static void predict(run *R, int n)
{
    int V = R->V, nv = R->s.n_vocab, k = R->k;
    for (int j = 0; j < k; j++) R->preds[j] = WM_TOKEN_NONE, R->w[j] = 0;
    for (int i = 1; i < n; i++) {
        float *row = R->ls + (size_t)(i - 1) * nv;
        if (R->weighted) {
            float *rr = R->lr + (size_t)(i - 1) * nv;
            softmax(row, nv);
            softmax(rr, nv);
            for (int v = 0; v < V; v++) row[v] -= rr[v];
        }
        top_k(row, V, k, R->weighted, R->preds + (size_t)i * k);
        for (int j = 0; R->weighted && j < k; j++) R->w[(size_t)i * k + j] = row[R->preds[(size_t)i * k + j]];
    }
}

/* One input line: parse, run the models, add to the reader.  0, or 2
 * after a message naming the file and line. */
static int read_line(run *R, const char *line, const char *in, unsigned long lineno)
{
    json_error_t je;
    json_t *doc = json_loads(line, 0, &je), *a = doc ? json_object_get(doc, "ids") : NULL;
    json_t *np = doc ? json_object_get(doc, "n_prompt") : NULL;
    int n = 0, rc = 2;
    if (!json_is_array(a) || (np && (!json_is_integer(np) || json_integer_value(np) < 0))) {
        fprintf(stderr, "wm-read: %s:%lu: expected {\"ids\": [...], \"n_prompt\": N >= 0}%s%s\n", in, lineno,
                doc ? "" : ": ", doc ? "" : je.text);
        goto out;
    }
    n = (int)(json_array_size(a) < (size_t)R->cap ? json_array_size(a) : (size_t)R->cap);
    for (int i = 0; i < n; i++) {
        json_t *t = json_array_get(a, (size_t)i);
        if (!json_is_integer(t) || json_integer_value(t) < 0 || json_integer_value(t) >= R->V) {
            fprintf(stderr, "wm-read: %s:%lu: ids[%d] is not a token id below %d\n", in, lineno, i, R->V);
            goto out;
        }
        R->ids[i] = (wm_token)json_integer_value(t);
    }
    size_t p = np ? (size_t)json_integer_value(np) : 0;
    rc = 0;
    if (n == 0) goto out;
    if (lm_forward(&R->s, R->ids, n, R->ls) || (R->weighted && lm_forward(&R->r, R->ids, n, R->lr))) {
        fprintf(stderr, "wm-read: %s:%lu: llama_decode failed\n", in, lineno);
        rc = 2;
        goto out;
    }
    predict(R, n);
    wm_status st = wm_reader_add(R->rd, R->ids, (size_t)n, p < (size_t)n ? p : (size_t)n, R->preds,
                                 R->weighted ? R->w : NULL, (size_t)R->k);
    if (st) {
        fprintf(stderr, "wm-read: %s:%lu: %s\n", in, lineno, wm_strerror(st));
        rc = 2;
    }
out:
    json_decref(doc);
    return rc;
}

static void run_free(run *R)
{
    free(R->ls);
    free(R->lr);
    free(R->ids);
    free(R->preds);
    free(R->w);
    wm_reader_free(R->rd);
    lm_close(&R->s);
    lm_close(&R->r);
}

/* Models, key, watermark and reader.  0 or 2 (reported). */
static int setup(run *R, const char *model, const char *ref, const char *keyp, wm_watermark **wm)
{
    wm_key *key = NULL;
    wm_error err = { "" };
    uint32_t kv = 0;
    unsigned char sha[32];
    wm_status st = wm_key_load(&key, keyp, &err);
    if (st) return fprintf(stderr, "wm-read: %s\n", err.message[0] ? err.message : wm_strerror(st)), 2;
    if (lm_open(&R->s, model) || (ref && lm_open(&R->r, ref))) return wm_key_free(key), 2;
    if (ref && R->r.n_vocab != R->s.n_vocab) {
        wm_key_free(key);
        return fprintf(stderr, "wm-read: %s and %s have different vocabularies\n", model, ref), 2;
    }
    /* the key's vocabulary if it records one (a model may pad its own) */
    if (!(st = wm_key_tokenizer(key, &kv, sha))) {
        R->V = kv && (int)kv < R->s.n_vocab ? (int)kv : R->s.n_vocab;
        if (R->k > R->V) R->k = R->V;
        if (!(st = wm_watermark_new(wm, key, (uint32_t)R->V)))
            st = wm_reader_new(&R->rd, *wm, R->weighted ? WM_READ_WEIGHTED : 0);
    }
    wm_key_free(key);
    if (st) return fprintf(stderr, "wm-read: %s: %s\n", keyp, wm_strerror(st)), 2;
    R->cap = ref && R->r.n_ctx < R->s.n_ctx ? R->r.n_ctx : R->s.n_ctx; /* both models see the same tokens */
    if (run_alloc(R)) return fputs("wm-read: out of memory\n", stderr), 2;
    return 0;
}

int main(int argc, char **argv)
{
    const char *model = NULL, *keyp = NULL, *ref = NULL, *in = "-";
    run R = { .k = 1 };
    double alpha = 1e-3;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--model") && i + 1 < argc) model = argv[++i];
        else if (!strcmp(argv[i], "--key") && i + 1 < argc) keyp = argv[++i];
        else if (!strcmp(argv[i], "--reference") && i + 1 < argc) ref = argv[++i];
        else if (!strcmp(argv[i], "--top") && i + 1 < argc) R.k = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--alpha") && i + 1 < argc) alpha = atof(argv[++i]);
        else if (argv[i][0] != '-' || !strcmp(argv[i], "-")) in = argv[i];
        else return usage();
    }
    if (!model || !keyp || R.k < 1 || !(alpha > 0 && alpha < 1)) return usage();
    R.weighted = ref != NULL;
    FILE *f = strcmp(in, "-") ? fopen(in, "r") : stdin;
    if (!f) return perror(in), 2;
    llama_log_set(quiet, NULL);
    llama_backend_init();
    wm_watermark *wm = NULL;
    int rc = setup(&R, model, ref, keyp, &wm);
    char *line = NULL;
    size_t lcap = 0;
    unsigned long lineno = 0;
    while (!rc && getline(&line, &lcap, f) > 0) rc = read_line(&R, line, in, ++lineno);
    if (!rc && ferror(f)) rc = 2, fprintf(stderr, "wm-read: %s: read error\n", in);
    wm_score sc = WM_INIT(wm_score);
    uint64_t positions;
    wm_status st;
    if (!rc && (st = wm_reader_score(R.rd, alpha, &sc, &positions))) rc = 2, fprintf(stderr, "wm-read: %s\n", wm_strerror(st));
    if (!rc)
        printf("{\"model\":\"%s\",\"weighted\":%s,\"top\":%d,\"tokens\":%llu,\"positions\":%llu,\"scored\":%llu,"
               "\"statistic\":%.17g,\"z\":%.17g,\"p_value\":%.17g,\"log10_p\":%.17g,\"watermarked\":%s}\n",
               model, R.weighted ? "true" : "false", R.k, (unsigned long long)sc.tokens, (unsigned long long)positions,
               (unsigned long long)sc.scored, sc.statistic, sc.z, sc.p_value, sc.log10_p,
               sc.watermarked ? "true" : "false");
    free(line);
    run_free(&R);
    wm_watermark_free(wm);
    llama_backend_free();
    if (f != stdin) fclose(f);
    if (!rc && (fflush(stdout) || ferror(stdout))) rc = 2, fputs("wm-read: writing standard output failed\n", stderr);
    return rc;
}
