/* libFuzzer target: a line of `wm detect --accounts`'s file
 * (libwm/cli/accounts_parse.c).  Any bytes are accepted, skipped or refused;
 * an accepted id is never 0 and prints back as the line's last field. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "accounts_parse.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *line = malloc(size ? size : 1); /* exactly size bytes: an over-read is caught */
    if (!line) return 0;
    memcpy(line, data, size);
    uint64_t id = 0;
    int r = parse_account_line(line, size, &id);
    if (r == 1) {
        char dec[24];
        int n = snprintf(dec, sizeof dec, "%" PRIu64, id);
        size_t end = size;
        while (end && (line[end - 1] == '\n' || line[end - 1] == '\r' || line[end - 1] == ' ' || line[end - 1] == '\t'))
            end--;
        if (id == 0 || end < (size_t)n || memcmp(line + end - n, dec, (size_t)n) != 0) __builtin_trap();
    } else if (r != 0 && r != -1) {
        __builtin_trap();
    }
    free(line);
    return 0;
}
