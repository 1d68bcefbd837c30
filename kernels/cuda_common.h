/*
 * cuda_common.h - what every kernels/*.cu module repeats otherwise: its
 * last-error message and the macros that fill it (CUDA_TRY, LAUNCHED,
 * ARG_CHECK, CUBLAS_TRY), and the dlopen'ed cuBLAS entry points
 * (wn_cublas_load, defined once in gpt_kernels.cu).
 *
 * Include from a .cu file only. Each including file gets its own static
 * g_msg and fail(): the modules keep separate last-error messages (their
 * *_last_error functions), as their headers promise.
 */
#ifndef WN_CUDA_COMMON_H
#define WN_CUDA_COMMON_H

#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <stdarg.h>
#include <stdio.h>

#include "gpt_kernels.h" /* WN_CUDA_* statuses */

static char g_msg[512];

static int fail(int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(g_msg, sizeof g_msg, fmt, ap);
    va_end(ap);
    return code;
}

#define CUDA_TRY(call)                                                                                   \
    do {                                                                                                 \
        cudaError_t e_ = (call);                                                                         \
        if (e_ != cudaSuccess)                                                                           \
            return fail(e_ == cudaErrorMemoryAllocation ? WN_CUDA_ERR_NOMEM : WN_CUDA_ERR_RUNTIME,       \
                        "%s: %s (%s:%d)", #call, cudaGetErrorString(e_), __FILE__, __LINE__);           \
    } while (0)
/* After a kernel launch: catches bad configurations; faults inside a kernel
 * surface at the next synchronizing call. */
#define LAUNCHED(name)                                                                                   \
    do {                                                                                                 \
        cudaError_t e_ = cudaGetLastError();                                                             \
        if (e_ != cudaSuccess)                                                                           \
            return fail(WN_CUDA_ERR_RUNTIME, "%s: launch failed: %s", name, cudaGetErrorString(e_));     \
    } while (0)
#define ARG_CHECK(cond)                                                                                  \
    do {                                                                                                 \
        if (!(cond)) return fail(WN_CUDA_ERR_ARG, "%s: bad argument: %s", __func__, #cond);             \
    } while (0)
/* needs `cb`, the module's pointer to the loaded entry points */
#define CUBLAS_TRY(call)                                                                                 \
    do {                                                                                                 \
        cublasStatus_t s_ = (call);                                                                      \
        if (s_ != CUBLAS_STATUS_SUCCESS)                                                                 \
            return fail(WN_CUDA_ERR_CUBLAS, "%s: %s (%s:%d)", #call, cb->status_string(s_), __FILE__,    \
                        __LINE__);                                                                       \
    } while (0)

/* The cuBLAS entry points winnow uses, from dlopen. */
typedef struct {
    void *lib;
    decltype(&cublasCreate_v2) create;
    decltype(&cublasDestroy_v2) destroy;
    decltype(&cublasSetMathMode) set_math_mode;
    decltype(&cublasSgemm_v2) sgemm;
    decltype(&cublasSgemmStridedBatched) sgemm_batched;
    decltype(&cublasGetStatusString) status_string;
    /* spelled out: C++ sees an overloaded cublasGemmEx */
    cublasStatus_t (*gemm_ex)(cublasHandle_t, cublasOperation_t, cublasOperation_t, int, int, int, const void *,
                              const void *, cudaDataType, int, const void *, cudaDataType, int, const void *, void *,
                              cudaDataType, int, cublasComputeType_t, cublasGemmAlgo_t);
} wn_cublas_fns;

/* Opens the cuBLAS of the major version this was compiled against (once per
 * process; by soname, then at the usual CUDA prefix) and points *out at its
 * entry points. Returns WN_CUDA_OK, or WN_CUDA_ERR_CUBLAS with the reason
 * copied into msg (n bytes). */
int wn_cublas_load(const wn_cublas_fns **out, char *msg, size_t n);

#endif
