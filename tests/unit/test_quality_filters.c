/*
 * test_quality_filters.c - gopher_quality, gopher_repetition, c4_filter and
 * fineweb_quality driven through their descriptors with parameters resolved
 * by the real manifest loader. Each rule gets a document just inside and
 * one just outside its threshold. Count rules use the published defaults;
 * character-fraction rules use a hand-computed ratio r with the threshold
 * set to r (kept: the rules are strict ">") and to r - 1e-9 (dropped), the
 * other rules switched off. Also: the word splitter on known spaCy
 * tokenizations, annotate mode, and C4's line removal and report.
 */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../stage_harness.h"
#include "../test.h"
#include "fs.h"
#include "json.h"
#include "manifest.h"
#include "stage.h"
#include "textstat.h"

typedef wn_test_stage harness;

static int open_stage(harness *h, const char *name, const char *params, int threads)
{
    memset(h, 0, sizeof *h);
    return wn_test_stage_open(h, name, params, threads) == WN_OK;
}

static void close_stage(harness *h) { wn_test_stage_close(h); }

/* The verdict of stage NAME {PARAMS} on one text: "pass" or the reason. */
static const char *verdict(const char *name, const char *params, const char *text)
{
    static char out[64];
    harness h;
    snprintf(out, sizeof out, "(open failed)");
    if (!open_stage(&h, name, params, 2)) { close_stage(&h); return out; }
    wn_batch b = {0};
    wn_doc *d = wn_batch_push(&b);
    wn_buf_puts(&d->id, "x");
    wn_buf_puts(&d->text, text);
    if (h.st.def->process(&h.st, &b) != WN_OK) snprintf(out, sizeof out, "(process failed)");
    else snprintf(out, sizeof out, "%s", d->drop ? d->drop : "pass");
    wn_batch_free(&b);
    close_stage(&h);
    return out;
}

/* Appends n words taken in turn from `cycle` (NULL-terminated), separated by sep. */
static void words(wn_buf *b, const char *const *cycle, int n, const char *sep)
{
    int k = 0;
    while (cycle[k]) k++;
    for (int i = 0; i < n; i++) {
        if (b->len) wn_buf_puts(b, sep);
        wn_buf_puts(b, cycle[i % k]);
    }
}

static const char *const filler[] = {"the", "and", "house", "garden", NULL}; /* mean 4.25 */

/* ---- word splitter ---------------------------------------------------------- */

static void check_tokens(int *wn_failed_, const char *text, const char *want)
{
    wn_ts_scratch sc = {0};
    wn_buf got = {0};
    CHECK(wn_ts_words(&sc, text, strlen(text)) == WN_OK);
    for (size_t i = 0; i < sc.n_tok; i++) {
        if (i) wn_buf_putc(&got, '|');
        wn_buf_append(&got, text + sc.tok[i].off, sc.tok[i].len);
    }
    CHECK_EQ_STR(got.p ? got.p : "", want);
    wn_buf_free(&got);
    wn_ts_scratch_free(&sc);
}

TEST(quality_words_follow_spacy)
{
    /* expected splits are spaCy 3's blank("en") tokenizer output */
    check_tokens(wn_failed_, "Hello, world! Don't stop.", "Hello|,|world|!|Do|n't|stop|.");
    check_tokens(wn_failed_, "(see U.S. e.g. well-known)", "(|see|U.S.|e.g.|well|-|known|)");
    check_tokens(wn_failed_, "Visit http://example.com/a. Now...", "Visit|http://example.com/a|.|Now|...");
    check_tokens(wn_failed_, "It's 100% \"quoted\" #tag", "It|'s|100|%|\"|quoted|\"|#|tag");
    check_tokens(wn_failed_, "caf\xc3\xa9 \xe2\x80\xa6 end\xe2\x80\xa6", "caf\xc3\xa9|\xe2\x80\xa6|end|\xe2\x80\xa6");
    wn_ts_scratch sc = {0};
    const char *s = "One two. Three four! Five? e.g. six";
    CHECK_EQ_INT(wn_ts_sentences(&sc, s, strlen(s)), 4);
    wn_ts_scratch_free(&sc);
}

/* ---- gopher_quality --------------------------------------------------------- */

TEST(quality_gopher_word_count_and_length)
{
    wn_buf t = {0};
    words(&t, filler, 50, " ");
    CHECK_EQ_STR(verdict("gopher_quality", "", t.p), "pass");
    wn_buf_clear(&t);
    words(&t, filler, 49, " ");
    CHECK_EQ_STR(verdict("gopher_quality", "", t.p), "gopher_short_doc");
    wn_buf_clear(&t);
    words(&t, filler, 100000, " ");
    CHECK_EQ_STR(verdict("gopher_quality", "", t.p), "pass");
    wn_buf_puts(&t, " house");
    CHECK_EQ_STR(verdict("gopher_quality", "", t.p), "gopher_long_doc");

    /* mean length exactly 3 passes; one 2-letter word goes below */
    static const char *const three[] = {"the", "and", "cat", "dog", NULL};
    wn_buf_clear(&t);
    words(&t, three, 50, " ");
    CHECK_EQ_STR(verdict("gopher_quality", "", t.p), "pass");
    memcpy(t.p + t.len - 3, "ox ", 3); /* last word "dog" -> "ox" */
    t.len--;
    t.p[t.len] = 0;
    CHECK_EQ_STR(verdict("gopher_quality", "", t.p), "gopher_below_avg_threshold");

    /* the, and + 48 words of 10 or 11 letters: 14 long ones make a mean of
     * exactly 10, 15 go above */
    for (int longs = 14; longs <= 15; longs++) {
        wn_buf_clear(&t);
        wn_buf_puts(&t, "the and");
        for (int i = 0; i < 48; i++) wn_buf_puts(&t, i < longs ? " abcdefghijk" : " abcdefghij");
        CHECK_EQ_STR(verdict("gopher_quality", "", t.p), longs == 14 ? "pass" : "gopher_above_avg_threshold");
    }
    wn_buf_free(&t);
}

TEST(quality_gopher_symbols_lines_alpha_stop_words)
{
    wn_buf t = {0};
    /* 50 words + k stand-alone '#' tokens: k/(50+k) <= 0.1 for k = 5, not 6 */
    for (int k = 5; k <= 6; k++) {
        wn_buf_clear(&t);
        words(&t, filler, 50, " ");
        for (int i = 0; i < k; i++) wn_buf_puts(&t, " #");
        CHECK_EQ_STR(verdict("gopher_quality", "", t.p), k == 5 ? "pass" : "gopher_too_many_hashes");
        /* the same with "..." and U+2026 between the words */
        wn_buf_clear(&t);
        for (int i = 0; i < 50; i++) {
            if (i) wn_buf_puts(&t, " ");
            if (i > 0 && i <= k) wn_buf_puts(&t, i % 2 ? "... " : "\xe2\x80\xa6 ");
            wn_buf_puts(&t, filler[i % 4]);
        }
        CHECK_EQ_STR(verdict("gopher_quality", "", t.p), k == 5 ? "pass" : "gopher_too_many_ellipsis");
    }
    /* 10 lines of 6 words: 9 bullets pass, 10 do not; 3 lines ending in an
     * ellipsis pass, 4 do not */
    for (int k = 9; k <= 10; k++) {
        wn_buf_clear(&t);
        for (int i = 0; i < 10; i++) {
            wn_buf_puts(&t, i < k ? (i % 2 ? "  - " : "\xe2\x80\xa2 ") : "");
            wn_buf_puts(&t, "the and house garden river stone\n");
        }
        CHECK_EQ_STR(verdict("gopher_quality", "", t.p), k == 9 ? "pass" : "gopher_too_many_bullets");
    }
    for (int k = 3; k <= 4; k++) {
        wn_buf_clear(&t);
        for (int i = 0; i < 10; i++)
            wn_buf_puts(&t, i < k ? "the and house garden river stone... \n" : "the and house garden river stone\n");
        CHECK_EQ_STR(verdict("gopher_quality", "", t.p), k == 3 ? "pass" : "gopher_too_many_end_ellipsis");
    }
    /* 50 alphabetic words + k numbers: 50/62 >= 0.8, 50/63 < 0.8 */
    for (int k = 12; k <= 13; k++) {
        wn_buf_clear(&t);
        words(&t, filler, 50, " ");
        for (int i = 0; i < k; i++) wn_buf_puts(&t, " 1234");
        CHECK_EQ_STR(verdict("gopher_quality", "", t.p), k == 12 ? "pass" : "gopher_below_alpha_threshold");
    }
    /* two distinct stop words pass; one repeated, or "The" (case), do not */
    static const char *const one_stop[] = {"the", "house", "garden", "river", NULL};
    static const char *const cased[] = {"The", "And", "house", "garden", NULL};
    wn_buf_clear(&t);
    words(&t, one_stop, 60, " ");
    CHECK_EQ_STR(verdict("gopher_quality", "", t.p), "gopher_enough_stop_words");
    wn_buf_clear(&t);
    words(&t, cased, 60, " ");
    CHECK_EQ_STR(verdict("gopher_quality", "", t.p), "gopher_enough_stop_words");
    wn_buf_puts(&t, " with");
    CHECK_EQ_STR(verdict("gopher_quality", "min_stop_words: 1", t.p), "pass");
    wn_buf_free(&t);
}

TEST(quality_gopher_annotate_keeps)
{
    harness h;
    CHECK(open_stage(&h, "gopher_quality", "mode: annotate", 2));
    wn_batch b = {0};
    wn_doc *d = wn_batch_push(&b);
    wn_buf_puts(&d->text, "too short");
    d = wn_batch_push(&b);
    words(&d->text, filler, 60, " ");
    CHECK(h.st.def->process(&h.st, &b) == WN_OK);
    CHECK(!b.docs[0].drop && !b.docs[1].drop);
    CHECK(b.docs[0].attrs.p && strstr(b.docs[0].attrs.p, "\"gopher_quality\":\"gopher_short_doc\""));
    CHECK(b.docs[0].attrs.p && strstr(b.docs[0].attrs.p, "\"gopher_quality_stats\":{\"words\":2,"));
    CHECK(b.docs[1].attrs.p && strstr(b.docs[1].attrs.p, "\"gopher_quality\":\"pass\""));
    wn_batch_free(&b);
    close_stage(&h);
}

/* ---- gopher_repetition ------------------------------------------------------ */

#define REP_OFF                                                                                              \
    "dup_line_frac: 0, dup_para_frac: 0, dup_line_char_frac: 0, dup_para_char_frac: 0, top_2_gram: 0, "      \
    "top_3_gram: 0, top_4_gram: 0, dup_5_gram: 0, dup_6_gram: 0, dup_7_gram: 0, dup_8_gram: 0, dup_9_gram: 0, " \
    "dup_10_gram: 0"

/* text passes with `key: r` and fails with `key: r - 1e-9`, all else off */
static void boundary(int *wn_failed_, const char *stage, const char *off, const char *key, double r,
                     const char *text, const char *reason)
{
    char p[2200];
    /* the manifest rejects a key given twice: drop key from `off` */
    char q[1024];
    snprintf(q, sizeof q, "%s", off);
    char *k = strstr(q, key);
    if (k && (k == q || k[-1] == ' ') && k[strlen(key)] == ':') {
        char *end = strchr(k, ',');
        if (end) memmove(k, end + 2, strlen(end + 2) + 1);
        else *(k > q ? k - 2 : k) = 0;
    }
    snprintf(p, sizeof p, "%s%s%s: %.17g", q, *q ? ", " : "", key, r);
    CHECK_EQ_STR(verdict(stage, p, text), "pass");
    snprintf(p, sizeof p, "%s%s%s: %.17g", q, *q ? ", " : "", key, r - 1e-9);
    CHECK_EQ_STR(verdict(stage, p, text), reason);
}

TEST(quality_gopher_repetition_counts)
{
    wn_buf t = {0};
    /* 10 lines, k of them repeats of "ab": 3/10 passes, 4/10 fails */
    for (int k = 3; k <= 4; k++) {
        wn_buf_clear(&t);
        for (int i = 0; i < 10; i++) {
            if (i <= k) wn_buf_puts(&t, "ab\n");
            else wn_buf_printf(&t, "u%da u%db u%dc u%dd u%de u%df\n", i, i, i, i, i, i);
        }
        CHECK_EQ_STR(verdict("gopher_repetition", "", t.p), k == 3 ? "pass" : "dup_line_frac");
        /* the same as paragraphs */
        wn_buf tt = {0};
        for (size_t i = 0; i < t.len; i++) {
            wn_buf_putc(&tt, t.p[i]);
            if (t.p[i] == '\n') wn_buf_putc(&tt, '\n');
        }
        CHECK_EQ_STR(verdict("gopher_repetition", "", tt.p), k == 3 ? "pass" : "dup_para_frac");
        wn_buf_free(&tt);
    }
    CHECK_EQ_STR(verdict("gopher_repetition", "", ""), "empty");
    wn_buf_free(&t);
}

TEST(quality_gopher_repetition_fractions)
{
    /* paragraphs aaaa bbbb | aaaa bbbb | cccc | dddd: one repeat of 9 code
     * points in L = 32 */
    const char *para = "aaaa bbbb\n\naaaa bbbb\n\ncccc\n\ndddd";
    boundary(wn_failed_, "gopher_repetition", REP_OFF, "dup_para_char_frac", 9.0 / 32, para, "dup_para_char_frac");
    const char *lines = "aaaa bbbb\naaaa bbbb\ncccc\ndddd\n"; /* L = 30; lines end with "" */
    boundary(wn_failed_, "gopher_repetition", REP_OFF, "dup_line_char_frac", 9.0 / 30, lines, "dup_line_char_frac");
    /* "a b a b c d": top 2-gram "a b" x2 = 6 of L = 11; top 3-gram (first of
     * the ties) "a b a" x1 = 5; top 4-gram "a b a b" = 7 */
    const char *ab = "a b a b c d";
    boundary(wn_failed_, "gopher_repetition", REP_OFF, "top_2_gram", 6.0 / 11, ab, "top_2_gram");
    boundary(wn_failed_, "gopher_repetition", REP_OFF, "top_3_gram", 5.0 / 11, ab, "top_3_gram");
    boundary(wn_failed_, "gopher_repetition", REP_OFF, "top_4_gram", 7.0 / 11, ab, "top_4_gram");
    /* "a b c d e a b c d e x a b c d e": the second and third "abcde" are
     * repeats (the scan jumps past each): 10 code points of L = 31 */
    const char *five = "a b c d e a b c d e x a b c d e";
    boundary(wn_failed_, "gopher_repetition", REP_OFF, "dup_5_gram", 10.0 / 31, five, "duplicated_5_n_grams");
    /* 10 words twice: one repeated 10-gram of 10 code points in L = 41 */
    const char *ten = "a b c d e f g h i j a b c d e f g h i j x";
    boundary(wn_failed_, "gopher_repetition", REP_OFF, "dup_10_gram", 10.0 / 41, ten, "duplicated_10_n_grams");
    boundary(wn_failed_, "gopher_repetition", REP_OFF, "dup_7_gram", 7.0 / 41, ten, "duplicated_7_n_grams");
}

/* ---- fineweb_quality -------------------------------------------------------- */

TEST(quality_fineweb_rules)
{
    wn_buf t = {0};
    /* 25 long unique lines, k ending in '.': 3/25 = 0.12 passes, 2/25 fails */
    for (int k = 2; k <= 3; k++) {
        wn_buf_clear(&t);
        for (int i = 0; i < 25; i++)
            wn_buf_printf(&t, "this is a fairly long line number %d%s\n", i, i < k ? "." : "");
        CHECK_EQ_STR(verdict("fineweb_quality", "", t.p), k == 3 ? "pass" : "line_punct_ratio");
    }
    /* 100 lines, k of them 30 code points or shorter: 67 pass, 68 fail */
    for (int k = 67; k <= 68; k++) {
        wn_buf_clear(&t);
        for (int i = 0; i < 100; i++)
            wn_buf_printf(&t, i < k ? "short line %d is here.\n" : "this is a fairly long line, number %d.\n", i);
        CHECK_EQ_STR(verdict("fineweb_quality", "", t.p), k == 67 ? "pass" : "short_line_ratio");
    }
    /* repeated line "xx." (3 code points) once among L' = 3+3+40 */
    const char *dup = "xx.\nxx.\nthis is a line of forty characters, yes.\n\n";
    boundary(wn_failed_, "fineweb_quality", "line_punct_thr: 0, short_line_thr: 0, new_line_ratio: 0",
             "char_duplicates_ratio", 3.0 / 46, dup, "char_dup_ratio");
    /* "wN xy." lines: 9 newlines per 30 words = 0.3 passes; "wN." lines, 9/20, fail */
    wn_buf_clear(&t);
    for (int i = 0; i < 10; i++) wn_buf_printf(&t, "%sw%d xy.", i ? "\n" : "", i);
    CHECK_EQ_STR(verdict("fineweb_quality", "short_line_thr: 0", t.p), "pass");
    wn_buf_clear(&t);
    for (int i = 0; i < 10; i++) wn_buf_printf(&t, "%sw%d.", i ? "\n" : "", i);
    CHECK_EQ_STR(verdict("fineweb_quality", "short_line_thr: 0", t.p), "list_ratio");
    CHECK_EQ_STR(verdict("fineweb_quality", "", " \n\t\n"), "empty");
    wn_buf_free(&t);
}

/* ---- c4_filter -------------------------------------------------------------- */

TEST(quality_c4_sentences_and_document_rules)
{
    const char *four = "One sentence is here.\nTwo sentence is here.\nThree sentence is here.\nFour is here now.";
    CHECK_EQ_STR(verdict("c4_filter", "", four), "too_few_sentences");
    char five[512];
    snprintf(five, sizeof five, "%s\nFive is here now.", four);
    CHECK_EQ_STR(verdict("c4_filter", "", five), "pass");
    /* two sentences on one line count two */
    snprintf(five, sizeof five, "%s Five is here now.", four);
    CHECK_EQ_STR(verdict("c4_filter", "", five), "pass");
    CHECK_EQ_STR(verdict("c4_filter", "min_num_sentences: 4", four), "pass");

    char t[1024];
    snprintf(t, sizeof t, "%s\nFive is here now.\nSome Lorem Ipsum dolor sit.", four);
    CHECK_EQ_STR(verdict("c4_filter", "", t), "lorem_ipsum");
    CHECK_EQ_STR(verdict("c4_filter", "filter_lorem_ipsum: false", t), "pass");
    /* as in datatrove: a lorem ipsum line already removed does not drop */
    snprintf(t, sizeof t, "%s\nFive is here now.\nlorem ipsum dolor", four);
    CHECK_EQ_STR(verdict("c4_filter", "", t), "pass");
    snprintf(t, sizeof t, "%s\nFive is here now.\nvar x = {a: 1}.", four);
    CHECK_EQ_STR(verdict("c4_filter", "", t), "curly_bracket");
    CHECK_EQ_STR(verdict("c4_filter", "filter_curly_bracket: false", t), "pass");
}

TEST(quality_c4_line_removal_and_report)
{
    harness h;
    CHECK(open_stage(&h, "c4_filter", "", 2));
    wn_buf t = {0};
    wn_buf_puts(&t, "  One sentence is here.  \n"
                    "Enable JavaScript to see this page.\n"
                    "This site uses cookies for you.\n"
                    "Too short.\n"
                    "No terminal punctuation here\n"
                    "Trailing ellipsis here...\n"
                    "Two sentence is here[12].\n"
                    "Three sentence is here[citation needed].\n"
                    "Four sentence is here.\n"
                    "Five is here now.\n");
    wn_buf_puts(&t, "A word ");
    for (int i = 0; i < 1001; i++) wn_buf_putc(&t, 'w');
    wn_buf_puts(&t, " here.\nB word ");
    for (int i = 0; i < 1000; i++) wn_buf_putc(&t, 'w');
    wn_buf_puts(&t, " here.");
    wn_batch b = {0};
    wn_doc *d = wn_batch_push(&b);
    wn_buf_append(&d->text, t.p, t.len);
    CHECK(h.st.def->process(&h.st, &b) == WN_OK);
    CHECK(!b.docs[0].drop);
    CHECK(b.docs[0].modified);
    const char *want_head = "One sentence is here.\nTwo sentence is here.\nThree sentence is here.\n"
                            "Four sentence is here.\nFive is here now.\nB word ";
    CHECK(!strncmp(b.docs[0].text.p, want_head, strlen(want_head)));
    CHECK_EQ_INT(b.docs[0].text.len, strlen(want_head) + 1000 + 6);
    wn_buf rep = {0};
    wn_jw w;
    wn_jw_init(&w, &rep, 0);
    wn_jw_obj_begin(&w);
    h.st.def->report(&h.st, &w);
    wn_jw_obj_end(&w);
    CHECK_EQ_STR(rep.p, "{\"lines_total\":12,\"lines_removed_too_long_word\":1,\"lines_removed_no_terminal_punc\":2,"
                        "\"lines_removed_too_few_words\":1,\"lines_removed_javascript\":1,"
                        "\"lines_removed_policy\":1,\"lines_kept\":6,\"bytes_removed\":"
                        "1174}");
    /* an unchanged text is not marked modified */
    wn_batch_reset(&b);
    d = wn_batch_push(&b);
    wn_buf_puts(&d->text, "One is here.\nTwo is here.\nThree is here.\nFour is here.\nFive is here.");
    CHECK(h.st.def->process(&h.st, &b) == WN_OK);
    CHECK(!b.docs[0].drop && !b.docs[0].modified);
    wn_buf_free(&rep);
    wn_buf_free(&t);
    wn_batch_free(&b);
    close_stage(&h);
}

TEST(quality_c4_annotate_changes_nothing)
{
    harness h;
    CHECK(open_stage(&h, "c4_filter", "mode: annotate", 1));
    wn_batch b = {0};
    wn_doc *d = wn_batch_push(&b);
    wn_buf_puts(&d->text, "Just one line here.\nmenu");
    CHECK(h.st.def->process(&h.st, &b) == WN_OK);
    CHECK(!b.docs[0].drop && !b.docs[0].modified);
    CHECK_EQ_STR(b.docs[0].text.p, "Just one line here.\nmenu");
    CHECK(b.docs[0].attrs.p && strstr(b.docs[0].attrs.p, "\"c4_filter\":\"too_few_sentences\""));
    CHECK(b.docs[0].attrs.p && strstr(b.docs[0].attrs.p, "\"lines_removed\":1"));
    wn_batch_free(&b);
    close_stage(&h);
}
