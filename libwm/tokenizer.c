/* Byte-level BPE from Hugging Face tokenizer.json.
 *
 * Pipeline of one wm_encode call, as in `tokenizers`:
 *   UTF-8 check -> split on added tokens -> normalize each other segment ->
 *   pre-tokenize (Split / ByteLevel / Digits, in file order) -> BPE each piece.
 * Everything after loading works on raw bytes: vocabulary strings are mapped
 * back through GPT-2's byte<->unicode table once, at load time, so the BPE
 * never touches the printable stand-in characters. */
#include "internal.h"

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#define PCRE2_CODE_UNIT_WIDTH 8
#include <jansson.h>
#include <pcre2.h>
#include <sodium.h>
#include <utf8proc.h>

#define MAX_STEPS 16

enum { PRE_SPLIT, PRE_BYTELEVEL };
enum { B_REMOVED, B_ISOLATED, B_MERGED_PREV, B_MERGED_NEXT, B_CONTIGUOUS };

typedef struct pre_step {
    int type;
    pcre2_code *re;       /* PRE_SPLIT, or PRE_BYTELEVEL with use_regex */
    int behavior, invert; /* PRE_SPLIT */
    int prefix_space;     /* PRE_BYTELEVEL */
    int streamable;       /* a cut may fall inside this step's subject: see wm_encode_stream */
} pre_step;

typedef struct added_token {
    const unsigned char *text; /* into the pool */
    uint32_t len;
    wm_token id;
    int special, normalized;
} added_token;

/* Open-addressing map from byte strings (in the pool) to ids. */
typedef struct strmap {
    int32_t *slot; /* id + 1; 0 empty */
    size_t cap;
} strmap;

/* (left id, right id) -> rank and merged id. */
typedef struct pairmap {
    uint64_t *key; /* (a << 32 | b) + 1; 0 empty */
    uint64_t *val; /* rank << 32 | merged id */
    size_t cap;
} pairmap;

struct wm_tokenizer {
    unsigned char sha256[32];
    uint32_t n_ids;
    unsigned char *pool;   /* raw bytes of every token */
    size_t pool_len, pool_cap;
    uint64_t *piece;       /* id -> off << 32 | len into pool; UINT64_MAX unused */
    strmap vocab;          /* raw bytes -> id, byte-level tokens only */
    int32_t byte_id[256];
    pairmap merges;
    int ignore_merges;
    int n_norm;
    utf8proc_option_t norm[MAX_STEPS];
    int n_pre;
    pre_step pre[MAX_STEPS];
    added_token *added;    /* sorted by length, longest first */
    size_t n_added;
    uint8_t added_first[256]; /* first bytes of added tokens */
    size_t added_max;         /* longest added token, bytes */
    int prefix_late;          /* a ByteLevel prefix step after the first regex step */
};

/* ---- small helpers ------------------------------------------------------- */

static void seterr(wm_error *err, const char *fmt, ...)
{
    if (!err) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->message, sizeof err->message, fmt, ap);
    va_end(ap);
}

static uint64_t hash_bytes(const unsigned char *p, size_t n)
{
    uint64_t h = 0xcbf29ce484222325ULL ^ n;
    for (size_t i = 0; i < n; i++) h = (h ^ p[i]) * 0x100000001b3ULL;
    return wm__mix64(h);
}

static size_t pow2_at_least(size_t n)
{
    size_t c = 16;
    while (c < n) c <<= 1;
    return c;
}

static void piece_of(const wm_tokenizer *t, wm_token id, const unsigned char **p, size_t *n)
{
    uint64_t e = t->piece[id];
    *p = t->pool + (e >> 32);
    *n = (size_t)(uint32_t)e;
}

static int strmap_init(strmap *m, size_t n)
{
    m->cap = pow2_at_least(2 * n);
    m->slot = calloc(m->cap, sizeof *m->slot);
    return m->slot != NULL;
}

static int32_t strmap_get(const wm_tokenizer *t, const unsigned char *s, size_t n)
{
    const strmap *m = &t->vocab;
    for (size_t i = hash_bytes(s, n) & (m->cap - 1);; i = (i + 1) & (m->cap - 1)) {
        int32_t v = m->slot[i];
        if (!v) return -1;
        const unsigned char *p;
        size_t len;
        piece_of(t, v - 1, &p, &len);
        if (len == n && memcmp(p, s, n) == 0) return v - 1;
    }
}

/* Insert id (whose piece is already in the pool); keeps the first id of a
 * duplicate string, as the reference's HashMap built from JSON would not
 * guarantee anything either: duplicates are refused at load. */
static int strmap_put(wm_tokenizer *t, wm_token id)
{
    strmap *m = &t->vocab;
    const unsigned char *s;
    size_t n;
    piece_of(t, id, &s, &n);
    for (size_t i = hash_bytes(s, n) & (m->cap - 1);; i = (i + 1) & (m->cap - 1)) {
        int32_t v = m->slot[i];
        if (!v) {
            m->slot[i] = id + 1;
            return 1;
        }
        const unsigned char *p;
        size_t len;
        piece_of(t, v - 1, &p, &len);
        if (len == n && memcmp(p, s, n) == 0) return 0;
    }
}

static int pairmap_init(pairmap *m, size_t n)
{
    m->cap = pow2_at_least(2 * n);
    m->key = calloc(m->cap, sizeof *m->key);
    m->val = malloc(m->cap * sizeof *m->val);
    return m->key && m->val;
}

static int pairmap_put(pairmap *m, uint32_t a, uint32_t b, uint32_t rank, uint32_t merged)
{
    uint64_t k = ((uint64_t)a << 32 | b) + 1;
    for (size_t i = wm__mix64(k) & (m->cap - 1);; i = (i + 1) & (m->cap - 1)) {
        if (m->key[i] == k) return 0; /* duplicate merge: the first (lower rank) wins */
        if (!m->key[i]) {
            m->key[i] = k;
            m->val[i] = (uint64_t)rank << 32 | merged;
            return 1;
        }
    }
}

static int pairmap_get(const pairmap *m, uint32_t a, uint32_t b, uint64_t *val)
{
    uint64_t k = ((uint64_t)a << 32 | b) + 1;
    for (size_t i = wm__mix64(k) & (m->cap - 1);; i = (i + 1) & (m->cap - 1)) {
        if (m->key[i] == k) {
            *val = m->val[i];
            return 1;
        }
        if (!m->key[i]) return 0;
    }
}

static long pool_add(wm_tokenizer *t, const unsigned char *s, size_t n)
{
    if (t->pool_len + n > t->pool_cap) {
        size_t cap = (t->pool_cap + n) * 2;
        unsigned char *p = realloc(t->pool, cap);
        if (!p) return -1;
        t->pool = p;
        t->pool_cap = cap;
    }
    memcpy(t->pool + t->pool_len, s, n);
    t->pool_len += n;
    return (long)(t->pool_len - n);
}

/* GPT-2's table: printable bytes stand for themselves, the others for
 * U+0100 onwards in byte order. */
static int byte_of_char[324];

static void init_byte_table(void)
{
    int n = 0;
    for (int b = 0; b < 256; b++) {
        int printable = (b >= '!' && b <= '~') || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff);
        byte_of_char[printable ? b : 256 + n++] = b;
    }
}

/* Vocabulary string -> raw bytes through the table; 0 if some character is
 * not in it (the token is then not reachable by BPE, only as added text). */
static int unmap_bytes(const char *s, size_t len, unsigned char *out, size_t *out_len)
{
    size_t o = 0;
    for (size_t i = 0; i < len;) {
        utf8proc_int32_t cp;
        utf8proc_ssize_t k = utf8proc_iterate((const utf8proc_uint8_t *)s + i, (utf8proc_ssize_t)(len - i), &cp);
        if (k <= 0 || cp < 0 || cp >= 324) return 0;
        if (cp < 256) {
            int printable = (cp >= '!' && cp <= '~') || (cp >= 0xa1 && cp <= 0xac) || (cp >= 0xae && cp <= 0xff);
            if (!printable) return 0;
        }
        out[o++] = (unsigned char)byte_of_char[cp];
        i += (size_t)k;
    }
    *out_len = o;
    return 1;
}

/* ---- loading -------------------------------------------------------------- */

typedef struct loader {
    wm_tokenizer *t;
    const char *name;
    wm_error *err;
} loader;

static wm_status lerr(loader *L, const char *fmt, ...)
{
    char msg[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    seterr(L->err, "%s: %s", L->name, msg);
    return WM_ERR_FORMAT;
}

static const char *jstr(json_t *obj, const char *key)
{
    json_t *v = json_object_get(obj, key);
    return json_is_string(v) ? json_string_value(v) : NULL;
}

static int jtrue(json_t *obj, const char *key, int dflt)
{
    json_t *v = json_object_get(obj, key);
    return v && !json_is_null(v) ? json_is_true(v) : dflt;
}

/* ---- Unicode version ----------------------------------------------------
 *
 * The reference's regex engine (Oniguruma, bundled by the onig crate) knows
 * Unicode 15.0; Debian 12's PCRE2 10.42 knows 14.0, so the 4,489 characters
 * assigned in 15.0 (U+1FAAE HAIR PICK, U+1FAE8 SHAKING FACE, the Kawi
 * digits, CJK Extension H ...) are Cn to it and a pattern's \p{S}, \p{L},
 * \p{N} ... would miss them.  utf8proc 2.8 carries Unicode 15.0 data, so the
 * translation below adds, to every general-category property, the code
 * points utf8proc assigns to that category while PCRE2 calls them
 * unassigned.  When PCRE2 catches up the lists come out empty. */

enum { N_CATS = 30 };
static char *cat_extra[N_CATS]; /* per utf8proc category: "\x{..}-\x{..}..." or NULL */
static int unicode_patch_failed;

static void append_range(char **buf, size_t *len, size_t *cap, int32_t lo, int32_t hi)
{
    if (*len + 32 > *cap) {
        size_t nc = *cap ? *cap * 2 : 256;
        char *nb = realloc(*buf, nc);
        if (!nb) {
            unicode_patch_failed = 1;
            return;
        }
        *buf = nb;
        *cap = nc;
    }
    *len += (size_t)(lo == hi ? sprintf(*buf + *len, "\\x{%X}", (unsigned)lo)
                              : sprintf(*buf + *len, "\\x{%X}-\\x{%X}", (unsigned)lo, (unsigned)hi));
}

static void init_unicode_patch(void)
{
    int code;
    PCRE2_SIZE off;
    pcre2_code *cn = pcre2_compile((PCRE2_SPTR) "\\p{Cn}", PCRE2_ZERO_TERMINATED,
                                   PCRE2_UTF | PCRE2_UCP | PCRE2_ANCHORED, &code, &off, NULL);
    pcre2_match_data *md = cn ? pcre2_match_data_create(1, NULL) : NULL;
    if (!cn || !md) {
        unicode_patch_failed = 1;
        goto out;
    }
    pcre2_jit_compile(cn, PCRE2_JIT_COMPLETE);
    size_t len[N_CATS] = { 0 }, cap[N_CATS] = { 0 };
    int32_t run_lo[N_CATS], run_hi[N_CATS];
    for (int c = 0; c < N_CATS; c++) run_lo[c] = run_hi[c] = -2;
    for (int32_t cp = 0; cp <= 0x10FFFF; cp++) {
        utf8proc_category_t c = utf8proc_category(cp);
        /* Co (private use) and Cs are never Cn to either; Cn stays Cn */
        if (c == UTF8PROC_CATEGORY_CN || c == UTF8PROC_CATEGORY_CO || c == UTF8PROC_CATEGORY_CS || (int)c >= N_CATS)
            continue;
        utf8proc_uint8_t u[4];
        utf8proc_ssize_t k = utf8proc_encode_char(cp, u);
        if (pcre2_match(cn, u, (PCRE2_SIZE)k, 0, PCRE2_NO_UTF_CHECK, md, NULL) < 0) continue;
        if (run_hi[c] == cp - 1) {
            run_hi[c] = cp;
            continue;
        }
        if (run_lo[c] >= 0) append_range(&cat_extra[c], &len[c], &cap[c], run_lo[c], run_hi[c]);
        run_lo[c] = run_hi[c] = cp;
    }
    for (int c = 0; c < N_CATS; c++)
        if (run_lo[c] >= 0) append_range(&cat_extra[c], &len[c], &cap[c], run_lo[c], run_hi[c]);
out:
    pcre2_match_data_free(md);
    pcre2_code_free(cn);
}

/* Categories named by a property (\p{L}, \p{Lu}, \p{L&}); 0 if the name is
 * not a general category (a script, Any, Xan ...: left as PCRE2 has it). */
static int cats_of(const char *name, size_t n, int out[N_CATS])
{
    static const char *names[N_CATS] = {
        [UTF8PROC_CATEGORY_LU] = "Lu", [UTF8PROC_CATEGORY_LL] = "Ll", [UTF8PROC_CATEGORY_LT] = "Lt",
        [UTF8PROC_CATEGORY_LM] = "Lm", [UTF8PROC_CATEGORY_LO] = "Lo", [UTF8PROC_CATEGORY_MN] = "Mn",
        [UTF8PROC_CATEGORY_MC] = "Mc", [UTF8PROC_CATEGORY_ME] = "Me", [UTF8PROC_CATEGORY_ND] = "Nd",
        [UTF8PROC_CATEGORY_NL] = "Nl", [UTF8PROC_CATEGORY_NO] = "No", [UTF8PROC_CATEGORY_PC] = "Pc",
        [UTF8PROC_CATEGORY_PD] = "Pd", [UTF8PROC_CATEGORY_PS] = "Ps", [UTF8PROC_CATEGORY_PE] = "Pe",
        [UTF8PROC_CATEGORY_PI] = "Pi", [UTF8PROC_CATEGORY_PF] = "Pf", [UTF8PROC_CATEGORY_PO] = "Po",
        [UTF8PROC_CATEGORY_SM] = "Sm", [UTF8PROC_CATEGORY_SC] = "Sc", [UTF8PROC_CATEGORY_SK] = "Sk",
        [UTF8PROC_CATEGORY_SO] = "So", [UTF8PROC_CATEGORY_ZS] = "Zs", [UTF8PROC_CATEGORY_ZL] = "Zl",
        [UTF8PROC_CATEGORY_ZP] = "Zp", [UTF8PROC_CATEGORY_CC] = "Cc", [UTF8PROC_CATEGORY_CF] = "Cf",
    };
    int k = 0;
    int amp = n == 2 && (!memcmp(name, "L&", 2) || !memcmp(name, "LC", 2));
    for (int c = 1; c < N_CATS; c++) {
        if (!names[c]) continue;
        if ((n == 1 && names[c][0] == name[0]) || (n == 2 && !memcmp(names[c], name, 2)) ||
            (amp && (c == UTF8PROC_CATEGORY_LU || c == UTF8PROC_CATEGORY_LL || c == UTF8PROC_CATEGORY_LT)))
            out[k++] = c;
    }
    return k;
}

static size_t extra_of(const int *cats, int k, char *o)
{
    size_t n = 0;
    for (int i = 0; i < k; i++)
        if (cat_extra[cats[i]]) {
            size_t l = strlen(cat_extra[cats[i]]);
            if (o) memcpy(o + n, cat_extra[cats[i]], l);
            n += l;
        }
    return n;
}

/* Index just past the first `a b` pair at or after p[i], or len. */
static size_t past_pair(const char *p, size_t i, size_t len, char a, char b)
{
    for (; i + 1 < len; i++)
        if (p[i] == a && p[i + 1] == b) return i + 2;
    return len;
}

/* Oniguruma -> PCRE2.  Every construct these files use reads the same in
 * PCRE2 with UTF + UCP except two.  Oniguruma's \s is Unicode White_Space,
 * PCRE2's is \p{Zs}, \h or \v, which also takes U+180E: so \s and \S become
 * \p{White_Space} and \P{White_Space}, inside classes too (as the Hugging
 * Face JavaScript port does).  And the Unicode version (above): \p{X}, \P{X}
 * and \d (= \p{Nd}) gain the newer code points, as [\p{X}extra] outside a
 * class, [^\p{X}extra] for \P{X}, \p{X}extra inside one.  A \P{X} (or \D)
 * inside a class cannot lose them in PCRE2 10.42's syntax and is left as
 * is: no tokenizer we know writes one.  *out is malloc'd. */
static char *translate_re(const char *p, size_t len, size_t *out_len)
{
    size_t cap = len * 8 + 1, n = 0;
    for (size_t i = 0; i + 1 < len; i++)
        if (p[i] == '\\' && (p[i + 1] == 'p' || p[i + 1] == 'P' || p[i + 1] == 'd' || p[i + 1] == 'D')) {
            int all[N_CATS], k = cats_of("L", 1, all);
            k += cats_of("M", 1, all + k), k += cats_of("N", 1, all + k), k += cats_of("P", 1, all + k);
            k += cats_of("S", 1, all + k), k += cats_of("Z", 1, all + k), k += cats_of("C", 1, all + k);
            cap += extra_of(all, k, NULL) + 8;
        }
    char *o = malloc(cap);
    if (!o) return NULL;
    int in_class = 0;
    for (size_t i = 0; i < len; i++) {
        char c = p[i];
        if (c == '[' && !in_class) {
            in_class = 1;
            o[n++] = c;
            if (i + 1 < len && p[i + 1] == '^') o[n++] = p[++i];
            if (i + 1 < len && p[i + 1] == ']') o[n++] = p[++i]; /* a literal ] first */
            continue;
        }
        if (c == '[' && in_class && i + 1 < len && p[i + 1] == ':') { /* [:alpha:] */
            size_t stop = past_pair(p, i + 2, len, ':', ']');
            memcpy(o + n, p + i, stop - i);
            n += stop - i;
            i = stop - 1;
            continue;
        }
        if (c == ']' && in_class) {
            in_class = 0;
            o[n++] = c;
            continue;
        }
        if (c != '\\' || i + 1 == len) {
            o[n++] = c;
            continue;
        }
        char e = p[i + 1];
        if (e == 's' || e == 'S') {
            n += (size_t)sprintf(o + n, "\\%c{White_Space}", e == 's' ? 'p' : 'P');
            i++;
            continue;
        }
        if (e == 'Q') { /* \Q...\E: literal */
            size_t stop = past_pair(p, i + 2, len, '\\', 'E');
            memcpy(o + n, p + i, stop - i);
            n += stop - i;
            i = stop - 1;
            continue;
        }
        /* the escape itself, then the property name if any */
        size_t start = i, name_at = 0, name_len = 0, stop = i + 2;
        int neg = e == 'P' || e == 'D';
        if (e == 'p' || e == 'P') {
            if (i + 2 < len && p[i + 2] == '{') {
                const char *end = memchr(p + i + 3, '}', len - i - 3);
                if (end) {
                    name_at = i + 3;
                    name_len = (size_t)(end - p) - name_at;
                    stop = (size_t)(end - p) + 1;
                    if (name_len && p[name_at] == '^') neg = !neg, name_at++, name_len--;
                }
            } else if (i + 2 < len) {
                name_at = i + 2, name_len = 1, stop = i + 3;
            }
        }
        int cats[N_CATS], k = 0;
        if (e == 'd' || e == 'D') k = cats_of("Nd", 2, cats);
        else if (name_len == 1 || name_len == 2) k = cats_of(p + name_at, name_len, cats);
        size_t extra = k ? extra_of(cats, k, NULL) : 0;
        if (!extra || (neg && in_class)) {
            memcpy(o + n, p + start, stop - start);
            n += stop - start;
        } else {
            if (!in_class) o[n++] = '[';
            if (!in_class && neg) o[n++] = '^';
            if (e == 'd' || e == 'D') {
                n += (size_t)sprintf(o + n, "\\p{Nd}");
            } else {
                n += (size_t)sprintf(o + n, "\\p{");
                memcpy(o + n, p + name_at, name_len);
                n += name_len;
                o[n++] = '}';
            }
            n += extra_of(cats, k, o + n);
            if (!in_class) o[n++] = ']';
        }
        i = stop - 1;
    }
    o[n] = 0;
    *out_len = n;
    return o;
}

static wm_status compile_re(loader *L, const char *what, const char *pattern, size_t len,
                            int literal, pcre2_code **out)
{
    int code;
    PCRE2_SIZE off;
    uint32_t opts = PCRE2_UTF | PCRE2_UCP | (literal ? PCRE2_LITERAL : 0);
    char *tr = NULL;
    if (!literal) {
        if (!(tr = translate_re(pattern, len, &len))) return WM_ERR_NOMEM;
        pattern = tr;
    }
    pcre2_code *re = pcre2_compile((PCRE2_SPTR)pattern, len, opts, &code, &off, NULL);
    free(tr);
    if (!re) {
        PCRE2_UCHAR msg[160];
        pcre2_get_error_message(code, msg, sizeof msg);
        return lerr(L, "%s: regex not accepted at offset %zu: %s", what, (size_t)off, (char *)msg);
    }
    /* best effort: falls back to the interpreter; partial for wm_encode_stream */
    pcre2_jit_compile(re, PCRE2_JIT_COMPLETE | PCRE2_JIT_PARTIAL_HARD);
    *out = re;
    return WM_OK;
}

/* The GPT-2 pattern ByteLevel uses when use_regex is true. */
static const char gpt2_pattern[] =
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";

static wm_status load_normalizer(loader *L, json_t *n, const char *path)
{
    wm_tokenizer *t = L->t;
    if (!n || json_is_null(n)) return WM_OK;
    const char *type = jstr(n, "type");
    if (!type) return lerr(L, "%s: no type", path);
    if (!strcmp(type, "Sequence")) {
        json_t *list = json_object_get(n, "normalizers");
        if (!json_is_array(list)) return lerr(L, "%s.normalizers: expected an array", path);
        size_t i;
        json_t *e;
        json_array_foreach(list, i, e) {
            char sub[64];
            snprintf(sub, sizeof sub, "%s.normalizers[%zu]", path, i);
            wm_status st = load_normalizer(L, e, sub);
            if (st) return st;
        }
        return WM_OK;
    }
    utf8proc_option_t o;
    if (!strcmp(type, "NFC")) o = UTF8PROC_COMPOSE;
    else if (!strcmp(type, "NFD")) o = UTF8PROC_DECOMPOSE;
    else if (!strcmp(type, "NFKC")) o = UTF8PROC_COMPOSE | UTF8PROC_COMPAT;
    else if (!strcmp(type, "NFKD")) o = UTF8PROC_DECOMPOSE | UTF8PROC_COMPAT;
    else return lerr(L, "%s: normalizer '%s' is not supported (NFC, NFD, NFKC, NFKD, Sequence)", path, type);
    if (t->n_norm == MAX_STEPS) return lerr(L, "%s: too many normalizers", path);
    t->norm[t->n_norm++] = o | UTF8PROC_STABLE;
    return WM_OK;
}

static wm_status load_pre(loader *L, json_t *p, const char *path, int *byte_level)
{
    wm_tokenizer *t = L->t;
    if (!p || json_is_null(p)) return WM_OK;
    const char *type = jstr(p, "type");
    if (!type) return lerr(L, "%s: no type", path);
    if (!strcmp(type, "Sequence")) {
        json_t *list = json_object_get(p, "pretokenizers");
        if (!json_is_array(list)) return lerr(L, "%s.pretokenizers: expected an array", path);
        size_t i;
        json_t *e;
        json_array_foreach(list, i, e) {
            char sub[64];
            snprintf(sub, sizeof sub, "%s.pretokenizers[%zu]", path, i);
            wm_status st = load_pre(L, e, sub, byte_level);
            if (st) return st;
        }
        return WM_OK;
    }
    if (t->n_pre == MAX_STEPS) return lerr(L, "%s: too many pre-tokenizers", path);
    pre_step *s = &t->pre[t->n_pre];
    memset(s, 0, sizeof *s);
    wm_status st;
    if (!strcmp(type, "ByteLevel")) {
        s->type = PRE_BYTELEVEL;
        s->behavior = B_ISOLATED; /* its regex keeps every piece */
        s->prefix_space = jtrue(p, "add_prefix_space", 1);
        if (jtrue(p, "use_regex", 1) &&
            (st = compile_re(L, path, gpt2_pattern, sizeof gpt2_pattern - 1, 0, &s->re)))
            return st;
        *byte_level = 1;
    } else if (!strcmp(type, "Split") || !strcmp(type, "Digits")) {
        if (*byte_level) return lerr(L, "%s: %s after ByteLevel is not supported", path, type);
        s->type = PRE_SPLIT;
        s->behavior = B_ISOLATED;
        if (!strcmp(type, "Digits")) {
            /* Rust's char::is_numeric: categories Nd, Nl, No. */
            const char *re = jtrue(p, "individual_digits", 0) ? "\\p{N}" : "\\p{N}+";
            st = compile_re(L, path, re, strlen(re), 0, &s->re);
        } else {
            json_t *pat = json_object_get(p, "pattern");
            const char *rx = jstr(pat, "Regex"), *lit = jstr(pat, "String");
            if (!rx && !lit) return lerr(L, "%s.pattern: expected {\"Regex\": ...} or {\"String\": ...}", path);
            json_t *v = json_object_get(pat, rx ? "Regex" : "String");
            st = compile_re(L, path, json_string_value(v), json_string_length(v), lit != NULL, &s->re);
            const char *b = jstr(p, "behavior");
            static const char *names[] = { "Removed", "Isolated", "MergedWithPrevious", "MergedWithNext", "Contiguous" };
            int found = 0;
            for (int k = 0; k < 5 && b; k++)
                if (!strcmp(b, names[k])) s->behavior = k, found = 1;
            if (!found && !st) {
                pcre2_code_free(s->re);
                return lerr(L, "%s.behavior: '%s' is not a split behavior", path, b ? b : "(missing)");
            }
            s->invert = jtrue(p, "invert", 0);
        }
        if (st) return st;
    } else {
        return lerr(L, "%s: pre-tokenizer '%s' is not supported (byte-level BPE needs Split, ByteLevel, "
                    "Digits, Sequence)", path, type);
    }
    t->n_pre++;
    return WM_OK;
}

static wm_status set_piece(loader *L, wm_token id, const unsigned char *s, size_t n)
{
    wm_tokenizer *t = L->t;
    long off = pool_add(t, s, n);
    if (off < 0) return WM_ERR_NOMEM;
    t->piece[id] = (uint64_t)off << 32 | (uint32_t)n;
    return WM_OK;
}

static wm_status load_model(loader *L, json_t *root)
{
    wm_tokenizer *t = L->t;
    json_t *model = json_object_get(root, "model");
    if (!json_is_object(model)) return lerr(L, "model: missing");
    const char *type = jstr(model, "type");
    if (type && strcmp(type, "BPE"))
        return lerr(L, "model.type: '%s' is not supported (only byte-level BPE; WordPiece, Unigram and "
                    "WordLevel tokenizers are not)", type);
    if (jtrue(model, "byte_fallback", 0)) return lerr(L, "model.byte_fallback: not supported (SentencePiece-style BPE)");
    json_t *d = json_object_get(model, "dropout");
    if (d && !json_is_null(d) && !(json_is_number(d) && json_number_value(d) == 0))
        return lerr(L, "model.dropout: must be null (dropout makes tokenization random)");
    const char *pre = jstr(model, "continuing_subword_prefix"), *suf = jstr(model, "end_of_word_suffix");
    if ((pre && *pre) || (suf && *suf)) return lerr(L, "model: subword prefixes/suffixes are not supported");
    t->ignore_merges = jtrue(model, "ignore_merges", 0);

    json_t *vocab = json_object_get(model, "vocab"), *added = json_object_get(root, "added_tokens");
    if (!json_is_object(vocab)) return lerr(L, "model.vocab: expected an object");
    if (added && !json_is_null(added) && !json_is_array(added)) return lerr(L, "added_tokens: expected an array");
    /* Size the id space. */
    int64_t max_id = -1;
    const char *k;
    json_t *v;
    json_object_foreach(vocab, k, v) {
        if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) >= INT32_MAX)
            return lerr(L, "model.vocab[\"%.40s\"]: id must be an integer in [0, 2^31)", k);
        if (json_integer_value(v) > max_id) max_id = json_integer_value(v);
    }
    size_t i;
    json_array_foreach(added, i, v) {
        json_t *id = json_object_get(v, "id");
        if (!json_is_integer(id) || json_integer_value(id) < 0 || json_integer_value(id) >= INT32_MAX ||
            !jstr(v, "content") || !*jstr(v, "content"))
            return lerr(L, "added_tokens[%zu]: needs an integer id and non-empty content", i);
        if (json_integer_value(id) > max_id) max_id = json_integer_value(id);
    }
    if (max_id < 0) return lerr(L, "model.vocab: empty");
    /* Real vocabularies are dense.  Without this bound a few bytes of JSON
     * with one id near 2^31 would make us allocate gigabytes (found by the
     * fuzzer). */
    size_t n_tokens = json_object_size(vocab) + json_array_size(added);
    if ((uint64_t)max_id >= 4 * (uint64_t)n_tokens + 65536)
        return lerr(L, "model.vocab: id %lld is far beyond the %zu tokens defined (ids must be dense)",
                    (long long)max_id, n_tokens);
    t->n_ids = (uint32_t)max_id + 1;
    t->piece = malloc(t->n_ids * sizeof *t->piece);
    if (!t->piece || !strmap_init(&t->vocab, json_object_size(vocab))) return WM_ERR_NOMEM;
    memset(t->piece, 0xff, t->n_ids * sizeof *t->piece);
    for (int b = 0; b < 256; b++) t->byte_id[b] = -1;

    unsigned char buf[1024];
    json_object_foreach(vocab, k, v) {
        wm_token id = (wm_token)json_integer_value(v);
        size_t klen = strlen(k), n;
        if (t->piece[id] != UINT64_MAX) return lerr(L, "model.vocab: id %d appears twice", id);
        int mapped = klen <= sizeof buf && unmap_bytes(k, klen, buf, &n);
        wm_status st = mapped ? set_piece(L, id, buf, n) : set_piece(L, id, (const unsigned char *)k, klen);
        if (st) return st;
        if (mapped) {
            if (!strmap_put(t, id)) return lerr(L, "model.vocab[\"%.40s\"]: same bytes as another token", k);
            if (n == 1) t->byte_id[buf[0]] = id;
        }
    }
    for (int b = 0; b < 256; b++)
        if (t->byte_id[b] < 0) return lerr(L, "model.vocab: no token for byte 0x%02x (not a byte-level vocabulary)", b);

    json_t *merges = json_object_get(model, "merges");
    if (!json_is_array(merges)) return lerr(L, "model.merges: expected an array");
    if (!pairmap_init(&t->merges, json_array_size(merges))) return WM_ERR_NOMEM;
    json_array_foreach(merges, i, v) {
        const char *a, *b;
        size_t al, bl;
        char tmp[512];
        if (json_is_string(v)) {
            const char *s = json_string_value(v), *sp = strchr(s, ' ');
            if (!sp || strchr(sp + 1, ' ') || strlen(s) >= sizeof tmp)
                return lerr(L, "model.merges[%zu]: expected \"left right\"", i);
            a = s, al = (size_t)(sp - s), b = sp + 1, bl = strlen(sp + 1);
        } else if (json_is_array(v) && json_array_size(v) == 2 && json_is_string(json_array_get(v, 0)) &&
                   json_is_string(json_array_get(v, 1))) {
            a = json_string_value(json_array_get(v, 0)), al = json_string_length(json_array_get(v, 0));
            b = json_string_value(json_array_get(v, 1)), bl = json_string_length(json_array_get(v, 1));
        } else {
            return lerr(L, "model.merges[%zu]: expected \"left right\" or [\"left\", \"right\"]", i);
        }
        unsigned char ra[512], rb[512], rab[1024];
        size_t na, nb;
        if (al > sizeof ra || bl > sizeof rb || !unmap_bytes(a, al, ra, &na) || !unmap_bytes(b, bl, rb, &nb))
            return lerr(L, "model.merges[%zu]: not byte-level text", i);
        memcpy(rab, ra, na);
        memcpy(rab + na, rb, nb);
        int32_t ia = strmap_get(t, ra, na), ib = strmap_get(t, rb, nb), iab = strmap_get(t, rab, na + nb);
        if (ia < 0 || ib < 0 || iab < 0)
            return lerr(L, "model.merges[%zu]: '%.*s' + '%.*s' or their merge is not in the vocabulary", i,
                        (int)al, a, (int)bl, b);
        pairmap_put(&t->merges, (uint32_t)ia, (uint32_t)ib, (uint32_t)i, (uint32_t)iab);
    }

    /* Added tokens: matched in raw text.  A `normalized` one is matched by the
     * reference after normalization; that is the same only when there is no
     * normalizer, so anything else is refused rather than approximated. */
    t->n_added = json_array_size(added);
    t->added = calloc(t->n_added ? t->n_added : 1, sizeof *t->added);
    if (!t->added) return WM_ERR_NOMEM;
    json_array_foreach(added, i, v) {
        const char *c = jstr(v, "content");
        size_t cl = json_string_length(json_object_get(v, "content"));
        wm_token id = (wm_token)json_integer_value(json_object_get(v, "id"));
        if (jtrue(v, "normalized", 0) && t->n_norm)
            return lerr(L, "added_tokens[%zu]: normalized added tokens with a normalizer are not supported", i);
        if (jtrue(v, "lstrip", 0) || jtrue(v, "rstrip", 0) || jtrue(v, "single_word", 0))
            return lerr(L, "added_tokens[%zu]: lstrip, rstrip and single_word are not supported", i);
        long off = pool_add(t, (const unsigned char *)c, cl);
        if (off < 0) return WM_ERR_NOMEM;
        t->piece[id] = (uint64_t)off << 32 | (uint32_t)cl; /* decoding an added id gives its content */
        t->added[i] = (added_token){ NULL, (uint32_t)cl, id, jtrue(v, "special", 0), jtrue(v, "normalized", 0) };
        t->added[i].text = (const unsigned char *)(uintptr_t)off; /* fixed up below: the pool moves */
    }
    for (i = 0; i < t->n_added; i++) {
        t->added[i].text = t->pool + (uintptr_t)t->added[i].text;
        t->added_first[t->added[i].text[0]] = 1;
    }
    return WM_OK;
}

static int longer_first(const void *a, const void *b)
{
    const added_token *x = a, *y = b;
    if (x->len != y->len) return x->len > y->len ? -1 : 1;
    return x->id - y->id;
}

wm_status wm_tokenizer_parse(wm_tokenizer **out, const char *json, size_t len, const char *name,
                             wm_error *err)
{
    if (!out || (!json && len)) return WM_ERR_ARG;
    *out = NULL;
    if (sodium_init() < 0) return WM_ERR_CRYPTO;
    static pthread_once_t table_once = PTHREAD_ONCE_INIT, unicode_once = PTHREAD_ONCE_INIT;
    if (pthread_once(&table_once, init_byte_table) != 0 || pthread_once(&unicode_once, init_unicode_patch) != 0)
        return WM_ERR_UNSUPPORTED;
    if (unicode_patch_failed) return WM_ERR_NOMEM;
    loader L = { calloc(1, sizeof(wm_tokenizer)), name ? name : "<tokenizer.json>", err };
    if (!L.t) return WM_ERR_NOMEM;
    crypto_hash_sha256(L.t->sha256, (const unsigned char *)json, len);
    json_error_t je;
    json_t *root = json_loadb(json, len, JSON_REJECT_DUPLICATES, &je);
    wm_status st = WM_OK;
    int byte_level = 0;
    if (!root) {
        seterr(err, "%s:%d:%d: %s", L.name, je.line, je.column, je.text);
        st = WM_ERR_FORMAT;
    } else if (!json_is_object(root)) {
        st = lerr(&L, "top level: expected an object");
    } else if (!(st = load_normalizer(&L, json_object_get(root, "normalizer"), "normalizer")) &&
               !(st = load_pre(&L, json_object_get(root, "pre_tokenizer"), "pre_tokenizer", &byte_level)) &&
               !(st = load_model(&L, root))) {
        if (!byte_level) st = lerr(&L, "pre_tokenizer: no ByteLevel step, so not a byte-level BPE tokenizer");
        const char *dt = jstr(json_object_get(root, "decoder"), "type");
        if (!st && dt && strcmp(dt, "ByteLevel") && strcmp(dt, "Sequence"))
            st = lerr(&L, "decoder: '%s' is not supported (ByteLevel)", dt);
    }
    json_decref(root);
    if (st) {
        if (st == WM_ERR_NOMEM) seterr(err, "%s: out of memory", L.name);
        wm_tokenizer_free(L.t);
        return st;
    }
    qsort(L.t->added, L.t->n_added, sizeof *L.t->added, longer_first);
    L.t->added_max = L.t->n_added ? L.t->added[0].len : 0;
    for (int i = 0, seen_re = 0; i < L.t->n_pre; i++) {
        pre_step *p = &L.t->pre[i];
        if (p->type == PRE_BYTELEVEL && p->prefix_space && seen_re) L.t->prefix_late = 1;
        uint32_t lookbehind = 0;
        if (p->re) pcre2_pattern_info(p->re, PCRE2_INFO_MAXLOOKBEHIND, &lookbehind);
        /* one character of context is kept across a cut, which covers \b */
        p->streamable = p->re && lookbehind <= 1 && (p->behavior == B_ISOLATED || p->behavior == B_REMOVED);
        seen_re |= p->re != NULL;
    }
    *out = L.t;
    return WM_OK;
}

wm_status wm_tokenizer_load(wm_tokenizer **out, const char *path, wm_error *err)
{
    if (!out || !path) return WM_ERR_ARG;
    *out = NULL;
    FILE *f = fopen(path, "rb");
    if (!f) {
        seterr(err, "%s: %s", path, strerror(errno));
        return WM_ERR_IO;
    }
    size_t cap = 1 << 20, len = 0;
    char *buf = malloc(cap);
    wm_status st = buf ? WM_OK : WM_ERR_NOMEM;
    while (st == WM_OK) {
        if (len == cap) {
            char *nb = realloc(buf, cap *= 2);
            if (!nb) {
                st = WM_ERR_NOMEM;
                break;
            }
            buf = nb;
        }
        size_t r = fread(buf + len, 1, cap - len, f);
        len += r;
        if (r == 0) {
            if (ferror(f)) {
                seterr(err, "%s: read error", path);
                st = WM_ERR_IO;
            }
            break;
        }
    }
    fclose(f);
    if (st == WM_OK) st = wm_tokenizer_parse(out, buf, len, path, err);
    free(buf);
    return st;
}

void wm_tokenizer_free(wm_tokenizer *t)
{
    if (!t) return;
    for (int i = 0; i < t->n_pre; i++) pcre2_code_free(t->pre[i].re);
    free(t->pool);
    free(t->piece);
    free(t->vocab.slot);
    free(t->merges.key);
    free(t->merges.val);
    free(t->added);
    free(t);
}

uint32_t wm_tokenizer_vocab_size(const wm_tokenizer *t) { return t ? t->n_ids : 0; }

void wm_tokenizer_sha256(const wm_tokenizer *t, unsigned char out[32])
{
    if (t && out) memcpy(out, t->sha256, 32);
}

/* ---- encoding ------------------------------------------------------------- */

#define CACHE_SLOTS 65536 /* word cache entries; cleared when the id pool fills */
#define CACHE_IDS (1u << 20)
#define JIT_STACK_MAX (64u << 20) /* beyond it a match reruns in the interpreter */
#define STREAM_PIECES 4096        /* pieces of the first Split step held at once */

typedef struct span { size_t off, len; } span;

typedef struct buf {
    void *p;
    size_t len, cap;
} buf;

struct wm_encoder {
    const wm_tokenizer *tok;
    pcre2_match_data *md;
    pcre2_match_context *mctx; /* no match/depth limit: see split_match */
    pcre2_jit_stack *jit;
    wm_error *err;             /* the current wm_encode's, for messages */
    const unsigned char *text_base; /* start of the validated input */
    size_t seg_off;            /* input offset of the segment being encoded */
    size_t stream_pieces;      /* STREAM_PIECES; tests set others */
    /* wm_encode_stream: text not yet tokenized, from the last cut on */
    buf sraw;
    unsigned char spend[4];    /* an incomplete UTF-8 sequence at the end of the last part */
    size_t spend_len;
    int s_skip;                /* lossy: inside the continuation bytes of a bad sequence */
    uint64_t s_in;             /* input bytes before the current part */
    int s_active, s_mid;       /* s_mid: sraw starts inside a segment */
    unsigned s_flags;
    unsigned char sctx[4];     /* the (normalized) character before the cut ... */
    size_t sctx_len;
    int sctx_levels;           /* ... for regex levels 0..sctx_levels-1, resumed mid-subject */
    buf text, norm, work, pieces, next, sub, subnext, ids, heap, sym, out;
    /* word cache: hash -> (word bytes in cbytes, ids in cids) */
    uint64_t *ckey;
    uint32_t *cword_off, *cword_len, *cid_off, *cid_len;
    buf cbytes, cids;
    size_t cache_used;
};

static int reserve(buf *b, size_t n, size_t elem)
{
    if (n <= b->cap) return 1;
    size_t cap = b->cap ? b->cap : 64;
    while (cap < n) cap *= 2;
    void *p = realloc(b->p, cap * elem);
    if (!p) return 0;
    b->p = p;
    b->cap = cap;
    return 1;
}

#define PUSH(b, type, value)                                                   \
    (reserve(&(b), (b).len + 1, sizeof(type)) ? (((type *)(b).p)[(b).len++] = (value), 1) : 0)

wm_status wm_encoder_new(wm_encoder **out, const wm_tokenizer *tok)
{
    if (!out || !tok) return WM_ERR_ARG;
    *out = NULL;
    wm_encoder *e = calloc(1, sizeof *e);
    if (!e) return WM_ERR_NOMEM;
    e->tok = tok;
    e->stream_pieces = STREAM_PIECES;
    e->md = pcre2_match_data_create(4, NULL);
    e->mctx = pcre2_match_context_create(NULL);
    e->jit = pcre2_jit_stack_create(32 << 10, JIT_STACK_MAX, NULL);
    if (e->mctx) {
        /* The reference (Oniguruma) has no match limit; PCRE2's default of
         * 10^7 backtracks is hit by one long run (11 M letters under the
         * GPT-4o pattern), so lift it.  Memory stays bounded by the JIT
         * stack and, in the interpreter, by PCRE2's heap limit. */
        pcre2_set_match_limit(e->mctx, UINT32_MAX);
        pcre2_set_depth_limit(e->mctx, UINT32_MAX);
        if (e->jit) pcre2_jit_stack_assign(e->mctx, NULL, e->jit);
    }
    e->ckey = calloc(CACHE_SLOTS, sizeof *e->ckey);
    e->cword_off = malloc(CACHE_SLOTS * sizeof *e->cword_off);
    e->cword_len = malloc(CACHE_SLOTS * sizeof *e->cword_len);
    e->cid_off = malloc(CACHE_SLOTS * sizeof *e->cid_off);
    e->cid_len = malloc(CACHE_SLOTS * sizeof *e->cid_len);
    if (!e->md || !e->mctx || !e->ckey || !e->cword_off || !e->cword_len || !e->cid_off || !e->cid_len) {
        wm_encoder_free(e);
        return WM_ERR_NOMEM;
    }
    *out = e;
    return WM_OK;
}

void wm_encoder_free(wm_encoder *e)
{
    if (!e) return;
    pcre2_match_data_free(e->md);
    pcre2_match_context_free(e->mctx);
    pcre2_jit_stack_free(e->jit);
    buf *bs[] = { &e->sraw, &e->text, &e->norm, &e->work, &e->pieces, &e->next, &e->sub, &e->subnext, &e->ids, &e->heap,
                  &e->sym, &e->out, &e->cbytes, &e->cids };
    for (size_t i = 0; i < sizeof bs / sizeof bs[0]; i++) free(bs[i]->p);
    free(e->ckey);
    free(e->cword_off);
    free(e->cword_len);
    free(e->cid_off);
    free(e->cid_len);
    free(e);
}

/* Validate UTF-8 into e->text (replacing bad sequences when lossy). */
static wm_status check_utf8(wm_encoder *e, const char *s, size_t len, int lossy, wm_error *err)
{
    e->text.len = 0;
    if (!reserve(&e->text, len * 3 + 1, 1)) return WM_ERR_NOMEM;
    unsigned char *o = e->text.p;
    size_t n = 0;
    for (size_t i = 0; i < len;) {
        utf8proc_int32_t cp;
        utf8proc_ssize_t k = utf8proc_iterate((const utf8proc_uint8_t *)s + i, (utf8proc_ssize_t)(len - i), &cp);
        if (k > 0) {
            memcpy(o + n, s + i, (size_t)k);
            n += (size_t)k;
            i += (size_t)k;
            continue;
        }
        if (!lossy) {
            seterr(err, "invalid UTF-8 at byte offset %zu", i);
            return WM_ERR_FORMAT;
        }
        memcpy(o + n, "\xef\xbf\xbd", 3); /* U+FFFD for one maximal bad byte */
        n += 3;
        i++;
        while (i < len && ((unsigned char)s[i] & 0xc0) == 0x80 && utf8proc_iterate(
                   (const utf8proc_uint8_t *)s + i, (utf8proc_ssize_t)(len - i), &cp) <= 0)
            i++;
    }
    e->text.len = n;
    return WM_OK;
}

/* Normalize [s, s+n) into e->norm; returns a pointer to the result. */
static const unsigned char *normalize(wm_encoder *e, const unsigned char *s, size_t *n, wm_status *st)
{
    const wm_tokenizer *t = e->tok;
    if (!t->n_norm) return s;
    size_t i = 0;
    while (i < *n && s[i] < 0x80) i++;
    if (i == *n) return s; /* every normal form of ASCII is itself */
    e->norm.len = 0;
    if (!reserve(&e->norm, *n + 1, 1)) {
        *st = WM_ERR_NOMEM;
        return NULL;
    }
    memcpy(e->norm.p, s, *n);
    size_t len = *n;
    for (int i = 0; i < t->n_norm; i++) {
        utf8proc_uint8_t *res = NULL;
        utf8proc_ssize_t r = utf8proc_map(e->norm.p, (utf8proc_ssize_t)len, &res, t->norm[i]);
        if (r < 0) {
            *st = WM_ERR_FORMAT;
            return NULL;
        }
        if (!reserve(&e->norm, (size_t)r + 1, 1)) {
            free(res);
            *st = WM_ERR_NOMEM;
            return NULL;
        }
        memcpy(e->norm.p, res, (size_t)r);
        free(res);
        len = (size_t)r;
    }
    *n = len;
    return e->norm.p;
}

/* One match of a Split regex from `pos`: 1 found (ovector in e->md), 0 no
 * match, or an error status (negated) with a message naming the offset.
 * Only PCRE2_ERROR_NOMATCH means "no match": any other negative result is
 * an error, never a reason to stop splitting (text would be lost). */
static int split_match(wm_encoder *e, const pre_step *s, const unsigned char *base, const unsigned char *sub,
                       size_t len, size_t pos, wm_status *st)
{
    int rc = pcre2_match(s->re, sub, len, pos, PCRE2_NO_UTF_CHECK, e->md, e->mctx);
    if (rc == PCRE2_ERROR_JIT_STACKLIMIT) /* the interpreter keeps its frames on the heap */
        rc = pcre2_match(s->re, sub, len, pos, PCRE2_NO_UTF_CHECK | PCRE2_NO_JIT, e->md, e->mctx);
    if (rc >= 0) return 1;
    if (rc == PCRE2_ERROR_NOMATCH) return 0;
    PCRE2_UCHAR msg[160];
    pcre2_get_error_message(rc, msg, sizeof msg);
    size_t off = (size_t)(sub - base) + pos;
    if (base == e->text_base + e->seg_off) /* matching the input itself: exact offset */
        seterr(e->err, "pre-tokenizer regex failed searching from byte offset %zu: %s", e->seg_off + off, (char *)msg);
    else /* normalized or prefixed copy of the segment */
        seterr(e->err, "pre-tokenizer regex failed at byte %zu of the segment at byte offset %zu: %s", off,
               e->seg_off, (char *)msg);
    *st = rc == PCRE2_ERROR_NOMEMORY || rc == PCRE2_ERROR_HEAPLIMIT ? WM_ERR_NOMEM : WM_ERR_LIMIT;
    return -1;
}

/* One Split step over every piece: pieces (spans into `base`) -> e->next.
 * As in `tokenizers`: the matches and the text between them form an
 * alternating list of (segment, is_match), flipped by `invert`, then folded
 * by the behavior. */
static wm_status finish_pieces(wm_encoder *e, const unsigned char *base, const span *sp, size_t n, int from);

/* in -> out, then the two swap.  With stream >= 0 (the first regex step of
 * a segment), pieces do not pile up: every STREAM_PIECES of them go through
 * the remaining steps (from `stream` on) and BPE at once, all but the last,
 * the only one a later segment can still merge into.  That bounds the
 * pieces held to O(STREAM_PIECES) whatever the text's length. */
static wm_status split_step(wm_encoder *e, const pre_step *s, const unsigned char *base, buf *inb, buf *outb,
                            int stream)
{
    span *in = inb->p;
    outb->len = 0;
    for (size_t p = 0; p < inb->len; p++) {
        const unsigned char *sub = base + in[p].off;
        size_t len = in[p].len, pos = 0, last = 0, first = outb->len;
        int prev_match = 0;
        for (;;) {
            size_t ms = len, me = len;
            int found = 0;
            while (pos <= len) {
                wm_status st = WM_OK;
                int m = split_match(e, s, base, sub, len, pos, &st);
                if (m < 0) return st;
                if (m == 0) break;
                PCRE2_SIZE *ov = pcre2_get_ovector_pointer(e->md);
                ms = ov[0], me = ov[1];
                if (me > ms) {
                    found = 1;
                    break;
                }
                pos = ms + 1; /* empty match: step over one character, no split */
                while (pos < len && (sub[pos] & 0xc0) == 0x80) pos++;
                ms = me = len;
            }
            for (int part = 0; part < 1 + found; part++) {
                size_t a = part ? ms : last, b = part ? me : ms;
                if (a == b) continue;
                int is_match = part ^ s->invert;
                span sp = { in[p].off + a, b - a };
                span *last_sp = outb->len > first ? (span *)outb->p + outb->len - 1 : NULL;
                int merge = 0;
                switch (s->behavior) {
                case B_REMOVED: merge = -is_match; break; /* -1: drop */
                case B_MERGED_PREV: merge = is_match && !prev_match && last_sp; break;
                /* the reference folds from the end: a match joins the
                 * segment after it unless that one is a match too */
                case B_MERGED_NEXT: merge = !is_match && prev_match && last_sp; break;
                case B_CONTIGUOUS: merge = is_match == prev_match && last_sp; break;
                default: break;
                }
                prev_match = is_match;
                if (merge < 0) continue;
                if (merge) {
                    last_sp->len = sp.off + sp.len - last_sp->off;
                } else if (!PUSH(*outb, span, sp)) {
                    return WM_ERR_NOMEM;
                } else if (stream >= 0 && outb->len > e->stream_pieces) {
                    span *o = outb->p;
                    wm_status st = finish_pieces(e, base, o, outb->len - 1, stream);
                    if (st) return st;
                    o[0] = o[outb->len - 1];
                    outb->len = 1;
                    first = 0;
                }
            }
            if (!found) break;
            last = pos = me;
        }
    }
    if (stream >= 0) {
        wm_status st = finish_pieces(e, base, outb->p, outb->len, stream);
        outb->len = 0;
        return st;
    }
    buf tmp = *inb;
    *inb = *outb;
    *outb = tmp;
    return WM_OK;
}

/* ByteLevel's add_prefix_space: a space before every piece that does not
 * start with one.  Rebuilds `work` with the spaces inserted. */
static wm_status prefix_spaces(wm_encoder *e, const unsigned char **base)
{
    span *in = e->pieces.p;
    size_t total = 0;
    for (size_t p = 0; p < e->pieces.len; p++) total += in[p].len + 1;
    buf nb = { 0 };
    if (!reserve(&nb, total + 1, 1)) return WM_ERR_NOMEM;
    unsigned char *o = nb.p;
    size_t n = 0;
    for (size_t p = 0; p < e->pieces.len; p++) {
        size_t start = n;
        if (in[p].len == 0 || (*base)[in[p].off] != ' ') o[n++] = ' ';
        memcpy(o + n, *base + in[p].off, in[p].len);
        n += in[p].len;
        in[p].off = start;
        in[p].len = n - start;
    }
    free(e->work.p);
    e->work = nb;
    e->work.len = n;
    *base = e->work.p;
    return WM_OK;
}

/* ---- BPE ------------------------------------------------------------------ */

typedef struct merge_cand { uint32_t rank, pos; } merge_cand;

static int cand_less(merge_cand a, merge_cand b)
{
    return a.rank < b.rank || (a.rank == b.rank && a.pos < b.pos);
}

static void heap_push(merge_cand *h, size_t *n, merge_cand c)
{
    size_t i = (*n)++;
    while (i && cand_less(c, h[(i - 1) / 2])) {
        h[i] = h[(i - 1) / 2];
        i = (i - 1) / 2;
    }
    h[i] = c;
}

static merge_cand heap_pop(merge_cand *h, size_t *n)
{
    merge_cand top = h[0], last = h[--*n];
    size_t i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= *n) break;
        if (c + 1 < *n && cand_less(h[c + 1], h[c])) c++;
        if (!cand_less(h[c], last)) break;
        h[i] = h[c];
        i = c;
    }
    if (*n) h[i] = last;
    return top;
}

typedef struct sym { int32_t id, prev, next; } sym;

/* Merge the word's bytes by rank (lowest first, leftmost on ties), as the
 * reference's heap-based merge does.  Appends ids to e->ids. */
static wm_status bpe_merge(wm_encoder *e, const unsigned char *w, size_t n)
{
    const wm_tokenizer *t = e->tok;
    if (!reserve(&e->sym, n, sizeof(sym)) || !reserve(&e->heap, 2 * n + 1, sizeof(merge_cand)))
        return WM_ERR_NOMEM;
    sym *s = e->sym.p;
    merge_cand *h = e->heap.p;
    size_t hn = 0;
    uint64_t val;
    for (size_t i = 0; i < n; i++) s[i] = (sym){ t->byte_id[w[i]], (int32_t)i - 1, i + 1 < n ? (int32_t)i + 1 : -1 };
    for (size_t i = 0; i + 1 < n; i++)
        if (pairmap_get(&t->merges, (uint32_t)s[i].id, (uint32_t)s[i + 1].id, &val))
            heap_push(h, &hn, (merge_cand){ (uint32_t)(val >> 32), (uint32_t)i });
    while (hn) {
        merge_cand c = heap_pop(h, &hn);
        sym *a = &s[c.pos];
        if (a->id < 0 || a->next < 0) continue;
        sym *b = &s[a->next];
        /* Stale entry?  The pair must still be the one that had this rank. */
        if (!pairmap_get(&t->merges, (uint32_t)a->id, (uint32_t)b->id, &val) || (uint32_t)(val >> 32) != c.rank)
            continue;
        a->id = (int32_t)(uint32_t)val;
        b->id = -1;
        a->next = b->next;
        if (b->next >= 0) s[b->next].prev = (int32_t)c.pos;
        if (a->prev >= 0 && pairmap_get(&t->merges, (uint32_t)s[a->prev].id, (uint32_t)a->id, &val))
            heap_push(h, &hn, (merge_cand){ (uint32_t)(val >> 32), (uint32_t)a->prev });
        if (a->next >= 0 && pairmap_get(&t->merges, (uint32_t)a->id, (uint32_t)s[a->next].id, &val))
            heap_push(h, &hn, (merge_cand){ (uint32_t)(val >> 32), c.pos });
    }
    for (int32_t i = 0; i >= 0; i = s[i].next)
        if (!PUSH(e->ids, wm_token, s[i].id)) return WM_ERR_NOMEM;
    return WM_OK;
}

static wm_status bpe_word(wm_encoder *e, const unsigned char *w, size_t n)
{
    const wm_tokenizer *t = e->tok;
    if (n == 0) return WM_OK;
    if (t->ignore_merges) {
        int32_t id = strmap_get(t, w, n);
        if (id >= 0) return PUSH(e->ids, wm_token, id) ? WM_OK : WM_ERR_NOMEM;
    }
    if (n == 1) return PUSH(e->ids, wm_token, t->byte_id[w[0]]) ? WM_OK : WM_ERR_NOMEM;
    /* Word cache: most words of a text repeat. */
    uint64_t hv = hash_bytes(w, n) | 1;
    size_t slot = hv & (CACHE_SLOTS - 1);
    if (e->ckey[slot] == hv && e->cword_len[slot] == n &&
        memcmp((unsigned char *)e->cbytes.p + e->cword_off[slot], w, n) == 0) {
        const wm_token *ids = (const wm_token *)e->cids.p + e->cid_off[slot];
        if (!reserve(&e->ids, e->ids.len + e->cid_len[slot], sizeof(wm_token))) return WM_ERR_NOMEM;
        memcpy((wm_token *)e->ids.p + e->ids.len, ids, e->cid_len[slot] * sizeof(wm_token));
        e->ids.len += e->cid_len[slot];
        return WM_OK;
    }
    size_t before = e->ids.len;
    wm_status st = bpe_merge(e, w, n);
    if (st || n > 256) return st;
    size_t k = e->ids.len - before;
    if (e->cids.len + k > CACHE_IDS) { /* full: start over */
        memset(e->ckey, 0, CACHE_SLOTS * sizeof *e->ckey);
        e->cids.len = e->cbytes.len = 0;
    }
    if (!reserve(&e->cids, e->cids.len + k, sizeof(wm_token)) || !reserve(&e->cbytes, e->cbytes.len + n, 1))
        return WM_OK; /* the cache is an optimisation only */
    memcpy((wm_token *)e->cids.p + e->cids.len, (wm_token *)e->ids.p + before, k * sizeof(wm_token));
    memcpy((unsigned char *)e->cbytes.p + e->cbytes.len, w, n);
    e->ckey[slot] = hv;
    e->cword_off[slot] = (uint32_t)e->cbytes.len;
    e->cword_len[slot] = (uint32_t)n;
    e->cid_off[slot] = (uint32_t)e->cids.len;
    e->cid_len[slot] = (uint32_t)k;
    e->cids.len += k;
    e->cbytes.len += n;
    return WM_OK;
}

/* Normalize, pre-tokenize and BPE one segment that holds no added token. */
static wm_status encode_segment(wm_encoder *e, const unsigned char *s, size_t n)
{
    const wm_tokenizer *t = e->tok;
    wm_status st = WM_OK;
    e->seg_off = (size_t)(s - e->text_base);
    const unsigned char *base = normalize(e, s, &n, &st);
    if (!base) return st;
    if (n == 0) return WM_OK;
    if (t->n_norm) { /* keep the normalized text stable while `norm` is reused */
        free(e->work.p);
        e->work.p = NULL;
        e->work.cap = e->work.len = 0;
        if (!reserve(&e->work, n, 1)) return WM_ERR_NOMEM;
        memcpy(e->work.p, base, n);
        base = e->work.p;
    }
    e->pieces.len = 0;
    if (!PUSH(e->pieces, span, ((span){ 0, n }))) return WM_ERR_NOMEM;
    /* The first regex step streams its pieces through the rest unless a
     * later step adds prefix spaces (it rebuilds `work`, which may be the
     * text being split). */
    int first_re = -1, prefix_after = 0;
    for (int i = 0; i < t->n_pre; i++) {
        if (first_re < 0 && t->pre[i].re) first_re = i;
        else if (first_re >= 0 && t->pre[i].type == PRE_BYTELEVEL && t->pre[i].prefix_space) prefix_after = 1;
    }
    for (int i = 0; i < t->n_pre; i++) {
        const pre_step *p = &t->pre[i];
        if (p->type == PRE_BYTELEVEL && p->prefix_space && (st = prefix_spaces(e, &base))) return st;
        if (!p->re) continue;
        if (i == first_re && !prefix_after) return split_step(e, p, base, &e->pieces, &e->next, i + 1);
        if ((st = split_step(e, p, base, &e->pieces, &e->next, -1))) return st;
    }
    return finish_pieces(e, base, e->pieces.p, e->pieces.len, t->n_pre);
}

/* Steps `from` on (regex splits only: prefix spaces never come here after
 * streaming started), then BPE, for n pieces of `base`. */
static wm_status finish_pieces(wm_encoder *e, const unsigned char *base, const span *sp, size_t n, int from)
{
    const wm_tokenizer *t = e->tok;
    wm_status st;
    if (from < t->n_pre) {
        e->sub.len = 0;
        if (!reserve(&e->sub, n, sizeof(span))) return WM_ERR_NOMEM;
        memcpy(e->sub.p, sp, n * sizeof *sp);
        e->sub.len = n;
        for (int i = from; i < t->n_pre; i++)
            if (t->pre[i].re && (st = split_step(e, &t->pre[i], base, &e->sub, &e->subnext, -1))) return st;
        sp = e->sub.p;
        n = e->sub.len;
    }
    for (size_t i = 0; i < n; i++)
        if ((st = bpe_word(e, base + sp[i].off, sp[i].len))) return st;
    return WM_OK;
}

static const added_token *added_at(const wm_tokenizer *t, const unsigned char *s, size_t left,
                                   int normalized, int special_as_text)
{
    for (size_t i = 0; i < t->n_added; i++) { /* longest first */
        const added_token *a = &t->added[i];
        if (a->normalized == normalized && a->len <= left && a->text[0] == s[0] &&
            memcmp(a->text, s, a->len) == 0 && !(special_as_text && a->special))
            return a;
    }
    return NULL;
}

/* Split [s, s+n) on added tokens, leftmost and longest first.  The reference
 * does this twice: on the raw text for tokens with normalized = false, then
 * on each remaining (normalized) segment for those with normalized = true;
 * loading guarantees the latter exist only without a normalizer, where the
 * two texts are the same. */
static wm_status encode_added(wm_encoder *e, const unsigned char *s, size_t n, int normalized,
                              int special_as_text)
{
    const wm_tokenizer *t = e->tok;
    wm_status st;
    size_t seg = 0;
    for (size_t i = 0; i < n;) {
        const added_token *a = t->added_first[s[i]] ? added_at(t, s + i, n - i, normalized, special_as_text) : NULL;
        if (!a) {
            i++;
            continue;
        }
        st = normalized ? encode_segment(e, s + seg, i - seg)
                        : encode_added(e, s + seg, i - seg, 1, special_as_text);
        if (st) return st;
        if (!PUSH(e->ids, wm_token, a->id)) return WM_ERR_NOMEM;
        i += a->len;
        seg = i;
    }
    return normalized ? encode_segment(e, s + seg, n - seg) : encode_added(e, s + seg, n - seg, 1, special_as_text);
}

wm_status wm_encode(wm_encoder *e, const char *text, size_t len, unsigned flags, const wm_token **ids,
                    size_t *n_ids, wm_error *err)
{
    if (!e || (!text && len) || !ids || !n_ids || (flags & ~(WM_ENC_SPECIAL_AS_TEXT | WM_ENC_LOSSY)))
        return WM_ERR_ARG;
    *ids = NULL;
    *n_ids = 0;
    wm_status st = check_utf8(e, text, len, (flags & WM_ENC_LOSSY) != 0, err);
    if (st) return st;
    e->err = err;
    e->text_base = e->text.p;
    e->s_active = 0; /* wm_encode abandons an unfinished stream */
    e->ids.len = 0;
    if (!reserve(&e->ids, 1, sizeof(wm_token))) return WM_ERR_NOMEM; /* *ids never NULL on success */
    if ((st = encode_added(e, e->text.p, e->text.len, 0, (flags & WM_ENC_SPECIAL_AS_TEXT) != 0))) return st;
    *ids = e->ids.p;
    *n_ids = e->ids.len;
    return WM_OK;
}

wm_status wm_decode(wm_encoder *e, const wm_token *ids, size_t n, const char **text, size_t *len)
{
    if (!e || (!ids && n) || !text || !len) return WM_ERR_ARG;
    const wm_tokenizer *t = e->tok;
    e->out.len = 0;
    for (size_t i = 0; i < n; i++) {
        if (ids[i] < 0 || (uint32_t)ids[i] >= t->n_ids || t->piece[ids[i]] == UINT64_MAX) return WM_ERR_TOKEN;
        const unsigned char *p;
        size_t k;
        piece_of(t, ids[i], &p, &k);
        if (!reserve(&e->out, e->out.len + k + 1, 1)) return WM_ERR_NOMEM;
        memcpy((unsigned char *)e->out.p + e->out.len, p, k);
        e->out.len += k;
    }
    if (!reserve(&e->out, 1, 1)) return WM_ERR_NOMEM;
    *text = e->out.p;
    *len = e->out.len;
    return WM_OK;
}

void wm__encoder_set_stream_pieces(wm_encoder *e, size_t n) { e->stream_pieces = n ? n : 1; }

/* ---- streaming -------------------------------------------------------------
 *
 * wm_encode_stream tokenizes a text that arrives in parts and gives, after
 * each part, the ids that no continuation can change; the text is held only
 * from the last cut on.  A cut c is safe when encoding text[0, c) and then
 * text[c, ...) (resumed as below) gives the ids of the whole text:
 *
 * - added tokens: scanning stops where a token could still be incomplete
 *   (the last added_max - 1 bytes), and a cut never falls inside one;
 * - normalizers: only before an ASCII character, which no normalization
 *   form composes with, reorders across or changes;
 * - each regex level (a Split step, ByteLevel's regex) is matched with
 *   PCRE2_PARTIAL_HARD, which reports a partial match as soon as any path
 *   reaches the end of the known text: every complete match or gap found
 *   before that is final whatever follows.  A gap (no match can start in
 *   it) that reaches the end is open and is split by the next level in the
 *   same way.  The cut is the end of the last final piece, at any level,
 *   that does not lie inside a match piece of a higher level (resuming the
 *   search inside a match would find another one); matching resumes there
 *   with one character of context and a start offset, so \b, one-character
 *   lookbehinds and ^ behave as in the whole text;
 * - BPE: never inside a word.
 *
 * A level that may merge pieces (MergedWith*, Contiguous), looks back more
 * than one character, or a prefix space after a regex step, is never cut
 * inside: correct, but such a segment is held whole. */

typedef struct walk {
    const unsigned char *base; /* head (context char or prefix space) + text */
    size_t start;              /* where the text proper begins in base */
    int ctx_levels;            /* levels resumed mid-subject (context before start) */
    const size_t *cut_ok;      /* sorted allowed cut offsets, or NULL: any */
    size_t n_cut_ok;
    int stop;                  /* the open end was reached: emit nothing more */
    size_t best, best_ids;     /* last safe cut and e->ids.len there */
    int best_level;
} walk;

static int cut_allowed(const walk *w, size_t b)
{
    if (!w->cut_ok) return 1;
    size_t lo = 0, hi = w->n_cut_ok;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (w->cut_ok[mid] < b) lo = mid + 1;
        else hi = mid;
    }
    return lo < w->n_cut_ok && w->cut_ok[lo] == b;
}

static void note_cut(wm_encoder *e, walk *w, size_t b, int level, int ok)
{
    if (ok && !w->stop && b > w->start && cut_allowed(w, b)) {
        w->best = b;
        w->best_ids = e->ids.len;
        w->best_level = level;
    }
}

/* Pieces of [a, R) of w->base from pre-step `step` on (regex level `level`).
 * open: the piece may continue past R.  cut_ok: a cut may fall inside. */
static wm_status walk_piece(wm_encoder *e, walk *w, int step, int level, size_t a, size_t R, int open, int cut_ok)
{
    const wm_tokenizer *t = e->tok;
    if (w->stop || a == R) return WM_OK;
    while (step < t->n_pre && !t->pre[step].re) step++;
    if (step == t->n_pre) { /* BPE: needs the whole word */
        if (open) {
            w->stop = 1;
            return WM_OK;
        }
        wm_status st = bpe_word(e, w->base + a, R - a);
        note_cut(e, w, R, level - 1, cut_ok);
        return st;
    }
    const pre_step *s = &t->pre[step];
    if (!s->streamable) { /* never cut inside: a complete piece goes the usual way */
        if (open) {
            w->stop = 1;
            return WM_OK;
        }
        span whole = { a, R - a };
        return finish_pieces(e, w->base, &whole, 1, step);
    }
    size_t sub0 = a == w->start && level < w->ctx_levels ? 0 : a; /* context before a resumed subject */
    const unsigned char *sub = w->base + sub0;
    size_t len = R - sub0, pos = a - sub0, last = pos;
    wm_status st = WM_OK;
    for (;;) {
        size_t ms = len, me = len;
        int found = 0;
        while (pos <= len) {
            int rc = pcre2_match(s->re, sub, len, pos, PCRE2_NO_UTF_CHECK | (open ? PCRE2_PARTIAL_HARD : 0), e->md,
                                 e->mctx);
            if (rc == PCRE2_ERROR_JIT_STACKLIMIT)
                rc = pcre2_match(s->re, sub, len, pos, PCRE2_NO_UTF_CHECK | PCRE2_NO_JIT | (open ? PCRE2_PARTIAL_HARD : 0),
                                 e->md, e->mctx);
            if (rc == PCRE2_ERROR_NOMATCH) break;
            if (rc == PCRE2_ERROR_PARTIAL) { /* a match may start here: the gap ends here at the latest */
                ms = pcre2_get_ovector_pointer(e->md)[0];
                break;
            }
            if (rc < 0) {
                PCRE2_UCHAR msg[160];
                pcre2_get_error_message(rc, msg, sizeof msg);
                seterr(e->err, "pre-tokenizer regex failed searching from byte offset %zu: %s",
                       (size_t)e->s_in + sub0 + pos, (char *)msg);
                return rc == PCRE2_ERROR_NOMEMORY || rc == PCRE2_ERROR_HEAPLIMIT ? WM_ERR_NOMEM : WM_ERR_LIMIT;
            }
            PCRE2_SIZE *ov = pcre2_get_ovector_pointer(e->md);
            ms = ov[0], me = ov[1];
            if (me > ms) {
                found = 1;
                break;
            }
            pos = ms + 1; /* empty match: step over one character, no split */
            while (pos < len && (sub[pos] & 0xc0) == 0x80) pos++;
            ms = me = len;
        }
        /* the gap [last, ms): final if a match or a complete end follows it */
        int gap_open = open && !found;
        int gap_removed = s->behavior == B_REMOVED && s->invert; /* with invert the gaps are the "matches" */
        if (ms > last && !gap_removed) {
            st = walk_piece(e, w, step + 1, level + 1, sub0 + last, sub0 + ms, gap_open, cut_ok);
            if (st || w->stop) return st;
        }
        if (gap_open) {
            /* a removed gap yields nothing however far it goes: the search
             * may resume where the next match can start */
            if (gap_removed) note_cut(e, w, sub0 + ms, level, cut_ok);
            w->stop = 1; /* the rest is unknown until more text comes */
            return WM_OK;
        }
        note_cut(e, w, sub0 + ms, level, cut_ok);
        if (!found) return WM_OK;
        if (!(s->behavior == B_REMOVED && !s->invert)) {
            /* a cut inside a match would restart the search in it */
            st = walk_piece(e, w, step + 1, level + 1, sub0 + ms, sub0 + me, 0, 0);
            if (st) return st;
        }
        note_cut(e, w, sub0 + me, level, cut_ok);
        last = pos = me;
    }
}

/* A segment (no added token inside) of raw text [s, s+n), the first one
 * after the cut when `mid`.  open: more of it may follow; *used: raw bytes
 * whose ids are now in e->ids. */
static wm_status stream_segment(wm_encoder *e, const unsigned char *s, size_t n, int mid, int open, size_t *used,
                                int *cut_made)
{
    const wm_tokenizer *t = e->tok;
    wm_status st = WM_OK;
    *used = 0;
    *cut_made = 0;
    if (n == 0) return WM_OK;
    size_t R = n;
    if (open && t->n_norm) { /* cut the known text before its last ASCII character */
        while (R > 0 && s[R - 1] >= 0x80) R--;
        if (R > 0) R--;
        if (R == 0) return WM_OK;
    }
    /* base = head + normalized text, normalized in blocks split before each
     * ASCII character so that those positions map back to raw offsets */
    size_t *map_n = NULL, *map_r = NULL, n_map = 0;
    e->work.len = 0;
    unsigned char head[4];
    size_t head_len = 0;
    int prefix = 0;
    for (int i = 0; i < t->n_pre && !t->pre[i].re; i++) prefix |= t->pre[i].prefix_space;
    if (mid) memcpy(head, e->sctx, e->sctx_len), head_len = e->sctx_len;
    else if (prefix && s[0] != ' ') head[0] = ' ', head_len = 1;
    if (!reserve(&e->work, head_len + R + 1, 1)) return WM_ERR_NOMEM;
    memcpy(e->work.p, head, head_len);
    e->work.len = head_len;
    if (!t->n_norm) {
        memcpy((unsigned char *)e->work.p + head_len, s, R);
        e->work.len += R;
    } else {
        map_n = malloc((R + 1) * sizeof *map_n);
        map_r = malloc((R + 1) * sizeof *map_r);
        if (!map_n || !map_r) st = WM_ERR_NOMEM;
        for (size_t i = 0; !st && i < R;) {
            size_t j = i;
            if (s[i] < 0x80) {
                map_n[n_map] = e->work.len, map_r[n_map++] = i;
                j = i + 1;
            }
            while (j < R && s[j] >= 0x80) j++;
            size_t k = j - i;
            const unsigned char *blk = normalize(e, s + i, &k, &st);
            if (!blk) break;
            if (!reserve(&e->work, e->work.len + k + 1, 1)) {
                st = WM_ERR_NOMEM;
                break;
            }
            memcpy((unsigned char *)e->work.p + e->work.len, blk, k);
            e->work.len += k;
            i = j;
        }
        if (!st) map_n[n_map] = e->work.len, map_r[n_map++] = R;
    }
    if (!st) {
        size_t from = mid ? head_len : 0; /* a prefix space is text; a context character is not */
        walk w = { e->work.p, from, mid ? e->sctx_levels : 0, map_n, n_map, 0, 0, 0, 0 };
        w.best = from; /* nothing cut yet */
        w.best_ids = e->ids.len;
        st = walk_piece(e, &w, 0, 0, from, e->work.len, open || R < n, 1);
        if (!st && (open || R < n)) {
            e->ids.len = w.best_ids; /* pieces after the cut come again next time */
            size_t cut = w.best;
            if (cut > from) {
                *cut_made = 1;
                const unsigned char *b = e->work.p;
                size_t c0 = cut - 1;
                while (c0 > 0 && (b[c0] & 0xc0) == 0x80) c0--;
                e->sctx_len = cut - c0;
                memcpy(e->sctx, b + c0, e->sctx_len);
                e->sctx_levels = w.best_level + 1;
                if (!t->n_norm) {
                    *used = cut > head_len ? cut - head_len : 0;
                } else {
                    size_t lo = 0;
                    while (map_n[lo] != cut) lo++; /* allowed cuts are in the map */
                    *used = map_r[lo];
                }
            }
        } else if (!st) {
            *used = n;
        }
    }
    free(map_n);
    free(map_r);
    return st;
}

static int utf8_incomplete(const unsigned char *s, size_t n)
{
    size_t need = s[0] >= 0xc2 && s[0] <= 0xdf ? 2 : s[0] >= 0xe0 && s[0] <= 0xef ? 3 : s[0] >= 0xf0 && s[0] <= 0xf4 ? 4 : 0;
    if (need == 0 || n >= need) return 0;
    for (size_t i = 1; i < n; i++)
        if ((s[i] & 0xc0) != 0x80) return 0;
    if (n >= 2 && ((s[0] == 0xe0 && s[1] < 0xa0) || (s[0] == 0xed && s[1] > 0x9f) || (s[0] == 0xf0 && s[1] < 0x90) ||
                   (s[0] == 0xf4 && s[1] > 0x8f)))
        return 0;
    return 1;
}

/* Validate (or repair, lossy) spend + part into sraw; an incomplete
 * character at the end waits in spend unless final. */
static wm_status stream_append(wm_encoder *e, const unsigned char *part, size_t len, int final, wm_error *err)
{
    int lossy = (e->s_flags & WM_ENC_LOSSY) != 0;
    size_t pend = e->spend_len, n = pend + len;
    e->text.len = 0;
    if (!reserve(&e->text, n + 1, 1)) return WM_ERR_NOMEM;
    unsigned char *src = e->text.p;
    memcpy(src, e->spend, pend);
    if (len) memcpy(src + pend, part, len);
    e->spend_len = 0;
    if (!reserve(&e->sraw, e->sraw.len + 3 * n + 1, 1)) return WM_ERR_NOMEM;
    unsigned char *o = (unsigned char *)e->sraw.p + e->sraw.len;
    size_t w = 0, i = 0;
    if (e->s_skip) /* as wm_encode: one U+FFFD for a bad byte and the continuation bytes after it */
        while (i < n && (src[i] & 0xc0) == 0x80) i++;
    e->s_skip = i == n && e->s_skip;
    while (i < n) {
        utf8proc_int32_t cp;
        utf8proc_ssize_t k = utf8proc_iterate(src + i, (utf8proc_ssize_t)(n - i), &cp);
        if (k > 0) {
            memcpy(o + w, src + i, (size_t)k);
            w += (size_t)k;
            i += (size_t)k;
            continue;
        }
        if (!final && n - i < 4 && utf8_incomplete(src + i, n - i)) {
            memcpy(e->spend, src + i, n - i);
            e->spend_len = n - i;
            break;
        }
        if (!lossy) {
            seterr(err, "invalid UTF-8 at byte offset %llu", (unsigned long long)(e->s_in - pend + i));
            return WM_ERR_FORMAT;
        }
        memcpy(o + w, "\xef\xbf\xbd", 3);
        w += 3;
        i++;
        while (i < n && (src[i] & 0xc0) == 0x80 && utf8proc_iterate(src + i, (utf8proc_ssize_t)(n - i), &cp) <= 0) i++;
        e->s_skip = i == n; /* the next part may go on with continuation bytes */
    }
    e->sraw.len += w;
    e->s_in += len;
    return WM_OK;
}

/* Added tokens in [s, s+n) at one level (as encode_added: raw-text ones
 * first, then normalized ones inside each remaining segment), the segments
 * between them through stream_segment.  open: more text may follow, so
 * only tokens starting before the last added_max - 1 bytes are certain.
 * *used: bytes consumed; *mid: whether the text after them resumes inside
 * a segment (in: whether s does). */
static wm_status stream_added(wm_encoder *e, const unsigned char *s, size_t n, int normalized, int open,
                              size_t *used, int *mid)
{
    const wm_tokenizer *t = e->tok;
    int special_as_text = (e->s_flags & WM_ENC_SPECIAL_AS_TEXT) != 0;
    size_t limit = !open || t->added_max <= 1 ? n : n > t->added_max - 1 ? n - (t->added_max - 1) : 0;
    while (limit > 0 && limit < n && (s[limit] & 0xc0) == 0x80) limit--; /* a character boundary */
    size_t seg = 0, u;
    wm_status st;
    *used = 0;
    for (size_t i = 0; i < limit;) {
        const added_token *a = t->added_first[s[i]] ? added_at(t, s + i, n - i, normalized, special_as_text) : NULL;
        if (!a) {
            i++;
            continue;
        }
        int m = *mid, cut;
        st = normalized ? stream_segment(e, s + seg, i - seg, m, 0, &u, &cut) : stream_added(e, s + seg, i - seg, 1, 0, &u, &m);
        if (st) return st;
        if (!PUSH(e->ids, wm_token, a->id)) return WM_ERR_NOMEM;
        *mid = 0; /* the next segment starts after an added token */
        i += a->len;
        seg = *used = i;
    }
    if (normalized) {
        /* text past `limit` may still become an added token: not ours yet */
        int cut;
        size_t known = !open ? n - seg : limit > seg ? limit - seg : 0;
        st = stream_segment(e, s + seg, known, *mid, open, &u, &cut);
        if (cut) *mid = 1;
    } else {
        st = stream_added(e, s + seg, n - seg, 1, open, &u, mid);
    }
    if (!st) *used = seg + u;
    return st;
}

/* Tokenize sraw up to the last safe cut (everything when final). */
static wm_status stream_run(wm_encoder *e, int final)
{
    size_t n = e->sraw.len, used;
    int mid = e->s_mid;
    wm_status st = stream_added(e, e->sraw.p, n, 0, !final, &used, &mid);
    if (st || final) return st;
    e->s_mid = mid;
    memmove(e->sraw.p, (unsigned char *)e->sraw.p + used, n - used);
    e->sraw.len = n - used;
    return WM_OK;
}

wm_status wm_encode_stream(wm_encoder *e, const char *part, size_t len, unsigned flags, bool final,
                           const wm_token **ids, size_t *n_ids, wm_error *err)
{
    if (!e || (!part && len) || !ids || !n_ids || (flags & ~(WM_ENC_SPECIAL_AS_TEXT | WM_ENC_LOSSY))) return WM_ERR_ARG;
    *ids = NULL;
    *n_ids = 0;
    if (e->s_active && flags != e->s_flags) return WM_ERR_ARG;
    if (!e->s_active) {
        e->s_active = 1;
        e->s_flags = flags;
        e->sraw.len = e->spend_len = 0;
        e->s_skip = 0;
        e->s_in = 0;
        e->s_mid = 0;
        e->sctx_len = 0;
        e->sctx_levels = 0;
    }
    e->err = err;
    e->text_base = NULL;
    e->ids.len = 0;
    wm_status st = reserve(&e->ids, 1, sizeof(wm_token)) ? WM_OK : WM_ERR_NOMEM;
    if (!st) st = stream_append(e, (const unsigned char *)part, len, final, err);
    if (!st) st = stream_run(e, final);
    if (st || final) {
        e->s_active = 0; /* an error ends the stream */
        e->sraw.len = e->spend_len = 0;
    }
    if (st) return st;
    *ids = e->ids.p;
    *n_ids = e->ids.len;
    return WM_OK;
}

size_t wm__encoder_stream_held(const wm_encoder *e) { return e->sraw.len + e->spend_len; }
