/*
 * fit.h - trains the bundled GPT on a token array in memory: how a pipeline
 * makes its own proxy and reference models (the `score` stage trains a
 * reference model on a target set, a base model on a sample of the pool)
 * without shards or a separate `winnow train` run.
 *
 * Each step takes `batch` windows of seq_len + 1 tokens at offsets drawn
 * from a splitmix64 stream seeded by `seed` (the same windows whatever the
 * thread count), and does forward, backward, gradient clipping and one
 * AdamW step (betas 0.9/0.95, as `winnow train`) at the warmup + cosine
 * learning rate. Deterministic: same tokens, options and seed, same model.
 */
#ifndef WN_FIT_H
#define WN_FIT_H

#include "model.h"

typedef struct {
    int steps, batch, seq_len, warmup;
    float lr, min_lr, weight_decay, clip;
    uint64_t seed;
    /* memory, as `winnow train --adam-8bit`, `--recompute`: 1 switches the
     * model's option on before training (it stays on); 0 leaves it as is */
    int adam_8bit, recompute;
} wn_fit_opts;

typedef struct {
    float first_loss; /* loss of the first step */
    float last_loss;  /* mean loss of the last min(10, steps) steps */
    double seconds, flops;
} wn_fit_result;

/* tok[0..n) must hold at least seq_len + 1 tokens (the window shrinks to
 * n - 1 when fewer: a tiny target set still trains). */
wn_err wn_gpt_fit(wn_gpt *m, const uint32_t *tok, size_t n, const wn_fit_opts *o, wn_fit_result *r,
                  wn_errbuf *err);

#endif
