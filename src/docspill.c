/*
 * docspill.c - the stage spill (docspill.h).
 */
#define ZSTD_STATIC_LINKING_ONLY /* ZSTD_estimateCStreamSize */
#include "docspill.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define REC_MAGIC 0x314c5053u /* "SPL1" */
enum { F_HAS_TOKENS = 1, F_RAW_TEXT = 2, F_DIRTY = 4 };
enum { SER_FLUSH = 1 << 20 };

/* A spilled document: this header, then id, text, raw, attrs bytes, tokens
 * (u32), tscore and tweight (f32). */
typedef struct {
    uint32_t magic, flags, file, pad;
    uint64_t record;
    uint64_t n_id, n_text, n_raw, n_attrs, n_tokens, n_tscore, n_tweight;
} rec_hdr;
_Static_assert(sizeof(rec_hdr) == 80, "spill record header layout");

/* ---- writing ------------------------------------------------------------------ */

wn_err wn_spill_writer_open(wn_spill_writer *w, const char *path, int resume, wn_errbuf *err)
{
    uint64_t keep = w->bytes;
    wn_buf ser = w->ser;
    memset(w, 0, sizeof *w);
    w->ser = ser;
    wn_buf_clear(&w->ser);
    snprintf(w->path, sizeof w->path, "%s", path);
    if (resume) {
        w->bytes = keep;
        if (truncate(path, (off_t)keep))
            return wn_fail(err, WN_ERR_STATE, "%s: cannot truncate the spill back to the checkpoint: %s", path,
                           strerror(errno));
        w->f = fopen(path, "ab");
    } else {
        w->f = fopen(path, "wb");
    }
    if (!w->f) return wn_fail(err, WN_ERR_IO, "%s: cannot open the spill: %s", path, strerror(errno));
    w->cc = ZSTD_createCCtx();
    w->ocap = ZSTD_CStreamOutSize();
    w->obuf = wn_malloc(w->ocap);
    if (!w->cc || !w->obuf) return wn_fail(err, WN_ERR_NOMEM, "out of memory");
    ZSTD_CCtx_setParameter(w->cc, ZSTD_c_compressionLevel, 1);
    ZSTD_CCtx_setParameter(w->cc, ZSTD_c_checksumFlag, 1);
    w->open = 1;
    return WN_OK;
}

static wn_err compress(wn_spill_writer *w, const void *p, size_t n, ZSTD_EndDirective mode, wn_errbuf *err)
{
    ZSTD_inBuffer in = {p, n, 0};
    for (;;) {
        ZSTD_outBuffer out = {w->obuf, w->ocap, 0};
        size_t r = ZSTD_compressStream2(w->cc, &out, &in, mode);
        if (ZSTD_isError(r)) return wn_fail(err, WN_ERR_INTERNAL, "zstd: %s", ZSTD_getErrorName(r));
        if (out.pos && fwrite(w->obuf, 1, out.pos, w->f) != out.pos)
            return wn_fail(err, WN_ERR_IO, "%s: write failed: %s", w->path, strerror(errno));
        if (mode == ZSTD_e_continue ? in.pos == in.size : r == 0) return WN_OK;
    }
}

static wn_err flush_ser(wn_spill_writer *w, wn_errbuf *err)
{
    wn_err e = w->ser.len ? compress(w, w->ser.p, w->ser.len, ZSTD_e_continue, err) : WN_OK;
    wn_buf_clear(&w->ser);
    return e;
}

static wn_err put(wn_spill_writer *w, const void *p, size_t n) { return n ? wn_buf_append(&w->ser, p, n) : WN_OK; }

wn_err wn_spill_writer_put(wn_spill_writer *w, const wn_doc *d, wn_errbuf *err)
{
    rec_hdr h = {REC_MAGIC,
                 (d->has_tokens ? F_HAS_TOKENS : 0) | (d->raw_text ? F_RAW_TEXT : 0) | (d->dirty ? F_DIRTY : 0),
                 d->file,
                 0,
                 d->record,
                 d->id.len,
                 d->text.len,
                 d->raw.len,
                 d->attrs.len,
                 d->tokens.n,
                 d->tscore.n,
                 d->tweight.n};
    wn_err e = put(w, &h, sizeof h);
    if (!e) e = put(w, d->id.p, d->id.len);
    if (!e) e = put(w, d->text.p, d->text.len);
    if (!e) e = put(w, d->raw.p, d->raw.len);
    if (!e) e = put(w, d->attrs.p, d->attrs.len);
    if (!e) e = put(w, d->tokens.p, d->tokens.n * sizeof(uint32_t));
    if (!e) e = put(w, d->tscore.p, d->tscore.n * sizeof(float));
    if (!e) e = put(w, d->tweight.p, d->tweight.n * sizeof(float));
    if (e) return wn_fail(err, e, "out of memory");
    return w->ser.len >= SER_FLUSH ? flush_ser(w, err) : WN_OK;
}

wn_err wn_spill_writer_flush(wn_spill_writer *w, wn_errbuf *err)
{
    return w->open ? flush_ser(w, err) : WN_OK;
}

wn_err wn_spill_writer_sync(wn_spill_writer *w, wn_errbuf *err)
{
    if (!w->open) return WN_OK;
    wn_err e = flush_ser(w, err);
    if (!e) e = compress(w, NULL, 0, ZSTD_e_end, err);
    if (e) return e;
    if (fflush(w->f) || fsync(fileno(w->f)))
        return wn_fail(err, WN_ERR_IO, "%s: write failed: %s", w->path, strerror(errno));
    off_t len = ftello(w->f);
    if (len < 0) return wn_fail(err, WN_ERR_IO, "%s: %s", w->path, strerror(errno));
    w->bytes = (uint64_t)len;
    return WN_OK;
}

void wn_spill_writer_close(wn_spill_writer *w)
{
    if (w->f) fclose(w->f);
    ZSTD_freeCCtx(w->cc);
    wn_free(w->obuf);
    wn_buf_free(&w->ser);
    w->f = NULL;
    w->cc = NULL;
    w->obuf = NULL;
    w->open = 0;
}

wn_err wn_spill_writer_finish(wn_spill_writer *w, wn_errbuf *err)
{
    wn_err e = wn_spill_writer_sync(w, err);
    wn_spill_writer_close(w);
    return e;
}

size_t wn_spill_writer_mem(const wn_spill_writer *w)
{
    return w->ser.cap + (w->open ? w->ocap : 0) + (w->cc ? ZSTD_sizeof_CCtx(w->cc) : 0);
}

/* the serialization buffer grows by half past SER_FLUSH before it is compressed */
size_t wn_spill_writer_mem_estimate(void)
{
    return SER_FLUSH + SER_FLUSH / 2 + ZSTD_estimateCStreamSize(1) + ZSTD_CStreamOutSize();
}

/* ---- reading ------------------------------------------------------------------ */

void wn_spill_reader_close(wn_spill_reader *r)
{
    if (r->f) fclose(r->f);
    ZSTD_freeDCtx(r->dc);
    wn_free(r->in);
    wn_free(r->out);
    memset(r, 0, sizeof *r);
}

wn_err wn_spill_reader_open(wn_spill_reader *r, const char *path, wn_errbuf *err)
{
    wn_spill_reader_close(r);
    snprintf(r->path, sizeof r->path, "%s", path);
    r->f = fopen(path, "rb");
    if (!r->f) return wn_fail(err, WN_ERR_IO, "%s: cannot reopen the spill: %s", path, strerror(errno));
    r->dc = ZSTD_createDCtx();
    r->in_cap = ZSTD_DStreamInSize();
    r->out_cap = ZSTD_DStreamOutSize();
    r->in = wn_malloc(r->in_cap);
    r->out = wn_malloc(r->out_cap);
    if (!r->dc || !r->in || !r->out) return wn_fail(err, WN_ERR_NOMEM, "out of memory");
    return WN_OK;
}

/* Reads exactly n bytes (dst may be NULL: skip them). *got says how many
 * came; fewer than n only at the end of the spill. */
static wn_err read_bytes(wn_spill_reader *r, void *dst, size_t n, size_t *got, wn_errbuf *err)
{
    size_t done = 0;
    while (done < n) {
        if (r->out_pos < r->out_len) {
            size_t k = r->out_len - r->out_pos < n - done ? r->out_len - r->out_pos : n - done;
            if (dst) memcpy((char *)dst + done, r->out + r->out_pos, k);
            r->out_pos += k;
            done += k;
            continue;
        }
        if (r->eof) break;
        if (r->in_pos == r->in_len && !r->full) {
            r->in_len = fread(r->in, 1, r->in_cap, r->f);
            r->in_pos = 0;
            if (!r->in_len) {
                if (ferror(r->f)) return wn_fail(err, WN_ERR_IO, "%s: read failed", r->path);
                if (r->last) return wn_fail(err, WN_ERR_STATE, "%s: the spill is cut short", r->path);
                r->eof = 1;
                break;
            }
        }
        ZSTD_inBuffer in = {r->in, r->in_len, r->in_pos};
        ZSTD_outBuffer out = {r->out, r->out_cap, 0};
        size_t ret = ZSTD_decompressStream(r->dc, &out, &in);
        if (ZSTD_isError(ret)) return wn_fail(err, WN_ERR_STATE, "%s: corrupt spill: %s", r->path, ZSTD_getErrorName(ret));
        r->in_pos = in.pos;
        r->out_len = out.pos;
        r->out_pos = 0;
        r->last = ret;
        r->full = out.pos == out.size;
    }
    *got = done;
    return WN_OK;
}

static wn_err read_exact(wn_spill_reader *r, void *dst, size_t n, wn_errbuf *err)
{
    size_t got;
    wn_err e = read_bytes(r, dst, n, &got, err);
    if (!e && got != n) e = wn_fail(err, WN_ERR_STATE, "%s: the spill is cut short", r->path);
    return e;
}

static wn_err read_buf(wn_spill_reader *r, wn_buf *b, uint64_t n, wn_errbuf *err)
{
    wn_buf_clear(b);
    if (wn_buf_reserve(b, n)) return wn_fail(err, WN_ERR_NOMEM, "out of memory");
    wn_err e = read_exact(r, b->p, n, err);
    if (!e) {
        b->len = n;
        b->p[n] = 0;
    }
    return e;
}

static wn_err read_floats(wn_spill_reader *r, wn_floats *v, uint64_t n, wn_errbuf *err)
{
    if (wn_floats_resize(v, n)) return wn_fail(err, WN_ERR_NOMEM, "out of memory");
    return read_exact(r, v->p, n * sizeof(float), err);
}

wn_err wn_spill_reader_next(wn_spill_reader *r, wn_doc *d, int *got, wn_errbuf *err)
{
    rec_hdr h;
    size_t n;
    wn_err e = read_bytes(r, &h, sizeof h, &n, err);
    *got = 0;
    if (e || !n) return e;
    if (n != sizeof h || h.magic != REC_MAGIC) return wn_fail(err, WN_ERR_STATE, "%s: corrupt spill record", r->path);
    if ((e = read_buf(r, &d->id, h.n_id, err)) || (e = read_buf(r, &d->text, h.n_text, err)) ||
        (e = read_buf(r, &d->raw, h.n_raw, err)) || (e = read_buf(r, &d->attrs, h.n_attrs, err)))
        return e;
    if (h.n_tokens > d->tokens.cap) {
        uint32_t *p = wn_realloc(d->tokens.p, h.n_tokens * sizeof *p);
        if (!p) return wn_fail(err, WN_ERR_NOMEM, "out of memory");
        d->tokens.p = p;
        d->tokens.cap = h.n_tokens;
    }
    d->tokens.n = h.n_tokens;
    if ((e = read_exact(r, d->tokens.p, h.n_tokens * sizeof(uint32_t), err))) return e;
    if ((e = read_floats(r, &d->tscore, h.n_tscore, err)) || (e = read_floats(r, &d->tweight, h.n_tweight, err)))
        return e;
    d->has_tokens = !!(h.flags & F_HAS_TOKENS);
    d->raw_text = !!(h.flags & F_RAW_TEXT);
    d->dirty = !!(h.flags & F_DIRTY);
    d->file = h.file;
    d->record = h.record;
    *got = 1;
    return WN_OK;
}

wn_err wn_spill_reader_push(wn_spill_reader *r, wn_batch *out, wn_doc **d, wn_errbuf *err)
{
    *d = wn_batch_push(out);
    if (!*d) return wn_fail(err, WN_ERR_NOMEM, "out of memory");
    int got;
    wn_err e = wn_spill_reader_next(r, *d, &got, err);
    if (e || got) return e;
    out->n--;
    *d = NULL;
    wn_spill_reader_close(r);
    return WN_OK;
}
