/*
 * minhash.h - the CPU core of near-duplicate detection (stages/minhash_dedup.c):
 * text normalization and shingles, MinHash signatures, LSH band keys, the
 * disk-backed bucket and pair tables that keep the stage inside its memory
 * budget, exact Jaccard of shingle sets, union-find, and the LSH curve.
 *
 * Normalization (wn_mh_normalize, full = 1), in the spirit of datatrove's
 * simplify_text: each code point is decomposed with compatibility mappings
 * (NFKD: ligatures, full-width forms and super/subscripts become plain
 * letters and digits), case-folded and stripped of marks (accents; in
 * scripts that write vowels as marks this merges some words, which for
 * deduplication errs on the side of matching). Then letters (L*, Nl, No)
 * are kept, every run of decimal digits (Nd) becomes one "0", and
 * everything else (punctuation P*, symbols S*, separators Z*, controls C*,
 * invalid UTF-8) separates words. In word mode each Han ideograph and each
 * kana is a word of its own (those scripts do not put spaces between
 * words). The result is the words joined by single spaces. full = 0 only
 * splits on whitespace and joins with single spaces (bytes unchanged).
 *
 * Shingles (wn_mh_shingles). Word mode: every run of n consecutive words,
 * hashed as the bytes "w1 w2 ... wn" of the normalized text; a text with
 * fewer than n words (but at least one) is one shingle, the whole text.
 * Char mode: every run of n consecutive code points of the normalized text
 * (spaces included); a shorter text is one shingle. A shingle's hash is
 * xxh3-64 (seed 0) of its bytes. A text with no words has no shingles.
 *
 * Signatures. Permutation k maps a shingle hash h to
 *     perm_k(h) = (a_k * (h mod p) + b_k) mod p,   p = 2^61 - 1,
 * with a_k in [1, p) and b_k in [0, p) drawn from splitmix64(seed) in
 * order (a_0, b_0, a_1, b_1, ...). sig[k] = min over the shingles of
 * perm_k(h); an empty set gives UINT64_MAX everywhere. Integer math only,
 * so the GPU kernel (kernels/minhash_kernels.cu) gives identical values.
 * Band b of a signature is sig[b*rows .. b*rows + rows); its key is
 * xxh3-64 of those rows' little-endian bytes. Two documents are candidates
 * when some band's keys are equal; with 64-bit keys, unequal bands collide
 * with probability ~2^-64 per pair of documents.
 *
 * The LSH curve: two sets of Jaccard similarity s agree on one row with
 * probability s, so they become candidates with
 *     P(s) = 1 - (1 - s^rows)^bands.
 * For 14 x 8, P = 0.5 at s = 0.685 (wn_mh_s_half) and P(0.8) = 0.92;
 * (1/bands)^(1/rows) = 0.719 is the usual approximation of the knee.
 *
 * Bucket table (wn_mh_buckets): (key, document) entries, one per band per
 * document, partitioned by band. Entries are buffered in memory up to the
 * table's budget; when full, each band's buffer is sorted by (key,
 * document) (LSD radix sort on the key, which is stable, and documents
 * arrive in increasing order) and all bands are written to one run file;
 * the buffers start empty again. wn_mh_buckets_pairs then merges, band by
 * band, the runs and what is still buffered into one (key, document)-
 * ordered stream, and every group of equal keys (a bucket) yields
 * candidate pairs: each member with the bucket's first document (its
 * smallest index), and with anchors = 2 also with its second.
 *
 * Pair table (wn_mh_pairs): candidate pairs (a < b) as u64 a << 32 | b,
 * buffered up to its budget, then sorted, made unique and written to a run
 * file. wn_mh_pairs_each streams the distinct pairs in ascending order
 * (a k-way merge of the runs and the buffer), and can be called again.
 *
 * Run files live in the table's directory and are immutable once written;
 * formats are in docs/formats.md. Document indices are u32: a table holds
 * at most 2^32 - 1 documents.
 *
 * Union-find: parent[] over document indices; the root of a set is its
 * smallest index (the union links the larger root under the smaller), so
 * the result does not depend on the order of the unions.
 *
 * Ownership: scratch and tables own their buffers; *_free accepts a zeroed
 * struct. A scratch belongs to one thread. Nothing here prints.
 */
#ifndef WN_MINHASH_H
#define WN_MINHASH_H

#include <stdio.h>

#include "wn.h"

#ifdef __cplusplus /* tests/cuda/test_minhash_kernels.cu calls the references */
extern "C" {
#endif

#define WN_MH_P ((1ull << 61) - 1)

/* ---- shingles ------------------------------------------------------------ */

typedef enum { WN_MH_WORD, WN_MH_CHAR } wn_mh_unit;

typedef struct {
    wn_mh_unit unit;
    int n;         /* words or code points per shingle, >= 1 */
    int normalize; /* 1: full normalization (above); 0: whitespace only */
} wn_mh_cfg;

typedef struct {
    wn_buf norm;   /* the normalized text */
    uint32_t *pos; /* word (or code point) start offsets in norm, then norm.len */
    size_t n_pos, cap_pos;
    uint64_t *h;   /* shingle hashes */
    size_t n_h, cap_h;
} wn_mh_scratch;

void wn_mh_scratch_free(wn_mh_scratch *sc);

/* The longest text shingled: 256 MiB (WN_ERR_INPUT beyond). */
#define WN_MH_MAX_TEXT ((size_t)256 << 20)

/* Normalizes s[0..n) into sc->norm and its word starts into sc->pos (n_pos
 * words; pos[n_pos] = norm.len). cjk_words: each Han ideograph / kana is a
 * word (word mode). */
wn_err wn_mh_normalize(wn_mh_scratch *sc, const char *s, size_t n, int full, int cjk_words);

/* The shingle hashes of s[0..n) into sc->h / sc->n_h (in text order,
 * repeats kept). */
wn_err wn_mh_shingles(wn_mh_scratch *sc, const wn_mh_cfg *cfg, const char *s, size_t n);

/* Sorts h[0..n) and removes repeats in place; returns the new length. */
size_t wn_mh_set(uint64_t *h, size_t n);

/* |A n B| of two sorted sets without repeats. */
uint64_t wn_mh_intersect(const uint64_t *a, size_t na, const uint64_t *b, size_t nb);

/* Jaccard |A n B| / |A u B| of two sorted sets (0 when both are empty). */
double wn_mh_jaccard(const uint64_t *a, size_t na, const uint64_t *b, size_t nb);

/* ---- signatures ---------------------------------------------------------- */

/* x mod p for any u64 x. */
static inline uint64_t wn_mh_mod(uint64_t x)
{
    x = (x & WN_MH_P) + (x >> 61);
    return x >= WN_MH_P ? x - WN_MH_P : x;
}

/* (a x + b) mod p for a, b, x < p: the 122-bit product folded with
 * 2^61 = 1 (mod p). kernels/minhash_kernels.cu computes the same steps. */
static inline uint64_t wn_mh_perm(uint64_t a, uint64_t b, uint64_t x)
{
    unsigned __int128 m = (unsigned __int128)a * x;
    uint64_t r = ((uint64_t)m & WN_MH_P) + (uint64_t)(m >> 61); /* < 2^62 */
    r += b;                                                     /* < 2^63 */
    r = (r & WN_MH_P) + (r >> 61);                              /* <= p + 3 */
    return r >= WN_MH_P ? r - WN_MH_P : r;
}

/* The permutations' (a, b) of a seed, n of each. */
void wn_mh_perms(uint64_t seed, int n, uint64_t *a, uint64_t *b);

/* sig[0..nperm) of one document's shingle hashes h[0..n). */
void wn_mh_signature(const uint64_t *h, size_t n, const uint64_t *a, const uint64_t *b, int nperm, uint64_t *sig);

/* The batch form, the GPU kernel's reference: document d's shingles are
 * h[off[d] .. off[d+1]), its signature sig[d*nperm .. (d+1)*nperm). */
void wn_mh_signatures(const uint64_t *h, const uint64_t *off, int64_t ndocs, const uint64_t *a, const uint64_t *b,
                      int nperm, uint64_t *sig);

/* keys[0..bands) of a signature of bands x rows values. */
void wn_mh_band_keys(const uint64_t *sig, int bands, int rows, uint64_t *keys);

/* ---- the LSH curve --------------------------------------------------------- */

/* P(candidate) = 1 - (1 - s^rows)^bands. */
double wn_mh_p_candidate(double s, int bands, int rows);
/* The s at which P(candidate) = 1/2. */
double wn_mh_s_half(int bands, int rows);

/* ---- union-find ------------------------------------------------------------ */

/* The root of x (the smallest index of its set), halving paths. */
static inline uint32_t wn_mh_find(uint32_t *parent, uint32_t x)
{
    while (parent[x] != x) {
        parent[x] = parent[parent[x]];
        x = parent[x];
    }
    return x;
}

/* Joins the sets of x and y; returns 1 when they were apart. */
static inline int wn_mh_union(uint32_t *parent, uint32_t x, uint32_t y)
{
    uint32_t rx = wn_mh_find(parent, x), ry = wn_mh_find(parent, y);
    if (rx == ry) return 0;
    if (rx < ry) parent[ry] = rx;
    else parent[rx] = ry;
    return 1;
}

/* ---- the bucket table -------------------------------------------------------- */

typedef struct __attribute__((packed)) {
    uint64_t key;
    uint32_t doc;
} wn_mh_entry;
#ifndef __cplusplus
_Static_assert(sizeof(wn_mh_entry) == 12, "a bucket entry is 12 bytes");
#endif

typedef struct {
    char dir[4096];
    int bands;
    uint64_t cap;      /* entries per band the budget allows in memory */
    wn_mh_entry **buf; /* [bands], n entries each (every band holds the same count) */
    wn_mh_entry *tmp;  /* radix-sort scratch, one band */
    uint64_t n, alloc; /* entries per band buffered; allocated per band */
    int n_runs;
    uint64_t run_entries; /* entries per band in the runs */
    uint64_t mem_peak;
} wn_mh_buckets;

/* budget: bytes for the buffers (at least a small minimum is used). */
wn_err wn_mh_buckets_init(wn_mh_buckets *t, const char *dir, int bands, uint64_t budget, wn_errbuf *err);
/* Adds doc's keys[0..bands); docs must come in increasing order. Spills
 * when the buffers are full. */
wn_err wn_mh_buckets_add(wn_mh_buckets *t, uint32_t doc, const uint64_t *keys, wn_errbuf *err);
/* Writes the buffered entries as a new run (a no-op when none) and frees
 * the buffers' memory. */
wn_err wn_mh_buckets_spill(wn_mh_buckets *t, wn_errbuf *err);
/* Bytes held in memory now. */
uint64_t wn_mh_buckets_mem(const wn_mh_buckets *t);

typedef wn_err (*wn_mh_pair_fn)(void *ctx, uint32_t a, uint32_t b);

/* The candidate pairs of one band's (key, doc)-ordered entries, fed one at a
 * time: each member of a bucket (a run of equal keys) with the bucket's
 * first document, and with anchors = 2 also with its second. Reset between
 * bands. */
typedef struct {
    uint64_t key, cnt;
    uint32_t a0, a1;
    int anchors;
} wn_mh_pairer;
static inline void wn_mh_pairer_reset(wn_mh_pairer *p, int anchors)
{
    p->key = p->cnt = 0;
    p->a0 = p->a1 = 0;
    p->anchors = anchors;
}
wn_err wn_mh_pairer_add(wn_mh_pairer *p, uint64_t key, uint32_t doc, wn_mh_pair_fn fn, void *ctx);
/* The pairs of one band's entries held in `blocks` sorted blocks (block k:
 * n[k] entries after blocks 0..k-1, each sorted by (key, doc), and for equal
 * keys every document of block k below those of block k+1, as when block k
 * comes from MPI rank k): a k-way merge into the pairer. WN_ERR_NOMEM, or
 * fn's error. */
wn_err wn_mh_blocks_pairs(const wn_mh_entry *e, const uint64_t *n, int blocks, int anchors, wn_mh_pair_fn fn,
                          void *ctx);
/* After the last add: every bucket's pairs (a < b) to fn, band by band
 * (anchors 1 or 2, above). read_bytes: buffer bytes per run read. Sorts
 * the buffered entries in place; adding afterwards is not allowed. */
wn_err wn_mh_buckets_pairs(wn_mh_buckets *t, int anchors, size_t read_bytes, wn_mh_pair_fn fn, void *ctx,
                           wn_errbuf *err);
/* Every entry of the table to fn, band by band (band 0 first), each band in
 * (key, doc) order: the merge that wn_mh_buckets_pairs makes pairs of (the
 * stage exchanges this stream across MPI ranks). Same rules as
 * wn_mh_buckets_pairs (sorts the buffers, frees each band once done). */
typedef wn_err (*wn_mh_entry_fn)(void *ctx, int band, const wn_mh_entry *e);
wn_err wn_mh_buckets_each(wn_mh_buckets *t, size_t read_bytes, wn_mh_entry_fn fn, void *ctx, wn_errbuf *err);
/* Checkpoint: the buffered entries and the run count / restore them. */
wn_err wn_mh_buckets_save(const wn_mh_buckets *t, FILE *f, wn_errbuf *err);
wn_err wn_mh_buckets_load(wn_mh_buckets *t, FILE *f, wn_errbuf *err);
void wn_mh_buckets_free(wn_mh_buckets *t);

/* ---- the pair table ------------------------------------------------------------ */

typedef struct {
    char dir[4096];
    uint64_t *buf, *tmp;
    uint64_t n, cap, alloc;
    int n_runs;
    int sorted; /* buf[0..n) is sorted and unique */
    uint64_t mem_peak;
} wn_mh_pairs;

wn_err wn_mh_pairs_init(wn_mh_pairs *p, const char *dir, uint64_t budget, wn_errbuf *err);
wn_err wn_mh_pairs_add(wn_mh_pairs *p, uint32_t a, uint32_t b, wn_errbuf *err);
/* Every distinct pair, ascending (by a, then b), to fn. Repeatable; adding
 * afterwards is not allowed. */
wn_err wn_mh_pairs_each(wn_mh_pairs *p, size_t read_bytes, wn_mh_pair_fn fn, void *ctx, wn_errbuf *err);
void wn_mh_pairs_free(wn_mh_pairs *p);

#ifdef __cplusplus
}
#endif

#endif
