/*
 * device.h - what the CUDA runtime sees. Built from kernels/device.cu when
 * winnow is compiled with CUDA (WN_CUDA=1); the CPU-only build answers "no
 * devices" from src/device_cpu.c. Callers never need #if.
 */
#ifndef WN_DEVICE_H
#define WN_DEVICE_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Number of usable CUDA devices (0 when none, or when the driver is absent). */
int wn_cuda_device_count(void);
/* Name and compute capability of device i into buf; returns 0 on success. */
int wn_cuda_device_describe(int i, char *buf, int n);
/* Free and total memory of the current device in bytes (cudaMemGetInfo);
 * returns 0 on success, -1 without a device or CUDA. */
int wn_cuda_mem_info(size_t *free_bytes, size_t *total_bytes);
/* 1 when this binary was built with CUDA. */
int wn_cuda_built(void);
/* Makes device i the calling thread's current device (cudaSetDevice), for
 * everything CUDA that follows: the trainer's buffers, cuBLAS, NCCL. Each MPI
 * rank of a data-parallel run picks its own this way before any other CUDA
 * call. Returns 0 on success, -1 (no such device, no CUDA). */
int wn_cuda_set_device(int i);
/* The current device (cudaGetDevice): 0 unless wn_cuda_set_device chose
 * another; -1 without CUDA. */
int wn_cuda_get_device(void);
/* PCI bus id of device i ("domain:bus:device.function", hexadecimal) into
 * buf; returns 0 on success. NVML names GPUs by it (src/energy.c). */
int wn_cuda_device_pci_bus_id(int i, char *buf, int n);

#ifdef __cplusplus
}
#endif

#endif
