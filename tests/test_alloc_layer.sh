#!/usr/bin/env bash
# Every allocation of the library goes through libwm/core/alloc.h, or the
# fault-injection test (tests/test_fault.c) cannot reach it: no direct
# malloc, calloc, realloc, strdup or free, no sodium_malloc / sodium_free and
# no utf8proc_map (it allocates with malloc) in libwm/, the CLI and the
# llama.cpp sampler (programs and plugins on the public API) and the layer
# itself excepted.
#
#   test_alloc_layer.sh LIBWM_DIR
set -uo pipefail
cd "$1" || exit 2
hits=$(grep -rnE '(^|[^_[:alnum:]>.])(malloc|calloc|realloc|reallocarray|strdup|strndup|aligned_alloc|posix_memalign|free)\(|sodium_(malloc|free|allocarray)\(|utf8proc_map(_custom)?\(' \
    --include='*.c' --include='*.h' . | grep -vE '^\./(cli|llama)/|^\./core/alloc\.[ch]:')
if [ -n "$hits" ]; then
    echo "FAILED: allocations that bypass libwm/core/alloc.h (use wm__malloc, wm__calloc, wm__realloc, wm__free, wm__secure_malloc, wm__secure_free):"
    echo "$hits"
    exit 1
fi
echo "ok: every allocation in libwm/ goes through core/alloc.h"
