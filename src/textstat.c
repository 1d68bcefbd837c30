/*
 * textstat.c - word splitting, punctuation sets, line breaks and the hash
 * counter behind the quality filters (contract in textstat.h).
 */
#include <string.h>
#include <utf8proc.h>
#include <xxhash.h>

#include "text.h"
#include "textstat.h"

/* The code points of datatrove's PUNCTUATION_SET and TERMINAL_PUNCTUATION
 * (datatrove 0.10.1, utils/text.py), sorted for binary search. */
static const int32_t punct_set[] = {
    0x0, 0x1, 0x2, 0x3, 0x4, 0x5, 0x6, 0x7, 0x8, 0xB, 0xC, 0xD, 0xE, 0xF, 0x10, 0x11, 0x12, 0x13,
    0x14, 0x15, 0x16, 0x17, 0x18, 0x19, 0x1A, 0x1B, 0x1C, 0x1D, 0x1E, 0x1F, 0x21, 0x22, 0x23, 0x24,
    0x25, 0x26, 0x27, 0x28, 0x29, 0x2A, 0x2B, 0x2C, 0x2D, 0x2E, 0x2F, 0x3A, 0x3B, 0x3C, 0x3D, 0x3E,
    0x3F, 0x40, 0x5B, 0x5C, 0x5D, 0x5E, 0x5F, 0x60, 0x7B, 0x7C, 0x7D, 0x7E, 0x7F, 0x80, 0x81, 0x82,
    0x83, 0x84, 0x85, 0x86, 0x87, 0x88, 0x89, 0x8A, 0x8B, 0x8C, 0x8D, 0x8E, 0x8F, 0x90, 0x91, 0x92,
    0x93, 0x94, 0x95, 0x96, 0x97, 0x98, 0x99, 0x9A, 0x9B, 0x9C, 0x9D, 0x9E, 0x9F, 0xAB, 0xB4, 0xBB,
    0x589, 0x61D, 0x61E, 0x61F, 0x6D4, 0x700, 0x701, 0x702, 0x7F9, 0x837, 0x839, 0x83D, 0x83E,
    0x964, 0x965, 0x104A, 0x104B, 0x1362, 0x1367, 0x1368, 0x166E, 0x1735, 0x1736, 0x17D4, 0x17D5,
    0x17D6, 0x17D9, 0x17DA, 0x1803, 0x1809, 0x1944, 0x1945, 0x1AA8, 0x1AA9, 0x1AAA, 0x1AAB, 0x1B5A,
    0x1B5B, 0x1B5E, 0x1B5F, 0x1B7D, 0x1B7E, 0x1C3B, 0x1C3C, 0x1C7E, 0x1C7F, 0x2013, 0x2014, 0x2019,
    0x201C, 0x201D, 0x201E, 0x2026, 0x203C, 0x203D, 0x2047, 0x2048, 0x2049, 0x2236, 0x2501, 0x25BA,
    0x2E2E, 0x2E3C, 0x2E53, 0x2E54, 0x3001, 0x3002, 0x3008, 0x3009, 0x300A, 0x300B, 0x300C, 0x300D,
    0x3010, 0x3011, 0xA4FF, 0xA60E, 0xA60F, 0xA6F3, 0xA6F7, 0xA876, 0xA877, 0xA8CE, 0xA8CF, 0xA92F,
    0xA9C8, 0xA9C9, 0xAA5D, 0xAA5E, 0xAA5F, 0xAAF0, 0xAAF1, 0xABEB, 0xFE52, 0xFE56, 0xFE57, 0xFF01,
    0xFF05, 0xFF08, 0xFF09, 0xFF0C, 0xFF0E, 0xFF11, 0xFF1A, 0xFF1B, 0xFF1F, 0xFF5E, 0xFF61, 0x10A56,
    0x10A57, 0x10F55, 0x10F56, 0x10F57, 0x10F58, 0x10F59, 0x10F86, 0x10F87, 0x10F88, 0x10F89,
    0x11047, 0x11048, 0x110BE, 0x110BF, 0x110C0, 0x110C1, 0x11141, 0x11142, 0x11143, 0x111C5,
    0x111C6, 0x111CD, 0x111DE, 0x111DF, 0x11238, 0x11239, 0x1123B, 0x1123C, 0x112A9, 0x1144B,
    0x1144C, 0x115C2, 0x115C3, 0x115C9, 0x115CA, 0x115CB, 0x115CC, 0x115CD, 0x115CE, 0x115CF,
    0x115D0, 0x115D1, 0x115D2, 0x115D3, 0x115D4, 0x115D5, 0x115D6, 0x115D7, 0x11641, 0x11642,
    0x1173C, 0x1173D, 0x1173E, 0x11944, 0x11946, 0x11A42, 0x11A43, 0x11A9B, 0x11A9C, 0x11C41,
    0x11C42, 0x11EF7, 0x11EF8, 0x11F43, 0x11F44, 0x16A6E, 0x16A6F, 0x16AF5, 0x16B37, 0x16B38,
    0x16B44, 0x16E98, 0x1BC9F, 0x1DA88,
};
static const int32_t terminal_set[] = {
    0x21, 0x2E, 0x3F, 0x589, 0x61D, 0x61E, 0x61F, 0x6D4, 0x700, 0x701, 0x702, 0x7F9, 0x837, 0x839,
    0x83D, 0x83E, 0x964, 0x965, 0x104A, 0x104B, 0x1362, 0x1367, 0x1368, 0x166E, 0x1735, 0x1736,
    0x17D4, 0x17D5, 0x17D6, 0x17D9, 0x17DA, 0x1803, 0x1809, 0x1944, 0x1945, 0x1AA8, 0x1AA9, 0x1AAA,
    0x1AAB, 0x1B5A, 0x1B5B, 0x1B5E, 0x1B5F, 0x1B7D, 0x1B7E, 0x1C3B, 0x1C3C, 0x1C7E, 0x1C7F, 0x203C,
    0x203D, 0x2047, 0x2048, 0x2049, 0x2E2E, 0x2E3C, 0x2E53, 0x2E54, 0x3002, 0xA4FF, 0xA60E, 0xA60F,
    0xA6F3, 0xA6F7, 0xA876, 0xA877, 0xA8CE, 0xA8CF, 0xA92F, 0xA9C8, 0xA9C9, 0xAA5D, 0xAA5E, 0xAA5F,
    0xAAF0, 0xAAF1, 0xABEB, 0xFE52, 0xFE56, 0xFE57, 0xFF01, 0xFF0E, 0xFF1F, 0xFF61, 0x10A56,
    0x10A57, 0x10F55, 0x10F56, 0x10F57, 0x10F58, 0x10F59, 0x10F86, 0x10F87, 0x10F88, 0x10F89,
    0x11047, 0x11048, 0x110BE, 0x110BF, 0x110C0, 0x110C1, 0x11141, 0x11142, 0x11143, 0x111C5,
    0x111C6, 0x111CD, 0x111DE, 0x111DF, 0x11238, 0x11239, 0x1123B, 0x1123C, 0x112A9, 0x1144B,
    0x1144C, 0x115C2, 0x115C3, 0x115C9, 0x115CA, 0x115CB, 0x115CC, 0x115CD, 0x115CE, 0x115CF,
    0x115D0, 0x115D1, 0x115D2, 0x115D3, 0x115D4, 0x115D5, 0x115D6, 0x115D7, 0x11641, 0x11642,
    0x1173C, 0x1173D, 0x1173E, 0x11944, 0x11946, 0x11A42, 0x11A43, 0x11A9B, 0x11A9C, 0x11C41,
    0x11C42, 0x11EF7, 0x11EF8, 0x11F43, 0x11F44, 0x16A6E, 0x16A6F, 0x16AF5, 0x16B37, 0x16B38,
    0x16B44, 0x16E98, 0x1BC9F, 0x1DA88,
};

static int in_sorted(const int32_t *a, size_t n, int32_t c)
{
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (a[mid] < c) lo = mid + 1;
        else hi = mid;
    }
    return lo < n && a[lo] == c;
}

int wn_ts_is_punct(int32_t c)
{
    if (c < 0) return 0;
    if (c < 0x80) { /* ASCII: everything but alphanumerics, space, \t \n */
        return !((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == ' ' ||
                 c == '\t' || c == '\n');
    }
    return in_sorted(punct_set, WN_ARRAY_LEN(punct_set), c);
}

int wn_ts_is_terminal(int32_t c)
{
    if (c < 0x80) return c == '.' || c == '!' || c == '?';
    return in_sorted(terminal_set, WN_ARRAY_LEN(terminal_set), c);
}

int wn_ts_is_alpha(int32_t c)
{
    if (c < 0x80) return (c | 0x20) >= 'a' && (c | 0x20) <= 'z';
    utf8proc_category_t k = utf8proc_category(c);
    return k >= UTF8PROC_CATEGORY_LU && k <= UTF8PROC_CATEGORY_LO;
}

size_t wn_ts_line_break(const char *s, size_t n, size_t i)
{
    unsigned char c = (unsigned char)s[i];
    if (c == '\n' || c == '\v' || c == '\f' || (c >= 0x1c && c <= 0x1e)) return 1;
    if (c == '\r') return i + 1 < n && s[i + 1] == '\n' ? 2 : 1;
    if (c == 0xc2 && i + 1 < n && (unsigned char)s[i + 1] == 0x85) return 2;
    if (c == 0xe2 && i + 2 < n && (unsigned char)s[i + 1] == 0x80 &&
        ((unsigned char)s[i + 2] == 0xa8 || (unsigned char)s[i + 2] == 0xa9))
        return 3;
    return 0;
}

int32_t wn_ts_last_cp(const char *s, size_t n)
{
    if (!n) return -1;
    size_t i = n - 1;
    while (i > 0 && n - i < 4 && ((unsigned char)s[i] & 0xc0) == 0x80) i--;
    size_t j = i;
    int32_t c = wn_utf8_next(s, n, &j);
    return j == n ? c : -1;
}

static int is_space_at(const char *s, size_t n, size_t i, size_t *len)
{
    unsigned char c = (unsigned char)s[i];
    if (c < 0x80) {
        *len = 1;
        return c == ' ' || (c >= '\t' && c <= '\r');
    }
    size_t j = i;
    int32_t cp = wn_utf8_next(s, n, &j);
    *len = j - i;
    return cp >= 0 && wn_is_space(cp);
}

wn_span wn_ts_strip(const char *s, size_t n)
{
    size_t a = 0, b = n, k;
    while (a < b && is_space_at(s, b, a, &k)) a += k;
    while (b > a) {
        size_t i = b - 1;
        while (i > a && ((unsigned char)s[i] & 0xc0) == 0x80) i--;
        if (!is_space_at(s, b, i, &k) || i + k != b) break;
        b = i;
    }
    return (wn_span){s + a, b - a};
}

/* ---- words ---------------------------------------------------------------- */

/* Character classes. ASCII code points come from a table generated from the
 * Unicode definitions in kind_u() and the lists below, so the fast path gives
 * exactly their answers; other code points go through utf8proc. */
enum {
    K_SPACE = 1 << 0,    /* the splitter's whitespace: ' ' and \t..\r (ASCII table only) */
    K_ALNUM = 1 << 1,    /* is_alnum */
    K_PREFIX = 1 << 2,   /* is_prefix_char, '+' aside (it depends on the next character) */
    K_SUFFIX = 1 << 3,   /* is_suffix_char */
    K_QUOTE = 1 << 4,    /* spaCy's LIST_QUOTES */
    K_UPUNCT = 1 << 5,   /* Unicode P* */
    K_DIGIT = 1 << 6,    /* Nd */
    K_UPPER = 1 << 7,    /* Lu */
    K_LOWER = 1 << 8,    /* Ll */
    K_ALPHA = 1 << 9,    /* L* */
    K_CURRENCY = 1 << 10, /* '$' and Sc */
    K_ICON = 1 << 11,    /* So outside ASCII */
    K_PUNCT = 1 << 12,   /* datatrove's PUNCTUATION_SET (ASCII table only) */
    K_LOWUNC = 1 << 13,  /* Ll or Lo */
    K_HYPHEN = 1 << 14,  /* - – — ~ */
};

static const uint16_t ascii_k[128] = {
    0x1000, 0x1000, 0x1000, 0x1000, 0x1000, 0x1000, 0x1000, 0x1000, 0x1000, 0x1, 0x1, 0x1001,
    0x1001, 0x1001, 0x1000, 0x1000, 0x1000, 0x1000, 0x1000, 0x1000, 0x1000, 0x1000, 0x1000, 0x1000,
    0x1000, 0x1000, 0x1000, 0x1000, 0x1000, 0x1000, 0x1000, 0x1000, 0x1, 0x102c, 0x103c, 0x102c,
    0x1404, 0x1024, 0x102c, 0x103c, 0x102c, 0x102c, 0x102c, 0x1000, 0x102c, 0x5020, 0x1020, 0x1020,
    0x42, 0x42, 0x42, 0x42, 0x42, 0x42, 0x42, 0x42, 0x42, 0x42, 0x102c, 0x102c,
    0x100c, 0x1004, 0x100c, 0x102c, 0x1020, 0x282, 0x282, 0x282, 0x282, 0x282, 0x282, 0x282,
    0x282, 0x282, 0x282, 0x282, 0x282, 0x282, 0x282, 0x282, 0x282, 0x282, 0x282, 0x282,
    0x282, 0x282, 0x282, 0x282, 0x282, 0x282, 0x282, 0x102c, 0x1020, 0x102c, 0x1000, 0x102c,
    0x101c, 0x2302, 0x2302, 0x2302, 0x2302, 0x2302, 0x2302, 0x2302, 0x2302, 0x2302, 0x2302, 0x2302,
    0x2302, 0x2302, 0x2302, 0x2302, 0x2302, 0x2302, 0x2302, 0x2302, 0x2302, 0x2302, 0x2302, 0x2302,
    0x2302, 0x2302, 0x2302, 0x102c, 0x1000, 0x102c, 0x5000, 0x1000};

/* spaCy's LIST_QUOTES outside ASCII (ASCII: ' " `) */
static int is_quote_u(int32_t c)
{
    static const int32_t q[] = {0xB4, 0xAB, 0xBB, 0x2018, 0x2019, 0x201A, 0x201C, 0x201D, 0x201E, 0x27E6, 0x27E7,
                                0x3008, 0x3009, 0x300A, 0x300B, 0x300C, 0x300D, 0x300E, 0x300F, 0x3010, 0x3011,
                                0x3014, 0x3015, 0x2329, 0x232A, 0xFF08, 0xFF09};
    for (size_t i = 0; i < WN_ARRAY_LEN(q); i++)
        if (q[i] == c) return 1;
    return 0;
}

/* spaCy's LIST_PUNCT (single characters) outside ASCII (ASCII: ,:;!?()[]{}<>_#*&) */
static int is_list_punct_u(int32_t c)
{
    static const int32_t p[] = {0xBF, 0xA1, 0x61F, 0x3002, 0xFF1F, 0xFF01, 0xFF0C, 0x3001, 0xFF1B, 0xFF1A,
                                0xFF5E, 0xB7, 0x964, 0x60C, 0x6D4, 0x61B, 0x66A};
    for (size_t i = 0; i < WN_ARRAY_LEN(p); i++)
        if (p[i] == c) return 1;
    return 0;
}

/* The classes of a code point >= 0x80 (K_SPACE and K_PUNCT left out). */
static uint16_t kind_u(int32_t c)
{
    int k = (int)utf8proc_category(c);
    uint16_t v = 0;
    if (k >= UTF8PROC_CATEGORY_LU && k <= UTF8PROC_CATEGORY_LO) v |= K_ALPHA | K_ALNUM;
    if (k == UTF8PROC_CATEGORY_LU) v |= K_UPPER;
    if (k == UTF8PROC_CATEGORY_LL) v |= K_LOWER | K_LOWUNC;
    if (k == UTF8PROC_CATEGORY_LO) v |= K_LOWUNC;
    if (k == UTF8PROC_CATEGORY_ND) v |= K_DIGIT | K_ALNUM;
    if (k >= UTF8PROC_CATEGORY_PC && k <= UTF8PROC_CATEGORY_PO) v |= K_UPUNCT;
    if (k == UTF8PROC_CATEGORY_SO) v |= K_ICON;
    if (k == UTF8PROC_CATEGORY_SC) v |= K_CURRENCY;
    if (is_quote_u(c)) v |= K_QUOTE;
    int lp = is_list_punct_u(c), dash = c == 0x2014 || c == 0x2013;
    if (lp || (v & (K_QUOTE | K_ICON)) || dash) v |= K_SUFFIX;
    if (lp || (v & (K_QUOTE | K_ICON | K_CURRENCY)) || dash || c == 0xA7) v |= K_PREFIX;
    if (dash) v |= K_HYPHEN;
    return v;
}

static inline uint16_t kind(int32_t c)
{
    if ((uint32_t)c < 0x80) return ascii_k[c];
    return c < 0 ? 0 : kind_u(c);
}

static inline int is_upper(int32_t c) { return (kind(c) & K_UPPER) != 0; }
static inline int is_lower(int32_t c) { return (kind(c) & K_LOWER) != 0; }
static inline int is_digit(int32_t c) { return (kind(c) & K_DIGIT) != 0; }
static inline int is_alpha(int32_t c) { return (kind(c) & K_ALPHA) != 0; }
static inline int is_alnum(int32_t c) { return (kind(c) & K_ALNUM) != 0; }
static inline int is_uni_punct(int32_t c) { return (kind(c) & K_UPUNCT) != 0; }
static inline int is_icon(int32_t c) { return (kind(c) & K_ICON) != 0; }
static inline int is_currency(int32_t c) { return (kind(c) & K_CURRENCY) != 0; }
static inline int is_quote(int32_t c) { return (kind(c) & K_QUOTE) != 0; }
/* spaCy's ALPHA_LOWER: lowercase letters and letters of uncased scripts */
static inline int is_lower_or_uncased(int32_t c) { return (kind(c) & K_LOWUNC) != 0; }
static inline int is_hyphen(int32_t c) { return (kind(c) & K_HYPHEN) != 0; }

static inline int is_prefix_char(int32_t c, int32_t next)
{
    if (c == '+') return !is_digit(next);
    return (kind(c) & K_PREFIX) != 0;
}

static inline int is_suffix_char(int32_t c) { return (kind(c) & K_SUFFIX) != 0; }

static wn_err grow_tok(wn_ts_tok **a, size_t *cap)
{
    size_t nc = *cap ? *cap * 2 : 256;
    wn_ts_tok *p = wn_realloc(*a, nc * sizeof *p);
    if (!p) return WN_ERR_NOMEM;
    *a = p;
    *cap = nc;
    return WN_OK;
}

static inline wn_err push_tok(wn_ts_tok **a, size_t *n, size_t *cap, wn_ts_tok t)
{
    if (*n == *cap) {
        wn_err e = grow_tok(a, cap);
        if (e) return e;
    }
    (*a)[(*n)++] = t;
    return WN_OK;
}

typedef struct {
    wn_ts_scratch *sc;
    const int32_t *c;
    const uint32_t *o; /* byte offset of each code point; o[m] = end */
} chunk;

static inline wn_err emit(const chunk *k, size_t a, size_t b)
{
    if (a >= b) return WN_OK;
    return push_tok(&k->sc->tok, &k->sc->n_tok, &k->sc->cap_tok,
                    (wn_ts_tok){k->o[a], k->o[b] - k->o[a], (uint32_t)(b - a)});
}

static inline size_t dot_run(const int32_t *c, size_t i, size_t hi)
{
    size_t j = i;
    while (j < hi && c[j] == '.') j++;
    return j - i;
}

typedef struct {
    const char *s;
    size_t n;
} word;
#define W(x) {x, sizeof x - 1}

/* c[0..n) equals w, ASCII case-insensitively, with ’ read as ' */
static inline int ascii_ieq(const int32_t *c, size_t n, word w)
{
    if (w.n != n) return 0;
    for (size_t i = 0; i < n; i++) {
        int32_t x = c[i] == 0x2019 ? '\'' : c[i];
        if (x >= 'A' && x <= 'Z') x += 32;
        if (x != w.s[i]) return 0;
    }
    return 1;
}

/* A few of spaCy's English tokenizer exceptions: emoticons and "and/or"
 * stay whole. */
static int is_special(const int32_t *c, size_t lo, size_t hi)
{
    static const word sp[] = {W(":)"), W(":("), W("):"), W("(:"), W(":P"), W(":p"), W(":D"), W(";)"), W("(="),
                              W("=)"), W(":-)"), W(":-("), W(":/"), W("<3"), W(":O"), W(":o"), W(";-)"), W("=D"),
                              W(":3"), W("and/or")};
    size_t m = hi - lo;
    if (m > 6 || m < 2) return 0;
    int32_t f = c[lo];
    if (f != ':' && f != ';' && f != '(' && f != ')' && f != '=' && f != '<' && f != 'a') return 0;
    for (size_t i = 0; i < WN_ARRAY_LEN(sp); i++) {
        size_t k = sp[i].n, j = 0;
        if (k != m) continue;
        while (j < k && c[lo + j] == sp[i].s[j]) j++;
        if (j == k) return 1;
    }
    return 0;
}

static inline size_t prefix_len(const int32_t *c, size_t lo, size_t hi)
{
    size_t d = dot_run(c, lo, hi);
    if (d >= 2) return d;
    if (c[lo] == 0x2026) return 1;
    if (c[lo] == '\'' && lo + 1 < hi && c[lo + 1] == '\'') return 2;
    return is_prefix_char(c[lo], lo + 1 < hi ? c[lo + 1] : -1) ? 1 : 0;
}

/* Abbreviations that keep their final '.' (from spaCy's English exceptions). */
static int is_abbrev(const int32_t *c, size_t lo, size_t hi)
{
    static const word ab[] = {W("mr."),   W("mrs."),  W("ms."),   W("dr."),    W("st."),   W("jr."),   W("sr."),
                              W("co."),   W("inc."),  W("ltd."),  W("corp."),  W("vs."),   W("mt."),   W("gen."),
                              W("gov."),  W("rep."),  W("sen."),  W("jan."),   W("feb."),  W("mar."),  W("apr."),
                              W("jun."),  W("jul."),  W("aug."),  W("sep."),   W("sept."), W("oct."),  W("nov."),
                              W("dec."),  W("calif."), W("fla."), W("mass."),  W("wash.")};
    size_t m = hi - lo;
    if (m == 2 && is_alpha(c[lo])) return 1; /* "p." */
    if (m >= 4 && c[hi - 3] == '.' && is_alpha(c[hi - 2])) return 1; /* "e.g." "a.m." */
    if (m < 3 || m > 6) return 0;
    for (size_t i = 0; i < WN_ARRAY_LEN(ab); i++)
        if (ascii_ieq(c + lo, m, ab[i])) return 1;
    return 0;
}

/* x is ' or ’ */
static inline int apos(int32_t x) { return x == '\'' || x == 0x2019; }
/* ASCII lowercase of x (others unchanged) */
static inline int32_t lc(int32_t x) { return x >= 'A' && x <= 'Z' ? x + 32 : x; }

static size_t suffix_len(const int32_t *c, size_t lo, size_t hi)
{
    size_t m = hi - lo;
    int32_t z = c[hi - 1], y = m >= 2 ? c[hi - 2] : -1;
    if (z == '.' && y == '.') {
        size_t j = hi;
        while (j > lo && c[j - 1] == '.') j--;
        return hi - j;
    }
    if (z == '\'' && y == '\'') return 2;
    if (z == 0x2026 || is_suffix_char(z)) return 1;
    if (m > 2 && (z == 's' || z == 'S') && apos(y)) return 2;
    if (m > 3 && apos(c[hi - 3])) {
        /* n't needs ' in the middle: here it would be ' first, so only 'll 're 've */
        int32_t a = lc(y), b = lc(z);
        if (((a == 'l' && b == 'l') || (a == 'r' && b == 'e') || (a == 'v' && b == 'e')) && is_alpha(c[hi - 4]))
            return 3;
    }
    if (m > 3 && lc(c[hi - 3]) == 'n' && apos(y) && lc(z) == 't' && is_alpha(c[hi - 4])) return 3;
    if (m > 2 && apos(y) && (lc(z) == 'm' || lc(z) == 'd') && is_alpha(c[hi - 3])) return 2;
    if (m >= 2 && (z == '+' || z == '%' || is_currency(z)) && is_digit(y)) return 1;
    if (z == '.' && m >= 2 && !is_abbrev(c, lo, hi)) {
        if (is_digit(y) || is_lower_or_uncased(y) || y == '%' || y == 0xB2 || y == '-' || y == '+' ||
            is_uni_punct(y) || is_quote(y))
            return 1;
        if (m >= 3 && is_upper(y) && is_upper(c[hi - 3])) return 1;
    }
    return 0;
}

/* Looks like spaCy's URL_MATCH: optional scheme://, a dotted host whose
 * last label has two or more letters, then anything. */
static int url_like(const int32_t *c, size_t lo, size_t hi)
{
    size_t i = lo;
    for (size_t j = lo; j + 2 < hi; j++)
        if (c[j] == ':' && c[j + 1] == '/' && c[j + 2] == '/') {
            i = j + 3;
            break;
        }
    size_t h = i;
    while (h < hi && c[h] != '/' && c[h] != ':' && c[h] != '?' && c[h] != '#') h++;
    /* host = labels of [alnum, '-', non-ASCII] separated by '.' */
    size_t dots = 0, label = 0, last_alpha = 1;
    for (size_t j = i; j < h; j++) {
        if (c[j] == '.') {
            if (!label) return 0;
            dots++;
            label = 0;
            last_alpha = 1;
        } else if (is_alnum(c[j]) || c[j] == '-' || c[j] >= 0x80 || (c[j] == '@' && !dots)) {
            label++;
            if (!is_lower_or_uncased(c[j])) last_alpha = 0; /* the TLD is lowercase */
        } else {
            return 0;
        }
    }
    return dots > 0 && label >= 2 && last_alpha;
}

/* Splits c[lo..hi) at infixes and emits the pieces. */
static wn_err infixes(const chunk *k, size_t lo, size_t hi)
{
    const int32_t *c = k->c;
    size_t start = lo;
    wn_err e;
    for (size_t i = lo + 1; i + 1 < hi;) {
        size_t len = 0;
        int32_t p = c[i - 1], x = c[i], nx = c[i + 1];
        if ((uint32_t)x < 0x80 && (ascii_k[x] & K_ALNUM)) { /* no infix starts at a letter or digit */
            i++;
            continue;
        }
        size_t d = dot_run(c, i, hi);
        if (d >= 2 && i + d < hi) len = d;
        else if (x == 0x2026 || is_icon(x)) len = 1;
        else if ((x == '+' || x == '-' || x == '*' || x == '^') && is_digit(p) && (is_digit(nx) || nx == '-')) len = 1;
        else if (x == '.' && (is_lower(p) || is_quote(p)) && (is_upper(nx) || is_quote(nx))) len = 1;
        else if (x == ',' && is_alpha(p) && is_alpha(nx)) len = 1;
        else if (is_hyphen(x) && is_alnum(p)) {
            size_t j = i;
            while (j < hi && is_hyphen(c[j]) && j - i < 3) j++;
            if (j < hi && is_alpha(c[j])) len = j - i;
        } else if ((x == ':' || x == '<' || x == '>' || x == '=' || x == '/') && is_alnum(p) && is_alpha(nx)) {
            len = 1;
        }
        if (!len) {
            i++;
            continue;
        }
        if ((e = emit(k, start, i)) || (e = emit(k, i, i + len))) return e;
        start = i + len;
        i = start + 1;
    }
    return emit(k, start, hi);
}

static wn_err split_chunk(wn_ts_scratch *sc, const char *s, size_t a, size_t b, int ascii)
{
    /* decode */
    size_t m = 0;
    if (b - a + 1 > sc->cap_cp) {
        size_t cap = (b - a + 1) * 2;
        int32_t *cp = wn_realloc(sc->cp, cap * sizeof *cp);
        if (!cp) return WN_ERR_NOMEM;
        sc->cp = cp;
        uint32_t *o = wn_realloc(sc->cp_off, cap * sizeof *o);
        if (!o) return WN_ERR_NOMEM;
        sc->cp_off = o;
        sc->cap_cp = cap;
    }
    if (ascii) {
        for (size_t i = a; i < b; i++) {
            sc->cp_off[m] = (uint32_t)i;
            sc->cp[m++] = (unsigned char)s[i];
        }
    } else {
        for (size_t i = a; i < b;) {
            sc->cp_off[m] = (uint32_t)i;
            unsigned char u = (unsigned char)s[i];
            sc->cp[m++] = u < 0x80 ? (int32_t)s[i++] : wn_utf8_next(s, b, &i);
        }
    }
    sc->cp_off[m] = (uint32_t)b;
    chunk k = {sc, sc->cp, sc->cp_off};
    const int32_t *c = sc->cp;

    size_t lo = 0, hi = m, n_suf = 0;
    wn_err e;
    while (lo < hi && !is_special(c, lo, hi)) {
        size_t p = prefix_len(c, lo, hi);
        if (p) {
            if ((e = emit(&k, lo, lo + p))) return e;
            lo += p;
            continue;
        }
        size_t q = suffix_len(c, lo, hi);
        if (!q || q == hi - lo) break;
        if ((e = push_tok(&sc->stack, &n_suf, &sc->cap_stack, (wn_ts_tok){(uint32_t)(hi - q), (uint32_t)hi, 0})))
            return e;
        hi -= q;
    }
    if (lo < hi) {
        if (is_special(c, lo, hi) || url_like(c, lo, hi)) e = emit(&k, lo, hi);
        else e = infixes(&k, lo, hi);
        if (e) return e;
    }
    while (n_suf--)
        if ((e = emit(&k, sc->stack[n_suf].off, sc->stack[n_suf].len))) return e;
    return WN_OK;
}

/* spaCy re-joins token runs that spell a special case (v3's special-case
 * matcher): here emoticons of two tokens and a single letter before '.'. */
static void merge_specials(wn_ts_scratch *sc, const char *s, size_t from)
{
    size_t k = from;
    for (size_t i = from; i < sc->n_tok; i++) {
        wn_ts_tok t = sc->tok[i];
        if (k > from) {
            wn_ts_tok *p = &sc->tok[k - 1];
            int merge = 0;
            if (p->off + p->len == t.off && p->cps + t.cps <= 3) {
                int32_t c[3];
                size_t m = 0, j = p->off;
                while (j < t.off + t.len && m < 3) c[m++] = wn_utf8_next(s, t.off + t.len, &j);
                merge = is_special(c, 0, m) || (m == 2 && c[1] == '.' && p->cps == 1 && is_alpha(c[0]));
            }
            if (merge) {
                p->len += t.len;
                p->cps += t.cps;
                continue;
            }
        }
        sc->tok[k++] = t;
    }
    sc->n_tok = k;
}

/* Whitespace at s[i], i < n, for a byte >= 0x80; *len = its length. */
static int is_space_u(const char *s, size_t n, size_t i, size_t *len)
{
    size_t j = i;
    int32_t cp = wn_utf8_next(s, n, &j);
    *len = j - i;
    return cp >= 0 && wn_is_space(cp);
}

wn_err wn_ts_words(wn_ts_scratch *sc, const char *s, size_t n)
{
    WN_CHECK(n < UINT32_MAX);
    sc->n_tok = 0;
    const unsigned char *u = (const unsigned char *)s;
    size_t i = 0, k;
    while (i < n) {
        /* skip whitespace */
        while (i < n) {
            if (u[i] < 0x80) {
                if (!(ascii_k[u[i]] & K_SPACE)) break;
                i++;
            } else {
                if (!is_space_u(s, n, i, &k)) break;
                i += k;
            }
        }
        /* the chunk up to the next whitespace; note whether it is ASCII and
         * whether it is only letters and digits */
        size_t a = i;
        unsigned all = K_ALNUM;
        int ascii = 1;
        while (i < n) {
            if (u[i] < 0x80) {
                unsigned t = ascii_k[u[i]];
                if (t & K_SPACE) break;
                all &= t;
                i++;
            } else {
                if (is_space_u(s, n, i, &k)) break;
                ascii = 0;
                i += k;
            }
        }
        if (i == a) continue;
        if (ascii && (all & K_ALNUM)) {
            /* [A-Za-z0-9]+: no prefix, suffix, infix or special case applies */
            if (sc->n_tok == sc->cap_tok && grow_tok(&sc->tok, &sc->cap_tok)) return WN_ERR_NOMEM;
            sc->tok[sc->n_tok++] = (wn_ts_tok){(uint32_t)a, (uint32_t)(i - a), (uint32_t)(i - a)};
            continue;
        }
        size_t from = sc->n_tok;
        wn_err e = split_chunk(sc, s, a, i, ascii);
        if (e) return e;
        if (sc->n_tok - from > 1) merge_specials(sc, s, from);
    }
    return WN_OK;
}

long wn_ts_sentences(wn_ts_scratch *sc, const char *s, size_t n)
{
    if (wn_ts_words(sc, s, n)) return -1;
    if (!sc->n_tok) return 0;
    long count = 1;
    int seen = 0;
    const unsigned char *u = (const unsigned char *)s;
    for (size_t i = 0; i < sc->n_tok; i++) {
        const wn_ts_tok *t = &sc->tok[i];
        int terminal, all_punct = 1;
        if (t->cps == 1 && u[t->off] < 0x80) {
            int32_t c = u[t->off];
            terminal = c == '.' || c == '!' || c == '?';
            all_punct = (ascii_k[c] & K_UPUNCT) != 0;
        } else {
            size_t j = t->off;
            int32_t c = wn_utf8_next(s, n, &j);
            terminal = t->cps == 1 && wn_ts_is_terminal(c);
            for (size_t q = t->off; q < t->off + t->len && all_punct;) {
                if (u[q] < 0x80) all_punct = (ascii_k[u[q++]] & K_UPUNCT) != 0;
                else all_punct = is_uni_punct(wn_utf8_next(s, n, &q));
            }
        }
        if (seen && !all_punct && !terminal) {
            count++;
            seen = 0;
        } else if (terminal) {
            seen = 1;
        }
    }
    return count;
}

void wn_ts_scratch_free(wn_ts_scratch *sc)
{
    if (!sc) return;
    wn_free(sc->tok);
    wn_free(sc->stack);
    wn_free(sc->cp);
    wn_free(sc->cp_off);
    wn_free(sc->slot);
    wn_free(sc->h);
    memset(sc, 0, sizeof *sc);
}

/* ---- hash counter ---------------------------------------------------------- */

uint64_t wn_ts_hash(const void *p, size_t n)
{
    uint64_t h = XXH3_64bits(p, n);
    return h ? h : 1;
}

wn_err wn_ts_count_reset(wn_ts_scratch *sc, size_t expected)
{
    size_t cap = 64;
    while (cap < expected * 2) cap *= 2;
    if (cap > sc->cap_slot) {
        wn_ts_slot *p = wn_realloc(sc->slot, cap * sizeof *p);
        if (!p) return WN_ERR_NOMEM;
        sc->slot = p;
        sc->cap_slot = cap;
    }
    /* a big table stays allocated; a small document uses (and clears) only
     * the first `cap` slots */
    memset(sc->slot, 0, cap * sizeof *sc->slot);
    sc->n_slot = cap;
    return WN_OK;
}
