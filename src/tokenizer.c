/*
 * tokenizer.c - byte-level BPE (tokenizer.h): loading GPT-2 and HF files,
 * building from trained merges, encoding, decoding, writing tokenizer.json.
 *
 * Merges are looked up by token pair (a, b) in an open-addressing table, as
 * HF tokenizers does; for GPT-2 this equals tiktoken's lookup of the merged
 * bytes. A piece is merged with a linear scan when short (the common case:
 * pieces are words) and with a min-heap of (rank, position) with lazy
 * invalidation when long, so a megabyte of one letter stays O(n log n).
 */
#define PCRE2_CODE_UNIT_WIDTH 8
#include "tokenizer.h"

#include <errno.h>
#include <pcre2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <xxhash.h>

#include "fs.h"
#include "json.h"
#include "text.h"

/* ---- GPT-2's byte <-> printable character table -------------------------- */

static int32_t byte_char[256];
static int16_t char_byte[512]; /* code points < 512 cover the table */
static unsigned char rank_byte[256];
static int table_ready;

static void init_tables(void)
{
    if (__atomic_load_n(&table_ready, __ATOMIC_ACQUIRE)) return;
    int n = 0, k = 0;
    for (int b = 0; b < 256; b++) { /* printable Latin-1 first, in byte order */
        int printable = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
        if (printable) { byte_char[b] = b; rank_byte[k++] = (unsigned char)b; }
    }
    for (int b = 0; b < 256; b++) {
        int printable = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
        if (!printable) { byte_char[b] = 256 + n++; rank_byte[k++] = (unsigned char)b; }
    }
    for (int c = 0; c < 512; c++) char_byte[c] = -1;
    for (int b = 0; b < 256; b++) char_byte[byte_char[b]] = (int16_t)b;
    __atomic_store_n(&table_ready, 1, __ATOMIC_RELEASE);
}

int32_t wn_bpe_byte_to_char(unsigned char b) { init_tables(); return byte_char[b]; }
int wn_bpe_char_to_byte(int32_t c) { init_tables(); return c >= 0 && c < 512 ? char_byte[c] : -1; }
unsigned char wn_bpe_byte_of_rank(int i) { init_tables(); return rank_byte[i & 255]; }

/* ---- patterns ------------------------------------------------------------- */

static const char *const pattern_gpt2 =
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";
static const char *const pattern_cl100k =
    "'(?i:[sdmt]|ll|ve|re)|[^\\r\\n\\p{L}\\p{N}]?+\\p{L}++|\\p{N}{1,3}+| ?[^\\s\\p{L}\\p{N}]++[\\r\\n]*+|"
    "\\s++$|\\s*[\\r\\n]|\\s+(?!\\S)|\\s";

/* The same, as written into tokenizer.json: Oniguruma (HF tokenizers) reads
 * `{1,3}+` as "one or more runs of 1-3", not as a possessive {1,3}, so the
 * digit rule is written without the +; both mean the same match here, since
 * nothing follows the digits inside that alternative. */
static const char *const pattern_cl100k_hf =
    "'(?i:[sdmt]|ll|ve|re)|[^\\r\\n\\p{L}\\p{N}]?+\\p{L}++|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]++[\\r\\n]*+|"
    "\\s++$|\\s*[\\r\\n]|\\s+(?!\\S)|\\s";

/* Unicode White_Space, which is what \s means to Rust's regex and to
 * Oniguruma; PCRE2's \s under UCP leaves out U+0085. */
static const char ws_class[] =
    "\\t\\n\\x{0b}\\f\\r \\x{85}\\x{a0}\\x{1680}\\x{2000}-\\x{200a}\\x{2028}\\x{2029}\\x{202f}\\x{205f}\\x{3000}";

const char *wn_pretok_name(wn_pretok p)
{
    return p == WN_PRETOK_GPT2 ? "gpt2" : p == WN_PRETOK_CL100K ? "cl100k" : "custom";
}

int wn_pretok_from_name(const char *name, wn_pretok *p)
{
    if (!strcmp(name, "gpt2")) { *p = WN_PRETOK_GPT2; return 0; }
    if (!strcmp(name, "cl100k")) { *p = WN_PRETOK_CL100K; return 0; }
    return -1;
}

/* Rewrites \s and \S as White_Space classes; `$` stays end-of-text through
 * PCRE2_DOLLAR_ENDONLY. */
static wn_err translate_pattern(const char *pat, wn_buf *out)
{
    int in_class = 0;
    for (const char *p = pat; *p; p++) {
        if (*p == '\\' && p[1]) {
            if (p[1] == 's') {
                if (in_class) wn_buf_puts(out, ws_class);
                else { wn_buf_putc(out, '['); wn_buf_puts(out, ws_class); wn_buf_putc(out, ']'); }
            } else if (p[1] == 'S' && !in_class) {
                wn_buf_puts(out, "[^");
                wn_buf_puts(out, ws_class);
                wn_buf_putc(out, ']');
            } else {
                wn_buf_append(out, p, 2);
            }
            p++;
            continue;
        }
        if (*p == '[' && !in_class) {
            in_class = 1;
            wn_buf_putc(out, '[');
            if (p[1] == '^') { wn_buf_putc(out, '^'); p++; }
            if (p[1] == ']') { wn_buf_putc(out, ']'); p++; } /* a literal ] first in a class */
            continue;
        }
        if (*p == ']' && in_class) in_class = 0;
        wn_buf_putc(out, *p);
    }
    return out->p ? WN_OK : WN_ERR_NOMEM;
}

/* ---- the tokenizer -------------------------------------------------------- */

typedef struct {
    uint64_t *h;
    uint32_t *id;
    size_t cap;
} str_index;

struct wn_tokenizer {
    wn_pretok pretok;
    char *pattern; /* as written in tokenizer.json */
    pcre2_code *re;
    uint32_t n_vocab;
    wn_buf blob;        /* token bytes */
    uint64_t *tok_off;  /* n_vocab */
    uint32_t *tok_len;  /* n_vocab; UINT32_MAX = no such id */
    uint32_t byte_id[256];
    /* merges by pair: one 16-byte entry per slot, so a lookup touches one
     * cache line; rank UINT32_MAX marks an empty slot */
    struct merge_slot { uint64_t key; uint32_t rank, id; } *mslot;
    size_t mcap;
    wn_bpe_merge *merges; /* in rank order */
    size_t n_merges;
    uint32_t *special_id;
    int n_specials;
    uint64_t hash;
    str_index index;     /* token bytes -> id */
    uint8_t *whole;      /* per id: 0 unknown, 1 merging its bytes gives the token itself, 2 not */
};

/* Per-thread cache of pieces' ids: words repeat, so most pieces skip the
 * merge loop. Direct-mapped, one 64-byte line per entry, 1 MiB in all so it
 * stays in L2/L3 (a larger one measured slower: its own misses cost what it
 * saves); a new piece replaces whatever shared its slot. Exact: a hit
 * returns what the merge loop returned for the same bytes. */
enum { CACHE_SLOTS = 1 << 14, CACHE_PIECE = 22, CACHE_IDS = 8 };
typedef struct {
    uint64_t h;
    uint8_t len, n_ids;
    char bytes[CACHE_PIECE];
    uint32_t ids[CACHE_IDS];
} cache_slot;
_Static_assert(sizeof(cache_slot) == 64, "one cache line per entry");

struct wn_tok_ctx {
    const wn_tokenizer *t;
    pcre2_match_data *md;
    cache_slot *slots;
    uint32_t *ids, *ranks, *prev, *next;
    size_t cap;
    struct heap_item { uint32_t rank, pos; } *heap;
    size_t heap_cap;
};

/* bytes -> id: resolves merges given as token strings while loading, and
 * finds pieces that are whole tokens while encoding. */

static uint64_t bytes_hash(const char *p, size_t n) { return XXH3_64bits(p, n) | 1; }

static wn_err index_build(str_index *x, const struct wn_tokenizer *t)
{
    size_t cap = 16;
    while (cap < (size_t)t->n_vocab * 2 + 2) cap *= 2;
    x->h = wn_calloc(cap, sizeof *x->h);
    x->id = wn_calloc(cap, sizeof *x->id);
    if (!x->h || !x->id) return WN_ERR_NOMEM;
    x->cap = cap;
    for (uint32_t i = 0; i < t->n_vocab; i++) {
        if (t->tok_len[i] == UINT32_MAX) continue;
        uint64_t h = bytes_hash(t->blob.p + t->tok_off[i], t->tok_len[i]);
        size_t k = (size_t)h & (cap - 1);
        while (x->h[k]) k = (k + 1) & (cap - 1);
        x->h[k] = h;
        x->id[k] = i;
    }
    return WN_OK;
}

static int64_t index_find(const str_index *x, const struct wn_tokenizer *t, const char *p, size_t n)
{
    uint64_t h = bytes_hash(p, n);
    for (size_t k = (size_t)h & (x->cap - 1); x->h[k]; k = (k + 1) & (x->cap - 1))
        if (x->h[k] == h && t->tok_len[x->id[k]] == n && !memcmp(t->blob.p + t->tok_off[x->id[k]], p, n))
            return x->id[k];
    return -1;
}

static void index_free(str_index *x)
{
    wn_free(x->h);
    wn_free(x->id);
}

static inline uint64_t pair_key(uint32_t a, uint32_t b) { return (uint64_t)a << 32 | b; }
static inline size_t pair_slot(uint64_t k, size_t mask) { return (size_t)((k * 0x9E3779B97F4A7C15ull) >> 20) & mask; }

/* The slot of pair (a, b): its merge, or an empty slot (rank UINT32_MAX). */
static inline const struct merge_slot *merge_find(const wn_tokenizer *t, uint32_t a, uint32_t b)
{
    uint64_t k = pair_key(a, b);
    size_t mask = t->mcap - 1;
    for (size_t i = pair_slot(k, mask);; i = (i + 1) & mask) {
        const struct merge_slot *m = &t->mslot[i];
        if (m->key == k || m->rank == UINT32_MAX) return m;
    }
}

static wn_err merges_index(wn_tokenizer *t)
{
    size_t cap = 16;
    while (cap < t->n_merges * 2 + 2) cap *= 2;
    t->mslot = wn_malloc(cap * sizeof *t->mslot);
    if (!t->mslot) return WN_ERR_NOMEM;
    for (size_t i = 0; i < cap; i++) t->mslot[i] = (struct merge_slot){UINT64_MAX, UINT32_MAX, 0};
    t->mcap = cap;
    for (size_t m = 0; m < t->n_merges; m++) {
        uint64_t k = pair_key(t->merges[m].a, t->merges[m].b);
        size_t i = pair_slot(k, cap - 1);
        while (t->mslot[i].rank != UINT32_MAX && t->mslot[i].key != k) i = (i + 1) & (cap - 1);
        if (t->mslot[i].rank != UINT32_MAX) continue; /* a duplicate merge: the first (lowest rank) wins */
        t->mslot[i] = (struct merge_slot){k, (uint32_t)m, t->merges[m].id};
    }
    return WN_OK;
}

void wn_tokenizer_free(wn_tokenizer *t)
{
    if (!t) return;
    pcre2_code_free(t->re);
    wn_free(t->pattern);
    wn_buf_free(&t->blob);
    wn_free(t->tok_off);
    wn_free(t->tok_len);
    wn_free(t->mslot);
    wn_free(t->merges);
    wn_free(t->special_id);
    index_free(&t->index);
    wn_free(t->whole);
    wn_free(t);
}

static wn_err set_pattern(wn_tokenizer *t, wn_pretok pretok, const char *pattern, wn_errbuf *err)
{
    t->pretok = pretok;
    const char *pat = pretok == WN_PRETOK_GPT2 ? pattern_gpt2 : pretok == WN_PRETOK_CL100K ? pattern_cl100k : pattern;
    if (!pat) return wn_fail(err, WN_ERR_USAGE, "a custom pre-tokenization needs a pattern");
    if (pretok == WN_PRETOK_CUSTOM) { /* a known pattern gets its name */
        if (!strcmp(pat, pattern_gpt2)) t->pretok = WN_PRETOK_GPT2;
        else if (!strcmp(pat, pattern_cl100k) || !strcmp(pat, pattern_cl100k_hf)) {
            t->pretok = WN_PRETOK_CL100K;
            pat = pattern_cl100k;
        } else if (strstr(pat, "}+")) {
            return wn_fail(err, WN_ERR_INPUT, "pre-tokenization pattern uses `{n,m}+`, which Oniguruma (HF "
                           "tokenizers) and PCRE2 read differently; write it without the +");
        }
    }
    t->pattern = wn_strdup(pat);
    wn_buf tr = {0};
    if (!t->pattern || translate_pattern(pat, &tr)) { wn_buf_free(&tr); return WN_ERR_NOMEM; }
    int code;
    PCRE2_SIZE off;
    t->re = pcre2_compile((PCRE2_SPTR)tr.p, tr.len, PCRE2_UTF | PCRE2_UCP | PCRE2_MATCH_INVALID_UTF |
                          PCRE2_DOLLAR_ENDONLY, &code, &off, NULL);
    wn_buf_free(&tr);
    if (!t->re) {
        PCRE2_UCHAR msg[256];
        pcre2_get_error_message(code, msg, sizeof msg);
        return wn_fail(err, WN_ERR_INPUT, "pre-tokenization pattern: %s at offset %zu", (char *)msg, (size_t)off);
    }
    pcre2_jit_compile(t->re, PCRE2_JIT_COMPLETE); /* falls back to the interpreter if JIT is unavailable */
    return WN_OK;
}

/* Grows the vocabulary to hold id; new ids are absent until set. */
static wn_err vocab_reserve(wn_tokenizer *t, uint32_t id)
{
    if (id < t->n_vocab) return WN_OK;
    uint32_t n = id + 1;
    uint64_t *off = wn_realloc(t->tok_off, n * sizeof *off);
    if (!off) return WN_ERR_NOMEM;
    t->tok_off = off;
    uint32_t *len = wn_realloc(t->tok_len, n * sizeof *len);
    if (!len) return WN_ERR_NOMEM;
    t->tok_len = len;
    for (uint32_t i = t->n_vocab; i < n; i++) { off[i] = 0; len[i] = UINT32_MAX; }
    t->n_vocab = n;
    return WN_OK;
}

static wn_err vocab_set(wn_tokenizer *t, uint32_t id, const char *bytes, size_t n)
{
    if (vocab_reserve(t, id)) return WN_ERR_NOMEM;
    t->tok_off[id] = t->blob.len;
    t->tok_len[id] = (uint32_t)n;
    return wn_buf_append(&t->blob, bytes, n);
}

static void compute_hash(wn_tokenizer *t)
{
    XXH3_state_t *s = XXH3_createState();
    if (!s) return;
    XXH3_64bits_reset(s);
    XXH3_64bits_update(s, t->pattern, strlen(t->pattern));
    for (uint32_t i = 0; i < t->n_vocab; i++) {
        uint32_t len = t->tok_len[i];
        XXH3_64bits_update(s, &len, sizeof len);
        if (len != UINT32_MAX) XXH3_64bits_update(s, t->blob.p + t->tok_off[i], len);
    }
    for (size_t m = 0; m < t->n_merges; m++) XXH3_64bits_update(s, &t->merges[m], sizeof t->merges[m]);
    for (int i = 0; i < t->n_specials; i++) XXH3_64bits_update(s, &t->special_id[i], sizeof(uint32_t));
    t->hash = XXH3_64bits_digest(s);
    XXH3_freeState(s);
}

/* Checks and indexes a tokenizer whose vocabulary and merges are set. */
static wn_err finalize(wn_tokenizer *t, const char *what, wn_errbuf *err)
{
    for (int b = 0; b < 256; b++) {
        t->byte_id[b] = UINT32_MAX;
    }
    for (uint32_t i = 0; i < t->n_vocab; i++)
        if (t->tok_len[i] == 1) {
            unsigned char b = (unsigned char)t->blob.p[t->tok_off[i]];
            int special = 0;
            for (int k = 0; k < t->n_specials; k++) special |= t->special_id[k] == i;
            if (!special && t->byte_id[b] == UINT32_MAX) t->byte_id[b] = i;
        }
    for (int b = 0; b < 256; b++)
        if (t->byte_id[b] == UINT32_MAX)
            return wn_fail(err, WN_ERR_INPUT, "%s: not a byte-level vocabulary: byte 0x%02x has no token", what, b);
    for (size_t m = 0; m < t->n_merges; m++) {
        const wn_bpe_merge *g = &t->merges[m];
        if (g->a >= t->n_vocab || g->b >= t->n_vocab || g->id >= t->n_vocab || t->tok_len[g->id] == UINT32_MAX)
            return wn_fail(err, WN_ERR_INPUT, "%s: merge %zu refers to a token that does not exist", what, m);
    }
    if (merges_index(t) || index_build(&t->index, t) || !(t->whole = wn_calloc(t->n_vocab, 1)))
        return WN_ERR_NOMEM;
    for (int k = 0; k < t->n_specials; k++) t->whole[t->special_id[k]] = 2; /* never from text */
    compute_hash(t);
    return WN_OK;
}

wn_err wn_tokenizer_build(wn_tokenizer **out, wn_pretok pretok, const char *pattern, const uint32_t (*pairs)[2],
                          size_t n_merges, const char *const *specials, int n_specials, wn_errbuf *err)
{
    init_tables();
    *out = NULL;
    wn_tokenizer *t = wn_calloc(1, sizeof *t);
    if (!t) return WN_ERR_NOMEM;
    wn_err e = set_pattern(t, pretok, pattern, err);
    for (int i = 0; !e && i < 256; i++) {
        char b = (char)rank_byte[i];
        e = vocab_set(t, (uint32_t)i, &b, 1);
    }
    if (!e && n_merges && !(t->merges = wn_calloc(n_merges, sizeof *t->merges))) e = WN_ERR_NOMEM;
    for (size_t m = 0; !e && m < n_merges; m++) {
        uint32_t a = pairs[m][0], b = pairs[m][1], id = 256 + (uint32_t)m;
        if (a >= id || b >= id) {
            e = wn_fail(err, WN_ERR_INPUT, "merge %zu uses a token made later", m);
            break;
        }
        wn_buf tmp = {0};
        wn_buf_append(&tmp, t->blob.p + t->tok_off[a], t->tok_len[a]);
        wn_buf_append(&tmp, t->blob.p + t->tok_off[b], t->tok_len[b]);
        e = tmp.p ? vocab_set(t, id, tmp.p, tmp.len) : WN_ERR_NOMEM;
        wn_buf_free(&tmp);
        t->merges[m] = (wn_bpe_merge){a, b, id, (uint32_t)m};
        t->n_merges++;
    }
    if (!e && n_specials && !(t->special_id = wn_calloc((size_t)n_specials, sizeof *t->special_id))) e = WN_ERR_NOMEM;
    for (int i = 0; !e && i < n_specials; i++) {
        uint32_t id = 256 + (uint32_t)n_merges + (uint32_t)i;
        e = vocab_set(t, id, specials[i], strlen(specials[i]));
        t->special_id[t->n_specials++] = id;
    }
    if (!e) e = finalize(t, "trained tokenizer", err);
    if (e) {
        if (e == WN_ERR_NOMEM) wn_fail(err, e, "out of memory building a tokenizer");
        wn_tokenizer_free(t);
        return e;
    }
    *out = t;
    return WN_OK;
}

/* ---- loading -------------------------------------------------------------- */

/* A printable-form token string (JSON-decoded) to its bytes. */
static int unprintable(const char *s, size_t n, wn_buf *out)
{
    wn_buf_clear(out);
    for (size_t i = 0; i < n;) {
        int32_t c = wn_utf8_next(s, n, &i);
        int b = wn_bpe_char_to_byte(c);
        if (b < 0) return -1;
        wn_buf_putc(out, (char)b);
    }
    if (!out->p) wn_buf_reserve(out, 0);
    return 0;
}

/* Reads a vocabulary object {"token": id, ...}. */
static wn_err load_vocab(wn_tokenizer *t, wn_span vocab, const char *path, wn_errbuf *err)
{
    wn_json_iter it;
    wn_span k, v;
    wn_buf key = {0}, bytes = {0};
    wn_err e = WN_OK;
    wn_json_iter_init(&it, vocab.p, vocab.n);
    while (!e && wn_json_iter_next(&it, &k, &v)) {
        int64_t id;
        wn_buf_clear(&key);
        if (wn_json_decode_string(k, &key) || !wn_json_to_i64(v, &id) || id < 0 || id > 16777216) {
            e = wn_fail(err, WN_ERR_INPUT, "%s: vocabulary entry %.*s is not \"token\": id", path,
                        (int)(k.n > 40 ? 40 : k.n), k.p);
            break;
        }
        if (unprintable(key.p ? key.p : "", key.len, &bytes)) {
            e = wn_fail(err, WN_ERR_INPUT, "%s: token %s is not in GPT-2's byte-level alphabet "
                        "(only byte-level BPE is supported)", path, key.p);
            break;
        }
        if ((uint64_t)id < t->n_vocab && t->tok_len[id] != UINT32_MAX) {
            e = wn_fail(err, WN_ERR_INPUT, "%s: id %lld is used twice", path, (long long)id);
            break;
        }
        e = vocab_set(t, (uint32_t)id, bytes.p, bytes.len);
    }
    wn_buf_free(&key);
    wn_buf_free(&bytes);
    return e;
}

/* Appends a merge given as two printable token strings. */
static wn_err add_merge(wn_tokenizer *t, const str_index *x, const char *a, size_t an, const char *b, size_t bn,
                        size_t rank, const char *path, wn_errbuf *err)
{
    wn_buf ba = {0}, bb = {0}, ab = {0};
    wn_err e = WN_OK;
    if (unprintable(a, an, &ba) || unprintable(b, bn, &bb)) {
        e = wn_fail(err, WN_ERR_INPUT, "%s: merge %zu has a token outside the byte-level alphabet", path, rank);
        goto done;
    }
    wn_buf_append(&ab, ba.p, ba.len);
    wn_buf_append(&ab, bb.p, bb.len);
    int64_t ia = index_find(x, t, ba.p, ba.len), ib = index_find(x, t, bb.p, bb.len),
            iab = index_find(x, t, ab.p, ab.len);
    if (ia < 0 || ib < 0 || iab < 0) {
        e = wn_fail(err, WN_ERR_INPUT, "%s: merge %zu (%.*s %.*s) uses or makes a token not in the vocabulary",
                    path, rank, (int)an, a, (int)bn, b);
        goto done;
    }
    t->merges[t->n_merges] = (wn_bpe_merge){(uint32_t)ia, (uint32_t)ib, (uint32_t)iab, (uint32_t)rank};
    t->n_merges++;
done:
    wn_buf_free(&ba);
    wn_buf_free(&bb);
    wn_buf_free(&ab);
    return e;
}

static wn_err parse_json_file(const char *path, wn_buf *j, wn_errbuf *err)
{
    wn_err e = wn_read_file(path, j, err);
    if (e) return e;
    size_t off;
    const char *why;
    if (wn_json_check_object(j->p, j->len, &off, &why))
        return wn_fail(err, WN_ERR_INPUT, "%s: not a JSON object: %s at byte %zu", path, why, off);
    return WN_OK;
}

static wn_err load_gpt2(wn_tokenizer *t, const char *dir, wn_errbuf *err)
{
    char enc[4200], bpe[4200];
    snprintf(enc, sizeof enc, "%s/encoder.json", dir);
    snprintf(bpe, sizeof bpe, "%s/vocab.bpe", dir);
    wn_buf j = {0}, lines = {0};
    str_index x = {0};
    wn_err e = parse_json_file(enc, &j, err);
    if (!e) e = load_vocab(t, (wn_span){j.p, j.len}, enc, err);
    if (!e) e = wn_read_file(bpe, &lines, err);
    if (!e) e = set_pattern(t, WN_PRETOK_GPT2, NULL, err);
    if (!e) e = index_build(&x, t);
    size_t n_lines = 0;
    for (size_t i = 0; !e && i < lines.len; i++) n_lines += lines.p[i] == '\n';
    if (!e && !(t->merges = wn_calloc(n_lines + 1, sizeof *t->merges))) e = WN_ERR_NOMEM;
    const char *p = lines.p, *end = lines.p + lines.len;
    size_t rank = 0, line_no = 0;
    while (!e && p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *le = nl ? nl : end;
        line_no++;
        size_t n = (size_t)(le - p);
        if (n && p[n - 1] == '\r') n--;
        if (n && !(line_no == 1 && !strncmp(p, "#version", 8))) {
            const char *sp = memchr(p, ' ', n);
            if (!sp) e = wn_fail(err, WN_ERR_INPUT, "%s:%zu: expected \"a b\"", bpe, line_no);
            else e = add_merge(t, &x, p, (size_t)(sp - p), sp + 1, n - (size_t)(sp - p) - 1, rank++, bpe, err);
        }
        p = le + 1;
    }
    /* GPT-2's special token */
    if (!e) {
        wn_span v;
        if (wn_json_get(j.p, j.len, "<|endoftext|>", &v)) {
            int64_t id;
            wn_json_to_i64(v, &id);
            t->special_id = wn_malloc(sizeof *t->special_id);
            if (!t->special_id) e = WN_ERR_NOMEM;
            else { t->special_id[0] = (uint32_t)id; t->n_specials = 1; }
            /* its bytes: the literal text, not the byte-level reading */
            if (!e) e = vocab_set(t, (uint32_t)id, "<|endoftext|>", 13);
        }
    }
    index_free(&x);
    wn_buf_free(&j);
    wn_buf_free(&lines);
    return e;
}

static int json_is(wn_span v, const char *lit) { return v.n == strlen(lit) && !memcmp(v.p, lit, v.n); }

static wn_err unsupported(wn_errbuf *err, const char *path, const char *what)
{
    return wn_fail(err, WN_ERR_INPUT, "%s: unsupported tokenizer.json: %s (winnow reads byte-level BPE)", path, what);
}

/* Pre-tokenizer: ByteLevel(use_regex) = GPT-2's pattern, or a Sequence of
 * Split(Regex, Isolated) + ByteLevel(use_regex false). */
static wn_err load_pretokenizer(wn_tokenizer *t, wn_span pt, const char *path, wn_errbuf *err)
{
    wn_span type, v, list, item;
    if (!wn_json_get(pt.p, pt.n, "type", &type)) return unsupported(err, path, "pre_tokenizer without a type");
    if (json_is(type, "\"ByteLevel\"")) {
        if (wn_json_get(pt.p, pt.n, "add_prefix_space", &v) && json_is(v, "true"))
            return unsupported(err, path, "ByteLevel add_prefix_space: true");
        if (wn_json_get(pt.p, pt.n, "use_regex", &v) && json_is(v, "false"))
            return unsupported(err, path, "ByteLevel without a splitting regex");
        return set_pattern(t, WN_PRETOK_GPT2, NULL, err);
    }
    if (!json_is(type, "\"Sequence\"") || !wn_json_get(pt.p, pt.n, "pretokenizers", &list))
        return unsupported(err, path, "pre_tokenizer type");
    wn_json_iter it;
    wn_buf pattern = {0};
    int n = 0, byte_level = 0;
    wn_err e = WN_OK;
    wn_json_items_init(&it, list.p, list.n);
    while (!e && wn_json_items_next(&it, &item)) {
        n++;
        if (!wn_json_get(item.p, item.n, "type", &type)) { e = unsupported(err, path, "pre_tokenizer item"); break; }
        if (json_is(type, "\"Split\"")) {
            wn_span pat, rx, beh;
            if (pattern.len || !wn_json_get(item.p, item.n, "pattern", &pat) ||
                !wn_json_get(pat.p, pat.n, "Regex", &rx) || wn_json_decode_string(rx, &pattern) ||
                !wn_json_get(item.p, item.n, "behavior", &beh) || !json_is(beh, "\"Isolated\"") ||
                (wn_json_get(item.p, item.n, "invert", &v) && json_is(v, "true")))
                e = unsupported(err, path, "Split other than one Regex with behavior Isolated");
        } else if (json_is(type, "\"ByteLevel\"")) {
            byte_level = 1;
            if (wn_json_get(item.p, item.n, "add_prefix_space", &v) && json_is(v, "true"))
                e = unsupported(err, path, "ByteLevel add_prefix_space: true");
            else if (!(wn_json_get(item.p, item.n, "use_regex", &v) && json_is(v, "false")))
                e = unsupported(err, path, "Split followed by a ByteLevel that splits again");
        } else {
            e = unsupported(err, path, "pre_tokenizer in a Sequence other than Split and ByteLevel");
        }
    }
    if (!e && (!pattern.len || !byte_level || n != 2)) e = unsupported(err, path, "pre_tokenizer Sequence shape");
    if (!e) e = set_pattern(t, WN_PRETOK_CUSTOM, pattern.p, err);
    wn_buf_free(&pattern);
    return e;
}

static wn_err load_hf(wn_tokenizer *t, const char *path, wn_errbuf *err)
{
    wn_buf j = {0}, a = {0};
    str_index x = {0};
    wn_span model, v, vocab, merges, item, added = {0}, pt;
    wn_err e = parse_json_file(path, &j, err);
    if (e) goto done;
    if (!wn_json_get(j.p, j.len, "model", &model) || !wn_json_get(model.p, model.n, "type", &v) ||
        !json_is(v, "\"BPE\"")) { e = unsupported(err, path, "model is not BPE"); goto done; }
    if (wn_json_get(j.p, j.len, "normalizer", &v) && !json_is(v, "null")) { e = unsupported(err, path, "a normalizer"); goto done; }
    if ((wn_json_get(model.p, model.n, "byte_fallback", &v) && json_is(v, "true")) ||
        (wn_json_get(model.p, model.n, "ignore_merges", &v) && json_is(v, "true")) ||
        (wn_json_get(model.p, model.n, "continuing_subword_prefix", &v) && !json_is(v, "null") && !json_is(v, "\"\"")) ||
        (wn_json_get(model.p, model.n, "end_of_word_suffix", &v) && !json_is(v, "null") && !json_is(v, "\"\""))) {
        e = unsupported(err, path, "byte_fallback, ignore_merges or subword affixes");
        goto done;
    }
    if (!wn_json_get(j.p, j.len, "pre_tokenizer", &pt) || json_is(pt, "null")) {
        e = unsupported(err, path, "no pre_tokenizer");
        goto done;
    }
    if ((e = load_pretokenizer(t, pt, path, err))) goto done;
    if (!wn_json_get(model.p, model.n, "vocab", &vocab) || !wn_json_get(model.p, model.n, "merges", &merges)) {
        e = unsupported(err, path, "model without vocab or merges");
        goto done;
    }
    /* added tokens first: their ids must not be read as byte-level text */
    if (wn_json_get(j.p, j.len, "added_tokens", &added)) {
        wn_json_iter it;
        wn_json_items_init(&it, added.p, added.n);
        while (!e && wn_json_items_next(&it, &item)) {
            wn_span id, content;
            int64_t n;
            if (!wn_json_get(item.p, item.n, "id", &id) || !wn_json_to_i64(id, &n) || n < 0 ||
                !wn_json_get(item.p, item.n, "content", &content)) {
                e = unsupported(err, path, "added token without id and content");
                break;
            }
            uint32_t *s = wn_realloc(t->special_id, (size_t)(t->n_specials + 1) * sizeof *s);
            if (!s) { e = WN_ERR_NOMEM; break; }
            t->special_id = s;
            s[t->n_specials++] = (uint32_t)n;
        }
    }
    /* the vocabulary, minus entries that are added tokens */
    {
        wn_json_iter it;
        wn_span k, val;
        wn_buf key = {0}, bytes = {0};
        wn_json_iter_init(&it, vocab.p, vocab.n);
        while (!e && wn_json_iter_next(&it, &k, &val)) {
            int64_t id;
            wn_buf_clear(&key);
            if (wn_json_decode_string(k, &key) || !wn_json_to_i64(val, &id) || id < 0 || id > 16777216) {
                e = wn_fail(err, WN_ERR_INPUT, "%s: vocabulary entry is not \"token\": id", path);
                break;
            }
            int special = 0;
            for (int i = 0; i < t->n_specials; i++) special |= t->special_id[i] == (uint32_t)id;
            if (special) continue;
            if (unprintable(key.p ? key.p : "", key.len, &bytes)) {
                e = wn_fail(err, WN_ERR_INPUT, "%s: token %s is not in GPT-2's byte-level alphabet", path, key.p);
                break;
            }
            e = vocab_set(t, (uint32_t)id, bytes.p, bytes.len);
        }
        wn_buf_free(&key);
        wn_buf_free(&bytes);
    }
    if (!e && added.p) { /* the added tokens' texts */
        wn_json_iter it;
        int i = 0;
        wn_json_items_init(&it, added.p, added.n);
        while (!e && added.p && wn_json_items_next(&it, &item)) {
            wn_span content;
            wn_json_get(item.p, item.n, "content", &content);
            wn_buf_clear(&a);
            if (wn_json_decode_string(content, &a)) { e = unsupported(err, path, "added token content"); break; }
            e = vocab_set(t, t->special_id[i++], a.p ? a.p : "", a.len);
        }
    }
    if (!e) e = index_build(&x, t);
    if (!e) {
        wn_json_iter it;
        size_t n = 0;
        wn_json_items_init(&it, merges.p, merges.n);
        while (wn_json_items_next(&it, &item)) n++;
        if (!(t->merges = wn_calloc(n + 1, sizeof *t->merges))) e = WN_ERR_NOMEM;
        wn_json_items_init(&it, merges.p, merges.n);
        for (size_t rank = 0; !e && wn_json_items_next(&it, &item); rank++) {
            wn_buf_clear(&a);
            if (item.p[0] == '"') { /* "a b" */
                if (wn_json_decode_string(item, &a)) { e = unsupported(err, path, "merge entry"); break; }
                const char *sp = a.p ? memchr(a.p, ' ', a.len) : NULL;
                if (!sp) { e = wn_fail(err, WN_ERR_INPUT, "%s: merge %zu is not \"a b\"", path, rank); break; }
                e = add_merge(t, &x, a.p, (size_t)(sp - a.p), sp + 1, a.len - (size_t)(sp - a.p) - 1, rank, path, err);
            } else { /* ["a", "b"] */
                wn_json_iter it2;
                wn_span s1, s2;
                wn_buf b2 = {0};
                wn_json_items_init(&it2, item.p, item.n);
                if (!wn_json_items_next(&it2, &s1) || !wn_json_items_next(&it2, &s2) ||
                    wn_json_decode_string(s1, &a) || wn_json_decode_string(s2, &b2)) {
                    wn_buf_free(&b2);
                    e = unsupported(err, path, "merge entry");
                    break;
                }
                e = add_merge(t, &x, a.p ? a.p : "", a.len, b2.p ? b2.p : "", b2.len, rank, path, err);
                wn_buf_free(&b2);
            }
        }
    }
done:
    index_free(&x);
    wn_buf_free(&j);
    wn_buf_free(&a);
    return e;
}

wn_err wn_tokenizer_load(wn_tokenizer **out, const char *path, wn_errbuf *err)
{
    init_tables();
    *out = NULL;
    wn_tokenizer *t = wn_calloc(1, sizeof *t);
    if (!t) return WN_ERR_NOMEM;
    struct stat sb;
    wn_err e;
    if (stat(path, &sb)) e = wn_fail(err, WN_ERR_IO, "%s: cannot open tokenizer: %s", path, strerror(errno));
    else if (S_ISDIR(sb.st_mode)) e = load_gpt2(t, path, err);
    else e = load_hf(t, path, err);
    if (!e) e = finalize(t, path, err);
    if (e) {
        if (e == WN_ERR_NOMEM) wn_fail(err, e, "%s: out of memory loading the tokenizer", path);
        wn_tokenizer_free(t);
        return e;
    }
    *out = t;
    return WN_OK;
}

/* ---- accessors ------------------------------------------------------------ */

int wn_tokenizer_vocab_size(const wn_tokenizer *t) { return (int)t->n_vocab; }
uint64_t wn_tokenizer_hash(const wn_tokenizer *t) { return t->hash; }
wn_pretok wn_tokenizer_pretok(const wn_tokenizer *t) { return t->pretok; }
uint32_t wn_tokenizer_byte_id(const wn_tokenizer *t, unsigned char b) { return t->byte_id[b]; }

wn_span wn_tokenizer_token(const wn_tokenizer *t, uint32_t id)
{
    if (id >= t->n_vocab || t->tok_len[id] == UINT32_MAX) return (wn_span){NULL, 0};
    return (wn_span){t->blob.p + t->tok_off[id], t->tok_len[id]};
}

int64_t wn_tokenizer_special(const wn_tokenizer *t, const char *text)
{
    size_t n = strlen(text);
    for (int i = 0; i < t->n_specials; i++) {
        wn_span s = wn_tokenizer_token(t, t->special_id[i]);
        if (s.n == n && !memcmp(s.p, text, n)) return t->special_id[i];
    }
    return -1;
}

/* ---- encoding ------------------------------------------------------------- */

wn_tok_ctx *wn_tok_ctx_new(const wn_tokenizer *t)
{
    wn_tok_ctx *c = wn_calloc(1, sizeof *c);
    if (!c) return NULL;
    c->t = t;
    c->md = pcre2_match_data_create_from_pattern(t->re, NULL);
    if (!c->md) { wn_free(c); return NULL; }
    return c;
}

void wn_tok_ctx_free(wn_tok_ctx *c)
{
    if (!c) return;
    pcre2_match_data_free(c->md);
    wn_free(c->slots);
    wn_free(c->ids);
    wn_free(c->ranks);
    wn_free(c->prev);
    wn_free(c->next);
    wn_free(c->heap);
    wn_free(c);
}

static wn_err scratch(wn_tok_ctx *c, size_t n)
{
    if (n <= c->cap) return WN_OK;
    size_t cap = n + n / 2 + 64;
    uint32_t *p;
    if (!(p = wn_realloc(c->ids, cap * sizeof *p))) return WN_ERR_NOMEM;
    c->ids = p;
    if (!(p = wn_realloc(c->ranks, cap * sizeof *p))) return WN_ERR_NOMEM;
    c->ranks = p;
    if (!(p = wn_realloc(c->prev, cap * sizeof *p))) return WN_ERR_NOMEM;
    c->prev = p;
    if (!(p = wn_realloc(c->next, cap * sizeof *p))) return WN_ERR_NOMEM;
    c->next = p;
    c->cap = cap;
    return WN_OK;
}

static inline uint32_t rank_of(const wn_tokenizer *t, uint32_t a, uint32_t b)
{
    return merge_find(t, a, b)->rank;
}

/* Short pieces: repeatedly merge the leftmost lowest-rank pair. ranks[i]
 * and made[i] describe the pair (ids[i], ids[i + 1]). */
static wn_err bpe_linear(wn_tok_ctx *c, size_t n, wn_ids *out)
{
    const wn_tokenizer *t = c->t;
    uint32_t *ids = c->ids, *ranks = c->ranks, *made = c->prev;
    for (size_t i = 0; i + 1 < n; i++) {
        const struct merge_slot *m = merge_find(t, ids[i], ids[i + 1]);
        ranks[i] = m->rank;
        made[i] = m->id;
    }
    while (n > 1) {
        uint32_t best = UINT32_MAX;
        size_t at = 0;
        for (size_t i = 0; i + 1 < n; i++)
            if (ranks[i] < best) { best = ranks[i]; at = i; }
        if (best == UINT32_MAX) break;
        ids[at] = made[at];
        memmove(ids + at + 1, ids + at + 2, (n - at - 2) * sizeof *ids);
        if (at + 2 < n) {
            memmove(ranks + at + 1, ranks + at + 2, (n - at - 3) * sizeof *ranks);
            memmove(made + at + 1, made + at + 2, (n - at - 3) * sizeof *made);
        }
        n--;
        const struct merge_slot *m;
        if (at > 0) { m = merge_find(t, ids[at - 1], ids[at]); ranks[at - 1] = m->rank; made[at - 1] = m->id; }
        if (at + 1 < n) { m = merge_find(t, ids[at], ids[at + 1]); ranks[at] = m->rank; made[at] = m->id; }
    }
    for (size_t i = 0; i < n; i++)
        if (wn_ids_push(out, ids[i])) return WN_ERR_NOMEM;
    return WN_OK;
}

/* Long pieces: a min-heap of (rank, position), entries checked when popped. */
static int heap_less(struct heap_item a, struct heap_item b) { return a.rank < b.rank || (a.rank == b.rank && a.pos < b.pos); }

static wn_err heap_push(wn_tok_ctx *c, size_t *n, struct heap_item x)
{
    if (*n == c->heap_cap) {
        size_t cap = c->heap_cap ? c->heap_cap * 2 : 256;
        struct heap_item *h = wn_realloc(c->heap, cap * sizeof *h);
        if (!h) return WN_ERR_NOMEM;
        c->heap = h;
        c->heap_cap = cap;
    }
    size_t i = (*n)++;
    while (i && heap_less(x, c->heap[(i - 1) / 2])) { c->heap[i] = c->heap[(i - 1) / 2]; i = (i - 1) / 2; }
    c->heap[i] = x;
    return WN_OK;
}

static struct heap_item heap_pop(wn_tok_ctx *c, size_t *n)
{
    struct heap_item top = c->heap[0], x = c->heap[--*n];
    size_t i = 0;
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        struct heap_item best = x;
        if (l < *n && heap_less(c->heap[l], best)) { m = l; best = c->heap[l]; }
        if (r < *n && heap_less(c->heap[r], best)) m = r;
        if (m == i) break;
        c->heap[i] = c->heap[m];
        i = m;
    }
    if (*n) c->heap[i] = x;
    return top;
}

#define NONE UINT32_MAX

static wn_err bpe_heap(wn_tok_ctx *c, size_t n, wn_ids *out)
{
    const wn_tokenizer *t = c->t;
    uint32_t *ids = c->ids, *prev = c->prev, *next = c->next, *alive = c->ranks;
    size_t hn = 0;
    for (size_t i = 0; i < n; i++) {
        prev[i] = i ? (uint32_t)i - 1 : NONE;
        next[i] = i + 1 < n ? (uint32_t)i + 1 : NONE;
        alive[i] = 1;
    }
    for (size_t i = 0; i + 1 < n; i++) {
        uint32_t r = rank_of(t, ids[i], ids[i + 1]);
        if (r != NONE && heap_push(c, &hn, (struct heap_item){r, (uint32_t)i})) return WN_ERR_NOMEM;
    }
    while (hn) {
        struct heap_item h = heap_pop(c, &hn);
        uint32_t i = h.pos, j = next[i];
        if (!alive[i] || j == NONE) continue;
        const wn_bpe_merge *m = &t->merges[h.rank];
        if (ids[i] != m->a || ids[j] != m->b) continue; /* stale: a neighbour merged first */
        ids[i] = m->id;
        alive[j] = 0;
        next[i] = next[j];
        if (next[j] != NONE) prev[next[j]] = i;
        uint32_t r;
        if (prev[i] != NONE && (r = rank_of(t, ids[prev[i]], ids[i])) != NONE &&
            heap_push(c, &hn, (struct heap_item){r, prev[i]})) return WN_ERR_NOMEM;
        if (next[i] != NONE && (r = rank_of(t, ids[i], ids[next[i]])) != NONE &&
            heap_push(c, &hn, (struct heap_item){r, i})) return WN_ERR_NOMEM;
    }
    for (uint32_t i = 0; i != NONE; i = next[i])
        if (wn_ids_push(out, ids[i])) return WN_ERR_NOMEM;
    return WN_OK;
}

static wn_err merge_piece(wn_tok_ctx *c, const char *p, size_t n, wn_ids *out)
{
    if (scratch(c, n)) return WN_ERR_NOMEM;
    for (size_t i = 0; i < n; i++) c->ids[i] = c->t->byte_id[(unsigned char)p[i]];
    if (n == 1) return wn_ids_push(out, c->ids[0]);
    return n <= 64 ? bpe_linear(c, n, out) : bpe_heap(c, n, out);
}

static wn_err encode_piece(wn_tok_ctx *c, const char *p, size_t n, wn_ids *out)
{
    if (!n) return WN_OK;
    if (n == 1) return wn_ids_push(out, c->t->byte_id[(unsigned char)p[0]]);
    if (n > CACHE_PIECE) return merge_piece(c, p, n, out);
    if (!c->slots && !(c->slots = wn_calloc(CACHE_SLOTS, sizeof *c->slots))) return merge_piece(c, p, n, out);
    uint64_t h = XXH3_64bits(p, n) | 1;
    cache_slot *s = &c->slots[h & (CACHE_SLOTS - 1)];
    if (s->h == h && s->len == n && !memcmp(s->bytes, p, n)) {
        for (int k = 0; k < s->n_ids; k++)
            if (wn_ids_push(out, s->ids[k])) return WN_ERR_NOMEM;
        return WN_OK;
    }
    size_t before = out->n;
    wn_err e;
    /* A piece that is a whole token, and whose bytes merge back into that
     * token (checked once per token, then remembered), is that token. */
    int64_t id = index_find(&c->t->index, c->t, p, n);
    uint8_t whole = id >= 0 ? __atomic_load_n(&c->t->whole[id], __ATOMIC_RELAXED) : 2;
    if (whole == 1) {
        e = wn_ids_push(out, (uint32_t)id);
    } else {
        e = merge_piece(c, p, n, out);
        if (!e && whole == 0)
            __atomic_store_n(&c->t->whole[id], out->n - before == 1 && out->p[before] == (uint32_t)id ? 1 : 2,
                             __ATOMIC_RELAXED);
    }
    if (e || out->n - before > CACHE_IDS) return e;
    s->h = h;
    s->len = (uint8_t)n;
    s->n_ids = (uint8_t)(out->n - before);
    memcpy(s->bytes, p, n);
    memcpy(s->ids, out->p + before, s->n_ids * sizeof *s->ids);
    return WN_OK;
}

typedef wn_err (*piece_sink)(void *arg, const char *p, size_t n);

/* Cuts s[0..n) into pieces; bytes the regex cannot match (invalid UTF-8)
 * form pieces of their own. */
static wn_err split(wn_tok_ctx *c, const char *s, size_t n, piece_sink sink, void *arg)
{
    size_t start = 0;
    while (start < n) {
        int rc = pcre2_match(c->t->re, (PCRE2_SPTR)s, n, start, 0, c->md, NULL);
        if (rc == PCRE2_ERROR_NOMATCH) return sink(arg, s + start, n - start);
        if (rc < 0) return WN_ERR_INTERNAL;
        PCRE2_SIZE *ov = pcre2_get_ovector_pointer(c->md);
        size_t a = ov[0], b = ov[1];
        wn_err e;
        if (a > start && (e = sink(arg, s + start, a - start))) return e;
        if (b == a) { /* an empty match: step over one code point */
            size_t k = a;
            wn_utf8_next(s, n, &k);
            if ((e = sink(arg, s + a, k - a))) return e;
            start = k;
            continue;
        }
        if ((e = sink(arg, s + a, b - a))) return e;
        start = b;
    }
    return WN_OK;
}

typedef struct {
    wn_tok_ctx *c;
    wn_ids *out;
} encode_arg;

static wn_err encode_sink(void *arg, const char *p, size_t n)
{
    encode_arg *a = arg;
    return encode_piece(a->c, p, n, a->out);
}

wn_err wn_tokenizer_encode(wn_tok_ctx *c, const char *s, size_t n, int allow_special, wn_ids *out)
{
    const wn_tokenizer *t = c->t;
    encode_arg arg = {c, out};
    if (!allow_special || !t->n_specials) return split(c, s, n, encode_sink, &arg);
    size_t pos = 0;
    while (pos < n) { /* the leftmost special token, the longest on ties */
        size_t best_at = n, best_len = 0;
        int64_t best_id = -1;
        for (int i = 0; i < t->n_specials; i++) {
            wn_span sp = wn_tokenizer_token(t, t->special_id[i]);
            if (!sp.n) continue;
            const char *hit = memmem(s + pos, n - pos, sp.p, sp.n);
            if (!hit) continue;
            size_t at = (size_t)(hit - s);
            if (at < best_at || (at == best_at && sp.n > best_len)) {
                best_at = at;
                best_len = sp.n;
                best_id = t->special_id[i];
            }
        }
        wn_err e = split(c, s + pos, best_at - pos, encode_sink, &arg);
        if (e) return e;
        if (best_id < 0) break;
        if ((e = wn_ids_push(out, (uint32_t)best_id))) return e;
        pos = best_at + best_len;
    }
    return WN_OK;
}

typedef struct {
    wn_piece_fn fn;
    void *arg;
} pieces_arg;

static wn_err pieces_sink(void *arg, const char *p, size_t n)
{
    pieces_arg *a = arg;
    a->fn(a->arg, p, n);
    return WN_OK;
}

wn_err wn_tokenizer_pieces(wn_tok_ctx *c, const char *s, size_t n, wn_piece_fn fn, void *arg)
{
    pieces_arg a = {fn, arg};
    return split(c, s, n, pieces_sink, &a);
}

wn_err wn_tokenizer_decode(const wn_tokenizer *t, const uint32_t *ids, size_t n, wn_buf *out)
{
    for (size_t i = 0; i < n; i++) {
        wn_span s = wn_tokenizer_token(t, ids[i]);
        if (!s.p) return WN_ERR_INPUT;
        if (wn_buf_append(out, s.p, s.n)) return WN_ERR_NOMEM;
    }
    if (!out->p) return wn_buf_reserve(out, 0);
    return WN_OK;
}

/* ---- writing tokenizer.json ----------------------------------------------- */

static void printable(wn_buf *o, wn_span bytes)
{
    wn_buf_clear(o);
    for (size_t i = 0; i < bytes.n; i++) wn_utf8_put(o, byte_char[(unsigned char)bytes.p[i]]);
    if (!o->p) wn_buf_reserve(o, 0);
}

wn_err wn_tokenizer_save(const wn_tokenizer *t, const char *path, wn_errbuf *err)
{
    wn_buf out = {0}, tmp = {0}, tmp2 = {0};
    wn_jw w;
    wn_jw_init(&w, &out, 0);
    wn_jw_obj_begin(&w);
    wn_jw_key(&w, "version"); wn_jw_str(&w, "1.0");
    wn_jw_key(&w, "truncation"); wn_jw_null(&w);
    wn_jw_key(&w, "padding"); wn_jw_null(&w);
    wn_jw_key(&w, "added_tokens");
    wn_jw_arr_begin(&w);
    for (int i = 0; i < t->n_specials; i++) {
        wn_span s = wn_tokenizer_token(t, t->special_id[i]);
        wn_jw_obj_begin(&w);
        wn_jw_key(&w, "id"); wn_jw_u64(&w, t->special_id[i]);
        wn_jw_key(&w, "content"); wn_jw_strn(&w, s.p, s.n);
        wn_jw_key(&w, "single_word"); wn_jw_bool(&w, 0);
        wn_jw_key(&w, "lstrip"); wn_jw_bool(&w, 0);
        wn_jw_key(&w, "rstrip"); wn_jw_bool(&w, 0);
        wn_jw_key(&w, "normalized"); wn_jw_bool(&w, 0);
        wn_jw_key(&w, "special"); wn_jw_bool(&w, 1);
        wn_jw_obj_end(&w);
    }
    wn_jw_arr_end(&w);
    wn_jw_key(&w, "normalizer"); wn_jw_null(&w);
    wn_jw_key(&w, "pre_tokenizer");
    wn_jw_obj_begin(&w);
    if (t->pretok == WN_PRETOK_GPT2) {
        wn_jw_key(&w, "type"); wn_jw_str(&w, "ByteLevel");
        wn_jw_key(&w, "add_prefix_space"); wn_jw_bool(&w, 0);
        wn_jw_key(&w, "trim_offsets"); wn_jw_bool(&w, 1);
        wn_jw_key(&w, "use_regex"); wn_jw_bool(&w, 1);
    } else {
        wn_jw_key(&w, "type"); wn_jw_str(&w, "Sequence");
        wn_jw_key(&w, "pretokenizers");
        wn_jw_arr_begin(&w);
        wn_jw_obj_begin(&w);
        wn_jw_key(&w, "type"); wn_jw_str(&w, "Split");
        wn_jw_key(&w, "pattern");
        wn_jw_obj_begin(&w);
        wn_jw_key(&w, "Regex"); wn_jw_str(&w, t->pretok == WN_PRETOK_CL100K ? pattern_cl100k_hf : t->pattern);
        wn_jw_obj_end(&w);
        wn_jw_key(&w, "behavior"); wn_jw_str(&w, "Isolated");
        wn_jw_key(&w, "invert"); wn_jw_bool(&w, 0);
        wn_jw_obj_end(&w);
        wn_jw_obj_begin(&w);
        wn_jw_key(&w, "type"); wn_jw_str(&w, "ByteLevel");
        wn_jw_key(&w, "add_prefix_space"); wn_jw_bool(&w, 0);
        wn_jw_key(&w, "trim_offsets"); wn_jw_bool(&w, 1);
        wn_jw_key(&w, "use_regex"); wn_jw_bool(&w, 0);
        wn_jw_obj_end(&w);
        wn_jw_arr_end(&w);
    }
    wn_jw_obj_end(&w);
    wn_jw_key(&w, "post_processor"); wn_jw_null(&w);
    wn_jw_key(&w, "decoder");
    wn_jw_obj_begin(&w);
    wn_jw_key(&w, "type"); wn_jw_str(&w, "ByteLevel");
    wn_jw_key(&w, "add_prefix_space"); wn_jw_bool(&w, 1);
    wn_jw_key(&w, "trim_offsets"); wn_jw_bool(&w, 1);
    wn_jw_key(&w, "use_regex"); wn_jw_bool(&w, 1);
    wn_jw_obj_end(&w);
    wn_jw_key(&w, "model");
    wn_jw_obj_begin(&w);
    wn_jw_key(&w, "type"); wn_jw_str(&w, "BPE");
    wn_jw_key(&w, "dropout"); wn_jw_null(&w);
    wn_jw_key(&w, "unk_token"); wn_jw_null(&w);
    wn_jw_key(&w, "continuing_subword_prefix"); wn_jw_null(&w);
    wn_jw_key(&w, "end_of_word_suffix"); wn_jw_null(&w);
    wn_jw_key(&w, "fuse_unk"); wn_jw_bool(&w, 0);
    wn_jw_key(&w, "byte_fallback"); wn_jw_bool(&w, 0);
    wn_jw_key(&w, "ignore_merges"); wn_jw_bool(&w, 0);
    wn_jw_key(&w, "vocab");
    wn_jw_obj_begin(&w);
    for (uint32_t i = 0; i < t->n_vocab; i++) {
        int special = 0;
        for (int k = 0; k < t->n_specials; k++) special |= t->special_id[k] == i;
        if (special || t->tok_len[i] == UINT32_MAX) continue;
        printable(&tmp, wn_tokenizer_token(t, i));
        wn_jw_key(&w, tmp.p);
        wn_jw_u64(&w, i);
    }
    wn_jw_obj_end(&w);
    wn_jw_key(&w, "merges");
    wn_jw_arr_begin(&w);
    for (size_t m = 0; m < t->n_merges; m++) {
        printable(&tmp, wn_tokenizer_token(t, t->merges[m].a));
        printable(&tmp2, wn_tokenizer_token(t, t->merges[m].b));
        wn_buf_putc(&tmp, ' ');
        wn_buf_append(&tmp, tmp2.p, tmp2.len);
        wn_jw_str(&w, tmp.p);
    }
    wn_jw_arr_end(&w);
    wn_jw_obj_end(&w);
    wn_jw_obj_end(&w);
    wn_buf_putc(&out, '\n');
    wn_err e = out.p ? wn_write_atomic(path, out.p, out.len, err) : WN_ERR_NOMEM;
    wn_buf_free(&out);
    wn_buf_free(&tmp);
    wn_buf_free(&tmp2);
    return e;
}
