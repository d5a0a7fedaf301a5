/* The sequential audit (wm_corpus_audit): a p-value that stays valid when
 * the analyst decides, after every look, whether to query the suspect more.
 *
 * Under H0 each new distinct tuple's score is independent of everything
 * before it (detect.h), so for a fixed alternative of strength eps the
 * scheme's likelihood ratio (scheme->log_e) multiplied over tuples is a test
 * supermartingale, and so is the average M over a grid of alternatives,
 * eps = 2^-1 .. 2^-GRID with equal weights: the unknown excess is matched
 * to within a factor 2 at a price of ln GRID.  Ville's inequality gives
 * P(sup_t M_t >= 1/alpha) <= alpha, so p = 1 / (the largest M seen at any
 * look) is valid whenever one stops.  The price against the fixed-n test,
 * whose p is exact only at a sample size chosen in advance: roughly
 * log10 GRID, plus the grid's mismatch, plus the gap between a likelihood
 * ratio and the binomial tail (half the log of the tuples). */
#include "detect_internal.h"

#include <math.h>

#define GRID 20

static double eps_of(int j) { return ldexp(1.0, -(j + 1)); }

double wm__audit_log_e(const wm_watermark *wm, uint64_t n, double stat)
{
    double t[GRID], m = -INFINITY, s = 0;
    for (int j = 0; j < GRID; j++) m = fmax(m, t[j] = wm->scheme->log_e(wm, eps_of(j), n, stat));
    for (int j = 0; j < GRID; j++) s += exp(t[j] - m);
    return m + log(s / GRID);
}

/* Robbins' mixture confidence sequence for a Bernoulli rate, uniform
 * prior: every p with ln B(1 + g, 1 + n - g) - g ln p - (n - g) ln(1 - p)
 * < ln(1 / alpha).  That function is convex in p, smallest at g / n. */
static double lgam(double x)
{
    int sign; /* lgamma_r: lgamma writes the global signgam, a data race between audits on threads */
    return lgamma_r(x, &sign);
}

static double cs_log_e(double g, double n, double p)
{
    return lgam(1 + g) + lgam(1 + n - g) - lgam(2 + n) - (g > 0 ? g * log(p) : 0) -
           (n - g > 0 ? (n - g) * log1p(-p) : 0);
}

static double cs_end(double g, double n, double lim, double from, double to)
{
    for (int i = 0; i < 200 && fabs(to - from) > 1e-15; i++) {
        double mid = 0.5 * (from + to);
        if (cs_log_e(g, n, mid) < lim) from = mid; else to = mid;
    }
    return 0.5 * (from + to);
}

/* Tuples at which the fixed-n test reaches ln target if the mean score
 * stays m: doubling, then bisection (INFINITY past 2^60). */
static double fixed_n_tuples(const wm_watermark *wm, double m, double ln_target)
{
    double lo = 0, hi = 1;
    while (wm->scheme->log_sf(wm, (uint64_t)hi, m * hi) > ln_target) {
        lo = hi;
        if ((hi *= 2) > 0x1p60) return INFINITY;
    }
    while (hi - lo > 1 && hi - lo > 1e-6 * hi) {
        double mid = floor(0.5 * (lo + hi));
        if (wm->scheme->log_sf(wm, (uint64_t)mid, m * mid) > ln_target) lo = mid; else hi = mid;
    }
    return hi;
}

void wm__audit_fill(const wm_watermark *wm, const wm_score *fixed, double log_e_max, double alpha, double target,
                    wm_audit *out)
{
    double n = (double)fixed->scored, stat = fixed->statistic, mean = wm->scheme->mean, var, lim = log(1 / alpha);
    if (wm->scheme->moments) wm->scheme->moments(wm, &mean, &var);
    out->fixed = *fixed;
    out->log10_p = fmin(0, -log_e_max / M_LN10);
    out->watermarked = out->log10_p < log10(alpha);
    double m = n > 0 ? stat / n : mean;
    out->excess = m - mean;
    out->excess_lo = out->excess_hi = NAN;
    if (wm__has(wm->scheme, WM__CAP_BINARY) && n > 0) {
        out->excess_lo = cs_end(stat, n, lim, m, 0) - mean;
        out->excess_hi = cs_end(stat, n, lim, m, 1) - mean;
    }
    /* projections: the score keeps its mean m, and tuples keep coming at
     * the rate they came so far per token */
    double ln_t = log(target), need = INFINITY;
    for (int j = 0; j < GRID && out->excess > 0; j++) {
        double rate = wm->scheme->log_e(wm, eps_of(j), 1, m); /* expected ln e per tuple */
        if (rate > 0) need = fmin(need, (-ln_t + log(GRID)) / rate);
    }
    double per_tuple = n > 0 ? (double)fixed->tokens / n : INFINITY;
    out->more_tuples = out->log10_p <= log10(target) ? 0 : fmax(0, need - n);
    out->more_tokens = out->more_tuples * per_tuple;
    double need_fixed = out->excess > 0 ? fixed_n_tuples(wm, m, ln_t) : INFINITY;
    out->more_tokens_fixed = fixed->log10_p <= log10(target) ? 0 : fmax(0, need_fixed - n) * per_tuple;
    if (out->more_tuples == 0) out->more_tokens = 0;
}
