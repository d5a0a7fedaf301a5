#!/usr/bin/env python3
"""A GGUF in Qwen2.5-0.5B's layout with random weights, for measuring what the
watermark costs a server at a real model's size and vocabulary.

    qwen_gguf.py GGUF_PY_DIR QWEN_TOKENIZER.json OUT.gguf [--layers N]

llama.cpp's "qwen2" architecture (src/models/qwen2.cpp of the pinned
release): 24 blocks, 896 wide, 14 query heads and 2 key/value heads of 64,
SwiGLU 4,864, RMSNorm, rope base 10^6, q/k/v biases, output tied to the
embedding; vocabulary 151,936 (Qwen's 151,669 tokens from its tokenizer.json,
padded as Qwen pads its embedding).  494 M parameters, f16: about 1 GB.
Weights are N(0, 0.02) with a fixed seed, so the logits are not a trained
model's; the step's cost (the matrix products, the vocabulary-wide softmax
and sampling) is the same."""
import argparse
import json
import sys

import numpy as np

QWEN05 = dict(n_embd=896, n_layer=24, n_head=14, n_head_kv=2, n_ff=4864, n_vocab=151936, n_ctx=32768,
              rope_base=1e6, rms_eps=1e-6)


def vocabulary(path, n_vocab):
    """(tokens, token types, merges, eos id) from a Qwen tokenizer.json."""
    t = json.load(open(path, encoding="utf-8"))
    tokens = [None] * n_vocab
    for s, i in t["model"]["vocab"].items():
        tokens[i] = s
    types = [1] * n_vocab  # gguf TokenType.NORMAL
    for a in t["added_tokens"]:
        tokens[a["id"]] = a["content"]
        types[a["id"]] = 3 if a["special"] else 4  # CONTROL, USER_DEFINED
    for i in range(n_vocab):
        if tokens[i] is None:
            tokens[i], types[i] = f"[PAD{i}]", 5  # UNUSED
    merges = [m if isinstance(m, str) else " ".join(m) for m in t["model"]["merges"]]
    eos = next(a["id"] for a in t["added_tokens"] if a["content"] == "<|endoftext|>")
    return tokens, types, merges, eos


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("gguf_py")
    ap.add_argument("tokenizer")
    ap.add_argument("out")
    ap.add_argument("--layers", type=int, default=QWEN05["n_layer"])
    a = ap.parse_args()
    sys.path.insert(0, a.gguf_py)
    import gguf  # noqa: E402  (llama.cpp's own writer, from the pinned source)

    c = dict(QWEN05, n_layer=a.layers)
    tokens, types, merges, eos = vocabulary(a.tokenizer, c["n_vocab"])
    w = gguf.GGUFWriter(a.out, "qwen2")
    w.add_name("random-qwen2.5-0.5b-layout")
    w.add_context_length(c["n_ctx"])
    w.add_embedding_length(c["n_embd"])
    w.add_feed_forward_length(c["n_ff"])
    w.add_block_count(c["n_layer"])
    w.add_head_count(c["n_head"])
    w.add_head_count_kv(c["n_head_kv"])
    w.add_rope_freq_base(c["rope_base"])
    w.add_layer_norm_rms_eps(c["rms_eps"])
    w.add_file_type(gguf.LlamaFileType.MOSTLY_F16)
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("qwen2")
    w.add_token_list(tokens)
    w.add_token_types(types)
    w.add_token_merges(merges)
    w.add_eos_token_id(eos)
    w.add_bos_token_id(eos)
    w.add_add_bos_token(False)
    rng = np.random.default_rng(20261202)
    d, kv = c["n_embd"], c["n_embd"] // c["n_head"] * c["n_head_kv"]

    def t(name, *shape, norm=False):
        a = np.ones(shape, np.float32) if norm else rng.standard_normal(shape, np.float32) * 0.02
        w.add_tensor(name, a if norm or len(shape) == 1 else a.astype(np.float16))

    t("token_embd.weight", c["n_vocab"], d)
    for i in range(c["n_layer"]):
        b = f"blk.{i}."
        t(b + "attn_norm.weight", d, norm=True)
        t(b + "attn_q.weight", d, d)
        t(b + "attn_q.bias", d)
        t(b + "attn_k.weight", kv, d)
        t(b + "attn_k.bias", kv)
        t(b + "attn_v.weight", kv, d)
        t(b + "attn_v.bias", kv)
        t(b + "attn_output.weight", d, d)
        t(b + "ffn_norm.weight", d, norm=True)
        t(b + "ffn_gate.weight", c["n_ff"], d)
        t(b + "ffn_up.weight", c["n_ff"], d)
        t(b + "ffn_down.weight", d, c["n_ff"])
    t("output_norm.weight", d, norm=True)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


if __name__ == "__main__":
    main()
