#!/usr/bin/env bash
# The neural distillation demo in reduced form (examples/neural/distill.py
# --reduced): a small teacher served by the libwm llama-server, harvested
# through two accounts over /v1/completions, a 0% and a 100% student.  The
# script checks its own bars (0% student and unrelated keys not flagged,
# 100% student flagged, teacher answers detected one by one).  Then reading
# mode through both drivers on the run's students (read_gguf.py): wm-read
# on their GGUFs through libllama must agree with read_torch.  Then the
# attribution demo, reduced (examples/neural/attribute.py --reduced): reading
# the student fed by a sole account must name it among 1,000 ids, and nobody
# else is named in either mode (that student, the 0% one, the control answers, 5 other
# master keys).
#
#   tests/test_neural.sh LIBWM_BUILD_DIR
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
bld=$(cd "$1" && pwd)
export LIBWM_LIBRARY=$bld/libwm/libwm.so # the library of the build under test, for every script below
server=$("$root/integrations/llama.cpp/build-server.sh" "$bld") || { echo "[  FAILED  ] 1 test(s): llama-server build"; exit 1; }
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
if /usr/bin/python3 "$root/examples/neural/distill.py" --reduced --out "$out" --wm "$bld/libwm/wm" --server "$server" \
    --gguf-py "$root/.cache/llama-server/src/gguf-py" --cache "$root/.cache/neural"; then
    echo "[  PASSED  ] reduced neural distillation demo"
else
    echo "[  FAILED  ] 1 test(s): reduced neural distillation demo"
    exit 1
fi
if /usr/bin/python3 "$root/examples/neural/read_gguf.py" "$out" --reduced --wm-read "$root/.cache/llama-server/wm-read" \
    --gguf-py "$root/.cache/llama-server/src/gguf-py" --cache "$root/.cache/neural"; then
    echo "[  PASSED  ] reading mode, GGUF driver against PyTorch"
else
    echo "[  FAILED  ] 1 test(s): reading mode, GGUF driver against PyTorch"
    exit 1
fi
if /usr/bin/python3 "$root/examples/neural/attribute.py" --reduced --out "$out/attribution" --wm "$bld/libwm/wm" \
    --server "$server" --gguf-py "$root/.cache/llama-server/src/gguf-py" --cache "$root/.cache/neural"; then
    echo "[  PASSED  ] 3 test(s)."
else
    echo "[  FAILED  ] 1 test(s): reduced attribution demo"
    exit 1
fi
