/*
 * gopher_repetition.c - Gopher's repetition rules (Rae et al. 2021, table
 * A1) as datatrove's GopherRepetitionFilter computes them, with the same
 * defaults and drop reasons. A threshold of 0 switches its rule off.
 *
 * Lengths are code points; L = len(text). Checks in order, first failure wins:
 *   paragraphs = text.strip() split on runs of two or more '\n':
 *     dup_para_frac       duplicate paragraphs / paragraphs > 0.3
 *     dup_para_char_frac  chars of duplicate paragraphs / L > 0.2
 *   lines = text split on runs of '\n':
 *     dup_line_frac       duplicate lines / lines > 0.3
 *     dup_line_char_frac  chars of duplicate lines / L > 0.2
 *   (a "duplicate" is every occurrence after the first of an identical element)
 *   words = spaCy-like tokens (src/textstat.h):
 *     top_N_gram (N=2,3,4)  the most frequent N-gram (ties: the first seen), its
 *                           length joined by single spaces times its count, / L
 *                           > 0.20 / 0.18 / 0.16
 *     duplicated_N_n_grams (N=5..10)  scan left to right; an N-gram seen before
 *                           adds its length (words concatenated, no spaces) and
 *                           the scan jumps N words, else it is remembered and the
 *                           scan moves one word; total / L > 0.15 .. 0.10
 * Elements are compared by 64-bit hashes: xxh3 of the bytes; for n-grams a
 * polynomial hash of the word hashes rolled along the words (O(1) per
 * position) and mixed, so n-grams are equal when their words are equal.
 */
#include <stdio.h>
#include <string.h>

#include "../src/stage.h"
#include "../src/text.h"
#include "../src/textstat.h"

static const wn_param_def params[] = {
    {"mode", WN_P_ENUM, "drop", 0, 0, "drop|annotate",
     "drop: drop failing documents; annotate: keep them and add winnow.gopher_repetition (reason or \"pass\")"},
    {"dup_line_frac", WN_P_FLOAT, "0.3", 0, 1, NULL, "most duplicate lines, as a fraction of lines (0 = off)"},
    {"dup_para_frac", WN_P_FLOAT, "0.3", 0, 1, NULL, "most duplicate paragraphs, as a fraction (0 = off)"},
    {"dup_line_char_frac", WN_P_FLOAT, "0.2", 0, 1, NULL, "most characters in duplicate lines (0 = off)"},
    {"dup_para_char_frac", WN_P_FLOAT, "0.2", 0, 1, NULL, "most characters in duplicate paragraphs (0 = off)"},
    {"top_2_gram", WN_P_FLOAT, "0.20", 0, 1e9, NULL, "most characters in the top 2-gram (0 = off)"},
    {"top_3_gram", WN_P_FLOAT, "0.18", 0, 1e9, NULL, "most characters in the top 3-gram (0 = off)"},
    {"top_4_gram", WN_P_FLOAT, "0.16", 0, 1e9, NULL, "most characters in the top 4-gram (0 = off)"},
    {"dup_5_gram", WN_P_FLOAT, "0.15", 0, 1, NULL, "most characters in duplicate 5-grams (0 = off)"},
    {"dup_6_gram", WN_P_FLOAT, "0.14", 0, 1, NULL, "most characters in duplicate 6-grams (0 = off)"},
    {"dup_7_gram", WN_P_FLOAT, "0.13", 0, 1, NULL, "most characters in duplicate 7-grams (0 = off)"},
    {"dup_8_gram", WN_P_FLOAT, "0.12", 0, 1, NULL, "most characters in duplicate 8-grams (0 = off)"},
    {"dup_9_gram", WN_P_FLOAT, "0.11", 0, 1, NULL, "most characters in duplicate 9-grams (0 = off)"},
    {"dup_10_gram", WN_P_FLOAT, "0.10", 0, 1, NULL, "most characters in duplicate 10-grams (0 = off)"},
};

static const char *const top_reason[] = {"top_2_gram", "top_3_gram", "top_4_gram"};
static const char *const dup_reason[] = {"duplicated_5_n_grams", "duplicated_6_n_grams", "duplicated_7_n_grams",
                                         "duplicated_8_n_grams", "duplicated_9_n_grams", "duplicated_10_n_grams"};

typedef struct {
    wn_ts_scratch sc;
    uint64_t *cps_prefix; /* code points of words [0, i) */
    uint64_t *key;        /* n-gram keys by position */
    size_t cap_prefix;    /* of cps_prefix and key */
    char pad[64];
} tls;

typedef struct {
    int annotate;
    double line_frac, para_frac, line_char, para_char, top[3], dup[6];
    tls *t;
    int n_t;
} gopher_repetition;

static wn_err gr_open(wn_stage *st)
{
    gopher_repetition *s = st->state;
    s->annotate = !strcmp(wn_param(st, "mode")->s, "annotate");
    s->line_frac = wn_param(st, "dup_line_frac")->f;
    s->para_frac = wn_param(st, "dup_para_frac")->f;
    s->line_char = wn_param(st, "dup_line_char_frac")->f;
    s->para_char = wn_param(st, "dup_para_char_frac")->f;
    char name[32];
    for (int n = 2; n <= 4; n++) {
        snprintf(name, sizeof name, "top_%d_gram", n);
        s->top[n - 2] = wn_param(st, name)->f;
    }
    for (int n = 5; n <= 10; n++) {
        snprintf(name, sizeof name, "dup_%d_gram", n);
        s->dup[n - 5] = wn_param(st, name)->f;
    }
    s->n_t = st->threads > 0 ? st->threads : 1;
    s->t = wn_calloc((size_t)s->n_t, sizeof *s->t);
    if (!s->t) return wn_fail(&st->err, WN_ERR_NOMEM, "out of memory");
    return WN_OK;
}

/* find_duplicates over the pieces of p[0..n) between separators, a separator
 * being a run of >= min_run '\n'. *elems gets the piece count. */
static wn_err dup_pieces(wn_ts_scratch *sc, const char *p, size_t n, int min_run, size_t *elems, size_t *dups,
                         size_t *dup_chars)
{
    *elems = *dups = *dup_chars = 0;
    size_t est = 1;
    for (size_t i = 0; i < n; i++) est += p[i] == '\n';
    wn_err e = wn_ts_count_reset(sc, est);
    if (e) return e;
    size_t a = 0;
    for (;;) {
        /* find the next separator at or after a */
        size_t b = a, run = 0;
        while (b < n) {
            const char *q = memchr(p + b, '\n', n - b);
            if (!q) { b = n; break; }
            b = (size_t)(q - p);
            size_t r = b;
            while (r < n && p[r] == '\n') r++;
            if ((int)(r - b) >= min_run) { run = r - b; break; }
            b = r;
        }
        (*elems)++;
        if (wn_ts_count_add(sc, wn_ts_hash(p + a, b - a), 0, NULL) > 1) {
            (*dups)++;
            *dup_chars += wn_utf8_count(p + a, b - a);
        }
        if (b >= n) break;
        a = b + run;
    }
    return WN_OK;
}

/* Rolling n-gram hash over 64-bit word hashes: v = sum h[i+j] * B^(g-1-j). */
#define ROLL_B 0x9E3779B97F4A7C15ull
typedef struct {
    uint64_t v, top; /* top = B^(g-1) */
} ngram_roll;

static void roll_start(ngram_roll *r, const uint64_t *h, int g)
{
    r->v = 0;
    r->top = 1;
    for (int j = 0; j < g; j++) {
        r->v = r->v * ROLL_B + h[j];
        if (j) r->top *= ROLL_B;
    }
}

/* from the n-gram at i - 1 to the one at i */
static inline void roll_next(ngram_roll *r, const uint64_t *h, size_t i, int g)
{
    r->v = (r->v - h[i - 1] * r->top) * ROLL_B + h[i + (size_t)g - 1];
}

static inline uint64_t roll_key(const ngram_roll *r)
{
    uint64_t k = r->v;
    k ^= k >> 33;
    k *= 0xff51afd7ed558ccdull;
    k ^= k >> 33;
    k *= 0xc4ceb9fe1a85ec53ull;
    k ^= k >> 33;
    return k ? k : 1;
}

typedef struct {
    double para, para_char, line, line_char, top[3], dup[6];
} ratios;

static const char *verdict(const gopher_repetition *s, tls *t, const wn_buf *tx, ratios *r, wn_err *e)
{
    memset(r, 0, sizeof *r);
    const char *p = tx->p ? tx->p : "";
    size_t n = tx->len;
    if (!n) return "empty";
    wn_ts_scratch *sc = &t->sc;
    double L = (double)wn_utf8_count(p, n);
    size_t elems, dups, chars;

    wn_span st = wn_ts_strip(p, n);
    if ((*e = dup_pieces(sc, st.p, st.n, 2, &elems, &dups, &chars))) return NULL;
    r->para = (double)dups / (double)elems;
    r->para_char = (double)chars / L;
    if (s->para_frac > 0 && r->para > s->para_frac) return "dup_para_frac";
    if (s->para_char > 0 && r->para_char > s->para_char) return "dup_para_char_frac";

    if ((*e = dup_pieces(sc, p, n, 1, &elems, &dups, &chars))) return NULL;
    r->line = (double)dups / (double)elems;
    r->line_char = (double)chars / L;
    if (s->line_frac > 0 && r->line > s->line_frac) return "dup_line_frac";
    if (s->line_char > 0 && r->line_char > s->line_char) return "dup_line_char_frac";

    if ((*e = wn_ts_words(sc, p, n))) return NULL;
    size_t nw = sc->n_tok;
    if (nw + 1 > sc->cap_h || nw + 1 > t->cap_prefix) {
        size_t cap = (nw + 1) * 2;
        uint64_t *h = wn_realloc(sc->h, cap * sizeof *h);
        if (!h) { *e = WN_ERR_NOMEM; return NULL; }
        sc->h = h;
        sc->cap_h = cap;
        uint64_t *c = wn_realloc(t->cps_prefix, cap * sizeof *c);
        if (!c) { *e = WN_ERR_NOMEM; return NULL; }
        t->cps_prefix = c;
        uint64_t *k = wn_realloc(t->key, cap * sizeof *k);
        if (!k) { *e = WN_ERR_NOMEM; return NULL; }
        t->key = k;
        t->cap_prefix = cap;
    }
    const uint64_t *cp = t->cps_prefix;
    t->cps_prefix[0] = 0;
    for (size_t i = 0; i < nw; i++) {
        sc->h[i] = wn_ts_hash(p + sc->tok[i].off, sc->tok[i].len);
        t->cps_prefix[i + 1] = cp[i] + sc->tok[i].cps;
    }
    /* n-gram keys: a polynomial hash of the word hashes, rolled along the
     * words (O(1) per position), then mixed */
    for (int g = 2; g <= 4; g++) {
        if (nw < (size_t)g) continue;
        if ((*e = wn_ts_count_reset(sc, nw))) return NULL;
        ngram_roll roll;
        roll_start(&roll, sc->h, g);
        uint32_t best = 0, best_first = 0;
        for (size_t i = 0; i + g <= nw; i++) {
            if (i) roll_next(&roll, sc->h, i, g);
            uint32_t first;
            uint32_t c = wn_ts_count_add(sc, roll_key(&roll), (uint32_t)i, &first);
            if (c > best || (c == best && first < best_first)) {
                best = c;
                best_first = first;
            }
        }
        double len = (double)(cp[best_first + g] - cp[best_first] + (uint64_t)(g - 1));
        r->top[g - 2] = len * best / L;
        if (s->top[g - 2] > 0 && r->top[g - 2] > s->top[g - 2]) return top_reason[g - 2];
    }
    for (int g = 5; g <= 10; g++) {
        if ((*e = wn_ts_count_reset(sc, nw))) return NULL;
        uint64_t rep = 0;
        if (nw >= (size_t)g) {
            /* the keys of all positions first (the scan skips some), then the scan */
            uint64_t *key = t->key;
            ngram_roll roll;
            roll_start(&roll, sc->h, g);
            key[0] = roll_key(&roll);
            for (size_t i = 1; i + g <= nw; i++) {
                roll_next(&roll, sc->h, i, g);
                key[i] = roll_key(&roll);
            }
            for (size_t i = 0; i + g <= nw;) {
                if (wn_ts_count_add(sc, key[i], 0, NULL) > 1) {
                    rep += cp[i + g] - cp[i];
                    i += (size_t)g;
                } else {
                    i++;
                }
            }
        }
        r->dup[g - 5] = (double)rep / L;
        if (s->dup[g - 5] > 0 && r->dup[g - 5] > s->dup[g - 5]) return dup_reason[g - 5];
    }
    return NULL;
}

static wn_err annotate(wn_doc *d, const char *reason, const ratios *r)
{
    char v[640];
    snprintf(v, sizeof v, "\"%s\"", reason ? reason : "pass");
    wn_err e = wn_doc_attr(d, "gopher_repetition", v);
    if (e) return e;
    snprintf(v, sizeof v,
             "{\"dup_para_frac\":%.4g,\"dup_para_char_frac\":%.4g,\"dup_line_frac\":%.4g,\"dup_line_char_frac\":%.4g,"
             "\"top_2_gram\":%.4g,\"top_3_gram\":%.4g,\"top_4_gram\":%.4g,\"dup_5_gram\":%.4g,\"dup_6_gram\":%.4g,"
             "\"dup_7_gram\":%.4g,\"dup_8_gram\":%.4g,\"dup_9_gram\":%.4g,\"dup_10_gram\":%.4g}",
             r->para, r->para_char, r->line, r->line_char, r->top[0], r->top[1], r->top[2], r->dup[0], r->dup[1],
             r->dup[2], r->dup[3], r->dup[4], r->dup[5]);
    return wn_doc_attr(d, "gopher_repetition_stats", v);
}

static wn_err gr_doc(wn_stage *st, int thread, wn_doc *d)
{
    gopher_repetition *s = st->state;
    ratios r;
    wn_err e = WN_OK;
    const char *why = verdict(s, &s->t[thread], &d->text, &r, &e);
    if (!e && s->annotate) e = annotate(d, why, &r);
    else if (!e) d->drop = why;
    return e;
}

static wn_err gr_process(wn_stage *st, wn_batch *b)
{
    return wn_stage_each_doc(st, b, ((gopher_repetition *)st->state)->n_t, gr_doc);
}

static void gr_close(wn_stage *st)
{
    gopher_repetition *s = st->state;
    for (int i = 0; s->t && i < s->n_t; i++) {
        wn_ts_scratch_free(&s->t[i].sc);
        wn_free(s->t[i].cps_prefix);
        wn_free(s->t[i].key);
    }
    wn_free(s->t);
}

const wn_stage_def wn_stage_gopher_repetition = {
    .name = "gopher_repetition",
    .summary = "Gopher repetition rules (duplicate lines/paragraphs, top and duplicate n-grams)",
    .doc = "datatrove's GopherRepetitionFilter with its defaults; L = code points of the text.\n"
           "Paragraphs (strip(), split on \\n\\n+) and lines (split on \\n+): duplicates (every repeat\n"
           "of an identical element) / count <= 0.3, their code points / L <= 0.2. Words (spaCy-like\n"
           "tokens): the most frequent 2/3/4-gram, its length joined with spaces times its count, / L\n"
           "<= 0.20/0.18/0.16; duplicate 5..10-grams found by a left-to-right scan that jumps past a\n"
           "repeat, their length (words concatenated) / L <= 0.15/0.14/0.13/0.12/0.11/0.10.\n"
           "A 0 threshold is off. Drop reasons (datatrove's): empty, dup_para_frac, dup_para_char_frac,\n"
           "dup_line_frac, dup_line_char_frac, top_N_gram, duplicated_N_n_grams. mode: annotate adds\n"
           "winnow.gopher_repetition and winnow.gopher_repetition_stats instead of dropping.",
    .params = params,
    .n_params = WN_ARRAY_LEN(params),
    .state_size = sizeof(gopher_repetition),
    .open = gr_open,
    .process = gr_process,
    .close = gr_close,
};
