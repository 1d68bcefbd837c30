/*
 * dataloader.c - batches of token sequences from shards (dataloader.h).
 */
#include "dataloader.h"

#include <glob.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "fs.h"
#include "json.h"
#include "shard.h"

struct wn_loader {
    int T, shuffle;
    uint64_t seed;
    int nshards;
    wn_shard *shards;
    uint64_t *stride; /* per shard: tokens between sequence starts */
    uint64_t *first;  /* per shard + 1: number of the shard's first sequence; first[nshards] = total */
    uint64_t nseq, ntok;
    uint64_t *order;  /* this epoch's permutation (shuffling loaders) */
    uint64_t epoch, next;
    int index_vocab, has_weights;
};

/* Fisher-Yates over 0..nseq-1 for (seed, epoch); j uniform in [0, i] by
 * Lemire's multiply-shift (bias below 2^-40 for any realistic count). */
static void make_order(wn_loader *l)
{
    uint64_t s = l->seed ^ 0x5851F42D4C957F2DULL, e = l->epoch;
    s ^= wn_splitmix64(&e);
    for (uint64_t i = 0; i < l->nseq; i++) l->order[i] = i;
    for (uint64_t i = l->nseq; i > 1; i--) {
        uint64_t j = (uint64_t)(((unsigned __int128)wn_splitmix64(&s) * i) >> 64);
        uint64_t t = l->order[i - 1];
        l->order[i - 1] = l->order[j];
        l->order[j] = t;
    }
}

static int is_sidecar(const char *path)
{
    size_t n = strlen(path);
    static const char *const skip[] = {".weights.bin", ".docs.bin", ".tmp"};
    for (size_t i = 0; i < WN_ARRAY_LEN(skip); i++) {
        size_t k = strlen(skip[i]);
        if (n >= k && !strcmp(path + n - k, skip[i])) return 1;
    }
    return 0;
}

/* Reads DIR/index.json beside a shard, if any: sequence_tokens, vocab_size. */
static wn_err read_index(const char *shard, int64_t *seq_tokens, int64_t *vocab, wn_errbuf *err)
{
    *seq_tokens = 0;
    *vocab = 0;
    char path[4200];
    const char *slash = strrchr(shard, '/');
    if (slash) snprintf(path, sizeof path, "%.*s/index.json", (int)(slash - shard), shard);
    else snprintf(path, sizeof path, "index.json");
    if (!wn_exists(path)) return WN_OK;
    wn_buf b = {0};
    wn_err e = wn_read_file(path, &b, err);
    if (e) return e;
    wn_span v;
    if (wn_json_check_object(b.p, b.len, NULL, NULL)) {
        e = wn_fail(err, WN_ERR_INPUT, "%s: not a JSON object", path);
    } else {
        if (wn_json_get(b.p, b.len, "sequence_tokens", &v) && !wn_json_to_i64(v, seq_tokens))
            e = wn_fail(err, WN_ERR_INPUT, "%s: sequence_tokens is not an integer", path);
        if (wn_json_get(b.p, b.len, "vocab_size", &v) && !wn_json_to_i64(v, vocab))
            e = wn_fail(err, WN_ERR_INPUT, "%s: vocab_size is not an integer", path);
        if (*seq_tokens < 0 || *vocab < 0 || *vocab > INT32_MAX)
            e = wn_fail(err, WN_ERR_INPUT, "%s: sequence_tokens or vocab_size out of range", path);
    }
    wn_buf_free(&b);
    return e;
}

wn_err wn_loader_open(wn_loader **out, const char *pattern, int T, int shuffle, uint64_t seed, wn_errbuf *err)
{
    *out = NULL;
    if (T < 1) return wn_fail(err, WN_ERR_USAGE, "sequence length %d: must be at least 1", T);
    glob_t g;
    int rc = glob(pattern, 0, NULL, &g);
    if (rc == GLOB_NOMATCH) return wn_fail(err, WN_ERR_INPUT, "%s: no file matches", pattern);
    if (rc) return wn_fail(err, WN_ERR_IO, "%s: glob failed", pattern);
    wn_err e = WN_OK;
    wn_loader *l = wn_calloc(1, sizeof *l);
    if (l) {
        l->shards = wn_calloc(g.gl_pathc, sizeof *l->shards);
        l->stride = wn_calloc(g.gl_pathc, sizeof *l->stride);
        l->first = wn_calloc(g.gl_pathc + 1, sizeof *l->first);
    }
    if (!l || !l->shards || !l->stride || !l->first) {
        e = wn_fail(err, WN_ERR_NOMEM, "out of memory");
        goto fail;
    }
    l->T = T;
    l->shuffle = shuffle;
    l->seed = seed;
    for (size_t i = 0; i < g.gl_pathc; i++) {
        const char *p = g.gl_pathv[i];
        if (is_sidecar(p)) continue;
        int64_t seq_tokens, vocab;
        if ((e = read_index(p, &seq_tokens, &vocab, err))) goto fail;
        wn_shard *s = &l->shards[l->nshards];
        if ((e = wn_shard_open(s, p, err))) goto fail;
        uint64_t stride = seq_tokens > 0 ? (uint64_t)seq_tokens : (uint64_t)T;
        if (seq_tokens > 0 && (uint64_t)T + 1 > stride) {
            e = wn_fail(err, WN_ERR_USAGE,
                        "%s: its index.json packs sequences of %lld tokens; a context of %d needs %d: "
                        "use --context %lld or less",
                        p, (long long)seq_tokens, T, T + 1, (long long)seq_tokens - 1);
            l->nshards++;
            goto fail;
        }
        uint64_t n = seq_tokens > 0 ? s->ntok / stride : s->ntok ? (s->ntok - 1) / stride : 0;
        l->stride[l->nshards] = stride;
        l->first[l->nshards] = l->nseq;
        l->nseq += n;
        l->ntok += s->ntok;
        l->has_weights |= s->weights != NULL;
        if (!l->index_vocab && vocab) l->index_vocab = (int)vocab;
        l->nshards++;
    }
    l->first[l->nshards] = l->nseq;
    if (!l->nshards) {
        e = wn_fail(err, WN_ERR_INPUT, "%s: only sidecar files match, no shards", pattern);
        goto fail;
    }
    if (!l->nseq) {
        e = wn_fail(err, WN_ERR_INPUT, "%s: %llu tokens in %d shard%s: none holds a sequence of %d tokens (context + 1)",
                    pattern, (unsigned long long)l->ntok, l->nshards, l->nshards == 1 ? "" : "s", T + 1);
        goto fail;
    }
    if (shuffle) {
        if (!(l->order = wn_malloc(l->nseq * sizeof *l->order))) {
            e = wn_fail(err, WN_ERR_NOMEM, "out of memory");
            goto fail;
        }
        make_order(l);
    }
    globfree(&g);
    *out = l;
    return WN_OK;
fail:
    globfree(&g);
    wn_loader_free(l);
    return e;
}

void wn_loader_free(wn_loader *l)
{
    if (!l) return;
    for (int i = 0; i < l->nshards; i++) wn_shard_close(&l->shards[i]);
    wn_free(l->shards);
    wn_free(l->stride);
    wn_free(l->first);
    wn_free(l->order);
    wn_free(l);
}

int wn_loader_num_shards(const wn_loader *l) { return l->nshards; }
const char *wn_loader_shard_path(const wn_loader *l, int i) { return l->shards[i].path; }
uint64_t wn_loader_num_tokens(const wn_loader *l) { return l->ntok; }
uint64_t wn_loader_num_sequences(const wn_loader *l) { return l->nseq; }
int wn_loader_has_weights(const wn_loader *l) { return l->has_weights; }
int wn_loader_index_vocab(const wn_loader *l) { return l->index_vocab; }

/* Copies sequence number q into row r of the batch. */
static void fill(const wn_loader *l, uint64_t q, int r, uint32_t *inputs, uint32_t *targets, float *weights)
{
    int lo = 0, hi = l->nshards - 1; /* the shard with first[s] <= q < first[s + 1] */
    while (lo < hi) {
        int mid = (lo + hi + 1) / 2;
        if (l->first[mid] <= q) lo = mid;
        else hi = mid - 1;
    }
    const wn_shard *s = &l->shards[lo];
    uint64_t start = (q - l->first[lo]) * l->stride[lo];
    WN_CHECK(start + (uint64_t)l->T + 1 <= s->ntok);
    size_t T = (size_t)l->T, o = (size_t)r * T;
    for (size_t j = 0; j < T; j++) {
        inputs[o + j] = wn_shard_token(s, start + j);
        targets[o + j] = wn_shard_token(s, start + j + 1);
    }
    if (weights) {
        if (s->weights) memcpy(weights + o, s->weights + start + 1, T * sizeof *weights);
        else for (size_t j = 0; j < T; j++) weights[o + j] = 1.0f;
    }
}

int wn_loader_next(wn_loader *l, int B, uint32_t *inputs, uint32_t *targets, float *weights)
{
    int r = 0;
    while (r < B) {
        if (l->next == l->nseq) {
            if (!l->shuffle) break;
            l->epoch++;
            l->next = 0;
            make_order(l);
        }
        uint64_t q = l->shuffle ? l->order[l->next] : l->next;
        l->next++;
        fill(l, q, r++, inputs, targets, weights);
    }
    return r;
}

wn_loader_pos wn_loader_tell(const wn_loader *l)
{
    wn_loader_pos p = {l->epoch, l->next};
    return p;
}

wn_err wn_loader_seek(wn_loader *l, wn_loader_pos pos, wn_errbuf *err)
{
    if (pos.next > l->nseq || (!l->shuffle && pos.epoch))
        return wn_fail(err, WN_ERR_STATE, "data position (epoch %llu, sequence %llu) is outside the data (%llu sequences): "
                       "did the shards change?", (unsigned long long)pos.epoch, (unsigned long long)pos.next,
                       (unsigned long long)l->nseq);
    if (l->shuffle && pos.epoch != l->epoch) {
        l->epoch = pos.epoch;
        make_order(l);
    }
    l->next = pos.next;
    return WN_OK;
}

void wn_loader_rewind(wn_loader *l)
{
    wn_loader_pos p = {0, 0};
    wn_loader_seek(l, p, NULL);
}

wn_err wn_loader_scan(const wn_loader *l, uint32_t vocab, uint32_t *max_id, double *entropy_bits, wn_errbuf *err)
{
    size_t cap = 65536;
    uint64_t *hist = wn_calloc(cap, sizeof *hist);
    if (!hist) return wn_fail(err, WN_ERR_NOMEM, "out of memory");
    uint32_t mx = 0;
    wn_err e = WN_OK;
    for (int i = 0; i < l->nshards && !e; i++) {
        const wn_shard *s = &l->shards[i];
        for (uint64_t k = 0; k < s->ntok; k++) {
            uint32_t t = wn_shard_token(s, k);
            if (vocab && t >= vocab) {
                e = wn_fail(err, WN_ERR_INPUT, "%s: token %llu has id %u, outside the model's vocabulary of %u", s->path,
                            (unsigned long long)k, t, vocab);
                break;
            }
            if (t >= cap) {
                if (t >= (1u << 30)) {
                    e = wn_fail(err, WN_ERR_INPUT, "%s: token %llu has id %u: too large for a vocabulary", s->path,
                                (unsigned long long)k, t);
                    break;
                }
                size_t nc = cap;
                while (nc <= t) nc *= 2;
                uint64_t *h = wn_realloc(hist, nc * sizeof *h);
                if (!h) { e = wn_fail(err, WN_ERR_NOMEM, "out of memory"); break; }
                memset(h + cap, 0, (nc - cap) * sizeof *h);
                hist = h;
                cap = nc;
            }
            hist[t]++;
            if (t > mx) mx = t;
        }
    }
    if (!e) {
        double H = 0, n = (double)l->ntok;
        for (size_t t = 0; t <= mx && n > 0; t++)
            if (hist[t]) H -= (double)hist[t] / n * log2((double)hist[t] / n);
        *max_id = mx;
        *entropy_bits = H;
    }
    wn_free(hist);
    return e;
}
