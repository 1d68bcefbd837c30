/*
 * test_energy.c - unit tests for energy.c: the report object's exact shape
 * without a GPU part, with a measured one and with an unmeasured one, and
 * reading it back; the NVML readings against a missing library and against
 * tests/unit/fake_nvml (build/san/fake_nvml.so: devices, sums, failures).
 */
#include "../test.h"
#include "energy.h"

#include <math.h>
#include <stdlib.h>
#include <unistd.h>

#define FAKE_NVML "./build/san/fake_nvml.so"

/* wn_energy_write_parts inside an object, compact, as a C string (static). */
static const char *write_obj(double measured, double cpu_s, const wn_energy_gpu_part *gpu)
{
    static char out[2048];
    wn_buf b = {0};
    wn_jw w;
    wn_jw_init(&w, &b, 0);
    wn_jw_obj_begin(&w);
    wn_energy_write_parts(&w, measured, cpu_s, gpu);
    wn_jw_obj_end(&w);
    snprintf(out, sizeof out, "%.*s", (int)b.len, b.p ? b.p : "");
    wn_buf_free(&b);
    return out;
}

TEST(energy_write_without_gpu)
{
    /* exactly the keys reports had before GPU parts existed */
    CHECK_EQ_STR(write_obj(-1, 2.5, NULL),
                 "{\"energy\":{\"joules\":25,\"method\":\"estimate\",\"basis\":\"cpu_seconds x 10 W per busy core "
                 "(no readable energy counters)\"}}");
    CHECK_EQ_STR(write_obj(120.5, 2.5, NULL),
                 "{\"energy\":{\"joules\":120.5,\"method\":\"rapl\",\"basis\":\"package energy counters (all "
                 "processes on the machine)\"}}");
    /* the old entry point writes the same */
    wn_buf b = {0};
    wn_jw w;
    wn_jw_init(&w, &b, 0);
    wn_jw_obj_begin(&w);
    wn_energy_write(&w, -1, 2.5);
    wn_jw_obj_end(&w);
    CHECK(b.p && !strcmp(b.p, write_obj(-1, 2.5, NULL)));
    wn_buf_free(&b);
    double s, j;
    const char *o = write_obj(-1, 2.5, NULL);
    CHECK(!wn_energy_read_gpu(o, strlen(o), &s, &j));
}

TEST(energy_write_gpu_measured)
{
    wn_energy_gpu_part g = {12.5, 300.25};
    CHECK_EQ_STR(write_obj(-1, 2, &g),
                 "{\"energy\":{\"joules\":320.25,\"method\":\"estimate\",\"basis\":\"cpu_seconds x 10 W per busy "
                 "core (no readable energy counters)\",\"cpu_joules\":20,\"gpu_joules\":300.25,\"gpu_method\":"
                 "\"nvml\",\"gpu_basis\":\"NVML total energy counters of the GPUs used, over gpu_seconds (whole "
                 "boards, all processes on them)\",\"gpu_seconds\":12.5}}");
    /* with RAPL the total is still CPU part + GPU part */
    const char *o = write_obj(50, 2, &g);
    wn_span en, v;
    double x = 0;
    CHECK(wn_json_get(o, strlen(o), "energy", &en));
    CHECK(wn_json_get(en.p, en.n, "joules", &v) && wn_json_to_double(v, &x) && x == 350.25);
    CHECK(wn_json_get(en.p, en.n, "cpu_joules", &v) && wn_json_to_double(v, &x) && x == 50);
    CHECK(wn_json_get(en.p, en.n, "method", &v) && v.n == 6 && !memcmp(v.p, "\"rapl\"", 6));
    double s = 0, j = 0;
    CHECK(wn_energy_read_gpu(o, strlen(o), &s, &j));
    CHECK(s == 12.5 && j == 300.25);
    /* 0 J measured is measured */
    g.joules = 0;
    o = write_obj(-1, 0, &g);
    CHECK(strstr(o, "\"gpu_joules\":0,") && strstr(o, "\"gpu_method\":\"nvml\""));
}

TEST(energy_write_gpu_unmeasured)
{
    wn_energy_gpu_part g = {3, -1};
    const char *o = write_obj(-1, 1, &g);
    CHECK_EQ_STR(o, "{\"energy\":{\"joules\":10,\"method\":\"estimate\",\"basis\":\"cpu_seconds x 10 W per busy "
                    "core (no readable energy counters)\",\"cpu_joules\":10,\"gpu_method\":\"none\",\"gpu_basis\":"
                    "\"no readable NVML energy counter (no NVIDIA driver library, or a GPU older than Volta): GPU "
                    "energy not counted in joules\",\"gpu_seconds\":3}}");
    double s = 0, j = 0;
    CHECK(wn_energy_read_gpu(o, strlen(o), &s, &j));
    CHECK(s == 3 && j == -1);
}

TEST(energy_read_gpu_rejects)
{
    static const char *bad[] = {"{}", "{\"energy\":1}", "{\"energy\":{\"joules\":1}}",
                                "{\"energy\":{\"gpu_seconds\":\"x\"}}", "{\"energy\":[1]}"};
    for (size_t i = 0; i < WN_ARRAY_LEN(bad); i++) {
        double s, j;
        CHECK(!wn_energy_read_gpu(bad[i], strlen(bad[i]), &s, &j));
    }
    /* a damaged gpu_joules reads as not measured */
    const char *o = "{\"energy\":{\"gpu_seconds\":2,\"gpu_joules\":\"x\"}}";
    double s = 0, j = 0;
    CHECK(wn_energy_read_gpu(o, strlen(o), &s, &j) && s == 2 && j == -1);
}

TEST(energy_gpu_joules)
{
    CHECK(wn_energy_gpu_joules(1000, 4500) == 3.5);
    CHECK(wn_energy_gpu_joules(5, 5) == 0);
    CHECK(wn_energy_gpu_joules(4500, 1000) == -1); /* driver reloaded */
}

/* Points the NVML loader at lib with the fake's settings, from a fresh start. */
static void use_nvml(const char *lib, const char *gpus, const char *fail)
{
    wn_energy_gpu_close();
    setenv("WINNOW_TEST_NVML_LIB", lib, 1);
    if (gpus) setenv("FAKE_NVML_GPUS", gpus, 1);
    else unsetenv("FAKE_NVML_GPUS");
    if (fail) setenv("FAKE_NVML_FAIL", fail, 1);
    else unsetenv("FAKE_NVML_FAIL");
}

static void nvml_done(void)
{
    wn_energy_gpu_close();
    unsetenv("WINNOW_TEST_NVML_LIB");
    unsetenv("FAKE_NVML_GPUS");
    unsetenv("FAKE_NVML_FAIL");
}

TEST(energy_gpu_without_nvml)
{
    use_nvml("./build/no-such-dir/libnvidia-ml.so.1", NULL, NULL);
    uint64_t mj = 77;
    CHECK(!wn_energy_gpu(&mj));
    CHECK(mj == 77);
    CHECK(strstr(wn_energy_gpu_why(), "cannot load") != NULL);
    CHECK_EQ_INT(wn_energy_gpu_count(), 0);
    wn_energy_gpu_mark m = wn_energy_gpu_start();
    CHECK(!m.ok);
    CHECK(wn_energy_gpu_since(&m) == -1);
    nvml_done();
}

TEST(energy_gpu_fake_nvml)
{
    if (access(FAKE_NVML, R_OK)) SKIP(FAKE_NVML " not built (make build/san/fake_nvml.so)");
    use_nvml(FAKE_NVML, "3", NULL);
    uint64_t a = 0, b = 0;
    CHECK(wn_energy_gpu(&a));
    CHECK_EQ_INT(wn_energy_gpu_count(), 3); /* a CPU-only build: every GPU NVML lists */
    CHECK_EQ_STR(wn_energy_gpu_why(), "");
    CHECK(wn_energy_gpu(&b));
    CHECK_EQ_INT(b - a, 1000 + 2000 + 3000); /* the sum over the devices' increments */
    wn_energy_gpu_mark m = wn_energy_gpu_start();
    CHECK(m.ok);
    CHECK(wn_energy_gpu_since(&m) == 6.0);
    nvml_done();

    use_nvml(FAKE_NVML, "0", NULL);
    CHECK(!wn_energy_gpu(&a));
    CHECK(strstr(wn_energy_gpu_why(), "no GPU") != NULL);
    nvml_done();

    use_nvml(FAKE_NVML, NULL, "init");
    CHECK(!wn_energy_gpu(&a));
    CHECK(strstr(wn_energy_gpu_why(), "nvmlInit_v2: Uninitialized") != NULL);
    nvml_done();

    use_nvml(FAKE_NVML, NULL, "energy"); /* before Volta */
    CHECK(!wn_energy_gpu(&a));
    CHECK(strstr(wn_energy_gpu_why(), "nvmlDeviceGetTotalEnergyConsumption (GPU 0): Not Supported") != NULL);
    CHECK_EQ_INT(wn_energy_gpu_count(), 2); /* found, but unreadable */
    nvml_done();
}
