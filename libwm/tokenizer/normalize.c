/* Normalizers (NFC, NFD, NFKC, NFKD, in sequence) through utf8proc. */
#include "tokenizer_internal.h"

/* Normalize [s, s+n) into e->norm; returns a pointer to the result. */
const unsigned char *tok_normalize(wm_encoder *e, const unsigned char *s, size_t *n, wm_status *st)
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
