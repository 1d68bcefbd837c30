/*
 * fasttext_filter.c - language identification and quality classification
 * with a fastText supervised model (lid.176.bin, the DCLM classifier, or
 * any `fasttext supervised` .bin), predicted natively by src/fasttext.c.
 *
 * Each document is classified as one line with its newlines taken as spaces
 * (what `predict-prob` would see for the text with "\n" replaced by " ").
 * The top label decides: drop reason label_not_kept when keep_labels is set
 * and the label is not in it, below_threshold when its probability is below
 * `threshold`. A document without a single feature has no prediction: it
 * gets label null and score 0. Kept documents (all of them in annotate mode)
 * get winnow.<prefix>_label and winnow.<prefix>_score, and with k > 1 also
 * winnow.<prefix>_labels / _scores (the top k, best first). Each thread owns
 * its prediction scratch, allocated once and grown as needed.
 */
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "../src/fasttext.h"
#include "../src/json.h"
#include "../src/stage.h"

static const wn_param_def params[] = {
    {"model", WN_P_STRING, NULL, 0, 0, NULL, "path of the fastText supervised model (.bin; .ftz is refused)"},
    {"mode", WN_P_ENUM, "drop", 0, 0, "drop|annotate",
     "drop: drop documents that fail; annotate: keep every document and only add the attributes"},
    {"keep_labels", WN_P_STRING, "", 0, 0, NULL,
     "comma-separated labels to keep (with or without \"__label__\"); empty = any label"},
    {"threshold", WN_P_FLOAT, "0", 0, 1, NULL, "minimum probability of the top label to keep"},
    {"k", WN_P_INT, "1", 1, 1000, NULL, "number of top labels recorded (the top one decides)"},
    {"prefix", WN_P_STRING, "fasttext", 0, 0, NULL, "attribute names: winnow.<prefix>_label, _score"},
};

typedef struct {
    wn_ft_scratch sc;
    wn_ft_pred *top;
    wn_buf v;
    wn_err err;
    char pad[64];
} tls;

typedef struct {
    wn_ft *m;
    int annotate, k;
    double threshold;
    unsigned char *keep; /* per label; NULL = keep any */
    char **json_label;   /* each label as a JSON string */
    char key_label[256], key_score[256], key_labels[256], key_scores[256];
    tls *t;
    int n_t;
} ft_filter;

static int label_matches(const char *label, const char *want, size_t n)
{
    if (strlen(label) == n && !memcmp(label, want, n)) return 1;
    return !strncmp(label, "__label__", 9) && strlen(label + 9) == n && !memcmp(label + 9, want, n);
}

static wn_err ft_open(wn_stage *st)
{
    ft_filter *s = st->state;
    const char *path = wn_param(st, "model")->s;
    const char *prefix = wn_param(st, "prefix")->s;
    s->annotate = !strcmp(wn_param(st, "mode")->s, "annotate");
    s->threshold = wn_param(st, "threshold")->f;
    if (!prefix[0] || strlen(prefix) > 200 || strpbrk(prefix, "\"\\"))
        return wn_fail(&st->err, WN_ERR_MANIFEST, "fasttext_filter: prefix must be 1-200 characters without quotes");
    snprintf(s->key_label, sizeof s->key_label, "%s_label", prefix);
    snprintf(s->key_score, sizeof s->key_score, "%s_score", prefix);
    snprintf(s->key_labels, sizeof s->key_labels, "%s_labels", prefix);
    snprintf(s->key_scores, sizeof s->key_scores, "%s_scores", prefix);
    wn_err e = wn_ft_load(&s->m, path, &st->err);
    if (e == WN_ERR_INPUT) e = WN_ERR_MANIFEST; /* the `model` parameter names an unusable file */
    if (e) return e;
    int nl = wn_ft_nlabels(s->m);
    s->k = (int)wn_param(st, "k")->i;
    if (s->k > nl) s->k = nl;
    s->json_label = wn_calloc((size_t)nl, sizeof *s->json_label);
    if (!s->json_label) return wn_fail(&st->err, WN_ERR_NOMEM, "out of memory");
    for (int i = 0; i < nl; i++) {
        wn_buf b = {0};
        const char *l = wn_ft_label(s->m, i);
        if (wn_json_encode_string(&b, l, strlen(l))) {
            wn_buf_free(&b);
            return wn_fail(&st->err, WN_ERR_NOMEM, "out of memory");
        }
        s->json_label[i] = b.p;
    }
    const char *kl = wn_param(st, "keep_labels")->s;
    if (kl[0]) {
        s->keep = wn_calloc((size_t)nl, 1);
        if (!s->keep) return wn_fail(&st->err, WN_ERR_NOMEM, "out of memory");
        for (const char *p = kl; *p;) {
            while (*p == ',' || *p == ' ') p++;
            const char *q = p;
            while (*q && *q != ',') q++;
            size_t n = (size_t)(q - p);
            while (n && p[n - 1] == ' ') n--;
            if (n) {
                int found = 0;
                for (int i = 0; i < nl; i++)
                    if (label_matches(wn_ft_label(s->m, i), p, n)) s->keep[i] = 1, found = 1;
                if (!found)
                    return wn_fail(&st->err, WN_ERR_MANIFEST, "fasttext_filter: keep_labels: %s has no label \"%.*s\"",
                                   path, (int)n, p);
            }
            p = q;
        }
    }
    s->n_t = st->threads > 0 ? st->threads : 1;
    s->t = wn_calloc((size_t)s->n_t, sizeof *s->t);
    if (!s->t) return wn_fail(&st->err, WN_ERR_NOMEM, "out of memory");
    for (int i = 0; i < s->n_t; i++) {
        s->t[i].top = wn_calloc((size_t)s->k, sizeof *s->t[i].top);
        if (!s->t[i].top) return wn_fail(&st->err, WN_ERR_NOMEM, "out of memory");
    }
    return WN_OK;
}

static wn_err annotate(const ft_filter *s, tls *t, wn_doc *d, int n)
{
    char v[64];
    wn_err e = wn_doc_attr(d, s->key_label, n ? s->json_label[t->top[0].label] : "null");
    if (e) return e;
    snprintf(v, sizeof v, "%.9g", n ? t->top[0].prob : 0.0);
    if ((e = wn_doc_attr(d, s->key_score, v))) return e;
    if (s->k < 2) return WN_OK;
    wn_buf_clear(&t->v);
    e = wn_buf_putc(&t->v, '[');
    for (int i = 0; i < n && !e; i++) e = wn_buf_printf(&t->v, "%s%s", i ? "," : "", s->json_label[t->top[i].label]);
    if (!e) e = wn_buf_putc(&t->v, ']');
    if (!e) e = wn_doc_attr(d, s->key_labels, t->v.p);
    wn_buf_clear(&t->v);
    if (!e) e = wn_buf_putc(&t->v, '[');
    for (int i = 0; i < n && !e; i++) e = wn_buf_printf(&t->v, "%s%.9g", i ? "," : "", t->top[i].prob);
    if (!e) e = wn_buf_putc(&t->v, ']');
    if (!e) e = wn_doc_attr(d, s->key_scores, t->v.p);
    return e;
}

static wn_err ft_process(wn_stage *st, wn_batch *b)
{
    ft_filter *s = st->state;
    for (int i = 0; i < s->n_t; i++) s->t[i].err = WN_OK;
#pragma omp parallel for schedule(dynamic, 16) num_threads(s->n_t)
    for (size_t i = 0; i < b->n; i++) {
        tls *t = &s->t[omp_get_thread_num()];
        wn_doc *d = &b->docs[i];
        if (t->err || d->drop) continue;
        int n = 0;
        wn_err e = wn_ft_predict(s->m, &t->sc, d->text.p, d->text.len, s->k, t->top, &n);
        const char *why = NULL;
        if (!e) {
            if (s->keep && (!n || !s->keep[t->top[0].label])) why = "label_not_kept";
            else if ((n ? t->top[0].prob : 0.0) < s->threshold) why = "below_threshold";
        }
        if (!e && why && !s->annotate) d->drop = why;
        else if (!e) e = annotate(s, t, d, n);
        if (e) t->err = e;
    }
    for (int i = 0; i < s->n_t; i++)
        if (s->t[i].err) return wn_fail(&st->err, s->t[i].err, "fasttext_filter: %s", wn_err_name(s->t[i].err));
    return WN_OK;
}

static void ft_close(wn_stage *st)
{
    ft_filter *s = st->state;
    for (int i = 0; s->t && i < s->n_t; i++) {
        wn_ft_scratch_free(&s->t[i].sc);
        wn_free(s->t[i].top);
        wn_buf_free(&s->t[i].v);
    }
    wn_free(s->t);
    for (int i = 0; s->json_label && s->m && i < wn_ft_nlabels(s->m); i++) wn_free(s->json_label[i]);
    wn_free(s->json_label);
    wn_free(s->keep);
    wn_ft_free(s->m);
}

const wn_stage_def wn_stage_fasttext_filter = {
    .name = "fasttext_filter",
    .summary = "language ID / quality classification with a fastText supervised model",
    .doc = "Loads a fastText supervised .bin model (lid.176.bin, the DCLM quality classifier, or\n"
           "any `fasttext supervised` model; softmax, hs, ova and ns losses; quantized .ftz is\n"
           "refused) and predicts natively, exactly as `fasttext predict-prob` does for the text\n"
           "with newlines replaced by spaces. The top label decides: drop reasons label_not_kept\n"
           "(keep_labels set, label not in it) and below_threshold (top probability < threshold).\n"
           "Kept documents get winnow.<prefix>_label and winnow.<prefix>_score (and with k > 1,\n"
           "winnow.<prefix>_labels / _scores); annotate mode keeps every document.",
    .params = params,
    .n_params = WN_ARRAY_LEN(params),
    .state_size = sizeof(ft_filter),
    .open = ft_open,
    .process = ft_process,
    .close = ft_close,
};
