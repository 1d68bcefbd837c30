/*
 * test_text.c - unit tests for text.c: UTF-8 validation (RFC 3629 edge
 * cases and the reported offset), the decoder/encoder pair, code point,
 * word and line counting.
 */
#include "../test.h"
#include "text.h"

#include <stdlib.h>

/* Validates s in a heap copy of exactly n bytes, so ASan catches reads past
 * the end (the validator skips ASCII eight bytes at a time). Returns the
 * validator's answer; *bad gets the offset, or SIZE_MAX when untouched. */
static int valid_n(const char *s, size_t n, size_t *bad)
{
    char *c = malloc(n ? n : 1);
    memcpy(c, s, n);
    *bad = (size_t)-1;
    int ok = wn_utf8_valid(c, n, bad);
    free(c);
    return ok;
}

static int valid(const char *s, size_t *bad) { return valid_n(s, strlen(s), bad); }

TEST(utf8_valid_accepts_well_formed)
{
    static const char *ok[] = {
        "",
        "plain ascii, longer than eight bytes to use the fast path",
        "caf\xc3\xa9",                 /* U+00E9, 2 bytes */
        "\xc2\x80\xdf\xbf",            /* U+0080, U+07FF: 2-byte bounds */
        "\xe0\xa0\x80\xef\xbf\xbf",    /* U+0800, U+FFFF */
        "\xe2\x82\xac \xe3\x80\x80",   /* euro sign, ideographic space */
        "\xed\x9f\xbf\xee\x80\x80",    /* U+D7FF and U+E000 around the surrogates */
        "\xf0\x9f\x98\x80",            /* U+1F600, 4 bytes */
        "\xf0\x90\x80\x80\xf4\x8f\xbf\xbf", /* U+10000 and U+10FFFF */
        "01234567\xf0\x9f\x98\x80" "89abcdef", /* multi-byte after an ASCII word */
    };
    for (size_t i = 0; i < WN_ARRAY_LEN(ok); i++) {
        size_t bad;
        int r = valid(ok[i], &bad);
        if (!r) fprintf(stderr, "  case %zu rejected at %zu\n", i, bad);
        CHECK(r);
        CHECK(bad == (size_t)-1);
    }
}

TEST(utf8_valid_rejects_and_reports_offset)
{
    static const struct { const char *s; size_t n, bad; } cases[] = {
        {"\xc0\x80", 2, 0},                    /* overlong NUL */
        {"ab\xc1\xbf", 4, 2},                  /* overlong 2-byte */
        {"\xe0\x80\x80", 3, 0},                /* overlong 3-byte */
        {"\xf0\x80\x80\x80", 4, 0},            /* overlong 4-byte */
        {"x\xed\xa0\x80", 4, 1},               /* surrogate U+D800 */
        {"\xed\xbf\xbf", 3, 0},                /* surrogate U+DFFF */
        {"\xf4\x90\x80\x80", 4, 0},            /* U+110000 */
        {"\xf5\x80\x80\x80", 4, 0},            /* lead byte above F4 */
        {"\xff", 1, 0},
        {"abc\x80", 4, 3},                     /* lone continuation byte */
        {"abc\xe2\x82", 5, 3},                 /* truncated at end of input */
        {"abc\xf0\x9f\x98", 6, 3},
        {"\xc3", 1, 0},
        {"\xc3(", 2, 0},                       /* lead byte without continuation */
        {"\xe2\x82(", 3, 0},
        {"0123456789abcdef\xed\xa0\x80tail", 23, 16}, /* after the 8-byte fast path */
        {"\xc3\xa9\xc3\xa9\xe2\x82\xac\xfe", 8, 7},
    };
    for (size_t i = 0; i < WN_ARRAY_LEN(cases); i++) {
        size_t bad;
        int r = valid_n(cases[i].s, cases[i].n, &bad);
        if (r || bad != cases[i].bad) fprintf(stderr, "  case %zu: valid=%d bad=%zu\n", i, r, bad);
        CHECK(!r);
        CHECK_EQ_INT(bad, cases[i].bad);
    }
    /* The length, not a NUL, ends the input: a valid prefix is valid. */
    size_t bad;
    CHECK(valid_n("abc\xe2\x82\xac", 3, &bad));
}

TEST(utf8_next_put_round_trip)
{
    static const int32_t cps[] = {0, 'A', 0x7F, 0x80, 0xE9, 0x7FF, 0x800, 0x20AC, 0x3000,
                                  0xD7FF, 0xE000, 0xFFFD, 0xFFFF, 0x10000, 0x1F600, 0x10FFFF};
    static const size_t lens[] = {1, 1, 1, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 4, 4, 4};
    wn_buf b = {0};
    for (size_t i = 0; i < WN_ARRAY_LEN(cps); i++) {
        wn_buf_clear(&b);
        CHECK(wn_utf8_put(&b, cps[i]) == WN_OK);
        CHECK_EQ_INT(b.len, lens[i]);
        size_t bad, at = 0;
        CHECK(valid_n(b.p, b.len, &bad));
        CHECK_EQ_INT(wn_utf8_next(b.p, b.len, &at), cps[i]);
        CHECK_EQ_INT(at, lens[i]);
    }
    /* A sequence of them decodes back in order. */
    wn_buf_clear(&b);
    for (size_t i = 0; i < WN_ARRAY_LEN(cps); i++) wn_utf8_put(&b, cps[i]);
    size_t at = 0;
    for (size_t i = 0; i < WN_ARRAY_LEN(cps); i++) CHECK_EQ_INT(wn_utf8_next(b.p, b.len, &at), cps[i]);
    CHECK_EQ_INT(at, b.len);
    CHECK_EQ_STR(b.p + 1, "A\x7f\xc2\x80\xc3\xa9\xdf\xbf\xe0\xa0\x80\xe2\x82\xac\xe3\x80\x80"
                          "\xed\x9f\xbf\xee\x80\x80\xef\xbf\xbd\xef\xbf\xbf\xf0\x90\x80\x80"
                          "\xf0\x9f\x98\x80\xf4\x8f\xbf\xbf");
    wn_buf_free(&b);

    /* Invalid sequences: -1, advancing exactly one byte. */
    static const char *badseq[] = {"\x80", "\xc0\x80", "\xed\xa0\x80", "\xf4\x90\x80\x80", "\xe2\x82"};
    for (size_t i = 0; i < WN_ARRAY_LEN(badseq); i++) {
        at = 0;
        CHECK_EQ_INT(wn_utf8_next(badseq[i], strlen(badseq[i]), &at), -1);
        CHECK_EQ_INT(at, 1);
    }
}

TEST(utf8_count_code_points)
{
    CHECK_EQ_INT(wn_utf8_count("", 0), 0);
    CHECK_EQ_INT(wn_utf8_count("hello", 5), 5);
    CHECK_EQ_INT(wn_utf8_count("caf\xc3\xa9", 5), 4);
    CHECK_EQ_INT(wn_utf8_count("\xe2\x82\xac\xf0\x9f\x98\x80x", 8), 3);
    CHECK_EQ_INT(wn_utf8_count("\xe4\xb8\xad\xe6\x96\x87", 6), 2);
    /* Invalid lead bytes count one each. */
    CHECK_EQ_INT(wn_utf8_count("a\xff" "b", 3), 3);
}

/* Invalid bytes count one code point each (text.h). */
TEST(utf8_count_invalid_bytes_count_one_each)
{
    CHECK_EQ_INT(wn_utf8_count("a\x80" "b", 3), 3);         /* stray continuation: got 2 */
    CHECK_EQ_INT(wn_utf8_count("\xed\xa0\x80", 3), 3);      /* surrogate, 3 invalid bytes: got 1 */
    CHECK_EQ_INT(wn_utf8_count("\xc3\xa9\xa9", 3), 2);      /* U+00E9 then a stray byte: got 1 */
}

static size_t words(const char *s) { return wn_count_words(s, strlen(s)); }
static size_t lines(const char *s) { return wn_count_lines(s, strlen(s)); }

TEST(count_words_unicode_spaces)
{
    CHECK_EQ_INT(words(""), 0);
    CHECK_EQ_INT(words("   \t\n "), 0);
    CHECK_EQ_INT(words("one"), 1);
    CHECK_EQ_INT(words("one two  three"), 3);
    CHECK_EQ_INT(words(" \tone\r\ntwo\fthree\vfour \n"), 4);
    /* U+00A0 NO-BREAK SPACE and U+3000 IDEOGRAPHIC SPACE separate words. */
    CHECK_EQ_INT(words("a\xc2\xa0" "b"), 2);
    CHECK_EQ_INT(words("\xe6\x97\xa5\xe6\x9c\xac\xe3\x80\x80\xe8\xaa\x9e"), 2);
    CHECK_EQ_INT(words("\xe3\x80\x80\xc2\xa0"), 0);
    /* U+2003 EM SPACE and U+2028 LINE SEPARATOR too; U+00E9 is not a space. */
    CHECK_EQ_INT(words("x\xe2\x80\x83y\xe2\x80\xa8z"), 3);
    CHECK_EQ_INT(words("caf\xc3\xa9 au lait"), 3);
    /* Invalid bytes are word characters, not separators. */
    CHECK_EQ_INT(words("a \xff b"), 3);
}

TEST(count_lines)
{
    CHECK_EQ_INT(lines(""), 0);
    CHECK_EQ_INT(lines("a"), 1);
    CHECK_EQ_INT(lines("a\n"), 1);
    CHECK_EQ_INT(lines("a\nb"), 2);
    CHECK_EQ_INT(lines("a\nb\n"), 2);
    CHECK_EQ_INT(lines("\n"), 1);
    CHECK_EQ_INT(lines("\n\n\n"), 3);
    CHECK_EQ_INT(lines("a\r\nb"), 2);
    /* Only the span counts: the "\nc" after n is not part of it. */
    CHECK_EQ_INT(wn_count_lines("a\nb\nc", 3), 2);
}
