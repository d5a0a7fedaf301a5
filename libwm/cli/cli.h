/* The wm command's shared parts: one file per command (keygen.c, info.c,
 * tokenize.c, detect.c, read.c, audit.c), main.c to dispatch, common.c for what several use
 * (errors, option parsing, the tokenization pool, progress, JSON output). */
#ifndef WM_CLI_H
#define WM_CLI_H

#include <stdio.h>
#include <wm.h>

#include "input.h"

#define EXIT_FOUND 1 /* a watermark was found (--fail-if-watermarked) */
#define EXIT_USAGE 2 /* usage, input or output error */
#define MAX_KEYS 16
#define BATCH_DOCS 256
#define BATCH_BYTES (16u << 20)

/* "wm: " + message on stderr; returns EXIT_USAGE. */
int die(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* A usage mistake: one line, pointing at the help. */
int usage_error(const char *cmd);
int parse_double(const char *s, double *out);
int parse_int(const char *s, long lo, long hi, long *out);
const char *status_text(wm_status st, const wm_error *err);

enum {
    O_GAMMA = 256, O_DELTA, O_CTX, O_SCHEME, O_SEEDING, O_TOKENIZER, O_JSON, O_JSONL, O_PIECES, O_KEY, O_IDS,
    O_PROMPT, O_CORPUS, O_FILTER, O_NODEDUP, O_WINDOW, O_ALPHA, O_FAIL, O_ANY, O_THREADS, O_SKIP,
    O_HELP, O_SPECIAL, O_LOSSY, O_VOCAB, O_AUDIT, O_TARGET, O_WEIGHTED, O_ACCOUNTS, O_TOP,
    O_ACCOUNT_DELTA
};

/* ---- tokenization, in parallel batches (common.c) ---- */

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

void run_pool(pool *p);
void free_jobs(job *jobs, size_t n);
/* Read up to a batch of documents.  Returns the count; *fatal set on error. */
size_t read_batch(reader *r, job *jobs, int *fatal, char *err, size_t errlen);

typedef struct progress { int on; double t0, last; unsigned long docs; unsigned long long tokens; } progress;
double now(void);
void progress_show(progress *pr, const reader *r, int final);

/* A JSON string; bytes that are not UTF-8 become U+FFFD. */
void print_json_string(FILE *f, const char *s, size_t n);
/* The tokenizer's library and Unicode versions, into out (n bytes): the
 * members of a JSON object (json) or one line of text.  0, or die()'s code. */
#define VERSIONS_MAX 512
int tokenizer_versions(char *out, size_t n, int json);
/* How many of the inputs name standard input (none given: it is one). */
int stdin_uses(char **files, int n_files);
int default_threads(void);

/* ---- wm detect --accounts (accounts.c) ---- */

/* The ids of an accounts file (one per line, its last field; '#'
 * comments), into a malloc'd *ids.  Errors name the file and line. */
int load_accounts(const char *path, uint64_t **ids, size_t *n);
/* wm_corpus_attribute over ids, printed (text or one JSON line); *found |=
 * whether an account is named. */
int print_attribution(const wm_corpus *c, const char *key_id, const uint64_t *ids, size_t n, size_t k, double alpha,
                      int json, int *found);

int cmd_keygen(int argc, char **argv);
int cmd_info(int argc, char **argv);
int cmd_tokenize(int argc, char **argv);
int cmd_detect(int argc, char **argv);
int cmd_read(int argc, char **argv);
int cmd_audit(int argc, char **argv);

#endif
