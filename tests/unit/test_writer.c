/*
 * test_writer.c - unit tests for writer.c: how one record is rendered
 * (verbatim, re-encoded text in place, the "winnow" attribute object,
 * synthesised records) and a shard round trip checked with the zstd tool,
 * including that the number of compression workers does not change a byte.
 */
#include "../test.h"
#include "fs.h"
#include "json.h"
#include "writer.h"

#include <dirent.h>
#include <stdlib.h>

static void doc_set(wn_doc *d, const char *raw, const char *text, int raw_text, int dirty)
{
    memset(d, 0, sizeof *d);
    wn_buf_puts(&d->raw, raw);
    wn_buf_puts(&d->text, text);
    d->raw_text = raw_text;
    d->dirty = dirty;
}

static void doc_free(wn_doc *d)
{
    wn_buf_free(&d->id);
    wn_buf_free(&d->text);
    wn_buf_free(&d->raw);
    wn_buf_free(&d->attrs);
}

/* Renders d and returns the record (static storage, valid until the next
 * call); NULL when rendering fails or the record is not valid JSON. */
static const char *render(const wn_doc *d, const char *text_key)
{
    static wn_buf out;
    wn_buf_clear(&out);
    if (wn_record_render(d, text_key, &out) != WN_OK || !out.p) return NULL;
    if (wn_json_check_object(out.p, out.len, NULL, NULL) != WN_OK) {
        fprintf(stderr, "  invalid JSON rendered: %s\n", out.p);
        return NULL;
    }
    return out.p;
}

TEST(render_unmodified_is_verbatim)
{
    wn_doc d;
    static const char raw[] = "{ \"b\" : 1,\"text\":\"caf\\u00e9 \\/ x\" , \"id\":\"a\",\"z\":[1, 2] }";
    doc_set(&d, raw, "caf\xc3\xa9 / x", 1, 0);
    CHECK_EQ_STR(render(&d, "text"), raw);
    doc_free(&d);
}

TEST(render_dirty_reencodes_text_in_place)
{
    wn_doc d;
    doc_set(&d, "{\"b\":{\"x\": [1,2]},\"text\":\"old\",\"id\":\"a\",\"n\":1.50e3,\"s\":\"\\u00e9\"}",
            "new \"t\"\n\ttab caf\xc3\xa9", 1, 1);
    /* Key order kept; other values byte for byte; text re-encoded. */
    CHECK_EQ_STR(render(&d, "text"),
                 "{\"b\":{\"x\": [1,2]},\"text\":\"new \\\"t\\\"\\n\\ttab caf\xc3\xa9\",\"id\":\"a\","
                 "\"n\":1.50e3,\"s\":\"\\u00e9\"}");
    doc_free(&d);

    /* Another text key; a "text" member is then just another field. */
    doc_set(&d, "{\"text\":\"keep\",\"content\":\"old\"}", "changed", 1, 1);
    CHECK_EQ_STR(render(&d, "content"), "{\"text\":\"keep\",\"content\":\"changed\"}");
    doc_free(&d);

    /* A raw record without the text key gets it appended. */
    doc_set(&d, "{\"id\":\"a\"}", "t", 1, 1);
    CHECK_EQ_STR(render(&d, "content"), "{\"id\":\"a\",\"content\":\"t\"}");
    doc_free(&d);
}

TEST(render_attrs_winnow_object)
{
    wn_doc d;
    doc_set(&d, "{\"id\":\"a\",\"text\":\"t\"}", "t", 1, 0);
    CHECK(wn_doc_attr(&d, "lang", "\"en\"") == WN_OK);
    CHECK(wn_doc_attr(&d, "score", "0.5") == WN_OK);
    CHECK_EQ_STR(render(&d, "text"), "{\"id\":\"a\",\"text\":\"t\",\"winnow\":{\"lang\":\"en\",\"score\":0.5}}");
    doc_free(&d);

    /* An existing "winnow" object keeps its place and its members; a new
     * value for an existing key wins. */
    doc_set(&d, "{\"id\":\"a\",\"winnow\":{\"lang\":\"fr\",\"keep\":[true]},\"text\":\"t\"}", "t", 1, 0);
    wn_doc_attr(&d, "lang", "\"en\"");
    wn_doc_attr(&d, "dup", "1");
    CHECK_EQ_STR(render(&d, "text"),
                 "{\"id\":\"a\",\"winnow\":{\"keep\":[true],\"lang\":\"en\",\"dup\":1},\"text\":\"t\"}");
    doc_free(&d);

    /* A "winnow" member that is not an object is replaced. */
    doc_set(&d, "{\"winnow\":5,\"text\":\"t\"}", "t", 1, 1);
    wn_doc_attr(&d, "k", "null");
    CHECK_EQ_STR(render(&d, "text"), "{\"winnow\":{\"k\":null},\"text\":\"t\"}");
    doc_free(&d);

    /* No attributes: an existing "winnow" object passes through untouched. */
    doc_set(&d, "{\"winnow\":{ \"a\" : 1 },\"text\":\"t\"}", "u", 1, 1);
    CHECK_EQ_STR(render(&d, "text"), "{\"winnow\":{ \"a\" : 1 },\"text\":\"u\"}");
    doc_free(&d);
}

/* With attributes added but the text unchanged, the text value is copied
 * from raw byte-for-byte (escapes kept). */
TEST(render_attrs_keep_unchanged_text_bytes)
{
    wn_doc d;
    doc_set(&d, "{\"id\":\"a\",\"text\":\"caf\\u00e9 \\/\"}", "caf\xc3\xa9 /", 1, 0);
    wn_doc_attr(&d, "k", "1");
    CHECK_EQ_STR(render(&d, "text"), "{\"id\":\"a\",\"text\":\"caf\\u00e9 \\/\",\"winnow\":{\"k\":1}}");
    doc_free(&d);
}

TEST(render_synthesised_records)
{
    wn_doc d;
    /* Text and WET inputs: the reader's meta object with an empty text. */
    doc_set(&d, "{\"id\":\"x\",\"text\":\"\",\"source\":\"f\"}", "hello\n\"world\"", 0, 0);
    CHECK_EQ_STR(render(&d, "text"), "{\"id\":\"x\",\"text\":\"hello\\n\\\"world\\\"\",\"source\":\"f\"}");
    wn_doc_attr(&d, "n", "2");
    CHECK_EQ_STR(render(&d, "text"),
                 "{\"id\":\"x\",\"text\":\"hello\\n\\\"world\\\"\",\"source\":\"f\",\"winnow\":{\"n\":2}}");
    doc_free(&d);

    /* A document a stage created: no raw, so id and text only. */
    doc_set(&d, "", "made", 0, 1);
    wn_buf_puts(&d.id, "n\"1");
    CHECK_EQ_STR(render(&d, "text"), "{\"id\":\"n\\\"1\",\"text\":\"made\"}");
    doc_free(&d);
}

/* Decompresses one shard with the zstd tool into out. */
static int zstd_cat(const char *path, wn_buf *out)
{
    char cmd[700], buf[4096];
    snprintf(cmd, sizeof cmd, "zstd -dcq '%s'", path);
    FILE *p = popen(cmd, "r");
    if (!p) return -1;
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, p)) > 0) wn_buf_append(out, buf, n);
    return pclose(p);
}

/* Names in dir, sorted, joined by spaces. */
static void list_dir(const char *dir, wn_buf *out)
{
    struct dirent **names;
    int n = scandir(dir, &names, NULL, alphasort);
    for (int i = 0; i < n; i++) {
        if (names[i]->d_name[0] != '.') wn_buf_printf(out, "%s ", names[i]->d_name);
        free(names[i]);
    }
    if (n >= 0) free(names);
    if (!out->p) wn_buf_puts(out, "");
}

/* Puts ten documents, closing a shard whenever the writer is full (as the
 * run does at batch boundaries); want[s] gets the lines of shard s. Returns
 * the number of shards. */
static int put_docs(int *wn_failed_, wn_writer *w, wn_buf want[8], uint64_t *total)
{
    wn_errbuf err;
    int shard = 0;
    *total = 0;
    for (int i = 0; i < 10; i++) {
        wn_doc d;
        char raw[128], text[64];
        snprintf(text, sizeof text, "document %d caf\xc3\xa9", i);
        snprintf(raw, sizeof raw, "{\"id\":\"d%d\",\"text\":\"%s\",\"pad\":\"%0*d\"}", i, text, 10 + i, 0);
        doc_set(&d, raw, text, 1, i % 3 == 0);
        if (i == 4) wn_doc_attr(&d, "k", "true");
        CHECK(wn_writer_put(w, &d, "text", &err) == WN_OK);
        wn_buf line = {0};
        wn_record_render(&d, "text", &line);
        wn_buf_append(&want[shard], line.p, line.len);
        wn_buf_putc(&want[shard], '\n');
        *total += line.len + 1;
        wn_buf_free(&line);
        doc_free(&d);
        if (!wn_writer_pending(w)) { /* the record filled the shard: the writer closed it */
            CHECK(want[shard].len >= 100);
            shard++;
        } else {
            CHECK(want[shard].len < 100);
        }
    }
    CHECK(wn_writer_close_shard(w, &err) == WN_OK);
    return want[shard].len ? shard + 1 : shard;
}

TEST(writer_shards_round_trip)
{
    char dir[64] = "/tmp/wn-writer-XXXXXX", dir1[64] = "/tmp/wn-writer-XXXXXX";
    if (!mkdtemp(dir) || !mkdtemp(dir1)) { perror("mkdtemp"); return; }
    wn_writer *w = NULL;
    wn_errbuf err;
    CHECK(wn_writer_open(&w, dir, 100, 3, 3, 0, &err) == WN_OK);
    if (!w) return;
    CHECK(wn_writer_close_shard(w, &err) == WN_OK); /* nothing open: no shard */
    CHECK_EQ_INT(wn_writer_shards(w), 0);

    wn_buf want[8] = {{0}}, want1[8] = {{0}};
    uint64_t total = 0, total1 = 0;
    int shards = put_docs(wn_failed_, w, want, &total);
    CHECK(shards >= 3 && shards < 8);
    CHECK_EQ_INT(wn_writer_shards(w), shards);
    CHECK_EQ_INT(wn_writer_bytes(w), total);
    wn_writer_free(w);

    wn_buf names = {0}, expect = {0};
    for (int s = 0; s < shards; s++) wn_buf_printf(&expect, "part-%05d.jsonl.zst ", s);
    list_dir(dir, &names); /* no .tmp left behind */
    CHECK_EQ_STR(names.p, expect.p);
    for (int s = 0; s < shards; s++) {
        char path[128];
        wn_buf got = {0};
        snprintf(path, sizeof path, "%s/part-%05d.jsonl.zst", dir, s);
        CHECK(zstd_cat(path, &got) == 0);
        CHECK(got.p && want[s].p && got.len == want[s].len && !memcmp(got.p, want[s].p, got.len));
        wn_buf_free(&got);
    }

    /* One compression worker writes the same bytes as three. */
    CHECK(wn_writer_open(&w, dir1, 100, 3, 1, 0, &err) == WN_OK);
    if (w) {
        CHECK_EQ_INT(put_docs(wn_failed_, w, want1, &total1), shards);
        wn_writer_free(w);
        for (int s = 0; s < shards; s++) {
            char cmd[300];
            snprintf(cmd, sizeof cmd, "cmp -s %s/part-%05d.jsonl.zst %s/part-%05d.jsonl.zst", dir, s, dir1, s);
            CHECK(system(cmd) == 0);
        }
    }
    for (int s = 0; s < 8; s++) {
        wn_buf_free(&want[s]);
        wn_buf_free(&want1[s]);
    }

    /* Resuming numbers from first_shard; freeing with a shard open drops it. */
    wn_buf_clear(&names);
    CHECK(wn_writer_open(&w, dir, 1 << 20, 1, 1, 12, &err) == WN_OK);
    wn_doc d;
    doc_set(&d, "{\"text\":\"x\"}", "x", 1, 0);
    CHECK(wn_writer_put(w, &d, "text", &err) == WN_OK);
    CHECK(wn_writer_pending(w));
    CHECK(wn_writer_close_shard(w, &err) == WN_OK);
    CHECK(wn_writer_put(w, &d, "text", &err) == WN_OK);
    wn_writer_free(w);
    doc_free(&d);
    wn_buf_puts(&expect, "part-00012.jsonl.zst ");
    list_dir(dir, &names);
    CHECK_EQ_STR(names.p, expect.p);
    wn_buf_free(&names);
    wn_buf_free(&expect);
    wn_rm_tree(dir, NULL);
    wn_rm_tree(dir1, NULL);
}

TEST(writer_tail_is_the_open_shards_records_and_ends)
{
    char dir[64] = "/tmp/wn-writer-XXXXXX";
    if (!mkdtemp(dir)) { perror("mkdtemp"); return; }
    wn_writer *w = NULL;
    wn_errbuf err;
    CHECK(wn_writer_open(&w, dir, 40, 1, 1, 0, &err) == WN_OK);
    if (!w) return;
    const char *a = "{\"text\":\"aaaaaaaaaaaa\"}\n", *b = "{\"text\":\"bb\"}\n";
    CHECK(wn_writer_put_raw(w, a, strlen(a), &err) == WN_OK);
    CHECK_EQ_INT(wn_writer_tail(w)->len, 0); /* not kept before tail_begin */
    wn_writer_tail_begin(w);
    CHECK(wn_writer_put_raw(w, b, strlen(b), &err) == WN_OK);
    CHECK_EQ_INT(wn_writer_tail(w)->len, strlen(b));
    CHECK(wn_writer_put_raw(w, a, strlen(a), &err) == WN_OK); /* fills the shard: closes it */
    CHECK_EQ_INT(wn_writer_shards(w), 1);
    CHECK_EQ_INT(wn_writer_tail(w)->len, 0);
    CHECK(wn_writer_put_raw(w, b, strlen(b), &err) == WN_OK);
    CHECK_EQ_INT(wn_writer_tail(w)->len, strlen(b));
    /* after the last checkpoint: nothing kept, the copy freed */
    wn_writer_tail_end(w);
    CHECK(wn_writer_tail(w)->len == 0 && wn_writer_tail(w)->p == NULL);
    for (int i = 0; i < 2; i++) CHECK(wn_writer_put_raw(w, b, strlen(b), &err) == WN_OK); /* closes it */
    CHECK(wn_writer_tail(w)->len == 0 && wn_writer_tail(w)->p == NULL);
    CHECK(wn_writer_close_shard(w, &err) == WN_OK);
    CHECK_EQ_INT(wn_writer_shards(w), 2);
    wn_writer_free(w);
    wn_rm_tree(dir, NULL);
}

TEST(writer_open_bad_dir)
{
    wn_writer *w = NULL;
    wn_errbuf err;
    CHECK(wn_writer_open(&w, "/nonexistent-dir/wn", 100, 3, 1, 0, &err) == WN_OK);
    if (!w) return;
    wn_doc d;
    doc_set(&d, "{\"text\":\"x\"}", "x", 1, 0);
    CHECK(wn_writer_put(w, &d, "text", &err) == WN_ERR_IO);
    CHECK(strstr(err.msg, "/nonexistent-dir/wn/part-00000.jsonl.zst.tmp") != NULL);
    doc_free(&d);
    wn_writer_free(w);
}

TEST(writer_memory_estimate_grows_with_level_and_workers)
{
    /* measured RSS (wn_writer_mem_estimate's comment): level 3, 1 worker 36 MiB; level 1 about 10 */
    uint64_t l3 = wn_writer_mem_estimate(3, 1), mib = 1 << 20;
    CHECK(l3 >= 36 * mib && l3 <= 64 * mib);
    CHECK(wn_writer_mem_estimate(1, 1) >= 10 * mib && wn_writer_mem_estimate(1, 1) < l3);
    CHECK(wn_writer_mem_estimate(3, 2) > l3 && wn_writer_mem_estimate(19, 1) > wn_writer_mem_estimate(9, 1));
    CHECK(wn_writer_mem_estimate(3, 0) == l3); /* at least one worker */
}
