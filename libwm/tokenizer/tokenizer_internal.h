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

enum { PRE_SPLIT, PRE_BYTELEVEL, PRE_METASPACE };
enum { MS_ALWAYS, MS_FIRST, MS_NEVER }; /* Metaspace's prepend_scheme */
enum { B_REMOVED, B_ISOLATED, B_MERGED_PREV, B_MERGED_NEXT, B_CONTIGUOUS };

typedef struct pre_step {
    int type;
    pcre2_code *re;       /* PRE_SPLIT, or PRE_BYTELEVEL with use_regex */
    int behavior, invert; /* PRE_SPLIT */
    int prefix_space;     /* PRE_BYTELEVEL */
    unsigned char rep[4]; /* PRE_METASPACE: the replacement character (UTF-8) ... */
    int rep_len, scheme;  /* ... its length and prepend_scheme; re: split on it (MergedWithNext) or NULL */
    int streamable;       /* a cut may fall inside this step's subject: see wm_encode_stream */
} pre_step;

/* Normalizer steps besides the Unicode forms (load.c reads them, normalize.c
 * runs them), as tokenizers/src/normalizers/{prepend,replace,strip}.rs of
 * huggingface/tokenizers v0.23.1 (the source of npm tokenizers@0.23.2)
 * define them. */
enum { NORM_UNICODE, NORM_PREPEND, NORM_REPLACE, NORM_STRIP };
typedef struct norm_step {
    int type;
    unsigned char *text; /* Prepend: the prefix; Replace: the content (wm__malloc'd) */
    size_t text_len;
    pcre2_code *re;      /* Replace: the pattern (a String one compiled as a literal) */
    int left, right;     /* Strip */
} norm_step;

/* Decoder steps for the non-byte-level (SentencePiece-style) tokenizers:
 * tokenizers/src/decoders/{byte_fallback,fuse,strip}.rs and
 * normalizers/replace.rs (Replace is both), v0.23.1. */
enum { DEC_REPLACE, DEC_BYTEFALLBACK, DEC_FUSE, DEC_STRIP, DEC_METASPACE };
typedef struct dec_step {
    int type;
    pcre2_code *re;      /* Replace */
    unsigned char *text; /* Replace: content; Strip: the character (UTF-8) */
    size_t text_len;
    size_t start, stop;  /* Strip */
    int scheme;          /* Metaspace (text: the replacement) */
} dec_step;

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
    utf8proc_option_t norm[MAX_STEPS]; /* the NORM_UNICODE steps' forms */
    norm_step nstep[MAX_STEPS];        /* every step's type (and the others' data) */
    int norm_whole;                    /* a step other than a Unicode form: a segment is normalized whole */
    int whole_segments;                /* norm_whole or a Metaspace step: wm_encode_stream holds segments whole */
    /* byte_level: tokens are GPT-2 byte-table strings (ByteLevel);
     * otherwise (SentencePiece-style) they are the text itself, words start
     * as characters, and byte_fallback / unk_id apply (models/bpe/model.rs). */
    int byte_level;
    int byte_fallback, fuse_unk;
    int32_t unk_id;           /* -1: none */
    int32_t fallback_id[256]; /* <0xNN>; -1 where absent */
    int n_dec;                /* non-byte-level decoders; 0 with has_decoder 0: tokens joined by " " */
    int has_decoder;
    dec_step dec[MAX_STEPS];
    int n_pre;
    pre_step pre[MAX_STEPS];
    added_token *added;    /* sorted by length, longest first */
    size_t n_added;
    uint8_t added_first[256]; /* first bytes of added tokens */
    uint32_t *added_idx;      /* indices into added by first byte (longest first within one) ... */
    uint32_t added_start[257]; /* ... those of byte b at [added_start[b], added_start[b + 1]) */
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
    int seg_first;             /* it starts the input (Metaspace's prepend_scheme "first") */
    uint64_t s_consumed;       /* wm_encode_stream: bytes of sraw consumed before its start */
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
    buf ucs;                   /* normalize.c: code points of a normalization step */
    buf nscratch;              /* normalize.c: output of a Prepend/Replace/Strip step */
    buf dtok[2], dspan[2];     /* wm_decode: the decoder chain's tokens (bytes, spans) */
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
    void *p = wm__realloc(b->p, cap * elem);
    if (!p) return 0;
    b->p = p;
    b->cap = cap;
    return 1;
}

#define PUSH(b, type, value)                                                   \
    (reserve(&(b), (b).len + 1, sizeof(type)) ? (((type *)(b).p)[(b).len++] = (value), 1) : 0)

/* load.c */
void tok_seterr(wm_error *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* The end of a public call that takes a wm_error (tokenizer.h: err is
 * filled on every failure).  The call's work writes its messages into a
 * local wm_error `mine` (cleared before); a failing step deep inside (an
 * allocation in a pre-tokenizer step, say) may return without one, so on
 * failure err gets mine, or else "what: <the status's text>". */
void tok_report(wm_error *err, const wm_error *mine, wm_status st, const char *what);
int32_t tok_strmap_get(const wm_tokenizer *t, const unsigned char *s, size_t n);
int tok_pairmap_get(const pairmap *m, uint32_t a, uint32_t b, uint64_t *val);
/* regex.c: the Unicode tables (once per process, retried after a failure),
 * and a pattern in PCRE2's syntax (wm__malloc'd) */
wm_status tok_unicode_init(void);
char *tok_translate_re(const char *p, size_t len, size_t *out_len);
/* regex.c: a general context whose allocations go through core/alloc.h;
 * every PCRE2 object is made from one (NULL: no memory).  The objects copy
 * its allocator, so it may be freed once they are made. */
pcre2_general_context *tok_pcre2_general(void);
#ifdef WM_FAULT_INJECTION
/* regex.c, tests: drop the Unicode tables so that the next load builds
 * them again (and the fault sweep reaches that build's allocations). */
void wm__tok_unicode_forget(void);
#endif
/* json_check.c: is the tree jansson returned exactly the text (1), and was
 * a failed json_loadb the input's fault (WM_ERR_FORMAT) or memory's
 * (WM_ERR_NOMEM)?  jansson reports neither reliably under memory pressure;
 * see there. */
int tok_json_matches(const char *json, size_t len, const json_t *root);
wm_status tok_json_failure(const char *json, size_t len, const json_error_t *je);
/* normalize.c: [s, s+*n) normalized into e->norm (or s itself) */
const unsigned char *tok_normalize(wm_encoder *e, const unsigned char *s, size_t *n, wm_status *st);
/* pretokenize.c */
int tok_next_match(wm_encoder *e, const pre_step *s, const unsigned char *base, const unsigned char *sub, size_t len,
                   size_t *pos, uint32_t options, size_t *ms, size_t *me, wm_status *st);
wm_status tok_split_step(wm_encoder *e, const pre_step *s, const unsigned char *base, buf *inb, buf *outb, int stream);
wm_status tok_prefix_spaces(wm_encoder *e, const unsigned char **base);
wm_status tok_metaspace(wm_encoder *e, const pre_step *s, const unsigned char **base);
/* Steps `from` on, then BPE, for n pieces of `base` (encode.c and stream.c
 * hand pieces here; the split steps stream their own through it). */
wm_status tok_finish_pieces(wm_encoder *e, const unsigned char *base, const span *sp, size_t n, int from);
/* bpe.c */
wm_status tok_bpe_word(wm_encoder *e, const unsigned char *w, size_t n);
/* normalize.c: every non-overlapping match of re in [s, s+n) replaced by
 * rep, appended to out (find_matches of tokenizers/src/utils/onig.rs) */
wm_status tok_replace_all(wm_encoder *e, const pcre2_code *re, const unsigned char *s, size_t n,
                          const unsigned char *rep, size_t rep_len, buf *out);
/* encode.c */
/* first: the segment starts the input (see seg_first) */
wm_status tok_encode_segment(wm_encoder *e, const unsigned char *s, size_t n, int first);
const added_token *tok_added_at(const wm_tokenizer *t, const unsigned char *s, size_t left, int normalized,
                                int special_as_text);

#endif
