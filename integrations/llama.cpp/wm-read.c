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

int main(int argc, char **argv)
{
    const char *model = NULL, *keyp = NULL, *ref = NULL, *in = "-";
    int k = 1;
    double alpha = 1e-3;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--model") && i + 1 < argc) model = argv[++i];
        else if (!strcmp(argv[i], "--key") && i + 1 < argc) keyp = argv[++i];
        else if (!strcmp(argv[i], "--reference") && i + 1 < argc) ref = argv[++i];
        else if (!strcmp(argv[i], "--top") && i + 1 < argc) k = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--alpha") && i + 1 < argc) alpha = atof(argv[++i]);
        else if (argv[i][0] != '-' || !strcmp(argv[i], "-")) in = argv[i];
        else return usage();
    }
    if (!model || !keyp || k < 1 || !(alpha > 0 && alpha < 1)) return usage();
    llama_log_set(quiet, NULL);
    llama_backend_init();
    lm s = { 0 }, r = { 0 };
    wm_key *key = NULL;
    wm_watermark *wm = NULL;
    wm_reader *rd = NULL;
    wm_error err = { "" };
    int rc = 2;
    uint32_t kv = 0;
    unsigned char sha[32];
    FILE *f = strcmp(in, "-") ? fopen(in, "r") : stdin;
    if (!f) { perror(in); return 2; }
    wm_status st = wm_key_load(&key, keyp, &err);
    if (st) { fprintf(stderr, "wm-read: %s\n", err.message[0] ? err.message : wm_strerror(st)); return 2; }
    if (lm_open(&s, model) || (ref && lm_open(&r, ref))) goto out;
    if (ref && r.n_vocab != s.n_vocab) { fprintf(stderr, "wm-read: %s and %s have different vocabularies\n", model, ref); goto out; }
    /* the key's vocabulary if it records one (a model may pad its own) */
    if ((st = wm_key_tokenizer(key, &kv, sha))) goto lib;
    int V = kv && (int)kv < s.n_vocab ? (int)kv : s.n_vocab;
    if (k > V) k = V;
    if ((st = wm_watermark_new(&wm, key, (uint32_t)V)) || (st = wm_reader_new(&rd, wm, ref ? WM_READ_WEIGHTED : 0))) goto lib;
    int cap = ref && r.n_ctx < s.n_ctx ? r.n_ctx : s.n_ctx; /* both models see the same tokens */
    float *ls = malloc((size_t)cap * s.n_vocab * sizeof *ls), *lr = ref ? malloc((size_t)cap * s.n_vocab * sizeof *lr) : NULL;
    wm_token *ids = malloc((size_t)cap * sizeof *ids), *preds = malloc((size_t)cap * k * sizeof *preds);
    float *w = malloc((size_t)cap * k * sizeof *w);
    char *line = NULL;
    size_t lcap = 0;
    unsigned long lineno = 0;
    if (!ls || (ref && !lr) || !ids || !preds || !w) { fputs("wm-read: out of memory\n", stderr); goto done; }
    while (getline(&line, &lcap, f) > 0) {
        lineno++;
        json_error_t je;
        json_t *doc = json_loads(line, 0, &je), *a = doc ? json_object_get(doc, "ids") : NULL;
        json_t *np = doc ? json_object_get(doc, "n_prompt") : NULL;
        if (!json_is_array(a) || (np && !json_is_integer(np))) {
            fprintf(stderr, "wm-read: %s:%lu: expected {\"ids\": [...], \"n_prompt\": N}%s%s\n", in, lineno,
                    doc ? "" : ": ", doc ? "" : je.text);
            json_decref(doc);
            goto done;
        }
        int n = (int)json_array_size(a) < cap ? (int)json_array_size(a) : cap;
        for (int i = 0; i < n; i++) {
            json_t *t = json_array_get(a, (size_t)i);
            if (!json_is_integer(t) || json_integer_value(t) < 0 || json_integer_value(t) >= V) {
                fprintf(stderr, "wm-read: %s:%lu: ids[%d] is not a token id below %d\n", in, lineno, i, V);
                json_decref(doc);
                goto done;
            }
            ids[i] = (wm_token)json_integer_value(t);
        }
        json_int_t p = np ? json_integer_value(np) : 0;
        json_decref(doc);
        if (p < 0) { fprintf(stderr, "wm-read: %s:%lu: n_prompt < 0\n", in, lineno); goto done; }
        if (n == 0) continue;
        if (lm_forward(&s, ids, n, ls) || (ref && lm_forward(&r, ids, n, lr))) {
            fprintf(stderr, "wm-read: %s:%lu: llama_decode failed\n", in, lineno);
            goto done;
        }
        for (int j = 0; j < k; j++) preds[j] = 0, w[j] = 0; /* row 0 is never read */
        for (int i = 1; i < n; i++) {
            float *row = ls + (size_t)(i - 1) * s.n_vocab;
            if (ref) {
                float *rr = lr + (size_t)(i - 1) * s.n_vocab;
                softmax(row, s.n_vocab);
                softmax(rr, s.n_vocab);
                for (int v = 0; v < V; v++) row[v] -= rr[v];
            }
            top_k(row, V, k, ref != NULL, preds + (size_t)i * k);
            for (int j = 0; ref && j < k; j++) w[(size_t)i * k + j] = row[preds[(size_t)i * k + j]];
        }
        if ((st = wm_reader_add(rd, ids, (size_t)n, p < n ? (size_t)p : (size_t)n, preds, ref ? w : NULL, (size_t)k))) {
            fprintf(stderr, "wm-read: %s:%lu: %s\n", in, lineno, wm_strerror(st));
            goto done;
        }
    }
    if (ferror(f)) { fprintf(stderr, "wm-read: %s: read error\n", in); goto done; }
    wm_score sc;
    uint64_t positions;
    if ((st = wm_reader_score(rd, alpha, &sc, &positions))) { fprintf(stderr, "wm-read: %s\n", wm_strerror(st)); goto done; }
    printf("{\"model\":\"%s\",\"weighted\":%s,\"top\":%d,\"tokens\":%llu,\"positions\":%llu,\"scored\":%llu,"
           "\"statistic\":%.17g,\"z\":%.17g,\"p_value\":%.17g,\"log10_p\":%.17g,\"watermarked\":%s}\n",
           model, ref ? "true" : "false", k, (unsigned long long)sc.tokens, (unsigned long long)positions,
           (unsigned long long)sc.scored, sc.statistic, sc.z, sc.p_value, sc.log10_p, sc.watermarked ? "true" : "false");
    rc = 0;
done:
    free(line);
    free(ls);
    free(lr);
    free(ids);
    free(preds);
    free(w);
    goto out;
lib:
    fprintf(stderr, "wm-read: %s\n", wm_strerror(st));
out:
    wm_reader_free(rd);
    wm_watermark_free(wm);
    wm_key_free(key);
    lm_close(&s);
    lm_close(&r);
    llama_backend_free();
    if (f != stdin) fclose(f);
    return rc;
}
