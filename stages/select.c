/*
 * select.c - keeps the highest-value units under a budget: whole documents
 * ranked by a score attribute, or tokens ranked by their per-token scores
 * (d->tscore), which become loss weights (d->tweight) for the trainer. Every
 * decision is counted in the report.
 *
 * Document level (a global view, two passes). process() holds every document
 * back: it appends it whole (every field a later stage or the writer needs)
 * to a zstd-compressed spill in the stage's state directory and keeps only a
 * 24-byte candidate in memory {key, input index, tokens, group}. finish()
 * takes what a walk over the candidates by key (ties: input order) takes,
 * each while it fits the budget, stopping at the first that does not (per
 * group with quota_by), so the budget is never exceeded - found without
 * sorting, by a threshold search (doc_decide); then it re-reads the spill and hands the documents back a batch at a time in their
 * input order, the unselected ones marked "below_threshold". Memory is the
 * candidates (24 bytes a document) plus a bit per document, never the text.
 *   key = s (order desc) or -s (asc); with temperature t > 0, Gumbel top-k:
 *   key = +-s/t + G, G = -log(-log U), U from xxh3-64(document id, seed), so
 *   the noise belongs to the document whatever the batching or threads. (For
 *   asc the score is negated before the noise is added: argmax of -s/t + G
 *   samples proportionally to exp(-s/t); argmin of s/t + G does not, the
 *   MATES pitfall.)
 *
 * Token level. Token 0 of a document (the EOT the tokenize stage prepends,
 * predicted from the previous document, not from this one) is never scored
 * and keeps weight 1; tokens 1..n-1 are the scored ones.
 *   scope sequence: streaming; each document keeps its top
 *     ceil(token_fraction x scored) tokens (ties: earlier position first).
 *   scope global: an exact stream-wide threshold. process() spills the
 *     documents and counts the top 16 bits of every scored token's ordered
 *     key (a 65,536-bucket histogram); finish() finds the bucket holding the
 *     K-th key, K = ceil(token_fraction x N), refines the low 16 bits on a
 *     pass over the spill, and a last pass keeps every token above the
 *     threshold key and the first (in stream order) of those equal to it, so
 *     exactly K tokens keep weight 1.
 *
 * Across MPI ranks (rank r's documents all come before rank r+1's), every
 * rank holds its own documents back and finish's first call makes the
 * decisions the stream's, with one code path for 1 rank and N:
 *   document level: doc_decide's exact threshold search (cost histograms
 *     summed with allreduce, the ties before a rank by an exscan), groups
 *     gathered by name, budget_fraction of the stream's tokens. Exchanged:
 *     2^digit x 8 bytes per open group and round (digits of about
 *     log2(candidates) bits, at most 16; only the bits where keys differ),
 *     the group names once, a few numbers per group: nothing per document.
 *   token level, global scope: both 65,536-bucket histograms summed (512
 *     KiB each), the ties "first in stream order" by an exscan of each
 *     rank's count of tokens equal to the threshold.
 * report() sums the per-rank counts (histograms, missing, token counts);
 * the threshold's score comes from the rank holding that document.
 *
 * Resume. The spill only grows: a checkpoint ends its zstd frame, fsyncs and
 * records its length together with the in-memory state; load truncates the
 * spill back to that length and appends new frames after it.
 */
#include <assert.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <xxhash.h>
#include <zstd.h>

#include "../src/docspill.h"
#include "../src/mpi.h"
#include "../src/stage.h"

static const wn_param_def params[] = {
    {"level", WN_P_ENUM, "document", 0, 0, "document|token",
     "document: keep whole documents ranked by `score`; token: mask tokens by their per-token scores"},
    {"score", WN_P_STRING, "", 0, 0, NULL,
     "document level: the numeric document attribute to rank by (e.g. excess_loss); random: uniform keys "
     "from (seed, id) at either level (a random baseline)"},
    {"order", WN_P_ENUM, "desc", 0, 0, "desc|asc", "desc keeps the highest scores, asc the lowest (e.g. perplexity)"},
    {"budget_tokens", WN_P_SIZE, "0", 0, 9e18, NULL,
     "document level: keep at most this many tokens (k/M/G suffixes; 0 = unset)"},
    {"budget_fraction", WN_P_FLOAT, "0", 0, 1, NULL,
     "document level: keep at most this share of the scored documents' tokens (0 = unset)"},
    {"budget_docs", WN_P_SIZE, "0", 0, 9e18, NULL, "document level: keep at most this many documents (0 = unset)"},
    {"budget_flops", WN_P_FLOAT, "0", 0, 1e30, NULL,
     "document level: a training compute budget in FLOPs; with model_params N, the token budget is "
     "FLOPs / (6 N epochs) (0 = unset)"},
    {"budget_device_hours", WN_P_FLOAT, "0", 0, 1e12, NULL,
     "document level: a compute budget in device-hours x peak_flops (FLOP/s) x mfu, as budget_flops (0 = unset)"},
    {"peak_flops", WN_P_FLOAT, "0", 0, 1e20, NULL, "with budget_device_hours: the device's peak FLOP/s"},
    {"mfu", WN_P_FLOAT, "0.4", 0, 1, NULL, "with budget_device_hours: the share of peak the training achieves"},
    {"model_params", WN_P_FLOAT, "0", 0, 1e15, NULL, "with a compute budget: parameters N of the model to train"},
    {"epochs", WN_P_FLOAT, "1", 0, 1e6, NULL, "with a compute budget: passes over the selected tokens"},
    {"scaling_law", WN_P_STRING, "1.69,406.4,410.7,0.34,0.28", 0, 0, NULL,
     "with a compute budget and model_params 0: E,A,B,alpha,beta of L(N,D) = E + A/N^alpha + B/D^beta "
     "(default: Hoffmann et al. 2022's fit) to pick the compute-optimal N and D"},
    {"token_fraction", WN_P_FLOAT, "0", 0, 1, NULL, "token level: share of scored tokens that keep weight 1"},
    {"token_scope", WN_P_ENUM, "sequence", 0, 0, "sequence|global",
     "token level: the share is taken within each document, or over the whole stream (exact, two passes)"},
    {"temperature", WN_P_FLOAT, "0", 0, 1e9, NULL,
     "document level: 0 = deterministic top-k; > 0 = Gumbel top-k, sampling proportionally to exp(score/t)"},
    {"seed", WN_P_INT, "0", 0, 9e18, NULL, "seed of the Gumbel noise"},
    {"quota_by", WN_P_STRING, "", 0, 0, NULL,
     "document level: split the budget across groups by their share: `source` (the manifest input), or a "
     "top-level field of the record"},
    {"missing", WN_P_ENUM, "fail", 0, 0, "fail|drop",
     "a document without the score (token level: without per-token scores): stop the run, or drop it"},
};

enum { HIST_BUCKETS = 20, RADIX = 1 << 16, EMIT_BYTES = 4 << 20, EMIT_DOCS = 65536 };
enum { UNIT_TOKENS, UNIT_DOCS };

#define SPILL_NAME "docs.spill.zst"
#define CKPT_MAGIC 0x3174636c6573ull /* "selct1" */

/* One held-back document in memory (document level). */
typedef struct {
    double key;
    uint64_t index; /* position in the spill = input order */
    uint32_t tokens;
    uint32_t group;
} cand;
static_assert(sizeof(cand) == 24, "a candidate is 24 bytes");


typedef struct {
    uint32_t name_off, name_len; /* in groups.names */
    uint64_t docs, tokens;       /* candidates */
    /* decided in finish */
    uint64_t quota, used, sel_docs, sel_tokens; /* used: this rank's; sel_*: the stream's */
    int thr_any;        /* the group took something (its threshold exists) */
    int64_t thr_index;  /* this rank's input index of the last unit taken, -1 = none or on another rank */
    double thr_key, thr_score;
} group;


typedef struct {
    uint64_t *v;
    size_t cap;
    uint64_t kept, masked, scored, docs;
    char pad[64];
} tls_t;

typedef struct {
    int token_level, global, asc, unit, quota_source, missing_drop;
    const char *score, *quota_by;
    int random; /* score: random */
    double temperature, token_fraction, budget_fraction;
    uint64_t budget_tokens, budget_docs, seed;
    double compute_flops; /* a compute budget turned into budget_tokens (0 = none) */
    double optimal_n, optimal_loss; /* compute-optimal mode: the N chosen, the law's loss there */
    char path[4200];
    /* the spill */
    wn_spill_writer sw; /* sw.open: the spill is open for appending */
    wn_spill_reader sr;
    uint64_t n_spilled;
    /* document level */
    cand *c;
    size_t n_c, cap_c;
    uint64_t cand_tokens, missing;
    uint64_t all_c, all_tokens; /* the stream's candidates and their tokens (finish) */
    double smin, smax;
    group *g;
    size_t n_g, cap_g;
    uint32_t *gslot;  /* open addressing over group names: id + 1, 0 = empty */
    size_t cap_slot;
    wn_buf names, gkey;
    /* decisions */
    group all;        /* the whole stream when there are no quotas */
    uint64_t *sel;    /* bitset over input index */
    uint64_t budget;  /* in the unit */
    uint64_t sel_docs, sel_tokens; /* the stream's */
    int thr_any;
    int64_t thr_index; /* as group's */
    double thr_key, thr_score;
    uint64_t hist_sel[HIST_BUCKETS], hist_rej[HIST_BUCKETS];
    /* token level */
    tls_t *tls;
    int n_tls;
    uint64_t tok_kept, tok_masked, tok_scored, tok_docs;
    uint64_t *radix;  /* global: histogram of the keys' top 16 bits */
    uint32_t thr_tkey;
    uint64_t ties_keep, ties_used, k_target;
    int keep_all, keep_none;
    /* finish */
    int phase;        /* 0 streaming, 1 emitting, 2 done */
    uint64_t emitted;
} sel_state;

/* ---- small exact helpers --------------------------------------------------- */

/* ceil(f x n) with f taken as the decimal the manifest wrote: a relative
 * tolerance of 2^-52 absorbs the binary rounding of f (0.1 x 30 is 3, not
 * the 4 that the double nearest 0.1 would give). */
static uint64_t frac_ceil(double f, uint64_t n)
{
    long double x = (long double)f * (long double)n;
    long double k = ceill(x - x * 0x1p-52L);
    if (k < 0) k = 0;
    return k > (long double)n ? n : (uint64_t)k;
}

static uint64_t frac_floor(double f, uint64_t n)
{
    long double x = (long double)f * (long double)n;
    long double k = floorl(x + x * 0x1p-52L);
    return k > (long double)n ? n : (uint64_t)k;
}

/* A float score as a 32-bit key whose unsigned order is the preference order
 * (higher = kept first); NaN is least preferred, -0 equals +0. */
static inline uint32_t tkey(float f, int asc)
{
    if (f != f) return 0;
    if (f == 0) f = 0.0f;
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    u = (u & 0x80000000u) ? ~u : (u | 0x80000000u);
    return asc ? ~u : u;
}

static float tkey_score(uint32_t k, int asc)
{
    if (asc) k = ~k;
    uint32_t u = (k & 0x80000000u) ? (k & 0x7fffffffu) : ~k;
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

/* Gumbel(0, 1) noise of a document: a function of (seed, id) alone. The
 * seed is mixed first so the noise is independent of the `sample` stage's
 * xxh3(id, seed) for the same seed (survivors of a sample would otherwise
 * all carry noise from one end of the distribution). */
static double gumbel(const wn_doc *d, uint64_t seed)
{
    uint64_t x = seed ^ 0x73656c6563742d67ull; /* "select-g" */
    uint64_t h = XXH3_64bits_withSeed(d->id.p ? d->id.p : "", d->id.len, wn_splitmix64(&x));
    double u = ((double)(h >> 11) + 0.5) * 0x1p-53;
    return -log(-log(u));
}

/* score: random - a uniform [0, 1) key of (seed, id, position) (position 0
 * for a document), independent of the Gumbel noise and of `sample`. */
static double uniform_key(const wn_doc *d, uint64_t seed, uint64_t pos)
{
    uint64_t x = seed ^ 0x73656c6563742d72ull ^ (pos * 0x9E3779B97F4A7C15ull); /* "select-r" */
    uint64_t h = XXH3_64bits_withSeed(d->id.p ? d->id.p : "", d->id.len, wn_splitmix64(&x));
    return (double)(h >> 11) * 0x1p-53;
}

static inline void bit_set(uint64_t *b, uint64_t i) { b[i >> 6] |= 1ull << (i & 63); }
static inline int bit_get(const uint64_t *b, uint64_t i) { return (int)(b[i >> 6] >> (i & 63)) & 1; }

static void account(wn_stage *st)
{
    sel_state *s = st->state;
    uint64_t m = s->cap_c * sizeof(cand) + s->cap_g * sizeof(group) + s->cap_slot * sizeof(uint32_t) + s->names.cap +
                 (s->radix ? 2 * RADIX * sizeof(uint64_t) : 0) + wn_spill_writer_mem(&s->sw);
    if (s->sel) m += (s->n_c + 63) / 64 * 8;
    if (m > st->mem_peak) st->mem_peak = m;
}


/* ---- groups (quota_by) ----------------------------------------------------------- */

static const char *group_name(const sel_state *s, const group *g) { return s->names.p + g->name_off; }

/* The group key of d into s->gkey: the input spec's path (source), or the
 * field's JSON value (strings decoded and re-encoded, so escapes do not
 * split a group; a missing field reads as null). */
static wn_err group_key(wn_stage *st, sel_state *s, const wn_doc *d)
{
    wn_buf_clear(&s->gkey);
    if (s->quota_source) {
        const wn_run_info *ri = st->run;
        if (!ri || !ri->file_inputs || (int)d->file >= ri->n_files)
            return wn_fail(&st->err, WN_ERR_INTERNAL, "quota_by source: input file %u unknown to the run", d->file);
        return wn_buf_puts(&s->gkey, ri->file_inputs[d->file]) ? WN_ERR_NOMEM : WN_OK;
    }
    wn_span v;
    if (!d->raw.len || !wn_json_get(d->raw.p, d->raw.len, s->quota_by, &v))
        return wn_buf_puts(&s->gkey, "null") ? WN_ERR_NOMEM : WN_OK;
    if (v.n && v.p[0] == '"') {
        wn_buf t = {0};
        wn_err e = wn_json_decode_string(v, &t);
        if (!e) e = wn_json_encode_string(&s->gkey, t.p ? t.p : "", t.len);
        wn_buf_free(&t);
        return e;
    }
    return wn_buf_append(&s->gkey, v.p, v.n) ? WN_ERR_NOMEM : WN_OK;
}

static wn_err slots_rebuild(sel_state *s, size_t cap)
{
    uint32_t *t = wn_calloc(cap, sizeof *t);
    if (!t) return WN_ERR_NOMEM;
    for (size_t i = 0; i < s->n_g; i++) {
        size_t j = XXH3_64bits(group_name(s, &s->g[i]), s->g[i].name_len) & (cap - 1);
        while (t[j]) j = (j + 1) & (cap - 1);
        t[j] = (uint32_t)i + 1;
    }
    wn_free(s->gslot);
    s->gslot = t;
    s->cap_slot = cap;
    return WN_OK;
}

/* The id of the group named s->gkey, added when new (add = 1). Returns -1
 * when absent (add = 0) or out of memory (add = 1). */
static int64_t group_find(sel_state *s, int add)
{
    const char *k = s->gkey.p ? s->gkey.p : "";
    size_t n = s->gkey.len;
    if (s->cap_slot) {
        size_t j = XXH3_64bits(k, n) & (s->cap_slot - 1);
        for (; s->gslot[j]; j = (j + 1) & (s->cap_slot - 1)) {
            const group *g = &s->g[s->gslot[j] - 1];
            if (g->name_len == n && !memcmp(group_name(s, g), k, n)) return s->gslot[j] - 1;
        }
    }
    if (!add) return -1;
    if (s->n_g == UINT32_MAX - 1) return -1;
    if (s->n_g == s->cap_g) {
        size_t cap = s->cap_g ? s->cap_g * 2 : 16;
        group *g = wn_realloc(s->g, cap * sizeof *g);
        if (!g) return -1;
        s->g = g;
        s->cap_g = cap;
    }
    group *g = &s->g[s->n_g];
    memset(g, 0, sizeof *g);
    g->name_off = (uint32_t)s->names.len;
    g->name_len = (uint32_t)n;
    g->thr_index = -1;
    if (wn_buf_append(&s->names, k, n) || wn_buf_putc(&s->names, 0)) return -1;
    s->n_g++;
    if (s->n_g * 2 > s->cap_slot) {
        if (slots_rebuild(s, s->cap_slot ? s->cap_slot * 2 : 64)) return -1;
    } else {
        size_t j = XXH3_64bits(k, n) & (s->cap_slot - 1);
        while (s->gslot[j]) j = (j + 1) & (s->cap_slot - 1);
        s->gslot[j] = (uint32_t)s->n_g;
    }
    return (int64_t)s->n_g - 1;
}

/* ---- open ----------------------------------------------------------------------- */

static wn_err sel_open(wn_stage *st)
{
    sel_state *s = st->state;
    s->token_level = !strcmp(wn_param(st, "level")->s, "token");
    s->global = !strcmp(wn_param(st, "token_scope")->s, "global");
    s->asc = !strcmp(wn_param(st, "order")->s, "asc");
    s->missing_drop = !strcmp(wn_param(st, "missing")->s, "drop");
    s->score = wn_param(st, "score")->s;
    s->quota_by = wn_param(st, "quota_by")->s;
    s->quota_source = !strcmp(s->quota_by, "source");
    s->temperature = wn_param(st, "temperature")->f;
    s->token_fraction = wn_param(st, "token_fraction")->f;
    s->budget_fraction = wn_param(st, "budget_fraction")->f;
    s->budget_tokens = (uint64_t)wn_param(st, "budget_tokens")->i;
    s->budget_docs = (uint64_t)wn_param(st, "budget_docs")->i;
    s->seed = (uint64_t)wn_param(st, "seed")->i;
    {   /* a compute budget becomes a token budget: training costs about 6 N D FLOPs */
        double flops = wn_param(st, "budget_flops")->f, hours = wn_param(st, "budget_device_hours")->f;
        double n = wn_param(st, "model_params")->f, epochs = wn_param(st, "epochs")->f;
        if (flops > 0 && hours > 0)
            return wn_fail(&st->err, WN_ERR_MANIFEST, "give budget_flops or budget_device_hours, not both");
        if (hours > 0) {
            double peak = wn_param(st, "peak_flops")->f, mfu = wn_param(st, "mfu")->f;
            if (!(peak > 0) || !(mfu > 0))
                return wn_fail(&st->err, WN_ERR_MANIFEST, "budget_device_hours needs peak_flops (FLOP/s) and mfu > 0");
            flops = hours * 3600 * peak * mfu;
        }
        if (flops > 0 && !(n > 0)) {
            /* compute-optimal: minimise E + A/N^a + B/D^b subject to 6 N D = C:
             * N = G (C/6)^(b/(a+b)), D = (C/6)^(a/(a+b)) / G, G = (aA/(bB))^(1/(a+b)) */
            double E, A, B, a, b;
            const char *law = wn_param(st, "scaling_law")->s;
            if (sscanf(law, "%lf , %lf , %lf , %lf , %lf", &E, &A, &B, &a, &b) != 5 || !(A > 0) || !(B > 0) ||
                !(a > 0) || !(b > 0))
                return wn_fail(&st->err, WN_ERR_MANIFEST, "scaling_law: expected E,A,B,alpha,beta with A, B, alpha, "
                               "beta > 0, got '%s'", law);
            double G = pow(a * A / (b * B), 1 / (a + b)), c6 = flops / 6;
            n = G * pow(c6, b / (a + b));
            s->optimal_n = n;
            s->optimal_loss = E + A / pow(n, a) + B / pow(c6 / n, b);
        }
        if (flops > 0) {
            if (!(n > 0) || !(epochs > 0))
                return wn_fail(&st->err, WN_ERR_MANIFEST, "a compute budget needs model_params (N) and epochs > 0: "
                               "tokens = FLOPs / (6 N epochs)");
            if (s->budget_tokens)
                return wn_fail(&st->err, WN_ERR_MANIFEST, "give a compute budget or budget_tokens, not both");
            double d = floor(flops / (6 * n * epochs));
            s->budget_tokens = d < 1 ? 1 : d > 9e18 ? (uint64_t)9e18 : (uint64_t)d;
            s->compute_flops = flops;
        }
    }
    s->thr_index = -1;
    s->smin = INFINITY;
    s->smax = -INFINITY;
    snprintf(s->path, sizeof s->path, "%s/" SPILL_NAME, st->state_dir ? st->state_dir : ".");
    int budgets = (s->budget_tokens > 0) + (s->budget_fraction > 0) + (s->budget_docs > 0);
    int tokenized = !st->run || st->run->vocab_size > 0;
    s->random = !strcmp(s->score, "random");
    if (s->token_level) {
        if (s->score[0] && !s->random)
            return wn_fail(&st->err, WN_ERR_MANIFEST, "score names a document attribute (level: document); "
                           "level token ranks tokens by their per-token scores (a score stage before select)");
        if (budgets || s->quota_by[0] || s->temperature > 0)
            return wn_fail(&st->err, WN_ERR_MANIFEST, "budget_tokens, budget_fraction, budget_docs, quota_by and "
                           "temperature are for level document; level token takes token_fraction (and token_scope)");
        if (!(s->token_fraction > 0))
            return wn_fail(&st->err, WN_ERR_MANIFEST, "level token needs token_fraction in (0, 1]: the share of "
                           "scored tokens that keep weight 1");
        if (!tokenized) return wn_fail(&st->err, WN_ERR_MANIFEST, "level token needs a tokenize stage before select");
        if (st->run) st->run->token_weights = 1; /* pack writes the weights sidecar */
        s->n_tls = st->threads > 0 ? st->threads : 1;
        s->tls = wn_calloc((size_t)s->n_tls, sizeof *s->tls);
        if (!s->tls) return wn_fail(&st->err, WN_ERR_NOMEM, "out of memory");
        if (s->global && !(s->radix = wn_calloc(2 * RADIX, sizeof *s->radix)))
            return wn_fail(&st->err, WN_ERR_NOMEM, "out of memory");
        account(st);
        return WN_OK;
    }
    if (!s->score[0])
        return wn_fail(&st->err, WN_ERR_MANIFEST, "level document needs score: the document attribute to rank by "
                       "(e.g. score: excess_loss)");
    if (budgets != 1)
        return wn_fail(&st->err, WN_ERR_MANIFEST, "level document needs exactly one budget: budget_tokens, "
                       "budget_fraction or budget_docs (%d given)", budgets);
    if (s->token_fraction > 0)
        return wn_fail(&st->err, WN_ERR_MANIFEST, "token_fraction is for level token; level document keeps whole "
                       "documents under its budget");
    s->unit = s->budget_docs ? UNIT_DOCS : UNIT_TOKENS;
    if (s->unit == UNIT_TOKENS && !tokenized)
        return wn_fail(&st->err, WN_ERR_MANIFEST, "budget_tokens and budget_fraction count tokens: put a tokenize "
                       "stage before select (or use budget_docs)");
    if (s->quota_source && st->run && !st->run->file_inputs)
        return wn_fail(&st->err, WN_ERR_INTERNAL, "quota_by source: the run does not list its input files");
    return WN_OK;
}

/* ---- process --------------------------------------------------------------------- */

static wn_err spill_ready(wn_stage *st, sel_state *s)
{
    return s->sw.open ? WN_OK : wn_spill_writer_open(&s->sw, s->path, 0, &st->err);
}

static wn_err doc_process(wn_stage *st, sel_state *s, wn_batch *b)
{
    wn_err e = spill_ready(st, s);
    if (e) return e;
    for (size_t i = 0; i < b->n; i++) {
        wn_doc *d = &b->docs[i];
        if (d->drop) continue;
        double v;
        if (s->random) {
            v = uniform_key(d, s->seed, 0);
        } else if (!wn_doc_attr_num(d, s->score, &v) || !isfinite(v)) {
            if (!s->missing_drop)
                return wn_fail(&st->err, WN_ERR_INPUT, "document %.*s has no numeric attribute \"%s\" to rank by "
                               "(missing: drop skips such documents)", (int)(d->id.len > 200 ? 200 : d->id.len),
                               d->id.p ? d->id.p : "", s->score);
            d->drop = "missing_score";
            s->missing++;
            continue;
        }
        if (s->unit == UNIT_TOKENS && !d->has_tokens)
            return wn_fail(&st->err, WN_ERR_MANIFEST, "a token budget needs tokenized documents: put a tokenize stage "
                           "before select");
        if (d->tokens.n > UINT32_MAX)
            return wn_fail(&st->err, WN_ERR_INPUT, "document %.*s: more than 2^32 tokens",
                           (int)(d->id.len > 200 ? 200 : d->id.len), d->id.p ? d->id.p : "");
        uint32_t gid = 0;
        if (s->quota_by[0]) {
            int64_t id;
            if ((e = group_key(st, s, d))) return e;
            if ((id = group_find(s, 1)) < 0) return wn_fail(&st->err, WN_ERR_NOMEM, "out of memory (groups)");
            gid = (uint32_t)id;
            s->g[gid].docs++;
            s->g[gid].tokens += d->tokens.n;
        }
        if (s->n_c == s->cap_c) {
            size_t cap = s->cap_c ? s->cap_c * 2 : 4096;
            cand *c = wn_realloc(s->c, cap * sizeof *c);
            if (!c) return wn_fail(&st->err, WN_ERR_NOMEM, "out of memory (%zu candidates)", s->n_c);
            s->c = c;
            s->cap_c = cap;
        }
        double key = s->asc ? -v : v;
        if (s->temperature > 0) key = key / s->temperature + gumbel(d, s->seed);
        s->c[s->n_c] = (cand){key, s->n_c, (uint32_t)d->tokens.n, gid};
        s->n_c++;
        s->cand_tokens += d->tokens.n;
        if (v < s->smin) s->smin = v;
        if (v > s->smax) s->smax = v;
        if ((e = wn_spill_writer_put(&s->sw, d, &st->err))) return e;
        s->n_spilled++;
    }
    if ((e = wn_spill_writer_flush(&s->sw, &st->err))) return e;
    wn_batch_keep_dropped(b);
    account(st);
    return WN_OK;
}

/* Token level: per-token scores must be there for every token. */
static int has_tscores(const wn_doc *d) { return d->tscore.n == d->tokens.n; }

static wn_err check_tokens(wn_stage *st, sel_state *s, wn_batch *b)
{
    for (size_t i = 0; i < b->n; i++) {
        wn_doc *d = &b->docs[i];
        if (d->drop) continue;
        if (s->random && d->has_tokens) { /* uniform per-token scores replace any */
            if (wn_floats_resize(&d->tscore, d->tokens.n)) return wn_fail(&st->err, WN_ERR_NOMEM, "out of memory");
            for (size_t j = 0; j < d->tokens.n; j++) d->tscore.p[j] = j ? (float)uniform_key(d, s->seed, j) : 0;
        }
        if (!d->has_tokens)
            return wn_fail(&st->err, WN_ERR_MANIFEST, "level token needs tokens: put a tokenize stage before select");
        if (d->tokens.n > UINT32_MAX)
            return wn_fail(&st->err, WN_ERR_INPUT, "document %.*s: more than 2^32 tokens",
                           (int)(d->id.len > 200 ? 200 : d->id.len), d->id.p ? d->id.p : "");
        if (d->tokens.n && !has_tscores(d)) {
            if (!s->missing_drop)
                return wn_fail(&st->err, WN_ERR_INPUT, "document %.*s has no per-token scores (%zu for %zu tokens): "
                               "put a score stage with a per-token method before select, or missing: drop",
                               (int)(d->id.len > 200 ? 200 : d->id.len), d->id.p ? d->id.p : "", d->tscore.n,
                               d->tokens.n);
            d->drop = "missing_score";
            s->missing++;
        }
    }
    return WN_OK;
}

/* Gives d weight 1 on every token unless an earlier stage set weights
 * (those are kept: masks compose by multiplication). */
static wn_err weights_begin(wn_doc *d)
{
    if (d->tweight.n == d->tokens.n) return WN_OK;
    if (wn_floats_resize(&d->tweight, d->tokens.n)) return WN_ERR_NOMEM;
    for (size_t i = 0; i < d->tokens.n; i++) d->tweight.p[i] = 1.0f;
    return WN_OK;
}

/* Moves the k largest of m distinct values to v[0..k) (quickselect; the
 * order inside either part is unspecified). */
static void top_k(uint64_t *v, size_t m, size_t k)
{
    size_t lo = 0, hi = m; /* the boundary k lies in [lo, hi] */
    while (hi - lo > 1 && k > lo && k < hi) {
        uint64_t p = v[lo + (hi - lo) / 2], t;
        size_t i = lo, at = lo;
        for (size_t j = lo; j < hi; j++)
            if (v[j] > p) { t = v[i]; v[i] = v[j]; v[j] = t; i++; }
        for (at = i; v[at] != p; at++) {}
        t = v[i]; v[i] = v[at]; v[at] = t; /* the pivot right after the larger ones */
        if (i == k || i + 1 == k) return;
        if (i > k) hi = i;
        else lo = i + 1;
    }
}

/* Scope sequence: d keeps the top ceil(token_fraction x (n - 1)) of its
 * tokens 1..n-1 by score (ties: earlier position), the others weight 0. */
static wn_err seq_doc(wn_stage *st, int thread, wn_doc *d)
{
    sel_state *s = st->state;
    tls_t *t = &s->tls[thread];
    size_t n = d->tokens.n;
    if (!n) return WN_OK;
    if (weights_begin(d)) return WN_ERR_NOMEM;
    size_t m = n - 1;
    t->docs++;
    if (!m) return WN_OK;
    if (m > t->cap) {
        uint64_t *v = wn_realloc(t->v, m * sizeof *v);
        if (!v) return WN_ERR_NOMEM;
        t->v = v;
        t->cap = m;
    }
    /* key << 32 | ~position: larger is better (score, then earlier) */
    for (size_t i = 1; i < n; i++)
        t->v[i - 1] = (uint64_t)tkey(d->tscore.p[i], s->asc) << 32 | (0xffffffffu - (uint32_t)i);
    size_t k = (size_t)frac_ceil(s->token_fraction, m);
    top_k(t->v, m, k);
    for (size_t i = k; i < m; i++) d->tweight.p[0xffffffffu - (uint32_t)t->v[i]] = 0.0f;
    t->kept += k;
    t->masked += m - k;
    t->scored += m;
    return WN_OK;
}

static wn_err tok_process(wn_stage *st, sel_state *s, wn_batch *b)
{
    wn_err e = check_tokens(st, s, b);
    if (e) return e;
    if (!s->global) {
        for (int i = 0; i < s->n_tls; i++) s->tls[i].kept = s->tls[i].masked = s->tls[i].scored = s->tls[i].docs = 0;
        if ((e = wn_stage_each_doc(st, b, s->n_tls, seq_doc))) return e;
        for (int i = 0; i < s->n_tls; i++) {
            s->tok_kept += s->tls[i].kept;
            s->tok_masked += s->tls[i].masked;
            s->tok_scored += s->tls[i].scored;
            s->tok_docs += s->tls[i].docs;
        }
        uint64_t m = 0;
        for (int i = 0; i < s->n_tls; i++) m += s->tls[i].cap * sizeof(uint64_t);
        if (m > st->mem_peak) st->mem_peak = m;
        return WN_OK;
    }
    /* global: pass 1 counts the keys' top 16 bits and holds the documents back */
    if ((e = spill_ready(st, s))) return e;
    for (size_t i = 0; i < b->n; i++) {
        wn_doc *d = &b->docs[i];
        if (d->drop) continue;
        for (size_t j = 1; j < d->tokens.n; j++) {
            float f = d->tscore.p[j];
            s->radix[tkey(f, s->asc) >> 16]++;
            if (f == f && f < s->smin) s->smin = f;
            if (f == f && f > s->smax) s->smax = f;
        }
        if (d->tokens.n) {
            s->tok_scored += d->tokens.n - 1;
            s->tok_docs++;
        }
        if ((e = wn_spill_writer_put(&s->sw, d, &st->err))) return e;
        s->n_spilled++;
    }
    if ((e = wn_spill_writer_flush(&s->sw, &st->err))) return e;
    wn_batch_keep_dropped(b);
    account(st);
    return WN_OK;
}

static wn_err sel_process(wn_stage *st, wn_batch *b)
{
    sel_state *s = st->state;
    if (s->phase) return wn_fail(&st->err, WN_ERR_INTERNAL, "documents after the end of the stream");
    return s->token_level ? tok_process(st, s, b) : doc_process(st, s, b);
}

/* ---- finish: decide, then hand the documents back in input order ------------------ */

typedef struct {
    unsigned __int128 rem;
    size_t g;
} share_rem;

static int by_remainder(const void *a, const void *b)
{
    const share_rem *x = a, *y = b;
    if (x->rem != y->rem) return x->rem > y->rem ? -1 : 1;
    return x->g < y->g ? -1 : x->g > y->g;
}

/* Splits the budget across groups in proportion to their share (tokens, or
 * documents for budget_docs): floor of each exact share, then one more unit
 * to the largest remainders (ties: the group seen first). */
static wn_err quotas(sel_state *s)
{
    unsigned __int128 total = 0;
    for (size_t i = 0; i < s->n_g; i++) total += s->unit == UNIT_DOCS ? s->g[i].docs : s->g[i].tokens;
    if (!total) return WN_OK;
    share_rem *r = wn_malloc((s->n_g ? s->n_g : 1) * sizeof *r);
    if (!r) return WN_ERR_NOMEM;
    uint64_t given = 0;
    for (size_t i = 0; i < s->n_g; i++) {
        unsigned __int128 x = (unsigned __int128)s->budget * (s->unit == UNIT_DOCS ? s->g[i].docs : s->g[i].tokens);
        s->g[i].quota = (uint64_t)(x / total);
        given += s->g[i].quota;
        r[i] = (share_rem){x % total, i};
    }
    qsort(r, s->n_g, sizeof *r, by_remainder);
    for (size_t i = 0; given < s->budget && i < s->n_g; i++, given++) s->g[r[i].g].quota++;
    wn_free(r);
    return WN_OK;
}

/* A candidate's key as an unsigned integer in the same order (larger = taken
 * first): the ranking is (key desc, input index asc), the qsort order of one
 * process. -0 equals +0; NaN (never produced: scores are finite) is last. */
static inline uint64_t okey(double k)
{
    if (k != k) return 0;
    if (k == 0) k = 0.0;
    uint64_t u;
    memcpy(&u, &k, sizeof u);
    return (u & 0x8000000000000000ull) ? ~u : u | 0x8000000000000000ull;
}

/* Makes the group table the stream's: the ranks' names, each rank's in its
 * order of first appearance, gathered in rank order, give the ids in the
 * stream's order of first appearance (the quotas' tie order and the
 * report's); the candidates' ids are renumbered and the groups' candidate
 * counts summed over the ranks. Exchanged: the group names, once per rank. */
static wn_err groups_merge(sel_state *s)
{
    int size = wn_mpi_size(), me = wn_mpi_rank();
    group *old = s->g;
    size_t n_old = s->n_g;
    wn_buf old_names = s->names, mine = {0}, all = {0};
    uint64_t *counts = wn_calloc((size_t)size, sizeof *counts), *sums = NULL;
    uint32_t *map = wn_calloc(n_old ? n_old : 1, sizeof *map);
    wn_err e = counts && map ? WN_OK : WN_ERR_NOMEM;
    for (size_t i = 0; i < n_old && !e; i++) {
        uint32_t n = old[i].name_len;
        if (wn_buf_append(&mine, &n, sizeof n) || wn_buf_append(&mine, old_names.p + old[i].name_off, n)) e = WN_ERR_NOMEM;
    }
    if (!e) e = wn_mpi_allgatherv(mine.p, mine.len, &all, counts);
    s->g = NULL;
    s->n_g = s->cap_g = 0;
    s->names = (wn_buf){0};
    wn_free(s->gslot);
    s->gslot = NULL;
    s->cap_slot = 0;
    uint64_t off = 0;
    for (int r = 0; r < size && !e; r++) {
        size_t j = 0;
        for (uint64_t end = off + counts[r]; off < end && !e; j++) {
            uint32_t n;
            memcpy(&n, all.p + off, sizeof n);
            off += sizeof n;
            wn_buf_clear(&s->gkey);
            int64_t id = wn_buf_append(&s->gkey, all.p + off, n) ? -1 : group_find(s, 1);
            off += n;
            if (id < 0) e = WN_ERR_NOMEM;
            else if (r == me) map[j] = (uint32_t)id;
        }
    }
    if (!e && !(sums = wn_calloc(2 * (s->n_g ? s->n_g : 1), sizeof *sums))) e = WN_ERR_NOMEM;
    if (!e) {
        for (size_t i = 0; i < n_old; i++) {
            sums[2 * map[i]] += old[i].docs;
            sums[2 * map[i] + 1] += old[i].tokens;
        }
        wn_mpi_allreduce_sum_u64(sums, 2 * s->n_g);
        for (size_t i = 0; i < s->n_g; i++) {
            s->g[i].docs = sums[2 * i];
            s->g[i].tokens = sums[2 * i + 1];
        }
        for (size_t i = 0; i < s->n_c; i++) s->c[i].group = map[s->c[i].group];
    }
    wn_free(old);
    wn_buf_free(&old_names);
    wn_buf_free(&mine);
    wn_buf_free(&all);
    wn_free(counts);
    wn_free(sums);
    wn_free(map);
    return e;
}

/* The budget walk - best first, take each that fits, the first that does
 * not closes its group - without sorting, and across ranks. What a group
 * takes is a prefix of its ranking: the longest whose cost fits its quota.
 * So it takes every key above T, T the largest key at which the cost of the
 * keys >= T exceeds the quota, and of the keys equal to T those, in input
 * order, that still fit; a group whose whole cost fits takes everything. T
 * is found digit by digit from the top of the 64-bit ordered key: per round,
 * a histogram of the cost per digit value over the candidates that share
 * the digits found so far, summed over the ranks. Only the bits where the
 * group's keys differ are searched (the least and largest key and the
 * lowest differing bit come first, by max-reductions), with digits of about
 * log2(candidates) bits, at most 16 (fewer with many groups: at most 2^22
 * counters a round). The ties' cost on earlier ranks is an exscan.
 * Exchanged (each rank, allreduce payload): 2^digit x 8 bytes per open
 * group per round - e.g. 3 rounds x 4 KiB for 300 candidates of integer
 * scores, 4 x 512 KiB for a billion of any scores - and a few numbers per
 * group: nothing per document. */
static wn_err doc_decide(wn_stage *st, sel_state *s)
{
    wn_err e = WN_OK;
    uint64_t tot[2] = {s->n_c, s->cand_tokens}, base = s->n_c;
    wn_mpi_allreduce_sum_u64(tot, 2);
    wn_mpi_exscan_sum_u64(&base, 1); /* the stream's index of this rank's first candidate */
    s->all_c = tot[0];
    s->all_tokens = tot[1];
    double mm[2] = {-s->smin, s->smax};
    wn_mpi_allreduce_max_f64(mm, 2);
    s->smin = -mm[0];
    s->smax = mm[1];
    if (s->quota_by[0] && (e = groups_merge(s))) return wn_fail(&st->err, e, "out of memory (groups)");
    s->budget = s->unit == UNIT_DOCS ? s->budget_docs
                : s->budget_tokens  ? s->budget_tokens
                                    : frac_floor(s->budget_fraction, s->all_tokens);
    int quota = s->quota_by[0] != 0, docs = s->unit == UNIT_DOCS;
    s->all = (group){.quota = s->budget, .docs = s->all_c, .tokens = s->all_tokens, .thr_index = -1};
    group *G = quota ? s->g : &s->all;
    size_t ng = quota ? s->n_g : 1, n_open = 0;
    /* per group (slot ng: the whole stream): T, the cost above it, its histogram slot (-1: takes
     * everything), the ties' cost before, the last unit taken (least key, then latest index + 1),
     * counts taken */
    uint64_t *T = wn_calloc(ng + 1, sizeof *T), *above = wn_calloc(ng + 1, sizeof *above);
    uint64_t *tie = wn_calloc(ng + 1, sizeof *tie), *lk = wn_calloc(2 * (ng + 1), sizeof *lk);
    uint64_t *li = wn_calloc(ng + 1, sizeof *li), *cnt = wn_calloc(2 * (ng + 1), sizeof *cnt);
    int64_t *slot = wn_calloc(ng + 1, sizeof *slot);
    int *pos = wn_calloc(3 * (ng + 1), sizeof *pos), *lo = pos + ng + 1, *dig = lo + ng + 1;
    double *kv = wn_calloc(ng + 1, sizeof *kv);
    uint64_t *H = NULL;
    s->sel = wn_calloc((s->n_c + 63) / 64 + 1, sizeof *s->sel);
    if (!T || !above || !tie || !lk || !li || !cnt || !slot || !pos || !kv || !s->sel || (quota && quotas(s))) {
        e = WN_ERR_NOMEM;
        goto done;
    }
    for (size_t g = 0; g < ng; g++)
        slot[g] = (docs ? G[g].docs : G[g].tokens) > G[g].quota ? (int64_t)n_open++ : -1;
    /* the bits where an open group's keys differ, [lo, pos): above and below them every key has
     * the least key's bits (T starts as those), so only they are searched */
    for (size_t i = 0; i < s->n_c; i++) { /* the largest key and the largest ~key (the least key) */
        size_t g = quota ? s->c[i].group : 0;
        uint64_t k = okey(s->c[i].key);
        if (slot[g] < 0) continue;
        if (k > lk[2 * g]) lk[2 * g] = k;
        if (~k > lk[2 * g + 1]) lk[2 * g + 1] = ~k;
    }
    wn_mpi_allreduce_max_u64(lk, 2 * ng);
    for (size_t i = 0; i < s->n_c; i++) { /* the lowest bit where a key differs from the least */
        size_t g = quota ? s->c[i].group : 0;
        uint64_t x = okey(s->c[i].key) ^ ~lk[2 * g + 1];
        if (slot[g] >= 0 && x && 64 - (uint64_t)__builtin_ctzll(x) > tie[g]) tie[g] = 64 - (uint64_t)__builtin_ctzll(x);
    }
    wn_mpi_allreduce_max_u64(tie, ng);
    for (size_t g = 0; g < ng; g++) {
        uint64_t mx = lk[2 * g], mn = ~lk[2 * g + 1];
        if (slot[g] < 0 || mx == mn) { /* one key: T is it */
            T[g] = mn;
            pos[g] = lo[g] = 0;
            continue;
        }
        lo[g] = 64 - (int)tie[g];
        pos[g] = 64 - __builtin_clzll(mx ^ mn);
        uint64_t span = (pos[g] == 64 ? ~0ull : (1ull << pos[g]) - 1) & ~((1ull << lo[g]) - 1);
        T[g] = mn & ~span;
    }
    memset(lk, 0, 2 * (ng + 1) * sizeof *lk);
    memset(tie, 0, (ng + 1) * sizeof *tie);
    /* digits of `bits` bits: about log2 of the candidates (fewer for many groups), so a round's
     * histograms hold no more counters than there are candidates, nor more than 2^22 */
    int bits = 4;
    while (bits < 16 && (1ull << bits) < s->all_c) bits++;
    while (bits > 1 && ((uint64_t)n_open << bits) > (1ull << 22)) bits--;
    if (n_open && !(H = wn_malloc((n_open << bits) * sizeof *H))) {
        e = WN_ERR_NOMEM;
        goto done;
    }
    for (;;) {
        int more = 0;
        for (size_t g = 0; g < ng; g++) {
            dig[g] = pos[g] - lo[g] < bits ? pos[g] - lo[g] : bits; /* this round's digit: [pos - dig, pos) */
            more |= dig[g] > 0;
        }
        if (!more) break;
        memset(H, 0, (n_open << bits) * sizeof *H);
        for (size_t i = 0; i < s->n_c; i++) {
            const cand *c = &s->c[i];
            size_t g = quota ? c->group : 0;
            if (!dig[g]) continue;
            uint64_t k = okey(c->key), found = pos[g] == 64 ? 0 : ~0ull << pos[g];
            if ((k & found) == (T[g] & found))
                H[((uint64_t)slot[g] << bits) + ((k >> (pos[g] - dig[g])) & ((1ull << dig[g]) - 1))] +=
                    docs ? 1 : c->tokens;
        }
        wn_mpi_allreduce_sum_u64(H, n_open << bits);
        for (size_t g = 0; g < ng; g++) {
            if (!dig[g]) continue;
            const uint64_t *h = H + ((uint64_t)slot[g] << bits);
            uint64_t cum = above[g], v = (1ull << dig[g]) - 1;
            /* the highest digit whose keys take the cost past the quota (it exists: above + the
             * cost of the keys that share T's digits found so far > quota) */
            for (; v > 0 && cum + h[v] <= G[g].quota; v--) cum += h[v];
            pos[g] -= dig[g];
            T[g] |= v << pos[g];
            above[g] = cum;
        }
    }
    for (size_t i = 0; i < s->n_c; i++) {
        const cand *c = &s->c[i];
        size_t g = quota ? c->group : 0;
        if (slot[g] >= 0 && okey(c->key) == T[g]) tie[g] += docs ? 1 : c->tokens;
    }
    wn_mpi_exscan_sum_u64(tie, ng); /* the ties' cost on earlier ranks */
    for (size_t i = 0; i < s->n_c; i++) { /* candidates are stored in input order: c[i].index == i */
        const cand *c = &s->c[i];
        size_t g = quota ? c->group : 0;
        uint64_t k = okey(c->key), cost = docs ? 1 : c->tokens;
        int take = slot[g] < 0 || k > T[g];
        if (!take && k == T[g]) {
            tie[g] += cost;
            take = above[g] + tie[g] <= G[g].quota;
        }
        if (!take) continue;
        bit_set(s->sel, c->index);
        G[g].used += cost;
        cnt[2 * g]++;
        cnt[2 * g + 1] += c->tokens;
        for (size_t t = g;; t = ng) { /* the group, then the whole stream */
            if (!li[t] || k < lk[t] || (k == lk[t] && c->index + 1 > li[t])) {
                lk[t] = k;
                li[t] = c->index + 1;
            }
            if (t == ng) break;
        }
    }
    /* the stream's last unit taken per group: the least key (max of ~key), then the latest index;
     * the rank that holds it keeps its index (to read its score back), every rank gets its key */
    uint64_t *gk = tie, *gi = above; /* reused */
    for (size_t g = 0; g <= ng; g++) gk[g] = li[g] ? ~lk[g] : 0;
    wn_mpi_allreduce_max_u64(gk, ng + 1);
    for (size_t g = 0; g <= ng; g++) gi[g] = li[g] && ~lk[g] == gk[g] ? base + li[g] : 0;
    wn_mpi_allreduce_max_u64(gi, ng + 1); /* the stream's index + 1; 0 = nothing taken */
    for (size_t g = 0; g <= ng; g++) {
        slot[g] = gi[g] && li[g] && base + li[g] == gi[g] ? (int64_t)li[g] - 1 : -1; /* reused: the holder */
        kv[g] = slot[g] >= 0 ? s->c[slot[g]].key : -INFINITY;
    }
    wn_mpi_allreduce_max_f64(kv, ng + 1);
    wn_mpi_allreduce_sum_u64(cnt, 2 * ng);
    for (size_t g = 0; g <= ng; g++) {
        int any = gi[g] != 0;
        if (g == ng) {
            s->thr_any = any;
            s->thr_index = slot[g];
            s->thr_key = any ? kv[g] : 0;
            break;
        }
        G[g].thr_any = any;
        G[g].thr_index = slot[g];
        G[g].thr_key = any ? kv[g] : 0;
        G[g].sel_docs = cnt[2 * g];
        G[g].sel_tokens = cnt[2 * g + 1];
        s->sel_docs += cnt[2 * g];
        s->sel_tokens += cnt[2 * g + 1];
    }
done:
    wn_free(H);
    wn_free(T);
    wn_free(above);
    wn_free(tie);
    wn_free(lk);
    wn_free(li);
    wn_free(cnt);
    wn_free(slot);
    wn_free(pos);
    wn_free(kv);
    if (e) return wn_fail(&st->err, e, "out of memory");
    account(st);
    wn_free(s->c); /* the decisions are in the bitset now */
    s->c = NULL;
    s->cap_c = 0;
    return WN_OK;
}

static int bucket(double v, double lo, double hi)
{
    if (!(hi > lo)) return 0;
    int b = (int)((v - lo) / (hi - lo) * HIST_BUCKETS);
    return b < 0 ? 0 : b >= HIST_BUCKETS ? HIST_BUCKETS - 1 : b;
}

/* Global scope: the exact threshold key. Pass 1 (process) counted the top 16
 * bits; this pass over the spill counts the low 16 bits inside the bucket
 * that holds the K-th largest key. Across ranks both histograms are summed
 * (allreduce, 65,536 x 8 bytes each) and the ties before this rank's first
 * token are an exscan of each rank's count of tokens equal to the threshold,
 * so "the first in stream order" holds across ranks. */
static wn_err tok_decide(wn_stage *st, sel_state *s)
{
    uint64_t n = s->tok_scored;
    wn_mpi_allreduce_sum_u64(&n, 1);
    double mm[2] = {-s->smin, s->smax};
    wn_mpi_allreduce_max_f64(mm, 2);
    s->smin = -mm[0];
    s->smax = mm[1];
    uint64_t k = frac_ceil(s->token_fraction, n), cum = 0;
    s->k_target = k;
    s->keep_none = k == 0;
    s->keep_all = k == n;
    if (s->keep_none || s->keep_all) return WN_OK; /* the same on every rank */
    wn_mpi_allreduce_sum_u64(s->radix, RADIX);
    uint32_t hi = RADIX - 1;
    for (;; hi--) {
        if (cum + s->radix[hi] >= k) break;
        cum += s->radix[hi];
    }
    uint64_t *low = s->radix + RADIX;
    memset(low, 0, RADIX * sizeof *low);
    wn_err e = WN_OK;
    if (s->n_spilled) {
        e = wn_spill_reader_open(&s->sr, s->path, &st->err);
        wn_doc d = {0};
        for (int got = 1; !e;) {
            if ((e = wn_spill_reader_next(&s->sr, &d, &got, &st->err)) || !got) break;
            for (size_t j = 1; j < d.tokens.n; j++) {
                uint32_t key = tkey(d.tscore.p[j], s->asc);
                if (key >> 16 == hi) low[key & 0xffff]++;
            }
        }
        wn_doc_free(&d);
        wn_spill_reader_close(&s->sr);
    }
    /* a failed rank still takes part in the exchanges below (the others wait for it) */
    uint64_t *mine = wn_malloc(RADIX * sizeof *mine);
    if (mine) memcpy(mine, low, RADIX * sizeof *mine);
    wn_mpi_allreduce_sum_u64(low, RADIX);
    uint32_t lo = RADIX - 1;
    for (;; lo--) {
        if (cum + low[lo] >= k) break;
        cum += low[lo];
    }
    s->thr_tkey = hi << 16 | lo;
    s->ties_keep = k - cum; /* of the tokens equal to the threshold, the first ones in stream order */
    uint64_t before = mine ? mine[lo] : 0;
    wn_mpi_exscan_sum_u64(&before, 1);
    s->ties_used = before; /* the earlier ranks' ties come first */
    wn_free(mine);
    if (!e && !mine) e = wn_fail(&st->err, WN_ERR_NOMEM, "out of memory");
    return e;
}

/* Global scope: weights of one document from the threshold. */
static wn_err tok_apply(sel_state *s, wn_doc *d)
{
    if (!d->tokens.n) return WN_OK;
    if (weights_begin(d)) return WN_ERR_NOMEM;
    for (size_t j = 1; j < d->tokens.n; j++) {
        float f = d->tscore.p[j];
        uint32_t key = tkey(f, s->asc);
        int keep = s->keep_all || (!s->keep_none && (key > s->thr_tkey ||
                                                      (key == s->thr_tkey && s->ties_used < s->ties_keep)));
        if (keep && !s->keep_all && key == s->thr_tkey) s->ties_used++;
        if (!keep) d->tweight.p[j] = 0.0f;
        if (keep) s->tok_kept++;
        else s->tok_masked++;
        if (f == f) (keep ? s->hist_sel : s->hist_rej)[bucket(f, s->smin, s->smax)]++;
    }
    return WN_OK;
}

static wn_err sel_finish(wn_stage *st, wn_batch *out)
{
    sel_state *s = st->state;
    wn_err e;
    int level_seq = s->token_level && !s->global;
    if (s->phase == 2 || level_seq) return WN_OK;
    if (s->phase == 0) { /* the first call: every rank makes it, so the exchanges happen here */
        s->phase = 1;
        if ((e = wn_spill_writer_finish(&s->sw, &st->err))) return e;
        if ((e = s->token_level ? tok_decide(st, s) : doc_decide(st, s))) return e;
        if (!s->n_spilled) { /* nothing was held back here */
            s->phase = 2;
            return WN_OK;
        }
        if ((e = wn_spill_reader_open(&s->sr, s->path, &st->err))) return e;
    }
    size_t bytes = 0;
    /* a batch of the run's size (the writer closes shards between batches) */
    uint64_t limit = wn_stage_emit_bytes(st, EMIT_BYTES);
    while (bytes < limit && out->n < EMIT_DOCS) {
        wn_doc *d;
        if ((e = wn_spill_reader_push(&s->sr, out, &d, &st->err))) return e;
        if (!d) {
            s->phase = 2;
            if (s->emitted != s->n_spilled)
                return wn_fail(&st->err, WN_ERR_STATE, "%s: %llu documents read back of %llu spilled", s->path,
                               (unsigned long long)s->emitted, (unsigned long long)s->n_spilled);
            break;
        }
        uint64_t idx = s->emitted++;
        bytes += d->text.len;
        if (s->token_level) {
            if ((e = tok_apply(s, d))) return wn_fail(&st->err, e, "out of memory");
            continue;
        }
        double v = 0;
        if (s->random) v = uniform_key(d, s->seed, 0);
        else if (!wn_doc_attr_num(d, s->score, &v))
            return wn_fail(&st->err, WN_ERR_STATE, "%s: a spilled document lost its score", s->path);
        int keep = bit_get(s->sel, idx);
        (keep ? s->hist_sel : s->hist_rej)[bucket(v, s->smin, s->smax)]++;
        if (!keep) d->drop = "below_threshold";
        if ((int64_t)idx == s->thr_index) s->thr_score = v;
        if (s->quota_by[0] && keep) {
            int64_t g;
            if ((e = group_key(st, s, d))) return e;
            if ((g = group_find(s, 0)) >= 0 && s->g[g].thr_index == (int64_t)idx) s->g[g].thr_score = v;
        }
    }
    return WN_OK;
}

/* ---- checkpoints -------------------------------------------------------------------- */

typedef struct {
    uint64_t magic, spill_open, spill_bytes, n_spilled, n_c, n_g, names_len, cand_tokens, missing;
    double smin, smax;
    uint64_t tok_kept, tok_masked, tok_scored, tok_docs, radix;
} sel_ckpt;

static wn_err sel_save(wn_stage *st, FILE *f)
{
    sel_state *s = st->state;
    if (s->phase) return wn_fail(&st->err, WN_ERR_INTERNAL, "select cannot checkpoint once it has begun emitting");
    wn_err e = wn_spill_writer_sync(&s->sw, &st->err);
    if (e) return e;
    sel_ckpt c = {CKPT_MAGIC, (uint64_t)s->sw.open, s->sw.bytes, s->n_spilled, s->n_c, s->n_g, s->names.len,
                  s->cand_tokens, s->missing, s->smin, s->smax, s->tok_kept, s->tok_masked, s->tok_scored,
                  s->tok_docs, s->radix ? RADIX : 0};
    int bad = fwrite(&c, sizeof c, 1, f) != 1;
    bad |= s->n_c && fwrite(s->c, sizeof *s->c, s->n_c, f) != s->n_c;
    bad |= s->n_g && fwrite(s->g, sizeof *s->g, s->n_g, f) != s->n_g;
    bad |= s->names.len && fwrite(s->names.p, 1, s->names.len, f) != s->names.len;
    bad |= s->radix && fwrite(s->radix, sizeof *s->radix, RADIX, f) != RADIX;
    return bad ? wn_fail(&st->err, WN_ERR_IO, "checkpoint write failed") : WN_OK;
}

static wn_err sel_load(wn_stage *st, FILE *f)
{
    sel_state *s = st->state;
    sel_ckpt c;
    if (fread(&c, sizeof c, 1, f) != 1 || c.magic != CKPT_MAGIC)
        return wn_fail(&st->err, WN_ERR_STATE, "not a select checkpoint");
    if (c.radix != (s->radix ? RADIX : 0))
        return wn_fail(&st->err, WN_ERR_STATE, "the checkpoint is of another token_scope");
    s->n_spilled = c.n_spilled;
    s->cand_tokens = c.cand_tokens;
    s->missing = c.missing;
    s->smin = c.smin;
    s->smax = c.smax;
    s->tok_kept = c.tok_kept;
    s->tok_masked = c.tok_masked;
    s->tok_scored = c.tok_scored;
    s->tok_docs = c.tok_docs;
    if (c.n_c) {
        if (!(s->c = wn_malloc(c.n_c * sizeof *s->c))) return wn_fail(&st->err, WN_ERR_NOMEM, "out of memory");
        s->cap_c = s->n_c = c.n_c;
    }
    if (c.n_g) {
        if (!(s->g = wn_malloc(c.n_g * sizeof *s->g))) return wn_fail(&st->err, WN_ERR_NOMEM, "out of memory");
        s->cap_g = s->n_g = c.n_g;
    }
    if (c.names_len && wn_buf_reserve(&s->names, c.names_len)) return wn_fail(&st->err, WN_ERR_NOMEM, "out of memory");
    int bad = c.n_c && fread(s->c, sizeof *s->c, c.n_c, f) != c.n_c;
    bad |= c.n_g && fread(s->g, sizeof *s->g, c.n_g, f) != c.n_g;
    bad |= c.names_len && fread(s->names.p, 1, c.names_len, f) != c.names_len;
    bad |= s->radix && fread(s->radix, sizeof *s->radix, RADIX, f) != RADIX;
    if (bad) return wn_fail(&st->err, WN_ERR_STATE, "select checkpoint cut short");
    s->names.len = c.names_len;
    for (size_t i = 0; i < s->n_g; i++)
        if ((uint64_t)s->g[i].name_off + s->g[i].name_len + 1 > c.names_len)
            return wn_fail(&st->err, WN_ERR_STATE, "select checkpoint: bad group name");
    size_t cap = 64;
    while (s->n_g * 2 > cap) cap *= 2;
    if (s->n_g && slots_rebuild(s, cap)) return wn_fail(&st->err, WN_ERR_NOMEM, "out of memory");
    account(st);
    if (c.spill_open) {
        s->sw.bytes = c.spill_bytes;
        return wn_spill_writer_open(&s->sw, s->path, 1, &st->err);
    }
    return WN_OK;
}

/* ---- report ------------------------------------------------------------------------- */

static void counts(wn_jw *w, const char *key, uint64_t docs, uint64_t tokens)
{
    wn_jw_key(w, key);
    wn_jw_obj_begin(w);
    wn_jw_key(w, "docs"); wn_jw_u64(w, docs);
    wn_jw_key(w, "tokens"); wn_jw_u64(w, tokens);
    wn_jw_obj_end(w);
}

static void histogram(wn_jw *w, const sel_state *s, const char *unit, const char *a, const char *b)
{
    int have = s->smin <= s->smax;
    wn_jw_key(w, "score_histogram");
    wn_jw_obj_begin(w);
    wn_jw_key(w, "unit"); wn_jw_str(w, unit);
    wn_jw_key(w, "min"); have ? wn_jw_f64(w, s->smin) : wn_jw_null(w);
    wn_jw_key(w, "max"); have ? wn_jw_f64(w, s->smax) : wn_jw_null(w);
    wn_jw_key(w, "edges");
    wn_jw_arr_begin(w);
    for (int i = 0; have && i <= HIST_BUCKETS; i++)
        wn_jw_f64(w, i == HIST_BUCKETS ? s->smax : s->smin + (s->smax - s->smin) * i / HIST_BUCKETS);
    wn_jw_arr_end(w);
    const uint64_t *h[2] = {s->hist_sel, s->hist_rej};
    const char *name[2] = {a, b};
    for (int k = 0; k < 2; k++) {
        wn_jw_key(w, name[k]);
        wn_jw_arr_begin(w);
        for (int i = 0; have && i < HIST_BUCKETS; i++) wn_jw_u64(w, h[k][i]);
        wn_jw_arr_end(w);
    }
    wn_jw_obj_end(w);
}

static void threshold(wn_jw *w, int any, double key, double score)
{
    wn_jw_key(w, "threshold");
    if (!any) {
        wn_jw_null(w);
        return;
    }
    wn_jw_obj_begin(w);
    wn_jw_key(w, "key"); wn_jw_f64(w, key);
    wn_jw_key(w, "score"); wn_jw_f64(w, score);
    wn_jw_obj_end(w);
}

/* Every rank calls this; the counts kept per rank are summed here (the
 * decisions of finish are the stream's already). The threshold's score is
 * read back by the rank that holds the unit: the others give -inf. */
static void sel_report(wn_stage *st, wn_jw *w)
{
    sel_state *s = st->state;
    uint64_t c[4 + 2 * HIST_BUCKETS] = {s->missing, s->tok_scored, s->tok_kept, s->tok_masked};
    memcpy(c + 4, s->hist_sel, sizeof s->hist_sel);
    memcpy(c + 4 + HIST_BUCKETS, s->hist_rej, sizeof s->hist_rej);
    uint64_t docs = s->tok_docs;
    wn_mpi_allreduce_sum_u64(c, WN_ARRAY_LEN(c));
    wn_mpi_allreduce_sum_u64(&docs, 1);
    sel_state all = *s; /* the stream's counts, for the writers below */
    all.missing = c[0];
    all.tok_scored = c[1];
    all.tok_kept = c[2];
    all.tok_masked = c[3];
    all.tok_docs = docs;
    memcpy(all.hist_sel, c + 4, sizeof all.hist_sel);
    memcpy(all.hist_rej, c + 4 + HIST_BUCKETS, sizeof all.hist_rej);
    s = &all;
    wn_jw_key(w, "level"); wn_jw_str(w, s->token_level ? "token" : "document");
    wn_jw_key(w, "missing_score"); wn_jw_u64(w, s->missing);
    if (s->token_level) {
        wn_jw_key(w, "token_scope"); wn_jw_str(w, s->global ? "global" : "sequence");
        wn_jw_key(w, "documents"); wn_jw_u64(w, s->tok_docs);
        wn_jw_key(w, "tokens");
        wn_jw_obj_begin(w);
        wn_jw_key(w, "scored"); wn_jw_u64(w, s->tok_scored);
        wn_jw_key(w, "kept"); wn_jw_u64(w, s->tok_kept);
        wn_jw_key(w, "masked"); wn_jw_u64(w, s->tok_masked);
        wn_jw_obj_end(w);
        wn_jw_key(w, "kept_fraction");
        wn_jw_f64(w, s->tok_scored ? (double)s->tok_kept / (double)s->tok_scored : 0);
        if (s->global) {
            wn_jw_key(w, "target_kept"); wn_jw_u64(w, s->k_target);
            wn_jw_key(w, "threshold");
            if (s->keep_all || s->keep_none || !s->tok_scored) {
                wn_jw_null(w);
            } else {
                wn_jw_obj_begin(w);
                wn_jw_key(w, "score"); wn_jw_f64(w, tkey_score(s->thr_tkey, s->asc));
                wn_jw_key(w, "ties_kept"); wn_jw_u64(w, s->ties_keep);
                wn_jw_obj_end(w);
            }
            histogram(w, s, "per-token score", "kept", "masked");
        }
        return;
    }
    /* the thresholds' scores: the whole stream's, then each group's */
    size_t ng = s->quota_by[0] ? s->n_g : 0;
    double *sc = wn_malloc((ng + 1) * sizeof *sc);
    WN_CHECK(sc != NULL); /* a few bytes; every rank must take part in the exchange */
    sc[0] = s->thr_index >= 0 ? s->thr_score : -INFINITY;
    for (size_t i = 0; i < ng; i++) sc[i + 1] = s->g[i].thr_index >= 0 ? s->g[i].thr_score : -INFINITY;
    wn_mpi_allreduce_max_f64(sc, ng + 1);
    wn_jw_key(w, "budget");
    wn_jw_obj_begin(w);
    wn_jw_key(w, "unit"); wn_jw_str(w, s->unit == UNIT_DOCS ? "documents" : "tokens");
    wn_jw_key(w, "asked"); wn_jw_u64(w, s->budget);
    if (s->compute_flops > 0) {
        wn_jw_key(w, "compute_flops"); wn_jw_f64(w, s->compute_flops);
        wn_jw_key(w, "tokens_rule"); wn_jw_str(w, "FLOPs / (6 x model_params x epochs)");
        if (s->optimal_n > 0) {
            wn_jw_key(w, "compute_optimal_params"); wn_jw_f64(w, s->optimal_n);
            wn_jw_key(w, "predicted_loss"); wn_jw_f64(w, s->optimal_loss);
            wn_jw_key(w, "scaling_law"); wn_jw_str(w, wn_param(st, "scaling_law")->s);
        }
    }
    wn_jw_key(w, "spent_docs"); wn_jw_u64(w, s->sel_docs);
    wn_jw_key(w, "spent_tokens"); wn_jw_u64(w, s->sel_tokens);
    wn_jw_obj_end(w);
    counts(w, "candidates", s->all_c, s->all_tokens);
    counts(w, "selected", s->sel_docs, s->sel_tokens);
    counts(w, "rejected", s->all_c - s->sel_docs, s->all_tokens - s->sel_tokens);
    threshold(w, s->thr_any, s->thr_key, sc[0]);
    histogram(w, s, s->score, "selected", "rejected");
    wn_jw_key(w, "memory_bytes_per_document"); wn_jw_u64(w, sizeof(cand));
    if (s->quota_by[0]) {
        wn_jw_key(w, "groups");
        wn_jw_arr_begin(w);
        for (size_t i = 0; i < ng; i++) {
            const group *g = &s->g[i];
            wn_jw_obj_begin(w);
            wn_jw_key(w, "group");
            if (s->quota_source) wn_jw_str(w, group_name(s, g));
            else wn_jw_raw(w, group_name(s, g), g->name_len);
            wn_jw_key(w, "docs"); wn_jw_u64(w, g->docs);
            wn_jw_key(w, "tokens"); wn_jw_u64(w, g->tokens);
            wn_jw_key(w, "quota"); wn_jw_u64(w, g->quota);
            wn_jw_key(w, "selected_docs"); wn_jw_u64(w, g->sel_docs);
            wn_jw_key(w, "selected_tokens"); wn_jw_u64(w, g->sel_tokens);
            threshold(w, g->thr_any, g->thr_key, sc[i + 1]);
            wn_jw_obj_end(w);
        }
        wn_jw_arr_end(w);
    }
    wn_free(sc);
}

static void sel_close(wn_stage *st)
{
    sel_state *s = st->state;
    wn_spill_writer_close(&s->sw); /* an interrupted run: the spill stays for resume */
    wn_spill_reader_close(&s->sr);
    wn_buf_free(&s->names);
    wn_buf_free(&s->gkey);
    wn_free(s->c);
    wn_free(s->g);
    wn_free(s->gslot);
    wn_free(s->sel);
    wn_free(s->radix);
    for (int i = 0; s->tls && i < s->n_tls; i++) wn_free(s->tls[i].v);
    wn_free(s->tls);
}

/* `winnow experiment`'s random baseline of this stage: the same budget and
 * level, uniform keys; at document level the budget becomes the tokens the
 * selected run kept, so both arms train on as many tokens. */
static const char *sel_baseline(const wn_value *values)
{
    if (!strcmp(values[0].s, "token")) return "score: random, order: desc"; /* values[0]: level */
    return "score: random, order: desc, temperature: 0, budget_tokens: {tokens}, budget_fraction: 0, budget_docs: 0";
}

const wn_stage_def wn_stage_select = {
    .name = "select",
    .summary = "keep the highest-scoring documents under a budget, or mask tokens by per-token scores",
    .doc = "level document: ranks documents by a numeric attribute (`score`, `order`) and keeps them,\n"
           "best first, while they fit `budget_tokens`, `budget_fraction` (of the scored tokens) or\n"
           "`budget_docs` (exactly one), stopping at the first that does not fit. temperature > 0 samples\n"
           "instead (Gumbel top-k: key = +-score/t + Gumbel noise from (seed, id)). quota_by splits the\n"
           "budget across groups (`source` = the manifest input, or a top-level record field) by their\n"
           "share, largest remainders rounding. Documents are held back in a zstd spill in the state\n"
           "directory (24 bytes each stay in memory) and come out in input order; drop reasons\n"
           "below_threshold and missing_score.\n"
           "level token: per-token loss weights (1 kept, 0 masked) for the tokens 1..n-1 of each\n"
           "document by their per-token scores: the top ceil(token_fraction x (n - 1)) of each document\n"
           "(token_scope sequence) or an exact threshold over the whole stream (global, two passes);\n"
           "token 0 keeps weight 1. pack writes the weights beside the shards.\n"
           "Report extras: budget (asked, spent), candidates/selected/rejected, threshold,\n"
           "score_histogram (selected vs rejected), groups; token level: tokens kept/masked.\n"
           "Across MPI ranks the decisions are the one process's: an exact threshold search on cost\n"
           "histograms summed over the ranks, ties in input order by an exscan (nothing per document).",
    .params = params,
    .n_params = WN_ARRAY_LEN(params),
    .state_size = sizeof(sel_state),
    .open = sel_open,
    .baseline = sel_baseline,
    .process = sel_process,
    .finish = sel_finish,
    .save = sel_save,
    .load = sel_load,
    .report = sel_report,
    .close = sel_close,
};
