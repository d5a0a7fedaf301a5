#!/usr/bin/env python3
"""One row of scripts/sweep.sh's table from a reduced demo run in DIR.

    sweep_row.py WM LIBWM_SO TOKENIZER DIR LABEL

Quality: teacher perplexity (the unwatermarked teacher scoring its own
answers) and diversity (teacher.json).  Detectability: median log10 p of one
120-token answer, and the median answer length at which p first drops below
1e-6 (prefixes of each watermarked answer; '>120' when the median answer
never gets there).  Radioactivity: `wm detect --corpus` on the students
trained with 1, 5 and 10% watermarked data, without and with --filter on the
watermarked teacher outputs."""
import json
import os
import statistics
import subprocess
import sys

WM, SO, TOK, D, LABEL = sys.argv[1:6]
os.environ["LIBWM_LIBRARY"] = SO
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "python"))
import libwm  # noqa: E402

KEY = os.path.join(D, "k.wmkey")


def wm_detect(*args):
    p = subprocess.run([WM, "detect", "--key", KEY, "--tokenizer", TOK, "--jsonl", "--prompt-field", "prompt",
                        "--json", *args], capture_output=True, text=True)
    if p.returncode not in (0, 1):
        sys.exit(f"sweep: wm detect failed: {p.stderr.strip()}")
    return [json.loads(l) for l in p.stdout.splitlines()]


t = json.load(open(os.path.join(D, "teacher.json")))
one = statistics.median(r["log10_p"] for r in wm_detect(os.path.join(D, "teacher_wm.jsonl")))

tok = libwm.Tokenizer(TOK)
wm = libwm.Watermark(libwm.Key.load(KEY), tok.n_vocab)
lengths = []
with open(os.path.join(D, "teacher_wm.jsonl")) as f:
    for line in list(f)[:200]:
        doc = json.loads(line)
        head, ids = tok.encode(doc["prompt"]), tok.encode(doc["text"])
        need = None
        for n in range(1, len(ids) + 1):
            if libwm.detect(wm, ids[:n], prompt=head)["log10_p"] < -6:
                need = n
                break
        lengths.append(need if need is not None else 10**9)
med = statistics.median(lengths)
need = ">120" if med > 120 else str(int(med))

stud = []
for share in (1, 5, 10):
    f = os.path.join(D, f"student_{share:03d}.jsonl")
    a = wm_detect("--corpus", f)[-1]["log10_p"]
    b = wm_detect("--corpus", "--filter", os.path.join(D, "teacher_wm.jsonl"), f)[-1]["log10_p"]
    stud.append(f"{a:.1f} / {b:.1f}")

print(f"| {LABEL} | {t['perplexity_plain']:.1f} -> {t['perplexity_watermarked']:.1f} | "
      f"{t['distinct_answers_of_10_plain']:.1f} -> {t['distinct_answers_of_10_watermarked']:.1f} | "
      f"{t['distinct2_plain']:.3f} -> {t['distinct2_watermarked']:.3f} | {one:.1f} | {need} | " + " | ".join(stud) + " |")
