/*
 * shard.c - llm.c-layout token shards and their sidecars (shard.h).
 */
#include "shard.h"

#include "fs.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

static wn_err open_common(wn_shard_writer *w, const char *path, uint32_t magic, uint32_t version, int item_bytes,
                          uint64_t resume_count, int headerless, wn_errbuf *err)
{
    memset(w, 0, sizeof *w);
    w->headerless = headerless;
    const off_t header = headerless ? 0 : WN_SHARD_HEADER_BYTES;
    snprintf(w->path, sizeof w->path, "%s", path);
    snprintf(w->tmp, sizeof w->tmp, "%s.tmp", path);
    w->magic = magic;
    w->version = version;
    w->item_bytes = item_bytes;
    w->token_bytes = item_bytes;
    if (resume_count) {
        /* keep exactly the first resume_count items of the unfinished file */
        off_t keep = header + (off_t)resume_count * item_bytes;
        struct stat sb;
        /* closed after the checkpoint: its first resume_count items are the
         * same, so it goes back to being the unfinished file */
        if (stat(w->tmp, &sb) && !stat(w->path, &sb) && rename(w->path, w->tmp))
            return wn_fail(err, WN_ERR_IO, "%s: cannot reopen for resume: %s", w->path, strerror(errno));
        if (stat(w->tmp, &sb) || sb.st_size < keep)
            return wn_fail(err, WN_ERR_STATE, "%s: cannot resume: the unfinished shard is missing or shorter "
                           "than the checkpoint says", w->tmp);
        if (truncate(w->tmp, keep))
            return wn_fail(err, WN_ERR_IO, "%s: cannot truncate: %s", w->tmp, strerror(errno));
        w->f = fopen(w->tmp, "r+b");
        if (!w->f || fseeko(w->f, keep, SEEK_SET))
            return wn_fail(err, WN_ERR_IO, "%s: cannot reopen: %s", w->tmp, strerror(errno));
        w->count = resume_count;
        return WN_OK;
    }
    w->f = fopen(w->tmp, "wb");
    if (!w->f) return wn_fail(err, WN_ERR_IO, "%s: cannot create: %s", w->tmp, strerror(errno));
    static const char zero[WN_SHARD_HEADER_BYTES];
    if (header && fwrite(zero, 1, sizeof zero, w->f) != sizeof zero)
        return wn_fail(err, WN_ERR_IO, "%s: write failed: %s", w->tmp, strerror(errno));
    return WN_OK;
}

wn_err wn_shard_writer_open(wn_shard_writer *w, const char *path, int token_bytes, uint64_t resume_count,
                            wn_errbuf *err)
{
    WN_CHECK(token_bytes == 2 || token_bytes == 4);
    return open_common(w, path, WN_SHARD_MAGIC, token_bytes == 2 ? 1 : 2, token_bytes, resume_count, 0, err);
}

wn_err wn_megatron_writer_open(wn_shard_writer *w, const char *path, int token_bytes, uint64_t resume_count,
                               wn_errbuf *err)
{
    WN_CHECK(token_bytes == 2 || token_bytes == 4);
    return open_common(w, path, 0, 0, token_bytes, resume_count, 1, err);
}

/* Layout (Megatron-LM megatron/core/datasets/indexed_dataset.py, _IndexWriter):
 * "MMIDIDX\0\0", u64 version 1, u8 dtype code (8 uint16, 4 int32), u64
 * sequence count, u64 document-index count, int32 sequence lengths, int64
 * byte offsets of the sequences in the .bin, int64 document indices
 * (0, then the sequence count after each document). */
wn_err wn_megatron_write_index(const char *path, int token_bytes, const uint64_t *starts, uint64_t n, uint64_t ntok,
                               wn_errbuf *err)
{
    wn_buf b = {0};
    uint64_t version = 1, docs = n + 1;
    uint8_t code = token_bytes == 2 ? 8 : 4;
    wn_buf_append(&b, "MMIDIDX\0\0", 9);
    wn_buf_append(&b, &version, 8);
    wn_buf_append(&b, &code, 1);
    wn_buf_append(&b, &n, 8);
    wn_buf_append(&b, &docs, 8);
    for (uint64_t i = 0; i < n; i++) {
        uint64_t end = i + 1 < n ? starts[i + 1] : ntok;
        WN_CHECK(end - starts[i] < (1ull << 31));
        int32_t len = (int32_t)(end - starts[i]);
        wn_buf_append(&b, &len, 4);
    }
    for (uint64_t i = 0; i < n; i++) {
        int64_t ptr = (int64_t)(starts[i] * (uint64_t)token_bytes);
        wn_buf_append(&b, &ptr, 8);
    }
    for (uint64_t i = 0; i <= n; i++) {
        int64_t d = (int64_t)i;
        wn_buf_append(&b, &d, 8);
    }
    wn_err e = b.p ? wn_write_atomic(path, b.p, b.len, err) : WN_ERR_NOMEM;
    wn_buf_free(&b);
    return e;
}

wn_err wn_sidecar_writer_open(wn_shard_writer *w, const char *path, uint32_t magic, uint64_t resume_count,
                              wn_errbuf *err)
{
    int item = magic == WN_SHARD_DOCS_MAGIC ? 8 : 4;
    return open_common(w, path, magic, 1, item, resume_count, 0, err);
}

wn_err wn_shard_writer_put(wn_shard_writer *w, const uint32_t *tokens, size_t n, wn_errbuf *err)
{
    uint8_t buf[8192];
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        uint32_t t = tokens[i];
        if (w->token_bytes == 2) {
            WN_CHECK(t < 65536); /* the caller picks uint32 shards for larger vocabularies */
            buf[k++] = (uint8_t)t;
            buf[k++] = (uint8_t)(t >> 8);
        } else {
            buf[k++] = (uint8_t)t;
            buf[k++] = (uint8_t)(t >> 8);
            buf[k++] = (uint8_t)(t >> 16);
            buf[k++] = (uint8_t)(t >> 24);
        }
        if (k + 4 > sizeof buf || i + 1 == n) {
            if (fwrite(buf, 1, k, w->f) != k)
                return wn_fail(err, WN_ERR_IO, "%s: write failed: %s", w->tmp, strerror(errno));
            k = 0;
        }
    }
    w->count += n;
    return WN_OK;
}

/* Sidecar items are written little-endian, as the shard tokens are (the
 * project targets little-endian machines; WN_CHECK guards it). */
wn_err wn_shard_writer_put_raw(wn_shard_writer *w, const void *items, size_t n, wn_errbuf *err)
{
    const uint16_t probe = 1;
    WN_CHECK(*(const uint8_t *)&probe == 1);
    if (n && fwrite(items, (size_t)w->item_bytes, n, w->f) != n)
        return wn_fail(err, WN_ERR_IO, "%s: write failed: %s", w->tmp, strerror(errno));
    w->count += n;
    return WN_OK;
}

wn_err wn_shard_writer_sync(wn_shard_writer *w, wn_errbuf *err)
{
    if (fflush(w->f) || fsync(fileno(w->f)))
        return wn_fail(err, WN_ERR_IO, "%s: flush failed: %s", w->tmp, strerror(errno));
    return WN_OK;
}

wn_err wn_shard_writer_close(wn_shard_writer *w, wn_errbuf *err)
{
    if (w->headerless) {
        wn_err e = wn_shard_writer_sync(w, err);
        if (fclose(w->f) && !e) e = wn_fail(err, WN_ERR_IO, "%s: close failed: %s", w->tmp, strerror(errno));
        w->f = NULL;
        if (!e && rename(w->tmp, w->path)) e = wn_fail(err, WN_ERR_IO, "%s: rename failed: %s", w->path, strerror(errno));
        return e;
    }
    int32_t header[256] = {0};
    header[0] = (int32_t)w->magic;
    header[1] = (int32_t)w->version;
    WN_CHECK(w->count < (1ull << 31)); /* llm.c readers keep counts in int32 */
    header[2] = (int32_t)w->count;
    header[3] = (int32_t)w->extra;
    wn_err e = WN_OK;
    if (fseeko(w->f, 0, SEEK_SET) || fwrite(header, sizeof header, 1, w->f) != 1)
        e = wn_fail(err, WN_ERR_IO, "%s: header write failed: %s", w->tmp, strerror(errno));
    if (!e) e = wn_shard_writer_sync(w, err);
    if (fclose(w->f) && !e) e = wn_fail(err, WN_ERR_IO, "%s: close failed: %s", w->tmp, strerror(errno));
    w->f = NULL;
    if (!e && rename(w->tmp, w->path)) e = wn_fail(err, WN_ERR_IO, "%s: rename failed: %s", w->path, strerror(errno));
    return e;
}

void wn_shard_writer_abort(wn_shard_writer *w)
{
    if (w->f) fclose(w->f);
    w->f = NULL;
    remove(w->tmp);
}

/* Maps a file with a 256 x int32 header; checks magic, version, size. */
static wn_err map_file(const char *path, uint32_t magic, int *version, size_t item_bytes_v1, size_t item_bytes_v2,
                       void **map, size_t *len, int32_t header[4], wn_errbuf *err)
{
    int fd = open(path, O_RDONLY);
    if (fd < 0) return wn_fail(err, WN_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    struct stat sb;
    wn_err e = WN_OK;
    if (fstat(fd, &sb)) { e = wn_fail(err, WN_ERR_IO, "%s: %s", path, strerror(errno)); goto done; }
    if (sb.st_size < WN_SHARD_HEADER_BYTES) {
        e = wn_fail(err, WN_ERR_INPUT, "%s: %lld bytes is shorter than the 1024-byte header", path, (long long)sb.st_size);
        goto done;
    }
    *len = (size_t)sb.st_size;
    *map = mmap(NULL, *len, PROT_READ, MAP_SHARED, fd, 0);
    if (*map == MAP_FAILED) { *map = NULL; e = wn_fail(err, WN_ERR_IO, "%s: mmap failed", path); goto done; }
    memcpy(header, *map, 4 * sizeof(int32_t));
    if ((uint32_t)header[0] != magic) {
        e = wn_fail(err, WN_ERR_INPUT, "%s: magic %d, expected %u (not a %s)", path, header[0], magic,
                    magic == WN_SHARD_MAGIC ? "llm.c token shard" : "winnow shard sidecar");
        goto done;
    }
    *version = header[1];
    size_t item = *version == 1 ? item_bytes_v1 : *version == 2 ? item_bytes_v2 : 0;
    if (!item) { e = wn_fail(err, WN_ERR_INPUT, "%s: unknown version %d", path, header[1]); goto done; }
    if (header[2] < 0 || (uint64_t)*len != WN_SHARD_HEADER_BYTES + (uint64_t)header[2] * item)
        e = wn_fail(err, WN_ERR_INPUT, "%s: header says %d items of %zu bytes but the file has %zu bytes "
                    "(truncated or not a shard)", path, header[2], item, *len);
done:
    close(fd);
    if (e && *map) { munmap(*map, *len); *map = NULL; }
    return e;
}

wn_err wn_shard_open(wn_shard *s, const char *path, wn_errbuf *err)
{
    memset(s, 0, sizeof *s);
    snprintf(s->path, sizeof s->path, "%s", path);
    int32_t h[4];
    wn_err e = map_file(path, WN_SHARD_MAGIC, &s->version, 2, 4, &s->map[0], &s->map_len[0], h, err);
    if (e) return e;
    s->token_bytes = s->version == 1 ? 2 : 4;
    s->ntok = (uint64_t)h[2];
    s->tokens = (const uint8_t *)s->map[0] + WN_SHARD_HEADER_BYTES;
    /* sidecars: NAME.bin -> NAME.weights.bin, NAME.docs.bin */
    char side[4200];
    size_t n = strlen(path);
    const char *stem_end = n > 4 && !strcmp(path + n - 4, ".bin") ? path + n - 4 : path + n;
    int version;
    snprintf(side, sizeof side, "%.*s.weights.bin", (int)(stem_end - path), path);
    if (access(side, R_OK) == 0) {
        if ((e = map_file(side, WN_SHARD_WEIGHTS_MAGIC, &version, 4, 0, &s->map[1], &s->map_len[1], h, err))) goto fail;
        if ((uint64_t)h[2] != s->ntok) {
            e = wn_fail(err, WN_ERR_INPUT, "%s: %d weights for %llu tokens", side, h[2], (unsigned long long)s->ntok);
            goto fail;
        }
        s->weights = (const float *)((const uint8_t *)s->map[1] + WN_SHARD_HEADER_BYTES);
    }
    snprintf(side, sizeof side, "%.*s.docs.bin", (int)(stem_end - path), path);
    if (access(side, R_OK) == 0) {
        if ((e = map_file(side, WN_SHARD_DOCS_MAGIC, &version, 8, 0, &s->map[2], &s->map_len[2], h, err))) goto fail;
        s->ndocs = (uint64_t)h[2];
        s->docs = (const uint64_t *)((const uint8_t *)s->map[2] + WN_SHARD_HEADER_BYTES);
        for (uint64_t i = 0; i < s->ndocs; i++)
            if (s->docs[i] >= s->ntok || (i && s->docs[i] <= s->docs[i - 1])) {
                e = wn_fail(err, WN_ERR_INPUT, "%s: document %llu starts at %llu: out of order or past the end",
                            side, (unsigned long long)i, (unsigned long long)s->docs[i]);
                goto fail;
            }
    }
    return WN_OK;
fail:
    wn_shard_close(s);
    return e;
}

void wn_shard_close(wn_shard *s)
{
    for (int i = 0; i < 3; i++)
        if (s->map[i]) munmap(s->map[i], s->map_len[i]);
    memset(s, 0, sizeof *s);
}
