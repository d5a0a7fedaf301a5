#!/usr/bin/env bash
# The watermarking llama-server end to end, tried as a hostile client would
# (server_test.py): builds the patched server (build-server.sh), the tiny
# random-weight model with GPT-2's tokenizer (tiny_model.py) and the fault
# shim (fail_shim.c), then runs every check.  Prints cmocka-style lines.
#
#   integrations/llama.cpp/smoke-test.sh LIBWM_BUILD_DIR FIXTURES_DIR
set -uo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
bld=$(cd "$1" && pwd) fix=$2
here=$root/integrations/llama.cpp
server=$("$here/build-server.sh" "$bld") || { echo "[  FAILED  ] 1 test(s): llama-server build"; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
py=/usr/bin/python3
"$py" "$here/tiny_model.py" "$root/.cache/llama-server/src/gguf-py" "$fix/llama/models/ggml-vocab-gpt-2.gguf" \
    "$tmp/tiny.gguf" 2>/dev/null || { echo "[  FAILED  ] 1 test(s): tiny model"; exit 1; }
${CC:-cc} -std=gnu11 -O2 -Wall -Wextra -Werror -shared -fPIC -I"$root/include" -I"$bld/include" \
    "$here/fail_shim.c" -o "$tmp/fail_shim.so" -ldl || { echo "[  FAILED  ] 1 test(s): fault shim"; exit 1; }
"$py" "$here/server_test.py" "$server" "$bld/libwm/wm" "$fix/gpt2/tokenizer.json" "$tmp/tiny.gguf" "$tmp/fail_shim.so"
