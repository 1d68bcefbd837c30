/*
 * gpt_cuda.h - the GPT-2 model of model.h on a CUDA device: a device copy of
 * a wn_gpt's parameters, gradients, AdamW moments and activations, driven
 * through the kernels of kernels/gpt_kernels.h (cuBLAS for the matrix
 * products). The operations are the CPU model's, with the same meaning
 * (model.h): forward with optional per-token weights (loss = sum(w nll) /
 * sum(w)), backward, zero_grad, global-norm clipping, AdamW with weight decay
 * on 2-D tensors only. The CPU model stays the reference: the results agree
 * within the tolerances that tests/cuda/test_gpt_cuda.c states, not bit for
 * bit, and the GPU path is not bitwise reproducible run to run (the token
 * embedding's gradient is a scatter of atomic adds).
 *
 * Built from src/gpt_cuda.c in both builds: with CUDA (WN_CUDA=1) it does the
 * work; in the CPU-only build every function exists and fails with a "built
 * without CUDA" message (wn_gpt_cuda_new returns WN_ERR_USAGE), so callers
 * never need #if.
 *
 * Ownership: a wn_gpt_cuda owns its device memory (parameters, gradients,
 * moments: 4 x wn_gpt_num_params floats, or 2 floats + 2 bytes and a scale
 * per 256 when the model's moments are 8-bit; activations for the largest B x T
 * seen, regrown on demand) and a host copy of the last forward's per-token
 * nll. It keeps no pointer to the wn_gpt it was made from: uploads and
 * downloads name the wn_gpt explicitly, which must have the same shape.
 * Host arrays passed in are borrowed for the call. One host thread drives
 * one wn_gpt_cuda at a time (the kernels share one workspace), on the device
 * that was current when it was made (device 0 unless wn_cuda_set_device of
 * kernels/device.h chose another, as each MPI rank of cmd_train.c does).
 *
 * Errors: wn_err codes with a message in *err that carries the CUDA side's
 * wn_cuda_last_error(): WN_ERR_USAGE for a bad call (B, T out of range, no
 * device, built without CUDA), WN_ERR_INPUT for a token id >= vocab or a
 * negative or non-finite weight, WN_ERR_STATE for a backward without a
 * forward with targets, WN_ERR_NOMEM when device (or host) memory runs out,
 * WN_ERR_IO for any other CUDA or cuBLAS failure (the device could not be
 * used). After an error the activations are invalid (forward again);
 * parameters and moments are as the last successful call left them.
 */
#ifndef WN_GPT_CUDA_H
#define WN_GPT_CUDA_H

#include "model.h"

typedef struct wn_gpt_cuda wn_gpt_cuda;

/* Copies m's parameters and AdamW moments to the device (gradients start at
 * zero). The device's moments take the form of m's: float, or 8-bit when
 * wn_gpt_set_adam8 made them so (AdamW then runs wn_cuda_adamw8; uploads and
 * downloads move the codes and scales, and need a model of the same form).
 * allow_tf32 = 1 lets cuBLAS run the fp32 matrix products on TF32 tensor
 * cores (faster, about 1e-3 relative error per product); 0 keeps full fp32. The setting is process-wide (the kernels share one cuBLAS handle):
 * the last wn_gpt_cuda_new decides. Loads cuBLAS (dlopen) so that a missing
 * library is reported here. */
wn_err wn_gpt_cuda_new(wn_gpt_cuda **out, wn_gpt *m, int allow_tf32, wn_errbuf *err);
void wn_gpt_cuda_free(wn_gpt_cuda *g); /* accepts NULL */

/* Forward over B sequences of T tokens (host arrays of B*T ids), as
 * wn_gpt_forward: targets may be NULL (no loss), weights may be NULL (all
 * 1). With targets, waits for the device, downloads the per-token nll and
 * writes the loss (summed on the host in double, as the CPU model does). */
wn_err wn_gpt_cuda_forward(wn_gpt_cuda *g, const uint32_t *inputs, const uint32_t *targets, const float *weights,
                           int B, int T, float *loss, wn_errbuf *err);
/* Host copy of the last forward's per-token nll (B*T floats), or NULL when
 * it had no targets or failed. Valid until the next forward. */
const float *wn_gpt_cuda_token_nll(const wn_gpt_cuda *g);

wn_err wn_gpt_cuda_zero_grad(wn_gpt_cuda *g, wn_errbuf *err);
/* Gradients of the last forward's loss, accumulated into the device
 * gradients. The logits' buffer becomes the logits' gradient (as in llm.c,
 * which saves a (B*T, V) buffer), so unlike the CPU model a second backward
 * needs a new forward: WN_ERR_STATE otherwise, and when the forward had no
 * targets. */
wn_err wn_gpt_cuda_backward(wn_gpt_cuda *g, wn_errbuf *err);
/* Per-example gradient features on the device (the score stage), as
 * wn_gpt_backward_layers (model.h): a backward through the LM head and the
 * top `blocks` blocks only that leaves the device gradients untouched and
 * hands each linear layer y = x W to fn, in the same order and with the same
 * names ("lm_head", then per block from the top "h.l.mlp.c_proj",
 * "h.l.mlp.c_fc", "h.l.attn.c_proj", "h.l.attn.c_attn"), but with X (N x in)
 * and G (N x out) in DEVICE memory, valid during the call. G is the gradient
 * of the last forward's weighted loss. fn returns WN_OK or an error that
 * stops the backward and is returned (fn fills err). Uses up the forward
 * like wn_gpt_cuda_backward (the logits become their gradient). */
typedef wn_err (*wn_gpt_cuda_layer_fn)(void *ctx, const char *name, const float *X, const float *G, int N, int in,
                                       int out, wn_errbuf *err);
wn_err wn_gpt_cuda_backward_layers(wn_gpt_cuda *g, int blocks, wn_gpt_cuda_layer_fn fn, void *ctx, wn_errbuf *err);
/* EL2N per token of the last forward (with targets; before any backward):
 * el2n (host, B*T) = ||softmax(logits) - onehot(target)||_2, computed on the
 * device from the logits (kernels/score_kernels.h). */
wn_err wn_gpt_cuda_token_el2n(wn_gpt_cuda *g, float *el2n, wn_errbuf *err);
/* A layer's Kronecker projection matrices on the device, to turn the X and
 * G that wn_gpt_cuda_backward_layers hands out into per-example gradient
 * features without copying them to the host (wn_cuda_kron_project of
 * kernels/score_kernels.h; the math is wn_kron_project's, src/gradproj.h).
 * new copies Pin (kin x in) and Pout (kout x out) to the device. apply
 * writes (overwrites) host feats (nseq x kin x kout) from device X (rows x
 * in) and G (rows x out), sequences s = rows start[s] .. start[s+1]-1, each
 * scaled by scale[s] (host arrays; scale may be NULL for all 1). Full fp32
 * (no TF32). */
typedef struct wn_cuda_proj wn_cuda_proj;
wn_err wn_cuda_proj_new(wn_cuda_proj **out, const float *Pin, int kin, int in, const float *Pout, int kout, int outd,
                        wn_errbuf *err);
void wn_cuda_proj_free(wn_cuda_proj *p); /* accepts NULL */
wn_err wn_cuda_proj_apply(wn_cuda_proj *p, const float *X, const float *G, const int64_t *start, int nseq,
                          const float *scale, float *feats, wn_errbuf *err);

/* Copies rows of the last forward's logits (rows[i] in [0, B*T), each V
 * floats) to out (n x V) on the host: for sampling, which needs one row per
 * sequence. WN_ERR_STATE without a valid forward. */
wn_err wn_gpt_cuda_logits_rows(wn_gpt_cuda *g, const int64_t *rows, int n, float *out, wn_errbuf *err);

/* Device bytes one forward over B sequences of T tokens needs for its
 * activations and token buffers (what ensure_buffers allocates). */
size_t wn_gpt_cuda_forward_bytes(const wn_gpt_config *c, int B, int T);

/* Mixed precision: on = 1 makes every matrix product bf16 x bf16 with fp32
 * accumulation (cublasGemmEx): the parameters stay fp32 on the device (the
 * master weights that AdamW updates) and a bf16 copy of them is refreshed
 * after each upload and AdamW step; the five activations that only the
 * products read (ln_1, attention output, ln_2, GELU output, ln_f) are kept
 * in bf16 (half the memory), everything else (residual stream, LayerNorm
 * statistics, attention, logits, gradients) stays fp32; the backward rounds
 * each product's output gradient to bf16. The loss tracks the fp32 run's
 * within the tolerance tests/e2e/test_train_device.sh states, not closely.
 * Invalidates the last forward. wn_gpt_cuda_backward_layers refuses bf16. */
wn_err wn_gpt_cuda_set_bf16(wn_gpt_cuda *g, int on, wn_errbuf *err);

/* Global L2 norm of all gradients into *norm (summed in double,
 * deterministically); if max_norm > 0 and the norm exceeds it, gradients
 * are scaled down to max_norm. Waits for the device. */
wn_err wn_gpt_cuda_clip_grad(wn_gpt_cuda *g, float max_norm, float *norm, wn_errbuf *err);
/* One AdamW step (t 1-based), weight decay on 2-D tensors only. */
wn_err wn_gpt_cuda_adamw(wn_gpt_cuda *g, const wn_adamw *o, int t, wn_errbuf *err);
/* Data parallelism (cmd_train.c under MPI): the device gradients are one
 * array of wn_gpt_num_params floats in model.h tensor order, which the ranks
 * sum between the backward and clipping. grad_data returns it (device
 * memory; *n = its length) for an NCCL all-reduce (nccl.h); scale_grad
 * multiplies it by k; grad_copy copies it to (to_host = 1) or from a host
 * array of the same length, for the host-staged all-reduce (mpi.h), waiting
 * for the device. */
float *wn_gpt_cuda_grad_data(wn_gpt_cuda *g, size_t *n);
wn_err wn_gpt_cuda_scale_grad(wn_gpt_cuda *g, float k, wn_errbuf *err);
wn_err wn_gpt_cuda_grad_copy(wn_gpt_cuda *g, float *host, int to_host, wn_errbuf *err);
/* Waits for the queued work and reports any asynchronous failure. */
wn_err wn_gpt_cuda_sync(wn_gpt_cuda *g, wn_errbuf *err);

/* What wn_gpt_cuda_download / _upload copy (flags, or'ed). */
enum {
    WN_GPT_CUDA_PARAMS = 1,  /* the tensors' data */
    WN_GPT_CUDA_GRADS = 2,   /* the tensors' grad */
    WN_GPT_CUDA_MOMENTS = 4  /* wn_gpt_adam_m / wn_gpt_adam_v */
};
/* Device -> m (same shape as the model g was made from), e.g. parameters
 * and moments before a checkpoint, parameters before sampling on the CPU. */
wn_err wn_gpt_cuda_download(wn_gpt_cuda *g, wn_gpt *m, int what, wn_errbuf *err);
/* m -> device. */
wn_err wn_gpt_cuda_upload(wn_gpt_cuda *g, const wn_gpt *m, int what, wn_errbuf *err);

/* The device, e.g. "NVIDIA H100 80GB HBM3 (compute 9.0, 79.1 GiB)". */
const char *wn_gpt_cuda_device(const wn_gpt_cuda *g);
/* The device's dense (no sparsity) peak in FLOP/s for the precision g's
 * matrix products use (fp32, or TF32 with allow_tf32), from a small table of
 * NVIDIA datasheet figures (H100, H200, A100); 0 when the device is not in
 * it. *what (may be NULL) names it, e.g. "H100 SXM dense TF32 peak, 494.7
 * TFLOP/s". For MFU: model FLOPs per second / peak. */
double wn_gpt_cuda_peak_flops(const wn_gpt_cuda *g, const char **what);

#endif
