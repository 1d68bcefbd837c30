/*
 * safetensors.c - safetensors reading and writing, and the mapping between
 * a file's tensors and the GPT-2 model's parameters (safetensors.h).
 *
 * Reading never trusts the file: the header length is checked against the
 * size before the header is touched, every tensor's byte range against the
 * data section, its length against shape x dtype size, and the GPT mapping
 * checks every shape before anything is allocated, so what a file can make
 * us allocate is bounded by its own size.
 */
#include "safetensors.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "json.h"

static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "safetensors data is little-endian; so is this code");

static const struct {
    const char *name;
    int bytes;
} dtypes[] = {
    {"F32", 4}, {"F16", 2}, {"BF16", 2}, {"F64", 8}, {"I64", 8}, {"I32", 4}, {"I16", 2}, {"I8", 1},
    {"U64", 8}, {"U32", 4}, {"U16", 2}, {"U8", 1},  {"BOOL", 1}, {"F8_E4M3", 1}, {"F8_E5M2", 1},
};

static int is_float_dtype(const char *d)
{
    return !strcmp(d, "F32") || !strcmp(d, "F16") || !strcmp(d, "BF16") || !strcmp(d, "F64");
}

static uint64_t le64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--) v = v << 8 | p[i];
    return v;
}

static int entry_cmp(const void *a, const void *b)
{
    return strcmp(((const wn_st_entry *)a)->name, ((const wn_st_entry *)b)->name);
}

/* Formats a shape as "[a, b]" into s. */
static const char *shape_str(char *s, size_t n, int ndim, const int64_t *shape)
{
    size_t k = (size_t)snprintf(s, n, "[");
    for (int i = 0; i < ndim && k < n; i++) k += (size_t)snprintf(s + k, n - k, "%s%lld", i ? ", " : "", (long long)shape[i]);
    if (k < n) snprintf(s + k, n - k, "]");
    return s;
}

/* Parses one tensor member's value (an object) into t. */
static wn_err parse_entry(wn_st_file *f, wn_st_entry *t, wn_span v, wn_errbuf *err)
{
    if (v.p[0] != '{') return wn_fail(err, WN_ERR_INPUT, "%s: tensor '%s': expected an object in the header", f->path, t->name);
    wn_span dt = {0}, sh = {0}, off = {0};
    if (!wn_json_get(v.p, v.n, "dtype", &dt) || !wn_json_get(v.p, v.n, "shape", &sh) ||
        !wn_json_get(v.p, v.n, "data_offsets", &off))
        return wn_fail(err, WN_ERR_INPUT, "%s: tensor '%s': needs dtype, shape and data_offsets", f->path, t->name);

    wn_buf s = {0};
    wn_err e = dt.p[0] == '"' ? wn_json_decode_string(dt, &s) : WN_ERR_INPUT;
    if (!e && s.len >= sizeof t->dtype) e = WN_ERR_INPUT;
    if (!e) memcpy(t->dtype, s.p, s.len + 1);
    wn_buf_free(&s);
    if (e) return wn_fail(err, WN_ERR_INPUT, "%s: tensor '%s': dtype is not a known type name", f->path, t->name);
    for (size_t i = 0; i < WN_ARRAY_LEN(dtypes); i++)
        if (!strcmp(dtypes[i].name, t->dtype)) t->dtype_bytes = dtypes[i].bytes;
    if (!t->dtype_bytes) return wn_fail(err, WN_ERR_INPUT, "%s: tensor '%s': unknown dtype '%s'", f->path, t->name, t->dtype);

    if (sh.p[0] != '[') return wn_fail(err, WN_ERR_INPUT, "%s: tensor '%s': shape is not an array", f->path, t->name);
    wn_json_iter it;
    wn_span item;
    uint64_t elems = 1;
    int overflow = 0;
    wn_json_items_init(&it, sh.p, sh.n);
    while (wn_json_items_next(&it, &item)) {
        int64_t d;
        if (t->ndim == WN_ST_MAX_DIMS)
            return wn_fail(err, WN_ERR_INPUT, "%s: tensor '%s': more than %d dimensions", f->path, t->name, WN_ST_MAX_DIMS);
        if (!wn_json_to_i64(item, &d) || d < 0)
            return wn_fail(err, WN_ERR_INPUT, "%s: tensor '%s': shape holds '%.*s', not a size", f->path, t->name,
                           (int)(item.n > 20 ? 20 : item.n), item.p);
        t->shape[t->ndim++] = d;
        if (d && elems > UINT64_MAX / 16 / (uint64_t)d) overflow = 1;
        elems *= (uint64_t)d;
    }
    int64_t o[2];
    int no = 0;
    if (off.p[0] != '[') return wn_fail(err, WN_ERR_INPUT, "%s: tensor '%s': data_offsets is not an array", f->path, t->name);
    wn_json_items_init(&it, off.p, off.n);
    while (wn_json_items_next(&it, &item)) {
        if (no == 2 || !wn_json_to_i64(item, &o[no]) || o[no] < 0)
            return wn_fail(err, WN_ERR_INPUT, "%s: tensor '%s': data_offsets must be two byte offsets", f->path, t->name);
        no++;
    }
    if (no != 2) return wn_fail(err, WN_ERR_INPUT, "%s: tensor '%s': data_offsets must be two byte offsets", f->path, t->name);
    t->begin = (uint64_t)o[0];
    t->end = (uint64_t)o[1];
    if (t->begin > t->end || t->end > f->data_len)
        return wn_fail(err, WN_ERR_INPUT,
                       "%s: tensor '%s': data_offsets [%llu, %llu] outside the data section (%llu bytes): truncated file?",
                       f->path, t->name, (unsigned long long)t->begin, (unsigned long long)t->end,
                       (unsigned long long)f->data_len);
    char ss[160];
    if (overflow || elems * (uint64_t)t->dtype_bytes != t->end - t->begin)
        return wn_fail(err, WN_ERR_INPUT, "%s: tensor '%s': %llu data bytes, but shape %s of %s needs %s%llu", f->path,
                       t->name, (unsigned long long)(t->end - t->begin), shape_str(ss, sizeof ss, t->ndim, t->shape),
                       t->dtype, overflow ? "more than " : "",
                       overflow ? (unsigned long long)UINT64_MAX / 16 : (unsigned long long)(elems * (uint64_t)t->dtype_bytes));
    return WN_OK;
}

wn_err wn_st_parse(wn_st_file *f, const uint8_t *p, size_t n, const char *path, wn_errbuf *err)
{
    memset(f, 0, sizeof *f);
    snprintf(f->path, sizeof f->path, "%s", path);
    if (n < 8)
        return wn_fail(err, WN_ERR_INPUT, "%s: %zu bytes: too short for a safetensors file (8-byte header length first)",
                       path, n);
    uint64_t hn = le64(p);
    if (hn > n - 8)
        return wn_fail(err, WN_ERR_INPUT,
                       "%s: header length %llu is beyond the end of the file (%zu bytes): truncated, or not safetensors",
                       path, (unsigned long long)hn, n);
    if (hn > WN_ST_MAX_HEADER)
        return wn_fail(err, WN_ERR_INPUT, "%s: header length %llu is over the 100 MB limit", path, (unsigned long long)hn);
    const char *h = (const char *)p + 8;
    size_t bad_off = 0;
    const char *why = NULL;
    if (wn_json_check_object(h, (size_t)hn, &bad_off, &why))
        return wn_fail(err, WN_ERR_INPUT, "%s: header is not a JSON object: %s at header byte %zu", path,
                       why ? why : "invalid", bad_off);
    f->data = p + 8 + hn;
    f->data_len = n - 8 - hn;

    wn_json_iter it;
    wn_span k, v;
    size_t members = 0;
    wn_json_iter_init(&it, h, (size_t)hn);
    while (wn_json_iter_next(&it, &k, &v)) members++;
    if (members && !(f->t = wn_calloc(members, sizeof *f->t))) return wn_fail(err, WN_ERR_NOMEM, "out of memory");

    wn_buf name = {0};
    wn_err e = WN_OK;
    wn_json_iter_init(&it, h, (size_t)hn);
    while (!e && wn_json_iter_next(&it, &k, &v)) {
        wn_buf_clear(&name);
        if ((e = wn_json_decode_string(k, &name))) break;
        const char *nm = name.p ? name.p : "";
        if (!strcmp(nm, "__metadata__")) {
            wn_json_iter mi;
            wn_span mk, mv;
            if (v.p[0] != '{') { e = wn_fail(err, WN_ERR_INPUT, "%s: __metadata__ is not an object", path); break; }
            wn_json_iter_init(&mi, v.p, v.n);
            while (wn_json_iter_next(&mi, &mk, &mv))
                if (mv.p[0] != '"') {
                    e = wn_fail(err, WN_ERR_INPUT, "%s: __metadata__ value of %.*s is not a string", path,
                                (int)(mk.n > 64 ? 64 : mk.n), mk.p);
                    break;
                }
            if (!e) { wn_buf_clear(&f->meta); e = wn_buf_append(&f->meta, v.p, v.n); }
            continue;
        }
        if (name.len >= sizeof f->t[0].name || memchr(nm, 0, name.len)) {
            e = wn_fail(err, WN_ERR_INPUT, "%s: tensor name '%.40s...' is too long or holds a NUL byte", path, nm);
            break;
        }
        wn_st_entry *t = &f->t[f->n++];
        memcpy(t->name, nm, name.len + 1);
        e = parse_entry(f, t, v, err);
    }
    wn_buf_free(&name);
    if (e == WN_ERR_NOMEM) wn_fail(err, e, "out of memory");
    if (!e && f->n > 1) {
        qsort(f->t, (size_t)f->n, sizeof *f->t, entry_cmp);
        for (int i = 1; i < f->n && !e; i++)
            if (!strcmp(f->t[i].name, f->t[i - 1].name))
                e = wn_fail(err, WN_ERR_INPUT, "%s: tensor '%s' is listed twice", path, f->t[i].name);
    }
    if (e) {
        f->data = NULL;
        wn_st_close(f);
    }
    return e;
}

wn_err wn_st_open(wn_st_file *f, const char *path, wn_errbuf *err)
{
    memset(f, 0, sizeof *f);
    int fd = open(path, O_RDONLY);
    if (fd < 0) return wn_fail(err, WN_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    struct stat sb;
    if (fstat(fd, &sb)) {
        close(fd);
        return wn_fail(err, WN_ERR_IO, "%s: cannot stat: %s", path, strerror(errno));
    }
    size_t n = (size_t)sb.st_size;
    void *map = NULL;
    if (n) {
        map = mmap(NULL, n, PROT_READ, MAP_PRIVATE, fd, 0);
        if (map == MAP_FAILED) {
            close(fd);
            return wn_fail(err, WN_ERR_IO, "%s: cannot map: %s", path, strerror(errno));
        }
    }
    close(fd);
    wn_err e = wn_st_parse(f, map ? map : "", n, path, err);
    if (e) {
        if (map) munmap(map, n);
        return e;
    }
    f->map = map;
    f->map_len = n;
    return WN_OK;
}

void wn_st_close(wn_st_file *f)
{
    if (!f) return;
    wn_free(f->t);
    wn_buf_free(&f->meta);
    if (f->map) munmap(f->map, f->map_len);
    memset(f, 0, sizeof *f);
}

const wn_st_entry *wn_st_find(const wn_st_file *f, const char *name)
{
    if (!f->n || strlen(name) >= sizeof f->t[0].name) return NULL;
    wn_st_entry key;
    snprintf(key.name, sizeof key.name, "%s", name);
    return bsearch(&key, f->t, (size_t)f->n, sizeof *f->t, entry_cmp);
}

int wn_st_meta(const wn_st_file *f, const char *key, wn_buf *out)
{
    wn_span v;
    wn_buf_clear(out);
    if (!f->meta.len || !wn_json_get(f->meta.p, f->meta.len, key, &v) || v.p[0] != '"') return 0;
    return wn_json_decode_string(v, out) == WN_OK;
}

/* ---- GPT-2 mapping -------------------------------------------------------- */

/* The per-block parameters: name suffix, rank, dims in units of C. */
static const struct {
    const char *suffix;
    int ndim, d0, d1;
} block_params[] = {
    {"ln_1.weight", 1, 1, 0},        {"ln_1.bias", 1, 1, 0},        {"attn.c_attn.weight", 2, 1, 3},
    {"attn.c_attn.bias", 1, 3, 0},   {"attn.c_proj.weight", 2, 1, 1}, {"attn.c_proj.bias", 1, 1, 0},
    {"ln_2.weight", 1, 1, 0},        {"ln_2.bias", 1, 1, 0},        {"mlp.c_fc.weight", 2, 1, 4},
    {"mlp.c_fc.bias", 1, 4, 0},      {"mlp.c_proj.weight", 2, 4, 1}, {"mlp.c_proj.bias", 1, 1, 0},
};

static const char *strip_prefix(const char *name)
{
    return strncmp(name, "transformer.", 12) ? name : name + 12;
}

/* A parameter by its model name, with or without the "transformer." prefix. */
static const wn_st_entry *find_param(const wn_st_file *f, const char *name)
{
    const wn_st_entry *t = wn_st_find(f, name);
    if (t) return t;
    char full[160];
    snprintf(full, sizeof full, "transformer.%s", name);
    return wn_st_find(f, full);
}

/* "h.<n>.<rest>": returns n and points *rest after the dot, or -1. */
static long block_index(const char *name, const char **rest)
{
    if (strncmp(name, "h.", 2)) return -1;
    const char *p = name + 2;
    long n = 0;
    if (*p < '0' || *p > '9') return -1;
    while (*p >= '0' && *p <= '9') {
        n = n * 10 + (*p++ - '0');
        if (n > 1000000) return -1;
    }
    if (*p != '.') return -1;
    *rest = p + 1;
    return n;
}

static int int_member(wn_span obj, const char *key, int *out)
{
    wn_span v;
    int64_t x;
    if (!wn_json_get(obj.p, obj.n, key, &v) || !wn_json_to_i64(v, &x) || x < 1 || x > INT32_MAX) return 0;
    *out = (int)x;
    return 1;
}

wn_err wn_st_gpt_config(const wn_st_file *f, int heads_hint, wn_gpt_config *cfg, wn_errbuf *err)
{
    const char *path = f->path;
    memset(cfg, 0, sizeof *cfg);
    /* Classify every tensor: a parameter (note the highest block), an ignored
     * buffer, or something this model does not have. */
    long max_block = -1;
    for (int i = 0; i < f->n; i++) {
        const char *full = f->t[i].name, *nm = strip_prefix(full), *rest;
        if (nm != full && wn_st_find(f, nm))
            return wn_fail(err, WN_ERR_INPUT, "%s: both '%s' and '%s' are present", path, nm, full);
        long b = block_index(nm, &rest);
        if (b >= 0) {
            if (!strcmp(rest, "attn.bias") || !strcmp(rest, "attn.masked_bias")) continue;
            size_t k = 0;
            while (k < WN_ARRAY_LEN(block_params) && strcmp(rest, block_params[k].suffix)) k++;
            if (k < WN_ARRAY_LEN(block_params)) {
                if (b > max_block) max_block = b;
                continue;
            }
        } else if (!strcmp(nm, "wte.weight") || !strcmp(nm, "wpe.weight") || !strcmp(nm, "ln_f.weight") ||
                   !strcmp(nm, "ln_f.bias") || !strcmp(nm, "lm_head.weight")) {
            continue;
        }
        return wn_fail(err, WN_ERR_INPUT, "%s: unexpected tensor '%s': not a GPT-2 parameter", path, full);
    }

    const wn_st_entry *wte = find_param(f, "wte.weight"), *wpe = find_param(f, "wpe.weight");
    if (!wte) return wn_fail(err, WN_ERR_INPUT, "%s: no tensor 'wte.weight': not a GPT-2 checkpoint", path);
    if (!wpe) return wn_fail(err, WN_ERR_INPUT, "%s: no tensor 'wpe.weight': not a GPT-2 checkpoint", path);
    char s1[160], s2[160];
    if (wte->ndim != 2 || wpe->ndim != 2 || wte->shape[1] != wpe->shape[1])
        return wn_fail(err, WN_ERR_INPUT, "%s: wte.weight %s and wpe.weight %s are not (V, C) and (maxT, C)", path,
                       shape_str(s1, sizeof s1, wte->ndim, wte->shape), shape_str(s2, sizeof s2, wpe->ndim, wpe->shape));
    if (wte->shape[0] < 1 || wte->shape[0] > INT32_MAX || wpe->shape[0] < 1 || wpe->shape[0] > INT32_MAX ||
        wte->shape[1] < 1 || wte->shape[1] > INT32_MAX / 4)
        return wn_fail(err, WN_ERR_INPUT, "%s: wte.weight %s / wpe.weight %s: sizes out of range", path,
                       shape_str(s1, sizeof s1, wte->ndim, wte->shape), shape_str(s2, sizeof s2, wpe->ndim, wpe->shape));
    cfg->vocab = (int)wte->shape[0];
    cfg->context = (int)wpe->shape[0];
    cfg->dim = (int)wte->shape[1];
    cfg->layers = (int)(max_block + 1);

    wn_buf m = {0};
    const char *from = "the tensor shapes";
    if (wn_st_meta(f, "winnow_config", &m)) {
        wn_span obj = {m.p, m.len};
        wn_gpt_config c;
        if (wn_json_check_object(m.p, m.len, NULL, NULL) || !int_member(obj, "vocab", &c.vocab) ||
            !int_member(obj, "context", &c.context) || !int_member(obj, "layers", &c.layers) ||
            !int_member(obj, "heads", &c.heads) || !int_member(obj, "dim", &c.dim)) {
            wn_buf_free(&m);
            return wn_fail(err, WN_ERR_INPUT, "%s: metadata winnow_config is not {vocab, context, layers, heads, dim}",
                           path);
        }
        *cfg = c;
        from = "metadata winnow_config";
    } else if (wn_st_meta(f, "n_head", &m)) {
        char *end;
        long h = strtol(m.p, &end, 10);
        if (*end || h < 1 || h > INT32_MAX) {
            wn_fail(err, WN_ERR_INPUT, "%s: metadata n_head '%.40s' is not a number", path, m.p);
            wn_buf_free(&m);
            return WN_ERR_INPUT;
        }
        cfg->heads = (int)h;
    }
    wn_buf_free(&m);
    if (!cfg->heads) cfg->heads = heads_hint > 0 ? heads_hint : cfg->dim % 64 == 0 ? cfg->dim / 64 : 0;
    if (!cfg->heads)
        return wn_fail(err, WN_ERR_INPUT, "%s: the number of attention heads is not recorded (C = %d): give --heads",
                       path, cfg->dim);
    if (cfg->layers < 1) return wn_fail(err, WN_ERR_INPUT, "%s: no transformer blocks (h.0.*)", path);
    if (cfg->dim % cfg->heads)
        return wn_fail(err, WN_ERR_INPUT, "%s: %d heads do not divide the width C = %d", path, cfg->heads, cfg->dim);
    if (cfg->layers > max_block + 1)
        return wn_fail(err, WN_ERR_INPUT, "%s: %s says %d layers, but there are blocks h.0 .. h.%ld only", path, from,
                       cfg->layers, max_block);
    if (max_block >= cfg->layers)
        return wn_fail(err, WN_ERR_INPUT, "%s: unexpected tensors of block h.%ld: %s says %d layers", path, max_block,
                       from, cfg->layers);

    /* Every parameter present, with a float dtype and its exact shape. */
    int64_t C = cfg->dim;
    char name[128];
    for (long l = -1; l <= cfg->layers; l++) {
        size_t nk = l < 0 || l == cfg->layers ? 2 : WN_ARRAY_LEN(block_params);
        for (size_t k = 0; k < nk; k++) {
            int64_t want[2] = {0, 0};
            int ndim;
            if (l < 0) {
                snprintf(name, sizeof name, k ? "wpe.weight" : "wte.weight");
                want[0] = k ? cfg->context : cfg->vocab;
                want[1] = C;
                ndim = 2;
            } else if (l == cfg->layers) {
                snprintf(name, sizeof name, k ? "ln_f.bias" : "ln_f.weight");
                want[0] = C;
                ndim = 1;
            } else {
                snprintf(name, sizeof name, "h.%ld.%s", l, block_params[k].suffix);
                ndim = block_params[k].ndim;
                want[0] = block_params[k].d0 * C;
                want[1] = block_params[k].d1 * C;
            }
            const wn_st_entry *t = find_param(f, name);
            if (!t)
                return wn_fail(err, WN_ERR_INPUT, "%s: missing tensor '%s' (layers = %d from %s)", path, name,
                               cfg->layers, from);
            if (!is_float_dtype(t->dtype))
                return wn_fail(err, WN_ERR_INPUT, "%s: tensor '%s' has dtype %s; winnow reads F32 (or F16, BF16, F64)",
                               path, t->name, t->dtype);
            if (t->ndim != ndim || t->shape[0] != want[0] || (ndim == 2 && t->shape[1] != want[1]))
                return wn_fail(err, WN_ERR_INPUT,
                               "%s: tensor '%s' has shape %s, expected %s (V=%d maxT=%d L=%d heads=%d C=%d from %s)",
                               path, t->name, shape_str(s1, sizeof s1, t->ndim, t->shape),
                               shape_str(s2, sizeof s2, ndim, want), cfg->vocab, cfg->context, cfg->layers, cfg->heads,
                               cfg->dim, from);
        }
    }
    const wn_st_entry *head = find_param(f, "lm_head.weight");
    if (head && (head->ndim != 2 || head->shape[0] != cfg->vocab || head->shape[1] != C))
        return wn_fail(err, WN_ERR_INPUT, "%s: lm_head.weight has shape %s, unlike wte.weight: an untied LM head is not supported",
                       path, shape_str(s1, sizeof s1, head->ndim, head->shape));
    return WN_OK;
}

static uint16_t rd16(const uint8_t *p) { return (uint16_t)(p[0] | p[1] << 8); }

static float half_to_float(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000) << 16, exp = h >> 10 & 0x1f, man = h & 0x3ff, bits;
    if (exp == 0x1f) bits = sign | 0x7f800000u | man << 13; /* inf / nan */
    else if (exp) bits = sign | (exp + 112) << 23 | man << 13;
    else if (!man) bits = sign;
    else { /* subnormal: normalise */
        exp = 113;
        while (!(man & 0x400)) { man <<= 1; exp--; }
        bits = sign | exp << 23 | (man & 0x3ff) << 13;
    }
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

/* Copies a float tensor of the file into dst (n elements), converting. */
static void read_floats(const wn_st_file *f, const wn_st_entry *t, float *dst, size_t n)
{
    const uint8_t *p = f->data + t->begin;
    if (!strcmp(t->dtype, "F32")) {
        memcpy(dst, p, n * 4);
    } else if (!strcmp(t->dtype, "F16")) {
        for (size_t i = 0; i < n; i++) dst[i] = half_to_float(rd16(p + 2 * i));
    } else if (!strcmp(t->dtype, "BF16")) {
        for (size_t i = 0; i < n; i++) {
            uint32_t bits = (uint32_t)rd16(p + 2 * i) << 16;
            memcpy(&dst[i], &bits, 4);
        }
    } else {
        for (size_t i = 0; i < n; i++) {
            double d;
            memcpy(&d, p + 8 * i, 8);
            dst[i] = (float)d;
        }
    }
}

wn_err wn_st_gpt_load(wn_gpt **out, const wn_st_file *f, int heads_hint, wn_errbuf *err)
{
    *out = NULL;
    wn_gpt_config cfg;
    wn_err e = wn_st_gpt_config(f, heads_hint, &cfg, err);
    if (e) return e;
    wn_gpt *m;
    if ((e = wn_gpt_new(&m, &cfg, 0, err))) return e;
    wn_tensor *t;
    int n = wn_gpt_tensors(m, &t);
    for (int i = 0; i < n; i++) {
        const wn_st_entry *s = find_param(f, t[i].name);
        if (!s || (s->end - s->begin) / (uint64_t)s->dtype_bytes != t[i].size) {
            wn_gpt_free(m);
            return wn_fail(err, WN_ERR_INTERNAL, "%s: model tensor '%s' does not match the file", f->path, t[i].name);
        }
        read_floats(f, s, t[i].data, t[i].size);
    }
    *out = m;
    return WN_OK;
}

wn_err wn_st_gpt_load_file(wn_gpt **m, const char *path, int heads_hint, wn_errbuf *err)
{
    wn_st_file f;
    wn_err e = wn_st_open(&f, path, err);
    if (e) return e;
    e = wn_st_gpt_load(m, &f, heads_hint, err);
    wn_st_close(&f);
    return e;
}

/* ---- writing ---------------------------------------------------------------- */

static const wn_st_out *sort_base;
static int out_cmp(const void *a, const void *b)
{
    return strcmp(sort_base[*(const int *)a].name, sort_base[*(const int *)b].name);
}

static int dtype_bytes(const char *d)
{
    for (size_t i = 0; i < WN_ARRAY_LEN(dtypes); i++)
        if (!strcmp(dtypes[i].name, d)) return dtypes[i].bytes;
    return 0;
}

static uint64_t out_bytes(const wn_st_out *t)
{
    uint64_t n = (uint64_t)dtype_bytes(t->dtype);
    for (int d = 0; d < t->ndim; d++) n *= (uint64_t)t->shape[d];
    return n;
}

wn_err wn_st_write(const wn_st_out *t, int n, const char *const *meta, int n_meta, wn_st_sink sink, void *arg,
                   wn_errbuf *err)
{
    for (int i = 0; i < n; i++)
        if (!dtype_bytes(t[i].dtype) || t[i].ndim < 0 || t[i].ndim > WN_ST_MAX_DIMS)
            return wn_fail(err, WN_ERR_USAGE, "safetensors: tensor '%s': dtype '%s' or %d dimensions not writable",
                           t[i].name, t[i].dtype, t[i].ndim);
    int *ord = wn_malloc((size_t)(n ? n : 1) * sizeof *ord);
    if (!ord) return wn_fail(err, WN_ERR_NOMEM, "out of memory");
    for (int i = 0; i < n; i++) ord[i] = i;
    sort_base = t; /* qsort has no context argument in C11; the writer is not called concurrently */
    qsort(ord, (size_t)n, sizeof *ord, out_cmp);

    wn_buf h = {0};
    wn_jw w;
    wn_jw_init(&w, &h, 0);
    wn_jw_obj_begin(&w);
    if (n_meta > 0) {
        wn_jw_key(&w, "__metadata__");
        wn_jw_obj_begin(&w);
        for (int i = 0; i < n_meta; i++) { wn_jw_key(&w, meta[2 * i]); wn_jw_str(&w, meta[2 * i + 1]); }
        wn_jw_obj_end(&w);
    }
    uint64_t off = 0;
    for (int i = 0; i < n; i++) {
        const wn_st_out *x = &t[ord[i]];
        wn_jw_key(&w, x->name);
        wn_jw_obj_begin(&w);
        wn_jw_key(&w, "dtype"); wn_jw_str(&w, x->dtype);
        wn_jw_key(&w, "shape");
        wn_jw_arr_begin(&w);
        for (int d = 0; d < x->ndim; d++) wn_jw_i64(&w, x->shape[d]);
        wn_jw_arr_end(&w);
        wn_jw_key(&w, "data_offsets");
        wn_jw_arr_begin(&w);
        wn_jw_u64(&w, off);
        off += out_bytes(x);
        wn_jw_u64(&w, off);
        wn_jw_arr_end(&w);
        wn_jw_obj_end(&w);
    }
    wn_jw_obj_end(&w);
    wn_err e = WN_OK;
    while (!e && h.len % 8) e = wn_buf_putc(&h, ' ');
    if (!e && !h.p) e = WN_ERR_NOMEM;
    if (e) {
        e = wn_fail(err, WN_ERR_NOMEM, "out of memory");
        goto cleanup;
    }
    uint8_t len[8];
    for (int i = 0; i < 8; i++) len[i] = (uint8_t)(h.len >> (8 * i));
    if (sink(arg, len, 8) || sink(arg, h.p, h.len)) goto fail;
    for (int i = 0; i < n; i++)
        if (sink(arg, t[ord[i]].data, (size_t)out_bytes(&t[ord[i]]))) goto fail;
    goto cleanup;
fail:
    e = wn_fail(err, WN_ERR_IO, "safetensors: write failed: %s", strerror(errno));
cleanup:
    wn_free(ord);
    wn_buf_free(&h);
    return e;
}

wn_err wn_st_gpt_write(wn_gpt *m, const char *const *meta, int n_meta, wn_st_sink sink, void *arg, wn_errbuf *err)
{
    wn_tensor *t;
    int n = wn_gpt_tensors(m, &t);
    const wn_gpt_config *c = wn_gpt_cfg(m);
    wn_buf cj = {0};
    wn_jw w;
    wn_jw_init(&w, &cj, 0);
    wn_jw_obj_begin(&w);
    wn_jw_key(&w, "vocab"); wn_jw_i64(&w, c->vocab);
    wn_jw_key(&w, "context"); wn_jw_i64(&w, c->context);
    wn_jw_key(&w, "layers"); wn_jw_i64(&w, c->layers);
    wn_jw_key(&w, "heads"); wn_jw_i64(&w, c->heads);
    wn_jw_key(&w, "dim"); wn_jw_i64(&w, c->dim);
    wn_jw_obj_end(&w);
    wn_st_out *o = wn_calloc((size_t)n, sizeof *o);
    const char **mt = wn_malloc((size_t)(2 + n_meta) * 2 * sizeof *mt);
    wn_err e = WN_OK;
    if (!o || !mt || !cj.p) {
        e = wn_fail(err, WN_ERR_NOMEM, "out of memory");
        goto cleanup;
    }
    for (int i = 0; i < n; i++)
        o[i] = (wn_st_out){t[i].name, "F32", t[i].ndim, {t[i].shape[0], t[i].shape[1]}, t[i].data};
    mt[0] = "format";
    mt[1] = "pt";
    mt[2] = "winnow_config";
    mt[3] = cj.p;
    for (int i = 0; i < 2 * n_meta; i++) mt[4 + i] = meta[i];
    e = wn_st_write(o, n, mt, 2 + n_meta, sink, arg, err);
cleanup:
    wn_free(o);
    wn_free(mt);
    wn_buf_free(&cj);
    return e;
}

static int file_sink(void *arg, const void *p, size_t n) { return fwrite(p, 1, n, arg) != n; }

wn_err wn_st_gpt_save(wn_gpt *m, const char *path, const char *const *meta, int n_meta, wn_errbuf *err)
{
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "wb");
    if (!f) return wn_fail(err, WN_ERR_IO, "%s: cannot create: %s", tmp, strerror(errno));
    wn_err e = wn_st_gpt_write(m, meta, n_meta, file_sink, f, err);
    int bad = e || fflush(f) != 0 || fsync(fileno(f)) != 0;
    bad |= fclose(f) != 0;
    if (bad || rename(tmp, path)) {
        int en = errno;
        remove(tmp);
        return e == WN_ERR_NOMEM ? e : wn_fail(err, WN_ERR_IO, "%s: write failed: %s", path, strerror(en));
    }
    return WN_OK;
}
