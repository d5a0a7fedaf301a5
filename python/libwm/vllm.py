"""vLLM: one logits processor per model runner, both bias-only
(is_argmax_invariant() is False, so greedy requests are watermarked too) and
one batched call per step.

  LibwmV1LogitsProcessor  the V1 runner's interface
                          (vllm.v1.sample.logits_processor.LogitsProcessor):
                          batch state from update_state's BatchUpdate
                          (removed, then added, then moved), token history as
                          the host lists vLLM hands over by reference
  LibwmV2LogitsProcessor  Model Runner V2's interface
                          (vllm.v1.worker.gpu.sample.logits_processor):
                          per-slot state from add_request, token history read
                          on the device from req_states.all_token_ids and this
                          step's input_ids, rows mapped to slots through ctx

Each subclasses vLLM's own base class when vLLM is importable (V2's loader
refuses anything else), so register the one that matches the runner:

  vllm serve MODEL --logits-processors libwm.vllm:LibwmV1LogitsProcessor
  LLM(model, logits_processors=[LibwmV2LogitsProcessor])

not both, and not through the vllm.logits_processors entry point, which
every engine loads (a V1 class there stops V2 engines at startup).

Configuration: $LIBWM_KEY names the key file; $LIBWM_N_VOCAB the tokenizer's
vocabulary when it is smaller than the model's logits rows (default: the
model's vocabulary size).  Per-request arguments in SamplingParams.extra_args
(HTTP: vllm_xargs), validated in validate_params: libwm/_serving.py.

Fail closed: libwm_watermark=false and a nonzero libwm_account are honoured
only when the server is started with LIBWM_ALLOW_OPT_OUT=1, respectively
LIBWM_ALLOW_ACCOUNTS=1 (read at construction; "0" or unset refuses, any
other value stops the processor from being built), or registered as a
subclass that sets allow_opt_out / allow_accounts (True or False; None, the
default, leaves it to the variable):

  class Accounts(LibwmV1LogitsProcessor): allow_accounts = True

vLLM constructs the processor itself, from the class, so the class is where
the operator says it.  Without the opt-in, validate_params refuses the
request at admission (vLLM answers 400 with the message, which names the
argument and the variable): a request asking to go unwatermarked is told so
rather than served watermarked text it believes is clean.  A request that
reaches the runner without passing validate_params (an engine version that
skips it, a frontend started with other variables than the engine) is
watermarked as if the argument were absent.  Read against vLLM's source at
the commits named in docs/integrations/vllm.md."""
import numpy as np

from . import _serving

try:
    from vllm.v1.sample.logits_processor import LogitsProcessor as _V1Base
except ImportError:  # vLLM is optional: the protocol is replayed in tests
    _V1Base = object
try:
    from vllm.v1.worker.gpu.sample.logits_processor import LogitsProcessor as _V2Base
except ImportError:
    _V2Base = object

__all__ = ["LibwmV1LogitsProcessor", "LibwmV2LogitsProcessor"]


def _extra_args(sampling_params):
    return getattr(sampling_params, "extra_args", None)


def _vocab(vllm_config):
    mc = getattr(vllm_config, "model_config", None)
    return mc.get_vocab_size() if mc is not None else 0


def _added(entry):
    """(index, params, prompt or None, output) from an AddedRequest of any
    layout that shipped: (index, params, prompt, output), (index, params,
    output) and (prompt, index, params, output): the int is the index, the
    lists are prompt then output (one list: output), the rest the params."""
    index = params = None
    lists = []
    for x in entry:
        if isinstance(x, (int, np.integer)) and not isinstance(x, bool) and index is None:
            index = int(x)
        elif isinstance(x, (list, tuple)):
            lists.append(x)
        elif x is not None:  # None: a prompt given as embeddings
            params = x
    if index is None or not lists:
        raise ValueError(f"libwm: unrecognised AddedRequest layout {tuple(type(x).__name__ for x in entry)}")
    prompt = lists[0] if len(lists) > 1 else None
    return index, params, prompt, lists[-1]


def _is_swap(direction):
    return getattr(direction, "name", str(direction)).upper().endswith("SWAP")


class _BiasOnly:
    """What both runners' classes say the same way: per-request arguments
    checked at admission against the operator's opt-ins, and a bias that
    moves the argmax."""
    allow_opt_out = None  # True / False in a subclass; None: $LIBWM_ALLOW_OPT_OUT
    allow_accounts = None  # the same for $LIBWM_ALLOW_ACCOUNTS

    @classmethod
    def _allow(cls):
        return _serving.Allow(cls.allow_opt_out, cls.allow_accounts)

    @classmethod
    def validate_params(cls, sampling_params):
        # a class method, called in the frontend where no instance exists: the
        # opt-ins are read here, per request (two environment look-ups)
        _serving.check_args(_extra_args(sampling_params), cls._allow())

    def is_argmax_invariant(self):
        return False


class LibwmV1LogitsProcessor(_BiasOnly, _V1Base):
    """V1 runner.  State: batch index -> (prompt, live output list, account)."""

    def __init__(self, vllm_config, device, is_pin_memory):
        self.allow = self._allow()
        self.wm = _serving.watermark(_vocab(vllm_config))
        self.device = device
        self.rows = {}

    def update_state(self, batch_update):
        if batch_update is None:
            return
        for i in batch_update.removed:
            self.rows.pop(i, None)
        for entry in batch_update.added:
            i, params, prompt, output = _added(entry)
            on, acct = _serving.request_args(_extra_args(params), self.allow)
            if on:
                self.rows[i] = (prompt, output, acct)
            else:
                self.rows.pop(i, None)
        for a, b, direction in batch_update.moved:
            ra, rb = self.rows.pop(a, None), self.rows.pop(b, None)
            if ra is not None:
                self.rows[b] = ra
            if _is_swap(direction) and rb is not None:
                self.rows[a] = rb

    def apply(self, logits):
        h, n = self.wm.context_width, logits.shape[0]
        rows = {r: (_serving.tail(h, p or [], out), acct) for r, (p, out, acct) in self.rows.items() if r < n}
        return _serving.bias_rows(self.wm, logits, rows)


def _device_tensor(x):
    """The device tensor behind vLLM's buffer wrappers (StagedWriteTensor,
    UvaBackedTensor: .device_tensor or .gpu, by version), or x itself."""
    for name in ("device_tensor", "gpu"):
        t = getattr(x, name, None)
        if t is not None:
            return t
    return x


class LibwmV2LogitsProcessor(_BiasOnly, _V2Base):
    """Model Runner V2.  Per-slot state lives on the device (on/off, account
    codeword), written once per new request in apply_staged_writes; apply
    reads token history on the device and never synchronises with the host."""

    def __init__(self, vllm_config, req_states):
        import torch
        self.allow = self._allow()
        self.wm = _serving.watermark(getattr(req_states, "vocab_size", 0) or _vocab(vllm_config))
        self.rs = req_states
        self.dev = self.wm.on_device(req_states.device)
        n, d = req_states.max_num_reqs, req_states.device
        self.on = torch.zeros(n, dtype=torch.bool, device=d)
        self.sym = torch.zeros(n, 256, dtype=torch.int64, device=d)
        self.active = torch.zeros(n, dtype=torch.bool, device=d)
        self.account = [0] * n  # host copy, for logits on the CPU
        self.cpu_in_c = True  # False: the device path on CPU tensors too (tests compare the two)
        self.staged = {}

    def add_request(self, req_idx, sampling_params):
        on, acct = _serving.request_args(_extra_args(sampling_params), self.allow)
        self.staged[req_idx] = (on, acct)  # a reused slot is overwritten whole
        return on

    def apply_staged_writes(self):
        if not self.staged:
            return
        import torch
        idx = list(self.staged)
        on = [self.staged[i][0] for i in idx]
        accts = [self.staged[i][1] if self.staged[i][0] else 0 for i in idx]
        sym, act = self.dev.codes(accts)
        where = torch.tensor(idx, dtype=torch.int64).to(self.on.device, non_blocking=True)
        self.on[where] = torch.tensor(on, dtype=torch.bool).to(self.on.device, non_blocking=True)
        for i, a in zip(idx, accts):
            self.account[i] = a
        self.sym[where] = sym
        self.active[where] = act
        self.staged.clear()

    def apply(self, logits, ctx):
        import torch
        h = self.wm.context_width
        slots = ctx.expanded_idx_mapping.to(torch.int64)
        pos = ctx.pos.to(torch.int64)
        ids = ctx.input_ids.to(torch.int64)
        valid = self.on[slots] & (pos >= h - 1)
        cols = []
        if h:
            hist = _device_tensor(self.rs.all_token_ids)
            local = ctx.expanded_local_pos.to(torch.int64)
            row = torch.arange(slots.shape[0], device=slots.device)
            for k in range(h - 1, -1, -1):  # the token k places before the row's input position
                if k == 0:
                    cols.append(ids)
                    continue
                committed = hist[slots, (pos - k).clamp(min=0)].to(torch.int64)
                draft = ids[(row - k).clamp(min=0)]  # this step's earlier rows of one request hold its drafts
                cols.append(torch.where(local >= k, draft, committed))
            tail = torch.stack(cols, 1)
        else:
            tail = torch.zeros(slots.shape[0], 0, dtype=torch.int64, device=slots.device)
        if logits.device.type == "cpu" and self.cpu_in_c:  # the C library, in place (any dtype)
            ok = valid.tolist()
            ctxs = [t if v else None for t, v in zip(tail.tolist(), ok)]
            accts = [self.account[s] if v else 0 for s, v in zip(slots.tolist(), ok)]
            return _serving.bias_rows(self.wm, logits, {r: (c, a) for r, (c, a) in enumerate(zip(ctxs, accts))
                                                        if c is not None})
        tail = torch.where(valid[:, None], tail, torch.zeros_like(tail))
        return self.dev.bias_(logits, self.dev.seeds(tail), valid, (self.sym[slots], self.active[slots]))
