/* Set of non-zero, already well-mixed 64-bit keys: linear probing over 8-byte
 * slots, slot chosen by the key's high bits (multiply-shift, so any capacity
 * works).  Load stays in [0.5, 0.8]: growth is by 1.6x at 0.8, which is what
 * bounds memory at 16 bytes per key.  A map (wm__u64map_init) carries a
 * 32-bit value per slot, moved with its key, 4 bytes more per slot. */
#include "internal.h"

#include <stdlib.h>
#include <string.h>

#define MIN_CAP 64

static size_t home(uint64_t key, size_t cap)
{
    return (size_t)(((unsigned __int128)key * cap) >> 64);
}

wm_status wm__u64set_init(wm__u64set *s, size_t expected)
{
    size_t cap = expected + expected / 4 + 1;
    if (cap < MIN_CAP) cap = MIN_CAP;
    s->slot = wm__calloc(cap, sizeof *s->slot);
    s->cap = s->slot ? cap : 0;
    s->len = 0;
    s->val = NULL;
    return s->slot ? WM_OK : WM_ERR_NOMEM;
}

wm_status wm__u64map_init(wm__u64set *s, size_t expected)
{
    if (wm__u64set_init(s, expected)) return WM_ERR_NOMEM;
    if (!(s->val = wm__malloc(s->cap * sizeof *s->val))) {
        wm__u64set_free(s);
        return WM_ERR_NOMEM;
    }
    return WM_OK;
}

wm_status wm__u64set_copy(wm__u64set *dst, const wm__u64set *src)
{
    dst->val = NULL; /* sets only */
    dst->slot = wm__malloc(src->cap * sizeof *dst->slot);
    if (!dst->slot) return WM_ERR_NOMEM;
    memcpy(dst->slot, src->slot, src->cap * sizeof *dst->slot);
    dst->cap = src->cap;
    dst->len = src->len;
    return WM_OK;
}

void wm__u64set_free(wm__u64set *s)
{
    wm__free(s->slot);
    wm__free(s->val);
    s->slot = NULL;
    s->val = NULL;
    s->cap = s->len = 0;
}

static size_t put(uint64_t *slot, size_t cap, uint64_t key)
{
    size_t i = home(key, cap);
    while (slot[i]) i = i + 1 == cap ? 0 : i + 1;
    slot[i] = key;
    return i;
}

static int grow(wm__u64set *s)
{
    size_t cap = s->cap + s->cap / 2 + s->cap / 10; /* 1.6x */
    /* 1.6 x 0 is 0: a set whose table could not be had (wm__u64set_free, or
     * an init that failed) must still get one, or the insert after this
     * would write into a zero-size block. */
    if (cap < MIN_CAP) cap = MIN_CAP;
    uint64_t *slot = wm__calloc(cap, sizeof *slot);
    uint32_t *val = s->val ? wm__malloc(cap * sizeof *val) : NULL;
    if (!slot || (s->val && !val)) {
        wm__free(slot);
        wm__free(val);
        return -1;
    }
    for (size_t i = 0; i < s->cap; i++) {
        if (!s->slot[i]) continue;
        size_t j = put(slot, cap, s->slot[i]);
        if (val) val[j] = s->val[i];
    }
    wm__free(s->slot);
    wm__free(s->val);
    s->slot = slot;
    s->val = val;
    s->cap = cap;
    return 0;
}

int wm__u64set_insert(wm__u64set *s, uint64_t key)
{
    size_t at;
    return wm__u64set_insert_at(s, key, &at);
}

int wm__u64set_insert_at(wm__u64set *s, uint64_t key, size_t *at)
{
    if ((s->len + 1) * 5 > s->cap * 4 && grow(s)) return -1;
    size_t i = home(key, s->cap);
    for (;;) {
        uint64_t k = s->slot[i];
        if (k == key) break;
        if (!k) {
            s->slot[i] = key;
            s->len++;
            *at = i;
            return 1;
        }
        i = i + 1 == s->cap ? 0 : i + 1;
    }
    *at = i;
    return 0;
}

int wm__u64set_contains(const wm__u64set *s, uint64_t key)
{
    if (s->cap == 0) return 0; /* no table: empty (and slot[0] does not exist) */
    size_t i = home(key, s->cap);
    for (;;) {
        uint64_t k = s->slot[i];
        if (k == key) return 1;
        if (!k) return 0;
        i = i + 1 == s->cap ? 0 : i + 1;
    }
}

void wm__u64set_clear(wm__u64set *s)
{
    if (s->cap) memset(s->slot, 0, s->cap * sizeof *s->slot); /* slot is NULL without a table */
    s->len = 0;
}
