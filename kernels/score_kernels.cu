/*
 * score_kernels.cu - CUDA kernels for data-selection scores: the
 * Kronecker-factored projection of per-sequence gradients (cuBLAS) and a
 * fused per-token softmax / NLL / EL2N kernel. Contracts are in
 * score_kernels.h, the math and the CPU references in src/gradproj.{h,c};
 * tests/cuda/test_score_kernels.cu compares the two.
 *
 * Projection: F_s += scale_s Z_s^T A_s with Z = X P_in^T, A = G P_out^T.
 *   1. Z (rows, k_in) and A (rows, k_out): one SGEMM each over all rows.
 *   2. Z_s^T A_s per sequence. cublasSgemmStridedBatched needs one (m, n, k)
 *      and one alpha for the whole batch, but here k = T_s (the sequence's
 *      length) and alpha = scale_s vary. Sequences are contiguous rows, so
 *      consecutive sequences of equal length ARE evenly strided in Z and A
 *      (stride T k). So consecutive sequences with the same (length, scale)
 *      form a run, and each run is one strided-batched call (one plain
 *      SGEMM when the run has one sequence). Fixed-length windows with one
 *      scale (the usual batch) take a single call; packed documents of
 *      varied lengths take one call per run, at most one per sequence.
 *      Rejected: padding every sequence to the longest (a copy and wasted
 *      FLOPs), pointer-array cublasSgemmBatched (still one k), and
 *      cublasSgemmGroupedBatched (per-problem shapes, but device pointer
 *      arrays to upload on every call and only in cuBLAS >= 12.5). Step 2
 *      is 2 k_in k_out FLOPs per token against 2 (in k_in + out k_out) for
 *      step 1 (1.6% of the total for a GPT-2 MLP layer at 64 x 64, 0.1% for
 *      the LM head), so what it costs is launches, which runs bound.
 *   No atomics: the result does not vary run to run.
 *
 * NLL / EL2N: one block per row of logits. Each thread keeps, over its
 * strided entries other than the target, an online (max m, sum e, sum e^2)
 * with e = exp(x - m), starting from m = x_target so the target's own
 * exp(x_y - m) never overflows; warps then the block merge the triples in
 * a fixed order. From S = sum + e_y:
 *   nll  = log1p(sum / e_y) if sum < e_y, else log S + (m - x_y)
 *   el2n = sqrt(sum e^2 / S^2 + (sum / S)^2)
 * which is src/gradproj.c's formula (no cancellation when p_y -> 1), in
 * fp32 instead of double. One read of the row.
 *
 * Row-major vs cuBLAS (column-major) as in gpt_kernels.cu: a row-major
 * (r, c) buffer read column-major is its transpose (c, r) with leading
 * dimension c; each call states its derivation. cuBLAS is opened with
 * dlopen (not linked), like gpt_kernels.cu; this module keeps its own
 * handle and entry points because that file's are private to it.
 */
#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <dlfcn.h>
#include <float.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "cuda_common.h"
#include "score_kernels.h"

/* ---- module state: cuBLAS handle, workspace, last error ----------------- */

static cublasHandle_t g_cublas;
static int g_cublas_ok;
static float *g_ws; /* workspace, g_ws_n floats */
static size_t g_ws_n;
static __device__ int d_bad_target; /* set by the NLL kernel for a target >= V */

static const wn_cublas_fns *cb; /* the entry points gpt_kernels.cu loaded (wn_cublas_load) */

extern "C" int wn_cuda_score_init(int allow_tf32)
{
    int rc = wn_cublas_load(&cb, g_msg, sizeof g_msg);
    if (rc) return rc;
    if (!g_cublas_ok) {
        CUBLAS_TRY(cb->create(&g_cublas));
        g_cublas_ok = 1;
    }
    CUBLAS_TRY(cb->set_math_mode(g_cublas, allow_tf32 ? CUBLAS_TF32_TENSOR_OP_MATH : CUBLAS_DEFAULT_MATH));
    return WN_CUDA_OK;
}

extern "C" void wn_cuda_score_shutdown(void)
{
    if (g_cublas_ok) cb->destroy(g_cublas);
    g_cublas_ok = 0;
    cudaFree(g_ws);
    g_ws = NULL;
    g_ws_n = 0;
}

extern "C" const char *wn_cuda_score_last_error(void) { return g_msg; }

static int ensure_cublas(void) { return g_cublas_ok ? WN_CUDA_OK : wn_cuda_score_init(0); }

/* Points *ws at a workspace of at least n floats (cudaFree waits for the
 * device, so work still using the old one is done). */
static int workspace(float **ws, size_t n)
{
    if (n > g_ws_n) {
        cudaFree(g_ws);
        g_ws = NULL;
        g_ws_n = 0;
        CUDA_TRY(cudaMalloc((void **)&g_ws, n * sizeof(float)));
        g_ws_n = n;
    }
    *ws = g_ws;
    return WN_CUDA_OK;
}

/* ---- Kronecker-factored projection ------------------------------------------ */

extern "C" int wn_cuda_kron_project(const float *X, const float *G, const int64_t *start, int nseq,
                                    const float *scale, int in, int out, const float *Pin, int kin, const float *Pout,
                                    int kout, float *feats)
{
    ARG_CHECK(start && nseq >= 0 && in > 0 && out > 0 && kin > 0 && kout > 0);
    if (nseq == 0) return WN_CUDA_OK;
    ARG_CHECK(X && G && Pin && Pout && feats && start[0] >= 0);
    for (int q = 0; q < nseq; q++) ARG_CHECK(start[q + 1] >= start[q]);
    const int64_t r0 = start[0], n = start[nseq] - r0;
    if (n == 0) return WN_CUDA_OK;
    ARG_CHECK(n <= INT_MAX);
    int rc;
    if ((rc = ensure_cublas())) return rc;
    float *Z = NULL, *A;
    if ((rc = workspace(&Z, (size_t)n * (kin + kout)))) return rc;
    A = Z + (size_t)n * kin;
    const float one = 1.0f, zero = 0.0f;

    /* Z (n x k_in) = X P_in^T; column-major Z^T (k_in x n) = P_in X^T:
     * P_in's buffer is P_in^T (in x k_in, ld in), so op T; X's buffer is
     * X^T (in x n, ld in): op N. The same for A with G, P_out. */
    CUBLAS_TRY(cb->sgemm(g_cublas, CUBLAS_OP_T, CUBLAS_OP_N, kin, (int)n, in, &one, Pin, in, X + (size_t)r0 * in, in,
                        &zero, Z, kin));
    CUBLAS_TRY(cb->sgemm(g_cublas, CUBLAS_OP_T, CUBLAS_OP_N, kout, (int)n, out, &one, Pout, out,
                        G + (size_t)r0 * out, out, &zero, A, kout));

    /* F_s (k_in x k_out) += sc Z_s^T A_s; column-major F_s^T (k_out x k_in,
     * ld k_out) = sc A_s^T Z_s: A_s's buffer is A_s^T (k_out x T, ld k_out),
     * op N; Z_s's buffer is Z_s^T (k_in x T, ld k_in), so op T. One call per
     * run of consecutive sequences with equal (length, scale). */
    for (int q = 0; q < nseq;) {
        const int64_t len = start[q + 1] - start[q];
        float sc = scale ? scale[q] : 1.0f;
        int r = q + 1;
        while (r < nseq && start[r + 1] - start[r] == len && (scale ? scale[r] : 1.0f) == sc) r++;
        if (len > 0) {
            const float *a = A + (size_t)(start[q] - r0) * kout, *z = Z + (size_t)(start[q] - r0) * kin;
            float *f = feats + (size_t)q * kin * kout;
            if (r - q == 1)
                CUBLAS_TRY(cb->sgemm(g_cublas, CUBLAS_OP_N, CUBLAS_OP_T, kout, kin, (int)len, &sc, a, kout, z, kin,
                                    &one, f, kout));
            else
                CUBLAS_TRY(cb->sgemm_batched(g_cublas, CUBLAS_OP_N, CUBLAS_OP_T, kout, kin, (int)len, &sc, a, kout,
                                            (long long)len * kout, z, kin, (long long)len * kin, &one, f, kout,
                                            (long long)kin * kout, r - q));
        }
        q = r;
    }
    return WN_CUDA_OK;
}

/* ---- per-token NLL and EL2N ---------------------------------------------------- */

#define NE_THREADS 512

/* (m, s, q) += (m2, s2, q2): sums of e and e^2 relative to the larger max. */
__device__ __forceinline__ void ne_merge(float &m, float &s, float &q, float m2, float s2, float q2)
{
    float mn = fmaxf(m, m2), f1 = expf(m - mn), f2 = expf(m2 - mn);
    s = s * f1 + s2 * f2;
    q = q * f1 * f1 + q2 * f2 * f2;
    m = mn;
}

__global__ void nll_el2n_kernel(const float *logits, const uint32_t *targets, int V, float *nll, float *el2n)
{
    __shared__ float shm[NE_THREADS / 32], shs[NE_THREADS / 32], shq[NE_THREADS / 32];
    const float *x = logits + (size_t)blockIdx.x * V;
    const uint32_t y = targets[blockIdx.x];
    if (y >= (uint32_t)V) { /* the same for the whole block: no thread reaches the barrier */
        if (threadIdx.x == 0) {
            if (nll) nll[blockIdx.x] = NAN;
            if (el2n) el2n[blockIdx.x] = NAN;
            d_bad_target = 1;
        }
        return;
    }
    const float xy = x[y];
    float m = xy, s = 0.0f, q = 0.0f;
    for (int j = threadIdx.x; j < V; j += blockDim.x) {
        if (j == (int)y) continue;
        float v = x[j];
        if (v > m) {
            float f = expf(m - v);
            s = s * f + 1.0f;
            q = q * f * f + 1.0f;
            m = v;
        } else {
            float e = expf(v - m);
            s += e;
            q += e * e;
        }
    }
    for (int o = 16; o > 0; o >>= 1) {
        float m2 = __shfl_xor_sync(0xffffffffu, m, o), s2 = __shfl_xor_sync(0xffffffffu, s, o),
              q2 = __shfl_xor_sync(0xffffffffu, q, o);
        ne_merge(m, s, q, m2, s2, q2);
    }
    int warp = threadIdx.x / 32, lane = threadIdx.x % 32, nw = blockDim.x / 32;
    if (lane == 0) {
        shm[warp] = m;
        shs[warp] = s;
        shq[warp] = q;
    }
    __syncthreads();
    if (threadIdx.x != 0) return;
    m = shm[0];
    s = shs[0];
    q = shq[0];
    for (int w = 1; w < nw; w++) ne_merge(m, s, q, shm[w], shs[w], shq[w]);
    float ey = expf(xy - m), S = s + ey; /* S >= 1: the maximum contributes exp(0) */
    if (nll) nll[blockIdx.x] = s < ey ? log1pf(s / ey) : logf(S) + (m - xy);
    if (el2n) el2n[blockIdx.x] = sqrtf(q / (S * S) + (s / S) * (s / S));
}

extern "C" int wn_cuda_token_nll_el2n(const float *logits, const uint32_t *targets, int64_t N, int V, float *nll,
                                      float *el2n)
{
    ARG_CHECK(N >= 0 && N <= INT_MAX && V > 0);
    if (N == 0) return WN_CUDA_OK;
    ARG_CHECK(logits && targets);
    nll_el2n_kernel<<<(unsigned)N, NE_THREADS>>>(logits, targets, V, nll, el2n);
    LAUNCHED("nll_el2n");
    int bad = 0, zero = 0;
    CUDA_TRY(cudaMemcpyFromSymbol(&bad, d_bad_target, sizeof bad)); /* synchronizes */
    if (bad) {
        CUDA_TRY(cudaMemcpyToSymbol(d_bad_target, &zero, sizeof zero));
        return fail(WN_CUDA_ERR_TOKEN, "token_nll_el2n: a target is outside [0, %d)", V);
    }
    return WN_CUDA_OK;
}

/* ---- exact k-th largest (top-k threshold, quantiles) ------------------------------
 * The select stage's method on the device: floats map to order-preserving
 * 32-bit keys; a 65,536-bin histogram of the keys' high halves finds the bin
 * of the k-th largest, a second one of the low halves inside that bin finds
 * the key itself. Global atomics (bins are many; contention only on heavy
 * ties). Exact, deterministic (counts do not depend on the order of adds). */

#define KTH_BINS 65536

__device__ __forceinline__ uint32_t order_key(float f)
{
    uint32_t u = __float_as_uint(f);
    return (u & 0x80000000u) ? ~u : u | 0x80000000u;
}

__global__ void kth_hist_kernel(unsigned long long *hist, const float *x, int64_t n, int low, uint32_t high)
{
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
        uint32_t k = order_key(x[i]);
        if (!low) atomicAdd(&hist[k >> 16], 1ull);
        else if ((k >> 16) == high) atomicAdd(&hist[k & 0xffffu], 1ull);
    }
}

/* From the top bin down: the bin holding the k-th largest (1-based), and the
 * count strictly above it. */
static uint32_t kth_bin(const unsigned long long *h, int64_t k, int64_t *above)
{
    int64_t cum = 0;
    for (int b = KTH_BINS - 1; b >= 0; b--) {
        if (cum + (int64_t)h[b] >= k) {
            *above = cum;
            return (uint32_t)b;
        }
        cum += (int64_t)h[b];
    }
    *above = cum;
    return 0;
}

extern "C" int wn_cuda_kth_largest(const float *x, int64_t n, int64_t k, float *value, int64_t *above)
{
    ARG_CHECK(x && value && above && n > 0 && k >= 1 && k <= n);
    float *ws;
    int rc = workspace(&ws, 2 * KTH_BINS); /* KTH_BINS 64-bit counters */
    if (rc) return rc;
    unsigned long long *d_hist = (unsigned long long *)ws;
    static unsigned long long h[KTH_BINS];
    int64_t above_hi = 0, above_lo = 0;
    uint32_t hi = 0, lo = 0;
    unsigned blocks = (unsigned)((n + 255) / 256 < 65535 ? (n + 255) / 256 : 65535);
    for (int pass = 0; pass < 2; pass++) {
        CUDA_TRY(cudaMemset(d_hist, 0, sizeof h));
        kth_hist_kernel<<<blocks, 256>>>(d_hist, x, n, pass, hi);
        LAUNCHED("kth_hist");
        CUDA_TRY(cudaMemcpy(h, d_hist, sizeof h, cudaMemcpyDeviceToHost));
        if (pass == 0) hi = kth_bin(h, k, &above_hi);
        else lo = kth_bin(h, k - above_hi, &above_lo);
    }
    uint32_t key = hi << 16 | lo, u = (key & 0x80000000u) ? key & 0x7fffffffu : ~key;
    memcpy(value, &u, 4);
    *above = above_hi + above_lo;
    return WN_CUDA_OK;
}
