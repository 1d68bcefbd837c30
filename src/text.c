/*
 * text.c - UTF-8 validation, decoding and counting (text.h).
 *
 * The validator is on the hot path of every reader: ASCII runs are skipped
 * eight bytes at a time; multi-byte sequences are checked by the table of
 * well-formed byte sequences in the Unicode standard (Table 3-7).
 */
#include "text.h"

#include <string.h>

int32_t wn_utf8_next(const char *str, size_t n, size_t *i)
{
    const unsigned char *s = (const unsigned char *)str;
    size_t k = *i;
    unsigned c = s[k];
    if (c < 0x80) { *i = k + 1; return (int32_t)c; }
    int len;
    unsigned lo = 0x80, hi = 0xBF;
    int32_t cp;
    if (c >= 0xC2 && c <= 0xDF) { len = 2; cp = c & 0x1F; }
    else if (c >= 0xE0 && c <= 0xEF) {
        len = 3; cp = c & 0x0F;
        if (c == 0xE0) lo = 0xA0;
        if (c == 0xED) hi = 0x9F; /* no surrogates */
    } else if (c >= 0xF0 && c <= 0xF4) {
        len = 4; cp = c & 0x07;
        if (c == 0xF0) lo = 0x90;
        if (c == 0xF4) hi = 0x8F;
    } else { *i = k + 1; return -1; }
    if (k + (size_t)len > n) { *i = k + 1; return -1; }
    unsigned c1 = s[k + 1];
    if (c1 < lo || c1 > hi) { *i = k + 1; return -1; }
    cp = (cp << 6) | (c1 & 0x3F);
    for (int j = 2; j < len; j++) {
        unsigned cj = s[k + j];
        if ((cj & 0xC0) != 0x80) { *i = k + 1; return -1; }
        cp = (cp << 6) | (cj & 0x3F);
    }
    *i = k + (size_t)len;
    return cp;
}

int wn_utf8_valid(const char *s, size_t n, size_t *bad)
{
    size_t i = 0;
    while (i < n) {
        while (i + 8 <= n) { /* skip ASCII eight bytes at a time */
            uint64_t w;
            memcpy(&w, s + i, 8);
            if (w & 0x8080808080808080ull) break;
            i += 8;
        }
        if (i >= n) break;
        if ((unsigned char)s[i] < 0x80) { i++; continue; }
        size_t at = i;
        if (wn_utf8_next(s, n, &i) < 0) {
            if (bad) *bad = at;
            return 0;
        }
    }
    return 1;
}

wn_err wn_utf8_put(wn_buf *b, int32_t c)
{
    char u[4];
    size_t n;
    if (c < 0x80) { u[0] = (char)c; n = 1; }
    else if (c < 0x800) { u[0] = (char)(0xC0 | (c >> 6)); u[1] = (char)(0x80 | (c & 0x3F)); n = 2; }
    else if (c < 0x10000) {
        u[0] = (char)(0xE0 | (c >> 12)); u[1] = (char)(0x80 | ((c >> 6) & 0x3F));
        u[2] = (char)(0x80 | (c & 0x3F)); n = 3;
    } else {
        u[0] = (char)(0xF0 | (c >> 18)); u[1] = (char)(0x80 | ((c >> 12) & 0x3F));
        u[2] = (char)(0x80 | ((c >> 6) & 0x3F)); u[3] = (char)(0x80 | (c & 0x3F)); n = 4;
    }
    return wn_buf_append(b, u, n);
}

size_t wn_utf8_count(const char *s, size_t n)
{
    size_t count = 0, i = 0;
    while (i < n) {
        while (i + 8 <= n) { /* ASCII: a byte is a code point */
            uint64_t w;
            memcpy(&w, s + i, 8);
            if (w & 0x8080808080808080ull) break;
            i += 8;
            count += 8;
        }
        if (i >= n) break;
        if ((unsigned char)s[i] < 0x80) i++;
        else wn_utf8_next(s, n, &i); /* an invalid byte advances one and counts one */
        count++;
    }
    return count;
}

int wn_is_space(int32_t c)
{
    if (c <= 0x20) return c == ' ' || (c >= 0x09 && c <= 0x0D);
    return c == 0x85 || c == 0xA0 || c == 0x1680 || (c >= 0x2000 && c <= 0x200A) ||
           c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F || c == 0x3000;
}

size_t wn_count_words(const char *s, size_t n)
{
    size_t words = 0, i = 0;
    int in_word = 0;
    while (i < n) {
        int32_t c = (unsigned char)s[i] < 0x80 ? s[i++] : wn_utf8_next(s, n, &i);
        int sp = c >= 0 && wn_is_space(c);
        if (!sp && !in_word) words++;
        in_word = !sp;
    }
    return words;
}

size_t wn_count_lines(const char *s, size_t n)
{
    if (!n) return 0;
    size_t lines = 0;
    for (const char *p = s, *end = s + n; (p = memchr(p, '\n', (size_t)(end - p))); p++) lines++;
    return lines + (s[n - 1] != '\n');
}
