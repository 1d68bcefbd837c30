/*
 * test_model.c - unit tests for model.c: configuration checks, tensor
 * layout and initialisation, the tiled matrix product against its naive
 * reference, a finite-difference check of every parameter tensor in double
 * precision, the float model against PyTorch (tests/fixtures/gpt_tiny.bin),
 * bit-identical results for 1, 2 and 3 threads, AdamW, clipping and the
 * learning-rate schedule against hand computations, memorisation of a short
 * sequence, and sampling.
 *
 * The double-precision model is model.c itself built a second time in this
 * translation unit with WN_MODEL_DOUBLE (see model.c's header): its API is
 * named wn64_* and its wn_real is double.
 */
#include "../test.h"
#include "model.h"

#include <math.h>
#include <stdlib.h>

#define WN_MODEL_DOUBLE 1
#include "../../src/model.c"
#undef WN_MODEL_DOUBLE

/* Reproducible test data: uniforms in [0, 1) and normals. */
static double urand(uint64_t *s) { return (double)(wn_splitmix64(s) >> 11) * 0x1.0p-53; }
static double nrand(uint64_t *s)
{
    double u1 = urand(s) + 0x1.0p-54, u2 = urand(s);
    return sqrt(-2.0 * log(u1)) * cos(2.0 * 3.14159265358979323846 * u2);
}

/* |got - ref| <= abs + rel |ref|; prints the first few mismatches and
 * keeps the largest |got - ref| / (abs + rel |ref|) seen in tol_used. */
static double tol_used;
static int close_enough(const char *what, size_t i, double got, double ref, double abs_tol, double rel_tol,
                        int *nbad)
{
    double r = fabs(got - ref) / (abs_tol + rel_tol * fabs(ref));
    if (r > tol_used || r != r) tol_used = r;
    if (r <= 1) return 1;
    if ((*nbad)++ < 5) fprintf(stderr, "  %s[%zu]: got %.9g, want %.9g (diff %.3g)\n", what, i, got, ref, got - ref);
    return 0;
}

TEST(model_config_validation)
{
    static const struct {
        wn_gpt_config c;
        const char *msg;
    } bad[] = {
        {{0, 8, 1, 2, 8}, "vocab"},    {{11, 0, 1, 2, 8}, "context"}, {{11, 8, 0, 2, 8}, "layers"},
        {{11, 8, 1, 2, 0}, "dim"},     {{11, 8, 1, 3, 8}, "heads"},   {{11, 8, 1, 0, 8}, "heads"},
        {{11, 8, 1, 16, 8}, "heads"},
    };
    for (size_t i = 0; i < WN_ARRAY_LEN(bad); i++) {
        wn_gpt *m = (wn_gpt *)1;
        wn_errbuf err = {{0}};
        CHECK_EQ_INT(wn_gpt_new(&m, &bad[i].c, 1, &err), WN_ERR_USAGE);
        CHECK(m == NULL);
        CHECK(strstr(err.msg, bad[i].msg) != NULL);
    }
    /* out of memory at every allocation: an error, no leak (ASan) */
    wn_gpt_config c = {11, 8, 2, 2, 8};
    for (long k = 1;; k++) {
        wn_gpt *m = NULL;
        wn_alloc_fail_after(k);
        wn_err e = wn_gpt_new(&m, &c, 1, NULL);
        wn_alloc_fail_after(-1);
        if (e == WN_OK) {
            wn_gpt_free(m);
            break;
        }
        CHECK_EQ_INT(e, WN_ERR_NOMEM);
        CHECK(m == NULL);
    }
    wn_gpt_free(NULL);
}

TEST(model_tensor_layout_and_init)
{
    wn_gpt_config c = {50, 16, 3, 4, 32};
    wn_gpt *m, *m2, *m3;
    CHECK_EQ_INT(wn_gpt_new(&m, &c, 42, NULL), WN_OK);
    CHECK_EQ_INT(wn_gpt_new(&m2, &c, 42, NULL), WN_OK);
    CHECK_EQ_INT(wn_gpt_new(&m3, &c, 43, NULL), WN_OK);
    wn_tensor *t, *t2, *t3;
    int n = wn_gpt_tensors(m, &t);
    wn_gpt_tensors(m2, &t2);
    wn_gpt_tensors(m3, &t3);
    CHECK_EQ_INT(n, 2 + 12 * 3 + 2);
    CHECK_EQ_STR(t[0].name, "wte.weight");
    CHECK_EQ_STR(t[1].name, "wpe.weight");
    CHECK_EQ_STR(t[2].name, "h.0.ln_1.weight");
    CHECK_EQ_STR(t[4].name, "h.0.attn.c_attn.weight");
    CHECK_EQ_STR(t[2 + 12 + 11].name, "h.1.mlp.c_proj.bias");
    CHECK_EQ_STR(t[n - 2].name, "ln_f.weight");
    CHECK_EQ_STR(t[n - 1].name, "ln_f.bias");
    CHECK(t[4].ndim == 2 && t[4].shape[0] == 32 && t[4].shape[1] == 96);
    CHECK(t[5].ndim == 1 && t[5].shape[0] == 96);
    CHECK(t[12].ndim == 2 && t[12].shape[0] == 128 && t[12].shape[1] == 32); /* mlp.c_proj (4C, C) */
    size_t total = 0;
    for (int i = 0; i < n; i++) total += t[i].size;
    CHECK_EQ_INT(total, wn_gpt_num_params(m));
    CHECK_EQ_INT(total, 50 * 32 + 16 * 32 + 3 * (12 * 32 * 32 + 13 * 32) + 2 * 32);
    CHECK_EQ_INT(wn_gpt_cfg(m)->dim, 32);
    /* same seed, same model; another seed, another model */
    CHECK(memcmp(t[0].data, t2[0].data, total * sizeof(float)) == 0);
    CHECK(memcmp(t[0].data, t3[0].data, t[0].size * sizeof(float)) != 0);
    /* GPT-2 init: LN weight 1, biases 0, std 0.02 and 0.02 / sqrt(2 L) */
    for (int i = 0; i < n; i++) {
        double s = 0, s2 = 0;
        for (size_t j = 0; j < t[i].size; j++) {
            s += t[i].data[j];
            s2 += (double)t[i].data[j] * t[i].data[j];
        }
        double mean = s / t[i].size, sd = sqrt(s2 / t[i].size - mean * mean);
        if (t[i].ndim == 1) {
            int lnw = strstr(t[i].name, "ln_") && strstr(t[i].name, ".weight");
            CHECK(mean == (lnw ? 1.0 : 0.0) && sd < 1e-6);
        } else {
            double want = strstr(t[i].name, "c_proj.weight") ? 0.02 / sqrt(6.0) : 0.02;
            if (fabs(sd - want) > 0.1 * want) fprintf(stderr, "  %s: sd %g, want %g\n", t[i].name, sd, want);
            CHECK(fabs(sd - want) < 0.1 * want);
            CHECK(fabs(mean) < 0.1 * want);
        }
    }
    CHECK(wn_gpt_flops_per_step(m, 2, 8) == 16.0 * (6.0 * total + 6.0 * 3 * 32 * 8));
    wn_gpt_free(m);
    wn_gpt_free(m2);
    wn_gpt_free(m3);
}

TEST(model_matmul_tiled_matches_naive)
{
    /* sizes that leave edge tiles in both directions, A plain and transposed */
    static const int sz[][3] = {{1, 1, 1}, {9, 13, 131}, {4, 7, 64}, {17, 5, 200}, {8, 3, 128}};
    uint64_t s = 7;
    for (size_t z = 0; z < WN_ARRAY_LEN(sz); z++) {
        int N = sz[z][0], K = sz[z][1], M = sz[z][2];
        double *a = malloc(sizeof(double) * N * K), *b = malloc(sizeof(double) * K * M);
        double *bias = malloc(sizeof(double) * M), *o1 = malloc(sizeof(double) * N * M);
        double *o2 = malloc(sizeof(double) * N * M);
        for (int i = 0; i < N * K; i++) a[i] = nrand(&s);
        for (int i = 0; i < K * M; i++) b[i] = nrand(&s);
        for (int i = 0; i < M; i++) bias[i] = nrand(&s);
        for (int mode = 0; mode < 4; mode++) {
            int trans = mode & 1, acc = mode >> 1;
            size_t ars = trans ? 1 : (size_t)K, aks = trans ? (size_t)N : 1;
            for (int i = 0; i < N * M; i++) o1[i] = o2[i] = nrand(&s);
            mm(o1, a, ars, aks, b, acc ? NULL : bias, acc, N, K, M);
            mm_naive(o2, a, ars, aks, b, acc ? NULL : bias, acc, N, K, M);
            int nbad = 0;
            for (int i = 0; i < N * M; i++) CHECK(close_enough("mm", (size_t)i, o1[i], o2[i], 1e-13, 1e-13, &nbad));
        }
        free(a);
        free(b);
        free(bias);
        free(o1);
        free(o2);
    }
}

/* Tiny double model with every parameter drawn at a non-trivial value. */
static wn64_gpt *tiny_double_model(const wn_gpt_config *c, uint64_t seed)
{
    wn64_gpt *m;
    if (wn64_gpt_new(&m, c, seed, NULL) != WN_OK) return NULL;
    wn64_tensor *t;
    int n = wn64_gpt_tensors(m, &t);
    uint64_t s = seed;
    for (int i = 0; i < n; i++) {
        int lnw = strstr(t[i].name, "ln_") && strstr(t[i].name, ".weight");
        double sd = t[i].ndim == 2 ? 0.3 : 0.1;
        for (size_t j = 0; j < t[i].size; j++) t[i].data[j] = (lnw ? 1.0 : 0.0) + sd * nrand(&s);
    }
    return m;
}

TEST(model_gradcheck_double)
{
    const wn_gpt_config c = {11, 8, 2, 2, 8}; /* V, maxT, L, NH, C */
    enum { B = 2, T = 5 };
    const uint32_t in[B * T] = {1, 4, 7, 10, 2, 0, 3, 3, 9, 5};
    const uint32_t tg[B * T] = {4, 7, 10, 2, 6, 3, 3, 9, 5, 1};
    const double w[B * T] = {1, 0.5, 0, 2, 1, 1.5, 1, 0.25, 1, 3};
    wn64_gpt *m = tiny_double_model(&c, 3);
    CHECK(m != NULL);
    if (!m) return;
    double loss = 0, lp, lm;
    wn64_gpt_zero_grad(m);
    CHECK_EQ_INT(wn64_gpt_forward(m, in, tg, w, B, T, &loss), WN_OK);
    CHECK_EQ_INT(wn64_gpt_backward(m), WN_OK);
    CHECK(loss > 0.5 && loss < 10);

    wn64_tensor *t;
    int n = wn64_gpt_tensors(m, &t);
    const double eps = 1e-5;
    double worst = 0;
    uint64_t s = 11;
    int checked = 0, nbad = 0;
    for (int i = 0; i < n; i++) {
        size_t cnt = t[i].size <= 64 ? t[i].size : 24;
        double tworst = 0;
        for (size_t e = 0; e < cnt; e++) {
            size_t j = t[i].size <= 64 ? e : e == 0 ? 0 : e == 1 ? t[i].size - 1 : (size_t)(urand(&s) * t[i].size);
            double keep = t[i].data[j];
            t[i].data[j] = keep + eps;
            wn64_gpt_forward(m, in, tg, w, B, T, &lp);
            t[i].data[j] = keep - eps;
            wn64_gpt_forward(m, in, tg, w, B, T, &lm);
            t[i].data[j] = keep;
            double fd = (lp - lm) / (2 * eps), g = t[i].grad[j];
            double err = fabs(fd - g) / fmax(fmax(fabs(fd), fabs(g)), 1e-4);
            if (err > tworst) tworst = err;
            if (err > 1e-6 && nbad++ < 5)
                fprintf(stderr, "  %s[%zu]: analytic %.12g, numeric %.12g\n", t[i].name, j, g, fd);
            checked++;
        }
        if (tworst > worst) worst = tworst;
    }
    fprintf(stderr, "  gradcheck: %d entries of %d tensors, worst relative error %.2e\n", checked, n, worst);
    CHECK(nbad == 0);
    CHECK(worst < 1e-6);
    /* the weight-0 token does not count: changing its target leaves the loss */
    uint32_t tg2[B * T];
    memcpy(tg2, tg, sizeof tg2);
    tg2[2] = (tg2[2] + 1) % 11;
    wn64_gpt_forward(m, in, tg2, w, B, T, &lp);
    wn64_gpt_forward(m, in, tg, w, B, T, &lm);
    CHECK(fabs(lp - lm) < 1e-15);
    wn64_gpt_free(m);
}

/* ---- against PyTorch ------------------------------------------------------
 * tests/fixtures/gpt_tiny.bin, written by tests/fixtures/make_gpt_fixture.py
 * (PyTorch, float64 autograd from float32 parameters), little-endian:
 *   int32 header[16]: magic 0x46474E57 ("WNGF"), version 1, V, maxT, L, NH,
 *                     C, B, T, nparams, then zeros
 *   int32 inputs[B*T], int32 targets[B*T], float32 weights[B*T]
 *   float32 params[nparams]   model.h tensor order
 *   float32 logits[B*T*V], float32 loss, float32 nll[B*T]
 *   float32 grads[nparams]    of loss = sum(w nll) / sum(w)
 * Tolerances (|got - ref| <= abs + rel |ref|): logits, nll and loss 1e-4 +
 * 1e-4 rel (observed: about 7% of it); gradients 1e-5 + 1e-4 rel (about 5%). llm.c's test_gpt2.cu uses 1e-3
 * (logits), 1e-5 (loss) and 1e-6 (grads) absolute for GPT-2 124M in fp32. */
TEST(model_matches_pytorch_fixture)
{
    FILE *f = fopen("tests/fixtures/gpt_tiny.bin", "rb");
    CHECK(f != NULL);
    if (!f) return;
    int32_t h[16];
    CHECK(fread(h, sizeof h, 1, f) == 1);
    CHECK(h[0] == 0x46474E57 && h[1] == 1);
    wn_gpt_config c = {h[2], h[3], h[4], h[5], h[6]};
    int B = h[7], T = h[8];
    size_t np = (size_t)h[9], N = (size_t)B * T, V = (size_t)c.vocab;
    int32_t *in32 = malloc(N * 4), *tg32 = malloc(N * 4);
    uint32_t *in = malloc(N * 4), *tg = malloc(N * 4);
    float *w = malloc(N * 4), *params = malloc(np * 4), *logits = malloc(N * V * 4), *nll = malloc(N * 4);
    float *grads = malloc(np * 4), loss_ref = 0;
    int ok = fread(in32, 4, N, f) == N && fread(tg32, 4, N, f) == N && fread(w, 4, N, f) == N &&
             fread(params, 4, np, f) == np && fread(logits, 4, N * V, f) == N * V && fread(&loss_ref, 4, 1, f) == 1 &&
             fread(nll, 4, N, f) == N && fread(grads, 4, np, f) == np && fgetc(f) == EOF;
    fclose(f);
    CHECK(ok);
    wn_gpt *m = NULL;
    if (ok) CHECK_EQ_INT(wn_gpt_new(&m, &c, 1, NULL), WN_OK);
    if (ok && m) {
        CHECK_EQ_INT(wn_gpt_num_params(m), np);
        for (size_t i = 0; i < N; i++) {
            in[i] = (uint32_t)in32[i];
            tg[i] = (uint32_t)tg32[i];
        }
        wn_tensor *t;
        int n = wn_gpt_tensors(m, &t);
        size_t off = 0;
        for (int i = 0; i < n; i++) {
            memcpy(t[i].data, params + off, t[i].size * sizeof(float));
            off += t[i].size;
        }
        float loss = 0;
        wn_gpt_zero_grad(m);
        CHECK_EQ_INT(wn_gpt_forward(m, in, tg, w, B, T, &loss), WN_OK);
        CHECK_EQ_INT(wn_gpt_backward(m), WN_OK);
        int nbad = 0;
        double worst_l = 0, worst_g = 0, used_l;
        tol_used = 0;
        const float *lg = wn_gpt_logits(m), *nl = wn_gpt_token_nll(m);
        for (size_t i = 0; i < N * V; i++) {
            CHECK(close_enough("logits", i, lg[i], logits[i], 1e-4, 1e-4, &nbad));
            worst_l = fmax(worst_l, fabs(lg[i] - logits[i]));
        }
        for (size_t i = 0; i < N; i++) CHECK(close_enough("nll", i, nl[i], nll[i], 1e-4, 1e-4, &nbad));
        CHECK(close_enough("loss", 0, loss, loss_ref, 1e-4, 1e-4, &nbad));
        used_l = tol_used;
        tol_used = 0;
        off = 0;
        for (int i = 0; i < n; i++) {
            for (size_t j = 0; j < t[i].size; j++) {
                CHECK(close_enough(t[i].name, j, t[i].grad[j], grads[off + j], 1e-5, 1e-4, &nbad));
                worst_g = fmax(worst_g, fabs(t[i].grad[j] - grads[off + j]));
            }
            off += t[i].size;
        }
        fprintf(stderr,
                "  vs PyTorch: loss %.7f (ref %.7f), max |dlogit| %.2e, max |dgrad| %.2e; "
                "tolerance used: %.0f%% (logits, nll, loss), %.0f%% (grads)\n",
                loss, loss_ref, worst_l, worst_g, 100 * used_l, 100 * tol_used);
    }
    wn_gpt_free(m);
    free(in32);
    free(tg32);
    free(in);
    free(tg);
    free(w);
    free(params);
    free(logits);
    free(nll);
    free(grads);
}

TEST(model_thread_count_determinism)
{
    /* big enough that every loop runs in parallel (N C >= PAR_MIN), with
     * edge tiles in the matrix products */
    const wn_gpt_config c = {67, 128, 1, 4, 64};
    enum { B = 3, T = 90 };
    uint32_t in[B * T], tg[B * T];
    float w[B * T];
    uint64_t s = 5;
    for (int i = 0; i < B * T; i++) {
        in[i] = (uint32_t)(urand(&s) * 67);
        tg[i] = (uint32_t)(urand(&s) * 67);
        w[i] = (float)(i % 4);
    }
    wn_gpt *m;
    CHECK_EQ_INT(wn_gpt_new(&m, &c, 9, NULL), WN_OK);
    size_t np = wn_gpt_num_params(m);
    wn_tensor *t;
    wn_gpt_tensors(m, &t);
    float *ref = malloc(np * sizeof(float)), loss_ref = 0;
    int saved = omp_get_max_threads();
    static const int threads[] = {1, 2, 3};
    for (size_t k = 0; k < WN_ARRAY_LEN(threads); k++) {
        omp_set_num_threads(threads[k]);
        float loss = 0;
        wn_gpt_zero_grad(m);
        CHECK_EQ_INT(wn_gpt_forward(m, in, tg, w, B, T, &loss), WN_OK);
        CHECK_EQ_INT(wn_gpt_backward(m), WN_OK);
        float norm = wn_gpt_clip_grad(m, 0);
        if (k == 0) {
            memcpy(ref, t[0].grad, np * sizeof(float));
            loss_ref = loss;
            CHECK(norm > 0);
        } else {
            CHECK(memcmp(&loss, &loss_ref, sizeof loss) == 0);
            CHECK(memcmp(ref, t[0].grad, np * sizeof(float)) == 0);
        }
    }
    omp_set_num_threads(saved);
    free(ref);
    wn_gpt_free(m);
}

TEST(model_forward_contract)
{
    const wn_gpt_config c = {13, 8, 1, 2, 8};
    wn_gpt *m;
    CHECK_EQ_INT(wn_gpt_new(&m, &c, 2, NULL), WN_OK);
    uint32_t in[16] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 0, 1, 2, 3}, tg[16] = {0};
    float w[16], loss = -1;
    for (int i = 0; i < 16; i++) w[i] = 1;
    CHECK_EQ_INT(wn_gpt_backward(m), WN_ERR_STATE); /* no forward yet */
    CHECK_EQ_INT(wn_gpt_forward(m, in, tg, NULL, 1, 9, &loss), WN_ERR_USAGE); /* T > context */
    CHECK_EQ_INT(wn_gpt_forward(m, in, tg, NULL, 0, 4, &loss), WN_ERR_USAGE);
    in[3] = 13;
    CHECK_EQ_INT(wn_gpt_forward(m, in, tg, NULL, 1, 4, &loss), WN_ERR_INPUT); /* token >= V */
    in[3] = 4;
    tg[2] = 99;
    CHECK_EQ_INT(wn_gpt_forward(m, in, tg, NULL, 1, 4, &loss), WN_ERR_INPUT);
    tg[2] = 0;
    w[1] = -1;
    CHECK_EQ_INT(wn_gpt_forward(m, in, tg, w, 1, 4, &loss), WN_ERR_INPUT);
    w[1] = 1;
    CHECK_EQ_INT(wn_gpt_backward(m), WN_ERR_STATE); /* the failed forward invalidated */

    /* no targets: logits only, no backward */
    CHECK_EQ_INT(wn_gpt_forward(m, in, NULL, NULL, 1, 4, &loss), WN_OK);
    CHECK(loss == -1);
    CHECK_EQ_INT(wn_gpt_backward(m), WN_ERR_STATE);
    float small[4 * 13];
    memcpy(small, wn_gpt_logits(m), sizeof small);

    /* a larger batch regrows the buffers; causality: the first 4 positions
     * of a longer sequence give the same logits; weights NULL = all ones */
    float l1 = 0, l2 = 0;
    CHECK_EQ_INT(wn_gpt_forward(m, in, tg, NULL, 2, 8, &l1), WN_OK);
    const float *lg = wn_gpt_logits(m);
    for (int i = 0; i < 4 * 13; i++) CHECK(fabsf(lg[i] - small[i]) <= 1e-6f * (1 + fabsf(small[i])));
    CHECK_EQ_INT(wn_gpt_forward(m, in, tg, w, 2, 8, &l2), WN_OK);
    CHECK(l1 == l2 && l1 > 0);
    double mean = 0;
    for (int i = 0; i < 16; i++) mean += wn_gpt_token_nll(m)[i] / 16;
    CHECK(fabs(mean - l2) < 1e-5);
    /* all weights 0: loss 0 and zero gradients */
    for (int i = 0; i < 16; i++) w[i] = 0;
    CHECK_EQ_INT(wn_gpt_forward(m, in, tg, w, 2, 8, &l2), WN_OK);
    CHECK(l2 == 0);
    wn_gpt_zero_grad(m);
    CHECK_EQ_INT(wn_gpt_backward(m), WN_OK);
    CHECK(wn_gpt_clip_grad(m, 0) == 0);
    /* back to the small batch: same logits as the first time */
    CHECK_EQ_INT(wn_gpt_forward(m, in, NULL, NULL, 1, 4, NULL), WN_OK);
    CHECK(memcmp(wn_gpt_logits(m), small, sizeof small) == 0);
    wn_gpt_free(m);
}

TEST(model_adamw_clip_and_schedule)
{
    const wn_gpt_config c = {5, 4, 1, 1, 4};
    wn_gpt *m;
    CHECK_EQ_INT(wn_gpt_new(&m, &c, 2, NULL), WN_OK);
    wn_tensor *t;
    int n = wn_gpt_tensors(m, &t);
    wn_tensor *wte = &t[0], *bias = &t[n - 1]; /* 2-D (decayed) and 1-D (not) */
    size_t np = wn_gpt_num_params(m);
    double p0[20], b0[4];
    for (size_t j = 0; j < 20; j++) p0[j] = wte->data[j];
    for (size_t j = 0; j < 4; j++) b0[j] = bias->data[j] = 0.1f * (float)j;
    const wn_adamw o = {0.01f, 0.9f, 0.95f, 1e-8f, 0.1f};
    double mh[24] = {0}, vh[24] = {0};
    for (int step = 1; step <= 2; step++) {
        wn_gpt_zero_grad(m);
        for (size_t j = 0; j < 20; j++) wte->grad[j] = (float)(0.01 * step * ((int)j - 7));
        for (size_t j = 0; j < 4; j++) bias->grad[j] = (float)(-0.5 * step + j);
        wn_gpt_adamw(m, &o, step);
        /* by hand, in double */
        double b1 = o.beta1, b2 = o.beta2, lr = o.lr, eps = o.eps;
        for (int j = 0; j < 24; j++) {
            double g = j < 20 ? (float)(0.01 * step * (j - 7)) : (float)(-0.5 * step + (j - 20));
            double *p = j < 20 ? &p0[j] : &b0[j - 20], wd = j < 20 ? (double)o.weight_decay : 0;
            mh[j] = b1 * mh[j] + (1 - b1) * g;
            vh[j] = b2 * vh[j] + (1 - b2) * g * g;
            double mc = mh[j] / (1 - pow(b1, step)), vc = vh[j] / (1 - pow(b2, step));
            *p -= lr * (mc / (sqrt(vc) + eps) + wd * *p);
        }
        int nbad = 0;
        for (size_t j = 0; j < 20; j++) CHECK(close_enough("wte", j, wte->data[j], p0[j], 1e-7, 1e-5, &nbad));
        for (size_t j = 0; j < 4; j++) CHECK(close_enough("bias", j, bias->data[j], b0[j], 1e-7, 1e-5, &nbad));
        /* moments are exposed in tensor order */
        CHECK(fabs(wn_gpt_adam_m(m)[3] - mh[3]) < 1e-7);
        CHECK(fabs(wn_gpt_adam_v(m)[np - 1] - vh[23]) < 1e-7);
    }

    /* clipping: norm of (3, 4) is 5; clipped to 1 gives (0.6, 0.8) */
    wn_gpt_zero_grad(m);
    wte->grad[0] = 3;
    bias->grad[3] = 4;
    CHECK(fabsf(wn_gpt_clip_grad(m, 10) - 5) < 1e-6f);
    CHECK(wte->grad[0] == 3);
    CHECK(fabsf(wn_gpt_clip_grad(m, 1) - 5) < 1e-6f);
    CHECK(fabsf(wte->grad[0] - 0.6f) < 1e-6f && fabsf(bias->grad[3] - 0.8f) < 1e-6f);
    wn_gpt_free(m);

    /* schedule: warmup 10, total 100, 1e-3 -> 1e-4 */
    CHECK(fabsf(wn_lr_schedule(0, 10, 100, 1e-3f, 1e-4f) - 1e-4f) < 1e-9f);
    CHECK(fabsf(wn_lr_schedule(9, 10, 100, 1e-3f, 1e-4f) - 1e-3f) < 1e-9f);
    CHECK(fabsf(wn_lr_schedule(10, 10, 100, 1e-3f, 1e-4f) - 1e-3f) < 1e-9f);
    CHECK(fabsf(wn_lr_schedule(55, 10, 100, 1e-3f, 1e-4f) - 5.5e-4f) < 1e-9f);
    CHECK(wn_lr_schedule(99, 10, 100, 1e-3f, 1e-4f) > 1e-4f);
    CHECK(fabsf(wn_lr_schedule(100, 10, 100, 1e-3f, 1e-4f) - 1e-4f) < 1e-9f);
    CHECK(fabsf(wn_lr_schedule(500, 10, 100, 1e-3f, 1e-4f) - 1e-4f) < 1e-9f);
    CHECK(fabsf(wn_lr_schedule(0, 0, 100, 1e-3f, 1e-4f) - 1e-3f) < 1e-9f);
}

/* Training on one repeated sequence must drive the loss to ~0. */
TEST(model_memorizes_a_sequence)
{
    const wn_gpt_config c = {16, 16, 2, 2, 32};
    enum { B = 2, T = 12 };
    static const uint32_t seq[T + 1] = {3, 14, 1, 5, 9, 2, 6, 5, 3, 5, 8, 9, 7};
    uint32_t in[B * T], tg[B * T];
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++) {
            in[b * T + t] = seq[t];
            tg[b * T + t] = seq[t + 1];
        }
    wn_gpt *m;
    CHECK_EQ_INT(wn_gpt_new(&m, &c, 1234, NULL), WN_OK);
    const int steps = 200;
    float first = 0, loss = 0;
    for (int step = 0; step < steps; step++) {
        wn_adamw o = {wn_lr_schedule(step, 10, steps, 1e-2f, 1e-3f), 0.9f, 0.95f, 1e-8f, 0.0f};
        wn_gpt_zero_grad(m);
        CHECK_EQ_INT(wn_gpt_forward(m, in, tg, NULL, B, T, &loss), WN_OK);
        CHECK_EQ_INT(wn_gpt_backward(m), WN_OK);
        wn_gpt_clip_grad(m, 1.0f);
        wn_gpt_adamw(m, &o, step + 1);
        if (step == 0) first = loss;
    }
    CHECK_EQ_INT(wn_gpt_forward(m, in, tg, NULL, B, T, &loss), WN_OK);
    fprintf(stderr, "  memorisation: loss %.4f -> %.5f after %d steps\n", first, loss, steps);
    CHECK(first > 2.0f);   /* about ln 16 = 2.77 at init */
    CHECK(loss < 0.02f);
    /* greedy generation now reproduces the sequence */
    for (int t = 1; t <= T; t++) CHECK_EQ_INT(wn_gpt_sample(m, 1, t, 0, 0, NULL), seq[t]);
    wn_gpt_free(m);
}

TEST(model_sampling)
{
    const wn_gpt_config c = {40, 8, 1, 2, 8};
    wn64_gpt *m = tiny_double_model(&c, 17); /* larger weights: a peaked distribution */
    CHECK(m != NULL);
    if (!m) return;
    const uint32_t in[6] = {1, 2, 3, 4, 5, 6};
    CHECK_EQ_INT(wn64_gpt_forward(m, in, NULL, NULL, 2, 3, NULL), WN_OK);
    const double *row = wn64_gpt_logits(m) + (size_t)(1 * 3 + 1) * 40; /* b = 1, position 1 */
    uint32_t am = 0, second = 0;
    for (uint32_t v = 1; v < 40; v++)
        if (row[v] > row[am]) am = v;
    for (uint32_t v = 0; v < 40; v++)
        if (v != am && (second == am || row[v] > row[second])) second = v;
    double mx = row[am], z = 0;
    for (int v = 0; v < 40; v++) z += exp(row[v] - mx);
    uint64_t rng = 99;
    CHECK_EQ_INT(wn64_gpt_sample(m, 1, 2, 0.0f, 0, &rng), am);
    CHECK_EQ_INT(wn64_gpt_sample(m, 1, 2, -1.0f, 5, &rng), am);
    CHECK_EQ_INT(rng, 99); /* greedy draws nothing */
    for (int i = 0; i < 50; i++) CHECK_EQ_INT(wn64_gpt_sample(m, 1, 2, 1.0f, 1, &rng), am);
    /* top-2: only the two best; temperature 1 over all: frequencies follow
     * the softmax; the same rng state gives the same draws */
    int hits = 0, n = 4000;
    uint64_t r1 = 5, r2 = 5;
    for (int i = 0; i < n; i++) {
        uint32_t k2 = wn64_gpt_sample(m, 1, 2, 1.0f, 2, &rng);
        CHECK(k2 == am || k2 == second);
        uint32_t x = wn64_gpt_sample(m, 1, 2, 1.0f, 0, &r1);
        CHECK(x < 40);
        CHECK_EQ_INT(wn64_gpt_sample(m, 1, 2, 1.0f, 0, &r2), x);
        hits += x == am;
    }
    double p = 1.0 / z, sd = sqrt(p * (1 - p) / n);
    fprintf(stderr, "  sampling: argmax frequency %.3f, softmax %.3f\n", (double)hits / n, p);
    CHECK(fabs((double)hits / n - p) < 5 * sd);
    wn64_gpt_free(m);
}

/* ---- activation recomputation ----------------------------------------------
 * --recompute runs each block's forward again in the backward (model.c):
 * the gradients, the layer features handed to the score stage, the losses
 * and the parameters after training must be the same bits as without it. */

typedef struct {
    uint64_t h; /* FNV-1a over everything handed over */
    int calls;
} layer_hash;

static void hash_bytes(uint64_t *h, const void *p, size_t n)
{
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++) *h = (*h ^ b[i]) * 0x100000001b3ull;
}

static void hash_layer(void *ctx, const char *name, const float *X, const float *G, int N, int in, int out)
{
    layer_hash *lh = ctx;
    hash_bytes(&lh->h, name, strlen(name));
    hash_bytes(&lh->h, X, (size_t)N * in * sizeof *X);
    hash_bytes(&lh->h, G, (size_t)N * out * sizeof *G);
    lh->calls++;
}

TEST(model_recompute_bit_identical)
{
    const wn_gpt_config c = {37, 16, 3, 2, 16};
    enum { NMAX = 2 * 16 };
    uint32_t in[NMAX], tg[NMAX];
    float w[NMAX];
    uint64_t s = 21;
    for (int i = 0; i < NMAX; i++) {
        in[i] = (uint32_t)(urand(&s) * 37);
        tg[i] = (uint32_t)(urand(&s) * 37);
        w[i] = (float)(i % 3);
    }
    wn_gpt *a, *b;
    CHECK_EQ_INT(wn_gpt_new(&a, &c, 4, NULL), WN_OK);
    CHECK_EQ_INT(wn_gpt_new(&b, &c, 4, NULL), WN_OK);
    wn_gpt_set_recompute(b, 1);
    wn_tensor *ta, *tb;
    wn_gpt_tensors(a, &ta);
    wn_gpt_tensors(b, &tb);
    size_t np = wn_gpt_num_params(a);
    /* two batch shapes; a second backward after one forward accumulates */
    static const int shapes[2][2] = {{2, 11}, {1, 16}};
    for (int k = 0; k < 2; k++) {
        int B = shapes[k][0], T = shapes[k][1];
        float la = 0, lb = 1;
        wn_gpt_zero_grad(a);
        wn_gpt_zero_grad(b);
        CHECK_EQ_INT(wn_gpt_forward(a, in, tg, w, B, T, &la), WN_OK);
        CHECK_EQ_INT(wn_gpt_forward(b, in, tg, w, B, T, &lb), WN_OK);
        CHECK(memcmp(&la, &lb, sizeof la) == 0);
        CHECK(memcmp(wn_gpt_logits(a), wn_gpt_logits(b), (size_t)B * T * 37 * sizeof(float)) == 0);
        for (int rep = 0; rep < 2; rep++) {
            CHECK_EQ_INT(wn_gpt_backward(a), WN_OK);
            CHECK_EQ_INT(wn_gpt_backward(b), WN_OK);
            CHECK(memcmp(ta[0].grad, tb[0].grad, np * sizeof(float)) == 0);
        }
        layer_hash ha = {0xcbf29ce484222325ull, 0}, hb = ha;
        CHECK_EQ_INT(wn_gpt_backward_layers(a, 3, hash_layer, &ha), WN_OK);
        CHECK_EQ_INT(wn_gpt_backward_layers(b, 3, hash_layer, &hb), WN_OK);
        CHECK(ha.calls == 1 + 4 * 3 && hb.calls == ha.calls && ha.h == hb.h);
        CHECK(memcmp(ta[0].grad, tb[0].grad, np * sizeof(float)) == 0); /* left untouched */
    }
    /* training: the same losses and parameters, step after step */
    int same = 1;
    for (int step = 0; step < 5; step++) {
        wn_adamw o = {1e-2f, 0.9f, 0.95f, 1e-8f, 0.1f};
        float la = 0, lb = 1;
        wn_gpt_zero_grad(a);
        wn_gpt_zero_grad(b);
        CHECK_EQ_INT(wn_gpt_forward(a, in, tg, NULL, 2, 16, &la), WN_OK);
        CHECK_EQ_INT(wn_gpt_forward(b, in, tg, NULL, 2, 16, &lb), WN_OK);
        CHECK_EQ_INT(wn_gpt_backward(a), WN_OK);
        CHECK_EQ_INT(wn_gpt_backward(b), WN_OK);
        wn_gpt_clip_grad(a, 1);
        wn_gpt_clip_grad(b, 1);
        wn_gpt_adamw(a, &o, step + 1);
        wn_gpt_adamw(b, &o, step + 1);
        same &= la == lb && !memcmp(ta[0].data, tb[0].data, np * sizeof(float));
    }
    CHECK(same);
    /* switching discards the forward (the layout changes) */
    wn_gpt_set_recompute(b, 0);
    CHECK_EQ_INT(wn_gpt_backward(b), WN_ERR_STATE);
    wn_gpt_free(a);
    wn_gpt_free(b);

    /* memory: recompute keeps one block's activations instead of L, besides
     * every block's output: (L - 1) (15 N C + 4 N + B NH T^2) floats less */
    const wn_gpt_config g2 = {50257, 1024, 12, 12, 768};
    wn_gpt_mem plain, rec, both;
    wn_gpt_memory(&g2, 4, 1024, 0, &plain);
    wn_gpt_memory(&g2, 4, 1024, WN_GPT_MEM_RECOMPUTE, &rec);
    wn_gpt_memory(&g2, 4, 1024, WN_GPT_MEM_RECOMPUTE | WN_GPT_MEM_ADAM8, &both);
    double N = 4.0 * 1024, C = 768;
    fprintf(stderr, "  GPT-2 small B=4: activations %.0f -> %.0f bytes\n", plain.activations, rec.activations);
    CHECK(plain.activations - rec.activations == 11 * (15 * N * C + 4 * N + 4.0 * 12 * 1024 * 1024) * 4);
    CHECK(plain.optimizer == rec.optimizer && plain.params == both.params && rec.activations == both.activations);
    /* 8-bit: 2 bytes per parameter plus 2 floats per block of 256 */
    CHECK(both.optimizer < plain.optimizer / 3.9 && both.optimizer > plain.optimizer / 4);
}
