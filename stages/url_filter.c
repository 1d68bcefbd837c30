/*
 * url_filter.c - drops documents by the URL in their metadata: blocked
 * domains (subdomains included), blocked URLs, and banned words in the URL.
 *
 * The URL is the string member `url_key` of the input record (d->raw);
 * documents without one (or with a non-string value) pass and are counted.
 * Everything is compared in ASCII lowercase. Lists are files with one entry a
 * line; empty lines and lines starting with '#' are skipped.
 *   domains: a host matches an entry equal to it or to any of its parent
 *     domains (sub.example.com matches example.com). A leading "*." or "."
 *     and a trailing "." on an entry are ignored.
 *   urls: compared without the scheme ("http://"), without a "#fragment"
 *     and without trailing '/'.
 *   banned words: whole words of the URL, split at every ASCII character
 *     that is not a letter or digit (so "sex" bans /sex-toys/ but not
 *     /essex/).
 * Checks run in the order url, domain, word; the first that hits names the
 * drop reason: blocked_url, blocked_domain, banned_word. In mode annotate the
 * reason goes to the attribute `attr` and nothing is dropped.
 */
#include <omp.h>
#include <string.h>
#include <xxhash.h>

#include "../src/fs.h"
#include "../src/stage.h"
#include "../src/mpi.h"

static const wn_param_def params[] = {
    {"url_key", WN_P_STRING, "url", 0, 0, NULL, "record field holding the URL"},
    {"domains_file", WN_P_STRING, "", 0, 0, NULL, "blocked domains, one a line (subdomains included)"},
    {"urls_file", WN_P_STRING, "", 0, 0, NULL, "blocked URLs, one a line"},
    {"banned_words_file", WN_P_STRING, "", 0, 0, NULL, "words banned in URLs, one a line"},
    {"banned_words", WN_P_STRING, "", 0, 0, NULL, "words banned in URLs, comma-separated"},
    {"mode", WN_P_ENUM, "drop", 0, 0, "drop|annotate",
     "annotate: keep every document and write the drop reason it would get to `attr`"},
    {"attr", WN_P_STRING, "url_filter", 0, 0, NULL, "annotate: the attribute key"},
};

/* A set of byte strings: open addressing over xxh3 hashes; the strings live
 * in one arena. */
typedef struct {
    uint64_t hash;
    uint32_t off, len; /* len 0 = empty slot */
} slot;
typedef struct {
    slot *s;
    size_t cap, n; /* cap: a power of two */
    wn_buf arena;
} strset;

static wn_err set_add(strset *set, const char *p, size_t n)
{
    if (!n || n > UINT32_MAX) return WN_OK;
    if ((set->n + 1) * 2 > set->cap) {
        size_t cap = set->cap ? set->cap * 2 : 1024;
        slot *ns = wn_calloc(cap, sizeof *ns);
        if (!ns) return WN_ERR_NOMEM;
        for (size_t i = 0; i < set->cap; i++) {
            if (!set->s[i].len) continue;
            size_t j = set->s[i].hash & (cap - 1);
            while (ns[j].len) j = (j + 1) & (cap - 1);
            ns[j] = set->s[i];
        }
        wn_free(set->s);
        set->s = ns;
        set->cap = cap;
    }
    uint64_t h = XXH3_64bits(p, n);
    size_t j = h & (set->cap - 1);
    for (; set->s[j].len; j = (j + 1) & (set->cap - 1))
        if (set->s[j].hash == h && set->s[j].len == n && !memcmp(set->arena.p + set->s[j].off, p, n)) return WN_OK;
    if (set->arena.len + n > UINT32_MAX) return WN_ERR_NOMEM;
    set->s[j] = (slot){h, (uint32_t)set->arena.len, (uint32_t)n};
    set->n++;
    return wn_buf_append(&set->arena, p, n);
}

static int set_has(const strset *set, const char *p, size_t n)
{
    if (!set->n || !n) return 0;
    uint64_t h = XXH3_64bits(p, n);
    for (size_t j = h & (set->cap - 1); set->s[j].len; j = (j + 1) & (set->cap - 1))
        if (set->s[j].hash == h && set->s[j].len == n && !memcmp(set->arena.p + set->s[j].off, p, n)) return 1;
    return 0;
}

static void set_free(strset *set)
{
    wn_free(set->s);
    wn_buf_free(&set->arena);
}

enum { R_URL, R_DOMAIN, R_WORD, R_NO_URL, R__COUNT };
static const char *const reason_name[R__COUNT] = {"blocked_url", "blocked_domain", "banned_word", "no_url"};

typedef struct {
    wn_buf url, norm;
    uint64_t count[R__COUNT];
    char pad[64];
} scratch;

typedef struct {
    const char *url_key, *attr;
    strset domains, urls, words;
    int annotate;
    scratch *tls;
    int n_tls;
} url_filter;

static char lower(char c) { return c >= 'A' && c <= 'Z' ? (char)(c + 32) : c; }
static int is_alnum(char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (unsigned char)c >= 0x80;
}

/* URL normal form into out: lowercase, no scheme, no fragment, no trailing
 * '/'. */
static wn_err normalize_url(const char *p, size_t n, wn_buf *out)
{
    while (n && (*p == ' ' || *p == '\t')) p++, n--;
    while (n && (p[n - 1] == ' ' || p[n - 1] == '\t' || p[n - 1] == '\r')) n--;
    const char *colon = memchr(p, ':', n);
    if (colon && (size_t)(colon - p) + 2 < n && colon[1] == '/' && colon[2] == '/') {
        n -= (size_t)(colon + 3 - p);
        p = colon + 3;
    }
    const char *hash = memchr(p, '#', n);
    if (hash) n = (size_t)(hash - p);
    while (n && p[n - 1] == '/') n--;
    wn_buf_clear(out);
    if (wn_buf_reserve(out, n)) return WN_ERR_NOMEM;
    for (size_t i = 0; i < n; i++) out->p[i] = lower(p[i]);
    out->len = n;
    out->p[n] = 0;
    return WN_OK;
}

/* The host part of a normalized URL: before '/', '?' or '#', without
 * "user@" and ":port", without a trailing '.'. */
static wn_span url_host(const char *p, size_t n)
{
    size_t e = 0;
    while (e < n && p[e] != '/' && p[e] != '?' && p[e] != '#') e++;
    for (size_t i = e; i-- > 0;)
        if (p[i] == '@') {
            p += i + 1;
            e -= i + 1;
            break;
        }
    if (e && p[0] == '[') { /* IPv6 literal */
        const char *rb = memchr(p, ']', e);
        return (wn_span){p, rb ? (size_t)(rb - p) + 1 : e};
    }
    const char *c = memchr(p, ':', e);
    if (c) e = (size_t)(c - p);
    while (e && p[e - 1] == '.') e--;
    return (wn_span){p, e};
}

static int domain_blocked(const strset *set, wn_span h)
{
    for (size_t i = 0; i < h.n;) {
        if (set_has(set, h.p + i, h.n - i)) return 1;
        const char *dot = memchr(h.p + i, '.', h.n - i);
        if (!dot) break;
        i = (size_t)(dot - h.p) + 1;
    }
    return 0;
}

static int has_banned_word(const strset *set, const char *p, size_t n)
{
    for (size_t i = 0; i < n;) {
        while (i < n && !is_alnum(p[i])) i++;
        size_t s = i;
        while (i < n && is_alnum(p[i])) i++;
        if (i > s && set_has(set, p + s, i - s)) return 1;
    }
    return 0;
}

/* Adds each entry of a list file (or of a comma-separated string when sep is
 * ',') to set, lowercased. domains: strips "*.", "." and a trailing '.';
 * urls: normalized. */
static wn_err add_entries(wn_stage *st, strset *set, const char *p, size_t n, char sep, int kind, const char *what)
{
    wn_buf e = {0}, norm = {0};
    wn_err err = WN_OK;
    for (size_t i = 0; i < n && !err;) {
        const char *end = memchr(p + i, sep, n - i);
        size_t j = end ? (size_t)(end - p) : n;
        const char *q = p + i;
        size_t m = j - i;
        i = j + 1;
        while (m && (*q == ' ' || *q == '\t')) q++, m--;
        while (m && (q[m - 1] == ' ' || q[m - 1] == '\t' || q[m - 1] == '\r')) m--;
        if (!m || *q == '#') continue;
        if (kind == R_URL) {
            if ((err = normalize_url(q, m, &norm))) break;
            err = set_add(set, norm.p, norm.len);
            continue;
        }
        if (kind == R_DOMAIN) {
            if (m > 2 && q[0] == '*' && q[1] == '.') q += 2, m -= 2;
            while (m && *q == '.') q++, m--;
            while (m && q[m - 1] == '.') m--;
        }
        wn_buf_clear(&e);
        for (size_t k = 0; k < m && !err; k++) err = wn_buf_putc(&e, lower(q[k]));
        if (!err) err = set_add(set, e.p, e.len);
    }
    wn_buf_free(&e);
    wn_buf_free(&norm);
    if (err) return wn_fail(&st->err, err, "%s: out of memory", what);
    return WN_OK;
}

static wn_err add_file(wn_stage *st, strset *set, const char *param, int kind)
{
    const char *path = wn_param(st, param)->s;
    if (!*path) return WN_OK;
    wn_buf f = {0};
    wn_err e = wn_read_file(path, &f, &st->err);
    if (!e) e = add_entries(st, set, f.p, f.len, '\n', kind, path);
    wn_buf_free(&f);
    return e;
}

static wn_err uf_open(wn_stage *st)
{
    url_filter *s = st->state;
    s->url_key = wn_param(st, "url_key")->s;
    s->attr = wn_param(st, "attr")->s;
    s->annotate = !strcmp(wn_param(st, "mode")->s, "annotate");
    const char *words = wn_param(st, "banned_words")->s;
    wn_err e;
    if ((e = add_file(st, &s->domains, "domains_file", R_DOMAIN)) || (e = add_file(st, &s->urls, "urls_file", R_URL)) ||
        (e = add_file(st, &s->words, "banned_words_file", R_WORD)) ||
        (e = add_entries(st, &s->words, words, strlen(words), ',', R_WORD, "banned_words")))
        return e;
    if (!s->domains.n && !s->urls.n && !s->words.n)
        return wn_fail(&st->err, WN_ERR_MANIFEST,
                       "nothing to check: set domains_file, urls_file, banned_words_file or banned_words "
                       "(non-empty)");
    s->n_tls = st->threads > 0 ? st->threads : 1;
    s->tls = wn_calloc((size_t)s->n_tls, sizeof *s->tls);
    if (!s->tls) return wn_fail(&st->err, WN_ERR_NOMEM, "out of memory");
    return WN_OK;
}

/* Returns the reason index for d, or -1 to keep it. */
static int verdict(const url_filter *s, scratch *t, const wn_doc *d, wn_err *e)
{
    wn_span v;
    wn_buf_clear(&t->url);
    if (!d->raw.len || !wn_json_get(d->raw.p, d->raw.len, s->url_key, &v) || !v.n || v.p[0] != '"' ||
        wn_json_decode_string(v, &t->url) || !t->url.len)
        return R_NO_URL;
    if ((*e = normalize_url(t->url.p, t->url.len, &t->norm))) return -1;
    if (set_has(&s->urls, t->norm.p, t->norm.len)) return R_URL;
    if (s->domains.n && domain_blocked(&s->domains, url_host(t->norm.p, t->norm.len))) return R_DOMAIN;
    if (s->words.n && has_banned_word(&s->words, t->norm.p, t->norm.len)) return R_WORD;
    return -1;
}

static wn_err uf_process(wn_stage *st, wn_batch *b)
{
    url_filter *s = st->state;
    wn_err err = WN_OK;
#pragma omp parallel for schedule(dynamic, 64) num_threads(s->n_tls)
    for (size_t i = 0; i < b->n; i++) {
        scratch *t = &s->tls[omp_get_thread_num()];
        wn_doc *d = &b->docs[i];
        wn_err e = WN_OK;
        int r = verdict(s, t, d, &e);
        if (r >= 0) t->count[r]++;
        if (r >= 0 && r != R_NO_URL) {
            if (s->annotate) {
                char v[32];
                snprintf(v, sizeof v, "\"%s\"", reason_name[r]);
                e = wn_doc_attr(d, s->attr, v);
            } else {
                d->drop = reason_name[r];
            }
        }
        if (e) {
#pragma omp atomic write
            err = e;
        }
    }
    if (err) return wn_fail(&st->err, err, "out of memory");
    return WN_OK;
}

static void uf_report(wn_stage *st, wn_jw *w)
{
    url_filter *s = st->state;
    uint64_t c[R__COUNT] = {0};
    for (int t = 0; s->tls && t < s->n_tls; t++)
        for (int r = 0; r < R__COUNT; r++) c[r] += s->tls[t].count[r];
    wn_mpi_allreduce_sum_u64(c, R__COUNT); /* every rank calls report: the whole stream's counts */
    for (int r = 0; r < R__COUNT; r++) {
        wn_jw_key(w, reason_name[r]);
        wn_jw_u64(w, c[r]);
    }
    wn_jw_key(w, "list_domains"); wn_jw_u64(w, s->domains.n);
    wn_jw_key(w, "list_urls"); wn_jw_u64(w, s->urls.n);
    wn_jw_key(w, "list_banned_words"); wn_jw_u64(w, s->words.n);
}

static void uf_close(wn_stage *st)
{
    url_filter *s = st->state;
    set_free(&s->domains);
    set_free(&s->urls);
    set_free(&s->words);
    for (int t = 0; s->tls && t < s->n_tls; t++) {
        wn_buf_free(&s->tls[t].url);
        wn_buf_free(&s->tls[t].norm);
    }
    wn_free(s->tls);
}

const wn_stage_def wn_stage_url_filter = {
    .name = "url_filter",
    .summary = "drop documents whose URL is on a domain or URL blocklist or contains a banned word",
    .doc = "Reads the URL from the record's `url_key` string field; documents without one pass\n"
           "(counted as no_url). Comparisons are ASCII case-insensitive. domains_file: one domain a\n"
           "line, subdomains included (a leading '*.' is ignored). urls_file: one URL a line,\n"
           "compared without scheme, fragment and trailing '/'. banned_words_file and/or\n"
           "banned_words (comma-separated): whole words of the URL, split at ASCII characters\n"
           "other than letters and digits. '#' lines and empty lines in files are skipped. Drop\n"
           "reasons, checked in this order: blocked_url, blocked_domain, banned_word. mode annotate\n"
           "writes the reason to the attribute `attr` instead of dropping. Report: blocked_url,\n"
           "blocked_domain, banned_word, no_url and the list sizes.",
    .params = params,
    .n_params = WN_ARRAY_LEN(params),
    .state_size = sizeof(url_filter),
    .open = uf_open,
    .process = uf_process,
    .report = uf_report,
    .close = uf_close,
};
