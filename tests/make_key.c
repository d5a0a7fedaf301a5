/* Test helper: a key file from a fixed seed, so test runs are reproducible.
 * (Real keys come from `wm keygen`, which draws the secret from libsodium.)
 *
 *   make_key SEED_BYTE TOKENIZER.json OUT.wmkey */
#include <stdio.h>
#include <stdlib.h>

#include <wm.h>

/* A failed call is a broken benchmark or helper, never a number. */
static void must(wm_status st, const char *what)
{
    if (st) {
        fprintf(stderr, "%s: %s\n", what, wm_strerror(st));
        exit(2);
    }
}

int main(int argc, char **argv)
{
    if (argc != 4) return fprintf(stderr, "usage: make_key SEED_BYTE TOKENIZER.json OUT\n"), 2;
    unsigned char seed[32], sha[32];
    for (int i = 0; i < 32; i++) seed[i] = (unsigned char)(atoi(argv[1]) + 7 * i);
    wm_params p = WM_INIT(wm_params);
    must(wm_params_init(&p, "kgw"), "wm_params_init");
    wm_key *k;
    wm_tokenizer *t;
    wm_error err;
    if (wm_tokenizer_load(&t, argv[2], &err) || wm_key_from_seed(&k, &p, seed))
        return fprintf(stderr, "make_key: %s\n", err.message), 2;
    uint32_t nv;
    must(wm_tokenizer_sha256(t, sha), "wm_tokenizer_sha256");
    must(wm_tokenizer_n_vocab(t, &nv), "wm_tokenizer_n_vocab");
    must(wm_key_set_tokenizer(k, nv, sha), "wm_key_set_tokenizer");
    wm_status st = wm_key_save(k, argv[3], &err);
    wm_key_free(k);
    wm_tokenizer_free(t);
    return st ? (fprintf(stderr, "make_key: %s\n", err.message), 2) : 0;
}
