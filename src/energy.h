/*
 * energy.h - what a run costs in energy, measured where the machine says and
 * estimated (and labelled so) where it does not.
 *
 * CPU side. Measured: the RAPL package counters Linux exposes under
 * /sys/class/powercap/intel-rapl:N/energy_uj (Intel, and AMD through the
 * same driver), summed over packages, with wrap-around from
 * max_energy_range_uj. They are often root-only or absent in VMs (as on the
 * machines this project is built on). Estimated otherwise: CPU-seconds x
 * WN_WATTS_PER_CORE, a typical server core's share of package power under
 * load; every report says which it is.
 *
 * GPU side. Measured only: NVML's total-energy counter of each GPU
 * (nvmlDeviceGetTotalEnergyConsumption: millijoules since the driver was
 * loaded, Volta and newer), from libnvidia-ml.so.1, which the NVIDIA driver
 * installs. It is opened with dlopen at the first reading and never linked,
 * so a build or a machine without it works the same and only lacks the GPU
 * figures. The GPUs summed are the ones this process can use: the CUDA
 * runtime's devices, matched to NVML's by PCI bus id (NVML itself lists
 * every GPU of the machine whatever CUDA_VISIBLE_DEVICES says); when the
 * runtime sees none (a CPU-only build) every GPU NVML lists. The counter
 * is the whole board's, all processes on it included; the driver refreshes
 * it every few tens of milliseconds, so an interval much shorter than that
 * reads coarsely. Not estimated: without a readable counter a report says
 * "gpu_method": "none" and leaves the GPU's joules out.
 *
 * The report object (wn_energy_write_parts), "energy": {
 *   "joules"      the total: CPU part + GPU part (when measured),
 *   "method"      the CPU part's: "rapl" | "estimate", with "basis" saying how,
 *   and, only when the work ran on a GPU:
 *   "cpu_joules"  the CPU part,
 *   "gpu_joules"  the GPU part (absent when not measured),
 *   "gpu_method"  "nvml" | "none", with "gpu_basis" saying what it covers,
 *   "gpu_seconds" wall seconds with work on the GPU }.
 *
 * The GPU readings keep process-wide state (the library and the device
 * handles); call them from one thread (the one driving a run or training).
 */
#ifndef WN_ENERGY_H
#define WN_ENERGY_H

#include "json.h"
#include "wn.h"

#define WN_WATTS_PER_CORE 10.0

/* A reading of the package counters: 1 and *uj (microjoules) when readable. */
int wn_energy_rapl(uint64_t *uj);
/* Joules between two readings (counters wrap at their range). */
double wn_energy_rapl_joules(uint64_t before, uint64_t after);

/* A reading of the GPUs' counters: 1 and *mj (millijoules, summed over the
 * GPUs above) when every one of them was read; 0 when NVML is absent,
 * there is no GPU, or a counter cannot be read (then wn_energy_gpu_why
 * says which). The first call opens NVML; a failure to open is final
 * until wn_energy_gpu_close. */
int wn_energy_gpu(uint64_t *mj);
/* Joules between two readings; -1 when the counters went backwards (the
 * driver was reloaded in between). */
double wn_energy_gpu_joules(uint64_t before, uint64_t after);
/* GPUs whose counters wn_energy_gpu sums (0 until NVML was opened and found
 * them, or when it could not be). */
int wn_energy_gpu_count(void);
/* Why the last wn_energy_gpu failed ("" when it did not). */
const char *wn_energy_gpu_why(void);
/* Shuts NVML down and unloads it; the next reading opens it again. Tests
 * use it; a run leaves NVML open until the process ends. */
void wn_energy_gpu_close(void);

/* A start point for measuring an interval on the GPUs. */
typedef struct {
    int ok; /* the counters were read */
    uint64_t mj;
} wn_energy_gpu_mark;

wn_energy_gpu_mark wn_energy_gpu_start(void);
/* Joules since the mark, or -1 when either reading failed. */
double wn_energy_gpu_since(const wn_energy_gpu_mark *m);

/* The GPU side of a report. */
typedef struct {
    double seconds; /* wall seconds with work on the GPU */
    double joules;  /* measured with NVML over them; < 0: not measured */
} wn_energy_gpu_part;

/* Writes "energy" (above): the CPU part is measured_joules when >= 0 (RAPL)
 * else the estimate from cpu_seconds; gpu NULL when no work ran on a GPU
 * (then the object is exactly {"joules", "method", "basis"}). */
void wn_energy_write_parts(wn_jw *w, double measured_joules, double cpu_seconds, const wn_energy_gpu_part *gpu);
/* The same without a GPU part. */
void wn_energy_write(wn_jw *w, double measured_joules, double cpu_seconds);

/* Reads the GPU part of the "energy" object of a report (obj[0..n), a JSON
 * object): 1 with *seconds and *joules (-1 when not measured) when it has
 * one, else 0. */
int wn_energy_read_gpu(const char *obj, size_t n, double *seconds, double *joules);

#endif
