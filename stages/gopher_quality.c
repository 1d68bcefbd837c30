/*
 * gopher_quality.c - Gopher's quality rules (Rae et al. 2021, table A1) as
 * datatrove's GopherQualityFilter computes them, with the same defaults and
 * drop reasons. A threshold of 0 switches its rule off.
 *
 * Words are src/textstat.h's approximation of spaCy's English tokenizer
 * (datatrove's word splitter): punctuation becomes tokens of its own.
 * "Non-symbol words" are tokens with a character outside datatrove's
 * PUNCTUATION_SET. Rules, first failure wins:
 *   gopher_short_doc / gopher_long_doc     non-symbol words < min / > max
 *   gopher_below_avg_threshold / _above_   mean code points per non-symbol word
 *   gopher_too_many_hashes                 count("#") / all tokens > max_symbol_word_ratio
 *   gopher_too_many_ellipsis               (count("...") + count("…")) / all tokens > same
 *   gopher_too_many_bullets                lines (str.splitlines) whose lstrip starts
 *                                          with "•" or "-" / lines > max_bullet_lines_ratio
 *   gopher_too_many_end_ellipsis           lines whose rstrip ends with "..." or "…"
 *   gopher_below_alpha_threshold           tokens with a letter / all tokens < min_alpha_words_ratio
 *   gopher_enough_stop_words               distinct stop words present (case-sensitive
 *                                          exact tokens) < min_stop_words
 */
#include <stdio.h>
#include <string.h>

#include "../src/stage.h"
#include "../src/text.h"
#include "../src/textstat.h"

static const wn_param_def params[] = {
    {"mode", WN_P_ENUM, "drop", 0, 0, "drop|annotate",
     "drop: drop failing documents; annotate: keep them and add winnow.gopher_quality (reason or \"pass\") "
     "and winnow.gopher_quality_stats"},
    {"min_doc_words", WN_P_INT, "50", 0, 1e15, NULL, "fewest non-symbol words (0 = off)"},
    {"max_doc_words", WN_P_INT, "100000", 0, 1e15, NULL, "most non-symbol words (0 = off)"},
    {"min_avg_word_length", WN_P_FLOAT, "3", 0, 1e9, NULL, "lowest mean word length in code points (0 = off)"},
    {"max_avg_word_length", WN_P_FLOAT, "10", 0, 1e9, NULL, "highest mean word length (0 = off)"},
    {"max_symbol_word_ratio", WN_P_FLOAT, "0.1", 0, 1e9, NULL, "most '#' or ellipses per word (0 = off)"},
    {"max_bullet_lines_ratio", WN_P_FLOAT, "0.9", 0, 1, NULL, "most lines starting with a bullet (0 = off)"},
    {"max_ellipsis_lines_ratio", WN_P_FLOAT, "0.3", 0, 1, NULL, "most lines ending with an ellipsis (0 = off)"},
    {"min_alpha_words_ratio", WN_P_FLOAT, "0.8", 0, 1, NULL, "fewest words with a letter, as a fraction (0 = off)"},
    {"min_stop_words", WN_P_INT, "2", 0, 8, NULL,
     "fewest distinct stop words among the, be, to, of, and, that, have, with (0 = off)"},
};

typedef struct {
    wn_ts_scratch sc;
    char pad[64];
} tls;

typedef struct {
    int annotate;
    int64_t min_words, max_words, min_stop;
    double min_len, max_len, max_symbol, max_bullet, max_ellipsis, min_alpha;
    tls *t;
    int n_t;
} gopher_quality;

typedef struct {
    size_t tokens, words, alpha, lines, bullets, ellipsis_lines, hashes, ellipses;
    double mean_len;
    int stop;
} stats;

static wn_err gq_open(wn_stage *st)
{
    gopher_quality *s = st->state;
    s->annotate = !strcmp(wn_param(st, "mode")->s, "annotate");
    s->min_words = wn_param(st, "min_doc_words")->i;
    s->max_words = wn_param(st, "max_doc_words")->i;
    s->min_len = wn_param(st, "min_avg_word_length")->f;
    s->max_len = wn_param(st, "max_avg_word_length")->f;
    s->max_symbol = wn_param(st, "max_symbol_word_ratio")->f;
    s->max_bullet = wn_param(st, "max_bullet_lines_ratio")->f;
    s->max_ellipsis = wn_param(st, "max_ellipsis_lines_ratio")->f;
    s->min_alpha = wn_param(st, "min_alpha_words_ratio")->f;
    s->min_stop = wn_param(st, "min_stop_words")->i;
    s->n_t = st->threads > 0 ? st->threads : 1;
    s->t = wn_calloc((size_t)s->n_t, sizeof *s->t);
    if (!s->t) return wn_fail(&st->err, WN_ERR_NOMEM, "out of memory");
    return WN_OK;
}

/* Python's str.count: non-overlapping occurrences. */
static size_t count_sub(const char *p, size_t n, const char *needle, size_t k)
{
    size_t c = 0;
    const char *end = p + n;
    while ((size_t)(end - p) >= k) {
        const char *q = memmem(p, (size_t)(end - p), needle, k);
        if (!q) break;
        c++;
        p = q + k;
    }
    return c;
}

static int stop_word(const char *w, size_t n)
{
    switch (n) {
    case 2:
        if (w[0] == 'b' && w[1] == 'e') return 1;
        if (w[0] == 't' && w[1] == 'o') return 2;
        if (w[0] == 'o' && w[1] == 'f') return 3;
        return -1;
    case 3:
        if (!memcmp(w, "the", 3)) return 0;
        if (!memcmp(w, "and", 3)) return 4;
        return -1;
    case 4:
        if (!memcmp(w, "that", 4)) return 5;
        if (!memcmp(w, "have", 4)) return 6;
        if (!memcmp(w, "with", 4)) return 7;
        return -1;
    default:
        return -1;
    }
}

static void line_stats(const char *p, size_t n, stats *m)
{
    size_t a = 0;
    while (a < n) {
        size_t k, b = wn_ts_line_end(p, n, a, &k);
        wn_span l = wn_ts_strip(p + a, b - a);
        m->lines++;
        if (l.n && (l.p[0] == '-' || (l.n >= 3 && !memcmp(l.p, "\xe2\x80\xa2", 3)))) m->bullets++;
        if (l.n >= 3 && (!memcmp(l.p + l.n - 3, "...", 3) || !memcmp(l.p + l.n - 3, "\xe2\x80\xa6", 3)))
            m->ellipsis_lines++;
        a = b + k;
    }
}

static const char *verdict(const gopher_quality *s, wn_ts_scratch *sc, const wn_buf *t, stats *m, wn_err *e)
{
    memset(m, 0, sizeof *m);
    const char *p = t->p ? t->p : "";
    if ((*e = wn_ts_words(sc, p, t->len))) return NULL;
    size_t len_sum = 0;
    unsigned stop_seen = 0;
    m->tokens = sc->n_tok;
    for (size_t i = 0; i < sc->n_tok; i++) {
        const wn_ts_tok *w = &sc->tok[i];
        int symbol = 1, alpha = 0;
        for (size_t j = w->off; j < w->off + w->len;) {
            unsigned char u = (unsigned char)p[j];
            if (u < 0x80) { /* wn_ts_is_punct / wn_ts_is_alpha on ASCII */
                int letter = (unsigned)((u | 0x20) - 'a') < 26;
                if (letter || (unsigned)(u - '0') < 10 || u == ' ' || u == '\t' || u == '\n') symbol = 0;
                alpha |= letter;
                j++;
                continue;
            }
            int32_t c = wn_utf8_next(p, t->len, &j);
            if (!wn_ts_is_punct(c)) symbol = 0;
            if (wn_ts_is_alpha(c)) alpha = 1;
        }
        if (!symbol) { m->words++; len_sum += w->cps; }
        m->alpha += (size_t)alpha;
        int k = stop_word(p + w->off, w->len);
        if (k >= 0) stop_seen |= 1u << k;
    }
    m->stop = __builtin_popcount(stop_seen);
    m->mean_len = m->words ? (double)len_sum / (double)m->words : 0;
    m->hashes = count_sub(p, t->len, "#", 1);
    m->ellipses = count_sub(p, t->len, "...", 3) + count_sub(p, t->len, "\xe2\x80\xa6", 3);
    line_stats(p, t->len, m);

    double nt = (double)m->tokens, nl = (double)m->lines;
    if (s->min_words && (int64_t)m->words < s->min_words) return "gopher_short_doc";
    if (s->max_words && (int64_t)m->words > s->max_words) return "gopher_long_doc";
    if (m->words && s->min_len > 0 && m->mean_len < s->min_len) return "gopher_below_avg_threshold";
    if (m->words && s->max_len > 0 && m->mean_len > s->max_len) return "gopher_above_avg_threshold";
    if (m->tokens && s->max_symbol > 0 && (double)m->hashes / nt > s->max_symbol) return "gopher_too_many_hashes";
    if (m->tokens && s->max_symbol > 0 && (double)m->ellipses / nt > s->max_symbol) return "gopher_too_many_ellipsis";
    if (m->lines && s->max_bullet > 0 && (double)m->bullets / nl > s->max_bullet) return "gopher_too_many_bullets";
    if (m->lines && s->max_ellipsis > 0 && (double)m->ellipsis_lines / nl > s->max_ellipsis)
        return "gopher_too_many_end_ellipsis";
    if (m->tokens && s->min_alpha > 0 && (double)m->alpha / nt < s->min_alpha) return "gopher_below_alpha_threshold";
    if (s->min_stop && m->stop < s->min_stop) return "gopher_enough_stop_words";
    return NULL;
}

static wn_err annotate(wn_doc *d, const char *reason, const stats *m)
{
    char v[512];
    snprintf(v, sizeof v, "\"%s\"", reason ? reason : "pass");
    wn_err e = wn_doc_attr(d, "gopher_quality", v);
    if (e) return e;
    snprintf(v, sizeof v,
             "{\"words\":%zu,\"tokens\":%zu,\"mean_word_length\":%.4g,\"hash_ratio\":%.4g,\"ellipsis_ratio\":%.4g,"
             "\"bullet_lines_ratio\":%.4g,\"ellipsis_lines_ratio\":%.4g,\"alpha_words_ratio\":%.4g,\"stop_words\":%d}",
             m->words, m->tokens, m->mean_len, m->tokens ? (double)m->hashes / (double)m->tokens : 0,
             m->tokens ? (double)m->ellipses / (double)m->tokens : 0,
             m->lines ? (double)m->bullets / (double)m->lines : 0,
             m->lines ? (double)m->ellipsis_lines / (double)m->lines : 0,
             m->tokens ? (double)m->alpha / (double)m->tokens : 0, m->stop);
    return wn_doc_attr(d, "gopher_quality_stats", v);
}

static wn_err gq_doc(wn_stage *st, int thread, wn_doc *d)
{
    gopher_quality *s = st->state;
    stats m;
    wn_err e = WN_OK;
    const char *r = verdict(s, &s->t[thread].sc, &d->text, &m, &e);
    if (!e && s->annotate) e = annotate(d, r, &m);
    else if (!e) d->drop = r;
    return e;
}

static wn_err gq_process(wn_stage *st, wn_batch *b)
{
    return wn_stage_each_doc(st, b, ((gopher_quality *)st->state)->n_t, gq_doc);
}

static void gq_close(wn_stage *st)
{
    gopher_quality *s = st->state;
    for (int i = 0; s->t && i < s->n_t; i++) wn_ts_scratch_free(&s->t[i].sc);
    wn_free(s->t);
}

const wn_stage_def wn_stage_gopher_quality = {
    .name = "gopher_quality",
    .summary = "Gopher quality rules (word count, word length, symbols, bullets, ellipses, letters, stop words)",
    .doc = "datatrove's GopherQualityFilter with its defaults. Words: spaCy-like tokens (punctuation\n"
           "split off, see src/textstat.h); non-symbol words have a character outside datatrove's\n"
           "PUNCTUATION_SET and are the ones counted (50..100000) and measured (mean length 3..10\n"
           "code points). '#' and ellipsis ('...', U+2026) counts are divided by all tokens (<= 0.1);\n"
           "lines are str.splitlines() lines: <= 90% may start (after lstrip) with '\xe2\x80\xa2' or '-', <= 30%\n"
           "end (after rstrip) with an ellipsis; >= 80% of tokens must hold a letter; >= 2 distinct\n"
           "stop words (the be to of and that have with, exact tokens). A 0 threshold is off.\n"
           "Drop reasons (datatrove's): gopher_short_doc, gopher_long_doc, gopher_below_avg_threshold,\n"
           "gopher_above_avg_threshold, gopher_too_many_hashes, gopher_too_many_ellipsis,\n"
           "gopher_too_many_bullets, gopher_too_many_end_ellipsis, gopher_below_alpha_threshold,\n"
           "gopher_enough_stop_words. mode: annotate keeps every document and adds\n"
           "winnow.gopher_quality (the reason or \"pass\") and winnow.gopher_quality_stats.",
    .params = params,
    .n_params = WN_ARRAY_LEN(params),
    .state_size = sizeof(gopher_quality),
    .open = gq_open,
    .process = gq_process,
    .close = gq_close,
};
