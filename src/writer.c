/*
 * writer.c - JSONL.zst shard writer (writer.h).
 */
#include "writer.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#define ZSTD_STATIC_LINKING_ONLY /* ZSTD_getCParams, ZSTD_estimateCCtxSize_usingCParams */
#include <zstd.h>

#include "json.h"

struct wn_writer {
    char *dir;
    int64_t shard_bytes;
    int level;
    int workers;
    int shard;          /* number of the open (or next) shard */
    int completed;
    FILE *f;
    char path[4096], tmp_path[4200];
    ZSTD_CCtx *cctx;
    wn_buf line, zout;
    uint64_t shard_raw;  /* uncompressed bytes in the open shard */
    uint64_t total_raw;
    int keep_tail;       /* wn_writer_tail_begin was called */
    wn_buf tail;         /* records put into the open shard since then */
};

wn_err wn_writer_open(wn_writer **out, const char *dir, int64_t shard_bytes, int level,
                      int workers, int first_shard, wn_errbuf *err)
{
    wn_writer *w = wn_calloc(1, sizeof *w);
    if (!w) return WN_ERR_NOMEM;
    w->dir = wn_strdup(dir);
    w->cctx = ZSTD_createCCtx();
    if (!w->dir || !w->cctx) { wn_writer_free(w); return wn_fail(err, WN_ERR_NOMEM, "out of memory"); }
    w->shard_bytes = shard_bytes;
    w->level = level;
    w->workers = workers < 1 ? 1 : workers;
    w->shard = first_shard;
    *out = w;
    return WN_OK;
}

static wn_err zwrite(wn_writer *w, const void *src, size_t n, ZSTD_EndDirective mode, wn_errbuf *err)
{
    ZSTD_inBuffer in = {src, n, 0};
    if (wn_buf_reserve(&w->zout, ZSTD_CStreamOutSize())) return WN_ERR_NOMEM;
    for (;;) {
        ZSTD_outBuffer ob = {w->zout.p, ZSTD_CStreamOutSize(), 0};
        size_t rem = ZSTD_compressStream2(w->cctx, &ob, &in, mode);
        if (ZSTD_isError(rem))
            return wn_fail(err, WN_ERR_INTERNAL, "%s: zstd: %s", w->tmp_path, ZSTD_getErrorName(rem));
        if (ob.pos && fwrite(ob.dst, 1, ob.pos, w->f) != ob.pos)
            return wn_fail(err, WN_ERR_IO, "%s: write failed: %s", w->tmp_path, strerror(errno));
        if (mode == ZSTD_e_end ? rem == 0 : in.pos == in.size) return WN_OK;
    }
}

static wn_err open_shard(wn_writer *w, wn_errbuf *err)
{
    snprintf(w->path, sizeof w->path, "%s/part-%05d.jsonl.zst", w->dir, w->shard);
    snprintf(w->tmp_path, sizeof w->tmp_path, "%s.tmp", w->path);
    w->f = fopen(w->tmp_path, "wb");
    if (!w->f) return wn_fail(err, WN_ERR_IO, "%s: cannot create: %s", w->tmp_path, strerror(errno));
    ZSTD_CCtx_reset(w->cctx, ZSTD_reset_session_and_parameters);
    ZSTD_CCtx_setParameter(w->cctx, ZSTD_c_compressionLevel, w->level);
    ZSTD_CCtx_setParameter(w->cctx, ZSTD_c_checksumFlag, 1);
    /* zstd's multi-threaded mode gives the same bytes for any worker count
     * >= 1, so compression overlaps the pipeline without touching determinism. */
    ZSTD_CCtx_setParameter(w->cctx, ZSTD_c_nbWorkers, w->workers);
    w->shard_raw = 0;
    wn_buf_clear(&w->tail);
    return WN_OK;
}

/* Appends members of the "winnow" object: old ones not overridden, then new. */
static void merge_winnow(wn_buf *out, wn_span old, const wn_buf *attrs)
{
    wn_buf_putc(out, '{');
    int n = 0;
    if (old.n && old.p[0] == '{') {
        wn_buf wrapped = {0};
        wn_buf_putc(&wrapped, '{');
        wn_buf_append(&wrapped, attrs->p, attrs->len);
        wn_buf_putc(&wrapped, '}');
        wn_json_iter it;
        wn_span k, v, dummy;
        wn_json_iter_init(&it, old.p, old.n);
        while (wn_json_iter_next(&it, &k, &v)) {
            wn_buf key = {0};
            wn_json_decode_string(k, &key);
            int overridden = key.p && wn_json_get(wrapped.p, wrapped.len, key.p, &dummy);
            wn_buf_free(&key);
            if (overridden) continue;
            if (n++) wn_buf_putc(out, ',');
            wn_buf_append(out, k.p, k.n);
            wn_buf_putc(out, ':');
            wn_buf_append(out, v.p, v.n);
        }
        wn_buf_free(&wrapped);
    }
    if (n && attrs->len) wn_buf_putc(out, ',');
    wn_buf_append(out, attrs->p, attrs->len);
    wn_buf_putc(out, '}');
}

wn_err wn_record_render(const wn_doc *d, const char *text_key, wn_buf *out)
{
    /* The common case: an untouched JSONL record goes out as it came in. */
    if (d->raw_text && !d->dirty && !d->attrs.len) return wn_buf_append(out, d->raw.p, d->raw.len);
    wn_json_iter it;
    wn_span k, v, winnow = {0};
    int text_done = 0, n = 0;
    wn_buf_putc(out, '{');
    if (!d->raw.len) { /* a document a stage created */
        wn_buf_puts(out, "\"id\":");
        wn_json_encode_string(out, d->id.p, d->id.len);
        n++;
    }
    wn_json_iter_init(&it, d->raw.p, d->raw.len);
    while (d->raw.len && wn_json_iter_next(&it, &k, &v)) {
        if (n++) wn_buf_putc(out, ',');
        wn_buf_append(out, k.p, k.n);
        wn_buf_putc(out, ':');
        if (!text_done && wn_json_key_eq(k, text_key)) {
            if (d->raw_text && !d->dirty) wn_buf_append(out, v.p, v.n); /* unchanged: as read */
            else wn_json_encode_string(out, d->text.p, d->text.len);
            text_done = 1;
        } else if (d->attrs.len && wn_json_key_eq(k, "winnow")) {
            winnow = v;
            merge_winnow(out, v, &d->attrs);
        } else {
            wn_buf_append(out, v.p, v.n);
        }
    }
    if (!text_done) {
        if (n++) wn_buf_putc(out, ',');
        wn_json_encode_string(out, text_key, strlen(text_key));
        wn_buf_putc(out, ':');
        wn_json_encode_string(out, d->text.p, d->text.len);
    }
    if (d->attrs.len && !winnow.p) {
        wn_buf_puts(out, ",\"winnow\":");
        merge_winnow(out, winnow, &d->attrs);
    }
    return wn_buf_putc(out, '}');
}

wn_err wn_writer_put_raw(wn_writer *w, const char *rec, size_t n, wn_errbuf *err)
{
    wn_err e;
    if (!w->f && (e = open_shard(w, err))) return e;
    if (w->keep_tail && wn_buf_append(&w->tail, rec, n)) return wn_fail(err, WN_ERR_NOMEM, "out of memory");
    w->shard_raw += n;
    w->total_raw += n;
    if ((e = zwrite(w, rec, n, ZSTD_e_continue, err))) return e;
    return (int64_t)w->shard_raw >= w->shard_bytes ? wn_writer_close_shard(w, err) : WN_OK;
}

wn_err wn_writer_put(wn_writer *w, const wn_doc *d, const char *text_key, wn_errbuf *err)
{
    wn_err e;
    wn_buf_clear(&w->line);
    if ((e = wn_record_render(d, text_key, &w->line)) || (e = wn_buf_putc(&w->line, '\n')))
        return wn_fail(err, e, "out of memory rendering a record");
    return wn_writer_put_raw(w, w->line.p, w->line.len, err);
}

int wn_writer_pending(const wn_writer *w) { return w->f != NULL; }

void wn_writer_tail_begin(wn_writer *w)
{
    w->keep_tail = 1;
    wn_buf_clear(&w->tail);
}

void wn_writer_tail_end(wn_writer *w)
{
    w->keep_tail = 0;
    wn_buf_free(&w->tail);
}

const wn_buf *wn_writer_tail(const wn_writer *w) { return &w->tail; }

wn_err wn_writer_close_shard(wn_writer *w, wn_errbuf *err)
{
    if (!w->f) return WN_OK;
    wn_err e = zwrite(w, NULL, 0, ZSTD_e_end, err);
    if (!e && (fflush(w->f) || fsync(fileno(w->f))))
        e = wn_fail(err, WN_ERR_IO, "%s: flush failed: %s", w->tmp_path, strerror(errno));
    if (fclose(w->f) && !e) e = wn_fail(err, WN_ERR_IO, "%s: close failed: %s", w->tmp_path, strerror(errno));
    w->f = NULL;
    if (!e && rename(w->tmp_path, w->path))
        e = wn_fail(err, WN_ERR_IO, "%s: rename failed: %s", w->path, strerror(errno));
    if (e) return e;
    w->shard++;
    w->completed++;
    wn_buf_clear(&w->tail);
    return WN_OK;
}

uint64_t wn_writer_mem_estimate(int level, int workers)
{
    ZSTD_compressionParameters cp = ZSTD_getCParams(level, 0, 0);
    uint64_t window = 1ull << cp.windowLog;
    uint64_t job = 1ull << (cp.windowLog + 2 > 20 ? cp.windowLog + 2 : 20);
    uint64_t w = workers < 1 ? 1 : (uint64_t)workers;
    uint64_t round = (window > w * job ? window : w * job) + 3 * job;
    return round + w * (ZSTD_estimateCCtxSize_usingCParams(cp) + ZSTD_compressBound(job)) + ZSTD_CStreamOutSize();
}

int wn_writer_shards(const wn_writer *w) { return w->shard; }
uint64_t wn_writer_bytes(const wn_writer *w) { return w->total_raw; }

void wn_writer_free(wn_writer *w)
{
    if (!w) return;
    if (w->f) {
        fclose(w->f);
        remove(w->tmp_path);
    }
    ZSTD_freeCCtx(w->cctx);
    wn_buf_free(&w->line);
    wn_buf_free(&w->zout);
    wn_buf_free(&w->tail);
    wn_free(w->dir);
    wn_free(w);
}
