/*
 * pack.c - packs tokenized documents into training shards (llm.c layout) in
 * RUN_DIR/shards/, with a docs sidecar (document starts), a weights sidecar
 * when padding must be masked or documents carry per-token loss weights
 * (d->tweight, from a token-level select), and shards/index.json.
 *
 * Modes:
 *   concat    llm.c's convention: documents (each starting with the EOT token
 *             the tokenize stage prepended) one after another in one stream.
 *   best_fit  Ding et al. 2024: documents longer than seq_len + 1 are cut into
 *             chunks of at most seq_len + 1 tokens; chunks are placed by
 *             Best-Fit-Decreasing into sequences of exactly seq_len + 1 tokens
 *             (inputs seq_len, targets shifted by one), padded with EOT at
 *             weight 0. BFD runs over a window of `window` sequences' worth of
 *             chunks at a time (streaming, memory-bounded), scanning the open
 *             bins for the one with the least room that fits (lowest index on
 *             ties), so the packing depends on the input alone.
 * shuffle: true emits each window's sequences (best_fit) or documents
 * (concat) in a seeded random order: a memory-bounded, windowed shuffle; the
 * trainer reshuffles its sequences every epoch on top.
 * A document goes to the validation split when xxh3-64(id, seed) / 2^64 <
 * val_fraction, else to train; splits have their own shards
 * (train_000000.bin, val_000000.bin, ...). A shard closes after shard_tokens
 * tokens (at a document or sequence boundary).
 *
 * Weights: the .weights.bin sidecar holds one float per token. best_fit
 * always writes it (padding 0). Otherwise it is written once any document
 * carries weights: from the start when a stage before announced them
 * (run->token_weights), else from the first such document on, the open
 * shards' earlier tokens back-filled with 1 (a shard without a sidecar
 * reads as weight 1 everywhere). Documents without weights get 1.
 *
 * Across MPI ranks (rank r's documents all come before rank r+1's) the
 * shards are the one process's, byte for byte: a relay (see relay()). Rank
 * 0 packs as documents come; each later rank holds its tokens back (a spill
 * of tokens, weights and split) and, in finish, receives the packing state
 * from the rank before, packs its stream from there and hands the state on
 * (one message: at most a window's tokens and weights); the last rank
 * closes the shards; rank 0 writes index.json from the shards' metadata
 * gathered from every rank. Open shard files continue on the next rank:
 * the run directory is shared, as for every output.
 *
 * Resume: the open shards are files that only grow; a checkpoint records
 * their lengths (after an fsync) and the buffered window (tokens, and
 * weights when written), and restoring truncates the files back to those
 * lengths; a rank that holds its tokens back records its spill's length.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "../src/docspill.h"
#include "../src/fs.h"
#include "../src/mpi.h"
#include "../src/shard.h"
#include "../src/stage.h"

static const wn_param_def params[] = {
    {"method", WN_P_ENUM, "concat", 0, 0, "concat|best_fit", "concat (llm.c stream) or best_fit sequences"},
    {"format", WN_P_ENUM, "llmc", 0, 0, "llmc|megatron",
     "llmc: .bin with llm.c's header; megatron: Megatron-LM .bin (raw tokens) + .idx, a document per sequence"},
    {"seq_len", WN_P_INT, "1024", 8, 1 << 20, NULL, "context length T; best_fit sequences hold T + 1 tokens"},
    {"shard_tokens", WN_P_INT, "100000000", 1024, 2000000000, NULL, "tokens per shard (llm.c: 1e8)"},
    {"val_fraction", WN_P_FLOAT, "0", 0, 1, NULL, "share of documents (by id hash) in the validation split"},
    {"seed", WN_P_INT, "0", 0, 9e18, NULL, "seed of the split hash"},
    {"dtype", WN_P_ENUM, "auto", 0, 0, "auto|uint16|uint32",
     "token width: auto = uint16 when the tokenizer has at most 65,536 tokens"},
    {"window", WN_P_INT, "1024", 1, 1 << 20, NULL, "best_fit / shuffle: sequences' worth of tokens handled together"},
    {"shuffle", WN_P_BOOL, "false", 0, 0, NULL, "emit each window's sequences or documents in a seeded random order"},
};

enum { SPLIT_TRAIN, SPLIT_VAL, N_SPLITS };
static const char *const split_name[N_SPLITS] = {"train", "val"};

typedef struct {
    char name[64];
    uint64_t ntok, ndocs;
    XXH128_hash_t sum;
} shard_info;

typedef struct {
    int open;
    int number;
    wn_shard_writer tok, docs, weights;
    uint64_t ndocs_total, ntok_total, pad_tokens, truncated_docs;
    /* best_fit window: chunks (token runs) waiting to be packed */
    uint32_t *buf;
    float *wbuf; /* their weights, when weights are written (buf_cap floats) */
    size_t buf_n, buf_cap;
    uint32_t *chunk_len;
    size_t n_chunks, chunk_cap;
    uint64_t windows; /* windows flushed: seeds the shuffle */
} split;

typedef struct {
    int best_fit, megatron, shuffle;
    int weights;     /* the .weights.bin sidecar is written */
    int doc_weights; /* documents carry (or were announced to carry) weights */
    float *ones;     /* 1.0 x ones_cap: weights of documents without any */
    size_t ones_cap;
    uint64_t zero_weight_tokens; /* document tokens (not padding) at weight 0 */
    int64_t seq_len, shard_tokens, window;
    double val_fraction;
    uint64_t seed;
    int token_bytes;
    uint32_t eot;
    char dir[4200];
    split sp[N_SPLITS];
    shard_info *done;
    int n_done;
    uint64_t bins, bin_tokens; /* best_fit statistics */
    /* across ranks, ranks after the first: the token stream held back */
    int relay;
    wn_spill_writer sw;
    wn_spill_reader sr;
    char spill_path[4200];
    uint64_t n_spilled;
    int finished;
} pack;

static wn_err pk_open(wn_stage *st)
{
    pack *s = st->state;
    s->best_fit = !strcmp(wn_param(st, "method")->s, "best_fit");
    s->megatron = !strcmp(wn_param(st, "format")->s, "megatron");
    s->shuffle = wn_param(st, "shuffle")->b;
    s->seq_len = wn_param(st, "seq_len")->i;
    s->shard_tokens = wn_param(st, "shard_tokens")->i;
    s->val_fraction = wn_param(st, "val_fraction")->f;
    s->seed = (uint64_t)wn_param(st, "seed")->i;
    s->window = wn_param(st, "window")->i;
    const char *dt = wn_param(st, "dtype")->s;
    if (!st->run || !st->run->vocab_size)
        return wn_fail(&st->err, WN_ERR_MANIFEST, "pack needs a tokenize stage before it");
    s->token_bytes = !strcmp(dt, "uint32") || (!strcmp(dt, "auto") && st->run->vocab_size > 65536) ? 4 : 2;
    if (s->token_bytes == 2 && st->run->vocab_size > 65536)
        return wn_fail(&st->err, WN_ERR_MANIFEST, "dtype uint16 cannot hold a %d-token vocabulary; use uint32 or auto",
                       st->run->vocab_size);
    if (s->best_fit && st->run->eot_id < 0)
        return wn_fail(&st->err, WN_ERR_MANIFEST, "best_fit pads with the end-of-text token: the tokenizer has none");
    s->eot = st->run->eot_id < 0 ? 0 : (uint32_t)st->run->eot_id;
    s->doc_weights = st->run->token_weights;
    s->weights = s->best_fit || s->doc_weights;
    snprintf(s->dir, sizeof s->dir, "%s/shards", st->run->run_dir);
    s->relay = wn_mpi_rank() > 0;
    snprintf(s->spill_path, sizeof s->spill_path, "%s/tokens.spill.zst", st->state_dir ? st->state_dir : ".");
    return wn_mkdir_p(s->dir, &st->err);
}

static void shard_path(const pack *s, int sp, int number, const char *suffix, char *out, size_t n)
{
    snprintf(out, n, "%s/%s_%06d%s", s->dir, split_name[sp], number, suffix);
}

static wn_err split_open(wn_stage *st, pack *s, int k, uint64_t tok, uint64_t docs, uint64_t weights)
{
    split *p = &s->sp[k];
    char path[4400];
    shard_path(s, k, p->number, ".bin", path, sizeof path);
    wn_err e = s->megatron ? wn_megatron_writer_open(&p->tok, path, s->token_bytes, tok, &st->err)
                           : wn_shard_writer_open(&p->tok, path, s->token_bytes, tok, &st->err);
    shard_path(s, k, p->number, ".docs.bin", path, sizeof path);
    if (!e) e = wn_sidecar_writer_open(&p->docs, path, WN_SHARD_DOCS_MAGIC, docs, &st->err);
    if (!e && s->weights) {
        shard_path(s, k, p->number, ".weights.bin", path, sizeof path);
        e = wn_sidecar_writer_open(&p->weights, path, WN_SHARD_WEIGHTS_MAGIC, weights, &st->err);
    }
    p->open = !e;
    return e;
}

static wn_err checksum(const char *path, XXH128_hash_t *sum, wn_errbuf *err)
{
    wn_buf b = {0};
    wn_err e = wn_read_file(path, &b, err);
    if (!e) *sum = XXH3_128bits(b.p, b.len);
    wn_buf_free(&b);
    return e;
}

/* NAME.idx from the document starts in NAME.docs.bin. */
static wn_err megatron_index(wn_stage *st, pack *s, int k)
{
    char path[4400];
    wn_buf d = {0};
    shard_path(s, k, s->sp[k].number, ".docs.bin", path, sizeof path);
    wn_err e = wn_read_file(path, &d, &st->err);
    if (!e && d.len < WN_SHARD_HEADER_BYTES) e = wn_fail(&st->err, WN_ERR_INTERNAL, "%s: too short", path);
    if (!e) {
        int32_t h[4];
        memcpy(h, d.p, sizeof h);
        shard_path(s, k, s->sp[k].number, ".idx", path, sizeof path);
        e = wn_megatron_write_index(path, s->token_bytes, (const uint64_t *)(d.p + WN_SHARD_HEADER_BYTES),
                                    (uint64_t)h[2], (uint64_t)h[3], &st->err);
    }
    wn_buf_free(&d);
    return e;
}

static wn_err split_close(wn_stage *st, pack *s, int k)
{
    split *p = &s->sp[k];
    if (!p->open) return WN_OK;
    p->docs.extra = p->tok.count;
    shard_info info = {{0}, p->tok.count, p->docs.count, {0, 0}};
    snprintf(info.name, sizeof info.name, "%s_%06d.bin", split_name[k], p->number);
    wn_err e = wn_shard_writer_close(&p->tok, &st->err);
    if (!e) e = wn_shard_writer_close(&p->docs, &st->err);
    if (!e && s->weights) e = wn_shard_writer_close(&p->weights, &st->err);
    if (!e) e = checksum(p->tok.path, &info.sum, &st->err);
    if (!e && s->megatron) e = megatron_index(st, s, k);
    if (e) return e;
    shard_info *d = wn_realloc(s->done, (size_t)(s->n_done + 1) * sizeof *d);
    if (!d) return WN_ERR_NOMEM;
    s->done = d;
    s->done[s->n_done++] = info;
    p->open = 0;
    p->number++;
    return WN_OK;
}

/* n weights of 1.0 (NULL when out of memory). */
static const float *ones(pack *s, size_t n)
{
    if (n > s->ones_cap) {
        size_t cap = n < 4096 ? 4096 : n;
        float *o = wn_realloc(s->ones, cap * sizeof *o);
        if (!o) return NULL;
        for (size_t i = 0; i < cap; i++) o[i] = 1.0f;
        s->ones = o;
        s->ones_cap = cap;
    }
    return s->ones;
}

/* Appends one run of tokens (a document, or a best_fit sequence) to split k;
 * starts[] are the offsets in it where documents (or document chunks) begin;
 * w holds their weights (NULL = all 1), written when weights are on. */
static wn_err emit(wn_stage *st, pack *s, int k, const uint32_t *t, size_t n, const float *w,
                   const size_t *starts, size_t n_starts)
{
    split *p = &s->sp[k];
    wn_err e;
    if (!p->open && (e = split_open(st, s, k, 0, 0, 0))) return e;
    for (size_t i = 0; i < n_starts; i++) {
        uint64_t start = p->tok.count + starts[i];
        if ((e = wn_shard_writer_put_raw(&p->docs, &start, 1, &st->err))) return e;
    }
    if ((e = wn_shard_writer_put(&p->tok, t, n, &st->err))) return e;
    if (s->weights) {
        if (!w && !(w = ones(s, n))) return wn_fail(&st->err, WN_ERR_NOMEM, "out of memory");
        if ((e = wn_shard_writer_put_raw(&p->weights, w, n, &st->err))) return e;
    }
    p->ntok_total += n;
    if ((int64_t)p->tok.count >= s->shard_tokens) return split_close(st, s, k);
    return WN_OK;
}

/* ---- best fit --------------------------------------------------------- */

/* Makes room for n more tokens in the window (and their weights when
 * weights are on). */
static wn_err window_reserve(const pack *s, split *p, size_t n)
{
    if (p->buf_n + n > p->buf_cap || (s->weights && !p->wbuf)) {
        size_t cap = p->buf_n + n > p->buf_cap ? (p->buf_n + n) * 2 : p->buf_cap ? p->buf_cap : 1;
        uint32_t *b = wn_realloc(p->buf, cap * sizeof *b);
        if (!b) return WN_ERR_NOMEM;
        p->buf = b;
        if (s->weights) {
            float *w = wn_realloc(p->wbuf, cap * sizeof *w);
            if (!w) return WN_ERR_NOMEM;
            p->wbuf = w;
        }
        p->buf_cap = cap;
    }
    return WN_OK;
}

/* Adds a chunk of n tokens with weights w (NULL = all 1) to the window. */
static wn_err add_chunk(const pack *s, split *p, const uint32_t *t, const float *w, size_t n)
{
    if (window_reserve(s, p, n)) return WN_ERR_NOMEM;
    if (p->n_chunks == p->chunk_cap) {
        size_t cap = p->chunk_cap ? p->chunk_cap * 2 : 1024;
        uint32_t *c = wn_realloc(p->chunk_len, cap * sizeof *c);
        if (!c) return WN_ERR_NOMEM;
        p->chunk_len = c;
        p->chunk_cap = cap;
    }
    memcpy(p->buf + p->buf_n, t, n * sizeof *t);
    if (s->weights) {
        if (w) memcpy(p->wbuf + p->buf_n, w, n * sizeof *w);
        else for (size_t i = 0; i < n; i++) p->wbuf[p->buf_n + i] = 1.0f;
    }
    p->buf_n += n;
    p->chunk_len[p->n_chunks++] = (uint32_t)n;
    return WN_OK;
}

typedef struct {
    uint32_t len;
    size_t off, index;
} chunk_ref;

static int by_length_desc(const void *a, const void *b)
{
    const chunk_ref *x = a, *y = b;
    if (x->len != y->len) return x->len > y->len ? -1 : 1;
    return x->index < y->index ? -1 : x->index > y->index; /* stable: input order */
}

/* Best-Fit-Decreasing over the window's chunks; emits every sequence. */
static wn_err flush_window(wn_stage *st, pack *s, int k)
{
    split *p = &s->sp[k];
    if (!p->n_chunks) return WN_OK;
    size_t cap = (size_t)s->seq_len + 1, n = p->n_chunks;
    size_t seq_cap = cap; /* a unit's most tokens: a sequence, or (concat) the longest document */
    for (size_t i = 0; i < n; i++) if (p->chunk_len[i] > seq_cap) seq_cap = p->chunk_len[i];
    chunk_ref *c = wn_malloc(n * sizeof *c);
    size_t *bin_of = wn_malloc(n * sizeof *bin_of);
    size_t *free_cap = wn_malloc(n * sizeof *free_cap);
    size_t *order = wn_malloc(n * sizeof *order);
    uint32_t *seq = wn_malloc(seq_cap * sizeof *seq);
    float *w = wn_malloc(seq_cap * sizeof *w);
    size_t *starts = wn_malloc(seq_cap * sizeof *starts);
    wn_err e = WN_OK;
    if (!c || !bin_of || !free_cap || !order || !seq || !w || !starts) { e = WN_ERR_NOMEM; goto done; }
    size_t off = 0;
    for (size_t i = 0; i < n; i++) {
        c[i] = (chunk_ref){p->chunk_len[i], off, i};
        off += p->chunk_len[i];
    }
    size_t bins = 0;
    if (s->best_fit) {
        qsort(c, n, sizeof *c, by_length_desc);
        for (size_t i = 0; i < n; i++) { /* the open bin with the least room that fits */
            size_t best = bins;
            for (size_t b = 0; b < bins; b++)
                if (free_cap[b] >= c[i].len && (best == bins || free_cap[b] < free_cap[best])) best = b;
            if (best == bins) free_cap[bins++] = cap;
            free_cap[best] -= c[i].len;
            bin_of[i] = best;
        }
    } else { /* concat + shuffle: every document is its own unit */
        for (size_t i = 0; i < n; i++) bin_of[i] = bins++;
    }
    /* the order bins go out in: as packed, or a seeded permutation */
    for (size_t b = 0; b < bins; b++) order[b] = b;
    if (s->shuffle) {
        uint64_t x = s->seed ^ (0x9E3779B97F4A7C15ull * (p->windows * 2 + (uint64_t)k + 1));
        for (size_t b = bins; b > 1; b--) {
            size_t j = (size_t)(wn_splitmix64(&x) % b), t = order[b - 1];
            order[b - 1] = order[j];
            order[j] = t;
        }
    }
    p->windows++;
    /* chunks inside a bin in packing order */
    for (size_t ob = 0; ob < bins && !e; ob++) {
        size_t b = order[ob], len = 0, n_starts = 0;
        for (size_t i = 0; i < n; i++) {
            if (bin_of[i] != b) continue;
            if (len + c[i].len > seq_cap) { e = WN_ERR_INTERNAL; break; }
            starts[n_starts++] = len;
            memcpy(seq + len, p->buf + c[i].off, c[i].len * sizeof *seq);
            if (s->weights) memcpy(w + len, p->wbuf + c[i].off, c[i].len * sizeof *w);
            len += c[i].len;
        }
        if (e) break;
        if (!s->best_fit) {
            e = emit(st, s, k, seq, len, s->weights ? w : NULL, starts, n_starts);
            continue;
        }
        for (; len < cap; len++) { seq[len] = s->eot; w[len] = 0.0f; p->pad_tokens++; }
        s->bins++;
        s->bin_tokens += cap;
        e = emit(st, s, k, seq, cap, w, starts, n_starts);
    }
    p->buf_n = 0;
    p->n_chunks = 0;
done:
    wn_free(c);
    wn_free(bin_of);
    wn_free(free_cap);
    wn_free(order);
    wn_free(seq);
    wn_free(w);
    wn_free(starts);
    return e;
}

/* The first document with weights when no stage announced them: the
 * sidecar starts now, with weight 1 for what the open shards and windows
 * already hold. */
static wn_err weights_on(wn_stage *st, pack *s)
{
    s->weights = s->doc_weights = 1;
    for (int k = 0; k < N_SPLITS; k++) {
        split *p = &s->sp[k];
        if (p->open) {
            char path[4400];
            wn_err e;
            shard_path(s, k, p->number, ".weights.bin", path, sizeof path);
            if ((e = wn_sidecar_writer_open(&p->weights, path, WN_SHARD_WEIGHTS_MAGIC, 0, &st->err))) return e;
            for (uint64_t done = 0, n; done < p->tok.count; done += n) {
                n = p->tok.count - done < 65536 ? p->tok.count - done : 65536;
                const float *o = ones(s, (size_t)n);
                if (!o) return wn_fail(&st->err, WN_ERR_NOMEM, "out of memory");
                if ((e = wn_shard_writer_put_raw(&p->weights, o, (size_t)n, &st->err))) return e;
            }
        }
        if (p->buf_cap) {
            if (window_reserve(s, p, 0)) return wn_fail(&st->err, WN_ERR_NOMEM, "out of memory");
            for (size_t i = 0; i < p->buf_n; i++) p->wbuf[i] = 1.0f;
        }
    }
    return WN_OK;
}

/* Packs one document (tokens t[0..n), weights dw or NULL = all 1) into
 * split k: the stream's order of these calls is the shards' order. */
static wn_err pack_doc(wn_stage *st, pack *s, int k, const uint32_t *t, size_t n, const float *dw)
{
    wn_err e;
    if (dw) {
        if (!s->weights && (e = weights_on(st, s))) return e;
        s->doc_weights = 1;
        for (size_t i = 0; i < n; i++) s->zero_weight_tokens += dw[i] == 0.0f;
    }
    split *p = &s->sp[k];
    p->ndocs_total++;
    size_t cap = (size_t)s->seq_len + 1;
    if (!s->best_fit && !s->shuffle) {
        size_t zero = 0;
        return emit(st, s, k, t, n, dw, &zero, 1);
    }
    if (!s->best_fit) { /* concat + shuffle: whole documents wait in the window */
        if ((e = add_chunk(s, p, t, dw, n))) return wn_fail(&st->err, e, "out of memory");
        if ((int64_t)p->buf_n >= s->window * (int64_t)cap && (e = flush_window(st, s, k))) return e;
        return WN_OK;
    }
    if (n > cap) p->truncated_docs++;
    for (size_t off = 0; off < n; off += cap) {
        size_t m = n - off < cap ? n - off : cap;
        if ((e = add_chunk(s, p, t + off, dw ? dw + off : NULL, m))) return wn_fail(&st->err, e, "out of memory");
    }
    if ((int64_t)p->buf_n >= s->window * (int64_t)cap && (e = flush_window(st, s, k))) return e;
    return WN_OK;
}

static wn_err pk_process(wn_stage *st, wn_batch *b)
{
    pack *s = st->state;
    wn_err e;
    if (s->finished) return wn_fail(&st->err, WN_ERR_INTERNAL, "documents after the end of the stream");
    for (size_t i = 0; i < b->n; i++) {
        const wn_doc *d = &b->docs[i];
        if (!d->has_tokens) return wn_fail(&st->err, WN_ERR_MANIFEST, "pack needs tokens: put a tokenize stage before it");
        if (!d->tokens.n) continue;
        const float *dw = d->tweight.n == d->tokens.n ? d->tweight.p : NULL; /* NULL: all 1 */
        int k = s->val_fraction > 0 &&
                (double)XXH3_64bits_withSeed(d->id.p, d->id.len, s->seed) / 18446744073709551616.0 < s->val_fraction;
        if (s->token_bytes == 2)
            for (size_t t = 0; t < d->tokens.n; t++)
                if (d->tokens.p[t] > 65535)
                    return wn_fail(&st->err, WN_ERR_INPUT, "token %u does not fit uint16 shards (dtype: uint32)",
                                   d->tokens.p[t]);
        if (!s->relay) {
            if ((e = pack_doc(st, s, k, d->tokens.p, d->tokens.n, dw))) return e;
            continue;
        }
        /* held back: the tokens, their weights and the split (in `file`) */
        wn_doc lean = {0};
        lean.tokens = d->tokens;
        lean.has_tokens = 1;
        if (dw) lean.tweight = d->tweight;
        lean.file = (uint32_t)k;
        if ((!s->sw.open && (e = wn_spill_writer_open(&s->sw, s->spill_path, 0, &st->err))) ||
            (e = wn_spill_writer_put(&s->sw, &lean, &st->err)))
            return e;
        s->n_spilled++;
    }
    if (s->relay && (e = wn_spill_writer_flush(&s->sw, &st->err))) return e;
    return WN_OK;
}

static wn_err write_index(wn_stage *st, pack *s)
{
    wn_buf out = {0};
    wn_jw w;
    char hex[40];
    wn_jw_init(&w, &out, 1);
    wn_jw_obj_begin(&w);
    wn_jw_key(&w, "format");
    wn_jw_str(&w, s->megatron ? (s->token_bytes == 2 ? "megatron (uint16)" : "megatron (int32)")
                              : s->token_bytes == 2 ? "llm.c v1 (uint16)" : "llm.c v2 (uint32)");
    wn_jw_key(&w, "method"); wn_jw_str(&w, s->best_fit ? "best_fit" : "concat");
    wn_jw_key(&w, "seq_len"); wn_jw_i64(&w, s->seq_len);
    wn_jw_key(&w, "sequence_tokens"); wn_jw_i64(&w, s->best_fit ? s->seq_len + 1 : 0);
    wn_jw_key(&w, "tokenizer"); wn_jw_str(&w, st->run->tokenizer);
    snprintf(hex, sizeof hex, "%016llx", (unsigned long long)st->run->tokenizer_hash);
    wn_jw_key(&w, "tokenizer_hash"); wn_jw_str(&w, hex);
    wn_jw_key(&w, "vocab_size"); wn_jw_i64(&w, st->run->vocab_size);
    wn_jw_key(&w, "eot"); wn_jw_i64(&w, st->run->eot_id);
    snprintf(hex, sizeof hex, "%016llx", (unsigned long long)st->run->manifest_hash);
    wn_jw_key(&w, "manifest_hash"); wn_jw_str(&w, hex);
    wn_jw_key(&w, "shards");
    wn_jw_arr_begin(&w);
    for (int i = 0; i < s->n_done; i++) {
        wn_jw_obj_begin(&w);
        wn_jw_key(&w, "file"); wn_jw_str(&w, s->done[i].name);
        wn_jw_key(&w, "split"); wn_jw_str(&w, !strncmp(s->done[i].name, "val", 3) ? "val" : "train");
        wn_jw_key(&w, "tokens"); wn_jw_u64(&w, s->done[i].ntok);
        wn_jw_key(&w, "documents"); wn_jw_u64(&w, s->done[i].ndocs);
        snprintf(hex, sizeof hex, "%016llx%016llx", (unsigned long long)s->done[i].sum.high64,
                 (unsigned long long)s->done[i].sum.low64);
        wn_jw_key(&w, "xxh3_128"); wn_jw_str(&w, hex);
        wn_jw_obj_end(&w);
    }
    wn_jw_arr_end(&w);
    wn_jw_obj_end(&w);
    wn_buf_putc(&out, '\n');
    char path[4400];
    snprintf(path, sizeof path, "%s/index.json", s->dir);
    wn_err e = out.p ? wn_write_atomic(path, out.p, out.len, &st->err) : WN_ERR_NOMEM;
    wn_buf_free(&out);
    return e;
}

/* ---- the packing state: checkpoints, and the hand-off between ranks ---------- */

typedef struct {
    uint64_t magic, n_done, bins, bin_tokens, weights, doc_weights, zero_weight_tokens;
    struct {
        uint64_t open, number, tok, docs, weights, ndocs_total, ntok_total, pad_tokens, truncated, buf_n, n_chunks,
            windows;
    } sp[N_SPLITS];
} pack_ckpt;

#define STATE_MAGIC 0x7061636b33ull /* "pack3" */

/* Writes the packing state: the open shards' lengths (after an fsync),
 * the windows' contents, the counters, and the closed shards when
 * with_done. */
static wn_err state_put(wn_stage *st, pack *s, FILE *f, int with_done)
{
    pack_ckpt c = {STATE_MAGIC, with_done ? (uint64_t)s->n_done : 0, s->bins, s->bin_tokens, (uint64_t)s->weights,
                   (uint64_t)s->doc_weights, s->zero_weight_tokens, {{0}}};
    for (int k = 0; k < N_SPLITS; k++) {
        split *p = &s->sp[k];
        wn_err e;
        if (p->open && ((e = wn_shard_writer_sync(&p->tok, &st->err)) || (e = wn_shard_writer_sync(&p->docs, &st->err)) ||
                        (s->weights && (e = wn_shard_writer_sync(&p->weights, &st->err)))))
            return e;
        c.sp[k].open = (uint64_t)p->open;
        c.sp[k].number = (uint64_t)p->number;
        c.sp[k].tok = p->open ? p->tok.count : 0;
        c.sp[k].docs = p->open ? p->docs.count : 0;
        c.sp[k].weights = p->open && s->weights ? p->weights.count : 0;
        c.sp[k].ndocs_total = p->ndocs_total;
        c.sp[k].ntok_total = p->ntok_total;
        c.sp[k].pad_tokens = p->pad_tokens;
        c.sp[k].truncated = p->truncated_docs;
        c.sp[k].buf_n = p->buf_n;
        c.sp[k].n_chunks = p->n_chunks;
        c.sp[k].windows = p->windows;
    }
    int bad = fwrite(&c, sizeof c, 1, f) != 1;
    bad |= c.n_done && fwrite(s->done, sizeof *s->done, (size_t)s->n_done, f) != (size_t)s->n_done;
    for (int k = 0; k < N_SPLITS; k++) {
        split *p = &s->sp[k];
        bad |= p->buf_n && fwrite(p->buf, sizeof *p->buf, p->buf_n, f) != p->buf_n;
        bad |= s->weights && p->buf_n && fwrite(p->wbuf, sizeof *p->wbuf, p->buf_n, f) != p->buf_n;
        bad |= p->n_chunks && fwrite(p->chunk_len, sizeof *p->chunk_len, p->n_chunks, f) != p->n_chunks;
    }
    return bad ? wn_fail(&st->err, WN_ERR_IO, "checkpoint write failed") : WN_OK;
}

/* Restores what state_put wrote: reopens the open shards (truncated back to
 * the lengths written) and refills the windows. */
static wn_err state_get(wn_stage *st, pack *s, FILE *f)
{
    pack_ckpt c;
    if (fread(&c, sizeof c, 1, f) != 1 || c.magic != STATE_MAGIC)
        return wn_fail(&st->err, WN_ERR_STATE, "not a pack checkpoint");
    s->bins = c.bins;
    s->weights = (int)c.weights;
    s->doc_weights = (int)c.doc_weights;
    s->zero_weight_tokens = c.zero_weight_tokens;
    s->bin_tokens = c.bin_tokens;
    if (c.n_done) {
        if (!(s->done = wn_malloc(c.n_done * sizeof *s->done))) return WN_ERR_NOMEM;
        if (fread(s->done, sizeof *s->done, c.n_done, f) != c.n_done) return wn_fail(&st->err, WN_ERR_STATE, "cut short");
        s->n_done = (int)c.n_done;
    }
    for (int k = 0; k < N_SPLITS; k++) {
        split *p = &s->sp[k];
        p->number = (int)c.sp[k].number;
        p->ndocs_total = c.sp[k].ndocs_total;
        p->ntok_total = c.sp[k].ntok_total;
        p->pad_tokens = c.sp[k].pad_tokens;
        p->truncated_docs = c.sp[k].truncated;
        p->windows = c.sp[k].windows;
        size_t bn = c.sp[k].buf_n, nc = c.sp[k].n_chunks;
        wn_free(p->buf);
        wn_free(p->wbuf);
        wn_free(p->chunk_len);
        p->buf = wn_malloc((bn ? bn : 1) * sizeof *p->buf);
        p->wbuf = s->weights ? wn_malloc((bn ? bn : 1) * sizeof *p->wbuf) : NULL;
        p->chunk_len = wn_malloc((nc ? nc : 1) * sizeof *p->chunk_len);
        if (!p->buf || !p->chunk_len || (s->weights && !p->wbuf)) return WN_ERR_NOMEM;
        p->buf_cap = bn ? bn : 1;
        p->chunk_cap = nc ? nc : 1;
        if ((bn && fread(p->buf, sizeof *p->buf, bn, f) != bn) ||
            (bn && s->weights && fread(p->wbuf, sizeof *p->wbuf, bn, f) != bn) ||
            (nc && fread(p->chunk_len, sizeof *p->chunk_len, nc, f) != nc))
            return wn_fail(&st->err, WN_ERR_STATE, "pack checkpoint cut short");
        p->buf_n = bn;
        p->n_chunks = nc;
        wn_err e;
        if (c.sp[k].open && (e = split_open(st, s, k, c.sp[k].tok, c.sp[k].docs, c.sp[k].weights))) return e;
    }
    return WN_OK;
}

/* Closes the open shards' files as they are (no header, not renamed): the
 * next rank reopens them and goes on. */
static void hand_over_files(pack *s)
{
    for (int k = 0; k < N_SPLITS; k++) {
        split *p = &s->sp[k];
        if (!p->open) continue;
        fclose(p->tok.f);
        fclose(p->docs.f);
        if (s->weights) fclose(p->weights.f);
        p->tok.f = p->docs.f = p->weights.f = NULL;
        p->open = 0;
    }
}

/* Across ranks (ranks take contiguous parts of the stream, in rank order),
 * packing is a relay: rank 0 packs its documents as they come; every later
 * rank holds its tokens back (spill) and, in finish, receives the packing
 * state from the rank before it - shard numbers, the open shards' lengths
 * (their files, synced, continue where that rank stopped), the windows'
 * tokens and weights, the counters - packs its own stream from there and
 * hands the state to the next; the last one flushes the windows and closes
 * the shards. So every byte is what one process writes. Then the shards'
 * metadata (96 bytes each) is gathered for rank 0's index.json, and the
 * last rank's counters are broadcast for the report. Exchanged: per rank,
 * one state message (at most a window's tokens and weights, 8 bytes a
 * token, plus 4 bytes a chunk), nothing per document. */
static wn_err relay(wn_stage *st, pack *s)
{
    int rank = wn_mpi_rank(), size = wn_mpi_size();
    wn_buf msg = {0};
    wn_err e = WN_OK;
    if (rank > 0) {
        if ((e = wn_spill_writer_finish(&s->sw, &st->err))) return e;
        if ((e = wn_mpi_recv(rank - 1, &msg))) return wn_fail(&st->err, e, "out of memory");
        FILE *f = fmemopen(msg.p, msg.len, "rb");
        if (!f) e = wn_fail(&st->err, WN_ERR_NOMEM, "out of memory");
        if (!e) e = state_get(st, s, f);
        if (f) fclose(f);
        if (!e && s->n_spilled) {
            wn_doc d = {0};
            if (!(e = wn_spill_reader_open(&s->sr, s->spill_path, &st->err))) {
                uint64_t n = 0;
                for (int got = 1; !e;) {
                    if ((e = wn_spill_reader_next(&s->sr, &d, &got, &st->err)) || !got) break;
                    if (d.file >= N_SPLITS) e = wn_fail(&st->err, WN_ERR_STATE, "%s: bad split", s->spill_path);
                    if (!e) e = pack_doc(st, s, (int)d.file, d.tokens.p, d.tokens.n,
                                         d.tweight.n == d.tokens.n ? d.tweight.p : NULL);
                    n++;
                }
                if (!e && n != s->n_spilled)
                    e = wn_fail(&st->err, WN_ERR_STATE, "%s: %llu documents read back of %llu spilled", s->spill_path,
                                (unsigned long long)n, (unsigned long long)s->n_spilled);
                wn_spill_reader_close(&s->sr);
            }
            wn_doc_free(&d);
        }
        if (e) goto done;
    }
    if (rank < size - 1) {
        char *p = NULL;
        size_t n = 0;
        FILE *f = open_memstream(&p, &n);
        if (!f) {
            e = wn_fail(&st->err, WN_ERR_NOMEM, "out of memory");
            goto done;
        }
        e = state_put(st, s, f, 0);
        if (fclose(f) && !e) e = wn_fail(&st->err, WN_ERR_NOMEM, "out of memory");
        if (!e) {
            hand_over_files(s);
            wn_mpi_send(rank + 1, p, n);
        }
        free(p); /* open_memstream's buffer: malloc's */
        if (e) goto done;
    } else {
        for (int k = 0; k < N_SPLITS && !e; k++) {
            if (s->best_fit || s->shuffle) e = flush_window(st, s, k);
            if (!e) e = split_close(st, s, k);
        }
        if (e) goto done;
    }
    /* every rank's shards, in rank order: the order one process closes them in */
    uint64_t *counts = wn_malloc((size_t)size * sizeof *counts);
    if (!counts) e = WN_ERR_NOMEM;
    if (!e) e = wn_mpi_allgatherv(s->done, (uint64_t)s->n_done * sizeof *s->done, &msg, counts);
    wn_free(counts);
    if (!e) {
        shard_info *all = wn_malloc(msg.len ? msg.len : 1);
        if (!all) {
            e = WN_ERR_NOMEM;
            goto done;
        }
        if (msg.len) memcpy(all, msg.p, msg.len);
        wn_free(s->done);
        s->done = all;
        s->n_done = (int)(msg.len / sizeof *all);
    }
    /* the stream's counters: the last rank's */
    uint64_t t[4 + 4 * N_SPLITS] = {(uint64_t)s->doc_weights, s->zero_weight_tokens, s->bins, s->bin_tokens};
    for (int k = 0; k < N_SPLITS; k++) {
        const split *p = &s->sp[k];
        uint64_t *x = t + 4 + 4 * k;
        x[0] = p->ndocs_total, x[1] = p->ntok_total, x[2] = p->pad_tokens, x[3] = p->truncated_docs;
    }
    wn_mpi_bcast(t, sizeof t, size - 1);
    s->doc_weights = (int)t[0];
    s->zero_weight_tokens = t[1];
    s->bins = t[2];
    s->bin_tokens = t[3];
    for (int k = 0; k < N_SPLITS; k++) {
        split *p = &s->sp[k];
        const uint64_t *x = t + 4 + 4 * k;
        p->ndocs_total = x[0], p->ntok_total = x[1], p->pad_tokens = x[2], p->truncated_docs = x[3];
    }
done:
    wn_buf_free(&msg);
    if (e == WN_ERR_NOMEM && !st->err.msg[0]) e = wn_fail(&st->err, e, "out of memory");
    return e;
}

static wn_err pk_finish(wn_stage *st, wn_batch *out)
{
    (void)out;
    pack *s = st->state;
    if (s->finished) return WN_OK;
    s->finished = 1;
    wn_err e = relay(st, s);
    return e || wn_mpi_rank() ? e : write_index(st, s);
}

/* Checkpoint: the packing state, then the spill of a rank that holds its
 * tokens back (its length and count). */
static wn_err pk_save(wn_stage *st, FILE *f)
{
    pack *s = st->state;
    wn_err e = state_put(st, s, f, 1);
    if (!e) e = wn_spill_writer_sync(&s->sw, &st->err);
    uint64_t held[3] = {(uint64_t)s->sw.open, s->sw.bytes, s->n_spilled};
    if (!e && fwrite(held, sizeof held, 1, f) != 1) e = wn_fail(&st->err, WN_ERR_IO, "checkpoint write failed");
    return e;
}

static wn_err pk_load(wn_stage *st, FILE *f)
{
    pack *s = st->state;
    wn_err e = state_get(st, s, f);
    uint64_t held[3];
    if (!e && fread(held, sizeof held, 1, f) != 1) e = wn_fail(&st->err, WN_ERR_STATE, "pack checkpoint cut short");
    if (e) return e;
    if (!s->relay && (held[0] || held[2]))
        return wn_fail(&st->err, WN_ERR_STATE, "the checkpoint is of another rank: pack held tokens back");
    s->n_spilled = held[2];
    if (held[0]) {
        s->sw.bytes = held[1];
        return wn_spill_writer_open(&s->sw, s->spill_path, 1, &st->err);
    }
    return WN_OK;
}

static void pk_report(wn_stage *st, wn_jw *w)
{
    pack *s = st->state;
    wn_jw_key(w, "shards"); wn_jw_i64(w, s->n_done);
    for (int k = 0; k < N_SPLITS; k++) {
        char key[64];
        snprintf(key, sizeof key, "%s_tokens", split_name[k]);
        wn_jw_key(w, key); wn_jw_u64(w, s->sp[k].ntok_total);
        snprintf(key, sizeof key, "%s_documents", split_name[k]);
        wn_jw_key(w, key); wn_jw_u64(w, s->sp[k].ndocs_total);
    }
    if (s->doc_weights) {
        wn_jw_key(w, "token_weights"); wn_jw_bool(w, 1);
        wn_jw_key(w, "zero_weight_tokens"); wn_jw_u64(w, s->zero_weight_tokens);
    }
    if (s->best_fit) {
        uint64_t pad = s->sp[0].pad_tokens + s->sp[1].pad_tokens;
        uint64_t cut = s->sp[0].truncated_docs + s->sp[1].truncated_docs;
        uint64_t docs = s->sp[0].ndocs_total + s->sp[1].ndocs_total;
        wn_jw_key(w, "sequences"); wn_jw_u64(w, s->bins);
        wn_jw_key(w, "padding_tokens"); wn_jw_u64(w, pad);
        wn_jw_key(w, "padding_fraction"); wn_jw_f64(w, s->bin_tokens ? (double)pad / (double)s->bin_tokens : 0);
        wn_jw_key(w, "truncated_documents"); wn_jw_u64(w, cut);
        wn_jw_key(w, "truncated_fraction"); wn_jw_f64(w, docs ? (double)cut / (double)docs : 0);
    }
}

static void pk_close(wn_stage *st)
{
    pack *s = st->state;
    for (int k = 0; k < N_SPLITS; k++) {
        split *p = &s->sp[k];
        if (p->open) { /* an interrupted run: the unfinished files stay for resume */
            if (p->tok.f) fclose(p->tok.f);
            if (p->docs.f) fclose(p->docs.f);
            if (p->weights.f) fclose(p->weights.f);
        }
        wn_free(p->buf);
        wn_free(p->wbuf);
        wn_free(p->chunk_len);
    }
    wn_free(s->done);
    wn_free(s->ones);
    wn_spill_writer_close(&s->sw); /* an interrupted run: the spill stays for resume */
    wn_spill_reader_close(&s->sr);
}

const wn_stage_def wn_stage_pack = {
    .name = "pack",
    .summary = "pack token ids into llm.c training shards (concat or best-fit), train/val split, index.json",
    .doc = "Writes RUN_DIR/shards/{train,val}_NNNNNN.bin in llm.c's layout (256 x int32 header, magic\n"
           "20240520; uint16 tokens, or uint32 as version 2), a .docs.bin sidecar with document starts,\n"
           "a .weights.bin sidecar for best_fit (padding has weight 0) and whenever documents carry\n"
           "per-token loss weights (select at token level), and shards/index.json with token\n"
           "counts, xxh3-128 checksums, the tokenizer's and the manifest's hashes. concat follows llm.c\n"
           "(documents back to back, each starting with the EOT the tokenize stage prepends); best_fit\n"
           "packs whole documents into sequences of seq_len + 1 tokens by Best-Fit-Decreasing, cutting only\n"
           "documents longer than a sequence, and reports the padding and truncation fractions.\n"
           "Across MPI ranks the shards are the one process's: each rank packs its part of the stream\n"
           "after the one before hands it the packing state (open shards, windows, counters).",
    .params = params,
    .n_params = WN_ARRAY_LEN(params),
    .state_size = sizeof(pack),
    .open = pk_open,
    .process = pk_process,
    .finish = pk_finish,
    .save = pk_save,
    .load = pk_load,
    .report = pk_report,
    .close = pk_close,
};
