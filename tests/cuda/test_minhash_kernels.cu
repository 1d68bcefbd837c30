/*
 * test_minhash_kernels.cu - the MinHash signature kernel
 * (kernels/minhash_kernels.cu) against its CPU reference (wn_mh_signatures,
 * src/minhash.c). Linked into build/cuda/test_kernels, whose main calls
 * wn_test_minhash_kernels(), so `make test-cuda` and CI's
 * `./build/cuda/test_kernels` run it.
 *
 * Part 1, host only (runs everywhere): the reference against a brute force
 * written here ((a (h mod p) + b) mod p by 128-bit %, minimum over the
 * distinct hashes) on a few documents.
 * Part 2, needs a GPU: batches of documents with 0, 1, 3, 1023, 1024, 1025
 * and 5000 shingles (empty documents, a tile boundary, several tiles) and
 * random sizes, hashes drawn at random and from the edges (0, p - 1, p,
 * p + 1, 2^64 - 1), for 1, 112, 127, 128, 129, 256 and 4096 permutations.
 * The signatures must be IDENTICAL (integer math); the first mismatches are
 * printed. A bad argument must come back as WN_CUDA_ERR_ARG. Without a GPU
 * part 2 prints a SKIP line. --bench times a batch of 20,000 documents of
 * 500 shingles x 112 permutations on the device (with transfers) and on one
 * CPU core.
 */
#include <cuda_runtime.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "device.h"
#include "minhash.h"
#include "minhash_kernels.h"

int wn_test_minhash_kernels(int want_bench);

static int m_pass, m_fail;

static void result(const char *name, int ok)
{
    if (ok) m_pass++;
    else m_fail++;
    printf("%s %s\n", ok ? "ok  " : "FAIL", name);
}

static uint64_t m_rng = 0x6d696e68617368ull;

static uint64_t rnd_hash(void)
{
    static const uint64_t edge[] = {0, 1, WN_MH_P - 1, WN_MH_P, WN_MH_P + 1, UINT64_MAX, UINT64_MAX - 1, 1ull << 61};
    uint64_t r = wn_splitmix64(&m_rng);
    return r % 50 == 0 ? edge[(r >> 8) % 8] : wn_splitmix64(&m_rng);
}

static void *xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p) {
        fprintf(stderr, "test_minhash_kernels: out of host memory\n");
        exit(2);
    }
    return p;
}

/* ---- part 1: the reference on the host --------------------------------------------- */

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static void host_checks(void)
{
    enum { K = 40 };
    uint64_t a[K], b[K];
    wn_mh_perms(7, K, a, b);
    uint64_t off[5] = {0, 0, 1, 9, 300}, h[300];
    for (int i = 0; i < 300; i++) h[i] = i % 11 == 5 ? h[i - 1] : rnd_hash();
    uint64_t sig[4 * K];
    wn_mh_signatures(h, off, 4, a, b, K, sig);
    int ok = 1;
    for (int d = 0; d < 4; d++) {
        uint64_t set[300];
        size_t n = off[d + 1] - off[d];
        memcpy(set, h + off[d], n * sizeof *set);
        qsort(set, n, sizeof *set, cmp_u64);
        for (int k = 0; k < K; k++) {
            uint64_t m = UINT64_MAX;
            for (size_t i = 0; i < n; i++) {
                uint64_t v = (uint64_t)(((unsigned __int128)a[k] * (set[i] % WN_MH_P) + b[k]) % WN_MH_P);
                if (v < m) m = v;
            }
            ok &= sig[d * K + k] == m;
        }
    }
    result("wn_mh_signatures vs brute force (0, 1, 8, 291 shingles, 40 permutations)", ok);
}

/* ---- part 2: the kernel ------------------------------------------------------------------ */

/* A batch of ndocs documents: fixed sizes first, then random ones up to max. */
static uint64_t *make_batch(int64_t ndocs, const size_t *fixed, int nfixed, size_t max, uint64_t **off_out)
{
    uint64_t *off = (uint64_t *)xmalloc((size_t)(ndocs + 1) * sizeof *off);
    off[0] = 0;
    for (int64_t d = 0; d < ndocs; d++)
        off[d + 1] = off[d] + (d < nfixed ? fixed[d] : wn_splitmix64(&m_rng) % (max + 1));
    uint64_t *h = (uint64_t *)xmalloc(off[ndocs] * sizeof *h);
    for (uint64_t i = 0; i < off[ndocs]; i++) h[i] = rnd_hash();
    *off_out = off;
    return h;
}

static void dev_compare(int nperm, int64_t ndocs, size_t max)
{
    static const size_t fixed[] = {0, 1, 3, 1023, 1024, 1025, 5000, 0};
    uint64_t *off, *h = make_batch(ndocs, fixed, 8, max, &off);
    uint64_t *a = (uint64_t *)xmalloc((size_t)nperm * 8), *b = (uint64_t *)xmalloc((size_t)nperm * 8);
    wn_mh_perms((uint64_t)nperm * 1000 + 3, nperm, a, b);
    size_t n = (size_t)ndocs * nperm;
    uint64_t *ref = (uint64_t *)xmalloc(n * 8), *got = (uint64_t *)xmalloc(n * 8);
    wn_mh_signatures(h, off, ndocs, a, b, nperm, ref);
    memset(got, 0xa5, n * 8);
    int rc = wn_cuda_minhash_signatures(h, off, ndocs, a, b, nperm, got);
    char name[160];
    snprintf(name, sizeof name, "signatures: %lld documents (%llu shingles), %d permutations", (long long)ndocs,
             (unsigned long long)off[ndocs], nperm);
    if (rc) {
        printf("  %s\n", wn_cuda_minhash_last_error());
        result(name, 0);
    } else {
        size_t bad = 0;
        for (size_t i = 0; i < n; i++)
            if (got[i] != ref[i] && bad++ < 5)
                printf("  mismatch: document %zu permutation %zu: got %llu, want %llu\n", i / nperm, i % nperm,
                       (unsigned long long)got[i], (unsigned long long)ref[i]);
        if (bad) printf("  %zu of %zu values differ\n", bad, n);
        result(name, bad == 0);
    }
    free(h), free(off), free(a), free(b), free(ref), free(got);
}

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static void bench(void)
{
    enum { D = 20000, S = 500, K = 112 };
    uint64_t *off = (uint64_t *)xmalloc((D + 1) * 8), *h = (uint64_t *)xmalloc((size_t)D * S * 8);
    uint64_t a[K], b[K], *sig = (uint64_t *)xmalloc((size_t)D * K * 8);
    for (int d = 0; d <= D; d++) off[d] = (uint64_t)d * S;
    for (size_t i = 0; i < (size_t)D * S; i++) h[i] = wn_splitmix64(&m_rng);
    wn_mh_perms(1, K, a, b);
    wn_cuda_minhash_signatures(h, off, D, a, b, K, sig); /* warm-up: allocations */
    double t0 = now();
    for (int r = 0; r < 5; r++) wn_cuda_minhash_signatures(h, off, D, a, b, K, sig);
    double gpu = (now() - t0) / 5;
    t0 = now();
    wn_mh_signatures(h, off, 2000, a, b, K, sig);
    double cpu = (now() - t0) * D / 2000;
    printf("bench: %d documents x %d shingles x %d permutations: GPU %.3f ms (%.0f signatures/s, with transfers), "
           "one CPU core %.1f ms (%.0f signatures/s)\n",
           D, S, K, gpu * 1e3, D / gpu, cpu * 1e3, D / cpu);
    free(off), free(h), free(sig);
}

int wn_test_minhash_kernels(int want_bench)
{
    printf("minhash kernels, part 1: reference on the host\n");
    host_checks();
    printf("minhash host: %d passed, %d failed\n", m_pass, m_fail);
    int failed = m_fail;
    if (wn_cuda_device_count() == 0) {
        printf("SKIP: no CUDA device: minhash kernel (wn_cuda_minhash_signatures) compiled but not run\n");
        return failed;
    }
    m_pass = m_fail = 0;
    printf("minhash kernels, part 2: kernel on the device\n");
    const int perms[] = {1, 112, 127, 128, 129, 256, 4096};
    for (size_t i = 0; i < sizeof perms / sizeof *perms; i++)
        dev_compare(perms[i], perms[i] == 4096 ? 12 : 300, 700);
    dev_compare(112, 20000, 60); /* many small documents */
    uint64_t off0[2] = {0, 0}, a0 = 1, b0 = 0, s0;
    result("nperm 0 is WN_CUDA_ERR_ARG", wn_cuda_minhash_signatures(NULL, off0, 1, &a0, &b0, 0, &s0) == WN_CUDA_ERR_ARG);
    result("no documents is fine", wn_cuda_minhash_signatures(NULL, off0, 0, &a0, &b0, 1, NULL) == WN_CUDA_OK);
    printf("minhash kernels: %d passed, %d failed\n", m_pass, m_fail);
    failed += m_fail;
    if (want_bench) bench();
    wn_cuda_minhash_shutdown();
    return failed;
}
