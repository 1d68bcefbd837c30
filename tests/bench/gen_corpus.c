/*
 * gen_corpus.c - deterministic synthetic JSONL.zst corpus for `make bench`.
 *
 *   build/gen_corpus OUT.jsonl.zst [TARGET_BYTES] [SEED]
 *
 * Writes records {"id":"bench-<n>","text":...,"url":"https://example.org/<n>"}
 * until at least TARGET_BYTES (default 1e9) of uncompressed JSONL are written,
 * compressed with libzstd's streaming API at level 3.
 *
 * Texts are English-like: a generated vocabulary of a few thousand words with
 * Zipf frequencies, sentences, paragraphs separated by "\n\n", lengths 200 B to
 * 20 KB (log-normal). Each unique text is a pure function of its own seed, so
 * about 10% of the records are exact duplicates of an earlier record's text,
 * produced by regenerating it from the saved seed (any earlier document, not
 * only recent ones). About 3% of the texts carry non-ASCII characters
 * (precomposed and decomposed accents, CJK) and a few carry characters that
 * need JSON escapes (quotes, backslashes, tabs); a small share of records
 * write their non-ASCII characters as \uXXXX escapes (surrogate pairs too).
 *
 * On stderr it prints one line of counts: docs, exact duplicates, non-ASCII
 * docs, docs with escapes, uncompressed and compressed bytes. No libc rand:
 * splitmix64 seeds xorshift64* generators, so output is identical everywhere.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zstd.h>

/* ---- random numbers ---------------------------------------------------- */
static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

typedef struct { uint64_t s; } rng;

static void rng_seed(rng *r, uint64_t seed)
{
    uint64_t x = seed;
    r->s = splitmix64(&x);
    if (!r->s) r->s = 1;
}

static uint64_t rng_next(rng *r)
{
    uint64_t x = r->s;
    x ^= x >> 12; x ^= x << 25; x ^= x >> 27;
    r->s = x;
    return x * 0x2545F4914F6CDD1DULL;
}

static uint32_t rng_below(rng *r, uint32_t n) { return (uint32_t)(((rng_next(r) >> 32) * n) >> 32); }
static double rng_unit(rng *r) { return (double)(rng_next(r) >> 11) * (1.0 / 9007199254740992.0); }

/* exp() without libm (the Makefile rule links only -lzstd): 2^k * e^r, |r| <= ln2/2. */
static double my_exp(double x)
{
    const double ln2 = 0.6931471805599453;
    int k = (int)(x / ln2 + (x < 0 ? -0.5 : 0.5));
    double r = x - k * ln2, t = 1, s = 1;
    for (int i = 1; i < 14; i++) { t *= r / i; s += t; }
    while (k > 0) { s *= 2; k--; }
    while (k < 0) { s /= 2; k++; }
    return s;
}

/* ---- growable byte buffer ---------------------------------------------- */
typedef struct { char *p; size_t n, cap; } buf;

static void buf_reserve(buf *b, size_t extra)
{
    if (b->n + extra <= b->cap) return;
    size_t cap = b->cap ? b->cap : 1 << 16;
    while (cap < b->n + extra) cap *= 2;
    b->p = realloc(b->p, cap);
    if (!b->p) { fprintf(stderr, "gen_corpus: out of memory\n"); exit(1); }
    b->cap = cap;
}
static inline void buf_put(buf *b, const char *s, size_t n) { buf_reserve(b, n); memcpy(b->p + b->n, s, n); b->n += n; }
static inline void buf_putc(buf *b, char c) { buf_reserve(b, 1); b->p[b->n++] = c; }
static void buf_puts(buf *b, const char *s) { buf_put(b, s, strlen(s)); }

/* ---- vocabulary --------------------------------------------------------- */
#define NWORDS 4000
#define ZIPF_SLOTS (1 << 16)
static char words[NWORDS][16];
static uint8_t wlen[NWORDS];
static uint16_t zipf_table[ZIPF_SLOTS]; /* uniform slot -> word index, Zipf (1/rank) */

static const char *onsets[] = {"b","c","d","f","g","h","l","m","n","p","r","s","t","v","w",
                               "br","ch","cl","dr","gr","pl","pr","sh","st","th","tr","wh",""};
static const char *vowels[] = {"a","e","i","o","u","ea","ou","ai","io","y"};
static const char *codas[] = {"","","","n","r","s","t","l","nd","st","ng","ck","rt","m"};

static void build_vocab(uint64_t seed)
{
    rng r; rng_seed(&r, seed ^ 0x766f636162ULL);
    /* a few very common short function words first: they get the top ranks */
    static const char *common[] = {"the","of","and","to","a","in","is","that","for","it","as","was",
                                   "with","be","by","on","not","he","this","are","or","his","from","at"};
    size_t nc = sizeof common / sizeof *common;
    for (int i = 0; i < NWORDS; i++) {
        char w[64]; size_t n = 0;
        if ((size_t)i < nc) {
            n = strlen(common[i]); memcpy(w, common[i], n);
        } else {
            int syl = 1 + (int)rng_below(&r, i < 400 ? 2 : 4);
            for (int k = 0; k < syl; k++) {
                const char *parts[3] = {onsets[rng_below(&r, sizeof onsets / sizeof *onsets)],
                                        vowels[rng_below(&r, sizeof vowels / sizeof *vowels)],
                                        codas[rng_below(&r, sizeof codas / sizeof *codas)]};
                for (int j = 0; j < 3; j++) { size_t l = strlen(parts[j]); memcpy(w + n, parts[j], l); n += l; }
            }
            if (n > 15) n = 15;
        }
        memcpy(words[i], w, n); words[i][n] = 0; wlen[i] = (uint8_t)n;
    }
    double total = 0;
    for (int i = 0; i < NWORDS; i++) total += 1.0 / (i + 1);
    double acc = 0; int w = 0;
    for (int i = 0; i < NWORDS; i++) {
        acc += 1.0 / (i + 1) / total;
        int upto = (int)(acc * ZIPF_SLOTS + 0.5);
        if (i == NWORDS - 1) upto = ZIPF_SLOTS;
        while (w < upto && w < ZIPF_SLOTS) zipf_table[w++] = (uint16_t)i;
    }
}

static inline int pick_word(rng *r) { return zipf_table[rng_next(r) >> 48]; }

/* ---- one text, a pure function of its seed ------------------------------ */
enum { F_NONASCII = 1, F_ESCAPES = 2 };

/* Precomposed and decomposed accented vowels (UTF-8). */
static const char *pre_acc[] = {"\xC3\xA9", "\xC3\xA8", "\xC3\xA0", "\xC3\xB6", "\xC3\xBC", "\xC3\xB1", "\xC3\xA7", "\xC3\xAE"};
static const char *dec_acc[] = {"e\xCC\x81", "e\xCC\x80", "a\xCC\x80", "o\xCC\x88", "u\xCC\x88", "n\xCC\x83", "c\xCC\xA7", "i\xCC\x82"};
static const char *esc_bits[] = {"\"quoted\"", "C:\\Users\\bench\\file.txt", "col1\tcol2\tcol3",
                                 "a \\ backslash", "she said \"no\"", "\\n is not a newline", "tab\there"};

static void put_cjk(rng *r, buf *b, int nchars)
{
    for (int i = 0; i < nchars; i++) {
        uint32_t cp = 0x4E00 + rng_below(r, 0x9FA5 - 0x4E00);
        if (rng_below(r, 12) == 0) cp = 0x3002; /* 。 */
        char u[3] = {(char)(0xE0 | (cp >> 12)), (char)(0x80 | ((cp >> 6) & 0x3F)), (char)(0x80 | (cp & 0x3F))};
        buf_put(b, u, 3);
    }
}

/* Appends a word; in non-ASCII texts some words get an accent (precomposed or
 * combining) on their first vowel, or become an emoji / CJK run. */
static void put_word(rng *r, buf *b, int wi, int cap, int nonascii)
{
    const char *w = words[wi]; size_t n = wlen[wi];
    if (nonascii && rng_below(r, 6) == 0) {
        uint32_t k = rng_below(r, 20);
        if (k == 0) { buf_put(b, "\xF0\x9F\x98\x80", 4); return; } /* U+1F600, a surrogate pair in \u form */
        if (k < 3) { put_cjk(r, b, 2 + (int)rng_below(r, 4)); return; }
        const char *v = NULL; size_t at = 0;
        for (size_t i = 0; i < n; i++) if (strchr("aeiou", w[i])) { at = i; v = w + i; break; }
        if (v) {
            uint32_t a = rng_below(r, 8);
            const char *rep = (k & 1) ? dec_acc[a] : pre_acc[a];
            if (cap && at == 0 && (k & 1) == 0) { buf_put(b, "\xC3\x89", 2); } /* É */
            else { if (cap && at > 0) { buf_putc(b, (char)(w[0] - 32)); buf_put(b, w + 1, at - 1); } else buf_put(b, w, at); buf_puts(b, rep); }
            buf_put(b, w + at + 1, n - at - 1);
            return;
        }
    }
    if (cap) { buf_putc(b, (char)(w[0] - 32)); buf_put(b, w + 1, n - 1); }
    else buf_put(b, w, n);
}

static int gen_text(uint64_t seed, buf *b)
{
    rng r; rng_seed(&r, seed);
    b->n = 0;
    int flags = 0;
    uint32_t f = rng_below(&r, 10000);
    if (f < 300) flags |= F_NONASCII;          /* 3% */
    if (f >= 300 && f < 350) flags |= F_ESCAPES; /* 0.5% */
    int cjk_doc = (flags & F_NONASCII) && rng_below(&r, 5) == 0;

    /* log-normal length: median ~2 KB, clamped to [200, 20000] bytes */
    double z = 0;
    for (int i = 0; i < 4; i++) z += rng_unit(&r);
    z = (z - 2.0) * 1.7320508; /* ~N(0,1) */
    double len = 2000.0 * my_exp(0.95 * z);
    if (len < 205) len = 205;
    if (len > 19800) len = 19800; /* overshoot: at most one sentence */
    size_t target = (size_t)len;

    int para_left = 3 + (int)rng_below(&r, 6);
    while (b->n < target) {
        if (cjk_doc && rng_below(&r, 3) == 0) {
            put_cjk(&r, b, 10 + (int)rng_below(&r, 30));
            buf_puts(b, "\xE3\x80\x82");
        } else {
            int nw = 5 + (int)rng_below(&r, 18);
            for (int i = 0; i < nw; i++) {
                if (i) buf_putc(b, ' ');
                put_word(&r, b, pick_word(&r), i == 0, flags & F_NONASCII);
                if (i && i + 1 < nw && rng_below(&r, 12) == 0) buf_putc(b, ',');
                if ((flags & F_ESCAPES) && rng_below(&r, 25) == 0) {
                    buf_putc(b, ' ');
                    buf_puts(b, esc_bits[rng_below(&r, sizeof esc_bits / sizeof *esc_bits)]);
                }
            }
            uint32_t p = rng_below(&r, 10);
            buf_putc(b, p == 0 ? '?' : p == 1 ? '!' : '.');
        }
        if (--para_left == 0) {
            buf_puts(b, "\n\n");
            para_left = 3 + (int)rng_below(&r, 6);
        } else {
            buf_putc(b, ' ');
        }
    }
    /* no trailing whitespace: end on the last sentence */
    while (b->n && (b->p[b->n - 1] == ' ' || b->p[b->n - 1] == '\n')) b->n--;
    return flags;
}

/* ---- JSON string escaping ----------------------------------------------- */
static void put_u16(buf *o, unsigned v)
{
    char t[8];
    snprintf(t, sizeof t, "\\u%04x", v & 0xFFFF);
    buf_put(o, t, 6);
}

/* uescape: write non-ASCII as \uXXXX (surrogate pairs above U+FFFF). */
static void json_string(buf *o, const char *s, size_t n, int uescape)
{
    buf_reserve(o, n + 2);
    buf_putc(o, '"');
    size_t i = 0;
    while (i < n) {
        size_t j = i;
        while (j < n) {
            unsigned char c = (unsigned char)s[j];
            if (c < 0x20 || c == '"' || c == '\\' || (uescape && c >= 0x80)) break;
            j++;
        }
        buf_put(o, s + i, j - i);
        if (j == n) break;
        unsigned char c = (unsigned char)s[j];
        if (c == '"') { buf_put(o, "\\\"", 2); j++; }
        else if (c == '\\') { buf_put(o, "\\\\", 2); j++; }
        else if (c == '\n') { buf_put(o, "\\n", 2); j++; }
        else if (c == '\t') { buf_put(o, "\\t", 2); j++; }
        else if (c == '\r') { buf_put(o, "\\r", 2); j++; }
        else if (c < 0x20) { put_u16(o, c); j++; }
        else { /* non-ASCII, \u form; input is valid UTF-8 by construction */
            uint32_t cp; size_t len;
            if (c < 0xE0) { cp = c & 0x1F; len = 2; }
            else if (c < 0xF0) { cp = c & 0x0F; len = 3; }
            else { cp = c & 0x07; len = 4; }
            for (size_t k = 1; k < len; k++) cp = (cp << 6) | ((unsigned char)s[j + k] & 0x3F);
            if (cp >= 0x10000) { cp -= 0x10000; put_u16(o, 0xD800 | (cp >> 10)); put_u16(o, 0xDC00 | (cp & 0x3FF)); }
            else put_u16(o, cp);
            j += len;
        }
        i = j;
    }
    buf_putc(o, '"');
}

/* ---- zstd stream -------------------------------------------------------- */
static ZSTD_CCtx *cctx;
static FILE *out;
static void *zout;
static size_t zout_cap;
static uint64_t bytes_in, bytes_out;

static void z_write(const char *p, size_t n, ZSTD_EndDirective mode)
{
    ZSTD_inBuffer in = {p, n, 0};
    for (;;) {
        ZSTD_outBuffer ob = {zout, zout_cap, 0};
        size_t rem = ZSTD_compressStream2(cctx, &ob, &in, mode);
        if (ZSTD_isError(rem)) { fprintf(stderr, "gen_corpus: zstd: %s\n", ZSTD_getErrorName(rem)); exit(1); }
        if (ob.pos && fwrite(zout, 1, ob.pos, out) != ob.pos) { fprintf(stderr, "gen_corpus: write: %s\n", strerror(errno)); exit(1); }
        bytes_out += ob.pos;
        if (mode == ZSTD_e_end ? rem == 0 : in.pos == in.size) break;
    }
    bytes_in += n;
}

int main(int argc, char **argv)
{
    if (argc < 2 || argc > 4 || !strcmp(argv[1], "--help")) {
        fprintf(stderr, "usage: gen_corpus OUT.jsonl.zst [TARGET_BYTES (default 1e9)] [SEED]\n");
        return argc < 2 ? 2 : 0;
    }
    uint64_t target = 1000000000ULL, seed = 20240601ULL;
    if (argc > 2) {
        char *e; double v = strtod(argv[2], &e);
        if (*e || v < 1) { fprintf(stderr, "gen_corpus: bad size '%s'\n", argv[2]); return 2; }
        target = (uint64_t)v;
    }
    if (argc > 3) seed = strtoull(argv[3], NULL, 0);

    out = fopen(argv[1], "wb");
    if (!out) { fprintf(stderr, "gen_corpus: %s: %s\n", argv[1], strerror(errno)); return 1; }
    cctx = ZSTD_createCCtx();
    ZSTD_CCtx_setParameter(cctx, ZSTD_c_compressionLevel, 3);
    ZSTD_CCtx_setParameter(cctx, ZSTD_c_nbWorkers, 2); /* ignored when libzstd lacks threads */
    zout_cap = ZSTD_CStreamOutSize();
    zout = malloc(zout_cap);

    build_vocab(seed);
    rng main_r; rng_seed(&main_r, seed);

    size_t seeds_cap = 1 << 16, nuniq = 0;
    uint64_t *seeds = malloc(seeds_cap * sizeof *seeds); /* seed of every unique text */
    buf text = {0}, rec = {0};
    uint64_t docs = 0, dups = 0, nonascii = 0, escapes = 0, uesc = 0;

    while (bytes_in + rec.n < target) {
        uint64_t ts;
        int dup = nuniq > 100 && rng_below(&main_r, 10) == 0;
        if (dup) {
            ts = seeds[rng_below(&main_r, (uint32_t)nuniq)];
        } else {
            ts = splitmix64(&(uint64_t){seed ^ (docs * 0x9E3779B97F4A7C15ULL)});
            if (nuniq == seeds_cap) { seeds_cap *= 2; seeds = realloc(seeds, seeds_cap * sizeof *seeds); }
            seeds[nuniq++] = ts;
        }
        int flags = gen_text(ts, &text);
        int ue = (flags & F_NONASCII) && rng_below(&main_r, 20) == 0;
        docs++; dups += dup;
        nonascii += (flags & F_NONASCII) != 0;
        escapes += (flags & F_ESCAPES) != 0;
        uesc += ue;

        char num[32];
        int nl = snprintf(num, sizeof num, "%llu", (unsigned long long)docs);
        buf_puts(&rec, "{\"id\":\"bench-"); buf_put(&rec, num, (size_t)nl);
        buf_puts(&rec, "\",\"text\":");
        json_string(&rec, text.p, text.n, ue);
        buf_puts(&rec, ",\"url\":\"https://example.org/"); buf_put(&rec, num, (size_t)nl);
        buf_puts(&rec, "\"}\n");
        if (rec.n >= (1 << 20)) { z_write(rec.p, rec.n, ZSTD_e_continue); rec.n = 0; }
    }
    z_write(rec.p, rec.n, ZSTD_e_end);
    if (fclose(out)) { fprintf(stderr, "gen_corpus: close: %s\n", strerror(errno)); return 1; }

    fprintf(stderr, "docs=%llu exact_dups=%llu unique=%llu nonascii_docs=%llu escape_docs=%llu uescape_docs=%llu "
            "bytes=%llu compressed_bytes=%llu\n",
            (unsigned long long)docs, (unsigned long long)dups, (unsigned long long)nuniq,
            (unsigned long long)nonascii, (unsigned long long)escapes, (unsigned long long)uesc,
            (unsigned long long)bytes_in, (unsigned long long)bytes_out);
    ZSTD_freeCCtx(cctx);
    free(zout); free(seeds); free(text.p); free(rec.p);
    return 0;
}
