/*
 * fuzz_jsonl.c - libFuzzer target for the JSONL path of reader.c. Writes the
 * input to a fixed temporary .jsonl file, opens a reader over it (format
 * JSONL, strict UTF-8) and reads every document to the end, ignoring input
 * errors. Checks the reader's invariants: the record count never decreases
 * (no bound from the input's line count: the reader also decompresses
 * input that happens to be a compressed or uuencoded stream), each
 * document's raw record is one
 * valid JSON object that renders back verbatim, its text is valid UTF-8,
 * record indexes increase, and the end of file stays the end.
 *
 * Build and run with `make fuzz` (libFuzzer); `make test` replays the corpus
 * in tests/fuzz/corpus/jsonl/.
 */
#include "json.h"
#include "reader.h"
#include "text.h"
#include "writer.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define REQUIRE(c)                                                             \
    do {                                                                       \
        if (!(c)) {                                                            \
            fprintf(stderr, "fuzz_jsonl: invariant failed: %s (line %d)\n", #c, __LINE__); \
            abort();                                                           \
        }                                                                      \
    } while (0)

static char tmp_path[64];

static void remove_tmp(void) { unlink(tmp_path); }

/* The temporary file, created once and rewritten for every input. */
static const char *write_input(const uint8_t *data, size_t size)
{
    if (!tmp_path[0]) {
        snprintf(tmp_path, sizeof tmp_path, "/tmp/wn-fuzz-jsonl-XXXXXX.jsonl");
        int fd = mkstemps(tmp_path, 6);
        REQUIRE(fd >= 0);
        close(fd);
        atexit(remove_tmp);
    }
    FILE *f = fopen(tmp_path, "wb");
    REQUIRE(f != NULL);
    REQUIRE(fwrite(data, 1, size, f) == size);
    REQUIRE(fclose(f) == 0);
    return tmp_path;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    wn_input_file file = {(char *)write_input(data, size), 0, WN_FMT_JSONL, size, 0};
    wn_input_spec spec;
    memset(&spec, 0, sizeof spec);
    spec.path = file.path;
    spec.format = WN_FMT_JSONL;
    spec.text_key = (char *)"text";
    spec.id_key = (char *)"id";

    wn_reader *r = NULL;
    wn_errbuf err;
    /* Bytes that look like a compressed stream may fail to open: fine. */
    if (wn_reader_open(&r, &file, &spec, 3, &err) != WN_OK) return 0;

    wn_doc d;
    memset(&d, 0, sizeof d);
    wn_buf out = {0};
    uint64_t records = 0, last_record = 0;
    int docs = 0, ends = 0;
    for (size_t iter = 0; iter < ((size_t)1 << 22); iter++) {
        int got = -1;
        const char *reason = NULL;
        wn_err e = wn_reader_next(r, &d, &got, &reason, &err);
        uint64_t now = wn_reader_records(r);
        REQUIRE(now >= records);
        records = now;
        if (e == WN_ERR_INPUT) {
            REQUIRE(reason != NULL && err.msg[0] != 0);
            continue;
        }
        REQUIRE(e == WN_OK);
        if (!got) {
            if (++ends == 2) break; /* end of file, asked twice */
            continue;
        }
        REQUIRE(ends == 0);
        REQUIRE(got == 1);
        REQUIRE(d.file == 3);
        REQUIRE(docs == 0 || d.record > last_record);
        last_record = d.record;
        REQUIRE(d.record < records);
        docs++;
        REQUIRE(d.raw_text == 1);
        REQUIRE(wn_json_check_object(d.raw.p, d.raw.len, NULL, NULL) == WN_OK);
        REQUIRE(wn_utf8_valid(d.text.p ? d.text.p : "", d.text.len, NULL));
        wn_span id;
        /* An id is given, or generated; empty only when the record says "". */
        REQUIRE(d.id.len > 0 || (wn_json_get(d.raw.p, d.raw.len, "id", &id) && id.n == 2));
        wn_buf_clear(&out);
        REQUIRE(wn_record_render(&d, "text", &out) == WN_OK);
        REQUIRE(out.len == d.raw.len && memcmp(out.p, d.raw.p, out.len) == 0);
    }
    REQUIRE(ends == 2);  /* the loop bound was never what stopped it */
    wn_reader_close(r);
    wn_buf_free(&out);
    wn_buf_free(&d.id);
    wn_buf_free(&d.text);
    wn_buf_free(&d.raw);
    wn_buf_free(&d.attrs);
    return 0;
}
