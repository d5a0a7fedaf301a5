#!/usr/bin/env python3
"""llama-server throughput with and without libwm's watermark, with and
without an account layer: the same prompts, 1 and 8 concurrent
/v1/completions requests; servers alternate over REPEATS rounds and the
median is kept, so every variant sees the same machine state.  JSON lines on
stdout: tokens/s per variant, the ratio to plain measured in the same run,
the extra microseconds a generated token costs, and each round's ratio;
the variant "plain-again" (a second plain server, run right after the
first) is the A/A control, whose ratio shows what noise alone gives.

    bench_server.py LLAMA_SERVER MODEL.gguf WM [--tokenizer TOKENIZER.json]
                    [--repeats N] [--tokens N] [--requests 1:32,8:128] [--accounts]

--tokenizer binds the key to the model's tokenizer (the neural demo's
teacher); without it the key fits any vocabulary (bench/qwen_gguf.py's
model, whose padded vocabulary is larger than its tokenizer's).
--accounts adds a third variant: a key with an account layer
(--account-delta 1), each request embedding its account."""
import argparse
import json
import os
import secrets
import statistics
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "examples", "neural"))
from server import Server, harvest  # noqa: E402

ap = argparse.ArgumentParser()
ap.add_argument("server")
ap.add_argument("gguf")
ap.add_argument("wm")
ap.add_argument("--tokenizer")
ap.add_argument("--repeats", type=int, default=3)
ap.add_argument("--tokens", type=int, default=128)
ap.add_argument("--requests", default="1:32,8:128", help="concurrency:requests,...")
ap.add_argument("--accounts", action="store_true")
a = ap.parse_args()
REQUESTS = {int(c): int(n) for c, n in (x.split(":") for x in a.requests.split(","))}
tmp = tempfile.mkdtemp()
acc = os.path.join(tmp, "accounts.txt")
with open(os.open(acc, os.O_WRONLY | os.O_CREAT, 0o600), "w") as f:
    f.write("bench-key 1\n")


def keygen(name, *opts):
    path = os.path.join(tmp, name)
    bind = ("--tokenizer", a.tokenizer) if a.tokenizer else ()
    subprocess.run([a.wm, "keygen", *bind, *opts, "-o", path], check=True, capture_output=True)
    return path


# "plain-again", a second plain server run right after the first, is the
# A/A control: its ratio to plain is the noise and the order effect of this
# machine, the floor a watermarked ratio is read against.
variants = [("plain", ("--api-key", "bench-key")), ("plain-again", ("--api-key", "bench-key")),
            ("watermarked", ("--wm-key", keygen("k.wmkey"), "--wm-accounts", acc))]
if a.accounts:
    variants.append(("accounts", ("--wm-key", keygen("a.wmkey", "--account-delta", "1"), "--wm-accounts", acc)))
prompts = ["And it came to pass", "In the beginning God", "Blessed are the", "And the LORD said unto"]
port = 20000 + secrets.randbelow(20000)
rates = {}
for r in range(a.repeats):
    for name, extra in variants:
        with Server(a.server, a.gguf, port, os.path.join(tmp, "server.log"), ctx_per_slot=a.tokens + 64,
                    extra=extra):
            for conc, n in REQUESTS.items():
                jobs = [("bench-key", prompts[i % len(prompts)], i) for i in range(n)]
                _, secs, toks = harvest(port, jobs, a.tokens, conc, f"{name} x{conc} round {r + 1}")
                rates.setdefault((name, conc), []).append(toks / secs)
for conc in REQUESTS:
    p = statistics.median(rates[("plain", conc)])
    for name, _ in variants[1:]:
        w = statistics.median(rates[(name, conc)])
        rounds = [round(x / y, 4) for x, y in zip(rates[(name, conc)], rates[("plain", conc)])]
        print(json.dumps(dict(bench="llama_server", model=os.path.basename(a.gguf), variant=name, concurrency=conc,
                              requests=REQUESTS[conc], tokens=a.tokens, repeats=a.repeats,
                              plain_tokens_per_s=round(p, 2), watermarked_tokens_per_s=round(w, 2),
                              ratio=round(w / p, 4), extra_us_per_token=round(1e6 / w - 1e6 / p, 1),
                              round_ratios=rounds)))
