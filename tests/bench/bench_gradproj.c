/*
 * bench_gradproj.c - CPU throughput of wn_kron_project and
 * wn_token_nll_el2n (src/gradproj.c) on random data; driven by
 * tests/bench/bench_gradproj.sh, which builds it.
 *
 *   bench_gradproj kron IN OUT KIN KOUT ROWS SEQLEN ITERS [loops]
 *   bench_gradproj nll V ROWS ITERS
 *
 * kron: ROWS token rows in sequences of SEQLEN rows (scale 1/SEQLEN),
 * P_in (KIN, IN), P_out (KOUT, OUT) Rademacher; one untimed call, then
 * ITERS timed calls into zeroed feats (best one kept). "loops" forces the
 * plain-loop path. Prints ms per call, tokens/s, GFLOP/s by the projection's
 * FLOP count 2 (OUT KOUT + IN KIN) + 2 KIN KOUT per token, and an FNV-1a
 * hash of feats' bytes so runs at different thread counts can be compared.
 * Threads: OMP_NUM_THREADS.
 */
#include "gradproj.h"

#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static uint64_t rs = 12345;
static float *rand_floats(size_t n, float scale)
{
    float *p = malloc(n * sizeof *p);
    if (!p) {
        fprintf(stderr, "bench_gradproj: out of memory (%zu floats)\n", n);
        exit(1);
    }
    for (size_t i = 0; i < n; i++) p[i] = scale * (float)((double)(wn_splitmix64(&rs) >> 11) * 0x1.0p-52 - 1.0);
    return p;
}

static uint64_t fnv1a(const void *p, size_t n)
{
    const unsigned char *b = p;
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < n; i++) h = (h ^ b[i]) * 0x100000001b3ull;
    return h;
}

static int bench_kron(int argc, char **argv)
{
    if (argc < 9) return 2;
    int in = atoi(argv[2]), out = atoi(argv[3]), kin = atoi(argv[4]), kout = atoi(argv[5]);
    int rows = atoi(argv[6]), seqlen = atoi(argv[7]), iters = atoi(argv[8]);
    int loops = argc > 9 && !strcmp(argv[9], "loops");
    if (in <= 0 || out <= 0 || kin <= 0 || kout <= 0 || rows <= 0 || seqlen <= 0 || iters <= 0) return 2;
    int nseq = (rows + seqlen - 1) / seqlen;
    int64_t *start = malloc((size_t)(nseq + 1) * sizeof *start);
    float *scale = malloc((size_t)nseq * sizeof *scale);
    for (int s = 0; s <= nseq; s++) start[s] = (int64_t)s * seqlen < rows ? (int64_t)s * seqlen : rows;
    for (int s = 0; s < nseq; s++) scale[s] = 1.0f / (float)(start[s + 1] - start[s]);
    float *X = rand_floats((size_t)rows * in, 1), *G = rand_floats((size_t)rows * out, 1e-3f);
    float *Pin = malloc((size_t)kin * in * sizeof *Pin), *Pout = malloc((size_t)kout * out * sizeof *Pout);
    size_t nf = (size_t)nseq * kin * kout;
    float *F = malloc(nf * sizeof *F);
    wn_rademacher(Pin, kin, in, 1, 0);
    wn_rademacher(Pout, kout, out, 1, 1);
    wn_kron_scratch scr;
    wn_kron_scratch_init(&scr);
    scr.no_blas = loops;
    double best = 1e30;
    for (int it = 0; it <= iters; it++) {
        memset(F, 0, nf * sizeof *F);
        double t0 = wn_now();
        if (wn_kron_project(&scr, X, G, start, nseq, scale, in, out, Pin, kin, Pout, kout, F) != WN_OK) {
            fprintf(stderr, "bench_gradproj: out of memory\n");
            return 1;
        }
        double dt = wn_now() - t0;
        if (it > 0 && dt < best) best = dt;
    }
    double flop_tok = 2.0 * ((double)out * kout + (double)in * kin) + 2.0 * kin * kout;
    printf("kron in=%d out=%d k=%dx%d rows=%d seqlen=%d threads=%d %s: %.2f ms/call  %.0f tokens/s  %.1f GFLOP/s"
           "  (%.0f FLOP/token)  feats %016llx\n",
           in, out, kin, kout, rows, seqlen, omp_get_max_threads(), loops ? "loops" : "blas", best * 1e3,
           rows / best, rows * flop_tok / best * 1e-9, flop_tok, (unsigned long long)fnv1a(F, nf * sizeof *F));
    wn_kron_scratch_free(&scr);
    free(start);
    free(scale);
    free(X);
    free(G);
    free(Pin);
    free(Pout);
    free(F);
    return 0;
}

static int bench_nll(int argc, char **argv)
{
    if (argc < 5) return 2;
    int V = atoi(argv[2]), rows = atoi(argv[3]), iters = atoi(argv[4]);
    if (V <= 0 || rows <= 0 || iters <= 0) return 2;
    float *lg = rand_floats((size_t)rows * V, 8), *o = malloc((size_t)rows * 2 * sizeof *o);
    uint32_t *tg = malloc((size_t)rows * sizeof *tg);
    for (int i = 0; i < rows; i++) tg[i] = (uint32_t)(wn_splitmix64(&rs) % (uint64_t)V);
    double best = 1e30;
    for (int it = 0; it <= iters; it++) {
        double t0 = wn_now();
        wn_token_nll_el2n(lg, tg, rows, V, o, o + rows);
        double dt = wn_now() - t0;
        if (it > 0 && dt < best) best = dt;
    }
    printf("nll_el2n V=%d rows=%d threads=%d: %.2f ms/call  %.0f tokens/s  outputs %016llx\n", V, rows,
           omp_get_max_threads(), best * 1e3, rows / best, (unsigned long long)fnv1a(o, (size_t)rows * 2 * sizeof *o));
    free(lg);
    free(o);
    free(tg);
    return 0;
}

int main(int argc, char **argv)
{
    int rc = 2;
    if (argc > 1 && !strcmp(argv[1], "kron")) rc = bench_kron(argc, argv);
    if (argc > 1 && !strcmp(argv[1], "nll")) rc = bench_nll(argc, argv);
    if (rc == 2)
        fprintf(stderr, "usage: bench_gradproj kron IN OUT KIN KOUT ROWS SEQLEN ITERS [loops]\n"
                        "       bench_gradproj nll V ROWS ITERS\n");
    return rc;
}
