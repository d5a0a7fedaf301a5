/* Keyed field lists (internal.h, wm__fields): the tokens v whose b-bit
 * field (v mod 128/b) of PRF_key(seed, v div 128/b), XORed with the byte
 * pattern `mask`, is below thresh get delta.  kgw's green list is
 * (kg, bits, 0, thresh) (schemes/kgw.c); the account layer's part c is
 * (ka, 2, c * 0x55, 1) (schemes/account.c).  Both schemes' files use this
 * one, and this one neither. */
#include "internal.h"

#include <sodium.h>

/* PRF output generated per pass: small enough for the stack and L1, large
 * enough that the per-call overhead vanishes. */
#define CHUNK_BLOCKS 64

void wm__bias_fields_row(const wm_watermark *wm, const wm__fields *f, uint64_t seed, void *logits, wm_dtype dtype)
{
    const unsigned char *key = f->key;
    const unsigned bits = f->bits;
    const unsigned char mask = f->mask;
    const uint32_t thresh = f->thresh;
    const float delta = f->delta;
    unsigned char buf[CHUNK_BLOCKS * WM_BLOCK_BYTES];
    float wide[CHUNK_BLOCKS * 128]; /* a 16-bit chunk widened: up to 128 tokens a block */
    size_t tpb = 128 / bits, n_blocks = (wm->n_vocab + tpb - 1) / tpb, esize = dtype == WM_DTYPE_F32 ? 4 : 2;
    /* 16-bit rows of a list with a fused kernel (kgw's green list) go
     * through it a chunk at a time; float32 rows take it whole (kgw.c). */
    int fused = dtype != WM_DTYPE_F32 && f->fused;
    for (size_t j = 0; j < n_blocks; j += CHUNK_BLOCKS) {
        size_t m = n_blocks - j < CHUNK_BLOCKS ? n_blocks - j : CHUNK_BLOCKS;
        size_t v0 = j * tpb, n_tok = m * tpb;
        if (n_tok > wm->n_vocab - v0) n_tok = wm->n_vocab - v0;
        char *row = (char *)logits + v0 * esize;
        if (!fused) {
            wm->fill(key, seed, j, m, buf);
            for (size_t i = 0; mask && i < m * WM_BLOCK_BYTES; i++) buf[i] ^= mask;
        }
        if (dtype == WM_DTYPE_F32) {
            wm->apply(buf, n_tok, bits, thresh, delta, (float *)row);
            continue;
        }
        wm->widen(row, dtype, n_tok, wide);
        if (fused) /* the AVX-512 kernel hashes this chunk while applying it */
            f->fused(key, seed, j, n_tok, bits, thresh, delta, wide);
        else
            wm->apply(buf, n_tok, bits, thresh, delta, wide);
        wm->narrow(wide, n_tok, dtype, row);
    }
}

/* Tokens per chunk of the two-list sweep: a multiple of every width's
 * tokens per block (128 / bits), and small enough that the chunk (16 KiB of
 * float32) stays in L1 between the two lists' kernels. */
#define CHUNK2_TOK 4096

/* f's delta over n_tok floats x whose first token is v0 (a multiple of
 * 128 / f->bits); buf holds the chunk's PRF output. */
static void chunk_fields(const wm_watermark *wm, const wm__fields *f, uint64_t seed, size_t v0, size_t n_tok,
                         float *x, unsigned char *buf)
{
    size_t tpb = 128 / f->bits, j = v0 / tpb, m = (n_tok + tpb - 1) / tpb;
    if (f->fused && !f->mask) {
        f->fused(f->key, seed, j, n_tok, f->bits, f->thresh, f->delta, x);
        return;
    }
    wm->fill(f->key, seed, j, m, buf);
    for (size_t i = 0; f->mask && i < m * WM_BLOCK_BYTES; i++) buf[i] ^= f->mask;
    wm->apply(buf, n_tok, f->bits, f->thresh, f->delta, x);
}

void wm__bias_fields2_row(const wm_watermark *wm, const wm__fields *f1, const wm__fields *f2,
                          wm_bias_row2_fn fused2, uint64_t seed, void *logits, wm_dtype dtype)
{
    if (fused2 && dtype == WM_DTYPE_F32) { /* one kernel over the whole row */
        fused2(f1, f2, seed, 0, wm->n_vocab, WM_DTYPE_F32, logits);
        return;
    }
    unsigned char buf[CHUNK2_TOK / 8 * WM_BLOCK_BYTES]; /* 16-bit fields: 8 tokens a block */
    float wide[CHUNK2_TOK];
    for (size_t v0 = 0; v0 < wm->n_vocab; v0 += CHUNK2_TOK) {
        size_t n_tok = wm->n_vocab - v0 < CHUNK2_TOK ? wm->n_vocab - v0 : CHUNK2_TOK;
        if (dtype == WM_DTYPE_F32) {
            float *row = (float *)logits + v0;
            chunk_fields(wm, f1, seed, v0, n_tok, row, buf);
            chunk_fields(wm, f2, seed, v0, n_tok, row, buf);
            continue;
        }
        char *row = (char *)logits + 2 * v0;
        wm->widen(row, dtype, n_tok, wide);
        if (fused2) { /* rounds to dtype between the two lists itself */
            fused2(f1, f2, seed, v0 / 64, n_tok, dtype, wide);
        } else {
            /* narrowed and widened again between the lists: the rounding
             * the two-pass composition does, on a chunk still in L1 */
            chunk_fields(wm, f1, seed, v0, n_tok, wide, buf);
            wm->narrow(wide, n_tok, dtype, row);
            wm->widen(row, dtype, n_tok, wide);
            chunk_fields(wm, f2, seed, v0, n_tok, wide, buf);
        }
        wm->narrow(wide, n_tok, dtype, row);
    }
}

/* Candidates i.. whose ids go up by one (all in the vocabulary): how many,
 * at least 1.  llama.cpp passes the whole vocabulary in id order. */
static size_t run_length(const char *ip, size_t ids_stride, size_t n, size_t i, uint32_t t, uint32_t n_vocab)
{
    size_t k = i + 1;
    for (uint32_t want = t + 1; k < n && want < n_vocab; k++, want++) {
        wm_token u;
        memcpy(&u, ip + k * ids_stride, sizeof u);
        if ((uint32_t)u != want) break;
    }
    return k - i;
}

/* r candidates from lp whose ids are t0, t0 + 1, ...: their blocks from the
 * SIMD kernel a chunk at a time (as a row), applied through the stride.
 * The same fields as the per-block path, so the same output bit for bit. */
static void bias_run(const wm_watermark *wm, const wm__fields *f, uint64_t seed, uint32_t t0, size_t r, char *lp,
                     size_t logits_stride, unsigned char *buf)
{
    const unsigned bits = f->bits, tpb = 128 / bits;
    const uint64_t end = (uint64_t)t0 + r;
    uint64_t t = t0;
    for (uint64_t j = t0 / tpb; t < end; j += CHUNK_BLOCKS) {
        uint64_t m = (end - 1) / tpb + 1 - j;
        if (m > CHUNK_BLOCKS) m = CHUNK_BLOCKS;
        wm->fill(f->key, seed, j, m, buf);
        for (size_t b = 0; f->mask && b < m * WM_BLOCK_BYTES; b++) buf[b] ^= f->mask;
        uint64_t stop = (j + m) * tpb < end ? (j + m) * tpb : end;
        for (; t < stop; t++, lp += logits_stride) {
            float x;
            memcpy(&x, lp, sizeof x);
            x = wm__field(buf, (unsigned)(t - j * tpb), bits) < f->thresh ? x + f->delta : x;
            memcpy(lp, &x, sizeof x);
        }
    }
}

void wm__bias_fields_candidates(const wm_watermark *wm, const wm__fields *f, uint64_t seed, size_t n,
                                const wm_token *ids, size_t ids_stride, float *logits, size_t logits_stride)
{
    const unsigned char *key = f->key;
    const unsigned bits = f->bits;
    const unsigned char mask = f->mask;
    const char *ip = (const char *)ids;
    char *lp = (char *)logits;
    const unsigned tpb = 128 / bits;
    uint64_t have = UINT64_MAX;
    unsigned char block[WM_BLOCK_BYTES];
    unsigned char buf[CHUNK_BLOCKS * WM_BLOCK_BYTES];
    int used_buf = 0;
    for (size_t i = 0; i < n;) {
        wm_token t;
        memcpy(&t, ip + i * ids_stride, sizeof t);
        if ((uint32_t)t >= wm->n_vocab) { /* padding is in no list */
            i++;
            continue;
        }
        /* A run of consecutive ids spanning a few blocks takes the SIMD fill;
         * one scalar block per candidate costs ~10x more per token. */
        size_t r = run_length(ip, ids_stride, n, i, (uint32_t)t, wm->n_vocab);
        if (r >= 4 * (size_t)tpb) {
            bias_run(wm, f, seed, (uint32_t)t, r, lp + i * logits_stride, logits_stride, buf);
            used_buf = 1;
            i += r;
            continue;
        }
        for (size_t e = i + r; i < e; i++, t++) { /* ids t, t + 1, ... */
            uint64_t j = (uint32_t)t / tpb;
            if (j != have) { /* candidates often share a block after sorting */
                wm__fill_scalar(key, seed, j, 1, block);
                for (size_t b = 0; mask && b < WM_BLOCK_BYTES; b++) block[b] ^= mask;
                have = j;
            }
            /* A select, not a branch: membership is a coin flip per candidate,
             * and a mispredicted branch costs more than the PRF when
             * candidates share blocks. */
            float x;
            memcpy(&x, lp + i * logits_stride, sizeof x);
            x = wm__field(block, (uint32_t)t % tpb, bits) < f->thresh ? x + f->delta : x;
            memcpy(lp + i * logits_stride, &x, sizeof x);
        }
    }
    /* the PRF output is this seed's green list (or part): not left behind */
    if (used_buf) sodium_memzero(buf, sizeof buf);
    sodium_memzero(block, sizeof block);
    wm__burn_stack_small(); /* and the keyed SipHash state of the scalar fills */
}
