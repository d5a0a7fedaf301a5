#!/usr/bin/env bash
# `meson install` put the Python package next to the library: from an empty
# environment (no PYTHONPATH, no LIBWM_LIBRARY, isolated mode, run from /)
# the interpreter imports libwm from its site-packages, with the version of
# this build, and the engine modules load.  Skipped (77) when the build was
# not installed, unless WM_EXPECT_INSTALLED=1 (scripts/test.sh installs).
#
#   tests/test_installed.sh PYTHON VERSION SOURCE_ROOT
py=$1 version=$2 root=$3
out=$(cd / && env -i PATH=/usr/bin:/bin "$py" -I -c '
import sys, libwm, libwm.hf, libwm.vllm, libwm.sglang, libwm.torch_kernel
print(libwm.__file__)
print(libwm.__version__)' 2>&1)
rc=$?
if [ $rc -ne 0 ]; then
    if [ "${WM_EXPECT_INSTALLED:-}" != 1 ] && grep -q "No module named 'libwm'" <<<"$out"; then
        echo "[  SKIPPED ] libwm is not installed (meson install): nothing to check"
        exit 77
    fi
    echo "$out"
    echo "[  FAILED  ] 1 test(s): import libwm after meson install"
    exit 1
fi
file=$(sed -n 1p <<<"$out") got=$(sed -n 2p <<<"$out")
case "$file" in
"$root"/*) echo "imported from the source tree ($file), not the installed package"; exit 1 ;;
esac
if [ "$got" != "$version" ]; then
    echo "installed libwm is $got, this build is $version: run meson install"
    echo "[  FAILED  ] 1 test(s): import libwm after meson install"
    exit 1
fi
echo "import libwm: $file, version $got"
echo "[  PASSED  ] 1 test(s)."
