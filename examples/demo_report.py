#!/usr/bin/env python3
"""Score the distillation demo's students with the real `wm` CLI and report.

    demo_report.py WM TOKENIZER OUTDIR [--assert-scaled]

Writes OUTDIR/results.csv, results.md and radioactivity.png (gnuplot), and
prints the table and what it means.  Exit 1 if a bar is missed."""
import json
import math
import os
import subprocess
import sys

WM, TOK, OUT = sys.argv[1:4]
QUICK = "--quick" in sys.argv
SHARES = [0, 1, 5, 10, 25, 50, 100]
KEY = os.path.join(OUT, "demo.wmkey")


def detect(files, keys=(KEY,), filt=None):
    args = [WM, "detect", "--tokenizer", TOK, "--jsonl", "--prompt-field", "prompt", "--corpus", "--json"]
    for k in keys:
        args += ["--key", k]
    if filt:
        args += ["--filter", filt]
    p = subprocess.run(args + files, capture_output=True, text=True)
    if p.returncode != 0:
        sys.exit(f"demo: wm detect failed: {p.stderr.strip()}")
    return [r for r in map(json.loads, p.stdout.splitlines()) if r.get("corpus") and not r.get("family")]


def p_text(log10_p):
    return f"{10 ** log10_p:.2g}" if log10_p > -300 else f"10^{log10_p:.1f}"


rows = []
for s in SHARES:
    f = os.path.join(OUT, f"student_{s:03d}.jsonl")
    plain = detect([f])[0]
    filt = detect([f], filt=os.path.join(OUT, "teacher_wm.jsonl"))[0]
    rows.append((s, plain, filt))
    print(f"demo: scored the {s}% student", file=sys.stderr)

# The 0% student under 20 unrelated keys: its p-values must look uniform.
keys = []
for i in range(20):
    k = os.path.join(OUT, f"control-{i:02d}.wmkey")
    if not os.path.exists(k):
        subprocess.run([WM, "keygen", "--tokenizer", TOK, "-o", k], check=True, capture_output=True)
    keys.append(k)
control = detect([os.path.join(OUT, "student_000.jsonl")], keys[:10]) + detect([os.path.join(OUT, "student_000.jsonl")], keys[10:])
ps = sorted(10 ** r["log10_p"] for r in control)
ks = max(max((i + 1) / 20 - p, p - i / 20) for i, p in enumerate(ps))
teacher = json.load(open(os.path.join(OUT, "teacher.json")))
direct = detect([os.path.join(OUT, "teacher_wm.jsonl")])[0]

with open(os.path.join(OUT, "results.csv"), "w") as f:
    f.write("share_percent,unique_tuples,green_fraction,log10_p,watermarked,filtered_unique_tuples,filtered_green_fraction,filtered_log10_p,filtered_watermarked\n")
    for s, a, b in rows:
        f.write(f"{s},{a['scored']},{a['green_fraction']:.5f},{a['log10_p']:.3f},{a['watermarked']},"
                f"{b['scored']},{b['green_fraction']:.5f},{b['log10_p']:.3f},{b['watermarked']}\n")
md = ["| watermarked share of training data | unique tuples | green fraction | log10 p | verdict | with --filter: tuples | green | log10 p | verdict |",
      "|---:|---:|---:|---:|---|---:|---:|---:|---|"]
for s, a, b in rows:
    v = lambda r: "**watermarked**" if r["watermarked"] else "clean"
    md.append(f"| {s}% | {a['scored']:,} | {a['green_fraction']:.4f} | {a['log10_p']:.2f} | {v(a)} | "
              f"{b['scored']:,} | {b['green_fraction']:.4f} | {b['log10_p']:.2f} | {v(b)} |")
summary = (f"A bigram student trained only on a trigram teacher's outputs inherits the watermark: with 10% of its "
           f"training data watermarked, `wm detect --corpus` finds it at p = {p_text(rows[3][1]['log10_p'])} "
           f"over {rows[3][1]['scored']:,} unique tuples, while the student that never saw watermarked text stays at "
           f"p = {p_text(rows[0][1]['log10_p'])}, and under 20 unrelated keys its p-values look uniform "
           f"(Kolmogorov-Smirnov D = {ks:.3f}, 5% critical value 0.294).")
extra = (f"Teacher outputs themselves: p = {p_text(direct['log10_p'])} over {direct['scored']:,} tuples; "
         f"teacher perplexity on its own text {teacher['perplexity_plain']:.1f} without the watermark, "
         f"{teacher['perplexity_watermarked']:.1f} with it.")
with open(os.path.join(OUT, "results.md"), "w") as f:
    f.write("\n".join(md) + "\n\n" + summary + "\n\n" + extra + "\n")
with open(os.path.join(OUT, "plot.dat"), "w") as f:
    for s, a, b in rows:
        f.write(f"{max(s, 0.5)} {a['log10_p']} {b['log10_p']}\n")
gp = f"""set terminal pngcairo size 900,560
set output '{os.path.join(OUT, "radioactivity.png")}'
set title 'Radioactivity: detecting a student trained on watermarked outputs'
set xlabel 'watermarked share of the student training data (%, log scale; 0% drawn at 0.5)'
set ylabel 'log10 p-value (wm detect --corpus)'
set logscale x
set xrange [0.4:120]
set grid
set key bottom left
plot '{os.path.join(OUT, "plot.dat")}' using 1:2 with linespoints lw 2 title 'all tuples', \\
     '' using 1:3 with linespoints lw 2 title 'with --filter on the watermarked data', \\
     -6 with lines dt 2 title 'p = 1e-6'
"""
subprocess.run(["gnuplot"], input=gp, text=True, check=True)

print("\n".join(md))
print()
print(summary)
print(extra)

bars = {
    "0% student not flagged (p > 0.01)": rows[0][1]["log10_p"] > -2 and rows[0][2]["log10_p"] > -2,
    "0% student uniform under 20 keys (KS D < 0.294)": ks < 0.294,
    "10% student flagged at p < 1e-6": rows[3][1]["log10_p"] < (-3 if QUICK else -6),
    "100% student flagged at p < 1e-30": rows[6][1]["log10_p"] < (-10 if QUICK else -30),
}
for name, ok in bars.items():
    print(f"{'PASS' if ok else 'FAIL'}: {name}{' (scaled to the quick run: 1e-3 and 1e-10)' if QUICK and '%' in name and 'flagged at' in name else ''}")
sys.exit(0 if all(bars.values()) else 1)
