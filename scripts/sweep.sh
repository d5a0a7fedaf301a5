#!/usr/bin/env bash
# Measures the trade-off behind the default parameters with the demo's
# models (reduced size): quality cost (teacher perplexity with/without the
# watermark), direct detectability (median log10 p of one 120-token teacher
# answer) and radioactivity (log10 p of the 10% student, --corpus).
# Prints a Markdown table.  About 15 s per setting.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/setup.sh
wm_install_packages bible-kjv
wm_build build
tok=$(scripts/fetch-fixtures.sh)/gpt2/tokenizer.json
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
bible -f "Gen1:1-Rev22:21" > "$tmp/kjv.txt"
echo "| gamma | delta | h | scheme | perplexity plain -> watermarked | one answer: median log10 p | 10% student: log10 p |"
echo "|---:|---:|---:|---|---|---:|---:|"
for cfg in "0.25 1 1 lefthash" "0.25 2 1 lefthash" "0.25 4 1 lefthash" "0.5 2 1 lefthash" \
           "0.25 2 2 lefthash" "0.25 2 4 minhash"; do
    set -- $cfg
    d="$tmp/$1-$2-$3-$4"
    mkdir -p "$d"
    build/libwm/wm keygen --gamma "$1" --delta "$2" --context-width "$3" --scheme "$4" --tokenizer "$tok" -o "$d/k.wmkey" 2>/dev/null
    build/examples/distill_demo "$d" "$d/k.wmkey" "$tok" "$tmp/kjv.txt" --quick 2>/dev/null
    one=$(build/libwm/wm detect --key "$d/k.wmkey" --tokenizer "$tok" --jsonl --prompt-field prompt --json "$d/teacher_wm.jsonl" |
          python3 -c 'import json,sys,statistics; print(round(statistics.median(json.loads(l)["log10_p"] for l in sys.stdin), 1))')
    stu=$(build/libwm/wm detect --key "$d/k.wmkey" --tokenizer "$tok" --jsonl --prompt-field prompt --corpus --json "$d/student_010.jsonl" |
          python3 -c 'import json,sys; print(round(json.loads(sys.stdin.read().splitlines()[-1])["log10_p"], 1))')
    ppl=$(python3 -c 'import json,sys; t=json.load(open(sys.argv[1])); print("%.1f -> %.1f" % (t["perplexity_plain"], t["perplexity_watermarked"]))' "$d/teacher.json")
    echo "| $1 | $2 | $3 | $4 | $ppl | $one | $stu |"
done
