/* The library's one allocation layer.  Every allocation libwm makes (the
 * CLI and the llama.cpp sampler, programs on the public API, excepted) goes
 * through these, and so do PCRE2's (a general context, tokenizer/regex.c).
 * The reason is testing: a build with -Dfault_injection=true can make the
 * n-th allocation fail, and tests/test_fault.c walks n = 1, 2, ... through
 * every API sequence to show that each failure comes out as WM_ERR_NOMEM,
 * leaks nothing and leaves no state that changes a later result.  In every
 * other build these are the libc (and libsodium) calls, inlined where they
 * can be, so production code has no switch and no counter.
 *
 * Outside the layer, because nothing lets a library hook them without a
 * process-wide side effect: libc's own (a FILE's buffer, newlocale),
 * libsodium's initialisation, PCRE2's JIT code and stacks (mmap), and
 * jansson's (its allocator is the program's; tokenizer/json_check.c says
 * how the loader copes with jansson's failures instead).
 *
 * Memory from wm__malloc, wm__calloc and wm__realloc is released with
 * wm__free; memory from wm__secure_malloc with wm__secure_free. */
#ifndef WM_ALLOC_H
#define WM_ALLOC_H

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#ifdef WM_FAULT_INJECTION
void *wm__malloc(size_t n);
void *wm__calloc(size_t n, size_t size);
void *wm__realloc(void *p, size_t n);
void wm__free(void *p);

/* Fault injection, for the tests.  wm__fault_fail_at(n): the n-th
 * allocation from now on (counting every call above, the secure ones and
 * PCRE2's) returns NULL, once; n = 0: none does.  Either way the count
 * restarts at 0.  wm__fault_count: allocations since then.
 * wm__fault_live: allocations made through the layer and not yet freed
 * (reallocation moves one, it does not add one), so a test can see that a
 * failed call released what it had taken.  Thread-safe (relaxed atomics). */
void wm__fault_fail_at(uint64_t n);
uint64_t wm__fault_count(void);
int64_t wm__fault_live(void);
#else
static inline void *wm__malloc(size_t n) { return malloc(n); }
static inline void *wm__calloc(size_t n, size_t size) { return calloc(n, size); }
static inline void *wm__realloc(void *p, size_t n) { return realloc(p, n); }
static inline void wm__free(void *p) { free(p); }
#endif

/* Guarded memory for secrets (libsodium's sodium_malloc: guard pages,
 * mlock, wiped on free). */
void *wm__secure_malloc(size_t n);
void wm__secure_free(void *p);

#endif
