#include "input.h"

#include <errno.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

/* Length of the valid UTF-8 sequence at s (n bytes left), 0 if invalid
 * (overlong forms, surrogates and code points above U+10FFFF included). */
size_t utf8_valid_len(const unsigned char *s, size_t n)
{
    unsigned c = s[0];
    size_t len = c < 0x80 ? 1 : c >= 0xc2 && c <= 0xdf ? 2 : c >= 0xe0 && c <= 0xef ? 3 : c >= 0xf0 && c <= 0xf4 ? 4 : 0;
    if (len == 0 || len > n) return 0;
    for (size_t i = 1; i < len; i++)
        if ((s[i] & 0xc0) != 0x80) return 0;
    if (c == 0xe0 && s[1] < 0xa0) return 0; /* overlong */
    if (c == 0xed && s[1] > 0x9f) return 0; /* surrogate */
    if (c == 0xf0 && s[1] < 0x90) return 0; /* overlong */
    if (c == 0xf4 && s[1] > 0x8f) return 0; /* above U+10FFFF */
    return len;
}

int utf8_valid(const char *s, size_t n)
{
    for (size_t i = 0, k; i < n; i += k)
        if (!(k = utf8_valid_len((const unsigned char *)s + i, n - i))) return 0;
    return 1;
}

void reader_init(reader *r, in_mode mode, const char *field, const char *prompt_field,
                 char **files, int n_files, int skip_bad, int lossy)
{
    memset(r, 0, sizeof *r);
    r->mode = mode;
    r->field = field;
    r->prompt_field = prompt_field;
    r->files = files;
    r->n_files = n_files;
    r->skip_bad = skip_bad;
    r->lossy = lossy;
}

void doc_free(doc *d)
{
    free(d->text);
    free(d->prompt);
    free(d->ids);
    memset(d, 0, sizeof *d);
}

void reader_close(reader *r)
{
    if (r->f && r->f != stdin) fclose(r->f);
    r->f = NULL;
    free(r->buf);
    r->buf = NULL;
}

/* Open the next input; 0 when none is left, -1 on error. */
static int open_next(reader *r, char *err, size_t errlen)
{
    if (r->f && r->f != stdin) fclose(r->f);
    r->f = NULL;
    if (r->n_files == 0 && r->next_file == 0) {
        r->next_file = 1;
        r->f = stdin;
        r->name = "<stdin>";
    } else if (r->next_file < r->n_files) {
        r->name = r->files[r->next_file++];
        if (!strcmp(r->name, "-")) {
            r->f = stdin;
            r->name = "<stdin>";
        } else if (!(r->f = fopen(r->name, "rb"))) {
            snprintf(err, errlen, "%s: %s", r->name, strerror(errno));
            return -1;
        }
    } else {
        return 0;
    }
    r->line = 0;
    return 1;
}

static int read_all(reader *r, doc *d, char *err, size_t errlen)
{
    size_t cap = 1 << 16, len = 0;
    char *b = malloc(cap);
    for (;;) {
        if (!b) {
            snprintf(err, errlen, "%s: out of memory", r->name);
            return -1;
        }
        if (len == cap) {
            char *nb = realloc(b, cap *= 2);
            if (!nb) free(b);
            b = nb;
            continue;
        }
        size_t k = fread(b + len, 1, cap - len, r->f);
        len += k;
        if (k == 0) break;
    }
    if (ferror(r->f)) {
        snprintf(err, errlen, "%s: read error: %s", r->name, strerror(errno));
        free(b);
        return -1;
    }
    r->bytes += len;
    d->text = b;
    d->len = len;
    snprintf(d->source, sizeof d->source, "%s", r->name);
    return 1;
}

/* One line into r->buf (without the newline); 0 at end of file.  Counts
 * bytes itself (NUL bytes included) and stops at MAX_LINE instead of
 * buffering a runaway line. */
static int read_line(reader *r, size_t *len, char *err, size_t errlen)
{
    size_t n = 0;
    int c = EOF;
    while ((c = getc_unlocked(r->f)) != EOF) {
        if (n + 1 >= r->cap) {
            if (n >= MAX_LINE) {
                snprintf(err, errlen, "%s:%lu: line longer than %u MiB", r->name, r->line + 1, MAX_LINE >> 20);
                return -1;
            }
            size_t cap = r->cap ? r->cap * 2 : 4096;
            char *nb = realloc(r->buf, cap);
            if (!nb) {
                snprintf(err, errlen, "%s:%lu: out of memory", r->name, r->line + 1);
                return -1;
            }
            r->buf = nb;
            r->cap = cap;
        }
        if (c == '\n') break;
        r->buf[n++] = (char)c;
    }
    if (ferror(r->f)) {
        snprintf(err, errlen, "%s:%lu: read error: %s", r->name, r->line + 1, strerror(errno));
        return -1;
    }
    if (n == 0 && c == EOF) return 0;
    if (!r->buf) { /* an empty first line: make room for the terminator */
        r->buf = malloc(r->cap = 4096);
        if (!r->buf) return -1;
    }
    r->line++;
    r->bytes += n + (c == '\n');
    if (n && r->buf[n - 1] == '\r') n--;
    r->buf[n] = 0;
    *len = n;
    return 1;
}

static char *dup_bytes(const char *s, size_t n)
{
    char *p = malloc(n + 1);
    if (p) {
        memcpy(p, s, n);
        p[n] = 0;
    }
    return p;
}

/* --lossy on JSONL: jansson refuses a line that is not UTF-8, so each
 * maximal invalid sequence becomes U+FFFD first (as wm_encode does for
 * text).  Returns a new buffer in *out (NULL when the line was valid). */
static int repair_utf8(const char *s, size_t len, char **out, size_t *out_len)
{
    *out = NULL;
    if (utf8_valid(s, len)) return 1;
    char *o = malloc(3 * len + 1);
    if (!o) return 0;
    size_t n = 0;
    for (size_t i = 0, k; i < len; i += k) {
        k = utf8_valid_len((const unsigned char *)s + i, len - i);
        if (k) {
            memcpy(o + n, s + i, k);
            n += k;
            continue;
        }
        memcpy(o + n, "\xef\xbf\xbd", 3);
        n += 3;
        k = 1; /* then skip continuation bytes that cannot start a character */
        while (i + k < len && ((unsigned char)s[i + k] & 0xc0) == 0x80) k++;
    }
    *out = o;
    *out_len = n;
    return 1;
}

/* 1 ok, 0 bad line (err set), -1 fatal */
static int parse_jsonl(reader *r, size_t len, doc *d, char *err, size_t errlen)
{
    json_error_t je;
    char *fixed = NULL;
    if (r->lossy && !repair_utf8(r->buf, len, &fixed, &len)) {
        snprintf(err, errlen, "%s:%lu: out of memory", r->name, r->line);
        return -1;
    }
    json_t *o = json_loadb(fixed ? fixed : r->buf, len, JSON_ALLOW_NUL, &je); /* lengths are explicit below */
    free(fixed);
    if (!o) {
        snprintf(err, errlen, "%s:%lu: invalid JSON at column %d: %s", r->name, r->line, je.column, je.text);
        return 0;
    }
    int ok = 1;
    json_t *t = json_object_get(o, r->field);
    if (!json_is_object(o)) {
        snprintf(err, errlen, "%s:%lu: expected a JSON object", r->name, r->line);
        ok = 0;
    } else if (!json_is_string(t)) {
        snprintf(err, errlen, "%s:%lu: field \"%s\" missing or not a string", r->name, r->line, r->field);
        ok = 0;
    } else {
        d->text = dup_bytes(json_string_value(t), json_string_length(t));
        d->len = json_string_length(t);
        if (r->prompt_field) {
            json_t *p = json_object_get(o, r->prompt_field);
            if (!json_is_string(p)) {
                snprintf(err, errlen, "%s:%lu: field \"%s\" missing or not a string", r->name, r->line,
                         r->prompt_field);
                ok = 0;
            } else {
                d->prompt = dup_bytes(json_string_value(p), json_string_length(p));
                d->prompt_len = json_string_length(p);
            }
        }
    }
    json_decref(o);
    if (!ok) doc_free(d);
    return ok;
}

static int parse_ids(reader *r, size_t len, doc *d, char *err, size_t errlen)
{
    size_t cap = 64, n = 0;
    d->ids = malloc(cap * sizeof *d->ids);
    char *p = r->buf, *end = r->buf + len;
    while (p < end && (*p == ' ' || *p == '\t')) p++;
    if (p == end) {
        snprintf(err, errlen, "%s:%lu: blank line: expected token ids", r->name, r->line);
        doc_free(d);
        return 0;
    }
    while (d->ids) {
        while (p < end && (*p == ' ' || *p == '\t')) p++;
        if (p >= end) break;
        /* Strict: decimal digits only, no sign, no leading zero. */
        char *q = p;
        long v = 0;
        while (q < end && *q >= '0' && *q <= '9' && v <= INT32_MAX) v = v * 10 + (*q++ - '0');
        if (q == p || v > INT32_MAX || (*p == '0' && q - p > 1) || (q < end && *q != ' ' && *q != '\t')) {
            snprintf(err, errlen, "%s:%lu:%ld: '%.20s' is not a token id (decimal digits, no sign or leading zero)",
                     r->name, r->line, (long)(p - r->buf) + 1, p);
            doc_free(d);
            return 0;
        }
        if (n == cap) {
            wm_token *ni = realloc(d->ids, (cap *= 2) * sizeof *ni);
            if (!ni) break;
            d->ids = ni;
        }
        d->ids[n++] = (wm_token)v;
        p = q;
    }
    if (!d->ids) {
        snprintf(err, errlen, "%s:%lu: out of memory", r->name, r->line);
        return -1;
    }
    d->n_ids = n;
    return 1;
}

int reader_next(reader *r, doc *d, char *err, size_t errlen)
{
    memset(d, 0, sizeof *d);
    for (;;) {
        if (!r->f) {
            int o = open_next(r, err, errlen);
            if (o <= 0) return o;
            if (r->mode == IN_PLAIN) return read_all(r, d, err, errlen);
        }
        if (r->mode == IN_PLAIN) {
            if (r->f != stdin) fclose(r->f);
            r->f = NULL;
            continue;
        }
        size_t len;
        int l = read_line(r, &len, err, errlen);
        if (l < 0) return -1;
        if (l == 0) {
            if (r->f != stdin) fclose(r->f);
            r->f = NULL;
            if (r->next_file >= r->n_files) return 0;
            continue;
        }
        if (memchr(r->buf, 0, len)) {
            snprintf(err, errlen, "%s:%lu: NUL byte in line", r->name, r->line);
        } else {
            int ok;
            if (r->mode == IN_JSONL) {
                if (len == 0 || strspn(r->buf, " \t") == len) continue; /* blank line */
                ok = parse_jsonl(r, len, d, err, errlen);
            } else {
                ok = parse_ids(r, len, d, err, errlen);
            }
            if (ok < 0) return -1;
            if (ok) {
                snprintf(d->source, sizeof d->source, "%s:%lu", r->name, r->line);
                return 1;
            }
        }
        if (!r->skip_bad) return -1;
        r->skipped++;
    }
}
