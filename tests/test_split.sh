#!/usr/bin/env bash
# The layers link what they need and no more (docs/ARCHITECTURE.md,
# "Layers"): libwm (key, embed, detect on ids) needs libsodium and libc/libm
# only; the tokenizer and its libraries (jansson, PCRE2, utf8proc) are in
# libwm-tokenizer, which needs libwm; a program that only embeds and
# detects on ids (examples/embed_detect) loads none of them.
#
#   test_split.sh LIBWM.so LIBWM-TOKENIZER.so EMBED-ONLY-PROGRAM
set -uo pipefail
core=$1 tok=$2 prog=$3
tok_libs='libjansson|libpcre2|libutf8proc'
tok_syms='json_|pcre2_|utf8proc_'
fails=0
bad() { echo "FAILED: $*"; fails=$((fails + 1)); }

# libwm: no undefined symbol of the tokenizer's libraries, none of them
# needed (directly or through another library), no tokenizer call exported.
hits=$(nm -D --undefined-only "$core" | awk '{print $NF}' | grep -E "^($tok_syms)")
[ -z "$hits" ] || bad "$core needs tokenizer symbols:" $hits
hits=$(ldd "$core" | grep -E "$tok_libs")
[ -z "$hits" ] || bad "$core loads tokenizer libraries: $hits"
hits=$(nm -D --defined-only "$core" | awk '{print $NF}' | grep -E '^wm_(tokenizer_|encode|encoder_|decode)')
[ -z "$hits" ] || bad "$core exports tokenizer calls:" $hits

# libwm-tokenizer: the tokenizer's calls, libwm as a dependency (not a copy).
for f in wm_tokenizer_load wm_encode wm_encode_stream wm_decode wm_tokenizer_version; do
    nm -D --defined-only "$tok" | awk '{print $NF}' | grep -qx "$f" || bad "$tok does not export $f"
done
readelf -d "$tok" | grep -q 'NEEDED.*\[libwm\.so\.0\]' || bad "$tok does not need libwm.so.0"
nm -D --defined-only "$tok" | awk '{print $NF}' | grep -qx wm_watermark_new && bad "$tok exports libwm's wm_watermark_new (a copy of libwm inside it)"

# A program that embeds and detects on ids.
hits=$(ldd "$prog" | grep -E "$tok_libs|libwm-tokenizer")
[ -z "$hits" ] || bad "$prog (embedding only) loads: $hits"

if [ $fails -ne 0 ]; then
    echo "[  FAILED  ] $fails check(s)"
    exit 1
fi
echo "libwm: $(readelf -d "$core" | grep -o 'NEEDED.*' | sed 's/.*\[\(.*\)\]/\1/' | tr '\n' ' ')"
echo "libwm-tokenizer: $(readelf -d "$tok" | grep -o 'NEEDED.*' | sed 's/.*\[\(.*\)\]/\1/' | tr '\n' ' ')"
echo "[  PASSED  ] 1 test(s): libwm links no tokenizer library"
