/* wm audit --plot: see audit_plot.h. */
#include "audit_plot.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

const char *plot_terminal(const char *path)
{
    for (const char *c = path; *c; c++)
        if (*c == '\'' || *c == '\\' || (unsigned char)*c < 0x20) return NULL;
    const char *dot = strrchr(path, '.');
    if (!dot) return NULL;
    if (!strcmp(dot, ".png")) return "pngcairo";
    if (!strcmp(dot, ".svg")) return "svg";
    return NULL;
}

int plot_add(audit_plot *p, double tokens, double log10_p)
{
    if (p->n == p->cap) {
        size_t cap = p->cap ? 2 * p->cap : 64;
        double *t = realloc(p->tokens, cap * sizeof *t);
        if (t) p->tokens = t;
        double *l = t ? realloc(p->log10_p, cap * sizeof *l) : NULL;
        if (!l) return -1;
        p->log10_p = l;
        p->cap = cap;
    }
    p->tokens[p->n] = tokens;
    p->log10_p[p->n++] = log10_p;
    return 0;
}

int plot_write(const audit_plot *p, const char *path, const char *title, const char *ylabel, double target,
               double alpha, char *err, size_t errlen)
{
    const char *term = plot_terminal(path);
    if (!term) return snprintf(err, errlen, "--plot %s: expected a .png or .svg name without quotes", path), -1;
    /* the data inline (a datablock): no temporary file to clean up */
    FILE *g = popen("gnuplot", "w");
    if (!g) return snprintf(err, errlen, "--plot: cannot run gnuplot"), -1;
    fprintf(g, "$d << EOD\n0 0\n"); /* before any token, p = 1 */
    for (size_t i = 0; i < p->n; i++)
        if (isfinite(p->log10_p[i])) fprintf(g, "%.17g %.17g\n", p->tokens[i], p->log10_p[i]);
    fprintf(g, "EOD\nset terminal %s size 800,480\nset output '%s'\nset title '%s'\n"
               "set xlabel 'suspect tokens'\nset ylabel '%s'\nset grid\nset key bottom left\n"
               "plot $d using 1:2 with linespoints lw 2 title 'after each look', "
               "%.17g with lines dt 2 title 'target', %.17g with lines dt 3 title 'alpha'\n",
            term, path, title, ylabel, log10(target), log10(alpha));
    int st = pclose(g);
    if (st == -1 || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
        return snprintf(err, errlen, "--plot %s: gnuplot failed (exit %d; is gnuplot-nox installed?)", path,
                        st != -1 && WIFEXITED(st) ? WEXITSTATUS(st) : -1), -1;
    return 0;
}

void plot_free(audit_plot *p)
{
    free(p->tokens);
    free(p->log10_p);
}
