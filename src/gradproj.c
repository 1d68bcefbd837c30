/*
 * gradproj.c - gradient features on the CPU (see gradproj.h): Rademacher
 * matrices, the Kronecker-factored projection of per-sequence gradients of
 * a linear layer, per-token NLL and EL2N.
 *
 * The projection runs in two stages, each an OpenMP loop over a fixed grid
 * of tasks that write disjoint outputs:
 *   1. row tiles of KP_RB rows: Z = X P_in^T and A = G P_out^T on the tile;
 *   2. (sequence, block of KP_IB rows of F_s): F_s[rows] += scale Z_s^T A_s.
 * With WN_BLAS each task is one cblas_sgemm call (single-threaded
 * OpenBLAS); otherwise, or with scratch->no_blas, plain loops with sums in
 * double (kron_rows_loops, kron_seq_loops), which are also the oracle the
 * BLAS path is tested against. Neither grid depends on the thread count.
 */
#include "gradproj.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#if defined(WN_BLAS) && WN_BLAS
#include <cblas.h>
void openblas_set_num_threads(int); /* OpenBLAS's own; also in its cblas.h */
#define KP_HAVE_BLAS 1
#else
#define KP_HAVE_BLAS 0
#endif

#define KP_RB 128            /* rows per task of stage 1 */
#define KP_IB 16             /* rows of F_s per task of stage 2 */
#define KP_JB 256            /* columns of F_s per accumulator of the plain loops */
#define KP_PAR_MIN (1 << 20) /* multiply-adds below which a loop stays on the calling thread */

#define GOLDEN 0x9E3779B97F4A7C15ull /* splitmix64's increment */

/* ---- Rademacher ------------------------------------------------------------- */

/* Start state of the stream for (seed, stream): splitmix64's output is a
 * bijection of its state, so distinct streams under one seed get distinct
 * keys. */
static uint64_t rademacher_key(uint64_t seed, uint64_t stream)
{
    uint64_t s = seed;
    s = wn_splitmix64(&s) ^ stream;
    return wn_splitmix64(&s);
}

void wn_rademacher(float *P, int rows, int cols, uint64_t seed, uint64_t stream)
{
    WN_CHECK(P && rows > 0 && cols >= 0);
    const float v = (float)(1.0 / sqrt((double)rows));
    const uint64_t key = rademacher_key(seed, stream);
    const int64_t n = (int64_t)rows * cols, nb = (n + 63) / 64;
#pragma omp parallel for if (n >= KP_PAR_MIN) schedule(static)
    for (int64_t b = 0; b < nb; b++) {
        uint64_t st = key + (uint64_t)b * GOLDEN; /* output b of the stream started at key */
        uint64_t bits = wn_splitmix64(&st);
        int64_t e0 = b * 64, ne = n - e0 < 64 ? n - e0 : 64;
        for (int64_t e = 0; e < ne; e++) P[e0 + e] = (bits >> e) & 1 ? -v : v;
    }
}

/* ---- Kronecker-factored projection ------------------------------------------- */

void wn_kron_scratch_init(wn_kron_scratch *s) { memset(s, 0, sizeof *s); }

void wn_kron_scratch_free(wn_kron_scratch *s)
{
    if (!s) return;
    wn_free(s->z);
    wn_free(s->a);
    memset(s, 0, sizeof *s);
}

static wn_err grow(float **p, size_t *cap, size_t n)
{
    if (n <= *cap) return WN_OK;
    float *q = wn_realloc(*p, n * sizeof *q);
    if (!q) return WN_ERR_NOMEM;
    *p = q;
    *cap = n;
    return WN_OK;
}

/* Y (n, k) = M (n, d) P^T with P (k, d); all row-major, contiguous. */
static void kron_rows_loops(float *restrict Y, const float *restrict M, int64_t n, int d, const float *restrict P,
                            int k)
{
    for (int64_t r = 0; r < n; r++)
        for (int j = 0; j < k; j++) {
            const float *mr = M + r * d, *pj = P + (size_t)j * d;
            double acc = 0;
            for (int c = 0; c < d; c++) acc += (double)mr[c] * pj[c];
            Y[r * k + j] = (float)acc;
        }
}

/* F (ni, kout; row stride kout) += scale * Z^T A over t = 0..len-1, where
 * Z is read from column i0 of a (len, kin) matrix and A is (len, kout). */
static void kron_seq_loops(float *restrict F, const float *restrict Z, const float *restrict A, int64_t len, int kin,
                           int i0, int ni, int kout, float scale)
{
    double acc[KP_JB];
    for (int i = 0; i < ni; i++)
        for (int j0 = 0; j0 < kout; j0 += KP_JB) {
            int nj = kout - j0 < KP_JB ? kout - j0 : KP_JB;
            for (int j = 0; j < nj; j++) acc[j] = 0;
            for (int64_t t = 0; t < len; t++) {
                double z = Z[t * kin + i0 + i];
                const float *a = A + t * kout + j0;
                for (int j = 0; j < nj; j++) acc[j] += z * a[j];
            }
            float *f = F + (size_t)i * kout + j0;
            for (int j = 0; j < nj; j++) f[j] += (float)(scale * acc[j]);
        }
}

wn_err wn_kron_project(wn_kron_scratch *s, const float *X, const float *G, const int64_t *start, int nseq,
                       const float *scale, int in, int out, const float *Pin, int kin, const float *Pout, int kout,
                       float *feats)
{
    WN_CHECK(s && start && nseq >= 0 && in > 0 && out > 0 && kin > 0 && kout > 0);
    if (nseq == 0) return WN_OK;
    WN_CHECK(X && G && Pin && Pout && feats && start[0] >= 0);
    for (int q = 0; q < nseq; q++) WN_CHECK(start[q + 1] >= start[q]);
    const int64_t r0 = start[0], n = start[nseq] - r0;
    if (n == 0) return WN_OK;
    if (grow(&s->z, &s->z_cap, (size_t)n * kin) || grow(&s->a, &s->a_cap, (size_t)n * kout)) return WN_ERR_NOMEM;
    float *Z = s->z, *A = s->a;
    const int use_blas = KP_HAVE_BLAS && !s->no_blas;
#if KP_HAVE_BLAS
    /* Threads come from OpenMP over the fixed task grids; one task = one
     * single-threaded call, which is what makes the bits thread-independent. */
    if (use_blas) openblas_set_num_threads(1);
#endif

    /* Stage 1: Z = X P_in^T, A = G P_out^T, per row tile. */
    const int64_t ntiles = (n + KP_RB - 1) / KP_RB;
    const double work1 = (double)n * ((double)in * kin + (double)out * kout);
#pragma omp parallel for if (work1 >= KP_PAR_MIN) schedule(static)
    for (int64_t tile = 0; tile < ntiles; tile++) {
        int64_t t0 = tile * KP_RB, tn = n - t0 < KP_RB ? n - t0 : KP_RB;
        const float *x = X + (size_t)(r0 + t0) * in, *g = G + (size_t)(r0 + t0) * out;
        float *z = Z + (size_t)t0 * kin, *a = A + (size_t)t0 * kout;
        if (use_blas) {
#if KP_HAVE_BLAS
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)tn, kin, in, 1.0f, x, in, Pin, in, 0.0f, z,
                        kin);
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)tn, kout, out, 1.0f, g, out, Pout, out, 0.0f,
                        a, kout);
#endif
        } else {
            kron_rows_loops(z, x, tn, in, Pin, kin);
            kron_rows_loops(a, g, tn, out, Pout, kout);
        }
    }

    /* Stage 2: F_s[i0 .. i0+KP_IB) += scale[s] Z_s^T A_s. */
    const int nib = (kin + KP_IB - 1) / KP_IB;
    const double work2 = (double)n * kin * kout;
#pragma omp parallel for collapse(2) if (work2 >= KP_PAR_MIN) schedule(static)
    for (int q = 0; q < nseq; q++)
        for (int ib = 0; ib < nib; ib++) {
            int64_t len = start[q + 1] - start[q], t0 = start[q] - r0;
            if (len == 0) continue;
            int i0 = ib * KP_IB, ni = kin - i0 < KP_IB ? kin - i0 : KP_IB;
            float sc = scale ? scale[q] : 1.0f;
            float *f = feats + ((size_t)q * kin + i0) * kout;
            const float *z = Z + (size_t)t0 * kin, *a = A + (size_t)t0 * kout;
            if (use_blas) {
#if KP_HAVE_BLAS
                WN_CHECK(len <= 0x7fffffff);
                cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, ni, kout, (int)len, sc, z + i0, kin, a, kout,
                            1.0f, f, kout);
#endif
            } else {
                kron_seq_loops(f, z, a, len, kin, i0, ni, kout, sc);
            }
        }
    return WN_OK;
}

/* ---- per-token NLL and EL2N ----------------------------------------------------- */

void wn_token_nll_el2n(const float *logits, const uint32_t *targets, int64_t N, int V, float *nll, float *el2n)
{
    WN_CHECK(N >= 0 && (N == 0 || (logits && targets && V > 0)));
#pragma omp parallel for if (N * (double)V >= KP_PAR_MIN) schedule(static)
    for (int64_t i = 0; i < N; i++) {
        const float *x = logits + (size_t)i * V;
        uint32_t y = targets[i];
        WN_CHECK(y < (uint32_t)V);
        float m = x[0];
        for (int j = 1; j < V; j++)
            if (x[j] > m) m = x[j];
        /* Sums over j != y of e_j = exp(x_j - m) and e_j^2; p_j = e_j / S. */
        double s_ny = 0, q_ny = 0;
        for (int j = 0; j < V; j++) {
            if (j == (int)y) continue;
            double e = exp((double)x[j] - m);
            s_ny += e;
            q_ny += e * e;
        }
        double e_y = exp((double)x[y] - m), S = s_ny + e_y;
        /* -log p_y = log(S / e_y): as log1p when p_y > 1/2, where log(S)
         * would lose the small result; otherwise nll >= log 2 and
         * log(S) + (m - x_y) is accurate (and e_y may underflow). */
        if (nll) nll[i] = (float)(s_ny < e_y ? log1p(s_ny / e_y) : log(S) + ((double)m - x[y]));
        if (el2n) el2n[i] = (float)sqrt(q_ny / (S * S) + (s_ny / S) * (s_ny / S));
    }
}

/* ---- k-th largest ---------------------------------------------------------------- */

static int by_desc(const void *a, const void *b)
{
    float x = *(const float *)a, y = *(const float *)b;
    return (x < y) - (x > y);
}

wn_err wn_kth_largest(const float *x, int64_t n, int64_t k, float *value, int64_t *above)
{
    if (n < 1 || k < 1 || k > n) return WN_ERR_USAGE;
    float *s = wn_malloc((size_t)n * sizeof *s);
    if (!s) return WN_ERR_NOMEM;
    memcpy(s, x, (size_t)n * sizeof *s);
    qsort(s, (size_t)n, sizeof *s, by_desc);
    *value = s[k - 1];
    int64_t a = k - 1;
    while (a > 0 && s[a - 1] == s[k - 1]) a--;
    *above = a;
    wn_free(s);
    return WN_OK;
}
