/*
 * minhash_kernels.cu - MinHash signatures on the GPU (contract in
 * minhash_kernels.h; the math and the CPU reference in src/minhash.{h,c}).
 *
 * One block per document, one thread per permutation (128 threads; a
 * signature of more than 128 permutations takes several rounds). The
 * block stages the document's shingle hashes, already reduced mod p, in
 * shared memory a tile at a time; every thread then walks the tile with its
 * own (a, b) and keeps its minimum. The reads of the tile are broadcasts
 * (all threads read the same word), so the cost is the 64 x 64 -> 128-bit
 * products, which the device emulates with 32-bit multiply-adds
 * (a * x for the low word, __umul64hi for the high word).
 *
 * The modular product is the host's wn_mh_perm step for step:
 *   m = a x (< 2^122); r = (m mod 2^61) + (m >> 61)   (< 2^62)
 *   r += b (< 2^63);   r = (r mod 2^61) + (r >> 61);   r >= p ? r - p : r
 * so signatures are bit-identical to the CPU's. No atomics, no floating
 * point: the output does not depend on scheduling.
 */
#include <cuda_runtime.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>

#include "cuda_common.h"
#include "minhash_kernels.h"

#define MH_P ((1ull << 61) - 1)

enum { THREADS = 128, TILE = 1024 };

static uint64_t *d_h, *d_off, *d_ab, *d_sig;
static size_t cap_h, cap_off, cap_ab, cap_sig; /* bytes */
/* timing (wn_cuda_minhash_timing): before the uploads, after them, after
 * the kernels, after the download */
static cudaEvent_t g_ev[4];
static int g_timing, g_timed;

__device__ __forceinline__ uint64_t mh_mod(uint64_t x)
{
    x = (x & MH_P) + (x >> 61);
    return x >= MH_P ? x - MH_P : x;
}

__device__ __forceinline__ uint64_t mh_perm(uint64_t a, uint64_t b, uint64_t x)
{
    uint64_t lo = a * x, hi = __umul64hi(a, x);
    uint64_t r = (lo & MH_P) + ((lo >> 61) | (hi << 3));
    r += b;
    r = (r & MH_P) + (r >> 61);
    return r >= MH_P ? r - MH_P : r;
}

/* ab: a[0..nperm) then b[0..nperm). Block d writes sig[d*nperm ..). */
__global__ void minhash_kernel(const uint64_t *__restrict__ h, const uint64_t *__restrict__ off,
                               const uint64_t *__restrict__ ab, int nperm, int64_t d0, uint64_t *__restrict__ sig)
{
    __shared__ uint64_t tile[TILE];
    int64_t d = d0 + blockIdx.x;
    uint64_t s = off[d], e = off[d + 1];
    for (int k0 = 0; k0 < nperm; k0 += THREADS) {
        int k = k0 + (int)threadIdx.x;
        uint64_t a = k < nperm ? ab[k] : 0, b = k < nperm ? ab[nperm + k] : 0, m = UINT64_MAX;
        for (uint64_t t = s; t < e; t += TILE) { /* bounds are the same for the whole block */
            int n = e - t < TILE ? (int)(e - t) : TILE;
            __syncthreads();
            for (int i = threadIdx.x; i < n; i += THREADS) tile[i] = mh_mod(h[t + i]);
            __syncthreads();
            if (k < nperm)
                for (int i = 0; i < n; i++) {
                    uint64_t v = mh_perm(a, b, tile[i]);
                    m = v < m ? v : m;
                }
        }
        if (k < nperm) sig[d * nperm + k] = m;
    }
}

static int grow(uint64_t **p, size_t *cap, size_t bytes)
{
    if (bytes <= *cap) return WN_CUDA_OK;
    size_t want = *cap ? *cap : 1 << 16;
    while (want < bytes) want *= 2;
    cudaFree(*p);
    *p = NULL;
    *cap = 0;
    CUDA_TRY(cudaMalloc((void **)p, want));
    *cap = want;
    return WN_CUDA_OK;
}

extern "C" int wn_cuda_minhash_signatures(const uint64_t *h, const uint64_t *off, int64_t ndocs, const uint64_t *a,
                                          const uint64_t *b, int nperm, uint64_t *sig)
{
    g_msg[0] = 0;
    if (ndocs < 0 || nperm < 1 || nperm > 4096 || !off || !a || !b || (ndocs && !sig))
        return fail(WN_CUDA_ERR_ARG, "wn_cuda_minhash_signatures: bad argument (ndocs %lld, nperm %d)",
                    (long long)ndocs, nperm);
    if (!ndocs) return WN_CUDA_OK;
    size_t nh = (size_t)off[ndocs];
    if (nh && !h) return fail(WN_CUDA_ERR_ARG, "wn_cuda_minhash_signatures: no shingle hashes");
    int e;
    if ((e = grow(&d_h, &cap_h, (nh ? nh : 1) * 8)) || (e = grow(&d_off, &cap_off, (size_t)(ndocs + 1) * 8)) ||
        (e = grow(&d_ab, &cap_ab, (size_t)nperm * 16)) || (e = grow(&d_sig, &cap_sig, (size_t)ndocs * nperm * 8)))
        return e;
    if (g_timing) CUDA_TRY(cudaEventRecord(g_ev[0]));
    if (nh) CUDA_TRY(cudaMemcpy(d_h, h, nh * 8, cudaMemcpyHostToDevice));
    CUDA_TRY(cudaMemcpy(d_off, off, (size_t)(ndocs + 1) * 8, cudaMemcpyHostToDevice));
    CUDA_TRY(cudaMemcpy(d_ab, a, (size_t)nperm * 8, cudaMemcpyHostToDevice));
    CUDA_TRY(cudaMemcpy(d_ab + nperm, b, (size_t)nperm * 8, cudaMemcpyHostToDevice));
    if (g_timing) CUDA_TRY(cudaEventRecord(g_ev[1]));
    for (int64_t d0 = 0; d0 < ndocs; d0 += 1 << 30) { /* grid.x is at most 2^31 - 1 */
        int64_t nd = ndocs - d0 < (1 << 30) ? ndocs - d0 : (1 << 30);
        minhash_kernel<<<(unsigned)nd, THREADS>>>(d_h, d_off, d_ab, nperm, d0, d_sig);
        cudaError_t le = cudaGetLastError();
        if (le != cudaSuccess)
            return fail(WN_CUDA_ERR_RUNTIME, "minhash_kernel: launch failed: %s", cudaGetErrorString(le));
    }
    if (g_timing) CUDA_TRY(cudaEventRecord(g_ev[2]));
    CUDA_TRY(cudaMemcpy(sig, d_sig, (size_t)ndocs * nperm * 8, cudaMemcpyDeviceToHost));
    if (g_timing) {
        CUDA_TRY(cudaEventRecord(g_ev[3]));
        CUDA_TRY(cudaEventSynchronize(g_ev[3]));
        g_timed = 1;
    }
    return WN_CUDA_OK;
}

extern "C" int wn_cuda_minhash_timing(int on)
{
    g_msg[0] = 0;
    for (int i = 0; on && i < 4; i++)
        if (!g_ev[i]) CUDA_TRY(cudaEventCreate(&g_ev[i]));
    g_timing = on;
    g_timed = 0;
    return WN_CUDA_OK;
}

extern "C" int wn_cuda_minhash_last_times(float *upload_ms, float *kernel_ms, float *download_ms)
{
    if (!g_timing || !g_timed)
        return fail(WN_CUDA_ERR_ARG, "wn_cuda_minhash_last_times: no timed call (turn timing on first)");
    CUDA_TRY(cudaEventElapsedTime(upload_ms, g_ev[0], g_ev[1]));
    CUDA_TRY(cudaEventElapsedTime(kernel_ms, g_ev[1], g_ev[2]));
    CUDA_TRY(cudaEventElapsedTime(download_ms, g_ev[2], g_ev[3]));
    return WN_CUDA_OK;
}

extern "C" const char *wn_cuda_minhash_last_error(void) { return g_msg; }

extern "C" void wn_cuda_minhash_shutdown(void)
{
    cudaFree(d_h);
    cudaFree(d_off);
    cudaFree(d_ab);
    cudaFree(d_sig);
    d_h = d_off = d_ab = d_sig = NULL;
    cap_h = cap_off = cap_ab = cap_sig = 0;
    for (int i = 0; i < 4; i++) {
        if (g_ev[i]) cudaEventDestroy(g_ev[i]);
        g_ev[i] = NULL;
    }
    g_timing = g_timed = 0;
}
