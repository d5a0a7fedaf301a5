/* What several wm commands share: errors, option parsing, the pool that
 * tokenizes documents on all cores, progress, JSON output. */
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"

int die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("wm: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    return EXIT_USAGE;
}

int parse_double(const char *s, double *out)
{
    char *end;
    errno = 0;
    *out = strtod(s, &end);
    return end != s && !*end && !errno && isfinite(*out);
}

int parse_int(const char *s, long lo, long hi, long *out)
{
    char *end;
    errno = 0;
    *out = strtol(s, &end, 10);
    return end != s && !*end && !errno && *out >= lo && *out <= hi;
}

int usage_error(const char *cmd)
{
    fprintf(stderr, "wm %s: usage error; see `wm %s --help`\n", cmd, cmd);
    return EXIT_USAGE;
}

const char *status_text(wm_status st, const wm_error *err)
{
    return err && err->message[0] ? err->message : wm_strerror(st);
}

/* ---- tokenization, in parallel batches ---------------------------------- */

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
void run_pool(pool *p)
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

void free_jobs(job *jobs, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        doc_free(&jobs[i].d);
        free(jobs[i].ids);
        memset(&jobs[i], 0, sizeof jobs[i]);
    }
}

size_t read_batch(reader *r, job *jobs, int *fatal, char *err, size_t errlen)
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

double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

void progress_show(progress *pr, const reader *r, int final)
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

/* ---- output ---------------------------------------------------------------- */

/* A JSON string; bytes that are not UTF-8 (file names may hold any) become
 * U+FFFD, so the output is always valid JSON: callers that must not lose
 * the bytes add them in hex (print_source). */
void print_json_string(FILE *f, const char *s, size_t n)
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

/* The tokenizer's libraries as wm_tokenizer_version reports them: `"name":"version",...`
 * (json) or `name version, ...`.  A version string the JSON could not hold as
 * it is (a quote, a backslash, a control byte) is refused, not altered. */
int tokenizer_versions(char *out, size_t n, int json)
{
    size_t len = 0;
    out[0] = '\0';
    for (size_t i = 0; i < wm_tokenizer_n_versions(); i++) {
        const char *name, *version;
        wm_status st = wm_tokenizer_version(i, &name, &version);
        if (st) return die("tokenizer library versions: %s", wm_strerror(st));
        for (const char *c = version; *c; c++)
            if (*c == '"' || *c == '\\' || *c < ' ' || *c > '~')
                return die("tokenizer library versions: %s reports an unprintable version", name);
        int k = snprintf(out + len, n - len, json ? "%s\"%s\":\"%s\"" : "%s%s %s", i ? (json ? "," : ", ") : "",
                         name, version);
        if (k < 0 || (size_t)k >= n - len) return die("tokenizer library versions: longer than %zu bytes", n);
        len += (size_t)k;
    }
    return 0;
}

/* Standard input can be read once: `- -`, or `--filter -` with stdin as an
 * input, would find it empty the second time and score nothing. */
int stdin_uses(char **files, int n_files)
{
    int n = n_files == 0;
    for (int i = 0; i < n_files; i++) n += !strcmp(files[i], "-");
    return n;
}

int default_threads(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n < 1 ? 1 : n > 64 ? 64 : (int)n;
}
