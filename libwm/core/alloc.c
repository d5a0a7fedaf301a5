/* The allocation layer (core/alloc.h): libc and libsodium in a normal
 * build; in a fault-injection build, the same behind a counter that can
 * fail one chosen allocation. */
#include "core/alloc.h"

#include <sodium.h>

#ifdef WM_FAULT_INJECTION
#include <stdatomic.h>

/* Relaxed atomics: test_threads and the other suites run threads through
 * this build with no fault armed, and a plain counter would be a data
 * race.  The order of allocations across threads is not defined anyway;
 * a test that arms a fault runs one thread. */
static _Atomic uint64_t fail_at; /* 0: no fault armed */
static _Atomic uint64_t count;
static _Atomic int64_t live;

void wm__fault_fail_at(uint64_t n)
{
    atomic_store_explicit(&fail_at, 0, memory_order_relaxed);
    atomic_store_explicit(&count, 0, memory_order_relaxed);
    atomic_store_explicit(&fail_at, n, memory_order_relaxed);
}

uint64_t wm__fault_count(void) { return atomic_load_explicit(&count, memory_order_relaxed); }
int64_t wm__fault_live(void) { return atomic_load_explicit(&live, memory_order_relaxed); }

/* Is this allocation the one to fail? */
static int fault_now(void)
{
    uint64_t n = atomic_fetch_add_explicit(&count, 1, memory_order_relaxed) + 1;
    uint64_t at = atomic_load_explicit(&fail_at, memory_order_relaxed);
    return at != 0 && n == at;
}

static void *taken(void *p)
{
    if (p) atomic_fetch_add_explicit(&live, 1, memory_order_relaxed);
    return p;
}

void *wm__malloc(size_t n) { return fault_now() ? NULL : taken(malloc(n)); }
void *wm__calloc(size_t n, size_t size) { return fault_now() ? NULL : taken(calloc(n, size)); }

void *wm__realloc(void *p, size_t n)
{
    if (fault_now()) return NULL; /* p stays valid, as when realloc fails */
    void *q = realloc(p, n);
    return p ? q : taken(q);
}

void wm__free(void *p)
{
    if (p) atomic_fetch_sub_explicit(&live, 1, memory_order_relaxed);
    free(p);
}

void *wm__secure_malloc(size_t n) { return fault_now() ? NULL : taken(sodium_malloc(n)); }

void wm__secure_free(void *p)
{
    if (p) atomic_fetch_sub_explicit(&live, 1, memory_order_relaxed);
    sodium_free(p);
}
#else
void *wm__secure_malloc(size_t n) { return sodium_malloc(n); }
void wm__secure_free(void *p) { sodium_free(p); }
#endif
