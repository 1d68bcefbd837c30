/*
 * score_kernels.h - CUDA kernels for gradient- and loss-based data
 * selection scores (kernels/score_kernels.cu), callable from C. Each takes
 * the same arguments, in the same order, as its CPU reference in
 * src/gradproj.h (whose header gives the math), with the big arrays in
 * device memory; tests/cuda/test_score_kernels.cu compares the two
 * (`make test-cuda`).
 *
 * Conventions (as kernels/gpt_kernels.h, whose status codes WN_CUDA_* and
 * device-memory helpers wn_cuda_alloc / upload / download / free these
 * functions share):
 *   - float32, row-major; work is queued on the default stream and is
 *     asynchronous unless a function says it synchronizes.
 *   - Each returns 0 (WN_CUDA_OK) or a WN_CUDA_ERR_* status with a message in
 *     wn_cuda_score_last_error(). Nothing here prints or exits.
 *   - The projection uses its own cuBLAS handle (cuBLAS is opened with
 *     dlopen at first use, as in gpt_kernels.cu) and an internal device
 *     workspace grown on demand; one host thread drives these functions.
 * The CPU-only build does not compile this module.
 */
#ifndef WN_SCORE_KERNELS_H
#define WN_SCORE_KERNELS_H

#include <stdint.h>

#include "gpt_kernels.h" /* WN_CUDA_* statuses, wn_cuda_alloc and friends */

#ifdef __cplusplus
extern "C" {
#endif

/* Opens cuBLAS and creates this module's handle (once). allow_tf32 = 0
 * keeps the GEMMs in full fp32 (the default, and what the tests use); 1 lets
 * cuBLAS use TF32 tensor cores (about 1e-3 relative error per product).
 * Calling again switches the math mode. */
int wn_cuda_score_init(int allow_tf32);
/* Frees the handle and the workspace; accepts being called twice. */
void wn_cuda_score_shutdown(void);
/* Message of the last failure of a function of this module ("" when none). */
const char *wn_cuda_score_last_error(void);

/* feats (nseq, k_in, k_out) += scale[s] (X_s P_in^T)^T (G_s P_out^T): the
 * Kronecker-factored projection of wn_kron_project (src/gradproj.h).
 * Device: X (rows, in), G (rows, out), Pin (k_in, in), Pout (k_out, out),
 * feats. Host: start (nseq+1) and scale (nseq, may be NULL for all 1),
 * because they decide which cuBLAS calls to make. Rows start[0] ..
 * start[nseq]-1 are read. Workspace: (start[nseq]-start[0]) (k_in + k_out)
 * floats. Deterministic (no atomics; cuBLAS in its default mode). */
int wn_cuda_kron_project(const float *X, const float *G, const int64_t *start, int nseq, const float *scale, int in,
                         int out, const float *Pin, int kin, const float *Pout, int kout, float *feats);

/* Per row of logits (N, V) (device): nll[i] = logsumexp - logits[target],
 * el2n[i] = ||softmax - onehot(target)||_2, as wn_token_nll_el2n; targets
 * (N) on the device; nll or el2n may be NULL. One block per row, one read
 * of the row, fp32 sums. Synchronizes to report WN_CUDA_ERR_TOKEN for a
 * target >= V (that row's outputs are NaN). */
int wn_cuda_token_nll_el2n(const float *logits, const uint32_t *targets, int64_t N, int V, float *nll, float *el2n);

/* The k-th largest (1 <= k <= n) of x[0..n) (device, no NaN), exactly:
 * *value, and *above = how many are strictly greater (so k - *above of the
 * values equal to it are within the top k): the threshold of a top-k or of a
 * quantile, as wn_kth_largest (src/gradproj.h). Two 65,536-bin histogram
 * passes over order-preserving keys; synchronizes. */
int wn_cuda_kth_largest(const float *x, int64_t n, int64_t k, float *value, int64_t *above);

#ifdef __cplusplus
}
#endif

#endif
