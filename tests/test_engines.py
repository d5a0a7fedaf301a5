#!/usr/bin/env python3
"""The serving-engine processors and the device green list, bit for bit
against the C API (whose own bytes test_python.py checks against C).

    test_engines.py LIBWM_SO

- libwm.torch_kernel on CPU tensors: seeds for lefthash (h 0, 1, 2, 3, 5)
  and minhash, green lists and account parts, for odd vocabulary sizes and
  padded rows, equal wm_context_seed and wm_bias_logits_batch bit for bit
  (float32), and the same tokens move in bf16/f16;
- vLLM V1: update_state's BatchUpdate protocol replayed (adds in each
  AddedRequest layout that shipped, removes, one-way moves, swaps,
  watermark off, accounts), every step's rows against the C API on
  prompt + output;
- vLLM Model Runner V2: add_request / apply_staged_writes / apply(logits,
  ctx) with slot reuse, rows reordered through expanded_idx_mapping,
  history from all_token_ids, speculative draft rows from input_ids;
- SGLang: CustomLogitProcessor calls with __req__, rows without params left
  alone; Hugging Face: LibwmLogitsProcessor with CPU dtypes;
- fail closed: each engine replay runs without the operator's opt-ins
  (libwm_watermark=false rows and libwm_account rows biased exactly as
  plain rows), with $LIBWM_ALLOW_OPT_OUT / $LIBWM_ALLOW_ACCOUNTS (honoured),
  and for vLLM with a subclass's allow_opt_out / allow_accounts, either way
  over the variable;
- validate_params refuses bad arguments by name, and the switches by name
  and variable without the opt-in; a malformed opt-in variable stops
  construction.
vLLM and SGLang are not installable here (no PyPI): the processors run on
their fallback base class and the engines' documented call protocol is
replayed with stand-in objects of the same shape."""
import os
import sys
from enum import Enum, auto
from types import SimpleNamespace

from checks import check, require, summary

os.environ["LIBWM_LIBRARY"] = os.path.abspath(sys.argv[1])
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "python"))
np = require("numpy", "python3-numpy")

try:
    import torch
except ImportError:
    torch = None
if torch is None:
    print("[  SKIPPED ] torch is not installed (apt install python3-torch): nothing to replay")
    print("[  PASSED  ] 0 test(s).")
    sys.exit(77)

import libwm  # noqa: E402
from libwm import torch_kernel  # noqa: E402
from libwm.hf import LibwmLogitsProcessor  # noqa: E402

tmp = os.environ.get("TMPDIR", "/tmp")
rng = np.random.default_rng(2026)


def key(name, **params):
    k = libwm.Key.from_seed(bytes((len(name) * 13 + 5 * i) % 256 for i in range(32)), **params)
    path = os.path.join(tmp, f"wm-engines-{os.getpid()}-{name}.wmkey")
    if not os.path.exists(path):
        k.save(path)
    return k, path


def c_rows(wm, logits, contexts, accounts=None):
    """The C API on a float32 numpy copy: the reference.  A context None
    leaves its row alone (an empty one is still biased when h is 0)."""
    ref = logits.detach().cpu().float().numpy().copy() if torch.is_tensor(logits) else logits.copy()
    on = [r for r, c in enumerate(contexts) if c is not None]
    if on:
        sub = ref[on]
        wm.bias_batch(sub, [contexts[r] for r in on], [accounts[r] for r in on] if accounts else None)
        ref[on] = sub
    return ref


def same_bits(a, b):
    a = a.detach().cpu().numpy() if torch.is_tensor(a) else a
    return a.tobytes() == np.asarray(b, np.float32).tobytes()


OPT_OUT, ACCOUNTS = "LIBWM_ALLOW_OPT_OUT", "LIBWM_ALLOW_ACCOUNTS"
for _v in (OPT_OUT, ACCOUNTS):  # the replays set them; none leaks in from the caller
    os.environ.pop(_v, None)


def set_allow(env):
    """Set the opt-in variables to env's values (a missing one: unset)."""
    for v in (OPT_OUT, ACCOUNTS):
        if v in env:
            os.environ[v] = env[v]
        else:
            os.environ.pop(v, None)


# (name, variables, subclass attributes, (opt-out honoured, accounts honoured))
MODES = [("closed", {}, {}, (False, False)),
         ("closed, variables 0", {OPT_OUT: "0", ACCOUNTS: "0"}, {}, (False, False)),
         ("both variables 1", {OPT_OUT: "1", ACCOUNTS: "1"}, {}, (True, True)),
         ("opt-out only", {OPT_OUT: "1"}, {}, (True, False)),
         ("accounts only", {ACCOUNTS: "1", OPT_OUT: ""}, {}, (False, True))]
VLLM_MODES = MODES + [("subclass allows", {}, dict(allow_opt_out=True, allow_accounts=True), (True, True)),
                      ("subclass refuses over the variables", {OPT_OUT: "1", ACCOUNTS: "1"},
                       dict(allow_opt_out=False, allow_accounts=False), (False, False))]


def effective(extra, allow):
    """(on, account) the processor must apply to a request's arguments, given
    (opt-out honoured, accounts honoured): the reference for the replays."""
    extra = extra or {}
    on = extra.get("libwm_watermark", True) or not allow[0]
    return on, (extra.get("libwm_account", 0) if allow[1] and on else 0)


def asked_off(extra):
    return (extra or {}).get("libwm_watermark", True) is False


@check("device green list (torch, CPU): seeds, green lists and account parts equal the C API bit for bit")
def _():
    cases = [(dict(context_width=h), V) for h in (0, 1, 2, 3, 5) for V in (1, 97, 4099)] + \
            [(dict(context_width=h, seeding="minhash"), V) for h in (1, 3, 4) for V in (63, 2050)] + \
            [(dict(gamma=g, account_delta=1.5), 1001) for g in (0.5, 0.25, 1 / 16, 3 / 256, 1 / 65536 * 7)]
    for params, V in cases:
        k, _ = key(f"dev-{sorted(params.items())}-{V}", **params)
        wm = libwm.Watermark(k, V)
        dev = wm.on_device("cpu")
        h, R, pad = wm.context_width, 9, 13
        ctx = rng.integers(0, V, (R, h)).astype(np.int64)
        ctx[0, :] = ctx[0, :1]  # ties within a context (minhash tie-break)
        seeds = dev.seeds(torch.from_numpy(ctx).view(R, h))
        want = [wm.seed(list(map(int, c))) for c in ctx]
        assert [int(s) & (2 ** 64 - 1) for s in seeds] == want, (params, V)
        logits = torch.from_numpy(rng.standard_normal((R, V + pad)).astype(np.float32) * 4)
        logits[0, :5] = -0.0
        logits[1, :3] = float("-inf")
        accounts = [0, 5, 2 ** 64 - 1, 0, 77, 3, 0, 1, 9] if wm.params.get("account_delta") else None
        valid = torch.tensor([r != 3 for r in range(R)])
        ref = c_rows(wm, logits, [list(map(int, c)) if r != 3 else [] for r, c in enumerate(ctx)], accounts)
        if h == 0:  # an empty context is a full one at h 0: every row biased
            valid = None
        got = logits.clone()
        dev.bias_(got, seeds, valid, dev.codes(accounts) if accounts else None)
        assert same_bits(got, ref), (params, V)
        for dt in (torch.bfloat16, torch.float16):
            lo = logits.to(dt)
            c_lo, d_lo = lo.clone(), lo.clone()
            wm.bias_batch(c_lo, [list(map(int, c)) if r != 3 else [] for r, c in enumerate(ctx)], accounts)
            dev.bias_(d_lo, seeds, valid, dev.codes(accounts) if accounts else None)
            assert torch.equal(c_lo.view(torch.int16), d_lo.view(torch.int16)), (params, V, dt)


@check("device green list: SipHash-2-4 in int64 ops equals libsodium on edge inputs (all-ones, sign bits)")
def _():
    k, _ = key("edge", account_delta=1.0)
    wm = libwm.Watermark(k, 2 ** 31 - 1)
    dev = wm.on_device("cpu")
    ctx = torch.tensor([[0], [1], [2 ** 31 - 2], [2 ** 31 - 3]], dtype=torch.int64)
    seeds = dev.seeds(ctx)
    blocks = torch.tensor([0, 1, 2 ** 25, 2 ** 25 - 1], dtype=torch.int64)
    lo, hi = torch_kernel.prf128(dev._kg, seeds[:, None], blocks[None, :])
    for r in range(4):
        for j in range(4):  # token 64 j + i is green iff field i of block j: compare with is_green
            for i in (0, 31, 32, 63):
                t = int(blocks[j]) * 64 + i
                if t >= wm.n_vocab:
                    continue
                f = (int(lo[r, j]) if i < 32 else int(hi[r, j])) >> (2 * (i % 32)) & 3
                assert (f < dev.thresh) == wm.is_green([int(ctx[r, 0])], t), (r, j, i)


class Move(Enum):  # vllm.v1.sample.logits_processor.interface.MoveDirectionality
    UNIDIRECTIONAL = auto()
    SWAP = auto()


def sp(**extra):
    """A SamplingParams stand-in: what the processors read is extra_args."""
    return SimpleNamespace(extra_args=extra or None)


class V1Engine:
    """vLLM V1's persistent batch as the processor sees it: a BatchUpdate per
    change (removed, added, moved, applied in that order), output lists
    shared by reference, then apply(logits [batch, V])."""

    def __init__(self, proc, V, layout, allow):
        self.proc, self.V, self.layout, self.allow = proc, V, layout, allow
        self.slots = []  # batch index -> request dict or None
        self.closed_rows = 0  # rows asking libwm_watermark=false and biased (no opt-in)

    def added(self, i, r):
        p, out, params = r["prompt"], r["out"], r["params"]
        return {"current": (i, params, p, out), "no-prompt": (i, params, out),
                "prompt-first": (p, i, params, out)}[self.layout]

    def step(self, removed=(), added=(), moved=()):
        for i in removed:
            self.slots[i] = None
        add = []
        for i, r in added:
            while len(self.slots) <= i:
                self.slots.append(None)
            self.slots[i] = r
            add.append(self.added(i, r))
        for a, b, d in moved:
            if d is Move.SWAP:
                self.slots[a], self.slots[b] = self.slots[b], self.slots[a]
            else:
                self.slots[b], self.slots[a] = self.slots[a], None
        while self.slots and self.slots[-1] is None:
            self.slots.pop()
        bu = SimpleNamespace(batch_size=len(self.slots), removed=list(removed), added=add, moved=list(moved)) \
            if removed or added or moved else None
        self.proc.update_state(bu)
        n = len(self.slots)
        logits = torch.from_numpy(rng.standard_normal((n, self.V + 11)).astype(np.float32))
        ctxs, accts = [], []
        for r in self.slots:
            on, acct = effective(r["params"].extra_args, self.allow) if r is not None else (False, 0)
            prompt = (r["prompt"] or []) if r and self.layout != "no-prompt" else []
            ctxs.append(list(prompt) + list(r["out"]) if on else None)
            accts.append(acct)
            self.closed_rows += bool(on and asked_off(r["params"].extra_args))
        ref = c_rows(self.proc.wm, logits, ctxs, accts if any(accts) else None)
        got = self.proc.apply(logits.clone())
        assert same_bits(got, ref), (self.layout, "opt-ins", self.allow, "rows differing, with their arguments",
                                     [(int(i), self.slots[i]["params"].extra_args)
                                      for i in np.flatnonzero((got.numpy() != ref).any(1))])
        for r in self.slots:  # every request decodes one token
            if r is not None:
                r["out"].append(int(rng.integers(0, self.V)))
        return got


def request(V, n_prompt, **extra):
    return dict(prompt=[int(t) for t in rng.integers(0, V, n_prompt)], out=[], params=sp(**extra))


@check("vLLM V1 runner: update_state/apply protocol replayed (3 AddedRequest layouts, removes, moves, swaps; "
       "without the opt-ins, with the variables, with a subclass)")
def _():
    from libwm.vllm import LibwmV1LogitsProcessor
    closed = 0
    for (keyparams, V), layout, (mode, env, attrs, allow) in \
            [(k, lay, m) for k in ((dict(account_delta=2.0), 3001), (dict(context_width=3, seeding="minhash"), 1025),
                                   (dict(context_width=0), 500))
             for lay in ("current", "no-prompt", "prompt-first") for m in VLLM_MODES]:
        _, path = key(f"v1-{sorted(keyparams.items())}", **keyparams)
        os.environ["LIBWM_KEY"] = path
        cfg = SimpleNamespace(model_config=SimpleNamespace(get_vocab_size=lambda: V))
        acc = bool(keyparams.get("account_delta"))
        set_allow(env)
        cls = type("V1Sub", (LibwmV1LogitsProcessor,), attrs) if attrs else LibwmV1LogitsProcessor
        proc = cls(cfg, torch.device("cpu"), False)
        set_allow({})  # read at construction: what the variables say later changes nothing
        assert proc.is_argmax_invariant() is False
        e = V1Engine(proc, V, layout, allow)
        r = [request(V, n, **({"libwm_account": 1000 + n} if acc and n % 2 else {})) for n in range(1, 9)]
        r[3]["params"] = sp(libwm_watermark=False, **({"libwm_account": 77} if acc else {}))
        e.step(added=[(0, r[0]), (1, r[1]), (2, r[2])])
        e.step()
        e.step(added=[(3, r[3]), (4, r[4])])
        e.step(removed=[1])
        e.step(moved=[(4, 1, Move.UNIDIRECTIONAL)])  # condense: 4 -> 1
        e.step(moved=[(0, 2, Move.SWAP)])
        e.step(removed=[2], added=[(2, r[5]), (4, r[6])], moved=[(4, 0, Move.SWAP)])
        for _ in range(3):
            e.step()
        e.step(removed=[0, 1, 2, 3], added=[(0, r[7])])
        e.step()
        if not allow[0]:
            assert e.closed_rows, (mode, layout)  # the opted-out request's rows were biased
        closed += e.closed_rows
    assert closed
    os.environ.pop("LIBWM_KEY")


class V2Engine:
    """Model Runner V2 as the processor sees it: slots from a free list
    (reused), req_states with all_token_ids [slots, max_len] on the device
    (wrapped, as vLLM wraps it), per step rows reordered and expanded for
    draft tokens, then apply(logits, ctx)."""

    def __init__(self, proc_cls, V, cpu_in_c, allow, max_reqs=6, max_len=64):
        self.V, self.allow, self.closed_rows = V, allow, 0
        hist = torch.zeros(max_reqs, max_len, dtype=torch.int32)
        self.rs = SimpleNamespace(device=torch.device("cpu"), max_num_reqs=max_reqs, vocab_size=V,
                                  all_token_ids=SimpleNamespace(gpu=hist), prompt_len=None, prefill_len=None,
                                  total_len=None)
        self.hist = hist
        self.proc = proc_cls(SimpleNamespace(model_config=None), self.rs)
        self.proc.cpu_in_c = cpu_in_c
        self.free = list(range(max_reqs))
        self.live = {}  # slot -> request

    def add(self, r):
        s = self.free.pop(0)
        self.live[s] = r
        self.hist[s].zero_()
        self.hist[s, :len(r["prompt"])] = torch.tensor(r["prompt"], dtype=torch.int32)
        r["n"] = len(r["prompt"])
        return self.proc.add_request(s, r["params"])

    def remove(self, s):
        del self.live[s]
        self.free.append(s)  # V2 has no remove hook: the next add_request overwrites

    def step(self, drafts=None):
        """One forward pass: each live request gets 1 + drafts[slot] rows."""
        drafts = drafts or {}
        self.proc.apply_staged_writes()
        order = list(self.live)
        rng.shuffle(order)  # rows are reordered every step
        rows, pos, ids, local, ctxs, accts = [], [], [], [], [], []
        for s in order:
            r = self.live[s]
            dr = [int(t) for t in rng.integers(0, self.V, drafts.get(s, 0))]
            seq = r["prompt"] + r["out"]
            for j in range(len(dr) + 1):
                # row j scores the token after seq + dr[:j]; its input token is the last of those
                full = seq + dr[:j]
                rows.append(s)
                pos.append(len(full) - 1)
                ids.append(full[-1])
                local.append(j)
                on, acct = effective(r["params"].extra_args, self.allow)
                ctxs.append(full if on else None)
                accts.append(acct)
                self.closed_rows += bool(on and asked_off(r["params"].extra_args))
        n = len(rows)
        ctx = SimpleNamespace(expanded_idx_mapping=torch.tensor(rows, dtype=torch.int32),
                              idx_mapping=torch.tensor(order, dtype=torch.int32), idx_mapping_np=np.array(order),
                              expanded_local_pos=torch.tensor(local, dtype=torch.int32),
                              input_ids=torch.tensor(ids, dtype=torch.int32), pos=torch.tensor(pos, dtype=torch.int64),
                              seq_lens_upper_bound_np=None)
        logits = torch.from_numpy(rng.standard_normal((n, self.V)).astype(np.float32) * 3)
        ref = c_rows(self.proc.wm, logits, ctxs, accts if any(accts) else None)
        got = self.proc.apply(logits.clone(), ctx)
        assert same_bits(got, ref), ("opt-ins", self.allow, "rows differing, with their arguments",
                                     [(int(i), self.live[rows[i]]["params"].extra_args)
                                      for i in np.flatnonzero((got.numpy() != ref).any(1))])
        for s in order:  # commit one token per request (drafts rejected)
            r = self.live[s]
            t = int(rng.integers(0, self.V))
            r["out"].append(t)
            self.hist[s, len(r["prompt"]) + len(r["out"]) - 1] = t


@check("vLLM Model Runner V2: add_request/apply_staged_writes/apply replayed (slot reuse, reordered and draft rows; "
       "the device path and the C path; without the opt-ins, with the variables, with a subclass)")
def _():
    from libwm.vllm import LibwmV2LogitsProcessor
    closed = 0
    for (keyparams, V), cpu_in_c, (mode, env, attrs, allow) in \
            [(c, x, m) for c in ((dict(account_delta=1.0), 2003), (dict(context_width=2), 777),
                                 (dict(context_width=4, seeding="minhash"), 1500))
             for x in (True, False) for m in VLLM_MODES]:
        _, path = key(f"v2-{sorted(keyparams.items())}", **keyparams)
        os.environ["LIBWM_KEY"] = path
        acc = bool(keyparams.get("account_delta"))
        set_allow(env)
        cls = type("V2Sub", (LibwmV2LogitsProcessor,), attrs) if attrs else LibwmV2LogitsProcessor
        e = V2Engine(cls, V, cpu_in_c, allow)
        set_allow({})
        assert e.proc.is_argmax_invariant() is False
        reqs = [request(V, n, **({"libwm_account": 2 ** 63 + n} if acc and n % 2 else {})) for n in (1, 2, 5, 9)]
        reqs[1]["params"] = sp(libwm_watermark=False, **({"libwm_account": 12} if acc else {}))
        added = [e.add(r) for r in reqs]
        assert added == [True, not allow[0], True, True], (mode, "add_request returned", added)
        e.step()
        e.step(drafts={0: 2, 2: 3})
        e.remove(1)
        e.remove(0)
        e.add(request(V, 3, **({"libwm_account": 42} if acc else {})))  # reuses slot 4, then 5
        e.add(request(V, 1))
        for _ in range(3):
            e.step(drafts={3: 1})
        e.remove(3)
        e.add(request(V, 6, libwm_watermark=False))  # a watermarked slot reused by an opted-out request
        e.step()
        if not allow[0]:
            assert e.closed_rows, mode
        closed += e.closed_rows
    assert closed
    os.environ.pop("LIBWM_KEY")


@check("SGLang: CustomLogitProcessor calls with __req__; rows without params or __req__ left alone; "
       "without the opt-ins, with the variables")
def _():
    from libwm.sglang import LibwmSGLangProcessor
    _, path = key("sglang", account_delta=2.0)
    os.environ["LIBWM_KEY"] = path
    V = 4096
    os.environ["LIBWM_N_VOCAB"] = str(V)  # the tokenizer's, below the padded rows' 4160
    wm = libwm._serving.watermark(V)
    for mode, env, _, allow in MODES:
        set_allow(env)
        proc = LibwmSGLangProcessor()  # SGLang's from_str: one per batch it builds
        set_allow({})
        reqs = [SimpleNamespace(origin_input_ids=[int(t) for t in rng.integers(0, V, n)], output_ids=[])
                for n in (1, 4, 2, 7, 3, 5)]
        for step in range(4):
            params = [{"__req__": reqs[0]}, None, {"__req__": reqs[2], "libwm_account": 99},
                      {"libwm_account": 5}, {"__req__": reqs[4], "libwm_watermark": False},
                      {"__req__": reqs[5], "libwm_watermark": False, "libwm_account": 7}]
            logits = torch.from_numpy(rng.standard_normal((6, V + 64)).astype(np.float32))
            ctxs, accts = [], []
            for p, r in zip(params, [reqs[0], None, reqs[2], None, reqs[4], reqs[5]]):
                on, acct = effective(p, allow) if r is not None else (False, 0)
                ctxs.append(r.origin_input_ids + r.output_ids if on else None)
                accts.append(acct)
            assert (ctxs[4] is None) == allow[0] and (accts[2] == 99) == allow[1], mode  # the reference itself
            ref = c_rows(wm, logits, ctxs, accts)
            got = proc(logits.clone(), params)
            assert same_bits(got, ref), (mode, step, "rows differing, with their arguments",
                                         [(int(i), {k: v for k, v in params[i].items() if k != "__req__"})
                                          for i in np.flatnonzero((got.numpy() != ref).any(1))])
            for r in reqs:
                r.output_ids.append(int(rng.integers(0, V)))
        assert same_bits(proc(logits.clone(), None), logits)
    os.environ.pop("LIBWM_KEY")
    os.environ.pop("LIBWM_N_VOCAB")


@check("Hugging Face: LibwmLogitsProcessor on CPU float32/bf16/f16 and a LogitsProcessorList-style loop")
def _():
    k, _ = key("hf", account_delta=1.0)
    V = 3000
    wm = libwm.Watermark(k, V)
    g = torch.Generator().manual_seed(20261202)  # fixed: a failure reproduces
    ids = torch.randint(0, V, (4, 7), generator=g)
    base = torch.randn(4, V + 8, generator=g)
    ref = c_rows(wm, base, [list(map(int, r)) for r in ids], [1, 2, 0, 3])
    proc = LibwmLogitsProcessor(wm, accounts=[1, 2, 0, 3])
    for dt in (torch.float32, torch.bfloat16, torch.float16):
        s = base.clone().to(dt)  # .to(float32) alone would alias base
        before, ptr = s.clone(), s.data_ptr()
        out = proc(ids, s)
        assert out is s and out.data_ptr() == ptr
        moved = (out.float() != before.float()).numpy()
        assert np.array_equal(moved, ref != base.numpy()), dt  # the same tokens move in every dtype
    assert same_bits(proc(ids, base.clone()), ref)


@check("validate_params: bad libwm_* arguments refused by name; account without an account layer refused; "
       "a gumbel key refused at construction")
def _():
    from libwm.vllm import LibwmV1LogitsProcessor, LibwmV2LogitsProcessor
    _, plain = key("plain-validate")
    _, layered = key("layered-validate", account_delta=1.0)
    set_allow({OPT_OUT: "1", ACCOUNTS: "1"})  # the switches allowed: the values themselves checked
    for cls in (LibwmV1LogitsProcessor, LibwmV2LogitsProcessor):
        os.environ["LIBWM_KEY"] = layered
        cls.validate_params(sp(libwm_account=2 ** 64 - 1, libwm_watermark=False))
        cls.validate_params(sp())
        for bad, name in ((sp(libwm_watermark="no"), "libwm_watermark"), (sp(libwm_account=-1), "libwm_account"),
                          (sp(libwm_account=2 ** 64), "libwm_account"), (sp(libwm_account=1.5), "libwm_account")):
            try:
                cls.validate_params(bad)
                raise AssertionError(f"accepted {bad}")
            except ValueError as e:
                assert name in str(e), e
        os.environ["LIBWM_KEY"] = plain
        try:
            cls.validate_params(sp(libwm_account=7))
            raise AssertionError("an account with a key without a layer")
        except ValueError as e:
            assert "account layer" in str(e), e
    _, gumbel = key("gumbel-engines", scheme="gumbel")
    os.environ["LIBWM_KEY"] = gumbel
    try:
        LibwmV1LogitsProcessor(SimpleNamespace(model_config=SimpleNamespace(get_vocab_size=lambda: 100)), "cpu", False)
        raise AssertionError("a gumbel key in a bias-only processor")
    except RuntimeError as e:
        assert "kgw" in str(e), e
    set_allow({})
    os.environ.pop("LIBWM_KEY")


def refused(fn, exc, *words):
    try:
        fn()
    except exc as e:
        assert all(w in str(e) for w in words), (words, e)
        return
    raise AssertionError(f"accepted: expected {exc.__name__} naming {words}")


@check("validate_params fails closed: without the opt-in libwm_watermark=false and libwm_account refused, naming "
       "the argument and the variable; accepted with the variable or a subclass; a subclass refusing wins")
def _():
    from libwm.vllm import LibwmV1LogitsProcessor, LibwmV2LogitsProcessor
    _, layered = key("layered-validate", account_delta=1.0)
    os.environ["LIBWM_KEY"] = layered
    off, acct = sp(libwm_watermark=False), sp(libwm_account=5)
    for base in (LibwmV1LogitsProcessor, LibwmV2LogitsProcessor):
        allows = type("Allows", (base,), dict(allow_opt_out=True, allow_accounts=True))
        refuses = type("Refuses", (base,), dict(allow_opt_out=False, allow_accounts=False))
        both = {OPT_OUT: "1", ACCOUNTS: "1"}
        for cls, env, ok_off, ok_acct in ((base, {}, False, False), (base, {OPT_OUT: "0", ACCOUNTS: ""}, False, False),
                                          (base, {OPT_OUT: "1"}, True, False), (base, {ACCOUNTS: "1"}, False, True),
                                          (base, both, True, True), (allows, {}, True, True),
                                          (refuses, both, False, False)):
            set_allow(env)
            for ok in (sp(), sp(libwm_watermark=True), sp(libwm_account=0), sp(libwm_watermark=True, libwm_account=0)):
                cls.validate_params(ok)  # what changes nothing is never refused
            if ok_off:
                cls.validate_params(off)
            else:
                refused(lambda: cls.validate_params(off), ValueError, "libwm_watermark", OPT_OUT)
            if ok_acct:
                cls.validate_params(acct)
            else:
                refused(lambda: cls.validate_params(acct), ValueError, "libwm_account", ACCOUNTS)
            refused(lambda: cls.validate_params(sp(libwm_watermark="false")), ValueError, "libwm_watermark")
    set_allow({})
    os.environ.pop("LIBWM_KEY")


@check("a malformed $LIBWM_ALLOW_OPT_OUT / $LIBWM_ALLOW_ACCOUNTS (or subclass attribute) is an error at "
       "construction (vLLM V1, V2, SGLang) and in validate_params, never a silent choice")
def _():
    from libwm.sglang import LibwmSGLangProcessor
    from libwm.vllm import LibwmV1LogitsProcessor, LibwmV2LogitsProcessor
    _, layered = key("layered-validate", account_delta=1.0)
    os.environ["LIBWM_KEY"] = layered
    cfg = SimpleNamespace(model_config=SimpleNamespace(get_vocab_size=lambda: 100))
    builds = [lambda: LibwmV1LogitsProcessor(cfg, torch.device("cpu"), False),
              lambda: V2Engine(LibwmV2LogitsProcessor, 100, True, None), LibwmSGLangProcessor,
              lambda: LibwmV1LogitsProcessor.validate_params(sp()),
              lambda: LibwmV2LogitsProcessor.validate_params(sp())]
    for var in (OPT_OUT, ACCOUNTS):
        for bad in ("yes", "true", "2", "01", " 1", "1 ", "on", "-1"):
            set_allow({var: bad})
            for build in builds:
                refused(build, RuntimeError, var, repr(bad))
        set_allow({var: "1"})
        for build in builds:
            build()
    for attr in ("allow_opt_out", "allow_accounts"):
        set_allow({})
        sub = type("Bad", (LibwmV1LogitsProcessor,), {attr: "1"})
        refused(lambda: sub(cfg, torch.device("cpu"), False), RuntimeError, attr)
        refused(lambda: sub.validate_params(sp()), RuntimeError, attr)
    set_allow({})
    os.environ.pop("LIBWM_KEY")


sys.exit(summary())
