/* libFuzzer target: the key-file parser must reject or accept any bytes
 * without crashing, leaking or reading out of bounds. */
#include "internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    wm_key *k = NULL;
    wm_error err;
    if (wm__key_parse(&k, (const char *)data, size, "fuzz", &err) == WM_OK) {
        wm_params p = WM_INIT(wm_params);
        if (wm_key_params(k, &p) != WM_OK) __builtin_trap();
        wm_key_free(k);
    } else if (k) {
        __builtin_trap();
    }
    return 0;
}
