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
    "                     distortion-free, selects the token (README: which to pick)\n"
    "  --gamma G          kgw: green fraction, stored as k/65536 (default 0.25)\n"
    "  --delta D          kgw: logit bias, 1/1024..64 (default 2)\n"
    "  --account-delta A  kgw: the account layer's bias, 1/1024..64 (default: no account\n"
    "                     layer): servers then embed each request's account, and\n"
    "                     `wm detect --accounts` names the accounts a corpus came from\n"
    "  --context-width H  tokens of context, 0..16 (default: kgw 1, gumbel 4)\n"
    "  --seeding R        lefthash (default) or minhash (needs H >= 1)\n"
    "  --tokenizer FILE   bind the key to this tokenizer (vocabulary size and SHA-256):\n"
    "                     detect then refuses another one unless --any-tokenizer\n";


int cmd_keygen(int argc, char **argv)
{
    static const struct option opts[] = {
        { "gamma", required_argument, 0, O_GAMMA }, { "delta", required_argument, 0, O_DELTA },
        { "account-delta", required_argument, 0, O_ACCOUNT_DELTA },
        { "context-width", required_argument, 0, O_CTX }, { "scheme", required_argument, 0, O_SCHEME },
        { "seeding", required_argument, 0, O_SEEDING },
        { "tokenizer", required_argument, 0, O_TOKENIZER }, { "output", required_argument, 0, 'o' },
        { "help", no_argument, 0, O_HELP }, { 0, 0, 0, 0 } };
    wm_params p = WM_PARAMS_DEFAULT;
    const char *out = NULL, *tok_path = NULL, *scheme = "kgw";
    long h = -1;
    int c, seeding = WM_SEEDING_LEFTHASH, kgw_opt = 0;
    while ((c = getopt_long(argc, argv, "o:", opts, NULL)) != -1) {
        switch (c) {
        case O_GAMMA:
            if (!parse_double(optarg, &p.gamma) || !(p.gamma > 0 && p.gamma < 1))
                return die("keygen: --gamma '%s': expected a number in (0, 1)", optarg);
            kgw_opt = 1;
            break;
        case O_DELTA:
            if (!parse_double(optarg, &p.delta) || !(p.delta >= WM_DELTA_MIN && p.delta <= 64))
                return die("keygen: --delta '%s': expected a number in [1/1024, 64] (smaller biases vanish "
                           "in float rounding)", optarg);
            kgw_opt = 1;
            break;
        case O_ACCOUNT_DELTA:
            if (!parse_double(optarg, &p.account_delta) || !(p.account_delta >= WM_DELTA_MIN && p.account_delta <= 64))
                return die("keygen: --account-delta '%s': expected a number in [1/1024, 64]", optarg);
            kgw_opt = 1;
            break;
        case O_CTX:
            if (!parse_int(optarg, 0, WM_MAX_CONTEXT, &h)) return die("keygen: --context-width '%s': expected 0..16", optarg);
            break;
        case O_SCHEME: scheme = optarg; break;
        case O_SEEDING:
            if (!strcmp(optarg, "lefthash")) seeding = WM_SEEDING_LEFTHASH;
            else if (!strcmp(optarg, "minhash")) seeding = WM_SEEDING_MINHASH;
            else return die("keygen: --seeding '%s': expected lefthash or minhash", optarg);
            break;
        case O_TOKENIZER: tok_path = optarg; break;
        case 'o': out = optarg; break;
        case O_HELP: fputs(usage_keygen, stdout); return 0;
        default: return usage_error("keygen");
        }
    }
    if (!out) return die("keygen: -o KEYFILE is required (usage: see `wm keygen --help`)");
    if (optind != argc) return usage_error("keygen");
    int known = 0;
    for (size_t i = 0; wm_scheme_name(i); i++) known |= !strcmp(wm_scheme_name(i), scheme);
    if (!known) {
        char names[256] = "";
        for (size_t i = 0; wm_scheme_name(i); i++)
            snprintf(names + strlen(names), sizeof names - strlen(names), "%s%s", i ? ", " : "", wm_scheme_name(i));
        return die("keygen: --scheme '%s': expected one of %s", scheme, names);
    }
    if (strcmp(scheme, "kgw") != 0) { /* the other schemes take no gamma or delta */
        if (kgw_opt) return die("keygen: --gamma, --delta and --account-delta are kgw parameters; %s has none", scheme);
        p = (wm_params)WM_PARAMS_GUMBEL_DEFAULT;
        p.scheme = scheme;
    }
    p.seeding = (wm_seeding)seeding;
    if (h >= 0) p.context_width = (uint32_t)h;
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
