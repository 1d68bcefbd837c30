/*
 * gpt_kernels.h - the CUDA kernels of the GPT-2 trainer's GPU path
 * (kernels/gpt_kernels.cu), callable from C. Each has a plain C reference
 * with the same signature on host memory in src/gpt_ref.h (wn_ref_*), and
 * tests/cuda/test_kernels.cu compares the two (`make test-cuda`).
 *
 * Conventions (all functions):
 *   - Pointers are device pointers; float32 throughout; token ids are int.
 *   - Shapes are row-major and written next to each function. N = B*T rows.
 *   - Linear weights use model.h's (HF Conv1D) layout W (C, OC): y = x @ W + b.
 *     The matmul functions also take trans_w = 1 for W stored (OC, C), which
 *     is the tied LM head: logits = x @ wte^T with wte (V, C).
 *   - Parameter gradients (dwte, dwpe, dweight, dbias) ACCUMULATE (+=), so
 *     micro-batches add up and the caller zeroes once per step. Activation
 *     gradients (dinp) are OVERWRITTEN, except where a function says it
 *     accumulates (layernorm, residual: the residual stream's gradient is
 *     already there, as in llm.c).
 *   - Work is queued on the default stream and is asynchronous unless a
 *     function says it synchronizes; wn_cuda_sync waits and reports errors.
 *   - Each returns 0 (WN_CUDA_OK) or a WN_CUDA_ERR_* status, with a message
 *     in wn_cuda_last_error(). Nothing here prints or exits.
 *   - Some functions use an internal device workspace (grown on demand, freed
 *     by wn_cuda_gpt_shutdown); it is not thread-safe: one host thread drives
 *     these functions.
 * The CPU-only build does not compile this module.
 */
#ifndef WN_GPT_KERNELS_H
#define WN_GPT_KERNELS_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

enum {
    WN_CUDA_OK = 0,
    WN_CUDA_ERR_RUNTIME, /* a CUDA runtime call or kernel launch failed */
    WN_CUDA_ERR_CUBLAS,  /* a cuBLAS call failed */
    WN_CUDA_ERR_NOMEM,   /* device allocation failed */
    WN_CUDA_ERR_ARG,     /* bad shape or NULL pointer */
    WN_CUDA_ERR_TOKEN    /* a token id or target was outside [0, V) */
};

/* Creates the cuBLAS handle (once). allow_tf32 = 0 keeps fp32 GEMMs in full
 * precision (the tests need that); 1 lets cuBLAS use TF32 tensor cores.
 * Every other function initialises with allow_tf32 = 0 if this was not
 * called. Calling again switches the math mode. */
int wn_cuda_gpt_init(int allow_tf32);
/* Frees the handle and the workspace; accepts being called twice. */
void wn_cuda_gpt_shutdown(void);
/* Message of the last failure ("" when none). */
const char *wn_cuda_last_error(void);

/* Device memory for plain C callers. */
int wn_cuda_alloc(void **p, size_t bytes);
void wn_cuda_free(void *p); /* accepts NULL */
int wn_cuda_upload(void *dst, const void *src, size_t bytes);   /* host -> device */
int wn_cuda_download(void *dst, const void *src, size_t bytes); /* device -> host, synchronizes */
int wn_cuda_memset0(void *p, size_t bytes);
int wn_cuda_sync(void);

/* out (B,T,C) = wte[inp[b,t]] (V,C) + wpe[t] (maxT,C); inp (B,T).
 * Synchronizes to report WN_CUDA_ERR_TOKEN for an id outside [0, V). */
int wn_cuda_encoder_forward(float *out, const int *inp, const float *wte, const float *wpe, int B, int T, int C,
                            int V);
/* dwte (V,C) += scatter of dout (B,T,C) by inp (atomic adds, so the order of
 * the sums and hence the last bits vary run to run); dwpe (maxT,C) rows
 * 0..T-1 += sum over b of dout (deterministic). Ids are trusted (checked by
 * the forward). */
int wn_cuda_encoder_backward(float *dwte, float *dwpe, const float *dout, const int *inp, int B, int T, int C);

/* Per row of inp (N,C): mean (N), rstd (N) = 1/sqrt(var + 1e-5) (biased
 * variance), out (N,C) = (x - mean) * rstd * weight (C) + bias (C). */
int wn_cuda_layernorm_forward(float *out, float *mean, float *rstd, const float *inp, const float *weight,
                              const float *bias, int N, int C);
/* dinp (N,C) += , dweight (C) += , dbias (C) += ; from dout (N,C) and the
 * forward's inp, weight, mean, rstd. dweight and dbias may both be NULL
 * (input gradient only, as the score stage's partial backward wants).
 * Deterministic. */
int wn_cuda_layernorm_backward(float *dinp, float *dweight, float *dbias, const float *dout, const float *inp,
                               const float *weight, const float *mean, const float *rstd, int N, int C);

/* out (N,OC) = inp (N,C) @ W + bias (OC; may be NULL). W is (C,OC) when
 * trans_w = 0 (Conv1D), (OC,C) when trans_w = 1 (LM head). cuBLAS. */
int wn_cuda_matmul_forward(float *out, const float *inp, const float *weight, const float *bias, int N, int C,
                           int OC, int trans_w);
/* dinp (N,C) = dout (N,OC) @ W^T (overwritten; may be NULL to skip);
 * dweight (same layout as W) += (may be NULL to skip); dbias (OC) += column
 * sums of dout (may be NULL). */
int wn_cuda_matmul_backward(float *dinp, float *dweight, float *dbias, const float *dout, const float *inp,
                            const float *weight, int N, int C, int OC, int trans_w);

/* Mixed precision (winnow train --bf16): bf16 values are uint16_t bit
 * patterns (the top half of a float32). to_bf16 rounds to nearest even.
 * The bf16 matmuls take bf16 inp and W, accumulate in fp32 and write fp32
 * out / dinp / dweight (dweight +=, as above); the backward rounds dout to
 * bf16 for its products (dbias is summed from the fp32 dout). Same layouts,
 * NULLs and meaning as the fp32 pair. */
int wn_cuda_to_bf16(uint16_t *out, const float *in, size_t n);
int wn_cuda_matmul_forward_bf16(float *out, const uint16_t *inp, const uint16_t *weight, const float *bias, int N,
                                int C, int OC, int trans_w);
int wn_cuda_matmul_backward_bf16(float *dinp, float *dweight, float *dbias, const float *dout, const uint16_t *inp,
                                 const uint16_t *weight, int N, int C, int OC, int trans_w);

/* Causal multi-head self-attention. inp (B,T,3C) = q, k, v (as c_attn
 * writes them), NH heads of size hs = C/NH. Writes qkvr (3,B,NH,T,hs): q, k,
 * v permuted per head; att (B,NH,T,T): softmax(q k^T / sqrt(hs)) with zeros
 * above the diagonal; out (B,T,C): att @ v, heads concatenated. qkvr and att
 * are kept for the backward. Workspace: B*T*C floats. */
int wn_cuda_attention_forward(float *out, float *qkvr, float *att, const float *inp, int B, int T, int C, int NH);
/* dinp (B,T,3C) (overwritten) from dout (B,T,C) and the forward's qkvr and
 * att. Workspace: B*NH*T*T + 4*B*T*C floats. */
int wn_cuda_attention_backward(float *dinp, const float *dout, const float *qkvr, const float *att, int B, int T,
                               int C, int NH);

/* out = 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))), n elements. */
int wn_cuda_gelu_forward(float *out, const float *inp, size_t n);
/* dinp = gelu'(inp) * dout (overwritten; may alias dout). */
int wn_cuda_gelu_backward(float *dinp, const float *inp, const float *dout, size_t n);

/* out = a + b, n elements. */
int wn_cuda_residual_forward(float *out, const float *a, const float *b, size_t n);
/* da += dout, db += dout. */
int wn_cuda_residual_backward(float *da, float *db, const float *dout, size_t n);

/* Per row of logits (N,V): nll (N) = logsumexp(row) - row[targets[i]].
 * Synchronizes to report WN_CUDA_ERR_TOKEN for a target outside [0, V)
 * (its nll is set to 0). */
int wn_cuda_softmax_xent_forward(float *nll, const float *logits, const int *targets, int N, int V);
/* dlogits (N,V) = dl_i * (softmax(row) - onehot(targets[i])) with
 * dl_i = weights[i] * scale (weights may be NULL: 1). For the loss
 * sum(w * nll) / sum(w), pass scale = 1 / sum(w). dlogits may alias logits
 * (overwritten in place, as llm.c does to save the (N,V) buffer). */
int wn_cuda_softmax_xent_backward(float *dlogits, const float *logits, const int *targets, const float *weights,
                                  float scale, int N, int V);

/* One AdamW step over n parameters (t is 1-based, for bias correction):
 *   m = b1 m + (1-b1) g;  v = b2 v + (1-b2) g^2
 *   p -= lr * ( (m / (1-b1^t)) / (sqrt(v / (1-b2^t)) + eps) + wd * p )
 * with wd = weight_decay when decay != 0, else 0 (biases, LayerNorm). */
int wn_cuda_adamw(float *params, const float *grads, float *m, float *v, size_t n, float lr, float beta1,
                  float beta2, float eps, float weight_decay, int t, int decay);

/* Global gradient-norm clipping, in two calls (the trainer's clip_grad):
 * *out (HOST memory, a double) = sum of x[i]^2 over n elements, accumulated
 * in double. Per-thread sums over a grid that depends only on n, a fixed
 * tree per block, then the block sums added in order on the host: the same
 * bits on every run. Synchronizes. Workspace: 2 * min(blocks, 1024) floats. */
int wn_cuda_sumsq(double *out, const float *x, size_t n);
/* x *= k, n elements. */
int wn_cuda_scale(float *x, float k, size_t n);

/* ---- 8-bit AdamW: block-wise quantized moments (--adam-8bit) ------------
 * One AdamW step over n parameters whose moments are stored in 8 bits
 * (src/adam8.h explains the format): block b = elements [256 b, 256 b + 256)
 * holds absmax_m[b], absmax_v[b] and one code per element in qm, qv; a
 * moment is maps[code] * absmax with maps = 512 floats (device), the signed
 * map for m then the unsigned one for v, as wn_adam8_maps fills them. Per
 * block: dequantize, update m, v and the parameters exactly as wn_cuda_adamw
 * does, then the new absmax and the nearest code (ties to the lower one).
 * One thread block per quantization block. Written with round-to-nearest
 * intrinsics and no fused multiply-adds, so that it can match the C
 * reference (wn_ref_adamw8) bit for bit. */
#define WN_CUDA_ADAM8_BLOCK 256 /* = WN_ADAM8_BLOCK (src/adam8.h) */
int wn_cuda_adamw8(float *params, const float *grads, unsigned char *qm, float *absmax_m, unsigned char *qv,
                   float *absmax_v, const float *maps, size_t n, float lr, float beta1, float beta2, float eps,
                   float weight_decay, int t, int decay);

#ifdef __cplusplus
}
#endif

#endif
