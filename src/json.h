/*
 * json.h - the JSON this project needs, and no more.
 *
 * Input side: a validating scanner for one JSON text (a JSONL record), an
 * iterator over the members of an object that hands out raw byte spans (so
 * fields winnow does not touch pass through byte-for-byte), string decoding
 * and number reading. Output side: a small streaming writer used for reports
 * and for records.
 *
 * Nothing here allocates except into a caller's wn_buf. Spans borrow the
 * caller's bytes.
 */
#ifndef WN_JSON_H
#define WN_JSON_H

#include "wn.h"

/* Validates that s[0..n) is exactly one JSON value of type object, optionally
 * surrounded by whitespace (RFC 8259, strict: no trailing commas, no raw
 * control characters inside strings, no NaN). Nesting deeper than 256 is an
 * error. On failure returns WN_ERR_INPUT, sets *err_off to the byte offset of
 * the problem and *why to a static description ("unterminated string",
 * "expected ',' or '}'", ...). Bytes >= 0x80 inside strings are not checked
 * for UTF-8 validity here (see wn_utf8_valid in text.h). */
wn_err wn_json_check_object(const char *s, size_t n, size_t *err_off,
                            const char **why);

/* Iterates the top-level members of a validated object. key and val are raw
 * spans: key includes its quotes, val is the value's exact bytes. */
typedef struct {
    const char *p, *end;
} wn_json_iter;
void wn_json_iter_init(wn_json_iter *it, const char *obj, size_t n);
int wn_json_iter_next(wn_json_iter *it, wn_span *key, wn_span *val);

/* Iterates the items of a validated array (the same iterator type). */
void wn_json_items_init(wn_json_iter *it, const char *arr, size_t n);
int wn_json_items_next(wn_json_iter *it, wn_span *val);

/* True when the raw (quoted) key decodes to name. */
int wn_json_key_eq(wn_span key, const char *name);

/* Finds member name in a validated object; returns 1 and its raw value. */
int wn_json_get(const char *obj, size_t n, const char *name, wn_span *val);

/* Decodes a raw JSON string (with quotes) into UTF-8, appending to out.
 * \uXXXX escapes and surrogate pairs decode to UTF-8; a lone surrogate
 * becomes U+FFFD. Returns WN_ERR_INPUT if raw is not a string. */
wn_err wn_json_decode_string(wn_span raw, wn_buf *out);

/* Appends s[0..n) as a quoted JSON string: escapes '"', '\\', and bytes
 * < 0x20 (\n \r \t \b \f short forms, others \u00XX); bytes >= 0x80 are
 * copied unchanged. */
wn_err wn_json_encode_string(wn_buf *out, const char *s, size_t n);

/* Reads a raw number span. Return 1 on success. */
int wn_json_to_double(wn_span raw, double *v);
int wn_json_to_i64(wn_span raw, int64_t *v);

/* Streaming writer. Commas are inserted automatically; pretty=1 indents
 * with two spaces, one member per line. */
typedef struct {
    wn_buf *out;
    int depth;
    int pretty;
    int need_comma[64];
    int after_key;
} wn_jw;
void wn_jw_init(wn_jw *w, wn_buf *out, int pretty);
void wn_jw_obj_begin(wn_jw *w);
void wn_jw_obj_end(wn_jw *w);
void wn_jw_arr_begin(wn_jw *w);
void wn_jw_arr_end(wn_jw *w);
void wn_jw_key(wn_jw *w, const char *key);
void wn_jw_str(wn_jw *w, const char *s);
void wn_jw_strn(wn_jw *w, const char *s, size_t n);
void wn_jw_i64(wn_jw *w, int64_t v);
void wn_jw_u64(wn_jw *w, uint64_t v);
void wn_jw_f64(wn_jw *w, double v); /* shortest round-trip form; non-finite -> null */
void wn_jw_bool(wn_jw *w, int v);
void wn_jw_null(wn_jw *w);
void wn_jw_raw(wn_jw *w, const char *json, size_t n); /* an already-valid value */

#endif
