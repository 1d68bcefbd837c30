/*
 * test_select.c - the select stage through its descriptor (parameters by the
 * real manifest loader), on synthetic documents whose scores, tokens and
 * per-token scores are set by hand, each decision checked against a naive
 * reference written here: document budgets (tokens, documents, fraction),
 * order, ties, Gumbel sampling, quotas, missing scores, token masks per
 * sequence and over the stream, checkpoint/restore of the spill; and pack's
 * weights sidecar (concat and best_fit, checkpointed windows).
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "../stage_harness.h"
#include "../test.h"
#include "fs.h"
#include "json.h"
#include "shard.h"
#include "stage.h"

typedef wn_test_stage harness;

static const char *const two_inputs[] = {"web/*.jsonl", "books/*.jsonl"};

/* Opens select (or pack) with run facts: a 1000-token vocabulary, EOT 0, and
 * two input files from two manifest inputs. */
static int open_with(harness *h, wn_run_info *ri, const char *stage, const char *params, int threads)
{
    memset(h, 0, sizeof *h);
    memset(ri, 0, sizeof *ri);
    ri->vocab_size = 1000;
    ri->eot_id = 0;
    ri->file_inputs = two_inputs;
    ri->n_files = 2;
    if (!wn_test_stage_dir(h)) return 0;
    ri->run_dir = h->dir;
    h->st.run = ri;
    return wn_test_stage_open(h, stage, params, threads) == WN_OK;
}

/* A document: id "dNNNNN", score as attribute "s" (NAN = none), ntok tokens
 * (token 0 = EOT), raw {"id":..,"text":..,"src":"<group>"}. */
static wn_doc *add_doc(wn_batch *b, int i, double score, size_t ntok, const char *group)
{
    wn_doc *d = wn_batch_push(b);
    char v[128];
    snprintf(v, sizeof v, "d%05d", i);
    wn_buf_puts(&d->id, v);
    snprintf(v, sizeof v, "text of document %d", i);
    wn_buf_puts(&d->text, v);
    wn_buf_printf(&d->raw, "{\"id\":\"d%05d\",\"text\":\"%s\",\"src\":\"%s\"}", i, v, group ? group : "a");
    d->raw_text = 1;
    d->record = (uint64_t)i;
    d->file = (uint32_t)(i & 1);
    wn_doc_attr(d, "n", "1");
    if (!isnan(score)) {
        snprintf(v, sizeof v, "%.17g", score);
        wn_doc_attr(d, "s", v);
    }
    d->has_tokens = 1;
    for (size_t t = 0; t < ntok; t++) wn_ids_push(&d->tokens, t ? (uint32_t)(1 + (i * 7 + t) % 999) : 0);
    return d;
}

/* What the stage handed on: every document in the order it came out (kept
 * and dropped, as the framework sees them). */
typedef struct {
    char id[32];
    const char *drop;
    uint64_t ntok;
    float *w; /* tweight copy (NULL when none) */
    wn_doc full; /* for the field round trip */
} out_doc;

typedef struct {
    out_doc *d;
    size_t n, cap;
} outs;

static void outs_add(outs *o, const wn_doc *d, int deep)
{
    if (o->n == o->cap) {
        o->cap = o->cap ? o->cap * 2 : 256;
        o->d = realloc(o->d, o->cap * sizeof *o->d);
    }
    out_doc *x = &o->d[o->n++];
    memset(x, 0, sizeof *x);
    snprintf(x->id, sizeof x->id, "%.*s", (int)d->id.len, d->id.p);
    x->drop = d->drop;
    x->ntok = d->tokens.n;
    if (d->tweight.n) {
        x->w = malloc(d->tweight.n * sizeof *x->w);
        memcpy(x->w, d->tweight.p, d->tweight.n * sizeof *x->w);
    }
    if (deep) {
        wn_buf_append(&x->full.text, d->text.p, d->text.len);
        wn_buf_append(&x->full.raw, d->raw.p, d->raw.len);
        wn_buf_append(&x->full.attrs, d->attrs.p, d->attrs.len);
        for (size_t t = 0; t < d->tokens.n; t++) wn_ids_push(&x->full.tokens, d->tokens.p[t]);
        wn_floats_resize(&x->full.tscore, d->tscore.n);
        if (d->tscore.n) memcpy(x->full.tscore.p, d->tscore.p, d->tscore.n * sizeof(float));
        x->full.has_tokens = d->has_tokens;
        x->full.raw_text = d->raw_text;
        x->full.dirty = d->dirty;
        x->full.file = d->file;
        x->full.record = d->record;
    }
}

static void outs_free(outs *o)
{
    for (size_t i = 0; i < o->n; i++) {
        free(o->d[i].w);
        wn_buf_free(&o->d[i].full.text);
        wn_buf_free(&o->d[i].full.raw);
        wn_buf_free(&o->d[i].full.attrs);
        wn_ids_free(&o->d[i].full.tokens);
        wn_floats_free(&o->d[i].full.tscore);
    }
    free(o->d);
    memset(o, 0, sizeof *o);
}

/* Passes documents [from, to) of `in` to process, `per` at a time, collecting
 * what comes back. Returns process's error. */
static wn_err feed(harness *h, const wn_batch *in, size_t from, size_t to, size_t per, outs *o, int deep)
{
    wn_batch b = {0};
    wn_err e = WN_OK;
    for (size_t i = from; i < to && !e; i += per) {
        wn_batch_reset(&b);
        for (size_t j = i; j < to && j < i + per; j++) {
            const wn_doc *s = &in->docs[j];
            wn_doc *d = wn_batch_push(&b);
            wn_buf_append(&d->id, s->id.p, s->id.len);
            wn_buf_append(&d->text, s->text.p, s->text.len);
            wn_buf_append(&d->raw, s->raw.p, s->raw.len);
            wn_buf_append(&d->attrs, s->attrs.p, s->attrs.len);
            for (size_t t = 0; t < s->tokens.n; t++) wn_ids_push(&d->tokens, s->tokens.p[t]);
            wn_floats_resize(&d->tscore, s->tscore.n);
            if (s->tscore.n) memcpy(d->tscore.p, s->tscore.p, s->tscore.n * sizeof(float));
            wn_floats_resize(&d->tweight, s->tweight.n);
            if (s->tweight.n) memcpy(d->tweight.p, s->tweight.p, s->tweight.n * sizeof(float));
            d->has_tokens = s->has_tokens;
            d->raw_text = s->raw_text;
            d->dirty = s->dirty;
            d->file = s->file;
            d->record = s->record;
        }
        e = h->st.def->process(&h->st, &b);
        for (size_t j = 0; !e && j < b.n; j++) outs_add(o, &b.docs[j], deep);
    }
    wn_batch_free(&b);
    return e;
}

static wn_err drain(harness *h, outs *o, int deep)
{
    wn_batch b = {0};
    wn_err e = WN_OK;
    for (int calls = 0; !e; calls++) {
        wn_batch_reset(&b);
        if ((e = h->st.def->finish(&h->st, &b)) || !b.n) break;
        for (size_t j = 0; j < b.n; j++) outs_add(o, &b.docs[j], deep);
    }
    wn_batch_free(&b);
    return e;
}

static wn_err run_stage(harness *h, const wn_batch *in, size_t per, outs *o)
{
    wn_err e = feed(h, in, 0, in->n, per, o, 0);
    return e ? e : drain(h, o, 0);
}

static int kept(const outs *o, const char *id)
{
    for (size_t i = 0; i < o->n; i++)
        if (!strcmp(o->d[i].id, id)) return !o->d[i].drop;
    return -1;
}

/* The report as text, and a number in it by a dotted path. */
static void report(harness *h, wn_buf *out)
{
    wn_jw w;
    wn_buf_clear(out);
    wn_jw_init(&w, out, 0);
    wn_jw_obj_begin(&w);
    h->st.def->report(&h->st, &w);
    wn_jw_obj_end(&w);
}

static double rnum(const wn_buf *r, const char *path)
{
    wn_span v = {r->p, r->len};
    char key[64];
    for (const char *p = path; *p;) {
        const char *dot = strchr(p, '.');
        size_t n = dot ? (size_t)(dot - p) : strlen(p);
        snprintf(key, sizeof key, "%.*s", (int)n, p);
        if (!wn_json_get(v.p, v.n, key, &v)) return NAN;
        p += n + (dot ? 1 : 0);
    }
    double x = NAN;
    wn_json_to_double(v, &x);
    return x;
}

typedef struct {
    double score;
    size_t ntok, index;
} ref_doc;

static int ref_desc(const void *a, const void *b)
{
    const ref_doc *x = a, *y = b;
    if (x->score != y->score) return x->score > y->score ? -1 : 1;
    return x->index < y->index ? -1 : 1;
}

/* Random documents: distinct-ish scores, 1..60 tokens. */
static void random_docs(wn_batch *in, int n, unsigned seed, ref_doc *ref)
{
    for (int i = 0; i < n; i++) {
        double s = (double)(rand_r(&seed) % 100000) / 1000.0;
        size_t nt = 1 + (size_t)(rand_r(&seed) % 60);
        add_doc(in, i, s, nt, NULL);
        if (ref) ref[i] = (ref_doc){s, nt, (size_t)i};
    }
}

/* ---- document level ------------------------------------------------------------- */

TEST(select_budget_tokens_exact)
{
    enum { N = 500 };
    wn_run_info ri;
    harness h;
    ref_doc ref[N];
    wn_batch in = {0};
    random_docs(&in, N, 11, ref);
    CHECK(open_with(&h, &ri, "select", "score: s, budget_tokens: 3000", 2));
    outs o = {0};
    CHECK(run_stage(&h, &in, 37, &o) == WN_OK);
    CHECK_EQ_INT(o.n, N);
    /* the reference: best first, take while it fits, stop at the first misfit */
    qsort(ref, N, sizeof *ref, ref_desc);
    uint64_t spent = 0;
    size_t j = 0;
    for (; j < N && spent + ref[j].ntok <= 3000; j++) spent += ref[j].ntok;
    CHECK(j < N && spent + ref[j].ntok > 3000); /* the next candidate would exceed */
    uint64_t got = 0;
    int wrong = 0;
    for (size_t i = 0; i < N; i++) {
        char id[32];
        snprintf(id, sizeof id, "d%05zu", ref[i].index);
        int k = kept(&o, id);
        wrong += k != (i < j);
        if (k) got += ref[i].ntok;
    }
    CHECK_EQ_INT(wrong, 0);
    CHECK_EQ_INT(got, spent);
    CHECK(got <= 3000);
    /* output order is input order; the rejected carry below_threshold */
    for (size_t i = 0; i < o.n; i++) {
        char id[32];
        snprintf(id, sizeof id, "d%05zu", i);
        CHECK_EQ_STR(o.d[i].id, id);
        if (o.d[i].drop) CHECK_EQ_STR(o.d[i].drop, "below_threshold");
    }
    wn_buf r = {0};
    report(&h, &r);
    CHECK_EQ_INT(rnum(&r, "budget.asked"), 3000);
    CHECK_EQ_INT(rnum(&r, "budget.spent_tokens"), spent);
    CHECK_EQ_INT(rnum(&r, "selected.docs"), j);
    CHECK_EQ_INT(rnum(&r, "rejected.docs"), N - j);
    CHECK(rnum(&r, "threshold.score") == ref[j - 1].score);
    /* histograms: every candidate in exactly one bucket */
    wn_span hs, arr, item;
    double total = 0;
    CHECK(wn_json_get(r.p, r.len, "score_histogram", &hs));
    for (int k = 0; k < 2; k++) {
        wn_json_iter it;
        CHECK(wn_json_get(hs.p, hs.n, k ? "rejected" : "selected", &arr));
        wn_json_items_init(&it, arr.p, arr.n);
        int nb = 0;
        while (wn_json_items_next(&it, &item)) {
            double c;
            wn_json_to_double(item, &c);
            total += c;
            nb++;
        }
        CHECK_EQ_INT(nb, 20);
    }
    CHECK_EQ_INT(total, N);
    wn_buf_free(&r);
    outs_free(&o);
    wn_batch_free(&in);
    wn_test_stage_close(&h);
}

TEST(select_budget_docs_and_fraction_exact)
{
    enum { N = 300 };
    ref_doc ref[N];
    wn_batch in = {0};
    random_docs(&in, N, 5, ref);
    qsort(ref, N, sizeof *ref, ref_desc);
    {
        wn_run_info ri;
        harness h;
        outs o = {0};
        CHECK(open_with(&h, &ri, "select", "score: s, budget_docs: 37", 2));
        CHECK(run_stage(&h, &in, 50, &o) == WN_OK);
        int n = 0, wrong = 0;
        for (size_t i = 0; i < N; i++) {
            char id[32];
            snprintf(id, sizeof id, "d%05zu", ref[i].index);
            int k = kept(&o, id);
            n += k;
            wrong += k != (i < 37);
        }
        CHECK_EQ_INT(n, 37);
        CHECK_EQ_INT(wrong, 0);
        outs_free(&o);
        wn_test_stage_close(&h);
    }
    {
        wn_run_info ri;
        harness h;
        outs o = {0};
        CHECK(open_with(&h, &ri, "select", "score: s, budget_fraction: 0.25", 1));
        CHECK(run_stage(&h, &in, 1000, &o) == WN_OK);
        uint64_t total = 0, spent = 0, got = 0;
        for (size_t i = 0; i < N; i++) total += ref[i].ntok;
        uint64_t budget = total / 4; /* floor(0.25 x total) */
        size_t j = 0;
        for (; j < N && spent + ref[j].ntok <= budget; j++) spent += ref[j].ntok;
        for (size_t i = 0; i < N; i++) {
            char id[32];
            snprintf(id, sizeof id, "d%05zu", ref[i].index);
            if (kept(&o, id)) got += ref[i].ntok;
            CHECK(kept(&o, id) == (i < j));
        }
        CHECK_EQ_INT(got, spent);
        wn_buf r = {0};
        report(&h, &r);
        CHECK_EQ_INT(rnum(&r, "budget.asked"), budget);
        wn_buf_free(&r);
        outs_free(&o);
        wn_test_stage_close(&h);
    }
    wn_batch_free(&in);
}

TEST(select_order_asc_keeps_lowest)
{
    wn_run_info ri;
    harness h;
    wn_batch in = {0};
    for (int i = 0; i < 10; i++) add_doc(&in, i, (double)((i * 7) % 10), 5, NULL); /* scores 0,7,4,1,8,5,2,9,6,3 */
    CHECK(open_with(&h, &ri, "select", "score: s, order: asc, budget_docs: 3", 2));
    outs o = {0};
    CHECK(run_stage(&h, &in, 4, &o) == WN_OK);
    /* the three lowest: scores 0, 1, 2 = documents 0, 3, 6 */
    for (int i = 0; i < 10; i++) {
        char id[32];
        snprintf(id, sizeof id, "d%05d", i);
        CHECK(kept(&o, id) == (i == 0 || i == 3 || i == 6));
    }
    wn_buf r = {0};
    report(&h, &r);
    CHECK(rnum(&r, "threshold.score") == 2);
    wn_buf_free(&r);
    outs_free(&o);
    wn_batch_free(&in);
    wn_test_stage_close(&h);
}

TEST(select_ties_by_input_order_whatever_the_batching)
{
    wn_batch in = {0};
    for (int i = 0; i < 200; i++) add_doc(&in, i, i % 3 ? 1.0 : 2.0, 10, NULL);
    /* 67 documents score 2 (i % 3 == 0), then ties at 1 by input order */
    char first[2][4096] = {{0}};
    for (int v = 0; v < 2; v++) {
        wn_run_info ri;
        harness h;
        outs o = {0};
        CHECK(open_with(&h, &ri, "select", "score: s, budget_tokens: 1000", v ? 1 : 2));
        CHECK(run_stage(&h, &in, v ? 7 : 200, &o) == WN_OK);
        int n1 = 0;
        for (size_t i = 0; i < o.n; i++) {
            int idx = atoi(o.d[i].id + 1);
            first[v][i] = o.d[i].drop ? '0' : '1';
            if (idx % 3 == 0) CHECK(!o.d[i].drop);
            else if (!o.d[i].drop) {
                n1++;
                CHECK(idx <= 50); /* the first 33 ties: documents 1, 2, 4, ..., 49 */
            }
        }
        CHECK_EQ_INT(n1, 33);
        outs_free(&o);
        wn_test_stage_close(&h);
    }
    CHECK(!strcmp(first[0], first[1]));
    wn_batch_free(&in);
}

/* Inclusion counts per score level over `seeds` Gumbel draws. */
static void gumbel_rates(int *wn_failed_, const char *order, int seeds, double *rate)
{
    enum { LEVELS = 5, PER = 400 };
    wn_batch in = {0};
    for (int i = 0; i < LEVELS * PER; i++) add_doc(&in, i, (i % LEVELS) * 0.5, 4, NULL);
    int count[LEVELS] = {0};
    for (int seed = 1; seed <= seeds; seed++) {
        wn_run_info ri;
        harness h;
        outs o = {0};
        char p[128];
        snprintf(p, sizeof p, "score: s, order: %s, budget_docs: 500, temperature: 1, seed: %d", order, seed);
        CHECK(open_with(&h, &ri, "select", p, 2));
        CHECK(run_stage(&h, &in, 333, &o) == WN_OK);
        int n = 0;
        for (size_t i = 0; i < o.n; i++)
            if (!o.d[i].drop) {
                count[atoi(o.d[i].id + 1) % LEVELS]++;
                n++;
            }
        CHECK_EQ_INT(n, 500);
        outs_free(&o);
        wn_test_stage_close(&h);
    }
    for (int l = 0; l < LEVELS; l++) rate[l] = (double)count[l] / (PER * seeds);
    wn_batch_free(&in);
}

TEST(select_gumbel_deterministic_per_seed)
{
    wn_batch in = {0};
    random_docs(&in, 400, 3, NULL);
    char pat[3][401];
    const char *params[3] = {"score: s, budget_docs: 100, temperature: 2, seed: 7",
                             "score: s, budget_docs: 100, temperature: 2, seed: 7",
                             "score: s, budget_docs: 100, temperature: 2, seed: 8"};
    for (int v = 0; v < 3; v++) {
        wn_run_info ri;
        harness h;
        outs o = {0};
        CHECK(open_with(&h, &ri, "select", params[v], v == 1 ? 1 : 2));
        CHECK(run_stage(&h, &in, v == 1 ? 13 : 400, &o) == WN_OK);
        for (size_t i = 0; i < 400; i++) pat[v][i] = o.d[i].drop ? '0' : '1';
        pat[v][400] = 0;
        outs_free(&o);
        wn_test_stage_close(&h);
    }
    CHECK(!strcmp(pat[0], pat[1])); /* same seed: same sample, whatever batching and threads */
    CHECK(strcmp(pat[0], pat[2]) != 0);
    wn_batch_free(&in);
}

TEST(select_gumbel_inclusion_grows_with_score)
{
    /* Sampling without replacement in proportion to exp(score): levels 0,
     * 0.5, 1, 1.5, 2 of 400 documents each, 500 kept, 4 draws. */
    double r[5], a[5];
    gumbel_rates(wn_failed_, "desc", 4, r);
    for (int l = 1; l < 5; l++) CHECK(r[l] > r[l - 1] + 0.03);
    CHECK(r[0] > 0.02); /* it samples: the lowest level is not shut out */
    CHECK(r[4] < 0.95);
    /* asc samples in proportion to exp(-score): the mirror image */
    gumbel_rates(wn_failed_, "asc", 4, a);
    for (int l = 1; l < 5; l++) CHECK(a[l] < a[l - 1] - 0.03);
    for (int l = 0; l < 5; l++) CHECK(fabs(a[l] - r[4 - l]) < 0.08);
}

TEST(select_quota_by_field_and_source)
{
    /* group "a": 300 documents of 10 tokens, "b": 100 documents of 10 tokens */
    wn_batch in = {0};
    unsigned seed = 9;
    for (int i = 0; i < 400; i++) add_doc(&in, i, (double)(rand_r(&seed) % 1000), 10, i % 4 == 3 ? "b" : "a");
    {
        wn_run_info ri;
        harness h;
        outs o = {0};
        CHECK(open_with(&h, &ri, "select", "score: s, budget_docs: 101, quota_by: src", 2));
        CHECK(run_stage(&h, &in, 64, &o) == WN_OK);
        int na = 0, nb = 0;
        for (size_t i = 0; i < o.n; i++)
            if (!o.d[i].drop) *(atoi(o.d[i].id + 1) % 4 == 3 ? &nb : &na) += 1;
        /* 101 x 3/4 = 75.75, 101 x 1/4 = 25.25: floors 75 + 25, the larger remainder gets the last */
        CHECK_EQ_INT(na, 76);
        CHECK_EQ_INT(nb, 25);
        wn_buf r = {0};
        report(&h, &r);
        CHECK(strstr(r.p, "\"group\":\"a\",\"docs\":300,\"tokens\":3000,\"quota\":76,\"selected_docs\":76"));
        CHECK(strstr(r.p, "\"group\":\"b\",\"docs\":100,\"tokens\":1000,\"quota\":25,\"selected_docs\":25"));
        wn_buf_free(&r);
        outs_free(&o);
        wn_test_stage_close(&h);
    }
    {
        /* source: files alternate between two manifest inputs; a token budget */
        wn_run_info ri;
        harness h;
        outs o = {0};
        CHECK(open_with(&h, &ri, "select", "score: s, budget_tokens: 1005, quota_by: source", 2));
        CHECK(run_stage(&h, &in, 64, &o) == WN_OK);
        int n[2] = {0, 0};
        for (size_t i = 0; i < o.n; i++)
            if (!o.d[i].drop) n[atoi(o.d[i].id + 1) & 1]++;
        CHECK_EQ_INT(n[0], 50); /* quota 502 or 503 tokens: 50 documents of 10 */
        CHECK_EQ_INT(n[1], 50);
        wn_buf r = {0};
        report(&h, &r);
        CHECK(strstr(r.p, "\"group\":\"web/*.jsonl\",\"docs\":200,\"tokens\":2000,\"quota\":503"));
        CHECK(strstr(r.p, "\"group\":\"books/*.jsonl\",\"docs\":200,\"tokens\":2000,\"quota\":502"));
        wn_buf_free(&r);
        outs_free(&o);
        wn_test_stage_close(&h);
    }
    wn_batch_free(&in);
}

/* The naive walk with quotas, written here: groups in order of first
 * appearance, largest-remainder quotas, then best first (key desc, input
 * order), each taken while it fits its group, the first misfit closing it. */
static void ref_walk(const double *key, const size_t *ntok, const int *grp, int n, int ng, uint64_t budget, int docs,
                     char *take)
{
    uint64_t share[256] = {0}, quota[256], used[256] = {0}, total = 0, given = 0;
    unsigned __int128 rem[256];
    int full[256] = {0}, order[256], *idx = malloc((size_t)n * sizeof *idx);
    for (int i = 0; i < n; i++) share[grp[i]] += docs ? 1 : ntok[i];
    for (int g = 0; g < ng; g++) total += share[g];
    for (int g = 0; g < ng; g++) {
        unsigned __int128 x = (unsigned __int128)budget * share[g];
        quota[g] = total ? (uint64_t)(x / total) : 0;
        rem[g] = total ? x % total : 0;
        given += quota[g];
        order[g] = g;
    }
    for (int a = 0; a < ng; a++) /* by remainder desc, then group order */
        for (int b = a + 1; b < ng; b++)
            if (rem[order[b]] > rem[order[a]] || (rem[order[b]] == rem[order[a]] && order[b] < order[a])) {
                int t = order[a];
                order[a] = order[b];
                order[b] = t;
            }
    for (int a = 0; given < budget && a < ng && total; a++, given++) quota[order[a]]++;
    for (int i = 0; i < n; i++) idx[i] = i;
    for (int a = 1; a < n; a++) { /* insertion sort: key desc (-0 == +0), then index */
        int x = idx[a], b = a;
        for (; b > 0 && (key[idx[b - 1]] < key[x] || (key[idx[b - 1]] == key[x] && idx[b - 1] > x)); b--)
            idx[b] = idx[b - 1];
        idx[b] = x;
    }
    memset(take, 0, (size_t)n);
    for (int a = 0; a < n; a++) {
        int i = idx[a], g = grp[i];
        uint64_t cost = docs ? 1 : ntok[i];
        if (full[g]) continue;
        if (used[g] + cost > quota[g]) {
            full[g] = 1;
            continue;
        }
        used[g] += cost;
        take[i] = 1;
    }
    free(idx);
}

/* The threshold search (select.c doc_decide) against the walk, on what makes
 * it hard: scores from a few values (ties everywhere, -0 and +0, huge and
 * tiny magnitudes), documents with no tokens (cost 0 after a misfit is
 * still out), many groups, all scores equal, both orders and budget units. */
TEST(select_threshold_search_matches_the_walk)
{
    enum { N = 1500 };
    static const double vals[] = {0.0, -0.0, 1.0, 1.0, 2.5, -3.0, 1e300, -1e300, 1e-300, 7.0, 7.0, 42.0};
    static const char *const cases[] = {
        "score: s, budget_tokens: 9000, quota_by: src",
        "score: s, order: asc, budget_tokens: 4321, quota_by: src",
        "score: s, budget_docs: 700, quota_by: src",
        "score: s, order: asc, budget_docs: 333",
        "score: s, budget_fraction: 0.37",
        "score: s, budget_tokens: 5000, quota_by: src", /* all scores equal (below) */
    };
    for (size_t c = 0; c < WN_ARRAY_LEN(cases); c++) {
        unsigned seed = 100 + (unsigned)c;
        double key[N];
        size_t ntok[N];
        int grp[N], ng = 0, first[200];
        char take[N], name[16];
        wn_batch in = {0};
        int quota = strstr(cases[c], "quota_by") != NULL, asc = strstr(cases[c], "asc") != NULL;
        memset(first, -1, sizeof first);
        for (int i = 0; i < N; i++) {
            double v = c == 5 ? 3.0 : vals[rand_r(&seed) % WN_ARRAY_LEN(vals)];
            ntok[i] = rand_r(&seed) % 5 == 0 ? 0 : (size_t)(rand_r(&seed) % 40);
            int g = quota ? rand_r(&seed) % 150 : 0;
            if (first[g] < 0) first[g] = ng++;
            grp[i] = first[g];
            snprintf(name, sizeof name, "g%d", g);
            add_doc(&in, i, v, ntok[i], name);
            key[i] = asc ? -v : v;
        }
        wn_run_info ri;
        harness h;
        outs o = {0};
        CHECK(open_with(&h, &ri, "select", cases[c], 2));
        CHECK(run_stage(&h, &in, 97, &o) == WN_OK);
        CHECK_EQ_INT(o.n, N);
        wn_buf r = {0};
        report(&h, &r);
        uint64_t budget = (uint64_t)rnum(&r, "budget.asked"); /* budget_fraction: of the tokens */
        ref_walk(key, ntok, grp, N, ng, budget, strstr(cases[c], "budget_docs") != NULL, take);
        int wrong = 0, n_take = 0;
        for (int i = 0; i < N && i < (int)o.n; i++) {
            wrong += (!o.d[i].drop) != take[i];
            n_take += take[i];
        }
        if (wrong) fprintf(stderr, "  case %zu (%s): %d decisions differ\n", c, cases[c], wrong);
        CHECK_EQ_INT(wrong, 0);
        CHECK(n_take > 0 && n_take < N);
        CHECK_EQ_INT(rnum(&r, "selected.docs"), n_take);
        wn_buf_free(&r);
        outs_free(&o);
        wn_test_stage_close(&h);
        wn_batch_free(&in);
    }
}

TEST(select_missing_score_policy)
{
    wn_batch in = {0};
    for (int i = 0; i < 20; i++) add_doc(&in, i, i % 5 == 2 ? NAN : (double)i, 3, NULL);
    wn_run_info ri;
    harness h;
    outs o = {0};
    CHECK(open_with(&h, &ri, "select", "score: s, budget_docs: 5", 2));
    CHECK(run_stage(&h, &in, 8, &o) == WN_ERR_INPUT);
    CHECK(strstr(h.st.err.msg, "d00002") != NULL);
    outs_free(&o);
    wn_test_stage_close(&h);
    CHECK(open_with(&h, &ri, "select", "score: s, budget_docs: 5, missing: drop", 2));
    CHECK(run_stage(&h, &in, 8, &o) == WN_OK);
    CHECK_EQ_INT(o.n, 20);
    int kept_n = 0;
    for (size_t i = 0; i < o.n; i++) {
        int idx = atoi(o.d[i].id + 1);
        if (idx % 5 == 2) CHECK(o.d[i].drop && !strcmp(o.d[i].drop, "missing_score"));
        else if (!o.d[i].drop) {
            kept_n++;
            CHECK(idx >= 14); /* the five highest scored: 14, 15, 16, 18, 19 */
        }
    }
    CHECK_EQ_INT(kept_n, 5);
    CHECK_EQ_INT(kept(&o, "d00014"), 1);
    outs_free(&o);
    wn_test_stage_close(&h);
    wn_batch_free(&in);
}

TEST(select_parameter_errors)
{
    static const char *const bad[] = {
        "score: s",                                          /* no budget */
        "score: s, budget_docs: 3, budget_tokens: 5",        /* two budgets */
        "budget_docs: 3",                                    /* no score */
        "score: s, budget_docs: 3, token_fraction: 0.5",     /* token parameter at document level */
        "level: token",                                      /* no token_fraction */
        "level: token, token_fraction: 0.5, score: s",       /* score at token level */
        "level: token, token_fraction: 0.5, budget_docs: 3", /* budget at token level */
    };
    for (size_t i = 0; i < WN_ARRAY_LEN(bad); i++) {
        wn_run_info ri;
        harness h;
        CHECK(!open_with(&h, &ri, "select", bad[i], 1));
        CHECK(h.st.err.msg[0] != 0);
        wn_test_stage_close(&h);
    }
}

/* ---- token level ----------------------------------------------------------------- */

/* Documents with per-token scores from a small set of values (many ties). */
static void token_docs(wn_batch *in, int n, unsigned seed)
{
    for (int i = 0; i < n; i++) {
        size_t nt = (size_t)(rand_r(&seed) % 80);
        wn_doc *d = add_doc(in, i, NAN, nt, NULL);
        wn_floats_resize(&d->tscore, nt);
        for (size_t t = 0; t < nt; t++) d->tscore.p[t] = t ? (float)(rand_r(&seed) % 17) / 4.0f - 1.0f : 0.0f;
    }
}

/* The naive reference mask of one document: positions 1..n-1 sorted by
 * (score desc, position asc), the first k kept. */
static void ref_mask(const wn_doc *d, size_t k, int asc, char *keep)
{
    size_t n = d->tokens.n;
    memset(keep, 0, n);
    if (n) keep[0] = 1;
    for (size_t taken = 0; taken < k; taken++) {
        size_t best = 0;
        for (size_t i = 1; i < n; i++) {
            if (keep[i]) continue;
            float a = asc ? -d->tscore.p[i] : d->tscore.p[i];
            float b = best ? (asc ? -d->tscore.p[best] : d->tscore.p[best]) : 0;
            if (!best || a > b) best = i;
        }
        keep[best] = 1;
    }
}

TEST(select_token_sequence_masks_exact)
{
    wn_batch in = {0};
    token_docs(&in, 300, 21);
    static const struct { const char *params; int num, den, asc; } cases[] = {
        {"level: token, token_fraction: 0.3", 3, 10, 0},
        {"level: token, token_fraction: 0.1", 1, 10, 0}, /* 0.1 x 30 keeps 3, not 4 */
        {"level: token, token_fraction: 0.75, order: asc", 3, 4, 1},
        {"level: token, token_fraction: 1", 1, 1, 0},
    };
    for (size_t c = 0; c < WN_ARRAY_LEN(cases); c++) {
        wn_run_info ri;
        harness h;
        outs o = {0};
        CHECK(open_with(&h, &ri, "select", cases[c].params, 3));
        CHECK(ri.token_weights == 1);
        CHECK(run_stage(&h, &in, 25, &o) == WN_OK);
        CHECK_EQ_INT(o.n, in.n);
        uint64_t kept_total = 0, scored = 0;
        int wrong = 0;
        char keep[128];
        for (size_t i = 0; i < o.n && i < in.n; i++) {
            const wn_doc *d = &in.docs[i];
            size_t n = d->tokens.n, m = n ? n - 1 : 0;
            size_t k = (m * (size_t)cases[c].num + (size_t)cases[c].den - 1) / (size_t)cases[c].den; /* ceil */
            ref_mask(d, k, cases[c].asc, keep);
            if (!n) {
                CHECK(o.d[i].w == NULL);
                continue;
            }
            CHECK(o.d[i].w != NULL);
            if (!o.d[i].w) continue;
            size_t ones = 0;
            for (size_t t = 0; t < n; t++) {
                wrong += o.d[i].w[t] != (keep[t] ? 1.0f : 0.0f);
                ones += t && o.d[i].w[t] == 1.0f;
            }
            CHECK(o.d[i].w[0] == 1.0f); /* the EOT keeps weight 1 */
            CHECK_EQ_INT(ones, k);
            kept_total += k;
            scored += m;
        }
        CHECK_EQ_INT(wrong, 0);
        wn_buf r = {0};
        report(&h, &r);
        CHECK_EQ_INT(rnum(&r, "tokens.kept"), kept_total);
        CHECK_EQ_INT(rnum(&r, "tokens.scored"), scored);
        CHECK_EQ_INT(rnum(&r, "tokens.masked"), scored - kept_total);
        wn_buf_free(&r);
        outs_free(&o);
        wn_test_stage_close(&h);
    }
    wn_batch_free(&in);
}

typedef struct {
    float s;
    uint64_t pos; /* stream position of a scored token */
} ref_tok;

static int ref_tok_desc(const void *a, const void *b)
{
    const ref_tok *x = a, *y = b;
    if (x->s != y->s) return x->s > y->s ? -1 : 1;
    return x->pos < y->pos ? -1 : 1;
}

TEST(select_token_global_exact_count)
{
    wn_batch in = {0};
    token_docs(&in, 400, 77);
    /* the brute-force reference: every scored token of the stream sorted */
    size_t n_tok = 0;
    for (size_t i = 0; i < in.n; i++) n_tok += in.docs[i].tokens.n ? in.docs[i].tokens.n - 1 : 0;
    ref_tok *all = malloc(n_tok * sizeof *all);
    char *keep = calloc(n_tok, 1);
    static const struct { const char *params; double f; int asc; } cases[] = {
        {"level: token, token_scope: global, token_fraction: 0.37", 0.37, 0},
        {"level: token, token_scope: global, token_fraction: 0.5, order: asc", 0.5, 1},
        {"level: token, token_scope: global, token_fraction: 0.001", 0.001, 0},
    };
    for (size_t c = 0; c < WN_ARRAY_LEN(cases); c++) {
        size_t p = 0;
        for (size_t i = 0; i < in.n; i++)
            for (size_t t = 1; t < in.docs[i].tokens.n; t++, p++)
                all[p] = (ref_tok){cases[c].asc ? -in.docs[i].tscore.p[t] : in.docs[i].tscore.p[t], p};
        qsort(all, n_tok, sizeof *all, ref_tok_desc);
        size_t k = (size_t)ceil(cases[c].f * (double)n_tok - 1e-9);
        memset(keep, 0, n_tok);
        for (size_t j = 0; j < k; j++) keep[all[j].pos] = 1;
        wn_run_info ri;
        harness h;
        outs o = {0};
        CHECK(open_with(&h, &ri, "select", cases[c].params, 2));
        CHECK(feed(&h, &in, 0, in.n, 33, &o, 0) == WN_OK);
        CHECK_EQ_INT(o.n, 0); /* held back until the end */
        CHECK(drain(&h, &o, 0) == WN_OK);
        CHECK_EQ_INT(o.n, in.n);
        size_t ones = 0;
        int wrong = 0;
        p = 0;
        for (size_t i = 0; i < o.n; i++) {
            CHECK_EQ_INT(atoi(o.d[i].id + 1), i);
            if (!o.d[i].ntok) continue;
            CHECK(o.d[i].w && o.d[i].w[0] == 1.0f);
            for (size_t t = 1; o.d[i].w && t < o.d[i].ntok; t++, p++) {
                ones += o.d[i].w[t] == 1.0f;
                wrong += (o.d[i].w[t] == 1.0f) != keep[p];
            }
        }
        CHECK_EQ_INT(ones, k);
        CHECK_EQ_INT(wrong, 0);
        wn_buf r = {0};
        report(&h, &r);
        CHECK_EQ_INT(rnum(&r, "tokens.kept"), k);
        CHECK_EQ_INT(rnum(&r, "target_kept"), k);
        CHECK(rnum(&r, "score_histogram.min") == -1.0 && rnum(&r, "score_histogram.max") == 3.0);
        if (k) CHECK(rnum(&r, "threshold.score") == (cases[c].asc ? -all[k - 1].s : all[k - 1].s));
        wn_buf_free(&r);
        outs_free(&o);
        wn_test_stage_close(&h);
    }
    free(all);
    free(keep);
    wn_batch_free(&in);
}

TEST(select_token_missing_scores)
{
    wn_batch in = {0};
    token_docs(&in, 10, 4);
    for (int t = 0; t < 3; t++) wn_ids_push(&in.docs[3].tokens, 5);
    in.docs[3].tscore.n = 0;
    wn_run_info ri;
    harness h;
    outs o = {0};
    CHECK(open_with(&h, &ri, "select", "level: token, token_fraction: 0.5", 1));
    CHECK(run_stage(&h, &in, 4, &o) == WN_ERR_INPUT);
    outs_free(&o);
    wn_test_stage_close(&h);
    CHECK(open_with(&h, &ri, "select", "level: token, token_fraction: 0.5, missing: drop", 1));
    CHECK(run_stage(&h, &in, 4, &o) == WN_OK);
    CHECK(o.d[3].drop && !strcmp(o.d[3].drop, "missing_score"));
    outs_free(&o);
    wn_test_stage_close(&h);
    wn_batch_free(&in);
}

/* ---- checkpoint / restore ---------------------------------------------------------- */

/* Runs `params` over `in` straight, and again with a checkpoint after `at`
 * documents, more documents processed after it (which the restore must
 * forget), a crash, a restore and the rest: the outputs must be the same,
 * every field of every document. */
static void resume_identity(int *wn_failed_, const char *params, const wn_batch *in, size_t at)
{
    wn_run_info ri;
    harness h;
    outs ref = {0}, got = {0};
    CHECK(open_with(&h, &ri, "select", params, 2));
    CHECK(feed(&h, in, 0, in->n, 40, &ref, 1) == WN_OK);
    CHECK(drain(&h, &ref, 1) == WN_OK);
    wn_test_stage_close(&h);

    CHECK(open_with(&h, &ri, "select", params, 2));
    CHECK(feed(&h, in, 0, at, 40, &got, 1) == WN_OK);
    char path[128];
    snprintf(path, sizeof path, "%s/ckpt", h.dir);
    FILE *f = fopen(path, "wb");
    CHECK(f && h.st.def->save(&h.st, f) == WN_OK);
    fclose(f);
    char spill[128];
    struct stat sb;
    snprintf(spill, sizeof spill, "%s/docs.spill.zst", h.dir);
    off_t saved = stat(spill, &sb) ? -1 : sb.st_size;
    outs lost = {0};
    CHECK(feed(&h, in, at, at + 60 < in->n ? at + 60 : in->n, 40, &lost, 1) == WN_OK);
    outs_free(&lost);
    int spills = strstr(params, "token") == NULL || strstr(params, "global") != NULL;
    if (spills) CHECK(!stat(spill, &sb) && saved > 0 && sb.st_size > saved); /* the restore must cut this */
    h.st.def->close(&h.st); /* the crash: state gone, the spill stays */
    memset(h.st.state, 0, h.st.def->state_size);
    CHECK(h.st.def->open(&h.st) == WN_OK);
    f = fopen(path, "rb");
    CHECK(f && h.st.def->load(&h.st, f) == WN_OK);
    fclose(f);
    CHECK(feed(&h, in, at, in->n, 40, &got, 1) == WN_OK);
    CHECK(drain(&h, &got, 1) == WN_OK);
    CHECK_EQ_INT(got.n, ref.n);
    int diff = 0;
    for (size_t i = 0; i < got.n && i < ref.n; i++) {
        const out_doc *a = &got.d[i], *b = &ref.d[i];
        diff += strcmp(a->id, b->id) != 0 || (a->drop == NULL) != (b->drop == NULL) || a->ntok != b->ntok ||
                (a->w == NULL) != (b->w == NULL) || (a->w && memcmp(a->w, b->w, a->ntok * sizeof(float)));
        diff += a->full.text.len != b->full.text.len || memcmp(a->full.text.p, b->full.text.p, a->full.text.len) ||
                a->full.raw.len != b->full.raw.len || memcmp(a->full.raw.p, b->full.raw.p, a->full.raw.len) ||
                a->full.attrs.len != b->full.attrs.len ||
                memcmp(a->full.attrs.p, b->full.attrs.p, a->full.attrs.len) || a->full.file != b->full.file ||
                a->full.record != b->full.record || a->full.raw_text != b->full.raw_text ||
                a->full.dirty != b->full.dirty || a->full.has_tokens != b->full.has_tokens ||
                a->full.tscore.n != b->full.tscore.n ||
                (a->full.tokens.n && memcmp(a->full.tokens.p, b->full.tokens.p, a->full.tokens.n * 4));
    }
    CHECK_EQ_INT(diff, 0);
    /* the documents round-trip through the spill unchanged */
    if (!strstr(params, "token")) {
        for (size_t i = 0; i < ref.n; i++) {
            const wn_doc *s = &in->docs[atoi(ref.d[i].id + 1)];
            diff += ref.d[i].full.text.len != s->text.len || memcmp(ref.d[i].full.text.p, s->text.p, s->text.len) ||
                    ref.d[i].full.record != s->record || ref.d[i].full.file != s->file ||
                    ref.d[i].full.tokens.n != s->tokens.n;
        }
        CHECK_EQ_INT(diff, 0);
    }
    wn_buf a = {0}, b = {0};
    report(&h, &a);
    outs_free(&ref);
    outs_free(&got);
    wn_test_stage_close(&h);
    wn_buf_free(&a);
    wn_buf_free(&b);
}

TEST(select_checkpoint_restore_identity)
{
    wn_batch in = {0};
    random_docs(&in, 400, 8, NULL);
    unsigned seed = 1;
    for (size_t i = 0; i < in.n; i++) { /* incompressible text: the spill reaches the disk between saves */
        for (int k = 0; k < 3000; k++) wn_buf_putc(&in.docs[i].text, (char)('a' + rand_r(&seed) % 26));
        in.docs[i].dirty = i % 7 == 0;
    }
    resume_identity(wn_failed_, "score: s, budget_tokens: 2000, quota_by: src", &in, 200);
    resume_identity(wn_failed_, "score: s, budget_docs: 50, temperature: 0.5, seed: 2", &in, 120);
    wn_batch_free(&in);
    wn_batch t = {0};
    token_docs(&t, 300, 5);
    for (size_t i = 0; i < t.n; i++)
        for (int k = 0; k < 3000; k++) wn_buf_putc(&t.docs[i].text, (char)('a' + rand_r(&seed) % 26));
    resume_identity(wn_failed_, "level: token, token_scope: global, token_fraction: 0.4", &t, 160);
    resume_identity(wn_failed_, "level: token, token_fraction: 0.4", &t, 80);
    wn_batch_free(&t);
}

TEST(select_spill_round_trips_large_documents)
{
    /* compressible texts far larger than zstd's stream buffers */
    wn_batch in = {0};
    for (int i = 0; i < 24; i++) {
        wn_doc *d = add_doc(&in, i, (double)(i % 5), 3, NULL);
        for (int k = 0; k < 150000 + i * 1000; k++) wn_buf_putc(&d->text, (char)('a' + (k / 4096 + i) % 3));
    }
    wn_run_info ri;
    harness h;
    outs o = {0};
    CHECK(open_with(&h, &ri, "select", "score: s, budget_docs: 10", 1));
    CHECK(feed(&h, &in, 0, in.n, 5, &o, 1) == WN_OK);
    CHECK(drain(&h, &o, 1) == WN_OK);
    CHECK_EQ_INT(o.n, in.n);
    int diff = 0;
    for (size_t i = 0; i < o.n && i < in.n; i++)
        diff += o.d[i].full.text.len != in.docs[i].text.len ||
                memcmp(o.d[i].full.text.p, in.docs[i].text.p, in.docs[i].text.len);
    CHECK_EQ_INT(diff, 0);
    outs_free(&o);
    wn_test_stage_close(&h);
    wn_batch_free(&in);
}

/* ---- pack: the weights sidecar ------------------------------------------------------ */

/* Documents whose token ids say their weight: odd ids weight 1, even ids
 * weight 0 (never 0 itself, the padding EOT). `weighted` = carry tweight. */
static void weight_docs(wn_batch *in, int n, unsigned seed, int first, int every)
{
    for (int i = 0; i < n; i++) {
        wn_doc *d = wn_batch_push(in);
        wn_buf_printf(&d->id, "w%d", i);
        d->has_tokens = 1;
        size_t nt = 1 + (size_t)(rand_r(&seed) % 90);
        int weighted = every && i >= first && i % every == 0;
        for (size_t t = 0; t < nt; t++) {
            uint32_t id = 1 + (uint32_t)(rand_r(&seed) % 500);
            if (!weighted) id |= 1;
            wn_ids_push(&d->tokens, id);
        }
        if (weighted) {
            wn_floats_resize(&d->tweight, nt);
            for (size_t t = 0; t < nt; t++) d->tweight.p[t] = (float)(d->tokens.p[t] & 1);
        }
    }
}

/* Every token of every train shard has the weight its id says (padding:
 * EOT 0 at weight 0; no sidecar = weight 1). Returns the tokens checked,
 * -1 on a mismatch or, with `none`, when a shard has a weights sidecar. */
static long check_weight_shards(const char *dir, int none)
{
    long n = 0;
    for (int k = 0;; k++) {
        char path[256];
        snprintf(path, sizeof path, "%s/shards/train_%06d.bin", dir, k);
        if (!wn_exists(path)) break;
        wn_shard s;
        wn_errbuf err;
        if (wn_shard_open(&s, path, &err)) return -1;
        if (none && s.weights) {
            wn_shard_close(&s);
            return -1;
        }
        for (uint64_t i = 0; i < s.ntok; i++, n++) {
            uint32_t t = wn_shard_token(&s, i);
            float w = s.weights ? s.weights[i] : 1.0f;
            if (w != (float)(t & 1)) {
                fprintf(stderr, "  %s token %llu: id %u weight %g\n", path, (unsigned long long)i, t, w);
                wn_shard_close(&s);
                return -1;
            }
        }
        wn_shard_close(&s);
    }
    return n;
}

static void pack_weights(int *wn_failed_, const char *params, int announced, int first, int every, int resume_at)
{
    wn_batch in = {0};
    weight_docs(&in, 400, 13, first, every);
    wn_run_info ri;
    harness h;
    memset(&h, 0, sizeof h);
    CHECK(wn_test_stage_dir(&h));
    memset(&ri, 0, sizeof ri);
    ri.vocab_size = 1000;
    ri.eot_id = 0;
    ri.run_dir = h.dir;
    ri.token_weights = announced;
    h.st.run = &ri;
    CHECK(wn_test_stage_open(&h, "pack", params, 1) == WN_OK);
    outs o = {0};
    if (resume_at) {
        char path[128];
        snprintf(path, sizeof path, "%s/ckpt", h.dir);
        CHECK(feed(&h, &in, 0, (size_t)resume_at, 16, &o, 0) == WN_OK);
        FILE *f = fopen(path, "wb");
        CHECK(f && h.st.def->save(&h.st, f) == WN_OK);
        fclose(f);
        CHECK(feed(&h, &in, (size_t)resume_at, (size_t)resume_at + 50, 16, &o, 0) == WN_OK);
        h.st.def->close(&h.st);
        memset(h.st.state, 0, h.st.def->state_size);
        CHECK(h.st.def->open(&h.st) == WN_OK);
        f = fopen(path, "rb");
        CHECK(f && h.st.def->load(&h.st, f) == WN_OK);
        fclose(f);
        CHECK(feed(&h, &in, (size_t)resume_at, in.n, 16, &o, 0) == WN_OK);
    } else {
        CHECK(feed(&h, &in, 0, in.n, 16, &o, 0) == WN_OK);
    }
    CHECK(drain(&h, &o, 0) == WN_OK);
    long n = check_weight_shards(h.dir, 0);
    uint64_t total = 0;
    for (size_t i = 0; i < in.n; i++) total += in.docs[i].tokens.n;
    CHECK(n >= (long)total);
    outs_free(&o);
    wn_test_stage_close(&h);
    wn_batch_free(&in);
}

TEST(pack_weights_sidecar_concat_and_best_fit)
{
    /* announced by a token-level select before pack */
    pack_weights(wn_failed_, "shard_tokens: 4096", 1, 0, 2, 0);
    /* not announced: the sidecar starts at the first weighted document (after
     * a shard closed without one), earlier tokens of the open shard
     * back-filled with 1 */
    pack_weights(wn_failed_, "shard_tokens: 4096", 0, 150, 7, 0);
    pack_weights(wn_failed_, "shard_tokens: 4096, shuffle: true, window: 3, seq_len: 64", 0, 101, 5, 0);
    /* best_fit: weights follow the chunks into the bins; padding stays 0 */
    pack_weights(wn_failed_, "method: best_fit, seq_len: 32, window: 8, shard_tokens: 4096", 0, 0, 3, 0);
    /* checkpointed with weights in the window and in the open shard */
    pack_weights(wn_failed_, "method: best_fit, seq_len: 32, window: 8, shard_tokens: 4096", 1, 0, 3, 170);
    pack_weights(wn_failed_, "shard_tokens: 4096, shuffle: true, window: 3, seq_len: 64", 0, 100, 5, 170);
    pack_weights(wn_failed_, "shard_tokens: 4096", 0, 190, 5, 170);
}

TEST(pack_without_weights_writes_no_sidecar)
{
    wn_batch in = {0};
    weight_docs(&in, 100, 3, 0, 0); /* no document carries weights: all ids odd */
    wn_run_info ri;
    harness h;
    memset(&h, 0, sizeof h);
    CHECK(wn_test_stage_dir(&h));
    memset(&ri, 0, sizeof ri);
    ri.vocab_size = 1000;
    ri.run_dir = h.dir;
    h.st.run = &ri;
    CHECK(wn_test_stage_open(&h, "pack", "shard_tokens: 2048", 1) == WN_OK);
    outs o = {0};
    CHECK(feed(&h, &in, 0, in.n, 16, &o, 0) == WN_OK);
    CHECK(drain(&h, &o, 0) == WN_OK);
    CHECK(check_weight_shards(h.dir, 1) > 0);
    outs_free(&o);
    wn_test_stage_close(&h);
    wn_batch_free(&in);
}

/* A compute budget is a token budget of FLOPs / (6 N epochs): the same
 * selection as that budget_tokens, and the report says where it came from. */
TEST(select_compute_budget_is_a_token_budget)
{
    enum { N = 200 };
    ref_doc ref[N];
    wn_batch in = {0};
    random_docs(&in, N, 9, ref);
    outs a = {0}, b = {0};
    wn_run_info ri1, ri2;
    harness h1, h2;
    /* 7.2e9 / (6 x 1e5 x 3) = 4000 tokens */
    CHECK(open_with(&h1, &ri1, "select", "score: s, budget_flops: 7.2e9, model_params: 1e5, epochs: 3", 1));
    CHECK(run_stage(&h1, &in, 40, &a) == WN_OK);
    CHECK(open_with(&h2, &ri2, "select", "score: s, budget_tokens: 4000", 1));
    CHECK(run_stage(&h2, &in, 40, &b) == WN_OK);
    CHECK_EQ_INT(a.n, b.n);
    for (size_t i = 0; i < a.n && i < b.n; i++) CHECK(a.d[i].ntok == b.d[i].ntok);
    wn_buf rep = {0};
    wn_jw w;
    wn_jw_init(&w, &rep, 0);
    wn_jw_obj_begin(&w);
    h1.st.def->report(&h1.st, &w);
    wn_jw_obj_end(&w);
    CHECK(rep.p && strstr(rep.p, "\"asked\":4000") && strstr(rep.p, "\"compute_flops\":7200000000"));
    wn_buf_free(&rep);
    outs_free(&a);
    outs_free(&b);
    wn_test_stage_close(&h1);
    wn_test_stage_close(&h2);
    /* device-hours: 1 h x 1e6 FLOP/s x 0.5 = 1.8e9 FLOPs -> 1.8e9 / (6 x 1e5) = 3000 tokens */
    wn_run_info ri3;
    harness h3;
    CHECK(open_with(&h3, &ri3, "select", "score: s, budget_device_hours: 1, peak_flops: 1e6, mfu: 0.5, model_params: 1e5", 1));
    outs c = {0};
    CHECK(run_stage(&h3, &in, 40, &c) == WN_OK);
    wn_buf rep3 = {0};
    wn_jw_init(&w, &rep3, 0);
    wn_jw_obj_begin(&w);
    h3.st.def->report(&h3.st, &w);
    wn_jw_obj_end(&w);
    CHECK(rep3.p && strstr(rep3.p, "\"asked\":3000"));
    wn_buf_free(&rep3);
    outs_free(&c);
    wn_test_stage_close(&h3);
    wn_batch_free(&in);
}

/* Compute-optimal mode: with model_params 0 the scaling law picks N, and
 * the token budget is C / (6 N) at the law's optimum (checked against the
 * closed form and against a brute-force search along 6 N D = C). */
TEST(select_compute_optimal_budget)
{
    enum { N = 50 };
    ref_doc ref[N];
    wn_batch in = {0};
    random_docs(&in, N, 3, ref);
    wn_run_info ri;
    harness h;
    outs o = {0};
    double C = 6e15; /* 6 N D: N D = 1e15 */
    CHECK(open_with(&h, &ri, "select", "score: s, budget_flops: 6e15", 1));
    CHECK(run_stage(&h, &in, 10, &o) == WN_OK);
    wn_buf rep = {0};
    wn_jw w;
    wn_jw_init(&w, &rep, 0);
    wn_jw_obj_begin(&w);
    h.st.def->report(&h.st, &w);
    wn_jw_obj_end(&w);
    double n_rep = 0, asked = 0;
    const char *p = rep.p ? strstr(rep.p, "\"compute_optimal_params\":") : NULL;
    CHECK(p && sscanf(p, "\"compute_optimal_params\":%lf", &n_rep) == 1);
    p = rep.p ? strstr(rep.p, "\"asked\":") : NULL;
    CHECK(p && sscanf(p, "\"asked\":%lf", &asked) == 1);
    /* brute force: the N on a fine log grid that minimises the law along 6 N D = C */
    double best = 1e300, bn = 0;
    for (double lg = 6; lg <= 11; lg += 1e-4) {
        double n = pow(10, lg), d = C / (6 * n);
        double l = 1.69 + 406.4 / pow(n, 0.34) + 410.7 / pow(d, 0.28);
        if (l < best) { best = l; bn = n; }
    }
    CHECK(fabs(n_rep / bn - 1) < 1e-3);
    CHECK(fabs(asked - floor(C / (6 * n_rep))) <= 1);
    wn_buf_free(&rep);
    outs_free(&o);
    wn_test_stage_close(&h);
    wn_batch_free(&in);
}
