/*
 * reader.c - input files to documents (reader.h).
 *
 * One libarchive handle per file. For JSONL, text and WET files the "raw"
 * format gives one member: the decompressed stream. For archives each
 * regular member is read in turn. A small refillable buffer sits on top and
 * hands out lines (memchr) or exact byte counts (WARC bodies).
 */
#include "reader.h"

#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "json.h"
#include "text.h"

enum { MEMBER_JSONL, MEMBER_TEXT, MEMBER_WET, MEMBER_UNSUPPORTED };

struct wn_reader {
    struct archive *a;
    const wn_input_file *file;
    const wn_input_spec *spec;
    uint32_t file_index;
    int is_archive;
    int in_member;   /* a member is open for reading */
    int member_kind;
    int eof;         /* no more members */
    int member_eof;  /* current member fully buffered */
    char member[512];
    uint64_t line;   /* line number within the member (1-based, last line read) */
    uint64_t records;
    uint64_t member_off; /* decompressed bytes consumed in this member */
    wn_buf buf;      /* buffered bytes [pos, buf.len) */
    size_t pos;
    wn_buf tmp;
    char open_error[256]; /* set when the data failed at open */
};

static const char *name_of(const wn_reader *r)
{
    return r->file->path;
}

/* "FILE" or "FILE[member]" */
static void where(const wn_reader *r, char *out, size_t n)
{
    if (r->is_archive) snprintf(out, n, "%s[%s]", name_of(r), r->member);
    else snprintf(out, n, "%s", name_of(r));
}

static int member_kind_from_name(const char *name)
{
    size_t n = strlen(name);
    static const char *const jsonl[] = {".jsonl", ".json", ".ndjson"};
    static const char *const comp[] = {".gz", ".zst", ".bz2", ".xz", ".zip", ".tar", ".tgz"};
    for (size_t i = 0; i < WN_ARRAY_LEN(comp); i++) {
        size_t l = strlen(comp[i]);
        if (n > l && !strcmp(name + n - l, comp[i])) return MEMBER_UNSUPPORTED;
    }
    for (size_t i = 0; i < WN_ARRAY_LEN(jsonl); i++) {
        size_t l = strlen(jsonl[i]);
        if (n > l && !strcmp(name + n - l, jsonl[i])) return MEMBER_JSONL;
    }
    return MEMBER_TEXT;
}

wn_err wn_reader_open(wn_reader **out, const wn_input_file *f, const wn_input_spec *spec,
                      uint32_t file_index, wn_errbuf *err)
{
    *out = NULL;
    wn_reader *r = wn_calloc(1, sizeof *r);
    if (!r) return WN_ERR_NOMEM;
    r->file = f;
    r->spec = spec;
    r->file_index = file_index;
    r->is_archive = f->format == WN_FMT_ARCHIVE;
    r->a = archive_read_new();
    if (!r->a) { wn_free(r); return WN_ERR_NOMEM; }
    archive_read_support_filter_all(r->a);
    if (r->is_archive) {
        archive_read_support_format_tar(r->a);
        archive_read_support_format_zip(r->a);
        archive_read_support_format_gnutar(r->a);
    } else {
        archive_read_support_format_raw(r->a);
        archive_read_support_format_empty(r->a);
    }
    FILE *probe = fopen(f->path, "rb");
    if (!probe) {
        wn_err e = wn_fail(err, WN_ERR_IO, "%s: cannot open: %s", f->path, strerror(errno));
        wn_reader_close(r);
        return e;
    }
    fclose(probe);
    if (archive_read_open_filename(r->a, f->path, 1 << 20) != ARCHIVE_OK) {
        /* The file is readable, so the data is bad: libarchive reads ahead
         * while choosing filters and format. Reported on the first read as an
         * input error, which the error policy decides about. */
        const char *msg = archive_error_string(r->a);
        snprintf(r->open_error, sizeof r->open_error, "%s", msg ? msg : "unreadable data");
    }
    *out = r;
    return WN_OK;
}

void wn_reader_close(wn_reader *r)
{
    if (!r) return;
    if (r->a) archive_read_free(r->a);
    wn_buf_free(&r->buf);
    wn_buf_free(&r->tmp);
    wn_free(r);
}

uint64_t wn_reader_records(const wn_reader *r) { return r->records; }

uint64_t wn_reader_raw_bytes(const wn_reader *r)
{
    int64_t n = archive_filter_bytes(r->a, -1);
    return n > 0 ? (uint64_t)n : 0;
}

/* The rest of the file is unreadable: no more members, no more records. */
static void end_file(wn_reader *r)
{
    r->eof = 1;
    r->in_member = 0;
}

/* Stream failure: the rest of the file is unreadable. */
static wn_err stream_error(wn_reader *r, const char **reason, wn_errbuf *err)
{
    char w[700];
    where(r, w, sizeof w);
    const char *msg = archive_error_string(r->a);
    *reason = r->is_archive ? "corrupt_archive" : "truncated";
    end_file(r);
    r->records++;
    return wn_fail(err, WN_ERR_INPUT, "%s: byte offset %llu of the decompressed data: %s: %s", w,
                   (unsigned long long)r->member_off,
                   r->is_archive ? "corrupt archive" : "truncated or corrupt stream",
                   msg ? msg : "read error");
}

/* Opens the next member. Returns 1 when one is open, 0 at end, -1 on error. */
static int next_member(wn_reader *r)
{
    for (;;) {
        struct archive_entry *e;
        int rc = archive_read_next_header(r->a, &e);
        if (rc == ARCHIVE_EOF) { r->eof = 1; return 0; }
        if (rc != ARCHIVE_OK && rc != ARCHIVE_WARN) return -1;
        if (r->is_archive && archive_entry_filetype(e) != AE_IFREG) continue;
        const char *name = archive_entry_pathname(e);
        snprintf(r->member, sizeof r->member, "%s", name ? name : "?");
        r->in_member = 1;
        r->member_eof = 0;
        r->line = 0;
        r->member_off = 0;
        r->buf.len = 0;
        r->pos = 0;
        if (!r->is_archive) {
            r->member_kind = r->file->format == WN_FMT_JSONL ? MEMBER_JSONL
                           : r->file->format == WN_FMT_WET ? MEMBER_WET : MEMBER_TEXT;
        } else {
            r->member_kind = member_kind_from_name(r->member);
        }
        return 1;
    }
}

/* Reads the next block of decompressed bytes. Blocks come as libarchive's
 * filters produce them, so when the stream fails, everything decompressed
 * before the damage has already been delivered. Returns 1 if bytes were
 * added, 0 at end of member, -1 on a stream error, -2 out of memory. */
static int refill(wn_reader *r)
{
    if (r->member_eof) return 0;
    if (r->pos > 0) { /* slide unread bytes to the front */
        memmove(r->buf.p, r->buf.p + r->pos, r->buf.len - r->pos);
        r->buf.len -= r->pos;
        r->pos = 0;
    }
    for (;;) {
        const void *block;
        size_t size;
        la_int64_t offset;
        int rc = archive_read_data_block(r->a, &block, &size, &offset);
        if (rc == ARCHIVE_EOF) { r->member_eof = 1; return 0; }
        if (rc < ARCHIVE_WARN) return -1;
        if (!size) continue;
        if (wn_buf_append(&r->buf, block, size)) return -2;
        return 1;
    }
}

/* The buffer's unread bytes (before anything was read there is no buffer:
 * an empty string, not NULL + 0). */
static const char *unread(const wn_reader *r) { return r->buf.p ? r->buf.p + r->pos : ""; }

/* Next line (without its '\n' or "\r\n") as a span into the buffer, valid
 * until the next call. Returns 1, 0 at end of member, <0 on error. */
static int read_line(wn_reader *r, wn_span *line)
{
    for (;;) {
        const char *start = unread(r);
        const char *nl = r->buf.len > r->pos ? memchr(start, '\n', r->buf.len - r->pos) : NULL;
        if (nl || (r->member_eof && r->pos < r->buf.len)) {
            size_t len = nl ? (size_t)(nl - start) : r->buf.len - r->pos;
            r->pos += len + (nl != NULL);
            r->member_off += len + (nl != NULL);
            if (len && start[len - 1] == '\r') len--;
            line->p = start;
            line->n = len;
            r->line++;
            return 1;
        }
        if (r->member_eof) return 0;
        int rc = refill(r);
        if (rc < 0) return rc;
    }
}

/* Makes sure n bytes are buffered at pos. Returns 1, 0 if the member ends
 * first, <0 on error. */
static int need(wn_reader *r, size_t n)
{
    while (r->buf.len - r->pos < n) {
        int rc = refill(r);
        if (rc <= 0) return rc;
    }
    return 1;
}

static void gen_id(wn_reader *r, wn_doc *d)
{
    char w[700];
    where(r, w, sizeof w);
    wn_buf_printf(&d->id, "%s:%llu", w, (unsigned long long)r->line);
}

static wn_err bad_record(wn_reader *r, const char **reason, const char *why, wn_errbuf *err,
                         const char *fmt, ...) __attribute__((format(printf, 5, 6)));

static wn_err bad_record(wn_reader *r, const char **reason, const char *why, wn_errbuf *err,
                         const char *fmt, ...)
{
    char w[700], msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    where(r, w, sizeof w);
    *reason = why;
    return wn_fail(err, WN_ERR_INPUT, "%s:%llu: %s", w, (unsigned long long)r->line, msg);
}

static wn_err check_utf8(wn_reader *r, wn_doc *d, const char **reason, wn_errbuf *err)
{
    size_t bad;
    if (r->spec->utf8_pass || wn_utf8_valid(d->text.p, d->text.len, &bad)) return WN_OK;
    return bad_record(r, reason, "invalid_utf8", err,
                      "invalid UTF-8 at byte %zu of the text (set utf8: pass on the input to let "
                      "normalize repair it)", bad);
}

static wn_err jsonl_record(wn_reader *r, wn_span line, wn_doc *d, const char **reason, wn_errbuf *err)
{
    size_t off;
    const char *why;
    if (wn_json_check_object(line.p, line.n, &off, &why))
        return bad_record(r, reason, "malformed_json", err, "malformed JSON at column %zu: %s", off + 1, why);
    wn_json_iter it;
    wn_span k, v, text = {0}, id = {0};
    int have_text = 0, have_id = 0;
    wn_json_iter_init(&it, line.p, line.n);
    while (wn_json_iter_next(&it, &k, &v)) {
        if (!have_text && wn_json_key_eq(k, r->spec->text_key)) { text = v; have_text = 1; }
        else if (!have_id && wn_json_key_eq(k, r->spec->id_key)) { id = v; have_id = 1; }
    }
    if (!have_text)
        return bad_record(r, reason, "missing_text", err, "no \"%s\" field (set text_key on the input)",
                          r->spec->text_key);
    if (text.p[0] != '"')
        return bad_record(r, reason, "missing_text", err, "field \"%s\" is not a string", r->spec->text_key);
    if (wn_json_decode_string(text, &d->text)) return WN_ERR_NOMEM;
    wn_err e = check_utf8(r, d, reason, err);
    if (e) return e;
    if (have_id && id.p[0] == '"') e = wn_json_decode_string(id, &d->id);
    else if (have_id && (id.p[0] == '-' || (id.p[0] >= '0' && id.p[0] <= '9'))) e = wn_buf_append(&d->id, id.p, id.n);
    else gen_id(r, d);
    if (e) return e;
    d->raw_text = 1;
    return wn_buf_append(&d->raw, line.p, line.n);
}

/* Synthesised record for non-JSON sources: {"id":..,"text":"",<meta>}. The
 * writer fills "text" in. */
static wn_err meta_record(wn_doc *d, const char *extra)
{
    wn_buf_puts(&d->raw, "{\"id\":");
    wn_json_encode_string(&d->raw, d->id.p, d->id.len);
    wn_buf_puts(&d->raw, ",\"text\":\"\"");
    if (extra) wn_buf_puts(&d->raw, extra);
    return wn_buf_putc(&d->raw, '}');
}

static wn_err text_source(wn_reader *r, wn_buf *extra)
{
    char w[700];
    where(r, w, sizeof w);
    wn_buf_clear(extra);
    wn_buf_puts(extra, ",\"source\":");
    return wn_json_encode_string(extra, w, strlen(w));
}

/* Parses "Key: value" WARC headers until the blank line. */
static int warc_header(wn_span line, const char *key, wn_span *val)
{
    size_t kl = strlen(key);
    if (line.n <= kl || line.p[kl] != ':' || strncasecmp(line.p, key, kl)) return 0;
    const char *p = line.p + kl + 1, *end = line.p + line.n;
    while (p < end && (*p == ' ' || *p == '\t')) p++;
    val->p = p;
    val->n = (size_t)(end - p);
    return 1;
}

static wn_err wet_record(wn_reader *r, wn_doc *d, int *got, const char **reason, wn_errbuf *err)
{
    wn_span line, v;
    int rc;
    do { /* skip blank lines between records */
        rc = read_line(r, &line);
        if (rc < 0) return rc == -2 ? WN_ERR_NOMEM : stream_error(r, reason, err);
        if (rc == 0) { *got = 0; return WN_OK; }
    } while (line.n == 0);
    if (line.n < 5 || memcmp(line.p, "WARC/", 5)) {
        end_file(r); /* cannot resynchronise reliably */
        return bad_record(r, reason, "bad_warc", err, "expected a WARC version line, got '%.*s'",
                          (int)(line.n > 40 ? 40 : line.n), line.p);
    }
    char type[64] = "";
    long long clen = -1;
    wn_buf *meta = &r->tmp;
    wn_buf_clear(meta);
    wn_buf_clear(&d->id);
    for (;;) {
        rc = read_line(r, &line);
        if (rc < 0) return rc == -2 ? WN_ERR_NOMEM : stream_error(r, reason, err);
        if (rc == 0) {
            end_file(r);
            return bad_record(r, reason, "truncated", err, "file ends inside a WARC header");
        }
        if (line.n == 0) break;
        if (warc_header(line, "WARC-Type", &v)) snprintf(type, sizeof type, "%.*s", (int)v.n, v.p);
        else if (warc_header(line, "Content-Length", &v)) {
            char num[32];
            snprintf(num, sizeof num, "%.*s", (int)(v.n < 31 ? v.n : 31), v.p);
            char *end;
            clen = strtoll(num, &end, 10);
            if (*end || clen < 0) clen = -2;
        } else if (warc_header(line, "WARC-Record-ID", &v)) wn_buf_append(&d->id, v.p, v.n);
        else {
            static const char *const keys[][2] = {{"WARC-Target-URI", "url"}, {"WARC-Date", "date"},
                {"WARC-Identified-Content-Language", "language"}, {"Content-Type", "content_type"}};
            for (size_t i = 0; i < WN_ARRAY_LEN(keys); i++)
                if (warc_header(line, keys[i][0], &v)) {
                    wn_buf_printf(meta, ",\"%s\":", keys[i][1]);
                    wn_json_encode_string(meta, v.p, v.n);
                }
        }
    }
    if (clen < 0) {
        end_file(r);
        return bad_record(r, reason, "bad_warc", err, "WARC record without a valid Content-Length");
    }
    rc = need(r, (size_t)clen);
    if (rc < 0) return rc == -2 ? WN_ERR_NOMEM : stream_error(r, reason, err);
    if (rc == 0) {
        end_file(r);
        return bad_record(r, reason, "truncated", err, "WARC record body is cut short (Content-Length %lld)", clen);
    }
    const char *body = unread(r);
    r->pos += (size_t)clen;
    r->member_off += (size_t)clen;
    for (size_t i = 0; i < (size_t)clen; i++) r->line += body[i] == '\n';
    if (strcmp(type, "conversion")) { /* warcinfo, metadata, ...: not documents */
        *got = 2;
        return WN_OK;
    }
    size_t n = (size_t)clen;
    while (n && (body[n - 1] == '\n' || body[n - 1] == '\r')) n--;
    if (wn_buf_append(&d->text, body, n)) return WN_ERR_NOMEM;
    wn_err e = check_utf8(r, d, reason, err);
    if (e) return e;
    if (!d->id.len) gen_id(r, d);
    return meta_record(d, meta->p);
}

static wn_err next_unit(wn_reader *r, wn_doc *d, int *got, const char **reason, wn_errbuf *err)
{
    if (r->open_error[0] && !r->eof) {
        end_file(r);
        *reason = r->is_archive ? "corrupt_archive" : "truncated";
        return wn_fail(err, WN_ERR_INPUT, "%s: byte offset 0 of the decompressed data: %s: %s", name_of(r),
                       r->is_archive ? "corrupt archive" : "truncated or corrupt stream", r->open_error);
    }
    for (;;) {
        if (!r->in_member) {
            if (r->eof) { *got = 0; return WN_OK; }
            int rc = next_member(r);
            if (rc < 0) return stream_error(r, reason, err);
            if (rc == 0) { *got = 0; return WN_OK; }
            if (r->member_kind == MEMBER_UNSUPPORTED) {
                r->in_member = 0;
                r->line = 0;
                return bad_record(r, reason, "unsupported_member", err,
                                  "compressed or nested archive members are not read; extract it first");
            }
        }
        *got = 1;
        wn_span line;
        int rc;
        switch (r->member_kind) {
        case MEMBER_JSONL:
            rc = read_line(r, &line);
            if (rc < 0) return rc == -2 ? WN_ERR_NOMEM : stream_error(r, reason, err);
            if (rc == 0) { r->in_member = 0; continue; }
            while (line.n && (line.p[line.n - 1] == ' ' || line.p[line.n - 1] == '\t')) line.n--;
            if (line.n == 0) { *got = 2; return WN_OK; } /* blank line: not a record */
            return jsonl_record(r, line, d, reason, err);
        case MEMBER_TEXT:
            if (r->spec->text_unit_line) {
                rc = read_line(r, &line);
                if (rc < 0) return rc == -2 ? WN_ERR_NOMEM : stream_error(r, reason, err);
                if (rc == 0) { r->in_member = 0; continue; }
                if (wn_buf_append(&d->text, line.p, line.n)) return WN_ERR_NOMEM;
            } else {
                do rc = refill(r); while (rc > 0);
                if (rc < 0) return rc == -2 ? WN_ERR_NOMEM : stream_error(r, reason, err);
                r->in_member = 0;
                r->line = 1;
                if (wn_buf_append(&d->text, unread(r), r->buf.len - r->pos)) return WN_ERR_NOMEM;
                r->member_off += r->buf.len - r->pos;
                r->pos = r->buf.len;
            }
            {
                wn_err e = check_utf8(r, d, reason, err);
                if (e) return e;
            }
            if (r->spec->text_unit_line) gen_id(r, d);
            else {
                char w[700];
                where(r, w, sizeof w);
                wn_buf_puts(&d->id, w);
            }
            text_source(r, &r->tmp);
            return meta_record(d, r->tmp.p);
        case MEMBER_WET: {
            wn_err e = wet_record(r, d, got, reason, err);
            if (e || *got) return e;
            r->in_member = 0;
            continue;
        }
        }
    }
}

wn_err wn_reader_next(wn_reader *r, wn_doc *d, int *got, const char **reason, wn_errbuf *err)
{
    for (;;) {
        wn_buf_clear(&d->id);
        wn_buf_clear(&d->text);
        wn_buf_clear(&d->raw);
        d->file = r->file_index;
        d->raw_text = 0;
        uint64_t rec = r->records;
        wn_err e = next_unit(r, d, got, reason, err);
        d->record = rec;
        if (e == WN_ERR_INPUT) { if (r->records == rec) r->records++; return e; }
        if (e) return e;
        if (*got == 0) return WN_OK;
        r->records++;
        if (*got == 2) continue; /* consumed something that is not a document */
        return WN_OK;
    }
}
