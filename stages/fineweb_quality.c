/*
 * fineweb_quality.c - FineWeb's own quality rules as datatrove's
 * FineWebQualityFilter computes them, with the same defaults and drop
 * reasons. Lines are the text split on '\n', keeping those whose strip() is
 * not empty (lengths in code points, lines not stripped). First failure wins:
 *   empty             no such line
 *   line_punct_ratio  lines whose last character is in datatrove's
 *                     TERMINAL_PUNCTUATION / lines < line_punct_thr (0.12)
 *   short_line_ratio  lines of <= short_line_length (30) code points / lines
 *                     > short_line_thr (0.67)
 *   char_dup_ratio    code points of repeated lines (every occurrence after
 *                     the first) / code points of the text without '\n'
 *                     > char_duplicates_ratio (0.01)
 *   list_ratio        '\n' count / words (spaCy-like tokens, textstat.h)
 *                     > new_line_ratio (0.3)
 * A 0 threshold is off.
 */
#include <stdio.h>
#include <string.h>

#include "../src/stage.h"
#include "../src/text.h"
#include "../src/textstat.h"

static const wn_param_def params[] = {
    {"mode", WN_P_ENUM, "drop", 0, 0, "drop|annotate",
     "drop: drop failing documents; annotate: keep them and add winnow.fineweb_quality (reason or \"pass\")"},
    {"line_punct_thr", WN_P_FLOAT, "0.12", 0, 1, NULL, "fewest lines ending in terminal punctuation (0 = off)"},
    {"short_line_thr", WN_P_FLOAT, "0.67", 0, 1, NULL, "most short lines, as a fraction (0 = off)"},
    {"short_line_length", WN_P_INT, "30", 0, 1e9, NULL, "a line this long or shorter (code points) is short"},
    {"char_duplicates_ratio", WN_P_FLOAT, "0.01", 0, 1, NULL, "most characters in repeated lines (0 = off)"},
    {"new_line_ratio", WN_P_FLOAT, "0.3", 0, 1e9, NULL, "most newlines per word (0 = off)"},
};

typedef struct {
    wn_ts_scratch sc;
    char pad[64];
} tls;

typedef struct {
    int annotate;
    double punct, short_thr, dup, newline;
    int64_t short_len;
    tls *t;
    int n_t;
} fineweb_quality;

typedef struct {
    double punct, short_lines, dup, newline;
} ratios;

static wn_err fw_open(wn_stage *st)
{
    fineweb_quality *s = st->state;
    s->annotate = !strcmp(wn_param(st, "mode")->s, "annotate");
    s->punct = wn_param(st, "line_punct_thr")->f;
    s->short_thr = wn_param(st, "short_line_thr")->f;
    s->short_len = wn_param(st, "short_line_length")->i;
    s->dup = wn_param(st, "char_duplicates_ratio")->f;
    s->newline = wn_param(st, "new_line_ratio")->f;
    s->n_t = st->threads > 0 ? st->threads : 1;
    s->t = wn_calloc((size_t)s->n_t, sizeof *s->t);
    if (!s->t) return wn_fail(&st->err, WN_ERR_NOMEM, "out of memory");
    return WN_OK;
}

static const char *verdict(const fineweb_quality *s, wn_ts_scratch *sc, const wn_buf *tx, ratios *r, wn_err *e)
{
    memset(r, 0, sizeof *r);
    const char *p = tx->p ? tx->p : "";
    size_t n = tx->len, newlines = 0;
    for (size_t i = 0; i < n; i++) newlines += p[i] == '\n';
    if ((*e = wn_ts_count_reset(sc, newlines + 1))) return NULL;
    size_t lines = 0, punct = 0, short_lines = 0, dup_chars = 0;
    for (size_t a = 0; a <= n;) {
        const char *nl = memchr(p + a, '\n', n - a);
        size_t b = nl ? (size_t)(nl - p) : n;
        if (wn_ts_strip(p + a, b - a).n) {
            lines++;
            size_t cps = wn_utf8_count(p + a, b - a);
            punct += wn_ts_is_terminal(wn_ts_last_cp(p + a, b - a)) != 0;
            short_lines += (int64_t)cps <= s->short_len;
            if (wn_ts_count_add(sc, wn_ts_hash(p + a, b - a), 0, NULL) > 1) dup_chars += cps;
        }
        a = b + 1;
    }
    if (!lines) return "empty";
    r->punct = (double)punct / (double)lines;
    if (s->punct > 0 && r->punct < s->punct) return "line_punct_ratio";
    r->short_lines = (double)short_lines / (double)lines;
    if (s->short_thr > 0 && r->short_lines > s->short_thr) return "short_line_ratio";
    r->dup = (double)dup_chars / (double)(wn_utf8_count(p, n) - newlines);
    if (s->dup > 0 && r->dup > s->dup) return "char_dup_ratio";
    if ((*e = wn_ts_words(sc, p, n))) return NULL;
    r->newline = sc->n_tok ? (double)newlines / (double)sc->n_tok : (double)newlines;
    if (s->newline > 0 && r->newline > s->newline) return "list_ratio";
    return NULL;
}

static wn_err annotate(wn_doc *d, const char *reason, const ratios *r)
{
    char v[256];
    snprintf(v, sizeof v, "\"%s\"", reason ? reason : "pass");
    wn_err e = wn_doc_attr(d, "fineweb_quality", v);
    if (e) return e;
    snprintf(v, sizeof v,
             "{\"line_punct_ratio\":%.4g,\"short_line_ratio\":%.4g,\"char_dup_ratio\":%.4g,\"list_ratio\":%.4g}",
             r->punct, r->short_lines, r->dup, r->newline);
    return wn_doc_attr(d, "fineweb_quality_stats", v);
}

static wn_err fw_doc(wn_stage *st, int thread, wn_doc *d)
{
    fineweb_quality *s = st->state;
    ratios r;
    wn_err e = WN_OK;
    const char *why = verdict(s, &s->t[thread].sc, &d->text, &r, &e);
    if (!e && s->annotate) e = annotate(d, why, &r);
    else if (!e) d->drop = why;
    return e;
}

static wn_err fw_process(wn_stage *st, wn_batch *b)
{
    return wn_stage_each_doc(st, b, ((fineweb_quality *)st->state)->n_t, fw_doc);
}

static void fw_close(wn_stage *st)
{
    fineweb_quality *s = st->state;
    for (int i = 0; s->t && i < s->n_t; i++) wn_ts_scratch_free(&s->t[i].sc);
    wn_free(s->t);
}

const wn_stage_def wn_stage_fineweb_quality = {
    .name = "fineweb_quality",
    .summary = "FineWeb quality rules (line punctuation, short lines, duplicate lines, newlines per word)",
    .doc = "datatrove's FineWebQualityFilter with its defaults. Over the non-blank '\\n'-separated\n"
           "lines: >= 12% must end in a terminal punctuation mark (datatrove's TERMINAL_PUNCTUATION),\n"
           "<= 67% may be 30 code points or shorter, repeated lines may hold <= 1% of the text's\n"
           "code points (newlines excluded); newlines per word (spaCy-like tokens) <= 0.3.\n"
           "A 0 threshold is off. Drop reasons (datatrove's): empty, line_punct_ratio, short_line_ratio,\n"
           "char_dup_ratio, list_ratio. mode: annotate adds winnow.fineweb_quality and\n"
           "winnow.fineweb_quality_stats instead of dropping.",
    .params = params,
    .n_params = WN_ARRAY_LEN(params),
    .state_size = sizeof(fineweb_quality),
    .open = fw_open,
    .process = fw_process,
    .close = fw_close,
};
