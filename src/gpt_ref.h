/*
 * gpt_ref.h - plain C references for the GPT-2 trainer's CUDA kernels
 * (kernels/gpt_kernels.h): the same functions, signatures and semantics on
 * host memory, written as simple loops (sums in double) so they are easy to
 * check by eye. They are the oracle of tests/cuda/test_kernels.cu, not a
 * fast path: the CPU trainer is src/model.c.
 *
 * Everything in kernels/gpt_kernels.h's conventions holds here too (shapes,
 * row-major, += for parameter gradients, statuses), except that nothing is
 * asynchronous and no workspace is used: these functions never allocate.
 */
#ifndef WN_GPT_REF_H
#define WN_GPT_REF_H

#include <stddef.h>

#include "../kernels/gpt_kernels.h" /* the WN_CUDA_* statuses */

#ifdef __cplusplus
extern "C" {
#endif

int wn_ref_encoder_forward(float *out, const int *inp, const float *wte, const float *wpe, int B, int T, int C,
                           int V);
int wn_ref_encoder_backward(float *dwte, float *dwpe, const float *dout, const int *inp, int B, int T, int C);
int wn_ref_layernorm_forward(float *out, float *mean, float *rstd, const float *inp, const float *weight,
                             const float *bias, int N, int C);
int wn_ref_layernorm_backward(float *dinp, float *dweight, float *dbias, const float *dout, const float *inp,
                              const float *weight, const float *mean, const float *rstd, int N, int C);
int wn_ref_matmul_forward(float *out, const float *inp, const float *weight, const float *bias, int N, int C,
                          int OC, int trans_w);
int wn_ref_matmul_backward(float *dinp, float *dweight, float *dbias, const float *dout, const float *inp,
                           const float *weight, int N, int C, int OC, int trans_w);
int wn_ref_attention_forward(float *out, float *qkvr, float *att, const float *inp, int B, int T, int C, int NH);
int wn_ref_attention_backward(float *dinp, const float *dout, const float *qkvr, const float *att, int B, int T,
                              int C, int NH);
int wn_ref_gelu_forward(float *out, const float *inp, size_t n);
int wn_ref_gelu_backward(float *dinp, const float *inp, const float *dout, size_t n);
int wn_ref_residual_forward(float *out, const float *a, const float *b, size_t n);
int wn_ref_residual_backward(float *da, float *db, const float *dout, size_t n);
int wn_ref_softmax_xent_forward(float *nll, const float *logits, const int *targets, int N, int V);
int wn_ref_softmax_xent_backward(float *dlogits, const float *logits, const int *targets, const float *weights,
                                 float scale, int N, int V);
int wn_ref_adamw(float *params, const float *grads, float *m, float *v, size_t n, float lr, float beta1, float beta2,
                 float eps, float weight_decay, int t, int decay);
int wn_ref_sumsq(double *out, const float *x, size_t n); /* *out: sum of x^2, in double */
int wn_ref_scale(float *x, float k, size_t n);
/* 8-bit AdamW (kernels/gpt_kernels.h, wn_cuda_adamw8): the oracle of both the
 * kernel and src/adam8.c, written independently of the latter (nearest map
 * entry by a linear scan, one block after the other); the same float
 * operations in the same order, so src/adam8.c must match it bit for bit. */
int wn_ref_adamw8(float *params, const float *grads, unsigned char *qm, float *absmax_m, unsigned char *qv,
                  float *absmax_v, const float *maps, size_t n, float lr, float beta1, float beta2, float eps,
                  float weight_decay, int t, int decay);

/* bf16 (the kernels' mixed-precision functions): one value rounded to
 * nearest even, and back (exact). */
uint16_t wn_ref_bf16(float x);
float wn_ref_bf16_float(uint16_t h);
int wn_ref_to_bf16(uint16_t *out, const float *in, size_t n);
int wn_ref_matmul_forward_bf16(float *out, const uint16_t *inp, const uint16_t *weight, const float *bias, int N,
                               int C, int OC, int trans_w);
int wn_ref_matmul_backward_bf16(float *dinp, float *dweight, float *dbias, const float *dout, const uint16_t *inp,
                                const uint16_t *weight, int N, int C, int OC, int trans_w);

#ifdef __cplusplus
}
#endif

#endif
