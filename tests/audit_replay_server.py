#!/usr/bin/env python3
"""A local OpenAI-compatible suspect for tests/test_audit_api.py.

The suspect is a bigram language model over the GPT-2 vocabulary, trained
on the token ids given (--train: one line of space-separated ids each):
trained on watermarked text it is "radioactive", on clean text it is not.
It answers deterministically (the same request gives the same response):

  /v1/completions       text; logprobs=k: llama.cpp's layout
                        (logprobs.content[].{token, bytes, logprob,
                        top_logprobs}) or, with --legacy, vLLM/OpenAI's
                        (logprobs.tokens[], logprobs.top_logprobs[] dicts);
                        prompt_logprobs=k: vLLM's prompt log-probabilities
                        as vllm/entrypoints/openai/completion/serving.py
                        returns them at vLLM commit
                        cc139d8ea6ff4db984778a3e77e95e1d1c7f1362:
                        choices[0].prompt_logprobs = [None, {id: {logprob,
                        rank, decoded_token}}, ...] holding the top-k and the
                        prompt's own token whatever its rank, and
                        choices[0].prompt_token_ids (return_token_ids);
                        a prompt of token ids: one-token answers (prefix).
  /v1/chat/completions  message.content, logprobs.content[] as above.

Hostile behaviours, for successive requests (--hostile a,b,c: request 1
gets a, ...): 500, 503, 429 (Retry-After: 1), 429date (an HTTP date),
drop (close without answering), trunc (a body shorter than its
Content-Length), slow (sleep past the client's timeout), malformed (200,
not JSON), missing (200, no choices[0].text), noprobs (200, logprobs
null), badtok (top-k strings that are not one provider token), nulkey
(--legacy: a top-k key that decodes to U+0000, as vLLM keys a token of
byte 0; jansson refuses NUL in keys), ok.
--die-after N: the process exits abruptly when request N arrives.
--no-prompt-logprobs, --no-logprobs: those request fields are ignored (as
llama.cpp's server ignores prompt_logprobs; an API that gives answers only).
--mix FILE --eps E: the suspect is (1 - E) the --train bigram plus E the
bigram of FILE, mixed as distributions (a student = its base + a shift).
--text-ids FILE: JSON lines {"text", "ids"}: how the suspect tokenizes the
texts it is teacher-forced on (prompt_logprobs).
"""
import argparse
import email.utils
import hashlib
import http.server
import json
import math
import os
import socketserver
import sys
import threading
import time


def byte_decoder():
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("\xa1"), ord("\xac") + 1)) + \
        list(range(ord("\xae"), ord("\xff") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {chr(c): b for b, c in zip(bs, cs)}


def load_vocab(path):
    dec = byte_decoder()
    vocab = json.load(open(path, encoding="utf-8"))["model"]["vocab"]
    out = {}
    for piece, i in vocab.items():
        out[i] = bytes(dec[ch] for ch in piece)
    return out


def h64(*parts):
    return int.from_bytes(hashlib.sha256("\x1f".join(map(str, parts)).encode()).digest()[:8], "big")


class Model:
    def __init__(self, vocab, train):
        self.vocab = vocab
        self.V = max(vocab) + 1
        # tokens that are valid UTF-8 on their own: the generator uses only these
        # (and hold no U+0000: jansson cannot hold it in an object key, vLLM's legacy layout's keys)
        self.clean = sorted(i for i, b in vocab.items() if self._utf8(b) and b and b"\0" not in b)
        self.follow = {}
        self.mix = None
        for ids in train:
            for a, b in zip(ids, ids[1:]):
                d = self.follow.setdefault(a, {})
                d[b] = d.get(b, 0) + 1

    @staticmethod
    def _utf8(b):
        try:
            b.decode("utf-8")
            return True
        except UnicodeDecodeError:
            return False

    def probs(self, ctx):
        f = self.follow.get(ctx, {})
        total = sum(f.values())
        # mass 0.9 on the followers seen in training, 0.1 spread over 8 fallbacks
        fb = [self.clean[h64("fb", ctx, j) % len(self.clean)] for j in range(8)]
        p = {}
        for t, c in f.items():
            p[t] = p.get(t, 0) + 0.9 * c / total
        for t in fb:
            p[t] = p.get(t, 0) + (0.1 if total else 1.0) / 8
        if self.mix:  # (1 - eps) this model + eps the other: a student = its base plus a small shift
            m, eps = self.mix
            q = m.probs(ctx)
            p = {t: (1 - eps) * p.get(t, 0) + eps * q.get(t, 0) for t in set(p) | set(q)}
        return p

    def dist(self, ctx, k):
        """The k most likely next tokens after ctx, [(id, logprob)], and a
        function giving any token's (logprob, rank)."""
        p = self.probs(ctx)
        ranked = sorted(p.items(), key=lambda x: (-x[1], x[0]))
        rank = {t: r + 1 for r, (t, _) in enumerate(ranked)}

        def of(t):
            if t in p:
                return math.log(p[t]), rank[t]
            return math.log(1e-9), len(ranked) + 1 + (h64("r", t) % 1000)
        return [(t, math.log(q)) for t, q in ranked[:k]], of

    def sample(self, ctx, seed):
        top, _ = self.dist(ctx, 64)
        u = (h64("s", seed) % 10**9) / 1e9
        acc = 0
        for t, lp in top:
            acc += math.exp(lp)
            if u < acc:
                return t
        return top[-1][0]


def tok_str(b):
    return b.decode("utf-8", errors="replace")


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *a):
        pass

    def reply(self, code, obj=None, raw=None, headers=()):
        body = raw if raw is not None else json.dumps(obj).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        for k, v in headers:
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self):
        S = self.server
        n = int(self.headers.get("Content-Length", "0"))
        raw = self.rfile.read(n)
        with S.lock:
            S.count += 1
            r = S.count
            if S.auth is not None:
                S.auth_seen.add(self.headers.get("Authorization", ""))
        if S.die_after and r >= S.die_after:
            os._exit(3)
        beh = S.hostile[r - 1] if r - 1 < len(S.hostile) else "ok"
        if beh in ("500", "503"):
            return self.reply(int(beh), {"error": {"message": "synthetic " + beh}})
        if beh == "429":
            return self.reply(429, {"error": {"message": "slow down"}}, headers=[("Retry-After", "1")])
        if beh == "429date":
            when = email.utils.formatdate(time.time() + 1, usegmt=True)
            return self.reply(429, {"error": {"message": "slow down"}}, headers=[("Retry-After", when)])
        if beh == "drop":
            self.close_connection = True
            self.connection.shutdown(2)
            return
        if beh == "slow":
            time.sleep(S.slow)
            return self.reply(500, {"error": {"message": "too late"}})
        if beh == "malformed":
            return self.reply(200, raw=b'{"choices": [{"text": "unterminated')
        if beh == "missing":
            return self.reply(200, {"choices": [{"index": 0}]})
        if S.auth is not None and self.headers.get("Authorization") != "Bearer " + S.auth:
            return self.reply(401, {"error": {"message": "bad key"}})
        try:
            req = json.loads(raw)
        except ValueError:
            return self.reply(400, {"error": {"message": "bad json"}})
        chat = self.path.endswith("/chat/completions")
        try:
            out = self.answer(req, chat, beh)
        except KeyError as e:
            return self.reply(400, {"error": {"message": "unknown: %s" % e}})
        body = json.dumps(out).encode()
        if beh == "trunc":
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body[: len(body) // 2])
            self.wfile.flush()
            self.close_connection = True
            self.connection.shutdown(2)
            return
        self.reply(200, out)

    def entry(self, t, lp, beh):
        M = self.server.model
        b = M.vocab[t]
        if beh == "badtok":
            b = b + b"\xe2\x88\x91zz" + b  # several provider tokens
        return {"id": t, "token": tok_str(b), "bytes": list(b), "logprob": lp}

    def answer(self, req, chat, beh):
        S = self.server
        M = S.model
        k = 0
        if chat:
            prompt = req["messages"][-1]["content"]
            if req.get("logprobs"):
                k = int(req.get("top_logprobs", 0))
        else:
            prompt = req["prompt"]
            k = int(req.get("logprobs") or 0)
        pk = None if S.no_plp else req.get("prompt_logprobs")
        k = 0 if S.no_lp else k
        usage = {}
        if pk is not None:  # vLLM prompt log-probabilities
            ids = S.text_ids[prompt]
            rows = [None]
            for i in range(1, len(ids)):
                top, of = M.dist(ids[i - 1], int(pk))
                # as vLLM: the prompt token first, whatever its rank, then the top-k
                lp, rk = of(ids[i])
                row = {str(ids[i]): {"logprob": lp, "rank": rk, "decoded_token": tok_str(M.vocab[ids[i]])}}
                for r, (t, lp) in enumerate(top):
                    row[str(t)] = {"logprob": lp, "rank": r + 1, "decoded_token": tok_str(M.vocab[t])}
                rows.append(row)
            nxt = M.sample(ids[-1], prompt)
            choice = {"index": 0, "text": tok_str(M.vocab[nxt]), "logprobs": None, "finish_reason": "length",
                      "prompt_logprobs": rows, "prompt_token_ids": ids}
            usage = {"prompt_tokens": len(ids), "completion_tokens": 1}
            return {"id": "cmpl-x", "object": "text_completion", "choices": [choice], "usage": usage}
        if isinstance(prompt, list):  # token ids: prefix
            ctx, seed, n = (prompt[-1] if prompt else 0), json.dumps(prompt), 1
        else:
            ctx, seed, n = M.clean[h64("start", prompt) % len(M.clean)], prompt, int(req.get("max_tokens", 16))
        toks = []
        for step in range(n):
            t = M.sample(ctx, (seed, step, req.get("seed")))
            top, _ = M.dist(ctx, k) if k else ([], None)
            toks.append((t, top))
            ctx = t
        text = "".join(tok_str(M.vocab[t]) for t, _ in toks)
        usage = {"prompt_tokens": len(prompt) if isinstance(prompt, list) else len(prompt) // 4 + 1,
                 "completion_tokens": len(toks)}
        lp = None
        if k and beh != "noprobs":
            if S.legacy and not chat:
                lp = {"tokens": [tok_str(M.vocab[t]) for t, _ in toks],
                      "token_logprobs": [top[0][1] if top else 0.0 for _, top in toks],
                      "top_logprobs": [dict({self.entry(c, l, beh)["token"]: l for c, l in top},
                                            **({"\0": -30.0} if beh == "nulkey" else {})) for _, top in toks],
                      "text_offset": []}
            else:
                lp = {"content": [dict(self.entry(t, top[0][1], "ok"),
                                       top_logprobs=[self.entry(c, l, beh) for c, l in top]) for t, top in toks]}
        if chat:
            choice = {"index": 0, "message": {"role": "assistant", "content": text}, "logprobs": lp,
                      "finish_reason": "length"}
        else:
            choice = {"index": 0, "text": text, "logprobs": lp, "finish_reason": "length"}
        return {"id": "cmpl-x", "object": "text_completion", "choices": [choice], "usage": usage}


class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def handle_error(self, request, client_address):
        pass  # a client that gave up (timeouts) closes its end: expected here


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--tokenizer", required=True)
    ap.add_argument("--train", required=True)
    ap.add_argument("--text-ids")
    ap.add_argument("--port-file", required=True)
    ap.add_argument("--hostile", default="")
    ap.add_argument("--die-after", type=int, default=0)
    ap.add_argument("--slow", type=float, default=5.0)
    ap.add_argument("--legacy", action="store_true")
    ap.add_argument("--auth")
    ap.add_argument("--no-prompt-logprobs", action="store_true")  # llama.cpp-like: ignored
    ap.add_argument("--no-logprobs", action="store_true")  # an answers-only API: ignored
    ap.add_argument("--mix", help="ids FILE: the suspect is (1 - EPS) the --train bigram + EPS this one's")
    ap.add_argument("--eps", type=float, default=0.1)
    a = ap.parse_args()
    train = [[int(x) for x in line.split()] for line in open(a.train) if line.strip()]
    srv = Server(("127.0.0.1", 0), Handler)
    vocab = load_vocab(a.tokenizer)
    srv.model = Model(vocab, train)
    if a.mix:
        srv.model.mix = (Model(vocab, [[int(x) for x in line.split()] for line in open(a.mix) if line.strip()]), a.eps)
    srv.text_ids = {}
    if a.text_ids:
        for line in open(a.text_ids, encoding="utf-8"):
            o = json.loads(line)
            srv.text_ids[o["text"]] = o["ids"]
    srv.hostile = [h for h in a.hostile.split(",") if h]
    srv.die_after = a.die_after
    srv.slow = a.slow
    srv.legacy = a.legacy
    srv.auth = a.auth
    srv.no_plp, srv.no_lp = a.no_prompt_logprobs, a.no_logprobs
    srv.auth_seen = set()
    srv.count = 0
    srv.lock = threading.Lock()
    tmp = a.port_file + ".tmp"
    with open(tmp, "w") as f:
        f.write(str(srv.server_address[1]))
    os.rename(tmp, a.port_file)
    # A test that dies (an exception, SIGKILL) must not leave its servers running: an
    # orphan keeps the test's stdout open and meson waits on it until its timeout.
    parent = os.getppid()

    def orphaned():
        while os.getppid() == parent:
            time.sleep(0.5)
        os._exit(0)

    threading.Thread(target=orphaned, daemon=True).start()
    try:
        srv.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    sys.exit(main())
