/*
 * cmd_experiment.c - `winnow experiment MANIFEST`: does the manifest's
 * selection train a better model per token than a random selection of the
 * same size from the same pool?
 *
 * Arms (each a pipeline run, then `seeds` training runs):
 *   selected   the manifest as written, in RUN_DIR (the manifest's workdir);
 *   <name>     each `experiment.arms` entry: the manifest with the selecting
 *              stage's parameters overridden (another score, order, ...), in
 *              RUN_DIR/experiment/arms/<name>;
 *   random     the baseline: stages whose baseline is "-" (scoring) left out,
 *              the selecting stage turned into a uniform random selection of
 *              the tokens the selected run kept (stage.h), in
 *              RUN_DIR/experiment/arms/random.
 * Runs share RUN_DIR/experiment/cache, so models a score stage trains are
 * trained once. Every arm then trains the bundled GPT from scratch on its
 * train shards (its loss weights included) with the same model, schedule
 * and seeds (seed s: initialisation and data order), and is evaluated every
 * eval_every steps on the `eval` dataset (held out: never used by the
 * pipeline), tokenized with the run's tokenizer into
 * RUN_DIR/experiment/eval/eval_000000.bin.
 *
 * Output: RUN_DIR/experiment.json (schema in README "Experiments")
 * and a table on stdout: final held-out loss mean and sample standard
 * deviation over seeds per arm, the margin over random in units of the
 * larger spread, and the tokens each arm's mean curve needs to reach
 * random's final mean loss.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "dataloader.h"
#include "dataset.h"
#include "fs.h"
#include "json.h"
#include "manifest.h"
#include "model.h"
#include "run.h"
#include "shard.h"
#include "tokenizer.h"

static const char usage[] =
    "usage: winnow experiment MANIFEST [--threads N] [--no-progress] [--reuse]\n"
    "\n"
    "Runs the manifest (its selection), each extra arm of its `experiment:` section, and a uniformly\n"
    "random selection of the same token count from the same pool; trains the bundled GPT from scratch\n"
    "on each with several seeds and evaluates on the held-out `experiment.eval` dataset. Writes\n"
    "RUN_DIR/experiment.json and prints final losses, spreads and tokens-to-reach.\n"
    "\n"
    "  --threads N     OpenMP threads (results do not depend on it)\n"
    "  --no-progress   no per-stage progress lines\n"
    "  --reuse         reuse arms' finished pipeline runs (their run.json says complete); train only\n";

enum { MAX_ARMS = 66 };

typedef struct {
    char name[128];
    char dir[4400];
    uint64_t tokens;      /* train tokens in its shards */
    double *loss;         /* seeds x n_points */
    double final_mean, final_std;
    double reach;         /* tokens the mean curve needs to reach random's final mean; < 0: never */
    double *bfinal;       /* n_budgets x seeds: final held-out loss of each budget's runs */
    int fitted;           /* L(D) = E + Bc D^-beta fitted to the budgets' mean losses */
    double E, Bc, beta;
} arm;

typedef struct {
    wn_manifest *m;
    const wn_value *x; /* experiment values */
    int seeds, steps, B, T, eval_every, n_points;
    int *point_step;
    int budget_steps[64]; /* the sweep (experiment.budgets), ascending; the last is steps */
    int n_budgets;
    arm arms[MAX_ARMS];
    int n_arms;
    char root[4096];
    char eval_glob[4700];
    int vocab;
    wn_run_opts ro;
} exper;

static int fail(wn_err e, const wn_errbuf *err)
{
    fprintf(stderr, "winnow experiment: %s\n", err->msg[0] ? err->msg : wn_err_name(e));
    return 1;
}

/* ---- pipeline runs ---------------------------------------------------------- */

static int run_complete(const char *dir)
{
    char path[4500];
    wn_buf b = {0};
    snprintf(path, sizeof path, "%s/run.json", dir);
    int ok = !wn_read_file(path, &b, NULL) && b.p && strstr(b.p, "\"complete\"");
    wn_buf_free(&b);
    return ok;
}

/* Applies "key: value, key: value" (with {tokens}/{docs} substituted) to
 * stage `stage`. */
static wn_err apply_overrides(wn_manifest *m, int stage, const char *spec, uint64_t tokens, uint64_t docs,
                              wn_errbuf *err)
{
    char buf[2048], val[256];
    snprintf(buf, sizeof buf, "%s", spec);
    for (char *save = NULL, *item = strtok_r(buf, ",", &save); item; item = strtok_r(NULL, ",", &save)) {
        char *colon = strchr(item, ':');
        if (!colon) return wn_fail(err, WN_ERR_INTERNAL, "bad baseline override '%s'", item);
        *colon = 0;
        char *k = item, *v = colon + 1;
        while (*k == ' ') k++;
        while (*v == ' ') v++;
        for (char *e = k + strlen(k); e > k && e[-1] == ' '; e--) e[-1] = 0;
        for (char *e = v + strlen(v); e > v && e[-1] == ' '; e--) e[-1] = 0;
        if (!strcmp(v, "{tokens}")) snprintf(val, sizeof val, "%llu", (unsigned long long)tokens);
        else if (!strcmp(v, "{docs}")) snprintf(val, sizeof val, "%llu", (unsigned long long)docs);
        else if (!strcmp(v, "''")) val[0] = 0;
        else snprintf(val, sizeof val, "%s", v);
        wn_err e = wn_manifest_override(m, stage, k, val, err);
        if (e) return e;
    }
    return WN_OK;
}

/* tokens_out and docs_out of the selecting stage's report in run dir. */
static wn_err stage_out(const char *dir, const wn_manifest *m, int stage, uint64_t *tokens, uint64_t *docs,
                        wn_errbuf *err)
{
    char path[4600];
    snprintf(path, sizeof path, "%s/stages/%02d-%s/report.json", dir, stage + 1, m->stages[stage].def->name);
    wn_buf b = {0};
    wn_err e = wn_read_file(path, &b, err);
    wn_span v;
    int64_t t = 0, d = 0;
    if (!e && (!wn_json_get(b.p, b.len, "tokens_out", &v) || !wn_json_to_i64(v, &t) ||
               !wn_json_get(b.p, b.len, "docs_out", &v) || !wn_json_to_i64(v, &d)))
        e = wn_fail(err, WN_ERR_STATE, "%s: no tokens_out/docs_out", path);
    wn_buf_free(&b);
    *tokens = (uint64_t)t;
    *docs = (uint64_t)d;
    return e;
}

/* Runs arm k's pipeline: 0 = selected, 1..n_arms = extra arms, last = random. */
static wn_err run_arm(exper *x, const char *manifest, int kind, const wn_exp_arm *extra, uint64_t tokens,
                      uint64_t docs, int reuse, wn_errbuf *err)
{
    arm *a = &x->arms[x->n_arms];
    wn_manifest *m = NULL;
    wn_err e = wn_manifest_load(&m, manifest, err);
    if (e) return e;
    int sel = wn_manifest_selecting_stage(m);
    if (kind == 0) {
        snprintf(a->name, sizeof a->name, "selected");
        snprintf(a->dir, sizeof a->dir, "%s", m->workdir);
    } else {
        const char *name = kind == 1 ? extra->name : "random";
        snprintf(a->name, sizeof a->name, "%s", name);
        snprintf(a->dir, sizeof a->dir, "%.4000s/experiment/arms/%.128s", x->root, name);
        e = wn_manifest_set_workdir(m, a->dir, err);
    }
    if (!e && kind == 1)
        for (int i = 0; i < extra->n && !e; i++) e = wn_manifest_override(m, sel, extra->keys[i], extra->vals[i], err);
    if (!e && kind == 2) {
        /* the random baseline: scoring left out, selection uniform */
        const char *spec = m->stages[sel].def->baseline(m->stages[sel].values);
        if (!(e = apply_overrides(m, sel, spec, tokens, docs, err))) {
            for (int i = m->n_stages - 1; i >= 0; i--) {
                const wn_stage_def *d = m->stages[i].def;
                const char *b = d->baseline ? d->baseline(m->stages[i].values) : NULL;
                if (b && !strcmp(b, "-")) wn_manifest_remove_stage(m, i);
            }
        }
    }
    if (!e) {
        if (reuse && run_complete(a->dir)) {
            fprintf(stderr, "winnow experiment: arm %s: reusing %s\n", a->name, a->dir);
        } else {
            fprintf(stderr, "winnow experiment: arm %s: running the pipeline into %s\n", a->name, a->dir);
            e = wn_run(m, &x->ro, err);
        }
    }
    wn_manifest_free(m);
    if (!e) x->n_arms++;
    return e;
}

/* ---- the held-out set ---------------------------------------------------------- */

typedef struct {
    wn_tok_ctx *ctx;
    int64_t eot;
    wn_ids ids;
    wn_errbuf *err;
} eval_tok;

static wn_err eval_doc(void *p, wn_doc *d)
{
    eval_tok *t = p;
    if (t->eot >= 0 && wn_ids_push(&t->ids, (uint32_t)t->eot)) return WN_ERR_NOMEM;
    wn_err e = wn_tokenizer_encode(t->ctx, d->text.p, d->text.len, 0, &t->ids);
    if (e) return wn_fail(t->err, e, "cannot tokenize eval document %.*s", (int)d->id.len, d->id.p);
    return WN_OK;
}

/* Tokenizes the eval dataset with the selected run's tokenizer (from its
 * shards/index.json) into one shard. */
static wn_err make_eval(exper *x, wn_errbuf *err)
{
    char path[4600];
    snprintf(path, sizeof path, "%s/shards/index.json", x->arms[0].dir);
    wn_buf idx = {0}, tokpath = {0};
    wn_err e = wn_read_file(path, &idx, err);
    wn_span v;
    int64_t eot = -1, vocab = 0;
    if (!e && (!wn_json_get(idx.p, idx.len, "tokenizer", &v) || wn_json_decode_string(v, &tokpath) || !tokpath.p))
        e = wn_fail(err, WN_ERR_STATE, "%s: no tokenizer (does the pipeline end in a pack stage?)", path);
    if (!e && wn_json_get(idx.p, idx.len, "eot", &v)) wn_json_to_i64(v, &eot);
    if (!e && wn_json_get(idx.p, idx.len, "vocab_size", &v)) wn_json_to_i64(v, &vocab);
    wn_buf_free(&idx);
    const char *name = x->x[WN_EXP_EVAL].s, *glob = NULL;
    for (int i = 0; !e && i < x->m->n_datasets; i++)
        if (!strcmp(x->m->datasets[i].name, name)) glob = x->m->datasets[i].path;
    if (!e && !glob) e = wn_fail(err, WN_ERR_MANIFEST, "%s: experiment.eval: no dataset named '%s'", x->m->file, name);
    wn_tokenizer *tk = NULL;
    eval_tok t = {0};
    t.eot = eot;
    t.err = err;
    if (!e) e = wn_tokenizer_load(&tk, tokpath.p, err);
    if (!e && !(t.ctx = wn_tok_ctx_new(tk))) e = WN_ERR_NOMEM;
    if (!e) e = wn_dataset_each(glob, eval_doc, &t, err);
    char dir[4500];
    snprintf(dir, sizeof dir, "%s/experiment/eval", x->root);
    if (!e) e = wn_mkdir_p(dir, err);
    snprintf(path, sizeof path, "%s/eval_000000.bin", dir);
    if (!e && t.ids.n < (size_t)x->T + 1)
        e = wn_fail(err, WN_ERR_INPUT, "eval dataset '%s': %zu tokens, fewer than one sequence of %d", name, t.ids.n,
                    x->T + 1);
    if (!e) {
        wn_shard_writer w;
        int bytes = vocab > 65536 ? 4 : 2;
        e = wn_shard_writer_open(&w, path, bytes, 0, err);
        if (!e) e = wn_shard_writer_put(&w, t.ids.p, t.ids.n, err);
        if (!e) e = wn_shard_writer_close(&w, err);
    }
    snprintf(x->eval_glob, sizeof x->eval_glob, "%s", path);
    x->vocab = (int)vocab;
    wn_ids_free(&t.ids);
    wn_tok_ctx_free(t.ctx);
    wn_tokenizer_free(tk);
    wn_buf_free(&tokpath);
    return e;
}

/* ---- training ------------------------------------------------------------------ */

static wn_err eval_loss(wn_gpt *m, wn_loader *ev, int B, int T, uint32_t *in, uint32_t *tg, float *w, double *out,
                        wn_errbuf *err)
{
    double sum = 0, n = 0;
    wn_loader_rewind(ev);
    int got;
    while ((got = wn_loader_next(ev, B, in, tg, w)) > 0) {
        float l;
        wn_err e = wn_gpt_forward(m, in, tg, NULL, got, T, &l);
        if (e) return wn_fail(err, e, "evaluation forward failed");
        sum += (double)l * got * T;
        n += (double)got * T;
    }
    *out = n > 0 ? sum / n : 0;
    return WN_OK;
}

/* One training run of arm a with seed `seed` for `steps` steps (the
 * schedule ends there). With curve (n_points), evaluates at x->point_step;
 * else only at the end. *final gets the last held-out loss. */
static wn_err train_run(exper *x, arm *a, wn_loader *ev, uint64_t seed, int steps, double *curve, double *final,
                        wn_errbuf *err)
{
    char glob[4800];
    snprintf(glob, sizeof glob, "%s/shards/train_*.bin", a->dir);
    int B = x->B, T = x->T;
    uint32_t *in = wn_malloc((size_t)B * T * sizeof *in), *tg = wn_malloc((size_t)B * T * sizeof *tg);
    float *w = wn_malloc((size_t)B * T * sizeof *w);
    wn_err e = in && tg && w ? WN_OK : wn_fail(err, WN_ERR_NOMEM, "out of memory");
    wn_loader *tr = NULL;
    wn_gpt *m = NULL;
    wn_gpt_config c = {x->vocab, T, (int)x->x[WN_EXP_LAYERS].i, (int)x->x[WN_EXP_HEADS].i, (int)x->x[WN_EXP_DIM].i};
    if (!e) e = wn_loader_open(&tr, glob, T, 1, seed, err);
    if (!e) {
        a->tokens = wn_loader_num_tokens(tr);
        e = wn_gpt_new(&m, &c, seed, err);
    }
    int has_w = tr ? wn_loader_has_weights(tr) : 0;
    float lr = (float)x->x[WN_EXP_LR].f;
    wn_adamw adam = {0, 0.9f, 0.95f, 1e-8f, 0.1f};
    int p = 0;
    for (int step = 0; step <= steps && !e; step++) {
        if (curve && p < x->n_points && x->point_step[p] == step) {
            e = eval_loss(m, ev, B, T, in, tg, w, &curve[p], err);
            p++;
        }
        if (e) break;
        if (step == steps) {
            e = eval_loss(m, ev, B, T, in, tg, w, final, err);
            break;
        }
        adam.lr = wn_lr_schedule(step, steps / 10, steps, lr, lr / 10);
        wn_loader_next(tr, B, in, tg, w);
        float loss;
        wn_gpt_zero_grad(m);
        if ((e = wn_gpt_forward(m, in, tg, has_w ? w : NULL, B, T, &loss))) {
            e = wn_fail(err, e, "training forward failed");
            break;
        }
        if ((e = wn_gpt_backward(m))) break;
        wn_gpt_clip_grad(m, 1.0f);
        wn_gpt_adamw(m, &adam, step + 1);
        if (!isfinite(loss)) e = wn_fail(err, WN_ERR_INPUT, "arm %s seed %llu: the loss diverged", a->name,
                                         (unsigned long long)seed);
    }
    wn_gpt_free(m);
    wn_loader_free(tr);
    wn_free(in);
    wn_free(tg);
    wn_free(w);
    return e;
}

static void mean_std(const double *v, int n, double *mean, double *std)
{
    double s = 0, q = 0;
    for (int i = 0; i < n; i++) s += v[i];
    *mean = n ? s / n : 0;
    for (int i = 0; i < n; i++) q += (v[i] - *mean) * (v[i] - *mean);
    *std = n > 1 ? sqrt(q / (n - 1)) : 0;
}

/* Fits L(D) = E + B D^-beta to n points by least squares with E >= 0 and
 * B > 0: beta on a grid (0.01 .. 3 by 0.001), E and B in closed form for
 * each (E = 0 when the free fit puts it below). 0 when n < 3 or no fit
 * exists. */
static int fit_power(const double *D, const double *L, int n, double *E, double *Bc, double *beta)
{
    if (n < 3) return 0;
    double best = INFINITY;
    for (double b = 0.01; b <= 3.0 + 1e-9; b += 0.001) {
        double sx = 0, sy = 0, sxx = 0, sxy = 0;
        for (int i = 0; i < n; i++) {
            double xv = pow(D[i], -b);
            sx += xv;
            sy += L[i];
            sxx += xv * xv;
            sxy += xv * L[i];
        }
        double den = n * sxx - sx * sx;
        if (!(fabs(den) > 0)) continue;
        double bb = (n * sxy - sx * sy) / den, ee = (sy - bb * sx) / n;
        if (ee < 0) { /* the floor cannot be negative: E = 0, B by least squares */
            ee = 0;
            bb = sxy / sxx;
        }
        if (!(bb > 0)) continue;
        double sse = 0;
        for (int i = 0; i < n; i++) {
            double r = L[i] - (ee + bb * pow(D[i], -b));
            sse += r * r;
        }
        if (sse < best) {
            best = sse;
            *E = ee;
            *Bc = bb;
            *beta = b;
        }
    }
    return isfinite(best);
}

/* Tokens D at which E + B D^-beta reaches loss l (INFINITY when never). */
static double tokens_for_loss(double E, double B, double beta, double l)
{
    return l > E ? pow(B / (l - E), 1 / beta) : INFINITY;
}

static wn_err train_arm(exper *x, arm *a, wn_errbuf *err)
{
    a->loss = wn_calloc((size_t)x->seeds * x->n_points, sizeof *a->loss);
    a->bfinal = wn_calloc((size_t)x->seeds * x->n_budgets, sizeof *a->bfinal);
    wn_err e = a->loss && a->bfinal ? WN_OK : wn_fail(err, WN_ERR_NOMEM, "out of memory");
    wn_loader *ev = NULL;
    if (!e) e = wn_loader_open(&ev, x->eval_glob, x->T, 0, 0, err);
    for (int s = 0; s < x->seeds && !e; s++) {
        double t0 = wn_now(), final = 0;
        double *curve = &a->loss[(size_t)s * x->n_points];
        e = train_run(x, a, ev, (uint64_t)s + 1, x->steps, curve, &final, err);
        if (e) break;
        fprintf(stderr, "winnow experiment: arm %s, seed %d: held-out loss %.4f -> %.4f (%.1f s)\n", a->name, s + 1,
                curve[0], curve[x->n_points - 1], wn_now() - t0);
        /* the budget sweep: shorter runs, each with its own schedule */
        for (int k = 0; k < x->n_budgets && !e; k++) {
            double *f = &a->bfinal[(size_t)k * x->seeds + s];
            if (x->budget_steps[k] == x->steps) {
                *f = curve[x->n_points - 1];
                continue;
            }
            e = train_run(x, a, ev, (uint64_t)s + 1, x->budget_steps[k], NULL, f, err);
            if (!e)
                fprintf(stderr, "winnow experiment: arm %s, seed %d, %d steps: held-out loss %.4f\n", a->name, s + 1,
                        x->budget_steps[k], *f);
        }
    }
    wn_loader_free(ev);
    if (e) return e;
    double *fin = wn_malloc((size_t)x->seeds * sizeof *fin);
    if (!fin) return wn_fail(err, WN_ERR_NOMEM, "out of memory");
    for (int s = 0; s < x->seeds; s++) fin[s] = a->loss[(size_t)s * x->n_points + x->n_points - 1];
    mean_std(fin, x->seeds, &a->final_mean, &a->final_std);
    wn_free(fin);
    /* the scaling fit: on the means, and per seed for the spread */
    double D[64], L[64];
    for (int k = 0; k < x->n_budgets; k++) {
        D[k] = (double)x->budget_steps[k] * x->B * x->T;
        double sd;
        mean_std(&a->bfinal[(size_t)k * x->seeds], x->seeds, &L[k], &sd);
    }
    a->fitted = fit_power(D, L, x->n_budgets, &a->E, &a->Bc, &a->beta);
    return WN_OK;
}

/* ---- report ---------------------------------------------------------------------- */

static double mean_at(const exper *x, const arm *a, int p)
{
    double s = 0;
    for (int k = 0; k < x->seeds; k++) s += a->loss[(size_t)k * x->n_points + p];
    return s / x->seeds;
}

/* The arm's budget sweep: points, the fit, predictions at 10x and 100x the
 * largest budget (mean and spread of per-seed fits), and against random the
 * effective data multiplier: random tokens needed for the arm's loss, per
 * arm token (from random's fitted curve). */
static void arm_scaling(wn_jw *w, const exper *x, const arm *a, const arm *rnd)
{
    double D[64], L[64], S[64];
    for (int k = 0; k < x->n_budgets; k++) {
        D[k] = (double)x->budget_steps[k] * x->B * x->T;
        mean_std(&a->bfinal[(size_t)k * x->seeds], x->seeds, &L[k], &S[k]);
    }
    wn_jw_key(w, "scaling");
    wn_jw_obj_begin(w);
    wn_jw_key(w, "points"); /* [tokens, mean, std] */
    wn_jw_arr_begin(w);
    for (int k = 0; k < x->n_budgets; k++) {
        wn_jw_arr_begin(w);
        wn_jw_f64(w, D[k]);
        wn_jw_f64(w, L[k]);
        wn_jw_f64(w, S[k]);
        wn_jw_arr_end(w);
    }
    wn_jw_arr_end(w);
    wn_jw_key(w, "fit");
    if (!a->fitted) {
        wn_jw_null(w);
        wn_jw_obj_end(w);
        return;
    }
    wn_jw_obj_begin(w);
    wn_jw_key(w, "form"); wn_jw_str(w, "L(D) = E + B * D^-beta");
    wn_jw_key(w, "E"); wn_jw_f64(w, a->E);
    wn_jw_key(w, "B"); wn_jw_f64(w, a->Bc);
    wn_jw_key(w, "beta"); wn_jw_f64(w, a->beta);
    double sse = 0;
    for (int k = 0; k < x->n_budgets; k++) {
        double r = L[k] - (a->E + a->Bc * pow(D[k], -a->beta));
        sse += r * r;
    }
    wn_jw_key(w, "rmse"); wn_jw_f64(w, sqrt(sse / x->n_budgets));
    wn_jw_key(w, "at_grid_bound"); wn_jw_bool(w, a->beta < 0.0105 || a->beta > 2.9995);
    wn_jw_obj_end(w);
    /* per-seed fits give the spread of the extrapolations */
    double dmax = D[x->n_budgets - 1];
    static const double mult[2] = {10, 100};
    wn_jw_key(w, "predicted");
    wn_jw_obj_begin(w);
    for (int j = 0; j < 2; j++) {
        double pred[256];
        int np = 0;
        for (int sd = 0; sd < x->seeds && np < 256; sd++) {
            double Ls[64], E, B, beta;
            for (int k = 0; k < x->n_budgets; k++) Ls[k] = a->bfinal[(size_t)k * x->seeds + sd];
            if (fit_power(D, Ls, x->n_budgets, &E, &B, &beta)) pred[np++] = E + B * pow(mult[j] * dmax, -beta);
        }
        double m, sdv;
        mean_std(pred, np, &m, &sdv);
        wn_jw_key(w, j ? "100x" : "10x");
        wn_jw_obj_begin(w);
        wn_jw_key(w, "tokens"); wn_jw_f64(w, mult[j] * dmax);
        wn_jw_key(w, "loss"); wn_jw_f64(w, a->E + a->Bc * pow(mult[j] * dmax, -a->beta));
        wn_jw_key(w, "seed_fits"); wn_jw_i64(w, np);
        wn_jw_key(w, "seed_spread"); wn_jw_f64(w, sdv);
        wn_jw_obj_end(w);
    }
    wn_jw_obj_end(w);
    if (a != rnd && rnd->fitted) {
        wn_jw_key(w, "effective_data_multiplier");
        wn_jw_obj_begin(w);
        wn_jw_key(w, "definition");
        wn_jw_str(w, "random tokens that reach this arm's loss (random's fitted curve) per token of this arm");
        wn_jw_key(w, "at_budgets");
        wn_jw_arr_begin(w);
        for (int k = 0; k < x->n_budgets; k++) {
            double dr = tokens_for_loss(rnd->E, rnd->Bc, rnd->beta, L[k]);
            if (isfinite(dr)) wn_jw_f64(w, dr / D[k]);
            else wn_jw_null(w);
        }
        wn_jw_arr_end(w);
        double dr = tokens_for_loss(rnd->E, rnd->Bc, rnd->beta, L[x->n_budgets - 1]);
        wn_jw_key(w, "at_largest");
        if (isfinite(dr)) wn_jw_f64(w, dr / dmax);
        else wn_jw_null(w); /* below random's fitted floor E: more than any amount of random data */
        wn_jw_obj_end(w);
    }
    wn_jw_obj_end(w);
}

/* seeds, final_loss, final_loss_mean, final_loss_std, tokens_to_match_random */
static void arm_pinned(wn_jw *w, const exper *x, const arm *a)
{
    wn_jw_key(w, "seeds");
    wn_jw_arr_begin(w);
    for (int s = 0; s < x->seeds; s++) wn_jw_i64(w, s + 1);
    wn_jw_arr_end(w);
    wn_jw_key(w, "final_loss");
    wn_jw_arr_begin(w);
    for (int s = 0; s < x->seeds; s++) wn_jw_f64(w, a->loss[(size_t)s * x->n_points + x->n_points - 1]);
    wn_jw_arr_end(w);
    wn_jw_key(w, "final_loss_mean"); wn_jw_f64(w, a->final_mean);
    wn_jw_key(w, "final_loss_std"); wn_jw_f64(w, a->final_std);
    if (strcmp(a->name, "random")) {
        wn_jw_key(w, "tokens_to_match_random");
        if (a->reach >= 0) wn_jw_f64(w, a->reach);
        else wn_jw_null(w);
    }
}

static wn_err write_report(exper *x, wn_errbuf *err)
{
    const arm *rnd = &x->arms[x->n_arms - 1];
    double per_step = (double)x->B * x->T;
    for (int i = 0; i < x->n_arms; i++) {
        arm *a = &x->arms[i];
        a->reach = -1;
        for (int p = 0; p < x->n_points; p++)
            if (mean_at(x, a, p) <= rnd->final_mean) {
                a->reach = x->point_step[p] * per_step;
                break;
            }
    }
    wn_buf out = {0};
    wn_jw w;
    wn_jw_init(&w, &out, 1);
    wn_jw_obj_begin(&w);
    wn_jw_key(&w, "manifest"); wn_jw_str(&w, x->m->file);
    wn_jw_key(&w, "target"); wn_jw_str(&w, x->x[WN_EXP_EVAL].s);
    wn_jw_key(&w, "eval_tokens_file"); wn_jw_str(&w, x->eval_glob);
    wn_jw_key(&w, "model");
    wn_jw_obj_begin(&w);
    wn_jw_key(&w, "layers"); wn_jw_i64(&w, x->x[WN_EXP_LAYERS].i);
    wn_jw_key(&w, "dim"); wn_jw_i64(&w, x->x[WN_EXP_DIM].i);
    wn_jw_key(&w, "heads"); wn_jw_i64(&w, x->x[WN_EXP_HEADS].i);
    wn_jw_key(&w, "context"); wn_jw_i64(&w, x->T);
    wn_jw_key(&w, "vocab"); wn_jw_i64(&w, x->vocab);
    wn_jw_obj_end(&w);
    wn_jw_key(&w, "steps"); wn_jw_i64(&w, x->steps);
    wn_jw_key(&w, "batch"); wn_jw_i64(&w, x->B);
    wn_jw_key(&w, "lr"); wn_jw_f64(&w, x->x[WN_EXP_LR].f);
    wn_jw_key(&w, "seeds_per_arm"); wn_jw_i64(&w, x->seeds);
    wn_jw_key(&w, "train_tokens_per_run"); wn_jw_f64(&w, x->steps * per_step);
    wn_jw_key(&w, "arms");
    wn_jw_arr_begin(&w);
    for (int i = 0; i < x->n_arms; i++) {
        const arm *a = &x->arms[i];
        wn_jw_obj_begin(&w);
        wn_jw_key(&w, "name"); wn_jw_str(&w, a->name);
        wn_jw_key(&w, "run_dir"); wn_jw_str(&w, a->dir);
        wn_jw_key(&w, "tokens"); wn_jw_u64(&w, a->tokens);
        if (i != x->n_arms - 1) {
            double spread = fmax(a->final_std, rnd->final_std);
            wn_jw_key(&w, "margin_over_random"); wn_jw_f64(&w, rnd->final_mean - a->final_mean);
            wn_jw_key(&w, "margin_in_spreads");
            if (spread > 0) wn_jw_f64(&w, (rnd->final_mean - a->final_mean) / spread);
            else wn_jw_null(&w);
            wn_jw_key(&w, "reach_fraction");
            if (a->reach >= 0) wn_jw_f64(&w, a->reach / (x->steps * per_step));
            else wn_jw_null(&w);
            wn_jw_key(&w, "goal_met"); /* > 3 spreads better, and random's loss within 60% of the tokens */
            wn_jw_bool(&w, spread > 0 && rnd->final_mean - a->final_mean > 3 * spread && a->reach >= 0 &&
                               a->reach <= 0.6 * x->steps * per_step);
        }
        arm_pinned(&w, x, a);
        if (x->n_budgets > 1) arm_scaling(&w, x, a, rnd);
        wn_jw_key(&w, "curves");
        wn_jw_arr_begin(&w);
        for (int s = 0; s < x->seeds; s++) {
            wn_jw_obj_begin(&w);
            wn_jw_key(&w, "seed"); wn_jw_i64(&w, s + 1);
            wn_jw_key(&w, "curve");
            wn_jw_arr_begin(&w);
            for (int p = 0; p < x->n_points; p++) {
                wn_jw_arr_begin(&w);
                wn_jw_i64(&w, x->point_step[p]);
                wn_jw_f64(&w, x->point_step[p] * per_step);
                wn_jw_f64(&w, a->loss[(size_t)s * x->n_points + p]);
                wn_jw_arr_end(&w);
            }
            wn_jw_arr_end(&w);
            wn_jw_key(&w, "final_loss"); wn_jw_f64(&w, a->loss[(size_t)s * x->n_points + x->n_points - 1]);
            wn_jw_obj_end(&w);
        }
        wn_jw_arr_end(&w);
        wn_jw_obj_end(&w);
    }
    wn_jw_arr_end(&w);
    /* DESIGN.md's pinned form: one object per arm with tokens, seeds,
     * final_loss (per seed), final_loss_mean, final_loss_std and, for the
     * others than random, tokens_to_match_random */
    for (int i = 0; i < x->n_arms; i++) {
        wn_jw_key(&w, x->arms[i].name);
        wn_jw_obj_begin(&w);
        wn_jw_key(&w, "tokens"); wn_jw_u64(&w, x->arms[i].tokens);
        arm_pinned(&w, x, &x->arms[i]);
        wn_jw_obj_end(&w);
    }
    wn_jw_obj_end(&w);
    wn_buf_putc(&out, '\n');
    char path[4600];
    snprintf(path, sizeof path, "%s/experiment.json", x->root);
    wn_err e = out.p ? wn_write_atomic(path, out.p, out.len, err) : WN_ERR_NOMEM;
    wn_buf_free(&out);
    if (e) return e;
    printf("experiment: %s, held-out set '%s', %d seeds x %d steps x %d x %d tokens\n", x->m->file,
           x->x[WN_EXP_EVAL].s, x->seeds, x->steps, x->B, x->T);
    printf("%-16s %12s %10s %9s %9s %16s\n", "arm", "pool tokens", "final", "std", "spreads", "reach random");
    for (int i = 0; i < x->n_arms; i++) {
        const arm *a = &x->arms[i];
        double spread = fmax(a->final_std, rnd->final_std);
        char sp[32] = "-", rc[48] = "never";
        if (i != x->n_arms - 1 && spread > 0) snprintf(sp, sizeof sp, "%+.1f", (rnd->final_mean - a->final_mean) / spread);
        if (a->reach >= 0) snprintf(rc, sizeof rc, "%.0f (%.0f%%)", a->reach, 100 * a->reach / (x->steps * per_step));
        printf("%-16s %12llu %10.4f %9.4f %9s %16s\n", a->name, (unsigned long long)a->tokens, a->final_mean,
               a->final_std, sp, rc);
    }
    if (x->n_budgets > 1) {
        printf("\nbudget sweep (%d budgets; fit L(D) = E + B D^-beta to the mean final losses):\n", x->n_budgets);
        for (int i = 0; i < x->n_arms; i++) {
            const arm *a = &x->arms[i];
            printf("%-16s", a->name);
            for (int k = 0; k < x->n_budgets; k++) {
                double m, sd;
                mean_std(&a->bfinal[(size_t)k * x->seeds], x->seeds, &m, &sd);
                printf(" %.0f:%.4f", (double)x->budget_steps[k] * per_step, m);
            }
            if (a->fitted) printf("  E %.3f B %.4g beta %.3f", a->E, a->Bc, a->beta);
            if (a != rnd && a->fitted && rnd->fitted) {
                double dmax = (double)x->budget_steps[x->n_budgets - 1] * per_step, m, sd;
                mean_std(&a->bfinal[(size_t)(x->n_budgets - 1) * x->seeds], x->seeds, &m, &sd);
                double dr = tokens_for_loss(rnd->E, rnd->Bc, rnd->beta, m);
                if (isfinite(dr)) printf("  effective data multiplier %.2fx", dr / dmax);
                else printf("  effective data multiplier: beyond random's fitted floor");
            }
            printf("\n");
        }
    }
    printf("report: %s\n", path);
    return WN_OK;
}

static int cmp_int(const void *a, const void *b) { return (*(const int *)a > *(const int *)b) - (*(const int *)a < *(const int *)b); }

/* experiment.budgets: fractions of steps -> distinct step counts, ascending,
 * always ending with steps itself. */
static wn_err parse_budgets(exper *x, wn_errbuf *err)
{
    const char *p = x->x[WN_EXP_BUDGETS].s;
    x->n_budgets = 0;
    while (*p) {
        char *end;
        double f = strtod(p, &end);
        if (end == p || !(f > 0 && f <= 1))
            return wn_fail(err, WN_ERR_MANIFEST, "%s: experiment.budgets: expected fractions in (0, 1] separated by "
                           "commas, got '%s'", x->m->file, x->x[WN_EXP_BUDGETS].s);
        int steps = (int)lround(f * x->steps);
        if (steps < 1) steps = 1;
        if (x->n_budgets == 63) return wn_fail(err, WN_ERR_MANIFEST, "experiment.budgets: at most 63 budgets");
        x->budget_steps[x->n_budgets++] = steps;
        p = end;
        while (*p == ' ' || *p == ',') p++;
    }
    x->budget_steps[x->n_budgets++] = x->steps;
    qsort(x->budget_steps, (size_t)x->n_budgets, sizeof *x->budget_steps, cmp_int);
    int k = 0;
    for (int i = 0; i < x->n_budgets; i++)
        if (!k || x->budget_steps[i] != x->budget_steps[k - 1]) x->budget_steps[k++] = x->budget_steps[i];
    x->n_budgets = k;
    return WN_OK;
}

int wn_cmd_experiment(int argc, char **argv)
{
    const char *manifest = NULL;
    int reuse = 0;
    exper x = {0};
    x.ro.progress = -1;
    for (int i = 0; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            fputs(usage, stdout);
            return 0;
        } else if (!strcmp(argv[i], "--no-progress")) x.ro.progress = 0;
        else if (!strcmp(argv[i], "--reuse")) reuse = 1;
        else if (!strcmp(argv[i], "--threads") && i + 1 < argc) {
            char *end;
            long t = strtol(argv[++i], &end, 10);
            if (*end || t < 1 || t > 4096) {
                fprintf(stderr, "winnow experiment: --threads: bad value '%s'\n%s", argv[i], usage);
                return 2;
            }
            x.ro.threads = (int)t;
        } else if (argv[i][0] == '-' || manifest) {
            fprintf(stderr, "winnow experiment: unexpected argument '%s'\n%s", argv[i], usage);
            return 2;
        } else manifest = argv[i];
    }
    if (!manifest) {
        fprintf(stderr, "winnow experiment: a MANIFEST is required\n%s", usage);
        return 2;
    }
    wn_errbuf err = {{0}};
    wn_err e = wn_manifest_load(&x.m, manifest, &err);
    if (!e && !x.m->experiment)
        e = wn_fail(&err, WN_ERR_MANIFEST, "%s: no experiment: section (see README \"Experiments\")", manifest);
    if (e) {
        wn_manifest_free(x.m);
        return fail(e, &err);
    }
    x.x = x.m->experiment;
    x.seeds = (int)x.x[WN_EXP_SEEDS].i;
    x.steps = (int)x.x[WN_EXP_STEPS].i;
    x.B = (int)x.x[WN_EXP_BATCH].i;
    x.T = (int)x.x[WN_EXP_CONTEXT].i;
    x.eval_every = (int)x.x[WN_EXP_EVAL_EVERY].i;
    if (x.m->n_arms + 2 > MAX_ARMS) e = wn_fail(&err, WN_ERR_MANIFEST, "at most %d extra arms", MAX_ARMS - 2);
    snprintf(x.root, sizeof x.root, "%s", x.m->workdir);
    char cache[4500];
    snprintf(cache, sizeof cache, "%s/experiment/cache", x.root);
    x.ro.cache_dir = cache;
    /* evaluation points: 0, every eval_every steps, and the end */
    x.point_step = wn_malloc(((size_t)x.steps / (size_t)x.eval_every + 2) * sizeof *x.point_step);
    if (!x.point_step) e = WN_ERR_NOMEM;
    for (int s = 0; !e && s < x.steps; s += x.eval_every) x.point_step[x.n_points++] = s;
    if (!e) x.point_step[x.n_points++] = x.steps;
    if (!e) e = parse_budgets(&x, &err);
    /* the pipelines: selected first (a fresh run clears RUN_DIR/experiment), then the arms, then random */
    uint64_t tokens = 0, docs = 0;
    if (!e) e = run_arm(&x, manifest, 0, NULL, 0, 0, reuse, &err);
    int sel = e ? -1 : wn_manifest_selecting_stage(x.m);
    if (!e) e = stage_out(x.arms[0].dir, x.m, sel, &tokens, &docs, &err);
    for (int i = 0; !e && i < x.m->n_arms; i++) e = run_arm(&x, manifest, 1, &x.m->arms[i], 0, 0, reuse, &err);
    if (!e) e = run_arm(&x, manifest, 2, NULL, tokens, docs, reuse, &err);
    if (!e) e = make_eval(&x, &err);
    for (int i = 0; !e && i < x.n_arms; i++) e = train_arm(&x, &x.arms[i], &err);
    if (!e) e = write_report(&x, &err);
    for (int i = 0; i < x.n_arms; i++) {
        wn_free(x.arms[i].loss);
        wn_free(x.arms[i].bfinal);
    }
    wn_free(x.point_step);
    wn_manifest_free(x.m);
    return e ? fail(e, &err) : 0;
}
