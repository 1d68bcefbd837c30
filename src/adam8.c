/*
 * adam8.c - 8-bit block-wise quantized AdamW moments (adam8.h): the two
 * dynamic maps, nearest-entry quantization by binary search, block-wise
 * quantize / dequantize, and the fused dequantize-update-requantize step
 * that model.c's wn_gpt_adamw runs when the model's moments are 8-bit.
 */
#include "adam8.h"

#include <math.h>
#include <stdlib.h>

/* Loops over fewer elements than this stay on the calling thread (as
 * model.c's PAR_MIN). */
#define ADAM8_PAR_MIN 16384

static int cmp_float(const void *a, const void *b)
{
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

/* The dynamic map: per decade e = 0..6 (magnitude 10^-e), 2^(bits - e)
 * midpoints of equal bins of [0.1, 1] x 10^-e, with both signs when signed
 * (bits = 6) or positive only (bits = 7); then 0 and 1.0; sorted. */
static void dynamic_map(float *map, int is_signed)
{
    static const double decade[7] = {1.0, 1e-1, 1e-2, 1e-3, 1e-4, 1e-5, 1e-6};
    int bits = is_signed ? 6 : 7, k = 0;
    for (int e = 0; e < 7; e++) {
        int levels = 1 << (bits - e);
        for (int j = 0; j < levels; j++) {
            double mid = decade[e] * (0.1 + 0.9 * (j + 0.5) / levels);
            map[k++] = (float)mid;
            if (is_signed) map[k++] = (float)-mid;
        }
    }
    map[k++] = 0.0f;
    map[k++] = 1.0f;
    qsort(map, 256, sizeof *map, cmp_float); /* k == 256 for both kinds */
}

void wn_adam8_maps(float map[512])
{
    dynamic_map(map, 1);
    dynamic_map(map + 256, 0);
}

/* wn_adam8_nearest, inlined into the update's loops */
static inline uint8_t nearest(const float *map, float x)
{
    /* cnt: how many entries are <= x (map is sorted): 8 halvings cover
     * 0..255, the last entry is checked apart. Written as selects, not
     * branches: which way each halving goes is data, unpredictable. */
    int cnt = 0;
    for (int step = 128; step > 0; step >>= 1) cnt += map[cnt + step - 1] <= x ? step : 0;
    cnt += cnt == 255 && map[255] <= x;
    int lo = cnt - 1;
    if (lo < 0) return 0;
    if (lo == 255) return 255;
    return x - map[lo] <= map[lo + 1] - x ? (uint8_t)lo : (uint8_t)(lo + 1);
}

uint8_t wn_adam8_nearest(const float *map, float x) { return nearest(map, x); }

void wn_adam8_quantize(uint8_t *code, float *absmax, const float *x, size_t n, const float *map)
{
    size_t nb = wn_adam8_blocks(n);
    uint8_t zero = wn_adam8_nearest(map, 0.0f);
    for (size_t b = 0; b < nb; b++) {
        size_t i0 = b * WN_ADAM8_BLOCK, i1 = i0 + WN_ADAM8_BLOCK < n ? i0 + WN_ADAM8_BLOCK : n;
        float a = 0;
        for (size_t i = i0; i < i1; i++)
            if (fabsf(x[i]) > a) a = fabsf(x[i]);
        absmax[b] = a;
        for (size_t i = i0; i < i1; i++) code[i] = a > 0 ? nearest(map, x[i] / a) : zero;
    }
}

void wn_adam8_dequantize(float *x, const uint8_t *code, const float *absmax, size_t n, const float *map)
{
    for (size_t i = 0; i < n; i++) x[i] = map[code[i]] * absmax[i / WN_ADAM8_BLOCK];
}

/* One block of wn_adam8_update: elements [0, len) of the block's slices. */
static void update_block(float *restrict p, const float *restrict g, uint8_t *restrict qm, float *restrict sm,
                         uint8_t *restrict qv, float *restrict sv, const float *restrict maps, size_t len, float lr,
                         float b1, float b2, float eps, float wd, float bc1, float bc2)
{
    const float *map_m = maps, *map_v = maps + 256;
    float mt[WN_ADAM8_BLOCK], vt[WN_ADAM8_BLOCK];
    float scale_m = *sm, scale_v = *sv, am = 0, av = 0;
    for (size_t j = 0; j < len; j++) {
        float gj = g[j];
        float mj = b1 * (map_m[qm[j]] * scale_m) + (1.0f - b1) * gj;
        float vj = b2 * (map_v[qv[j]] * scale_v) + (1.0f - b2) * gj * gj;
        float mh = mj / bc1, vh = vj / bc2;
        p[j] -= lr * (mh / (sqrtf(vh) + eps) + wd * p[j]);
        mt[j] = mj;
        vt[j] = vj;
        if (fabsf(mj) > am) am = fabsf(mj);
        if (vj > av) av = vj;
    }
    *sm = am;
    *sv = av;
    for (size_t j = 0; j < len; j++) {
        qm[j] = am > 0 ? nearest(map_m, mt[j] / am) : WN_ADAM8_ZERO_M;
        qv[j] = av > 0 ? nearest(map_v, vt[j] / av) : 0;
    }
}

void wn_adam8_update(float *p, const float *g, uint8_t *qm, float *sm, uint8_t *qv, float *sv, const float *maps,
                     size_t n, float lr, float beta1, float beta2, float eps, float wd, float bc1, float bc2)
{
    size_t nb = wn_adam8_blocks(n);
#pragma omp parallel for if (n >= ADAM8_PAR_MIN) schedule(static)
    for (size_t b = 0; b < nb; b++) {
        size_t i0 = b * WN_ADAM8_BLOCK, len = n - i0 < WN_ADAM8_BLOCK ? n - i0 : WN_ADAM8_BLOCK;
        update_block(p + i0, g + i0, qm + i0, sm + b, qv + i0, sv + b, maps, len, lr, beta1, beta2, eps, wd, bc1,
                     bc2);
    }
}
