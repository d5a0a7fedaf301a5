/* wm audit --plot FILE (audit_plot.c): the p after each look against the
 * suspect tokens spent, drawn by gnuplot (as the neural demo's plots are:
 * examples/neural/distill.py).  The terminal follows FILE's extension:
 * .png (pngcairo) or .svg. */
#ifndef WM_CLI_AUDIT_PLOT_H
#define WM_CLI_AUDIT_PLOT_H
#include <stddef.h>

typedef struct audit_plot {
    double *tokens, *log10_p;
    size_t n, cap;
} audit_plot;

/* FILE's terminal: "pngcairo" or "svg", NULL for any other extension or a
 * name gnuplot's quoting cannot hold (a quote, a backslash, a control byte). */
const char *plot_terminal(const char *path);
/* One look.  0, or -1 when out of memory. */
int plot_add(audit_plot *p, double tokens, double log10_p);
/* Draw every look to path: log10 p against suspect tokens, with lines at
 * log10 target and log10 alpha; ylabel says which p.  0, or -1 with the
 * reason in err (gnuplot missing or failing). */
int plot_write(const audit_plot *p, const char *path, const char *title, const char *ylabel, double target,
               double alpha, char *err, size_t errlen);
void plot_free(audit_plot *p);
#endif
