/*
 * writer.h - curated documents out: JSONL.zst shards in RUN_DIR/documents/.
 *
 * Each record keeps every input field byte-for-byte; the text field is
 * re-encoded only when a stage changed it, and attributes stages added sit
 * under the top-level "winnow" object (merged with one already there; a new
 * value wins). Shards are named part-NNNNN.jsonl.zst, written under a
 * temporary name and renamed when complete. A shard closes right after the
 * record that brings its uncompressed size to shard_bytes or more, so shard
 * boundaries are a function of the records alone (not of batches, threads or
 * MPI ranks: `winnow run` across ranks cuts the same shards).
 */
#ifndef WN_WRITER_H
#define WN_WRITER_H

#include "doc.h"

typedef struct wn_writer wn_writer;

/* Shards are numbered from first_shard (non-zero when resuming). `workers`
 * compression threads (>= 1) run beside the caller; the bytes written do not
 * depend on their number. */
wn_err wn_writer_open(wn_writer **w, const char *dir, int64_t shard_bytes, int level,
                      int workers, int first_shard, wn_errbuf *err);
/* Renders d and writes it; closes the shard when it is full. */
wn_err wn_writer_put(wn_writer *w, const wn_doc *d, const char *text_key, wn_errbuf *err);
/* Writes one rendered record (its '\n' included); closes the shard when full. */
wn_err wn_writer_put_raw(wn_writer *w, const char *rec, size_t n, wn_errbuf *err);
/* From now on, keep a copy of the records put into the open shard (cleared
 * at every shard close and at the next call): what a checkpoint taken in
 * the middle of a shard must save, as the compressor's state cannot be. The
 * run calls it at each batch, so the copy is at most one batch's records. */
void wn_writer_tail_begin(wn_writer *w);
/* Stops keeping records for a checkpoint and frees them: after the last
 * checkpoint (the end of stream takes none), the open shard's records would
 * otherwise pile up to a whole shard in memory. */
void wn_writer_tail_end(wn_writer *w);
const wn_buf *wn_writer_tail(const wn_writer *w);
/* A shard is open (documents written since the last close). */
int wn_writer_pending(const wn_writer *w);
/* Completes the open shard (if it holds anything): end the zstd frame,
 * flush, fsync, rename. The run calls it at the end of the stream. */
wn_err wn_writer_close_shard(wn_writer *w, wn_errbuf *err);
int wn_writer_shards(const wn_writer *w);     /* shards completed so far */
uint64_t wn_writer_bytes(const wn_writer *w); /* uncompressed bytes written, all shards */
void wn_writer_free(wn_writer *w);            /* drops an unfinished shard */
/* Bytes a writer's compressor holds at most for `level` and `workers`:
 * zstd's multi-threaded mode keeps a round buffer of max(window, workers
 * jobs) + 3 jobs of input, and per worker a compression context and an
 * output buffer of one job (a job is 4 windows, at least 1 MiB: 8 MiB at
 * level 3). Measured (RSS, 100 MB of JSONL): level 3 with 1 / 2 / 4 workers
 * 36 / 50 / 71 MiB against 43 / 63 / 102 estimated; level 19, 1 worker,
 * 184 against 249. */
uint64_t wn_writer_mem_estimate(int level, int workers);

/* Renders one output record (no newline) into out. */
wn_err wn_record_render(const wn_doc *d, const char *text_key, wn_buf *out);

#endif
