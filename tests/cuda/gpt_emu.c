/*
 * gpt_emu.c - a host emulation of the CUDA side, for checking src/gpt_cuda.c
 * without a GPU: every function of kernels/gpt_kernels.h and kernels/device.h
 * on host memory, the kernels being their plain C references (src/gpt_ref.c,
 * same signatures and semantics). Linked with src/gpt_cuda.c (built with
 * WN_CUDA=1), src/model.c and tests/cuda/test_gpt_cuda.c into
 * build/cuda/test_gpt_emu, it runs part 3 of test_kernels (the GPU model
 * against the CPU model) with "device" = host: that checks gpt_cuda.c's own
 * work (buffer layout, the order and arguments of the kernel calls,
 * transposes, offsets, weights, clipping, AdamW, up/downloads) on any
 * machine. It does not check the CUDA kernels (test_kernels part 2 does,
 * on a GPU) nor anything about the device itself.
 *
 * "Device" allocations are filled with NaN bytes (0xff), as uninitialised
 * device memory could hold anything: a buffer read before it is written
 * shows up as a NaN loss or gradient.
 *
 * Compiled with WN_GPT_EMU_LIB it has no main and is linked into winnow
 * itself instead of the CUDA kernels (build/cuda/winnow_emu, CUDA builds):
 * `winnow train --device cuda` then runs cmd_train.c's GPU path, e.g. data
 * parallelism under mpirun (tests/e2e/test_mpi_train_device.sh with
 * WINNOW_MPI=build/cuda/winnow_emu), on a machine without a GPU. The MinHash
 * kernel is not emulated there: it fails, so minhash_dedup says so.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../kernels/device.h"
#include "../../kernels/gpt_kernels.h"
#include "../../kernels/minhash_kernels.h"
#include "../../kernels/score_kernels.h"
#include "../../src/gpt_ref.h"
#include "../../src/gradproj.h"

int wn_test_gpt_cuda(int have_gpu, int *passed, int *failed);

int wn_cuda_built(void) { return 1; }
int wn_cuda_device_count(void) { return 1; }
int wn_cuda_mem_info(size_t *free_bytes, size_t *total_bytes)
{
    if (free_bytes) *free_bytes = (size_t)8 << 30;
    if (total_bytes) *total_bytes = (size_t)16 << 30;
    return 0;
}
int wn_cuda_to_bf16(uint16_t *out, const float *in, size_t n) { return wn_ref_to_bf16(out, in, n); }
int wn_cuda_matmul_forward_bf16(float *out, const uint16_t *inp, const uint16_t *weight, const float *bias, int N,
                                int C, int OC, int trans_w)
{
    return wn_ref_matmul_forward_bf16(out, inp, weight, bias, N, C, OC, trans_w);
}
int wn_cuda_matmul_backward_bf16(float *dinp, float *dweight, float *dbias, const float *dout, const uint16_t *inp,
                                 const uint16_t *weight, int N, int C, int OC, int trans_w)
{
    return wn_ref_matmul_backward_bf16(dinp, dweight, dbias, dout, inp, weight, N, C, OC, trans_w);
}
/* the score kernels gpt_cuda.c calls (EL2N, projection), as their references */
const char *wn_cuda_score_last_error(void) { return ""; }
int wn_cuda_score_init(int allow_tf32)
{
    (void)allow_tf32;
    return WN_CUDA_OK;
}
int wn_cuda_kron_project(const float *X, const float *G, const int64_t *start, int nseq, const float *scale, int in,
                         int out, const float *Pin, int kin, const float *Pout, int kout, float *feats)
{
    static wn_kron_scratch ks; /* kept for the process, as the kernel's workspace */
    return wn_kron_project(&ks, X, G, start, nseq, scale, in, out, Pin, kin, Pout, kout, feats) ? WN_CUDA_ERR_NOMEM
                                                                                                 : WN_CUDA_OK;
}
int wn_cuda_token_nll_el2n(const float *logits, const uint32_t *targets, int64_t N, int V, float *nll, float *el2n)
{
    for (int64_t i = 0; i < N; i++)
        if (targets[i] >= (uint32_t)V) return WN_CUDA_ERR_TOKEN;
    wn_token_nll_el2n(logits, targets, N, V, nll, el2n);
    return WN_CUDA_OK;
}
int wn_cuda_device_describe(int i, char *buf, int n)
{
    if (i != 0) return -1;
    snprintf(buf, (size_t)n, "host emulation (tests/cuda/gpt_emu.c: the kernels' C references)");
    return 0;
}
int wn_cuda_set_device(int i) { return i == 0 ? 0 : -1; }
int wn_cuda_get_device(void) { return 0; }
int wn_cuda_device_pci_bus_id(int i, char *buf, int n)
{
    (void)i;
    (void)buf;
    (void)n;
    return -1; /* no PCI device behind the emulation */
}

int wn_cuda_gpt_init(int allow_tf32)
{
    (void)allow_tf32;
    return WN_CUDA_OK;
}
void wn_cuda_gpt_shutdown(void) {}
static char emu_msg[128];
const char *wn_cuda_last_error(void) { return emu_msg; }

int wn_cuda_alloc(void **p, size_t bytes)
{
    *p = malloc(bytes ? bytes : 1);
    if (!*p) {
        snprintf(emu_msg, sizeof emu_msg, "emulated allocation of %zu bytes failed", bytes);
        return WN_CUDA_ERR_NOMEM;
    }
    memset(*p, 0xff, bytes);
    return WN_CUDA_OK;
}
void wn_cuda_free(void *p) { free(p); }
int wn_cuda_upload(void *dst, const void *src, size_t bytes)
{
    memcpy(dst, src, bytes);
    return WN_CUDA_OK;
}
int wn_cuda_download(void *dst, const void *src, size_t bytes)
{
    memcpy(dst, src, bytes);
    return WN_CUDA_OK;
}
int wn_cuda_memset0(void *p, size_t bytes)
{
    memset(p, 0, bytes);
    return WN_CUDA_OK;
}
int wn_cuda_sync(void) { return WN_CUDA_OK; }

/* The kernels: their references, with the kernels' bad-id message. */
static int token_status(int rc, const char *what)
{
    if (rc == WN_CUDA_ERR_TOKEN) snprintf(emu_msg, sizeof emu_msg, "%s: an id is outside [0, V) (emulated)", what);
    return rc;
}
int wn_cuda_encoder_forward(float *out, const int *inp, const float *wte, const float *wpe, int B, int T, int C,
                            int V)
{
    return token_status(wn_ref_encoder_forward(out, inp, wte, wpe, B, T, C, V), "encoder_forward");
}
int wn_cuda_encoder_backward(float *dwte, float *dwpe, const float *dout, const int *inp, int B, int T, int C)
{
    return wn_ref_encoder_backward(dwte, dwpe, dout, inp, B, T, C);
}
int wn_cuda_layernorm_forward(float *out, float *mean, float *rstd, const float *inp, const float *weight,
                              const float *bias, int N, int C)
{
    return wn_ref_layernorm_forward(out, mean, rstd, inp, weight, bias, N, C);
}
int wn_cuda_layernorm_backward(float *dinp, float *dweight, float *dbias, const float *dout, const float *inp,
                               const float *weight, const float *mean, const float *rstd, int N, int C)
{
    return wn_ref_layernorm_backward(dinp, dweight, dbias, dout, inp, weight, mean, rstd, N, C);
}
int wn_cuda_matmul_forward(float *out, const float *inp, const float *weight, const float *bias, int N, int C,
                           int OC, int trans_w)
{
    return wn_ref_matmul_forward(out, inp, weight, bias, N, C, OC, trans_w);
}
int wn_cuda_matmul_backward(float *dinp, float *dweight, float *dbias, const float *dout, const float *inp,
                            const float *weight, int N, int C, int OC, int trans_w)
{
    return wn_ref_matmul_backward(dinp, dweight, dbias, dout, inp, weight, N, C, OC, trans_w);
}
int wn_cuda_attention_forward(float *out, float *qkvr, float *att, const float *inp, int B, int T, int C, int NH)
{
    return wn_ref_attention_forward(out, qkvr, att, inp, B, T, C, NH);
}
int wn_cuda_attention_backward(float *dinp, const float *dout, const float *qkvr, const float *att, int B, int T,
                               int C, int NH)
{
    return wn_ref_attention_backward(dinp, dout, qkvr, att, B, T, C, NH);
}
int wn_cuda_gelu_forward(float *out, const float *inp, size_t n) { return wn_ref_gelu_forward(out, inp, n); }
int wn_cuda_gelu_backward(float *dinp, const float *inp, const float *dout, size_t n)
{
    return wn_ref_gelu_backward(dinp, inp, dout, n);
}
int wn_cuda_residual_forward(float *out, const float *a, const float *b, size_t n)
{
    return wn_ref_residual_forward(out, a, b, n);
}
int wn_cuda_residual_backward(float *da, float *db, const float *dout, size_t n)
{
    return wn_ref_residual_backward(da, db, dout, n);
}
int wn_cuda_softmax_xent_forward(float *nll, const float *logits, const int *targets, int N, int V)
{
    return token_status(wn_ref_softmax_xent_forward(nll, logits, targets, N, V), "softmax_xent_forward");
}
int wn_cuda_softmax_xent_backward(float *dlogits, const float *logits, const int *targets, const float *weights,
                                  float scale, int N, int V)
{
    return wn_ref_softmax_xent_backward(dlogits, logits, targets, weights, scale, N, V);
}
int wn_cuda_adamw(float *params, const float *grads, float *m, float *v, size_t n, float lr, float beta1,
                  float beta2, float eps, float weight_decay, int t, int decay)
{
    return wn_ref_adamw(params, grads, m, v, n, lr, beta1, beta2, eps, weight_decay, t, decay);
}
int wn_cuda_adamw8(float *params, const float *grads, unsigned char *qm, float *absmax_m, unsigned char *qv,
                   float *absmax_v, const float *maps, size_t n, float lr, float beta1, float beta2, float eps,
                   float weight_decay, int t, int decay)
{
    return wn_ref_adamw8(params, grads, qm, absmax_m, qv, absmax_v, maps, n, lr, beta1, beta2, eps, weight_decay, t,
                         decay);
}
int wn_cuda_sumsq(double *out, const float *x, size_t n) { return wn_ref_sumsq(out, x, n); }
int wn_cuda_scale(float *x, float k, size_t n) { return wn_ref_scale(x, k, n); }

#ifdef WN_GPT_EMU_LIB
int wn_cuda_minhash_signatures(const uint64_t *h, const uint64_t *off, int64_t ndocs, const uint64_t *a,
                               const uint64_t *b, int nperm, uint64_t *sig)
{
    (void)h, (void)off, (void)ndocs, (void)a, (void)b, (void)nperm, (void)sig;
    return WN_CUDA_ERR_RUNTIME;
}
const char *wn_cuda_minhash_last_error(void) { return "not emulated (tests/cuda/gpt_emu.c)"; }
void wn_cuda_minhash_shutdown(void) {}
#else
int main(void)
{
    printf("test_gpt_emu: the GPU model's host code (src/gpt_cuda.c) on an emulated device whose kernels are\n"
           "their C references (src/gpt_ref.c); no CUDA kernel runs here\n");
    int passed, failed;
    wn_test_gpt_cuda(1, &passed, &failed);
    return failed ? 1 : 0;
}
#endif
