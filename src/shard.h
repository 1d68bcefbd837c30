/*
 * shard.h - token shards in llm.c's layout, and their sidecars.
 *
 * A shard (NAME.bin): a header of 256 little-endian int32 - [0] magic
 * 20240520, [1] version (1: uint16 tokens, as llm.c; 2: uint32 tokens,
 * winnow's number for vocabularies over 65,536), [2] token count - then the
 * tokens. Readers check magic, version and that the file size equals
 * 1024 + count * token bytes.
 *
 * Sidecars, optional, beside NAME.bin, same 256 x int32 header layout:
 *   NAME.weights.bin  magic 20261101, version 1, [2] token count; then one
 *                     float32 loss weight per token (0 = masked out).
 *   NAME.docs.bin     magic 20261102, version 1, [2] document count, [3] token
 *                     count of the shard; then one uint64 per document: the
 *                     index of its first token in the shard.
 *
 * Writers write to NAME.tmp (the header last, at offset 0), flush, fsync and
 * rename, so a shard with its final name is complete. A writer can be
 * checkpointed: its byte length is the resume point (wn_shard_writer_sync),
 * and reopening with that length truncates what came after.
 */
#ifndef WN_SHARD_H
#define WN_SHARD_H

#include <stdio.h>

#include "wn.h"

#define WN_SHARD_MAGIC 20240520
#define WN_SHARD_WEIGHTS_MAGIC 20261101
#define WN_SHARD_DOCS_MAGIC 20261102
#define WN_SHARD_HEADER_BYTES 1024

typedef struct {
    FILE *f;
    char path[4096], tmp[4200];
    int token_bytes; /* 2 or 4 */
    uint32_t magic, version;
    uint64_t count;  /* items written */
    int item_bytes;  /* bytes per item */
    uint64_t extra;  /* header [3] (docs sidecar: token count) */
    int headerless;  /* Megatron .bin: raw tokens, no header */
} wn_shard_writer;

/* Token shard writer: token_bytes 2 (version 1) or 4 (version 2). resume_count
 * > 0 reopens NAME.tmp and keeps its first resume_count tokens. */
wn_err wn_shard_writer_open(wn_shard_writer *w, const char *path, int token_bytes, uint64_t resume_count,
                            wn_errbuf *err);
/* Megatron-LM's data file (NAME.bin: raw little-endian tokens, no header;
 * token_bytes 2 = uint16, 4 = int32), resumable the same way. */
wn_err wn_megatron_writer_open(wn_shard_writer *w, const char *path, int token_bytes, uint64_t resume_count,
                               wn_errbuf *err);
/* Megatron-LM's index (NAME.idx, "MMIDIDX" version 1) for sequences starting
 * at starts[0..n) in a data file of ntok tokens; one document per sequence. */
wn_err wn_megatron_write_index(const char *path, int token_bytes, const uint64_t *starts, uint64_t n, uint64_t ntok,
                               wn_errbuf *err);

/* Sidecar writers (weights: float32 per token; docs: uint64 per document). */
wn_err wn_sidecar_writer_open(wn_shard_writer *w, const char *path, uint32_t magic, uint64_t resume_count,
                              wn_errbuf *err);
wn_err wn_shard_writer_put(wn_shard_writer *w, const uint32_t *tokens, size_t n, wn_errbuf *err);
wn_err wn_shard_writer_put_raw(wn_shard_writer *w, const void *items, size_t n, wn_errbuf *err);
/* Flushes and fsyncs: after this, `count` items are on disk (a resume point). */
wn_err wn_shard_writer_sync(wn_shard_writer *w, wn_errbuf *err);
/* Writes the header, fsyncs, renames NAME.tmp to NAME. */
wn_err wn_shard_writer_close(wn_shard_writer *w, wn_errbuf *err);
void wn_shard_writer_abort(wn_shard_writer *w); /* closes and removes NAME.tmp */

/* A shard read through mmap, with its sidecars when present. */
typedef struct {
    char path[4096];
    int version, token_bytes;
    uint64_t ntok;
    const uint8_t *tokens; /* ntok * token_bytes */
    const float *weights;  /* ntok, or NULL */
    const uint64_t *docs;  /* ndocs first-token offsets, or NULL */
    uint64_t ndocs;
    void *map[3];
    size_t map_len[3];
} wn_shard;

wn_err wn_shard_open(wn_shard *s, const char *path, wn_errbuf *err);
void wn_shard_close(wn_shard *s);

static inline uint32_t wn_shard_token(const wn_shard *s, uint64_t i)
{
    if (s->token_bytes == 2) return (uint32_t)s->tokens[2 * i] | (uint32_t)s->tokens[2 * i + 1] << 8;
    const uint8_t *p = s->tokens + 4 * i;
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

#endif
