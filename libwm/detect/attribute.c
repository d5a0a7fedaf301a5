/* Attribution (wm_corpus_attribute): which accounts' outputs a corpus
 * carries, with a p-value per account that holds whatever other accounts
 * contributed.
 *
 * The corpus tallies h[j][a]: distinct scored tuples whose seed reads
 * position j and whose token lies in part a (schemes/account.c).  Account
 * u's statistic is S_u = sum_j h[j][c_u[j]].  H0_u: u's outputs were not
 * used.  Then u's codeword, a PRF of the master key and u alone, is
 * independent of the data and of the tally (which depend on other
 * accounts' codewords, the green list and the part function, all from other
 * PRF inputs), so given the tally S_u is distributed as the statistic of a
 * uniformly random codeword: a sum over the L positions of independent
 * picks, each uniform among h[j][0..q-1].  That law is the same for every
 * account; it is computed once, exactly, by convolution (p is a multiple
 * of q^-L = 4^-256, above DBL_MIN), and each account then costs its
 * codeword (four PRF calls) and L / 4 table lookups.  Over n accounts the
 * family-wise p is Bonferroni's n p: P(some account that contributed
 * nothing is named) <= alpha, with any number of colluders and any share. */
#include "detect_internal.h"

#include <math.h>
#include <stdlib.h>

#define L WM_ACCOUNT_POSITIONS
#define Q WM_ACCOUNT_SYMBOLS
/* Largest range of the centred statistic convolved exactly (8 MB of
 * doubles, about 10^9 multiply-adds at worst); beyond it Chernoff's bound,
 * which is never below the exact tail. */
#define EXACT_RANGE ((uint64_t)1 << 20)

/* The null law of D = S - sum_j min_a h[j][a], a sum of independent picks
 * d[j][a] = h[j][a] - min_a h[j][a].  Counts (a corpus, a plain reader)
 * are integers, held exactly in doubles below 2^53; a weighted reader's
 * tally is real, and then only the bound applies. */
typedef struct null_law {
    double d[L][Q];
    double base, range;   /* sum of the minima; largest D */
    int integral;         /* every d is an integer */
    double *tail;         /* exact: tail[x] = P(D >= x), x = 0..range; NULL: bound */
} null_law;

/* Exact tails by convolution: f holds P(D_j = x) for the first j positions. */
static wm_status convolve(null_law *nl)
{
    size_t range = (size_t)nl->range;
    double *f = wm__calloc(range + 1, sizeof *f), *g = wm__calloc(range + 1, sizeof *g);
    if (!f || !g) {
        wm__free(f);
        wm__free(g);
        return WM_ERR_NOMEM;
    }
    size_t top = 0;
    f[0] = 1;
    for (size_t j = 0; j < L; j++) {
        size_t dmax = 0;
        for (size_t a = 0; a < Q; a++) dmax = (size_t)nl->d[j][a] > dmax ? (size_t)nl->d[j][a] : dmax;
        if (dmax == 0) continue; /* every codeword reads the same count here */
        memset(g, 0, (top + dmax + 1) * sizeof *g);
        for (size_t a = 0; a < Q; a++) {
            double *gs = g + (size_t)nl->d[j][a];
            for (size_t x = 0; x <= top; x++) gs[x] += 0.25 * f[x];
        }
        top += dmax;
        double *t = f;
        f = g, g = t;
    }
    /* f -> upper tails, summed from the smallest terms up */
    double acc = 0;
    for (size_t x = top + 1; x-- > 0;) f[x] = acc += f[x];
    wm__free(g);
    nl->tail = f;
    return WM_OK;
}

/* ln of Chernoff's bound on P(D >= x) at exponent l, and its slope in l:
 * sum_j ln mean_a e^(l d[j][a]) - l x, written around each position's
 * largest pick m_j as l (sum m_j - x) + sum_j ln mean_a e^(l (d - m_j)),
 * with sum m_j - x formed first: at large l, l sum m_j and l x would cancel
 * in floating point and could push the bound below the exact tail. */
static double chernoff(const null_law *nl, double x, double l, double *slope)
{
    double gap = nl->range - x;
    double f = l * gap, df = gap;
    for (size_t j = 0; j < L; j++) {
        double m = 0;
        for (size_t a = 0; a < Q; a++) m = fmax(m, nl->d[j][a]);
        double s = 0, sd = 0;
        for (size_t a = 0; a < Q; a++) {
            double below = nl->d[j][a] - m, e = exp(l * below);
            s += e;
            sd += e * below;
        }
        f += log(s / Q);
        df += sd / s;
    }
    *slope = df;
    return f;
}

/* ln P(D >= x) given the law: exact, or the bound minimised over l by
 * bisection on the slope (it holds at every l, so a rough minimum is only
 * looser). */
static double log_tail(const null_law *nl, double x)
{
    if (x <= 0) return 0;
    if (x > nl->range) return -INFINITY;
    if (nl->tail) return log(nl->tail[(size_t)ceil(x)]);
    double lo = 0, hi = 1, d, best = 0;
    while (best = fmin(best, chernoff(nl, x, hi, &d)), d < 0 && hi < 1e6) lo = hi, hi *= 2;
    for (int it = 0; it < 100; it++) {
        double l = 0.5 * (lo + hi);
        best = fmin(best, chernoff(nl, x, l, &d));
        if (d < 0) lo = l;
        else hi = l;
    }
    return best;
}

static wm_status null_law_init(null_law *nl, const double h[L][Q])
{
    memset(nl, 0, sizeof *nl);
    nl->integral = 1;
    for (size_t j = 0; j < L; j++) {
        double m = h[j][0], dmax = 0;
        for (size_t a = 1; a < Q; a++) m = fmin(m, h[j][a]);
        for (size_t a = 0; a < Q; a++) {
            nl->d[j][a] = h[j][a] - m;
            dmax = fmax(dmax, nl->d[j][a]);
            nl->integral &= h[j][a] == nearbyint(h[j][a]) && fabs(h[j][a]) < 0x1p52;
        }
        nl->base += m;
        nl->range += dmax;
    }
    return nl->integral && nl->range <= (double)EXACT_RANGE ? convolve(nl) : WM_OK;
}

/* Accounts whose codewords are made at once (the layer batches the PRF). */
#define BATCH 8

typedef struct ranked { uint64_t id; double d; } ranked;

/* Higher statistic first; equal ones by smaller id, so the order is total. */
static int before(ranked a, ranked b) { return a.d > b.d || (a.d == b.d && a.id < b.id); }

/* top[0..k) as a heap whose root is the entry ranked last. */
static void sift_down(ranked *t, size_t k, size_t i)
{
    for (;;) {
        size_t w = i, l = 2 * i + 1, r = l + 1;
        if (l < k && before(t[w], t[l])) w = l;
        if (r < k && before(t[w], t[r])) w = r;
        if (w == i) return;
        ranked x = t[i];
        t[i] = t[w], t[w] = x;
        i = w;
    }
}

static void keep(ranked *t, size_t k, size_t *len, ranked x)
{
    if (*len < k) {
        size_t i = (*len)++;
        t[i] = x;
        while (i && before(t[(i - 1) / 2], t[i])) { /* the new entry ranks after its parent */
            ranked y = t[i];
            t[i] = t[(i - 1) / 2], t[(i - 1) / 2] = y;
            i = (i - 1) / 2;
        }
    } else if (k && before(x, t[0])) {
        t[0] = x;
        sift_down(t, k, 0);
    }
}

static int by_rank(const void *a, const void *b)
{
    ranked x = *(const ranked *)a, y = *(const ranked *)b;
    return before(x, y) ? -1 : before(y, x) ? 1 : 0;
}

/* An x with ln P(D >= x) < lim such that the accounts named are those
 * with D >= x, the tail being monotone: the smallest such integer for
 * counts; for real tallies the top of a bisection bracket, where the bound
 * is checked (INFINITY if no D can be named). */
static double threshold(const null_law *nl, double lim)
{
    if (!(log_tail(nl, nl->range) < lim)) return INFINITY;
    double lo = 0, hi = nl->range;
    if (nl->integral) {
        while (lo < hi) {
            double mid = floor(lo + (hi - lo) / 2);
            if (log_tail(nl, mid) < lim) hi = mid;
            else lo = mid + 1;
        }
        return lo;
    }
    for (int it = 0; it < 60 && hi - lo > 1e-12 * nl->range; it++) {
        double mid = 0.5 * (lo + hi);
        if (log_tail(nl, mid) < lim) hi = mid;
        else lo = mid;
    }
    return hi;
}

int wm__attribute_args(const uint64_t *accounts, size_t n, double alpha, const wm_account_score *top, size_t k,
                       const wm_attribution *out)
{
    if (!out || !WM__SIZED(out, wm_attribution) || (n && !accounts) || !wm__valid_alpha(alpha)) return 0;
    if (k && (!top || !WM__SIZED(&top[0], wm_account_score))) return 0;
    for (size_t i = 0; i < n; i++)
        if (accounts[i] == WM_ACCOUNT_NONE) return 0;
    return 1;
}

wm_status wm__attribute(const wm_watermark *wm, const double h[L][Q], const uint64_t *accounts, size_t n,
                        double alpha, wm_account_score *top, size_t k, wm_attribution *out)
{
    null_law *nl = wm__calloc(1, sizeof *nl);
    /* byte b of a codeword holds positions 4b..4b+3: its four picks at once */
    double (*byte_sum)[256] = wm__malloc(sizeof(double[L / 4][256]));
    ranked *best = k ? wm__malloc(k * sizeof *best) : NULL;
    wm_status st = nl && byte_sum && (best || !k) ? null_law_init(nl, h) : WM_ERR_NOMEM;
    if (st) goto done;
    for (size_t b = 0; b < L / 4; b++)
        for (unsigned v = 0; v < 256; v++) {
            double s = 0;
            for (unsigned i = 0; i < 4; i++) s += nl->d[4 * b + i][(v >> (2 * i)) & 3];
            byte_sum[b][v] = s;
        }
    double lim = log(alpha) - log((double)n);
    double named_from = threshold(nl, lim);
    uint64_t named = 0;
    size_t len = 0;
    for (size_t i = 0; i < n; i += BATCH) {
        size_t m = n - i < BATCH ? n - i : BATCH;
        unsigned char code[BATCH * WM__CODE_BYTES];
        wm->account->codes(wm, accounts + i, m, code);
        for (size_t a = 0; a < m; a++) {
            const unsigned char *c = code + a * WM__CODE_BYTES;
            double d = 0;
            for (size_t b = 0; b < L / 4; b++) d += byte_sum[b][c[b]];
            named += d >= named_from;
            keep(best, k, &len, (ranked){ accounts[i + a], d });
        }
    }
    if (len) qsort(best, len, sizeof *best, by_rank); /* best is NULL when k = 0, and qsort's array may not be */
    double log_n = log10((double)n);
    for (size_t i = 0; i < len; i++) {
        wm_account_score *t = &top[i];
        t->size = sizeof *t;
        t->account = best[i].id;
        t->statistic = nl->base + best[i].d;
        t->log10_p = log_tail(nl, best[i].d) / M_LN10;
        t->log10_p_family = fmin(0, t->log10_p + log_n);
        t->named = best[i].d >= named_from;
    }
    double mean = 0, var = 0;
    for (size_t p = 0; p < L; p++) {
        double m1 = 0, m2 = 0;
        for (size_t a = 0; a < Q; a++) {
            m1 += nl->d[p][a] / Q;
            m2 += nl->d[p][a] * nl->d[p][a] / Q;
        }
        mean += m1;
        var += m2 - m1 * m1;
    }
    *out = (wm_attribution){ .size = sizeof *out, .accounts = n, .named = n ? named : 0, .n_top = len, .null_mean = nl->base + mean,
                             .null_sd = sqrt(var), .exact = nl->tail != NULL };
done:
    if (nl) wm__free(nl->tail);
    wm__free(nl);
    wm__free(byte_sum);
    wm__free(best);
    return st;
}

/* For the tests: ln P(D >= x) of the law of a tally, as wm__attribute uses
 * it, and whether it is exact. */
double wm__attribution_log_tail(const double h[L][Q], double x, int *exact)
{
    null_law *nl = wm__malloc(sizeof *nl);
    if (!nl || null_law_init(nl, h)) {
        wm__free(nl);
        return NAN;
    }
    double r = log_tail(nl, x);
    *exact = nl->tail != NULL;
    wm__free(nl->tail);
    wm__free(nl);
    return r;
}
