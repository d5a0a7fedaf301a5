/* The schemes this library implements, found by name.  Adding one is a
 * line here (see scheme.h). */
#include "internal.h"

extern const wm__scheme wm__scheme_kgw, wm__scheme_gumbel;

static const wm__scheme *const schemes[] = {
    &wm__scheme_kgw,
    &wm__scheme_gumbel,
};

#define N_SCHEMES (sizeof schemes / sizeof schemes[0])

const wm__scheme *wm__scheme_find(const char *name)
{
    for (size_t i = 0; i < N_SCHEMES; i++)
        if (!strcmp(schemes[i]->name, name)) return schemes[i];
    return NULL;
}

const char *wm_scheme_name(size_t i) { return i < N_SCHEMES ? schemes[i]->name : NULL; }
