"""The green list (and account layer) computed with PyTorch integer ops on the
logits' own device, bit for bit with the C library (include/wm/embed.h, "the
bias computed elsewhere", defines every step).

A GPU server therefore moves no O(vocabulary) data between host and device
and never waits on token history the device already holds: seeds come from
token tensors on the device (DeviceWatermark.seeds), the bias from seeds
(DeviceWatermark.bias_).  SipHash runs on int64 tensors: additions and
multiplications wrap (two's complement on every PyTorch backend), right
shifts are masked to be logical.  tests/test_python.py checks every output
against the C API on CPU tensors; a GPU runs the same ops.

The keys live in this object as Python ints, like the C library's copy in
the process: whoever can read this process can read them."""

import ctypes

import numpy as np
import torch

_M64 = (1 << 64) - 1
_C = (0x736f6d6570736575, 0x646f72616e646f6d, 0x6c7967656e657261, 0x7465646279746573)
_POS_BLOCK = 1 << 63  # block index of the account position PRF (schemes/account.c)


def _i64(x):
    """A 64-bit pattern as the int64 that holds it."""
    x &= _M64
    return x - (1 << 64) if x >> 63 else x


def _u64_le(b):
    return int.from_bytes(bytes(b), "little")


def _shr(x, n):
    """Logical right shift of int64 x by n (PyTorch's >> is arithmetic)."""
    return (x >> n) & ((1 << (64 - n)) - 1)


def _rotl(x, b):
    return (x << b) | _shr(x, 64 - b)


def _rounds(v, n):
    v0, v1, v2, v3 = v
    for _ in range(n):
        v0 = v0 + v1
        v1 = _rotl(v1, 13) ^ v0
        v0 = _rotl(v0, 32)
        v2 = v2 + v3
        v3 = _rotl(v3, 16) ^ v2
        v0 = v0 + v3
        v3 = _rotl(v3, 21) ^ v0
        v2 = v2 + v1
        v1 = _rotl(v1, 17) ^ v2
        v2 = _rotl(v2, 32)
    return [v0, v1, v2, v3]


def init_state(key, wide, device):
    """SipHash's initial state for key (16 bytes), as 0-d int64 tensors on
    device: made once per key and device, so a step copies nothing to the
    device (a copy from the host would also wait for it)."""
    k0, k1 = _u64_le(key[:8]), _u64_le(key[8:])
    v = (_C[0] ^ k0, _C[1] ^ k1 ^ (0xee if wide else 0), _C[2] ^ k0, _C[3] ^ k1)
    return [torch.tensor(_i64(x), dtype=torch.int64, device=device) for x in v]


def _absorb(v, m):
    v = list(v)
    v[3] = v[3] ^ m
    v = _rounds(v, 2)
    v[0] = v[0] ^ m
    return v


def prf128(state, seed, block):
    """SipHash-2-4-128_key(LE64(seed) || LE64(block)) as two int64 words (low,
    high), broadcasting seed [R, 1] against block [1, B] (or any shapes);
    state: init_state(key, True, device)."""
    v = _absorb(state, seed)
    v = _absorb(v, block)
    v = _absorb(v, _i64(16 << 56))
    v[2] = v[2] ^ 0xee
    v = _rounds(v, 4)
    lo = v[0] ^ v[1] ^ v[2] ^ v[3]
    v[1] = v[1] ^ 0xdd
    v = _rounds(v, 4)
    return lo, v[0] ^ v[1] ^ v[2] ^ v[3]


def siphash64_u32(state, x):
    """SipHash-2-4-64_key(LE32(x)) of int64 tensor x holding 32-bit values;
    state: init_state(key, False, device)."""
    b = _i64(4 << 56) | (x & 0xffffffff)
    v = _absorb(state, b)
    v[2] = v[2] ^ 0xff
    v = _rounds(v, 4)
    return v[0] ^ v[1] ^ v[2] ^ v[3]


def _mix64(x):
    x = x ^ _shr(x, 30)
    x = x * _i64(0xbf58476d1ce4e5b9)
    x = x ^ _shr(x, 27)
    x = x * _i64(0x94d049bb133111eb)
    return x ^ _shr(x, 31)


def _fields(lo, hi, bits):
    """The b-bit fields of [R, B] 128-bit outputs, LSB first: [R, B * 128 / b]."""
    by = torch.stack((lo, hi), -1).contiguous().view(torch.uint8).to(torch.int16)  # [R, B, 16], little-endian
    if bits == 8:
        return by.flatten(-2)
    if bits == 16:
        by = by.to(torch.int32)  # 16-bit fields do not fit int16 as unsigned
        w = by[..., 0::2] | (by[..., 1::2] << 8)
        return w.flatten(-2)
    shifts = torch.arange(0, 8, bits, device=lo.device, dtype=torch.int16)
    return ((by.unsqueeze(-1) >> shifts) & ((1 << bits) - 1)).flatten(-3)


class DeviceWatermark:
    """A libwm.Watermark's bias on one torch device.  Thread-compatible (no
    shared mutable state beyond a small cache of account codewords)."""

    def __init__(self, watermark, device):
        from . import _lib, _check, _KernelParams
        p = _KernelParams()
        _check(_lib.wm_kernel_params_get(watermark._h, ctypes.byref(p)))
        self.wm, self.device = watermark, torch.device(device)
        self.n_vocab, self.h, self.minhash = p.n_vocab, p.context_width, p.seeding == 1
        self.bits, self.thresh, self.delta, self.account_delta = p.field_bits, p.threshold, p.delta, p.account_delta
        d = self.device
        self._kg = init_state(bytes(p.green_key), True, d)
        self._ka = init_state(bytes(p.account_key), True, d)
        self._km = init_state(bytes(p.minhash_key), False, d)
        ctypes.memset(ctypes.addressof(p), 0, ctypes.sizeof(p))
        self._tpb = 128 // self.bits
        self._blocks = torch.arange((self.n_vocab + self._tpb - 1) // self._tpb, device=self.device)
        self._ablocks = torch.arange((self.n_vocab + 63) // 64, device=self.device)
        self._codes = {}

    # -- seeds -------------------------------------------------------------------
    def seeds(self, ctx):
        """Seeds of contexts ctx [R, h] (int64, oldest first, on the device):
        the seeding rule of seeding/seed.c.  [R] int64 (uint64 bit patterns)."""
        ctx = ctx.to(torch.int64)
        h = self.h
        if h == 0:
            return torch.zeros(ctx.shape[0], dtype=torch.int64, device=ctx.device)
        if self.minhash:
            hv = siphash64_u32(self._km, ctx) ^ _i64(1 << 63)  # unsigned order as signed
            best_h, best_t = hv[:, 0], ctx[:, 0]
            for i in range(1, h):
                better = (hv[:, i] < best_h) | ((hv[:, i] == best_h) & (ctx[:, i] < best_t))
                best_h = torch.where(better, hv[:, i], best_h)
                best_t = torch.where(better, ctx[:, i], best_t)
            return best_t
        if h == 1:
            return ctx[:, 0]
        if h == 2:
            return ctx[:, 1] | (ctx[:, 0] << 32)
        s = torch.full_like(ctx[:, 0], _i64(0x243f6a8885a308d3))
        for i in range(h):
            s = _mix64(s + ctx[:, i] + _i64(0x9e3779b97f4a7c15))
        return s

    # -- the bias ------------------------------------------------------------------
    def green(self, seeds):
        """[R, n_vocab] bool: the green lists after seeds [R]."""
        lo, hi = prf128(self._kg, seeds[:, None], self._blocks[None, :])
        return _fields(lo, hi, self.bits)[:, :self.n_vocab] < self.thresh

    def account_part(self, seeds, accounts):
        """[R, n_vocab] bool: the part each row's account names after its seed
        (accounts: codes(...); rows of account 0 are meaningless there)."""
        symbols, active = accounts
        pos = prf128(self._ka, seeds, torch.full_like(seeds, _i64(_POS_BLOCK)))[0] & 0xff
        sym = torch.gather(symbols, 1, pos[:, None])  # [R, 1]
        lo, hi = prf128(self._ka, seeds[:, None], self._ablocks[None, :])
        part = _fields(lo, hi, 2)[:, :self.n_vocab]
        return part == sym

    def codes(self, accounts):
        """([R, 256] int64 symbols, [R] bool active) for a list of account ids
        (0: none), on the device; codewords are cached per account."""
        from . import _lib, _check, _account_id
        rows = []
        for a in accounts:
            a = _account_id(a)
            if a not in self._codes:
                if len(self._codes) > 65536:
                    self._codes.clear()
                buf = (ctypes.c_uint8 * 256)()
                if a:
                    _check(_lib.wm_account_symbols(self.wm._h, a, buf))
                self._codes[a] = bytes(buf)
            rows.append(self._codes[a])
        sym = torch.from_numpy(np.frombuffer(b"".join(rows), np.uint8).reshape(len(rows), 256).astype(np.int64))
        sym = sym.to(self.device, non_blocking=True)
        act = torch.tensor([_account_id(a) != 0 for a in accounts], dtype=torch.bool).to(self.device, non_blocking=True)
        return sym, act

    def bias_(self, logits, seeds, valid=None, accounts=None):
        """Adds delta to the green logits of each row of logits [R, >= n_vocab]
        (any floating dtype), in place, as wm_bias_logits_batch does: row r
        after seeds[r] where valid[r] (None: every row); accounts: codes(...)
        or None.  float32 rows equal the C library's bit for bit; 16-bit rows
        get the same additions rounded to their type (as the C library's)."""
        if logits.shape[0] == 0:
            return logits
        v = logits[:, :self.n_vocab]
        v.add_(self._masked(self.green(seeds).to(torch.float32) * self.delta, valid))
        if accounts is not None and self.account_delta > 0:
            sym, active = accounts
            on = active if valid is None else active & valid
            v.add_(self._masked(self.account_part(seeds, accounts).to(torch.float32) * self.account_delta, on))
        return logits

    @staticmethod
    def _masked(add, rows):
        """add, with rows not in `rows` adding -0.0: x + -0.0 is x for every
        x, so those rows stay bit for bit what they were (as in C, which
        skips them), where + 0.0 would turn -0.0 into +0.0."""
        if rows is None:
            return add
        return torch.where(rows[:, None], add, torch.full((), -0.0, device=add.device))
