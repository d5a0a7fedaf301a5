/* wm audit's journal: see audit_journal.h. */
#include <errno.h>
#include <fcntl.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "audit_journal.h"

#define SUM_BYTES 16
#define SUM_HEX (2 * SUM_BYTES)

static void checksum(const char *rec, size_t len, char hex[SUM_HEX + 1])
{
    unsigned char h[SUM_BYTES];
    crypto_generichash(h, sizeof h, (const unsigned char *)rec, len, NULL, 0);
    sodium_bin2hex(hex, SUM_HEX + 1, h, sizeof h);
}

static int write_all(int fd, const char *p, size_t n)
{
    while (n) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

int journal_append(journal *j, const char *rec, size_t len, char *err, size_t errlen)
{
    if (memchr(rec, '\n', len)) {
        snprintf(err, errlen, "%s: internal error: a record with a newline", j->path);
        return -1;
    }
    char *line = malloc(len + SUM_HEX + 2);
    if (!line) {
        snprintf(err, errlen, "%s: out of memory", j->path);
        return -1;
    }
    char hex[SUM_HEX + 1];
    checksum(rec, len, hex);
    memcpy(line, hex, SUM_HEX);
    line[SUM_HEX] = ' ';
    memcpy(line + SUM_HEX + 1, rec, len);
    line[SUM_HEX + 1 + len] = '\n';
    int rc = write_all(j->fd, line, len + SUM_HEX + 2);
    int e = errno;
    free(line);
    if (rc || fsync(j->fd)) {
        snprintf(err, errlen, "%s: writing record %lu: %s (the run stops; everything before it is kept)", j->path,
                 j->records + 1, strerror(rc ? e : errno));
        return -1;
    }
    j->records++;
    return 0;
}

int journal_create(journal *j, const char *path, const char *header, size_t len, char *err, size_t errlen)
{
    j->path = path;
    j->records = 0;
    j->fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_APPEND | O_CLOEXEC, 0600);
    if (j->fd < 0) {
        snprintf(err, errlen, "%s: %s%s", path, strerror(errno),
                 errno == EEXIST ? " (a journal is never overwritten: --resume it, or name a new one)" : "");
        return -1;
    }
    if (flock(j->fd, LOCK_EX | LOCK_NB)) {
        snprintf(err, errlen, "%s: locked by another wm audit", path);
        close(j->fd);
        j->fd = -1;
        return -1;
    }
    if (journal_append(j, header, len, err, errlen)) {
        close(j->fd);
        j->fd = -1;
        return -1;
    }
    /* the new directory entry itself */
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    if (slash) slash[slash == dir] = 0;
    else snprintf(dir, sizeof dir, ".");
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
        (void)fsync(dfd);
        close(dfd);
    }
    return 0;
}

void journal_close(journal *j)
{
    if (j->fd >= 0) close(j->fd);
    j->fd = -1;
}

int journal_read(const char *path, int repair, journal *j,
                 int (*cb)(void *arg, const char *json, size_t len, unsigned long line, char *err, size_t errlen),
                 void *arg, unsigned long *n_records, char *err, size_t errlen)
{
    int fd = open(path, (repair ? O_RDWR : O_RDONLY) | O_CLOEXEC);
    if (fd < 0) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return -1;
    }
    if (repair && flock(fd, LOCK_EX | LOCK_NB)) {
        snprintf(err, errlen, "%s: locked by another wm audit (one run at a time per journal)", path);
        close(fd);
        return -1;
    }
    FILE *f = fdopen(fd, repair ? "r+" : "r");
    if (!f) {
        close(fd);
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return -1;
    }
    char *line = NULL;
    size_t cap = 0;
    ssize_t got;
    unsigned long lineno = 0;
    long long off = 0, torn_at = -1, torn_len = 0;
    int rc = 0;
    *n_records = 0;
    /* a bad line is torn only if it is the last: read one line ahead */
    char *pending = NULL;
    size_t pending_len = 0;
    unsigned long pending_line = 0;
    long long pending_off = 0;
    for (;;) {
        got = getline(&line, &cap, f);
        if (got < 0) break;
        lineno++;
        int ok = got >= SUM_HEX + 3 && line[got - 1] == '\n' && line[SUM_HEX] == ' ' &&
                 memchr(line, 0, (size_t)got) == NULL;
        if (ok) {
            char hex[SUM_HEX + 1];
            checksum(line + SUM_HEX + 1, (size_t)got - SUM_HEX - 2, hex);
            ok = memcmp(hex, line, SUM_HEX) == 0;
        }
        if (pending) { /* the previous bad line was not the last */
            snprintf(err, errlen, "%s:%lu (byte %lld): corrupt record (bad checksum or framing) before the end: "
                     "the journal was altered, not torn", path, pending_line, pending_off);
            rc = -1;
            break;
        }
        if (!ok) {
            pending = line; /* keep: may be the torn tail */
            pending_len = (size_t)got;
            pending_line = lineno;
            pending_off = off;
            line = NULL;
            cap = 0;
            off += got;
            continue;
        }
        line[got - 1] = 0;
        if (cb(arg, line + SUM_HEX + 1, (size_t)got - SUM_HEX - 2, lineno, err, errlen)) {
            rc = -1;
            break;
        }
        (*n_records)++;
        off += got;
    }
    if (!rc && ferror(f)) {
        snprintf(err, errlen, "%s: read error: %s", path, strerror(errno));
        rc = -1;
    }
    if (!rc && pending) {
        torn_at = pending_off;
        torn_len = (long long)pending_len;
        fprintf(stderr, "wm: %s:%lu: torn last record (%lld bytes at byte %lld, from an interrupted write) %s\n",
                path, pending_line, torn_len, torn_at, repair ? "dropped" : "ignored");
        if (repair && ftruncate(fd, (off_t)torn_at)) {
            snprintf(err, errlen, "%s: truncating the torn record: %s", path, strerror(errno));
            rc = -1;
        }
        if (!rc && repair && fsync(fd)) {
            snprintf(err, errlen, "%s: %s", path, strerror(errno));
            rc = -1;
        }
    }
    free(pending);
    free(line);
    if (!rc && repair && j) {
        int wfd = dup(fd);
        if (wfd < 0 || lseek(wfd, 0, SEEK_END) < 0) {
            snprintf(err, errlen, "%s: %s", path, strerror(errno));
            rc = -1;
            if (wfd >= 0) close(wfd);
        } else {
            j->fd = wfd;
            j->path = path;
            j->records = *n_records;
        }
    }
    fclose(f);
    (void)pending_len;
    return rc;
}
