/*
 * test_safetensors.c - unit tests for safetensors.c: a model written and
 * read back bit for bit, the file's layout (8-byte aligned header, names
 * sorted, metadata), reading GPT-2 files from elsewhere (transformer.
 * prefix, attention buffers, tied lm_head, no winnow_config, BF16), and
 * the errors for truncated files, bad header lengths, wrong dtypes, shapes,
 * missing and unknown tensors.
 */
#include "../test.h"
#include "fs.h"
#include "json.h"
#include "safetensors.h"

#include <stdlib.h>
#include <unistd.h>

static const wn_gpt_config small = {50, 16, 2, 2, 8}; /* V, maxT, L, heads, C */

static int buf_sink(void *arg, const void *p, size_t n) { return wn_buf_append(arg, p, n) != WN_OK; }

static wn_gpt *new_model(const wn_gpt_config *c, uint64_t seed)
{
    wn_gpt *m = NULL;
    wn_errbuf err;
    if (wn_gpt_new(&m, c, seed, &err)) return NULL;
    return m;
}

/* 1 when every tensor of a and b has the same name, shape and bits. */
static int same_params(wn_gpt *a, wn_gpt *b)
{
    wn_tensor *ta, *tb;
    int n = wn_gpt_tensors(a, &ta);
    if (n != wn_gpt_tensors(b, &tb)) return 0;
    for (int i = 0; i < n; i++)
        if (strcmp(ta[i].name, tb[i].name) || ta[i].size != tb[i].size ||
            memcmp(ta[i].data, tb[i].data, ta[i].size * sizeof(float)))
            return 0;
    return 1;
}

/* A tensor for the hand-built files below: data is raw bytes. */
typedef struct {
    char name[128];
    const char *dtype;
    int ndim;
    int64_t shape[2];
    wn_buf data;
} tspec;

/* Builds a safetensors file from specs in the given order (meta: a raw JSON
 * object or NULL). */
static void build(wn_buf *out, const char *meta, tspec *t, int n)
{
    wn_buf h = {0};
    wn_buf_puts(&h, "{");
    if (meta) wn_buf_printf(&h, "\"__metadata__\":%s", meta);
    uint64_t off = 0;
    for (int i = 0; i < n; i++) {
        wn_buf_printf(&h, "%s\"%s\":{\"dtype\":\"%s\",\"shape\":[", (meta || i) ? "," : "", t[i].name, t[i].dtype);
        for (int d = 0; d < t[i].ndim; d++) wn_buf_printf(&h, "%s%lld", d ? "," : "", (long long)t[i].shape[d]);
        wn_buf_printf(&h, "],\"data_offsets\":[%llu,%llu]}", (unsigned long long)off,
                      (unsigned long long)(off + t[i].data.len));
        off += t[i].data.len;
    }
    wn_buf_puts(&h, "}");
    while (h.len % 8) wn_buf_putc(&h, ' ');
    uint8_t len[8];
    for (int i = 0; i < 8; i++) len[i] = (uint8_t)(h.len >> (8 * i));
    wn_buf_clear(out);
    wn_buf_append(out, len, 8);
    wn_buf_append(out, h.p, h.len);
    for (int i = 0; i < n; i++) wn_buf_append(out, t[i].data.p, t[i].data.len);
    wn_buf_free(&h);
}

/* The model's tensors as specs, each name prefixed. */
static int specs_of(wn_gpt *m, tspec *t, const char *prefix)
{
    wn_tensor *x;
    int n = wn_gpt_tensors(m, &x);
    for (int i = 0; i < n; i++) {
        memset(&t[i], 0, sizeof t[i]);
        snprintf(t[i].name, sizeof t[i].name, "%s%s", prefix, x[i].name);
        t[i].dtype = "F32";
        t[i].ndim = x[i].ndim;
        t[i].shape[0] = x[i].shape[0];
        t[i].shape[1] = x[i].shape[1];
        wn_buf_append(&t[i].data, x[i].data, x[i].size * 4);
    }
    return n;
}

static void specs_free(tspec *t, int n)
{
    for (int i = 0; i < n; i++) wn_buf_free(&t[i].data);
}

/* Parses and loads bytes; returns the error code, message in err. */
static wn_err load_bytes(const wn_buf *b, int heads_hint, wn_gpt **m, wn_errbuf *err)
{
    wn_st_file f;
    *m = NULL;
    err->msg[0] = 0;
    wn_err e = wn_st_parse(&f, (const uint8_t *)b->p, b->len, "mem.safetensors", err);
    if (e) return e;
    e = wn_st_gpt_load(m, &f, heads_hint, err);
    wn_st_close(&f);
    return e;
}

TEST(safetensors_round_trip_file)
{
    wn_gpt *m = new_model(&small, 7), *back = NULL;
    CHECK(m != NULL);
    if (!m) return;
    char dir[] = "/tmp/wn-st-XXXXXX";
    CHECK(mkdtemp(dir) != NULL);
    char path[256];
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    wn_errbuf err = {{0}};
    const char *meta[] = {"winnow_step", "12"};
    CHECK_EQ_INT(wn_st_gpt_save(m, path, meta, 1, &err), WN_OK);
    CHECK(!wn_exists(path) ? 0 : 1);
    char tmp[300];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    CHECK(!wn_exists(tmp));
    CHECK_EQ_INT(wn_st_gpt_load_file(&back, path, 0, &err), WN_OK);
    CHECK(back && same_params(m, back));
    if (back) {
        const wn_gpt_config *c = wn_gpt_cfg(back);
        CHECK(c->vocab == 50 && c->context == 16 && c->layers == 2 && c->heads == 2 && c->dim == 8);
    }

    /* Layout: aligned header, metadata, names sorted with data in order. */
    wn_st_file f;
    CHECK_EQ_INT(wn_st_open(&f, path, &err), WN_OK);
    wn_buf v = {0};
    CHECK(wn_st_meta(&f, "format", &v) && !strcmp(v.p, "pt"));
    CHECK(wn_st_meta(&f, "winnow_step", &v) && !strcmp(v.p, "12"));
    CHECK(wn_st_meta(&f, "winnow_config", &v) && strstr(v.p, "\"heads\":2"));
    CHECK(!wn_st_meta(&f, "nothing", &v));
    CHECK_EQ_INT(f.n, 2 + 12 * 2 + 2);
    CHECK((size_t)((const uint8_t *)f.data - (const uint8_t *)f.map) % 8 == 0);
    CHECK(wn_st_find(&f, "h.1.mlp.c_proj.weight") != NULL);
    CHECK(wn_st_find(&f, "transformer.wte.weight") == NULL);
    wn_buf raw = {0};
    CHECK_EQ_INT(wn_read_file(path, &raw, &err), WN_OK);
    const char *hdr = raw.p + 8;
    const char *a = strstr(hdr, "\"h.0.attn.c_attn.bias\""), *b = strstr(hdr, "\"h.1.ln_1.bias\""),
               *c = strstr(hdr, "\"wte.weight\"");
    CHECK(a && b && c && a < b && b < c);
    CHECK(strstr(hdr, "\"dtype\":\"F32\",\"shape\":[8,24]") != NULL); /* c_attn (C, 3C) */
    uint64_t prev_end = 0;
    for (int i = 0; i < f.n; i++) { /* sorted by name, data contiguous in the same order */
        if (i) CHECK(strcmp(f.t[i - 1].name, f.t[i].name) < 0);
        CHECK(f.t[i].begin == prev_end);
        prev_end = f.t[i].end;
    }
    CHECK(prev_end == f.data_len);
    wn_st_close(&f);
    wn_buf_free(&raw);
    wn_buf_free(&v);

    /* Writing is deterministic. */
    wn_buf x = {0}, y = {0};
    CHECK_EQ_INT(wn_st_gpt_write(m, meta, 1, buf_sink, &x, &err), WN_OK);
    CHECK_EQ_INT(wn_st_gpt_write(back, meta, 1, buf_sink, &y, &err), WN_OK);
    CHECK(x.len == y.len && !memcmp(x.p, y.p, x.len));
    wn_buf_free(&x);
    wn_buf_free(&y);
    wn_gpt_free(back);
    wn_gpt_free(m);
    remove(path);
    rmdir(dir);
}

TEST(safetensors_reads_gpt2_from_elsewhere)
{
    /* HF's own layout: "transformer." names, the causal-mask buffers, an
     * lm_head tied to wte, no winnow_config: config from the shapes. */
    wn_gpt_config c = {50, 16, 2, 2, 128}; /* C = 128: heads default to C / 64 = 2 */
    wn_gpt *m = new_model(&c, 3), *back = NULL;
    tspec t[40];
    int n = specs_of(m, t, "transformer.");
    for (int l = 0; l < 2; l++) {
        memset(&t[n], 0, sizeof t[n]);
        snprintf(t[n].name, sizeof t[n].name, "transformer.h.%d.attn.bias", l);
        t[n].dtype = "F32";
        t[n].ndim = 2;
        t[n].shape[0] = t[n].shape[1] = 4;
        float ones[16] = {1};
        wn_buf_append(&t[n++].data, ones, sizeof ones);
        memset(&t[n], 0, sizeof t[n]);
        snprintf(t[n].name, sizeof t[n].name, "h.%d.attn.masked_bias", l);
        t[n].dtype = "F32";
        t[n].ndim = 0;
        float mb = -1e4f;
        wn_buf_append(&t[n++].data, &mb, 4);
    }
    memset(&t[n], 0, sizeof t[n]);
    snprintf(t[n].name, sizeof t[n].name, "lm_head.weight");
    t[n].dtype = "F32";
    t[n].ndim = 2;
    t[n].shape[0] = 50;
    t[n].shape[1] = 128;
    wn_buf_append(&t[n++].data, t[0].data.p, t[0].data.len);
    wn_buf file = {0};
    wn_errbuf err;
    build(&file, "{\"format\":\"pt\"}", t, n);
    CHECK_EQ_INT(load_bytes(&file, 0, &back, &err), WN_OK);
    if (back) {
        CHECK(same_params(m, back));
        const wn_gpt_config *bc = wn_gpt_cfg(back);
        CHECK(bc->vocab == 50 && bc->context == 16 && bc->layers == 2 && bc->heads == 2 && bc->dim == 128);
        wn_gpt_free(back);
    }
    /* The heads hint wins over C / 64 when the file does not say. */
    CHECK_EQ_INT(load_bytes(&file, 4, &back, &err), WN_OK);
    if (back) CHECK_EQ_INT(wn_gpt_cfg(back)->heads, 4);
    wn_gpt_free(back);
    /* metadata n_head wins over the hint */
    build(&file, "{\"format\":\"pt\",\"n_head\":\"8\"}", t, n);
    CHECK_EQ_INT(load_bytes(&file, 4, &back, &err), WN_OK);
    if (back) CHECK_EQ_INT(wn_gpt_cfg(back)->heads, 8);
    wn_gpt_free(back);

    /* BF16: the top half of each float. */
    for (int i = 0; i < n; i++) {
        if (strcmp(t[i].name, "transformer.wte.weight")) continue;
        wn_buf h = {0};
        for (size_t k = 0; k < t[i].data.len; k += 4) wn_buf_append(&h, t[i].data.p + k + 2, 2);
        wn_buf_free(&t[i].data);
        t[i].data = h;
        t[i].dtype = "BF16";
    }
    build(&file, NULL, t, n);
    CHECK_EQ_INT(load_bytes(&file, 0, &back, &err), WN_OK);
    if (back) {
        wn_tensor *a, *b;
        wn_gpt_tensors(m, &a);
        wn_gpt_tensors(back, &b);
        uint32_t ua, ub;
        memcpy(&ua, &a[0].data[5], 4);
        memcpy(&ub, &b[0].data[5], 4);
        CHECK_EQ_INT(ub, ua & 0xffff0000u);
        wn_gpt_free(back);
    }

    /* Without metadata and with C not a multiple of 64, --heads is needed. */
    wn_gpt *m2 = new_model(&small, 1);
    tspec t2[40];
    int n2 = specs_of(m2, t2, "");
    build(&file, NULL, t2, n2);
    CHECK_EQ_INT(load_bytes(&file, 0, &back, &err), WN_ERR_INPUT);
    CHECK(strstr(err.msg, "give --heads") != NULL);
    CHECK_EQ_INT(load_bytes(&file, 2, &back, &err), WN_OK);
    CHECK(back && same_params(m2, back));
    wn_gpt_free(back);
    specs_free(t2, n2);
    wn_gpt_free(m2);
    specs_free(t, n);
    wn_buf_free(&file);
    wn_gpt_free(m);
}

/* Loads a variant of the small model's file that edit() changed; returns
 * the error and leaves the message in err. */
static wn_err variant(void (*edit)(tspec *t, int *n), int heads_hint, wn_errbuf *err)
{
    wn_gpt *m = new_model(&small, 5), *back = NULL;
    tspec t[40];
    int n = specs_of(m, t, "");
    edit(t, &n);
    wn_buf file = {0};
    build(&file, "{\"format\":\"pt\"}", t, n);
    wn_err e = load_bytes(&file, heads_hint, &back, err);
    wn_gpt_free(back);
    wn_buf_free(&file);
    specs_free(t, n);
    wn_gpt_free(m);
    return e;
}

static void wrong_dtype(tspec *t, int *n) { (void)n; t[3].dtype = "I32"; } /* h.0.ln_1.bias */
static void wrong_shape(tspec *t, int *n) { (void)n; t[4].shape[0] = 24; t[4].shape[1] = 8; } /* (3C, C) not (C, 3C) */
static void missing(tspec *t, int *n) { wn_buf_free(&t[*n - 1].data); (*n)--; }
static void unknown(tspec *t, int *n)
{
    memset(&t[*n], 0, sizeof t[*n]);
    snprintf(t[*n].name, sizeof t[*n].name, "h.0.attn.rotary");
    t[*n].dtype = "F32";
    t[*n].ndim = 1;
    t[*n].shape[0] = 1;
    float z = 0;
    wn_buf_append(&t[*n].data, &z, 4);
    (*n)++;
}
static void untied(tspec *t, int *n)
{
    memset(&t[*n], 0, sizeof t[*n]);
    snprintf(t[*n].name, sizeof t[*n].name, "lm_head.weight");
    t[*n].dtype = "F32";
    t[*n].ndim = 2;
    t[*n].shape[0] = 49;
    t[*n].shape[1] = 8;
    wn_buf_append(&t[*n].data, t[0].data.p, 49 * 8 * 4);
    (*n)++;
}

TEST(safetensors_gpt_errors)
{
    wn_errbuf err;
    CHECK_EQ_INT(variant(wrong_dtype, 2, &err), WN_ERR_INPUT);
    CHECK(strstr(err.msg, "mem.safetensors") && strstr(err.msg, "'h.0.ln_1.bias'") && strstr(err.msg, "I32"));
    CHECK_EQ_INT(variant(wrong_shape, 2, &err), WN_ERR_INPUT);
    CHECK(strstr(err.msg, "'h.0.attn.c_attn.weight' has shape [24, 8], expected [8, 24]") != NULL);
    CHECK_EQ_INT(variant(missing, 2, &err), WN_ERR_INPUT);
    CHECK(strstr(err.msg, "missing tensor 'ln_f.bias'") != NULL);
    CHECK_EQ_INT(variant(unknown, 2, &err), WN_ERR_INPUT);
    CHECK(strstr(err.msg, "unexpected tensor 'h.0.attn.rotary'") != NULL);
    CHECK_EQ_INT(variant(untied, 2, &err), WN_ERR_INPUT);
    CHECK(strstr(err.msg, "untied LM head") != NULL);
}

TEST(safetensors_file_errors)
{
    wn_gpt *m = new_model(&small, 9);
    wn_buf good = {0}, b = {0};
    wn_errbuf err;
    CHECK_EQ_INT(wn_st_gpt_write(m, NULL, 0, buf_sink, &good, &err), WN_OK);
    wn_gpt *back = NULL;
    CHECK_EQ_INT(load_bytes(&good, 0, &back, &err), WN_OK);
    wn_gpt_free(back);

    /* truncated data: the last tensor (wte.weight sorts last) runs past the end */
    wn_buf_append(&b, good.p, good.len - 4);
    CHECK_EQ_INT(load_bytes(&b, 0, &back, &err), WN_ERR_INPUT);
    CHECK(strstr(err.msg, "mem.safetensors: tensor 'wte.weight'") && strstr(err.msg, "truncated"));
    /* truncated inside the header */
    wn_buf_clear(&b);
    wn_buf_append(&b, good.p, 100);
    CHECK_EQ_INT(load_bytes(&b, 0, &back, &err), WN_ERR_INPUT);
    CHECK(strstr(err.msg, "beyond the end of the file (100 bytes)") != NULL);
    /* shorter than the length field */
    wn_buf_clear(&b);
    wn_buf_append(&b, good.p, 5);
    CHECK_EQ_INT(load_bytes(&b, 0, &back, &err), WN_ERR_INPUT);
    CHECK(strstr(err.msg, "too short") != NULL);
    /* a huge header length */
    wn_buf_clear(&b);
    wn_buf_append(&b, good.p, good.len);
    b.p[7] = 0x7f;
    CHECK_EQ_INT(load_bytes(&b, 0, &back, &err), WN_ERR_INPUT);
    CHECK(strstr(err.msg, "header length") != NULL);
    /* broken JSON */
    wn_buf_clear(&b);
    wn_buf_append(&b, good.p, good.len);
    b.p[8] = '[';
    CHECK_EQ_INT(load_bytes(&b, 0, &back, &err), WN_ERR_INPUT);
    CHECK(strstr(err.msg, "header is not a JSON object") != NULL);
    /* offsets that disagree with the shape */
    wn_buf_clear(&b);
    wn_buf_append(&b, good.p, good.len);
    char *p = strstr(b.p + 8, "\"shape\":[8]");
    CHECK(p != NULL);
    if (p) p[9] = '9';
    CHECK_EQ_INT(load_bytes(&b, 0, &back, &err), WN_ERR_INPUT);
    CHECK(strstr(err.msg, "32 data bytes, but shape [9] of F32 needs 36") != NULL);
    /* unknown dtype */
    wn_buf_clear(&b);
    wn_buf_append(&b, good.p, good.len);
    p = strstr(b.p + 8, "\"F32\"");
    if (p) memcpy(p, "\"Q32\"", 5);
    CHECK_EQ_INT(load_bytes(&b, 0, &back, &err), WN_ERR_INPUT);
    CHECK(strstr(err.msg, "unknown dtype 'Q32'") != NULL);
    /* a file that is not there */
    CHECK_EQ_INT(wn_st_gpt_load_file(&back, "/nonexistent/x.safetensors", 0, &err), WN_ERR_IO);
    CHECK(strstr(err.msg, "/nonexistent/x.safetensors") != NULL);
    wn_buf_free(&good);
    wn_buf_free(&b);
    wn_gpt_free(m);
}
