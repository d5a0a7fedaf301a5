#!/usr/bin/env bash
# Measures the schemes side by side with the demo's models (reduced size):
# quality (teacher perplexity on its own answers by the unwatermarked
# teacher; distinct answers of 10 and distinct-2 over 10 samples of 50
# prompts), detectability (median log10 p of one 120-token answer; median
# answer length for p < 1e-6) and radioactivity (log10 p of the students
# trained on 1, 5 and 10% watermarked data, without / with --filter).
# Prints a Markdown table (scripts/sweep_row.py makes each row).  About a
# minute per setting.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/setup.sh
wm_install_packages bible-kjv python3-numpy
wm_build build
tok=$(scripts/fetch-fixtures.sh)/gpt2/tokenizer.json
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
bible -f "Gen1:1-Rev22:21" > "$tmp/kjv.txt"
echo "| scheme | perplexity plain -> watermarked | distinct answers of 10 | distinct-2 | one answer: median log10 p | tokens for p < 1e-6 | student 1%: log10 p (filter) | 5% | 10% |"
echo "|---|---|---|---|---:|---:|---|---|---|"
for cfg in "kgw 0.25 1 1" "kgw 0.25 1 2" "kgw 0.25 2 1" "kgw 0.25 2 2" "gumbel - - 1" "gumbel - - 2" "gumbel - - 4"; do
    set -- $cfg
    d="$tmp/$1-$2-$3-$4"
    mkdir -p "$d"
    if [ "$1" = kgw ]; then
        build/libwm/wm keygen --gamma "$2" --delta "$3" --context-width "$4" --tokenizer "$tok" -o "$d/k.wmkey" 2>/dev/null
        label="kgw gamma $2 delta $3 h $4"
    else
        build/libwm/wm keygen --scheme gumbel --context-width "$4" --tokenizer "$tok" -o "$d/k.wmkey" 2>/dev/null
        label="gumbel h $4"
    fi
    build/examples/distill_demo "$d" "$d/k.wmkey" "$tok" "$tmp/kjv.txt" --quick 2>/dev/null
    /usr/bin/python3 scripts/sweep_row.py build/libwm/wm build/libwm/libwm.so "$tok" "$d" "$label"
done
