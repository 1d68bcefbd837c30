/*
 * c4_filter.c - C4's cleaning rules (Raffel et al. 2020) as datatrove's
 * C4QualityFilter applies them, with the same defaults and drop reasons.
 *
 * Lines are str.splitlines() lines, each stripped. For each line, in order
 * (each rule switchable):
 *   a word (whitespace-separated) longer than max_word_length code points
 *       -> line removed (too_long_word)
 *   Wikipedia citations "[123]", "[]", "[edit]", "[citation needed]" are cut
 *   not ending in . ? ! " ' or ending in "..." -> removed (no_terminal_punc)
 *   fewer than min_words_per_line words -> removed (too_few_words)
 *   contains "lorem ipsum" (any case) -> document dropped (lorem_ipsum)
 *   contains "javascript" (any case) -> removed (javascript)
 *   contains "{" -> document dropped (curly_bracket)
 *   contains a policy phrase ("terms of use", "privacy policy", "cookie
 *       policy", "uses cookies", "use of cookies", "use cookies", any case)
 *       -> removed (policy)
 * As in datatrove, lorem ipsum and '{' are looked for only in lines that
 * survived the rules before them. Kept lines are counted in sentences
 * (spaCy's Sentencizer over spaCy-like words, src/textstat.h); fewer than
 * min_num_sentences in all -> document dropped (too_few_sentences).
 * Otherwise the text becomes the kept lines joined by '\n', stripped.
 * Case-insensitive matching is ASCII. In annotate mode the text is left as
 * it is and the verdict and counts are added as attributes.
 * Report: per-rule removed line counts (over all documents, up to a
 * document's drop, as datatrove's stats) and bytes removed from kept
 * documents.
 */
#include <stdio.h>
#include <string.h>

#include "../src/stage.h"
#include "../src/mpi.h"
#include "../src/text.h"
#include "../src/textstat.h"

static const wn_param_def params[] = {
    {"mode", WN_P_ENUM, "drop", 0, 0, "drop|annotate",
     "drop: drop failing documents and remove lines; annotate: change nothing, add winnow.c4_filter "
     "(reason or \"pass\") and winnow.c4_filter_stats"},
    {"filter_no_terminal_punct", WN_P_BOOL, "true", 0, 0, NULL, "remove lines not ending in . ? ! \" ' (or in ...)"},
    {"min_words_per_line", WN_P_INT, "3", 0, 1e9, NULL, "remove lines with fewer words (0 = off)"},
    {"max_word_length", WN_P_INT, "1000", 0, 1e15, NULL, "remove lines with a longer word (0 = off)"},
    {"filter_javascript", WN_P_BOOL, "true", 0, 0, NULL, "remove lines mentioning javascript"},
    {"filter_policy", WN_P_BOOL, "true", 0, 0, NULL, "remove lines with terms-of-use/privacy/cookie phrases"},
    {"remove_citations", WN_P_BOOL, "true", 0, 0, NULL, "cut [N], [edit], [citation needed]"},
    {"filter_lorem_ipsum", WN_P_BOOL, "true", 0, 0, NULL, "drop documents containing lorem ipsum"},
    {"filter_curly_bracket", WN_P_BOOL, "true", 0, 0, NULL, "drop documents containing '{'"},
    {"min_num_sentences", WN_P_INT, "5", 0, 1e9, NULL, "drop documents with fewer sentences kept (0 = off)"},
};

enum { L_TOTAL, L_TOO_LONG, L_NO_PUNCT, L_FEW_WORDS, L_JAVASCRIPT, L_POLICY, L_KEPT, BYTES_REMOVED, N_COUNT };
static const char *const count_name[N_COUNT] = {
    "lines_total", "lines_removed_too_long_word", "lines_removed_no_terminal_punc", "lines_removed_too_few_words",
    "lines_removed_javascript", "lines_removed_policy", "lines_kept", "bytes_removed"};

typedef struct {
    wn_ts_scratch sc;
    wn_buf out, line, low; /* low: the current line, ASCII-lowercased */
    uint64_t count[N_COUNT];
    char pad[64];
} tls;

typedef struct {
    int annotate, punct, javascript, policy, citations, lorem, curly;
    int64_t min_words, max_word, min_sentences;
    uint64_t count[N_COUNT]; /* totals over the run */
    tls *t;
    int n_t;
} c4_filter;

static wn_err c4_open(wn_stage *st)
{
    c4_filter *s = st->state;
    s->annotate = !strcmp(wn_param(st, "mode")->s, "annotate");
    s->punct = wn_param(st, "filter_no_terminal_punct")->b;
    s->javascript = wn_param(st, "filter_javascript")->b;
    s->policy = wn_param(st, "filter_policy")->b;
    s->citations = wn_param(st, "remove_citations")->b;
    s->lorem = wn_param(st, "filter_lorem_ipsum")->b;
    s->curly = wn_param(st, "filter_curly_bracket")->b;
    s->min_words = wn_param(st, "min_words_per_line")->i;
    s->max_word = wn_param(st, "max_word_length")->i;
    s->min_sentences = wn_param(st, "min_num_sentences")->i;
    s->n_t = st->threads > 0 ? st->threads : 1;
    s->t = wn_calloc((size_t)s->n_t, sizeof *s->t);
    if (!s->t) return wn_fail(&st->err, WN_ERR_NOMEM, "out of memory");
    return WN_OK;
}

/* ASCII lowercase copy of p[0..n) into out (A-Z only; other bytes as they are). */
static wn_err ascii_lower(wn_buf *out, const char *p, size_t n)
{
    wn_buf_clear(out);
    wn_err e = wn_buf_append(out, p, n);
    if (e) return e;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)out->p[i];
        if (c >= 'A' && c <= 'Z') out->p[i] = (char)(c + 32);
    }
    return WN_OK;
}

/* Search in text already lowercased by ascii_lower: the same matches as an
 * ASCII case-insensitive search for the lowercase needle. */
static int contains(const wn_buf *low, const char *needle)
{
    return low->len && memmem(low->p, low->len, needle, strlen(needle)) != NULL;
}

/* Words (Python str.split()) and whether one is longer than max code points. */
static size_t words_of(const char *p, size_t n, int64_t max, int *too_long)
{
    size_t words = 0, i = 0;
    int64_t cps = -1; /* -1: between words */
    *too_long = 0;
    for (;;) {
        int space;
        if (i >= n) {
            space = 1;
        } else if ((unsigned char)p[i] < 0x80) {
            unsigned char u = (unsigned char)p[i++];
            space = u == ' ' || (u >= 0x09 && u <= 0x0D); /* wn_is_space on ASCII */
        } else {
            int32_t c = wn_utf8_next(p, n, &i);
            space = c >= 0 && wn_is_space(c);
        }
        if (space) {
            if (cps >= 0) {
                words++;
                if (max && cps > max) *too_long = 1;
            }
            cps = -1;
        } else {
            cps = cps < 0 ? 1 : cps + 1;
        }
        if (i >= n && space) break;
    }
    return words;
}

/* Copies a line without Wikipedia citations (\[\d*\]|\[edit\]|\[citation needed\]). */
static wn_err cut_citations(wn_buf *out, const char *p, size_t n)
{
    wn_buf_clear(out);
    size_t i = 0;
    while (i < n) {
        const char *q = memchr(p + i, '[', n - i);
        size_t j = q ? (size_t)(q - p) : n;
        wn_err e = wn_buf_append(out, p + i, j - i);
        if (e) return e;
        if (j >= n) break;
        size_t k = j + 1;
        while (k < n && p[k] >= '0' && p[k] <= '9') k++;
        size_t skip = 0;
        if (k < n && p[k] == ']') skip = k + 1 - j;
        else if (n - j >= 6 && !memcmp(p + j, "[edit]", 6)) skip = 6;
        else if (n - j >= 17 && !memcmp(p + j, "[citation needed]", 17)) skip = 17;
        if (skip) {
            i = j + skip;
        } else {
            if ((e = wn_buf_putc(out, '['))) return e;
            i = j + 1;
        }
    }
    return WN_OK;
}

static int ends_with(const char *p, size_t n, const char *s)
{
    size_t k = strlen(s);
    return n >= k && !memcmp(p + n - k, s, k);
}

typedef struct {
    long sentences;
    uint64_t lines, removed;
} result;

/* Runs the rules; kept lines go to t->out. Returns the drop reason or NULL. */
static const char *clean(const c4_filter *s, tls *t, const wn_buf *tx, result *r, wn_err *e)
{
    memset(r, 0, sizeof *r);
    const char *p = tx->p ? tx->p : "";
    size_t n = tx->len;
    wn_buf_clear(&t->out);
    static const char *const policy[] = {"terms of use", "privacy policy", "cookie policy",
                                         "uses cookies", "use of cookies", "use cookies"};
    for (size_t a = 0; a < n;) {
        size_t k, b = wn_ts_line_end(p, n, a, &k);
        wn_span l = wn_ts_strip(p + a, b - a);
        a = b + k;
        r->lines++;
        t->count[L_TOTAL]++;
        int too_long;
        size_t words = words_of(l.p, l.n, s->max_word, &too_long);
        if (too_long) { t->count[L_TOO_LONG]++; r->removed++; continue; }
        const char *lp = l.p;
        size_t ln = l.n;
        if (s->citations && memchr(lp, '[', ln)) {
            if ((*e = cut_citations(&t->line, lp, ln))) return NULL;
            lp = t->line.p;
            ln = t->line.len;
        }
        if (s->punct) {
            char z = ln ? lp[ln - 1] : 0;
            int ok = (z == '.' || z == '?' || z == '!' || z == '"' || z == '\'') && !ends_with(lp, ln, "...");
            if (!ok) { t->count[L_NO_PUNCT]++; r->removed++; continue; }
        }
        if ((int64_t)words < s->min_words) { t->count[L_FEW_WORDS]++; r->removed++; continue; }
        if ((s->lorem || s->javascript || s->policy) && (*e = ascii_lower(&t->low, lp, ln))) return NULL;
        if (s->lorem && contains(&t->low, "lorem ipsum")) return "lorem_ipsum";
        if (s->javascript && contains(&t->low, "javascript")) { t->count[L_JAVASCRIPT]++; r->removed++; continue; }
        if (s->curly && memchr(lp, '{', ln)) return "curly_bracket";
        if (s->policy) {
            int hit = 0;
            for (size_t i = 0; i < WN_ARRAY_LEN(policy) && !hit; i++) hit = contains(&t->low, policy[i]);
            if (hit) { t->count[L_POLICY]++; r->removed++; continue; }
        }
        if (s->min_sentences) {
            long c = wn_ts_sentences(&t->sc, lp, ln);
            if (c < 0) { *e = WN_ERR_NOMEM; return NULL; }
            r->sentences += c;
        }
        t->count[L_KEPT]++;
        if ((t->out.len && (*e = wn_buf_putc(&t->out, '\n'))) || (*e = wn_buf_append(&t->out, lp, ln))) return NULL;
    }
    if (r->sentences < s->min_sentences) return "too_few_sentences";
    return NULL;
}

static wn_err c4_doc(wn_stage *st, int thread, wn_doc *d)
{
    c4_filter *s = st->state;
    tls *t = &s->t[thread];
    result r;
    wn_err e = WN_OK;
    const char *why = clean(s, t, &d->text, &r, &e);
    if (!e && s->annotate) {
        char v[160];
        snprintf(v, sizeof v, "\"%s\"", why ? why : "pass");
        e = wn_doc_attr(d, "c4_filter", v);
        snprintf(v, sizeof v, "{\"lines\":%llu,\"lines_removed\":%llu,\"sentences\":%ld}",
                 (unsigned long long)r.lines, (unsigned long long)r.removed, r.sentences);
        if (!e) e = wn_doc_attr(d, "c4_filter_stats", v);
    } else if (!e && why) {
        d->drop = why;
    } else if (!e) {
        wn_span kept = wn_ts_strip(t->out.p ? t->out.p : "", t->out.len);
        if (kept.n != d->text.len || memcmp(kept.p, d->text.p, kept.n)) {
            t->count[BYTES_REMOVED] += d->text.len - kept.n;
            memmove(t->out.p, kept.p, kept.n);
            t->out.len = kept.n;
            t->out.p[kept.n] = 0;
            wn_buf tmp = d->text; /* swap: the old text buffer becomes scratch */
            d->text = t->out;
            t->out = tmp;
            d->modified = 1;
        }
    }
    return e;
}

static wn_err c4_process(wn_stage *st, wn_batch *b)
{
    c4_filter *s = st->state;
    wn_err e = wn_stage_each_doc(st, b, s->n_t, c4_doc);
    /* integer sums: the totals do not depend on how documents met threads */
    for (int i = 0; i < s->n_t; i++)
        for (int k = 0; k < N_COUNT; k++) {
            s->count[k] += s->t[i].count[k];
            s->t[i].count[k] = 0;
        }
    return e;
}

static void c4_report(wn_stage *st, wn_jw *w)
{
    c4_filter *s = st->state;
    uint64_t c[N_COUNT];
    for (int k = 0; k < N_COUNT; k++) c[k] = s->count[k];
    wn_mpi_allreduce_sum_u64(c, N_COUNT); /* every rank calls report: the whole stream's counts */
    for (int k = 0; k < N_COUNT; k++) {
        wn_jw_key(w, count_name[k]);
        wn_jw_u64(w, c[k]);
    }
}

static wn_err c4_save(wn_stage *st, FILE *f)
{
    c4_filter *s = st->state;
    return fwrite(s->count, sizeof s->count, 1, f) == 1 ? WN_OK
                                                       : wn_fail(&st->err, WN_ERR_IO, "c4_filter: checkpoint write failed");
}

static wn_err c4_load(wn_stage *st, FILE *f)
{
    c4_filter *s = st->state;
    return fread(s->count, sizeof s->count, 1, f) == 1 ? WN_OK
                                                      : wn_fail(&st->err, WN_ERR_STATE, "c4_filter: checkpoint is cut short");
}

static void c4_close(wn_stage *st)
{
    c4_filter *s = st->state;
    for (int i = 0; s->t && i < s->n_t; i++) {
        wn_ts_scratch_free(&s->t[i].sc);
        wn_buf_free(&s->t[i].out);
        wn_buf_free(&s->t[i].line);
        wn_buf_free(&s->t[i].low);
    }
    wn_free(s->t);
}

const wn_stage_def wn_stage_c4_filter = {
    .name = "c4_filter",
    .summary = "C4 cleaning: remove boilerplate lines, drop lorem ipsum / '{' / too-few-sentence documents",
    .doc = "datatrove's C4QualityFilter with its defaults. Per stripped line (str.splitlines()):\n"
           "remove lines with a word > 1000 code points, cut [N]/[edit]/[citation needed], remove\n"
           "lines not ending in . ? ! \" ' (or ending in ...), with < 3 words, mentioning javascript,\n"
           "or with a policy phrase (terms of use, privacy policy, cookie policy, uses cookies, use of\n"
           "cookies, use cookies); drop the document on 'lorem ipsum' or '{' in a line that got that\n"
           "far, or when kept lines hold < 5 sentences (spaCy Sentencizer rule). Kept lines are joined\n"
           "by '\\n'. Drop reasons (datatrove's): lorem_ipsum, curly_bracket, too_few_sentences.\n"
           "Report: lines_total, lines_kept, lines_removed_<rule>, bytes_removed. mode: annotate\n"
           "changes nothing and adds winnow.c4_filter and winnow.c4_filter_stats.",
    .params = params,
    .n_params = WN_ARRAY_LEN(params),
    .state_size = sizeof(c4_filter),
    .open = c4_open,
    .process = c4_process,
    .save = c4_save,
    .load = c4_load,
    .report = c4_report,
    .close = c4_close,
};
