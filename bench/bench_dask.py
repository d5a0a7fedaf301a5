#!/usr/bin/python3
"""libwm.dask against one machine's libwm.Corpus on the same data: records
per second of the cluster job (map, tasks shuffle, reduce, merge) on a
LocalCluster of 1 and 2 worker processes, and the single machine's tuples
per second; every run's p-value must equal the single machine's bits.

    LIBWM_LIBRARY=build/libwm/libwm.so bench_dask.py [--tokens N] [--repeats R]

One JSON line per measurement (bench/results-*-dask.jsonl)."""
import argparse
import json
import os
import random
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "python"))
os.environ["PYTHONPATH"] = sys.path[0] + os.pathsep + os.environ.get("PYTHONPATH", "")  # the workers'
import numpy as np  # noqa: E402

import libwm  # noqa: E402
import libwm.dask as ldask  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--tokens", type=int, default=2_000_000)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--doc-len", type=int, default=200)
    o = ap.parse_args()
    from distributed import Client, LocalCluster
    mk = ldask.SeedKey(bytes(range(32)), 50257, scheme="kgw", context_width=2)
    wm = mk()
    rng = np.random.default_rng(1)
    docs = [rng.integers(0, 50257, o.doc_len, dtype=np.int32) for _ in range(o.tokens // o.doc_len)]
    dup = random.Random(2)  # a tenth of the documents repeat an earlier one: duplicates to drop
    for i in range(1, len(docs), 10):
        docs[i] = docs[dup.randrange(i)]
    best = None
    for _ in range(o.repeats):
        t = time.perf_counter()
        c = libwm.Corpus(wm)
        for d in docs:
            c.add(d)
        s = c.score()
        best = min(best or 1e9, time.perf_counter() - t)
    want = s["log10_p"].hex()
    print(json.dumps({"bench": "corpus_single", "tokens": o.tokens, "tuples": s["scored"], "seconds": best,
                      "tuples_per_s": s["scored"] / best}), flush=True)
    for workers in (1, 2):
        with LocalCluster(n_workers=workers, processes=True, threads_per_worker=1, dashboard_address=None) as cl, \
                Client(cl) as client:
            best, stats = None, {}
            for _ in range(o.repeats):
                t = time.perf_counter()
                job = ldask.run(client, mk, docs, chunks=4 * workers, shards=4 * workers)
                got = job.corpus(wm).score()
                el = time.perf_counter() - t
                if got["log10_p"].hex() != want:
                    raise SystemExit(f"bench_dask: {workers} workers gave log10 p {got['log10_p']!r}, "
                                     f"one machine {s['log10_p']!r}")
                best, stats = min(best or 1e9, el), job.stats
            print(json.dumps({"bench": "corpus_dask", "workers": workers, "tokens": o.tokens,
                              "records": stats["records"], "kept": stats["kept"], "seconds": best,
                              "records_per_s": stats["records"] / best, "equal_bits": True,
                              "chunks": stats["chunks"], "shards": stats["shards"]}), flush=True)


if __name__ == "__main__":
    main()
