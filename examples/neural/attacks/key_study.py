#!/usr/bin/env python3
"""The key-settings study (issue 26): for each key setting, the radioactivity
of the 25% and 100% students without attack, after watermark stealing (+
targeted paraphrase) and after WN at delta' 2.5, every detection mode.
One run.py per setting (same teacher, student base and prompts; a fresh
harvest under the setting's key), then one table.

    key_study.py --reduced --out DIR --cache DIR [--settings base,h2,...] [--threads N]

Settings (KGW; the provider's default is gamma 0.25, delta 2, h 1, lefthash):
  base     the default key;
  h2, h4   context width 2 and 4 (lefthash);
  minhash  context width 4, minhash seeding;
  gamma50  gamma 0.5;
  delta1, delta3  delta 1 and 3;
  account  the account layer (account_delta 1; the harvest through one account).
gumbel is not in the study: run.py's provider, stealing and closed modes
are the green-list (binomial) ones; a gumbel key has no bias to apply
(wm_select picks the token) and no green list to steal or filter.
Writes DIR/SETTING/attacks.json (run.py's) and DIR/key_study.json, DIR/key_study.md."""
import argparse
import json
import os
import subprocess
import sys
import time

here = os.path.dirname(os.path.abspath(__file__))
SETTINGS = {
    "base": [],
    "h2": ["--context-width", "2"],
    "h4": ["--context-width", "4"],
    "minhash": ["--context-width", "4", "--seeding", "minhash"],
    "gamma50": ["--gamma", "0.5"],
    "delta1": ["--delta", "1"],
    "delta3": ["--delta", "3"],
    "account": ["--account-delta", "1"],
}
COLS = (("closed.corpus", lambda r: r["closed"]["corpus"]["log10_p"]),
        ("audit", lambda r: r["audit"]["log10_p"]),
        ("read top-1", lambda r: r["open"]["read_k1"]["log10_p"]),
        ("weighted", lambda r: r["open"]["weighted"]["log10_p"]))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--cache", required=True)
    ap.add_argument("--reduced", action="store_true")
    ap.add_argument("--settings", type=lambda x: x.split(","), default=list(SETTINGS))
    ap.add_argument("--shares", default="25,100")
    ap.add_argument("--threads", type=int)
    a = ap.parse_args()
    out = []
    for s in a.settings:
        d = os.path.join(a.out, s)
        cmd = [sys.executable, os.path.join(here, "run.py"), "--out", d, "--cache", a.cache,
               "--attacks", "none,steal,wn", "--wn-delta", "2.5", "--shares", a.shares] + SETTINGS[s] + \
            (["--reduced"] if a.reduced else []) + (["--threads", str(a.threads)] if a.threads else [])
        t0 = time.time()
        print(f"key study: {s}: {' '.join(cmd[1:])}", flush=True)
        rc = subprocess.run(cmd).returncode  # --reduced: 1 when a bar is missed, which a setting may do
        path = os.path.join(d, "attacks.json")
        rows = json.load(open(path)) if os.path.exists(path) else []
        want = {f"{x}-{int(sh):03d}" for sh in a.shares.split(",") for x in ("none", "steal", "wn2.5")}
        if want - {r["tag"] for r in rows}:
            raise SystemExit(f"key study: {s}: run.py exit {rc}, rows missing: {sorted(want - {r['tag'] for r in rows})}")
        out.append(dict(setting=s, args=SETTINGS[s], seconds=round(time.time() - t0), rows=rows))
        json.dump(out, open(os.path.join(a.out, "key_study.json"), "w"), indent=1)
    md = ["| setting | share | attack | " + " | ".join(c for c, _ in COLS) + " | steal precision | ppl verses |",
          "|---|---:|---|" + "---:|" * (len(COLS) + 2)]
    for s in out:
        for r in s["rows"]:
            md.append(f"| {s['setting']} | {r['share']}% | {r['tag'].rsplit('-', 1)[0]} | "
                      + " | ".join(f"{f(r):.2f}" for _, f in COLS)
                      + f" | {r.get('estimated_green_precision', float('nan')):.2f} | {r['ppl_verses']:.1f} |")
    open(os.path.join(a.out, "key_study.md"), "w").write("\n".join(md) + "\n")
    print("\n".join(md))


if __name__ == "__main__":
    main()
