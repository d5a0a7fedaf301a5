"""What the serving-engine processors share (libwm.vllm, libwm.sglang): the
provider's key, named by $LIBWM_KEY (a key file, 0600), loaded once per
process; the per-request arguments and the operator's opt-ins that gate
them; the last h tokens of a request.

Per-request arguments (vLLM: SamplingParams.extra_args, over HTTP
"vllm_xargs"; SGLang: custom_params):
  libwm_watermark  bool, default true: false leaves the request unbiased,
                   honoured only on a server started with
                   LIBWM_ALLOW_OPT_OUT=1
  libwm_account    int in [0, 2**64), default 0: the account the request is
                   generated for (needs a key with an account layer),
                   honoured only on a server started with
                   LIBWM_ALLOW_ACCOUNTS=1 (0, "no account", always is)

The watermark fails closed: an engine serves whatever its clients send
unless a gateway strips it, so a switch a request can flip is only a switch
when the operator asked for it.  Without the opt-in, vLLM's validate_params
refuses the request at admission (a 400 naming the argument and the
variable) and every processor, should such a request reach it anyway,
watermarks it as if the argument were absent: libwm_watermark=false is
biased like any other row, a libwm_account is dropped (the base watermark,
no account's codeword: a client cannot frame another account).  With the
opt-in, the provider's gateway must still set both from its own
authentication and strip them from what end users send: a user who could
set them could turn the watermark off, or have another account's codeword
embedded.

The opt-in variables are read when a processor is constructed (vLLM's
validate_params, a class method, reads them at each admission): "1" allows,
unset, empty or "0" refuses, anything else is a configuration error
(RuntimeError), so a typo stops the server instead of choosing for it.  A
vLLM processor subclass may set allow_opt_out / allow_accounts to True or
False instead (None: the variable decides)."""
import logging
import os
import threading

from . import Key, Watermark, WmError, _account_id

WATERMARK, ACCOUNT = "libwm_watermark", "libwm_account"
ALLOW_OPT_OUT, ALLOW_ACCOUNTS = "LIBWM_ALLOW_OPT_OUT", "LIBWM_ALLOW_ACCOUNTS"
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


class Allow:
    """The operator's opt-ins: opt_out (libwm_watermark=false is honoured),
    accounts (a nonzero libwm_account is honoured).  Each argument is True,
    False, or None for its environment variable."""
    __slots__ = ("opt_out", "accounts")

    def __init__(self, opt_out=None, accounts=None):
        self.opt_out = _switch("allow_opt_out", ALLOW_OPT_OUT, opt_out)
        self.accounts = _switch("allow_accounts", ALLOW_ACCOUNTS, accounts)

    def __repr__(self):
        return f"Allow(opt_out={self.opt_out}, accounts={self.accounts})"


def _switch(attr, name, explicit):
    if explicit is not None:
        if not isinstance(explicit, bool):
            raise RuntimeError(f"libwm: {attr} must be True, False or None ({name} decides), not {explicit!r}")
        return explicit
    v = os.environ.get(name)
    if v in (None, "", "0"):
        return False
    if v == "1":
        return True
    raise RuntimeError(f"libwm: {name} must be 1 (allow) or 0 / unset (refuse), not {v!r}")


def _parse(args):
    """(watermark on, account) as the request asks; ValueError naming the
    argument when one is malformed."""
    args = args or {}
    on = args.get(WATERMARK, True)
    if not isinstance(on, bool):
        raise ValueError(f"{WATERMARK} must be true or false, not {on!r}")
    acct = args.get(ACCOUNT, 0)
    try:
        acct = _account_id(acct)
    except ValueError as e:
        raise ValueError(f"{ACCOUNT}: {e}") from None
    return on, acct


def check_args(args, allow):
    """Admission (vLLM's validate_params): ValueError naming the argument when
    one is malformed, or asks for what the server was not started to allow."""
    on, acct = _parse(args)
    if not on and not allow.opt_out:
        raise ValueError(f"{WATERMARK}=false refused: this server watermarks every request "
                         f"(start it with {ALLOW_OPT_OUT}=1 to let the gateway opt requests out)")
    if acct and not allow.accounts:
        raise ValueError(f"{ACCOUNT} refused: this server takes no per-request accounts "
                         f"(start it with {ALLOW_ACCOUNTS}=1 to let the gateway set them)")
    if acct and not key().params.get("account_delta"):
        raise ValueError(f"{ACCOUNT} given, but the key has no account layer (wm keygen --account-delta)")
    return on, acct


def request_args(args, allow):
    """(watermark on, account) a processor applies to a request: what it asks
    for where the server allows it, else the default (on; account 0), so an
    argument that slipped past admission fails closed.  ValueError naming
    the argument when one is malformed or names an account the key cannot
    embed."""
    on, acct = _parse(args)
    if not on and not allow.opt_out:
        _refused(WATERMARK, ALLOW_OPT_OUT, "watermarked as usual")
        on = True
    if acct and not allow.accounts:
        _refused(ACCOUNT, ALLOW_ACCOUNTS, "watermarked with no account")
        acct = 0
    if acct and not key().params.get("account_delta"):
        raise ValueError(f"{ACCOUNT} given, but the key has no account layer (wm keygen --account-delta)")
    return on, acct


_warned = set()


def _refused(arg, var, what):
    if arg not in _warned:  # once per process: the log stays readable, the operator still hears of it
        _warned.add(arg)
        logging.getLogger("libwm").warning("libwm: a request set %s on a server without %s=1: ignored, %s "
                                           "(logged once)", arg, var, what)


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


__all__ = ["WmError", "Allow", "key", "watermark", "check_args", "request_args", "tail", "bias_rows"]
