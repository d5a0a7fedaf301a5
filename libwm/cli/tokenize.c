/* wm tokenize: token ids (or pieces) of documents. */
#include <errno.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

static const char usage_tokenize[] =
    "usage: wm tokenize --tokenizer TOKENIZER.json [--jsonl[=FIELD]] [--pieces]\n"
    "                   [--special-as-text] [--lossy] [FILE...]\n"
    "\n"
    "One line per document: its token ids separated by spaces, or with --pieces a\n"
    "JSON array of the tokens' text.  Documents: each FILE (or stdin, or -), or with\n"
    "--jsonl one JSON object per line, text in FIELD (default \"text\").\n";


/* One id or piece of `wm tokenize` output; 0, or EXIT_USAGE with the error
 * reported. */
static int print_token(wm_encoder *dec, int pieces, wm_token id, int first)
{
    if (!pieces) {
        printf(first ? "%d" : " %d", id);
        return 0;
    }
    const char *s;
    size_t len;
    wm_status st = wm_decode(dec, &id, 1, &s, &len);
    if (st) return die("decoding id %d: %s", id, wm_strerror(st));
    if (!first) putchar(',');
    print_json_string(stdout, s, len);
    return 0;
}

/* A plain file tokenized as it is read (see stream_plain): any size. */
static int tokenize_plain(wm_encoder *enc, wm_encoder *dec, unsigned flags, int pieces, const char *path)
{
    int is_stdin = !strcmp(path, "-");
    const char *name = is_stdin ? "<stdin>" : path;
    FILE *f = is_stdin ? stdin : fopen(path, "rb");
    if (!f) return die("%s: %s", path, strerror(errno));
    char *buf = malloc(1u << 20);
    int rc = buf ? 0 : die("out of memory"), first = 1;
    if (pieces) putchar('[');
    for (int last = 0; !rc && !last;) {
        size_t got = fread(buf, 1, 1u << 20, f);
        if (ferror(f)) {
            rc = die("%s: read error: %s", name, strerror(errno));
            break;
        }
        last = got < (1u << 20);
        const wm_token *ids;
        size_t n;
        wm_error err = { "" };
        wm_status st = wm_encode_stream(enc, buf, got, flags, last, &ids, &n, &err);
        if (st) {
            rc = die("%s: %s", name, status_text(st, &err));
            break;
        }
        for (size_t k = 0; k < n && !rc; k++, first = 0) rc = print_token(dec, pieces, ids[k], first);
        if (ferror(stdout)) rc = EXIT_USAGE; /* reported by finish_output */
    }
    if (!rc) fputs(pieces ? "]\n" : "\n", stdout);
    free(buf);
    if (!is_stdin) fclose(f);
    return rc;
}

int cmd_tokenize(int argc, char **argv)
{
    static const struct option opts[] = {
        { "tokenizer", required_argument, 0, O_TOKENIZER }, { "jsonl", optional_argument, 0, O_JSONL },
        { "pieces", no_argument, 0, O_PIECES }, { "special-as-text", no_argument, 0, O_SPECIAL },
        { "lossy", no_argument, 0, O_LOSSY }, { "threads", required_argument, 0, O_THREADS },
        { "help", no_argument, 0, O_HELP }, { 0, 0, 0, 0 } };
    const char *tok_path = NULL, *field = "text";
    int pieces = 0, c, n_threads = default_threads();
    in_mode mode = IN_PLAIN;
    unsigned flags = 0;
    long v;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case O_TOKENIZER: tok_path = optarg; break;
        case O_JSONL: mode = IN_JSONL; if (optarg) field = optarg; break;
        case O_PIECES: pieces = 1; break;
        case O_SPECIAL: flags |= WM_ENC_SPECIAL_AS_TEXT; break;
        case O_LOSSY: flags |= WM_ENC_LOSSY; break;
        case O_THREADS:
            if (!parse_int(optarg, 1, 64, &v)) return die("tokenize: --threads '%s': expected 1..64", optarg);
            n_threads = (int)v;
            break;
        case O_HELP: fputs(usage_tokenize, stdout); return 0;
        default: return usage_error("tokenize");
        }
    }
    if (!tok_path) return die("tokenize: --tokenizer is required (usage: see `wm tokenize --help`)");
    if (stdin_uses(argv + optind, argc - optind) > 1) return die("tokenize: standard input ('-') given more than once");
    wm_tokenizer *tok;
    wm_error err = { "" };
    wm_status st = wm_tokenizer_load(&tok, tok_path, &err);
    if (st) return die("%s", status_text(st, &err));
    wm_encoder *enc[64] = { 0 }, *dec = NULL;
    for (int t = 0; t < n_threads; t++)
        if (wm_encoder_new(&enc[t], tok)) return die("out of memory");
    if (wm_encoder_new(&dec, tok)) return die("out of memory");
    if (mode == IN_PLAIN) {
        int rc = 0;
        for (int i = 0; !rc && i < (argc > optind ? argc - optind : 1); i++)
            rc = tokenize_plain(enc[0], dec, flags, pieces, argc > optind ? argv[optind + i] : "-");
        for (int t = 0; t < n_threads; t++) wm_encoder_free(enc[t]);
        wm_encoder_free(dec);
        wm_tokenizer_free(tok);
        return rc;
    }
    reader r;
    reader_init(&r, mode, field, NULL, argv + optind, argc - optind, 0, (flags & WM_ENC_LOSSY) != 0);
    job *jobs = calloc(BATCH_DOCS, sizeof *jobs);
    pool p = { jobs, 0, enc, n_threads, flags };
    int rc = 0, fatal;
    char msg[512];
    for (;;) {
        p.n_jobs = read_batch(&r, jobs, &fatal, msg, sizeof msg);
        run_pool(&p);
        for (size_t i = 0; i < p.n_jobs && !rc; i++) {
            job *j = &jobs[i];
            if (j->err[0]) {
                rc = die("%s", j->err);
                break;
            }
            if (pieces) putchar('[');
            for (size_t k = 0; k < j->n && !rc; k++) rc = print_token(dec, pieces, j->ids[k], k == 0);
            if (!rc) fputs(pieces ? "]\n" : "\n", stdout);
        }
        free_jobs(jobs, p.n_jobs);
        if (!rc && ferror(stdout)) rc = EXIT_USAGE; /* reported by finish_output */
        if (rc) break;
        if (fatal) {
            rc = die("%s", msg);
            break;
        }
        if (p.n_jobs == 0) break;
    }
    reader_close(&r);
    free(jobs);
    for (int t = 0; t < n_threads; t++) wm_encoder_free(enc[t]);
    wm_encoder_free(dec);
    wm_tokenizer_free(tok);
    return rc;
}
