/*
 * length_filter.c - drops documents outside bounds on characters (Unicode
 * code points), whitespace-separated words and lines. A max of 0 means no
 * upper bound. Checks run in the order chars, words, lines; the first that
 * fails names the drop reason.
 */
#include <omp.h>

#include "../src/stage.h"
#include "../src/text.h"

static const wn_param_def params[] = {
    {"min_chars", WN_P_INT, "0", 0, 1e15, NULL, "fewest code points a document may have"},
    {"max_chars", WN_P_INT, "0", 0, 1e15, NULL, "most code points (0 = no limit)"},
    {"min_words", WN_P_INT, "0", 0, 1e15, NULL, "fewest whitespace-separated words"},
    {"max_words", WN_P_INT, "0", 0, 1e15, NULL, "most words (0 = no limit)"},
    {"min_lines", WN_P_INT, "0", 0, 1e15, NULL, "fewest lines"},
    {"max_lines", WN_P_INT, "0", 0, 1e15, NULL, "most lines (0 = no limit)"},
};

typedef struct {
    int64_t min_chars, max_chars, min_words, max_words, min_lines, max_lines;
} length_filter;

static wn_err lf_open(wn_stage *st)
{
    length_filter *s = st->state;
    s->min_chars = wn_param(st, "min_chars")->i;
    s->max_chars = wn_param(st, "max_chars")->i;
    s->min_words = wn_param(st, "min_words")->i;
    s->max_words = wn_param(st, "max_words")->i;
    s->min_lines = wn_param(st, "min_lines")->i;
    s->max_lines = wn_param(st, "max_lines")->i;
    return WN_OK;
}

static const char *verdict(const length_filter *s, const wn_buf *t)
{
    if (s->min_chars || s->max_chars) {
        int64_t n = (int64_t)wn_utf8_count(t->p, t->len);
        if (n < s->min_chars) return "too_few_chars";
        if (s->max_chars && n > s->max_chars) return "too_many_chars";
    }
    if (s->min_words || s->max_words) {
        int64_t n = (int64_t)wn_count_words(t->p, t->len);
        if (n < s->min_words) return "too_few_words";
        if (s->max_words && n > s->max_words) return "too_many_words";
    }
    if (s->min_lines || s->max_lines) {
        int64_t n = (int64_t)wn_count_lines(t->p, t->len);
        if (n < s->min_lines) return "too_few_lines";
        if (s->max_lines && n > s->max_lines) return "too_many_lines";
    }
    return NULL;
}

static wn_err lf_process(wn_stage *st, wn_batch *b)
{
    const length_filter *s = st->state;
#pragma omp parallel for schedule(dynamic, 64)
    for (size_t i = 0; i < b->n; i++) b->docs[i].drop = verdict(s, &b->docs[i].text);
    return WN_OK;
}

const wn_stage_def wn_stage_length_filter = {
    .name = "length_filter",
    .summary = "drop documents outside character, word or line count bounds",
    .doc = "Counts Unicode code points, whitespace-separated words (Unicode White_Space) and\n"
           "'\\n'-separated lines of each document's text. Drop reasons: too_few_chars,\n"
           "too_many_chars, too_few_words, too_many_words, too_few_lines, too_many_lines.",
    .params = params,
    .n_params = WN_ARRAY_LEN(params),
    .state_size = sizeof(length_filter),
    .open = lf_open,
    .process = lf_process,
};
