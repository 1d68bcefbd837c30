/*
 * test_score_kernels.cu - the scoring kernels (kernels/score_kernels.cu)
 * against their CPU references (src/gradproj.c). Linked into
 * build/cuda/test_kernels, whose main calls wn_test_score_kernels() first,
 * so `make test-cuda` and CI's `./build/cuda/test_kernels` run it.
 *
 * Part 1, host only (runs everywhere): small hand-checkable cases of the
 * references (a one-row sequence is the outer product of P_in x and
 * P_out g; uniform logits give log V and sqrt(1 - 1/V)).
 * Part 2, needs a GPU: seeded random inputs, the reference on the host,
 * the kernel on the device, every output compared. Projection shapes: mixed
 * lengths with empty and one-row sequences and runs of equal (length,
 * scale) (batched calls), a row offset start[0] > 0, equal-length windows
 * (one strided-batched call), all one-row sequences, a GPT-2 small MLP
 * layer (768 -> 3072, 64 x 64) with 1027 rows, and the LM head (768 ->
 * 50257); feats start from random values, so "+=" is tested. Tolerance
 * |got - ref| <= 1e-3 rms(ref) + 1e-3 |ref|: entries are sums of
 * random-sign terms that can cancel to near 0, so the absolute part scales
 * with the output's rms (fp32 rounding of these sums is ~1e-5 rms; a wrong
 * stride, transpose, scale or row range is O(rms)). NLL/EL2N: N from 1 to
 * 1000 (not multiples of the block), V = 1, 1031, 4096, 50257, with a
 * uniform row, a row offset by 1e4, a confident row (checked relatively:
 * nll ~ 2e-6) and a target far below the rest; 1e-4 + 1e-3 |ref|. A target
 * >= V is reported as WN_CUDA_ERR_TOKEN and then cleared. Without a GPU it
 * prints a SKIP line. --bench times the kernels at GPT-2 small shapes.
 */
#include <cuda_runtime.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "device.h"
#include "gpt_kernels.h"
#include "gradproj.h"
#include "score_kernels.h"

int wn_test_score_kernels(int want_bench);

static int s_pass, s_fail;

static void result(const char *name, int ok)
{
    if (ok)
        s_pass++;
    else
        s_fail++;
    printf("%s %s\n", ok ? "ok  " : "FAIL", name);
}

/* ---- memory, random data ------------------------------------------------------- */

#define MAX_ALLOCS 64
static void *s_host[MAX_ALLOCS], *s_dev[MAX_ALLOCS];
static int s_nhost, s_ndev;

static void *halloc(size_t bytes)
{
    void *p = calloc(1, bytes ? bytes : 1);
    if (!p || s_nhost == MAX_ALLOCS) {
        fprintf(stderr, "test_score_kernels: out of host memory\n");
        exit(2);
    }
    return s_host[s_nhost++] = p;
}
static float *hfloats(size_t n) { return (float *)halloc(n * sizeof(float)); }
static void hfree_all(void)
{
    while (s_nhost) free(s_host[--s_nhost]);
}

static uint64_t s_rng = 0x5eed5eed5eedull;
static float frand(void) { return (float)((double)(wn_splitmix64(&s_rng) >> 11) * 0x1.0p-52 - 1.0); } /* [-1, 1) */
static float *hrand(size_t n, float scale)
{
    float *p = hfloats(n);
    for (size_t i = 0; i < n; i++) p[i] = scale * frand();
    return p;
}

static void *dalloc(size_t bytes)
{
    void *p;
    if (wn_cuda_alloc(&p, bytes) || s_ndev == MAX_ALLOCS) {
        fprintf(stderr, "test_score_kernels: device allocation of %zu bytes failed: %s\n", bytes,
                wn_cuda_last_error());
        exit(2);
    }
    return s_dev[s_ndev++] = p;
}
static void dfree_all(void)
{
    while (s_ndev) wn_cuda_free(s_dev[--s_ndev]);
}
template <typename X>
static X *dup(const X *h, size_t n)
{
    X *d = (X *)dalloc(n * sizeof(X));
    if (wn_cuda_upload(d, h, n * sizeof(X))) {
        fprintf(stderr, "test_score_kernels: upload failed: %s\n", wn_cuda_last_error());
        exit(2);
    }
    return d;
}
static float *down(const float *d, size_t n)
{
    float *h = hfloats(n);
    if (wn_cuda_download(h, d, n * sizeof(float))) memset(h, 0xff, n * sizeof(float)); /* NaN: fails compare */
    return h;
}

/* |got - ref| <= atol + rtol |ref| everywhere (atol < 0: -atol times the rms
 * of ref); prints the first mismatches. */
static int compare(const char *name, const float *ref, const float *got, size_t n, double atol, double rtol)
{
    if (atol < 0) {
        double ss = 0;
        for (size_t i = 0; i < n; i++) ss += (double)ref[i] * ref[i];
        atol = -atol * sqrt(ss / (n ? n : 1));
    }
    size_t bad = 0;
    double worst = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)got[i] - ref[i]);
        if (!(d <= atol + rtol * fabs(ref[i]))) {
            if (bad < 5) printf("  %s[%zu]: ref %.7g got %.7g (diff %.3g)\n", name, i, ref[i], got[i], d);
            bad++;
        }
        if (d > worst || d != d) worst = d;
    }
    if (bad) printf("  %s: %zu of %zu outside %.2g + %.0e|ref| (max diff %.3g)\n", name, bad, n, atol, rtol, worst);
    return bad == 0;
}

/* ---- part 1: the references on the host --------------------------------------- */

static void host_checks(void)
{
    /* One one-row sequence: F = scale (P_in x)(P_out g)^T. */
    int in = 13, out = 21, kin = 5, kout = 4;
    float *x = hrand(in, 1), *g = hrand(out, 1), *Pin = hfloats((size_t)kin * in), *Pout = hfloats((size_t)kout * out);
    float *F = hfloats((size_t)kin * kout), *want = hfloats((size_t)kin * kout), sc = 0.5f;
    wn_rademacher(Pin, kin, in, 1, 0);
    wn_rademacher(Pout, kout, out, 1, 1);
    for (int a = 0; a < kin; a++)
        for (int b = 0; b < kout; b++) {
            double u = 0, v = 0;
            for (int i = 0; i < in; i++) u += (double)Pin[a * in + i] * x[i];
            for (int j = 0; j < out; j++) v += (double)Pout[b * out + j] * g[j];
            want[a * kout + b] = (float)(sc * u * v);
        }
    const int64_t start[2] = {0, 1};
    wn_kron_scratch scr;
    wn_kron_scratch_init(&scr);
    int ok = wn_kron_project(&scr, x, g, start, 1, &sc, in, out, Pin, kin, Pout, kout, F) == WN_OK;
    wn_kron_scratch_free(&scr);
    result("host kron_project: one-row sequence is an outer product",
           ok && compare("F", want, F, (size_t)kin * kout, 1e-6, 1e-5));

    int V = 37;
    float *lg = hfloats(2 * V), nll[2], el2n[2];
    uint32_t tg[2] = {0, 36};
    for (int j = 0; j < V; j++) lg[V + j] = 1e4f; /* uniform too, far from 0 */
    wn_token_nll_el2n(lg, tg, 2, V, nll, el2n);
    float wn[2] = {logf((float)V), logf((float)V)}, we[2] = {sqrtf(1 - 1.0f / V), sqrtf(1 - 1.0f / V)};
    {
        const float v[4] = {3, 1, 3, 2};
        const float want[4] = {3, 3, 2, 1};
        const int64_t above[4] = {0, 0, 2, 3};
        int ok = 1;
        for (int k = 1; k <= 4; k++) {
            float got = -1;
            int64_t a = -1;
            ok &= wn_kth_largest(v, 4, k, &got, &a) == WN_OK && got == want[k - 1] && a == above[k - 1];
        }
        float g;
        int64_t a;
        ok &= wn_kth_largest(v, 4, 5, &g, &a) == WN_ERR_USAGE;
        result("host kth_largest: {3,1,3,2} for k = 1..4, k > n refused", ok);
    }
    result("host token_nll_el2n: uniform rows give log V, sqrt(1 - 1/V)",
           compare("nll", wn, nll, 2, 1e-6, 1e-6) && compare("el2n", we, el2n, 2, 1e-6, 1e-6));
    hfree_all();
}

/* ---- part 2: kernels on the device ---------------------------------------------- */

#define RUN(name, call, errfn)                                                                       \
    do {                                                                                             \
        int rc_ = (call);                                                                            \
        if (rc_ == WN_CUDA_OK) rc_ = wn_cuda_sync();                                                 \
        if (rc_ != WN_CUDA_OK) {                                                                     \
            printf("  %s: status %d: %s\n", #call, rc_, errfn());                                    \
            result(name, 0);                                                                         \
            return;                                                                                  \
        }                                                                                            \
    } while (0)

/* One projection case: sequences of the given lengths after `offset`
 * unread rows (and 2 unread rows after them), scales as given (NULL: all 1). */
static void dev_kron(const char *name, int offset, const int *lens, int nseq, const float *scale, int in, int out,
                     int kin, int kout)
{
    dfree_all(); /* the previous case's buffers */
    hfree_all();
    int64_t *start = (int64_t *)halloc((size_t)(nseq + 1) * sizeof(int64_t));
    start[0] = offset;
    for (int q = 0; q < nseq; q++) start[q + 1] = start[q] + lens[q];
    size_t rows = (size_t)start[nseq] + 2, nf = (size_t)nseq * kin * kout;
    float *X = hrand(rows * in, 1), *G = hrand(rows * out, 1);
    float *Pin = hfloats((size_t)kin * in), *Pout = hfloats((size_t)kout * out);
    wn_rademacher(Pin, kin, in, 77, 0);
    wn_rademacher(Pout, kout, out, 77, 1);
    float *F = hrand(nf, 1);
    float *d_X = dup(X, rows * in), *d_G = dup(G, rows * out), *d_Pin = dup(Pin, (size_t)kin * in);
    float *d_Pout = dup(Pout, (size_t)kout * out), *d_F = dup(F, nf);
    wn_kron_scratch scr;
    wn_kron_scratch_init(&scr);
    wn_err e = wn_kron_project(&scr, X, G, start, nseq, scale, in, out, Pin, kin, Pout, kout, F);
    wn_kron_scratch_free(&scr);
    if (e != WN_OK) {
        printf("  reference: wn_err %d\n", (int)e); /* wn.h has no extern "C": no wn_err_name here */
        result(name, 0);
        return;
    }
    RUN(name, wn_cuda_kron_project(d_X, d_G, start, nseq, scale, in, out, d_Pin, kin, d_Pout, kout, d_F),
        wn_cuda_score_last_error);
    result(name, compare("feats", F, down(d_F, nf), nf, -1e-3, 1e-3));
}

static void dev_kron_all(void)
{
    /* runs: (1, 0.5) ; (0) ; (13) ; (1, 2) (1, 2) -> one batch of 2 ; (22) ; (5, 2) (5, 2) (5, 2) -> batch of 3 */
    const int mixed[] = {1, 0, 13, 1, 1, 22, 5, 5, 5};
    const float mixed_sc[] = {0.5f, 1.0f, -0.75f, 2.0f, 2.0f, 0.1f, 2.0f, 2.0f, 2.0f};
    dev_kron("kron_project: mixed lengths, runs, offset rows (65 -> 129, 8 x 12)", 3, mixed, 9, mixed_sc, 65, 129, 8,
             12);
    const int eq[] = {64, 64, 64, 64};
    const float eq_sc[] = {0.25f, 0.25f, 0.25f, 0.25f};
    dev_kron("kron_project: equal windows, one batched call (96 -> 200, 16 x 24)", 0, eq, 4, eq_sc, 96, 200, 16, 24);
    int ones[37];
    for (int i = 0; i < 37; i++) ones[i] = 1;
    dev_kron("kron_project: 37 one-row sequences, scale NULL (33 -> 50, 5 x 7)", 0, ones, 37, NULL, 33, 50, 5, 7);
    const int mlp[] = {256, 256, 256, 259};
    const float mlp_sc[] = {1.0f / 256, 1.0f / 256, 1.0f / 256, 1.0f / 259};
    dev_kron("kron_project: GPT-2 MLP c_fc, 1027 rows (768 -> 3072, 64 x 64)", 0, mlp, 4, mlp_sc, 768, 3072, 64, 64);
    const int head[] = {30, 37};
    dev_kron("kron_project: LM head, 67 rows (768 -> 50257, 64 x 64)", 1, head, 2, NULL, 768, 50257, 64, 64);
}

static void dev_nll_case(int N, int V)
{
    char name[96];
    snprintf(name, sizeof name, "token_nll_el2n N=%d V=%d", N, V);
    size_t n = (size_t)N * V;
    float *lg = hrand(n, 6);
    uint32_t *tg = (uint32_t *)halloc((size_t)N * sizeof(uint32_t));
    for (int i = 0; i < N; i++) tg[i] = (uint32_t)(wn_splitmix64(&s_rng) % (uint64_t)V);
    int special = V > 1 && N >= 4;
    if (special) {
        for (int j = 0; j < V; j++) {
            lg[j] = 0.5f;            /* row 0 uniform */
            lg[V + j] += 1e4f;       /* row 1 offset */
            lg[2 * V + j] = 3.0f;    /* row 2 confident: target 3 + 20 */
        }
        lg[2 * V + tg[2]] = 23.0f;
        lg[3 * V + tg[3]] = -200.0f; /* row 3: target far below */
    }
    float *nll = hfloats(N), *el2n = hfloats(N);
    wn_token_nll_el2n(lg, tg, N, V, nll, el2n);
    float *d_lg = dup(lg, n), *d_nll = (float *)dalloc((size_t)N * 4), *d_el2n = (float *)dalloc((size_t)N * 4);
    uint32_t *d_tg = dup(tg, (size_t)N);
    RUN(name, wn_cuda_token_nll_el2n(d_lg, d_tg, N, V, d_nll, d_el2n), wn_cuda_score_last_error);
    float *gn = down(d_nll, N), *ge = down(d_el2n, N);
    int ok = compare("nll", nll, gn, N, 1e-4, 1e-3) && compare("el2n", el2n, ge, N, 1e-4, 1e-3);
    if (special) /* the confident row, relatively: nll ~ (V-1) e^-20 */
        ok &= compare("nll confident", nll + 2, gn + 2, 1, 0, 1e-3) &&
              compare("el2n confident", el2n + 2, ge + 2, 1, 0, 1e-3);
    result(name, ok);

    if (!special) return;
    RUN("token_nll_el2n nll only", wn_cuda_token_nll_el2n(d_lg, d_tg, N, V, d_nll, NULL), wn_cuda_score_last_error);
    ok = compare("nll only", nll, down(d_nll, N), N, 1e-4, 1e-3);
    tg[N - 1] = (uint32_t)V;
    uint32_t *d_bad = dup(tg, (size_t)N);
    int rc1 = wn_cuda_token_nll_el2n(d_lg, d_bad, N, V, d_nll, d_el2n);
    float *bn = down(d_nll, N);
    int rc2 = wn_cuda_token_nll_el2n(d_lg, d_tg, N, V, d_nll, d_el2n);
    if (rc1 != WN_CUDA_ERR_TOKEN || rc2 != WN_CUDA_OK) printf("  statuses %d then %d\n", rc1, rc2);
    ok &= rc1 == WN_CUDA_ERR_TOKEN && rc2 == WN_CUDA_OK && bn[N - 1] != bn[N - 1] && bn[0] == bn[0];
    result("token_nll_el2n: NULL output skipped; bad target reported (NaN), then cleared", ok);
}

static void dev_nll_all(void)
{
    const int cases[][2] = {{1, 1031}, {5, 1}, {33, 1031}, {1000, 4096}, {97, 50257}};
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        dev_nll_case(cases[c][0], cases[c][1]);
        dfree_all();
        hfree_all();
    }
}

/* k-th largest: heavy ties (values on a 0.5 grid, some runs of one value),
 * negatives, a single element, and k at both ends and in the middle; the
 * value must be bit-identical to the sorted reference's and the count above
 * equal. */
static void dev_kth_all(void)
{
    const int64_t sizes[3] = {1, 1000, 1000003};
    for (int c = 0; c < 3; c++) {
        int64_t n = sizes[c];
        float *x = (float *)halloc((size_t)n * 4);
        uint64_t r = 99 + (uint64_t)c;
        for (int64_t i = 0; i < n; i++) {
            r = r * 6364136223846793005ull + 1442695040888963407ull;
            x[i] = c == 2 && i % 7 == 0 ? 3.25f : (float)((int)((r >> 33) % 2001) - 1000) * 0.5f;
        }
        float *d_x = (float *)dalloc((size_t)n * 4);
        wn_cuda_upload(d_x, x, (size_t)n * 4);
        const int64_t ks[4] = {1, n / 2 > 0 ? n / 2 : 1, n - n / 7 > 0 ? n - n / 7 : 1, n};
        int ok = 1;
        for (int j = 0; j < 4; j++) {
            float want = 0, got = 0;
            int64_t wa = -1, ga = -2;
            wn_kth_largest(x, n, ks[j], &want, &wa);
            int rc = wn_cuda_kth_largest(d_x, n, ks[j], &got, &ga);
            if (rc || memcmp(&want, &got, 4) || wa != ga) {
                printf("  kth_largest n=%lld k=%lld: want %.9g (%lld above), got %.9g (%lld above), status %d %s\n",
                       (long long)n, (long long)ks[j], want, (long long)wa, got, (long long)ga, rc,
                       wn_cuda_score_last_error());
                ok = 0;
            }
        }
        char name[64];
        snprintf(name, sizeof name, "kth_largest n=%lld, k = 1, n/2, n - n/7, n", (long long)n);
        result(name, ok);
        dfree_all();
        hfree_all();
    }
}

/* ---- bench ------------------------------------------------------------------------ */

#define BENCH(name, tokens, call)                                                                     \
    do {                                                                                              \
        cudaEvent_t e0, e1;                                                                           \
        float ms = 0;                                                                                 \
        int rc_ = (call);                                                                             \
        cudaEventCreate(&e0);                                                                         \
        cudaEventCreate(&e1);                                                                         \
        cudaEventRecord(e0);                                                                          \
        for (int it_ = 0; it_ < 10 && rc_ == 0; it_++) rc_ = (call);                                  \
        cudaEventRecord(e1);                                                                          \
        cudaEventSynchronize(e1);                                                                     \
        cudaEventElapsedTime(&ms, e0, e1);                                                            \
        cudaEventDestroy(e0);                                                                         \
        cudaEventDestroy(e1);                                                                         \
        if (rc_ == 0) rc_ = wn_cuda_sync();                                                           \
        if (rc_)                                                                                      \
            printf("bench %-36s failed: %s\n", name, wn_cuda_score_last_error());                     \
        else                                                                                          \
            printf("bench %-36s %9.3f ms  %8.3g tokens/s\n", name, ms / 10, (tokens) / (ms / 10e3));   \
    } while (0)

static void bench(void)
{
    int B = 4, T = 1024, N = B * T, C = 768, V = 50257, k = 64;
    printf("bench: GPT-2 small shapes B=%d T=%d, k_in = k_out = %d, fp32, TF32 off\n", B, T, k);
    float *X = (float *)dalloc((size_t)N * 4 * C * 4), *G = (float *)dalloc((size_t)N * V * 4);
    float *Pin = (float *)dalloc((size_t)k * 4 * C * 4), *Pout = (float *)dalloc((size_t)k * V * 4);
    float *F = (float *)dalloc((size_t)B * k * k * 4), *nll = (float *)dalloc((size_t)N * 4);
    uint32_t *tg = (uint32_t *)dalloc((size_t)N * 4);
    wn_cuda_memset0(X, (size_t)N * 4 * C * 4);
    wn_cuda_memset0(G, (size_t)N * V * 4);
    wn_cuda_memset0(Pin, (size_t)k * 4 * C * 4);
    wn_cuda_memset0(Pout, (size_t)k * V * 4);
    wn_cuda_memset0(tg, (size_t)N * 4);
    int64_t start[5] = {0, T, 2 * T, 3 * T, 4 * T}, mixed[9];
    for (int i = 0; i <= 8; i++) mixed[i] = (int64_t)i * N / 8 + (i > 0 && i < 8 ? 17 * (i % 3) : 0);
    BENCH("kron_project MLP c_fc (768->3072)", N,
          wn_cuda_kron_project(X, G, start, B, NULL, C, 4 * C, Pin, k, Pout, k, F));
    BENCH("kron_project MLP, 8 unequal docs", N,
          wn_cuda_kron_project(X, G, mixed, 8, NULL, C, 4 * C, Pin, k, Pout, k, F));
    BENCH("kron_project LM head (768->50257)", N,
          wn_cuda_kron_project(X, G, start, B, NULL, C, V, Pin, k, Pout, k, F));
    BENCH("token_nll_el2n (V=50257)", N, wn_cuda_token_nll_el2n(G, tg, N, V, nll, nll));
    {
        float v;
        int64_t a;
        BENCH("kth_largest, 205.8M values (median)", (double)N * V,
              wn_cuda_kth_largest(G, (int64_t)N * V, (int64_t)N * V / 2, &v, &a));
    }
    dfree_all();
}

int wn_test_score_kernels(int want_bench)
{
    printf("score kernels, part 1: references on the host\n");
    host_checks();
    printf("score host: %d passed, %d failed\n", s_pass, s_fail);
    int failed = s_fail;
    if (wn_cuda_device_count() == 0) {
        printf("SKIP: no CUDA device: score kernels (kron_project, token_nll_el2n) compiled but not run\n");
        return failed;
    }
    s_pass = s_fail = 0;
    if (wn_cuda_score_init(0)) {
        printf("FAIL wn_cuda_score_init: %s\n", wn_cuda_score_last_error());
        return failed + 1;
    }
    printf("score kernels, part 2: kernels on the device\n");
    dev_kron_all();
    dfree_all();
    hfree_all();
    dev_nll_all();
    dev_kth_all();
    printf("score kernels: %d passed, %d failed\n", s_pass, s_fail);
    failed += s_fail;
    if (want_bench) bench();
    wn_cuda_score_shutdown();
    return failed;
}
