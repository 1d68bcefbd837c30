/*
 * test_json.c - unit tests for json.c: validation (valid and invalid
 * documents, error offsets), member iteration, key matching, the string
 * codec, number readers and the writer's exact output.
 */
#include "../test.h"
#include "json.h"

#include <math.h>
#include <stdlib.h>

static int valid(const char *s) { return wn_json_check_object(s, strlen(s), NULL, NULL) == WN_OK; }

/* Checks s in a heap copy of exactly strlen(s) bytes so ASan catches any
 * read past n. */
static int valid_exact(const char *s, size_t *off, const char **why)
{
    size_t n = strlen(s);
    char *c = malloc(n ? n : 1);
    memcpy(c, s, n);
    int ok = wn_json_check_object(c, n, off, why) == WN_OK;
    free(c);
    return ok;
}

TEST(json_check_valid)
{
    static const char *ok[] = {
        "{}",
        " \t\r\n{ } \n",
        "{\"a\":1}",
        "{\"a\":\"b\",\"c\":[1,2,3],\"d\":{\"e\":null}}",
        "{\"a\":true,\"b\":false,\"c\":null}",
        "{\"a\":[]}",
        "{\"a\":[[],{},[{}]]}",
        "{\"n\":-0}",
        "{\"n\":0}",
        "{\"n\":1e5}",
        "{\"n\":1.5E-3}",
        "{\"n\":-12.25e+10}",
        "{\"n\":0.0}",
        "{\"s\":\"\\\" \\\\ \\/ \\b \\f \\n \\r \\t \\u00e9 \\uD83D\\uDE00\"}",
        "{\"s\":\"\\udc00 lone is grammatical\"}",
        "{\"\":\"\"}",
        "{\"k\" : [ 1 , \"x\" , { \"y\" : 2 } ] }",
        "{\"utf8\":\"h\xc3\xa9llo \xe2\x82\xac\"}",
        "{\"del\":\"\x7f\"}",
        "{\"a\":1,\"a\":2}",
        "{\"long\":\"0123456789abcdef0123456789abcdef0123456789abcdef\"}",
    };
    for (size_t i = 0; i < WN_ARRAY_LEN(ok); i++) {
        size_t off = 0;
        const char *why = NULL;
        int r = valid_exact(ok[i], &off, &why);
        if (!r) fprintf(stderr, "  case %zu: %s at %zu\n", i, why, off);
        CHECK(r);
    }
}

TEST(json_check_invalid)
{
    static const char *bad[] = {
        "",
        "   ",
        "[1]",
        "\"s\"",
        "1",
        "null",
        "{",
        "{\"a\"",
        "{\"a\":",
        "{\"a\":1",
        "{\"a\":01}",
        "{\"a\":1.}",
        "{\"a\":.5}",
        "{\"a\":+1}",
        "{\"a\":-}",
        "{\"a\":1e}",
        "{\"a\":1e+}",
        "{\"a\":0x10}",
        "{\"a\":1,}",
        "{\"a\":[1,]}",
        "{,}",
        "{\"a\" 1}",
        "{a:1}",
        "{'a':1}",
        "{\"a\":\"unterminated}",
        "{\"a\":\"raw\nnewline\"}",
        "{\"a\":\"tab\there\"}",
        "{\"a\":\"\\x41\"}",
        "{\"a\":\"\\u12\"}",
        "{\"a\":\"\\u12",
        "{\"a\":\"\\uZZZZ\"}",
        "{\"a\":\"\\",
        "{\"a\":tru}",
        "{\"a\":True}",
        "{\"a\":NaN}",
        "{\"a\":Infinity}",
        "{\"a\":1} x",
        "{}{}",
        "{\"a\":[1 2]}",
        "{\"a\":1 \"b\":2}",
        "{\"a\":[}",
        "{\"a\":{]}",
        "\xef\xbb\xbf{}",
    };
    for (size_t i = 0; i < WN_ARRAY_LEN(bad); i++) {
        size_t off = 12345;
        const char *why = NULL;
        int r = valid_exact(bad[i], &off, &why);
        if (r) fprintf(stderr, "  case %zu accepted: %s\n", i, bad[i]);
        CHECK(!r);
        CHECK(why != NULL);
        CHECK(off <= strlen(bad[i]));
    }
}

TEST(json_check_nul_inside_span)
{
    /* An embedded NUL is a control character, and n (not NUL) bounds input. */
    CHECK(wn_json_check_object("{\"a\":\"x\0\"}", 10, NULL, NULL) == WN_ERR_INPUT);
    CHECK(wn_json_check_object("{}\0", 3, NULL, NULL) == WN_ERR_INPUT);
    CHECK(wn_json_check_object("{}garbage", 2, NULL, NULL) == WN_OK);
}

static char *nested(int depth)
{
    char *s = malloc((size_t)depth * 2 + 16);
    size_t n = 0;
    s[n++] = '{';
    memcpy(s + n, "\"a\":", 4);
    n += 4;
    for (int i = 1; i < depth; i++) s[n++] = '[';
    for (int i = 1; i < depth; i++) s[n++] = ']';
    s[n++] = '}';
    s[n] = 0;
    return s;
}

TEST(json_check_depth)
{
    char *s = nested(256);
    CHECK(valid(s));
    free(s);
    s = nested(257);
    size_t off = 0;
    const char *why = NULL;
    CHECK(wn_json_check_object(s, strlen(s), &off, &why) == WN_ERR_INPUT);
    CHECK_EQ_INT(off, 5 + 255);
    CHECK_EQ_STR(why, "nesting too deep");
    free(s);
    s = nested(300);
    CHECK(!valid(s));
    free(s);
}

static void expect_err(int *wn_failed_, const char *s, size_t want_off, const char *want_why)
{
    size_t off = 99999;
    const char *why = NULL;
    CHECK(!valid_exact(s, &off, &why));
    if (off != want_off || !why || strcmp(why, want_why) != 0) {
        fprintf(stderr, "  %s: got %zu \"%s\", want %zu \"%s\"\n", s, off, why ? why : "",
                want_off, want_why);
        *wn_failed_ = 1;
    }
}

TEST(json_check_offsets)
{
    expect_err(wn_failed_, "", 0, "empty input");
    expect_err(wn_failed_, "  [1]", 2, "expected '{' (top-level value must be an object)");
    expect_err(wn_failed_, "{\"a\":01}", 6, "leading zero in number");
    expect_err(wn_failed_, "{\"a\":1.}", 7, "invalid number");
    expect_err(wn_failed_, "{\"a\":.5}", 5, "expected value");
    expect_err(wn_failed_, "{\"a\":+1}", 5, "expected value");
    expect_err(wn_failed_, "{\"a\":1,}", 7, "expected string key");
    expect_err(wn_failed_, "{\"a\":[1,]}", 8, "expected value");
    expect_err(wn_failed_, "{\"a\":\"abc", 9, "unterminated string");
    expect_err(wn_failed_, "{\"a\":\"ab\ncd\"}", 8, "control character in string");
    expect_err(wn_failed_, "{\"a\":\"\\x\"}", 6, "invalid escape");
    expect_err(wn_failed_, "{\"a\":\"\\u12\"}", 10, "invalid \\u escape");
    expect_err(wn_failed_, "{\"a\":\"\\u12", 10, "unterminated string");
    expect_err(wn_failed_, "{\"a\":1} x", 8, "trailing characters after object");
    expect_err(wn_failed_, "{\"a\":nul}", 8, "invalid literal");
    expect_err(wn_failed_, "{\"a\" 1}", 5, "expected ':'");
    expect_err(wn_failed_, "{\"a\":1 \"b\":2}", 7, "expected ',' or '}'");
    expect_err(wn_failed_, "{\"a\":[1 2]}", 8, "expected ',' or ']'");
    expect_err(wn_failed_, "{\"a\":", 5, "unexpected end of input");
    /* Long strings take the eight-bytes-at-a-time path. */
    expect_err(wn_failed_, "{\"a\":\"0123456789abcdefghij\x01xyz\"}", 26,
               "control character in string");
    expect_err(wn_failed_, "{\"a\":\"0123456789abcdefghijklmno", 31, "unterminated string");
}

TEST(json_iter_order_and_spans)
{
    const char *s = " { \"a\" : 1 , \"b\\n\":[1, {\"x\":\"]}\"}] ,\"c\":\"s,}\" ,\"d\":-1.5e3,"
                    "\"e\":{ } ,\"f\":true}\n";
    CHECK(valid(s));
    wn_json_iter it;
    wn_span k, v;
    static const char *keys[] = {"\"a\"", "\"b\\n\"", "\"c\"", "\"d\"", "\"e\"", "\"f\""};
    static const char *vals[] = {"1", "[1, {\"x\":\"]}\"}]", "\"s,}\"", "-1.5e3", "{ }", "true"};
    wn_json_iter_init(&it, s, strlen(s));
    size_t i = 0;
    while (wn_json_iter_next(&it, &k, &v)) {
        CHECK(i < WN_ARRAY_LEN(keys));
        if (i >= WN_ARRAY_LEN(keys)) break;
        CHECK(k.n == strlen(keys[i]) && memcmp(k.p, keys[i], k.n) == 0);
        CHECK(v.n == strlen(vals[i]) && memcmp(v.p, vals[i], v.n) == 0);
        i++;
    }
    CHECK_EQ_INT(i, 6);
    CHECK(!wn_json_iter_next(&it, &k, &v));

    wn_json_iter_init(&it, "{}", 2);
    CHECK(!wn_json_iter_next(&it, &k, &v));
    wn_json_iter_init(&it, "[1]", 3);
    CHECK(!wn_json_iter_next(&it, &k, &v));
}

TEST(json_get_and_key_eq)
{
    const char *s = "{\"t\\u0065xt\":\"hello\",\"a\\\"b\":2,\"\\u00e9\":3,\"\\ud83d\\ude00\":4,\"x\":5}";
    CHECK(valid(s));
    wn_span v;
    CHECK(wn_json_get(s, strlen(s), "text", &v));
    CHECK(v.n == 7 && memcmp(v.p, "\"hello\"", 7) == 0);
    CHECK(wn_json_get(s, strlen(s), "a\"b", &v));
    CHECK(v.n == 1 && v.p[0] == '2');
    CHECK(wn_json_get(s, strlen(s), "\xc3\xa9", &v));
    CHECK(v.n == 1 && v.p[0] == '3');
    CHECK(wn_json_get(s, strlen(s), "\xf0\x9f\x98\x80", &v));
    CHECK(v.n == 1 && v.p[0] == '4');
    CHECK(wn_json_get(s, strlen(s), "x", &v));
    CHECK(v.n == 1 && v.p[0] == '5');
    CHECK(!wn_json_get(s, strlen(s), "tex", &v));
    CHECK(!wn_json_get(s, strlen(s), "texts", &v));
    CHECK(!wn_json_get(s, strlen(s), "", &v));

    wn_span k = {"\"text\"", 6};
    CHECK(wn_json_key_eq(k, "text"));
    CHECK(!wn_json_key_eq(k, "tex"));
    CHECK(!wn_json_key_eq(k, "textt"));
    wn_span e = {"\"t\\u0065xt\"", 11};
    CHECK(wn_json_key_eq(e, "text"));
    CHECK(!wn_json_key_eq(e, "tex"));
    CHECK(!wn_json_key_eq(e, "texts"));
    wn_span z = {"\"a\\u0000\"", 9};
    CHECK(!wn_json_key_eq(z, "a"));
    wn_span empty = {"\"\"", 2};
    CHECK(wn_json_key_eq(empty, ""));
    wn_span bad = {"x", 1};
    CHECK(!wn_json_key_eq(bad, "x"));
}

static int decodes_to(const char *raw, const char *want, size_t want_n)
{
    wn_buf b = {0};
    wn_span r = {raw, strlen(raw)};
    int ok = wn_json_decode_string(r, &b) == WN_OK && b.len == want_n &&
             (want_n == 0 || memcmp(b.p, want, want_n) == 0);
    wn_buf_free(&b);
    return ok;
}

TEST(json_decode_string)
{
    CHECK(decodes_to("\"\"", "", 0));
    CHECK(decodes_to("\"plain\"", "plain", 5));
    CHECK(decodes_to("\"\\\"\\\\\\/\\b\\f\\n\\r\\t\"", "\"\\/\b\f\n\r\t", 8));
    CHECK(decodes_to("\"\\u0041\\u00e9\\u20AC\"", "A\xc3\xa9\xe2\x82\xac", 6));
    CHECK(decodes_to("\"\\u0000\"", "\0", 1));
    /* Surrogate pairs combine; lone halves become U+FFFD. */
    CHECK(decodes_to("\"\\ud83d\\ude00\"", "\xf0\x9f\x98\x80", 4));
    CHECK(decodes_to("\"\\uDBFF\\uDFFF\"", "\xf4\x8f\xbf\xbf", 4));
    CHECK(decodes_to("\"\\ud83d\"", "\xef\xbf\xbd", 3));
    CHECK(decodes_to("\"\\ude00\"", "\xef\xbf\xbd", 3));
    CHECK(decodes_to("\"\\ud83dx\"", "\xef\xbf\xbdx", 4));
    CHECK(decodes_to("\"\\ud83d\\u0041\"", "\xef\xbf\xbd" "A", 4));
    CHECK(decodes_to("\"\\ud83d\\ud83d\\ude00\"", "\xef\xbf\xbd\xf0\x9f\x98\x80", 7));
    CHECK(decodes_to("\"\\ude00\\ud83d\"", "\xef\xbf\xbd\xef\xbf\xbd", 6));
    CHECK(decodes_to("\"h\xc3\xa9\"", "h\xc3\xa9", 3));

    static const char *bad[] = {"", "\"", "x", "\"abc", "abc\"", "\"a\"b\"", "\"\\\"",
                                "\"\\x\"", "\"\\u12\"", "\"\\u12G4\"", "\"a\nb\""};
    for (size_t i = 0; i < WN_ARRAY_LEN(bad); i++) {
        wn_buf b = {0};
        wn_buf_puts(&b, "keep");
        wn_span r = {bad[i], strlen(bad[i])};
        CHECK(wn_json_decode_string(r, &b) == WN_ERR_INPUT);
        CHECK_EQ_STR(b.p, "keep");
        wn_buf_free(&b);
    }
}

TEST(json_encode_string)
{
    wn_buf b = {0};
    wn_json_encode_string(&b, "a\"b\\c\n\r\t\b\f\x01\x1f\x7f\xc3\xa9/", 16);
    CHECK_EQ_STR(b.p, "\"a\\\"b\\\\c\\n\\r\\t\\b\\f\\u0001\\u001f\x7f\xc3\xa9/\"");
    wn_buf_clear(&b);
    wn_json_encode_string(&b, "x\0y", 3);
    CHECK_EQ_STR(b.p, "\"x\\u0000y\"");
    wn_buf_clear(&b);
    wn_json_encode_string(&b, "", 0);
    CHECK_EQ_STR(b.p, "\"\"");

    /* Every byte value, alone and inside a long run, survives a round trip
     * and the encoding validates. */
    for (int c = 0; c < 256; c++) {
        char in[40];
        memset(in, 'a', sizeof in);
        in[0] = (char)c;
        in[21] = (char)c;
        wn_buf_clear(&b);
        CHECK(wn_json_encode_string(&b, in, sizeof in) == WN_OK);
        int plain = c >= 0x20 && c != '"' && c != '\\';
        CHECK_EQ_INT(b.len, 2 + sizeof in - 2 + (plain ? 2 : (c < 0x20 && (c == 0 || !strchr("\n\r\t\b\f", c)) ? 12 : 4)));
        wn_buf doc = {0}, dec = {0};
        wn_buf_puts(&doc, "{\"k\":");
        wn_buf_append(&doc, b.p, b.len);
        wn_buf_putc(&doc, '}');
        CHECK(valid(doc.p));
        wn_span r = {b.p, b.len};
        CHECK(wn_json_decode_string(r, &dec) == WN_OK);
        CHECK(dec.len == sizeof in && memcmp(dec.p, in, sizeof in) == 0);
        wn_buf_free(&doc);
        wn_buf_free(&dec);
    }
    wn_buf_free(&b);
}

static int num(const char *s, double *v)
{
    wn_span r = {s, strlen(s)};
    return wn_json_to_double(r, v);
}

static int i64(const char *s, int64_t *v)
{
    wn_span r = {s, strlen(s)};
    return wn_json_to_i64(r, v);
}

TEST(json_numbers)
{
    double d = 0;
    CHECK(num("0", &d) && d == 0);
    CHECK(num("-0", &d) && d == 0 && signbit(d));
    CHECK(num("1e5", &d) && d == 1e5);
    CHECK(num("1.5E-3", &d) && d == 1.5e-3);
    CHECK(num("-12.25", &d) && d == -12.25);
    CHECK(num("1e-400", &d) && d == 0);
    CHECK(!num("1e400", &d));
    CHECK(!num("", &d));
    CHECK(!num("01", &d));
    CHECK(!num("1.", &d));
    CHECK(!num(".5", &d));
    CHECK(!num("+1", &d));
    CHECK(!num("inf", &d));
    CHECK(!num("nan", &d));
    CHECK(!num("0x10", &d));
    CHECK(!num(" 1", &d));
    CHECK(!num("1 ", &d));
    CHECK(num("1234567890123456789012345678901234567890123456789012345678901234", &d));
    CHECK(!num("12345678901234567890123456789012345678901234567890123456789012345", &d));
    /* Only the span is read: the digits after it are not part of the number. */
    wn_span r = {"12345", 2};
    CHECK(wn_json_to_double(r, &d) && d == 12);

    int64_t v = 0;
    CHECK(i64("0", &v) && v == 0);
    CHECK(i64("-0", &v) && v == 0);
    CHECK(i64("42", &v) && v == 42);
    CHECK(i64("-42", &v) && v == -42);
    CHECK(i64("9223372036854775807", &v) && v == INT64_MAX);
    CHECK(i64("-9223372036854775808", &v) && v == INT64_MIN);
    CHECK(!i64("9223372036854775808", &v));
    CHECK(!i64("-9223372036854775809", &v));
    CHECK(!i64("99999999999999999999", &v));
    CHECK(!i64("1.0", &v));
    CHECK(!i64("1e3", &v));
    CHECK(!i64("01", &v));
    CHECK(!i64("-", &v));
    CHECK(!i64("", &v));
    CHECK(!i64("+1", &v));
    CHECK(!i64(" 1", &v));
}

TEST(json_writer_compact)
{
    wn_buf b = {0};
    wn_jw w;
    wn_jw_init(&w, &b, 0);
    wn_jw_obj_begin(&w);
    wn_jw_key(&w, "a");
    wn_jw_i64(&w, 1);
    wn_jw_key(&w, "b");
    wn_jw_arr_begin(&w);
    wn_jw_i64(&w, 1);
    wn_jw_i64(&w, 2);
    wn_jw_arr_end(&w);
    wn_jw_obj_end(&w);
    CHECK_EQ_STR(b.p, "{\"a\":1,\"b\":[1,2]}");

    wn_buf_clear(&b);
    wn_jw_init(&w, &b, 0);
    wn_jw_obj_begin(&w);
    wn_jw_key(&w, "s\n");
    wn_jw_str(&w, "x\"y");
    wn_jw_key(&w, "n");
    wn_jw_strn(&w, "a\0b", 3);
    wn_jw_key(&w, "u");
    wn_jw_u64(&w, UINT64_MAX);
    wn_jw_key(&w, "i");
    wn_jw_i64(&w, INT64_MIN);
    wn_jw_key(&w, "t");
    wn_jw_bool(&w, 1);
    wn_jw_key(&w, "f");
    wn_jw_bool(&w, 0);
    wn_jw_key(&w, "z");
    wn_jw_null(&w);
    wn_jw_key(&w, "r");
    wn_jw_raw(&w, "{\"k\":[]}", 8);
    wn_jw_key(&w, "e");
    wn_jw_obj_begin(&w);
    wn_jw_obj_end(&w);
    wn_jw_key(&w, "ea");
    wn_jw_arr_begin(&w);
    wn_jw_arr_end(&w);
    wn_jw_key(&w, "x");
    wn_jw_f64(&w, 0.5);
    wn_jw_obj_end(&w);
    CHECK_EQ_STR(b.p, "{\"s\\n\":\"x\\\"y\",\"n\":\"a\\u0000b\",\"u\":18446744073709551615,"
                      "\"i\":-9223372036854775808,\"t\":true,\"f\":false,\"z\":null,"
                      "\"r\":{\"k\":[]},\"e\":{},\"ea\":[],\"x\":0.5}");
    CHECK(valid(b.p));
    wn_buf_free(&b);
}

TEST(json_writer_pretty)
{
    wn_buf b = {0};
    wn_jw w;
    wn_jw_init(&w, &b, 1);
    wn_jw_obj_begin(&w);
    wn_jw_key(&w, "a");
    wn_jw_i64(&w, 1);
    wn_jw_key(&w, "b");
    wn_jw_arr_begin(&w);
    wn_jw_i64(&w, 1);
    wn_jw_obj_begin(&w);
    wn_jw_key(&w, "c");
    wn_jw_null(&w);
    wn_jw_obj_end(&w);
    wn_jw_arr_end(&w);
    wn_jw_key(&w, "e");
    wn_jw_obj_begin(&w);
    wn_jw_obj_end(&w);
    wn_jw_key(&w, "f");
    wn_jw_arr_begin(&w);
    wn_jw_arr_end(&w);
    wn_jw_obj_end(&w);
    /* Same text as Python's json.dumps(..., indent=2). */
    CHECK_EQ_STR(b.p, "{\n"
                      "  \"a\": 1,\n"
                      "  \"b\": [\n"
                      "    1,\n"
                      "    {\n"
                      "      \"c\": null\n"
                      "    }\n"
                      "  ],\n"
                      "  \"e\": {},\n"
                      "  \"f\": []\n"
                      "}");
    CHECK(valid(b.p));

    wn_buf_clear(&b);
    wn_jw_init(&w, &b, 1);
    wn_jw_obj_begin(&w);
    wn_jw_obj_end(&w);
    CHECK_EQ_STR(b.p, "{}");
    wn_buf_free(&b);
}

static const char *f64_str(wn_buf *b, double v)
{
    wn_jw w;
    wn_buf_clear(b);
    wn_jw_init(&w, b, 0);
    wn_jw_f64(&w, v);
    return b->p;
}

TEST(json_writer_f64)
{
    wn_buf b = {0};
    CHECK_EQ_STR(f64_str(&b, 0.1), "0.1");
    CHECK_EQ_STR(f64_str(&b, 1e300), "1e+300");
    CHECK_EQ_STR(f64_str(&b, 3.0), "3");
    CHECK_EQ_STR(f64_str(&b, -0.5), "-0.5");
    CHECK_EQ_STR(f64_str(&b, 0.0), "0");
    CHECK_EQ_STR(f64_str(&b, 1.0 / 3.0), "0.3333333333333333");
    CHECK_EQ_STR(f64_str(&b, 0.1 + 0.2), "0.30000000000000004");
    CHECK_EQ_STR(f64_str(&b, 9007199254740993.0), "9007199254740992");
    CHECK_EQ_STR(f64_str(&b, NAN), "null");
    CHECK_EQ_STR(f64_str(&b, INFINITY), "null");
    CHECK_EQ_STR(f64_str(&b, -INFINITY), "null");
    /* Every form reads back exactly through our own reader. */
    static const double vals[] = {0.1, 1e300, -2.5e-308, 123456.789, 1.0 / 7.0, 5e-324, 1.7976931348623157e308};
    for (size_t i = 0; i < WN_ARRAY_LEN(vals); i++) {
        double d = 0;
        f64_str(&b, vals[i]);
        wn_span r = {b.p, b.len};
        CHECK(wn_json_to_double(r, &d) && d == vals[i]);
    }

    wn_jw w;
    wn_buf_clear(&b);
    wn_jw_init(&w, &b, 0);
    wn_jw_arr_begin(&w);
    wn_jw_f64(&w, NAN);
    wn_jw_f64(&w, 2.0);
    wn_jw_arr_end(&w);
    CHECK_EQ_STR(b.p, "[null,2]");
    wn_buf_free(&b);
}

TEST(json_decode_empty_terminates)
{
    wn_buf b = {0};
    wn_span r = {"\"\"", 2};
    CHECK(wn_json_decode_string(r, &b) == WN_OK);
    CHECK(b.p != NULL && b.len == 0 && b.p[0] == 0);
    wn_buf_free(&b);
}

TEST(json_items_iterate_array)
{
    static const char arr[] = " [1, \"two\", {\"a\": [3]}, [], null ] ";
    wn_json_iter it;
    wn_span v;
    const char *want[] = {"1", "\"two\"", "{\"a\": [3]}", "[]", "null"};
    int n = 0;
    wn_json_items_init(&it, arr, sizeof arr - 1);
    while (wn_json_items_next(&it, &v)) {
        CHECK(n < 5 && v.n == strlen(want[n]) && !memcmp(v.p, want[n], v.n));
        n++;
    }
    CHECK_EQ_INT(n, 5);
    wn_json_items_init(&it, "[]", 2);
    CHECK(!wn_json_items_next(&it, &v));
    wn_json_items_init(&it, "{}", 2); /* not an array: nothing */
    CHECK(!wn_json_items_next(&it, &v));
}
