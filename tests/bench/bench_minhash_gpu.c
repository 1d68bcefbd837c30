/*
 * bench_minhash_gpu.c - MinHash signatures on the CPU and on the GPU, as
 * minhash_dedup computes them, on generated web-like documents:
 *
 *   build/bench_minhash_gpu [--docs N] [--seed S] [--batch-bytes B] [--energy-seconds T]
 *
 * (built by `make build/bench_minhash_gpu` and `make cuda-check`; run by
 * scripts/gpu_check.sh). Steps, each printed with seconds, documents/s, GB/s of
 * document text and shingles/s:
 *   1. N documents (default 100,000, about 3 KB each) of English-like text
 *      generated in-process: a 5,000-word vocabulary with Zipf frequencies,
 *      sentences with punctuation and numbers, paragraphs, 200 B to 20 KB
 *      (log-normal lengths), about 3% of the documents with accented or CJK
 *      words, 8% near-duplicates of an earlier document. Deterministic for a
 *      seed; no libc rand.
 *   2. shingle hashes on the host, all threads: minhash_dedup's defaults
 *      (full normalization, word 5-grams, xxh3-64), src/minhash.c's
 *      wn_mh_shingles. The GPU path needs this step too.
 *   3. signatures on the CPU, src/minhash.c's wn_mh_signatures, 112
 *      permutations (14 bands x 8 rows): one thread on the first
 *      min(N, 20,000) documents, then all threads on all of them (chunks of
 *      256 documents shared out by OpenMP).
 *   4. with a CUDA device, the kernel (kernels/minhash_kernels.h) on all N in
 *      one call: kernel + transfers (host wall time) and kernel only (CUDA
 *      events), best of 3 after a warm-up call; then in batches of
 *      --batch-bytes of text (default 4 MiB, a manifest's default batch_bytes:
 *      how minhash_dedup calls it), kernel + transfers. The GPU's signatures
 *      must be identical to the CPU's (exit 1 otherwise, with the first
 *      mismatches). Then, when NVML can be read (src/energy.h), the one-call
 *      run is repeated for --energy-seconds (default 3) and the GPU's
 *      energy per document is printed.
 * Without a CUDA device, step 4 prints a SKIP line and the program exits 0.
 * GB/s counts the documents' text bytes, whatever the step's input is (the
 * signature steps read the shingle hashes), so the rows compare as
 * throughput of the same corpus.
 */
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../kernels/device.h"
#include "../../kernels/minhash_kernels.h"
#include "../../src/energy.h"
#include "../../src/minhash.h"

enum { BANDS = 14, ROWS = 8, NPERM = BANDS * ROWS, NGRAM = 5, ONE_THREAD_DOCS = 20000, CHUNK = 256 };

static void *xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p) {
        fprintf(stderr, "bench_minhash_gpu: out of memory (%zu bytes)\n", n);
        exit(2);
    }
    return p;
}

/* ---- the corpus: web-like text ------------------------------------------------------ */

enum { VOCAB = 5000 };
static char vocab[VOCAB][24];
static double zipf_cdf[VOCAB];

static double unit(uint64_t *s) { return (double)(wn_splitmix64(s) >> 11) * (1.0 / 9007199254740992.0); }
static uint32_t below(uint64_t *s, uint32_t n) { return (uint32_t)((wn_splitmix64(s) >> 32) * n >> 32); }

/* Frequent English words first, then made-up words of 1-4 syllables; a few
 * carry accents or are CJK, so normalization has work. Frequencies ~ 1/rank. */
static void build_vocab(uint64_t seed)
{
    static const char *const common[] = {
        "the", "of", "and", "to", "a", "in", "is", "that", "for", "it", "on", "with", "as", "was", "by",
        "this", "are", "be", "at", "from", "or", "an", "have", "not", "but", "which", "can", "more", "their",
        "will", "all", "one", "has", "about", "they", "you", "new", "we", "our", "when", "what", "there",
        "also", "than", "been", "into", "its", "other", "some", "time", "people", "first", "may", "most"};
    static const char *const syl[] = {"ka", "ro", "men", "ti", "sa", "lo", "ver", "na", "de", "pri", "con",
                                      "tra", "ble", "mi", "ste", "ar", "po", "lin", "qua", "ex", "gen",
                                      "ta", "ur", "bo", "cle", "fo", "ri", "dus", "ent", "ow"};
    static const char *const odd[] = {"café", "naïve", "résumé", "東京", "über", "São", "Ｆｕｌｌ", "ﬁsh"};
    uint64_t s = seed;
    size_t nc = sizeof common / sizeof *common;
    for (int i = 0; i < VOCAB; i++) {
        if ((size_t)i < nc) {
            snprintf(vocab[i], sizeof vocab[i], "%s", common[i]);
        } else if (i % 160 == 7) {
            snprintf(vocab[i], sizeof vocab[i], "%s", odd[(i / 160) % 8]);
        } else {
            int n = 1 + (int)below(&s, 4);
            vocab[i][0] = 0;
            for (int k = 0; k < n; k++) strcat(vocab[i], syl[below(&s, sizeof syl / sizeof *syl)]);
        }
    }
    double sum = 0;
    for (int i = 0; i < VOCAB; i++) sum += 1.0 / (i + 1);
    double c = 0;
    for (int i = 0; i < VOCAB; i++) zipf_cdf[i] = (c += 1.0 / (i + 1) / sum);
}

static const char *word(uint64_t *s)
{
    double u = unit(s);
    int lo = 0, hi = VOCAB - 1;
    while (lo < hi) {
        int m = (lo + hi) / 2;
        if (zipf_cdf[m] < u) lo = m + 1;
        else hi = m;
    }
    return vocab[lo];
}

typedef struct {
    char *p;
    size_t n, cap;
} text;

static void put(text *t, const char *s, size_t n)
{
    if (t->n + n + 1 > t->cap) {
        size_t cap = t->cap ? t->cap * 2 : 4096;
        while (cap < t->n + n + 1) cap *= 2;
        char *p = realloc(t->p, cap);
        if (!p) {
            fprintf(stderr, "bench_minhash_gpu: out of memory\n");
            exit(2);
        }
        t->p = p;
        t->cap = cap;
    }
    memcpy(t->p + t->n, s, n);
    t->n += n;
    t->p[t->n] = 0;
}

static void puts_(text *t, const char *s) { put(t, s, strlen(s)); }

/* One sentence: 6-24 words, the first capitalized, commas, numbers. */
static void sentence(text *t, uint64_t *s)
{
    int n = 6 + (int)below(s, 19);
    for (int i = 0; i < n; i++) {
        char w[48];
        if (unit(s) < 0.02) snprintf(w, sizeof w, "%u", 1 + below(s, 2030));
        else snprintf(w, sizeof w, "%s", word(s));
        if (i == 0 && w[0] >= 'a' && w[0] <= 'z') w[0] = (char)(w[0] - 'a' + 'A');
        if (i) puts_(t, " ");
        puts_(t, w);
        if (i + 1 < n && unit(s) < 0.08) puts_(t, ",");
    }
    puts_(t, unit(s) < 0.1 ? "? " : ". ");
}

/* The text of document seed: paragraphs of sentences up to a log-normal
 * length (median 2 KB), 200 B to 20 KB. */
static void doc_text(text *t, uint64_t seed)
{
    uint64_t s = seed;
    double u1 = unit(&s) + 1e-12, u2 = unit(&s);
    double len = exp(log(2000.0) + 0.9 * sqrt(-2 * log(u1)) * cos(2 * M_PI * u2));
    size_t want = len < 200 ? 200 : len > 20000 ? 20000 : (size_t)len;
    t->n = 0;
    while (t->n < want) {
        int k = 3 + (int)below(&s, 4);
        for (int i = 0; i < k && t->n < want; i++) sentence(t, &s);
        if (t->n < want) puts_(t, "\n\n");
    }
}

typedef struct {
    int64_t n;
    char **text;
    size_t *len;
    uint64_t bytes;
    uint64_t *h, *off; /* shingle hashes of document d: h[off[d] .. off[d+1]) */
} corpus;

static uint64_t doc_seed(uint64_t seed, int64_t d)
{
    uint64_t s = seed ^ ((uint64_t)d * 0x9E3779B97F4A7C15ull);
    return wn_splitmix64(&s);
}

static void generate(corpus *c, int64_t n, uint64_t seed)
{
    build_vocab(seed);
    c->n = n;
    c->text = xmalloc((size_t)n * sizeof *c->text);
    c->len = xmalloc((size_t)n * sizeof *c->len);
    uint64_t bytes = 0;
#pragma omp parallel for schedule(dynamic, 64) reduction(+ : bytes)
    for (int64_t d = 0; d < n; d++) {
        uint64_t s = doc_seed(seed, d) ^ 0x5bd1e995u;
        text t = {0};
        if (d > 0 && unit(&s) < 0.08) { /* a near-duplicate: an earlier text and one more sentence */
            doc_text(&t, doc_seed(seed, (int64_t)below(&s, (uint32_t)(d < 1000000 ? d : 1000000))));
            puts_(&t, "\n\n");
            sentence(&t, &s);
        } else {
            doc_text(&t, doc_seed(seed, d));
        }
        c->text[d] = t.p;
        c->len[d] = t.n;
        bytes += t.n;
    }
    c->bytes = bytes;
}

/* Step 2: every document's shingle hashes, concatenated. */
static void shingle_all(corpus *c)
{
    int64_t n = c->n;
    uint64_t **per = xmalloc((size_t)n * sizeof *per);
    c->off = xmalloc((size_t)(n + 1) * sizeof *c->off);
    wn_mh_cfg cfg = {WN_MH_WORD, NGRAM, 1};
    int bad = 0;
#pragma omp parallel reduction(| : bad)
    {
        wn_mh_scratch sc = {0};
#pragma omp for schedule(dynamic, 64)
        for (int64_t d = 0; d < n; d++) {
            if (wn_mh_shingles(&sc, &cfg, c->text[d], c->len[d])) {
                bad = 1;
                per[d] = NULL;
                c->off[d + 1] = 0;
                continue;
            }
            per[d] = xmalloc(sc.n_h * sizeof *per[d]);
            memcpy(per[d], sc.h, sc.n_h * sizeof *sc.h);
            c->off[d + 1] = sc.n_h;
        }
        wn_mh_scratch_free(&sc);
    }
    if (bad) {
        fprintf(stderr, "bench_minhash_gpu: wn_mh_shingles failed\n");
        exit(2);
    }
    c->off[0] = 0;
    for (int64_t d = 0; d < n; d++) c->off[d + 1] += c->off[d];
    c->h = xmalloc(c->off[n] * sizeof *c->h);
#pragma omp parallel for schedule(dynamic, 256)
    for (int64_t d = 0; d < n; d++) {
        memcpy(c->h + c->off[d], per[d], (c->off[d + 1] - c->off[d]) * sizeof *c->h);
        free(per[d]);
    }
    free(per);
}

/* ---- timing and output ---------------------------------------------------------------- */

static void row(const char *what, double sec, int64_t docs, uint64_t bytes, uint64_t shingles)
{
    printf("%-52s %9.4f %12.0f %9.3f %12.3g\n", what, sec, docs / sec, bytes / sec / 1e9, shingles / sec);
}

/* Signatures of documents [0, n) with wn_mh_signatures, all threads. */
static void cpu_signatures(const corpus *c, int64_t n, const uint64_t *a, const uint64_t *b, uint64_t *sig)
{
#pragma omp parallel for schedule(dynamic, 1)
    for (int64_t d0 = 0; d0 < n; d0 += CHUNK) {
        int64_t nd = n - d0 < CHUNK ? n - d0 : CHUNK;
        wn_mh_signatures(c->h, c->off + d0, nd, a, b, NPERM, sig + (size_t)d0 * NPERM);
    }
}

/* 0 when equal; else prints the first mismatches and returns their count. */
static size_t compare(const uint64_t *got, const uint64_t *want, int64_t ndocs, const char *what)
{
    size_t bad = 0, n = (size_t)ndocs * NPERM;
    for (size_t i = 0; i < n; i++)
        if (got[i] != want[i] && bad++ < 5)
            printf("  %s: mismatch at document %zu permutation %zu: %llu, want %llu\n", what, i / NPERM, i % NPERM,
                   (unsigned long long)got[i], (unsigned long long)want[i]);
    if (bad) printf("  %s: %zu of %zu values differ\n", what, bad, n);
    return bad;
}

/* Documents [d0, d0 + nd) on the GPU; off: their offsets rebased to h (the
 * kernel uploads h[0 .. off[nd])). */
static int gpu_call(const uint64_t *h, const uint64_t *off, int64_t nd, const uint64_t *a, const uint64_t *b,
                    uint64_t *sig)
{
    int rc = wn_cuda_minhash_signatures(h, off, nd, a, b, NPERM, sig);
    if (rc) fprintf(stderr, "bench_minhash_gpu: GPU signatures failed: %s\n", wn_cuda_minhash_last_error());
    return rc;
}

/* Step 4 (a CUDA device is visible): returns the exit status. */
static int gpu_part(const corpus *c, const uint64_t *a, const uint64_t *b, const uint64_t *ref, size_t batch_bytes,
                    double energy_seconds)
{
    int64_t n = c->n;
    uint64_t sh = c->off[n];
    uint64_t *sig = xmalloc((size_t)n * NPERM * sizeof *sig);
    memset(sig, 0xa5, (size_t)n * NPERM * sizeof *sig);
    if (gpu_call(c->h, c->off, n, a, b, sig)) return 1; /* warm-up: context, buffers */
    if (wn_cuda_minhash_timing(1)) {
        fprintf(stderr, "bench_minhash_gpu: CUDA events: %s\n", wn_cuda_minhash_last_error());
        return 1;
    }
    double best = 1e30;
    float up = 0, ker = 0, down = 0;
    for (int r = 0; r < 3; r++) {
        double t0 = wn_now();
        if (gpu_call(c->h, c->off, n, a, b, sig)) return 1;
        double t = wn_now() - t0;
        float u, k, d;
        if (wn_cuda_minhash_last_times(&u, &k, &d)) {
            fprintf(stderr, "bench_minhash_gpu: %s\n", wn_cuda_minhash_last_error());
            return 1;
        }
        if (t < best) best = t, up = u, ker = k, down = d;
    }
    wn_cuda_minhash_timing(0);
    size_t bad = compare(sig, ref, n, "GPU vs CPU");
    row("signatures, GPU, one call: kernel + transfers", best, n, c->bytes, sh);
    row("signatures, GPU, one call: kernel only", ker / 1e3, n, c->bytes, sh);
    printf("  (best of 3; upload %.1f ms = %.1f GB/s for %.0f MB of hashes, kernel %.1f ms, download %.1f ms; "
           "the rest of the wall time is host-side)\n",
           up, (double)sh * 8 / (up / 1e3) / 1e9, (double)sh * 8 / 1e6, ker, down);

    /* in batches of batch_bytes of text, as the run loop hands them to
     * minhash_dedup (which gathers each batch's hashes and offsets as
     * rebased here, before the timing) */
    int64_t calls = 0, *first = xmalloc((size_t)(n + 1) * sizeof *first);
    uint64_t *boff = xmalloc((size_t)(2 * n + 1) * sizeof *boff), *bo = boff;
    for (int64_t d0 = 0; d0 < n; calls++) {
        int64_t d1 = d0;
        size_t bytes = 0;
        while (d1 < n && bytes < batch_bytes) bytes += c->len[d1++];
        first[calls] = d0;
        for (int64_t d = d0; d <= d1; d++) *bo++ = c->off[d] - c->off[d0];
        d0 = d1;
    }
    first[calls] = n;
    memset(sig, 0xa5, (size_t)n * NPERM * sizeof *sig);
    best = 1e30;
    for (int r = 0; r < 3; r++) {
        double t0 = wn_now();
        bo = boff;
        for (int64_t k = 0; k < calls; k++) {
            int64_t d0 = first[k], nd = first[k + 1] - d0;
            if (gpu_call(c->h + c->off[d0], bo, nd, a, b, sig + (size_t)d0 * NPERM)) return 1;
            bo += nd + 1;
        }
        double t = wn_now() - t0;
        if (t < best) best = t;
    }
    free(first);
    free(boff);
    bad += compare(sig, ref, n, "GPU (batches) vs CPU");
    char what[96];
    snprintf(what, sizeof what, "signatures, GPU, %.3g MiB batches: kernel + transfers", batch_bytes / 1048576.0);
    row(what, best, n, c->bytes, sh);
    printf("  (best of 3; %lld calls, %.1f documents each)\n", (long long)calls, (double)n / (double)calls);
    printf("GPU signatures identical to the CPU's: %s (%lld documents x %d permutations)\n", bad ? "NO" : "yes",
           (long long)n, NPERM);

    /* energy: NVML's counters refresh every few tens of ms, so measure over seconds of back-to-back calls */
    wn_energy_gpu_mark m = wn_energy_gpu_start();
    if (!m.ok) {
        printf("GPU energy: not measured (%s)\n", wn_energy_gpu_why());
    } else if (energy_seconds > 0) {
        double t0 = wn_now(), t;
        int64_t reps = 0;
        do {
            if (gpu_call(c->h, c->off, n, a, b, sig)) return 1;
            reps++;
        } while ((t = wn_now() - t0) < energy_seconds);
        double j = wn_energy_gpu_since(&m);
        if (j < 0) printf("GPU energy: not measured (%s)\n", wn_energy_gpu_why());
        else
            printf("GPU energy (NVML, %d GPU%s, one-call runs back to back for %.1f s): %.1f J, %.0f W average, "
                   "%.3f mJ per document, %.1f J per GB of text\n",
                   wn_energy_gpu_count(), wn_energy_gpu_count() == 1 ? "" : "s", t, j, j / t,
                   j / (double)(reps * n) * 1e3, j / ((double)reps * (double)c->bytes / 1e9));
    }
    wn_cuda_minhash_shutdown();
    free(sig);
    return bad ? 1 : 0;
}

int main(int argc, char **argv)
{
    int64_t n = 100000;
    uint64_t seed = 11;
    size_t batch_bytes = 4u << 20;
    double energy_seconds = 3;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--docs") && i + 1 < argc) n = atoll(argv[++i]);
        else if (!strcmp(argv[i], "--seed") && i + 1 < argc) seed = strtoull(argv[++i], NULL, 10);
        else if (!strcmp(argv[i], "--batch-bytes") && i + 1 < argc) batch_bytes = strtoull(argv[++i], NULL, 10);
        else if (!strcmp(argv[i], "--energy-seconds") && i + 1 < argc) energy_seconds = atof(argv[++i]);
        else {
            fprintf(stderr, "usage: bench_minhash_gpu [--docs N] [--seed S] [--batch-bytes B] [--energy-seconds T]\n");
            return 2;
        }
    }
    if (n < 1 || !batch_bytes) {
        fprintf(stderr, "bench_minhash_gpu: --docs and --batch-bytes must be positive\n");
        return 2;
    }
    int threads = omp_get_max_threads();
    corpus c = {0};
    double t0 = wn_now();
    generate(&c, n, seed);
    double t_gen = wn_now() - t0;
    t0 = wn_now();
    shingle_all(&c);
    double t_sh = wn_now() - t0;
    uint64_t sh = c.off[n];
    printf("bench_minhash_gpu: %lld documents, %.1f MB of text (%.0f B each on average; generated in %.1f s), "
           "%.1f M shingles (word %d-grams, normalized), %d permutations (%d bands x %d rows), %d threads\n",
           (long long)n, c.bytes / 1e6, (double)c.bytes / (double)n, t_gen, sh / 1e6, NGRAM, NPERM, BANDS, ROWS,
           threads);
    printf("%-52s %9s %12s %9s %12s\n", "step", "seconds", "docs/s", "GB/s text", "shingles/s");
    char what[96];
    snprintf(what, sizeof what, "shingle hashes, host, %d threads", threads);
    row(what, t_sh, n, c.bytes, sh);

    uint64_t a[NPERM], b[NPERM];
    wn_mh_perms(42, NPERM, a, b); /* minhash_dedup's default seed */
    uint64_t *ref = xmalloc((size_t)n * NPERM * sizeof *ref);
    int64_t n1 = n < ONE_THREAD_DOCS ? n : ONE_THREAD_DOCS;
    uint64_t *one = xmalloc((size_t)n1 * NPERM * sizeof *one);
    t0 = wn_now();
    wn_mh_signatures(c.h, c.off, n1, a, b, NPERM, one);
    double t1 = wn_now() - t0;
    uint64_t bytes1 = 0;
    for (int64_t d = 0; d < n1; d++) bytes1 += c.len[d];
    snprintf(what, sizeof what, "signatures, CPU, 1 thread (first %lld documents)", (long long)n1);
    row(what, t1, n1, bytes1, c.off[n1]);
    t0 = wn_now();
    cpu_signatures(&c, n, a, b, ref);
    double tall = wn_now() - t0;
    snprintf(what, sizeof what, "signatures, CPU, %d threads", threads);
    row(what, tall, n, c.bytes, sh);
    int rc = compare(one, ref, n1, "1 thread vs all threads") ? 1 : 0;
    free(one);

    if (wn_cuda_device_count() < 1) {
        printf("SKIP: no CUDA device: GPU signatures not run (%s)\n",
               wn_cuda_built() ? "none visible" : "built without CUDA");
    } else {
        char desc[256] = "?";
        wn_cuda_device_describe(0, desc, sizeof desc);
        printf("GPU: %s\n", desc);
        rc |= gpu_part(&c, a, b, ref, batch_bytes, energy_seconds);
    }
    for (int64_t d = 0; d < n; d++) free(c.text[d]);
    free(c.text), free(c.len), free(c.h), free(c.off), free(ref);
    return rc;
}
