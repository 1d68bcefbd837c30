/*
 * adam8.h - 8-bit AdamW moments: block-wise dynamic quantization after
 * Dettmers et al. 2022, "8-bit Optimizers via Block-wise Quantization"
 * (arXiv 2110.02861). `winnow train --adam-8bit` keeps AdamW's m and v as
 * one byte per parameter each plus one float scale per block, 2.03 bytes per
 * parameter instead of 8.
 *
 * Blocks: each tensor's moments are cut into blocks of WN_ADAM8_BLOCK = 256
 * consecutive elements (the last one shorter; a block never spans two
 * tensors). A block stores its absmax (float: max |m|, max v) and one code
 * per element; the value is map[code] * absmax. 256 rather than the paper's
 * 2048 (bitsandbytes' blockwise optimizers use 256 too): a smaller block
 * confines an outlier's loss of resolution to fewer neighbours, the scales
 * still cost only 4/256 bytes per parameter and moment (1.6%), and a block
 * is one CUDA thread block of 256 threads (kernels/gpt_kernels.cu).
 *
 * Maps: 256 floats sorted ascending, code = index, quantization = the
 * nearest entry (ties to the lower one). Both moments use the paper's
 * dynamic (tree) data type rather than a linear one: an 8-bit code is a sign
 * bit, then e zero bits giving the magnitude 10^-e (e = 0..6), an indicator
 * bit, and 6 - e bits of linear fraction splitting [0.1, 1] into 2^(6-e)
 * equal bins (the entry is the bin's midpoint). So the precision follows
 * the magnitude: 64 levels in [0.1, 1] x absmax, 32 in the decade below, ...
 * down to 1e-7 x absmax, where a linear map would round everything below
 * absmax / 254 to zero. That matters most for v (about g^2, spanning many
 * decades within a block): with a linear map most small v would become 0
 * and m / (sqrt(v) + eps) would explode. v is never negative, so its map
 * (unsigned) spends the sign bit on one more fraction bit per decade
 * (128 levels in [0.1, 1]). Each map also holds 0 and 1.0 exactly (the
 * element that sets the absmax is stored exactly). Signed map: 127
 * negative entries, 0 at code 127, 128 positive ones (up to 1.0); unsigned:
 * 0 at code 0, then 255 positive ones. The maps are computed in double from
 * decimal constants, so every build gets the same bits.
 *
 * One step per block (wn_adam8_update): dequantize m and v, the AdamW update
 * in float exactly as the fp32 optimizer does it (the parameter moves with
 * the new, unquantized m and v), then the new absmax and requantization.
 * The arithmetic is the C reference's (src/gpt_ref.c, wn_ref_adamw8) operation
 * for operation, so the two agree bit for bit (tests/unit/test_adam8.c).
 * All-zero moments (scale 0) are the initial state: calloc'd codes and
 * scales are a valid zero state.
 */
#ifndef WN_ADAM8_H
#define WN_ADAM8_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define WN_ADAM8_BLOCK 256
#define WN_ADAM8_ZERO_M 127 /* the signed map's code of 0 */

/* Blocks of a tensor of n elements. */
static inline size_t wn_adam8_blocks(size_t n) { return (n + WN_ADAM8_BLOCK - 1) / WN_ADAM8_BLOCK; }

/* Fills map[0..255] with the signed dynamic map (for m) and map[256..511]
 * with the unsigned one (for v). */
void wn_adam8_maps(float map[512]);

/* Index of the entry of map (256 sorted floats) nearest to x; ties to the
 * lower index. Below map[0]: 0; above map[255]: 255. */
uint8_t wn_adam8_nearest(const float *map, float x);

/* Block-wise quantization of x (n elements) with one of the two maps
 * (256 floats): absmax[b] = max |x| over block b (wn_adam8_blocks(n) of
 * them), code[i] = nearest(map, x[i] / absmax) (all-zero block: absmax 0,
 * codes of the entry nearest 0). */
void wn_adam8_quantize(uint8_t *code, float *absmax, const float *x, size_t n, const float *map);
/* x[i] = map[code[i]] * absmax[block of i]. */
void wn_adam8_dequantize(float *x, const uint8_t *code, const float *absmax, size_t n, const float *map);

/* One AdamW step over a tensor of n elements with 8-bit moments:
 * qm, sm (codes, scales of m), qv, sv (of v), maps as wn_adam8_maps fills
 * them. bc1, bc2 are the bias corrections 1 - beta^t (as floats), wd the
 * weight decay of this tensor (0 for biases and LayerNorm). Parallel over
 * blocks (OpenMP); the result does not depend on the thread count. */
void wn_adam8_update(float *p, const float *g, uint8_t *qm, float *sm, uint8_t *qv, float *sv, const float *maps,
                     size_t n, float lr, float beta1, float beta2, float eps, float wd, float bc1, float bc2);

#ifdef __cplusplus
}
#endif

#endif
