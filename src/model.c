/*
 * model.c - the GPT-2 model on the CPU (model.h): parameters, forward,
 * backward, gradient clipping, AdamW, learning-rate schedule, sampling.
 * The structure follows llm.c's train_gpt2.c: one forward and one backward
 * function per layer kind, plain loops, OpenMP over rows or output columns.
 *
 * Shapes: B sequences of T tokens, N = B*T rows; C channels; NH heads of
 * hs = C/NH channels; V vocabulary; L layers. Activations are row-major
 * (N, width); attention probabilities are (B, NH, T, T). One block:
 *   ln1 = LN(x);  qkv = ln1 @ Wqkv + bqkv                    (N, 3C)
 *   y   = softmax(q k^T / sqrt(hs), causal) v per head      (N, C)
 *   x2  = x + y @ Wo + bo;  ln2 = LN(x2)
 *   h   = gelu_tanh(ln2 @ Wfc + bfc)                         (N, 4C)
 *   x'  = x2 + h @ Wp + bp
 * then lnf = LN(x_L); logits = lnf @ wte^T (N, V); nll_i = logsumexp(row i)
 * - logit[target_i]; loss = sum(w_i nll_i) / sum(w_i). LayerNorm: biased
 * variance, eps 1e-5. GELU: 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))).
 *
 * Determinism: every output element of a parallel loop is computed by one
 * thread as a sum in a fixed order (the loop over the reduced index is
 * inside, never split across threads), so results are bit-identical for any
 * OMP_NUM_THREADS. Gradients summed over rows (weights, biases, LayerNorm
 * parameters, embeddings) are parallel over the parameter's columns instead.
 * Small loops (PAR_MIN) stay on the calling thread, which cannot change
 * results either.
 *
 * Matrix products: one kernel, mm(), computes out = [out] + [bias] + A @ Bm
 * for a row-major Bm (K, M) and an A read through strides, so it serves
 * x @ W (forward), A^T @ dY (weight gradients, A read transposed) and
 * dY @ W^T (input gradients, W transposed first into a scratch). Output is
 * tiled (MM_RB rows x MM_CB columns kept in a local accumulator, Bm streamed
 * row by row) so the inner loop is an axpy (`omp simd`, plus an AVX2 clone
 * of the tile picked at load time); each element is still summed over k in
 * order, exactly like mm_naive(), the reference it is tested against, so
 * SSE2, AVX2 and the naive loop give the same bits. The LM head transposes
 * wte (V, C) into the scratch once per forward. Built with WN_BLAS=1 (the
 * Makefile's default when it finds OpenBLAS), the float products go to
 * cblas_sgemm instead, on fixed output tiles (mm_blas(): also bit-identical
 * for any thread count, and about 3x faster); this path stays the reference
 * and the fallback, and the double build always uses it.
 *
 * Scalar type: the math is written on wn_real, float by default. Defining
 * WN_MODEL_DOUBLE before including this file (the unit test does this with
 * `#include "../../src/model.c"`; the Makefile must then rebuild that test
 * when model.c changes) builds the same code in double: wn_real
 * becomes double and every external name is renamed wn64_* (wn64_gpt,
 * wn64_tensor, wn64_gpt_forward, ...), so that translation unit holds both
 * the float API (linked from model.o) and the double one, which the
 * finite-difference gradient check needs. The renames are #undef'd at the
 * end of this file. The double build's wn64_tensor has double pointers; its
 * hyperparameter types (wn_gpt_config, wn_adamw) are shared.
 *
 * Initialisation: a splitmix64 stream seeded with `seed` gives 53-bit
 * uniforms u in (0, 1); Box-Muller turns each pair into two N(0, 1)
 * (sqrt(-2 ln u1) cos(2 pi u2), then ... sin(...)), consumed in tensor order,
 * element order, by the tensors that are drawn (weights and embeddings).
 * Computed in double, then rounded, so a seed gives the same model in both
 * builds up to rounding.
 *
 * Activations: by default everything the backward needs is stored, about
 * L (16 N C + 4 N + B NH T^2) + N (V + 2C) floats. With recompute
 * (wn_gpt_set_recompute, `winnow train --recompute`) the forward keeps only
 * each block's output (the next block's input: L N C floats) and one
 * block's worth of the rest, which the backward refills block by block by
 * running that block's forward again from its kept input (block_forward:
 * the same function, so the same bits; the last block is still there after
 * the forward and the MLP projection's output is not needed, so the extra
 * work is L - 1 blocks' forward minus that projection, about a quarter of a
 * step). Gradients are bit-identical to the stored path.
 *
 * AdamW moments: float (adam_m, adam_v), or with wn_gpt_set_adam8 8-bit
 * block-quantized codes and scales (adam8.h), updated by wn_adam8_update.
 *
 * Deliberately not done: dropout; a KV cache (sampling re-runs the whole
 * forward); vocabulary padding (V is used as is); mixed precision; fused
 * activations; attention probabilities for the masked half are stored as
 * zeros rather than skipped in memory.
 */
#include "model.h"

#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif
#include "adam8.h"
#if defined(WN_BLAS) && WN_BLAS
#include <cblas.h>
void openblas_set_num_threads(int); /* OpenBLAS's own; also in its cblas.h */
#endif

#ifdef WN_MODEL_DOUBLE
typedef double wn_real;
#define wn_gpt wn64_gpt
#define wn_tensor wn64_tensor
#define wn_gpt_new wn64_gpt_new
#define wn_gpt_free wn64_gpt_free
#define wn_gpt_cfg wn64_gpt_cfg
#define wn_gpt_num_params wn64_gpt_num_params
#define wn_gpt_tensors wn64_gpt_tensors
#define wn_gpt_forward wn64_gpt_forward
#define wn_gpt_logits wn64_gpt_logits
#define wn_gpt_token_nll wn64_gpt_token_nll
#define wn_gpt_zero_grad wn64_gpt_zero_grad
#define wn_gpt_backward wn64_gpt_backward
#define wn_gpt_clip_grad wn64_gpt_clip_grad
#define wn_gpt_adamw wn64_gpt_adamw
#define wn_gpt_adam_m wn64_gpt_adam_m
#define wn_gpt_adam_v wn64_gpt_adam_v
#define wn_lr_schedule wn64_lr_schedule
#define wn_gpt_sample wn64_gpt_sample
#define wn_gpt_flops_per_step wn64_gpt_flops_per_step
typedef struct wn_gpt wn_gpt;
typedef struct {
    char name[64];
    int ndim;
    int shape[2];
    size_t size;
    wn_real *data;
    wn_real *grad;
} wn_tensor;
#define R_EXP exp
#define R_LOG log
#define R_SQRT sqrt
#define R_TANH tanh
#else
typedef float wn_real;
#define R_EXP expf
#define R_LOG logf
#define R_SQRT sqrtf
#define R_TANH tanhf
#endif

#define RL(x) ((wn_real)(x))
/* Loops with less work than this (about multiply-adds) run on one thread:
 * forking a team costs more than tiny layers (sampling, tests) gain. */
#define PAR_MIN 16384
#define LN_EPS RL(1e-5)
#define GELU_S RL(0.7978845608028654) /* sqrt(2/pi) */
#define GELU_A RL(0.044715)

/* Per-layer tensor order (model.h). */
enum { P_LN1W, P_LN1B, P_QKVW, P_QKVB, P_ATTW, P_ATTB, P_LN2W, P_LN2B, P_FCW, P_FCB, P_PRJW, P_PRJB, P_PER_LAYER };

/* Activations of one forward, laid out in one allocation for (B, T). */
typedef struct {
    wn_real *encoded;                  /* (N, C) wte[tok] + wpe[t] */
    wn_real *ln1, *ln1_mean, *ln1_rstd; /* (L, N, C), (L, N), (L, N) */
    wn_real *qkv;                      /* (L, N, 3C) */
    wn_real *atty;                     /* (L, N, C) attention output before c_proj */
    wn_real *att;                      /* (L, B, NH, T, T) probabilities, 0 above the diagonal */
    wn_real *res2;                     /* (L, N, C) residual after attention */
    wn_real *ln2, *ln2_mean, *ln2_rstd;
    wn_real *fch, *fch_gelu;           /* (L, N, 4C) before / after GELU */
    wn_real *res3;                     /* (L, N, C) block output */
    wn_real *lnf, *lnf_mean, *lnf_rstd; /* (N, C), (N), (N) */
    wn_real *logits;                   /* (N, V) */
    wn_real *lse, *nll, *dloss;        /* (N): log-sum-exp, nll, w_i / sum(w) */
} gpt_acts;

/* Activation gradients of one backward; reused across layers. */
typedef struct {
    wn_real *dres;    /* (N, C) gradient of the residual stream */
    wn_real *dln;     /* (N, C) gradient of a LayerNorm output */
    wn_real *dqkv;    /* (N, 3C) */
    wn_real *datty;   /* (N, C) */
    wn_real *dfch;    /* (N, 4C) */
    wn_real *datt;    /* (B, NH, T) one row of attention-probability gradients */
    wn_real *dlogits; /* (N, V) */
} gpt_gacts;

struct wn_gpt {
    wn_gpt_config cfg;
    int ntensors;
    wn_tensor *tensors;
    size_t nparams;
    wn_real *params, *grads, *adam_m, *adam_v;
    wn_real *scratch;   /* a transposed matrix: max(V C, 4 C C) */
    double *partial;    /* clip_grad's per-chunk sums of squares */
    size_t npartial;
    wn_real *acts_mem, *gacts_mem;
    size_t acts_cap, gacts_cap; /* in wn_real */
    uint32_t *tok;              /* (2, N): inputs, targets of the last forward */
    size_t tok_cap;
    gpt_acts a;
    gpt_gacts g;
    int B, T;           /* of the last forward; 0 when none is valid */
    int have_targets;
    /* --recompute: per-layer activations share one slice (layout_acts),
     * which holds layer `slot` (-1: none) */
    int recompute, slot;
    /* --adam-8bit (adam8.h): codes (2, P) m | v and scales (2, nblocks8)
     * instead of adam_m, adam_v (then NULL); map8: the two maps */
    uint8_t *q8;
    float *s8;
    size_t nblocks8;
    float map8[512];
};

/* ---- helpers ----------------------------------------------------------- */

static inline int imin(int a, int b) { return a < b ? a : b; }

/* Hands out consecutive pieces of one buffer; with base NULL it only counts
 * (the size is also tracked in double to catch size_t overflow). */
typedef struct {
    wn_real *base;
    size_t used;
    double dused;
} arena;

static wn_real *take(arena *ar, size_t n)
{
    wn_real *p = ar->base ? ar->base + ar->used : NULL;
    ar->used += n;
    ar->dused += (double)n;
    return p;
}

/* With recompute, every per-layer activation but res3 (the block outputs,
 * i.e. the next blocks' inputs) gets one layer's slice instead of L. */
static size_t layout_acts(gpt_acts *a, wn_real *base, const wn_gpt_config *c, int B, int T, int recompute,
                          double *dsize)
{
    size_t N = (size_t)B * T, C = (size_t)c->dim, L = (size_t)c->layers, S = recompute ? 1 : L;
    arena ar = {base, 0, 0};
    a->encoded = take(&ar, N * C);
    a->ln1 = take(&ar, S * N * C);
    a->ln1_mean = take(&ar, S * N);
    a->ln1_rstd = take(&ar, S * N);
    a->qkv = take(&ar, S * N * 3 * C);
    a->atty = take(&ar, S * N * C);
    a->att = take(&ar, S * (size_t)B * c->heads * T * T);
    a->res2 = take(&ar, S * N * C);
    a->ln2 = take(&ar, S * N * C);
    a->ln2_mean = take(&ar, S * N);
    a->ln2_rstd = take(&ar, S * N);
    a->fch = take(&ar, S * N * 4 * C);
    a->fch_gelu = take(&ar, S * N * 4 * C);
    a->res3 = take(&ar, L * N * C);
    a->lnf = take(&ar, N * C);
    a->lnf_mean = take(&ar, N);
    a->lnf_rstd = take(&ar, N);
    a->logits = take(&ar, N * (size_t)c->vocab);
    a->lse = take(&ar, N);
    a->nll = take(&ar, N);
    a->dloss = take(&ar, N);
    /* the size_t products above cannot wrap when this estimate (of the
     * layout without recompute, the larger one) is sane */
    *dsize = (double)L * B * c->heads * (double)T * T + 20.0 * L * N * C + (double)N * c->vocab + 2.0 * N * C;
    return ar.used;
}

static size_t layout_gacts(gpt_gacts *g, wn_real *base, const wn_gpt_config *c, int B, int T)
{
    size_t N = (size_t)B * T, C = (size_t)c->dim;
    arena ar = {base, 0, 0};
    g->dres = take(&ar, N * C);
    g->dln = take(&ar, N * C);
    g->dqkv = take(&ar, N * 3 * C);
    g->datty = take(&ar, N * C);
    g->dfch = take(&ar, N * 4 * C);
    g->datt = take(&ar, (size_t)B * c->heads * T);
    g->dlogits = take(&ar, N * (size_t)c->vocab);
    return ar.used;
}

/* Grows *mem to hold n wn_reals (contents are not kept). */
static wn_err ensure(wn_real **mem, size_t *cap, size_t n)
{
    if (n <= *cap && *mem) return WN_OK;
    wn_free(*mem);
    *mem = wn_malloc(n * sizeof(wn_real));
    *cap = *mem ? n : 0;
    return *mem ? WN_OK : WN_ERR_NOMEM;
}

/* ---- seeded normal generator (see the header comment) -------------------- */

typedef struct {
    uint64_t s;
    int have;
    double spare;
} normal_rng;

static double normal_next(normal_rng *r)
{
    if (r->have) {
        r->have = 0;
        return r->spare;
    }
    double u1 = ((double)(wn_splitmix64(&r->s) >> 11) + 0.5) * 0x1.0p-53; /* (0, 1) */
    double u2 = ((double)(wn_splitmix64(&r->s) >> 11) + 0.5) * 0x1.0p-53;
    double rad = sqrt(-2.0 * log(u1)), th = 2.0 * 3.14159265358979323846 * u2;
    r->spare = rad * sin(th);
    r->have = 1;
    return rad * cos(th);
}

/* ---- layers: forward ---------------------------------------------------- */

/* out (N, C) = wte[inp] + wpe[t]. */
static void encoder_forward(wn_real *restrict out, const uint32_t *restrict inp, const wn_real *restrict wte,
                            const wn_real *restrict wpe, int B, int T, int C)
{
#pragma omp parallel for if ((size_t)B * T * C >= PAR_MIN) schedule(static)
    for (int n = 0; n < B * T; n++) {
        const wn_real *e = wte + (size_t)inp[n] * C, *p = wpe + (size_t)(n % T) * C;
        wn_real *o = out + (size_t)n * C;
        for (int c = 0; c < C; c++) o[c] = e[c] + p[c];
    }
}

static void layernorm_forward(wn_real *restrict out, wn_real *restrict mean, wn_real *restrict rstd,
                              const wn_real *restrict inp, const wn_real *restrict w, const wn_real *restrict b,
                              int N, int C)
{
#pragma omp parallel for if ((size_t)N * C >= PAR_MIN) schedule(static)
    for (int n = 0; n < N; n++) {
        const wn_real *x = inp + (size_t)n * C;
        wn_real m = 0, v = 0;
        for (int c = 0; c < C; c++) m += x[c];
        m /= (wn_real)C;
        for (int c = 0; c < C; c++) v += (x[c] - m) * (x[c] - m);
        v /= (wn_real)C;
        wn_real r = RL(1) / R_SQRT(v + LN_EPS);
        wn_real *o = out + (size_t)n * C;
        for (int c = 0; c < C; c++) o[c] = (x[c] - m) * r * w[c] + b[c];
        mean[n] = m;
        rstd[n] = r;
    }
}

/* Output tile of mm(): MM_RB rows by MM_CB columns. */
#define MM_RB 4
#define MM_CB 64

/* The full-tile kernel is also compiled for AVX2 (x86-64-v3) and picked at
 * load time (GCC ifunc). -std=c11 keeps floating-point contraction off, so
 * both clones do the same IEEE multiplies and adds: same results. */
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__gnu_linux__)
#define WN_MM_CLONES __attribute__((target_clones("arch=x86-64-v3", "default")))
#else
#define WN_MM_CLONES
#endif

/* One full MM_RB x MM_CB tile of mm() at (n0, m0). */
WN_MM_CLONES
static void mm_tile(wn_real *restrict out, const wn_real *restrict a, size_t ars, size_t aks,
                    const wn_real *restrict bm, const wn_real *restrict bias, int acc, int n0, int m0, int K, int M)
{
    wn_real t[MM_RB][MM_CB];
    for (int r = 0; r < MM_RB; r++)
        for (int j = 0; j < MM_CB; j++)
            t[r][j] = (acc ? out[(size_t)(n0 + r) * M + m0 + j] : 0) + (bias ? bias[m0 + j] : 0);
    for (int k = 0; k < K; k++) {
        const wn_real *brow = bm + (size_t)k * M + m0;
        for (int r = 0; r < MM_RB; r++) {
            wn_real av = a[(size_t)(n0 + r) * ars + (size_t)k * aks];
#pragma omp simd
            for (int j = 0; j < MM_CB; j++) t[r][j] += av * brow[j];
        }
    }
    for (int r = 0; r < MM_RB; r++)
        for (int j = 0; j < MM_CB; j++) out[(size_t)(n0 + r) * M + m0 + j] = t[r][j];
}

/* BLAS path (float build with WN_BLAS): cblas_sgemm, single-threaded
 * (openblas_set_num_threads(1) in wn_gpt_new), called once per output tile of
 * a fixed BL_RB x BL_CB grid, OpenMP across tiles. The grid does not depend on
 * the thread count and one sgemm on one tile is a fixed sequence of
 * operations, so the results are bit-identical for any OMP_NUM_THREADS, as on
 * the hand-written path; they differ from it in the last bits (OpenBLAS's own
 * blocking of k and FMA), and may differ between OpenBLAS builds or CPUs. */
#if defined(WN_BLAS) && WN_BLAS && !defined(WN_MODEL_DOUBLE)
#define MM_BLAS 1
#define BL_RB 128
#define BL_CB 256

/* out (N, M) = [out if acc] + [bias] + op(A) @ op(B): A stored (N, K), or
 * (K, N) when ta, with leading dimension lda; B stored (K, M), or (M, K)
 * when tb, with leading dimension ldb. */
static void mm_blas(float *out, const float *a, int ta, int lda, const float *b, int tb, int ldb,
                    const float *bias, int acc, int N, int K, int M)
{
    int nrb = (N + BL_RB - 1) / BL_RB, ncb = (M + BL_CB - 1) / BL_CB;
#pragma omp parallel for collapse(2) if ((size_t)N * K * M >= PAR_MIN) schedule(static)
    for (int rb = 0; rb < nrb; rb++)
        for (int cb = 0; cb < ncb; cb++) {
            int n0 = rb * BL_RB, m0 = cb * BL_CB, rn = imin(BL_RB, N - n0), cn = imin(BL_CB, M - m0);
            float *o = out + (size_t)n0 * M + m0;
            if (bias)
                for (int r = 0; r < rn; r++)
                    for (int j = 0; j < cn; j++)
                        o[(size_t)r * M + j] = (acc ? o[(size_t)r * M + j] : 0) + bias[m0 + j];
            cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, rn, cn, K,
                        1.0f, ta ? a + n0 : a + (size_t)n0 * lda, lda, tb ? b + (size_t)m0 * ldb : b + m0, ldb,
                        acc || bias ? 1.0f : 0.0f, o, M);
        }
}
#else
#define MM_BLAS 0
#endif

/* out (N, M) = [out if acc] + [bias] + A @ Bm, where A(i, k) = a[i*ars + k*aks]
 * and Bm is row-major (K, M). Each element sums k = 0..K-1 in order (on the
 * hand-written path; with BLAS, see mm_blas()). */
static void mm(wn_real *restrict out, const wn_real *restrict a, size_t ars, size_t aks,
               const wn_real *restrict bm, const wn_real *restrict bias, int acc, int N, int K, int M)
{
#if MM_BLAS
    if (aks == 1 && ars >= (size_t)K && ars <= INT_MAX) {
        mm_blas(out, a, 0, (int)ars, bm, 0, M, bias, acc, N, K, M);
        return;
    }
    if (ars == 1 && aks >= (size_t)N && aks <= INT_MAX) {
        mm_blas(out, a, 1, (int)aks, bm, 0, M, bias, acc, N, K, M);
        return;
    }
#endif
    int nrb = (N + MM_RB - 1) / MM_RB, ncb = (M + MM_CB - 1) / MM_CB;
    /* column blocks outside: consecutive tiles reuse one (K, MM_CB) panel of Bm */
#pragma omp parallel for collapse(2) if ((size_t)N * K * M >= PAR_MIN) schedule(static)
    for (int cb = 0; cb < ncb; cb++)
        for (int rb = 0; rb < nrb; rb++) {
            int n0 = rb * MM_RB, m0 = cb * MM_CB;
            if (n0 + MM_RB <= N && m0 + MM_CB <= M) {
                mm_tile(out, a, ars, aks, bm, bias, acc, n0, m0, K, M);
                continue;
            }
            int rn = imin(MM_RB, N - n0), cn = imin(MM_CB, M - m0);
            wn_real t[MM_RB][MM_CB];
            for (int r = 0; r < rn; r++)
                for (int j = 0; j < cn; j++)
                    t[r][j] = (acc ? out[(size_t)(n0 + r) * M + m0 + j] : 0) + (bias ? bias[m0 + j] : 0);
            for (int k = 0; k < K; k++) {
                const wn_real *brow = bm + (size_t)k * M + m0;
                for (int r = 0; r < rn; r++) {
                    wn_real av = a[(size_t)(n0 + r) * ars + (size_t)k * aks];
                    for (int j = 0; j < cn; j++) t[r][j] += av * brow[j];
                }
            }
            for (int r = 0; r < rn; r++)
                for (int j = 0; j < cn; j++) out[(size_t)(n0 + r) * M + m0 + j] = t[r][j];
        }
}

static void transpose(wn_real *restrict dst, const wn_real *restrict src, int rows, int cols);

/* out (N, M) = [out] + [bias] + A @ Bt^T for A (N, K) with row stride ars and
 * Bt row-major (M, K): with BLAS directly, else through a transposed copy of
 * Bt in scratch (M K floats). */
static void mm_bt(wn_real *restrict out, const wn_real *restrict a, size_t ars, const wn_real *restrict bt,
                  wn_real *restrict scratch, const wn_real *restrict bias, int acc, int N, int K, int M)
{
#if MM_BLAS
    if (ars >= (size_t)K && ars <= INT_MAX) {
        mm_blas(out, a, 0, (int)ars, bt, 1, K, bias, acc, N, K, M);
        return;
    }
#endif
    transpose(scratch, bt, M, K); /* (K, M) */
    mm(out, a, ars, 1, scratch, bias, acc, N, K, M);
}

/* The reference for mm(): same contract, one element at a time (used by
 * the unit test through the double build). */
__attribute__((unused)) static void mm_naive(wn_real *out, const wn_real *a, size_t ars, size_t aks, const wn_real *bm,
                     const wn_real *bias, int acc, int N, int K, int M)
{
    for (int i = 0; i < N; i++)
        for (int j = 0; j < M; j++) {
            wn_real s = (acc ? out[(size_t)i * M + j] : 0) + (bias ? bias[j] : 0);
            for (int k = 0; k < K; k++) s += a[(size_t)i * ars + (size_t)k * aks] * bm[(size_t)k * M + j];
            out[(size_t)i * M + j] = s;
        }
}

/* dst (cols, rows) = src (rows, cols)^T */
static void transpose(wn_real *restrict dst, const wn_real *restrict src, int rows, int cols)
{
#pragma omp parallel for if ((size_t)rows * cols >= PAR_MIN) schedule(static)
    for (int j = 0; j < cols; j++)
        for (int i = 0; i < rows; i++) dst[(size_t)j * rows + i] = src[(size_t)i * cols + j];
}

/* y = x @ W + b for x (N, IN), W (IN, OUT) */
static void linear_forward(wn_real *out, const wn_real *x, const wn_real *w, const wn_real *b, int N, int IN,
                           int OUT)
{
    mm(out, x, (size_t)IN, 1, w, b, 0, N, IN, OUT);
}

/* One query row of causal attention for one head: scores of q against keys
 * 0..t (key u at k + u * stride), softmax into row[0..t], and o (hs) = the
 * probability-weighted values (value u at v + u * stride). Shared by the
 * full forward and the cached decoding, so both do the same operations. */
static void attend_row(wn_real *restrict o, wn_real *restrict row, const wn_real *restrict q,
                       const wn_real *restrict k, const wn_real *restrict v, size_t stride, int t, int hs,
                       wn_real scale)
{
    wn_real mx = -INFINITY;
    for (int u = 0; u <= t; u++) {
        const wn_real *ku = k + (size_t)u * stride;
        wn_real s = 0;
        for (int i = 0; i < hs; i++) s += q[i] * ku[i];
        s *= scale;
        row[u] = s;
        if (s > mx) mx = s;
    }
    wn_real sum = 0;
    for (int u = 0; u <= t; u++) {
        row[u] = R_EXP(row[u] - mx);
        sum += row[u];
    }
    wn_real inv = RL(1) / sum;
    for (int u = 0; u <= t; u++) row[u] *= inv;
    for (int i = 0; i < hs; i++) o[i] = 0;
    for (int u = 0; u <= t; u++) {
        const wn_real *vu = v + (size_t)u * stride;
        wn_real p = row[u];
#pragma omp simd
        for (int i = 0; i < hs; i++) o[i] += p * vu[i];
    }
}

/* Causal self-attention. qkv (B, T, 3C) holds q, k, v; writes the softmax
 * probabilities att (B, NH, T, T) and out (B, T, C). */
static void attention_forward(wn_real *restrict out, wn_real *restrict att, const wn_real *restrict qkv, int B,
                              int T, int C, int NH)
{
    int hs = C / NH;
    size_t C3 = (size_t)3 * C;
    wn_real scale = RL(1) / R_SQRT((wn_real)hs);
#pragma omp parallel for collapse(3) if ((size_t)B * T * T * C >= PAR_MIN) schedule(static)
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++)
            for (int h = 0; h < NH; h++) {
                const wn_real *seq = qkv + (size_t)b * T * C3 + (size_t)h * hs;
                wn_real *row = att + (((size_t)b * NH + h) * T + t) * T;
                attend_row(out + ((size_t)b * T + t) * C + (size_t)h * hs, row, seq + (size_t)t * C3, seq + C,
                           seq + 2 * (size_t)C, C3, t, hs, scale);
                for (int u = t + 1; u < T; u++) row[u] = 0;
            }
}

static void gelu_forward(wn_real *restrict out, const wn_real *restrict inp, size_t n)
{
#pragma omp parallel for if (n >= PAR_MIN) schedule(static)
    for (size_t i = 0; i < n; i++) {
        wn_real x = inp[i];
        out[i] = RL(0.5) * x * (RL(1) + R_TANH(GELU_S * (x + GELU_A * x * x * x)));
    }
}

static void residual_add(wn_real *restrict out, const wn_real *restrict x, size_t n)
{
#pragma omp parallel for if (n >= PAR_MIN) schedule(static)
    for (size_t i = 0; i < n; i++) out[i] += x[i];
}

/* Per row: lse = logsumexp(logits), nll = lse - logits[target]. */
static void crossentropy_forward(wn_real *restrict nll, wn_real *restrict lse, const wn_real *restrict logits,
                                 const uint32_t *restrict targets, int N, int V)
{
#pragma omp parallel for if ((size_t)N * V >= PAR_MIN) schedule(static)
    for (int n = 0; n < N; n++) {
        const wn_real *l = logits + (size_t)n * V;
        wn_real mx = -INFINITY, sum = 0;
        for (int v = 0; v < V; v++)
            if (l[v] > mx) mx = l[v];
        for (int v = 0; v < V; v++) sum += R_EXP(l[v] - mx);
        lse[n] = mx + R_LOG(sum);
        if (targets) nll[n] = lse[n] - l[targets[n]];
    }
}

/* ---- layers: backward (gradients are accumulated, +=, unless noted) ----- */

static void encoder_backward(wn_real *restrict dwte, wn_real *restrict dwpe, const wn_real *restrict dout,
                             const uint32_t *restrict inp, int B, int T, int C)
{
    /* parallel over channels, rows in order: repeated tokens do not race */
    enum { CHUNK = 16 };
    int nch = (C + CHUNK - 1) / CHUNK;
#pragma omp parallel for if ((size_t)B * T * C >= PAR_MIN) schedule(static)
    for (int ch = 0; ch < nch; ch++) {
        int c0 = ch * CHUNK, c1 = imin(C, c0 + CHUNK);
        for (int n = 0; n < B * T; n++) {
            const wn_real *d = dout + (size_t)n * C;
            wn_real *e = dwte + (size_t)inp[n] * C, *p = dwpe + (size_t)(n % T) * C;
            for (int c = c0; c < c1; c++) {
                e[c] += d[c];
                p[c] += d[c];
            }
        }
    }
}

/* dinp += LN backward; dw, db += over rows (second pass, parallel over
 * channels). */
static void layernorm_backward(wn_real *restrict dinp, wn_real *restrict dw, wn_real *restrict db,
                               const wn_real *restrict dout, const wn_real *restrict inp, const wn_real *restrict w,
                               const wn_real *restrict mean, const wn_real *restrict rstd, int N, int C)
{
#pragma omp parallel for if ((size_t)N * C >= PAR_MIN) schedule(static)
    for (int n = 0; n < N; n++) {
        const wn_real *x = inp + (size_t)n * C, *d = dout + (size_t)n * C;
        wn_real m = mean[n], r = rstd[n], dmean = 0, dnmean = 0;
        for (int c = 0; c < C; c++) {
            wn_real dn = w[c] * d[c];
            dmean += dn;
            dnmean += dn * (x[c] - m) * r;
        }
        dmean /= (wn_real)C;
        dnmean /= (wn_real)C;
        wn_real *di = dinp + (size_t)n * C;
        for (int c = 0; c < C; c++) {
            wn_real norm = (x[c] - m) * r;
            di[c] += (w[c] * d[c] - dmean - norm * dnmean) * r;
        }
    }
    if (!dw) return; /* input gradient only */
    enum { CHUNK = 16 };
    int nch = (C + CHUNK - 1) / CHUNK;
#pragma omp parallel for if ((size_t)N * C >= PAR_MIN) schedule(static)
    for (int ch = 0; ch < nch; ch++) {
        int c0 = ch * CHUNK, c1 = imin(C, c0 + CHUNK);
        wn_real sw[CHUNK] = {0}, sb[CHUNK] = {0};
        for (int n = 0; n < N; n++) {
            const wn_real *x = inp + (size_t)n * C, *d = dout + (size_t)n * C;
            for (int c = c0; c < c1; c++) {
                sw[c - c0] += (x[c] - mean[n]) * rstd[n] * d[c];
                sb[c - c0] += d[c];
            }
        }
        for (int c = c0; c < c1; c++) {
            dw[c] += sw[c - c0];
            db[c] += sb[c - c0];
        }
    }
}

/* For y = x @ W + b: dx = dy @ W^T (overwritten), dW += x^T @ dy,
 * db += column sums of dy (both skipped when dw is NULL). x (N, IN), W (IN, OUT), dy (N, OUT). */
static void linear_backward(wn_real *dx, wn_real *dw, wn_real *db, const wn_real *dy, const wn_real *x,
                            const wn_real *w, wn_real *scratch, int N, int IN, int OUT)
{
    mm_bt(dx, dy, (size_t)OUT, w, scratch, NULL, 0, N, OUT, IN); /* dx = dy @ W^T */
    if (!dw) return; /* activation gradients only */
    mm(dw, x, 1, (size_t)IN, dy, NULL, 1, IN, N, OUT); /* A(i, k) = x[k][i] */
    enum { CHUNK = 64 };
    int nch = (OUT + CHUNK - 1) / CHUNK;
#pragma omp parallel for if ((size_t)N * OUT >= PAR_MIN) schedule(static)
    for (int ch = 0; ch < nch; ch++) {
        int o0 = ch * CHUNK, o1 = imin(OUT, o0 + CHUNK);
        wn_real s[CHUNK] = {0};
        for (int n = 0; n < N; n++)
            for (int o = o0; o < o1; o++) s[o - o0] += dy[(size_t)n * OUT + o];
        for (int o = o0; o < o1; o++) db[o] += s[o - o0];
    }
}

static void gelu_backward_inplace(wn_real *restrict d, const wn_real *restrict inp, size_t n)
{
#pragma omp parallel for if (n >= PAR_MIN) schedule(static)
    for (size_t i = 0; i < n; i++) {
        wn_real x = inp[i], u = GELU_S * (x + GELU_A * x * x * x);
        wn_real th = R_TANH(u), sech2 = RL(1) - th * th;
        wn_real g = RL(0.5) * (RL(1) + th) + RL(0.5) * x * sech2 * GELU_S * (RL(1) + RL(3) * GELU_A * x * x);
        d[i] *= g;
    }
}

/* dqkv (B, T, 3C) is overwritten. Parallel over (b, h): each owns its
 * columns of dq, dk, dv and walks t in order. With p = att row t, d = dy_t:
 * datt[u] = d . v_u;  dv_u += p[u] d;  dpre[u] = p[u] (datt[u] - p . datt);
 * dq_t += scale dpre[u] k_u;  dk_u += scale dpre[u] q_t. */
static void attention_backward(wn_real *restrict dqkv, wn_real *restrict dattbuf, const wn_real *restrict dout,
                               const wn_real *restrict qkv, const wn_real *restrict att, int B, int T, int C, int NH)
{
    int hs = C / NH;
    size_t C3 = (size_t)3 * C;
    wn_real scale = RL(1) / R_SQRT((wn_real)hs);
#pragma omp parallel for collapse(2) if ((size_t)B * T * T * C >= PAR_MIN) schedule(static)
    for (int b = 0; b < B; b++)
        for (int h = 0; h < NH; h++) {
            wn_real *datt = dattbuf + ((size_t)b * NH + h) * T;
            for (int t = 0; t < T; t++)
                for (int s = 0; s < 3; s++) {
                    wn_real *z = dqkv + ((size_t)b * T + t) * C3 + (size_t)s * C + (size_t)h * hs;
                    for (int i = 0; i < hs; i++) z[i] = 0;
                }
            for (int t = 0; t < T; t++) {
                const wn_real *p = att + (((size_t)b * NH + h) * T + t) * T;
                const wn_real *d = dout + ((size_t)b * T + t) * C + (size_t)h * hs;
                const wn_real *q = qkv + ((size_t)b * T + t) * C3 + (size_t)h * hs;
                wn_real *dq = dqkv + ((size_t)b * T + t) * C3 + (size_t)h * hs;
                wn_real pd = 0;
                for (int u = 0; u <= t; u++) {
                    const wn_real *v = qkv + ((size_t)b * T + u) * C3 + 2 * (size_t)C + (size_t)h * hs;
                    wn_real *dv = dqkv + ((size_t)b * T + u) * C3 + 2 * (size_t)C + (size_t)h * hs;
                    wn_real s = 0, pu = p[u];
                    for (int i = 0; i < hs; i++) s += d[i] * v[i];
#pragma omp simd
                    for (int i = 0; i < hs; i++) dv[i] += pu * d[i];
                    datt[u] = s;
                    pd += p[u] * s;
                }
                for (int u = 0; u <= t; u++) {
                    const wn_real *k = qkv + ((size_t)b * T + u) * C3 + C + (size_t)h * hs;
                    wn_real *dk = dqkv + ((size_t)b * T + u) * C3 + C + (size_t)h * hs;
                    wn_real dpre = p[u] * (datt[u] - pd) * scale;
#pragma omp simd
                    for (int i = 0; i < hs; i++) {
                        dq[i] += dpre * k[i];
                        dk[i] += dpre * q[i];
                    }
                }
            }
        }
}

/* dlogits (N, V) = (softmax(logits) - onehot(target)) * dloss (overwritten). */
static void crossentropy_softmax_backward(wn_real *restrict dlogits, const wn_real *restrict logits,
                                          const wn_real *restrict lse, const wn_real *restrict dloss,
                                          const uint32_t *restrict targets, int N, int V)
{
#pragma omp parallel for if ((size_t)N * V >= PAR_MIN) schedule(static)
    for (int n = 0; n < N; n++) {
        wn_real *dl = dlogits + (size_t)n * V;
        const wn_real *l = logits + (size_t)n * V;
        wn_real s = dloss[n], z = lse[n];
        if (s == 0) {
            memset(dl, 0, (size_t)V * sizeof *dl);
            continue;
        }
        for (int v = 0; v < V; v++) dl[v] = R_EXP(l[v] - z) * s;
        dl[targets[n]] -= s;
    }
}

/* ---- model ---------------------------------------------------------------- */

static wn_real *tparam(wn_gpt *m, int l, int k) { return m->tensors[2 + l * P_PER_LAYER + k].data; }
static wn_real *tgrad(wn_gpt *m, int l, int k) { return m->tensors[2 + l * P_PER_LAYER + k].grad; }

/* ---- one transformer block ------------------------------------------------
 * The forward and the backward of block l, shared by the whole-model passes
 * and by activation recomputation (--recompute), which therefore redoes
 * exactly the forward's operations: its activations, and so the gradients,
 * are the same bits. */

/* Block l's activations: its own slice of each per-layer array, or with
 * recompute the one shared slice; res3 (the block's output) is always its
 * own. */
typedef struct {
    wn_real *ln1, *ln1_mean, *ln1_rstd, *qkv, *atty, *att, *res2, *ln2, *ln2_mean, *ln2_rstd, *fch, *fchg, *res3;
} block_acts;

static block_acts block_at(const wn_gpt *m, int l, int B, int T)
{
    const gpt_acts *a = &m->a;
    size_t N = (size_t)B * T, NC = N * (size_t)m->cfg.dim, s = m->recompute ? 0 : (size_t)l;
    size_t natt = (size_t)B * m->cfg.heads * T * T;
    block_acts b = {a->ln1 + s * NC,      a->ln1_mean + s * N, a->ln1_rstd + s * N,  a->qkv + s * 3 * NC,
                    a->atty + s * NC,     a->att + s * natt,   a->res2 + s * NC,     a->ln2 + s * NC,
                    a->ln2_mean + s * N,  a->ln2_rstd + s * N, a->fch + s * 4 * NC,  a->fch_gelu + s * 4 * NC,
                    a->res3 + (size_t)l * NC};
    return b;
}

/* Block l's input: the embeddings, or the previous block's output. */
static const wn_real *block_input(const wn_gpt *m, int l, int B, int T)
{
    return l == 0 ? m->a.encoded : m->a.res3 + (size_t)(l - 1) * B * T * m->cfg.dim;
}

/* Block l's forward from x into b; with_output = 0 stops before the MLP's
 * projection, whose result (res3) a recomputation already has. */
static void block_forward(wn_gpt *m, int l, const wn_real *x, const block_acts *b, int B, int T, int with_output)
{
    int C = m->cfg.dim, NH = m->cfg.heads, n = B * T;
    size_t NC = (size_t)n * C;
    layernorm_forward(b->ln1, b->ln1_mean, b->ln1_rstd, x, tparam(m, l, P_LN1W), tparam(m, l, P_LN1B), n, C);
    linear_forward(b->qkv, b->ln1, tparam(m, l, P_QKVW), tparam(m, l, P_QKVB), n, C, 3 * C);
    attention_forward(b->atty, b->att, b->qkv, B, T, C, NH);
    linear_forward(b->res2, b->atty, tparam(m, l, P_ATTW), tparam(m, l, P_ATTB), n, C, C);
    residual_add(b->res2, x, NC);
    layernorm_forward(b->ln2, b->ln2_mean, b->ln2_rstd, b->res2, tparam(m, l, P_LN2W), tparam(m, l, P_LN2B), n, C);
    linear_forward(b->fch, b->ln2, tparam(m, l, P_FCW), tparam(m, l, P_FCB), n, C, 4 * C);
    gelu_forward(b->fchg, b->fch, 4 * NC);
    if (!with_output) return;
    linear_forward(b->res3, b->fchg, tparam(m, l, P_PRJW), tparam(m, l, P_PRJB), n, 4 * C, C);
    residual_add(b->res3, b->res2, NC);
}

/* Block l's activations for a backward after the last forward: with
 * recompute, rebuilt in the shared slice from the block's input unless the
 * slice holds them already (the last block, right after the forward). */
static block_acts block_for_backward(wn_gpt *m, int l)
{
    block_acts b = block_at(m, l, m->B, m->T);
    if (m->recompute && m->slot != l) {
        block_forward(m, l, block_input(m, l, m->B, m->T), &b, m->B, m->T, 0);
        m->slot = l;
    }
    return b;
}

/* Block l's backward: g->dres holds the gradient of its output and becomes
 * that of its input x; parameter gradients accumulate. */
static void block_backward(wn_gpt *m, int l, const wn_real *x, const block_acts *b)
{
    gpt_gacts *g = &m->g;
    int C = m->cfg.dim, NH = m->cfg.heads, B = m->B, T = m->T, n = B * T;
    size_t NC = (size_t)n * C;
    /* MLP: dres is the gradient of res3 and, through the skip, of res2 */
    linear_backward(g->dfch, tgrad(m, l, P_PRJW), tgrad(m, l, P_PRJB), g->dres, b->fchg, tparam(m, l, P_PRJW),
                    m->scratch, n, 4 * C, C);
    gelu_backward_inplace(g->dfch, b->fch, 4 * NC);
    linear_backward(g->dln, tgrad(m, l, P_FCW), tgrad(m, l, P_FCB), g->dfch, b->ln2, tparam(m, l, P_FCW), m->scratch,
                    n, C, 4 * C);
    layernorm_backward(g->dres, tgrad(m, l, P_LN2W), tgrad(m, l, P_LN2B), g->dln, b->res2, tparam(m, l, P_LN2W),
                       b->ln2_mean, b->ln2_rstd, n, C);
    /* attention: dres is now the gradient of res2 and, through the skip, of x */
    linear_backward(g->datty, tgrad(m, l, P_ATTW), tgrad(m, l, P_ATTB), g->dres, b->atty, tparam(m, l, P_ATTW),
                    m->scratch, n, C, C);
    attention_backward(g->dqkv, g->datt, g->datty, b->qkv, b->att, B, T, C, NH);
    linear_backward(g->dln, tgrad(m, l, P_QKVW), tgrad(m, l, P_QKVB), g->dqkv, b->ln1, tparam(m, l, P_QKVW),
                    m->scratch, n, C, 3 * C);
    layernorm_backward(g->dres, tgrad(m, l, P_LN1W), tgrad(m, l, P_LN1B), g->dln, x, tparam(m, l, P_LN1W),
                       b->ln1_mean, b->ln1_rstd, n, C);
}

static void set_tensor(wn_tensor *t, const char *name, int d0, int d1)
{
    snprintf(t->name, sizeof t->name, "%s", name);
    t->ndim = d1 ? 2 : 1;
    t->shape[0] = d0;
    t->shape[1] = d1;
    t->size = (size_t)d0 * (d1 ? (size_t)d1 : 1);
}

void wn_gpt_free(wn_gpt *m)
{
    if (!m) return;
    wn_free(m->tensors);
    wn_free(m->params);
    wn_free(m->grads);
    wn_free(m->adam_m);
    wn_free(m->adam_v);
    wn_free(m->scratch);
    wn_free(m->partial);
    wn_free(m->acts_mem);
    wn_free(m->gacts_mem);
    wn_free(m->tok);
    wn_free(m->q8);
    wn_free(m->s8);
    wn_free(m);
}

wn_err wn_gpt_new(wn_gpt **out, const wn_gpt_config *c, uint64_t seed, wn_errbuf *err)
{
    *out = NULL;
    if (c->vocab < 1 || c->vocab > (1 << 24))
        return wn_fail(err, WN_ERR_USAGE, "model: vocab %d out of range (1 .. 16777216)", c->vocab);
    if (c->context < 1 || c->context > (1 << 20))
        return wn_fail(err, WN_ERR_USAGE, "model: context %d out of range (1 .. 1048576)", c->context);
    if (c->layers < 1 || c->layers > 1024)
        return wn_fail(err, WN_ERR_USAGE, "model: layers %d out of range (1 .. 1024)", c->layers);
    if (c->dim < 1 || c->dim > (1 << 16))
        return wn_fail(err, WN_ERR_USAGE, "model: dim %d out of range (1 .. 65536)", c->dim);
    if (c->heads < 1 || c->heads > c->dim || c->dim % c->heads != 0)
        return wn_fail(err, WN_ERR_USAGE, "model: dim %d is not a positive multiple of heads %d", c->dim, c->heads);

    int L = c->layers, C = c->dim, V = c->vocab;
#if MM_BLAS
    openblas_set_num_threads(1); /* threads come from OpenMP, over fixed tiles (mm_blas) */
#endif
    wn_gpt *m = wn_calloc(1, sizeof *m);
    if (!m) return wn_fail(err, WN_ERR_NOMEM, "model: out of memory");
    m->cfg = *c;
    m->slot = -1;
    m->ntensors = 2 + P_PER_LAYER * L + 2;
    m->tensors = wn_calloc((size_t)m->ntensors, sizeof *m->tensors);
    if (!m->tensors) goto nomem;

    wn_tensor *t = m->tensors;
    set_tensor(t++, "wte.weight", V, C);
    set_tensor(t++, "wpe.weight", c->context, C);
    for (int l = 0; l < L; l++) {
        static const char *const nm[P_PER_LAYER] = {
            "ln_1.weight", "ln_1.bias", "attn.c_attn.weight", "attn.c_attn.bias", "attn.c_proj.weight",
            "attn.c_proj.bias", "ln_2.weight", "ln_2.bias", "mlp.c_fc.weight", "mlp.c_fc.bias",
            "mlp.c_proj.weight", "mlp.c_proj.bias"};
        const int d0[P_PER_LAYER] = {C, C, C, 3 * C, C, C, C, C, C, 4 * C, 4 * C, C};
        const int d1[P_PER_LAYER] = {0, 0, 3 * C, 0, C, 0, 0, 0, 4 * C, 0, C, 0};
        for (int k = 0; k < P_PER_LAYER; k++) {
            char name[64];
            snprintf(name, sizeof name, "h.%d.%s", l, nm[k]);
            set_tensor(t++, name, d0[k], d1[k]);
        }
    }
    set_tensor(t++, "ln_f.weight", C, 0);
    set_tensor(t++, "ln_f.bias", C, 0);

    for (int i = 0; i < m->ntensors; i++) m->nparams += m->tensors[i].size;
    size_t np = m->nparams;
    size_t nscratch = (size_t)V * C > (size_t)4 * C * C ? (size_t)V * C : (size_t)4 * C * C;
    m->npartial = (np + 65535) / 65536;
    m->params = wn_malloc(np * sizeof(wn_real));
    m->grads = wn_calloc(np, sizeof(wn_real));
    m->adam_m = wn_calloc(np, sizeof(wn_real));
    m->adam_v = wn_calloc(np, sizeof(wn_real));
    m->scratch = wn_malloc(nscratch * sizeof(wn_real));
    m->partial = wn_malloc(m->npartial * sizeof(double));
    if (!m->params || !m->grads || !m->adam_m || !m->adam_v || !m->scratch || !m->partial) goto nomem;

    normal_rng rng = {seed, 0, 0};
    double proj_std = 0.02 / sqrt(2.0 * L);
    size_t off = 0;
    for (int i = 0; i < m->ntensors; i++) {
        wn_tensor *x = &m->tensors[i];
        x->data = m->params + off;
        x->grad = m->grads + off;
        off += x->size;
        const char *suffix = strrchr(x->name, '.');
        int is_ln = strstr(x->name, "ln_") != NULL;
        if (x->ndim == 1) { /* biases 0, LayerNorm weights 1 */
            wn_real v = (is_ln && strcmp(suffix, ".weight") == 0) ? RL(1) : RL(0);
            for (size_t j = 0; j < x->size; j++) x->data[j] = v;
        } else {
            double sd = strstr(x->name, "c_proj.weight") ? proj_std : 0.02;
            for (size_t j = 0; j < x->size; j++) x->data[j] = (wn_real)(sd * normal_next(&rng));
        }
    }
    *out = m;
    return WN_OK;
nomem:
    wn_gpt_free(m);
    return wn_fail(err, WN_ERR_NOMEM, "model: out of memory for %d layers x dim %d, vocab %d", L, C, V);
}

const wn_gpt_config *wn_gpt_cfg(const wn_gpt *m) { return &m->cfg; }
size_t wn_gpt_num_params(const wn_gpt *m) { return m->nparams; }

int wn_gpt_tensors(wn_gpt *m, wn_tensor **out)
{
    *out = m->tensors;
    return m->ntensors;
}

wn_err wn_gpt_forward(wn_gpt *m, const uint32_t *inputs, const uint32_t *targets, const wn_real *weights, int B,
                      int T, wn_real *loss)
{
    const wn_gpt_config *c = &m->cfg;
    int L = c->layers, C = c->dim, V = c->vocab;
    m->B = m->T = 0; /* invalid until this forward completes */
    m->have_targets = 0;
    m->slot = -1;
    if (!inputs || B < 1 || T < 1 || T > c->context || (size_t)B * T > (size_t)1 << 30) return WN_ERR_USAGE;
    size_t N = (size_t)B * T;
    for (size_t i = 0; i < N; i++)
        if (inputs[i] >= (uint32_t)V || (targets && targets[i] >= (uint32_t)V)) return WN_ERR_INPUT;
    if (targets && weights)
        for (size_t i = 0; i < N; i++)
            if (!(weights[i] >= 0) || !isfinite(weights[i])) return WN_ERR_INPUT;

    double dsize;
    size_t need = layout_acts(&m->a, NULL, c, B, T, m->recompute, &dsize);
    if (dsize * sizeof(wn_real) > 0x1p62) return WN_ERR_NOMEM;
    if (ensure(&m->acts_mem, &m->acts_cap, need)) return WN_ERR_NOMEM;
    if (m->tok_cap < 2 * N) {
        wn_free(m->tok);
        m->tok = wn_malloc(2 * N * sizeof *m->tok);
        m->tok_cap = m->tok ? 2 * N : 0;
        if (!m->tok) return WN_ERR_NOMEM;
    }
    layout_acts(&m->a, m->acts_mem, c, B, T, m->recompute, &dsize);
    memcpy(m->tok, inputs, N * sizeof *inputs);
    if (targets) memcpy(m->tok + N, targets, N * sizeof *targets);

    gpt_acts *a = &m->a;
    int n = (int)N;
    size_t NC = N * C;
    encoder_forward(a->encoded, inputs, m->tensors[0].data, m->tensors[1].data, B, T, C);
    for (int l = 0; l < L; l++) {
        block_acts b = block_at(m, l, B, T);
        block_forward(m, l, block_input(m, l, B, T), &b, B, T, 1);
    }
    m->slot = m->recompute ? L - 1 : -1; /* the shared slice holds the last block */
    wn_tensor *lnfw = &m->tensors[m->ntensors - 2], *lnfb = &m->tensors[m->ntensors - 1];
    layernorm_forward(a->lnf, a->lnf_mean, a->lnf_rstd, a->res3 + (size_t)(L - 1) * NC, lnfw->data, lnfb->data,
                      n, C);
    mm_bt(a->logits, a->lnf, (size_t)C, m->tensors[0].data, m->scratch, NULL, 0, n, C, V); /* lnf @ wte^T */
    crossentropy_forward(a->nll, a->lse, a->logits, targets, n, V);

    if (targets) {
        /* fixed-order sums in double: the loss does not depend on threads */
        double sw = 0, sl = 0;
        for (size_t i = 0; i < N; i++) {
            double w = weights ? (double)weights[i] : 1.0;
            sw += w;
            sl += w * (double)a->nll[i];
        }
        for (size_t i = 0; i < N; i++) a->dloss[i] = sw > 0 ? (wn_real)((weights ? weights[i] : 1) / sw) : 0;
        if (loss) *loss = sw > 0 ? (wn_real)(sl / sw) : 0;
        m->have_targets = 1;
    }
    m->B = B;
    m->T = T;
    return WN_OK;
}

const wn_real *wn_gpt_logits(const wn_gpt *m) { return m->a.logits; }
const wn_real *wn_gpt_token_nll(const wn_gpt *m) { return m->a.nll; }

/* ---- decoding with a key/value cache ----------------------------------------- */

#ifndef WN_MODEL_DOUBLE /* (the float build only: the double one is the gradient check's) */

struct wn_gpt_kv {
    int slots, L, C, NH, ctx, V;
    int *len;       /* (slots) positions cached */
    wn_real *k, *v; /* (slots, L, ctx, C) keys and values of every position so far */
    int cap;        /* rows the buffers below hold (logits: lcap rows) */
    int lcap;
    int *pos;       /* (cap) each row's position */
    wn_real *x, *ln, *qkv, *atty, *res2, *fch, *fchg, *res3, *mean, *rstd, *att, *logits;
};

wn_err wn_gpt_kv_new(const wn_gpt *m, int slots, wn_gpt_kv **out)
{
    *out = NULL;
    const wn_gpt_config *c = &m->cfg;
    if (slots < 1) return WN_ERR_USAGE;
    double n = (double)slots * c->layers * c->context * c->dim;
    if (n * 2 * sizeof(wn_real) > 0x1p62) return WN_ERR_NOMEM;
    wn_gpt_kv *kv = wn_calloc(1, sizeof *kv);
    if (!kv) return WN_ERR_NOMEM;
    kv->slots = slots, kv->L = c->layers, kv->C = c->dim, kv->NH = c->heads, kv->ctx = c->context;
    kv->V = c->vocab;
    kv->len = wn_calloc((size_t)slots, sizeof *kv->len);
    kv->k = wn_malloc((size_t)n * sizeof(wn_real));
    kv->v = wn_malloc((size_t)n * sizeof(wn_real));
    if (!kv->len || !kv->k || !kv->v) {
        wn_gpt_kv_free(kv);
        return WN_ERR_NOMEM;
    }
    *out = kv;
    return WN_OK;
}

static void kv_free_rows(wn_gpt_kv *kv)
{
    wn_real **bufs[] = {&kv->x, &kv->ln, &kv->qkv, &kv->atty, &kv->res2, &kv->fch, &kv->fchg, &kv->res3,
                        &kv->mean, &kv->rstd, &kv->att, &kv->logits};
    for (size_t i = 0; i < sizeof bufs / sizeof *bufs; i++) {
        wn_free(*bufs[i]);
        *bufs[i] = NULL;
    }
    wn_free(kv->pos);
    kv->pos = NULL;
    kv->cap = kv->lcap = 0;
}

void wn_gpt_kv_free(wn_gpt_kv *kv)
{
    if (!kv) return;
    kv_free_rows(kv);
    wn_free(kv->len);
    wn_free(kv->k);
    wn_free(kv->v);
    wn_free(kv);
}

void wn_gpt_kv_reset(wn_gpt_kv *kv, int slot) { kv->len[slot] = 0; }
int wn_gpt_kv_len(const wn_gpt_kv *kv, int slot) { return kv->len[slot]; }
const wn_real *wn_gpt_kv_logits(const wn_gpt_kv *kv) { return kv->logits; }

static wn_err kv_rows(wn_gpt_kv *kv, int n)
{
    if (n <= kv->cap) return WN_OK;
    kv_free_rows(kv);
    size_t N = (size_t)n, C = (size_t)kv->C;
    kv->pos = wn_malloc(N * sizeof *kv->pos);
    kv->x = wn_malloc(N * C * sizeof(wn_real));
    kv->ln = wn_malloc(N * C * sizeof(wn_real));
    kv->qkv = wn_malloc(N * 3 * C * sizeof(wn_real));
    kv->atty = wn_malloc(N * C * sizeof(wn_real));
    kv->res2 = wn_malloc(N * C * sizeof(wn_real));
    kv->fch = wn_malloc(N * 4 * C * sizeof(wn_real));
    kv->fchg = wn_malloc(N * 4 * C * sizeof(wn_real));
    kv->res3 = wn_malloc(N * C * sizeof(wn_real));
    kv->mean = wn_malloc(N * sizeof(wn_real));
    kv->rstd = wn_malloc(N * sizeof(wn_real));
    kv->att = wn_malloc(N * (size_t)kv->NH * (size_t)kv->ctx * sizeof(wn_real));
    if (!kv->pos || !kv->x || !kv->ln || !kv->qkv || !kv->atty || !kv->res2 || !kv->fch || !kv->fchg ||
        !kv->res3 || !kv->mean || !kv->rstd || !kv->att) {
        kv_free_rows(kv);
        return WN_ERR_NOMEM;
    }
    kv->cap = n;
    return WN_OK;
}

/* The block and layer functions of the full forward on the new rows only,
 * each row attending to its slot's cached keys and values (the rows' own
 * are stored first, so a slot's later rows see its earlier ones). */
wn_err wn_gpt_kv_forward(wn_gpt *m, wn_gpt_kv *kv, const int *slot, const uint32_t *tokens, int n,
                         const unsigned char *want, int *nwant)
{
    int L = kv->L, C = kv->C, NH = kv->NH, V = kv->V, ctx = kv->ctx, hs = C / NH;
    *nwant = 0;
    if (n < 1) return WN_ERR_USAGE;
    for (int i = 0; i < n; i++) {
        if (slot[i] < 0 || slot[i] >= kv->slots) return WN_ERR_USAGE;
        if (tokens[i] >= (uint32_t)V) return WN_ERR_INPUT;
    }
    int w = 0;
    for (int i = 0; i < n; i++) w += want[i] != 0;
    if (kv_rows(kv, n)) return WN_ERR_NOMEM;
    if (w > kv->lcap) { /* logits only for the rows asked for */
        wn_free(kv->logits);
        kv->logits = wn_malloc((size_t)w * (size_t)V * sizeof(wn_real));
        kv->lcap = kv->logits ? w : 0;
        if (!kv->logits) return WN_ERR_NOMEM;
    }
    for (int i = 0; i < n; i++) kv->pos[i] = kv->len[slot[i]]++;
    for (int i = 0; i < n; i++)
        if (kv->pos[i] >= ctx) { /* back to where they were: nothing is cached */
            for (int j = n - 1; j >= 0; j--) kv->len[slot[j]]--;
            return WN_ERR_USAGE;
        }
    size_t NC = (size_t)n * C, lstride = (size_t)ctx * C;
    const wn_real *wte = m->tensors[0].data, *wpe = m->tensors[1].data;
    for (int i = 0; i < n; i++) { /* encoder_forward's sum */
        const wn_real *e = wte + (size_t)tokens[i] * C, *p = wpe + (size_t)kv->pos[i] * C;
        wn_real *o = kv->x + (size_t)i * C;
        for (int c = 0; c < C; c++) o[c] = e[c] + p[c];
    }
    wn_real scale = RL(1) / R_SQRT((wn_real)hs);
    const wn_real *x = kv->x;
    for (int l = 0; l < L; l++) {
        layernorm_forward(kv->ln, kv->mean, kv->rstd, x, tparam(m, l, P_LN1W), tparam(m, l, P_LN1B), n, C);
        linear_forward(kv->qkv, kv->ln, tparam(m, l, P_QKVW), tparam(m, l, P_QKVB), n, C, 3 * C);
        for (int i = 0; i < n; i++) {
            size_t at = ((size_t)slot[i] * L + l) * lstride + (size_t)kv->pos[i] * C;
            memcpy(kv->k + at, kv->qkv + (size_t)i * 3 * C + C, (size_t)C * sizeof(wn_real));
            memcpy(kv->v + at, kv->qkv + (size_t)i * 3 * C + 2 * (size_t)C, (size_t)C * sizeof(wn_real));
        }
#pragma omp parallel for collapse(2) if ((size_t)n * ctx * C >= PAR_MIN) schedule(static)
        for (int i = 0; i < n; i++)
            for (int h = 0; h < NH; h++) {
                size_t base = ((size_t)slot[i] * L + l) * lstride + (size_t)h * hs;
                attend_row(kv->atty + (size_t)i * C + (size_t)h * hs, kv->att + ((size_t)i * NH + h) * ctx,
                           kv->qkv + (size_t)i * 3 * C + (size_t)h * hs, kv->k + base, kv->v + base, (size_t)C,
                           kv->pos[i], hs, scale);
            }
        linear_forward(kv->res2, kv->atty, tparam(m, l, P_ATTW), tparam(m, l, P_ATTB), n, C, C);
        residual_add(kv->res2, x, NC);
        layernorm_forward(kv->ln, kv->mean, kv->rstd, kv->res2, tparam(m, l, P_LN2W), tparam(m, l, P_LN2B), n, C);
        linear_forward(kv->fch, kv->ln, tparam(m, l, P_FCW), tparam(m, l, P_FCB), n, C, 4 * C);
        gelu_forward(kv->fchg, kv->fch, 4 * NC);
        linear_forward(kv->res3, kv->fchg, tparam(m, l, P_PRJW), tparam(m, l, P_PRJB), n, 4 * C, C);
        residual_add(kv->res3, kv->res2, NC);
        x = kv->res3; /* the next block's input (read before its res3 is written) */
    }
    /* the final LayerNorm and the LM head on the rows asked for, in order */
    w = 0;
    for (int i = 0; i < n; i++)
        if (want[i]) memmove(kv->res3 + (size_t)w++ * C, kv->res3 + (size_t)i * C, (size_t)C * sizeof(wn_real));
    if (w) {
        wn_tensor *lnfw = &m->tensors[m->ntensors - 2], *lnfb = &m->tensors[m->ntensors - 1];
        layernorm_forward(kv->ln, kv->mean, kv->rstd, kv->res3, lnfw->data, lnfb->data, w, C);
        mm_bt(kv->logits, kv->ln, (size_t)C, wte, m->scratch, NULL, 0, w, C, V);
    }
    *nwant = w;
    return WN_OK;
}
#endif

void wn_gpt_zero_grad(wn_gpt *m) { memset(m->grads, 0, m->nparams * sizeof(wn_real)); }

wn_err wn_gpt_backward(wn_gpt *m)
{
    if (!m->B || !m->have_targets) return WN_ERR_STATE;
    const wn_gpt_config *c = &m->cfg;
    int L = c->layers, C = c->dim, V = c->vocab, B = m->B, T = m->T, n = B * T;
    size_t N = (size_t)n, NC = N * C;
    if (ensure(&m->gacts_mem, &m->gacts_cap, layout_gacts(&m->g, NULL, c, B, T))) return WN_ERR_NOMEM;
    layout_gacts(&m->g, m->gacts_mem, c, B, T);
    gpt_acts *a = &m->a;
    gpt_gacts *g = &m->g;
    const uint32_t *inputs = m->tok, *targets = m->tok + N;
    wn_tensor *wte = &m->tensors[0], *wpe = &m->tensors[1];
    wn_tensor *lnfw = &m->tensors[m->ntensors - 2], *lnfb = &m->tensors[m->ntensors - 1];

    crossentropy_softmax_backward(g->dlogits, a->logits, a->lse, a->dloss, targets, n, V);
    mm(g->dln, g->dlogits, (size_t)V, 1, wte->data, NULL, 0, n, V, C); /* dlnf = dlogits @ wte */
    mm(wte->grad, g->dlogits, 1, (size_t)V, a->lnf, NULL, 1, V, n, C); /* dwte += dlogits^T @ lnf */
    memset(g->dres, 0, NC * sizeof(wn_real));
    layernorm_backward(g->dres, lnfw->grad, lnfb->grad, g->dln, a->res3 + (size_t)(L - 1) * NC, lnfw->data,
                       a->lnf_mean, a->lnf_rstd, n, C);
    for (int l = L - 1; l >= 0; l--) {
        block_acts b = block_for_backward(m, l);
        block_backward(m, l, block_input(m, l, B, T), &b);
    }
    encoder_backward(wte->grad, wpe->grad, g->dres, inputs, B, T, C);
    return WN_OK;
}

#ifndef WN_MODEL_DOUBLE
wn_err wn_gpt_backward_layers(wn_gpt *m, int blocks, wn_gpt_layer_fn fn, void *ctx)
{
    if (!m->B || !m->have_targets) return WN_ERR_STATE;
    const wn_gpt_config *c = &m->cfg;
    int L = c->layers, C = c->dim, V = c->vocab, NH = c->heads, B = m->B, T = m->T, n = B * T;
    size_t N = (size_t)n, NC = N * C;
    if (blocks < 0 || blocks > L) return WN_ERR_USAGE;
    if (ensure(&m->gacts_mem, &m->gacts_cap, layout_gacts(&m->g, NULL, c, B, T))) return WN_ERR_NOMEM;
    layout_gacts(&m->g, m->gacts_mem, c, B, T);
    gpt_acts *a = &m->a;
    gpt_gacts *g = &m->g;
    const uint32_t *targets = m->tok + N;
    wn_tensor *wte = &m->tensors[0], *lnfw = &m->tensors[m->ntensors - 2];
    char name[64];

    crossentropy_softmax_backward(g->dlogits, a->logits, a->lse, a->dloss, targets, n, V);
    fn(ctx, "lm_head", a->lnf, g->dlogits, n, C, V);
    if (!blocks) return WN_OK;
    mm(g->dln, g->dlogits, (size_t)V, 1, wte->data, NULL, 0, n, V, C);
    memset(g->dres, 0, NC * sizeof(wn_real));
    layernorm_backward(g->dres, NULL, NULL, g->dln, a->res3 + (size_t)(L - 1) * NC, lnfw->data, a->lnf_mean,
                       a->lnf_rstd, n, C);
    for (int l = L - 1; l >= L - blocks; l--) {
        block_acts b = block_for_backward(m, l);
        const wn_real *ln1 = b.ln1, *qkv = b.qkv, *atty = b.atty, *att = b.att, *res2 = b.res2, *ln2 = b.ln2;
        const wn_real *fch = b.fch, *fchg = b.fchg, *x = block_input(m, l, B, T);
        snprintf(name, sizeof name, "h.%d.mlp.c_proj", l);
        fn(ctx, name, fchg, g->dres, n, 4 * C, C);
        linear_backward(g->dfch, NULL, NULL, g->dres, fchg, tparam(m, l, P_PRJW), m->scratch, n, 4 * C, C);
        gelu_backward_inplace(g->dfch, fch, 4 * NC);
        snprintf(name, sizeof name, "h.%d.mlp.c_fc", l);
        fn(ctx, name, ln2, g->dfch, n, C, 4 * C);
        linear_backward(g->dln, NULL, NULL, g->dfch, ln2, tparam(m, l, P_FCW), m->scratch, n, C, 4 * C);
        layernorm_backward(g->dres, NULL, NULL, g->dln, res2, tparam(m, l, P_LN2W), b.ln2_mean, b.ln2_rstd, n, C);
        snprintf(name, sizeof name, "h.%d.attn.c_proj", l);
        fn(ctx, name, atty, g->dres, n, C, C);
        linear_backward(g->datty, NULL, NULL, g->dres, atty, tparam(m, l, P_ATTW), m->scratch, n, C, C);
        attention_backward(g->dqkv, g->datt, g->datty, qkv, att, B, T, C, NH);
        snprintf(name, sizeof name, "h.%d.attn.c_attn", l);
        fn(ctx, name, ln1, g->dqkv, n, C, 3 * C);
        if (l == L - blocks) break; /* the gradient below is not needed */
        linear_backward(g->dln, NULL, NULL, g->dqkv, ln1, tparam(m, l, P_QKVW), m->scratch, n, C, 3 * C);
        layernorm_backward(g->dres, NULL, NULL, g->dln, x, tparam(m, l, P_LN1W), b.ln1_mean, b.ln1_rstd, n, C);
    }
    return WN_OK;
}
#endif

wn_real wn_gpt_clip_grad(wn_gpt *m, wn_real max_norm)
{
    /* per-chunk partial sums (fixed chunks), then a serial sum: deterministic */
    size_t np = m->nparams, nchunk = m->npartial;
    const wn_real *g = m->grads;
#pragma omp parallel for if (np >= PAR_MIN) schedule(static)
    for (size_t ch = 0; ch < nchunk; ch++) {
        size_t i0 = ch * 65536, i1 = i0 + 65536 < np ? i0 + 65536 : np;
        double s = 0;
        for (size_t i = i0; i < i1; i++) s += (double)g[i] * g[i];
        m->partial[ch] = s;
    }
    double ss = 0;
    for (size_t ch = 0; ch < nchunk; ch++) ss += m->partial[ch];
    double norm = sqrt(ss);
    if (max_norm > 0 && norm > max_norm) {
        wn_real k = (wn_real)(max_norm / norm);
#pragma omp parallel for if (np >= PAR_MIN) schedule(static)
        for (size_t i = 0; i < np; i++) m->grads[i] *= k;
    }
    return (wn_real)norm;
}

void wn_gpt_adamw(wn_gpt *m, const wn_adamw *o, int t)
{
    wn_real b1 = o->beta1, b2 = o->beta2, lr = o->lr, eps = o->eps;
    wn_real c1 = (wn_real)(1.0 - pow(o->beta1, t)), c2 = (wn_real)(1.0 - pow(o->beta2, t));
#ifndef WN_MODEL_DOUBLE
    if (m->q8) { /* 8-bit moments: per tensor, blocks in tensor order (adam8.h) */
        size_t P = m->nparams, nb = m->nblocks8, boff = 0;
        for (int i = 0; i < m->ntensors; i++) {
            wn_tensor *x = &m->tensors[i];
            size_t off = (size_t)(x->data - m->params);
            wn_adam8_update(x->data, x->grad, m->q8 + off, m->s8 + boff, m->q8 + P + off, m->s8 + nb + boff, m->map8,
                            x->size, lr, b1, b2, eps, x->ndim == 2 ? o->weight_decay : 0, c1, c2);
            boff += wn_adam8_blocks(x->size);
        }
        return;
    }
#endif
    for (int i = 0; i < m->ntensors; i++) {
        wn_tensor *x = &m->tensors[i];
        wn_real wd = x->ndim == 2 ? o->weight_decay : 0;
        size_t off = (size_t)(x->data - m->params);
        wn_real *p = x->data, *gr = x->grad, *mm1 = m->adam_m + off, *vv = m->adam_v + off;
#pragma omp parallel for if (x->size >= PAR_MIN) schedule(static)
        for (size_t j = 0; j < x->size; j++) {
            wn_real gj = gr[j];
            mm1[j] = b1 * mm1[j] + (1 - b1) * gj;
            vv[j] = b2 * vv[j] + (1 - b2) * gj * gj;
            wn_real mh = mm1[j] / c1, vh = vv[j] / c2;
            p[j] -= lr * (mh / (R_SQRT(vh) + eps) + wd * p[j]);
        }
    }
}

wn_real *wn_gpt_adam_m(wn_gpt *m) { return m->adam_m; }
wn_real *wn_gpt_adam_v(wn_gpt *m) { return m->adam_v; }

#ifndef WN_MODEL_DOUBLE
/* Quantizes (to_8bit) or dequantizes every tensor's slice of the moments,
 * blocks in tensor order. */
static void adam8_convert(wn_gpt *m, int to_8bit)
{
    size_t P = m->nparams, nb = m->nblocks8, boff = 0;
    for (int i = 0; i < m->ntensors; i++) {
        const wn_tensor *x = &m->tensors[i];
        size_t off = (size_t)(x->data - m->params);
        uint8_t *qm = m->q8 + off, *qv = m->q8 + P + off;
        float *sm = m->s8 + boff, *sv = m->s8 + nb + boff;
        if (to_8bit) {
            wn_adam8_quantize(qm, sm, m->adam_m + off, x->size, m->map8);
            wn_adam8_quantize(qv, sv, m->adam_v + off, x->size, m->map8 + 256);
        } else {
            wn_adam8_dequantize(m->adam_m + off, qm, sm, x->size, m->map8);
            wn_adam8_dequantize(m->adam_v + off, qv, sv, x->size, m->map8 + 256);
        }
        boff += wn_adam8_blocks(x->size);
    }
}

wn_err wn_gpt_set_adam8(wn_gpt *m, int on)
{
    if (!on == !m->q8) return WN_OK;
    size_t P = m->nparams;
    if (on) {
        size_t nb = 0;
        for (int i = 0; i < m->ntensors; i++) nb += wn_adam8_blocks(m->tensors[i].size);
        m->q8 = wn_malloc(2 * P);
        m->s8 = wn_malloc(2 * nb * sizeof(float));
        if (!m->q8 || !m->s8) {
            wn_free(m->q8);
            wn_free(m->s8);
            m->q8 = NULL;
            m->s8 = NULL;
            return WN_ERR_NOMEM;
        }
        m->nblocks8 = nb;
        wn_adam8_maps(m->map8);
        adam8_convert(m, 1);
        wn_free(m->adam_m);
        wn_free(m->adam_v);
        m->adam_m = m->adam_v = NULL;
        return WN_OK;
    }
    m->adam_m = wn_malloc(P * sizeof(float));
    m->adam_v = wn_malloc(P * sizeof(float));
    if (!m->adam_m || !m->adam_v) {
        wn_free(m->adam_m);
        wn_free(m->adam_v);
        m->adam_m = m->adam_v = NULL;
        return WN_ERR_NOMEM;
    }
    adam8_convert(m, 0);
    wn_free(m->q8);
    wn_free(m->s8);
    m->q8 = NULL;
    m->s8 = NULL;
    m->nblocks8 = 0;
    return WN_OK;
}

int wn_gpt_adam8(wn_gpt *m, wn_gpt_adam8_state *s)
{
    if (!m->q8) return 0;
    if (s) {
        s->code_m = m->q8;
        s->code_v = m->q8 + m->nparams;
        s->absmax_m = m->s8;
        s->absmax_v = m->s8 + m->nblocks8;
        s->maps = m->map8;
        s->n = m->nparams;
        s->nblocks = m->nblocks8;
    }
    return 1;
}

void wn_gpt_set_recompute(wn_gpt *m, int on)
{
    if (!on == !m->recompute) return;
    m->recompute = on != 0;
    /* the activations' layout changes: the last forward is gone, and the
     * buffer is sized anew (smaller with recompute) at the next one */
    m->B = m->T = 0;
    m->have_targets = 0;
    m->slot = -1;
    wn_free(m->acts_mem);
    m->acts_mem = NULL;
    m->acts_cap = 0;
}
#endif

float wn_lr_schedule(int step, int warmup, int total, float max_lr, float min_lr)
{
    if (step < warmup) return max_lr * (float)(step + 1) / (float)warmup;
    if (step >= total) return min_lr;
    double ratio = (double)(step - warmup) / (double)(total - warmup);
    double coeff = 0.5 * (1.0 + cos(3.14159265358979323846 * ratio));
    return (float)(min_lr + coeff * (max_lr - min_lr));
}

/* xorshift64*; a zero state (which would stay zero) is replaced by a constant. */
static uint64_t xorshift64s(uint64_t *s)
{
    if (!*s) *s = 0x9E3779B97F4A7C15ull;
    uint64_t x = *s;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *s = x;
    return x * 0x2545F4914F6CDD1Dull;
}

/* Top-k heap order: a is "smaller" than b (ties: the higher id is smaller,
 * so the lower id survives). */
static int heap_less(const wn_real *l, uint32_t a, uint32_t b) { return l[a] < l[b] || (l[a] == l[b] && a > b); }

static void heap_down(uint32_t *h, int n, int i, const wn_real *l)
{
    for (;;) {
        int s = i, lc = 2 * i + 1, rc = lc + 1;
        if (lc < n && heap_less(l, h[lc], h[s])) s = lc;
        if (rc < n && heap_less(l, h[rc], h[s])) s = rc;
        if (s == i) return;
        uint32_t tmp = h[i];
        h[i] = h[s];
        h[s] = tmp;
        i = s;
    }
}

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return (x > y) - (x < y);
}

uint32_t wn_gpt_sample(const wn_gpt *m, int b, int T, float temperature, int top_k, uint64_t *rng)
{
    WN_CHECK(m->B > 0 && b >= 0 && b < m->B && T >= 1 && T <= m->T);
    int V = m->cfg.vocab;
    const wn_real *l = m->a.logits + ((size_t)b * m->T + (T - 1)) * V;
    uint32_t best = 0;
    for (int v = 1; v < V; v++)
        if (l[v] > l[best]) best = (uint32_t)v;
    if (temperature <= 0 || top_k == 1) return best;

    /* candidates: all ids, or the top_k largest logits (a min-heap), in id order */
    uint32_t *ids = NULL;
    int n = V;
    if (top_k > 0 && top_k < V) {
        ids = wn_malloc((size_t)top_k * sizeof *ids);
        if (!ids) return best; /* out of memory: fall back to greedy */
        n = top_k;
        for (int v = 0; v < V; v++) {
            if (v < n) {
                ids[v] = (uint32_t)v;
                if (v == n - 1)
                    for (int i = n / 2 - 1; i >= 0; i--) heap_down(ids, n, i, l);
            } else if (heap_less(l, ids[0], (uint32_t)v)) {
                ids[0] = (uint32_t)v;
                heap_down(ids, n, 0, l);
            }
        }
        qsort(ids, (size_t)n, sizeof *ids, cmp_u32);
    }
    double mx = (double)l[best], inv_t = 1.0 / temperature, sum = 0;
    for (int i = 0; i < n; i++) sum += exp(((double)l[ids ? ids[i] : (uint32_t)i] - mx) * inv_t);
    double u = (double)(xorshift64s(rng) >> 11) * 0x1.0p-53 * sum, cum = 0;
    uint32_t pick = ids ? ids[n - 1] : (uint32_t)(n - 1);
    for (int i = 0; i < n; i++) {
        uint32_t id = ids ? ids[i] : (uint32_t)i;
        cum += exp(((double)l[id] - mx) * inv_t);
        if (u < cum) {
            pick = id;
            break;
        }
    }
    wn_free(ids);
    return pick;
}

#ifndef WN_MODEL_DOUBLE
/* Blocks of 8-bit moments of the model c: each tensor's, as wn_gpt_new
 * lays the tensors out (per layer: C, C, C x 3C, 3C, C x C, C, C, C,
 * C x 4C, 4C, 4C x C, C). */
static double adam8_blocks_of(const wn_gpt_config *c)
{
    size_t C = (size_t)c->dim;
    const size_t per_layer[P_PER_LAYER] = {C, C, 3 * C * C, 3 * C, C * C, C, C, C, 4 * C * C, 4 * C, 4 * C * C, C};
    double nb = (double)wn_adam8_blocks((size_t)c->vocab * C) + (double)wn_adam8_blocks((size_t)c->context * C) +
                2.0 * (double)wn_adam8_blocks(C);
    for (int k = 0; k < P_PER_LAYER; k++) nb += (double)c->layers * (double)wn_adam8_blocks(per_layer[k]);
    return nb;
}

void wn_gpt_memory(const wn_gpt_config *c, int B, int T, int opts, wn_gpt_mem *out)
{
    double C = c->dim, V = c->vocab, L = c->layers;
    double np = V * C + (double)c->context * C + L * (12 * C * C + 13 * C) + 2 * C;
    gpt_acts a;
    gpt_gacts g;
    double dsize;
    size_t na = layout_acts(&a, NULL, c, B, T, (opts & WN_GPT_MEM_RECOMPUTE) != 0, &dsize);
    size_t ng = layout_gacts(&g, NULL, c, B, T);
    double R = sizeof(wn_real);
    out->params = np * R;
    out->grads = np * R;
    /* 8-bit: a code per parameter and a float per block, for m and v */
    out->optimizer = opts & WN_GPT_MEM_ADAM8 ? 2 * (np + 4 * adam8_blocks_of(c)) : 2 * np * R;
    out->activations = ((double)na + (double)ng) * R + 2.0 * B * T * sizeof(uint32_t);
    out->scratch = (V * C > 4 * C * C ? V * C : 4 * C * C) * R + (np / 65536 + 1) * sizeof(double);
    out->total = out->params + out->grads + out->optimizer + out->activations + out->scratch;
}
#endif

double wn_gpt_flops_per_step(const wn_gpt *m, int B, int T)
{
    /* llm.c's estimate: 6 N per token for the matrix products (N counts all
     * parameters, wte once though it is used twice) plus 6 L C T for the
     * causal attention scores and weighted sums. */
    const wn_gpt_config *c = &m->cfg;
    double per_token = 6.0 * (double)m->nparams + 6.0 * c->layers * (double)c->dim * T;
    return per_token * (double)B * T;
}

#ifdef WN_MODEL_DOUBLE
#undef wn_gpt
#undef wn_tensor
#undef wn_gpt_new
#undef wn_gpt_free
#undef wn_gpt_cfg
#undef wn_gpt_num_params
#undef wn_gpt_tensors
#undef wn_gpt_forward
#undef wn_gpt_logits
#undef wn_gpt_token_nll
#undef wn_gpt_zero_grad
#undef wn_gpt_backward
#undef wn_gpt_clip_grad
#undef wn_gpt_adamw
#undef wn_gpt_adam_m
#undef wn_gpt_adam_v
#undef wn_lr_schedule
#undef wn_gpt_sample
#undef wn_gpt_flops_per_step
#endif
