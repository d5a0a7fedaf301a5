/* wm detect: the watermark test over documents, a corpus, several keys. */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"

static const char usage_detect[] =
    "usage: wm detect --key KEYFILE [--key KEYFILE...] [--tokenizer TOKENIZER.json]\n"
    "                 [--jsonl[=FIELD] | --ids] [--prompt-field NAME] [--corpus]\n"
    "                 [--filter FILE] [--no-dedup] [--window] [--alpha A] [--json]\n"
    "                 [--fail-if-watermarked] [--any-tokenizer] [--threads N]\n"
    "                 [--skip-bad] [--lossy] [--vocab N] [--audit N [--target P]]\n"
    "                 [--accounts FILE [--top N]]\n"
    "                 [--checkpoint FILE [--checkpoint-every SECONDS]]\n"
    "                 [--dask SCHEDULER] [FILE...]\n"
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
    "                      tokenizer (ids >= N are an error)\n"
    "  --audit N           sequential audit of a corpus (implies --corpus, one key):\n"
    "                      a look after every N documents and at the end, each with\n"
    "                      an anytime-valid p-value (valid however you decide when to\n"
    "                      stop querying), the green-rate excess with its confidence\n"
    "                      sequence, and the suspect tokens still needed for --target\n"
    "  --target P          the p-value the audit plans for (default 1e-6)\n"
    "  --accounts FILE     attribution (implies --corpus, one key with an account\n"
    "                      layer): which of the account ids in FILE (one a line, the\n"
    "                      line's last field) fed the corpus.  Null for an account:\n"
    "                      its outputs were not used (others' may have been, in any\n"
    "                      share); its p-value is exact given the corpus, and an\n"
    "                      account is NAMED when p times the number of ids is below\n"
    "                      --alpha, so the chance of naming any account that fed\n"
    "                      nothing is at most alpha\n"
    "  --top N             accounts reported, best first (default 10)\n"
    "  --checkpoint FILE   --corpus with one key: keep the corpus's state in FILE\n"
    "                      (after each input file and every --checkpoint-every\n"
    "                      seconds, default 60, between documents); when FILE\n"
    "                      exists the run resumes from it, and the result is the\n"
    "                      one an uninterrupted run gives.  FILE is refused when it\n"
    "                      belongs to another key, tokenizer, filter, flags, input\n"
    "                      format or other inputs (names, sizes, times)\n"
    "  --dask SCHEDULER    --corpus --json --ids on a Dask cluster: runs wm-dask\n"
    "                      (docs/CLUSTER.md; $WM_DASK, else wm-dask on PATH) with\n"
    "                      --scheduler SCHEDULER and the other options; the same\n"
    "                      output, bit for bit (--key, --vocab, --filter, --alpha,\n"
    "                      --audit, --target, --accounts, --top)\n";

/* Options of this command only (cli.h's are shared). */
enum { O_CHECKPOINT = 1024, O_CHECKPOINT_EVERY };

/* --checkpoint: the corpus's state (wm_corpus_save) with, as its caller
 * data, `config` (every input and option the state depends on that the
 * library does not check itself, one per line) and a last line
 * "docs N looks L": the documents of the inputs already in the state. */
typedef struct ckpt {
    const char *path;
    double every, last;
    unsigned long long done, skip; /* documents fed (restored ones included); still to pass over */
    char *config;
    size_t config_len;
} ckpt;


typedef struct detector {
    int n_keys;
    wm_watermark *wm[MAX_KEYS];
    char id[MAX_KEYS][WM_KEY_ID_SIZE];
    const char *scheme[MAX_KEYS]; /* static strings */
    unsigned caps[MAX_KEYS];      /* their WM_CAP_* bits */
    wm_corpus *corpus[MAX_KEYS];
    wm_ctxset *filter[MAX_KEYS];
    int json, window, corpus_mode;
    unsigned flags;
    double alpha;
    long audit_every;          /* --audit: documents per look (0: off) */
    uint64_t *accounts;        /* --accounts: the ids searched */
    size_t n_accounts;
    long top;
    double target;
    unsigned long docs, looks;
    int found, header_done;
    ckpt *ck;                  /* --checkpoint, or NULL */
    char tok_versions[VERSIONS_MAX]; /* text tokenized: the tokenizer's libraries (JSON members); else "" */
} detector;

/* The tokenizer's library versions in a JSON line, when one tokenized the input. */
static void print_tok_versions(const detector *D)
{
    if (D->tok_versions[0]) printf(",\"tokenizer_versions\":{%s}", D->tok_versions);
}

static int ckpt_save(detector *D)
{
    ckpt *ck = D->ck;
    char tail[96];
    int t = snprintf(tail, sizeof tail, "docs %llu looks %lu\n", ck->done, D->looks);
    size_t n = ck->config_len + (size_t)t;
    char *meta = malloc(n);
    if (!meta) return die("%s: out of memory", ck->path);
    memcpy(meta, ck->config, ck->config_len);
    memcpy(meta + ck->config_len, tail, (size_t)t);
    wm_error err = { "" };
    wm_status st = wm_corpus_save(D->corpus[0], ck->path, meta, n, &err);
    free(meta);
    if (st) return die("checkpoint: %s", status_text(st, &err));
    ck->last = now();
    return 0;
}

/* Between documents: a checkpoint when the interval has passed (force:
 * after an input file). */
static int ckpt_maybe(detector *D, int force)
{
    if (!D->ck || D->ck->skip) return 0;
    if (!force && now() - D->ck->last < D->ck->every) return 0;
    return ckpt_save(D);
}

/* The state in ck->path, if there is one, into D->corpus[0]. */
static int ckpt_resume(detector *D)
{
    ckpt *ck = D->ck;
    struct stat sb;
    if (stat(ck->path, &sb) != 0) {
        if (errno == ENOENT) return 0; /* a fresh run */
        return die("%s: %s", ck->path, strerror(errno));
    }
    char *meta = malloc(WM_CHECKPOINT_META + 1);
    if (!meta) return die("%s: out of memory", ck->path);
    size_t n = 0;
    wm_error err = { "" };
    wm_status st = wm_corpus_load(D->corpus[0], ck->path, meta, WM_CHECKPOINT_META, &n, &err);
    if (st) {
        free(meta);
        return die("checkpoint: %s", status_text(st, &err));
    }
    meta[n] = 0;
    size_t cfg = n ? n - 1 : 0; /* the start of the last line */
    while (cfg > 0 && meta[cfg - 1] != '\n') cfg--;
    unsigned long long docs;
    unsigned long looks;
    char end;
    if (sscanf(meta + cfg, "docs %llu looks %lu%c", &docs, &looks, &end) != 3 || end != '\n') {
        free(meta);
        return die("%s: byte %zu of its caller data: no \"docs N looks L\" line: not a wm detect checkpoint",
                   ck->path, cfg);
    }
    if (cfg != ck->config_len || memcmp(meta, ck->config, cfg) != 0) {
        /* the first line that differs, as it was and as it is */
        size_t i = 0, line = 1;
        while (i < cfg && i < ck->config_len && meta[i] == ck->config[i]) line += meta[i++] == '\n';
        size_t a = i, b = i;
        while (a > 0 && meta[a - 1] != '\n') a--;
        b = a;
        size_t ea = a, eb = b;
        while (ea < cfg && meta[ea] != '\n') ea++;
        while (eb < ck->config_len && ck->config[eb] != '\n') eb++;
        int rc = die("%s: checkpoint of another run (line %zu of its description: it has \"%.*s\", this run "
                     "\"%.*s\"); give another --checkpoint file, or remove this one to start afresh",
                     ck->path, line, (int)(ea - a), meta + a, (int)(eb - b), ck->config + b);
        free(meta);
        return rc;
    }
    free(meta);
    ck->done = ck->skip = docs;
    D->docs = (unsigned long)docs;
    D->looks = looks;
    fprintf(stderr, "wm: resuming from %s: %llu document%s already counted\n", ck->path, docs,
            docs == 1 ? "" : "s");
    return 0;
}

/* What the state depends on beyond key, vocabulary, flags and filter. */
static int ckpt_config(ckpt *ck, const char *mode, const char *field, const char *prompt_field, int lossy,
                       const char *tok_path, char **files, int n_files)
{
    size_t cap = 4096, n = 0;
    char *b = malloc(cap);
    if (!b) return die("out of memory");
#define CK_ADD(...)                                                                   \
    do {                                                                               \
        int w_;                                                                        \
        while ((w_ = snprintf(b + n, cap - n, __VA_ARGS__)) >= 0 && (size_t)w_ >= cap - n) { \
            char *nb = realloc(b, cap *= 2);                                          \
            if (!nb) { free(b); return die("out of memory"); }                        \
            b = nb;                                                                    \
        }                                                                              \
        n += (size_t)w_;                                                               \
    } while (0)
    CK_ADD("wm detect checkpoint 1\nmode %s\nfield %s\nprompt-field %s\nlossy %d\ntokenizer ", mode,
           field ? field : "-", prompt_field ? prompt_field : "-", lossy);
    if (tok_path) {
        wm_tokenizer *tok;
        wm_error err = { "" };
        unsigned char sha[32];
        wm_status st = wm_tokenizer_load(&tok, tok_path, &err);
        if (st) {
            free(b);
            return die("%s", status_text(st, &err));
        }
        st = wm_tokenizer_sha256(tok, sha);
        wm_tokenizer_free(tok);
        if (st) {
            free(b);
            return die("%s: %s", tok_path, wm_strerror(st));
        }
        for (int i = 0; i < 32; i++) CK_ADD("%02x", sha[i]);
        /* the ids of rare characters depend on these: a resume after an upgrade is refused */
        char versions[VERSIONS_MAX];
        if (tokenizer_versions(versions, sizeof versions, 0)) {
            free(b);
            return EXIT_USAGE;
        }
        CK_ADD(" %s", versions);
    } else {
        CK_ADD("-");
    }
    CK_ADD("\n");
    for (int i = 0; i < n_files; i++) {
        struct stat sb;
        if (!strcmp(files[i], "-")) {
            free(b);
            return die("--checkpoint: standard input cannot be read again on resume: name the files");
        }
        if (stat(files[i], &sb) != 0) {
            int e = errno;
            free(b);
            return die("%s: %s", files[i], strerror(e));
        }
        CK_ADD("input %s %lld %lld.%09ld\n", files[i], (long long)sb.st_size, (long long)sb.st_mtim.tv_sec,
               (long)sb.st_mtim.tv_nsec);
    }
#undef CK_ADD
    if (n > WM_CHECKPOINT_META - 100) {
        free(b);
        return die("--checkpoint: too many inputs to describe in a checkpoint (%zu bytes)", n);
    }
    ck->config = b;
    ck->config_len = n;
    return 0;
}

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
    double adj, mean = s->scored ? s->statistic / (double)s->scored : 0;
    int verdict = row_verdict(D, s, &adj);
    if (verdict > 0) D->found = 1;
    if (D->json) {
        print_source(source);
        printf(",\"key_id\":\"%s\",\"scheme\":\"%s\",\"tokens\":%llu,\"scored\":%llu,\"statistic\":%.17g,"
               "\"mean_score\":%.17g,\"z\":%.17g,\"p_value\":%.17g,\"log10_p\":%.17g,\"watermarked\":%s",
               D->id[k], D->scheme[k], (unsigned long long)s->tokens, (unsigned long long)s->scored, s->statistic,
               mean, s->z, s->p_value, s->log10_p, verdict_json(verdict));
        if (D->caps[k] & WM_CAP_GREEN_LIST) /* the green list's own names for the same numbers */
            printf(",\"green\":%.0f,\"green_fraction\":%.17g", s->statistic, mean);
        if (D->n_keys > 1) printf(",\"log10_p_corrected\":%.17g,\"keys\":%d", adj, D->n_keys);
        if (verdict < 0) printf(",\"p_value_valid\":false");
        if (w) printf(",\"window_begin\":%zu,\"window_end\":%zu,\"windows_tested\":%llu", w->begin, w->end,
                      (unsigned long long)w->n_tests);
        if (corpus) printf(",\"corpus\":true");
        print_tok_versions(D);
        printf("}\n");
        return;
    }
    const char *vtext = verdict < 0 ? "no verdict (--no-dedup: p not valid)" : verdict ? "WATERMARKED" : "-";
    if (corpus) {
        char p[64];
        if (s->p_value > 0) snprintf(p, sizeof p, "p = %.2g", s->p_value);
        else snprintf(p, sizeof p, "p = 10^%.1f", s->log10_p);
        printf("%s: %s over %llu %stuples (%s %.4f, z %.2f, key %s, %s)",
               verdict < 0 ? "no verdict (--no-dedup: p not valid)" : verdict ? "watermark present" : "no watermark detected",
               p, (unsigned long long)s->scored, verdict < 0 ? "" : "unique ",
               D->caps[k] & WM_CAP_GREEN_LIST ? "green" : "mean score", mean, s->z, D->id[k], D->scheme[k]);
        if (D->n_keys > 1) printf(" [corrected for %d keys: log10 p = %.2f]", D->n_keys, adj);
        putchar('\n');
        return;
    }
    if (!D->header_done) {
        printf("%-40s %-16s %8s %8s %7s %8s %10s  %s\n", "source", "key", "tokens", "scored", "score", "z",
               D->n_keys > 1 ? "log10(pK)" : "log10(p)", "verdict");
        D->header_done = 1;
    }
    size_t n = strlen(source);
    const char *tail = n > 40 ? source + n - 37 : source;
    printf("%s%-*s %-16s %8llu %8llu %7.4f %8.2f %10.2f  %s", n > 40 ? "..." : "", n > 40 ? 37 : 40, tail, D->id[k],
           (unsigned long long)s->tokens, (unsigned long long)s->scored, mean, s->z,
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
        printf(",\"family\":true,\"keys\":%d,\"log10_p\":%.17g,\"p_value\":%.17g,\"watermarked\":%s%s%s",
               D->n_keys, fw, pow(10, fw), verdict_json(verdict), verdict < 0 ? ",\"p_value_valid\":false" : "",
               corpus ? ",\"corpus\":true" : "");
        print_tok_versions(D);
        printf("}\n");
    } else {
        printf("%s%s: family-wise over %d keys: log10 p = %.2f: %s\n", corpus ? "" : "  ", source, D->n_keys, fw,
               verdict < 0 ? "no verdict (--no-dedup)" : verdict ? "WATERMARKED" : "no watermark");
    }
}

/* A number for JSON: null when it is not finite. */
static void json_num(const char *name, double v)
{
    if (isfinite(v)) printf(",\"%s\":%.17g", name, v);
    else printf(",\"%s\":null", name);
}

/* One look of the sequential audit (key 0). */
static int print_audit(detector *D, int final)
{
    wm_audit a = WM_INIT(wm_audit);
    if (wm_corpus_audit(D->corpus[0], D->alpha, D->target, &a)) return die("audit: invalid corpus state");
    const wm_score *f = &a.fixed;
    D->looks++;
    if (a.watermarked) D->found = 1;
    if (D->json) {
        printf("{\"source\":\"audit\",\"look\":%lu,\"final\":%s,\"key_id\":\"%s\",\"scheme\":\"%s\",\"documents\":%lu,"
               "\"tokens\":%llu,\"scored\":%llu,\"statistic\":%.17g,\"log10_p\":%.17g,\"watermarked\":%s,"
               "\"fixed_log10_p\":%.17g,\"target\":%.17g",
               D->looks, final ? "true" : "false", D->id[0], D->scheme[0], D->docs, (unsigned long long)f->tokens,
               (unsigned long long)f->scored, f->statistic, a.log10_p, a.watermarked ? "true" : "false", f->log10_p,
               D->target);
        json_num("excess", a.excess);
        json_num("excess_lo", a.excess_lo);
        json_num("excess_hi", a.excess_hi);
        json_num("more_tuples", a.more_tuples);
        json_num("more_tokens", a.more_tokens);
        json_num("more_tokens_fixed", a.more_tokens_fixed);
        print_tok_versions(D);
        printf("}\n");
        return 0;
    }
    printf("%s %lu: %lu docs, %llu tokens, %llu unique tuples, excess %+.4f", final ? "final" : "look", D->looks,
           D->docs, (unsigned long long)f->tokens, (unsigned long long)f->scored, a.excess);
    if (isfinite(a.excess_lo)) printf(" [%+.4f, %+.4f]", a.excess_lo, a.excess_hi);
    printf("; log10 p %.2f anytime (fixed-n %.2f): %s", a.log10_p, f->log10_p,
           a.watermarked ? "WATERMARKED" : "-");
    if (a.log10_p > log10(D->target)) {
        if (isfinite(a.more_tokens))
            printf("; to p %.0e about %.3g more tokens (a fixed-n test planned now: %.3g)", D->target, a.more_tokens,
                   a.more_tokens_fixed);
        else
            printf("; no excess yet: no projection");
    }
    putchar('\n');
    return 0;
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
        wm_score s = WM_INIT(wm_score);
        wm_window w = WM_INIT(wm_window);
        if (D->window) st = wm_detect_window(D->wm[k], j->ids, j->n, j->n_prompt, D->flags, D->alpha, &w), s = w.score;
        else st = wm_detect(D->wm[k], j->ids, j->n, j->n_prompt, D->flags, D->alpha, &s);
        if (st) return die("%s: %s", j->d.source, st == WM_ERR_TOKEN ? "token id outside the key's vocabulary" : wm_strerror(st));
        print_score(D, j->d.source, k, &s, D->window ? &w : NULL, 0);
        lp[k] = s.log10_p;
    }
    if (!D->corpus_mode && D->n_keys > 1) print_family(D, j->d.source, lp, 0);
    D->docs++;
    if (D->audit_every && D->docs % (unsigned long)D->audit_every == 0) return print_audit(D, 0);
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
        wm_score sc = WM_INIT(wm_score);
        if (wm_corpus_score(s->doc[k], D->alpha, &sc)) return die("%s: cannot score", name);
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
        if (wm_encode(enc, "", 0, 0, &ids, &n, NULL)) rc = EXIT_USAGE; /* cannot fail on "" */
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
    if (o->mode == IN_PLAIN && enc && !D->window && !D->audit_every && !o->skip_bad) {
        progress pr = { isatty(2), now(), 0, 0, 0 };
        reader count = { 0 };
        int rc = 0;
        for (int i = 0; !rc && i < (n_files ? n_files : 1); i++) {
            if (!filter && D->ck && D->ck->skip) { /* in the checkpoint already */
                D->ck->skip--;
                continue;
            }
            rc = stream_plain(D, o, enc[0], n_files ? files[i] : "-", filter, &pr, &count);
            if (!rc && (fflush(stdout) != 0 || ferror(stdout))) rc = EXIT_USAGE;
            if (!rc && !filter && D->ck) {
                D->ck->done++;
                rc = ckpt_maybe(D, 1);
            }
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
    int file = r.next_file;
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
            if (!filter && D->ck && D->ck->skip) { /* in the checkpoint already */
                D->ck->skip--;
                continue;
            }
            rc = on_doc(D, &jobs[i], arg);
            pr.docs++;
            pr.tokens += jobs[i].n;
            if (!filter && D->ck) D->ck->done++;
        }
        free_jobs(jobs, p.n_jobs);
        if (!rc && !filter && !fatal) { /* between documents: at intervals, and when a file is done */
            rc = ckpt_maybe(D, r.next_file != file);
            file = r.next_file;
        }
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
    uint32_t tok_vocab = 0;
    if (o->tok_path) {
        if ((st = wm_tokenizer_load(&tok, o->tok_path, &err))) return die("%s", status_text(st, &err));
        if ((st = wm_tokenizer_sha256(tok, tsha)) || (st = wm_tokenizer_n_vocab(tok, &tok_vocab)))
            return die("%s: %s", o->tok_path, wm_strerror(st));
        /* text input: the ids scored depend on these libraries' Unicode tables */
        if (o->mode != IN_IDS && tokenizer_versions(D->tok_versions, sizeof D->tok_versions, 1)) return EXIT_USAGE;
    }
    *tok_out = tok;
    D->n_keys = o->n_keys;
    for (int k = 0; k < o->n_keys; k++) {
        wm_key *key;
        if ((st = wm_key_load(&key, o->keys[k], &err))) return die("%s", status_text(st, &err));
        uint32_t nv;
        unsigned char ksha[32];
        wm_params kp = WM_INIT(wm_params);
        if ((st = wm_key_id(key, D->id[k])) || (st = wm_key_tokenizer(key, &nv, ksha)) ||
            (st = wm_key_params(key, &kp)) || (st = wm_scheme_caps(kp.scheme, &D->caps[k]))) {
            wm_key_free(key);
            return die("%s: %s", o->keys[k], wm_strerror(st));
        }
        D->scheme[k] = kp.scheme;
        uint32_t vocab = tok ? tok_vocab : nv ? nv : o->vocab;
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
            if ((st = wm_key_set_tokenizer(key, 0, NULL))) { /* PRF values do not depend on it */
                wm_key_free(key);
                return die("%s: %s", o->keys[k], wm_strerror(st));
            }
        }
        st = wm_watermark_new(&D->wm[k], key, vocab);
        wm_key_free(key);
        if (st) return die("%s: %s", o->keys[k], wm_strerror(st));
        if (D->corpus_mode && (st = wm_corpus_new(&D->corpus[k], D->wm[k], D->flags)))
            return die("%s: %s", o->keys[k],
                       st == WM_ERR_UNSUPPORTED ? "the key has no account layer (keygen --account-delta)"
                                                : wm_strerror(st));
        if (o->filter_path && (st = wm_ctxset_new(&D->filter[k], D->wm[k]))) return die("%s", wm_strerror(st));
    }
    return 0;
}

/* --dask SCHEDULER: the corpus test on a Dask cluster is libwm.dask's
 * (Python, distributed), so detect hands over to wm-dask: the same
 * arguments less --dask, --corpus, --json and --ids (wm-dask's input and
 * output are those), with --scheduler SCHEDULER.  Returns only on an error. */
static int exec_dask(int argc, char **argv)
{
    const char *sched = NULL;
    int has_ids = 0, has_json = 0, n = 0;
    char **args = calloc((size_t)argc + 4, sizeof *args);
    if (!args) return die("detect: out of memory");
    const char *prog = getenv("WM_DASK");
    if (!prog || !*prog) prog = "wm-dask";
    args[n++] = (char *)prog;
    n += 2; /* --scheduler SCHEDULER, first */
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--dask") && i + 1 < argc) sched = argv[++i];
        else if (!strncmp(argv[i], "--dask=", 7)) sched = argv[i] + 7;
        else if (!strcmp(argv[i], "--ids")) has_ids = 1;
        else if (!strcmp(argv[i], "--json")) has_json = 1;
        else if (strcmp(argv[i], "--corpus")) args[n++] = argv[i];
    }
    if (!sched || !*sched) {
        free(args);
        return die("detect: --dask SCHEDULER: expected the scheduler's address (tcp://host:8786)");
    }
    if (!has_ids || !has_json) {
        free(args);
        return die("detect: --dask takes --ids --json input and output (tokenize with `wm tokenize` first)");
    }
    args[1] = "--scheduler";
    args[2] = (char *)sched;
    args[n] = NULL;
    fflush(stdout);
    execvp(prog, args);
    int e = errno;
    free(args);
    return die("detect: --dask: cannot run %s (%s): install libwm with its Python package (meson install), "
               "or set WM_DASK", prog, strerror(e));
}

int cmd_detect(int argc, char **argv)
{
    for (int i = 1; i < argc && strcmp(argv[i], "--"); i++) {
        if (!strcmp(argv[i], "--dask") || !strncmp(argv[i], "--dask=", 7)) return exec_dask(argc, argv);
    }
    static const struct option opts[] = {
        { "key", required_argument, 0, O_KEY }, { "tokenizer", required_argument, 0, O_TOKENIZER },
        { "jsonl", optional_argument, 0, O_JSONL }, { "ids", no_argument, 0, O_IDS },
        { "prompt-field", required_argument, 0, O_PROMPT }, { "corpus", no_argument, 0, O_CORPUS },
        { "filter", required_argument, 0, O_FILTER }, { "no-dedup", no_argument, 0, O_NODEDUP },
        { "window", no_argument, 0, O_WINDOW }, { "alpha", required_argument, 0, O_ALPHA },
        { "json", no_argument, 0, O_JSON }, { "fail-if-watermarked", no_argument, 0, O_FAIL },
        { "any-tokenizer", no_argument, 0, O_ANY }, { "threads", required_argument, 0, O_THREADS },
        { "skip-bad", no_argument, 0, O_SKIP }, { "lossy", no_argument, 0, O_LOSSY },
        { "vocab", required_argument, 0, O_VOCAB }, { "audit", required_argument, 0, O_AUDIT },
        { "target", required_argument, 0, O_TARGET }, { "accounts", required_argument, 0, O_ACCOUNTS },
        { "top", required_argument, 0, O_TOP }, { "help", no_argument, 0, O_HELP },
        { "checkpoint", required_argument, 0, O_CHECKPOINT },
        { "checkpoint-every", required_argument, 0, O_CHECKPOINT_EVERY }, { 0, 0, 0, 0 } };
    detect_opts o = { .field = "text", .n_threads = default_threads(), .mode = IN_PLAIN };
    detector D = { .alpha = 1e-3, .top = -1 };
    const char *accounts_path = NULL;
    ckpt ck = { .every = -1 };
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
        case O_AUDIT:
            if (!parse_int(optarg, 1, LONG_MAX, &D.audit_every))
                return die("detect: --audit '%s': expected a number of documents >= 1", optarg);
            D.corpus_mode = 1;
            break;
        case O_TARGET:
            if (!parse_double(optarg, &D.target) || !(D.target > 0 && D.target < 1))
                return die("detect: --target '%s': expected a number in (0, 1)", optarg);
            break;
        case O_ACCOUNTS:
            accounts_path = optarg;
            D.corpus_mode = 1;
            break;
        case O_TOP:
            if (!parse_int(optarg, 0, 1000000, &D.top)) return die("detect: --top '%s': expected 0..1000000", optarg);
            break;
        case O_CHECKPOINT: ck.path = optarg; break;
        case O_CHECKPOINT_EVERY:
            if (!parse_double(optarg, &ck.every) || !(ck.every >= 0 && ck.every <= 1e9))
                return die("detect: --checkpoint-every '%s': expected seconds >= 0", optarg);
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
    if (D.audit_every && (o.n_keys != 1 || (D.flags & WM_NO_DEDUP) || D.window))
        return die("detect: --audit takes one key, and neither --no-dedup nor --window");
    if (D.target && !D.audit_every) return die("detect: --target goes with --audit");
    if (!D.target) D.target = 1e-6;
    if (accounts_path && (o.n_keys != 1 || (D.flags & WM_NO_DEDUP) || D.window || D.audit_every))
        return die("detect: --accounts takes one key, and none of --no-dedup, --window, --audit");
    if (D.top >= 0 && !accounts_path) return die("detect: --top goes with --accounts");
    if (D.top < 0) D.top = 10;
    if (accounts_path) {
        int r = load_accounts(accounts_path, &D.accounts, &D.n_accounts);
        if (r) return r;
        D.flags |= WM_ACCOUNTS;
    }
    if (o.vocab && o.mode != IN_IDS) return die("detect: --vocab goes with --ids (text inputs take the tokenizer's)");
    if (ck.every >= 0 && !ck.path) return die("detect: --checkpoint-every goes with --checkpoint");
    if (ck.path && (!D.corpus_mode || o.n_keys != 1 || o.skip_bad))
        return die("detect: --checkpoint takes --corpus (or --audit, --accounts) with one key, and not --skip-bad");
    if (ck.path) {
        if (ck.every < 0) ck.every = 60;
        ck.last = now();
        if (ckpt_config(&ck, o.mode == IN_IDS ? "ids" : o.mode == IN_JSONL ? "jsonl" : "plain",
                        o.mode == IN_JSONL ? o.field : NULL, o.prompt_field, o.lossy, o.tok_path, argv + optind,
                        argc - optind))
            return EXIT_USAGE;
        if (argc == optind) {
            free(ck.config);
            return die("--checkpoint: standard input cannot be read again on resume: name the files");
        }
        D.ck = &ck;
    }

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
        for (int k = 0; !rc && k < D.n_keys; k++)
            if (wm_corpus_set_filter(D.corpus[k], D.filter[k])) rc = die("--filter: invalid corpus state");
    }
    if (!rc && D.ck) rc = ckpt_resume(&D);
    if (!rc) rc = stream(&D, &o, encp, argv + optind, argc - optind, on_detect, NULL, &skipped, 0);
    if (!rc && D.ck && D.ck->skip)
        rc = die("%s: the checkpoint counts %llu documents more than the inputs hold", D.ck->path, D.ck->skip);
    if (!rc && D.ck) rc = ckpt_save(&D); /* the whole run: a rerun only reports */
    if (!rc && D.audit_every) {
        rc = print_audit(&D, 1);
    } else if (!rc && D.corpus_mode) {
        double lp[MAX_KEYS];
        for (int k = 0; k < D.n_keys; k++) {
            wm_score s = WM_INIT(wm_score);
            if (wm_corpus_score(D.corpus[k], D.alpha, &s)) return die("corpus: cannot score");
            print_score(&D, "corpus", k, &s, NULL, 1);
            lp[k] = s.log10_p;
        }
        if (D.n_keys > 1) print_family(&D, "corpus", lp, 1);
        if (D.accounts)
            rc = print_attribution(D.corpus[0], D.id[0], D.accounts, D.n_accounts, (size_t)D.top, D.alpha, D.json,
                                   &D.found);
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
    free(D.accounts);
    free(ck.config);
    wm_tokenizer_free(tok);
    if (!rc && (fflush(stdout) != 0 || ferror(stdout))) return EXIT_USAGE; /* reported by finish_output */
    if (!rc && fail_if && D.found) return EXIT_FOUND;
    return rc;
}
