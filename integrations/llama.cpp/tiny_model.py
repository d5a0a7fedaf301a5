#!/usr/bin/env python3
"""A tiny GPT-2-architecture GGUF with random weights and GPT-2's real
tokenizer, for testing the watermarking server end to end (its text is
noise, but high-entropy noise: every step is watermarked and detectable).

    tiny_model.py GGUF_PY_DIR VOCAB_GGUF OUT.gguf [SEED]

GGUF_PY_DIR: the pinned llama.cpp source's gguf-py; VOCAB_GGUF: its
ggml-vocab-gpt-2.gguf (tokenizer metadata copied as is).  Deterministic for
a seed."""
import sys

import numpy as np

sys.path.insert(0, sys.argv[1])
import gguf  # noqa: E402

VOCAB, OUT = sys.argv[2], sys.argv[3]
SEED = int(sys.argv[4]) if len(sys.argv) > 4 else 1
N_EMBD, N_LAYER, N_HEAD, N_FF, N_CTX = 64, 2, 4, 256, 512

r = gguf.GGUFReader(VOCAB)


def field(name):
    f = r.fields[name]
    if f.types[0] == gguf.GGUFValueType.ARRAY:
        if f.types[1] == gguf.GGUFValueType.STRING:
            return [bytes(f.parts[i]).decode("utf-8", "surrogateescape") for i in f.data]
        return [int(f.parts[i][0]) for i in f.data]
    if f.types[0] == gguf.GGUFValueType.STRING:
        return bytes(f.parts[f.data[0]]).decode()
    return f.parts[f.data[0]][0].item()


tokens = field("tokenizer.ggml.tokens")
n_vocab = len(tokens)
w = gguf.GGUFWriter(OUT, "gpt2")
w.add_name("libwm-tiny-random")
w.add_context_length(N_CTX)
w.add_embedding_length(N_EMBD)
w.add_feed_forward_length(N_FF)
w.add_block_count(N_LAYER)
w.add_head_count(N_HEAD)
w.add_layer_norm_eps(1e-5)
w.add_file_type(gguf.LlamaFileType.ALL_F32)
w.add_tokenizer_model(field("tokenizer.ggml.model"))
w.add_tokenizer_pre(field("tokenizer.ggml.pre"))
w.add_token_list(tokens)
w.add_token_types(field("tokenizer.ggml.token_type"))
w.add_token_merges(field("tokenizer.ggml.merges"))
w.add_bos_token_id(field("tokenizer.ggml.bos_token_id"))
w.add_eos_token_id(field("tokenizer.ggml.eos_token_id"))
# fill-in-the-middle markers (three rare GPT-2 tokens), so /infill is served too
for key, tok in ((gguf.Keys.Tokenizer.FIM_PRE_ID, 50250), (gguf.Keys.Tokenizer.FIM_SUF_ID, 50251),
                 (gguf.Keys.Tokenizer.FIM_MID_ID, 50252)):
    w.add_uint32(key, tok)

rng = np.random.default_rng(SEED)


def t(name, *shape, scale=0.02, value=None):
    a = np.full(shape, value, dtype=np.float32) if value is not None else \
        (rng.standard_normal(shape) * scale).astype(np.float32)
    w.add_tensor(name, a)


# numpy shapes are (rows, cols) = (out, in); gguf reverses them to ggml's ne
t("token_embd.weight", n_vocab, N_EMBD)
t("output.weight", n_vocab, N_EMBD, scale=0.1)  # untied and wide: high-entropy steps
t("position_embd.weight", N_CTX, N_EMBD)
for i in range(N_LAYER):
    b = f"blk.{i}."
    t(b + "attn_norm.weight", N_EMBD, value=1.0)
    t(b + "attn_norm.bias", N_EMBD, value=0.0)
    t(b + "attn_qkv.weight", 3 * N_EMBD, N_EMBD)
    t(b + "attn_qkv.bias", 3 * N_EMBD, value=0.0)
    t(b + "attn_output.weight", N_EMBD, N_EMBD)
    t(b + "attn_output.bias", N_EMBD, value=0.0)
    t(b + "ffn_norm.weight", N_EMBD, value=1.0)
    t(b + "ffn_norm.bias", N_EMBD, value=0.0)
    t(b + "ffn_up.weight", N_FF, N_EMBD)
    t(b + "ffn_up.bias", N_FF, value=0.0)
    t(b + "ffn_down.weight", N_EMBD, N_FF)
    t(b + "ffn_down.bias", N_EMBD, value=0.0)
t("output_norm.weight", N_EMBD, value=0.5)
t("output_norm.bias", N_EMBD, value=0.0)
w.write_header_to_file()
w.write_kv_data_to_file()
w.write_tensors_to_file()
w.close()
print(f"{OUT}: gpt2 architecture, {N_LAYER} layers, {N_EMBD} wide, vocabulary {n_vocab}", file=sys.stderr)
