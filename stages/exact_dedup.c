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
#include <sys/stat.h>
#include <unistd.h>
#include <utf8proc.h>
#include <xxhash.h>

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

static wn_err dd_process(wn_stage *st, wn_batch *b)
{
    dedup *s = st->state;
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
    for (size_t i = 0; i < b->n; i++) {
        key128 k = s->batch_keys[i];
        int seen = 0;
        for (int r = 0; r < s->n_runs && !seen; r++)
            if ((seen = run_has(&s->runs[r], k)) < 0) {
                char path[4200];
                run_path(st, r, path, sizeof path);
                return wn_fail(&st->err, WN_ERR_IO, "%s: read failed: %s", path, strerror(errno));
            }
        if (!seen) {
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
                    wn_err e = spill(st, s);
                    if (e) return e;
                }
            }
            seen = table_insert(s, k);
        }
        if (seen) {
            b->docs[i].drop = "duplicate";
            s->duplicates++;
        }
    }
    return WN_OK;
}

/* Checkpoint: run count, duplicates, spilled keys, then the table's keys. */
static wn_err dd_save(wn_stage *st, FILE *f)
{
    dedup *s = st->state;
    uint64_t hdr[4] = {0x77646564757031ull /* "wdedup1" */, (uint64_t)s->n_runs, s->count, s->duplicates};
    if (fwrite(hdr, sizeof hdr, 1, f) != 1) return wn_fail(&st->err, WN_ERR_IO, "write failed");
    for (size_t i = 0; i < s->cap; i++)
        if ((s->table[i].lo || s->table[i].hi) && fwrite(&s->table[i], sizeof(key128), 1, f) != 1)
            return wn_fail(&st->err, WN_ERR_IO, "write failed");
    return WN_OK;
}

static wn_err dd_load(wn_stage *st, FILE *f)
{
    dedup *s = st->state;
    uint64_t hdr[4];
    if (fread(hdr, sizeof hdr, 1, f) != 1 || hdr[0] != 0x77646564757031ull)
        return wn_fail(&st->err, WN_ERR_STATE, "not an exact_dedup checkpoint");
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
    return WN_OK;
}

static void dd_report(wn_stage *st, wn_jw *w)
{
    dedup *s = st->state;
    wn_jw_key(w, "unique_keys"); wn_jw_u64(w, s->count + s->spilled_keys);
    wn_jw_key(w, "spill_runs"); wn_jw_i64(w, s->n_runs);
    wn_jw_key(w, "spilled_keys"); wn_jw_u64(w, s->spilled_keys);
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
}

const wn_stage_def wn_stage_exact_dedup = {
    .name = "exact_dedup",
    .summary = "drop documents whose (whitespace-normalized) text was seen before; memory-bounded",
    .doc = "Hashes each text with xxh3-128 after collapsing whitespace runs (and, if asked,\n"
           "lowercasing) and keeps the first occurrence in input order. The key set lives in an\n"
           "in-memory table, then spills sorted runs to the run's state directory; lookups check the\n"
           "table and every run. `memory` bounds the process's peak RSS: the table gets it less the\n"
           "run's reserve (reader, batch, writer) and 1 MiB per thread (table_budget_bytes).\n"
           "Drop reason: duplicate. Report extras: unique_keys, spill_runs, spilled_keys,\n"
           "memory_budget_bytes, table_budget_bytes.",
    .params = params,
    .n_params = WN_ARRAY_LEN(params),
    .state_size = sizeof(dedup),
    .open = dd_open,
    .process = dd_process,
    .save = dd_save,
    .load = dd_load,
    .report = dd_report,
    .close = dd_close,
};
