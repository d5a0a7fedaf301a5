/* libwm: status codes, error details, version.  Part of <wm.h>. */
#ifndef WM_COMMON_H
#define WM_COMMON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* On every call that returns a wm_status: ignoring one is a bug (a failed
 * call leaves its outputs unset).  GCC and clang warn; a deliberate ignore
 * needs an explicit check. */
#if defined(__GNUC__) || defined(__clang__)
#define WM_NODISCARD __attribute__((warn_unused_result))
#else
#define WM_NODISCARD
#endif

#if defined(WM_BUILDING) && defined(__GNUC__)
#define WM_API __attribute__((visibility("default")))
#else
#define WM_API
#endif

#include <wm/version.h>

/* A token id.  Signed so that llama.cpp's llama_token and int32 arrays from
 * numpy/torch pass through without a copy; negative ids are always invalid. */
typedef int32_t wm_token;

/* Every fallible call returns one of these.  No function aborts, exits or
 * prints on bad input.  One table, WM_STATUS_MAP(X), is the single source of
 * the codes (values are pinned: they are ABI), of wm_strerror's texts and of
 * the Python binding's constants.  X(NAME, value, description). */
#define WM_STATUS_MAP(X)                                                                     \
    X(OK, 0, "success")                                                                      \
    X(ERR_ARG, 1, "invalid argument")           /* NULL pointer, value outside its domain, unknown flag bit */ \
    X(ERR_NOMEM, 2, "out of memory")                                                         \
    X(ERR_IO, 3, "input/output error")          /* errno preserved */                       \
    X(ERR_EXISTS, 4, "file exists; refusing to overwrite")                                   \
    X(ERR_PERM, 5, "key file is readable by group or others")                                \
    X(ERR_FORMAT, 6, "malformed input")         /* malformed file or text */                \
    X(ERR_CORRUPT, 7, "integrity check failed") /* key id mismatch */                       \
    X(ERR_PARAM, 8, "invalid watermark parameters")                                          \
    X(ERR_TOKEN, 9, "token id outside the vocabulary")                                       \
    X(ERR_SIZE, 10, "size does not match the vocabulary")                                    \
    X(ERR_LOGITS, 11, "NaN or infinite logits")                                              \
    X(ERR_CRYPTO, 12, "libsodium initialisation failed")                                     \
    X(ERR_UNSUPPORTED, 13, "not supported")     /* valid request this build cannot serve */ \
    X(ERR_LIMIT, 14, "input exceeds an engine limit") /* e.g. the regex engine gave up */

typedef enum wm_status {
#define WM__STATUS_ENUM(name, value, text) WM_##name = value,
    WM_STATUS_MAP(WM__STATUS_ENUM)
#undef WM__STATUS_ENUM
} wm_status;

/* Short, static, English description of a status.  Thread-safe. */
/* @return a static string, never NULL ("unknown status" for a value that is not one). */
WM_API const char *wm_strerror(wm_status status);

/* The status's name without the WM_ prefix ("ERR_ARG"), NULL for a value
 * that is not a status: how bindings build their constants from the same
 * table.  Thread-safe. */
/* @return a static string, or NULL. */
WM_API const char *wm_status_name(wm_status status);

/* Details of a failure in a parsing call ("k.wmkey:4: gamma: ...").  Calls
 * that read files take an optional wm_error * (NULL: no details).  It is
 * written on every failure of the call, whatever the status (bad
 * arguments and out of memory included), with a non-empty NUL-terminated
 * message, and never when the call succeeds.  Never contains secret
 * material. */
typedef struct wm_error {
    char message[512];
} wm_error;

/* Flags.  Each family of flags owns its own bits, disjoint from every other
 * family's in the whole library, so that a flag passed to the wrong call is
 * refused (WM_ERR_ARG) instead of being read as another family's flag with
 * the same value:
 *   0x000000ff  detection: WM_NO_DEDUP, WM_ACCOUNTS (detect.h)
 *   0x0000ff00  reading mode: WM_READ_WEIGHTED (detect.h; wm_reader_new also
 *               takes WM_ACCOUNTS, which means the same there)
 *   0x00ff0000  encoding: WM_ENC_SPECIAL_AS_TEXT, WM_ENC_LOSSY (tokenizer.h)
 * Every call taking flags refuses any bit it does not document. */

/* Versioned structs.  Every public struct the caller allocates (wm_params,
 * wm_sampler_params, wm_score, wm_window, wm_audit, wm_account_score,
 * wm_attribution, wm_kernel_params) begins with `size_t size`, which the
 * caller sets to sizeof the struct as its header declares it, for inputs
 * and outputs alike:
 *
 *     wm_score s = WM_INIT(wm_score);          // or s.size = sizeof s
 *     wm_params p;
 *     if (wm_params_init(&p, "kgw") != WM_OK) ...;  // sets size and defaults
 *
 * The library checks it before reading or writing anything else: a size it
 * does not know is WM_ERR_ARG and nothing is written.  The rule: fields are
 * only ever appended, so every layout is a prefix of the next; a later
 * libwm keeps accepting each earlier size, reads only the fields an input
 * of that size has (the others take their defaults) and writes only the
 * fields an output of that size has.  This release knows one size per
 * struct (the first versioned layout).  An array of outputs (wm_account_score
 * top[k]) is described by top[0].size.  wm_error is frozen and has no size.
 * A struct filled by the library (wm_window.score, wm_audit.fixed) has its
 * size set by the library.
 *
 * Out-parameters.  Constructors take the new object's address first
 * (wm_key_generate(&key, ...)); every other call takes its inputs first and
 * its outputs last.  Outputs are marked OUT in the documentation: they are
 * written only when the call returns WM_OK unless the function says
 * otherwise (a constructor sets *out to NULL on failure whenever out is not
 * NULL).  Pointers documented "may be NULL" are optional; every other
 * NULL pointer is WM_ERR_ARG.  An out-parameter is any pointer whose
 * pointee the call may write (T *, T **, T x[N] without const), bar
 * wm_error *err and the handle a call works on (wm_corpus *c); one it
 * also reads is marked IN/OUT (logits biased in place).  A pointer handed
 * out says who owns it: "owned by the caller" (free it with the named
 * call), "static", or "points into" / "belongs to" an object (valid until
 * the call named).
 *
 * Thread safety.  Each function says which of these holds:
 *   "Thread-safe."  Any number of threads may call it at once, on the same
 *       objects and inputs too, each with its own outputs (it reads only
 *       immutable objects: a wm_watermark, a wm_tokenizer, or none).  Process-wide state it needs (libsodium,
 *       the "C" locale object, the tokenizer's Unicode tables, the CPU
 *       features) is set up once, under a lock or atomically.
 *   "Thread-safe for distinct X."  Concurrent calls are fine as long as
 *       each has its own X.
 *   "Thread-safe with other readers of X."  It only reads X: it may run
 *       with other calls that only read X, never with one that changes it.
 *   "Not thread-safe: one thread at a time per X."  It changes X: no other
 *       call on the same X may run meanwhile (distinct X are independent).
 *   "Not thread-safe: no other thread may use X."  It frees X.
 * tests/check_errors.py refuses a public function without one of these,
 * without @return (when it returns a value) or with an unmarked
 * out-parameter. */
#define WM_INIT(type) { .size = sizeof(type) }

/* The layout of the public structs as this library was compiled, for
 * bindings that re-declare them (python/libwm checks its ctypes structs
 * against it at import): entry i (0 <= i < wm_abi_n_fields()) is one field,
 * *structure ("wm_score") and *field ("log10_p") static strings, *offset
 * and *size in bytes (OUT, all four); an entry whose *field is "" gives the
 * whole struct's size (offset 0).  Every versioned struct and wm_error is
 * listed.  @return WM_OK; WM_ERR_ARG for i >= wm_abi_n_fields() or a NULL
 * pointer, the outputs untouched.  Thread-safe. */
/* @return the number of entries.  Thread-safe. */
WM_API size_t wm_abi_n_fields(void);
/* wm_abi_field: @return as above; *structure and *field are static strings.  OUT: *structure,
 * *field, *offset, *size.  Thread-safe. */
WM_API WM_NODISCARD wm_status wm_abi_field(size_t i, const char **structure, const char **field, size_t *offset,
                                           size_t *size);

/* Library version, e.g. "0.1.0".  Thread-safe. */
/* @return a static string. */
WM_API const char *wm_version(void);
/* The library's WM_VERSION_NUMBER, to compare with the header's at run
 * time.  Thread-safe. */
/* @return WM_VERSION_NUMBER as the library was built. */
WM_API unsigned wm_version_number(void);

#ifdef __cplusplus
}
#endif
#endif
