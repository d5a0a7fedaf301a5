#!/usr/bin/python3
"""libwm.dask against one machine's libwm.Corpus on the same data: records
per second of the cluster job (map, tasks shuffle, reduce, merge) on a
LocalCluster of 1 and 2 worker processes, and the single machine's tuples
per second; every run's p-value must equal the single machine's bits.

    LIBWM_LIBRARY=build/libwm/libwm.so bench_dask.py [--tokens N] [--repeats R]
        [--workers 1,2] [--rounds R]

One JSON line per measurement (bench/results-*-dask.jsonl), with the
memory: the driver's peak RSS, each worker's peak RSS above its RSS before
the job (getrusage in the worker processes, fresh for each cluster size)
and that sum per record in flight (records / rounds).

The 10^9-token LocalCluster run (issue 29; docs/CLUSTER.md projects its
time from the 10^7 run and says what memory it needs on a 23 GB machine):

    LIBWM_LIBRARY=build-release/libwm/libwm.so nice -n 10 /usr/bin/python3 bench/bench_dask.py \
        --tokens 1000000000 --repeats 1 --workers 2 --rounds 16 >> bench/results-xeon-dask.jsonl
"""
import argparse
import json
import os
import random
import resource
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
    ap.add_argument("--workers", default="1,2", help="cluster sizes, comma-separated")
    ap.add_argument("--rounds", type=int, default=1, help="rounds over fingerprint ranges (docs/CLUSTER.md)")
    o = ap.parse_args()
    common = {"cpu": "Intel Xeon, 2 cores shared with other jobs", "command": " ".join(["bench_dask.py"] + sys.argv[1:]),
              "kgw_h": 2, "n_vocab": 50257, "doc_len": o.doc_len}
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
        del c  # its dedup set, before the cluster's runs
    want = s["log10_p"].hex()
    print(json.dumps({"bench": "corpus_single", "tokens": o.tokens, "tuples": s["scored"], "seconds": best,
                      "tuples_per_s": s["scored"] / best, "driver_peak_rss_mb": _peak_mb(),
                      "load_avg_1min_after": os.getloadavg()[0], **common}), flush=True)
    for workers in (int(w) for w in o.workers.split(",")):
        with LocalCluster(n_workers=workers, processes=True, threads_per_worker=1, dashboard_address=None) as cl, \
                Client(cl) as client:
            best, stats = None, {}
            client.run(_load_libwm)
            base = client.run(_rss_mb)  # each worker's RSS before any job (Python, Dask, libwm loaded)
            for _ in range(o.repeats):
                t = time.perf_counter()
                job = ldask.run(client, mk, docs, chunks=4 * workers * o.rounds, shards=4 * workers, rounds=o.rounds)
                got = job.corpus(wm).score()
                el = time.perf_counter() - t
                if got["log10_p"].hex() != want:
                    raise SystemExit(f"bench_dask: {workers} workers gave log10 p {got['log10_p']!r}, "
                                     f"one machine {s['log10_p']!r}")
                best, stats = min(best or 1e9, el), job.stats
            peak = client.run(_peak_mb)
            above = {w: peak[w] - base[w] for w in peak}
            in_flight = stats["records"] / o.rounds
            print(json.dumps({"bench": "corpus_dask", "workers": workers, "tokens": o.tokens,
                              "records": stats["records"], "kept": stats["kept"], "seconds": best,
                              "records_per_s": stats["records"] / best, "equal_bits": True,
                              "chunks": stats["chunks"], "shards": stats["shards"], "rounds": o.rounds,
                              "worker_rss_before_mb": sorted(base.values()),
                              "worker_peak_above_mb": sorted(above.values()),
                              "bytes_per_record_in_flight": sum(above.values()) * 2**20 / in_flight,
                              "driver_peak_rss_mb": _peak_mb(), "load_avg_1min_after": os.getloadavg()[0],
                              **common}), flush=True)


def _peak_mb():
    """This process's peak resident set (Linux: ru_maxrss in KiB), MiB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _rss_mb():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def _load_libwm():
    import libwm  # noqa: F401 - the library and numpy in the worker before its baseline
    import pandas  # noqa: F401


if __name__ == "__main__":
    main()
