/*
 * docspill.h - documents spilled to a zstd-compressed file in a stage's
 * state directory and read back in the order written: how a stage that needs
 * a global view (select's exact thresholds, dedup's second pass) holds its
 * input without holding it in memory (DESIGN.md §3).
 *
 * A record keeps everything a later stage or the writer needs: id, text,
 * raw record, attributes, tokens, per-token scores and weights, flags
 * (has_tokens, raw_text, dirty), input file and record number. The layout
 * is docs/formats.md's "stage spill": an 80-byte header (magic "SPL1", flags,
 * file, record, the lengths), then the bytes, in zstd frames (level 1, with
 * checksums).
 *
 * Resume: wn_spill_writer_sync ends the current frame, fsyncs and records the
 * file length in w->bytes; a stage saves that number in its checkpoint, and
 * reopening with resume = 1 and w->bytes restored truncates the file back to
 * it and appends new frames.
 */
#ifndef WN_DOCSPILL_H
#define WN_DOCSPILL_H

#include <stdio.h>
#include <zstd.h>

#include "doc.h"

typedef struct {
    char path[4200];
    FILE *f;
    ZSTD_CCtx *cc;
    void *obuf;
    size_t ocap;
    wn_buf ser;     /* serialized records not yet compressed */
    uint64_t bytes; /* file length at the last frame end (the resume point) */
    int open;
} wn_spill_writer;

typedef struct {
    char path[4200];
    FILE *f;
    ZSTD_DCtx *dc;
    uint8_t *in, *out;
    size_t in_cap, in_len, in_pos, out_cap, out_len, out_pos;
    size_t last; /* ZSTD_decompressStream's last hint: 0 = at a frame end */
    int full;    /* the last call filled the output: it may hold more */
    int eof;
} wn_spill_reader;

/* Creates path (resume = 0) or truncates it back to w->bytes and appends
 * (resume = 1). */
wn_err wn_spill_writer_open(wn_spill_writer *w, const char *path, int resume, wn_errbuf *err);
/* Appends d (buffered; compressed a megabyte at a time). */
wn_err wn_spill_writer_put(wn_spill_writer *w, const wn_doc *d, wn_errbuf *err);
/* Compresses what is buffered into the current frame (written, not yet
 * durable): a stage calls it at the end of a batch. */
wn_err wn_spill_writer_flush(wn_spill_writer *w, wn_errbuf *err);
/* Ends the frame and makes the file durable; w->bytes is the resume point.
 * A no-op on a writer that is not open. */
wn_err wn_spill_writer_sync(wn_spill_writer *w, wn_errbuf *err);
/* Closes the file (call sync first to keep what was put); keeps w->bytes. */
void wn_spill_writer_close(wn_spill_writer *w);
/* The end of the spilling pass: sync, then close (also when sync fails);
 * returns sync's result. Fine on a writer that never opened. */
wn_err wn_spill_writer_finish(wn_spill_writer *w, wn_errbuf *err);
/* Bytes of memory the writer holds (for peak-memory reports). */
size_t wn_spill_writer_mem(const wn_spill_writer *w);
/* Bytes a writer holds at most, its compressor included (for a stage's
 * memory reserve; a record over a megabyte adds its own size). */
size_t wn_spill_writer_mem_estimate(void);

wn_err wn_spill_reader_open(wn_spill_reader *r, const char *path, wn_errbuf *err);
/* Reads the next document into d (its buffers are reused); *got = 0 at the
 * end. A cut or corrupt file is WN_ERR_STATE. */
wn_err wn_spill_reader_next(wn_spill_reader *r, wn_doc *d, int *got, wn_errbuf *err);
void wn_spill_reader_close(wn_spill_reader *r);
/* The emit step of a stage's finish: appends a document to out and reads
 * the next spilled one into it (*d points at it); at the end of the spill
 * takes the slot back, closes the reader and sets *d = NULL. */
wn_err wn_spill_reader_push(wn_spill_reader *r, wn_batch *out, wn_doc **d, wn_errbuf *err);

#endif
