/* Normalizers, in sequence: NFC, NFD, NFKC, NFKD through utf8proc, and
 * Prepend, Replace and Strip as huggingface/tokenizers v0.23.1 defines them
 * (tokenizers/src/normalizers/prepend.rs, replace.rs, strip.rs; the source
 * of npm tokenizers@0.23.2). */
#include "tokenizer_internal.h"

/* Rust's char::is_whitespace: Unicode White_Space. */
static int is_white_space(utf8proc_int32_t c)
{
    return (c >= 0x09 && c <= 0x0d) || c == 0x20 || c == 0x85 || c == 0xa0 || c == 0x1680 ||
           (c >= 0x2000 && c <= 0x200a) || c == 0x2028 || c == 0x2029 || c == 0x202f || c == 0x205f || c == 0x3000;
}

/* SysRegex::find_iter as Pattern::find_matches uses it (utils/onig.rs,
 * tokenizer/pattern.rs): leftmost matches, an empty one included (the
 * search then resumes one character on); NormalizedString::replace puts
 * rep in place of each. */
wm_status tok_replace_all(wm_encoder *e, const pcre2_code *re, const unsigned char *s, size_t n,
                          const unsigned char *rep, size_t rep_len, buf *out)
{
    size_t pos = 0, last = 0;
    while (pos <= n) {
        int rc = pcre2_match(re, s, n, pos, PCRE2_NO_UTF_CHECK, e->md, e->mctx);
        if (rc == PCRE2_ERROR_NOMATCH) break;
        if (rc < 0) return rc == PCRE2_ERROR_NOMEMORY || rc == PCRE2_ERROR_HEAPLIMIT ? WM_ERR_NOMEM : WM_ERR_LIMIT;
        PCRE2_SIZE *ov = pcre2_get_ovector_pointer(e->md);
        size_t ms = ov[0], me = ov[1];
        if (!reserve(out, out->len + (ms - last) + rep_len + 1, 1)) return WM_ERR_NOMEM;
        unsigned char *o = (unsigned char *)out->p + out->len;
        memcpy(o, s + last, ms - last);
        memcpy(o + (ms - last), rep, rep_len);
        out->len += (ms - last) + rep_len;
        last = pos = me;
        if (me == ms) { /* empty: the next search starts after the next character */
            if (pos == n) break;
            pos++;
            while (pos < n && (s[pos] & 0xc0) == 0x80) pos++;
        }
    }
    if (!reserve(out, out->len + (n - last) + 1, 1)) return WM_ERR_NOMEM;
    memcpy((unsigned char *)out->p + out->len, s + last, n - last);
    out->len += n - last;
    return WM_OK;
}

/* One Prepend, Replace or Strip step: e->norm[0..len) -> e->nscratch, then
 * the two buffers swap. */
static wm_status other_step(wm_encoder *e, const norm_step *ns, size_t *len)
{
    const unsigned char *s = e->norm.p;
    size_t n = *len;
    buf *o = &e->nscratch;
    o->len = 0;
    wm_status st = WM_OK;
    if (ns->type == NORM_PREPEND) {
        if (n == 0) return WM_OK; /* prepend.rs: only a non-empty string */
        if (!reserve(o, ns->text_len + n + 1, 1)) return WM_ERR_NOMEM;
        memcpy(o->p, ns->text, ns->text_len);
        memcpy((unsigned char *)o->p + ns->text_len, s, n);
        o->len = ns->text_len + n;
    } else if (ns->type == NORM_REPLACE) {
        if ((st = tok_replace_all(e, ns->re, s, n, ns->text, ns->text_len, o))) return st;
    } else { /* NORM_STRIP: lstrip / rstrip of White_Space */
        size_t a = 0, b = n;
        while (ns->left && a < b) {
            utf8proc_int32_t c;
            utf8proc_ssize_t k = utf8proc_iterate(s + a, (utf8proc_ssize_t)(b - a), &c);
            if (k <= 0 || !is_white_space(c)) break;
            a += (size_t)k;
        }
        while (ns->right && b > a) {
            size_t c0 = b - 1;
            while (c0 > a && (s[c0] & 0xc0) == 0x80) c0--;
            utf8proc_int32_t c;
            if (utf8proc_iterate(s + c0, (utf8proc_ssize_t)(b - c0), &c) <= 0 || !is_white_space(c)) break;
            b = c0;
        }
        if (!reserve(o, b - a + 1, 1)) return WM_ERR_NOMEM;
        memcpy(o->p, s + a, b - a);
        o->len = b - a;
    }
    buf tmp = e->norm;
    e->norm = *o;
    *o = tmp;
    *len = e->norm.len;
    return WM_OK;
}

/* Normalize [s, s+n) into e->norm; returns a pointer to the result. */
const unsigned char *tok_normalize(wm_encoder *e, const unsigned char *s, size_t *n, wm_status *st)
{
    const wm_tokenizer *t = e->tok;
    if (!t->n_norm) return s;
    size_t i = 0;
    while (!t->norm_whole && i < *n && s[i] < 0x80) i++;
    if (!t->norm_whole && i == *n) return s; /* every normal form of ASCII is itself */
    e->norm.len = 0;
    if (!reserve(&e->norm, *n + 1, 1)) {
        *st = WM_ERR_NOMEM;
        return NULL;
    }
    memcpy(e->norm.p, s, *n);
    size_t len = *n;
    e->norm.len = *n;
    for (int i = 0; i < t->n_norm; i++) {
        if (t->nstep[i].type != NORM_UNICODE) {
            wm_status r = other_step(e, &t->nstep[i], &len);
            if (r) {
                *st = r;
                return NULL;
            }
            continue;
        }
        /* utf8proc_map's three steps, into the encoder's own buffer: the
         * decomposition's length, the decomposition, then its re-encoding as
         * UTF-8 in place (composing, for NFC and NFKC).  utf8proc_map itself
         * would allocate with malloc, outside core/alloc.h, and its
         * out-of-memory error would read here as malformed text. */
        utf8proc_ssize_t r = utf8proc_decompose(e->norm.p, (utf8proc_ssize_t)len, NULL, 0, t->norm[i]);
        if (r >= 0 && !reserve(&e->ucs, (size_t)r + 1, sizeof(utf8proc_int32_t))) {
            *st = WM_ERR_NOMEM;
            return NULL;
        }
        if (r >= 0) r = utf8proc_decompose(e->norm.p, (utf8proc_ssize_t)len, e->ucs.p, r, t->norm[i]);
        if (r >= 0) r = utf8proc_reencode(e->ucs.p, r, t->norm[i]); /* needs 4 r + 1 bytes: reserved */
        if (r < 0) {
            *st = r == UTF8PROC_ERROR_OVERFLOW ? WM_ERR_LIMIT : WM_ERR_FORMAT;
            return NULL;
        }
        if (!reserve(&e->norm, (size_t)r + 1, 1)) {
            *st = WM_ERR_NOMEM;
            return NULL;
        }
        memcpy(e->norm.p, e->ucs.p, (size_t)r);
        len = e->norm.len = (size_t)r;
    }
    *n = len;
    return e->norm.p;
}
