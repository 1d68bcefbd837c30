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
 * Across MPI ranks (src/mpi.h; one code path: with one rank every exchange
 * is a copy and the results are the single process's). Rank r holds a
 * contiguous range of the input, so a document's global index is the sum of
 * the earlier ranks' counts (all-gathered) plus its local index; all that
 * follows happens in the first finish call, every rank taking part in every
 * collective, and gives the single process's pairs, clusters and numbers:
 *  - buckets: each rank streams its bucket table band by band in key order
 *    (wn_mh_buckets_each) and sends each (key, global document) entry, 12
 *    bytes, to the owner of its key; owners are key ranges, and a band is
 *    cut into `parts` key-range rounds (all-to-all each) so that a round
 *    sends about memory/16 bytes at most. An owner merges what the ranks
 *    sent (in rank order = document order for equal keys) into the same
 *    candidate pairs as one table, and sends each pair (8 bytes) to the
 *    holder of its later document, whose pair table makes them distinct.
 *  - remote documents: the earlier document of a pair may be another
 *    rank's; each rank lists those (sorted) and sends each holder the ones it
 *    holds (4 bytes each). The union-find runs over the remote documents,
 *    then the rank's own, in global order, so roots are still minima.
 *  - verify: a holder computes the sets of its documents that others asked
 *    for along with its own (the same pass over the spill) and sends them,
 *    8 bytes per distinct shingle plus 16 per set, in rounds; the receiver
 *    appends them to its sets file. Jaccard is then checked where the pair
 *    lives, as in one process.
 *  - clusters: each rank's union-find joins only its pairs; min-label
 *    propagation (propagate()) joins them across ranks: rounds of 4 bytes
 *    per remote document (its label) and 8 per lowered one, until a round
 *    changes no label (rounds: about the longest chain of sets across ranks,
 *    plus one; the tests see 2-4). Then each document counts at its root's
 *    holder (8 bytes per distinct remote root), clusters are numbered by an
 *    exclusive scan of the clusters rooted on each rank (roots are ordered by
 *    rank), and with action: annotate members fetch their remote root's
 *    number and size (8 bytes per distinct remote root).
 *  - report: the counters are summed over the ranks (largest: maximum;
 *    signature_seconds: the slowest rank's; bucket_runs/pair_runs: summed,
 *    they depend on how the input is split).
 * Bytes sent per document, with R ranks: about 12 x bands x (R-1)/R (168 at
 * 14 bands) for the buckets, plus 8 per candidate pair crossing ranks, plus
 * with verify 8 x its distinct shingles for each document in a pair with a
 * later rank's document (a word 5-gram set is about as many hashes as
 * words: ~1.5x the text's bytes; char n-grams ~8x), plus a few bytes per
 * document in a cross-rank pair per label round. Measured on
 * tests/e2e/test_mpi_minhash.sh's 3000 documents (4.6 MB) at 4 ranks: 142
 * bytes a document without verify, 520 with it, 3.8 KB with char 12-grams.
 * Memory beyond the single process's: per rank, 4 bytes (labels) + 4 (set
 * minima) per document during the label rounds, ~16 bytes per remote
 * document and 4 per requested one, and the round buffers (about 2 x
 * memory/16 for the buckets; the sets in flight for verify). Nothing is
 * gathered on one rank.
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
#include "../src/mpi.h"
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
    /* across MPI ranks (one rank: off 0, nothing remote; every exchange a copy) */
    int nranks, me;
    uint64_t *start;    /* [nranks + 1]: each rank's first global index, then the total */
    uint64_t off;       /* this rank's first global index */
    uint64_t parts;     /* bucket exchange: key-range rounds per band */
    int xband;          /* the round being filled: band, part */
    uint64_t xpart;
    wn_buf xsend, xrecv;
    uint64_t *xn, *xrn; /* [nranks] bytes to / from each rank */
    u64vec xpairs, psend;
    wn_ids rem;         /* sorted: the documents of earlier ranks in this rank's pairs */
    wn_buf req;         /* the documents of this rank that each rank asked for (u32, by rank) */
    uint64_t *reqn;     /* [nranks] bytes of req from each rank */
    uint64_t *remoff;   /* verify: start and end of each remote document's set in the sets file */
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

/* ---- end of stream: across ranks ----------------------------------------------------------------- */

/* The rank whose documents include global index x. */
static int holder(const mh *s, uint64_t x)
{
    int lo = 0, hi = s->nranks - 1; /* the last rank with start <= x (ranks without documents are skipped) */
    while (lo < hi) {
        int m = (lo + hi + 1) / 2;
        if (s->start[m] <= x) lo = m;
        else hi = m - 1;
    }
    return lo;
}

/* Position of x in the sorted a[0..n), or -1. */
static int64_t find_u32(const uint32_t *a, uint64_t n, uint32_t x)
{
    uint64_t lo = 0, hi = n;
    while (lo < hi) {
        uint64_t m = (lo + hi) / 2;
        if (a[m] < x) lo = m + 1;
        else hi = m;
    }
    return lo < n && a[lo] == x ? (int64_t)lo : -1;
}

/* Union-find index of global document x: the remote documents first (they
 * precede this rank's), then the local ones; the order is the global one,
 * so a set's root is still its smallest global index. */
static uint32_t cix(const mh *s, uint32_t x)
{
    return x >= s->off ? (uint32_t)(s->rem.n + (x - s->off)) : (uint32_t)find_u32(s->rem.p, s->rem.n, x);
}

static uint32_t cglobal(const mh *s, uint32_t c)
{
    return c < s->rem.n ? s->rem.p[c] : (uint32_t)(s->off + (c - s->rem.n));
}

/* Counts per rank of sorted global indices a[0..n) (bytes of `width` each). */
static void count_by_holder(const mh *s, const uint32_t *a, uint64_t n, uint64_t width, uint64_t *cnt)
{
    memset(cnt, 0, (size_t)s->nranks * sizeof *cnt);
    for (uint64_t i = 0; i < n; i++) cnt[holder(s, a[i])] += width;
}

static wn_err add_pair(void *ctx, uint32_t a, uint32_t b);

/* Owner side of a bucket-exchange round: the pairs of the merged blocks. */
static wn_err owner_pair(void *ctx, uint32_t a, uint32_t b)
{
    mh *s = ((wn_stage *)ctx)->state;
    if (vec_room(&s->xpairs, s->xpairs.n + 1)) return WN_ERR_NOMEM;
    s->xpairs.p[s->xpairs.n++] = (uint64_t)a << 32 | b;
    return WN_OK;
}

/* One round of the bucket exchange (collective): the entries of key range
 * (xband, xpart) go to their owners, which make the pairs and send each to
 * the holder of its later document, which adds it to its pair table. */
static wn_err bucket_round(wn_stage *st, mh *s)
{
    int R = s->nranks;
    if (wn_mpi_alltoallv(s->xsend.p, s->xn, &s->xrecv, s->xrn)) return wn_fail(&st->err, WN_ERR_NOMEM, "out of memory");
    for (int k = 0; k < R; k++) s->xrn[k] /= sizeof(wn_mh_entry);
    s->xpairs.n = 0;
    wn_err e = wn_mh_blocks_pairs((const wn_mh_entry *)s->xrecv.p, s->xrn, R, s->verify ? 2 : 1, owner_pair, st);
    if (e) return wn_fail(&st->err, WN_ERR_NOMEM, "out of memory (LSH candidate pairs)");
    /* by holder of b (a counting sort; the order within a holder is kept) */
    uint64_t *pos = s->xrn; /* reused: bytes per rank, then positions */
    memset(pos, 0, (size_t)R * sizeof *pos);
    for (size_t i = 0; i < s->xpairs.n; i++) pos[holder(s, (uint32_t)s->xpairs.p[i])] += 8;
    memcpy(s->xn, pos, (size_t)R * sizeof *pos);
    uint64_t at = 0;
    for (int k = 0; k < R; k++) {
        uint64_t c = pos[k] / 8;
        pos[k] = at;
        at += c;
    }
    if (vec_room(&s->psend, s->xpairs.n + 1)) return wn_fail(&st->err, WN_ERR_NOMEM, "out of memory");
    for (size_t i = 0; i < s->xpairs.n; i++) s->psend.p[pos[holder(s, (uint32_t)s->xpairs.p[i])]++] = s->xpairs.p[i];
    if (wn_mpi_alltoallv(s->psend.p, s->xn, &s->xrecv, s->xrn)) return wn_fail(&st->err, WN_ERR_NOMEM, "out of memory");
    const uint64_t *pr = (const uint64_t *)s->xrecv.p;
    for (size_t i = 0; i < s->xrecv.len / 8; i++)
        if ((e = add_pair(st, (uint32_t)(pr[i] >> 32), (uint32_t)pr[i]))) return e;
    s->xsend.len = 0;
    memset(s->xn, 0, (size_t)R * sizeof *s->xn);
    if (++s->xpart == s->parts) {
        s->xpart = 0;
        s->xband++;
    }
    return WN_OK;
}

/* The bucket table's merged stream (band by band, keys ascending) cut into
 * rounds by key range: key k of band b belongs to part q / nranks and to
 * owner q % nranks, q = floor(k * parts * nranks / 2^64), so each round's
 * entries arrive sorted by owner. */
static wn_err route_entry(void *ctx, int band, const wn_mh_entry *x)
{
    wn_stage *st = ctx;
    mh *s = st->state;
    uint64_t q = (uint64_t)(((unsigned __int128)x->key * (s->parts * (uint64_t)s->nranks)) >> 64);
    uint64_t part = q / (uint64_t)s->nranks;
    wn_err e;
    while (s->xband < band || (s->xband == band && s->xpart < part))
        if ((e = bucket_round(st, s))) return e;
    wn_mh_entry g = {x->key, (uint32_t)(s->off + x->doc)};
    if (wn_buf_append(&s->xsend, &g, sizeof g)) return wn_fail(&st->err, WN_ERR_NOMEM, "out of memory");
    s->xn[q % (uint64_t)s->nranks] += sizeof g;
    return WN_OK;
}

/* Every rank's pairs whose later document is its own, in its pair table. */
static wn_err exchange_buckets(wn_stage *st, mh *s, size_t read_bytes, uint64_t round_bytes)
{
    uint64_t most = s->bk.n + s->bk.run_entries; /* entries per band */
    wn_mpi_allreduce_max_u64(&most, 1);
    s->parts = most * sizeof(wn_mh_entry) / (round_bytes ? round_bytes : 1) + 1;
    wn_mpi_allreduce_max_u64(&s->parts, 1); /* every rank makes bands x parts rounds */
    s->xband = 0;
    s->xpart = 0;
    s->xn = wn_calloc((size_t)s->nranks, sizeof *s->xn);
    s->xrn = wn_calloc((size_t)s->nranks, sizeof *s->xrn);
    if (!s->xn || !s->xrn) return wn_fail(&st->err, WN_ERR_NOMEM, "out of memory");
    wn_err e = wn_mh_buckets_each(&s->bk, read_bytes, route_entry, st, &st->err);
    while (!e && s->xband < s->bands) e = bucket_round(st, s); /* the rounds left (all ranks make bands x parts) */
    account(st, 8 * s->n_docs + s->pr.mem_peak + s->xsend.cap + s->xrecv.cap + (s->xpairs.cap + s->psend.cap) * 8);
    wn_buf_free(&s->xsend);
    wn_buf_free(&s->xrecv);
    wn_free(s->xpairs.p);
    wn_free(s->psend.p);
    s->xpairs = s->psend = (u64vec){0};
    return e;
}

static wn_err collect_remote(void *ctx, uint32_t a, uint32_t b)
{
    wn_stage *st = ctx;
    mh *s = st->state;
    (void)b;
    if (a >= s->off || (s->rem.n && s->rem.p[s->rem.n - 1] == a)) return WN_OK; /* pairs come ascending by a */
    return wn_ids_push(&s->rem, a) ? wn_fail(&st->err, WN_ERR_NOMEM, "out of memory") : WN_OK;
}

/* The remote documents of this rank's pairs (rem), and the requests: each
 * rank learns which of its documents the others hold pairs with (req). */
static wn_err remote_docs(wn_stage *st, mh *s, size_t read_bytes)
{
    wn_err e;
    if (s->off && (e = wn_mh_pairs_each(&s->pr, read_bytes, collect_remote, st, &st->err))) return e;
    s->reqn = wn_calloc((size_t)s->nranks, sizeof *s->reqn);
    if (!s->reqn) return wn_fail(&st->err, WN_ERR_NOMEM, "out of memory");
    count_by_holder(s, s->rem.p, s->rem.n, 4, s->xn);
    if (wn_mpi_alltoallv(s->rem.p, s->xn, &s->req, s->reqn)) return wn_fail(&st->err, WN_ERR_NOMEM, "out of memory");
    return WN_OK;
}

/* The other ranks' requests, one u32 each (each rank's block follows its
 * predecessor's); reply[i] answers req[i] (values of `width` bytes): an
 * all-to-all whose answer lands in `into`, in the order of rem. */
static wn_err answer(wn_stage *st, mh *s, const void *reply, uint64_t width, wn_buf *into)
{
    for (int k = 0; k < s->nranks; k++) s->xn[k] = s->reqn[k] / 4 * width;
    if (wn_mpi_alltoallv(reply, s->xn, into, s->xrn)) return wn_fail(&st->err, WN_ERR_NOMEM, "out of memory");
    return into->len == s->rem.n * width ? WN_OK
                                         : wn_fail(&st->err, WN_ERR_INTERNAL, "an MPI exchange returned %zu bytes, "
                                                   "expected %llu", into->len, (unsigned long long)(s->rem.n * width));
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
    wn_mh_union(s->parent, cix(s, a), cix(s, b));
    return WN_OK;
}

static wn_err mark_pair(void *ctx, uint32_t a, uint32_t b)
{
    mh *s = ((wn_stage *)ctx)->state;
    s->candidates++;
    if (a >= s->off) {
        a -= (uint32_t)s->off;
        s->inv[a >> 6] |= 1ull << (a & 63);
    }
    b -= (uint32_t)s->off; /* this rank's */
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
    return 8 * s->n_docs + ((s->n_docs + 63) / 64 + 1) * 12 + (s->n_inv + 1) * 8 + VERIFY_CHUNK * 9 + s->pr.alloc * 8 +
           s->rem.n * 24 + s->req.len;
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

/* Reads global document x's set into v: one of this rank's from its place
 * in the sets file, a remote one from where fetch_sets put it. */
static int read_set(const mh *s, uint32_t x, u64vec *v)
{
    uint64_t a, n;
    if (x >= s->off) {
        uint64_t r = inv_rank(s, (uint32_t)(x - s->off));
        a = s->setoff[r];
        n = s->setoff[r + 1] - a;
    } else {
        int64_t j = find_u32(s->rem.p, s->rem.n, x);
        if (j < 0) return -1;
        a = s->remoff[2 * j];
        n = s->remoff[2 * j + 1] - a;
    }
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

/* Verify across ranks (collective): each rank sends the sets that the
 * others asked for (records u64 document, u64 count, the sorted hashes) in
 * rounds of about round_bytes, and appends the sets it receives to its sets
 * file after its own; remoff says where. */
static wn_err fetch_sets(wn_stage *st, mh *s, uint64_t round_bytes)
{
    int R = s->nranks;
    uint64_t *pos = wn_calloc((size_t)R * 2, sizeof *pos), *end = pos + R, at = 0, file_end = s->setoff[s->n_inv];
    s->remoff = wn_malloc((s->rem.n ? s->rem.n : 1) * 2 * sizeof *s->remoff);
    wn_buf out = {0}, in = {0};
    u64vec v = {0};
    wn_err e = pos && s->remoff ? WN_OK : wn_fail(&st->err, WN_ERR_NOMEM, "out of memory");
    for (int k = 0; k < R; k++) {
        if (!pos) break;
        pos[k] = at / 4;
        end[k] = (at += s->reqn[k]) / 4;
    }
    const uint32_t *req = (const uint32_t *)s->req.p;
    uint64_t got = 0, more = 1;
    while (more) { /* every rank takes part in every round, with or without anything to send */
        out.len = 0;
        for (int k = 0; k < R && !e; k++) {
            size_t before = out.len;
            while (pos[k] < end[k] && (!out.len || out.len < round_bytes)) {
                if (read_set(s, req[pos[k]], &v)) { e = wn_fail(&st->err, WN_ERR_IO, "%s/" SETS_NAME ": read failed", st->state_dir); break; }
                uint64_t hdr[2] = {req[pos[k]], v.n};
                if (wn_buf_append(&out, hdr, sizeof hdr) || wn_buf_append(&out, v.p, v.n * 8)) { e = wn_fail(&st->err, WN_ERR_NOMEM, "out of memory"); break; }
                pos[k]++;
            }
            s->xn[k] = out.len - before;
        }
        if (e) break; /* (the run stops: the other ranks are ended with it) */
        if (wn_mpi_alltoallv(out.p, s->xn, &in, s->xrn)) { e = wn_fail(&st->err, WN_ERR_NOMEM, "out of memory"); break; }
        for (size_t o = 0; o + 16 <= in.len && !e;) {
            uint64_t hdr[2];
            memcpy(hdr, in.p + o, sizeof hdr);
            int64_t j = find_u32(s->rem.p, s->rem.n, (uint32_t)hdr[0]);
            size_t bytes = hdr[1] * 8;
            if (j < 0 || o + 16 + bytes > in.len) { e = wn_fail(&st->err, WN_ERR_INTERNAL, "a bad shingle-set record from another rank"); break; }
            size_t done = 0;
            while (done < bytes) {
                ssize_t k = pwrite(s->sets_fd, in.p + o + 16 + done, bytes - done, (off_t)(file_end * 8 + done));
                if (k < 0 && errno == EINTR) continue;
                if (k <= 0) { e = wn_fail(&st->err, WN_ERR_IO, "%s/" SETS_NAME ": write failed: %s", st->state_dir, strerror(errno)); break; }
                done += (size_t)k;
            }
            s->remoff[2 * j] = file_end;
            s->remoff[2 * j + 1] = file_end += hdr[1];
            got++;
            o += 16 + bytes;
        }
        account(st, verify_extra(s) + out.cap + in.cap);
        if (e) break;
        more = 0;
        for (int k = 0; k < R; k++) more |= pos[k] < end[k];
        wn_mpi_allreduce_max_u64(&more, 1);
    }
    if (!e && got != s->rem.n)
        e = wn_fail(&st->err, WN_ERR_INTERNAL, "%llu shingle sets received for %llu documents of other ranks",
                    (unsigned long long)got, (unsigned long long)s->rem.n);
    wn_free(pos);
    wn_buf_free(&out);
    wn_buf_free(&in);
    wn_free(v.p);
    return e;
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
            wn_mh_union(s->parent, cix(s, (uint32_t)(s->chunk[i] >> 32)), cix(s, (uint32_t)s->chunk[i]));
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

static wn_err verify_pairs(wn_stage *st, mh *s, size_t read_bytes, uint64_t round_bytes)
{
    uint64_t n = s->n_docs, words = (n + 63) / 64;
    s->inv = wn_calloc(words + 1, sizeof *s->inv);
    s->rank = wn_malloc((words + 1) * sizeof *s->rank);
    if (!s->inv || !s->rank) return wn_fail(&st->err, WN_ERR_NOMEM, "out of memory");
    s->candidates = 0;
    wn_err e = wn_mh_pairs_each(&s->pr, read_bytes, mark_pair, st, &st->err);
    if (e) return e;
    const uint32_t *req = (const uint32_t *)s->req.p; /* other ranks' pairs need these sets too */
    for (size_t i = 0; i < s->req.len / 4; i++) {
        uint32_t x = (uint32_t)(req[i] - s->off);
        s->inv[x >> 6] |= 1ull << (x & 63);
    }
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
    s->setoff[0] = 0;
    account(st, verify_extra(s));
    if (r && (e = write_sets(st, s))) return e;
    if ((e = fetch_sets(st, s, round_bytes))) return e;
    if (!r) return WN_OK; /* no candidates: nothing to check */
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

/* Across ranks, the sets of the union-find are only parts of clusters:
 * min-label propagation joins them (collective). label[i] of this rank's
 * document i starts as its set's root; each round every rank fetches the
 * labels of its remote documents from their holders, takes the minimum over
 * each of its sets, lowers its own documents' labels to it and proposes it
 * to the holders of its remote ones; rounds go on until one changes no
 * label anywhere. Labels only fall and stay within a cluster, and a round
 * without changes leaves every set of every rank with one label, so each
 * cluster ends with one label, its smallest document (whose label never
 * falls below itself). Rounds: about the longest chain of sets across ranks,
 * plus one. */
static wn_err propagate(wn_stage *st, mh *s, uint32_t *label)
{
    uint64_t nc = s->rem.n + s->n_docs;
    uint32_t *low = wn_malloc((nc ? nc : 1) * sizeof *low);
    uint32_t *reply = wn_malloc((s->req.len / 4 + 1) * sizeof *reply);
    wn_buf in = {0}, prop = {0};
    wn_err e = low && reply ? WN_OK : wn_fail(&st->err, WN_ERR_NOMEM, "out of memory");
    const uint32_t *req = (const uint32_t *)s->req.p;
    for (;;) {
        if (e) break;
        for (size_t i = 0; i < s->req.len / 4; i++) reply[i] = label[req[i] - s->off];
        if ((e = answer(st, s, reply, 4, &in))) break;
        const uint32_t *got = (const uint32_t *)in.p; /* the labels of rem */
        for (uint64_t c = 0; c < nc; c++) low[c] = UINT32_MAX;
        for (uint64_t j = 0; j < s->rem.n; j++)
            if (got[j] < low[s->parent[j]]) low[s->parent[j]] = got[j];
        for (uint64_t i = 0; i < s->n_docs; i++)
            if (label[i] < low[s->parent[s->rem.n + i]]) low[s->parent[s->rem.n + i]] = label[i];
        uint64_t changed = 0;
        for (uint64_t i = 0; i < s->n_docs; i++)
            if (low[s->parent[s->rem.n + i]] < label[i]) {
                label[i] = low[s->parent[s->rem.n + i]];
                changed++;
            }
        prop.len = 0; /* (document, label) to the holders; rem is sorted, so by holder */
        memset(s->xn, 0, (size_t)s->nranks * sizeof *s->xn);
        for (uint64_t j = 0; j < s->rem.n && !e; j++) {
            uint32_t rec[2] = {s->rem.p[j], low[s->parent[j]]};
            if (rec[1] >= got[j]) continue;
            if (wn_buf_append(&prop, rec, sizeof rec)) e = wn_fail(&st->err, WN_ERR_NOMEM, "out of memory");
            s->xn[holder(s, rec[0])] += sizeof rec;
        }
        if (e || (wn_mpi_alltoallv(prop.p, s->xn, &in, s->xrn) && (e = wn_fail(&st->err, WN_ERR_NOMEM, "out of memory"))))
            break;
        for (size_t o = 0; o + 8 <= in.len; o += 8) {
            uint32_t rec[2];
            memcpy(rec, in.p + o, sizeof rec);
            if (rec[1] < label[rec[0] - s->off]) {
                label[rec[0] - s->off] = rec[1];
                changed++;
            }
        }
        wn_mpi_allreduce_sum_u64(&changed, 1);
        if (!changed) break;
    }
    wn_free(low);
    wn_free(reply);
    wn_buf_free(&in);
    wn_buf_free(&prop);
    return e;
}

/* Asks the holders of the sorted, distinct documents x[0..n) for (va[x],
 * vb[x]) (arrays over their own documents) into out[2n] (collective). */
static wn_err ask_roots(wn_stage *st, mh *s, const uint32_t *x, uint64_t n, const uint32_t *va, const uint32_t *vb,
                        uint32_t *out)
{
    wn_buf q = {0}, a = {0};
    uint32_t *rep = NULL;
    uint64_t *qn = wn_calloc((size_t)s->nranks, sizeof *qn);
    wn_err e = qn ? WN_OK : wn_fail(&st->err, WN_ERR_NOMEM, "out of memory");
    if (!e) count_by_holder(s, x, n, 4, s->xn);
    if (!e && wn_mpi_alltoallv(x, s->xn, &q, qn)) e = wn_fail(&st->err, WN_ERR_NOMEM, "out of memory");
    if (!e && !(rep = wn_malloc((q.len / 4 + 1) * 8))) e = wn_fail(&st->err, WN_ERR_NOMEM, "out of memory");
    if (!e) {
        const uint32_t *qx = (const uint32_t *)q.p;
        for (size_t i = 0; i < q.len / 4; i++) {
            rep[2 * i] = va[qx[i] - s->off];
            rep[2 * i + 1] = vb[qx[i] - s->off];
        }
        for (int k = 0; k < s->nranks; k++) s->xn[k] = qn[k] * 2;
        if (wn_mpi_alltoallv(rep, s->xn, &a, s->xrn)) e = wn_fail(&st->err, WN_ERR_NOMEM, "out of memory");
    }
    if (!e && a.len != n * 8) e = wn_fail(&st->err, WN_ERR_INTERNAL, "an MPI exchange returned a wrong size");
    if (!e && n) memcpy(out, a.p, n * 8);
    wn_free(qn);
    wn_free(rep);
    wn_buf_free(&q);
    wn_buf_free(&a);
    return e;
}

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

/* From the joined union-find to clusters (collective): each document's
 * root (its cluster's smallest global index) in parent[], each root's
 * cluster size in size[], the counters, the cluster numbers. */
static wn_err clusters(wn_stage *st, mh *s)
{
    uint64_t n = s->n_docs, nc = s->rem.n + n;
    wn_err e = WN_OK;
    for (uint64_t c = 0; c < nc; c++) s->parent[c] = s->parent[s->parent[c]]; /* parent[c] <= c: one step each */
    if (s->nranks > 1) { /* (one rank: compact indices are the global ones) */
        uint32_t *label = wn_malloc((n ? n : 1) * sizeof *label);
        if (!label) return wn_fail(&st->err, WN_ERR_NOMEM, "out of memory");
        for (uint64_t i = 0; i < n; i++) label[i] = cglobal(s, s->parent[s->rem.n + i]);
        e = propagate(st, s, label);
        wn_free(s->parent);
        s->parent = label;
        if (e) return e;
    }
    /* sizes: every document counts at its root, on the root's holder */
    wn_ids far = {0}; /* roots on other ranks, one per document */
    for (uint64_t i = 0; i < n && !e; i++) {
        uint32_t r = s->parent[i];
        if (r >= s->off) s->size[r - s->off]++;
        else if (wn_ids_push(&far, r)) e = wn_fail(&st->err, WN_ERR_NOMEM, "out of memory");
    }
    if (far.n) qsort(far.p, far.n, sizeof *far.p, cmp_u32);
    wn_buf rc = {0}, in = {0};
    uint64_t nu = 0; /* far becomes the distinct roots, rc their (root, count) */
    memset(s->xn, 0, (size_t)s->nranks * sizeof *s->xn);
    for (uint64_t i = 0; i < far.n && !e; i++) {
        uint64_t j = i;
        while (j + 1 < far.n && far.p[j + 1] == far.p[i]) j++;
        uint32_t rec[2] = {far.p[i], (uint32_t)(j - i + 1)};
        if (wn_buf_append(&rc, rec, sizeof rec)) e = wn_fail(&st->err, WN_ERR_NOMEM, "out of memory");
        s->xn[holder(s, rec[0])] += sizeof rec;
        far.p[nu++] = far.p[i];
        i = j;
    }
    if (!e && wn_mpi_alltoallv(rc.p, s->xn, &in, s->xrn)) e = wn_fail(&st->err, WN_ERR_NOMEM, "out of memory");
    for (size_t o = 0; !e && o + 8 <= in.len; o += 8) {
        uint32_t rec[2];
        memcpy(rec, in.p + o, sizeof rec);
        s->size[rec[0] - s->off] += rec[1];
    }
    wn_buf_free(&rc);
    wn_buf_free(&in);
    /* the clusters rooted here, numbered after those of the ranks before */
    if (!e && s->annotate && !(s->cid = wn_malloc((n ? n : 1) * sizeof *s->cid)))
        e = wn_fail(&st->err, WN_ERR_NOMEM, "out of memory");
    for (uint64_t i = 0; i < n && !e; i++) {
        if (s->parent[i] != s->off + i || s->size[i] < 2) continue;
        s->clusters++;
        s->removed += s->size[i] - 1;
        if (s->size[i] > s->largest) s->largest = s->size[i];
        s->hist[hist_bin(s->size[i])]++;
    }
    uint64_t base = s->clusters;
    wn_mpi_exscan_sum_u64(&base, 1);
    s->next_cluster = base;
    if (!e && s->annotate) { /* every member carries its cluster's number and size */
        uint32_t k = (uint32_t)base, *got = wn_malloc((nu ? nu : 1) * 2 * sizeof *got);
        if (!got) e = wn_fail(&st->err, WN_ERR_NOMEM, "out of memory");
        for (uint64_t i = 0; i < n && !e; i++)
            if (s->parent[i] == s->off + i && s->size[i] >= 2) s->cid[i] = k++;
        if (!e) e = ask_roots(st, s, far.p, nu, s->size, s->cid, got);
        for (uint64_t i = 0; i < n && !e; i++) {
            uint32_t r = s->parent[i];
            if (r == s->off + i) continue;
            if (r >= s->off) {
                s->size[i] = s->size[r - s->off];
                s->cid[i] = s->cid[r - s->off];
            } else {
                int64_t j = find_u32(far.p, nu, r);
                s->size[i] = got[2 * j];
                s->cid[i] = got[2 * j + 1];
            }
        }
        wn_free(got);
    }
    wn_free(far.p);
    return e;
}

/* Global positions (collective): start[] from every rank's count. */
static wn_err positions(wn_stage *st, mh *s)
{
    s->nranks = wn_mpi_size();
    s->me = wn_mpi_rank();
    wn_buf all = {0};
    uint64_t *cnt = wn_calloc((size_t)s->nranks, sizeof *cnt);
    s->start = wn_calloc((size_t)s->nranks + 1, sizeof *s->start);
    if (!cnt || !s->start || wn_mpi_allgatherv(&s->n_docs, sizeof s->n_docs, &all, cnt) ||
        all.len != (size_t)s->nranks * 8) {
        wn_free(cnt);
        wn_buf_free(&all);
        return wn_fail(&st->err, WN_ERR_NOMEM, "out of memory");
    }
    for (int k = 0; k < s->nranks; k++) {
        uint64_t c;
        memcpy(&c, all.p + 8 * k, 8);
        s->start[k + 1] = s->start[k] + c;
    }
    s->off = s->start[s->me];
    wn_free(cnt);
    wn_buf_free(&all);
    if (s->start[s->nranks] > UINT32_MAX)
        return wn_fail(&st->err, WN_ERR_INPUT, "more than 2^32 - 1 documents: split the input into runs");
    return WN_OK;
}

static wn_err decide(wn_stage *st, mh *s)
{
    uint64_t n = s->n_docs;
    wn_err e;
    s->size = wn_calloc(n ? n : 1, sizeof *s->size);
    if (!s->size) return wn_fail(&st->err, WN_ERR_NOMEM, "out of memory (%llu documents)", (unsigned long long)n);
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
    left = left > bk ? left - bk : 0;
    size_t read_bytes = (size_t)(left / 8 / ((uint64_t)s->bk.n_runs + 1));
    if (read_bytes > (1 << 20)) read_bytes = 1 << 20;
    if (read_bytes < (16 << 10)) read_bytes = 16 << 10;
    uint64_t pair_budget = left / 2 > (1 << 20) ? left / 2 : 1 << 20;
    /* bytes an exchange round sends at most (about) */
    uint64_t round_bytes = s->tables / 16 > (1 << 20) ? s->tables / 16 : 1 << 20;
    const char *rb = getenv("WINNOW_TEST_MINHASH_ROUND_BYTES"); /* tests: many small rounds */
    if (rb && atoll(rb) > 0) round_bytes = (uint64_t)atoll(rb);
    if ((e = wn_mh_pairs_init(&s->pr, st->state_dir ? st->state_dir : ".", pair_budget, &st->err))) return e;
    account(st, 8 * n);
    if ((e = exchange_buckets(st, s, read_bytes, round_bytes))) return e;
    account(st, 8 * n + s->pr.mem_peak);
    wn_mh_buckets_free(&s->bk);
    if ((e = remote_docs(st, s, read_bytes))) return e;
    uint64_t nc = s->rem.n + n;
    s->parent = wn_malloc((nc ? nc : 1) * sizeof *s->parent);
    if (!s->parent) return wn_fail(&st->err, WN_ERR_NOMEM, "out of memory (%llu documents)", (unsigned long long)n);
    for (uint64_t c = 0; c < nc; c++) s->parent[c] = (uint32_t)c;
    if (s->verify) e = verify_pairs(st, s, read_bytes, round_bytes);
    else e = wn_mh_pairs_each(&s->pr, read_bytes, join_pair, st, &st->err);
    if (e) return e;
    account(st, 8 * n + s->pr.mem_peak);
    wn_mh_pairs_free(&s->pr);
    return clusters(st, s);
}

static wn_err mh_finish(wn_stage *st, wn_batch *out)
{
    mh *s = st->state;
    wn_err e;
    if (s->phase == 2) return WN_OK;
    if (s->phase == 0) {
        s->phase = 1;
        if ((e = wn_spill_writer_finish(&s->sw, &st->err)) || (e = positions(st, s))) return e;
        if (!s->start[s->nranks] || !s->n_docs) { /* (a rank without documents still takes part in decide) */
            if (s->start[s->nranks] && (e = decide(st, s))) return e;
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
        int root = s->parent[i] == s->off + i; /* size[i], cid[i]: its cluster's (annotate; drop: roots) */
        bytes += d->text.len;
        if (!root && !s->annotate) {
            d->drop = "near_duplicate";
        } else if (s->size[i] >= 2) {
            snprintf(num, sizeof num, "%llu", s->annotate ? (unsigned long long)s->cid[i]
                                                          : (unsigned long long)s->next_cluster++);
            e = wn_doc_attr(d, "minhash_cluster", num);
            snprintf(num, sizeof num, "%u", s->size[i]);
            if (!e) e = wn_doc_attr(d, "minhash_cluster_size", num);
            if (!e && !root) e = wn_doc_attr(d, "minhash_duplicate", "true");
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
    /* every rank calls report: the counters summed over the ranks (largest: the maximum) */
    enum { DOCS, EMPTY, SHINGLES, CAND, VERIFIED, CLUSTERS, REMOVED, BK_RUNS, PR_RUNS, SIG_DOCS, HIST, NSUM = HIST + HIST_BINS };
    uint64_t g[NSUM] = {s->n_docs, s->n_empty, tls_shingles(s), s->candidates, s->verified, s->clusters, s->removed,
                        (uint64_t)s->bk.n_runs, (uint64_t)s->pr.n_runs, s->sig_docs};
    memcpy(g + HIST, s->hist, sizeof s->hist);
    wn_mpi_allreduce_sum_u64(g, NSUM);
    uint64_t largest = s->largest;
    wn_mpi_allreduce_max_u64(&largest, 1);
    double sig_seconds = s->sig_seconds; /* the slowest rank's */
    wn_mpi_allreduce_max_f64(&sig_seconds, 1);
    wn_jw_key(w, "documents"); wn_jw_u64(w, g[DOCS]);
    wn_jw_key(w, "documents_without_shingles"); wn_jw_u64(w, g[EMPTY]);
    wn_jw_key(w, "shingle"); wn_jw_str(w, s->cfg.unit == WN_MH_WORD ? "word" : "char");
    wn_jw_key(w, "ngram_used"); wn_jw_i64(w, s->cfg.n);
    wn_jw_key(w, "shingles"); wn_jw_u64(w, g[SHINGLES]);
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
    wn_jw_key(w, "candidate_pairs"); wn_jw_u64(w, g[CAND]);
    wn_jw_key(w, "verified_pairs");
    if (s->verify) wn_jw_u64(w, g[VERIFIED]);
    else wn_jw_null(w);
    wn_jw_key(w, "clusters"); wn_jw_u64(w, g[CLUSTERS]);
    wn_jw_key(w, "removed"); wn_jw_u64(w, g[REMOVED]);
    wn_jw_key(w, "largest_cluster"); wn_jw_u64(w, largest);
    const uint64_t *hist = g + HIST;
    int last = 0;
    for (int i = 0; i < HIST_BINS; i++)
        if (hist[i]) last = i;
    wn_jw_key(w, "cluster_size_histogram");
    wn_jw_obj_begin(w);
    wn_jw_key(w, "unit"); wn_jw_str(w, "documents per cluster");
    wn_jw_key(w, "edges");
    wn_jw_arr_begin(w);
    for (int i = 0; i <= last + 1; i++) wn_jw_u64(w, i == 0 ? 2 : i == 1 ? 3 : 1ull << i);
    wn_jw_arr_end(w);
    wn_jw_key(w, "counts");
    wn_jw_arr_begin(w);
    for (int i = 0; i <= last; i++) wn_jw_u64(w, hist[i]);
    wn_jw_arr_end(w);
    wn_jw_obj_end(w);
    wn_jw_key(w, "spill");
    wn_jw_obj_begin(w);
    wn_jw_key(w, "memory_budget_bytes"); wn_jw_u64(w, s->budget);
    wn_jw_key(w, "table_budget_bytes"); wn_jw_u64(w, s->tables);
    wn_jw_key(w, "reserve_bytes"); wn_jw_u64(w, s->reserve);
    wn_jw_key(w, "bucket_runs"); wn_jw_u64(w, g[BK_RUNS]);
    wn_jw_key(w, "pair_runs"); wn_jw_u64(w, g[PR_RUNS]);
    wn_jw_obj_end(w);
    wn_jw_key(w, "speed");
    wn_jw_obj_begin(w);
    wn_jw_key(w, "signature_seconds"); wn_jw_f64(w, sig_seconds);
    wn_jw_key(w, "signatures_per_second"); wn_jw_f64(w, sig_seconds > 0 ? (double)g[SIG_DOCS] / sig_seconds : 0);
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
    wn_free(s->start);
    wn_free(s->xn);
    wn_free(s->xrn);
    wn_buf_free(&s->xsend);
    wn_buf_free(&s->xrecv);
    wn_free(s->xpairs.p);
    wn_free(s->psend.p);
    wn_ids_free(&s->rem);
    wn_buf_free(&s->req);
    wn_free(s->reqn);
    wn_free(s->remoff);
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
           "lsh (curve), spill (memory_budget_bytes, table_budget_bytes, reserve_bytes, runs), speed.\n"
           "Under mpirun, ranks exchange band keys (12 bytes per band per document), candidate pairs,\n"
           "with verify the shingle sets of documents paired across ranks, and cluster labels; the\n"
           "outputs and the report's counts are the single process's.",
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
