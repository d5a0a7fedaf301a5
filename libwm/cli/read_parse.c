/* wm read's input line: {"ids", "n_prompt", "top", "weights"} (read.c).
 * Kept apart so that fuzz/fuzz_read_jsonl.c can drive it. */
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdint.h>
#include <stdlib.h>

#include "read_parse.h"

static int grow(void **p, size_t *cap, size_t need, size_t size)
{
    if (need <= *cap) return 0;
    size_t c = need + need / 2 + 16;
    void *q = realloc(*p, c * size);
    if (!q) return -1;
    *p = q;
    *cap = c;
    return 0;
}

int read_parse_doc(const char *line, read_doc *b, uint32_t V, int weighted, size_t *n, size_t *n_prompt, size_t *k,
                   char *msg, size_t len)
{
    json_error_t je;
    json_t *d = json_loads(line, JSON_REJECT_DUPLICATES, &je);
    int rc = -1;
    if (!json_is_object(d)) {
        snprintf(msg, len, "column %d: %s", je.column, d ? "not a JSON object" : je.text);
        goto out;
    }
    json_t *ids = json_object_get(d, "ids"), *np = json_object_get(d, "n_prompt");
    json_t *top = json_object_get(d, "top"), *w = json_object_get(d, "weights");
    if (!json_is_array(ids) || !json_is_array(top) || (np && !json_is_integer(np))) {
        snprintf(msg, len, "expected \"ids\" and \"top\" arrays and an integer \"n_prompt\"");
        goto out;
    }
    if (weighted != (w != NULL) || (w && !json_is_array(w))) {
        snprintf(msg, len, weighted ? "--weighted needs a \"weights\" array" : "\"weights\" given without --weighted");
        goto out;
    }
    *n = json_array_size(ids);
    *n_prompt = np ? (size_t)json_integer_value(np) : 0;
    if ((np && json_integer_value(np) < 0) || *n_prompt > *n) {
        snprintf(msg, len, "n_prompt must be in [0, %zu]", *n);
        goto out;
    }
    if (json_array_size(top) != *n || (w && json_array_size(w) != *n)) {
        snprintf(msg, len, "\"top\"%s must have one row per id (%zu)", w ? " and \"weights\"" : "", *n);
        goto out;
    }
    if (*n && !*k) *k = json_array_size(json_array_get(top, 0));
    if (*n && *k == 0) {
        snprintf(msg, len, "top[0] is empty");
        goto out;
    }
    if ((*k && *n > SIZE_MAX / *k) || grow((void **)&b->ids, &b->cap_ids, *n, sizeof *b->ids) ||
        grow((void **)&b->top, &b->cap_top, *n * *k, sizeof *b->top) ||
        (weighted && grow((void **)&b->w, &b->cap_w, *n * *k, sizeof *b->w))) {
        snprintf(msg, len, "out of memory");
        goto out;
    }
    for (size_t i = 0; i < *n; i++) {
        json_t *t = json_array_get(ids, i), *row = json_array_get(top, i), *wr = w ? json_array_get(w, i) : NULL;
        if (!json_is_integer(t) || json_integer_value(t) < 0 || json_integer_value(t) >= V) {
            snprintf(msg, len, "ids[%zu] is not a token id below %u", i, V);
            goto out;
        }
        b->ids[i] = (wm_token)json_integer_value(t);
        if (!json_is_array(row) || json_array_size(row) != *k || (w && (!json_is_array(wr) || json_array_size(wr) != *k))) {
            snprintf(msg, len, "top[%zu]%s must hold %zu entries, as every row", i, w ? " and its weights" : "", *k);
            goto out;
        }
        for (size_t j = 0; j < *k; j++) {
            json_t *p = json_array_get(row, j);
            if (!json_is_integer(p) || json_integer_value(p) < 0 || json_integer_value(p) >= V) {
                snprintf(msg, len, "top[%zu][%zu] is not a token id below %u", i, j, V);
                goto out;
            }
            b->top[i * *k + j] = (wm_token)json_integer_value(p);
            if (!w) continue;
            json_t *x = json_array_get(wr, j);
            double v = json_number_value(x);
            if (!json_is_number(x) || !isfinite((float)v)) {
                snprintf(msg, len, "weights[%zu][%zu] is not a finite number", i, j);
                goto out;
            }
            b->w[i * *k + j] = (float)v;
        }
    }
    rc = 0;
out:
    json_decref(d);
    return rc;
}
