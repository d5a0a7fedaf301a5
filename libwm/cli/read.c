/* wm read: reading mode from predictions already computed (model-free):
 * the suspect's top-k ids (and, for the weighted test, their weights) at
 * every position of the provider's watermarked outputs.  The drivers that
 * compute them are libwm.read_torch (PyTorch) and wm-read (GGUF). */
#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

static const char usage_read[] =
    "usage: wm read --key KEYFILE [--weighted] [--vocab N] [--alpha A] [--json] [FILE...]\n"
    "\n"
    "Reading mode for an open-weight suspect (wm/detect.h): its predictions on the\n"
    "provider's own watermarked outputs, scored as (context, prediction) tuples at\n"
    "the positions where a context occurs for the first time in a document, each\n"
    "tuple once over all documents, exact binomial test.  Null hypothesis: the\n"
    "suspect's weights are independent of the key.\n"
    "Input: JSON Lines, one document each:\n"
    "  {\"ids\": [...], \"n_prompt\": N, \"top\": [[...], ...], \"weights\": [[...], ...]}\n"
    "ids: prompt and answer token ids; top: one row of k ids per position (row i:\n"
    "the suspect's k most likely tokens given ids[0..i)); weights (--weighted only):\n"
    "the same shape, e.g. p_suspect - p_reference.\n"
    "  --key FILE     the provider's key file\n"
    "  --weighted     the weighted test: p is a Chernoff bound (never too small)\n"
    "  --vocab N      vocabulary size when the key records no tokenizer\n"
    "  --alpha A      verdict threshold on p (default 1e-3)\n"
    "  --json         one JSON object\n";

typedef struct doc_buf {
    wm_token *ids, *top;
    float *w;
    size_t cap_ids, cap_top, cap_w;
} doc_buf;

static int grow(void **p, size_t *cap, size_t need, size_t size)
{
    if (need <= *cap) return 0;
    size_t c = need + need / 2 + 16;
    void *q = realloc(*p, c * size);
    if (!q) return -1;
    *p = q;
    *cap = c;
    return 0;
}

/* One line into b; *n, *n_prompt, *k (k: 0 until the first row fixes it).
 * Returns 0 or an error message in msg. */
static int parse_doc(const char *line, doc_buf *b, uint32_t V, int weighted, size_t *n, size_t *n_prompt,
                     size_t *k, char *msg, size_t len)
{
    json_error_t je;
    json_t *d = json_loads(line, JSON_REJECT_DUPLICATES, &je);
    int rc = -1;
    if (!json_is_object(d)) {
        snprintf(msg, len, "column %d: %s", je.column, d ? "not a JSON object" : je.text);
        goto out;
    }
    json_t *ids = json_object_get(d, "ids"), *np = json_object_get(d, "n_prompt");
    json_t *top = json_object_get(d, "top"), *w = json_object_get(d, "weights");
    if (!json_is_array(ids) || !json_is_array(top) || (np && !json_is_integer(np))) {
        snprintf(msg, len, "expected \"ids\" and \"top\" arrays and an integer \"n_prompt\"");
        goto out;
    }
    if (weighted != (w != NULL) || (w && !json_is_array(w))) {
        snprintf(msg, len, weighted ? "--weighted needs a \"weights\" array" : "\"weights\" given without --weighted");
        goto out;
    }
    *n = json_array_size(ids);
    *n_prompt = np ? (size_t)json_integer_value(np) : 0;
    if ((np && json_integer_value(np) < 0) || *n_prompt > *n) {
        snprintf(msg, len, "n_prompt must be in [0, %zu]", *n);
        goto out;
    }
    if (json_array_size(top) != *n || (w && json_array_size(w) != *n)) {
        snprintf(msg, len, "\"top\"%s must have one row per id (%zu)", w ? " and \"weights\"" : "", *n);
        goto out;
    }
    if (*n && !*k) *k = json_array_size(json_array_get(top, 0));
    if (*n && *k == 0) {
        snprintf(msg, len, "top[0] is empty");
        goto out;
    }
    if (grow((void **)&b->ids, &b->cap_ids, *n, sizeof *b->ids) ||
        grow((void **)&b->top, &b->cap_top, *n * *k, sizeof *b->top) ||
        (weighted && grow((void **)&b->w, &b->cap_w, *n * *k, sizeof *b->w))) {
        snprintf(msg, len, "out of memory");
        goto out;
    }
    for (size_t i = 0; i < *n; i++) {
        json_t *t = json_array_get(ids, i), *row = json_array_get(top, i), *wr = w ? json_array_get(w, i) : NULL;
        if (!json_is_integer(t) || json_integer_value(t) < 0 || json_integer_value(t) >= V) {
            snprintf(msg, len, "ids[%zu] is not a token id below %u", i, V);
            goto out;
        }
        b->ids[i] = (wm_token)json_integer_value(t);
        if (!json_is_array(row) || json_array_size(row) != *k || (w && (!json_is_array(wr) || json_array_size(wr) != *k))) {
            snprintf(msg, len, "top[%zu]%s must hold %zu entries, as every row", i, w ? " and its weights" : "", *k);
            goto out;
        }
        for (size_t j = 0; j < *k; j++) {
            json_t *p = json_array_get(row, j);
            if (!json_is_integer(p) || json_integer_value(p) < 0 || json_integer_value(p) >= V) {
                snprintf(msg, len, "top[%zu][%zu] is not a token id below %u", i, j, V);
                goto out;
            }
            b->top[i * *k + j] = (wm_token)json_integer_value(p);
            if (!w) continue;
            json_t *x = json_array_get(wr, j);
            double v = json_number_value(x);
            if (!json_is_number(x) || !isfinite((float)v)) {
                snprintf(msg, len, "weights[%zu][%zu] is not a finite number", i, j);
                goto out;
            }
            b->w[i * *k + j] = (float)v;
        }
    }
    rc = 0;
out:
    json_decref(d);
    return rc;
}

static int read_file(wm_reader *rd, const char *path, uint32_t V, int weighted, size_t *k, doc_buf *b)
{
    FILE *f = strcmp(path, "-") ? fopen(path, "r") : stdin;
    if (!f) return die("%s: %s", path, strerror(errno));
    char *line = NULL, msg[256];
    size_t cap = 0, n, np;
    unsigned long lineno = 0;
    int rc = 0;
    while (!rc && getline(&line, &cap, f) > 0) {
        lineno++;
        if (parse_doc(line, b, V, weighted, &n, &np, k, msg, sizeof msg)) {
            rc = die("%s:%lu: %s", path, lineno, msg);
            break;
        }
        wm_status st = n ? wm_reader_add(rd, b->ids, n, np, b->top, weighted ? b->w : NULL, *k) : WM_OK;
        if (st) rc = die("%s:%lu: %s", path, lineno, wm_strerror(st));
    }
    if (!rc && ferror(f)) rc = die("%s: %s", path, strerror(errno));
    free(line);
    if (f != stdin) fclose(f);
    return rc;
}

int cmd_read(int argc, char **argv)
{
    static const struct option opts[] = {
        { "key", required_argument, 0, O_KEY }, { "weighted", no_argument, 0, O_WEIGHTED },
        { "vocab", required_argument, 0, O_VOCAB }, { "alpha", required_argument, 0, O_ALPHA },
        { "json", no_argument, 0, O_JSON }, { "help", no_argument, 0, O_HELP }, { 0, 0, 0, 0 } };
    const char *keyp = NULL;
    int weighted = 0, json = 0, c;
    double alpha = 1e-3;
    long v;
    uint32_t vocab = 0;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case O_KEY: keyp = optarg; break;
        case O_WEIGHTED: weighted = 1; break;
        case O_VOCAB:
            if (!parse_int(optarg, 1, INT32_MAX, &v)) return die("read: --vocab '%s': expected 1..2147483647", optarg);
            vocab = (uint32_t)v;
            break;
        case O_ALPHA:
            if (!parse_double(optarg, &alpha) || !(alpha > 0 && alpha < 1))
                return die("read: --alpha '%s': expected a number in (0, 1)", optarg);
            break;
        case O_JSON: json = 1; break;
        case O_HELP: fputs(usage_read, stdout); return 0;
        default: return usage_error("read");
        }
    }
    if (!keyp) return die("read: --key KEYFILE is required (usage: see `wm read --help`)");
    if (stdin_uses(argv + optind, argc - optind) > 1) return die("read: standard input ('-') given more than once");
    wm_key *key;
    wm_error err = { "" };
    wm_status st = wm_key_load(&key, keyp, &err);
    if (st) return die("%s", status_text(st, &err));
    uint32_t nv;
    unsigned char sha[32];
    char id[WM_KEY_ID_SIZE];
    wm_watermark *wm = NULL;
    wm_reader *rd = NULL;
    if (!(st = wm_key_tokenizer(key, &nv, sha)) && !(st = wm_key_id(key, id))) {
        if (nv && vocab && nv != vocab) {
            wm_key_free(key);
            return die("%s: --vocab %u but the key records a vocabulary of %u", keyp, vocab, nv);
        }
        if (!nv && !vocab) {
            wm_key_free(key);
            return die("%s records no tokenizer: give --vocab N", keyp);
        }
        if (!(st = wm_watermark_new(&wm, key, nv ? nv : vocab))) st = wm_reader_new(&rd, wm, weighted ? WM_READ_WEIGHTED : 0);
    }
    wm_key_free(key);
    if (st) {
        wm_watermark_free(wm);
        return die("%s: %s", keyp, wm_strerror(st));
    }
    doc_buf b = { 0 };
    size_t k = 0;
    int rc = 0;
    for (int i = 0; !rc && i < (argc > optind ? argc - optind : 1); i++)
        rc = read_file(rd, argc > optind ? argv[optind + i] : "-", nv ? nv : vocab, weighted, &k, &b);
    wm_score s;
    uint64_t positions;
    if (!rc && (st = wm_reader_score(rd, alpha, &s, &positions))) rc = die("read: %s", wm_strerror(st));
    if (!rc && json)
        printf("{\"source\":\"read\",\"key_id\":\"%s\",\"weighted\":%s,\"top\":%zu,\"tokens\":%llu,\"positions\":%llu,"
               "\"scored\":%llu,\"statistic\":%.17g,\"z\":%.17g,\"p_value\":%.17g,\"log10_p\":%.17g,\"watermarked\":%s}\n",
               id, weighted ? "true" : "false", k, (unsigned long long)s.tokens, (unsigned long long)positions,
               (unsigned long long)s.scored, s.statistic, s.z, s.p_value, s.log10_p, s.watermarked ? "true" : "false");
    else if (!rc)
        printf("%s: log10 p %s%.2f over %llu %s from %llu read positions (key %s)\n",
               s.watermarked ? "the suspect's weights carry the watermark" : "no watermark read",
               weighted ? "<= " : "", s.log10_p, (unsigned long long)s.scored,
               weighted ? "weighted (context, token) pairs" : "unique (context, prediction) tuples",
               (unsigned long long)positions, id);
    free(b.ids);
    free(b.top);
    free(b.w);
    wm_reader_free(rd);
    wm_watermark_free(wm);
    return rc;
}
