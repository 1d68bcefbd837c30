/*
 * test_manifest.c - unit tests for manifest.c: defaults and overrides of a
 * loaded manifest, error messages (file:line and key for every kind of
 * mistake), size parsing, input glob expansion with format detection, and
 * the resolved copy (which must load again and resolve to itself).
 */
#include "../test.h"
#include "fs.h"
#include "manifest.h"

#include <stdlib.h>

/* A fresh directory under /tmp; removed by the test with wn_rm_tree. */
static void tmp_dir(char dir[64])
{
    snprintf(dir, 64, "/tmp/wn-manifest-XXXXXX");
    if (!mkdtemp(dir)) { perror("mkdtemp"); abort(); }
}

static void put_file(const char *dir, const char *name, const char *data)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    if (!f) { perror(path); abort(); }
    fwrite(data, 1, strlen(data), f);
    fclose(f);
}

/* Writes yaml to DIR/manifest.yaml and loads it. */
static wn_err load(const char *dir, const char *yaml, wn_manifest **m, wn_errbuf *err)
{
    char path[512];
    put_file(dir, "manifest.yaml", yaml);
    snprintf(path, sizeof path, "%s/manifest.yaml", dir);
    err->msg[0] = 0;
    return wn_manifest_load(m, path, err);
}

static const wn_value *param(const wn_stage_spec *s, const char *name)
{
    for (int i = 0; i < s->def->n_params; i++)
        if (!strcmp(s->def->params[i].name, name)) return &s->values[i];
    return NULL;
}

TEST(manifest_minimal_defaults)
{
    char dir[64];
    tmp_dir(dir);
    wn_manifest *m = NULL;
    wn_errbuf err;
    wn_err e = load(dir,
                    "name: demo\n"
                    "inputs:\n"
                    "  - path: data/*.jsonl\n"
                    "stages:\n"
                    "  - normalize: {}\n"
                    "  - length_filter: {min_words: 5}\n"
                    "  - exact_dedup:\n"
                    "  - sample: {rate: 0.25}\n",
                    &m, &err);
    if (e) fprintf(stderr, "  %s\n", err.msg);
    CHECK(e == WN_OK && m);
    if (!m) { wn_rm_tree(dir, NULL); return; }
    CHECK_EQ_STR(m->name, "demo");
    CHECK_EQ_STR(m->workdir, "runs/demo");
    CHECK_EQ_INT(m->on_error, WN_ON_ERROR_FAIL);
    CHECK_EQ_INT(m->threads, 0);
    CHECK_EQ_STR(m->device, "auto");
    CHECK_EQ_INT(m->memory, 4294967296LL);
    CHECK_EQ_INT(m->batch_bytes, 4194304);
    CHECK_EQ_INT(m->shard_bytes, 256000000);
    CHECK_EQ_INT(m->zstd_level, 3);
    CHECK_EQ_INT(m->n_files, 0); /* load does not touch the inputs */

    CHECK_EQ_INT(m->n_inputs, 1);
    const wn_input_spec *in = &m->inputs[0];
    CHECK_EQ_STR(in->path, "data/*.jsonl");
    CHECK_EQ_INT(in->format, WN_FMT_AUTO);
    CHECK_EQ_STR(in->text_key, "text");
    CHECK_EQ_STR(in->id_key, "id");
    CHECK_EQ_INT(in->on_error, WN_ON_ERROR_FAIL);
    CHECK_EQ_INT(in->text_unit_line, 0);
    CHECK_EQ_INT(in->utf8_pass, 0);
    CHECK_EQ_INT(in->line, 3);

    CHECK_EQ_INT(m->n_stages, 4);
    if (m->n_stages == 4) {
        CHECK_EQ_STR(m->stages[0].def->name, "normalize");
        CHECK_EQ_INT(m->stages[0].line, 5);
        CHECK_EQ_STR(param(&m->stages[0], "form")->s, "nfc");
        CHECK_EQ_INT(param(&m->stages[0], "strip_control")->b, 1);
        CHECK_EQ_STR(param(&m->stages[0], "newlines")->s, "keep");
        CHECK_EQ_STR(param(&m->stages[0], "invalid_utf8")->s, "repair");
        CHECK_EQ_STR(m->stages[1].def->name, "length_filter");
        CHECK_EQ_INT(param(&m->stages[1], "min_words")->i, 5);
        CHECK_EQ_INT(param(&m->stages[1], "max_words")->i, 0);
        CHECK_EQ_STR(m->stages[2].def->name, "exact_dedup");
        CHECK_EQ_INT(param(&m->stages[2], "collapse_whitespace")->b, 1);
        CHECK_EQ_INT(param(&m->stages[2], "lowercase")->b, 0);
        CHECK_EQ_STR(m->stages[3].def->name, "sample");
        CHECK(param(&m->stages[3], "rate")->f == 0.25);
        CHECK_EQ_INT(param(&m->stages[3], "seed")->i, 0);
        CHECK_EQ_INT(m->stages[3].line, 8);
    }
    wn_manifest_free(m);
    wn_rm_tree(dir, NULL);
}

TEST(manifest_overrides)
{
    char dir[64];
    tmp_dir(dir);
    wn_manifest *m = NULL;
    wn_errbuf err;
    wn_err e = load(dir,
                    "name: over\n"
                    "workdir: /tmp/elsewhere\n"
                    "on_error: skip\n"
                    "threads: 3\n"
                    "device: cpu\n"
                    "memory: 512MiB\n"
                    "inputs:\n"
                    "  - path: a.txt\n"
                    "    format: text\n"
                    "    text_unit: line\n"
                    "    utf8: pass\n"
                    "  - path: b.jsonl\n"
                    "    text_key: content\n"
                    "    on_error: fail\n"
                    "outputs:\n"
                    "  documents: {shard_bytes: 1MB, level: 9}\n",
                    &m, &err);
    if (e) fprintf(stderr, "  %s\n", err.msg);
    CHECK(e == WN_OK && m);
    if (!m) { wn_rm_tree(dir, NULL); return; }
    CHECK_EQ_STR(m->workdir, "/tmp/elsewhere");
    CHECK_EQ_INT(m->on_error, WN_ON_ERROR_SKIP);
    CHECK_EQ_INT(m->threads, 3);
    CHECK_EQ_STR(m->device, "cpu");
    CHECK_EQ_INT(m->memory, 512LL << 20);
    CHECK_EQ_INT(m->n_inputs, 2);
    CHECK_EQ_INT(m->inputs[0].format, WN_FMT_TEXT);
    CHECK_EQ_INT(m->inputs[0].text_unit_line, 1);
    CHECK_EQ_INT(m->inputs[0].utf8_pass, 1);
    CHECK_EQ_INT(m->inputs[0].on_error, WN_ON_ERROR_SKIP); /* inherited */
    CHECK_EQ_STR(m->inputs[1].text_key, "content");
    CHECK_EQ_INT(m->inputs[1].on_error, WN_ON_ERROR_FAIL);
    CHECK_EQ_INT(m->inputs[1].line, 12);
    CHECK_EQ_INT(m->n_stages, 0);
    CHECK_EQ_INT(m->shard_bytes, 1000000);
    CHECK_EQ_INT(m->zstd_level, 9);
    wn_manifest_free(m);
    wn_rm_tree(dir, NULL);
}

#define HEAD "name: demo\ninputs:\n  - path: x.jsonl\n" /* lines 1-3 */

/* Each bad manifest must fail with WN_ERR_MANIFEST, name manifest.yaml and
 * the line, and contain every listed fragment (the key, the bad value). */
static const struct {
    const char *yaml;
    int line;
    const char *want[3];
} bad_cases[] = {
    {HEAD "stages: []\ncolour: blue\n", 5, {"colour", "unknown key"}},
    {HEAD "stages:\n  - normalise: {}\n", 5, {"stages[0]", "unknown stage 'normalise'"}},
    {HEAD "stages:\n  - normalize:\n      form: nfc\n      colour: red\n", 7,
     {"stages[0].normalize", "unknown parameter 'colour'", "form"}},
    {HEAD "stages:\n  - length_filter:\n      min_words: abc\n", 6,
     {"stages[0].length_filter.min_words", "expected an integer", "'abc'"}},
    {HEAD "stages:\n  - normalize: {}\n  - sample: {rate: 1.5}\n", 6,
     {"stages[1].sample.rate", "out of range", "1.5"}},
    {HEAD "stages:\n  - sample: {}\n", 5, {"stages[0].sample.rate", "required"}},
    {HEAD "stages:\n  - length_filter: {min_chars: -1}\n", 5, {"min_chars", "out of range"}},
    {HEAD "stages:\n  - normalize: {form: nfx}\n", 5,
     {"stages[0].normalize.form", "nfc|nfkc|nfd|nfkd|none", "'nfx'"}},
    {HEAD "stages:\n  - exact_dedup: {lowercase: maybe}\n", 5, {"lowercase", "true or false"}},
    {HEAD "stages:\n  - normalize: {form: nfc, form: nfd}\n", 5, {"duplicate parameter 'form'"}},
    {HEAD "name: again\n", 4, {"duplicate key 'name'"}},
    {HEAD "stages:\n  - normalize: {}\n    length_filter: {}\n", 5, {"stages[0]", "one-key map"}},
    {HEAD "stages:\n  - normalize\n", 5, {"stages[0]", "one-key map"}},
    {HEAD "stages:\n  - normalize: nfc\n", 5, {"stages[0].normalize", "mapping of parameters"}},
    {"name: demo\ninputs: []\n", 2, {"inputs", "non-empty"}},
    {HEAD "  - format: jsonl\n", 4, {"inputs[1].path", "required"}},
    {HEAD "    format: parquet\n", 4, {"inputs[0].format", "'parquet'"}},
    {HEAD "    colour: red\n", 4, {"inputs[0]", "colour"}},
    {HEAD "memory: lots\n", 4, {"memory", "'lots'"}},
    {HEAD "threads: 0\n", 4, {"threads", "'0'"}},
    {HEAD "on_error: ignore\n", 4, {"on_error", "fail|skip"}},
    {"name: a/b\ninputs:\n  - path: x\n", 1, {"name", "'/'"}},
    {HEAD "outputs:\n  documents: {level: 30}\n", 5, {"outputs.documents.level", "out of range"}},
    {"inputs:\n  - path: x\n", 1, {"name", "required"}},
};

TEST(manifest_errors_name_line_and_key)
{
    char dir[64];
    tmp_dir(dir);
    for (size_t i = 0; i < WN_ARRAY_LEN(bad_cases); i++) {
        wn_manifest *m = (wn_manifest *)1;
        wn_errbuf err;
        wn_err e = load(dir, bad_cases[i].yaml, &m, &err);
        char at[64];
        snprintf(at, sizeof at, "manifest.yaml:%d: ", bad_cases[i].line);
        int ok = e == WN_ERR_MANIFEST && m == NULL && strstr(err.msg, at) && strstr(err.msg, dir);
        for (int k = 0; k < 3 && bad_cases[i].want[k]; k++) ok = ok && strstr(err.msg, bad_cases[i].want[k]);
        if (!ok || getenv("WN_VERBOSE")) fprintf(stderr, "  case %zu: e=%d msg: %s\n", i, (int)e, err.msg);
        CHECK(ok);
        if (e == WN_OK) wn_manifest_free(m);
    }
    wn_rm_tree(dir, NULL);
}

/* A manifest without `inputs` names the line of the top-level mapping. */
TEST(manifest_missing_inputs_names_a_line)
{
    char dir[64];
    tmp_dir(dir);
    wn_manifest *m = NULL;
    wn_errbuf err;
    wn_err e = load(dir, "name: demo\nstages: []\n", &m, &err);
    CHECK(e == WN_ERR_MANIFEST && m == NULL);
    CHECK(strstr(err.msg, "inputs") && strstr(err.msg, "required"));
    if (!strstr(err.msg, "manifest.yaml:1: ")) fprintf(stderr, "  msg: %s\n", err.msg);
    CHECK(strstr(err.msg, "manifest.yaml:1: ") != NULL);
    wn_rm_tree(dir, NULL);
}

TEST(manifest_yaml_syntax_and_io_errors)
{
    char dir[64];
    tmp_dir(dir);
    wn_manifest *m = NULL;
    wn_errbuf err;
    /* A flow sequence that is never closed: libyaml reports line 4. */
    wn_err e = load(dir, "name: demo\ninputs:\n  - path: x\nstages: [normalize,\nfoo: : bar\n", &m, &err);
    CHECK(e == WN_ERR_MANIFEST && m == NULL);
    CHECK(strstr(err.msg, "manifest.yaml:") && strstr(err.msg, "YAML error"));
    /* A bad indentation on line 4 is reported on line 4. */
    e = load(dir, "name: demo\ninputs:\n  - path: x\n bad: 1\n", &m, &err);
    if (!strstr(err.msg, "manifest.yaml:4:")) fprintf(stderr, "  msg: %s\n", err.msg);
    CHECK(e == WN_ERR_MANIFEST && strstr(err.msg, "manifest.yaml:4:") && strstr(err.msg, "YAML error"));

    e = load(dir, "", &m, &err);
    CHECK(e == WN_ERR_MANIFEST && strstr(err.msg, "empty"));
    e = load(dir, "just a string\n", &m, &err);
    CHECK(e == WN_ERR_MANIFEST && strstr(err.msg, "expected a mapping"));

    char path[128];
    snprintf(path, sizeof path, "%s/missing.yaml", dir);
    e = wn_manifest_load(&m, path, &err);
    CHECK(e == WN_ERR_IO && m == NULL && strstr(err.msg, "missing.yaml"));
    wn_rm_tree(dir, NULL);
}

TEST(parse_size)
{
    static const struct { const char *s; int64_t v; } ok[] = {
        {"4GiB", 4294967296LL}, {"256MB", 256000000}, {"64KiB", 65536}, {"1000", 1000},
        {"1.5k", 1500}, {"0", 0}, {"2 MiB", 2097152}, {"1TB", 1000000000000LL}, {"10B", 10},
        {"1.5GiB", 1610612736LL}, {"3M", 3000000},
    };
    for (size_t i = 0; i < WN_ARRAY_LEN(ok); i++) {
        int64_t v = -7;
        int rc = wn_parse_size(ok[i].s, &v);
        if (rc || v != ok[i].v) fprintf(stderr, "  '%s' -> rc %d, %lld\n", ok[i].s, rc, (long long)v);
        CHECK(rc == 0 && v == ok[i].v);
    }
    static const char *bad[] = {"4XB", "-1", "", "GiB", "4 GiB extra", "1e30", "nan", "inf", "4gib", "12abc"};
    for (size_t i = 0; i < WN_ARRAY_LEN(bad); i++) {
        int64_t v = -7;
        int rc = wn_parse_size(bad[i], &v);
        if (rc == 0) fprintf(stderr, "  '%s' accepted as %lld\n", bad[i], (long long)v);
        CHECK(rc != 0 && v == -7);
    }
}

/* Loads a manifest whose single input is `path` (optionally with a format). */
static wn_err load_input(const char *dir, const char *path, const char *format, wn_manifest **m,
                         wn_errbuf *err)
{
    char yaml[1024];
    snprintf(yaml, sizeof yaml, "name: g\ninputs:\n  - path: \"%s\"\n%s%s%s", path,
             format ? "    format: " : "", format ? format : "", format ? "\n" : "");
    return load(dir, yaml, m, err);
}

TEST(expand_inputs_glob_sorted_with_sizes)
{
    char dir[64], sub[128], glob[160];
    tmp_dir(dir);
    snprintf(sub, sizeof sub, "%s/data", dir);
    CHECK(wn_mkdir_p(sub, NULL) == WN_OK);
    put_file(sub, "c.jsonl", "{\"text\":\"c\"}\n");
    put_file(sub, "a.jsonl", "");
    put_file(sub, "b.jsonl", "{\"text\":\"bb\"}\n{\"text\":\"b\"}\n");
    put_file(sub, "b2.jsonl", "{\"text\":\"bb\"}\n{\"text\":\"b\"}\n");
    put_file(sub, "skip.txt", "not matched");
    char d2[160];
    snprintf(d2, sizeof d2, "%s/dir.jsonl", sub); /* a directory the glob matches: skipped */
    CHECK(wn_mkdir_p(d2, NULL) == WN_OK);
    snprintf(glob, sizeof glob, "%s/*.jsonl", sub);

    wn_manifest *m = NULL;
    wn_errbuf err;
    CHECK(load_input(dir, glob, NULL, &m, &err) == WN_OK);
    wn_err e = m ? wn_manifest_expand_inputs(m, &err) : WN_ERR_INTERNAL;
    if (e) fprintf(stderr, "  %s\n", err.msg);
    CHECK(e == WN_OK);
    if (m && !e) {
        CHECK_EQ_INT(m->n_files, 4);
        static const char *names[] = {"a.jsonl", "b.jsonl", "b2.jsonl", "c.jsonl"};
        static const uint64_t sizes[] = {0, 27, 27, 13};
        for (int i = 0; i < m->n_files && i < 4; i++) {
            char want[256];
            snprintf(want, sizeof want, "%s/%s", sub, names[i]);
            CHECK_EQ_STR(m->files[i].path, want);
            CHECK_EQ_INT(m->files[i].size, sizes[i]);
            CHECK_EQ_INT(m->files[i].format, WN_FMT_JSONL);
            CHECK_EQ_INT(m->files[i].spec, 0);
        }
        if (m->n_files == 4) {
            CHECK(m->files[0].hash == 0x2D06800538D394C2ULL); /* XXH3-64 of no bytes */
            CHECK(m->files[1].hash == m->files[2].hash);     /* same bytes, same hash */
            CHECK(m->files[1].hash != m->files[3].hash);
        }
    }
    wn_manifest_free(m);
    wn_rm_tree(dir, NULL);
}

TEST(expand_inputs_no_match_names_pattern)
{
    char dir[64], glob[160];
    tmp_dir(dir);
    snprintf(glob, sizeof glob, "%s/nothing-*.jsonl", dir);
    wn_manifest *m = NULL;
    wn_errbuf err;
    CHECK(load_input(dir, glob, NULL, &m, &err) == WN_OK);
    if (m) {
        CHECK(wn_manifest_expand_inputs(m, &err) == WN_ERR_MANIFEST);
        CHECK(strstr(err.msg, glob) != NULL);
        CHECK(strstr(err.msg, "manifest.yaml:3:") != NULL);
        CHECK(strstr(err.msg, "inputs[0].path") != NULL);
    }
    wn_manifest_free(m);
    wn_rm_tree(dir, NULL);
}

TEST(expand_inputs_format_detection)
{
    char dir[64], sub[128], glob[160];
    tmp_dir(dir);
    snprintf(sub, sizeof sub, "%s/in", dir);
    wn_mkdir_p(sub, NULL);
    static const struct { const char *name; wn_format f; } files[] = {
        {"a.jsonl.zst", WN_FMT_JSONL}, {"b.txt", WN_FMT_TEXT}, {"c.warc.wet.gz", WN_FMT_WET},
        {"d.tar.gz", WN_FMT_ARCHIVE}, {"e.ndjson.gz", WN_FMT_JSONL}, {"f.tgz", WN_FMT_ARCHIVE},
        {"g.json.xz", WN_FMT_JSONL}, {"h.md", WN_FMT_TEXT}, {"i.zip", WN_FMT_ARCHIVE},
        {"j.tar", WN_FMT_ARCHIVE}, {"k.warc", WN_FMT_WET}, {"l.jsonl.bz2", WN_FMT_JSONL},
    };
    for (size_t i = 0; i < WN_ARRAY_LEN(files); i++) put_file(sub, files[i].name, "x");
    snprintf(glob, sizeof glob, "%s/*", sub);
    wn_manifest *m = NULL;
    wn_errbuf err;
    CHECK(load_input(dir, glob, NULL, &m, &err) == WN_OK);
    wn_err e = m ? wn_manifest_expand_inputs(m, &err) : WN_ERR_INTERNAL;
    if (e) fprintf(stderr, "  %s\n", err.msg);
    CHECK(e == WN_OK);
    if (m && !e) {
        CHECK_EQ_INT(m->n_files, (int)WN_ARRAY_LEN(files));
        for (int i = 0; i < m->n_files && i < (int)WN_ARRAY_LEN(files); i++) {
            CHECK(strstr(m->files[i].path, files[i].name) != NULL);
            if (m->files[i].format != files[i].f) fprintf(stderr, "  %s: %d\n", files[i].name, m->files[i].format);
            CHECK_EQ_INT(m->files[i].format, files[i].f);
        }
    }
    wn_manifest_free(m);

    /* An unknown extension is an error asking for format:, unless given. */
    put_file(sub, "m.parquet", "x");
    snprintf(glob, sizeof glob, "%s/*.parquet", sub);
    CHECK(load_input(dir, glob, NULL, &m, &err) == WN_OK);
    if (m) {
        CHECK(wn_manifest_expand_inputs(m, &err) == WN_ERR_MANIFEST);
        CHECK(strstr(err.msg, "m.parquet") && strstr(err.msg, "format:"));
        CHECK(strstr(err.msg, "manifest.yaml:3:") != NULL);
    }
    wn_manifest_free(m);
    CHECK(load_input(dir, glob, "jsonl", &m, &err) == WN_OK);
    if (m) {
        CHECK(wn_manifest_expand_inputs(m, &err) == WN_OK);
        CHECK(m->n_files == 1 && m->files[0].format == WN_FMT_JSONL);
    }
    wn_manifest_free(m);
    wn_rm_tree(dir, NULL);
}

TEST(manifest_resolved_round_trip)
{
    char dir[64], yaml[1024];
    tmp_dir(dir);
    put_file(dir, "one.jsonl", "{\"text\":\"hello\"}\n");
    snprintf(yaml, sizeof yaml,
             "name: res\ninputs:\n  - path: \"%s/*.jsonl\"\n"
             "stages:\n  - normalize:\n  - sample: {rate: 0.5, seed: 7}\n", dir);
    wn_manifest *m = NULL;
    wn_errbuf err;
    CHECK(load(dir, yaml, &m, &err) == WN_OK);
    if (!m) { wn_rm_tree(dir, NULL); return; }
    CHECK(wn_manifest_expand_inputs(m, &err) == WN_OK);
    wn_buf r1 = {0};
    CHECK(wn_manifest_resolved(m, &r1) == WN_OK);
    char file[160];
    snprintf(file, sizeof file, "%s/one.jsonl", dir);
    static const char *want[] = {
        "name: \"res\"\n", "workdir: \"runs/res\"\n", "on_error: fail\n", "threads: auto\n",
        "device: auto\n", "memory: 4294967296\n", "batch_bytes: 4194304\n",
        "    format: auto\n", "    text_key: \"text\"\n", "    utf8: strict\n",
        "  - normalize: {form: \"nfc\", strip_control: true, newlines: \"keep\", invalid_utf8: \"repair\"}\n",
        "  - sample: {rate: 0.5, seed: 7}\n",
        "documents: {format: jsonl.zst, shard_bytes: 256000000, level: 3}\n",
        "resolved:\n", "format: jsonl, size: 17, xxh3_64: \"",
    };
    for (size_t i = 0; i < WN_ARRAY_LEN(want); i++) {
        if (!strstr(r1.p, want[i])) fprintf(stderr, "  missing: %s", want[i]);
        CHECK(strstr(r1.p, want[i]) != NULL);
    }
    CHECK(strstr(r1.p, file) != NULL);
    wn_manifest_free(m);

    /* The resolved copy is itself a manifest that resolves to the same text
     * (after the first line, which names the file it came from). */
    m = NULL;
    CHECK(load(dir, r1.p, &m, &err) == WN_OK);
    if (!m) fprintf(stderr, "  %s\n", err.msg);
    if (m) {
        CHECK(wn_manifest_expand_inputs(m, &err) == WN_OK);
        wn_buf r2 = {0};
        CHECK(wn_manifest_resolved(m, &r2) == WN_OK);
        const char *b1 = strchr(r1.p, '\n'), *b2 = strchr(r2.p, '\n');
        CHECK(b1 && b2);
        if (b1 && b2) CHECK_EQ_STR(b2, b1);
        wn_buf_free(&r2);
    }
    wn_manifest_free(m);
    wn_buf_free(&r1);
    wn_rm_tree(dir, NULL);
}

/* The resolved copy loads back to the same strings: characters YAML reads
 * as line breaks (NEL) or rejects raw (DEL, C1 controls) are written as
 * escapes. Found by fuzz_manifest. */
TEST(manifest_resolved_reloads_unicode_breaks)
{
    char dir[64];
    tmp_dir(dir);
    static const char *names[] = {"\"a\\Nb\"", "\"a\\Lb\"", "\"a\\x7fb\"", "\"a\\x9bb\""};
    static const char *want[] = {"a\xc2\x85" "b", "a\xe2\x80\xa8" "b", "a\x7f" "b", "a\xc2\x9b" "b"};
    for (size_t i = 0; i < WN_ARRAY_LEN(names); i++) {
        char yaml[256];
        snprintf(yaml, sizeof yaml, "name: %s\ninputs:\n  - path: x\n", names[i]);
        wn_manifest *m = NULL;
        wn_errbuf err;
        CHECK(load(dir, yaml, &m, &err) == WN_OK);
        if (!m) continue;
        CHECK_EQ_STR(m->name, want[i]);
        wn_buf r = {0};
        wn_manifest_resolved(m, &r);
        wn_manifest_free(m);
        m = NULL;
        wn_err e = load(dir, r.p, &m, &err);
        if (e) fprintf(stderr, "  case %zu: resolved copy does not load: %s\n", i, err.msg);
        CHECK(e == WN_OK);
        if (m) {
            if (strcmp(m->name, want[i])) fprintf(stderr, "  case %zu: name came back as '%s'\n", i, m->name);
            CHECK(strcmp(m->name, want[i]) == 0);
        }
        wn_manifest_free(m);
        wn_buf_free(&r);
    }
    wn_rm_tree(dir, NULL);
}

/* Dataset names must be plain strings (a `? [a]` key used to crash the
 * resolver), and unique. */
TEST(manifest_dataset_key_must_be_a_string)
{
    char dir[64];
    tmp_dir(dir);
    wn_manifest *m = NULL;
    wn_errbuf err;
    wn_err e = load(dir, HEAD "datasets:\n  ? [a]\n  : {path: x}\n", &m, &err);
    if (e == WN_OK) fprintf(stderr, "  loaded; datasets[0].name = %s\n", m->datasets[0].name ? m->datasets[0].name : "NULL");
    CHECK(e == WN_ERR_MANIFEST);
    CHECK(e == WN_OK || (strstr(err.msg, "manifest.yaml:5:") && strstr(err.msg, "datasets")));
    wn_manifest_free(m);
    wn_rm_tree(dir, NULL);
}
