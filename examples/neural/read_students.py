"""Audit of the demo's students: open weights (reading mode, weighted test)
and closed (the sequential audit).

    python3 examples/neural/read_students.py OUT_DIR   (a distill.py output folder)

For each saved student (student_XXX.pt), teacher-forced on the provider's own
watermarked answers (teacher_wm.jsonl), through libwm.read_torch:
  * reading mode (C wm_reader): top-k predictions at the positions detect.h
    allows (first occurrence of a seed per document), k = 1 and 5, exact
    binomial test;
  * the weighted test (C wm_reader, WM_READ_WEIGHTED): the K_W candidates
    where p_student - p_ref is largest in magnitude, weighted by that
    difference, p_ref the provider's own unwatermarked teacher; Chernoff
    bound on the weighted Bernoulli sum (never anti-conservative).
The 0% student and the plain teacher are also read under 20 unrelated keys,
and the 0% student's answers tested closed (--filter) under 20 more (KS
against uniform).  Closed model: `wm detect --audit` over each student's
2,000 answers with --filter, looking every 10 answers: the anytime p, the
fixed-n p, the tokens the audit projects for p < 1e-6 from its first look
with a positive excess and where it actually got there.
Writes OUT_DIR/reading.json and prints Markdown tables."""
import json, os, subprocess, sys, time
here = os.path.dirname(os.path.abspath(__file__))
root = os.path.join(here, "..", "..")
sys.path.insert(0, here)
sys.path.insert(0, os.path.join(root, "python"))
os.environ.setdefault("LIBWM_LIBRARY", os.path.join(root, "build", "libwm", "libwm.so"))
import numpy as np
import torch
import gpt, kjv
import libwm

K_W = int(os.environ.get("K_W", "256"))
torch.set_num_threads(2)
out = sys.argv[1]
cache = os.path.join(root, ".cache", "neural")
w = kjv.World(cache)
V = len(w.tokens)
enc = w.codec.encode
docs = [json.loads(line) for line in open(os.path.join(out, "teacher_wm.jsonl"))]
seqs = [(enc(d["prompt"]) + enc(d["text"]), len(enc(d["prompt"]))) for d in docs]
key = libwm.Key.load(os.path.join(out, "teacher.wmkey"))
prm = key.params
nulls = [libwm.Key.from_seed(bytes([i + 1]) * 32, gamma=prm["gamma"], delta=prm["delta"],
                             context_width=prm["context_width"]) for i in range(20)]
WMS = [libwm.Watermark(k, V) for k in [key] + nulls]


def load(path, c):
    m = gpt.GPT(gpt.Config(V, c["n_embd"], c["n_layer"], c["n_head"], c["n_ctx"]))
    m.load_state_dict(torch.load(path))
    return m.eval()


def ks(p):
    p = np.sort(p)
    n = len(p)
    return float(max((np.arange(1, n + 1) / n - p).max(), (p - np.arange(n) / n).max()))


def pick(sc):
    return {x: sc[x] for x in ("scored", "log10_p", "positions", "green_fraction", "z") if x in sc}


def read(model, nkeys, **kw):
    readers = [libwm.Reader(wm, weighted="reference" in kw) for wm in WMS[:nkeys]]
    libwm.read_torch(readers, model, seqs, batch=32, max_len=kjv.STUDENT["n_ctx"], **kw)
    return [r.score() for r in readers]


def audit(name):
    """wm detect --audit over the student's answers, --filter the teacher's."""
    tok = [os.path.join(cache, f) for f in os.listdir(cache) if f.startswith("kjv-bpe-") and f.endswith(".json")][0]
    p = subprocess.run([os.path.join(root, "build", "libwm", "wm"), "detect", "--key", os.path.join(out, "teacher.wmkey"),
                        "--tokenizer", tok, "--jsonl", "--prompt-field", "prompt", "--json", "--filter",
                        os.path.join(out, "teacher_wm.jsonl"),
                        "--audit", "10", os.path.join(out, name + ".jsonl")], capture_output=True, check=False)
    looks = [json.loads(x) for x in p.stdout.decode().splitlines()]
    last = looks[-1]
    first = next((x for x in looks if x["excess"] > 0 and x["more_tokens"] is not None), None)
    hit = next((x for x in looks if x["log10_p"] <= -6), None)
    return dict(tokens=last["tokens"], log10_p_anytime=last["log10_p"], log10_p_fixed=last["fixed_log10_p"],
                excess=last["excess"], excess_ci=[last["excess_lo"], last["excess_hi"]],
                projected_tokens_end=(last["tokens"] + last["more_tokens"]) if last["more_tokens"] is not None else None,
                projected_tokens_first_look=(first["tokens"] + first["more_tokens"]) if first else None,
                actual_tokens=hit["tokens"] if hit else None)


def closed_nulls(name):
    """The student's answers, --filter, under 20 unrelated keys (made here):
    `wm detect --corpus` p-values, to be uniform."""
    import tempfile
    tok = [os.path.join(cache, f) for f in os.listdir(cache) if f.startswith("kjv-bpe-") and f.endswith(".json")][0]
    wm_bin = os.path.join(root, "build", "libwm", "wm")
    ps = []
    with tempfile.TemporaryDirectory() as d:
        keys = [os.path.join(d, f"k{i}.wmkey") for i in range(20)]
        for k in keys:
            subprocess.run([wm_bin, "keygen", "--tokenizer", tok, "-o", k], check=True, capture_output=True)
        for part in (keys[:10], keys[10:]):  # wm detect takes at most 16 keys
            args = [a for k in part for a in ("--key", k)]
            p = subprocess.run([wm_bin, "detect", *args, "--tokenizer", tok, "--jsonl", "--prompt-field", "prompt",
                                "--corpus", "--json", "--filter", os.path.join(out, "teacher_wm.jsonl"),
                                os.path.join(out, name + ".jsonl")], capture_output=True, text=True)
            ps += [r["p_value"] for r in map(json.loads, p.stdout.splitlines()) if r.get("corpus") and not r.get("family")]
    return ps


t0 = time.time()
ref_path = [os.path.join(cache, f[:-5] + ".pt") for f in os.listdir(cache) if f.startswith("teacher-")
            and f.endswith(".json") and json.load(open(os.path.join(cache, f))).get("role") == "teacher"][0]
teacher = load(ref_path, kjv.TEACHER)
rows = []
models = [(f[:-3], os.path.join(out, f)) for f in sorted(os.listdir(out)) if f.startswith("student_") and f.endswith(".pt")]
for name, path in models + [("teacher (plain)", None)]:
    m = load(path, kjv.STUDENT) if path else teacher
    control = name in ("student_000", "teacher (plain)")
    nk = len(WMS) if control else 1
    row = {"model": name}
    for k in (1, 5):
        sc = read(m, nk, k=k)
        row[f"read_k{k}"] = pick(sc[0])
        if control and k == 1:
            row["null_read_k1_p"] = [s["p_value"] for s in sc[1:]]
    if path:
        sc = read(m, nk, k=K_W, reference=teacher)
        row["weighted"] = pick(sc[0])
        if control:
            row["null_weighted_log10_p"] = [s["log10_p"] for s in sc[1:]]
        row["audit"] = audit(name)
        if control:
            row["null_closed_p"] = closed_nulls(name)
    rows.append(row)
    print(f"[{time.time() - t0:5.0f} s] {json.dumps(row)}", flush=True)
json.dump(rows, open(os.path.join(out, "reading.json"), "w"), indent=1)


def f(x, fmt="{:.2f}"):
    return "-" if x is None else fmt.format(x)


print(f"\n| model | read top-1: tuples, log10 p | read top-5: tuples, log10 p | weighted (k={K_W}): tuples, log10 p |")
print("|---|---:|---:|---:|")
for r in rows:
    a, b, c = r["read_k1"], r["read_k5"], r.get("weighted")
    print(f"| {r['model']} | {a['scored']:,}, {a['log10_p']:.2f} | {b['scored']:,}, {b['log10_p']:.2f} | " +
          (f"{c['scored']:,}, {c['log10_p']:.2f} |" if c else "- |"))
print("\n| model | audit: tokens | anytime log10 p | fixed-n log10 p | excess [CS] | projected tokens (first look / end) | actual |")
print("|---|---:|---:|---:|---:|---:|---:|")
for r in rows:
    if "audit" in r:
        a = r["audit"]
        print(f"| {r['model']} | {a['tokens']:,} | {a['log10_p_anytime']:.2f} | {a['log10_p_fixed']:.2f} | "
              f"{a['excess']:+.4f} [{a['excess_ci'][0]:+.4f}, {a['excess_ci'][1]:+.4f}] | "
              f"{f(a['projected_tokens_first_look'], '{:.3g}')} / {f(a['projected_tokens_end'], '{:.3g}')} | "
              f"{f(a['actual_tokens'], '{:,}')} |")
for r in rows:
    if "null_read_k1_p" in r:
        p = np.array(r["null_read_k1_p"])
        line = f"{r['model']} under 20 other keys: read top-1 min p {p.min():.3f}, KS D {ks(p):.3f} (crit 0.294 at 0.05)"
        if "null_weighted_log10_p" in r:
            q = np.array(r["null_weighted_log10_p"])
            line += f"; weighted min log10 p {q.min():.2f}, bound p-values: {np.round(10 ** q, 3).tolist()}"
        if "null_closed_p" in r:
            c = np.array(r["null_closed_p"])
            line += f"; closed --filter min p {c.min():.3f}, KS D {ks(c):.3f}"
        print(line)
