/*
 * device_cpu.c - the CPU-only build's answers for kernels/device.h.
 */
#include "../kernels/device.h"

#if !WN_CUDA
int wn_cuda_built(void) { return 0; }
int wn_cuda_device_count(void) { return 0; }
int wn_cuda_device_describe(int i, char *buf, int n)
{
    (void)i;
    (void)buf;
    (void)n;
    return -1;
}
int wn_cuda_mem_info(size_t *free_bytes, size_t *total_bytes)
{
    (void)free_bytes;
    (void)total_bytes;
    return -1;
}
int wn_cuda_device_pci_bus_id(int i, char *buf, int n)
{
    (void)i;
    (void)buf;
    (void)n;
    return -1;
}
int wn_cuda_set_device(int i)
{
    (void)i;
    return -1;
}
int wn_cuda_get_device(void) { return -1; }
#else
typedef int wn_device_cpu_unused; /* the CUDA build takes kernels/device.cu */
#endif
