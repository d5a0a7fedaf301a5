/* Exact binomial upper tails in log space.
 *
 *   P(X >= k) = I_p(k, n-k+1) = pmf(k) * q * CF(k, n-k+1, p)
 *
 * where CF is the continued fraction of the regularised incomplete beta
 * (modified Lentz) and pmf(k) is computed in log space with Loader's
 * saddle-point form ("Fast and accurate computation of binomial
 * probabilities", 2000; as in R's dbinom), which keeps full relative accuracy
 * for n in the billions, where lgamma differences would lose digits.  The
 * continued fraction converges quickly for k above the mean; below it we use
 * 1 - P(X <= k-1), which is then >= ~1/2 and has no cancellation problem. */
#include "internal.h"

#include <math.h>

#define LN_2PI 1.837877066409345483560659472811

/* stirlerr(n) = ln(n!) - ln(sqrt(2 pi n) (n/e)^n), n >= 1 integer here. */
static double stirlerr(double n)
{
    static const double S0 = 1.0 / 12, S1 = 1.0 / 360, S2 = 1.0 / 1260, S3 = 1.0 / 1680,
                        S4 = 1.0 / 1188;
    int sign; /* lgamma_r: lgamma writes the global signgam, a data race between detecting threads */
    if (n <= 15.0) return lgamma_r(n + 1.0, &sign) - (n + 0.5) * log(n) + n - 0.5 * LN_2PI;
    double nn = n * n;
    if (n > 500) return (S0 - S1 / nn) / n;
    if (n > 80) return (S0 - (S1 - S2 / nn) / nn) / n;
    if (n > 35) return (S0 - (S1 - (S2 - S3 / nn) / nn) / nn) / n;
    return (S0 - (S1 - (S2 - (S3 - S4 / nn) / nn) / nn) / nn) / n;
}

/* bd0(x, np) = x ln(x/np) + np - x, without cancellation when x ~ np. */
static double bd0(double x, double np)
{
    if (fabs(x - np) < 0.1 * (x + np)) {
        double v = (x - np) / (x + np), s = (x - np) * v, ej = 2 * x * v;
        v *= v;
        for (int j = 1; j < 1000; j++) {
            ej *= v;
            double s1 = s + ej / (2 * j + 1);
            if (s1 == s) return s1;
            s = s1;
        }
    }
    return x * log(x / np) + np - x;
}

/* ln P(X = k). */
static double log_pmf(double k, double n, double p, double q)
{
    if (k == 0) return p < 0.1 ? -bd0(n, n * q) - n * p : n * log(q);
    if (k == n) return q < 0.1 ? -bd0(n, n * p) - n * q : n * log(p);
    double lc = stirlerr(n) - stirlerr(k) - stirlerr(n - k) - bd0(k, n * p) - bd0(n - k, n * q);
    return lc - 0.5 * (LN_2PI + log(k) + log1p(-k / n));
}

/* Continued fraction of I_x(a, b) (Numerical Recipes' betacf). */
static double betacf(double a, double b, double x)
{
    const double tiny = 1e-300, eps = 1e-15;
    double qab = a + b, qap = a + 1, qam = a - 1, c = 1, d = 1 - qab * x / qap;
    if (fabs(d) < tiny) d = tiny;
    d = 1 / d;
    double h = d;
    /* Worst case needs O(sqrt(max(a, b))) terms. */
    long max_it = 1000 + 10 * (long)sqrt(a > b ? a : b);
    for (long m = 1; m <= max_it; m++) {
        double m2 = 2.0 * m, aa = m * (b - m) * x / ((qam + m2) * (a + m2));
        d = 1 + aa * d; if (fabs(d) < tiny) d = tiny;
        c = 1 + aa / c; if (fabs(c) < tiny) c = tiny;
        d = 1 / d; h *= d * c;
        aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2));
        d = 1 + aa * d; if (fabs(d) < tiny) d = tiny;
        c = 1 + aa / c; if (fabs(c) < tiny) c = tiny;
        d = 1 / d;
        double del = d * c;
        h *= del;
        if (fabs(del - 1) < eps) break;
    }
    return h;
}

double wm__binom_log_sf(uint64_t n_, uint64_t k_, double p)
{
    if (k_ == 0) return 0;
    if (k_ > n_ || p <= 0) return -INFINITY;
    if (p >= 1) return 0;
    double n = (double)n_, k = (double)k_, q = 1 - p;
    if (k > (n + 1) * p) /* upper tail, CF converges: x < (a+1)/(a+b+2) */
        return log_pmf(k, n, p, q) + log(q) + log(betacf(k, n - k + 1, p));
    /* P(X >= k) = 1 - P(X <= k-1) = 1 - P(n - X >= n-k+1), tail of Bin(n, q). */
    double lower = exp(log_pmf(k - 1, n, p, q) + log(p) + log(betacf(n - k + 1, k, q)));
    return log1p(-lower);
}

double wm_binom_log10_sf(uint64_t n, uint64_t k, double p)
{
    if (!(p >= 0 && p <= 1)) return NAN;
    return wm__binom_log_sf(n, k, p) / M_LN10;
}

/* ln of x^a e^-x / Gamma(a + 1), the Poisson pmf at a, by Loader's form:
 * full relative accuracy for a in the billions. */
static double log_dpois(double a, double x)
{
    return -stirlerr(a) - bd0(a, x) - 0.5 * (LN_2PI + log(a));
}

/* Q(a, x) = Gamma(a, x) / Gamma(a): continued fraction (Lentz) for x > a + 1,
 * where it converges; below, 1 - P(a, x) by the series of P, where Q is
 * then not small and subtracting loses nothing. */
double wm__gamma_log_sf(double a, double x)
{
    if (!(a > 0) || isnan(x)) return NAN;
    if (x <= 0) return 0;
    if (x == INFINITY) return -INFINITY;
    const double tiny = 1e-300, eps = 1e-16;
    long max_it = 1000 + 20 * (long)sqrt(a > x ? a : x);
    if (x > a + 1) {
        double b = x + 1 - a, c = 1 / tiny, d = 1 / b, h = d;
        for (long i = 1; i <= max_it; i++) {
            double an = -i * (i - a);
            b += 2;
            d = an * d + b; if (fabs(d) < tiny) d = tiny;
            c = b + an / c; if (fabs(c) < tiny) c = tiny;
            d = 1 / d;
            double del = d * c;
            h *= del;
            if (fabs(del - 1) < eps) break;
        }
        return log(a) + log_dpois(a, x) + log(h);
    }
    double term = 1, sum = 1;
    for (long n = 1; n <= max_it; n++) {
        term *= x / (a + n);
        sum += term;
        if (term < sum * eps) break;
    }
    return log1p(-exp(log_dpois(a, x) + log(sum)));
}

double wm_gamma_log10_sf(double a, double x)
{
    /* An infinite a or x is no score: a NaN refuses it, where the tail
     * would say p = 0 (x = inf), a verdict from nothing. */
    if (!isfinite(a) || !isfinite(x)) return NAN;
    return wm__gamma_log_sf(a, x) / M_LN10;
}

/* ---- weighted sums of Bernoulli variables ---------------------------------
 *
 * For S = sum w_i X_i, X_i independent Bernoulli(p), Chernoff's bound
 *   P(S >= s) <= exp(f(l)),  f(l) = sum K(l w_i) - l s,  any l >= 0,
 * K(t) = ln(1 - p + p e^t), holds for every l, so a numerically imperfect
 * minimiser can only make it looser, never invalid.  f is convex; its slope
 * f'(l) = sum w_i K'(l w_i) - s grows with l and is found to vanish by
 * bracketing and regula falsi (Illinois).  Weights may be negative. */

/* K(t) and K'(t) for Bernoulli(p), stable for large |t|. */
static void bern_cumulant(double t, double p, double *k0, double *k1)
{
    if (t > 0) {
        double e = exp(-t);
        *k0 = t + log(p + (1 - p) * e);
        *k1 = p / (p + (1 - p) * e);
    } else {
        double e = exp(t);
        *k0 = log1p(p * expm1(t));
        *k1 = p * e / (1 - p + p * e);
    }
}

/* f(l), and f'(l) into *d. */
static double chernoff(const double *w, size_t n, double s, double p, double l, double *d)
{
    double f = 0, g = 0;
    for (size_t i = 0; i < n; i++) {
        double k0, k1;
        bern_cumulant(l * w[i], p, &k0, &k1);
        f += k0;
        g += w[i] * k1;
    }
    *d = g - s;
    return f - l * s;
}

double wm__wbinom_log_bound(const double *w, size_t n, double s, double p)
{
    double wmax = 0, d;
    for (size_t i = 0; i < n; i++) wmax = fmax(wmax, fabs(w[i]));
    if (!(p > 0 && p < 1) || isnan(s)) return NAN;
    if (wmax == 0 || (chernoff(w, n, s, p, 0, &d), d >= 0)) return 0; /* s at or below the mean */
    double lo = 0, dlo = d, hi = 1 / wmax, dhi, best;
    /* double hi until the slope turns; s may be the largest sum possible,
     * where f decreases for ever towards ln P(S = s): stop at a huge l */
    for (best = chernoff(w, n, s, p, hi, &dhi); dhi < 0 && hi < 1e15 / wmax;
         best = chernoff(w, n, s, p, hi, &dhi)) {
        lo = hi, dlo = dhi;
        hi *= 2;
    }
    for (int it = 0, side = 0; it < 100 && dhi > 0 && hi - lo > 1e-12 * hi; it++) {
        double l = (lo * dhi - hi * dlo) / (dhi - dlo), dl;
        if (!(l > lo && l < hi)) l = 0.5 * (lo + hi);
        double f = chernoff(w, n, s, p, l, &dl);
        best = fmin(best, f);
        if (dl < 0) {
            lo = l, dlo = dl;
            if (side == -1) dhi *= 0.5; /* Illinois: the stale end is halved */
            side = -1;
        } else {
            hi = l, dhi = dl;
            if (side == 1) dlo *= 0.5;
            side = 1;
        }
        if (fabs(dl) <= 1e-13 * (fabs(s) + wmax)) break;
    }
    return fmin(best, 0);
}

wm_status wm_wbinom_log10_bound(const double *w, size_t n, double s, double p, double *out)
{
    if (!out) return WM_ERR_ARG;
    *out = NAN; /* a caller that ignores the status still gets no verdict */
    if ((n && !w) || !isfinite(s) || !(p > 0 && p < 1)) return WM_ERR_ARG;
    /* The bound itself skips a NaN weight (fmax) and turns an infinite one
     * into l = 0, i.e. p = 1; an infinite s makes it -inf, p = 0.  Neither
     * is a bound on anything: refuse. */
    for (size_t i = 0; i < n; i++)
        if (!isfinite(w[i])) return WM_ERR_ARG;
    *out = wm__wbinom_log_bound(w, n, s, p) / M_LN10;
    return WM_OK;
}

void wm__fill_score(const wm_watermark *wm, wm_score *out, uint64_t tokens, uint64_t scored, double stat,
                    double alpha)
{
    out->size = sizeof *out; /* also for a nested score (wm_window, wm_audit) */
    out->tokens = tokens;
    out->scored = scored;
    out->statistic = stat;
    if (scored == 0) {
        out->z = 0;
        out->p_value = 1;
        out->log10_p = 0;
    } else {
        double n = (double)scored, mean = wm->scheme->mean, var = wm->scheme->var;
        if (wm->scheme->moments) wm->scheme->moments(wm, &mean, &var);
        out->z = (stat - n * mean) / sqrt(n * var);
        double ln_p = wm->scheme->log_sf(wm, scored, stat);
        out->log10_p = ln_p / M_LN10;
        out->p_value = exp(ln_p);
    }
    out->watermarked = out->log10_p < log10(alpha);
}
