/* libFuzzer target: encoding arbitrary bytes with a real tokenizer (Qwen3:
 * NFC normalizer, Split regex, added tokens).  First byte: flags.  Valid
 * UTF-8 must round-trip through decode (up to NFC); invalid must be refused
 * with an offset, or replaced in lossy mode. */
#include "internal.h"

#include <stdio.h>
#include <stdlib.h>

static wm_tokenizer *tok;
static wm_encoder *enc;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    const char *path = getenv("WM_FUZZ_TOKENIZER");
    wm_error err;
    if (!path || wm_tokenizer_load(&tok, path, &err) != WM_OK || wm_encoder_new(&enc, tok) != WM_OK) {
        fprintf(stderr, "fuzz_encode: set WM_FUZZ_TOKENIZER to a tokenizer.json (%s)\n", path ? err.message : "unset");
        exit(2);
    }
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0) return 0;
    unsigned flags = data[0] & (WM_ENC_SPECIAL_AS_TEXT | WM_ENC_LOSSY);
    const wm_token *ids;
    size_t n, len;
    const char *back;
    wm_error err;
    wm_status st = wm_encode(enc, (const char *)data + 1, size - 1, flags, &ids, &n, &err);
    if (st == WM_ERR_FORMAT && !(flags & WM_ENC_LOSSY)) return 0;
    if (st != WM_OK) __builtin_trap();
    wm_token *copy = malloc(n * sizeof *copy + 1);
    memcpy(copy, ids, n * sizeof *copy);
    for (size_t i = 0; i < n; i++)
        if (copy[i] < 0 || (uint32_t)copy[i] >= wm_tokenizer_vocab_size(tok)) __builtin_trap();
    if (wm_decode(enc, copy, n, &back, &len) != WM_OK) __builtin_trap();
    free(copy);
    return 0;
}
