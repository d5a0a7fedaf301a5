/* One line of `wm read` input (read_parse.c). */
#ifndef WM_CLI_READ_PARSE_H
#define WM_CLI_READ_PARSE_H

#include <stddef.h>
#include <wm.h>

/* A document's arrays, grown as needed and reused line to line; free the
 * three pointers when done. */
typedef struct read_doc {
    wm_token *ids, *top;
    float *w;
    size_t cap_ids, cap_top, cap_w;
} read_doc;

/* Parses line (NUL-terminated) into b: *n ids, *n_prompt, k ids per row
 * (*k = 0: set from this line's first row; else every row must have *k),
 * weights when `weighted` (then required, else refused).  Ids must be
 * below V.  Returns 0, or -1 with a message (entry and reason) in msg. */
int read_parse_doc(const char *line, read_doc *b, uint32_t V, int weighted, size_t *n, size_t *n_prompt, size_t *k,
                   char *msg, size_t len);

#endif
