#!/usr/bin/env python3
"""The watermarking llama-server tried as a hostile API client would.

    server_test.py SERVER WM_CLI TOKENIZER_JSON TINY_GGUF FAIL_SHIM_SO

Starts the real patched llama-server on the tiny random-weight model
(tiny_model.py, GPT-2's tokenizer) and checks, from the text and token ids
the server returns, that:
  - every sampling setting a request can make comes out watermarked
    (greedy, top-1, every truncation, mirostat, reordered and empty sampler
    lists, penalties, DRY, logit_bias, grammar, seeds, backend_sampling),
    and the settings that could undo the bias are refused with a 400 that
    names them;
  - log-probabilities are refused on every endpoint that offers them;
  - every endpoint (native /completion, /infill, /v1/completions,
    /v1/chat/completions, streamed and not) and speculative decoding
    answer watermarked;
  - one credential decides both authentication and the account (checked by
    naming the account from the answer's text), duplicate or conflicting
    credentials and unmapped keys get 401;
  - malformed JSON, a client that disconnects mid-stream and 32 concurrent
    requests leave the server serving, every answer detected;
  - a failure of the watermark (injected with FAIL_SHIM_SO) fails the
    request, is counted on /metrics and /health, and never yields text;
  - a selecting (gumbel) key is watermarked under greedy settings too;
  - synthetic speculative acceptance is refused at start-up;
  - the same server without --wm-key flags nothing (and serves logprobs).
Prints cmocka-style lines; exit status 1 if any check failed."""
import atexit
import http.client
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

SERVER, WM, TOKENIZER, MODEL, SHIM = sys.argv[1:6]
TMP = tempfile.mkdtemp(prefix="wm-server-test-")
VOCAB = 50257
N = 256            # tokens generated per answer
BAR = -6.0         # log10 p every answer must reach
passed = failed = 0
servers = []
atexit.register(lambda: ([s.proc.kill() for s in servers if s.proc.poll() is None],
                         shutil.rmtree(TMP, ignore_errors=True)))


def ok(cond, what, detail=""):
    global passed, failed
    if cond:
        passed += 1
        print(f"[       OK ] {what}{' (' + detail + ')' if detail else ''}", flush=True)
    else:
        failed += 1
        print(f"[  FAILED  ] {what}{': ' + detail if detail else ''}", flush=True)


def run(*args, inp=None):
    r = subprocess.run(args, input=inp, capture_output=True, text=True, timeout=300)
    return r.returncode, r.stdout, r.stderr


def keygen(name, *extra):
    path = os.path.join(TMP, name)
    rc, _, err = run(WM, "keygen", *extra, "-o", path)
    assert rc == 0, err
    return path


class Server:
    def __init__(self, *args, env=None, np_=4, ctx=4096):
        self.port = free_port()
        self.log = os.path.join(TMP, f"server-{self.port}.log")
        self.proc = subprocess.Popen(
            [SERVER, "-m", MODEL, "--port", str(self.port), "-c", str(ctx), "-np", str(np_), "--metrics", *args],
            stdout=open(self.log, "w"), stderr=subprocess.STDOUT, env={**os.environ, **(env or {})})
        servers.append(self)
        self.ready = False
        for _ in range(300):
            if self.proc.poll() is not None:
                return
            try:
                if self.request("GET", "/health")[0] == 200:
                    self.ready = True
                    return
            except OSError:
                pass
            time.sleep(0.1)

    def request(self, method, path, body=None, headers=(), timeout=120):
        """One request; headers is a list of (name, value), duplicates kept."""
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            c.putrequest(method, path)
            data = body if isinstance(body, (bytes, type(None))) else json.dumps(body).encode()
            for k, v in headers:
                c.putheader(k, v)
            if data is not None:
                c.putheader("Content-Type", "application/json")
                c.putheader("Content-Length", str(len(data)))
            c.endheaders(data)
            r = c.getresponse()
            return r.status, r.read()
        finally:
            c.close()

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return -9

    def log_text(self):
        return open(self.log, errors="replace").read()


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def bearer(key):
    return [("Authorization", "Bearer " + key)]


def completion(srv, extra, key="key-alice", headers=None):
    """Native /completion: (status, token ids or error text)."""
    body = {"prompt": "In the beginning", "n_predict": N, "return_tokens": True, **extra}
    st, raw = srv.request("POST", "/completion", body, bearer(key) if headers is None else headers)
    if st != 200:
        return st, raw.decode(errors="replace")
    return st, json.loads(raw)["tokens"]


def detect_ids(key, docs, *extra):
    path = os.path.join(TMP, f"ids-{random.random()}.txt")
    with open(path, "w") as f:
        for d in docs:
            f.write(" ".join(map(str, d)) + "\n")
    rc, out, err = run(WM, "detect", "--key", key, "--ids", "--vocab", str(VOCAB), "--json", *extra, path)
    if rc not in (0, 1):
        raise RuntimeError(err)
    return [json.loads(line) for line in out.splitlines()]


def detect_text(key, texts):
    path = os.path.join(TMP, f"text-{random.random()}.jsonl")
    with open(path, "w") as f:
        for t in texts:
            f.write(json.dumps({"text": t}) + "\n")
    rc, out, err = run(WM, "detect", "--key", key, "--tokenizer", TOKENIZER, "--jsonl", "--lossy", "--json", path)
    if rc not in (0, 1):
        raise RuntimeError(err)
    return [json.loads(line) for line in out.splitlines()]


def named_accounts(key, ids, accounts_file):
    r = [x for x in detect_ids(key, [ids], "--accounts", accounts_file) if x.get("source") == "attribution"]
    return [a["account"] for a in r[0]["top"] if a["named"]]


def fmt(r):
    return f"log10 p {r['log10_p']:.1f}, green {r.get('green_fraction', float('nan')):.2f} of {r['scored']}"


def sse_text(raw, field):
    """Concatenated text of an SSE stream; field picks it from each event."""
    out, done = [], False
    for line in raw.decode(errors="replace").splitlines():
        if not line.startswith("data: "):
            continue
        if line == "data: [DONE]":
            done = True
            continue
        ev = json.loads(line[6:])
        if "error" in ev:
            raise RuntimeError(json.dumps(ev["error"]))
        out.append(field(ev) or "")
    return "".join(out), done


# ---------------------------------------------------------------------------
key = keygen("k.wmkey", "--account-delta", "2")
accounts = os.path.join(TMP, "accounts.txt")
with open(accounts, "w") as f:
    f.write("# API key, account id\nkey-alice 1001\nkey-bob 1002\n")
ids_file = os.path.join(TMP, "ids.txt")
with open(ids_file, "w") as f:
    f.write("1001\n1002\n")

srv = Server("--wm-key", key, "--wm-accounts", accounts, "--api-key", "key-plain")
ok(srv.ready, "server starts with --wm-key, --wm-accounts and --api-key")
if not srv.ready:
    print(srv.log_text()[-3000:])
    sys.exit(1)
ok("libwm: watermarking every completion with key" in srv.log_text(), "server names the key")

# 1. every sampling setting a request can make is watermarked
settings = {
    "server defaults": {},
    "temperature 0 (greedy)": {"temperature": 0},
    "temperature -1": {"temperature": -1},
    "top_k 1": {"top_k": 1},
    "top_p 0": {"top_p": 0},
    "min_p 1": {"min_p": 1},
    "top_n_sigma 0.01": {"top_n_sigma": 0.01},
    "mirostat 1": {"mirostat": 1},
    "mirostat 2": {"mirostat": 2},
    "mirostat 2, temperature 0": {"mirostat": 2, "temperature": 0},
    "samplers []": {"samplers": []},
    "samplers [temperature, top_k] at temperature 0": {"samplers": ["temperature", "top_k"], "temperature": 0},
    "samplers 'kt' (chars)": {"samplers": "kt", "top_k": 1},
    "samplers [penalties, dry, min_p]": {"samplers": ["penalties", "dry", "min_p"], "min_p": 1},
    "penalties": {"repeat_penalty": 1.5, "presence_penalty": 1.0, "frequency_penalty": 1.0, "temperature": 0},
    "DRY": {"dry_multiplier": 0.8, "temperature": 0},
    "logit_bias": {"logit_bias": [[262, 1.0], [11, -100]]},
    "grammar": {"grammar": 'root ::= [a-z ]+', "temperature": 0},
    "seed 42": {"seed": 42},
    "backend_sampling": {"backend_sampling": True, "temperature": 0},
    "dynatemp": {"dynatemp_range": 0.5, "temperature": 0.7},
    "typical_p 1 and xtc_probability 0 (off)": {"typical_p": 1.0, "xtc_probability": 0.0, "temperature": 0},
}
for name, extra in settings.items():
    st, ids = completion(srv, extra)
    if st != 200:
        ok(False, f"{name}: watermarked", f"HTTP {st} {ids[:200]}")
        continue
    r = detect_ids(key, [ids])[0]
    ok(r["log10_p"] < BAR, f"{name}: watermarked", fmt(r))

# 2. settings that can undo the bias, and log-probabilities, are refused by name
refused = [
    ("/completion", {"typical_p": 1e-4}, "typical_p"),
    ("/completion", {"xtc_probability": 1, "xtc_threshold": 0}, "xtc_probability"),
    ("/completion", {"samplers": ["adaptive_p"], "adaptive_target": 0.5}, "adaptive_p"),
    ("/completion", {"samplers": ["infill"]}, "infill"),
    ("/completion", {"n_probs": 20}, "n_probs"),
    ("/completion", {"n_probs": 1, "post_sampling_probs": True}, "n_probs"),
    ("/v1/completions", {"logprobs": 5}, "logprobs"),
    ("/v1/chat/completions", {"logprobs": True, "top_logprobs": 20}, "top_logprobs"),
    ("/v1/chat/completions", {"logprobs": True}, "logprobs"),
]
for path, extra, word in refused:
    body = {"prompt": "In the beginning", "max_tokens": 8, **extra}
    if "chat" in path:
        body = {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 8, **extra}
    st, raw = srv.request("POST", path, body, bearer("key-alice"))
    msg = raw.decode(errors="replace")
    ok(st == 400 and "libwm" in msg and word in msg, f"{path} {json.dumps(extra)} refused",
       f"HTTP {st} {msg[:160]}")

# 3. every endpoint, streamed and not
texts = {}
st, raw = srv.request("POST", "/v1/completions", {"prompt": "And God said", "max_tokens": N}, bearer("key-bob"))
texts["/v1/completions"] = json.loads(raw)["choices"][0]["text"] if st == 200 else None
st, raw = srv.request("POST", "/v1/completions", {"prompt": "And God said", "max_tokens": N, "stream": True,
                                                  "temperature": 0}, bearer("key-bob"))
texts["/v1/completions stream, greedy"] = sse_text(raw, lambda e: e["choices"][0].get("text"))[0] if st == 200 else None
chat = {"messages": [{"role": "user", "content": "Tell me a story"}], "max_tokens": N}
st, raw = srv.request("POST", "/v1/chat/completions", chat, bearer("key-bob"))
texts["/v1/chat/completions"] = json.loads(raw)["choices"][0]["message"]["content"] if st == 200 else None
st, raw = srv.request("POST", "/v1/chat/completions", {**chat, "stream": True, "top_k": 1}, bearer("key-bob"))
texts["/v1/chat/completions stream, top_k 1"] = \
    sse_text(raw, lambda e: e["choices"][0]["delta"].get("content"))[0] if st == 200 else None
st, raw = srv.request("POST", "/completion", {"prompt": "In the beginning", "n_predict": N, "stream": True},
                      bearer("key-bob"))
texts["/completion stream"] = sse_text(raw, lambda e: e.get("content"))[0] if st == 200 else None
st, raw = srv.request("POST", "/infill", {"input_prefix": "def f(x):\n", "input_suffix": "\n    return y\n",
                                          "n_predict": N, "temperature": 0}, bearer("key-bob"))
texts["/infill, greedy"] = json.loads(raw)["content"] if st == 200 else None
for name, t in texts.items():
    if t is None:
        ok(False, f"{name}: answers watermarked")
        continue
    r = detect_text(key, [t])[0]
    ok(r["log10_p"] < BAR, f"{name}: text watermarked", fmt(r))

# 4. one credential decides authentication and the account
auth_cases = [
    ("Bearer key-alice", [("Authorization", "Bearer key-alice")], 200, 1001),
    ("X-Api-Key key-bob", [("X-Api-Key", "key-bob")], 200, 1002),
    ("Authorization without Bearer (as llama.cpp accepts)", [("Authorization", "key-alice")], 200, 1001),
    ("Bearer <bad> + valid X-Api-Key", [("Authorization", "Bearer nope"), ("X-Api-Key", "key-alice")], 401, None),
    ("valid Bearer + another valid X-Api-Key", [("Authorization", "Bearer key-alice"), ("X-Api-Key", "key-bob")], 401, None),
    ("two Authorization headers", [("Authorization", "Bearer key-alice"), ("Authorization", "Bearer key-bob")], 401, None),
    ("Authorization and authorization", [("authorization", "Bearer key-bob"), ("Authorization", "Bearer key-alice")], 401, None),
    ("the same key twice", [("Authorization", "Bearer key-alice"), ("Authorization", "Bearer key-alice")], 401, None),
    ("--api-key key with no account", [("Authorization", "Bearer key-plain")], 401, None),
    ("unknown key", [("Authorization", "Bearer key-carol")], 401, None),
    ("no credential", [], 401, None),
]
for name, hdrs, want, account in auth_cases:
    st, ids = completion(srv, {}, headers=hdrs)
    if want != 200 or st != 200:
        ok(st == want, f"auth, {name}: HTTP {want}", f"HTTP {st}")
        continue
    named = named_accounts(key, ids, ids_file)
    ok(named == [account], f"auth, {name}: HTTP 200, answer carries account {account}", f"named {named}")
for path in ("/v1/chat/completions", "/v1/completions", "/infill", "/v1/messages"):
    st, _ = srv.request("POST", path, {"prompt": "x", "max_tokens": 4}, [("Authorization", "Bearer key-plain")])
    ok(st == 401, f"auth, --api-key key with no account on {path}: HTTP 401", f"HTTP {st}")

# 5. hostile clients leave the server serving
st, raw = srv.request("POST", "/completion", b'{"prompt": "x", "n_predict": ', bearer("key-alice"))
ok(400 <= st < 500, "malformed JSON: a 4xx", f"HTTP {st}")
s = socket.create_connection(("127.0.0.1", srv.port))
body = json.dumps({"prompt": "In the beginning", "n_predict": 400, "stream": True}).encode()
s.sendall(b"POST /completion HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer key-alice\r\n"
          b"Content-Type: application/json\r\nContent-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
got = s.recv(4096)
s.close()
st, ids = completion(srv, {})
ok(b"200" in got and st == 200 and detect_ids(key, [ids])[0]["log10_p"] < BAR,
   "a client that disconnects mid-stream: the next answer is served and watermarked")

results = [None] * 32


def one(i):
    try:
        results[i] = completion(srv, {"prompt": f"Verse {i}:", "n_predict": 128, "seed": i},
                                key=("key-alice", "key-bob")[i % 2])
    except Exception as e:  # noqa: BLE001 (reported below)
        results[i] = (0, repr(e))


threads = [threading.Thread(target=one, args=(i,)) for i in range(32)]
t0 = time.time()
for t in threads:
    t.start()
for t in threads:
    t.join()
good = [ids for st, ids in results if st == 200]
rs = detect_ids(key, good) if good else []
worst = max((r["log10_p"] for r in rs), default=0.0)
ok(len(good) == 32 and all(r["log10_p"] < BAR for r in rs),
   "32 concurrent requests: all answered and watermarked",
   f"{len(good)}/32 answered in {time.time() - t0:.1f} s, worst log10 p {worst:.1f}")
st, _ = srv.request("GET", "/health")
ok(st == 200 and srv.proc.poll() is None, "server still serving after the hostile clients")
st, raw = srv.request("GET", "/metrics", headers=bearer("key-alice"))
ok(st == 200 and b"llamacpp:libwm_failures_total 0" in raw, "/metrics: no watermark failure counted")
ok(srv.stop() in (0, -15, 143), "server shuts down cleanly")

# 6. a failure of the watermark fails the request, is counted, and lets nothing out
flag = os.path.join(TMP, "fail-now")
srv = Server("--wm-key", key, env={"LD_PRELOAD": SHIM, "WM_FAIL_FILE": flag})
st, ids = completion(srv, {})
ok(st == 200 and detect_ids(key, [ids])[0]["log10_p"] < BAR, "with the fault shim idle: watermarked")
open(flag, "w").close()
st, err = completion(srv, {})
ok(st == 500 and "libwm: the watermark failed" in err, "an injected failure fails the request (HTTP 500)",
   f"HTTP {st} {str(err)[:120]}")
st, raw = srv.request("POST", "/completion", {"prompt": "x", "n_predict": 32, "stream": True})
text, _ = "", None
try:
    text, _ = sse_text(raw, lambda e: e.get("content"))
    streamed_error = False
except RuntimeError as e:
    streamed_error = "libwm: the watermark failed" in str(e)
ok(streamed_error and text == "", "streamed: an error event, no text")
st, raw = srv.request("GET", "/metrics")
count = [int(float(l.split()[-1])) for l in raw.decode().splitlines() if l.startswith("llamacpp:libwm_failures_total")]
ok(count and count[0] >= 2, "/metrics counts the failures", f"{count}")
st, raw = srv.request("GET", "/health")
ok(json.loads(raw).get("libwm_failures", 0) >= 2, "/health counts the failures", raw.decode())
os.remove(flag)
st, ids = completion(srv, {})
ok(st == 200 and detect_ids(key, [ids])[0]["log10_p"] < BAR, "after the fault: served and watermarked again")
srv.stop()

# 7. speculative decoding (n-gram drafts, verified by the watermarked sampler)
srv = Server("--wm-key", key, "--spec-type", "ngram-simple", np_=1, ctx=1024)
st, ids = completion(srv, {"prompt": "a b c a b c a b c a b c", "temperature": 0}) if srv.ready else (0, [])
r = detect_ids(key, [ids])[0] if st == 200 else {"log10_p": 0, "scored": 0}
ok(st == 200 and r["log10_p"] < BAR, "speculative decoding (ngram-simple), greedy: watermarked", fmt(r) if st == 200 else srv.log_text()[-500:])
srv.stop()
srv = Server("--wm-key", key, "--spec-type", "ngram-simple", "--spec-synth-len", "2", np_=1, ctx=1024)
ok(not srv.ready and "synthetic speculative acceptance" in srv.log_text(),
   "synthetic speculative acceptance is refused at start-up with --wm-key")
if srv.ready:
    srv.stop()

# 8. a selecting scheme under greedy settings
gkey = keygen("g.wmkey", "--scheme", "gumbel", "--context-width", "2")
srv = Server("--wm-key", gkey)
for name, extra in {"temperature 0": {"temperature": 0}, "top_k 1": {"top_k": 1}, "defaults": {}}.items():
    st, ids = completion(srv, extra)
    r = detect_ids(gkey, [ids])[0] if st == 200 else {"log10_p": 0}
    ok(st == 200 and r["log10_p"] < BAR, f"gumbel key, {name}: watermarked", f"log10 p {r['log10_p']:.1f}")
srv.stop()

# 9. the same server without --wm-key: nothing flagged, logprobs served
srv = Server()
docs = [completion(srv, {"seed": i}, headers=[])[1] for i in range(6)]
rs = detect_ids(key, docs)
ok(all(r["log10_p"] > -3 for r in rs), "without --wm-key nothing is flagged",
   f"min log10 p {min(r['log10_p'] for r in rs):.2f}")
st, raw = srv.request("POST", "/completion", {"prompt": "x", "n_predict": 4, "n_probs": 5})
ok(st == 200 and b"completion_probabilities" in raw, "without --wm-key log-probabilities are served")
srv.stop()

print(f"[  PASSED  ] {passed} test(s).")
if failed:
    print(f"[  FAILED  ] {failed} test(s).")
sys.exit(1 if failed else 0)
