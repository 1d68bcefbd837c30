/*
 * bench_score.c - CPU throughput of the score stage's two model passes at
 * GPT-2 small's shape (L 12, C 768, 12 heads, V 50257, T 1024): per-token
 * loss (one forward) and gradient features (forward, backward through the
 * LM head and the top block, Kronecker projection of the five layers at
 * k x k), against the FLOP ceiling of the machine's matrix products (a
 * cblas_sgemm of the shape of c_fc, measured here).
 *
 *   build/bench_score [T] [iters] [k]
 * prints one line per measurement; see tests/bench/bench_score.sh.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gradproj.h"
#include "model.h"

#if defined(WN_BLAS) && WN_BLAS
#include <cblas.h>
#endif

typedef struct {
    wn_kron_scratch ks;
    float *Pin[5], *Pout[5], *feats;
    int64_t start[2];
    float scale;
    int k, layer;
} proj_ctx;

static void on_layer(void *ctx, const char *name, const float *X, const float *G, int N, int in, int out)
{
    (void)name;
    proj_ctx *p = ctx;
    int li = p->layer++;
    if (!p->Pin[li]) {
        p->Pin[li] = malloc((size_t)p->k * in * sizeof(float));
        p->Pout[li] = malloc((size_t)p->k * out * sizeof(float));
        wn_rademacher(p->Pin[li], p->k, in, 1, 2 * (uint64_t)li);
        wn_rademacher(p->Pout[li], p->k, out, 1, 2 * (uint64_t)li + 1);
    }
    p->start[0] = 0;
    p->start[1] = N;
    wn_kron_project(&p->ks, X, G, p->start, 1, &p->scale, in, out, p->Pin[li], p->k, p->Pout[li], p->k,
                    p->feats + (size_t)li * p->k * p->k);
}

int main(int argc, char **argv)
{
    int T = argc > 1 ? atoi(argv[1]) : 1024, iters = argc > 2 ? atoi(argv[2]) : 2, k = argc > 3 ? atoi(argv[3]) : 16;
    wn_gpt_config c = {50257, 1024, 12, 12, 768};
    wn_gpt *m = NULL;
    wn_errbuf err;
    if (wn_gpt_new(&m, &c, 1, &err)) { fprintf(stderr, "%s\n", err.msg); return 1; }
    uint32_t *tok = malloc(((size_t)T + 1) * sizeof *tok);
    uint64_t x = 7;
    for (int i = 0; i <= T; i++) tok[i] = (uint32_t)(wn_splitmix64(&x) % (uint64_t)c.vocab);
    double N = (double)wn_gpt_num_params(m);

    /* the ceiling: the best of a few c_fc-shaped GEMMs (T x 768 @ 768 x 3072) */
    double peak = 0;
#if defined(WN_BLAS) && WN_BLAS
    {
        size_t M = (size_t)T, K = 768, Nn = 3072;
        float *a = calloc(M * K, sizeof *a), *b = calloc(K * Nn, sizeof *b), *o = calloc(M * Nn, sizeof *o);
        for (int r = 0; r < 4; r++) {
            double t0 = wn_now();
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)M, (int)Nn, (int)K, 1, a, (int)K, b, (int)Nn,
                        0, o, (int)Nn);
            double g = 2.0 * M * K * Nn / (wn_now() - t0) / 1e9;
            if (g > peak) peak = g;
        }
        free(a); free(b); free(o);
    }
#endif
    printf("bench_score: GPT-2 small shape, %.1fM params, T %d, iters %d, k %d; sgemm ceiling %.1f GFLOP/s\n",
           N / 1e6, T, iters, k, peak);

    /* per-token loss: forward only */
    float loss = 0;
    wn_gpt_forward(m, tok, tok + 1, NULL, 1, T, &loss); /* warm-up: allocates */
    double best = 1e30;
    for (int i = 0; i < iters; i++) {
        double t0 = wn_now();
        wn_gpt_forward(m, tok, tok + 1, NULL, 1, T, &loss);
        double dt = wn_now() - t0;
        if (dt < best) best = dt;
    }
    double fwd_flops = wn_gpt_flops_per_step(m, 1, T) / 3;
    printf("per-token loss:    %8.1f tokens/s  %6.1f GFLOP/s (%.0f%% of the sgemm ceiling)  loss %.4f\n", T / best,
           fwd_flops / best / 1e9, peak > 0 ? 100 * fwd_flops / best / 1e9 / peak : 0, loss);

    /* gradient features: forward + partial backward + projection */
    proj_ctx p = {0};
    p.k = k;
    p.scale = 1;
    p.feats = calloc((size_t)5 * k * k, sizeof *p.feats);
    best = 1e30;
    for (int i = 0; i <= iters; i++) {
        double t0 = wn_now();
        wn_gpt_forward(m, tok, tok + 1, NULL, 1, T, &loss);
        p.layer = 0;
        wn_gpt_backward_layers(m, 1, on_layer, &p);
        double dt = wn_now() - t0;
        if (i && dt < best) best = dt;
    }
    /* forward + backward of the head and one block (2 of its 3 GEMMs per layer: dX and the projection
     * replace dW), counted as the matrix products' FLOPs */
    double V = c.vocab, C = c.dim;
    double bwd = 2.0 * T * (V * C + 12 * C * C) + 2.0 * T * (C * k + V * k + 4 * C * k + C * k + C * k + C * k +
                                                              C * k + 4 * C * k + C * k + 3 * C * k);
    double feat_hash = 0;
    for (int i = 0; i < 5 * k * k; i++) feat_hash += fabs(p.feats[i]);
    printf("gradient features: %8.1f tokens/s  %6.1f GFLOP/s (%.0f%% of the sgemm ceiling)  |f|_1 %.6g\n", T / best,
           (fwd_flops + bwd) / best / 1e9, peak > 0 ? 100 * (fwd_flops + bwd) / best / 1e9 / peak : 0, feat_hash);
    wn_kron_scratch_free(&p.ks);
    for (int i = 0; i < 5; i++) { free(p.Pin[i]); free(p.Pout[i]); }
    free(p.feats);
    free(tok);
    wn_gpt_free(m);
    return 0;
}
