/* wm: keygen, info, tokenize, detect.  See wm.1 or `wm CMD --help`.
 *
 * Exit status: 0 success; 1 a watermark was found (only with
 * --fail-if-watermarked); 2 usage or input error. */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdarg.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <wm.h>

#include "input.h"

#define EXIT_FOUND 1
#define EXIT_USAGE 2
#define MAX_KEYS 16
#define BATCH_DOCS 256
#define BATCH_BYTES (16u << 20)

static int die(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("wm: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    return EXIT_USAGE;
}

static const char usage_main[] =
    "usage: wm COMMAND [OPTIONS]\n"
    "\n"
    "  keygen    create a secret watermark key file\n"
    "  info      show a key's public parameters and id\n"
    "  tokenize  print token ids of texts\n"
    "  detect    test texts, or a whole corpus, for the watermark\n"
    "\n"
    "`wm COMMAND --help` for each; `man wm` for the whole story.\n"
    "Exit status: 0 success, 1 watermark found (with --fail-if-watermarked), 2 error.\n";

static const char usage_keygen[] =
    "usage: wm keygen [--gamma G] [--delta D] [--context-width H] [--scheme lefthash|minhash]\n"
    "                 [--tokenizer TOKENIZER.json] -o KEYFILE\n"
    "\n"
    "Creates KEYFILE (mode 0600; never overwrites) with a fresh 256-bit secret.\n"
    "  --gamma G          green fraction, stored as k/65536 (default 0.25)\n"
    "  --delta D          logit bias, 1/1024..64 (default 2)\n"
    "  --context-width H  tokens of context, 0..16 (default 1)\n"
    "  --scheme S         lefthash (default) or minhash (needs H >= 1)\n"
    "  --tokenizer FILE   bind the key to this tokenizer (vocabulary size and SHA-256):\n"
    "                     detect then refuses another one unless --any-tokenizer\n";

static const char usage_info[] =
    "usage: wm info [--json] KEYFILE\n"
    "\n"
    "Prints the parameters (gamma as the exact value detection uses) and the public\n"
    "key id.  Never prints the secret.\n";

static const char usage_tokenize[] =
    "usage: wm tokenize --tokenizer TOKENIZER.json [--jsonl[=FIELD]] [--pieces]\n"
    "                   [--special-as-text] [--lossy] [FILE...]\n"
    "\n"
    "One line per document: its token ids separated by spaces, or with --pieces a\n"
    "JSON array of the tokens' text.  Documents: each FILE (or stdin, or -), or with\n"
    "--jsonl one JSON object per line, text in FIELD (default \"text\").\n";

static const char usage_detect[] =
    "usage: wm detect --key KEYFILE [--key KEYFILE...] [--tokenizer TOKENIZER.json]\n"
    "                 [--jsonl[=FIELD] | --ids] [--prompt-field NAME] [--corpus]\n"
    "                 [--filter FILE] [--no-dedup] [--window] [--alpha A] [--json]\n"
    "                 [--fail-if-watermarked] [--any-tokenizer] [--threads N]\n"
    "                 [--skip-bad] [--lossy] [--vocab N] [FILE...]\n"
    "\n"
    "Tests each document (or, with --corpus, all of them together) for the watermark:\n"
    "exact one-sided binomial test over distinct (context, token) tuples.\n"
    "  --key FILE          key file (repeat after key rotation: a result per key and\n"
    "                      a family-wise verdict, Bonferroni over the keys)\n"
    "  --tokenizer FILE    tokenizer.json the watermarked model used\n"
    "  --jsonl[=FIELD]     JSON Lines input, text in FIELD (default \"text\")\n"
    "  --ids               input lines are token ids separated by spaces\n"
    "  --prompt-field NAME JSONL field with the prompt; tuples whose context lies\n"
    "                      inside the prompt are not scored\n"
    "  --corpus            one verdict for all inputs, each tuple scored once overall\n"
    "  --filter FILE       score only contexts that occur in FILE (same format as the\n"
    "                      inputs), e.g. the watermarked outputs a suspect trained on\n"
    "  --no-dedup          score repeated tuples again (p-value no longer valid)\n"
    "  --window            best-scoring span of each document (corrected p-value)\n"
    "  --alpha A           verdict threshold on p (default 1e-3)\n"
    "  --json              one JSON object per result\n"
    "  --fail-if-watermarked  exit 1 if a watermark is found\n"
    "  --any-tokenizer     allow a tokenizer other than the one the key records\n"
    "  --threads N         tokenizer threads (default: all cores); same results\n"
    "  --skip-bad          skip malformed lines, count them, report the count\n"
    "  --lossy             invalid UTF-8 becomes U+FFFD instead of an error (text\n"
    "                      and JSONL lines alike)\n"
    "  --vocab N           vocabulary size for --ids input when the key records no\n"
    "                      tokenizer (ids >= N are an error)\n";

/* ---- shared option handling --------------------------------------------- */

enum {
    O_GAMMA = 256, O_DELTA, O_CTX, O_SCHEME, O_TOKENIZER, O_JSON, O_JSONL, O_PIECES, O_KEY, O_IDS,
    O_PROMPT, O_CORPUS, O_FILTER, O_NODEDUP, O_WINDOW, O_ALPHA, O_FAIL, O_ANY, O_THREADS, O_SKIP,
    O_HELP, O_SPECIAL, O_LOSSY, O_VOCAB
};

static int parse_double(const char *s, double *out)
{
    char *end;
    errno = 0;
    *out = strtod(s, &end);
    return end != s && !*end && !errno && isfinite(*out);
}

static int parse_int(const char *s, long lo, long hi, long *out)
{
    char *end;
    errno = 0;
    *out = strtol(s, &end, 10);
    return end != s && !*end && !errno && *out >= lo && *out <= hi;
}

/* A usage mistake: one line, pointing at the help. */
static int usage_error(const char *cmd)
{
    fprintf(stderr, "wm %s: usage error; see `wm %s --help`\n", cmd, cmd);
    return EXIT_USAGE;
}

static const char *status_text(wm_status st, const wm_error *err)
{
    return err && err->message[0] ? err->message : wm_strerror(st);
}

/* ---- keygen -------------------------------------------------------------- */

static int cmd_keygen(int argc, char **argv)
{
    static const struct option opts[] = {
        { "gamma", required_argument, 0, O_GAMMA }, { "delta", required_argument, 0, O_DELTA },
        { "context-width", required_argument, 0, O_CTX }, { "scheme", required_argument, 0, O_SCHEME },
        { "tokenizer", required_argument, 0, O_TOKENIZER }, { "output", required_argument, 0, 'o' },
        { "help", no_argument, 0, O_HELP }, { 0, 0, 0, 0 } };
    wm_params p = WM_PARAMS_DEFAULT;
    const char *out = NULL, *tok_path = NULL;
    long h;
    int c;
    while ((c = getopt_long(argc, argv, "o:", opts, NULL)) != -1) {
        switch (c) {
        case O_GAMMA:
            if (!parse_double(optarg, &p.gamma) || !(p.gamma > 0 && p.gamma < 1))
                return die("keygen: --gamma '%s': expected a number in (0, 1)", optarg);
            break;
        case O_DELTA:
            if (!parse_double(optarg, &p.delta) || !(p.delta >= WM_DELTA_MIN && p.delta <= 64))
                return die("keygen: --delta '%s': expected a number in [1/1024, 64] (smaller biases vanish "
                           "in float rounding)", optarg);
            break;
        case O_CTX:
            if (!parse_int(optarg, 0, WM_MAX_CONTEXT, &h)) return die("keygen: --context-width '%s': expected 0..16", optarg);
            p.context_width = (uint32_t)h;
            break;
        case O_SCHEME:
            if (!strcmp(optarg, "lefthash")) p.scheme = WM_SCHEME_LEFTHASH;
            else if (!strcmp(optarg, "minhash")) p.scheme = WM_SCHEME_MINHASH;
            else return die("keygen: --scheme '%s': expected lefthash or minhash", optarg);
            break;
        case O_TOKENIZER: tok_path = optarg; break;
        case 'o': out = optarg; break;
        case O_HELP: fputs(usage_keygen, stdout); return 0;
        default: return usage_error("keygen");
        }
    }
    if (!out) return die("keygen: -o KEYFILE is required (usage: see `wm keygen --help`)");
    if (optind != argc) return usage_error("keygen");
    wm_key *key;
    wm_error err = { "" };
    wm_status st = wm_key_generate(&key, &p);
    if (st) return die("keygen: %s", wm_strerror(st));
    if (tok_path) {
        wm_tokenizer *tok;
        if ((st = wm_tokenizer_load(&tok, tok_path, &err))) {
            wm_key_free(key);
            return die("%s", status_text(st, &err));
        }
        unsigned char sha[32];
        wm_tokenizer_sha256(tok, sha);
        wm_key_set_tokenizer(key, wm_tokenizer_vocab_size(tok), sha);
        wm_tokenizer_free(tok);
    }
    st = wm_key_save(key, out, &err);
    char id[WM_KEY_ID_SIZE];
    wm_key_id(key, id);
    wm_key_free(key);
    if (st) return die("%s", status_text(st, &err));
    fprintf(stderr, "wm: wrote %s (key id %s, mode 0600); keep it secret\n", out, id);
    return 0;
}

/* ---- info ---------------------------------------------------------------- */

static int cmd_info(int argc, char **argv)
{
    static const struct option opts[] = { { "json", no_argument, 0, O_JSON }, { "help", no_argument, 0, O_HELP },
                                          { 0, 0, 0, 0 } };
    int json = 0, c;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        if (c == O_JSON) json = 1;
        else if (c == O_HELP) return fputs(usage_info, stdout), 0;
        else return usage_error("info");
    }
    if (optind + 1 != argc) return usage_error("info");
    wm_key *key;
    wm_error err = { "" };
    wm_status st = wm_key_load(&key, argv[optind], &err);
    if (st) return die("%s", status_text(st, &err));
    wm_params p;
    char id[WM_KEY_ID_SIZE], sha_hex[65] = "";
    uint32_t nv;
    unsigned char sha[32];
    wm_key_params(key, &p);
    wm_key_id(key, id);
    wm_key_tokenizer(key, &nv, sha);
    wm_key_free(key);
    for (int i = 0; nv && i < 32; i++) sprintf(sha_hex + 2 * i, "%02x", sha[i]);
    const char *scheme = p.scheme == WM_SCHEME_MINHASH ? "minhash" : "lefthash";
    unsigned k = (unsigned)(p.gamma * WM_GAMMA_ONE);
    if (json) {
        printf("{\"key_id\":\"%s\",\"scheme\":\"%s\",\"context_width\":%u,\"gamma\":%.17g,"
               "\"gamma_fraction\":\"%u/65536\",\"delta\":%.17g", id, scheme, p.context_width, p.gamma, k,
               p.delta);
        if (nv) printf(",\"vocab\":%u,\"tokenizer_sha256\":\"%s\"", nv, sha_hex);
        printf("}\n");
    } else {
        printf("key id         %s\nscheme         %s\ncontext width  %u\ngamma          %.17g (= %u/65536, "
               "exact value used by detection)\ndelta          %g\n", id, scheme, p.context_width, p.gamma,
               k, p.delta);
        if (nv) printf("vocabulary     %u\ntokenizer      sha256 %s\n", nv, sha_hex);
    }
    return 0;
}

/* ---- tokenization, in parallel batches ---------------------------------- */

typedef struct job {
    doc d;
    wm_token *ids;      /* prompt ids then text ids */
    size_t n, n_prompt;
    char err[1024];     /* tokenization error, if any */
} job;

typedef struct pool {
    job *jobs;
    size_t n_jobs;
    wm_encoder **enc;
    int n_threads;
    unsigned flags;
} pool;

typedef struct worker_arg { pool *p; int t; } worker_arg;

static int encode_into(wm_encoder *e, const char *text, size_t len, unsigned flags, job *j,
                       const char *what)
{
    const wm_token *ids;
    size_t n;
    wm_error err = { "" };
    wm_status st = wm_encode(e, text, len, flags, &ids, &n, &err);
    if (st) {
        snprintf(j->err, sizeof j->err, "%s: %s%s", j->d.source, what, status_text(st, &err));
        return 0;
    }
    wm_token *nb = realloc(j->ids, (j->n + n + 1) * sizeof *nb);
    if (!nb) {
        snprintf(j->err, sizeof j->err, "%s: out of memory", j->d.source);
        return 0;
    }
    j->ids = nb;
    memcpy(j->ids + j->n, ids, n * sizeof *ids);
    j->n += n;
    return 1;
}

static void tokenize_job(wm_encoder *e, unsigned flags, job *j)
{
    if (j->d.ids) { /* --ids input */
        j->ids = j->d.ids;
        j->n = j->d.n_ids;
        j->d.ids = NULL;
        return;
    }
    if (j->d.prompt && !encode_into(e, j->d.prompt, j->d.prompt_len, flags, j, "prompt: ")) return;
    j->n_prompt = j->n;
    encode_into(e, j->d.text, j->d.len, flags, j, "");
}

static void *worker(void *a)
{
    worker_arg *w = a;
    for (size_t i = (size_t)w->t; i < w->p->n_jobs; i += (size_t)w->p->n_threads)
        tokenize_job(w->p->enc[w->t], w->p->flags, &w->p->jobs[i]);
    return NULL;
}

/* Same results as one thread: each document is tokenized by exactly one
 * encoder and results are consumed in input order. */
static void run_pool(pool *p)
{
    if (p->n_threads <= 1 || p->n_jobs < 2 || !p->enc) {
        for (size_t i = 0; i < p->n_jobs; i++) tokenize_job(p->enc ? p->enc[0] : NULL, p->flags, &p->jobs[i]);
        return;
    }
    pthread_t th[64];
    worker_arg wa[64];
    int started = 0;
    for (int t = 1; t < p->n_threads; t++) {
        wa[t] = (worker_arg){ p, t };
        if (pthread_create(&th[t], NULL, worker, &wa[t]) != 0) break;
        started = t;
    }
    if (started < p->n_threads - 1) { /* could not start them all: finish on this thread */
        for (int t = started + 1; t < p->n_threads; t++) {
            wa[t] = (worker_arg){ p, t };
            worker(&wa[t]);
        }
    }
    wa[0] = (worker_arg){ p, 0 };
    worker(&wa[0]);
    for (int t = 1; t <= started; t++) pthread_join(th[t], NULL);
}

static void free_jobs(job *jobs, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        doc_free(&jobs[i].d);
        free(jobs[i].ids);
        memset(&jobs[i], 0, sizeof jobs[i]);
    }
}

/* Read up to a batch of documents.  Returns the count; *fatal set on error. */
static size_t read_batch(reader *r, job *jobs, int *fatal, char *err, size_t errlen)
{
    size_t n = 0, bytes = 0;
    *fatal = 0;
    while (n < BATCH_DOCS && bytes < BATCH_BYTES) {
        int rc = reader_next(r, &jobs[n].d, err, errlen);
        if (rc < 0) {
            *fatal = 1;
            break;
        }
        if (rc == 0) break;
        bytes += jobs[n].d.len + jobs[n].d.n_ids * 4;
        n++;
    }
    return n;
}

/* ---- progress ------------------------------------------------------------ */

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

typedef struct progress { int on; double t0, last; unsigned long docs; unsigned long long tokens; } progress;

static void progress_show(progress *pr, const reader *r, int final)
{
    if (!pr->on) return;
    double t = now();
    if (!final && t - pr->last < 0.5) return;
    pr->last = t;
    double el = t - pr->t0;
    fprintf(stderr, "\r%lu docs  %.1f MB  %.2f M tokens/s  %.0f s   ", pr->docs, (double)r->bytes / 1e6,
            el > 0 ? (double)pr->tokens / el / 1e6 : 0.0, el);
    if (final) fputc('\n', stderr);
}

/* ---- tokenize ------------------------------------------------------------ */

/* A JSON string; bytes that are not UTF-8 (file names may hold any) become
 * U+FFFD, so the output is always valid JSON: callers that must not lose
 * the bytes add them in hex (print_source). */
static void print_json_string(FILE *f, const char *s, size_t n)
{
    fputc('"', f);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        size_t k = c < 0x80 ? 1 : utf8_valid_len((const unsigned char *)s + i, n - i);
        if (k == 0) {
            fputs("\\ufffd", f);
            continue;
        }
        if (k > 1) {
            fwrite(s + i, 1, k, f);
            i += k - 1;
            continue;
        }
        if (c == '"' || c == '\\') fprintf(f, "\\%c", c);
        else if (c == '\n') fputs("\\n", f);
        else if (c == '\t') fputs("\\t", f);
        else if (c == '\r') fputs("\\r", f);
        else if (c < 0x20 || c == 0x7f) fprintf(f, "\\u%04x", c);
        else fputc(c, f);
    }
    fputc('"', f);
}

/* Standard input can be read once: `- -`, or `--filter -` with stdin as an
 * input, would find it empty the second time and score nothing. */
static int stdin_uses(char **files, int n_files)
{
    int n = n_files == 0;
    for (int i = 0; i < n_files; i++) n += !strcmp(files[i], "-");
    return n;
}

/* One id or piece of `wm tokenize` output. */
static void print_token(wm_encoder *dec, int pieces, wm_token id, int first)
{
    if (!pieces) {
        printf(first ? "%d" : " %d", id);
        return;
    }
    const char *s;
    size_t len;
    wm_decode(dec, &id, 1, &s, &len);
    if (!first) putchar(',');
    print_json_string(stdout, s, len);
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
        for (size_t k = 0; k < n; k++, first = 0) print_token(dec, pieces, ids[k], first);
        if (ferror(stdout)) rc = EXIT_USAGE; /* reported by finish_output */
    }
    if (!rc) fputs(pieces ? "]\n" : "\n", stdout);
    free(buf);
    if (!is_stdin) fclose(f);
    return rc;
}

static int default_threads(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n < 1 ? 1 : n > 64 ? 64 : (int)n;
}

static int cmd_tokenize(int argc, char **argv)
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
    wm_encoder_new(&dec, tok);
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
            for (size_t k = 0; k < j->n; k++) print_token(dec, pieces, j->ids[k], k == 0);
            fputs(pieces ? "]\n" : "\n", stdout);
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

/* ---- detect -------------------------------------------------------------- */

typedef struct detector {
    int n_keys;
    wm_watermark *wm[MAX_KEYS];
    char id[MAX_KEYS][WM_KEY_ID_SIZE];
    wm_corpus *corpus[MAX_KEYS];
    wm_ctxset *filter[MAX_KEYS];
    int json, window, corpus_mode;
    unsigned flags;
    double alpha;
    int found, header_done;
} detector;

/* "source":"..." and, when the name is not UTF-8, its exact bytes in hex. */
static void print_source(const char *source)
{
    size_t n = strlen(source);
    printf("{\"source\":");
    print_json_string(stdout, source, n);
    if (!utf8_valid(source, n)) {
        printf(",\"source_hex\":\"");
        for (size_t i = 0; i < n; i++) printf("%02x", (unsigned char)source[i]);
        putchar('"');
    }
}

/* The verdict a row may show.  With several keys a row's own p-value is not
 * the test: it is Bonferroni-corrected (p * K) before it is compared with
 * alpha, so filtering rows on "watermarked" keeps the family-wise error rate
 * at alpha.  Without dedup there is no valid p-value, so no verdict. */
static int row_verdict(const detector *D, const wm_score *s, double *log10_p_adj)
{
    double adj = s->log10_p + log10((double)D->n_keys);
    *log10_p_adj = adj > 0 ? 0 : adj;
    if (D->flags & WM_NO_DEDUP) return -1;
    return *log10_p_adj < log10(D->alpha);
}

static const char *verdict_json(int v) { return v < 0 ? "null" : v ? "true" : "false"; }

static void print_score(detector *D, const char *source, int k, const wm_score *s, const wm_window *w,
                        int corpus)
{
    double adj;
    int verdict = row_verdict(D, s, &adj);
    if (verdict > 0) D->found = 1;
    if (D->json) {
        print_source(source);
        printf(",\"key_id\":\"%s\",\"tokens\":%llu,\"scored\":%llu,\"green\":%llu,\"green_fraction\":%.17g,"
               "\"z\":%.17g,\"p_value\":%.17g,\"log10_p\":%.17g,\"watermarked\":%s",
               D->id[k], (unsigned long long)s->tokens, (unsigned long long)s->scored,
               (unsigned long long)s->green, s->green_fraction, s->z, s->p_value, s->log10_p, verdict_json(verdict));
        if (D->n_keys > 1) printf(",\"log10_p_corrected\":%.17g,\"keys\":%d", adj, D->n_keys);
        if (verdict < 0) printf(",\"p_value_valid\":false");
        if (w) printf(",\"window_begin\":%zu,\"window_end\":%zu,\"windows_tested\":%llu", w->begin, w->end,
                      (unsigned long long)w->n_tests);
        if (corpus) printf(",\"corpus\":true");
        printf("}\n");
        return;
    }
    const char *vtext = verdict < 0 ? "no verdict (--no-dedup: p not valid)" : verdict ? "WATERMARKED" : "-";
    if (corpus) {
        char p[64];
        if (s->p_value > 0) snprintf(p, sizeof p, "p = %.2g", s->p_value);
        else snprintf(p, sizeof p, "p = 10^%.1f", s->log10_p);
        printf("%s: %s over %llu %stuples (green %.4f, z %.2f, key %s)",
               verdict < 0 ? "no verdict (--no-dedup: p not valid)" : verdict ? "watermark present" : "no watermark detected",
               p, (unsigned long long)s->scored, verdict < 0 ? "" : "unique ", s->green_fraction, s->z, D->id[k]);
        if (D->n_keys > 1) printf(" [corrected for %d keys: log10 p = %.2f]", D->n_keys, adj);
        putchar('\n');
        return;
    }
    if (!D->header_done) {
        printf("%-40s %-16s %8s %8s %7s %8s %10s  %s\n", "source", "key", "tokens", "scored", "green", "z",
               D->n_keys > 1 ? "log10(pK)" : "log10(p)", "verdict");
        D->header_done = 1;
    }
    size_t n = strlen(source);
    const char *tail = n > 40 ? source + n - 37 : source;
    printf("%s%-*s %-16s %8llu %8llu %7.4f %8.2f %10.2f  %s", n > 40 ? "..." : "", n > 40 ? 37 : 40, tail, D->id[k],
           (unsigned long long)s->tokens, (unsigned long long)s->scored, s->green_fraction, s->z,
           D->n_keys > 1 ? adj : s->log10_p, vtext);
    if (w) printf("  [%zu, %zu)", w->begin, w->end);
    putchar('\n');
}

/* Family-wise verdict over the keys: Bonferroni on the smallest p. */
static void print_family(detector *D, const char *source, const double *log10_p, int corpus)
{
    double best = 0;
    for (int k = 0; k < D->n_keys; k++) best = log10_p[k] < best ? log10_p[k] : best;
    double fw = best + log10((double)D->n_keys);
    if (fw > 0) fw = 0;
    int verdict = D->flags & WM_NO_DEDUP ? -1 : fw < log10(D->alpha);
    if (verdict > 0) D->found = 1;
    if (D->json) {
        print_source(source);
        printf(",\"family\":true,\"keys\":%d,\"log10_p\":%.17g,\"p_value\":%.17g,\"watermarked\":%s%s%s}\n",
               D->n_keys, fw, pow(10, fw), verdict_json(verdict), verdict < 0 ? ",\"p_value_valid\":false" : "",
               corpus ? ",\"corpus\":true" : "");
    } else {
        printf("%s%s: family-wise over %d keys: log10 p = %.2f: %s\n", corpus ? "" : "  ", source, D->n_keys, fw,
               verdict < 0 ? "no verdict (--no-dedup)" : verdict ? "WATERMARKED" : "no watermark");
    }
}

static int detect_doc(detector *D, job *j)
{
    double lp[MAX_KEYS];
    for (int k = 0; k < D->n_keys; k++) {
        wm_status st;
        if (D->corpus_mode) {
            if ((st = wm_corpus_add(D->corpus[k], j->ids, j->n, j->n_prompt)))
                return die("%s: %s", j->d.source, wm_strerror(st));
            continue;
        }
        wm_score s;
        wm_window w;
        if (D->window) st = wm_detect_window(D->wm[k], j->ids, j->n, j->n_prompt, D->flags, D->alpha, &w), s = w.score;
        else st = wm_detect(D->wm[k], j->ids, j->n, j->n_prompt, D->flags, D->alpha, &s);
        if (st) return die("%s: %s", j->d.source, st == WM_ERR_TOKEN ? "token id outside the key's vocabulary" : wm_strerror(st));
        print_score(D, j->d.source, k, &s, D->window ? &w : NULL, 0);
        lp[k] = s.log10_p;
    }
    if (!D->corpus_mode && D->n_keys > 1) print_family(D, j->d.source, lp, 0);
    return 0;
}

typedef struct detect_opts {
    const char *keys[MAX_KEYS], *tok_path, *filter_path, *field, *prompt_field;
    int n_keys, any_tokenizer, n_threads, skip_bad, lossy;
    uint32_t vocab; /* --vocab: ids input with a key that records no tokenizer */
    in_mode mode;
    unsigned enc_flags;
} detect_opts;

/* ---- plain files, streamed ------------------------------------------------
 *
 * A plain file is one document of any size: it is read PART_BYTES at a
 * time, tokenized by wm_encode_stream and scored by wm_corpus_add_part, so
 * memory does not grow with the file (one thread per file).  --window needs
 * every tuple of the document and --skip-bad must be able to drop a whole
 * file, so those read each file whole. */

#define PART_BYTES (1u << 20)

typedef struct plain_sink {
    int filter;                  /* contexts into D->filter, else detection */
    wm_corpus *doc[MAX_KEYS];    /* this document's, unless --corpus */
    wm_token *buf;               /* filter: the last tokens, then the part */
    size_t cap, tail;
} plain_sink;

static int plain_filter_part(detector *D, plain_sink *s, const char *name, const wm_token *ids, size_t n)
{
    if (s->tail + n > s->cap) {
        size_t cap = s->cap ? s->cap : 4096;
        while (cap < s->tail + n) cap *= 2;
        wm_token *b = realloc(s->buf, cap * sizeof *b);
        if (!b) return die("%s: out of memory", name);
        s->buf = b;
        s->cap = cap;
    }
    if (n) memcpy(s->buf + s->tail, ids, n * sizeof *ids);
    size_t total = s->tail + n;
    if (total == 0) return 0;
    /* contexts already added again are no-ops: the set keeps one of each */
    for (int k = 0; k < D->n_keys; k++) {
        wm_status st = wm_ctxset_add(D->filter[k], s->buf, total);
        if (st) return die("%s: %s", name, wm_strerror(st));
    }
    s->tail = total < WM_MAX_CONTEXT ? total : WM_MAX_CONTEXT;
    memmove(s->buf, s->buf + total - s->tail, s->tail * sizeof *s->buf);
    return 0;
}

static int plain_part(detector *D, plain_sink *s, const char *name, const wm_token *ids, size_t n, bool last)
{
    if (s->filter) return plain_filter_part(D, s, name, ids, n);
    for (int k = 0; k < D->n_keys; k++) {
        wm_status st = wm_corpus_add_part(D->corpus_mode ? D->corpus[k] : s->doc[k], ids, n, last);
        if (st) return die("%s: %s", name, st == WM_ERR_TOKEN ? "token id outside the key's vocabulary" : wm_strerror(st));
    }
    if (!last || D->corpus_mode) return 0;
    double lp[MAX_KEYS];
    for (int k = 0; k < D->n_keys; k++) {
        wm_score sc;
        wm_corpus_score(s->doc[k], D->alpha, &sc);
        print_score(D, name, k, &sc, NULL, 0);
        lp[k] = sc.log10_p;
    }
    if (D->n_keys > 1) print_family(D, name, lp, 0);
    return 0;
}

static int stream_plain(detector *D, const detect_opts *o, wm_encoder *enc, const char *path, int filter,
                        progress *pr, reader *count)
{
    int is_stdin = !strcmp(path, "-");
    const char *name = is_stdin ? "<stdin>" : path;
    FILE *f = is_stdin ? stdin : fopen(path, "rb");
    if (!f) return die("%s: %s", path, strerror(errno));
    plain_sink s = { .filter = filter };
    char *buf = malloc(PART_BYTES);
    int rc = buf ? 0 : die("%s: out of memory", name);
    for (int k = 0; !rc && !filter && !D->corpus_mode && k < D->n_keys; k++)
        if (wm_corpus_new(&s.doc[k], D->wm[k], D->flags)) rc = die("%s: out of memory", name);
    for (int last = 0; !rc && !last;) {
        size_t got = fread(buf, 1, PART_BYTES, f);
        if (ferror(f)) {
            rc = die("%s: read error: %s", name, strerror(errno));
            break;
        }
        last = got < PART_BYTES;
        const wm_token *ids;
        size_t n;
        wm_error err = { "" };
        wm_status st = wm_encode_stream(enc, buf, got, o->enc_flags, last, &ids, &n, &err);
        if (st) {
            rc = die("%s: %s", name, status_text(st, &err));
            break;
        }
        count->bytes += got;
        pr->tokens += n;
        rc = plain_part(D, &s, name, ids, n, last);
        progress_show(pr, count, 0);
    }
    if (rc) { /* end the unfinished stream: the next file starts afresh */
        const wm_token *ids;
        size_t n;
        wm_encode(enc, "", 0, 0, &ids, &n, NULL);
    }
    pr->docs++;
    for (int k = 0; k < MAX_KEYS; k++) wm_corpus_free(s.doc[k]);
    free(s.buf);
    free(buf);
    if (!is_stdin) fclose(f);
    return rc;
}

/* Feed every document of `files` through the pool; on_doc per document
 * (plain files, when they can be, through stream_plain instead). */
static int stream(detector *D, const detect_opts *o, wm_encoder **enc, char **files, int n_files,
                  int (*on_doc)(detector *, job *, void *), void *arg, unsigned long *skipped, int filter)
{
    if (o->mode == IN_PLAIN && enc && !D->window && !o->skip_bad) {
        progress pr = { isatty(2), now(), 0, 0, 0 };
        reader count = { 0 };
        int rc = 0;
        for (int i = 0; !rc && i < (n_files ? n_files : 1); i++) {
            rc = stream_plain(D, o, enc[0], n_files ? files[i] : "-", filter, &pr, &count);
            if (!rc && (fflush(stdout) != 0 || ferror(stdout))) rc = EXIT_USAGE;
        }
        progress_show(&pr, &count, 1);
        return rc;
    }
    reader r;
    reader_init(&r, o->mode, o->field, o->prompt_field, files, n_files, o->skip_bad, o->lossy);
    job *jobs = calloc(BATCH_DOCS, sizeof *jobs);
    pool p = { jobs, 0, enc, o->n_threads, o->enc_flags };
    progress pr = { isatty(2), now(), 0, 0, 0 };
    int rc = 0, fatal;
    char msg[512];
    while (!rc) {
        p.n_jobs = read_batch(&r, jobs, &fatal, msg, sizeof msg);
        run_pool(&p);
        for (size_t i = 0; i < p.n_jobs && !rc; i++) {
            if (jobs[i].err[0]) {
                if (o->skip_bad) {
                    r.skipped++;
                    continue;
                }
                rc = die("%s", jobs[i].err);
                break;
            }
            rc = on_doc(D, &jobs[i], arg);
            pr.docs++;
            pr.tokens += jobs[i].n;
        }
        free_jobs(jobs, p.n_jobs);
        /* results so far are never lost to a later error; and a broken
         * output stops the run instead of reading on for nothing */
        if (fflush(stdout) != 0 || ferror(stdout)) rc = EXIT_USAGE;
        progress_show(&pr, &r, 0);
        if (!rc && fatal) rc = die("%s", msg);
        if (p.n_jobs == 0) break;
    }
    progress_show(&pr, &r, 1);
    *skipped += r.skipped;
    reader_close(&r);
    free(jobs);
    return rc;
}

static int on_detect(detector *D, job *j, void *arg)
{
    (void)arg;
    return detect_doc(D, j);
}

static int on_filter(detector *D, job *j, void *arg)
{
    (void)arg;
    for (int k = 0; k < D->n_keys; k++) {
        wm_status st = wm_ctxset_add(D->filter[k], j->ids, j->n);
        if (st) return die("%s: %s", j->d.source, wm_strerror(st));
    }
    return 0;
}

static int setup_detector(detector *D, const detect_opts *o, wm_tokenizer **tok_out)
{
    wm_error err = { "" };
    wm_status st;
    wm_tokenizer *tok = NULL;
    unsigned char tsha[32];
    if (o->tok_path) {
        if ((st = wm_tokenizer_load(&tok, o->tok_path, &err))) return die("%s", status_text(st, &err));
        wm_tokenizer_sha256(tok, tsha);
    }
    *tok_out = tok;
    D->n_keys = o->n_keys;
    for (int k = 0; k < o->n_keys; k++) {
        wm_key *key;
        if ((st = wm_key_load(&key, o->keys[k], &err))) return die("%s", status_text(st, &err));
        wm_key_id(key, D->id[k]);
        uint32_t nv;
        unsigned char ksha[32];
        wm_key_tokenizer(key, &nv, ksha);
        uint32_t vocab = tok ? wm_tokenizer_vocab_size(tok) : nv ? nv : o->vocab;
        if (!tok && nv && o->vocab && o->vocab != nv) {
            wm_key_free(key);
            return die("%s: --vocab %u but the key records a vocabulary of %u", o->keys[k], o->vocab, nv);
        }
        if (!vocab) {
            wm_key_free(key);
            return die("%s records no tokenizer: give --tokenizer, or --vocab N for --ids input", o->keys[k]);
        }
        if (tok && nv && (nv != vocab || memcmp(ksha, tsha, 32) != 0)) {
            if (!o->any_tokenizer) {
                wm_key_free(key);
                return die("%s: key was made for another tokenizer (vocabulary %u, this one %u%s); "
                           "--any-tokenizer to use it anyway", o->keys[k], nv, vocab,
                           nv == vocab ? ", different file" : "");
            }
            wm_key_set_tokenizer(key, 0, NULL); /* green lists do not depend on it */
        }
        st = wm_watermark_new(&D->wm[k], key, vocab);
        wm_key_free(key);
        if (st) return die("%s: %s", o->keys[k], wm_strerror(st));
        if (D->corpus_mode && (st = wm_corpus_new(&D->corpus[k], D->wm[k], D->flags)))
            return die("%s", wm_strerror(st));
        if (o->filter_path && (st = wm_ctxset_new(&D->filter[k], D->wm[k]))) return die("%s", wm_strerror(st));
    }
    return 0;
}

static int cmd_detect(int argc, char **argv)
{
    static const struct option opts[] = {
        { "key", required_argument, 0, O_KEY }, { "tokenizer", required_argument, 0, O_TOKENIZER },
        { "jsonl", optional_argument, 0, O_JSONL }, { "ids", no_argument, 0, O_IDS },
        { "prompt-field", required_argument, 0, O_PROMPT }, { "corpus", no_argument, 0, O_CORPUS },
        { "filter", required_argument, 0, O_FILTER }, { "no-dedup", no_argument, 0, O_NODEDUP },
        { "window", no_argument, 0, O_WINDOW }, { "alpha", required_argument, 0, O_ALPHA },
        { "json", no_argument, 0, O_JSON }, { "fail-if-watermarked", no_argument, 0, O_FAIL },
        { "any-tokenizer", no_argument, 0, O_ANY }, { "threads", required_argument, 0, O_THREADS },
        { "skip-bad", no_argument, 0, O_SKIP }, { "lossy", no_argument, 0, O_LOSSY },
        { "vocab", required_argument, 0, O_VOCAB }, { "help", no_argument, 0, O_HELP }, { 0, 0, 0, 0 } };
    detect_opts o = { .field = "text", .n_threads = default_threads(), .mode = IN_PLAIN };
    detector D = { .alpha = 1e-3 };
    int fail_if = 0, c;
    long v;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case O_KEY:
            if (o.n_keys == MAX_KEYS) return die("detect: at most %d keys", MAX_KEYS);
            o.keys[o.n_keys++] = optarg;
            break;
        case O_TOKENIZER: o.tok_path = optarg; break;
        case O_JSONL: o.mode = IN_JSONL; if (optarg) o.field = optarg; break;
        case O_IDS: o.mode = IN_IDS; break;
        case O_PROMPT: o.prompt_field = optarg; break;
        case O_CORPUS: D.corpus_mode = 1; break;
        case O_FILTER: o.filter_path = optarg; break;
        case O_NODEDUP: D.flags |= WM_NO_DEDUP; break;
        case O_WINDOW: D.window = 1; break;
        case O_ALPHA:
            if (!parse_double(optarg, &D.alpha) || !(D.alpha > 0 && D.alpha < 1))
                return die("detect: --alpha '%s': expected a number in (0, 1)", optarg);
            break;
        case O_JSON: D.json = 1; break;
        case O_FAIL: fail_if = 1; break;
        case O_ANY: o.any_tokenizer = 1; break;
        case O_THREADS:
            if (!parse_int(optarg, 1, 64, &v)) return die("detect: --threads '%s': expected 1..64", optarg);
            o.n_threads = (int)v;
            break;
        case O_SKIP: o.skip_bad = 1; break;
        case O_LOSSY: o.enc_flags |= WM_ENC_LOSSY; o.lossy = 1; break;
        case O_VOCAB:
            if (!parse_int(optarg, 1, INT32_MAX, &v)) return die("detect: --vocab '%s': expected 1..2147483647", optarg);
            o.vocab = (uint32_t)v;
            break;
        case O_HELP: fputs(usage_detect, stdout); return 0;
        default: return usage_error("detect");
        }
    }
    if (o.n_keys == 0) return die("detect: --key KEYFILE is required (usage: see `wm detect --help`)");
    if (o.mode != IN_IDS && !o.tok_path) return die("detect: --tokenizer is needed unless the input is --ids");
    if (o.prompt_field && o.mode != IN_JSONL) return die("detect: --prompt-field needs --jsonl");
    if (o.filter_path && !D.corpus_mode) return die("detect: --filter goes with --corpus");
    if (D.window && D.corpus_mode) return die("detect: --window scores single documents, not --corpus");
    if (stdin_uses(argv + optind, argc - optind) + (o.filter_path && !strcmp(o.filter_path, "-")) > 1)
        return die("detect: standard input ('-') given more than once (inputs and --filter)");
    if (o.vocab && o.mode != IN_IDS) return die("detect: --vocab goes with --ids (text inputs take the tokenizer's)");

    wm_tokenizer *tok = NULL;
    wm_encoder *enc[64] = { 0 };
    unsigned long skipped = 0;
    int rc = setup_detector(&D, &o, &tok);
    for (int t = 0; !rc && tok && t < o.n_threads; t++)
        if (wm_encoder_new(&enc[t], tok)) rc = die("out of memory");
    wm_encoder **encp = tok ? enc : NULL;
    if (!rc && o.filter_path) {
        char *ff[1] = { (char *)o.filter_path };
        detect_opts fo = o;
        fo.prompt_field = NULL;
        rc = stream(&D, &fo, encp, ff, 1, on_filter, NULL, &skipped, 1);
        for (int k = 0; !rc && k < D.n_keys; k++) wm_corpus_set_filter(D.corpus[k], D.filter[k]);
    }
    if (!rc) rc = stream(&D, &o, encp, argv + optind, argc - optind, on_detect, NULL, &skipped, 0);
    if (!rc && D.corpus_mode) {
        double lp[MAX_KEYS];
        for (int k = 0; k < D.n_keys; k++) {
            wm_score s;
            wm_corpus_score(D.corpus[k], D.alpha, &s);
            print_score(&D, "corpus", k, &s, NULL, 1);
            lp[k] = s.log10_p;
        }
        if (D.n_keys > 1) print_family(&D, "corpus", lp, 1);
    }
    if (skipped) {
        fprintf(stderr, "wm: skipped %lu malformed input%s\n", skipped, skipped == 1 ? "" : "s");
        if (D.json) printf("{\"skipped\":%lu}\n", skipped);
    }
    for (int k = 0; k < D.n_keys; k++) {
        wm_corpus_free(D.corpus[k]);
        wm_ctxset_free(D.filter[k]);
        wm_watermark_free(D.wm[k]);
    }
    for (int t = 0; t < 64; t++) wm_encoder_free(enc[t]);
    wm_tokenizer_free(tok);
    if (!rc && (fflush(stdout) != 0 || ferror(stdout))) return EXIT_USAGE; /* reported by finish_output */
    if (!rc && fail_if && D.found) return EXIT_FOUND;
    return rc;
}

/* Every command's output goes through here: a write error anywhere (a full
 * disk, a closed pipe, /dev/full) is an error even when the failing write
 * was an early, silently buffered one. */
static int finish_output(int rc)
{
    errno = 0;
    int failed = fflush(stdout) != 0 || ferror(stdout);
    int e = errno;
    if (fclose(stdout) != 0 && !failed) failed = 1, e = errno;
    if (!failed) return rc;
    fprintf(stderr, "wm: writing standard output: %s\n", e ? strerror(e) : "write error");
    return EXIT_USAGE;
}

static int run_command(int argc, char **argv)
{
    if (argc < 2) return fputs(usage_main, stderr), EXIT_USAGE;
    const char *cmd = argv[1];
    if (!strcmp(cmd, "--help") || !strcmp(cmd, "-h") || !strcmp(cmd, "help")) return fputs(usage_main, stdout), 0;
    if (!strcmp(cmd, "--version")) return printf("wm (libwm) %s\n", wm_version()), 0;
    argv[1] = argv[0];
    argc--;
    argv++;
    optind = 1;
    if (!strcmp(cmd, "keygen")) return cmd_keygen(argc, argv);
    if (!strcmp(cmd, "info")) return cmd_info(argc, argv);
    if (!strcmp(cmd, "tokenize")) return cmd_tokenize(argc, argv);
    if (!strcmp(cmd, "detect")) return cmd_detect(argc, argv);
    return die("unknown command '%s'; see `wm --help`", cmd);
}

int main(int argc, char **argv) { return finish_output(run_command(argc, argv)); }
