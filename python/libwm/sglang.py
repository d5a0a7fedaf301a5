"""SGLang: LibwmSGLangProcessor, a CustomLogitProcessor (SGLang's
python/sglang/srt/sampling/custom_logit_processor.py, at the commit named in
docs/integrations/sglang.md).

SGLang runs a custom processor only when the server starts with
--enable-custom-logit-processor, and takes the processor from each request:
the client sends LibwmSGLangProcessor.to_str() (a dill reference to this
installed module; the key never travels, the server reads $LIBWM_KEY) and
custom_params with the libwm_* arguments (libwm/_serving.py).  That field
runs code on the server, so only the provider's gateway may set it: strip
custom_logit_processor and custom_params from what end users send, then
inject them.

Rows whose params are missing, or lack SGLang's "__req__", are left alone;
the others are biased in one batched call, contexts from the request's
origin_input_ids + output_ids.

Fail closed: libwm_watermark=false and a nonzero libwm_account are honoured
only on a server started with LIBWM_ALLOW_OPT_OUT=1, respectively
LIBWM_ALLOW_ACCOUNTS=1, read when SGLang constructs the processor
(CustomLogitProcessor.from_str, as it builds a batch; "0" or unset refuses,
any other value is a RuntimeError there).  The opt-in is the server's
environment only: the processor and custom_params come with each request, so
custom_params has nothing that opens what the server did not (the processor
reference is the gateway's, like everything that field runs).  SGLang has no
admission hook for custom_params and an exception here fails the whole
batch, so without the opt-in such a row is biased as if the argument were
absent (an opted-out row like any other, an account row with no account),
and the refusal is logged once per process."""
from . import _serving

try:
    from sglang.srt.sampling.custom_logit_processor import CustomLogitProcessor as _Base
except ImportError:  # SGLang is optional: the protocol is replayed in tests
    _Base = object

__all__ = ["LibwmSGLangProcessor"]


class LibwmSGLangProcessor(_Base):
    def __init__(self):
        self.allow = _serving.Allow()  # the server's $LIBWM_ALLOW_OPT_OUT / $LIBWM_ALLOW_ACCOUNTS

    def __call__(self, logits, custom_param_list=None):
        wm = _serving.watermark(logits.shape[-1])
        h, rows = wm.context_width, {}
        for i, params in enumerate(custom_param_list or []):
            req = params.get("__req__") if params else None
            if req is None or i >= logits.shape[0]:
                continue
            on, acct = _serving.request_args(params, self.allow)
            if on:
                rows[i] = (_serving.tail(h, req.origin_input_ids, req.output_ids), acct)
        return _serving.bias_rows(wm, logits, rows)
