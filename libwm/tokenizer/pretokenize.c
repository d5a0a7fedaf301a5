/* Pre-tokenization: Split steps (regex or string, five behaviors,
 * invert) and ByteLevel's prefix space. */
#include "tokenizer_internal.h"

/* The next non-empty match of a Split regex in sub[0..len) from *pos, as
 * `tokenizers` finds it (an empty match steps over one character, no
 * split).  1: found, [*ms, *me); 0: none, *ms = *me = len; 2 (with
 * PCRE2_PARTIAL_HARD in options): the end of the known text was reached
 * by a match that may start at *ms; -1: engine error, *st set, message
 * naming the offset.  Only PCRE2_ERROR_NOMATCH means "no match": any other
 * negative result is an error, never a reason to stop splitting (text
 * would be lost). */
int tok_next_match(wm_encoder *e, const pre_step *s, const unsigned char *base, const unsigned char *sub, size_t len,
                   size_t *pos, uint32_t options, size_t *ms, size_t *me, wm_status *st)
{
    *ms = *me = len;
    while (*pos <= len) {
        int rc = pcre2_match(s->re, sub, len, *pos, PCRE2_NO_UTF_CHECK | options, e->md, e->mctx);
        if (rc == PCRE2_ERROR_JIT_STACKLIMIT) /* the interpreter keeps its frames on the heap */
            rc = pcre2_match(s->re, sub, len, *pos, PCRE2_NO_UTF_CHECK | PCRE2_NO_JIT | options, e->md, e->mctx);
        if (rc == PCRE2_ERROR_NOMATCH) return 0;
        PCRE2_SIZE *ov = pcre2_get_ovector_pointer(e->md);
        if (rc == PCRE2_ERROR_PARTIAL) {
            *ms = ov[0];
            return 2;
        }
        if (rc < 0) {
            PCRE2_UCHAR msg[160];
            pcre2_get_error_message(rc, msg, sizeof msg);
            size_t off = (size_t)(sub - base) + *pos;
            if (!e->text_base) /* wm_encode_stream */
                tok_seterr(e->err, "pre-tokenizer regex failed at byte %zu after the last cut (%llu input bytes read): %s",
                           off, (unsigned long long)e->s_in, (char *)msg);
            else if (base == e->text_base + e->seg_off) /* matching the input itself: exact offset */
                tok_seterr(e->err, "pre-tokenizer regex failed searching from byte offset %zu: %s", e->seg_off + off,
                           (char *)msg);
            else /* normalized or prefixed copy of the segment */
                tok_seterr(e->err, "pre-tokenizer regex failed at byte %zu of the segment at byte offset %zu: %s", off,
                           e->seg_off, (char *)msg);
            *st = rc == PCRE2_ERROR_NOMEMORY || rc == PCRE2_ERROR_HEAPLIMIT ? WM_ERR_NOMEM : WM_ERR_LIMIT;
            return -1;
        }
        if (ov[1] > ov[0]) {
            *ms = ov[0], *me = ov[1];
            return 1;
        }
        *pos = ov[0] + 1; /* empty match: step over one character, no split */
        while (*pos < len && (sub[*pos] & 0xc0) == 0x80) (*pos)++;
    }
    return 0;
}

/* in -> out, then the two swap.  With stream >= 0 (the first regex step of
 * a segment), pieces do not pile up: every STREAM_PIECES of them go through
 * the remaining steps (from `stream` on) and BPE at once, all but the last,
 * the only one a later segment can still merge into.  That bounds the
 * pieces held to O(STREAM_PIECES) whatever the text's length. */
wm_status tok_split_step(wm_encoder *e, const pre_step *s, const unsigned char *base, buf *inb, buf *outb,
                            int stream)
{
    span *in = inb->p;
    outb->len = 0;
    for (size_t p = 0; p < inb->len; p++) {
        const unsigned char *sub = base + in[p].off;
        size_t len = in[p].len, pos = 0, last = 0, first = outb->len;
        int prev_match = 0;
        for (;;) {
            size_t ms, me;
            wm_status st = WM_OK;
            int found = tok_next_match(e, s, base, sub, len, &pos, 0, &ms, &me, &st);
            if (found < 0) return st;
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
                    wm_status st = tok_finish_pieces(e, base, o, outb->len - 1, stream);
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
        wm_status st = tok_finish_pieces(e, base, outb->p, outb->len, stream);
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
wm_status tok_prefix_spaces(wm_encoder *e, const unsigned char **base)
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
    wm__free(e->work.p);
    e->work = nb;
    e->work.len = n;
    *base = e->work.p;
    return WM_OK;
}

/* Metaspace (tokenizers/src/pre_tokenizers/metaspace.rs, v0.23.1), the
 * rewrite half: in every piece ' ' becomes the replacement, which is put in
 * front of a piece not starting with it (prepend_scheme "always") or only
 * of the piece at the very start of the input ("first").  The split on the
 * replacement (MergedWithNext) is then an ordinary Split step.  Rebuilds
 * `work`, as tok_prefix_spaces does. */
wm_status tok_metaspace(wm_encoder *e, const pre_step *s, const unsigned char **base)
{
    span *in = e->pieces.p;
    size_t total = 0, r = (size_t)s->rep_len;
    for (size_t p = 0; p < e->pieces.len; p++) total += in[p].len * r + r;
    buf nb = { 0 };
    if (!reserve(&nb, total + 1, 1)) return WM_ERR_NOMEM;
    unsigned char *o = nb.p;
    size_t n = 0;
    for (size_t p = 0; p < e->pieces.len; p++) {
        const unsigned char *src = *base + in[p].off;
        size_t len = in[p].len, start = n;
        /* ' ' becomes the replacement before the test */
        int starts = (len && src[0] == ' ') || (len >= r && !memcmp(src, s->rep, r));
        int prepend = !starts && (s->scheme == MS_ALWAYS || (s->scheme == MS_FIRST && e->seg_first && in[p].off == 0));
        if (prepend) memcpy(o + n, s->rep, r), n += r;
        for (size_t i = 0; i < len; i++) {
            if (src[i] == ' ') memcpy(o + n, s->rep, r), n += r;
            else o[n++] = src[i];
        }
        in[p].off = start;
        in[p].len = n - start;
    }
    wm__free(e->work.p);
    e->work = nb;
    e->work.len = n;
    *base = e->work.p;
    return WM_OK;
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
