/*
 * bench_score_gpu.c - GPU throughput of the score stage's model work at GPT-2
 * small's shape (L 12, C 768, 12 heads, V 50257, T 1024), through the same
 * calls the stage makes (src/gpt_cuda.h):
 *   - per-token loss: wn_gpt_cuda_forward with targets (ids up, nll down);
 *   - + EL2N: the same and wn_gpt_cuda_token_el2n;
 *   - gradient features: forward, wn_gpt_cuda_backward_layers through the LM
 *     head and the top block, each of the five layers projected on the device
 *     at k x k per sequence (wn_cuda_proj_apply), features down;
 * in tokens/s, and as model FLOP/s (forward 2N per token + attention, a third
 * of wn_gpt_flops_per_step; the partial backward as the score stage counts
 * it) against two ceilings: a cuBLAS fp32 GEMM of c_fc's shape measured here
 * (wn_cuda_matmul_forward, B*T x 768 @ 768 x 3072) and the device's datasheet
 * fp32 peak (wn_gpt_cuda_peak_flops). Full fp32, no TF32, as the stage runs.
 *
 *   build/bench_score_gpu [B] [iters] [k]     (default 16, 10, 16)
 * Prints a SKIP line and exits 0 without a CUDA device. Built by
 * `make build/bench_score_gpu` (CUDA builds); run by scripts/gpu_check.sh.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../kernels/device.h"
#include "../../kernels/gpt_kernels.h"
#include "gpt_cuda.h"
#include "gradproj.h"
#include "model.h"

typedef struct {
    wn_cuda_proj *proj[5];
    int64_t *start;
    float *scale, *feats;
    int B, T, k, layer;
} proj_ctx;

static wn_err on_layer(void *ctx, const char *name, const float *X, const float *G, int N, int in, int out,
                       wn_errbuf *err)
{
    (void)name;
    (void)N;
    proj_ctx *p = ctx;
    int li = p->layer++;
    if (!p->proj[li]) {
        float *Pin = malloc((size_t)p->k * in * sizeof *Pin), *Pout = malloc((size_t)p->k * out * sizeof *Pout);
        if (!Pin || !Pout) return wn_fail(err, WN_ERR_NOMEM, "out of memory");
        wn_rademacher(Pin, p->k, in, 1, 2 * (uint64_t)li);
        wn_rademacher(Pout, p->k, out, 1, 2 * (uint64_t)li + 1);
        wn_err e = wn_cuda_proj_new(&p->proj[li], Pin, p->k, in, Pout, p->k, out, err);
        free(Pin);
        free(Pout);
        if (e) return e;
    }
    return wn_cuda_proj_apply(p->proj[li], X, G, p->start, p->B, p->scale, p->feats, err);
}

static int die(const char *what, const char *msg)
{
    fprintf(stderr, "bench_score_gpu: %s: %s\n", what, msg);
    return 1;
}

int main(int argc, char **argv)
{
    int B = argc > 1 ? atoi(argv[1]) : 16, iters = argc > 2 ? atoi(argv[2]) : 10, k = argc > 3 ? atoi(argv[3]) : 16;
    if (!wn_cuda_built() || wn_cuda_device_count() < 1) {
        printf("SKIP: bench_score_gpu: no CUDA device visible\n");
        return 0;
    }
    const int T = 1024;
    wn_gpt_config c = {50257, 1024, 12, 12, 768};
    wn_gpt *m = NULL;
    wn_gpt_cuda *g = NULL;
    wn_errbuf err = {{0}};
    if (wn_gpt_new(&m, &c, 1, &err)) return die("model", err.msg);
    if (wn_gpt_cuda_new(&g, m, 0, &err)) return die("device model", err.msg);
    size_t n = (size_t)B * T;
    uint32_t *in = malloc(n * sizeof *in), *tg = malloc(n * sizeof *tg);
    float *el2n = malloc(n * sizeof *el2n);
    proj_ctx p = {{0}, malloc((B + 1) * sizeof(int64_t)), malloc(B * sizeof(float)),
                  malloc((size_t)B * k * k * sizeof(float)), B, T, k, 0};
    if (!in || !tg || !el2n || !p.start || !p.scale || !p.feats) return die("host memory", "out of memory");
    uint64_t x = 7;
    for (size_t i = 0; i < n; i++) in[i] = (uint32_t)(wn_splitmix64(&x) % (uint64_t)c.vocab);
    for (size_t i = 0; i < n; i++) tg[i] = i + 1 < n ? in[i + 1] : 0;
    for (int b = 0; b <= B; b++) p.start[b] = (int64_t)b * T;
    for (int b = 0; b < B; b++) p.scale[b] = 1.0f;

    /* ceiling 1: a c_fc-shaped cuBLAS fp32 GEMM, best of 10 after a warm-up */
    double gemm = 0;
    {
        size_t M = n, K = 768, O = 3072;
        float *a = NULL, *w = NULL, *o = NULL;
        if (wn_cuda_alloc((void **)&a, M * K * 4) || wn_cuda_alloc((void **)&w, K * O * 4) ||
            wn_cuda_alloc((void **)&o, M * O * 4) || wn_cuda_memset0(a, M * K * 4) || wn_cuda_memset0(w, K * O * 4))
            return die("GEMM buffers", wn_cuda_last_error());
        for (int r = 0; r < 11; r++) {
            double t0 = wn_now();
            if (wn_cuda_matmul_forward(o, a, w, NULL, (int)M, (int)K, (int)O, 0) || wn_cuda_sync())
                return die("GEMM", wn_cuda_last_error());
            double f = 2.0 * M * K * O / (wn_now() - t0);
            if (r && f > gemm) gemm = f;
        }
        wn_cuda_free(a);
        wn_cuda_free(w);
        wn_cuda_free(o);
    }
    const char *peak_what = NULL;
    double peak = wn_gpt_cuda_peak_flops(g, &peak_what);
    double fwd = wn_gpt_flops_per_step(m, B, T) / 3;
    double bwd = fwd * 2 * (1.0 + 4) / (1 + 4 * c.layers); /* LM head + one block of 12, as score.c counts */
    printf("bench_score_gpu: %s\n", wn_gpt_cuda_device(g));
    printf("GPT-2 small shape, %.1fM params, B %d x T %d = %zu tokens per call, %d iterations, k %d\n",
           (double)wn_gpt_num_params(m) / 1e6, B, T, n, iters, k);
    printf("ceilings: cuBLAS fp32 GEMM (%zu x 768 @ 768 x 3072) %.1f TFLOP/s; %s\n", n, gemm / 1e12,
           peak_what ? peak_what : "datasheet peak unknown for this device");
    printf("%-28s %12s %10s %10s %9s %9s\n", "pass", "tokens/s", "ms/call", "TFLOP/s", "of GEMM", "of peak");

    for (int pass = 0; pass < 3; pass++) {
        static const char *const names[3] = {"per-token loss (forward)", "loss + EL2N", "gradient features (k x k)"};
        double best = 1e30;
        for (int it = 0; it <= iters; it++) { /* iteration 0 warms up */
            double t0 = wn_now();
            float loss;
            if (wn_gpt_cuda_forward(g, in, tg, NULL, B, T, &loss, &err)) return die("forward", err.msg);
            if (pass == 1 && wn_gpt_cuda_token_el2n(g, el2n, &err)) return die("EL2N", err.msg);
            if (pass == 2) {
                p.layer = 0;
                if (wn_gpt_cuda_backward_layers(g, 1, on_layer, &p, &err)) return die("backward_layers", err.msg);
            }
            if (wn_gpt_cuda_sync(g, &err)) return die("sync", err.msg);
            double dt = wn_now() - t0;
            if (it && dt < best) best = dt;
        }
        double flops = fwd + (pass == 2 ? bwd : 0);
        printf("%-28s %12.0f %10.2f %10.2f %8.1f%% %8.1f%%\n", names[pass], (double)n / best, best * 1e3,
               flops / best / 1e12, 100 * flops / best / gemm, peak > 0 ? 100 * flops / best / peak : 0);
    }
    for (int i = 0; i < 5; i++) wn_cuda_proj_free(p.proj[i]);
    wn_gpt_cuda_free(g);
    wn_gpt_free(m);
    free(in);
    free(tg);
    free(el2n);
    free(p.start);
    free(p.scale);
    free(p.feats);
    return 0;
}
