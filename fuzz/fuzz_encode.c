/* libFuzzer target: encoding arbitrary bytes with a real tokenizer (Qwen3:
 * NFC normalizer, Split regex, added tokens).  First byte: flags; second:
 * the seed of the part sizes.  Valid UTF-8 must round-trip through decode
 * (up to NFC); invalid must be refused with an offset, or replaced in lossy
 * mode; and wm_encode_stream over parts must give exactly wm_encode's ids
 * and status (differential). */
#include "internal.h"

#include <stdio.h>
#include <stdlib.h>

static wm_tokenizer *tok;
static wm_encoder *enc, *senc;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    const char *path = getenv("WM_FUZZ_TOKENIZER");
    wm_error err;
    if (!path || wm_tokenizer_load(&tok, path, &err) != WM_OK || wm_encoder_new(&enc, tok) != WM_OK ||
        wm_encoder_new(&senc, tok) != WM_OK) {
        fprintf(stderr, "fuzz_encode: set WM_FUZZ_TOKENIZER to a tokenizer.json (%s)\n", path ? err.message : "unset");
        exit(2);
    }
    return 0;
}

/* The same text through wm_encode_stream in parts of 1..16 bytes (sizes
 * from `seed`); returns the status, the ids in *out. */
static wm_status stream(const uint8_t *text, size_t len, unsigned flags, unsigned seed, wm_token **out, size_t *n_out)
{
    size_t off = 0, n = 0;
    *out = malloc((4 * len + 1) * sizeof **out); /* at most a few ids per byte: lossy U+FFFD is 3 bytes */
    for (;;) {
        seed = seed * 1103515245u + 12345u;
        size_t part = 1 + (seed >> 16) % 16;
        if (part > len - off) part = len - off;
        int final = off + part == len;
        const wm_token *ids;
        size_t k;
        wm_error err;
        wm_status st = wm_encode_stream(senc, (const char *)text + off, part, flags, final, &ids, &k, &err);
        if (st) return st;
        memcpy(*out + n, ids, k * sizeof *ids);
        n += k;
        off += part;
        if (final) break;
    }
    *n_out = n;
    return WM_OK;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2) return 0;
    unsigned flags = (data[0] & 1 ? WM_ENC_SPECIAL_AS_TEXT : 0) | (data[0] & 2 ? WM_ENC_LOSSY : 0), seed = data[1];
    data += 2, size -= 2;
    const wm_token *ids;
    size_t n, len, ns;
    const char *back;
    wm_error err;
    wm_token *sids;
    wm_status st = wm_encode(enc, (const char *)data, size, flags, &ids, &n, &err);
    wm_status sst = stream(data, size, flags, seed, &sids, &ns);
    if (sst != st || (!st && (ns != n || memcmp(sids, ids, n * sizeof *ids)))) __builtin_trap();
    free(sids);
    if (st == WM_ERR_FORMAT && !(flags & WM_ENC_LOSSY)) return 0;
    if (st != WM_OK) __builtin_trap();
    uint32_t vocab;
    if (wm_tokenizer_n_vocab(tok, &vocab)) __builtin_trap();
    wm_token *copy = malloc(n * sizeof *copy + 1);
    memcpy(copy, ids, n * sizeof *copy);
    for (size_t i = 0; i < n; i++)
        if (copy[i] < 0 || (uint32_t)copy[i] >= vocab) __builtin_trap();
    if (wm_decode(enc, copy, n, &back, &len) != WM_OK) __builtin_trap();
    free(copy);
    return 0;
}
