/* Key files: round trip, permissions, no overwrite, strict parsing. */
#include "testutil.h"

#include <fcntl.h>
#include <locale.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

static char dir[256];

static int setup(void **state)
{
    (void)state;
    snprintf(dir, sizeof dir, "/tmp/wm-test-key-XXXXXX");
    return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    return system(cmd) == 0 ? 0 : -1;
}

static char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    static char buf[8192];
    *len = fread(buf, 1, sizeof buf - 1, f);
    buf[*len] = 0;
    fclose(f);
    return buf;
}

static void test_round_trip(void **state)
{
    (void)state;
    char path[300];
    snprintf(path, sizeof path, "%s/a.wmkey", dir);
    wm_params p = { .size = sizeof(wm_params), .scheme = "kgw", .seeding = WM_SEEDING_MINHASH, .context_width = 3, .gamma = 0.125, .delta = 1.5, .account_delta = 0.0 };
    wm_key *k, *k2;
    wm_error err;
    assert_int_equal(wm_key_generate(&k, &p), WM_OK);
    unsigned char sha[32];
    memset(sha, 0xab, 32);
    assert_int_equal(wm_key_set_tokenizer(k, 50257, sha), WM_OK);
    assert_int_equal(wm_key_save(k, path, &err), WM_OK);
    struct stat sb;
    assert_int_equal(stat(path, &sb), 0);
    assert_int_equal(sb.st_mode & 0777, 0600);
    assert_int_equal(wm_key_load(&k2, path, &err), WM_OK);
    char id1[WM_KEY_ID_SIZE], id2[WM_KEY_ID_SIZE];
    assert_int_equal(wm_key_id(k, id1), WM_OK);
    assert_int_equal(wm_key_id(k2, id2), WM_OK);
    assert_string_equal(id1, id2);
    wm_params q = WM_INIT(wm_params);
    assert_int_equal(wm_key_params(k2, &q), WM_OK);
    assert_true(q.gamma == 0.125 && q.delta == 1.5 && q.context_width == 3 &&
                q.seeding == WM_SEEDING_MINHASH && !strcmp(q.scheme, "kgw"));
    uint32_t nv;
    unsigned char sha2[32];
    assert_int_equal(wm_key_tokenizer(k2, &nv, sha2), WM_OK);
    assert_int_equal(nv, 50257);
    assert_memory_equal(sha, sha2, 32);
    /* Same green lists from the loaded key; a different vocabulary is refused. */
    wm_watermark *a, *b, *c;
    assert_int_equal(wm_watermark_new(&a, k, 50257), WM_OK);
    assert_int_equal(wm_watermark_new(&b, k2, 50257), WM_OK);
    assert_int_equal(wm_watermark_new(&c, k2, 50258), WM_ERR_SIZE);
    wm_token ctx[3] = { 1, 2, 3 };
    for (wm_token v = 0; v < 50257; v += 7) {
        bool ga, gb;
        assert_int_equal(wm_is_green(a, ctx, 3, v, &ga), WM_OK);
        assert_int_equal(wm_is_green(b, ctx, 3, v, &gb), WM_OK);
        assert_int_equal(ga, gb);
    }
    /* The secret is in the file, the id is public, and two keys differ. */
    size_t len;
    const char *text = slurp(path, &len);
    assert_non_null(strstr(text, id1));
    wm_key *k3;
    assert_int_equal(wm_key_generate(&k3, &p), WM_OK);
    char id3[WM_KEY_ID_SIZE];
    assert_int_equal(wm_key_id(k3, id3), WM_OK);
    assert_string_not_equal(id1, id3);
    wm_key_free(k3);
    /* Never overwritten. */
    assert_int_equal(wm_key_save(k2, path, &err), WM_ERR_EXISTS);
    assert_non_null(strstr(err.message, "refusing"));
    size_t len2;
    assert_int_equal(len, (slurp(path, &len2), len2));
    wm_watermark_free(a);
    wm_watermark_free(b);
    wm_key_free(k);
    wm_key_free(k2);
}

static void test_permissions_and_io(void **state)
{
    (void)state;
    char path[300];
    snprintf(path, sizeof path, "%s/b.wmkey", dir);
    wm_params p = WM_INIT(wm_params);
    assert_int_equal(wm_params_init(&p, "kgw"), WM_OK);
    wm_key *k;
    wm_error err;
    assert_int_equal(wm_key_generate(&k, &p), WM_OK);
    assert_int_equal(wm_key_save(k, path, &err), WM_OK);
    wm_key_free(k);
    chmod(path, 0644);
    k = (wm_key *)1;
    assert_int_equal(wm_key_load(&k, path, &err), WM_ERR_PERM);
    assert_null(k);
    assert_non_null(strstr(err.message, "b.wmkey"));
    assert_non_null(strstr(err.message, "644"));
    assert_int_equal(wm_key_load(&k, "/nonexistent/x.wmkey", &err), WM_ERR_IO);
    assert_non_null(strstr(err.message, "/nonexistent/x.wmkey"));
    assert_int_equal(wm_key_load(&k, dir, &err), WM_ERR_IO); /* a directory */
    snprintf(path, sizeof path, "%s/nodir/c.wmkey", dir);
    assert_int_equal(wm_key_generate(&k, &p), WM_OK);
    assert_int_equal(wm_key_save(k, path, &err), WM_ERR_IO);
    wm_key_free(k);
}

static const char *valid_key(void)
{
    static char text[1024];
    wm_params p = WM_INIT(wm_params);
    assert_int_equal(wm_params_init(&p, "kgw"), WM_OK);
    wm_key *k;
    unsigned char seed[32] = { 9 };
    assert_int_equal(wm_key_from_seed(&k, &p, seed), WM_OK);
    char path[300];
    snprintf(path, sizeof path, "%s/v%d.wmkey", dir, rand());
    wm_error err;
    assert_int_equal(wm_key_save(k, path, &err), WM_OK);
    wm_key_free(k);
    size_t len;
    strcpy(text, slurp(path, &len));
    return text;
}

static wm_status parse(const char *text, wm_error *err)
{
    wm_key *k = NULL;
    wm_status st = wm__key_parse(&k, text, strlen(text), "t.wmkey", err);
    if (st == WM_OK) assert_non_null(k);
    else assert_null(k);
    wm_key_free(k);
    return st;
}

static char *replace(const char *text, const char *from, const char *to)
{
    static char out[1024];
    const char *at = strstr(text, from);
    assert_non_null(at);
    snprintf(out, sizeof out, "%.*s%s%s", (int)(at - text), text, to, at + strlen(from));
    return out;
}

static void test_corrupt_files(void **state)
{
    (void)state;
    const char *ok = valid_key();
    wm_error err;
    assert_int_equal(parse(ok, &err), WM_OK);
    /* CRLF line ends are accepted. */
    char crlf[2048], *o = crlf;
    for (const char *s = ok; *s; s++) {
        if (*s == '\n') *o++ = '\r';
        *o++ = *s;
    }
    *o = 0;
    assert_int_equal(parse(crlf, &err), WM_OK);
    /* Every truncation fails (only the final newline may go). */
    size_t len = strlen(ok);
    for (size_t cut = 0; cut + 1 < len; cut++) {
        char buf[1024];
        memcpy(buf, ok, cut);
        buf[cut] = 0;
        wm_status st = parse(buf, &err);
        assert_true(st == WM_ERR_FORMAT || st == WM_ERR_CORRUPT);
    }
    struct { const char *from, *to; wm_status st; const char *msg; } cases[] = {
        { "libwm-key 2", "libwm-key 3", WM_ERR_FORMAT, "t.wmkey:2: not a libwm key file" },
        { "scheme kgw", "scheme nosuch", WM_ERR_FORMAT, "t.wmkey:4: scheme: 'nosuch' is not one this libwm implements (kgw, gumbel)" },
        { "scheme kgw", "scheme lefthash", WM_ERR_FORMAT, "t.wmkey:4: scheme" }, /* format 1's meaning in a format 2 file */
        { "scheme kgw", "scheme gumbel", WM_ERR_FORMAT, "t.wmkey:7: expected field 'secret'" }, /* gumbel has no gamma */
        { "seeding lefthash", "seeding righthash", WM_ERR_FORMAT, "t.wmkey:5: seeding" },
        { "gamma 0.25", "gamma 0.3", WM_ERR_FORMAT, "t.wmkey:7: gamma" },
        { "gamma 0.25", "gamma 0.5", WM_ERR_CORRUPT, "does not match" },
        { "delta 2", "delta 3", WM_ERR_CORRUPT, "does not match" },
        { "delta 2", "delta inf", WM_ERR_FORMAT, "t.wmkey:8: delta" },
        { "delta 2", "delta -2", WM_ERR_FORMAT, "t.wmkey:8: delta" },
        { "context-width 1", "context-width 17", WM_ERR_FORMAT, "t.wmkey:6: context-width" },
        { "context-width 1", "context-width 01", WM_ERR_FORMAT, "context-width" },
        { "context-width 1", "context-width 1\nextra 1", WM_ERR_FORMAT, "t.wmkey:7: expected field 'gamma'" },
        { "secret ", "secret 0", WM_ERR_FORMAT, "t.wmkey:9: secret" },
        { "secret ", "vocab 5\nsecret ", WM_ERR_FORMAT, "t.wmkey:10: expected field 'tokenizer'" },
        { "id ", "id x", WM_ERR_FORMAT, "t.wmkey:3: id" },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        memset(err.message, 0, sizeof err.message);
        assert_int_equal(parse(replace(ok, cases[i].from, cases[i].to), &err), cases[i].st);
        if (!strstr(err.message, cases[i].msg)) {
            print_error("case %zu: message '%s' lacks '%s'\n", i, err.message, cases[i].msg);
            fail();
        }
    }
    /* One flipped secret digit: caught by the id. */
    char flipped[1024];
    strcpy(flipped, ok);
    char *sec = strstr(flipped, "secret ") + 7;
    sec[5] = sec[5] == '0' ? '1' : '0';
    assert_int_equal(parse(flipped, &err), WM_ERR_CORRUPT);
    /* Trailing garbage, embedded NUL, binary junk. */
    char more[1100];
    snprintf(more, sizeof more, "%sjunk\n", ok);
    assert_int_equal(parse(more, &err), WM_ERR_FORMAT);
    wm_key *k = NULL;
    char nul[1024];
    memcpy(nul, ok, len);
    nul[strstr(ok, "gamma") - ok + 7] = 0;
    assert_int_not_equal(wm__key_parse(&k, nul, len, "t", &err), WM_OK);
    assert_int_equal(wm__key_parse(&k, "\xff\xfe\x00\x01", 4, "t", &err), WM_ERR_FORMAT);
    assert_int_equal(wm__key_parse(&k, "", 0, "t", &err), WM_ERR_FORMAT);
}

/* A gumbel key: format 2 with no scheme parameters, round trip; a format-1
 * file stays format 1 (and keeps its id) when saved again. */
static void test_gumbel_and_v1_files(void **state)
{
    (void)state;
    wm_params p = WM_INIT(wm_params);
    assert_int_equal(wm_params_init(&p, "gumbel"), WM_OK);
    wm_key *k, *k2;
    wm_error err;
    assert_int_equal(wm_key_generate(&k, &p), WM_OK);
    char path[300];
    snprintf(path, sizeof path, "%s/g.wmkey", dir);
    assert_int_equal(wm_key_save(k, path, &err), WM_OK);
    size_t len;
    const char *text = slurp(path, &len);
    assert_non_null(strstr(text, "\nlibwm-key 2\n"));
    assert_non_null(strstr(text, "\nscheme gumbel\nseeding lefthash\ncontext-width 4\nsecret "));
    assert_int_equal(wm_key_load(&k2, path, &err), WM_OK);
    wm_params q = WM_INIT(wm_params);
    assert_int_equal(wm_key_params(k2, &q), WM_OK);
    assert_true(!strcmp(q.scheme, "gumbel") && q.context_width == 4 && q.gamma == 0 && q.delta == 0);
    char a[WM_KEY_ID_SIZE], b[WM_KEY_ID_SIZE];
    assert_int_equal(wm_key_id(k, a), WM_OK);
    assert_int_equal(wm_key_id(k2, b), WM_OK);
    assert_string_equal(a, b);
    wm_key_free(k);
    wm_key_free(k2);
    /* The libwm 0.1 test vector of tests/test_prf.c, saved again. */
    static const char v1[] = "libwm-key 1\nid e6924ca3962156b1\nscheme lefthash\ncontext-width 1\ngamma 0.25\n"
                             "delta 2\nsecret 000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f\n";
    assert_int_equal(wm__key_parse(&k, v1, strlen(v1), "v1", &err), WM_OK);
    snprintf(path, sizeof path, "%s/v1.wmkey", dir);
    assert_int_equal(wm_key_save(k, path, &err), WM_OK);
    text = slurp(path, &len);
    assert_non_null(strstr(text, "\nlibwm-key 1\nid e6924ca3962156b1\nscheme lefthash\ncontext-width 1\n"));
    wm_key_free(k);
    assert_int_equal(wm_key_load(&k, path, &err), WM_OK);
    assert_int_equal(wm_key_id(k, a), WM_OK);
    assert_string_equal(a, "e6924ca3962156b1");
    wm_key_free(k);
}


/* ---- locale independence ---------------------------------------------------
 *
 * A program that calls setlocale(LC_ALL, "") under a locale with a decimal
 * comma must write and read the same key files as any other: the same bytes,
 * the same id.  de_DE.UTF-8 has to be installed; its absence is a failure,
 * not a skip, or the suite would pass without testing anything. */

#define DE_LOCALE "de_DE.UTF-8"

static void use_de_locale(void)
{
    if (!setlocale(LC_ALL, DE_LOCALE))
        fail_msg("locale %s is not installed, so key files cannot be tested under a decimal comma; generate it "
                 "(as root): sed -i 's/^# *de_DE.UTF-8/de_DE.UTF-8/' /etc/locale.gen && locale-gen "
                 "(scripts/test.sh does this)", DE_LOCALE);
    char probe[16];
    snprintf(probe, sizeof probe, "%.2f", 0.25);
    assert_string_equal(probe, "0,25"); /* else the test below proves nothing */
}

static int restore_c_locale(void **state)
{
    (void)state;
    return setlocale(LC_ALL, "C") ? 0 : -1;
}

/* Save under `locale` ("C" or DE_LOCALE) into dir/<name>; the file's bytes
 * into text (NUL-terminated). */
static void save_under(const wm_key *k, const char *locale, const char *name, char *text, size_t size)
{
    if (strcmp(locale, "C") == 0) assert_non_null(setlocale(LC_ALL, "C"));
    else use_de_locale();
    char path[300];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    wm_error err;
    assert_int_equal(wm_key_save(k, path, &err), WM_OK);
    size_t len;
    const char *t = slurp(path, &len);
    assert_true(len < size);
    memcpy(text, t, len + 1);
}

static void load_under(const char *locale, const char *name, const char *want_id)
{
    if (strcmp(locale, "C") == 0) assert_non_null(setlocale(LC_ALL, "C"));
    else use_de_locale();
    char path[300], id[WM_KEY_ID_SIZE];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    wm_key *k;
    wm_error err;
    wm_status st = wm_key_load(&k, path, &err);
    if (st != WM_OK) fail_msg("loading %s under %s: %s", name, locale, err.message);
    assert_int_equal(wm_key_id(k, id), WM_OK);
    assert_string_equal(id, want_id);
    wm_watermark *wm;
    assert_int_equal(wm_watermark_new(&wm, k, 1000), WM_OK);
    assert_int_equal(wm_watermark_key_id(wm, id), WM_OK);
    assert_string_equal(id, want_id);
    wm_watermark_free(wm);
    wm_key_free(k);
}

static void test_locale_independent(void **state)
{
    (void)state;
    /* every kgw parameter fractional, so each is written with a decimal point */
    wm_params p = { .size = sizeof(wm_params), .scheme = "kgw", .seeding = WM_SEEDING_LEFTHASH, .context_width = 2, .gamma = 0.125, .delta = 1.5, .account_delta = 0.75 };
    unsigned char seed[32] = { 7 };
    wm_key *k;
    assert_int_equal(wm_key_from_seed(&k, &p, seed), WM_OK);
    char id_c[WM_KEY_ID_SIZE], id_de[WM_KEY_ID_SIZE];
    static char in_c[4096], in_de[4096];
    assert_non_null(setlocale(LC_ALL, "C"));
    assert_int_equal(wm_key_id(k, id_c), WM_OK);
    save_under(k, "C", "c.wmkey", in_c, sizeof in_c);
    save_under(k, DE_LOCALE, "de.wmkey", in_de, sizeof in_de);
    assert_int_equal(wm_key_id(k, id_de), WM_OK);
    assert_string_equal(id_c, id_de);
    assert_string_equal(in_c, in_de);
    assert_non_null(strstr(in_de, "\ngamma 0.125\ndelta 1.5\naccount-delta 0.75\n"));
    /* The library switched only for its own calls: the caller's locale is back. */
    char probe[16];
    snprintf(probe, sizeof probe, "%.1f", 1.5);
    assert_string_equal(probe, "1,5");
    /* Each file under the other locale, and under its own. */
    load_under(DE_LOCALE, "c.wmkey", id_c);
    load_under("C", "de.wmkey", id_c);
    load_under(DE_LOCALE, "de.wmkey", id_c);
    /* A thread with its own locale (uselocale) gets it back unchanged. */
    assert_non_null(setlocale(LC_ALL, "C"));
    locale_t de = newlocale(LC_ALL_MASK, DE_LOCALE, (locale_t)0);
    assert_true(de != (locale_t)0);
    locale_t before = uselocale(de);
    char path[300];
    snprintf(path, sizeof path, "%s/thread.wmkey", dir);
    wm_error err;
    assert_int_equal(wm_key_save(k, path, &err), WM_OK);
    assert_true(uselocale((locale_t)0) == de);
    size_t len;
    assert_string_equal(slurp(path, &len), in_c);
    wm_key *k2;
    assert_int_equal(wm_key_load(&k2, path, &err), WM_OK);
    assert_true(uselocale((locale_t)0) == de);
    assert_int_equal(wm_key_id(k2, id_de), WM_OK);
    assert_string_equal(id_de, id_c);
    uselocale(before);
    freelocale(de);
    wm_key_free(k2);
    wm_key_free(k);
}

/* ---- err on every failure ---------------------------------------------------
 *
 * Every call that takes a wm_error fills it on every failure (common.h):
 * each failure path that can be reached from a test (FAILS_WITH_MESSAGE,
 * testutil.h).  Allocation failures: tests/test_fault.c. */


static void test_err_on_every_failure(void **state)
{
    (void)state;
    wm_params p = WM_INIT(wm_params);
    assert_int_equal(wm_params_init(&p, "kgw"), WM_OK);
    unsigned char seed[32] = { 3 };
    wm_key *k, *k2 = (wm_key *)1;
    wm_error err;
    assert_int_equal(wm_key_from_seed(&k, &p, seed), WM_OK);
    char path[300], sub[300];
    snprintf(path, sizeof path, "%s/e.wmkey", dir);
    /* wm_key_save */
    FAILS_WITH_MESSAGE(WM_ERR_ARG, wm_key_save(NULL, path, &err));
    FAILS_WITH_MESSAGE(WM_ERR_ARG, wm_key_save(k, NULL, &err));
    snprintf(sub, sizeof sub, "%s/nodir/e.wmkey", dir);
    FAILS_WITH_MESSAGE(WM_ERR_IO, wm_key_save(k, sub, &err));
    assert_int_equal(wm_key_save(k, path, &err), WM_OK);
    FAILS_WITH_MESSAGE(WM_ERR_EXISTS, wm_key_save(k, path, &err));
    /* a write that fails half way (a file size limit): the message says
     * why, and no partial key is left */
    struct rlimit old, tiny = { 64, 64 };
    assert_int_equal(getrlimit(RLIMIT_FSIZE, &old), 0);
    tiny.rlim_max = old.rlim_max;
    void (*prev)(int) = signal(SIGXFSZ, SIG_IGN);
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &tiny), 0);
    snprintf(sub, sizeof sub, "%s/big.wmkey", dir);
    memset(&err, 0, sizeof err);
    wm_status st = wm_key_save(k, sub, &err);
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &old), 0);
    signal(SIGXFSZ, prev);
    assert_int_equal(st, WM_ERR_IO);
    if (!strstr(err.message, "write failed: File too large")) fail_msg("message: '%s'", err.message);
    assert_int_equal(access(sub, F_OK), -1);
    /* wm_key_load */
    FAILS_WITH_MESSAGE(WM_ERR_ARG, wm_key_load(NULL, path, &err));
    FAILS_WITH_MESSAGE(WM_ERR_ARG, wm_key_load(&k2, NULL, &err));
    assert_null(k2); /* out is reset even before path is looked at */
    snprintf(sub, sizeof sub, "%s/missing.wmkey", dir);
    FAILS_WITH_MESSAGE(WM_ERR_IO, wm_key_load(&k2, sub, &err));
    FAILS_WITH_MESSAGE(WM_ERR_IO, wm_key_load(&k2, dir, &err)); /* a directory */
    FAILS_WITH_MESSAGE(WM_ERR_IO, wm_key_load(&k2, "/dev/null", &err)); /* not a regular file */
    assert_int_equal(chmod(path, 0640), 0);
    FAILS_WITH_MESSAGE(WM_ERR_PERM, wm_key_load(&k2, path, &err));
    assert_int_equal(chmod(path, 0600), 0);
    /* malformed, corrupt and oversized files, through the file */
    const char *bodies[] = { "", "junk\n", "libwm-key 2\n", "libwm-key 2\nid 0123456789abcdef\n" };
    for (size_t i = 0; i < sizeof bodies / sizeof bodies[0]; i++) {
        snprintf(sub, sizeof sub, "%s/m%zu.wmkey", dir, i);
        int fd = open(sub, O_WRONLY | O_CREAT | O_EXCL, 0600);
        assert_true(fd >= 0);
        assert_int_equal(write(fd, bodies[i], strlen(bodies[i])), (ssize_t)strlen(bodies[i]));
        close(fd);
        FAILS_WITH_MESSAGE(WM_ERR_FORMAT, wm_key_load(&k2, sub, &err));
    }
    size_t len;
    char text[1024];
    strcpy(text, slurp(path, &len));
    char *sec = strstr(text, "secret ") + 7;
    sec[0] = sec[0] == '0' ? '1' : '0';
    snprintf(sub, sizeof sub, "%s/corrupt.wmkey", dir);
    int fd = open(sub, O_WRONLY | O_CREAT | O_EXCL, 0600);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, len), (ssize_t)len);
    close(fd);
    FAILS_WITH_MESSAGE(WM_ERR_CORRUPT, wm_key_load(&k2, sub, &err));
    snprintf(sub, sizeof sub, "%s/huge.wmkey", dir);
    fd = open(sub, O_WRONLY | O_CREAT | O_EXCL, 0600);
    assert_true(fd >= 0);
    char block[1024];
    memset(block, '#', sizeof block);
    for (int i = 0; i < 5; i++) assert_int_equal(write(fd, block, sizeof block), (ssize_t)sizeof block);
    close(fd);
    FAILS_WITH_MESSAGE(WM_ERR_FORMAT, wm_key_load(&k2, sub, &err));
    /* the parser on memory (also what the fuzzer drives) */
    FAILS_WITH_MESSAGE(WM_ERR_ARG, wm__key_parse(NULL, text, len, "t", &err));
    FAILS_WITH_MESSAGE(WM_ERR_ARG, wm__key_parse(&k2, NULL, 5, "t", &err));
    FAILS_WITH_MESSAGE(WM_ERR_ARG, wm__key_parse(&k2, NULL, 5, NULL, &err));
    FAILS_WITH_MESSAGE(WM_ERR_CORRUPT, wm__key_parse(&k2, text, len, NULL, &err));
    assert_null(k2);
    /* and NULL err is always allowed */
    assert_int_equal(wm_key_save(NULL, path, NULL), WM_ERR_ARG);
    assert_int_equal(wm_key_load(&k2, dir, NULL), WM_ERR_IO);
    assert_int_equal(wm__key_parse(&k2, "x", 1, "t", NULL), WM_ERR_FORMAT);
    wm_key_free(k);
}

/* wm_params_init and wm_params_set: the defaults, and parameters by the key
 * file's names under the key-file reader's rules. */
static void test_params_by_name(void **state)
{
    (void)state;
    wm_params p;
    assert_int_equal(wm_params_init_sized(NULL, sizeof(wm_params), "kgw"), WM_ERR_ARG);
    wm_params small; /* a caller's struct of another size is never written */
    memset(&small, 0xa5, sizeof small);
    assert_int_equal(wm_params_init_sized(&small, offsetof(wm_params, gamma), "kgw"), WM_ERR_ARG);
    assert_int_equal(wm_params_init_sized(&small, sizeof small + 8, "kgw"), WM_ERR_ARG);
    for (size_t i = 0; i < sizeof small; i++) assert_int_equal(((unsigned char *)&small)[i], 0xa5);
    assert_int_equal(wm_params_init(&p, "nosuch"), WM_ERR_PARAM);
    assert_int_equal(wm_params_init(&p, NULL), WM_OK);
    assert_true(p.size == sizeof p && !strcmp(p.scheme, "kgw") && p.seeding == WM_SEEDING_LEFTHASH);
    assert_true(p.context_width == 1 && p.gamma == 0.25 && p.delta == 2.0 && p.account_delta == 0);
    assert_int_equal(wm_params_init(&p, "gumbel"), WM_OK);
    assert_true(!strcmp(p.scheme, "gumbel") && p.context_width == 4 && p.gamma == 0 && p.delta == 0);
    assert_int_equal(wm_params_set(&p, "gamma", "0.25"), WM_ERR_PARAM); /* gumbel has none */
    char name[] = "kgw";
    assert_int_equal(wm_params_set(&p, "scheme", name), WM_OK);
    assert_true(p.scheme != name && !strcmp(p.scheme, "kgw")); /* static: name may go away */
    assert_int_equal(wm_params_init(&p, "kgw"), WM_OK);
    static const struct { const char *name, *value; wm_status want; } cases[] = {
        { "gamma", "0.125", WM_OK }, { "delta", "1.5", WM_OK }, { "account-delta", "0.75", WM_OK },
        { "context-width", "3", WM_OK }, { "seeding", "minhash", WM_OK },
        { "gamma", "0,5", WM_ERR_PARAM }, { "gamma", "1.5", WM_ERR_PARAM }, { "gamma", "0.25x", WM_ERR_PARAM },
        { "gamma", "nan", WM_ERR_PARAM }, { "delta", "1e-50", WM_ERR_PARAM }, { "delta", "", WM_ERR_PARAM },
        { "account-delta", "65", WM_ERR_PARAM }, { "context-width", "17", WM_ERR_PARAM },
        { "context-width", "-1", WM_ERR_PARAM }, { "context-width", "03", WM_ERR_PARAM },
        { "seeding", "MINHASH", WM_ERR_PARAM }, { "scheme", "KGW", WM_ERR_PARAM },
        { "context_width", "1", WM_ERR_ARG }, { "bogus", "1", WM_ERR_ARG },
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        wm_params before = p;
        wm_status st = wm_params_set(&p, cases[i].name, cases[i].value);
        if (st != cases[i].want) fail_msg("%s '%s': %d, want %d", cases[i].name, cases[i].value, st, cases[i].want);
        if (st && memcmp(&before, &p, sizeof p)) fail_msg("%s '%s' changed p on failure", cases[i].name, cases[i].value);
    }
    assert_true(p.gamma == 0.125 && p.delta == 1.5 && p.account_delta == 0.75 && p.context_width == 3 &&
                p.seeding == WM_SEEDING_MINHASH);
    assert_int_equal(wm_params_set(NULL, "gamma", "0.5"), WM_ERR_ARG);
    assert_int_equal(wm_params_set(&p, NULL, "0.5"), WM_ERR_ARG);
    assert_int_equal(wm_params_set(&p, "gamma", NULL), WM_ERR_ARG);
    /* what was set by name is what a key stores */
    wm_key *k;
    wm_params q = WM_INIT(wm_params);
    assert_int_equal(wm_key_generate(&k, &p), WM_OK);
    assert_int_equal(wm_key_params(k, &q), WM_OK);
    assert_true(q.gamma == 0.125 && q.delta == 1.5 && q.account_delta == 0.75 && q.context_width == 3);
    wm_key_free(k);
}

/* A versioned struct of a size the library does not know is refused before
 * anything is read or written (common.h, "Versioned structs"). */
static void test_struct_sizes(void **state)
{
    (void)state;
    /* i-th unknown size of T: none, one field fewer, one more */
#define BAD_SIZE(T, i) ((i) == 0 ? 0 : (i) == 1 ? sizeof(T) - 8 : sizeof(T) + 8)
    wm_params p;
    assert_int_equal(wm_params_init(&p, "kgw"), WM_OK);
    wm_key *k = NULL;
    wm_watermark *wm = test_wm(0.25, 1, WM_SEEDING_LEFTHASH, 100);
    wm_token t[30] = { 0 };
    for (size_t i = 0; i < 3; i++) {
        p.size = BAD_SIZE(wm_params, i);
        assert_int_equal(wm_key_generate(&k, &p), WM_ERR_ARG);
        assert_null(k);
        assert_int_equal(wm_params_set(&p, "gamma", "0.5"), WM_ERR_ARG);
        assert_int_equal(wm_watermark_params(wm, &p), WM_ERR_ARG);
        assert_true(p.gamma == 0.25); /* nothing written */
        wm_score s = { .size = BAD_SIZE(wm_score, i) };
        assert_int_equal(wm_detect(wm, t, 30, 0, 0, 0.5, &s), WM_ERR_ARG);
        assert_true(s.tokens == 0);
        wm_window w = { .size = BAD_SIZE(wm_window, i) };
        assert_int_equal(wm_detect_window(wm, t, 30, 0, 0, 0.5, &w), WM_ERR_ARG);
        wm_kernel_params kp = { .size = BAD_SIZE(wm_kernel_params, i) };
        assert_int_equal(wm_kernel_params_get(wm, &kp), WM_ERR_ARG);
        assert_true(kp.n_vocab == 0);
        wm_sampler_params sp = WM_SAMPLER_PARAMS_DEFAULT;
        sp.size = BAD_SIZE(wm_sampler_params, i);
        wm_sampler *smp = NULL;
        assert_int_equal(wm_sampler_new(&smp, wm, &sp), WM_ERR_ARG);
        assert_null(smp);
    }
    p.size = sizeof p;
    /* the outputs of a corpus: score, audit, attribution and its array */
    wm_corpus *c;
    assert_int_equal(wm_corpus_new(&c, wm, 0), WM_OK);
    wm_score s = { .size = 0 };
    wm_audit a = { .size = 0 };
    assert_int_equal(wm_corpus_score(c, 0.5, &s), WM_ERR_ARG);
    assert_int_equal(wm_corpus_audit(c, 0.5, 0.5, &a), WM_ERR_ARG);
    s.size = sizeof s;
    a.size = sizeof a;
    assert_int_equal(wm_corpus_score(c, 0.5, &s), WM_OK);
    assert_int_equal(wm_corpus_audit(c, 0.5, 0.5, &a), WM_OK);
    assert_true(a.fixed.size == sizeof a.fixed); /* a nested score: sized by the library */
    wm_corpus_free(c);
    wm_watermark_free(wm);
    wm_params ap;
    assert_int_equal(wm_params_init(&ap, "kgw"), WM_OK);
    ap.account_delta = 1.0;
    wm = test_wm_params(&ap, 100);
    assert_int_equal(wm_corpus_new(&c, wm, WM_ACCOUNTS), WM_OK);
    uint64_t ids[2] = { 1, 2 };
    wm_account_score top[2] = { { .size = 0 } };
    wm_attribution at = WM_INIT(wm_attribution);
    assert_int_equal(wm_corpus_attribute(c, ids, 2, 0.5, top, 2, &at), WM_ERR_ARG);
    top[0].size = sizeof top[0];
    at.size = 0;
    assert_int_equal(wm_corpus_attribute(c, ids, 2, 0.5, top, 2, &at), WM_ERR_ARG);
    at.size = sizeof at;
    assert_int_equal(wm_corpus_attribute(c, ids, 2, 0.5, top, 2, &at), WM_OK);
    assert_true(top[1].size == sizeof top[1]);
    wm_corpus_free(c);
    wm_watermark_free(wm);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_permissions_and_io),
        cmocka_unit_test(test_corrupt_files),
        cmocka_unit_test(test_gumbel_and_v1_files),
        cmocka_unit_test_teardown(test_locale_independent, restore_c_locale),
        cmocka_unit_test(test_err_on_every_failure),
        cmocka_unit_test(test_params_by_name),
        cmocka_unit_test(test_struct_sizes),
    };
    return cmocka_run_group_tests_name("key", tests, setup, teardown);
}
