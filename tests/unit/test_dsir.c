/*
 * test_dsir.c - unit tests for dsir.c: bucket counts and log weights against
 * the Python reference (tests/fixtures/dsir_ref.json, written by
 * scripts/make_dsir_fixture.py), the fast featurizer against a naive one on
 * random texts, independence from the thread count, the counts file
 * (round trip, every truncation and every flipped byte rejected), model
 * argument errors, empty texts, invalid UTF-8 and out-of-memory. With
 * ../shared present, counts and weights of the 697 documents of the dolma
 * CC-MAIN sample are compared with the same reference.
 */
#include "../test.h"
#include "dsir.h"
#include "fs.h"
#include "json.h"
#include "reader.h"
#include "text.h"

#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <unistd.h>
#include <utf8proc.h>
#include <xxhash.h>

#define FIXTURE "tests/fixtures/dsir_ref.json"

/* ---- the fixture ------------------------------------------------------------- */

typedef struct {
    wn_buf text;
    int64_t words, bytes;
    wn_span counts64, counts10k; /* raw JSON arrays of [bucket, count] */
} fx_text;

typedef struct {
    int64_t m;
    double laplace;
    int64_t target_features, raw_features;
    wn_span logweights; /* raw JSON array */
} fx_model;

typedef struct {
    wn_buf json;
    fx_text *t;
    size_t nt;
    wn_buf *target, *raw;
    size_t ntarget, nraw;
    fx_model models[8];
    size_t nmodels;
    wn_span corpus; /* raw JSON object, n = 0 when absent */
} fixture;

static int64_t get_i64(wn_span obj, const char *key)
{
    wn_span v;
    int64_t x = -1;
    if (!wn_json_get(obj.p, obj.n, key, &v) || !wn_json_to_i64(v, &x)) fprintf(stderr, "  fixture: no %s\n", key);
    return x;
}

static double get_f64(wn_span obj, const char *key)
{
    wn_span v;
    double x = NAN;
    if (!wn_json_get(obj.p, obj.n, key, &v) || !wn_json_to_double(v, &x)) fprintf(stderr, "  fixture: no %s\n", key);
    return x;
}

static size_t decode_strings(wn_span arr, wn_buf **out)
{
    wn_json_iter it;
    wn_span v;
    size_t n = 0;
    wn_json_items_init(&it, arr.p, arr.n);
    while (wn_json_items_next(&it, &v)) n++;
    *out = calloc(n ? n : 1, sizeof **out);
    wn_json_items_init(&it, arr.p, arr.n);
    for (size_t i = 0; wn_json_items_next(&it, &v); i++) {
        wn_buf_reserve(&(*out)[i], 0);
        wn_json_decode_string(v, &(*out)[i]);
    }
    return n;
}

static void fixture_free(fixture *f)
{
    for (size_t i = 0; i < f->nt; i++) wn_buf_free(&f->t[i].text);
    for (size_t i = 0; i < f->ntarget; i++) wn_buf_free(&f->target[i]);
    for (size_t i = 0; i < f->nraw; i++) wn_buf_free(&f->raw[i]);
    free(f->t);
    free(f->target);
    free(f->raw);
    wn_buf_free(&f->json);
    memset(f, 0, sizeof *f);
}

static int fixture_load(fixture *f)
{
    memset(f, 0, sizeof *f);
    wn_errbuf err;
    if (wn_read_file(FIXTURE, &f->json, &err)) {
        fprintf(stderr, "  %s\n", err.msg);
        return 0;
    }
    size_t off;
    const char *why;
    if (wn_json_check_object(f->json.p, f->json.len, &off, &why)) {
        fprintf(stderr, "  %s: offset %zu: %s\n", FIXTURE, off, why);
        return 0;
    }
    wn_span texts, target, raw, models, v;
    if (!wn_json_get(f->json.p, f->json.len, "texts", &texts) ||
        !wn_json_get(f->json.p, f->json.len, "target", &target) ||
        !wn_json_get(f->json.p, f->json.len, "raw", &raw) ||
        !wn_json_get(f->json.p, f->json.len, "models", &models))
        return 0;
    if (!wn_json_get(f->json.p, f->json.len, "corpus", &f->corpus)) f->corpus.n = 0;
    f->ntarget = decode_strings(target, &f->target);
    f->nraw = decode_strings(raw, &f->raw);

    wn_json_iter it;
    wn_json_items_init(&it, texts.p, texts.n);
    while (wn_json_items_next(&it, &v)) f->nt++;
    f->t = calloc(f->nt, sizeof *f->t);
    wn_json_items_init(&it, texts.p, texts.n);
    for (size_t i = 0; wn_json_items_next(&it, &v); i++) {
        fx_text *t = &f->t[i];
        wn_span s;
        wn_buf_reserve(&t->text, 0);
        if (wn_json_get(v.p, v.n, "text", &s)) wn_json_decode_string(s, &t->text);
        t->words = get_i64(v, "words");
        t->bytes = get_i64(v, "bytes");
        wn_json_get(v.p, v.n, "counts_64", &t->counts64);
        wn_json_get(v.p, v.n, "counts_10000", &t->counts10k);
    }
    wn_json_items_init(&it, models.p, models.n);
    while (f->nmodels < WN_ARRAY_LEN(f->models) && wn_json_items_next(&it, &v)) {
        fx_model *m = &f->models[f->nmodels++];
        m->m = get_i64(v, "m");
        m->laplace = get_f64(v, "laplace");
        m->target_features = get_i64(v, "target_features");
        m->raw_features = get_i64(v, "raw_features");
        wn_json_get(v.p, v.n, "logweights", &m->logweights);
    }
    return f->nt > 0 && f->ntarget > 0 && f->nraw > 0 && f->nmodels > 0;
}

/* Expands a sparse [[bucket, count], ...] array into want[m]; 0 on a bad entry. */
static int sparse_to_dense(wn_span arr, uint64_t *want, uint64_t m)
{
    memset(want, 0, m * sizeof *want);
    wn_json_iter it, pit;
    wn_span pair, a, b;
    wn_json_items_init(&it, arr.p, arr.n);
    while (wn_json_items_next(&it, &pair)) {
        int64_t j, c;
        wn_json_items_init(&pit, pair.p, pair.n);
        if (!wn_json_items_next(&pit, &a) || !wn_json_items_next(&pit, &b) || !wn_json_to_i64(a, &j) ||
            !wn_json_to_i64(b, &c) || j < 0 || (uint64_t)j >= m || c <= 0)
            return 0;
        want[j] = (uint64_t)c;
    }
    return 1;
}

static size_t read_doubles(wn_span arr, double *out, size_t cap)
{
    wn_json_iter it;
    wn_span v;
    size_t n = 0;
    wn_json_items_init(&it, arr.p, arr.n);
    while (n < cap && wn_json_items_next(&it, &v))
        if (!wn_json_to_double(v, &out[n++])) out[n - 1] = NAN;
    return n;
}

/* tolerance abs + rel * |ref|. Today the weights equal Python's bit for bit
 * (same log(), same summation order); the tolerance allows another libm. */
static int close_to(double got, double want) { return fabs(got - want) <= 1e-12 + 1e-9 * fabs(want); }

/* ---- a naive featurizer: the oracle for the fast one ---------------------------- */

/* The Python definitions written out: \w = L*, N*, '_'; \s = White_Space and
 * U+001C..U+001F; invalid bytes are non-word characters. */
static int ref_kind(int32_t c)
{
    if (c < 0) return 2;
    if (c == '_') return 1;
    switch (utf8proc_category(c)) {
    case UTF8PROC_CATEGORY_LU: case UTF8PROC_CATEGORY_LL: case UTF8PROC_CATEGORY_LT:
    case UTF8PROC_CATEGORY_LM: case UTF8PROC_CATEGORY_LO:
    case UTF8PROC_CATEGORY_ND: case UTF8PROC_CATEGORY_NL: case UTF8PROC_CATEGORY_NO:
        return 1;
    default:
        break;
    }
    return wn_is_space(c) || (c >= 0x1c && c <= 0x1f) ? 3 : 2;
}

/* Token strings, then every feature built as its own string; buckets in
 * emission order (unigram k, then bigram k-1 k) go to b[], their number is
 * returned, the token count to *words. */
static size_t ref_features(const char *s, size_t n, uint64_t m, uint64_t **b, uint64_t *words)
{
    wn_buf *tok = NULL;
    size_t ntok = 0, cap = 0, i = 0;
    int prev = 0;
    while (i < n) {
        size_t at = i;
        int32_t c = wn_utf8_next(s, n, &i);
        int32_t l = c < 0 ? -1 : utf8proc_tolower(c);
        int k = ref_kind(l);
        if (k == 3) {
            prev = 0;
            continue;
        }
        if (k != prev) {
            if (ntok == cap) {
                cap = cap ? 2 * cap : 16;
                tok = realloc(tok, cap * sizeof *tok);
            }
            memset(&tok[ntok++], 0, sizeof *tok);
            wn_buf_reserve(&tok[ntok - 1], 0);
            prev = k;
        }
        if (l < 0) wn_buf_append(&tok[ntok - 1], s + at, 1);
        else wn_utf8_put(&tok[ntok - 1], l);
    }
    *b = malloc((2 * ntok + 1) * sizeof **b);
    size_t nb = 0;
    wn_buf bi = {0};
    for (size_t k = 0; k < ntok; k++) {
        (*b)[nb++] = XXH3_64bits(tok[k].p, tok[k].len) % m;
        if (k) {
            wn_buf_clear(&bi);
            wn_buf_append(&bi, tok[k - 1].p, tok[k - 1].len);
            wn_buf_putc(&bi, ' ');
            wn_buf_append(&bi, tok[k].p, tok[k].len);
            (*b)[nb++] = XXH3_64bits(bi.p, bi.len) % m;
        }
    }
    for (size_t k = 0; k < ntok; k++) wn_buf_free(&tok[k]);
    free(tok);
    wn_buf_free(&bi);
    *words = ntok;
    return nb;
}

/* Random texts from pieces that exercise every path: ASCII classes, case
 * changes that change the byte length, marks, spaces outside ASCII, emoji,
 * NUL, invalid and truncated sequences; sometimes one piece repeated long
 * enough to outgrow the scratch buffer. */
static void random_text(uint64_t *rng, wn_buf *out)
{
    static const char *pieces[] = {
        "a", "Z", "q", "_", "7", " ", " ", "  ", "\t", "\n", "\r\n", ".", ",", "!!", "-", "'",
        "\xc3\xa9",         /* é */
        "\xc3\x89",         /* É */
        "\xc3\x9f",         /* ß */
        "\xe1\xba\x9e",     /* ẞ -> ß */
        "\xc4\xb0",         /* İ -> i */
        "\xce\xa3",         /* Σ */
        "\xe6\x97\xa5",     /* 日 */
        "\xcc\x81",         /* combining acute (Mn) */
        "\xf0\x9f\x98\x80", /* 😀 */
        "\xc2\xa0",         /* NBSP */
        "\xe3\x80\x80",     /* ideographic space */
        "\xc2\x85",         /* NEL */
        "\x1c", "\x1f", "\x0b",
        "\xff",             /* invalid byte */
        "\xe2\x82",         /* truncated sequence */
        "\xe2\x84\xaa",     /* Kelvin sign -> k */
        "\xc8\xba",         /* Ⱥ -> ⱥ (2 -> 3 bytes) */
        "\xc2\xb2",         /* ² (No) */
        "\xe2\x80\xbf",     /* ‿ (Pc, not \w) */
        "\xd9\xa3",         /* Arabic-Indic 3 */
    };
    wn_buf_clear(out);
    size_t n = wn_splitmix64(rng) % 400;
    for (size_t i = 0; i < n; i++) {
        const char *p = pieces[wn_splitmix64(rng) % WN_ARRAY_LEN(pieces)];
        size_t rep = wn_splitmix64(rng) % 64 == 0 ? 1 + wn_splitmix64(rng) % 6000 : 1;
        for (size_t r = 0; r < rep; r++) wn_buf_puts(out, p);
    }
    if (!out->p) wn_buf_reserve(out, 0);
}

/* ---- tests ------------------------------------------------------------------- */

TEST(dsir_counts_match_python)
{
    fixture f;
    int ok = fixture_load(&f);
    CHECK(ok);
    if (!ok) {
        fixture_free(&f);
        return;
    }
    static const uint64_t ms[] = {64, 10000};
    uint64_t *want = malloc(10000 * sizeof *want);
    wn_dsir_scratch s = {0}; /* one scratch across all texts: reuse is part of the test */
    wn_errbuf err;
    int bad = 0;
    for (size_t i = 0; i < f.nt; i++) {
        fx_text *t = &f.t[i];
        CHECK_EQ_INT(t->text.len, t->bytes); /* the JSON decoded to the script's bytes */
        for (size_t k = 0; k < WN_ARRAY_LEN(ms); k++) {
            uint64_t m = ms[k];
            wn_dsir_counts c;
            CHECK(wn_dsir_counts_init(&c, m, &err) == WN_OK);
            uint64_t words = 99;
            CHECK(wn_dsir_counts_add_text(&c, t->text.p, t->text.len, &s, &words, &err) == WN_OK);
            CHECK_EQ_INT(words, t->words);
            CHECK_EQ_INT(c.words, t->words);
            CHECK_EQ_INT(c.docs, 1);
            CHECK(sparse_to_dense(m == 64 ? t->counts64 : t->counts10k, want, m));
            uint64_t total = 0;
            for (uint64_t j = 0; j < m; j++) {
                total += c.c[j];
                if (c.c[j] != want[j] && bad++ < 10)
                    fprintf(stderr, "  text %zu, m %llu: bucket %llu: %llu, python %llu\n", i,
                            (unsigned long long)m, (unsigned long long)j, (unsigned long long)c.c[j],
                            (unsigned long long)want[j]);
            }
            CHECK_EQ_INT(total, t->words ? 2 * t->words - 1 : 0);
            wn_dsir_counts_free(&c);
        }
    }
    CHECK_EQ_INT(bad, 0);
    wn_dsir_scratch_free(&s);
    free(want);
    fixture_free(&f);
}

/* Fits counts over a list of texts. */
static void fit(wn_dsir_counts *c, uint64_t m, const wn_buf *texts, size_t n, wn_dsir_scratch *s, int *wn_failed_)
{
    wn_errbuf err;
    CHECK(wn_dsir_counts_init(c, m, &err) == WN_OK);
    for (size_t i = 0; i < n; i++) CHECK(wn_dsir_counts_add_text(c, texts[i].p, texts[i].len, s, NULL, &err) == WN_OK);
    CHECK_EQ_INT(c->docs, n);
}

TEST(dsir_logweights_match_python)
{
    fixture f;
    int ok = fixture_load(&f);
    CHECK(ok);
    if (!ok) {
        fixture_free(&f);
        return;
    }
    size_t nall = f.nt + f.ntarget + f.nraw;
    double *want = malloc(nall * sizeof *want);
    wn_dsir_scratch s = {0};
    wn_errbuf err;
    int bad = 0;
    for (size_t k = 0; k < f.nmodels; k++) {
        fx_model *fm = &f.models[k];
        wn_dsir_counts ct, cr;
        fit(&ct, (uint64_t)fm->m, f.target, f.ntarget, &s, wn_failed_);
        fit(&cr, (uint64_t)fm->m, f.raw, f.nraw, &s, wn_failed_);
        uint64_t st = 0, sr = 0;
        for (int64_t j = 0; j < fm->m; j++) st += ct.c[j], sr += cr.c[j];
        CHECK_EQ_INT(st, fm->target_features);
        CHECK_EQ_INT(sr, fm->raw_features);
        wn_dsir_model mdl;
        CHECK(wn_dsir_model_init(&mdl, &ct, &cr, fm->laplace, &err) == WN_OK);
        CHECK_EQ_INT(read_doubles(fm->logweights, want, nall), nall);
        for (size_t i = 0; i < nall && mdl.r; i++) {
            const wn_buf *t = i < f.nt ? &f.t[i].text : i < f.nt + f.ntarget ? &f.target[i - f.nt]
                                                                                : &f.raw[i - f.nt - f.ntarget];
            double lw = NAN;
            uint64_t words;
            CHECK(wn_dsir_logweight(&mdl, t->p, t->len, &s, &lw, &words, &err) == WN_OK);
            if (i < f.nt) CHECK_EQ_INT(words, f.t[i].words);
            if (!close_to(lw, want[i]) && bad++ < 10)
                fprintf(stderr, "  model %zu (m %lld, laplace %g) text %zu: %.17g, python %.17g\n", k,
                        (long long)fm->m, fm->laplace, i, lw, want[i]);
        }
        /* The reference's weights are not all zero: the check can fail. */
        double spread = 0;
        for (size_t i = 0; i < nall; i++) spread += fabs(want[i]);
        CHECK(spread > 1);
        wn_dsir_model_free(&mdl);
        wn_dsir_counts_free(&ct);
        wn_dsir_counts_free(&cr);
    }
    CHECK_EQ_INT(bad, 0);
    wn_dsir_scratch_free(&s);
    free(want);
    fixture_free(&f);
}

TEST(dsir_fast_equals_naive_on_random_text)
{
    static const uint64_t ms[] = {64, 997, 10000};
    uint64_t rng = 20260501;
    wn_buf text = {0};
    wn_dsir_scratch s = {0};
    wn_errbuf err;
    /* A hand-made model: r_j without structure the sum could hide behind. */
    wn_dsir_model mdl = {0};
    int bad = 0;
    for (int doc = 0; doc < 300; doc++) {
        random_text(&rng, &text);
        uint64_t m = ms[doc % WN_ARRAY_LEN(ms)];
        uint64_t *b, words_ref, words;
        size_t nb = ref_features(text.p, text.len, m, &b, &words_ref);
        wn_dsir_counts c;
        CHECK(wn_dsir_counts_init(&c, m, &err) == WN_OK);
        CHECK(wn_dsir_counts_add_text(&c, text.p, text.len, &s, &words, &err) == WN_OK);
        CHECK_EQ_INT(words, words_ref);
        uint64_t *want = calloc(m, sizeof *want);
        for (size_t q = 0; q < nb; q++) want[b[q]]++;
        if (memcmp(want, c.c, m * sizeof *want) && bad++ < 5)
            fprintf(stderr, "  random doc %d (%zu bytes, m %llu): counts differ from the naive featurizer\n", doc,
                    text.len, (unsigned long long)m);
        /* The weight sums the same buckets in the same order: equal doubles. */
        if (mdl.m != m) {
            free(mdl.r);
            mdl.m = m;
            mdl.r = malloc(m * sizeof *mdl.r);
            for (uint64_t j = 0; j < m; j++) mdl.r[j] = sin((double)j * 1.7) * 3.0 + 1.0 / (double)(j + 1);
        }
        double acc = 0, lw;
        for (size_t q = 0; q < nb; q++) acc += mdl.r[b[q]];
        CHECK(wn_dsir_logweight(&mdl, text.p, text.len, &s, &lw, &words, &err) == WN_OK);
        if (lw != acc && bad++ < 5) fprintf(stderr, "  random doc %d: weight %.17g, naive %.17g\n", doc, lw, acc);
        CHECK_EQ_INT(words, words_ref);
        free(want);
        free(b);
        wn_dsir_counts_free(&c);
    }
    CHECK_EQ_INT(bad, 0);
    free(mdl.r);
    wn_dsir_scratch_free(&s);
    wn_buf_free(&text);
}

TEST(dsir_results_independent_of_threads)
{
    enum { NDOC = 240, M = 4096 };
    uint64_t rng = 77;
    wn_buf *docs = calloc(NDOC, sizeof *docs);
    for (int i = 0; i < NDOC; i++) random_text(&rng, &docs[i]);
    wn_errbuf err;
    wn_dsir_scratch s = {0};
    wn_dsir_counts ct, cr;
    fit(&ct, M, docs, NDOC / 4, &s, wn_failed_);
    fit(&cr, M, docs + NDOC / 4, NDOC - NDOC / 4, &s, wn_failed_);
    wn_dsir_model mdl;
    CHECK(wn_dsir_model_init(&mdl, &ct, &cr, 0.25, &err) == WN_OK);
    double serial[NDOC];
    uint64_t wserial[NDOC];
    for (int i = 0; i < NDOC; i++)
        CHECK(wn_dsir_logweight(&mdl, docs[i].p, docs[i].len, &s, &serial[i], &wserial[i], &err) == WN_OK);
    static const int threads[] = {2, 3, 4};
    for (size_t t = 0; t < WN_ARRAY_LEN(threads); t++) {
        double par[NDOC];
        uint64_t wpar[NDOC];
        int fails = 0, nt = threads[t];
        /* Per-thread counts merged afterwards must equal the serial counts. */
        wn_dsir_counts part[4], merged;
        for (int k = 0; k < nt; k++) CHECK(wn_dsir_counts_init(&part[k], M, &err) == WN_OK);
#pragma omp parallel num_threads(nt) reduction(+ : fails)
        {
            wn_dsir_scratch ts = {0};
            wn_errbuf terr;
            wn_dsir_counts *mine = &part[omp_get_thread_num()];
#pragma omp for schedule(dynamic, 1)
            for (int i = 0; i < NDOC; i++) {
                fails += wn_dsir_logweight(&mdl, docs[i].p, docs[i].len, &ts, &par[i], &wpar[i], &terr) != WN_OK;
                if (i >= NDOC / 4)
                    fails += wn_dsir_counts_add_text(mine, docs[i].p, docs[i].len, &ts, NULL, &terr) != WN_OK;
            }
            wn_dsir_scratch_free(&ts);
        }
        CHECK_EQ_INT(fails, 0);
        CHECK(memcmp(par, serial, sizeof par) == 0);
        CHECK(memcmp(wpar, wserial, sizeof wpar) == 0);
        CHECK(wn_dsir_counts_init(&merged, M, &err) == WN_OK);
        for (int k = nt - 1; k >= 0; k--) CHECK(wn_dsir_counts_merge(&merged, &part[k], &err) == WN_OK);
        CHECK(memcmp(merged.c, cr.c, M * sizeof *cr.c) == 0);
        CHECK_EQ_INT(merged.docs, cr.docs);
        CHECK_EQ_INT(merged.words, cr.words);
        for (int k = 0; k < nt; k++) wn_dsir_counts_free(&part[k]);
        wn_dsir_counts_free(&merged);
    }
    wn_dsir_model_free(&mdl);
    wn_dsir_counts_free(&ct);
    wn_dsir_counts_free(&cr);
    wn_dsir_scratch_free(&s);
    for (int i = 0; i < NDOC; i++) wn_buf_free(&docs[i]);
    free(docs);
}

/* A small counts vector with non-trivial contents. */
static void sample_counts(wn_dsir_counts *c, uint64_t m, int *wn_failed_)
{
    wn_errbuf err;
    wn_dsir_scratch s = {0};
    CHECK(wn_dsir_counts_init(c, m, &err) == WN_OK);
    static const char *t[] = {"The quick brown fox.", "Jumps over THE lazy dog!", "",
                              "caf\xc3\xa9 \xe6\x97\xa5\xe6\x9c\xac"};
    for (size_t i = 0; i < WN_ARRAY_LEN(t); i++)
        CHECK(wn_dsir_counts_add_text(c, t[i], strlen(t[i]), &s, NULL, &err) == WN_OK);
    c->c[m - 1] += 1ull << 40; /* a count that needs more than 32 bits */
    wn_dsir_scratch_free(&s);
}

TEST(dsir_counts_save_load_round_trip)
{
    char dir[64];
    snprintf(dir, sizeof dir, "/tmp/wn-dsir-XXXXXX");
    CHECK(mkdtemp(dir) != NULL);
    char path[128];
    snprintf(path, sizeof path, "%s/target.counts", dir);
    wn_errbuf err;
    static const uint64_t ms[] = {1, 64, 10000};
    for (size_t k = 0; k < WN_ARRAY_LEN(ms); k++) {
        wn_dsir_counts c, back;
        sample_counts(&c, ms[k], wn_failed_);
        CHECK(wn_dsir_counts_save(&c, path, &err) == WN_OK);
        CHECK(wn_dsir_counts_load(&back, path, &err) == WN_OK);
        CHECK_EQ_INT(back.m, c.m);
        CHECK_EQ_INT(back.docs, 4);
        CHECK_EQ_INT(back.words, c.words);
        CHECK(back.c && memcmp(back.c, c.c, c.m * sizeof *c.c) == 0);
        wn_buf raw = {0};
        CHECK(wn_read_file(path, &raw, &err) == WN_OK);
        CHECK_EQ_INT(raw.len, 48 + 8 * ms[k]);
        CHECK(raw.len >= 8 && memcmp(raw.p, "WNDSIRC", 8) == 0);
        wn_buf_free(&raw);
        wn_dsir_counts_free(&c);
        wn_dsir_counts_free(&back);
    }
    wn_dsir_counts c;
    sample_counts(&c, 8, wn_failed_);
    CHECK(wn_dsir_counts_save(&c, "/nonexistent-dir/x.counts", &err) == WN_ERR_IO);
    wn_dsir_counts_free(&c);
    wn_dsir_counts back;
    CHECK(wn_dsir_counts_load(&back, "/nonexistent-dir/x.counts", &err) == WN_ERR_IO);
    CHECK(back.c == NULL);
    wn_dsir_counts_free(&back); /* a failed load leaves a freeable struct */
    CHECK(wn_rm_tree(dir, &err) == WN_OK);
}

/* Parses a heap copy of exactly n bytes (ASan sees any read past it). */
static wn_err parse_copy(const char *p, size_t n, wn_errbuf *err)
{
    char *copy = malloc(n ? n : 1);
    memcpy(copy, p, n);
    wn_dsir_counts c;
    wn_err e = wn_dsir_counts_parse(&c, copy, n, "test.counts", err);
    wn_dsir_counts_free(&c);
    free(copy);
    return e;
}

TEST(dsir_counts_load_rejects_corrupt)
{
    char dir[64];
    snprintf(dir, sizeof dir, "/tmp/wn-dsir-XXXXXX");
    CHECK(mkdtemp(dir) != NULL);
    char path[128];
    snprintf(path, sizeof path, "%s/c.counts", dir);
    wn_errbuf err;
    wn_dsir_counts c;
    sample_counts(&c, 64, wn_failed_);
    CHECK(wn_dsir_counts_save(&c, path, &err) == WN_OK);
    wn_buf f = {0};
    CHECK(wn_read_file(path, &f, &err) == WN_OK);
    CHECK_EQ_INT(f.len, 48 + 8 * 64);
    CHECK(parse_copy(f.p, f.len, &err) == WN_OK);

    int accepted = 0;
    for (size_t k = 0; k < f.len; k++) /* every truncation */
        accepted += parse_copy(f.p, k, &err) != WN_ERR_INPUT;
    CHECK_EQ_INT(accepted, 0);
    for (size_t k = 0; k < f.len; k++) { /* every byte flipped, low and high bit */
        for (int bit = 0; bit < 8; bit += 7) {
            f.p[k] ^= (char)(1 << bit);
            if (parse_copy(f.p, f.len, &err) != WN_ERR_INPUT && accepted++ < 5)
                fprintf(stderr, "  flipped bit %d of byte %zu accepted\n", bit, k);
            f.p[k] ^= (char)(1 << bit);
        }
    }
    CHECK_EQ_INT(accepted, 0);

    /* The messages name the problem. */
    wn_buf g = {0};
    wn_buf_append(&g, f.p, f.len);
    wn_buf_putc(&g, 0);
    CHECK(parse_copy(g.p, g.len, &err) == WN_ERR_INPUT && strstr(err.msg, "trailing"));
    g.p[8] = 2;
    CHECK(parse_copy(g.p, f.len, &err) == WN_ERR_INPUT && strstr(err.msg, "version 2"));
    g.p[8] = 1;
    g.p[12] = 9;
    CHECK(parse_copy(g.p, f.len, &err) == WN_ERR_INPUT && strstr(err.msg, "features id 9"));
    g.p[12] = 1;
    g.p[100] ^= 1;
    CHECK(parse_copy(g.p, f.len, &err) == WN_ERR_INPUT && strstr(err.msg, "checksum"));
    memset(g.p + 16, 0xff, 8); /* m = 2^64 - 1: refused before any allocation */
    CHECK(parse_copy(g.p, f.len, &err) == WN_ERR_INPUT && strstr(err.msg, "buckets"));
    CHECK(parse_copy("GIF89a", 6, &err) == WN_ERR_INPUT);
    wn_buf_free(&g);

    /* A truncated file on disk: an error from load, not a crash. */
    CHECK(wn_write_atomic(path, f.p, f.len - 3, &err) == WN_OK);
    wn_dsir_counts back;
    CHECK(wn_dsir_counts_load(&back, path, &err) == WN_ERR_INPUT);
    CHECK(strstr(err.msg, path) != NULL);
    wn_dsir_counts_free(&back);

    wn_buf_free(&f);
    wn_dsir_counts_free(&c);
    CHECK(wn_rm_tree(dir, &err) == WN_OK);
}

TEST(dsir_empty_text_and_invalid_utf8)
{
    wn_errbuf err;
    wn_dsir_scratch s = {0};
    wn_dsir_counts ct, cr;
    sample_counts(&ct, 100, wn_failed_);
    sample_counts(&cr, 100, wn_failed_);
    cr.c[3] += 5;
    wn_dsir_model mdl;
    CHECK(wn_dsir_model_init(&mdl, &ct, &cr, 1.0, &err) == WN_OK);
    static const char *empty[] = {"", " ", " \t\n\r\x0b\x0c\x1c\x1d\x1e\x1f", "\xc2\xa0\xe3\x80\x80\xc2\x85"};
    for (size_t i = 0; i < WN_ARRAY_LEN(empty); i++) {
        double lw = 1;
        uint64_t words = 1;
        CHECK(wn_dsir_logweight(&mdl, empty[i], strlen(empty[i]), &s, &lw, &words, &err) == WN_OK);
        CHECK(lw == 0);
        CHECK_EQ_INT(words, 0);
    }
    double lw;
    uint64_t words = 1;
    CHECK(wn_dsir_logweight(&mdl, NULL, 0, &s, &lw, &words, &err) == WN_OK && lw == 0 && words == 0);

    /* Invalid bytes are non-word characters hashed as themselves: "ab", the
     * run "\xff\xfe", "cd" and the two bigrams. */
    wn_dsir_counts c;
    CHECK(wn_dsir_counts_init(&c, 1000003, &err) == WN_OK);
    CHECK(wn_dsir_counts_add_text(&c, "AB\xff\xfe" "cd", 6, &s, &words, &err) == WN_OK);
    CHECK_EQ_INT(words, 3);
    static const char *feat[] = {"ab", "\xff\xfe", "cd", "ab \xff\xfe", "\xff\xfe cd"};
    uint64_t sum = 0;
    for (size_t i = 0; i < WN_ARRAY_LEN(feat); i++) {
        uint64_t b = XXH3_64bits(feat[i], strlen(feat[i])) % c.m;
        CHECK(c.c[b] >= 1);
        sum += c.c[b];
        c.c[b] = 0; /* five distinct buckets: the sum below would double count otherwise */
    }
    CHECK_EQ_INT(sum, 5);
    wn_dsir_counts_free(&c);
    wn_dsir_model_free(&mdl);
    wn_dsir_counts_free(&ct);
    wn_dsir_counts_free(&cr);
    wn_dsir_scratch_free(&s);
}

TEST(dsir_argument_errors)
{
    wn_errbuf err;
    wn_dsir_counts a, b, z, z2;
    CHECK(wn_dsir_counts_init(&a, 0, &err) == WN_ERR_USAGE);
    CHECK(wn_dsir_counts_init(&a, WN_DSIR_MAX_BUCKETS + 1, &err) == WN_ERR_USAGE);
    sample_counts(&a, 64, wn_failed_);
    sample_counts(&b, 65, wn_failed_);
    CHECK(wn_dsir_counts_merge(&a, &b, &err) == WN_ERR_USAGE);
    wn_dsir_model mdl;
    CHECK(wn_dsir_model_init(&mdl, &a, &b, 0, &err) == WN_ERR_USAGE && mdl.r == NULL);
    wn_dsir_counts_free(&b);
    sample_counts(&b, 64, wn_failed_);
    CHECK(wn_dsir_model_init(&mdl, &a, &b, -1, &err) == WN_ERR_USAGE);
    CHECK(wn_dsir_model_init(&mdl, &a, &b, NAN, &err) == WN_ERR_USAGE);
    CHECK(wn_dsir_model_init(&mdl, &a, &b, INFINITY, &err) == WN_ERR_USAGE);
    CHECK(wn_dsir_counts_init(&z, 64, &err) == WN_OK);
    CHECK(wn_dsir_counts_init(&z2, 64, &err) == WN_OK);
    CHECK(wn_dsir_model_init(&mdl, &z, &b, 0, &err) == WN_ERR_INPUT && strstr(err.msg, "target"));
    CHECK(wn_dsir_model_init(&mdl, &a, &z, 0, &err) == WN_ERR_INPUT && strstr(err.msg, "raw"));
    /* Empty counts with a pseudo-count are uniform: both uniform gives r = 0. */
    CHECK(wn_dsir_model_init(&mdl, &z, &z2, 0.5, &err) == WN_OK);
    for (int j = 0; j < 64 && mdl.r; j++) CHECK(mdl.r[j] == 0);
    wn_dsir_model_free(&mdl);
    wn_dsir_model_free(&mdl); /* frees twice, and NULL, safely */
    wn_dsir_model_free(NULL);
    wn_dsir_counts_free(NULL);
    wn_dsir_scratch_free(NULL);
    /* merge adds everything */
    CHECK(wn_dsir_counts_merge(&z, &a, &err) == WN_OK);
    CHECK(wn_dsir_counts_merge(&z, &a, &err) == WN_OK);
    CHECK_EQ_INT(z.docs, 2 * a.docs);
    CHECK_EQ_INT(z.words, 2 * a.words);
    for (int j = 0; j < 64; j++) CHECK(z.c[j] == 2 * a.c[j]);
    wn_dsir_counts_free(&a);
    wn_dsir_counts_free(&b);
    wn_dsir_counts_free(&z);
    wn_dsir_counts_free(&z2);
}

TEST(dsir_out_of_memory)
{
    wn_errbuf err;
    wn_dsir_counts c;
    wn_alloc_fail_after(0);
    CHECK(wn_dsir_counts_init(&c, 64, &err) == WN_ERR_NOMEM);
    wn_alloc_fail_after(-1);
    CHECK(wn_dsir_counts_init(&c, 64, &err) == WN_OK);
    wn_dsir_scratch s = {0};
    wn_alloc_fail_after(0); /* the scratch cannot get its first buffer */
    CHECK(wn_dsir_counts_add_text(&c, "hello world", 11, &s, NULL, &err) == WN_ERR_NOMEM);
    wn_alloc_fail_after(-1);
    CHECK(strstr(err.msg, "token buffer") != NULL);
    /* Fine again afterwards, and a long token grows the buffer. */
    char *big = malloc(100000);
    memset(big, 'x', 100000);
    uint64_t words;
    CHECK(wn_dsir_counts_add_text(&c, big, 100000, &s, &words, &err) == WN_OK);
    CHECK_EQ_INT(words, 1);
    CHECK(s.cap >= 100000);
    CHECK_EQ_INT(c.c[XXH3_64bits(big, 100000) % 64], 1);
    free(big);
    wn_dsir_model mdl;
    wn_alloc_fail_after(0);
    CHECK(wn_dsir_model_init(&mdl, &c, &c, 1, &err) == WN_ERR_NOMEM);
    wn_alloc_fail_after(-1);
    wn_dsir_scratch_free(&s);
    wn_dsir_counts_free(&c);
}

/* The dolma CC-MAIN sample (../shared): every document's words and counts,
 * and its log weight under target = the fixture's target texts, raw = the
 * corpus, against the Python reference. */
TEST(dsir_shared_corpus_matches_python)
{
    const char *shared = wn_test_shared_dir();
    if (!shared) SKIP("../shared not found (set WN_SHARED)");
    fixture f;
    int ok = fixture_load(&f);
    CHECK(ok);
    if (!ok || !f.corpus.n) {
        fixture_free(&f);
        if (ok) SKIP("fixture has no corpus section");
        return;
    }
    wn_span file, docs;
    wn_buf rel = {0};
    CHECK(wn_json_get(f.corpus.p, f.corpus.n, "file", &file) && wn_json_decode_string(file, &rel) == WN_OK);
    CHECK(wn_json_get(f.corpus.p, f.corpus.n, "docs", &docs));
    int64_t m = get_i64(f.corpus, "m");
    double laplace = get_f64(f.corpus, "laplace");
    char path[4200];
    snprintf(path, sizeof path, "%s/%s", shared, rel.p ? rel.p : "");
    wn_buf_free(&rel);
    if (access(path, R_OK)) {
        fixture_free(&f);
        SKIP("the dolma CC-MAIN sample is not in ../shared/corpora/web");
    }

    wn_input_spec spec;
    memset(&spec, 0, sizeof spec);
    spec.path = path;
    spec.text_key = (char *)"text";
    spec.id_key = (char *)"id";
    wn_input_file in = {.path = path, .format = WN_FMT_JSONL};
    wn_reader *r = NULL;
    wn_errbuf err;
    wn_doc d;
    memset(&d, 0, sizeof d);
    CHECK(wn_reader_open(&r, &in, &spec, 0, &err) == WN_OK);
    wn_buf *texts = NULL;
    size_t n = 0;
    int got;
    const char *reason;
    while (r && wn_reader_next(r, &d, &got, &reason, &err) == WN_OK && got) {
        texts = realloc(texts, (n + 1) * sizeof *texts);
        memset(&texts[n], 0, sizeof *texts);
        wn_buf_append(&texts[n], d.text.p ? d.text.p : "", d.text.len);
        n++;
    }
    wn_reader_close(r);
    wn_buf_free(&d.id), wn_buf_free(&d.text), wn_buf_free(&d.raw), wn_buf_free(&d.attrs);

    wn_dsir_scratch s = {0};
    wn_dsir_counts ct, cr, one;
    fit(&ct, (uint64_t)m, f.target, f.ntarget, &s, wn_failed_);
    CHECK(wn_dsir_counts_init(&cr, (uint64_t)m, &err) == WN_OK);
    CHECK(wn_dsir_counts_init(&one, (uint64_t)m, &err) == WN_OK);
    wn_json_iter it, dit;
    wn_span row, v;
    size_t nref = 0;
    int bad = 0;
    wn_json_items_init(&it, docs.p, docs.n);
    for (size_t i = 0; i < n && wn_json_items_next(&it, &row); i++, nref++) {
        memset(one.c, 0, (size_t)m * sizeof *one.c);
        uint64_t words;
        CHECK(wn_dsir_counts_add_text(&one, texts[i].p, texts[i].len, &s, &words, &err) == WN_OK);
        CHECK(wn_dsir_counts_merge(&cr, &one, &err) == WN_OK);
        int64_t want_words = -1;
        wn_buf hex = {0};
        wn_json_items_init(&dit, row.p, row.n);
        if (wn_json_items_next(&dit, &v)) wn_json_to_i64(v, &want_words);
        if (wn_json_items_next(&dit, &v)) wn_json_decode_string(v, &hex);
        char got_hex[17];
        snprintf(got_hex, sizeof got_hex, "%016llx", (unsigned long long)XXH3_64bits(one.c, (size_t)m * 8));
        if (((int64_t)words != want_words || !hex.p || strcmp(hex.p, got_hex)) && bad++ < 10)
            fprintf(stderr, "  doc %zu: %llu words, counts %s; python %lld words, counts %s\n", i,
                    (unsigned long long)words, got_hex, (long long)want_words, hex.p ? hex.p : "?");
        wn_buf_free(&hex);
    }
    CHECK_EQ_INT(n, 697);
    CHECK_EQ_INT(nref, n);
    CHECK_EQ_INT(bad, 0);

    wn_dsir_model mdl;
    CHECK(wn_dsir_model_init(&mdl, &ct, &cr, laplace, &err) == WN_OK);
    wn_json_items_init(&it, docs.p, docs.n);
    int badw = 0;
    for (size_t i = 0; i < n && mdl.r && wn_json_items_next(&it, &row); i++) {
        double want = NAN, lw;
        wn_json_items_init(&dit, row.p, row.n);
        for (int k = 0; k < 3 && wn_json_items_next(&dit, &v); k++)
            if (k == 2) wn_json_to_double(v, &want);
        CHECK(wn_dsir_logweight(&mdl, texts[i].p, texts[i].len, &s, &lw, NULL, &err) == WN_OK);
        if (!close_to(lw, want) && badw++ < 10)
            fprintf(stderr, "  doc %zu: log weight %.17g, python %.17g\n", i, lw, want);
    }
    CHECK_EQ_INT(badw, 0);
    wn_dsir_model_free(&mdl);
    wn_dsir_counts_free(&ct);
    wn_dsir_counts_free(&cr);
    wn_dsir_counts_free(&one);
    wn_dsir_scratch_free(&s);
    for (size_t i = 0; i < n; i++) wn_buf_free(&texts[i]);
    free(texts);
    fixture_free(&f);
}
