/*
 * model.h - the bundled GPT-2 model: parameters, forward, backward, AdamW,
 * sampling. One model API with three users: `winnow train`, the `score`
 * stage (per-token losses of a reference model) and `synthesize`.
 *
 * Architecture: GPT-2 (pre-LayerNorm blocks, causal multi-head attention,
 * GELU (tanh approximation) MLP of width 4C, final LayerNorm, LM head tied to
 * the token embedding). float32 on the CPU with OpenMP; the CUDA path
 * (kernels/gpt_*.cu) computes the same within stated tolerances.
 *
 * Parameter layout is HF GPT-2's, tensor for tensor (so safetensors files
 * map 1:1 with no transposes): linear weights are Conv1D-style (in, out),
 * i.e. y = x @ W + b.
 *   wte.weight            (V, C)        token embedding; also the LM head
 *   wpe.weight            (maxT, C)     position embedding
 *   h.{l}.ln_1.weight/.bias             (C)
 *   h.{l}.attn.c_attn.weight (C, 3C)    .bias (3C)   q, k, v in that order
 *   h.{l}.attn.c_proj.weight (C, C)     .bias (C)
 *   h.{l}.ln_2.weight/.bias             (C)
 *   h.{l}.mlp.c_fc.weight   (C, 4C)     .bias (4C)
 *   h.{l}.mlp.c_proj.weight (4C, C)     .bias (C)
 *   ln_f.weight/.bias                   (C)
 * Initialisation (GPT-2): weights N(0, 0.02), the two residual projections
 * (attn.c_proj, mlp.c_proj) N(0, 0.02 / sqrt(2 L)), biases 0, LayerNorm
 * weights 1; drawn from a seeded generator, so a seed fixes the model.
 *
 * Ownership: the model owns parameters, gradients, optimizer moments and
 * activation buffers (sized at the first forward for B x T, regrown when a
 * larger batch comes). Inputs are borrowed for the call.
 */
#ifndef WN_MODEL_H
#define WN_MODEL_H

#include "wn.h"

typedef struct {
    int vocab;   /* V */
    int context; /* maxT: longest sequence */
    int layers;  /* L */
    int heads;   /* NH; dim % heads == 0 */
    int dim;     /* C */
} wn_gpt_config;

typedef struct wn_gpt wn_gpt;

/* One parameter tensor: HF name, shape (up to 2 dims), its data and gradient. */
typedef struct {
    char name[64];
    int ndim;
    int shape[2];
    size_t size; /* elements */
    float *data;
    float *grad;
} wn_tensor;

wn_err wn_gpt_new(wn_gpt **m, const wn_gpt_config *c, uint64_t seed, wn_errbuf *err);
void wn_gpt_free(wn_gpt *m);
const wn_gpt_config *wn_gpt_cfg(const wn_gpt *m);
size_t wn_gpt_num_params(const wn_gpt *m);
/* The parameter tensors in the order listed above (per layer: ln_1, c_attn,
 * attn.c_proj, ln_2, c_fc, mlp.c_proj, weights before biases). Returns the
 * count (2 + 12 L + 2), and points *out at an internal array. */
int wn_gpt_tensors(wn_gpt *m, wn_tensor **out);

/* Forward over B sequences of T tokens (T <= context). targets (B*T) may be
 * NULL (no loss). weights (B*T) may be NULL (every token weight 1): the loss
 * is sum(w * nll) / sum(w) over the batch (0 when all weights are 0).
 * Writes the loss to *loss when targets are given. Errors (codes only, no
 * message): WN_ERR_USAGE for B < 1, T < 1 or T > context; WN_ERR_INPUT for an
 * input or target id >= vocab or a negative or non-finite weight;
 * WN_ERR_NOMEM. A failed forward leaves no valid forward behind. */
wn_err wn_gpt_forward(wn_gpt *m, const uint32_t *inputs, const uint32_t *targets, const float *weights, int B,
                      int T, float *loss);
/* After a forward: logits (B, T, V) and, with targets, per-token negative
 * log-likelihoods (B, T). Valid until the next forward. */
const float *wn_gpt_logits(const wn_gpt *m);
const float *wn_gpt_token_nll(const wn_gpt *m);

/* Decoding with a key/value cache: the keys and values of every position
 * each of `slots` sequences has been fed so far (L x context x C floats
 * twice per slot), so a new token costs one row through the model instead of
 * a forward over the whole window. Rows go through the same functions as
 * in wn_gpt_forward (attention: the same per-row routine over the cached
 * keys), so the logits are those of a forward over the slot's tokens from
 * its reset on: bit for bit when the call has the forward's rows, else to
 * float rounding (with OpenBLAS a row's product may change in the last bits
 * with the number of rows in the call; tests/unit/test_generate.c). */
typedef struct wn_gpt_kv wn_gpt_kv;
wn_err wn_gpt_kv_new(const wn_gpt *m, int slots, wn_gpt_kv **kv);
void wn_gpt_kv_free(wn_gpt_kv *kv);
void wn_gpt_kv_reset(wn_gpt_kv *kv, int slot); /* forget the slot's positions */
int wn_gpt_kv_len(const wn_gpt_kv *kv, int slot);
/* Feeds n new tokens: row i is tokens[i] of sequence slot[i], at that slot's
 * next position (a slot's rows in their order). The logits of the rows with
 * want[i] set go, in row order, to wn_gpt_kv_logits (*nwant rows of V),
 * valid until the next call. Errors: WN_ERR_USAGE when a slot would pass the
 * context (nothing fed then) or is out of range; WN_ERR_INPUT for an id >=
 * vocab; WN_ERR_NOMEM. */
wn_err wn_gpt_kv_forward(wn_gpt *m, wn_gpt_kv *kv, const int *slot, const uint32_t *tokens, int n,
                         const unsigned char *want, int *nwant);
const float *wn_gpt_kv_logits(const wn_gpt_kv *kv);

void wn_gpt_zero_grad(wn_gpt *m);
/* Gradients of the last forward's loss, accumulated into the tensors' grad.
 * WN_ERR_STATE when the last forward failed or had no targets. */
wn_err wn_gpt_backward(wn_gpt *m);
/* Per-example gradient features (the score stage): a backward through the
 * LM head and the top `blocks` transformer blocks only (0 = LM head only),
 * that leaves the model's parameter gradients untouched and instead hands
 * each linear layer y = x W (W: in x out, dW = X^T G) to fn, from the top:
 * "lm_head" (X = ln_f output, G = dlogits; the head tied to wte), then per
 * block l, "h.l.mlp.c_proj", "h.l.mlp.c_fc", "h.l.attn.c_proj",
 * "h.l.attn.c_attn". X (N x in) and G (N x out), N = B T rows, are borrowed
 * for the call. G is the gradient of the last forward's weighted loss
 * sum(w nll) / sum(w) (the caller rescales per sequence). Biases and
 * LayerNorm parameters are left out. WN_ERR_STATE without a forward with
 * targets, WN_ERR_USAGE for blocks outside [0, layers]. */
typedef void (*wn_gpt_layer_fn)(void *ctx, const char *name, const float *X, const float *G, int N, int in, int out);
wn_err wn_gpt_backward_layers(wn_gpt *m, int blocks, wn_gpt_layer_fn fn, void *ctx);

/* Global L2 norm of all gradients; if max_norm > 0 and the norm exceeds it,
 * gradients are scaled down to max_norm. Returns the norm before clipping. */
float wn_gpt_clip_grad(wn_gpt *m, float max_norm);

typedef struct {
    float lr, beta1, beta2, eps, weight_decay;
} wn_adamw;
/* One AdamW step (t is 1-based, for bias correction). Weight decay applies
 * to 2-D tensors only (embeddings and linear weights), not biases or
 * LayerNorm parameters. */
void wn_gpt_adamw(wn_gpt *m, const wn_adamw *o, int t);
/* Optimizer moments (m, v), each wn_gpt_num_params floats in tensor order,
 * for checkpoints; NULL while the moments are 8-bit. */
float *wn_gpt_adam_m(wn_gpt *m);
float *wn_gpt_adam_v(wn_gpt *m);

/* 8-bit AdamW moments (adam8.h: block-wise dynamic quantization after
 * Dettmers et al. 2022, blocks of 256 elements within each tensor). on = 1
 * quantizes the current float moments and frees them (2 bytes + 8/256 per
 * parameter instead of 8); on = 0 dequantizes back. wn_gpt_adamw then
 * updates the 8-bit state. WN_ERR_NOMEM leaves the model as it was. */
wn_err wn_gpt_set_adam8(wn_gpt *m, int on);
/* The 8-bit state (borrowed, for checkpoints and the device copy), when the
 * moments are 8-bit (returns 1; 0 otherwise, *s untouched; s may be NULL):
 * one code per parameter in tensor order for m and for v; one absmax per
 * block, each tensor's wn_adam8_blocks(size) blocks in tensor order; the
 * moment is maps[code] x absmax, maps = the signed map for m then the
 * unsigned one for v (wn_adam8_maps). */
typedef struct {
    uint8_t *code_m, *code_v;
    float *absmax_m, *absmax_v;
    const float *maps; /* 512 */
    size_t n, nblocks;
} wn_gpt_adam8_state;
int wn_gpt_adam8(wn_gpt *m, wn_gpt_adam8_state *s);

/* Activation recomputation (see model.c): the forward keeps each block's
 * output only and the backward recomputes a block's activations before its
 * gradients; the gradients are bit-identical, activation memory drops from
 * about L (16 N C + B NH T^2) to L N C + 15 N C + B NH T^2 floats, and a
 * step costs about a quarter more. Switching discards the last forward. */
void wn_gpt_set_recompute(wn_gpt *m, int on);

/* Linear warmup to max_lr over `warmup` steps, then cosine decay to min_lr at
 * step `total` (steps 0-based). */
float wn_lr_schedule(int step, int warmup, int total, float max_lr, float min_lr);

/* Samples the next token from the last position's logits of sequence b of
 * the last forward: temperature (<= 0: argmax) and top-k (0: all). *rng is a
 * xorshift64* state. */
uint32_t wn_gpt_sample(const wn_gpt *m, int b, int T, float temperature, int top_k, uint64_t *rng);

/* Memory (bytes) the CPU model needs for a forward + backward over B x T:
 * parameters, their gradients, AdamW's two moments, the stored activations
 * and activation gradients, and scratch; opts: WN_GPT_MEM_ADAM8 (8-bit
 * moments), WN_GPT_MEM_RECOMPUTE (activation recomputation), or'ed. */
typedef struct {
    double params, grads, optimizer, activations, scratch, total;
} wn_gpt_mem;
enum { WN_GPT_MEM_ADAM8 = 1, WN_GPT_MEM_RECOMPUTE = 2 };
void wn_gpt_memory(const wn_gpt_config *c, int B, int T, int opts, wn_gpt_mem *out);

/* Floating-point operations of one forward+backward over B*T tokens
 * (6 N per token for the matrix products plus attention), for MFU and
 * budget accounting. */
double wn_gpt_flops_per_step(const wn_gpt *m, int B, int T);

#endif
