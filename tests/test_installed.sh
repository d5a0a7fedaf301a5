#!/usr/bin/env bash
# What `meson install` puts on a system works as installed:
#
# 1. Into a scratch DESTDIR: programs compile and link with nothing but
#    `pkg-config --cflags --libs libwm` (an embedding program,
#    examples/embed_detect.c, which runs and loads no tokenizer library) and
#    `... libwm-tokenizer` (a program that tokenizes and reads the
#    tokenizer's library versions, which runs and gets the known ids).
# 2. The real prefix: from an empty environment (no PYTHONPATH, no
#    LIBWM_LIBRARY, isolated mode, run from /) the interpreter imports libwm
#    from its site-packages, with the version of this build, the engine
#    modules load and so does libwm-tokenizer.  Skipped when the build was
#    not installed, unless WM_EXPECT_INSTALLED=1 (scripts/test.sh installs).
#
#   tests/test_installed.sh PYTHON VERSION SOURCE_ROOT MESON BUILD_ROOT PREFIX LIBDIR FIXTURES CC
py=$1 version=$2 root=$3 meson=$4 build=$5 prefix=$6 libdir=$7 fix=$8 cc=$9
fail() { echo "$*"; echo "[  FAILED  ] 1 test(s): installed libwm"; exit 1; }

tmp=$(mktemp -d) || exit 1
trap 'rm -rf "$tmp"' EXIT
dest=$tmp/dest
"$meson" install -C "$build" --no-rebuild --quiet --destdir "$dest" >"$tmp/install.log" 2>&1 ||
    fail "meson install --destdir failed: $(tail -5 "$tmp/install.log")"
lib=$dest$prefix/$libdir
[ -f "$lib/pkgconfig/libwm.pc" ] && [ -f "$lib/pkgconfig/libwm-tokenizer.pc" ] ||
    fail "meson install put no libwm.pc and libwm-tokenizer.pc in $lib/pkgconfig"
# The .pc files name the real prefix; pkg-config reads them from DESTDIR with it moved there.
pc() { PKG_CONFIG_PATH=$lib/pkgconfig pkg-config --define-variable=prefix="$dest$prefix" "$@"; }
for p in libwm libwm-tokenizer; do
    got=$(pc --modversion "$p") || fail "pkg-config $p: $(pc --modversion "$p" 2>&1)"
    [ "$got" = "$version" ] || fail "pkg-config $p is version $got, this build $version"
done
# Requires libwm; the tokenizer's libraries are private to it.
tok_libs=$(pc --libs libwm-tokenizer)
grep -q -- ' -lwm-tokenizer ' <<<" $tok_libs " && grep -q -- ' -lwm ' <<<" $tok_libs " ||
    fail "pkg-config --libs libwm-tokenizer: $tok_libs (no -lwm-tokenizer -lwm)"
case " $(pc --libs libwm) " in *jansson*|*pcre2*|*utf8proc*|*wm-tokenizer*) fail "pkg-config --libs libwm: $(pc --libs libwm)" ;; esac

# shellcheck disable=SC2046 # pkg-config's flags are words
"$cc" -std=c11 -D_DEFAULT_SOURCE -o "$tmp/embed" "$root/examples/embed_detect.c" $(pc --cflags --libs libwm) -lm ||
    fail "examples/embed_detect.c does not build with pkg-config libwm"
cat >"$tmp/tok.c" <<'C'
#include <stdio.h>
#include <wm.h>
int main(int argc, char **argv)
{
    wm_tokenizer *tok;
    wm_encoder *enc;
    wm_error err = { "" };
    const wm_token *ids;
    size_t n;
    const char *name, *v;
    (void)argc;
    if (wm_tokenizer_load(&tok, argv[1], &err) || wm_encoder_new(&enc, tok)) return fprintf(stderr, "%s\n", err.message), 1;
    if (wm_encode(enc, "Hello world", 11, 0, &ids, &n, &err)) return fprintf(stderr, "%s\n", err.message), 1;
    for (size_t i = 0; i < n; i++) printf("%s%d", i ? " " : "", (int)ids[i]);
    for (size_t i = 0; i < wm_tokenizer_n_versions(); i++)
        if (wm_tokenizer_version(i, &name, &v) == WM_OK) printf("\n%s %s", name, v);
    printf("\n%s\n", wm_strerror(WM_OK));
    wm_encoder_free(enc);
    wm_tokenizer_free(tok);
    return 0;
}
C
# shellcheck disable=SC2046
"$cc" -std=c11 -o "$tmp/tok" "$tmp/tok.c" $(pc --cflags --libs libwm-tokenizer) ||
    fail "a tokenizer program does not build with pkg-config libwm-tokenizer"
out=$(LD_LIBRARY_PATH=$lib "$tmp/embed" 2>&1) || fail "embed_detect, installed: $out"
loads=$(LD_LIBRARY_PATH=$lib ldd "$tmp/embed")
grep -q "libwm.so.0 => $lib/" <<<"$loads" || fail "embed_detect does not load the installed libwm: $loads"
grep -Eq 'libjansson|libpcre2|libutf8proc|libwm-tokenizer' <<<"$loads" && fail "embed_detect (embedding only) loads: $loads"
out=$(LD_LIBRARY_PATH=$lib "$tmp/tok" "$fix/gpt2/tokenizer.json" 2>&1) || fail "the tokenizer program, installed: $out"
[ "$(sed -n 1p <<<"$out")" = "15496 995" ] || fail "installed tokenizer: 'Hello world' is $(sed -n 1p <<<"$out"), not 15496 995"
grep -q '^utf8proc_unicode [0-9]' <<<"$out" && grep -q '^pcre2_unicode [0-9]' <<<"$out" ||
    fail "installed tokenizer reports no Unicode versions: $out"
echo "pkg-config: libwm $(pc --libs libwm) | libwm-tokenizer $tok_libs; built, ran: embed_detect, tokenizer ($(sed -n 2,5p <<<"$out" | tr '\n' ';'))"

out=$(cd / && env -i PATH=/usr/bin:/bin "$py" -I -c '
import sys, libwm, libwm.hf, libwm.vllm, libwm.sglang, libwm.torch_kernel
print(libwm.__file__)
print(libwm.__version__)
print(libwm.tokenizer_versions())' 2>&1)
rc=$?
if [ $rc -ne 0 ]; then
    if [ "${WM_EXPECT_INSTALLED:-}" != 1 ] && grep -q "No module named 'libwm'" <<<"$out"; then
        echo "libwm is not installed in $prefix (meson install): the import from site-packages is not checked"
        echo "[  PASSED  ] 1 test(s)."
        exit 0
    fi
    fail "$out"
fi
file=$(sed -n 1p <<<"$out") got=$(sed -n 2p <<<"$out")
case "$file" in
"$root"/*) fail "imported from the source tree ($file), not the installed package" ;;
esac
[ "$got" = "$version" ] || fail "installed libwm is $got, this build is $version: run meson install"
echo "import libwm: $file, version $got, tokenizer $(sed -n 3p <<<"$out")"
echo "[  PASSED  ] 1 test(s)."
