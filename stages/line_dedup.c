/*
 * line_dedup.c - removes lines (or paragraphs) that occur elsewhere in the
 * corpus, cc_net style: each unit is hashed (xxh3-128) after normalization,
 * and either every repeat after the first occurrence in input order is
 * removed (min_count: 0), or every occurrence of a unit that occurs
 * min_count or more times in the whole corpus (boilerplate). Documents left
 * empty, or shorter than min_chars / min_words, are dropped.
 *
 * Units. The text is split on '\n'. unit: line makes every line a unit;
 * unit: paragraph makes every run of non-blank lines one unit (its inner
 * newlines included) and every blank line (only Unicode White_Space) a unit
 * of its own. A unit is its content plus the '\n' that ends it (none for a
 * last line without one). Blank units and units whose normalized form is
 * empty are never duplicates.
 *
 * Normalization (what is hashed; each part is a parameter, all on by
 * default), code point by code point, invalid UTF-8 bytes kept as they are:
 *   accents      canonical decomposition of the code point (NFD of that one
 *                code point), nonspacing marks (Mn) dropped;
 *   whitespace   Unicode White_Space; runs become one space when
 *                collapse_whitespace (else kept), leading and trailing
 *                whitespace is always trimmed;
 *   lowercase    simple lowercase mapping (utf8proc_tolower);
 *   punctuation  general categories P* and the non-printing Cc, Cf dropped;
 *   digits       decimal digits (Nd) become '0'.
 *
 * Removal. A removed unit goes with its '\n'. With blank_lines: follow (the
 * default) the blank units right after a removed unit go with it, and when
 * the units after the last kept non-blank unit include a removed one, that
 * whole tail goes (so removals leave no runs of empty lines behind);
 * blank_lines: keep removes only the duplicates. A text that did not end with
 * '\n' still does not. Only documents that lost units can be dropped:
 * empty_after_dedup (nothing but whitespace left), too_short_after_dedup.
 *
 * Two passes over a spill (DESIGN.md §3), memory bounded by `memory`: the
 * process's peak RSS, of which the key buffer, the merges' buffers and the
 * decision buffer get what is left after the run's reserve and the stage's
 * other buffers (wn_stage_table_budget; own_reserve below).
 * process() holds every document back in a docspill (docs.spill.zst) and
 * appends a 24-byte record {key hi, key lo, pos} for every hashed unit, pos
 * = document index << 24 | unit index (input order), to a buffer. A full
 * buffer is sorted - first by partition (the key's top 6 bits, 64 hash
 * ranges, in place), then each partition in parallel - and written as an
 * immutable run file keys-NNNNN.run with a per-partition index. finish()
 * first merges runs 16 at a time until at most 16 are left, then merges
 * them partition by partition: records of one key arrive together, ordered
 * by position, so deciding needs no table - the first occurrence is kept,
 * or a group's positions wait in a buffer of min_count - 1 until the count
 * is reached. The removed positions collect in a buffer that, when full, is
 * sorted by position and written as a decision run (dec-NNNNN.run); the
 * last pass reads the spill in input order beside the decision runs merged
 * in position order and rebuilds each document. When nothing outgrew the
 * budget, the same steps run on in-memory arrays. The removed set is a
 * function of the input alone, so the output is identical whatever the
 * thread count or budget. Formats: docs/formats.md.
 *
 * Across MPI ranks (wn_mpi_size() = R > 1; rank r's documents all come
 * before rank r + 1's in the input order, so the global position of a unit
 * is (rank, local position)). Pass 1 is the same on every rank. In the first
 * finish call, after the runs are merged down, a first scan in key order
 * writes this rank's distinct keys with their local counts (distinct.bin, 24
 * bytes each). Key space is cut into R x G hash ranges by the key's top
 * bits, range g*R + o belonging to owner rank o in round g, so each round
 * sends one contiguous stretch of that sorted file: wn_mpi_alltoallv of
 * {key, count}, 24 bytes per distinct unit hash per rank. The owner merges
 * the R sorted blocks in key order (a heap over ranks, lowest rank first on
 * ties), adds the counts - the recurrence figures are computed there, on
 * global counts - and answers one bit per key and rank: min_count 0: 1 for
 * every rank but the lowest that has the key (the first occurrence lies
 * there); min_count N: 1 for all when the global count reaches N. The bits
 * come back by a second all-to-all and are stored one byte per distinct key
 * in key order (verdicts.bin). The deciding scan then walks the records
 * again in key order beside the verdicts: min_count 0 removes every
 * occurrence after this rank's first, and the first too when its verdict is
 * 1; min_count N removes all of a key's occurrences when its verdict is 1.
 * The removed set is the one process's, so emitting is unchanged. G is the
 * smallest round count that keeps one round's buffers (24 B per key sent and
 * per key received, the hash spreading keys evenly over owners) within the
 * budget beside the record buffer the deciding scan still needs; every rank
 * takes the largest G any rank asks for. A rank with no documents still
 * takes part. Report counters are sums over the ranks (every rank calls
 * report); the spill figures describe each rank's own spilling and so
 * depend on the split.
 *
 * Resume. Checkpoints come during pass 1: a snapshot holds the spill's
 * length (docspill), the run count (runs are immutable, fsynced at the
 * checkpoint), the counters and the buffered records; load truncates the
 * spill back and continues. Files written by finish are scratch.
 *
 * Limits: units past the 16,777,215th of a document are never removed
 * (counted as lines_past_limit); 2^40 documents.
 */
#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <utf8proc.h>
#include <xxhash.h>

#include "../src/docspill.h"
#include "../src/mpi.h"
#include "../src/stage.h"
#include "../src/text.h"

static const wn_param_def params[] = {
    {"unit", WN_P_ENUM, "line", 0, 0, "line|paragraph",
     "line: every '\\n'-separated line; paragraph: every run of non-blank lines (blank lines are units of "
     "their own, never removed as duplicates)"},
    {"min_count", WN_P_INT, "0", 0, 1000000, NULL,
     "0: remove every repeat of a unit after its first occurrence (input order); N >= 2: remove every "
     "occurrence of units that occur N or more times in the corpus (boilerplate), keep the others"},
    {"lowercase", WN_P_BOOL, "true", 0, 0, NULL, "hash units lowercased (simple case mapping)"},
    {"digits", WN_P_BOOL, "true", 0, 0, NULL, "hash every decimal digit (Unicode Nd) as 0"},
    {"punctuation", WN_P_BOOL, "true", 0, 0, NULL,
     "ignore punctuation (Unicode P*) and non-printing characters (Cc, Cf) when hashing"},
    {"accents", WN_P_BOOL, "true", 0, 0, NULL,
     "ignore accents: each code point canonically decomposed, nonspacing marks (Mn) dropped"},
    {"collapse_whitespace", WN_P_BOOL, "true", 0, 0, NULL,
     "hash whitespace runs as one space (leading and trailing whitespace is always ignored)"},
    {"blank_lines", WN_P_ENUM, "follow", 0, 0, "follow|keep",
     "follow: blank lines right after a removed unit, and a removed tail's blank lines, go with it; keep: "
     "only duplicates are removed"},
    {"min_chars", WN_P_INT, "0", 0, 9e18, NULL,
     "drop a document that lost units when fewer code points remain (too_short_after_dedup)"},
    {"min_words", WN_P_INT, "0", 0, 9e18, NULL,
     "drop a document that lost units when fewer whitespace-separated words remain (too_short_after_dedup)"},
    {"memory", WN_P_SIZE, "0", 0, 9e18, NULL,
     "peak RSS of the process: the line-hash buffers get it less the run's and the stage's other buffers, and "
     "spill beyond that (0 = the manifest's memory budget)"},
};

enum {
    PART_BITS = 6,
    NPART = 1 << PART_BITS, /* hash-range partitions of a key run */
    FANIN = 16,             /* runs merged at once */
    UNIT_BITS = 24,
    EMIT_BYTES = 4 << 20,
    EMIT_DOCS = 65536,
    HIST_MAX = 64,
    MIN_RECORDS = 64,       /* the key buffer never holds fewer */
    MIN_DECISIONS = 256,    /* nor the decision buffer */
};
#define UNIT_LIMIT ((1ull << UNIT_BITS) - 1)
#define DOC_LIMIT (1ull << (64 - UNIT_BITS))
#define SPILL_NAME "docs.spill.zst"
#define RUN_KEYS_MAGIC 0x315359454b444c57ull /* "WLDKEYS1" */
#define RUN_DECS_MAGIC 0x3153434544444c57ull /* "WLDDECS1" */
#define CKPT_MAGIC 0x3154504b43444c57ull     /* "WLDCKPT1" */

/* One hashed unit: the key, then its position (document << 24 | unit). */
typedef struct {
    uint64_t hi, lo, pos;
} lrec;
static_assert(sizeof(lrec) == 24, "a key record is 24 bytes");

/* Header of a run file (key runs and decision runs), then (parts + 1) u64
 * item offsets of the partitions, then the items. */
typedef struct {
    uint64_t magic;
    uint32_t version, item_bytes;
    uint64_t n_items;
    uint32_t n_parts, pad;
    uint64_t reserved[4];
} run_hdr;
static_assert(sizeof(run_hdr) == 64, "run file header layout");

typedef struct {
    uint64_t start, len; /* content [start, start + len), without the '\n' */
    uint8_t nl, blank;
    uint8_t removed;     /* 1 duplicate, 2 blank that went with one */
} unit;

typedef struct {
    uint64_t hi, lo;
} key128;

typedef struct {
    unit *u;
    size_t cap_u;
    key128 *k; /* this batch's keys, one per unit, {0,0} = not hashed */
    size_t nk, cap_k;
    wn_buf norm;
    char pad[64];
} ld_tls;

typedef struct {
    uint32_t tid;
    uint64_t start, n;
} doc_keys;

/* A sorted sequence of fixed-size items read in order: a range of a run
 * file through a buffer, or an array in memory (f == NULL). */
typedef struct {
    FILE *f;
    uint8_t *buf;
    size_t item, cap; /* item bytes, buffer capacity in items */
    uint64_t left;    /* items of the range not yet read into buf */
    const uint8_t *cur, *end;
    char path[4200];
} stream;

typedef struct {
    stream s[FANIN];
    int n;
} merger;

typedef enum { R_KEYS, R_KMERGE, R_DECS, R_DMERGE } run_kind;
typedef struct {
    run_kind kind;
    int id;
} run_ref;

enum { C_KEEP, C_SPACE, C_DROP };

typedef struct {
    /* parameters */
    int paragraph, follow, lower, digits, punct, accents, collapse;
    uint64_t min_count, min_chars, min_words, budget;
    uint64_t tables; /* the budget's share for the key, merge and decision buffers */
    uint8_t cls[128], map[128]; /* ASCII: class and byte as hashed */
    int n_tls;
    ld_tls *tls;
    /* pass 1 */
    char path[4200];
    wn_spill_writer sw;
    uint64_t n_docs;
    doc_keys *bk;
    size_t cap_bk;
    lrec *buf;
    size_t n_buf, cap_buf, max_buf;
    int n_runs, synced_runs;
    uint64_t records_spilled;
    uint64_t lines_total, lines_hashed, lines_past_limit;
    /* finish: deciding */
    int phase; /* 0 streaming, 1 emitting, 2 done */
    size_t stream_bytes;
    uint64_t io_mem; /* buffers of the merge under way */
    int n_kmerge, n_dmerge, n_dec_runs, merge_passes;
    uint64_t *dec; /* removed positions not yet in a decision run */
    size_t n_dec, cap_dec, max_dec;
    uint64_t *group; /* min_count: a key's first positions */
    uint64_t unique, dup_keys, decisions, hist[HIST_MAX];
    /* finish: emitting */
    wn_spill_reader sr;
    int dec_in_mem;
    size_t dec_i;
    merger dm;
    uint64_t emitted, consumed;
    unit *eu;
    size_t cap_eu;
    wn_buf out;
    uint64_t lines_removed, blank_removed, bytes_removed, docs_modified, drop_empty, drop_short;
    /* across ranks (header comment) */
    int ranks;
    uint64_t n_distinct;
    char dpath[4200], vpath[4200]; /* distinct.bin, verdicts.bin */
    FILE *vf;                      /* verdicts.bin, read by the deciding scan */
} ld;

/* ---- sorting --------------------------------------------------------------- */

static inline int rec_less(const lrec *a, const lrec *b)
{
    if (a->hi != b->hi) return a->hi < b->hi;
    if (a->lo != b->lo) return a->lo < b->lo;
    return a->pos < b->pos;
}
static inline int u64_less(const uint64_t *a, const uint64_t *b) { return *a < *b; }

/* Introsort (quicksort, median of three, insertion sort below 16, heapsort
 * past a depth limit) in place: glibc's qsort allocates a copy of large
 * arrays, which the memory budget does not allow. Keys are unique. */
#define LD_SORT(name, T, less)                                                                   \
    static void name##_sift(T *a, size_t i, size_t n)                                            \
    {                                                                                            \
        T x = a[i];                                                                              \
        for (size_t c; (c = 2 * i + 1) < n; i = c) {                                             \
            if (c + 1 < n && less(&a[c], &a[c + 1])) c++;                                        \
            if (!less(&x, &a[c])) break;                                                         \
            a[i] = a[c];                                                                         \
        }                                                                                        \
        a[i] = x;                                                                                \
    }                                                                                            \
    static void name(T *a, size_t n, int depth)                                                  \
    {                                                                                            \
        while (n > 16) {                                                                         \
            if (depth-- == 0) {                                                                  \
                for (size_t i = n / 2; i-- > 0;) name##_sift(a, i, n);                           \
                for (size_t e = n - 1; e > 0; e--) {                                             \
                    T t = a[0]; a[0] = a[e]; a[e] = t;                                           \
                    name##_sift(a, 0, e);                                                        \
                }                                                                                \
                return;                                                                          \
            }                                                                                    \
            size_t m = n / 2;                                                                    \
            T t;                                                                                 \
            if (less(&a[m], &a[0])) { t = a[m]; a[m] = a[0]; a[0] = t; }                         \
            if (less(&a[n - 1], &a[m])) {                                                        \
                t = a[m]; a[m] = a[n - 1]; a[n - 1] = t;                                         \
                if (less(&a[m], &a[0])) { t = a[m]; a[m] = a[0]; a[0] = t; }                     \
            }                                                                                    \
            T p = a[m];                                                                          \
            size_t i = 0, j = n - 1;                                                             \
            for (;;) {                                                                           \
                while (less(&a[i], &p)) i++;                                                     \
                while (less(&p, &a[j])) j--;                                                     \
                if (i >= j) break;                                                               \
                t = a[i]; a[i] = a[j]; a[j] = t;                                                 \
                i++;                                                                             \
                j--;                                                                             \
            }                                                                                    \
            /* [0, j] <= p <= [j + 1, n): recurse into the smaller side */                       \
            if (j + 1 < n - j - 1) {                                                             \
                name(a, j + 1, depth);                                                           \
                a += j + 1;                                                                      \
                n -= j + 1;                                                                      \
            } else {                                                                             \
                name(a + j + 1, n - j - 1, depth);                                               \
                n = j + 1;                                                                       \
            }                                                                                    \
        }                                                                                        \
        for (size_t i = 1; i < n; i++) {                                                         \
            T x = a[i];                                                                          \
            size_t k = i;                                                                        \
            for (; k > 0 && less(&x, &a[k - 1]); k--) a[k] = a[k - 1];                           \
            a[k] = x;                                                                            \
        }                                                                                        \
    }
LD_SORT(sort_recs, lrec, rec_less)
LD_SORT(sort_u64, uint64_t, u64_less)

static int sort_depth(size_t n)
{
    int d = 0;
    while (n >>= 1) d++;
    return 2 * d + 2;
}

static inline unsigned part_of(uint64_t hi) { return (unsigned)(hi >> (64 - PART_BITS)); }

/* Sorts a[0..n) by (key, position): an in-place pass moves every record to
 * its partition (American flag sort), then the partitions sort in parallel.
 * off[p] is where partition p starts; off[NPART] = n. */
static void sort_partitioned(lrec *a, size_t n, uint64_t *off, int threads)
{
    uint64_t next[NPART];
    memset(off, 0, (NPART + 1) * sizeof *off);
    if (!n) return;
    for (size_t i = 0; i < n; i++) off[part_of(a[i].hi) + 1]++;
    for (int p = 0; p < NPART; p++) off[p + 1] += off[p];
    memcpy(next, off, sizeof next);
    for (unsigned p = 0; p < NPART; p++) {
        while (next[p] < off[p + 1]) {
            lrec r = a[next[p]];
            unsigned q = part_of(r.hi);
            while (q != p) {
                lrec t = a[next[q]];
                a[next[q]++] = r;
                r = t;
                q = part_of(r.hi);
            }
            a[next[p]++] = r;
        }
    }
#pragma omp parallel for schedule(dynamic, 1) num_threads(threads)
    for (int p = 0; p < NPART; p++) sort_recs(a + off[p], off[p + 1] - off[p], sort_depth(off[p + 1] - off[p]));
}

/* ---- memory ------------------------------------------------------------------ */

static void account(wn_stage *st, ld *s)
{
    uint64_t m = s->cap_buf * sizeof(lrec) + s->cap_dec * sizeof(uint64_t) + s->cap_bk * sizeof(doc_keys) +
                 s->cap_eu * sizeof(unit) + s->out.cap + wn_spill_writer_mem(&s->sw) +
                 (s->group ? s->min_count * sizeof(uint64_t) : 0);
    for (int i = 0; s->tls && i < s->n_tls; i++)
        m += s->tls[i].cap_u * sizeof(unit) + s->tls[i].cap_k * sizeof(key128) + s->tls[i].norm.cap;
    for (int i = 0; i < s->dm.n; i++) m += s->dm.s[i].cap * s->dm.s[i].item;
    m += s->io_mem;
    if (m > st->mem_peak) st->mem_peak = m;
}

/* The stage's buffers besides the key, merge and decision buffers, at their
 * largest: the spill's compressor; a batch's unit keys (16 bytes a unit:
 * the batch size again for lines of 16 bytes or more on average); a thread's
 * units and normalized text of one document (1 MiB). */
static uint64_t own_reserve(const wn_stage *st, const ld *s)
{
    return wn_spill_writer_mem_estimate() + wn_stage_emit_bytes(st, EMIT_BYTES) + (uint64_t)s->n_tls * (1 << 20);
}

static int grow(void **p, size_t *cap, size_t need, size_t size, size_t first)
{
    if (need <= *cap) return 0;
    size_t c = *cap ? *cap : first;
    while (c < need) c *= 2;
    void *q = wn_realloc(*p, c * size);
    if (!q) return -1;
    *p = q;
    *cap = c;
    return 0;
}

/* ---- units and keys ------------------------------------------------------------ */

static int blank_bytes(const char *p, size_t n)
{
    for (size_t i = 0; i < n;) {
        unsigned char c = (unsigned char)p[i];
        if (c < 0x80) {
            if (!(c == ' ' || (c >= 0x09 && c <= 0x0D))) return 0;
            i++;
            continue;
        }
        int32_t cp = wn_utf8_next(p, n, &i);
        if (cp < 0 || !wn_is_space(cp)) return 0;
    }
    return 1;
}

/* Splits text into units (u grows as needed); returns the count, or -1 when
 * out of memory. */
static int64_t split_units(int paragraph, const char *p, size_t n, unit **u, size_t *cap)
{
    size_t k = 0;
    for (size_t i = 0; i < n;) {
        const char *nl = memchr(p + i, '\n', n - i);
        size_t e = nl ? (size_t)(nl - p) : n;
        int blank = blank_bytes(p + i, e - i);
        if (paragraph && !blank && k && !(*u)[k - 1].blank) { /* the paragraph goes on */
            unit *x = &(*u)[k - 1];
            x->len = e - x->start;
            x->nl = nl != NULL;
        } else {
            if (grow((void **)u, cap, k + 1, sizeof **u, 64)) return -1;
            (*u)[k++] = (unit){(uint64_t)i, e - i, nl != NULL, (uint8_t)blank, 0};
        }
        i = e + (nl != NULL);
    }
    return (int64_t)k;
}

static inline void put_utf8(char *o, size_t *k, int32_t c)
{
    if (c < 0x80) {
        o[(*k)++] = (char)c;
    } else if (c < 0x800) {
        o[(*k)++] = (char)(0xC0 | (c >> 6));
        o[(*k)++] = (char)(0x80 | (c & 0x3F));
    } else if (c < 0x10000) {
        o[(*k)++] = (char)(0xE0 | (c >> 12));
        o[(*k)++] = (char)(0x80 | ((c >> 6) & 0x3F));
        o[(*k)++] = (char)(0x80 | (c & 0x3F));
    } else {
        o[(*k)++] = (char)(0xF0 | (c >> 18));
        o[(*k)++] = (char)(0x80 | ((c >> 12) & 0x3F));
        o[(*k)++] = (char)(0x80 | ((c >> 6) & 0x3F));
        o[(*k)++] = (char)(0x80 | (c & 0x3F));
    }
}

static inline int is_punct_cat(int cat)
{
    return (cat >= UTF8PROC_CATEGORY_PC && cat <= UTF8PROC_CATEGORY_PO) || cat == UTF8PROC_CATEGORY_CC ||
           cat == UTF8PROC_CATEGORY_CF;
}

/* The normalized form of p[0..n) (header comment) into o; returns its
 * length, or -1 when out of memory. ASCII goes through the tables built in
 * open; other code points through utf8proc. */
static int64_t normalize_unit(const ld *s, wn_buf *o, const char *p, size_t n)
{
    wn_buf_clear(o);
    if (wn_buf_reserve(o, n + 64)) return -1;
    size_t k = 0, last = 0; /* last: length after the last non-space */
    int space = 0;          /* a space is owed before the next kept code point */
    for (size_t i = 0; i < n;) {
        unsigned char c = (unsigned char)p[i];
        if (c < 0x80) {
            i++;
            uint8_t cl = s->cls[c];
            if (cl == C_DROP) continue;
            if (cl == C_SPACE) {
                if (s->collapse) space = k > 0;
                else if (k) o->p[k++] = (char)c;
                continue;
            }
            if (space) { o->p[k++] = ' '; space = 0; }
            o->p[k++] = (char)s->map[c];
            last = k;
            continue;
        }
        size_t at = i;
        int32_t cp = wn_utf8_next(p, n, &i), d[32];
        if (cp < 0) { /* an invalid byte is kept as it is */
            if (space) { o->p[k++] = ' '; space = 0; }
            o->p[k++] = p[at];
            last = k;
            continue;
        }
        utf8proc_ssize_t m = 1;
        d[0] = cp;
        if (s->accents) {
            int bc = 0;
            m = utf8proc_decompose_char(cp, d, 32, UTF8PROC_DECOMPOSE, &bc);
            if (m < 1 || m > 32) { m = 1; d[0] = cp; }
        }
        o->len = k;
        if (wn_buf_reserve(o, (size_t)m * 4 + (n - i) + 64)) return -1;
        for (utf8proc_ssize_t j = 0; j < m; j++) {
            int32_t x = d[j];
            if (s->accents && utf8proc_category(x) == UTF8PROC_CATEGORY_MN) continue;
            if (wn_is_space(x)) {
                if (s->collapse) space = k > 0;
                else if (k) put_utf8(o->p, &k, x);
                continue;
            }
            if (s->lower) x = utf8proc_tolower(x);
            int cat = utf8proc_category(x);
            if (s->punct && is_punct_cat(cat)) continue;
            if (s->digits && cat == UTF8PROC_CATEGORY_ND) x = '0';
            if (space) { o->p[k++] = ' '; space = 0; }
            put_utf8(o->p, &k, x);
            last = k;
        }
    }
    o->len = last;
    return (int64_t)last;
}

/* ---- run files ----------------------------------------------------------------- */

static void run_path(const wn_stage *st, run_ref r, char *out, size_t n)
{
    static const char *const fmt[] = {"%s/keys-%05d.run", "%s/keys-merged-%05d.run", "%s/dec-%05d.run",
                                      "%s/dec-merged-%05d.run"};
    snprintf(out, n, fmt[r.kind], st->state_dir ? st->state_dir : ".", r.id);
}

static inline int is_keys(run_kind k) { return k == R_KEYS || k == R_KMERGE; }

/* Writes a whole run: header, partition index, items. */
static wn_err run_write(wn_stage *st, run_ref r, const void *items, uint64_t n, const uint64_t *off, int parts)
{
    char path[4300];
    run_path(st, r, path, sizeof path);
    size_t item = is_keys(r.kind) ? sizeof(lrec) : sizeof(uint64_t);
    run_hdr h = {is_keys(r.kind) ? RUN_KEYS_MAGIC : RUN_DECS_MAGIC, 1, (uint32_t)item, n, (uint32_t)parts, 0, {0}};
    uint64_t one[2] = {0, n};
    FILE *f = fopen(path, "wb");
    if (!f) return wn_fail(&st->err, WN_ERR_IO, "%s: cannot create: %s", path, strerror(errno));
    int bad = fwrite(&h, sizeof h, 1, f) != 1;
    bad |= fwrite(off ? off : one, sizeof(uint64_t), (size_t)parts + 1, f) != (size_t)parts + 1;
    bad |= n && fwrite(items, item, n, f) != n;
    bad |= fclose(f) != 0;
    return bad ? wn_fail(&st->err, WN_ERR_IO, "%s: write failed: %s", path, strerror(errno)) : WN_OK;
}

/* An incremental run writer, for merges: items go through a buffer; the
 * header and index are rewritten at the end. */
typedef struct {
    FILE *f;
    uint8_t *buf;
    size_t item, cap, len;
    uint64_t n, off[NPART + 1];
    int parts;
    run_hdr h;
    char path[4300];
} run_writer;

static wn_err rw_open(wn_stage *st, run_writer *w, run_ref r, int parts, size_t bytes)
{
    memset(w, 0, sizeof *w);
    run_path(st, r, w->path, sizeof w->path);
    w->item = is_keys(r.kind) ? sizeof(lrec) : sizeof(uint64_t);
    w->parts = parts;
    w->cap = bytes / w->item ? bytes / w->item : 1;
    w->h = (run_hdr){is_keys(r.kind) ? RUN_KEYS_MAGIC : RUN_DECS_MAGIC, 1, (uint32_t)w->item, 0, (uint32_t)parts, 0,
                     {0}};
    w->buf = wn_malloc(w->cap * w->item);
    if (!w->buf) return wn_fail(&st->err, WN_ERR_NOMEM, "out of memory");
    w->f = fopen(w->path, "wb");
    if (!w->f) return wn_fail(&st->err, WN_ERR_IO, "%s: cannot create: %s", w->path, strerror(errno));
    int bad = fwrite(&w->h, sizeof w->h, 1, w->f) != 1;
    bad |= fwrite(w->off, sizeof(uint64_t), (size_t)parts + 1, w->f) != (size_t)parts + 1;
    return bad ? wn_fail(&st->err, WN_ERR_IO, "%s: write failed: %s", w->path, strerror(errno)) : WN_OK;
}

static wn_err rw_flush(wn_stage *st, run_writer *w)
{
    if (w->len && fwrite(w->buf, w->item, w->len, w->f) != w->len)
        return wn_fail(&st->err, WN_ERR_IO, "%s: write failed: %s", w->path, strerror(errno));
    w->len = 0;
    return WN_OK;
}

static inline wn_err rw_put(wn_stage *st, run_writer *w, const void *x)
{
    if (w->len == w->cap) {
        wn_err e = rw_flush(st, w);
        if (e) return e;
    }
    memcpy(w->buf + w->len * w->item, x, w->item);
    w->len++;
    w->n++;
    return WN_OK;
}

/* Partition p is complete. */
static void rw_end_part(run_writer *w, int p) { w->off[p + 1] = w->n; }

static wn_err rw_close(wn_stage *st, run_writer *w)
{
    wn_err e = w->f ? rw_flush(st, w) : WN_OK;
    if (!e && w->f) {
        w->h.n_items = w->n;
        int bad = fseeko(w->f, 0, SEEK_SET) != 0;
        bad |= fwrite(&w->h, sizeof w->h, 1, w->f) != 1;
        bad |= fwrite(w->off, sizeof(uint64_t), (size_t)w->parts + 1, w->f) != (size_t)w->parts + 1;
        if (bad) e = wn_fail(&st->err, WN_ERR_IO, "%s: write failed: %s", w->path, strerror(errno));
    }
    if (w->f && fclose(w->f) && !e) e = wn_fail(&st->err, WN_ERR_IO, "%s: write failed: %s", w->path, strerror(errno));
    w->f = NULL;
    wn_free(w->buf);
    w->buf = NULL;
    return e;
}

static void stream_close(stream *t)
{
    if (t->f) fclose(t->f);
    wn_free(t->buf);
    memset(t, 0, sizeof *t);
}

static void merger_close(merger *m)
{
    for (int i = 0; i < m->n; i++) stream_close(&m->s[i]);
    m->n = 0;
}

static void stream_mem(stream *t, const void *items, uint64_t n, size_t item)
{
    memset(t, 0, sizeof *t);
    t->item = item;
    if (n) {
        t->cur = items;
        t->end = (const uint8_t *)items + n * item;
    }
}

/* Opens partition `part` of a run file, checking its header, its size and
 * its index before trusting them. */
static wn_err stream_open(wn_stage *st, stream *t, run_ref r, int part, size_t bytes)
{
    memset(t, 0, sizeof *t);
    run_path(st, r, t->path, sizeof t->path);
    int keys = is_keys(r.kind), parts = keys ? NPART : 1;
    t->item = keys ? sizeof(lrec) : sizeof(uint64_t);
    t->f = fopen(t->path, "rb");
    if (!t->f) return wn_fail(&st->err, WN_ERR_STATE, "%s: cannot open the run: %s", t->path, strerror(errno));
    run_hdr h;
    uint64_t off[NPART + 1];
    struct stat sb;
    if (fread(&h, sizeof h, 1, t->f) != 1 || h.magic != (keys ? RUN_KEYS_MAGIC : RUN_DECS_MAGIC) || h.version != 1 ||
        h.item_bytes != t->item || h.n_parts != (uint32_t)parts)
        return wn_fail(&st->err, WN_ERR_STATE, "%s: not a line_dedup %s run (or another version)", t->path,
                       keys ? "key" : "decision");
    if (fstat(fileno(t->f), &sb) ||
        (uint64_t)sb.st_size != sizeof h + (uint64_t)(parts + 1) * 8 + h.n_items * t->item ||
        fread(off, sizeof(uint64_t), (size_t)parts + 1, t->f) != (size_t)parts + 1)
        return wn_fail(&st->err, WN_ERR_STATE, "%s: the run is cut short or has a wrong size", t->path);
    int bad = off[0] != 0 || off[parts] != h.n_items;
    for (int p = 0; p < parts; p++) bad |= off[p] > off[p + 1];
    if (bad) return wn_fail(&st->err, WN_ERR_STATE, "%s: bad partition index", t->path);
    if (fseeko(t->f, (off_t)(sizeof h + (uint64_t)(parts + 1) * 8 + off[part] * t->item), SEEK_SET))
        return wn_fail(&st->err, WN_ERR_IO, "%s: seek failed", t->path);
    t->left = off[part + 1] - off[part];
    t->cap = bytes / t->item ? bytes / t->item : 1;
    if (t->left && !(t->buf = wn_malloc(t->cap * t->item))) return wn_fail(&st->err, WN_ERR_NOMEM, "out of memory");
    t->cur = t->end = t->buf;
    return WN_OK;
}

/* The current item, or NULL at the end; refills from the file. */
static wn_err stream_fill(wn_stage *st, stream *t)
{
    if (t->cur < t->end || !t->left) return WN_OK;
    size_t k = t->left < t->cap ? (size_t)t->left : t->cap;
    if (fread(t->buf, t->item, k, t->f) != k)
        return wn_fail(&st->err, WN_ERR_STATE, "%s: the run is cut short", t->path);
    t->left -= k;
    t->cur = t->buf;
    t->end = t->buf + k * t->item;
    return WN_OK;
}

static inline const void *stream_cur(const stream *t) { return t->cur < t->end ? t->cur : NULL; }

static inline wn_err stream_next(wn_stage *st, stream *t)
{
    t->cur += t->item;
    return t->cur < t->end ? WN_OK : stream_fill(st, t);
}

/* Index of the stream holding the smallest current item, -1 when all ended. */
static int merger_min(const merger *m)
{
    int best = -1;
    const void *b = NULL;
    for (int i = 0; i < m->n; i++) {
        const void *x = stream_cur(&m->s[i]);
        if (!x) continue;
        int less = m->s[i].item == sizeof(lrec) ? b && rec_less(x, b) : b && u64_less(x, b);
        if (!b || less) {
            best = i;
            b = x;
        }
    }
    return best;
}

static wn_err merger_open(wn_stage *st, ld *s, merger *m, const run_ref *r, int n, int part)
{
    m->n = 0;
    for (int i = 0; i < n; i++) {
        wn_err e = stream_open(st, &m->s[m->n++], r[i], part, s->stream_bytes);
        if (!e) e = stream_fill(st, &m->s[m->n - 1]);
        if (e) return e;
    }
    return WN_OK;
}

/* Merges runs in groups of FANIN until at most FANIN are left (merged runs
 * are scratch and removed once merged again; key runs of pass 1 stay, as a
 * checkpoint may refer to them). */
static wn_err reduce_runs(wn_stage *st, ld *s, run_ref *r, int *n)
{
    while (*n > FANIN) {
        int k = 0;
        s->merge_passes++;
        for (int g = 0; g < *n; g += FANIN) {
            int m = *n - g < FANIN ? *n - g : FANIN;
            if (m == 1) {
                r[k++] = r[g];
                continue;
            }
            int keys = is_keys(r[g].kind), parts = keys ? NPART : 1;
            run_ref out = {keys ? R_KMERGE : R_DMERGE, keys ? s->n_kmerge++ : s->n_dmerge++};
            run_writer w;
            merger mg = {0};
            wn_err e = rw_open(st, &w, out, parts, s->stream_bytes);
            for (int p = 0; !e && p < parts; p++) {
                if ((e = merger_open(st, s, &mg, r + g, m, p))) break;
                s->io_mem = (uint64_t)(m + 1) * s->stream_bytes;
                account(st, s);
                s->io_mem = 0;
                for (int i; !e && (i = merger_min(&mg)) >= 0;)
                    if (!(e = rw_put(st, &w, stream_cur(&mg.s[i])))) e = stream_next(st, &mg.s[i]);
                merger_close(&mg);
                rw_end_part(&w, p);
            }
            merger_close(&mg);
            wn_err e2 = rw_close(st, &w);
            if (e || e2) return e ? e : e2;
            for (int i = g; i < g + m; i++) {
                if (r[i].kind == R_KEYS) continue;
                char path[4300];
                run_path(st, r[i], path, sizeof path);
                remove(path);
            }
            r[k++] = out;
        }
        *n = k;
    }
    return WN_OK;
}

/* ---- pass 1 ---------------------------------------------------------------------- */

static wn_err spill_keys(wn_stage *st, ld *s)
{
    uint64_t off[NPART + 1];
    sort_partitioned(s->buf, s->n_buf, off, s->n_tls);
    wn_err e = run_write(st, (run_ref){R_KEYS, s->n_runs}, s->buf, s->n_buf, off, NPART);
    if (e) return e;
    s->n_runs++;
    s->records_spilled += s->n_buf;
    s->n_buf = 0;
    return WN_OK;
}

static wn_err push_record(wn_stage *st, ld *s, key128 k, uint64_t pos)
{
    if (s->n_buf == s->cap_buf) {
        if (s->cap_buf < s->max_buf) {
            size_t c = s->cap_buf ? s->cap_buf * 2 : 4096;
            if (c > s->max_buf) c = s->max_buf;
            lrec *b = wn_realloc(s->buf, c * sizeof *b);
            if (!b) return wn_fail(&st->err, WN_ERR_NOMEM, "out of memory growing the line-hash buffer");
            s->buf = b;
            s->cap_buf = c;
            account(st, s);
        } else {
            wn_err e = spill_keys(st, s);
            if (e) return e;
        }
    }
    s->buf[s->n_buf++] = (lrec){k.hi, k.lo, pos};
    return WN_OK;
}

/* Keys of one document's units, appended to its thread's list. */
static int doc_keys_of(ld *s, ld_tls *t, const wn_doc *d, doc_keys *dk, uint32_t tid)
{
    int64_t nu = split_units(s->paragraph, d->text.p, d->text.len, &t->u, &t->cap_u);
    if (nu < 0 || grow((void **)&t->k, &t->cap_k, t->nk + (size_t)nu, sizeof *t->k, 1024)) return -1;
    *dk = (doc_keys){tid, t->nk, (uint64_t)nu};
    for (int64_t j = 0; j < nu; j++) {
        const unit *u = &t->u[j];
        key128 k = {0, 0};
        if (!u->blank) {
            int64_t len = normalize_unit(s, &t->norm, d->text.p + u->start, u->len);
            if (len < 0) return -1;
            if (len) {
                XXH128_hash_t h = XXH3_128bits(t->norm.p, (size_t)len);
                k = (key128){h.high64, h.low64};
                if (!k.hi && !k.lo) k.lo = 1; /* {0,0} means "not hashed" */
            }
        }
        t->k[t->nk++] = k;
    }
    return 0;
}

static wn_err ld_process(wn_stage *st, wn_batch *b)
{
    ld *s = st->state;
    if (s->phase) return wn_fail(&st->err, WN_ERR_INTERNAL, "documents after the end of the stream");
    wn_err e = s->sw.open ? WN_OK : wn_spill_writer_open(&s->sw, s->path, 0, &st->err);
    if (e) return e;
    if (grow((void **)&s->bk, &s->cap_bk, b->n, sizeof *s->bk, 256))
        return wn_fail(&st->err, WN_ERR_NOMEM, "out of memory");
    for (int i = 0; i < s->n_tls; i++) s->tls[i].nk = 0;
    int oom = 0;
#pragma omp parallel for schedule(dynamic, 8) num_threads(s->n_tls)
    for (size_t i = 0; i < b->n; i++) {
        int tid = omp_get_thread_num();
        s->bk[i] = (doc_keys){0, 0, 0};
        if (b->docs[i].drop) continue;
        if (doc_keys_of(s, &s->tls[tid], &b->docs[i], &s->bk[i], (uint32_t)tid)) {
#pragma omp atomic write
            oom = 1;
        }
    }
    if (oom) return wn_fail(&st->err, WN_ERR_NOMEM, "out of memory hashing lines");
    account(st, s);
    /* in input order: number the documents, spill them, buffer their keys */
    for (size_t i = 0; i < b->n; i++) {
        wn_doc *d = &b->docs[i];
        if (d->drop) continue;
        if (s->n_docs >= DOC_LIMIT)
            return wn_fail(&st->err, WN_ERR_INPUT, "more than 2^40 documents: line_dedup numbers them in 40 bits");
        uint64_t doc = s->n_docs++;
        if ((e = wn_spill_writer_put(&s->sw, d, &st->err))) return e;
        const doc_keys *dk = &s->bk[i];
        s->lines_total += dk->n;
        if (!dk->n) continue;
        const key128 *k = s->tls[dk->tid].k + dk->start;
        for (uint64_t j = 0; j < dk->n; j++) {
            if (!k[j].hi && !k[j].lo) continue;
            if (j >= UNIT_LIMIT) {
                s->lines_past_limit++;
                continue;
            }
            s->lines_hashed++;
            if ((e = push_record(st, s, k[j], doc << UNIT_BITS | j))) return e;
        }
    }
    if ((e = wn_spill_writer_flush(&s->sw, &st->err))) return e;
    wn_batch_keep_dropped(b);
    account(st, s);
    return WN_OK;
}

/* ---- finish: decide --------------------------------------------------------------- */

static wn_err dec_spill(wn_stage *st, ld *s)
{
    sort_u64(s->dec, s->n_dec, sort_depth(s->n_dec));
    wn_err e = run_write(st, (run_ref){R_DECS, s->n_dec_runs}, s->dec, s->n_dec, NULL, 1);
    if (e) return e;
    s->n_dec_runs++;
    s->n_dec = 0;
    return WN_OK;
}

static inline wn_err dec_put(wn_stage *st, ld *s, uint64_t pos)
{
    if (s->n_dec == s->cap_dec) {
        if (s->cap_dec < s->max_dec) {
            size_t c = s->cap_dec ? s->cap_dec * 2 : MIN_DECISIONS;
            if (c > s->max_dec) c = s->max_dec;
            uint64_t *d = wn_realloc(s->dec, c * sizeof *d);
            if (!d) return wn_fail(&st->err, WN_ERR_NOMEM, "out of memory (decisions)");
            s->dec = d;
            s->cap_dec = c;
            account(st, s);
        } else {
            wn_err e = dec_spill(st, s);
            if (e) return e;
        }
    }
    s->dec[s->n_dec++] = pos;
    s->decisions++;
    return WN_OK;
}

static void group_end(ld *s, uint64_t count)
{
    s->unique++;
    if (count < 2) return;
    s->dup_keys++;
    int b = 62 - __builtin_clzll(count); /* [2^(b+1), 2^(b+2)) */
    s->hist[b]++;
}

/* One partition in key order: every key's records arrive together, ordered
 * by position, so the decision for each is known on arrival (min_count: once
 * min_count of them were seen). */
static wn_err scan_partition(wn_stage *st, ld *s, merger *m)
{
    uint64_t hi = 0, lo = 0, count = 0;
    int verdict = 0;
    wn_err e = WN_OK;
    for (int i; (i = merger_min(m)) >= 0;) {
        const lrec *r = stream_cur(&m->s[i]);
        if (!count || r->hi != hi || r->lo != lo) {
            if (count && !s->vf) group_end(s, count);
            hi = r->hi;
            lo = r->lo;
            count = 0;
            if (s->vf && (verdict = getc(s->vf)) == EOF)
                return wn_fail(&st->err, WN_ERR_STATE, "%s: fewer verdicts than distinct keys", s->vpath);
        }
        count++;
        if (s->vf) { /* across ranks: the exchange decided (verdict 1: an earlier rank has the first
                        occurrence, or the corpus holds min_count or more) */
            if (verdict || (!s->min_count && count > 1)) e = dec_put(st, s, r->pos);
        } else if (!s->min_count) {
            if (count > 1) e = dec_put(st, s, r->pos);
        } else if (count < s->min_count) {
            s->group[count - 1] = r->pos;
        } else {
            for (uint64_t j = 0; !e && count == s->min_count && j + 1 < count; j++) e = dec_put(st, s, s->group[j]);
            if (!e) e = dec_put(st, s, r->pos);
        }
        if (e || (e = stream_next(st, &m->s[i]))) return e;
    }
    if (count && !s->vf) group_end(s, count);
    return WN_OK;
}

/* ---- finish: across ranks ---------------------------------------------------------- */

/* One distinct key of this rank with its occurrences here. */
typedef struct {
    uint64_t hi, lo, n;
} dkey;
static_assert(sizeof(dkey) == 24, "an exchanged key is 24 bytes");

enum {
    MIN_ROUND_BYTES = 4096, /* a round's buffers may use at least this much */
    MAX_ROUNDS = 1 << 16,
};

static inline uint64_t mulhi(uint64_t a, uint64_t b) { return (uint64_t)(((unsigned __int128)a * b) >> 64); }

/* Partition p of the sorted records: the in-memory buffer or the runs. */
static wn_err part_open(wn_stage *st, ld *s, merger *m, int in_mem, const uint64_t *moff, const run_ref *r, int n,
                        int p)
{
    if (in_mem) {
        m->n = 1;
        stream_mem(&m->s[0], s->n_buf ? s->buf + moff[p] : NULL, moff[p + 1] - moff[p], sizeof(lrec));
        return WN_OK;
    }
    wn_err e = merger_open(st, s, m, r, n, p);
    s->io_mem = (uint64_t)n * s->stream_bytes;
    account(st, s);
    s->io_mem = 0;
    return e;
}

/* This rank's distinct keys with their counts, in key order, to
 * distinct.bin. */
static wn_err write_distinct(wn_stage *st, ld *s, int in_mem, const uint64_t *moff, const run_ref *r, int n)
{
    FILE *f = fopen(s->dpath, "wb");
    if (!f) return wn_fail(&st->err, WN_ERR_IO, "%s: cannot create: %s", s->dpath, strerror(errno));
    merger m = {0};
    wn_err e = WN_OK;
    int bad = 0;
    for (int p = 0; p < NPART && !e && !bad; p++) {
        if ((e = part_open(st, s, &m, in_mem, moff, r, n, p))) break;
        dkey k = {0, 0, 0};
        for (int i; !e && (i = merger_min(&m)) >= 0;) {
            const lrec *x = stream_cur(&m.s[i]);
            if (k.n && (x->hi != k.hi || x->lo != k.lo)) {
                bad |= fwrite(&k, sizeof k, 1, f) != 1;
                s->n_distinct++;
                k.n = 0;
            }
            k.hi = x->hi;
            k.lo = x->lo;
            k.n++;
            e = stream_next(st, &m.s[i]);
        }
        if (k.n) {
            bad |= fwrite(&k, sizeof k, 1, f) != 1;
            s->n_distinct++;
        }
        merger_close(&m);
    }
    merger_close(&m);
    bad |= fclose(f) != 0;
    if (!e && bad) e = wn_fail(&st->err, WN_ERR_IO, "%s: write failed: %s", s->dpath, strerror(errno));
    return e;
}

/* Heap order of the ranks' current keys: key, then rank. */
static inline int head_less(const dkey *const *cur, int a, int b)
{
    const dkey *x = cur[a], *y = cur[b];
    if (x->hi != y->hi) return x->hi < y->hi;
    if (x->lo != y->lo) return x->lo < y->lo;
    return a < b;
}

static void heap_down(int *h, int n, int i, const dkey *const *cur)
{
    for (int c; (c = 2 * i + 1) < n; i = c) {
        if (c + 1 < n && head_less(cur, h[c + 1], h[c])) c++;
        if (!head_less(cur, h[c], h[i])) break;
        int t = h[i];
        h[i] = h[c];
        h[c] = t;
    }
}

/* The owner's part of a round: R blocks of keys sorted by key (rank k's
 * distinct keys of this hash range with their counts) merged in key order;
 * for each key the global count goes to the recurrence figures, and every
 * rank that sent it gets one bit: min_count 0: 1 for all but the lowest
 * rank; else 1 for all when the global count reaches min_count. */
static wn_err owner_merge(wn_stage *st, ld *s, const wn_buf *recv, const uint64_t *recv_n, uint8_t **ans,
                          uint64_t *ans_n)
{
    int R = s->ranks, nh = 0, nm;
    uint64_t total = 0;
    const dkey **cur = wn_calloc((size_t)R * 3, sizeof *cur);
    uint64_t *aoff = wn_calloc((size_t)R * 2, sizeof *aoff);
    int *h = wn_calloc((size_t)R * 2, sizeof *h);
    *ans = NULL;
    if (!cur || !aoff || !h) goto oom;
    const dkey **end = cur + R, **beg = cur + 2 * R;
    uint64_t *idx = aoff + R; /* the key's index in each member's block */
    int *mr = h + R;          /* the ranks that sent the key, lowest first */
    const uint8_t *p = (const uint8_t *)recv->p;
    for (int k = 0; k < R; k++) {
        if (recv_n[k] % sizeof(dkey)) {
            wn_free(cur), wn_free(aoff), wn_free(h);
            return wn_fail(&st->err, WN_ERR_INTERNAL, "exchange: %llu bytes from rank %d are not whole keys",
                           (unsigned long long)recv_n[k], k);
        }
        cur[k] = beg[k] = (const dkey *)p;
        end[k] = (const dkey *)(p + recv_n[k]);
        p += recv_n[k];
        ans_n[k] = (recv_n[k] / sizeof(dkey) + 7) / 8;
        aoff[k] = total;
        total += ans_n[k];
        if (cur[k] < end[k]) h[nh++] = k;
    }
    if (!(*ans = wn_calloc(total ? total : 1, 1))) goto oom;
    for (int i = nh / 2; i-- > 0;) heap_down(h, nh, i, cur);
    while (nh) {
        const dkey *first = cur[h[0]];
        uint64_t hi = first->hi, lo = first->lo, count = 0;
        for (nm = 0; nh && cur[h[0]]->hi == hi && cur[h[0]]->lo == lo;) { /* the key's ranks, lowest first */
            int k = h[0];
            mr[nm] = k;
            idx[nm++] = (uint64_t)(cur[k] - beg[k]);
            count += cur[k]->n;
            if (++cur[k] == end[k]) h[0] = h[--nh];
            heap_down(h, nh, 0, cur);
        }
        group_end(s, count);
        for (int i = 0; i < nm; i++) {
            int k = mr[i];
            uint64_t j = idx[i];
            if (s->min_count ? count >= s->min_count : i > 0) (*ans)[aoff[k] + j / 8] |= (uint8_t)(1u << (j % 8));
        }
    }
    wn_free(cur), wn_free(aoff), wn_free(h);
    return WN_OK;
oom:
    wn_free(cur), wn_free(aoff), wn_free(h), wn_free(*ans);
    *ans = NULL;
    return wn_fail(&st->err, WN_ERR_NOMEM, "out of memory (exchange)");
}

/* Every rank, before the deciding scan: the distinct keys go to their
 * owners in rounds by hash range, and the answers come back as one byte per
 * distinct key in key order (verdicts.bin), which scan_partition then reads
 * beside the records (header comment). */
static wn_err across(wn_stage *st, ld *s, int in_mem, const uint64_t *moff, const run_ref *r, int n)
{
    int R = s->ranks;
    wn_err e = write_distinct(st, s, in_mem, moff, r, n);
    if (e) return e;
    uint64_t tot = s->n_distinct, most = s->n_distinct;
    wn_mpi_allreduce_sum_u64(&tot, 1);
    wn_mpi_allreduce_max_u64(&most, 1);
    /* per round: 24 B per key sent and per key received, as even as the hash spreads them;
     * beside what the deciding scan keeps (the record buffer when it fits in memory) */
    uint64_t held = in_mem ? s->cap_buf * sizeof(lrec) : 0;
    uint64_t per = s->budget > held + MIN_ROUND_BYTES ? s->budget - held : MIN_ROUND_BYTES;
    uint64_t need = (24 * most + 24 * (tot / (uint64_t)R + 1)) / 4 * 5, G = need / per + 1;
    wn_mpi_allreduce_max_u64(&G, 1);
    if (G > MAX_ROUNDS) G = MAX_ROUNDS;
    uint64_t slices = G * (uint64_t)R, n_send = 0, cap_send = 0;
    FILE *df = NULL, *vf = NULL;
    dkey *send = NULL, look;
    uint8_t *ans = NULL;
    wn_buf recv = {0}, vrecv = {0};
    uint64_t *v = wn_calloc((size_t)R * 5, sizeof *v);
    if (!v) return wn_fail(&st->err, WN_ERR_NOMEM, "out of memory");
    uint64_t *cnt = v, *send_n = v + R, *recv_n = v + 2 * R, *ans_n = v + 3 * R, *vrecv_n = v + 4 * R;
    if (!(df = fopen(s->dpath, "rb"))) {
        e = wn_fail(&st->err, WN_ERR_STATE, "%s: cannot open: %s", s->dpath, strerror(errno));
        goto done;
    }
    if (!(vf = fopen(s->vpath, "wb"))) {
        e = wn_fail(&st->err, WN_ERR_IO, "%s: cannot create: %s", s->vpath, strerror(errno));
        goto done;
    }
    uint64_t left = s->n_distinct;
    int have = left && fread(&look, sizeof look, 1, df) == 1;
    if (left && !have) {
        e = wn_fail(&st->err, WN_ERR_STATE, "%s: cut short", s->dpath);
        goto done;
    }
    for (uint64_t g = 0; g < G; g++) {
        /* the keys of hash ranges g*R .. g*R + R - 1: one contiguous stretch of the
         * sorted file, in owner order */
        memset(cnt, 0, (size_t)R * sizeof *cnt);
        n_send = 0;
        while (have) {
            uint64_t sl = mulhi(look.hi, slices);
            if (sl / (uint64_t)R != g) break;
            if (grow((void **)&send, &cap_send, n_send + 1, sizeof *send, 1024)) {
                e = wn_fail(&st->err, WN_ERR_NOMEM, "out of memory (exchange)");
                goto done;
            }
            send[n_send++] = look;
            cnt[sl % (uint64_t)R]++;
            have = --left && fread(&look, sizeof look, 1, df) == 1;
            if (left && !have) {
                e = wn_fail(&st->err, WN_ERR_STATE, "%s: cut short", s->dpath);
                goto done;
            }
        }
        for (int o = 0; o < R; o++) send_n[o] = cnt[o] * sizeof(dkey);
        if ((e = wn_mpi_alltoallv(send, send_n, &recv, recv_n))) {
            e = wn_fail(&st->err, e, "out of memory receiving keys");
            goto done;
        }
        s->io_mem = cap_send * sizeof(dkey) + recv.cap;
        account(st, s);
        s->io_mem = 0;
        if ((e = owner_merge(st, s, &recv, recv_n, &ans, ans_n))) goto done;
        wn_buf_free(&recv);
        e = wn_mpi_alltoallv(ans, ans_n, &vrecv, vrecv_n);
        wn_free(ans);
        ans = NULL;
        if (e) {
            e = wn_fail(&st->err, e, "out of memory receiving answers");
            goto done;
        }
        const uint8_t *bits = (const uint8_t *)vrecv.p;
        for (int o = 0; o < R; o++) {
            if (vrecv_n[o] != (cnt[o] + 7) / 8) {
                e = wn_fail(&st->err, WN_ERR_INTERNAL, "exchange: rank %d answered %llu bytes for %llu keys", o,
                            (unsigned long long)vrecv_n[o], (unsigned long long)cnt[o]);
                goto done;
            }
            for (uint64_t j = 0; j < cnt[o]; j++)
                if (putc(bits[j / 8] >> (j % 8) & 1, vf) == EOF) {
                    e = wn_fail(&st->err, WN_ERR_IO, "%s: write failed: %s", s->vpath, strerror(errno));
                    goto done;
                }
            bits += vrecv_n[o];
        }
    }
    if (have) {
        e = wn_fail(&st->err, WN_ERR_INTERNAL, "exchange: keys left after the last round");
        goto done;
    }
    int bad = fclose(vf) != 0;
    vf = NULL;
    if (bad) {
        e = wn_fail(&st->err, WN_ERR_IO, "%s: write failed: %s", s->vpath, strerror(errno));
        goto done;
    }
    if (!(s->vf = fopen(s->vpath, "rb"))) e = wn_fail(&st->err, WN_ERR_STATE, "%s: cannot open: %s", s->vpath, strerror(errno));
done:
    if (df) fclose(df);
    if (vf) fclose(vf);
    remove(s->dpath);
    wn_free(send);
    wn_free(ans);
    wn_buf_free(&recv);
    wn_buf_free(&vrecv);
    wn_free(v);
    return e;
}

static wn_err decide(wn_stage *st, ld *s)
{
    wn_err e = WN_OK;
    int in_mem = s->n_runs == 0, n = 0;
    uint64_t moff[NPART + 1], used;
    run_ref *r = NULL;
    merger m = {0};
    s->stream_bytes = (size_t)(s->tables / 64 < 4096 ? 4096 : s->tables / 64 > (1 << 20) ? (1 << 20) : s->tables / 64);
    uint64_t merge_mem = (uint64_t)(FANIN + 1) * s->stream_bytes;
    if (in_mem) {
        sort_partitioned(s->buf, s->n_buf, moff, s->n_tls);
    } else {
        if (s->n_buf && (e = spill_keys(st, s))) return e;
        wn_free(s->buf);
        s->buf = NULL;
        s->cap_buf = 0;
        if (!(r = wn_malloc((size_t)s->n_runs * sizeof *r))) return wn_fail(&st->err, WN_ERR_NOMEM, "out of memory");
        for (n = 0; n < s->n_runs; n++) r[n] = (run_ref){R_KEYS, n};
        if ((e = reduce_runs(st, s, r, &n))) goto done;
    }
    if (s->ranks > 1 && (e = across(st, s, in_mem, moff, r, n))) goto done;
    used = (in_mem ? s->n_buf * sizeof(lrec) : 0) + merge_mem;
    s->max_dec = s->tables > used + MIN_DECISIONS * 8 ? (size_t)((s->tables - used) / 8) : MIN_DECISIONS;
    if (s->min_count && !s->vf && !(s->group = wn_malloc(s->min_count * sizeof *s->group))) {
        e = wn_fail(&st->err, WN_ERR_NOMEM, "out of memory");
        goto done;
    }
    for (int p = 0; p < NPART && !e; p++) {
        if ((e = part_open(st, s, &m, in_mem, moff, r, n, p))) break;
        e = scan_partition(st, s, &m);
        merger_close(&m);
    }
    merger_close(&m);
    if (!e && s->vf) { /* every verdict used */
        if (getc(s->vf) != EOF)
            e = wn_fail(&st->err, WN_ERR_STATE, "%s: more verdicts than distinct keys", s->vpath);
        fclose(s->vf);
        s->vf = NULL;
        remove(s->vpath);
    }
    if (e) goto done;
    if (in_mem) {
        wn_free(s->buf);
        s->buf = NULL;
        s->cap_buf = 0;
    }
    if (!s->n_dec_runs) { /* every decision fits in memory */
        sort_u64(s->dec, s->n_dec, sort_depth(s->n_dec));
        s->dec_in_mem = 1;
    } else {
        if (s->n_dec && (e = dec_spill(st, s))) goto done;
        wn_free(s->dec);
        s->dec = NULL;
        s->cap_dec = 0;
        wn_free(r);
        if (!(r = wn_malloc((size_t)s->n_dec_runs * sizeof *r))) {
            e = wn_fail(&st->err, WN_ERR_NOMEM, "out of memory");
            goto done;
        }
        for (n = 0; n < s->n_dec_runs; n++) r[n] = (run_ref){R_DECS, n};
        if ((e = reduce_runs(st, s, r, &n)) || (e = merger_open(st, s, &s->dm, r, n, 0))) goto done;
    }
    account(st, s);
done:
    wn_free(r);
    return e;
}

/* ---- finish: emit --------------------------------------------------------------------- */

/* The next removed position in input order; 0 = none left. */
static int dec_peek(const ld *s, uint64_t *pos)
{
    if (s->dec_in_mem) {
        if (s->dec_i >= s->n_dec) return 0;
        *pos = s->dec[s->dec_i];
        return 1;
    }
    int i = merger_min(&s->dm);
    if (i < 0) return 0;
    *pos = *(const uint64_t *)stream_cur(&s->dm.s[i]);
    return 1;
}

static wn_err dec_advance(wn_stage *st, ld *s)
{
    s->consumed++;
    if (s->dec_in_mem) {
        s->dec_i++;
        return WN_OK;
    }
    int i = merger_min(&s->dm);
    return stream_next(st, &s->dm.s[i]);
}

/* Rebuilds d without the units the decisions for document `idx` remove. */
static wn_err apply(wn_stage *st, ld *s, wn_doc *d, uint64_t idx)
{
    int64_t nu = split_units(s->paragraph, d->text.p, d->text.len, &s->eu, &s->cap_eu);
    if (nu < 0) return wn_fail(&st->err, WN_ERR_NOMEM, "out of memory");
    uint64_t pos;
    wn_err e;
    while (dec_peek(s, &pos) && pos >> UNIT_BITS == idx) {
        uint64_t j = pos & UNIT_LIMIT;
        if (j >= (uint64_t)nu || s->eu[j].blank)
            return wn_fail(&st->err, WN_ERR_STATE, "%s: document %llu has no unit %llu to remove: the spill and "
                           "the runs disagree", s->path, (unsigned long long)idx, (unsigned long long)j);
        s->eu[j].removed = 1;
        if ((e = dec_advance(st, s))) return e;
    }
    unit *u = s->eu;
    if (s->follow) {
        int64_t last_kept = -1;
        for (int64_t j = 0; j < nu; j++) {
            if (u[j].removed == 1)
                for (int64_t k = j + 1; k < nu && u[k].blank; k++) u[k].removed = 2;
            if (!u[j].removed && !u[j].blank) last_kept = j;
        }
        int cut = 0;
        for (int64_t j = last_kept + 1; j < nu; j++) cut |= u[j].removed == 1;
        for (int64_t j = last_kept + 1; cut && j < nu; j++)
            if (!u[j].removed) u[j].removed = 2;
    }
    wn_buf_clear(&s->out);
    if (wn_buf_reserve(&s->out, d->text.len)) return wn_fail(&st->err, WN_ERR_NOMEM, "out of memory");
    for (int64_t j = 0; j < nu; j++) {
        if (!u[j].removed) {
            memcpy(s->out.p + s->out.len, d->text.p + u[j].start, u[j].len + u[j].nl);
            s->out.len += u[j].len + u[j].nl;
        } else if (u[j].removed == 1) {
            s->lines_removed++;
        } else {
            s->blank_removed++;
        }
    }
    /* the text keeps its ending: no newline added where there was none */
    if (s->out.len && s->out.p[s->out.len - 1] == '\n' && d->text.p[d->text.len - 1] != '\n') s->out.len--;
    s->out.p[s->out.len] = 0;
    s->bytes_removed += d->text.len - s->out.len;
    wn_buf t = d->text;
    d->text = s->out;
    s->out = t;
    d->modified = 1;
    size_t words = wn_count_words(d->text.p, d->text.len);
    if (!words) {
        d->drop = "empty_after_dedup";
        s->drop_empty++;
    } else if (words < s->min_words || (s->min_chars && wn_utf8_count(d->text.p, d->text.len) < s->min_chars)) {
        d->drop = "too_short_after_dedup";
        s->drop_short++;
    } else {
        s->docs_modified++;
    }
    return WN_OK;
}

static wn_err ld_finish(wn_stage *st, wn_batch *out)
{
    ld *s = st->state;
    wn_err e;
    if (s->phase == 2) return WN_OK;
    if (s->phase == 0) {
        s->phase = 1;
        if ((e = wn_spill_writer_finish(&s->sw, &st->err))) return e;
        /* across ranks, a rank with no documents still takes part in the exchange */
        if ((s->n_docs || s->ranks > 1) && (e = decide(st, s))) return e;
        if (!s->n_docs) { /* an empty stream */
            s->phase = 2;
            return WN_OK;
        }
        if ((e = wn_spill_reader_open(&s->sr, s->path, &st->err))) return e;
    }
    uint64_t limit = wn_stage_emit_bytes(st, EMIT_BYTES), bytes = 0;
    while (bytes < limit && out->n < EMIT_DOCS) {
        wn_doc *d;
        if ((e = wn_spill_reader_push(&s->sr, out, &d, &st->err))) return e;
        if (!d) {
            s->phase = 2;
            if (s->emitted != s->n_docs)
                return wn_fail(&st->err, WN_ERR_STATE, "%s: %llu documents read back of %llu spilled", s->path,
                               (unsigned long long)s->emitted, (unsigned long long)s->n_docs);
            if (s->consumed != s->decisions)
                return wn_fail(&st->err, WN_ERR_STATE, "%s: %llu of %llu removals applied", s->path,
                               (unsigned long long)s->consumed, (unsigned long long)s->decisions);
            break;
        }
        uint64_t idx = s->emitted++, pos;
        if (dec_peek(s, &pos) && pos >> UNIT_BITS == idx && (e = apply(st, s, d, idx))) return e;
        if (dec_peek(s, &pos) && pos >> UNIT_BITS <= idx)
            return wn_fail(&st->err, WN_ERR_STATE, "%s: removals out of order at document %llu", s->path,
                           (unsigned long long)idx);
        bytes += d->text.len;
    }
    if (s->phase == 2) { /* the scratch runs of this pass are no longer needed */
        merger_close(&s->dm);
        for (int i = 0; i < s->n_dec_runs; i++) {
            char path[4300];
            run_path(st, (run_ref){R_DECS, i}, path, sizeof path);
            remove(path);
        }
        for (int i = 0; i < s->n_dmerge; i++) {
            char path[4300];
            run_path(st, (run_ref){R_DMERGE, i}, path, sizeof path);
            remove(path);
        }
        for (int i = 0; i < s->n_kmerge; i++) {
            char path[4300];
            run_path(st, (run_ref){R_KMERGE, i}, path, sizeof path);
            remove(path);
        }
    }
    account(st, s);
    return WN_OK;
}

/* ---- open, checkpoints, report, close ------------------------------------------------------ */

static wn_err ld_open(wn_stage *st)
{
    ld *s = st->state;
    s->paragraph = !strcmp(wn_param(st, "unit")->s, "paragraph");
    s->follow = !strcmp(wn_param(st, "blank_lines")->s, "follow");
    s->min_count = (uint64_t)wn_param(st, "min_count")->i;
    s->lower = wn_param(st, "lowercase")->b;
    s->digits = wn_param(st, "digits")->b;
    s->punct = wn_param(st, "punctuation")->b;
    s->accents = wn_param(st, "accents")->b;
    s->collapse = wn_param(st, "collapse_whitespace")->b;
    s->min_chars = (uint64_t)wn_param(st, "min_chars")->i;
    s->min_words = (uint64_t)wn_param(st, "min_words")->i;
    s->budget = (uint64_t)(wn_param(st, "memory")->i ? wn_param(st, "memory")->i : st->memory_budget);
    if (s->min_count == 1)
        return wn_fail(&st->err, WN_ERR_MANIFEST, "min_count: 1 would remove every line; use 0 (keep first "
                       "occurrences) or N >= 2 (remove units that occur N or more times)");
    s->n_tls = st->threads > 0 ? st->threads : 1;
    s->tables = wn_stage_table_budget(st, s->budget, own_reserve(st, s), NULL);
    s->max_buf = (size_t)(s->tables / sizeof(lrec));
    if (s->max_buf < MIN_RECORDS) s->max_buf = MIN_RECORDS;
    for (int c = 0; c < 128; c++) {
        int cat = utf8proc_category(c);
        s->map[c] = (uint8_t)(s->lower && c >= 'A' && c <= 'Z'               ? c + 32
                              : s->digits && cat == UTF8PROC_CATEGORY_ND ? '0'
                                                                         : c);
        s->cls[c] = wn_is_space(c) ? C_SPACE : s->punct && is_punct_cat(cat) ? C_DROP : C_KEEP;
    }
    snprintf(s->path, sizeof s->path, "%s/" SPILL_NAME, st->state_dir ? st->state_dir : ".");
    snprintf(s->dpath, sizeof s->dpath, "%s/distinct.bin", st->state_dir ? st->state_dir : ".");
    snprintf(s->vpath, sizeof s->vpath, "%s/verdicts.bin", st->state_dir ? st->state_dir : ".");
    s->ranks = wn_mpi_size();
    s->tls = wn_calloc((size_t)s->n_tls, sizeof *s->tls);
    if (!s->tls) return wn_fail(&st->err, WN_ERR_NOMEM, "out of memory");
    return WN_OK;
}

typedef struct {
    uint64_t magic, spill_open, spill_bytes, n_docs, n_runs, n_buf, records_spilled, lines_total, lines_hashed,
        lines_past_limit;
} ld_ckpt;

static wn_err ld_save(wn_stage *st, FILE *f)
{
    ld *s = st->state;
    if (s->phase) return wn_fail(&st->err, WN_ERR_INTERNAL, "line_dedup cannot checkpoint once it has begun emitting");
    wn_err e = wn_spill_writer_sync(&s->sw, &st->err);
    if (e) return e;
    for (; s->synced_runs < s->n_runs; s->synced_runs++) { /* runs the snapshot refers to are durable */
        char path[4300];
        run_path(st, (run_ref){R_KEYS, s->synced_runs}, path, sizeof path);
        int fd = open(path, O_RDONLY);
        int bad = fd < 0 || fsync(fd);
        if (fd >= 0) close(fd);
        if (bad) return wn_fail(&st->err, WN_ERR_IO, "%s: cannot make durable: %s", path, strerror(errno));
    }
    ld_ckpt c = {CKPT_MAGIC, (uint64_t)s->sw.open, s->sw.bytes, s->n_docs, (uint64_t)s->n_runs, s->n_buf,
                 s->records_spilled, s->lines_total, s->lines_hashed, s->lines_past_limit};
    int bad = fwrite(&c, sizeof c, 1, f) != 1;
    bad |= s->n_buf && fwrite(s->buf, sizeof *s->buf, s->n_buf, f) != s->n_buf;
    return bad ? wn_fail(&st->err, WN_ERR_IO, "checkpoint write failed") : WN_OK;
}

static wn_err ld_load(wn_stage *st, FILE *f)
{
    ld *s = st->state;
    ld_ckpt c;
    if (fread(&c, sizeof c, 1, f) != 1 || c.magic != CKPT_MAGIC)
        return wn_fail(&st->err, WN_ERR_STATE, "not a line_dedup checkpoint");
    /* the share depends on the thread count, which a resume may change: the
     * check is against the whole budget, and a fuller buffer spills at the next push */
    size_t most = s->budget / sizeof(lrec) > s->max_buf ? (size_t)(s->budget / sizeof(lrec)) : s->max_buf;
    if (c.n_buf > most || c.n_runs > (1u << 30))
        return wn_fail(&st->err, WN_ERR_STATE, "line_dedup checkpoint: %llu buffered records for a buffer of %zu",
                       (unsigned long long)c.n_buf, most);
    if (c.n_buf) {
        if (!(s->buf = wn_malloc(c.n_buf * sizeof *s->buf))) return wn_fail(&st->err, WN_ERR_NOMEM, "out of memory");
        s->cap_buf = c.n_buf;
        if (fread(s->buf, sizeof *s->buf, c.n_buf, f) != c.n_buf)
            return wn_fail(&st->err, WN_ERR_STATE, "line_dedup checkpoint cut short");
    }
    s->n_buf = c.n_buf;
    s->n_docs = c.n_docs;
    s->n_runs = s->synced_runs = (int)c.n_runs;
    s->records_spilled = c.records_spilled;
    s->lines_total = c.lines_total;
    s->lines_hashed = c.lines_hashed;
    s->lines_past_limit = c.lines_past_limit;
    account(st, s);
    if (c.spill_open) {
        s->sw.bytes = c.spill_bytes;
        return wn_spill_writer_open(&s->sw, s->path, 1, &st->err);
    }
    return WN_OK;
}

/* Counters are sums over the ranks (every rank calls report; across ranks
 * the recurrence figures come from the keys' owners). */
static void ld_report(wn_stage *st, wn_jw *w)
{
    ld *s = st->state;
    enum { N_SUM = 16 };
    uint64_t v[N_SUM + HIST_MAX] = {s->lines_total, s->lines_hashed, s->lines_removed, s->blank_removed,
                                    s->lines_past_limit, s->bytes_removed, s->docs_modified, s->drop_empty,
                                    s->drop_short, s->unique, s->dup_keys, (uint64_t)s->n_runs, s->records_spilled,
                                    (uint64_t)s->merge_passes, (uint64_t)(s->n_kmerge + s->n_dmerge),
                                    (uint64_t)s->n_dec_runs};
    memcpy(v + N_SUM, s->hist, sizeof s->hist);
    wn_mpi_allreduce_sum_u64(v, N_SUM + HIST_MAX);
    const uint64_t *hist = v + N_SUM;
    wn_jw_key(w, "unit"); wn_jw_str(w, s->paragraph ? "paragraph" : "line");
    wn_jw_key(w, "mode"); wn_jw_str(w, s->min_count ? "min_count" : "first_occurrence");
    wn_jw_key(w, "lines_total"); wn_jw_u64(w, v[0]);
    wn_jw_key(w, "lines_hashed"); wn_jw_u64(w, v[1]);
    wn_jw_key(w, "lines_removed"); wn_jw_u64(w, v[2]);
    wn_jw_key(w, "blank_lines_removed"); wn_jw_u64(w, v[3]);
    wn_jw_key(w, "lines_past_limit"); wn_jw_u64(w, v[4]);
    wn_jw_key(w, "bytes_removed"); wn_jw_u64(w, v[5]);
    wn_jw_key(w, "docs_modified"); wn_jw_u64(w, v[6]);
    wn_jw_key(w, "docs_dropped");
    wn_jw_obj_begin(w);
    wn_jw_key(w, "empty_after_dedup"); wn_jw_u64(w, v[7]);
    wn_jw_key(w, "too_short_after_dedup"); wn_jw_u64(w, v[8]);
    wn_jw_obj_end(w);
    wn_jw_key(w, "unique_line_hashes"); wn_jw_u64(w, v[9]);
    wn_jw_key(w, "duplicated_line_hashes"); wn_jw_u64(w, v[10]);
    wn_jw_key(w, "spill");
    wn_jw_obj_begin(w);
    wn_jw_key(w, "partitions"); wn_jw_i64(w, NPART);
    wn_jw_key(w, "runs"); wn_jw_u64(w, v[11]);
    wn_jw_key(w, "records_spilled"); wn_jw_u64(w, v[12]);
    wn_jw_key(w, "merge_passes"); wn_jw_u64(w, v[13]);
    wn_jw_key(w, "merged_runs"); wn_jw_u64(w, v[14]);
    wn_jw_key(w, "decision_runs"); wn_jw_u64(w, v[15]);
    wn_jw_obj_end(w);
    wn_jw_key(w, "memory_budget_bytes"); wn_jw_u64(w, s->budget);
    wn_jw_key(w, "table_budget_bytes"); wn_jw_u64(w, s->tables);
    /* distinct units by how often they occur, log2 buckets [2,4), [4,8), ... */
    int top = 0;
    for (int b = 0; b < HIST_MAX; b++)
        if (hist[b]) top = b + 1;
    if (!top) top = 1;
    wn_jw_key(w, "recurrence_histogram");
    wn_jw_obj_begin(w);
    wn_jw_key(w, "unit"); wn_jw_str(w, "distinct units by occurrences in the corpus (>= 2)");
    wn_jw_key(w, "edges");
    wn_jw_arr_begin(w);
    for (int b = 0; b <= top; b++) wn_jw_f64(w, (double)(1ull << (b + 1 < 64 ? b + 1 : 63)));
    wn_jw_arr_end(w);
    wn_jw_key(w, "counts");
    wn_jw_arr_begin(w);
    for (int b = 0; b < top; b++) wn_jw_u64(w, hist[b]);
    wn_jw_arr_end(w);
    wn_jw_obj_end(w);
}

static void ld_close(wn_stage *st)
{
    ld *s = st->state;
    wn_spill_writer_close(&s->sw); /* an interrupted run: the spill stays for resume */
    wn_spill_reader_close(&s->sr);
    merger_close(&s->dm);
    if (s->vf) fclose(s->vf);
    for (int i = 0; s->tls && i < s->n_tls; i++) {
        wn_free(s->tls[i].u);
        wn_free(s->tls[i].k);
        wn_buf_free(&s->tls[i].norm);
    }
    wn_free(s->tls);
    wn_free(s->bk);
    wn_free(s->buf);
    wn_free(s->dec);
    wn_free(s->group);
    wn_free(s->eu);
    wn_buf_free(&s->out);
}

const wn_stage_def wn_stage_line_dedup = {
    .name = "line_dedup",
    .summary = "remove lines (or paragraphs) repeated across the corpus, cc_net style; memory-bounded, two passes",
    .doc = "Hashes every line (unit: paragraph: every run of non-blank lines) with xxh3-128 after\n"
           "normalization - accents stripped (NFD, Mn dropped), whitespace collapsed and trimmed,\n"
           "lowercased, punctuation and non-printing characters (P*, Cc, Cf) dropped, digits as 0; each\n"
           "part a switch - and removes every repeat after the first occurrence in input order\n"
           "(min_count: 0) or every occurrence of units seen min_count or more times in the corpus.\n"
           "Blank lines and units that normalize to empty are never duplicates; blank_lines: follow\n"
           "removes the blank lines after a removed unit with it. Documents that lost units and are left\n"
           "empty or below min_chars/min_words are dropped (empty_after_dedup, too_short_after_dedup).\n"
           "Documents are held back in a zstd spill; the hashes stay within `memory` and spill as sorted\n"
           "runs in 64 hash-range partitions, merged partition by partition; output in input order.\n"
           "Across MPI ranks each rank sends its distinct unit hashes with their counts (24 bytes\n"
           "each) to their owner rank (a hash range), in rounds within the memory budget; owners add\n"
           "the counts and answer one bit per hash and rank (an earlier rank has the first occurrence,\n"
           "or the global count reaches min_count), so every rank removes what one process would.\n"
           "Counters are sums over the ranks.\n"
           "`memory` bounds the\n"
           "process's peak RSS: the hash buffers get it less the run's reserve (reader, batch, writer)\n"
           "and the stage's spill compressor, unit keys and 1 MiB per thread (table_budget_bytes).\n"
           "Report extras: lines_total, lines_removed, blank_lines_removed, bytes_removed, docs_modified,\n"
           "docs_dropped, unique_line_hashes, spill (partitions, runs, merges), recurrence_histogram.",
    .params = params,
    .n_params = WN_ARRAY_LEN(params),
    .state_size = sizeof(ld),
    .open = ld_open,
    .process = ld_process,
    .finish = ld_finish,
    .save = ld_save,
    .load = ld_load,
    .report = ld_report,
    .close = ld_close,
};
