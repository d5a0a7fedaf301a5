/* jansson and memory.  json_loadb does not report its own allocation
 * failures faithfully (jansson 2.14, src/load.c): a json_object(),
 * json_array() or value that cannot be allocated ends the parse with no
 * message; a string that cannot be copied is reported as "invalid token";
 * and when the lexer's token buffer cannot grow, the byte is dropped
 * without a word, so a string, key or number comes out shorter (or as
 * another number) in a tree that json_loadb returns as a success.  A
 * tokenizer built from such a tree would encode with the wrong vocabulary.
 * jansson's allocator is process-wide and belongs to the program, not to
 * libwm, so the loader checks instead, in one pass over the text and with
 * no memory of its own:
 *
 * - tok_json_matches: a parsed tree is used only if it is exactly what the
 *   text says (every string, key, number and literal, in order: jansson
 *   keeps an object's members in insertion order, and with
 *   JSON_REJECT_DUPLICATES that is the text's order);
 * - tok_json_failure: a failed parse is the input's fault only if the text
 *   is not valid JSON as jansson reads it (same grammar, UTF-8 rules, depth
 *   limit, integer and real range, no \u0000); otherwise it was memory.
 *
 * Reals are compared to 1e-12 relative: the checker converts decimal text
 * on its own (strtod would depend on the program's locale), to long double
 * precision; a dropped digit changes a real by far more, except past its
 * 12th significant digit. */
#include "tokenizer_internal.h"

#include <float.h>
#include <math.h>

typedef struct jw {
    const unsigned char *p, *end;
    size_t depth;
} jw;

static int peek(const jw *w) { return w->p < w->end ? *w->p : -1; }

static void skip_ws(jw *w)
{
    while (w->p < w->end && (*w->p == ' ' || *w->p == '\t' || *w->p == '\n' || *w->p == '\r')) w->p++;
}

/* Length of the UTF-8 sequence at p (jansson's rules: no overlong form,
 * no surrogate, nothing past U+10FFFF), 0 if invalid. */
static size_t utf8_len(const unsigned char *p, const unsigned char *end)
{
    unsigned c = p[0];
    size_t n = c >= 0xc2 && c <= 0xdf ? 2 : c >= 0xe0 && c <= 0xef ? 3 : c >= 0xf0 && c <= 0xf4 ? 4 : 0;
    if (n == 0 || (size_t)(end - p) < n) return 0;
    uint32_t v = c & (0x7fu >> n);
    for (size_t i = 1; i < n; i++) {
        if ((p[i] & 0xc0) != 0x80) return 0;
        v = v << 6 | (p[i] & 0x3fu);
    }
    if ((n == 3 && v < 0x800) || (n == 4 && (v < 0x10000 || v > 0x10ffff)) || (v >= 0xd800 && v <= 0xdfff))
        return 0;
    return n;
}

static int hex4(const unsigned char *p, const unsigned char *end, uint32_t *v)
{
    if (end - p < 4) return 0;
    *v = 0;
    for (int i = 0; i < 4; i++) {
        int c = p[i], d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10
                                                       : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
        if (d < 0) return 0;
        *v = *v << 4 | (uint32_t)d;
    }
    return 1;
}

/* The string at w->p (opening quote), decoded and compared with want[0..n)
 * (want NULL: only checked).  1 if valid and equal. */
static int walk_string(jw *w, const char *want, size_t n)
{
    size_t at = 0; /* bytes of want matched */
    w->p++;
    for (;;) {
        if (w->p >= w->end) return 0;
        unsigned c = *w->p;
        unsigned char dec[4];
        size_t k;
        if (c == '"') {
            w->p++;
            return !want || at == n;
        }
        if (c < 0x20) return 0; /* control characters, NUL included */
        if (c == '\\') {
            if (w->end - w->p < 2) return 0;
            unsigned e = w->p[1];
            if (e == 'u') {
                uint32_t v, lo;
                if (!hex4(w->p + 2, w->end, &v)) return 0;
                w->p += 6;
                if (v >= 0xd800 && v <= 0xdbff) {
                    if (w->end - w->p < 6 || w->p[0] != '\\' || w->p[1] != 'u' || !hex4(w->p + 2, w->end, &lo) ||
                        lo < 0xdc00 || lo > 0xdfff)
                        return 0;
                    w->p += 6;
                    v = 0x10000 + ((v - 0xd800) << 10) + (lo - 0xdc00);
                } else if (v >= 0xdc00 && v <= 0xdfff) {
                    return 0;
                }
                if (v == 0) return 0; /* \u0000: refused without JSON_ALLOW_NUL */
                k = (size_t)utf8proc_encode_char((utf8proc_int32_t)v, dec);
            } else {
                static const char from[] = "\"\\/bfnrt", to[] = "\"\\/\b\f\n\r\t";
                const char *f = e ? strchr(from, (int)e) : NULL;
                if (!f) return 0;
                dec[0] = (unsigned char)to[f - from];
                k = 1;
                w->p += 2;
            }
        } else {
            k = c < 0x80 ? 1 : utf8_len(w->p, w->end);
            if (k == 0) return 0;
            memcpy(dec, w->p, k);
            w->p += k;
        }
        if (want) {
            if (n - at < k || memcmp(want + at, dec, k) != 0) return 0;
            at += k;
        }
    }
}

/* A number as jansson lexes it: -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)?,
 * an integer without fraction or exponent (long long range), else a real
 * (finite as a double).  want NULL: only checked. */
static int walk_number(jw *w, const json_t *want)
{
    int neg = peek(w) == '-';
    if (neg) w->p++;
    if (peek(w) < '0' || peek(w) > '9') return 0;
    if (peek(w) == '0' && w->p + 1 < w->end && w->p[1] >= '0' && w->p[1] <= '9') return 0;
    uint64_t mag = 0; /* the integer's magnitude, saturated */
    long double m = 0; /* the real's significant digits ... */
    long e10 = 0;      /* ... and power of ten */
    int digits = 0, overflow = 0;
    for (; peek(w) >= '0' && peek(w) <= '9'; w->p++) {
        unsigned d = (unsigned)(*w->p - '0');
        if (mag > (UINT64_MAX - d) / 10) overflow = 1;
        else mag = mag * 10 + d;
        if (digits < 30) m = m * 10 + d, digits += m != 0;
        else e10++;
    }
    int real = 0;
    if (peek(w) == '.') {
        real = 1;
        w->p++;
        if (peek(w) < '0' || peek(w) > '9') return 0;
        for (; peek(w) >= '0' && peek(w) <= '9'; w->p++)
            if (digits < 30) m = m * 10 + (*w->p - '0'), digits += m != 0, e10--;
    }
    if (peek(w) == 'e' || peek(w) == 'E') {
        real = 1;
        w->p++;
        int eneg = peek(w) == '-';
        if (peek(w) == '-' || peek(w) == '+') w->p++;
        if (peek(w) < '0' || peek(w) > '9') return 0;
        long x = 0;
        for (; peek(w) >= '0' && peek(w) <= '9'; w->p++)
            if (x < 100000) x = x * 10 + (*w->p - '0');
        e10 += eneg ? -x : x;
    }
    if (!real) { /* strtoll's range, as jansson reads integers */
        if (overflow || mag > (uint64_t)INT64_MAX + (uint64_t)neg) return 0;
        if (!want) return 1;
        json_int_t v = neg ? (mag == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(json_int_t)mag) : (json_int_t)mag;
        return json_is_integer(want) && json_integer_value(want) == v;
    }
    /* digits + e10 is the decimal exponent past the leading digit, + 1 */
    long double v = 0;
    if (m != 0) {
        long lead = e10 + digits;
        if (lead > 400) return 0;           /* past DBL_MAX: jansson's "real number overflow" */
        if (lead < -400) v = 0;             /* underflows to 0 or a subnormal: accepted */
        else v = m * powl(10.0L, (long double)e10);
        if (v > (long double)DBL_MAX) return 0;
    }
    if (neg) v = -v;
    if (!want) return 1;
    if (!json_is_real(want)) return 0;
    long double got = json_real_value(want), tol = 1e-12L * fmaxl(fabsl(got), fabsl(v));
    return fabsl(got - v) <= tol || (fabsl(got) < 1e-290L && fabsl(v) < 1e-290L);
}

static int walk_value(jw *w, const json_t *want);

static int walk_object(jw *w, const json_t *want)
{
    void *it = want ? json_object_iter((json_t *)want) : NULL;
    w->p++;
    skip_ws(w);
    if (peek(w) == '}') {
        w->p++;
        return !want || !it;
    }
    for (;;) {
        if (peek(w) != '"' || (want && !it)) return 0;
        const char *key = it ? json_object_iter_key(it) : NULL;
        if (!walk_string(w, key, key ? json_object_iter_key_len(it) : 0)) return 0;
        skip_ws(w);
        if (peek(w) != ':') return 0;
        w->p++;
        skip_ws(w);
        if (!walk_value(w, it ? json_object_iter_value(it) : NULL)) return 0;
        if (it) it = json_object_iter_next((json_t *)want, it);
        skip_ws(w);
        if (peek(w) == ',') {
            w->p++;
            skip_ws(w);
            continue;
        }
        if (peek(w) != '}') return 0;
        w->p++;
        return !want || !it;
    }
}

static int walk_array(jw *w, const json_t *want)
{
    size_t i = 0;
    w->p++;
    skip_ws(w);
    if (peek(w) == ']') {
        w->p++;
        return !want || json_array_size(want) == 0;
    }
    for (;;) {
        if (want && i >= json_array_size(want)) return 0;
        if (!walk_value(w, want ? json_array_get(want, i) : NULL)) return 0;
        i++;
        skip_ws(w);
        if (peek(w) == ',') {
            w->p++;
            skip_ws(w);
            continue;
        }
        if (peek(w) != ']') return 0;
        w->p++;
        return !want || json_array_size(want) == i;
    }
}

/* true, false, null: jansson reads a whole run of letters, then names it. */
static int walk_literal(jw *w, const json_t *want)
{
    const unsigned char *s = w->p;
    while (w->p < w->end && ((*w->p >= 'a' && *w->p <= 'z') || (*w->p >= 'A' && *w->p <= 'Z'))) w->p++;
    size_t n = (size_t)(w->p - s);
    if (n == 4 && !memcmp(s, "true", 4)) return !want || json_is_true(want);
    if (n == 5 && !memcmp(s, "false", 5)) return !want || json_is_false(want);
    if (n == 4 && !memcmp(s, "null", 4)) return !want || json_is_null(want);
    return 0;
}

static int walk_value(jw *w, const json_t *want)
{
    if (++w->depth > JSON_PARSER_MAX_DEPTH) return 0;
    int c = peek(w), ok;
    if (c == '{') ok = (!want || json_is_object(want)) && walk_object(w, want);
    else if (c == '[') ok = (!want || json_is_array(want)) && walk_array(w, want);
    else if (c == '"') {
        /* a value string holds no NUL: \u0000 is refused in walk_string */
        ok = (!want || json_is_string(want)) &&
             walk_string(w, want ? json_string_value(want) : NULL, want ? json_string_length(want) : 0);
    } else if (c == '-' || (c >= '0' && c <= '9')) ok = walk_number(w, want);
    else ok = walk_literal(w, want);
    w->depth--;
    return ok;
}

/* The whole text: one object or array (json_loadb without JSON_DECODE_ANY),
 * then only white space. */
static int walk(const char *json, size_t len, const json_t *want)
{
    jw w = { (const unsigned char *)json, (const unsigned char *)json + len, 0 };
    skip_ws(&w);
    if (peek(&w) != '{' && peek(&w) != '[') return 0;
    if (!walk_value(&w, want)) return 0;
    skip_ws(&w);
    return w.p == w.end;
}

int tok_json_matches(const char *json, size_t len, const json_t *root) { return walk(json, len, root); }

wm_status tok_json_failure(const char *json, size_t len, const json_error_t *je)
{
    /* jansson gives every fault it finds in the text a message */
    if (!je->text[0] || json_error_code(je) == json_error_out_of_memory) return WM_ERR_NOMEM;
    if (!walk(json, len, NULL)) return WM_ERR_FORMAT;
    /* valid text: the failure was memory, unless the text repeats a key in
     * an object (the one rule checked here only by jansson) */
    return json_error_code(je) == json_error_duplicate_key ? WM_ERR_FORMAT : WM_ERR_NOMEM;
}
