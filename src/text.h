/*
 * text.h - UTF-8 helpers shared by readers and stages: validation, decoding
 * and counting. All take (pointer, length); nothing requires a NUL.
 */
#ifndef WN_TEXT_H
#define WN_TEXT_H

#include "wn.h"

/* Returns 1 when s[0..n) is valid UTF-8 (RFC 3629: no overlongs, no
 * surrogates, nothing above U+10FFFF). Otherwise 0 and *bad = offset of the
 * first invalid byte. */
int wn_utf8_valid(const char *s, size_t n, size_t *bad);

/* Decodes one code point at s[*i], advancing *i. Returns -1 (and advances
 * one byte) on an invalid sequence. */
int32_t wn_utf8_next(const char *s, size_t n, size_t *i);

/* Appends code point c as UTF-8. */
wn_err wn_utf8_put(wn_buf *b, int32_t c);

/* Counts code points (invalid bytes count one each). */
size_t wn_utf8_count(const char *s, size_t n);

/* Whitespace-separated words (ASCII and Unicode White_Space). */
size_t wn_count_words(const char *s, size_t n);

/* Lines: the number of '\n'-separated lines; "" has 0, "a" has 1, "a\n" 1. */
size_t wn_count_lines(const char *s, size_t n);

/* Unicode White_Space property. */
int wn_is_space(int32_t c);

#endif
