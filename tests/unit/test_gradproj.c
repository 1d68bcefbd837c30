/*
 * test_gradproj.c - unit tests for gradproj.c: Rademacher matrices (exact
 * entries, reproducibility, independence of streams, a statistical JL
 * check with a fixed seed), the Kronecker-factored projection against a
 * brute force that materialises dW_s = X_s^T G_s and applies the dense
 * (P_out kron P_in) in double, accumulation over windows, bit-identical
 * results for 1, 2 and 3 threads, out of memory, and per-token NLL / EL2N
 * against double-precision brute force and closed forms (stability rows).
 * Both paths of the projection are tested: OpenBLAS (when built with it)
 * and the plain loops (scratch.no_blas = 1).
 *
 * Tolerances: projection |got - ref| <= 1e-5 * sum of |terms| of the
 * reference (a bound on the rounding of float sums; seen: 3.3e-8, both
 * paths);
 * NLL and EL2N 1e-6 + 2e-6 |ref| (one float rounding is 6e-8 |ref|).
 */
#include "../test.h"
#include "gradproj.h"

#include <math.h>
#include <stdlib.h>
#ifdef _OPENMP
#include <omp.h>
#endif

/* Reproducible test data: uniforms in [-1, 1) and normals. */
static double urand(uint64_t *s) { return (double)(wn_splitmix64(s) >> 11) * 0x1.0p-53 * 2.0 - 1.0; }
static double nrand(uint64_t *s)
{
    double u1 = (urand(s) + 1.0) * 0.5 + 0x1.0p-54, u2 = (urand(s) + 1.0) * 0.5;
    return sqrt(-2.0 * log(u1)) * cos(2.0 * 3.14159265358979323846 * u2);
}
static float *rand_floats(size_t n, double scale, uint64_t *s)
{
    float *p = malloc((n ? n : 1) * sizeof *p);
    for (size_t i = 0; i < n; i++) p[i] = (float)(scale * urand(s));
    return p;
}

static void set_threads(int t)
{
#ifdef _OPENMP
    omp_set_num_threads(t);
#else
    (void)t;
#endif
}
static int max_threads(void)
{
#ifdef _OPENMP
    return omp_get_max_threads();
#else
    return 1;
#endif
}

/* ---- Rademacher --------------------------------------------------------------- */

TEST(gradproj_rademacher_entries)
{
    int rows = 64, cols = 4096;
    size_t n = (size_t)rows * cols;
    float *a = malloc(n * sizeof *a), *b = malloc(n * sizeof *b), *c = malloc(n * sizeof *c);
    float *tall = malloc(2 * n * sizeof *tall);
    const float v = (float)(1.0 / sqrt(64.0));
    wn_rademacher(a, rows, cols, 42, 7);
    wn_rademacher(b, rows, cols, 42, 7);
    CHECK(memcmp(a, b, n * sizeof *a) == 0); /* reproducible */
    size_t plus = 0, other = 0;
    for (size_t i = 0; i < n; i++) {
        if (a[i] == v)
            plus++;
        else if (a[i] != -v)
            other++;
    }
    CHECK_EQ_INT(other, 0); /* exactly +-1/sqrt(rows) */
    /* Balanced: n/2 +- 2% is 20 standard deviations (sd = sqrt(n)/2 = 256). */
    CHECK(fabs((double)plus - n / 2.0) < 0.02 * n);

    /* Another stream, another seed: independent signs (about half differ). */
    wn_rademacher(b, rows, cols, 42, 8);
    wn_rademacher(c, rows, cols, 43, 7);
    size_t db = 0, dc = 0;
    for (size_t i = 0; i < n; i++) {
        db += (a[i] > 0) != (b[i] > 0);
        dc += (a[i] > 0) != (c[i] > 0);
    }
    CHECK(fabs((double)db - n / 2.0) < 0.02 * n);
    CHECK(fabs((double)dc - n / 2.0) < 0.02 * n);
    /* Neighbours along a row and down a column agree half the time (bits
     * of one generator output are not reused or correlated). */
    size_t right = 0, down = 0;
    for (size_t i = 0; i + cols < n; i++) {
        right += (a[i] > 0) == (a[i + 1] > 0);
        down += (a[i] > 0) == (a[i + cols] > 0);
    }
    CHECK(fabs((double)right - n / 2.0) < 0.02 * n);
    CHECK(fabs((double)down - n / 2.0) < 0.02 * n);

    /* The signs depend on the position in row-major order only: a taller
     * matrix starts with the same rows (scaled by 1/sqrt(rows)). */
    wn_rademacher(tall, 2 * rows, cols, 42, 7);
    size_t same = 0;
    for (size_t i = 0; i < n; i++) same += (tall[i] > 0) == (a[i] > 0);
    CHECK_EQ_INT(same, n);
    CHECK(fabsf(fabsf(tall[0]) - (float)(1.0 / sqrt(128.0))) == 0);

    /* Every column has norm exactly 1 (rows entries of 1/rows). */
    int ok = 1;
    for (int j = 0; j < cols; j++) {
        double s = 0;
        for (int i = 0; i < rows; i++) s += (double)a[(size_t)i * cols + j] * a[(size_t)i * cols + j];
        if (fabs(s - 1) > 1e-6) ok = 0;
    }
    CHECK(ok);

    /* Same bits with 1 and 2 threads (4n entries: above the parallel
     * threshold). */
    float *t1 = malloc(4 * n * sizeof *t1), *t2 = malloc(4 * n * sizeof *t2);
    int saved = max_threads();
    set_threads(1);
    wn_rademacher(t1, 2 * rows, 2 * cols, 5, 1);
    set_threads(2);
    wn_rademacher(t2, 2 * rows, 2 * cols, 5, 1);
    set_threads(saved);
    CHECK(memcmp(t1, t2, 4 * n * sizeof *t1) == 0);
    free(t1);
    free(t2);
    free(a);
    free(b);
    free(c);
    free(tall);
}

/* JL: E ||P x||^2 = ||x||^2 with Var <= 2/k ||x||^4 per vector. With a fixed
 * seed the outcome is fixed; the bounds are many standard deviations wide so
 * that any seed would pass, yet a wrong scale (1/rows instead of
 * 1/sqrt(rows)), a biased or correlated generator would fail. */
TEST(gradproj_rademacher_jl)
{
    int k = 512, d = 3000, nvec = 100;
    float *P = malloc((size_t)k * d * sizeof *P);
    wn_rademacher(P, k, d, 2024, 3);
    uint64_t s = 99;
    double *x = malloc((size_t)d * sizeof *x), mean = 0, lo = 1e9, hi = 0;
    for (int v = 0; v < nvec; v++) {
        double nx = 0, np = 0;
        for (int c = 0; c < d; c++) {
            /* half Gaussian vectors, half sparse ones (a hard case for JL) */
            x[c] = v % 2 ? nrand(&s) : (c % 97 == 0 ? nrand(&s) : 0);
            nx += x[c] * x[c];
        }
        for (int r = 0; r < k; r++) {
            double y = 0;
            for (int c = 0; c < d; c++) y += P[(size_t)r * d + c] * x[c];
            np += y * y;
        }
        double ratio = np / nx;
        mean += ratio / nvec;
        if (ratio < lo) lo = ratio;
        if (ratio > hi) hi = ratio;
    }
    /* sd of one ratio <= sqrt(2/512) = 0.0625: [0.6, 1.4] is 6.4 sd; sd of the
     * mean of 100 <= 0.00625: 1 +- 0.03 is 4.8 sd. */
    if (!(lo > 0.6 && hi < 1.4 && fabs(mean - 1) < 0.03))
        fprintf(stderr, "  JL ratios: mean %.4f, min %.4f, max %.4f\n", mean, lo, hi);
    CHECK(lo > 0.6 && hi < 1.4);
    CHECK(fabs(mean - 1) < 0.03);
    free(P);
    free(x);
}

/* ---- Kronecker projection: brute force ------------------------------------------- */

/* Reference F (nseq, kin, kout) and Fabs (the same sums of |terms|, for the
 * tolerance): dW_s = X_s^T G_s materialised in double, then
 * vec(F_s) = scale_s (P_out kron P_in) vec(dW_s) with the Kronecker product
 * formed as a dense (kin*kout, in*out) matrix and vec column-major:
 * K[b*kin + a][j*in + i] = Pout[b][j] Pin[a][i]; vec(dW)[j*in + i] = dW[i][j];
 * vec(F)[b*kin + a] = F[a][b]. */
static void brute_kron(double *F, double *Fabs, const float *X, const float *G, const int64_t *start, int nseq,
                       const float *scale, int in, int out, const float *Pin, int kin, const float *Pout, int kout)
{
    size_t nk = (size_t)kin * kout, nw = (size_t)in * out;
    double *K = malloc(nk * nw * sizeof *K), *w = malloc(nw * sizeof *w), *wa = malloc(nw * sizeof *wa);
    for (int b = 0; b < kout; b++)
        for (int a = 0; a < kin; a++)
            for (int j = 0; j < out; j++)
                for (int i = 0; i < in; i++)
                    K[((size_t)b * kin + a) * nw + (size_t)j * in + i] = (double)Pout[b * out + j] * Pin[a * in + i];
    for (int s = 0; s < nseq; s++) {
        for (int j = 0; j < out; j++)
            for (int i = 0; i < in; i++) {
                double acc = 0, abs_acc = 0;
                for (int64_t t = start[s]; t < start[s + 1]; t++) {
                    double p = (double)X[t * in + i] * G[t * out + j];
                    acc += p;
                    abs_acc += fabs(p);
                }
                w[(size_t)j * in + i] = acc;
                wa[(size_t)j * in + i] = abs_acc;
            }
        double sc = scale ? scale[s] : 1.0;
        for (size_t r = 0; r < nk; r++) {
            double acc = 0, abs_acc = 0;
            for (size_t c = 0; c < nw; c++) {
                acc += K[r * nw + c] * w[c];
                abs_acc += fabs(K[r * nw + c]) * wa[c];
            }
            int a = (int)(r % kin), b = (int)(r / kin);
            F[(size_t)s * nk + (size_t)a * kout + b] = sc * acc;
            Fabs[(size_t)s * nk + (size_t)a * kout + b] = fabs(sc) * abs_acc;
        }
    }
    free(K);
    free(w);
    free(wa);
}

static double g_worst; /* largest |got - ref| / tol seen (print it when retuning) */

/* |got - (base + ref)| <= rtol * (|base| + abs) + 1e-30 everywhere. */
static int close_feats(const char *what, const float *got, const float *base, const double *ref, const double *abs_,
                       size_t n, double rtol)
{
    size_t bad = 0;
    for (size_t i = 0; i < n; i++) {
        double want = (base ? base[i] : 0) + ref[i], tol = rtol * ((base ? fabs(base[i]) : 0) + abs_[i]) + 1e-30;
        double r = fabs(got[i] - want) / tol;
        if (r > g_worst || r != r) g_worst = r;
        if (!(r <= 1)) {
            if (bad < 5) fprintf(stderr, "  %s[%zu]: got %.9g, want %.9g (tol %.3g)\n", what, i, got[i], want, tol);
            bad++;
        }
    }
    return bad == 0;
}

typedef struct {
    int rows, in, out, kin, kout, nseq;
    const int64_t *start;
} kron_case;

TEST(gradproj_kron_brute_force)
{
    static const int64_t st_tiny[] = {0, 3, 3, 4, 9};              /* lengths 3, 0, 1, 5 */
    static const int64_t st_mid[] = {7, 8, 158, 158, 287, 307};    /* offset 7; 1, 150, 0, 129, 20 */
    static const int64_t st_one[] = {0, 1, 2, 3};                  /* one-row sequences */
    const kron_case cases[] = {
        {9, 7, 5, 3, 4, 4, st_tiny},
        {311, 40, 33, 8, 6, 5, st_mid}, /* 300 rows: crosses KP_RB = 128; 4 trailing rows unread */
        {3, 19, 70, 17, 3, 3, st_one},  /* k_in = 17 > KP_IB = 16 */
    };
    uint64_t s = 1;
    wn_kron_scratch scr;
    wn_kron_scratch_init(&scr);
    g_worst = 0;
    for (size_t c = 0; c < WN_ARRAY_LEN(cases); c++) {
        const kron_case *k = &cases[c];
        size_t nf = (size_t)k->nseq * k->kin * k->kout;
        float *X = rand_floats((size_t)k->rows * k->in, 1, &s), *G = rand_floats((size_t)k->rows * k->out, 1, &s);
        float *Pin = malloc((size_t)k->kin * k->in * sizeof *Pin), *Pout = malloc((size_t)k->kout * k->out * sizeof *Pout);
        wn_rademacher(Pin, k->kin, k->in, 11, 2 * c);
        wn_rademacher(Pout, k->kout, k->out, 11, 2 * c + 1);
        float *scale = rand_floats((size_t)k->nseq, 2, &s);
        float *base = rand_floats(nf, 1, &s), *F = malloc(nf * sizeof *F);
        double *ref = malloc(nf * sizeof *ref), *abs_ = malloc(nf * sizeof *abs_);
        brute_kron(ref, abs_, X, G, k->start, k->nseq, scale, k->in, k->out, Pin, k->kin, Pout, k->kout);
        for (int path = 0; path < 2; path++) {
            scr.no_blas = path;
            memcpy(F, base, nf * sizeof *F); /* += onto random values */
            CHECK_EQ_INT(wn_kron_project(&scr, X, G, k->start, k->nseq, scale, k->in, k->out, Pin, k->kin, Pout,
                                         k->kout, F),
                         WN_OK);
            if (!close_feats(path ? "loops" : "blas", F, base, ref, abs_, nf, 1e-5)) {
                fprintf(stderr, "  case %zu, %s path\n", c, path ? "loops" : "blas");
                *wn_failed_ = 1;
            }
        }
        /* scale NULL means 1: sequence 0 alone with scale 1 */
        scr.no_blas = 0;
        memset(F, 0, nf * sizeof *F);
        float one = 1;
        brute_kron(ref, abs_, X, G, k->start, 1, &one, k->in, k->out, Pin, k->kin, Pout, k->kout);
        CHECK_EQ_INT(wn_kron_project(&scr, X, G, k->start, 1, NULL, k->in, k->out, Pin, k->kin, Pout, k->kout, F),
                     WN_OK);
        CHECK(close_feats("scale NULL", F, NULL, ref, abs_, (size_t)k->kin * k->kout, 1e-5));
        free(X);
        free(G);
        free(Pin);
        free(Pout);
        free(scale);
        free(base);
        free(F);
        free(ref);
        free(abs_);
    }
    /* nseq = 0 and all-empty sequences leave feats alone */
    int64_t empty[] = {5, 5, 5};
    float f[4] = {1, 2, 3, 4}, x = 1, g = 1, p = 1;
    CHECK_EQ_INT(wn_kron_project(&scr, &x, &g, empty, 0, NULL, 1, 1, &p, 1, &p, 1, f), WN_OK);
    CHECK_EQ_INT(wn_kron_project(&scr, &x, &g, empty, 2, NULL, 1, 1, &p, 1, &p, 1, f), WN_OK);
    CHECK(f[0] == 1 && f[1] == 2 && f[2] == 3 && f[3] == 4);
    wn_kron_scratch_free(&scr);
    wn_kron_scratch_free(&scr); /* twice is fine */
    wn_kron_scratch_free(NULL);
}

/* A document split into two windows, each projected with scale 1/L into
 * the same feats, equals the document projected in one call (sums in a
 * different order: within the brute-force tolerance, not bitwise). */
TEST(gradproj_kron_accumulate_windows)
{
    int L = 230, in = 48, out = 37, kin = 12, kout = 10, cut = 97;
    uint64_t s = 5;
    float *X = rand_floats((size_t)L * in, 1, &s), *G = rand_floats((size_t)L * out, 1, &s);
    float *Pin = malloc((size_t)kin * in * sizeof *Pin), *Pout = malloc((size_t)kout * out * sizeof *Pout);
    wn_rademacher(Pin, kin, in, 3, 0);
    wn_rademacher(Pout, kout, out, 3, 1);
    size_t nf = (size_t)kin * kout;
    float *one = calloc(nf, sizeof *one), *two = calloc(nf, sizeof *two), sc = 1.0f / (float)L;
    double *ref = malloc(nf * sizeof *ref), *abs_ = malloc(nf * sizeof *abs_);
    wn_kron_scratch scr;
    wn_kron_scratch_init(&scr);
    for (int path = 0; path < 2; path++) {
        scr.no_blas = path;
        memset(one, 0, nf * sizeof *one);
        memset(two, 0, nf * sizeof *two);
        int64_t whole[] = {0, L}, w1[] = {0, cut}, w2[] = {0, L - cut};
        CHECK_EQ_INT(wn_kron_project(&scr, X, G, whole, 1, &sc, in, out, Pin, kin, Pout, kout, one), WN_OK);
        CHECK_EQ_INT(wn_kron_project(&scr, X, G, w1, 1, &sc, in, out, Pin, kin, Pout, kout, two), WN_OK);
        CHECK_EQ_INT(wn_kron_project(&scr, X + (size_t)cut * in, G + (size_t)cut * out, w2, 1, &sc, in, out, Pin, kin,
                                     Pout, kout, two),
                     WN_OK);
        brute_kron(ref, abs_, X, G, whole, 1, &sc, in, out, Pin, kin, Pout, kout);
        CHECK(close_feats("one call", one, NULL, ref, abs_, nf, 1e-5));
        CHECK(close_feats("two windows", two, NULL, ref, abs_, nf, 1e-5));
    }
    /* Rows start[0] onwards are what is read: the second window addressed
     * by start = {cut, L} in the full arrays gives the same bits as the
     * shifted pointers above. */
    float *three = calloc(nf, sizeof *three), *four = calloc(nf, sizeof *four);
    int64_t w2b[] = {cut, L}, w2c[] = {0, L - cut};
    scr.no_blas = 0;
    CHECK_EQ_INT(wn_kron_project(&scr, X, G, w2b, 1, &sc, in, out, Pin, kin, Pout, kout, three), WN_OK);
    CHECK_EQ_INT(wn_kron_project(&scr, X + (size_t)cut * in, G + (size_t)cut * out, w2c, 1, &sc, in, out, Pin, kin,
                                 Pout, kout, four),
                 WN_OK);
    CHECK(memcmp(three, four, nf * sizeof *three) == 0);
    wn_kron_scratch_free(&scr);
    free(X);
    free(G);
    free(Pin);
    free(Pout);
    free(one);
    free(two);
    free(three);
    free(four);
    free(ref);
    free(abs_);
}

/* Same bits for 1, 2 and 3 threads on both paths, with both stages above
 * the parallel threshold and k_in not a multiple of KP_IB. */
TEST(gradproj_kron_threads)
{
    int N = 1000, in = 96, out = 200, kin = 40, kout = 40, nseq = 7;
    const int64_t start[] = {0, 1, 200, 200, 457, 600, 999, 1000};
    uint64_t s = 8;
    float *X = rand_floats((size_t)N * in, 1, &s), *G = rand_floats((size_t)N * out, 1, &s);
    float *Pin = malloc((size_t)kin * in * sizeof *Pin), *Pout = malloc((size_t)kout * out * sizeof *Pout);
    float *scale = rand_floats((size_t)nseq, 1, &s);
    wn_rademacher(Pin, kin, in, 9, 0);
    wn_rademacher(Pout, kout, out, 9, 1);
    size_t nf = (size_t)nseq * kin * kout;
    float *F[3];
    int saved = max_threads();
    wn_kron_scratch scr;
    wn_kron_scratch_init(&scr);
    for (int path = 0; path < 2; path++) {
        scr.no_blas = path;
        for (int t = 0; t < 3; t++) {
            F[t] = calloc(nf, sizeof *F[t]);
            set_threads(t + 1);
            CHECK_EQ_INT(wn_kron_project(&scr, X, G, start, nseq, scale, in, out, Pin, kin, Pout, kout, F[t]), WN_OK);
        }
        set_threads(saved);
        CHECK(memcmp(F[0], F[1], nf * sizeof *F[0]) == 0);
        CHECK(memcmp(F[0], F[2], nf * sizeof *F[0]) == 0);
        for (int t = 0; t < 3; t++) free(F[t]);
    }
    wn_kron_scratch_free(&scr);
    free(X);
    free(G);
    free(Pin);
    free(Pout);
    free(scale);
}

/* E ||F_s||^2 = ||dW_s||^2. For one-row sequences dW = x g^T is rank one and
 * the ratio is the product of two independent JL ratios (sd about
 * sqrt(2/k_in + 2/k_out) = 0.18 at 128 x 128); the mean of 64 has sd 0.022:
 * 1 +- 0.12 is 5.4 sd, and each single ratio must lie in [0.25, 2.5]. */
TEST(gradproj_kron_jl)
{
    int nseq = 64, in = 300, out = 500, kin = 128, kout = 128;
    uint64_t s = 77;
    float *X = malloc((size_t)nseq * in * sizeof *X), *G = malloc((size_t)nseq * out * sizeof *G);
    for (size_t i = 0; i < (size_t)nseq * in; i++) X[i] = (float)nrand(&s);
    for (size_t i = 0; i < (size_t)nseq * out; i++) G[i] = (float)nrand(&s);
    int64_t *start = malloc((size_t)(nseq + 1) * sizeof *start);
    for (int i = 0; i <= nseq; i++) start[i] = i;
    float *Pin = malloc((size_t)kin * in * sizeof *Pin), *Pout = malloc((size_t)kout * out * sizeof *Pout);
    wn_rademacher(Pin, kin, in, 123, 0);
    wn_rademacher(Pout, kout, out, 123, 1);
    size_t nk = (size_t)kin * kout;
    float *F = calloc((size_t)nseq * nk, sizeof *F);
    wn_kron_scratch scr;
    wn_kron_scratch_init(&scr);
    CHECK_EQ_INT(wn_kron_project(&scr, X, G, start, nseq, NULL, in, out, Pin, kin, Pout, kout, F), WN_OK);
    double mean = 0, lo = 1e9, hi = 0;
    for (int q = 0; q < nseq; q++) {
        double nx = 0, ng = 0, nf = 0;
        for (int i = 0; i < in; i++) nx += (double)X[(size_t)q * in + i] * X[(size_t)q * in + i];
        for (int j = 0; j < out; j++) ng += (double)G[(size_t)q * out + j] * G[(size_t)q * out + j];
        for (size_t e = 0; e < nk; e++) nf += (double)F[q * nk + e] * F[q * nk + e];
        double r = nf / (nx * ng); /* ||x g^T||_F^2 = ||x||^2 ||g||^2 */
        mean += r / nseq;
        if (r < lo) lo = r;
        if (r > hi) hi = r;
    }
    if (!(fabs(mean - 1) < 0.12 && lo > 0.25 && hi < 2.5))
        fprintf(stderr, "  Kronecker JL ratios: mean %.4f, min %.4f, max %.4f\n", mean, lo, hi);
    CHECK(fabs(mean - 1) < 0.12);
    CHECK(lo > 0.25 && hi < 2.5);
    wn_kron_scratch_free(&scr);
    free(X);
    free(G);
    free(start);
    free(Pin);
    free(Pout);
    free(F);
}

TEST(gradproj_kron_nomem)
{
    float x[2] = {1, 2}, g[2] = {3, 4}, p[2] = {1, 1}, f[1] = {5};
    int64_t start[] = {0, 1};
    wn_kron_scratch scr;
    wn_kron_scratch_init(&scr);
    wn_alloc_fail_after(0);
    wn_err e = wn_kron_project(&scr, x, g, start, 1, NULL, 2, 2, p, 1, p, 1, f);
    wn_alloc_fail_after(-1);
    CHECK_EQ_INT(e, WN_ERR_NOMEM);
    CHECK(f[0] == 5);
    CHECK_EQ_INT(wn_kron_project(&scr, x, g, start, 1, NULL, 2, 2, p, 1, p, 1, f), WN_OK);
    CHECK(f[0] == 5 + (1 + 2) * (3 + 4)); /* (x . 1) (g . 1) */
    wn_kron_scratch_free(&scr);
}

/* ---- NLL and EL2N --------------------------------------------------------------- */

/* Straightforward double-precision versions: p = softmax, nll = -log p_y,
 * el2n = sqrt(sum_j (p_j - [j = y])^2). */
static void brute_nll_el2n(const float *x, int V, uint32_t y, double *nll, double *el2n)
{
    double m = x[0], S = 0, q = 0;
    for (int j = 1; j < V; j++) m = x[j] > m ? x[j] : m;
    for (int j = 0; j < V; j++) S += exp((double)x[j] - m);
    for (int j = 0; j < V; j++) {
        double d = exp((double)x[j] - m) / S - (j == (int)y);
        q += d * d;
    }
    *nll = log(S) - ((double)x[y] - m);
    *el2n = sqrt(q);
}

TEST(gradproj_nll_el2n)
{
    enum { N = 26, V = 1000 };
    uint64_t s = 31;
    float *lg = rand_floats((size_t)N * V, 5, &s), nll[N], el2n[N];
    uint32_t tg[N];
    for (int i = 0; i < N; i++) tg[i] = (uint32_t)(wn_splitmix64(&s) % V);
    float *row;
    /* row 20: uniform: nll = log V, el2n = sqrt(1 - 1/V) */
    row = lg + 20 * V;
    for (int j = 0; j < V; j++) row[j] = 0.25f;
    /* row 21: offset 1e4 (exp without the max overflows) */
    row = lg + 21 * V;
    for (int j = 0; j < V; j++) row[j] += 1e4f;
    /* row 22: the target is far below the others: p_y ~ 0 */
    row = lg + 22 * V;
    row[tg[22]] = -100.0f;
    /* row 23: huge magnitudes */
    row = lg + 23 * V;
    for (int j = 0; j < V; j++) row[j] *= 1e29f;
    row[tg[23]] = -1e30f;
    /* rows 24, 25: confident (closed forms below): target 3 + D, others 3 */
    for (int r = 24; r < 26; r++) {
        row = lg + (size_t)r * V;
        for (int j = 0; j < V; j++) row[j] = 3.0f;
        row[tg[r]] = 3.0f + (r == 24 ? 36.0f : 10.0f);
    }
    wn_token_nll_el2n(lg, tg, N, V, nll, el2n);
    int nbad = 0;
    for (int i = 0; i < N; i++) {
        double rn, re;
        brute_nll_el2n(lg + (size_t)i * V, V, tg[i], &rn, &re);
        if (i >= 24) { /* closed forms: e = exp(-D), S = 1 + (V-1) e */
            double D = i == 24 ? 36.0 : 10.0, e = exp(-D), S = 1 + (V - 1) * e;
            rn = log1p((V - 1) * e);
            re = e * sqrt((V - 1) + (double)(V - 1) * (V - 1)) / S;
        }
        int ok = fabs(nll[i] - rn) <= 1e-6 + 2e-6 * fabs(rn) && fabs(el2n[i] - re) <= 1e-6 + 2e-6 * fabs(re);
        if (i >= 24) /* relative accuracy on tiny values: these cancel in the naive formulas */
            ok &= fabs(nll[i] - rn) <= 2e-6 * rn && fabs(el2n[i] - re) <= 2e-6 * re;
        if (!ok && nbad++ < 5)
            fprintf(stderr, "  row %d: nll %.9g (want %.9g), el2n %.9g (want %.9g)\n", i, nll[i], rn, el2n[i], re);
    }
    CHECK_EQ_INT(nbad, 0);
    CHECK(fabsf(nll[20] - logf((float)V)) < 1e-5f);
    CHECK(fabsf(el2n[20] - sqrtf(1.0f - 1.0f / V)) < 1e-6f);
    CHECK(el2n[22] > 1.0f && el2n[22] < 1.4143f); /* p_y ~ 0: sqrt(sum p^2 + 1) */

    /* NULL outputs are skipped */
    float only[N];
    wn_token_nll_el2n(lg, tg, N, V, only, NULL);
    CHECK(memcmp(only, nll, sizeof only) == 0);
    wn_token_nll_el2n(lg, tg, N, V, NULL, only);
    CHECK(memcmp(only, el2n, sizeof only) == 0);
    wn_token_nll_el2n(NULL, NULL, 0, V, NULL, NULL);
    free(lg);
}

TEST(gradproj_nll_el2n_threads)
{
    int N = 300, V = 5000; /* N V above the parallel threshold */
    uint64_t s = 4;
    float *lg = rand_floats((size_t)N * V, 8, &s);
    uint32_t *tg = malloc((size_t)N * sizeof *tg);
    for (int i = 0; i < N; i++) tg[i] = (uint32_t)(wn_splitmix64(&s) % (uint64_t)V);
    float *a = malloc((size_t)N * 2 * sizeof *a), *b = malloc((size_t)N * 2 * sizeof *b);
    int saved = max_threads();
    set_threads(1);
    wn_token_nll_el2n(lg, tg, N, V, a, a + N);
    set_threads(2);
    wn_token_nll_el2n(lg, tg, N, V, b, b + N);
    set_threads(saved);
    CHECK(memcmp(a, b, (size_t)N * 2 * sizeof *a) == 0);
    free(lg);
    free(tg);
    free(a);
    free(b);
}
