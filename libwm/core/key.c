/* Keys and key files.
 *
 * Key file, format 2 (text, one "name value" per line, order fixed, '#'
 * comments):
 *
 *   libwm-key 2
 *   id 3f2a9c0d11e4b765          public fingerprint, checked on load
 *   scheme kgw                   kgw | gumbel (schemes/registry.c)
 *   seeding lefthash             lefthash | minhash
 *   context-width 1
 *   gamma 0.25                   the scheme's parameters, in its order
 *   delta 2                      (kgw: gamma, k / 65536 exactly, delta and
 *   account-delta 1               account-delta, left out when 0)
 *   vocab 151936                 optional: tokenizer the key is bound to
 *   tokenizer <64 hex>           optional, only with vocab: its SHA-256
 *   secret <64 hex>
 *
 * Format 1 (libwm 0.1) had only the green list: "libwm-key 1", then id,
 * "scheme lefthash|minhash" (the seeding rule), context-width, gamma, delta
 * and the rest as above.  It still loads, as kgw, and is saved as format 1.
 *
 * The id is BLAKE2b keyed with the secret over the canonical text of all the
 * other fields, so any edit or corruption of the file is caught. */
#include "internal.h"

#include <errno.h>
#include <fcntl.h>
#include <locale.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

#define KEY_MAGIC "libwm-key "
#define MAX_KEY_FILE 4096

static void seterr(wm_error *err, const char *fmt, ...)
{
    if (!err) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->message, sizeof err->message, fmt, ap);
    va_end(ap);
}

/* ---- numbers in the "C" locale -------------------------------------------
 *
 * The parameters are written with "%.17g" and read with strtod, both of
 * which follow LC_NUMERIC: a program that called setlocale(LC_ALL, "")
 * under de_DE would write "gamma 0,25", compute another key id from that
 * text, and no other program could read the file.  So this thread is
 * switched to a "C" locale object around each of those calls (uselocale
 * changes the calling thread only, never the process's locale or another
 * thread's) and switched back to whatever it had.  The object is made once
 * and kept for the life of the process.  newlocale can fail (for want of
 * memory); that failure is returned to the caller as an error, never
 * papered over by formatting in the caller's locale, and it is not
 * remembered: the next call tries again, which a pthread_once could not. */
static pthread_mutex_t c_locale_lock = PTHREAD_MUTEX_INITIALIZER;
static locale_t c_locale = (locale_t)0;

#define C_LOCALE_FAILED "cannot switch to the \"C\" locale to read or write numbers locale-independently"

static wm_status c_numeric_enter(locale_t *saved)
{
    int e = 0;
    if (pthread_mutex_lock(&c_locale_lock) != 0) return WM_ERR_UNSUPPORTED;
    if (c_locale == (locale_t)0 && (c_locale = newlocale(LC_ALL_MASK, "C", (locale_t)0)) == (locale_t)0) e = errno;
    locale_t c = c_locale;
    pthread_mutex_unlock(&c_locale_lock);
    if (c == (locale_t)0) return e == ENOMEM ? WM_ERR_NOMEM : WM_ERR_UNSUPPORTED;
    *saved = uselocale(c);
    return *saved == (locale_t)0 ? WM_ERR_UNSUPPORTED : WM_OK;
}

static void c_numeric_leave(locale_t saved) { uselocale(saved); }

static const char *seeding_name(wm_seeding s) { return s == WM_SEEDING_MINHASH ? "minhash" : "lefthash"; }

static double params_field(const wm_params *p, size_t offset)
{
    double d;
    memcpy(&d, (const char *)p + offset, sizeof d);
    return d;
}

/* The scheme's parameters from p, quantised and validated; every double
 * field of wm_params the scheme does not own must be 0. */
static wm_status check_params(const wm_params *p, const wm__scheme **scheme, double param[])
{
    const wm__scheme *sc = wm__scheme_find(p->scheme ? p->scheme : WM__DEFAULT_SCHEME);
    if (!sc) return WM_ERR_PARAM;
    if (p->context_width > WM_MAX_CONTEXT) return WM_ERR_PARAM;
    if (p->seeding != WM_SEEDING_LEFTHASH && p->seeding != WM_SEEDING_MINHASH) return WM_ERR_PARAM;
    if (p->seeding == WM_SEEDING_MINHASH && p->context_width == 0) return WM_ERR_PARAM;
#define WM__OWNED(f)                                                                          \
    {                                                                                        \
        int owned = 0;                                                                       \
        for (unsigned i = 0; i < sc->n_params; i++) owned |= sc->param[i].offset == offsetof(wm_params, f); \
        if (!owned && p->f != 0) return WM_ERR_PARAM;                                        \
    }
    WM__PARAM_FIELDS(WM__OWNED)
#undef WM__OWNED
    for (unsigned i = 0; i < sc->n_params; i++) {
        const wm__scheme_param *d = &sc->param[i];
        double v = params_field(p, d->offset);
        if (!isfinite(v)) return WM_ERR_PARAM;
        if (d->quantise) v = d->quantise(v);
        if (!d->valid(v)) return WM_ERR_PARAM;
        param[i] = v;
    }
    *scheme = sc;
    return WM_OK;
}

static wm_status key_alloc(wm_key **out, const wm_params *params)
{
    if (!out || !params || !WM__SIZED(params, wm_params)) return WM_ERR_ARG;
    *out = NULL;
    if (sodium_init() < 0) return WM_ERR_CRYPTO;
    const wm__scheme *sc;
    double param[WM__MAX_SCHEME_PARAMS];
    wm_status st = check_params(params, &sc, param);
    if (st) return st;
    wm_key *k = wm__secure_malloc(sizeof *k);
    if (!k) return WM_ERR_NOMEM;
    memset(k, 0, sizeof *k);
    k->scheme = sc;
    memcpy(k->param, param, sizeof param);
    k->h = params->context_width;
    k->seeding = params->seeding;
    k->format = 2;
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
    if (key) wm__secure_free(key); /* sodium_free wipes before unmapping */
}

wm_status wm_key_params(const wm_key *key, wm_params *out)
{
    if (!key || !out || !WM__SIZED(out, wm_params)) return WM_ERR_ARG;
    wm__params_of(key->scheme, key->param, key->seeding, key->h, out);
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

void wm__params_of(const wm__scheme *sc, const double *param, wm_seeding seeding, uint32_t h, wm_params *out)
{
    memset(out, 0, sizeof *out);
    out->size = sizeof *out;
    out->scheme = sc->name;
    out->seeding = seeding;
    out->context_width = h;
    for (unsigned i = 0; i < sc->n_params; i++) memcpy((char *)out + sc->param[i].offset, &param[i], sizeof(double));
}

/* Canonical text of every field but the magic line, id and secret: the
 * file's own lines in the key's format, whatever the caller's locale;
 * *len = its length. */
static wm_status canonical_params(const wm_key *k, char *buf, size_t size, int *len)
{
    char tok[140] = "", sch[300];
    if (k->n_vocab) {
        char hex[65];
        sodium_bin2hex(hex, sizeof hex, k->tok_sha, 32);
        snprintf(tok, sizeof tok, "vocab %u\ntokenizer %s\n", k->n_vocab, hex);
    }
    size_t off = 0;
    sch[0] = 0;
    locale_t saved;
    wm_status st = c_numeric_enter(&saved);
    if (st) return st;
    for (unsigned i = 0; i < k->scheme->n_params; i++)
        if (!(k->scheme->param[i].optional && k->param[i] == 0))
            off += (size_t)snprintf(sch + off, sizeof sch - off, "%s %.17g\n", k->scheme->param[i].name, k->param[i]);
    c_numeric_leave(saved);
    if (k->format == 1) /* kgw only: "scheme" named the seeding rule */
        *len = snprintf(buf, size, "scheme %s\ncontext-width %u\n%s%s", seeding_name(k->seeding), k->h, sch, tok);
    else
        *len = snprintf(buf, size, "scheme %s\nseeding %s\ncontext-width %u\n%s%s", k->scheme->name,
                        seeding_name(k->seeding), k->h, sch, tok);
    return WM_OK;
}

wm_status wm__compute_id(const wm_key *k, char out[WM_KEY_ID_SIZE])
{
    char text[512];
    unsigned char mac[8];
    int len;
    wm_status st = canonical_params(k, text, sizeof text, &len);
    if (st) return st;
    crypto_generichash(mac, sizeof mac, (const unsigned char *)text, (size_t)len, k->secret,
                       sizeof k->secret);
    sodium_bin2hex(out, WM_KEY_ID_SIZE, mac, sizeof mac);
    return WM_OK;
}

wm_status wm_key_id(const wm_key *key, char out[WM_KEY_ID_SIZE])
{
    if (!key || !out) return WM_ERR_ARG;
    return wm__compute_id(key, out);
}

wm_status wm_key_save(const wm_key *key, const char *path, wm_error *err)
{
    if (!key || !path) {
        seterr(err, "wm_key_save: %s is NULL", key ? "path" : "key");
        return WM_ERR_ARG;
    }
    char id[WM_KEY_ID_SIZE], params[512], hex[65];
    int plen;
    wm_status st = wm__compute_id(key, id);
    if (!st) st = canonical_params(key, params, sizeof params, &plen);
    if (st) { /* before the file exists: nothing to clean up */
        seterr(err, "%s: %s", path, C_LOCALE_FAILED);
        return st;
    }
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0) {
        int e = errno;
        seterr(err, "%s: %s", path, e == EEXIST ? "exists; refusing to overwrite a key" : strerror(e));
        return e == EEXIST ? WM_ERR_EXISTS : WM_ERR_IO;
    }
    /* Build the whole file in guarded memory, write once, wipe. */
    char *text = wm__secure_malloc(MAX_KEY_FILE);
    if (!text) {
        close(fd);
        unlink(path);
        seterr(err, "%s: out of memory for the key file's text", path);
        return WM_ERR_NOMEM;
    }
    sodium_bin2hex(hex, sizeof hex, key->secret, sizeof key->secret);
    int len = snprintf(text, MAX_KEY_FILE,
                       "# libwm watermark key.  SECRET: whoever reads it can forge and erase the watermark.\n"
                       KEY_MAGIC "%d\nid %s\n%ssecret %s\n", key->format, id, params, hex);
    sodium_memzero(hex, sizeof hex);
    ssize_t off = 0;
    int e = 0; /* the first failure's errno: later calls may overwrite errno */
    while (off < len) {
        ssize_t w = write(fd, text + off, (size_t)(len - off));
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) {
            e = w < 0 ? errno : EIO; /* a write of 0 bytes sets no errno */
            break;
        }
        off += w;
    }
    wm__secure_free(text);
    if (!e && fsync(fd) != 0) e = errno;
    if (close(fd) != 0 && !e) e = errno;
    if (e) {
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

/* A finite number, alone, in the "C" locale's syntax whatever the
 * caller's: *ok = 1 and *out set; *ok = 0 for anything else.  An error
 * status only when the locale cannot be switched. */
static wm_status parse_double(const char *s, double *out, int *ok)
{
    locale_t saved;
    wm_status st = c_numeric_enter(&saved);
    if (st) return st;
    char *end;
    errno = 0;
    double d = strtod(s, &end);
    int e = errno;
    c_numeric_leave(saved);
    *ok = end != s && !*end && !e && isfinite(d);
    if (*ok) *out = d;
    return WM_OK;
}

static int parse_hex32(const char *s, unsigned char out[32])
{
    size_t len;
    const char *end;
    if (strlen(s) != 64) return 0;
    return sodium_hex2bin(out, 32, s, 64, NULL, &len, &end) == 0 && len == 32 && *end == 0;
}


/* ---- values, shared by the key-file reader and wm_params_set ------------ */

static int seeding_of(const char *v, wm_seeding *out)
{
    if (!strcmp(v, "lefthash")) *out = WM_SEEDING_LEFTHASH;
    else if (!strcmp(v, "minhash")) *out = WM_SEEDING_MINHASH;
    else return 0;
    return 1;
}

/* A scheme parameter's text: *ok = 1 and *out set when it is a number in
 * d's domain, as stored (`stored`: a key file holds quantised values) or
 * once quantised (a wm_params, quantised by wm_key_generate). */
static wm_status param_of(const wm__scheme_param *d, const char *v, int stored, double *out, int *ok)
{
    wm_status st = parse_double(v, out, ok);
    if (st == WM_OK && *ok) *ok = d->valid(stored || !d->quantise ? *out : d->quantise(*out));
    return st;
}

static wm_status parse_seeding(parser *ps, const char *field, const char *v, wm_key *k)
{
    if (!seeding_of(v, &k->seeding)) return perr(ps, "%s: expected lefthash or minhash", field);
    return WM_OK;
}

/* "scheme" (format 2), or format 1's "scheme" that named the seeding. */
static wm_status parse_scheme(parser *ps, wm_key *k)
{
    char v[160];
    wm_status st;
    if ((st = expect(ps, "scheme", v, sizeof v, 0, NULL))) return st;
    if (k->format == 1) {
        k->scheme = wm__scheme_find(WM__DEFAULT_SCHEME);
        return parse_seeding(ps, "scheme", v, k);
    }
    if (!(k->scheme = wm__scheme_find(v))) {
        char names[200] = "";
        for (size_t i = 0; wm_scheme_name(i); i++)
            snprintf(names + strlen(names), sizeof names - strlen(names), "%s%s", i ? ", " : "", wm_scheme_name(i));
        seterr(ps->err, "%s:%u: scheme: '%.60s' is not one this libwm implements (%s)", ps->name, ps->line, v, names);
        return WM_ERR_FORMAT;
    }
    if ((st = expect(ps, "seeding", v, sizeof v, 0, NULL))) return st;
    return parse_seeding(ps, "seeding", v, k);
}

static wm_status parse_body(parser *ps, wm_key *k, char *id_out)
{
    char v[160];
    const char *s, *e;
    wm_status st;
    size_t ml = strlen(KEY_MAGIC);
    if (!next_line(ps, &s, &e) || (size_t)(e - s) != ml + 1 || memcmp(s, KEY_MAGIC, ml) != 0 ||
        (s[ml] != '1' && s[ml] != '2'))
        return perr(ps, "%s", "not a libwm key file (expected 'libwm-key 2' or 'libwm-key 1')");
    k->format = s[ml] - '0';
    if ((st = expect(ps, "id", v, sizeof v, 0, NULL))) return st;
    if (strlen(v) != 16 || strspn(v, "0123456789abcdef") != 16)
        return perr(ps, "%s", "id: expected 16 lowercase hex digits");
    memcpy(id_out, v, WM_KEY_ID_SIZE);
    if ((st = parse_scheme(ps, k))) return st;
    if ((st = expect(ps, "context-width", v, sizeof v, 0, NULL))) return st;
    if (!parse_u32(v, WM_MAX_CONTEXT, &k->h)) return perr(ps, "context-width: '%s' is not an integer 0..16", v);
    for (unsigned i = 0; i < k->scheme->n_params; i++) {
        const wm__scheme_param *d = &k->scheme->param[i];
        int present;
        if ((st = expect(ps, d->name, v, sizeof v, d->optional, &present))) return st;
        if (!present) continue; /* an optional parameter left out is 0 */
        int ok;
        if ((st = param_of(d, v, 1, &k->param[i], &ok))) {
            seterr(ps->err, "%s:%u: %s: %s", ps->name, ps->line, d->name, C_LOCALE_FAILED);
            return st;
        }
        if (!ok || (d->optional && k->param[i] == 0)) {
            seterr(ps->err, "%s:%u: %s: '%.60s' is not %s", ps->name, ps->line, d->name, v, d->domain);
            return WM_ERR_FORMAT;
        }
    }
    if (k->seeding == WM_SEEDING_MINHASH && k->h == 0)
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
    name = name ? name : "<key>";
    if (out) *out = NULL;
    if (!out || (!buf && len)) {
        seterr(err, "%s: %s", name, out ? "NULL text with a length > 0" : "NULL out");
        return WM_ERR_ARG;
    }
    if (sodium_init() < 0) {
        seterr(err, "%s: %s", name, wm_strerror(WM_ERR_CRYPTO));
        return WM_ERR_CRYPTO;
    }
    wm_key *k = wm__secure_malloc(sizeof *k);
    if (!k) {
        seterr(err, "%s: out of memory for the key", name);
        return WM_ERR_NOMEM;
    }
    memset(k, 0, sizeof *k);
    parser ps = { buf, buf + len, name, 0, err };
    char id_file[WM_KEY_ID_SIZE], id_real[WM_KEY_ID_SIZE];
    wm_status st = parse_body(&ps, k, id_file);
    if (st == WM_OK && (st = wm__compute_id(k, id_real)))
        seterr(err, "%s: %s", ps.name, C_LOCALE_FAILED);
    if (st == WM_OK) {
        if (sodium_memcmp(id_file, id_real, 16) != 0) {
            seterr(err, "%s: key id does not match the file's contents (corrupt or edited)", ps.name);
            st = WM_ERR_CORRUPT;
        }
    }
    if (st) {
        wm__secure_free(k);
        return st;
    }
    *out = k;
    return WM_OK;
}

wm_status wm_key_load(wm_key **out, const char *path, wm_error *err)
{
    if (out) *out = NULL; /* on every failure, as the header says */
    if (!out || !path) {
        seterr(err, "wm_key_load: %s is NULL", out ? "path" : "out");
        return WM_ERR_ARG;
    }
    if (sodium_init() < 0) {
        seterr(err, "%s: %s", path, wm_strerror(WM_ERR_CRYPTO));
        return WM_ERR_CRYPTO;
    }
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        seterr(err, "%s: %s", path, strerror(errno));
        return WM_ERR_IO;
    }
    struct stat sb;
    if (fstat(fd, &sb) != 0) {
        seterr(err, "%s: %s", path, strerror(errno));
        close(fd);
        return WM_ERR_IO;
    }
    if (!S_ISREG(sb.st_mode)) {
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
    char *buf = wm__secure_malloc(MAX_KEY_FILE);
    if (!buf) {
        close(fd);
        seterr(err, "%s: out of memory for the key file's text", path);
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
    wm__secure_free(buf);
    return st;
}

/* ---- parameters by name ---------------------------------------------------- */

wm_status wm_params_init_sized(wm_params *p, size_t size, const char *scheme)
{
    if (!p || size != sizeof(wm_params)) return WM_ERR_ARG; /* one layout so far */
    const wm__scheme *sc = wm__scheme_find(scheme ? scheme : WM__DEFAULT_SCHEME);
    if (!sc) return WM_ERR_PARAM;
    double dflt[WM__MAX_SCHEME_PARAMS];
    for (unsigned i = 0; i < sc->n_params; i++) dflt[i] = sc->param[i].dflt;
    wm__params_of(sc, dflt, WM_SEEDING_LEFTHASH, sc->default_h, p);
    return WM_OK;
}

/* The parameter of p's scheme called name, NULL if it has none. */
static const wm__scheme_param *scheme_param(const wm_params *p, const char *name)
{
    const wm__scheme *sc = wm__scheme_find(p->scheme ? p->scheme : WM__DEFAULT_SCHEME);
    for (unsigned i = 0; sc && i < sc->n_params; i++)
        if (!strcmp(sc->param[i].name, name)) return &sc->param[i];
    return NULL;
}

/* Is name one of any scheme's parameters (so that naming it for another
 * scheme is a bad value for p, not an unknown name)? */
static int any_scheme_param(const char *name)
{
    for (size_t i = 0; wm_scheme_name(i); i++) {
        const wm__scheme *sc = wm__scheme_find(wm_scheme_name(i));
        for (unsigned j = 0; j < sc->n_params; j++)
            if (!strcmp(sc->param[j].name, name)) return 1;
    }
    return 0;
}

wm_status wm_params_set(wm_params *p, const char *name, const char *value)
{
    if (!p || !name || !value || !WM__SIZED(p, wm_params)) return WM_ERR_ARG;
    if (!strcmp(name, "scheme")) {
        const wm__scheme *sc = wm__scheme_find(value);
        if (!sc) return WM_ERR_PARAM;
        p->scheme = sc->name; /* static: the caller's string need not outlive p */
        return WM_OK;
    }
    if (!strcmp(name, "seeding")) return seeding_of(value, &p->seeding) ? WM_OK : WM_ERR_PARAM;
    if (!strcmp(name, "context-width")) return parse_u32(value, WM_MAX_CONTEXT, &p->context_width) ? WM_OK : WM_ERR_PARAM;
    const wm__scheme_param *d = scheme_param(p, name);
    if (!d) return any_scheme_param(name) ? WM_ERR_PARAM : WM_ERR_ARG;
    double v;
    int ok;
    wm_status st = param_of(d, value, 0, &v, &ok);
    if (st) return st;
    if (!ok) return WM_ERR_PARAM;
    memcpy((char *)p + d->offset, &v, sizeof v);
    return WM_OK;
}
