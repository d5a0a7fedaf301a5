#!/usr/bin/env python3
"""libwm.dask on a LocalCluster of 4 worker processes against one machine's
libwm.Corpus, bit for bit (issue 29).

    test_dask.py LIBWM_SO WM WM_DASK

Every p-value and statistic is compared as float.hex, with the named
accounts, over the cases and chunk/shard splits the issue lists; the
negative control (keep each fingerprint's largest document index) must
differ; a worker killed inside a task gives the exact result (Dask reruns
the task) and a task that kills every worker it lands on fails the job
(KilledWorker), never a different p-value; the wm-dask command against the
same cluster prints what `wm detect --corpus --json` would.
Prints cmocka-style lines (tests/checks.py)."""
import json
import os
import random
import subprocess
import sys
import tempfile
import time

SO, WM, WM_DASK = (os.path.abspath(a) for a in sys.argv[1:4])
PYDIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "python")
os.environ["LIBWM_LIBRARY"] = SO
os.environ["PYTHONPATH"] = PYDIR + os.pathsep + os.environ.get("PYTHONPATH", "")  # the workers'
sys.path.insert(0, PYDIR)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import numpy as np  # noqa: E402

import libwm  # noqa: E402
import libwm.dask as ldask  # noqa: E402
from checks import check, summary  # noqa: E402

SPLITS = [(1, 1), (3, 2), (7, 5), (23, 16)]
# The library's fingerprint width (-Dtuple_fp_bits, scripts/test.sh runs this
# test again in a 10-bit build, where collisions are common).
FP_BITS = int(os.environ.get("WM_TUPLE_FP_BITS", "64"))


def collisions(mk, docs, filter, accounts):
    """Fingerprints that two different admitted tuples share, seen by their
    payloads: the map's records (one chunk, every document) grouped by
    fingerprint, counting those with more than one (score, cell).  A lower
    bound (kgw tuples with equal scores and cells that collide go unseen),
    and one that makes a dropped-tuple difference matter: the control keeps
    another payload there."""
    df, _ = ldask._map(mk, [(i, t, p) for i, (t, p) in enumerate(docs)], filter, accounts)
    per_fp = df.drop_duplicates(["fp", "score", "cell"]).groupby("fp").size()
    return int((per_fp > 1).sum()), int(df["fp"].nunique())
ACCOUNTS = [11, 22, 33] + list(range(1000, 1040))  # 11 and 22 generate; the rest are innocent


def hexed(x):
    """Every float as float.hex, recursively: equality means the same bits."""
    if isinstance(x, float):
        return x.hex()
    if isinstance(x, dict):
        return {k: hexed(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [hexed(v) for v in x]
    return x


def results(c, accounts):
    out = dict(score=c.score(1e-3), audit=c.audit(1e-3, 1e-6))
    if accounts:
        out["attribute"] = c.attribute(ACCOUNTS, 0.01, top=len(ACCOUNTS))
    return hexed(out)


def generate(wm, rng, n, account, h):
    """A watermarked document of n tokens (kgw: biased logits, argmax;
    gumbel: the watermark's selection over random weights)."""
    t = [rng.randrange(wm.n_vocab) for _ in range(min(n, h))]
    nrng = np.random.default_rng(rng.randrange(2**32))
    while len(t) < n:
        if wm.scheme == "gumbel":
            w = nrng.random(wm.n_vocab).astype(np.float32) + 0.05
            tok = wm.select(t, np.arange(wm.n_vocab), w)
            t.append(int(nrng.integers(wm.n_vocab)) if tok is None else tok)
        else:
            logits = nrng.normal(0, 1, wm.n_vocab).astype(np.float32)
            wm.bias(logits, t, account if wm.params.get("account_delta") else 0)
            t.append(int(np.argmax(logits)))
    return t


def make_docs(wm, seed, n_docs, h, prompts):
    """Watermarked, plain, empty and shorter-than-h documents, some with
    prompts; with repeats of whole documents (duplicates across workers)."""
    rng = random.Random(seed)
    docs = []
    for i in range(n_docs):
        kind = i % 7
        n = [0, max(0, h - 1), rng.randrange(5, 60)][min(kind, 2)] if kind < 3 else rng.randrange(5, 60)
        if kind in (3, 4):
            t = generate(wm, rng, n, (11, 22)[kind - 3], h)
        elif kind == 5 and docs:
            t = list(rng.choice(docs)[0])  # a repeat
        else:
            t = [rng.randrange(wm.n_vocab) for _ in range(n)]
        p = rng.randrange(len(t) + 1) if prompts and t and rng.random() < 0.4 else 0
        docs.append((t, p))
    return docs


CASES = [  # name, key, n_vocab, accounts, filter
    ("kgw h=1 vocab 8", dict(scheme="kgw", context_width=1), 8, False, False),
    ("kgw h=2 accounts", dict(scheme="kgw", context_width=2, account_delta=2.0), 97, True, False),
    ("kgw h=2 accounts filter", dict(scheme="kgw", context_width=2, account_delta=2.0), 97, True, True),
    ("gumbel h=4", dict(scheme="gumbel", context_width=4), 61, False, False),
    ("gumbel h=1 filter", dict(scheme="gumbel", context_width=1), 23, False, True),
]


def one_machine(wm, docs, filter, accounts):
    """One machine's results, with the audit after every document."""
    c = libwm.Corpus(wm, filter=filter, accounts=accounts)
    looks = []
    for t, p in docs:
        c.add(t, p)
        looks.append(hexed(c.audit(1e-3, 1e-6)))
    return dict(results(c, accounts), looks=looks)


def on_cluster(client, mk, docs, filter, accounts, chunks, shards, keep_largest=False, stats=None, rounds=1):
    """The cluster's, the same way: the final corpus, and the audit after
    every document (Job.audits: the merge a document at a time)."""
    job = ldask.run(client, mk, docs, filter, accounts, chunks, shards, _keep_largest=keep_largest, rounds=rounds)
    if stats is not None:
        stats.update(job.stats)
    wm = mk()
    looks = [hexed(a) for _, a in job.audits(wm, range(1, len(docs) + 1))]
    return dict(results(job.corpus(wm), accounts), looks=looks)


class KillOnce:
    """A watermark maker that kills the worker process the first time it runs
    in one (a worker dying mid-task); later calls, and the driver, get the
    watermark."""

    def __init__(self, inner, flag):
        self.inner, self.flag = inner, flag

    def __call__(self):
        import distributed
        try:
            distributed.get_worker()
        except ValueError:
            return self.inner()  # the driver
        if self.flag is None or not os.path.exists(self.flag):
            if self.flag:
                open(self.flag, "w").close()
            os._exit(9)
        return self.inner()


def main():
    from distributed import Client, LocalCluster
    import dask
    t0 = time.time()
    dask.config.set({"distributed.scheduler.allowed-failures": 2})
    cluster = LocalCluster(n_workers=4, processes=True, threads_per_worker=1, dashboard_address=None)
    client = Client(cluster)
    print(f"# LocalCluster of 4 worker processes up in {time.time() - t0:.1f} s")
    tmp = tempfile.mkdtemp(prefix="wm-dask-")
    try:
        data, seen = {}, {}
        for i, (name, params, n_vocab, accounts, with_filter) in enumerate(CASES):
            mk = ldask.SeedKey(bytes((i * 31 + j) % 256 for j in range(32)), n_vocab, **params)
            wm = mk()
            h = params["context_width"]
            docs = make_docs(wm, 100 + i, 60, h, prompts=True)
            # the provider's outputs: some of the suspect's documents and others
            filter = [t for t, _ in docs[::3] + make_docs(wm, 900 + i, 12, h, False)] if with_filter else None
            want = one_machine(wm, docs, filter, accounts)
            data[name] = (mk, docs, filter, accounts, want)
            seen[name] = collisions(mk, docs, filter, accounts)
            for chunks, shards in SPLITS:
                @check(f"{name}: {chunks} chunks / {shards} shards equal one machine bit for bit")
                def _():
                    t = time.time()
                    stats = {}
                    got = on_cluster(client, mk, docs, filter, accounts, chunks, shards, stats=stats)
                    assert got == want, f"\n got {got}\nwant {want}"
                    print(f"#   {time.time() - t:.2f} s, {stats}")
            if accounts and not with_filter:
                @check(f"{name}: the generating accounts are named (the comparison is not vacuous)")
                def _():
                    named = {a["account"] for a in want["attribute"]["top"] if a["named"]}
                    assert {11, 22} <= named and not named - {11, 22}, named

        @check(f"fingerprint collisions at {FP_BITS} bits: none at 64, below 64 some in every case past the birthday bound")
        def _():
            print(f"#   {FP_BITS}-bit fingerprints: (fingerprints shared by two payloads, distinct fingerprints) "
                  f"{seen}")
            hit = [name for name, (n, _) in seen.items() if n]
            if FP_BITS == 64:
                assert not hit, hit
            else:  # 4 x 2^(bits/2) fingerprints: a collision is all but certain (kgw h=1 vocab 8 has 64 tuples)
                big = {name for name, (_, n) in seen.items() if n > 4 * 2 ** (FP_BITS / 2)}
                assert big and big <= set(hit), f"cases without a collision: {big - set(hit)}"

        @check("three rounds over fingerprint ranges equal one machine (kgw h=1 vocab 8, kgw h=2 accounts filter)")
        def _():
            for name in ("kgw h=1 vocab 8", "kgw h=2 accounts filter"):
                mk, docs, filter, accounts, want = data[name]
                assert on_cluster(client, mk, docs, filter, accounts, 7, 5, rounds=3) == want, name

        @check("no documents, and only empty ones: one machine's (empty) results")
        def _():
            mk, _, _, accounts, _ = data["kgw h=2 accounts"]
            for docs in ([], [([], 0), ([5], 1), ([], 0)]):
                assert on_cluster(client, mk, docs, None, accounts, 3, 2) == one_machine(mk(), docs, None, accounts)

        @check("negative control: keeping the largest document index differs from one machine")
        def _():
            for name, (mk, docs, filter, accounts, want) in data.items():
                got = on_cluster(client, mk, docs, filter, accounts, 7, 5, keep_largest=True)
                assert got != want, f"{name}: the control agrees"
                if not seen[name][0]:  # a collision keeps another tuple's score, so the score may differ then
                    assert got["score"] == want["score"], f"{name}: the fixed-n score does not depend on the tie-break"

        @check("plain reading mode: the cluster's reader equals one reader bit for bit (score, positions, attribution)")
        def _():
            for name in ("kgw h=1 vocab 8", "kgw h=2 accounts", "gumbel h=4", "gumbel h=1 filter"):
                mk, docs, _, accounts, _ = data[name]
                wm = mk()
                nrng = np.random.default_rng(7)
                rd = []
                for t, p in docs:  # the suspect's top-3 predictions, a tenth not read
                    pr = nrng.integers(0, wm.n_vocab, (len(t), 3))
                    pr[nrng.random(pr.shape) < 0.1] = -1
                    rd.append((t, pr, p))
                one = libwm.Reader(wm, accounts=accounts)
                for t, pr, p in rd:
                    one.add(t, pr, p)
                want = hexed(dict(score=one.score(1e-3), attribute=one.attribute(ACCOUNTS, 0.01, len(ACCOUNTS))
                                  if accounts else None))
                assert want["score"]["scored"] > 0 and want["score"]["positions"] > 0
                for chunks, shards in ((1, 1), (7, 5), (23, 16)):
                    r = ldask.reader(client, mk, rd, accounts, chunks, shards)
                    got = hexed(dict(score=r.score(1e-3), attribute=r.attribute(ACCOUNTS, 0.01, len(ACCOUNTS))
                                     if accounts else None))
                    assert got == want, f"{name} {chunks}/{shards}:\n got {got}\nwant {want}"

        mk, docs, filter, accounts, want = data["kgw h=2 accounts"]

        @check("wm-dask and wm detect --corpus --dask print what wm detect --corpus --json --ids prints, byte for byte (accounts, audit, filter)")
        def _():
            client.wait_for_workers(4, timeout=60)
            key = os.path.join(tmp, "k.wmkey")
            kgw = libwm.Key.from_seed(bytes(range(32)), scheme="kgw", context_width=2, account_delta=2.0)
            kgw.save(key)
            wm = libwm.Watermark(kgw, 97)
            files = []
            for j in range(2):  # two inputs: file order, then line
                files.append(os.path.join(tmp, f"docs{j}.txt"))
                with open(files[-1], "w") as f:
                    f.write("".join(" ".join(map(str, t)) + "\n" for t, _ in make_docs(wm, 7 + j, 30, 2, False) if t))
            acc = os.path.join(tmp, "accounts.txt")
            with open(acc, "w") as f:
                f.write("".join(f"{a}\n" for a in ACCOUNTS))
            for opts in (["--accounts", acc, "--top", "5"], ["--audit", "7"], ["--filter", files[1], "--alpha", "0.01"]):
                common = ["--key", key, "--vocab", "97"] + opts + files
                want = subprocess.run([WM, "detect", "--corpus", "--json", "--ids"] + common,
                                      capture_output=True, text=True, timeout=120)
                got = subprocess.run([WM_DASK, "--scheduler", cluster.scheduler_address, "--chunks", "5",
                                      "--shards", "3", "--rounds", "2"] + common, capture_output=True, text=True, timeout=300)
                assert want.returncode == 0 and got.returncode == 0, (want.stderr, got.stderr)
                assert len(want.stdout.splitlines()) >= 2 or opts[0] == "--filter", want.stdout
                assert got.stdout == want.stdout, f"{opts}:\n got {got.stdout}\nwant {want.stdout}"
                # the C CLI's alias: wm detect --corpus --dask SCHEDULER runs wm-dask ($WM_DASK)
                alias = subprocess.run([WM, "detect", "--corpus", "--json", "--ids", "--dask", cluster.scheduler_address]
                                       + common, capture_output=True, text=True, timeout=300,
                                       env=dict(os.environ, WM_DASK=WM_DASK))
                assert alias.returncode == 0 and alias.stdout == want.stdout, (opts, alias.stderr, alias.stdout)
            bad = subprocess.run([WM_DASK, "--scheduler", cluster.scheduler_address, "--key", key, "--vocab", "5"]
                                 + files, capture_output=True, text=True, timeout=120)
            assert bad.returncode == 2 and "docs0.txt:1: token id outside [0, 5)" in bad.stderr, bad.stderr
        @check("a worker killed inside a map task: Dask reruns it, the result is exact")
        def _():
            flag = os.path.join(tmp, "killed")
            got = results(ldask.corpus(client, KillOnce(mk, flag), docs, filter, accounts, 7, 5), accounts)
            assert os.path.exists(flag), "no worker was killed"
            assert got == {k: v for k, v in want.items() if k != "looks"}

        @check("a task that kills every worker it runs on: the job raises, no result")
        def _():
            client.wait_for_workers(4, timeout=120)
            try:
                ldask.corpus(client, KillOnce(mk, None), docs, filter, accounts, 3, 2)
            except Exception as e:  # noqa: BLE001 - any error will do: what matters is that no result came
                # KilledWorker as a rule; on a loaded machine a worker shutting down
                # may fail the task first (RuntimeError from its executor)
                print(f"#   the job failed with {type(e).__name__}: {str(e)[:100]}")
            else:
                raise AssertionError("a result came back")

    finally:
        client.close()
        cluster.close()
    print(f"# total {time.time() - t0:.1f} s")
    return summary()


if __name__ == "__main__":
    sys.exit(main())
