#!/usr/bin/env bash
# The main job: the distillation demo.  Installs what is missing, builds.
#
# Default (neural, through a real API): builds llama-server with libwm from
# the pinned llama.cpp source (cached in .cache/llama-server: about 17
# minutes on 2 cores the first time), trains a GPT teacher on half the King
# James Bible (cached in .cache/neural), serves it with a fresh key and
# per-account API keys, harvests it over /v1/completions through proxy
# accounts, fine-tunes neural students on 0..100% harvested watermarked
# answers and scores each with `wm detect --corpus`.  Everything lands in
# out/neural-DATE/ (corpora, results.csv, results.md, radioactivity.png,
# teacher.json, server-bench.jsonl).
#
# --quick: the n-gram demo (trigram teacher, bigram students, about a
# minute), everything in out/demo-DATE/.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/setup.sh
start=$(date +%s)
if [ "${1:-}" = "--quick" ]; then
    wm_install_packages bible-kjv gnuplot-nox
    wm_build build $(wm_python_opt) && wm_install build || exit 1
    fixtures=$(scripts/fetch-fixtures.sh)
    tok=$fixtures/gpt2/tokenizer.json
    out=out/demo-$(date +%Y%m%d-%H%M%S)
    mkdir -p "$out"
    echo "demo: output folder $out" >&2
    bible -f "Gen1:1-Rev22:21" > "$out/kjv.txt"
    build/libwm/wm keygen --tokenizer "$tok" -o "$out/demo.wmkey"
    build/examples/distill_demo "$out" "$out/demo.wmkey" "$tok" "$out/kjv.txt"
    set +e
    python3 examples/demo_report.py build/libwm/wm "$tok" "$out"
    rc=$?
else
    wm_install_packages bible-kjv gnuplot-nox python3-numpy python3-torch libopenblas0-pthread cmake g++ git
    wm_build build $(wm_python_opt) && wm_install build || exit 1
    server=$(integrations/llama.cpp/build-server.sh build)
    out=out/neural-$(date +%Y%m%d-%H%M%S)
    echo "demo: output folder $out" >&2
    set +e
    /usr/bin/python3 examples/neural/distill.py --out "$out" --wm build/libwm/wm --server "$server" \
        --gguf-py .cache/llama-server/src/gguf-py --cache .cache/neural
    rc=$?
fi
echo
echo "demo: done in $(( $(date +%s) - start )) s; everything is in $out"
exit $rc
