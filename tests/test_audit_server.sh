#!/usr/bin/env bash
# tests/test_audit_api.py with its real-server part: the patched llama-server
# (integrations/llama.cpp/build-server.sh, cached) serving a tiny random
# model without --wm-key, audited in the answers, logprobs and prefix modes.
#   tests/test_audit_server.sh LIBWM_BUILD_DIR FIXTURES_DIR
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
bld=$(cd "$1" && pwd) fix=$2
server=$("$root/integrations/llama.cpp/build-server.sh" "$bld") || { echo "[  FAILED  ] 1 test(s): llama-server build"; exit 1; }
exec /usr/bin/python3 "$root/tests/test_audit_api.py" "$bld/libwm/wm" "$bld/tests/cli_gen" "$bld/tests/make_key" "$fix" \
    --server "$server" "$root/.cache/llama-server/src/gguf-py"
