/* The tokenizer's internals, shared by its stages: load.c (tokenizer.json),
 * regex.c (Oniguruma -> PCRE2, Unicode version), normalize.c,
 * pretokenize.c (Split / ByteLevel steps), bpe.c (merges, word cache),
 * encode.c (the pipeline, wm_encode) and stream.c (wm_encode_stream). */
#ifndef WM_TOKENIZER_INTERNAL_H
#define WM_TOKENIZER_INTERNAL_H

#include "internal.h"

#include <stdio.h>
#include <stdlib.h>


#define PCRE2_CODE_UNIT_WIDTH 8
#include <jansson.h>
#include <pcre2.h>
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

static inline uint64_t hash_bytes(const unsigned char *p, size_t n)
{
    uint64_t h = 0xcbf29ce484222325ULL ^ n;
    for (size_t i = 0; i < n; i++) h = (h ^ p[i]) * 0x100000001b3ULL;
    return wm__mix64(h);
}

static inline void piece_of(const wm_tokenizer *t, wm_token id, const unsigned char **p, size_t *n)
{
    uint64_t e = t->piece[id];
    *p = t->pool + (e >> 32);
    *n = (size_t)(uint32_t)e;
}

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

static inline int reserve(buf *b, size_t n, size_t elem)
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

/* load.c */
void tok_seterr(wm_error *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int32_t tok_strmap_get(const wm_tokenizer *t, const unsigned char *s, size_t n);
int tok_pairmap_get(const pairmap *m, uint32_t a, uint32_t b, uint64_t *val);
/* regex.c: the Unicode tables (once per process), and a pattern in PCRE2's
 * syntax (malloc'd) */
wm_status tok_unicode_init(void);
char *tok_translate_re(const char *p, size_t len, size_t *out_len);
/* normalize.c: [s, s+*n) normalized into e->norm (or s itself) */
const unsigned char *tok_normalize(wm_encoder *e, const unsigned char *s, size_t *n, wm_status *st);
/* pretokenize.c */
int tok_next_match(wm_encoder *e, const pre_step *s, const unsigned char *base, const unsigned char *sub, size_t len,
                   size_t *pos, uint32_t options, size_t *ms, size_t *me, wm_status *st);
wm_status tok_split_step(wm_encoder *e, const pre_step *s, const unsigned char *base, buf *inb, buf *outb, int stream);
wm_status tok_prefix_spaces(wm_encoder *e, const unsigned char **base);
/* bpe.c */
wm_status tok_bpe_word(wm_encoder *e, const unsigned char *w, size_t n);
/* encode.c */
wm_status tok_finish_pieces(wm_encoder *e, const unsigned char *base, const span *sp, size_t n, int from);
const added_token *tok_added_at(const wm_tokenizer *t, const unsigned char *s, size_t left, int normalized,
                                int special_as_text);

#endif
