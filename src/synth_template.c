/*
 * synth_template.c - parser and expander of the synthesis template language
 * (synth_template.h; the format is specified in docs/synthesis.md).
 *
 * Representation: everything lives in flat arrays owned by the wn_tmpl and
 * linked by index, so a parsed set is a handful of allocations and threads
 * can share it. A piece of template text is a linked list of nodes (literal
 * text, or one slot each); a choice (a list, a rule, an inline (a|b)) is a
 * linked list of weighted alternatives, each a node list; arithmetic is a
 * tree of expr. Names (lists, rules, variables) are interned symbols,
 * resolved once after the whole file is read, so definitions may come after
 * their use and every unknown name is reported with its line before anything
 * runs.
 *
 * Expansion walks the lists recursively. A slot with filters or a binding
 * expands into a scratch buffer of its depth first (two per depth, for the
 * filters to ping-pong), everything else straight into its parent's buffer.
 * Depth (recursive rules), work (expansion steps) and size are bounded, so
 * no template can hang or exhaust memory.
 */
#include "synth_template.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

#include "fs.h"
#include "json.h"
#include "text.h"

enum { N_TEXT, N_NAME, N_INT, N_DOC, N_CALC, N_CHOICE };
enum { F_UPPER, F_LOWER, F_CAP, F_TRIM, F_WORDS, F_CHARS, F_SENTENCE };
enum { MAX_DEPTH = 48, MAX_NEST = 64, MAX_WEIGHT = 1000000000, WORK_FACTOR = 16 };
#define MAX_STEPS 1000000u
#define MAX_CONST 1000000000000000000ll /* |integer literals| <= 1e18 */
#define DEFAULT_LIMIT (1u << 20)

typedef struct {
    uint8_t kind, silent;
    int32_t next;      /* next node of the list, -1 = end */
    int32_t bind;      /* symbol bound to the result, -1 = none */
    int32_t line;
    int32_t a, b;      /* TEXT, DOC: pool offset, length; NAME: symbol; INT: lo, hi exprs;
                          CALC: expr root; CHOICE: first alternative */
    int32_t filt, nfilt;
    uint64_t total;    /* CHOICE: sum of the weights */
} node;

typedef struct {
    char op;         /* 'n' constant, 'v' variable, + - * / %, 'u' negation */
    int32_t l, r;
    int64_t v;       /* constant, or symbol of a variable */
} expr;

typedef struct {
    uint64_t w;
    int32_t head, next;
} alt;

typedef struct {
    uint8_t op;
    int64_t n;
} filt;

typedef struct {
    uint32_t name;                 /* pool offset, NUL-terminated */
    int32_t alt;                   /* definition: first alternative */
    uint64_t total;
    int32_t def_line, var_line, use_line, num_line; /* first line of each role, 0 = none */
    uint8_t is_list;
} sym;

typedef struct {
    uint32_t name;
    uint64_t w;
    int32_t head, line;
    uint8_t active;
} tpl;

struct wn_tmpl {
    char path[4096];
    wn_buf pool;
    node *nd;
    expr *ex;
    alt *al;
    filt *fl;
    sym *sy;
    tpl *tp;
    size_t n_nd, n_ex, n_al, n_fl, n_sy, n_tp;
    size_t c_nd, c_ex, c_al, c_fl, c_sy, c_tp;
    uint64_t total; /* weights of the active templates */
};

/* ---- small helpers ---------------------------------------------------------- */

static int grow(void **p, size_t *cap, size_t size)
{
    size_t c = *cap ? *cap * 2 : 16;
    if (c > INT32_MAX) return -1;
    void *q = wn_realloc(*p, c * size);
    if (!q) return -1;
    *p = q;
    *cap = c;
    return 0;
}
/* Appends one zeroed element to t->arr; the index, or -1 when out of memory. */
#define PUSH(t, arr, n, c)                                                                          \
    ((t)->n < (t)->c || !grow((void **)&(t)->arr, &(t)->c, sizeof *(t)->arr)                       \
         ? (memset(&(t)->arr[(t)->n], 0, sizeof *(t)->arr), (int32_t)(t)->n++)                    \
         : -1)

static const char *pool_str(const wn_tmpl *t, uint32_t off) { return t->pool.p + off; }

static int is_id0(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_'; }
static int is_id(char c) { return is_id0(c) || (c >= '0' && c <= '9'); }
static int is_digit(char c) { return c >= '0' && c <= '9'; }
static int is_ws(char c) { return c == ' ' || c == '\t'; }
static int is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f'; }

/* ---- parsing ---------------------------------------------------------------- */

typedef struct {
    wn_tmpl *t;
    wn_errbuf *err;
    const char *s, *end; /* the text being parsed */
    int line;            /* line of *s */
    int nest;            /* slot and expression nesting */
    unsigned flags;
    wn_buf lit;          /* literal text being collected */
} ps;

static wn_err perr(ps *p, int line, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static wn_err perr(ps *p, int line, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return wn_fail(p->err, WN_ERR_INPUT, "%s:%d: %s", p->t->path, line, msg);
}

static wn_err nomem(ps *p) { return wn_fail(p->err, WN_ERR_NOMEM, "%s: out of memory", p->t->path); }

static void skip_ws(ps *p)
{
    while (p->s < p->end && is_ws(*p->s)) p->s++;
}

/* Reads an identifier at p->s into (start, length); 0 when there is none. */
static size_t read_id(ps *p, const char **start)
{
    *start = p->s;
    if (p->s >= p->end || !is_id0(*p->s)) return 0;
    while (p->s < p->end && is_id(*p->s)) p->s++;
    return (size_t)(p->s - *start);
}

static int id_is(const char *s, size_t n, const char *word) { return strlen(word) == n && !memcmp(s, word, n); }

/* The symbol named s[0..n), added when new. */
static int32_t intern(ps *p, const char *s, size_t n)
{
    wn_tmpl *t = p->t;
    for (size_t i = 0; i < t->n_sy; i++) {
        const char *k = pool_str(t, t->sy[i].name);
        if (strlen(k) == n && !memcmp(k, s, n)) return (int32_t)i;
    }
    int32_t i = PUSH(t, sy, n_sy, c_sy);
    if (i < 0) return -1;
    t->sy[i].name = (uint32_t)t->pool.len;
    t->sy[i].alt = -1;
    if (wn_buf_append(&t->pool, s, n) || wn_buf_putc(&t->pool, 0)) return -1;
    return i;
}

static int reserved(const char *s, size_t n) { return id_is(s, n, "int") || id_is(s, n, "calc") || id_is(s, n, "doc"); }

/* Unsigned decimal at p->s (at most max); 0 when there are no digits or it is too large. */
static int read_uint(ps *p, int64_t max, int64_t *v)
{
    if (p->s >= p->end || !is_digit(*p->s)) return 0;
    int64_t x = 0;
    while (p->s < p->end && is_digit(*p->s)) {
        int d = *p->s++ - '0';
        if (x > (max - d) / 10) return 0;
        x = x * 10 + d;
    }
    *v = x;
    return 1;
}

/* Appends a node and links it after *last (or makes it *first). */
static int32_t new_node(ps *p, int kind, int line)
{
    int32_t i = PUSH(p->t, nd, n_nd, c_nd);
    if (i < 0) return -1;
    node *n = &p->t->nd[i];
    n->kind = (uint8_t)kind;
    n->next = n->bind = n->filt = -1;
    n->line = line;
    return i;
}

static void link_node(wn_tmpl *t, int32_t *first, int32_t *last, int32_t i)
{
    if (*last >= 0) t->nd[*last].next = i;
    else *first = i;
    *last = i;
}

/* Turns the collected literal text into a TEXT node. */
static wn_err flush_lit(ps *p, int32_t *first, int32_t *last, int line)
{
    if (!p->lit.len) return WN_OK;
    int32_t i = new_node(p, N_TEXT, line);
    if (i < 0) return nomem(p);
    p->t->nd[i].a = (int32_t)p->t->pool.len;
    p->t->nd[i].b = (int32_t)p->lit.len;
    if (wn_buf_append(&p->t->pool, p->lit.p, p->lit.len)) return nomem(p);
    link_node(p->t, first, last, i);
    wn_buf_clear(&p->lit);
    return WN_OK;
}

enum { STOP_BAR = 1, STOP_PAREN = 2 };

static wn_err parse_slot(ps *p, int32_t *out);

/* Template text up to the end, or (per stop) a '|' or an unbalanced ')' at
 * this level, which is left unread in *stopped (0 at the end). */
static wn_err parse_seq(ps *p, unsigned stop, int32_t *head, char *stopped)
{
    int32_t first = -1, last = -1;
    int depth = 0, line = p->line;
    wn_err e;
    *stopped = 0;
    wn_buf_clear(&p->lit);
    while (p->s < p->end) {
        char c = *p->s;
        if (c == '\\' && p->s + 1 < p->end && strchr("{}|()[]\\n", p->s[1])) {
            char x = p->s[1] == 'n' ? '\n' : p->s[1];
            if (wn_buf_putc(&p->lit, x)) return nomem(p);
            p->s += 2;
            continue;
        }
        if (c == '{') {
            if ((e = flush_lit(p, &first, &last, line))) return e;
            int32_t i = -1;
            if ((e = parse_slot(p, &i))) return e;
            link_node(p->t, &first, &last, i);
            wn_buf_clear(&p->lit);
            line = p->line;
            continue;
        }
        if (c == '}') return perr(p, p->line, "unmatched '}' (write \\} for a literal brace)");
        if ((stop & STOP_BAR) && c == '|' && depth == 0) { *stopped = '|'; break; }
        if (stop & STOP_PAREN) {
            if (c == ')' && depth == 0) { *stopped = ')'; break; }
            depth += c == '(' ? 1 : c == ')' ? -1 : 0;
        }
        if (c == '\n') p->line++;
        if (wn_buf_putc(&p->lit, c)) return nomem(p);
        p->s++;
    }
    if ((e = flush_lit(p, &first, &last, line))) return e;
    *head = first;
    return WN_OK;
}

/* An optional "[N]" weight at p->s (default 1). */
static wn_err read_weight(ps *p, uint64_t *w)
{
    *w = 1;
    if (p->s >= p->end || *p->s != '[') return WN_OK;
    const char *save = p->s++;
    int64_t v;
    if (!read_uint(p, MAX_WEIGHT, &v) || p->s >= p->end || *p->s != ']') {
        p->s = save;
        return perr(p, p->line, "a weight is [N] with N a whole number 0..%d (write \\[ for a literal bracket)",
                    MAX_WEIGHT);
    }
    p->s++;
    *w = (uint64_t)v;
    return WN_OK;
}

/* Appends an alternative to the list (first, last). */
static wn_err add_alt(ps *p, int32_t *first, int32_t *last, uint64_t w, int32_t head)
{
    int32_t i = PUSH(p->t, al, n_al, c_al);
    if (i < 0) return nomem(p);
    p->t->al[i].w = w;
    p->t->al[i].head = head;
    p->t->al[i].next = -1;
    if (*last >= 0) p->t->al[*last].next = i;
    else *first = i;
    *last = i;
    return WN_OK;
}

/* {( alt | [w] alt | ... )}: p->s is just after '('. */
static wn_err parse_choice(ps *p, node *tmp, int open_line)
{
    int32_t first = -1, last = -1;
    uint64_t total = 0;
    for (;;) {
        uint64_t w;
        int32_t head;
        char stopped;
        wn_err e;
        if ((e = read_weight(p, &w)) || (e = parse_seq(p, STOP_BAR | STOP_PAREN, &head, &stopped))) return e;
        if ((e = add_alt(p, &first, &last, w, head))) return e;
        total += w;
        if (!stopped) return perr(p, open_line, "choice '(' not closed by ')'");
        p->s++;
        if (stopped == ')') break;
    }
    if (!total) return perr(p, open_line, "every alternative of the choice has weight 0");
    tmp->kind = N_CHOICE;
    tmp->a = first;
    tmp->total = total;
    return WN_OK;
}

/* ---- arithmetic ---- */

static int32_t new_expr(ps *p, char op, int32_t l, int32_t r, int64_t v)
{
    int32_t i = PUSH(p->t, ex, n_ex, c_ex);
    if (i < 0) return -1;
    p->t->ex[i] = (expr){op, l, r, v};
    return i;
}

static wn_err parse_sum(ps *p, int32_t *out);

/* A variable used as a number (int bounds, calc). */
static wn_err num_var(ps *p, const char *s, size_t n, int32_t *out)
{
    if (reserved(s, n)) return perr(p, p->line, "'%.*s' is a keyword, not a variable", (int)n, s);
    int32_t v = intern(p, s, n);
    if (v < 0) return nomem(p);
    if (!p->t->sy[v].num_line) p->t->sy[v].num_line = p->line;
    if ((*out = new_expr(p, 'v', -1, -1, v)) < 0) return nomem(p);
    return WN_OK;
}

static wn_err parse_primary(ps *p, int32_t *out)
{
    skip_ws(p);
    if (p->s >= p->end) return perr(p, p->line, "expression ends early");
    if (++p->nest > MAX_NEST) return perr(p, p->line, "expression nested deeper than %d", MAX_NEST);
    wn_err e = WN_OK;
    const char *id;
    size_t n;
    int64_t v;
    if (*p->s == '-') {
        p->s++;
        int32_t a;
        if (!(e = parse_primary(p, &a)) && (*out = new_expr(p, 'u', a, -1, 0)) < 0) e = nomem(p);
    } else if (*p->s == '(') {
        p->s++;
        if (!(e = parse_sum(p, out))) {
            skip_ws(p);
            if (p->s >= p->end || *p->s != ')') e = perr(p, p->line, "expected ')' in calc");
            else p->s++;
        }
    } else if (is_digit(*p->s)) {
        if (!read_uint(p, MAX_CONST, &v)) e = perr(p, p->line, "integer too large (at most 1e18)");
        else if ((*out = new_expr(p, 'n', -1, -1, v)) < 0) e = nomem(p);
    } else if ((n = read_id(p, &id))) {
        e = num_var(p, id, n, out);
    } else {
        e = perr(p, p->line, "expected a number, a variable or '(' in calc, got '%c'", *p->s);
    }
    p->nest--;
    return e;
}

static wn_err parse_prod(ps *p, int32_t *out)
{
    wn_err e = parse_primary(p, out);
    for (skip_ws(p); !e && p->s < p->end && strchr("*/%", *p->s); skip_ws(p)) {
        char op = *p->s++;
        int32_t r;
        if ((e = parse_primary(p, &r))) break;
        if ((*out = new_expr(p, op, *out, r, 0)) < 0) e = nomem(p);
    }
    return e;
}

static wn_err parse_sum(ps *p, int32_t *out)
{
    wn_err e = parse_prod(p, out);
    for (skip_ws(p); !e && p->s < p->end && (*p->s == '+' || *p->s == '-'); skip_ws(p)) {
        char op = *p->s++;
        int32_t r;
        if ((e = parse_prod(p, &r))) break;
        if ((*out = new_expr(p, op, *out, r, 0)) < 0) e = nomem(p);
    }
    return e;
}

static const struct {
    const char *name;
    uint8_t op, arg;
} filters[] = {{"upper", F_UPPER, 0}, {"lower", F_LOWER, 0}, {"cap", F_CAP, 0},       {"trim", F_TRIM, 0},
               {"words", F_WORDS, 1}, {"chars", F_CHARS, 1}, {"sentence", F_SENTENCE, 0}};

static wn_err parse_filters(ps *p, node *tmp)
{
    skip_ws(p);
    while (p->s < p->end && *p->s == '|') {
        p->s++;
        skip_ws(p);
        const char *id;
        size_t n = read_id(p, &id);
        size_t k = 0;
        while (k < WN_ARRAY_LEN(filters) && !id_is(id, n, filters[k].name)) k++;
        if (k == WN_ARRAY_LEN(filters))
            return perr(p, p->line, "unknown filter '%.*s' (upper, lower, cap, trim, words N, chars N, sentence)",
                        (int)n, id);
        int64_t arg = 0;
        if (filters[k].arg) {
            skip_ws(p);
            if (!read_uint(p, 1000000000, &arg))
                return perr(p, p->line, "filter %s takes a count (0..1e9)", filters[k].name);
        }
        int32_t f = PUSH(p->t, fl, n_fl, c_fl);
        if (f < 0) return nomem(p);
        p->t->fl[f] = (filt){filters[k].op, arg};
        if (tmp->filt < 0) tmp->filt = f; /* a slot's filters are consecutive: nothing else pushes here */
        tmp->nfilt++;
        skip_ws(p);
    }
    return WN_OK;
}

/* A slot; p->s is at '{'. */
static wn_err parse_slot(ps *p, int32_t *out)
{
    int open_line = p->line;
    p->s++;
    if (++p->nest > MAX_NEST) return perr(p, open_line, "slots nested deeper than %d", MAX_NEST);
    node tmp = {0};
    tmp.next = tmp.bind = tmp.filt = -1;
    tmp.line = open_line;
    skip_ws(p);
    const char *id, *save = p->s;
    size_t n = read_id(p, &id);
    wn_err e = WN_OK;
    if (n) { /* a binding "x =" or "x :="? */
        skip_ws(p);
        int silent = p->s + 1 < p->end && p->s[0] == ':' && p->s[1] == '=';
        if (silent || (p->s < p->end && *p->s == '=')) {
            if (reserved(id, n)) return perr(p, open_line, "'%.*s' is a keyword and cannot be bound", (int)n, id);
            if ((tmp.bind = intern(p, id, n)) < 0) return nomem(p);
            if (!p->t->sy[tmp.bind].var_line) p->t->sy[tmp.bind].var_line = open_line;
            tmp.silent = (uint8_t)silent;
            p->s += silent ? 2 : 1;
            skip_ws(p);
        } else {
            p->s = save;
        }
    }
    if (p->s < p->end && *p->s == '(') {
        p->s++;
        e = parse_choice(p, &tmp, open_line);
    } else if ((n = read_id(p, &id))) {
        if (id_is(id, n, "int")) {
            tmp.kind = N_INT;
            if (!(e = parse_sum(p, &tmp.a))) {
                skip_ws(p);
                if (p->s + 1 >= p->end || p->s[0] != '.' || p->s[1] != '.')
                    e = perr(p, p->line, "int takes LO..HI");
                else {
                    p->s += 2;
                    e = parse_sum(p, &tmp.b);
                }
            }
            if (!e && p->t->ex[tmp.a].op == 'n' && p->t->ex[tmp.b].op == 'n' && p->t->ex[tmp.a].v > p->t->ex[tmp.b].v)
                e = perr(p, open_line, "int %lld..%lld is empty", (long long)p->t->ex[tmp.a].v,
                         (long long)p->t->ex[tmp.b].v);
        } else if (id_is(id, n, "calc")) {
            tmp.kind = N_CALC;
            e = parse_sum(p, &tmp.a);
        } else if (id_is(id, n, "doc")) {
            const char *f = ++p->s;
            if (f - 1 >= p->end || f[-1] != '.') return perr(p, open_line, "doc takes a field: doc.text, doc.id, doc.NAME");
            while (p->s < p->end && (is_id(*p->s) || *p->s == '-')) p->s++;
            if (p->s == f) return perr(p, open_line, "doc takes a field: doc.text, doc.id, doc.NAME");
            tmp.kind = N_DOC;
            tmp.a = (int32_t)p->t->pool.len;
            tmp.b = (int32_t)(p->s - f);
            if (wn_buf_append(&p->t->pool, f, (size_t)(p->s - f)) || wn_buf_putc(&p->t->pool, 0)) return nomem(p);
        } else {
            tmp.kind = N_NAME;
            if ((tmp.a = intern(p, id, n)) < 0) return nomem(p);
            if (!p->t->sy[tmp.a].use_line) p->t->sy[tmp.a].use_line = open_line;
        }
    } else {
        return perr(p, open_line, "expected a name, int LO..HI, calc EXPR, doc.FIELD or (choices) after '{'");
    }
    if (!e) e = parse_filters(p, &tmp);
    if (e) return e;
    if (p->s >= p->end) return perr(p, open_line, "slot '{' not closed by '}'");
    if (*p->s != '}') return perr(p, p->line, "unexpected '%c' in a slot (expected '|' filter or '}')", *p->s);
    p->s++;
    p->nest--;
    int32_t i = new_node(p, 0, open_line);
    if (i < 0) return nomem(p);
    p->t->nd[i] = tmp;
    *out = i;
    return WN_OK;
}

/* ---- the line structure ---- */

typedef struct {
    const char *p, *end; /* the whole input */
    int line;            /* line number of p */
} lines;

/* The next line [*s, *e) (without '\n' or a trailing '\r'); 0 at the end. */
static int next_line(lines *l, const char **s, const char **e)
{
    if (l->p >= l->end) return 0;
    *s = l->p;
    const char *nl = memchr(l->p, '\n', (size_t)(l->end - l->p));
    *e = nl ? nl : l->end;
    l->p = nl ? nl + 1 : l->end;
    if (*e > *s && (*e)[-1] == '\r') (*e)--;
    l->line++;
    return 1;
}

static int blank(const char *s, const char *e)
{
    while (s < e && is_space(*s)) s++;
    return s == e;
}

/* The indented block after a "...:" header: its lines, indentation (the
 * first line's) removed, joined by '\n' into out; trailing blank lines are
 * not part of it. *first = the line number of its first line. */
static wn_err read_block(ps *p, lines *l, wn_buf *out, int *first)
{
    wn_buf_clear(out);
    size_t indent = 0, keep = 0;
    int n = 0;
    *first = l->line + 1;
    for (;;) {
        lines save = *l;
        const char *s, *e;
        if (!next_line(l, &s, &e)) break;
        if (!blank(s, e) && !is_ws(*s)) { *l = save; break; }
        if (!n++ && !blank(s, e))
            while (s + indent < e && is_ws(s[indent])) indent++;
        if (n == 1 && blank(s, e)) { n = 0; (*first)++; continue; } /* leading blank lines */
        size_t k = 0;
        while (k < indent && s + k < e && is_ws(s[k])) k++;
        if (n > 1 && wn_buf_putc(out, '\n')) return nomem(p);
        if (blank(s, e)) continue; /* blank lines are empty lines */
        if (wn_buf_append(out, s + k, (size_t)(e - s - k))) return nomem(p);
        keep = out->len;
    }
    out->len = keep;
    if (out->p) out->p[keep] = 0;
    return WN_OK;
}

/* A literal item (lists): trimmed; empty items are refused. */
static wn_err add_item(ps *p, int32_t *first, int32_t *last, const char *s, const char *e, int line)
{
    while (s < e && is_space(*s)) s++;
    while (e > s && is_space(e[-1])) e--;
    if (s == e) return perr(p, line, "empty list item");
    int32_t i = new_node(p, N_TEXT, line);
    if (i < 0) return nomem(p);
    p->t->nd[i].a = (int32_t)p->t->pool.len;
    p->t->nd[i].b = (int32_t)(e - s);
    if (wn_buf_append(&p->t->pool, s, (size_t)(e - s))) return nomem(p);
    return add_alt(p, first, last, 1, i);
}

/* list NAME = a | b (with \| for a literal bar). */
static wn_err inline_items(ps *p, const char *s, const char *e, int line, int32_t *first, int32_t *last)
{
    wn_buf item = {0};
    wn_err err = WN_OK;
    for (const char *c = s;; c++) {
        if (c < e && *c == '\\' && c + 1 < e && c[1] == '|') {
            if (wn_buf_putc(&item, '|')) { err = nomem(p); break; }
            c++;
            continue;
        }
        if (c == e || *c == '|') {
            if ((err = add_item(p, first, last, item.p ? item.p : "", item.p ? item.p + item.len : "", line))) break;
            wn_buf_clear(&item);
            if (c == e) break;
            continue;
        }
        if (wn_buf_putc(&item, *c)) { err = nomem(p); break; }
    }
    wn_buf_free(&item);
    return err;
}

/* list NAME < FILE: one item a line, blank lines skipped; FILE is relative
 * to the template file's directory. */
static wn_err file_items(ps *p, const char *s, const char *e, int line, int32_t *first, int32_t *last)
{
    while (s < e && is_space(*s)) s++;
    while (e > s && is_space(e[-1])) e--;
    if (s == e) return perr(p, line, "list NAME < FILE needs a file name");
    if (p->flags & WN_TMPL_NO_FILES) return perr(p, line, "list files are not allowed here");
    char path[8192];
    const char *slash = strrchr(p->t->path, '/');
    if (*s == '/' || !slash) snprintf(path, sizeof path, "%.*s", (int)(e - s), s);
    else snprintf(path, sizeof path, "%.*s/%.*s", (int)(slash - p->t->path), p->t->path, (int)(e - s), s);
    wn_buf text = {0};
    wn_errbuf ferr;
    if (wn_read_file(path, &text, &ferr)) {
        wn_buf_free(&text);
        return perr(p, line, "list file: %s", ferr.msg);
    }
    wn_err err = WN_OK;
    lines l = {text.p ? text.p : "", text.p ? text.p + text.len : "", 0};
    const char *ls, *le;
    int n = 0;
    while (!err && next_line(&l, &ls, &le))
        if (!blank(ls, le)) {
            err = add_item(p, first, last, ls, le, line);
            n++;
        }
    wn_buf_free(&text);
    if (!err && !n) err = perr(p, line, "list file %s has no items", path);
    return err;
}

/* Parses text (a rule alternative or a template body) from s[0..n) starting
 * at line `line`; with `bar`, several alternatives separated by '|'. */
static wn_err parse_text(ps *p, const char *s, size_t n, int line, int bar, int32_t *first, int32_t *last,
                         uint64_t *total, int32_t *head)
{
    p->s = s;
    p->end = s + n;
    p->line = line;
    p->nest = 0;
    for (;;) {
        skip_ws(p);
        uint64_t w = 1;
        wn_err e;
        if (first && (e = read_weight(p, &w))) return e;
        if (first) skip_ws(p);
        char stopped;
        int32_t h;
        if ((e = parse_seq(p, bar ? STOP_BAR : 0, &h, &stopped))) return e;
        if (!head) { /* trim the alternative's trailing blanks */
            int32_t k = h, lastk = -1;
            for (; k >= 0; k = p->t->nd[k].next) lastk = k;
            if (lastk >= 0 && p->t->nd[lastk].kind == N_TEXT) {
                node *t = &p->t->nd[lastk];
                while (t->b > 0 && is_ws(p->t->pool.p[t->a + t->b - 1])) t->b--;
            }
        }
        if (head) *head = h;
        else {
            if ((e = add_alt(p, first, last, w, h))) return e;
            *total += w;
        }
        if (!stopped) return WN_OK;
        p->s++;
    }
}

static wn_err define(ps *p, int32_t *sym_out, const char *name, size_t n, int line)
{
    if (reserved(name, n)) return perr(p, line, "'%.*s' is a keyword and cannot name a list or rule", (int)n, name);
    int32_t i = intern(p, name, n);
    if (i < 0) return nomem(p);
    if (p->t->sy[i].def_line)
        return perr(p, line, "'%.*s' is already defined on line %d", (int)n, name, p->t->sy[i].def_line);
    p->t->sy[i].def_line = line;
    *sym_out = i;
    return WN_OK;
}

/* One top-level definition starting at line [s, e). */
static wn_err parse_def(ps *p, lines *l, const char *s, const char *e, wn_buf *block)
{
    int line = l->line;
    p->s = s;
    p->end = e;
    const char *kw, *name;
    size_t nk = read_id(p, &kw);
    int is_list = id_is(kw, nk, "list"), is_rule = id_is(kw, nk, "rule"), is_tpl = id_is(kw, nk, "template");
    if (!is_list && !is_rule && !is_tpl)
        return perr(p, line, "expected 'list', 'rule' or 'template' at the start of a line (got '%.*s')",
                    (int)(e - s > 40 ? 40 : e - s), s);
    skip_ws(p);
    size_t nn = read_id(p, &name);
    if (!nn) return perr(p, line, "%.*s needs a NAME (letters, digits, _)", (int)nk, kw);
    skip_ws(p);
    wn_err err;
    int first_line;
    if (is_tpl) {
        uint64_t w = 1;
        if ((err = read_weight(p, &w))) return err;
        skip_ws(p);
        if (p->s >= p->end || *p->s != ':' || !blank(p->s + 1, p->end))
            return perr(p, line, "expected 'template NAME:' or 'template NAME [WEIGHT]:' then an indented body");
        for (size_t i = 0; i < p->t->n_tp; i++)
            if (id_is(name, nn, pool_str(p->t, p->t->tp[i].name)))
                return perr(p, line, "template '%.*s' is already defined on line %d", (int)nn, name, p->t->tp[i].line);
        int32_t k = PUSH(p->t, tp, n_tp, c_tp);
        if (k < 0) return nomem(p);
        p->t->tp[k].name = (uint32_t)p->t->pool.len;
        p->t->tp[k].w = w;
        p->t->tp[k].line = line;
        p->t->tp[k].active = 1;
        p->t->tp[k].head = -1;
        if (wn_buf_append(&p->t->pool, name, nn) || wn_buf_putc(&p->t->pool, 0)) return nomem(p);
        if ((err = read_block(p, l, block, &first_line))) return err;
        if (!block->len) return perr(p, line, "template '%.*s' has an empty body", (int)nn, name);
        int32_t head;
        if ((err = parse_text(p, block->p, block->len, first_line, 0, NULL, NULL, NULL, &head))) return err;
        p->t->tp[k].head = head;
        return WN_OK;
    }
    int32_t sy = -1;
    if ((err = define(p, &sy, name, nn, line))) return err;
    int32_t first = -1, last = -1;
    uint64_t total = 0;
    char op = p->s < p->end ? *p->s : 0;
    const char *rest = p->s + 1;
    if (op == '=' && is_list) {
        if ((err = inline_items(p, rest, e, line, &first, &last))) return err;
    } else if (op == '<' && is_list) {
        if ((err = file_items(p, rest, e, line, &first, &last))) return err;
    } else if (op == '=') {
        if ((err = parse_text(p, rest, (size_t)(e - rest), line, 1, &first, &last, &total, NULL))) return err;
    } else if (op == ':' && blank(rest, e)) {
        if ((err = read_block(p, l, block, &first_line))) return err;
        lines b = {block->p ? block->p : "", block->p ? block->p + block->len : "", first_line - 1};
        const char *bs, *be;
        while (next_line(&b, &bs, &be)) {
            if (blank(bs, be)) continue;
            if (is_list) err = add_item(p, &first, &last, bs, be, b.line);
            else err = parse_text(p, bs, (size_t)(be - bs), b.line, 0, &first, &last, &total, NULL);
            if (err) return err;
        }
    } else {
        return perr(p, line, is_list ? "expected 'list NAME = a | b', 'list NAME:' or 'list NAME < FILE'"
                                     : "expected 'rule NAME = alt | alt' or 'rule NAME:' then one alternative a line");
    }
    if (first < 0) return perr(p, line, "'%.*s' has no items", (int)nn, name);
    if (is_list)
        for (int32_t a = first; a >= 0; a = p->t->al[a].next) total += p->t->al[a].w;
    if (!total) return perr(p, line, "every alternative of '%.*s' has weight 0", (int)nn, name);
    p->t->sy[sy].alt = first;
    p->t->sy[sy].total = total;
    p->t->sy[sy].is_list = (uint8_t)is_list;
    return WN_OK;
}

/* After the whole file: every name is a definition or a variable. */
static wn_err resolve(ps *p)
{
    wn_tmpl *t = p->t;
    for (size_t i = 0; i < t->n_sy; i++) {
        const sym *s = &t->sy[i];
        const char *n = pool_str(t, s->name);
        if (s->def_line && s->var_line)
            return perr(p, s->var_line, "'%s' is a %s (line %d) and cannot be bound as a variable", n,
                        s->is_list ? "list" : "rule", s->def_line);
        if (s->use_line && !s->def_line && !s->var_line)
            return perr(p, s->use_line, "unknown name '%s': no list or rule has it, and no slot binds it ({%s = ...})",
                        n, n);
        if (s->num_line && s->def_line)
            return perr(p, s->num_line, "'%s' is a %s; int and calc take integers and variables", n,
                        s->is_list ? "list" : "rule");
        if (s->num_line && !s->var_line)
            return perr(p, s->num_line, "unknown variable '%s' (bind it first: {%s = int 1..9})", n, n);
    }
    if (!t->n_tp) return wn_fail(p->err, WN_ERR_INPUT, "%s: no template (a 'template NAME:' block)", t->path);
    t->total = 0;
    for (size_t i = 0; i < t->n_tp; i++) t->total += t->tp[i].w;
    if (!t->total) return wn_fail(p->err, WN_ERR_INPUT, "%s: every template has weight 0", t->path);
    return WN_OK;
}

wn_err wn_tmpl_parse(wn_tmpl **out, const char *s, size_t n, const char *path, unsigned flags, wn_errbuf *err)
{
    *out = NULL;
    wn_tmpl *t = wn_calloc(1, sizeof *t);
    if (!t) return wn_fail(err, WN_ERR_NOMEM, "out of memory");
    snprintf(t->path, sizeof t->path, "%s", path ? path : "template");
    ps p = {.t = t, .err = err, .flags = flags};
    wn_buf block = {0};
    wn_err e = wn_buf_reserve(&t->pool, 256) ? nomem(&p) : WN_OK;
    lines l = {s ? s : "", s ? s + n : "", 0};
    const char *ls, *le;
    while (!e && next_line(&l, &ls, &le)) {
        if (blank(ls, le) || *ls == '#') continue;
        if (is_ws(*ls)) e = perr(&p, l.line, "indented line outside a block (blocks follow 'list NAME:', "
                                            "'rule NAME:' or 'template NAME:')");
        else e = parse_def(&p, &l, ls, le, &block);
    }
    if (!e) e = resolve(&p);
    wn_buf_free(&block);
    wn_buf_free(&p.lit);
    if (e) {
        wn_tmpl_free(t);
        return e;
    }
    *out = t;
    return WN_OK;
}

wn_err wn_tmpl_load(wn_tmpl **out, const char *path, wn_errbuf *err)
{
    wn_buf text = {0};
    wn_err e = wn_read_file(path, &text, err);
    if (!e) e = wn_tmpl_parse(out, text.p, text.len, path, 0, err);
    wn_buf_free(&text);
    return e;
}

void wn_tmpl_free(wn_tmpl *t)
{
    if (!t) return;
    wn_buf_free(&t->pool);
    wn_free(t->nd);
    wn_free(t->ex);
    wn_free(t->al);
    wn_free(t->fl);
    wn_free(t->sy);
    wn_free(t->tp);
    wn_free(t);
}

int wn_tmpl_count(const wn_tmpl *t) { return (int)t->n_tp; }
const char *wn_tmpl_name(const wn_tmpl *t, int i) { return pool_str(t, t->tp[i].name); }

int wn_tmpl_find(const wn_tmpl *t, const char *name)
{
    for (size_t i = 0; i < t->n_tp; i++)
        if (!strcmp(pool_str(t, t->tp[i].name), name)) return (int)i;
    return -1;
}

wn_err wn_tmpl_restrict(wn_tmpl *t, const char *names, wn_errbuf *err)
{
    if (!names || !names[0]) return WN_OK;
    for (size_t i = 0; i < t->n_tp; i++) t->tp[i].active = 0;
    for (const char *s = names; *s;) {
        const char *e = strchr(s, ',');
        if (!e) e = s + strlen(s);
        const char *a = s, *b = e;
        while (a < b && is_space(*a)) a++;
        while (b > a && is_space(b[-1])) b--;
        size_t k = 0;
        while (k < t->n_tp && !id_is(a, (size_t)(b - a), pool_str(t, t->tp[k].name))) k++;
        if (k == t->n_tp) return wn_fail(err, WN_ERR_MANIFEST, "%s: no template named '%.*s'", t->path, (int)(b - a), a);
        t->tp[k].active = 1;
        s = *e ? e + 1 : e;
    }
    t->total = 0;
    for (size_t i = 0; i < t->n_tp; i++)
        if (t->tp[i].active) t->total += t->tp[i].w;
    if (!t->total) return wn_fail(err, WN_ERR_MANIFEST, "%s: the templates chosen (%s) all have weight 0", t->path, names);
    return WN_OK;
}

/* ---- expansion ---------------------------------------------------------------- */

struct wn_tmpl_ctx {
    const wn_tmpl *t;
    size_t n_sy;
    wn_buf *val;       /* per symbol: a variable's value */
    uint8_t *bound;
    wn_buf tmp[MAX_DEPTH + 2][2];
    wn_buf top;
    size_t limit;
    uint64_t steps, work; /* expansion steps; bytes copied anywhere */
    int depth;
    const wn_tmpl_doc *doc;
    uint64_t *rng;
    const char *why;
    wn_errbuf *err;
};

wn_tmpl_ctx *wn_tmpl_ctx_new(const wn_tmpl *t)
{
    wn_tmpl_ctx *c = wn_calloc(1, sizeof *c);
    if (!c) return NULL;
    c->t = t;
    c->limit = DEFAULT_LIMIT;
    size_t n = t->n_sy ? t->n_sy : 1;
    c->n_sy = t->n_sy;
    c->val = wn_calloc(n, sizeof *c->val);
    c->bound = wn_calloc(n, 1);
    if (!c->val || !c->bound) {
        wn_tmpl_ctx_free(c);
        return NULL;
    }
    return c;
}

void wn_tmpl_ctx_free(wn_tmpl_ctx *c)
{
    if (!c) return;
    if (c->val)
        for (size_t i = 0; i < c->n_sy; i++) wn_buf_free(&c->val[i]);
    wn_free(c->val);
    wn_free(c->bound);
    for (int d = 0; d < MAX_DEPTH + 2; d++) {
        wn_buf_free(&c->tmp[d][0]);
        wn_buf_free(&c->tmp[d][1]);
    }
    wn_buf_free(&c->top);
    wn_free(c);
}

void wn_tmpl_ctx_limit(wn_tmpl_ctx *c, size_t max_bytes) { c->limit = max_bytes ? max_bytes : DEFAULT_LIMIT; }

static wn_err xfail(wn_tmpl_ctx *c, int line, const char *why, const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static wn_err xfail(wn_tmpl_ctx *c, int line, const char *why, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    c->why = why;
    return wn_fail(c->err, WN_ERR_INPUT, "%s:%d: %s", c->t->path, line, msg);
}

/* Uniform in [0, n) from the caller's stream (n > 0; n = 0 means 2^64). */
static uint64_t draw(wn_tmpl_ctx *c, uint64_t n)
{
    uint64_t x = wn_splitmix64(c->rng);
    return n ? (uint64_t)(((unsigned __int128)x * n) >> 64) : x;
}

static const alt *pick(wn_tmpl_ctx *c, int32_t first, uint64_t total)
{
    uint64_t r = draw(c, total);
    const alt *a = &c->t->al[first];
    for (;; a = &c->t->al[a->next]) {
        if (r < a->w || a->next < 0) return a;
        r -= a->w;
    }
}

/* Appends to a result buffer, within the size limit and a budget of bytes
 * copied in all (WORK_FACTOR x the limit), so that no template, however
 * recursive, does unbounded work. */
static wn_err put(wn_tmpl_ctx *c, wn_buf *b, const void *p, size_t n, int line)
{
    if (b->len + n > c->limit) return xfail(c, line, "too_long", "expansion longer than %zu bytes", c->limit);
    if ((c->work += n) > (uint64_t)WORK_FACTOR * c->limit)
        return xfail(c, line, "too_long", "expansion copies more than %d x %zu bytes", WORK_FACTOR, c->limit);
    return wn_buf_append(b, p, n) ? wn_fail(c->err, WN_ERR_NOMEM, "out of memory") : WN_OK;
}

static wn_err put_int(wn_tmpl_ctx *c, wn_buf *b, int64_t v, int line)
{
    char s[32];
    int n = snprintf(s, sizeof s, "%lld", (long long)v);
    return put(c, b, s, (size_t)n, line);
}

/* A variable's value as an integer: optional '-', then digits, nothing else. */
static wn_err var_int(wn_tmpl_ctx *c, int32_t v, int line, int64_t *out)
{
    const char *name = pool_str(c->t, c->t->sy[v].name);
    if (!c->bound[v]) return xfail(c, line, "unbound", "variable '%s' used before a slot binds it", name);
    const wn_buf *b = &c->val[v];
    size_t i = 0;
    int neg = b->len && b->p[0] == '-';
    i = (size_t)neg;
    uint64_t x = 0;
    if (i == b->len) goto bad;
    for (; i < b->len; i++) {
        if (!is_digit(b->p[i])) goto bad;
        x = x * 10 + (uint64_t)(b->p[i] - '0');
        if (x > (uint64_t)MAX_CONST) goto bad;
    }
    *out = neg ? -(int64_t)x : (int64_t)x;
    return WN_OK;
bad:
    return xfail(c, line, "arithmetic", "variable '%s' is not an integer of at most 18 digits: '%.*s'", name,
                 (int)(b->len > 40 ? 40 : b->len), b->p ? b->p : "");
}

static wn_err eval(wn_tmpl_ctx *c, int32_t i, int line, int64_t *v)
{
    const expr *x = &c->t->ex[i];
    int64_t a, b;
    wn_err e;
    switch (x->op) {
    case 'n': *v = x->v; return WN_OK;
    case 'v': return var_int(c, (int32_t)x->v, line, v);
    case 'u':
        if ((e = eval(c, x->l, line, &a))) return e;
        if (a == INT64_MIN) return xfail(c, line, "arithmetic", "integer overflow");
        *v = -a;
        return WN_OK;
    }
    if ((e = eval(c, x->l, line, &a)) || (e = eval(c, x->r, line, &b))) return e;
    int over = 0;
    switch (x->op) {
    case '+': over = __builtin_add_overflow(a, b, v); break;
    case '-': over = __builtin_sub_overflow(a, b, v); break;
    case '*': over = __builtin_mul_overflow(a, b, v); break;
    default: /* '/' '%': C's truncating division */
        if (!b) return xfail(c, line, "arithmetic", "division by zero");
        if (a == INT64_MIN && b == -1) over = 1;
        else *v = x->op == '/' ? a / b : a % b;
    }
    return over ? xfail(c, line, "arithmetic", "integer overflow") : WN_OK;
}

static wn_err doc_field(wn_tmpl_ctx *c, const node *n, wn_buf *dst)
{
    const char *f = pool_str(c->t, (uint32_t)n->a);
    const wn_tmpl_doc *d = c->doc;
    if (d && !strcmp(f, "id")) return put(c, dst, d->id.p, d->id.n, n->line);
    if (d && !strcmp(f, "text")) return put(c, dst, d->text.p, d->text.n, n->line);
    wn_span v;
    if (!d || !d->raw.n || !wn_json_get(d->raw.p, d->raw.n, f, &v) || (v.n == 4 && !memcmp(v.p, "null", 4)))
        return xfail(c, n->line, "missing_field", "the source document has no field '%s'", f);
    if (v.n && v.p[0] == '"') {
        size_t before = dst->len;
        if (wn_json_decode_string(v, dst)) return wn_fail(c->err, WN_ERR_NOMEM, "out of memory");
        if (dst->len > c->limit) {
            dst->len = before;
            return xfail(c, n->line, "too_long", "expansion longer than %zu bytes", c->limit);
        }
        return WN_OK;
    }
    return put(c, dst, v.p, v.n, n->line);
}

/* ---- filters: x -> y ---- */

static wn_err case_map(wn_tmpl_ctx *c, const wn_buf *x, wn_buf *y, int op, int line)
{
    for (size_t i = 0; i < x->len;) {
        size_t s = i;
        int32_t cp = wn_utf8_next(x->p, x->len, &i);
        int map = cp >= 0 && (op != F_CAP || s == 0);
        int32_t m = !map ? cp : op == F_LOWER ? utf8proc_tolower(cp) : utf8proc_toupper(cp);
        if (!map || m == cp) {
            wn_err e = put(c, y, x->p + s, i - s, line);
            if (e) return e;
            if (op == F_CAP && s > 0) return put(c, y, x->p + i, x->len - i, line);
        } else if (wn_utf8_put(y, m)) {
            return wn_fail(c->err, WN_ERR_NOMEM, "out of memory");
        }
    }
    return WN_OK;
}

static wn_err apply(wn_tmpl_ctx *c, const filt *f, const wn_buf *x, wn_buf *y, int line)
{
    const char *p = x->p ? x->p : "";
    size_t n = x->len, a = 0, b = n;
    switch (f->op) {
    case F_UPPER:
    case F_LOWER:
    case F_CAP: return case_map(c, x, y, f->op, line);
    case F_TRIM:
        while (a < b && is_space(p[a])) a++;
        while (b > a && is_space(p[b - 1])) b--;
        break;
    case F_WORDS: { /* from the first word to the end of the N-th */
        while (a < n && is_space(p[a])) a++;
        size_t i = a;
        b = a;
        for (int64_t k = 0; k < f->n && i < n; k++) {
            while (i < n && !is_space(p[i])) i++;
            b = i;
            while (i < n && is_space(p[i])) i++;
        }
        break;
    }
    case F_CHARS: {
        size_t i = 0;
        for (int64_t k = 0; k < f->n && i < n; k++) wn_utf8_next(p, n, &i);
        b = i;
        break;
    }
    case F_SENTENCE: /* up to the first . ! or ? followed by a space or the end */
        while (a < n && is_space(p[a])) a++;
        for (size_t i = a; i < n; i++)
            if ((p[i] == '.' || p[i] == '!' || p[i] == '?') && (i + 1 == n || is_space(p[i + 1]))) {
                b = i + 1;
                break;
            }
        break;
    }
    return put(c, y, p + a, b - a, line);
}

static wn_err expand_seq(wn_tmpl_ctx *c, int32_t head, wn_buf *out);

/* The value of node n, appended to dst. */
static wn_err produce(wn_tmpl_ctx *c, const node *n, wn_buf *dst)
{
    const wn_tmpl *t = c->t;
    wn_err e;
    int64_t lo, hi;
    switch (n->kind) {
    case N_TEXT: return put(c, dst, t->pool.p + n->a, (size_t)n->b, n->line);
    case N_NAME: {
        const sym *s = &t->sy[n->a];
        if (s->def_line) return expand_seq(c, pick(c, s->alt, s->total)->head, dst);
        if (!c->bound[n->a])
            return xfail(c, n->line, "unbound", "variable '%s' used before a slot binds it", pool_str(t, s->name));
        return put(c, dst, c->val[n->a].p, c->val[n->a].len, n->line);
    }
    case N_INT: {
        if ((e = eval(c, n->a, n->line, &lo)) || (e = eval(c, n->b, n->line, &hi))) return e;
        if (lo > hi) return xfail(c, n->line, "arithmetic", "int %lld..%lld is empty", (long long)lo, (long long)hi);
        uint64_t span = (uint64_t)hi - (uint64_t)lo + 1; /* 0 = all 2^64 values */
        return put_int(c, dst, (int64_t)((uint64_t)lo + draw(c, span)), n->line);
    }
    case N_CALC:
        if ((e = eval(c, n->a, n->line, &lo))) return e;
        return put_int(c, dst, lo, n->line);
    case N_DOC: return doc_field(c, n, dst);
    case N_CHOICE: return expand_seq(c, pick(c, n->a, n->total)->head, dst);
    }
    return wn_fail(c->err, WN_ERR_INTERNAL, "bad template node");
}

static wn_err expand_node(wn_tmpl_ctx *c, const node *n, wn_buf *out)
{
    if (++c->steps > MAX_STEPS) return xfail(c, n->line, "too_deep", "more than %u expansion steps", MAX_STEPS);
    if (n->kind == N_TEXT) return produce(c, n, out);
    if (c->depth >= MAX_DEPTH)
        return xfail(c, n->line, "too_deep", "slots nested deeper than %d while expanding (a recursive rule?)",
                     MAX_DEPTH);
    int d = ++c->depth;
    wn_err e;
    if (n->bind < 0 && !n->nfilt) {
        e = produce(c, n, out);
    } else {
        wn_buf *x = &c->tmp[d][0], *y = &c->tmp[d][1];
        wn_buf_clear(x);
        e = produce(c, n, x);
        for (int32_t k = 0; !e && k < n->nfilt; k++) {
            wn_buf_clear(y);
            e = apply(c, &c->t->fl[n->filt + k], x, y, n->line);
            wn_buf *s = x;
            x = y;
            y = s;
        }
        if (!e && n->bind >= 0) {
            wn_buf *v = &c->val[n->bind];
            wn_buf_clear(v);
            if (wn_buf_append(v, x->p ? x->p : "", x->len)) e = wn_fail(c->err, WN_ERR_NOMEM, "out of memory");
            c->bound[n->bind] = 1;
        }
        if (!e && !n->silent) e = put(c, out, x->p ? x->p : "", x->len, n->line);
    }
    c->depth--;
    return e;
}

static wn_err expand_seq(wn_tmpl_ctx *c, int32_t head, wn_buf *out)
{
    for (int32_t i = head; i >= 0; i = c->t->nd[i].next) {
        wn_err e = expand_node(c, &c->t->nd[i], out);
        if (e) return e;
    }
    return WN_OK;
}

wn_err wn_tmpl_expand(const wn_tmpl *t, wn_tmpl_ctx *c, int which, const wn_tmpl_doc *doc, uint64_t *rng,
                      wn_buf *out, int *picked, const char **why, wn_errbuf *err)
{
    WN_CHECK(c->t == t && which < (int)t->n_tp);
    *why = NULL;
    c->rng = rng;
    if (which < 0) {
        uint64_t r = draw(c, t->total);
        for (which = 0; which < (int)t->n_tp; which++) {
            if (!t->tp[which].active) continue;
            if (r < t->tp[which].w) break;
            r -= t->tp[which].w;
        }
        WN_CHECK(which < (int)t->n_tp);
    }
    if (picked) *picked = which;
    memset(c->bound, 0, t->n_sy ? t->n_sy : 1);
    c->steps = c->work = 0;
    c->depth = 0;
    c->doc = doc;
    c->err = err;
    c->why = NULL;
    wn_buf_clear(&c->top);
    wn_err e = expand_seq(c, t->tp[which].head, &c->top);
    if (!e && c->top.len && wn_buf_append(out, c->top.p, c->top.len)) e = wn_fail(err, WN_ERR_NOMEM, "out of memory");
    if (e) *why = c->why ? c->why : "error";
    return e;
}
