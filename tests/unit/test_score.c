/*
 * test_score.c - the score stage against brute force on tiny models:
 * per-token losses against separate forward passes per window, excess loss
 * against two models' forwards, gradient features against the explicit
 * gradient (from the ordinary full backward) projected with an explicit
 * dense Kronecker product, thread-count independence, and models trained
 * inside the run (cached and reused).
 */
#include "../stage_harness.h"
#include "../test.h"

#include <math.h>
#include <omp.h>
#include <stdlib.h>

#include "fs.h"
#include "gradproj.h"
#include "model.h"
#include "safetensors.h"
#include "tokenizer.h"

enum { V = 4096, CTX = 16, WIN = 8 };

typedef struct {
    char dir[64];
    char ref[128], base[128], target[128];
    wn_run_info run;
    const char *names[1], *paths[1];
} fixture;

static wn_gpt *tiny(uint64_t seed)
{
    wn_gpt_config c = {V, CTX, 2, 2, 16};
    wn_gpt *m = NULL;
    wn_errbuf err;
    return wn_gpt_new(&m, &c, seed, &err) ? NULL : m;
}

static int fixture_init(fixture *f)
{
    memset(f, 0, sizeof *f);
    snprintf(f->dir, sizeof f->dir, "/tmp/wn-score-XXXXXX");
    if (!mkdtemp(f->dir)) return 0;
    snprintf(f->ref, sizeof f->ref, "%s/ref.safetensors", f->dir);
    snprintf(f->base, sizeof f->base, "%s/base.safetensors", f->dir);
    snprintf(f->target, sizeof f->target, "%s/target.jsonl", f->dir);
    wn_errbuf err;
    wn_gpt *r = tiny(1), *b = tiny(2);
    int ok = r && b && !wn_st_gpt_save(r, f->ref, NULL, 0, &err) && !wn_st_gpt_save(b, f->base, NULL, 0, &err);
    wn_gpt_free(r);
    wn_gpt_free(b);
    const char *t = "{\"id\":\"t1\",\"text\":\"The bread rises slowly in a warm kitchen.\"}\n"
                    "{\"id\":\"t2\",\"text\":\"Birds sing at dawn near the river bank.\"}\n";
    ok = ok && !wn_write_atomic(f->target, t, strlen(t), &err);
    f->run.run_dir = f->dir;
    f->run.vocab_size = V;
    f->run.eot_id = 0;
    snprintf(f->run.tokenizer, sizeof f->run.tokenizer, "samples/tokenizer.json");
    f->names[0] = "target";
    f->paths[0] = f->target;
    f->run.dataset_names = f->names;
    f->run.dataset_paths = f->paths;
    f->run.n_datasets = 1;
    return ok;
}

static void fixture_free(fixture *f)
{
    if (f->dir[0]) wn_rm_tree(f->dir, NULL);
}

/* Documents with token counts 1, 2, 5, 8, 9, 20 (one to three windows). */
static void make_docs(wn_batch *b)
{
    static const int lens[] = {1, 2, 5, 8, 9, 20};
    uint64_t x = 42;
    for (size_t i = 0; i < WN_ARRAY_LEN(lens); i++) {
        wn_doc *d = wn_batch_push(b);
        char id[16];
        snprintf(id, sizeof id, "d%zu", i);
        wn_buf_puts(&d->id, id);
        wn_buf_puts(&d->text, "x");
        d->has_tokens = 1;
        wn_ids_push(&d->tokens, 0);
        for (int k = 1; k < lens[i]; k++) wn_ids_push(&d->tokens, (uint32_t)(wn_splitmix64(&x) % V));
    }
}

static wn_err run_stage(wn_test_stage *h, fixture *f, const char *params, wn_batch *b)
{
    memset(h, 0, sizeof *h);
    h->st.run = &f->run;
    wn_err e = wn_test_stage_open(h, "score", params, 2);
    if (e) return e;
    return h->st.def->process(&h->st, b);
}

/* Per-token nll of document d under m, window by window as the stage
 * defines it; nll[j] is the loss of token j (j >= 1). */
static void brute_nll(wn_gpt *m, const wn_doc *d, double *nll)
{
    size_t n = d->tokens.n;
    for (size_t o = 0; o + 1 < n; o += WIN) {
        int len = (int)(n - 1 - o < WIN ? n - 1 - o : WIN);
        float loss;
        if (wn_gpt_forward(m, d->tokens.p + o, d->tokens.p + o + 1, NULL, 1, len, &loss)) return;
        const float *l = wn_gpt_token_nll(m);
        for (int t = 0; t < len; t++) nll[o + 1 + t] = l[t];
    }
}

static int close_rel(double a, double b, double tol) { return fabs(a - b) <= tol * (fabs(b) > 1 ? fabs(b) : 1); }

TEST(score_perplexity_and_excess_loss_match_separate_forwards)
{
    fixture f;
    CHECK(fixture_init(&f));
    wn_batch b = {0};
    make_docs(&b);
    wn_test_stage h;
    char params[512];
    snprintf(params, sizeof params, "methods: 'perplexity,excess_loss', reference: %s, model: %s, seq_len: %d, batch: 3",
             f.ref, f.base, WIN);
    CHECK_EQ_INT(run_stage(&h, &f, params, &b), WN_OK);
    wn_errbuf err;
    wn_gpt *r = NULL, *m = NULL;
    CHECK(!wn_st_gpt_load_file(&r, f.ref, 0, &err) && !wn_st_gpt_load_file(&m, f.base, 0, &err));
    for (size_t i = 0; r && m && i < b.n; i++) {
        const wn_doc *d = &b.docs[i];
        double ref_loss, ppl, ex;
        if (d->tokens.n < 2) {
            CHECK(!wn_doc_attr_num(d, "ppl", &ppl)); /* nothing predicted: no model scores, token scores 0 */
            CHECK_EQ_INT(d->tscore.n, d->tokens.n);
            CHECK(!d->tscore.n || d->tscore.p[0] == 0);
            continue;
        }
        double nr[32] = {0}, nb[32] = {0}, sr = 0, sb = 0;
        brute_nll(r, d, nr);
        brute_nll(m, d, nb);
        CHECK_EQ_INT(d->tscore.n, d->tokens.n);
        CHECK(d->tscore.n && d->tscore.p[0] == 0);
        for (size_t j = 1; j < d->tokens.n; j++) {
            sr += nr[j];
            sb += nb[j];
            CHECK(j >= d->tscore.n || close_rel(d->tscore.p[j], nb[j] - nr[j], 1e-4));
        }
        double k = (double)(d->tokens.n - 1);
        CHECK(wn_doc_attr_num(d, "ref_loss", &ref_loss) && close_rel(ref_loss, sr / k, 1e-5));
        CHECK(wn_doc_attr_num(d, "ppl", &ppl) && close_rel(ppl, exp(sr / k), 1e-5));
        CHECK(wn_doc_attr_num(d, "excess_loss", &ex) && close_rel(ex, (sb - sr) / k, 1e-4));
    }
    wn_gpt_free(r);
    wn_gpt_free(m);
    wn_test_stage_close(&h);
    wn_batch_free(&b);
    fixture_free(&f);
}

/* ---- gradient features against the explicit gradient ---------------------- */

typedef struct {
    double *head; /* C x V explicit LM-head gradient, accumulated */
    double scale;
    int C, Vv;
    const float *wte, *logits;
    const uint32_t *targets;
    int len;
    int bad;
} head_cap;

static void capture_head(void *ctx, const char *name, const float *X, const float *G, int N, int in, int out)
{
    head_cap *h = ctx;
    if (strcmp(name, "lm_head")) return;
    for (int t = 0; t < N; t++) {
        /* X is ln_f's output: X wte^T reproduces the logits; G = (softmax - onehot) / len */
        for (int v = 0; v < out; v += 97) {
            double z = 0;
            for (int c = 0; c < in; c++) z += (double)X[(size_t)t * in + c] * h->wte[(size_t)v * in + c];
            if (fabs(z - h->logits[(size_t)t * out + v]) > 1e-4) h->bad = 1;
        }
        double mx = -1e30, se = 0;
        for (int v = 0; v < out; v++) mx = fmax(mx, h->logits[(size_t)t * out + v]);
        for (int v = 0; v < out; v++) se += exp(h->logits[(size_t)t * out + v] - mx);
        for (int v = 0; v < out; v += 131) {
            double p = exp(h->logits[(size_t)t * out + v] - mx) / se - (v == (int)h->targets[t]);
            if (fabs(p / h->len - G[(size_t)t * out + v]) > 1e-6) h->bad = 1;
        }
        for (int c = 0; c < in; c++)
            for (int v = 0; v < out; v++)
                h->head[(size_t)c * out + v] += h->scale * X[(size_t)t * in + c] * G[(size_t)t * out + v];
    }
}

/* f (k x k) = P_in dW P_out^T with explicit loops. */
static void dense_project(const double *dW, int in, int out, int k, uint64_t seed, int li, double *f)
{
    float *Pin = malloc((size_t)k * in * sizeof *Pin), *Pout = malloc((size_t)k * out * sizeof *Pout);
    wn_rademacher(Pin, k, in, seed, 2 * (uint64_t)li);
    wn_rademacher(Pout, k, out, seed, 2 * (uint64_t)li + 1);
    double *tmp = calloc((size_t)k * out, sizeof *tmp);
    for (int a = 0; a < k; a++)
        for (int i = 0; i < in; i++)
            for (int o = 0; o < out; o++) tmp[(size_t)a * out + o] += Pin[(size_t)a * in + i] * dW[(size_t)i * out + o];
    for (int a = 0; a < k; a++)
        for (int c = 0; c < k; c++) {
            double s = 0;
            for (int o = 0; o < out; o++) s += tmp[(size_t)a * out + o] * Pout[(size_t)c * out + o];
            f[(size_t)a * k + c] = s;
        }
    free(tmp);
    free(Pin);
    free(Pout);
}

/* The explicit projected gradient of d's mean token loss: LM head + top block. */
static void brute_features(wn_gpt *m, const wn_doc *d, int k, uint64_t seed, double *feat, int *bad)
{
    const wn_gpt_config *c = wn_gpt_cfg(m);
    int C = c->dim, L = c->layers;
    size_t n = d->tokens.n;
    wn_tensor *ts;
    int nt = wn_gpt_tensors(m, &ts);
    static const char *const lname[4] = {"mlp.c_proj", "mlp.c_fc", "attn.c_proj", "attn.c_attn"};
    size_t sizes[4] = {(size_t)4 * C * C, (size_t)C * 4 * C, (size_t)C * C, (size_t)C * 3 * C};
    double *dW[4];
    for (int i = 0; i < 4; i++) dW[i] = calloc(sizes[i], sizeof(double));
    head_cap hc = {calloc((size_t)C * c->vocab, sizeof(double)), 0, C, c->vocab, ts[0].data, NULL, NULL, 0, 0};
    for (size_t o = 0; o + 1 < n; o += WIN) {
        int len = (int)(n - 1 - o < WIN ? n - 1 - o : WIN);
        double scale = (double)len / (double)(n - 1); /* window mean -> document mean */
        float loss;
        wn_gpt_forward(m, d->tokens.p + o, d->tokens.p + o + 1, NULL, 1, len, &loss);
        wn_gpt_zero_grad(m);
        wn_gpt_backward(m);
        for (int i = 0; i < 4; i++) {
            char name[64];
            snprintf(name, sizeof name, "h.%d.%s.weight", L - 1, lname[i]);
            for (int t = 0; t < nt; t++)
                if (!strcmp(ts[t].name, name))
                    for (size_t e = 0; e < sizes[i]; e++) dW[i][e] += scale * ts[t].grad[e];
        }
        hc.scale = scale;
        hc.logits = wn_gpt_logits(m);
        hc.targets = d->tokens.p + o + 1;
        hc.len = len;
        wn_gpt_backward_layers(m, 0, capture_head, &hc);
    }
    size_t kk = (size_t)k * k;
    dense_project(hc.head, C, c->vocab, k, seed, 0, feat);
    int ins[4] = {4 * C, C, C, C}, outs[4] = {C, 4 * C, C, 3 * C};
    for (int i = 0; i < 4; i++) dense_project(dW[i], ins[i], outs[i], k, seed, 1 + i, feat + (1 + i) * kk);
    *bad |= hc.bad;
    for (int i = 0; i < 4; i++) free(dW[i]);
    free(hc.head);
}

static double vdot(const double *a, const double *b, size_t n)
{
    double s = 0;
    for (size_t i = 0; i < n; i++) s += a[i] * b[i];
    return s;
}

TEST(score_gradient_features_match_explicit_gradient)
{
    fixture f;
    CHECK(fixture_init(&f));
    wn_batch b = {0};
    make_docs(&b);
    wn_test_stage h;
    char params[512];
    enum { K = 4, SEED = 7 };
    snprintf(params, sizeof params,
             "methods: gradient, model: %s, target: target, seq_len: %d, batch: 4, grad_dim: %d, grad_seed: %d", f.base,
             WIN, K, SEED);
    CHECK_EQ_INT(run_stage(&h, &f, params, &b), WN_OK);
    wn_errbuf err;
    wn_gpt *m = NULL;
    CHECK(!wn_st_gpt_load_file(&m, f.base, 0, &err));
    size_t dim = 5 * K * K;
    /* the target mean: the same brute force over the target set's documents */
    double *tmean = calloc(dim, sizeof *tmean), *feat = calloc(dim, sizeof *feat);
    int bad = 0;
    wn_tokenizer *tok = NULL;
    CHECK(!wn_tokenizer_load(&tok, "samples/tokenizer.json", &err));
    const char *texts[2] = {"The bread rises slowly in a warm kitchen.", "Birds sing at dawn near the river bank."};
    wn_tok_ctx *tc = tok ? wn_tok_ctx_new(tok) : NULL;
    for (int i = 0; tc && m && i < 2; i++) {
        wn_doc d = {0};
        wn_ids_push(&d.tokens, 0);
        wn_tokenizer_encode(tc, texts[i], strlen(texts[i]), 0, &d.tokens);
        brute_features(m, &d, K, SEED, feat, &bad);
        double nrm = sqrt(vdot(feat, feat, dim));
        for (size_t k = 0; k < dim; k++) tmean[k] += feat[k] / nrm / 2;
        wn_ids_free(&d.tokens);
    }
    for (size_t i = 0; m && i < b.n; i++) {
        const wn_doc *d = &b.docs[i];
        double norm, cosv;
        if (d->tokens.n < 2) {
            CHECK(!wn_doc_attr_num(d, "grad_norm", &norm));
            continue;
        }
        brute_features(m, d, K, SEED, feat, &bad);
        double bn = sqrt(vdot(feat, feat, dim));
        double bc = vdot(feat, tmean, dim) / (bn * sqrt(vdot(tmean, tmean, dim)));
        CHECK(wn_doc_attr_num(d, "grad_norm", &norm));
        CHECK(wn_doc_attr_num(d, "grad_cos", &cosv));
        if (!close_rel(norm, bn, 1e-3) || fabs(cosv - bc) > 1e-3) {
            fprintf(stderr, "  doc %zu: grad_norm %.7g vs %.7g, grad_cos %.7g vs %.7g\n", i, norm, bn, cosv, bc);
            CHECK(0);
        }
    }
    CHECK(!bad); /* the LM head's X and G are ln_f's output and (softmax - onehot) / n */
    wn_tok_ctx_free(tc);
    wn_tokenizer_free(tok);
    free(tmean);
    free(feat);
    wn_gpt_free(m);
    wn_test_stage_close(&h);
    wn_batch_free(&b);
    fixture_free(&f);
}

/* Attributes and token scores as one string per document. */
static void dump(const wn_batch *b, wn_buf *out)
{
    for (size_t i = 0; i < b->n; i++) {
        wn_buf_append(out, b->docs[i].attrs.p ? b->docs[i].attrs.p : "", b->docs[i].attrs.len);
        for (size_t j = 0; j < b->docs[i].tscore.n; j++) wn_buf_printf(out, " %a", b->docs[i].tscore.p[j]);
        wn_buf_putc(out, '\n');
    }
}

TEST(score_does_not_depend_on_threads)
{
    fixture f;
    CHECK(fixture_init(&f));
    wn_buf out[2] = {{0}, {0}};
    int saved = omp_get_max_threads();
    for (int k = 0; k < 2; k++) {
        omp_set_num_threads(k ? 2 : 1);
        wn_batch b = {0};
        make_docs(&b);
        wn_test_stage h;
        char params[512];
        snprintf(params, sizeof params,
                 "methods: 'perplexity,excess_loss,el2n,gradient', reference: %s, model: %s, target: target, "
                 "seq_len: %d, grad_dim: 4",
                 f.ref, f.base, WIN);
        CHECK_EQ_INT(run_stage(&h, &f, params, &b), WN_OK);
        dump(&b, &out[k]);
        wn_test_stage_close(&h);
        wn_batch_free(&b);
    }
    omp_set_num_threads(saved);
    CHECK(out[0].len > 0 && out[0].len == out[1].len && !memcmp(out[0].p, out[1].p, out[0].len));
    wn_buf_free(&out[0]);
    wn_buf_free(&out[1]);
    fixture_free(&f);
}

TEST(score_trains_reference_in_run_and_reuses_it)
{
    fixture f;
    CHECK(fixture_init(&f));
    wn_buf out[2] = {{0}, {0}};
    char cache[256];
    snprintf(cache, sizeof cache, "%s/models/reference.safetensors", f.dir);
    for (int k = 0; k < 2; k++) {
        wn_batch b = {0};
        make_docs(&b);
        wn_test_stage h;
        CHECK_EQ_INT(run_stage(&h, &f,
                               "methods: perplexity, train_reference: target, train_steps: 5, train_layers: 1, "
                               "train_dim: 16, train_heads: 2, train_context: 16, train_batch: 2",
                               &b),
                     WN_OK);
        CHECK(wn_exists(cache));
        dump(&b, &out[k]);
        wn_test_stage_close(&h);
        wn_batch_free(&b);
    }
    CHECK(out[0].len > 0 && out[0].len == out[1].len && !memcmp(out[0].p, out[1].p, out[0].len));
    wn_buf_free(&out[0]);
    wn_buf_free(&out[1]);
    fixture_free(&f);
}

TEST(score_rejects_bad_configuration)
{
    fixture f;
    CHECK(fixture_init(&f));
    static const char *const bad[] = {
        "methods: 'perplexity,bogus'",
        "methods: perplexity",                         /* no reference */
        "methods: gradient, model: /nonexistent.safetensors, target: target",
        "methods: perplexity, train_reference: nosuchset",
        "methods: perplexity, reference: REF, ppl_cuts: '5,2'",
        "methods: perplexity, reference: REF, token_score: el2n",
        "methods: dsir, target: target",               /* no raw */
    };
    for (size_t i = 0; i < WN_ARRAY_LEN(bad); i++) {
        char params[512];
        const char *p = strstr(bad[i], "REF");
        if (p) snprintf(params, sizeof params, "%.*s%s%s", (int)(p - bad[i]), bad[i], f.ref, p + 3);
        else snprintf(params, sizeof params, "%s", bad[i]);
        wn_test_stage h;
        memset(&h, 0, sizeof h);
        h.st.run = &f.run;
        wn_err e = wn_test_stage_open(&h, "score", params, 1);
        if (e == WN_OK || !h.st.err.msg[0]) {
            fprintf(stderr, "  accepted or no message: %s\n", params);
            CHECK(0);
        }
        wn_test_stage_close(&h);
    }
    fixture_free(&f);
}
