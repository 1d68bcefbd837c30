/*
 * generate.h - text generation with the bundled GPT (model.h): sampling with
 * temperature, top-k and top-p, and batched continuation of many prompts on
 * the CPU. Users: the `synthesize` stage (model mode) and `winnow serve`.
 *
 * Batching: sequences of different lengths share one forward by padding on
 * the right; causal attention means a position never sees the padding after
 * it, so sequence b's next-token logits are read at its own last position.
 * Prompts are continued in fixed groups of `batch`, in order, and a group's
 * forwards depend only on its sequences, so the result is a function of the
 * prompts, their seeds and `batch` alone (not of the thread count: the
 * model's forward is bit-identical for any OMP_NUM_THREADS). On the
 * hand-written matrix-product path it does not depend on `batch` either (each
 * row is summed in a fixed order); with OpenBLAS it may, in the last bits.
 * A sequence longer than the context is continued from its last `context`
 * tokens.
 *
 * On the CPU a sequence keeps its keys and values (wn_gpt_kv, model.h) while
 * it fits the context: its prompt is fed once, then one token a step, instead
 * of a forward over the whole window each step (the prompts of a group feed
 * together, in pieces of at most 256 rows). Once a sequence passes the
 * context its window slides, positions shift, and it goes back to a forward
 * over its last `context` tokens each step. The cache holds 2 L context C
 * floats per sequence of the group; when that cannot be allocated, or with
 * no_kv_cache, every step runs the window's forward. The GPU path (`gpu`)
 * runs the window's forward every step.
 */
#ifndef WN_GENERATE_H
#define WN_GENERATE_H

#include "gpt_cuda.h"
#include "model.h"

typedef struct {
    float temperature; /* <= 0: greedy (argmax, lowest id on ties) */
    int top_k;         /* 0 = all */
    float top_p;       /* nucleus: keep the most probable ids up to this mass; >= 1 = all */
    int max_tokens;    /* new tokens per prompt, >= 1 */
    int64_t stop_id;   /* a token that ends a sequence (not kept), -1 = none */
    int no_kv_cache;   /* 1: a forward over the window every step (the reference) */
} wn_gen_opts;

/* Scratch for wn_gen_pick (reused across calls; free with wn_gen_scratch_free). */
typedef struct wn_gen_cand wn_gen_cand;
typedef struct {
    wn_gen_cand *c;
    size_t cap;
} wn_gen_scratch;
void wn_gen_scratch_free(wn_gen_scratch *s);

/* Picks the next token from logits[0..V): greedy, or a draw from the
 * softmax at `temperature` restricted to the top_k largest logits and then to
 * the smallest set of most probable ids whose mass reaches top_p (ties by
 * lower id), with one uniform from *rng (splitmix64). Returns the id, or -1
 * when out of memory. */
int64_t wn_gen_pick(const float *logits, int V, const wn_gen_opts *o, uint64_t *rng, wn_gen_scratch *s);

/* Continues prompts[0..n) (each at least one token, ids < vocab), `batch`
 * sequences per forward, appending up to max_tokens new ids to outs[i]
 * (cleared first). rngs[i] is prompt i's generator state. *forward_tokens
 * (may be NULL) adds the tokens run through the model. Errors: the forward's
 * codes (WN_ERR_INPUT for an id outside the vocabulary), WN_ERR_NOMEM. */
/* The same with the forwards on the GPU copy gpu of m (NULL: the CPU): each
 * step downloads one logits row per sequence and picks on the host. The GPU's
 * logits differ from the CPU's in the last bits, so a draw near a tie can
 * go the other way: same seed, same device => same text. */
wn_err wn_gen_run_on(wn_gpt *m, wn_gpt_cuda *gpu, const wn_ids *prompts, size_t n, int batch, const wn_gen_opts *o,
                     uint64_t *rngs, wn_ids *outs, uint64_t *forward_tokens, wn_errbuf *err);
wn_err wn_gen_run(wn_gpt *m, const wn_ids *prompts, size_t n, int batch, const wn_gen_opts *o, uint64_t *rngs,
                  wn_ids *outs, uint64_t *forward_tokens);

#endif
