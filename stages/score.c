/*
 * score.c - value scores for every document and token (DESIGN.md §5,
 * ../shared/reference/selection.md §A), for the `select` stage to rank by.
 *
 * Methods (`methods: a,b,...`; each adds document attributes under
 * "winnow" and some a per-token score, d->tscore):
 *   perplexity   per-token loss under the reference model; attributes
 *                ref_loss (mean nats per scored token) and ppl = exp(ref_loss),
 *                plus ppl_bucket head|middle|tail with `ppl_cuts: "A,B"`
 *                (cc_net style: head below A, middle below B, else tail).
 *   excess_loss  RHO-1: per token, loss under the base (proxy) model minus
 *                loss under the reference model; attributes base_loss and
 *                excess_loss (the mean over scored tokens).
 *   el2n         per token ||softmax - onehot|| under the base model
 *                (Paul et al. 2021); attribute el2n (the mean).
 *   gradient     LESS-style: the gradient of the document's mean token loss
 *                under the base model w.r.t. the LM head and the top
 *                `grad_blocks` blocks' linear weights, each layer projected
 *                to grad_dim x grad_dim with a seeded Kronecker-structured
 *                Rademacher projection computed as GEMMs (the full gradient
 *                is never formed); attributes grad_norm (the norm of the
 *                projected features: an unbiased JL estimate of the squared
 *                norm, GraNd-style) and grad_cos (cosine with the mean of the
 *                target set's normalised features). Plain SGD gradients on
 *                both sides (LESS applies Adam's preconditioner to the
 *                candidates; a Kronecker projection cannot, see selection.md
 *                A11.6).
 *   dsir         hashed unigram+bigram importance weight log p_target(x) -
 *                log p_raw(x) (Xie et al. 2023); attributes dsir, dsir_words.
 *   classifier   probability of `classifier_label` under a fastText model;
 *                attribute classifier.
 * Documents are scored in windows of seq_len tokens (non-overlapping; token
 * j of a document is predicted from the tokens before it in its window, and
 * token 0, the EOT the tokenize stage prepends, is not scored: its tscore is
 * 0). Documents with fewer than 2 tokens get no model scores (counted as
 * unscored in the report).
 *
 * Models: `reference` and `model` name safetensors checkpoints (winnow's or
 * HF GPT-2's); or `train_reference: DATASET` / `train_model: DATASET` train
 * them inside the run with the bundled trainer (fit.h) on a named dataset,
 * saved to RUN_DIR/models/{reference,base}.safetensors and reused on
 * --resume (and, in an experiment, shared across its arms through the
 * run's cache directory, keyed by everything the model depends on).
 *
 * Device: the manifest's `device: cuda` (or `auto` with a visible GPU) runs
 * all model work on the GPU (src/gpt_cuda.h: cuBLAS + kernels/gpt_kernels.cu):
 * the forwards for perplexity and excess loss, EL2N from the device logits,
 * and the gradient features (a partial backward on the device whose X and G
 * are projected there by kernels/score_kernels.cu; only B x k x k features
 * come back). The results agree with the CPU within float tolerance
 * (tests/e2e/test_score_device.sh, checked on an H100), not bit for bit.
 * `batch: 0` (the default) sizes the forward groups from the GPU's free
 * memory (auto_batch; under MPI the smallest over the ranks); the report
 * says which batch was used and where the model work ran (device).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "../src/dataset.h"
#include "../src/dsir.h"
#include "../src/fasttext.h"
#include "../src/fit.h"
#include "../src/fs.h"
#include "../kernels/device.h"
#include "../src/gpt_cuda.h"
#include "../src/gradproj.h"
#include "../src/model.h"
#include "../src/mpi.h"
#include "../src/safetensors.h"
#include "../src/stage.h"
#include "../src/tokenizer.h"

static const wn_param_def params[] = {
    {"methods", WN_P_STRING, "perplexity", 0, 0, NULL,
     "comma-separated: perplexity, excess_loss, el2n, gradient, dsir, classifier"},
    {"reference", WN_P_STRING, "", 0, 0, NULL, "reference model (.safetensors): perplexity, excess_loss"},
    {"model", WN_P_STRING, "", 0, 0, NULL, "base/proxy model (.safetensors): excess_loss, el2n, gradient"},
    {"train_reference", WN_P_STRING, "", 0, 0, NULL,
     "dataset name: train the reference model on it in the run (when reference is empty)"},
    {"train_model", WN_P_STRING, "", 0, 0, NULL,
     "dataset name: train the base model on it in the run (when model is empty)"},
    {"train_sample", WN_P_FLOAT, "1", 0, 1, NULL, "share of train_model's documents used (by id hash)"},
    {"train_steps", WN_P_INT, "200", 1, 10000000, NULL, "optimizer steps for a model trained in the run"},
    {"train_layers", WN_P_INT, "2", 1, 64, NULL, "layers of a model trained in the run"},
    {"train_dim", WN_P_INT, "64", 8, 4096, NULL, "width C of a model trained in the run"},
    {"train_heads", WN_P_INT, "4", 1, 64, NULL, "attention heads of a model trained in the run"},
    {"train_context", WN_P_INT, "128", 8, 8192, NULL, "context length of a model trained in the run"},
    {"train_batch", WN_P_INT, "8", 1, 4096, NULL, "sequences per step when training in the run"},
    {"train_lr", WN_P_FLOAT, "0.003", 0, 1, NULL, "peak learning rate (warmup 10%, cosine to lr/10)"},
    {"train_seed", WN_P_INT, "1", 0, 9e18, NULL, "seed of initialisation and batch sampling"},
    {"target", WN_P_STRING, "", 0, 0, NULL, "dataset name: the target set (gradient, dsir)"},
    {"raw", WN_P_STRING, "", 0, 0, NULL, "dataset name: the raw pool's distribution (dsir)"},
    {"dsir_buckets", WN_P_INT, "10000", 16, 1 << 26, NULL, "hash buckets of dsir's n-gram features"},
    {"dsir_laplace", WN_P_FLOAT, "1", 0, 1e9, NULL, "pseudo-count added to every dsir bucket"},
    {"classifier", WN_P_STRING, "", 0, 0, NULL, "fastText model (.bin) for the classifier method"},
    {"classifier_label", WN_P_STRING, "__label__hq", 0, 0, NULL, "label whose probability is the score"},
    {"seq_len", WN_P_INT, "0", 0, 1 << 20, NULL, "scoring window in tokens (0 = the models' context)"},
    {"batch", WN_P_INT, "0", 0, 4096, NULL,
     "windows per forward pass (0 = auto: on a GPU as many as fit in 80% of its free memory, at most 512; 8 on the CPU)"},
    {"grad_blocks", WN_P_INT, "1", 0, 64, NULL, "top blocks whose linear weights join the LM head (gradient)"},
    {"grad_dim", WN_P_INT, "16", 1, 256, NULL, "per layer, features are grad_dim x grad_dim (gradient)"},
    {"grad_seed", WN_P_INT, "0", 0, 9e18, NULL, "seed of the projection matrices"},
    {"ppl_cuts", WN_P_STRING, "", 0, 0, NULL, "\"A,B\": ppl_bucket head (< A), middle (< B), tail"},
    {"token_score", WN_P_ENUM, "auto", 0, 0, "auto|excess_loss|nll|el2n|none",
     "what goes into the per-token score (auto: excess_loss, else nll, else el2n)"},
};

enum { M_PPL = 1, M_EXCESS = 2, M_EL2N = 4, M_GRAD = 8, M_DSIR = 16, M_CLS = 32 };
static const struct {
    const char *name;
    unsigned bit;
} method_names[] = {{"perplexity", M_PPL}, {"excess_loss", M_EXCESS}, {"el2n", M_EL2N},
                    {"gradient", M_GRAD},  {"dsir", M_DSIR},          {"classifier", M_CLS}};

enum { TS_NONE, TS_EXCESS, TS_NLL, TS_EL2N };
enum { MAX_LAYERS = 1 + 4 * 64 };
enum { N_STATS = 11 };
static const char *const stat_names[N_STATS] = {"ref_loss", "ppl",      "base_loss",  "excess_loss", "el2n",
                                                "grad_norm", "grad_cos", "dsir",       "dsir_words",  "classifier",
                                                "tokens"};

typedef struct {
    wn_gpt *m;
    wn_gpt_cuda *gpu;   /* the same model on the GPU (forward-only methods), or NULL */
    const char *source; /* path, or "trained on DATASET" */
    int trained;
    wn_fit_result fit;
    uint64_t train_tokens;
} model_slot;

/* A score's summary for the report. The sum is fixed point (2^-40 units,
 * values clamped to +-2^60), so adding is exact and the mean is the same
 * whatever the order: across MPI ranks too. */
typedef struct {
    uint64_t n;
    __int128 sum;
    double min, max;
} summary;
#define SUM_SCALE 1099511627776.0 /* 2^40 */
#define SUM_CLAMP 1152921504606846976.0 /* 2^60 */

/* What one scoring pass computes for a list of documents. */
typedef struct {
    wn_doc **docs;
    size_t nd;
    size_t *off;                /* nd + 1: token offsets into the arrays below */
    float *nll_ref, *nll_base, *el2n;
    double *feats;              /* nd x feat_dim */
    size_t cap_docs, cap_off, cap_tok;
} pass;

typedef struct {
    float *Pin, *Pout;
    int in, out;
    wn_cuda_proj *dev; /* the same on the GPU, when the base model runs there */
} layer_proj;

typedef struct score score;

/* Context of the per-layer callback of one forward group. */
typedef struct {
    score *s;
    pass *p;
    const size_t *win_doc; /* the group's windows: their documents */
    int B, T;
    int layer;             /* next layer's index */
    wn_err err;
} grad_ctx;

struct score {
    unsigned methods;
    int token_score;
    model_slot ref, base;
    int T, B;
    /* gradient */
    int grad_blocks, gk, feat_dim, n_layers;
    uint64_t grad_seed;
    layer_proj proj[MAX_LAYERS];
    wn_kron_scratch ks;
    float *tmpfeat;
    int64_t *starts;
    float *scale;
    float *nll_tmp; /* seq_len: el2n's by-product */
    float *el2n_bt; /* B x T: EL2N of a forward group from the GPU */
    double *target_mean; /* feat_dim: mean of the target set's unit vectors */
    uint64_t target_docs;
    /* dsir */
    wn_dsir_model dsir;
    int have_dsir;
    wn_dsir_scratch *dsir_sc; /* per thread */
    /* classifier */
    wn_ft *ft;
    int ft_label;
    wn_ft_scratch *ft_sc;
    wn_ft_pred **ft_pred;
    wn_errbuf *terr; /* per thread */
    int n_threads;
    /* tokenizer for datasets */
    wn_tokenizer *tok;
    wn_tok_ctx *tctx;
    double cut_a, cut_b;
    int have_cuts;
    /* per-batch buffers */
    pass p;
    size_t *win_doc, *win_off;
    int *win_len;
    size_t cap_win;
    uint32_t *in, *tg;
    float *w;
    size_t cap_bt;
    /* statistics */
    uint64_t docs_scored, docs_unscored, tokens_scored, windows, bucket[3];
    double flops, model_seconds, target_seconds;
    summary stat[N_STATS];
};

/* ---- helpers --------------------------------------------------------------- */

static wn_err grow(void **p, size_t *cap, size_t need, size_t elem)
{
    if (need <= *cap) return WN_OK;
    size_t c = need + need / 2 + 16;
    void *q = wn_realloc(*p, c * elem);
    if (!q) return WN_ERR_NOMEM;
    *p = q;
    *cap = c;
    return WN_OK;
}

static void sum_add(summary *s, double v)
{
    if (!s->n || v < s->min) s->min = v;
    if (!s->n || v > s->max) s->max = v;
    s->n++;
    double c = v > SUM_CLAMP ? SUM_CLAMP : v < -SUM_CLAMP ? -SUM_CLAMP : v;
    if (c == c) s->sum += (__int128)(c * SUM_SCALE);
}

static wn_err attr_num(wn_doc *d, const char *key, double v)
{
    char num[48];
    if (!isfinite(v)) v = v > 0 ? 1e308 : v < 0 ? -1e308 : 0; /* JSON has no inf/nan */
    snprintf(num, sizeof num, "%.9g", v);
    return wn_doc_attr(d, key, num);
}

static int has_method(const score *s, unsigned m) { return (s->methods & m) != 0; }

/* ---- models ------------------------------------------------------------------ */

typedef struct {
    wn_stage *st;
    score *s;
    wn_ids all;   /* documents' tokens, concatenated */
    wn_ids one;
    double sample;
    uint64_t docs;
} token_collect;

static wn_err collect_doc(void *ctx, wn_doc *d)
{
    token_collect *c = ctx;
    if (c->sample < 1 && (double)XXH3_64bits_withSeed(d->id.p, d->id.len, 0) / 18446744073709551616.0 >= c->sample) return WN_OK;
    c->one.n = 0;
    if (c->st->run->eot_id >= 0 && wn_ids_push(&c->one, (uint32_t)c->st->run->eot_id)) return WN_ERR_NOMEM;
    wn_err e = wn_tokenizer_encode(c->s->tctx, d->text.p, d->text.len, 0, &c->one);
    if (e) return wn_fail(&c->st->err, e, "cannot tokenize dataset document %.*s", (int)d->id.len, d->id.p);
    for (size_t i = 0; i < c->one.n; i++)
        if (wn_ids_push(&c->all, c->one.p[i])) return WN_ERR_NOMEM;
    c->docs++;
    return WN_OK;
}

static wn_err make_model(wn_stage *st, score *s, model_slot *ms, const char *cache, const char *glob,
                         const char *dataset, double sample, const char *name);

static wn_err load_model(wn_stage *st, score *s, model_slot *ms, const char *path, const char *dataset,
                         double sample, const char *name, const char *what)
{
    char cache[4400];
    if (path[0]) {
        ms->source = path;
        wn_err e = wn_st_gpt_load_file(&ms->m, path, 0, &st->err);
        return e == WN_ERR_INPUT ? WN_ERR_MANIFEST : e;
    }
    if (!dataset[0])
        return wn_fail(&st->err, WN_ERR_MANIFEST,
                       "score: %s needs `%s:` (a .safetensors model) or `train_%s:` (a dataset to train one on)", what,
                       !strcmp(name, "reference") ? "reference" : "model",
                       !strcmp(name, "reference") ? "reference" : "model");
    const char *glob = wn_run_dataset(st->run, dataset);
    if (!glob) return wn_fail(&st->err, WN_ERR_MANIFEST, "score: no dataset named '%s' under datasets:", dataset);
    ms->source = dataset;
    ms->trained = 1;
    snprintf(cache, sizeof cache, "%s/models/%s.safetensors", st->run->run_dir, name);
    if (wn_mpi_size() > 1) {
        /* under MPI rank 0 trains (or finds) the model; the others load what
         * it saved (the same bytes the one process would have trained) */
        wn_err e = wn_mpi_rank() == 0 ? make_model(st, s, ms, cache, glob, dataset, sample, name) : WN_OK;
        int64_t failed = e != WN_OK;
        wn_mpi_allreduce_max_i64(&failed, 1);
        if (wn_mpi_rank() == 0) return e;
        if (failed) return wn_fail(&st->err, WN_ERR_STATE, "score: rank 0 could not make the %s model", name);
        return wn_st_gpt_load_file(&ms->m, cache, 0, &st->err);
    }
    return make_model(st, s, ms, cache, glob, dataset, sample, name);
}

/* The model trained on dataset (glob), saved at cache: loaded from there or
 * from the run's shared cache when made before, else trained now. */
static wn_err make_model(wn_stage *st, score *s, model_slot *ms, const char *cache, const char *glob,
                         const char *dataset, double sample, const char *name)
{
    if (wn_exists(cache)) /* made by this run's manifest before an interruption */
        return wn_st_gpt_load_file(&ms->m, cache, 0, &st->err);
    /* a run sharing a cache (an experiment's arms) may have trained it: the
     * key is everything the model depends on */
    char shared[4400] = "", key[8192];
    if (st->run->cache_dir) {
        snprintf(key, sizeof key, "%s|%s|%.17g|%lld|%lld|%lld|%lld|%lld|%lld|%.17g|%lld|%d|%016llx", name, glob,
                 sample, (long long)wn_param(st, "train_steps")->i, (long long)wn_param(st, "train_layers")->i,
                 (long long)wn_param(st, "train_dim")->i, (long long)wn_param(st, "train_heads")->i,
                 (long long)wn_param(st, "train_context")->i, (long long)wn_param(st, "train_batch")->i,
                 wn_param(st, "train_lr")->f, (long long)wn_param(st, "train_seed")->i, st->run->vocab_size,
                 (unsigned long long)st->run->tokenizer_hash);
        snprintf(shared, sizeof shared, "%s/model-%016llx.safetensors", st->run->cache_dir,
                 (unsigned long long)XXH3_64bits(key, strlen(key)));
        if (wn_exists(shared)) {
            wn_err e = wn_st_gpt_load_file(&ms->m, shared, 0, &st->err);
            char dir[4400];
            snprintf(dir, sizeof dir, "%s/models", st->run->run_dir);
            const char *meta[] = {"trained_on", dataset};
            if (!e) e = wn_mkdir_p(dir, &st->err);
            if (!e) e = wn_st_gpt_save(ms->m, cache, meta, 1, &st->err);
            return e;
        }
    }

    token_collect c = {st, s, {0}, {0}, sample, 0};
    wn_err e = wn_dataset_each(glob, collect_doc, &c, &st->err);
    wn_gpt_config cfg = {st->run->vocab_size, (int)wn_param(st, "train_context")->i,
                         (int)wn_param(st, "train_layers")->i, (int)wn_param(st, "train_heads")->i,
                         (int)wn_param(st, "train_dim")->i};
    if (!e && cfg.dim % cfg.heads)
        e = wn_fail(&st->err, WN_ERR_MANIFEST, "score: train_dim %d is not a multiple of train_heads %d", cfg.dim,
                    cfg.heads);
    if (!e && c.all.n < 2)
        e = wn_fail(&st->err, WN_ERR_INPUT, "score: dataset '%s' gives %zu tokens: too few to train the %s model",
                    dataset, c.all.n, name);
    if (!e) e = wn_gpt_new(&ms->m, &cfg, (uint64_t)wn_param(st, "train_seed")->i, &st->err);
    if (!e) {
        int steps = (int)wn_param(st, "train_steps")->i;
        float lr = (float)wn_param(st, "train_lr")->f;
        wn_fit_opts o = {steps, (int)wn_param(st, "train_batch")->i, cfg.context, steps / 10, lr, lr / 10,
                         0.1f, 1.0f, (uint64_t)wn_param(st, "train_seed")->i, 0, 0}; /* float moments, stored activations */
        ms->train_tokens = c.all.n;
        e = wn_gpt_fit(ms->m, c.all.p, c.all.n, &o, &ms->fit, &st->err);
        s->flops += ms->fit.flops;
    }
    char dir[4400];
    snprintf(dir, sizeof dir, "%s/models", st->run->run_dir);
    if (!e) e = wn_mkdir_p(dir, &st->err);
    if (!e) {
        const char *meta[] = {"trained_on", dataset};
        e = wn_st_gpt_save(ms->m, cache, meta, 1, &st->err);
        if (!e && shared[0] && !(e = wn_mkdir_p(st->run->cache_dir, &st->err)))
            e = wn_st_gpt_save(ms->m, shared, meta, 1, &st->err);
    }
    wn_ids_free(&c.all);
    wn_ids_free(&c.one);
    return e;
}

/* ---- the scoring pass ------------------------------------------------------------ */

/* Layer li's seeded projection matrices, made at its first sight. */
static wn_err layer_matrices(score *s, int li, int in, int out)
{
    layer_proj *lp = &s->proj[li];
    if (lp->Pin) return WN_OK;
    lp->Pin = wn_malloc((size_t)s->gk * in * sizeof *lp->Pin);
    lp->Pout = wn_malloc((size_t)s->gk * out * sizeof *lp->Pout);
    if (!lp->Pin || !lp->Pout) return WN_ERR_NOMEM;
    wn_rademacher(lp->Pin, s->gk, in, s->grad_seed, 2 * (uint64_t)li);
    wn_rademacher(lp->Pout, s->gk, out, s->grad_seed, 2 * (uint64_t)li + 1);
    lp->in = in;
    lp->out = out;
    return WN_OK;
}

/* Adds the group's projected features of layer li (s->tmpfeat, B x k x k)
 * to its documents' feature vectors. */
static void add_feats(grad_ctx *g, int li)
{
    score *s = g->s;
    size_t kk = (size_t)s->gk * s->gk;
    for (int b = 0; b < g->B; b++) {
        double *f = g->p->feats + g->win_doc[b] * (size_t)s->feat_dim + (size_t)li * kk;
        const float *t = s->tmpfeat + (size_t)b * kk;
        for (size_t i = 0; i < kk; i++) f[i] += t[i];
    }
}

static void on_layer(void *ctx, const char *name, const float *X, const float *G, int N, int in, int out)
{
    (void)name;
    (void)N;
    grad_ctx *g = ctx;
    score *s = g->s;
    if (g->err) return;
    int li = g->layer++;
    if (li >= MAX_LAYERS) { g->err = WN_ERR_INTERNAL; return; }
    if ((g->err = layer_matrices(s, li, in, out))) return;
    layer_proj *lp = &s->proj[li];
    memset(s->tmpfeat, 0, (size_t)g->B * s->gk * s->gk * sizeof *s->tmpfeat);
    if ((g->err = wn_kron_project(&s->ks, X, G, s->starts, g->B, s->scale, in, out, lp->Pin, s->gk, lp->Pout, s->gk,
                                  s->tmpfeat)))
        return;
    add_feats(g, li);
}

/* The same with the base model on the GPU: X and G are device arrays,
 * projected there (the projection matrices are uploaded at first sight). */
static wn_err on_layer_gpu(void *ctx, const char *name, const float *X, const float *G, int N, int in, int out,
                           wn_errbuf *err)
{
    (void)N;
    grad_ctx *g = ctx;
    score *s = g->s;
    int li = g->layer++;
    if (li >= MAX_LAYERS) return wn_fail(err, WN_ERR_INTERNAL, "gradient features: layer %s beyond the table", name);
    if (layer_matrices(s, li, in, out)) return wn_fail(err, WN_ERR_NOMEM, "out of memory");
    layer_proj *lp = &s->proj[li];
    wn_err e;
    if (!lp->dev && (e = wn_cuda_proj_new(&lp->dev, lp->Pin, s->gk, in, lp->Pout, s->gk, out, err))) return e;
    if ((e = wn_cuda_proj_apply(lp->dev, X, G, s->starts, g->B, s->scale, s->tmpfeat, err))) return e;
    add_feats(g, li);
    return WN_OK;
}

/* Scores p->docs[0..nd) with the models `what` needs (M_* bits). */
static wn_err score_pass(wn_stage *st, score *s, pass *p, unsigned what)
{
    wn_err e;
    int need_ref = (what & (M_PPL | M_EXCESS)) != 0, need_base = (what & (M_EXCESS | M_EL2N | M_GRAD)) != 0;
    if (!need_ref && !need_base) return WN_OK;
    /* token offsets and the windows */
    if ((e = grow((void **)&p->off, &p->cap_off, p->nd + 1, sizeof *p->off))) return e;
    size_t tot = 0, nwin = 0;
    for (size_t i = 0; i < p->nd; i++) {
        p->off[i] = tot;
        tot += p->docs[i]->tokens.n;
    }
    p->off[p->nd] = tot;
    size_t cap = p->cap_tok;
    if ((e = grow((void **)&p->nll_ref, &cap, tot, sizeof(float)))) return e;
    cap = p->cap_tok;
    if ((e = grow((void **)&p->nll_base, &cap, tot, sizeof(float)))) return e;
    cap = p->cap_tok;
    if ((e = grow((void **)&p->el2n, &cap, tot, sizeof(float)))) return e;
    p->cap_tok = cap;
    if (what & M_GRAD) {
        double *f = wn_realloc(p->feats, (p->nd ? p->nd : 1) * (size_t)s->feat_dim * sizeof *f);
        if (!f) return WN_ERR_NOMEM;
        p->feats = f;
        memset(f, 0, p->nd * (size_t)s->feat_dim * sizeof *f);
    }
    for (size_t i = 0; i < p->nd; i++) {
        size_t n = p->docs[i]->tokens.n;
        for (size_t o = 0; o + 1 < n; o += (size_t)s->T) {
            if (nwin == s->cap_win) {
                size_t c = s->cap_win ? s->cap_win * 2 : 256;
                size_t *a = wn_realloc(s->win_doc, c * sizeof *a), *b = a ? wn_realloc(s->win_off, c * sizeof *b) : NULL;
                if (a) s->win_doc = a;
                if (b) s->win_off = b;
                int *l = b ? wn_realloc(s->win_len, c * sizeof *l) : NULL;
                if (!l) return WN_ERR_NOMEM;
                s->win_len = l;
                s->cap_win = c;
            }
            s->win_doc[nwin] = i;
            s->win_off[nwin] = o;
            s->win_len[nwin] = (int)(n - 1 - o < (size_t)s->T ? n - 1 - o : (size_t)s->T);
            nwin++;
        }
    }
    size_t bt = (size_t)s->B * s->T;
    if (bt > s->cap_bt) {
        wn_free(s->in);
        wn_free(s->tg);
        wn_free(s->w);
        wn_free(s->el2n_bt);
        s->in = wn_malloc(bt * sizeof *s->in);
        s->tg = wn_malloc(bt * sizeof *s->tg);
        s->w = wn_malloc(bt * sizeof *s->w);
        s->el2n_bt = wn_malloc(bt * sizeof *s->el2n_bt);
        if (!s->in || !s->tg || !s->w || !s->el2n_bt) { s->cap_bt = 0; return WN_ERR_NOMEM; }
        s->cap_bt = bt;
    }
    double t0 = wn_now();
    for (size_t w0 = 0; w0 < nwin; w0 += (size_t)s->B) {
        /* The model runs on B x T inputs of one shape per T: always s->B
         * windows (the last group padded with empty ones) and T the longest
         * window rounded up to a multiple of 64 (at most s->T). Matrix
         * products then see the same shapes and the same row alignment
         * whichever documents share a call, so a document's scores do not
         * depend on its neighbours in the batch: the same for any batch
         * size, thread count or number of MPI ranks. */
        int B = (int)(nwin - w0 < (size_t)s->B ? nwin - w0 : (size_t)s->B), T = 0, Bp = s->B;
        for (int b = 0; b < B; b++)
            if (s->win_len[w0 + b] > T) T = s->win_len[w0 + b];
        T = (T + 63) / 64 * 64;
        if (T > s->T) T = s->T;
        double sw = 0;
        for (size_t r = (size_t)B * T; r < (size_t)Bp * T; r++) { /* padding windows */
            s->in[r] = s->tg[r] = 0;
            s->w[r] = 0;
        }
        for (int b = 0; b < B; b++) {
            const wn_doc *d = p->docs[s->win_doc[w0 + b]];
            size_t o = s->win_off[w0 + b];
            int len = s->win_len[w0 + b];
            for (int t = 0; t < T; t++) {
                size_t r = (size_t)b * T + t;
                int real = t < len;
                s->in[r] = real ? d->tokens.p[o + t] : 0;
                s->tg[r] = real ? d->tokens.p[o + t + 1] : 0;
                s->w[r] = real ? 1.0f : 0.0f;
                sw += real;
            }
        }
        for (int which = 0; which < 2; which++) {
            model_slot *ms = which ? &s->base : &s->ref;
            if (which ? !need_base : !need_ref) continue;
            float loss;
            const float *nll;
            int on_gpu = ms->gpu != NULL;
            if (on_gpu) {
                if ((e = wn_gpt_cuda_forward(ms->gpu, s->in, s->tg, s->w, Bp, T, &loss, &st->err))) return e;
                nll = wn_gpt_cuda_token_nll(ms->gpu);
            } else {
                if ((e = wn_gpt_forward(ms->m, s->in, s->tg, s->w, Bp, T, &loss)))
                    return wn_fail(&st->err, e, "%s model forward failed (a token id beyond its vocabulary of %d?)",
                                   which ? "base" : "reference", wn_gpt_cfg(ms->m)->vocab);
                nll = wn_gpt_token_nll(ms->m);
            }
            s->flops += wn_gpt_flops_per_step(ms->m, Bp, T) / 3; /* forward: a third of forward + backward */
            float *dst = which ? p->nll_base : p->nll_ref;
            for (int b = 0; b < B; b++) {
                size_t base = p->off[s->win_doc[w0 + b]] + s->win_off[w0 + b] + 1;
                for (int t = 0; t < s->win_len[w0 + b]; t++) dst[base + t] = nll[(size_t)b * T + t];
            }
            if (which && (what & M_EL2N) && on_gpu) {
                if ((e = wn_gpt_cuda_token_el2n(ms->gpu, s->el2n_bt, &st->err))) return e;
                for (int b = 0; b < B; b++) {
                    size_t base = p->off[s->win_doc[w0 + b]] + s->win_off[w0 + b] + 1;
                    for (int t = 0; t < s->win_len[w0 + b]; t++) p->el2n[base + t] = s->el2n_bt[(size_t)b * T + t];
                }
            } else if (which && (what & M_EL2N)) {
                const float *logits = wn_gpt_logits(ms->m);
                int V = wn_gpt_cfg(ms->m)->vocab;
                for (int b = 0; b < B; b++) {
                    size_t base = p->off[s->win_doc[w0 + b]] + s->win_off[w0 + b] + 1;
                    int len = s->win_len[w0 + b];
                    wn_token_nll_el2n(logits + (size_t)b * T * V, s->tg + (size_t)b * T, len, V, s->nll_tmp,
                                      p->el2n + base);
                }
            }
            if (which && (what & M_GRAD)) {
                for (int b = 0; b <= B; b++) s->starts[b] = (int64_t)b * T; /* (padding rows have weight 0) */
                for (int b = 0; b < B; b++) {
                    const wn_doc *d = p->docs[s->win_doc[w0 + b]];
                    s->scale[b] = (float)(sw / (double)(d->tokens.n - 1));
                }
                grad_ctx g = {s, p, s->win_doc + w0, B, T, 0, WN_OK};
                if (on_gpu) {
                    if ((e = wn_gpt_cuda_backward_layers(ms->gpu, s->grad_blocks, on_layer_gpu, &g, &st->err)))
                        return e;
                } else if ((e = wn_gpt_backward_layers(ms->m, s->grad_blocks, on_layer, &g)))
                    return wn_fail(&st->err, e, "gradient features: backward failed");
                if (g.err) return wn_fail(&st->err, g.err, "gradient features: out of memory");
                s->flops += wn_gpt_flops_per_step(ms->m, Bp, T) / 3 * 2 *
                            (double)(1 + 4 * s->grad_blocks) / (double)(1 + 4 * wn_gpt_cfg(ms->m)->layers);
            }
        }
        s->windows += (uint64_t)B;
    }
    s->model_seconds += wn_now() - t0;
    return WN_OK;
}

/* ---- per-document attributes -------------------------------------------------- */

static double mean_range(const float *a, size_t from, size_t to)
{
    double sum = 0;
    for (size_t i = from; i < to; i++) sum += a[i];
    return to > from ? sum / (double)(to - from) : 0;
}

static double dot(const double *a, const double *b, int n)
{
    double s = 0;
    for (int i = 0; i < n; i++) s += a[i] * b[i];
    return s;
}

/* Attributes and per-token scores of document i of the pass. */
static wn_err annotate(score *s, pass *p, size_t i)
{
    wn_doc *d = p->docs[i];
    size_t n = d->tokens.n, o = p->off[i];
    wn_err e = WN_OK;
    if (n < 2 || !(s->methods & (M_PPL | M_EXCESS | M_EL2N | M_GRAD))) return WN_OK;
    double ref = 0, base = 0;
    if (s->methods & (M_PPL | M_EXCESS)) ref = mean_range(p->nll_ref, o + 1, o + n);
    if (s->methods & (M_EXCESS | M_EL2N | M_GRAD)) base = mean_range(p->nll_base, o + 1, o + n);
    if (has_method(s, M_PPL)) {
        double ppl = exp(ref);
        if (!e) e = attr_num(d, "ref_loss", ref);
        if (!e) e = attr_num(d, "ppl", ppl);
        sum_add(&s->stat[0], ref);
        sum_add(&s->stat[1], ppl);
        if (s->have_cuts && !e) {
            int k = ppl < s->cut_a ? 0 : ppl < s->cut_b ? 1 : 2;
            static const char *const name[3] = {"\"head\"", "\"middle\"", "\"tail\""};
            e = wn_doc_attr(d, "ppl_bucket", name[k]);
            s->bucket[k]++;
        }
    }
    if (has_method(s, M_EXCESS)) {
        if (!e) e = attr_num(d, "base_loss", base);
        if (!e) e = attr_num(d, "excess_loss", base - ref);
        sum_add(&s->stat[2], base);
        sum_add(&s->stat[3], base - ref);
    }
    if (has_method(s, M_EL2N)) {
        double v = mean_range(p->el2n, o + 1, o + n);
        if (!e) e = attr_num(d, "el2n", v);
        sum_add(&s->stat[4], v);
    }
    if (has_method(s, M_GRAD)) {
        const double *f = p->feats + i * (size_t)s->feat_dim;
        double norm = sqrt(dot(f, f, s->feat_dim)), tn = sqrt(dot(s->target_mean, s->target_mean, s->feat_dim));
        double cosv = norm > 0 && tn > 0 ? dot(f, s->target_mean, s->feat_dim) / (norm * tn) : 0;
        if (!e) e = attr_num(d, "grad_norm", norm);
        if (!e) e = attr_num(d, "grad_cos", cosv);
        sum_add(&s->stat[5], norm);
        sum_add(&s->stat[6], cosv);
    }
    if (e) return e;
    if (s->token_score != TS_NONE) {
        if ((e = wn_floats_resize(&d->tscore, n))) return e;
        d->tscore.p[0] = 0;
        for (size_t j = 1; j < n; j++)
            d->tscore.p[j] = s->token_score == TS_EXCESS ? p->nll_base[o + j] - p->nll_ref[o + j]
                             : s->token_score == TS_NLL  ? p->nll_ref[o + j]
                                                         : p->el2n[o + j];
    }
    s->docs_scored++;
    s->tokens_scored += n - 1;
    sum_add(&s->stat[10], (double)n);
    return WN_OK;
}

/* dsir and classifier: per document, in parallel (one scratch per thread). */
static wn_err text_scores(wn_stage *st, int thread, wn_doc *d)
{
    score *s = st->state;
    wn_err e = WN_OK;
    if (s->have_dsir) {
        uint64_t words = 0;
        double lw = 0;
        e = wn_dsir_logweight(&s->dsir, d->text.p, d->text.len, &s->dsir_sc[thread], &lw, &words, &s->terr[thread]);
        if (!e) e = attr_num(d, "dsir", lw);
        if (!e) e = attr_num(d, "dsir_words", (double)words);
    }
    if (s->ft && !e) {
        int got = 0;
        e = wn_ft_predict(s->ft, &s->ft_sc[thread], d->text.p, d->text.len, wn_ft_nlabels(s->ft),
                          s->ft_pred[thread], &got);
        double prob = 0;
        for (int k = 0; k < got; k++)
            if (s->ft_pred[thread][k].label == s->ft_label) prob = s->ft_pred[thread][k].prob;
        if (!e) e = attr_num(d, "classifier", prob);
    }
    return e; /* from threads: st->err is not theirs to write */
}

/* ---- target set --------------------------------------------------------------- */

typedef struct {
    wn_stage *st;
    score *s;
    wn_batch b;
    wn_err err;
} target_walk;

static wn_err target_flush(target_walk *t)
{
    score *s = t->s;
    pass *p = &s->p;
    p->nd = 0;
    if (grow((void **)&p->docs, &p->cap_docs, t->b.n + 1, sizeof *p->docs)) return WN_ERR_NOMEM;
    for (size_t i = 0; i < t->b.n; i++)
        if (t->b.docs[i].tokens.n >= 2) p->docs[p->nd++] = &t->b.docs[i];
    wn_err e = score_pass(t->st, s, p, M_GRAD);
    for (size_t i = 0; i < p->nd && !e; i++) {
        const double *f = p->feats + i * (size_t)s->feat_dim;
        double norm = sqrt(dot(f, f, s->feat_dim));
        if (norm <= 0) continue;
        for (int k = 0; k < s->feat_dim; k++) s->target_mean[k] += f[k] / norm;
        s->target_docs++;
    }
    wn_batch_reset(&t->b);
    return e;
}

static wn_err target_doc(void *ctx, wn_doc *src)
{
    target_walk *t = ctx;
    wn_doc *d = wn_batch_push(&t->b);
    if (!d) return WN_ERR_NOMEM;
    if (wn_buf_append(&d->id, src->id.p, src->id.len)) return WN_ERR_NOMEM;
    if (t->st->run->eot_id >= 0 && wn_ids_push(&d->tokens, (uint32_t)t->st->run->eot_id)) return WN_ERR_NOMEM;
    wn_err e = wn_tokenizer_encode(t->s->tctx, src->text.p, src->text.len, 0, &d->tokens);
    if (e) return wn_fail(&t->st->err, e, "cannot tokenize target document %.*s", (int)src->id.len, src->id.p);
    d->has_tokens = 1;
    return t->b.n >= 64 ? target_flush(t) : WN_OK;
}

static wn_err target_features(wn_stage *st, score *s, const char *dataset)
{
    const char *glob = wn_run_dataset(st->run, dataset);
    if (!glob) return wn_fail(&st->err, WN_ERR_MANIFEST, "score: no dataset named '%s' under datasets:", dataset);
    s->target_mean = wn_calloc((size_t)s->feat_dim, sizeof *s->target_mean);
    if (!s->target_mean) return WN_ERR_NOMEM;
    target_walk t = {st, s, {0}, WN_OK};
    double model_seconds = s->model_seconds, windows = (double)s->windows, t0 = wn_now();
    wn_err e = wn_dataset_each(glob, target_doc, &t, &st->err);
    if (!e && t.b.n) e = target_flush(&t);
    s->model_seconds = model_seconds; /* the report's rates are the stream's */
    s->windows = (uint64_t)windows;
    s->target_seconds = wn_now() - t0;
    wn_batch_free(&t.b);
    if (e) return e;
    if (!s->target_docs)
        return wn_fail(&st->err, WN_ERR_INPUT, "score: target dataset '%s' has no document of 2 or more tokens",
                       dataset);
    for (int k = 0; k < s->feat_dim; k++) s->target_mean[k] /= (double)s->target_docs;
    return WN_OK;
}

/* ---- dsir --------------------------------------------------------------------- */

typedef struct {
    wn_dsir_counts *c;
    wn_dsir_scratch *sc;
    wn_errbuf *err;
} dsir_walk;

static wn_err dsir_doc(void *ctx, wn_doc *d)
{
    dsir_walk *w = ctx;
    uint64_t words;
    return wn_dsir_counts_add_text(w->c, d->text.p, d->text.len, w->sc, &words, w->err);
}

static wn_err dsir_open(wn_stage *st, score *s)
{
    const char *tname = wn_param(st, "target")->s, *rname = wn_param(st, "raw")->s;
    if (!tname[0] || !rname[0])
        return wn_fail(&st->err, WN_ERR_MANIFEST, "score: dsir needs `target:` and `raw:` (dataset names)");
    const char *tglob = wn_run_dataset(st->run, tname), *rglob = wn_run_dataset(st->run, rname);
    if (!tglob || !rglob)
        return wn_fail(&st->err, WN_ERR_MANIFEST, "score: no dataset named '%s' under datasets:", tglob ? rname : tname);
    int m = (int)wn_param(st, "dsir_buckets")->i;
    wn_dsir_counts tc = {0}, rc = {0};
    wn_err e = wn_dsir_counts_init(&tc, (uint64_t)m, &st->err);
    if (!e) e = wn_dsir_counts_init(&rc, (uint64_t)m, &st->err);
    dsir_walk w = {&tc, &s->dsir_sc[0], &st->err};
    if (!e) e = wn_dataset_each(tglob, dsir_doc, &w, &st->err);
    w.c = &rc;
    if (!e) e = wn_dataset_each(rglob, dsir_doc, &w, &st->err);
    if (!e) e = wn_dsir_model_init(&s->dsir, &tc, &rc, wn_param(st, "dsir_laplace")->f, &st->err);
    s->have_dsir = !e;
    wn_dsir_counts_free(&tc);
    wn_dsir_counts_free(&rc);
    return e;
}

/* ---- stage methods ------------------------------------------------------------ */

static wn_err parse_methods(wn_stage *st, score *s)
{
    const char *p = wn_param(st, "methods")->s;
    while (*p) {
        size_t n = strcspn(p, ",");
        while (n && (*p == ' ')) { p++; n--; }
        size_t k = n;
        while (k && p[k - 1] == ' ') k--;
        unsigned bit = 0;
        for (size_t i = 0; i < WN_ARRAY_LEN(method_names); i++)
            if (strlen(method_names[i].name) == k && !memcmp(method_names[i].name, p, k)) bit = method_names[i].bit;
        if (!bit)
            return wn_fail(&st->err, WN_ERR_MANIFEST,
                           "score: unknown method '%.*s' (perplexity, excess_loss, el2n, gradient, dsir, classifier)",
                           (int)k, p);
        s->methods |= bit;
        p += n;
        if (*p == ',') p++;
    }
    if (!s->methods) return wn_fail(&st->err, WN_ERR_MANIFEST, "score: methods is empty");
    return WN_OK;
}

static wn_err check_vocab(wn_stage *st, const model_slot *ms, const char *name)
{
    if (wn_gpt_cfg(ms->m)->vocab < st->run->vocab_size)
        return wn_fail(&st->err, WN_ERR_MANIFEST,
                       "score: the %s model has a %d-token vocabulary, smaller than the tokenizer's %d", name,
                       wn_gpt_cfg(ms->m)->vocab, st->run->vocab_size);
    return WN_OK;
}

/* device: cuda puts the models' forward passes on the GPU (an error when
 * there is none); auto does when one is visible. */
static wn_err gpu_open(wn_stage *st, score *s)
{
    const char *dev = st->run && st->run->device ? st->run->device : "auto";
    int want = !strcmp(dev, "cuda") || (!strcmp(dev, "auto") && wn_cuda_device_count() > 0);
    if (!want || !(s->ref.m || s->base.m)) return WN_OK;
    if (!wn_cuda_built() || wn_cuda_device_count() < 1)
        return wn_fail(&st->err, WN_ERR_MANIFEST, "score: device: cuda, but %s",
                       wn_cuda_built() ? "no CUDA device is visible" : "this winnow was built without CUDA");
    model_slot *ms[2] = {&s->ref, &s->base};
    for (int i = 0; i < 2; i++) {
        if (!ms[i]->m) continue;
        wn_err e = wn_gpt_cuda_new(&ms[i]->gpu, ms[i]->m, 0, &st->err);
        if (e) return e;
    }
    snprintf(st->device_used, sizeof st->device_used, "cuda");
    return WN_OK;
}

/* batch: 0: on the GPU, the windows per forward that fit in 80% of the
 * device's free memory (after the models were uploaded) with every GPU
 * model's activations, at most 512 (beyond that the GEMMs are already
 * large and the host-side buffers only grow); 8 on the CPU, where the
 * activations live in host memory and a larger batch gains nothing. */
enum { AUTO_BATCH_CPU = 8, AUTO_BATCH_MAX = 512 };
static int auto_batch(const score *s, int T)
{
    if (!s->ref.gpu && !s->base.gpu) return AUTO_BATCH_CPU;
    size_t free_b = 0;
    if (wn_cuda_mem_info(&free_b, NULL)) return AUTO_BATCH_CPU;
    double per = 0; /* bytes per window, over the models on the GPU */
    if (s->ref.gpu) per += (double)wn_gpt_cuda_forward_bytes(wn_gpt_cfg(s->ref.m), 1, T);
    if (s->base.gpu) per += (double)wn_gpt_cuda_forward_bytes(wn_gpt_cfg(s->base.m), 1, T);
    double b = 0.8 * (double)free_b / per;
    return b < 1 ? 1 : b > AUTO_BATCH_MAX ? AUTO_BATCH_MAX : (int)b;
}

static wn_err sc_open(wn_stage *st)
{
    score *s = st->state;
    wn_err e = parse_methods(st, s);
    if (e) return e;
    int need_model = (s->methods & (M_PPL | M_EXCESS | M_EL2N | M_GRAD)) != 0;
    if (need_model && (!st->run || !st->run->vocab_size))
        return wn_fail(&st->err, WN_ERR_MANIFEST, "score: model-based methods need a tokenize stage before score");
    s->n_threads = st->threads > 0 ? st->threads : 1;
    if (st->run && st->run->vocab_size) {
        if ((e = wn_tokenizer_load(&s->tok, st->run->tokenizer, &st->err))) return e;
        if (!(s->tctx = wn_tok_ctx_new(s->tok))) return wn_fail(&st->err, WN_ERR_NOMEM, "out of memory");
    }
    const char *cuts = wn_param(st, "ppl_cuts")->s;
    if (cuts[0]) {
        if (sscanf(cuts, "%lf , %lf", &s->cut_a, &s->cut_b) != 2 || !(s->cut_a < s->cut_b))
            return wn_fail(&st->err, WN_ERR_MANIFEST, "score: ppl_cuts must be \"A,B\" with A < B, got '%s'", cuts);
        s->have_cuts = 1;
    }
    const char *ts = wn_param(st, "token_score")->s;
    s->token_score = !strcmp(ts, "none")          ? TS_NONE
                     : !strcmp(ts, "excess_loss") ? TS_EXCESS
                     : !strcmp(ts, "nll")         ? TS_NLL
                     : !strcmp(ts, "el2n")        ? TS_EL2N
                     : has_method(s, M_EXCESS)    ? TS_EXCESS
                     : has_method(s, M_PPL)       ? TS_NLL
                     : has_method(s, M_EL2N)      ? TS_EL2N
                                                  : TS_NONE;
    if ((s->token_score == TS_EXCESS && !has_method(s, M_EXCESS)) || (s->token_score == TS_NLL && !has_method(s, M_PPL)) ||
        (s->token_score == TS_EL2N && !has_method(s, M_EL2N)))
        return wn_fail(&st->err, WN_ERR_MANIFEST, "score: token_score %s needs that method in methods", ts);
    /* models */
    if (has_method(s, M_PPL | M_EXCESS)) {
        e = load_model(st, s, &s->ref, wn_param(st, "reference")->s, wn_param(st, "train_reference")->s, 1,
                       "reference", has_method(s, M_PPL) ? "perplexity" : "excess_loss");
        if (!e) e = check_vocab(st, &s->ref, "reference");
        if (e) return e;
    }
    if (has_method(s, M_EXCESS | M_EL2N | M_GRAD)) {
        e = load_model(st, s, &s->base, wn_param(st, "model")->s, wn_param(st, "train_model")->s,
                       wn_param(st, "train_sample")->f, "base",
                       has_method(s, M_EXCESS) ? "excess_loss" : has_method(s, M_GRAD) ? "gradient" : "el2n");
        if (!e) e = check_vocab(st, &s->base, "base");
        if (e) return e;
    }
    if ((e = gpu_open(st, s))) return e;
    int ctx = 1 << 30;
    if (s->ref.m) ctx = wn_gpt_cfg(s->ref.m)->context;
    if (s->base.m && wn_gpt_cfg(s->base.m)->context < ctx) ctx = wn_gpt_cfg(s->base.m)->context;
    s->T = (int)wn_param(st, "seq_len")->i;
    if (!s->T || s->T > ctx) s->T = ctx;
    s->B = (int)wn_param(st, "batch")->i;
    if (!s->B) {
        /* across ranks, the smallest: ranks sharing a GPU see different free
         * memory, and one batch shape for all keeps their scores alike */
        int64_t b = auto_batch(s, s->T);
        wn_mpi_allreduce_min_i64(&b, 1);
        s->B = (int)b;
    }
    if (need_model) {
        s->nll_tmp = wn_malloc((size_t)s->T * sizeof *s->nll_tmp);
        if (!s->nll_tmp) return WN_ERR_NOMEM;
    }
    if (has_method(s, M_GRAD)) {
        const wn_gpt_config *c = wn_gpt_cfg(s->base.m);
        s->grad_blocks = (int)wn_param(st, "grad_blocks")->i;
        if (s->grad_blocks > c->layers)
            return wn_fail(&st->err, WN_ERR_MANIFEST, "score: grad_blocks %d exceeds the base model's %d layers",
                           s->grad_blocks, c->layers);
        s->gk = (int)wn_param(st, "grad_dim")->i;
        s->grad_seed = (uint64_t)wn_param(st, "grad_seed")->i;
        s->n_layers = 1 + 4 * s->grad_blocks;
        s->feat_dim = s->n_layers * s->gk * s->gk;
        s->tmpfeat = wn_malloc((size_t)s->B * s->gk * s->gk * sizeof *s->tmpfeat);
        s->starts = wn_malloc(((size_t)s->B + 1) * sizeof *s->starts);
        s->scale = wn_malloc((size_t)s->B * sizeof *s->scale);
        if (!s->tmpfeat || !s->starts || !s->scale) return WN_ERR_NOMEM;
        const char *target = wn_param(st, "target")->s;
        if (!target[0]) return wn_fail(&st->err, WN_ERR_MANIFEST, "score: gradient needs `target:` (a dataset name)");
        double f0 = s->flops;
        if ((e = target_features(st, s, target))) return e;
        /* under MPI every rank computes the same target features: the report
         * counts them once */
        if (wn_mpi_rank()) s->flops = f0;
    }
    if (has_method(s, M_DSIR | M_CLS)) {
        s->dsir_sc = wn_calloc((size_t)s->n_threads, sizeof *s->dsir_sc);
        s->ft_sc = wn_calloc((size_t)s->n_threads, sizeof *s->ft_sc);
        s->ft_pred = wn_calloc((size_t)s->n_threads, sizeof *s->ft_pred);
        s->terr = wn_calloc((size_t)s->n_threads, sizeof *s->terr);
        if (!s->dsir_sc || !s->ft_sc || !s->ft_pred || !s->terr) return WN_ERR_NOMEM;
    }
    if (has_method(s, M_DSIR) && (e = dsir_open(st, s))) return e;
    if (has_method(s, M_CLS)) {
        const char *path = wn_param(st, "classifier")->s, *label = wn_param(st, "classifier_label")->s;
        if (!path[0]) return wn_fail(&st->err, WN_ERR_MANIFEST, "score: classifier needs `classifier:` (a fastText .bin)");
        if ((e = wn_ft_load(&s->ft, path, &st->err))) return e == WN_ERR_INPUT ? WN_ERR_MANIFEST : e;
        s->ft_label = -1;
        for (int i = 0; i < wn_ft_nlabels(s->ft); i++)
            if (!strcmp(wn_ft_label(s->ft, i), label)) s->ft_label = i;
        if (s->ft_label < 0)
            return wn_fail(&st->err, WN_ERR_MANIFEST, "score: %s has no label '%s'", path, label);
        for (int t = 0; t < s->n_threads; t++)
            if (!(s->ft_pred[t] = wn_malloc((size_t)wn_ft_nlabels(s->ft) * sizeof **s->ft_pred))) return WN_ERR_NOMEM;
    }
    return WN_OK;
}

static wn_err sc_process(wn_stage *st, wn_batch *b)
{
    score *s = st->state;
    pass *p = &s->p;
    wn_err e;
    if (s->methods & (M_PPL | M_EXCESS | M_EL2N | M_GRAD)) {
        if ((e = grow((void **)&p->docs, &p->cap_docs, b->n + 1, sizeof *p->docs))) return e;
        p->nd = 0;
        for (size_t i = 0; i < b->n; i++) {
            wn_doc *d = &b->docs[i];
            if (d->drop) continue;
            if (!d->has_tokens)
                return wn_fail(&st->err, WN_ERR_MANIFEST, "score needs tokens: put a tokenize stage before it");
            if (d->tokens.n >= 2) {
                p->docs[p->nd++] = d;
                continue;
            }
            s->docs_unscored++;
            if (s->token_score != TS_NONE) { /* no token is predicted: every score 0 */
                if ((e = wn_floats_resize(&d->tscore, d->tokens.n))) return wn_fail(&st->err, e, "out of memory");
                for (size_t j = 0; j < d->tokens.n; j++) d->tscore.p[j] = 0;
            }
        }
        if ((e = score_pass(st, s, p, s->methods))) return e;
        for (size_t i = 0; i < p->nd; i++)
            if ((e = annotate(s, p, i))) return wn_fail(&st->err, e, "out of memory");
        st->flops = s->flops;
    }
    if (s->methods & (M_DSIR | M_CLS)) {
        if ((e = wn_stage_each_doc(st, b, s->n_threads, text_scores))) return e;
        for (size_t i = 0; i < b->n; i++) {
            double v;
            if (b->docs[i].drop) continue;
            if (s->have_dsir && wn_doc_attr_num(&b->docs[i], "dsir", &v)) sum_add(&s->stat[7], v);
            if (s->have_dsir && wn_doc_attr_num(&b->docs[i], "dsir_words", &v)) sum_add(&s->stat[8], v);
            if (s->ft && wn_doc_attr_num(&b->docs[i], "classifier", &v)) sum_add(&s->stat[9], v);
        }
    }
    return WN_OK;
}

static void model_report(wn_jw *w, const char *key, const model_slot *ms)
{
    if (!ms->m) return;
    const wn_gpt_config *c = wn_gpt_cfg(ms->m);
    wn_jw_key(w, key);
    wn_jw_obj_begin(w);
    wn_jw_key(w, ms->trained ? "trained_on" : "path"); wn_jw_str(w, ms->source);
    wn_jw_key(w, "params"); wn_jw_u64(w, wn_gpt_num_params(ms->m));
    wn_jw_key(w, "layers"); wn_jw_i64(w, c->layers);
    wn_jw_key(w, "dim"); wn_jw_i64(w, c->dim);
    wn_jw_key(w, "heads"); wn_jw_i64(w, c->heads);
    wn_jw_key(w, "context"); wn_jw_i64(w, c->context);
    wn_jw_key(w, "vocab"); wn_jw_i64(w, c->vocab);
    if (ms->trained && ms->fit.seconds > 0) {
        wn_jw_key(w, "train_tokens"); wn_jw_u64(w, ms->train_tokens);
        wn_jw_key(w, "first_loss"); wn_jw_f64(w, ms->fit.first_loss);
        wn_jw_key(w, "last_loss"); wn_jw_f64(w, ms->fit.last_loss);
        wn_jw_key(w, "train_seconds"); wn_jw_f64(w, ms->fit.seconds);
        wn_jw_key(w, "train_flops"); wn_jw_f64(w, ms->fit.flops);
    }
    wn_jw_obj_end(w);
}

/* Under MPI every rank calls report: the counters and summaries become the
 * whole stream's (the sums in rank order, exact), written by rank 0. */
static void global_counts(score *s)
{
    uint64_t c[8] = {s->docs_scored, s->docs_unscored, s->tokens_scored, s->windows, s->bucket[0], s->bucket[1],
                     s->bucket[2], 0};
    wn_mpi_allreduce_sum_u64(c, 8);
    s->docs_scored = c[0], s->docs_unscored = c[1], s->tokens_scored = c[2], s->windows = c[3];
    s->bucket[0] = c[4], s->bucket[1] = c[5], s->bucket[2] = c[6];
    double f[3] = {s->flops, s->model_seconds, 0};
    wn_mpi_allreduce_sum_f64(f, 3);
    s->flops = f[0], s->model_seconds = f[1];
    uint64_t n[N_STATS];
    double mx[2 * N_STATS];
    for (int k = 0; k < N_STATS; k++) {
        n[k] = s->stat[k].n;
        mx[2 * k] = s->stat[k].n ? s->stat[k].max : -INFINITY;
        mx[2 * k + 1] = s->stat[k].n ? -s->stat[k].min : -INFINITY;
    }
    wn_mpi_allreduce_sum_u64(n, N_STATS);
    wn_mpi_allreduce_max_f64(mx, 2 * N_STATS);
    __int128 sums[N_STATS];
    for (int k = 0; k < N_STATS; k++) sums[k] = s->stat[k].sum;
    wn_buf all = {0};
    uint64_t *counts = wn_calloc((size_t)wn_mpi_size(), sizeof *counts);
    if (counts && !wn_mpi_allgatherv(sums, sizeof sums, &all, counts) && all.len == sizeof sums * wn_mpi_size()) {
        for (int k = 0; k < N_STATS; k++) s->stat[k].sum = 0;
        for (int q = 0; q < wn_mpi_size(); q++) {
            __int128 x[N_STATS];
            memcpy(x, all.p + (size_t)q * sizeof x, sizeof x);
            for (int k = 0; k < N_STATS; k++) s->stat[k].sum += x[k];
        }
    }
    wn_free(counts);
    wn_buf_free(&all);
    for (int k = 0; k < N_STATS; k++) {
        s->stat[k].n = n[k];
        s->stat[k].max = mx[2 * k];
        s->stat[k].min = -mx[2 * k + 1];
    }
}

static void sc_report(wn_stage *st, wn_jw *w)
{
    score *s = st->state;
    if (wn_mpi_size() > 1) global_counts(s);
    st->flops = s->flops;
    wn_jw_key(w, "methods");
    wn_jw_arr_begin(w);
    for (size_t i = 0; i < WN_ARRAY_LEN(method_names); i++)
        if (has_method(s, method_names[i].bit)) wn_jw_str(w, method_names[i].name);
    wn_jw_arr_end(w);
    wn_jw_key(w, "docs_scored"); wn_jw_u64(w, s->docs_scored);
    wn_jw_key(w, "docs_unscored"); wn_jw_u64(w, s->docs_unscored);
    wn_jw_key(w, "tokens_scored"); wn_jw_u64(w, s->tokens_scored);
    wn_jw_key(w, "windows"); wn_jw_u64(w, s->windows);
    wn_jw_key(w, "window_tokens"); wn_jw_i64(w, s->T);
    wn_jw_key(w, "batch"); wn_jw_i64(w, s->B);
    wn_jw_key(w, "model_seconds"); wn_jw_f64(w, s->model_seconds);
    wn_jw_key(w, "scored_tokens_per_s");
    wn_jw_f64(w, s->model_seconds > 0 ? (double)s->tokens_scored / s->model_seconds : 0);
    wn_jw_key(w, "flops"); wn_jw_f64(w, s->flops);
    wn_jw_key(w, "flops_note"); wn_jw_str(w, "estimated: 2N per token per forward, 4N per backward, N = parameters");
    model_report(w, "reference_model", &s->ref);
    model_report(w, "base_model", &s->base);
    if (has_method(s, M_GRAD)) {
        wn_jw_key(w, "gradient");
        wn_jw_obj_begin(w);
        wn_jw_key(w, "layers"); wn_jw_i64(w, s->n_layers);
        wn_jw_key(w, "features"); wn_jw_i64(w, s->feat_dim);
        wn_jw_key(w, "target_docs"); wn_jw_u64(w, s->target_docs);
        wn_jw_key(w, "target_seconds"); wn_jw_f64(w, s->target_seconds);
        wn_jw_obj_end(w);
    }
    if (s->have_cuts) {
        wn_jw_key(w, "ppl_buckets");
        wn_jw_obj_begin(w);
        wn_jw_key(w, "head"); wn_jw_u64(w, s->bucket[0]);
        wn_jw_key(w, "middle"); wn_jw_u64(w, s->bucket[1]);
        wn_jw_key(w, "tail"); wn_jw_u64(w, s->bucket[2]);
        wn_jw_obj_end(w);
    }
    wn_jw_key(w, "scores");
    wn_jw_obj_begin(w);
    for (int k = 0; k < N_STATS; k++) {
        const summary *m = &s->stat[k];
        if (!m->n) continue;
        wn_jw_key(w, stat_names[k]);
        wn_jw_obj_begin(w);
        wn_jw_key(w, "n"); wn_jw_u64(w, m->n);
        wn_jw_key(w, "mean"); wn_jw_f64(w, (double)m->sum / SUM_SCALE / (double)m->n);
        wn_jw_key(w, "min"); wn_jw_f64(w, m->min);
        wn_jw_key(w, "max"); wn_jw_f64(w, m->max);
        wn_jw_obj_end(w);
    }
    wn_jw_obj_end(w);
}

static void sc_close(wn_stage *st)
{
    score *s = st->state;
    wn_gpt_cuda_free(s->ref.gpu);
    wn_gpt_cuda_free(s->base.gpu);
    wn_gpt_free(s->ref.m);
    wn_gpt_free(s->base.m);
    for (int i = 0; i < MAX_LAYERS; i++) {
        wn_free(s->proj[i].Pin);
        wn_free(s->proj[i].Pout);
        wn_cuda_proj_free(s->proj[i].dev);
    }
    wn_kron_scratch_free(&s->ks);
    wn_free(s->tmpfeat);
    wn_free(s->starts);
    wn_free(s->scale);
    wn_free(s->nll_tmp);
    wn_free(s->el2n_bt);
    wn_free(s->target_mean);
    if (s->have_dsir) wn_dsir_model_free(&s->dsir);
    for (int t = 0; s->dsir_sc && t < s->n_threads; t++) wn_dsir_scratch_free(&s->dsir_sc[t]);
    wn_free(s->dsir_sc);
    for (int t = 0; s->ft_sc && t < s->n_threads; t++) wn_ft_scratch_free(&s->ft_sc[t]);
    wn_free(s->ft_sc);
    for (int t = 0; s->ft_pred && t < s->n_threads; t++) wn_free(s->ft_pred[t]);
    wn_free(s->ft_pred);
    wn_free(s->terr);
    wn_ft_free(s->ft);
    wn_tok_ctx_free(s->tctx);
    wn_tokenizer_free(s->tok);
    wn_free(s->p.docs);
    wn_free(s->p.off);
    wn_free(s->p.nll_ref);
    wn_free(s->p.nll_base);
    wn_free(s->p.el2n);
    wn_free(s->p.feats);
    wn_free(s->win_doc);
    wn_free(s->win_off);
    wn_free(s->win_len);
    wn_free(s->in);
    wn_free(s->tg);
    wn_free(s->w);
}

/* A random selection needs no scores: the experiment's baseline leaves the
 * stage out. */
static const char *sc_baseline(const wn_value *values)
{
    (void)values;
    return "-";
}

const wn_stage_def wn_stage_score = {
    .name = "score",
    .summary = "value scores per document and token: perplexity, excess loss, EL2N, gradients, DSIR, classifier",
    .doc = "Scores every document for the select stage to rank by, with the bundled GPT as reference and\n"
           "proxy model (given as safetensors, or trained inside the run on a named dataset), DSIR hashed\n"
           "n-gram importance weights, or a fastText classifier. Adds attributes under \"winnow\" (ref_loss,\n"
           "ppl, ppl_bucket, base_loss, excess_loss, el2n, grad_norm, grad_cos, dsir, dsir_words,\n"
           "classifier) and a per-token score (excess loss, nll or EL2N) that select uses at token level.\n"
           "Report extras: methods, docs_scored, tokens_scored, scored_tokens_per_s, flops, the models\n"
           "(with training losses when trained in the run), score summaries, ppl buckets.",
    .params = params,
    .n_params = WN_ARRAY_LEN(params),
    .state_size = sizeof(score),
    .open = sc_open,
    .process = sc_process,
    .report = sc_report,
    .close = sc_close,
    .baseline = sc_baseline,
};
