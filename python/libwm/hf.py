"""Hugging Face transformers: LibwmLogitsProcessor, for
generate(logits_processor=LogitsProcessorList([...])) and pipelines.

It subclasses transformers.LogitsProcessor when transformers is importable
(a plain class otherwise, with the same call protocol), under a name that
does not shadow transformers' own WatermarkLogitsProcessor.  Read against
transformers' src/transformers/generation/logits_process.py at commit
00857b6cf63a (LogitsProcessor.__call__(input_ids, scores) -> scores;
LogitsProcessorList calls two-argument processors positionally).

kgw: scores are biased in place and returned.  On the CPU (float32,
bfloat16, float16) the C library writes into the tensor itself; on a GPU the
green list is computed there from input_ids (libwm.torch_kernel), so nothing
of vocabulary size crosses the bus and nothing waits on the host.  Neither
path keeps per-step buffers of its own (PyTorch's caching allocator serves
the GPU path's temporaries).

gumbel: give the sampling settings here (temperature, top_k, top_p, as
passed to generate); the processor picks each row's token and returns a
one-hot row (0 there, -inf elsewhere), which any later warper keeps.  On a
context seed already used in the row's sequence it draws plainly with its
own RNG (seed).  One processor per generate() call.  This path reads the
scores on the host.

accounts (kgw with an account layer): the account each row is generated
for, one id per row of the batch (or one id for every row); 0 or None:
none."""
from . import _Selector, _ids_numpy, _one_hot, _shape, _to_numpy, _token_list

try:
    from transformers import LogitsProcessor as _Base
except ImportError:  # transformers is optional
    _Base = object

__all__ = ["LibwmLogitsProcessor"]


class LibwmLogitsProcessor(_Base):
    # transformers' continuous batching passes other layouts than [batch, seq]
    # input_ids: not claimed until tested there.
    supports_continuous_batching = False

    def __init__(self, watermark, accounts=None, temperature=1.0, top_k=0, top_p=1.0, seed=0):
        self.watermark = watermark
        self.accounts = accounts
        self._sel = _Selector(watermark, temperature, top_k, top_p, seed) if watermark.scheme != "kgw" else None

    def __call__(self, input_ids, scores):
        if self._sel is None:
            acc = self.accounts
            if acc is not None and not hasattr(acc, "__len__"):
                acc = [acc] * (1 if len(_shape(scores)) == 1 else _shape(scores)[0])
            return self.watermark.bias_batch(scores, input_ids, acc)
        ids = _ids_numpy(input_ids)
        rows = _to_numpy(scores)
        self._sel.new_sequences_if(ids.shape[-1])
        chosen = [(r, self._sel.token(r, _token_list(ids[r]), rows[r])) for r in range(rows.shape[0])]
        return _one_hot(scores, chosen)
