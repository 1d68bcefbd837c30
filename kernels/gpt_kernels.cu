/*
 * gpt_kernels.cu - the CUDA kernels of the GPT-2 trainer's GPU path, fp32,
 * after llm.c's train_gpt2.cu (fp32 version): elementwise kernels with a
 * grid-stride loop, one warp per row for LayerNorm and the attention
 * softmax, one block per row for the vocabulary softmax, cuBLAS for every
 * matrix product (attention included, as strided-batched GEMMs). Contracts,
 * shapes and gradient conventions are in gpt_kernels.h; the plain C
 * references are src/gpt_ref.c and tests/cuda/test_kernels.cu compares them.
 *
 * Row-major vs cuBLAS: cuBLAS is column-major. A row-major (r, c) buffer
 * read as column-major is its transpose (c, r) with leading dimension c. So
 * to compute a row-major Y = A @ B we ask cuBLAS for Y^T = B^T @ A^T, passing
 * the buffers of B and A in that order; a CUBLAS_OP_T appears only where the
 * math needs a transpose of what the buffer already holds. Each call below
 * states its derivation.
 *
 * cuBLAS is opened with dlopen at the first GEMM, not linked: linking it
 * (and the 500 MB libcublasLt behind it) adds about 0.2 s to every start of
 * ./winnow, GPU work or not.
 */
#include <cublas_v2.h>
#include <cuda_bf16.h>
#include <cuda_runtime.h>
#include <dlfcn.h>
#include <float.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>

#include "cuda_common.h"
#include "gpt_kernels.h"

#define LN_EPS 1e-5f
#define GELU_S 0.7978845608028654f /* sqrt(2/pi) */

/* ---- module state: cuBLAS handle, workspace, last error ----------------- */

static cublasHandle_t g_cublas;
static int g_cublas_ok;
static float *g_ws;     /* workspace, g_ws_n floats */
static size_t g_ws_n;
__device__ int d_bad_id; /* set by kernels that meet an id outside [0, V) */

static const wn_cublas_fns *cb; /* set by wn_cuda_gpt_init */

#define WN_STR_(x) #x
#define WN_STR(x) WN_STR_(x)

int wn_cublas_load(const wn_cublas_fns **out, char *msg, size_t n)
{
    static const char *const names[] = {"libcublas.so." WN_STR(CUBLAS_VER_MAJOR),
                                        "/usr/local/cuda/lib64/libcublas.so." WN_STR(CUBLAS_VER_MAJOR)};
    static wn_cublas_fns fns;
    *out = &fns;
    if (fns.lib) return WN_CUDA_OK;
    void *lib = NULL;
    for (size_t i = 0; i < sizeof names / sizeof names[0] && !lib; i++) lib = dlopen(names[i], RTLD_NOW | RTLD_LOCAL);
    if (!lib) {
        snprintf(msg, n, "cannot load %s: %s (add its directory to LD_LIBRARY_PATH)", names[0], dlerror());
        return WN_CUDA_ERR_CUBLAS;
    }
#define SYM(field, name)                                                                                 \
    if (!(*(void **)&fns.field = dlsym(lib, #name))) {                                                   \
        snprintf(msg, n, "%s has no %s", names[0], #name);                                               \
        dlclose(lib);                                                                                    \
        return WN_CUDA_ERR_CUBLAS;                                                                       \
    }
    SYM(create, cublasCreate_v2)
    SYM(destroy, cublasDestroy_v2)
    SYM(set_math_mode, cublasSetMathMode)
    SYM(sgemm, cublasSgemm_v2)
    SYM(sgemm_batched, cublasSgemmStridedBatched)
    SYM(status_string, cublasGetStatusString)
    SYM(gemm_ex, cublasGemmEx)
#undef SYM
    fns.lib = lib;
    return WN_CUDA_OK;
}

extern "C" int wn_cuda_gpt_init(int allow_tf32)
{
    int rc = wn_cublas_load(&cb, g_msg, sizeof g_msg);
    if (rc) return rc;
    if (!g_cublas_ok) {
        CUBLAS_TRY(cb->create(&g_cublas));
        g_cublas_ok = 1;
    }
    /* CUBLAS_DEFAULT_MATH keeps SGEMM in full fp32 (since CUDA 11 TF32 is
     * opt-in); CUBLAS_TF32_TENSOR_OP_MATH opts in. */
    CUBLAS_TRY(cb->set_math_mode(g_cublas, allow_tf32 ? CUBLAS_TF32_TENSOR_OP_MATH : CUBLAS_DEFAULT_MATH));
    return WN_CUDA_OK;
}

extern "C" void wn_cuda_gpt_shutdown(void)
{
    if (g_cublas_ok) cb->destroy(g_cublas); /* the library stays loaded */
    g_cublas_ok = 0;
    cudaFree(g_ws);
    g_ws = NULL;
    g_ws_n = 0;
}

extern "C" const char *wn_cuda_last_error(void) { return g_msg; }

static int ensure_cublas(void) { return g_cublas_ok ? WN_CUDA_OK : wn_cuda_gpt_init(0); }

/* Points *ws at a workspace of at least n floats (cudaFree waits for the
 * device, so kernels still using the old one are done). */
static int workspace(float **ws, size_t n)
{
    if (n > g_ws_n) {
        cudaFree(g_ws);
        g_ws = NULL;
        g_ws_n = 0;
        CUDA_TRY(cudaMalloc((void **)&g_ws, n * sizeof(float)));
        g_ws_n = n;
    }
    *ws = g_ws;
    return WN_CUDA_OK;
}

/* Reads and clears d_bad_id (synchronizes). */
static int take_bad_id(int *bad)
{
    int h = 0, zero = 0;
    CUDA_TRY(cudaMemcpyFromSymbol(&h, d_bad_id, sizeof h));
    if (h) CUDA_TRY(cudaMemcpyToSymbol(d_bad_id, &zero, sizeof zero));
    *bad = h;
    return WN_CUDA_OK;
}

extern "C" int wn_cuda_alloc(void **p, size_t bytes)
{
    *p = NULL;
    CUDA_TRY(cudaMalloc(p, bytes ? bytes : 1));
    return WN_CUDA_OK;
}
extern "C" void wn_cuda_free(void *p)
{
    if (p) cudaFree(p);
}
extern "C" int wn_cuda_upload(void *dst, const void *src, size_t bytes)
{
    CUDA_TRY(cudaMemcpy(dst, src, bytes, cudaMemcpyHostToDevice));
    return WN_CUDA_OK;
}
extern "C" int wn_cuda_download(void *dst, const void *src, size_t bytes)
{
    CUDA_TRY(cudaMemcpy(dst, src, bytes, cudaMemcpyDeviceToHost));
    return WN_CUDA_OK;
}
extern "C" int wn_cuda_memset0(void *p, size_t bytes)
{
    CUDA_TRY(cudaMemset(p, 0, bytes));
    return WN_CUDA_OK;
}
extern "C" int wn_cuda_sync(void)
{
    CUDA_TRY(cudaDeviceSynchronize());
    return WN_CUDA_OK;
}

/* ---- helpers -------------------------------------------------------------- */

#define THREADS 256
#define ROWS_PER_BLOCK (THREADS / 32) /* warp-per-row kernels */

/* Blocks for a grid-stride loop over n elements. */
static unsigned grid_for(size_t n)
{
    size_t b = (n + THREADS - 1) / THREADS;
    return (unsigned)(b < 65536 ? (b ? b : 1) : 65536);
}

__device__ __forceinline__ float warp_sum(float v)
{
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}
__device__ __forceinline__ float warp_max(float v)
{
    for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}

#define GRID_STRIDE(i, n) for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < (n); \
                               i += (size_t)gridDim.x * blockDim.x)

/* Column sums, two passes so the result does not depend on scheduling:
 * colsum_partial writes part (R, C) with R = gridDim.y, block (32, 8): block
 * (x, y) covers columns 32x..32x+31 and rows y*8+ty, stepping R*8 rows.
 * colsum_finish adds the R partials of each column, in order, to dst (C). */
#define COL_TILE 32
#define COL_ROWS 8
static int colsum_rows(int N)
{
    int r = (N + COL_ROWS - 1) / COL_ROWS;
    return r < 64 ? r : 64;
}

__global__ void colsum_partial(float *part, const float *x, int N, int C)
{
    __shared__ float sh[COL_ROWS][COL_TILE + 1];
    int c = blockIdx.x * COL_TILE + threadIdx.x;
    float acc = 0.0f;
    if (c < C)
        for (int r = blockIdx.y * COL_ROWS + threadIdx.y; r < N; r += gridDim.y * COL_ROWS)
            acc += x[(size_t)r * C + c];
    sh[threadIdx.y][threadIdx.x] = acc;
    __syncthreads();
    if (threadIdx.y == 0 && c < C) {
        for (int k = 1; k < COL_ROWS; k++) acc += sh[k][threadIdx.x];
        part[(size_t)blockIdx.y * C + c] = acc;
    }
}

__global__ void colsum_finish(float *dst, const float *part, int R, int C)
{
    int c = blockIdx.x * blockDim.x + threadIdx.x;
    if (c >= C) return;
    float s = 0.0f;
    for (int r = 0; r < R; r++) s += part[(size_t)r * C + c];
    dst[c] += s;
}

/* ---- encoder ------------------------------------------------------------ */

/* out (B*T, C); inp (B*T); wte (V, C); wpe (maxT, C). */
__global__ void encoder_forward_kernel(float *out, const int *inp, const float *wte, const float *wpe, int T, int C,
                                       int V, size_t n)
{
    GRID_STRIDE(i, n)
    {
        size_t bt = i / C;
        int c = (int)(i % C), t = (int)(bt % T), id = inp[bt];
        if (id < 0 || id >= V) {
            out[i] = 0.0f;
            d_bad_id = 1;
        } else {
            out[i] = wte[(size_t)id * C + c] + wpe[(size_t)t * C + c];
        }
    }
}

extern "C" int wn_cuda_encoder_forward(float *out, const int *inp, const float *wte, const float *wpe, int B, int T,
                                       int C, int V)
{
    ARG_CHECK(out && inp && wte && wpe && B > 0 && T > 0 && C > 0 && V > 0);
    size_t n = (size_t)B * T * C;
    encoder_forward_kernel<<<grid_for(n), THREADS>>>(out, inp, wte, wpe, T, C, V, n);
    LAUNCHED("encoder_forward");
    int bad;
    int rc = take_bad_id(&bad);
    if (rc) return rc;
    if (bad) return fail(WN_CUDA_ERR_TOKEN, "encoder_forward: a token id is outside [0, %d)", V);
    return WN_CUDA_OK;
}

/* dwte (V, C) += dout (B*T, C) scattered by id. */
__global__ void encoder_backward_wte(float *dwte, const float *dout, const int *inp, int C, size_t n)
{
    GRID_STRIDE(i, n)
    {
        size_t bt = i / C;
        atomicAdd(&dwte[(size_t)inp[bt] * C + i % C], dout[i]);
    }
}

/* dwpe (T, C) += sum over b of dout (B, T, C); one thread per (t, c). */
__global__ void encoder_backward_wpe(float *dwpe, const float *dout, int B, int T, int C)
{
    GRID_STRIDE(i, (size_t)T * C)
    {
        float s = 0.0f;
        for (int b = 0; b < B; b++) s += dout[(size_t)b * T * C + i];
        dwpe[i] += s;
    }
}

extern "C" int wn_cuda_encoder_backward(float *dwte, float *dwpe, const float *dout, const int *inp, int B, int T,
                                        int C)
{
    ARG_CHECK(dwte && dwpe && dout && inp && B > 0 && T > 0 && C > 0);
    size_t n = (size_t)B * T * C;
    encoder_backward_wte<<<grid_for(n), THREADS>>>(dwte, dout, inp, C, n);
    LAUNCHED("encoder_backward_wte");
    encoder_backward_wpe<<<grid_for((size_t)T * C), THREADS>>>(dwpe, dout, B, T, C);
    LAUNCHED("encoder_backward_wpe");
    return WN_CUDA_OK;
}

/* ---- layernorm ------------------------------------------------------------ */

/* One warp per row of inp (N, C): two passes over the row (mean, then the
 * variance around it) for accuracy; the row stays in L1/L2. */
__global__ void layernorm_forward_kernel(float *out, float *mean, float *rstd, const float *inp, const float *w,
                                         const float *b, int N, int C)
{
    int row = blockIdx.x * ROWS_PER_BLOCK + threadIdx.x / 32, lane = threadIdx.x % 32;
    if (row >= N) return; /* whole warps leave together */
    const float *x = inp + (size_t)row * C;
    float s = 0.0f;
    for (int c = lane; c < C; c += 32) s += x[c];
    float m = warp_sum(s) / C;
    float v = 0.0f;
    for (int c = lane; c < C; c += 32) {
        float d = x[c] - m;
        v += d * d;
    }
    float r = 1.0f / sqrtf(warp_sum(v) / C + LN_EPS);
    float *o = out + (size_t)row * C;
    for (int c = lane; c < C; c += 32) o[c] = (x[c] - m) * r * w[c] + b[c];
    if (lane == 0) {
        mean[row] = m;
        rstd[row] = r;
    }
}

extern "C" int wn_cuda_layernorm_forward(float *out, float *mean, float *rstd, const float *inp, const float *weight,
                                         const float *bias, int N, int C)
{
    ARG_CHECK(out && mean && rstd && inp && weight && bias && N > 0 && C > 0);
    layernorm_forward_kernel<<<(N + ROWS_PER_BLOCK - 1) / ROWS_PER_BLOCK, THREADS>>>(out, mean, rstd, inp, weight,
                                                                                      bias, N, C);
    LAUNCHED("layernorm_forward");
    return WN_CUDA_OK;
}

/* dinp (N, C) += rstd (g - mean(g) - n mean(g n)) with n the normalized
 * input and g = weight * dout; one warp per row. */
__global__ void layernorm_backward_dinp(float *dinp, const float *dout, const float *inp, const float *w,
                                        const float *mean, const float *rstd, int N, int C)
{
    int row = blockIdx.x * ROWS_PER_BLOCK + threadIdx.x / 32, lane = threadIdx.x % 32;
    if (row >= N) return;
    const float *x = inp + (size_t)row * C, *d = dout + (size_t)row * C;
    float m = mean[row], r = rstd[row], sg = 0.0f, sgn = 0.0f;
    for (int c = lane; c < C; c += 32) {
        float g = w[c] * d[c];
        sg += g;
        sgn += g * (x[c] - m) * r;
    }
    float mg = warp_sum(sg) / C, mgn = warp_sum(sgn) / C;
    float *di = dinp + (size_t)row * C;
    for (int c = lane; c < C; c += 32) di[c] += (w[c] * d[c] - mg - (x[c] - m) * r * mgn) * r;
}

/* Partial column sums of dout * n and dout into pw, pb (R, C); the layout
 * of colsum_partial. */
__global__ void layernorm_backward_partial(float *pw, float *pb, const float *dout, const float *inp,
                                           const float *mean, const float *rstd, int N, int C)
{
    __shared__ float sw[COL_ROWS][COL_TILE + 1], sb[COL_ROWS][COL_TILE + 1];
    int c = blockIdx.x * COL_TILE + threadIdx.x;
    float aw = 0.0f, ab = 0.0f;
    if (c < C)
        for (int r = blockIdx.y * COL_ROWS + threadIdx.y; r < N; r += gridDim.y * COL_ROWS) {
            float d = dout[(size_t)r * C + c];
            aw += d * (inp[(size_t)r * C + c] - mean[r]) * rstd[r];
            ab += d;
        }
    sw[threadIdx.y][threadIdx.x] = aw;
    sb[threadIdx.y][threadIdx.x] = ab;
    __syncthreads();
    if (threadIdx.y == 0 && c < C) {
        for (int k = 1; k < COL_ROWS; k++) {
            aw += sw[k][threadIdx.x];
            ab += sb[k][threadIdx.x];
        }
        pw[(size_t)blockIdx.y * C + c] = aw;
        pb[(size_t)blockIdx.y * C + c] = ab;
    }
}

extern "C" int wn_cuda_layernorm_backward(float *dinp, float *dweight, float *dbias, const float *dout,
                                          const float *inp, const float *weight, const float *mean,
                                          const float *rstd, int N, int C)
{
    ARG_CHECK(dinp && !dweight == !dbias && dout && inp && weight && mean && rstd && N > 0 && C > 0);
    int R = colsum_rows(N), rc;
    layernorm_backward_dinp<<<(N + ROWS_PER_BLOCK - 1) / ROWS_PER_BLOCK, THREADS>>>(dinp, dout, inp, weight, mean,
                                                                                     rstd, N, C);
    LAUNCHED("layernorm_backward_dinp");
    if (!dweight) return WN_CUDA_OK;
    float *ws;
    if ((rc = workspace(&ws, 2 * (size_t)R * C))) return rc;
    dim3 grid((C + COL_TILE - 1) / COL_TILE, R), block(COL_TILE, COL_ROWS);
    layernorm_backward_partial<<<grid, block>>>(ws, ws + (size_t)R * C, dout, inp, mean, rstd, N, C);
    LAUNCHED("layernorm_backward_partial");
    colsum_finish<<<(C + THREADS - 1) / THREADS, THREADS>>>(dweight, ws, R, C);
    LAUNCHED("colsum_finish");
    colsum_finish<<<(C + THREADS - 1) / THREADS, THREADS>>>(dbias, ws + (size_t)R * C, R, C);
    LAUNCHED("colsum_finish");
    return WN_CUDA_OK;
}

/* ---- matmul (cuBLAS) ------------------------------------------------------ */

/* out (N, OC) += bias (OC) broadcast over rows. */
__global__ void add_bias_kernel(float *out, const float *bias, int OC, size_t n)
{
    GRID_STRIDE(i, n) out[i] += bias[i % OC];
}

/* Forward, out (N,OC) = inp (N,C) @ W. In column-major terms out^T (OC x N,
 * ld OC) = W^T @ inp^T, and the inp buffer read column-major already is
 * inp^T (C x N, ld C): op N.
 *   trans_w = 0, W (C,OC): its buffer column-major is W^T (OC x C, ld OC),
 *     exactly the left factor: op N, lda = OC. No transposes at all.
 *   trans_w = 1, W (OC,C): its buffer column-major is W (C x OC, ld C), so
 *     the left factor W^T needs op T, lda = C (llm.c's layout). */
extern "C" int wn_cuda_matmul_forward(float *out, const float *inp, const float *weight, const float *bias, int N,
                                      int C, int OC, int trans_w)
{
    ARG_CHECK(out && inp && weight && N > 0 && C > 0 && OC > 0);
    int rc = ensure_cublas();
    if (rc) return rc;
    const float one = 1.0f, zero = 0.0f;
    CUBLAS_TRY(cb->sgemm(g_cublas, trans_w ? CUBLAS_OP_T : CUBLAS_OP_N, CUBLAS_OP_N, OC, N, C, &one, weight,
                        trans_w ? C : OC, inp, C, &zero, out, OC));
    if (bias) {
        size_t n = (size_t)N * OC;
        add_bias_kernel<<<grid_for(n), THREADS>>>(out, bias, OC, n);
        LAUNCHED("add_bias");
    }
    return WN_CUDA_OK;
}

/* dbias (OC) += column sums of dout (N,OC): partial sums per row group, then
 * a fixed-order finish (deterministic). Uses the workspace. */
static int bias_grad(float *dbias, const float *dout, int N, int OC)
{
    int R = colsum_rows(N), rc;
    float *ws;
    if ((rc = workspace(&ws, (size_t)R * OC))) return rc;
    dim3 grid((OC + COL_TILE - 1) / COL_TILE, R), block(COL_TILE, COL_ROWS);
    colsum_partial<<<grid, block>>>(ws, dout, N, OC);
    LAUNCHED("colsum_partial");
    colsum_finish<<<(OC + THREADS - 1) / THREADS, THREADS>>>(dbias, ws, R, OC);
    LAUNCHED("colsum_finish");
    return WN_CUDA_OK;
}

/* Backward.
 * dinp (N,C) = dout (N,OC) @ W^T; column-major dinp^T (C x N, ld C) =
 *   W_math (C x OC) @ dout^T, dout's buffer being dout^T (OC x N, ld OC): op N.
 *   trans_w = 0: W's buffer is W^T (OC x C, ld OC) column-major, so the left
 *     factor W (C x OC) is op T, lda = OC.
 *   trans_w = 1: W's buffer (OC,C) is already W_math (C x OC, ld C): op N.
 * dW += inp^T @ dout, in W's own layout:
 *   trans_w = 0, dW (C,OC): column-major dW^T (OC x C, ld OC) = dout^T @ inp
 *     = (dout buffer, op N) @ (inp buffer = inp^T (C x N), op T), k = N.
 *   trans_w = 1, dW (OC,C): column-major dW^T (C x OC, ld C) = inp^T @ dout
 *     = (inp buffer, op N) @ (dout buffer = dout^T (OC x N), op T), k = N.
 *   beta = 1 accumulates.
 * dbias (OC) += column sums of dout (colsum kernels; deterministic). */
extern "C" int wn_cuda_matmul_backward(float *dinp, float *dweight, float *dbias, const float *dout,
                                       const float *inp, const float *weight, int N, int C, int OC, int trans_w)
{
    ARG_CHECK(dout && inp && weight && N > 0 && C > 0 && OC > 0);
    int rc = ensure_cublas();
    if (rc) return rc;
    const float one = 1.0f, zero = 0.0f;
    if (dinp) {
        if (trans_w)
            CUBLAS_TRY(cb->sgemm(g_cublas, CUBLAS_OP_N, CUBLAS_OP_N, C, N, OC, &one, weight, C, dout, OC, &zero,
                                dinp, C));
        else
            CUBLAS_TRY(cb->sgemm(g_cublas, CUBLAS_OP_T, CUBLAS_OP_N, C, N, OC, &one, weight, OC, dout, OC, &zero,
                                dinp, C));
    }
    if (dweight && trans_w)
        CUBLAS_TRY(cb->sgemm(g_cublas, CUBLAS_OP_N, CUBLAS_OP_T, C, OC, N, &one, inp, C, dout, OC, &one, dweight,
                            C));
    else if (dweight)
        CUBLAS_TRY(cb->sgemm(g_cublas, CUBLAS_OP_N, CUBLAS_OP_T, OC, C, N, &one, dout, OC, inp, C, &one, dweight,
                            OC));
    return dbias ? bias_grad(dbias, dout, N, OC) : WN_CUDA_OK;
}

/* ---- bf16 matrix products (mixed precision) ----------------------------------
 * bf16 operands, fp32 accumulation and fp32 results (cublasGemmEx with
 * CUBLAS_COMPUTE_32F), the same layouts and transposes as the fp32 pair
 * above. The backward rounds dout to bf16 (in the workspace) for both of its
 * products; dbias is summed from the fp32 dout. */

__global__ void to_bf16_kernel(__nv_bfloat16 *out, const float *in, size_t n)
{
    GRID_STRIDE(i, n) out[i] = __float2bfloat16_rn(in[i]);
}

extern "C" int wn_cuda_to_bf16(uint16_t *out, const float *in, size_t n)
{
    ARG_CHECK(out && in);
    if (!n) return WN_CUDA_OK;
    to_bf16_kernel<<<grid_for(n), THREADS>>>((__nv_bfloat16 *)out, in, n);
    LAUNCHED("to_bf16");
    return WN_CUDA_OK;
}

extern "C" int wn_cuda_matmul_forward_bf16(float *out, const uint16_t *inp, const uint16_t *weight, const float *bias,
                                           int N, int C, int OC, int trans_w)
{
    ARG_CHECK(out && inp && weight && N > 0 && C > 0 && OC > 0);
    int rc = ensure_cublas();
    if (rc) return rc;
    const float one = 1.0f, zero = 0.0f;
    CUBLAS_TRY(cb->gemm_ex(g_cublas, trans_w ? CUBLAS_OP_T : CUBLAS_OP_N, CUBLAS_OP_N, OC, N, C, &one, weight,
                          CUDA_R_16BF, trans_w ? C : OC, inp, CUDA_R_16BF, C, &zero, out, CUDA_R_32F, OC,
                          CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
    if (bias) {
        size_t n = (size_t)N * OC;
        add_bias_kernel<<<grid_for(n), THREADS>>>(out, bias, OC, n);
        LAUNCHED("add_bias");
    }
    return WN_CUDA_OK;
}

extern "C" int wn_cuda_matmul_backward_bf16(float *dinp, float *dweight, float *dbias, const float *dout,
                                            const uint16_t *inp, const uint16_t *weight, int N, int C, int OC,
                                            int trans_w)
{
    ARG_CHECK(dout && inp && weight && N > 0 && C > 0 && OC > 0);
    int rc = ensure_cublas();
    if (rc) return rc;
    if (dbias && (rc = bias_grad(dbias, dout, N, OC))) return rc; /* before the workspace is reused below */
    float *ws;
    size_t n = (size_t)N * OC;
    if ((rc = workspace(&ws, (n + 1) / 2))) return rc;
    const __nv_bfloat16 *d16 = (const __nv_bfloat16 *)ws;
    to_bf16_kernel<<<grid_for(n), THREADS>>>((__nv_bfloat16 *)ws, dout, n);
    LAUNCHED("to_bf16");
    const float one = 1.0f, zero = 0.0f;
    if (dinp)
        CUBLAS_TRY(cb->gemm_ex(g_cublas, trans_w ? CUBLAS_OP_N : CUBLAS_OP_T, CUBLAS_OP_N, C, N, OC, &one, weight,
                              CUDA_R_16BF, trans_w ? C : OC, d16, CUDA_R_16BF, OC, &zero, dinp, CUDA_R_32F, C,
                              CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
    if (dweight && trans_w)
        CUBLAS_TRY(cb->gemm_ex(g_cublas, CUBLAS_OP_N, CUBLAS_OP_T, C, OC, N, &one, inp, CUDA_R_16BF, C, d16,
                              CUDA_R_16BF, OC, &one, dweight, CUDA_R_32F, C, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
    else if (dweight)
        CUBLAS_TRY(cb->gemm_ex(g_cublas, CUBLAS_OP_N, CUBLAS_OP_T, OC, C, N, &one, d16, CUDA_R_16BF, OC, inp,
                              CUDA_R_16BF, C, &one, dweight, CUDA_R_32F, OC, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
    return WN_CUDA_OK;
}

/* ---- attention -------------------------------------------------------------
 * Per (b, h): S = scale q k^T (T x T), P = causal_softmax(S), Y = P v, with
 * q, k, v (T x hs) row-major slices of qkvr, batch stride T*hs, and P of
 * att, batch stride T*T; B*NH batches. The GEMMs compute all T x T entries
 * and the softmax zeroes the masked ones, which keeps the GEMMs plain. */

/* inp (B, T, 3, NH, hs) -> q, k, v each (B, NH, T, hs). */
__global__ void attn_permute(float *q, float *k, float *v, const float *inp, int B, int T, int NH, int hs)
{
    int C = NH * hs;
    GRID_STRIDE(i, (size_t)B * NH * T * hs)
    {
        int d = (int)(i % hs);
        size_t r = i / hs;
        int t = (int)(r % T), h = (int)(r / T % NH), b = (int)(r / T / NH);
        size_t src = ((size_t)b * T + t) * 3 * C + (size_t)h * hs + d;
        q[i] = inp[src];
        k[i] = inp[src + C];
        v[i] = inp[src + 2 * C];
    }
}

/* Index in (B, T, NH*hs) of element i of a (B, NH, T, hs) tensor. */
__device__ __forceinline__ size_t attn_btc_index(size_t i, int T, int NH, int hs)
{
    int d = (int)(i % hs);
    size_t r = i / hs;
    int t = (int)(r % T), h = (int)(r / T % NH), b = (int)(r / T / NH);
    return ((size_t)b * T + t) * NH * hs + (size_t)h * hs + d;
}

/* y (B, NH, T, hs) -> out (B, T, NH*hs): heads concatenated. */
__global__ void attn_unpermute(float *out, const float *y, int B, int T, int NH, int hs)
{
    GRID_STRIDE(i, (size_t)B * NH * T * hs) out[attn_btc_index(i, T, NH, hs)] = y[i];
}

/* The reverse, for the backward: dout (B, T, NH*hs) -> dy (B, NH, T, hs). */
__global__ void attn_to_heads(float *dy, const float *dout, int B, int T, int NH, int hs)
{
    GRID_STRIDE(i, (size_t)B * NH * T * hs) dy[i] = dout[attn_btc_index(i, T, NH, hs)];
}

/* dq, dk, dv each (B, NH, T, hs) -> dinp (B, T, 3, NH, hs). */
__global__ void attn_permute_backward(float *dinp, const float *dq, const float *dk, const float *dv, int B, int T,
                                      int NH, int hs)
{
    int C = NH * hs;
    GRID_STRIDE(i, (size_t)B * NH * T * hs)
    {
        int d = (int)(i % hs);
        size_t r = i / hs;
        int t = (int)(r % T), h = (int)(r / T % NH), b = (int)(r / T / NH);
        size_t dst = ((size_t)b * T + t) * 3 * C + (size_t)h * hs + d;
        dinp[dst] = dq[i];
        dinp[dst + C] = dk[i];
        dinp[dst + 2 * C] = dv[i];
    }
}

/* In place on att (rows, T), one warp per row, row r being query position
 * t = r % T: softmax over entries 0..t, zeros after. Each lane reads then
 * writes only its own entries, after the warp's reductions, so in place is
 * safe. */
__global__ void causal_softmax_forward(float *att, int rows, int T)
{
    int row = blockIdx.x * ROWS_PER_BLOCK + threadIdx.x / 32, lane = threadIdx.x % 32;
    if (row >= rows) return;
    int t = row % T;
    float *x = att + (size_t)row * T;
    float mx = -FLT_MAX;
    for (int j = lane; j <= t; j += 32) mx = fmaxf(mx, x[j]);
    mx = warp_max(mx);
    float s = 0.0f;
    for (int j = lane; j <= t; j += 32) s += expf(x[j] - mx);
    float inv = 1.0f / warp_sum(s);
    for (int j = lane; j < T; j += 32) x[j] = j <= t ? expf(x[j] - mx) * inv : 0.0f;
}

/* In place on datt (rows, T): dS_j = P_j (dP_j - sum_k P_k dP_k) for j <= t,
 * 0 after; P = att. Same in-place argument as the forward. */
__global__ void causal_softmax_backward(float *datt, const float *att, int rows, int T)
{
    int row = blockIdx.x * ROWS_PER_BLOCK + threadIdx.x / 32, lane = threadIdx.x % 32;
    if (row >= rows) return;
    int t = row % T;
    const float *p = att + (size_t)row * T;
    float *g = datt + (size_t)row * T;
    float s = 0.0f;
    for (int j = lane; j <= t; j += 32) s += p[j] * g[j];
    s = warp_sum(s);
    for (int j = lane; j < T; j += 32) g[j] = j <= t ? p[j] * (g[j] - s) : 0.0f;
}

extern "C" int wn_cuda_attention_forward(float *out, float *qkvr, float *att, const float *inp, int B, int T, int C,
                                         int NH)
{
    ARG_CHECK(out && qkvr && att && inp && B > 0 && T > 0 && NH > 0 && C > 0 && C % NH == 0);
    int hs = C / NH, rc;
    if ((rc = ensure_cublas())) return rc;
    size_t btc = (size_t)B * T * C;
    float *q = qkvr, *k = qkvr + btc, *v = qkvr + 2 * btc, *y;
    if ((rc = workspace(&y, btc))) return rc;
    const float scale = 1.0f / sqrtf((float)hs), one = 1.0f, zero = 0.0f;
    long long sq = (long long)T * hs, sa = (long long)T * T;

    attn_permute<<<grid_for(btc), THREADS>>>(q, k, v, inp, B, T, NH, hs);
    LAUNCHED("attn_permute");
    /* S (T x T) = scale q k^T; column-major S^T = k q^T: k's buffer is k^T
     * (hs x T, ld hs), so the left factor k is op T; q's buffer is q^T:
     * op N. */
    CUBLAS_TRY(cb->sgemm_batched(g_cublas, CUBLAS_OP_T, CUBLAS_OP_N, T, T, hs, &scale, k, hs, sq, q, hs, sq,
                                &zero, att, T, sa, B * NH));
    int rows = B * NH * T;
    causal_softmax_forward<<<(rows + ROWS_PER_BLOCK - 1) / ROWS_PER_BLOCK, THREADS>>>(att, rows, T);
    LAUNCHED("causal_softmax_forward");
    /* Y (T x hs) = P v; column-major Y^T = v^T P^T: v's buffer is v^T
     * (hs x T), P's buffer is P^T (T x T): both op N. */
    CUBLAS_TRY(cb->sgemm_batched(g_cublas, CUBLAS_OP_N, CUBLAS_OP_N, hs, T, T, &one, v, hs, sq, att, T, sa,
                                &zero, y, hs, sq, B * NH));
    attn_unpermute<<<grid_for(btc), THREADS>>>(out, y, B, T, NH, hs);
    LAUNCHED("attn_unpermute");
    return WN_CUDA_OK;
}

extern "C" int wn_cuda_attention_backward(float *dinp, const float *dout, const float *qkvr, const float *att, int B,
                                          int T, int C, int NH)
{
    ARG_CHECK(dinp && dout && qkvr && att && B > 0 && T > 0 && NH > 0 && C > 0 && C % NH == 0);
    int hs = C / NH, rc;
    if ((rc = ensure_cublas())) return rc;
    size_t btc = (size_t)B * T * C, natt = (size_t)B * NH * T * T;
    float *ws;
    if ((rc = workspace(&ws, natt + 4 * btc))) return rc;
    float *datt = ws, *dy = ws + natt, *dq = dy + btc, *dk = dq + btc, *dv = dk + btc;
    const float *q = qkvr, *k = qkvr + btc, *v = qkvr + 2 * btc;
    const float scale = 1.0f / sqrtf((float)hs), one = 1.0f, zero = 0.0f;
    long long sq = (long long)T * hs, sa = (long long)T * T;

    attn_to_heads<<<grid_for(btc), THREADS>>>(dy, dout, B, T, NH, hs);
    LAUNCHED("attn_to_heads");
    /* dP (T x T) = dY v^T; column-major dP^T = v dY^T: v's buffer is v^T, so
     * op T; dY's buffer is dY^T: op N. */
    CUBLAS_TRY(cb->sgemm_batched(g_cublas, CUBLAS_OP_T, CUBLAS_OP_N, T, T, hs, &one, v, hs, sq, dy, hs, sq,
                                &zero, datt, T, sa, B * NH));
    /* dv (T x hs) = P^T dY; column-major dv^T = dY^T P: dY's buffer op N,
     * P's buffer is P^T, so op T. */
    CUBLAS_TRY(cb->sgemm_batched(g_cublas, CUBLAS_OP_N, CUBLAS_OP_T, hs, T, T, &one, dy, hs, sq, att, T, sa,
                                &zero, dv, hs, sq, B * NH));
    int rows = B * NH * T;
    causal_softmax_backward<<<(rows + ROWS_PER_BLOCK - 1) / ROWS_PER_BLOCK, THREADS>>>(datt, att, rows, T);
    LAUNCHED("causal_softmax_backward");
    /* dq (T x hs) = scale dS k; column-major dq^T = scale k^T dS^T: k's
     * buffer is k^T, dS's buffer is dS^T: both op N. */
    CUBLAS_TRY(cb->sgemm_batched(g_cublas, CUBLAS_OP_N, CUBLAS_OP_N, hs, T, T, &scale, k, hs, sq, datt, T, sa,
                                &zero, dq, hs, sq, B * NH));
    /* dk (T x hs) = scale dS^T q; column-major dk^T = scale q^T dS: q's
     * buffer op N, dS's buffer is dS^T, so op T. */
    CUBLAS_TRY(cb->sgemm_batched(g_cublas, CUBLAS_OP_N, CUBLAS_OP_T, hs, T, T, &scale, q, hs, sq, datt, T, sa,
                                &zero, dk, hs, sq, B * NH));
    attn_permute_backward<<<grid_for(btc), THREADS>>>(dinp, dq, dk, dv, B, T, NH, hs);
    LAUNCHED("attn_permute_backward");
    return WN_CUDA_OK;
}

/* ---- GELU, residual ------------------------------------------------------- */

__global__ void gelu_forward_kernel(float *out, const float *inp, size_t n)
{
    GRID_STRIDE(i, n)
    {
        float x = inp[i];
        out[i] = 0.5f * x * (1.0f + tanhf(GELU_S * (x + 0.044715f * x * x * x)));
    }
}

/* gelu'(x) = 0.5 (1 + th) + 0.5 x (1 - th^2) s (1 + 3 0.044715 x^2),
 * th = tanh(s (x + 0.044715 x^3)). */
__global__ void gelu_backward_kernel(float *dinp, const float *inp, const float *dout, size_t n)
{
    GRID_STRIDE(i, n)
    {
        float x = inp[i];
        float th = tanhf(GELU_S * (x + 0.044715f * x * x * x));
        float g = 0.5f * (1.0f + th) + 0.5f * x * (1.0f - th * th) * GELU_S * (1.0f + 3.0f * 0.044715f * x * x);
        dinp[i] = g * dout[i];
    }
}

extern "C" int wn_cuda_gelu_forward(float *out, const float *inp, size_t n)
{
    ARG_CHECK(out && inp);
    if (!n) return WN_CUDA_OK;
    gelu_forward_kernel<<<grid_for(n), THREADS>>>(out, inp, n);
    LAUNCHED("gelu_forward");
    return WN_CUDA_OK;
}

extern "C" int wn_cuda_gelu_backward(float *dinp, const float *inp, const float *dout, size_t n)
{
    ARG_CHECK(dinp && inp && dout);
    if (!n) return WN_CUDA_OK;
    gelu_backward_kernel<<<grid_for(n), THREADS>>>(dinp, inp, dout, n);
    LAUNCHED("gelu_backward");
    return WN_CUDA_OK;
}

__global__ void residual_forward_kernel(float *out, const float *a, const float *b, size_t n)
{
    GRID_STRIDE(i, n) out[i] = a[i] + b[i];
}

__global__ void residual_backward_kernel(float *da, float *db, const float *dout, size_t n)
{
    GRID_STRIDE(i, n)
    {
        float d = dout[i];
        da[i] += d;
        db[i] += d;
    }
}

extern "C" int wn_cuda_residual_forward(float *out, const float *a, const float *b, size_t n)
{
    ARG_CHECK(out && a && b);
    if (!n) return WN_CUDA_OK;
    residual_forward_kernel<<<grid_for(n), THREADS>>>(out, a, b, n);
    LAUNCHED("residual_forward");
    return WN_CUDA_OK;
}

extern "C" int wn_cuda_residual_backward(float *da, float *db, const float *dout, size_t n)
{
    ARG_CHECK(da && db && dout && da != db);
    if (!n) return WN_CUDA_OK;
    residual_backward_kernel<<<grid_for(n), THREADS>>>(da, db, dout, n);
    LAUNCHED("residual_backward");
    return WN_CUDA_OK;
}

/* ---- softmax + cross-entropy ------------------------------------------------
 * One block per row of logits (N, V). Each thread keeps an online
 * (max, sum exp(x - max)) over its strided entries; the block merges the
 * pairs. One read of the row for the forward, two for the backward. */
#define XENT_THREADS 512

__device__ __forceinline__ void lse_merge(float &m, float &s, float m2, float s2)
{
    float mn = fmaxf(m, m2);
    s = s * expf(m - mn) + s2 * expf(m2 - mn);
    m = mn;
}

/* (max, sum) of row x (V) over the block, returned to every thread. Starts
 * from -FLT_MAX (not -inf) so merging two empty pairs gives 0, not NaN. */
__device__ void row_lse(const float *x, int V, float *m_out, float *s_out)
{
    __shared__ float shm[XENT_THREADS / 32], shs[XENT_THREADS / 32];
    float m = -FLT_MAX, s = 0.0f;
    for (int j = threadIdx.x; j < V; j += blockDim.x) {
        float v = x[j];
        if (v > m) {
            s = s * expf(m - v) + 1.0f;
            m = v;
        } else {
            s += expf(v - m);
        }
    }
    for (int o = 16; o > 0; o >>= 1) {
        float m2 = __shfl_xor_sync(0xffffffffu, m, o), s2 = __shfl_xor_sync(0xffffffffu, s, o);
        lse_merge(m, s, m2, s2);
    }
    int warp = threadIdx.x / 32, lane = threadIdx.x % 32, nw = blockDim.x / 32;
    if (lane == 0) {
        shm[warp] = m;
        shs[warp] = s;
    }
    __syncthreads();
    m = shm[0];
    s = shs[0];
    for (int w = 1; w < nw; w++) lse_merge(m, s, shm[w], shs[w]);
    *m_out = m;
    *s_out = s;
}

__global__ void xent_forward_kernel(float *nll, const float *logits, const int *targets, int V)
{
    const float *x = logits + (size_t)blockIdx.x * V;
    float m, s;
    row_lse(x, V, &m, &s);
    if (threadIdx.x == 0) {
        int tgt = targets[blockIdx.x];
        if (tgt < 0 || tgt >= V) {
            nll[blockIdx.x] = 0.0f;
            d_bad_id = 1;
        } else {
            nll[blockIdx.x] = logf(s) + m - x[tgt];
        }
    }
}

/* dlogits may alias logits: row_lse's __syncthreads orders every read of
 * the reductions before the writes, and each thread then reads and writes
 * only its own entries. */
__global__ void xent_backward_kernel(float *dlogits, const float *logits, const int *targets, const float *weights,
                                     float scale, int V)
{
    const float *x = logits + (size_t)blockIdx.x * V;
    float *dx = dlogits + (size_t)blockIdx.x * V;
    float m, s;
    row_lse(x, V, &m, &s);
    float dl = (weights ? weights[blockIdx.x] : 1.0f) * scale, inv = 1.0f / s;
    int tgt = targets[blockIdx.x];
    for (int j = threadIdx.x; j < V; j += blockDim.x) dx[j] = dl * (expf(x[j] - m) * inv - (j == tgt ? 1.0f : 0.0f));
}

extern "C" int wn_cuda_softmax_xent_forward(float *nll, const float *logits, const int *targets, int N, int V)
{
    ARG_CHECK(nll && logits && targets && N > 0 && V > 0);
    xent_forward_kernel<<<N, XENT_THREADS>>>(nll, logits, targets, V);
    LAUNCHED("xent_forward");
    int bad, rc = take_bad_id(&bad);
    if (rc) return rc;
    if (bad) return fail(WN_CUDA_ERR_TOKEN, "softmax_xent_forward: a target is outside [0, %d)", V);
    return WN_CUDA_OK;
}

extern "C" int wn_cuda_softmax_xent_backward(float *dlogits, const float *logits, const int *targets,
                                             const float *weights, float scale, int N, int V)
{
    ARG_CHECK(dlogits && logits && targets && N > 0 && V > 0);
    xent_backward_kernel<<<N, XENT_THREADS>>>(dlogits, logits, targets, weights, scale, V);
    LAUNCHED("xent_backward");
    return WN_CUDA_OK;
}

/* ---- AdamW ------------------------------------------------------------------ */

__global__ void adamw_kernel(float *p, const float *g, float *m, float *v, size_t n, float lr, float b1, float b2,
                             float eps, float wd, float bc1, float bc2)
{
    GRID_STRIDE(i, n)
    {
        float gi = g[i];
        float mi = b1 * m[i] + (1.0f - b1) * gi;
        float vi = b2 * v[i] + (1.0f - b2) * gi * gi;
        m[i] = mi;
        v[i] = vi;
        p[i] -= lr * ((mi / bc1) / (sqrtf(vi / bc2) + eps) + wd * p[i]);
    }
}

extern "C" int wn_cuda_adamw(float *params, const float *grads, float *m, float *v, size_t n, float lr, float beta1,
                             float beta2, float eps, float weight_decay, int t, int decay)
{
    ARG_CHECK(params && grads && m && v && t >= 1);
    if (!n) return WN_CUDA_OK;
    float bc1 = (float)(1.0 - pow(beta1, t)), bc2 = (float)(1.0 - pow(beta2, t));
    adamw_kernel<<<grid_for(n), THREADS>>>(params, grads, m, v, n, lr, beta1, beta2, eps, decay ? weight_decay : 0.0f,
                                           bc1, bc2);
    LAUNCHED("adamw");
    return WN_CUDA_OK;
}

/* ---- gradient norm, scaling ------------------------------------------------- */

#define SUMSQ_MAX_BLOCKS 1024

/* part[block] = sum of x[i]^2 over the block's grid-stride elements, in
 * double: per-thread sums, then a fixed halving tree in shared memory. */
__global__ void sumsq_kernel(double *part, const float *x, size_t n)
{
    __shared__ double sh[THREADS];
    double s = 0.0;
    GRID_STRIDE(i, n)
    {
        double v = x[i];
        s += v * v;
    }
    sh[threadIdx.x] = s;
    __syncthreads();
    for (int o = THREADS / 2; o > 0; o >>= 1) {
        if (threadIdx.x < o) sh[threadIdx.x] += sh[threadIdx.x + o];
        __syncthreads();
    }
    if (threadIdx.x == 0) part[blockIdx.x] = sh[0];
}

extern "C" int wn_cuda_sumsq(double *out, const float *x, size_t n)
{
    ARG_CHECK(out && x);
    *out = 0.0;
    if (!n) return WN_CUDA_OK;
    unsigned blocks = grid_for(n);
    if (blocks > SUMSQ_MAX_BLOCKS) blocks = SUMSQ_MAX_BLOCKS; /* depends on n only: deterministic */
    float *ws;
    int rc = workspace(&ws, 2 * (size_t)blocks); /* cudaMalloc'd: aligned for doubles */
    if (rc) return rc;
    double *part = (double *)ws, host[SUMSQ_MAX_BLOCKS];
    sumsq_kernel<<<blocks, THREADS>>>(part, x, n);
    LAUNCHED("sumsq");
    CUDA_TRY(cudaMemcpy(host, part, blocks * sizeof(double), cudaMemcpyDeviceToHost));
    double s = 0.0;
    for (unsigned b = 0; b < blocks; b++) s += host[b];
    *out = s;
    return WN_CUDA_OK;
}

__global__ void scale_kernel(float *x, float k, size_t n)
{
    GRID_STRIDE(i, n) x[i] *= k;
}

extern "C" int wn_cuda_scale(float *x, float k, size_t n)
{
    ARG_CHECK(x);
    if (!n) return WN_CUDA_OK;
    scale_kernel<<<grid_for(n), THREADS>>>(x, k, n);
    LAUNCHED("scale");
    return WN_CUDA_OK;
}

/* ---- 8-bit AdamW: block-wise quantized moments ------------------------------
 * One thread block per quantization block of WN_CUDA_ADAM8_BLOCK (256)
 * elements, one element per thread: dequantize, update (the parameter moves
 * with the new, unquantized moments), block absmax of m and v (a max, so the
 * result does not depend on the order), requantize to the nearest map entry.
 * The maps (512 floats) are copied to shared memory per block; the nearest
 * entry is found by the same halving search as src/adam8.c. Every float
 * operation is an explicit round-to-nearest intrinsic, in the C reference's
 * order (wn_ref_adamw8), because nvcc would otherwise fuse a * b + c into an
 * FMA, whose single rounding moves results by an ulp and with them, at a
 * boundary between two map entries, a code. */

#define A8_BLOCK WN_CUDA_ADAM8_BLOCK
static_assert(A8_BLOCK == THREADS, "one thread per element of a quantization block");

__device__ __forceinline__ unsigned char adam8_nearest(const float *map, float x)
{
    int cnt = 0; /* entries <= x */
    for (int step = 128; step > 0; step >>= 1)
        if (map[cnt + step - 1] <= x) cnt += step;
    if (cnt == 255 && map[255] <= x) cnt = 256;
    int lo = cnt - 1;
    if (lo < 0) return 0;
    if (lo == 255) return 255;
    return __fsub_rn(x, map[lo]) <= __fsub_rn(map[lo + 1], x) ? (unsigned char)lo : (unsigned char)(lo + 1);
}

/* Max of v (>= 0, never NaN) over the block's threads; sh holds one float
 * per warp. */
__device__ float adam8_block_max(float v, float *sh)
{
    v = warp_max(v);
    if ((threadIdx.x & 31) == 0) sh[threadIdx.x >> 5] = v;
    __syncthreads();
    float r = sh[0];
    for (int w = 1; w < A8_BLOCK / 32; w++) r = fmaxf(r, sh[w]);
    return r;
}

__global__ void adamw8_kernel(float *p, const float *g, unsigned char *qm, float *sm, unsigned char *qv, float *sv,
                              const float *maps, size_t n, float lr, float b1, float b2, float eps, float wd,
                              float bc1, float bc2)
{
    __shared__ float map[512];
    __shared__ float red[2][A8_BLOCK / 32];
    map[threadIdx.x] = maps[threadIdx.x];
    map[threadIdx.x + 256] = maps[threadIdx.x + 256];
    __syncthreads();
    size_t blk = blockIdx.x, i = blk * A8_BLOCK + threadIdx.x;
    int live = i < n;
    float mj = 0.0f, vj = 0.0f;
    if (live) {
        float gj = g[i], pi = p[i];
        mj = __fadd_rn(__fmul_rn(b1, __fmul_rn(map[qm[i]], sm[blk])), __fmul_rn(__fsub_rn(1.0f, b1), gj));
        vj = __fadd_rn(__fmul_rn(b2, __fmul_rn(map[256 + qv[i]], sv[blk])),
                       __fmul_rn(__fmul_rn(__fsub_rn(1.0f, b2), gj), gj));
        float mh = __fdiv_rn(mj, bc1), vh = __fdiv_rn(vj, bc2);
        float step = __fadd_rn(__fdiv_rn(mh, __fadd_rn(__fsqrt_rn(vh), eps)), __fmul_rn(wd, pi));
        p[i] = __fsub_rn(pi, __fmul_rn(lr, step));
    }
    /* as the references' `if (x > max) max = x` from 0: NaN and padding count as 0 */
    float am = adam8_block_max(live && fabsf(mj) > 0.0f ? fabsf(mj) : 0.0f, red[0]);
    float av = adam8_block_max(live && vj > 0.0f ? vj : 0.0f, red[1]);
    if (threadIdx.x == 0) { /* every thread read the old scales before the first reduction's barrier */
        sm[blk] = am;
        sv[blk] = av;
    }
    if (live) {
        qm[i] = am > 0.0f ? adam8_nearest(map, __fdiv_rn(mj, am)) : 127; /* 127: the signed map's 0 */
        qv[i] = av > 0.0f ? adam8_nearest(map + 256, __fdiv_rn(vj, av)) : 0;
    }
}

extern "C" int wn_cuda_adamw8(float *params, const float *grads, unsigned char *qm, float *absmax_m,
                              unsigned char *qv, float *absmax_v, const float *maps, size_t n, float lr, float beta1,
                              float beta2, float eps, float weight_decay, int t, int decay)
{
    ARG_CHECK(params && grads && qm && absmax_m && qv && absmax_v && maps && t >= 1);
    if (!n) return WN_CUDA_OK;
    size_t blocks = (n + A8_BLOCK - 1) / A8_BLOCK;
    ARG_CHECK(blocks <= 0x7fffffffu);
    float bc1 = (float)(1.0 - pow(beta1, t)), bc2 = (float)(1.0 - pow(beta2, t));
    adamw8_kernel<<<(unsigned)blocks, A8_BLOCK>>>(params, grads, qm, absmax_m, qv, absmax_v, maps, n, lr, beta1,
                                                  beta2, eps, decay ? weight_decay : 0.0f, bc1, bc2);
    LAUNCHED("adamw8");
    return WN_CUDA_OK;
}
