"""Reading mode through both drivers on a demo run's own models: the GGUF
driver (wm-read, libllama) against the PyTorch one (libwm.read_torch).

    python3 examples/neural/read_gguf.py OUT_DIR --wm-read BIN --gguf-py DIR --cache DIR [--reduced]

Each saved student (student_XXX.pt) is written as a GGUF and read by both
drivers on the provider's watermarked answers (teacher_wm.jsonl), top-1
(plain) and the weighted test (k = 256, the run's own teacher as
reference, its GGUF for wm-read).  The two must agree: the same read
positions, scored tuples within 1%, log10 p within max(0.2, 3%) (the two
runtimes round differently, so near-ties may flip).  Exit 1 otherwise."""
import argparse, json, os, subprocess, sys
here = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, here)
sys.path.insert(0, os.path.join(here, "..", "..", "python"))
os.environ.setdefault("LIBWM_LIBRARY", os.path.join(here, "..", "..", "build", "libwm", "libwm.so"))
import torch
import gpt, kjv
import libwm
from distill import FULL, REDUCED

ap = argparse.ArgumentParser()
ap.add_argument("out")
for a in ("--wm-read", "--gguf-py", "--cache"):
    ap.add_argument(a, required=True)
ap.add_argument("--reduced", action="store_true")
ap.add_argument("--top", type=int, default=256)
a = ap.parse_args()
sys.path.insert(0, a.gguf_py)
import gguf  # noqa: E402
torch.set_num_threads(2)
cfg = REDUCED if a.reduced else FULL
w = kjv.World(a.cache)
V = len(w.tokens)
teacher, tinfo = w.model("teacher" + ("-reduced" if a.reduced else ""), cfg["teacher"], 0, seed=1)
tgguf = os.path.join(a.cache, f"teacher-{tinfo['stamp']}.gguf")
key = os.path.join(a.out, "teacher.wmkey")
wm = libwm.Watermark(libwm.Key.load(key), V)
enc = w.codec.encode
docs = []
for line in open(os.path.join(a.out, "teacher_wm.jsonl")):
    d = json.loads(line)
    p = enc(d["prompt"])
    docs.append((p + enc(d["text"]), len(p)))
ids = os.path.join(a.out, "teacher_wm.ids.jsonl")
with open(ids, "w") as f:
    for t, n in docs:
        f.write(json.dumps({"ids": t, "n_prompt": n}) + "\n")
s = cfg["student"]
ok, rows = True, []
for name in sorted(x[:-3] for x in os.listdir(a.out) if x.startswith("student_") and x.endswith(".pt")):
    m = gpt.GPT(gpt.Config(V, s["n_embd"], s["n_layer"], s["n_head"], s["n_ctx"]))
    m.load_state_dict(torch.load(os.path.join(a.out, name + ".pt")))
    m.eval()
    g = os.path.join(a.out, name + ".gguf")
    gpt.write_gguf(gguf, m, w.tokens, w.merges, g, name)
    for weighted in (False, True):
        extra = ["--reference", tgguf, "--top", str(a.top)] if weighted else []
        r = subprocess.run([a.wm_read, "--model", g, "--key", key, *extra, ids], capture_output=True, text=True)
        if r.returncode:
            sys.exit(f"wm-read failed: {r.stderr.strip()[-500:]}")
        c = json.loads(r.stdout)
        p = libwm.read_torch(libwm.Reader(wm, weighted=weighted), m, docs, k=a.top if weighted else 1, batch=32,
                             max_len=s["n_ctx"], reference=teacher if weighted else None).score()
        agree = c["positions"] == p["positions"] and abs(c["scored"] - p["scored"]) <= 0.01 * p["scored"] and \
            abs(c["log10_p"] - p["log10_p"]) <= max(0.2, 0.03 * abs(p["log10_p"]))
        ok &= agree
        rows.append((name, "weighted" if weighted else "top-1", c, p, agree))
        print(f"{name} {'weighted k=%d' % a.top if weighted else 'top-1'}: wm-read (GGUF) {c['scored']:,} tuples, "
              f"log10 p {c['log10_p']:.3f}; read_torch {p['scored']:,}, {p['log10_p']:.3f}; positions "
              f"{c['positions']:,} / {p['positions']:,}: {'agree' if agree else 'DISAGREE'}", flush=True)
print("read_gguf: " + ("both drivers agree" if ok else "the drivers disagree"))
sys.exit(0 if ok else 1)
