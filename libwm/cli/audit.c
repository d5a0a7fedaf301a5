/* wm audit: test a suspect model for the watermark through its own
 * OpenAI-compatible API, journaling every request and response.
 *
 * Modes and their null hypotheses (also in `wm audit --help` and
 * docs/AUDIT.md):
 *
 *  answers   the suspect answers the prompts; its answers are scored as in
 *            `wm detect --corpus` (optionally --filter), with the
 *            anytime-valid audit after each batch (detect.h, "sequential
 *            audit").  H0: the suspect's answers were produced without
 *            knowledge of the key.  The anytime p is valid whenever the run
 *            stops (target reached, budget spent, interrupted).
 *  logprobs  the suspect answers with the top-k log-probabilities of each
 *            generated token; each top-k row is read in reading mode at the
 *            position of the suspect's own text where it was predicted
 *            (detect.h, "reading mode"; first-occurrence rule).  H0: the
 *            suspect's weights are independent of the key; under H0 its
 *            text is too, so each read tuple is exact.
 *  prompt    the suspect is teacher-forced on the provider's own watermarked
 *            outputs through vLLM's prompt_logprobs; its top-k (rank <= k
 *            only: vLLM adds the prompt's own token whatever its rank, and
 *            that token is kept out) at each position is read in reading
 *            mode.  H0: the suspect's weights are independent of the key.
 *  prefix    the same without prompt_logprobs: one one-token request per
 *            answer position, the prompt being the provider's token ids
 *            before it (llama.cpp's cache_prompt makes growing prefixes
 *            cheap; the suspect must share the provider's tokenizer, as
 *            the ids are sent).  H0 as for prompt.
 * The reading modes' p-values are fixed-n: the documents read are the
 * prompts file's (or those a budget allowed, the budget being spent
 * independently of the green lists under H0); the run never stops on them.
 * --weighted: the weighted test with weights exp(logprob) of the suspect
 * (functions of the suspect and the text before each position, as
 * WM_READ_WEIGHTED requires).  --reference JOURNAL (prompt, prefix): the
 * weight of a candidate q is p_suspect(q) - p_ref(q), p_ref read from the
 * journal of a prompt- or prefix-mode run of this same prompts file against
 * the provider's own unwatermarked model (0 outside its top-k; its top-k
 * tokens outside the suspect's are read with weight -p_ref).  The weight is
 * still a function of two models and the text before the position only, so
 * the test stays valid under H0 (neither model's weights depend on the
 * key); subtracting what the provider's own model predicts anyway removes
 * the green tokens a suspect predicts for ordinary reasons from the
 * evidence, which is where the power comes from.
 *
 * Top-k entries come as strings: each is encoded with the provider's
 * tokenizer and kept only when it is exactly one provider token; rows are
 * placed by byte offset, so a suspect with another tokenizer is read where
 * its token boundaries meet the provider's.  Dropped entries and rows are
 * counted and reported.
 *
 * Nothing lost: every attempt is journaled (audit_journal.h) before it is
 * scored; --resume JOURNAL continues a run (same options) and scores the
 * journaled responses first, in item order, in the same batches, so the
 * figures equal an uninterrupted run's given the same responses; --offline
 * JOURNAL rescores without a network. */
#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "audit_journal.h"
#include "audit_parse.h"
#include "audit_plot.h"
#include "cli.h"
#ifdef WM_HAVE_CURL
#include "audit_http.h"
#endif

static const char usage_audit[] =
    "usage: wm audit --key KEYFILE --tokenizer TOKENIZER.json --prompts FILE.jsonl\n"
    "                (--journal NEW | --resume JOURNAL | --offline JOURNAL)\n"
    "                [--url BASE] [--api completions|chat] [--model NAME]\n"
    "                [--mode auto|answers|logprobs|prompt|prefix] [--prompt-field NAME]\n"
    "                [--text-field NAME] [--filter FILE.jsonl] [--top-k K] [--weighted]\n"
    "                [--reference JOURNAL]\n"
    "                [--max-tokens N] [--temperature T] [--seed S] [--batch N]\n"
    "                [--concurrency N] [--rate R] [--connect-timeout S] [--timeout S]\n"
    "                [--retries N] [--max-retry-after S] [--max-requests N]\n"
    "                [--max-suspect-tokens N] [--price-prompt USD] [--price-completion USD]\n"
    "                [--max-cost USD] [--api-key-env VAR | --api-key-file FILE]\n"
    "                [--alpha A] [--target P] [--json] [--plot FILE.png|FILE.svg]\n"
    "\n"
    "Audits a suspect model through its OpenAI-compatible API (BASE/completions or\n"
    "BASE/chat/completions, BASE e.g. http://host:8080/v1) for the watermark of KEYFILE.\n"
    "Modes and null hypotheses:\n"
    "  answers   (default) the suspect answers each prompt; corpus test over its\n"
    "            answers (--filter: only contexts of FILE, e.g. the watermarked\n"
    "            outputs it may have trained on) with the anytime-valid audit after\n"
    "            every batch; stops at --target or the budget.  H0: the answers were\n"
    "            produced without knowledge of the key; the anytime p is valid\n"
    "            whenever the run stops.\n"
    "  logprobs  the suspect's top-k log-probabilities on its own answers, read in\n"
    "            reading mode.  H0: the suspect's weights are independent of the key.\n"
    "  prompt    the suspect teacher-forced on the provider's watermarked texts\n"
    "            (--prompts: text and prompt fields) through vLLM's prompt_logprobs;\n"
    "            only the true top-k (rank <= K) are read.  H0: as logprobs.\n"
    "  prefix    as prompt, with one one-token request per position (llama.cpp,\n"
    "            cache_prompt); the suspect must use the provider's tokenizer.\n"
    "            H0: as logprobs.\n"
    "  auto      one probe request (not counted in the budgets, journaled) on the\n"
    "            first item picks the mode, printed with the reason: texts (a text\n"
    "            field) -> prompt if prompt_logprobs come back, else an error (force\n"
    "            prefix); prompts -> logprobs if top-k log-probabilities come back,\n"
    "            else answers.  H0: the chosen mode's.  --resume/--offline: the\n"
    "            journal's mode.\n"
    "  Reading modes give a fixed-n p over the documents read (exact binomial;\n"
    "  --weighted: Chernoff bound with weights exp(logprob)); they never stop on p.\n"
    "  --reference JOURNAL (prompt, prefix; implies --weighted): the journal of a\n"
    "            prompt or prefix run of the same --prompts against the provider's\n"
    "            own unwatermarked model; weights p_suspect - p_ref (p_ref 0 outside\n"
    "            its top-k).  H0: neither the suspect's nor the reference's weights\n"
    "            depend on the key.  A journal of other texts is refused.\n"
    "  Top-k strings count only when they are exactly one provider token; the\n"
    "  dropped ones are reported.\n"
    "Journal: every request and response is appended and fsync'd before scoring.\n"
    "  --journal NEW      start a run (never overwrites)\n"
    "  --resume JOURNAL   continue it (same options; budgets may change)\n"
    "  --offline JOURNAL  rescore it, no network\n"
    "Budget and network:\n"
    "  --batch N          prompts per batch, one look each (default 16)\n"
    "  --concurrency N    requests in flight (default 4)\n"
    "  --rate R           at most R new requests a second (default: no limit)\n"
    "  --connect-timeout S, --timeout S   seconds (default 10, 300)\n"
    "  --retries N        retries on 429, 5xx, timeouts, dropped connections, with\n"
    "                     exponential backoff and jitter, honouring Retry-After\n"
    "                     (default 8; --max-retry-after S, default 120)\n"
    "  --max-requests N, --max-suspect-tokens N, --max-cost USD (with\n"
    "  --price-prompt / --price-completion USD per million tokens): checked before\n"
    "                     each batch (a batch in progress finishes); --max-requests\n"
    "                     also caps every single request\n"
    "  --api-key-env VAR  the API key from environment variable VAR (cleared)\n"
    "  --api-key-file F   the API key from F (mode 0600 or stricter)\n"
    "Scoring:\n"
    "  --top-k K          log-probabilities asked per position (default 5, 1..20)\n"
    "  --max-tokens N     tokens per answer (default 256); --temperature T (1);\n"
    "  --seed S           sent to the endpoint\n"
    "  --alpha A          verdict threshold (default 1e-3); --target P (default 1e-6)\n"
    "  --json             one JSON object per look and a final one with every figure\n"
    "  --plot FILE        log10 p after each look against suspect tokens (gnuplot;\n"
    "                     .png or .svg), written after the final report\n"
    "Exit status: 0 done (budget or target reached, or prompts exhausted), 1 never,\n"
    "2 error or interrupted (the journal keeps everything received).\n";

enum { M_ANSWERS, M_LOGPROBS, M_PROMPT, M_PREFIX, M_AUTO };
static const char *mode_names[] = { "answers", "logprobs", "prompt", "prefix" };
static const char *mode_nulls[] = {
    "the suspect's answers were produced without knowledge of the key",
    "the suspect's weights are independent of the key",
    "the suspect's weights are independent of the key",
    "the suspect's weights are independent of the key" };

enum { A_O_URL = 1000, A_O_API, A_O_MODEL, A_O_MODE, A_O_PROMPTS, A_O_PFIELD, A_O_TFIELD, A_O_TOPK,
       A_O_MAXTOK, A_O_TEMP, A_O_SEED, A_O_BATCH, A_O_CONC, A_O_RATE, A_O_CTO, A_O_TO, A_O_RETRIES, A_O_MRA,
       A_O_MAXREQ, A_O_MAXSTOK, A_O_PPROMPT, A_O_PCOMPL, A_O_MAXCOST, A_O_KEYENV, A_O_KEYFILE, A_O_JOURNAL,
       A_O_RESUME, A_O_OFFLINE, A_O_PLOT, A_O_REF };

typedef struct unit {          /* one request */
    size_t doc;
    size_t pos;                /* prefix mode: the answer position asked for */
    char *req;                 /* request body (JSON) */
    size_t req_len;
    char *resp;                /* the accepted response body */
    size_t resp_len;
} unit;

typedef struct adoc {          /* one prompt (answers, logprobs) or document (prompt, prefix) */
    char source[320];
    char *prompt, *text;       /* as in the prompts file */
    size_t prompt_len, text_len;
    wm_token *ids;             /* prompt, prefix: the provider's tokens of prompt + text */
    size_t n_ids, n_prompt;
    char *sent;                /* prompt mode: the text sent (decode of ids) */
    size_t sent_len;
    size_t first_unit, n_units;
} adoc;

typedef struct refrow {         /* --reference: one document's rows, as the reference read them */
    wm_token *top;             /* n * k ids (WM_TOKEN_NONE: none) */
    float *p;                  /* their probabilities */
    size_t n;
} refrow;

typedef struct audit audit;
struct audit {
    /* options */
    const char *url, *model, *key_path, *tok_path, *prompts_path, *filter_path, *pfield, *tfield;
    const char *journal_path, *key_env, *key_file, *plot_path, *ref_path;
    int api, mode, weighted, json, resume, offline, has_seed;
    long topk, max_tokens, batch, seed;
    double temperature, alpha, target;
    double price_prompt, price_completion, max_cost;
    long long max_requests, max_stokens;
#ifdef WM_HAVE_CURL
    http_opts net;
#endif
    char endpoint[2048];
    json_t *auto_info; /* --mode auto: the probe and the choice, journaled in the header */
    audit_plot plot;   /* --plot: every look's (suspect tokens, log10 p) */
    /* state */
    wm_tokenizer *tok;
    wm_encoder *enc;
    wm_watermark *wm;
    uint32_t vocab;
    char key_id[WM_KEY_ID_SIZE], tok_sha[65], prompts_sha[65], filter_sha[65];
    const char *scheme;
    adoc *docs;
    size_t n_docs;
    unit *units;
    size_t n_units;
    journal j;
    int journal_open;
    char *header;              /* this run's header record */
    /* spent (accepted responses; attempts include retries and failures) */
    unsigned long long requests, attempts, started, resp_prompt_tokens, resp_completion_tokens;
    double cost;
    /* scoring */
    wm_ctxset *filter;
    wm_corpus *corpus;
    wm_reader *reader;
    unsigned long docs_scored, looks;
    unsigned long long withheld; /* responses whose log-probabilities the server withheld */
    unsigned long long scored; /* distinct tuples scored at the last look */
    unsigned long long answer_tokens, cand_total, cand_kept, rows_total, rows_read, rows_unaligned, rows_empty;
    double last_log10_p, last_fixed_log10_p, more_tokens;
    int watermarked, progress_on;
    double t0;
    const char *stop_reason;
    /* --reference: the reference run (its own units, on copies of docs) */
    audit *ref;
    char ref_sha[65];
    json_t *ref_config;        /* the reference journal's configuration (owns R's strings) */
    refrow *ref_rows;          /* in the reference run: per document, collected instead of read */
    int collect;
    unsigned long long ref_cands, ref_only, ref_rows_missing;
};

static volatile int g_stop;
static void on_signal(int sig)
{
    (void)sig;
    g_stop = 1;
}

/* ---- small helpers ------------------------------------------------------ */

static int sha256_file(const char *path, char hex[65])
{
    FILE *f = fopen(path, "rb");
    if (!f) return die("%s: %s", path, strerror(errno));
    crypto_hash_sha256_state st;
    crypto_hash_sha256_init(&st);
    unsigned char buf[65536], h[32];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, f)) > 0) crypto_hash_sha256_update(&st, buf, n);
    int bad = ferror(f);
    fclose(f);
    if (bad) return die("%s: read error", path);
    crypto_hash_sha256_final(&st, h);
    sodium_bin2hex(hex, 65, h, 32);
    return 0;
}

static char *dump(json_t *o, size_t *len)
{
    char *s = json_dumps(o, JSON_COMPACT | JSON_ENSURE_ASCII);
    if (s && len) *len = strlen(s);
    return s;
}

/* The API key: from an environment variable (then wiped and unset) or a
 * file readable by its owner only.  Never from argv, never printed.
 * Refused: empty, or holding control characters (header injection). */
static int load_api_key(const audit *A, char **out)
{
    *out = NULL;
    char *k = NULL;
    if (A->key_env) {
        char *v = getenv(A->key_env);
        if (!v || !*v) return die("audit: --api-key-env %s: the variable is unset or empty", A->key_env);
        k = strdup(v);
        sodium_memzero(v, strlen(v));
        unsetenv(A->key_env);
        if (!k) return die("out of memory");
    } else if (A->key_file) {
        FILE *f = fopen(A->key_file, "r");
        if (!f) return die("%s: %s", A->key_file, strerror(errno));
        struct stat st;
        if (fstat(fileno(f), &st) || !S_ISREG(st.st_mode) || (st.st_mode & 077) || st.st_uid != geteuid()) {
            fclose(f);
            return die("%s: an API key file must be a regular file of yours with mode 0600 or stricter "
                       "(chmod 600 %s)", A->key_file, A->key_file);
        }
        char buf[4096];
        size_t n = fread(buf, 1, sizeof buf - 1, f);
        int more = fgetc(f) != EOF;
        fclose(f);
        buf[n] = 0;
        while (n && (buf[n - 1] == '\n' || buf[n - 1] == '\r')) buf[--n] = 0;
        if (more) {
            sodium_memzero(buf, sizeof buf);
            return die("%s: an API key over 4 KB", A->key_file);
        }
        k = strdup(buf);
        sodium_memzero(buf, sizeof buf);
        if (!k) return die("out of memory");
    } else {
        return 0;
    }
    size_t n = strlen(k);
    int bad = n == 0;
    for (size_t i = 0; i < n; i++) bad |= (unsigned char)k[i] < 0x20 || k[i] == 0x7f;
    if (bad) {
        sodium_memzero(k, n);
        free(k);
        return die("audit: the API key is empty or holds control characters");
    }
    *out = k;
    return 0;
}

static void free_key(char *k)
{
    if (k) sodium_memzero(k, strlen(k));
    free(k);
}

/* ---- setup ----------------------------------------------------------------- */

static int encode(audit *A, const char *s, size_t n, wm_token **ids, size_t *nids, const char *what)
{
    const wm_token *t;
    size_t m;
    wm_error err = { "" };
    wm_status st = wm_encode(A->enc, s, n, 0, &t, &m, &err);
    if (st) return die("%s: %s", what, status_text(st, &err));
    wm_token *b = realloc(*ids, (*nids + m + 1) * sizeof *b);
    if (!b) return die("out of memory");
    memcpy(b + *nids, t, m * sizeof *t);
    *ids = b;
    *nids += m;
    return 0;
}

static int setup_key(audit *A)
{
    wm_error err = { "" };
    wm_status st;
    if ((st = wm_tokenizer_load(&A->tok, A->tok_path, &err))) return die("%s", status_text(st, &err));
    unsigned char tsha[32], ksha[32];
    if ((st = wm_tokenizer_sha256(A->tok, tsha)) || (st = wm_tokenizer_n_vocab(A->tok, &A->vocab)) ||
        (st = wm_encoder_new(&A->enc, A->tok)))
        return die("%s: %s", A->tok_path, wm_strerror(st));
    sodium_bin2hex(A->tok_sha, sizeof A->tok_sha, tsha, 32);
    wm_key *key;
    if ((st = wm_key_load(&key, A->key_path, &err))) return die("%s", status_text(st, &err));
    uint32_t nv;
    wm_params kp = WM_INIT(wm_params); /* versioned: wm_key_params checks its size */
    if ((st = wm_key_id(key, A->key_id)) || (st = wm_key_tokenizer(key, &nv, ksha)) || (st = wm_key_params(key, &kp))) {
        wm_key_free(key);
        return die("%s: %s", A->key_path, wm_strerror(st));
    }
    A->scheme = kp.scheme;
    if (nv && (nv != A->vocab || memcmp(ksha, tsha, 32))) {
        wm_key_free(key);
        return die("%s: the key was made for another tokenizer than %s", A->key_path, A->tok_path);
    }
    st = wm_watermark_new(&A->wm, key, A->vocab);
    wm_key_free(key);
    if (st) return die("%s: %s", A->key_path, wm_strerror(st));
    return 0;
}

/* The corpus (answers) or the reader (the reading modes), once the mode is known. */
static int setup_scoring(audit *A)
{
    wm_status st;
    if (A->mode == M_ANSWERS) {
        if ((st = wm_corpus_new(&A->corpus, A->wm, 0))) return die("%s: %s", A->key_path, wm_strerror(st));
    } else if ((st = wm_reader_new(&A->reader, A->wm, A->weighted ? WM_READ_WEIGHTED : 0))) {
        return die("%s: %s%s", A->key_path, wm_strerror(st),
                   st == WM_ERR_UNSUPPORTED ? " (--weighted needs a green-list scheme, kgw)" : "");
    }
    return 0;
}

static int load_filter(audit *A)
{
    if (!A->filter_path) return 0;
    if (sha256_file(A->filter_path, A->filter_sha)) return EXIT_USAGE;
    wm_status st = wm_ctxset_new(&A->filter, A->wm);
    if (st) return die("%s", wm_strerror(st));
    reader r;
    char *files[1] = { (char *)A->filter_path };
    reader_init(&r, IN_JSONL, A->tfield, NULL, files, 1, 0, 0);
    doc d;
    char msg[512];
    int rc = 0, got;
    wm_token *ids = NULL;
    while ((got = reader_next(&r, &d, msg, sizeof msg)) == 1) {
        size_t n = 0;
        rc = encode(A, d.text, d.len, &ids, &n, d.source);
        if (!rc && (st = wm_ctxset_add(A->filter, ids, n))) rc = die("%s: %s", d.source, wm_strerror(st));
        doc_free(&d);
        if (rc) break;
    }
    if (!rc && got < 0) rc = die("%s", msg);
    free(ids);
    reader_close(&r);
    if (!rc && (st = wm_corpus_set_filter(A->corpus, A->filter))) rc = die("--filter: %s", wm_strerror(st));
    return rc;
}

static int load_docs(audit *A)
{
    if (sha256_file(A->prompts_path, A->prompts_sha)) return EXIT_USAGE;
    reader r;
    char *files[1] = { (char *)A->prompts_path };
    int reading_provider = A->mode == M_PROMPT || A->mode == M_PREFIX;
    reader_init(&r, IN_JSONL, reading_provider ? A->tfield : A->pfield,
                reading_provider && A->pfield[0] ? A->pfield : NULL, files, 1, 0, 0);
    doc d;
    char msg[512];
    int got, rc = 0;
    size_t cap = 0;
    while ((got = reader_next(&r, &d, msg, sizeof msg)) == 1) {
        if (A->n_docs == cap) {
            cap = cap ? 2 * cap : 256;
            adoc *b = realloc(A->docs, cap * sizeof *b);
            if (!b) {
                doc_free(&d);
                rc = die("out of memory");
                break;
            }
            A->docs = b;
        }
        adoc *D = &A->docs[A->n_docs++];
        memset(D, 0, sizeof *D);
        snprintf(D->source, sizeof D->source, "%s", d.source);
        if (reading_provider) {
            D->text = d.text, D->text_len = d.len;
            D->prompt = d.prompt, D->prompt_len = d.prompt_len;
            d.text = d.prompt = NULL;
            if (D->prompt && (rc = encode(A, D->prompt, D->prompt_len, &D->ids, &D->n_ids, D->source))) break;
            D->n_prompt = D->n_ids;
            if ((rc = encode(A, D->text, D->text_len, &D->ids, &D->n_ids, D->source))) break;
            const char *s;
            size_t n;
            wm_status st = wm_decode(A->enc, D->ids, D->n_ids, &s, &n);
            if (st) {
                rc = die("%s: %s", D->source, wm_strerror(st));
                break;
            }
            if (!(D->sent = malloc(n + 1))) {
                rc = die("out of memory");
                break;
            }
            memcpy(D->sent, s, n);
            D->sent[n] = 0;
            D->sent_len = n;
        } else {
            D->prompt = d.text, D->prompt_len = d.len;
            d.text = NULL;
        }
        doc_free(&d);
    }
    if (!rc && got < 0) rc = die("%s", msg);
    reader_close(&r);
    if (!rc && A->n_docs == 0) rc = die("%s: no prompts", A->prompts_path);
    return rc;
}

/* The request body of one unit: deterministic in the options and the
 * prompts file, so a resumed run sends (and checks) the same. */
static char *build_request(audit *A, const adoc *D, size_t pos, size_t *len)
{
    json_t *o = json_object();
    if (!o) return NULL;
    int bad = 0;
    if (A->model) bad |= json_object_set_new(o, "model", json_string(A->model));
    if (A->mode == M_PROMPT) {
        bad |= json_object_set_new(o, "prompt", json_stringn(D->sent, D->sent_len));
        bad |= json_object_set_new(o, "max_tokens", json_integer(1));
        bad |= json_object_set_new(o, "temperature", json_real(0));
        bad |= json_object_set_new(o, "prompt_logprobs", json_integer(A->topk));
        bad |= json_object_set_new(o, "return_token_ids", json_true());
    } else if (A->mode == M_PREFIX) {
        json_t *ids = json_array();
        for (size_t i = 0; ids && i < pos; i++) bad |= json_array_append_new(ids, json_integer(D->ids[i]));
        bad |= json_object_set_new(o, "prompt", ids);
        bad |= json_object_set_new(o, "max_tokens", json_integer(1));
        bad |= json_object_set_new(o, "temperature", json_real(0));
        bad |= json_object_set_new(o, "logprobs", json_integer(A->topk));
        bad |= json_object_set_new(o, "cache_prompt", json_true());
    } else {
        json_t *p = json_stringn(D->prompt, D->prompt_len);
        if (A->api == AP_CHAT) {
            json_t *msg = json_pack("{s:s,s:o}", "role", "user", "content", p);
            bad |= json_object_set_new(o, "messages", json_pack("[o]", msg));
        } else {
            bad |= json_object_set_new(o, "prompt", p);
        }
        bad |= json_object_set_new(o, "max_tokens", json_integer(A->max_tokens));
        bad |= json_object_set_new(o, "temperature", json_real(A->temperature));
        if (A->has_seed) bad |= json_object_set_new(o, "seed", json_integer(A->seed));
        if (A->mode == M_LOGPROBS) {
            if (A->api == AP_CHAT) {
                bad |= json_object_set_new(o, "logprobs", json_true());
                bad |= json_object_set_new(o, "top_logprobs", json_integer(A->topk));
            } else {
                bad |= json_object_set_new(o, "logprobs", json_integer(A->topk));
            }
        }
    }
    char *s = bad ? NULL : dump(o, len);
    json_decref(o);
    return s;
}

static int build_units(audit *A)
{
    size_t n = 0;
    for (size_t d = 0; d < A->n_docs; d++)
        n += A->mode == M_PREFIX ? (A->docs[d].n_ids > A->docs[d].n_prompt ? A->docs[d].n_ids - A->docs[d].n_prompt : 0) : 1;
    if (!(A->units = calloc(n ? n : 1, sizeof *A->units))) return die("out of memory");
    for (size_t d = 0; d < A->n_docs; d++) {
        adoc *D = &A->docs[d];
        D->first_unit = A->n_units;
        size_t lo = A->mode == M_PREFIX ? D->n_prompt : 0, hi = A->mode == M_PREFIX ? D->n_ids : 1;
        for (size_t p = lo; p < hi; p++) {
            unit *u = &A->units[A->n_units++];
            u->doc = d;
            u->pos = p;
            if (!(u->req = build_request(A, D, p, &u->req_len))) return die("%s: cannot build the request", D->source);
        }
        D->n_units = A->n_units - D->first_unit;
    }
    return 0;
}

static char *make_header(audit *A, size_t *len)
{
    json_t *c = json_pack("{s:s,s:s,s:s?,s:s?,s:s,s:s,s:s,s:s,s:s?,s:s,s:s,s:I,s:b,s:I,s:f,s:I,s:f,s:f}",
                          "mode", mode_names[A->mode], "api", A->api == AP_CHAT ? "chat" : "completions",
                          "url", A->offline ? NULL : A->endpoint, "model", A->model, "key_id", A->key_id,
                          "tokenizer_sha256", A->tok_sha, "prompts_sha256", A->prompts_sha,
                          "prompt_field", A->pfield, "filter_sha256", A->filter_path ? A->filter_sha : NULL,
                          "text_field", A->tfield, "scheme", A->scheme, "top_k", (json_int_t)A->topk,
                          "weighted", A->weighted, "max_tokens", (json_int_t)A->max_tokens, "temperature",
                          A->temperature, "batch", (json_int_t)A->batch, "alpha", A->alpha, "target", A->target);
    if (c && A->has_seed) json_object_set_new(c, "seed", json_integer(A->seed));
    if (c && A->ref_path) json_object_set_new(c, "reference_sha256", json_string(A->ref_sha));
    json_t *h = c ? json_pack("{s:s,s:i,s:o}", "t", "wm-audit", "version", 1, "config", c) : NULL;
    if (h && A->auto_info && json_object_set(h, "auto", A->auto_info)) json_decref(h), h = NULL;
    char *s = h ? dump(h, len) : NULL;
    json_decref(h);
    return s;
}

/* ---- spending and accepting responses ------------------------------------- */

static int budget_left(audit *A)
{
    if (A->max_requests && A->attempts >= (unsigned long long)A->max_requests) return 0;
    if (A->max_stokens && A->resp_prompt_tokens + A->resp_completion_tokens >= (unsigned long long)A->max_stokens)
        return 0;
    if (A->max_cost > 0 && A->cost >= A->max_cost) return 0;
    return 1;
}

static int what_of(const audit *A)
{
    return A->mode == M_ANSWERS ? AP_TEXT : A->mode == M_PROMPT ? AP_PROMPT : AP_LOGPROBS;
}

/* Check an accepted body parses (fail closed) and count what it cost. */
static int accept(audit *A, unit *u, const char *body, size_t len, const char *where, char *err, size_t errlen)
{
    ap_resp r;
    char msg[512];
    if (ap_parse(body, len, A->mode == M_PREFIX ? AP_COMPLETIONS : A->api, what_of(A), (size_t)A->topk, &r, msg,
                 sizeof msg)) {
        snprintf(err, errlen, "%s: item %zu (%s): malformed response: %s", where, (size_t)(u - A->units),
                 A->docs[u->doc].source, msg);
        return -1;
    }
    if (r.withheld) A->withheld++;
    if (A->mode == M_PREFIX && r.n_toks < 1 && !r.withheld) {
        ap_free(&r);
        snprintf(err, errlen, "%s: item %zu: no generated token in a one-token request", where, (size_t)(u - A->units));
        return -1;
    }
    unsigned long long pt = r.prompt_tokens >= 0 ? (unsigned long long)r.prompt_tokens : 0;
    unsigned long long ct = r.completion_tokens >= 0 ? (unsigned long long)r.completion_tokens
                                                     : (unsigned long long)(r.n_toks ? r.n_toks : r.text_len / 4 + 1);
    if (r.prompt_tokens < 0) pt = A->mode == M_PREFIX ? u->pos : A->mode == M_PROMPT ? r.n_toks : A->docs[u->doc].prompt_len / 4 + 1;
    ap_free(&r);
    if (!(u->resp = malloc(len + 1))) return snprintf(err, errlen, "out of memory"), -1;
    memcpy(u->resp, body, len);
    u->resp[len] = 0;
    u->resp_len = len;
    A->requests++;
    A->resp_prompt_tokens += pt;
    A->resp_completion_tokens += ct;
    A->cost += (double)pt * A->price_prompt / 1e6 + (double)ct * A->price_completion / 1e6;
    return 0;
}

/* ---- the journal's records ----------------------------------------------- */

typedef struct replay {
    audit *A;
    int seen_header;
} replay;

static int on_record(void *arg, const char *json, size_t len, unsigned long line, char *err, size_t errlen)
{
    replay *R = arg;
    audit *A = R->A;
    json_error_t je;
    json_t *o = json_loadb(json, len, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, &je);
    int rc = -1;
    const char *t = json_string_value(json_object_get(o, "t"));
    char where[4200];
    snprintf(where, sizeof where, "%s:%lu", A->journal_path, line);
    if (!o || !t) {
        snprintf(err, errlen, "%s: not a journal record", where);
        goto out;
    }
    if (!R->seen_header) {
        if (strcmp(t, "wm-audit") || json_integer_value(json_object_get(o, "version")) != 1) {
            snprintf(err, errlen, "%s: not a wm audit journal (version 1)", where);
            goto out;
        }
        json_t *mine = json_loads(A->header, 0, NULL);
        json_t *c = json_object_get(o, "config"), *mc = json_object_get(mine, "config");
        if (!json_is_object(c) || !json_is_object(mc)) {
            json_decref(mine);
            snprintf(err, errlen, "%s: the header has no configuration", where);
            goto out;
        }
        for (int pass = 0; pass < 2; pass++) {
            const char *k;
            json_t *v;
            json_object_foreach(pass ? c : mc, k, v) {
                if (A->offline && (!strcmp(k, "weighted") || !strcmp(k, "reference_sha256") || !strcmp(k, "key_id"))) {
                    /* rescoring with another test or key (e.g. unrelated keys for the null): the requests do not
                       depend on either, and the report names the key used */
                    if (pass && !strcmp(k, "key_id") && !json_equal(v, json_object_get(mc, k)))
                        fprintf(stderr, "wm audit: %s: made with key %s; rescored with key %s\n", A->journal_path,
                                json_string_value(v), A->key_id);
                    continue;
                }
                if (!strcmp(k, "url")) { /* offline: none; resume: the endpoint may have moved */
                    json_t *w = json_object_get(pass ? mc : c, k);
                    if (!pass && A->resume && w && !json_equal(v, w))
                        fprintf(stderr, "wm audit: %s: the journal's endpoint was %s; continuing against %s\n",
                                A->journal_path, json_string_value(w), json_string_value(v));
                    continue;
                }
                json_t *w = json_object_get(pass ? mc : c, k), *mv = pass ? w : v, *jv = pass ? v : w;
                if (mv && jv && json_equal(mv, jv)) continue;
                if ((!mv || json_is_null(mv)) && (!jv || json_is_null(jv))) continue;
                char *a = mv ? json_dumps(mv, JSON_ENCODE_ANY) : NULL, *b = jv ? json_dumps(jv, JSON_ENCODE_ANY) : NULL;
                snprintf(err, errlen, "%s: the journal's %s is %s, this run's %s: give the run's own options", where,
                         k, b ? b : "absent", a ? a : "absent");
                free(a);
                free(b);
                json_decref(mine);
                goto out;
            }
        }
        json_decref(mine);
        R->seen_header = 1;
        rc = 0;
        goto out;
    }
    if (strcmp(t, "attempt")) {
        snprintf(err, errlen, "%s: unknown record type \"%.40s\"", where, t);
        goto out;
    }
    json_int_t item = json_integer_value(json_object_get(o, "item"));
    json_t *req = json_object_get(o, "request"), *status = json_object_get(o, "status");
    const char *transport = json_string_value(json_object_get(o, "transport"));
    if (!json_is_integer(json_object_get(o, "item")) || item < 0 || (size_t)item >= A->n_units || !json_is_object(req) ||
        !json_is_integer(status) || !transport) {
        snprintf(err, errlen, "%s: an attempt record without item, request, status or transport, or an item "
                 "beyond this run's %zu", where, A->n_units);
        goto out;
    }
    unit *u = &A->units[item];
    json_t *mine = json_loadb(u->req, u->req_len, JSON_ALLOW_NUL, NULL);
    int same = mine && json_equal(mine, req);
    json_decref(mine);
    if (!same) {
        snprintf(err, errlen, "%s: the journal's request for item %lld (%s%s%zu) differs from this run's (other "
                 "prompts or options)", where, (long long)item, A->docs[u->doc].source,
                 A->mode == M_PREFIX ? ", position " : "", A->mode == M_PREFIX ? u->pos : (size_t)0);
        goto out;
    }
    A->attempts++;
    long st = (long)json_integer_value(status);
    if (transport[0] || st < 200 || st > 299 || u->resp) {
        rc = 0;
        goto out;
    }
    json_t *b = json_object_get(o, "body"), *b64 = json_object_get(o, "body_b64");
    char *body = NULL;
    size_t blen = 0;
    if (json_is_string(b)) {
        blen = json_string_length(b);
        body = malloc(blen + 1);
        if (body) memcpy(body, json_string_value(b), blen + 1);
    } else if (json_is_string(b64)) {
        size_t cap = json_string_length(b64);
        body = malloc(cap + 1);
        if (body && sodium_base642bin((unsigned char *)body, cap, json_string_value(b64), cap, NULL, &blen, NULL,
                                      sodium_base64_VARIANT_ORIGINAL)) {
            free(body);
            snprintf(err, errlen, "%s: body_b64 is not base64", where);
            goto out;
        }
        if (body) body[blen] = 0;
    } else {
        snprintf(err, errlen, "%s: a 2xx attempt without its body", where);
        goto out;
    }
    if (!body) {
        snprintf(err, errlen, "out of memory");
        goto out;
    }
    rc = accept(A, u, body, blen, where, err, errlen);
    free(body);
out:
    json_decref(o);
    return rc;
}

#ifdef WM_HAVE_CURL
static int on_attempt(void *arg, const http_job *job, const http_attempt *a, char *err, size_t errlen)
{
    audit *A = arg;
    unit *u = &A->units[job->item];
    json_error_t je;
    json_t *req = json_loadb(u->req, u->req_len, JSON_ALLOW_NUL, &je);
    if (!req) return snprintf(err, errlen, "item %zu: internal error: its request is not JSON: %s", job->item, je.text), -1;
    json_t *o = json_pack("{s:s,s:I,s:i,s:o,s:i,s:s,s:f,s:b}", "t", "attempt", "item", (json_int_t)job->item,
                          "attempt", a->attempt, "request", req, "status", (int)a->status, "transport", a->transport,
                          "seconds", a->seconds, "retry", a->retry);
    if (o && a->retry_after >= 0) json_object_set_new(o, "retry_after", json_real(a->retry_after));
    if (o && utf8_valid(a->body, a->len) && !memchr(a->body, 0, a->len)) {
        json_object_set_new(o, "body", json_stringn(a->body, a->len));
    } else if (o) {
        size_t cap = sodium_base64_ENCODED_LEN(a->len, sodium_base64_VARIANT_ORIGINAL);
        char *b = malloc(cap);
        if (b) {
            sodium_bin2base64(b, cap, (const unsigned char *)a->body, a->len, sodium_base64_VARIANT_ORIGINAL);
            json_object_set_new(o, "body_b64", json_string(b));
        }
        free(b);
    }
    size_t len;
    char *rec = o ? dump(o, &len) : NULL;
    json_decref(o);
    if (!rec) return snprintf(err, errlen, "item %zu: cannot make its journal record (out of memory)", job->item), -1;
    int rc = journal_append(&A->j, rec, len, err, errlen);
    free(rec);
    if (rc) return -1;
    A->attempts++;
    if (!a->retry && !a->transport[0] && a->status >= 200 && a->status <= 299) {
        char where[2200];
        snprintf(where, sizeof where, "%s (journal %s:%lu)", A->endpoint, A->journal_path, A->j.records);
        if (accept(A, u, a->body, a->len, where, err, errlen)) return -1;
    } else if (a->retry && !A->progress_on) {
        fprintf(stderr, "wm audit: item %zu attempt %d: %s%s%ld; retrying%s\n", job->item, a->attempt, a->transport,
                a->transport[0] ? ", HTTP " : "HTTP ", a->status, a->retry_after >= 0 ? " after Retry-After" : "");
    }
    return 0;
}

static int may_start(void *arg)
{
    audit *A = arg;
    if (A->max_requests && A->started >= (unsigned long long)A->max_requests) return 0;
    A->started++;
    return 1;
}
#endif

/* ---- scoring ----------------------------------------------------------------- */

/* Byte offsets of the provider's token boundaries: off[i] = length of the
 * decode of ids[0..i), or SIZE_MAX where that is not a prefix of s. */
static int provider_offsets(audit *A, const wm_token *ids, size_t n, const char *s, size_t len, size_t *off)
{
    for (size_t i = 0; i <= n; i++) {
        const char *d;
        size_t m;
        wm_status st = wm_decode(A->enc, ids, i, &d, &m);
        if (st) return die("decode: %s", wm_strerror(st));
        off[i] = m <= len && !memcmp(d, s, m) ? m : SIZE_MAX;
    }
    return 0;
}

/* The suspect's candidates at one position, as provider ids: exactly one
 * provider token each, else dropped. */
static size_t map_row(audit *A, const ap_tok *t, wm_token *row, float *w)
{
    size_t kept = 0;
    for (size_t c = 0; c < t->n_top && kept < (size_t)A->topk; c++) { /* a row holds k: never more */
        A->cand_total++;
        const wm_token *ids;
        size_t m;
        if (wm_encode(A->enc, t->top[c].s, t->top[c].n, 0, &ids, &m, NULL) || m != 1) continue;
        row[kept] = ids[0];
        if (w) w[kept] = (float)exp(t->top[c].logprob);
        kept++;
        A->cand_kept++;
    }
    return kept;
}

typedef struct rows {
    wm_token *top;
    float *w;
    size_t n;
} rows;

/* --reference: subtract the reference's probability from each suspect
 * candidate's weight (p_ref 0 where the reference does not list it), then
 * append the reference's candidates the suspect does not list, with weight
 * -p_ref (p_suspect 0 there).  row/w hold kept suspect entries and room for
 * kr more; returns the new count. */
static size_t ref_merge(audit *A, const wm_token *rt, const float *rp, size_t kr, wm_token *row, float *w, size_t kept)
{
    size_t n = kept;
    for (size_t c = 0; c < kr; c++) {
        if (rt[c] == WM_TOKEN_NONE) continue;
        A->ref_cands++;
        size_t at = 0;
        while (at < kept && row[at] != rt[c]) at++;
        if (at < kept) {
            w[at] -= rp[c]; /* the first copy only: repeated ids' weights add in the reader */
        } else {
            row[n] = rt[c], w[n] = -rp[c], n++;
            A->ref_only++;
        }
    }
    return n;
}

/* Place suspect rows (offsets so[j], candidates toks[j]) on the provider's
 * positions [from, n) whose boundary offset matches, then read the doc (or,
 * in a reference run, keep its rows). */
static int read_doc_rows(audit *A, const adoc *D, const wm_token *ids, size_t n, size_t n_prompt, const size_t *off,
                         const size_t *so, ap_tok *const *toks, size_t n_s)
{
    size_t k = (size_t)A->topk, kr = A->ref ? (size_t)A->ref->topk : 0, kk = k + kr;
    const refrow *ref = NULL;
    if (A->ref) {
        ref = &A->ref->ref_rows[D - A->docs];
        if (!ref->top)
            return die("%s: the reference journal %s holds no complete reading of this document: give a reference "
                       "run over every document read", D->source, A->ref_path);
        if (ref->n != n) return die("%s: internal error: the reference read %zu positions, this run %zu", D->source, ref->n, n);
    }
    rows R = { calloc(n * kk + 1, sizeof *R.top), A->weighted ? calloc(n * kk + 1, sizeof *R.w) : NULL, n };
    if (!R.top || (A->weighted && !R.w)) {
        free(R.top);
        free(R.w);
        return die("out of memory");
    }
    for (size_t i = 0; i < n_prompt; i++) /* prompt positions: never read, no prediction */
        for (size_t c = 0; c < kk; c++) R.top[i * kk + c] = WM_TOKEN_NONE;
    size_t j = 0;
    for (size_t i = n_prompt; i < n; i++) {
        A->rows_total++;
        wm_token *row = R.top + i * kk;
        float *w = R.w ? R.w + i * kk : NULL;
        while (j < n_s && (so[j] == SIZE_MAX || so[j] < off[i]) && off[i] != SIZE_MAX) j++;
        size_t kept = 0;
        int aligned = off[i] != SIZE_MAX && j < n_s && so[j] == off[i] && toks[j];
        if (!aligned) {
            A->rows_unaligned++; /* no suspect row here: nothing is read */
        } else if ((kept = map_row(A, toks[j], row, w)) == 0) {
            A->rows_empty++;
        } else {
            A->rows_read++;
            if (ref) {
                size_t before = A->ref_cands;
                kept = ref_merge(A, ref->top + i * kr, ref->p + i * kr, kr, row, w, kept);
                if (A->ref_cands == before) A->ref_rows_missing++; /* p_ref 0 here: the suspect's weights alone */
            }
        }
        for (size_t c = kept; c < kk; c++) { /* fewer than kk usable candidates: the rest is not read */
            row[c] = WM_TOKEN_NONE;
            if (w) w[c] = 0;
        }
    }
    if (A->collect) { /* a reference run: keep the rows (w holds exp(logprob)) for the suspect's run */
        refrow *out = &A->ref_rows[D - A->docs];
        out->top = R.top, out->p = R.w, out->n = n;
        return 0;
    }
    wm_status st = wm_reader_add(A->reader, ids, n, n_prompt, R.top, R.w, kk);
    free(R.top);
    free(R.w);
    if (st) return die("%s: %s", D->source, wm_strerror(st));
    return 0;
}

static int score_doc(audit *A, adoc *D)
{
    unit *u0 = &A->units[D->first_unit];
    int api = A->mode == M_PREFIX ? AP_COMPLETIONS : A->api;
    char msg[512];
    int rc = 0;
    if (A->mode == M_PREFIX) {
        /* one response per answer position */
        size_t n = D->n_ids;
        ap_resp *rs = calloc(D->n_units + 1, sizeof *rs);
        ap_tok **toks = calloc(n + 1, sizeof *toks);
        size_t *off = calloc(n + 1, sizeof *off), *so = calloc(n + 1, sizeof *so);
        if (!rs || !toks || !off || !so) rc = die("out of memory");
        for (size_t i = 0; i <= n && !rc; i++) off[i] = i, so[i] = SIZE_MAX;
        for (size_t q = 0; q < D->n_units && !rc; q++) {
            unit *u = &u0[q];
            if (ap_parse(u->resp, u->resp_len, api, AP_LOGPROBS, (size_t)A->topk, &rs[q], msg, sizeof msg)) {
                rc = die("%s: item %zu: %s", D->source, D->first_unit + q, msg);
                break;
            }
            toks[u->pos] = rs[q].n_toks ? &rs[q].toks[0] : NULL;
            so[u->pos] = rs[q].n_toks ? u->pos : SIZE_MAX; /* withheld: no row */
        }
        /* rows indexed by position: offsets are the positions themselves */
        if (!rc) {
            size_t *sidx = calloc(n + 1, sizeof *sidx);
            ap_tok **tk = calloc(n + 1, sizeof *tk);
            size_t ns = 0;
            if (!sidx || !tk) rc = die("out of memory");
            for (size_t i = 0; !rc && i < n; i++)
                if (so[i] != SIZE_MAX) sidx[ns] = i, tk[ns++] = toks[i];
            if (!rc) rc = read_doc_rows(A, D, D->ids, n, D->n_prompt, off, sidx, tk, ns);
            free(sidx);
            free(tk);
        }
        for (size_t q = 0; q < D->n_units; q++) ap_free(&rs[q]);
        free(rs);
        free(toks);
        free(off);
        free(so);
        A->answer_tokens += D->n_ids - D->n_prompt;
        return rc;
    }
    ap_resp r;
    if (ap_parse(u0->resp, u0->resp_len, api, what_of(A), (size_t)A->topk, &r, msg, sizeof msg))
        return die("%s: item %zu: %s", D->source, D->first_unit, msg);
    wm_token *ids = NULL;
    size_t n = 0, n_prompt = 0;
    if (A->mode == M_ANSWERS || A->mode == M_LOGPROBS) {
        rc = encode(A, D->prompt, D->prompt_len, &ids, &n, D->source);
        n_prompt = n;
        if (!rc) rc = encode(A, r.text, r.text_len, &ids, &n, D->source);
        A->answer_tokens += n - n_prompt;
    }
    if (!rc && A->mode == M_ANSWERS) {
        wm_status st = wm_corpus_add(A->corpus, ids, n, n_prompt);
        if (st) rc = die("%s: %s", D->source, wm_strerror(st));
    } else if (!rc) {
        /* S: the whole text; suspect offsets so[j] of its tokens in S */
        const char *S = "";
        size_t L;
        char *own = NULL;
        const wm_token *pids = ids;
        size_t pn = n, pnp = n_prompt;
        if (A->mode == M_LOGPROBS) {
            L = D->prompt_len + r.text_len;
            if (!(own = malloc(L + 1))) rc = die("out of memory");
            else {
                memcpy(own, D->prompt, D->prompt_len);
                memcpy(own + D->prompt_len, r.text, r.text_len);
                S = own;
            }
        } else {
            S = D->sent, L = D->sent_len, pids = D->ids, pn = D->n_ids, pnp = D->n_prompt;
            A->answer_tokens += D->n_ids - D->n_prompt;
        }
        size_t *off = rc ? NULL : calloc(pn + 1, sizeof *off), *so = rc ? NULL : calloc(r.n_toks + 1, sizeof *so);
        ap_tok **tk = rc ? NULL : calloc(r.n_toks + 1, sizeof *tk);
        if (!rc && (!off || !so || !tk)) rc = die("out of memory");
        if (!rc) rc = provider_offsets(A, pids, pn, S, L, off);
        if (!rc && A->mode == M_LOGPROBS) { /* forward from the answer's start */
            size_t o = D->prompt_len;
            int ok = 1;
            for (size_t q = 0; q < r.n_toks; q++) {
                ok = ok && o + r.toks[q].n <= L && !memcmp(S + o, r.toks[q].s, r.toks[q].n);
                so[q] = ok && r.toks[q].n ? o : SIZE_MAX;
                tk[q] = &r.toks[q];
                o += r.toks[q].n;
            }
        } else if (!rc) { /* backward from the end: the first position's token is not given */
            size_t o = L;
            int ok = 1;
            for (size_t q = r.n_toks; q-- > 0;) {
                tk[q] = &r.toks[q];
                so[q] = SIZE_MAX;
                if (!r.toks[q].s || r.toks[q].n == 0) continue; /* position 0; an empty token */
                ok = ok && r.toks[q].n <= o && !memcmp(S + o - r.toks[q].n, r.toks[q].s, r.toks[q].n);
                if (ok) so[q] = o -= r.toks[q].n;
            }
        }
        if (!rc) rc = read_doc_rows(A, D, pids, pn, pnp, off, so, tk, r.n_toks);
        free(off);
        free(so);
        free(tk);
        free(own);
    }
    free(ids);
    ap_free(&r);
    return rc;
}

static void json_num(FILE *f, const char *name, double v)
{
    if (isfinite(v)) fprintf(f, ",\"%s\":%.17g", name, v);
    else fprintf(f, ",\"%s\":null", name);
}

static int look(audit *A, int final)
{
    A->looks++;
    if (A->mode == M_ANSWERS) {
        wm_audit a = WM_INIT(wm_audit);
        if (wm_corpus_audit(A->corpus, A->alpha, A->target, &a)) return die("audit: invalid corpus state");
        A->last_log10_p = a.log10_p;
        A->last_fixed_log10_p = a.fixed.log10_p;
        A->scored = a.fixed.scored;
        A->more_tokens = a.more_tokens;
        A->watermarked = a.watermarked;
        if (A->json) {
            printf("{\"source\":\"audit\",\"mode\":\"answers\",\"look\":%lu,\"final\":%s,\"documents\":%lu,"
                   "\"requests\":%llu,\"suspect_tokens\":%llu,\"answer_tokens\":%llu,\"scored\":%llu,"
                   "\"statistic\":%.17g,\"log10_p\":%.17g,\"fixed_log10_p\":%.17g,\"watermarked\":%s",
                   A->looks, final ? "true" : "false", A->docs_scored, A->requests,
                   A->resp_prompt_tokens + A->resp_completion_tokens, A->answer_tokens,
                   (unsigned long long)a.fixed.scored, a.fixed.statistic, a.log10_p, a.fixed.log10_p,
                   a.watermarked ? "true" : "false");
            json_num(stdout, "cost", A->cost);
            json_num(stdout, "excess", a.excess);
            json_num(stdout, "excess_lo", a.excess_lo);
            json_num(stdout, "excess_hi", a.excess_hi);
            json_num(stdout, "more_tokens", a.more_tokens);
            printf("}\n");
        }
    } else {
        wm_score s = WM_INIT(wm_score);
        uint64_t positions;
        if (wm_reader_score(A->reader, A->alpha, &s, &positions)) return die("audit: invalid reader state");
        A->last_log10_p = s.log10_p;
        A->last_fixed_log10_p = s.log10_p;
        A->scored = s.scored;
        A->watermarked = s.watermarked;
        A->more_tokens = NAN;
        if (A->json)
            printf("{\"source\":\"audit\",\"mode\":\"%s\",\"look\":%lu,\"final\":%s,\"documents\":%lu,\"requests\":%llu,"
                   "\"suspect_tokens\":%llu,\"text_tokens\":%llu,\"positions\":%llu,\"scored\":%llu,\"statistic\":%.17g,"
                   "\"z\":%.17g,\"log10_p\":%.17g,\"watermarked\":%s,\"cost\":%.17g}\n",
                   mode_names[A->mode], A->looks, final ? "true" : "false", A->docs_scored, A->requests,
                   A->resp_prompt_tokens + A->resp_completion_tokens, A->answer_tokens,
                   (unsigned long long)positions, (unsigned long long)s.scored, s.statistic, s.z, s.log10_p,
                   s.watermarked ? "true" : "false", A->cost);
    }
    if (A->plot_path && plot_add(&A->plot, (double)(A->resp_prompt_tokens + A->resp_completion_tokens),
                                 A->last_log10_p))
        return die("out of memory");
    if (fflush(stdout) != 0 || ferror(stdout)) return EXIT_USAGE;
    return 0;
}

/* --plot: drawn after the final report, so a failing gnuplot loses no figure. */
static int write_plot(const audit *A)
{
    char title[128], err[4400];
    snprintf(title, sizeof title, "wm audit: mode %s, key %s", mode_names[A->mode], A->key_id);
    if (plot_write(&A->plot, A->plot_path, title,
                   A->mode == M_ANSWERS ? "log10 p (anytime-valid)" : "log10 p (fixed-n: valid at the end only)",
                   A->target, A->alpha, err, sizeof err))
        return die("%s", err);
    fprintf(stderr, "wm audit: plot of %zu looks written to %s\n", A->plot.n, A->plot_path);
    return 0;
}

static void show_progress(audit *A)
{
    if (!A->progress_on) {
        fprintf(stderr, "wm audit: %lu/%zu documents, %llu requests (%llu attempts), %llu suspect tokens, $%.4f, "
                "log10 p %.2f%s\n", A->docs_scored, A->n_docs, A->requests, A->attempts,
                A->resp_prompt_tokens + A->resp_completion_tokens, A->cost, A->last_log10_p,
                A->mode == M_ANSWERS ? " anytime" : " (fixed-n, informational)");
        return;
    }
    fprintf(stderr, "\r%lu/%zu docs  %llu req  %llu tok  $%.4f  log10 p %.2f", A->docs_scored, A->n_docs,
            A->requests, A->resp_prompt_tokens + A->resp_completion_tokens, A->cost, A->last_log10_p);
    if (A->mode == M_ANSWERS && isfinite(A->more_tokens)) fprintf(stderr, "  ~%.3g more tokens", A->more_tokens);
    fputs("   ", stderr);
}

static const char *null_of(const audit *A)
{
    return A->ref ? "neither the suspect's nor the reference's weights depend on the key" : mode_nulls[A->mode];
}

static void final_report(audit *A)
{
    const char *verdict = A->watermarked ? "WATERMARKED" : "no watermark found";
    if (A->progress_on) fputc('\n', stderr);
    if (A->json) {
        printf("{\"source\":\"audit-final\",\"mode\":\"%s\",\"null\":", mode_names[A->mode]);
        print_json_string(stdout, null_of(A), strlen(null_of(A)));
        printf(",\"key_id\":\"%s\",\"stop\":\"%s\",\"documents\":%lu,\"documents_total\":%zu,\"requests\":%llu,"
               "\"attempts\":%llu,\"prompt_tokens\":%llu,\"completion_tokens\":%llu,\"answer_tokens\":%llu,"
               "\"log10_p\":%.17g,\"fixed_log10_p\":%.17g,\"alpha\":%.17g,\"target\":%.17g,\"watermarked\":%s,"
               "\"anytime\":%s,\"weighted\":%s,\"candidates\":%llu,\"candidates_kept\":%llu,"
               "\"candidates_dropped\":%llu,\"rows\":%llu,\"rows_read\":%llu,\"rows_unaligned\":%llu,"
               "\"rows_empty\":%llu,\"withheld\":%llu,\"scored\":%llu,\"reference\":%s,\"ref_candidates\":%llu,"
               "\"ref_only\":%llu,\"ref_rows_missing\":%llu",
               A->key_id, A->stop_reason, A->docs_scored, A->n_docs, A->requests, A->attempts, A->resp_prompt_tokens,
               A->resp_completion_tokens, A->answer_tokens, A->last_log10_p, A->last_fixed_log10_p, A->alpha,
               A->target, A->watermarked ? "true" : "false", A->mode == M_ANSWERS ? "true" : "false",
               A->weighted ? "true" : "false", A->cand_total, A->cand_kept, A->cand_total - A->cand_kept,
               A->rows_total, A->rows_read, A->rows_unaligned, A->rows_empty, A->withheld, A->scored,
               A->ref ? "true" : "false", A->ref_cands, A->ref_only, A->ref_rows_missing);
        json_num(stdout, "cost", A->cost);
        json_num(stdout, "more_tokens", A->more_tokens);
        const char *why = json_string_value(json_object_get(A->auto_info, "why"));
        if (why) printf(",\"auto\":"), print_json_string(stdout, why, strlen(why));
        printf("}\n");
        return;
    }
    printf("%s: log10 p %.2f (%s) after %lu of %zu documents, %llu requests, %llu suspect tokens, $%.4f; "
           "mode %s, key %s; stopped: %s\n", verdict, A->last_log10_p,
           A->mode == M_ANSWERS ? "anytime-valid" : A->ref ? "fixed-n, weighted against the reference: a bound" : A->weighted ? "fixed-n, weighted: a bound" : "fixed-n, exact",
           A->docs_scored, A->n_docs, A->requests, A->resp_prompt_tokens + A->resp_completion_tokens, A->cost,
           mode_names[A->mode], A->key_id, A->stop_reason);
    printf("null hypothesis: %s\n", null_of(A));
    if (A->ref)
        printf("reference %s: weights p_suspect - p_ref; %llu reference candidates, %llu outside the suspect's "
               "top-k (weight -p_ref); %llu positions read without a reference row (p_ref 0)\n", A->ref_path,
               A->ref_cands, A->ref_only, A->ref_rows_missing);
    if (A->mode != M_ANSWERS)
        printf("top-k entries: %llu, %llu exactly one provider token, %llu dropped; positions %llu, read %llu, "
               "unaligned %llu, no single-token candidate %llu; responses with log-probabilities withheld %llu\n",
               A->cand_total, A->cand_kept, A->cand_total - A->cand_kept, A->rows_total, A->rows_read,
               A->rows_unaligned, A->rows_empty, A->withheld);
}

/* ---- the run ------------------------------------------------------------------ */

static int run(audit *A, const char *api_key)
{
    int rc = 0;
    A->stop_reason = "prompts exhausted";
    for (size_t d0 = 0; d0 < A->n_docs && !rc;) {
        size_t d1 = d0 + (size_t)A->batch < A->n_docs ? d0 + (size_t)A->batch : A->n_docs;
        if (!budget_left(A)) {
            /* still score what the journal holds for this batch */
        }
        size_t u0 = A->docs[d0].first_unit, u1 = d1 < A->n_docs ? A->docs[d1].first_unit : A->n_units;
        int missing = 0;
        for (size_t u = u0; u < u1; u++) missing |= A->units[u].resp == NULL;
        int stopped = 0;
        if (missing && !A->offline && budget_left(A) && !g_stop) {
#ifdef WM_HAVE_CURL
            size_t nj = u1 - u0;
            http_job *jobs = calloc(nj + 1, sizeof *jobs);
            unsigned char *done = calloc(nj + 1, 1);
            if (!jobs || !done) rc = die("out of memory");
            for (size_t q = 0; !rc && q < nj; q++) {
                jobs[q] = (http_job){ u0 + q, A->units[u0 + q].req, A->units[u0 + q].req_len };
                done[q] = A->units[u0 + q].resp != NULL;
            }
            char err[2048] = "";
            int h = rc ? 0 : http_run(A->endpoint, api_key, &A->net, jobs, nj, done, on_attempt, may_start, A, &g_stop,
                                      err, sizeof err);
            free(jobs);
            free(done);
            if (h < 0) rc = die("%s", err);
            if (h == 1) stopped = 1;
#else
            (void)api_key;
            rc = die("audit: this wm was built without libcurl (-Dcurl=disabled): only --offline works");
#endif
        }
        if (rc) break;
        /* score the batch's complete documents, in order */
        int gap = 0;
        for (size_t d = d0; d < d1 && !rc; d++) {
            adoc *D = &A->docs[d];
            int complete = 1;
            for (size_t q = 0; q < D->n_units; q++) complete &= A->units[D->first_unit + q].resp != NULL;
            if (!complete) {
                gap = 1;
                continue;
            }
            rc = score_doc(A, D);
            A->docs_scored++;
        }
        if (rc) break;
        if ((rc = look(A, 0))) break;
        show_progress(A);
        d0 = d1;
        if (g_stop) {
            A->stop_reason = "interrupted";
            break;
        }
        if (A->mode == M_ANSWERS && A->last_log10_p <= log10(A->target)) {
            A->stop_reason = "target reached";
            break;
        }
        if (gap || stopped) {
            A->stop_reason = A->offline ? "end of the journal" : "budget spent";
            break;
        }
        if (!budget_left(A) && d0 < A->n_docs) {
            A->stop_reason = "budget spent";
            break;
        }
    }
    if (!rc) rc = look(A, 1);
    if (!rc) final_report(A);
    if (!rc && A->plot_path) rc = write_plot(A);
    if (!rc && g_stop) rc = die("interrupted: everything received is in %s; continue with --resume %s",
                                A->journal_path, A->journal_path);
    return rc;
}

/* ---- --reference ---------------------------------------------------------------- */

typedef struct ref_head {
    const char *path;
    json_t *header;
} ref_head;

static int ref_header_cb(void *arg, const char *json, size_t len, unsigned long line, char *err, size_t errlen)
{
    ref_head *H = arg;
    if (H->header) return 0; /* the attempts are read by on_record in the second pass */
    json_t *o = json_loadb(json, len, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, NULL);
    if (!o || !json_is_object(json_object_get(o, "config"))) {
        json_decref(o);
        return snprintf(err, errlen, "%s:%lu: not a wm audit journal header", H->path, line), -1;
    }
    H->header = o;
    return 0;
}

static void free_ref(audit *R)
{
    if (!R) return;
    for (size_t i = 0; i < R->n_units; i++) free(R->units[i].req), free(R->units[i].resp);
    free(R->units);
    for (size_t i = 0; R->ref_rows && i < R->n_docs; i++) free(R->ref_rows[i].top), free(R->ref_rows[i].p);
    free(R->ref_rows);
    free(R->docs); /* a copy of the suspect run's array: the texts and ids are the suspect run's */
    free(R->header);
    json_decref(R->ref_config);
    free(R);
}

/* Read the reference journal: a prompt or prefix run over the same prompts
 * file, tokenizer and fields (checked; every journaled request must also be
 * the one this prompts file gives, so a journal of other texts is refused
 * with the item, document and position named).  Its rows are kept per
 * document, with exp(logprob) as p_ref. */
static int load_reference(audit *A)
{
    ref_head H = { A->ref_path, NULL };
    char err[4400] = "";
    unsigned long nrec = 0;
    if (journal_read(A->ref_path, 0, NULL, ref_header_cb, &H, &nrec, err, sizeof err)) {
        json_decref(H.header);
        return die("--reference: %s", err);
    }
    if (!H.header) return die("--reference %s: empty journal (no header record)", A->ref_path);
    audit *R = calloc(1, sizeof *R);
    if (!R) return json_decref(H.header), die("out of memory");
    A->ref = R;
    json_t *c = json_object_get(H.header, "config");
    R->ref_config = json_incref(c);
    const char *mode = json_string_value(json_object_get(c, "mode"));
    if (!mode || (strcmp(mode, "prompt") && strcmp(mode, "prefix"))) {
        json_decref(H.header);
        return die("--reference %s: a %s run; the reference must be a prompt or prefix run (the reference model "
                   "read on the provider's texts)", A->ref_path, mode ? mode : "(no mode)");
    }
    static const char *same[] = { "tokenizer_sha256", "prompts_sha256", "text_field", "prompt_field" };
    const char *mine[] = { A->tok_sha, A->prompts_sha, A->tfield, A->pfield };
    for (size_t i = 0; i < sizeof same / sizeof *same; i++) {
        const char *v = json_string_value(json_object_get(c, same[i]));
        if (!v || strcmp(v, mine[i])) {
            json_decref(H.header);
            return die("--reference %s: its %s is %s, this run's %s: the reference must read the same texts "
                       "(--prompts, --tokenizer, fields)", A->ref_path, same[i], v ? v : "absent", mine[i]);
        }
    }
    R->mode = strcmp(mode, "prompt") ? M_PREFIX : M_PROMPT;
    R->api = AP_COMPLETIONS;
    R->model = json_string_value(json_object_get(c, "model"));
    R->topk = (long)json_integer_value(json_object_get(c, "top_k"));
    if (R->topk < 1 || R->topk > 20) {
        json_decref(H.header);
        return die("--reference %s: top_k %ld outside 1..20", A->ref_path, R->topk);
    }
    R->weighted = 1; /* map_row then gives exp(logprob) */
    R->collect = 1;
    R->offline = 1;
    R->journal_path = A->ref_path;
    R->tfield = A->tfield, R->pfield = A->pfield;
    R->tok = A->tok, R->enc = A->enc, R->vocab = A->vocab;
    size_t hlen;
    R->header = dump(H.header, &hlen);
    json_decref(H.header);
    if (!R->header) return die("out of memory");
    R->n_docs = A->n_docs;
    if (!(R->docs = malloc((A->n_docs ? A->n_docs : 1) * sizeof *R->docs)) ||
        !(R->ref_rows = calloc(A->n_docs + 1, sizeof *R->ref_rows)))
        return die("out of memory");
    memcpy(R->docs, A->docs, A->n_docs * sizeof *R->docs);
    int rc = build_units(R);
    replay P = { R, 0 };
    if (!rc && journal_read(A->ref_path, 0, NULL, on_record, &P, &nrec, err, sizeof err))
        rc = die("--reference: %s", err);
    size_t complete = 0;
    for (size_t d = 0; !rc && d < R->n_docs; d++) {
        adoc *D = &R->docs[d];
        int ok = 1;
        for (size_t q = 0; q < D->n_units; q++) ok &= R->units[D->first_unit + q].resp != NULL;
        if (ok && !(rc = score_doc(R, D))) complete++;
    }
    if (!rc)
        fprintf(stderr, "wm audit: reference %s: %s mode, top-%ld, %zu of %zu documents read, %llu positions read\n",
                A->ref_path, mode, R->topk, complete, R->n_docs, R->rows_read);
    return rc;
}

/* Options that go with some modes only. */
static int check_mode(const audit *A)
{
    const char *mode = mode_names[A->mode];
    if (A->api == AP_CHAT && (A->mode == M_PROMPT || A->mode == M_PREFIX))
        return die("audit: --mode %s teacher-forces raw text: it takes --api completions", mode);
    if (A->filter_path && A->mode != M_ANSWERS) return die("audit: --filter goes with --mode answers (this is %s)", mode);
    if (A->weighted && A->mode == M_ANSWERS) return die("audit: --weighted goes with the reading modes");
    if (A->ref_path && A->mode != M_PROMPT && A->mode != M_PREFIX)
        return die("audit: --reference goes with --mode prompt or prefix (this is %s): the reference reads the "
                   "provider's texts", mode);
    return 0;
}

/* ---- --mode auto ------------------------------------------------------------ */

#ifdef WM_HAVE_CURL
/* What the probe sends: the first item of --prompts as its mode would.  An
 * item with a text field is the provider's own output, to teacher-force
 * (*texts = 1: prompt and text, as prompt mode sends them); else its prompt. */
static json_t *first_prompt(const audit *A, int *texts)
{
    FILE *f = fopen(A->prompts_path, "rb");
    char *line = NULL;
    size_t cap = 0;
    json_t *o = f && getline(&line, &cap, f) > 0 ? json_loads(line, JSON_ALLOW_NUL, NULL) : NULL;
    if (f) fclose(f);
    free(line);
    json_t *p = json_object_get(o, A->pfield), *t = json_object_get(o, A->tfield), *r = NULL;
    *texts = json_is_string(t);
    if (*texts) {
        const char *ps = json_is_string(p) ? json_string_value(p) : "";
        size_t pl = json_is_string(p) ? json_string_length(p) : 0, tl = json_string_length(t);
        char *b = malloc(pl + tl + 1);
        if (b) memcpy(b, ps, pl), memcpy(b + pl, json_string_value(t), tl), r = json_stringn_nocheck(b, pl + tl);
        free(b);
    } else if (json_is_string(p)) {
        r = json_incref(p);
    }
    json_decref(o);
    if (!r) die("%s:1: --mode auto probes with the first item's %s or %s field: none", A->prompts_path, A->tfield,
                A->pfield);
    return r;
}

/* One request asking for everything a mode can use: prompt log-probabilities
 * (texts to teacher-force, completions) or the top-k of one generated token. */
static json_t *probe_request(const audit *A, json_t *prompt, int texts)
{
    json_t *o = A->api == AP_CHAT
                    ? json_pack("{s:[{s:s,s:O}],s:i,s:f,s:b,s:i}", "messages", "role", "user", "content", prompt,
                                "max_tokens", 1, "temperature", 0.0, "logprobs", 1, "top_logprobs", (int)A->topk)
                : texts ? json_pack("{s:O,s:i,s:f,s:i,s:b}", "prompt", prompt, "max_tokens", 1, "temperature", 0.0,
                                    "prompt_logprobs", (int)A->topk, "return_token_ids", 1)
                        : json_pack("{s:O,s:i,s:f,s:i}", "prompt", prompt, "max_tokens", 1, "temperature", 0.0,
                                    "logprobs", (int)A->topk);
    if (o && A->model) json_object_set_new(o, "model", json_string(A->model));
    return o;
}

typedef struct probe {
    char *body;
    size_t len;
    long status;
} probe;

static int probe_attempt(void *arg, const http_job *job, const http_attempt *a, char *err, size_t errlen)
{
    probe *P = arg;
    (void)job;
    if (a->retry) return 0;
    free(P->body);
    if (!(P->body = malloc(a->len + 1))) return snprintf(err, errlen, "out of memory"), -1;
    memcpy(P->body, a->body, a->len + 1);
    P->len = a->len;
    P->status = a->status;
    return 0;
}

static int probe_may_start(void *arg)
{
    (void)arg;
    return 1;
}

/* A new run: the probe's response decides the mode.  Texts: prompt, else an
 * error (prefix costs one request a position and needs the provider's
 * tokenizer: it is forced, never guessed).  Prompts: logprobs, else answers.
 * The probe is journaled in the header, not counted in the budgets. */
static int auto_probe(audit *A, const char *api_key)
{
    int texts = 0;
    json_t *prompt = first_prompt(A, &texts), *req = prompt ? probe_request(A, prompt, texts) : NULL;
    size_t len = 0;
    char *body = req ? dump(req, &len) : NULL, err[4400] = "", msg[512] = "";
    probe P = { NULL, 0, 0 };
    unsigned char done = 0;
    volatile int stop = 0;
    int rc = !prompt ? EXIT_USAGE : !body ? die("out of memory") : 0;
    http_job job = { 0, body, len };
    if (!rc && http_run(A->endpoint, api_key, &A->net, &job, 1, &done, probe_attempt, probe_may_start, &P, &stop,
                        err, sizeof err) < 0)
        rc = die("audit: --mode auto: the probe request failed: %s", err);
    const char *why = NULL;
    int what = rc ? -1 : ap_probe(P.body, P.len, A->api, (size_t)A->topk, &why, msg, sizeof msg);
    if (!rc && what < 0) rc = die("audit: --mode auto: the probe's response is not an answer: %s", msg);
    if (!rc && texts && what != AP_PROMPT)
        rc = die("audit: --mode auto: %s holds texts to teacher-force, but %s; force --mode prefix (one request "
                 "a position, the suspect must use the provider's tokenizer), or give prompts", A->prompts_path, why);
    if (!rc) {
        A->mode = what == AP_PROMPT ? M_PROMPT : what == AP_LOGPROBS ? M_LOGPROBS : M_ANSWERS;
        json_t *b = json_stringn(P.body, P.len);
        A->auto_info = json_pack("{s:O,s:I,s:o?,s:s,s:s}", "request", req, "status", (json_int_t)P.status, "body", b,
                                 "mode", mode_names[A->mode], "why", why);
        if (!A->auto_info) rc = die("out of memory");
        else fprintf(stderr, "wm audit: --mode auto: %s (%s)\n", mode_names[A->mode], why);
    }
    json_decref(prompt);
    json_decref(req);
    free(body);
    free(P.body);
    return rc;
}
#else
static int auto_probe(audit *A, const char *api_key)
{
    (void)A, (void)api_key;
    return die("audit: --mode auto needs the network (wm was built without libcurl)");
}
#endif

/* --resume or --offline with --mode auto: the mode the journal's run chose. */
static int auto_from_journal(audit *A)
{
    FILE *f = fopen(A->journal_path, "rb");
    char *line = NULL;
    size_t cap = 0;
    ssize_t n = f ? getline(&line, &cap, f) : -1;
    json_t *h = n > 33 ? json_loadb(line + 33, (size_t)n - 33, JSON_ALLOW_NUL, NULL) : NULL;
    if (f) fclose(f);
    free(line);
    const char *m = json_string_value(json_object_get(json_object_get(h, "config"), "mode"));
    for (A->mode = 0; m && A->mode < M_AUTO && strcmp(m, mode_names[A->mode]); A->mode++) {}
    json_t *ai = json_object_get(h, "auto");
    if (ai) A->auto_info = json_incref(ai);
    json_decref(h);
    if (!m || A->mode == M_AUTO)
        return die("%s:1: --mode auto takes the journal's mode: no valid header record", A->journal_path);
    fprintf(stderr, "wm audit: --mode auto: %s, as the journal's run chose%s\n", mode_names[A->mode],
            ai ? "" : " (it was forced there)");
    return 0;
}

static void free_audit(audit *A)
{
    for (size_t i = 0; i < A->n_units; i++) free(A->units[i].req), free(A->units[i].resp);
    free(A->units);
    for (size_t i = 0; i < A->n_docs; i++) {
        free(A->docs[i].prompt);
        free(A->docs[i].text);
        free(A->docs[i].ids);
        free(A->docs[i].sent);
    }
    free(A->docs);
    free(A->header);
    json_decref(A->auto_info);
    free_ref(A->ref);
    plot_free(&A->plot);
    if (A->journal_open) journal_close(&A->j);
    wm_corpus_free(A->corpus);
    wm_ctxset_free(A->filter);
    wm_reader_free(A->reader);
    wm_watermark_free(A->wm);
    wm_encoder_free(A->enc);
    wm_tokenizer_free(A->tok);
}

static int parse_pos(const char *opt, const char *s, double lo, double hi, double *out)
{
    if (!parse_double(s, out) || !(*out >= lo && *out <= hi))
        return die("audit: %s '%s': expected a number in [%g, %g]", opt, s, lo, hi);
    return 0;
}

int cmd_audit(int argc, char **argv)
{
    static const struct option opts[] = {
        { "key", required_argument, 0, O_KEY }, { "tokenizer", required_argument, 0, O_TOKENIZER },
        { "url", required_argument, 0, A_O_URL }, { "api", required_argument, 0, A_O_API },
        { "model", required_argument, 0, A_O_MODEL }, { "mode", required_argument, 0, A_O_MODE },
        { "prompts", required_argument, 0, A_O_PROMPTS }, { "prompt-field", required_argument, 0, A_O_PFIELD },
        { "text-field", required_argument, 0, A_O_TFIELD }, { "filter", required_argument, 0, O_FILTER },
        { "top-k", required_argument, 0, A_O_TOPK }, { "weighted", no_argument, 0, O_WEIGHTED },
        { "max-tokens", required_argument, 0, A_O_MAXTOK }, { "temperature", required_argument, 0, A_O_TEMP },
        { "seed", required_argument, 0, A_O_SEED }, { "batch", required_argument, 0, A_O_BATCH },
        { "concurrency", required_argument, 0, A_O_CONC }, { "rate", required_argument, 0, A_O_RATE },
        { "connect-timeout", required_argument, 0, A_O_CTO }, { "timeout", required_argument, 0, A_O_TO },
        { "retries", required_argument, 0, A_O_RETRIES }, { "max-retry-after", required_argument, 0, A_O_MRA },
        { "max-requests", required_argument, 0, A_O_MAXREQ },
        { "max-suspect-tokens", required_argument, 0, A_O_MAXSTOK },
        { "price-prompt", required_argument, 0, A_O_PPROMPT },
        { "price-completion", required_argument, 0, A_O_PCOMPL }, { "max-cost", required_argument, 0, A_O_MAXCOST },
        { "api-key-env", required_argument, 0, A_O_KEYENV }, { "api-key-file", required_argument, 0, A_O_KEYFILE },
        { "journal", required_argument, 0, A_O_JOURNAL }, { "resume", required_argument, 0, A_O_RESUME },
        { "offline", required_argument, 0, A_O_OFFLINE }, { "alpha", required_argument, 0, O_ALPHA },
        { "target", required_argument, 0, O_TARGET }, { "json", no_argument, 0, O_JSON },
        { "plot", required_argument, 0, A_O_PLOT }, { "reference", required_argument, 0, A_O_REF },
        { "help", no_argument, 0, O_HELP }, { 0, 0, 0, 0 } };
    audit A = { .pfield = "prompt", .tfield = "text", .topk = 5, .max_tokens = 256, .batch = 16, .temperature = 1.0,
                .alpha = 1e-3, .target = 1e-6, .last_log10_p = 0, .more_tokens = NAN };
#ifdef WM_HAVE_CURL
    A.net = (http_opts){ 4, 0, 10, 300, 8, 120 };
#endif
    double concurrency = 4, rate = 0, cto = 10, to = 300, retries = 8, mra = 120;
    const char *api = "completions", *mode = "answers", *base = NULL;
    int c, journals = 0;
    long v;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case O_KEY: A.key_path = optarg; break;
        case O_TOKENIZER: A.tok_path = optarg; break;
        case A_O_URL: base = optarg; break;
        case A_O_API: api = optarg; break;
        case A_O_MODEL: A.model = optarg; break;
        case A_O_MODE: mode = optarg; break;
        case A_O_PROMPTS: A.prompts_path = optarg; break;
        case A_O_PFIELD: A.pfield = optarg; break;
        case A_O_TFIELD: A.tfield = optarg; break;
        case O_FILTER: A.filter_path = optarg; break;
        case A_O_TOPK:
            if (!parse_int(optarg, 1, 20, &A.topk)) return die("audit: --top-k '%s': expected 1..20", optarg);
            break;
        case O_WEIGHTED: A.weighted = 1; break;
        case A_O_REF: A.ref_path = optarg, A.weighted = 1; break; /* p_suspect - p_ref: the weighted test */
        case A_O_MAXTOK:
            if (!parse_int(optarg, 1, 1 << 20, &A.max_tokens)) return die("audit: --max-tokens '%s': expected 1..1048576", optarg);
            break;
        case A_O_TEMP:
            if (parse_pos("--temperature", optarg, 0, 10, &A.temperature)) return EXIT_USAGE;
            break;
        case A_O_SEED:
            if (!parse_int(optarg, 0, LONG_MAX, &A.seed)) return die("audit: --seed '%s': expected an integer >= 0", optarg);
            A.has_seed = 1;
            break;
        case A_O_BATCH:
            if (!parse_int(optarg, 1, 1000000, &A.batch)) return die("audit: --batch '%s': expected 1..1000000", optarg);
            break;
        case A_O_CONC: if (parse_pos("--concurrency", optarg, 1, 256, &concurrency)) return EXIT_USAGE; break;
        case A_O_RATE: if (parse_pos("--rate", optarg, 0, 1e6, &rate)) return EXIT_USAGE; break;
        case A_O_CTO: if (parse_pos("--connect-timeout", optarg, 0.001, 3600, &cto)) return EXIT_USAGE; break;
        case A_O_TO: if (parse_pos("--timeout", optarg, 0.001, 86400, &to)) return EXIT_USAGE; break;
        case A_O_RETRIES: if (parse_pos("--retries", optarg, 0, 1000, &retries)) return EXIT_USAGE; break;
        case A_O_MRA: if (parse_pos("--max-retry-after", optarg, 0, 86400, &mra)) return EXIT_USAGE; break;
        case A_O_MAXREQ:
            if (!parse_int(optarg, 1, LONG_MAX, &v)) return die("audit: --max-requests '%s': expected >= 1", optarg);
            A.max_requests = v;
            break;
        case A_O_MAXSTOK:
            if (!parse_int(optarg, 1, LONG_MAX, &v)) return die("audit: --max-suspect-tokens '%s': expected >= 1", optarg);
            A.max_stokens = v;
            break;
        case A_O_PPROMPT: if (parse_pos("--price-prompt", optarg, 0, 1e9, &A.price_prompt)) return EXIT_USAGE; break;
        case A_O_PCOMPL: if (parse_pos("--price-completion", optarg, 0, 1e9, &A.price_completion)) return EXIT_USAGE; break;
        case A_O_MAXCOST: if (parse_pos("--max-cost", optarg, 1e-12, 1e12, &A.max_cost)) return EXIT_USAGE; break;
        case A_O_KEYENV: A.key_env = optarg; break;
        case A_O_KEYFILE: A.key_file = optarg; break;
        case A_O_JOURNAL: A.journal_path = optarg, journals++; break;
        case A_O_RESUME: A.journal_path = optarg, A.resume = 1, journals++; break;
        case A_O_OFFLINE: A.journal_path = optarg, A.offline = 1, journals++; break;
        case A_O_PLOT:
            if (!plot_terminal(optarg)) return die("audit: --plot '%s': expected FILE.png or FILE.svg, no quotes", optarg);
            A.plot_path = optarg;
            break;
        case O_ALPHA:
            if (!parse_double(optarg, &A.alpha) || !(A.alpha > 0 && A.alpha < 1))
                return die("audit: --alpha '%s': expected a number in (0, 1)", optarg);
            break;
        case O_TARGET:
            if (!parse_double(optarg, &A.target) || !(A.target > 0 && A.target < 1))
                return die("audit: --target '%s': expected a number in (0, 1)", optarg);
            break;
        case O_JSON: A.json = 1; break;
        case O_HELP: fputs(usage_audit, stdout); return 0;
        default: return usage_error("audit");
        }
    }
    if (optind < argc) return die("audit: unexpected argument '%s' (the prompts go in --prompts)", argv[optind]);
    if (!A.key_path || !A.tok_path || !A.prompts_path)
        return die("audit: --key, --tokenizer and --prompts are required (see `wm audit --help`)");
    if (journals != 1) return die("audit: exactly one of --journal NEW, --resume JOURNAL, --offline JOURNAL");
    for (A.mode = 0; A.mode < M_AUTO && strcmp(mode, mode_names[A.mode]); A.mode++) {}
    if (A.mode == M_AUTO && strcmp(mode, "auto"))
        return die("audit: --mode '%s': expected auto, answers, logprobs, prompt or prefix", mode);
    if (!strcmp(api, "chat")) A.api = AP_CHAT;
    else if (!strcmp(api, "completions")) A.api = AP_COMPLETIONS;
    else return die("audit: --api '%s': expected completions or chat", api);
    if (A.mode != M_AUTO && check_mode(&A)) return EXIT_USAGE;
    if (A.key_env && A.key_file) return die("audit: one of --api-key-env, --api-key-file");
    if (!A.offline && !base) return die("audit: --url BASE is required unless --offline");
    if (A.offline && base) return die("audit: --offline uses no network: drop --url");
    if (A.max_cost > 0 && A.price_prompt == 0 && A.price_completion == 0)
        return die("audit: --max-cost needs --price-prompt and/or --price-completion");
    if (base) {
        if (strncmp(base, "http://", 7) && strncmp(base, "https://", 8))
            return die("audit: --url '%s': expected http:// or https://", base);
        const char *host = strstr(base, "://") + 3;
        const char *at = strchr(host, '@'), *slash = strchr(host, '/');
        if (at && (!slash || at < slash))
            return die("audit: --url holds credentials: give the key with --api-key-file or --api-key-env");
        size_t bl = strlen(base);
        while (bl && base[bl - 1] == '/') bl--;
        if (bl > 1500) return die("audit: --url too long");
        snprintf(A.endpoint, sizeof A.endpoint, "%.*s%s", (int)bl, base,
                 A.api == AP_CHAT ? "/chat/completions" : "/completions");
    }
#ifdef WM_HAVE_CURL
    A.net = (http_opts){ (long)concurrency, rate, cto, to, (long)retries, mra };
#endif
    if (sodium_init() < 0) return die("libsodium: cannot initialise");
    char *api_key = NULL;
    int rc = setup_key(&A);
    if (!rc && !A.offline) rc = load_api_key(&A, &api_key);
#ifdef WM_HAVE_CURL
    if (!rc && !A.offline && http_global_init()) rc = die("libcurl: cannot initialise");
#endif
    if (!rc && A.mode == M_AUTO) {
        rc = A.resume || A.offline ? auto_from_journal(&A) : auto_probe(&A, api_key);
        if (!rc) rc = check_mode(&A);
    }
    if (!rc) rc = setup_scoring(&A);
    if (!rc) rc = load_filter(&A);
    if (!rc) rc = load_docs(&A);
    if (!rc) rc = build_units(&A);
    if (!rc && A.ref_path && !sha256_file(A.ref_path, A.ref_sha)) rc = load_reference(&A);
    else if (!rc && A.ref_path) rc = EXIT_USAGE;
    size_t hlen = 0;
    if (!rc && !(A.header = make_header(&A, &hlen))) rc = die("out of memory");
    char err[4400] = "";
    if (!rc && (A.resume || A.offline)) {
        replay R = { &A, 0 };
        unsigned long nrec;
        if (journal_read(A.journal_path, A.resume, A.resume ? &A.j : NULL, on_record, &R, &nrec, err, sizeof err))
            rc = die("%s", err);
        else if (!R.seen_header)
            rc = die("%s: empty journal (no header record)", A.journal_path);
        A.journal_open = !rc && A.resume;
        if (!rc)
            fprintf(stderr, "wm audit: %s: %lu records, %llu accepted responses replayed\n", A.journal_path, nrec,
                    A.requests);
    } else if (!rc) {
        if (journal_create(&A.j, A.journal_path, A.header, hlen, err, sizeof err)) rc = die("%s", err);
        A.journal_open = !rc;
    }
    if (!rc) {
        struct sigaction sa;
        memset(&sa, 0, sizeof sa);
        sa.sa_handler = on_signal;
        sigaction(SIGINT, &sa, NULL);
        sigaction(SIGTERM, &sa, NULL);
        signal(SIGPIPE, SIG_IGN);
        A.progress_on = isatty(2);
        A.started = A.attempts;
        A.t0 = now();
        rc = run(&A, api_key);
    }
    free_key(api_key);
    free_audit(&A);
    return rc;
}
