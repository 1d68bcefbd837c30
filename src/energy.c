/*
 * energy.c - RAPL readings and the labelled estimate (energy.h).
 */
#include "energy.h"

#include <stdio.h>

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

void wn_energy_write(wn_jw *w, double measured_joules, double cpu_seconds)
{
    wn_jw_key(w, "energy");
    wn_jw_obj_begin(w);
    if (measured_joules >= 0) {
        wn_jw_key(w, "joules"); wn_jw_f64(w, measured_joules);
        wn_jw_key(w, "method"); wn_jw_str(w, "rapl");
        wn_jw_key(w, "basis"); wn_jw_str(w, "package energy counters (all processes on the machine)");
    } else {
        wn_jw_key(w, "joules"); wn_jw_f64(w, cpu_seconds * WN_WATTS_PER_CORE);
        wn_jw_key(w, "method"); wn_jw_str(w, "estimate");
        wn_jw_key(w, "basis"); wn_jw_str(w, "cpu_seconds x 10 W per busy core (no readable energy counters)");
    }
    wn_jw_obj_end(w);
}
