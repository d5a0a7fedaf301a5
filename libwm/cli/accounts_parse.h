/* One line of an accounts file (wm detect --accounts), apart from the file
 * reading so the fuzzer reaches it (fuzz/fuzz_accounts.c). */
#ifndef WM_CLI_ACCOUNTS_PARSE_H
#define WM_CLI_ACCOUNTS_PARSE_H

#include <stddef.h>
#include <stdint.h>

/* line[0..len) (no NUL needed; a trailing "\n" or "\r\n" is allowed).
 * Returns 1 with *id = the line's last whitespace-separated field, decimal,
 * 1 to 2^64 - 1; 0 for a blank or '#' comment line; -1 if the line is
 * anything else (no id, a bad number, 0, a NUL byte). */
int parse_account_line(const char *line, size_t len, uint64_t *id);

#endif
