#!/usr/bin/env bash
# The CLI's threaded paths: `wm detect --threads N` and `wm tokenize`
# tokenize documents on a pool of threads that share one wm_tokenizer, each
# with its own encoder (libwm/cli/common.c, run_pool).  Output with 4 threads
# must be byte for byte that of 1 thread, per document, with --window, and
# for a corpus with attribution.  scripts/test.sh runs this under
# ThreadSanitizer (build-tsan, TSAN_OPTIONS=halt_on_error=1), where a data
# race makes wm exit non-zero.
#
#   test_cli_threads.sh WM CLI_GEN FIXTURES_DIR
set -euo pipefail
wm=$1 gen=$2 fixtures=$3
tok=$fixtures/gpt2/tokenizer.json
if [ ! -f "$tok" ]; then
    echo "*** SKIPPED: $tok is missing (scripts/fetch-fixtures.sh): the CLI's threads are NOT tested" >&2
    exit 77
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
"$wm" keygen --tokenizer "$tok" --account-delta 2 -o "$tmp/k.wmkey" 2>"$tmp/keygen.err" || { cat "$tmp/keygen.err" >&2; exit 1; }
# watermarked documents for account 7, and as many without the watermark
"$gen" "$tmp/k.wmkey" "$tok" 16 100 1 5 7 >"$tmp/docs.jsonl"
"$gen" "$tmp/k.wmkey" "$tok" 16 100 0 6 >>"$tmp/docs.jsonl"
seq 1 20 >"$tmp/accounts.txt"
fail=0
same() { # WHAT ARGS...: the output with 1 thread and with 4
    local what=$1
    shift
    "$wm" "$@" --threads 1 "$tmp/docs.jsonl" >"$tmp/one" 2>"$tmp/one.err" || { cat "$tmp/one.err" >&2; echo "FAILED: $what (1 thread)"; fail=1; return; }
    "$wm" "$@" --threads 4 "$tmp/docs.jsonl" >"$tmp/four" 2>"$tmp/four.err" || { cat "$tmp/four.err" >&2; echo "FAILED: $what (4 threads)"; fail=1; return; }
    if cmp -s "$tmp/one" "$tmp/four" && [ -s "$tmp/one" ]; then
        echo "ok: $what: $(wc -l <"$tmp/one") lines, identical with 1 and 4 threads"
    else
        echo "FAILED: $what: output differs between 1 and 4 threads"
        fail=1
    fi
}
same "detect per document" detect --key "$tmp/k.wmkey" --tokenizer "$tok" --jsonl --json
same "detect --window" detect --key "$tmp/k.wmkey" --tokenizer "$tok" --jsonl --json --window
same "detect --corpus --accounts" detect --key "$tmp/k.wmkey" --tokenizer "$tok" --jsonl --json --accounts "$tmp/accounts.txt"
same "tokenize" tokenize --tokenizer "$tok" --jsonl
exit $fail
