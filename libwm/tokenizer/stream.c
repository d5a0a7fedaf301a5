/* wm_encode_stream tokenizes a text that arrives in parts and gives, after
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
 * inside: correct, but such a segment is held whole.  So is every segment
 * of a tokenizer with a Prepend, Replace or Strip normalizer (Llama 2,
 * Gemma, Gemini): there the ids come at added tokens and at the end. */
#include "tokenizer_internal.h"


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
        wm_status st = tok_bpe_word(e, w->base + a, R - a);
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
        return tok_finish_pieces(e, w->base, &whole, 1, step);
    }
    size_t sub0 = a == w->start && level < w->ctx_levels ? 0 : a; /* context before a resumed subject */
    const unsigned char *sub = w->base + sub0;
    size_t len = R - sub0, pos = a - sub0, last = pos;
    wm_status st = WM_OK;
    for (;;) {
        size_t ms, me;
        /* 2 (partial): a match may start at ms, so the gap ends there at the latest */
        int found = tok_next_match(e, s, w->base, sub, len, &pos, open ? PCRE2_PARTIAL_HARD : 0, &ms, &me, &st);
        if (found < 0) return st;
        found = found == 1;
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
    if (t->whole_segments) {
        /* Prepend, Replace or Strip: a normalized segment's text depends on
         * all of it (Prepend at its start, Strip at both ends, a Replace
         * pattern anywhere), so it is held until complete and then encoded
         * as wm_encode does.  So with Metaspace, whose prepend_scheme
         * "first" looks at where the segment starts. */
        if (open) return WM_OK;
        wm_status st = tok_encode_segment(e, s, n, e->s_consumed + (uint64_t)(s - (const unsigned char *)e->sraw.p) == 0);
        if (!st) *used = n;
        return st;
    }
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
        map_n = wm__malloc((R + 1) * sizeof *map_n);
        map_r = wm__malloc((R + 1) * sizeof *map_r);
        if (!map_n || !map_r) st = WM_ERR_NOMEM;
        for (size_t i = 0; !st && i < R;) {
            size_t j = i;
            if (s[i] < 0x80) {
                map_n[n_map] = e->work.len, map_r[n_map++] = i;
                j = i + 1;
            }
            while (j < R && s[j] >= 0x80) j++;
            size_t k = j - i;
            const unsigned char *blk = tok_normalize(e, s + i, &k, &st);
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
    wm__free(map_n);
    wm__free(map_r);
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
            tok_seterr(err, "invalid UTF-8 at byte offset %llu", (unsigned long long)(e->s_in - pend + i));
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
        const added_token *a = t->added_first[s[i]] ? tok_added_at(t, s + i, n - i, normalized, special_as_text) : NULL;
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
    e->s_consumed += used;
    e->sraw.len = n - used;
    return WM_OK;
}

static wm_status encode_stream(wm_encoder *e, const char *part, size_t len, unsigned flags, bool final,
                               const wm_token **ids, size_t *n_ids, wm_error *err)
{
    if (!e || (!part && len) || !ids || !n_ids || (flags & ~(WM_ENC_SPECIAL_AS_TEXT | WM_ENC_LOSSY))) {
        tok_seterr(err, "wm_encode_stream: %s", !e ? "NULL encoder" : !ids || !n_ids ? "NULL ids or n_ids"
                                                : !part && len ? "NULL part with a length > 0" : "unknown flag bits");
        return WM_ERR_ARG;
    }
    *ids = NULL;
    *n_ids = 0;
    if (e->s_active && flags != e->s_flags) {
        tok_seterr(err, "wm_encode_stream: flags 0x%x differ from the stream's 0x%x", flags, e->s_flags);
        return WM_ERR_ARG;
    }
    if (!e->s_active) {
        e->s_active = 1;
        e->s_flags = flags;
        e->sraw.len = e->spend_len = 0;
        e->s_skip = 0;
        e->s_in = 0;
        e->s_mid = 0;
        e->s_consumed = 0;
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

wm_status wm_encode_stream(wm_encoder *e, const char *part, size_t len, unsigned flags, bool final,
                           const wm_token **ids, size_t *n_ids, wm_error *err)
{
    wm_error mine;
    mine.message[0] = 0;
    wm_status st = encode_stream(e, part, len, flags, final, ids, n_ids, err ? &mine : NULL);
    if (e) e->err = NULL; /* it pointed at mine */
    if (st && err) {
        char what[80];
        snprintf(what, sizeof what, "wm_encode_stream after %llu input bytes", e ? (unsigned long long)e->s_in : 0ull);
        tok_report(err, &mine, st, what);
    }
    return st;
}

size_t wm__encoder_stream_held(const wm_encoder *e) { return e->sraw.len + e->spend_len; }
