/* Keys and key files.
 *
 * Key file (text, one "name value" per line, order fixed, '#' comments):
 *
 *   libwm-key 1
 *   id 3f2a9c0d11e4b765          public fingerprint, checked on load
 *   scheme lefthash              lefthash | minhash
 *   context-width 1
 *   gamma 0.25                   must be k / 65536 exactly
 *   delta 2
 *   vocab 151936                 optional: tokenizer the key is bound to
 *   tokenizer <64 hex>           optional, only with vocab: its SHA-256
 *   secret <64 hex>
 *
 * The id is BLAKE2b keyed with the secret over the canonical text of all the
 * other fields, so any edit or corruption of the file is caught. */
#include "internal.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

#define KEY_MAGIC "libwm-key 1"
#define MAX_KEY_FILE 4096

static void seterr(wm_error *err, const char *fmt, ...)
{
    if (!err) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->message, sizeof err->message, fmt, ap);
    va_end(ap);
}

static const char *scheme_name(wm_scheme s) { return s == WM_SCHEME_MINHASH ? "minhash" : "lefthash"; }

static wm_status check_params(const wm_params *p, uint32_t *gamma_k)
{
    if (!(p->gamma > 0.0 && p->gamma < 1.0)) return WM_ERR_PARAM;
    if (!(p->delta >= WM_DELTA_MIN && p->delta <= 64.0)) return WM_ERR_PARAM;
    if (p->context_width > WM_MAX_CONTEXT) return WM_ERR_PARAM;
    if (p->scheme != WM_SCHEME_LEFTHASH && p->scheme != WM_SCHEME_MINHASH) return WM_ERR_PARAM;
    if (p->scheme == WM_SCHEME_MINHASH && p->context_width == 0) return WM_ERR_PARAM;
    double k = nearbyint(p->gamma * WM_GAMMA_ONE);
    if (k < 1) k = 1;
    if (k > WM_GAMMA_ONE - 1) k = WM_GAMMA_ONE - 1;
    *gamma_k = (uint32_t)k;
    return WM_OK;
}

static wm_status key_alloc(wm_key **out, const wm_params *params)
{
    if (!out || !params) return WM_ERR_ARG;
    *out = NULL;
    if (sodium_init() < 0) return WM_ERR_CRYPTO;
    uint32_t gk;
    wm_status st = check_params(params, &gk);
    if (st) return st;
    wm_key *k = sodium_malloc(sizeof *k);
    if (!k) return WM_ERR_NOMEM;
    memset(k, 0, sizeof *k);
    k->gamma_k = gk;
    k->delta = params->delta;
    k->h = params->context_width;
    k->scheme = params->scheme;
    *out = k;
    return WM_OK;
}

wm_status wm_key_generate(wm_key **out, const wm_params *params)
{
    wm_status st = key_alloc(out, params);
    if (st == WM_OK) randombytes_buf((*out)->secret, sizeof (*out)->secret);
    return st;
}

wm_status wm_key_from_seed(wm_key **out, const wm_params *params, const unsigned char seed[32])
{
    if (!seed) return WM_ERR_ARG;
    wm_status st = key_alloc(out, params);
    if (st == WM_OK) memcpy((*out)->secret, seed, 32);
    return st;
}

void wm_key_free(wm_key *key)
{
    if (key) sodium_free(key); /* sodium_free wipes before unmapping */
}

wm_status wm_key_params(const wm_key *key, wm_params *out)
{
    if (!key || !out) return WM_ERR_ARG;
    out->gamma = (double)key->gamma_k / WM_GAMMA_ONE;
    out->delta = key->delta;
    out->context_width = key->h;
    out->scheme = key->scheme;
    return WM_OK;
}

wm_status wm_key_set_tokenizer(wm_key *key, uint32_t n_vocab, const unsigned char sha256[32])
{
    if (!key || (n_vocab && !sha256)) return WM_ERR_ARG;
    key->n_vocab = n_vocab;
    if (n_vocab) memcpy(key->tok_sha, sha256, 32);
    else memset(key->tok_sha, 0, 32);
    return WM_OK;
}

wm_status wm_key_tokenizer(const wm_key *key, uint32_t *n_vocab, unsigned char sha256[32])
{
    if (!key || !n_vocab) return WM_ERR_ARG;
    *n_vocab = key->n_vocab;
    if (sha256) memcpy(sha256, key->tok_sha, 32);
    return WM_OK;
}

/* Canonical text of every field but id and secret. */
static int canonical_params(const wm_key *k, char *buf, size_t size)
{
    char tok[140] = "";
    if (k->n_vocab) {
        char hex[65];
        sodium_bin2hex(hex, sizeof hex, k->tok_sha, 32);
        snprintf(tok, sizeof tok, "vocab %u\ntokenizer %s\n", k->n_vocab, hex);
    }
    return snprintf(buf, size, "scheme %s\ncontext-width %u\ngamma %.17g\ndelta %.17g\n%s",
                    scheme_name(k->scheme), k->h, (double)k->gamma_k / WM_GAMMA_ONE, k->delta, tok);
}

void wm__compute_id(const wm_key *k, char out[WM_KEY_ID_SIZE])
{
    char text[512];
    unsigned char mac[8];
    int len = canonical_params(k, text, sizeof text);
    crypto_generichash(mac, sizeof mac, (const unsigned char *)text, (size_t)len, k->secret,
                       sizeof k->secret);
    sodium_bin2hex(out, WM_KEY_ID_SIZE, mac, sizeof mac);
}

wm_status wm_key_id(const wm_key *key, char out[WM_KEY_ID_SIZE])
{
    if (!key || !out) return WM_ERR_ARG;
    wm__compute_id(key, out);
    return WM_OK;
}

wm_status wm_key_save(const wm_key *key, const char *path, wm_error *err)
{
    if (!key || !path) return WM_ERR_ARG;
    char id[WM_KEY_ID_SIZE], params[512], hex[65];
    wm__compute_id(key, id);
    canonical_params(key, params, sizeof params);
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0) {
        int e = errno;
        seterr(err, "%s: %s", path, e == EEXIST ? "exists; refusing to overwrite a key" : strerror(e));
        return e == EEXIST ? WM_ERR_EXISTS : WM_ERR_IO;
    }
    /* Build the whole file in guarded memory, write once, wipe. */
    char *text = sodium_malloc(MAX_KEY_FILE);
    if (!text) {
        close(fd);
        unlink(path);
        return WM_ERR_NOMEM;
    }
    sodium_bin2hex(hex, sizeof hex, key->secret, sizeof key->secret);
    int len = snprintf(text, MAX_KEY_FILE,
                       "# libwm watermark key.  SECRET: whoever reads it can forge and erase the watermark.\n"
                       KEY_MAGIC "\nid %s\n%ssecret %s\n", id, params, hex);
    sodium_memzero(hex, sizeof hex);
    ssize_t off = 0;
    while (off < len) {
        ssize_t w = write(fd, text + off, (size_t)(len - off));
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) break;
        off += w;
    }
    sodium_free(text);
    int bad = off != len || fsync(fd) != 0;
    int e = errno;
    if (close(fd) != 0) bad = 1;
    if (bad) {
        unlink(path);
        seterr(err, "%s: write failed: %s", path, strerror(e));
        return WM_ERR_IO;
    }
    return WM_OK;
}

/* ---- parsing -------------------------------------------------------------- */

typedef struct parser {
    const char *p, *end, *name;
    unsigned line;
    wm_error *err;
} parser;

/* Next non-comment, non-empty line as [*s, *e); 0 at end of input. */
static int next_line(parser *ps, const char **s, const char **e)
{
    while (ps->p < ps->end) {
        const char *a = ps->p, *b = memchr(a, '\n', (size_t)(ps->end - a));
        if (!b) b = ps->end;
        ps->p = b < ps->end ? b + 1 : b;
        ps->line++;
        if (b > a && b[-1] == '\r') b--;
        if (b == a || *a == '#') continue;
        *s = a;
        *e = b;
        return 1;
    }
    return 0;
}

static wm_status perr(parser *ps, const char *fmt, const char *what)
{
    char msg[256];
    snprintf(msg, sizeof msg, fmt, what);
    seterr(ps->err, "%s:%u: %s", ps->name, ps->line, msg);
    return WM_ERR_FORMAT;
}

/* Expect "field value" next; copy value (NUL-terminated) into val. */
static wm_status expect(parser *ps, const char *field, char *val, size_t size, int optional, int *present)
{
    const char *s, *e, *save = ps->p;
    unsigned save_line = ps->line;
    if (present) *present = 0;
    if (!next_line(ps, &s, &e)) {
        if (optional) return WM_OK;
        ps->line++;
        return perr(ps, "missing field '%s' (file truncated?)", field);
    }
    size_t fl = strlen(field);
    if ((size_t)(e - s) <= fl || memcmp(s, field, fl) != 0 || s[fl] != ' ') {
        if (optional) {
            ps->p = save;
            ps->line = save_line;
            return WM_OK;
        }
        return perr(ps, "expected field '%s'", field);
    }
    s += fl + 1;
    if ((size_t)(e - s) >= size || e == s) return perr(ps, "%s: value empty or too long", field);
    memcpy(val, s, (size_t)(e - s));
    val[e - s] = 0;
    if (memchr(val, 0, (size_t)(e - s))) return perr(ps, "%s: NUL byte in value", field);
    if (present) *present = 1;
    return WM_OK;
}

static int parse_u32(const char *s, uint32_t max, uint32_t *out)
{
    if (*s < '0' || *s > '9' || (s[0] == '0' && s[1])) return 0;
    uint64_t v = 0;
    for (; *s; s++) {
        if (*s < '0' || *s > '9') return 0;
        v = v * 10 + (uint64_t)(*s - '0');
        if (v > max) return 0;
    }
    *out = (uint32_t)v;
    return 1;
}

static int parse_double(const char *s, double *out)
{
    char *end;
    errno = 0;
    double d = strtod(s, &end);
    if (end == s || *end || errno || !isfinite(d)) return 0;
    *out = d;
    return 1;
}

static int parse_hex32(const char *s, unsigned char out[32])
{
    size_t len;
    const char *end;
    if (strlen(s) != 64) return 0;
    return sodium_hex2bin(out, 32, s, 64, NULL, &len, &end) == 0 && len == 32 && *end == 0;
}


static wm_status parse_body(parser *ps, wm_key *k, char *id_out)
{
    char v[160];
    const char *s, *e;
    wm_status st;
    if (!next_line(ps, &s, &e) || (size_t)(e - s) != strlen(KEY_MAGIC) ||
        memcmp(s, KEY_MAGIC, strlen(KEY_MAGIC)) != 0)
        return perr(ps, "%s", "not a libwm key file (expected 'libwm-key 1')");
    if ((st = expect(ps, "id", v, sizeof v, 0, NULL))) return st;
    if (strlen(v) != 16 || strspn(v, "0123456789abcdef") != 16)
        return perr(ps, "%s", "id: expected 16 lowercase hex digits");
    memcpy(id_out, v, WM_KEY_ID_SIZE);
    if ((st = expect(ps, "scheme", v, sizeof v, 0, NULL))) return st;
    if (!strcmp(v, "lefthash")) k->scheme = WM_SCHEME_LEFTHASH;
    else if (!strcmp(v, "minhash")) k->scheme = WM_SCHEME_MINHASH;
    else return perr(ps, "scheme: '%s' is not lefthash or minhash", v);
    if ((st = expect(ps, "context-width", v, sizeof v, 0, NULL))) return st;
    if (!parse_u32(v, WM_MAX_CONTEXT, &k->h)) return perr(ps, "context-width: '%s' is not an integer 0..16", v);
    if ((st = expect(ps, "gamma", v, sizeof v, 0, NULL))) return st;
    double g;
    if (!parse_double(v, &g) || !(g > 0 && g < 1) || g * WM_GAMMA_ONE != nearbyint(g * WM_GAMMA_ONE))
        return perr(ps, "gamma: '%s' is not k/65536 with 0 < k < 65536", v);
    k->gamma_k = (uint32_t)(g * WM_GAMMA_ONE);
    if ((st = expect(ps, "delta", v, sizeof v, 0, NULL))) return st;
    if (!parse_double(v, &k->delta) || !(k->delta >= WM_DELTA_MIN && k->delta <= 64))
        return perr(ps, "delta: '%s' is not a number in [1/1024, 64]", v);
    if (k->scheme == WM_SCHEME_MINHASH && k->h == 0)
        return perr(ps, "%s", "context-width: minhash needs at least 1");
    int has_vocab;
    if ((st = expect(ps, "vocab", v, sizeof v, 1, &has_vocab))) return st;
    if (has_vocab) {
        if (!parse_u32(v, INT32_MAX, &k->n_vocab) || k->n_vocab == 0)
            return perr(ps, "vocab: '%s' is not a positive integer", v);
        if ((st = expect(ps, "tokenizer", v, sizeof v, 0, NULL))) return st;
        if (!parse_hex32(v, k->tok_sha)) return perr(ps, "%s", "tokenizer: expected 64 hex digits (SHA-256)");
    }
    if ((st = expect(ps, "secret", v, sizeof v, 0, NULL))) return st;
    int ok = parse_hex32(v, k->secret);
    sodium_memzero(v, sizeof v);
    if (!ok) return perr(ps, "%s", "secret: expected 64 hex digits");
    if (next_line(ps, &s, &e)) return perr(ps, "%s", "unexpected line after 'secret'");
    return WM_OK;
}

wm_status wm__key_parse(wm_key **out, const char *buf, size_t len, const char *name, wm_error *err)
{
    if (!out || (!buf && len)) return WM_ERR_ARG;
    *out = NULL;
    if (sodium_init() < 0) return WM_ERR_CRYPTO;
    wm_key *k = sodium_malloc(sizeof *k);
    if (!k) return WM_ERR_NOMEM;
    memset(k, 0, sizeof *k);
    parser ps = { buf, buf + len, name ? name : "<key>", 0, err };
    char id_file[WM_KEY_ID_SIZE], id_real[WM_KEY_ID_SIZE];
    wm_status st = parse_body(&ps, k, id_file);
    if (st == WM_OK) {
        wm__compute_id(k, id_real);
        if (sodium_memcmp(id_file, id_real, 16) != 0) {
            seterr(err, "%s: key id does not match the file's contents (corrupt or edited)", ps.name);
            st = WM_ERR_CORRUPT;
        }
    }
    if (st) {
        sodium_free(k);
        return st;
    }
    *out = k;
    return WM_OK;
}

wm_status wm_key_load(wm_key **out, const char *path, wm_error *err)
{
    if (!out || !path) return WM_ERR_ARG;
    *out = NULL;
    if (sodium_init() < 0) return WM_ERR_CRYPTO;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        seterr(err, "%s: %s", path, strerror(errno));
        return WM_ERR_IO;
    }
    struct stat sb;
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        seterr(err, "%s: not a regular file", path);
        close(fd);
        return WM_ERR_IO;
    }
    if (sb.st_mode & 077) {
        seterr(err, "%s: mode %03o lets others read the secret; chmod 600 it", path,
               (unsigned)(sb.st_mode & 0777));
        close(fd);
        return WM_ERR_PERM;
    }
    char *buf = sodium_malloc(MAX_KEY_FILE);
    if (!buf) {
        close(fd);
        return WM_ERR_NOMEM;
    }
    size_t len = 0;
    wm_status st = WM_OK;
    for (;;) {
        ssize_t r = read(fd, buf + len, MAX_KEY_FILE - len);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) {
            seterr(err, "%s: %s", path, strerror(errno));
            st = WM_ERR_IO;
            break;
        }
        if (r == 0) break;
        len += (size_t)r;
        if (len == MAX_KEY_FILE) {
            seterr(err, "%s: larger than %d bytes; not a key file", path, MAX_KEY_FILE);
            st = WM_ERR_FORMAT;
            break;
        }
    }
    close(fd);
    if (st == WM_OK) st = wm__key_parse(out, buf, len, path, err);
    sodium_free(buf);
    return st;
}
