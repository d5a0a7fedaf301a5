"""libwm from Python: a pure-ctypes binding (no compiler needed to install).

    import libwm
    wm = libwm.Watermark(libwm.Key.load("provider.wmkey"), n_vocab=151936)
    wm.bias_batch(logits, contexts, accounts)      # any engine, in place
    # detection, same fields as `wm detect --json`
    libwm.detect(wm, "some text", tokenizer=libwm.Tokenizer("tokenizer.json"))

Engines (docs/integrations/README.md): libwm.hf (Hugging Face transformers),
libwm.vllm (vLLM's V1 runner and Model Runner V2), libwm.sglang.

Buffers: logits on the CPU (numpy float32/float16, torch float32, bfloat16,
float16), contiguous along the vocabulary, are biased in place through their
data pointer by the C library, without a copy.  Logits on another device
(CUDA) are biased there by libwm.torch_kernel: the same PRF bit for bit,
computed from token tensors already on that device.

The shared library is found through $LIBWM_LIBRARY (a path), then, for the
package `meson install` put next to the library, the path it recorded
(libwm/_config.py), then the system search path (libwm.so.0).  The
tokenizer's library, libwm-tokenizer, the same way: $LIBWM_TOKENIZER_LIBRARY,
the recorded path, else the file next to the libwm loaded by path
(libwm-tokenizer.so beside build/libwm/libwm.so), else the search path.  Both
must be the version this package was installed with: a mismatch is an
ImportError, never a silent mix.  Objects here own their C handles and free them when
collected; a Watermark may be shared by threads (the C object is immutable),
a Tokenizer too, but each thread needs its own encoder, which `Tokenizer`
keeps per thread for you.
"""
import ctypes
import ctypes.util
import math
import os
import threading

__all__ = ["WmError", "Key", "Watermark", "ContextSet", "Tokenizer", "tokenizer_versions", "detect", "SCHEMES", "SEEDINGS"]

SEEDINGS = {"lefthash": 0, "minhash": 1}
# Flags (include/wm/common.h, "Flags": one set of bits per family).
_NO_DEDUP, _ACCOUNTS, _CORPUS_MAP = 0x01, 0x02, 0x04
_READ_WEIGHTED = 0x0100
_ENC_SPECIAL_AS_TEXT, _ENC_LOSSY = 0x010000, 0x020000
_c_token_p = ctypes.POINTER(ctypes.c_int32)


class _Versioned(ctypes.Structure):
    """A versioned C struct (include/wm/common.h, "Versioned structs"): its
    first field, size, is set to the layout declared here, which the library
    checks (and _check_layout below checks against the library's own)."""

    def __init__(self, *args, **kw):
        super().__init__(ctypes.sizeof(self), *args, **kw)


class _Params(_Versioned):
    _fields_ = [("size", ctypes.c_size_t), ("scheme", ctypes.c_char_p), ("seeding", ctypes.c_int),
                ("context_width", ctypes.c_uint32), ("gamma", ctypes.c_double),
                ("delta", ctypes.c_double), ("account_delta", ctypes.c_double)]


class _Score(_Versioned):
    _fields_ = [("size", ctypes.c_size_t), ("tokens", ctypes.c_uint64), ("scored", ctypes.c_uint64),
                ("statistic", ctypes.c_double), ("z", ctypes.c_double),
                ("p_value", ctypes.c_double), ("log10_p", ctypes.c_double),
                ("watermarked", ctypes.c_bool)]


class _Audit(_Versioned):
    _fields_ = [("size", ctypes.c_size_t), ("fixed", _Score), ("log10_p", ctypes.c_double), ("watermarked", ctypes.c_bool),
                ("excess", ctypes.c_double), ("excess_lo", ctypes.c_double), ("excess_hi", ctypes.c_double),
                ("more_tuples", ctypes.c_double), ("more_tokens", ctypes.c_double),
                ("more_tokens_fixed", ctypes.c_double)]


class _AccountScore(_Versioned):
    _fields_ = [("size", ctypes.c_size_t), ("account", ctypes.c_uint64), ("statistic", ctypes.c_double), ("log10_p", ctypes.c_double),
                ("log10_p_family", ctypes.c_double), ("named", ctypes.c_bool)]


class _Attribution(_Versioned):
    _fields_ = [("size", ctypes.c_size_t), ("accounts", ctypes.c_uint64), ("tuples", ctypes.c_uint64), ("named", ctypes.c_uint64),
                ("n_top", ctypes.c_size_t), ("null_mean", ctypes.c_double), ("null_sd", ctypes.c_double),
                ("exact", ctypes.c_bool)]


class _KernelParams(_Versioned):
    _fields_ = [("size", ctypes.c_size_t), ("n_vocab", ctypes.c_uint32), ("context_width", ctypes.c_uint32), ("seeding", ctypes.c_int),
                ("field_bits", ctypes.c_uint32), ("threshold", ctypes.c_uint32), ("delta", ctypes.c_float),
                ("account_delta", ctypes.c_float), ("green_key", ctypes.c_uint8 * 16),
                ("minhash_key", ctypes.c_uint8 * 16), ("account_key", ctypes.c_uint8 * 16)]


# include/wm/key.h: account cells (position, symbol) a corpus tallies.
ACCOUNT_CELLS = 256 * 4
# include/wm/cluster.h: a map corpus's records, per-document deltas, totals.
class _CorpusRecord(ctypes.Structure):
    _fields_ = [("fp", ctypes.c_uint64), ("doc", ctypes.c_uint64), ("score", ctypes.c_double),
                ("cell", ctypes.c_uint32), ("reserved", ctypes.c_uint32)]


class _CorpusDelta(ctypes.Structure):
    _fields_ = [("doc", ctypes.c_uint64), ("scored", ctypes.c_uint64), ("stat_hi", ctypes.c_uint64),
                ("stat_lo", ctypes.c_uint64)]


class _CorpusTotals(_Versioned):
    _fields_ = [("size", ctypes.c_size_t), ("docs", ctypes.c_uint64), ("tokens", ctypes.c_uint64),
                ("scored", ctypes.c_uint64), ("stat_hi", ctypes.c_uint64), ("stat_lo", ctypes.c_uint64)]


# wm_dtype of each element type the C library biases in place.
_DTYPES = {"float32": 0, "bfloat16": 1, "float16": 2}


class _Error(ctypes.Structure):
    _fields_ = [("message", ctypes.c_char * 512)]


try:
    from . import _config  # written by `meson install`: where the library went, its version
except ImportError:  # the source tree (tests, examples): $LIBWM_LIBRARY or the system's
    _config = None


def _library_paths():
    """(libwm, libwm-tokenizer) to load: see the module's docstring."""
    path = os.environ.get("LIBWM_LIBRARY") or (_config and _config.LIBRARY) or ctypes.util.find_library("wm") \
        or "libwm.so.0"
    tok = os.environ.get("LIBWM_TOKENIZER_LIBRARY") or (_config and getattr(_config, "TOKENIZER_LIBRARY", None))
    d, base = os.path.split(path)
    if not tok and d and base.startswith("libwm."):
        tok = os.path.join(d, "libwm-tokenizer." + base[len("libwm."):])
    return path, tok or ctypes.util.find_library("wm-tokenizer") or "libwm-tokenizer.so.0"


def _load_library():
    path, tok_path = _library_paths()
    # libwm first: libwm-tokenizer's own need for libwm.so.0 is then met by
    # this one (the loader matches the soname), never by another on the path.
    lib = ctypes.CDLL(path)
    tok = ctypes.CDLL(tok_path)
    P, S, I, U32, SZ = ctypes.c_void_p, ctypes.c_int, ctypes.c_int, ctypes.c_uint32, ctypes.c_size_t
    PP = ctypes.POINTER(ctypes.c_void_p)
    sigs = {
        "wm_abi_n_fields": (SZ, []),
        "wm_abi_field": (S, [SZ, ctypes.POINTER(ctypes.c_char_p), ctypes.POINTER(ctypes.c_char_p),
                             ctypes.POINTER(SZ), ctypes.POINTER(SZ)]),
        "wm_strerror": (ctypes.c_char_p, [I]),
        "wm_status_name": (ctypes.c_char_p, [I]),
        "wm_version": (ctypes.c_char_p, []),
        "wm_version_number": (ctypes.c_uint, []),
        "wm_params_init_sized": (S, [ctypes.POINTER(_Params), ctypes.c_size_t, ctypes.c_char_p]),
        "wm_key_generate": (S, [PP, ctypes.POINTER(_Params)]),
        "wm_key_from_seed": (S, [PP, ctypes.POINTER(_Params), ctypes.c_char_p]),
        "wm_key_save": (S, [P, ctypes.c_char_p, ctypes.POINTER(_Error)]),
        "wm_key_load": (S, [PP, ctypes.c_char_p, ctypes.POINTER(_Error)]),
        "wm_key_params": (S, [P, ctypes.POINTER(_Params)]),
        "wm_key_id": (S, [P, ctypes.c_char_p]),
        "wm_key_free": (None, [P]),
        "wm_watermark_new": (S, [PP, P, U32]),
        "wm_watermark_free": (None, [P]),
        "wm_watermark_params": (S, [P, ctypes.POINTER(_Params)]),
        "wm_watermark_key_id": (S, [P, ctypes.c_char_p]),
        "wm_scheme_name": (ctypes.c_char_p, [SZ]),
        "wm_is_green": (S, [P, _c_token_p, SZ, ctypes.c_int32, ctypes.POINTER(ctypes.c_bool)]),
        "wm_tuple_score": (S, [P, _c_token_p, SZ, ctypes.c_int32, ctypes.POINTER(ctypes.c_double)]),
        "wm_select": (S, [P, P, _c_token_p, SZ, SZ, P, SZ, P, SZ, ctypes.POINTER(ctypes.c_int32),
                          ctypes.POINTER(ctypes.c_bool)]),
        "wm_ctxset_new": (S, [PP, P]),
        "wm_ctxset_clear": (S, [P]),
        "wm_ctxset_free": (None, [P]),
        "wm_ctxset_add": (S, [P, _c_token_p, SZ]),
        "wm_corpus_new": (S, [PP, P, ctypes.c_uint]),
        "wm_corpus_set_filter": (S, [P, P]),
        "wm_corpus_add": (S, [P, _c_token_p, SZ, SZ]),
        "wm_corpus_score": (S, [P, ctypes.c_double, ctypes.POINTER(_Score)]),
        "wm_corpus_audit": (S, [P, ctypes.c_double, ctypes.c_double, ctypes.POINTER(_Audit)]),
        "wm_corpus_attribute": (S, [P, ctypes.POINTER(ctypes.c_uint64), SZ, ctypes.c_double,
                                    ctypes.POINTER(_AccountScore), SZ, ctypes.POINTER(_Attribution)]),
        "wm_corpus_free": (None, [P]),
        "wm_corpus_set_next_doc": (S, [P, ctypes.c_uint64]),
        "wm_corpus_records": (S, [P, ctypes.POINTER(ctypes.POINTER(_CorpusRecord)), ctypes.POINTER(SZ)]),
        "wm_corpus_records_clear": (S, [P]),
        "wm_corpus_deltas": (S, [P, P, SZ, P, ctypes.POINTER(SZ)]),
        "wm_corpus_totals_get": (S, [P, ctypes.POINTER(_CorpusTotals)]),
        "wm_corpus_merge": (S, [P, P, SZ, ctypes.c_uint64, ctypes.c_uint64, P]),
        "wm_bias_logits_batch": (S, [P, SZ, ctypes.POINTER(ctypes.c_uint64), ctypes.POINTER(_c_token_p),
                                     ctypes.POINTER(SZ), P, ctypes.c_int, SZ, SZ]),
        "wm_kernel_params_get": (S, [P, ctypes.POINTER(_KernelParams)]),
        "wm_context_seed": (S, [P, _c_token_p, SZ, ctypes.POINTER(ctypes.c_uint64), ctypes.POINTER(ctypes.c_bool)]),
        "wm_account_symbols": (S, [P, ctypes.c_uint64, ctypes.POINTER(ctypes.c_uint8)]),
        "wm_detect": (S, [P, _c_token_p, SZ, SZ, ctypes.c_uint, ctypes.c_double, ctypes.POINTER(_Score)]),
        "wm_reader_new": (S, [PP, P, ctypes.c_uint]),
        "wm_reader_add": (S, [P, _c_token_p, SZ, SZ, _c_token_p, P, SZ]),
        "wm_reader_score": (S, [P, ctypes.c_double, ctypes.POINTER(_Score), ctypes.POINTER(ctypes.c_uint64)]),
        "wm_reader_attribute": (S, [P, ctypes.POINTER(ctypes.c_uint64), SZ, ctypes.c_double,
                                    ctypes.POINTER(_AccountScore), SZ, ctypes.POINTER(_Attribution)]),
        "wm_reader_free": (None, [P]),
        "wm_reader_set_next_doc": (S, [P, ctypes.c_uint64]),
        "wm_reader_records": (S, [P, ctypes.POINTER(ctypes.POINTER(_CorpusRecord)), ctypes.POINTER(SZ)]),
        "wm_reader_records_clear": (S, [P]),
        "wm_reader_counts": (S, [P, ctypes.POINTER(ctypes.c_uint64), ctypes.POINTER(ctypes.c_uint64)]),
        "wm_reader_merge": (S, [P, P, SZ, ctypes.c_uint64, ctypes.c_uint64, P]),
    }
    tok_sigs = {
        "wm_tokenizer_library_version": (ctypes.c_char_p, []),
        "wm_tokenizer_n_versions": (SZ, []),
        "wm_tokenizer_version": (S, [SZ, ctypes.POINTER(ctypes.c_char_p), ctypes.POINTER(ctypes.c_char_p)]),
        "wm_tokenizer_load": (S, [PP, ctypes.c_char_p, ctypes.POINTER(_Error)]),
        "wm_tokenizer_free": (None, [P]),
        "wm_tokenizer_n_vocab": (S, [P, ctypes.POINTER(U32)]),
        "wm_encoder_new": (S, [PP, P]),
        "wm_encoder_free": (None, [P]),
        "wm_encode": (S, [P, ctypes.c_char_p, SZ, ctypes.c_uint, ctypes.POINTER(_c_token_p),
                          ctypes.POINTER(SZ), ctypes.POINTER(_Error)]),
        "wm_decode": (S, [P, _c_token_p, SZ, ctypes.POINTER(ctypes.c_void_p), ctypes.POINTER(SZ)]),
    }
    for where, table in ((lib, sigs), (tok, tok_sigs)):
        for name, (res, args) in table.items():
            f = getattr(where, name)
            f.restype, f.argtypes = res, args
    return lib, tok


# The C structs this binding re-declares, by their C names.
_STRUCTS = {"wm_error": _Error, "wm_params": _Params, "wm_score": _Score, "wm_audit": _Audit,
            "wm_account_score": _AccountScore, "wm_attribution": _Attribution, "wm_kernel_params": _KernelParams,
            "wm_corpus_record": _CorpusRecord, "wm_corpus_delta": _CorpusDelta, "wm_corpus_totals": _CorpusTotals}


def _check_layout(lib, structs):
    """ImportError unless every struct in `structs` (C name: ctypes class) has
    exactly the fields, offsets, sizes and total size the library reports
    (wm_abi_field): a binding out of step with the library must not load."""
    c = {}
    for i in range(lib.wm_abi_n_fields()):
        s, f, off, size = ctypes.c_char_p(), ctypes.c_char_p(), ctypes.c_size_t(), ctypes.c_size_t()
        if lib.wm_abi_field(i, ctypes.byref(s), ctypes.byref(f), ctypes.byref(off), ctypes.byref(size)) != 0:
            raise ImportError(f"libwm: wm_abi_field({i}) failed")
        c.setdefault(s.value.decode(), {})[f.value.decode()] = (off.value, size.value)
    problems = []
    for name, cls in structs.items():
        if name not in c:
            problems.append(f"{name}: not in the C library's layout table")
            continue
        mine = {f: (getattr(cls, f).offset, getattr(cls, f).size) for f, *_ in cls._fields_}
        mine[""] = (0, ctypes.sizeof(cls))
        for f in sorted(set(mine) | set(c[name])):
            what = f"{name}.{f}" if f else f"sizeof({name})"
            if mine.get(f) != c[name].get(f):
                problems.append(f"{what}: Python (offset, size) {mine.get(f)}, C {c[name].get(f)}")
    if problems:
        raise ImportError("libwm: the Python binding's struct declarations do not match the C library it loaded "
                          "(reinstall both from one source tree):\n  " + "\n  ".join(problems))


_lib, _tok = _load_library()
_check_layout(_lib, _STRUCTS)
__version__ = _lib.wm_version().decode()


def _check_versions(package, lib, tok):
    """ImportError unless libwm (`lib`), libwm-tokenizer (`tok`) and, when
    installed, this package (`package`, else None) are one version: a
    tokenizer library from another build would tokenize, and so score, with
    code the rest was not tested against."""
    if package is not None and lib != package:
        raise ImportError(f"libwm: this Python package is version {package} but the C library it loaded is "
                          f"{lib}; reinstall both with `meson install`")
    if tok != lib:
        raise ImportError(f"libwm: libwm is version {lib} but the libwm-tokenizer it loaded is {tok}; "
                          f"install both from one source tree (or set LIBWM_TOKENIZER_LIBRARY)")


_check_versions(_config.VERSION if _config is not None else None, __version__,
                _tok.wm_tokenizer_library_version().decode())

# Status constants (OK, ERR_ARG, ...) from the C library's own table, so the
# two can never disagree: WmError.status compares equal to them.
STATUS = {}
for _code in range(64):
    _name = _lib.wm_status_name(_code)
    if _name is not None:
        STATUS[_name.decode()] = _code
        globals()[_name.decode()] = _code
del _code, _name

# The schemes this libwm implements, from the C registry.
SCHEMES = []
while _lib.wm_scheme_name(len(SCHEMES)) is not None:
    SCHEMES.append(_lib.wm_scheme_name(len(SCHEMES)).decode())

_INT32_MIN, _INT32_MAX = -2**31, 2**31 - 1


class WmError(Exception):
    """A libwm call failed: .status is the wm_status code."""

    def __init__(self, status, message=None):
        self.status = status
        text = _lib.wm_strerror(status).decode()
        super().__init__(f"{message}: {text}" if message else text)


def _check(status, err=None):
    if status:
        detail = err.message.decode(errors="replace") if err is not None and err.message else None
        raise WmError(status, detail)


def _tokens(ids):
    """ids (list, numpy or torch integer array) -> (keep-alive, int32 pointer, n).
    A contiguous numpy int32 array is passed without a copy.  Anything that
    is not an integer, or does not fit a token id (int32), is a ValueError:
    never truncated."""
    if getattr(ids, "__array_interface__", None) and ids.dtype.str == "<i4" and ids.ndim == 1 \
            and (ids.strides[0] == 4 or len(ids) <= 1):
        return ids, ctypes.cast(ids.ctypes.data, _c_token_p), len(ids)
    values = _token_list(ids)
    arr = (ctypes.c_int32 * len(values))(*values)
    return arr, ctypes.cast(arr, _c_token_p), len(values)


def _as_list(ids):
    _check_int_dtype(ids)
    if hasattr(ids, "tolist"):  # numpy / torch, any device
        return ids.tolist() if not hasattr(ids, "cpu") else ids.cpu().tolist()
    return list(ids)


def _check_int_dtype(ids):
    dtype = getattr(ids, "dtype", None)
    if dtype is None:
        return
    if hasattr(ids, "is_floating_point"):  # torch
        import torch
        if ids.is_floating_point() or ids.is_complex() or ids.dtype == torch.bool:
            raise ValueError(f"token ids must be integers, not {dtype}")
    elif getattr(dtype, "kind", "i") not in "iu":  # numpy
        raise ValueError(f"token ids must be integers, not {dtype}")


def _token_id(t):
    """One id as a Python int, checked: bool, float and out-of-range values
    would be silently changed by the conversion to int32."""
    if isinstance(t, bool) or not hasattr(t, "__index__"):
        raise ValueError(f"token id {t!r} is not an integer")
    v = t.__index__()
    if not _INT32_MIN <= v <= _INT32_MAX:
        raise ValueError(f"token id {v} does not fit in int32")
    return v


def _token_list(ids):
    return [_token_id(t) for t in _as_list(ids)]


class Key:
    """A secret key with its parameters.  Never exposes the secret."""

    def __init__(self, handle):
        self._h = ctypes.c_void_p(handle)

    @classmethod
    def load(cls, path):
        h, err = ctypes.c_void_p(), _Error()
        _check(_lib.wm_key_load(ctypes.byref(h), os.fsencode(path), ctypes.byref(err)), err)
        return cls(h.value)

    @classmethod
    def generate(cls, scheme="kgw", gamma=None, delta=None, context_width=None, seeding="lefthash",
                 account_delta=0.0):
        """A fresh key.  kgw defaults: gamma 0.25, delta 2, context width 1,
        no account layer (account_delta 0); gumbel: context width 4 and no
        gamma, delta or account_delta (giving one is an error)."""
        h, p = ctypes.c_void_p(), _make_params(scheme, gamma, delta, context_width, seeding, account_delta)
        _check(_lib.wm_key_generate(ctypes.byref(h), ctypes.byref(p)))
        return cls(h.value)

    @classmethod
    def from_seed(cls, seed, scheme="kgw", gamma=None, delta=None, context_width=None, seeding="lefthash",
                  account_delta=0.0):
        """Deterministic key from 32 bytes: for tests and demos only."""
        if len(seed) != 32:
            raise ValueError("seed must be 32 bytes")
        h, p = ctypes.c_void_p(), _make_params(scheme, gamma, delta, context_width, seeding, account_delta)
        _check(_lib.wm_key_from_seed(ctypes.byref(h), ctypes.byref(p), bytes(seed)))
        return cls(h.value)

    def save(self, path):
        """Write a new 0600 file; never overwrites."""
        err = _Error()
        _check(_lib.wm_key_save(self._h, os.fsencode(path), ctypes.byref(err)), err)

    @property
    def params(self):
        p = _Params()
        _check(_lib.wm_key_params(self._h, ctypes.byref(p)))
        return _params_dict(p)

    @property
    def key_id(self):
        buf = ctypes.create_string_buffer(17)
        _check(_lib.wm_key_id(self._h, buf))
        return buf.value.decode()

    def __del__(self):
        if getattr(self, "_h", None) and _lib:
            _lib.wm_key_free(self._h)
            self._h = None


def _make_params(scheme, gamma, delta, context_width, seeding, account_delta):
    if seeding not in SEEDINGS:
        raise ValueError(f"seeding must be one of {sorted(SEEDINGS)}, not {seeding!r}")
    p = _Params()
    scheme = str(scheme).encode()
    _check(_lib.wm_params_init_sized(ctypes.byref(p), ctypes.sizeof(p), scheme))  # the scheme's defaults, from the C library
    p.seeding = SEEDINGS[seeding]
    for name, value in (("context_width", context_width), ("gamma", gamma), ("delta", delta),
                        ("account_delta", account_delta)):
        if value is not None:
            setattr(p, name, value)
    return p


def _params_dict(p):
    seeding = {v: k for k, v in SEEDINGS.items()}[p.seeding]
    d = {"scheme": p.scheme.decode(), "seeding": seeding, "context_width": p.context_width}
    if d["scheme"] == "kgw":
        d.update(gamma=p.gamma, delta=p.delta, account_delta=p.account_delta)
    return d


class Watermark:
    """A key bound to a vocabulary of n_vocab real tokens.  Immutable and
    thread-safe; logits rows may be longer than n_vocab (padding is never green)."""

    def __init__(self, key, n_vocab):
        if isinstance(n_vocab, bool) or not hasattr(n_vocab, "__index__") \
                or not 1 <= n_vocab.__index__() <= _INT32_MAX:
            raise ValueError(f"n_vocab must be an integer in [1, 2**31 - 1], not {n_vocab!r}")
        n_vocab = n_vocab.__index__()
        h = ctypes.c_void_p()
        _check(_lib.wm_watermark_new(ctypes.byref(h), key._h, n_vocab))
        self._h = h
        self.n_vocab = n_vocab
        p = _Params()
        _check(_lib.wm_watermark_params(h, ctypes.byref(p)))
        self.params = _params_dict(p)
        self.context_width = p.context_width
        buf = ctypes.create_string_buffer(17)
        _check(_lib.wm_watermark_key_id(h, buf))
        self.key_id = buf.value.decode()

    def __del__(self):
        if getattr(self, "_h", None) and _lib:
            _lib.wm_watermark_free(self._h)
            self._h = None

    @property
    def scheme(self):
        return self.params["scheme"]

    def is_green(self, context, token):
        """kgw only."""
        keep, ptr, n = _tokens(context)
        g = ctypes.c_bool()
        _check(_lib.wm_is_green(self._h, ptr, n, _token_id(token), ctypes.byref(g)))
        return bool(g.value)

    def tuple_score(self, context, token):
        """What `token` after `context` adds to the scheme's statistic."""
        keep, ptr, n = _tokens(context)
        x = ctypes.c_double()
        _check(_lib.wm_tuple_score(self._h, ptr, n, _token_id(token), ctypes.byref(x)))
        return x.value

    def select(self, context, ids, weights, used=None):
        """Selecting schemes (gumbel): the token the watermark picks among
        candidate `ids` with `weights` (probabilities or proportional), or
        None where the caller must draw itself (short context, or a seed
        already in `used`, a ContextSet of this sequence)."""
        keep, ptr, n = _tokens(context)
        import numpy as np
        ids = np.ascontiguousarray(ids, dtype=np.int32)
        w = np.ascontiguousarray(weights, dtype=np.float32)
        if ids.shape != w.shape or ids.ndim != 1:
            raise ValueError("ids and weights must be 1-D and of one length")
        out, sel = ctypes.c_int32(), ctypes.c_bool()
        _check(_lib.wm_select(self._h, used._h if used is not None else None, ptr, n, ids.size,
                              ids.ctypes.data, 4, w.ctypes.data, 4, ctypes.byref(out), ctypes.byref(sel)))
        return out.value if sel.value else None

    def bias(self, logits, context, account=0):
        """Add delta to the green logits of one row, in place (and, for an
        account other than 0, the account layer's bias: embed.h,
        "Accounts"); returns logits."""
        return self.bias_batch(logits, [context], None if account == 0 else [account])

    def bias_batch(self, logits, contexts, accounts=None):
        """logits: 1-D (one sequence) or 2-D [batch, n_logits]; contexts: one
        token sequence per row (only the last h tokens are read); accounts:
        None (no account) or one 64-bit account id per row (0: none).  In
        place."""
        rows = 1 if len(_shape(logits)) == 1 else _shape(logits)[0]
        if len(contexts) != rows:
            raise ValueError(f"{len(contexts)} contexts for {rows} rows of logits")
        acc = _account_array(accounts, rows)
        if rows == 0:
            return logits
        view = _host_view(logits)
        if view is None:  # on another device: bias it there
            return self._bias_on_device(logits, contexts, accounts)
        keep, ptrs, lens = self._context_arrays(contexts)
        ptr, dtype, n_logits, stride = view
        _check(_lib.wm_bias_logits_batch(self._h, rows, acc, ptrs, lens, ptr, dtype, n_logits, stride))
        return logits

    def seed(self, context):
        """The seed after context (wm_context_seed), or None when it has
        fewer than h tokens."""
        keep, ptr, n = _tokens(context)
        s, has = ctypes.c_uint64(), ctypes.c_bool()
        _check(_lib.wm_context_seed(self._h, ptr, n, ctypes.byref(s), ctypes.byref(has)))
        return s.value if has.value else None

    def on_device(self, device):
        """This watermark's bias on a torch device (libwm.torch_kernel), cached."""
        import torch
        device = torch.device(device)
        cache = self.__dict__.setdefault("_devices", {})
        if device not in cache:
            from .torch_kernel import DeviceWatermark
            cache[device] = DeviceWatermark(self, device)
        return cache[device]

    def _bias_on_device(self, logits, contexts, accounts):
        """Rows on a non-CPU torch device; contexts a [rows, seq] integer
        tensor (there or anywhere) or token lists."""
        import torch
        one = logits.dim() == 1
        rows2 = logits[None] if one else logits
        dev = self.on_device(logits.device)
        h = self.context_width
        if torch.is_tensor(contexts) and contexts.dim() == 2 and contexts.shape[1] >= h:
            tail = contexts[:, contexts.shape[1] - h:].to(logits.device)
            valid = None
        else:
            tails = [_token_list(c[len(c) - h:] if len(c) >= h else []) for c in contexts]
            valid = torch.tensor([len(t) == h for t in tails], device=logits.device)
            tail = torch.tensor([t if len(t) == h else [0] * h for t in tails], dtype=torch.int64).view(-1, h)
            tail = tail.to(logits.device)
        _check_device_tokens(tail, self.n_vocab)
        acc = dev.codes(accounts) if accounts is not None and any(accounts) else None
        dev.bias_(rows2, dev.seeds(tail), valid, acc)
        return logits


    def _context_arrays(self, contexts):
        """(keep-alive, wm_token** , size_t*) for wm_bias_logits_batch."""
        h = self.context_width
        if h and len(_shape_or_none(contexts) or ()) == 2 and contexts.shape[1] >= h \
                and ctypes.sizeof(ctypes.c_size_t) == 8:
            # A [batch, seq] array (Hugging Face input_ids): one conversion of
            # the last h columns, pointers computed by numpy, no Python loop.
            import numpy as np
            tail = contexts[:, -h:]
            _check_int_dtype(tail)
            if hasattr(tail, "cpu"):
                tail = tail.cpu().numpy()
            if tail.size and (tail.min() < _INT32_MIN or tail.max() > _INT32_MAX):
                raise ValueError("token ids do not fit in int32")
            tail = np.ascontiguousarray(tail, dtype=np.int32)
            rows = tail.shape[0]
            ptrs = np.arange(rows, dtype=np.uint64) * np.uint64(4 * h) + np.uint64(tail.ctypes.data)
            lens = np.full(rows, h, dtype=np.uint64)
            return ((tail, ptrs, lens), ptrs.ctypes.data_as(ctypes.POINTER(_c_token_p)),
                    lens.ctypes.data_as(ctypes.POINTER(ctypes.c_size_t)))
        rows = len(contexts)
        tails = [_token_list(c[-h:] if h and len(c) >= h else (c if h else [])) for c in contexts]
        flat = (ctypes.c_int32 * max(1, sum(len(t) for t in tails)))()
        ptrs, lens, off = (_c_token_p * rows)(), (ctypes.c_size_t * rows)(), 0
        for r, t in enumerate(tails):
            for i, tok in enumerate(t):
                flat[off + i] = tok
            ptrs[r] = ctypes.cast(ctypes.addressof(flat) + 4 * off, _c_token_p)
            lens[r] = len(t)
            off += len(t)
        return (flat, ptrs, lens), ptrs, lens


def _account_id(a):
    if isinstance(a, bool) or not hasattr(a, "__index__") or not 0 <= a.__index__() < 2 ** 64:
        raise ValueError(f"an account id is an integer in [0, 2**64), not {a!r}")
    return a.__index__()


def _account_array(accounts, rows):
    """uint64_t[rows] of account ids, or None for none."""
    if accounts is None:
        return None
    if isinstance(accounts, int) or len(accounts) != rows:
        raise ValueError(f"accounts: one id per row ({rows}), not {accounts!r}")
    return (ctypes.c_uint64 * max(rows, 1))(*[_account_id(a) for a in accounts])


def _shape_or_none(x):
    return tuple(x.shape) if hasattr(x, "shape") else None


def _shape(x):
    return tuple(x.shape)


def _host_view(x):
    """(data pointer, wm_dtype, n_logits, row stride in elements) for a
    writable CPU buffer the C library biases in place, None for a tensor on
    another device; TypeError for anything else."""
    shape = _shape(x)
    if len(shape) not in (1, 2):
        raise ValueError(f"logits must be 1-D or 2-D, not {len(shape)}-D")
    if hasattr(x, "data_ptr"):  # torch.Tensor
        if x.device.type != "cpu":
            return None
        dtype = _DTYPES.get(str(x.dtype).replace("torch.", ""))
        if dtype is None or x.stride(-1) != 1:
            raise TypeError(f"torch logits must be float32, bfloat16 or float16 and contiguous along the "
                            f"vocabulary, not {x.dtype} with strides {x.stride()}")
        return x.data_ptr(), dtype, shape[-1], _row_stride(shape, x.stride(0))
    if hasattr(x, "__array_interface__"):  # numpy.ndarray
        dtype = _DTYPES.get(str(x.dtype))  # numpy has no bfloat16: float32 or float16
        if dtype is None or x.strides[-1] != x.itemsize or not x.flags.writeable:
            raise TypeError("numpy logits must be a writable float32 or float16 array, contiguous along the "
                            "vocabulary")
        return x.ctypes.data, dtype, shape[-1], _row_stride(shape, x.strides[0] // x.itemsize)
    raise TypeError(f"unsupported logits type {type(x).__name__}")


def _row_stride(shape, stride0):
    # A single row's stride is arbitrary (numpy gives 0 for x[None, :]).
    return stride0 if len(shape) == 2 and shape[0] > 1 else shape[-1]


def _check_device_tokens(t, n_vocab):
    """Context ids in [0, n_vocab), checked on the device: one reduction,
    read back only when it fails (torch's own async assert where it has one)."""
    import torch
    bad = ((t < 0) | (t >= n_vocab)).any()
    if t.device.type == "cpu":
        if bad:
            raise WmError(ERR_TOKEN, "a context token id is outside the vocabulary")
    elif hasattr(torch, "_assert_async"):
        torch._assert_async(~bad)


class ContextSet:
    """The context seeds already watermarked in one sequence (wm_ctxset)."""

    def __init__(self, watermark):
        h = ctypes.c_void_p()
        _check(_lib.wm_ctxset_new(ctypes.byref(h), watermark._h))
        self._h = h
        self._wm = watermark  # the C set borrows it

    def clear(self):
        _check(_lib.wm_ctxset_clear(self._h))

    def __del__(self):
        if getattr(self, "_h", None) and _lib:
            _lib.wm_ctxset_free(self._h)
            self._h = None


def _processed_probs(row, temperature, top_k, top_p):
    """The distribution an engine samples from: temperature, top-k, top-p
    (as transformers' warpers), float64 on the CPU."""
    import numpy as np
    x = np.asarray(row, dtype=np.float64) / temperature
    x = np.where(np.isnan(x), -np.inf, x)
    if top_k and top_k < x.size:
        kth = np.partition(x, x.size - top_k)[x.size - top_k]
        x = np.where(x < kth, -np.inf, x)
    p = np.exp(x - x.max())
    p /= p.sum()
    if top_p < 1.0:
        order = np.argsort(-p, kind="stable")
        cum = np.cumsum(p[order])
        keep = order[: int(np.searchsorted(cum, top_p) + 1)]
        q = np.zeros_like(p)
        q[keep] = p[keep]
        p = q / q.sum()
    return p


class _Selector:
    """Per-row state of a selecting scheme across decode steps."""

    def __init__(self, watermark, temperature, top_k, top_p, seed):
        import numpy as np
        if not temperature > 0:
            raise ValueError("a selecting scheme needs temperature > 0")
        self.wm, self.t, self.k, self.p = watermark, temperature, top_k, top_p
        self.rng = np.random.default_rng(seed)
        self.used = {}
        self.last_len = None

    def token(self, row_index, context, row):
        """The chosen token of one row (the watermark's, or a plain draw on
        a repeated seed)."""
        import numpy as np
        used = self.used.get(row_index)
        if used is None:
            used = self.used[row_index] = ContextSet(self.wm)
        p = _processed_probs(row, self.t, self.k, self.p)
        ids = np.flatnonzero(p > 0).astype(np.int32)
        ids = ids[ids < self.wm.n_vocab]
        w = p[ids]
        tok = self.wm.select(context, ids, w, used)
        if tok is None:
            tok = int(self.rng.choice(ids, p=w / w.sum()))
        return tok

    def new_sequences_if(self, length):
        """A shorter context than last step means a new generate() call."""
        if self.last_len is not None and length < self.last_len:
            for u in self.used.values():
                u.clear()
        self.last_len = length


def _one_hot(logits, rows_tokens):
    """Every row -inf but its chosen token (0): survives any later
    temperature, top-k or top-p."""
    if hasattr(logits, "fill_"):  # torch
        logits.fill_(float("-inf"))
        for r, t in rows_tokens:
            if logits.dim() == 1:
                logits[t] = 0.0
            else:
                logits[r, t] = 0.0
        return logits
    logits[...] = float("-inf")
    for r, t in rows_tokens:
        if logits.ndim == 1:
            logits[t] = 0.0
        else:
            logits[r, t] = 0.0
    return logits


def _to_numpy(x):
    """Scores as float32 numpy on the CPU (bf16 and CUDA tensors included)."""
    return x.detach().float().cpu().numpy() if hasattr(x, "detach") else x


def _ids_numpy(x):
    return x.detach().cpu().numpy() if hasattr(x, "detach") else x


def tokenizer_versions():
    """{"pcre2": ..., "pcre2_unicode": ..., "utf8proc": ..., "utf8proc_unicode": ...}:
    the versions of the libraries whose Unicode tables the tokenizer uses, as
    they report them (wm_tokenizer_version; the same as `wm detect --json`'s
    "tokenizer_versions")."""
    out = {}
    for i in range(_tok.wm_tokenizer_n_versions()):
        name, version = ctypes.c_char_p(), ctypes.c_char_p()
        _check(_tok.wm_tokenizer_version(i, ctypes.byref(name), ctypes.byref(version)))
        out[name.value.decode()] = version.value.decode()
    return out


class Tokenizer:
    """A Hugging Face tokenizer.json (byte-level BPE), id for id as the
    reference.  Thread-safe: each thread gets its own C encoder."""

    def __init__(self, path):
        h, err = ctypes.c_void_p(), _Error()
        _check(_tok.wm_tokenizer_load(ctypes.byref(h), os.fsencode(path), ctypes.byref(err)), err)
        self._h = h
        self._local = threading.local()
        self._encoders = []
        nv = ctypes.c_uint32()
        _check(_tok.wm_tokenizer_n_vocab(h, ctypes.byref(nv)))
        self.n_vocab = nv.value

    def _encoder(self):
        enc = getattr(self._local, "enc", None)
        if enc is None:
            enc = ctypes.c_void_p()
            _check(_tok.wm_encoder_new(ctypes.byref(enc), self._h))
            self._local.enc = enc
            self._encoders.append(enc)
        return enc

    def encode(self, text, special_as_text=False, lossy=False):
        """str or UTF-8 bytes -> list of ids.  Invalid UTF-8 raises WmError
        with the byte offset unless lossy (U+FFFD)."""
        data = text.encode("utf-8", "surrogatepass") if isinstance(text, str) else bytes(text)
        flags = (_ENC_SPECIAL_AS_TEXT if special_as_text else 0) | (_ENC_LOSSY if lossy else 0)
        ids, n, err = _c_token_p(), ctypes.c_size_t(), _Error()
        _check(_tok.wm_encode(self._encoder(), data, len(data), flags, ctypes.byref(ids),
                              ctypes.byref(n), ctypes.byref(err)), err)
        return ids[:n.value]

    def decode(self, ids):
        """ids -> bytes (a cut may split a UTF-8 character)."""
        keep, ptr, n = _tokens(ids)
        text, length = ctypes.c_void_p(), ctypes.c_size_t()
        _check(_tok.wm_decode(self._encoder(), ptr, n, ctypes.byref(text), ctypes.byref(length)))
        return ctypes.string_at(text, length.value) if length.value else b""

    def __del__(self):
        if getattr(self, "_h", None) and _lib:
            for enc in self._encoders:
                _tok.wm_encoder_free(enc)
            _tok.wm_tokenizer_free(self._h)
            self._h = None


def _score_dict(watermark, s):
    mean = s.statistic / s.scored if s.scored else 0.0
    out = {"key_id": watermark.key_id, "scheme": watermark.scheme, "tokens": s.tokens,
           "scored": s.scored, "statistic": s.statistic, "mean_score": mean, "z": s.z,
           "p_value": s.p_value, "log10_p": s.log10_p, "watermarked": bool(s.watermarked)}
    if watermark.scheme == "kgw":
        out.update(green=int(s.statistic), green_fraction=mean)
    return out


def detect(watermark, text_or_ids, tokenizer=None, prompt=None, alpha=1e-3, dedup=True,
           source="-"):
    """Score one document, as `wm detect --json` does.  text_or_ids: a str/bytes
    (needs tokenizer) or a sequence of ids.  prompt (same kind) is prepended;
    tuples inside it are not scored, nor are answer tuples that repeat one of
    the prompt's own (a quoted watermarked prompt is not evidence).  With
    dedup=False the p-value is not valid and watermarked is None.  Returns a dict with source, key_id,
    scheme, tokens, scored, statistic, mean_score, z, p_value, log10_p, watermarked, for kgw
    green and green_fraction (the same numbers by their green-list names), and when text was
    tokenized tokenizer_versions (tokenizer_versions())."""
    if not 0 < alpha < 1:
        raise ValueError("alpha must be in (0, 1)")

    def ids_of(x):
        if isinstance(x, (str, bytes, bytearray)):
            if tokenizer is None:
                raise ValueError("text needs a tokenizer")
            return tokenizer.encode(x)
        return _token_list(x)

    head = ids_of(prompt) if prompt is not None else []
    keep, ptr, n = _tokens(head + ids_of(text_or_ids))
    s = _Score()
    _check(_lib.wm_detect(watermark._h, ptr, n, len(head), 0 if dedup else _NO_DEDUP, alpha,
                          ctypes.byref(s)))
    out = dict(source=source, **_score_dict(watermark, s))
    if not dedup:  # as `wm detect --no-dedup --json`: no verdict, the p-value is not valid
        out["watermarked"] = None
        out["p_value_valid"] = False
    if any(isinstance(x, (str, bytes, bytearray)) for x in (text_or_ids, prompt)):
        out["tokenizer_versions"] = tokenizer_versions()
    return out


def _take_records(get, clear, h):
    """The records a map corpus or reader `h` holds (get: wm_corpus_records or
    wm_reader_records), copied into a numpy array of the record struct's
    dtype, then cleared from `h` (clear)."""
    import numpy as np
    p, n = ctypes.POINTER(_CorpusRecord)(), ctypes.c_size_t()
    _check(get(h, ctypes.byref(p), ctypes.byref(n)))
    out = np.frombuffer(ctypes.string_at(p, n.value * ctypes.sizeof(_CorpusRecord)) if n.value else b"",
                        dtype=np.dtype(_CorpusRecord)).copy()
    _check(clear(h))
    return out


class Corpus:
    """Corpus mode (wm_corpus): every distinct (context, token) tuple of all
    documents added scored once; `filter` (a list of token-id documents,
    e.g. the provider's own outputs) keeps only their contexts.  audit()
    is the sequential audit (wm_corpus_audit): a p-value valid however one
    decides when to stop adding the suspect's answers.  accounts=True also
    tallies the account layer for attribute() (a key with account_delta)."""

    def __init__(self, watermark, filter=None, accounts=False, _map=False):
        h = ctypes.c_void_p()
        flags = (_ACCOUNTS if accounts else 0) | (_CORPUS_MAP if _map else 0)
        _check(_lib.wm_corpus_new(ctypes.byref(h), watermark._h, flags))
        self._h, self._wm, self._filter = h, watermark, None  # the C corpus borrows both
        if filter is not None:
            f = ContextSet(watermark)
            for ids in filter:
                keep, ptr, n = _tokens(ids)
                _check(_lib.wm_ctxset_add(f._h, ptr, n))
            _check(_lib.wm_corpus_set_filter(self._h, f._h))
            self._filter = f

    def add(self, tokens, n_prompt=0):
        keep, ptr, n = _tokens(tokens)
        if not 0 <= n_prompt <= n:
            raise ValueError(f"n_prompt must be in [0, {n}]")
        _check(_lib.wm_corpus_add(self._h, ptr, n, n_prompt))

    def score(self, alpha=1e-3):
        """The fixed-n test over everything added: a dict as detect()."""
        if not 0 < alpha < 1:
            raise ValueError("alpha must be in (0, 1)")
        s = _Score()
        _check(_lib.wm_corpus_score(self._h, alpha, ctypes.byref(s)))
        return _score_dict(self._wm, s)

    def audit(self, alpha=1e-3, target=1e-6):
        """The audit now, as `wm detect --audit --json` prints a look:
        log10_p (anytime), watermarked, fixed_log10_p, excess, excess_lo,
        excess_hi, more_tuples, more_tokens, more_tokens_fixed (None where
        infinite or undefined)."""
        if not (0 < alpha < 1 and 0 < target < 1):
            raise ValueError("alpha and target must be in (0, 1)")
        a = _Audit()
        _check(_lib.wm_corpus_audit(self._h, alpha, target, ctypes.byref(a)))
        fin = lambda x: x if math.isfinite(x) else None  # noqa: E731
        return dict(tokens=a.fixed.tokens, scored=a.fixed.scored, statistic=a.fixed.statistic,
                    log10_p=a.log10_p, watermarked=bool(a.watermarked), fixed_log10_p=a.fixed.log10_p,
                    target=target, excess=fin(a.excess), excess_lo=fin(a.excess_lo), excess_hi=fin(a.excess_hi),
                    more_tuples=fin(a.more_tuples), more_tokens=fin(a.more_tokens),
                    more_tokens_fixed=fin(a.more_tokens_fixed))

    def attribute(self, accounts, alpha=0.01, top=10):
        """Which of `accounts` (ids, none 0) fed the corpus
        (wm_corpus_attribute; null in detect.h): a dict as `wm detect
        --accounts --json` prints: accounts, tuples, named, null_mean,
        null_sd, exact, and top, the `top` best as dicts (account,
        statistic, log10_p, log10_p_family, named)."""
        return _attribute(_lib.wm_corpus_attribute, self._h, accounts, alpha, top)

    # ---- across machines (include/wm/cluster.h; libwm.dask builds on these)

    def _add_doc(self, doc, tokens, n_prompt=0):
        """A map corpus (_map=True): document number `doc` (global order)."""
        _check(_lib.wm_corpus_set_next_doc(self._h, doc))
        self.add(tokens, n_prompt)

    def _take_records(self):
        """A map corpus's records so far as a numpy array of the record struct's dtype
        (a copy), then forgotten by the corpus."""
        return _take_records(_lib.wm_corpus_records, _lib.wm_corpus_records_clear, self._h)

    def _totals(self):
        t = _CorpusTotals()
        _check(_lib.wm_corpus_totals_get(self._h, ctypes.byref(t)))
        return dict(docs=t.docs, tokens=t.tokens, scored=t.scored, statistic=t.stat_hi << 64 | t.stat_lo)

    @classmethod
    def _merged(cls, watermark, deltas, tokens, docs, tally=None, accounts=False):
        """A corpus restored from a cluster's totals (wm_corpus_merge):
        deltas (the delta struct's dtype, document order), `tokens`, `docs`
        and the account tally (ACCOUNT_CELLS counts; accounts=True only)."""
        c = cls(watermark, accounts=accounts)
        c._merge(deltas, tokens, docs, tally)
        return c

    def _merge(self, deltas, tokens, docs, tally=None):
        """wm_corpus_merge again, for later documents (see cluster.h)."""
        import numpy as np
        d = np.ascontiguousarray(deltas, dtype=np.dtype(_CorpusDelta))
        t = None if tally is None else np.ascontiguousarray(tally, dtype=np.uint64)
        if t is not None and t.size != ACCOUNT_CELLS:
            raise ValueError(f"tally must have {ACCOUNT_CELLS} counts, not {t.size}")
        _check(_lib.wm_corpus_merge(self._h, d.ctypes.data if d.size else None, d.size, tokens, docs,
                                    None if t is None else t.ctypes.data))

    def __del__(self):
        if getattr(self, "_h", None) and _lib:
            _lib.wm_corpus_free(self._h)
            self._h = None


def _corpus_deltas(score, doc):
    """wm_corpus_deltas: the exact per-document sums of scores (float64)
    sorted by doc (uint64, non-decreasing), as an array of the delta struct's dtype."""
    import numpy as np
    s = np.ascontiguousarray(score, dtype=np.float64)
    d = np.ascontiguousarray(doc, dtype=np.uint64)
    if s.shape != d.shape or s.ndim != 1:
        raise ValueError("score and doc must be 1-d arrays of one length")
    out, m = np.zeros(max(s.size, 1), dtype=np.dtype(_CorpusDelta)), ctypes.c_size_t()
    _check(_lib.wm_corpus_deltas(s.ctypes.data, d.ctypes.data, s.size, out.ctypes.data, ctypes.byref(m)))
    return out[:m.value]


def _attribute(fn, handle, accounts, alpha, top):
    import numpy as np
    if not 0 < alpha < 1:
        raise ValueError("alpha must be in (0, 1)")
    ids = np.ascontiguousarray(np.asarray(accounts, dtype=np.uint64).reshape(-1))
    k = max(0, min(int(top), ids.size))
    out, summary = (_AccountScore * max(k, 1))(), _Attribution()
    out[0].size = ctypes.sizeof(_AccountScore)  # describes the array (common.h); arrays skip __init__
    _check(fn(handle, ids.ctypes.data_as(ctypes.POINTER(ctypes.c_uint64)), ids.size, alpha, out, k,
              ctypes.byref(summary)))
    return dict(accounts=summary.accounts, tuples=summary.tuples, named=summary.named,
                null_mean=summary.null_mean, null_sd=summary.null_sd, exact=bool(summary.exact),
                top=[dict(account=out[i].account, statistic=out[i].statistic, log10_p=out[i].log10_p,
                          log10_p_family=out[i].log10_p_family, named=bool(out[i].named))
                     for i in range(summary.n_top)])


class Reader:
    """Reading mode (wm_reader, see detect.h for the null): the suspect
    model's top-k predictions on the provider's watermarked text, scored as
    (context, prediction) tuples, deduplicated over everything added.
    weighted=True: the weighted test (WM_READ_WEIGHTED), each prediction
    with a weight, p-value = Chernoff bound (kgw only).  accounts=True also
    tallies the account layer for attribute() (wm_reader_attribute: read
    text generated without an account)."""

    def __init__(self, watermark, weighted=False, accounts=False, _map=False):
        h = ctypes.c_void_p()
        _check(_lib.wm_reader_new(ctypes.byref(h), watermark._h, (_READ_WEIGHTED if weighted else 0) |
                                  (_ACCOUNTS if accounts else 0) | (_CORPUS_MAP if _map else 0)))
        self._h = h
        self._wm = watermark  # the C reader borrows it
        self.weighted = weighted

    def add(self, tokens, preds, n_prompt=0, weights=None):
        """tokens: the document's ids; preds: len(tokens) rows of k ids, row
        i = the suspect's predictions for position i given tokens[:i]; an
        entry -1 (WM_TOKEN_NONE) is "not read" and makes no tuple (rows with
        fewer than k predictions, or none); weights: an array
        shaped as preds (weighted reader only)."""
        import numpy as np
        keep, ptr, n = _tokens(tokens)
        _check_int_dtype(preds)
        p = np.asarray(_ids_numpy(preds))
        if p.ndim != 2 or p.shape[0] != n or p.shape[1] < 1:
            raise ValueError(f"preds must have shape ({n}, k >= 1), not {p.shape}")
        if p.size and (p.min() < _INT32_MIN or p.max() > _INT32_MAX):
            raise ValueError("a predicted id does not fit in int32")
        p = np.ascontiguousarray(p, dtype=np.int32)
        if (weights is not None) != self.weighted:
            raise ValueError("weights go with a weighted reader, and only there")
        w = None
        if weights is not None:
            w = np.ascontiguousarray(weights, dtype=np.float32)
            if w.shape != p.shape:
                raise ValueError(f"weights must have the shape of preds {p.shape}, not {w.shape}")
        _check(_lib.wm_reader_add(self._h, ptr, n, n_prompt, ctypes.cast(p.ctypes.data, _c_token_p),
                                  None if w is None else w.ctypes.data, p.shape[1]))

    def score(self, alpha=1e-3):
        """The test so far: a dict as detect() returns, plus positions
        (answer positions read); weighted: statistic = S, p_value_bound."""
        if not 0 < alpha < 1:
            raise ValueError("alpha must be in (0, 1)")
        s, pos = _Score(), ctypes.c_uint64()
        _check(_lib.wm_reader_score(self._h, alpha, ctypes.byref(s), ctypes.byref(pos)))
        out = dict(_score_dict(self._wm, s), positions=pos.value)
        if self.weighted:  # S is a sum of weights, not a count; p is a bound
            for f in ("green", "green_fraction", "mean_score"):
                out.pop(f, None)
            out["p_value_bound"] = True
        return out

    def attribute(self, accounts, alpha=0.01, top=10):
        """Which of `accounts` the suspect was trained on, from what it
        predicts (wm_reader_attribute): the dict of Corpus.attribute()."""
        return _attribute(_lib.wm_reader_attribute, self._h, accounts, alpha, top)

    # ---- across machines (include/wm/cluster.h, "reading mode"; libwm.dask.run_reader)

    def _add_doc(self, doc, tokens, preds, n_prompt=0):
        """A map reader (_map=True): document number `doc` (global order)."""
        _check(_lib.wm_reader_set_next_doc(self._h, doc))
        self.add(tokens, preds, n_prompt)

    def _take_records(self):
        """A map reader's records so far (as Corpus._take_records), then forgotten."""
        return _take_records(_lib.wm_reader_records, _lib.wm_reader_records_clear, self._h)

    def _counts(self):
        """(tokens given, answer positions read) so far."""
        t, p = ctypes.c_uint64(), ctypes.c_uint64()
        _check(_lib.wm_reader_counts(self._h, ctypes.byref(t), ctypes.byref(p)))
        return t.value, p.value

    def _merge(self, deltas, tokens, positions, tally=None):
        """wm_reader_merge: a cluster's reduced deltas (any order), tokens,
        positions and account tally (ACCOUNT_CELLS counts) into this plain reader."""
        import numpy as np
        d = np.ascontiguousarray(deltas, dtype=np.dtype(_CorpusDelta))
        t = None if tally is None else np.ascontiguousarray(tally, dtype=np.uint64)
        if t is not None and t.size != ACCOUNT_CELLS:
            raise ValueError(f"tally must have {ACCOUNT_CELLS} counts, not {t.size}")
        _check(_lib.wm_reader_merge(self._h, d.ctypes.data if d.size else None, d.size, tokens, positions,
                                    None if t is None else t.ctypes.data))

    def __del__(self):
        if getattr(self, "_h", None) and _lib:
            _lib.wm_reader_free(self._h)
            self._h = None


def read_torch(reader, model, docs, k=1, batch=16, max_len=None, reference=None):
    """PyTorch / Hugging Face driver of reading mode: teacher-force `model`
    on docs, a list of (ids, n_prompt), and add its top-k predictions to
    `reader` (or to each of a list of readers, e.g. one per key, all plain
    or all weighted, from one forward pass).  model(x) takes a LongTensor [B, T] and returns logits
    [B, T, V] or an object with .logits (transformers).  A document longer
    than max_len (the model's context) is read up to max_len tokens.
    Right padding: with causal attention it never changes earlier rows.
    A weighted reader needs `reference`, the provider's own unwatermarked
    model (same vocabulary): the candidates are then the k tokens where
    p_model - p_reference is largest in magnitude (k = V: all), each
    weighted by that difference."""
    import numpy as np
    import torch
    readers = list(reader) if isinstance(reader, (list, tuple)) else [reader]
    if any(r.weighted != (reference is not None) for r in readers):
        raise ValueError("a weighted reader needs a reference model, a plain one none")
    docs = [(list(ids)[:max_len] if max_len else list(ids), n_prompt) for ids, n_prompt in docs]

    def run(m, x):
        dev = next(m.parameters()).device if hasattr(m, "parameters") else "cpu"
        out = m(x.to(dev))
        return getattr(out, "logits", out).float().cpu()

    with torch.no_grad():
        for b in range(0, len(docs), batch):
            part = docs[b:b + batch]
            width = max(len(ids) for ids, _ in part)
            x = torch.zeros((len(part), width), dtype=torch.long)
            for r, (ids, _) in enumerate(part):
                x[r, :len(ids)] = torch.tensor(ids, dtype=torch.long)
            logits = run(model, x)
            if reference is None:
                top, wts = logits.topk(k, dim=-1).indices.numpy(), None
            else:
                diff = torch.softmax(logits, -1) - torch.softmax(run(reference, x), -1)
                top = diff.abs().topk(k, dim=-1).indices
                wts = diff.gather(-1, top).numpy()
                top = top.numpy()
            for r, (ids, n_prompt) in enumerate(part):
                preds = np.zeros((len(ids), k), dtype=np.int32)
                preds[1:] = top[r, :len(ids) - 1]  # logits at i-1 predict position i
                w = None
                if wts is not None:
                    w = np.zeros((len(ids), k), dtype=np.float32)
                    w[1:] = wts[r, :len(ids) - 1]
                for rd in readers:
                    rd.add(np.asarray(ids, dtype=np.int32), preds, min(n_prompt, len(ids)), w)
    return reader


def version():
    return _lib.wm_version().decode()
