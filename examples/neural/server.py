"""llama-server as the provider's API, and the clients that harvest it.

Server: a context manager that starts the (libwm-patched) llama-server,
waits for /health, and stops it on exit or error.  harvest(): proxy
accounts send /v1/completions requests concurrently, each authenticated
with its own API key, and keep what comes back."""
import concurrent.futures
import http.client
import json
import os
import subprocess
import sys
import threading
import time


class Server:
    def __init__(self, binary, model, port, log_path, parallel=8, ctx_per_slot=192, extra=()):
        self.args = [binary, "-m", model, "--port", str(port), "-np", str(parallel),
                     "-c", str(parallel * ctx_per_slot), "-t", str(os.cpu_count() or 2), *extra]
        self.port, self.log_path, self.proc = port, log_path, None

    def __enter__(self):
        self.log = open(self.log_path, "w")
        self.proc = subprocess.Popen(self.args, stdout=self.log, stderr=subprocess.STDOUT)
        for _ in range(300):
            if self.proc.poll() is not None:
                raise RuntimeError(f"llama-server exited with {self.proc.returncode}; see {self.log_path}")
            try:
                c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2)
                c.request("GET", "/health")
                if c.getresponse().status == 200:
                    return self
            except OSError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"llama-server did not become healthy; see {self.log_path}")

    def __exit__(self, *exc):
        self.stop()

    def stop(self):
        """SIGTERM, then the exit status (0 or 143 is a clean shutdown)."""
        if self.proc is None:
            return None
        self.proc.terminate()
        try:
            rc = self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            rc = self.proc.wait()
        self.proc = None
        self.log.close()
        return rc


def post(port, path, body, api_key=None, timeout=300):
    """POST JSON; returns (HTTP status, parsed body or text)."""
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    h = {"Content-Type": "application/json"}
    if api_key:
        h["Authorization"] = f"Bearer {api_key}"
    c.request("POST", path, json.dumps(body), h)
    r = c.getresponse()
    data = r.read().decode("utf-8", "replace")
    c.close()
    try:
        return r.status, json.loads(data)
    except ValueError:
        return r.status, data


SAMPLING = dict(temperature=1.0, top_k=0, top_p=1.0, min_p=0.0, ignore_eos=True)


def harvest(port, jobs, n_tokens, concurrency=8, label="harvest"):
    """jobs: list of (api_key, prompt text, seed).  Returns (answers in job order, seconds,
    completion tokens).  Raises on any refused or malformed answer: a harvest is all or nothing."""
    done, lock, t0 = [0], threading.Lock(), time.time()

    def one(job):
        key, prompt, seed = job
        st, r = post(port, "/v1/completions", dict(prompt=prompt, max_tokens=n_tokens, seed=seed, **SAMPLING), key)
        if st != 200 or not isinstance(r, dict) or "choices" not in r:
            raise RuntimeError(f"{label}: HTTP {st}: {str(r)[:200]}")
        with lock:
            done[0] += 1
            if done[0] % max(1, len(jobs) // 10) == 0 or done[0] == len(jobs):
                el = time.time() - t0
                print(f"  {label}: {done[0]}/{len(jobs)} answers, {el:.0f} s", file=sys.stderr, flush=True)
        return r["choices"][0]["text"], r["usage"]["completion_tokens"]

    with concurrent.futures.ThreadPoolExecutor(concurrency) as ex:
        res = list(ex.map(one, jobs))
    return [t for t, _ in res], time.time() - t0, sum(n for _, n in res)


def stream_text(port, path, body, api_key):
    """A streamed (server-sent events) completion or chat answer, its chunks joined."""
    st, raw = post(port, path, dict(body, stream=True), api_key)
    if st != 200 or not isinstance(raw, str):
        raise RuntimeError(f"{path} stream: HTTP {st}: {str(raw)[:200]}")
    out = []
    for line in raw.splitlines():
        if line.startswith("data: ") and line[6:].strip() != "[DONE]":
            c = json.loads(line[6:])["choices"]
            if c:
                out.append(c[0].get("text") or (c[0].get("delta") or {}).get("content") or "")
    return "".join(out)


def endpoint_answers(port, api_key, prompt, n_tokens, seed):
    """The same prompt through the four OpenAI-style ways: /v1/completions and
    /v1/chat/completions, each streamed and not.  Returns {name: answer text}."""
    body = dict(max_tokens=n_tokens, seed=seed, **SAMPLING)
    msgs = [{"role": "user", "content": prompt}]
    st, r = post(port, "/v1/completions", dict(body, prompt=prompt), api_key)
    st2, r2 = post(port, "/v1/chat/completions", dict(body, messages=msgs), api_key)
    if st != 200 or st2 != 200:
        raise RuntimeError(f"endpoints: HTTP {st}, {st2}")
    return {"completions": r["choices"][0]["text"],
            "completions, streamed": stream_text(port, "/v1/completions", dict(body, prompt=prompt), api_key),
            "chat": r2["choices"][0]["message"]["content"],
            "chat, streamed": stream_text(port, "/v1/chat/completions", dict(body, messages=msgs), api_key)}
