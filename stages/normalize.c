/*
 * normalize.c - Unicode normalization (utf8proc: NFC, NFKC, NFD, NFKD),
 * control-character stripping, newline unification, and repair or drop of
 * invalid UTF-8 (which reaches stages only from inputs with `utf8: pass`).
 *
 * Order per document: invalid UTF-8 is repaired (each invalid byte becomes
 * U+FFFD) or the document dropped; control characters are removed; the text
 * is normalized. ASCII-only texts take a fast path (normalization cannot
 * change them). Each thread owns a scratch code-point buffer, allocated once
 * and grown as needed.
 */
#include <string.h>
#include <utf8proc.h>

#include "../src/stage.h"
#include "../src/text.h"

static const wn_param_def params[] = {
    {"form", WN_P_ENUM, "nfc", 0, 0, "nfc|nfkc|nfd|nfkd|none", "Unicode normalization form"},
    {"strip_control", WN_P_BOOL, "true", 0, 0, NULL,
     "remove C0/C1 control characters and DEL, except tab, newline and carriage return"},
    {"newlines", WN_P_ENUM, "keep", 0, 0, "keep|lf", "lf: turn \\r\\n and lone \\r into \\n"},
    {"invalid_utf8", WN_P_ENUM, "repair", 0, 0, "repair|drop",
     "repair: each invalid byte becomes U+FFFD; drop: drop the document (reason invalid_utf8)"},
};

typedef struct {
    int32_t *cp;
    size_t cap;
    wn_buf out;
    char pad[64 - sizeof(int32_t *) - sizeof(size_t) - sizeof(wn_buf)]; /* one cache line per thread */
} scratch;

typedef struct {
    utf8proc_option_t opts;
    int normalize, strip_control, lf, drop_invalid;
    scratch *tls;
    int n_tls;
} normalize;

static wn_err norm_open(wn_stage *st)
{
    normalize *s = st->state;
    const char *form = wn_param(st, "form")->s;
    s->normalize = strcmp(form, "none") != 0;
    s->opts = UTF8PROC_STABLE;
    if (!strcmp(form, "nfc") || !strcmp(form, "nfkc")) s->opts |= UTF8PROC_COMPOSE;
    else s->opts |= UTF8PROC_DECOMPOSE;
    if (form[1] == 'f' && form[2] == 'k') s->opts |= UTF8PROC_COMPAT;
    s->strip_control = wn_param(st, "strip_control")->b;
    s->lf = !strcmp(wn_param(st, "newlines")->s, "lf");
    s->drop_invalid = !strcmp(wn_param(st, "invalid_utf8")->s, "drop");
    s->n_tls = st->threads > 0 ? st->threads : 1;
    s->tls = wn_calloc((size_t)s->n_tls, sizeof *s->tls);
    if (!s->tls) return wn_fail(&st->err, WN_ERR_NOMEM, "out of memory");
    return WN_OK;
}

static int is_control(int32_t c)
{
    return (c < 0x20 && c != '\t' && c != '\n' && c != '\r') || (c >= 0x7f && c <= 0x9f);
}

/* Removes controls and unifies newlines in a code-point array; returns the
 * new length. */
static size_t filter_cp(const normalize *s, int32_t *cp, size_t n)
{
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        int32_t c = cp[i];
        if (s->lf && c == '\r') {
            if (i + 1 < n && cp[i + 1] == '\n') continue;
            c = '\n';
        }
        if (s->strip_control && is_control(c)) continue;
        cp[k++] = c;
    }
    return k;
}

static int is_ascii(const char *p, size_t n)
{
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t w;
        memcpy(&w, p + i, 8);
        if (w & 0x8080808080808080ull) return 0;
    }
    for (; i < n; i++)
        if ((unsigned char)p[i] >= 0x80) return 0;
    return 1;
}

static int needs_ascii_work(const normalize *s, const char *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)p[i];
        if (c < 0x20 || c == 0x7f) {
            if (s->lf && c == '\r') return 1;
            if (s->strip_control && is_control(c)) return 1;
        }
    }
    return 0;
}

static wn_err grow_cp(scratch *t, size_t n)
{
    if (n <= t->cap) return WN_OK;
    size_t cap = n + n / 2 + 64;
    int32_t *p = wn_realloc(t->cp, cap * sizeof *p);
    if (!p) return WN_ERR_NOMEM;
    t->cp = p;
    t->cap = cap;
    return WN_OK;
}

/* Computes the new text of d into t->out. Returns 1 if it differs. */
static int norm_doc(const normalize *s, scratch *t, wn_doc *d, wn_err *e)
{
    const char *p = d->text.p;
    size_t n = d->text.len;
    wn_buf_clear(&t->out);
    if (!n) return 0;
    if (!wn_utf8_valid(p, n, NULL)) {
        if (s->drop_invalid) { d->drop = "invalid_utf8"; return 0; }
        for (size_t i = 0; i < n;) {
            int32_t c = wn_utf8_next(p, n, &i);
            if ((*e = wn_utf8_put(&t->out, c < 0 ? 0xFFFD : c))) return 0;
        }
        /* continue from the repaired text */
        wn_buf tmp = d->text;
        d->text = t->out;
        t->out = tmp;
        d->modified = 1;
        p = d->text.p;
        n = d->text.len;
        wn_buf_clear(&t->out);
    }
    if (is_ascii(p, n)) {
        if (!needs_ascii_work(s, p, n)) return 0;
    } else if (s->normalize) {
        /* decompose -> filter -> compose + encode (utf8proc_reencode normalizes) */
        if ((*e = grow_cp(t, n + 16))) return 0;
        utf8proc_ssize_t len;
        for (;;) {
            len = utf8proc_decompose((const utf8proc_uint8_t *)p, (utf8proc_ssize_t)n, t->cp,
                                     (utf8proc_ssize_t)t->cap, s->opts);
            if (len < 0) { *e = WN_ERR_INTERNAL; return 0; }
            if ((size_t)len <= t->cap) break;
            if ((*e = grow_cp(t, (size_t)len))) return 0;
        }
        len = (utf8proc_ssize_t)filter_cp(s, t->cp, (size_t)len);
        len = utf8proc_reencode(t->cp, len, s->opts);
        if (len < 0) { *e = WN_ERR_INTERNAL; return 0; }
        if ((size_t)len == n && !memcmp(t->cp, p, n)) return 0;
        if ((*e = wn_buf_append(&t->out, t->cp, (size_t)len))) return 0;
        return 1;
    }
    /* ASCII with work to do, or form none: filter code point by code point */
    if ((*e = grow_cp(t, n))) return 0;
    size_t k = 0;
    for (size_t i = 0; i < n;) t->cp[k++] = wn_utf8_next(p, n, &i);
    k = filter_cp(s, t->cp, k);
    for (size_t i = 0; i < k; i++)
        if ((*e = wn_utf8_put(&t->out, t->cp[i]))) return 0;
    return t->out.len != n || memcmp(t->out.p, p, n);
}

static wn_err norm_one(wn_stage *st, int thread, wn_doc *d)
{
    normalize *s = st->state;
    scratch *t = &s->tls[thread];
    wn_err e = WN_OK;
    if (norm_doc(s, t, d, &e)) { /* swap: the doc takes the new text */
        wn_buf tmp = d->text;
        d->text = t->out;
        t->out = tmp;
        d->modified = 1;
    }
    return e;
}

static wn_err norm_process(wn_stage *st, wn_batch *b)
{
    return wn_stage_each_doc(st, b, ((normalize *)st->state)->n_tls, norm_one);
}

static void norm_close(wn_stage *st)
{
    normalize *s = st->state;
    for (int i = 0; s->tls && i < s->n_tls; i++) {
        wn_free(s->tls[i].cp);
        wn_buf_free(&s->tls[i].out);
    }
    wn_free(s->tls);
}

const wn_stage_def wn_stage_normalize = {
    .name = "normalize",
    .summary = "Unicode normalization (NFC/NFKC/...), control-character stripping, UTF-8 repair",
    .doc = "Normalizes text with utf8proc to the chosen form (NFC keeps meaning and merges\n"
           "decomposed accents; NFKC also folds compatibility characters such as fullwidth\n"
           "letters and ligatures), removes control characters other than tab/newline/CR,\n"
           "optionally unifies newlines, and repairs (U+FFFD) or drops invalid UTF-8, which\n"
           "reaches stages only from inputs with `utf8: pass`. Documents whose text changes are\n"
           "counted as modified. Drop reason: invalid_utf8.",
    .params = params,
    .n_params = WN_ARRAY_LEN(params),
    .state_size = sizeof(normalize),
    .open = norm_open,
    .process = norm_process,
    .close = norm_close,
};
