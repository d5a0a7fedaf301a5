/* wm audit's journal (audit_journal.c): an append-only file of records, one
 * a line, each "<32 hex digits> <JSON>\n" where the hex digits are the
 * BLAKE2b-128 of the JSON bytes.  Every record is written with one write()
 * and fsync'd before the caller goes on (a response is journaled before it
 * is scored).  A last line without its newline or with a wrong checksum is
 * a torn record (a crash mid-write, a full disk): it is detected, reported
 * and dropped (truncated away when the journal is reopened for appending);
 * a bad record anywhere else is corruption and an error. */
#ifndef WM_CLI_AUDIT_JOURNAL_H
#define WM_CLI_AUDIT_JOURNAL_H

#include <stddef.h>

typedef struct journal {
    int fd;
    const char *path;
    unsigned long records;
} journal;

/* A new journal at path (created 0600, O_EXCL: an existing file is never
 * overwritten), its first record `header`.  0, or -1 with a message. */
int journal_create(journal *j, const char *path, const char *header, size_t len, char *err, size_t errlen);
/* Append one record (JSON without newlines) and fsync it. */
int journal_append(journal *j, const char *rec, size_t len, char *err, size_t errlen);
void journal_close(journal *j);

/* Every record of path in order: cb(arg, json, len, line) (json
 * NUL-terminated; cb returns 0 or -1 to stop with its own message in err).
 * A torn last record is reported on stderr and skipped; with `repair` the
 * file is truncated before it and *j (when not NULL) left open for
 * appending.  *n_records: the good records. */
int journal_read(const char *path, int repair, journal *j,
                 int (*cb)(void *arg, const char *json, size_t len, unsigned long line, char *err, size_t errlen),
                 void *arg, unsigned long *n_records, char *err, size_t errlen);

#endif
