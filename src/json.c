/*
 * json.c - the JSON scanner, member iterator, string codec, number readers
 * and streaming writer declared in json.h.
 *
 * The validator runs on every JSONL record, so it is a single pass with an
 * explicit bracket stack (no recursion, no allocation) and scans string
 * bodies eight bytes at a time. Every read is bounded by the caller's n: the
 * input is not NUL-terminated. The iterator and string functions assume a
 * validated record but still never read outside their span.
 */
#include "json.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define JSON_MAX_DEPTH 256
#define JSON_MAX_NUMBER 64 /* longest number span the readers accept */

typedef const unsigned char *bytes;

/* ---- byte classes ---------------------------------------------------- */

/* 1 for bytes that may appear unescaped inside a string and need no
 * attention: everything except '"', '\\' and the controls < 0x20. */
static const unsigned char str_plain[256] = {
#define R8(v) v, v, v, v, v, v, v, v
    R8(0), R8(0), R8(0), R8(0),                         /* 0x00-0x1f */
    1, 1, 0, 1, 1, 1, 1, 1, R8(1),                      /* 0x20-0x2f: '"' */
    R8(1), R8(1), R8(1), R8(1),                         /* 0x30-0x4f */
    R8(1), 1, 1, 1, 1, 0, 1, 1, 1,                      /* 0x50-0x5f: '\\' */
    R8(1), R8(1), R8(1), R8(1), R8(1), R8(1), R8(1), R8(1), R8(1), R8(1), /* 0x60-0xaf */
    R8(1), R8(1), R8(1), R8(1), R8(1), R8(1), R8(1), R8(1), R8(1), R8(1), /* 0xb0-0xff */
#undef R8
};

static inline int is_ws(unsigned c) { return c == ' ' || c == '\n' || c == '\r' || c == '\t'; }
static inline int is_digit(unsigned c) { return c - '0' < 10u; }

static inline bytes skip_ws(bytes p, bytes end)
{
    while (p < end && is_ws(*p)) p++;
    return p;
}

/* Returns the first byte in [p, end) that is not str_plain, or end. Eight
 * bytes at a time: the classic "has zero byte" test applied to w ^ '"',
 * w ^ '\\' and w - 0x20 flags a word holding any such byte (the test has no
 * false positives when no byte matches); the byte loop then finds it. */
static inline bytes skip_plain(bytes p, bytes end)
{
    const uint64_t ones = 0x0101010101010101ull, highs = 0x8080808080808080ull;
    while (end - p >= 8) {
        uint64_t w;
        memcpy(&w, p, 8);
        uint64_t q = w ^ (ones * '"'), b = w ^ (ones * '\\');
        uint64_t hit = ((q - ones) & ~q) | ((b - ones) & ~b) | ((w - ones * 0x20) & ~w);
        if (hit & highs) break;
        p += 8;
    }
    while (p < end && str_plain[*p]) p++;
    return p;
}

static inline int hex_val(unsigned c)
{
    if (c - '0' < 10u) return (int)(c - '0');
    c |= 0x20;
    if (c - 'a' < 6u) return (int)(c - 'a' + 10);
    return -1;
}

/* ---- validation ------------------------------------------------------ */

/* Each scanner takes *pp at the token's first byte. On success it returns
 * NULL with *pp just past the token; on failure it returns the reason with
 * *pp at the offending byte (end when the input stops short). */

static const char *scan_string(bytes *pp, bytes end)
{
    bytes p = *pp + 1;
    for (;;) {
        p = skip_plain(p, end);
        if (p == end) break;
        if (*p == '"') {
            *pp = p + 1;
            return NULL;
        }
        if (*p != '\\') {
            *pp = p;
            return "control character in string";
        }
        if (end - p < 2) break;
        switch (p[1]) {
        case '"': case '\\': case '/': case 'b': case 'f': case 'n': case 'r': case 't':
            p += 2;
            break;
        case 'u':
            for (int i = 2; i < 6; i++) {
                if (p + i == end) goto unterminated;
                if (hex_val(p[i]) < 0) {
                    *pp = p + i;
                    return "invalid \\u escape";
                }
            }
            p += 6;
            break;
        default:
            *pp = p;
            return "invalid escape";
        }
    }
unterminated:
    *pp = end;
    return "unterminated string";
}

/* -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)? */
static const char *scan_number(bytes *pp, bytes end)
{
    bytes p = *pp;
    if (p < end && *p == '-') p++;
    if (p < end && *p == '0') {
        p++;
        if (p < end && is_digit(*p)) {
            *pp = p;
            return "leading zero in number";
        }
    } else if (p < end && is_digit(*p)) {
        while (p < end && is_digit(*p)) p++;
    } else {
        *pp = p;
        return "invalid number";
    }
    if (p < end && *p == '.') {
        p++;
        if (p == end || !is_digit(*p)) {
            *pp = p;
            return "invalid number";
        }
        while (p < end && is_digit(*p)) p++;
    }
    if (p < end && (*p | 0x20) == 'e') {
        p++;
        if (p < end && (*p == '+' || *p == '-')) p++;
        if (p == end || !is_digit(*p)) {
            *pp = p;
            return "invalid number";
        }
        while (p < end && is_digit(*p)) p++;
    }
    *pp = p;
    return NULL;
}

static const char *scan_literal(bytes *pp, bytes end, const char *lit, size_t n)
{
    bytes p = *pp;
    for (size_t i = 0; i < n; i++) {
        if (p + i == end || p[i] != (unsigned char)lit[i]) {
            *pp = p + i;
            return "invalid literal";
        }
    }
    *pp = p + n;
    return NULL;
}

/* A goto state machine over an explicit stack of open brackets: 'value'
 * expects any value, 'key' a member name, 'after' a separator or closer for
 * the innermost open container. Offsets are where the problem was seen:
 * the bad byte, or n when the input ends early. */
wn_err wn_json_check_object(const char *s, size_t n, size_t *err_off, const char **why)
{
    bytes const start = (bytes)s, end = start + n;
    bytes p = skip_ws(start, end);
    unsigned char stack[JSON_MAX_DEPTH];
    int depth = 0;
    const char *msg;

    if (p == end) {
        msg = "empty input";
        goto fail;
    }
    if (*p != '{') {
        msg = "expected '{' (top-level value must be an object)";
        goto fail;
    }

value:
    if (p == end) {
        msg = "unexpected end of input";
        goto fail;
    }
    switch (*p) {
    case '{':
    case '[':
        if (depth == JSON_MAX_DEPTH) {
            msg = "nesting too deep";
            goto fail;
        }
        stack[depth++] = *p;
        p = skip_ws(p + 1, end);
        if (p < end && *p == (stack[depth - 1] == '{' ? '}' : ']')) {
            p++;
            depth--;
            goto after;
        }
        if (stack[depth - 1] == '{') goto key;
        goto value;
    case '"':
        if ((msg = scan_string(&p, end))) goto fail;
        goto after;
    case 't':
        if ((msg = scan_literal(&p, end, "true", 4))) goto fail;
        goto after;
    case 'f':
        if ((msg = scan_literal(&p, end, "false", 5))) goto fail;
        goto after;
    case 'n':
        if ((msg = scan_literal(&p, end, "null", 4))) goto fail;
        goto after;
    case '-': case '0': case '1': case '2': case '3': case '4':
    case '5': case '6': case '7': case '8': case '9':
        if ((msg = scan_number(&p, end))) goto fail;
        goto after;
    default:
        msg = "expected value";
        goto fail;
    }

key:
    if (p == end || *p != '"') {
        msg = p == end ? "unexpected end of input" : "expected string key";
        goto fail;
    }
    if ((msg = scan_string(&p, end))) goto fail;
    p = skip_ws(p, end);
    if (p == end || *p != ':') {
        msg = "expected ':'";
        goto fail;
    }
    p = skip_ws(p + 1, end);
    goto value;

after:
    p = skip_ws(p, end);
    if (depth == 0) {
        if (p != end) {
            msg = "trailing characters after object";
            goto fail;
        }
        return WN_OK;
    }
    if (p < end && *p == ',') {
        p = skip_ws(p + 1, end);
        if (stack[depth - 1] == '{') goto key;
        goto value;
    }
    if (stack[depth - 1] == '{') {
        if (p < end && *p == '}') {
            p++;
            depth--;
            goto after;
        }
        msg = "expected ',' or '}'";
    } else {
        if (p < end && *p == ']') {
            p++;
            depth--;
            goto after;
        }
        msg = "expected ',' or ']'";
    }

fail:
    if (err_off) *err_off = (size_t)(p - start);
    if (why) *why = msg;
    return WN_ERR_INPUT;
}

/* ---- iteration ------------------------------------------------------- */

/* Past the closing quote of the string at p, or end. Tolerates invalid
 * input without reading out of bounds. */
static bytes skip_string(bytes p, bytes end)
{
    p++;
    for (;;) {
        p = skip_plain(p, end);
        if (p == end) return end;
        if (*p == '"') return p + 1;
        p += (*p == '\\' && end - p >= 2) ? 2 : 1;
    }
}

static bytes skip_value(bytes p, bytes end)
{
    if (p == end) return end;
    if (*p == '"') return skip_string(p, end);
    if (*p == '{' || *p == '[') {
        size_t depth = 0;
        while (p < end) {
            unsigned c = *p;
            if (c == '"') {
                p = skip_string(p, end);
                continue;
            }
            if (c == '{' || c == '[') {
                depth++;
            } else if (c == '}' || c == ']') {
                if (--depth == 0) return p + 1;
            }
            p++;
        }
        return end;
    }
    while (p < end && !is_ws(*p) && *p != ',' && *p != '}' && *p != ']') p++;
    return p;
}

void wn_json_iter_init(wn_json_iter *it, const char *obj, size_t n)
{
    bytes end = (bytes)obj + n, p = skip_ws((bytes)obj, end);
    it->p = (const char *)(p < end && *p == '{' ? p + 1 : end);
    it->end = (const char *)end;
}

int wn_json_iter_next(wn_json_iter *it, wn_span *key, wn_span *val)
{
    bytes end = (bytes)it->end, p = skip_ws((bytes)it->p, end);
    if (p == end || *p != '"') goto done;
    bytes k = p;
    p = skip_string(p, end);
    key->p = (const char *)k;
    key->n = (size_t)(p - k);
    p = skip_ws(p, end);
    if (p == end || *p != ':') goto done;
    p = skip_ws(p + 1, end);
    bytes v = p;
    p = skip_value(p, end);
    if (p == v) goto done;
    val->p = (const char *)v;
    val->n = (size_t)(p - v);
    p = skip_ws(p, end);
    if (p < end && *p == ',') p++;
    it->p = (const char *)p;
    return 1;
done:
    it->p = (const char *)end;
    return 0;
}

void wn_json_items_init(wn_json_iter *it, const char *arr, size_t n)
{
    bytes end = (bytes)arr + n, p = skip_ws((bytes)arr, end);
    it->p = (const char *)(p < end && *p == '[' ? p + 1 : end);
    it->end = (const char *)end;
}

int wn_json_items_next(wn_json_iter *it, wn_span *val)
{
    bytes end = (bytes)it->end, p = skip_ws((bytes)it->p, end);
    bytes v = p;
    p = skip_value(p, end);
    if (p == v) {
        it->p = (const char *)end;
        return 0;
    }
    val->p = (const char *)v;
    val->n = (size_t)(p - v);
    p = skip_ws(p, end);
    if (p < end && *p == ',') p++;
    it->p = (const char *)p;
    return 1;
}

/* ---- strings --------------------------------------------------------- */

static int put_utf8(uint32_t cp, unsigned char *u)
{
    if (cp < 0x80) {
        u[0] = (unsigned char)cp;
        return 1;
    }
    if (cp < 0x800) {
        u[0] = (unsigned char)(0xc0 | (cp >> 6));
        u[1] = (unsigned char)(0x80 | (cp & 0x3f));
        return 2;
    }
    if (cp < 0x10000) {
        u[0] = (unsigned char)(0xe0 | (cp >> 12));
        u[1] = (unsigned char)(0x80 | ((cp >> 6) & 0x3f));
        u[2] = (unsigned char)(0x80 | (cp & 0x3f));
        return 3;
    }
    u[0] = (unsigned char)(0xf0 | (cp >> 18));
    u[1] = (unsigned char)(0x80 | ((cp >> 12) & 0x3f));
    u[2] = (unsigned char)(0x80 | ((cp >> 6) & 0x3f));
    u[3] = (unsigned char)(0x80 | (cp & 0x3f));
    return 4;
}

/* The four hex digits at p (caller checked there are four bytes), or -1. */
static long hex4(bytes p)
{
    long v = 0;
    for (int i = 0; i < 4; i++) {
        int h = hex_val(p[i]);
        if (h < 0) return -1;
        v = v << 4 | h;
    }
    return v;
}

/* Decodes the escape at *pp (a backslash) into u (up to 4 bytes) and
 * advances *pp. A high surrogate followed by a low one combines; any other
 * surrogate becomes U+FFFD and what follows it is decoded on its own.
 * Returns the byte count, or -1 for a malformed escape. */
static int decode_escape(bytes *pp, bytes end, unsigned char *u)
{
    bytes p = *pp;
    if (end - p < 2) return -1;
    unsigned char c;
    switch (p[1]) {
    case '"': c = '"'; break;
    case '\\': c = '\\'; break;
    case '/': c = '/'; break;
    case 'b': c = '\b'; break;
    case 'f': c = '\f'; break;
    case 'n': c = '\n'; break;
    case 'r': c = '\r'; break;
    case 't': c = '\t'; break;
    case 'u': {
        if (end - p < 6) return -1;
        long cp = hex4(p + 2);
        if (cp < 0) return -1;
        p += 6;
        if (cp >= 0xd800 && cp <= 0xdbff) {
            long lo = end - p >= 6 && p[0] == '\\' && p[1] == 'u' ? hex4(p + 2) : -1;
            if (lo >= 0xdc00 && lo <= 0xdfff) {
                cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
                p += 6;
            } else {
                cp = 0xfffd;
            }
        } else if (cp >= 0xdc00 && cp <= 0xdfff) {
            cp = 0xfffd;
        }
        *pp = p;
        return put_utf8((uint32_t)cp, u);
    }
    default:
        return -1;
    }
    *pp = p + 2;
    u[0] = c;
    return 1;
}

int wn_json_key_eq(wn_span key, const char *name)
{
    if (key.n < 2 || key.p[0] != '"' || key.p[key.n - 1] != '"') return 0;
    bytes p = (bytes)key.p + 1, end = (bytes)key.p + key.n - 1;
    size_t kn = key.n - 2;
    if (!memchr(p, '\\', kn)) return strlen(name) == kn && memcmp(p, name, kn) == 0;

    bytes nm = (bytes)name;
    while (p < end) {
        if (*p != '\\') {
            if (*nm == 0 || *nm != *p) return 0;
            nm++;
            p++;
            continue;
        }
        unsigned char u[4];
        int k = decode_escape(&p, end, u);
        if (k < 0) return 0;
        for (int i = 0; i < k; i++, nm++)
            if (*nm == 0 || *nm != u[i]) return 0;
    }
    return *nm == 0;
}

int wn_json_get(const char *obj, size_t n, const char *name, wn_span *val)
{
    wn_json_iter it;
    wn_span k, v;
    wn_json_iter_init(&it, obj, n);
    while (wn_json_iter_next(&it, &k, &v)) {
        if (wn_json_key_eq(k, name)) {
            *val = v;
            return 1;
        }
    }
    return 0;
}

/* On error out is left as it was. Raw control bytes, an unescaped quote
 * before the last byte and malformed escapes make raw "not a string". */
wn_err wn_json_decode_string(wn_span raw, wn_buf *out)
{
    if (raw.n < 2 || raw.p[0] != '"' || raw.p[raw.n - 1] != '"') return WN_ERR_INPUT;
    bytes p = (bytes)raw.p + 1, end = (bytes)raw.p + raw.n - 1;
    size_t len0 = out->len;
    wn_err rc = WN_ERR_INPUT;
    if (wn_buf_reserve(out, raw.n - 2)) return WN_ERR_NOMEM;
    while (p < end) {
        bytes q = skip_plain(p, end);
        if (q > p && wn_buf_append(out, p, (size_t)(q - p))) goto nomem;
        p = q;
        if (p == end) break;
        if (*p != '\\') goto fail;
        unsigned char u[4];
        int k = decode_escape(&p, end, u);
        if (k < 0) goto fail;
        if (wn_buf_append(out, u, (size_t)k)) goto nomem;
    }
    out->p[out->len] = 0; /* reserve alone does not terminate */
    return WN_OK;
nomem:
    rc = WN_ERR_NOMEM;
fail:
    out->len = len0;
    if (out->p) out->p[len0] = 0;
    return rc;
}

wn_err wn_json_encode_string(wn_buf *out, const char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    bytes p = (bytes)s, end = p + n;
    if (wn_buf_reserve(out, n + 2) || wn_buf_putc(out, '"')) return WN_ERR_NOMEM;
    while (p < end) {
        bytes q = skip_plain(p, end);
        if (q > p && wn_buf_append(out, p, (size_t)(q - p))) return WN_ERR_NOMEM;
        p = q;
        if (p == end) break;
        char e[6] = {'\\', 0, 0, 0, 0, 0};
        size_t en = 2;
        switch (*p) {
        case '"': e[1] = '"'; break;
        case '\\': e[1] = '\\'; break;
        case '\n': e[1] = 'n'; break;
        case '\r': e[1] = 'r'; break;
        case '\t': e[1] = 't'; break;
        case '\b': e[1] = 'b'; break;
        case '\f': e[1] = 'f'; break;
        default:
            e[1] = 'u';
            e[2] = '0';
            e[3] = '0';
            e[4] = hex[*p >> 4];
            e[5] = hex[*p & 15];
            en = 6;
        }
        if (wn_buf_append(out, e, en)) return WN_ERR_NOMEM;
        p++;
    }
    return wn_buf_putc(out, '"');
}

/* ---- numbers --------------------------------------------------------- */

/* Accepts only the JSON number grammar over the whole span (strtod alone
 * would take "inf", hex and leading blanks). Values beyond the double
 * range fail; underflow rounds toward zero. Assumes the "C" locale. */
int wn_json_to_double(wn_span raw, double *v)
{
    char buf[JSON_MAX_NUMBER + 1];
    bytes p = (bytes)raw.p;
    if (raw.n == 0 || raw.n > JSON_MAX_NUMBER) return 0;
    if (scan_number(&p, p + raw.n) || p != (bytes)raw.p + raw.n) return 0;
    memcpy(buf, raw.p, raw.n);
    buf[raw.n] = 0;
    char *e;
    errno = 0;
    double d = strtod(buf, &e);
    if (e != buf + raw.n || (errno == ERANGE && isinf(d))) return 0;
    *v = d;
    return 1;
}

int wn_json_to_i64(wn_span raw, int64_t *v)
{
    bytes p = (bytes)raw.p, end = p + raw.n;
    int neg = p < end && *p == '-';
    p += neg;
    if (p == end || !is_digit(*p) || (*p == '0' && end - p > 1)) return 0;
    uint64_t m = 0, lim = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
    for (; p < end; p++) {
        if (!is_digit(*p)) return 0;
        unsigned d = *p - '0';
        if (m > (lim - d) / 10) return 0;
        m = m * 10 + d;
    }
    *v = neg ? (int64_t)(0 - m) : (int64_t)m;
    return 1;
}

/* ---- writer ---------------------------------------------------------- */

/* need_comma[d] says the container open at level d already has an element;
 * after_key says the next value completes a member. Allocation failures
 * are dropped: the caller's buffer just ends short. */

void wn_jw_init(wn_jw *w, wn_buf *out, int pretty)
{
    memset(w, 0, sizeof *w);
    w->out = out;
    w->pretty = pretty;
}

static void jw_indent(wn_jw *w)
{
    (void)wn_buf_putc(w->out, '\n');
    for (int i = 0; i < w->depth; i++) (void)wn_buf_append(w->out, "  ", 2);
}

/* Emits what goes before a key or a value. */
static void jw_sep(wn_jw *w)
{
    if (w->after_key) {
        w->after_key = 0;
        return;
    }
    if (w->depth == 0) return;
    if (w->need_comma[w->depth - 1]) (void)wn_buf_putc(w->out, ',');
    w->need_comma[w->depth - 1] = 1;
    if (w->pretty) jw_indent(w);
}

static void jw_open(wn_jw *w, char c)
{
    jw_sep(w);
    WN_CHECK(w->depth < (int)WN_ARRAY_LEN(w->need_comma));
    (void)wn_buf_putc(w->out, c);
    w->need_comma[w->depth++] = 0;
}

static void jw_close(wn_jw *w, char c)
{
    WN_CHECK(w->depth > 0);
    w->depth--;
    if (w->pretty && w->need_comma[w->depth]) jw_indent(w);
    (void)wn_buf_putc(w->out, c);
}

void wn_jw_obj_begin(wn_jw *w) { jw_open(w, '{'); }
void wn_jw_obj_end(wn_jw *w) { jw_close(w, '}'); }
void wn_jw_arr_begin(wn_jw *w) { jw_open(w, '['); }
void wn_jw_arr_end(wn_jw *w) { jw_close(w, ']'); }

void wn_jw_key(wn_jw *w, const char *key)
{
    jw_sep(w);
    (void)wn_json_encode_string(w->out, key, strlen(key));
    (void)wn_buf_append(w->out, ": ", w->pretty ? 2 : 1);
    w->after_key = 1;
}

void wn_jw_str(wn_jw *w, const char *s) { wn_jw_strn(w, s, strlen(s)); }

void wn_jw_strn(wn_jw *w, const char *s, size_t n)
{
    jw_sep(w);
    (void)wn_json_encode_string(w->out, s, n);
}

void wn_jw_i64(wn_jw *w, int64_t v)
{
    jw_sep(w);
    (void)wn_buf_printf(w->out, "%" PRId64, v);
}

void wn_jw_u64(wn_jw *w, uint64_t v)
{
    jw_sep(w);
    (void)wn_buf_printf(w->out, "%" PRIu64, v);
}

/* The first of %.15g, %.16g, %.17g that reads back as v; %.17g always
 * does. With %g, integral values print bare ("3") and large or tiny ones
 * with an exponent ("1e+300"), both valid JSON. */
void wn_jw_f64(wn_jw *w, double v)
{
    if (!isfinite(v)) {
        wn_jw_null(w);
        return;
    }
    char buf[32];
    for (int prec = 15; prec <= 17; prec++) {
        snprintf(buf, sizeof buf, "%.*g", prec, v);
        if (prec == 17 || strtod(buf, NULL) == v) break;
    }
    jw_sep(w);
    (void)wn_buf_puts(w->out, buf);
}

void wn_jw_bool(wn_jw *w, int v)
{
    jw_sep(w);
    (void)wn_buf_puts(w->out, v ? "true" : "false");
}

void wn_jw_null(wn_jw *w)
{
    jw_sep(w);
    (void)wn_buf_append(w->out, "null", 4);
}

void wn_jw_raw(wn_jw *w, const char *json, size_t n)
{
    jw_sep(w);
    (void)wn_buf_append(w->out, json, n);
}
