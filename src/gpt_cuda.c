/*
 * gpt_cuda.c - the GPT-2 model on a CUDA device (gpt_cuda.h), host code that
 * strings together the kernels of kernels/gpt_kernels.h the way llm.c's
 * train_gpt2.cu (fp32 version) does; the layer order and the buffers follow
 * model.c's forward and backward one for one.
 *
 * Device memory, all float32, tensor order and offsets as in model.h (so one
 * offset table serves parameters, gradients and both moments):
 *   state   4 x P floats: params | grads | adam_m | adam_v
 *   acts    for (B, T), N = B*T rows, regrown when a call needs more:
 *           encoded (N,C); per layer l: ln1 (N,C), ln1_mean/rstd (N),
 *           qkv (N,3C), qkvr (3,B,NH,T,hs), att (B,NH,T,T), atty (N,C),
 *           res2 (N,C), ln2 (N,C), ln2_mean/rstd (N), fch, fch_gelu (N,4C),
 *           res3 (N,C); then lnf (N,C), lnf_mean/rstd (N), logits (N,V) (the
 *           backward turns it into dlogits in place), nll (N); scratch:
 *           proj (N,C) (attention / MLP projection before the residual add),
 *           dres, dbtc (N,C), dbt4c (N,4C) (activation gradients).
 *   tok     3 x N x 4 bytes: inputs, targets (int), weights (float)
 * About L (19 N C + 4 N + B NH T^2) + N (V + 9 C) floats: the CPU model's
 * activations plus qkvr, without its separate (N, V) dlogits.
 * With 8-bit moments (the model given to wn_gpt_cuda_new has them, see
 * wn_gpt_set_adam8), state is params | grads only and the moments are
 * bytes in their own allocation (the 8-bit section at the end of the file).
 *
 * The loss is summed on the host, in double, from the downloaded nll, exactly
 * as model.c sums it; dlogits get w_i / sum(w) through the cross-entropy
 * backward's (weights, scale) arguments.
 *
 * The CPU-only build (WN_CUDA=0) compiles the stubs at the end instead.
 */
#include "gpt_cuda.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "../kernels/device.h"
#include "../kernels/gpt_kernels.h"
#include "../kernels/score_kernels.h"
#include "adam8.h"

typedef struct {
    float *encoded, *ln1, *ln1_mean, *ln1_rstd, *qkv, *qkvr, *att, *atty, *res2, *ln2, *ln2_mean, *ln2_rstd;
    float *fch, *fch_gelu, *res3, *lnf, *lnf_mean, *lnf_rstd, *logits, *nll;
    float *proj, *dres, *dbtc, *dbt4c;
} dev_acts;

/* Lays the activations out in base (NULL: counts only); returns floats.
 * With bf16, the five matrix-product inputs that only the products read
 * (ln1, atty, ln2, fch_gelu, lnf) are bf16 arrays (uint16_t) in half the
 * space. Each array starts on a 16-byte boundary. */
static size_t layout_acts(dev_acts *a, float *base, const wn_gpt_config *c, int B, int T, int bf16)
{
    size_t N = (size_t)B * T, C = (size_t)c->dim, L = (size_t)c->layers, used = 0;
#define TAKE(field, n)                                                                                   \
    do {                                                                                                 \
        size_t n_ = (n), k_ = (bf16 && IS16(field) ? (n_ + 1) / 2 : n_);                                   \
        a->field = base ? base + used : NULL;                                                            \
        used += (k_ + 3) & ~(size_t)3;                                                                   \
    } while (0)
#define IS16(field) (&a->field == &a->ln1 || &a->field == &a->atty || &a->field == &a->ln2 ||                \
                     &a->field == &a->fch_gelu || &a->field == &a->lnf)
    TAKE(encoded, N * C);
    TAKE(ln1, L * N * C);
    TAKE(ln1_mean, L * N);
    TAKE(ln1_rstd, L * N);
    TAKE(qkv, L * N * 3 * C);
    TAKE(qkvr, L * N * 3 * C);
    TAKE(att, L * (size_t)B * c->heads * T * T);
    TAKE(atty, L * N * C);
    TAKE(res2, L * N * C);
    TAKE(ln2, L * N * C);
    TAKE(ln2_mean, L * N);
    TAKE(ln2_rstd, L * N);
    TAKE(fch, L * N * 4 * C);
    TAKE(fch_gelu, L * N * 4 * C);
    TAKE(res3, L * N * C);
    TAKE(lnf, N * C);
    TAKE(lnf_mean, N);
    TAKE(lnf_rstd, N);
    TAKE(logits, N * (size_t)c->vocab);
    TAKE(nll, N);
    TAKE(proj, N * C);
    TAKE(dres, N * C);
    TAKE(dbtc, N * C);
    TAKE(dbt4c, N * 4 * C);
#undef TAKE
#undef IS16
    return used;
}

size_t wn_gpt_cuda_forward_bytes(const wn_gpt_config *c, int B, int T)
{
    dev_acts a;
    size_t N = (size_t)B * T;
    /* activations, token buffers (3 N words), and the kernels' largest
     * workspace: attention backward's B NH T^2 + 4 N C floats */
    return layout_acts(&a, NULL, c, B, T, 0) * sizeof(float) + 3 * N * 4 +
           ((size_t)B * c->heads * T * T + 4 * N * c->dim) * sizeof(float);
}

#if WN_CUDA

/* Per-layer tensor order (model.h), as in model.c. */
enum { P_LN1W, P_LN1B, P_QKVW, P_QKVB, P_ATTW, P_ATTB, P_LN2W, P_LN2B, P_FCW, P_FCB, P_PRJW, P_PRJB, P_PER_LAYER };


struct wn_gpt_cuda {
    wn_gpt_config cfg;
    int ntensors;
    size_t nparams;
    size_t *off;   /* (ntensors) element offset of each tensor */
    size_t *size;  /* (ntensors) elements */
    int *ndim;     /* (ntensors) */
    float *state;  /* device: params | grads | m | v */
    float *params, *grads, *m, *v;
    float *acts_mem;
    size_t acts_cap; /* floats */
    dev_acts a;
    void *tok_mem;  /* device: 3 N words */
    size_t tok_cap; /* N */
    int *d_inp, *d_tgt;
    float *d_w;
    int *h_ids;     /* host staging: 2 N ints */
    float *h_nll;   /* host: N */
    size_t h_cap;   /* N */
    int B, T;       /* of the last forward; 0 when none is valid */
    int have_targets, have_weights;
    float scale;    /* 1 / sum(w) of the last forward */
    int tf32;
    int bf16;       /* matrix products in bf16 (wn_gpt_cuda_set_bf16) */
    uint16_t *w16;  /* then: bf16 copy of params (same offsets), refreshed after each change */
    char device[256];
    double peak;    /* FLOP/s, 0 when unknown */
    char peak_label[96];
    /* 8-bit moments (m, v NULL): codes (2, P) m | v, then scales (2, nblocks8)
     * at s8 and the two maps (512 floats) at maps8, in one allocation */
    unsigned char *q8;
    float *s8, *maps8;
    size_t nblocks8;
};

/* The 8-bit moments' section, at the end of the file. */
static wn_err adam8_alloc(wn_gpt_cuda *g, wn_errbuf *err);
static wn_err adam8_transfer(wn_gpt_cuda *g, wn_gpt *m, int upload, wn_errbuf *err);
static wn_err adam8_step(wn_gpt_cuda *g, const wn_adamw *o, int t, wn_errbuf *err);

/* A kernel-side failure as a wn_err with the CUDA message. */
static wn_err cuda_fail(wn_errbuf *err, int rc, const char *what)
{
    wn_err e = rc == WN_CUDA_ERR_NOMEM   ? WN_ERR_NOMEM
               : rc == WN_CUDA_ERR_TOKEN ? WN_ERR_INPUT
               : rc == WN_CUDA_ERR_ARG   ? WN_ERR_INTERNAL
                                         : WN_ERR_IO;
    return wn_fail(err, e, "cuda: %s: %s", what, wn_cuda_last_error());
}

#define TRY(call, what)                                                                                  \
    do {                                                                                                 \
        int rc_ = (call);                                                                                \
        if (rc_) return cuda_fail(err, rc_, what);                                                       \
    } while (0)

static int same_shape(const wn_gpt_cuda *g, const wn_gpt *m)
{
    const wn_gpt_config *c = wn_gpt_cfg(m);
    return c->vocab == g->cfg.vocab && c->context == g->cfg.context && c->layers == g->cfg.layers &&
           c->heads == g->cfg.heads && c->dim == g->cfg.dim && wn_gpt_num_params(m) == g->nparams;
}

void wn_gpt_cuda_free(wn_gpt_cuda *g)
{
    if (!g) return;
    wn_cuda_free(g->state);
    wn_cuda_free(g->acts_mem);
    wn_cuda_free(g->tok_mem);
    wn_cuda_free(g->w16);
    wn_cuda_free(g->q8);
    wn_free(g->off);
    wn_free(g->size);
    wn_free(g->ndim);
    wn_free(g->h_ids);
    wn_free(g->h_nll);
    wn_free(g);
}

wn_err wn_gpt_cuda_upload(wn_gpt_cuda *g, const wn_gpt *m, int what, wn_errbuf *err)
{
    if (!same_shape(g, m)) return wn_fail(err, WN_ERR_USAGE, "cuda: upload: the model's shape differs");
    wn_tensor *t;
    int nt = wn_gpt_tensors((wn_gpt *)m, &t); /* read only */
    for (int i = 0; i < nt; i++) {
        if (what & WN_GPT_CUDA_PARAMS)
            TRY(wn_cuda_upload(g->params + g->off[i], t[i].data, t[i].size * sizeof(float)), "upload parameters");
        if (what & WN_GPT_CUDA_GRADS)
            TRY(wn_cuda_upload(g->grads + g->off[i], t[i].grad, t[i].size * sizeof(float)), "upload gradients");
    }
    if ((what & WN_GPT_CUDA_PARAMS) && g->bf16) TRY(wn_cuda_to_bf16(g->w16, g->params, g->nparams), "bf16 weights");
    if ((what & WN_GPT_CUDA_MOMENTS) && (g->q8 || wn_gpt_adam8((wn_gpt *)m, NULL)))
        return adam8_transfer(g, (wn_gpt *)m, 1, err);
    if (what & WN_GPT_CUDA_MOMENTS) {
        TRY(wn_cuda_upload(g->m, wn_gpt_adam_m((wn_gpt *)m), g->nparams * sizeof(float)), "upload AdamW m");
        TRY(wn_cuda_upload(g->v, wn_gpt_adam_v((wn_gpt *)m), g->nparams * sizeof(float)), "upload AdamW v");
    }
    return WN_OK;
}

wn_err wn_gpt_cuda_download(wn_gpt_cuda *g, wn_gpt *m, int what, wn_errbuf *err)
{
    if (!same_shape(g, m)) return wn_fail(err, WN_ERR_USAGE, "cuda: download: the model's shape differs");
    wn_tensor *t;
    int nt = wn_gpt_tensors(m, &t);
    for (int i = 0; i < nt; i++) {
        if (what & WN_GPT_CUDA_PARAMS)
            TRY(wn_cuda_download(t[i].data, g->params + g->off[i], t[i].size * sizeof(float)), "download parameters");
        if (what & WN_GPT_CUDA_GRADS)
            TRY(wn_cuda_download(t[i].grad, g->grads + g->off[i], t[i].size * sizeof(float)), "download gradients");
    }
    if ((what & WN_GPT_CUDA_MOMENTS) && (g->q8 || wn_gpt_adam8(m, NULL))) return adam8_transfer(g, m, 0, err);
    if (what & WN_GPT_CUDA_MOMENTS) {
        TRY(wn_cuda_download(wn_gpt_adam_m(m), g->m, g->nparams * sizeof(float)), "download AdamW m");
        TRY(wn_cuda_download(wn_gpt_adam_v(m), g->v, g->nparams * sizeof(float)), "download AdamW v");
    }
    return WN_OK;
}

/* The device's dense peak (FLOP/s) for fp32 or TF32 matrix products, from
 * NVIDIA's datasheets (their TF32 figures are quoted with sparsity, twice
 * these), matched on the device name; 0 when not listed. */
/* mode: 0 fp32, 1 TF32, 2 bf16 tensor cores */
static double peak_lookup(const char *device, int mode, char *label, size_t n)
{
    static const struct {
        const char *name, *variant; /* both must occur in the name; variant may be "" */
        const char *label;
        double peak[3]; /* TFLOP/s, dense: fp32, TF32, bf16 */
    } table[] = {
        {"H100", "PCIe", "H100 PCIe", {51.2, 378.0, 756.0}},
        {"H100", "NVL", "H100 NVL", {60.0, 417.5, 835.5}},
        {"H100", "", "H100 SXM", {67.0, 494.7, 989.4}},
        {"H200", "NVL", "H200 NVL", {60.0, 417.5, 835.5}},
        {"H200", "", "H200 SXM", {67.0, 494.7, 989.4}},
        {"A100", "", "A100", {19.5, 156.0, 312.0}},
    };
    static const char *const mode_name[3] = {"fp32", "TF32", "bf16"};
    for (size_t i = 0; i < WN_ARRAY_LEN(table); i++)
        if (strstr(device, table[i].name) && strstr(device, table[i].variant)) {
            snprintf(label, n, "%s dense %s peak, %.1f TFLOP/s", table[i].label, mode_name[mode],
                     table[i].peak[mode]);
            return table[i].peak[mode] * 1e12;
        }
    snprintf(label, n, "no peak FLOP/s known for this device");
    return 0;
}

wn_err wn_gpt_cuda_new(wn_gpt_cuda **out, wn_gpt *m, int allow_tf32, wn_errbuf *err)
{
    *out = NULL;
    int ndev = wn_cuda_device_count();
    if (ndev < 1)
        return wn_fail(err, WN_ERR_USAGE, "cuda: no CUDA device is visible (no GPU, no driver, or "
                                          "CUDA_VISIBLE_DEVICES hides them)");
    wn_gpt_cuda *g = wn_calloc(1, sizeof *g);
    if (!g) return wn_fail(err, WN_ERR_NOMEM, "out of memory");
    wn_err e = WN_OK;
    g->cfg = *wn_gpt_cfg(m);
    g->tf32 = allow_tf32 != 0;
    int dev = wn_cuda_get_device(); /* the current one: each MPI rank picks its own */
    if (dev < 0) dev = 0;
    if (wn_cuda_device_describe(dev, g->device, sizeof g->device)) snprintf(g->device, sizeof g->device, "cuda:%d", dev);
    g->peak = peak_lookup(g->device, g->tf32, g->peak_label, sizeof g->peak_label);
    wn_tensor *t;
    g->ntensors = wn_gpt_tensors(m, &t);
    g->off = wn_malloc((size_t)g->ntensors * sizeof *g->off);
    g->size = wn_malloc((size_t)g->ntensors * sizeof *g->size);
    g->ndim = wn_malloc((size_t)g->ntensors * sizeof *g->ndim);
    if (!g->off || !g->size || !g->ndim) {
        e = wn_fail(err, WN_ERR_NOMEM, "out of memory");
        goto fail;
    }
    for (int i = 0; i < g->ntensors; i++) {
        g->off[i] = g->nparams;
        g->size[i] = t[i].size;
        g->ndim[i] = t[i].ndim;
        g->nparams += t[i].size;
    }
    int rc = wn_cuda_gpt_init(g->tf32);
    if (rc) {
        e = cuda_fail(err, rc, "cuBLAS");
        goto fail;
    }
    size_t P = g->nparams;
    int a8 = wn_gpt_adam8(m, NULL), ns = a8 ? 2 : 4; /* 8-bit: the moments are not floats */
    if ((rc = wn_cuda_alloc((void **)&g->state, ns * P * sizeof(float)))) {
        e = cuda_fail(err, rc, "parameters, gradients and moments");
        if (e == WN_ERR_NOMEM)
            e = wn_fail(err, e, "cuda: %.2f GB of device memory for %zu parameters (x%d: gradients%s) "
                                "not available: %s", 4.0 * ns * (double)P / 1e9, P, ns,
                        a8 ? "" : ", AdamW moments", wn_cuda_last_error());
        goto fail;
    }
    g->params = g->state;
    g->grads = g->state + P;
    g->m = a8 ? NULL : g->state + 2 * P;
    g->v = a8 ? NULL : g->state + 3 * P;
    if (a8 && (e = adam8_alloc(g, err))) goto fail;
    if ((rc = wn_cuda_memset0(g->grads, P * sizeof(float)))) {
        e = cuda_fail(err, rc, "zero gradients");
        goto fail;
    }
    if ((e = wn_gpt_cuda_upload(g, m, WN_GPT_CUDA_PARAMS | WN_GPT_CUDA_MOMENTS, err))) goto fail;
    *out = g;
    return WN_OK;
fail:
    wn_gpt_cuda_free(g);
    return e;
}

/* Device and host buffers for (B, T). */
static wn_err ensure_buffers(wn_gpt_cuda *g, int B, int T, wn_errbuf *err)
{
    const wn_gpt_config *c = &g->cfg;
    size_t N = (size_t)B * T;
    size_t need = layout_acts(&g->a, NULL, c, B, T, g->bf16);
    /* the size_t products above cannot wrap when this double estimate is sane */
    double dneed = (double)c->layers * ((double)B * c->heads * T * T + 19.0 * N * c->dim + 4.0 * N) +
                   (double)N * (c->vocab + 9.0 * c->dim + 1);
    if (dneed * sizeof(float) > 0x1p50) return wn_fail(err, WN_ERR_NOMEM, "cuda: B=%d T=%d: activations too large", B, T);
    int rc;
    if (need > g->acts_cap || !g->acts_mem) {
        wn_cuda_free(g->acts_mem);
        g->acts_mem = NULL;
        g->acts_cap = 0;
        if ((rc = wn_cuda_alloc((void **)&g->acts_mem, need * sizeof(float)))) {
            if (rc == WN_CUDA_ERR_NOMEM)
                return wn_fail(err, WN_ERR_NOMEM, "cuda: %.2f GB of device memory for the activations of B=%d T=%d "
                               "not available (lower --batch): %s", (double)need * 4 / 1e9, B, T, wn_cuda_last_error());
            return cuda_fail(err, rc, "activations");
        }
        g->acts_cap = need;
    }
    layout_acts(&g->a, g->acts_mem, c, B, T, g->bf16);
    if (N > g->tok_cap || !g->tok_mem) {
        wn_cuda_free(g->tok_mem);
        g->tok_mem = NULL;
        g->tok_cap = 0;
        TRY(wn_cuda_alloc(&g->tok_mem, 3 * N * 4), "token buffers");
        g->tok_cap = N;
    }
    g->d_inp = (int *)g->tok_mem;
    g->d_tgt = g->d_inp + g->tok_cap;
    g->d_w = (float *)(g->d_tgt + g->tok_cap);
    if (N > g->h_cap) {
        wn_free(g->h_ids);
        wn_free(g->h_nll);
        g->h_ids = wn_malloc(2 * N * sizeof *g->h_ids);
        g->h_nll = wn_malloc(N * sizeof *g->h_nll);
        g->h_cap = g->h_ids && g->h_nll ? N : 0;
        if (!g->h_cap) return wn_fail(err, WN_ERR_NOMEM, "out of memory");
    }
    return WN_OK;
}

static float *tparam(wn_gpt_cuda *g, int l, int k) { return g->params + g->off[2 + l * P_PER_LAYER + k]; }
static float *tgrad(wn_gpt_cuda *g, int l, int k) { return g->grads + g->off[2 + l * P_PER_LAYER + k]; }

static size_t woff(const wn_gpt_cuda *g, int l, int k) { return g->off[2 + l * P_PER_LAYER + k]; }

/* out = x W + bias with W at element offset wo: fp32; or in bf16 mode x
 * (fp32, just computed, in a scratch buffer) is first rounded into its
 * saved bf16 slot xh, and the product uses W's bf16 copy. */
static int mm_fwd(wn_gpt_cuda *g, float *out, const float *x, uint16_t *xh, size_t wo, const float *bias, int n, int C,
                  int OC, int tw)
{
    if (!g->bf16) return wn_cuda_matmul_forward(out, x, g->params + wo, bias, n, C, OC, tw);
    int rc = wn_cuda_to_bf16(xh, x, (size_t)n * C);
    return rc ? rc : wn_cuda_matmul_forward_bf16(out, xh, g->w16 + wo, bias, n, C, OC, tw);
}

/* The matching backward: x (fp32) or xh (bf16 mode) is the saved input. */
static int mm_bwd(wn_gpt_cuda *g, float *dinp, float *dw, float *db, const float *dout, const float *x,
                  const uint16_t *xh, size_t wo, int n, int C, int OC, int tw)
{
    if (!g->bf16) return wn_cuda_matmul_backward(dinp, dw, db, dout, x, g->params + wo, n, C, OC, tw);
    return wn_cuda_matmul_backward_bf16(dinp, dw, db, dout, xh, g->w16 + wo, n, C, OC, tw);
}

wn_err wn_gpt_cuda_set_bf16(wn_gpt_cuda *g, int on, wn_errbuf *err)
{
    on = !!on;
    if (on == g->bf16) return WN_OK;
    if (on && !g->w16) TRY(wn_cuda_alloc((void **)&g->w16, g->nparams * sizeof(uint16_t)), "bf16 weights");
    g->bf16 = on;
    if (on) TRY(wn_cuda_to_bf16(g->w16, g->params, g->nparams), "bf16 weights");
    wn_cuda_free(g->acts_mem); /* the activations' layout changes: laid out again at the next forward */
    g->acts_mem = NULL;
    g->acts_cap = 0;
    g->B = g->T = 0;
    g->peak = peak_lookup(g->device, on ? 2 : g->tf32, g->peak_label, sizeof g->peak_label);
    return WN_OK;
}

wn_err wn_gpt_cuda_forward(wn_gpt_cuda *g, const uint32_t *inputs, const uint32_t *targets, const float *weights,
                           int B, int T, float *loss, wn_errbuf *err)
{
    const wn_gpt_config *c = &g->cfg;
    int L = c->layers, C = c->dim, V = c->vocab, NH = c->heads;
    g->B = g->T = 0; /* invalid until this forward completes */
    g->have_targets = 0;
    if (!inputs || B < 1 || T < 1 || T > c->context || (size_t)B * T > (size_t)1 << 30)
        return wn_fail(err, WN_ERR_USAGE, "cuda: forward: B=%d T=%d (context %d)", B, T, c->context);
    size_t N = (size_t)B * T, NC = N * C;
    for (size_t i = 0; i < N; i++)
        if (inputs[i] >= (uint32_t)V || (targets && targets[i] >= (uint32_t)V))
            return wn_fail(err, WN_ERR_INPUT, "cuda: forward: token %zu: id %u is outside the vocabulary of %d", i,
                           inputs[i] >= (uint32_t)V ? inputs[i] : targets[i], V);
    double sw = (double)N;
    if (targets && weights) {
        sw = 0;
        for (size_t i = 0; i < N; i++) {
            if (!(weights[i] >= 0) || !isfinite(weights[i]))
                return wn_fail(err, WN_ERR_INPUT, "cuda: forward: token %zu: weight %g", i, (double)weights[i]);
            sw += weights[i];
        }
    }
    wn_err e = ensure_buffers(g, B, T, err);
    if (e) return e;
    for (size_t i = 0; i < N; i++) g->h_ids[i] = (int)inputs[i];
    if (targets)
        for (size_t i = 0; i < N; i++) g->h_ids[N + i] = (int)targets[i];
    TRY(wn_cuda_upload(g->d_inp, g->h_ids, N * sizeof(int)), "upload inputs");
    if (targets) TRY(wn_cuda_upload(g->d_tgt, g->h_ids + N, N * sizeof(int)), "upload targets");
    if (targets && weights) TRY(wn_cuda_upload(g->d_w, weights, N * sizeof(float)), "upload weights");

    dev_acts *a = &g->a;
    int n = (int)N;
    float *wte = g->params + g->off[0], *wpe = g->params + g->off[1];
    TRY(wn_cuda_encoder_forward(a->encoded, g->d_inp, wte, wpe, B, T, C, V), "encoder forward");
    /* bf16 mode: the products' inputs are produced in fp32 scratch (proj, or
     * dbt4c for the MLP's 4C-wide one) and rounded into their bf16 slots */
    int h = g->bf16;
    for (int l = 0; l < L; l++) {
        const float *x = l == 0 ? a->encoded : a->res3 + (size_t)(l - 1) * NC;
        float *qkv = a->qkv + l * 3 * NC, *qkvr = a->qkvr + l * 3 * NC;
        float *att = a->att + (size_t)l * B * NH * T * T, *res2 = a->res2 + l * NC;
        float *fch = a->fch + l * 4 * NC, *res3 = a->res3 + l * NC;
        float *ln1 = h ? a->proj : a->ln1 + l * NC, *atty = h ? a->proj : a->atty + l * NC;
        float *ln2 = h ? a->proj : a->ln2 + l * NC, *fchg = h ? a->dbt4c : a->fch_gelu + l * 4 * NC;
        uint16_t *ln1h = (uint16_t *)a->ln1 + l * NC, *attyh = (uint16_t *)a->atty + l * NC;
        uint16_t *ln2h = (uint16_t *)a->ln2 + l * NC, *fchgh = (uint16_t *)a->fch_gelu + l * 4 * NC;
        TRY(wn_cuda_layernorm_forward(ln1, a->ln1_mean + l * N, a->ln1_rstd + l * N, x, tparam(g, l, P_LN1W),
                                      tparam(g, l, P_LN1B), n, C), "ln_1 forward");
        TRY(mm_fwd(g, qkv, ln1, ln1h, woff(g, l, P_QKVW), tparam(g, l, P_QKVB), n, C, 3 * C, 0), "c_attn forward");
        TRY(wn_cuda_attention_forward(atty, qkvr, att, qkv, B, T, C, NH), "attention forward");
        TRY(mm_fwd(g, a->proj, atty, attyh, woff(g, l, P_ATTW), tparam(g, l, P_ATTB), n, C, C, 0),
            "attn.c_proj forward");
        TRY(wn_cuda_residual_forward(res2, a->proj, x, NC), "residual forward");
        TRY(wn_cuda_layernorm_forward(ln2, a->ln2_mean + l * N, a->ln2_rstd + l * N, res2, tparam(g, l, P_LN2W),
                                      tparam(g, l, P_LN2B), n, C), "ln_2 forward");
        TRY(mm_fwd(g, fch, ln2, ln2h, woff(g, l, P_FCW), tparam(g, l, P_FCB), n, C, 4 * C, 0), "c_fc forward");
        TRY(wn_cuda_gelu_forward(fchg, fch, 4 * NC), "gelu forward");
        TRY(mm_fwd(g, a->proj, fchg, fchgh, woff(g, l, P_PRJW), tparam(g, l, P_PRJB), n, 4 * C, C, 0),
            "mlp.c_proj forward");
        TRY(wn_cuda_residual_forward(res3, a->proj, res2, NC), "residual forward");
    }
    int nt = g->ntensors;
    float *lnf = h ? a->proj : a->lnf;
    (void)wte;
    TRY(wn_cuda_layernorm_forward(lnf, a->lnf_mean, a->lnf_rstd, a->res3 + (size_t)(L - 1) * NC,
                                  g->params + g->off[nt - 2], g->params + g->off[nt - 1], n, C), "ln_f forward");
    TRY(mm_fwd(g, a->logits, lnf, (uint16_t *)a->lnf, g->off[0], NULL, n, C, V, 1), "LM head forward");
    if (targets) {
        TRY(wn_cuda_softmax_xent_forward(a->nll, a->logits, g->d_tgt, n, V), "cross-entropy forward");
        TRY(wn_cuda_download(g->h_nll, a->nll, N * sizeof(float)), "download nll");
        /* as model.c: fixed-order sums in double */
        double sl = 0;
        for (size_t i = 0; i < N; i++) sl += (weights ? (double)weights[i] : 1.0) * (double)g->h_nll[i];
        if (loss) *loss = sw > 0 ? (float)(sl / sw) : 0.0f;
        g->scale = sw > 0 ? (float)(1.0 / sw) : 0.0f;
        g->have_weights = weights != NULL;
        g->have_targets = 1;
    }
    g->B = B;
    g->T = T;
    return WN_OK;
}

const float *wn_gpt_cuda_token_nll(const wn_gpt_cuda *g) { return g->B && g->have_targets ? g->h_nll : NULL; }

wn_err wn_gpt_cuda_zero_grad(wn_gpt_cuda *g, wn_errbuf *err)
{
    TRY(wn_cuda_memset0(g->grads, g->nparams * sizeof(float)), "zero gradients");
    return WN_OK;
}

/* The backward from the top, written once for both uses:
 *  - fn == NULL: the full backward into the device gradients (blocks = L);
 *  - fn != NULL: the score stage's partial backward: weight gradients are
 *    skipped (NULL), each linear layer's (X, G) is handed to fn, and it stops
 *    after the c_attn of the lowest block asked for. */
static wn_err backward_impl(wn_gpt_cuda *g, int blocks, wn_gpt_cuda_layer_fn fn, void *ctx, wn_errbuf *err)
{
    const wn_gpt_config *c = &g->cfg;
    int L = c->layers, C = c->dim, V = c->vocab, NH = c->heads, B = g->B, T = g->T, n = B * T;
    size_t N = (size_t)n, NC = N * C;
    g->B = g->T = 0; /* the logits become dlogits below: this forward is used up */
    dev_acts *a = &g->a;
    int nt = g->ntensors, full = fn == NULL;
    float *lnfw = g->params + g->off[nt - 2];
    /* weight and bias gradients, or NULL (skipped) in the partial backward */
#define GRAD(l, k) (full ? tgrad(g, l, k) : NULL)
#define GRAD_AT(i) (full ? g->grads + g->off[i] : NULL)
    char name[64];
    wn_err e;
/* waits for the queued work first, so that fn sees finished buffers and a
 * kernel failure is reported here rather than inside fn */
#define LAYER(X, G, in, out)                                                                             \
    do {                                                                                                 \
        if (!full) {                                                                                     \
            TRY(wn_cuda_sync(), "partial backward");                                                     \
            if ((e = fn(ctx, name, X, G, n, in, out, err))) return e;                                    \
        }                                                                                                \
    } while (0)
    TRY(wn_cuda_softmax_xent_backward(a->logits, a->logits, g->d_tgt, g->have_weights ? g->d_w : NULL, g->scale, n,
                                      V), "cross-entropy backward");
    snprintf(name, sizeof name, "lm_head");
    LAYER(a->lnf, a->logits, C, V);
    if (!blocks) return WN_OK;
    /* dlnf = dlogits @ wte; dwte += dlogits^T @ lnf */
    TRY(mm_bwd(g, a->dbtc, GRAD_AT(0), NULL, a->logits, a->lnf, (const uint16_t *)a->lnf, g->off[0], n, C, V, 1),
        "LM head backward");
    TRY(wn_cuda_memset0(a->dres, NC * sizeof(float)), "zero the residual gradient");
    TRY(wn_cuda_layernorm_backward(a->dres, GRAD_AT(nt - 2), GRAD_AT(nt - 1), a->dbtc, a->res3 + (size_t)(L - 1) * NC,
                                   lnfw, a->lnf_mean, a->lnf_rstd, n, C), "ln_f backward");
    for (int l = L - 1; l >= L - blocks; l--) {
        const float *x = l == 0 ? a->encoded : a->res3 + (size_t)(l - 1) * NC;
        const float *ln1 = a->ln1 + l * NC, *qkvr = a->qkvr + l * 3 * NC, *atty = a->atty + l * NC;
        const float *att = a->att + (size_t)l * B * NH * T * T, *res2 = a->res2 + l * NC, *ln2 = a->ln2 + l * NC;
        const float *fch = a->fch + l * 4 * NC, *fchg = a->fch_gelu + l * 4 * NC;
        const uint16_t *ln1h = (uint16_t *)a->ln1 + l * NC, *attyh = (uint16_t *)a->atty + l * NC;
        const uint16_t *ln2h = (uint16_t *)a->ln2 + l * NC, *fchgh = (uint16_t *)a->fch_gelu + l * 4 * NC;
        /* MLP: dres is the gradient of res3 and, through the skip, of res2 */
        snprintf(name, sizeof name, "h.%d.mlp.c_proj", l);
        LAYER(fchg, a->dres, 4 * C, C);
        TRY(mm_bwd(g, a->dbt4c, GRAD(l, P_PRJW), GRAD(l, P_PRJB), a->dres, fchg, fchgh, woff(g, l, P_PRJW), n, 4 * C,
                   C, 0), "mlp.c_proj backward");
        TRY(wn_cuda_gelu_backward(a->dbt4c, fch, a->dbt4c, 4 * NC), "gelu backward");
        snprintf(name, sizeof name, "h.%d.mlp.c_fc", l);
        LAYER(ln2, a->dbt4c, C, 4 * C);
        TRY(mm_bwd(g, a->dbtc, GRAD(l, P_FCW), GRAD(l, P_FCB), a->dbt4c, ln2, ln2h, woff(g, l, P_FCW), n, C, 4 * C, 0),
            "c_fc backward");
        TRY(wn_cuda_layernorm_backward(a->dres, GRAD(l, P_LN2W), GRAD(l, P_LN2B), a->dbtc, res2, tparam(g, l, P_LN2W),
                                       a->ln2_mean + l * N, a->ln2_rstd + l * N, n, C), "ln_2 backward");
        /* attention: dres is now the gradient of res2 and, through the skip, of x */
        snprintf(name, sizeof name, "h.%d.attn.c_proj", l);
        LAYER(atty, a->dres, C, C);
        TRY(mm_bwd(g, a->dbtc, GRAD(l, P_ATTW), GRAD(l, P_ATTB), a->dres, atty, attyh, woff(g, l, P_ATTW), n, C, C, 0),
            "attn.c_proj backward");
        TRY(wn_cuda_attention_backward(a->dbt4c, a->dbtc, qkvr, att, B, T, C, NH), "attention backward");
        snprintf(name, sizeof name, "h.%d.attn.c_attn", l);
        LAYER(ln1, a->dbt4c, C, 3 * C);
        if (!full && l == L - blocks) return WN_OK; /* nothing below is asked for */
        TRY(mm_bwd(g, a->dbtc, GRAD(l, P_QKVW), GRAD(l, P_QKVB), a->dbt4c, ln1, ln1h, woff(g, l, P_QKVW), n, C, 3 * C,
                   0), "c_attn backward");
        TRY(wn_cuda_layernorm_backward(a->dres, GRAD(l, P_LN1W), GRAD(l, P_LN1B), a->dbtc, x, tparam(g, l, P_LN1W),
                                       a->ln1_mean + l * N, a->ln1_rstd + l * N, n, C), "ln_1 backward");
    }
#undef LAYER
#undef GRAD
#undef GRAD_AT
    TRY(wn_cuda_encoder_backward(g->grads + g->off[0], g->grads + g->off[1], a->dres, g->d_inp, B, T, C),
        "encoder backward");
    return WN_OK;
}

wn_err wn_gpt_cuda_backward(wn_gpt_cuda *g, wn_errbuf *err)
{
    if (!g->B || !g->have_targets)
        return wn_fail(err, WN_ERR_STATE, "cuda: backward needs a forward with targets just before it");
    return backward_impl(g, g->cfg.layers, NULL, NULL, err);
}

wn_err wn_gpt_cuda_backward_layers(wn_gpt_cuda *g, int blocks, wn_gpt_cuda_layer_fn fn, void *ctx, wn_errbuf *err)
{
    if (!g->B || !g->have_targets)
        return wn_fail(err, WN_ERR_STATE, "cuda: backward needs a forward with targets just before it");
    if (blocks < 0 || blocks > g->cfg.layers)
        return wn_fail(err, WN_ERR_USAGE, "cuda: backward_layers: blocks %d of %d", blocks, g->cfg.layers);
    if (g->bf16) return wn_fail(err, WN_ERR_USAGE, "cuda: backward_layers: not in bf16 mode (fp32 scoring only)");
    if (!fn) return wn_fail(err, WN_ERR_USAGE, "cuda: backward_layers: no layer function");
    return backward_impl(g, blocks, fn, ctx, err);
}

wn_err wn_gpt_cuda_logits_rows(wn_gpt_cuda *g, const int64_t *rows, int n, float *out, wn_errbuf *err)
{
    if (!g->B) return wn_fail(err, WN_ERR_STATE, "cuda: logits need a forward just before");
    size_t V = (size_t)g->cfg.vocab, N = (size_t)g->B * g->T;
    for (int i = 0; i < n; i++) {
        if (rows[i] < 0 || (size_t)rows[i] >= N) return wn_fail(err, WN_ERR_USAGE, "cuda: logits row %lld of %zu",
                                                                 (long long)rows[i], N);
        TRY(wn_cuda_download(out + i * V, g->a.logits + (size_t)rows[i] * V, V * sizeof(float)), "download logits");
    }
    return WN_OK;
}

wn_err wn_gpt_cuda_token_el2n(wn_gpt_cuda *g, float *el2n, wn_errbuf *err)
{
    if (!g->B || !g->have_targets)
        return wn_fail(err, WN_ERR_STATE, "cuda: EL2N needs a forward with targets just before it");
    size_t N = (size_t)g->B * g->T;
    /* a->proj (N x C floats) is forward-only scratch: free to hold N outputs */
    int rc = wn_cuda_token_nll_el2n(g->a.logits, (const uint32_t *)g->d_tgt, (int64_t)N, g->cfg.vocab, NULL,
                                    g->a.proj);
    if (rc)
        return wn_fail(err, rc == WN_CUDA_ERR_TOKEN ? WN_ERR_INPUT : WN_ERR_IO, "cuda: EL2N: %s",
                       wn_cuda_score_last_error());
    TRY(wn_cuda_download(el2n, g->a.proj, N * sizeof(float)), "download EL2N");
    return WN_OK;
}

/* ---- projections for gradient features ----------------------------------------- */

struct wn_cuda_proj {
    float *Pin, *Pout, *feats; /* device */
    size_t feats_cap;          /* floats */
    int kin, in, kout, out;
};

void wn_cuda_proj_free(wn_cuda_proj *p)
{
    if (!p) return;
    wn_cuda_free(p->Pin);
    wn_cuda_free(p->Pout);
    wn_cuda_free(p->feats);
    wn_free(p);
}

wn_err wn_cuda_proj_new(wn_cuda_proj **out, const float *Pin, int kin, int in, const float *Pout, int kout, int outd,
                        wn_errbuf *err)
{
    *out = NULL;
    int rc = wn_cuda_score_init(0);
    if (rc) return wn_fail(err, WN_ERR_IO, "cuda: projection: %s", wn_cuda_score_last_error());
    wn_cuda_proj *p = wn_calloc(1, sizeof *p);
    if (!p) return wn_fail(err, WN_ERR_NOMEM, "out of memory");
    *p = (wn_cuda_proj){.kin = kin, .in = in, .kout = kout, .out = outd};
    size_t a = (size_t)kin * in * sizeof(float), b = (size_t)kout * outd * sizeof(float);
    if ((rc = wn_cuda_alloc((void **)&p->Pin, a)) || (rc = wn_cuda_alloc((void **)&p->Pout, b)) ||
        (rc = wn_cuda_upload(p->Pin, Pin, a)) || (rc = wn_cuda_upload(p->Pout, Pout, b))) {
        wn_cuda_proj_free(p);
        return cuda_fail(err, rc, "projection matrices");
    }
    *out = p;
    return WN_OK;
}

wn_err wn_cuda_proj_apply(wn_cuda_proj *p, const float *X, const float *G, const int64_t *start, int nseq,
                          const float *scale, float *feats, wn_errbuf *err)
{
    size_t n = (size_t)nseq * p->kin * p->kout;
    if (n > p->feats_cap) {
        wn_cuda_free(p->feats);
        p->feats = NULL;
        p->feats_cap = 0;
        TRY(wn_cuda_alloc((void **)&p->feats, n * sizeof(float)), "projected features");
        p->feats_cap = n;
    }
    TRY(wn_cuda_memset0(p->feats, n * sizeof(float)), "projected features");
    int rc = wn_cuda_kron_project(X, G, start, nseq, scale, p->in, p->out, p->Pin, p->kin, p->Pout, p->kout, p->feats);
    if (rc) return wn_fail(err, rc == WN_CUDA_ERR_NOMEM ? WN_ERR_NOMEM : WN_ERR_IO, "cuda: projection: %s",
                           wn_cuda_score_last_error());
    TRY(wn_cuda_download(feats, p->feats, n * sizeof(float)), "download projected features");
    return WN_OK;
}

wn_err wn_gpt_cuda_clip_grad(wn_gpt_cuda *g, float max_norm, float *norm, wn_errbuf *err)
{
    double ss = 0;
    TRY(wn_cuda_sumsq(&ss, g->grads, g->nparams), "gradient norm");
    double nrm = sqrt(ss);
    if (max_norm > 0 && nrm > max_norm)
        TRY(wn_cuda_scale(g->grads, (float)(max_norm / nrm), g->nparams), "gradient clipping");
    if (norm) *norm = (float)nrm;
    return WN_OK;
}

wn_err wn_gpt_cuda_adamw(wn_gpt_cuda *g, const wn_adamw *o, int t, wn_errbuf *err)
{
    wn_err e;
    if (g->q8 && (e = adam8_step(g, o, t, err))) return e;
    for (int i = 0; i < g->ntensors && !g->q8; i++) {
        size_t off = g->off[i];
        TRY(wn_cuda_adamw(g->params + off, g->grads + off, g->m + off, g->v + off, g->size[i], o->lr, o->beta1,
                          o->beta2, o->eps, o->weight_decay, t, g->ndim[i] == 2),
            "AdamW");
    }
    if (g->bf16) TRY(wn_cuda_to_bf16(g->w16, g->params, g->nparams), "bf16 weights");
    return WN_OK;
}

float *wn_gpt_cuda_grad_data(wn_gpt_cuda *g, size_t *n)
{
    *n = g->nparams;
    return g->grads;
}

wn_err wn_gpt_cuda_scale_grad(wn_gpt_cuda *g, float k, wn_errbuf *err)
{
    TRY(wn_cuda_scale(g->grads, k, g->nparams), "gradient scaling");
    return WN_OK;
}

wn_err wn_gpt_cuda_grad_copy(wn_gpt_cuda *g, float *host, int to_host, wn_errbuf *err)
{
    if (to_host) TRY(wn_cuda_download(host, g->grads, g->nparams * sizeof(float)), "download gradients");
    else TRY(wn_cuda_upload(g->grads, host, g->nparams * sizeof(float)), "upload gradients");
    return WN_OK;
}

wn_err wn_gpt_cuda_sync(wn_gpt_cuda *g, wn_errbuf *err)
{
    (void)g;
    TRY(wn_cuda_sync(), "device");
    return WN_OK;
}

const char *wn_gpt_cuda_device(const wn_gpt_cuda *g) { return g->device; }

double wn_gpt_cuda_peak_flops(const wn_gpt_cuda *g, const char **what)
{
    if (what) *what = g->peak_label;
    return g->peak;
}

/* ---- 8-bit AdamW moments (--adam-8bit) --------------------------------------
 * The device holds the same state as the host model (wn_gpt_adam8): a code
 * per parameter for m and for v, one absmax per block of 256 within each
 * tensor (blocks in tensor order), and the two maps, which the kernel reads
 * from device memory. 2 + 8/256 bytes per parameter instead of 8. */

_Static_assert(WN_ADAM8_BLOCK == WN_CUDA_ADAM8_BLOCK, "the kernel's block is adam8.h's");

static wn_err adam8_alloc(wn_gpt_cuda *g, wn_errbuf *err)
{
    size_t P = g->nparams, nb = 0;
    for (int i = 0; i < g->ntensors; i++) nb += wn_adam8_blocks(g->size[i]);
    size_t codes = (2 * P + 15) & ~(size_t)15; /* the floats after the codes stay aligned */
    size_t bytes = codes + (2 * nb + 512) * sizeof(float);
    int rc = wn_cuda_alloc((void **)&g->q8, bytes);
    if (rc == WN_CUDA_ERR_NOMEM)
        return wn_fail(err, WN_ERR_NOMEM, "cuda: %.2f GB of device memory for the 8-bit AdamW moments not available: %s",
                       (double)bytes / 1e9, wn_cuda_last_error());
    if (rc) return cuda_fail(err, rc, "8-bit AdamW moments");
    g->s8 = (float *)(g->q8 + codes);
    g->maps8 = g->s8 + 2 * nb;
    g->nblocks8 = nb;
    float maps[512];
    wn_adam8_maps(maps);
    TRY(wn_cuda_upload(g->maps8, maps, sizeof maps), "upload the quantization maps");
    return WN_OK;
}

/* m -> device (upload) or device -> m: codes and scales; both sides must
 * hold 8-bit moments of the same layout. */
static wn_err adam8_transfer(wn_gpt_cuda *g, wn_gpt *m, int upload, wn_errbuf *err)
{
    wn_gpt_adam8_state a;
    if (!g->q8 || !wn_gpt_adam8(m, &a))
        return wn_fail(err, WN_ERR_USAGE, "cuda: %s AdamW moments: the model's are %s, the device's %s",
                       upload ? "upload" : "download", g->q8 ? "float" : "8-bit", g->q8 ? "8-bit" : "float");
    size_t P = g->nparams, nb = g->nblocks8;
    if (a.n != P || a.nblocks != nb)
        return wn_fail(err, WN_ERR_USAGE, "cuda: 8-bit AdamW moments of another layout");
    if (upload) {
        TRY(wn_cuda_upload(g->q8, a.code_m, P), "upload AdamW m (8-bit)");
        TRY(wn_cuda_upload(g->q8 + P, a.code_v, P), "upload AdamW v (8-bit)");
        TRY(wn_cuda_upload(g->s8, a.absmax_m, nb * sizeof(float)), "upload AdamW m scales");
        TRY(wn_cuda_upload(g->s8 + nb, a.absmax_v, nb * sizeof(float)), "upload AdamW v scales");
    } else {
        TRY(wn_cuda_download(a.code_m, g->q8, P), "download AdamW m (8-bit)");
        TRY(wn_cuda_download(a.code_v, g->q8 + P, P), "download AdamW v (8-bit)");
        TRY(wn_cuda_download(a.absmax_m, g->s8, nb * sizeof(float)), "download AdamW m scales");
        TRY(wn_cuda_download(a.absmax_v, g->s8 + nb, nb * sizeof(float)), "download AdamW v scales");
    }
    return WN_OK;
}

static wn_err adam8_step(wn_gpt_cuda *g, const wn_adamw *o, int t, wn_errbuf *err)
{
    size_t P = g->nparams, nb = g->nblocks8, boff = 0;
    for (int i = 0; i < g->ntensors; i++) {
        size_t off = g->off[i];
        TRY(wn_cuda_adamw8(g->params + off, g->grads + off, g->q8 + off, g->s8 + boff, g->q8 + P + off,
                           g->s8 + nb + boff, g->maps8, g->size[i], o->lr, o->beta1, o->beta2, o->eps,
                           o->weight_decay, t, g->ndim[i] == 2),
            "AdamW (8-bit)");
        boff += wn_adam8_blocks(g->size[i]);
    }
    return WN_OK;
}

#else /* !WN_CUDA: the CPU-only build */

#define NO_CUDA "this winnow was built without CUDA (nvcc not found, or make CUDA=0)"

wn_err wn_gpt_cuda_new(wn_gpt_cuda **out, wn_gpt *m, int allow_tf32, wn_errbuf *err)
{
    (void)m;
    (void)allow_tf32;
    *out = NULL;
    return wn_fail(err, WN_ERR_USAGE, "cuda: %s", NO_CUDA);
}
void wn_gpt_cuda_free(wn_gpt_cuda *g) { (void)g; }
wn_err wn_gpt_cuda_forward(wn_gpt_cuda *g, const uint32_t *inputs, const uint32_t *targets, const float *weights,
                           int B, int T, float *loss, wn_errbuf *err)
{
    (void)g, (void)inputs, (void)targets, (void)weights, (void)B, (void)T, (void)loss;
    return wn_fail(err, WN_ERR_USAGE, "cuda: %s", NO_CUDA);
}
const float *wn_gpt_cuda_token_nll(const wn_gpt_cuda *g)
{
    (void)g;
    return NULL;
}
wn_err wn_gpt_cuda_zero_grad(wn_gpt_cuda *g, wn_errbuf *err)
{
    (void)g;
    return wn_fail(err, WN_ERR_USAGE, "cuda: %s", NO_CUDA);
}
wn_err wn_gpt_cuda_backward(wn_gpt_cuda *g, wn_errbuf *err)
{
    (void)g;
    return wn_fail(err, WN_ERR_USAGE, "cuda: %s", NO_CUDA);
}
wn_err wn_gpt_cuda_clip_grad(wn_gpt_cuda *g, float max_norm, float *norm, wn_errbuf *err)
{
    (void)g, (void)max_norm, (void)norm;
    return wn_fail(err, WN_ERR_USAGE, "cuda: %s", NO_CUDA);
}
wn_err wn_gpt_cuda_adamw(wn_gpt_cuda *g, const wn_adamw *o, int t, wn_errbuf *err)
{
    (void)g, (void)o, (void)t;
    return wn_fail(err, WN_ERR_USAGE, "cuda: %s", NO_CUDA);
}
wn_err wn_gpt_cuda_backward_layers(wn_gpt_cuda *g, int blocks, wn_gpt_cuda_layer_fn fn, void *ctx, wn_errbuf *err)
{
    (void)g;
    (void)blocks;
    (void)fn;
    (void)ctx;
    return wn_fail(err, WN_ERR_USAGE, "cuda: %s", NO_CUDA);
}

wn_err wn_gpt_cuda_set_bf16(wn_gpt_cuda *g, int on, wn_errbuf *err)
{
    (void)g;
    (void)on;
    return wn_fail(err, WN_ERR_USAGE, "cuda: %s", NO_CUDA);
}

wn_err wn_gpt_cuda_logits_rows(wn_gpt_cuda *g, const int64_t *rows, int n, float *out, wn_errbuf *err)
{
    (void)g, (void)rows, (void)n, (void)out;
    return wn_fail(err, WN_ERR_USAGE, "cuda: %s", NO_CUDA);
}

wn_err wn_gpt_cuda_token_el2n(wn_gpt_cuda *g, float *el2n, wn_errbuf *err)
{
    (void)g;
    (void)el2n;
    return wn_fail(err, WN_ERR_USAGE, "cuda: %s", NO_CUDA);
}

wn_err wn_cuda_proj_new(wn_cuda_proj **out, const float *Pin, int kin, int in, const float *Pout, int kout, int outd,
                        wn_errbuf *err)
{
    (void)Pin, (void)kin, (void)in, (void)Pout, (void)kout, (void)outd;
    *out = NULL;
    return wn_fail(err, WN_ERR_USAGE, "cuda: %s", NO_CUDA);
}
void wn_cuda_proj_free(wn_cuda_proj *p) { (void)p; }
wn_err wn_cuda_proj_apply(wn_cuda_proj *p, const float *X, const float *G, const int64_t *start, int nseq,
                          const float *scale, float *feats, wn_errbuf *err)
{
    (void)p, (void)X, (void)G, (void)start, (void)nseq, (void)scale, (void)feats;
    return wn_fail(err, WN_ERR_USAGE, "cuda: %s", NO_CUDA);
}

float *wn_gpt_cuda_grad_data(wn_gpt_cuda *g, size_t *n)
{
    (void)g;
    *n = 0;
    return NULL;
}
wn_err wn_gpt_cuda_scale_grad(wn_gpt_cuda *g, float k, wn_errbuf *err)
{
    (void)g, (void)k;
    return wn_fail(err, WN_ERR_USAGE, "cuda: %s", NO_CUDA);
}
wn_err wn_gpt_cuda_grad_copy(wn_gpt_cuda *g, float *host, int to_host, wn_errbuf *err)
{
    (void)g, (void)host, (void)to_host;
    return wn_fail(err, WN_ERR_USAGE, "cuda: %s", NO_CUDA);
}
wn_err wn_gpt_cuda_sync(wn_gpt_cuda *g, wn_errbuf *err)
{
    (void)g;
    return wn_fail(err, WN_ERR_USAGE, "cuda: %s", NO_CUDA);
}
wn_err wn_gpt_cuda_download(wn_gpt_cuda *g, wn_gpt *m, int what, wn_errbuf *err)
{
    (void)g, (void)m, (void)what;
    return wn_fail(err, WN_ERR_USAGE, "cuda: %s", NO_CUDA);
}
wn_err wn_gpt_cuda_upload(wn_gpt_cuda *g, const wn_gpt *m, int what, wn_errbuf *err)
{
    (void)g, (void)m, (void)what;
    return wn_fail(err, WN_ERR_USAGE, "cuda: %s", NO_CUDA);
}
const char *wn_gpt_cuda_device(const wn_gpt_cuda *g)
{
    (void)g;
    return "none (built without CUDA)";
}
double wn_gpt_cuda_peak_flops(const wn_gpt_cuda *g, const char **what)
{
    (void)g;
    if (what) *what = "no peak FLOP/s known (built without CUDA)";
    return 0;
}

#endif
