/* The versions of the libraries whose Unicode tables the tokenizer reads
 * rare characters with (tokenizer.h, wm_tokenizer_version): PCRE2's for the
 * pre-tokenizers' \p{..} classes, utf8proc's for the normalization forms and
 * for the categories regex.c adds where PCRE2's tables are older. */
#include "tokenizer_internal.h"

#include <pthread.h>

enum { N_VERSIONS = 4, VERSION_MAX = 64 };
static const char *const names[N_VERSIONS] = { "pcre2", "pcre2_unicode", "utf8proc", "utf8proc_unicode" };
/* PCRE2 writes its strings into a buffer: filled once, read-only after. */
static char pcre2_version[VERSION_MAX], pcre2_unicode[VERSION_MAX];
static pthread_once_t pcre2_once = PTHREAD_ONCE_INIT;
static int pcre2_ok;

static void read_pcre2(void)
{
    /* pcre2_config returns the length with its NUL, or a negative code
     * (PCRE2_ERROR_NOMEMORY when the buffer is too small). */
    pcre2_ok = pcre2_config(PCRE2_CONFIG_VERSION, pcre2_version) > 0 &&
               pcre2_config(PCRE2_CONFIG_UNICODE_VERSION, pcre2_unicode) > 0;
}

/* WM_VERSION_STRING as this library was compiled, not libwm's at run time. */
const char *wm_tokenizer_library_version(void) { return WM_VERSION_STRING; }

size_t wm_tokenizer_n_versions(void) { return N_VERSIONS; }

wm_status wm_tokenizer_version(size_t i, const char **name, const char **version)
{
    if (i >= N_VERSIONS || !name || !version) return WM_ERR_ARG;
    if (i < 2 && (pthread_once(&pcre2_once, read_pcre2) != 0 || !pcre2_ok)) return WM_ERR_UNSUPPORTED;
    const char *v[N_VERSIONS] = { pcre2_version, pcre2_unicode, utf8proc_version(), utf8proc_unicode_version() };
    *name = names[i];
    *version = v[i];
    return WM_OK;
}
