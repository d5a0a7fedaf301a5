/* wm read: reading mode from predictions already computed (model-free):
 * the suspect's top-k ids (and, for the weighted test, their weights) at
 * every position of the provider's watermarked outputs.  The drivers that
 * compute them are libwm.read_torch (PyTorch) and wm-read (GGUF). */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "read_parse.h"

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

static int read_file(wm_reader *rd, const char *path, uint32_t V, int weighted, size_t *k, read_doc *b)
{
    FILE *f = strcmp(path, "-") ? fopen(path, "r") : stdin;
    if (!f) return die("%s: %s", path, strerror(errno));
    char *line = NULL, msg[256];
    size_t cap = 0, n, np;
    unsigned long lineno = 0;
    int rc = 0;
    while (!rc && getline(&line, &cap, f) > 0) {
        lineno++;
        if (read_parse_doc(line, b, V, weighted, &n, &np, k, msg, sizeof msg)) {
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
    read_doc b = { 0 };
    size_t k = 0;
    int rc = 0;
    for (int i = 0; !rc && i < (argc > optind ? argc - optind : 1); i++)
        rc = read_file(rd, argc > optind ? argv[optind + i] : "-", nv ? nv : vocab, weighted, &k, &b);
    wm_score s = WM_INIT(wm_score);
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
