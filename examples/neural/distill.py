#!/usr/bin/env python3
"""The neural distillation demo, through a real API.

A GPT teacher trained here on half the King James Bible is served by
llama-server with libwm's watermark (--wm-key, --wm-accounts).  Proxy
accounts harvest its answers over /v1/completions, concurrently.  Neural
students (another size, pretrained on the other half of the KJV) are
fine-tuned on mixes with 0..100% harvested watermarked answers (the rest
from the same teacher served without the watermark), answer fresh prompts,
and `wm detect --corpus` scores each.

    distill.py --out DIR --wm WM --server LLAMA_SERVER --gguf-py DIR --cache DIR [--reduced]

Writes DIR/results.csv, results.md, radioactivity.png, teacher.json,
server-bench.jsonl and the corpora; prints the table.  --reduced is the
test suite's version (small models, 2 shares), and exits 1 if a bar is missed."""
import argparse
import copy
import csv
import json
import math
import os
import secrets
import statistics
import subprocess
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gpt  # noqa: E402
import kjv  # noqa: E402
from kjv import log  # noqa: E402
from server import Server, endpoint_answers, harvest  # noqa: E402

FULL = dict(teacher=kjv.TEACHER, student=kjv.STUDENT, n_harvest=2000, n_student=2000, n_tokens=128,
            shares=[0, 1, 5, 10, 25, 100], ft_steps=150, ft_lr=2e-3, accounts=4, null_keys=10)
REDUCED = dict(teacher=dict(kjv.TEACHER, n_embd=128, n_layer=2, n_head=4, steps=120),
               student=dict(kjv.STUDENT, n_embd=96, n_layer=2, n_head=4, steps=60),
               n_harvest=240, n_student=300, n_tokens=96, shares=[0, 100], ft_steps=60, ft_lr=3e-3,
               accounts=2, null_keys=5)


def run(args, **kw):
    p = subprocess.run(args, capture_output=True, text=True, **kw)
    if p.returncode not in (0,):
        raise RuntimeError(f"{' '.join(args[:2])}: exit {p.returncode}: {p.stderr.strip()[:500]}")
    return p.stdout


class Demo:
    def __init__(self, a):
        self.a, self.cfg = a, dict(REDUCED if a.reduced else FULL)
        for k in ("shares", "ft_steps", "n_harvest"):  # settings to explore what moves the result
            if getattr(a, k) is not None:
                self.cfg[k] = getattr(a, k)
        self.out = a.out
        os.makedirs(self.out, exist_ok=True)
        torch.set_num_threads(os.cpu_count() or 2)
        self.world = kjv.World(a.cache)
        self.tok = self.world.tok_path
        self.port = a.port or 20000 + secrets.randbelow(20000)
        self.t0 = time.time()

    def path(self, name):
        return os.path.join(self.out, name)

    def step(self, msg):
        log(f"[{time.time() - self.t0:6.0f} s] {msg}")

    def wm(self, *args):
        return run([self.a.wm, *args])

    # -- 1. teacher -------------------------------------------------------
    def teacher(self):
        self.step("teacher")
        c = self.cfg
        self.tmodel, self.tinfo = self.world.model("teacher" + ("-reduced" if self.a.reduced else ""),
                                                   c["teacher"], 0, seed=1)
        self.gguf = os.path.join(self.a.cache, f"teacher-{self.tinfo['stamp']}.gguf")
        if not os.path.exists(self.gguf):
            sys.path.insert(0, self.a.gguf_py)
            import gguf
            gpt.write_gguf(gguf, self.tmodel, self.world.tokens, self.world.merges, self.gguf + ".tmp",
                           "libwm-kjv-teacher")
            os.replace(self.gguf + ".tmp", self.gguf)
        log(f"  teacher: {self.tinfo['config']}, {self.tinfo['parameters']:,} parameters, validation loss "
            f"{self.tinfo['val_loss']:.3f}, {os.path.getsize(self.gguf) / 1e6:.1f} MB GGUF")

    # -- 2. the provider's server, harvested through accounts -------------
    def harvest(self):
        c = self.cfg
        self.key = self.path("teacher.wmkey")
        self.wm("keygen", "--tokenizer", self.tok, *self.a.keygen.split(), "-o", self.key)
        self.accounts = [(secrets.token_hex(16), 1001 + i) for i in range(c["accounts"])]
        acc = self.path("accounts.txt")
        fd = os.open(acc, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write("# API key, account id\n" + "".join(f"{k} {i}\n" for k, i in self.accounts))
        prompts = self.world.prompts(c["n_harvest"], seed=11)
        self.tprompts = [self.world.codec.decode(p) for p in prompts]
        n = c["n_harvest"]
        bench = []
        for name, extra in (("plain", ("--api-key", "plain-client")),
                            ("watermarked", ("--wm-key", self.key, "--wm-accounts", acc))):
            self.step(f"llama-server {name}: {n} answers of {c['n_tokens']} tokens over /v1/completions")
            with Server(self.a.server, self.gguf, self.port, self.path(f"server-{name}.log"), extra=extra) as s:
                keys = ["plain-client"] * n if name == "plain" else [self.accounts[i % len(self.accounts)][0]
                                                                       for i in range(n)]
                jobs = [(keys[i], self.tprompts[i], 1000 + i) for i in range(n)]
                for conc in (1, 8):  # throughput, same server, same run
                    m = min(n, 24 if conc == 1 else 64)
                    _, secs, toks = harvest(self.port, jobs[:m], c["n_tokens"], conc, f"bench {conc}")
                    bench.append(dict(bench="llama-server", model=self.tinfo["config"], watermark=name,
                                      concurrency=conc, requests=m, tokens=toks, seconds=round(secs, 3),
                                      tokens_per_s=round(toks / secs, 1)))
                if name != "plain":
                    self.endpoints(jobs)
                answers, secs, toks = harvest(self.port, jobs, c["n_tokens"], 8, name)
                log(f"  {name}: {toks:,} tokens in {secs:.0f} s ({toks / secs:.0f} tokens/s, 8 concurrent)")
                rc = s.stop()
                if rc not in (0, -15, 143):
                    raise RuntimeError(f"llama-server {name} exited {rc}")
            with open(self.path(f"teacher_{'wm' if name != 'plain' else 'plain'}.jsonl"), "w") as f:
                for i, t in enumerate(answers):
                    acct = 0 if name == "plain" else self.accounts[i % len(self.accounts)][1]
                    f.write(json.dumps(dict(prompt=self.tprompts[i], text=t, account=acct)) + "\n")
            setattr(self, f"ans_{'wm' if name != 'plain' else 'plain'}", answers)
        for b in bench:
            if b["watermark"] == "watermarked":
                base = next(x for x in bench if x["watermark"] == "plain" and x["concurrency"] == b["concurrency"])
                b["ratio_to_plain"] = round(b["tokens_per_s"] / base["tokens_per_s"], 3)
        with open(self.path("server-bench.jsonl"), "w") as f:
            f.writelines(json.dumps(b) + "\n" for b in bench)

    def endpoints(self, jobs):
        """Every OpenAI-style endpoint, streamed or not, through every account, must watermark:
        each answer is detected on its own (p < 1e-3) from its text."""
        f = self.path("endpoints.jsonl")
        with open(f, "w") as fo:
            for i, (key, prompt, seed) in enumerate(jobs[:len(self.accounts)]):
                for way, text in endpoint_answers(self.port, key, prompt, self.cfg["n_tokens"], seed).items():
                    fo.write(json.dumps(dict(way=way, account=self.accounts[i][1], text=text)) + "\n")
        r = [json.loads(x) for x in self.wm("detect", "--key", self.key, "--tokenizer", self.tok, "--jsonl",
                                             "--json", f).splitlines()]
        self.endpoint_ok = sum(x["watermarked"] for x in r), len(r)
        log(f"  endpoints: {self.endpoint_ok[0]}/{self.endpoint_ok[1]} answers detected (p < 1e-3) over "
            "/v1/completions and /v1/chat/completions, streamed and not, every account")

    def teacher_report(self):
        self.step("teacher answers: perplexity (unwatermarked teacher) and single-answer detection")
        enc, k = self.world.codec.encode, min(300, len(self.ans_wm))
        pids = [enc(p) for p in self.tprompts[:k]]
        ppl = {n: math.exp(gpt.answer_nll(self.tmodel, pids, [enc(a) for a in getattr(self, "ans_" + n)[:k]]))
               for n in ("plain", "wm")}
        det = {}
        for n in ("plain", "wm"):
            r = [json.loads(x) for x in self.wm("detect", "--key", self.key, "--tokenizer", self.tok, "--jsonl",
                                                 "--prompt-field", "prompt", "--json",
                                                 self.path(f"teacher_{n}.jsonl")).splitlines()]
            det[n] = dict(detected=sum(x["watermarked"] for x in r) / len(r),
                          median_log10_p=statistics.median(x["log10_p"] for x in r),
                          mean_scored=statistics.mean(x["scored"] for x in r))
        self.tstats = dict(model=self.tinfo, perplexity=ppl, detection=det)
        json.dump(self.tstats, open(self.path("teacher.json"), "w"), indent=1)
        log(f"  perplexity plain {ppl['plain']:.2f}, watermarked {ppl['wm']:.2f}; answers detected at p < 1e-3: "
            f"watermarked {det['wm']['detected']:.1%} (median log10 p {det['wm']['median_log10_p']:.1f}, "
            f"{det['wm']['mean_scored']:.0f} tuples), plain {det['plain']['detected']:.1%}")

    # -- 3. students --------------------------------------------------------
    def students(self):
        c, w = self.cfg, self.world
        self.step("student base: pretrained on the other half of the KJV")
        base, binfo = w.model("student-base" + ("-reduced" if self.a.reduced else ""), c["student"], 1, seed=2)
        log(f"  student: {binfo['config']}, {binfo['parameters']:,} parameters, pretraining loss "
            f"{binfo['train_loss']:.3f} ({binfo['tokens_seen']:,} tokens), validation {binfo['val_loss']:.3f}")
        nl = w.codec.encode("\n")
        docs = {n: [w.codec.encode(p) + w.codec.encode(a) + nl for p, a in zip(self.tprompts, getattr(self, "ans_" + n))]
                for n in ("plain", "wm")}
        fresh = w.prompts(c["n_student"] + c["n_harvest"], seed=23)[c["n_harvest"]:]
        self.rows = []
        for share in c["shares"]:
            n_wm = round(share / 100 * c["n_harvest"])
            stream = np.array([t for d in docs["wm"][:n_wm] + docs["plain"][n_wm:] for t in d], dtype=np.int32)
            self.step(f"student {share}%: fine-tuning on {len(stream):,} tokens ({n_wm} watermarked answers)")
            m = copy.deepcopy(base)
            loss, seen = gpt.train(m, stream, c["ft_steps"], c["ft_lr"], 24, 128, seed=100 + share, warmup=10,
                                   log=lambda i, n, l, t: log(f"  student {share}%: step {i}/{n}, loss {l:.3f}, {t:.0f} s"))
            torch.save(m.state_dict(), self.path(f"student_{share:03d}.pt"))  # for open-weight audits
            self.step(f"student {share}%: {c['n_student']} answers")
            ans = gpt.sample(m, fresh, c["n_tokens"], seed=7 + share, banned=[w.eos])
            f = self.path(f"student_{share:03d}.jsonl")
            with open(f, "w") as fo:
                for p, a in zip(fresh, ans):
                    fo.write(json.dumps(dict(prompt=w.codec.decode(p), text=w.codec.decode(a))) + "\n")
            self.rows.append(dict(share=share, ft_loss=loss, ft_tokens=seen, pretrain_tokens=binfo["tokens_seen"],
                                  **self.detect(f)))
            r = self.rows[-1]
            log(f"  student {share}%: loss {loss:.3f}; {r['tuples']:,} tuples, green {r['green']:.4f}, "
                f"log10 p {r['log10_p']:.2f}; with --filter {r['f_tuples']:,} tuples, log10 p {r['f_log10_p']:.2f}")

    def detect(self, f):
        def one(*extra):
            out = self.wm("detect", "--key", self.key, "--tokenizer", self.tok, "--jsonl", "--prompt-field", "prompt",
                          "--corpus", "--json", *extra, f)
            return [x for x in map(json.loads, out.splitlines()) if x.get("corpus")][0]
        a, b = one(), one("--filter", self.path("teacher_wm.jsonl"))
        return dict(tuples=a["scored"], green=a["green_fraction"], log10_p=a["log10_p"],
                    f_tuples=b["scored"], f_green=b["green_fraction"], f_log10_p=b["log10_p"])

    def null_keys(self):
        """The most watermarked student under keys that never touched it: p must be uniform."""
        c = self.cfg
        keys = []
        for i in range(c["null_keys"]):
            k = self.path(f"null-{i}.wmkey")
            self.wm("keygen", "--tokenizer", self.tok, "-o", k)
            keys.append(k)
        f = self.path(f"student_{max(c['shares']):03d}.jsonl")
        args = ["detect", "--tokenizer", self.tok, "--jsonl", "--prompt-field", "prompt", "--corpus", "--json"]
        for k in keys:
            args += ["--key", k]
        r = [x for x in map(json.loads, self.wm(*args, f).splitlines()) if x.get("corpus") and not x.get("family")]
        self.null = [x["log10_p"] for x in r]
        for k in keys:
            os.unlink(k)

    # -- 4. report -----------------------------------------------------------
    def report(self):
        cols = ["share", "ft_loss", "ft_tokens", "tuples", "green", "log10_p", "f_tuples", "f_green", "f_log10_p"]
        with open(self.path("results.csv"), "w", newline="") as f:
            wr = csv.DictWriter(f, cols)
            wr.writeheader()
            for r in self.rows:
                wr.writerow({k: r[k] for k in cols})
        v = lambda lp: "**watermarked**" if lp < -3 else "clean"  # noqa: E731
        md = ["| harvested share | fine-tune loss | tokens seen | unique tuples | green fraction | log10 p | verdict "
              "| --filter: tuples | green | log10 p | verdict |", "|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|---|"]
        for r in self.rows:
            md.append(f"| {r['share']}% | {r['ft_loss']:.3f} | {r['ft_tokens']:,} | {r['tuples']:,} | {r['green']:.4f} | "
                      f"{r['log10_p']:.2f} | {v(r['log10_p'])} | {r['f_tuples']:,} | {r['f_green']:.4f} | "
                      f"{r['f_log10_p']:.2f} | {v(r['f_log10_p'])} |")
        t = self.tstats
        md += ["", f"Teacher: {t['model']['config']}, validation loss {t['model']['val_loss']:.3f}; perplexity of its "
               f"answers (unwatermarked teacher) {t['perplexity']['plain']:.2f} plain, {t['perplexity']['wm']:.2f} "
               f"watermarked; single answers detected (p < 1e-3): {t['detection']['wm']['detected']:.1%} watermarked, "
               f"{t['detection']['plain']['detected']:.1%} plain; through every endpoint and account "
               f"{self.endpoint_ok[0]}/{self.endpoint_ok[1]}.",
               f"Null check: the {max(self.cfg['shares'])}% student under {len(self.null)} unrelated keys: log10 p "
               + ", ".join(f"{x:.2f}" for x in self.null)]
        open(self.path("results.md"), "w").write("\n".join(md) + "\n")
        print("\n".join(md))
        self.plot()

    def plot(self):
        """-log10 p on a log axis (a share's evidence is readable from 0.1 to 1000), shares as categories."""
        dat = self.path("plot.dat")
        with open(dat, "w") as f:
            for i, r in enumerate(self.rows):
                f.write(f"{i} \"{r['share']}%\" {max(-r['log10_p'], 0.01)} {max(-r['f_log10_p'], 0.01)}\n")
        gp = (f"set terminal pngcairo size 800,480; set output '{self.path('radioactivity.png')}';"
              "set logscale y; set yrange [0.01:*]; set grid ytics;"
              "set ylabel '-log10 p (corpus test, log scale)'; set xlabel 'watermarked share of harvested data';"
              "set key top left; set title 'Neural students distilled through llama-server + libwm';"
              f"plot '{dat}' using 1:3:xtic(2) with linespoints lw 2 title 'all tuples',"
              f"'' using 1:4 with linespoints lw 2 title '--filter (harvested contexts)',"
              "6 with lines dt 2 title 'p = 1e-6', 3 with lines dt 3 title 'p = 1e-3'")
        p = subprocess.run(["gnuplot", "-e", gp], capture_output=True, text=True)
        if p.returncode:
            log(f"plot: gnuplot failed ({p.stderr.strip()[:200]}); the table and CSV are complete")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    for a in ("--out", "--wm", "--server", "--gguf-py", "--cache"):
        ap.add_argument(a, required=True)
    ap.add_argument("--reduced", action="store_true")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--shares", type=lambda x: [int(v) for v in x.split(",")], help="e.g. 0,10,100")
    ap.add_argument("--ft-steps", type=int, help="fine-tuning steps per student")
    ap.add_argument("--n-harvest", type=int, help="answers harvested, per kind")
    ap.add_argument("--keygen", default="", help="extra wm keygen options, e.g. '--delta 4'")
    ap.add_argument("--attack", help="issue 26: after the students, run these attacks on this run's harvest "
                    "(attacks/run.py --from OUT): comma list of none, paraphrase, steal, wn; results in OUT/attacks")
    ap.add_argument("--wn-delta", default="1,2.5", help="WN strengths delta' (with --attack wn)")
    d = Demo(ap.parse_args())
    d.teacher()
    d.harvest()
    d.teacher_report()
    d.students()
    d.null_keys()
    d.report()
    log(f"demo: done in {time.time() - d.t0:.0f} s; everything is in {d.out}")
    if d.a.attack:
        cmd = [sys.executable, os.path.join(os.path.dirname(os.path.abspath(__file__)), "attacks", "run.py"),
               "--from", d.out, "--out", d.path("attacks"), "--cache", d.a.cache, "--attacks", d.a.attack,
               "--wn-delta", d.a.wn_delta, "--shares", ",".join(map(str, d.cfg["shares"]))]
        if subprocess.run(cmd + (["--reduced"] if d.a.reduced else [])).returncode:
            sys.exit(1)
    if d.a.reduced:
        lo, hi = d.rows[0], d.rows[-1]
        ok = lo["log10_p"] > -3 and hi["log10_p"] < -3 and min(d.null) > -3 and \
            d.tstats["detection"]["wm"]["detected"] > 0.9 and d.tstats["detection"]["plain"]["detected"] < 0.05 and \
            d.endpoint_ok[0] == d.endpoint_ok[1]
        print("reduced demo: " + ("bars met" if ok else "a bar is missed"))
        sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
