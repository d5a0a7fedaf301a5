/* Documents from files: plain text (one document per file), JSON Lines (one
 * per line, text in a field, optional prompt field) or token-id lines. */
#ifndef WM_CLI_INPUT_H
#define WM_CLI_INPUT_H

#include <stdio.h>
#include <wm.h>

typedef enum { IN_PLAIN, IN_JSONL, IN_IDS } in_mode;

typedef struct doc {
    char source[320];   /* "file" or "file:line" */
    char *text, *prompt;
    size_t len, prompt_len;
    wm_token *ids;      /* IN_IDS */
    size_t n_ids;
} doc;

typedef struct reader {
    in_mode mode;
    const char *field, *prompt_field;
    char **files;
    int n_files, next_file;
    FILE *f;
    const char *name;
    unsigned long line;
    char *buf;
    size_t cap;
    int skip_bad;
    int lossy;          /* JSONL: invalid UTF-8 becomes U+FFFD before parsing */
    unsigned long skipped;
    unsigned long long bytes;
} reader;

#define MAX_LINE (64u << 20) /* longer lines are refused, not buffered */

void reader_init(reader *r, in_mode mode, const char *field, const char *prompt_field,
                 char **files, int n_files, int skip_bad, int lossy);

/* Length of the valid UTF-8 sequence at s (n >= 1 bytes left), 0 if it is
 * not one (overlong forms, surrogates, > U+10FFFF included). */
size_t utf8_valid_len(const unsigned char *s, size_t n);
int utf8_valid(const char *s, size_t n);
/* 1: *d filled (free with doc_free); 0: end; -1: error in err. */
int reader_next(reader *r, doc *d, char *err, size_t errlen);
void reader_close(reader *r);
void doc_free(doc *d);

#endif
