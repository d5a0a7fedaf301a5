/* BPE: merges by rank as the reference's heap does, and a word cache. */
#include "tokenizer_internal.h"

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

/* A non-byte-level word's first symbols, as BPE::merge_word does
 * (tokenizers/src/models/bpe/model.rs, v0.23.1): each character's token;
 * else, with byte_fallback, its bytes' <0xNN> tokens if all exist (a
 * pending unknown is not flushed before them, as there); else the unknown
 * token, one for a run of unknown characters with fuse_unk; else nothing.
 * Leaves the ids in e->sym; returns their number, or -1 (no memory). */
static long sp_symbols(wm_encoder *e, const unsigned char *w, size_t n)
{
    const wm_tokenizer *t = e->tok;
    if (!reserve(&e->sym, n + 1, sizeof(sym))) return -1;
    sym *s = e->sym.p;
    size_t k = 0;
    int unk = 0; /* an unknown token pending */
    for (size_t i = 0; i < n;) {
        size_t j = i + 1;
        while (j < n && (w[j] & 0xc0) == 0x80) j++;
        int32_t id = tok_strmap_get(t, w + i, j - i);
        if (id >= 0) {
            if (unk) s[k++].id = t->unk_id, unk = 0;
            s[k++].id = id;
        } else {
            size_t b = i;
            while (t->byte_fallback && b < j && t->fallback_id[w[b]] >= 0) b++;
            if (t->byte_fallback && b == j) {
                for (b = i; b < j; b++) s[k++].id = t->fallback_id[w[b]];
            } else if (t->unk_id >= 0) {
                if (unk && !t->fuse_unk) s[k++].id = t->unk_id;
                unk = 1;
            }
        }
        i = j;
    }
    if (unk) s[k++].id = t->unk_id;
    return (long)k;
}

/* Merge the word's symbols by rank (lowest first, leftmost on ties), as the
 * reference's heap-based merge does (models/bpe/word.rs, merge_all).
 * Appends ids to e->ids. */
static wm_status bpe_merge(wm_encoder *e, const unsigned char *w, size_t n)
{
    const wm_tokenizer *t = e->tok;
    if (!t->byte_level) {
        long k = sp_symbols(e, w, n);
        if (k < 0) return WM_ERR_NOMEM;
        if (k == 0) return WM_OK;
        n = (size_t)k;
    }
    if (!reserve(&e->sym, n, sizeof(sym)) || !reserve(&e->heap, 2 * n + 1, sizeof(merge_cand)))
        return WM_ERR_NOMEM;
    sym *s = e->sym.p;
    merge_cand *h = e->heap.p;
    size_t hn = 0;
    uint64_t val;
    for (size_t i = 0; i < n; i++)
        s[i] = (sym){ t->byte_level ? t->byte_id[w[i]] : s[i].id, (int32_t)i - 1, i + 1 < n ? (int32_t)i + 1 : -1 };
    for (size_t i = 0; i + 1 < n; i++)
        if (tok_pairmap_get(&t->merges, (uint32_t)s[i].id, (uint32_t)s[i + 1].id, &val))
            heap_push(h, &hn, (merge_cand){ (uint32_t)(val >> 32), (uint32_t)i });
    while (hn) {
        merge_cand c = heap_pop(h, &hn);
        sym *a = &s[c.pos];
        if (a->id < 0 || a->next < 0) continue;
        sym *b = &s[a->next];
        /* Stale entry?  The pair must still be the one that had this rank. */
        if (!tok_pairmap_get(&t->merges, (uint32_t)a->id, (uint32_t)b->id, &val) || (uint32_t)(val >> 32) != c.rank)
            continue;
        a->id = (int32_t)(uint32_t)val;
        b->id = -1;
        a->next = b->next;
        if (b->next >= 0) s[b->next].prev = (int32_t)c.pos;
        if (a->prev >= 0 && tok_pairmap_get(&t->merges, (uint32_t)s[a->prev].id, (uint32_t)a->id, &val))
            heap_push(h, &hn, (merge_cand){ (uint32_t)(val >> 32), (uint32_t)a->prev });
        if (a->next >= 0 && tok_pairmap_get(&t->merges, (uint32_t)a->id, (uint32_t)s[a->next].id, &val))
            heap_push(h, &hn, (merge_cand){ (uint32_t)(val >> 32), c.pos });
    }
    for (int32_t i = 0; i >= 0; i = s[i].next)
        if (!PUSH(e->ids, wm_token, s[i].id)) return WM_ERR_NOMEM;
    return WM_OK;
}

wm_status tok_bpe_word(wm_encoder *e, const unsigned char *w, size_t n)
{
    const wm_tokenizer *t = e->tok;
    if (n == 0) return WM_OK;
    if (t->ignore_merges) {
        int32_t id = tok_strmap_get(t, w, n);
        if (id >= 0) return PUSH(e->ids, wm_token, id) ? WM_OK : WM_ERR_NOMEM;
    }
    if (n == 1 && t->byte_level) return PUSH(e->ids, wm_token, t->byte_id[w[0]]) ? WM_OK : WM_ERR_NOMEM;
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
