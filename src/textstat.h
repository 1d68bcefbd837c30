/*
 * textstat.h - text statistics shared by the quality-filter stages
 * (gopher_quality, gopher_repetition, c4_filter, fineweb_quality): a word
 * splitter that follows the tokenizer datatrove uses for English, the
 * punctuation sets datatrove's filters test against, Python-compatible line
 * splitting, and a small hash counter for duplicate lines and n-grams.
 *
 * Words (wn_ts_words). datatrove splits English with spaCy's blank "en"
 * tokenizer. This is a plain-C approximation of it, good enough that the
 * filters' per-document verdicts agree with datatrove on >= 97% of web
 * documents (tests/e2e/test_quality.sh measures it):
 *   1. split on Unicode White_Space;
 *   2. from each chunk peel prefixes one at a time: a run of two or more
 *      dots, U+2026, or one character of spaCy's prefix set (punctuation,
 *      quotes, brackets, currency symbols, So symbols, § % = — – and '+'
 *      not before a digit);
 *   3. peel suffixes: dot runs, U+2026, one character of the suffix set,
 *      's / ’s, n't and 'll 're 've 'm 'd after a letter, '+' or a currency
 *      symbol after a digit, and a final '.' after a lowercase letter, digit,
 *      punctuation, quote, % or two capitals, unless the chunk holds another
 *      '.' (e.g., U.S.) or is one of a few titles (Mr. Mrs. Ms. Dr. St.);
 *   4. unless the rest looks like a URL or domain, split inside it at dot
 *      runs, U+2026, So symbols, +-*^ between digits, '.' between a
 *      lowercase and an uppercase letter, ',' between letters, hyphens
 *      (- – — ~) after a letter or digit and before a letter, and : < > = /
 *      after a letter or digit and before a letter.
 * Each token records its byte span and its length in code points (Python's
 * len()).
 *
 * Ownership: a wn_ts_scratch belongs to one thread; its arrays grow as
 * needed and are reused from document to document. Token spans borrow the
 * text passed to wn_ts_words.
 */
#ifndef WN_TEXTSTAT_H
#define WN_TEXTSTAT_H

#include "wn.h"

typedef struct {
    uint32_t off, len; /* bytes */
    uint32_t cps;      /* code points */
} wn_ts_tok;

typedef struct {
    uint64_t key; /* 0 = empty */
    uint32_t count, first;
} wn_ts_slot;

typedef struct {
    wn_ts_tok *tok;
    size_t n_tok, cap_tok;
    wn_ts_tok *stack; /* suffixes peeled from the current chunk */
    size_t cap_stack;
    int32_t *cp; /* the current chunk decoded */
    uint32_t *cp_off;
    size_t cap_cp;
    wn_ts_slot *slot; /* the hash counter */
    size_t cap_slot, n_slot; /* allocated; in use (a power of two) */
    uint64_t *h; /* per-token hashes, for n-grams */
    size_t cap_h;
} wn_ts_scratch;

/* Splits s[0..n) into words (see above) into sc->tok / sc->n_tok. */
wn_err wn_ts_words(wn_ts_scratch *sc, const char *s, size_t n);
void wn_ts_scratch_free(wn_ts_scratch *sc);

/* Sentences in s[0..n) as spaCy's rule-based Sentencizer counts them over
 * these words: a new sentence starts at the first word that is not
 * punctuation after a word that is one terminal mark. Overwrites sc->tok.
 * Returns 0 for text without words; -1 when out of memory. */
long wn_ts_sentences(wn_ts_scratch *sc, const char *s, size_t n);

/* datatrove's PUNCTUATION_SET (utils/text.py: PUNCTUATION plus
 * TERMINAL_PUNCTUATION) and TERMINAL_PUNCTUATION. */
int wn_ts_is_punct(int32_t c);
int wn_ts_is_terminal(int32_t c);
/* Python's str.isalpha() for one code point (Unicode categories L*). */
int wn_ts_is_alpha(int32_t c);

/* Python's str.splitlines() line breaks: \n \r (and \r\n) \v \f \x1c \x1d
 * \x1e U+0085 U+2028 U+2029. Returns the byte length of the break at s[i]
 * (0 when none). */
size_t wn_ts_line_break(const char *s, size_t n, size_t i);

/* The end of the line starting at s[a]: the first i >= a with a line break
 * (as wn_ts_line_break) or n; *brk gets the break's length (0 at n). Skips
 * bytes that cannot start a break without calling wn_ts_line_break. */
static inline size_t wn_ts_line_end(const char *s, size_t n, size_t a, size_t *brk)
{
    const unsigned char *u = (const unsigned char *)s;
    for (size_t i = a; i < n; i++) {
        unsigned char c = u[i];
        if (c > 0x1e && c != 0xc2 && c != 0xe2) continue;
        size_t k = wn_ts_line_break(s, n, i);
        if (k) {
            *brk = k;
            return i;
        }
    }
    *brk = 0;
    return n;
}

/* The last code point of s[0..n); -1 for "" or an invalid ending. */
int32_t wn_ts_last_cp(const char *s, size_t n);

/* Python's str.strip() on a byte span (Unicode White_Space). */
wn_span wn_ts_strip(const char *s, size_t n);

/* Hash counter: counts occurrences of 64-bit keys. reset sizes it for up to
 * `expected` distinct keys. add returns the count after adding; *first gets
 * the `idx` given with the key's first occurrence. */
wn_err wn_ts_count_reset(wn_ts_scratch *sc, size_t expected);
static inline uint32_t wn_ts_count_add(wn_ts_scratch *sc, uint64_t key, uint32_t idx, uint32_t *first)
{
    size_t mask = sc->n_slot - 1;
    for (size_t i = (size_t)(key ^ (key >> 29)) & mask;; i = (i + 1) & mask) {
        wn_ts_slot *s = &sc->slot[i];
        if (s->key == key) {
            if (first) *first = s->first;
            return ++s->count;
        }
        if (!s->key) {
            s->key = key;
            s->count = 1;
            s->first = idx;
            if (first) *first = idx;
            return 1;
        }
    }
}

/* xxh3-64 of a byte span, never 0. */
uint64_t wn_ts_hash(const void *p, size_t n);

#endif
