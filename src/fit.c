/*
 * fit.c - in-memory training loop for pipeline-made models (fit.h).
 */
#include "fit.h"

#include <string.h>

wn_err wn_gpt_fit(wn_gpt *m, const uint32_t *tok, size_t n, const wn_fit_opts *o, wn_fit_result *r,
                  wn_errbuf *err)
{
    memset(r, 0, sizeof *r);
    if (n < 2) return wn_fail(err, WN_ERR_INPUT, "training needs at least 2 tokens, got %zu", n);
    int T = o->seq_len;
    if ((size_t)T + 1 > n) T = (int)(n - 1);
    if (T > wn_gpt_cfg(m)->context) T = wn_gpt_cfg(m)->context;
    if (o->adam_8bit && wn_gpt_set_adam8(m, 1)) return wn_fail(err, WN_ERR_NOMEM, "out of memory for 8-bit moments");
    if (o->recompute) wn_gpt_set_recompute(m, 1);
    int B = o->batch;
    uint32_t *in = wn_malloc((size_t)B * T * sizeof *in), *tg = wn_malloc((size_t)B * T * sizeof *tg);
    if (!in || !tg) {
        wn_free(in);
        wn_free(tg);
        return wn_fail(err, WN_ERR_NOMEM, "out of memory");
    }
    wn_adamw adam = {0, 0.9f, 0.95f, 1e-8f, o->weight_decay};
    uint64_t rng = o->seed ^ 0x5EEDF17ull;
    size_t span = n - (size_t)T; /* window starts in [0, span) */
    double t0 = wn_now(), tail = 0;
    int ntail = o->steps < 10 ? o->steps : 10;
    wn_err e = WN_OK;
    for (int step = 0; step < o->steps && !e; step++) {
        for (int b = 0; b < B; b++) {
            size_t off = (size_t)(wn_splitmix64(&rng) % span);
            memcpy(in + (size_t)b * T, tok + off, (size_t)T * sizeof *in);
            memcpy(tg + (size_t)b * T, tok + off + 1, (size_t)T * sizeof *tg);
        }
        float loss = 0;
        adam.lr = wn_lr_schedule(step, o->warmup, o->steps, o->lr, o->min_lr);
        if ((e = wn_gpt_forward(m, in, tg, NULL, B, T, &loss))) {
            e = wn_fail(err, e, "training forward failed (a token id outside the model's vocabulary?)");
            break;
        }
        wn_gpt_zero_grad(m);
        if ((e = wn_gpt_backward(m))) {
            e = wn_fail(err, e, "training backward failed");
            break;
        }
        wn_gpt_clip_grad(m, o->clip);
        wn_gpt_adamw(m, &adam, step + 1);
        if (!step) r->first_loss = loss;
        if (step >= o->steps - ntail) tail += loss;
    }
    r->last_loss = ntail ? (float)(tail / ntail) : 0;
    r->seconds = wn_now() - t0;
    r->flops = wn_gpt_flops_per_step(m, B, T) * o->steps;
    wn_free(in);
    wn_free(tg);
    return e;
}
