/*
 * doc.h - documents and batches, the unit every stage works on.
 *
 * A document is {id, text, meta}. `text` is UTF-8 bytes. `raw` holds the
 * input record as it arrived (a JSON object for JSONL inputs, empty for text
 * and WET inputs, whose meta is synthesised into `raw` by the reader), so
 * every field winnow does not touch passes through byte-for-byte. `attrs`
 * holds the attributes stages add, as JSON members `"key":value` separated
 * by commas; the writer places them under the record's top-level "winnow"
 * object.
 *
 * Ownership: a batch owns its documents and their buffers. Buffers keep
 * their capacity from batch to batch (wn_batch_reset only clears lengths),
 * so the steady state allocates nothing per record. What a stage receives in
 * `process` is borrowed for the call; what it keeps, it copies.
 */
#ifndef WN_DOC_H
#define WN_DOC_H

#include "wn.h"

typedef struct {
    wn_buf id;
    wn_buf text;
    wn_buf raw;   /* original JSON object (or synthesised meta object) */
    wn_buf attrs; /* winnow attributes: `"k":v,"k2":v2` */
    wn_ids tokens;  /* token ids, once a tokenize stage ran (has_tokens) */
    int has_tokens;
    wn_floats tscore;  /* per-token value score (a score stage), n == tokens.n or 0 */
    wn_floats tweight; /* per-token loss weight (token-level selection), n == tokens.n
                          or 0 (= every token weight 1); the pack stage writes it
                          to the shard's weights sidecar */
    const char *drop; /* NULL = kept; else a static reason string */
    int modified;     /* set by a stage that changed the text; the framework
                         counts it per stage and clears it */
    int dirty;        /* the text differs from the one in raw (framework) */
    int raw_text;     /* raw holds the text as read (JSONL): unmodified records
                         are written verbatim */
    uint32_t file;    /* index into the run's input list */
    uint64_t record;  /* record index within the file (0-based) */
} wn_doc;

typedef struct {
    wn_doc *docs;
    size_t n, cap;
} wn_batch;

/* Appends an empty document (buffers cleared, reused) and returns it. */
wn_doc *wn_batch_push(wn_batch *b);
void wn_batch_reset(wn_batch *b);
/* Removes dropped documents, keeping the order of the others. */
void wn_batch_compact(wn_batch *b);
/* The opposite, for stages that hold documents back: keeps only the
 * documents already marked dropped (so they are counted) and takes the rest
 * out of the batch; every buffer stays owned by the batch. */
void wn_batch_keep_dropped(wn_batch *b);
void wn_batch_free(wn_batch *b);
/* Frees one document's buffers (a document read outside a batch, e.g. from a spill). */
void wn_doc_free(wn_doc *d);
/* Bytes the batch's slots hold (buffer capacities, documents array). */
size_t wn_batch_mem(const wn_batch *b);
/* Bounds what an empty batch keeps between fills: when its slots hold more
 * than max_bytes, their buffers are freed (the next fill allocates them
 * again). Reused slots keep the capacity of the largest document each ever
 * held, which over a long run tends to slots x the largest document (tens
 * of times the batch's bytes), so a loop that refills one batch calls this
 * after each reset. A no-op on a batch that holds documents. */
void wn_batch_trim(wn_batch *b, size_t max_bytes);

/* Adds `"key":<json value>` to the document's attributes. */
wn_err wn_doc_attr(wn_doc *d, const char *key, const char *json_value);

/* Reads the number attribute `key` a stage added (a document score).
 * Returns 1 and sets *v when present and numeric, else 0. */
int wn_doc_attr_num(const wn_doc *d, const char *key, double *v);

/* Sum of text bytes of kept documents. */
uint64_t wn_batch_text_bytes(const wn_batch *b);

#endif
