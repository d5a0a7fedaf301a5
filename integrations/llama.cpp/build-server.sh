#!/usr/bin/env bash
# Builds llama-server with libwm's watermark from the pinned llama.cpp source
# (node-llama-cpp@3.22.1's git bundle of llama.cpp release v0.5.0, commit
# de3ff81, SHA-256-checked) and libwm-server.patch, CPU only, into
# .cache/llama-server/ (reused while the source, the patch and libwm's
# build are unchanged: about 17 minutes on 2 cores the first time).
#
#   integrations/llama.cpp/build-server.sh LIBWM_BUILD_DIR
#
# Prints the path of the llama-server binary.  Also builds wm-read (reading
# mode on a GGUF suspect, wm-read.c) next to it: .cache/llama-server/wm-read.  Another llama.cpp release:
# clone it into .cache/llama-server/src, apply the patch by hand where it
# does not apply (it touches common/common.h, common/arg.cpp,
# common/sampling.cpp, common/CMakeLists.txt and
# tools/server/server-context.cpp: see the README), and rerun.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
bld=$(cd "${1:?usage: build-server.sh LIBWM_BUILD_DIR}" && pwd)
here=$root/integrations/llama.cpp
dest=$root/.cache/llama-server
ver=3.22.1
stamp="$(sha256sum "$here/libwm-server.patch" | cut -c1-16)-$(sha256sum "$bld/libwm/libwm.so" | cut -c1-16)"
# wm-read: one C file against the built libllama and libwm
reader() {
    local src=$dest/src rstamp
    rstamp="$stamp-$(sha256sum "$here/wm-read.c" | cut -c1-16)"
    [ -x "$dest/wm-read" ] && [ "$(cat "$dest/.rstamp" 2>/dev/null)" = "$rstamp" ] && return 0
    ${CC:-cc} -std=gnu11 -O2 -Wall -Wextra -Werror -I"$src/include" -I"$src/ggml/include" -I"$root/include" \
        -I"$bld/include" "$here/wm-read.c" -o "$dest/wm-read" -L"$src/build/bin" -lllama -L"$bld/libwm" -lwm \
        -ljansson -lm -Wl,-rpath,"$src/build/bin:$bld/libwm" >&2 || exit 2
    echo "$rstamp" > "$dest/.rstamp"
}
if [ -x "$dest/src/build/bin/llama-server" ] && [ "$(cat "$dest/.stamp" 2>/dev/null)" = "$stamp" ]; then
    reader
    echo "$dest/src/build/bin/llama-server"
    exit 0
fi
command -v cmake >/dev/null && command -v g++ >/dev/null || { echo "build-server: needs cmake and g++" >&2; exit 2; }
mkdir -p "$dest"
if [ ! -d "$dest/src/.git" ]; then
    tmp=$(mktemp -d)
    trap 'rm -rf "$tmp"' EXIT
    echo "build-server: fetching node-llama-cpp@$ver (llama.cpp source bundle)" >&2
    (cd "$tmp" && npm pack --silent "node-llama-cpp@$ver" >/dev/null)
    echo "a0d9dd80eacd2ab1cfe71aee57ac8a806487fd70b3d2a38fbec637752d9e5c5f  $tmp/node-llama-cpp-$ver.tgz" | sha256sum -c --quiet -
    tar xzf "$tmp/node-llama-cpp-$ver.tgz" -C "$tmp" package/llama/gitRelease.bundle
    rm -rf "$dest/src"
    git clone -q "$tmp/package/llama/gitRelease.bundle" "$dest/src"
fi
cd "$dest/src"
if ! git apply -R --check "$here/libwm-server.patch" 2>/dev/null; then # not applied yet (or another version)
    git checkout -q -- .                                             # the pristine release, then the patch
    git apply --whitespace=nowarn "$here/libwm-server.patch"
fi
echo "build-server: building llama-server (CPU) against libwm in $bld; progress in $dest/build.log" >&2
cmake -B build -DCMAKE_BUILD_TYPE=Release -DLLAMA_CURL=OFF -DLLAMA_OPENSSL=OFF -DLLAMA_BUILD_TESTS=OFF \
      -DLLAMA_BUILD_EXAMPLES=OFF -DGGML_NATIVE=OFF -DGGML_AVX2=ON -DGGML_CCACHE=OFF \
      -DLIBWM_SOURCE_DIR="$root" -DLIBWM_BUILD_DIR="$bld" > "$dest/build.log" 2>&1
cmake --build build --target llama-server -j"$(nproc)" >> "$dest/build.log" 2>&1 ||
    { tail -20 "$dest/build.log" >&2; exit 2; }
echo "$stamp" > "$dest/.stamp"
reader
echo "$dest/src/build/bin/llama-server"
