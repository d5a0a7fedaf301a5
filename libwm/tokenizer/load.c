/* Loading a Hugging Face tokenizer.json (byte-level BPE): jansson for the
 * JSON, the vocabulary mapped back to raw bytes through GPT-2's table once,
 * so that nothing after loading touches the stand-in characters. */
#include "tokenizer_internal.h"

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>

#include <sodium.h>

void tok_seterr(wm_error *err, const char *fmt, ...)
{
    if (!err) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->message, sizeof err->message, fmt, ap);
    va_end(ap);
}

void tok_report(wm_error *err, const wm_error *mine, wm_status st, const char *what)
{
    if (!err || st == WM_OK) return;
    if (mine->message[0]) memcpy(err->message, mine->message, sizeof err->message);
    else tok_seterr(err, "%s: %s", what, wm_strerror(st));
}

static size_t pow2_at_least(size_t n)
{
    size_t c = 16;
    while (c < n) c <<= 1;
    return c;
}

static int strmap_init(strmap *m, size_t n)
{
    m->cap = pow2_at_least(2 * n);
    m->slot = wm__calloc(m->cap, sizeof *m->slot);
    return m->slot != NULL;
}

int32_t tok_strmap_get(const wm_tokenizer *t, const unsigned char *s, size_t n)
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
    m->key = wm__calloc(m->cap, sizeof *m->key);
    m->val = wm__malloc(m->cap * sizeof *m->val);
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

int tok_pairmap_get(const pairmap *m, uint32_t a, uint32_t b, uint64_t *val)
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
        unsigned char *p = wm__realloc(t->pool, cap);
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

typedef struct loader {
    wm_tokenizer *t;
    const char *name;
    wm_error *err;
    pcre2_compile_context *cc; /* PCRE2 through core/alloc.h */
} loader;

static wm_status lerr(loader *L, const char *fmt, ...)
{
    char msg[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    tok_seterr(L->err, "%s: %s", L->name, msg);
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

static wm_status compile_re(loader *L, const char *what, const char *pattern, size_t len,
                            int literal, pcre2_code **out)
{
    int code;
    PCRE2_SIZE off;
    /* PCRE2_LITERAL takes no PCRE2_UCP ("invalid option bits"); a literal needs none */
    uint32_t opts = PCRE2_UTF | (literal ? PCRE2_LITERAL : PCRE2_UCP);
    char *tr = NULL;
    if (!literal) {
        if (!(tr = tok_translate_re(pattern, len, &len))) return WM_ERR_NOMEM;
        pattern = tr;
    }
    pcre2_code *re = pcre2_compile((PCRE2_SPTR)pattern, len, opts, &code, &off, L->cc);
    wm__free(tr);
    if (!re && code == PCRE2_ERROR_HEAP_FAILED) return WM_ERR_NOMEM; /* the engine's memory, not the pattern */
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

static wm_status dup_text(const char *s, size_t n, unsigned char **out, size_t *out_len)
{
    *out = wm__malloc(n + 1);
    if (!*out) return WM_ERR_NOMEM;
    memcpy(*out, s, n);
    (*out)[n] = 0;
    *out_len = n;
    return WM_OK;
}

/* {"String": s} (a literal: Replace escapes it, replace.rs) or {"Regex": r}. */
static wm_status load_pattern(loader *L, json_t *pat, const char *path, pcre2_code **re)
{
    json_t *rx = json_object_get(pat, "Regex"), *lit = json_object_get(pat, "String");
    if (!json_is_object(pat) || json_object_size(pat) != 1 || !(json_is_string(rx) || json_is_string(lit)))
        return lerr(L, "%s: expected {\"Regex\": ...} or {\"String\": ...}", path);
    json_t *v = rx ? rx : lit;
    if (json_string_length(v) == 0) return lerr(L, "%s: empty pattern", path);
    return compile_re(L, path, json_string_value(v), json_string_length(v), lit != NULL, re);
}

/* The GPT-2 pattern ByteLevel uses when use_regex is true. */
static const char gpt2_pattern[] =
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";

/* A "Sequence" normalizer, pre-tokenizer or decoder: each element of
 * j[field] loaded in order by `one`, with its path in error messages. */
typedef wm_status (*step_loader)(loader *L, json_t *j, const char *path, void *ctx);

static wm_status load_sequence(loader *L, json_t *j, const char *path, const char *field, step_loader one,
                               void *ctx)
{
    json_t *list = json_object_get(j, field);
    if (!json_is_array(list)) return lerr(L, "%s.%s: expected an array", path, field);
    size_t i;
    json_t *e;
    json_array_foreach(list, i, e) {
        char sub[64];
        snprintf(sub, sizeof sub, "%s.%s[%zu]", path, field, i);
        wm_status st = one(L, e, sub, ctx);
        if (st) return st;
    }
    return WM_OK;
}

static wm_status load_normalizer(loader *L, json_t *n, const char *path);
static wm_status load_pre(loader *L, json_t *p, const char *path, int *byte_level);
static wm_status load_decoder(loader *L, json_t *d, const char *path);

static wm_status seq_normalizer(loader *L, json_t *j, const char *path, void *ctx)
{
    (void)ctx;
    return load_normalizer(L, j, path);
}

static wm_status seq_pre(loader *L, json_t *j, const char *path, void *byte_level)
{
    return load_pre(L, j, path, byte_level);
}

static wm_status seq_decoder(loader *L, json_t *j, const char *path, void *ctx)
{
    (void)ctx;
    return load_decoder(L, j, path);
}

static wm_status load_normalizer(loader *L, json_t *n, const char *path)
{
    wm_tokenizer *t = L->t;
    if (!n || json_is_null(n)) return WM_OK;
    const char *type = jstr(n, "type");
    if (!type) return lerr(L, "%s: no type", path);
    if (!strcmp(type, "Sequence")) return load_sequence(L, n, path, "normalizers", seq_normalizer, NULL);
    utf8proc_option_t o = 0;
    int kind = NORM_UNICODE;
    if (!strcmp(type, "NFC")) o = UTF8PROC_COMPOSE;
    else if (!strcmp(type, "NFD")) o = UTF8PROC_DECOMPOSE;
    else if (!strcmp(type, "NFKC")) o = UTF8PROC_COMPOSE | UTF8PROC_COMPAT;
    else if (!strcmp(type, "NFKD")) o = UTF8PROC_DECOMPOSE | UTF8PROC_COMPAT;
    else if (!strcmp(type, "Prepend")) kind = NORM_PREPEND;
    else if (!strcmp(type, "Replace")) kind = NORM_REPLACE;
    else if (!strcmp(type, "Strip")) kind = NORM_STRIP;
    else return lerr(L, "%s: normalizer '%s' is not supported (NFC, NFD, NFKC, NFKD, Prepend, Replace, Strip, "
                     "Sequence)", path, type);
    if (t->n_norm == MAX_STEPS) return lerr(L, "%s: too many normalizers", path);
    norm_step *ns = &t->nstep[t->n_norm];
    memset(ns, 0, sizeof *ns);
    ns->type = kind;
    t->norm[t->n_norm] = o | UTF8PROC_STABLE;
    wm_status st = WM_OK;
    if (kind == NORM_PREPEND) { /* normalizers/prepend.rs */
        json_t *v = json_object_get(n, "prepend");
        if (!json_is_string(v)) return lerr(L, "%s.prepend: expected a string", path);
        st = dup_text(json_string_value(v), json_string_length(v), &ns->text, &ns->text_len);
    } else if (kind == NORM_REPLACE) { /* normalizers/replace.rs */
        json_t *c = json_object_get(n, "content");
        if (!json_is_string(c)) return lerr(L, "%s.content: expected a string", path);
        char sub[80];
        snprintf(sub, sizeof sub, "%s.pattern", path);
        if ((st = load_pattern(L, json_object_get(n, "pattern"), sub, &ns->re))) return st;
        st = dup_text(json_string_value(c), json_string_length(c), &ns->text, &ns->text_len);
    } else if (kind == NORM_STRIP) { /* normalizers/strip.rs: serde names strip_left, strip_right */
        json_t *l = json_object_get(n, "strip_left"), *r = json_object_get(n, "strip_right");
        if (!json_is_boolean(l) || !json_is_boolean(r))
            return lerr(L, "%s: strip_left and strip_right must be booleans", path);
        ns->left = json_is_true(l), ns->right = json_is_true(r);
    }
    t->n_norm++; /* counted now, so that free releases what the step holds */
    if (kind != NORM_UNICODE) t->norm_whole = t->whole_segments = 1;
    return st;
}

/* Metaspace's fields, as its deserializer reads them (metaspace.rs,
 * v0.23.1): replacement (one character), prepend_scheme (default
 * "always"), add_prefix_space false only with "never", split (default
 * true). */
static wm_status load_metaspace(loader *L, json_t *p, const char *path, unsigned char rep[4], int *rep_len,
                                int *scheme, int *split)
{
    json_t *r = json_object_get(p, "replacement");
    utf8proc_int32_t cp;
    if (!json_is_string(r) || json_string_length(r) == 0 || json_string_length(r) > 4 ||
        utf8proc_iterate((const utf8proc_uint8_t *)json_string_value(r), (utf8proc_ssize_t)json_string_length(r), &cp) !=
            (utf8proc_ssize_t)json_string_length(r))
        return lerr(L, "%s.replacement: expected one character", path);
    memcpy(rep, json_string_value(r), json_string_length(r));
    *rep_len = (int)json_string_length(r);
    const char *ps = jstr(p, "prepend_scheme");
    json_t *psv = json_object_get(p, "prepend_scheme");
    if (psv && !ps) return lerr(L, "%s.prepend_scheme: expected \"first\", \"always\" or \"never\"", path);
    if (!ps || !strcmp(ps, "always")) *scheme = MS_ALWAYS;
    else if (!strcmp(ps, "first")) *scheme = MS_FIRST;
    else if (!strcmp(ps, "never")) *scheme = MS_NEVER;
    else return lerr(L, "%s.prepend_scheme: '%s' is not \"first\", \"always\" or \"never\"", path, ps);
    json_t *aps = json_object_get(p, "add_prefix_space");
    if (json_is_false(aps) && *scheme != MS_NEVER)
        return lerr(L, "%s: add_prefix_space does not match declared prepend_scheme", path);
    json_t *sp = json_object_get(p, "split");
    if (sp && !json_is_null(sp) && !json_is_boolean(sp)) return lerr(L, "%s.split: expected a boolean", path);
    *split = !json_is_false(sp);
    return WM_OK;
}

static wm_status load_pre(loader *L, json_t *p, const char *path, int *byte_level)
{
    wm_tokenizer *t = L->t;
    if (!p || json_is_null(p)) return WM_OK;
    const char *type = jstr(p, "type");
    if (!type) return lerr(L, "%s: no type", path);
    if (!strcmp(type, "Sequence")) return load_sequence(L, p, path, "pretokenizers", seq_pre, byte_level);
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
    } else if (!strcmp(type, "Metaspace")) {
        if (*byte_level) return lerr(L, "%s: %s after ByteLevel is not supported", path, type);
        int split;
        if ((st = load_metaspace(L, p, path, s->rep, &s->rep_len, &s->scheme, &split))) return st;
        s->type = PRE_METASPACE;
        s->behavior = B_MERGED_NEXT; /* normalized.split(replacement, MergedWithNext) */
        if (split && (st = compile_re(L, path, (const char *)s->rep, (size_t)s->rep_len, 1, &s->re))) return st;
        t->whole_segments = 1;
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
        return lerr(L, "%s: pre-tokenizer '%s' is not supported (Split, ByteLevel, Metaspace, Digits, Sequence)",
                    path, type);
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
        return lerr(L, "model.type: '%s' is not supported (only BPE, byte-level or SentencePiece-style; "
                    "WordPiece, Unigram and WordLevel tokenizers are not)", type);
    /* models/bpe/model.rs (v0.23.1): byte_fallback, fuse_unk, unk_token.
     * A byte-level vocabulary has a token for every byte, so there they
     * never apply. */
    t->byte_fallback = jtrue(model, "byte_fallback", 0);
    t->fuse_unk = jtrue(model, "fuse_unk", 0);
    t->unk_id = -1;
    json_t *unk = json_object_get(model, "unk_token");
    if (unk && !json_is_null(unk) && !json_is_string(unk)) return lerr(L, "model.unk_token: expected a string or null");
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
    t->piece = wm__malloc(t->n_ids * sizeof *t->piece);
    if (!t->piece || !strmap_init(&t->vocab, json_object_size(vocab))) return WM_ERR_NOMEM;
    memset(t->piece, 0xff, t->n_ids * sizeof *t->piece);
    for (int b = 0; b < 256; b++) t->byte_id[b] = -1;

    unsigned char buf[1024];
    wm_status st0;
    json_object_foreach(vocab, k, v) {
        wm_token id = (wm_token)json_integer_value(v);
        size_t klen = strlen(k), n;
        if (t->piece[id] != UINT64_MAX) return lerr(L, "model.vocab: id %d appears twice", id);
        int mapped = !t->byte_level || (klen <= sizeof buf && unmap_bytes(k, klen, buf, &n));
        if (!t->byte_level) { /* the token is its text */
            if ((st0 = set_piece(L, id, (const unsigned char *)k, klen))) return st0;
            if (!strmap_put(t, id)) return lerr(L, "model.vocab[\"%.40s\"]: same bytes as another token", k);
            continue;
        }
        wm_status st = mapped ? set_piece(L, id, buf, n) : set_piece(L, id, (const unsigned char *)k, klen);
        if (st) return st;
        if (mapped) {
            if (!strmap_put(t, id)) return lerr(L, "model.vocab[\"%.40s\"]: same bytes as another token", k);
            if (n == 1) t->byte_id[buf[0]] = id;
        }
    }
    for (int b = 0; t->byte_level && b < 256; b++)
        if (t->byte_id[b] < 0) return lerr(L, "model.vocab: no token for byte 0x%02x (not a byte-level vocabulary)", b);
    for (int b = 0; b < 256; b++) { /* format!("<{b:#04X}>"), model.rs */
        char name[8];
        snprintf(name, sizeof name, "<0x%02X>", b);
        t->fallback_id[b] = t->byte_level ? -1 : tok_strmap_get(t, (const unsigned char *)name, 6);
    }
    if (json_is_string(unk) && !t->byte_level) {
        /* model.rs looks it up when a character is unknown and fails there
         * if it is missing: refused here instead */
        t->unk_id = tok_strmap_get(t, (const unsigned char *)json_string_value(unk), json_string_length(unk));
        if (t->unk_id < 0) return lerr(L, "model.unk_token: '%.40s' is not in the vocabulary", json_string_value(unk));
    }

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
        if (!t->byte_level) { /* the strings themselves */
            if (al > sizeof ra || bl > sizeof rb)
                return lerr(L, "model.merges[%zu]: a token longer than %zu bytes", i, sizeof ra);
            memcpy(ra, a, al), na = al;
            memcpy(rb, b, bl), nb = bl;
        } else if (al > sizeof ra || bl > sizeof rb || !unmap_bytes(a, al, ra, &na) || !unmap_bytes(b, bl, rb, &nb))
            return lerr(L, "model.merges[%zu]: not byte-level text", i);
        memcpy(rab, ra, na);
        memcpy(rab + na, rb, nb);
        int32_t ia = tok_strmap_get(t, ra, na), ib = tok_strmap_get(t, rb, nb), iab = tok_strmap_get(t, rab, na + nb);
        if (ia < 0 || ib < 0 || iab < 0)
            return lerr(L, "model.merges[%zu]: '%.*s' + '%.*s' or their merge is not in the vocabulary", i,
                        (int)al, a, (int)bl, b);
        pairmap_put(&t->merges, (uint32_t)ia, (uint32_t)ib, (uint32_t)i, (uint32_t)iab);
    }

    /* Added tokens: matched in raw text.  A `normalized` one is matched by the
     * reference after normalization; that is the same only when there is no
     * normalizer, so anything else is refused rather than approximated. */
    t->n_added = json_array_size(added);
    t->added = wm__calloc(t->n_added ? t->n_added : 1, sizeof *t->added);
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

/* Decoders of a non-byte-level tokenizer (tokenizers/src/decoders/, v0.23.1). */
static wm_status load_decoder(loader *L, json_t *d, const char *path)
{
    wm_tokenizer *t = L->t;
    if (!d || json_is_null(d)) return WM_OK;
    const char *type = jstr(d, "type");
    if (!type) return lerr(L, "%s: no type", path);
    t->has_decoder = 1;
    if (!strcmp(type, "Sequence")) return load_sequence(L, d, path, "decoders", seq_decoder, NULL);
    if (t->n_dec == MAX_STEPS) return lerr(L, "%s: too many decoders", path);
    dec_step *ds = &t->dec[t->n_dec];
    memset(ds, 0, sizeof *ds);
    wm_status st = WM_OK;
    if (!strcmp(type, "Replace")) {
        json_t *c = json_object_get(d, "content");
        if (!json_is_string(c)) return lerr(L, "%s.content: expected a string", path);
        char sub[80];
        snprintf(sub, sizeof sub, "%s.pattern", path);
        ds->type = DEC_REPLACE;
        if ((st = load_pattern(L, json_object_get(d, "pattern"), sub, &ds->re))) return st;
        t->n_dec++;
        return dup_text(json_string_value(c), json_string_length(c), &ds->text, &ds->text_len);
    } else if (!strcmp(type, "Metaspace")) {
        unsigned char rep[4];
        int rep_len, split;
        if ((st = load_metaspace(L, d, path, rep, &rep_len, &ds->scheme, &split))) return st;
        ds->type = DEC_METASPACE;
        t->n_dec++;
        return dup_text((const char *)rep, (size_t)rep_len, &ds->text, &ds->text_len);
    } else if (!strcmp(type, "ByteFallback")) {
        ds->type = DEC_BYTEFALLBACK;
    } else if (!strcmp(type, "Fuse")) {
        ds->type = DEC_FUSE;
    } else if (!strcmp(type, "Strip")) { /* strip.rs: content is a char, start and stop counts */
        json_t *c = json_object_get(d, "content"), *a = json_object_get(d, "start"), *b = json_object_get(d, "stop");
        utf8proc_int32_t cp;
        if (!json_is_string(c) || json_string_length(c) == 0 ||
            utf8proc_iterate((const utf8proc_uint8_t *)json_string_value(c), (utf8proc_ssize_t)json_string_length(c),
                             &cp) != (utf8proc_ssize_t)json_string_length(c))
            return lerr(L, "%s.content: expected one character", path);
        if (!json_is_integer(a) || !json_is_integer(b) || json_integer_value(a) < 0 || json_integer_value(b) < 0)
            return lerr(L, "%s: start and stop must be non-negative integers", path);
        ds->type = DEC_STRIP;
        ds->start = (size_t)json_integer_value(a);
        ds->stop = (size_t)json_integer_value(b);
        t->n_dec++;
        return dup_text(json_string_value(c), json_string_length(c), &ds->text, &ds->text_len);
    } else {
        return lerr(L, "%s: decoder '%s' is not supported here (a tokenizer without a ByteLevel pre-tokenizer: "
                    "Replace, ByteFallback, Fuse, Strip, Metaspace, Sequence)", path, type);
    }
    t->n_dec++;
    return st;
}

static int longer_first(const void *a, const void *b)
{
    const added_token *x = a, *y = b;
    if (x->len != y->len) return x->len > y->len ? -1 : 1;
    return x->id - y->id;
}

static wm_status tokenizer_parse(wm_tokenizer **out, const char *json, size_t len, const char *name,
                                 wm_error *err)
{
    if (out) *out = NULL; /* on every failure, as the header says */
    if (!out || (!json && len)) {
        tok_seterr(err, "%s: %s", name ? name : "<tokenizer.json>", out ? "NULL text with a length > 0" : "NULL out");
        return WM_ERR_ARG;
    }
    if (sodium_init() < 0) return WM_ERR_CRYPTO;
    static pthread_once_t table_once = PTHREAD_ONCE_INIT;
    if (pthread_once(&table_once, init_byte_table) != 0) return WM_ERR_UNSUPPORTED;
    wm_status ust = tok_unicode_init();
    if (ust) return ust;
    loader L = { wm__calloc(1, sizeof(wm_tokenizer)), name ? name : "<tokenizer.json>", err, NULL };
    if (!L.t) return WM_ERR_NOMEM;
    pcre2_general_context *gc = tok_pcre2_general();
    L.cc = gc ? pcre2_compile_context_create(gc) : NULL;
    pcre2_general_context_free(gc); /* the compile context has its own copy of the allocator */
    crypto_hash_sha256(L.t->sha256, (const unsigned char *)json, len);
    json_error_t je;
    memset(&je, 0, sizeof je); /* json_error_code reads a byte that only an error sets */
    json_t *root = L.cc ? json_loadb(json, len, JSON_REJECT_DUPLICATES, &je) : NULL;
    wm_status st = WM_OK;
    int byte_level = 0;
    if (!L.cc) {
        st = WM_ERR_NOMEM;
    } else if (!root) {
        st = tok_json_failure(json, len, &je);
        if (st == WM_ERR_FORMAT) tok_seterr(err, "%s:%d:%d: %s", L.name, je.line, je.column, je.text);
    } else if (!tok_json_matches(json, len, root)) {
        st = WM_ERR_NOMEM;
    } else if (!json_is_object(root)) {
        st = lerr(&L, "top level: expected an object");
    } else if (!(st = load_normalizer(&L, json_object_get(root, "normalizer"), "normalizer")) &&
               !(st = load_pre(&L, json_object_get(root, "pre_tokenizer"), "pre_tokenizer", &byte_level)) &&
               !(st = (L.t->byte_level = byte_level, load_model(&L, root)))) {
        /* Without a ByteLevel step the vocabulary is text (SentencePiece
         * style: Llama 2, Gemma, Gemini) and the decoder is applied. */
        const char *dt = jstr(json_object_get(root, "decoder"), "type");
        if (!byte_level) st = load_decoder(&L, json_object_get(root, "decoder"), "decoder");
        else if (dt && strcmp(dt, "ByteLevel") && strcmp(dt, "Sequence"))
            st = lerr(&L, "decoder: '%s' is not supported (ByteLevel)", dt);
    }
    json_decref(root);
    pcre2_compile_context_free(L.cc);
    if (st) {
        if (st == WM_ERR_NOMEM) tok_seterr(err, "%s: out of memory", L.name);
        wm_tokenizer_free(L.t);
        return st;
    }
    qsort(L.t->added, L.t->n_added, sizeof *L.t->added, longer_first);
    L.t->added_max = L.t->n_added ? L.t->added[0].len : 0;
    /* By first byte, keeping the order within each (Gemma 3 has 6,415
     * added tokens, 6,322 of them starting with '<'): a stable counting sort. */
    L.t->added_idx = wm__malloc((L.t->n_added ? L.t->n_added : 1) * sizeof *L.t->added_idx);
    if (!L.t->added_idx) {
        tok_seterr(err, "%s: out of memory", L.name);
        wm_tokenizer_free(L.t);
        return WM_ERR_NOMEM;
    }
    uint32_t count[257] = { 0 };
    for (size_t i = 0; i < L.t->n_added; i++) count[L.t->added[i].text[0] + 1]++;
    for (int b = 0; b < 256; b++) count[b + 1] += count[b];
    memcpy(L.t->added_start, count, sizeof count);
    for (size_t i = 0; i < L.t->n_added; i++) L.t->added_idx[count[L.t->added[i].text[0]]++] = (uint32_t)i;
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

wm_status wm_tokenizer_parse(wm_tokenizer **out, const char *json, size_t len, const char *name,
                             wm_error *err)
{
    wm_error mine;
    mine.message[0] = 0;
    wm_status st = tokenizer_parse(out, json, len, name, err ? &mine : NULL);
    tok_report(err, &mine, st, name ? name : "<tokenizer.json>");
    return st;
}

static wm_status tokenizer_load(wm_tokenizer **out, const char *path, wm_error *err)
{
    if (out) *out = NULL; /* on every failure, as the header says */
    if (!out || !path) {
        tok_seterr(err, "wm_tokenizer_load: %s is NULL", out ? "path" : "out");
        return WM_ERR_ARG;
    }
    FILE *f = fopen(path, "rb");
    if (!f) {
        tok_seterr(err, "%s: %s", path, strerror(errno));
        return WM_ERR_IO;
    }
    size_t cap = 1 << 20, len = 0;
    char *buf = wm__malloc(cap);
    wm_status st = buf ? WM_OK : WM_ERR_NOMEM;
    while (st == WM_OK) {
        if (len == cap) {
            char *nb = wm__realloc(buf, cap *= 2);
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
                tok_seterr(err, "%s: read error: %s", path, strerror(errno));
                st = WM_ERR_IO;
            }
            break;
        }
    }
    fclose(f);
    if (st == WM_OK) st = wm_tokenizer_parse(out, buf, len, path, err);
    wm__free(buf);
    return st;
}

wm_status wm_tokenizer_load(wm_tokenizer **out, const char *path, wm_error *err)
{
    wm_error mine;
    mine.message[0] = 0;
    wm_status st = tokenizer_load(out, path, err ? &mine : NULL);
    tok_report(err, &mine, st, path ? path : "wm_tokenizer_load");
    return st;
}

void wm_tokenizer_free(wm_tokenizer *t)
{
    if (!t) return;
    for (int i = 0; i < t->n_pre; i++) pcre2_code_free(t->pre[i].re);
    for (int i = 0; i < t->n_norm; i++) {
        pcre2_code_free(t->nstep[i].re);
        wm__free(t->nstep[i].text);
    }
    for (int i = 0; i < t->n_dec; i++) {
        pcre2_code_free(t->dec[i].re);
        wm__free(t->dec[i].text);
    }
    wm__free(t->pool);
    wm__free(t->piece);
    wm__free(t->vocab.slot);
    wm__free(t->merges.key);
    wm__free(t->merges.val);
    wm__free(t->added);
    wm__free(t->added_idx);
    wm__free(t);
}

wm_status wm_tokenizer_n_vocab(const wm_tokenizer *t, uint32_t *out)
{
    if (!t || !out) return WM_ERR_ARG;
    *out = t->n_ids;
    return WM_OK;
}

wm_status wm_tokenizer_sha256(const wm_tokenizer *t, unsigned char out[32])
{
    if (!t || !out) return WM_ERR_ARG;
    memcpy(out, t->sha256, 32);
    return WM_OK;
}
