/*
 * device.cu - CUDA runtime queries for device selection (`device: auto`)
 * and `winnow --version`, and the PCI bus ids that match CUDA's devices to
 * NVML's (src/energy.c). No kernels yet: the scoring kernels of later
 * stages live beside this file, each with a CPU reference.
 */
#include <cuda_runtime.h>
#include <stdio.h>

#include "device.h"

extern "C" int wn_cuda_built(void) { return 1; }

extern "C" int wn_cuda_device_count(void)
{
    int n = 0;
    if (cudaGetDeviceCount(&n) != cudaSuccess) {
        cudaGetLastError(); /* clear the sticky error: no driver or no device */
        return 0;
    }
    return n;
}

extern "C" int wn_cuda_device_describe(int i, char *buf, int n)
{
    cudaDeviceProp p;
    if (cudaGetDeviceProperties(&p, i) != cudaSuccess) return -1;
    snprintf(buf, (size_t)n, "%s (compute %d.%d, %.1f GiB)", p.name, p.major, p.minor,
             (double)p.totalGlobalMem / (1024.0 * 1024.0 * 1024.0));
    return 0;
}

extern "C" int wn_cuda_mem_info(size_t *free_bytes, size_t *total_bytes)
{
    size_t f = 0, t = 0;
    if (cudaMemGetInfo(&f, &t) != cudaSuccess) {
        cudaGetLastError();
        return -1;
    }
    if (free_bytes) *free_bytes = f;
    if (total_bytes) *total_bytes = t;
    return 0;
}

extern "C" int wn_cuda_device_pci_bus_id(int i, char *buf, int n)
{
    if (cudaDeviceGetPCIBusId(buf, n, i) != cudaSuccess) {
        cudaGetLastError();
        return -1;
    }
    return 0;
}

extern "C" int wn_cuda_set_device(int i)
{
    if (cudaSetDevice(i) != cudaSuccess) {
        cudaGetLastError();
        return -1;
    }
    return 0;
}

extern "C" int wn_cuda_get_device(void)
{
    int d = 0;
    if (cudaGetDevice(&d) != cudaSuccess) {
        cudaGetLastError();
        return -1;
    }
    return d;
}
