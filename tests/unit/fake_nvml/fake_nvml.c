/*
 * fake_nvml.c - a stand-in for libnvidia-ml.so.1 with the entry points
 * src/energy.c opens, so its NVML path runs on machines without a GPU
 * (tests/unit/test_energy.c loads it through WINNOW_TEST_NVML_LIB). Built
 * as build/san/fake_nvml.so; not part of winnow.
 *
 * FAKE_NVML_GPUS (default 2) devices; device i's energy counter starts at
 * (i + 1) * 10^6 mJ and grows by (i + 1) * 1000 mJ at every reading, so two
 * readings of all devices differ by 1000 * n (n + 1) / 2 mJ.
 * FAKE_NVML_FAIL=init makes nvmlInit_v2 fail; =energy makes the energy
 * counter unsupported (as on GPUs older than Volta). Read at nvmlInit_v2.
 */
#include <stdlib.h>
#include <string.h>

enum { OK = 0, UNINITIALIZED = 1, INVALID_ARGUMENT = 2, NOT_SUPPORTED = 3, NOT_FOUND = 6, MAX_DEV = 8 };

static int n_dev, fail_energy, inited;
static unsigned long long counter[MAX_DEV];
static int dev_ids[MAX_DEV]; /* the handles point here */

int nvmlInit_v2(void)
{
    const char *f = getenv("FAKE_NVML_FAIL"), *g = getenv("FAKE_NVML_GPUS");
    if (f && !strcmp(f, "init")) return UNINITIALIZED;
    n_dev = g ? atoi(g) : 2;
    if (n_dev < 0 || n_dev > MAX_DEV) n_dev = MAX_DEV;
    fail_energy = f && !strcmp(f, "energy");
    for (int i = 0; i < MAX_DEV; i++) {
        counter[i] = (unsigned long long)(i + 1) * 1000000ull;
        dev_ids[i] = i;
    }
    inited = 1;
    return OK;
}

int nvmlShutdown(void)
{
    inited = 0;
    return OK;
}

int nvmlDeviceGetCount_v2(unsigned *n)
{
    if (!inited) return UNINITIALIZED;
    *n = (unsigned)n_dev;
    return OK;
}

int nvmlDeviceGetHandleByIndex_v2(unsigned i, void **dev)
{
    if (!inited) return UNINITIALIZED;
    if (i >= (unsigned)n_dev) return INVALID_ARGUMENT;
    *dev = &dev_ids[i];
    return OK;
}

int nvmlDeviceGetHandleByPciBusId_v2(const char *bus, void **dev)
{
    (void)bus;
    (void)dev;
    return inited ? NOT_FOUND : UNINITIALIZED;
}

int nvmlDeviceGetTotalEnergyConsumption(void *dev, unsigned long long *mj)
{
    if (!inited) return UNINITIALIZED;
    if (fail_energy) return NOT_SUPPORTED;
    int i = *(int *)dev;
    counter[i] += (unsigned long long)(i + 1) * 1000ull;
    *mj = counter[i];
    return OK;
}

const char *nvmlErrorString(int r)
{
    switch (r) {
    case OK: return "Success";
    case UNINITIALIZED: return "Uninitialized";
    case INVALID_ARGUMENT: return "Invalid Argument";
    case NOT_SUPPORTED: return "Not Supported";
    case NOT_FOUND: return "Not Found";
    default: return "Unknown Error";
    }
}
