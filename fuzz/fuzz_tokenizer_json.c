/* libFuzzer target: tokenizer.json loading must refuse or accept any bytes
 * without crashing; what it accepts must encode and decode. */
#include "internal.h"

#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    wm_tokenizer *t = NULL;
    wm_error err;
    if (wm_tokenizer_parse(&t, (const char *)data, size, "fuzz", &err) != WM_OK) {
        if (t) __builtin_trap();
        return 0;
    }
    wm_encoder *e;
    if (wm_encoder_new(&e, t) == WM_OK) {
        const wm_token *ids;
        size_t n, len;
        const char *back;
        static const char text[] = "Hello, world! 123 <|x|> caf\xc3\xa9 \xe4\xbd\xa0\xe5\xa5\xbd";
        if (wm_encode(e, text, sizeof text - 1, 0, &ids, &n, &err) == WM_OK) {
            wm_token *copy = malloc(n * sizeof *copy + 1);
            memcpy(copy, ids, n * sizeof *copy);
            if (wm_decode(e, copy, n, &back, &len) != WM_OK) __builtin_trap();
            free(copy);
        }
        wm_encoder_free(e);
    }
    wm_tokenizer_free(t);
    return 0;
}
