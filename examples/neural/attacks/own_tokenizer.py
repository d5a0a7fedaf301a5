"""Attack d (issue 26): a student with its own tokenizer.  The distiller's
student has a byte-level BPE of another size (OWN_VOCAB, not the provider's
2048), trained on the distiller's own data (the students' half of the KJV,
the odd verses), is pretrained there in that tokenization, and is
fine-tuned on the harvested text re-tokenized (decoded to text, encoded
with its own BPE), as a distiller whose vocabulary is not the provider's
would (DeepSeek's is not the teacher's).

Detection across tokenizers (modes.cross_read holds the open rule and its null):
  closed  the suspect's text re-tokenized with the provider's tokenizer and
          scored by every closed mode, as any text is;
  open    the provider's watermarked text read by the student through
          character-aligned positions (TextSeal's _cross_tokenizer_detection):
          kept where a student token ends on a provider token boundary and
          the student's top-1 prediction there is exactly one provider token;
          the share of student positions kept is reported.
Quality in provider-token units: the student's NLL on a text in its own
tokens, times its own token count over the provider's token count of the
same text, so perplexities compare with the other rows'."""
import math

import torch

from attacks import common
import gpt

OWN_VOCAB = 1024  # another size than the provider's kjv.VOCAB (2048)


def retokenize(answers, c_from, c_to):
    """Id lists in one tokenizer -> the same texts in another."""
    return [c_to.encode(c_from.decode(a)) for a in answers]


def sample_texts(model, codec, prompt_texts, n_new, seed, banned):
    """The student's answers (texts) to prompts given as texts: its own
    tokenization gives prompts of different lengths, so they are sampled in
    groups of equal length (common.sample needs equal-length prompts)."""
    enc = [codec.encode(t) for t in prompt_texts]
    out = [None] * len(enc)
    for L in sorted({len(e) for e in enc}):
        rows = [i for i, e in enumerate(enc) if len(e) == L]
        ans = common.sample(model, [enc[i] for i in rows], n_new, seed=seed + L, banned=banned)
        for i, a in zip(rows, ans):
            out[i] = codec.decode(a)
    return out


def quality(model, codec2, codec1, held1, prompts1, plain1):
    """common.quality's two perplexities, per provider token (module docstring)."""
    held_text = codec1.decode(list(held1))
    held2 = codec2.encode(held_text)
    n = min((len(held2) - 1) // 128, 64) * 128  # the tokens stream_nll scores
    nll_v = common.stream_nll(model, held2)
    r_v = n / len(codec1.encode(codec2.decode(held2[1:n + 1])))
    p2 = retokenize(prompts1, codec1, codec2)
    a2 = retokenize(plain1, codec1, codec2)
    nll_t = gpt.answer_nll(model, p2, a2)
    r_t = sum(map(len, a2)) / sum(map(len, plain1))
    return dict(ppl_verses=math.exp(nll_v * r_v), ppl_teacher_plain=math.exp(nll_t * r_t),
                tokens_ratio=r_t)


@torch.no_grad()
def cross_docs(model, codec2, codec1, docs1, batch=32):
    """modes.cross_read's input for provider documents docs1 [(ids1, n_prompt1)]:
    each text in the student's tokens, with every student token's end
    character offset and the student's top-1 prediction after it, decoded."""
    out = []
    for i in range(0, len(docs1), batch):
        part = docs1[i:i + batch]
        t2 = [codec2.encode(codec1.decode(d))[:model.c.n_ctx] for d, _ in part]
        w = max(map(len, t2))
        x = torch.zeros((len(t2), w), dtype=torch.long)
        for r, t in enumerate(t2):
            x[r, :len(t)] = torch.tensor(t)
        top = model(x).argmax(-1).tolist()
        for (d, n), t, pr in zip(part, t2, top):
            ends, pos = [], 0
            for j, tok in enumerate(t):
                pos += len(codec2.decode([tok]))
                ends.append((pos, codec2.decode([pr[j]])))
            out.append(dict(ids1=d, n_prompt1=n, t2=ends))
    return out


def provider_pieces(codec1):
    """modes.cross_read's t1_pieces and t1_id for the provider's tokenizer."""
    pieces = [codec1.decode([i]) for i in range(len(codec1.tokens))]
    return pieces, {p: i for i, p in enumerate(pieces) if p}
