/* libwm: status codes, error details, version.  Part of <wm.h>. */
#ifndef WM_COMMON_H
#define WM_COMMON_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(WM_BUILDING) && defined(__GNUC__)
#define WM_API __attribute__((visibility("default")))
#else
#define WM_API
#endif

#define WM_VERSION_STRING "0.1.0"

/* A token id.  Signed so that llama.cpp's llama_token and int32 arrays from
 * numpy/torch pass through without a copy; negative ids are always invalid. */
typedef int32_t wm_token;

/* Every fallible call returns one of these.  No function aborts, exits or
 * prints on bad input. */
typedef enum wm_status {
    WM_OK = 0,
    WM_ERR_ARG,         /* NULL pointer or argument outside its domain */
    WM_ERR_NOMEM,       /* allocation failed */
    WM_ERR_IO,          /* read/write failed (errno preserved) */
    WM_ERR_EXISTS,      /* refusing to overwrite an existing file */
    WM_ERR_PERM,        /* key file readable by group or others */
    WM_ERR_FORMAT,      /* malformed input file or text */
    WM_ERR_CORRUPT,     /* integrity check failed (key id mismatch) */
    WM_ERR_PARAM,       /* gamma, delta, context width or scheme invalid */
    WM_ERR_TOKEN,       /* token id negative or >= vocabulary size */
    WM_ERR_SIZE,        /* buffer shorter than the vocabulary, or empty vocabulary */
    WM_ERR_LOGITS,      /* NaN or +inf logit, or no finite logit (sampler) */
    WM_ERR_CRYPTO,      /* libsodium could not be initialised */
    WM_ERR_UNSUPPORTED  /* valid request this build cannot serve */
} wm_status;

/* Short, static, English description of a status.  Thread-safe. */
WM_API const char *wm_strerror(wm_status status);

/* Details of a failure in a parsing call ("k.wmkey:4: gamma: ...").  Calls
 * that read files take an optional wm_error *; it is written only when the
 * call fails.  Never contains secret material. */
typedef struct wm_error {
    char message[512];
} wm_error;

/* Library version, e.g. "0.1.0".  Thread-safe. */
WM_API const char *wm_version(void);

#ifdef __cplusplus
}
#endif
#endif
