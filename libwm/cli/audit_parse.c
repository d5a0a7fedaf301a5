/* wm audit's response parser: see audit_parse.h. */
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "audit_parse.h"

void ap_free(ap_resp *r)
{
    for (size_t i = 0; i < r->n_toks; i++) {
        free(r->toks[i].s);
        for (size_t j = 0; j < r->toks[i].n_top; j++) free(r->toks[i].top[j].s);
        free(r->toks[i].top);
    }
    free(r->toks);
    free(r->text);
    memset(r, 0, sizeof *r);
}

static char *dup_n(const char *s, size_t n)
{
    char *d = malloc(n + 1);
    if (d) {
        if (n) memcpy(d, s, n);
        d[n] = 0;
    }
    return d;
}

/* The string of a token object: "bytes" (array of 0..255) else the string
 * member `name`.  1 found, 0 absent, -1 malformed (msg set). */
static int token_string(json_t *o, const char *name, char **s, size_t *n, const char *where, char *msg, size_t mlen)
{
    json_t *b = json_object_get(o, "bytes");
    if (b && !json_is_null(b)) {
        if (!json_is_array(b)) {
            snprintf(msg, mlen, "%s.bytes: not an array", where);
            return -1;
        }
        size_t m = json_array_size(b);
        char *d = malloc(m + 1);
        if (!d) {
            snprintf(msg, mlen, "out of memory");
            return -1;
        }
        for (size_t i = 0; i < m; i++) {
            json_t *x = json_array_get(b, i);
            if (!json_is_integer(x) || json_integer_value(x) < 0 || json_integer_value(x) > 255) {
                free(d);
                snprintf(msg, mlen, "%s.bytes[%zu]: not a byte", where, i);
                return -1;
            }
            d[i] = (char)json_integer_value(x);
        }
        d[m] = 0;
        *s = d;
        *n = m;
        return 1;
    }
    json_t *t = json_object_get(o, name);
    if (!t) return 0;
    if (!json_is_string(t)) {
        snprintf(msg, mlen, "%s.%s: not a string", where, name);
        return -1;
    }
    *n = json_string_length(t);
    if (!(*s = dup_n(json_string_value(t), *n))) {
        snprintf(msg, mlen, "out of memory");
        return -1;
    }
    return 1;
}

static int logprob_of(json_t *x, double *lp, const char *where, char *msg, size_t mlen)
{
    if (!json_is_number(x) || !isfinite(json_number_value(x)) || json_number_value(x) > 1e-6) {
        snprintf(msg, mlen, "%s: not a log-probability (a finite number <= 0)", where);
        return -1;
    }
    *lp = json_number_value(x) > 0 ? 0 : json_number_value(x);
    return 0;
}

/* Keep the k most likely (stable: earlier first on ties). */
static int cmp_cand(const void *a, const void *b)
{
    const ap_cand *x = a, *y = b;
    return (x->logprob < y->logprob) - (x->logprob > y->logprob);
}

static void keep_top(ap_tok *t, size_t k)
{
    /* insertion sort: stable, rows are short */
    for (size_t i = 1; i < t->n_top; i++)
        for (size_t j = i; j > 0 && cmp_cand(&t->top[j - 1], &t->top[j]) > 0; j--) {
            ap_cand c = t->top[j];
            t->top[j] = t->top[j - 1];
            t->top[j - 1] = c;
        }
    for (size_t i = k; i < t->n_top; i++) free(t->top[i].s);
    if (t->n_top > k) t->n_top = k;
}

/* choices[0].logprobs.content[] (llama.cpp, chat) */
static int parse_content(json_t *content, size_t k, ap_resp *r, char *msg, size_t mlen)
{
    size_t n = json_array_size(content);
    if (n && !(r->toks = calloc(n, sizeof *r->toks))) return snprintf(msg, mlen, "out of memory"), -1;
    char where[96];
    for (size_t i = 0; i < n; i++) {
        r->n_toks = i + 1;
        json_t *e = json_array_get(content, i);
        ap_tok *t = &r->toks[i];
        snprintf(where, sizeof where, "logprobs.content[%zu]", i);
        if (!json_is_object(e)) return snprintf(msg, mlen, "%s: not an object", where), -1;
        int got = token_string(e, "token", &t->s, &t->n, where, msg, mlen);
        if (got < 0) return -1;
        if (!got) return snprintf(msg, mlen, "%s: no \"token\"", where), -1;
        json_t *top = json_object_get(e, "top_logprobs");
        if (!json_is_array(top)) return snprintf(msg, mlen, "%s.top_logprobs: missing or not an array", where), -1;
        size_t m = json_array_size(top);
        if (m && !(t->top = calloc(m, sizeof *t->top))) return snprintf(msg, mlen, "out of memory"), -1;
        for (size_t j = 0; j < m; j++) {
            t->n_top = j + 1;
            json_t *c = json_array_get(top, j);
            snprintf(where, sizeof where, "logprobs.content[%zu].top_logprobs[%zu]", i, j);
            if (!json_is_object(c)) return snprintf(msg, mlen, "%s: not an object", where), -1;
            got = token_string(c, "token", &t->top[j].s, &t->top[j].n, where, msg, mlen);
            if (got < 0) return -1;
            if (!got) return snprintf(msg, mlen, "%s: no \"token\"", where), -1;
            char w2[128];
            snprintf(w2, sizeof w2, "%s.logprob", where);
            if (logprob_of(json_object_get(c, "logprob"), &t->top[j].logprob, w2, msg, mlen)) return -1;
        }
        keep_top(t, k);
    }
    return 0;
}

/* jansson refuses U+0000 in an object key, and vLLM's legacy layout keys
 * the top-k by token text, so one candidate that decodes to NUL would fail
 * the whole response.  A copy of the body is returned (caller frees) where
 * every \u0000 escape inside a key reads \u0001; NULL when no key holds
 * one, or (with *oom set) when out of memory.  parse_legacy then leaves
 * unread every candidate whose key holds U+0001, a NUL or a real U+0001:
 * a rule that does not look at the watermark key, so the null holds.  Values
 * (the sampled tokens, the text) are left as they are: jansson takes NUL
 * there. */
static char *nul_keys_rewritten(const char *body, size_t len, int *oom)
{
    char *copy = NULL;
    size_t i = 0;
    *oom = 0;
    while (i < len) {
        if (body[i++] != '"') continue;
        size_t start = i;
        int nul = 0;
        while (i < len && body[i] != '"') {
            if (body[i] == '\\' && i + 5 < len && body[i + 1] == 'u' && !memcmp(body + i + 2, "0000", 4)) nul = 1;
            i += body[i] == '\\' ? 2 : 1;
        }
        size_t end = i++;
        size_t j = i;
        while (j < len && (body[j] == ' ' || body[j] == '\t' || body[j] == '\n' || body[j] == '\r')) j++;
        if (!nul || j >= len || body[j] != ':' || end > len) continue; /* not a key, or no NUL in it */
        if (!copy && !(copy = dup_n(body, len))) return *oom = 1, NULL;
        for (size_t p = start; p + 5 < end; p += copy[p] == '\\' ? 2 : 1)
            if (copy[p] == '\\' && copy[p + 1] == 'u' && !memcmp(copy + p + 2, "0000", 4)) copy[p + 5] = '1';
    }
    return copy;
}

/* legacy: logprobs.tokens[], logprobs.top_logprobs[] of {token: logprob};
 * nul_keys: the body went through nul_keys_rewritten */
static int parse_legacy(json_t *lp, size_t k, int nul_keys, ap_resp *r, char *msg, size_t mlen)
{
    json_t *tokens = json_object_get(lp, "tokens"), *top = json_object_get(lp, "top_logprobs");
    if (!json_is_array(tokens) || !json_is_array(top) || json_array_size(tokens) != json_array_size(top))
        return snprintf(msg, mlen, "logprobs: expected \"content\", or \"tokens\" and \"top_logprobs\" arrays of one length"), -1;
    size_t n = json_array_size(tokens);
    if (n && !(r->toks = calloc(n, sizeof *r->toks))) return snprintf(msg, mlen, "out of memory"), -1;
    for (size_t i = 0; i < n; i++) {
        r->n_toks = i + 1;
        json_t *s = json_array_get(tokens, i), *row = json_array_get(top, i);
        ap_tok *t = &r->toks[i];
        if (!json_is_string(s)) return snprintf(msg, mlen, "logprobs.tokens[%zu]: not a string", i), -1;
        t->n = json_string_length(s);
        if (!(t->s = dup_n(json_string_value(s), t->n))) return snprintf(msg, mlen, "out of memory"), -1;
        if (!json_is_object(row)) return snprintf(msg, mlen, "logprobs.top_logprobs[%zu]: not an object", i), -1;
        size_t m = json_object_size(row);
        if (m && !(t->top = calloc(m, sizeof *t->top))) return snprintf(msg, mlen, "out of memory"), -1;
        const char *key;
        json_t *v;
        json_object_foreach(row, key, v) {
            char where[96];
            snprintf(where, sizeof where, "logprobs.top_logprobs[%zu]", i);
            double lp_v;
            if (logprob_of(v, &lp_v, where, msg, mlen)) return -1;
            if (nul_keys && strchr(key, '\x01')) continue; /* NUL or U+0001: not read */
            ap_cand *c = &t->top[t->n_top++];
            c->logprob = lp_v;
            c->n = strlen(key);
            if (!(c->s = dup_n(key, c->n))) return snprintf(msg, mlen, "out of memory"), -1;
        }
        keep_top(t, k);
    }
    return 0;
}

/* vLLM: choices[0].prompt_logprobs + prompt_token_ids */
static int parse_prompt(json_t *ch, size_t k, ap_resp *r, char *msg, size_t mlen)
{
    json_t *pl = json_object_get(ch, "prompt_logprobs"), *ids = json_object_get(ch, "prompt_token_ids");
    if (!json_is_array(pl))
        return snprintf(msg, mlen, "choices[0].prompt_logprobs: missing or not an array (the endpoint does not "
                        "return prompt log-probabilities: vLLM does; otherwise use --mode prefix)"), -1;
    if (!json_is_array(ids) || json_array_size(ids) != json_array_size(pl))
        return snprintf(msg, mlen, "choices[0].prompt_token_ids: missing, or not one per prompt_logprobs entry "
                        "(vLLM returns it with return_token_ids)"), -1;
    size_t n = json_array_size(pl);
    if (n && !(r->toks = calloc(n, sizeof *r->toks))) return snprintf(msg, mlen, "out of memory"), -1;
    for (size_t i = 0; i < n; i++) {
        r->n_toks = i + 1;
        json_t *row = json_array_get(pl, i), *id = json_array_get(ids, i);
        ap_tok *t = &r->toks[i];
        if (!json_is_integer(id) || json_integer_value(id) < 0)
            return snprintf(msg, mlen, "choices[0].prompt_token_ids[%zu]: not a token id", i), -1;
        if (json_is_null(row)) {
            if (i == 0) continue;
            return snprintf(msg, mlen, "choices[0].prompt_logprobs[%zu]: null after the first position", i), -1;
        }
        if (!json_is_object(row)) return snprintf(msg, mlen, "choices[0].prompt_logprobs[%zu]: not an object", i), -1;
        char idkey[32];
        snprintf(idkey, sizeof idkey, "%lld", (long long)json_integer_value(id));
        size_t m = json_object_size(row);
        if (m && !(t->top = calloc(m, sizeof *t->top))) return snprintf(msg, mlen, "out of memory"), -1;
        const char *key;
        json_t *v;
        json_object_foreach(row, key, v) {
            char where[128];
            snprintf(where, sizeof where, "choices[0].prompt_logprobs[%zu][\"%.20s\"]", i, key);
            if (!json_is_object(v)) return snprintf(msg, mlen, "%s: not an object", where), -1;
            json_t *rank = json_object_get(v, "rank"), *dt = json_object_get(v, "decoded_token");
            if (!json_is_integer(rank) || json_integer_value(rank) < 1)
                return snprintf(msg, mlen, "%s.rank: missing or not >= 1 (needed to tell the top-k from the "
                                "prompt's own token)", where), -1;
            if (!json_is_string(dt)) return snprintf(msg, mlen, "%s.decoded_token: missing or not a string", where), -1;
            double lp;
            char w2[160];
            snprintf(w2, sizeof w2, "%s.logprob", where);
            if (logprob_of(json_object_get(v, "logprob"), &lp, w2, msg, mlen)) return -1;
            if (!strcmp(key, idkey)) {
                t->n = json_string_length(dt);
                if (!(t->s = dup_n(json_string_value(dt), t->n))) return snprintf(msg, mlen, "out of memory"), -1;
            }
            if ((size_t)json_integer_value(rank) > k) continue; /* the prompt token outside the top-k */
            ap_cand *c = &t->top[t->n_top++];
            c->logprob = lp;
            c->n = json_string_length(dt);
            if (!(c->s = dup_n(json_string_value(dt), c->n))) return snprintf(msg, mlen, "out of memory"), -1;
        }
        if (!t->s)
            return snprintf(msg, mlen, "choices[0].prompt_logprobs[%zu]: no entry for the prompt token %s", i, idkey), -1;
        keep_top(t, k);
    }
    return 0;
}

static int usage_of(json_t *root, ap_resp *r, char *msg, size_t mlen)
{
    r->prompt_tokens = r->completion_tokens = -1;
    json_t *u = json_object_get(root, "usage");
    if (!u || json_is_null(u)) return 0;
    if (!json_is_object(u)) return snprintf(msg, mlen, "usage: not an object"), -1;
    json_t *p = json_object_get(u, "prompt_tokens"), *c = json_object_get(u, "completion_tokens");
    if ((p && !json_is_integer(p)) || (c && !json_is_integer(c)) || (p && json_integer_value(p) < 0) ||
        (c && json_integer_value(c) < 0))
        return snprintf(msg, mlen, "usage: token counts are not integers >= 0"), -1;
    if (p) r->prompt_tokens = json_integer_value(p);
    if (c) r->completion_tokens = json_integer_value(c);
    return 0;
}

/* U+FFFD in s (llama.cpp's stand-in for an incomplete UTF-8 sequence) */
static int has_replacement(const char *s, size_t n)
{
    for (size_t i = 0; i + 3 <= n; i++)
        if (!memcmp(s + i, "\xef\xbf\xbd", 3)) return 1;
    return 0;
}

int ap_parse(const char *body, size_t len, int api, int what, size_t k, ap_resp *r, char *msg, size_t mlen)
{
    memset(r, 0, sizeof *r);
    json_error_t je;
    int oom;
    char *rewritten = nul_keys_rewritten(body, len, &oom);
    if (oom) return snprintf(msg, mlen, "out of memory"), -1;
    int nul_keys = rewritten != NULL;
    json_t *root = json_loadb(rewritten ? rewritten : body, len, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, &je);
    int rc = -1;
    if (!root) {
        snprintf(msg, mlen, "not JSON: byte %d: %s", je.position, je.text);
        free(rewritten);
        return -1;
    }
    if (!json_is_object(root)) {
        snprintf(msg, mlen, "not a JSON object");
        goto out;
    }
    json_t *error = json_object_get(root, "error");
    if (error && !json_is_null(error)) {
        json_t *m = json_is_object(error) ? json_object_get(error, "message") : error;
        snprintf(msg, mlen, "the endpoint answered with an error: %.300s",
                 json_is_string(m) ? json_string_value(m) : "(no message)");
        goto out;
    }
    json_t *choices = json_object_get(root, "choices");
    if (!json_is_array(choices) || json_array_size(choices) < 1) {
        snprintf(msg, mlen, "choices: missing, empty or not an array");
        goto out;
    }
    json_t *ch = json_array_get(choices, 0);
    if (!json_is_object(ch)) {
        snprintf(msg, mlen, "choices[0]: not an object");
        goto out;
    }
    if (usage_of(root, r, msg, mlen)) goto out;
    if (what == AP_PROMPT) {
        rc = parse_prompt(ch, k, r, msg, mlen);
        goto out;
    }
    json_t *text = api == AP_CHAT ? json_object_get(json_object_get(ch, "message"), "content")
                                  : json_object_get(ch, "text");
    if (!json_is_string(text)) {
        snprintf(msg, mlen, "%s: missing or not a string", api == AP_CHAT ? "choices[0].message.content" : "choices[0].text");
        goto out;
    }
    r->text_len = json_string_length(text);
    if (!(r->text = dup_n(json_string_value(text), r->text_len))) {
        snprintf(msg, mlen, "out of memory");
        goto out;
    }
    if (what == AP_TEXT) {
        rc = 0;
        goto out;
    }
    json_t *lp = json_object_get(ch, "logprobs");
    if (json_is_null(lp) && has_replacement(r->text, r->text_len)) {
        r->withheld = 1;
        rc = 0;
        goto out;
    }
    if (!json_is_object(lp)) {
        snprintf(msg, mlen, "choices[0].logprobs: missing or null (the endpoint returns no log-probabilities; "
                 "llama-server refuses them when it watermarks: use --mode answers)");
        goto out;
    }
    json_t *content = json_object_get(lp, "content");
    if (content && !json_is_null(content)) {
        if (!json_is_array(content)) {
            snprintf(msg, mlen, "choices[0].logprobs.content: not an array");
            goto out;
        }
        rc = parse_content(content, k, r, msg, mlen);
    } else {
        rc = parse_legacy(lp, k, nul_keys, r, msg, mlen);
    }
out:
    json_decref(root);
    free(rewritten);
    if (rc) ap_free(r);
    return rc;
}

/* 1 if r holds a position with at least one candidate. */
static int has_candidates(const ap_resp *r)
{
    for (size_t i = 0; i < r->n_toks; i++)
        if (r->toks[i].n_top) return 1;
    return 0;
}

int ap_probe(const char *body, size_t len, int api, size_t k, const char **why, char *msg, size_t mlen)
{
    static const int order[] = { AP_PROMPT, AP_LOGPROBS };
    static const char *const whys[] = { "the endpoint returned prompt_logprobs with candidates",
                                        "no prompt_logprobs; the endpoint returned top-k log-probabilities "
                                        "of the generated tokens" };
    ap_resp r;
    for (int i = 0; i < 2; i++) {
        if (order[i] == AP_PROMPT && api == AP_CHAT) continue; /* chat has no prompt log-probabilities */
        if (ap_parse(body, len, api, order[i], k, &r, msg, mlen)) continue;
        int got = has_candidates(&r);
        ap_free(&r);
        if (got) {
            *why = whys[i];
            return order[i];
        }
    }
    if (ap_parse(body, len, api, AP_TEXT, k, &r, msg, mlen)) return -1;
    ap_free(&r);
    *why = "the endpoint returned neither prompt_logprobs nor top-k log-probabilities, only the answer";
    return AP_TEXT;
}
