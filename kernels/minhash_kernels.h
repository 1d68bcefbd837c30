/*
 * minhash_kernels.h - MinHash signatures on a CUDA device
 * (kernels/minhash_kernels.cu), callable from C. The CPU reference is
 * wn_mh_signatures in src/minhash.h, which takes the same arguments in the
 * same order and gives identical values (integer math: (a h + b) mod
 * 2^61 - 1, the minimum per permutation); tests/cuda/test_minhash_kernels.cu
 * compares the two.
 *
 * Division of work: the host normalizes the text and hashes the shingles
 * (xxh3, branchy byte work the CPU does well and which is ~10% of a
 * signature's CPU time); the device does the nperm modular products per
 * shingle and the minima (the other ~90%). Per shingle that is 8 bytes
 * over the bus against nperm x 8 multiply-adds.
 *
 * Conventions (as kernels/gpt_kernels.h, whose WN_CUDA_* status codes this
 * module returns):
 *   - Pointers are host memory; the call uploads, computes, downloads and
 *     synchronizes. Device buffers are kept and grown between calls; one
 *     host thread drives this module.
 *   - Returns 0 (WN_CUDA_OK) or a WN_CUDA_ERR_* status with a message in
 *     wn_cuda_minhash_last_error(). Nothing here prints or exits.
 * The CPU-only build links stand-ins from src/minhash.c that return
 * WN_CUDA_ERR_RUNTIME and say "built without CUDA".
 */
#ifndef WN_MINHASH_KERNELS_H
#define WN_MINHASH_KERNELS_H

#include <stdint.h>

#include "gpt_kernels.h" /* WN_CUDA_* statuses */

#ifdef __cplusplus
extern "C" {
#endif

/* sig[d*nperm + k] = min over i in [off[d], off[d+1]) of
 * (a[k] (h[i] mod p) + b[k]) mod p, p = 2^61 - 1; UINT64_MAX for a document
 * without shingles. off has ndocs + 1 entries, off[0] = 0 is not required
 * (h is indexed from 0). 1 <= nperm <= 4096. */
int wn_cuda_minhash_signatures(const uint64_t *h, const uint64_t *off, int64_t ndocs, const uint64_t *a,
                               const uint64_t *b, int nperm, uint64_t *sig);
/* Message of the last failure ("" when none). */
const char *wn_cuda_minhash_last_error(void);
/* Benchmarks (tests/bench/bench_minhash_gpu.c): with timing on, every call
 * records CUDA events around its uploads, its kernel launches and its
 * download, and wn_cuda_minhash_last_times gives their milliseconds on the
 * device's clock. Off by default (the events cost a little per call).
 * Both return 0 or a WN_CUDA_ERR_* status (last_times: when timing is off
 * or no call ran since it was turned on). */
int wn_cuda_minhash_timing(int on);
int wn_cuda_minhash_last_times(float *upload_ms, float *kernel_ms, float *download_ms);
/* Frees the device buffers; accepts being called twice. */
void wn_cuda_minhash_shutdown(void);

#ifdef __cplusplus
}
#endif

#endif
