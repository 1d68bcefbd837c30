/*
 * gpt_ref.c - the plain C references of kernels/gpt_kernels.cu (see
 * src/gpt_ref.h): one function per kernel, simple loops, reductions in
 * double. Shapes are documented in kernels/gpt_kernels.h.
 */
#include "gpt_ref.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define WN_REF_LN_EPS 1e-5f
#define WN_REF_GELU_S 0.7978845608028654f /* sqrt(2/pi) */

int wn_ref_encoder_forward(float *out, const int *inp, const float *wte, const float *wpe, int B, int T, int C,
                           int V)
{
    int status = WN_CUDA_OK;
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++) {
            int id = inp[b * T + t];
            float *o = out + ((size_t)b * T + t) * C;
            if (id < 0 || id >= V) {
                memset(o, 0, (size_t)C * sizeof *o);
                status = WN_CUDA_ERR_TOKEN;
                continue;
            }
            for (int c = 0; c < C; c++) o[c] = wte[(size_t)id * C + c] + wpe[(size_t)t * C + c];
        }
    return status;
}

int wn_ref_encoder_backward(float *dwte, float *dwpe, const float *dout, const int *inp, int B, int T, int C)
{
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++) {
            const float *d = dout + ((size_t)b * T + t) * C;
            int id = inp[b * T + t];
            for (int c = 0; c < C; c++) {
                dwte[(size_t)id * C + c] += d[c];
                dwpe[(size_t)t * C + c] += d[c];
            }
        }
    return WN_CUDA_OK;
}

int wn_ref_layernorm_forward(float *out, float *mean, float *rstd, const float *inp, const float *weight,
                             const float *bias, int N, int C)
{
    for (int i = 0; i < N; i++) {
        const float *x = inp + (size_t)i * C;
        double s = 0, v = 0;
        for (int c = 0; c < C; c++) s += x[c];
        float m = (float)(s / C);
        for (int c = 0; c < C; c++) v += ((double)x[c] - m) * ((double)x[c] - m);
        float r = 1.0f / sqrtf((float)(v / C) + WN_REF_LN_EPS);
        for (int c = 0; c < C; c++) out[(size_t)i * C + c] = (x[c] - m) * r * weight[c] + bias[c];
        mean[i] = m;
        rstd[i] = r;
    }
    return WN_CUDA_OK;
}

/* With n = (x - mean) rstd and g = weight * dout:
 *   dx = rstd (g - mean(g) - n mean(g n)),  dweight += dout n,  dbias += dout. */
int wn_ref_layernorm_backward(float *dinp, float *dweight, float *dbias, const float *dout, const float *inp,
                              const float *weight, const float *mean, const float *rstd, int N, int C)
{
    for (int i = 0; i < N; i++) {
        const float *x = inp + (size_t)i * C, *d = dout + (size_t)i * C;
        double sg = 0, sgn = 0;
        for (int c = 0; c < C; c++) {
            float n = (x[c] - mean[i]) * rstd[i];
            sg += (double)weight[c] * d[c];
            sgn += (double)weight[c] * d[c] * n;
        }
        float mg = (float)(sg / C), mgn = (float)(sgn / C);
        for (int c = 0; c < C; c++) {
            float n = (x[c] - mean[i]) * rstd[i];
            if (dbias) dbias[c] += d[c];
            if (dweight) dweight[c] += n * d[c];
            dinp[(size_t)i * C + c] += (weight[c] * d[c] - mg - n * mgn) * rstd[i];
        }
    }
    return WN_CUDA_OK;
}

/* W[c][o] of the (C,OC) layout, or of the (OC,C) layout when trans_w. */
static float wn_ref_w(const float *w, int C, int OC, int trans_w, int c, int o)
{
    return trans_w ? w[(size_t)o * C + c] : w[(size_t)c * OC + o];
}

int wn_ref_matmul_forward(float *out, const float *inp, const float *weight, const float *bias, int N, int C,
                          int OC, int trans_w)
{
    for (int i = 0; i < N; i++)
        for (int o = 0; o < OC; o++) {
            double s = bias ? bias[o] : 0.0;
            for (int c = 0; c < C; c++) s += (double)inp[(size_t)i * C + c] * wn_ref_w(weight, C, OC, trans_w, c, o);
            out[(size_t)i * OC + o] = (float)s;
        }
    return WN_CUDA_OK;
}

int wn_ref_matmul_backward(float *dinp, float *dweight, float *dbias, const float *dout, const float *inp,
                           const float *weight, int N, int C, int OC, int trans_w)
{
    if (dinp)
        for (int i = 0; i < N; i++)
            for (int c = 0; c < C; c++) {
                double s = 0;
                for (int o = 0; o < OC; o++)
                    s += (double)dout[(size_t)i * OC + o] * wn_ref_w(weight, C, OC, trans_w, c, o);
                dinp[(size_t)i * C + c] = (float)s;
            }
    for (int c = 0; c < C && dweight; c++)
        for (int o = 0; o < OC; o++) {
            double s = 0;
            for (int i = 0; i < N; i++) s += (double)inp[(size_t)i * C + c] * dout[(size_t)i * OC + o];
            size_t k = trans_w ? (size_t)o * C + c : (size_t)c * OC + o;
            dweight[k] = (float)(dweight[k] + s);
        }
    if (dbias)
        for (int o = 0; o < OC; o++) {
            double s = 0;
            for (int i = 0; i < N; i++) s += dout[(size_t)i * OC + o];
            dbias[o] = (float)(dbias[o] + s);
        }
    return WN_CUDA_OK;
}

/* Index of element (b, t, d) of head h in qkvr part p (0 q, 1 k, 2 v),
 * layout (3, B, NH, T, hs). */
static size_t wn_ref_qkvr(int p, int b, int h, int t, int d, int B, int T, int NH, int hs)
{
    return ((((size_t)p * B + b) * NH + h) * T + t) * hs + d;
}

int wn_ref_attention_forward(float *out, float *qkvr, float *att, const float *inp, int B, int T, int C, int NH)
{
    int hs = C / NH;
    float scale = 1.0f / sqrtf((float)hs);
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++)
            for (int p = 0; p < 3; p++)
                for (int h = 0; h < NH; h++)
                    for (int d = 0; d < hs; d++)
                        qkvr[wn_ref_qkvr(p, b, h, t, d, B, T, NH, hs)] =
                            inp[((size_t)b * T + t) * 3 * C + (size_t)p * C + h * hs + d];
    for (int b = 0; b < B; b++)
        for (int h = 0; h < NH; h++)
            for (int t = 0; t < T; t++) {
                const float *q = qkvr + wn_ref_qkvr(0, b, h, t, 0, B, T, NH, hs);
                float *a = att + (((size_t)b * NH + h) * T + t) * T;
                float mx = -INFINITY;
                for (int u = 0; u <= t; u++) {
                    const float *k = qkvr + wn_ref_qkvr(1, b, h, u, 0, B, T, NH, hs);
                    double s = 0;
                    for (int d = 0; d < hs; d++) s += (double)q[d] * k[d];
                    a[u] = (float)s * scale;
                    if (a[u] > mx) mx = a[u];
                }
                double sum = 0;
                for (int u = 0; u <= t; u++) sum += exp((double)a[u] - mx);
                for (int u = 0; u < T; u++) a[u] = u <= t ? (float)(exp((double)a[u] - mx) / sum) : 0.0f;
                for (int d = 0; d < hs; d++) {
                    double s = 0;
                    for (int u = 0; u <= t; u++) s += (double)a[u] * qkvr[wn_ref_qkvr(2, b, h, u, d, B, T, NH, hs)];
                    out[((size_t)b * T + t) * C + h * hs + d] = (float)s;
                }
            }
    return WN_CUDA_OK;
}

/* Per row t of head (b, h): datt[u] = dy_t . v_u; dpre[u] = att[u] (datt[u] -
 * sum_w att[w] datt[w]); dq_t += scale sum_u dpre[u] k_u; dk_u += scale
 * dpre[u] q_t; dv_u += att[u] dy_t. datt is recomputed rather than stored so
 * that nothing is allocated. */
int wn_ref_attention_backward(float *dinp, const float *dout, const float *qkvr, const float *att, int B, int T,
                              int C, int NH)
{
    int hs = C / NH;
    float scale = 1.0f / sqrtf((float)hs);
    memset(dinp, 0, (size_t)B * T * 3 * C * sizeof *dinp);
    for (int b = 0; b < B; b++)
        for (int h = 0; h < NH; h++)
            for (int t = 0; t < T; t++) {
                const float *a = att + (((size_t)b * NH + h) * T + t) * T;
                const float *dy = dout + ((size_t)b * T + t) * C + h * hs;
                const float *q = qkvr + wn_ref_qkvr(0, b, h, t, 0, B, T, NH, hs);
                float *dq = dinp + ((size_t)b * T + t) * 3 * C + h * hs;
                double dot = 0;
                for (int u = 0; u <= t; u++) {
                    const float *v = qkvr + wn_ref_qkvr(2, b, h, u, 0, B, T, NH, hs);
                    double datt = 0;
                    for (int d = 0; d < hs; d++) datt += (double)dy[d] * v[d];
                    dot += a[u] * datt;
                }
                for (int u = 0; u <= t; u++) {
                    const float *k = qkvr + wn_ref_qkvr(1, b, h, u, 0, B, T, NH, hs);
                    const float *v = qkvr + wn_ref_qkvr(2, b, h, u, 0, B, T, NH, hs);
                    float *dk = dinp + ((size_t)b * T + u) * 3 * C + C + h * hs;
                    float *dv = dinp + ((size_t)b * T + u) * 3 * C + 2 * C + h * hs;
                    double datt = 0;
                    for (int d = 0; d < hs; d++) datt += (double)dy[d] * v[d];
                    float dpre = (float)(a[u] * (datt - dot)) * scale;
                    for (int d = 0; d < hs; d++) {
                        dq[d] += dpre * k[d];
                        dk[d] += dpre * q[d];
                        dv[d] += a[u] * dy[d];
                    }
                }
            }
    return WN_CUDA_OK;
}

int wn_ref_gelu_forward(float *out, const float *inp, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        float x = inp[i];
        out[i] = 0.5f * x * (1.0f + tanhf(WN_REF_GELU_S * (x + 0.044715f * x * x * x)));
    }
    return WN_CUDA_OK;
}

int wn_ref_gelu_backward(float *dinp, const float *inp, const float *dout, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        float x = inp[i];
        float th = tanhf(WN_REF_GELU_S * (x + 0.044715f * x * x * x));
        float sech2 = 1.0f - th * th;
        float g = 0.5f * (1.0f + th) + 0.5f * x * sech2 * WN_REF_GELU_S * (1.0f + 3.0f * 0.044715f * x * x);
        dinp[i] = g * dout[i];
    }
    return WN_CUDA_OK;
}

int wn_ref_residual_forward(float *out, const float *a, const float *b, size_t n)
{
    for (size_t i = 0; i < n; i++) out[i] = a[i] + b[i];
    return WN_CUDA_OK;
}

int wn_ref_residual_backward(float *da, float *db, const float *dout, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        da[i] += dout[i];
        db[i] += dout[i];
    }
    return WN_CUDA_OK;
}

/* max and log(sum(exp(x - max))) of one row. */
static void wn_ref_logsumexp(const float *x, int V, float *mx, double *lse)
{
    float m = -INFINITY;
    for (int j = 0; j < V; j++)
        if (x[j] > m) m = x[j];
    double s = 0;
    for (int j = 0; j < V; j++) s += exp((double)x[j] - m);
    *mx = m;
    *lse = log(s);
}

int wn_ref_softmax_xent_forward(float *nll, const float *logits, const int *targets, int N, int V)
{
    int status = WN_CUDA_OK;
    for (int i = 0; i < N; i++) {
        const float *x = logits + (size_t)i * V;
        float mx;
        double lse;
        if (targets[i] < 0 || targets[i] >= V) {
            nll[i] = 0.0f;
            status = WN_CUDA_ERR_TOKEN;
            continue;
        }
        wn_ref_logsumexp(x, V, &mx, &lse);
        nll[i] = (float)(lse + mx - x[targets[i]]);
    }
    return status;
}

int wn_ref_softmax_xent_backward(float *dlogits, const float *logits, const int *targets, const float *weights,
                                 float scale, int N, int V)
{
    for (int i = 0; i < N; i++) {
        const float *x = logits + (size_t)i * V;
        float *dx = dlogits + (size_t)i * V;
        float dl = (weights ? weights[i] : 1.0f) * scale, mx;
        double lse;
        wn_ref_logsumexp(x, V, &mx, &lse);
        for (int j = 0; j < V; j++) {
            float p = (float)exp((double)x[j] - mx - lse);
            dx[j] = dl * (p - (j == targets[i] ? 1.0f : 0.0f));
        }
    }
    return WN_CUDA_OK;
}

int wn_ref_adamw(float *params, const float *grads, float *m, float *v, size_t n, float lr, float beta1, float beta2,
                 float eps, float weight_decay, int t, int decay)
{
    float bc1 = (float)(1.0 - pow(beta1, t)), bc2 = (float)(1.0 - pow(beta2, t));
    float wd = decay ? weight_decay : 0.0f;
    for (size_t i = 0; i < n; i++) {
        float g = grads[i];
        m[i] = beta1 * m[i] + (1.0f - beta1) * g;
        v[i] = beta2 * v[i] + (1.0f - beta2) * g * g;
        float mh = m[i] / bc1, vh = v[i] / bc2;
        params[i] -= lr * (mh / (sqrtf(vh) + eps) + wd * params[i]);
    }
    return WN_CUDA_OK;
}

int wn_ref_sumsq(double *out, const float *x, size_t n)
{
    double s = 0;
    for (size_t i = 0; i < n; i++) s += (double)x[i] * x[i];
    *out = s;
    return WN_CUDA_OK;
}

int wn_ref_scale(float *x, float k, size_t n)
{
    for (size_t i = 0; i < n; i++) x[i] *= k;
    return WN_CUDA_OK;
}

/* ---- bf16 (mixed precision) ---------------------------------------------------- */

uint16_t wn_ref_bf16(float x)
{
    uint32_t u;
    memcpy(&u, &x, 4);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40); /* NaN stays a quiet NaN */
    u += 0x7fffu + ((u >> 16) & 1);                                            /* round to nearest, ties to even */
    return (uint16_t)(u >> 16);
}

float wn_ref_bf16_float(uint16_t h)
{
    uint32_t u = (uint32_t)h << 16;
    float x;
    memcpy(&x, &u, 4);
    return x;
}

int wn_ref_to_bf16(uint16_t *out, const float *in, size_t n)
{
    for (size_t i = 0; i < n; i++) out[i] = wn_ref_bf16(in[i]);
    return WN_CUDA_OK;
}

/* bf16 arrays widened to float (exact), or NULL when out of memory */
static float *widen(const uint16_t *h, size_t n)
{
    float *f = malloc((n ? n : 1) * sizeof *f);
    if (f)
        for (size_t i = 0; i < n; i++) f[i] = wn_ref_bf16_float(h[i]);
    return f;
}

int wn_ref_matmul_forward_bf16(float *out, const uint16_t *inp, const uint16_t *weight, const float *bias, int N,
                               int C, int OC, int trans_w)
{
    float *x = widen(inp, (size_t)N * C), *w = widen(weight, (size_t)C * OC);
    int rc = x && w ? wn_ref_matmul_forward(out, x, w, bias, N, C, OC, trans_w) : WN_CUDA_ERR_NOMEM;
    free(x);
    free(w);
    return rc;
}

int wn_ref_matmul_backward_bf16(float *dinp, float *dweight, float *dbias, const float *dout, const uint16_t *inp,
                                const uint16_t *weight, int N, int C, int OC, int trans_w)
{
    size_t n = (size_t)N * OC;
    float *x = widen(inp, (size_t)N * C), *w = widen(weight, (size_t)C * OC), *d = malloc((n ? n : 1) * sizeof *d);
    int rc = WN_CUDA_ERR_NOMEM;
    if (x && w && d) {
        for (size_t i = 0; i < n; i++) d[i] = wn_ref_bf16_float(wn_ref_bf16(dout[i]));
        rc = wn_ref_matmul_backward(dinp, dweight, NULL, d, x, w, N, C, OC, trans_w);
        if (!rc && dbias) /* from the fp32 dout, as the kernel */
            for (int o = 0; o < OC; o++) {
                double s = 0;
                for (int i = 0; i < N; i++) s += dout[(size_t)i * OC + o];
                dbias[o] = (float)(dbias[o] + s);
            }
    }
    free(x);
    free(w);
    free(d);
    return rc;
}
/* Index of the entry of map[0..255] nearest to x, ties to the lower index:
 * a linear scan (src/adam8.c searches by halving). */
static unsigned char ref_nearest(const float *map, float x)
{
    int best = 0;
    float bd = fabsf(map[0] - x);
    for (int k = 1; k < 256; k++) {
        float d = fabsf(map[k] - x);
        if (d < bd) {
            bd = d;
            best = k;
        }
    }
    return (unsigned char)best;
}

int wn_ref_adamw8(float *params, const float *grads, unsigned char *qm, float *absmax_m, unsigned char *qv,
                  float *absmax_v, const float *maps, size_t n, float lr, float beta1, float beta2, float eps,
                  float weight_decay, int t, int decay)
{
    enum { BLOCK = WN_CUDA_ADAM8_BLOCK };
    float bc1 = (float)(1.0 - pow(beta1, t)), bc2 = (float)(1.0 - pow(beta2, t));
    float wd = decay ? weight_decay : 0.0f;
    float m[BLOCK], v[BLOCK];
    for (size_t b0 = 0; b0 < n; b0 += BLOCK) {
        size_t len = n - b0 < BLOCK ? n - b0 : BLOCK, blk = b0 / BLOCK;
        float am = 0, av = 0;
        for (size_t j = 0; j < len; j++) {
            size_t i = b0 + j;
            float g = grads[i];
            m[j] = beta1 * (maps[qm[i]] * absmax_m[blk]) + (1.0f - beta1) * g;
            v[j] = beta2 * (maps[256 + qv[i]] * absmax_v[blk]) + (1.0f - beta2) * g * g;
            float mh = m[j] / bc1, vh = v[j] / bc2;
            params[i] -= lr * (mh / (sqrtf(vh) + eps) + wd * params[i]);
            if (fabsf(m[j]) > am) am = fabsf(m[j]);
            if (v[j] > av) av = v[j];
        }
        absmax_m[blk] = am;
        absmax_v[blk] = av;
        for (size_t j = 0; j < len; j++) {
            qm[b0 + j] = am > 0 ? ref_nearest(maps, m[j] / am) : ref_nearest(maps, 0.0f);
            qv[b0 + j] = av > 0 ? ref_nearest(maps + 256, v[j] / av) : ref_nearest(maps + 256, 0.0f);
        }
    }
    return WN_CUDA_OK;
}
