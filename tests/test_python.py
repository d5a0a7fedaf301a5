#!/usr/bin/env python3
"""The Python binding (python/libwm) against the C API, bit for bit.

    test_python.py LIBWM_SO WM PY_REF FIXTURES_DIR

py_ref is a C program that biases logits with wm_bias_logits; `wm` is the
CLI.  Logits biased from Python (numpy, and torch when installed) must equal
py_ref's bytes, and detect() must equal `wm detect --json` field for field.
Prints cmocka-style lines so the suite counts each check."""
import json
import os
import stat
import struct
import subprocess
import sys
import tempfile

from checks import check, require, summary

SO, WM, REF, FIX = (os.path.abspath(a) for a in sys.argv[1:5])
os.environ["LIBWM_LIBRARY"] = SO
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "python"))
np = require("numpy", "python3-numpy")

import libwm  # noqa: E402
from libwm.hf import LibwmLogitsProcessor  # noqa: E402

try:
    import torch
except ImportError:
    torch = None

GPT2 = os.path.join(FIX, "gpt2", "tokenizer.json")
tmp = tempfile.mkdtemp(prefix="wm-py-")


def seed(b):
    return bytes((b + 7 * i) % 256 for i in range(32))


def key_file(name, **params):
    path = os.path.join(tmp, name)
    libwm.Key.from_seed(seed(len(name)), **params).save(path)
    return path


def c_bias(keyfile, n_vocab, rows, account=0):
    """rows: [(context, float32 logits)] -> the C API's biased logits (for account)."""
    blob = b"".join(struct.pack(f"<i{len(c)}i", len(c), *c) + struct.pack("<i", len(l)) +
                    np.asarray(l, np.float32).tobytes() for c, l in rows)
    out = subprocess.run([REF, keyfile, str(n_vocab), str(account)], input=blob, capture_output=True,
                         check=True).stdout
    res, off = [], 0
    for _, l in rows:
        res.append(np.frombuffer(out[4 * off:4 * (off + len(l))], np.float32))
        off += len(l)
    return res


def wm_cli(*args, stdin=None):
    p = subprocess.run([WM, *args], input=stdin, capture_output=True, check=True)
    return [json.loads(line) for line in p.stdout.decode().splitlines()]


rng = np.random.default_rng(20261122)
V, PADDED = 50257, 50304  # GPT-2 and its padded output layer
K1 = key_file("k1.wmkey")
K4 = key_file("k4min.wmkey", gamma=0.1, delta=1.5, context_width=4, seeding="minhash")
WM1 = libwm.Watermark(libwm.Key.load(K1), V)
WM4 = libwm.Watermark(libwm.Key.load(K4), V)


def _generate(wm, n, watermark, temperature=1.5):
    """Sample n tokens from a fixed random 'model' (logits depend on the last
    token) through the HF processor, seeded: deterministic."""
    g = np.random.default_rng(7)
    proc = LibwmLogitsProcessor(wm)
    ids = [int(t) for t in g.integers(0, V, 4)]
    base = g.standard_normal(V).astype(np.float32)
    for _ in range(n):
        logits = (base + np.float32(0.5) * np.random.default_rng(ids[-1]).standard_normal(V, np.float32))[None, :]
        if watermark:
            proc(np.array([ids]), logits)
        p = np.exp((logits[0] - logits[0].max()) / temperature)
        ids.append(int(g.choice(V, p=p / p.sum())))
    return ids[4:]


@check("layout: the ctypes structs match the C library's wm_abi_field table; a wrong field fails the import")
def _():
    import shutil
    libwm._check_layout(libwm._lib, libwm._STRUCTS)  # what the import did, again: passes
    for old, new, named in (('("z", ctypes.c_double)', '("z", ctypes.c_float)', "wm_score.z"),
                            ('("n_top", ctypes.c_size_t), ', '', "wm_attribution.n_top")):
        pkg = os.path.join(tempfile.mkdtemp(prefix="wm-layout-", dir=tmp), "libwm")
        shutil.copytree(os.path.dirname(libwm.__file__), pkg, ignore=shutil.ignore_patterns("_config.py"))
        init = os.path.join(pkg, "__init__.py")
        src = open(init).read()
        assert src.count(old) == 1, old
        open(init, "w").write(src.replace(old, new))
        r = subprocess.run([sys.executable, "-c", "import libwm"], cwd=os.path.dirname(pkg), capture_output=True,
                           env=dict(os.environ, PYTHONPATH=os.path.dirname(pkg)))
        err = r.stderr.decode()
        assert r.returncode != 0 and "ImportError" in err and named in err, (named, r.returncode, err[-600:])


@check("libraries: libwm from $LIBWM_LIBRARY, libwm-tokenizer beside it or from $LIBWM_TOKENIZER_LIBRARY")
def _():
    d, base = os.path.split(SO)
    want = os.path.join(d, base.replace("libwm.", "libwm-tokenizer.", 1))
    assert libwm._lib._name == SO and libwm._tok._name == want, (libwm._lib._name, libwm._tok._name)
    assert os.path.exists(want)
    # the tokenizer's calls come from libwm-tokenizer, which libwm does not export
    assert not hasattr(libwm._lib, "wm_encode") and libwm.Tokenizer(os.path.join(FIX, "gpt2", "tokenizer.json"))
    os.environ["LIBWM_TOKENIZER_LIBRARY"] = "/elsewhere/libwm-tokenizer.so.0"
    try:
        assert libwm._library_paths() == (SO, "/elsewhere/libwm-tokenizer.so.0")
    finally:
        del os.environ["LIBWM_TOKENIZER_LIBRARY"]
    # an explicit libwm that is missing its tokenizer: the import fails, naming the file
    lone = tempfile.mkdtemp(prefix="wm-lone-", dir=tmp)
    os.symlink(SO, os.path.join(lone, "libwm.so.0"))
    r = subprocess.run([sys.executable, "-c", "import libwm"], capture_output=True,
                       env=dict(os.environ, LIBWM_LIBRARY=os.path.join(lone, "libwm.so.0"),
                                PYTHONPATH=os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "python")))
    assert r.returncode != 0 and "libwm-tokenizer.so.0" in r.stderr.decode(), r.stderr.decode()[-400:]


@check("versions: a libwm-tokenizer of another version than libwm fails the import, naming both")
def _():
    d, base = os.path.split(SO)
    tok = os.path.join(d, base.replace("libwm.", "libwm-tokenizer.", 1))
    assert libwm._tok.wm_tokenizer_library_version().decode() == libwm.__version__
    # the same library with its compiled-in version string changed in place
    v = libwm.__version__.encode() + b"\0"
    other = (b"9" * (len(v) - 3) + b".9\0")[:len(v)]
    blob = open(os.path.realpath(tok), "rb").read()
    assert blob.count(v) == 1 and len(other) == len(v), blob.count(v)
    odd = os.path.join(tempfile.mkdtemp(prefix="wm-tokver-", dir=tmp), "libwm-tokenizer.so.0")
    open(odd, "wb").write(blob.replace(v, other))
    r = subprocess.run([sys.executable, "-c", "import libwm"], capture_output=True,
                       env=dict(os.environ, LIBWM_TOKENIZER_LIBRARY=odd,
                                PYTHONPATH=os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "python")))
    err = r.stderr.decode()
    assert r.returncode != 0 and "ImportError" in err and other[:-1].decode() in err and libwm.__version__ in err, \
        err[-600:]


@check("keys: save is 0600 and never overwrites; params and id match `wm info`")
def _():
    assert stat.S_IMODE(os.stat(K1).st_mode) == 0o600
    try:
        libwm.Key.generate().save(K1)
        raise AssertionError("overwrote an existing key")
    except libwm.WmError as e:
        assert "k1.wmkey" in str(e) or "exist" in str(e), e
    info = wm_cli("info", "--json", K4)[0]
    k = libwm.Key.load(K4)
    assert k.key_id == info["key_id"] == WM4.key_id
    assert k.params == {"gamma": info["gamma"], "delta": info["delta"], "account_delta": info["account_delta"],
                        "seeding": info["seeding"], "context_width": info["context_width"],
                        "scheme": info["scheme"]}, (k.params, info)
    assert libwm.Key.generate().key_id != libwm.Key.generate().key_id


@check("errors: bad key file names the file, wrong dtype and sizes are refused")
def _():
    bad = os.path.join(tmp, "bad.wmkey")
    with open(bad, "w") as f:
        f.write("not a key\n")
    os.chmod(bad, 0o600)
    try:
        libwm.Key.load(bad)
        raise AssertionError("loaded garbage")
    except libwm.WmError as e:
        assert "bad.wmkey" in str(e), e
    for logits, exc in ((np.zeros(V, np.float64), TypeError), (np.zeros(V - 1, np.float32), libwm.WmError)):
        try:
            WM1.bias(logits, [1])
            raise AssertionError(f"accepted {logits.dtype}[{len(logits)}]")
        except exc:
            pass
    try:
        WM1.bias(np.zeros(V, np.float32), [-5])
        raise AssertionError("accepted a negative token")
    except libwm.WmError:
        pass


@check("numpy: in-place bias equals the C API bit for bit (padded rows, both schemes)")
def _():
    for keyfile, wm in ((K1, WM1), (K4, WM4)):
        rows = []
        for n_ctx in (0, 1, 3, 4, 9):
            ctx = [int(t) for t in rng.integers(0, V, n_ctx)]
            rows.append((ctx, rng.standard_normal(PADDED).astype(np.float32) * 3))
        want = c_bias(keyfile, V, rows)
        for (ctx, logits), w in zip(rows, want):
            got = logits.copy()
            addr = got.ctypes.data
            assert wm.bias(got, ctx) is got and got.ctypes.data == addr
            assert got.tobytes() == w.tobytes(), f"ctx {ctx}"
            assert not np.any(got[V:] != logits[V:]), "padding biased"


@check("Hugging Face processor: [batch, seq] ids, strided [batch, vocab] scores, equals C")
def _():
    B, T = 6, 11
    ids = rng.integers(0, V, (B, T)).astype(np.int64)
    wide = rng.standard_normal((B, PADDED + 64)).astype(np.float32)
    scores = wide[:, :PADDED]  # row stride > row length, as in a sliced buffer
    before, gap = scores.copy(), wide[:, PADDED:].copy()
    for keyfile, wm in ((K1, WM1), (K4, WM4)):
        s = before.copy() if wm is WM4 else scores
        out = LibwmLogitsProcessor(wm)(ids, s)
        assert out is s
        want = c_bias(keyfile, V, [(list(map(int, ids[b])), before[b]) for b in range(B)])
        for b in range(B):
            assert out[b].tobytes() == want[b].tobytes(), f"row {b}"
    # the 64 floats past each row, the buffer's and not the row's, are untouched
    assert np.array_equal(wide[:, PADDED:], gap) and not np.array_equal(scores, before)


@check("torch (if installed): float32, bf16 and f16 CPU tensors biased in place; 16-bit rows equal torch's x + bias")
def _():
    if torch is None:
        print("           torch not installed: numpy covers the zero-copy path")
        return
    g = torch.Generator().manual_seed(20261202)  # fixed: a failure reproduces
    ids = torch.randint(0, V, (3, 5), generator=g)
    scores = torch.randn(3, PADDED, generator=g)
    ref = scores.numpy().copy()
    ptr = scores.data_ptr()
    out = LibwmLogitsProcessor(WM1)(ids, scores)
    assert out.data_ptr() == ptr
    want = c_bias(K1, V, [(ids[b].tolist(), ref[b]) for b in range(3)])
    for b in range(3):
        assert out[b].numpy().tobytes() == want[b].tobytes()
    bias = torch.from_numpy(np.stack([want[b] - ref[b] for b in range(3)]))
    for dt in (torch.bfloat16, torch.float16):
        half = torch.from_numpy(ref).to(dt)
        before, ptr = half.clone(), half.data_ptr()
        out = LibwmLogitsProcessor(WM1)(ids, half)
        assert out is half and half.data_ptr() == ptr
        exp = before.clone()
        exp.add_(bias)  # torch's own x + bias, rounded once to dt
        assert torch.equal(half.view(torch.int16), exp.view(torch.int16)), dt  # bit for bit
        assert torch.equal(half[:, V:].view(torch.int16), before[:, V:].view(torch.int16)), "padding"


def brute_read(wm, docs, k):
    """detect.h's reading rules, directly: first occurrence of a seed, answer
    positions, dedup of (seed, prediction) over the corpus."""
    seen, green, positions = set(), 0, 0
    for ids, preds, n_prompt in docs:
        first = n_prompt + (n_prompt > 0)
        for i in range(1, len(ids)):
            if ids[i - 1] in ids[:i - 1] or i < first:
                continue
            positions += 1
            for q in preds[i][:k]:
                if (ids[i - 1], int(q)) not in seen:
                    seen.add((ids[i - 1], int(q)))
                    green += wm.is_green([ids[i - 1]], int(q))
    return len(seen), green, positions


@check("Reader: reading mode equals a brute-force count; read_torch equals Reader.add")
def _():
    V = 64
    wm = libwm.Watermark(libwm.Key.from_seed(bytes(range(32)), context_width=1), V)
    docs = []
    for d in range(30):
        n = int(rng.integers(0, 40))
        docs.append((rng.integers(0, 12, n).tolist(), rng.integers(0, V, (n, 3)), int(rng.integers(0, n + 1))))
    r = libwm.Reader(wm)
    for ids, preds, n_prompt in docs:
        r.add(ids, preds, n_prompt)
    s = r.score()
    assert (s["scored"], s["green"], s["positions"]) == brute_read(wm, docs, 3), s
    try:
        r.add([1, 2, 3], np.zeros((2, 1), dtype=np.int64))
        raise AssertionError("a preds array of the wrong shape was accepted")
    except ValueError:
        pass
    if torch is None:
        print("           torch not installed: read_torch not run")
        return
    emb = torch.nn.Embedding(V, V)
    model = lambda x: emb(x)  # noqa: E731  logits [B, T, V]: a bigram "model"
    model.parameters = emb.parameters
    texts = [(rng.integers(0, 16, int(rng.integers(2, 30))).tolist(), 1) for _ in range(20)]
    got = libwm.read_torch(libwm.Reader(wm), model, texts, k=2, batch=7).score()
    top = emb.weight.detach().topk(2, dim=-1).indices.numpy()
    want = libwm.Reader(wm)
    for ids, n_prompt in texts:
        preds = np.zeros((len(ids), 2), dtype=np.int64)
        preds[1:] = top[ids[:-1]]
        want.add(ids, preds, n_prompt)
    assert got == want.score(), (got, want.score())
    # weighted: a reference "model" and all V candidates; W summed by hand
    ref = torch.nn.Embedding(V, V)
    reference = lambda x: ref(x)  # noqa: E731
    reference.parameters = ref.parameters
    got = libwm.read_torch(libwm.Reader(wm, weighted=True), model, texts, k=V, batch=7,
                           reference=reference).score()
    diff = (torch.softmax(emb.weight, -1) - torch.softmax(ref.weight, -1)).detach().numpy()
    W = {}
    for ids, n_prompt in texts:
        seen = set()
        for i in range(1, len(ids)):
            if ids[i - 1] not in seen and i >= n_prompt + (n_prompt > 0):
                for q in range(V):
                    W[(ids[i - 1], q)] = W.get((ids[i - 1], q), 0.0) + float(np.float32(diff[ids[i - 1], q]))
            seen.add(ids[i - 1])
    S = sum(w for (c, q), w in W.items() if wm.is_green([c], q))
    assert got["scored"] == len(W) and abs(got["statistic"] - S) < 1e-4, (got, len(W), S)
    # one forward pass, several readers (e.g. a key and unrelated ones): each as if alone
    pair = [libwm.Reader(wm), libwm.Reader(wm)]
    libwm.read_torch(pair, model, texts, k=2, batch=7)
    assert pair[0].score() == pair[1].score() == want.score()
    # `wm read` (model-free CLI) on the same predictions equals the binding
    kf = os.path.join(tmp, "read.wmkey")
    if not os.path.exists(kf):
        subprocess.run([WM, "keygen", "--context-width", "1", "-o", kf], check=True, capture_output=True)
    wk = libwm.Watermark(libwm.Key.load(kf), V)
    for weighted in (False, True):
        rd, lines = libwm.Reader(wk, weighted=weighted), []
        for ids, n_prompt in texts:
            top = rng.integers(0, V, (len(ids), 3))
            wt = rng.normal(size=(len(ids), 3)).astype(np.float32) if weighted else None
            rd.add(ids, top, n_prompt, wt)
            d = {"ids": ids, "n_prompt": n_prompt, "top": top.tolist()}
            if weighted:
                d["weights"] = wt.tolist()
            lines.append(json.dumps(d))
        f = os.path.join(tmp, "read.jsonl")
        with open(f, "w") as fo:
            fo.write("\n".join(lines) + "\n")
        args = [WM, "read", "--key", kf, "--vocab", str(V), "--json", f] + (["--weighted"] if weighted else [])
        cli = json.loads(subprocess.run(args, check=True, capture_output=True).stdout)
        want = rd.score()
        assert (cli["scored"], cli["positions"]) == (want["scored"], want["positions"]), (cli, want)
        assert abs(cli["log10_p"] - want["log10_p"]) < 1e-9 and abs(cli["statistic"] - want["statistic"]) < 1e-6
    with open(f, "a") as fo:
        fo.write(json.dumps({"ids": [1, 2], "top": [[1, 2, 3], [2, 3]], "weights": [[0, 0, 0], [0, 0]]}) + "\n")
    r = subprocess.run([WM, "read", "--key", kf, "--vocab", str(V), "--weighted", f], capture_output=True)
    assert r.returncode == 2 and f"read.jsonl:{len(texts) + 1}: top[1]" in r.stderr.decode(), r.stderr
    try:
        libwm.Reader(wm, weighted=True).add([1, 2], np.zeros((2, 1), dtype=np.int64))
        raise AssertionError("a weighted reader took no weights")
    except ValueError:
        pass


@check("Corpus: score() and audit() equal `wm detect --corpus/--audit --json`, filter included")
def _():
    kf = os.path.join(tmp, "audit.wmkey")
    subprocess.run([WM, "keygen", "--context-width", "1", "-o", kf], check=True,
                   capture_output=True)
    V = 500
    wk = libwm.Watermark(libwm.Key.load(kf), V)
    docs = [rng.integers(0, V, int(rng.integers(5, 60))).tolist() for _ in range(12)]
    flt = docs[:4]
    f, ff = os.path.join(tmp, "audit.ids"), os.path.join(tmp, "audit-filter.ids")
    with open(f, "w") as fo:
        fo.write("".join(" ".join(map(str, d)) + "\n" for d in docs))
    with open(ff, "w") as fo:
        fo.write("".join(" ".join(map(str, d)) + "\n" for d in flt))
    for use_filter in (False, True):
        c = libwm.Corpus(wk, filter=flt if use_filter else None)
        for d in docs:
            c.add(d)
        args = [WM, "detect", "--key", kf, "--ids", "--vocab", str(V), "--json", "--audit", "12", "--target", "1e-9"]
        cli = [json.loads(x) for x in subprocess.run(args + (["--filter", ff] if use_filter else []) + [f],
                                                     check=True, capture_output=True).stdout.splitlines()]
        a = c.audit(1e-3, 1e-9)
        for k in ("scored", "statistic", "log10_p", "fixed_log10_p", "excess", "excess_lo", "excess_hi",
                  "more_tokens", "more_tokens_fixed"):
            assert cli[-1][k] == a[k] or abs(cli[-1][k] - a[k]) <= 1e-9 * max(1, abs(a[k])), (k, cli[-1], a)
        assert c.score()["log10_p"] == a["fixed_log10_p"]


@check("accounts: bias per row and the processors equal the C API; attribute() equals `wm detect --accounts`")
def _():
    ka = key_file("acct.wmkey", account_delta=1.0)
    wa = libwm.Watermark(libwm.Key.load(ka), V)
    assert wa.params["account_delta"] == 1.0 and WM1.params["account_delta"] == 0.0
    ctxs = [rng.integers(0, V, 5).tolist() for _ in range(3)]
    rows = rng.normal(size=(3, PADDED)).astype(np.float32)
    accts = [2 ** 64 - 1, 0, 31337]
    got = rows.copy()
    wa.bias_batch(got, ctxs, accts)
    for r in range(3):
        assert np.array_equal(got[r], c_bias(ka, V, [(ctxs[r], rows[r])], accts[r])[0]), r
    one = rows[2].copy()
    assert np.array_equal(wa.bias(one, ctxs[2], 31337), got[2])
    hf = rows.copy()
    LibwmLogitsProcessor(wa, accounts=accts)(np.array([c[-1:] for c in ctxs]), hf)
    assert np.array_equal(hf, got)
    for bad in (lambda: wa.bias_batch(rows.copy(), ctxs, [1, 2]), lambda: wa.bias(rows[0].copy(), ctxs[0], -1),
                lambda: wa.bias(rows[0].copy(), ctxs[0], 2 ** 64)):
        try:
            bad()
            raise AssertionError("accepted")
        except ValueError:
            pass
    try:
        WM1.bias(rows[0].copy(), ctxs[0], 5)
        raise AssertionError("an account with a key without an account layer")
    except libwm.WmError as e:
        assert e.status == libwm.ERR_UNSUPPORTED
    # attribution: documents biased for two accounts, against the CLI
    docs = []
    for acc in (1001, 2002):
        for d in range(3):
            t = [int(rng.integers(0, V))]
            for i in range(150):
                lg = rng.normal(scale=3, size=V).astype(np.float32)
                wa.bias(lg, t, acc)
                p = np.exp(lg - lg.max())
                t.append(int(rng.choice(V, p=p / p.sum())))
            docs.append(t)
    ids = [int(x) for x in rng.integers(1, 2 ** 63, 300)] + [1001, 2002]
    f, fa = os.path.join(tmp, "acct.ids"), os.path.join(tmp, "acct.txt")
    with open(f, "w") as fo:
        fo.write("".join(" ".join(map(str, d)) + "\n" for d in docs))
    with open(fa, "w") as fo:
        fo.write("".join(f"{a}\n" for a in ids))
    c = libwm.Corpus(wa, accounts=True)
    for d in docs:
        c.add(d)
    a = c.attribute(ids, alpha=1e-3, top=4)
    cli = wm_cli("detect", "--key", ka, "--ids", "--vocab", str(V), "--json", "--accounts", fa, "--top", "4", f)[1]
    for k in ("accounts", "tuples", "named", "exact", "null_mean", "null_sd"):
        assert a[k] == cli[k] or abs(a[k] - cli[k]) <= 1e-9 * abs(a[k]), (k, a[k], cli[k])
    assert a["top"] == cli["top"], (a["top"], cli["top"])
    assert sorted(t["account"] for t in a["top"] if t["named"]) == [1001, 2002] and a["named"] == 2, a
    print(f"# attribution from Python: named {[t['account'] for t in a['top'] if t['named']]}, "
          f"log10 p {[round(t['log10_p'], 1) for t in a['top']]}")


@check("Tokenizer: ids equal `wm tokenize`; invalid UTF-8 gives the offset; lossy mode")
def _():
    tok = libwm.Tokenizer(GPT2)
    text = "Hello, world! Don't panic.\n\n  Ünïcödé 日本語 🤖 12345678901234"
    path = os.path.join(tmp, "t.txt")
    with open(path, "w") as f:
        f.write(text)
    cli = subprocess.run([WM, "tokenize", "--tokenizer", GPT2, path], capture_output=True, check=True)
    assert tok.encode(text) == [int(t) for t in cli.stdout.split()]
    assert tok.decode(tok.encode(text)) == text.encode()
    try:
        tok.encode(b"abc\xffdef")
        raise AssertionError("accepted invalid UTF-8")
    except libwm.WmError as e:
        assert "3" in str(e), e
    assert tok.decode(tok.encode(b"abc\xffdef", lossy=True)) == "abc\ufffddef".encode()


@check("detect(): every field equals `wm detect --json` (text, ids, prompt, no dedup)")
def _():
    tok = libwm.Tokenizer(GPT2)
    gen = _generate(WM1, 300, watermark=True)
    text = tok.decode(gen).decode("utf-8", "replace")
    tpath = os.path.join(tmp, "gen.txt")
    with open(tpath, "w") as f:
        f.write(text)
    cli = wm_cli("detect", "--key", K1, "--tokenizer", GPT2, "--json", tpath)[0]
    py = libwm.detect(WM1, text, tokenizer=tok, source=tpath)
    assert py == cli, (py, cli)
    assert py["watermarked"] and py["log10_p"] < -6
    ipath = os.path.join(tmp, "gen.ids")
    with open(ipath, "w") as f:
        f.write(" ".join(map(str, gen)) + "\n")
    cli = wm_cli("detect", "--key", K1, "--tokenizer", GPT2, "--ids", "--json", "--no-dedup", "--alpha", "0.01", ipath)[0]
    py = libwm.detect(WM1, np.array(gen, np.int32), alpha=0.01, dedup=False, source=cli["source"])
    assert py == cli, (py, cli)
    jpath = os.path.join(tmp, "gen.jsonl")
    with open(jpath, "w") as f:
        f.write(json.dumps({"prompt": "Once upon a time", "text": text}) + "\n")
    cli = wm_cli("detect", "--key", K1, "--tokenizer", GPT2, "--jsonl", "--prompt-field", "prompt",
                 "--json", jpath)[0]
    py = libwm.detect(WM1, text, tokenizer=tok, prompt="Once upon a time", source=cli["source"])
    assert py == cli, (py, cli)


@check("integers are range-checked, never truncated; non-integer dtypes refused (issue 11.11)")
def _():
    def refused(fn, what):
        try:
            fn()
        except ValueError:
            return
        raise AssertionError(f"accepted {what}")
    refused(lambda: libwm.Watermark(libwm.Key.load(K1), 2**32 + 1000), "n_vocab 2**32 + 1000")
    refused(lambda: libwm.Watermark(libwm.Key.load(K1), 1000.0), "a float n_vocab")
    refused(lambda: libwm.detect(WM1, [7, 2**32 + 5]), "id 2**32 + 5")
    refused(lambda: libwm.detect(WM1, np.array([7.0, 5.9])), "a float numpy array")
    refused(lambda: libwm.detect(WM1, [7, 5.9]), "a float in a list")
    refused(lambda: libwm.detect(WM1, [True, 5]), "a bool id")
    refused(lambda: WM1.bias(np.zeros(V, np.float32), [2**31]), "context id 2**31")
    refused(lambda: WM1.is_green([1], 2**32 + 1), "token 2**32 + 1")
    refused(lambda: WM1.bias_batch(np.zeros((1, V), np.float32), np.array([[1.5]])), "float contexts")
    refused(lambda: WM1.bias_batch(np.zeros((1, V), np.float32), np.array([[2**40]], np.int64)), "int64 contexts beyond int32")
    if torch is not None:
        refused(lambda: libwm.detect(WM1, torch.tensor([1.0, 2.0])), "a float tensor")
    # integer types that fit are fine and give the same result
    ids = [5, 17, 3000, 42, 17, 99]
    base = libwm.detect(WM1, ids)
    assert libwm.detect(WM1, np.array(ids, np.int64)) == base == libwm.detect(WM1, np.array(ids, np.uint16))
    assert libwm.Watermark(libwm.Key.load(K1), np.int64(V)).n_vocab == V


@check("status constants come from the C table; a copied prompt is not scored; no verdict without dedup")
def _():
    assert libwm.OK == 0 and libwm.ERR_TOKEN == libwm.STATUS["ERR_TOKEN"] == 9 and libwm.ERR_LIMIT == 14
    try:
        libwm.detect(WM1, [1, -5])
        raise AssertionError("accepted a negative id")
    except libwm.WmError as e:
        assert e.status == libwm.ERR_TOKEN
    tok = libwm.Tokenizer(GPT2)
    gen = _generate(WM1, 300, watermark=True)
    text = tok.decode(gen).decode("utf-8", "replace")
    copied = libwm.detect(WM1, text, tokenizer=tok, prompt="Repeat this verbatim: " + text)
    alone = libwm.detect(WM1, text, tokenizer=tok)
    assert alone["watermarked"] and not copied["watermarked"] and copied["log10_p"] > -3, (alone, copied)
    nd = libwm.detect(WM1, gen, dedup=False)
    assert nd["watermarked"] is None and nd["p_value_valid"] is False


@check("generation through the processor is detected; the same sampler without it is not")
def _():
    marked = libwm.detect(WM4, _generate(WM4, 400, watermark=True))
    plain = libwm.detect(WM4, _generate(WM4, 400, watermark=False))
    # gamma 0.1, delta 1.5 at temperature 1.5 on a flat-ish distribution:
    # green share ~ 0.1 e^1 / (0.1 e^1 + 0.9) = 0.23, z ~ 9 over 400 tokens.
    assert marked["log10_p"] < -10, marked
    assert plain["p_value"] > 1e-3, plain
    assert abs(plain["green_fraction"] - 0.1) < 0.06, plain



@check("gumbel: keys, one-hot rows from both processors equal wm_select's choice, detected; kgw-only calls refused")
def _():
    kg = libwm.Key.from_seed(seed(9), scheme="gumbel", context_width=1)
    assert kg.params == {"scheme": "gumbel", "seeding": "lefthash", "context_width": 1}, kg.params
    try:
        libwm.Key.generate(scheme="gumbel", gamma=0.3)
        raise AssertionError("gamma accepted for gumbel")
    except libwm.WmError as e:
        assert e.status == libwm.ERR_PARAM, e
    assert "gumbel" in libwm.SCHEMES and "kgw" in libwm.SCHEMES
    V = 5000
    wm = libwm.Watermark(kg, V)
    try:
        wm.is_green([1], 2)
        raise AssertionError("is_green on gumbel")
    except libwm.WmError as e:
        assert e.status == libwm.ERR_UNSUPPORTED, e
    rng = np.random.default_rng(3)
    proc = LibwmLogitsProcessor(wm, temperature=1.0, top_k=50, seed=1)
    ids = np.array([[1, 2], [3, 4]], dtype=np.int64)
    ref_used = [libwm.ContextSet(wm), libwm.ContextSet(wm)]
    for step in range(150):
        scores = rng.normal(0, 3, size=(2, V + 7)).astype(np.float32)  # padded rows
        want = []
        for r in range(2):
            p = libwm._processed_probs(scores[r], 1.0, 50, 1.0)
            cand = np.flatnonzero(p > 0)
            cand = cand[cand < V]
            want.append(wm.select(list(ids[r]), cand, p[cand], ref_used[r]))
        out = proc(ids, scores.copy())
        for r in range(2):
            tok = int(np.argmax(out[r]))
            assert out[r][tok] == 0 and np.isinf(out[r]).sum() == V + 6, "not one-hot"
            if want[r] is not None:
                assert tok == want[r], (step, r, tok, want[r])
        ids = np.concatenate([ids, np.argmax(out, axis=1)[:, None]], axis=1)
    for r in range(2):
        d = libwm.detect(wm, list(ids[r]), prompt=None)
        assert d["scheme"] == "gumbel" and "green" not in d and d["watermarked"], d
        assert d["log10_p"] < -10 and abs(d["mean_score"] - d["statistic"] / d["scored"]) < 1e-12, d
    if torch is not None:
        t = torch.tensor(rng.normal(0, 3, size=(1, V)), dtype=torch.bfloat16)
        out = LibwmLogitsProcessor(wm)(torch.tensor([[5, 6]]), t)
        assert int(torch.isfinite(out).sum()) == 1


sys.exit(summary())
