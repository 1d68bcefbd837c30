/*
 * manifest.c - load, validate and resolve a pipeline manifest (manifest.h).
 *
 * libyaml builds a document tree; validation walks it against the schema
 * below and the stages' parameter tables. Every message has the form
 * "FILE:LINE: KEY: what is wrong".
 */
#include "manifest.h"
#include "text.h"

#include <errno.h>
#include <glob.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <xxhash.h>
#include <yaml.h>

typedef struct {
    yaml_document_t doc;
    int have_doc;
    char **owned;
    int n_owned, cap_owned;
} mf_store;

typedef struct {
    wn_manifest *m;
    mf_store *st;
    const char *file;
    wn_errbuf *err;
} mf_ctx;

#define LINE(node) ((int)(node)->start_mark.line + 1)

static char *own(mf_ctx *c, char *s)
{
    mf_store *st = c->st;
    if (!s) return NULL;
    if (st->n_owned == st->cap_owned) {
        int cap = st->cap_owned ? st->cap_owned * 2 : 32;
        char **p = wn_realloc(st->owned, (size_t)cap * sizeof *p);
        if (!p) { wn_free(s); return NULL; }
        st->owned = p;
        st->cap_owned = cap;
    }
    st->owned[st->n_owned++] = s;
    return s;
}

static char *own_dup(mf_ctx *c, const char *s) { return own(c, wn_strdup(s)); }

static wn_err bad(mf_ctx *c, yaml_node_t *n, const char *key, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static wn_err bad(mf_ctx *c, yaml_node_t *n, const char *key, const char *fmt, ...)
{
    char what[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    return wn_fail(c->err, WN_ERR_MANIFEST, "%s:%d: %s: %s", c->file, n ? LINE(n) : 0,
                   key, what);
}

static const char *scalar(yaml_node_t *n)
{
    return n && n->type == YAML_SCALAR_NODE ? (const char *)n->data.scalar.value : NULL;
}

/* A plain empty scalar (`key:` with nothing) means "not given". */
static int is_null(yaml_node_t *n)
{
    const char *s = scalar(n);
    return s && n->data.scalar.style == YAML_PLAIN_SCALAR_STYLE &&
           (!*s || !strcmp(s, "~") || !strcmp(s, "null"));
}

int wn_parse_size(const char *s, int64_t *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (end == s || errno || !(v >= 0)) return -1;
    while (*end == ' ') end++;
    double mul = 1;
    static const struct { const char *suf; double mul; } sufs[] = {
        {"", 1}, {"B", 1},
        {"k", 1e3}, {"K", 1e3}, {"KB", 1e3}, {"kB", 1e3}, {"KiB", 1024.0},
        {"M", 1e6}, {"MB", 1e6}, {"MiB", 1048576.0},
        {"G", 1e9}, {"GB", 1e9}, {"GiB", 1073741824.0},
        {"T", 1e12}, {"TB", 1e12}, {"TiB", 1099511627776.0},
    };
    size_t i;
    for (i = 0; i < WN_ARRAY_LEN(sufs); i++)
        if (!strcmp(end, sufs[i].suf)) { mul = sufs[i].mul; break; }
    if (i == WN_ARRAY_LEN(sufs)) return -1;
    v *= mul;
    if (v > 9.2e18) return -1;
    *out = (int64_t)llround(v);
    return 0;
}

static int parse_bool(const char *s, int *b)
{
    static const char *const t[] = {"true", "yes", "on"}, *const f[] = {"false", "no", "off"};
    for (int i = 0; i < 3; i++) {
        if (!strcasecmp(s, t[i])) { *b = 1; return 0; }
        if (!strcasecmp(s, f[i])) { *b = 0; return 0; }
    }
    return -1;
}

static int enum_has(const char *choices, const char *s)
{
    size_t n = strlen(s);
    for (const char *p = choices; *p;) {
        const char *bar = strchr(p, '|');
        size_t len = bar ? (size_t)(bar - p) : strlen(p);
        if (len == n && !strncmp(p, s, n)) return 1;
        if (!bar) break;
        p = bar + 1;
    }
    return 0;
}

/* Parses text s into v per the declared parameter. Returns a static
 * description of the problem, or NULL. */
static const char *param_value(const wn_param_def *p, const char *s, wn_value *v, char *why, size_t wn)
{
    memset(v, 0, sizeof *v);
    switch (p->type) {
    case WN_P_BOOL:
        if (parse_bool(s, &v->b)) return "expected true or false";
        return NULL;
    case WN_P_INT: {
        char *end;
        errno = 0;
        long long x = strtoll(s, &end, 10);
        if (end == s || *end || errno) return "expected an integer";
        v->i = x;
        v->f = (double)x;
        break;
    }
    case WN_P_FLOAT: {
        char *end;
        errno = 0;
        double x = strtod(s, &end);
        if (end == s || *end || errno || !isfinite(x)) return "expected a number";
        v->f = x;
        break;
    }
    case WN_P_SIZE:
        if (wn_parse_size(s, &v->i)) return "expected a size such as 4096, 64KiB, 256MB or 4GiB";
        v->f = (double)v->i;
        break;
    case WN_P_STRING:
        v->s = s;
        return NULL;
    case WN_P_ENUM:
        if (!enum_has(p->choices, s)) {
            snprintf(why, wn, "expected one of %s", p->choices);
            return why;
        }
        v->s = s;
        return NULL;
    }
    if (v->f < p->min || v->f > p->max) {
        snprintf(why, wn, "out of range: must be between %g and %g", p->min, p->max);
        return why;
    }
    return NULL;
}

/* ---- the top-level schema ------------------------------------------------ */

static yaml_node_t *node(mf_ctx *c, yaml_node_item_t id)
{
    return yaml_document_get_node(&c->st->doc, id);
}

/* Checks that mapping n has only keys from allowed ("a|b|c"), no duplicates. */
static wn_err check_keys(mf_ctx *c, yaml_node_t *n, const char *where, const char *allowed)
{
    if (n->type != YAML_MAPPING_NODE) return bad(c, n, where, "expected a mapping");
    for (yaml_node_pair_t *p = n->data.mapping.pairs.start; p < n->data.mapping.pairs.top; p++) {
        yaml_node_t *k = node(c, p->key);
        const char *ks = scalar(k);
        if (!ks) return bad(c, k, where, "keys must be plain strings");
        if (!enum_has(allowed, ks))
            return bad(c, k, where, "unknown key '%s' (allowed: %s)", ks, allowed);
        for (yaml_node_pair_t *q = n->data.mapping.pairs.start; q < p; q++)
            if (!strcmp(scalar(node(c, q->key)), ks))
                return bad(c, k, where, "duplicate key '%s'", ks);
    }
    return WN_OK;
}

static yaml_node_t *get(mf_ctx *c, yaml_node_t *map, const char *key)
{
    if (!map || map->type != YAML_MAPPING_NODE) return NULL;
    for (yaml_node_pair_t *p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top; p++)
        if (!strcmp(scalar(node(c, p->key)), key)) return node(c, p->value);
    return NULL;
}

/* Reads an optional scalar member as a declared parameter would be read. */
static wn_err get_value(mf_ctx *c, yaml_node_t *map, const char *where, const wn_param_def *p,
                        wn_value *v)
{
    char key[256], why[256];
    yaml_node_t *n = get(c, map, p->name);
    const char *s = n && !is_null(n) ? scalar(n) : p->def;
    snprintf(key, sizeof key, "%s%s%s", where, *where ? "." : "", p->name);
    if (n && !is_null(n) && !s) return bad(c, n, key, "expected a single value");
    if (!s) return bad(c, map, key, "required key is missing");
    const char *problem = param_value(p, s, v, why, sizeof why);
    if (problem) return bad(c, n ? n : map, key, "%s, got '%s'", problem, s);
    return WN_OK;
}

static const wn_param_def top_params[] = {
    {"name", WN_P_STRING, NULL, 0, 0, NULL, "run name; the run directory defaults to runs/<name>"},
    {"workdir", WN_P_STRING, "", 0, 0, NULL, "run directory (default runs/<name>)"},
    {"on_error", WN_P_ENUM, "fail", 0, 0, "fail|skip", "bad input: stop, or skip and count"},
    {"threads", WN_P_STRING, "auto", 0, 0, NULL, "OpenMP threads: auto or a number"},
    {"device", WN_P_ENUM, "auto", 0, 0, "auto|cpu|cuda", "where scoring kernels run"},
    {"memory", WN_P_SIZE, "4GiB", 1 << 20, 9e18, NULL, "budget for stage state; spill beyond it"},
    {"batch_bytes", WN_P_SIZE, "4MiB", 1024, 1 << 30, NULL, "text bytes per batch"},
};
enum { TP_NAME, TP_WORKDIR, TP_ON_ERROR, TP_THREADS, TP_DEVICE, TP_MEMORY, TP_BATCH };

static const wn_param_def input_params[] = {
    {"path", WN_P_STRING, NULL, 0, 0, NULL, "glob of input files"},
    {"format", WN_P_ENUM, "auto", 0, 0, "auto|jsonl|text|wet|archive", "input format"},
    {"text_key", WN_P_STRING, "text", 0, 0, NULL, "JSONL field holding the text"},
    {"id_key", WN_P_STRING, "id", 0, 0, NULL, "JSONL field holding the id"},
    {"on_error", WN_P_ENUM, "inherit", 0, 0, "inherit|fail|skip", "overrides the top level"},
    {"text_unit", WN_P_ENUM, "file", 0, 0, "file|line", "text inputs: a document per file or per line"},
    {"utf8", WN_P_ENUM, "strict", 0, 0, "strict|pass", "invalid UTF-8: input error, or pass to stages"},
};

static const wn_param_def doc_out_params[] = {
    {"format", WN_P_ENUM, "jsonl.zst", 0, 0, "jsonl.zst", "curated documents format"},
    {"shard_bytes", WN_P_SIZE, "256MB", 1024, 9e18, NULL, "uncompressed bytes per shard (closed after the record that fills it)"},
    {"level", WN_P_INT, "3", 1, 19, NULL, "zstd compression level"},
};

wn_format wn_format_from_name(const char *path)
{
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    char name[512];
    snprintf(name, sizeof name, "%s", base);
    static const char *const comp[] = {".gz", ".zst", ".bz2", ".xz"};
    size_t n = strlen(name);
    if (n >= 4 && (!strcmp(name + n - 4, ".tgz") || !strcmp(name + n - 4, ".zip")))
        return WN_FMT_ARCHIVE;
    for (size_t i = 0; i < WN_ARRAY_LEN(comp); i++) {
        size_t l = strlen(comp[i]);
        if (n > l && !strcmp(name + n - l, comp[i])) { name[n - l] = 0; n -= l; break; }
    }
    const char *dot = strrchr(name, '.');
    if (!dot) return WN_FMT_AUTO;
    if (!strcmp(dot, ".tar")) return WN_FMT_ARCHIVE;
    if (!strcmp(dot, ".wet") || !strcmp(dot, ".warc")) return WN_FMT_WET;
    if (!strcmp(dot, ".jsonl") || !strcmp(dot, ".json") || !strcmp(dot, ".ndjson")) return WN_FMT_JSONL;
    if (!strcmp(dot, ".txt") || !strcmp(dot, ".text") || !strcmp(dot, ".md")) return WN_FMT_TEXT;
    return WN_FMT_AUTO;
}

const char *wn_format_name(wn_format f)
{
    static const char *const names[] = {"auto", "jsonl", "text", "wet", "archive"};
    return names[f];
}

static wn_err load_inputs(mf_ctx *c, yaml_node_t *seq)
{
    wn_manifest *m = c->m;
    if (!seq) return bad(c, NULL, "inputs", "required key is missing");
    if (seq->type != YAML_SEQUENCE_NODE || seq->data.sequence.items.top == seq->data.sequence.items.start)
        return bad(c, seq, "inputs", "expected a non-empty list of inputs");
    int n = (int)(seq->data.sequence.items.top - seq->data.sequence.items.start);
    m->inputs = wn_calloc((size_t)n, sizeof *m->inputs);
    if (!m->inputs) return WN_ERR_NOMEM;
    for (int i = 0; i < n; i++) {
        yaml_node_t *in = node(c, seq->data.sequence.items.start[i]);
        char where[64];
        snprintf(where, sizeof where, "inputs[%d]", i);
        wn_err e = check_keys(c, in, where, "path|format|text_key|id_key|on_error|text_unit|utf8");
        if (e) return e;
        wn_value v[WN_ARRAY_LEN(input_params)];
        for (size_t k = 0; k < WN_ARRAY_LEN(input_params); k++)
            if ((e = get_value(c, in, where, &input_params[k], &v[k]))) return e;
        wn_input_spec *s = &m->inputs[m->n_inputs++];
        s->line = LINE(in);
        s->path = own_dup(c, v[0].s);
        s->format = !strcmp(v[1].s, "auto") ? WN_FMT_AUTO : !strcmp(v[1].s, "jsonl") ? WN_FMT_JSONL
                  : !strcmp(v[1].s, "text") ? WN_FMT_TEXT : !strcmp(v[1].s, "wet") ? WN_FMT_WET
                  : WN_FMT_ARCHIVE;
        s->text_key = own_dup(c, v[2].s);
        s->id_key = own_dup(c, v[3].s);
        s->on_error = !strcmp(v[4].s, "inherit") ? m->on_error
                    : !strcmp(v[4].s, "skip") ? WN_ON_ERROR_SKIP : WN_ON_ERROR_FAIL;
        s->text_unit_line = !strcmp(v[5].s, "line");
        s->utf8_pass = !strcmp(v[6].s, "pass");
        if (!s->path || !s->text_key || !s->id_key) return WN_ERR_NOMEM;
        if (!*s->path) return bad(c, in, where, "path is empty");
    }
    return WN_OK;
}

static wn_err load_datasets(mf_ctx *c, yaml_node_t *map)
{
    wn_manifest *m = c->m;
    if (!map || is_null(map)) return WN_OK;
    if (map->type != YAML_MAPPING_NODE) return bad(c, map, "datasets", "expected a mapping of name: {path: GLOB}");
    int n = (int)(map->data.mapping.pairs.top - map->data.mapping.pairs.start);
    m->datasets = wn_calloc((size_t)n, sizeof *m->datasets);
    if (!m->datasets) return WN_ERR_NOMEM;
    for (int i = 0; i < n; i++) {
        yaml_node_pair_t *p = &map->data.mapping.pairs.start[i];
        const char *name = scalar(node(c, p->key));
        char where[300];
        if (!name || !*name) return bad(c, node(c, p->key), "datasets", "dataset names must be plain strings");
        snprintf(where, sizeof where, "datasets.%s", name);
        for (int k = 0; k < i; k++)
            if (!strcmp(m->datasets[k].name, name)) return bad(c, node(c, p->key), where, "duplicate dataset name");
        yaml_node_t *v = node(c, p->value);
        wn_err e = check_keys(c, v, where, "path|format|text_key");
        if (e) return e;
        const char *path = scalar(get(c, v, "path"));
        if (!path || !*path) return bad(c, v, where, "path is required");
        m->datasets[m->n_datasets].name = own_dup(c, name);
        m->datasets[m->n_datasets].path = own_dup(c, path);
        m->n_datasets++;
    }
    return WN_OK;
}

static wn_err load_stage(mf_ctx *c, yaml_node_t *item, int idx)
{
    wn_manifest *m = c->m;
    char where[300];
    snprintf(where, sizeof where, "stages[%d]", idx);
    if (item->type != YAML_MAPPING_NODE ||
        item->data.mapping.pairs.top - item->data.mapping.pairs.start != 1)
        return bad(c, item, where, "a stage entry is a one-key map: '- <stage>: {params}'");
    yaml_node_pair_t *p = item->data.mapping.pairs.start;
    const char *name = scalar(node(c, p->key));
    const wn_stage_def *def = name ? wn_stage_find(name) : NULL;
    if (!def) return bad(c, item, where, "unknown stage '%s' (see `winnow stages`)", name ? name : "?");
    snprintf(where, sizeof where, "stages[%d].%s", idx, name);
    yaml_node_t *params = node(c, p->value);
    if (is_null(params)) params = NULL;
    if (params) {
        if (params->type != YAML_MAPPING_NODE) return bad(c, params, where, "expected a mapping of parameters");
        for (yaml_node_pair_t *q = params->data.mapping.pairs.start; q < params->data.mapping.pairs.top; q++) {
            const char *k = scalar(node(c, q->key));
            int found = 0;
            for (int j = 0; j < def->n_params && k; j++) found |= !strcmp(def->params[j].name, k);
            if (!found) {
                wn_buf names = {0};
                for (int j = 0; j < def->n_params; j++)
                    wn_buf_printf(&names, "%s%s", j ? ", " : "", def->params[j].name);
                wn_err e = bad(c, node(c, q->key), where, "unknown parameter '%s' (%s takes: %s)",
                               k ? k : "?", name, names.len ? names.p : "no parameters");
                wn_buf_free(&names);
                return e;
            }
            for (yaml_node_pair_t *r = params->data.mapping.pairs.start; r < q; r++)
                if (!strcmp(scalar(node(c, r->key)), k))
                    return bad(c, node(c, q->key), where, "duplicate parameter '%s'", k);
        }
    }
    wn_stage_spec *s = &m->stages[m->n_stages++];
    s->def = def;
    s->line = LINE(item);
    s->values = wn_calloc((size_t)(def->n_params ? def->n_params : 1), sizeof *s->values);
    if (!s->values) return WN_ERR_NOMEM;
    for (int j = 0; j < def->n_params; j++) {
        yaml_node_t empty = {0};
        empty.type = YAML_MAPPING_NODE;
        empty.start_mark = item->start_mark;
        wn_err e = get_value(c, params ? params : &empty, where, &def->params[j], &s->values[j]);
        if (e) return e;
    }
    return WN_OK;
}

static wn_err load_outputs(mf_ctx *c, yaml_node_t *out)
{
    wn_manifest *m = c->m;
    yaml_node_t empty = {0};
    empty.type = YAML_MAPPING_NODE;
    yaml_node_t *docs = NULL;
    if (out && !is_null(out)) {
        wn_err e = check_keys(c, out, "outputs", "documents");
        if (e) return e;
        docs = get(c, out, "documents");
        if (docs && is_null(docs)) docs = NULL;
        if (docs && (e = check_keys(c, docs, "outputs.documents", "format|shard_bytes|level"))) return e;
    }
    wn_value v[WN_ARRAY_LEN(doc_out_params)];
    for (size_t k = 0; k < WN_ARRAY_LEN(doc_out_params); k++) {
        wn_err e = get_value(c, docs ? docs : &empty, "outputs.documents", &doc_out_params[k], &v[k]);
        if (e) return e;
    }
    m->shard_bytes = v[1].i;
    m->zstd_level = (int)v[2].i;
    return WN_OK;
}

const wn_param_def wn_experiment_params[] = {
    {"eval", WN_P_STRING, NULL, 0, 0, NULL, "dataset name: the held-out target set (never used for scoring)"},
    {"seeds", WN_P_INT, "3", 1, 100, NULL, "training runs per arm (model initialisation and data order)"},
    {"steps", WN_P_INT, "300", 1, 10000000, NULL, "optimizer steps per training run"},
    {"batch", WN_P_INT, "8", 1, 4096, NULL, "sequences per step"},
    {"context", WN_P_INT, "128", 8, 8192, NULL, "sequence length T (with best_fit packing, T + 1 <= seq_len + 1)"},
    {"layers", WN_P_INT, "2", 1, 64, NULL, "model layers"},
    {"dim", WN_P_INT, "64", 8, 4096, NULL, "model width C"},
    {"heads", WN_P_INT, "4", 1, 64, NULL, "attention heads"},
    {"lr", WN_P_FLOAT, "0.003", 0, 1, NULL, "peak learning rate (warmup 10%, cosine to lr/10)"},
    {"eval_every", WN_P_INT, "25", 1, 10000000, NULL, "steps between held-out evaluations"},
    {"budgets", WN_P_STRING, "1", 0, 0, NULL,
     "comma-separated fractions of steps: a token-budget sweep per arm (3 or more: scaling-law fits)"},
};
const int wn_experiment_n_params = (int)WN_ARRAY_LEN(wn_experiment_params);

/* The stage an experiment's arms and baseline modify: the first with
 * parameter overrides for a random baseline (stage.h). -1 when none. */
int wn_manifest_selecting_stage(const wn_manifest *m)
{
    for (int i = 0; i < m->n_stages; i++) {
        const wn_stage_def *d = m->stages[i].def;
        const char *b = d->baseline ? d->baseline(m->stages[i].values) : NULL;
        if (b && strcmp(b, "-")) return i;
    }
    return -1;
}

static wn_err load_experiment(mf_ctx *c, yaml_node_t *x)
{
    wn_manifest *m = c->m;
    if (!x || is_null(x)) return WN_OK;
    wn_err e = check_keys(c, x, "experiment", "eval|seeds|steps|batch|context|layers|dim|heads|lr|eval_every|budgets|arms");
    if (e) return e;
    m->experiment = wn_calloc((size_t)wn_experiment_n_params, sizeof *m->experiment);
    if (!m->experiment) return WN_ERR_NOMEM;
    for (int k = 0; k < wn_experiment_n_params; k++)
        if ((e = get_value(c, x, "experiment", &wn_experiment_params[k], &m->experiment[k]))) return e;
    for (int k = 0; k < wn_experiment_n_params; k++)
        if (m->experiment[k].s) m->experiment[k].s = own_dup(c, m->experiment[k].s);
    m->experiment_line = (int)x->start_mark.line + 1;
    int sel = wn_manifest_selecting_stage(m);
    if (sel < 0)
        return bad(c, x, "experiment", "the pipeline has no selecting stage (one with a random baseline, e.g. select)");
    yaml_node_t *arms = get(c, x, "arms");
    if (!arms || is_null(arms)) return WN_OK;
    if (arms->type != YAML_MAPPING_NODE) return bad(c, arms, "experiment.arms", "expected a mapping of name: {params}");
    int n = (int)(arms->data.mapping.pairs.top - arms->data.mapping.pairs.start);
    m->arms = wn_calloc((size_t)(n ? n : 1), sizeof *m->arms);
    if (!m->arms) return WN_ERR_NOMEM;
    const wn_stage_def *def = m->stages[sel].def;
    for (int i = 0; i < n; i++) {
        yaml_node_pair_t *p = &arms->data.mapping.pairs.start[i];
        const char *name = scalar(node(c, p->key));
        char where[300];
        if (!name || !*name || strchr(name, '/') || !strcmp(name, "selected") || !strcmp(name, "random"))
            return bad(c, node(c, p->key), "experiment.arms",
                       "arm names must be plain strings without '/', other than selected and random");
        snprintf(where, sizeof where, "experiment.arms.%s", name);
        for (int k = 0; k < i; k++)
            if (!strcmp(m->arms[k].name, name)) return bad(c, node(c, p->key), where, "duplicate arm name");
        yaml_node_t *v = node(c, p->value);
        if (v->type != YAML_MAPPING_NODE) return bad(c, v, where, "expected a mapping of %s parameters", def->name);
        wn_exp_arm *a = &m->arms[m->n_arms];
        a->name = own_dup(c, name);
        a->line = (int)v->start_mark.line + 1;
        int np = (int)(v->data.mapping.pairs.top - v->data.mapping.pairs.start);
        a->keys = (char **)own(c, wn_calloc((size_t)(np ? np : 1), sizeof *a->keys));
        a->vals = (char **)own(c, wn_calloc((size_t)(np ? np : 1), sizeof *a->vals));
        if (!a->keys || !a->vals) return WN_ERR_NOMEM;
        for (int j = 0; j < np; j++) {
            yaml_node_pair_t *q = &v->data.mapping.pairs.start[j];
            const char *key = scalar(node(c, q->key)), *val = scalar(node(c, q->value));
            const wn_param_def *pd = NULL;
            for (int k = 0; key && k < def->n_params; k++)
                if (!strcmp(def->params[k].name, key)) pd = &def->params[k];
            char kw[400], why[256];
            snprintf(kw, sizeof kw, "%s.%s", where, key ? key : "?");
            if (!pd) return bad(c, node(c, q->key), kw, "%s has no such parameter", def->name);
            if (!val) return bad(c, node(c, q->value), kw, "expected a single value");
            wn_value tmp;
            const char *problem = param_value(pd, val, &tmp, why, sizeof why);
            if (problem) return bad(c, node(c, q->value), kw, "%s, got '%s'", problem, val);
            a->keys[a->n] = own_dup(c, key);
            a->vals[a->n] = own_dup(c, val);
            a->n++;
        }
        m->n_arms++;
    }
    return WN_OK;
}

wn_err wn_manifest_override(wn_manifest *m, int stage, const char *key, const char *value, wn_errbuf *err)
{
    mf_ctx c = {m, m->strings, m->file, err};
    const wn_stage_def *def = m->stages[stage].def;
    for (int k = 0; k < def->n_params; k++) {
        if (strcmp(def->params[k].name, key)) continue;
        char why[256];
        wn_value v;
        const char *problem = param_value(&def->params[k], value, &v, why, sizeof why);
        if (problem) return wn_fail(err, WN_ERR_MANIFEST, "%s: %s.%s: %s, got '%s'", m->file, def->name, key, problem, value);
        if (v.s && !(v.s = own_dup(&c, v.s))) return WN_ERR_NOMEM;
        m->stages[stage].values[k] = v;
        return WN_OK;
    }
    return wn_fail(err, WN_ERR_MANIFEST, "%s: %s has no parameter %s", m->file, def->name, key);
}

wn_err wn_manifest_set_workdir(wn_manifest *m, const char *dir, wn_errbuf *err)
{
    mf_ctx c = {m, m->strings, m->file, err};
    char *d = own_dup(&c, dir);
    if (!d) return wn_fail(err, WN_ERR_NOMEM, "out of memory");
    m->workdir = d;
    return WN_OK;
}

wn_err wn_manifest_set_device(wn_manifest *m, const char *device, wn_errbuf *err)
{
    if (strcmp(device, "auto") && strcmp(device, "cpu") && strcmp(device, "cuda"))
        return wn_fail(err, WN_ERR_USAGE, "--device: expected auto, cpu or cuda, got '%s'", device);
    mf_ctx c = {m, m->strings, m->file, err};
    char *d = own_dup(&c, device);
    if (!d) return wn_fail(err, WN_ERR_NOMEM, "out of memory");
    m->device = d;
    return WN_OK;
}

void wn_manifest_remove_stage(wn_manifest *m, int stage)
{
    wn_free(m->stages[stage].values);
    memmove(&m->stages[stage], &m->stages[stage + 1], (size_t)(m->n_stages - stage - 1) * sizeof *m->stages);
    m->n_stages--;
}

static wn_err load_tree(mf_ctx *c)
{
    wn_manifest *m = c->m;
    yaml_node_t *root = yaml_document_get_root_node(&c->st->doc);
    if (!root) return wn_fail(c->err, WN_ERR_MANIFEST, "%s: the manifest is empty", c->file);
    wn_err e = check_keys(c, root, "(top level)",
                          "name|workdir|on_error|threads|device|memory|batch_bytes|inputs|datasets|stages|outputs|experiment|"
                          "resolved");
    if (e) return e;
    wn_value v[WN_ARRAY_LEN(top_params)];
    for (size_t k = 0; k < WN_ARRAY_LEN(top_params); k++)
        if ((e = get_value(c, root, "", &top_params[k], &v[k]))) return e;
    m->name = own_dup(c, v[TP_NAME].s);
    if (!*m->name || strchr(m->name, '/'))
        return bad(c, get(c, root, "name"), "name", "must be non-empty and contain no '/'");
    if (*v[TP_WORKDIR].s) {
        m->workdir = own_dup(c, v[TP_WORKDIR].s);
    } else {
        wn_buf w = {0};
        wn_buf_printf(&w, "runs/%s", m->name);
        m->workdir = own(c, w.p);
    }
    m->on_error = !strcmp(v[TP_ON_ERROR].s, "skip");
    if (strcmp(v[TP_THREADS].s, "auto")) {
        char *end;
        long t = strtol(v[TP_THREADS].s, &end, 10);
        if (*end || t < 1 || t > 4096)
            return bad(c, get(c, root, "threads"), "threads", "expected auto or a number from 1 to 4096, got '%s'",
                       v[TP_THREADS].s);
        m->threads = (int)t;
    }
    m->device = own_dup(c, v[TP_DEVICE].s);
    m->memory = v[TP_MEMORY].i;
    m->batch_bytes = v[TP_BATCH].i;
    if (!get(c, root, "inputs")) return bad(c, root, "inputs", "required key is missing");
    if ((e = load_inputs(c, get(c, root, "inputs")))) return e;
    if ((e = load_datasets(c, get(c, root, "datasets")))) return e;
    yaml_node_t *stages = get(c, root, "stages");
    if (stages && !is_null(stages)) {
        if (stages->type != YAML_SEQUENCE_NODE) return bad(c, stages, "stages", "expected a list of stages");
        int n = (int)(stages->data.sequence.items.top - stages->data.sequence.items.start);
        m->stages = wn_calloc((size_t)(n ? n : 1), sizeof *m->stages);
        if (!m->stages) return WN_ERR_NOMEM;
        for (int i = 0; i < n; i++)
            if ((e = load_stage(c, node(c, stages->data.sequence.items.start[i]), i))) return e;
    }
    if ((e = load_outputs(c, get(c, root, "outputs")))) return e;
    return load_experiment(c, get(c, root, "experiment"));
}

wn_err wn_manifest_load(wn_manifest **out, const char *path, wn_errbuf *err)
{
    *out = NULL;
    wn_manifest *m = wn_calloc(1, sizeof *m);
    mf_store *st = wn_calloc(1, sizeof *st);
    yaml_parser_t parser;
    int have_parser = 0;
    wn_err e = WN_OK;
    FILE *f = NULL;
    if (!m || !st) { e = WN_ERR_NOMEM; goto cleanup; }
    m->strings = st;
    mf_ctx c = {m, st, path, err};
    m->file = own_dup(&c, path);
    f = fopen(path, "rb");
    if (!f) { e = wn_fail(err, WN_ERR_IO, "%s: cannot open manifest: %s", path, strerror(errno)); goto cleanup; }
    if (!yaml_parser_initialize(&parser)) { e = WN_ERR_NOMEM; goto cleanup; }
    have_parser = 1;
    yaml_parser_set_input_file(&parser, f);
    if (!yaml_parser_load(&parser, &st->doc)) {
        e = wn_fail(err, WN_ERR_MANIFEST, "%s:%d:%d: YAML error: %s%s%s", path,
                    (int)parser.problem_mark.line + 1, (int)parser.problem_mark.column + 1,
                    parser.problem ? parser.problem : "unreadable",
                    parser.context ? " " : "", parser.context ? parser.context : "");
        goto cleanup;
    }
    st->have_doc = 1;
    e = load_tree(&c);
cleanup:
    if (have_parser) yaml_parser_delete(&parser);
    if (f) fclose(f);
    if (e) {
        if (e == WN_ERR_NOMEM) wn_fail(err, e, "%s: out of memory while loading", path);
        wn_manifest_free(m);
        if (!m) wn_free(st);
        return e;
    }
    *out = m;
    return WN_OK;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static wn_err hash_file(const char *path, uint64_t *size, uint64_t *hash, wn_errbuf *err)
{
    FILE *f = fopen(path, "rb");
    if (!f) return wn_fail(err, WN_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    XXH3_state_t *s = XXH3_createState();
    char *buf = wn_malloc(1 << 20);
    wn_err e = WN_OK;
    if (!s || !buf) { e = WN_ERR_NOMEM; goto cleanup; }
    XXH3_64bits_reset(s);
    *size = 0;
    size_t n;
    while ((n = fread(buf, 1, 1 << 20, f)) > 0) {
        XXH3_64bits_update(s, buf, n);
        *size += n;
    }
    if (ferror(f)) e = wn_fail(err, WN_ERR_IO, "%s: read error: %s", path, strerror(errno));
    *hash = XXH3_64bits_digest(s);
cleanup:
    wn_free(buf);
    XXH3_freeState(s);
    fclose(f);
    return e;
}

wn_err wn_manifest_expand_inputs(wn_manifest *m, wn_errbuf *err)
{
    mf_ctx c = {m, m->strings, m->file, err};
    for (int i = 0; i < m->n_inputs; i++) {
        wn_input_spec *s = &m->inputs[i];
        glob_t g;
        int rc = glob(s->path, 0, NULL, &g);
        if (rc == GLOB_NOMATCH || (rc == 0 && g.gl_pathc == 0)) {
            if (rc == 0) globfree(&g);
            return wn_fail(err, WN_ERR_MANIFEST, "%s:%d: inputs[%d].path: no file matches '%s'",
                           m->file, s->line, i, s->path);
        }
        if (rc) return wn_fail(err, WN_ERR_IO, "%s:%d: inputs[%d].path: cannot expand '%s'",
                               m->file, s->line, i, s->path);
        qsort(g.gl_pathv, g.gl_pathc, sizeof *g.gl_pathv, cmp_str);
        wn_input_file *files = wn_realloc(m->files, (m->n_files + g.gl_pathc) * sizeof *files);
        if (!files) { globfree(&g); return WN_ERR_NOMEM; }
        m->files = files;
        for (size_t k = 0; k < g.gl_pathc; k++) {
            wn_input_file *f = &m->files[m->n_files];
            memset(f, 0, sizeof *f);
            struct stat sb;
            if (stat(g.gl_pathv[k], &sb) || !S_ISREG(sb.st_mode)) continue; /* directories */
            f->path = own_dup(&c, g.gl_pathv[k]);
            f->spec = i;
            f->format = s->format != WN_FMT_AUTO ? s->format : wn_format_from_name(f->path);
            if (f->format == WN_FMT_AUTO) {
                globfree(&g);
                return wn_fail(err, WN_ERR_MANIFEST,
                               "%s:%d: inputs[%d]: cannot tell the format of '%s' from its name; "
                               "set format: jsonl|text|wet|archive", m->file, s->line, i, f->path);
            }
            wn_err e = hash_file(f->path, &f->size, &f->hash, err);
            if (e) { globfree(&g); return e; }
            m->n_files++;
        }
        globfree(&g);
    }
    return WN_OK;
}

/* A YAML double-quoted scalar. Everything outside YAML's printable set, and
 * the characters YAML reads as line breaks (NEL, LS, PS) or a BOM, is written
 * as an escape, so the resolved manifest loads back to the same strings. */
static void yq(wn_buf *o, const char *s)
{
    size_t n = strlen(s);
    wn_buf_putc(o, '"');
    for (size_t i = 0; i < n;) {
        size_t start = i;
        int32_t c = wn_utf8_next(s, n, &i);
        if (c == '"' || c == '\\') wn_buf_printf(o, "\\%c", (char)c);
        else if (c == '\n') wn_buf_puts(o, "\\n");
        else if (c == '\t') wn_buf_puts(o, "\\t");
        else if (c < 0 || c < 0x20 || (c >= 0x7f && c <= 0xa0) || c == 0x2028 || c == 0x2029 || c == 0xfeff ||
                 (c >= 0xd800 && c <= 0xdfff) || c == 0xfffe || c == 0xffff)
            wn_buf_printf(o, "\\u%04x", c < 0 ? 0xfffd : (unsigned)c);
        else wn_buf_append(o, s + start, i - start);
    }
    wn_buf_putc(o, '"');
}

static void put_value(wn_buf *o, const wn_param_def *p, const wn_value *v)
{
    switch (p->type) {
    case WN_P_BOOL: wn_buf_puts(o, v->b ? "true" : "false"); break;
    case WN_P_INT:
    case WN_P_SIZE: wn_buf_printf(o, "%lld", (long long)v->i); break;
    case WN_P_FLOAT: wn_buf_printf(o, "%.17g", v->f); break;
    case WN_P_STRING:
    case WN_P_ENUM: yq(o, v->s); break;
    }
}

wn_err wn_manifest_resolved(const wn_manifest *m, wn_buf *o)
{
    wn_buf_printf(o, "# resolved by winnow %s from %s: every default filled in\n", WN_VERSION, m->file);
    wn_buf_puts(o, "name: "); yq(o, m->name);
    wn_buf_puts(o, "\nworkdir: "); yq(o, m->workdir);
    wn_buf_printf(o, "\non_error: %s\n", m->on_error ? "skip" : "fail");
    if (m->threads) wn_buf_printf(o, "threads: %d\n", m->threads);
    else wn_buf_puts(o, "threads: auto\n");
    wn_buf_printf(o, "device: %s\nmemory: %lld\nbatch_bytes: %lld\ninputs:\n", m->device,
                  (long long)m->memory, (long long)m->batch_bytes);
    for (int i = 0; i < m->n_inputs; i++) {
        const wn_input_spec *s = &m->inputs[i];
        wn_buf_puts(o, "  - path: "); yq(o, s->path);
        wn_buf_printf(o, "\n    format: %s\n    text_key: ", wn_format_name(s->format));
        yq(o, s->text_key);
        wn_buf_puts(o, "\n    id_key: "); yq(o, s->id_key);
        wn_buf_printf(o, "\n    on_error: %s\n    text_unit: %s\n    utf8: %s\n",
                      s->on_error ? "skip" : "fail", s->text_unit_line ? "line" : "file",
                      s->utf8_pass ? "pass" : "strict");
    }
    if (m->n_datasets) {
        wn_buf_puts(o, "datasets:\n");
        for (int i = 0; i < m->n_datasets; i++) {
            wn_buf_puts(o, "  "); yq(o, m->datasets[i].name);
            wn_buf_puts(o, ": {path: "); yq(o, m->datasets[i].path); wn_buf_puts(o, "}\n");
        }
    }
    wn_buf_puts(o, m->n_stages ? "stages:\n" : "stages: []\n");
    for (int i = 0; i < m->n_stages; i++) {
        const wn_stage_spec *s = &m->stages[i];
        wn_buf_printf(o, "  - %s: {", s->def->name);
        for (int j = 0; j < s->def->n_params; j++) {
            wn_buf_printf(o, "%s%s: ", j ? ", " : "", s->def->params[j].name);
            put_value(o, &s->def->params[j], &s->values[j]);
        }
        wn_buf_puts(o, "}\n");
    }
    wn_buf_printf(o, "outputs:\n  documents: {format: jsonl.zst, shard_bytes: %lld, level: %d}\n",
                  (long long)m->shard_bytes, m->zstd_level);
    if (m->n_files) {
        wn_buf_printf(o, "resolved:\n  winnow_version: \"%s\"\n  files:\n", WN_VERSION);
        for (int i = 0; i < m->n_files; i++) {
            const wn_input_file *f = &m->files[i];
            wn_buf_puts(o, "    - {path: "); yq(o, f->path);
            wn_buf_printf(o, ", format: %s, size: %llu, xxh3_64: \"%016llx\"}\n", wn_format_name(f->format),
                          (unsigned long long)f->size, (unsigned long long)f->hash);
        }
    }
    return o->p ? WN_OK : WN_ERR_NOMEM;
}

void wn_manifest_free(wn_manifest *m)
{
    if (!m) return;
    mf_store *st = m->strings;
    for (int i = 0; i < m->n_stages; i++) wn_free(m->stages[i].values);
    wn_free(m->stages);
    wn_free(m->inputs);
    wn_free(m->files);
    wn_free(m->datasets);
    wn_free(m->experiment);
    wn_free(m->arms);
    if (st) {
        for (int i = 0; i < st->n_owned; i++) wn_free(st->owned[i]);
        wn_free(st->owned);
        if (st->have_doc) yaml_document_delete(&st->doc);
        wn_free(st);
    }
    wn_free(m);
}
