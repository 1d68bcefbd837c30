/*
 * fuzz_json.c - libFuzzer target for json.c. Validates the input as a
 * JSONL record; when it is valid, walks every member (and nested object),
 * decodes every string, re-encodes it and checks the round trip, reads
 * numbers, and rebuilds the record with the writer. Any broken invariant
 * aborts.
 *
 *   clang -g -fsanitize=fuzzer,address,undefined -Isrc src/util.c src/json.c \
 *       tests/fuzz/fuzz_json.c -o fuzz_json
 */
#include "json.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define REQUIRE(c)                                                             \
    do {                                                                       \
        if (!(c)) {                                                            \
            fprintf(stderr, "fuzz_json: invariant failed: %s (line %d)\n", #c, __LINE__); \
            abort();                                                           \
        }                                                                      \
    } while (0)

/* Decodes a valid string span, re-encodes it and checks that the encoding
 * is valid JSON and decodes to the same bytes. Leaves the decoded bytes in
 * dec. */
static void check_string(wn_span raw, wn_buf *dec)
{
    wn_buf enc = {0}, doc = {0}, again = {0};
    wn_buf_clear(dec);
    REQUIRE(wn_json_decode_string(raw, dec) == WN_OK);
    REQUIRE(wn_json_encode_string(&enc, dec->p ? dec->p : "", dec->len) == WN_OK);

    wn_span e = {enc.p, enc.len};
    REQUIRE(wn_json_decode_string(e, &again) == WN_OK);
    REQUIRE(again.len == dec->len && (dec->len == 0 || memcmp(again.p, dec->p, dec->len) == 0));

    wn_buf_puts(&doc, "{\"k\":");
    wn_buf_append(&doc, enc.p, enc.len);
    wn_buf_putc(&doc, '}');
    REQUIRE(wn_json_check_object(doc.p, doc.len, NULL, NULL) == WN_OK);

    /* Encoding is canonical: encoding the decoded encoding changes nothing. */
    wn_buf enc2 = {0};
    REQUIRE(wn_json_encode_string(&enc2, again.p ? again.p : "", again.len) == WN_OK);
    REQUIRE(enc2.len == enc.len && memcmp(enc2.p, enc.p, enc.len) == 0);

    wn_buf_free(&enc);
    wn_buf_free(&enc2);
    wn_buf_free(&doc);
    wn_buf_free(&again);
}

static void check_number(wn_span v)
{
    double d;
    int64_t i;
    int is_int = !memchr(v.p, '.', v.n) && !memchr(v.p, 'e', v.n) && !memchr(v.p, 'E', v.n);
    if (wn_json_to_i64(v, &i)) REQUIRE(is_int);
    if (v.n <= 64 && wn_json_to_double(v, &d)) {
        /* The writer's form of d reads back to d. */
        wn_buf b = {0};
        wn_jw w;
        wn_jw_init(&w, &b, 0);
        wn_jw_f64(&w, d);
        double d2;
        wn_span r = {b.p, b.len};
        REQUIRE(wn_json_to_double(r, &d2) && d2 == d);
        wn_buf_free(&b);
    }
}

static void walk_object(const char *obj, size_t n, const char *base, size_t base_n)
{
    REQUIRE(wn_json_check_object(obj, n, NULL, NULL) == WN_OK);

    wn_buf out = {0}, key = {0}, val = {0};
    wn_jw w;
    wn_jw_init(&w, &out, (int)(n & 1));
    wn_jw_obj_begin(&w);

    wn_json_iter it;
    wn_span k, v;
    const char *prev_end = obj;
    size_t members = 0;
    wn_json_iter_init(&it, obj, n);
    while (wn_json_iter_next(&it, &k, &v)) {
        members++;
        REQUIRE(k.p >= prev_end && k.p + k.n <= v.p && v.p + v.n <= obj + n);
        REQUIRE(k.p >= base && v.p + v.n <= base + base_n);
        prev_end = v.p + v.n;
        REQUIRE(k.n >= 2 && k.p[0] == '"' && k.p[k.n - 1] == '"');
        REQUIRE(v.n >= 1);

        check_string(k, &key);
        if (!memchr(key.p ? key.p : "", 0, key.len)) {
            const char *name = key.p ? key.p : "";
            REQUIRE(wn_json_key_eq(k, name));
            wn_span g;
            REQUIRE(wn_json_get(obj, n, name, &g));
            wn_jw_key(&w, name);
        } else {
            wn_jw_key(&w, "nul");
        }

        switch (v.p[0]) {
        case '"':
            check_string(v, &val);
            wn_jw_strn(&w, val.p ? val.p : "", val.len);
            break;
        case '{':
            walk_object(v.p, v.n, base, base_n);
            wn_jw_raw(&w, v.p, v.n);
            break;
        case '[':
            REQUIRE(v.p[v.n - 1] == ']');
            wn_jw_raw(&w, v.p, v.n);
            break;
        case 't':
            REQUIRE(v.n == 4 && memcmp(v.p, "true", 4) == 0);
            wn_jw_bool(&w, 1);
            break;
        case 'f':
            REQUIRE(v.n == 5 && memcmp(v.p, "false", 5) == 0);
            wn_jw_bool(&w, 0);
            break;
        case 'n':
            REQUIRE(v.n == 4 && memcmp(v.p, "null", 4) == 0);
            wn_jw_null(&w);
            break;
        default:
            check_number(v);
            wn_jw_raw(&w, v.p, v.n);
        }
    }
    wn_jw_obj_end(&w);
    if (members == 0) REQUIRE(out.len == 2);

    /* The rebuilt record is valid and has the same number of members. */
    REQUIRE(w.depth == 0);
    REQUIRE(wn_json_check_object(out.p, out.len, NULL, NULL) == WN_OK);
    size_t again = 0;
    wn_json_iter_init(&it, out.p, out.len);
    while (wn_json_iter_next(&it, &k, &v)) again++;
    REQUIRE(again == members);

    wn_buf_free(&out);
    wn_buf_free(&key);
    wn_buf_free(&val);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *s = (const char *)data;
    size_t off = (size_t)-1;
    const char *why = NULL;
    if (wn_json_check_object(s, size, &off, &why) != WN_OK) {
        REQUIRE(why != NULL && off <= size);
        /* Iteration and lookups must stay in bounds on invalid input too. */
        wn_json_iter it;
        wn_span k, v;
        wn_json_iter_init(&it, s, size);
        for (int i = 0; i < 1000 && wn_json_iter_next(&it, &k, &v); i++) {
            REQUIRE(k.p >= s && v.p + v.n <= s + size);
            wn_buf b = {0};
            (void)wn_json_decode_string(k, &b);
            (void)wn_json_key_eq(k, "text");
            wn_buf_free(&b);
        }
        return 0;
    }
    walk_object(s, size, s, size);
    return 0;
}
