/*
 * generate.c - sampling and batched generation with the bundled GPT
 * (generate.h).
 */
#include "generate.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

struct wn_gen_cand {
    float l;
    uint32_t id;
    double p;
};

void wn_gen_scratch_free(wn_gen_scratch *s)
{
    wn_free(s->c);
    memset(s, 0, sizeof *s);
}

/* Higher logit first; ties to the lower id, so the order is total. */
static int cand_cmp(const void *a, const void *b)
{
    const wn_gen_cand *x = a, *y = b;
    if (x->l != y->l) return x->l > y->l ? -1 : 1;
    return (x->id > y->id) - (x->id < y->id);
}

int64_t wn_gen_pick(const float *l, int V, const wn_gen_opts *o, uint64_t *rng, wn_gen_scratch *s)
{
    int best = 0;
    for (int v = 1; v < V; v++)
        if (l[v] > l[best]) best = v;
    if (o->temperature <= 0 || o->top_k == 1) return best;
    if (s->cap < (size_t)V) {
        wn_gen_cand *c = wn_realloc(s->c, (size_t)V * sizeof *c);
        if (!c) return -1;
        s->c = c;
        s->cap = (size_t)V;
    }
    for (int v = 0; v < V; v++) s->c[v] = (wn_gen_cand){l[v], (uint32_t)v, 0};
    /* the naive full sort is the clear version; V log V is small next to a forward */
    qsort(s->c, (size_t)V, sizeof *s->c, cand_cmp);
    size_t n = o->top_k > 0 && o->top_k < V ? (size_t)o->top_k : (size_t)V;
    double mx = s->c[0].l, inv_t = 1.0 / o->temperature, sum = 0;
    for (size_t i = 0; i < n; i++) sum += s->c[i].p = exp(((double)s->c[i].l - mx) * inv_t);
    if (o->top_p > 0 && o->top_p < 1) { /* the smallest prefix holding top_p of the mass */
        double cum = 0, want = o->top_p * sum;
        size_t k = 0;
        while (k < n && cum < want) cum += s->c[k++].p;
        n = k ? k : 1;
        sum = cum > 0 ? cum : s->c[0].p;
    }
    double u = (double)(wn_splitmix64(rng) >> 11) * 0x1p-53 * sum, cum = 0;
    for (size_t i = 0; i < n; i++) {
        cum += s->c[i].p;
        if (u < cum) return s->c[i].id;
    }
    return s->c[n - 1].id;
}

wn_err wn_gen_run(wn_gpt *m, const wn_ids *prompts, size_t n, int batch, const wn_gen_opts *o, uint64_t *rngs,
                  wn_ids *outs, uint64_t *forward_tokens)
{
    wn_errbuf err;
    return wn_gen_run_on(m, NULL, prompts, n, batch, o, rngs, outs, forward_tokens, &err);
}

/* Feeds the cached sequences' new tokens (rows [0, n)), at most KV_ROWS rows a
 * call; the last row of each sequence asks for logits, which are copied to
 * lg in the order of the sequences. */
enum { KV_ROWS = 256 };

static wn_err kv_feed(wn_gpt *m, wn_gpt_kv *kv, const int *slot, const uint32_t *tok, const unsigned char *want,
                      size_t n, float *lg, int V)
{
    size_t got = 0;
    for (size_t i = 0; i < n;) {
        int k = n - i < KV_ROWS ? (int)(n - i) : KV_ROWS, nw;
        wn_err e = wn_gpt_kv_forward(m, kv, slot + i, tok + i, k, want + i, &nw);
        if (e) return e;
        memcpy(lg + got * (size_t)V, wn_gpt_kv_logits(kv), (size_t)nw * (size_t)V * sizeof *lg);
        got += (size_t)nw;
        i += (size_t)k;
    }
    return WN_OK;
}

wn_err wn_gen_run_on(wn_gpt *m, wn_gpt_cuda *gpu, const wn_ids *prompts, size_t n, int batch, const wn_gen_opts *o,
                     uint64_t *rngs, wn_ids *outs, uint64_t *forward_tokens, wn_errbuf *err)
{
    const wn_gpt_config *cfg = wn_gpt_cfg(m);
    int ctx = cfg->context, V = cfg->vocab;
    if (batch < 1) batch = 1;
    uint32_t *in = wn_malloc((size_t)batch * (size_t)ctx * sizeof *in);
    size_t *act = wn_malloc((size_t)batch * sizeof *act), *win = wn_malloc((size_t)batch * sizeof *win);
    /* the window path's rows (GPU: downloaded) and logits, one row per sequence */
    int64_t *rows = wn_malloc((size_t)batch * sizeof *rows);
    float *glog = wn_malloc((size_t)batch * (size_t)V * sizeof *glog);
    /* the cache (CPU): its rows, and one row of logits per sequence */
    wn_gpt_kv *kv = NULL;
    if (!gpu && !o->no_kv_cache && wn_gpt_kv_new(m, batch, &kv)) kv = NULL; /* no room: the window path */
    int *kslot = kv ? wn_malloc((size_t)batch * (size_t)ctx * sizeof *kslot) : NULL;
    uint32_t *ktok = kv ? wn_malloc((size_t)batch * (size_t)ctx * sizeof *ktok) : NULL;
    unsigned char *kwant = kv ? wn_malloc((size_t)batch * (size_t)ctx) : NULL;
    float *klog = kv ? wn_malloc((size_t)batch * (size_t)V * sizeof *klog) : NULL;
    const float **lrow = wn_malloc((size_t)batch * sizeof *lrow);
    wn_gen_scratch sc = {0};
    wn_err e = in && act && win && rows && glog && lrow && (!kv || (kslot && ktok && kwant && klog)) ? WN_OK
                                                                                                  : WN_ERR_NOMEM;
    err->msg[0] = 0;
    for (size_t i = 0; i < n; i++) outs[i].n = 0;
    for (size_t g0 = 0; !e && g0 < n; g0 += (size_t)batch) {
        size_t gn = n - g0 < (size_t)batch ? n - g0 : (size_t)batch, na = 0;
        for (size_t i = 0; i < gn; i++) {
            if (kv) wn_gpt_kv_reset(kv, (int)i);
            if (prompts[g0 + i].n) act[na++] = g0 + i; /* an empty prompt gets nothing */
        }
        while (!e && na) {
            /* the cached sequences (those that fit the context) feed their new tokens */
            size_t nk = 0, nc = 0, nw = 0;
            for (size_t r = 0; r < na; r++) {
                const wn_ids *p = &prompts[act[r]], *g = &outs[act[r]];
                size_t len = p->n + g->n;
                int s = (int)(act[r] - g0);
                if (!kv || len > (size_t)ctx) {
                    win[nw++] = r;
                    continue;
                }
                for (size_t k = (size_t)wn_gpt_kv_len(kv, s); k < len; k++) {
                    kslot[nk] = s;
                    ktok[nk] = k < p->n ? p->p[k] : g->p[k - p->n];
                    kwant[nk++] = k == len - 1;
                }
                lrow[r] = klog + nc++ * (size_t)V;
            }
            if (nk) {
                if ((e = kv_feed(m, kv, kslot, ktok, kwant, nk, klog, V))) break;
                if (forward_tokens) *forward_tokens += nk;
            }
            /* the others: each one's window, its last ctx tokens of prompt ++ output */
            if (nw) {
                int T = 1;
                for (size_t j = 0; j < nw; j++) {
                    size_t len = prompts[act[win[j]]].n + outs[act[win[j]]].n;
                    if (len > (size_t)T) T = len > (size_t)ctx ? ctx : (int)len;
                }
                for (size_t j = 0; j < nw; j++) {
                    const wn_ids *p = &prompts[act[win[j]]], *g = &outs[act[win[j]]];
                    size_t len = p->n + g->n, w = len < (size_t)ctx ? len : (size_t)ctx, from = len - w;
                    uint32_t *row = in + j * (size_t)T;
                    for (size_t t = 0; t < w; t++) {
                        size_t k = from + t;
                        row[t] = k < p->n ? p->p[k] : g->p[k - p->n];
                    }
                    for (size_t t = w; t < (size_t)T; t++) row[t] = 0; /* padding after the sequence: never attended */
                    rows[j] = (int64_t)(j * (size_t)T + w - 1);
                }
                if (gpu) { /* row j of the batch holding its logits */
                    if ((e = wn_gpt_cuda_forward(gpu, in, NULL, NULL, (int)nw, T, NULL, err)) ||
                        (e = wn_gpt_cuda_logits_rows(gpu, rows, (int)nw, glog, err)))
                        break;
                    for (size_t j = 0; j < nw; j++) lrow[win[j]] = glog + j * (size_t)V;
                } else {
                    if ((e = wn_gpt_forward(m, in, NULL, NULL, (int)nw, T, NULL))) break;
                    for (size_t j = 0; j < nw; j++) lrow[win[j]] = wn_gpt_logits(m) + (size_t)rows[j] * V;
                }
                if (forward_tokens) *forward_tokens += nw * (size_t)T;
            }
            size_t keep = 0;
            for (size_t r = 0; r < na; r++) {
                size_t i = act[r];
                int64_t id = wn_gen_pick(lrow[r], V, o, &rngs[i], &sc);
                if (id < 0) { e = WN_ERR_NOMEM; break; }
                int done = id == o->stop_id;
                if (!done && wn_ids_push(&outs[i], (uint32_t)id)) { e = WN_ERR_NOMEM; break; }
                if (!done && outs[i].n < (size_t)o->max_tokens) act[keep++] = i;
            }
            na = keep;
        }
    }
    wn_gen_scratch_free(&sc);
    wn_gpt_kv_free(kv);
    wn_free(kslot);
    wn_free(ktok);
    wn_free(kwant);
    wn_free(klog);
    wn_free(lrow);
    wn_free(in);
    wn_free(act);
    wn_free(win);
    wn_free(rows);
    wn_free(glog);
    return e;
}
