/* Key files: round trip, permissions, no overwrite, strict parsing. */
#include "testutil.h"

#include <fcntl.h>
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
    wm_params p = { "kgw", WM_SEEDING_MINHASH, 3, 0.125, 1.5, 0.0 };
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
    wm_params q;
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
    wm_params p = WM_PARAMS_DEFAULT;
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
    wm_params p = WM_PARAMS_DEFAULT;
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
    wm_params p = WM_PARAMS_GUMBEL_DEFAULT;
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
    wm_params q;
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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_permissions_and_io),
        cmocka_unit_test(test_corrupt_files),
        cmocka_unit_test(test_gumbel_and_v1_files),
    };
    return cmocka_run_group_tests_name("key", tests, setup, teardown);
}
