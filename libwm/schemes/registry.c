/* The schemes this library implements, found by name.  Adding one is a
 * line here (docs/ARCHITECTURE.md, "How to add a scheme"). */
#include "internal.h"

extern const wm__scheme wm__scheme_kgw, wm__scheme_gumbel;

static const wm__scheme *const schemes[] = {
    &wm__scheme_kgw,
    &wm__scheme_gumbel,
};

#define N_SCHEMES (sizeof schemes / sizeof schemes[0])

static int layer_usable(const wm__account_layer *a)
{
    return a->version == WM__ACCOUNT_LAYER_VERSION && a->size == sizeof *a && a->prepare && a->codes && a->pos &&
           a->part && a->bias_row && a->bias_candidates && a->kernel_params;
}

/* A table this build can drive: its version and size, and methods for
 * every capability it claims (the core calls them without looking). */
static int usable(const wm__scheme *sc)
{
    if (sc->version != WM__SCHEME_VERSION || sc->size != sizeof *sc || !sc->prepare || !sc->score_many ||
        !sc->log_sf || !sc->log_e || sc->n_params > WM__MAX_SCHEME_PARAMS)
        return 0;
    if (wm__has(sc, WM__CAP_BIASES) != (sc->bias_row && sc->bias_candidates)) return 0;
    if (wm__has(sc, WM__CAP_SELECTS) != (sc->select != NULL)) return 0;
    if (wm__has(sc, WM__CAP_GREEN_LIST) && !wm__has(sc, WM__CAP_BINARY)) return 0;
    if (wm__has(sc, WM__CAP_BINARY) && !sc->moments) return 0; /* read.c needs the rate */
    return !sc->account || (sc->account_param < sc->n_params && layer_usable(sc->account));
}

const wm__scheme *wm__scheme_find(const char *name)
{
    for (size_t i = 0; i < N_SCHEMES; i++)
        if (!strcmp(schemes[i]->name, name)) return usable(schemes[i]) ? schemes[i] : NULL;
    return NULL;
}

wm_status wm_scheme_caps(const char *scheme, unsigned *caps)
{
    if (!caps) return WM_ERR_ARG;
    const wm__scheme *sc = wm__scheme_find(scheme ? scheme : WM__DEFAULT_SCHEME);
    if (!sc) return WM_ERR_PARAM;
    *caps = sc->caps;
    return WM_OK;
}

const char *wm_scheme_name(size_t i)
{
    for (size_t k = 0; k < N_SCHEMES; k++)
        if (usable(schemes[k]) && i-- == 0) return schemes[k]->name;
    return NULL;
}
