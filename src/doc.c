/*
 * doc.c - batches of documents (doc.h). Buffers are reused across batches.
 */
#include "doc.h"
#include "json.h"

#include <string.h>

wn_doc *wn_batch_push(wn_batch *b)
{
    if (b->n == b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 256;
        wn_doc *d = wn_realloc(b->docs, cap * sizeof *d);
        if (!d) return NULL;
        memset(d + b->cap, 0, (cap - b->cap) * sizeof *d);
        b->docs = d;
        b->cap = cap;
    }
    wn_doc *d = &b->docs[b->n++];
    wn_buf_clear(&d->id);
    wn_buf_clear(&d->text);
    wn_buf_clear(&d->raw);
    wn_buf_clear(&d->attrs);
    d->drop = NULL;
    d->modified = 0;
    d->dirty = 0;
    d->tokens.n = 0;
    d->tscore.n = 0;
    d->tweight.n = 0;
    d->has_tokens = 0;
    d->raw_text = 0;
    d->file = 0;
    d->record = 0;
    return d;
}

void wn_batch_reset(wn_batch *b) { b->n = 0; }

void wn_batch_compact(wn_batch *b)
{
    size_t k = 0;
    for (size_t i = 0; i < b->n; i++) {
        if (b->docs[i].drop) continue;
        if (k != i) { /* swap so the dropped doc's buffers stay owned */
            wn_doc t = b->docs[k];
            b->docs[k] = b->docs[i];
            b->docs[i] = t;
        }
        k++;
    }
    b->n = k;
}

void wn_batch_keep_dropped(wn_batch *b)
{
    size_t k = 0;
    for (size_t i = 0; i < b->n; i++) {
        if (!b->docs[i].drop) continue;
        if (k != i) { /* swap so the held-back doc's buffers stay owned */
            wn_doc t = b->docs[k];
            b->docs[k] = b->docs[i];
            b->docs[i] = t;
        }
        k++;
    }
    b->n = k;
}

void wn_doc_free(wn_doc *d)
{
    wn_buf_free(&d->id);
    wn_buf_free(&d->text);
    wn_buf_free(&d->raw);
    wn_buf_free(&d->attrs);
    wn_ids_free(&d->tokens);
    wn_floats_free(&d->tscore);
    wn_floats_free(&d->tweight);
}

size_t wn_batch_mem(const wn_batch *b)
{
    size_t m = b->cap * sizeof *b->docs;
    for (size_t i = 0; i < b->cap; i++) {
        const wn_doc *d = &b->docs[i];
        m += d->id.cap + d->text.cap + d->raw.cap + d->attrs.cap + d->tokens.cap * sizeof *d->tokens.p +
             (d->tscore.cap + d->tweight.cap) * sizeof(float);
    }
    return m;
}

void wn_batch_trim(wn_batch *b, size_t max_bytes)
{
    if (b->n || wn_batch_mem(b) <= max_bytes) return;
    for (size_t i = 0; i < b->cap; i++) wn_doc_free(&b->docs[i]);
}

void wn_batch_free(wn_batch *b)
{
    for (size_t i = 0; i < b->cap; i++) wn_doc_free(&b->docs[i]);
    wn_free(b->docs);
    memset(b, 0, sizeof *b);
}

wn_err wn_doc_attr(wn_doc *d, const char *key, const char *json_value)
{
    if (d->attrs.len && wn_buf_putc(&d->attrs, ',')) return WN_ERR_NOMEM;
    if (wn_json_encode_string(&d->attrs, key, strlen(key))) return WN_ERR_NOMEM;
    if (wn_buf_putc(&d->attrs, ':')) return WN_ERR_NOMEM;
    return wn_buf_puts(&d->attrs, json_value);
}

uint64_t wn_batch_text_bytes(const wn_batch *b)
{
    uint64_t n = 0;
    for (size_t i = 0; i < b->n; i++)
        if (!b->docs[i].drop) n += b->docs[i].text.len;
    return n;
}

int wn_doc_attr_num(const wn_doc *d, const char *key, double *v)
{
    if (!d->attrs.len) return 0;
    /* attrs are an object's members without the braces: iterate them as is;
     * a key added twice reads as its last value */
    wn_json_iter it = {d->attrs.p, d->attrs.p + d->attrs.len};
    wn_span k, val;
    int found = 0;
    while (wn_json_iter_next(&it, &k, &val))
        if (wn_json_key_eq(k, key) && wn_json_to_double(val, v)) found = 1;
    return found;
}
