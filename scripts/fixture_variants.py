#!/usr/bin/env python3
"""Variants of the real tokenizer.json files that exercise components none of
them uses (called by fetch-fixtures.sh):

    fixture_variants.py FIXTURES bpe|sp
"""
import json
import os
import sys

d, which = sys.argv[1], sys.argv[2]


def variant(src, name, edit):
    t = json.load(open(f"{d}/{src}/tokenizer.json", encoding="utf-8"))
    edit(t)
    os.makedirs(f"{d}/{name}", exist_ok=True)
    json.dump(t, open(f"{d}/{name}/tokenizer.json", "w", encoding="utf-8"), ensure_ascii=False)


def bpe():
    """The NFKC and NFD normalizers and the Digits pre-tokenizer."""
    variant("qwen3", "qwen3-nfkc", lambda t: t.update(normalizer={"type": "NFKC"}))
    variant("llama3", "llama3-nfd", lambda t: t.update(normalizer={"type": "Sequence", "normalizers": [{"type": "NFD"}]}))
    variant("gpt2", "gpt2-digits", lambda t: t.update(pre_tokenizer={"type": "Sequence", "pretokenizers": [
        {"type": "Digits", "individual_digits": True},
        {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True}]}))


def sp():
    """Metaspace (each prepend_scheme, split or not, as pre-tokenizer and
    decoder), Strip, Replace with a regex, Split with string patterns and more
    behaviors after it."""
    ms = lambda scheme, split: {"type": "Metaspace", "replacement": "\u2581", "prepend_scheme": scheme, "split": split}
    split = lambda pat, behavior, invert=False: {"type": "Split", "pattern": pat, "behavior": behavior, "invert": invert}
    llama_dec = json.load(open(f"{d}/llama2/tokenizer.json", encoding="utf-8"))["decoder"]
    variant("llama2", "llama2-ms-first", lambda t: t.update(normalizer=None, pre_tokenizer=ms("first", False)))
    variant("llama2", "llama2-ms-split", lambda t: t.update(
        normalizer={"type": "Strip", "strip_left": True, "strip_right": True}, pre_tokenizer=ms("always", True),
        decoder={"type": "Sequence", "decoders": [ms("always", True), {"type": "ByteFallback"}, {"type": "Fuse"}]}))
    variant("llama2", "llama2-removed", lambda t: t.update(normalizer=None, pre_tokenizer={"type": "Sequence", "pretokenizers": [
        ms("first", True), split({"String": "e"}, "Removed"), split({"String": "\u2581"}, "Contiguous"),
        split({"Regex": "[.,;]"}, "MergedWithPrevious", True)]}))
    variant("gemini", "gemini-regex", lambda t: t.update(
        normalizer={"type": "Sequence", "normalizers": [{"type": "NFKC"}, {"type": "Replace", "pattern": {"Regex": "\\s+"}, "content": " "},
                    {"type": "Replace", "pattern": {"String": " "}, "content": "\u2581"}]},
        pre_tokenizer={"type": "Sequence", "pretokenizers": [split({"String": "\u2581"}, "MergedWithNext"),
                       split({"Regex": "\\p{N}"}, "Isolated"), ms("never", False)]},
        decoder={"type": "Sequence", "decoders": [ms("never", False), {"type": "ByteFallback"}, {"type": "Fuse"},
                 {"type": "Strip", "content": " ", "start": 2, "stop": 0}]}))


{"bpe": bpe, "sp": sp}[which]()
