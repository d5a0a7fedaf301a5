#!/usr/bin/env python3
"""llama-server throughput with and without libwm's watermark: the neural
demo's cached teacher, the same prompts, 1 and 8 concurrent /v1/completions
requests; servers alternate over REPEATS rounds and the median is kept, so
both see the same machine state.  JSON lines on stdout (ratio: watermarked
over plain, measured in the same run).

    bench_server.py LLAMA_SERVER TEACHER.gguf WM TOKENIZER.json [REPEATS]"""
import json
import os
import secrets
import statistics
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "examples", "neural"))
from server import Server, harvest  # noqa: E402

server, gguf, wm, tok = sys.argv[1:5]
repeats = int(sys.argv[5]) if len(sys.argv) > 5 else 3
N_TOKENS, REQUESTS = 128, {1: 32, 8: 128}
tmp = tempfile.mkdtemp()
key, acc = os.path.join(tmp, "k.wmkey"), os.path.join(tmp, "accounts.txt")
subprocess.run([wm, "keygen", "--tokenizer", tok, "-o", key], check=True, capture_output=True)
with open(os.open(acc, os.O_WRONLY | os.O_CREAT, 0o600), "w") as f:
    f.write("bench-key 1\n")
prompts = ["And it came to pass", "In the beginning God", "Blessed are the", "And the LORD said unto"]
port = 20000 + secrets.randbelow(20000)
rates = {}
for r in range(repeats):
    for name, extra in (("plain", ("--api-key", "bench-key")), ("watermarked", ("--wm-key", key, "--wm-accounts", acc))):
        with Server(server, gguf, port, os.path.join(tmp, "server.log"), extra=extra):
            for conc, n in REQUESTS.items():
                jobs = [("bench-key", prompts[i % len(prompts)], i) for i in range(n)]
                _, secs, toks = harvest(port, jobs, N_TOKENS, conc, f"{name} x{conc} round {r + 1}")
                rates.setdefault((name, conc), []).append(toks / secs)
for conc in REQUESTS:
    p, w = (statistics.median(rates[(k, conc)]) for k in ("plain", "watermarked"))
    print(json.dumps(dict(bench="llama_server", model=os.path.basename(gguf), concurrency=conc, requests=REQUESTS[conc],
                          tokens=N_TOKENS, repeats=repeats, plain_tokens_per_s=round(p, 1),
                          watermarked_tokens_per_s=round(w, 1), ratio=round(w / p, 3))))
