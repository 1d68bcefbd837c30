/*
 * exact_dedup.c - keeps the first occurrence of each text, by the xxh3-128
 * hash of its normalized form (whitespace runs collapsed and trimmed by
 * default; optionally lowercased).
 *
 * State is a set of 128-bit keys, bounded by the memory budget: an
 * open-addressing table in memory, and when the table would outgrow the
 * budget its keys are sorted and written to a run file in the stage's state
 * directory ("spilled"); the table starts empty again. A key is new when it
 * is in neither the table nor any run. Each run has an in-memory fence array
 * (the first key of every 4 KiB page) so a lookup reads one page per run,
 * with pread (not mmap, whose touched pages would count in the process's
 * RSS and grow it with the runs). Runs are immutable once written, which
 * keeps checkpoints cheap: a checkpoint records the run count and the
 * table's keys.
 *
 * Hashing runs in parallel over the batch; deciding (insert, compare) runs
 * in input order, so the first occurrence wins whatever the thread count.
 *
 * Across MPI ranks (wn_mpi_size() > 1; rank r's documents all come before
 * rank r + 1's in the input order). Each rank filters its own documents
 * with the key set above, as one process does. A locally first document of
 * rank 0 is the first occurrence in the whole input, so rank 0 streams as
 * one process does; every other rank holds its documents back (a docspill,
 * docs.spill.zst, with an id-only stub for each local duplicate) and writes
 * one 16-byte key per held document to keys.bin ({0,0} for a local
 * duplicate). Every rank writes the keys of its locally first documents
 * there (rank 0 only those). In the first finish call the ranks exchange
 * those keys: key space is cut into R x G hash ranges (R ranks, G rounds);
 * in round g each key of range g*R + o goes to its owner rank o
 * (wn_mpi_alltoallv: 16 bytes per locally first document, sent once); the
 * owner takes the blocks in rank order through a hash table and answers one
 * bit per key: 1 when a lower rank sent the same key (that rank holds an
 * earlier occurrence). The bits come back by a second all-to-all and mark
 * the losers in losers.bits (1 bit per held document, a file-backed map).
 * The held documents are then emitted in order, local duplicates and losers
 * dropped with the one-process reason (duplicate). Bytes sent: 16 per
 * locally first document plus 1 bit back, plus 8 bytes per rank pair and
 * round for the block sizes. G is the smallest count that keeps one round's
 * buffers (16 B per key sent, 32 B per key received with the owner's table)
 * within the memory budget, the keys being spread evenly by the hash; the
 * key table of the streaming pass is freed first. Report counters are sums
 * over the ranks.
 *
 * Memory: `memory` bounds the process's peak RSS. The table gets what is
 * left after the run's reserve and the stage's other buffers
 * (wn_stage_table_budget; 1 MiB of normalized text per thread and the
 * batch's keys), and grows only while the old and the new table fit in it
 * together (rehashing holds both; so does the sort of a spill, whose copy is
 * at most half the table). The fence arrays add 1/256 of the spilled keys.
 */
#include <errno.h>
#include <fcntl.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <utf8proc.h>
#include <xxhash.h>

#include "../src/docspill.h"
#include "../src/fs.h"
#include "../src/mpi.h"
#include "../src/stage.h"
#include "../src/text.h"

static const wn_param_def params[] = {
    {"collapse_whitespace", WN_P_BOOL, "true", 0, 0, NULL,
     "hash text with runs of whitespace collapsed to one space and ends trimmed"},
    {"lowercase", WN_P_BOOL, "false", 0, 0, NULL, "hash the lowercased text (Unicode simple case folding)"},
    {"memory", WN_P_SIZE, "0", 0, 9e18, NULL,
     "peak RSS of the process: the key table gets it less the run's and the stage's other buffers, and spills "
     "beyond that (0 = the manifest's memory budget)"},
};

typedef struct {
    uint64_t lo, hi;
} key128;

enum { KEYS_PER_PAGE = 4096 / sizeof(key128) };

typedef struct {
    int fd;       /* the sorted keys */
    size_t n;
    key128 *fence; /* first key of each page */
    size_t n_fence;
} run_file;

typedef struct {
    int collapse, lower;
    uint64_t budget, tables; /* the budget; the table's share of it */
    key128 *table; /* open addressing; {0,0} = empty */
    size_t cap, count;
    run_file *runs;
    int n_runs;
    key128 *batch_keys;
    size_t batch_cap;
    struct dd_tls { wn_buf b; char pad[64 - sizeof(wn_buf)]; } *tls; /* per-thread, own cache line */
    int n_tls;
    uint64_t duplicates, spilled_keys;
    /* across ranks (header comment) */
    int ranks, hold;        /* ranks > 1; hold: this rank holds its documents back */
    int phase;              /* 0 streaming, 1 emitting, 2 done */
    char spill_path[4200], keys_path[4200], bits_path[4200];
    wn_spill_writer sw;
    FILE *kf;               /* keys.bin, appending */
    uint64_t n_keyrec;      /* records in keys.bin (held documents when hold) */
    uint64_t n_first;       /* of them, keys of locally first documents */
    uint64_t unique_local;  /* distinct keys of this rank, once the table is freed */
    uint64_t losers;        /* locally first documents an earlier rank holds too */
    uint8_t *bits;          /* losers.bits, mapped */
    size_t bits_len;
    wn_spill_reader sr;
    FILE *kr;               /* keys.bin, reading while emitting */
    uint64_t emitted;
} dedup;

static int key_cmp(const void *a, const void *b)
{
    const key128 *x = a, *y = b;
    if (x->hi != y->hi) return x->hi < y->hi ? -1 : 1;
    if (x->lo != y->lo) return x->lo < y->lo ? -1 : 1;
    return 0;
}

static wn_err table_alloc(dedup *s, size_t cap)
{
    wn_free(s->table);
    s->table = wn_calloc(cap, sizeof *s->table);
    if (!s->table) return WN_ERR_NOMEM;
    s->cap = cap;
    s->count = 0;
    return WN_OK;
}

/* Returns 1 if k was already in the table, else inserts it and returns 0. */
static int table_insert(dedup *s, key128 k)
{
    size_t mask = s->cap - 1, i = (size_t)k.lo & mask;
    for (;;) {
        key128 *t = &s->table[i];
        if (!t->lo && !t->hi) {
            *t = k;
            s->count++;
            return 0;
        }
        if (t->lo == k.lo && t->hi == k.hi) return 1;
        i = (i + 1) & mask;
    }
}

static int table_has(const dedup *s, key128 k)
{
    size_t mask = s->cap - 1;
    for (size_t i = (size_t)k.lo & mask;; i = (i + 1) & mask) {
        const key128 *t = &s->table[i];
        if (!t->lo && !t->hi) return 0;
        if (t->lo == k.lo && t->hi == k.hi) return 1;
    }
}


/* Reads n bytes at offset off; 0 on success. */
static int read_at(int fd, void *buf, size_t n, uint64_t off)
{
    for (size_t got = 0; got < n;) {
        ssize_t k = pread(fd, (char *)buf + got, n - got, (off_t)(off + got));
        if (k < 0 && errno == EINTR) continue;
        if (k <= 0) return -1;
        got += (size_t)k;
    }
    return 0;
}

/* 1 when k is in the run, 0 when not, -1 when the page cannot be read. */
static int run_has(const run_file *r, key128 k)
{
    key128 page[KEYS_PER_PAGE];
    if (!r->n) return 0;
    /* fence: the last page whose first key <= k */
    size_t lo = 0, hi = r->n_fence;
    while (hi - lo > 1) {
        size_t mid = (lo + hi) / 2;
        if (key_cmp(&r->fence[mid], &k) <= 0) lo = mid; else hi = mid;
    }
    size_t a = lo * KEYS_PER_PAGE, b = a + KEYS_PER_PAGE < r->n ? a + KEYS_PER_PAGE : r->n;
    if (read_at(r->fd, page, (b - a) * sizeof k, (uint64_t)a * sizeof k)) return -1;
    return bsearch(&k, page, b - a, sizeof k, key_cmp) != NULL;
}

static void run_path(const wn_stage *st, int i, char *out, size_t n)
{
    snprintf(out, n, "%s/run-%05d.keys", st->state_dir, i);
}

/* Opens run i and reads its fence array. */
static wn_err run_open(wn_stage *st, dedup *s, int i)
{
    char path[4200];
    run_path(st, i, path, sizeof path);
    run_file *r = &s->runs[i];
    memset(r, 0, sizeof *r);
    int fd = r->fd = open(path, O_RDONLY);
    if (fd < 0) return wn_fail(&st->err, WN_ERR_IO, "%s: cannot open spill: %s", path, strerror(errno));
    struct stat sb;
    fstat(fd, &sb);
    r->n = (size_t)sb.st_size / sizeof(key128);
    if (r->n) {
        r->n_fence = (r->n + KEYS_PER_PAGE - 1) / KEYS_PER_PAGE;
        r->fence = wn_malloc(r->n_fence * sizeof *r->fence);
        if (!r->fence) return WN_ERR_NOMEM;
        for (size_t f = 0; f < r->n_fence; f++)
            if (read_at(fd, &r->fence[f], sizeof *r->fence, (uint64_t)f * KEYS_PER_PAGE * sizeof(key128)))
                return wn_fail(&st->err, WN_ERR_IO, "%s: read failed: %s", path, strerror(errno));
    }
    return WN_OK;
}

/* Sorts the table's keys into a new run file and empties the table. */
static wn_err spill(wn_stage *st, dedup *s)
{
    size_t k = 0;
    for (size_t i = 0; i < s->cap; i++)
        if (s->table[i].lo || s->table[i].hi) s->table[k++] = s->table[i];
    qsort(s->table, k, sizeof *s->table, key_cmp);
    char path[4200];
    run_path(st, s->n_runs, path, sizeof path);
    FILE *f = fopen(path, "wb");
    if (!f) return wn_fail(&st->err, WN_ERR_IO, "%s: cannot create spill: %s", path, strerror(errno));
    int bad = fwrite(s->table, sizeof *s->table, k, f) != k;
    bad |= fflush(f) != 0 || fsync(fileno(f)) != 0;
    bad |= fclose(f) != 0;
    if (bad) return wn_fail(&st->err, WN_ERR_IO, "%s: write failed: %s", path, strerror(errno));
    run_file *runs = wn_realloc(s->runs, (size_t)(s->n_runs + 1) * sizeof *runs);
    if (!runs) return WN_ERR_NOMEM;
    s->runs = runs;
    s->n_runs++;
    s->spilled_keys += k;
    memset(s->table, 0, s->cap * sizeof *s->table);
    s->count = 0;
    return run_open(st, s, s->n_runs - 1);
}

static wn_err dd_open(wn_stage *st)
{
    dedup *s = st->state;
    const char *dir = st->state_dir ? st->state_dir : ".";
    s->ranks = wn_mpi_size();
    s->hold = s->ranks > 1 && wn_mpi_rank() > 0;
    snprintf(s->spill_path, sizeof s->spill_path, "%s/docs.spill.zst", dir);
    snprintf(s->keys_path, sizeof s->keys_path, "%s/keys.bin", dir);
    snprintf(s->bits_path, sizeof s->bits_path, "%s/losers.bits", dir);
    s->collapse = wn_param(st, "collapse_whitespace")->b;
    s->lower = wn_param(st, "lowercase")->b;
    s->budget = (uint64_t)(wn_param(st, "memory")->i ? wn_param(st, "memory")->i : st->memory_budget);
    s->n_tls = st->threads > 0 ? st->threads : 1;
    /* besides the table: each thread's normalized text, the batch's keys (documents of 512 bytes or more) */
    s->tables = wn_stage_table_budget(st, s->budget,
                                      (uint64_t)s->n_tls * (1 << 20) + wn_stage_emit_bytes(st, 4 << 20) / 512 * 16,
                                      NULL);
    s->tls = wn_calloc((size_t)s->n_tls, sizeof *s->tls);
    if (!s->tls || table_alloc(s, 1024)) return wn_fail(&st->err, WN_ERR_NOMEM, "out of memory");
    st->mem_peak = s->cap * sizeof(key128);
    return WN_OK;
}

/* SWAR helpers over eight bytes (exact: no false positives). */
#define ONES 0x0101010101010101ull
#define HIGH 0x8080808080808080ull
/* 0x80 in every byte >= c, for bytes < 0x80 and 0 < c <= 0x80 */
static inline uint64_t ge_mask(uint64_t w, unsigned c) { return ((w & ~HIGH) + (0x80 - c) * ONES) & HIGH; }
/* 0x80 in every zero byte */
static inline uint64_t zero_mask(uint64_t y) { return ~(((y & ~HIGH) + ~HIGH) | y | ~HIGH); }

/* The text as hashed: whitespace runs collapsed to one space and the ends
 * trimmed, optionally lowercased. Eight bytes go through at once when they
 * are printable ASCII with single spaces (the bulk of most text); anything
 * else takes the code-point path. The last byte written says whether a
 * space may follow. */
static int text_key(const dedup *s, wn_buf *t, const char *p, size_t n, key128 *key)
{
    if (!s->collapse && !s->lower) {
        XXH128_hash_t h = XXH3_128bits(p, n);
        *key = (key128){h.low64, h.high64};
        return 1;
    }
    wn_buf_clear(t);
    if (wn_buf_reserve(t, n + 16)) return 0;
    char *o = t->p;
    size_t k = 0, i = 0;
    while (i < n) {
        if (i + 8 <= n) {
            uint64_t w;
            memcpy(&w, p + i, 8);
            uint64_t special = (w & HIGH) | (~ge_mask(w, 0x21) & HIGH); /* < 0x21 or >= 0x80 */
            uint64_t spaces = zero_mask(w ^ (0x20 * ONES));
            int regular = s->collapse ? special == spaces && !(spaces & (spaces << 8)) &&
                                            !((spaces & 0x80) && (k == 0 || o[k - 1] == ' '))
                                      : !(w & HIGH);
            if (regular) {
                if (s->lower) w |= (ge_mask(w, 'A') & ~ge_mask(w, 'Z' + 1)) >> 2;
                memcpy(o + k, &w, 8);
                k += 8;
                i += 8;
                continue;
            }
        }
        size_t start = i;
        unsigned char c = (unsigned char)p[i];
        int32_t cp = c < 0x80 ? (int32_t)c : wn_utf8_next(p, n, &i);
        if (c < 0x80) i++;
        if (s->collapse && cp >= 0 && wn_is_space(cp)) {
            if (k && o[k - 1] != ' ') o[k++] = ' ';
            continue;
        }
        int32_t l = s->lower && cp >= 0 ? utf8proc_tolower(cp) : cp;
        if (l == cp) {
            memcpy(o + k, p + start, i - start);
            k += i - start;
            continue;
        }
        t->len = k; /* lowercasing can change the length: append, then make room */
        if (wn_utf8_put(t, l) || wn_buf_reserve(t, (n - i) + 16)) return 0;
        o = t->p;
        k = t->len;
    }
    if (s->collapse && k && o[k - 1] == ' ') k--;
    XXH128_hash_t h = XXH3_128bits(o, k);
    *key = (key128){h.low64, h.high64};
    return 1;
}

/* Whether k was seen before (*seen = 1); else adds it to the key set. */
static wn_err seen_or_insert(wn_stage *st, dedup *s, key128 k, int *seen)
{
    *seen = 0;
    for (int r = 0; r < s->n_runs && !*seen; r++)
        if ((*seen = run_has(&s->runs[r], k)) < 0) {
            char path[4200];
            run_path(st, r, path, sizeof path);
            return wn_fail(&st->err, WN_ERR_IO, "%s: read failed: %s", path, strerror(errno));
        }
    if (*seen) return WN_OK;
    /* keep load <= 1/2: grow while the budget allows, else spill */
    if ((s->count + 1) * 2 > s->cap) {
        size_t bytes = s->cap * 2 * sizeof(key128);
        if (bytes + bytes / 2 <= s->tables) { /* the old table lives through the rehash */
            key128 *old = s->table;
            size_t old_cap = s->cap;
            s->table = NULL;
            if (table_alloc(s, old_cap * 2)) {
                s->table = old;
                return wn_fail(&st->err, WN_ERR_NOMEM, "out of memory growing the key table");
            }
            for (size_t j = 0; j < old_cap; j++)
                if (old[j].lo || old[j].hi) table_insert(s, old[j]);
            wn_free(old);
            if (bytes > st->mem_peak) st->mem_peak = bytes;
        } else {
            /* a key the table holds must not come back as new from the emptied table */
            if ((*seen = table_has(s, k))) return WN_OK;
            wn_err e = spill(st, s);
            if (e) return e;
        }
    }
    *seen = table_insert(s, k);
    return WN_OK;
}

/* ---- across ranks: pass 1 ------------------------------------------------------------ */

static wn_err keys_write(wn_stage *st, dedup *s, key128 k)
{
    if (fwrite(&k, sizeof k, 1, s->kf) != 1)
        return wn_fail(&st->err, WN_ERR_IO, "%s: write failed: %s", s->keys_path, strerror(errno));
    s->n_keyrec++;
    return WN_OK;
}

/* Opens keys.bin (and the spill on a holding rank) at the first batch. */
static wn_err held_ready(wn_stage *st, dedup *s)
{
    if (!s->kf && !(s->kf = fopen(s->keys_path, "wb")))
        return wn_fail(&st->err, WN_ERR_IO, "%s: cannot create: %s", s->keys_path, strerror(errno));
    return s->hold && !s->sw.open ? wn_spill_writer_open(&s->sw, s->spill_path, 0, &st->err) : WN_OK;
}

/* Rank 0 records the keys of its first occurrences; a holding rank spills
 * every document (an id-only stub for a local duplicate, dropped in finish)
 * with its key ({0,0} for a local duplicate). */
static wn_err held_put(wn_stage *st, dedup *s, const wn_doc *d, key128 k, int seen)
{
    wn_err e;
    if (!s->hold) {
        if (seen) return WN_OK;
        s->n_first++;
        return keys_write(st, s, k);
    }
    if (seen) {
        wn_doc stub = {0};
        stub.id = d->id; /* borrowed for the call */
        stub.file = d->file;
        stub.record = d->record;
        if ((e = wn_spill_writer_put(&s->sw, &stub, &st->err))) return e;
        k = (key128){0, 0};
    } else {
        if ((e = wn_spill_writer_put(&s->sw, d, &st->err))) return e;
        s->n_first++;
    }
    return keys_write(st, s, k);
}

static wn_err dd_process(wn_stage *st, wn_batch *b)
{
    dedup *s = st->state;
    wn_err e;
    if (s->phase) return wn_fail(&st->err, WN_ERR_INTERNAL, "documents after the end of the stream");
    if (b->n > s->batch_cap) {
        key128 *k = wn_realloc(s->batch_keys, b->n * sizeof *k);
        if (!k) return wn_fail(&st->err, WN_ERR_NOMEM, "out of memory");
        s->batch_keys = k;
        s->batch_cap = b->n;
    }
    int oom = 0;
#pragma omp parallel for schedule(dynamic, 32) num_threads(s->n_tls)
    for (size_t i = 0; i < b->n; i++) {
        key128 k;
        if (!text_key(s, &s->tls[omp_get_thread_num()].b, b->docs[i].text.p, b->docs[i].text.len, &k)) {
#pragma omp atomic write
            oom = 1;
            continue;
        }
        if (!k.lo && !k.hi) k.lo = 1; /* {0,0} marks an empty slot */
        s->batch_keys[i] = k;
    }
    if (oom) return wn_fail(&st->err, WN_ERR_NOMEM, "out of memory normalizing text for hashing");
    if (s->ranks > 1 && (e = held_ready(st, s))) return e;
    for (size_t i = 0; i < b->n; i++) {
        key128 k = s->batch_keys[i];
        int seen;
        if ((e = seen_or_insert(st, s, k, &seen))) return e;
        if (s->ranks > 1 && (e = held_put(st, s, &b->docs[i], k, seen))) return e;
        if (seen && !s->hold) {
            b->docs[i].drop = "duplicate";
            s->duplicates++;
        }
    }
    if (s->hold) { /* every document waits for the exchange in finish */
        if ((e = wn_spill_writer_flush(&s->sw, &st->err))) return e;
        wn_batch_keep_dropped(b);
    }
    return WN_OK;
}

/* ---- across ranks: the exchange (first finish call) --------------------------------- */

enum {
    SCAN_KEYS = 4096,       /* keys.bin is read this many keys at a time */
    MIN_ROUND_BYTES = 4096, /* a round's buffers may use at least this much */
    MAX_ROUNDS = 1 << 16,
    EMIT_BYTES = 4 << 20,
    EMIT_DOCS = 65536,
};

typedef struct {
    FILE *f;
    key128 *buf;
    size_t n, i;
    uint64_t left; /* records not yet read into buf */
} keyscan;

static inline uint64_t mulhi(uint64_t a, uint64_t b) { return (uint64_t)(((unsigned __int128)a * b) >> 64); }

static void scan_close(keyscan *k)
{
    if (k->f) fclose(k->f);
    wn_free(k->buf);
    memset(k, 0, sizeof *k);
}

/* keys.bin from its start. */
static wn_err scan_open(wn_stage *st, dedup *s, keyscan *k)
{
    scan_close(k);
    k->left = s->n_keyrec;
    if (!k->left) return WN_OK;
    if (!(k->buf = wn_malloc(SCAN_KEYS * sizeof *k->buf))) return wn_fail(&st->err, WN_ERR_NOMEM, "out of memory");
    if (!(k->f = fopen(s->keys_path, "rb")))
        return wn_fail(&st->err, WN_ERR_STATE, "%s: cannot open: %s", s->keys_path, strerror(errno));
    return WN_OK;
}

/* The next record; *got = 0 after the last. */
static wn_err scan_next(wn_stage *st, dedup *s, keyscan *k, key128 *out, int *got)
{
    if (k->i == k->n) {
        *got = 0;
        if (!k->left) return WN_OK;
        size_t m = k->left < SCAN_KEYS ? (size_t)k->left : SCAN_KEYS;
        if (fread(k->buf, sizeof *k->buf, m, k->f) != m)
            return wn_fail(&st->err, WN_ERR_STATE, "%s: cut short (%llu keys expected)", s->keys_path,
                           (unsigned long long)s->n_keyrec);
        k->left -= m;
        k->n = m;
        k->i = 0;
    }
    *out = k->buf[k->i++];
    *got = 1;
    return WN_OK;
}

/* The owner decides one round: blocks from rank 0, 1, ... (16-byte keys,
 * distinct within a block) through a hash table of indices; bit j of block
 * k's answer is 1 when a lower rank sent key j of rank k too. */
static wn_err owner_decide(wn_stage *st, dedup *s, const wn_buf *recv, const uint64_t *recv_n, uint8_t **ans,
                           uint64_t *ans_n, uint64_t *mem)
{
    int R = s->ranks;
    uint64_t nr = recv->len / sizeof(key128), total = 0;
    for (int k = 0; k < R; k++) {
        if (recv_n[k] % sizeof(key128))
            return wn_fail(&st->err, WN_ERR_INTERNAL, "exchange: %llu bytes from rank %d are not whole keys",
                           (unsigned long long)recv_n[k], k);
        ans_n[k] = (recv_n[k] / sizeof(key128) + 7) / 8;
        total += ans_n[k];
    }
    size_t cap = 16;
    while (cap < 2 * nr) cap *= 2;
    uint64_t *table = wn_calloc(cap, sizeof *table); /* index + 1 into recv; 0 = empty */
    *ans = wn_calloc(total ? total : 1, 1);
    if (!table || !*ans) {
        wn_free(table);
        return wn_fail(&st->err, WN_ERR_NOMEM, "out of memory (exchange)");
    }
    *mem = cap * sizeof *table + total;
    const uint8_t *p = (const uint8_t *)recv->p;
    uint64_t at = 0, ao = 0;
    for (int k = 0; k < R; k++) {
        uint64_t n = recv_n[k] / sizeof(key128);
        for (uint64_t j = 0; j < n; j++) {
            key128 key, o;
            memcpy(&key, p + (at + j) * sizeof key, sizeof key);
            size_t i = (size_t)key.lo & (cap - 1);
            for (; table[i]; i = (i + 1) & (cap - 1)) {
                memcpy(&o, p + (table[i] - 1) * sizeof o, sizeof o);
                if (o.lo == key.lo && o.hi == key.hi) break;
            }
            if (table[i]) (*ans)[ao + j / 8] |= (uint8_t)(1u << (j % 8));
            else table[i] = at + j + 1;
        }
        at += n;
        ao += ans_n[k];
    }
    wn_free(table);
    return WN_OK;
}

/* Every rank, in the first finish call: G rounds of (keys to owners, bits
 * back), marking this rank's losers in losers.bits (header comment). */
static wn_err exchange(wn_stage *st, dedup *s)
{
    int R = s->ranks;
    uint64_t tot = s->n_first, most = s->n_first;
    wn_mpi_allreduce_sum_u64(&tot, 1);
    wn_mpi_allreduce_max_u64(&most, 1);
    /* per round: 16 B per key sent, 16 B per key received + 16 B of table each */
    uint64_t per = s->budget > MIN_ROUND_BYTES ? s->budget : MIN_ROUND_BYTES;
    uint64_t need = (16 * most + 32 * (tot / (uint64_t)R + 1)) / 4 * 5, G = need / per + 1;
    if (G > MAX_ROUNDS) G = MAX_ROUNDS;
    uint64_t slices = G * (uint64_t)R;
    wn_err e = WN_OK;
    keyscan ks = {0};
    wn_buf recv = {0}, vrecv = {0};
    key128 *send = NULL;
    uint8_t *ans = NULL;
    uint64_t *v = wn_calloc((size_t)R * 6, sizeof *v);
    if (!v) return wn_fail(&st->err, WN_ERR_NOMEM, "out of memory");
    uint64_t *cnt = v, *off = v + R, *send_n = v + 2 * R, *recv_n = v + 3 * R, *ans_n = v + 4 * R,
             *vrecv_n = v + 5 * R;
    if (s->hold && s->n_keyrec) { /* one bit per held document, in a file-backed map */
        s->bits_len = (size_t)((s->n_keyrec + 7) / 8);
        int fd = open(s->bits_path, O_RDWR | O_CREAT | O_TRUNC, 0644);
        if (fd < 0 || ftruncate(fd, (off_t)s->bits_len)) {
            if (fd >= 0) close(fd);
            e = wn_fail(&st->err, WN_ERR_IO, "%s: cannot create: %s", s->bits_path, strerror(errno));
            goto done;
        }
        void *m = mmap(NULL, s->bits_len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        close(fd);
        if (m == MAP_FAILED) {
            e = wn_fail(&st->err, WN_ERR_IO, "%s: mmap failed: %s", s->bits_path, strerror(errno));
            goto done;
        }
        s->bits = m;
    }
    for (uint64_t g = 0; g < G; g++) {
        key128 k;
        int got;
        /* this round's keys, grouped by owner, each group in input order */
        memset(cnt, 0, (size_t)R * sizeof *cnt);
        if ((e = scan_open(st, s, &ks))) goto done;
        while (!(e = scan_next(st, s, &ks, &k, &got)) && got) {
            uint64_t sl = mulhi(k.hi, slices);
            if ((k.lo || k.hi) && sl / (uint64_t)R == g) cnt[sl % (uint64_t)R]++;
        }
        if (e) goto done;
        uint64_t n_send = 0;
        for (int o = 0; o < R; o++) {
            off[o] = n_send;
            n_send += cnt[o];
            send_n[o] = cnt[o] * sizeof(key128);
        }
        if (n_send && !(send = wn_malloc(n_send * sizeof *send))) {
            e = wn_fail(&st->err, WN_ERR_NOMEM, "out of memory (exchange)");
            goto done;
        }
        if ((e = scan_open(st, s, &ks))) goto done;
        while (!(e = scan_next(st, s, &ks, &k, &got)) && got) {
            uint64_t sl = mulhi(k.hi, slices);
            if ((k.lo || k.hi) && sl / (uint64_t)R == g) send[off[sl % (uint64_t)R]++] = k;
        }
        if (e) goto done;
        if ((e = wn_mpi_alltoallv(send, send_n, &recv, recv_n))) {
            e = wn_fail(&st->err, e, "out of memory receiving keys");
            goto done;
        }
        wn_free(send);
        send = NULL;
        uint64_t mem = 0;
        if ((e = owner_decide(st, s, &recv, recv_n, &ans, ans_n, &mem))) goto done;
        mem += recv.cap + n_send * sizeof(key128);
        if (mem > st->mem_peak) st->mem_peak = mem;
        wn_buf_free(&recv);
        e = wn_mpi_alltoallv(ans, ans_n, &vrecv, vrecv_n);
        wn_free(ans);
        ans = NULL;
        if (e) {
            e = wn_fail(&st->err, e, "out of memory receiving answers");
            goto done;
        }
        /* the answers: bit j of owner o's block is this rank's j-th key to o */
        uint64_t at = 0;
        for (int o = 0; o < R; o++) {
            if (vrecv_n[o] != (cnt[o] + 7) / 8) {
                e = wn_fail(&st->err, WN_ERR_INTERNAL, "exchange: rank %d answered %llu bytes for %llu keys", o,
                            (unsigned long long)vrecv_n[o], (unsigned long long)cnt[o]);
                goto done;
            }
            off[o] = at * 8;
            at += vrecv_n[o];
        }
        const uint8_t *bits = (const uint8_t *)vrecv.p;
        if (!s->hold) { /* rank 0 holds the first occurrence of all its keys */
            for (uint64_t i = 0; i < at; i++)
                if (bits[i]) {
                    e = wn_fail(&st->err, WN_ERR_INTERNAL, "exchange: a key of rank 0 marked as seen before");
                    goto done;
                }
            continue;
        }
        if ((e = scan_open(st, s, &ks))) goto done;
        for (uint64_t i = 0; !(e = scan_next(st, s, &ks, &k, &got)) && got; i++) {
            uint64_t sl = mulhi(k.hi, slices);
            if (!(k.lo || k.hi) || sl / (uint64_t)R != g) continue;
            uint64_t j = off[sl % (uint64_t)R]++;
            if (bits[j / 8] >> (j % 8) & 1) {
                s->bits[i / 8] |= (uint8_t)(1u << (i % 8));
                s->losers++;
            }
        }
        if (e) goto done;
    }
done:
    scan_close(&ks);
    wn_free(send);
    wn_free(ans);
    wn_buf_free(&recv);
    wn_buf_free(&vrecv);
    wn_free(v);
    return e;
}

static wn_err keys_close(wn_stage *st, dedup *s)
{
    if (!s->kf) return WN_OK;
    int bad = fclose(s->kf) != 0;
    s->kf = NULL;
    return bad ? wn_fail(&st->err, WN_ERR_IO, "%s: write failed: %s", s->keys_path, strerror(errno)) : WN_OK;
}

static void bits_unmap(dedup *s)
{
    if (s->bits) munmap(s->bits, s->bits_len);
    s->bits = NULL;
}

/* One process: nothing held. Across ranks: the exchange, then the held
 * documents in order, a batch's worth per call. */
static wn_err dd_finish(wn_stage *st, wn_batch *out)
{
    dedup *s = st->state;
    wn_err e;
    if (s->ranks < 2 || s->phase == 2) return WN_OK;
    if (s->phase == 0) {
        s->phase = 1;
        if ((e = wn_spill_writer_finish(&s->sw, &st->err)) || (e = keys_close(st, s))) return e;
        /* the streaming pass is over: its key table makes room for the exchange */
        s->unique_local = s->count + s->spilled_keys;
        wn_free(s->table);
        s->table = NULL;
        s->cap = s->count = 0;
        if ((e = exchange(st, s))) return e;
        if (!s->hold || !s->n_keyrec) {
            s->phase = 2;
            bits_unmap(s);
            return WN_OK;
        }
        if ((e = wn_spill_reader_open(&s->sr, s->spill_path, &st->err))) return e;
        if (!(s->kr = fopen(s->keys_path, "rb")))
            return wn_fail(&st->err, WN_ERR_STATE, "%s: cannot open: %s", s->keys_path, strerror(errno));
    }
    uint64_t limit = wn_stage_emit_bytes(st, EMIT_BYTES), bytes = 0;
    while (bytes < limit && out->n < EMIT_DOCS) {
        wn_doc *d;
        if ((e = wn_spill_reader_push(&s->sr, out, &d, &st->err))) return e;
        if (!d) {
            s->phase = 2;
            if (s->emitted != s->n_keyrec)
                return wn_fail(&st->err, WN_ERR_STATE, "%s: %llu documents read back of %llu held", s->spill_path,
                               (unsigned long long)s->emitted, (unsigned long long)s->n_keyrec);
            break;
        }
        key128 k;
        uint64_t i = s->emitted++;
        if (i >= s->n_keyrec || fread(&k, sizeof k, 1, s->kr) != 1)
            return wn_fail(&st->err, WN_ERR_STATE, "%s: more documents held than keys in %s", s->spill_path,
                           s->keys_path);
        if ((!k.lo && !k.hi) || (s->bits[i / 8] >> (i % 8) & 1)) {
            d->drop = "duplicate";
            s->duplicates++;
        } else {
            bytes += d->text.len;
        }
    }
    if (s->phase == 2) {
        fclose(s->kr);
        s->kr = NULL;
        bits_unmap(s);
        remove(s->bits_path);
    }
    return WN_OK;
}

/* ---- checkpoints, report, close -------------------------------------------------------- */

#define CKPT1 0x77646564757031ull /* "wdedup1": one process, before ranks */
#define CKPT2 0x77646564757032ull /* "wdedup2" */

/* Checkpoint: run count, table size, duplicates, then (wdedup2) the rank
 * count, the spill's resume point, the keys.bin record counts; then the
 * table's keys. */
static wn_err dd_save(wn_stage *st, FILE *f)
{
    dedup *s = st->state;
    wn_err e;
    if (s->phase) return wn_fail(&st->err, WN_ERR_INTERNAL, "exact_dedup cannot checkpoint once it has begun emitting");
    if (s->kf && (fflush(s->kf) || fsync(fileno(s->kf))))
        return wn_fail(&st->err, WN_ERR_IO, "%s: cannot make durable: %s", s->keys_path, strerror(errno));
    if ((e = wn_spill_writer_sync(&s->sw, &st->err))) return e;
    uint64_t hdr[9] = {CKPT2, (uint64_t)s->n_runs, s->count, s->duplicates, (uint64_t)s->ranks,
                       (uint64_t)s->sw.open, s->sw.bytes, s->n_keyrec, s->n_first};
    if (fwrite(hdr, sizeof hdr, 1, f) != 1) return wn_fail(&st->err, WN_ERR_IO, "write failed");
    for (size_t i = 0; i < s->cap; i++)
        if ((s->table[i].lo || s->table[i].hi) && fwrite(&s->table[i], sizeof(key128), 1, f) != 1)
            return wn_fail(&st->err, WN_ERR_IO, "write failed");
    return WN_OK;
}

static wn_err dd_load(wn_stage *st, FILE *f)
{
    dedup *s = st->state;
    uint64_t hdr[9] = {0};
    if (fread(hdr, 4 * sizeof *hdr, 1, f) != 1 || (hdr[0] != CKPT1 && hdr[0] != CKPT2))
        return wn_fail(&st->err, WN_ERR_STATE, "not an exact_dedup checkpoint");
    hdr[4] = 1;
    if (hdr[0] == CKPT2 && fread(hdr + 4, 5 * sizeof *hdr, 1, f) != 1)
        return wn_fail(&st->err, WN_ERR_STATE, "checkpoint is cut short");
    if (hdr[4] != (uint64_t)s->ranks)
        return wn_fail(&st->err, WN_ERR_STATE, "exact_dedup checkpoint of a run over %llu ranks, resumed over %d",
                       (unsigned long long)hdr[4], s->ranks);
    s->runs = wn_calloc(hdr[1] ? hdr[1] : 1, sizeof *s->runs);
    if (!s->runs) return WN_ERR_NOMEM;
    s->duplicates = hdr[3];
    for (int i = 0; i < (int)hdr[1]; i++) {
        s->n_runs = i + 1; /* close sees the runs opened so far */
        wn_err e = run_open(st, s, i);
        if (e) return e;
        s->spilled_keys += s->runs[i].n;
    }
    size_t cap = 1024;
    while (cap < hdr[2] * 2 + 2) cap *= 2;
    if (table_alloc(s, cap)) return WN_ERR_NOMEM;
    for (uint64_t i = 0; i < hdr[2]; i++) {
        key128 k;
        if (fread(&k, sizeof k, 1, f) != 1) return wn_fail(&st->err, WN_ERR_STATE, "checkpoint is cut short");
        table_insert(s, k);
    }
    st->mem_peak = s->cap * sizeof(key128);
    if (s->ranks > 1) { /* keys.bin and the spill back to the checkpoint, then appended to */
        s->n_keyrec = hdr[7];
        s->n_first = hdr[8];
        if ((s->n_keyrec || wn_exists(s->keys_path)) && truncate(s->keys_path, (off_t)(s->n_keyrec * sizeof(key128))))
            return wn_fail(&st->err, WN_ERR_STATE, "%s: cannot truncate to the checkpoint: %s", s->keys_path,
                           strerror(errno));
        if (!(s->kf = fopen(s->keys_path, "ab")))
            return wn_fail(&st->err, WN_ERR_IO, "%s: cannot open: %s", s->keys_path, strerror(errno));
        if (hdr[5]) {
            s->sw.bytes = hdr[6];
            return wn_spill_writer_open(&s->sw, s->spill_path, 1, &st->err);
        }
    }
    return WN_OK;
}

/* Counters are sums over the ranks (every rank calls report). */
static void dd_report(wn_stage *st, wn_jw *w)
{
    dedup *s = st->state;
    uint64_t v[3] = {(s->phase ? s->unique_local : s->count + s->spilled_keys) - s->losers, (uint64_t)s->n_runs,
                     s->spilled_keys};
    wn_mpi_allreduce_sum_u64(v, 3);
    wn_jw_key(w, "unique_keys"); wn_jw_u64(w, v[0]);
    wn_jw_key(w, "spill_runs"); wn_jw_u64(w, v[1]);
    wn_jw_key(w, "spilled_keys"); wn_jw_u64(w, v[2]);
    wn_jw_key(w, "memory_budget_bytes"); wn_jw_u64(w, s->budget);
    wn_jw_key(w, "table_budget_bytes"); wn_jw_u64(w, s->tables);
}

static void dd_close(wn_stage *st)
{
    dedup *s = st->state;
    for (int i = 0; i < s->n_runs; i++) {
        if (s->runs[i].fd >= 0) close(s->runs[i].fd);
        wn_free(s->runs[i].fence);
    }
    wn_free(s->runs);
    wn_free(s->table);
    wn_free(s->batch_keys);
    for (int i = 0; s->tls && i < s->n_tls; i++) wn_buf_free(&s->tls[i].b);
    wn_free(s->tls);
    if (s->kf) fclose(s->kf); /* an interrupted run: keys.bin and the spill stay for resume */
    if (s->kr) fclose(s->kr);
    wn_spill_writer_close(&s->sw);
    wn_spill_reader_close(&s->sr);
    bits_unmap(s);
}

const wn_stage_def wn_stage_exact_dedup = {
    .name = "exact_dedup",
    .summary = "drop documents whose (whitespace-normalized) text was seen before; memory-bounded",
    .doc = "Hashes each text with xxh3-128 after collapsing whitespace runs (and, if asked,\n"
           "lowercasing) and keeps the first occurrence in input order. The key set lives in an\n"
           "in-memory table, then spills sorted runs to the run's state directory; lookups check the\n"
           "table and every run. `memory` bounds the process's peak RSS: the table gets it less the\n"
           "run's reserve (reader, batch, writer) and 1 MiB per thread (table_budget_bytes).\n"
           "Drop reason: duplicate.\n"
           "Across MPI ranks each rank filters its own documents the same way; ranks after the first\n"
           "hold theirs back (a spill) until finish, where every rank sends the 16-byte keys of its\n"
           "locally first documents to their owner rank (a hash range) and gets one bit back per key:\n"
           "seen on an earlier rank (dropped as duplicate) or not. Rounds keep the exchange within\n"
           "the memory budget. The output is identical for any rank count.\n"
           "Report extras: unique_keys, spill_runs, spilled_keys (sums over ranks; the spill\n"
           "figures depend on how the input is split), memory_budget_bytes, table_budget_bytes.",
    .params = params,
    .n_params = WN_ARRAY_LEN(params),
    .state_size = sizeof(dedup),
    .open = dd_open,
    .process = dd_process,
    .finish = dd_finish,
    .save = dd_save,
    .load = dd_load,
    .report = dd_report,
    .close = dd_close,
};
