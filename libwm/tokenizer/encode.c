/* One wm_encode call, as in `tokenizers`:
 *   UTF-8 check -> split on added tokens -> normalize each other segment ->
 *   pre-tokenize (Split / ByteLevel / Digits, in file order) -> BPE each piece. */
#include "tokenizer_internal.h"

wm_status wm_encoder_new(wm_encoder **out, const wm_tokenizer *tok)
{
    if (!out || !tok) return WM_ERR_ARG;
    *out = NULL;
    wm_encoder *e = wm__calloc(1, sizeof *e);
    if (!e) return WM_ERR_NOMEM;
    e->tok = tok;
    e->stream_pieces = STREAM_PIECES;
    pcre2_general_context *gc = tok_pcre2_general(); /* PCRE2 through core/alloc.h */
    e->md = gc ? pcre2_match_data_create(4, gc) : NULL;
    e->mctx = gc ? pcre2_match_context_create(gc) : NULL;
    /* optional: without it the JIT runs on its small default stack and a
     * match that outgrows it reruns in the interpreter */
    e->jit = gc ? pcre2_jit_stack_create(32 << 10, JIT_STACK_MAX, gc) : NULL;
    pcre2_general_context_free(gc); /* each object keeps a copy of the allocator */
    if (e->mctx) {
        /* The reference (Oniguruma) has no match limit; PCRE2's default of
         * 10^7 backtracks is hit by one long run (11 M letters under the
         * GPT-4o pattern), so lift it.  Memory stays bounded by the JIT
         * stack and, in the interpreter, by PCRE2's heap limit. */
        pcre2_set_match_limit(e->mctx, UINT32_MAX);
        pcre2_set_depth_limit(e->mctx, UINT32_MAX);
        if (e->jit) pcre2_jit_stack_assign(e->mctx, NULL, e->jit);
    }
    e->ckey = wm__calloc(CACHE_SLOTS, sizeof *e->ckey);
    e->cword_off = wm__malloc(CACHE_SLOTS * sizeof *e->cword_off);
    e->cword_len = wm__malloc(CACHE_SLOTS * sizeof *e->cword_len);
    e->cid_off = wm__malloc(CACHE_SLOTS * sizeof *e->cid_off);
    e->cid_len = wm__malloc(CACHE_SLOTS * sizeof *e->cid_len);
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
                  &e->sym, &e->out, &e->cbytes, &e->cids, &e->ucs, &e->nscratch, &e->dtok[0], &e->dtok[1],
                  &e->dspan[0], &e->dspan[1] };
    for (size_t i = 0; i < sizeof bs / sizeof bs[0]; i++) wm__free(bs[i]->p);
    wm__free(e->ckey);
    wm__free(e->cword_off);
    wm__free(e->cword_len);
    wm__free(e->cid_off);
    wm__free(e->cid_len);
    wm__free(e);
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
wm_status tok_encode_segment(wm_encoder *e, const unsigned char *s, size_t n, int first)
{
    const wm_tokenizer *t = e->tok;
    wm_status st = WM_OK;
    e->seg_first = first;
    e->seg_off = e->text_base ? (size_t)(s - e->text_base) : 0;
    const unsigned char *base = tok_normalize(e, s, &n, &st);
    if (!base) return st;
    if (n == 0) return WM_OK;
    if (t->n_norm) { /* keep the normalized text stable while `norm` is reused */
        wm__free(e->work.p);
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
        else if (first_re >= 0 && ((t->pre[i].type == PRE_BYTELEVEL && t->pre[i].prefix_space) ||
                                   t->pre[i].type == PRE_METASPACE))
            prefix_after = 1; /* rebuilds `work` */
    }
    for (int i = 0; i < t->n_pre; i++) {
        const pre_step *p = &t->pre[i];
        if (p->type == PRE_BYTELEVEL && p->prefix_space && (st = tok_prefix_spaces(e, &base))) return st;
        if (p->type == PRE_METASPACE && (st = tok_metaspace(e, p, &base))) return st;
        if (!p->re) continue;
        if (i == first_re && !prefix_after) return tok_split_step(e, p, base, &e->pieces, &e->next, i + 1);
        if ((st = tok_split_step(e, p, base, &e->pieces, &e->next, -1))) return st;
    }
    return tok_finish_pieces(e, base, e->pieces.p, e->pieces.len, t->n_pre);
}

const added_token *tok_added_at(const wm_tokenizer *t, const unsigned char *s, size_t left,
                                   int normalized, int special_as_text)
{
    for (uint32_t k = t->added_start[s[0]]; k < t->added_start[s[0] + 1]; k++) { /* longest first */
        const added_token *a = &t->added[t->added_idx[k]];
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
        st = normalized ? tok_encode_segment(e, s + seg, i - seg, s + seg == e->text_base)
                        : encode_added(e, s + seg, i - seg, 1, special_as_text);
        if (st) return st;
        if (!PUSH(e->ids, wm_token, a->id)) return WM_ERR_NOMEM;
        i += a->len;
        seg = i;
    }
    return normalized ? tok_encode_segment(e, s + seg, n - seg, s + seg == e->text_base) : encode_added(e, s + seg, n - seg, 1, special_as_text);
}

static wm_status encode(wm_encoder *e, const char *text, size_t len, unsigned flags, const wm_token **ids,
                        size_t *n_ids, wm_error *err)
{
    if (!e || (!text && len) || !ids || !n_ids || (flags & ~(WM_ENC_SPECIAL_AS_TEXT | WM_ENC_LOSSY))) {
        tok_seterr(err, "wm_encode: %s", !e ? "NULL encoder" : !ids || !n_ids ? "NULL ids or n_ids"
                                         : !text && len ? "NULL text with a length > 0" : "unknown flag bits");
        return WM_ERR_ARG;
    }
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

wm_status wm_encode(wm_encoder *e, const char *text, size_t len, unsigned flags, const wm_token **ids,
                    size_t *n_ids, wm_error *err)
{
    wm_error mine;
    mine.message[0] = 0;
    wm_status st = encode(e, text, len, flags, ids, n_ids, err ? &mine : NULL);
    if (e) e->err = NULL; /* it pointed at mine */
    if (st && err) {
        char what[64];
        snprintf(what, sizeof what, "wm_encode of %zu bytes", len);
        tok_report(err, &mine, st, what);
    }
    return st;
}

/* The decoder chain of a non-byte-level tokenizer over a list of tokens
 * (bytes in dtok, spans in dspan), as Decoder::decode_chain runs each step
 * and TokenizerImpl::decode joins the result (tokenizers/src/decoders/,
 * tokenizer/mod.rs, v0.23.1); without a decoder the tokens are joined with
 * spaces, as there. */
static int tok_push(buf *bytes, buf *spans, const void *p, size_t n)
{
    if (!reserve(bytes, bytes->len + n + 1, 1) || !PUSH(*spans, span, ((span){ bytes->len, n }))) return 0;
    memcpy((unsigned char *)bytes->p + bytes->len, p, n);
    bytes->len += n;
    return 1;
}

static int hexval(unsigned char c)
{
    return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
}

/* byte_fallback.rs: "<0xNN>" (u8::from_str_radix of the two middle bytes,
 * which also takes "+N") -> its byte, else -1. */
static int fallback_byte(const unsigned char *p, size_t n)
{
    if (n != 6 || memcmp(p, "<0x", 3) != 0 || p[5] != '>') return -1;
    if (p[3] == '+') return hexval(p[4]);
    int hi = hexval(p[3]), lo = hexval(p[4]);
    return hi < 0 || lo < 0 ? -1 : hi * 16 + lo;
}

static int valid_utf8(const unsigned char *p, size_t n)
{
    for (size_t i = 0; i < n;) {
        utf8proc_int32_t cp;
        utf8proc_ssize_t k = utf8proc_iterate(p + i, (utf8proc_ssize_t)(n - i), &cp);
        if (k <= 0) return 0;
        i += (size_t)k;
    }
    return 1;
}

static wm_status flush_bytes(buf *ob, buf *os, const unsigned char *b, size_t n)
{
    if (n == 0) return WM_OK;
    if (valid_utf8(b, n)) return tok_push(ob, os, b, n) ? WM_OK : WM_ERR_NOMEM;
    for (size_t i = 0; i < n; i++) /* one U+FFFD per byte token */
        if (!tok_push(ob, os, "\xef\xbf\xbd", 3)) return WM_ERR_NOMEM;
    return WM_OK;
}

static wm_status decode_step(wm_encoder *e, const dec_step *d, int in)
{
    buf *ib = &e->dtok[in], *is = &e->dspan[in], *ob = &e->dtok[!in], *os = &e->dspan[!in];
    ob->len = os->len = 0;
    const span *sp = is->p;
    wm_status st = WM_OK;
    if (d->type == DEC_FUSE) {
        if (!reserve(ob, ib->len + 1, 1)) return WM_ERR_NOMEM;
        size_t o = 0;
        for (size_t i = 0; i < is->len; i++) {
            memcpy((unsigned char *)ob->p + o, (unsigned char *)ib->p + sp[i].off, sp[i].len);
            o += sp[i].len;
        }
        ob->len = o;
        return PUSH(*os, span, ((span){ 0, o })) ? WM_OK : WM_ERR_NOMEM;
    }
    buf pb = { 0 }; /* ByteFallback: the bytes of the byte tokens in a row */
    for (size_t i = 0; i < is->len && !st; i++) {
        const unsigned char *p = (unsigned char *)ib->p + sp[i].off;
        size_t n = sp[i].len;
        if (d->type == DEC_REPLACE) {
            size_t before = ob->len;
            if ((st = tok_replace_all(e, d->re, p, n, d->text, d->text_len, ob))) break;
            if (!PUSH(*os, span, ((span){ before, ob->len - before }))) st = WM_ERR_NOMEM;
        } else if (d->type == DEC_STRIP) { /* strip.rs: up to start / stop copies of the character */
            size_t a = 0, b = n, c = d->text_len;
            for (size_t k = 0; k < d->start && a + c <= b && !memcmp(p + a, d->text, c); k++) a += c;
            for (size_t k = 0; k < d->stop && b >= a + c && !memcmp(p + b - c, d->text, c); k++) b -= c;
            if (!tok_push(ob, os, p + a, b - a)) st = WM_ERR_NOMEM;
        } else if (d->type == DEC_METASPACE) {
            /* metaspace.rs: the replacement is ' ', or nothing in the first
             * token unless prepend_scheme is "never" */
            int drop = i == 0 && d->scheme != MS_NEVER;
            size_t before = ob->len, c = d->text_len;
            if (!reserve(ob, ob->len + n + 1, 1)) {
                st = WM_ERR_NOMEM;
                break;
            }
            unsigned char *o = ob->p;
            for (size_t j = 0; j < n;) {
                if (j + c <= n && !memcmp(p + j, d->text, c)) {
                    if (!drop) o[ob->len++] = ' ';
                    j += c;
                } else {
                    o[ob->len++] = p[j++];
                }
            }
            if (!PUSH(*os, span, ((span){ before, ob->len - before }))) st = WM_ERR_NOMEM;
        } else { /* DEC_BYTEFALLBACK */
            int v = fallback_byte(p, n);
            if (v >= 0) {
                if (!PUSH(pb, unsigned char, (unsigned char)v)) st = WM_ERR_NOMEM;
                continue;
            }
            st = flush_bytes(ob, os, pb.p, pb.len);
            pb.len = 0;
            if (!st && !tok_push(ob, os, p, n)) st = WM_ERR_NOMEM;
        }
    }
    if (!st && d->type == DEC_BYTEFALLBACK) st = flush_bytes(ob, os, pb.p, pb.len);
    wm__free(pb.p);
    return st;
}

static wm_status decode_chain(wm_encoder *e, const wm_token *ids, size_t n)
{
    const wm_tokenizer *t = e->tok;
    e->dtok[0].len = e->dspan[0].len = 0;
    for (size_t i = 0; i < n; i++) {
        const unsigned char *p;
        size_t k;
        piece_of(t, ids[i], &p, &k);
        if (!tok_push(&e->dtok[0], &e->dspan[0], p, k)) return WM_ERR_NOMEM;
    }
    int cur = 0;
    for (int i = 0; i < t->n_dec; i++) {
        wm_status st = decode_step(e, &t->dec[i], cur);
        if (st) return st;
        cur = !cur;
    }
    const span *sp = e->dspan[cur].p;
    e->out.len = 0;
    for (size_t i = 0; i < e->dspan[cur].len; i++) {
        int sep = !t->has_decoder && i > 0;
        if (!reserve(&e->out, e->out.len + sp[i].len + 2, 1)) return WM_ERR_NOMEM;
        if (sep) ((unsigned char *)e->out.p)[e->out.len++] = ' ';
        memcpy((unsigned char *)e->out.p + e->out.len, (unsigned char *)e->dtok[cur].p + sp[i].off, sp[i].len);
        e->out.len += sp[i].len;
    }
    return WM_OK;
}

wm_status wm_decode(wm_encoder *e, const wm_token *ids, size_t n, const char **text, size_t *len)
{
    if (!e || (!ids && n) || !text || !len) return WM_ERR_ARG;
    const wm_tokenizer *t = e->tok;
    if (!t->byte_level) {
        for (size_t i = 0; i < n; i++)
            if (ids[i] < 0 || (uint32_t)ids[i] >= t->n_ids || t->piece[ids[i]] == UINT64_MAX) return WM_ERR_TOKEN;
        wm_status st = decode_chain(e, ids, n);
        if (st) return st;
        if (!reserve(&e->out, 1, 1)) return WM_ERR_NOMEM;
        *text = e->out.p;
        *len = e->out.len;
        return WM_OK;
    }
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
