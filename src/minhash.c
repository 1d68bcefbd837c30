/*
 * minhash.c - shingles, MinHash signatures, LSH band keys, the bucket and
 * pair tables, Jaccard and the LSH curve (minhash.h); and the CPU-only
 * build's stand-ins for kernels/minhash_kernels.h.
 */
#include "minhash.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <utf8proc.h>
#include <xxhash.h>

#include "text.h"

void wn_mh_scratch_free(wn_mh_scratch *sc)
{
    wn_buf_free(&sc->norm);
    wn_free(sc->pos);
    wn_free(sc->h);
    memset(sc, 0, sizeof *sc);
}

/* ---- normalization ------------------------------------------------------------ */

enum { K_SEP, K_LETTER, K_DIGIT };

/* ASCII: letters lowercased, digits, and separators (everything else). */
static inline int ascii_kind(unsigned char c)
{
    if ((unsigned)((c | 0x20) - 'a') < 26) return K_LETTER;
    if ((unsigned)(c - '0') < 10) return K_DIGIT;
    return K_SEP;
}

static int cp_kind(int32_t c)
{
    switch (utf8proc_category(c)) {
    case UTF8PROC_CATEGORY_LU: case UTF8PROC_CATEGORY_LL: case UTF8PROC_CATEGORY_LT: case UTF8PROC_CATEGORY_LM:
    case UTF8PROC_CATEGORY_LO: case UTF8PROC_CATEGORY_NL: case UTF8PROC_CATEGORY_NO: case UTF8PROC_CATEGORY_MN:
    case UTF8PROC_CATEGORY_MC: case UTF8PROC_CATEGORY_ME:
        return K_LETTER;
    case UTF8PROC_CATEGORY_ND:
        return K_DIGIT;
    default:
        return K_SEP;
    }
}

/* Han ideographs (with extensions and compatibility forms) and kana. */
static int is_cjk(int32_t c)
{
    return (c >= 0x3040 && c <= 0x30ff) || (c >= 0x3400 && c <= 0x4dbf) || (c >= 0x4e00 && c <= 0x9fff) ||
           (c >= 0xf900 && c <= 0xfaff) || (c >= 0x20000 && c <= 0x323af);
}

static inline size_t put_utf8(char *p, int32_t c)
{
    if (c < 0x80) { p[0] = (char)c; return 1; }
    if (c < 0x800) { p[0] = (char)(0xc0 | c >> 6); p[1] = (char)(0x80 | (c & 0x3f)); return 2; }
    if (c < 0x10000) {
        p[0] = (char)(0xe0 | c >> 12); p[1] = (char)(0x80 | ((c >> 6) & 0x3f)); p[2] = (char)(0x80 | (c & 0x3f));
        return 3;
    }
    p[0] = (char)(0xf0 | c >> 18); p[1] = (char)(0x80 | ((c >> 12) & 0x3f));
    p[2] = (char)(0x80 | ((c >> 6) & 0x3f)); p[3] = (char)(0x80 | (c & 0x3f));
    return 4;
}

/* The writer of the normalized text: words separated by one space, their
 * starts recorded. */
typedef struct {
    wn_mh_scratch *sc;
    int in_word, digit;
} emitter;

static inline wn_err word_start(emitter *e)
{
    wn_mh_scratch *sc = e->sc;
    if (sc->n_pos + 2 > sc->cap_pos) {
        size_t cap = sc->cap_pos ? sc->cap_pos * 2 : 256;
        uint32_t *p = wn_realloc(sc->pos, cap * sizeof *p);
        if (!p) return WN_ERR_NOMEM;
        sc->pos = p;
        sc->cap_pos = cap;
    }
    if (sc->norm.len) sc->norm.p[sc->norm.len++] = ' ';
    sc->pos[sc->n_pos++] = (uint32_t)sc->norm.len;
    e->in_word = 1;
    e->digit = 0;
    return WN_OK;
}

/* One code point of the decomposed text (room for it is reserved). */
static inline wn_err emit(emitter *e, int32_t c, int cjk_words)
{
    int kind = c < 0x80 ? ascii_kind((unsigned char)c) : cp_kind(c);
    wn_buf *o = &e->sc->norm;
    if (kind == K_SEP) {
        e->in_word = 0;
        return WN_OK;
    }
    if (kind == K_LETTER && cjk_words && c >= 0x3040 && is_cjk(c)) { /* a word of its own */
        if (word_start(e)) return WN_ERR_NOMEM;
        o->len += put_utf8(o->p + o->len, c);
        e->in_word = 0;
        return WN_OK;
    }
    if (!e->in_word && word_start(e)) return WN_ERR_NOMEM;
    if (kind == K_DIGIT) {
        if (!e->digit) o->p[o->len++] = '0';
        e->digit = 1;
        return WN_OK;
    }
    e->digit = 0;
    if (c < 0x80) o->p[o->len++] = (char)(c | 0x20); /* an ASCII letter: lowercase */
    else o->len += put_utf8(o->p + o->len, c);
    return WN_OK;
}

wn_err wn_mh_normalize(wn_mh_scratch *sc, const char *s, size_t n, int full, int cjk_words)
{
    wn_buf_clear(&sc->norm);
    if (n > WN_MH_MAX_TEXT) return WN_ERR_INPUT; /* offsets are u32; expansion is at most ~13x */
    sc->n_pos = 0;
    if (wn_buf_reserve(&sc->norm, n + 256)) return WN_ERR_NOMEM;
    emitter e = {sc, 0, 0};
    wn_buf *o = &sc->norm;
    size_t i = 0;
    while (i < n) {
        /* the most one input code point can add: 18 code points of 4 bytes, a space */
        if (o->cap - o->len < 128 && wn_buf_reserve(o, 4096)) return WN_ERR_NOMEM;
        unsigned char c = (unsigned char)s[i];
        if (c < 0x80) {
            i++;
            if (full) {
                if (emit(&e, c, cjk_words)) return WN_ERR_NOMEM;
            } else if (c == ' ' || (c >= '\t' && c <= '\r')) {
                e.in_word = 0;
            } else {
                if (!e.in_word && word_start(&e)) return WN_ERR_NOMEM;
                o->p[o->len++] = (char)c;
            }
            continue;
        }
        size_t at = i;
        int32_t cp = wn_utf8_next(s, n, &i);
        if (!full) {
            if (cp >= 0 && wn_is_space(cp)) {
                e.in_word = 0;
            } else {
                if (!e.in_word && word_start(&e)) return WN_ERR_NOMEM;
                memcpy(o->p + o->len, s + at, i - at);
                o->len += i - at;
            }
            continue;
        }
        if (cp < 0) {
            e.in_word = 0;
            continue;
        }
        int32_t dec[32];
        int bound = 0;
        utf8proc_ssize_t m = utf8proc_decompose_char(
            cp, dec, 32, UTF8PROC_DECOMPOSE | UTF8PROC_COMPAT | UTF8PROC_CASEFOLD | UTF8PROC_STRIPMARK, &bound);
        if (m < 0 || m > 32) { /* unassigned or an impossible expansion: a separator */
            e.in_word = 0;
            continue;
        }
        for (utf8proc_ssize_t j = 0; j < m; j++)
            if (emit(&e, dec[j], cjk_words)) return WN_ERR_NOMEM;
    }
    o->p[o->len] = 0;
    if (!sc->cap_pos) { /* no words: still room for the end mark */
        if (!(sc->pos = wn_malloc(256 * sizeof *sc->pos))) return WN_ERR_NOMEM;
        sc->cap_pos = 256;
    }
    sc->pos[sc->n_pos] = (uint32_t)o->len;
    return WN_OK;
}

/* ---- shingles ------------------------------------------------------------------ */

static wn_err hashes_room(wn_mh_scratch *sc, size_t n)
{
    if (n <= sc->cap_h) return WN_OK;
    size_t cap = sc->cap_h ? sc->cap_h : 256;
    while (cap < n) cap *= 2;
    uint64_t *h = wn_realloc(sc->h, cap * sizeof *h);
    if (!h) return WN_ERR_NOMEM;
    sc->h = h;
    sc->cap_h = cap;
    return WN_OK;
}

wn_err wn_mh_shingles(wn_mh_scratch *sc, const wn_mh_cfg *cfg, const char *s, size_t n)
{
    int word = cfg->unit == WN_MH_WORD;
    wn_err e = wn_mh_normalize(sc, s, n, cfg->normalize, word);
    sc->n_h = 0;
    if (e || !sc->n_pos) return e;
    const char *t = sc->norm.p;
    size_t len = sc->norm.len, k = (size_t)cfg->n;
    if (!word) { /* code point starts instead of word starts */
        size_t cps = 0;
        for (size_t i = 0; i < len; i++) cps += ((unsigned char)t[i] & 0xc0) != 0x80;
        if (cps + 1 > sc->cap_pos) {
            uint32_t *p = wn_realloc(sc->pos, (cps + 1) * sizeof *p);
            if (!p) return WN_ERR_NOMEM;
            sc->pos = p;
            sc->cap_pos = cps + 1;
        }
        size_t j = 0;
        for (size_t i = 0; i < len; i++)
            if (((unsigned char)t[i] & 0xc0) != 0x80) sc->pos[j++] = (uint32_t)i;
        sc->n_pos = cps;
        sc->pos[cps] = (uint32_t)len;
    }
    size_t units = sc->n_pos, count = units >= k ? units - k + 1 : 1;
    if (hashes_room(sc, count)) return WN_ERR_NOMEM;
    if (units < k) {
        sc->h[0] = XXH3_64bits(t, len);
    } else if (word) { /* words i .. i+k-1: from pos[i] to the space before pos[i+k] (or the end) */
        for (size_t i = 0; i < count; i++) {
            size_t a = sc->pos[i], b = i + k < units ? sc->pos[i + k] - 1 : len;
            sc->h[i] = XXH3_64bits(t + a, b - a);
        }
    } else {
        for (size_t i = 0; i < count; i++) sc->h[i] = XXH3_64bits(t + sc->pos[i], sc->pos[i + k] - sc->pos[i]);
    }
    sc->n_h = count;
    return WN_OK;
}

static int u64_cmp(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

size_t wn_mh_set(uint64_t *h, size_t n)
{
    if (n < 2) return n;
    qsort(h, n, sizeof *h, u64_cmp);
    size_t k = 1;
    for (size_t i = 1; i < n; i++)
        if (h[i] != h[k - 1]) h[k++] = h[i];
    return k;
}

uint64_t wn_mh_intersect(const uint64_t *a, size_t na, const uint64_t *b, size_t nb)
{
    size_t i = 0, j = 0;
    uint64_t c = 0;
    while (i < na && j < nb) {
        if (a[i] < b[j]) i++;
        else if (a[i] > b[j]) j++;
        else { c++; i++; j++; }
    }
    return c;
}

double wn_mh_jaccard(const uint64_t *a, size_t na, const uint64_t *b, size_t nb)
{
    uint64_t c = wn_mh_intersect(a, na, b, nb), u = (uint64_t)na + nb - c;
    return u ? (double)c / (double)u : 0;
}

/* ---- signatures ------------------------------------------------------------------ */

void wn_mh_perms(uint64_t seed, int n, uint64_t *a, uint64_t *b)
{
    uint64_t x = seed;
    for (int k = 0; k < n; k++) {
        a[k] = 1 + wn_splitmix64(&x) % (WN_MH_P - 1);
        b[k] = wn_splitmix64(&x) % WN_MH_P;
    }
}

static inline uint64_t min_u64(uint64_t x, uint64_t y) { return x < y ? x : y; }

/* Four shingles per pass over the permutations: a[k], b[k] and sig[k] are
 * loaded and stored once per four products (about 25% faster than one). */
void wn_mh_signature(const uint64_t *restrict h, size_t n, const uint64_t *restrict a, const uint64_t *restrict b,
                     int nperm, uint64_t *restrict sig)
{
    for (int k = 0; k < nperm; k++) sig[k] = UINT64_MAX;
    size_t i = 0;
    for (; i + 4 <= n; i += 4) {
        uint64_t x0 = wn_mh_mod(h[i]), x1 = wn_mh_mod(h[i + 1]), x2 = wn_mh_mod(h[i + 2]), x3 = wn_mh_mod(h[i + 3]);
        for (int k = 0; k < nperm; k++) {
            uint64_t ak = a[k], bk = b[k];
            uint64_t v = min_u64(min_u64(wn_mh_perm(ak, bk, x0), wn_mh_perm(ak, bk, x1)),
                                 min_u64(wn_mh_perm(ak, bk, x2), wn_mh_perm(ak, bk, x3)));
            sig[k] = min_u64(sig[k], v);
        }
    }
    for (; i < n; i++) {
        uint64_t x = wn_mh_mod(h[i]);
        for (int k = 0; k < nperm; k++) sig[k] = min_u64(sig[k], wn_mh_perm(a[k], b[k], x));
    }
}

void wn_mh_signatures(const uint64_t *h, const uint64_t *off, int64_t ndocs, const uint64_t *a, const uint64_t *b,
                      int nperm, uint64_t *sig)
{
    for (int64_t d = 0; d < ndocs; d++)
        wn_mh_signature(h + off[d], off[d + 1] - off[d], a, b, nperm, sig + (size_t)d * nperm);
}

void wn_mh_band_keys(const uint64_t *sig, int bands, int rows, uint64_t *keys)
{
    for (int b = 0; b < bands; b++) keys[b] = XXH3_64bits(sig + (size_t)b * rows, (size_t)rows * sizeof *sig);
}

double wn_mh_p_candidate(double s, int bands, int rows) { return 1 - pow(1 - pow(s, rows), bands); }

double wn_mh_s_half(int bands, int rows)
{
    double lo = 0, hi = 1;
    for (int i = 0; i < 100; i++) {
        double m = (lo + hi) / 2;
        if (wn_mh_p_candidate(m, bands, rows) < 0.5) lo = m;
        else hi = m;
    }
    return (lo + hi) / 2;
}

/* ---- sorting --------------------------------------------------------------------- */

enum { RBITS = 11, RADIX = 1 << RBITS, RPASSES = 6 }; /* 6 x 11 bits cover a u64 */

/* Stable LSD radix sort of a[0..n) by key (tmp: n entries). Passes whose
 * digit is the same for every entry are skipped. */
static wn_err sort_entries(wn_mh_entry *a, wn_mh_entry *tmp, uint64_t n)
{
    if (n < 2) return WN_OK;
    uint64_t *hist = wn_calloc(RPASSES * RADIX, sizeof *hist);
    if (!hist) return WN_ERR_NOMEM;
    for (uint64_t i = 0; i < n; i++) {
        uint64_t k = a[i].key;
        for (int p = 0; p < RPASSES; p++) hist[p * RADIX + ((k >> (p * RBITS)) & (RADIX - 1))]++;
    }
    wn_mh_entry *src = a, *dst = tmp;
    for (int p = 0; p < RPASSES; p++) {
        uint64_t *h = hist + p * RADIX;
        if (h[(src[0].key >> (p * RBITS)) & (RADIX - 1)] == n) continue;
        uint64_t sum = 0;
        for (int d = 0; d < RADIX; d++) { uint64_t c = h[d]; h[d] = sum; sum += c; }
        for (uint64_t i = 0; i < n; i++) dst[h[(src[i].key >> (p * RBITS)) & (RADIX - 1)]++] = src[i];
        wn_mh_entry *t = src; src = dst; dst = t;
    }
    if (src != a) memcpy(a, src, n * sizeof *a);
    wn_free(hist);
    return WN_OK;
}

/* Sorts a[0..n) (tmp: n) and removes repeats; returns the new length, or
 * UINT64_MAX when out of memory. */
static uint64_t sort_unique(uint64_t *a, uint64_t *tmp, uint64_t n)
{
    if (n < 2) return n;
    uint64_t *hist = wn_calloc(RPASSES * RADIX, sizeof *hist);
    if (!hist) return UINT64_MAX;
    for (uint64_t i = 0; i < n; i++)
        for (int p = 0; p < RPASSES; p++) hist[p * RADIX + ((a[i] >> (p * RBITS)) & (RADIX - 1))]++;
    uint64_t *src = a, *dst = tmp;
    for (int p = 0; p < RPASSES; p++) {
        uint64_t *h = hist + p * RADIX;
        if (h[(src[0] >> (p * RBITS)) & (RADIX - 1)] == n) continue;
        uint64_t sum = 0;
        for (int d = 0; d < RADIX; d++) { uint64_t c = h[d]; h[d] = sum; sum += c; }
        for (uint64_t i = 0; i < n; i++) dst[h[(src[i] >> (p * RBITS)) & (RADIX - 1)]++] = src[i];
        uint64_t *t = src; src = dst; dst = t;
    }
    uint64_t k = 1;
    a[0] = src[0];
    for (uint64_t i = 1; i < n; i++)
        if (src[i] != a[k - 1]) a[k++] = src[i];
    wn_free(hist);
    return k;
}

/* ---- run files ------------------------------------------------------------------- */

/* A bucket run: this header, then for each band `entries` entries sorted by
 * (key, doc). A pair run: its header, then `entries` distinct u64 pairs,
 * ascending. Little-endian. */
typedef struct {
    char magic[8];
    uint32_t version, bands;
    uint64_t entries;
    uint32_t entry_bytes, reserved;
} run_hdr;
_Static_assert(sizeof(run_hdr) == 32, "run header layout");

static const char BUCKET_MAGIC[8] = "WMHBKT1", PAIR_MAGIC[8] = "WMHPAR1";

static void bucket_path(const wn_mh_buckets *t, int i, char *out, size_t n)
{
    snprintf(out, n, "%s/minhash-buckets-%05d.run", t->dir, i);
}

static void pair_path(const wn_mh_pairs *p, int i, char *out, size_t n)
{
    snprintf(out, n, "%s/minhash-pairs-%05d.run", p->dir, i);
}

/* Creates path with hdr then n_parts arrays; durable when sync. */
static wn_err write_run(const char *path, const run_hdr *hdr, const void *const *parts, const size_t *bytes,
                        int n_parts, int sync, wn_errbuf *err)
{
    FILE *f = fopen(path, "wb");
    if (!f) return wn_fail(err, WN_ERR_IO, "%s: cannot create: %s", path, strerror(errno));
    int bad = fwrite(hdr, sizeof *hdr, 1, f) != 1;
    for (int i = 0; i < n_parts && !bad; i++) bad = bytes[i] && fwrite(parts[i], 1, bytes[i], f) != bytes[i];
    bad |= fflush(f) != 0;
    if (sync) bad |= fsync(fileno(f)) != 0;
    bad |= fclose(f) != 0;
    return bad ? wn_fail(err, WN_ERR_IO, "%s: write failed: %s", path, strerror(errno)) : WN_OK;
}

/* Opens a run and checks its header and size. */
static wn_err open_run(const char *path, const char *magic, uint32_t bands, uint32_t entry_bytes, int *fd_out,
                       uint64_t *entries, wn_errbuf *err)
{
    int fd = open(path, O_RDONLY);
    if (fd < 0) return wn_fail(err, WN_ERR_STATE, "%s: cannot open a spill run: %s", path, strerror(errno));
    run_hdr h;
    struct stat sb;
    if (pread(fd, &h, sizeof h, 0) != (ssize_t)sizeof h || memcmp(h.magic, magic, 8) || h.version != 1 ||
        h.bands != bands || h.entry_bytes != entry_bytes || fstat(fd, &sb) ||
        (uint64_t)sb.st_size != sizeof h + (uint64_t)bands * h.entries * entry_bytes) {
        close(fd);
        return wn_fail(err, WN_ERR_STATE, "%s: not a complete minhash spill run (bad header or size); remove the "
                       "run directory and start over", path);
    }
    *fd_out = fd;
    *entries = h.entries;
    return WN_OK;
}

/* A sorted source for a merge: a byte range of a run file read through a
 * buffer, or an array in memory. */
typedef struct {
    int fd;
    uint64_t off, end;
    uint8_t *buf;
    size_t cap, pos, len;
    const uint8_t *mem;
} source;

/* Points *rec at the next rec-byte record; 0 at the end, -1 on a read error. */
static int source_next(source *s, size_t rec, const uint8_t **out)
{
    if (s->pos + rec > s->len) {
        if (s->mem || s->off >= s->end) return 0;
        size_t want = s->end - s->off < s->cap ? (size_t)(s->end - s->off) : s->cap, got = 0;
        while (got < want) {
            ssize_t r = pread(s->fd, s->buf + got, want - got, (off_t)(s->off + got));
            if (r <= 0) {
                if (r < 0 && errno == EINTR) continue;
                return -1;
            }
            got += (size_t)r;
        }
        s->off += want;
        s->pos = 0;
        s->len = want;
    }
    *out = (s->mem ? s->mem : s->buf) + s->pos;
    s->pos += rec;
    return 1;
}

/* ---- the bucket table ------------------------------------------------------------------ */

wn_err wn_mh_buckets_init(wn_mh_buckets *t, const char *dir, int bands, uint64_t budget, wn_errbuf *err)
{
    memset(t, 0, sizeof *t);
    snprintf(t->dir, sizeof t->dir, "%s", dir);
    t->bands = bands;
    t->cap = budget / (sizeof(wn_mh_entry) * (uint64_t)(bands + 1));
    if (t->cap < 64) t->cap = 64;
    t->buf = wn_calloc((size_t)bands, sizeof *t->buf);
    return t->buf ? WN_OK : wn_fail(err, WN_ERR_NOMEM, "out of memory");
}

uint64_t wn_mh_buckets_mem(const wn_mh_buckets *t) { return t->alloc * (uint64_t)t->bands * sizeof(wn_mh_entry); }

static void note_peak(uint64_t *peak, uint64_t v)
{
    if (v > *peak) *peak = v;
}

static void buckets_release(wn_mh_buckets *t)
{
    for (int b = 0; t->buf && b < t->bands; b++) {
        wn_free(t->buf[b]);
        t->buf[b] = NULL;
    }
    t->alloc = 0;
}

static wn_err buckets_spill(wn_mh_buckets *t, int release, wn_errbuf *err)
{
    wn_err e = WN_OK;
    if (t->n) {
        char path[4200];
        bucket_path(t, t->n_runs, path, sizeof path);
        wn_mh_entry *tmp = wn_malloc(t->n * sizeof *tmp);
        const void **parts = wn_calloc((size_t)t->bands, sizeof *parts);
        size_t *bytes = wn_calloc((size_t)t->bands, sizeof *bytes);
        if (!tmp || !parts || !bytes) e = wn_fail(err, WN_ERR_NOMEM, "out of memory sorting the LSH buckets");
        note_peak(&t->mem_peak, wn_mh_buckets_mem(t) + t->n * sizeof *tmp);
        for (int b = 0; !e && b < t->bands; b++) {
            if (sort_entries(t->buf[b], tmp, t->n)) e = wn_fail(err, WN_ERR_NOMEM, "out of memory");
            parts[b] = t->buf[b];
            bytes[b] = t->n * sizeof(wn_mh_entry);
        }
        run_hdr h = {{0}, 1, (uint32_t)t->bands, t->n, sizeof(wn_mh_entry), 0};
        memcpy(h.magic, BUCKET_MAGIC, 8);
        if (!e) e = write_run(path, &h, parts, bytes, t->bands, 1, err);
        wn_free(tmp);
        wn_free(parts);
        wn_free(bytes);
        if (e) return e;
        t->n_runs++;
        t->run_entries += t->n;
        t->n = 0;
    }
    if (release) buckets_release(t);
    return WN_OK;
}

wn_err wn_mh_buckets_spill(wn_mh_buckets *t, wn_errbuf *err) { return buckets_spill(t, 1, err); }

wn_err wn_mh_buckets_add(wn_mh_buckets *t, uint32_t doc, const uint64_t *keys, wn_errbuf *err)
{
    if (t->n == t->alloc) {
        if (t->alloc >= t->cap) {
            wn_err e = buckets_spill(t, 0, err);
            if (e) return e;
        } else {
            uint64_t alloc = t->alloc ? t->alloc * 2 : 1024;
            if (alloc > t->cap) alloc = t->cap;
            for (int b = 0; b < t->bands; b++) {
                wn_mh_entry *p = wn_realloc(t->buf[b], alloc * sizeof *p);
                if (!p) return wn_fail(err, WN_ERR_NOMEM, "out of memory (LSH buckets)");
                t->buf[b] = p;
            }
            t->alloc = alloc;
            note_peak(&t->mem_peak, wn_mh_buckets_mem(t));
        }
    }
    for (int b = 0; b < t->bands; b++) {
        t->buf[b][t->n].key = keys[b];
        t->buf[b][t->n].doc = doc;
    }
    t->n++;
    return WN_OK;
}

/* Heap of sources ordered by (key, source index): runs hold increasing
 * document ranges and the buffer the latest, so ties come out in document
 * order. */
typedef struct {
    wn_mh_entry cur;
    int src;
} bk_head;

static int bk_less(const bk_head *x, const bk_head *y)
{
    return x->cur.key != y->cur.key ? x->cur.key < y->cur.key : x->src < y->src;
}

static void bk_sift(bk_head *h, int n, int i)
{
    for (;;) {
        int l = 2 * i + 1, m = i;
        if (l < n && bk_less(&h[l], &h[m])) m = l;
        if (l + 1 < n && bk_less(&h[l + 1], &h[m])) m = l + 1;
        if (m == i) return;
        bk_head t = h[i]; h[i] = h[m]; h[m] = t;
        i = m;
    }
}

wn_err wn_mh_pairer_add(wn_mh_pairer *p, uint64_t key, uint32_t doc, wn_mh_pair_fn fn, void *ctx)
{
    if (!p->cnt || key != p->key) { /* a new bucket */
        p->key = key;
        p->a0 = doc;
        p->cnt = 1;
        return WN_OK;
    }
    if (p->cnt == 1) p->a1 = doc;
    wn_err e = fn(ctx, p->a0, doc);
    if (!e && p->anchors > 1 && p->cnt > 1) e = fn(ctx, p->a1, doc);
    p->cnt++;
    return e;
}

wn_err wn_mh_buckets_each(wn_mh_buckets *t, size_t read_bytes, wn_mh_entry_fn fn, void *ctx, wn_errbuf *err)
{
    int ns = t->n_runs + 1;
    source *src = wn_calloc((size_t)ns, sizeof *src);
    uint64_t *ents = wn_calloc((size_t)ns, sizeof *ents);
    bk_head *heap = wn_calloc((size_t)ns, sizeof *heap);
    wn_mh_entry *tmp = t->n ? wn_malloc(t->n * sizeof *tmp) : NULL;
    wn_err e = WN_OK;
    size_t cap = read_bytes / sizeof(wn_mh_entry) * sizeof(wn_mh_entry);
    if (cap < 64 * sizeof(wn_mh_entry)) cap = 64 * sizeof(wn_mh_entry);
    if (!src || !ents || !heap || (t->n && !tmp)) e = wn_fail(err, WN_ERR_NOMEM, "out of memory merging LSH buckets");
    for (int r = 0; src && r < ns; r++) src[r].fd = -1;
    for (int r = 0; !e && r < t->n_runs; r++) {
        char path[4200];
        bucket_path(t, r, path, sizeof path);
        e = open_run(path, BUCKET_MAGIC, (uint32_t)t->bands, sizeof(wn_mh_entry), &src[r].fd, &ents[r], err);
        if (!e && !(src[r].buf = wn_malloc(cap))) e = wn_fail(err, WN_ERR_NOMEM, "out of memory");
        src[r].cap = cap;
    }
    note_peak(&t->mem_peak, wn_mh_buckets_mem(t) + t->n * sizeof(wn_mh_entry) + (uint64_t)t->n_runs * cap);
    for (int b = 0; !e && b < t->bands; b++) {
        for (int r = 0; r < t->n_runs; r++) {
            src[r].off = sizeof(run_hdr) + (uint64_t)b * ents[r] * sizeof(wn_mh_entry);
            src[r].end = src[r].off + ents[r] * sizeof(wn_mh_entry);
            src[r].pos = src[r].len = 0;
        }
        source *m = &src[t->n_runs];
        if (t->n) {
            if (sort_entries(t->buf[b], tmp, t->n)) { e = wn_fail(err, WN_ERR_NOMEM, "out of memory"); break; }
            m->mem = (const uint8_t *)t->buf[b];
            m->len = t->n * sizeof(wn_mh_entry);
            m->pos = 0;
        } else {
            m->mem = (const uint8_t *)"";
            m->len = m->pos = 0;
        }
        int nh = 0;
        for (int r = 0; r < ns; r++) {
            const uint8_t *p;
            int got = source_next(&src[r], sizeof(wn_mh_entry), &p);
            if (got < 0) { e = wn_fail(err, WN_ERR_IO, "%s: read failed", t->dir); break; }
            if (got) {
                memcpy(&heap[nh].cur, p, sizeof(wn_mh_entry));
                heap[nh++].src = r;
            }
        }
        for (int i = nh / 2 - 1; i >= 0; i--) bk_sift(heap, nh, i);
        while (!e && nh) {
            wn_mh_entry x = heap[0].cur;
            const uint8_t *p;
            int got = source_next(&src[heap[0].src], sizeof(wn_mh_entry), &p);
            if (got < 0) { e = wn_fail(err, WN_ERR_IO, "%s: read failed", t->dir); break; }
            if (got) memcpy(&heap[0].cur, p, sizeof(wn_mh_entry));
            else heap[0] = heap[--nh];
            bk_sift(heap, nh, 0);
            e = fn(ctx, b, &x);
        }
        wn_free(t->buf[b]); /* this band is done */
        t->buf[b] = NULL;
    }
    t->n = 0;
    buckets_release(t);
    for (int r = 0; src && r < ns; r++) {
        if (src[r].fd >= 0) close(src[r].fd);
        wn_free(src[r].buf);
    }
    wn_free(src);
    wn_free(ents);
    wn_free(heap);
    wn_free(tmp);
    return e;
}

typedef struct {
    wn_mh_pairer pm;
    int band;
    wn_mh_pair_fn fn;
    void *ctx;
} pairs_ctx;

static wn_err pairs_entry(void *ctx, int band, const wn_mh_entry *x)
{
    pairs_ctx *c = ctx;
    if (band != c->band) { /* buckets do not cross bands */
        wn_mh_pairer_reset(&c->pm, c->pm.anchors);
        c->band = band;
    }
    return wn_mh_pairer_add(&c->pm, x->key, x->doc, c->fn, c->ctx);
}

wn_err wn_mh_buckets_pairs(wn_mh_buckets *t, int anchors, size_t read_bytes, wn_mh_pair_fn fn, void *ctx,
                           wn_errbuf *err)
{
    pairs_ctx c = {{0}, -1, fn, ctx};
    wn_mh_pairer_reset(&c.pm, anchors);
    return wn_mh_buckets_each(t, read_bytes, pairs_entry, &c, err);
}

wn_err wn_mh_blocks_pairs(const wn_mh_entry *e, const uint64_t *n, int blocks, int anchors, wn_mh_pair_fn fn,
                          void *ctx)
{
    bk_head *heap = wn_malloc((size_t)(blocks > 0 ? blocks : 1) * sizeof *heap);
    uint64_t *pos = wn_malloc((size_t)(blocks > 0 ? blocks : 1) * 2 * sizeof *pos), *end = pos + (blocks > 0 ? blocks : 1);
    if (!heap || !pos) {
        wn_free(heap);
        wn_free(pos);
        return WN_ERR_NOMEM;
    }
    int nh = 0;
    uint64_t at = 0;
    for (int k = 0; k < blocks; k++) {
        pos[k] = at;
        end[k] = at += n[k];
        if (pos[k] < end[k]) {
            heap[nh].cur = e[pos[k]++];
            heap[nh++].src = k;
        }
    }
    for (int i = nh / 2 - 1; i >= 0; i--) bk_sift(heap, nh, i);
    wn_mh_pairer pm;
    wn_mh_pairer_reset(&pm, anchors);
    wn_err r = WN_OK;
    while (!r && nh) {
        wn_mh_entry x = heap[0].cur;
        int k = heap[0].src;
        if (pos[k] < end[k]) heap[0].cur = e[pos[k]++];
        else heap[0] = heap[--nh];
        bk_sift(heap, nh, 0);
        r = wn_mh_pairer_add(&pm, x.key, x.doc, fn, ctx);
    }
    wn_free(heap);
    wn_free(pos);
    return r;
}

/* Checkpoint of a bucket table: this header, then each band's buffered
 * entries. */
typedef struct {
    char magic[8];
    uint32_t bands, n_runs;
    uint64_t n, run_entries;
} bk_ckpt;
static const char BK_CKPT_MAGIC[8] = "WMHBCK1";

wn_err wn_mh_buckets_save(const wn_mh_buckets *t, FILE *f, wn_errbuf *err)
{
    bk_ckpt c = {{0}, (uint32_t)t->bands, (uint32_t)t->n_runs, t->n, t->run_entries};
    memcpy(c.magic, BK_CKPT_MAGIC, 8);
    int bad = fwrite(&c, sizeof c, 1, f) != 1;
    for (int b = 0; b < t->bands && !bad && t->n; b++) bad = fwrite(t->buf[b], sizeof(wn_mh_entry), t->n, f) != t->n;
    return bad ? wn_fail(err, WN_ERR_IO, "checkpoint write failed") : WN_OK;
}

wn_err wn_mh_buckets_load(wn_mh_buckets *t, FILE *f, wn_errbuf *err)
{
    bk_ckpt c;
    if (fread(&c, sizeof c, 1, f) != 1 || memcmp(c.magic, BK_CKPT_MAGIC, 8) || c.bands != (uint32_t)t->bands)
        return wn_fail(err, WN_ERR_STATE, "not a checkpoint of this table (bands differ or bad magic)");
    uint64_t total = 0;
    for (uint32_t r = 0; r < c.n_runs; r++) { /* the runs it refers to must be whole */
        char path[4200];
        int fd;
        uint64_t n;
        snprintf(path, sizeof path, "%s/minhash-buckets-%05u.run", t->dir, r);
        wn_err e = open_run(path, BUCKET_MAGIC, c.bands, sizeof(wn_mh_entry), &fd, &n, err);
        if (e) return e;
        close(fd);
        total += n;
    }
    if (total != c.run_entries) return wn_fail(err, WN_ERR_STATE, "%s: the spill runs do not match the checkpoint", t->dir);
    buckets_release(t);
    uint64_t alloc = t->cap < 1024 ? t->cap : 1024;
    if (alloc < c.n) alloc = c.n;
    for (int b = 0; b < t->bands; b++) {
        if (!(t->buf[b] = wn_malloc(alloc * sizeof(wn_mh_entry)))) return wn_fail(err, WN_ERR_NOMEM, "out of memory");
        if (c.n && fread(t->buf[b], sizeof(wn_mh_entry), c.n, f) != c.n)
            return wn_fail(err, WN_ERR_STATE, "checkpoint cut short");
    }
    t->alloc = alloc;
    t->n = c.n;
    t->n_runs = (int)c.n_runs;
    t->run_entries = c.run_entries;
    note_peak(&t->mem_peak, wn_mh_buckets_mem(t));
    return WN_OK;
}

void wn_mh_buckets_free(wn_mh_buckets *t)
{
    buckets_release(t);
    wn_free(t->buf);
    t->buf = NULL;
}

/* ---- the pair table ---------------------------------------------------------------------- */

wn_err wn_mh_pairs_init(wn_mh_pairs *p, const char *dir, uint64_t budget, wn_errbuf *err)
{
    (void)err;
    memset(p, 0, sizeof *p);
    snprintf(p->dir, sizeof p->dir, "%s", dir);
    p->cap = budget / (2 * sizeof(uint64_t));
    if (p->cap < 1024) p->cap = 1024;
    return WN_OK;
}

/* Sorts and uniques the buffer. */
static wn_err pairs_compact(wn_mh_pairs *p, wn_errbuf *err)
{
    if (p->sorted) return WN_OK;
    uint64_t *tmp = p->n ? wn_malloc(p->n * sizeof *tmp) : NULL;
    if (p->n && !tmp) return wn_fail(err, WN_ERR_NOMEM, "out of memory sorting candidate pairs");
    note_peak(&p->mem_peak, (p->alloc + p->n) * sizeof(uint64_t));
    uint64_t k = sort_unique(p->buf, tmp, p->n);
    wn_free(tmp);
    if (k == UINT64_MAX) return wn_fail(err, WN_ERR_NOMEM, "out of memory");
    p->n = k;
    p->sorted = 1;
    return WN_OK;
}

wn_err wn_mh_pairs_add(wn_mh_pairs *p, uint32_t a, uint32_t b, wn_errbuf *err)
{
    if (p->n == p->alloc) {
        if (p->alloc < p->cap) {
            uint64_t alloc = p->alloc ? p->alloc * 2 : 4096;
            if (alloc > p->cap) alloc = p->cap;
            uint64_t *q = wn_realloc(p->buf, alloc * sizeof *q);
            if (!q) return wn_fail(err, WN_ERR_NOMEM, "out of memory (candidate pairs)");
            p->buf = q;
            p->alloc = alloc;
            note_peak(&p->mem_peak, alloc * sizeof *q);
        } else {
            wn_err e = pairs_compact(p, err);
            if (e) return e;
            if (p->n > p->cap / 2) { /* still more than half full: write a run */
                char path[4200];
                pair_path(p, p->n_runs, path, sizeof path);
                run_hdr h = {{0}, 1, 1, p->n, sizeof(uint64_t), 0};
                memcpy(h.magic, PAIR_MAGIC, 8);
                const void *part = p->buf;
                size_t bytes = p->n * sizeof(uint64_t);
                if ((e = write_run(path, &h, &part, &bytes, 1, 0, err))) return e;
                p->n_runs++;
                p->n = 0;
            }
        }
    }
    p->buf[p->n++] = (uint64_t)a << 32 | b;
    p->sorted = 0;
    return WN_OK;
}

typedef struct {
    uint64_t cur;
    int src;
} pr_head;

static void pr_sift(pr_head *h, int n, int i)
{
    for (;;) {
        int l = 2 * i + 1, m = i;
        if (l < n && h[l].cur < h[m].cur) m = l;
        if (l + 1 < n && h[l + 1].cur < h[m].cur) m = l + 1;
        if (m == i) return;
        pr_head t = h[i]; h[i] = h[m]; h[m] = t;
        i = m;
    }
}

wn_err wn_mh_pairs_each(wn_mh_pairs *p, size_t read_bytes, wn_mh_pair_fn fn, void *ctx, wn_errbuf *err)
{
    wn_err e = pairs_compact(p, err);
    if (e) return e;
    if (!p->n_runs) {
        for (uint64_t i = 0; i < p->n; i++)
            if ((e = fn(ctx, (uint32_t)(p->buf[i] >> 32), (uint32_t)p->buf[i]))) return e;
        return WN_OK;
    }
    int ns = p->n_runs + 1;
    source *src = wn_calloc((size_t)ns, sizeof *src);
    pr_head *heap = wn_calloc((size_t)ns, sizeof *heap);
    size_t cap = read_bytes / 8 * 8;
    if (cap < 4096) cap = 4096;
    if (!src || !heap) e = wn_fail(err, WN_ERR_NOMEM, "out of memory merging candidate pairs");
    for (int r = 0; src && r < ns; r++) src[r].fd = -1;
    for (int r = 0; !e && r < p->n_runs; r++) {
        char path[4200];
        uint64_t n;
        pair_path(p, r, path, sizeof path);
        if ((e = open_run(path, PAIR_MAGIC, 1, sizeof(uint64_t), &src[r].fd, &n, err))) break;
        src[r].off = sizeof(run_hdr);
        src[r].end = src[r].off + n * sizeof(uint64_t);
        src[r].cap = cap;
        if (!(src[r].buf = wn_malloc(cap))) e = wn_fail(err, WN_ERR_NOMEM, "out of memory");
    }
    if (!e) {
        src[p->n_runs].mem = p->n ? (const uint8_t *)p->buf : (const uint8_t *)"";
        src[p->n_runs].len = p->n * sizeof(uint64_t);
        note_peak(&p->mem_peak, p->alloc * sizeof(uint64_t) + (uint64_t)p->n_runs * cap);
    }
    int nh = 0;
    for (int r = 0; !e && r < ns; r++) {
        const uint8_t *q;
        int got = source_next(&src[r], sizeof(uint64_t), &q);
        if (got < 0) e = wn_fail(err, WN_ERR_IO, "%s: read failed", p->dir);
        if (got > 0) {
            memcpy(&heap[nh].cur, q, 8);
            heap[nh++].src = r;
        }
    }
    for (int i = nh / 2 - 1; i >= 0; i--) pr_sift(heap, nh, i);
    uint64_t last = 0;
    int have = 0;
    while (!e && nh) {
        uint64_t x = heap[0].cur;
        const uint8_t *q;
        int got = source_next(&src[heap[0].src], sizeof(uint64_t), &q);
        if (got < 0) { e = wn_fail(err, WN_ERR_IO, "%s: read failed", p->dir); break; }
        if (got) memcpy(&heap[0].cur, q, 8);
        else heap[0] = heap[--nh];
        pr_sift(heap, nh, 0);
        if (have && x == last) continue;
        last = x;
        have = 1;
        e = fn(ctx, (uint32_t)(x >> 32), (uint32_t)x);
    }
    for (int r = 0; src && r < ns; r++) {
        if (src[r].fd >= 0) close(src[r].fd);
        wn_free(src[r].buf);
    }
    wn_free(src);
    wn_free(heap);
    return e;
}

void wn_mh_pairs_free(wn_mh_pairs *p)
{
    wn_free(p->buf);
    p->buf = NULL;
    p->n = p->alloc = 0;
}

/* ---- without CUDA ------------------------------------------------------------------------- */

#if !WN_CUDA
#include "../kernels/minhash_kernels.h"

int wn_cuda_minhash_signatures(const uint64_t *h, const uint64_t *off, int64_t ndocs, const uint64_t *a,
                               const uint64_t *b, int nperm, uint64_t *sig)
{
    (void)h, (void)off, (void)ndocs, (void)a, (void)b, (void)nperm, (void)sig;
    return WN_CUDA_ERR_RUNTIME;
}
const char *wn_cuda_minhash_last_error(void)
{
    return "this winnow was built without CUDA (nvcc not found, or make CUDA=0)";
}
void wn_cuda_minhash_shutdown(void) {}
int wn_cuda_minhash_timing(int on)
{
    (void)on;
    return WN_CUDA_ERR_RUNTIME;
}
int wn_cuda_minhash_last_times(float *upload_ms, float *kernel_ms, float *download_ms)
{
    (void)upload_ms, (void)kernel_ms, (void)download_ms;
    return WN_CUDA_ERR_RUNTIME;
}
#endif
