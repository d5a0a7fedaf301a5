"""Open-weight audit of the demo's students: reading mode and a weighted test.

    python3 examples/neural/read_students.py OUT_DIR   (a distill.py output folder)

For each saved student (student_XXX.pt), teacher-forced on the provider's own
watermarked answers (teacher_wm.jsonl):
  * reading mode through libwm.Reader (C wm_reader): top-k predictions at the
    positions detect.h allows (first occurrence of a seed per document), k = 1
    and 5, exact binomial test;
  * a weighted test (exploratory, Python): W[s, q] = sum over the same read
    positions with seed s of p_student(q | prefix) - p_ref(q | prefix), where
    p_ref is the provider's own unwatermarked teacher; S = sum of W over
    green (s, q).  Under H0 the weights depend on the suspect, the reference
    and the text before each read position only, so the green bits are
    Bernoulli(gamma) independent of them (detect.h's argument) and the
    Chernoff bound min_l sum log(1 - g + g e^(l w)) - l S is a p-value
    bound that is never anti-conservative.
The 0% student and the plain teacher are also tested under 20 unrelated keys.
Writes OUT_DIR/reading.json and prints a Markdown table."""
import json, os, sys, time
here = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, here)
sys.path.insert(0, os.path.join(here, "..", "..", "python"))
os.environ.setdefault("LIBWM_LIBRARY", os.path.join(here, "..", "..", "build", "libwm", "libwm.so"))
import numpy as np
import torch
import gpt, kjv
import libwm

torch.set_num_threads(2)
out = sys.argv[1]
cache = os.path.join(here, "..", "..", ".cache", "neural")
w = kjv.World(cache)
V = len(w.tokens)
enc = w.codec.encode
docs = [json.loads(line) for line in open(os.path.join(out, "teacher_wm.jsonl"))]
seqs = [(enc(d["prompt"]) + enc(d["text"]), len(enc(d["prompt"]))) for d in docs]
key = libwm.Key.load(os.path.join(out, "teacher.wmkey"))
prm = key.params
gamma = prm["gamma"]
nulls = [libwm.Key.from_seed(bytes([i + 1]) * 32, gamma=gamma, delta=prm["delta"],
                             context_width=prm["context_width"]) for i in range(20)]


def green_matrix(k):
    wm, G = libwm.Watermark(k, V), np.zeros((V, V), bool)
    for s in range(V):
        z = np.zeros(V, np.float32)
        wm.bias(z, [s])
        G[s] = z > 0
    return G


def forward(m):
    """Per document: top-5 ids for every position, and the probabilities at
    the read positions (first occurrence of the seed, answer positions)."""
    tops, reads = [], []
    with torch.no_grad():
        for b in range(0, len(seqs), 64):
            part = seqs[b:b + 64]
            x = torch.zeros((len(part), max(len(s) for s, _ in part)), dtype=torch.long)
            for r, (s, _) in enumerate(part):
                x[r, :len(s)] = torch.tensor(s)
            logits = m(x)
            top = logits.topk(5, -1).indices.numpy()
            prob = torch.softmax(logits, -1).numpy()
            for r, (s, n_prompt) in enumerate(part):
                p = np.zeros((len(s), 5), np.int32)
                p[1:] = top[r, :len(s) - 1]
                tops.append(p)
                seen, rows = set(), []
                for i in range(1, len(s)):
                    if s[i - 1] not in seen and i >= n_prompt + (n_prompt > 0):
                        rows.append((s[i - 1], i - 1))
                    seen.add(s[i - 1])
                reads.append((np.array([a for a, _ in rows], dtype=np.int64), prob[r, [j for _, j in rows]]))
    return tops, reads


def reading(k_, tops, k):
    r = libwm.Reader(libwm.Watermark(k_, V))
    for (s, n_prompt), p in zip(seqs, tops):
        r.add(s, np.ascontiguousarray(p[:, :k]), n_prompt)
    return r.score()


def chernoff_log10(wv, S):
    def f(lam):
        return np.sum(np.logaddexp(np.log1p(-gamma), np.log(gamma) + lam * wv)) - lam * S
    lo, hi = 0.0, 50 / max(np.abs(wv).max(), 1e-12)
    for _ in range(100):  # golden section: f is convex in lam
        a, b = lo + (hi - lo) * 0.382, lo + (hi - lo) * 0.618
        lo, hi = (lo, b) if f(a) < f(b) else (a, hi)
    return min(0.0, f((lo + hi) / 2)) / np.log(10)


def weighted(G, W, used):
    wv = W[used]
    return chernoff_log10(wv, float(W[used & G].sum()))


def load(path, cfg):
    m = gpt.GPT(cfg)
    m.load_state_dict(torch.load(path))
    return m.eval()


t0 = time.time()
ref_path = [os.path.join(cache, f[:-5] + ".pt") for f in os.listdir(cache) if f.startswith("teacher-")
            and f.endswith(".json") and json.load(open(os.path.join(cache, f))).get("role") == "teacher"]
teacher = load(ref_path[0], gpt.Config(V, kjv.TEACHER["n_embd"], kjv.TEACHER["n_layer"], kjv.TEACHER["n_head"],
                                       kjv.TEACHER["n_ctx"]))
ref_tops, ref_reads = forward(teacher)
G = green_matrix(key)
nullG = [green_matrix(k) for k in nulls]
rows = []
models = [(f[:-3], os.path.join(out, f)) for f in sorted(os.listdir(out)) if f.startswith("student_") and f.endswith(".pt")]
for name, path in models + [("teacher (plain)", None)]:
    if path:
        tops, reads = forward(load(path, gpt.Config(V, kjv.STUDENT["n_embd"], kjv.STUDENT["n_layer"],
                                                    kjv.STUDENT["n_head"], kjv.STUDENT["n_ctx"])))
    else:
        tops, reads = ref_tops, ref_reads
    row = {"model": name}
    for k in (1, 5):
        sc = reading(key, tops, k)
        row[f"read_k{k}"] = {x: sc[x] for x in ("scored", "green_fraction", "log10_p", "positions")}
    if path:
        W = np.zeros((V, V))
        for (seeds, ps), (_, pr) in zip(reads, ref_reads):
            np.add.at(W, seeds, ps - pr)
        used = W != 0
        row["weighted"] = {"tuples": int(used.sum()), "log10_p_bound": weighted(G, W, used)}
    if name in ("student_000", "teacher (plain)"):
        row["null_read_k1_p"] = [reading(k_, tops, 1)["p_value"] for k_ in nulls]
        if path:
            row["null_weighted_log10_p"] = [weighted(g_, W, used) for g_ in nullG]
    rows.append(row)
    print(f"[{time.time() - t0:5.0f} s] {json.dumps(row)}", flush=True)
json.dump(rows, open(os.path.join(out, "reading.json"), "w"), indent=1)
print("\n| model | read top-1: tuples | green | log10 p | read top-5: tuples | log10 p | weighted: tuples | log10 p (bound) |")
print("|---|---:|---:|---:|---:|---:|---:|---:|")
for r in rows:
    a, b, c = r["read_k1"], r["read_k5"], r.get("weighted")
    print(f"| {r['model']} | {a['scored']:,} | {a['green_fraction']:.4f} | {a['log10_p']:.2f} | {b['scored']:,} | "
          f"{b['log10_p']:.2f} | " + (f"{c['tuples']:,} | {c['log10_p_bound']:.2f} |" if c else "- | - |"))
for r in rows:
    if "null_read_k1_p" in r:
        print(f"{r['model']} under 20 other keys: read top-1 min p {min(r['null_read_k1_p']):.3f}" +
              (f", weighted min log10 p {min(r['null_weighted_log10_p']):.2f}" if "null_weighted_log10_p" in r else ""))
