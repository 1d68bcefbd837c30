/*
 * dsir.c - DSIR hashed n-gram features, counts, model and log weights
 * (dsir.h has the semantics and the counts file layout).
 *
 * The featurizer makes one pass over the text: ASCII runs go through a byte
 * table, other code points through utf8proc (lowercase, then category). The
 * lowercased tokens are written one after another into the scratch buffer as
 * "prev cur", so the bigram is the contiguous bytes from the start of prev to
 * the end of cur and no string is ever built per feature; the buffer is
 * compacted (the previous token moved to the front) only when it fills, and
 * grows only when the two tokens alone do not fit. Unigram and bigram are
 * hashed with XXH3 built from its header (XXH_INLINE_ALL). The counts and
 * the weight paths share this loop through one always-inline function
 * specialised by its sink.
 */
#include "dsir.h"

#include "fs.h"
#include "text.h"

#include <assert.h>
#include <math.h>
#include <string.h>
#include <utf8proc.h>

#define XXH_INLINE_ALL
#include <xxhash.h>

static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "the counts file is little-endian; so is this code");

enum { K_NONE = 0, K_WORD, K_PUNCT, K_SPACE };

/* CPython's str \s and \w restricted to ASCII; everything else is K_PUNCT. */
static const uint8_t ascii_kind[128] = {
    [0x00 ... 0x08] = K_PUNCT, [0x09 ... 0x0d] = K_SPACE, /* \t \n \v \f \r */
    [0x0e ... 0x1b] = K_PUNCT, [0x1c ... 0x20] = K_SPACE, /* U+001C..U+001F and ' ' */
    [0x21 ... 0x2f] = K_PUNCT, ['0' ... '9'] = K_WORD,   [0x3a ... 0x40] = K_PUNCT,
    ['A' ... 'Z'] = K_WORD,    [0x5b ... 0x5e] = K_PUNCT, ['_'] = K_WORD,
    ['`'] = K_PUNCT,           ['a' ... 'z'] = K_WORD,    [0x7b ... 0x7f] = K_PUNCT,
};

static inline char ascii_lower(unsigned char c) { return (char)((unsigned)(c - 'A') < 26u ? c + 32 : c); }

/* The kind of a (lowercased) code point >= 0x80. */
static int kind_u(int32_t c)
{
    utf8proc_category_t k = utf8proc_category(c);
    if ((k >= UTF8PROC_CATEGORY_LU && k <= UTF8PROC_CATEGORY_LO) ||
        (k >= UTF8PROC_CATEGORY_ND && k <= UTF8PROC_CATEGORY_NO))
        return K_WORD;
    return wn_is_space(c) ? K_SPACE : K_PUNCT;
}

static size_t put_utf8(char *u, int32_t c)
{
    if (c < 0x800) {
        u[0] = (char)(0xC0 | (c >> 6));
        u[1] = (char)(0x80 | (c & 0x3F));
        return 2;
    }
    if (c < 0x10000) {
        u[0] = (char)(0xE0 | (c >> 12));
        u[1] = (char)(0x80 | ((c >> 6) & 0x3F));
        u[2] = (char)(0x80 | (c & 0x3F));
        return 3;
    }
    u[0] = (char)(0xF0 | (c >> 18));
    u[1] = (char)(0x80 | ((c >> 12) & 0x3F));
    u[2] = (char)(0x80 | ((c >> 6) & 0x3F));
    u[3] = (char)(0x80 | (c & 0x3F));
    return 4;
}

/* ---- the featurizer --------------------------------------------------------- */

/* buf[prev..cur-1) is the previous token (when has_prev), buf[cur-1] the
 * space between them, buf[cur..len) the current token (when kind != K_NONE).
 * Bytes before the previous token are dead. */
typedef struct {
    char *buf;
    size_t cap, len, cur, prev;
    int has_prev, kind;
} tok_state;

/* Makes room for `need` more bytes at len: moves the live bytes to the front,
 * and grows the buffer when that is not enough. */
static __attribute__((noinline)) wn_err make_room(tok_state *t, size_t need, wn_errbuf *err)
{
    size_t keep = t->has_prev ? t->prev : t->kind != K_NONE ? t->cur : t->len;
    if (keep) {
        memmove(t->buf, t->buf + keep, t->len - keep);
        t->len -= keep;
        t->cur = t->cur >= keep ? t->cur - keep : 0;
        t->prev = t->prev >= keep ? t->prev - keep : 0;
    }
    if (t->len + need <= t->cap) return WN_OK;
    size_t cap = t->cap ? t->cap : 4096;
    while (cap < t->len + need) cap *= 2;
    char *p = wn_realloc(t->buf, cap);
    if (!p) return wn_fail(err, WN_ERR_NOMEM, "dsir: cannot grow the token buffer to %zu bytes", cap);
    t->buf = p;
    t->cap = cap;
    return WN_OK;
}

static inline wn_err room(tok_state *t, size_t need, wn_errbuf *err)
{
    return t->len + need <= t->cap ? WN_OK : make_room(t, need, err);
}

/* One sink: either counts[b]++ (r == NULL) or *acc += r[b]. */
typedef struct {
    uint64_t m;
    uint64_t *counts;
    const double *r;
    double acc;
    uint64_t words;
} sink;

static inline __attribute__((always_inline)) void emit(sink *k, const char *p, size_t n)
{
    uint64_t b = XXH3_64bits(p, n) % k->m;
    if (k->r) k->acc += k->r[b];
    else k->counts[b]++;
}

/* Ends the current token: its unigram, its bigram with the previous one. */
static inline __attribute__((always_inline)) void end_token(tok_state *t, sink *k)
{
    if (t->kind == K_NONE) return;
    k->words++;
    emit(k, t->buf + t->cur, t->len - t->cur);
    if (t->has_prev) emit(k, t->buf + t->prev, t->len - t->prev);
    t->prev = t->cur;
    t->has_prev = 1;
    t->kind = K_NONE;
}

/* Starts a token of `kind` with room for `need` bytes after the separator. */
static inline __attribute__((always_inline)) wn_err start_token(tok_state *t, sink *k, int kind, size_t need,
                                                                 wn_errbuf *err)
{
    end_token(t, k);
    wn_err e = room(t, need + 1, err);
    if (e) return e;
    if (t->has_prev) t->buf[t->len++] = ' ';
    t->cur = t->len;
    t->kind = kind;
    return WN_OK;
}

static inline __attribute__((always_inline)) wn_err featurize(const char *text, size_t n, wn_dsir_scratch *s,
                                                               sink *k, wn_errbuf *err)
{
    const unsigned char *u = (const unsigned char *)text;
    tok_state t = {.buf = s->buf, .cap = s->cap};
    wn_err e = WN_OK;
    size_t i = 0;
    while (i < n) {
        if (u[i] < 0x80) {
            int kind = ascii_kind[u[i]];
            size_t j = i + 1;
            while (j < n && u[j] < 0x80 && ascii_kind[u[j]] == kind) j++;
            if (kind == K_SPACE) {
                end_token(&t, k);
            } else {
                if (kind != t.kind) e = start_token(&t, k, kind, j - i, err);
                else e = room(&t, j - i, err);
                if (e) break;
                char *o = t.buf + t.len;
                for (size_t q = i; q < j; q++) *o++ = ascii_lower(u[q]);
                t.len += j - i;
            }
            i = j;
            continue;
        }
        size_t at = i;
        int32_t c = wn_utf8_next(text, n, &i);
        int kind;
        char enc[4];
        const char *bytes = text + at;
        size_t nb = i - at; /* an invalid byte: itself, one K_PUNCT character */
        if (c < 0) {
            kind = K_PUNCT;
        } else {
            int32_t l = utf8proc_tolower(c);
            kind = kind_u(l);
            if (l != c) {
                nb = l < 0x80 ? (enc[0] = (char)l, 1) : put_utf8(enc, l);
                bytes = enc;
            }
        }
        if (kind == K_SPACE) {
            end_token(&t, k);
            continue;
        }
        if (kind != t.kind) e = start_token(&t, k, kind, 4, err);
        else e = room(&t, 4, err);
        if (e) break;
        memcpy(t.buf + t.len, bytes, nb);
        t.len += nb;
    }
    if (!e) end_token(&t, k);
    s->buf = t.buf;
    s->cap = t.cap;
    return e;
}

void wn_dsir_scratch_free(wn_dsir_scratch *s)
{
    if (!s) return;
    wn_free(s->buf);
    s->buf = NULL;
    s->cap = 0;
}

/* ---- counts ------------------------------------------------------------------ */

wn_err wn_dsir_counts_init(wn_dsir_counts *c, uint64_t m, wn_errbuf *err)
{
    memset(c, 0, sizeof *c);
    if (m < 1 || m > WN_DSIR_MAX_BUCKETS)
        return wn_fail(err, WN_ERR_USAGE, "dsir: %llu buckets, expected 1..%llu", (unsigned long long)m,
                       (unsigned long long)WN_DSIR_MAX_BUCKETS);
    c->c = wn_calloc((size_t)m, sizeof *c->c);
    if (!c->c) return wn_fail(err, WN_ERR_NOMEM, "dsir: no memory for %llu bucket counts", (unsigned long long)m);
    c->m = m;
    return WN_OK;
}

wn_err wn_dsir_counts_add_text(wn_dsir_counts *c, const char *text, size_t n, wn_dsir_scratch *s,
                               uint64_t *words, wn_errbuf *err)
{
    assert(c->c && c->m);
    sink k = {.m = c->m, .counts = c->c};
    wn_err e = featurize(text, n, s, &k, err);
    c->docs++;
    c->words += k.words;
    if (words) *words = k.words;
    return e;
}

wn_err wn_dsir_counts_merge(wn_dsir_counts *dst, const wn_dsir_counts *src, wn_errbuf *err)
{
    if (dst->m != src->m)
        return wn_fail(err, WN_ERR_USAGE, "dsir: cannot merge counts of %llu buckets into %llu",
                       (unsigned long long)src->m, (unsigned long long)dst->m);
    for (uint64_t j = 0; j < dst->m; j++) dst->c[j] += src->c[j];
    dst->docs += src->docs;
    dst->words += src->words;
    return WN_OK;
}

void wn_dsir_counts_free(wn_dsir_counts *c)
{
    if (!c) return;
    wn_free(c->c);
    memset(c, 0, sizeof *c);
}

/* ---- counts file ------------------------------------------------------------- */

enum { HDR_BYTES = 48, HDR_SUMMED = 40, FILE_VERSION = 1 };
static const char file_magic[8] = "WNDSIRC";

static uint64_t file_checksum(const unsigned char *p, uint64_t m)
{
    return XXH3_64bits_withSeed(p + HDR_BYTES, (size_t)m * 8, XXH3_64bits(p, HDR_SUMMED));
}

wn_err wn_dsir_counts_save(const wn_dsir_counts *c, const char *path, wn_errbuf *err)
{
    WN_CHECK(c->c && c->m >= 1 && c->m <= WN_DSIR_MAX_BUCKETS);
    size_t n = HDR_BYTES + (size_t)c->m * 8;
    unsigned char *p = wn_malloc(n);
    if (!p) return wn_fail(err, WN_ERR_NOMEM, "%s: no memory for %zu bytes", path, n);
    uint32_t version = FILE_VERSION, features = WN_DSIR_FEATURES;
    memcpy(p, file_magic, 8);
    memcpy(p + 8, &version, 4);
    memcpy(p + 12, &features, 4);
    memcpy(p + 16, &c->m, 8);
    memcpy(p + 24, &c->docs, 8);
    memcpy(p + 32, &c->words, 8);
    memcpy(p + HDR_BYTES, c->c, (size_t)c->m * 8);
    uint64_t sum = file_checksum(p, c->m);
    memcpy(p + 40, &sum, 8);
    wn_err e = wn_write_atomic(path, p, n, err);
    wn_free(p);
    return e;
}

wn_err wn_dsir_counts_parse(wn_dsir_counts *c, const void *data, size_t n, const char *name, wn_errbuf *err)
{
    const unsigned char *p = data;
    memset(c, 0, sizeof *c);
    if (n < HDR_BYTES)
        return wn_fail(err, WN_ERR_INPUT, "%s: %zu bytes, shorter than the %d-byte header of a DSIR counts file",
                       name, n, HDR_BYTES);
    if (memcmp(p, file_magic, 8))
        return wn_fail(err, WN_ERR_INPUT, "%s: not a DSIR counts file (bad magic)", name);
    uint32_t version, features;
    uint64_t m, docs, words, sum;
    memcpy(&version, p + 8, 4);
    memcpy(&features, p + 12, 4);
    memcpy(&m, p + 16, 8);
    memcpy(&docs, p + 24, 8);
    memcpy(&words, p + 32, 8);
    memcpy(&sum, p + 40, 8);
    if (version != FILE_VERSION)
        return wn_fail(err, WN_ERR_INPUT, "%s: DSIR counts version %u, this build reads %d", name, version,
                       FILE_VERSION);
    if (features != WN_DSIR_FEATURES)
        return wn_fail(err, WN_ERR_INPUT, "%s: DSIR features id %u, this build computes %d (refit the counts)",
                       name, features, WN_DSIR_FEATURES);
    if (m < 1 || m > WN_DSIR_MAX_BUCKETS)
        return wn_fail(err, WN_ERR_INPUT, "%s: %llu buckets, expected 1..%llu", name, (unsigned long long)m,
                       (unsigned long long)WN_DSIR_MAX_BUCKETS);
    if ((n - HDR_BYTES) / 8 != m || (n - HDR_BYTES) % 8)
        return wn_fail(err, WN_ERR_INPUT, "%s: %zu bytes, expected %llu for %llu buckets (truncated or trailing data)",
                       name, n, (unsigned long long)(HDR_BYTES + m * 8), (unsigned long long)m);
    if (file_checksum(p, m) != sum) return wn_fail(err, WN_ERR_INPUT, "%s: checksum mismatch (corrupt file)", name);
    wn_err e = wn_dsir_counts_init(c, m, err);
    if (e) return e;
    memcpy(c->c, p + HDR_BYTES, (size_t)m * 8);
    c->docs = docs;
    c->words = words;
    return WN_OK;
}

wn_err wn_dsir_counts_load(wn_dsir_counts *c, const char *path, wn_errbuf *err)
{
    memset(c, 0, sizeof *c);
    wn_buf b = {0};
    wn_err e = wn_read_file(path, &b, err);
    if (!e) e = wn_dsir_counts_parse(c, b.p, b.len, path, err);
    wn_buf_free(&b);
    return e;
}

/* ---- model and weights ------------------------------------------------------- */

/* (c_j + laplace) / sum_k (c_k + laplace) with the sum formed exactly. */
static wn_err smoothed_total(const wn_dsir_counts *c, double laplace, const char *which, double *total,
                             wn_errbuf *err)
{
    uint64_t sum = 0;
    for (uint64_t j = 0; j < c->m; j++)
        if (__builtin_add_overflow(sum, c->c[j], &sum))
            return wn_fail(err, WN_ERR_INPUT, "dsir: %s counts overflow 64 bits", which);
    *total = (double)sum + laplace * (double)c->m;
    if (!(*total > 0))
        return wn_fail(err, WN_ERR_INPUT, "dsir: %s counts are empty (no tokens) and laplace is 0", which);
    return WN_OK;
}

wn_err wn_dsir_model_init(wn_dsir_model *mdl, const wn_dsir_counts *target, const wn_dsir_counts *raw,
                          double laplace, wn_errbuf *err)
{
    memset(mdl, 0, sizeof *mdl);
    if (target->m != raw->m)
        return wn_fail(err, WN_ERR_USAGE, "dsir: target counts have %llu buckets, raw counts %llu",
                       (unsigned long long)target->m, (unsigned long long)raw->m);
    if (!isfinite(laplace) || laplace < 0)
        return wn_fail(err, WN_ERR_USAGE, "dsir: laplace %g, expected a finite value >= 0", laplace);
    double tp, tq;
    wn_err e = smoothed_total(target, laplace, "target", &tp, err);
    if (!e) e = smoothed_total(raw, laplace, "raw", &tq, err);
    if (e) return e;
    double *r = wn_malloc((size_t)target->m * sizeof *r);
    if (!r) return wn_fail(err, WN_ERR_NOMEM, "dsir: no memory for %llu log ratios", (unsigned long long)target->m);
    for (uint64_t j = 0; j < target->m; j++) {
        double p = ((double)target->c[j] + laplace) / tp;
        double q = ((double)raw->c[j] + laplace) / tq;
        r[j] = log(p + 1e-8) - log(q + 1e-8);
    }
    mdl->m = target->m;
    mdl->laplace = laplace;
    mdl->r = r;
    return WN_OK;
}

void wn_dsir_model_free(wn_dsir_model *mdl)
{
    if (!mdl) return;
    wn_free(mdl->r);
    memset(mdl, 0, sizeof *mdl);
}

wn_err wn_dsir_logweight(const wn_dsir_model *mdl, const char *text, size_t n, wn_dsir_scratch *s,
                         double *logw, uint64_t *words, wn_errbuf *err)
{
    assert(mdl->r && mdl->m);
    sink k = {.m = mdl->m, .r = mdl->r};
    wn_err e = featurize(text, n, s, &k, err);
    *logw = e ? 0 : k.acc;
    if (words) *words = e ? 0 : k.words;
    return e;
}
