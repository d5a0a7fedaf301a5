/* wm detect --accounts: the account list and the attribution report. */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "accounts_parse.h"
#include "cli.h"

int load_accounts(const char *path, uint64_t **ids, size_t *n)
{
    FILE *f = fopen(path, "r");
    if (!f) return die("%s: %s", path, strerror(errno));
    char *line = NULL;
    size_t cap = 0, have = 0, lineno = 0;
    uint64_t *v = NULL;
    int rc = 0;
    ssize_t len;
    while ((len = getline(&line, &cap, f)) >= 0) {
        lineno++;
        uint64_t id;
        int r = parse_account_line(line, (size_t)len, &id);
        if (r == 0) continue;
        if (r < 0) {
            rc = die("%s:%zu: expected an account id (1..18446744073709551615) as the line's last field", path,
                     lineno);
            break;
        }
        if (*n == have) {
            size_t nc = have ? 2 * have : 1024;
            uint64_t *nv = realloc(v, nc * sizeof *nv);
            if (!nv) {
                rc = die("%s: out of memory", path);
                break;
            }
            v = nv, have = nc;
        }
        v[(*n)++] = id;
    }
    if (!rc && ferror(f)) rc = die("%s: %s", path, strerror(errno));
    if (!rc && *n == 0) rc = die("%s: no account ids", path);
    free(line);
    fclose(f);
    if (rc) {
        free(v);
        *n = 0;
        return rc;
    }
    *ids = v;
    return 0;
}

int print_attribution(const wm_corpus *c, const char *key_id, const uint64_t *ids, size_t n, size_t k, double alpha,
                      int json, int *found)
{
    wm_account_score *top = calloc(k ? k : 1, sizeof *top);
    wm_attribution a = WM_INIT(wm_attribution);
    if (!top) return die("out of memory");
    top[0].size = sizeof *top; /* describes the whole array (common.h) */
    wm_status st = wm_corpus_attribute(c, ids, n, alpha, top, k, &a);
    if (st) {
        free(top);
        return die("attribution: %s", wm_strerror(st));
    }
    if (json) {
        printf("{\"source\":\"attribution\",\"key_id\":\"%s\",\"accounts\":%llu,\"tuples\":%llu,\"named\":%llu,"
               "\"alpha\":%.17g,\"exact\":%s,\"null_mean\":%.17g,\"null_sd\":%.17g,\"top\":[",
               key_id, (unsigned long long)a.accounts, (unsigned long long)a.tuples, (unsigned long long)a.named,
               alpha, a.exact ? "true" : "false", a.null_mean, a.null_sd);
        for (size_t i = 0; i < a.n_top; i++)
            printf("%s{\"account\":%llu,\"statistic\":%.17g,\"log10_p\":%.17g,\"log10_p_family\":%.17g,\"named\":%s}",
                   i ? "," : "", (unsigned long long)top[i].account, top[i].statistic,
                   top[i].log10_p, top[i].log10_p_family, top[i].named ? "true" : "false");
        printf("]}\n");
    } else {
        printf("attribution over %llu accounts (%llu tuples; S under H0: mean %.1f, sd %.1f%s): %llu named at "
               "family-wise alpha %g\n",
               (unsigned long long)a.accounts, (unsigned long long)a.tuples, a.null_mean, a.null_sd,
               a.exact ? "" : "; Chernoff bounds", (unsigned long long)a.named, alpha);
        for (size_t i = 0; i < a.n_top; i++)
            printf("  account %llu: S = %.0f, log10 p = %.2f, family-wise %.2f%s\n",
                   (unsigned long long)top[i].account, top[i].statistic, top[i].log10_p,
                   top[i].log10_p_family, top[i].named ? ": NAMED" : "");
    }
    *found |= a.named > 0;
    free(top);
    return 0;
}
