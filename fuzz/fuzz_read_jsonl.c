/* libFuzzer target: `wm read`'s input line (libwm/cli/read_parse.c) and the
 * reader it feeds.  The first byte picks plain or weighted and k fixed or
 * free; the rest is the line.  Any bytes must be accepted or refused with a
 * message, and what is accepted must be valid input for wm_reader_add. */
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "read_parse.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    int weighted = data[0] & 1;
    size_t k = (data[0] >> 1) & 3, n, np;
    char *line = malloc(size);
    if (!line) return 0;
    memcpy(line, data + 1, size - 1);
    line[size - 1] = 0;
    static wm_watermark *wm;
    if (!wm) {
        wm_params p = { .size = sizeof(wm_params), .scheme = "kgw", .seeding = WM_SEEDING_LEFTHASH, .context_width = 1, .gamma = 0.25, .delta = 2.0, .account_delta = 0.0 };
        unsigned char seed[32] = { 1 };
        wm_key *key;
        if (wm_key_from_seed(&key, &p, seed) || wm_watermark_new(&wm, key, 64)) __builtin_trap();
        wm_key_free(key);
    }
    read_doc b = { 0 };
    char msg[256] = "";
    if (read_parse_doc(line, &b, 64, weighted, &n, &np, &k, msg, sizeof msg) == 0) {
        wm_reader *r;
        if (wm_reader_new(&r, wm, weighted ? WM_READ_WEIGHTED : 0)) __builtin_trap();
        if (n && wm_reader_add(r, b.ids, n, np, b.top, weighted ? b.w : NULL, k) != WM_OK) __builtin_trap();
        wm_reader_free(r);
    } else if (!msg[0]) {
        __builtin_trap(); /* a refusal always says why */
    }
    free(b.ids);
    free(b.top);
    free(b.w);
    free(line);
    return 0;
}
