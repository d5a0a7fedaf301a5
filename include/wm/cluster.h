/* libwm: corpus detection past one machine, and corpus state that survives
 * a crash.  An advanced interface, part of <wm.h>; docs/CLUSTER.md runs it on
 * a Dask cluster (python/libwm/dask.py) and tests/test_cluster.c shows it at
 * work (map, reduce, merge; checkpoints).
 *
 * Why a corpus splits exactly.  Every admission rule of wm_corpus_add but
 * one is per document or read-only: the prompt rule and the seed-once rule
 * (gumbel) look at one document, the filter is a read-only predicate.  Only
 * the dedup set crosses documents, and it keeps a tuple's first occurrence:
 * the one of the smallest document index.  So:
 *   map:    a corpus made with WM_CORPUS_MAP applies every rule but the
 *           corpus-wide dedup (each document is deduplicated on its own)
 *           and emits one wm_corpus_record per admitted tuple: its
 *           fingerprint, its document's global index, its score and its
 *           account cell, which depend on the tuple only;
 *   reduce: records partitioned by fingerprint; per fingerprint the record
 *           of the smallest document index is kept.  That is exactly the
 *           single machine's first occurrence, fingerprint collisions
 *           included (both drop the later tuple);
 *   merge:  the kept records are disjoint, so counts, statistic and account
 *           tally add up.  The statistic is summed exactly (a 128-bit count
 *           of 2^-84, wm_corpus_deltas), which one machine does too, so the
 *           order of addition cannot change a bit.  The audit's maximum
 *           over document ends is rebuilt from per-document deltas in
 *           document order (wm_corpus_merge).
 * A merged corpus then answers wm_corpus_score, wm_corpus_audit and
 * wm_corpus_attribute with the same bits as one corpus fed every document
 * in order. */
#ifndef WM_CLUSTER_H
#define WM_CLUSTER_H

#include "detect.h"

#ifdef __cplusplus
extern "C" {
#endif

/* wm_corpus_new flag: a map worker's corpus (above); wm_reader_new takes it too (below).  Not with
 * WM_NO_DEDUP; with WM_ACCOUNTS the records carry account cells.  Its own
 * totals are no test: wm_corpus_score, _audit and _attribute refuse it
 * (WM_ERR_ARG). */
#define WM_CORPUS_MAP 4u

/* No account cell (a corpus without WM_ACCOUNTS). */
#define WM_CELL_NONE UINT32_MAX

typedef struct wm_corpus_record {
    uint64_t fp;       /* the tuple's 64-bit fingerprint, never 0 (the dedup key) */
    uint64_t doc;      /* its document's global index (wm_corpus_set_next_doc) */
    double score;      /* its score: kgw 0 or 1, gumbel -ln(1 - u) */
    uint32_t cell;     /* position * WM_ACCOUNT_SYMBOLS + part, or WM_CELL_NONE */
    uint32_t reserved; /* 0 */
} wm_corpus_record;

/* The index the next document added gets in its records (map corpora; by
 * default 0, then one more per document ended).  WM_ERR_ARG for a corpus
 * that is not WM_CORPUS_MAP or has a document open.  Not thread-safe:
 * one thread at a time per corpus. */
/* @return WM_OK; WM_ERR_ARG. */
WM_API WM_NODISCARD wm_status wm_corpus_set_next_doc(wm_corpus *c, uint64_t doc);

/* OUT *records, *n: the records of the documents added since the last
 * wm_corpus_records_clear, in order of addition; the array belongs to the
 * corpus and is valid until the next add, clear or free.  A record that
 * could not be kept for lack of memory made that add fail with
 * WM_ERR_NOMEM, and every later add too: a map corpus never hands out a
 * short list.  WM_ERR_ARG for a corpus that is not WM_CORPUS_MAP. */
/* @return WM_OK; WM_ERR_ARG (NULL argument, not a map corpus).  OUT: *records, *n.  Thread-safe
 * with other readers of c. */
WM_API WM_NODISCARD wm_status wm_corpus_records(const wm_corpus *c, const wm_corpus_record **records, size_t *n);
/* Forget the records handed out (memory kept).  WM_ERR_ARG as above. */
/* @return WM_OK; WM_ERR_ARG.  Not thread-safe: one thread at a time per corpus. */
WM_API WM_NODISCARD wm_status wm_corpus_records_clear(wm_corpus *c);

/* A statistic, exactly: hi * 2^64 + lo units of 2^-84. */
typedef struct wm_corpus_delta {
    uint64_t doc;      /* document index */
    uint64_t scored;   /* tuples first seen in it */
    uint64_t stat_hi, stat_lo; /* their summed score, exactly */
} wm_corpus_delta;

/* The exact per-document sums of n records' scores, the records sorted by
 * document (doc non-decreasing): OUT out[0..*n_out) one delta per run of
 * equal doc, in order; out has room for n.  Errors: WM_ERR_ARG (NULL with
 * n > 0, doc decreasing, a score that is not a non-negative multiple of
 * 2^-84 below 32, i.e. no score of any scheme), WM_ERR_LIMIT (a sum past
 * 2^128 units).  Pure; thread-safe. */
/* @return WM_OK or one of the errors above.  OUT: out, *n_out. */
WM_API WM_NODISCARD wm_status wm_corpus_deltas(const double *score, const uint64_t *doc, size_t n,
                                               wm_corpus_delta *out, size_t *n_out);

/* Totals of a corpus (OUT *out, versioned: out->size = sizeof *out, e.g.
 * WM_INIT(wm_corpus_totals)): documents ended, tokens given, tuples
 * scored, the exact statistic.
 * @return WM_OK; WM_ERR_ARG (NULL, or out->size not a size this library
 * knows: nothing written).  Pure; thread-safe on a corpus no thread
 * changes. */
typedef struct wm_corpus_totals {
    size_t size;
    uint64_t docs, tokens, scored;
    uint64_t stat_hi, stat_lo;
} wm_corpus_totals;
/* @return WM_OK; WM_ERR_ARG (NULL c or out).  OUT: *out.  Thread-safe with other readers of c. */
WM_API WM_NODISCARD wm_status wm_corpus_totals_get(const wm_corpus *c, wm_corpus_totals *out);

/* Restore totals into c, a corpus made with the same watermark and flags
 * (WM_ACCOUNTS as the map's, neither WM_NO_DEDUP nor WM_CORPUS_MAP) to
 * which no document was added: the deltas d[0..n) in document order (doc
 * non-decreasing, none below the documents already merged; a document's
 * deltas may come in several pieces, one per shard, and are added up
 * before its look), `tokens` more tokens, and the account tally (NULL
 * without WM_ACCOUNTS; else WM_ACCOUNT_POSITIONS * WM_ACCOUNT_SYMBOLS
 * counts, position-major, summing to the deltas' tuples).  Afterwards the
 * corpus covers max(docs, last delta's doc + 1) documents.  Each document's
 * end is a look of the audit, as in wm_corpus_add; documents without a
 * delta repeat the look before them, so need none.  May be called again
 * for later documents.  Nothing changes on an error: WM_ERR_ARG (the
 * conditions above), WM_ERR_LIMIT (a sum overflows).  Not thread-safe:
 * one thread at a time per corpus. */
/* @return WM_OK or one of the errors above. */
WM_API WM_NODISCARD wm_status wm_corpus_merge(wm_corpus *c, const wm_corpus_delta *d, size_t n, uint64_t tokens,
                                              uint64_t docs, const uint64_t *tally);

/* ---- reading mode (plain) on a cluster ---------------------------------------
 *
 * The plain reader (wm_reader without WM_READ_WEIGHTED) splits the same
 * way: its per-document rules (a context seed's first occurrence in the
 * document, the prompt rule) are local, a read position counts whether or
 * not its tuples are new, and only the set of (seed, prediction)
 * fingerprints crosses documents, keeping the first occurrence.  A reader
 * made with WM_CORPUS_MAP (not with WM_READ_WEIGHTED: WM_ERR_ARG) is a map
 * worker's: each document deduplicated on its own, one wm_corpus_record
 * per admitted prediction; the records reduce as a map corpus's do
 * (wm_corpus_deltas), and wm_reader_merge restores their totals into a
 * plain reader, whose wm_reader_score and wm_reader_attribute then give one
 * reader's bits.  wm_reader_score and wm_reader_attribute refuse a map
 * reader (WM_ERR_ARG).  The weighted reader does not split exactly
 * (docs/CLUSTER.md says why). */

/* The index the next document read gets in its records (map readers; by
 * default 0, then one more per wm_reader_add). */
/* @return WM_OK; WM_ERR_ARG (NULL, not a map reader).  Not thread-safe: one thread at a time per reader. */
WM_API WM_NODISCARD wm_status wm_reader_set_next_doc(wm_reader *r, uint64_t doc);
/* OUT *records, *n: the records of the documents read since the last
 * wm_reader_records_clear, in order; the array belongs to the reader and
 * is valid until the next add, clear or free.  A record that could not be
 * kept for lack of memory made that add fail with WM_ERR_NOMEM, and every
 * later add too. */
/* @return WM_OK; WM_ERR_ARG (NULL argument, not a map reader).  OUT: *records, *n.  Thread-safe
 * with other readers of r. */
WM_API WM_NODISCARD wm_status wm_reader_records(const wm_reader *r, const wm_corpus_record **records, size_t *n);
/* Forget the records handed out (memory kept). */
/* @return WM_OK; WM_ERR_ARG (NULL, not a map reader).  Not thread-safe: one thread at a time per reader. */
WM_API WM_NODISCARD wm_status wm_reader_records_clear(wm_reader *r);
/* OUT *tokens, *positions: tokens given and answer positions read so far
 * (any reader; a map reader's add up over the cluster). */
/* @return WM_OK; WM_ERR_ARG (NULL argument).  OUT: *tokens, *positions.  Thread-safe with other
 * readers of r. */
WM_API WM_NODISCARD wm_status wm_reader_counts(const wm_reader *r, uint64_t *tokens, uint64_t *positions);
/* Restore totals into r, a plain reader (neither WM_READ_WEIGHTED nor
 * WM_CORPUS_MAP; WM_ACCOUNTS as the maps') to which nothing was added: the
 * deltas d[0..n) of the reduced records (any order), `tokens` and
 * `positions` more (the maps' wm_reader_counts, summed), and the account
 * tally (NULL without WM_ACCOUNTS; else WM_ACCOUNT_POSITIONS *
 * WM_ACCOUNT_SYMBOLS counts, position-major, summing to the deltas'
 * tuples).  May be called again.  Nothing changes on an error:
 * WM_ERR_ARG (the conditions above), WM_ERR_LIMIT (a sum overflows). */
/* @return WM_OK or one of the errors above.  Not thread-safe: one thread at a time per reader. */
WM_API WM_NODISCARD wm_status wm_reader_merge(wm_reader *r, const wm_corpus_delta *d, size_t n, uint64_t tokens,
                                              uint64_t positions, const uint64_t *tally);

/* ---- checkpoints ------------------------------------------------------------
 *
 * wm_corpus_save writes a corpus's whole state (dedup set, totals, audit,
 * tally) and up to WM_CHECKPOINT_META bytes of the caller's own (e.g.
 * where in its inputs it is) to `path`, atomically: a temporary file
 * beside it, fsync, rename, fsync of the folder, so a crash leaves the old
 * checkpoint or the new one, never a mix.  Format (little-endian):
 * "wmcorpus", version 1, then the key id, vocabulary, context width,
 * flags and a BLAKE2b digest of the filter's contexts, the totals, the
 * tally, the fingerprints, the caller's bytes, and a BLAKE2b-256 checksum
 * of all of it.  8 bytes per distinct tuple.  WM_ERR_ARG: a document open,
 * or a WM_CORPUS_MAP corpus; WM_ERR_IO with errno's text in err; WM_ERR_NOMEM. */
#define WM_CHECKPOINT_META 65536
/* @return WM_OK or one of the errors above, err filled.  Thread-safe with other readers of c.
 * Two saves to one path at once, from threads or processes, share path.tmp and may leave a
 * broken checkpoint behind (wm_corpus_load refuses it): one writer per path. */
WM_API WM_NODISCARD wm_status wm_corpus_save(const wm_corpus *c, const char *path, const void *meta,
                                             size_t meta_len, wm_error *err);
/* Load `path` into c, a fresh corpus (nothing added or merged) with the
 * watermark, flags and filter the checkpoint was written with; OUT
 * meta[0..*meta_len) the caller's bytes (meta has room for meta_cap).
 * Refused, with the file, byte offset and reason in err, and c unchanged:
 * WM_ERR_FORMAT (not a checkpoint, another version, truncated),
 * WM_ERR_CORRUPT (checksum), WM_ERR_ARG (another key, vocabulary, flags
 * or filter, or meta_cap too small), WM_ERR_IO, WM_ERR_NOMEM. */
/* @return WM_OK or one of the errors above, err filled.  OUT: meta, *meta_len.  Not thread-safe:
 * one thread at a time per corpus. */
WM_API WM_NODISCARD wm_status wm_corpus_load(wm_corpus *c, const char *path, void *meta, size_t meta_cap,
                                             size_t *meta_len, wm_error *err);

#ifdef __cplusplus
}
#endif
#endif
