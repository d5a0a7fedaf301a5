#!/usr/bin/env bash
# A reduced distillation demo (400 answers instead of 2000) with fixed keys
# and seeds, so it is deterministic: fails if radioactivity stops being
# detected (10% at p < 1e-3, 100% at p < 1e-10) or the control gets flagged
# (0% at p > 0.01, uniform under 20 other keys).
#   test_demo.sh WM DISTILL_DEMO MAKE_KEY SOURCE_ROOT FIXTURES
set -uo pipefail
wm=$1 demo=$2 make_key=$3 root=$4 fix=$5
tok=$fix/gpt2/tokenizer.json
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
bible -f "Gen1:1-Rev22:21" > "$out/kjv.txt" || { echo "[  FAILED  ] 1 test(s): bible-kjv missing"; exit 1; }
"$make_key" 1 "$tok" "$out/demo.wmkey" || exit 1
for i in $(seq -w 0 19); do "$make_key" $((100 + 10#$i)) "$tok" "$out/control-$i.wmkey" || exit 1; done
"$demo" "$out" "$out/demo.wmkey" "$tok" "$out/kjv.txt" --quick 2>/dev/null || { echo "[  FAILED  ] 1 test(s): distill_demo"; exit 1; }
python3 "$root/examples/demo_report.py" "$wm" "$tok" "$out" --quick 2>/dev/null > "$out/report.txt"
rc=$?
cat "$out/report.txt"
pass=$(grep -c '^PASS' "$out/report.txt")
failn=$(grep -c '^FAIL' "$out/report.txt")
echo "[  PASSED  ] $pass test(s)."
[ "$failn" -gt 0 ] && echo "[  FAILED  ] $failn test(s)."
exit $rc
