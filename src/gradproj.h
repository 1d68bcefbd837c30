/*
 * gradproj.h - gradient features for data selection on the CPU: random
 * projections of per-sequence gradients (LESS / TracIn-style influence, see
 * shared/reference/selection.md A1, A8, A11) and per-token loss and EL2N
 * (A7). These are the references of the CUDA kernels in
 * kernels/score_kernels.h (same arguments, device memory) and the path the
 * pipeline takes without a GPU.
 *
 * Kronecker-factored projection (LoGra). One linear layer y = x W + b with W
 * (in, out), model.h's (HF Conv1D) layout. For N token rows, X (N, in) holds
 * the layer's inputs and G (N, out) the gradient of the loss with respect to
 * its outputs. Sequence s owns rows start[s] .. start[s+1]-1, so its weight
 * gradient is dW_s = X_s^T G_s (in, out), a sum of one outer product per
 * token. With P_in (k_in, in) and P_out (k_out, out) the feature of s is
 *     F_s = P_in dW_s P_out^T = (X_s P_in^T)^T (G_s P_out^T)     (k_in, k_out)
 * i.e. vec(F_s) = (P_out kron P_in) vec(dW_s) with column-major vec: a
 * JL-style projection of the in*out-dimensional gradient to k_in*k_out
 * dimensions by a structured matrix that is never formed. Computed as two
 * GEMMs over all rows, Z = X P_in^T (N, k_in) and A = G P_out^T (N, k_out),
 * then Z_s^T A_s per sequence: per token 2 (out k_out + in k_in + k_in k_out)
 * FLOPs, against 2 in out k_in k_out for the dense projection of the
 * materialised gradient.
 *   - The tied LM head (logits = h wte^T) is in = C, out = V, X = h,
 *     G = dlogits; wte's own gradient (V, C) is dW_s^T, whose feature is F_s^T.
 *   - The bias gradient (column sums of G_s) is not included; append a
 *     constant-1 column to X (in + 1) to include it.
 *   - Scaling: the loss of sequence s is often the mean over its tokens, so
 *     its gradient is G_s / T_s: pass scale[s] = 1 / T_s and G unscaled.
 *
 * Rademacher matrices (wn_rademacher): entries +-1/sqrt(rows), so for any x
 * E ||P x||^2 = ||x||^2, and with independent P_in, P_out
 * E ||F_s||_F^2 = ||dW_s||_F^2. Use one stream per matrix (e.g. 2 * layer
 * for P_in, 2 * layer + 1 for P_out) under one seed per run.
 *
 * Determinism: every output is computed by one thread in a fixed order on a
 * fixed tiling, so results are bit-identical for any OMP_NUM_THREADS. With
 * OpenBLAS (WN_BLAS=1) each tile is one single-threaded cblas_sgemm call
 * (the first call sets openblas_set_num_threads(1), as src/model.c does):
 * results then differ from the plain loops in the last bits, and may differ
 * between OpenBLAS builds or CPUs.
 *
 * Ownership: inputs are borrowed for the call; the scratch owns its buffers
 * (grown on demand, never shrunk) until wn_kron_scratch_free. One scratch
 * per calling thread.
 */
#ifndef WN_GRADPROJ_H
#define WN_GRADPROJ_H

#include <stdint.h>

#include "wn.h"

#ifdef __cplusplus
extern "C" {
#endif

/* P (rows, cols), row-major, entries +-1/sqrt(rows). Entry e = i*cols + j
 * is bit (e % 64) of output number e / 64 of the splitmix64 generator
 * started at a key derived from (seed, stream): 1 gives -, 0 gives +. So
 * the matrix depends only on (seed, stream, rows, cols), not on threads, and
 * the first rows of a taller matrix with the same cols are the same up to
 * the 1/sqrt(rows) factor. */
void wn_rademacher(float *P, int rows, int cols, uint64_t seed, uint64_t stream);

/* Scratch for wn_kron_project: zero it (or call wn_kron_scratch_init)
 * before the first use. */
typedef struct {
    float *z, *a;          /* Z (rows, k_in), A (rows, k_out) */
    size_t z_cap, a_cap;   /* capacities in floats */
    int no_blas;           /* 1: plain loops even when built with OpenBLAS (tests) */
} wn_kron_scratch;

void wn_kron_scratch_init(wn_kron_scratch *s);
void wn_kron_scratch_free(wn_kron_scratch *s); /* accepts NULL; leaves it zeroed */

/* feats (nseq, k_in, k_out) += scale[s] * F_s for each sequence s (see
 * above), so several windows of one document, or several layers' calls
 * into separate feats, add up; the caller zeroes feats once.
 *   X (rows, in), G (rows, out): only rows start[0] .. start[nseq]-1 are read.
 *   start (nseq+1): non-decreasing, start[0] >= 0; empty sequences add 0.
 *   scale (nseq): may be NULL (all 1).
 *   Pin (k_in, in), Pout (k_out, out): e.g. from wn_rademacher.
 * Returns WN_ERR_NOMEM when the scratch cannot grow (feats untouched);
 * shapes are checked with WN_CHECK. */
wn_err wn_kron_project(wn_kron_scratch *s, const float *X, const float *G, const int64_t *start, int nseq,
                       const float *scale, int in, int out, const float *Pin, int kin, const float *Pout, int kout,
                       float *feats);

/* Per row i of logits (N, V) with target y = targets[i] < V (WN_CHECK):
 *   nll[i]  = logsumexp(row) - row[y]
 *   el2n[i] = || softmax(row) - onehot(y) ||_2   (in [0, sqrt 2))
 * computed from the row's maximum, sums in double, with
 * el2n^2 = sum_{j!=y} p_j^2 + (1 - p_y)^2 and 1 - p_y = sum_{j!=y} p_j, so a
 * confident row (p_y -> 1) keeps its relative accuracy instead of cancelling
 * in sum p^2 - 2 p_y + 1 (and nll = log1p(sum_{j!=y} e_j / e_y) there).
 * nll or el2n may be NULL (not written). Rows in
 * parallel (OpenMP); each row is one thread's, so results do not depend on
 * the thread count. */
/* The k-th largest (1 <= k <= n) of x[0..n) (no NaN) into *value, and how
 * many are strictly greater into *above: the reference of wn_cuda_kth_largest
 * (a sorted copy; WN_ERR_NOMEM, WN_ERR_USAGE for k outside [1, n]). */
wn_err wn_kth_largest(const float *x, int64_t n, int64_t k, float *value, int64_t *above);

void wn_token_nll_el2n(const float *logits, const uint32_t *targets, int64_t N, int V, float *nll, float *el2n);

#ifdef __cplusplus
}
#endif

#endif
