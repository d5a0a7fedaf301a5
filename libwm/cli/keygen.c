/* wm keygen: a fresh secret key file (0600, never overwritten). */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"

static const char usage_keygen[] =
    "usage: wm keygen [--scheme kgw|gumbel] [--gamma G] [--delta D] [--account-delta A]\n"
    "                 [--context-width H] [--seeding lefthash|minhash]\n"
    "                 [--tokenizer TOKENIZER.json] -o KEYFILE\n"
    "\n"
    "Creates KEYFILE (mode 0600; never overwrites) with a fresh 256-bit secret.\n"
    "  --scheme S         kgw: green list, biases logits (default); gumbel: Gumbel-max,\n"
    "                     distortion-free, selects the token (which to pick:\n"
    "                     docs/DESIGN.md#which-scheme-and-which-parameters)\n"
    "  --gamma G          kgw: green fraction, stored as k/65536 (default 0.25)\n"
    "  --delta D          kgw: logit bias, 1/1024..64 (default 2)\n"
    "  --account-delta A  kgw: the account layer's bias, 1/1024..64 (default: no account\n"
    "                     layer): servers then embed each request's account, and\n"
    "                     `wm detect --accounts` names the accounts a corpus came from\n"
    "  --context-width H  tokens of context, 0..16 (default: kgw 1, gumbel 4)\n"
    "  --seeding R        lefthash (default) or minhash (needs H >= 1)\n"
    "  --tokenizer FILE   bind the key to this tokenizer (vocabulary size and SHA-256):\n"
    "                     detect then refuses another one unless --any-tokenizer\n";


/* The options that are key-file parameters, by the names wm_params_set
 * takes (the key file's), and what each expects, for messages. */
static const struct { int opt; const char *name, *expects; } params_opts[] = {
    { O_SEEDING, "seeding", "lefthash or minhash" },
    { O_CTX, "context-width", "0..16" },
    { O_GAMMA, "gamma", "a number in (0, 1)" },
    { O_DELTA, "delta", "a number in [1/1024, 64] (smaller biases vanish in float rounding)" },
    { O_ACCOUNT_DELTA, "account-delta", "a number in [1/1024, 64]" },
};
#define N_PARAM_OPTS (sizeof params_opts / sizeof params_opts[0])

/* p = the scheme's defaults with the options given (val[i] for
 * params_opts[i], NULL when absent), checked by the key-file rules. */
static int keygen_params(wm_params *p, const char *scheme, const char *const val[N_PARAM_OPTS])
{
    if (wm_params_init(p, scheme) != WM_OK) {
        char names[256] = "";
        for (size_t i = 0; wm_scheme_name(i); i++)
            snprintf(names + strlen(names), sizeof names - strlen(names), "%s%s", i ? ", " : "", wm_scheme_name(i));
        return die("keygen: --scheme '%s': expected one of %s", scheme, names);
    }
    for (size_t i = 0; i < N_PARAM_OPTS; i++) {
        if (!val[i]) continue;
        wm_status st = wm_params_set(p, params_opts[i].name, val[i]);
        unsigned caps = 0;
        if (st == WM_ERR_PARAM && i >= 2 && wm_scheme_caps(scheme, &caps) == WM_OK && !(caps & WM_CAP_GREEN_LIST))
            return die("keygen: --gamma, --delta and --account-delta are green-list parameters; %s has none", scheme);
        /* 0 is "no account layer" to the library; asked for, it is a mistake */
        if (st == WM_OK && params_opts[i].opt == O_ACCOUNT_DELTA && p->account_delta == 0) st = WM_ERR_PARAM;
        if (st == WM_ERR_PARAM)
            return die("keygen: --%s '%s': expected %s", params_opts[i].name, val[i], params_opts[i].expects);
        if (st) return die("keygen: --%s: %s", params_opts[i].name, wm_strerror(st));
    }
    return 0;
}

int cmd_keygen(int argc, char **argv)
{
    static const struct option opts[] = {
        { "gamma", required_argument, 0, O_GAMMA }, { "delta", required_argument, 0, O_DELTA },
        { "account-delta", required_argument, 0, O_ACCOUNT_DELTA },
        { "context-width", required_argument, 0, O_CTX }, { "scheme", required_argument, 0, O_SCHEME },
        { "seeding", required_argument, 0, O_SEEDING },
        { "tokenizer", required_argument, 0, O_TOKENIZER }, { "output", required_argument, 0, 'o' },
        { "help", no_argument, 0, O_HELP }, { 0, 0, 0, 0 } };
    const char *out = NULL, *tok_path = NULL, *scheme = "kgw", *val[N_PARAM_OPTS] = { 0 };
    int c;
    while ((c = getopt_long(argc, argv, "o:", opts, NULL)) != -1) {
        for (size_t i = 0; i < N_PARAM_OPTS; i++)
            if (c == params_opts[i].opt) val[i] = optarg;
        switch (c) {
        case O_GAMMA: case O_DELTA: case O_ACCOUNT_DELTA: case O_CTX: case O_SEEDING: break;
        case O_SCHEME: scheme = optarg; break;
        case O_TOKENIZER: tok_path = optarg; break;
        case 'o': out = optarg; break;
        case O_HELP: fputs(usage_keygen, stdout); return 0;
        default: return usage_error("keygen");
        }
    }
    if (!out) return die("keygen: -o KEYFILE is required (usage: see `wm keygen --help`)");
    if (optind != argc) return usage_error("keygen");
    wm_params p;
    int rc = keygen_params(&p, scheme, val);
    if (rc) return rc;
    wm_key *key;
    wm_error err = { "" };
    wm_status st = wm_key_generate(&key, &p);
    if (st == WM_ERR_PARAM && p.seeding == WM_SEEDING_MINHASH && p.context_width == 0)
        return die("keygen: --seeding minhash needs --context-width 1 or more");
    if (st) return die("keygen: %s", wm_strerror(st));
    if (tok_path) {
        wm_tokenizer *tok;
        if ((st = wm_tokenizer_load(&tok, tok_path, &err))) {
            wm_key_free(key);
            return die("%s", status_text(st, &err));
        }
        unsigned char sha[32];
        uint32_t nv;
        if (!(st = wm_tokenizer_sha256(tok, sha)) && !(st = wm_tokenizer_n_vocab(tok, &nv)))
            st = wm_key_set_tokenizer(key, nv, sha);
        wm_tokenizer_free(tok);
        if (st) {
            wm_key_free(key);
            return die("keygen: %s", wm_strerror(st));
        }
    }
    st = wm_key_save(key, out, &err);
    char id[WM_KEY_ID_SIZE] = "";
    if (!st) st = wm_key_id(key, id);
    wm_key_free(key);
    if (st) return die("%s", status_text(st, &err));
    fprintf(stderr, "wm: wrote %s (key id %s, mode 0600); keep it secret\n", out, id);
    return 0;
}
