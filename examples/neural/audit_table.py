#!/usr/bin/env python3
"""The `wm audit` real-run table (issue 25): a distill.py run's students,
each written as GGUF and served by the patched llama-server WITHOUT a
watermark key, audited through its API alone in the answers, logprobs and
prefix modes (prompt mode needs vLLM's prompt_logprobs: it is covered by the
replay server only).  The provider's own unwatermarked teacher is served the
same way and read in prefix mode once, its journal the --reference of the
students' prefix journals.  The 0% student's journals are then rescored
offline under unrelated keys (the null: p uniform; a KS test).

    audit_table.py RUN_DIR --wm WM --server LLAMA_SERVER --gguf-py DIR --cache DIR --out DIR [--reduced]
                   [--budget 1000000] [--prefix-docs N] [--null-keys 20]

RUN_DIR is distill.py's --out (teacher.wmkey, teacher_wm.jsonl,
student_XXX.pt).  Writes OUT/audit-table.json (every final figure and the
looks), OUT/audit-table.md, and prints the table.  Reading modes' p-values
are fixed-n: "until p < 1e-6" is the first look (a batch of 16 documents)
whose p is below it, informational; the final p is the valid one."""
import argparse
import json
import math
import os
import subprocess
import sys
import time

here = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, here)
import torch  # noqa: E402
import gpt  # noqa: E402
import kjv  # noqa: E402
from distill import FULL, REDUCED  # noqa: E402
from server import Server  # noqa: E402


def ks_uniform(ps):
    """One-sample Kolmogorov-Smirnov test of uniformity on [0,1]: (D, p), p
    from the asymptotic Kolmogorov distribution with Stephens' correction."""
    x, n = sorted(ps), len(ps)
    d = max(max((i + 1) / n - v, v - i / n) for i, v in enumerate(x))
    t = (math.sqrt(n) + 0.12 + 0.11 / math.sqrt(n)) * d
    p = 2 * sum((-1) ** (j - 1) * math.exp(-2 * j * j * t * t) for j in range(1, 101))
    return d, min(1.0, max(0.0, p))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("run")
    for o in ("--wm", "--server", "--gguf-py", "--cache", "--out"):
        ap.add_argument(o, required=True)
    ap.add_argument("--reduced", action="store_true")
    ap.add_argument("--budget", type=int, default=1000000, help="suspect tokens per audit")
    ap.add_argument("--prompts", type=int, default=12000, help="prompts for answers/logprobs: the harvest ones, then fresh ones up to N")
    ap.add_argument("--prefix-docs", type=int, default=0, help="harvested texts read in prefix mode (0: all)")
    ap.add_argument("--top-k", type=int, default=20)
    ap.add_argument("--null-keys", type=int, default=20)
    ap.add_argument("--port", type=int, default=23456)
    a = ap.parse_args()
    sys.path.insert(0, a.gguf_py)
    import gguf  # noqa: E402
    torch.set_num_threads(2)
    cfg = REDUCED if a.reduced else FULL
    w = kjv.World(a.cache)
    V = len(w.tokens)
    tok = w.tok_path
    _, tinfo = w.model("teacher" + ("-reduced" if a.reduced else ""), cfg["teacher"], 0, seed=1)
    tgguf = os.path.join(a.cache, f"teacher-{tinfo['stamp']}.gguf")
    key = os.path.join(a.run, "teacher.wmkey")
    os.makedirs(a.out, exist_ok=True)
    work = os.path.join(a.run, "audit")
    os.makedirs(work, exist_ok=True)

    # prompts: the harvest prompts, then fresh ones (seed 31) so the budget, not the list, ends a run
    harvest = [json.loads(x) for x in open(os.path.join(a.run, "teacher_wm.jsonl"))]
    pfile = os.path.join(work, "prompts.jsonl")
    fresh = [w.codec.decode(p) for p in w.prompts(max(0, a.prompts - len(harvest)) + 1, seed=31)]
    with open(pfile, "w") as f:
        for p in [h["prompt"] for h in harvest] + fresh[:max(0, a.prompts - len(harvest))]:
            f.write(json.dumps({"prompt": p}) + "\n")
    tfile = os.path.join(work, "texts.jsonl")  # the provider's watermarked outputs, teacher-forced
    with open(tfile, "w") as f:
        for h in harvest[:a.prefix_docs or None]:
            f.write(json.dumps({"prompt": h["prompt"], "text": h["text"]}) + "\n")

    def audit(journal, mode, url, *extra, offline=False, k=key):
        args = [a.wm, "audit", "--key", k, "--tokenizer", tok, "--json", "--mode", mode]
        args += ["--prompts", tfile if mode == "prefix" else pfile]
        if offline:
            args += ["--offline", journal]
        else:
            if os.path.exists(journal):
                os.unlink(journal)
            args += ["--journal", journal, "--url", url, "--max-suspect-tokens", str(a.budget), "--concurrency", "8"]
        if mode in ("logprobs", "prefix"):
            args += ["--top-k", str(a.top_k)]
        if mode in ("answers", "logprobs"):
            args += ["--max-tokens", str(cfg["n_tokens"]), "--seed", "5"]
        t0 = time.time()
        r = subprocess.run(args + list(extra), capture_output=True, text=True)
        secs = time.time() - t0
        lines = [json.loads(x) for x in r.stdout.splitlines() if x.startswith("{")]
        fin = [x for x in lines if x.get("source") == "audit-final"]
        if r.returncode or not fin:
            raise SystemExit(f"audit_table: {' '.join(args[:8])}...: exit {r.returncode}: {r.stderr[-1500:]}")
        looks = [x for x in lines if x.get("source") == "audit"]
        first = next((x for x in looks if x["log10_p"] <= -6), None)
        return dict(final=fin[0], seconds=round(secs, 2),
                    until=first and dict(suspect_tokens=first["suspect_tokens"], requests=first["requests"]),
                    looks=[(x["suspect_tokens"], x["requests"], x["log10_p"]) for x in looks])

    res = dict(run=os.path.abspath(a.run), scale="reduced" if a.reduced else "full", budget=a.budget,
               top_k=a.top_k, prompts=sum(1 for _ in open(pfile)), texts=len(harvest[:a.prefix_docs or None]), students={})
    s = cfg["student"]
    t_all = time.time()
    port = a.port
    # the reference: the provider's own teacher, unwatermarked, read on its own watermarked outputs
    print("audit_table: reference (teacher, no key), prefix", flush=True)
    ref = os.path.join(work, "ref-prefix.journal")
    with Server(a.server, tgguf, port, os.path.join(work, "server-teacher.log")):
        res["reference"] = audit(ref, "prefix", f"http://127.0.0.1:{port}/v1")
    shares = sorted(int(x[8:11]) for x in os.listdir(a.run) if x.startswith("student_") and x.endswith(".pt"))
    for share in shares:
        name = f"student_{share:03d}"
        m = gpt.GPT(gpt.Config(V, s["n_embd"], s["n_layer"], s["n_head"], s["n_ctx"]))
        m.load_state_dict(torch.load(os.path.join(a.run, name + ".pt")))
        m.eval()
        g = os.path.join(work, name + ".gguf")
        gpt.write_gguf(gguf, m, w.tokens, w.merges, g, name)
        port += 1
        row = {}
        with Server(a.server, g, port, os.path.join(work, f"server-{name}.log")):
            url = f"http://127.0.0.1:{port}/v1"
            for mode in ("answers", "logprobs", "prefix"):
                print(f"audit_table: {name}: {mode}", flush=True)
                row[mode] = audit(os.path.join(work, f"{name}-{mode}.journal"), mode, url)
        # offline rescoring (no network): the weighted test, and against the reference
        j = os.path.join(work, f"{name}-prefix.journal")
        row["prefix-weighted"] = audit(j, "prefix", None, "--weighted", offline=True)
        row["prefix-reference"] = audit(j, "prefix", None, "--reference", ref, offline=True)
        row["logprobs-weighted"] = audit(os.path.join(work, f"{name}-logprobs.journal"), "logprobs", None,
                                         "--weighted", offline=True)
        res["students"][share] = row
        for k_, v in row.items():
            f = v["final"]
            print(f"  {share:3d}% {k_:18s} log10 p {f['log10_p']:9.2f}  {f['prompt_tokens'] + f['completion_tokens']:>9,}"
                  f" suspect tokens  {f['requests']:>7,} requests  {v['seconds']:.0f} s", flush=True)
    # the 0% student under unrelated keys, rescored offline
    if 0 in res["students"] and a.null_keys:
        nulls = {}
        for i in range(a.null_keys):
            k = os.path.join(work, f"null-{i}.wmkey")
            if os.path.exists(k):
                os.unlink(k)
            subprocess.run([a.wm, "keygen", "--tokenizer", tok, "-o", k], check=True, capture_output=True)
            for mode, extra in (("answers", ()), ("logprobs", ()), ("prefix", ()), ("prefix-reference", ("--reference", ref))):
                md = mode.split("-")[0]
                v = audit(os.path.join(work, f"student_000-{md}.journal"), md, None, *extra, offline=True, k=k)
                nulls.setdefault(mode, []).append(v["final"]["log10_p"])
            os.unlink(k)
        res["null"] = {}
        for mode, lps in nulls.items():
            d, p = ks_uniform([10 ** x for x in lps])
            res["null"][mode] = dict(log10_p=lps, ks_d=d, ks_p=p, flagged=sum(x <= -6 for x in lps),
                                     below_alpha=sum(x <= -3 for x in lps))
    res["seconds"] = round(time.time() - t_all, 1)
    json.dump(res, open(os.path.join(a.out, "audit-table.json"), "w"), indent=1)
    md = table(res)
    open(os.path.join(a.out, "audit-table.md"), "w").write(md)
    print(md)


def table(res):
    label = {"answers": "answers (anytime)", "logprobs": "logprobs", "logprobs-weighted": "logprobs --weighted",
             "prefix": "prefix", "prefix-weighted": "prefix --weighted", "prefix-reference": "prefix --reference"}
    out = [f"Scale: {res['scale']} demo; budget {res['budget']:,} suspect tokens per audit; top-k {res['top_k']}; "
           f"{res['prompts']:,} prompts (answers, logprobs), {res['texts']} watermarked texts (prefix). "
           f"Rescored rows (--weighted, --reference) reuse the row above's journal offline: same tokens and requests.",
           "", "| student | mode | until p < 1e-6: suspect tokens / requests | final log10 p | suspect tokens | "
           "requests | wall s |", "|---:|---|---|---:|---:|---:|---:|"]
    for share, row in sorted(res["students"].items(), key=lambda x: int(x[0])):
        for mode in ("answers", "logprobs", "logprobs-weighted", "prefix", "prefix-weighted", "prefix-reference"):
            v = row[mode]
            f = v["final"]
            u = v["until"]
            out.append(f"| {share}% | {label[mode]} | {'%s / %s' % (format(u['suspect_tokens'], ','), format(u['requests'], ',')) if u else 'not reached'} "
                       f"| {f['log10_p']:.2f} | {f['prompt_tokens'] + f['completion_tokens']:,} | {f['requests']:,} "
                       f"| {v['seconds']:.0f} |")
    r = res["reference"]["final"]
    out += ["", f"Reference (the teacher, no key, prefix mode, read once): {r['prompt_tokens'] + r['completion_tokens']:,} "
            f"tokens, {r['requests']:,} requests, {res['reference']['seconds']:.0f} s."]
    if res.get("null"):
        out += ["", "The 0% student under unrelated keys (its journals rescored offline, one fresh key each):", "",
                "| mode | keys | log10 p (min / median / max) | p < 1e-3 | p < 1e-6 | KS D | KS p (uniform) |",
                "|---|---:|---|---:|---:|---:|---:|"]
        for mode, n in res["null"].items():
            lp = sorted(n["log10_p"])
            out.append(f"| {label[mode]} | {len(lp)} | {lp[0]:.2f} / {lp[len(lp) // 2]:.2f} / {lp[-1]:.2f} | "
                       f"{n['below_alpha']} | {n['flagged']} | {n['ks_d']:.3f} | {n['ks_p']:.3f} |")
    return "\n".join(out) + "\n"


if __name__ == "__main__":
    main()
