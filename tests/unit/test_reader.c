/*
 * test_reader.c - unit tests for reader.c. Input files are written into a
 * temporary directory; compressed files and archives are made with the
 * gzip, zstd and tar command-line tools (the unit binary does not link
 * zlib). Covers JSONL fields and ids, bad records and recovery, truncated
 * streams, text files and lines, tar members, and WET records (hand-written
 * and the real Common Crawl fixture in ../shared).
 */
#include "../test.h"
#include "fs.h"
#include "json.h"
#include "reader.h"

#include <stdarg.h>
#include <stdlib.h>
#include <sys/stat.h>

static void tmp_dir(char dir[64])
{
    snprintf(dir, 64, "/tmp/wn-reader-XXXXXX");
    if (!mkdtemp(dir)) { perror("mkdtemp"); abort(); }
}

/* Writes n bytes to DIR/NAME; path (512 bytes) receives the full path. */
static void put_file(const char *dir, const char *name, const char *data, size_t n, char *path)
{
    char p[512];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    if (path) strcpy(path, p);
    FILE *f = fopen(p, "wb");
    if (!f) { perror(p); abort(); }
    fwrite(data, 1, n, f);
    fclose(f);
}

static int sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int sh(const char *fmt, ...)
{
    char cmd[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    int rc = system(cmd);
    if (rc) fprintf(stderr, "  command failed (%d): %s\n", rc, cmd);
    return rc;
}

static wn_input_spec spec_default(void)
{
    wn_input_spec s;
    memset(&s, 0, sizeof s);
    s.path = (char *)"unused";
    s.text_key = (char *)"text";
    s.id_key = (char *)"id";
    return s;
}

/* Reads a whole file. log gets "D id|text\n" per document and "E reason\n"
 * per input error; msgs (optional) gets each error message and a newline.
 * Returns the first error that is not WN_ERR_INPUT (or WN_OK). */
static wn_err read_all(const char *path, wn_format fmt, const wn_input_spec *spec, wn_buf *log,
                       wn_buf *msgs)
{
    wn_input_file f = {(char *)path, 0, fmt, 0, 0};
    wn_reader *r = NULL;
    if (!log->p) wn_buf_puts(log, "");
    if (msgs && !msgs->p) wn_buf_puts(msgs, "");
    wn_errbuf err;
    wn_doc d;
    memset(&d, 0, sizeof d);
    wn_err e = wn_reader_open(&r, &f, spec, 0, &err);
    if (e) {
        if (msgs) wn_buf_printf(msgs, "%s\n", err.msg);
        return e;
    }
    for (int i = 0; i < 1000000; i++) { /* bounded: a looping reader fails the test */
        int got = -1;
        const char *reason = NULL;
        e = wn_reader_next(r, &d, &got, &reason, &err);
        if (e == WN_ERR_INPUT) {
            wn_buf_printf(log, "E %s\n", reason ? reason : "(null)");
            if (msgs) wn_buf_printf(msgs, "%s\n", err.msg);
            continue;
        }
        if (e) break;
        if (!got) break;
        wn_buf_printf(log, "D %.*s|%.*s\n", (int)d.id.len, d.id.p ? d.id.p : "", (int)d.text.len,
                      d.text.p ? d.text.p : "");
    }
    wn_reader_close(r);
    wn_buf_free(&d.id);
    wn_buf_free(&d.text);
    wn_buf_free(&d.raw);
    wn_buf_free(&d.attrs);
    return e;
}

/* A reader over path with one document read into d; returns got. */
typedef struct {
    wn_input_file f;
    wn_input_spec spec;
    wn_reader *r;
    wn_doc d;
    wn_errbuf err;
    const char *reason;
} rd;

static void rd_open(rd *x, const char *path, wn_format fmt)
{
    memset(x, 0, sizeof *x);
    x->f.path = (char *)path;
    x->f.format = fmt;
    x->spec = spec_default();
    if (wn_reader_open(&x->r, &x->f, &x->spec, 7, &x->err)) fprintf(stderr, "  open: %s\n", x->err.msg);
}

static wn_err rd_next(rd *x, int *got)
{
    *got = -1;
    x->reason = NULL;
    return x->r ? wn_reader_next(x->r, &x->d, got, &x->reason, &x->err) : WN_ERR_INTERNAL;
}

static void rd_close(rd *x)
{
    wn_reader_close(x->r);
    wn_buf_free(&x->d.id);
    wn_buf_free(&x->d.text);
    wn_buf_free(&x->d.raw);
    wn_buf_free(&x->d.attrs);
}

#define S(lit) lit, sizeof(lit) - 1

TEST(reader_jsonl_fields_and_raw)
{
    char dir[64], path[512];
    tmp_dir(dir);
    static const char l1[] = "{\"id\":\"d1\",\"text\":\"one\\ntwo caf\\u00e9 \\\"q\\\" \\ud83d\\ude00\","
                             "\"meta\":{\"k\":[1,2]},\"n\":5}";
    static const char l2[] = "{\"n\":1,\"text\":\"second\",\"id\":42}";
    static const char l3[] = "{\"text\":\"crlf\",\"id\":\"d3\"}";
    char data[512];
    snprintf(data, sizeof data, "%s\n%s\n%s\r\n{\"id\":\"last\",\"text\":\"no newline\"}", l1, l2, l3);
    put_file(dir, "in.jsonl", data, strlen(data), path);

    rd x;
    rd_open(&x, path, WN_FMT_JSONL);
    int got;
    CHECK(rd_next(&x, &got) == WN_OK && got == 1);
    CHECK_EQ_STR(x.d.id.p, "d1");
    CHECK_EQ_STR(x.d.text.p, "one\ntwo caf\xc3\xa9 \"q\" \xf0\x9f\x98\x80");
    CHECK_EQ_STR(x.d.raw.p, l1); /* raw is the line, byte for byte */
    CHECK_EQ_INT(x.d.raw_text, 1);
    CHECK_EQ_INT(x.d.file, 7);
    CHECK_EQ_INT(x.d.record, 0);
    CHECK(rd_next(&x, &got) == WN_OK && got == 1);
    CHECK_EQ_STR(x.d.id.p, "42"); /* a numeric id is kept as written */
    CHECK_EQ_STR(x.d.text.p, "second");
    CHECK_EQ_STR(x.d.raw.p, l2);
    CHECK_EQ_INT(x.d.record, 1);
    CHECK(rd_next(&x, &got) == WN_OK && got == 1);
    CHECK_EQ_STR(x.d.raw.p, l3); /* the \r of a CRLF line is not part of the record */
    CHECK(rd_next(&x, &got) == WN_OK && got == 1);
    CHECK_EQ_STR(x.d.id.p, "last");
    CHECK_EQ_STR(x.d.text.p, "no newline");
    CHECK(rd_next(&x, &got) == WN_OK && got == 0);
    CHECK(rd_next(&x, &got) == WN_OK && got == 0); /* end of file stays the end */
    if (x.r) CHECK_EQ_INT(wn_reader_records(x.r), 4);
    if (x.r) CHECK_EQ_INT(wn_reader_raw_bytes(x.r), strlen(data));
    rd_close(&x);
    wn_rm_tree(dir, NULL);
}

TEST(reader_jsonl_blank_lines_keys_and_generated_ids)
{
    char dir[64], path[512], want[2048];
    tmp_dir(dir);
    static const char data[] = "\n{\"text\":\"a\"}\n   \n\t\r\n{\"text\":\"b\",\"id\":null}\n\n"
                               "{\"content\":\"c\",\"doc_id\":\"C\",\"text\":\"not me\",\"content\":\"dup\"}\n";
    put_file(dir, "in.jsonl", S(data), path);
    wn_buf log = {0};
    wn_input_spec spec = spec_default();
    CHECK(read_all(path, WN_FMT_JSONL, &spec, &log, NULL) == WN_OK);
    snprintf(want, sizeof want, "D %s:2|a\nD %s:5|b\nD %s:7|not me\n", path, path, path);
    CHECK_EQ_STR(log.p, want);

    /* Other keys; the first occurrence of a duplicated key wins. */
    wn_buf_clear(&log);
    spec.text_key = (char *)"content";
    spec.id_key = (char *)"doc_id";
    CHECK(read_all(path, WN_FMT_JSONL, &spec, &log, NULL) == WN_OK);
    CHECK_EQ_STR(log.p, "E missing_text\nE missing_text\nD C|c\n");

    /* Record indexes count blank lines: they are the resume positions. */
    rd x;
    rd_open(&x, path, WN_FMT_JSONL);
    int got;
    CHECK(rd_next(&x, &got) == WN_OK && got == 1);
    CHECK_EQ_INT(x.d.record, 1);
    CHECK(rd_next(&x, &got) == WN_OK && got == 1);
    CHECK_EQ_INT(x.d.record, 4);
    rd_close(&x);
    wn_buf_free(&log);
    wn_rm_tree(dir, NULL);
}

TEST(reader_jsonl_bad_records_then_continue)
{
    char dir[64], path[512], want[2048];
    tmp_dir(dir);
    static const char data[] = "{\"id\":\"a\",\"text\":\"ok\"}\n"
                               "{\"id\":\"b\",\"text\": broken\n"
                               "{\"id\":\"c\",\"text\":\"ok\"}\n"
                               "{\"id\":\"d\",\"text\":\"x\",}\n"
                               "[1,2]\n"
                               "{\"id\":\"e\",\"body\":\"no text\"}\n"
                               "{\"id\":\"f\",\"text\":5}\n"
                               "{\"id\":\"g\",\"text\":\"ok\"}\n";
    put_file(dir, "in.jsonl", S(data), path);
    wn_buf log = {0}, msgs = {0};
    wn_input_spec spec = spec_default();
    CHECK(read_all(path, WN_FMT_JSONL, &spec, &log, &msgs) == WN_OK);
    CHECK_EQ_STR(log.p, "D a|ok\nE malformed_json\nD c|ok\nE malformed_json\nE malformed_json\n"
                        "E missing_text\nE missing_text\nD g|ok\n");
    for (int line = 2; line <= 7; line++) {
        if (line == 3) continue;
        snprintf(want, sizeof want, "%s:%d: ", path, line);
        if (!strstr(msgs.p, want)) fprintf(stderr, "  no '%s' in:\n%s", want, msgs.p);
        CHECK(strstr(msgs.p, want) != NULL);
    }
    CHECK(strstr(msgs.p, "malformed JSON at column") != NULL);
    CHECK(strstr(msgs.p, "no \"text\" field") != NULL);
    wn_buf_free(&log);
    wn_buf_free(&msgs);
    wn_rm_tree(dir, NULL);
}

TEST(reader_jsonl_invalid_utf8)
{
    char dir[64], path[512], want[600];
    tmp_dir(dir);
    static const char data[] = "{\"id\":\"u\",\"text\":\"ab\xff" "cd\"}\n"
                               "{\"id\":\"s\",\"text\":\"lone \\ud800 escape\"}\n"
                               "{\"id\":\"v\",\"text\":\"caf\xc3\xa9\"}\n";
    put_file(dir, "in.jsonl", S(data), path);
    wn_buf log = {0}, msgs = {0};
    wn_input_spec spec = spec_default();
    CHECK(read_all(path, WN_FMT_JSONL, &spec, &log, &msgs) == WN_OK);
    /* A lone surrogate escape is valid JSON and decodes to U+FFFD. */
    CHECK_EQ_STR(log.p, "E invalid_utf8\nD s|lone \xef\xbf\xbd escape\nD v|caf\xc3\xa9\n");
    snprintf(want, sizeof want, "%s:1: invalid UTF-8 at byte 2", path);
    CHECK(strstr(msgs.p, want) != NULL);

    wn_buf_clear(&log);
    spec.utf8_pass = 1; /* the document goes to the stages as it is */
    CHECK(read_all(path, WN_FMT_JSONL, &spec, &log, NULL) == WN_OK);
    CHECK_EQ_STR(log.p, "D u|ab\xff" "cd\nD s|lone \xef\xbf\xbd escape\nD v|caf\xc3\xa9\n");
    wn_buf_free(&log);
    wn_buf_free(&msgs);
    wn_rm_tree(dir, NULL);
}

/* Lines of varied, poorly compressible text so that half a compressed file
 * cuts the stream in the middle. */
static void make_big_jsonl(const char *dir, const char *name, int n, char *path)
{
    wn_buf b = {0};
    uint64_t x = 88172645463325252ULL;
    for (int i = 0; i < n; i++) {
        wn_buf_printf(&b, "{\"id\":\"r%d\",\"text\":\"", i);
        for (int k = 0; k < 60; k++) {
            x ^= x << 13; x ^= x >> 7; x ^= x << 17;
            wn_buf_putc(&b, (char)('a' + (int)(x % 26)));
        }
        wn_buf_puts(&b, "\"}\n");
    }
    put_file(dir, name, b.p, b.len, path);
    wn_buf_free(&b);
}

static int count_prefix(const char *s, const char *prefix)
{
    int n = 0;
    for (const char *p = s; (p = strstr(p, prefix)); p++) n += p == s || p[-1] == '\n';
    return n;
}

TEST(reader_jsonl_compressed)
{
    char dir[64], path[512], gz[600], zst[600];
    tmp_dir(dir);
    make_big_jsonl(dir, "big.jsonl", 300, path);
    snprintf(gz, sizeof gz, "%s.gz", path);
    snprintf(zst, sizeof zst, "%s.zst", path);
    CHECK(sh("gzip -n -k %s && zstd -q %s -o %s", path, path, zst) == 0);
    wn_buf plain = {0}, a = {0}, b = {0};
    wn_input_spec spec = spec_default();
    CHECK(read_all(path, WN_FMT_JSONL, &spec, &plain, NULL) == WN_OK);
    CHECK(read_all(gz, WN_FMT_JSONL, &spec, &a, NULL) == WN_OK);
    CHECK(read_all(zst, WN_FMT_JSONL, &spec, &b, NULL) == WN_OK);
    CHECK_EQ_INT(count_prefix(plain.p, "D r"), 300);
    CHECK_EQ_STR(a.p, plain.p);
    CHECK_EQ_STR(b.p, plain.p);
    wn_buf_free(&plain);
    wn_buf_free(&a);
    wn_buf_free(&b);
    wn_rm_tree(dir, NULL);
}

/* Compresses a big JSONL file (40000 lines, 3.4 MB) with `tool` and keeps
 * the first half of the compressed bytes: the reader gives documents from
 * before the cut, then exactly one "truncated" error naming a byte offset,
 * then the end. */
static void check_truncated(int *wn_failed_, const char *tool, const char *ext)
{
    char dir[64], path[512], cut[600], want[700];
    tmp_dir(dir);
    make_big_jsonl(dir, "big.jsonl", 40000, path);
    snprintf(cut, sizeof cut, "%s/cut.jsonl.%s", dir, ext);
    CHECK(sh("%s -c %s > %s.%s && head -c $(( $(stat -c %%s %s.%s) / 2 )) %s.%s > %s", tool, path,
             path, ext, path, ext, path, ext, cut) == 0);
    wn_buf log = {0}, msgs = {0};
    wn_input_spec spec = spec_default();
    CHECK(read_all(cut, WN_FMT_JSONL, &spec, &log, &msgs) == WN_OK);
    int docs = count_prefix(log.p, "D r");
    if (docs <= 1000 || docs >= 40000) fprintf(stderr, "  %s: %d documents\n", ext, docs);
    CHECK(docs > 1000 && docs < 40000);
    CHECK(strncmp(log.p, "D r0|", 5) == 0);
    const char *e = strstr(log.p, "E ");
    CHECK(e != NULL && count_prefix(log.p, "E ") == 1);
    if (e) CHECK_EQ_STR(e, "E truncated\n"); /* the last thing reported */
    snprintf(want, sizeof want, "%s: byte offset ", cut);
    if (!strstr(msgs.p, want)) fprintf(stderr, "  %s: %s", ext, msgs.p);
    CHECK(strstr(msgs.p, want) != NULL);
    CHECK(strstr(msgs.p, "truncated or corrupt stream") != NULL);
    wn_buf_free(&log);
    wn_buf_free(&msgs);
    wn_rm_tree(dir, NULL);
}

TEST(reader_truncated_zst)
{
    check_truncated(wn_failed_, "zstd -q", "zst");
}

TEST(reader_truncated_gz)
{
    check_truncated(wn_failed_, "gzip -n", "gz");
}

/* Records decompressed before a truncation are delivered: the reader takes
 * libarchive's blocks as its filters produce them. What libarchive's gzip
 * filter holds in its output buffer when the input ends (under 64 KiB, here
 * about 60 lines of 80 bytes) is lost with the error. */
TEST(reader_truncated_keeps_records_before_the_cut)
{
    char dir[64], path[512], cut[600], cmd[1400];
    tmp_dir(dir);
    make_big_jsonl(dir, "big.jsonl", 40000, path);
    snprintf(cut, sizeof cut, "%s/cut.jsonl.gz", dir);
    CHECK(sh("gzip -nc %s > %s.gz && head -c $(( $(stat -c %%s %s.gz) / 2 )) %s.gz > %s", path, path,
             path, path, cut) == 0);
    snprintf(cmd, sizeof cmd, "gzip -dc %s 2>/dev/null | wc -l", cut);
    FILE *p = popen(cmd, "r");
    int complete = 0;
    if (!p || fscanf(p, "%d", &complete) != 1) complete = -1;
    if (p) pclose(p);
    CHECK(complete > 10000);
    wn_buf log = {0};
    wn_input_spec spec = spec_default();
    CHECK(read_all(cut, WN_FMT_JSONL, &spec, &log, NULL) == WN_OK);
    int docs = count_prefix(log.p, "D r");
    if (docs < complete - 1) fprintf(stderr, "  %d documents read, %d complete lines before the cut\n", docs, complete);
    CHECK(docs >= complete - 1000); /* at most 64 KiB of 80-byte lines */
    wn_buf_free(&log);
    wn_rm_tree(dir, NULL);
}

/* A .gz cut within what libarchive reads ahead at open is still the input
 * error "truncated" on the first read (the policy decides), not an I/O error. */
TEST(reader_truncated_small_file_is_an_input_error)
{
    char dir[64], path[512], cut[600];
    tmp_dir(dir);
    make_big_jsonl(dir, "small.jsonl", 300, path); /* 25 KB */
    snprintf(cut, sizeof cut, "%s/cut.jsonl.gz", dir);
    CHECK(sh("gzip -nc %s > %s.gz && head -c $(( $(stat -c %%s %s.gz) / 2 )) %s.gz > %s", path, path,
             path, path, cut) == 0);
    wn_buf log = {0}, msgs = {0};
    wn_input_spec spec = spec_default();
    wn_err e = read_all(cut, WN_FMT_JSONL, &spec, &log, &msgs);
    if (e) fprintf(stderr, "  %s", msgs.p);
    CHECK(e == WN_OK);
    const char *err = strstr(log.p, "E ");
    CHECK(err && !strcmp(err, "E truncated\n"));
    wn_buf_free(&log);
    wn_buf_free(&msgs);
    wn_rm_tree(dir, NULL);
}

TEST(reader_text_file_and_lines)
{
    char dir[64], path[512], want[2048];
    tmp_dir(dir);
    static const char data[] = "First line\nsecond caf\xc3\xa9\r\nthird";
    put_file(dir, "doc.txt", S(data), path);

    rd x;
    rd_open(&x, path, WN_FMT_TEXT);
    int got;
    CHECK(rd_next(&x, &got) == WN_OK && got == 1);
    CHECK_EQ_STR(x.d.id.p, path); /* a file is one document, named by its path */
    CHECK_EQ_STR(x.d.text.p, data);
    CHECK_EQ_INT(x.d.raw_text, 0);
    snprintf(want, sizeof want, "{\"id\":\"%s\",\"text\":\"\",\"source\":\"%s\"}", path, path);
    CHECK_EQ_STR(x.d.raw.p, want);
    CHECK(rd_next(&x, &got) == WN_OK && got == 0);
    rd_close(&x);

    wn_buf log = {0};
    wn_input_spec spec = spec_default();
    spec.text_unit_line = 1; /* a line is a document, CR LF or LF */
    CHECK(read_all(path, WN_FMT_TEXT, &spec, &log, NULL) == WN_OK);
    snprintf(want, sizeof want, "D %s:1|First line\nD %s:2|second caf\xc3\xa9\nD %s:3|third\n", path,
             path, path);
    CHECK_EQ_STR(log.p, want);

    static const char bad[] = "ok\nbad \xc0\xaf here\nok again\n";
    put_file(dir, "bad.txt", S(bad), path);
    wn_buf_clear(&log);
    CHECK(read_all(path, WN_FMT_TEXT, &spec, &log, NULL) == WN_OK);
    snprintf(want, sizeof want, "D %s:1|ok\nE invalid_utf8\nD %s:3|ok again\n", path, path);
    CHECK_EQ_STR(log.p, want);
    wn_buf_free(&log);
    wn_rm_tree(dir, NULL);
}

TEST(reader_tar_gz_members_in_order)
{
    char dir[64], path[512], want[2048];
    tmp_dir(dir);
    char sub[128];
    snprintf(sub, sizeof sub, "%s/m", dir);
    wn_mkdir_p(sub, NULL);
    put_file(sub, "a.jsonl", S("{\"id\":\"a1\",\"text\":\"alpha\"}\n{\"id\":\"a2\",\"text\":\"beta\"}\n"), NULL);
    put_file(sub, "b.txt", S("plain text member\n"), NULL);
    put_file(sub, "c.jsonl", S("{\"text\":\"gamma\"}\n{\"text\": nope}\n"), NULL);
    put_file(sub, "n.jsonl.gz", S("not read"), NULL);
    put_file(sub, "z.jsonl", S("{\"id\":\"z\",\"text\":\"omega\"}"), NULL);
    snprintf(path, sizeof path, "%s/all.tar.gz", dir);
    CHECK(sh("tar -czf %s -C %s a.jsonl b.txt c.jsonl n.jsonl.gz z.jsonl", path, sub) == 0);

    wn_buf log = {0}, msgs = {0};
    wn_input_spec spec = spec_default();
    CHECK(read_all(path, WN_FMT_ARCHIVE, &spec, &log, &msgs) == WN_OK);
    snprintf(want, sizeof want,
             "D a1|alpha\nD a2|beta\nD %s[b.txt]|plain text member\n\nD %s[c.jsonl]:1|gamma\n"
             "E malformed_json\nE unsupported_member\nD z|omega\n", path, path);
    CHECK_EQ_STR(log.p, want);
    snprintf(want, sizeof want, "%s[c.jsonl]:2: malformed JSON", path);
    CHECK(strstr(msgs.p, want) != NULL);
    CHECK(strstr(msgs.p, "n.jsonl.gz") != NULL);
    wn_buf_free(&log);
    wn_buf_free(&msgs);
    wn_rm_tree(dir, NULL);
}

/* What a file that is not an archive does: libarchive fails while choosing
 * the format at open; the reader reports that on its first read as the
 * input error "corrupt_archive" naming the file, so the error policy decides
 * (skip and count, or stop). A real archive cut short gives the members
 * before the cut and then "corrupt_archive". */
TEST(reader_bad_archives)
{
    char dir[64], path[512], msg[700];
    tmp_dir(dir);
    static const char garbage[] = "this is not a tar archive, just some words in a file\n";
    put_file(dir, "x.tar", S(garbage), path);
    wn_buf log = {0}, msgs = {0};
    wn_input_spec spec = spec_default();
    wn_err e = read_all(path, WN_FMT_ARCHIVE, &spec, &log, &msgs);
    CHECK(e == WN_OK);
    CHECK_EQ_STR(log.p, "E corrupt_archive\n");
    snprintf(msg, sizeof msg, "%s: byte offset 0 of the decompressed data: corrupt archive", path);
    CHECK(msgs.p && strstr(msgs.p, msg));

    char sub[128], big[512];
    snprintf(sub, sizeof sub, "%s/m", dir);
    wn_mkdir_p(sub, NULL);
    put_file(sub, "a.jsonl", S("{\"id\":\"a\",\"text\":\"first member\"}\n"), NULL);
    make_big_jsonl(sub, "b.jsonl", 2000, big);
    snprintf(path, sizeof path, "%s/cut.tar", dir);
    CHECK(sh("tar -cf %s.full -C %s a.jsonl b.jsonl && head -c 70000 %s.full > %s", path, sub, path, path) == 0);
    wn_buf_clear(&log);
    wn_buf_clear(&msgs);
    CHECK(read_all(path, WN_FMT_ARCHIVE, &spec, &log, &msgs) == WN_OK);
    CHECK(strncmp(log.p, "D a|first member\n", 17) == 0);
    const char *err = strstr(log.p, "E ");
    CHECK(err && !strcmp(err, "E corrupt_archive\n"));
    snprintf(msg, sizeof msg, "%s[b.jsonl]: byte offset ", path);
    if (!strstr(msgs.p, msg)) fprintf(stderr, "  msgs: %s", msgs.p);
    CHECK(strstr(msgs.p, msg) != NULL);
    wn_buf_free(&log);
    wn_buf_free(&msgs);
    wn_rm_tree(dir, NULL);
}

/* Appends one WARC record with CRLF header lines and the block. */
static void warc_record(wn_buf *b, const char *type, const char *id, const char *uri, const char *date,
                        const char *block)
{
    wn_buf_printf(b, "WARC/1.0\r\nWARC-Type: %s\r\n", type);
    if (uri) wn_buf_printf(b, "WARC-Target-URI: %s\r\n", uri);
    wn_buf_printf(b, "WARC-Date: %s\r\nWARC-Record-ID: %s\r\n", date, id);
    if (uri) wn_buf_puts(b, "WARC-Identified-Content-Language: eng\r\nContent-Type: text/plain\r\n");
    wn_buf_printf(b, "Content-Length: %zu\r\n\r\n%s\r\n\r\n", strlen(block), block);
}

TEST(reader_wet_records)
{
    char dir[64], path[512];
    tmp_dir(dir);
    wn_buf w = {0};
    warc_record(&w, "warcinfo", "<urn:uuid:00000000-0000-0000-0000-000000000000>", NULL,
                "2024-05-31T01:16:46Z", "isPartOf: TEST\r\noperator: nobody\r\n");
    warc_record(&w, "conversion", "<urn:uuid:11111111-1111-1111-1111-111111111111>",
                "https://example.com/a?q=\"1\"", "2024-05-18T01:58:10Z",
                "Title A\nBody of page A, caf\xc3\xa9.\n");
    warc_record(&w, "conversion", "<urn:uuid:22222222-2222-2222-2222-222222222222>",
                "https://example.org/b", "2024-05-18T02:00:00Z", "Page B\r\nsecond line");
    put_file(dir, "t.warc.wet", w.p, w.len, path);

    rd x;
    rd_open(&x, path, WN_FMT_WET);
    int got;
    CHECK(rd_next(&x, &got) == WN_OK && got == 1);
    CHECK_EQ_STR(x.d.id.p, "<urn:uuid:11111111-1111-1111-1111-111111111111>");
    CHECK_EQ_STR(x.d.text.p, "Title A\nBody of page A, caf\xc3\xa9.");
    CHECK_EQ_INT(x.d.record, 1); /* the warcinfo record was record 0 */
    CHECK(wn_json_check_object(x.d.raw.p, x.d.raw.len, NULL, NULL) == WN_OK);
    CHECK_EQ_STR(x.d.raw.p, "{\"id\":\"<urn:uuid:11111111-1111-1111-1111-111111111111>\",\"text\":\"\","
                            "\"url\":\"https://example.com/a?q=\\\"1\\\"\",\"date\":\"2024-05-18T01:58:10Z\","
                            "\"language\":\"eng\",\"content_type\":\"text/plain\"}");
    CHECK(rd_next(&x, &got) == WN_OK && got == 1);
    CHECK_EQ_STR(x.d.id.p, "<urn:uuid:22222222-2222-2222-2222-222222222222>");
    CHECK_EQ_STR(x.d.text.p, "Page B\r\nsecond line");
    CHECK(strstr(x.d.raw.p, "\"url\":\"https://example.org/b\"") != NULL);
    CHECK(strstr(x.d.raw.p, "\"date\":\"2024-05-18T02:00:00Z\"") != NULL);
    CHECK(rd_next(&x, &got) == WN_OK && got == 0);
    if (x.r) CHECK_EQ_INT(wn_reader_records(x.r), 3);
    rd_close(&x);
    wn_buf_free(&w);
    wn_rm_tree(dir, NULL);
}

/* A WET record that cannot be read to its end ends the file: one error,
 * then end of file, not one error per remaining line. */
TEST(reader_wet_damaged_record_ends_the_file)
{
    char dir[64], path[512];
    tmp_dir(dir);
    wn_buf w = {0};
    warc_record(&w, "conversion", "<urn:uuid:1>", "https://example.com/", "2024-01-01T00:00:00Z",
                "first page\n");
    size_t keep = w.len;
    warc_record(&w, "conversion", "<urn:uuid:2>", "https://example.com/2", "2024-01-01T00:00:00Z",
                "line one of a long body\nline two\nline three\nline four\n");
    put_file(dir, "cut.warc.wet", w.p, w.len - 30, path); /* cut inside the second body */
    wn_buf log = {0}, msgs = {0};
    wn_input_spec spec = spec_default();
    CHECK(read_all(path, WN_FMT_WET, &spec, &log, &msgs) == WN_OK);
    if (strcmp(log.p, "D <urn:uuid:1>|first page\nE truncated\n")) fprintf(stderr, "  log:\n%s", log.p);
    CHECK_EQ_STR(log.p, "D <urn:uuid:1>|first page\nE truncated\n");
    CHECK(strstr(msgs.p, "Content-Length") != NULL);

    /* No Content-Length: "bad_warc", and the reader cannot resynchronise. */
    w.len = keep;
    wn_buf_puts(&w, "WARC/1.0\r\nWARC-Type: conversion\r\n\r\nbody line 1\r\nbody line 2\r\n\r\n");
    warc_record(&w, "conversion", "<urn:uuid:3>", "https://example.com/3", "2024-01-01T00:00:00Z", "x");
    put_file(dir, "nolen.warc.wet", w.p, w.len, path);
    wn_buf_clear(&log);
    CHECK(read_all(path, WN_FMT_WET, &spec, &log, NULL) == WN_OK);
    if (strcmp(log.p, "D <urn:uuid:1>|first page\nE bad_warc\n")) fprintf(stderr, "  log:\n%s", log.p);
    CHECK_EQ_STR(log.p, "D <urn:uuid:1>|first page\nE bad_warc\n");
    wn_buf_free(&w);
    wn_buf_free(&log);
    wn_buf_free(&msgs);
    wn_rm_tree(dir, NULL);
}

TEST(reader_wet_common_crawl_fixture)
{
    const char *shared = wn_test_shared_dir();
    if (!shared) SKIP("../shared not found");
    char path[512];
    snprintf(path, sizeof path, "%s/corpora/web/whirlwind.warc.wet.gz", shared);
    struct stat sb;
    if (stat(path, &sb)) SKIP("whirlwind.warc.wet.gz not found");

    rd x;
    rd_open(&x, path, WN_FMT_WET);
    int got, docs = 0;
    wn_err e;
    while ((e = rd_next(&x, &got)) == WN_OK && got) {
        docs++;
        CHECK_EQ_STR(x.d.id.p, "<urn:uuid:ba729a40-ff84-4085-8d48-0a5b2ee0c42d>");
        CHECK(strstr(x.d.raw.p, "\"url\":\"https://an.wikipedia.org/wiki/Escopete\"") != NULL);
        CHECK(strstr(x.d.raw.p, "\"date\":\"2024-05-18T01:58:10Z\"") != NULL);
        CHECK(strstr(x.d.raw.p, "\"language\":\"spa\"") != NULL);
        CHECK(wn_json_check_object(x.d.raw.p, x.d.raw.len, NULL, NULL) == WN_OK);
        CHECK(strncmp(x.d.text.p, "Escopete", 8) == 0);
        CHECK(x.d.text.len > 4000 && x.d.text.len <= 4456);
    }
    CHECK(e == WN_OK);
    if (e) fprintf(stderr, "  %s\n", x.err.msg);
    CHECK_EQ_INT(docs, 1);
    if (x.r) CHECK_EQ_INT(wn_reader_records(x.r), 2);
    if (x.r) CHECK_EQ_INT(wn_reader_raw_bytes(x.r), sb.st_size);
    rd_close(&x);
}
