/*
 * energy.h - what a run costs in energy, measured where the machine says and
 * estimated (and labelled so) where it does not.
 *
 * Measured: the RAPL package counters Linux exposes under
 * /sys/class/powercap/intel-rapl:N/energy_uj (Intel, and AMD through the same
 * driver), summed over packages, with wrap-around from max_energy_range_uj.
 * They are often root-only or absent in VMs (as on the machines this project
 * is built on). Estimated otherwise: CPU-seconds x WN_WATTS_PER_CORE, a
 * typical server core's share of package power under load; every report
 * says which it is.
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
/* Writes "energy": {"joules", "method": "rapl"|"estimate", "basis"}: the
 * measured joules when measured >= 0, else the estimate from cpu_seconds. */
void wn_energy_write(wn_jw *w, double measured_joules, double cpu_seconds);

#endif
