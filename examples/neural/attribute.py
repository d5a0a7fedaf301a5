#!/usr/bin/env python3
"""Account attribution through a real API: which accounts fed a student.

The demo's teacher is served by llama-server with a master key that has an
account layer (keygen --account-delta).  Groups of K = 1, 3 and 10 proxy
accounts harvest its answers (each request watermarked under its API key's
account); a control key mapped to account 0 gets the base watermark only;
another server answers without the watermark.  Students are fine-tuned on
mixes whose watermarked share (10%, 25%) came from one group in equal parts,
the rest plain.  Each student's answers are then tested (`wm detect --corpus
--accounts`): test 1 (any watermark of the master key) and the attribution
over 10,000 account ids.  Also measured: the 0% student under 20 other master
keys, the tokens of one account's own answers that name it among 10^6 ids,
and the base test and perplexity with the account layer against without.
Open weights: each student also reads the provider's control answers
(generated for account 0, so independent of every codeword) in the weighted
reading mode, and the reader's account tally names the accounts
(wm_reader_attribute).

    attribute.py --out DIR --wm WM --server LLAMA_SERVER --gguf-py DIR --cache DIR [--reduced]

Writes DIR/attribution.json and attribution.md.  --reduced is the suite's
version (small models, one student from a sole account, seeded keys) and
exits 1 if an innocent account is named or reading misses the sole
contributor."""
import argparse
import copy
import hashlib
import json
import math
import os
import secrets
import statistics
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gpt  # noqa: E402
from distill import Demo, FULL, REDUCED  # noqa: E402
from kjv import log  # noqa: E402
from server import Server, harvest  # noqa: E402

FULL_A = dict(FULL, groups=[1, 3, 10], per_group=500, n_plain=2000, control=2000, shares=[10, 25], n_ids=10000,
              null_keys=20, direct_ids=10 ** 6)
# The suite's run, with seeded keys (new_key).  Its bars: nobody innocent is
# named in any mode; the sole contributor is named by reading (log10 p about
# -50, the bar being -6).  From the reduced student's answers the contributor
# is only reported: test 1 itself is at 1e-4..1e-6 there, and the account's p
# (-4.7 to -8.0 in runs on this machine) straddles the family-wise bar, as the
# full run's answers do (README: Accounts).
REDUCED_A = dict(REDUCED, groups=[1], per_group=240, n_plain=240, control=240, shares=[100], n_ids=1000,
                 null_keys=5, direct_ids=10 ** 5)


class Attribution(Demo):
    def __init__(self, a):
        super().__init__(a)
        self.cfg = dict(REDUCED_A if a.reduced else FULL_A)
        os.environ.setdefault("LIBWM_LIBRARY", os.path.join(os.path.dirname(os.path.abspath(a.wm)), "libwm.so"))
        sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "python"))
        import libwm
        self.libwm = libwm
        self.res = dict(config={k: v for k, v in self.cfg.items() if k not in ("teacher", "student")},
                        account_delta=a.account_delta)

    def new_key(self, path, tag):
        """Writes a master key to path: wm keygen's, or in --reduced one seeded
        by tag so the suite's run is reproducible (seeded keys are for tests only)."""
        if os.path.exists(path):
            os.unlink(path)
        if self.a.reduced:
            seed = hashlib.sha256(b"libwm attribute.py --reduced " + tag.encode()).digest()
            self.libwm.Key.from_seed(seed, account_delta=self.a.account_delta).save(path)
        else:
            self.wm("keygen", "--tokenizer", self.tok, "--account-delta", str(self.a.account_delta), "-o", path)
        return path

    # -- accounts and harvest -------------------------------------------------
    def harvest_accounts(self):
        c, rnd = self.cfg, np.random.default_rng(2026)
        self.key = self.path("master.wmkey")
        self.new_key(self.key, "master")
        ids = [int(x) for x in rnd.choice(2 ** 62, c["n_ids"], replace=False) + 1]
        self.ids = ids
        self.groups = {}
        at = 0
        for k in c["groups"]:  # contributors: distinct accounts of the list, spread through it
            self.groups[k] = [ids[(at + i) * 97 % len(ids)] for i in range(k)]
            at += k
        with open(self.path("ids.txt"), "w") as f:
            f.write("".join(f"{i}\n" for i in ids))
        token = (lambda: rnd.bytes(12).hex()) if self.a.reduced else (lambda: secrets.token_hex(12))
        keys = {a: token() for g in self.groups.values() for a in g}
        control_key = token()
        acc = self.path("api-accounts.txt")
        fd = os.open(acc, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write("".join(f"{k} {a}\n" for a, k in keys.items()) + f"{control_key} 0\n")
        n_prompts = max(c["n_plain"], c["per_group"])
        self.prompts = [self.world.codec.decode(p) for p in self.world.prompts(n_prompts, seed=11)]
        P, T = self.prompts, c["n_tokens"]
        self.step(f"llama-server, master key with account-delta {self.a.account_delta}: "
                  f"{len(self.groups)} groups x {c['per_group']} answers, {c['control']} control answers")
        with Server(self.a.server, self.gguf, self.port, self.path("server-accounts.log"),
                    extra=("--wm-key", self.key, "--wm-accounts", acc)) as s:
            self.ans = {}
            for k, g in self.groups.items():  # answer i of group k: account g[i % k]
                jobs = [(keys[g[i % k]], P[i], 5000 + i) for i in range(c["per_group"])]
                self.ans[k], secs, toks = harvest(self.port, jobs, T, 8, f"group K={k}")
            self.control, _, _ = harvest(self.port, [(control_key, P[i], 5000 + i) for i in range(c["control"])],
                                         T, 8, "control (account 0)")
            s.stop()
        self.step(f"llama-server without the watermark: {c['n_plain']} answers")
        with Server(self.a.server, self.gguf, self.port, self.path("server-plain.log"),
                    extra=("--api-key", "plain")) as s:
            self.plain, _, _ = harvest(self.port, [("plain", P[i], 9000 + i) for i in range(c["n_plain"])], T, 8,
                                       "plain")
            s.stop()

    # -- teacher text: base test and perplexity, one account's answers ---------
    def teacher_text(self):
        c, enc, lw = self.cfg, self.world.codec.encode, self.libwm
        n = min(c["control"], c["per_group"], 300)
        pids = [enc(p) for p in self.prompts[:n]]
        ppl = {name: math.exp(gpt.answer_nll(self.tmodel, pids, [enc(a) for a in ans[:n]]))
               for name, ans in (("plain", self.plain), ("base only (account 0)", self.control),
                                 ("base + account layer", self.ans[c["groups"][0]]))}
        wmk = lw.Watermark(lw.Key.load(self.key), lw.Tokenizer(self.tok).n_vocab)
        base = {}
        for name, ans in (("base only (account 0)", self.control), ("base + account layer", self.ans[c["groups"][0]])):
            lps = [lw.detect(wmk, enc(a), prompt=enc(p))["log10_p"] for p, a in zip(self.prompts[:n], ans[:n])]
            corp = lw.Corpus(wmk)
            for p, a in zip(pids, ans[:n]):
                corp.add(p + enc(a), len(p))
            base[name] = dict(median_log10_p=statistics.median(lps), corpus_log10_p=corp.score()["log10_p"])
        self.res["teacher"] = dict(answers=n, perplexity=ppl, base_test=base)
        log(f"  perplexity (unwatermarked teacher): " + ", ".join(f"{k} {v:.2f}" for k, v in ppl.items()))
        log(f"  base test per answer (median log10 p): " +
            ", ".join(f"{k} {v['median_log10_p']:.2f}" for k, v in base.items()))
        # one account's own answers: tokens until it is named among direct_ids ids
        lim = math.log10(1e-6) - math.log10(c["direct_ids"])
        direct = []
        for k, g in self.groups.items():
            for j, acct in enumerate(g):
                corp, tokens, named_at = lw.Corpus(wmk, accounts=True), 0, None
                for i in range(j, len(self.ans[k]), k):
                    p = enc(self.prompts[i])
                    a = enc(self.ans[k][i])
                    corp.add(p + a, len(p))
                    tokens += len(a)
                    if corp.attribute([acct], top=1)["top"][0]["log10_p"] < lim:
                        named_at = tokens
                        break
                direct.append(dict(group=k, account=acct, tokens_to_name=named_at, answers_used=tokens))
        ts = [d["tokens_to_name"] for d in direct if d["tokens_to_name"]]
        if not ts:
            self.res["direct"] = dict(per_account=direct, check=dict(ok=False))
            log("  one account's own answers: no account named at p < 1e-6 from all its answers")
            return self.control_text(wmk, pids, n)
        first = next(d for d in direct if d["tokens_to_name"])
        # the claim, checked once against the whole list: named, and nobody else
        corp = lw.Corpus(wmk, accounts=True)
        k, acct, tokens = first["group"], first["account"], 0
        i = self.groups[k].index(acct)
        while tokens < first["tokens_to_name"]:
            p, a = enc(self.prompts[i]), enc(self.ans[k][i])
            corp.add(p + a, len(p))
            tokens += len(a)
            i += k
        rnd = np.random.default_rng(7)
        big = np.unique(rnd.integers(1, 2 ** 63, c["direct_ids"] + 10, dtype=np.uint64))[:c["direct_ids"] - 1]
        big = np.append(big, np.uint64(acct))
        r = corp.attribute(big, alpha=1e-6, top=3)
        ok = r["named"] == 1 and r["top"][0]["account"] == acct
        self.res["direct"] = dict(per_account=direct, check=dict(ids=int(big.size), tokens=tokens, result=r, ok=ok))
        log(f"  one account's own answers: named at p < 1e-6 among {c['direct_ids']:,} ids after median "
            f"{statistics.median(ts):.0f} tokens (min {min(ts)}, max {max(ts)}; {len(ts)}/{len(direct)} accounts); "
            f"check over the whole list: {'named alone' if ok else 'FAILED'}")
        self.control_text(wmk, pids, n)

    def control_text(self, wmk, pids, n):
        """The control answers (account 0): no account named."""
        enc = self.world.codec.encode
        corp = self.libwm.Corpus(wmk, accounts=True)
        for p, a in zip(pids, self.control[:n]):
            corp.add(p + enc(a), len(p))
        r0 = corp.attribute(self.ids, alpha=1e-3, top=1)
        self.res["control_named"] = r0["named"]
        self.res["control_best"] = r0["top"][0]["log10_p_family"]

    # -- students -----------------------------------------------------------------
    def attribute(self, f, key=None):
        out = self.wm("detect", "--key", key or self.key, "--tokenizer", self.tok, "--jsonl", "--prompt-field",
                      "prompt", "--json", "--accounts", self.path("ids.txt"), "--top", "30", f)
        rows = [json.loads(x) for x in out.splitlines()]
        return rows[0], rows[1]

    def students_accounts(self):
        c, w = self.cfg, self.world
        base, binfo = w.model("student-base" + ("-reduced" if self.a.reduced else ""), c["student"], 1, seed=2)
        nl = w.codec.encode("\n")
        enc = w.codec.encode
        doc = lambda p, a: enc(p) + enc(a) + nl  # noqa: E731
        plain = [doc(p, a) for p, a in zip(self.prompts, self.plain)]
        fresh = w.prompts(c["n_student"] + len(self.prompts), seed=23)[len(self.prompts):]
        runs = [(0, None)] + [(s, k) for s in c["shares"] for k in c["groups"]]
        self.rows = []
        for share, k in runs:
            n_wm = round(share / 100 * c["n_plain"])
            wmd = [doc(p, a) for p, a in zip(self.prompts, self.ans[k])][:n_wm] if k else []
            if len(wmd) < n_wm:
                raise RuntimeError(f"share {share}% needs {n_wm} answers of group {k}, harvested {len(wmd)}")
            stream = np.array([t for d in wmd + plain[n_wm:] for t in d], dtype=np.int32)
            name = f"{share}%" + (f", K={k}" if k else "")
            self.step(f"student {name}: fine-tuning on {len(stream):,} tokens ({n_wm} watermarked answers)")
            m = copy.deepcopy(base)
            loss, _ = gpt.train(m, stream, c["ft_steps"], c["ft_lr"], 24, 128, seed=100 + share + (k or 0), warmup=10)
            ans = gpt.sample(m, fresh, c["n_tokens"], seed=7 + share + (k or 0), banned=[w.eos])
            f = self.path(f"student_{share:03d}_k{k or 0}.jsonl")
            with open(f, "w") as fo:
                for p, a in zip(fresh, ans):
                    fo.write(json.dumps(dict(prompt=w.codec.decode(p), text=w.codec.decode(a))) + "\n")
            corpus, at = self.attribute(f)
            read = self.read_attribution(m)
            contrib = self.groups.get(k, [])
            top = at["top"]
            ranks = {t["account"]: i + 1 for i, t in enumerate(top)}
            innocent = [t for t in top if t["account"] not in contrib]
            row = dict(share=share, K=k or 0, ft_loss=loss, tuples=corpus["scored"], base_log10_p=corpus["log10_p"],
                       named=at["named"], named_innocent=sum(t["named"] for t in innocent),
                       contributors=[dict(account=a, rank=ranks.get(a), log10_p=next(
                           (t["log10_p"] for t in top if t["account"] == a), None),
                           named=any(t["named"] and t["account"] == a for t in top)) for a in contrib],
                       best_innocent_log10_p=innocent[0]["log10_p"], best_innocent_family=innocent[0]["log10_p_family"],
                       exact=at["exact"], reading=self.read_row(read, contrib))
            self.rows.append(row)
            log(f"  student {name}: base test log10 p {row['base_log10_p']:.2f}; named {row['named']} "
                f"({row['named_innocent']} innocent); contributors' ranks "
                f"{[x['rank'] for x in row['contributors']]}, log10 p {[x['log10_p'] and round(x['log10_p'], 2) for x in row['contributors']]}; "
                f"best innocent log10 p {row['best_innocent_log10_p']:.2f} (family {row['best_innocent_family']:.2f})")
            rr = row["reading"]
            log(f"    reading (weighted): base test log10 p {rr['base_log10_p']:.2f}; named {rr['named']} "
                f"({rr['named_innocent']} innocent); contributors' ranks {[x['rank'] for x in rr['contributors']]}, "
                f"log10 p {[x['log10_p'] and round(x['log10_p'], 2) for x in rr['contributors']]}; best innocent "
                f"{rr['best_innocent_log10_p']:.2f} (family {rr['best_innocent_family']:.2f})")
            if share == 0:
                self.null_reading(m)
        self.res["students"] = self.rows

    def read_docs(self):
        enc = self.world.codec.encode
        return [(enc(p) + enc(a), len(enc(p))) for p, a in zip(self.prompts, self.control)]

    def read_attribution(self, m, keys=None):
        """Weighted reading of the control answers (account 0) by student m,
        the teacher as reference; one reader per key, one forward pass."""
        lw = self.libwm
        n_vocab = lw.Tokenizer(self.tok).n_vocab
        wms = [lw.Watermark(k, n_vocab) for k in (keys or [lw.Key.load(self.key)])]
        readers = [lw.Reader(w, weighted=True, accounts=True) for w in wms]
        lw.read_torch(readers, m, self.read_docs(), k=256, batch=32, max_len=self.cfg["student"]["n_ctx"],
                      reference=self.tmodel)
        return [(r.score(), r.attribute(self.ids, alpha=1e-3, top=30)) for r in readers] if keys else \
            (readers[0].score(), readers[0].attribute(self.ids, alpha=1e-3, top=30))

    @staticmethod
    def read_row(read, contrib):
        score, at = read
        top = at["top"]
        ranks = {t["account"]: i + 1 for i, t in enumerate(top)}
        innocent = [t for t in top if t["account"] not in contrib]
        return dict(base_log10_p=score["log10_p"], tuples=at["tuples"], named=at["named"],
                    named_innocent=sum(t["named"] for t in innocent),
                    contributors=[dict(account=a, rank=ranks.get(a), log10_p=next(
                        (t["log10_p"] for t in top if t["account"] == a), None),
                        named=any(t["named"] and t["account"] == a for t in top)) for a in contrib],
                    best_innocent_log10_p=innocent[0]["log10_p"], best_innocent_family=innocent[0]["log10_p_family"])

    def null_reading(self, m):
        """The 0% student read under other master keys: weighted base test and best account."""
        lw = self.libwm
        keys = [lw.Key.load(self.new_key(self.path("null.wmkey"), f"null reading {i}")) for i in range(self.cfg["null_keys"])]
        os.unlink(self.path("null.wmkey"))
        res = self.read_attribution(m, keys)
        out = [dict(base_log10_p=s["log10_p"], best_log10_p=a["top"][0]["log10_p"], named=a["named"]) for s, a in res]
        self.res["null_reading"] = out
        log(f"  0% student read under {len(out)} other master keys: accounts named {sum(x['named'] for x in out)}; "
            f"weighted base test log10 p min {min(x['base_log10_p'] for x in out):.2f}; best account log10 p min "
            f"{min(x['best_log10_p'] for x in out):.2f} (of {self.cfg['n_ids']:,} ids)")

    def null_keys(self):
        """The 0% student under master keys that never touched it: test 1 and the best account."""
        f = self.path("student_000_k0.jsonl")
        out = []
        for i in range(self.cfg["null_keys"]):
            k = self.path(f"null-{i}.wmkey")
            self.new_key(k, f"null {i}")
            corpus, at = self.attribute(f, key=k)
            out.append(dict(base_log10_p=corpus["log10_p"], best_log10_p=at["top"][0]["log10_p"],
                            best_family=at["top"][0]["log10_p_family"], named=at["named"]))
            os.unlink(k)
        ps = sorted(10 ** x["best_log10_p"] for x in out)
        base = sorted(10 ** x["base_log10_p"] for x in out)
        n = len(ps)
        # the best of n_ids p-values: under H0 min p ~ Beta(1, n_ids); 1-(1-p)^n_ids is uniform
        u = sorted(1 - (1 - p) ** self.cfg["n_ids"] for p in ps)
        ks = lambda v: max(max((i + 1) / n - x, x - i / n) for i, x in enumerate(v))  # noqa: E731
        self.res["null_keys"] = dict(runs=out, ks_best_account=ks(u), ks_base=ks(base),
                                     named=sum(x["named"] for x in out))
        log(f"  0% student under {n} other master keys: accounts named {self.res['null_keys']['named']}; "
            f"KS D of the best account's p (as a min of {self.cfg['n_ids']:,}) {ks(u):.3f}, of test 1 {ks(base):.3f}")

    def report(self):
        json.dump(self.res, open(self.path("attribution.json"), "w"), indent=1)
        md = ["| share | K | mode | base test log10 p | contributors named | their ranks | their log10 p | "
              "innocents named | best innocent log10 p (family-wise) |", "|---:|---:|---|---:|---:|---|---|---:|---:|"]
        for r0, mode, r in [x for r in self.rows for x in ((r, "answers", r), (r, "reading", r["reading"]))]:
            cs = r["contributors"]
            ranks = ", ".join(str(x["rank"] or ">30") for x in cs) or "-"
            lps = ", ".join("-" if x["log10_p"] is None else f"{x['log10_p']:.2f}" for x in cs) or "-"
            md.append(f"| {r0['share']}% | {r0['K']} | {mode} | {r['base_log10_p']:.2f} | "
                      f"{sum(x['named'] for x in cs)}/{len(cs)} | {ranks} | {lps} | {r['named_innocent']} | "
                      f"{r['best_innocent_log10_p']:.2f} ({r['best_innocent_family']:.2f}) |")
        open(self.path("attribution.md"), "w").write("\n".join(md) + "\n")
        print("\n".join(md))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    for a in ("--out", "--wm", "--server", "--gguf-py", "--cache"):
        ap.add_argument(a, required=True)
    ap.add_argument("--reduced", action="store_true")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--account-delta", type=float, default=2.0)
    for a in ("--shares", "--ft-steps", "--n-harvest"):
        ap.add_argument(a, default=None)
    d = Attribution(ap.parse_args())
    d.teacher()
    d.harvest_accounts()
    d.teacher_text()
    d.students_accounts()
    d.null_keys()
    d.report()
    log(f"attribution demo: done in {d.res.setdefault('seconds', round(__import__('time').time() - d.t0))} s; "
        f"everything is in {d.out}")
    json.dump(d.res, open(d.path("attribution.json"), "w"), indent=1)
    if d.a.reduced:
        s = [r for r in d.rows if r["K"]]
        zero = [r for r in d.rows if not r["K"]]
        ok = all(r["named_innocent"] == 0 and r["reading"]["named_innocent"] == 0 for r in d.rows) \
            and all(x["named"] for r in s for x in r["reading"]["contributors"]) \
            and all(r["named"] == 0 and r["reading"]["named"] == 0 for r in zero) and d.res["direct"]["check"]["ok"] \
            and d.res["control_named"] == 0 and d.res["null_keys"]["named"] == 0 \
            and all(x["named"] == 0 for x in d.res["null_reading"])
        print("reduced attribution demo: " + ("bars met" if ok else "a bar is missed"))
        sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
