/*
 * test_adam8.c - unit tests for the 8-bit AdamW moments (src/adam8.c, the
 * model's --adam-8bit path): the two dynamic maps, nearest-entry search
 * against a linear scan, quantize / dequantize round trips and their error
 * bounds, block independence, the fused step against the C reference
 * (src/gpt_ref.c, wn_ref_adamw8) bit for bit, the same through the model
 * (wn_gpt_adamw), thread-count independence, the float <-> 8-bit conversion,
 * out of memory, and a small model that still memorises a sequence.
 *
 * Error bound of one quantization (what "nearest entry" guarantees): with
 * a = absmax and x / a in decade e (|x| / a in [0.1, 1] x 10^-e, e = 0..6),
 * |dequantized - x| <= 0.45 x 10^-e / 2^(b - e) x a, b = 6 for the signed
 * map (m) and 7 for the unsigned one (v): half a bin of that decade. So in
 * the top decade m is within 0.70% of a, v within 0.35%; below 1e-7 a the
 * value may become 0. The element that sets the absmax is exact for v (and
 * for a positive m).
 */
#include "../test.h"
#include "adam8.h"
#include "fit.h"
#include "gpt_ref.h"
#include "model.h"

#include <math.h>
#include <omp.h>
#include <stdlib.h>

static uint64_t rs = 12345;
static double urand(void) { return (double)(wn_splitmix64(&rs) >> 11) * 0x1.0p-53; }
static double nrand(void)
{
    double u1 = urand() + 0x1.0p-54, u2 = urand();
    return sqrt(-2.0 * log(u1)) * cos(2.0 * 3.14159265358979323846 * u2);
}

/* The linear-scan nearest entry (ties to the lower index). */
static int nearest_linear(const float *map, float x)
{
    int best = 0;
    for (int k = 1; k < 256; k++)
        if (fabsf(map[k] - x) < fabsf(map[best] - x)) best = k;
    return best;
}

TEST(adam8_maps)
{
    float maps[512];
    wn_adam8_maps(maps);
    const float *sm = maps, *um = maps + 256;
    for (int k = 1; k < 256; k++) {
        CHECK(sm[k] > sm[k - 1]);
        CHECK(um[k] > um[k - 1]);
    }
    CHECK(sm[WN_ADAM8_ZERO_M] == 0.0f && sm[255] == 1.0f && sm[0] > -1.0f && sm[0] < -0.99f);
    CHECK(um[0] == 0.0f && um[255] == 1.0f);
    /* levels per decade: 2^(6-e) (signed, each sign) and 2^(7-e) (unsigned) */
    for (int e = 0; e < 7; e++) {
        double hi = pow(10.0, -e), lo = hi / 10;
        int ns = 0, nu = 0;
        for (int k = 0; k < 255; k++) { /* 1.0 itself is extra */
            ns += sm[k] > lo && sm[k] < hi;
            nu += um[k] > lo && um[k] < hi;
        }
        CHECK_EQ_INT(ns, 1 << (6 - e));
        CHECK_EQ_INT(nu, 1 << (7 - e));
    }
    /* the same bits every time */
    float again[512];
    wn_adam8_maps(again);
    CHECK(memcmp(maps, again, sizeof maps) == 0);
}

TEST(adam8_nearest_matches_linear_scan)
{
    float maps[512];
    wn_adam8_maps(maps);
    int nbad = 0;
    for (int which = 0; which < 2; which++) {
        const float *map = maps + 256 * which;
        /* every entry, every midpoint between neighbours (ties), their float
         * neighbours, the ends and beyond, and random values at all scales */
        for (int k = 0; k < 256; k++) {
            float xs[5] = {map[k], nextafterf(map[k], 2), nextafterf(map[k], -2), 0, 0};
            if (k < 255) xs[3] = map[k] + (map[k + 1] - map[k]) / 2, xs[4] = nextafterf(xs[3], 2);
            for (int j = 0; j < 5; j++) nbad += wn_adam8_nearest(map, xs[j]) != nearest_linear(map, xs[j]);
            CHECK_EQ_INT(wn_adam8_nearest(map, map[k]), k);
        }
        const float edge[] = {-1.0f, 1.0f, -2.0f, 2.0f, 0.0f, -0.0f, 1e-30f, -1e-30f};
        for (size_t j = 0; j < WN_ARRAY_LEN(edge); j++)
            nbad += wn_adam8_nearest(map, edge[j]) != nearest_linear(map, edge[j]);
        for (int i = 0; i < 100000; i++) {
            float x = (float)((urand() * 2 - 1) * pow(10.0, -8 * urand()));
            if (which) x = fabsf(x);
            nbad += wn_adam8_nearest(map, x) != nearest_linear(map, x);
        }
    }
    CHECK_EQ_INT(nbad, 0);
}

/* Half a bin of x's decade (see the top comment), for |x| <= 1. */
static double decade_bound(double x, int bits)
{
    x = fabs(x);
    for (int e = 0; e < 7; e++)
        if (x >= 0.1 * pow(10.0, -e)) return 0.45 * pow(10.0, -e) / (1 << (bits - e));
    return 0.1 * pow(10.0, -6); /* below the smallest decade: 0 or its entry */
}

TEST(adam8_quantize_round_trip_and_bounds)
{
    float maps[512];
    wn_adam8_maps(maps);
    enum { N = 256 * 40 + 77 };
    float *x = malloc(N * sizeof *x), *y = malloc(N * sizeof *y);
    uint8_t *q = malloc(N);
    float *amax = malloc(wn_adam8_blocks(N) * sizeof *amax);
    /* exact round trip of every entry: a block holding absmax A = 2^-3 and
     * map[k] A (exact products) gives back code k */
    for (int which = 0; which < 2; which++) {
        const float *map = maps + 256 * which;
        for (int k = 0; k < 256; k++) x[k] = map[k] * 0.125f;
        x[0] = which ? x[0] : 0.125f; /* the signed map's most negative entry is not -1 */
        wn_adam8_quantize(q, amax, x, 256, map);
        CHECK(amax[0] == 0.125f);
        int bad = 0;
        for (int k = which ? 0 : 1; k < 256; k++) bad += q[k] != k;
        CHECK_EQ_INT(bad, 0);
    }
    /* random blocks: m-like (normal, scale varying per block, some outliers)
     * and v-like (squares: many decades); every element within its decade
     * bound, the block's absmax element exact, every block independent */
    for (int which = 0; which < 2; which++) {
        const float *map = maps + 256 * which;
        int bits = which ? 7 : 6, nbad = 0;
        double worst_top = 0, sum_rel = 0;
        size_t n_rel = 0;
        for (size_t i = 0; i < N; i++) {
            double scale = pow(10.0, -4 * (double)((i / 256) % 5)), v = nrand() * scale;
            if (i % 997 == 5) v *= 50; /* an outlier now and then */
            x[i] = (float)(which ? v * v : v);
        }
        wn_adam8_quantize(q, amax, x, N, map);
        wn_adam8_dequantize(y, q, amax, N, map);
        for (size_t i = 0; i < N; i++) {
            double a = amax[i / 256], err = fabs((double)y[i] - x[i]);
            double bound = decade_bound(x[i] / a, bits) * a * (1 + 1e-6) + 1e-6 * fabs(x[i]);
            if (!(err <= bound) && nbad++ < 5)
                fprintf(stderr, "  %s[%zu] = %g: dequantized %g, absmax %g, bound %g\n", which ? "v" : "m", i, x[i],
                        y[i], a, bound);
            if (fabs(x[i]) >= 0.1 * a) {
                worst_top = fmax(worst_top, err / a);
                sum_rel += err / fabs(x[i]);
                n_rel++;
            }
        }
        CHECK_EQ_INT(nbad, 0);
        fprintf(stderr, "  %s map: top decade error at most %.4f x absmax (bound %.4f), mean relative %.4f\n",
                which ? "unsigned (v)" : "signed (m)", worst_top, decade_bound(1, bits), sum_rel / n_rel);
        CHECK(worst_top <= decade_bound(1, bits) * (1 + 1e-5)); /* float rounding of x and a */
        /* absmax per block; changing one block leaves the others' codes */
        for (size_t b = 0; b < wn_adam8_blocks(N); b++) {
            size_t i0 = b * 256, i1 = i0 + 256 < N ? i0 + 256 : N;
            float mx = 0;
            for (size_t i = i0; i < i1; i++) mx = fmaxf(mx, fabsf(x[i]));
            CHECK(amax[b] == mx);
        }
        uint8_t *q2 = malloc(N);
        float *amax2 = malloc(wn_adam8_blocks(N) * sizeof *amax2);
        x[300] = 1e6f;
        wn_adam8_quantize(q2, amax2, x, N, map);
        CHECK(amax2[1] == 1e6f && amax2[0] == amax[0] && amax2[2] == amax[2]);
        CHECK(memcmp(q2, q, 256) == 0 && memcmp(q2 + 512, q + 512, N - 512) == 0);
        free(q2);
        free(amax2);
    }
    /* an all-zero block (and a short last block): absmax 0, all decode to 0 */
    for (int i = 0; i < 300; i++) x[i] = 0;
    x[299] = -3;
    wn_adam8_quantize(q, amax, x, 300, maps);
    wn_adam8_dequantize(y, q, amax, 300, maps);
    CHECK(amax[0] == 0 && amax[1] == 3 && q[0] == WN_ADAM8_ZERO_M && y[0] == 0 && y[255] == 0);
    CHECK(y[299] == maps[0] * 3 && q[256] == WN_ADAM8_ZERO_M);
    free(x);
    free(y);
    free(q);
    free(amax);
}

/* n elements of AdamW state: parameters, gradients, random codes and scales
 * (zero state for the first `zero_blocks` blocks), some all-zero gradient
 * blocks. */
typedef struct {
    float *p, *g, *sm, *sv;
    uint8_t *qm, *qv;
} state8;

static state8 state_new(size_t n, int zero_blocks)
{
    size_t nb = wn_adam8_blocks(n);
    state8 s = {malloc(n * 4), malloc(n * 4), malloc(nb * 4), malloc(nb * 4), malloc(n), malloc(n)};
    for (size_t i = 0; i < n; i++) {
        s.p[i] = (float)(0.02 * nrand());
        s.g[i] = (i / 256) % 7 == 3 ? 0.0f : (float)(1e-3 * nrand() * pow(10.0, -2 * urand()));
        s.qm[i] = (uint8_t)(wn_splitmix64(&rs) >> 56);
        s.qv[i] = (uint8_t)(wn_splitmix64(&rs) >> 56);
    }
    for (size_t b = 0; b < nb; b++) {
        int z = (int)b < zero_blocks;
        s.sm[b] = z ? 0.0f : (float)(1e-3 * urand());
        s.sv[b] = z ? 0.0f : (float)(1e-6 * urand());
    }
    return s;
}

static state8 state_copy(const state8 *a, size_t n)
{
    size_t nb = wn_adam8_blocks(n);
    state8 s = {malloc(n * 4), malloc(n * 4), malloc(nb * 4), malloc(nb * 4), malloc(n), malloc(n)};
    memcpy(s.p, a->p, n * 4);
    memcpy(s.g, a->g, n * 4);
    memcpy(s.sm, a->sm, nb * 4);
    memcpy(s.sv, a->sv, nb * 4);
    memcpy(s.qm, a->qm, n);
    memcpy(s.qv, a->qv, n);
    return s;
}

static int state_same(const state8 *a, const state8 *b, size_t n)
{
    size_t nb = wn_adam8_blocks(n);
    return !memcmp(a->p, b->p, n * 4) && !memcmp(a->sm, b->sm, nb * 4) && !memcmp(a->sv, b->sv, nb * 4) &&
           !memcmp(a->qm, b->qm, n) && !memcmp(a->qv, b->qv, n);
}

static void state_free(state8 *s)
{
    free(s->p);
    free(s->g);
    free(s->sm);
    free(s->sv);
    free(s->qm);
    free(s->qv);
}

TEST(adam8_step_matches_reference_bit_for_bit)
{
    float maps[512];
    wn_adam8_maps(maps);
    const size_t sizes[] = {1, 255, 256, 257, 1000, 70001}; /* the last one runs in parallel */
    const float lr = 6e-4f, b1 = 0.9f, b2 = 0.95f, eps = 1e-8f, wdk = 0.1f;
    int saved = omp_get_max_threads();
    for (size_t z = 0; z < WN_ARRAY_LEN(sizes); z++)
        for (int decay = 0; decay < 2; decay++) {
            size_t n = sizes[z];
            state8 a = state_new(n, (int)z % 3), b = state_copy(&a, n);
            int same = 1;
            for (int t = 1; t <= 4; t++) { /* from random states, then chained */
                float bc1 = (float)(1.0 - pow(b1, t)), bc2 = (float)(1.0 - pow(b2, t));
                omp_set_num_threads(1 + t % 2);
                wn_adam8_update(a.p, a.g, a.qm, a.sm, a.qv, a.sv, maps, n, lr, b1, b2, eps, decay ? wdk : 0, bc1,
                                bc2);
                wn_ref_adamw8(b.p, b.g, b.qm, b.sm, b.qv, b.sv, maps, n, lr, b1, b2, eps, wdk, t, decay);
                same &= state_same(&a, &b, n);
                for (size_t i = 0; i < n; i++) a.g[i] = b.g[i] = (float)(1e-3 * nrand());
            }
            if (!same) fprintf(stderr, "  n=%zu decay=%d: CPU step differs from wn_ref_adamw8\n", n, decay);
            CHECK(same);
            state_free(&a);
            state_free(&b);
        }
    omp_set_num_threads(saved);
}

/* Moves the parameters like the float optimizer within quantization error:
 * a one-block tensor's first step from zero moments is exact (m and v are
 * computed in float before quantizing), the next steps stay close. */
TEST(adam8_step_tracks_float_adamw)
{
    float maps[512];
    wn_adam8_maps(maps);
    enum { N = 2000 };
    state8 s = state_new(N, 8); /* 8 zero blocks: all of them */
    float *p = malloc(N * 4), *m = calloc(N, 4), *v = calloc(N, 4);
    memcpy(p, s.p, N * 4);
    double worst = 0;
    for (int t = 1; t <= 20; t++) {
        float bc1 = (float)(1.0 - pow(0.9, t)), bc2 = (float)(1.0 - pow(0.95, t));
        for (size_t i = 0; i < N; i++) s.g[i] = (float)(1e-3 * nrand());
        wn_adam8_update(s.p, s.g, s.qm, s.sm, s.qv, s.sv, maps, N, 1e-3f, 0.9f, 0.95f, 1e-8f, 0, bc1, bc2);
        for (size_t i = 0; i < N; i++) {
            m[i] = 0.9f * m[i] + (1.0f - 0.9f) * s.g[i];
            v[i] = 0.95f * v[i] + (1.0f - 0.95f) * s.g[i] * s.g[i];
            p[i] -= 1e-3f * ((m[i] / bc1) / (sqrtf(v[i] / bc2) + 1e-8f));
        }
        double d = 0;
        for (size_t i = 0; i < N; i++) d = fmax(d, fabs((double)s.p[i] - p[i]));
        if (t == 1) CHECK(d == 0);
        worst = fmax(worst, d);
    }
    fprintf(stderr, "  20 steps of lr 1e-3: parameters within %.2e of float AdamW's (20 lr = 2e-2)\n", worst);
    CHECK(worst < 2e-3); /* a tenth of the distance moved */
    state_free(&s);
    free(p);
    free(m);
    free(v);
}

TEST(adam8_model_step_and_conversion)
{
    const wn_gpt_config c = {300, 16, 2, 2, 24}; /* wte: 7200 elements, 29 blocks (the last short) */
    wn_gpt *m;
    CHECK_EQ_INT(wn_gpt_new(&m, &c, 5, NULL), WN_OK);
    wn_tensor *t;
    int nt = wn_gpt_tensors(m, &t);
    size_t P = wn_gpt_num_params(m);
    /* float moments with content, then 8-bit: within the decade bounds */
    float *fm = wn_gpt_adam_m(m), *fv = wn_gpt_adam_v(m);
    for (size_t i = 0; i < P; i++) {
        fm[i] = (float)(1e-3 * nrand());
        fv[i] = fm[i] * fm[i] * (float)(1 + urand());
    }
    float *m0 = malloc(P * 4), *v0 = malloc(P * 4);
    memcpy(m0, fm, P * 4);
    memcpy(v0, fv, P * 4);
    CHECK(!wn_gpt_adam8(m, NULL));
    CHECK_EQ_INT(wn_gpt_set_adam8(m, 1), WN_OK);
    wn_gpt_adam8_state a;
    CHECK(wn_gpt_adam8(m, &a) && wn_gpt_adam_m(m) == NULL && wn_gpt_adam_v(m) == NULL);
    size_t nb = 0;
    for (int i = 0; i < nt; i++) nb += wn_adam8_blocks(t[i].size);
    CHECK(a.n == P && a.nblocks == nb && a.code_v == a.code_m + P && a.absmax_v == a.absmax_m + nb);
    CHECK_EQ_INT(wn_gpt_set_adam8(m, 1), WN_OK); /* already on: nothing changes */
    CHECK_EQ_INT(wn_gpt_set_adam8(m, 0), WN_OK);
    CHECK(wn_gpt_adam_m(m) != NULL && !wn_gpt_adam8(m, NULL));
    int nbad = 0;
    size_t off = 0;
    for (int i = 0; i < nt; off += t[i].size, i++) {
        float am = 0, av = 0;
        for (size_t j = off; j < off + t[i].size; j++) { /* the tensor's absmax bounds its blocks' */
            am = fmaxf(am, fabsf(m0[j]));
            av = fmaxf(av, v0[j]);
        }
        for (size_t j = off; j < off + t[i].size; j++) {
            nbad += !(fabsf(wn_gpt_adam_m(m)[j] - m0[j]) <= 0.45f / 64 * am * 1.0001f);
            nbad += !(fabsf(wn_gpt_adam_v(m)[j] - v0[j]) <= 0.45f / 128 * av * 1.0001f);
        }
    }
    CHECK_EQ_INT(nbad, 0);

    /* three steps through the model against wn_ref_adamw8 per tensor, with
     * weight decay on 2-D tensors only */
    CHECK_EQ_INT(wn_gpt_set_adam8(m, 1), WN_OK);
    wn_gpt_adam8(m, &a);
    float *p = malloc(P * 4), *sm = malloc(nb * 4), *sv = malloc(nb * 4);
    uint8_t *qm = malloc(P), *qv = malloc(P);
    memcpy(p, t[0].data, P * 4);
    memcpy(qm, a.code_m, P);
    memcpy(qv, a.code_v, P);
    memcpy(sm, a.absmax_m, nb * 4);
    memcpy(sv, a.absmax_v, nb * 4);
    float maps[512];
    wn_adam8_maps(maps);
    CHECK(memcmp(maps, a.maps, sizeof maps) == 0);
    for (int step = 1; step <= 3; step++) {
        for (size_t i = 0; i < P; i++) t[0].grad[i] = (float)(1e-2 * nrand());
        wn_adamw o = {1e-3f, 0.9f, 0.95f, 1e-8f, 0.1f};
        wn_gpt_adamw(m, &o, step);
        size_t boff = 0;
        off = 0;
        for (int i = 0; i < nt; off += t[i].size, boff += wn_adam8_blocks(t[i].size), i++)
            wn_ref_adamw8(p + off, t[0].grad + off, qm + off, sm + boff, qv + off, sv + boff, maps, t[i].size, o.lr,
                          o.beta1, o.beta2, o.eps, o.weight_decay, step, t[i].ndim == 2);
    }
    CHECK(memcmp(p, t[0].data, P * 4) == 0);
    CHECK(memcmp(qm, a.code_m, P) == 0 && memcmp(qv, a.code_v, P) == 0);
    CHECK(memcmp(sm, a.absmax_m, nb * 4) == 0 && memcmp(sv, a.absmax_v, nb * 4) == 0);
    wn_gpt_free(m);
    free(m0);
    free(v0);
    free(p);
    free(sm);
    free(sv);
    free(qm);
    free(qv);

    /* out of memory at either allocation, both ways: an error, the model as it was */
    CHECK_EQ_INT(wn_gpt_new(&m, &c, 5, NULL), WN_OK);
    for (long k = 1; k <= 2; k++) {
        wn_alloc_fail_after(k);
        wn_err e = wn_gpt_set_adam8(m, 1);
        wn_alloc_fail_after(-1);
        CHECK_EQ_INT(e, WN_ERR_NOMEM);
        CHECK(!wn_gpt_adam8(m, NULL) && wn_gpt_adam_m(m) != NULL);
    }
    CHECK_EQ_INT(wn_gpt_set_adam8(m, 1), WN_OK);
    for (long k = 1; k <= 2; k++) {
        wn_alloc_fail_after(k);
        wn_err e = wn_gpt_set_adam8(m, 0);
        wn_alloc_fail_after(-1);
        CHECK_EQ_INT(e, WN_ERR_NOMEM);
        CHECK(wn_gpt_adam8(m, NULL) && wn_gpt_adam_m(m) == NULL);
    }
    wn_gpt_free(m);
}

/* model_memorizes_a_sequence (test_model.c) with 8-bit moments. */
TEST(adam8_model_memorizes_a_sequence)
{
    const wn_gpt_config c = {16, 16, 2, 2, 32};
    enum { B = 2, T = 12 };
    static const uint32_t seq[T + 1] = {3, 14, 1, 5, 9, 2, 6, 5, 3, 5, 8, 9, 7};
    uint32_t in[B * T], tg[B * T];
    for (int b = 0; b < B; b++)
        for (int i = 0; i < T; i++) {
            in[b * T + i] = seq[i];
            tg[b * T + i] = seq[i + 1];
        }
    wn_gpt *m;
    CHECK_EQ_INT(wn_gpt_new(&m, &c, 1234, NULL), WN_OK);
    CHECK_EQ_INT(wn_gpt_set_adam8(m, 1), WN_OK);
    float first = 0, loss = 0;
    for (int step = 0; step < 200; step++) {
        wn_adamw o = {wn_lr_schedule(step, 10, 200, 1e-2f, 1e-3f), 0.9f, 0.95f, 1e-8f, 0.0f};
        wn_gpt_zero_grad(m);
        CHECK_EQ_INT(wn_gpt_forward(m, in, tg, NULL, B, T, &loss), WN_OK);
        CHECK_EQ_INT(wn_gpt_backward(m), WN_OK);
        wn_gpt_clip_grad(m, 1.0f);
        wn_gpt_adamw(m, &o, step + 1);
        if (step == 0) first = loss;
    }
    CHECK_EQ_INT(wn_gpt_forward(m, in, tg, NULL, B, T, &loss), WN_OK);
    fprintf(stderr, "  memorisation with 8-bit moments: loss %.4f -> %.5f after 200 steps\n", first, loss);
    CHECK(loss < 0.02f);
    wn_gpt_free(m);
}

/* wn_gpt_fit's memory options: recompute changes nothing (same losses, same
 * parameters), 8-bit moments still train. */
TEST(adam8_fit_options)
{
    const wn_gpt_config c = {29, 16, 2, 2, 16};
    uint32_t tok[400];
    for (int i = 0; i < 400; i++) tok[i] = (uint32_t)((i * 7 + i / 13) % 29);
    wn_fit_result r[3];
    wn_gpt *m[3];
    for (int k = 0; k < 3; k++) {
        wn_fit_opts o = {40, 4, 16, 4, 3e-3f, 3e-4f, 0.1f, 1.0f, 9, k == 2, k == 1};
        CHECK_EQ_INT(wn_gpt_new(&m[k], &c, 3, NULL), WN_OK);
        CHECK_EQ_INT(wn_gpt_fit(m[k], tok, 400, &o, &r[k], NULL), WN_OK);
    }
    wn_tensor *t0, *t1;
    wn_gpt_tensors(m[0], &t0);
    wn_gpt_tensors(m[1], &t1);
    CHECK(r[0].first_loss == r[1].first_loss && r[0].last_loss == r[1].last_loss);
    CHECK(memcmp(t0[0].data, t1[0].data, wn_gpt_num_params(m[0]) * sizeof(float)) == 0);
    CHECK(wn_gpt_adam8(m[2], NULL) && !wn_gpt_adam8(m[0], NULL));
    fprintf(stderr, "  fit: loss %.4f -> %.4f (float), %.4f (8-bit)\n", r[0].first_loss, r[0].last_loss,
            r[2].last_loss);
    CHECK(r[2].last_loss < r[2].first_loss - 0.5f && fabsf(r[2].last_loss - r[0].last_loss) < 0.1f * r[0].last_loss);
    for (int k = 0; k < 3; k++) wn_gpt_free(m[k]);
}
