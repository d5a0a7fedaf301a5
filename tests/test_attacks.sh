#!/usr/bin/env bash
# Issue 26 in reduced form: the distiller who fights back with watermark
# neutralization (Pan et al.'s WN at delta' 2.5, examples/neural/attacks/wn.py)
# on the reduced demo's 100% and 0% students (teacher and student bases
# cached in .cache/neural, the provider's watermark applied by libwm's
# wm_bias_logits_batch in PyTorch: no server needed), scored by every
# detection mode.  run.py --reduced checks its own bars: it fails if any of
# its MUST_CATCH modes (reading top-1 and weighted on the released weights,
# reading with WN's n = 0 part baked in) stops catching the 100% student
# under WN at p < 1e-3, if any mode flags the 0% control at p < 1e-3, or if
# any closed mode flags it under the 20 unrelated keys (Bonferroni over the
# key-mode pairs).  Then the exactness of the new modes.
# WM_ATTACK_ARGS: extra run.py options (e.g. --threads 1 on a shared machine).
#
#   tests/test_attacks.sh LIBWM_BUILD_DIR
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
bld=$(cd "$1" && pwd)
export LIBWM_LIBRARY=$bld/libwm/libwm.so
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
t0=$(date +%s)
if /usr/bin/python3 "$root/examples/neural/attacks/run.py" --reduced --attacks none,wn --wn-delta 2.5 \
    --out "$out" --cache "$root/.cache/neural" ${WM_ATTACK_ARGS:-}; then
    echo "[  PASSED  ] reduced attacks: WN caught, control clean ($(( $(date +%s) - t0 )) s)"
else
    echo "[  FAILED  ] 1 test(s): reduced attacks"
    exit 1
fi
if /usr/bin/python3 "$root/tests/test_attack_modes.py"; then
    echo "[  PASSED  ] 2 test(s)."
else
    echo "[  FAILED  ] 1 test(s): attack modes exactness"
    exit 1
fi
