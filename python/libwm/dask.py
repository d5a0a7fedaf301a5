"""Corpus detection on a Dask cluster, bit for bit equal to one machine.

    from distributed import Client
    import libwm, libwm.dask
    client = Client("tcp://scheduler:8786")
    c = libwm.dask.corpus(client, libwm.dask.KeyFile("provider.wmkey", 151936), docs,
                          filter=provider_outputs, accounts=True)
    c.score(), c.audit(), c.attribute(ids)     # a libwm.Corpus: same dicts, same bits

Why it is exact: include/wm/cluster.h.  The job, in Dask's terms:
  map      one task per chunk of documents (a worker holds whole documents
           and the key): a WM_CORPUS_MAP corpus applies every admission rule
           but the corpus-wide dedup and emits one record per admitted
           tuple (fingerprint, document index, score, account cell);
  shuffle  the records partitioned by fingerprint (dask.dataframe's "tasks"
           shuffle: the p2p shuffle needs pyarrow, which Debian lacks);
  reduce   per shard, per fingerprint, the record of the smallest document
           index (one machine's first occurrence), then the shard's exact
           per-document score sums (wm_corpus_deltas) and its account tally;
  merge    on the driver: the shards' deltas in document order into a fresh
           corpus (wm_corpus_merge), whose score, audit and attribute are
           then those of one corpus fed every document in order.
Reducers need the library but not the key; the key travels as a KeyFile
(each worker reads the file itself) or any picklable callable returning a
libwm.Watermark.

A failed task is retried by Dask on another worker; a task that cannot be
run (every retry failed, or the workers are gone) raises, so the result is
exact or there is none.  docs/CLUSTER.md: running on a real cluster.
"""
import operator

import numpy as np

import libwm

__all__ = ["KeyFile", "SeedKey", "Job", "run", "corpus", "reader"]

_CELL_NONE = 0xFFFFFFFF
_COLUMNS = ("fp", "doc", "score", "cell")


class KeyFile:
    """The watermark from a key file every worker can read (the secret never
    crosses the network; the path must name the same file on every host)."""

    def __init__(self, path, n_vocab):
        self.path, self.n_vocab = str(path), int(n_vocab)

    def __call__(self):
        return _cached(("file", self.path, self.n_vocab),
                       lambda: libwm.Watermark(libwm.Key.load(self.path), self.n_vocab))


class SeedKey:
    """The watermark of libwm.Key.from_seed (tests and demos only)."""

    def __init__(self, seed, n_vocab, **params):
        self.seed, self.n_vocab, self.params = bytes(seed), int(n_vocab), dict(params)

    def __call__(self):
        ident = ("seed", self.seed, self.n_vocab, tuple(sorted(self.params.items())))
        return _cached(ident, lambda: libwm.Watermark(libwm.Key.from_seed(self.seed, **self.params), self.n_vocab))


_WATERMARKS = {}  # per worker process: a watermark is immutable, so tasks share it


def _cached(ident, make):
    if ident not in _WATERMARKS:
        _WATERMARKS[ident] = make()
    return _WATERMARKS[ident]


def _document(d):
    """A document: token ids, or (token ids, n_prompt).  numpy arrays travel
    as they are (a few bytes a token in the task graph; int32 ones reach the
    C library without a copy), anything else as a list."""
    ids, n_prompt = d if isinstance(d, tuple) else (d, 0)
    return (ids if hasattr(ids, "__array_interface__") else list(ids)), int(n_prompt)


def _map(make_watermark, chunk, filter, accounts, round=0, rounds=1):
    """Map task: chunk = [(document index, tokens, n_prompt)] -> (records as a
    DataFrame, [(document index, tokens it gave)]).  Only the records whose
    fingerprint is `round` modulo `rounds` are kept (a round's range)."""
    import pandas as pd
    c = libwm.Corpus(make_watermark(), filter=filter, accounts=accounts, _map=True)
    given, before = [], 0
    for doc, tokens, n_prompt in chunk:
        c._add_doc(doc, tokens, n_prompt)
        after = c._totals()["tokens"]
        given.append((doc, after - before))
        before = after
    r = c._take_records()
    if rounds > 1:
        r = r[r["fp"] % np.uint64(rounds) == np.uint64(round)]
    return pd.DataFrame({k: r[k] for k in _COLUMNS}), given


def _empty_records():
    import pandas as pd
    return pd.DataFrame({"fp": np.zeros(0, np.uint64), "doc": np.zeros(0, np.uint64),
                         "score": np.zeros(0, np.float64), "cell": np.zeros(0, np.uint32)})


def _reduce(df, accounts, keep_largest=False):
    """Reduce task: one shard's records -> (deltas, tally, records in).
    keep_largest: the negative control (keeps the wrong occurrence)."""
    fp, doc = df["fp"].to_numpy(np.uint64), df["doc"].to_numpy(np.uint64)
    order = np.lexsort((~doc if keep_largest else doc, fp))  # by fp, then doc
    first = np.ones(order.size, bool)
    first[1:] = fp[order][1:] != fp[order][:-1]
    keep = order[first]
    keep = keep[np.argsort(doc[keep], kind="stable")]  # document order for the sums
    tally = None
    if accounts:
        cell = df["cell"].to_numpy(np.uint32)[keep]
        if np.any(cell == _CELL_NONE):
            raise ValueError("a record without an account cell in an accounts run")
        tally = np.bincount(cell, minlength=libwm.ACCOUNT_CELLS).astype(np.uint64)
    deltas = libwm._corpus_deltas(df["score"].to_numpy(np.float64)[keep], doc[keep])
    return deltas, tally, len(df)


class Job:
    """A cluster's totals, on the driver: the shards' deltas in document
    order, the tokens each document gave, the account tally (or None)."""

    def __init__(self, deltas, doc_tokens, tally, stats):
        self.deltas, self.doc_tokens, self.tally, self.stats = deltas, doc_tokens, tally, stats

    def corpus(self, watermark):
        """The libwm.Corpus of every document (wm_corpus_merge)."""
        return libwm.Corpus._merged(watermark, self.deltas, int(self.doc_tokens.sum()), self.doc_tokens.size,
                                    self.tally, self.tally is not None)

    def audits(self, watermark, looks, alpha=1e-3, target=1e-6):
        """The sequential audit after each of `looks` (increasing document
        counts), as `wm detect --corpus --audit` looks: [(documents, audit
        dict)].  One corpus, merged a look's documents at a time."""
        c = libwm.Corpus._merged(watermark, self.deltas[:0], 0, 0)
        out, done = [], 0
        for n in looks:
            if not done <= n <= self.doc_tokens.size:
                raise ValueError(f"looks must increase within [0, {self.doc_tokens.size}]")
            lo, hi = np.searchsorted(self.deltas["doc"], [done, n])
            c._merge(self.deltas[lo:hi], int(self.doc_tokens[done:n].sum()), n)
            out.append((n, c.audit(alpha, target)))
            done = n
        return out


def run(client, make_watermark, docs, filter=None, accounts=False, chunks=None, shards=None,
        _keep_largest=False, rounds=1):
    """The job on `client`, a distributed.Client: map, shuffle, reduce;
    returns the Job (merge it with .corpus() or .audits()).  docs: an
    iterable of token-id lists, or of (ids, n_prompt) pairs, in the order
    `wm detect --corpus` reads them.  make_watermark: KeyFile, SeedKey or
    any picklable callable returning the libwm.Watermark.  filter: as
    libwm.Corpus (token-id documents; every map worker gets them).  chunks:
    map tasks (default: 4 per worker); shards: reduce partitions (default:
    chunks).  rounds: the job in that many rounds over fingerprint ranges
    (fingerprint modulo rounds), one after the other, so that only a
    rounds-th of the records is in flight at once; the maps are repeated
    each round (docs/CLUSTER.md).  A task that cannot be run raises (distributed's KilledWorker,
    or the task's own error): there is no partial result."""
    import dask
    import dask.dataframe as dd
    docs = [_document(d) for d in docs]
    n_workers = max(1, len(client.scheduler_info().get("workers", {})))
    chunks = max(1, min(chunks or 4 * n_workers, max(1, len(docs))))
    shards = max(1, shards or chunks)
    # round robin: a worker's documents are not contiguous, as on a real
    # cluster fed from many files; the result may not depend on it
    parts = [[(i, t, p) for i, (t, p) in enumerate(docs) if i % chunks == k] for k in range(chunks)]
    filter = None if filter is None else [list(f) for f in filter]
    out, given = [], None
    for r in range(rounds):  # a fingerprint lives in one round: the rounds' kept records are disjoint
        mapped = [dask.delayed(_map, pure=False)(make_watermark, part, filter, accounts, r, rounds) for part in parts]
        frames = [dask.delayed(operator.getitem)(m, 0) for m in mapped]
        tokens = [dask.delayed(operator.getitem)(m, 1) for m in mapped]
        records = dd.from_delayed(frames, meta=_empty_records(), verify_meta=False)
        shuffled = records.shuffle("fp", npartitions=shards, shuffle="tasks", ignore_index=True)
        reduced = [dask.delayed(_reduce)(p, accounts, _keep_largest) for p in shuffled.to_delayed()]
        got, tokens = client.compute([reduced, tokens], sync=True)
        out += got
        if r == 0:  # the tokens each document gave, once
            given = tokens
    deltas = np.concatenate([d for d, _, _ in out]) if out else np.zeros(0, np.dtype(libwm._CorpusDelta))
    deltas = deltas[np.argsort(deltas["doc"], kind="stable")]  # a document's pieces add up in any order
    doc_tokens = np.zeros(len(docs), np.uint64)
    for part in given:
        for doc, n in part:
            doc_tokens[doc] = n
    tally = None
    if accounts:
        tally = np.zeros(libwm.ACCOUNT_CELLS, np.uint64)
        for _, t, _ in out:
            tally += t
    stats = dict(records=sum(n for _, _, n in out), kept=int(deltas["scored"].sum()), tokens=int(doc_tokens.sum()),
                 documents=len(docs), chunks=chunks, shards=shards, rounds=rounds)
    return Job(deltas, doc_tokens, tally, stats)


def corpus(client, make_watermark, docs, filter=None, accounts=False, chunks=None, shards=None,
           _keep_largest=False, stats=None, rounds=1):
    """run() then the merged libwm.Corpus: score(), audit() and attribute()
    give one machine's dicts, bit for bit.  stats: a dict, filled with
    records (emitted by the maps), kept, tokens, documents, chunks, shards."""
    job = run(client, make_watermark, docs, filter, accounts, chunks, shards, _keep_largest, rounds)
    if stats is not None:
        stats.update(job.stats)
    return job.corpus(make_watermark())


def _map_reader(make_watermark, chunk, accounts):
    """Map task of reading mode: chunk = [(document index, tokens, preds,
    n_prompt)] -> (records as a DataFrame, (tokens, positions))."""
    import pandas as pd
    r = libwm.Reader(make_watermark(), accounts=accounts, _map=True)
    for doc, tokens, preds, n_prompt in chunk:
        r._add_doc(doc, tokens, preds, n_prompt)
    rec = r._take_records()
    return pd.DataFrame({k: rec[k] for k in _COLUMNS}), r._counts()


def reader(client, make_watermark, docs, accounts=False, chunks=None, shards=None):
    """Plain reading mode (libwm.Reader without weights) on the cluster:
    docs = [(tokens, preds, n_prompt)] in the order one reader would add
    them (preds: len(tokens) rows of k ids, -1 not read).  The same map,
    shuffle and reduce as run(); returns the merged libwm.Reader, whose
    score() (positions included) and attribute() are one reader's, bit for
    bit (include/wm/cluster.h).  The weighted reader does not split exactly
    (docs/CLUSTER.md)."""
    import dask
    import dask.dataframe as dd
    docs = [(list(t) if not hasattr(t, "__array_interface__") else t, np.asarray(p), int(n)) for t, p, n in docs]
    n_workers = max(1, len(client.scheduler_info().get("workers", {})))
    chunks = max(1, min(chunks or 4 * n_workers, max(1, len(docs))))
    shards = max(1, shards or chunks)
    parts = [[(i, t, p, n) for i, (t, p, n) in enumerate(docs) if i % chunks == k] for k in range(chunks)]
    mapped = [dask.delayed(_map_reader, pure=False)(make_watermark, part, accounts) for part in parts]
    frames = [dask.delayed(operator.getitem)(m, 0) for m in mapped]
    counts = [dask.delayed(operator.getitem)(m, 1) for m in mapped]
    records = dd.from_delayed(frames, meta=_empty_records(), verify_meta=False)
    shuffled = records.shuffle("fp", npartitions=shards, shuffle="tasks", ignore_index=True)
    reduced = [dask.delayed(_reduce)(p, accounts) for p in shuffled.to_delayed()]
    out, counts = client.compute([reduced, counts], sync=True)
    r = libwm.Reader(make_watermark(), accounts=accounts)
    for deltas, tally, _ in out:
        r._merge(deltas, 0, 0, tally)
    r._merge(np.zeros(0, np.dtype(libwm._CorpusDelta)), sum(t for t, _ in counts), sum(p for _, p in counts),
             np.zeros(libwm.ACCOUNT_CELLS, np.uint64) if accounts else None)
    return r
