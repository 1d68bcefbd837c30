/*
 * writer.h - curated documents out: JSONL.zst shards in RUN_DIR/documents/.
 *
 * Each record keeps every input field byte-for-byte; the text field is
 * re-encoded only when a stage changed it, and attributes stages added sit
 * under the top-level "winnow" object (merged with one already there; a new
 * value wins). Shards are named part-NNNNN.jsonl.zst, written under a
 * temporary name and renamed when complete. A shard closes when the run asks
 * (at a batch boundary once wn_writer_full says so), so shard boundaries are
 * a function of the input alone.
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
wn_err wn_writer_put(wn_writer *w, const wn_doc *d, const char *text_key, wn_errbuf *err);
int wn_writer_full(const wn_writer *w);
/* A shard is open (documents written since the last close). */
int wn_writer_pending(const wn_writer *w);
/* Completes the open shard (if it holds anything): end the zstd frame,
 * flush, fsync, rename. */
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
