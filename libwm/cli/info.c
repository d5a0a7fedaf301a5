/* wm info: a key's public parameters and id, never the secret. */
#include <getopt.h>
#include <stdio.h>

#include <string.h>

#include "cli.h"

static const char usage_info[] =
    "usage: wm info [--json] KEYFILE\n"
    "\n"
    "Prints the parameters (gamma as the exact value detection uses) and the public\n"
    "key id.  Never prints the secret.\n";


int cmd_info(int argc, char **argv)
{
    static const struct option opts[] = { { "json", no_argument, 0, O_JSON }, { "help", no_argument, 0, O_HELP },
                                          { 0, 0, 0, 0 } };
    int json = 0, c;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        if (c == O_JSON) json = 1;
        else if (c == O_HELP) return fputs(usage_info, stdout), 0;
        else return usage_error("info");
    }
    if (optind + 1 != argc) return usage_error("info");
    wm_key *key;
    wm_error err = { "" };
    wm_status st = wm_key_load(&key, argv[optind], &err);
    if (st) return die("%s", status_text(st, &err));
    wm_params p = WM_INIT(wm_params);
    char id[WM_KEY_ID_SIZE], sha_hex[65] = "";
    uint32_t nv;
    unsigned char sha[32];
    unsigned caps = 0;
    if (!(st = wm_key_params(key, &p)) && !(st = wm_key_id(key, id)) && !(st = wm_scheme_caps(p.scheme, &caps)))
        st = wm_key_tokenizer(key, &nv, sha);
    wm_key_free(key);
    if (st) return die("%s: %s", argv[optind], wm_strerror(st));
    for (int i = 0; nv && i < 32; i++) sprintf(sha_hex + 2 * i, "%02x", sha[i]);
    /* A key bound to a tokenizer: the libraries this wm would tokenize with. */
    char versions[VERSIONS_MAX] = "";
    if (nv && tokenizer_versions(versions, sizeof versions, json)) return EXIT_USAGE;
    const char *seeding = p.seeding == WM_SEEDING_MINHASH ? "minhash" : "lefthash";
    int kgw = (caps & WM_CAP_GREEN_LIST) != 0; /* gamma, delta and account_delta are the green list's */
    unsigned k = (unsigned)(p.gamma * WM_GAMMA_ONE);
    if (json) {
        printf("{\"key_id\":\"%s\",\"scheme\":\"%s\",\"seeding\":\"%s\",\"context_width\":%u", id, p.scheme,
               seeding, p.context_width);
        if (kgw)
            printf(",\"gamma\":%.17g,\"gamma_fraction\":\"%u/65536\",\"delta\":%.17g,\"account_delta\":%.17g", p.gamma, k,
                   p.delta, p.account_delta);
        if (nv) printf(",\"vocab\":%u,\"tokenizer_sha256\":\"%s\",\"tokenizer_versions\":{%s}", nv, sha_hex, versions);
        printf("}\n");
    } else {
        printf("key id         %s\nscheme         %s\nseeding        %s\ncontext width  %u\n", id, p.scheme, seeding,
               p.context_width);
        if (kgw)
            printf("gamma          %.17g (= %u/65536, exact value used by detection)\ndelta          %g\n", p.gamma, k,
                   p.delta);
        if (kgw && p.account_delta > 0) printf("account delta  %g (account layer on)\n", p.account_delta);
        if (nv) printf("vocabulary     %u\ntokenizer      sha256 %s\ntokenized by   %s\n", nv, sha_hex, versions);
    }
    return 0;
}
