/*
 * energy.c - RAPL readings, NVML readings and the labelled estimate
 * (energy.h).
 *
 * NVML is declared here, not included: the few entry points below, typed
 * as the NVML API reference documents them (every call returns an
 * nvmlReturn_t, an enum whose success value is 0; a device handle is an
 * opaque pointer). Leaving nvml.h out keeps the build free of the NVIDIA
 * headers, which the CUDA toolkit does not always ship.
 */
#include "energy.h"

#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../kernels/device.h"

static int read_u64(const char *path, uint64_t *v)
{
    FILE *f = fopen(path, "r");
    if (!f) return 0;
    unsigned long long x;
    int ok = fscanf(f, "%llu", &x) == 1;
    fclose(f);
    if (ok) *v = x;
    return ok;
}

int wn_energy_rapl(uint64_t *uj)
{
    uint64_t sum = 0;
    int n = 0;
    for (int i = 0; i < 16; i++) {
        char path[128];
        uint64_t v;
        snprintf(path, sizeof path, "/sys/class/powercap/intel-rapl:%d/energy_uj", i);
        if (!read_u64(path, &v)) break;
        sum += v;
        n++;
    }
    if (n) *uj = sum;
    return n > 0;
}

double wn_energy_rapl_joules(uint64_t before, uint64_t after)
{
    if (after >= before) return (double)(after - before) / 1e6;
    uint64_t range = 0;
    if (!read_u64("/sys/class/powercap/intel-rapl:0/max_energy_range_uj", &range)) return 0;
    return (double)(range - before + after) / 1e6;
}

/* ---- NVML ------------------------------------------------------------------ */

#define MAX_GPUS 64
#define NVML_LIB "libnvidia-ml.so.1"

typedef int nvml_ret;  /* nvmlReturn_t; 0 = NVML_SUCCESS */
typedef void *nvml_dev; /* nvmlDevice_t */

static struct {
    int tried; /* open_nvml ran (its outcome holds until wn_energy_gpu_close) */
    int ready; /* ... and succeeded */
    void *lib;
    nvml_ret (*init)(void);
    nvml_ret (*shutdown)(void);
    nvml_ret (*count)(unsigned *n);
    nvml_ret (*by_index)(unsigned i, nvml_dev *d);
    nvml_ret (*by_pci)(const char *bus_id, nvml_dev *d);
    nvml_ret (*energy)(nvml_dev d, unsigned long long *mj);
    const char *(*error_string)(nvml_ret r);
    nvml_dev dev[MAX_GPUS];
    int n_dev;
    char why[256];
} nv;

static const char *nvml_error(nvml_ret r)
{
    const char *s = nv.error_string ? nv.error_string(r) : NULL;
    return s ? s : "unknown NVML error";
}

/* The handles of the GPUs this process can use (energy.h): CUDA's devices
 * by PCI bus id, else every GPU NVML lists. */
static int find_devices(void)
{
    int n_cuda = wn_cuda_device_count();
    nvml_ret r;
    if (n_cuda > 0) {
        for (int i = 0; i < n_cuda && i < MAX_GPUS; i++) {
            char bus[64];
            if (wn_cuda_device_pci_bus_id(i, bus, (int)sizeof bus)) {
                snprintf(nv.why, sizeof nv.why, "no PCI bus id for CUDA device %d", i);
                return 0;
            }
            if ((r = nv.by_pci(bus, &nv.dev[nv.n_dev]))) {
                snprintf(nv.why, sizeof nv.why, "NVML has no GPU at PCI bus id %s (CUDA device %d): %s", bus, i,
                         nvml_error(r));
                return 0;
            }
            nv.n_dev++;
        }
        return 1;
    }
    unsigned n = 0;
    if ((r = nv.count(&n))) {
        snprintf(nv.why, sizeof nv.why, "nvmlDeviceGetCount_v2: %s", nvml_error(r));
        return 0;
    }
    if (!n) {
        snprintf(nv.why, sizeof nv.why, "NVML lists no GPU");
        return 0;
    }
    for (unsigned i = 0; i < n && i < MAX_GPUS; i++) {
        if ((r = nv.by_index(i, &nv.dev[nv.n_dev]))) {
            snprintf(nv.why, sizeof nv.why, "nvmlDeviceGetHandleByIndex_v2(%u): %s", i, nvml_error(r));
            return 0;
        }
        nv.n_dev++;
    }
    return 1;
}

/* Loads the library (WINNOW_TEST_NVML_LIB names another, for the tests),
 * initializes NVML and finds the devices. */
static int open_nvml(void)
{
    const char *name = getenv("WINNOW_TEST_NVML_LIB");
    if (!name || !*name) name = NVML_LIB;
    nv.lib = dlopen(name, RTLD_NOW | RTLD_LOCAL);
    if (!nv.lib) {
        snprintf(nv.why, sizeof nv.why, "cannot load %s (no NVIDIA driver on this machine?)", name);
        return 0;
    }
#define SYM(field, sym)                                                                  \
    if (!(*(void **)&nv.field = dlsym(nv.lib, #sym))) {                                  \
        snprintf(nv.why, sizeof nv.why, "%s has no %s (driver too old?)", name, #sym);   \
        return 0;                                                                        \
    }
    SYM(init, nvmlInit_v2)
    SYM(shutdown, nvmlShutdown)
    SYM(count, nvmlDeviceGetCount_v2)
    SYM(by_index, nvmlDeviceGetHandleByIndex_v2)
    SYM(by_pci, nvmlDeviceGetHandleByPciBusId_v2)
    SYM(energy, nvmlDeviceGetTotalEnergyConsumption)
    SYM(error_string, nvmlErrorString)
#undef SYM
    nvml_ret r = nv.init();
    if (r) {
        snprintf(nv.why, sizeof nv.why, "nvmlInit_v2: %s", nvml_error(r));
        nv.shutdown = NULL; /* nothing to shut down */
        return 0;
    }
    return find_devices();
}

int wn_energy_gpu(uint64_t *mj)
{
    if (!nv.tried) {
        nv.tried = 1;
        nv.ready = open_nvml();
        if (!nv.ready) nv.n_dev = 0;
    }
    if (!nv.ready) return 0;
    uint64_t sum = 0;
    for (int i = 0; i < nv.n_dev; i++) {
        unsigned long long v = 0;
        nvml_ret r = nv.energy(nv.dev[i], &v);
        if (r) { /* NOT_SUPPORTED before Volta; a partial sum would undercount */
            snprintf(nv.why, sizeof nv.why, "nvmlDeviceGetTotalEnergyConsumption (GPU %d): %s", i, nvml_error(r));
            return 0;
        }
        sum += v;
    }
    nv.why[0] = 0;
    *mj = sum;
    return 1;
}

double wn_energy_gpu_joules(uint64_t before, uint64_t after)
{
    return after >= before ? (double)(after - before) / 1e3 : -1;
}

int wn_energy_gpu_count(void) { return nv.ready ? nv.n_dev : 0; }

const char *wn_energy_gpu_why(void) { return nv.why; }

void wn_energy_gpu_close(void)
{
    if (nv.shutdown) nv.shutdown();
    if (nv.lib) dlclose(nv.lib);
    memset(&nv, 0, sizeof nv);
}

wn_energy_gpu_mark wn_energy_gpu_start(void)
{
    wn_energy_gpu_mark m = {0, 0};
    m.ok = wn_energy_gpu(&m.mj);
    return m;
}

double wn_energy_gpu_since(const wn_energy_gpu_mark *m)
{
    uint64_t now;
    if (!m->ok || !wn_energy_gpu(&now)) return -1;
    return wn_energy_gpu_joules(m->mj, now);
}

/* ---- the report object ------------------------------------------------------ */

void wn_energy_write_parts(wn_jw *w, double measured_joules, double cpu_seconds, const wn_energy_gpu_part *gpu)
{
    int rapl = measured_joules >= 0, gpu_measured = gpu && gpu->joules >= 0;
    double cpu_j = rapl ? measured_joules : cpu_seconds * WN_WATTS_PER_CORE;
    wn_jw_key(w, "energy");
    wn_jw_obj_begin(w);
    wn_jw_key(w, "joules"); wn_jw_f64(w, cpu_j + (gpu_measured ? gpu->joules : 0));
    wn_jw_key(w, "method"); wn_jw_str(w, rapl ? "rapl" : "estimate");
    wn_jw_key(w, "basis");
    wn_jw_str(w, rapl ? "package energy counters (all processes on the machine)"
                      : "cpu_seconds x 10 W per busy core (no readable energy counters)");
    if (gpu) {
        wn_jw_key(w, "cpu_joules"); wn_jw_f64(w, cpu_j);
        if (gpu_measured) {
            wn_jw_key(w, "gpu_joules"); wn_jw_f64(w, gpu->joules);
        }
        wn_jw_key(w, "gpu_method"); wn_jw_str(w, gpu_measured ? "nvml" : "none");
        wn_jw_key(w, "gpu_basis");
        wn_jw_str(w, gpu_measured ? "NVML total energy counters of the GPUs used, over gpu_seconds (whole boards, "
                                    "all processes on them)"
                                  : "no readable NVML energy counter (no NVIDIA driver library, or a GPU older "
                                    "than Volta): GPU energy not counted in joules");
        wn_jw_key(w, "gpu_seconds"); wn_jw_f64(w, gpu->seconds);
    }
    wn_jw_obj_end(w);
}

void wn_energy_write(wn_jw *w, double measured_joules, double cpu_seconds)
{
    wn_energy_write_parts(w, measured_joules, cpu_seconds, NULL);
}

int wn_energy_read_gpu(const char *obj, size_t n, double *seconds, double *joules)
{
    wn_span en, v;
    if (!wn_json_get(obj, n, "energy", &en) || en.p[0] != '{' || !wn_json_get(en.p, en.n, "gpu_seconds", &v) ||
        !wn_json_to_double(v, seconds))
        return 0;
    *joules = -1;
    if (wn_json_get(en.p, en.n, "gpu_joules", &v) && !wn_json_to_double(v, joules)) *joules = -1;
    return 1;
}
