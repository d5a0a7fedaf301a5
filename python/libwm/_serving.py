"""What the serving-engine processors share (libwm.vllm, libwm.sglang): the
provider's key, named by $LIBWM_KEY (a key file, 0600), loaded once per
process; the per-request arguments; the last h tokens of a request.

Per-request arguments (vLLM: SamplingParams.extra_args, over HTTP
"vllm_xargs"; SGLang: custom_params):
  libwm_watermark  bool, default true: false leaves the request unbiased
  libwm_account    int in [0, 2**64), default 0: the account the request is
                   generated for (needs a key with an account layer)
Both must be set by the provider's gateway from its own authentication and
stripped from what end users send: a user who could set them could turn the
watermark off, or have another account's codeword embedded."""
import os
import threading

from . import Key, Watermark, WmError, _account_id

WATERMARK, ACCOUNT = "libwm_watermark", "libwm_account"
_lock = threading.RLock()
_keys = {}


def key():
    """The key named by $LIBWM_KEY, loaded once."""
    path = os.environ.get("LIBWM_KEY")
    if not path:
        raise RuntimeError("libwm: set LIBWM_KEY to the provider's key file")
    with _lock:
        if path not in _keys:
            _keys[path] = Key.load(path)
        return _keys[path]


def watermark(n_vocab):
    """A Watermark of the key over n_vocab ids ($LIBWM_N_VOCAB overrides: the
    tokenizer's real vocabulary when the model's logits are padded)."""
    n = int(os.environ.get("LIBWM_N_VOCAB") or n_vocab)
    with _lock:
        k = ("wm", os.environ.get("LIBWM_KEY"), n)
        if k not in _keys:
            w = Watermark(key(), n)
            if w.scheme != "kgw":  # these processors bias logits; a selecting scheme picks the token
                raise RuntimeError(f"libwm: the engine processors need a kgw key, {os.environ.get('LIBWM_KEY')} "
                                   f"is {w.scheme} (libwm.hf.LibwmLogitsProcessor takes gumbel keys)")
            _keys[k] = w
        return _keys[k]


def request_args(args):
    """(watermark on, account) from a request's arguments dict (or None);
    ValueError naming the argument when one is invalid."""
    args = args or {}
    on = args.get(WATERMARK, True)
    if not isinstance(on, bool):
        raise ValueError(f"{WATERMARK} must be true or false, not {on!r}")
    acct = args.get(ACCOUNT, 0)
    try:
        acct = _account_id(acct)
    except ValueError as e:
        raise ValueError(f"{ACCOUNT}: {e}") from None
    if acct and not key().params.get("account_delta"):
        raise ValueError(f"{ACCOUNT} given, but the key has no account layer (wm keygen --account-delta)")
    return on, acct


def tail(h, prompt, output):
    """The last h tokens of prompt + output (fewer when there are fewer)."""
    if h == 0:
        return []
    out = list(output[len(output) - h:]) if len(output) >= h else list(output)
    need = h - len(out)
    if need and prompt:
        out = list(prompt[max(0, len(prompt) - need):]) + out
    return out


def bias_rows(wm, logits, rows):
    """Bias logits [R, V] in one batched call: rows is {row: (context tail,
    account)}; other rows are left exactly as they are."""
    if not rows:
        return logits
    n = logits.shape[0]
    if wm.context_width == 0:  # an empty context would still be biased: row by row
        for r, (_, acct) in rows.items():
            wm.bias(logits[r], [], acct)
        return logits
    ctx = [rows[r][0] if r in rows else [] for r in range(n)]  # short contexts are skipped by the C library
    acc = [rows[r][1] if r in rows else 0 for r in range(n)]
    return wm.bias_batch(logits, ctx, acc if any(acc) else None)


__all__ = ["WmError", "key", "watermark", "request_args", "tail", "bias_rows"]
