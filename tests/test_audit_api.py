#!/usr/bin/env python3
"""`wm audit` against a local replay server (tests/audit_replay_server.py:
a bigram suspect, radioactive when trained on watermarked text) and, with
--server, against the real patched llama-server serving a tiny model
without --wm-key.

    test_audit_api.py WM CLI_GEN MAKE_KEY FIXTURES [--server LLAMA_SERVER GGUF_PY_DIR]

The key is fixed (tests/make_key.c) and so are the generator's seeds: every
statistical check below (a clean suspect not flagged at alpha 1e-3, a
radioactive one flagged) gives the same figures on every run, where a fresh
key a run would fail the null checks at their alpha, now and then.

Covers: the four modes (answers with the anytime audit and --filter,
generated log-probabilities in llama.cpp's, vLLM's legacy and the chat
layout, vLLM prompt_logprobs, one-token prefixes) on a radioactive and a
clean suspect; hostile endpoints (5xx, 429 with Retry-After in seconds and
as a date, dropped connections, truncated bodies, timeouts, malformed JSON,
missing fields, absent log-probabilities, token strings that are not one
provider token, a 429 storm past the retries, a server that dies mid-run,
a wrong API key); the API key from a 0600 file or the environment, never
printed or journaled; budgets; the journal (kill -9 mid-run, a torn last
record, resume with identical figures, offline rescoring, altered records
and options refused, never overwritten).  Prints cmocka-style lines."""
import atexit
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
WM, CLI_GEN, MAKE_KEY, FIX = sys.argv[1:5]
SERVER = GGUF_PY = None
if len(sys.argv) > 5:
    assert sys.argv[5] == "--server"
    SERVER, GGUF_PY = sys.argv[6:8]
TOK = os.path.join(FIX, "gpt2", "tokenizer.json")
TMP = tempfile.mkdtemp(prefix="wm-audit-")
failed = 0
passed = 0
procs = []
SECRET = "sk-test-0123456789abcdef-SECRET"


def ok(cond, what, detail=""):
    global failed, passed
    if cond:
        passed += 1
        print(f"[       OK ] {what}", flush=True)
    else:
        failed += 1
        print(f"[  FAILED  ] {what}{': ' + str(detail)[:2000] if detail else ''}", flush=True)


def p(name):
    return os.path.join(TMP, name)


def run(*args, env=None, timeout=600):
    r = subprocess.run([str(a) for a in args], capture_output=True, text=True, timeout=timeout,
                       env={**os.environ, **(env or {})})
    return r.returncode, r.stdout, r.stderr


def must(*args):
    rc, out, err = run(*args)
    if rc != 0:
        raise SystemExit(f"setup failed: {args}: {err}")
    return out


class Replay:
    def __init__(self, train, *extra):
        pf = p(f"port-{time.monotonic_ns()}")
        self.proc = subprocess.Popen([sys.executable, os.path.join(HERE, "audit_replay_server.py"), "--tokenizer", TOK,
                                      "--train", train, "--text-ids", p("textids.jsonl"), "--port-file", pf,
                                      *map(str, extra)], stdout=subprocess.DEVNULL,
                                     stderr=open(pf + ".log", "w"))
        procs.append(self.proc)
        for _ in range(300):
            if os.path.exists(pf):
                break
            time.sleep(0.05)
        self.url = f"http://127.0.0.1:{open(pf).read()}/v1"

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()


def wait_lines(path, n, deadline=180):
    """Until the journal at `path` holds more than n lines: a loaded machine
    (the sanitizers, two tests at once) may take many seconds to get there,
    and a signal sent before it would test nothing."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < deadline:
        if os.path.exists(path) and len(open(path, "rb").read().split(b"\n")) > n:
            return
        time.sleep(0.02)


def audit(journal, *args, url=None, prompts=None, new=True, env=None, timeout=600):
    flag = "--journal" if new else "--resume"
    cmd = [WM, "audit", "--key", p("k.key"), "--tokenizer", TOK, "--prompts", prompts or p("prompts.jsonl"),
           flag, journal, "--json", "--batch", "10"]
    if url:
        cmd += ["--url", url]
    return run(*cmd, *args, env=env, timeout=timeout)


def final(out):
    for line in out.splitlines():
        if line.startswith('{"source":"audit-final"'):
            return json.loads(line)
    return None


def journal_ok(path):
    """Every line framed and checksummed as audit_journal.h says (recomputed
    here with BLAKE2b-128, independently of the C code)."""
    import hashlib
    if not os.path.exists(path):
        return False
    data = open(path, "rb").read()
    if not data.endswith(b"\n"):
        return False
    for line in data.split(b"\n")[:-1]:
        s, rec = line[:32], line[33:]
        if hashlib.blake2b(rec, digest_size=16).hexdigest().encode() != s:
            return False
        json.loads(rec)
    return True


def records(path):
    if not os.path.exists(path):
        return [{}]
    return [json.loads(line[33:]) for line in open(path, "rb").read().split(b"\n")[:-1]]


def kill_all():
    for pr in procs:
        if pr.poll() is None:
            pr.kill()


# an exception must not leave servers behind holding meson's pipe (the run would hang to its timeout)
atexit.register(kill_all)

# ---- data: a key, watermarked and clean documents, prompts ------------------
must(MAKE_KEY, 3, TOK, p("k.key"))
open(p("wm.jsonl"), "w").write(must(CLI_GEN, p("k.key"), TOK, 20, 300, 1, 7))
open(p("clean.jsonl"), "w").write(must(CLI_GEN, p("k.key"), TOK, 20, 300, 0, 8))
open(p("wm-small.jsonl"), "w").write(must(CLI_GEN, p("k.key"), TOK, 4, 60, 1, 9))
for n in ("wm", "clean"):
    open(p(n + ".ids"), "w").write(must(WM, "tokenize", "--tokenizer", TOK, "--jsonl", p(n + ".jsonl")))
with open(p("prompts.jsonl"), "w") as f:
    for i in range(60):
        f.write(json.dumps({"prompt": f"Question {i}: tell me something."}) + "\n")
open(p("prompts20.jsonl"), "w").write("".join(open(p("prompts.jsonl")).readlines()[:20]))
sent = []
for name, out in (("docs.jsonl", "wm.jsonl"), ("docs-small.jsonl", "wm-small.jsonl")):
    with open(p(name), "w") as f:
        for i, line in enumerate(open(p(out))):
            d = {"prompt": f"Q{i}: ", "text": json.loads(line)["text"]}
            f.write(json.dumps(d) + "\n")
            sent.append(d["prompt"] + d["text"])
        if name == "docs.jsonl":  # U+0000 in a document: its request must journal (a regression)
            d = {"prompt": "Q-nul: ", "text": "a\u0000b, then more words to read"}
            f.write(json.dumps(d) + "\n")
            sent.append(d["prompt"] + d["text"])
ids = subprocess.run([WM, "tokenize", "--tokenizer", TOK, "--jsonl"], capture_output=True, text=True, check=True,
                     input="".join(json.dumps({"text": s}) + "\n" for s in sent)).stdout.splitlines()
with open(p("textids.jsonl"), "w") as f:
    for s, line in zip(sent, ids):
        f.write(json.dumps({"text": s, "ids": [int(x) for x in line.split()]}) + "\n")

radio = Replay(p("wm.ids"))
clean = Replay(p("clean.ids"))
legacy = Replay(p("wm.ids"), "--legacy")

# ---- the modes -----------------------------------------------------------------
rc, out, err = audit(p("a1"), "--max-tokens", 100, url=radio.url)
f = final(out)
ok(rc == 0 and f and f["watermarked"] and f["stop"] == "target reached" and f["log10_p"] <= -6 and f["anytime"],
   "answers: the radioactive suspect is flagged and the run stops at the target", (rc, err, f))
looks = [json.loads(x) for x in out.splitlines() if '"source":"audit"' in x]
ok(len(looks) >= 2 and all(a["log10_p"] >= b["log10_p"] for a, b in zip(looks, looks[1:])),
   "answers: one look a batch, the anytime p never increases", looks)
ok(journal_ok(p("a1")) and records(p("a1"))[0]["t"] == "wm-audit", "answers: the journal is framed and checksummed")

# --plot: the anytime p after each look, drawn by gnuplot from the journal offline
rc, out, err = run(WM, "audit", "--key", p("k.key"), "--tokenizer", TOK, "--prompts", p("prompts.jsonl"), "--offline",
                   p("a1"), "--json", "--batch", 10, "--max-tokens", 100, "--plot", p("a1.svg"))
n_looks = sum('"source":"audit"' in x for x in out.splitlines())
svg = open(p("a1.svg"), errors="replace").read() if os.path.exists(p("a1.svg")) else ""
ok(rc == 0 and f"plot of {n_looks} looks written" in err and n_looks >= 2 and "<svg" in svg and "after each look" in svg,
   "--plot FILE.svg: one point a look, drawn", (rc, err, n_looks))
rc, out, err = run(WM, "audit", "--key", p("k.key"), "--tokenizer", TOK, "--prompts", p("prompts.jsonl"), "--offline",
                   p("a1"), "--plot", p("a1.txt"))
ok(rc == 2 and "--plot" in err, "--plot with another extension is refused before anything runs", err)

rc, out, err = audit(p("a2"), "--max-tokens", 100, url=clean.url)
f = final(out)
ok(rc == 0 and f and not f["watermarked"] and f["stop"] == "prompts exhausted" and f["documents"] == 60,
   "answers: the clean suspect is not flagged over every prompt", (rc, err, f))

rc, out, err = audit(p("a3"), "--max-tokens", 100, "--filter", p("wm.jsonl"), url=radio.url)
f = final(out)
ok(rc == 0 and f and f["watermarked"], "answers --filter: flagged on the contexts of the harvested outputs", (err, f))

for name, srv, extra in (("llama.cpp layout", radio, []), ("vLLM legacy layout", legacy, []),
                         ("chat", radio, ["--api", "chat"])):
    rc, out, err = audit(p("l-" + name.replace(" ", "_")), "--mode", "logprobs", "--max-tokens", 100, *extra,
                         url=srv.url)
    f = final(out)
    ok(rc == 0 and f and f["watermarked"] and f["rows_read"] > 0.8 * f["rows"] and f["candidates_dropped"] == 0,
       f"logprobs ({name}): the radioactive suspect is flagged", (rc, err, f))
rc, out, err = audit(p("l-clean"), "--mode", "logprobs", "--max-tokens", 100, url=clean.url)
f = final(out)
ok(rc == 0 and f and not f["watermarked"], "logprobs: the clean suspect is not flagged", (err, f))
rc, out, err = audit(p("l-w"), "--mode", "logprobs", "--weighted", "--max-tokens", 100, url=radio.url)
f = final(out)
ok(rc == 0 and f and f["watermarked"] and f["weighted"], "logprobs --weighted: flagged (Chernoff bound)", (err, f))

rc, out, err = audit(p("p1"), "--mode", "prompt", url=radio.url, prompts=p("docs.jsonl"))
f = final(out)
ok(rc == 0 and f and f["watermarked"] and f["documents"] == 21 and f["rows_read"] > 0.9 * f["rows"],
   "prompt (vLLM prompt_logprobs): the radioactive suspect is flagged", (rc, err, f))
rc, out, err = audit(p("p2"), "--mode", "prompt", url=clean.url, prompts=p("docs.jsonl"))
f = final(out)
ok(rc == 0 and f and not f["watermarked"], "prompt: the clean suspect is not flagged", (err, f))
# mutation check of the rank rule: the prompt's own token (rank > k) must not be read
body = records(p("p2"))[1]["body"]
row = json.loads(body)["choices"][0]["prompt_logprobs"][5]
ok(any(v["rank"] > 5 for v in row.values()), "prompt: vLLM rows hold the prompt token beyond the top-k (the rule matters)")

open(p("docs-prefix.jsonl"), "w").write("".join(open(p("docs.jsonl")).readlines()[:2]))
rc, out, err = audit(p("x1"), "--mode", "prefix", url=radio.url, prompts=p("docs-prefix.jsonl"), timeout=900)
f = final(out)
ok(rc == 0 and f and f["requests"] == f["rows"] and f["rows_read"] == f["rows"] and f["log10_p"] < -3,
   "prefix: one request per answer position, every row read, evidence found", (rc, err, f))

# ---- --reference: the weighted test against the provider's own unwatermarked model ----
# A toy of the real setting: the provider's unwatermarked model is a bigram of ordinary text (c10 + c11); the
# radioactive suspect is that model plus a small shift, (1 - 0.1) base + 0.1 the bigram of the watermarked docs
# (replay --mix), as a student is its base plus what it picked up; the clean suspect's shift is clean text.  The
# reference rows come from a prompt-mode run against the base (its journal), as they would from llama-server
# serving the provider's model.
for s in (10, 11):
    gen = must(CLI_GEN, p("k.key"), TOK, 20, 300, 0, s)
    open(p(f"c{s}.ids"), "w").write(subprocess.run([WM, "tokenize", "--tokenizer", TOK, "--jsonl"], input=gen,
                                                   capture_output=True, text=True, check=True).stdout)
open(p("ref.ids"), "w").write(open(p("c10.ids")).read() + open(p("c11.ids")).read())
refsrv = Replay(p("ref.ids"))
mix = Replay(p("ref.ids"), "--mix", p("wm.ids"), "--eps", 0.1)
cmix = Replay(p("ref.ids"), "--mix", p("clean.ids"), "--eps", 0.1)
rc, out, err = audit(p("r-ref"), "--mode", "prompt", url=refsrv.url, prompts=p("docs.jsonl"))
ok(rc == 0 and final(out), "reference: a prompt run against the reference model journals its rows", err)


def offline(journal, *extra, prompts="docs.jsonl", mode="prompt"):
    rc, out, err = run(WM, "audit", "--key", p("k.key"), "--tokenizer", TOK, "--prompts", p(prompts), "--offline",
                       journal, "--json", "--batch", 10, "--mode", mode, *extra)
    return rc, final(out), err


rc, out, err = audit(p("r-mix"), "--mode", "prompt", "--reference", p("r-ref"), url=mix.url, prompts=p("docs.jsonl"))
fr = final(out)
_, fw, _ = offline(p("r-mix"), "--weighted")
_, fx, _ = offline(p("r-mix"))
print(f"# radioactive suspect (base + 0.1 watermarked), prompt mode, log10 p: exact {fx and fx['log10_p']}, "
      f"--weighted {fw and fw['log10_p']}, --reference {fr and fr['log10_p']}", flush=True)
ok(rc == 0 and fr and fr["reference"] and fr["weighted"] and fr["watermarked"] and fw
   and fr["log10_p"] < 2 * fw["log10_p"] and fr["ref_only"] > 0 and fr["ref_candidates"] > 0
   and "neither the suspect's nor the reference's" in fr["null"],
   "reference: the radioactive suspect is caught with more power than --weighted alone (log10 p 2x lower)", (fr, fw))
rc, f2, err = offline(p("r-mix"), "--reference", p("r-ref"))
ok(rc == 0 and f2 == fr, "reference: --offline with the same reference gives the same figures", (err, f2, fr))
rc, out, err = audit(p("r-mix"), "--mode", "prompt", "--weighted", url=mix.url, prompts=p("docs.jsonl"), new=False)
ok(rc == 2 and "reference_sha256" in err, "--resume without the run's --reference is refused (--offline may "
   "rescore with another test)", err)
# a reference equal to the suspect's distribution: every weight p_s - p_ref is 0, no evidence either way
rc, f, err = offline(p("r-mix"), "--reference", p("r-mix"))
ok(rc == 0 and f and f["log10_p"] == 0 and not f["watermarked"] and f["ref_only"] == 0 and f["rows_read"] > 0,
   "reference = the suspect itself: weights 0, log10 p 0", (err, f))
# the same across modes: the radioactive suspect's prefix rows (x1) against its own prompt rows
rc, out, err = audit(p("r-x1ref"), "--mode", "prompt", url=radio.url, prompts=p("docs-prefix.jsonl"))
rc, f, err = offline(p("x1"), "--reference", p("r-x1ref"), prompts="docs-prefix.jsonl", mode="prefix")
# (prompt mode places rows by byte offset: where the suspect's tokens straddle the provider's boundaries, at most a
# row a document, the reference has none or another position's, so the weights there are not 0)
ok(rc == 0 and f and f["log10_p"] > -2 and f["rows_read"] == f["rows"] and f["ref_rows_missing"] <= 2
   and f["ref_only"] <= 2 * 5 and f["ref_candidates"] >= 0.99 * f["candidates_kept"],
   "reference in prompt mode for a prefix run: the rows align (<= 1 a document off), no evidence", (err, f))
# the clean suspect (base + 0.1 other clean text) against the reference: not flagged
rc, out, err = audit(p("r-cmix"), "--mode", "prompt", "--reference", p("r-ref"), url=cmix.url, prompts=p("docs.jsonl"))
f = final(out)
print(f"# clean suspect (base + 0.1 clean), prompt mode, --reference: log10 p {f and f['log10_p']}", flush=True)
ok(rc == 0 and f and not f["watermarked"],
   "reference: the clean suspect is not flagged at alpha 1e-3 (the fixed key; under H0 at most 0.1% of keys)",
   (err, f))
# refused: another prompts file, a reference run of another mode, --reference outside prompt/prefix
rc, out, err = audit(p("r-small"), "--mode", "prompt", url=refsrv.url, prompts=p("docs-small.jsonl"))
rc, f, err = offline(p("r-mix"), "--reference", p("r-small"))
ok(rc == 2 and p("r-small") in err and "prompts_sha256" in err, "reference over other texts: refused, the file named",
   err)
rc, f, err = offline(p("r-mix"), "--reference", p("l-clean"))
ok(rc == 2 and "a logprobs run" in err, "reference from a logprobs run: refused", err)
rc, f, err = offline(p("l-clean"), "--reference", p("r-ref"), prompts="prompts.jsonl", mode="logprobs")
ok(rc == 2 and "--reference goes with --mode prompt or prefix" in err, "--reference in logprobs mode: refused", err)
for s in (refsrv, mix, cmix):
    s.stop()

# ---- --mode auto: one probe, the mode from what comes back, journaled, same figures ----
nolp = Replay(p("wm.ids"), "--no-logprobs")
noplp = Replay(p("wm.ids"), "--no-prompt-logprobs")
for name, srv, prompts, forced, want in (("vLLM, texts", radio, "docs.jsonl", "p1", "prompt"),
                                         ("top-k, prompts", radio, "prompts.jsonl", "l-llama.cpp_layout", "logprobs"),
                                         ("answers only", nolp, "prompts.jsonl", None, "answers")):
    extra = [] if forced == "p1" else ["--max-tokens", 100]
    rc, out, err = audit(p("auto-" + want), "--mode", "auto", *extra, url=srv.url, prompts=p(prompts))
    f = final(out)
    hdr = records(p("auto-" + want))[0]
    ref = final(audit(p("auto-ref-" + want), "--mode", want, *extra, url=srv.url, prompts=p(prompts))[1])
    ok(rc == 0 and f and f["mode"] == want and f"--mode auto: {want} (" in err and f.pop("auto") and f == ref
       and hdr.get("config", {}).get("mode") == want and hdr.get("auto", {}).get("mode") == want,
       f"auto ({name}): {want}, printed with the reason and journaled; the figures of --mode {want}", (rc, err, f, ref))
rc, out, err = audit(p("auto-x"), "--mode", "auto", url=noplp.url, prompts=p("docs.jsonl"))
ok(rc == 2 and "--mode prefix" in err and not os.path.exists(p("auto-x")),
   "auto on texts without prompt_logprobs: an error that names --mode prefix", (rc, err))
rc, out, err = run(WM, "audit", "--key", p("k.key"), "--tokenizer", TOK, "--prompts", p("docs.jsonl"), "--offline",
                   p("auto-prompt"), "--json", "--batch", 10, "--mode", "auto")
f = final(out)
ok(rc == 0 and f and f["mode"] == "prompt" and "as the journal's run chose" in err,
   "auto --offline: the journal's mode", (err, f))
nolp.stop()
noplp.stop()

# ---- hostile endpoints ---------------------------------------------------------
base = final(audit(p("h0"), "--max-tokens", 50, url=clean.url, prompts=p("prompts20.jsonl"))[1])
h = Replay(p("clean.ids"), "--hostile", "500,503,429,429date,drop,trunc,ok,500", "--slow", 3)
rc, out, err = audit(p("h1"), "--max-tokens", 50, "--concurrency", 1, url=h.url, prompts=p("prompts20.jsonl"))
f = final(out)
retried = sum(r.get("retry", False) for r in records(p("h1")))
same = f and base and all(f[k] == base[k] for k in base if k != "attempts")
# "drop" on a reused connection is retried by libcurl itself (nothing was received): 6 or 7 journaled retries
ok(rc == 0 and same and retried >= 6 and f["attempts"] == f["requests"] + retried,
   "5xx, 429 (seconds and date), dropped, truncated: retried, same figures as a clean endpoint", (rc, err, f, base))
ok(journal_ok(p("h1")) and retried == len(records(p("h1"))) - 1 - f["requests"], "retried attempts are journaled too")
h.stop()
h = Replay(p("clean.ids"), "--hostile", "slow", "--slow", 3)
rc, out, err = audit(p("h2"), "--max-tokens", 20, "--timeout", 1, url=h.url, prompts=p("prompts20.jsonl"))
# at least the slow request's retry (on a loaded machine another reply may pass --timeout too)
ok(rc == 0 and final(out)["attempts"] >= 20 + 1 and "timed out" in err.lower() + json.dumps(records(p("h2"))).lower(),
   "a timeout is retried", (rc, err))
h.stop()
for beh, want, mode in (("malformed", "not JSON", "answers"), ("missing", "choices[0].text", "answers"),
                        ("noprobs", "no log-probabilities", "logprobs")):
    h = Replay(p("wm.ids"), "--hostile", beh)
    rc, out, err = audit(p("h-" + beh), "--mode", mode, "--max-tokens", 20, "--concurrency", 1, url=h.url)
    ok(rc == 2 and want in err and "malformed response" in err and p("h-" + beh) + ":2" in err and journal_ok(p("h-" + beh)),
       f"{beh}: a clear error naming the journal record, journal intact", (rc, err))
    h.stop()
h = Replay(p("wm.ids"), "--hostile", ",".join(["badtok"] * 10))
rc, out, err = audit(p("h-badtok"), "--mode", "logprobs", "--max-tokens", 50, "--max-requests", 20, url=h.url)
f = final(out)
ok(rc == 0 and f and f["candidates_dropped"] > 0 and f["candidates_kept"] > 0,
   "token strings that are not one provider token are dropped and counted", (err, f))
h.stop()
# vLLM's legacy layout keys the top-k by token text: a token of byte 0 is a "\u0000" key, which
# jansson cannot hold; the response must still be read (that candidate left unread), not refused
h = Replay(p("wm.ids"), "--legacy", "--hostile", ",".join(["nulkey"] * 10))
rc, out, err = audit(p("h-nulkey"), "--mode", "logprobs", "--max-tokens", 50, "--max-requests", 10, url=h.url)
f = final(out)
ok(rc == 0 and f and f["candidates_kept"] > 0 and f["rows_read"] > 0,
   "legacy layout: a top-k key holding U+0000 is left unread, the response read", (rc, err[-300:], f))
h.stop()
# no usable candidate anywhere: nothing may be scored (an id-0 filler would score one made-up tuple a seed)
h = Replay(p("wm.ids"), "--hostile", ",".join(["badtok"] * 20))
rc, out, err = audit(p("h-none"), "--mode", "logprobs", "--max-tokens", 50, "--max-requests", 10, url=h.url)
f = final(out)
ok(rc == 0 and f and f["rows_empty"] + f["rows_unaligned"] == f["rows"] > 0 and f["rows_read"] == 0 and f["scored"] == 0
   and f["log10_p"] == 0, "rows without a usable candidate are not read (WM_TOKEN_NONE), nothing scored", (err, f))
h.stop()
h = Replay(p("wm.ids"), "--hostile", ",".join(["429"] * 50))
rc, out, err = audit(p("h-storm"), "--retries", 2, "--concurrency", 1, url=h.url)
ok(rc == 2 and "gave up after 3 attempts" in err and "HTTP 429" in err and journal_ok(p("h-storm")),
   "a 429 storm past --retries: a clear error", (rc, err))
h.stop()
h = Replay(p("clean.ids"), "--hostile", "429")
open(p("prompts1.jsonl"), "w").write(open(p("prompts.jsonl")).readline())
t0 = time.monotonic()
rc, out, err = audit(p("h-wait"), "--max-tokens", 5, url=h.url, prompts=p("prompts1.jsonl"))
ok(rc == 0 and time.monotonic() - t0 >= 0.95 and final(out)["attempts"] == 2,
   "Retry-After: 1 is honoured (the jittered backoff alone would retry within 0.5 s)", (rc, err, time.monotonic() - t0))
h.stop()
h = Replay(p("wm.ids"), "--hostile", "429")
rc, out, err = audit(p("h-ra"), "--max-retry-after", 0.5, "--concurrency", 1, url=h.url)
ok(rc == 2 and ("Retry-After" in err or "retry after" in err), "a Retry-After beyond --max-retry-after: an error", err)
h.stop()

# ---- the API key ---------------------------------------------------------------
h = Replay(p("wm.ids"), "--auth", SECRET)
open(p("key.txt"), "w").write(SECRET + "\n")
os.chmod(p("key.txt"), 0o644)
rc, out, err = audit(p("k1"), "--api-key-file", p("key.txt"), url=h.url)
ok(rc == 2 and "0600" in err and not os.path.exists(p("k1")), "a key file readable by others is refused", err)
os.chmod(p("key.txt"), 0o600)
rc, out, err = audit(p("k2"), "--api-key-file", p("key.txt"), "--max-requests", 10, url=h.url)
ok(rc == 0 and final(out)["requests"] == 10, "the key from a 0600 file is sent", err)
rc, out2, err2 = audit(p("k3"), "--api-key-env", "WM_TEST_KEY", "--max-requests", 10, url=h.url,
                       env={"WM_TEST_KEY": SECRET})
ok(rc == 0, "the key from an environment variable is sent", err2)
leak = [x for x in (out, err, out2, err2, open(p("k2"), errors="replace").read(), open(p("k3"), errors="replace").read())
        if SECRET in x]
ok(not leak, "the key is never printed nor journaled")
rc, out, err = audit(p("k4"), "--api-key-env", "WM_TEST_KEY", url=h.url, env={"WM_TEST_KEY": "wrong"})
ok(rc == 2 and "HTTP 401" in err and "wrong" not in err, "a wrong key: HTTP 401, a clear error", err)
rc, out, err = audit(p("k5"), url=h.url.replace("http://", "http://user:pw@"))
ok(rc == 2 and "credentials" in err, "credentials in the URL are refused", err)
h.stop()

# ---- budgets -------------------------------------------------------------------
rc, out, err = audit(p("b1"), "--max-requests", 15, "--max-tokens", 50, url=clean.url)
f = final(out)
ok(rc == 0 and f["requests"] == 15 and f["stop"] == "budget spent" and f["documents"] == 15,
   "--max-requests caps every request", (err, f))
rc, out, err = audit(p("b2"), "--price-completion", 1000, "--max-cost", 0.1, "--max-tokens", 50, url=clean.url)
f = final(out)
ok(rc == 0 and f["stop"] == "budget spent" and 0.1 <= f["cost"] < 0.1 + 10 * 50 * 1000 / 1e6 and f["documents"] == 10,
   "--max-cost with a price: checked between batches", (err, f))
rc, out, err = audit(p("b3"), "--max-suspect-tokens", 1000, "--max-tokens", 50, url=clean.url)
f = final(out)
ok(rc == 0 and f["stop"] == "budget spent" and f["documents"] == 20, "--max-suspect-tokens", (err, f))

# ---- the journal: crash, torn record, resume, offline ----------------------------
ref = final(audit(p("r0"), "--max-tokens", 60, "--mode", "logprobs", url=clean.url)[1])
slow = Replay(p("clean.ids"))
cmd = [WM, "audit", "--key", p("k.key"), "--tokenizer", TOK, "--prompts", p("prompts.jsonl"), "--journal", p("r1"),
       "--json", "--batch", "10", "--url", slow.url, "--max-tokens", 60, "--mode", "logprobs", "--rate", 20]
proc = subprocess.Popen([str(c) for c in cmd], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
wait_lines(p("r1"), 25)
proc.send_signal(signal.SIGKILL)
proc.wait()
n_before = len(records(p("r1")))
with open(p("r1"), "ab") as fj:  # a crash in the middle of a write
    fj.write(b"0123456789abcdef0123456789abcdef {\"t\":\"attempt\",\"item\":")
rc, out, err = audit(p("r1"), "--max-tokens", 60, "--mode", "logprobs", url=slow.url, new=False)
f = final(out)
ok(0 < n_before < 61 and rc == 0 and "torn last record" in err and "dropped" in err,
   "kill -9 mid-run and a torn last record: detected, dropped with a message, resumed", (n_before, rc, err))
ok(f == ref, "the resumed run's figures are identical to an uninterrupted run's", (f, ref))
ok(journal_ok(p("r1")), "the resumed journal is whole")
rc, out, err = run(WM, "audit", "--key", p("k.key"), "--tokenizer", TOK, "--prompts", p("prompts.jsonl"), "--offline",
                   p("r1"), "--json", "--batch", 10, "--max-tokens", 60, "--mode", "logprobs")
ok(rc == 0 and final(out) == ref, "offline rescoring (no network) gives the same figures", (err, final(out)))
rc, out, err = audit(p("r1"), "--max-tokens", 60, "--mode", "logprobs", "--top-k", 3, url=slow.url, new=False)
ok(rc == 2 and "top_k" in err, "resume with other options is refused, naming the option", err)
rc, out, err = audit(p("r1"), "--max-tokens", 60, "--mode", "logprobs", url=slow.url)
ok(rc == 2 and "never overwritten" in err, "an existing journal is never overwritten", err)
data = open(p("r1"), "rb").read().split(b"\n")
data[3] = data[3].replace(b'"status":200', b'"status":201')
open(p("r2"), "wb").write(b"\n".join(data))
rc, out, err = run(WM, "audit", "--key", p("k.key"), "--tokenizer", TOK, "--prompts", p("prompts.jsonl"), "--offline",
                   p("r2"), "--json", "--batch", 10, "--max-tokens", 60, "--mode", "logprobs")
ok(rc == 2 and "r2:4" in err and "corrupt record" in err, "an altered record before the end is an error", err)
# Ctrl-C: in-flight requests finish and are journaled, the figures so far are printed, exit 2; resume
proc = subprocess.Popen([str(c) for c in cmd[:9]] + [p("r3")] + [str(c) for c in cmd[10:]], stdout=subprocess.PIPE,
                        stderr=subprocess.PIPE, text=True)
wait_lines(p("r3"), 15)
proc.send_signal(signal.SIGINT)
out, err = proc.communicate(timeout=60)
f = final(out)
ok(proc.returncode == 2 and "interrupted" in err and "--resume" in err and f and f["stop"] == "interrupted"
   and journal_ok(p("r3")), "Ctrl-C: in-flight requests finish, journal whole, a message naming --resume", (proc.returncode, err))
rc, out, err = audit(p("r3"), "--max-tokens", 60, "--mode", "logprobs", url=slow.url, new=False)
ok(rc == 0 and final(out) == ref, "... resumed: identical figures", (err, final(out), ref))
slow.stop()

# a server that dies mid-run: retries give up, the journal keeps what came; a new server, resume
ref2 = final(audit(p("d0"), "--max-tokens", 40, url=clean.url)[1])
dying = Replay(p("clean.ids"), "--die-after", 25)
rc, out, err = audit(p("d1"), "--max-tokens", 40, "--retries", 2, "--concurrency", 2, url=dying.url)
ok(rc == 2 and ("Connection refused" in err or "connect" in err.lower() or "Empty reply" in err)
   and journal_ok(p("d1")), "a server dying mid-run: a clear error, the journal intact", (rc, err))
again = Replay(p("clean.ids"))
rc, out, err = audit(p("d1"), "--max-tokens", 40, url=again.url, new=False)
f = final(out)
ok(rc == 0 and f and all(f[k] == ref2[k] for k in ref2 if k != "attempts") and f["attempts"] > ref2["attempts"],
   "... and resumed against a new server: identical figures (the failed attempts counted apart)", (err, f, ref2))
again.stop()
for s in (radio, clean, legacy):
    s.stop()

# ---- the real llama-server (no --wm-key): answers, generated logprobs, prefix ----
if SERVER:
    must(sys.executable, os.path.join(HERE, "..", "integrations", "llama.cpp", "tiny_model.py"), GGUF_PY,
         os.path.join(FIX, "llama", "models", "ggml-vocab-gpt-2.gguf"), p("tiny.gguf"))

    def start(*extra):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        pr = subprocess.Popen([SERVER, "-m", p("tiny.gguf"), "--port", str(port), "-c", "2048", "-np", "2", *extra],
                              stdout=open(p(f"srv-{port}.log"), "w"), stderr=subprocess.STDOUT)
        procs.append(pr)
        import urllib.request
        for _ in range(300):
            try:
                if urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1).status == 200:
                    break
            except OSError:
                time.sleep(0.1)
        return pr, f"http://127.0.0.1:{port}/v1"

    pr, url = start()
    with open(p("lp.jsonl"), "w") as f:
        for i in range(8):
            f.write(json.dumps({"prompt": f"The {i}th story begins"}) + "\n")
    t0 = time.time()
    rc, out, err = audit(p("s1"), "--max-tokens", 64, "--seed", 1, url=url, prompts=p("lp.jsonl"))
    f = final(out)
    ok(rc == 0 and f and f["documents"] == 8 and f["answer_tokens"] > 100 and not f["watermarked"],
       f"llama-server answers: 8 answers scored, no watermark ({time.time() - t0:.1f} s)", (rc, err, f))
    for api in ("completions", "chat"):
        t0 = time.time()
        rc, out, err = audit(p("s2-" + api), "--mode", "logprobs", "--api", api, "--max-tokens", 64, "--seed", 1,
                             url=url, prompts=p("lp.jsonl"))
        f = final(out)
        ok(rc == 0 and f and f["rows_read"] > 0.5 * f["rows"] and f["candidates_kept"] > 0 and not f["watermarked"],
           f"llama-server logprobs ({api}): top-k read, {f and f['candidates_dropped']} of "
           f"{f and f['candidates']} entries dropped ({time.time() - t0:.1f} s)", (rc, err, f))
    t0 = time.time()
    rc, out, err = audit(p("s3"), "--mode", "prefix", url=url, prompts=p("docs-small.jsonl"), timeout=900)
    f = final(out)
    ok(rc == 0 and f and f["rows_read"] + f["withheld"] == f["rows"] and f["requests"] == f["rows"] and
       f["rows_read"] > 0.8 * f["rows"] and not f["watermarked"],
       f"llama-server prefix: {f and f['requests']} one-token requests, {f and f['withheld']} with log-probabilities "
       f"withheld (incomplete UTF-8) ({time.time() - t0:.1f} s)", (rc, err, f))
    pr.terminate()
    pr.wait()
    pr, url = start("--wm-key", p("k.key"))
    rc, out, err = audit(p("s4"), "--mode", "logprobs", "--max-tokens", 8, url=url, prompts=p("lp.jsonl"))
    ok(rc == 2 and "HTTP 400" in err and "log-probabilities" in err,
       "llama-server with --wm-key refuses log-probabilities: a clear error", err)
    pr.terminate()
    pr.wait()

kill_all()
print(f"[==========] {passed + failed} test(s) run.")
print(f"[  PASSED  ] {passed} test(s).")
if failed:
    print(f"[  FAILED  ] {failed} test(s).")
sys.exit(1 if failed else 0)
