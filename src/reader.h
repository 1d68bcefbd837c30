/*
 * reader.h - turns one input file into documents, streamed.
 *
 * Formats: JSONL (plain, .gz, .zst, .bz2, .xz), plain text (a file or a line
 * per document), WET (WARC `conversion` records) and tar / tar.gz / tar.zst /
 * zip archives whose members are JSONL or text. All go through libarchive,
 * so nothing is ever extracted to disk.
 *
 * Positions: every unit the reader consumes (a JSONL line, a text file or
 * line, a WARC record, an archive member it skips) is one "record"; the
 * record index is the resume position and appears in messages.
 *
 * Errors: a bad record makes wn_reader_next return WN_ERR_INPUT with a
 * message "FILE:LINE: cause" (or "FILE: byte offset N: cause") and a reason
 * ("malformed_json", "missing_text", "invalid_utf8", "truncated",
 * "corrupt_archive", "bad_warc", "unsupported_member"). After such an error
 * the reader continues with the next record, or reports end of file when
 * the rest is unreadable (truncated or corrupt streams).
 */
#ifndef WN_READER_H
#define WN_READER_H

#include "doc.h"
#include "manifest.h"

typedef struct wn_reader wn_reader;

wn_err wn_reader_open(wn_reader **r, const wn_input_file *f, const wn_input_spec *spec,
                      uint32_t file_index, wn_errbuf *err);
/* Fills d (pushed by the caller) with the next document. *got = 0 at end of
 * file. On WN_ERR_INPUT, *reason names the problem and err the place. */
wn_err wn_reader_next(wn_reader *r, wn_doc *d, int *got, const char **reason, wn_errbuf *err);
uint64_t wn_reader_records(const wn_reader *r);   /* records consumed so far */
uint64_t wn_reader_raw_bytes(const wn_reader *r); /* compressed bytes read */
void wn_reader_close(wn_reader *r);

#endif
