/* The accounts file's line format (accounts_parse.h). */
#include "accounts_parse.h"

#include <string.h>

static int blank(char c) { return c == ' ' || c == '\t'; }

int parse_account_line(const char *line, size_t len, uint64_t *id)
{
    if (len && line[len - 1] == '\n') len--;
    if (len && line[len - 1] == '\r') len--;
    if (memchr(line, 0, len)) return -1;
    size_t a = 0;
    while (a < len && blank(line[a])) a++;
    if (a == len || line[a] == '#') return 0;
    while (len > a && blank(line[len - 1])) len--;
    size_t f = len;
    while (f > a && !blank(line[f - 1])) f--;
    if (f == len) return -1;
    uint64_t v = 0;
    for (size_t i = f; i < len; i++) {
        if (line[i] < '0' || line[i] > '9') return -1;
        unsigned d = (unsigned)(line[i] - '0');
        if (v > (UINT64_MAX - d) / 10) return -1; /* beyond 2^64 - 1 */
        v = v * 10 + d;
    }
    if (v == 0) return -1;
    *id = v;
    return 1;
}
