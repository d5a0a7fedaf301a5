"""A GPT in llama.cpp's "gpt2" layout (learned positions, pre-LayerNorm,
fused QKV with biases, tanh-GELU MLP, untied output), so a model trained
here loads in llama-server unmodified once written with gguf-py.  Training,
batched sampling with a KV cache, and per-token losses, all on the CPU."""
import math
import time

import numpy as np
import torch
import torch.nn.functional as F


class Config:
    def __init__(self, n_vocab, n_embd, n_layer, n_head, n_ctx=256):
        self.n_vocab, self.n_embd, self.n_layer, self.n_head, self.n_ctx = n_vocab, n_embd, n_layer, n_head, n_ctx

    def __repr__(self):
        return f"{self.n_layer} layers, {self.n_embd} wide, {self.n_head} heads, context {self.n_ctx}"


class Block(torch.nn.Module):
    def __init__(self, c):
        super().__init__()
        self.n_head = c.n_head
        self.ln1 = torch.nn.LayerNorm(c.n_embd)
        self.qkv = torch.nn.Linear(c.n_embd, 3 * c.n_embd)
        self.proj = torch.nn.Linear(c.n_embd, c.n_embd)
        self.ln2 = torch.nn.LayerNorm(c.n_embd)
        self.up = torch.nn.Linear(c.n_embd, 4 * c.n_embd)
        self.down = torch.nn.Linear(4 * c.n_embd, c.n_embd)

    def forward(self, x, cache=None):
        B, T, C = x.shape
        hd = C // self.n_head
        q, k, v = self.qkv(self.ln1(x)).split(C, dim=2)
        q, k, v = (t.view(B, T, self.n_head, hd).transpose(1, 2) for t in (q, k, v))
        if cache is not None:  # generation: append to this layer's keys and values
            if cache:
                k = torch.cat([cache[0], k], 2)
                v = torch.cat([cache[1], v], 2)
            cache[:] = [k, v]
        att = (q @ k.transpose(-2, -1)) / math.sqrt(hd)
        S = k.shape[2]
        if T > 1:
            mask = torch.ones(T, S, dtype=torch.bool).tril(S - T)
            att = att.masked_fill(~mask, float("-inf"))
        y = (att.softmax(-1) @ v).transpose(1, 2).reshape(B, T, C)
        x = x + self.proj(y)
        return x + self.down(F.gelu(self.up(self.ln2(x)), approximate="tanh"))


class GPT(torch.nn.Module):
    def __init__(self, c):
        super().__init__()
        self.c = c
        self.tok = torch.nn.Embedding(c.n_vocab, c.n_embd)
        self.pos = torch.nn.Embedding(c.n_ctx, c.n_embd)
        self.blocks = torch.nn.ModuleList(Block(c) for _ in range(c.n_layer))
        self.ln_f = torch.nn.LayerNorm(c.n_embd)
        self.head = torch.nn.Linear(c.n_embd, c.n_vocab, bias=False)
        for p in self.parameters():
            if p.dim() == 2:
                torch.nn.init.normal_(p, std=0.02)

    def forward(self, idx, start=0, caches=None):
        T = idx.shape[1]
        x = self.tok(idx) + self.pos(torch.arange(start, start + T))
        for i, b in enumerate(self.blocks):
            x = b(x, None if caches is None else caches[i])
        return self.head(self.ln_f(x))

    def n_params(self):
        return sum(p.numel() for p in self.parameters())


def train(model, stream, steps, lr, batch=32, seq=128, seed=1, log=None, warmup=20):
    """AdamW on random windows of the token stream (numpy int array), linear
    warm-up then cosine decay.  Returns (final loss: mean of the last 10
    steps, tokens seen)."""
    g = np.random.default_rng(seed)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.1, betas=(0.9, 0.95))
    model.train()
    losses, t0 = [], time.time()
    for step in range(steps):
        f = min(1.0, (step + 1) / warmup) * 0.5 * (1 + math.cos(math.pi * step / steps))
        for pg in opt.param_groups:
            pg["lr"] = lr * max(f, 0.05)
        starts = g.integers(0, len(stream) - seq - 1, batch)
        x = torch.from_numpy(np.stack([stream[s:s + seq + 1] for s in starts]).astype(np.int64))
        loss = F.cross_entropy(model(x[:, :-1]).reshape(-1, model.c.n_vocab), x[:, 1:].reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        losses.append(loss.item())
        if log and (step % 25 == 0 or step == steps - 1):
            log(step + 1, steps, float(np.mean(losses[-10:])), time.time() - t0)
    model.eval()
    return float(np.mean(losses[-10:])), steps * batch * seq


@torch.no_grad()
def loss_on(model, stream, seq=128):
    """Mean next-token loss over consecutive windows of a held-out stream."""
    n = (len(stream) - 1) // seq
    x = torch.from_numpy(np.asarray(stream[:n * seq + 1], dtype=np.int64))
    tot = 0.0
    for i in range(0, n, 64):
        j = min(n, i + 64)
        xs = torch.stack([x[k * seq:(k + 1) * seq + 1] for k in range(i, j)])
        tot += F.cross_entropy(model(xs[:, :-1]).reshape(-1, model.c.n_vocab), xs[:, 1:].reshape(-1),
                               reduction="sum").item()
    return tot / (n * seq)


@torch.no_grad()
def answer_nll(model, prompts, answers):
    """Mean negative log-likelihood per answer token, given its prompt (token id lists)."""
    tot, n = 0.0, 0
    for p, a in zip(prompts, answers):
        s = (p + a)[-model.c.n_ctx:]
        x = torch.tensor([s])
        lp = F.log_softmax(model(x[:, :-1])[0], -1)
        k = len(a)
        tot -= lp[-k:].gather(1, x[0, -k:, None]).sum().item()
        n += k
    return tot / max(n, 1)


@torch.no_grad()
def sample(model, prompts, n_new, temperature=1.0, seed=1, batch=500, banned=None):
    """Sampled continuations of equal-length prompts (lists of ids), n_new tokens each."""
    g = torch.Generator().manual_seed(seed)
    out = []
    for i in range(0, len(prompts), batch):
        x = torch.tensor(prompts[i:i + batch])
        caches = [[] for _ in model.blocks]
        logits = model(x, 0, caches)[:, -1]
        pos, new = x.shape[1], []
        for _ in range(n_new):
            if banned is not None:
                logits[:, banned] = float("-inf")
            t = torch.multinomial((logits / temperature).softmax(-1), 1, generator=g)
            new.append(t)
            logits = model(t, pos, caches)[:, -1]
            pos += 1
        out += torch.cat(new, 1).tolist()
    return out


def write_gguf(gguf, model, tokens, merges, path, name):
    """The model as a llama.cpp "gpt2" GGUF (f32) with its BPE tokenizer."""
    c = model.c
    w = gguf.GGUFWriter(path, "gpt2")
    w.add_name(name)
    w.add_context_length(c.n_ctx)
    w.add_embedding_length(c.n_embd)
    w.add_feed_forward_length(4 * c.n_embd)
    w.add_block_count(c.n_layer)
    w.add_head_count(c.n_head)
    w.add_layer_norm_eps(1e-5)
    w.add_file_type(gguf.LlamaFileType.ALL_F32)
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("gpt-2")
    w.add_token_list(tokens)
    w.add_token_types([gguf.TokenType.NORMAL] * (len(tokens) - 1) + [gguf.TokenType.CONTROL])
    w.add_token_merges(merges)
    w.add_bos_token_id(len(tokens) - 1)
    w.add_eos_token_id(len(tokens) - 1)
    w.add_add_bos_token(False)
    sd = {k: v.detach().float().numpy() for k, v in model.state_dict().items()}
    t = lambda n, a: w.add_tensor(n, np.ascontiguousarray(a, dtype=np.float32))  # noqa: E731
    t("token_embd.weight", sd["tok.weight"])
    t("position_embd.weight", sd["pos.weight"])
    for i in range(c.n_layer):
        b, s = f"blk.{i}.", f"blocks.{i}."
        for dst, src in (("attn_norm", "ln1"), ("attn_qkv", "qkv"), ("attn_output", "proj"),
                         ("ffn_norm", "ln2"), ("ffn_up", "up"), ("ffn_down", "down")):
            t(b + dst + ".weight", sd[s + src + ".weight"])
            t(b + dst + ".bias", sd[s + src + ".bias"])
    t("output_norm.weight", sd["ln_f.weight"])
    t("output_norm.bias", sd["ln_f.bias"])
    t("output.weight", sd["head.weight"])
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
