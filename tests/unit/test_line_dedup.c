/*
 * test_line_dedup.c - the line_dedup stage through its descriptor
 * (parameters by the real manifest loader), on hand-written documents with
 * the expected texts written out, and on random synthetic corpora checked
 * against a brute-force reference written here (whole normalized strings in
 * a table, no hashing, no spill): first occurrence across and within
 * documents, normalization switches, paragraphs, blank lines, min_count,
 * drops, tiny budgets (spilled runs, merges, decision runs) against the
 * in-memory path, thread counts and batchings, checkpoint/restore.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <utf8proc.h>

#include "../stage_harness.h"
#include "../test.h"
#include "json.h"
#include "text.h"

typedef wn_test_stage harness;

/* What came out of the stage, in order (kept and dropped). */
typedef struct {
    char id[32];
    const char *drop;
    int modified;
    wn_buf text, raw;
    uint64_t record;
    uint32_t file;
} out_doc;

typedef struct {
    out_doc *d;
    size_t n, cap;
} outs;

static void outs_add(outs *o, const wn_doc *d)
{
    if (o->n == o->cap) {
        o->cap = o->cap ? o->cap * 2 : 256;
        o->d = realloc(o->d, o->cap * sizeof *o->d);
    }
    out_doc *x = &o->d[o->n++];
    memset(x, 0, sizeof *x);
    snprintf(x->id, sizeof x->id, "%.*s", (int)d->id.len, d->id.p ? d->id.p : "");
    x->drop = d->drop;
    x->modified = d->modified;
    wn_buf_append(&x->text, d->text.p ? d->text.p : "", d->text.len);
    wn_buf_append(&x->raw, d->raw.p ? d->raw.p : "", d->raw.len);
    x->record = d->record;
    x->file = d->file;
}

static void outs_free(outs *o)
{
    for (size_t i = 0; i < o->n; i++) {
        wn_buf_free(&o->d[i].text);
        wn_buf_free(&o->d[i].raw);
    }
    free(o->d);
    memset(o, 0, sizeof *o);
}

static const out_doc *find(const outs *o, const char *id)
{
    for (size_t i = 0; i < o->n; i++)
        if (!strcmp(o->d[i].id, id)) return &o->d[i];
    return NULL;
}

static void add_doc(wn_batch *b, const char *text)
{
    wn_doc *d = wn_batch_push(b);
    wn_buf_printf(&d->id, "d%05zu", b->n - 1);
    wn_buf_puts(&d->text, text);
    wn_buf_printf(&d->raw, "{\"id\":\"d%05zu\"}", b->n - 1);
    d->record = b->n - 1;
    d->file = (uint32_t)((b->n - 1) % 3);
}

/* Passes documents [from, to) to process, `per` at a time. */
static wn_err feed(harness *h, const wn_batch *in, size_t from, size_t to, size_t per, outs *o)
{
    wn_batch b = {0};
    wn_err e = WN_OK;
    for (size_t i = from; i < to && !e; i += per) {
        wn_batch_reset(&b);
        for (size_t j = i; j < to && j < i + per; j++) {
            const wn_doc *s = &in->docs[j];
            wn_doc *d = wn_batch_push(&b);
            wn_buf_append(&d->id, s->id.p, s->id.len);
            wn_buf_append(&d->text, s->text.p ? s->text.p : "", s->text.len);
            wn_buf_append(&d->raw, s->raw.p ? s->raw.p : "", s->raw.len);
            d->record = s->record;
            d->file = s->file;
            d->drop = s->drop;
        }
        e = h->st.def->process(&h->st, &b);
        for (size_t j = 0; !e && j < b.n; j++) outs_add(o, &b.docs[j]);
    }
    wn_batch_free(&b);
    return e;
}

static wn_err drain(harness *h, outs *o)
{
    wn_batch b = {0};
    wn_err e = WN_OK;
    while (!e) {
        wn_batch_reset(&b);
        if ((e = h->st.def->finish(&h->st, &b)) || !b.n) break;
        for (size_t j = 0; j < b.n; j++) outs_add(o, &b.docs[j]);
    }
    wn_batch_free(&b);
    return e;
}

/* Runs the stage over `in` (per documents a batch), output in o, report in r. */
static int run_ld(const char *params, int threads, const wn_batch *in, size_t per, outs *o, wn_buf *r)
{
    harness h;
    memset(&h, 0, sizeof h);
    int ok = wn_test_stage_open(&h, "line_dedup", params, threads) == WN_OK;
    ok = ok && feed(&h, in, 0, in->n, per, o) == WN_OK && drain(&h, o) == WN_OK;
    if (ok && r) {
        wn_jw w;
        wn_buf_clear(r);
        wn_jw_init(&w, r, 0);
        wn_jw_obj_begin(&w);
        h.st.def->report(&h.st, &w);
        wn_jw_obj_end(&w);
    }
    wn_test_stage_close(&h);
    return ok;
}

/* A number in the report by a dotted path ("a.b.0": item 0 of array b). */
static double rnum(const wn_buf *r, const char *path)
{
    wn_span v = {r->p, r->len};
    char key[64];
    for (const char *p = path; *p;) {
        const char *dot = strchr(p, '.');
        size_t n = dot ? (size_t)(dot - p) : strlen(p);
        snprintf(key, sizeof key, "%.*s", (int)n, p);
        if (key[0] >= '0' && key[0] <= '9') {
            wn_json_iter it;
            wn_json_items_init(&it, v.p, v.n);
            int found = 0;
            for (int i = atoi(key); i >= 0 && (found = wn_json_items_next(&it, &v)); i--) {}
            if (!found) return NAN;
        } else if (!wn_json_get(v.p, v.n, key, &v)) {
            return NAN;
        }
        p += n + (dot ? 1 : 0);
    }
    double x = NAN;
    wn_json_to_double(v, &x);
    return x;
}

/* Checks every output text and drop against expect[] (NULL text = dropped
 * with reason why[i]). */
static void expect_texts(int *wn_failed_, const outs *o, int n, const char *const *expect, const char *const *why)
{
    CHECK_EQ_INT(o->n, n);
    for (int i = 0; i < n && i < (int)o->n; i++) {
        char id[16];
        snprintf(id, sizeof id, "d%05d", i);
        const out_doc *d = find(o, id);
        CHECK(d != NULL);
        if (!d) continue;
        if (expect[i]) {
            if (d->drop) fprintf(stderr, "  %s dropped (%s), expected \"%s\"\n", id, d->drop, expect[i]);
            CHECK(d->drop == NULL);
            if (strcmp(d->text.p ? d->text.p : "", expect[i]))
                fprintf(stderr, "  %s: got \"%s\", expected \"%s\"\n", id, d->text.p ? d->text.p : "", expect[i]);
            CHECK_EQ_STR(d->text.p ? d->text.p : "", expect[i]);
        } else {
            CHECK(d->drop != NULL);
            if (d->drop && why) CHECK_EQ_STR(d->drop, why[i]);
        }
    }
}

/* ---- semantics on hand-written documents ------------------------------------------- */

TEST(line_dedup_first_occurrence_across_and_within_documents)
{
    wn_batch in = {0};
    add_doc(&in, "alpha\nbeta\ngamma");
    add_doc(&in, "beta\ndelta\nbeta\nepsilon\n");
    add_doc(&in, "zeta\nalpha");
    add_doc(&in, "untouched\n");
    outs o = {0};
    wn_buf r = {0};
    CHECK(run_ld("", 2, &in, 2, &o, &r));
    static const char *const want[] = {"alpha\nbeta\ngamma", "delta\nepsilon\n", "zeta", "untouched\n"};
    expect_texts(wn_failed_, &o, 4, want, NULL);
    CHECK(!find(&o, "d00000")->modified && find(&o, "d00001")->modified && find(&o, "d00002")->modified &&
          !find(&o, "d00003")->modified);
    /* output in input order */
    for (size_t i = 0; i < o.n; i++) CHECK_EQ_INT(o.d[i].record, i);
    CHECK_EQ_INT(rnum(&r, "lines_total"), 10);
    CHECK_EQ_INT(rnum(&r, "lines_removed"), 3);
    CHECK_EQ_INT(rnum(&r, "bytes_removed"), 5 + 5 + 6); /* "beta\n" twice, "\nalpha" (the ending kept) */
    CHECK_EQ_INT(rnum(&r, "docs_modified"), 2);
    CHECK_EQ_INT(rnum(&r, "unique_line_hashes"), 7);
    CHECK_EQ_INT(rnum(&r, "duplicated_line_hashes"), 2);
    /* beta 3 times, alpha twice: both in [2, 4) */
    CHECK_EQ_INT(rnum(&r, "recurrence_histogram.counts.0"), 2);
    CHECK_EQ_INT(rnum(&r, "recurrence_histogram.edges.0"), 2);
    CHECK_EQ_INT(rnum(&r, "recurrence_histogram.edges.1"), 4);
    outs_free(&o);
    wn_buf_free(&r);
    wn_batch_free(&in);
}

TEST(line_dedup_normalization)
{
    /* each pair: the second is a duplicate of the first under the defaults */
    static const char *const pairs[][2] = {
        {"Hello, World!", "hello world"},                 /* case, punctuation */
        {"  spaced \t  out  ", "spaced out"},              /* whitespace runs, trimmed ends */
        {"Caf\xc3\xa9 2019", "cafe 1234"},                  /* precomposed accent, digits */
        {"cafe\xcc\x81 na\xc3\xaf" "ve", "CAF\xc3\x89 naive"}, /* decomposed accent, diaeresis */
        {"\xef\xbc\x92\xef\xbc\x90\xef\xbc\x91\xef\xbc\x99 items", "2019 items"}, /* fullwidth digits (Nd) */
        {"x\xe2\x80\x8by \xc2\xab quoted \xc2\xbb", "xy quoted"}, /* zero-width space (Cf), guillemets (Pi/Pf) */
        {"\xc4\xb0stanbul", "istanbul"},                   /* simple lowercase of U+0130 */
        {"tab\u00a0and\u3000ideographic", "tab and ideographic"}, /* Unicode White_Space */
    };
    int n = (int)WN_ARRAY_LEN(pairs);
    wn_batch in = {0};
    for (int i = 0; i < n; i++) {
        char t[256];
        snprintf(t, sizeof t, "keep %c\n%s\n%s\n", 'a' + i, pairs[i][0], pairs[i][1]);
        add_doc(&in, t);
    }
    add_doc(&in, "---\n---\n* * *\n* * *\nend"); /* normalize to empty: never duplicates */
    outs o = {0};
    CHECK(run_ld("", 1, &in, 3, &o, NULL));
    CHECK_EQ_INT(o.n, n + 1);
    for (int i = 0; i < n && i < (int)o.n; i++) {
        char want[256];
        snprintf(want, sizeof want, "keep %c\n%s\n", 'a' + i, pairs[i][0]);
        if (strcmp(o.d[i].text.p, want)) fprintf(stderr, "  pair %d: \"%s\"\n", i, o.d[i].text.p);
        CHECK_EQ_STR(o.d[i].text.p, want);
    }
    if ((int)o.n > n) CHECK_EQ_STR(o.d[n].text.p, "---\n---\n* * *\n* * *\nend");
    outs_free(&o);

    /* each switch off makes its pair distinct */
    static const struct {
        const char *params, *a, *b;
    } off[] = {
        {"lowercase: false", "Hello", "hello"},
        {"digits: false", "room 101", "room 102"},
        {"punctuation: false", "well, yes", "well yes"},
        {"accents: false", "caf\xc3\xa9", "cafe"},
        {"collapse_whitespace: false", "a  b", "a b"},
    };
    for (size_t k = 0; k < WN_ARRAY_LEN(off); k++) {
        wn_batch t = {0};
        char text[128];
        snprintf(text, sizeof text, "%s\n%s", off[k].a, off[k].b);
        add_doc(&t, text);
        outs p = {0}, q = {0};
        CHECK(run_ld(off[k].params, 1, &t, 1, &p, NULL));
        CHECK(run_ld("", 1, &t, 1, &q, NULL));
        CHECK(p.n == 1 && q.n == 1);
        if (p.n == 1) CHECK_EQ_STR(p.d[0].text.p, text);    /* switch off: both kept */
        if (q.n == 1) CHECK_EQ_STR(q.d[0].text.p, off[k].a); /* default: the second goes */
        outs_free(&p);
        outs_free(&q);
        wn_batch_free(&t);
    }
    /* ends are trimmed even without collapsing */
    wn_batch t = {0};
    add_doc(&t, "  a b \t\na b");
    outs p = {0};
    CHECK(run_ld("collapse_whitespace: false", 1, &t, 1, &p, NULL));
    CHECK(p.n == 1 && !strcmp(p.d[0].text.p, "  a b \t"));
    outs_free(&p);
    wn_batch_free(&t);
    wn_batch_free(&in);
}

TEST(line_dedup_blank_lines_and_endings)
{
    wn_batch in = {0};
    add_doc(&in, "Menu\n\nHome\n\nFirst article text.\n");
    add_doc(&in, "Menu\n\nHome\n\nSecond article text.\n\n\nFooter line");
    add_doc(&in, "Third article.\n\n\nFooter line\n\n");
    add_doc(&in, "\n\nMenu\n  \nFourth.");
    static const char *const follow[] = {"Menu\n\nHome\n\nFirst article text.\n",
                                         "Second article text.\n\n\nFooter line", "Third article.\n", "\n\nFourth."};
    static const char *const keep[] = {"Menu\n\nHome\n\nFirst article text.\n",
                                       "\n\nSecond article text.\n\n\nFooter line", "Third article.\n\n\n\n",
                                       "\n\n  \nFourth."};
    outs o = {0};
    wn_buf r = {0};
    CHECK(run_ld("", 2, &in, 1, &o, &r));
    expect_texts(wn_failed_, &o, 4, follow, NULL);
    CHECK_EQ_INT(rnum(&r, "lines_removed"), 4);
    CHECK_EQ_INT(rnum(&r, "blank_lines_removed"), 2 + 3 + 1);
    outs_free(&o);
    CHECK(run_ld("blank_lines: keep", 2, &in, 1, &o, &r));
    expect_texts(wn_failed_, &o, 4, keep, NULL);
    CHECK_EQ_INT(rnum(&r, "blank_lines_removed"), 0);
    outs_free(&o);
    wn_buf_free(&r);
    wn_batch_free(&in);
}

TEST(line_dedup_paragraphs)
{
    wn_batch in = {0};
    add_doc(&in, "Intro line one\nintro line two\n\nShared paragraph,\nspanning two lines.\n\nOwn ending.");
    add_doc(&in, "Other intro.\n\nshared paragraph\nSPANNING two lines\n\n\nIntro line one\n\nLast.\n");
    add_doc(&in, "Intro line one\nand something else\n"); /* a different paragraph: kept */
    add_doc(&in, "Other intro.\n\n\nOther intro.");
    static const char *const want[] = {
        "Intro line one\nintro line two\n\nShared paragraph,\nspanning two lines.\n\nOwn ending.",
        "Other intro.\n\nIntro line one\n\nLast.\n", "Intro line one\nand something else\n", NULL};
    static const char *const why[] = {NULL, NULL, NULL, "empty_after_dedup"};
    outs o = {0};
    wn_buf r = {0};
    CHECK(run_ld("unit: paragraph", 2, &in, 2, &o, &r));
    expect_texts(wn_failed_, &o, 4, want, why);
    CHECK_EQ_INT(rnum(&r, "lines_removed"), 3);
    outs_free(&o);
    /* the same corpus by lines: the lines of the paragraphs are units */
    CHECK(run_ld("unit: line", 2, &in, 2, &o, &r));
    CHECK_EQ_STR(find(&o, "d00002")->text.p, "and something else\n");
    outs_free(&o);
    wn_buf_free(&r);
    wn_batch_free(&in);
}

TEST(line_dedup_min_count_over_the_whole_corpus)
{
    wn_batch in = {0};
    add_doc(&in, "Share this\nStory one.\nSubscribe\nTwice seen");
    add_doc(&in, "Story two.\nShare this\nTwice seen\n");
    add_doc(&in, "Subscribe\nStory three.\nShare this.\n");
    add_doc(&in, "Subscribe");
    /* Share this x3, Subscribe x3, Twice seen x2 */
    static const char *const want[] = {"Story one.\nTwice seen", "Story two.\nTwice seen\n", "Story three.\n", NULL};
    static const char *const why[] = {NULL, NULL, NULL, "empty_after_dedup"};
    outs o = {0};
    wn_buf r = {0};
    CHECK(run_ld("min_count: 3", 2, &in, 1, &o, &r));
    expect_texts(wn_failed_, &o, 4, want, why);
    CHECK_EQ_INT(rnum(&r, "lines_removed"), 6);
    CHECK_EQ_INT(rnum(&r, "duplicated_line_hashes"), 3);
    outs_free(&o);
    /* min_count 2 takes the pair too; first-occurrence keeps each once */
    CHECK(run_ld("min_count: 2", 1, &in, 4, &o, &r));
    CHECK_EQ_STR(find(&o, "d00001")->text.p, "Story two.\n");
    outs_free(&o);
    CHECK(run_ld("", 1, &in, 4, &o, &r));
    CHECK_EQ_STR(find(&o, "d00000")->text.p, "Share this\nStory one.\nSubscribe\nTwice seen");
    outs_free(&o);
    harness h;
    memset(&h, 0, sizeof h);
    CHECK(wn_test_stage_open(&h, "line_dedup", "min_count: 1", 1) == WN_ERR_MANIFEST);
    wn_test_stage_close(&h);
    wn_buf_free(&r);
    wn_batch_free(&in);
}

TEST(line_dedup_drops_documents_left_short_or_empty)
{
    wn_batch in = {0};
    add_doc(&in, "Boilerplate header\nA long first article with many words in it.\n");
    add_doc(&in, "Boilerplate header\nshort one\n");
    add_doc(&in, "Boilerplate header\n\n");
    add_doc(&in, "tiny\n"); /* untouched: never dropped here, however short */
    add_doc(&in, "Boilerplate header\nThis one keeps enough words to stay.\n");
    add_doc(&in, "");
    static const char *const want[] = {"Boilerplate header\nA long first article with many words in it.\n", NULL, NULL,
                                       "tiny\n", "This one keeps enough words to stay.\n", ""};
    static const char *const why[] = {NULL, "too_short_after_dedup", "empty_after_dedup", NULL, NULL, NULL};
    outs o = {0};
    wn_buf r = {0};
    CHECK(run_ld("min_words: 4", 2, &in, 2, &o, &r));
    expect_texts(wn_failed_, &o, 6, want, why);
    CHECK_EQ_INT(rnum(&r, "docs_dropped.too_short_after_dedup"), 1);
    CHECK_EQ_INT(rnum(&r, "docs_dropped.empty_after_dedup"), 1);
    CHECK_EQ_INT(rnum(&r, "docs_modified"), 1);
    outs_free(&o);
    CHECK(run_ld("min_chars: 10", 2, &in, 2, &o, &r));
    CHECK(find(&o, "d00001")->drop == NULL);    /* "short one\n": 10 code points */
    outs_free(&o);
    CHECK(run_ld("min_chars: 11", 2, &in, 2, &o, &r));
    CHECK_EQ_STR(find(&o, "d00001")->drop, "too_short_after_dedup");
    outs_free(&o);
    wn_buf_free(&r);
    wn_batch_free(&in);
}

/* ---- the brute-force reference ------------------------------------------------------------ */

typedef struct {
    int paragraph, min_count, follow, lower, digits, punct, accents, collapse;
    size_t min_words, min_chars;
} ref_cfg;

static int ref_space(int32_t c)
{
    static const int32_t ws[] = {9, 10, 11, 12, 13, 32, 0x85, 0xA0, 0x1680, 0x2028, 0x2029, 0x202F, 0x205F, 0x3000};
    for (size_t i = 0; i < WN_ARRAY_LEN(ws); i++)
        if (c == ws[i]) return 1;
    return c >= 0x2000 && c <= 0x200A;
}

/* The normalized form as a string, the straightforward way: decode the whole
 * unit, decompose it with utf8proc_map, then filter code point by code point. */
static char *ref_norm(const ref_cfg *c, const char *p, size_t n)
{
    utf8proc_uint8_t *dec = NULL;
    const utf8proc_uint8_t *src = (const utf8proc_uint8_t *)p;
    size_t len = n;
    if (c->accents) {
        utf8proc_ssize_t m = utf8proc_map(src, (utf8proc_ssize_t)n, &dec, UTF8PROC_DECOMPOSE);
        if (m >= 0) {
            src = dec;
            len = (size_t)m;
        }
    }
    int32_t *cps = malloc((len + 1) * sizeof *cps);
    size_t k = 0;
    for (size_t i = 0; i < len;) {
        utf8proc_int32_t cp;
        utf8proc_ssize_t r = utf8proc_iterate(src + i, (utf8proc_ssize_t)(len - i), &cp);
        if (r < 1) { r = 1; cp = -(int32_t)src[i]; } /* invalid byte, kept as is */
        i += (size_t)r;
        if (cp >= 0 && c->accents && utf8proc_category(cp) == UTF8PROC_CATEGORY_MN) continue;
        if (cp >= 0 && ref_space(cp)) { cps[k++] = c->collapse ? ' ' : cp; continue; }
        if (cp >= 0 && c->lower) cp = utf8proc_tolower(cp);
        int cat = cp >= 0 ? (int)utf8proc_category(cp) : -1;
        if (c->punct && ((cat >= UTF8PROC_CATEGORY_PC && cat <= UTF8PROC_CATEGORY_PO) || cat == UTF8PROC_CATEGORY_CC ||
                         cat == UTF8PROC_CATEGORY_CF))
            continue;
        if (c->digits && cat == UTF8PROC_CATEGORY_ND) cp = '0';
        cps[k++] = cp;
    }
    free(dec);
    /* trim, collapse */
    size_t a = 0, b = k;
    while (a < b && (cps[a] == ' ' || (cps[a] > 0 && ref_space(cps[a])))) a++;
    while (b > a && (cps[b - 1] == ' ' || (cps[b - 1] > 0 && ref_space(cps[b - 1])))) b--;
    char *out = malloc(4 * (b - a) + 1);
    size_t o = 0;
    for (size_t i = a; i < b; i++) {
        if (c->collapse && cps[i] == ' ' && i > a && cps[i - 1] == ' ') continue;
        if (cps[i] < 0) {
            out[o++] = (char)-cps[i];
        } else {
            o += (size_t)utf8proc_encode_char(cps[i], (utf8proc_uint8_t *)out + o);
        }
    }
    out[o] = 0;
    free(cps);
    return out;
}

typedef struct {
    size_t start, len;
    int nl, blank, removed;
    char *key; /* NULL: blank or empty */
} ref_unit;

static int ref_blank(const char *p, size_t n)
{
    for (size_t i = 0; i < n;) {
        utf8proc_int32_t cp;
        utf8proc_ssize_t r = utf8proc_iterate((const utf8proc_uint8_t *)p + i, (utf8proc_ssize_t)(n - i), &cp);
        if (r < 1 || !ref_space(cp)) return 0;
        i += (size_t)r;
    }
    return 1;
}

static size_t ref_units(const ref_cfg *c, const char *t, size_t n, ref_unit *u)
{
    size_t k = 0, i = 0;
    while (i < n) {
        size_t e = i;
        while (e < n && t[e] != '\n') e++;
        int nl = e < n, blank = ref_blank(t + i, e - i);
        if (c->paragraph && !blank && k && !u[k - 1].blank) {
            u[k - 1].len = e - u[k - 1].start;
            u[k - 1].nl = nl;
        } else {
            u[k++] = (ref_unit){i, e - i, nl, blank, 0, NULL};
        }
        i = e + nl;
    }
    return k;
}

/* A string set/multiset: FNV-1a, chaining. */
typedef struct ref_ent {
    char *s;
    long count, seen;
    struct ref_ent *next;
} ref_ent;
enum { REF_BUCKETS = 1 << 14 };

static ref_ent *ref_get(ref_ent **tab, const char *s)
{
    uint32_t h = 2166136261u;
    for (const char *p = s; *p; p++) h = (h ^ (unsigned char)*p) * 16777619u;
    ref_ent **b = &tab[h & (REF_BUCKETS - 1)];
    for (ref_ent *e = *b; e; e = e->next)
        if (!strcmp(e->s, s)) return e;
    ref_ent *e = calloc(1, sizeof *e);
    e->s = strdup(s);
    e->next = *b;
    *b = e;
    return e;
}

typedef struct {
    long removed, blank_removed, bytes_removed, unique, dup, modified, empty, short_;
} ref_counts;

/* The expected output of every document of `in`: text (or NULL + reason). */
static void ref_run(const ref_cfg *c, const wn_batch *in, char **text, const char **why, ref_counts *rc)
{
    ref_ent **tab = calloc(REF_BUCKETS, sizeof *tab);
    ref_unit **U = calloc(in->n, sizeof *U);
    size_t *nu = calloc(in->n, sizeof *nu);
    memset(rc, 0, sizeof *rc);
    for (size_t i = 0; i < in->n; i++) {
        const wn_doc *d = &in->docs[i];
        U[i] = calloc(d->text.len + 1, sizeof **U);
        nu[i] = ref_units(c, d->text.p ? d->text.p : "", d->text.len, U[i]);
        for (size_t j = 0; j < nu[i]; j++) {
            ref_unit *u = &U[i][j];
            if (u->blank) continue;
            char *k = ref_norm(c, d->text.p + u->start, u->len);
            if (!*k) { free(k); continue; }
            u->key = k;
            ref_ent *e = ref_get(tab, k);
            if (!e->count) rc->unique++;
            if (++e->count == 2) rc->dup++;
        }
    }
    for (size_t i = 0; i < in->n; i++) {
        const wn_doc *d = &in->docs[i];
        ref_unit *u = U[i];
        size_t n = nu[i];
        int any = 0;
        for (size_t j = 0; j < n; j++) {
            if (!u[j].key) continue;
            ref_ent *e = ref_get(tab, u[j].key);
            u[j].removed = c->min_count ? e->count >= c->min_count : e->seen++ > 0;
            any |= u[j].removed;
            rc->removed += u[j].removed;
        }
        why[i] = NULL;
        text[i] = strndup(d->text.p ? d->text.p : "", d->text.len);
        if (!any) continue;
        if (c->follow) {
            for (size_t j = 0; j < n; j++)
                if (u[j].removed == 1)
                    for (size_t k = j + 1; k < n && u[k].blank; k++) u[k].removed = 2;
            long last = -1;
            for (size_t j = 0; j < n; j++)
                if (!u[j].removed && !u[j].blank) last = (long)j;
            int cut = 0;
            for (size_t j = (size_t)(last + 1); j < n; j++) cut |= u[j].removed == 1;
            for (size_t j = (size_t)(last + 1); cut && j < n; j++)
                if (!u[j].removed) u[j].removed = 2;
        }
        size_t o = 0;
        for (size_t j = 0; j < n; j++) {
            if (u[j].removed == 2) rc->blank_removed++;
            if (u[j].removed) continue;
            memcpy(text[i] + o, d->text.p + u[j].start, u[j].len + (size_t)u[j].nl);
            o += u[j].len + (size_t)u[j].nl;
        }
        if (o && text[i][o - 1] == '\n' && d->text.p[d->text.len - 1] != '\n') o--;
        text[i][o] = 0;
        rc->bytes_removed += (long)(d->text.len - o);
        if (!wn_count_words(text[i], o)) {
            why[i] = "empty_after_dedup";
            rc->empty++;
        } else if (wn_count_words(text[i], o) < c->min_words || wn_utf8_count(text[i], o) < c->min_chars) {
            why[i] = "too_short_after_dedup";
            rc->short_++;
        } else {
            rc->modified++;
        }
    }
    for (size_t i = 0; i < in->n; i++) {
        for (size_t j = 0; j < nu[i]; j++) free(U[i][j].key);
        free(U[i]);
    }
    for (int b = 0; b < REF_BUCKETS; b++)
        for (ref_ent *e = tab[b], *nx; e; e = nx) {
            nx = e->next;
            free(e->s);
            free(e);
        }
    free(tab);
    free(U);
    free(nu);
}

/* A random corpus with many duplicate lines: a pool of lines written in
 * several variants (case, spacing, punctuation, digits, accents composed or
 * decomposed), unique lines, blank lines, lines that normalize to empty,
 * paragraphs, documents with and without a final newline. */
static void random_corpus(wn_batch *in, int ndocs, unsigned seed)
{
    static const char *const base[] = {
        "Share this article", "Subscribe to our newsletter", "Home", "Contact us", "Cookie policy",
        "All rights reserved 2019", "Read more", "Caf\xc3\xa9 du monde", "Previous post", "Next post",
        "Related posts", "Posted by admin", "Leave a comment", "Privacy Policy", "Terms of use",
        "\xe6\x9d\xb1\xe4\xba\xac \xe3\x83\x8b\xe3\x83\xa5\xe3\x83\xbc\xe3\x82\xb9", "Na\xc3\xafve approach",
        "Skip to main content", "Search for:", "Tags: news, world",
    };
    static const char *const empty_key[] = {"---", "* * *", "...", "\xe2\x80\x94"};
    int nb = (int)WN_ARRAY_LEN(base);
    char line[512];
    for (int i = 0; i < ndocs; i++) {
        wn_buf t = {0};
        int nl = 1 + (int)(rand_r(&seed) % 14);
        for (int l = 0; l < nl; l++) {
            int r = (int)(rand_r(&seed) % 100);
            if (r < 45) {
                const char *b = base[rand_r(&seed) % (unsigned)nb];
                int v = (int)(rand_r(&seed) % 7);
                size_t k = 0;
                for (const char *p = b; *p && k + 8 < sizeof line; p++) {
                    unsigned char ch = (unsigned char)*p;
                    if (v == 1 && ch < 0x80) ch = (unsigned char)(ch >= 'a' && ch <= 'z' ? ch - 32 : ch);
                    if (v == 2 && ch == ' ') { line[k++] = ' '; line[k++] = '\t'; }
                    if (v == 3 && ch >= '0' && ch <= '9') ch = (unsigned char)('0' + (ch - '0' + 3) % 10);
                    if (v == 4 && ch == 0xc3 && (unsigned char)p[1] == 0xa9) { /* é -> e + U+0301 */
                        memcpy(line + k, "e\xcc\x81", 3);
                        k += 3;
                        p++;
                        continue;
                    }
                    line[k++] = (char)ch;
                }
                if (v == 5) line[k++] = '!';
                if (v == 6) { memmove(line + 2, line, k); line[0] = ' '; line[1] = ' '; k += 2; }
                line[k] = 0;
            } else if (r < 60) {
                line[0] = 0; /* blank */
                if (rand_r(&seed) % 3 == 0) snprintf(line, sizeof line, " \t");
            } else if (r < 65) {
                snprintf(line, sizeof line, "%s", empty_key[rand_r(&seed) % WN_ARRAY_LEN(empty_key)]);
            } else if (r < 80) {
                snprintf(line, sizeof line, "Line %u of a body text", rand_r(&seed) % 40); /* digits: few keys */
            } else {
                snprintf(line, sizeof line, "unique words %d %d %c", i, l, 'a' + l % 26);
            }
            wn_buf_puts(&t, line);
            if (l + 1 < nl || rand_r(&seed) % 2) wn_buf_putc(&t, '\n');
        }
        add_doc(in, t.p ? t.p : "");
        wn_buf_free(&t);
    }
}

static void parse_cfg(ref_cfg *c, const char *params)
{
    *c = (ref_cfg){0, 0, 1, 1, 1, 1, 1, 1, 0, 0};
    c->paragraph = strstr(params, "unit: paragraph") != NULL;
    c->follow = strstr(params, "blank_lines: keep") == NULL;
    c->lower = !strstr(params, "lowercase: false");
    c->digits = !strstr(params, "digits: false");
    c->punct = !strstr(params, "punctuation: false");
    c->accents = !strstr(params, "accents: false");
    c->collapse = !strstr(params, "collapse_whitespace: false");
    const char *p;
    if ((p = strstr(params, "min_count: "))) c->min_count = atoi(p + 11);
    if ((p = strstr(params, "min_words: "))) c->min_words = (size_t)atoi(p + 11);
    if ((p = strstr(params, "min_chars: "))) c->min_chars = (size_t)atoi(p + 11);
}

/* The stage's output and report against the reference's; returns mismatches. */
static int against_reference(const char *params, const wn_batch *in, const outs *o, const wn_buf *r)
{
    ref_cfg c;
    parse_cfg(&c, params);
    char **text = calloc(in->n, sizeof *text);
    const char **why = calloc(in->n, sizeof *why);
    ref_counts rc;
    ref_run(&c, in, text, why, &rc);
    int bad = o->n != in->n;
    for (size_t i = 0; i < in->n && i < o->n; i++) {
        const out_doc *d = &o->d[i];
        int same = d->record == i && (why[i] ? d->drop && !strcmp(d->drop, why[i])
                                              : !d->drop && !strcmp(d->text.p ? d->text.p : "", text[i]));
        if (!same && bad < 3)
            fprintf(stderr, "  [%s] doc %zu: got %s \"%s\", expected %s \"%s\"\n", params, i,
                    d->drop ? d->drop : "kept", d->text.p ? d->text.p : "", why[i] ? why[i] : "kept", text[i]);
        bad += !same;
    }
    struct {
        const char *key;
        long want;
    } counts[] = {{"lines_removed", rc.removed},          {"blank_lines_removed", rc.blank_removed},
                  {"bytes_removed", rc.bytes_removed},     {"unique_line_hashes", rc.unique},
                  {"duplicated_line_hashes", rc.dup},      {"docs_modified", rc.modified},
                  {"docs_dropped.empty_after_dedup", rc.empty}, {"docs_dropped.too_short_after_dedup", rc.short_}};
    for (size_t k = 0; r && k < WN_ARRAY_LEN(counts); k++) {
        double got = rnum(r, counts[k].key);
        if (got != (double)counts[k].want) {
            fprintf(stderr, "  [%s] %s: got %.0f, expected %ld\n", params, counts[k].key, got, counts[k].want);
            bad++;
        }
    }
    for (size_t i = 0; i < in->n; i++) free(text[i]);
    free(text);
    free(why);
    return bad;
}

static const char *const ref_params[] = {
    "",
    "unit: paragraph",
    "min_count: 3",
    "min_count: 2, unit: paragraph, blank_lines: keep",
    "blank_lines: keep, min_words: 3",
    "lowercase: false, accents: false, min_chars: 12",
    "digits: false, punctuation: false, collapse_whitespace: false",
};

TEST(line_dedup_matches_brute_force_reference)
{
    for (unsigned seed = 1; seed <= 3; seed++) {
        wn_batch in = {0};
        random_corpus(&in, 300, seed);
        for (size_t k = 0; k < WN_ARRAY_LEN(ref_params); k++) {
            outs o = {0};
            wn_buf r = {0};
            CHECK(run_ld(ref_params[k], 2, &in, 1 + seed * 13, &o, &r));
            CHECK_EQ_INT(against_reference(ref_params[k], &in, &o, &r), 0);
            CHECK(rnum(&r, "lines_removed") > 50);
            outs_free(&o);
            wn_buf_free(&r);
        }
        wn_batch_free(&in);
    }
}

/* ---- budgets, threads, checkpoints -------------------------------------------------------- */

static int same_outputs(const outs *a, const outs *b)
{
    if (a->n != b->n) return 0;
    for (size_t i = 0; i < a->n; i++) {
        const out_doc *x = &a->d[i], *y = &b->d[i];
        if (strcmp(x->id, y->id) || (x->drop == NULL) != (y->drop == NULL) || (x->drop && strcmp(x->drop, y->drop)) ||
            x->modified != y->modified || x->text.len != y->text.len ||
            (x->text.len && memcmp(x->text.p, y->text.p, x->text.len)) || x->raw.len != y->raw.len ||
            (x->raw.len && memcmp(x->raw.p, y->raw.p, x->raw.len)) || x->record != y->record || x->file != y->file)
            return 0;
    }
    return 1;
}

/* Report keys that depend only on the input (not on the budget). */
static int same_counts(const wn_buf *a, const wn_buf *b)
{
    static const char *const keys[] = {"lines_total", "lines_hashed", "lines_removed", "blank_lines_removed",
                                       "bytes_removed", "docs_modified", "unique_line_hashes",
                                       "duplicated_line_hashes", "recurrence_histogram.counts.0",
                                       "recurrence_histogram.counts.1", "recurrence_histogram.counts.2"};
    for (size_t k = 0; k < WN_ARRAY_LEN(keys); k++) {
        double x = rnum(a, keys[k]), y = rnum(b, keys[k]);
        if (!(x == y || (isnan(x) && isnan(y)))) {
            fprintf(stderr, "  %s: %g != %g\n", keys[k], x, y);
            return 0;
        }
    }
    return 1;
}

TEST(line_dedup_tiny_budget_spills_and_matches_in_memory)
{
    wn_batch in = {0};
    random_corpus(&in, 1500, 42);
    static const char *const modes[] = {"", "min_count: 4", "unit: paragraph"};
    for (size_t k = 0; k < WN_ARRAY_LEN(modes); k++) {
        char tiny[128];
        snprintf(tiny, sizeof tiny, "%s%smemory: 2KiB", modes[k], modes[k][0] ? ", " : "");
        outs a = {0}, b = {0};
        wn_buf ra = {0}, rb = {0};
        CHECK(run_ld(modes[k], 2, &in, 64, &a, &ra));
        CHECK(run_ld(tiny, 2, &in, 64, &b, &rb));
        CHECK_EQ_INT(rnum(&ra, "spill.runs"), 0); /* 1 MiB: in memory */
        CHECK_EQ_INT(rnum(&ra, "spill.decision_runs"), 0);
        CHECK(rnum(&rb, "spill.runs") > 16);       /* more than one merge's fan-in */
        CHECK(rnum(&rb, "spill.merge_passes") >= 1);
        if (!strstr(modes[k], "paragraph")) /* decision runs merged too */
            CHECK(rnum(&rb, "spill.decision_runs") > 16 && rnum(&rb, "spill.merge_passes") >= 2);
        CHECK(same_outputs(&a, &b));
        CHECK(same_counts(&ra, &rb));
        CHECK_EQ_INT(against_reference(modes[k], &in, &b, &rb), 0);
        outs_free(&a);
        outs_free(&b);
        wn_buf_free(&ra);
        wn_buf_free(&rb);
    }
    wn_batch_free(&in);
}

TEST(line_dedup_independent_of_threads_and_batching)
{
    wn_batch in = {0};
    random_corpus(&in, 600, 7);
    outs a = {0}, b = {0}, c = {0};
    wn_buf ra = {0}, rb = {0}, rc = {0};
    CHECK(run_ld("memory: 8KiB", 1, &in, 600, &a, &ra));
    CHECK(run_ld("memory: 8KiB", 4, &in, 7, &b, &rb));
    CHECK(run_ld("", 3, &in, 1, &c, &rc));
    CHECK(same_outputs(&a, &b));
    CHECK(same_outputs(&a, &c));
    CHECK(same_counts(&ra, &rb) && same_counts(&ra, &rc));
    outs_free(&a);
    outs_free(&b);
    outs_free(&c);
    wn_buf_free(&ra);
    wn_buf_free(&rb);
    wn_buf_free(&rc);
    wn_batch_free(&in);
}

/* Straight, and with a checkpoint after `at` documents, more documents
 * processed after it (which the restore must forget: spill bytes, key runs),
 * a crash, a restore and the rest: the same outputs and counts. */
static void resume_identity(int *wn_failed_, const char *params, const wn_batch *in, size_t at)
{
    outs ref = {0}, got = {0};
    wn_buf rr = {0}, rg = {0};
    CHECK(run_ld(params, 2, in, 25, &ref, &rr));

    harness h;
    memset(&h, 0, sizeof h);
    CHECK(wn_test_stage_open(&h, "line_dedup", params, 2) == WN_OK);
    CHECK(feed(&h, in, 0, at, 25, &got) == WN_OK);
    char path[128], spill[128];
    snprintf(path, sizeof path, "%s/ckpt", h.dir);
    snprintf(spill, sizeof spill, "%s/docs.spill.zst", h.dir);
    FILE *f = fopen(path, "wb");
    CHECK(f && h.st.def->save(&h.st, f) == WN_OK);
    if (f) fclose(f);
    struct stat sb;
    off_t saved = stat(spill, &sb) ? -1 : sb.st_size;
    outs lost = {0};
    CHECK(feed(&h, in, at, at + 300 < in->n ? at + 300 : in->n, 25, &lost) == WN_OK);
    outs_free(&lost);
    CHECK(!stat(spill, &sb) && saved > 0 && sb.st_size > saved); /* the restore must cut this */
    h.st.def->close(&h.st); /* the crash: state gone, the files stay */
    memset(h.st.state, 0, h.st.def->state_size);
    CHECK(h.st.def->open(&h.st) == WN_OK);
    f = fopen(path, "rb");
    CHECK(f && h.st.def->load(&h.st, f) == WN_OK);
    if (f) fclose(f);
    CHECK(feed(&h, in, at, in->n, 25, &got) == WN_OK);
    CHECK(drain(&h, &got) == WN_OK);
    wn_jw w;
    wn_jw_init(&w, &rg, 0);
    wn_jw_obj_begin(&w);
    h.st.def->report(&h.st, &w);
    wn_jw_obj_end(&w);
    wn_test_stage_close(&h);
    CHECK(same_outputs(&ref, &got));
    CHECK(same_counts(&rr, &rg));
    CHECK_EQ_INT(rnum(&rr, "spill.runs"), rnum(&rg, "spill.runs"));
    outs_free(&ref);
    outs_free(&got);
    wn_buf_free(&rr);
    wn_buf_free(&rg);
}

TEST(line_dedup_checkpoint_restore_identity)
{
    wn_batch in = {0};
    random_corpus(&in, 1200, 9);
    unsigned seed = 3;
    for (size_t i = 0; i < in.n; i += 5) { /* some incompressible text: the spill reaches the disk */
        wn_buf_puts(&in.docs[i].text, "\n");
        for (int k = 0; k < 2000; k++) wn_buf_putc(&in.docs[i].text, (char)('a' + rand_r(&seed) % 26));
    }
    resume_identity(wn_failed_, "memory: 4KiB", &in, 500);  /* key runs on disk before and after */
    resume_identity(wn_failed_, "min_count: 3", &in, 700);  /* everything in memory */
    resume_identity(wn_failed_, "unit: paragraph, memory: 4KiB", &in, 150);
    wn_batch_free(&in);
}

TEST(line_dedup_empty_stream_and_corrupt_run)
{
    wn_batch in = {0};
    outs o = {0};
    wn_buf r = {0};
    CHECK(run_ld("", 1, &in, 1, &o, &r)); /* nothing in, nothing out */
    CHECK_EQ_INT(o.n, 0);
    CHECK_EQ_INT(rnum(&r, "lines_total"), 0);
    /* documents but nothing to hash */
    add_doc(&in, "\n\n---\n");
    add_doc(&in, "");
    add_doc(&in, " \t\n...");
    CHECK(run_ld("memory: 1KiB", 2, &in, 2, &o, &r));
    CHECK_EQ_INT(o.n, 3);
    for (size_t i = 0; i < o.n; i++)
        CHECK(!o.d[i].drop && !o.d[i].modified &&
              !strcmp(o.d[i].text.p ? o.d[i].text.p : "", in.docs[i].text.p ? in.docs[i].text.p : ""));
    CHECK_EQ_INT(rnum(&r, "lines_total"), 5);
    CHECK_EQ_INT(rnum(&r, "lines_hashed"), 0);
    outs_free(&o);
    wn_batch_free(&in);
    random_corpus(&in, 200, 5);
    /* a key run cut short is an error that names the file, not a crash */
    harness h;
    memset(&h, 0, sizeof h);
    CHECK(wn_test_stage_open(&h, "line_dedup", "memory: 1KiB", 1) == WN_OK);
    CHECK(feed(&h, &in, 0, in.n, 50, &o) == WN_OK);
    char run[128];
    snprintf(run, sizeof run, "%s/keys-00000.run", h.dir);
    struct stat sb;
    CHECK(!stat(run, &sb) && sb.st_size > 600);
    CHECK(truncate(run, sb.st_size - 30) == 0);
    outs p = {0};
    CHECK(drain(&h, &p) == WN_ERR_STATE);
    CHECK(strstr(h.st.err.msg, "keys-00000.run") != NULL);
    wn_test_stage_close(&h);
    outs_free(&o);
    outs_free(&p);
    wn_buf_free(&r);
    wn_batch_free(&in);
}
