/* Pre-tokenizer patterns: Oniguruma's syntax and Unicode version to
 * PCRE2's. */
#include "tokenizer_internal.h"

#include <pthread.h>
#include <stdatomic.h>

/* ---- Unicode version ----------------------------------------------------
 *
 * The reference's regex engine (Oniguruma, bundled by the onig crate) knows
 * Unicode 15.0; Debian 12's PCRE2 10.42 knows 14.0, so the 4,489 characters
 * assigned in 15.0 (U+1FAAE HAIR PICK, U+1FAE8 SHAKING FACE, the Kawi
 * digits, CJK Extension H ...) are Cn to it and a pattern's \p{S}, \p{L},
 * \p{N} ... would miss them.  utf8proc 2.8 carries Unicode 15.0 data, so the
 * translation below adds, to every general-category property, the code
 * points utf8proc assigns to that category while PCRE2 calls them
 * unassigned.  When PCRE2 catches up the lists come out empty. */

enum { N_CATS = 30 };
static char *cat_extra[N_CATS]; /* per utf8proc category: "\x{..}-\x{..}..." or NULL */
/* The tables are built once per process, under the lock, by the first
 * tokenizer load that needs them.  A build that fails (no memory) leaves
 * nothing behind and the next load tries again: a failure once must not make
 * every later load fail, nor leave a table with ranges missing.  `ready` is
 * stored (release) after the tables are complete and loaded (acquire) before
 * they are read. */
static pthread_mutex_t patch_lock = PTHREAD_MUTEX_INITIALIZER;
static _Atomic int patch_ready;

/* PCRE2's allocations go through the library's layer (core/alloc.h), so
 * that fault injection reaches them too. */
static void *pcre2_take(PCRE2_SIZE n, void *data)
{
    (void)data;
    return wm__malloc(n);
}

static void pcre2_release(void *p, void *data)
{
    (void)data;
    wm__free(p);
}

pcre2_general_context *tok_pcre2_general(void) { return pcre2_general_context_create(pcre2_take, pcre2_release, NULL); }

/* 0: out of memory. */
static int append_range(char **buf, size_t *len, size_t *cap, int32_t lo, int32_t hi)
{
    if (*len + 32 > *cap) {
        size_t nc = *cap ? *cap * 2 : 256;
        char *nb = wm__realloc(*buf, nc);
        if (!nb) return 0;
        *buf = nb;
        *cap = nc;
    }
    *len += (size_t)(lo == hi ? sprintf(*buf + *len, "\\x{%X}", (unsigned)lo)
                              : sprintf(*buf + *len, "\\x{%X}-\\x{%X}", (unsigned)lo, (unsigned)hi));
    return 1;
}

static void drop_unicode_patch(void)
{
    for (int c = 0; c < N_CATS; c++) {
        wm__free(cat_extra[c]);
        cat_extra[c] = NULL;
    }
}

static wm_status build_unicode_patch(void)
{
    int code = 0;
    PCRE2_SIZE off;
    wm_status st = WM_ERR_NOMEM;
    pcre2_general_context *gc = tok_pcre2_general();
    pcre2_compile_context *cc = gc ? pcre2_compile_context_create(gc) : NULL;
    pcre2_code *cn = cc ? pcre2_compile((PCRE2_SPTR) "\\p{Cn}", PCRE2_ZERO_TERMINATED,
                                        PCRE2_UTF | PCRE2_UCP | PCRE2_ANCHORED, &code, &off, cc)
                        : NULL;
    pcre2_match_data *md = cn ? pcre2_match_data_create(1, gc) : NULL;
    if (!md) {
        /* a constant pattern refused for another reason than memory: a
         * PCRE2 built without Unicode support */
        if (cc && !cn && code != PCRE2_ERROR_HEAP_FAILED) st = WM_ERR_UNSUPPORTED;
        goto out;
    }
    pcre2_jit_compile(cn, PCRE2_JIT_COMPLETE); /* best effort: the interpreter gives the same answers */
    size_t len[N_CATS] = { 0 }, cap[N_CATS] = { 0 };
    int32_t run_lo[N_CATS], run_hi[N_CATS];
    for (int c = 0; c < N_CATS; c++) run_lo[c] = run_hi[c] = -2;
    for (int32_t cp = 0; cp <= 0x10FFFF; cp++) {
        utf8proc_category_t c = utf8proc_category(cp);
        /* Co (private use) and Cs are never Cn to either; Cn stays Cn */
        if (c == UTF8PROC_CATEGORY_CN || c == UTF8PROC_CATEGORY_CO || c == UTF8PROC_CATEGORY_CS || (int)c >= N_CATS)
            continue;
        utf8proc_uint8_t u[4];
        utf8proc_ssize_t k = utf8proc_encode_char(cp, u);
        int rc = pcre2_match(cn, u, (PCRE2_SIZE)k, 0, PCRE2_NO_UTF_CHECK, md, NULL);
        if (rc == PCRE2_ERROR_NOMATCH) continue;
        /* any other failure (the interpreter's frames) is not an answer:
         * taking it for "assigned" would drop code points from the lists */
        if (rc < 0) {
            st = rc == PCRE2_ERROR_NOMEMORY ? WM_ERR_NOMEM : WM_ERR_UNSUPPORTED;
            goto out;
        }
        if (run_hi[c] == cp - 1) {
            run_hi[c] = cp;
            continue;
        }
        if (run_lo[c] >= 0 && !append_range(&cat_extra[c], &len[c], &cap[c], run_lo[c], run_hi[c])) goto out;
        run_lo[c] = run_hi[c] = cp;
    }
    for (int c = 0; c < N_CATS; c++)
        if (run_lo[c] >= 0 && !append_range(&cat_extra[c], &len[c], &cap[c], run_lo[c], run_hi[c])) goto out;
    st = WM_OK;
out:
    if (st) drop_unicode_patch();
    pcre2_match_data_free(md);
    pcre2_code_free(cn);
    pcre2_compile_context_free(cc);
    pcre2_general_context_free(gc);
    return st;
}

/* Categories named by a property (\p{L}, \p{Lu}, \p{L&}); 0 if the name is
 * not a general category (a script, Any, Xan ...: left as PCRE2 has it). */
static int cats_of(const char *name, size_t n, int out[N_CATS])
{
    static const char *names[N_CATS] = {
        [UTF8PROC_CATEGORY_LU] = "Lu", [UTF8PROC_CATEGORY_LL] = "Ll", [UTF8PROC_CATEGORY_LT] = "Lt",
        [UTF8PROC_CATEGORY_LM] = "Lm", [UTF8PROC_CATEGORY_LO] = "Lo", [UTF8PROC_CATEGORY_MN] = "Mn",
        [UTF8PROC_CATEGORY_MC] = "Mc", [UTF8PROC_CATEGORY_ME] = "Me", [UTF8PROC_CATEGORY_ND] = "Nd",
        [UTF8PROC_CATEGORY_NL] = "Nl", [UTF8PROC_CATEGORY_NO] = "No", [UTF8PROC_CATEGORY_PC] = "Pc",
        [UTF8PROC_CATEGORY_PD] = "Pd", [UTF8PROC_CATEGORY_PS] = "Ps", [UTF8PROC_CATEGORY_PE] = "Pe",
        [UTF8PROC_CATEGORY_PI] = "Pi", [UTF8PROC_CATEGORY_PF] = "Pf", [UTF8PROC_CATEGORY_PO] = "Po",
        [UTF8PROC_CATEGORY_SM] = "Sm", [UTF8PROC_CATEGORY_SC] = "Sc", [UTF8PROC_CATEGORY_SK] = "Sk",
        [UTF8PROC_CATEGORY_SO] = "So", [UTF8PROC_CATEGORY_ZS] = "Zs", [UTF8PROC_CATEGORY_ZL] = "Zl",
        [UTF8PROC_CATEGORY_ZP] = "Zp", [UTF8PROC_CATEGORY_CC] = "Cc", [UTF8PROC_CATEGORY_CF] = "Cf",
    };
    int k = 0;
    int amp = n == 2 && (!memcmp(name, "L&", 2) || !memcmp(name, "LC", 2));
    for (int c = 1; c < N_CATS; c++) {
        if (!names[c]) continue;
        if ((n == 1 && names[c][0] == name[0]) || (n == 2 && !memcmp(names[c], name, 2)) ||
            (amp && (c == UTF8PROC_CATEGORY_LU || c == UTF8PROC_CATEGORY_LL || c == UTF8PROC_CATEGORY_LT)))
            out[k++] = c;
    }
    return k;
}

static size_t extra_of(const int *cats, int k, char *o)
{
    size_t n = 0;
    for (int i = 0; i < k; i++)
        if (cat_extra[cats[i]]) {
            size_t l = strlen(cat_extra[cats[i]]);
            if (o) memcpy(o + n, cat_extra[cats[i]], l);
            n += l;
        }
    return n;
}

/* Index just past the first `a b` pair at or after p[i], or len. */
static size_t past_pair(const char *p, size_t i, size_t len, char a, char b)
{
    for (; i + 1 < len; i++)
        if (p[i] == a && p[i + 1] == b) return i + 2;
    return len;
}

/* Oniguruma -> PCRE2.  Every construct these files use reads the same in
 * PCRE2 with UTF + UCP except two.  Oniguruma's \s is Unicode White_Space,
 * PCRE2's is \p{Zs}, \h or \v, which also takes U+180E: so \s and \S become
 * \p{White_Space} and \P{White_Space}, inside classes too (as the Hugging
 * Face JavaScript port does).  And the Unicode version (above): \p{X}, \P{X}
 * and \d (= \p{Nd}) gain the newer code points, as [\p{X}extra] outside a
 * class, [^\p{X}extra] for \P{X}, \p{X}extra inside one.  A \P{X} (or \D)
 * inside a class cannot lose them in PCRE2 10.42's syntax and is left as
 * is: no tokenizer we know writes one.  *out is malloc'd. */
char *tok_translate_re(const char *p, size_t len, size_t *out_len)
{
    size_t cap = len * 8 + 1, n = 0;
    for (size_t i = 0; i + 1 < len; i++)
        if (p[i] == '\\' && (p[i + 1] == 'p' || p[i + 1] == 'P' || p[i + 1] == 'd' || p[i + 1] == 'D')) {
            int all[N_CATS], k = cats_of("L", 1, all);
            k += cats_of("M", 1, all + k), k += cats_of("N", 1, all + k), k += cats_of("P", 1, all + k);
            k += cats_of("S", 1, all + k), k += cats_of("Z", 1, all + k), k += cats_of("C", 1, all + k);
            cap += extra_of(all, k, NULL) + 8;
        }
    char *o = wm__malloc(cap);
    if (!o) return NULL;
    int in_class = 0;
    for (size_t i = 0; i < len; i++) {
        char c = p[i];
        if (c == '[' && !in_class) {
            in_class = 1;
            o[n++] = c;
            if (i + 1 < len && p[i + 1] == '^') o[n++] = p[++i];
            if (i + 1 < len && p[i + 1] == ']') o[n++] = p[++i]; /* a literal ] first */
            continue;
        }
        if (c == '[' && in_class && i + 1 < len && p[i + 1] == ':') { /* [:alpha:] */
            size_t stop = past_pair(p, i + 2, len, ':', ']');
            memcpy(o + n, p + i, stop - i);
            n += stop - i;
            i = stop - 1;
            continue;
        }
        if (c == ']' && in_class) {
            in_class = 0;
            o[n++] = c;
            continue;
        }
        if (c != '\\' || i + 1 == len) {
            o[n++] = c;
            continue;
        }
        char e = p[i + 1];
        if (e == 's' || e == 'S') {
            n += (size_t)sprintf(o + n, "\\%c{White_Space}", e == 's' ? 'p' : 'P');
            i++;
            continue;
        }
        if (e == 'Q') { /* \Q...\E: literal */
            size_t stop = past_pair(p, i + 2, len, '\\', 'E');
            memcpy(o + n, p + i, stop - i);
            n += stop - i;
            i = stop - 1;
            continue;
        }
        /* the escape itself, then the property name if any */
        size_t start = i, name_at = 0, name_len = 0, stop = i + 2;
        int neg = e == 'P' || e == 'D';
        if (e == 'p' || e == 'P') {
            if (i + 2 < len && p[i + 2] == '{') {
                const char *end = memchr(p + i + 3, '}', len - i - 3);
                if (end) {
                    name_at = i + 3;
                    name_len = (size_t)(end - p) - name_at;
                    stop = (size_t)(end - p) + 1;
                    if (name_len && p[name_at] == '^') neg = !neg, name_at++, name_len--;
                }
            } else if (i + 2 < len) {
                name_at = i + 2, name_len = 1, stop = i + 3;
            }
        }
        int cats[N_CATS], k = 0;
        if (e == 'd' || e == 'D') k = cats_of("Nd", 2, cats);
        else if (name_len == 1 || name_len == 2) k = cats_of(p + name_at, name_len, cats);
        size_t extra = k ? extra_of(cats, k, NULL) : 0;
        if (!extra || (neg && in_class)) {
            memcpy(o + n, p + start, stop - start);
            n += stop - start;
        } else {
            if (!in_class) o[n++] = '[';
            if (!in_class && neg) o[n++] = '^';
            if (e == 'd' || e == 'D') {
                n += (size_t)sprintf(o + n, "\\p{Nd}");
            } else {
                n += (size_t)sprintf(o + n, "\\p{");
                memcpy(o + n, p + name_at, name_len);
                n += name_len;
                o[n++] = '}';
            }
            n += extra_of(cats, k, o + n);
            if (!in_class) o[n++] = ']';
        }
        i = stop - 1;
    }
    o[n] = 0;
    *out_len = n;
    return o;
}

wm_status tok_unicode_init(void)
{
    if (atomic_load_explicit(&patch_ready, memory_order_acquire)) return WM_OK;
    if (pthread_mutex_lock(&patch_lock) != 0) return WM_ERR_UNSUPPORTED;
    wm_status st = atomic_load_explicit(&patch_ready, memory_order_relaxed) ? WM_OK : build_unicode_patch();
    if (st == WM_OK) atomic_store_explicit(&patch_ready, 1, memory_order_release);
    pthread_mutex_unlock(&patch_lock);
    return st;
}

#ifdef WM_FAULT_INJECTION
void wm__tok_unicode_forget(void)
{
    pthread_mutex_lock(&patch_lock);
    drop_unicode_patch();
    atomic_store_explicit(&patch_ready, 0, memory_order_relaxed);
    pthread_mutex_unlock(&patch_lock);
}
#endif
