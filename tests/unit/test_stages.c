/*
 * test_stages.c - the stages driven through their descriptors, with
 * parameters resolved by the real manifest loader. exact_dedup's fast
 * eight-byte key path is checked against a naive oracle on random texts;
 * normalize against known NFC/NFKC pairs; length_filter and sample on edges.
 */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <utf8proc.h>

#include "../stage_harness.h"
#include "../test.h"
#include "fs.h"
#include "manifest.h"
#include "stage.h"
#include "text.h"

typedef wn_test_stage harness;

/* Opens the single stage of "- NAME: {PARAMS}" with two threads. */
static int open_stage(harness *h, const char *name, const char *params)
{
    memset(h, 0, sizeof *h);
    return wn_test_stage_open(h, name, params, 2) == WN_OK;
}

static void close_stage(harness *h) { wn_test_stage_close(h); }

static wn_doc *push(wn_batch *b, const char *id, const char *text, size_t n)
{
    wn_doc *d = wn_batch_push(b);
    wn_buf_puts(&d->id, id);
    wn_buf_append(&d->text, text, n);
    return d;
}

/* The oracle: whitespace runs to one space, ends trimmed, code points
 * lowercased one at a time, written the slow and obvious way. */
static void naive_key_text(const char *p, size_t n, int lower, wn_buf *out)
{
    int pending = 0;
    for (size_t i = 0; i < n;) {
        size_t start = i;
        int32_t c = wn_utf8_next(p, n, &i);
        if (c >= 0 && wn_is_space(c)) {
            pending = out->len > 0;
            continue;
        }
        if (pending) wn_buf_putc(out, ' ');
        pending = 0;
        if (lower && c >= 0 && utf8proc_tolower(c) != c) wn_utf8_put(out, utf8proc_tolower(c));
        else wn_buf_append(out, p + start, i - start);
    }
}

static void random_text(unsigned *seed, wn_buf *t)
{
    static const char *const pieces[] = {"a", "B", "word", "Zebra", " ", "  ", "\n", "\t", "\r\n", "\xc2\xa0",
                                         "\xe3\x80\x80", "caf\xc3\xa9", "\xc3\x89T\xc3\x89", "x!", "\x7f", "\x01",
                                         "\xce\xa3", "0123456789", "\xc8\xba", "\xe2\x80\x83", "."};
    wn_buf_clear(t);
    int n = rand_r(seed) % 40;
    for (int i = 0; i < n; i++) wn_buf_puts(t, pieces[rand_r(seed) % WN_ARRAY_LEN(pieces)]);
}

static void dedup_oracle(int *wn_failed_, int lower)
{
    harness h;
    CHECK(open_stage(&h, "exact_dedup", lower ? "lowercase: true" : ""));
    wn_batch b = {0};
    wn_buf t = {0}, k = {0};
    unsigned seed = 7;
    int cases = 0;
    for (int round = 0; round < 4000; round++) {
        random_text(&seed, &t);
        wn_buf_clear(&k);
        naive_key_text(t.p ? t.p : "", t.len, lower, &k);
        /* the oracle's own form first, then the messy original: a duplicate
         * exactly when the fast path agrees with the oracle */
        char id[32];
        snprintf(id, sizeof id, "%d", round);
        wn_batch_reset(&b);
        push(&b, id, k.p ? k.p : "", k.len);
        push(&b, id, t.p ? t.p : "", t.len);
        CHECK(h.st.def->process(&h.st, &b) == WN_OK);
        int first_new = !b.docs[0].drop, second_dup = b.docs[1].drop != NULL;
        if (!second_dup) fprintf(stderr, "  fast key differs from oracle for [%.*s]\n", (int)t.len, t.p);
        CHECK(second_dup);
        cases += first_new;
    }
    CHECK(cases > 1000); /* plenty of distinct texts were new */
    wn_batch_free(&b);
    wn_buf_free(&t);
    wn_buf_free(&k);
    close_stage(&h);
}

TEST(exact_dedup_matches_naive_oracle) { dedup_oracle(wn_failed_, 0); }
TEST(exact_dedup_lowercase_matches_naive_oracle) { dedup_oracle(wn_failed_, 1); }

TEST(exact_dedup_first_occurrence_and_spill)
{
    harness h;
    CHECK(open_stage(&h, "exact_dedup", "memory: 16KiB"));
    wn_batch b = {0};
    char text[64];
    /* 3000 distinct texts, then all of them again: 16 KiB holds 512 keys,
     * so most of the first pass is spilled and found again on disk */
    for (int pass = 0; pass < 2; pass++) {
        for (int i = 0; i < 3000; i += 100) {
            wn_batch_reset(&b);
            for (int j = i; j < i + 100; j++) {
                int n = snprintf(text, sizeof text, "document number %d", j);
                push(&b, "x", text, (size_t)n);
            }
            CHECK(h.st.def->process(&h.st, &b) == WN_OK);
            for (size_t j = 0; j < b.n; j++) CHECK((b.docs[j].drop != NULL) == (pass == 1));
        }
    }
    CHECK(h.st.mem_peak <= 16 * 1024);
    wn_batch_free(&b);
    close_stage(&h);
}

/* A repeat that arrives when the table is full (512 keys of 16 KiB) and
 * must spill first: its key is in the table, so it is a duplicate, not a new
 * key found again in the emptied table. Each batch holds a new text and the
 * previous batch's again, so a repeat comes at every count, spills included. */
TEST(exact_dedup_repeat_when_the_table_spills)
{
    harness h;
    CHECK(open_stage(&h, "exact_dedup", "memory: 16KiB"));
    wn_batch b = {0};
    char text[64];
    for (int j = 0; j < 1600; j++) {
        wn_batch_reset(&b);
        int n = snprintf(text, sizeof text, "document number %d", j);
        push(&b, "x", text, (size_t)n);
        n = snprintf(text, sizeof text, "document number %d", j - 1);
        if (j) push(&b, "y", text, (size_t)n);
        CHECK(h.st.def->process(&h.st, &b) == WN_OK);
        CHECK(!b.docs[0].drop);
        if (j && !b.docs[1].drop) {
            fprintf(stderr, "  the repeat of text %d was kept\n", j - 1);
            CHECK(0);
            break;
        }
    }
    wn_batch_free(&b);
    close_stage(&h);
}

TEST(normalize_forms)
{
    static const struct { const char *params, *in, *out; } cases[] = {
        {"form: nfc", "e\xcc\x81t\xc3\xa9", "\xc3\xa9t\xc3\xa9"},           /* e + U+0301 -> é */
        {"form: nfc", "\xef\xbc\xa1\xef\xac\x81", "\xef\xbc\xa1\xef\xac\x81"}, /* fullwidth A, ﬁ kept */
        {"form: nfkc", "\xef\xbc\xa1\xef\xac\x81", "Afi"},
        {"form: nfd", "\xc3\xa9", "e\xcc\x81"},
        {"form: none", "a\x07" "b\r\nc", "ab\r\nc"},
        {"newlines: lf", "a\r\nb\rc", "a\nb\nc"},
        {"strip_control: false", "a\x07" "b", "a\x07" "b"},
        {"", "a\xc2\x85" "b", "ab"}, /* U+0085 is a C1 control */
        {"", "plain ascii\n", "plain ascii\n"},
    };
    for (size_t i = 0; i < WN_ARRAY_LEN(cases); i++) {
        harness h;
        CHECK(open_stage(&h, "normalize", cases[i].params));
        wn_batch b = {0};
        push(&b, "x", cases[i].in, strlen(cases[i].in));
        CHECK(h.st.def->process(&h.st, &b) == WN_OK);
        b.docs[0].text.p[b.docs[0].text.len] = 0;
        if (strcmp(b.docs[0].text.p, cases[i].out)) fprintf(stderr, "  normalize case %zu\n", i);
        CHECK_EQ_STR(b.docs[0].text.p, cases[i].out);
        CHECK(b.docs[0].modified == (strcmp(cases[i].in, cases[i].out) != 0));
        wn_batch_free(&b);
        close_stage(&h);
    }
}

TEST(normalize_invalid_utf8)
{
    harness h;
    CHECK(open_stage(&h, "normalize", "invalid_utf8: drop"));
    wn_batch b = {0};
    push(&b, "bad", "a\xff" "b", 3);
    push(&b, "good", "ab", 2);
    CHECK(h.st.def->process(&h.st, &b) == WN_OK);
    CHECK(b.docs[0].drop && !strcmp(b.docs[0].drop, "invalid_utf8"));
    CHECK(!b.docs[1].drop);
    wn_batch_free(&b);
    close_stage(&h);
}

TEST(length_filter_bounds)
{
    harness h;
    CHECK(open_stage(&h, "length_filter", "min_words: 2, max_chars: 10, max_lines: 2"));
    wn_batch b = {0};
    push(&b, "1", "one", 3);                       /* too_few_words */
    push(&b, "2", "two words", 9);                 /* kept */
    push(&b, "3", "\xc3\xa9\xc3\xa9\xc3\xa9 \xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9", 15); /* 8 code points: kept */
    push(&b, "4", "eleven chars", 12);             /* too_many_chars */
    push(&b, "5", "a\nb\nc", 5);                   /* too_many_lines */
    CHECK(h.st.def->process(&h.st, &b) == WN_OK);
    CHECK(b.docs[0].drop && !strcmp(b.docs[0].drop, "too_few_words"));
    CHECK(!b.docs[1].drop);
    CHECK(!b.docs[2].drop);
    CHECK(b.docs[3].drop && !strcmp(b.docs[3].drop, "too_many_chars"));
    CHECK(b.docs[4].drop && !strcmp(b.docs[4].drop, "too_many_lines"));
    wn_batch_free(&b);
    close_stage(&h);
}

TEST(sample_is_nested_and_close_to_rate)
{
    harness lo, hi;
    CHECK(open_stage(&lo, "sample", "rate: 0.2, seed: 3"));
    CHECK(open_stage(&hi, "sample", "rate: 0.5, seed: 3"));
    wn_batch a = {0}, b = {0};
    char id[32];
    for (int i = 0; i < 20000; i++) {
        snprintf(id, sizeof id, "doc-%d", i);
        push(&a, id, "t", 1);
        push(&b, id, "t", 1);
    }
    CHECK(lo.st.def->process(&lo.st, &a) == WN_OK);
    CHECK(hi.st.def->process(&hi.st, &b) == WN_OK);
    int kept_lo = 0, kept_hi = 0, nested = 1;
    for (size_t i = 0; i < a.n; i++) {
        kept_lo += !a.docs[i].drop;
        kept_hi += !b.docs[i].drop;
        if (!a.docs[i].drop && b.docs[i].drop) nested = 0;
    }
    CHECK(nested);
    CHECK(kept_lo > 3700 && kept_lo < 4300);   /* 0.2 +- 1.5% */
    CHECK(kept_hi > 9700 && kept_hi < 10300);
    wn_batch_free(&a);
    wn_batch_free(&b);
    close_stage(&lo);
    close_stage(&hi);
}

TEST(batch_trim_bounds_what_a_reused_batch_keeps)
{
    static char big[20000];
    memset(big, 'x', sizeof big);
    wn_batch b = {0};
    /* every slot ends up with a 20 KB buffer, though the last fill was small */
    for (int round = 0; round < 2; round++) {
        wn_batch_reset(&b);
        for (int i = 0; i < 200; i++) push(&b, "id", big, round ? 100 : sizeof big);
    }
    size_t full = wn_batch_mem(&b);
    CHECK(full > 200 * sizeof big);
    wn_batch_trim(&b, 0); /* holds documents: untouched */
    CHECK_EQ_INT(wn_batch_mem(&b), full);
    CHECK(b.docs[199].text.len == 100 && b.docs[199].text.p[99] == 'x');
    wn_batch_reset(&b);
    wn_batch_trim(&b, full); /* within the bound */
    CHECK_EQ_INT(wn_batch_mem(&b), full);
    wn_batch_trim(&b, 1 << 20);
    CHECK_EQ_INT(wn_batch_mem(&b), b.cap * sizeof *b.docs);
    wn_doc *d = push(&b, "a", "hello", 5); /* the slots work again */
    CHECK(b.n == 1 && d->text.len == 5 && !memcmp(d->text.p, "hello", 5) && d->id.len == 1);
    wn_batch_free(&b);
}

TEST(table_budget_is_the_budget_less_the_reserve_or_half_of_it)
{
    wn_run_info run = {0};
    wn_stage st = {0};
    uint64_t r = 0;
    run.reserve_bytes = 100ull << 20;
    st.run = &run;
    CHECK(wn_stage_table_budget(&st, 1ull << 30, 10ull << 20, &r) == (1ull << 30) - (110ull << 20));
    CHECK(r == 110ull << 20);
    /* under twice the reserve the budget cannot hold the process: half of it */
    CHECK(wn_stage_table_budget(&st, 200ull << 20, 10ull << 20, NULL) == 100ull << 20);
    CHECK(wn_stage_table_budget(&st, 16 << 10, 10ull << 20, NULL) == 8 << 10);
    st.run = NULL; /* outside a run: only the stage's own buffers */
    CHECK(wn_stage_table_budget(&st, 200ull << 20, 10ull << 20, &r) == 190ull << 20 && r == 10ull << 20);
}
