#!/usr/bin/env python3
"""The `wm` command-line tool, run as users run it.

    test_cli.py WM CLI_GEN FIXTURES_DIR big|small

Every command, every input form, JSON fields and values against the library's
own numbers (cli_gen prints them), corpus dedup across files, every error path
(exit status and message), threads giving identical output, and (with `big`)
hundreds of MB streamed through `--corpus` in bounded memory.  Prints
cmocka-style summary lines so the suite counts each check."""
import json
import os
import random
import stat
import subprocess
import sys
import tempfile

from checks import check, summary

WM, GEN, FIX = (os.path.abspath(a) for a in sys.argv[1:4])
SIZE = sys.argv[4]
GPT2 = os.path.join(FIX, "gpt2", "tokenizer.json")
LLAMA = os.path.join(FIX, "llama3", "tokenizer.json")
tmp = tempfile.mkdtemp(prefix="wm-cli-")


def run(*args, stdin=None, ok=(0,)):
    p = subprocess.run([WM, *args], input=stdin, capture_output=True, cwd=tmp)
    if p.returncode not in ok:
        raise AssertionError(f"wm {' '.join(args)}: exit {p.returncode}\n{p.stderr.decode()}")
    return p


def path(name):
    return os.path.join(tmp, name)


def write(name, data, mode="w"):
    with open(path(name), mode) as f:
        f.write(data)
    return path(name)


def jsonl(p):
    return [json.loads(l) for l in p.stdout.decode().splitlines() if l.strip()]


def error(args, msg, stdin=None):
    p = run(*args, stdin=stdin, ok=(2,))
    err = p.stderr.decode()
    assert msg in err, f"expected '{msg}' in: {err}"
    assert err.count("\n") <= 2, f"error should be one line: {err}"


run("keygen", "--tokenizer", GPT2, "-o", "k1.wmkey")
run("keygen", "--tokenizer", GPT2, "--gamma", "0.5", "--context-width", "2", "-o", "k2.wmkey")
run("keygen", "-o", "free.wmkey")  # no tokenizer recorded
KEY = path("k1.wmkey")


def gen(n, length, watermark, seed, key=KEY, account=0):
    p = subprocess.run([GEN, key, GPT2, str(n), str(length), str(watermark), str(seed), str(account)],
                       capture_output=True, check=True)
    return [json.loads(l) for l in p.stdout.decode().splitlines()]


WM_DOCS = gen(6, 200, 1, 1)
CLEAN_DOCS = gen(6, 200, 0, 2)
write("wm.ids", "".join(" ".join(map(str, d["ids"])) + "\n" for d in WM_DOCS))
write("clean.ids", "".join(" ".join(map(str, d["ids"])) + "\n" for d in CLEAN_DOCS))
write("wm.jsonl", "".join(json.dumps({"text": d["text"], "prompt": "Tell me a story."}) + "\n" for d in WM_DOCS))
write("clean.jsonl", "".join(json.dumps({"answer": d["text"]}) + "\n" for d in CLEAN_DOCS))


@check("keygen: 0600, no overwrite, parameters checked")
def _():
    assert stat.S_IMODE(os.stat(KEY).st_mode) == 0o600
    before = open(KEY).read()
    error(["keygen", "-o", "k1.wmkey"], "refusing to overwrite")
    assert open(KEY).read() == before
    error(["keygen", "--gamma", "1.5", "-o", "x.wmkey"], "--gamma")
    error(["keygen", "--seeding", "minhash", "--context-width", "0", "-o", "x.wmkey"], "minhash needs --context-width 1")
    error(["keygen", "--scheme", "minhash", "-o", "x.wmkey"], "expected one of kgw, gumbel")
    error(["keygen", "--scheme", "gumbel", "--gamma", "0.5", "-o", "x.wmkey"], "gumbel has none")
    error(["keygen"], "-o KEYFILE is required")
    assert not os.path.exists(path("x.wmkey"))


@check("info: parameters, exact gamma, id, never the secret")
def _():
    secret = [l.split()[1] for l in open(KEY) if l.startswith("secret ")][0]
    for args in (["info", KEY], ["info", "--json", KEY]):
        out = run(*args).stdout.decode()
        assert secret not in out
    info = json.loads(run("info", "--json", path("k2.wmkey")).stdout)
    assert info["gamma"] == 0.5 and info["gamma_fraction"] == "32768/65536" and info["context_width"] == 2
    assert info["vocab"] == 50257 and len(info["tokenizer_sha256"]) == 64 and len(info["key_id"]) == 16
    assert info["key_id"] in run("info", KEY if False else path("k2.wmkey")).stdout.decode()


def library_versions():
    """What PCRE2 and utf8proc themselves report (through ctypes, not libwm):
    the libraries the wm binary loads, by the sonames it was linked with."""
    import ctypes
    pcre2, u8 = ctypes.CDLL("libpcre2-8.so.0"), ctypes.CDLL("libutf8proc.so.2")
    out = {}
    for name, what in (("pcre2", 11), ("pcre2_unicode", 10)):  # PCRE2_CONFIG_VERSION, _UNICODE_VERSION
        buf = ctypes.create_string_buffer(64)
        assert pcre2.pcre2_config_8(what, buf) > 0
        out[name] = buf.value.decode()
    for name, fn in (("utf8proc", u8.utf8proc_version), ("utf8proc_unicode", u8.utf8proc_unicode_version)):
        fn.restype = ctypes.c_char_p
        out[name] = fn().decode()
    return out


@check("tokenizer versions: detect --json (with a tokenizer) and info print PCRE2's and utf8proc's")
def _():
    want = library_versions()
    assert want["pcre2_unicode"].count(".") == 2 and want["utf8proc_unicode"].count(".") == 2, want
    info = json.loads(run("info", "--json", KEY).stdout)
    assert info["tokenizer_versions"] == want, (info, want)
    line = [l for l in run("info", KEY).stdout.decode().splitlines() if l.startswith("tokenized by")]
    assert line == ["tokenized by   " + ", ".join(f"{k} {v}" for k, v in want.items())], line
    assert "tokenizer_versions" not in json.loads(run("info", "--json", path("free.wmkey")).stdout)
    write("v.txt", "Some text to score.\n")
    for extra in ([], ["--corpus"], ["--key", path("k2.wmkey")]):
        rows = jsonl(run("detect", "--key", KEY, *extra, "--tokenizer", GPT2, "--json", "v.txt"))
        assert rows and all(r["tokenizer_versions"] == want for r in rows), rows
    # ids in, no tokenizer used: nothing to record
    rows = jsonl(run("detect", "--key", KEY, "--ids", "--json", "wm.ids"))
    assert rows and all("tokenizer_versions" not in r for r in rows)


@check("tokenize: plain, JSONL, stdin, pieces, matches the parity oracle")
def _():
    corpus = json.load(open(os.path.join(os.path.dirname(__file__), "tokenizer", "corpus.json"), encoding="utf-8"))
    expected = [json.loads(l) for l in open(os.path.join(os.path.dirname(__file__), "tokenizer", "expected.jsonl"))]
    want = [e["ids"] for e in expected if e["tokenizer"] == "gpt2" and not e["special_as_text"]][:4]
    write("c.jsonl", "".join(json.dumps({"body": t}) + "\n" for t in corpus[:4]))
    got = [list(map(int, l.split())) for l in run("tokenize", "--tokenizer", GPT2, "--jsonl=body", "c.jsonl").stdout.decode().splitlines()]
    assert got == want, "JSONL tokenization differs from the oracle"
    write("c0.txt", corpus[0])
    assert list(map(int, run("tokenize", "--tokenizer", GPT2, "c0.txt").stdout.split())) == want[0]
    assert list(map(int, run("tokenize", "--tokenizer", GPT2, "-", stdin=corpus[0].encode()).stdout.split())) == want[0]
    pieces = json.loads(run("tokenize", "--tokenizer", GPT2, "--pieces", "-", stdin=b"Hello world").stdout)
    assert pieces == ["Hello", " world"]


@check("detect --ids --json: fields and values equal the library's")
def _():
    rows = jsonl(run("detect", "--key", KEY, "--ids", "--json", "wm.ids", "clean.ids"))
    assert len(rows) == 12
    for row, lib in zip(rows, WM_DOCS + CLEAN_DOCS):
        for f in ("source", "tokens", "scored", "green", "green_fraction", "z", "p_value", "log10_p", "watermarked", "key_id"):
            assert f in row, f
        assert row["scored"] == lib["scored"] and row["green"] == lib["statistic"] == row["statistic"]
        assert row["scheme"] == "kgw" and row["green_fraction"] == row["mean_score"]
        assert row["log10_p"] == lib["log10_p"], (row["log10_p"], lib["log10_p"])
        assert isinstance(row["p_value"], (int, float))
    assert all(r["watermarked"] for r in rows[:6]) and not any(r["watermarked"] for r in rows[6:])
    assert rows[0]["source"] == path("wm.ids") + ":1" or rows[0]["source"].endswith("wm.ids:1")


@check("detect: text, JSONL with prompts, human table, exit status")
def _():
    rows = jsonl(run("detect", "--key", KEY, "--tokenizer", GPT2, "--jsonl", "--prompt-field", "prompt", "--json", "wm.jsonl"))
    assert len(rows) == 6 and sum(r["watermarked"] for r in rows) >= 5
    table = run("detect", "--key", KEY, "--tokenizer", GPT2, "--jsonl=answer", "clean.jsonl").stdout.decode()
    assert "log10(p)" in table and "WATERMARKED" not in table
    run("detect", "--key", KEY, "--tokenizer", GPT2, "--jsonl=answer", "--fail-if-watermarked", "clean.jsonl", ok=(0,))
    run("detect", "--key", KEY, "--ids", "--fail-if-watermarked", "wm.ids", ok=(1,))


@check("detect --corpus: dedup across files, filter, sentence, no-dedup")
def _():
    one = jsonl(run("detect", "--key", KEY, "--ids", "--corpus", "--json", "wm.ids"))[-1]
    two = jsonl(run("detect", "--key", KEY, "--ids", "--corpus", "--json", "wm.ids", "wm.ids"))[-1]
    assert one["corpus"] and two["scored"] == one["scored"] and two["tokens"] == 2 * one["tokens"]
    nd = jsonl(run("detect", "--key", KEY, "--ids", "--corpus", "--json", "--no-dedup", "wm.ids", "wm.ids"))[-1]
    assert nd["scored"] == 2 * nd["tokens"] // 2 - 12
    f_same = jsonl(run("detect", "--key", KEY, "--ids", "--corpus", "--json", "--filter", "wm.ids", "wm.ids"))[-1]
    f_other = jsonl(run("detect", "--key", KEY, "--ids", "--corpus", "--json", "--filter", "clean.ids", "wm.ids"))[-1]
    assert f_same["scored"] == one["scored"], (f_same, one)
    # both sets draw contexts from the same 10,000 ids, so some overlap remains
    assert f_other["scored"] < one["scored"] / 3, (f_other, one)
    s = run("detect", "--key", KEY, "--ids", "--corpus", "wm.ids").stdout.decode()
    assert s.startswith("watermark present: p = ") and "unique tuples" in s


@check("detect --accounts: contributors named, innocents not, errors name file and line")
def _():
    run("keygen", "--tokenizer", GPT2, "--account-delta", "1", "-o", "acc.wmkey")
    assert json.loads(run("info", "--json", path("acc.wmkey")).stdout)["account_delta"] == 1
    ka = path("acc.wmkey")
    docs = gen(6, 300, 1, 31, key=ka, account=424242) + gen(6, 300, 1, 32, key=ka, account=77)
    write("acc.ids", "".join(" ".join(map(str, d["ids"])) + "\n" for d in docs))
    rnd = random.Random(5)
    ids = [rnd.randrange(1, 2 ** 64) for _ in range(5000)] + [424242, 77]
    rnd.shuffle(ids)
    write("acc.txt", "# API key, account\n" + "".join(f"key{i} {a}\n" for i, a in enumerate(ids)))
    out = jsonl(run("detect", "--key", ka, "--ids", "--json", "--accounts", "acc.txt", "--top", "5", "acc.ids",
                    ok=(0,)))
    corpus, at = out[0], out[1]
    assert corpus["corpus"] and at["source"] == "attribution" and at["accounts"] == 5002
    assert at["tuples"] == corpus["scored"] and at["exact"]
    assert sorted(t["account"] for t in at["top"] if t["named"]) == [77, 424242] and at["named"] == 2, at
    assert len(at["top"]) == 5 and all(t["log10_p_family"] >= t["log10_p"] for t in at["top"])
    text = run("detect", "--key", ka, "--ids", "--accounts", "acc.txt", "acc.ids").stdout.decode()
    assert "2 named" in text and "account 424242" in text and "NAMED" in text
    # plain watermarked text (no account): nobody named
    plain = gen(4, 300, 1, 33, key=ka)
    write("acc0.ids", "".join(" ".join(map(str, d["ids"])) + "\n" for d in plain))
    at0 = jsonl(run("detect", "--key", ka, "--ids", "--json", "--accounts", "acc.txt", "acc0.ids"))[1]
    assert at0["named"] == 0 and not any(t["named"] for t in at0["top"])
    write("bad.txt", "# ok\n12\nkey x\n")
    error(["detect", "--key", ka, "--ids", "--accounts", "bad.txt", "acc.ids"], "bad.txt:3: expected an account id")
    write("zero.txt", "0\n")
    error(["detect", "--key", ka, "--ids", "--accounts", "zero.txt", "acc.ids"], "zero.txt:1:")
    write("empty.txt", "# none\n")
    error(["detect", "--key", ka, "--ids", "--accounts", "empty.txt", "acc.ids"], "no account ids")
    error(["detect", "--key", KEY, "--ids", "--accounts", "acc.txt", "wm.ids"], "no account layer")
    error(["detect", "--key", ka, "--ids", "--top", "3", "acc.ids"], "--top goes with --accounts")
    error(["detect", "--key", ka, "--key", KEY, "--ids", "--accounts", "acc.txt", "acc.ids"], "one key")
    error(["keygen", "--account-delta", "0", "-o", "x.wmkey"], "--account-delta")
    error(["keygen", "--scheme", "gumbel", "--account-delta", "1", "-o", "x.wmkey"], "gumbel has none")


@check("detect --audit: a look per N documents and a final one; anytime p weaker than fixed-n; plain text names no watermark")
def _():
    rows = jsonl(run("detect", "--key", KEY, "--ids", "--json", "--audit", "2", "wm.ids", ok=(0,)))
    assert [r["look"] for r in rows] == [1, 2, 3, 4] and rows[-1]["final"] and rows[-1]["documents"] == 6, rows
    fixed = jsonl(run("detect", "--key", KEY, "--ids", "--corpus", "--json", "wm.ids"))[-1]
    last = rows[-1]
    assert last["scored"] == fixed["scored"] and abs(last["fixed_log10_p"] - fixed["log10_p"]) < 1e-9
    assert fixed["log10_p"] <= last["log10_p"] < -6 and last["watermarked"] and last["more_tokens"] == 0, last
    assert all(a["log10_p"] >= b["log10_p"] for a, b in zip(rows, rows[1:]))  # a running maximum of evidence
    assert last["excess_lo"] <= last["excess"] <= last["excess_hi"]
    clean = jsonl(run("detect", "--key", KEY, "--ids", "--json", "--audit", "3", "--target", "1e-9", "clean.ids"))
    assert not clean[-1]["watermarked"] and clean[-1]["target"] == 1e-9, clean
    text = run("detect", "--key", KEY, "--ids", "--audit", "6", "wm.ids").stdout.decode().splitlines()
    assert text[0].startswith("look 1: 6 docs") and text[1].startswith("final 2: 6 docs"), text
    error(["detect", "--key", KEY, "--ids", "--target", "1e-6", "wm.ids"], "--target goes with --audit")
    error(["detect", "--key", KEY, "--key", KEY, "--ids", "--audit", "1", "wm.ids"], "one key")
    error(["detect", "--key", KEY, "--ids", "--audit", "0", "wm.ids"], "--audit '0'")


@check("detect: several keys give a result each and a family-wise verdict")
def _():
    rows = jsonl(run("detect", "--key", path("k2.wmkey"), "--key", KEY, "--ids", "--json", "wm.ids"))
    fam = [r for r in rows if r.get("family")]
    assert len(rows) == 18 and len(fam) == 6
    per = [r for r in rows if not r.get("family")]
    for i, f in enumerate(fam):
        best = min(per[2 * i]["log10_p"], per[2 * i + 1]["log10_p"])
        assert abs(f["log10_p"] - (best + 0.30102999566398120)) < 1e-9 and f["watermarked"]


@check("detect --window and --threads (identical output)")
def _():
    rows = jsonl(run("detect", "--key", KEY, "--ids", "--window", "--json", "wm.ids"))
    assert all("window_begin" in r and r["window_end"] > r["window_begin"] for r in rows)
    a = run("detect", "--key", KEY, "--tokenizer", GPT2, "--jsonl", "--json", "--threads", "1", "wm.jsonl").stdout
    b = run("detect", "--key", KEY, "--tokenizer", GPT2, "--jsonl", "--json", "--threads", "2", "wm.jsonl").stdout
    assert a == b


@check("errors: each is one line naming the input, exit 2")
def _():
    write("bad.jsonl", '{"text": "fine"}\n{"text": 3}\n{"text": "x"\n')
    error(["detect", "--key", KEY, "--tokenizer", GPT2, "--jsonl", "bad.jsonl"], "bad.jsonl:2: field \"text\" missing")
    p = run("detect", "--key", KEY, "--tokenizer", GPT2, "--jsonl", "--json", "--skip-bad", "bad.jsonl")
    assert jsonl(p)[-1] == {"skipped": 2} and "skipped 2" in p.stderr.decode()
    write("trunc.jsonl", '{"text": "ok"}\n{"text": "cut')
    error(["detect", "--key", KEY, "--tokenizer", GPT2, "--jsonl", "trunc.jsonl"], "trunc.jsonl:2: invalid JSON")
    write("bad.txt", b"ok \xff\xfe end", "wb")
    error(["detect", "--key", KEY, "--tokenizer", GPT2, "bad.txt"], "invalid UTF-8 at byte offset 3")
    run("detect", "--key", KEY, "--tokenizer", GPT2, "--lossy", "bad.txt")
    error(["detect", "--key", KEY, "--tokenizer", GPT2, "missing.txt"], "missing.txt: No such file")
    write("bad.ids", "1 2 x 4\n")
    error(["detect", "--key", KEY, "--ids", "bad.ids"], "bad.ids:1:5: 'x 4' is not a token id")
    write("big.ids", "1 2 99999999\n")
    error(["detect", "--key", KEY, "--ids", "big.ids"], "outside the key's vocabulary")
    open_key = write("open.wmkey", open(KEY).read())
    os.chmod(open_key, 0o644)
    error(["detect", "--key", "open.wmkey", "--ids", "wm.ids"], "lets others read the secret")
    corrupt = open(KEY).read().replace("delta 2", "delta 3")
    os.chmod(write("corrupt.wmkey", corrupt), 0o600)
    error(["detect", "--key", "corrupt.wmkey", "--ids", "wm.ids"], "does not match")
    error(["detect", "--key", KEY, "--tokenizer", LLAMA, "--jsonl", "wm.jsonl"], "another tokenizer")
    run("detect", "--key", KEY, "--tokenizer", LLAMA, "--any-tokenizer", "--jsonl", "wm.jsonl")
    error(["detect", "--key", path("free.wmkey"), "--ids", "wm.ids"], "records no tokenizer")
    error(["detect", "--key", KEY, "--alpha", "2", "--ids", "wm.ids"], "--alpha")
    error(["detect", "--key", KEY, "--bogus"], "usage")
    error(["frobnicate"], "unknown command")
    error(["detect", "--key", KEY, "--tokenizer", os.path.join(FIX, "gpt2-src", "vocab.bpe"), "wm.ids"], "vocab.bpe:1:")


@check("write errors: every command exits 2 when its output cannot be written (issue 11.2)")
def _():
    with open("/dev/full", "wb") as full:
        for args in (["detect", "--key", KEY, "--ids", "wm.ids"], ["detect", "--key", KEY, "--ids", "--json", "--corpus", "wm.ids"],
                     ["info", KEY], ["info", "--json", KEY], ["tokenize", "--tokenizer", GPT2, "c0.txt"], ["--help"],
                     ["detect", "--help"]):
            p = subprocess.run([WM, *args], stdout=full, stderr=subprocess.PIPE, cwd=tmp)
            assert p.returncode == 2, (args, p.returncode)
            assert "writing standard output" in p.stderr.decode(), (args, p.stderr)


@check("several keys: each row's verdict is Bonferroni-corrected (issue 11.3)")
def _():
    args = ["detect", "--key", KEY, "--key", path("k2.wmkey"), "--ids", "--json"]
    rows = [r for r in jsonl(run(*args, "clean.ids")) if not r.get("family")]
    best = min(r["log10_p"] for r in rows)
    # alpha between the row's own p and 2p: uncorrected it would say watermarked
    alpha = 10 ** (best + 0.15)
    out = jsonl(run(*args, "--alpha", repr(alpha), "clean.ids"))
    per = [r for r in out if not r.get("family")]
    row = [r for r in per if r["log10_p"] == best][0]
    assert row["p_value"] < alpha and row["watermarked"] is False, row
    assert abs(row["log10_p_corrected"] - (best + 0.30102999566398120)) < 1e-12
    assert not any(r["watermarked"] for r in out), out
    table = run(*args[:-1], "--alpha", repr(alpha), "clean.ids").stdout.decode()
    assert "log10(pK)" in table and "WATERMARKED" not in table


@check("an answer copying a watermarked prompt is not flagged (issue 11.4)")
def _():
    # the key is fresh each run: take the most strongly watermarked document,
    # so that the contrast below never hinges on one draw (a single 200-token
    # document ranges from about 10^-9 to 10^-15)
    text = min(WM_DOCS, key=lambda d: d["log10_p"])["text"]
    write("copy.jsonl", json.dumps({"prompt": "Repeat this text verbatim: " + text, "text": text}) + "\n")
    row = jsonl(run("detect", "--key", KEY, "--tokenizer", GPT2, "--jsonl", "--prompt-field", "prompt", "--json", "copy.jsonl"))[0]
    assert not row["watermarked"] and row["log10_p"] > -3, row
    alone = jsonl(run("detect", "--key", KEY, "--tokenizer", GPT2, "--jsonl", "--json", "copy.jsonl"))[0]
    assert alone["watermarked"] and alone["log10_p"] < -6, alone
    c = jsonl(run("detect", "--key", KEY, "--tokenizer", GPT2, "--jsonl", "--prompt-field", "prompt", "--json", "--corpus", "copy.jsonl"))[-1]
    assert not c["watermarked"], c


@check("--no-dedup prints no verdict and never sets the exit status (issue 11.5)")
def _():
    write("rep.txt", "the " * 3000)
    run("detect", "--key", KEY, "--tokenizer", GPT2, "--no-dedup", "--fail-if-watermarked", "rep.txt", ok=(0,))
    row = jsonl(run("detect", "--key", KEY, "--tokenizer", GPT2, "--no-dedup", "--json", "rep.txt"))[0]
    assert row["watermarked"] is None and row["p_value_valid"] is False
    table = run("detect", "--key", KEY, "--tokenizer", GPT2, "--no-dedup", "rep.txt").stdout.decode()
    assert "WATERMARKED" not in table and "no verdict" in table
    run("detect", "--key", KEY, "--ids", "--no-dedup", "--corpus", "--fail-if-watermarked", "wm.ids", ok=(0,))


@check("standard input is read once: a second use is refused (issue 11.13)")
def _():
    write("f.ids", "1 2 3\n")
    error(["detect", "--key", KEY, "--ids", "--corpus", "--filter", "-"], "standard input", stdin=b"1 2 3\n")
    error(["detect", "--key", KEY, "--ids", "-", "-"], "standard input", stdin=b"1 2 3\n")
    error(["tokenize", "--tokenizer", GPT2, "-", "-"], "standard input", stdin=b"x")
    run("detect", "--key", KEY, "--ids", "--corpus", "--filter", "f.ids", "-", stdin=b"1 2 3\n")


@check("--json escapes non-UTF-8 names; --lossy repairs JSONL; strict --ids (issue 11.14)")
def _():
    name = os.fsdecode(b"odd-\xff\xfe.ids")
    write(name, "1 2 3 4\n")
    rows = jsonl(run("detect", "--key", KEY, "--ids", "--json", name))  # json.loads fails on raw bytes
    assert rows[0]["source_hex"] == (b"odd-\xff\xfe.ids:1").hex() and "\ufffd" in rows[0]["source"]
    write("lossy.jsonl", b'{"text": "ok \xff end"}\n', "wb")
    error(["detect", "--key", KEY, "--tokenizer", GPT2, "--jsonl", "lossy.jsonl"], "lossy.jsonl:1: invalid JSON")
    row = jsonl(run("detect", "--key", KEY, "--tokenizer", GPT2, "--jsonl", "--json", "--lossy", "lossy.jsonl"))[0]
    assert row["tokens"] > 2
    for bad, col in (("+4", 1), ("-0", 1), ("007", 1), ("1 2 0x5", 5), ("1  -3", 4), ("4294967297", 1)):
        write("strict.ids", bad + "\n")
        error(["detect", "--key", KEY, "--ids", "strict.ids"], f"strict.ids:1:{col}: ")
    write("blank.ids", "1 2\n\n3 4\n")
    error(["detect", "--key", KEY, "--ids", "blank.ids"], "blank.ids:2: blank line")
    write("zero.ids", "0 10 0\n")
    run("detect", "--key", KEY, "--ids", "zero.ids")


@check("--vocab: ids with a key that records no tokenizer (issue 11.15)")
def _():
    a = jsonl(run("detect", "--key", path("free.wmkey"), "--ids", "--vocab", "50257", "--json", "wm.ids"))
    assert len(a) == 6 and all(r["scored"] > 0 for r in a)
    error(["detect", "--key", path("free.wmkey"), "--ids", "--vocab", "10", "wm.ids"], "outside the key's vocabulary")
    error(["detect", "--key", KEY, "--ids", "--vocab", "1000", "wm.ids"], "records a vocabulary of 50257")
    error(["detect", "--key", KEY, "--tokenizer", GPT2, "--vocab", "50257", "wm.jsonl"], "--vocab goes with --ids")


@check("gumbel: keygen --scheme gumbel, info, detect --json/--corpus/--window report the scheme's statistic")
def _():
    run("keygen", "--scheme", "gumbel", "--context-width", "2", "--tokenizer", GPT2, "-o", "g.wmkey")
    info = json.loads(run("info", "--json", "g.wmkey").stdout)
    assert info["scheme"] == "gumbel" and info["seeding"] == "lefthash" and info["context_width"] == 2, info
    assert "gamma" not in info and "delta" not in info, info
    docs = gen(4, 200, 1, 5, key=path("g.wmkey")) + gen(4, 200, 0, 6, key=path("g.wmkey"))
    write("g.ids", "".join(" ".join(map(str, d["ids"])) + "\n" for d in docs))
    rows = jsonl(run("detect", "--key", "g.wmkey", "--ids", "--json", "g.ids", ok=(0, 1)))
    for row, lib in zip(rows, docs):
        assert row["scheme"] == "gumbel" and "green" not in row, row
        assert row["scored"] == lib["scored"] and row["statistic"] == lib["statistic"], (row, lib)
        assert row["log10_p"] == lib["log10_p"]
    assert all(r["watermarked"] for r in rows[:4]) and not any(r["watermarked"] for r in rows[4:]), rows
    corpus = jsonl(run("detect", "--key", "g.wmkey", "--ids", "--json", "--corpus", "g.ids", ok=(0, 1)))[-1]
    assert corpus["scheme"] == "gumbel" and corpus["watermarked"], corpus
    win = jsonl(run("detect", "--key", "g.wmkey", "--ids", "--json", "--window", "g.ids", ok=(0, 1)))
    assert win[0]["watermarked"] and "window_begin" in win[0], win[0]
    text = run("detect", "--key", "g.wmkey", "--ids", "--corpus", "g.ids", ok=(0, 1)).stdout.decode()
    assert "mean score" in text and "gumbel" in text, text
    # a kgw and a gumbel key together: a row each, each with its scheme; --filter on the gumbel documents
    write("g-wm.ids", "".join(" ".join(map(str, d["ids"])) + "\n" for d in docs[:4]))
    rows = jsonl(run("detect", "--key", KEY, "--key", "g.wmkey", "--ids", "--json", "--corpus", "--filter", "g-wm.ids",
                     "g.ids", ok=(0, 1)))
    corpus_rows = [r for r in rows if r.get("corpus") and "scheme" in r]
    assert {r["scheme"] for r in corpus_rows} == {"kgw", "gumbel"}, rows
    g = [r for r in corpus_rows if r["scheme"] == "gumbel"][0]
    k = [r for r in corpus_rows if r["scheme"] == "kgw"][0]
    assert g["watermarked"] and not k["watermarked"] and g["keys"] == 2, (g, k)


@check("keygen refuses a delta that rounds away (issue 11.12)")
def _():
    error(["keygen", "--delta", "1e-50", "-o", "tiny.wmkey"], "--delta")
    assert not os.path.exists(path("tiny.wmkey"))
    run("keygen", "--delta", "0.0009765625", "-o", "small.wmkey")


@check("plain files are streamed: same results as reading them whole, any size (issue 11.6)")
def _():
    rnd = random.Random(11)
    corpus = json.load(open(os.path.join(os.path.dirname(__file__), "tokenizer", "corpus.json"), encoding="utf-8"))
    parts, size = [], 0
    while size < 3 << 20:  # crosses several 1 MiB parts, cutting characters and special tokens
        t = rnd.choice(corpus + [WM_DOCS[rnd.randrange(6)]["text"]])
        parts.append(t)
        size += len(t.encode())
    text = "\n".join(parts)
    write("big.txt", text.encode(), "wb")
    write("big.jsonl", json.dumps({"text": text}) + "\n")
    for tok in (GPT2, LLAMA, os.path.join(FIX, "qwen3", "tokenizer.json")):
        a = run("tokenize", "--tokenizer", tok, "big.txt").stdout
        b = run("tokenize", "--tokenizer", tok, "--jsonl", "big.jsonl").stdout
        assert a == b, f"{tok}: streamed ids differ from whole-text ids"
    streamed = jsonl(run("detect", "--key", KEY, "--key", path("k2.wmkey"), "--tokenizer", GPT2, "--json", "big.txt", "wm.ids"))
    whole = jsonl(run("detect", "--key", KEY, "--key", path("k2.wmkey"), "--tokenizer", GPT2, "--json", "--skip-bad", "big.txt", "wm.ids"))
    assert streamed == whole and streamed[0]["tokens"] > 500000, (streamed[:1], whole[:1])
    c1 = jsonl(run("detect", "--key", KEY, "--tokenizer", GPT2, "--json", "--corpus", "big.txt"))
    c2 = jsonl(run("detect", "--key", KEY, "--tokenizer", GPT2, "--json", "--corpus", "--jsonl", "big.jsonl"))
    assert c1 == [dict(r, source=r["source"]) for r in c2], (c1, c2)
    f1 = jsonl(run("detect", "--key", KEY, "--tokenizer", GPT2, "--json", "--corpus", "--filter", "big.txt", "big.txt"))
    f2 = jsonl(run("detect", "--key", KEY, "--tokenizer", GPT2, "--json", "--corpus", "--jsonl", "--filter", "big.jsonl", "big.jsonl"))
    assert f1 == f2 and f1[0]["scored"] == c1[0]["scored"], (f1, f2, c1)
    # an error in the middle names the offset in the whole file
    write("badmid.txt", b"x" * (1 << 20) + b"ok \xff end", "wb")
    error(["detect", "--key", KEY, "--tokenizer", GPT2, "badmid.txt"], "invalid UTF-8 at byte offset 1048579")


@check("SentencePiece tokenizers (Llama 2, Gemma 3, Gemini): a key records each, detect works end to end")
def _():
    # Gemma 3 and Gemini have 262,144 tokens, which cli_gen's model scores in full at every
    # step: minutes under the sanitizers, so those builds ("small") check Llama 2 only
    for name in ("llama2", "gemma3", "gemini") if SIZE == "big" else ("llama2",):
        tok = os.path.join(FIX, name, "tokenizer.json")
        run("keygen", "--tokenizer", tok, "-o", f"sp-{name}.wmkey")
        key = path(f"sp-{name}.wmkey")
        assert json.loads(run("info", "--json", key).stdout)["vocab"] > 30000
        wm = subprocess.run([GEN, key, tok, "3", "800", "1", "5", "0"], capture_output=True, check=True)
        clean = subprocess.run([GEN, key, tok, "3", "200", "0", "6", "0"], capture_output=True, check=True)
        docs = [json.loads(l) for l in wm.stdout.decode().splitlines() + clean.stdout.decode().splitlines()]
        write(f"sp-{name}.jsonl", "".join(json.dumps({"text": d["text"]}) + "\n" for d in docs))
        res = jsonl(run("detect", "--key", key, "--tokenizer", tok, "--jsonl", "--json", f"sp-{name}.jsonl", ok=(0, 1)))
        ps = [r["log10_p"] for r in res]
        # a fresh key each run: 9 clean documents in all, so each must stay above 1e-5 (a false
        # failure at most 9e-5 of runs); 800 watermarked tokens reached 1e-19 to 1e-59 in 3 runs
        assert all(p < -6 for p in ps[:3]) and all(p > -5 for p in ps[3:]), (name, ps)
        error(["detect", "--key", key, "--tokenizer", GPT2, f"sp-{name}.jsonl"], "tokenizer")


@check("help: every command documents itself")
def _():
    assert "keygen" in run("--help").stdout.decode()
    for cmd in ("keygen", "info", "tokenize", "detect"):
        out = run(cmd, "--help").stdout.decode()
        assert out.startswith(f"usage: wm {cmd}") and len(out) > 100, out


if SIZE == "big":
    @check("a 64 MB plain file is one document, scored in bounded memory")
    def _():
        rnd = random.Random(6)
        words = ["".join(rnd.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(rnd.randint(2, 9))) for _ in range(20000)]
        with open(path("huge.txt"), "w") as f:
            n = 0
            while n < 64 << 20:
                line = " ".join(rnd.choice(words) for _ in range(200)) + "\n"
                f.write(line)
                n += len(line)
        proc = subprocess.Popen([WM, "detect", "--key", KEY, "--tokenizer", GPT2, "--json", "huge.txt"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=tmp)
        out, err = proc.stdout.read(), proc.stderr.read()
        _, status, usage = os.wait4(proc.pid, 0)  # this child's own peak, not the largest so far
        assert status == 0, err.decode()
        res = json.loads(out.decode().splitlines()[0])
        rss_mb = usage.ru_maxrss / 1024
        print(f"    64 MB plain file: {res['tokens']} tokens, {res['scored']} unique tuples, peak RSS {rss_mb:.0f} MB")
        assert res["tokens"] > 30_000_000
        assert rss_mb < 60 + 16 * res["scored"] / 2**20 * 2, "memory grows with the file"
        os.remove(path("huge.txt"))


    @check("streams 256 MB of JSONL through --corpus in bounded memory")
    def _():
        rnd = random.Random(5)
        words = ["".join(rnd.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(rnd.randint(2, 9))) for _ in range(20000)]
        line_words = 200
        target = 256 << 20
        proc = subprocess.Popen([WM, "detect", "--key", KEY, "--tokenizer", GPT2, "--jsonl", "--corpus", "--json", "-"],
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=tmp)
        sent = 0
        chunk = []
        while sent < target:
            line = json.dumps({"text": " ".join(rnd.choice(words) for _ in range(line_words))}) + "\n"
            chunk.append(line)
            sent += len(line)
            if len(chunk) == 2000:
                proc.stdin.write("".join(chunk).encode())
                chunk = []
        proc.stdin.write("".join(chunk).encode())
        proc.stdin.close()
        out = proc.stdout.read()
        _, status, usage = os.wait4(proc.pid, 0)  # this child's own peak
        assert status == 0, proc.stderr.read().decode()
        res = json.loads(out.decode().splitlines()[-1])
        rss_mb = usage.ru_maxrss / 1024
        print(f"    {sent / 2**20:.0f} MB in, {res['tokens']} tokens, {res['scored']} unique tuples, "
              f"peak RSS {rss_mb:.0f} MB, log10 p {res['log10_p']:.2f}")
        assert res["tokens"] > 40_000_000 and not res["watermarked"]
        assert rss_mb < 120 + 16 * res["scored"] / 2**20 * 2, "memory not bounded by unique tuples"

sys.exit(summary())
