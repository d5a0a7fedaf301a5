/* One wm_encode call, as in `tokenizers`:
 *   UTF-8 check -> split on added tokens -> normalize each other segment ->
 *   pre-tokenize (Split / ByteLevel / Digits, in file order) -> BPE each piece. */
#include "tokenizer_internal.h"

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
            tok_seterr(err, "invalid UTF-8 at byte offset %zu", i);
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

/* Normalize, pre-tokenize and BPE one segment that holds no added token. */
static wm_status encode_segment(wm_encoder *e, const unsigned char *s, size_t n)
{
    const wm_tokenizer *t = e->tok;
    wm_status st = WM_OK;
    e->seg_off = (size_t)(s - e->text_base);
    const unsigned char *base = tok_normalize(e, s, &n, &st);
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
        if (p->type == PRE_BYTELEVEL && p->prefix_space && (st = tok_prefix_spaces(e, &base))) return st;
        if (!p->re) continue;
        if (i == first_re && !prefix_after) return tok_split_step(e, p, base, &e->pieces, &e->next, i + 1);
        if ((st = tok_split_step(e, p, base, &e->pieces, &e->next, -1))) return st;
    }
    return tok_finish_pieces(e, base, e->pieces.p, e->pieces.len, t->n_pre);
}

/* Steps `from` on (regex splits only: prefix spaces never come here after
 * streaming started), then BPE, for n pieces of `base`. */
wm_status tok_finish_pieces(wm_encoder *e, const unsigned char *base, const span *sp, size_t n, int from)
{
    const wm_tokenizer *t = e->tok;
    wm_status st;
    if (from < t->n_pre) {
        e->sub.len = 0;
        if (!reserve(&e->sub, n, sizeof(span))) return WM_ERR_NOMEM;
        memcpy(e->sub.p, sp, n * sizeof *sp);
        e->sub.len = n;
        for (int i = from; i < t->n_pre; i++)
            if (t->pre[i].re && (st = tok_split_step(e, &t->pre[i], base, &e->sub, &e->subnext, -1))) return st;
        sp = e->sub.p;
        n = e->sub.len;
    }
    for (size_t i = 0; i < n; i++)
        if ((st = tok_bpe_word(e, base + sp[i].off, sp[i].len))) return st;
    return WM_OK;
}

const added_token *tok_added_at(const wm_tokenizer *t, const unsigned char *s, size_t left,
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
        const added_token *a = t->added_first[s[i]] ? tok_added_at(t, s + i, n - i, normalized, special_as_text) : NULL;
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
