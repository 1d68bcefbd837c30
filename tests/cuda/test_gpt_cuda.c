/*
 * test_gpt_cuda.c - the GPU model (src/gpt_cuda.c) against the CPU model
 * (src/model.c): part 3 of build/cuda/test_kernels (`make test-cuda`, and
 * `make cuda-check && ./build/cuda/test_kernels` in CI), which calls
 * wn_test_gpt_cuda() after the kernel comparisons.
 *
 * A tiny model (V=97, context 20, L=2, C=32, NH=4), the same seed on both
 * sides (the GPU copy is uploaded from the CPU model), fp32 with TF32 off:
 *   - upload then download gives back the same bits;
 *   - loss and every per-token nll within 1e-5 relative, with per-token
 *     weights (some 0), without weights, at B=3 T=16, at B=5 (the device
 *     buffers regrow) and at T=7; all weights 0 gives loss 0 on both;
 *   - every parameter gradient after one backward within
 *     1e-4 x (the tensor's largest |gradient|) + 1e-3 |ref|;
 *   - three training steps (zero_grad, forward, backward, clip to 0.25,
 *     AdamW lr 1e-3 -> 6e-4, betas 0.9/0.95, eps 1e-8, wd 0.1): the gradient
 *     norms within 1e-5 relative, the clipped gradients of step 1 as above,
 *     then parameters within 5e-5 + 1e-4 |ref| (5% of one lr step: the key
 *     bias's gradient is zero in exact arithmetic, so both sides feed AdamW
 *     rounding noise (~1e-11) against eps 1e-8), the moments m and v per
 *     tensor as the gradients, and the loss of the trained models within
 *     1e-5 relative;
 *   - the score stage's partial backward (LM head only, and all blocks): the
 *     same layers in the same order as wn_gpt_backward_layers, X within
 *     1e-5 + 1e-4 |ref|, G as the gradients; device gradients untouched;
 *     EL2N from the device logits within 1e-6 + 1e-5 |ref|;
 *   - the data-parallel gradient access (cmd_train.c under MPI): grad_data
 *     covers all P gradients; grad_copy to the host gives the bits that
 *     download gives, scale_grad by 0.5 halves them exactly, and grad_copy
 *     from the host puts a host array back bit for bit;
 *   - errors: a token id >= V is WN_ERR_INPUT, backward without a forward
 *     (and a second backward) is WN_ERR_STATE, each with a message;
 *   - 8-bit AdamW moments (a model with wn_gpt_set_adam8 on both sides):
 *     codes and scales go up and down bit for bit; three training steps as
 *     above, then parameters within 5e-5 + 1e-4 |ref|, the dequantized m and
 *     v within 1.5% of the tensor's largest (one code step at the top of
 *     the map: the gradients differ in the last bits, so a moment at a
 *     boundary between two codes may round the other way), the scales
 *     within 1e-3 relative; moving moments between an 8-bit device and a
 *     float model is WN_ERR_USAGE.
 * Every comparison prints its largest absolute and relative error.
 * Without a GPU only the last check that needs none runs (wn_gpt_cuda_new
 * fails with "no CUDA device", or "built without CUDA") and a SKIP line says
 * the rest was compiled but not run.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../kernels/gpt_kernels.h"
#include "adam8.h"
#include "gpt_cuda.h"
#include "gradproj.h"
#include "model.h"

int wn_test_gpt_cuda(int have_gpu, int *passed, int *failed);

static int n_pass, n_fail;

static void result(const char *name, int ok)
{
    if (ok)
        n_pass++;
    else
        n_fail++;
    printf("%s %s\n", ok ? "ok  " : "FAIL", name);
}

static uint64_t rng = 0x2545f4914f6cdd1dull;
static uint32_t rnd(void) { return (uint32_t)(wn_splitmix64(&rng) >> 32); }

/* Largest errors of got against ref over n; ok when every
 * |got - ref| <= atol + rtol |ref|. rel is |got - ref| / |ref| over the
 * entries with |ref| >= 1e-3 x max|ref| (the others are all atol). */
typedef struct {
    double max_abs, max_rel, max_ref;
    size_t bad, worst;
} errs;

static errs compare(const float *ref, const float *got, size_t n, double atol, double rtol)
{
    errs e = {0, 0, 0, 0, 0};
    for (size_t i = 0; i < n; i++)
        if (fabs(ref[i]) > e.max_ref) e.max_ref = fabs(ref[i]);
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)got[i] - ref[i]);
        if (!(d <= atol + rtol * fabs(ref[i]))) e.bad++; /* catches NaN */
        if (d > e.max_abs || d != d) {
            e.max_abs = d;
            e.worst = i;
        }
        if (fabs(ref[i]) >= 1e-3 * e.max_ref && fabs(ref[i]) > 0 && d / fabs(ref[i]) > e.max_rel)
            e.max_rel = d / fabs(ref[i]);
    }
    return e;
}

static int report(const char *what, const char *name, const float *ref, const float *got, size_t n, errs e)
{
    printf("  %-6s %-26s max|ref| %.3e  max abs err %.3e  max rel err %.3e%s\n", what, name, e.max_ref, e.max_abs,
           e.max_rel, e.bad ? "  <- outside tolerance" : "");
    if (e.bad)
        printf("    %zu of %zu outside; worst [%zu]: ref %.9g got %.9g\n", e.bad, n, e.worst, ref[e.worst],
               got[e.worst]);
    return e.bad == 0;
}

/* Per tensor, gradients (what = "grad"), parameters or moments of ref
 * against got; per-tensor atol = atol_abs + atol_frac x max|ref|. */
enum { GRAD, PARAM, MOM_M, MOM_V };
static int compare_model(wn_gpt *ref, wn_gpt *got, int which, double atol_abs, double atol_frac, double rtol)
{
    static const char *const names[] = {"grad", "param", "m", "v"};
    wn_tensor *tr, *tg;
    int nt = wn_gpt_tensors(ref, &tr);
    wn_gpt_tensors(got, &tg);
    float *mr = which == MOM_M ? wn_gpt_adam_m(ref) : wn_gpt_adam_v(ref);
    float *mg = which == MOM_M ? wn_gpt_adam_m(got) : wn_gpt_adam_v(got);
    size_t off = 0;
    int ok = 1;
    double all_abs = 0, all_rel = 0;
    for (int i = 0; i < nt; off += tr[i].size, i++) {
        const float *r = which == GRAD ? tr[i].grad : which == PARAM ? tr[i].data : mr + off;
        const float *g = which == GRAD ? tg[i].grad : which == PARAM ? tg[i].data : mg + off;
        errs e = compare(r, g, tr[i].size, 0, 0);
        e = compare(r, g, tr[i].size, atol_abs + atol_frac * e.max_ref, rtol);
        ok &= report(names[which], tr[i].name, r, g, tr[i].size, e);
        if (e.max_abs > all_abs) all_abs = e.max_abs;
        if (e.max_rel > all_rel) all_rel = e.max_rel;
    }
    printf("  %-6s all tensors: max abs err %.3e, max rel err %.3e\n", names[which], all_abs, all_rel);
    return ok;
}

static int close_rel(const char *what, double ref, double got, double rtol)
{
    double d = fabs(got - ref), rel = ref != 0 ? d / fabs(ref) : d;
    printf("  %s: cpu %.9g gpu %.9g (abs err %.3e, rel err %.3e)\n", what, ref, got, d, rel);
    return d <= rtol * fabs(ref);
}

/* Seeded batch: ids in [0, V), weights in [0, 2) with every 5th one 0. */
static void batch(uint32_t *in, uint32_t *tg, float *w, size_t n, int V)
{
    for (size_t i = 0; i < n; i++) {
        in[i] = rnd() % (uint32_t)V;
        tg[i] = rnd() % (uint32_t)V;
        w[i] = i % 5 == 3 ? 0.0f : (float)(rnd() % 1000) / 500.0f;
    }
}

/* Forward on both sides; loss and per-token nll within 1e-5 relative. */
static int forward_both(wn_gpt *m, wn_gpt_cuda *g, const uint32_t *in, const uint32_t *tg, const float *w, int B,
                        int T, const char *name)
{
    float lc = -1, lg = -2;
    wn_errbuf err = {{0}};
    wn_err ec = wn_gpt_forward(m, in, tg, w, B, T, &lc);
    wn_err eg = wn_gpt_cuda_forward(g, in, tg, w, B, T, &lg, &err);
    char label[128];
    if (ec || eg) {
        printf("  forward: cpu %s, gpu %s: %s\n", wn_err_name(ec), wn_err_name(eg), err.msg);
        snprintf(label, sizeof label, "%s: forward runs", name);
        result(label, 0);
        return 0;
    }
    int ok = close_rel("loss", lc, lg, 1e-5);
    size_t n = (size_t)B * T;
    errs e = compare(wn_gpt_token_nll(m), wn_gpt_cuda_token_nll(g), n, 0, 1e-5);
    ok &= report("nll", "per token", wn_gpt_token_nll(m), wn_gpt_cuda_token_nll(g), n, e);
    snprintf(label, sizeof label, "%s: loss and per-token nll within 1e-5 relative", name);
    result(label, ok);
    return ok;
}

/* ---- the score stage's partial backward and EL2N -------------------------- */

enum { MAX_SEEN = 16 };
typedef struct {
    int n;
    char name[MAX_SEEN][32];
    float *X[MAX_SEEN], *G[MAX_SEEN];
    int N[MAX_SEEN], in[MAX_SEEN], out[MAX_SEEN];
    int cmp, ok, bad; /* GPU side: compare with the CPU's copies */
    const void *cpu;
} seen;

static float *copy_of(const float *p, size_t n, int on_device)
{
    float *c = malloc(n * sizeof *c);
    if (!c) return NULL;
    if (on_device ? wn_cuda_download(c, p, n * sizeof *c) != WN_CUDA_OK : !memcpy(c, p, n * sizeof *c)) {
        free(c);
        return NULL;
    }
    return c;
}

static void cpu_layer(void *ctx, const char *name, const float *X, const float *G, int N, int in, int out)
{
    seen *s = ctx;
    if (s->n == MAX_SEEN) { s->bad = 1; return; }
    int i = s->n++;
    snprintf(s->name[i], sizeof s->name[i], "%s", name);
    s->X[i] = copy_of(X, (size_t)N * in, 0);
    s->G[i] = copy_of(G, (size_t)N * out, 0);
    s->N[i] = N, s->in[i] = in, s->out[i] = out;
    if (!s->X[i] || !s->G[i]) s->bad = 1;
}

static wn_err gpu_layer(void *ctx, const char *name, const float *X, const float *G, int N, int in, int out,
                        wn_errbuf *err)
{
    seen *s = ctx;
    const seen *c = s->cpu;
    int i = s->n++;
    if (i >= c->n || strcmp(c->name[i], name) || c->N[i] != N || c->in[i] != in || c->out[i] != out) {
        printf("  layer %d: gpu %s (%d x %d -> %d), cpu %s\n", i, name, N, in, out, i < c->n ? c->name[i] : "none");
        s->ok = 0;
        return WN_OK;
    }
    float *x = copy_of(X, (size_t)N * in, 1), *g = copy_of(G, (size_t)N * out, 1);
    if (!x || !g) {
        free(x);
        free(g);
        return wn_fail(err, WN_ERR_IO, "download of %s failed", name);
    }
    char what[48];
    snprintf(what, sizeof what, "%s X", name);
    s->ok &= report(what, "", c->X[i], x, (size_t)N * in, compare(c->X[i], x, (size_t)N * in, 1e-5, 1e-4));
    double gmax = 0;
    for (size_t k = 0; k < (size_t)N * out; k++) gmax = fmax(gmax, fabs(c->G[i][k]));
    snprintf(what, sizeof what, "%s G", name);
    s->ok &= report(what, "", c->G[i], g, (size_t)N * out, compare(c->G[i], g, (size_t)N * out, 1e-4 * gmax, 1e-3));
    free(x);
    free(g);
    return WN_OK;
}

static void seen_free(seen *s)
{
    for (int i = 0; i < s->n && i < MAX_SEEN; i++) free(s->X[i]), free(s->G[i]);
}

/* wn_gpt_cuda_backward_layers against wn_gpt_backward_layers: the same
 * layers in the same order, X (forward activations) within 1e-5 + 1e-4 |ref|
 * and G within 1e-4 max|G| + 1e-3 |ref| (the backward's tolerance); then the
 * device gradients are untouched (still zero after zero_grad). EL2N from the
 * device logits against wn_token_nll_el2n on the CPU logits. */
static void partial_checks(wn_gpt *m, wn_gpt *d, wn_gpt_cuda *g, const uint32_t *in, const uint32_t *tg,
                           const float *w, int B, int T)
{
    wn_errbuf err = {{0}};
    int L = wn_gpt_cfg(m)->layers, V = wn_gpt_cfg(m)->vocab;
    for (int blocks = 0; blocks <= L; blocks += L) {
        seen c = {0}, s = {0};
        s.cpu = &c;
        s.ok = 1;
        int ok = forward_both(m, g, in, tg, w, B, T, blocks ? "partial backward, all blocks" : "LM head only");
        ok &= !wn_gpt_cuda_zero_grad(g, &err);
        ok &= !wn_gpt_backward_layers(m, blocks, cpu_layer, &c) && !c.bad;
        wn_err e = wn_gpt_cuda_backward_layers(g, blocks, gpu_layer, &s, &err);
        if (e) printf("  backward_layers: %s\n", err.msg);
        ok &= !e && s.ok && s.n == c.n && c.n == 1 + 4 * blocks;
        char label[96];
        snprintf(label, sizeof label, "backward_layers(%d): %d layers, X and G as on the CPU", blocks, c.n);
        result(label, ok);
        seen_free(&c);
        if (blocks == L) {
            ok = !wn_gpt_cuda_download(g, d, WN_GPT_CUDA_GRADS, &err);
            wn_tensor *t;
            int nt = wn_gpt_tensors(d, &t);
            for (int i = 0; ok && i < nt; i++)
                for (size_t k = 0; ok && k < t[i].size; k++) ok = t[i].grad[k] == 0;
            result("backward_layers leaves the device gradients untouched", ok);
            e = wn_gpt_cuda_backward_layers(g, blocks, gpu_layer, &s, &err);
            result("backward_layers uses up the forward: WN_ERR_STATE", e == WN_ERR_STATE);
        }
    }
    size_t n = (size_t)B * T;
    float *ce = malloc(n * sizeof *ce), *ge = malloc(n * sizeof *ge), *tmp = malloc(n * sizeof *tmp);
    int ok = ce && ge && tmp && forward_both(m, g, in, tg, w, B, T, "before EL2N");
    wn_err e = ok ? wn_gpt_cuda_token_el2n(g, ge, &err) : WN_ERR_NOMEM;
    if (e) printf("  token_el2n: %s\n", err.msg);
    ok &= !e;
    if (ok) {
        wn_token_nll_el2n(wn_gpt_logits(m), tg, (int)n, V, tmp, ce);
        ok = report("el2n", "per token", ce, ge, n, compare(ce, ge, n, 1e-6, 1e-5));
    }
    result("token_el2n: within 1e-6 + 1e-5 |ref| of wn_token_nll_el2n", ok);
    free(ce);
    free(ge);
    free(tmp);
}

/* bf16 mode against the fp32 CPU model: the products round their operands
 * to 8 bits of mantissa, so only loose agreement is expected: loss within
 * 1% and per-token nll within 0.05 of the CPU's; the gradient as a whole
 * within 3% (cosine > 0.999 and norms within 3%); three AdamW steps later
 * the loss still within 1%. */
static void bf16_checks(const wn_gpt_config *cfg, const uint32_t *in, const uint32_t *tg, const float *w, int B,
                        int T)
{
    wn_gpt *m = NULL, *d = NULL;
    wn_gpt_cuda *g = NULL;
    wn_errbuf err = {{0}};
    if (wn_gpt_new(&m, cfg, 42, &err) || wn_gpt_new(&d, cfg, 42, &err) || wn_gpt_cuda_new(&g, m, 0, &err) ||
        wn_gpt_cuda_set_bf16(g, 1, &err)) {
        printf("  %s\n", err.msg);
        result("bf16: set-up", 0);
        goto done;
    }
    size_t n = (size_t)B * T, P = wn_gpt_num_params(m);
    for (int step = 0; step <= 3; step++) {
        float lc = -1, lg = -2;
        wn_gpt_zero_grad(m);
        int ok = !wn_gpt_cuda_zero_grad(g, &err) && !wn_gpt_forward(m, in, tg, w, B, T, &lc) &&
                 !wn_gpt_cuda_forward(g, in, tg, w, B, T, &lg, &err);
        if (!ok) { printf("  %s\n", err.msg); result("bf16: forward runs", 0); goto done; }
        double worst = 0;
        const float *a = wn_gpt_token_nll(m), *b = wn_gpt_cuda_token_nll(g);
        for (size_t i = 0; i < n; i++) worst = fmax(worst, fabs((double)a[i] - b[i]));
        printf("  bf16 step %d: loss cpu %.6f gpu %.6f; per-token nll max abs diff %.3e\n", step, lc, lg, worst);
        char label[96];
        snprintf(label, sizeof label, "bf16 step %d: loss within 1%%, per-token nll within 0.05", step);
        result(label, fabs(lc - lg) <= 0.01 * fabs(lc) && worst <= 0.05);
        if (step == 3) break;
        ok = !wn_gpt_backward(m) && !wn_gpt_cuda_backward(g, &err) &&
             !wn_gpt_cuda_download(g, d, WN_GPT_CUDA_GRADS, &err);
        double dot = 0, nc = 0, ng = 0;
        wn_tensor *tc, *tgd;
        int nt = wn_gpt_tensors(m, &tc);
        wn_gpt_tensors(d, &tgd);
        for (int i = 0; ok && i < nt; i++)
            for (size_t k = 0; k < tc[i].size; k++) {
                dot += (double)tc[i].grad[k] * tgd[i].grad[k];
                nc += (double)tc[i].grad[k] * tc[i].grad[k];
                ng += (double)tgd[i].grad[k] * tgd[i].grad[k];
            }
        double cosv = dot / sqrt(nc * ng), ratio = sqrt(ng / nc);
        printf("  bf16 step %d: gradient cosine %.6f, norm ratio gpu/cpu %.4f (%zu parameters)\n", step, cosv, ratio, P);
        snprintf(label, sizeof label, "bf16 step %d: gradient cosine > 0.999, norm within 3%%", step);
        result(label, ok && cosv > 0.999 && fabs(ratio - 1) < 0.03);
        wn_adamw o = {1e-3f, 0.9f, 0.95f, 1e-8f, 0.1f};
        wn_gpt_adamw(m, &o, step + 1);
        if (wn_gpt_cuda_adamw(g, &o, step + 1, &err)) { printf("  %s\n", err.msg); result("bf16: AdamW", 0); goto done; }
    }
done:
    wn_gpt_cuda_free(g);
    wn_gpt_free(m);
    wn_gpt_free(d);
}

static void gpu_checks(void)
{
    const wn_gpt_config cfg = {97, 20, 2, 4, 32}; /* V, context, L, NH, C */
    const int V = cfg.vocab, Bmax = 5, T = 16;
    const size_t nmax = (size_t)Bmax * T;
    wn_gpt *m = NULL, *d = NULL;
    wn_gpt_cuda *g = NULL;
    wn_errbuf err = {{0}};
    uint32_t *in = malloc(nmax * sizeof *in), *tg = malloc(nmax * sizeof *tg);
    float *w = malloc(nmax * sizeof *w), *w0 = calloc(nmax, sizeof *w0);
    if (!in || !tg || !w || !w0 || wn_gpt_new(&m, &cfg, 42, &err) || wn_gpt_new(&d, &cfg, 42, &err)) {
        result("set-up (host memory, CPU models)", 0);
        goto done;
    }
    wn_err e = wn_gpt_cuda_new(&g, m, 0, &err);
    if (e) printf("  wn_gpt_cuda_new: %s\n", err.msg);
    result("wn_gpt_cuda_new uploads the model", e == WN_OK);
    if (e) goto done;
    printf("  device: %s\n", wn_gpt_cuda_device(g));

    /* round trip: d starts with other moments than m (zero vs. set below) */
    float *mm = wn_gpt_adam_m(m), *mv = wn_gpt_adam_v(m);
    size_t P = wn_gpt_num_params(m);
    for (size_t i = 0; i < P; i++) mm[i] = (float)i * 1e-7f, mv[i] = (float)i * 1e-9f;
    int ok = !wn_gpt_cuda_upload(g, m, WN_GPT_CUDA_MOMENTS, &err) &&
             !wn_gpt_cuda_download(g, d, WN_GPT_CUDA_PARAMS | WN_GPT_CUDA_MOMENTS, &err);
    wn_tensor *tm, *td;
    int nt = wn_gpt_tensors(m, &tm);
    wn_gpt_tensors(d, &td);
    for (int i = 0; ok && i < nt; i++) ok = !memcmp(tm[i].data, td[i].data, tm[i].size * sizeof(float));
    ok = ok && !memcmp(mm, wn_gpt_adam_m(d), P * 4) && !memcmp(mv, wn_gpt_adam_v(d), P * 4);
    memset(mm, 0, P * 4);
    memset(mv, 0, P * 4);
    ok = ok && !wn_gpt_cuda_upload(g, m, WN_GPT_CUDA_MOMENTS, &err);
    if (!ok && err.msg[0]) printf("  %s\n", err.msg);
    result("upload then download: parameters and moments bit for bit", ok);

    /* forward: loss and nll */
    batch(in, tg, w, nmax, V);
    forward_both(m, g, in, tg, w, 3, T, "B=3 T=16, weights");
    forward_both(m, g, in, tg, NULL, 3, T, "B=3 T=16, no weights");
    forward_both(m, g, in, tg, w, 5, T, "B=5 T=16 (buffers regrow), weights");
    forward_both(m, g, in, tg, w, 2, 7, "B=2 T=7, weights");
    {
        float lc = -1, lg = -1;
        wn_err ec = wn_gpt_forward(m, in, tg, w0, 3, T, &lc);
        wn_err eg = wn_gpt_cuda_forward(g, in, tg, w0, 3, T, &lg, &err);
        result("all weights 0: loss 0 on both", !ec && !eg && lc == 0 && lg == 0);
    }

    /* backward: every gradient */
    wn_gpt_zero_grad(m);
    ok = !wn_gpt_cuda_zero_grad(g, &err);
    ok &= forward_both(m, g, in, tg, w, 3, T, "before backward");
    ok &= !wn_gpt_backward(m);
    e = wn_gpt_cuda_backward(g, &err);
    if (e) printf("  backward: %s\n", err.msg);
    ok &= !e && !wn_gpt_cuda_download(g, d, WN_GPT_CUDA_GRADS, &err);
    ok = ok && compare_model(m, d, GRAD, 0, 1e-4, 1e-3);
    result("backward: every gradient within 1e-4 max|grad| + 1e-3 |ref|", ok);
    e = wn_gpt_cuda_backward(g, &err);
    result("second backward without a forward: WN_ERR_STATE with a message", e == WN_ERR_STATE && err.msg[0]);
    if (e == WN_ERR_STATE) printf("  (%s)\n", err.msg);

    { /* the data-parallel gradient access, on the gradients of that backward */
        size_t n = 0;
        float *dev = wn_gpt_cuda_grad_data(g, &n), *h = malloc(P * sizeof *h), *h2 = malloc(P * sizeof *h2);
        wn_tensor *t;
        wn_gpt_tensors(d, &t); /* d's gradients: downloaded above, one array in tensor order */
        ok = dev && n == P && h && h2 && !wn_gpt_cuda_grad_copy(g, h, 1, &err) && !memcmp(h, t[0].grad, P * 4);
        ok = ok && !wn_gpt_cuda_scale_grad(g, 0.5f, &err) && !wn_gpt_cuda_grad_copy(g, h2, 1, &err);
        for (size_t i = 0; ok && i < P; i++) ok = h2[i] == 0.5f * h[i];
        for (size_t i = 0; ok && i < P; i++) h2[i] = (float)i - 7.25f;
        ok = ok && !wn_gpt_cuda_grad_copy(g, h2, 0, &err) && !wn_gpt_cuda_download(g, d, WN_GPT_CUDA_GRADS, &err) &&
             !memcmp(h2, t[0].grad, P * 4);
        if (!ok && err.msg[0]) printf("  %s\n", err.msg);
        result("data-parallel access: grad_data, grad_copy both ways bit for bit, scale_grad 0.5 exact", ok);
        free(h);
        free(h2);
    }

    partial_checks(m, d, g, in, tg, w, 3, T);

    /* errors */
    in[7] = (uint32_t)V;
    err.msg[0] = 0;
    e = wn_gpt_cuda_forward(g, in, tg, w, 3, T, NULL, &err);
    result("token id >= V: WN_ERR_INPUT with a message", e == WN_ERR_INPUT && strstr(err.msg, "vocabulary"));
    printf("  (%s)\n", err.msg);
    in[7] = 1;
    e = wn_gpt_cuda_backward(g, &err);
    result("backward after a failed forward: WN_ERR_STATE", e == WN_ERR_STATE);
    e = wn_gpt_cuda_forward(g, in, NULL, NULL, 3, T, NULL, &err);
    result("forward without targets runs; no nll; backward refused",
           !e && !wn_gpt_cuda_token_nll(g) && wn_gpt_cuda_backward(g, &err) == WN_ERR_STATE);

    /* three training steps */
    ok = 1;
    for (int step = 0; step < 3; step++) {
        wn_adamw o = {1e-3f - 2e-4f * step, 0.9f, 0.95f, 1e-8f, 0.1f};
        batch(in, tg, w, nmax, V);
        char name[64];
        snprintf(name, sizeof name, "step %d forward", step + 1);
        wn_gpt_zero_grad(m);
        ok &= !wn_gpt_cuda_zero_grad(g, &err);
        ok &= forward_both(m, g, in, tg, w, 4, T, name);
        ok &= !wn_gpt_backward(m) && !wn_gpt_cuda_backward(g, &err);
        float nc = wn_gpt_clip_grad(m, 0.25f), ng = -1;
        ok &= !wn_gpt_cuda_clip_grad(g, 0.25f, &ng, &err);
        snprintf(name, sizeof name, "step %d gradient norm (clipped to 0.25)", step + 1);
        ok &= close_rel(name, nc, ng, 1e-5);
        if (step == 0) {
            ok &= !wn_gpt_cuda_download(g, d, WN_GPT_CUDA_GRADS, &err);
            int okc = compare_model(m, d, GRAD, 0, 1e-4, 1e-3);
            result("step 1: clipped gradients within 1e-4 max|grad| + 1e-3 |ref|", okc);
        }
        wn_gpt_adamw(m, &o, step + 1);
        ok &= !wn_gpt_cuda_adamw(g, &o, step + 1, &err);
    }
    ok &= !wn_gpt_cuda_sync(g, &err);
    if (!ok && err.msg[0]) printf("  %s\n", err.msg);
    result("three steps run; losses and norms agree", ok);
    ok = !wn_gpt_cuda_download(g, d, WN_GPT_CUDA_PARAMS | WN_GPT_CUDA_MOMENTS, &err);
    result("after 3 AdamW steps: parameters within 5e-5 + 1e-4 |ref|", ok && compare_model(m, d, PARAM, 5e-5, 0, 1e-4));
    result("after 3 AdamW steps: m within 1e-4 max|m| + 1e-3 |ref|", ok && compare_model(m, d, MOM_M, 0, 1e-4, 1e-3));
    result("after 3 AdamW steps: v within 1e-4 max|v| + 1e-3 |ref|", ok && compare_model(m, d, MOM_V, 0, 1e-4, 1e-3));
    batch(in, tg, w, nmax, V);
    forward_both(m, g, in, tg, w, 5, T, "after 3 steps");
    bf16_checks(&cfg, in, tg, w, 4, T);

done:
    wn_gpt_cuda_free(g);
    wn_gpt_free(m);
    wn_gpt_free(d);
    free(in);
    free(tg);
    free(w);
    free(w0);
}

/* Every tensor's dequantized 8-bit moments (m, then v: 2 x P floats). */
static float *dequantize_moments(wn_gpt *m)
{
    wn_gpt_adam8_state a;
    if (!wn_gpt_adam8(m, &a)) return NULL;
    float *out = malloc(2 * a.n * sizeof *out);
    if (!out) return NULL;
    wn_tensor *t;
    int nt = wn_gpt_tensors(m, &t);
    size_t off = 0, boff = 0;
    for (int i = 0; i < nt; off += t[i].size, boff += wn_adam8_blocks(t[i].size), i++) {
        wn_adam8_dequantize(out + off, a.code_m + off, a.absmax_m + boff, t[i].size, a.maps);
        wn_adam8_dequantize(out + a.n + off, a.code_v + off, a.absmax_v + boff, t[i].size, a.maps + 256);
    }
    return out;
}

static void adam8_checks(void)
{
    const wn_gpt_config cfg = {97, 20, 2, 4, 32};
    const int V = cfg.vocab, T = 16, B = 4;
    const size_t n = (size_t)B * T;
    wn_gpt *m = NULL, *d = NULL, *f = NULL;
    wn_gpt_cuda *g = NULL;
    wn_errbuf err = {{0}};
    uint32_t *in = malloc(n * sizeof *in), *tg = malloc(n * sizeof *tg);
    float *w = malloc(n * sizeof *w), *qa = NULL, *qb = NULL;
    if (!in || !tg || !w || wn_gpt_new(&m, &cfg, 42, &err) || wn_gpt_new(&d, &cfg, 42, &err) ||
        wn_gpt_new(&f, &cfg, 42, &err) || wn_gpt_set_adam8(m, 1) || wn_gpt_set_adam8(d, 1)) {
        result("8-bit: set-up (host memory, CPU models)", 0);
        goto done;
    }
    wn_err e = wn_gpt_cuda_new(&g, m, 0, &err);
    if (e) printf("  wn_gpt_cuda_new: %s\n", err.msg);
    result("8-bit: wn_gpt_cuda_new with 8-bit moments", e == WN_OK);
    if (e) goto done;

    /* round trip of codes and scales */
    wn_gpt_adam8_state a, b;
    wn_gpt_adam8(m, &a);
    wn_gpt_adam8(d, &b);
    for (size_t i = 0; i < a.n; i++) a.code_m[i] = (uint8_t)rnd(), a.code_v[i] = (uint8_t)rnd();
    for (size_t i = 0; i < a.nblocks; i++) a.absmax_m[i] = (float)rnd() * 1e-12f, a.absmax_v[i] = (float)rnd() * 1e-15f;
    int ok = !wn_gpt_cuda_upload(g, m, WN_GPT_CUDA_MOMENTS, &err) && !wn_gpt_cuda_download(g, d, WN_GPT_CUDA_MOMENTS, &err);
    ok = ok && !memcmp(a.code_m, b.code_m, 2 * a.n) && !memcmp(a.absmax_m, b.absmax_m, 2 * a.nblocks * sizeof(float));
    memset(a.code_m, 0, 2 * a.n);
    memset(a.absmax_m, 0, 2 * a.nblocks * sizeof(float));
    ok = ok && !wn_gpt_cuda_upload(g, m, WN_GPT_CUDA_MOMENTS, &err);
    if (!ok && err.msg[0]) printf("  %s\n", err.msg);
    result("8-bit: upload then download: codes and scales bit for bit", ok);
    e = wn_gpt_cuda_download(g, f, WN_GPT_CUDA_MOMENTS, &err);
    printf("  (%s)\n", err.msg);
    result("8-bit: moments to a float model: WN_ERR_USAGE with a message", e == WN_ERR_USAGE && strstr(err.msg, "8-bit"));

    /* three training steps */
    ok = 1;
    for (int step = 0; step < 3; step++) {
        wn_adamw o = {1e-3f - 2e-4f * step, 0.9f, 0.95f, 1e-8f, 0.1f};
        batch(in, tg, w, n, V);
        char name[64];
        snprintf(name, sizeof name, "8-bit step %d forward", step + 1);
        wn_gpt_zero_grad(m);
        ok &= !wn_gpt_cuda_zero_grad(g, &err);
        ok &= forward_both(m, g, in, tg, w, B, T, name);
        ok &= !wn_gpt_backward(m) && !wn_gpt_cuda_backward(g, &err);
        float ng = -1;
        wn_gpt_clip_grad(m, 0.25f);
        ok &= !wn_gpt_cuda_clip_grad(g, 0.25f, &ng, &err);
        wn_gpt_adamw(m, &o, step + 1);
        ok &= !wn_gpt_cuda_adamw(g, &o, step + 1, &err);
    }
    ok &= !wn_gpt_cuda_sync(g, &err);
    if (!ok && err.msg[0]) printf("  %s\n", err.msg);
    result("8-bit: three steps run", ok);
    ok = !wn_gpt_cuda_download(g, d, WN_GPT_CUDA_PARAMS | WN_GPT_CUDA_MOMENTS, &err);
    result("8-bit: after 3 steps: parameters within 5e-5 + 1e-4 |ref|", ok && compare_model(m, d, PARAM, 5e-5, 0, 1e-4));
    qa = dequantize_moments(m);
    qb = dequantize_moments(d);
    if (ok && qa && qb) {
        size_t codes = 0;
        for (size_t i = 0; i < 2 * a.n; i++) codes += a.code_m[i] != b.code_m[i];
        printf("  %zu of %zu codes differ\n", codes, 2 * a.n);
        wn_tensor *t;
        int nt = wn_gpt_tensors(m, &t);
        size_t off = 0;
        for (int i = 0; i < nt; off += t[i].size, i++)
            for (int k = 0; k < 2; k++) {
                const float *r = qa + k * a.n + off, *x = qb + k * a.n + off;
                errs es = compare(r, x, t[i].size, 0, 0);
                es = compare(r, x, t[i].size, 0.015 * es.max_ref, 0);
                ok &= report(k ? "v8" : "m8", t[i].name, r, x, t[i].size, es);
            }
        errs es = compare(a.absmax_m, b.absmax_m, 2 * a.nblocks, 1e-30, 1e-3);
        ok &= report("absmax", "all blocks", a.absmax_m, b.absmax_m, 2 * a.nblocks, es);
    }
    result("8-bit: after 3 steps: m, v within 1.5% of max, scales within 1e-3", ok && qa && qb);
    batch(in, tg, w, n, V);
    forward_both(m, g, in, tg, w, B, T, "8-bit: after 3 steps");
done:
    wn_gpt_cuda_free(g);
    wn_gpt_free(m);
    wn_gpt_free(d);
    wn_gpt_free(f);
    free(in);
    free(tg);
    free(w);
    free(qa);
    free(qb);
}

int wn_test_gpt_cuda(int have_gpu, int *passed, int *failed)
{
    n_pass = n_fail = 0;
    printf("part 3: GPU model (src/gpt_cuda.c) against the CPU model (src/model.c)\n");
    if (!have_gpu) {
        const wn_gpt_config cfg = {97, 20, 2, 4, 32};
        wn_gpt *m = NULL;
        wn_gpt_cuda *g = NULL;
        wn_errbuf err = {{0}};
        int ok = !wn_gpt_new(&m, &cfg, 42, &err);
        wn_err e = ok ? wn_gpt_cuda_new(&g, m, 0, &err) : WN_ERR_NOMEM;
        printf("  wn_gpt_cuda_new: %s\n", err.msg);
        result("no device: wn_gpt_cuda_new fails with WN_ERR_USAGE and says why",
               ok && e == WN_ERR_USAGE && !g && (strstr(err.msg, "no CUDA device") || strstr(err.msg, "without CUDA")));
        wn_gpt_cuda_free(g);
        wn_gpt_free(m);
        printf("SKIP: no CUDA device: GPU model vs CPU model compiled but not run\n");
    } else {
        gpu_checks();
        adam8_checks();
    }
    printf("model: %d passed, %d failed\n", n_pass, n_fail);
    *passed = n_pass;
    *failed = n_fail;
    return n_fail;
}
