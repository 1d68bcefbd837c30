/*
 * minhash_dedup.c - near-duplicate removal with MinHash LSH: documents whose
 * shingle sets are similar are clustered, and each cluster keeps its first
 * document in input order. The math (normalization, shingles, signatures,
 * bands, the tables) is in src/minhash.h.
 *
 * Pass 1 (process): every document is appended to a zstd spill in the
 * stage's state directory (src/docspill.h) and held back. Its signature is
 * computed in parallel over the batch (or on the GPU), cut into bands, and
 * one (band key, document index) entry per band goes to the bucket table,
 * which spills sorted runs when it outgrows the budget.
 *
 * End of stream (the first finish call): the bucket table is merged band by
 * band into candidate pairs (each bucket member with the bucket's first
 * document; with verify, also with its second), which go to the pair table
 * (sorted, made unique, spilled when big). Without verify every distinct
 * pair is joined in a union-find over document indices. With verify, a pass
 * over the spill writes the sorted shingle sets of the documents that
 * appear in a pair to a file, and a pair is joined only when the exact
 * Jaccard similarity of the two sets is >= threshold. The root of each set
 * is its smallest index: the document kept.
 *
 * Pass 2 (finish, a batch per call): the spill is read back in input order;
 * a document that is not its cluster's root is dropped as near_duplicate;
 * the root of a cluster of two or more gets the attributes minhash_cluster
 * (clusters numbered from 0 in the order of their kept documents) and
 * minhash_cluster_size. Singletons pass unchanged. action: annotate drops
 * nothing: every member of a cluster gets both attributes, and all but the
 * root also minhash_duplicate: true (the decisions are the same).
 *
 * Memory: `memory` (or the manifest's budget) bounds the process's peak
 * RSS. The bucket and pair tables get it less the run's reserve (reader,
 * batch, writer: wn_stage_table_budget) and less the stage's other buffers
 * (own_reserve: the spill's compressor, the batch's signature arrays for
 * documents of 512 bytes on average, 2 MiB of shingling scratch per thread,
 * with the GPU the batch's shingle hashes twice). Within the tables' share
 * at the end of the stream: 8 bytes a document (union-find and cluster
 * sizes), and with verify 8 bytes per document in a candidate pair; the
 * bucket table goes to disk before they are allocated when both would not
 * fit.
 *
 * Determinism: signatures are a function of the text; entries enter the
 * tables in input order; merges break ties by document index; the
 * union-find's roots are minima. Nothing depends on the thread count, the
 * budget (spilled or not) or the device.
 *
 * Tests without a GPU set WINNOW_TEST_MINHASH_HOST_KERNEL=1: the GPU path
 * runs (per-document hashes gathered into one array with offsets, band keys
 * from the returned signatures) with wn_mh_signatures in the kernel's place.
 *
 * Resume: while streaming, a checkpoint ends the spill's zstd frame, fsyncs
 * it and records its length, the counters and the bucket table's buffered
 * entries (its runs are immutable files). Once finish has begun the stage
 * does not checkpoint (the framework does not ask).
 */
#include <errno.h>
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../kernels/device.h"
#include "../kernels/minhash_kernels.h"
#include "../src/docspill.h"
#include "../src/minhash.h"
#include "../src/stage.h"

static const wn_param_def params[] = {
    {"shingle", WN_P_ENUM, "word", 0, 0, "word|char",
     "shingles of consecutive words, or of consecutive characters (code points) of the normalized text"},
    {"ngram", WN_P_INT, "0", 0, 1000, NULL, "words or characters per shingle; 0 = 5 words or 24 characters"},
    {"bands", WN_P_INT, "14", 1, 1024, NULL, "LSH bands: documents sharing one band's hashes become candidates"},
    {"rows", WN_P_INT, "8", 1, 1024, NULL, "hashes per band; bands x rows permutations (at most 4096)"},
    {"normalize", WN_P_BOOL, "true", 0, 0, NULL,
     "before shingling: NFKD, case folding, marks and punctuation removed, digit runs to 0 (false: split "
     "on whitespace only)"},
    {"seed", WN_P_INT, "1", 0, 9e18, NULL, "seed of the permutations"},
    {"verify", WN_P_BOOL, "true", 0, 0, NULL,
     "join a candidate pair only when the exact Jaccard similarity of its shingle sets is >= threshold "
     "(false: every LSH candidate pair, as datatrove)"},
    {"threshold", WN_P_FLOAT, "0.8", 0, 1, NULL, "verify: the Jaccard similarity that makes two documents duplicates"},
    {"memory", WN_P_SIZE, "0", 0, 9e18, NULL,
     "peak RSS of the process: the LSH tables get it less the run's and the stage's other buffers, and spill "
     "beyond that (0 = the manifest's memory budget)"},
    {"action", WN_P_ENUM, "drop", 0, 0, "drop|annotate",
     "drop: remove all but the first document of each cluster; annotate: remove nothing, mark every "
     "member of a cluster (minhash_cluster, minhash_cluster_size; minhash_duplicate on all but the first)"},
};

enum { EMIT_DOCS = 65536, EMIT_BYTES = 4 << 20, HIST_BINS = 16, VERIFY_CHUNK = 1 << 16 };
#define SPILL_NAME "docs.spill.zst"
#define SETS_NAME "minhash-sets.bin"
#define CKPT_MAGIC 0x3168736e696d77ull /* "wminsh1" */
enum { TLS_RESERVE = 2 << 20, DOC_BYTES_MIN = 512 };

typedef struct {
    uint64_t *p;
    size_t n, cap;
} u64vec;

static wn_err vec_room(u64vec *v, size_t n)
{
    if (n <= v->cap) return WN_OK;
    size_t cap = v->cap ? v->cap : 256;
    while (cap < n) cap *= 2;
    uint64_t *p = wn_realloc(v->p, cap * sizeof *p);
    if (!p) return WN_ERR_NOMEM;
    v->p = p;
    v->cap = cap;
    return WN_OK;
}

typedef struct {
    wn_mh_scratch sc;
    uint64_t shingles;
    u64vec va, vb; /* verify: the two sets of a pair */
    int64_t last_a; /* whose set va holds, -1 = none */
    char pad[64];
} mh_tls;

typedef struct {
    /* parameters */
    wn_mh_cfg cfg;
    int bands, rows, nperm, verify, gpu, annotate;
    int emulate; /* tests: the GPU path's host code with the CPU reference as the kernel */
    double threshold;
    uint64_t seed, budget, tables, reserve; /* tables: the budget less the reserve (or half of it) */
    uint64_t *pa, *pb; /* the permutations */
    /* the spill */
    char path[4200];
    wn_spill_writer sw;
    wn_spill_reader sr;
    uint64_t n_docs, n_empty;
    /* pass 1 */
    mh_tls *tls;
    int n_tls;
    wn_batch *cur;     /* the batch being signed */
    uint64_t *sig;     /* batch: nperm per document */
    uint64_t *keys;    /* batch: bands per document */
    uint64_t *nsh;     /* batch: shingles per document */
    size_t cap_batch;
    u64vec *dv;        /* GPU: each document's shingle hashes */
    size_t cap_dv;
    u64vec gh, goff;   /* GPU: all hashes of the batch, offsets */
    wn_mh_buckets bk;
    uint64_t sig_docs, shingles;
    double sig_seconds;
    /* end of stream */
    wn_mh_pairs pr;
    uint32_t *parent, *size;
    uint32_t *cid;      /* annotate: each root's cluster number */
    uint64_t candidates, verified, clusters, removed, largest;
    uint64_t hist[HIST_BINS];
    /* verify */
    uint64_t *inv;      /* bitset: documents in a pair */
    uint32_t *rank;     /* set bits before each 64-bit word */
    uint64_t *setoff;   /* start of each involved document's set in the sets file (+ end) */
    uint64_t n_inv;
    int sets_fd;
    uint64_t *chunk;    /* pairs waiting for verification */
    uint8_t *ok;
    size_t n_chunk;
    /* pass 2 */
    int phase;          /* 0 streaming, 1 emitting, 2 done */
    uint64_t emitted, next_cluster;
} mh;

/* ---- memory accounting ------------------------------------------------------------------ */

/* Peak bytes of the stage's state: what it holds now plus `extra`, with the
 * bucket table counted at its own peak (its sort scratch, its merge
 * buffers), a slight overestimate once the table is gone. */
static void account(wn_stage *st, uint64_t extra)
{
    mh *s = st->state;
    uint64_t bk = wn_mh_buckets_mem(&s->bk);
    uint64_t m = (s->bk.mem_peak > bk ? s->bk.mem_peak : bk) + wn_spill_writer_mem(&s->sw) + extra;
    m += s->cap_batch * ((uint64_t)s->nperm + s->bands + 1) * 8;
    for (int i = 0; s->tls && i < s->n_tls; i++)
        m += s->tls[i].sc.norm.cap + s->tls[i].sc.cap_pos * 4 + s->tls[i].sc.cap_h * 8 +
             (s->tls[i].va.cap + s->tls[i].vb.cap) * 8;
    for (size_t i = 0; i < s->cap_dv; i++) m += s->dv[i].cap * 8;
    m += (s->gh.cap + s->goff.cap) * 8;
    if (m > st->mem_peak) st->mem_peak = m;
}

/* ---- open ---------------------------------------------------------------------------------- */

/* The stage's buffers besides its tables, at their largest (the header's
 * Memory paragraph): what wn_stage_table_budget takes off the budget. */
static uint64_t own_reserve(const wn_stage *st, const mh *s)
{
    uint64_t batch = wn_stage_emit_bytes(st, EMIT_BYTES);
    uint64_t docs = batch / DOC_BYTES_MIN + 1;
    return wn_spill_writer_mem_estimate() + docs * ((uint64_t)s->nperm + s->bands + 1) * 8 +
           (uint64_t)s->n_tls * TLS_RESERVE + (s->gpu ? 3 * batch : 0);
}

static wn_err mh_open(wn_stage *st)
{
    mh *s = st->state;
    s->cfg.unit = strcmp(wn_param(st, "shingle")->s, "char") ? WN_MH_WORD : WN_MH_CHAR;
    s->cfg.n = (int)wn_param(st, "ngram")->i;
    if (!s->cfg.n) s->cfg.n = s->cfg.unit == WN_MH_WORD ? 5 : 24;
    s->cfg.normalize = wn_param(st, "normalize")->b;
    s->bands = (int)wn_param(st, "bands")->i;
    s->rows = (int)wn_param(st, "rows")->i;
    s->nperm = s->bands * s->rows;
    s->verify = wn_param(st, "verify")->b;
    s->annotate = !strcmp(wn_param(st, "action")->s, "annotate");
    s->threshold = wn_param(st, "threshold")->f;
    s->seed = (uint64_t)wn_param(st, "seed")->i;
    s->budget = (uint64_t)(wn_param(st, "memory")->i ? wn_param(st, "memory")->i : st->memory_budget);
    s->sets_fd = -1;
    if (s->nperm > 4096)
        return wn_fail(&st->err, WN_ERR_MANIFEST, "bands x rows = %d permutations; at most 4096", s->nperm);
    snprintf(s->path, sizeof s->path, "%s/" SPILL_NAME, st->state_dir ? st->state_dir : ".");
    s->pa = wn_malloc((size_t)s->nperm * sizeof *s->pa);
    s->pb = wn_malloc((size_t)s->nperm * sizeof *s->pb);
    s->n_tls = st->threads > 0 ? st->threads : 1;
    s->tls = wn_calloc((size_t)s->n_tls, sizeof *s->tls);
    if (!s->pa || !s->pb || !s->tls) return wn_fail(&st->err, WN_ERR_NOMEM, "out of memory");
    wn_mh_perms(s->seed, s->nperm, s->pa, s->pb);
    /* device: cuda signs on the GPU (an error when there is none); auto does when one is visible */
    const char *dev = st->run && st->run->device ? st->run->device : "auto";
    int want = !strcmp(dev, "cuda") || (!strcmp(dev, "auto") && wn_cuda_device_count() > 0);
    const char *emu = getenv("WINNOW_TEST_MINHASH_HOST_KERNEL");
    if (emu && *emu == '1' && strcmp(dev, "cpu")) { /* tests without a GPU: batch, upload layout, keys */
        s->gpu = s->emulate = 1;
        want = 0;
    }
    if (want) {
        if (!wn_cuda_built() || wn_cuda_device_count() < 1)
            return wn_fail(&st->err, WN_ERR_MANIFEST, "device: cuda, but %s",
                           wn_cuda_built() ? "no CUDA device is visible" : "this winnow was built without CUDA");
        s->gpu = 1;
        snprintf(st->device_used, sizeof st->device_used, "cuda");
    }
    s->tables = wn_stage_table_budget(st, s->budget, own_reserve(st, s), &s->reserve);
    wn_err e = wn_mh_buckets_init(&s->bk, st->state_dir ? st->state_dir : ".", s->bands, s->tables, &st->err);
    if (e) return e;
    account(st, 0);
    return WN_OK;
}

/* ---- pass 1 ---------------------------------------------------------------------------------- */

static wn_err batch_room(mh *s, size_t n)
{
    if (n <= s->cap_batch) return WN_OK;
    wn_free(s->sig);
    wn_free(s->keys);
    wn_free(s->nsh);
    s->sig = wn_malloc(n * (size_t)s->nperm * sizeof *s->sig);
    s->keys = wn_malloc(n * (size_t)s->bands * sizeof *s->keys);
    s->nsh = wn_malloc(n * sizeof *s->nsh);
    s->cap_batch = s->sig && s->keys && s->nsh ? n : 0;
    return s->cap_batch ? WN_OK : WN_ERR_NOMEM;
}

/* CPU: shingles, signature and band keys of one document. */
static wn_err sign_doc(wn_stage *st, int thread, wn_doc *d)
{
    mh *s = st->state;
    mh_tls *t = &s->tls[thread];
    size_t i = (size_t)(d - s->cur->docs);
    wn_err e = wn_mh_shingles(&t->sc, &s->cfg, d->text.p ? d->text.p : "", d->text.len);
    if (e) return e; /* WN_ERR_INPUT: longer than WN_MH_MAX_TEXT */
    s->nsh[i] = t->sc.n_h;
    t->shingles += t->sc.n_h;
    if (!t->sc.n_h) return WN_OK;
    uint64_t *sig = s->sig + i * (size_t)s->nperm;
    wn_mh_signature(t->sc.h, t->sc.n_h, s->pa, s->pb, s->nperm, sig);
    wn_mh_band_keys(sig, s->bands, s->rows, s->keys + i * (size_t)s->bands);
    return WN_OK;
}

/* GPU, step 1: the shingle hashes of one document into its slot. */
static wn_err hash_doc(wn_stage *st, int thread, wn_doc *d)
{
    mh *s = st->state;
    mh_tls *t = &s->tls[thread];
    size_t i = (size_t)(d - s->cur->docs);
    wn_err e = wn_mh_shingles(&t->sc, &s->cfg, d->text.p ? d->text.p : "", d->text.len);
    if (e || (e = vec_room(&s->dv[i], t->sc.n_h))) return e;
    memcpy(s->dv[i].p, t->sc.h, t->sc.n_h * sizeof *t->sc.h);
    s->dv[i].n = t->sc.n_h;
    s->nsh[i] = t->sc.n_h;
    t->shingles += t->sc.n_h;
    return WN_OK;
}

static wn_err gpu_batch(wn_stage *st, mh *s, wn_batch *b)
{
    if (b->n > s->cap_dv) {
        u64vec *dv = wn_realloc(s->dv, b->n * sizeof *dv);
        if (!dv) return wn_fail(&st->err, WN_ERR_NOMEM, "out of memory");
        memset(dv + s->cap_dv, 0, (b->n - s->cap_dv) * sizeof *dv);
        s->dv = dv;
        s->cap_dv = b->n;
    }
    for (size_t i = 0; i < b->n; i++) s->dv[i].n = s->nsh[i] = 0;
    wn_err e = wn_stage_each_doc(st, b, s->n_tls, hash_doc);
    if (e) return e;
    if (vec_room(&s->goff, b->n + 1)) return wn_fail(&st->err, WN_ERR_NOMEM, "out of memory");
    s->goff.p[0] = 0;
    for (size_t i = 0; i < b->n; i++) s->goff.p[i + 1] = s->goff.p[i] + s->dv[i].n;
    if (vec_room(&s->gh, s->goff.p[b->n])) return wn_fail(&st->err, WN_ERR_NOMEM, "out of memory");
    for (size_t i = 0; i < b->n; i++) memcpy(s->gh.p + s->goff.p[i], s->dv[i].p, s->dv[i].n * sizeof(uint64_t));
    if (s->emulate) {
        wn_mh_signatures(s->gh.p, s->goff.p, (int64_t)b->n, s->pa, s->pb, s->nperm, s->sig);
    } else {
        int rc = wn_cuda_minhash_signatures(s->gh.p, s->goff.p, (int64_t)b->n, s->pa, s->pb, s->nperm, s->sig);
        if (rc) return wn_fail(&st->err, WN_ERR_INTERNAL, "cuda: %s", wn_cuda_minhash_last_error());
    }
#pragma omp parallel for schedule(static) num_threads(s->n_tls)
    for (size_t i = 0; i < b->n; i++)
        if (s->nsh[i]) wn_mh_band_keys(s->sig + i * (size_t)s->nperm, s->bands, s->rows, s->keys + i * (size_t)s->bands);
    return WN_OK;
}

static wn_err mh_process(wn_stage *st, wn_batch *b)
{
    mh *s = st->state;
    if (s->phase) return wn_fail(&st->err, WN_ERR_INTERNAL, "documents after the end of the stream");
    wn_err e = s->sw.open ? WN_OK : wn_spill_writer_open(&s->sw, s->path, 0, &st->err);
    if (e) return e;
    if (batch_room(s, b->n)) return wn_fail(&st->err, WN_ERR_NOMEM, "out of memory");
    for (size_t i = 0; i < b->n; i++)
        if (!b->docs[i].drop && b->docs[i].text.len > WN_MH_MAX_TEXT)
            return wn_fail(&st->err, WN_ERR_INPUT, "document %.*s: %zu bytes of text; shingling takes at most %zu",
                           (int)(b->docs[i].id.len > 200 ? 200 : b->docs[i].id.len),
                           b->docs[i].id.p ? b->docs[i].id.p : "", b->docs[i].text.len, WN_MH_MAX_TEXT);
    s->cur = b;
    double t0 = wn_now();
    for (size_t i = 0; i < b->n; i++) s->nsh[i] = 0;
    if ((e = s->gpu ? gpu_batch(st, s, b) : wn_stage_each_doc(st, b, s->n_tls, sign_doc))) return e;
    s->sig_seconds += wn_now() - t0;
    for (size_t i = 0; i < b->n; i++) {
        wn_doc *d = &b->docs[i];
        if (d->drop) continue;
        if (s->n_docs >= UINT32_MAX)
            return wn_fail(&st->err, WN_ERR_INPUT, "more than 2^32 - 1 documents: split the input into runs");
        if (s->nsh[i]) {
            if ((e = wn_mh_buckets_add(&s->bk, (uint32_t)s->n_docs, s->keys + i * (size_t)s->bands, &st->err)))
                return e;
            s->sig_docs++;
        } else {
            s->n_empty++;
        }
        if ((e = wn_spill_writer_put(&s->sw, d, &st->err))) return e;
        s->n_docs++;
    }
    if ((e = wn_spill_writer_flush(&s->sw, &st->err))) return e;
    wn_batch_keep_dropped(b);
    account(st, 0);
    return WN_OK;
}

/* ---- end of stream: pairs, verification, clusters ----------------------------------------------- */

/* Pair callbacks: ctx is the stage. */
static wn_err add_pair(void *ctx, uint32_t a, uint32_t b)
{
    wn_stage *st = ctx;
    mh *s = st->state;
    return wn_mh_pairs_add(&s->pr, a, b, &st->err);
}

static wn_err join_pair(void *ctx, uint32_t a, uint32_t b)
{
    mh *s = ((wn_stage *)ctx)->state;
    s->candidates++;
    wn_mh_union(s->parent, a, b);
    return WN_OK;
}

static wn_err mark_pair(void *ctx, uint32_t a, uint32_t b)
{
    mh *s = ((wn_stage *)ctx)->state;
    s->candidates++;
    s->inv[a >> 6] |= 1ull << (a & 63);
    s->inv[b >> 6] |= 1ull << (b & 63);
    return WN_OK;
}

static uint64_t inv_rank(const mh *s, uint32_t x)
{
    return s->rank[x >> 6] + (uint64_t)__builtin_popcountll(s->inv[x >> 6] & ((1ull << (x & 63)) - 1));
}

static int inv_has(const mh *s, uint64_t x) { return (int)(s->inv[x >> 6] >> (x & 63)) & 1; }

/* What the end of the stream holds while verifying: union-find and sizes,
 * the bitset and its ranks, the set offsets, the pair chunk, the pair buffer. */
static uint64_t verify_extra(const mh *s)
{
    return 8 * s->n_docs + ((s->n_docs + 63) / 64 + 1) * 12 + (s->n_inv + 1) * 8 + VERIFY_CHUNK * 9 + s->pr.alloc * 8;
}

/* Verify, step 1: one pass over the spill writes the sorted shingle set of
 * every document in a pair to the sets file, in input order; setoff[rank]
 * is where it starts (in u64s). Documents go through in chunks, their sets
 * computed in parallel. */
static wn_err write_sets(wn_stage *st, mh *s)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/" SETS_NAME, st->state_dir ? st->state_dir : ".");
    FILE *f = fopen(path, "w+b");
    if (!f) return wn_fail(&st->err, WN_ERR_IO, "%s: cannot create: %s", path, strerror(errno));
    wn_batch chunk = {0};
    wn_err e = wn_spill_reader_open(&s->sr, s->path, &st->err);
    uint64_t idx = 0, k = 0, written = 0;
    int eof = 0;
    s->setoff[0] = 0;
    while (!e && !eof) {
        /* a chunk of the involved documents */
        size_t bytes = 0;
        wn_batch_reset(&chunk);
        while (chunk.n < 1024 && bytes < (2u << 20)) {
            wn_doc *d = wn_batch_push(&chunk);
            int got;
            if (!d) { e = wn_fail(&st->err, WN_ERR_NOMEM, "out of memory"); break; }
            if ((e = wn_spill_reader_next(&s->sr, d, &got, &st->err))) break;
            if (!got) { chunk.n--; eof = 1; break; }
            if (!inv_has(s, idx++)) { chunk.n--; continue; }
            bytes += d->text.len;
        }
        if (e || !chunk.n) break;
        if (batch_room(s, chunk.n)) { e = wn_fail(&st->err, WN_ERR_NOMEM, "out of memory"); break; }
        if (chunk.n > s->cap_dv) {
            u64vec *dv = wn_realloc(s->dv, chunk.n * sizeof *dv);
            if (!dv) { e = wn_fail(&st->err, WN_ERR_NOMEM, "out of memory"); break; }
            memset(dv + s->cap_dv, 0, (chunk.n - s->cap_dv) * sizeof *dv);
            s->dv = dv;
            s->cap_dv = chunk.n;
        }
        int oom = 0;
#pragma omp parallel for schedule(dynamic, 8) num_threads(s->n_tls)
        for (size_t i = 0; i < chunk.n; i++) {
            mh_tls *t = &s->tls[omp_get_thread_num()];
            wn_doc *d = &chunk.docs[i];
            if (wn_mh_shingles(&t->sc, &s->cfg, d->text.p ? d->text.p : "", d->text.len) ||
                vec_room(&s->dv[i], t->sc.n_h)) {
#pragma omp atomic write
                oom = 1;
                continue;
            }
            memcpy(s->dv[i].p, t->sc.h, t->sc.n_h * sizeof *t->sc.h);
            s->dv[i].n = wn_mh_set(s->dv[i].p, t->sc.n_h);
        }
        if (oom) { e = wn_fail(&st->err, WN_ERR_NOMEM, "out of memory computing shingle sets"); break; }
        for (size_t i = 0; i < chunk.n && !e; i++) {
            if (fwrite(s->dv[i].p, sizeof(uint64_t), s->dv[i].n, f) != s->dv[i].n)
                e = wn_fail(&st->err, WN_ERR_IO, "%s: write failed: %s", path, strerror(errno));
            written += s->dv[i].n;
            s->setoff[++k] = written;
        }
        account(st, verify_extra(s));
    }
    wn_spill_reader_close(&s->sr);
    wn_batch_free(&chunk);
    for (size_t i = 0; i < s->cap_dv; i++) { /* the per-document vectors are done */
        wn_free(s->dv[i].p);
        s->dv[i] = (u64vec){0};
    }
    if (!e && k != s->n_inv)
        e = wn_fail(&st->err, WN_ERR_STATE, "%s: %llu documents in pairs found of %llu", s->path,
                    (unsigned long long)k, (unsigned long long)s->n_inv);
    if (!e && fflush(f)) e = wn_fail(&st->err, WN_ERR_IO, "%s: write failed: %s", path, strerror(errno));
    if (!e && (s->sets_fd = dup(fileno(f))) < 0) e = wn_fail(&st->err, WN_ERR_IO, "%s: %s", path, strerror(errno));
    fclose(f);
    return e;
}

/* Reads document x's set into v. */
static int read_set(const mh *s, uint32_t x, u64vec *v)
{
    uint64_t r = inv_rank(s, x), a = s->setoff[r], n = s->setoff[r + 1] - a;
    if (vec_room(v, n)) return -1;
    size_t got = 0, want = n * sizeof(uint64_t);
    while (got < want) {
        ssize_t k = pread(s->sets_fd, (char *)v->p + got, want - got, (off_t)(a * sizeof(uint64_t) + got));
        if (k <= 0) {
            if (k < 0 && errno == EINTR) continue;
            return -1;
        }
        got += (size_t)k;
    }
    v->n = n;
    return 0;
}

/* Verify, step 2: the Jaccard similarity of a chunk of pairs in parallel,
 * then the unions in pair order. */
static wn_err verify_chunk(wn_stage *st, mh *s)
{
    int bad = 0;
    for (int i = 0; i < s->n_tls; i++) s->tls[i].last_a = -1;
#pragma omp parallel for schedule(dynamic, 64) num_threads(s->n_tls)
    for (size_t i = 0; i < s->n_chunk; i++) {
        mh_tls *t = &s->tls[omp_get_thread_num()];
        uint32_t a = (uint32_t)(s->chunk[i] >> 32), b = (uint32_t)s->chunk[i];
        if (t->last_a != (int64_t)a) {
            t->last_a = -1;
            if (read_set(s, a, &t->va)) {
#pragma omp atomic write
                bad = 1;
                continue;
            }
            t->last_a = a;
        }
        if (read_set(s, b, &t->vb)) {
#pragma omp atomic write
            bad = 1;
            continue;
        }
        uint64_t c = wn_mh_intersect(t->va.p, t->va.n, t->vb.p, t->vb.n), u = t->va.n + t->vb.n - c;
        s->ok[i] = u && (double)c >= s->threshold * (double)u;
    }
    if (bad) return wn_fail(&st->err, WN_ERR_IO, "%s/" SETS_NAME ": read failed", st->state_dir);
    for (size_t i = 0; i < s->n_chunk; i++)
        if (s->ok[i]) {
            s->verified++;
            wn_mh_union(s->parent, (uint32_t)(s->chunk[i] >> 32), (uint32_t)s->chunk[i]);
        }
    s->n_chunk = 0;
    return WN_OK;
}

static wn_err check_pair(void *ctx, uint32_t a, uint32_t b)
{
    wn_stage *st = ctx;
    mh *s = st->state;
    s->chunk[s->n_chunk++] = (uint64_t)a << 32 | b;
    return s->n_chunk == VERIFY_CHUNK ? verify_chunk(st, s) : WN_OK;
}

static wn_err verify_pairs(wn_stage *st, mh *s, size_t read_bytes)
{
    uint64_t n = s->n_docs, words = (n + 63) / 64;
    s->inv = wn_calloc(words + 1, sizeof *s->inv);
    s->rank = wn_malloc((words + 1) * sizeof *s->rank);
    if (!s->inv || !s->rank) return wn_fail(&st->err, WN_ERR_NOMEM, "out of memory");
    s->candidates = 0;
    wn_err e = wn_mh_pairs_each(&s->pr, read_bytes, mark_pair, st, &st->err);
    if (e) return e;
    uint64_t r = 0;
    for (uint64_t w = 0; w <= words; w++) {
        s->rank[w] = (uint32_t)r;
        r += (uint64_t)__builtin_popcountll(s->inv[w]);
    }
    s->n_inv = r;
    s->setoff = wn_malloc((r + 1) * sizeof *s->setoff);
    s->chunk = wn_malloc(VERIFY_CHUNK * sizeof *s->chunk);
    s->ok = wn_malloc(VERIFY_CHUNK);
    if (!s->setoff || !s->chunk || !s->ok) return wn_fail(&st->err, WN_ERR_NOMEM, "out of memory");
    account(st, verify_extra(s));
    if (!r) return WN_OK; /* no candidates: nothing to read back */
    if ((e = write_sets(st, s))) return e;
    if ((e = wn_mh_pairs_each(&s->pr, read_bytes, check_pair, st, &st->err))) return e;
    if (s->n_chunk && (e = verify_chunk(st, s))) return e;
    account(st, verify_extra(s));
    return WN_OK;
}

static int hist_bin(uint64_t size)
{
    /* bins [2,3) [3,4) [4,8) [8,16) ... */
    if (size < 4) return (int)size - 2;
    int b = 63 - __builtin_clzll(size); /* floor(log2) >= 2 */
    return b < HIST_BINS - 1 ? b : HIST_BINS - 1;
}

static wn_err decide(wn_stage *st, mh *s)
{
    uint64_t n = s->n_docs;
    wn_err e;
    /* What is left for the pair table and the merge's read buffers. */
    uint64_t fixed = 8 * n + (s->verify ? n / 4 : 0);
    uint64_t left = s->tables > fixed ? s->tables - fixed : 0;
    /* the buffers and, while merging, one band's sort scratch */
    uint64_t bk = wn_mh_buckets_mem(&s->bk) / (uint64_t)s->bands * (s->bands + 1);
    if (s->bk.n_runs || bk + (1 << 20) > left) { /* all of it on disk first */
        if ((e = wn_mh_buckets_spill(&s->bk, &st->err))) return e;
        bk = 0;
    }
    account(st, 0); /* the streaming peak, with the last spill's; from here on the merge's peak */
    s->bk.mem_peak = wn_mh_buckets_mem(&s->bk);
    s->parent = wn_malloc((n ? n : 1) * sizeof *s->parent);
    s->size = wn_calloc(n ? n : 1, sizeof *s->size);
    if (!s->parent || !s->size) return wn_fail(&st->err, WN_ERR_NOMEM, "out of memory (%llu documents)", (unsigned long long)n);
    for (uint64_t i = 0; i < n; i++) s->parent[i] = (uint32_t)i;
    left = left > bk ? left - bk : 0;
    size_t read_bytes = (size_t)(left / 8 / ((uint64_t)s->bk.n_runs + 1));
    if (read_bytes > (1 << 20)) read_bytes = 1 << 20;
    if (read_bytes < (16 << 10)) read_bytes = 16 << 10;
    uint64_t pair_budget = left / 2 > (1 << 20) ? left / 2 : 1 << 20;
    if ((e = wn_mh_pairs_init(&s->pr, st->state_dir ? st->state_dir : ".", pair_budget, &st->err))) return e;
    account(st, 8 * n);
    if ((e = wn_mh_buckets_pairs(&s->bk, s->verify ? 2 : 1, read_bytes, add_pair, st, &st->err))) return e;
    account(st, 8 * n + s->pr.mem_peak);
    wn_mh_buckets_free(&s->bk);
    if (s->verify) e = verify_pairs(st, s, read_bytes);
    else e = wn_mh_pairs_each(&s->pr, read_bytes, join_pair, st, &st->err);
    if (e) return e;
    account(st, 8 * n + s->pr.mem_peak);
    wn_mh_pairs_free(&s->pr);
    /* roots (parent[i] <= i, so one step each in index order) and sizes */
    for (uint64_t i = 0; i < n; i++) {
        s->parent[i] = s->parent[s->parent[i]];
        s->size[s->parent[i]]++;
    }
    if (s->annotate && !(s->cid = wn_malloc((n ? n : 1) * sizeof *s->cid)))
        return wn_fail(&st->err, WN_ERR_NOMEM, "out of memory");
    for (uint64_t i = 0; i < n; i++) {
        if (s->parent[i] != i || s->size[i] < 2) continue;
        if (s->cid) s->cid[i] = (uint32_t)s->clusters;
        s->clusters++;
        s->removed += s->size[i] - 1;
        if (s->size[i] > s->largest) s->largest = s->size[i];
        s->hist[hist_bin(s->size[i])]++;
    }
    return WN_OK;
}

static wn_err mh_finish(wn_stage *st, wn_batch *out)
{
    mh *s = st->state;
    wn_err e;
    if (s->phase == 2) return WN_OK;
    if (s->phase == 0) {
        s->phase = 1;
        if ((e = wn_spill_writer_finish(&s->sw, &st->err))) return e;
        if (!s->n_docs) {
            s->phase = 2;
            return WN_OK;
        }
        if ((e = decide(st, s)) || (e = wn_spill_reader_open(&s->sr, s->path, &st->err))) return e;
    }
    uint64_t limit = wn_stage_emit_bytes(st, EMIT_BYTES), bytes = 0;
    char num[32];
    while (bytes < limit && out->n < EMIT_DOCS) {
        wn_doc *d;
        if ((e = wn_spill_reader_push(&s->sr, out, &d, &st->err))) return e;
        if (!d) {
            s->phase = 2;
            if (s->emitted != s->n_docs)
                return wn_fail(&st->err, WN_ERR_STATE, "%s: %llu documents read back of %llu spilled", s->path,
                               (unsigned long long)s->emitted, (unsigned long long)s->n_docs);
            break;
        }
        if (s->emitted >= s->n_docs)
            return wn_fail(&st->err, WN_ERR_STATE, "%s: more documents than were spilled", s->path);
        uint64_t i = s->emitted++;
        uint32_t r = s->parent[i];
        bytes += d->text.len;
        if (r != i && !s->annotate) {
            d->drop = "near_duplicate";
        } else if (s->size[r] >= 2) {
            snprintf(num, sizeof num, "%llu", s->annotate ? (unsigned long long)s->cid[r]
                                                          : (unsigned long long)s->next_cluster++);
            e = wn_doc_attr(d, "minhash_cluster", num);
            snprintf(num, sizeof num, "%u", s->size[r]);
            if (!e) e = wn_doc_attr(d, "minhash_cluster_size", num);
            if (!e && r != i) e = wn_doc_attr(d, "minhash_duplicate", "true");
            if (e) return wn_fail(&st->err, WN_ERR_NOMEM, "out of memory");
        }
    }
    return WN_OK;
}

/* ---- checkpoints ---------------------------------------------------------------------------------- */

typedef struct {
    uint64_t magic, spill_open, spill_bytes, n_docs, n_empty, sig_docs, shingles;
    double sig_seconds;
} mh_ckpt;

static uint64_t tls_shingles(const mh *s)
{
    uint64_t n = s->shingles;
    for (int i = 0; i < s->n_tls; i++) n += s->tls[i].shingles;
    return n;
}

static wn_err mh_save(wn_stage *st, FILE *f)
{
    mh *s = st->state;
    if (s->phase) return wn_fail(&st->err, WN_ERR_INTERNAL, "minhash_dedup cannot checkpoint once it has begun emitting");
    wn_err e = wn_spill_writer_sync(&s->sw, &st->err);
    if (e) return e;
    mh_ckpt c = {CKPT_MAGIC, (uint64_t)s->sw.open, s->sw.bytes, s->n_docs, s->n_empty, s->sig_docs, tls_shingles(s),
                 s->sig_seconds};
    if (fwrite(&c, sizeof c, 1, f) != 1) return wn_fail(&st->err, WN_ERR_IO, "checkpoint write failed");
    return wn_mh_buckets_save(&s->bk, f, &st->err);
}

static wn_err mh_load(wn_stage *st, FILE *f)
{
    mh *s = st->state;
    mh_ckpt c;
    if (fread(&c, sizeof c, 1, f) != 1 || c.magic != CKPT_MAGIC)
        return wn_fail(&st->err, WN_ERR_STATE, "not a minhash_dedup checkpoint");
    s->n_docs = c.n_docs;
    s->n_empty = c.n_empty;
    s->sig_docs = c.sig_docs;
    s->sig_seconds = c.sig_seconds;
    s->shingles = c.shingles;
    for (int i = 0; i < s->n_tls; i++) s->tls[i].shingles = 0;
    wn_err e = wn_mh_buckets_load(&s->bk, f, &st->err);
    if (e) return e;
    account(st, 0);
    if (c.spill_open) {
        s->sw.bytes = c.spill_bytes;
        return wn_spill_writer_open(&s->sw, s->path, 1, &st->err);
    }
    return WN_OK;
}

/* ---- report -------------------------------------------------------------------------------------- */

static void mh_report(wn_stage *st, wn_jw *w)
{
    mh *s = st->state;
    wn_jw_key(w, "documents"); wn_jw_u64(w, s->n_docs);
    wn_jw_key(w, "documents_without_shingles"); wn_jw_u64(w, s->n_empty);
    wn_jw_key(w, "shingle"); wn_jw_str(w, s->cfg.unit == WN_MH_WORD ? "word" : "char");
    wn_jw_key(w, "ngram_used"); wn_jw_i64(w, s->cfg.n);
    wn_jw_key(w, "shingles"); wn_jw_u64(w, tls_shingles(s));
    wn_jw_key(w, "permutations"); wn_jw_i64(w, s->nperm);
    wn_jw_key(w, "lsh");
    wn_jw_obj_begin(w);
    wn_jw_key(w, "bands"); wn_jw_i64(w, s->bands);
    wn_jw_key(w, "rows"); wn_jw_i64(w, s->rows);
    wn_jw_key(w, "s_at_p_half"); wn_jw_f64(w, wn_mh_s_half(s->bands, s->rows));
    wn_jw_key(w, "approx_threshold"); wn_jw_f64(w, pow(1.0 / s->bands, 1.0 / s->rows));
    wn_jw_key(w, "p_candidate");
    wn_jw_obj_begin(w);
    static const char *const at[] = {"0.5", "0.6", "0.7", "0.8", "0.9", "0.95"};
    static const double sv[] = {0.5, 0.6, 0.7, 0.8, 0.9, 0.95};
    for (int i = 0; i < 6; i++) {
        wn_jw_key(w, at[i]);
        wn_jw_f64(w, wn_mh_p_candidate(sv[i], s->bands, s->rows));
    }
    wn_jw_obj_end(w);
    wn_jw_obj_end(w);
    wn_jw_key(w, "candidate_pairs"); wn_jw_u64(w, s->candidates);
    wn_jw_key(w, "verified_pairs");
    if (s->verify) wn_jw_u64(w, s->verified);
    else wn_jw_null(w);
    wn_jw_key(w, "clusters"); wn_jw_u64(w, s->clusters);
    wn_jw_key(w, "removed"); wn_jw_u64(w, s->removed);
    wn_jw_key(w, "largest_cluster"); wn_jw_u64(w, s->largest);
    int last = 0;
    for (int i = 0; i < HIST_BINS; i++)
        if (s->hist[i]) last = i;
    wn_jw_key(w, "cluster_size_histogram");
    wn_jw_obj_begin(w);
    wn_jw_key(w, "unit"); wn_jw_str(w, "documents per cluster");
    wn_jw_key(w, "edges");
    wn_jw_arr_begin(w);
    for (int i = 0; i <= last + 1; i++) wn_jw_u64(w, i == 0 ? 2 : i == 1 ? 3 : 1ull << i);
    wn_jw_arr_end(w);
    wn_jw_key(w, "counts");
    wn_jw_arr_begin(w);
    for (int i = 0; i <= last; i++) wn_jw_u64(w, s->hist[i]);
    wn_jw_arr_end(w);
    wn_jw_obj_end(w);
    wn_jw_key(w, "spill");
    wn_jw_obj_begin(w);
    wn_jw_key(w, "memory_budget_bytes"); wn_jw_u64(w, s->budget);
    wn_jw_key(w, "table_budget_bytes"); wn_jw_u64(w, s->tables);
    wn_jw_key(w, "reserve_bytes"); wn_jw_u64(w, s->reserve);
    wn_jw_key(w, "bucket_runs"); wn_jw_i64(w, s->bk.n_runs);
    wn_jw_key(w, "pair_runs"); wn_jw_i64(w, s->pr.n_runs);
    wn_jw_obj_end(w);
    wn_jw_key(w, "speed");
    wn_jw_obj_begin(w);
    wn_jw_key(w, "signature_seconds"); wn_jw_f64(w, s->sig_seconds);
    wn_jw_key(w, "signatures_per_second"); wn_jw_f64(w, s->sig_seconds > 0 ? (double)s->sig_docs / s->sig_seconds : 0);
    wn_jw_key(w, "threads"); wn_jw_i64(w, s->n_tls);
    wn_jw_obj_end(w);
}

static void mh_close(wn_stage *st)
{
    mh *s = st->state;
    wn_spill_writer_close(&s->sw); /* an interrupted run: the spill stays for resume */
    wn_spill_reader_close(&s->sr);
    wn_mh_buckets_free(&s->bk);
    wn_mh_pairs_free(&s->pr);
    if (s->sets_fd >= 0) close(s->sets_fd);
    for (int i = 0; s->tls && i < s->n_tls; i++) {
        wn_mh_scratch_free(&s->tls[i].sc);
        wn_free(s->tls[i].va.p);
        wn_free(s->tls[i].vb.p);
    }
    for (size_t i = 0; i < s->cap_dv; i++) wn_free(s->dv[i].p);
    wn_free(s->dv);
    wn_free(s->gh.p);
    wn_free(s->goff.p);
    wn_free(s->tls);
    wn_free(s->pa);
    wn_free(s->pb);
    wn_free(s->sig);
    wn_free(s->keys);
    wn_free(s->nsh);
    wn_free(s->parent);
    wn_free(s->size);
    wn_free(s->cid);
    wn_free(s->inv);
    wn_free(s->rank);
    wn_free(s->setoff);
    wn_free(s->chunk);
    wn_free(s->ok);
    if (s->gpu && !s->emulate) wn_cuda_minhash_shutdown();
}

const wn_stage_def wn_stage_minhash_dedup = {
    .name = "minhash_dedup",
    .summary = "drop near-duplicate documents (MinHash LSH, union-find clusters, first in input order kept)",
    .doc = "Shingles each normalized text (word 5-grams by default, or character n-grams), computes\n"
           "bands x rows MinHash values ((a h + b) mod 2^61-1 over xxh3 shingle hashes; on the GPU with\n"
           "device: cuda|auto), and makes documents sharing any band's values candidates; P(candidate)\n"
           "= 1 - (1 - s^rows)^bands for Jaccard similarity s (14 x 8: 0.5 at s = 0.685). verify (on by\n"
           "default) keeps only candidate pairs whose exact Jaccard similarity is >= threshold. Pairs are\n"
           "clustered with union-find; the first document of each cluster in input order is kept and\n"
           "gets minhash_cluster / minhash_cluster_size, the others are dropped as near_duplicate\n"
           "(action: annotate keeps them all and marks the others minhash_duplicate: true).\n"
           "Documents are held back in a zstd spill and come out in input order. `memory` bounds the\n"
           "process's peak RSS: the LSH tables get it less a reserve - the run's reader, batch and\n"
           "writer (6 x batch_bytes, the output's zstd workers, 24 MiB) and the stage's spill\n"
           "compressor, signature arrays and 2 MiB per thread - and spill sorted runs beyond that; a\n"
           "budget under twice the reserve gives them half of it (the process then exceeds it).\n"
           "Report extras: candidate_pairs, verified_pairs, clusters, removed, cluster_size_histogram,\n"
           "lsh (curve), spill (memory_budget_bytes, table_budget_bytes, reserve_bytes, runs), speed.",
    .params = params,
    .n_params = WN_ARRAY_LEN(params),
    .state_size = sizeof(mh),
    .open = mh_open,
    .process = mh_process,
    .finish = mh_finish,
    .save = mh_save,
    .load = mh_load,
    .report = mh_report,
    .close = mh_close,
};
