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
#include "adam8.h"

#if WN_CUDA

/* Per-layer tensor order (model.h), as in model.c. */
enum { P_LN1W, P_LN1B, P_QKVW, P_QKVB, P_ATTW, P_ATTB, P_LN2W, P_LN2B, P_FCW, P_FCB, P_PRJW, P_PRJB, P_PER_LAYER };

typedef struct {
    float *encoded, *ln1, *ln1_mean, *ln1_rstd, *qkv, *qkvr, *att, *atty, *res2, *ln2, *ln2_mean, *ln2_rstd;
    float *fch, *fch_gelu, *res3, *lnf, *lnf_mean, *lnf_rstd, *logits, *nll;
    float *proj, *dres, *dbtc, *dbt4c;
} dev_acts;

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
static double peak_lookup(const char *device, int tf32, char *label, size_t n)
{
    static const struct {
        const char *name, *variant; /* both must occur in the name; variant may be "" */
        const char *label;
        double fp32, tf32; /* TFLOP/s */
    } table[] = {
        {"H100", "PCIe", "H100 PCIe", 51.2, 378.0},
        {"H100", "NVL", "H100 NVL", 60.0, 417.5},
        {"H100", "", "H100 SXM", 67.0, 494.7},
        {"H200", "NVL", "H200 NVL", 60.0, 417.5},
        {"H200", "", "H200 SXM", 67.0, 494.7},
        {"A100", "", "A100", 19.5, 156.0},
    };
    for (size_t i = 0; i < WN_ARRAY_LEN(table); i++)
        if (strstr(device, table[i].name) && strstr(device, table[i].variant)) {
            snprintf(label, n, "%s dense %s peak, %.1f TFLOP/s", table[i].label, tf32 ? "TF32" : "fp32",
                     tf32 ? table[i].tf32 : table[i].fp32);
            return (tf32 ? table[i].tf32 : table[i].fp32) * 1e12;
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
    if (wn_cuda_device_describe(0, g->device, sizeof g->device)) snprintf(g->device, sizeof g->device, "cuda:0");
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

/* Lays the activations out in base (NULL: counts only); returns floats. */
static size_t layout_acts(dev_acts *a, float *base, const wn_gpt_config *c, int B, int T)
{
    size_t N = (size_t)B * T, C = (size_t)c->dim, L = (size_t)c->layers, used = 0;
#define TAKE(field, n)                                                                                   \
    do {                                                                                                 \
        a->field = base ? base + used : NULL;                                                            \
        used += (n);                                                                                     \
    } while (0)
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
    return used;
}

/* Device and host buffers for (B, T). */
static wn_err ensure_buffers(wn_gpt_cuda *g, int B, int T, wn_errbuf *err)
{
    const wn_gpt_config *c = &g->cfg;
    size_t N = (size_t)B * T;
    size_t need = layout_acts(&g->a, NULL, c, B, T);
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
    layout_acts(&g->a, g->acts_mem, c, B, T);
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
    for (int l = 0; l < L; l++) {
        const float *x = l == 0 ? a->encoded : a->res3 + (size_t)(l - 1) * NC;
        float *ln1 = a->ln1 + l * NC, *qkv = a->qkv + l * 3 * NC, *qkvr = a->qkvr + l * 3 * NC;
        float *att = a->att + (size_t)l * B * NH * T * T, *atty = a->atty + l * NC, *res2 = a->res2 + l * NC;
        float *ln2 = a->ln2 + l * NC, *fch = a->fch + l * 4 * NC, *fchg = a->fch_gelu + l * 4 * NC;
        float *res3 = a->res3 + l * NC;
        TRY(wn_cuda_layernorm_forward(ln1, a->ln1_mean + l * N, a->ln1_rstd + l * N, x, tparam(g, l, P_LN1W),
                                      tparam(g, l, P_LN1B), n, C), "ln_1 forward");
        TRY(wn_cuda_matmul_forward(qkv, ln1, tparam(g, l, P_QKVW), tparam(g, l, P_QKVB), n, C, 3 * C, 0),
            "c_attn forward");
        TRY(wn_cuda_attention_forward(atty, qkvr, att, qkv, B, T, C, NH), "attention forward");
        TRY(wn_cuda_matmul_forward(a->proj, atty, tparam(g, l, P_ATTW), tparam(g, l, P_ATTB), n, C, C, 0),
            "attn.c_proj forward");
        TRY(wn_cuda_residual_forward(res2, a->proj, x, NC), "residual forward");
        TRY(wn_cuda_layernorm_forward(ln2, a->ln2_mean + l * N, a->ln2_rstd + l * N, res2, tparam(g, l, P_LN2W),
                                      tparam(g, l, P_LN2B), n, C), "ln_2 forward");
        TRY(wn_cuda_matmul_forward(fch, ln2, tparam(g, l, P_FCW), tparam(g, l, P_FCB), n, C, 4 * C, 0),
            "c_fc forward");
        TRY(wn_cuda_gelu_forward(fchg, fch, 4 * NC), "gelu forward");
        TRY(wn_cuda_matmul_forward(a->proj, fchg, tparam(g, l, P_PRJW), tparam(g, l, P_PRJB), n, 4 * C, C, 0),
            "mlp.c_proj forward");
        TRY(wn_cuda_residual_forward(res3, a->proj, res2, NC), "residual forward");
    }
    int nt = g->ntensors;
    TRY(wn_cuda_layernorm_forward(a->lnf, a->lnf_mean, a->lnf_rstd, a->res3 + (size_t)(L - 1) * NC,
                                  g->params + g->off[nt - 2], g->params + g->off[nt - 1], n, C), "ln_f forward");
    TRY(wn_cuda_matmul_forward(a->logits, a->lnf, wte, NULL, n, C, V, 1), "LM head forward");
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

wn_err wn_gpt_cuda_backward(wn_gpt_cuda *g, wn_errbuf *err)
{
    if (!g->B || !g->have_targets)
        return wn_fail(err, WN_ERR_STATE, "cuda: backward needs a forward with targets just before it");
    const wn_gpt_config *c = &g->cfg;
    int L = c->layers, C = c->dim, V = c->vocab, NH = c->heads, B = g->B, T = g->T, n = B * T;
    size_t N = (size_t)n, NC = N * C;
    g->B = g->T = 0; /* the logits become dlogits below: this forward is used up */
    dev_acts *a = &g->a;
    int nt = g->ntensors;
    float *wte = g->params + g->off[0], *dwte = g->grads + g->off[0], *dwpe = g->grads + g->off[1];
    float *lnfw = g->params + g->off[nt - 2], *dlnfw = g->grads + g->off[nt - 2], *dlnfb = g->grads + g->off[nt - 1];

    TRY(wn_cuda_softmax_xent_backward(a->logits, a->logits, g->d_tgt, g->have_weights ? g->d_w : NULL, g->scale, n,
                                      V), "cross-entropy backward");
    /* dlnf = dlogits @ wte; dwte += dlogits^T @ lnf */
    TRY(wn_cuda_matmul_backward(a->dbtc, dwte, NULL, a->logits, a->lnf, wte, n, C, V, 1), "LM head backward");
    TRY(wn_cuda_memset0(a->dres, NC * sizeof(float)), "zero the residual gradient");
    TRY(wn_cuda_layernorm_backward(a->dres, dlnfw, dlnfb, a->dbtc, a->res3 + (size_t)(L - 1) * NC, lnfw, a->lnf_mean,
                                   a->lnf_rstd, n, C), "ln_f backward");
    for (int l = L - 1; l >= 0; l--) {
        const float *x = l == 0 ? a->encoded : a->res3 + (size_t)(l - 1) * NC;
        const float *ln1 = a->ln1 + l * NC, *qkvr = a->qkvr + l * 3 * NC, *atty = a->atty + l * NC;
        const float *att = a->att + (size_t)l * B * NH * T * T, *res2 = a->res2 + l * NC, *ln2 = a->ln2 + l * NC;
        const float *fch = a->fch + l * 4 * NC, *fchg = a->fch_gelu + l * 4 * NC;
        /* MLP: dres is the gradient of res3 and, through the skip, of res2 */
        TRY(wn_cuda_matmul_backward(a->dbt4c, tgrad(g, l, P_PRJW), tgrad(g, l, P_PRJB), a->dres, fchg,
                                    tparam(g, l, P_PRJW), n, 4 * C, C, 0), "mlp.c_proj backward");
        TRY(wn_cuda_gelu_backward(a->dbt4c, fch, a->dbt4c, 4 * NC), "gelu backward");
        TRY(wn_cuda_matmul_backward(a->dbtc, tgrad(g, l, P_FCW), tgrad(g, l, P_FCB), a->dbt4c, ln2,
                                    tparam(g, l, P_FCW), n, C, 4 * C, 0), "c_fc backward");
        TRY(wn_cuda_layernorm_backward(a->dres, tgrad(g, l, P_LN2W), tgrad(g, l, P_LN2B), a->dbtc, res2,
                                       tparam(g, l, P_LN2W), a->ln2_mean + l * N, a->ln2_rstd + l * N, n, C),
            "ln_2 backward");
        /* attention: dres is now the gradient of res2 and, through the skip, of x */
        TRY(wn_cuda_matmul_backward(a->dbtc, tgrad(g, l, P_ATTW), tgrad(g, l, P_ATTB), a->dres, atty,
                                    tparam(g, l, P_ATTW), n, C, C, 0), "attn.c_proj backward");
        TRY(wn_cuda_attention_backward(a->dbt4c, a->dbtc, qkvr, att, B, T, C, NH), "attention backward");
        TRY(wn_cuda_matmul_backward(a->dbtc, tgrad(g, l, P_QKVW), tgrad(g, l, P_QKVB), a->dbt4c, ln1,
                                    tparam(g, l, P_QKVW), n, C, 3 * C, 0), "c_attn backward");
        TRY(wn_cuda_layernorm_backward(a->dres, tgrad(g, l, P_LN1W), tgrad(g, l, P_LN1B), a->dbtc, x,
                                       tparam(g, l, P_LN1W), a->ln1_mean + l * N, a->ln1_rstd + l * N, n, C),
            "ln_1 backward");
    }
    TRY(wn_cuda_encoder_backward(dwte, dwpe, a->dres, g->d_inp, B, T, C), "encoder backward");
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
    if (g->q8) return adam8_step(g, o, t, err);
    for (int i = 0; i < g->ntensors; i++) {
        size_t off = g->off[i];
        TRY(wn_cuda_adamw(g->params + off, g->grads + off, g->m + off, g->v + off, g->size[i], o->lr, o->beta1,
                          o->beta2, o->eps, o->weight_decay, t, g->ndim[i] == 2),
            "AdamW");
    }
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
