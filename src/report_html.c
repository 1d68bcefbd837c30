/*
 * report_html.c - the HTML page of `winnow report`: one self-contained file
 * (inline CSS and SVG drawn here; no script, no font, no network reference)
 * that shows what every step of a run did.
 *
 * Sections: the run summary (run.json); the funnel of documents, text bytes
 * and tokens through the steps (bar charts + table); drop reasons (bars +
 * table with the sampled ids); time and throughput; one panel per step
 * (parameters, document lengths into and out of the step, drops, every
 * histogram and score summary found in its report, its other figures); the
 * experiment (RUN_DIR/experiment.json) when there is one; the
 * resolved manifest.
 *
 * Histograms are found by convention, so stages add them without touching
 * this file: any object with numeric arrays "edges" (n+1) and "counts" (n)
 * is drawn, titled by its key path (an optional "unit" or "label" string
 * names the x axis); an object whose children "selected" and "rejected" are
 * both histograms is drawn as an overlaid pair. Objects with numeric n, mean,
 * min and max are score summaries. The document-length histogram written by
 * run.c ("length_histogram": counts by log2 of text bytes) is drawn apart.
 *
 * Every string that comes from a report or the file system is HTML-escaped
 * (document ids are user data), with invalid UTF-8 and control bytes
 * replaced by U+FFFD.
 */
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "energy.h"
#include "fs.h"
#include "json.h"
#include "run.h"
#include "text.h"

/* Tableau 10: distinct, readable on light and dark backgrounds. */
static const char *const palette[] = {"#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f",
                                      "#edc948", "#b07aa1", "#ff9da7", "#9c755f", "#bab0ac"};
#define GREY "#8c8c94"
#define GOOD "#59a14f"
#define BAD "#e15759"
#define CHART_W 960
#define MAX_HIST_BINS 4096
#define MAX_TICKS 40

/* ---- the page buffer ------------------------------------------------------- */

typedef struct {
    wn_buf out;
    wn_err e; /* the first allocation failure: the page is then not written */
} page;

static void putn(page *pg, const char *s, size_t n)
{
    if (wn_buf_append(&pg->out, s, n)) pg->e = WN_ERR_NOMEM;
}

static void put(page *pg, const char *s) { putn(pg, s, strlen(s)); }

static void putf(page *pg, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void putf(page *pg, const char *fmt, ...)
{
    char tmp[1024];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n < 0) return;
    if ((size_t)n < sizeof tmp) {
        putn(pg, tmp, (size_t)n);
        return;
    }
    char *big = wn_malloc((size_t)n + 1);
    if (!big) { pg->e = WN_ERR_NOMEM; return; }
    va_start(ap, fmt);
    vsnprintf(big, (size_t)n + 1, fmt, ap);
    va_end(ap);
    putn(pg, big, (size_t)n);
    wn_free(big);
}

/* Escaped text, at most max_cp code points (0 = all; "…" marks a cut). */
static void esc_cut(page *pg, const char *s, size_t n, size_t max_cp)
{
    size_t cps = 0;
    for (size_t i = 0; i < n;) {
        if (max_cp && cps++ == max_cp) {
            put(pg, "\xe2\x80\xa6");
            return;
        }
        size_t at = i;
        int32_t c = wn_utf8_next(s, n, &i);
        switch (c) {
        case '&': put(pg, "&amp;"); break;
        case '<': put(pg, "&lt;"); break;
        case '>': put(pg, "&gt;"); break;
        case '"': put(pg, "&quot;"); break;
        case '\'': put(pg, "&#39;"); break;
        default:
            if (c < 0 || (c < 0x20 && c != '\n' && c != '\t') || c == 0x7f || (c >= 0x80 && c < 0xa0))
                put(pg, "\xef\xbf\xbd"); /* U+FFFD */
            else
                putn(pg, s + at, i - at);
        }
    }
}

static void esc(page *pg, const char *s) { esc_cut(pg, s, strlen(s), 0); }

/* A raw JSON value as text: strings decoded, anything else as written. */
static void esc_value(page *pg, wn_span v, size_t max_cp)
{
    if (v.n && v.p[0] == '"') {
        wn_buf s = {0};
        if (!wn_json_decode_string(v, &s) && s.p) esc_cut(pg, s.p, s.len, max_cp);
        wn_buf_free(&s);
    } else {
        esc_cut(pg, v.p, v.n, max_cp);
    }
}

/* ---- numbers ------------------------------------------------------------- */

typedef void (*fmt_fn)(char *b, size_t n, double x);

/* 162604 -> "162,604"; non-integers keep 4 significant digits. */
static void fmt_count(char *b, size_t n, double x)
{
    if (!isfinite(x)) { snprintf(b, n, "-"); return; }
    if (fabs(x) >= 1e15 || x != floor(x)) { snprintf(b, n, "%.4g", x); return; }
    char digits[32];
    int len = snprintf(digits, sizeof digits, "%.0f", fabs(x));
    size_t o = 0;
    if (x < 0 && o + 1 < n) b[o++] = '-';
    for (int i = 0; i < len && o + 2 < n; i++) {
        if (i && (len - i) % 3 == 0) b[o++] = ',';
        b[o++] = digits[i];
    }
    b[o] = 0;
}

static void fmt_bytes(char *b, size_t n, double x)
{
    static const char *const unit[] = {"B", "kB", "MB", "GB", "TB", "PB"};
    int u = 0;
    if (!(fabs(x) < 1e18)) { snprintf(b, n, "%.3g B", x); return; }
    while (fabs(x) >= 1000 && u < 5) { x /= 1000; u++; }
    if (u == 0) snprintf(b, n, "%.0f B", x);
    else snprintf(b, n, "%.*f %s", fabs(x) < 10 ? 2 : fabs(x) < 100 ? 1 : 0, x, unit[u]);
}

static void fmt_secs(char *b, size_t n, double x)
{
    if (x <= 0) snprintf(b, n, "0 s");
    else if (x < 1e-3) snprintf(b, n, "%.0f \xc2\xb5s", x * 1e6);
    else if (x < 1) snprintf(b, n, "%.1f ms", x * 1e3);
    else if (x < 120) snprintf(b, n, "%.2f s", x);
    else if (x < 7200) snprintf(b, n, "%d min %02d s", (int)(x / 60), (int)fmod(x, 60));
    else snprintf(b, n, "%d h %02d min", (int)(x / 3600), (int)fmod(x / 60, 60));
}

/* Axis ticks: 1.5k, 20M, 0.25. */
static void fmt_si(char *b, size_t n, double x)
{
    static const struct { double v; const char *s; } si[] = {{1e12, "T"}, {1e9, "G"}, {1e6, "M"}, {1e3, "k"}};
    for (size_t i = 0; i < WN_ARRAY_LEN(si); i++)
        if (fabs(x) >= si[i].v) { snprintf(b, n, "%.3g%s", x / si[i].v, si[i].s); return; }
    snprintf(b, n, "%.3g", x);
}

/* Powers of two as 1K, 64K, 1M (document lengths). */
static void fmt_bin(char *b, size_t n, double x)
{
    if (x >= 1 << 20) snprintf(b, n, "%.3gM", x / (1 << 20));
    else if (x >= 1 << 10) snprintf(b, n, "%.3gK", x / (1 << 10));
    else snprintf(b, n, "%.0f", x);
}

static void fmt_rate(char *b, size_t n, double x) { snprintf(b, n, "%.1f MB/s", x); }

static void fmt_pct(char *b, size_t n, double part, double whole)
{
    double p = whole > 0 ? 100 * part / whole : 0;
    if (whole > 0 && p > 0 && p < 0.05) snprintf(b, n, "<0.1%%");
    else if (whole > 0) snprintf(b, n, "%.1f%%", fmin(fmax(p, -1e9), 1e9));
    else snprintf(b, n, "-");
}

/* A step of 1, 2 or 5 x 10^k giving about `target` intervals over range. */
static double nice_step(double range, int target)
{
    if (!(range > 0)) return 1;
    double raw = range / target, mag = pow(10, floor(log10(raw))), f = raw / mag;
    return (f < 1.5 ? 1 : f < 3 ? 2 : f < 7 ? 5 : 10) * mag;
}

/* ---- reading reports ------------------------------------------------------- */

static double num(const char *j, size_t n, const char *key)
{
    wn_span v;
    double x = 0;
    if (j && wn_json_get(j, n, key, &v)) wn_json_to_double(v, &x);
    return x;
}

static int has(const char *j, size_t n, const char *key)
{
    wn_span v;
    return j && wn_json_get(j, n, key, &v);
}

static int is_number(wn_span v) { return v.n && (v.p[0] == '-' || (v.p[0] >= '0' && v.p[0] <= '9')); }

/* A numeric array of at most max items into a new array (caller frees);
 * -1 when v is not one. */
static int num_array(wn_span v, double **out, int max)
{
    *out = NULL;
    if (!v.n || v.p[0] != '[') return -1;
    int n = 0;
    wn_json_iter it;
    wn_span x;
    wn_json_items_init(&it, v.p, v.n);
    while (wn_json_items_next(&it, &x)) {
        if (!is_number(x) || n == max) return -1;
        n++;
    }
    double *a = wn_calloc((size_t)n + 1, sizeof *a);
    if (!a) return -1;
    n = 0;
    wn_json_items_init(&it, v.p, v.n);
    while (wn_json_items_next(&it, &x)) wn_json_to_double(x, &a[n++]);
    *out = a;
    return n;
}

/* One step of the run, read once. */
typedef struct {
    const wn_report_stage *rs;
    const char *j; /* the report; NULL when unusable */
    size_t n;
    int number;    /* NN of the directory */
    int is_read, is_write;
    const char *colour;
    double docs_in, docs_out, bytes_in, bytes_out, tokens_in, tokens_out, modified, dropped;
    double wall, cpu, mem;
    int has_tokens;
    int has_gpu;         /* ran on a GPU: its report's energy has a GPU part */
    double gpu_s, gpu_j; /* gpu_j < 0: not measured */
    double hist[64];
    int n_hist;
} step;

static void step_read(step *s, const wn_report_stage *rs, int i, int last)
{
    memset(s, 0, sizeof *s);
    s->rs = rs;
    s->number = (int)strtol(rs->dir, NULL, 10);
    s->colour = palette[i % (int)WN_ARRAY_LEN(palette)];
    if (!rs->json.len) return;
    const char *j = s->j = rs->json.p;
    size_t n = s->n = rs->json.len;
    wn_span v, k, x;
    s->is_read = s->number == 0;
    s->is_write = i == last && wn_json_get(j, n, "stage", &v) && v.n == 7 && !memcmp(v.p, "\"write\"", 7);
    s->docs_in = num(j, n, "docs_in");
    s->docs_out = num(j, n, "docs_out");
    s->bytes_in = num(j, n, "bytes_in");
    s->bytes_out = num(j, n, "bytes_out");
    s->has_tokens = has(j, n, "tokens_out");
    s->tokens_in = num(j, n, "tokens_in");
    s->tokens_out = num(j, n, "tokens_out");
    s->modified = num(j, n, "modified");
    s->wall = num(j, n, "wall_seconds");
    s->cpu = num(j, n, "cpu_seconds");
    s->mem = num(j, n, "peak_memory_bytes");
    s->has_gpu = wn_energy_read_gpu(j, n, &s->gpu_s, &s->gpu_j);
    if (wn_json_get(j, n, "dropped", &v) && v.p[0] == '{') {
        wn_json_iter it;
        wn_json_iter_init(&it, v.p, v.n);
        while (wn_json_iter_next(&it, &k, &x)) {
            double c = 0;
            wn_json_to_double(x, &c);
            s->dropped += c;
        }
    }
    wn_span h;
    if (wn_json_get(j, n, "length_histogram", &h) && h.p[0] == '{' && wn_json_get(h.p, h.n, "counts", &v) &&
        v.p[0] == '[') {
        wn_json_iter it;
        wn_json_items_init(&it, v.p, v.n);
        while (s->n_hist < (int)WN_ARRAY_LEN(s->hist) && wn_json_items_next(&it, &x))
            wn_json_to_double(x, &s->hist[s->n_hist++]);
    }
}

static void step_label(page *pg, const step *s) { esc(pg, s->rs->dir); }

/* ---- charts: horizontal bars ------------------------------------------------ */

typedef struct {
    const char *label; /* escaped on output */
    const char *colour;
    double value;      /* the solid part */
    double removed;    /* a faded part after it: what the step took away */
    char note[128];    /* after the number, in grey */
    char tip[256];     /* tooltip (escaped on output) */
} bar_row;

static void chart_bars(page *pg, const char *aria, const bar_row *rows, int n, fmt_fn fmt, int label_w)
{
    const int row_h = 26, bar_h = 16, text_w = 300, x0 = label_w + 10;
    const double bar_w = CHART_W - x0 - text_w;
    double max = 0;
    for (int i = 0; i < n; i++)
        if (rows[i].value + rows[i].removed > max) max = rows[i].value + rows[i].removed;
    int h = n * row_h + 8;
    putf(pg, "<svg class=\"chart\" viewBox=\"0 0 %d %d\" role=\"img\" aria-label=\"", CHART_W, h);
    esc(pg, aria);
    put(pg, "\">");
    for (int i = 0; i < n; i++) {
        const bar_row *r = &rows[i];
        double y = 4 + i * row_h, w = max > 0 ? r->value / max * bar_w : 0;
        double wr = max > 0 ? r->removed / max * bar_w : 0;
        char v[64];
        fmt(v, sizeof v, r->value);
        put(pg, "<g><title>");
        esc(pg, r->label);
        put(pg, ": ");
        esc(pg, r->tip[0] ? r->tip : v);
        put(pg, "</title>");
        putf(pg, "<text x=\"%d\" y=\"%.1f\" text-anchor=\"end\">", label_w, y + bar_h - 3);
        esc_cut(pg, r->label, strlen(r->label), 36);
        put(pg, "</text>");
        putf(pg, "<rect x=\"%d\" y=\"%.1f\" width=\"%.1f\" height=\"%d\" rx=\"2\" fill=\"%s\"/>", x0, y,
             w > 0 && w < 1 ? 1.0 : w, bar_h, r->colour);
        if (wr > 0)
            putf(pg, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%d\" rx=\"2\" fill=\"%s\" "
                     "fill-opacity=\"0.22\" stroke=\"%s\" stroke-opacity=\"0.5\" stroke-dasharray=\"3 2\"/>",
                 x0 + w, y, wr < 1 ? 1.0 : wr, bar_h, r->colour, r->colour);
        putf(pg, "<text x=\"%.1f\" y=\"%.1f\" class=\"v\">", x0 + w + wr + 6, y + bar_h - 3);
        esc(pg, v);
        if (r->note[0]) {
            put(pg, "<tspan class=\"muted\"> ");
            esc(pg, r->note);
            put(pg, "</tspan>");
        }
        put(pg, "</text></g>");
    }
    put(pg, "</svg>\n");
}

/* ---- charts: histograms --------------------------------------------------- */

typedef struct {
    const char *name;
    const double *edges; /* n + 1 */
    const double *counts;
    int n;
    const char *colour;
    int outline; /* drawn as a step line (a reference distribution) */
} hist_series;

enum { X_LINEAR, X_LOG, X_ORDINAL };

typedef struct {
    int mode;
    double lo, hi; /* value range (linear, log) or bin range (ordinal) */
    const double *edges; /* ordinal: the shared edges */
    double x0, w;
} xmap;

static double xmap_at(const xmap *m, double v)
{
    double t;
    if (m->mode == X_LOG) t = (log10(v) - log10(m->lo)) / (log10(m->hi) - log10(m->lo));
    else t = (v - m->lo) / (m->hi - m->lo);
    if (!(t >= 0)) t = 0;
    if (t > 1) t = 1;
    return m->x0 + t * m->w;
}

/* Bin i's left and right x under the map. */
static void xmap_bin(const xmap *m, const hist_series *s, int i, double *a, double *b)
{
    if (m->mode == X_ORDINAL) {
        *a = xmap_at(m, i);
        *b = xmap_at(m, i + 1);
    } else {
        *a = xmap_at(m, s->edges[i]);
        *b = xmap_at(m, s->edges[i + 1]);
    }
}

/* Equal-width bins share a linear axis. Unequal widths (log-spaced cluster
 * sizes, document lengths) get one equal slot per bin, labelled with the
 * edges, when all series share their edges; otherwise a log axis when every
 * edge is positive. */
static void xmap_choose(xmap *m, const hist_series *s, int ns)
{
    memset(m, 0, sizeof *m);
    int uniform = 1, same = 1, positive = 1;
    m->lo = INFINITY;
    m->hi = -INFINITY;
    for (int k = 0; k < ns; k++) {
        double w0 = s[k].edges[1] - s[k].edges[0];
        for (int i = 0; i <= s[k].n; i++) {
            double e = s[k].edges[i];
            if (e < m->lo) m->lo = e;
            if (e > m->hi) m->hi = e;
            if (e <= 0) positive = 0;
            if (i < s[k].n && fabs((s[k].edges[i + 1] - e) - w0) > 1e-6 * fabs(w0) + 1e-12) uniform = 0;
        }
        if (s[k].n != s[0].n || memcmp(s[k].edges, s[0].edges, ((size_t)s[0].n + 1) * sizeof(double))) same = 0;
    }
    if (!(m->hi > m->lo)) m->hi = m->lo + 1;
    if (uniform) m->mode = X_LINEAR;
    else if (same) {
        m->mode = X_ORDINAL;
        m->edges = s[0].edges;
        m->lo = 0;
        m->hi = s[0].n;
    } else m->mode = positive ? X_LOG : X_LINEAR;
}

/* A histogram W wide (viewBox units: 480 for half a row, CHART_W for a
 * whole one); unit names what is counted in the tooltips. */
static void chart_hist(page *pg, int W, const char *aria, const hist_series *s, int ns, const char *xlabel,
                       fmt_fn xfmt, const char *unit)
{
    const int H = 240, left = 52, right = 16, top = 30, bottom = xlabel && *xlabel ? 46 : 30;
    xmap m;
    xmap_choose(&m, s, ns);
    m.x0 = left;
    m.w = W - left - right;
    double ymax = 0;
    for (int k = 0; k < ns; k++)
        for (int i = 0; i < s[k].n; i++)
            if (s[k].counts[i] > ymax) ymax = s[k].counts[i];
    double ys = nice_step(ymax > 0 ? ymax : 1, 4), ytop = ceil((ymax > 0 ? ymax : 1) / ys) * ys;
    double ph = H - top - bottom;
    putf(pg, "<svg class=\"chart\" viewBox=\"0 0 %d %d\" role=\"img\" aria-label=\"", W, H);
    esc(pg, aria);
    put(pg, "\">");
    char b[64], b2[64];
    /* tick loops count steps (at most MAX_TICKS): adding a step that is tiny
     * next to the value (edges near 1e18) would not move it */
    for (int t = 0; t <= MAX_TICKS && t * ys <= ytop * (1 + 1e-9); t++) { /* grid and y labels */
        double y = t * ys, py = top + ph - y / ytop * ph;
        fmt_si(b, sizeof b, y);
        putf(pg, "<line class=\"grid\" x1=\"%d\" x2=\"%d\" y1=\"%.1f\" y2=\"%.1f\"/>", left, W - right, py, py);
        putf(pg, "<text x=\"%d\" y=\"%.1f\" text-anchor=\"end\" class=\"muted\">%s</text>", left - 6, py + 4, b);
    }
    /* x ticks */
    if (m.mode == X_ORDINAL) {
        int most = W / 48, every = s[0].n + 1 > most ? (s[0].n + most) / most : 1;
        for (int i = 0; i <= s[0].n; i += every) {
            xfmt(b, sizeof b, m.edges[i]);
            putf(pg, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\" class=\"muted\">%s</text>", xmap_at(&m, i),
                 top + ph + 16, b);
        }
    } else if (m.mode == X_LOG) {
        int few = log10(m.hi / m.lo) < 2.5; /* few decades: 1, 2, 5 in each */
        double p = pow(10, floor(log10(m.lo)));
        for (int t = 0; t <= MAX_TICKS && p <= m.hi * (1 + 1e-9); t++, p *= 10)
            for (int f = 1; f <= 5; f += f == 1 ? 1 : 3) {
                if ((f > 1 && !few) || p * f < m.lo * (1 - 1e-9) || p * f > m.hi * (1 + 1e-9)) continue;
                xfmt(b, sizeof b, p * f);
                putf(pg, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\" class=\"muted\">%s</text>",
                     xmap_at(&m, p * f), top + ph + 16, b);
            }
    } else {
        double xs = nice_step(m.hi - m.lo, W / 110);
        double x0 = ceil(m.lo / xs - 1e-9) * xs;
        for (int t = 0; t <= MAX_TICKS && x0 + t * xs <= m.hi + xs * 1e-9; t++) {
            double x = x0 + t * xs;
            xfmt(b, sizeof b, fabs(x) < xs * 1e-9 ? 0 : x);
            putf(pg, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\" class=\"muted\">%s</text>", xmap_at(&m, x),
                 top + ph + 16, b);
        }
    }
    putf(pg, "<line class=\"axis\" x1=\"%d\" x2=\"%d\" y1=\"%.1f\" y2=\"%.1f\"/>", left, W - right, top + ph, top + ph);
    if (xlabel && *xlabel) {
        putf(pg, "<text x=\"%.1f\" y=\"%d\" text-anchor=\"middle\" class=\"muted\">", left + m.w / 2, H - 6);
        esc_cut(pg, xlabel, strlen(xlabel), 120);
        put(pg, "</text>");
    }
    /* bars: filled series first, reference outlines on top */
    for (int pass = 0; pass < 2; pass++)
        for (int k = 0; k < ns; k++) {
            const hist_series *h = &s[k];
            if (h->outline != pass) continue;
            int filled = 0;
            for (int q = 0; q < ns; q++) filled += !s[q].outline;
            double filled_opacity = filled > 1 ? 0.55 : 0.85;
            if (h->outline) { /* a step line over the bins */
                put(pg, "<path fill=\"none\" stroke-width=\"1.6\" stroke=\"");
                put(pg, h->colour);
                put(pg, "\" d=\"");
                for (int i = 0; i < h->n; i++) {
                    double a, c, y = top + ph - h->counts[i] / ytop * ph;
                    xmap_bin(&m, h, i, &a, &c);
                    putf(pg, "%s%.1f %.1fH%.1f", i ? "L" : "M", a, y, c);
                }
                put(pg, "\"/>");
            }
            for (int i = 0; i < h->n; i++) {
                double a, c, y = top + ph - h->counts[i] / ytop * ph;
                xmap_bin(&m, h, i, &a, &c);
                if (c - a > 3) { a += 0.5; c -= 0.5; }
                xfmt(b, sizeof b, h->edges[i]);
                xfmt(b2, sizeof b2, h->edges[i + 1]);
                char cnt[48];
                fmt_count(cnt, sizeof cnt, h->counts[i]);
                if (h->outline) /* an invisible bar keeps the tooltip */
                    putf(pg, "<rect x=\"%.1f\" y=\"%d\" width=\"%.1f\" height=\"%.1f\" fill=\"transparent\">",
                         a, top, c - a, ph);
                else if (h->counts[i] > 0)
                    putf(pg, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"%s\" "
                             "fill-opacity=\"%.2f\">",
                         a, y, c - a, top + ph - y, h->colour, filled_opacity);
                else
                    continue;
                put(pg, "<title>");
                esc(pg, h->name);
                putf(pg, ": [%s, %s) ", b, b2);
                esc(pg, unit ? unit : "");
                putf(pg, ": %s</title></rect>", cnt);
            }
        }
    /* legend */
    double lx = left;
    for (int k = 0; k < ns; k++) {
        double total = 0;
        for (int i = 0; i < s[k].n; i++) total += s[k].counts[i];
        char t[48];
        fmt_count(t, sizeof t, total);
        if (s[k].outline)
            putf(pg, "<line x1=\"%.1f\" x2=\"%.1f\" y1=\"13\" y2=\"13\" stroke=\"%s\" stroke-width=\"2\"/>", lx,
                 lx + 14, s[k].colour);
        else
            putf(pg, "<rect x=\"%.1f\" y=\"7\" width=\"14\" height=\"12\" rx=\"2\" fill=\"%s\"/>", lx, s[k].colour);
        putf(pg, "<text x=\"%.1f\" y=\"17\">", lx + 20);
        esc_cut(pg, s[k].name, strlen(s[k].name), 40);
        putf(pg, " <tspan class=\"muted\">(%s)</tspan></text>", t);
        lx += 20 + 7 * (double)(strlen(s[k].name) < 40 ? strlen(s[k].name) : 40) + 7 * (double)strlen(t) + 30;
    }
    put(pg, "</svg>\n");
}

/* ---- charts: lines (the experiment's validation curves) ---------------------- */

typedef struct {
    double *x, *y;
    int n;
    const char *colour;
    char tip[160];
} line_series;

typedef struct {
    const char *name, *colour;
} legend_item;

/* logx: the series' x are log10 of the quantity; ticks at whole decades,
 * labelled with the quantity. */
static void chart_lines(page *pg, const char *aria, const line_series *s, int ns, const legend_item *legend,
                        int nl, double hline, const char *hline_label, const char *xlabel, const char *ylabel,
                        int logx)
{
    const int W = CHART_W, H = 360, left = 64, right = 24, top = 34, bottom = 46;
    double xlo = INFINITY, xhi = -INFINITY, ylo = INFINITY, yhi = -INFINITY;
    for (int k = 0; k < ns; k++)
        for (int i = 0; i < s[k].n; i++) {
            if (s[k].x[i] < xlo) xlo = s[k].x[i];
            if (s[k].x[i] > xhi) xhi = s[k].x[i];
            if (s[k].y[i] < ylo) ylo = s[k].y[i];
            if (s[k].y[i] > yhi) yhi = s[k].y[i];
        }
    if (isfinite(hline)) {
        if (hline < ylo) ylo = hline;
        if (hline > yhi) yhi = hline;
    }
    if (!(xhi >= xlo)) { xlo = 0; xhi = 1; }
    if (!(yhi >= ylo)) { ylo = 0; yhi = 1; }
    if (logx) {
        xlo = floor(xlo);
        xhi = ceil(xhi);
    } else if (xlo > 0) {
        xlo = 0;
    }
    if (xhi == xlo) xhi = xlo + 1;
    if (yhi == ylo) { yhi += 0.5; ylo -= 0.5; }
    double ys = nice_step(yhi - ylo, 5), xs = logx ? 1 : nice_step(xhi - xlo, 8);
    ylo = floor(ylo / ys) * ys;
    yhi = ceil(yhi / ys) * ys;
    xhi = ceil(xhi / xs) * xs;
    double pw = W - left - right, ph = H - top - bottom;
#define PX(v) (left + ((v) - xlo) / (xhi - xlo) * pw)
#define PY(v) (top + ph - ((v) - ylo) / (yhi - ylo) * ph)
    putf(pg, "<svg class=\"chart\" viewBox=\"0 0 %d %d\" role=\"img\" aria-label=\"", W, H);
    esc(pg, aria);
    put(pg, "\">");
    char b[64];
    for (int t = 0; t <= MAX_TICKS && ylo + t * ys <= yhi + ys * 1e-9; t++) {
        double y = ylo + t * ys;
        snprintf(b, sizeof b, "%.4g", fabs(y) < ys * 1e-9 ? 0 : y);
        putf(pg, "<line class=\"grid\" x1=\"%d\" x2=\"%d\" y1=\"%.1f\" y2=\"%.1f\"/>", left, W - right, PY(y), PY(y));
        putf(pg, "<text x=\"%d\" y=\"%.1f\" text-anchor=\"end\" class=\"muted\">%s</text>", left - 6, PY(y) + 4, b);
    }
    for (int t = 0; t <= MAX_TICKS && xlo + t * xs <= xhi + xs * 1e-9; t++) {
        double x = xlo + t * xs;
        fmt_si(b, sizeof b, logx ? pow(10, x) : x);
        putf(pg, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\" class=\"muted\">%s</text>", PX(x),
             top + ph + 16, b);
    }
    putf(pg, "<line class=\"axis\" x1=\"%d\" x2=\"%d\" y1=\"%.1f\" y2=\"%.1f\"/>", left, W - right, top + ph, top + ph);
    putf(pg, "<text x=\"%.1f\" y=\"%d\" text-anchor=\"middle\" class=\"muted\">", left + pw / 2, H - 8);
    esc(pg, xlabel);
    putf(pg, "</text><text transform=\"translate(14 %.1f) rotate(-90)\" text-anchor=\"middle\" class=\"muted\">",
         top + ph / 2);
    esc(pg, ylabel);
    put(pg, "</text>");
    if (isfinite(hline)) {
        putf(pg, "<line x1=\"%d\" x2=\"%d\" y1=\"%.1f\" y2=\"%.1f\" stroke=\"%s\" stroke-dasharray=\"5 4\"/>", left,
             W - right, PY(hline), PY(hline), GREY);
        putf(pg, "<text x=\"%d\" y=\"%.1f\" class=\"muted\">", left + 6, PY(hline) - 5);
        esc(pg, hline_label);
        put(pg, "</text>");
    }
    for (int k = 0; k < ns; k++) {
        if (!s[k].n) continue;
        putf(pg, "<g><title>");
        esc(pg, s[k].tip);
        putf(pg, "</title><path fill=\"none\" stroke=\"%s\" stroke-width=\"1.8\" stroke-opacity=\"0.85\" d=\"",
             s[k].colour);
        for (int i = 0; i < s[k].n; i++) putf(pg, "%s%.1f %.1f", i ? "L" : "M", PX(s[k].x[i]), PY(s[k].y[i]));
        put(pg, "\"/>");
        putf(pg, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"3\" fill=\"%s\"/></g>", PX(s[k].x[s[k].n - 1]),
             PY(s[k].y[s[k].n - 1]), s[k].colour);
    }
    double lx = left;
    for (int k = 0; k < nl; k++) {
        putf(pg, "<line x1=\"%.1f\" x2=\"%.1f\" y1=\"16\" y2=\"16\" stroke=\"%s\" stroke-width=\"3\"/>", lx, lx + 18,
             legend[k].colour);
        putf(pg, "<text x=\"%.1f\" y=\"20\">", lx + 24);
        esc_cut(pg, legend[k].name, strlen(legend[k].name), 30);
        put(pg, "</text>");
        lx += 24 + 8 * (double)(strlen(legend[k].name) < 30 ? strlen(legend[k].name) : 30) + 24;
    }
#undef PX
#undef PY
    put(pg, "</svg>\n");
}

/* ---- tables ------------------------------------------------------------------ */

static void td_num(page *pg, fmt_fn f, double x)
{
    char b[64];
    f(b, sizeof b, x);
    put(pg, "<td class=\"n\">");
    esc(pg, b);
    put(pg, "</td>");
}

static void td_text(page *pg, const char *s)
{
    put(pg, "<td class=\"n\">");
    esc(pg, s);
    put(pg, "</td>");
}

static void th_row(page *pg, const char *const *cols, int n)
{
    put(pg, "<thead><tr>");
    for (int i = 0; i < n; i++) {
        /* a leading '<' marks a left-aligned (text) column */
        if (cols[i][0] == '<') putf(pg, "<th>%s</th>", cols[i] + 1);
        else putf(pg, "<th class=\"n\">%s</th>", cols[i]);
    }
    put(pg, "</tr></thead>\n");
}

/* A small inline bar for tables: share in [0, 1]. */
static void td_bar(page *pg, double share, const char *colour)
{
    if (!(share >= 0)) share = 0;
    if (share > 1) share = 1;
    putf(pg, "<td class=\"barcell\"><span class=\"bar\" style=\"width:%.1f%%;background:%s\"></span></td>",
         100 * share, colour);
}

/* ---- the page's sections ------------------------------------------------------ */

static const char css[] =
    ":root{--bg:#f6f6f3;--card:#fff;--fg:#1f2328;--muted:#6a6f76;--line:#e4e4df;--grid:#ecece8;"
    "--accent:#4e79a7;--code:#f2f2ee}\n"
    "@media (prefers-color-scheme:dark){:root{--bg:#141517;--card:#1d1f22;--fg:#e6e6e8;--muted:#9ba0a6;"
    "--line:#33363b;--grid:#2a2d31;--accent:#8cb4e0;--code:#26292d}}\n"
    "*{box-sizing:border-box}\n"
    "body{margin:0;background:var(--bg);color:var(--fg);font:14px/1.5 system-ui,-apple-system,'Segoe UI',"
    "Roboto,'Helvetica Neue',Arial,sans-serif}\n"
    "header{background:var(--card);border-bottom:1px solid var(--line);padding:22px 0 0}\n"
    ".wrap{max-width:1180px;margin:0 auto;padding:0 28px}\n"
    "h1{font-size:22px;margin:0 0 2px;font-weight:650}\n"
    "h1 .dir{font-weight:500;color:var(--muted)}\n"
    ".lead{margin:4px 0 12px;color:var(--muted)}\n"
    ".lead b{color:var(--fg)}\n"
    "nav{display:flex;flex-wrap:wrap;gap:2px 18px;padding:6px 0 10px}\n"
    "nav a{color:var(--accent);text-decoration:none;font-weight:550}\n"
    "nav a:hover{text-decoration:underline}\n"
    "main{padding:22px 0 40px}\n"
    "section{background:var(--card);border:1px solid var(--line);border-radius:10px;padding:18px 22px;"
    "margin:0 0 22px}\n"
    "h2{font-size:18px;margin:0 0 4px}\n"
    "h3{font-size:15px;margin:18px 0 6px}\n"
    "h4{font-size:13px;margin:14px 0 4px;color:var(--muted);font-weight:600}\n"
    ".hint{color:var(--muted);margin:0 0 12px;font-size:13px}\n"
    ".cards{display:grid;grid-template-columns:repeat(auto-fill,minmax(165px,1fr));gap:10px;margin:12px 0}\n"
    ".card{border:1px solid var(--line);border-radius:8px;padding:9px 12px}\n"
    ".card .k{color:var(--muted);font-size:11.5px;text-transform:uppercase;letter-spacing:.04em}\n"
    ".card .v{font-size:19px;font-weight:620;font-variant-numeric:tabular-nums;overflow-wrap:anywhere}\n"
    ".card .s{color:var(--muted);font-size:12px}\n"
    ".tbl{overflow-x:auto;margin:8px 0}\n"
    "table{border-collapse:collapse;width:100%;font-variant-numeric:tabular-nums;font-size:13px}\n"
    "th,td{padding:5px 9px;border-bottom:1px solid var(--line);text-align:left;vertical-align:top}\n"
    "th{color:var(--muted);font-weight:600;font-size:12px;white-space:nowrap}\n"
    "td.n,th.n{text-align:right;white-space:nowrap}td:first-child{white-space:nowrap}\n"
    "tr.total td{font-weight:600;border-top:2px solid var(--line)}\n"
    "td.barcell{width:18%;min-width:90px}\n"
    ".bar{display:inline-block;height:10px;border-radius:2px;vertical-align:middle}\n"
    ".sw{display:inline-block;width:10px;height:10px;border-radius:2px;margin-right:7px;vertical-align:-1px}\n"
    "code{font:12px ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;background:var(--code);"
    "padding:1px 5px;border-radius:4px;overflow-wrap:anywhere}\n"
    "pre{font:12px/1.45 ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;background:var(--code);"
    "padding:12px;border-radius:8px;overflow:auto;max-height:520px}\n"
    "details summary{cursor:pointer;color:var(--accent)}\n"
    "table.kv{width:auto;min-width:50%}table.kv td:first-child{padding-right:28px}\n"
    ".card.wide{grid-column:span 2}.card.wide .v{font-size:14px;font-weight:550;padding-top:4px}\n"
    "td a{color:inherit;text-decoration:none}td a:hover{text-decoration:underline}\n"
    ".ids{margin:4px 0 0;padding:0;list-style:none}\n"
    ".ids li{margin:2px 0}\n"
    ".badge{display:inline-block;padding:1px 9px;border-radius:999px;font-size:12px;font-weight:650;"
    "vertical-align:3px}\n"
    ".ok{background:#dff0dc;color:#2d6a27}.warn{background:#fbe8cc;color:#8a5200}"
    ".bad{background:#f9dcdc;color:#9b1c1c}\n"
    ".grid2{display:grid;grid-template-columns:minmax(0,1fr) minmax(0,1fr);gap:8px 26px}\n"
    "@media (max-width:900px){.grid2{grid-template-columns:minmax(0,1fr)}}\n"
    "article{border-top:1px solid var(--line);padding:6px 0 10px}\n"
    "article:first-of-type{border-top:0}\n"
    "article h3 .sw{width:12px;height:12px}\n"
    "svg.chart{display:block;width:100%;height:auto;margin:6px 0 4px}\n"
    "svg text{fill:var(--fg);font-size:12px;font-family:system-ui,-apple-system,'Segoe UI',Roboto,Arial,"
    "sans-serif}\n"
    "svg text.muted,svg tspan.muted{fill:var(--muted)}\n"
    "svg .grid{stroke:var(--grid)}svg .axis{stroke:var(--muted)}\n"
    "footer{color:var(--muted);font-size:12px;padding:0 0 30px}\n";

typedef struct {
    const wn_report *r;
    step *steps;
    int n;
    int first, last; /* first and last usable step; -1 when none */
    page pg;
} ctx;

static void card(page *pg, const char *k, const char *v, const char *sub)
{
    /* long values (paths) get two columns and a smaller font */
    put(pg, strlen(v) > 16 ? "<div class=\"card wide\"><div class=\"k\">" : "<div class=\"card\"><div class=\"k\">");
    esc(pg, k);
    put(pg, "</div><div class=\"v\">");
    esc(pg, v);
    put(pg, "</div>");
    if (sub && *sub) {
        put(pg, "<div class=\"s\">");
        esc(pg, sub);
        put(pg, "</div>");
    }
    put(pg, "</div>");
}

/* run.json's string member key, decoded into b (empty when absent). */
static void run_str(const wn_report *r, const char *key, char *b, size_t n)
{
    wn_span v;
    wn_buf s = {0};
    b[0] = 0;
    if (r->run.len && wn_json_get(r->run.p, r->run.len, key, &v) && v.p[0] == '"' && !wn_json_decode_string(v, &s) &&
        s.p)
        snprintf(b, n, "%s", s.p);
    wn_buf_free(&s);
}

static void section_summary(ctx *c)
{
    page *pg = &c->pg;
    const wn_report *r = c->r;
    const char *rj = r->run.p;
    size_t rn = r->run.len;
    char a[256], b[256], t[300];
    put(pg, "<section id=\"summary\"><h2>Run summary</h2>");
    if (!rn)
        put(pg, "<p class=\"hint\">No <code>run.json</code>: the run did not complete (or is still running); the "
                "step reports below are what was written so far.</p>");
    put(pg, "<div class=\"cards\">");
    run_str(r, "status", a, sizeof a);
    card(pg, "status", a[0] ? a : "incomplete", rn && has(rj, rn, "resumed_from_checkpoint") &&
                                                      num(rj, rn, "resumed_from_checkpoint") > 0
                                                  ? "resumed from a checkpoint"
                                                  : "");
    run_str(r, "manifest", a, sizeof a);
    if (a[0]) card(pg, "manifest", a, "");
    if (has(rj, rn, "wall_seconds_last_session")) {
        fmt_secs(a, sizeof a, num(rj, rn, "wall_seconds_last_session"));
        card(pg, "wall time", a, "last session");
    }
    if (has(rj, rn, "peak_rss_bytes")) {
        fmt_bytes(a, sizeof a, num(rj, rn, "peak_rss_bytes"));
        card(pg, "peak RSS", a, "resident memory of the process");
    }
    if (has(rj, rn, "threads")) {
        fmt_count(a, sizeof a, num(rj, rn, "threads"));
        card(pg, "threads", a, "");
    }
    if (has(rj, rn, "cpu_seconds_last_session")) {
        fmt_secs(a, sizeof a, num(rj, rn, "cpu_seconds_last_session"));
        card(pg, "CPU time", a, "last session, all threads");
        snprintf(a, sizeof a, "%.3g", num(rj, rn, "flops"));
        card(pg, "FLOPs", a, "model work, counted analytically");
        wn_span en, jv, mv;
        double j = NAN;
        if (wn_json_get(rj, rn, "energy", &en) && en.p[0] == '{' && wn_json_get(en.p, en.n, "joules", &jv) &&
            is_number(jv))
            wn_json_to_double(jv, &j);
        double gs, gj;
        int gpu = wn_energy_read_gpu(rj, rn, &gs, &gj);
        if (!isnan(j)) {
            snprintf(a, sizeof a, "%.0f J", j);
            int measured = wn_json_get(en.p, en.n, "method", &mv) && mv.n == 6 && !memcmp(mv.p, "\"rapl\"", 6);
            if (gpu && gj >= 0) /* the total is CPU part + GPU part */
                card(pg, "energy", a, measured ? "CPU + GPU, measured (RAPL, NVML)"
                                               : "CPU estimated (10 W per busy core) + GPU measured (NVML)");
            else
                card(pg, "energy", a, measured ? "measured (RAPL counters)" : "estimated: 10 W per busy core");
        }
        if (gpu) {
            fmt_secs(a, sizeof a, gs);
            card(pg, "GPU time", a, "last session, steps with work on the GPU");
            if (gj >= 0) {
                snprintf(a, sizeof a, "%.0f J", gj);
                card(pg, "GPU energy", a, "measured (NVML counters, last session), part of energy");
            } else {
                card(pg, "GPU energy", "not measured", "no readable NVML counters; not in energy");
            }
        }
    }
    if (has(rj, rn, "input_files")) {
        fmt_count(a, sizeof a, num(rj, rn, "input_files"));
        fmt_bytes(b, sizeof b, num(rj, rn, "input_bytes"));
        snprintf(t, sizeof t, "%s as stored", b);
        card(pg, "input files", a, t);
    }
    if (c->first >= 0) {
        const step *f = &c->steps[c->first], *l = &c->steps[c->last];
        double in = f->is_read ? f->docs_out : f->docs_in;
        fmt_count(a, sizeof a, in);
        card(pg, "documents read", a, "");
        fmt_count(a, sizeof a, l->docs_out);
        fmt_pct(b, sizeof b, l->docs_out, in);
        snprintf(t, sizeof t, "%s of those read", b);
        card(pg, "documents out", a, t);
        double tok = 0;
        for (int i = 0; i < c->n; i++)
            if (c->steps[i].has_tokens) tok = c->steps[i].tokens_out;
        if (tok > 0) {
            fmt_count(a, sizeof a, tok);
            card(pg, "tokens out", a, "");
        }
    }
    if (has(rj, rn, "document_shards")) {
        fmt_count(a, sizeof a, num(rj, rn, "document_shards"));
        card(pg, "document shards", a, "documents/");
    }
    run_str(r, "winnow_version", a, sizeof a);
    if (a[0]) card(pg, "winnow", a, "version that ran");
    put(pg, "</div>");
    /* whatever else run.json says, as written */
    static const char *const known[] = {"status", "manifest", "wall_seconds_last_session", "peak_rss_bytes",
                                        "threads", "input_files", "input_bytes", "document_shards",
                                        "winnow_version", "resumed_from_checkpoint", "documents_out"};
    wn_json_iter it;
    wn_span k, v;
    int rows = 0;
    if (rn) {
        wn_json_iter_init(&it, rj, rn);
        while (wn_json_iter_next(&it, &k, &v)) {
            int skip = 0;
            for (size_t i = 0; i < WN_ARRAY_LEN(known); i++) skip |= wn_json_key_eq(k, known[i]);
            if (skip) continue;
            if (!rows++)
                put(pg, "<details><summary>more from run.json</summary><div class=\"tbl\"><table class=\"kv\">");
            put(pg, "<tr><td><code>");
            esc_value(pg, k, 80);
            put(pg, "</code></td><td>");
            esc_value(pg, v, 400);
            put(pg, "</td></tr>");
        }
        if (rows) put(pg, "</table></div></details>");
    }
    put(pg, "</section>\n");
}

static void section_funnel(ctx *c)
{
    page *pg = &c->pg;
    put(pg, "<section id=\"funnel\"><h2>Funnel</h2><p class=\"hint\">What each step passed on (solid) and took "
            "away (dashed). Text bytes are UTF-8 bytes of document text; the reader's input is counted as "
            "stored (compressed) in the table, the writer's output as uncompressed JSONL.</p>");
    bar_row *rows = wn_calloc((size_t)c->n + 1, sizeof *rows);
    if (!rows) { pg->e = WN_ERR_NOMEM; return; }
    for (int chart = 0; chart < 3; chart++) {
        int n = 0;
        double base = -1;
        char pct[32], rm[40];
        for (int i = 0; i < c->n; i++) {
            const step *s = &c->steps[i];
            if (!s->j) continue;
            bar_row *b = &rows[n];
            memset(b, 0, sizeof *b);
            b->label = s->rs->dir;
            b->colour = s->colour;
            double in, out;
            if (chart == 0) {
                in = s->docs_in;
                out = s->docs_out;
            } else if (chart == 1) { /* text bytes: the reader's in is compressed, the writer's out JSONL */
                in = s->is_read ? s->bytes_out : s->bytes_in;
                out = s->is_write ? s->bytes_in : s->bytes_out;
            } else {
                if (!s->has_tokens) continue;
                in = s->tokens_in;
                out = s->tokens_out;
            }
            if (base < 0) base = chart == 2 ? out : (s->is_read ? out : in);
            b->value = out;
            b->removed = in > out ? in - out : 0;
            fmt_pct(pct, sizeof pct, out, base);
            if (b->removed > 0) {
                if (chart == 1) fmt_bytes(rm, sizeof rm, b->removed);
                else fmt_count(rm, sizeof rm, b->removed);
                char share[24];
                fmt_pct(share, sizeof share, b->removed, in);
                snprintf(b->note, sizeof b->note, "\xe2\x88\x92%s (%s) \xc2\xb7 %s of %s", rm, share, pct,
                         chart == 2 ? "first" : "read");
            } else if (in < out && chart == 2 && in == 0) {
                snprintf(b->note, sizeof b->note, "tokenized here");
            } else {
                snprintf(b->note, sizeof b->note, "%s of %s", pct, chart == 2 ? "first" : "read");
            }
            n++;
        }
        if (!n) continue;
        static const char *const title[] = {"Documents", "Text bytes", "Tokens"};
        putf(pg, "<h3>%s</h3>", title[chart]);
        chart_bars(pg, title[chart], rows, n, chart == 1 ? fmt_bytes : fmt_count, 190);
    }
    wn_free(rows);

    int tokens = 0;
    for (int i = 0; i < c->n; i++) tokens |= c->steps[i].has_tokens;
    put(pg, "<h3>Table</h3><div class=\"tbl\"><table>");
    static const char *const cols[] = {"<step", "docs in", "docs out", "kept", "dropped", "modified",
                                       "bytes in", "bytes out", "tokens in", "tokens out"};
    th_row(pg, cols, tokens ? 10 : 8);
    put(pg, "<tbody>");
    for (int i = 0; i < c->n; i++) {
        const step *s = &c->steps[i];
        putf(pg, "<tr><td><span class=\"sw\" style=\"background:%s\"></span><a href=\"#step-", s->colour);
        step_label(pg, s);
        put(pg, "\">");
        step_label(pg, s);
        put(pg, "</a></td>");
        if (!s->j) {
            putf(pg, "<td colspan=\"%d\">report.json ", tokens ? 9 : 7);
            esc(pg, s->rs->why);
            put(pg, "</td></tr>");
            continue;
        }
        char b[32];
        td_num(pg, fmt_count, s->docs_in);
        td_num(pg, fmt_count, s->docs_out);
        fmt_pct(b, sizeof b, s->docs_out, s->docs_in);
        td_text(pg, b);
        td_num(pg, fmt_count, s->dropped);
        td_num(pg, fmt_count, s->modified);
        td_num(pg, fmt_bytes, s->bytes_in);
        td_num(pg, fmt_bytes, s->bytes_out);
        if (tokens && s->has_tokens) {
            td_num(pg, fmt_count, s->tokens_in);
            td_num(pg, fmt_count, s->tokens_out);
        } else if (tokens) {
            put(pg, "<td></td><td></td>");
        }
        put(pg, "</tr>\n");
    }
    put(pg, "</tbody></table></div></section>\n");
}

/* Calls fn for each (reason, count, samples array or {0}) of step s. */
typedef void (*drop_fn)(ctx *c, const step *s, wn_span reason, double count, wn_span samples, void *arg);

static int each_drop(ctx *c, const step *s, drop_fn fn, void *arg)
{
    wn_span d, samples = {0}, k, v, arr;
    int n = 0;
    if (!s->j || !wn_json_get(s->j, s->n, "dropped", &d) || d.p[0] != '{') return 0;
    wn_json_get(s->j, s->n, "dropped_samples", &samples);
    wn_json_iter it;
    wn_json_iter_init(&it, d.p, d.n);
    while (wn_json_iter_next(&it, &k, &v)) {
        double cnt = 0;
        wn_json_to_double(v, &cnt);
        wn_buf key = {0};
        arr = (wn_span){0};
        if (samples.p && samples.p[0] == '{' && !wn_json_decode_string(k, &key) && key.p &&
            (!wn_json_get(samples.p, samples.n, key.p, &arr) || arr.p[0] != '['))
            arr = (wn_span){0};
        wn_buf_free(&key);
        if (fn) fn(c, s, k, cnt, arr, arg);
        n++;
    }
    return n;
}

static void put_samples(page *pg, wn_span arr, int reader)
{
    if (!arr.p) return;
    wn_json_iter it;
    wn_span v;
    int n = 0;
    wn_json_items_init(&it, arr.p, arr.n);
    while (wn_json_items_next(&it, &v)) n++;
    if (!n) return;
    putf(pg, "<details><summary>%d sampled %s%s</summary><ul class=\"ids\">", n, reader ? "message" : "id",
         n == 1 ? "" : "s");
    wn_json_items_init(&it, arr.p, arr.n);
    while (wn_json_items_next(&it, &v)) {
        put(pg, "<li><code>");
        esc_value(pg, v, 300);
        put(pg, "</code></li>");
    }
    put(pg, "</ul></details>");
}

typedef struct {
    bar_row *rows;
    wn_buf *labels; /* owned label strings, one per row */
    int n, cap;
    double read;
    int table_mode;
} drops_acc;

static void drop_collect(ctx *c, const step *s, wn_span reason, double count, wn_span samples, void *arg)
{
    drops_acc *a = arg;
    if (a->table_mode) {
        page *pg = &c->pg;
        char b[32];
        putf(pg, "<tr><td><span class=\"sw\" style=\"background:%s\"></span>", s->colour);
        step_label(pg, s);
        put(pg, "</td><td><code>");
        esc_value(pg, reason, 80);
        put(pg, "</code></td>");
        td_num(pg, fmt_count, count);
        fmt_pct(b, sizeof b, count, s->docs_in);
        td_text(pg, b);
        fmt_pct(b, sizeof b, count, a->read);
        td_text(pg, b);
        td_bar(pg, s->docs_in > 0 ? count / s->docs_in : 0, s->colour);
        put(pg, "<td>");
        put_samples(pg, samples, s->is_read);
        put(pg, "</td></tr>\n");
        return;
    }
    if (a->n == a->cap) return;
    wn_buf *l = &a->labels[a->n];
    wn_buf_printf(l, "%s \xc2\xb7 ", s->rs->dir);
    wn_json_decode_string(reason, l);
    bar_row *b = &a->rows[a->n++];
    memset(b, 0, sizeof *b);
    b->label = l->p ? l->p : "";
    b->colour = s->colour;
    b->value = count;
    char pct[32];
    fmt_pct(pct, sizeof pct, count, s->docs_in);
    snprintf(b->note, sizeof b->note, "%s of the step's input", pct);
}

static void section_drops(ctx *c)
{
    page *pg = &c->pg;
    put(pg, "<section id=\"drops\"><h2>Drop reasons</h2>");
    int total = 0;
    for (int i = 0; i < c->n; i++) total += each_drop(c, &c->steps[i], NULL, NULL);
    if (!total) {
        put(pg, "<p class=\"hint\">No step dropped anything.</p></section>\n");
        return;
    }
    put(pg, "<p class=\"hint\">Every document a step removed, counted per reason, with a sample of the ids "
            "(the reader's reasons are input errors, sampled as messages).</p>");
    drops_acc a = {0};
    a.cap = total;
    a.rows = wn_calloc((size_t)total, sizeof *a.rows);
    a.labels = wn_calloc((size_t)total, sizeof *a.labels);
    if (c->first >= 0) a.read = c->steps[c->first].is_read ? c->steps[c->first].docs_out : c->steps[c->first].docs_in;
    if (!a.rows || !a.labels) {
        pg->e = WN_ERR_NOMEM;
    } else {
        for (int i = 0; i < c->n; i++) each_drop(c, &c->steps[i], drop_collect, &a);
        chart_bars(pg, "documents dropped per step and reason", a.rows, a.n, fmt_count, 300);
    }
    for (int i = 0; a.labels && i < a.n; i++) wn_buf_free(&a.labels[i]);
    wn_free(a.rows);
    wn_free(a.labels);
    put(pg, "<div class=\"tbl\"><table>");
    static const char *const cols[] = {"<step", "<reason", "dropped", "of step input", "of documents read", "<",
                                       "<samples"};
    th_row(pg, cols, 7);
    put(pg, "<tbody>");
    a.table_mode = 1;
    for (int i = 0; i < c->n; i++) each_drop(c, &c->steps[i], drop_collect, &a);
    put(pg, "</tbody></table></div></section>\n");
}

static void section_time(ctx *c)
{
    page *pg = &c->pg;
    double total = 0;
    int n = 0;
    for (int i = 0; i < c->n; i++)
        if (c->steps[i].j) { total += c->steps[i].wall; n++; }
    put(pg, "<section id=\"time\"><h2>Time and throughput</h2>");
    {
        char a[64], b[64];
        fmt_secs(a, sizeof a, total);
        if (c->r->run.len && has(c->r->run.p, c->r->run.len, "wall_seconds_last_session")) {
            fmt_secs(b, sizeof b, num(c->r->run.p, c->r->run.len, "wall_seconds_last_session"));
            putf(pg, "<p class=\"hint\">The steps took %s of wall time; the last session of the run took %s "
                     "(the rest is setup, checkpoints and writing reports). Throughput is the step's input bytes "
                     "per wall second.</p>", a, b);
        } else {
            putf(pg, "<p class=\"hint\">The steps took %s of wall time. Throughput is the step's input bytes per "
                     "wall second.</p>", a);
        }
    }
    bar_row *rows = wn_calloc((size_t)c->n + 1, sizeof *rows);
    if (!rows) { pg->e = WN_ERR_NOMEM; return; }
    for (int chart = 0; chart < 2; chart++) {
        int k = 0;
        for (int i = 0; i < c->n; i++) {
            const step *s = &c->steps[i];
            if (!s->j) continue;
            bar_row *b = &rows[k++];
            memset(b, 0, sizeof *b);
            b->label = s->rs->dir;
            b->colour = s->colour;
            if (chart == 0) {
                b->value = s->wall;
                char pct[32], cpu[32];
                fmt_pct(pct, sizeof pct, s->wall, total);
                fmt_secs(cpu, sizeof cpu, s->cpu);
                snprintf(b->note, sizeof b->note, "%s of step time \xc2\xb7 CPU %s", pct, cpu);
            } else {
                b->value = s->wall > 0 ? s->bytes_in / 1e6 / s->wall : 0;
            }
        }
        put(pg, chart == 0 ? "<h3>Wall time per step</h3>" : "<h3>Throughput (MB/s)</h3>");
        chart_bars(pg, chart == 0 ? "wall seconds per step" : "megabytes per second per step", rows, k,
                   chart == 0 ? fmt_secs : fmt_rate, 190);
    }
    wn_free(rows);
    int tokens = 0, gpu = 0;
    for (int i = 0; i < c->n; i++) {
        tokens |= c->steps[i].has_tokens;
        gpu |= c->steps[i].has_gpu;
    }
    if (gpu)
        put(pg, "<p class=\"hint\">GPU time is the wall time of the steps that ran on a GPU; their GPU energy is "
                "the difference of the NVML energy counters (whole boards) read around each of their calls.</p>");
    put(pg, "<div class=\"tbl\"><table>");
    static const char *const base[] = {"<step", "wall", "CPU", "CPU / wall", "MB/s", "docs/s", "peak memory",
                                       "<device"};
    const char *cols[WN_ARRAY_LEN(base) + 3];
    int nc = 0;
    for (size_t i = 0; i < WN_ARRAY_LEN(base); i++) cols[nc++] = base[i];
    if (tokens) cols[nc++] = "tokens/s";
    if (gpu) {
        cols[nc++] = "GPU time";
        cols[nc++] = "GPU energy";
    }
    th_row(pg, cols, nc);
    put(pg, "<tbody>");
    for (int i = 0; i < c->n; i++) {
        const step *s = &c->steps[i];
        if (!s->j) continue;
        put(pg, "<tr><td>");
        step_label(pg, s);
        put(pg, "</td>");
        td_num(pg, fmt_secs, s->wall);
        td_num(pg, fmt_secs, s->cpu);
        char b[32];
        if (s->wall > 0) snprintf(b, sizeof b, "%.2f", s->cpu / s->wall);
        else snprintf(b, sizeof b, "-");
        td_text(pg, b);
        snprintf(b, sizeof b, "%.1f", s->wall > 0 ? s->bytes_in / 1e6 / s->wall : 0);
        td_text(pg, b);
        td_num(pg, fmt_count, s->wall > 0 ? round(s->docs_in / s->wall) : 0);
        td_num(pg, fmt_bytes, s->mem);
        wn_span v;
        put(pg, "<td>");
        if (wn_json_get(s->j, s->n, "device", &v)) esc_value(pg, v, 40);
        put(pg, "</td>");
        if (tokens) {
            double t = s->tokens_out > s->tokens_in ? s->tokens_out : s->tokens_in;
            if (s->has_tokens && s->wall > 0) td_num(pg, fmt_count, round(t / s->wall));
            else put(pg, "<td></td>");
        }
        if (gpu && s->has_gpu) {
            td_num(pg, fmt_secs, s->gpu_s);
            if (s->gpu_j >= 0) snprintf(b, sizeof b, "%.0f J", s->gpu_j);
            else snprintf(b, sizeof b, "not measured");
            td_text(pg, b);
        } else if (gpu) {
            put(pg, "<td></td><td></td>");
        }
        put(pg, "</tr>\n");
    }
    put(pg, "</tbody></table></div></section>\n");
}

/* ---- per-step details: histograms, summaries, other figures ------------------ */

/* Reads a histogram object (edges n+1, counts n); 0 when v is not one. */
static int hist_read(wn_span v, double **edges, double **counts, int *n)
{
    wn_span e, k;
    *edges = *counts = NULL;
    if (!v.n || v.p[0] != '{' || !wn_json_get(v.p, v.n, "edges", &e) || !wn_json_get(v.p, v.n, "counts", &k))
        return 0;
    int ne = num_array(e, edges, MAX_HIST_BINS + 1), nc = num_array(k, counts, MAX_HIST_BINS);
    if (ne < 2 || nc != ne - 1) {
        wn_free(*edges);
        wn_free(*counts);
        *edges = *counts = NULL;
        return 0;
    }
    for (int i = 0; i < nc; i++)
        if (!((*edges)[i + 1] > (*edges)[i]) || !isfinite((*counts)[i])) { /* edges must increase */
            wn_free(*edges);
            wn_free(*counts);
            *edges = *counts = NULL;
            return 0;
        }
    *n = nc;
    return 1;
}

static int is_hist(wn_span v)
{
    double *e, *c;
    int n;
    if (!hist_read(v, &e, &c, &n)) return 0;
    wn_free(e);
    wn_free(c);
    return 1;
}

static int is_pair(wn_span v)
{
    wn_span a, b;
    return v.n && v.p[0] == '{' && wn_json_get(v.p, v.n, "selected", &a) && wn_json_get(v.p, v.n, "rejected", &b) &&
           is_hist(a) && is_hist(b);
}

static int is_summary(wn_span v)
{
    static const char *const keys[] = {"n", "mean", "min", "max"};
    wn_span x;
    if (!v.n || v.p[0] != '{') return 0;
    for (size_t i = 0; i < WN_ARRAY_LEN(keys); i++)
        if (!wn_json_get(v.p, v.n, keys[i], &x) || !is_number(x)) return 0;
    return 1;
}

/* The string member "unit" or "label" of a histogram object, decoded. */
static void hist_unit(wn_span v, wn_buf *out)
{
    wn_span u;
    if ((wn_json_get(v.p, v.n, "unit", &u) || wn_json_get(v.p, v.n, "label", &u)) && u.p[0] == '"')
        wn_json_decode_string(u, out);
}

/* Keys every report has, drawn elsewhere. */
static int standard_key(wn_span k)
{
    static const char *const std_keys[] = {"stage", "index", "docs_in", "docs_out", "bytes_in", "bytes_out",
                                           "tokens_in", "tokens_out", "dropped", "modified", "wall_seconds",
                                           "cpu_seconds", "dropped_samples", "length_histogram", "throughput",
                                           "peak_memory_bytes", "device", "params"};
    for (size_t i = 0; i < WN_ARRAY_LEN(std_keys); i++)
        if (wn_json_key_eq(k, std_keys[i])) return 1;
    return 0;
}

enum { WALK_HIST, WALK_SUMMARY, WALK_OTHER };

typedef struct {
    ctx *c;
    const step *s;
    int mode;
    int count; /* rows or charts written */
} walker;

static void draw_one_hist(walker *w, const char *path, wn_span v)
{
    double *e, *k;
    int n;
    if (!hist_read(v, &e, &k, &n)) return;
    wn_buf unit = {0};
    hist_unit(v, &unit);
    page *pg = &w->c->pg;
    put(pg, "<div><h4>");
    esc(pg, path);
    put(pg, "</h4>");
    hist_series s = {path, e, k, n, w->s->colour, 0};
    chart_hist(pg, 480, path, &s, 1, unit.p ? unit.p : "", fmt_si, "");
    put(pg, "</div>");
    w->count++;
    wn_buf_free(&unit);
    wn_free(e);
    wn_free(k);
}

static void draw_pair(walker *w, const char *path, wn_span v)
{
    wn_span a, b;
    double *e[2] = {0}, *k[2] = {0};
    int n[2];
    wn_json_get(v.p, v.n, "selected", &a);
    wn_json_get(v.p, v.n, "rejected", &b);
    if (hist_read(a, &e[0], &k[0], &n[0]) && hist_read(b, &e[1], &k[1], &n[1])) {
        wn_buf unit = {0};
        hist_unit(v, &unit);
        if (!unit.len) hist_unit(a, &unit);
        page *pg = &w->c->pg;
        put(pg, "<div><h4>");
        esc(pg, path);
        put(pg, " <span class=\"muted\">(selected vs rejected)</span></h4>");
        hist_series s[2] = {{"selected", e[0], k[0], n[0], GOOD, 0}, {"rejected", e[1], k[1], n[1], BAD, 0}};
        chart_hist(pg, 480, path, s, 2, unit.p ? unit.p : "", fmt_si, "");
        put(pg, "</div>");
        w->count++;
        wn_buf_free(&unit);
    }
    for (int i = 0; i < 2; i++) {
        wn_free(e[i]);
        wn_free(k[i]);
    }
}

static void summary_row(walker *w, const char *path, wn_span v)
{
    page *pg = &w->c->pg;
    if (!w->count++) {
        put(pg, "<h4>Score summaries</h4><div class=\"tbl\"><table>");
        static const char *const cols[] = {"<score", "n", "mean", "std", "min", "max", "<more"};
        th_row(pg, cols, 7);
        put(pg, "<tbody>");
    }
    put(pg, "<tr><td><code>");
    esc(pg, path);
    put(pg, "</code></td>");
    static const char *const keys[] = {"n", "mean", "std", "min", "max"};
    for (size_t i = 0; i < WN_ARRAY_LEN(keys); i++) {
        wn_span x;
        double d;
        if (wn_json_get(v.p, v.n, keys[i], &x) && is_number(x) && wn_json_to_double(x, &d)) {
            char b[48];
            if (i == 0) fmt_count(b, sizeof b, d);
            else snprintf(b, sizeof b, "%.5g", d);
            td_text(pg, b);
        } else {
            put(pg, "<td class=\"n\">-</td>");
        }
    }
    put(pg, "<td>");
    wn_json_iter it;
    wn_span k, x;
    int more = 0;
    wn_json_iter_init(&it, v.p, v.n);
    while (wn_json_iter_next(&it, &k, &x)) {
        int skip = 0;
        for (size_t i = 0; i < WN_ARRAY_LEN(keys); i++) skip |= wn_json_key_eq(k, keys[i]);
        if (skip || x.p[0] == '{' || x.p[0] == '[') continue;
        if (more++) put(pg, ", ");
        esc_value(pg, k, 40);
        put(pg, "=");
        esc_value(pg, x, 60);
    }
    put(pg, "</td></tr>\n");
}

static void other_row(walker *w, const char *path, wn_span v)
{
    page *pg = &w->c->pg;
    if (w->count >= 400) return;
    if (!w->count++) put(pg, "<h4>Other figures</h4><div class=\"tbl\"><table class=\"kv\"><tbody>");
    put(pg, "<tr><td><code>");
    esc(pg, path);
    put(pg, "</code></td><td class=\"n\">");
    if (is_number(v)) {
        double d = 0;
        char b[64];
        wn_json_to_double(v, &d);
        if (d == floor(d) && fabs(d) >= 1e4 && fabs(d) < 1e15) fmt_count(b, sizeof b, d);
        else snprintf(b, sizeof b, "%.6g", d);
        esc(pg, b);
    } else if (v.p[0] == '[') { /* short lists of scalars inline, others as a count */
        wn_json_iter it;
        wn_span x;
        int n = 0, scalar = 1;
        wn_json_items_init(&it, v.p, v.n);
        while (wn_json_items_next(&it, &x)) {
            n++;
            if (x.p[0] == '{' || x.p[0] == '[') scalar = 0;
        }
        if (scalar && n <= 16) {
            wn_json_items_init(&it, v.p, v.n);
            for (int i = 0; wn_json_items_next(&it, &x); i++) {
                if (i) put(pg, ", ");
                esc_value(pg, x, 80);
            }
        } else {
            putf(pg, "%d items", n);
        }
    } else {
        esc_value(pg, v, 300);
    }
    put(pg, "</td></tr>\n");
}

static void walk(walker *w, wn_buf *path, wn_span v, int depth)
{
    if (depth > 24 || !v.n) return;
    size_t keep = path->len;
    int hist = is_hist(v), pair = !hist && is_pair(v), summary = !hist && !pair && is_summary(v);
    if (w->mode == WALK_HIST && hist) { draw_one_hist(w, path->p ? path->p : "", v); return; }
    if (w->mode == WALK_HIST && pair) draw_pair(w, path->p ? path->p : "", v);
    if (w->mode == WALK_SUMMARY && summary) { summary_row(w, path->p ? path->p : "", v); return; }
    if (hist || summary) return;
    wn_json_iter it;
    wn_span k, x;
    if (v.p[0] == '{') {
        wn_json_iter_init(&it, v.p, v.n);
        while (wn_json_iter_next(&it, &k, &x)) {
            if (depth == 0 && standard_key(k)) continue;
            if (pair && (wn_json_key_eq(k, "selected") || wn_json_key_eq(k, "rejected"))) continue;
            if (path->len) wn_buf_putc(path, '.');
            wn_json_decode_string(k, path);
            walk(w, path, x, depth + 1);
            path->len = keep;
            if (path->p) path->p[keep] = 0;
        }
    } else if (v.p[0] == '[') {
        int i = 0, structured = 0;
        wn_json_items_init(&it, v.p, v.n);
        while (wn_json_items_next(&it, &x)) structured |= x.p[0] == '{' || x.p[0] == '[';
        if (!structured) {
            if (w->mode == WALK_OTHER) other_row(w, path->p ? path->p : "", v);
            return;
        }
        wn_json_items_init(&it, v.p, v.n);
        while (wn_json_items_next(&it, &x) && i < 64) {
            wn_buf_printf(path, "[%d]", i++);
            walk(w, path, x, depth + 1);
            path->len = keep;
            if (path->p) path->p[keep] = 0;
        }
    } else if (w->mode == WALK_OTHER && depth > 0) {
        other_row(w, path->p ? path->p : "", v);
    }
}

/* Document lengths into (the previous step's output) and out of step i. */
static void length_chart(ctx *c, int i)
{
    page *pg = &c->pg;
    const step *s = &c->steps[i], *prev = NULL;
    for (int k = i - 1; k >= 0 && !prev; k--)
        if (c->steps[k].j) prev = &c->steps[k];
    double out_total = 0, in_total = 0;
    for (int k = 0; k < s->n_hist; k++) out_total += s->hist[k];
    if (prev)
        for (int k = 0; k < prev->n_hist; k++) in_total += prev->hist[k];
    if (out_total <= 0 && in_total <= 0) return;
    int lo = 64, hi = 0;
    for (int k = 0; k < 64; k++) {
        double a = k < s->n_hist ? s->hist[k] : 0, b = prev && k < prev->n_hist ? prev->hist[k] : 0;
        if (a > 0 || (b > 0 && in_total > 0)) {
            if (k < lo) lo = k;
            hi = k + 1;
        }
    }
    if (hi <= lo) return;
    /* bucket 0 holds empty texts, bucket k lengths in [2^(k-1), 2^k) */
    double edges[65], in[64], out[64];
    for (int k = lo; k <= hi; k++) edges[k - lo] = k == 0 ? 0 : ldexp(1, k - 1);
    for (int k = lo; k < hi; k++) {
        out[k - lo] = k < s->n_hist ? s->hist[k] : 0;
        in[k - lo] = prev && k < prev->n_hist ? prev->hist[k] : 0;
    }
    hist_series hs[2];
    int ns = 0;
    hs[ns++] = (hist_series){"passed on", edges, out, hi - lo, s->colour, 0};
    if (in_total > 0) hs[ns++] = (hist_series){"received", edges, in, hi - lo, GREY, 1};
    put(pg, "<h4>Document lengths</h4>");
    chart_hist(pg, 480, "document lengths", hs, ns, "text bytes (log2 buckets)", fmt_bin, "bytes");
}

static void params_table(page *pg, const step *s)
{
    wn_span p, k, v;
    if (!wn_json_get(s->j, s->n, "params", &p) || p.p[0] != '{') return;
    wn_json_iter it;
    int n = 0;
    wn_json_iter_init(&it, p.p, p.n);
    while (wn_json_iter_next(&it, &k, &v)) {
        if (!n++) put(pg, "<h4>Parameters</h4><div class=\"tbl\"><table class=\"kv\"><tbody>");
        put(pg, "<tr><td><code>");
        esc_value(pg, k, 80);
        put(pg, "</code></td><td>");
        esc_value(pg, v, 300);
        put(pg, "</td></tr>");
    }
    if (n) put(pg, "</tbody></table></div>");
    else put(pg, "<h4>Parameters</h4><p class=\"hint\">none</p>");
}

static void step_drop_row(ctx *c, const step *s, wn_span reason, double count, wn_span samples, void *arg)
{
    page *pg = &c->pg;
    char b[32];
    put(pg, "<tr><td><code>");
    esc_value(pg, reason, 80);
    put(pg, "</code></td>");
    td_num(pg, fmt_count, count);
    fmt_pct(b, sizeof b, count, s->docs_in);
    td_text(pg, b);
    put(pg, "<td>");
    put_samples(pg, samples, s->is_read);
    put(pg, "</td></tr>");
}

static void section_steps(ctx *c)
{
    page *pg = &c->pg;
    put(pg, "<section id=\"steps\"><h2>Steps</h2><p class=\"hint\">Each step's parameters, the length "
            "distribution of the documents it received and passed on, what it dropped, and every histogram and "
            "figure in its report.json.</p>");
    wn_buf path = {0};
    for (int i = 0; i < c->n; i++) {
        const step *s = &c->steps[i];
        put(pg, "<article id=\"step-");
        step_label(pg, s);
        putf(pg, "\"><h3><span class=\"sw\" style=\"background:%s\"></span>", s->colour);
        step_label(pg, s);
        put(pg, "</h3>");
        if (!s->j) {
            put(pg, "<p class=\"hint\">report.json ");
            esc(pg, s->rs->why);
            put(pg, "</p></article>\n");
            continue;
        }
        char a[48], b[48], d[48], e[48];
        fmt_count(a, sizeof a, s->docs_in);
        fmt_count(b, sizeof b, s->docs_out);
        fmt_bytes(d, sizeof d, s->bytes_in);
        fmt_bytes(e, sizeof e, s->bytes_out);
        putf(pg, "<p class=\"lead\"><b>%s</b> \xe2\x86\x92 <b>%s</b> documents", a, b);
        if (s->dropped > 0) {
            fmt_count(a, sizeof a, s->dropped);
            fmt_pct(b, sizeof b, s->dropped, s->docs_in);
            putf(pg, " (%s dropped, %s)", a, b);
        }
        if (s->modified > 0) {
            fmt_count(a, sizeof a, s->modified);
            putf(pg, ", %s modified", a);
        }
        putf(pg, " \xc2\xb7 %s \xe2\x86\x92 %s", d, e);
        if (s->has_tokens) {
            fmt_count(a, sizeof a, s->tokens_in);
            fmt_count(b, sizeof b, s->tokens_out);
            putf(pg, " \xc2\xb7 %s \xe2\x86\x92 %s tokens", a, b);
        }
        fmt_secs(a, sizeof a, s->wall);
        putf(pg, " \xc2\xb7 %s", a);
        if (s->wall > 0) putf(pg, ", %.1f MB/s", s->bytes_in / 1e6 / s->wall);
        put(pg, "</p><div class=\"grid2\"><div>");
        params_table(pg, s);
        if (each_drop(c, s, NULL, NULL)) {
            put(pg, "<h4>Dropped</h4><div class=\"tbl\"><table>");
            static const char *const cols[] = {"<reason", "count", "of input", "<samples"};
            th_row(pg, cols, 4);
            put(pg, "<tbody>");
            each_drop(c, s, step_drop_row, NULL);
            put(pg, "</tbody></table></div>");
        }
        put(pg, "</div><div>");
        length_chart(c, i);
        put(pg, "</div></div>");
        wn_span root = {s->j, s->n};
        while (root.n && root.p[0] != '{') { root.p++; root.n--; }
        for (int mode = WALK_HIST; mode <= WALK_OTHER; mode++) {
            walker w = {c, s, mode, 0};
            wn_buf_clear(&path);
            if (mode == WALK_HIST) put(pg, "<div class=\"grid2\">");
            walk(&w, &path, root, 0);
            if (mode == WALK_HIST) put(pg, "</div>");
            else if (w.count) put(pg, "</tbody></table></div>");
        }
        put(pg, "</article>\n");
    }
    wn_buf_free(&path);
    put(pg, "</section>\n");
}

/* ---- the experiment ------------------------------------------------------------- */

static const char *arm_colour(const char *name, int i)
{
    if (!strcmp(name, "selected")) return GOOD;
    if (!strcmp(name, "random")) return GREY;
    static const char *const others[] = {"#4e79a7", "#f28e2b", "#b07aa1", "#76b7b2", "#edc948", "#9c755f"};
    return others[i % (int)WN_ARRAY_LEN(others)];
}

/* The first of the numeric members keys[] of obj; NAN when none. */
static double first_num(wn_span obj, const char *const *keys, int n)
{
    wn_span v;
    double x;
    for (int i = 0; i < n; i++)
        if (wn_json_get(obj.p, obj.n, keys[i], &v) && is_number(v) && wn_json_to_double(v, &x)) return x;
    return NAN;
}

typedef struct {
    wn_buf name;
    const char *colour;
    double tokens, mean, std, reach;
    int reach_null;
    wn_span arm, seeds;
    int n_seeds;
} arm_info;

/* The token-budget sweep (winnow experiment's "scaling"): each arm's mean
 * final loss per budget and its fitted L(D) = E + B D^-beta, on a log axis
 * up to 100x the largest budget; then the fits, the extrapolations and the
 * effective data multiplier in a table. */
static void section_scaling(page *pg, const arm_info *info, int na)
{
    line_series *ls = wn_calloc((size_t)na * 2 + 1, sizeof *ls);
    legend_item *legend = wn_calloc((size_t)na + 1, sizeof *legend);
    int nls = 0, any = 0;
    if (!ls || !legend) {
        pg->e = WN_ERR_NOMEM;
        goto done;
    }
    for (int i = 0; i < na; i++) {
        wn_span sc, pts, pt, v, fit;
        legend[i].name = info[i].name.p ? info[i].name.p : "";
        legend[i].colour = info[i].colour;
        if (!wn_json_get(info[i].arm.p, info[i].arm.n, "scaling", &sc) || sc.p[0] != '{') continue;
        if (!wn_json_get(sc.p, sc.n, "points", &pts) || pts.p[0] != '[') continue;
        wn_json_iter it, it2;
        int np = 0;
        wn_json_items_init(&it, pts.p, pts.n);
        while (wn_json_items_next(&it, &pt)) np++;
        line_series *l = &ls[nls];
        l->x = wn_calloc((size_t)np + 1, sizeof *l->x);
        l->y = wn_calloc((size_t)np + 1, sizeof *l->y);
        if (!l->x || !l->y) { pg->e = WN_ERR_NOMEM; wn_free(l->x); wn_free(l->y); break; }
        double dmax = 0;
        wn_json_items_init(&it, pts.p, pts.n);
        while (wn_json_items_next(&it, &pt)) {
            double d[2];
            int m = 0;
            wn_json_items_init(&it2, pt.p, pt.n);
            while (m < 2 && wn_json_items_next(&it2, &v) && is_number(v) && wn_json_to_double(v, &d[m])) m++;
            if (m < 2 || !(d[0] > 0) || !isfinite(d[1])) continue;
            l->x[l->n] = log10(d[0]);
            l->y[l->n] = d[1];
            l->n++;
            if (d[0] > dmax) dmax = d[0];
        }
        snprintf(l->tip, sizeof l->tip, "%.60s: mean final loss per budget", legend[i].name);
        l->colour = info[i].colour;
        nls++;
        any = 1;
        static const char *const ek[] = {"E"}, *const bk[] = {"B"}, *const betak[] = {"beta"};
        if (wn_json_get(sc.p, sc.n, "fit", &fit) && fit.p[0] == '{' && dmax > 0 && l->n) {
            double E = first_num(fit, ek, 1), B = first_num(fit, bk, 1), beta = first_num(fit, betak, 1);
            line_series *f = &ls[nls];
            enum { NF = 40 };
            f->x = wn_calloc(NF, sizeof *f->x);
            f->y = wn_calloc(NF, sizeof *f->y);
            if (!f->x || !f->y || isnan(E) || isnan(B) || isnan(beta)) { wn_free(f->x); wn_free(f->y); f->x = f->y = NULL; continue; }
            double x0 = l->x[0], x1 = log10(dmax * 100);
            for (int k = 0; k < NF; k++) {
                f->x[k] = x0 + (x1 - x0) * k / (NF - 1);
                f->y[k] = E + B * pow(pow(10, f->x[k]), -beta);
            }
            f->n = NF;
            snprintf(f->tip, sizeof f->tip, "%.60s: fit E %.3f + B D^-%.3f", legend[i].name, E, beta);
            f->colour = info[i].colour;
            nls++;
        }
    }
    if (!any) goto done;
    put(pg, "<h3>Scaling with the token budget</h3><p class=\"hint\">Mean final held-out loss of runs trained on "
            "each budget (a shorter schedule per budget), and the fit L(D) = E + B&#183;D<sup>&#8722;&#946;</sup> "
            "extended to 100&#215; the largest budget. Effective data multiplier: how many random tokens reach an "
            "arm's loss, per token of that arm (from random's fitted curve).</p>");
    chart_lines(pg, "final loss against the token budget", ls, nls, legend, na, NAN, "", "training tokens (log)",
                "final held-out loss", 1);
    put(pg, "<div class=\"tbl\"><table>");
    static const char *const cols[] = {"<arm", "E", "B", "\xce\xb2", "loss at 10\xc3\x97", "loss at 100\xc3\x97",
                                       "effective data multiplier"};
    th_row(pg, cols, 7);
    put(pg, "<tbody>");
    for (int i = 0; i < na; i++) {
        wn_span sc, fit, pr, x10, x100, edm;
        char b[96];
        if (!wn_json_get(info[i].arm.p, info[i].arm.n, "scaling", &sc) || sc.p[0] != '{') continue;
        putf(pg, "<tr><td><span class=\"sw\" style=\"background:%s\"></span>", info[i].colour);
        esc(pg, legend[i].name);
        put(pg, "</td>");
        static const char *const ek[] = {"E"}, *const bk[] = {"B"}, *const betak[] = {"beta"}, *const lk[] = {"loss"},
                                 *const spk[] = {"seed_spread"}, *const ak[] = {"at_largest"};
        int fitted = wn_json_get(sc.p, sc.n, "fit", &fit) && fit.p[0] == '{';
        double vals[3] = {NAN, NAN, NAN};
        if (fitted) {
            vals[0] = first_num(fit, ek, 1);
            vals[1] = first_num(fit, bk, 1);
            vals[2] = first_num(fit, betak, 1);
        }
        for (int k = 0; k < 3; k++) {
            if (isnan(vals[k])) snprintf(b, sizeof b, "-");
            else snprintf(b, sizeof b, "%.4g", vals[k]);
            td_text(pg, b);
        }
        int have_pr = wn_json_get(sc.p, sc.n, "predicted", &pr) && pr.p[0] == '{';
        for (int k = 0; k < 2; k++) {
            wn_span *q = k ? &x100 : &x10;
            if (have_pr && wn_json_get(pr.p, pr.n, k ? "100x" : "10x", q) && q->p[0] == '{') {
                double l = first_num(*q, lk, 1), sp = first_num(*q, spk, 1);
                snprintf(b, sizeof b, isnan(sp) ? "%.4f" : "%.4f \xc2\xb1 %.4f", l, sp);
            } else {
                snprintf(b, sizeof b, "-");
            }
            td_text(pg, b);
        }
        double m = NAN;
        if (wn_json_get(sc.p, sc.n, "effective_data_multiplier", &edm) && edm.p[0] == '{') m = first_num(edm, ak, 1);
        if (!isnan(m)) snprintf(b, sizeof b, "%.2f\xc3\x97", m);
        else snprintf(b, sizeof b, info[i].name.p && !strcmp(info[i].name.p, "random") ? "(reference)" : "-");
        td_text(pg, b);
        put(pg, "</tr>\n");
    }
    put(pg, "</tbody></table></div>");
done:
    for (int i = 0; ls && i < nls; i++) {
        wn_free(ls[i].x);
        wn_free(ls[i].y);
    }
    wn_free(ls);
    wn_free(legend);
}

static void section_experiment(ctx *c)
{
    page *pg = &c->pg;
    const wn_report *r = c->r;
    if (!r->experiment.len) {
        if (r->experiment_why[0]) {
            put(pg, "<section id=\"experiment\"><h2>Experiment</h2><p class=\"hint\">experiment.json ");
            esc(pg, r->experiment_why);
            put(pg, "</p></section>\n");
        }
        return;
    }
    const char *j = r->experiment.p;
    size_t n = r->experiment.len;
    wn_span v, arms;
    put(pg, "<section id=\"experiment\"><h2>Experiment");
    if (wn_json_get(j, n, "target", &v)) {
        put(pg, ": ");
        esc_value(pg, v, 120);
    }
    put(pg, "</h2><p class=\"hint\">Validation loss of models trained on each arm's data (one line per seed), "
            "and the final loss per arm. Tokens to reach random: tokens an arm needed to match the random arm's "
            "final validation loss.</p>");
    if (!wn_json_get(j, n, "arms", &arms) || arms.p[0] != '[') {
        put(pg, "<p class=\"hint\">No <code>arms</code> list in experiment.json.</p></section>\n");
        return;
    }
    wn_json_iter it, it2;
    wn_span a, sd;
    int na = 0;
    wn_json_items_init(&it, arms.p, arms.n);
    while (wn_json_items_next(&it, &a)) na += a.p[0] == '{';
    arm_info *info = wn_calloc((size_t)na + 1, sizeof *info);
    if (!info) { pg->e = WN_ERR_NOMEM; return; }
    int k = 0, total_seeds = 0;
    double random_mean = NAN;
    wn_json_items_init(&it, arms.p, arms.n);
    while (wn_json_items_next(&it, &a) && k < na) {
        if (a.p[0] != '{') continue;
        arm_info *ai = &info[k];
        ai->arm = a;
        if (wn_json_get(a.p, a.n, "name", &v) && v.p[0] == '"') wn_json_decode_string(v, &ai->name);
        if (!ai->name.len) wn_buf_printf(&ai->name, "arm %d", k + 1);
        ai->colour = arm_colour(ai->name.p ? ai->name.p : "", k);
        static const char *const tk[] = {"tokens"}, *const mk[] = {"final_mean", "final_loss_mean"},
                                 *const sk[] = {"final_std", "final_loss_std"},
                                 *const rk[] = {"tokens_to_reach_random", "tokens_to_match_random"};
        ai->tokens = first_num(a, tk, 1);
        ai->mean = first_num(a, mk, 2);
        ai->std = first_num(a, sk, 2);
        ai->reach = first_num(a, rk, 2);
        /* per-seed curves: "curves" (winnow experiment), or "seeds" as objects */
        if ((wn_json_get(a.p, a.n, "curves", &sd) && sd.p[0] == '[') ||
            (wn_json_get(a.p, a.n, "seeds", &sd) && sd.p[0] == '[' && sd.n > 1 && sd.p[1 + strspn(sd.p + 1, " \n\t")] == '{')) {
            ai->seeds = sd;
            wn_json_items_init(&it2, sd.p, sd.n);
            while (wn_json_items_next(&it2, &v)) ai->n_seeds++;
        }
        total_seeds += ai->n_seeds;
        if (isnan(ai->mean) && ai->seeds.p) { /* from the seeds' final losses */
            double s1 = 0, s2 = 0;
            int m = 0;
            static const char *const fk[] = {"final_loss"};
            wn_json_items_init(&it2, ai->seeds.p, ai->seeds.n);
            while (wn_json_items_next(&it2, &v)) {
                double x = v.p[0] == '{' ? first_num(v, fk, 1) : NAN;
                if (!isnan(x)) { s1 += x; s2 += x * x; m++; }
            }
            if (m) {
                ai->mean = s1 / m;
                ai->std = m > 1 ? sqrt(fmax(0, (s2 - s1 * s1 / m) / (m - 1))) : 0;
            }
        }
        if (ai->name.p && !strcmp(ai->name.p, "random")) random_mean = ai->mean;
        k++;
    }
    na = k;
    /* the curves: [step, tokens_seen, val_loss] per point */
    line_series *ls = wn_calloc((size_t)total_seeds + 1, sizeof *ls);
    legend_item *legend = wn_calloc((size_t)na + 1, sizeof *legend);
    int nls = 0;
    if (!ls || !legend) pg->e = WN_ERR_NOMEM;
    for (int i = 0; ls && legend && i < na; i++) {
        legend[i].name = info[i].name.p ? info[i].name.p : "";
        legend[i].colour = info[i].colour;
        if (!info[i].seeds.p) continue;
        wn_json_items_init(&it, info[i].seeds.p, info[i].seeds.n);
        while (wn_json_items_next(&it, &sd) && nls < total_seeds) {
            wn_span curve, pt, x;
            if (sd.p[0] != '{' || !wn_json_get(sd.p, sd.n, "curve", &curve) || curve.p[0] != '[') continue;
            int np = 0;
            wn_json_items_init(&it2, curve.p, curve.n);
            while (wn_json_items_next(&it2, &pt)) np++;
            line_series *l = &ls[nls];
            l->x = wn_calloc((size_t)np + 1, sizeof *l->x);
            l->y = wn_calloc((size_t)np + 1, sizeof *l->y);
            if (!l->x || !l->y) { pg->e = WN_ERR_NOMEM; wn_free(l->x); wn_free(l->y); break; }
            wn_json_items_init(&it2, curve.p, curve.n);
            while (wn_json_items_next(&it2, &pt)) {
                double tri[3];
                int m = 0;
                wn_json_iter it3;
                wn_json_items_init(&it3, pt.p, pt.n);
                while (m < 3 && wn_json_items_next(&it3, &x)) {
                    if (!is_number(x) || !wn_json_to_double(x, &tri[m])) break;
                    m++;
                }
                if (pt.p[0] != '[' || m < 3 || !isfinite(tri[1]) || !isfinite(tri[2])) continue;
                l->x[l->n] = tri[1];
                l->y[l->n] = tri[2];
                l->n++;
            }
            static const char *const seedk[] = {"seed"};
            double seed = first_num(sd, seedk, 1);
            snprintf(l->tip, sizeof l->tip, "%.60s, seed %.0f", legend[i].name, isnan(seed) ? 0.0 : seed);
            l->colour = info[i].colour;
            nls++;
        }
    }
    int points = 0;
    for (int i = 0; i < nls; i++) points += ls[i].n;
    if (points) {
        put(pg, "<h3>Validation loss</h3>");
        chart_lines(pg, "validation loss against tokens seen", ls, nls, legend, na, random_mean,
                    "random: final loss", "tokens seen", "validation loss", 0);
    }
    for (int i = 0; ls && i < nls; i++) {
        wn_free(ls[i].x);
        wn_free(ls[i].y);
    }
    wn_free(ls);
    wn_free(legend);
    put(pg, "<h3>Final loss</h3><div class=\"tbl\"><table>");
    static const char *const cols[] = {"<arm", "tokens", "seeds", "final loss (mean \xc2\xb1 std)",
                                       "tokens to reach random", "<per seed"};
    th_row(pg, cols, 6);
    put(pg, "<tbody>");
    for (int i = 0; i < na; i++) {
        arm_info *ai = &info[i];
        char b[96];
        putf(pg, "<tr><td><span class=\"sw\" style=\"background:%s\"></span>", ai->colour);
        esc(pg, ai->name.p ? ai->name.p : "");
        put(pg, "</td>");
        if (isnan(ai->tokens)) td_text(pg, "-");
        else td_num(pg, fmt_count, ai->tokens);
        snprintf(b, sizeof b, "%d", ai->n_seeds);
        td_text(pg, b);
        if (isnan(ai->mean)) snprintf(b, sizeof b, "-");
        else if (isnan(ai->std)) snprintf(b, sizeof b, "%.4f", ai->mean);
        else snprintf(b, sizeof b, "%.4f \xc2\xb1 %.4f", ai->mean, ai->std);
        td_text(pg, b);
        if (!isnan(ai->reach)) td_num(pg, fmt_count, ai->reach);
        else if (ai->name.p && !strcmp(ai->name.p, "random")) td_text(pg, "(reference)");
        else td_text(pg, "not reached");
        put(pg, "<td>");
        if (ai->seeds.p) {
            static const char *const fk[] = {"final_loss"}, *const seedk[] = {"seed"};
            int m = 0;
            wn_json_items_init(&it, ai->seeds.p, ai->seeds.n);
            while (wn_json_items_next(&it, &sd)) {
                if (sd.p[0] != '{') continue;
                double x = first_num(sd, fk, 1), seed = first_num(sd, seedk, 1);
                if (isnan(x)) continue;
                putf(pg, "%s<span class=\"muted\">%.0f:</span> %.4f", m++ ? ", " : "", isnan(seed) ? 0.0 : seed, x);
            }
        }
        put(pg, "</td></tr>\n");
    }
    put(pg, "</tbody></table></div>");
    section_scaling(pg, info, na);
    put(pg, "</section>\n");
    for (int i = 0; i < na; i++) wn_buf_free(&info[i].name);
    wn_free(info);
}

static void section_manifest(ctx *c)
{
    page *pg = &c->pg;
    const wn_buf *m = &c->r->manifest;
    if (!m->len) return;
    const size_t cap = 128 * 1024;
    put(pg, "<section id=\"manifest\"><h2>Resolved manifest</h2><p class=\"hint\">"
            "<code>manifest.resolved.yaml</code>: every default filled in, the input files with sizes and "
            "hashes.</p><details><summary>show</summary><pre>");
    esc_cut(pg, m->p, m->len < cap ? m->len : cap, 0);
    if (m->len > cap) put(pg, "\n\xe2\x80\xa6 (cut at 128 KiB)");
    put(pg, "</pre></details></section>\n");
}

/* ---- the page ----------------------------------------------------------------- */

wn_err wn_report_html(const wn_report *r, const char *path, wn_errbuf *err)
{
    ctx c = {0};
    c.r = r;
    c.n = r->n_stages;
    c.first = c.last = -1;
    c.steps = wn_calloc((size_t)c.n + 1, sizeof *c.steps);
    if (!c.steps) return wn_fail(err, WN_ERR_NOMEM, "out of memory");
    for (int i = 0; i < c.n; i++) {
        step_read(&c.steps[i], &r->stages[i], i, c.n - 1);
        if (c.steps[i].j) {
            if (c.first < 0) c.first = i;
            c.last = i;
        }
    }
    page *pg = &c.pg;
    put(pg, "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
            "<meta name=\"generator\" content=\"winnow " WN_VERSION "\"><title>winnow report: ");
    esc(pg, r->run_dir);
    put(pg, "</title><style>\n");
    put(pg, css);
    put(pg, "</style></head>\n<body><header><div class=\"wrap\"><h1>winnow report <span class=\"dir\">");
    esc(pg, r->run_dir);
    put(pg, "</span> ");
    char status[64];
    run_str(r, "status", status, sizeof status);
    if (!r->run.len) put(pg, "<span class=\"badge warn\">incomplete</span>");
    else if (!strcmp(status, "complete")) put(pg, "<span class=\"badge ok\">complete</span>");
    else {
        put(pg, "<span class=\"badge bad\">");
        esc(pg, status);
        put(pg, "</span>");
    }
    put(pg, "</h1>");
    if (c.first >= 0) {
        const step *f = &c.steps[c.first], *l = &c.steps[c.last];
        double in = f->is_read ? f->docs_out : f->docs_in, dropped = 0, modified = 0;
        for (int i = 0; i < c.n; i++) {
            dropped += c.steps[i].dropped;
            modified += c.steps[i].modified;
        }
        char a[48], b[48], d[48], e[48], p[32];
        fmt_count(a, sizeof a, in);
        fmt_count(b, sizeof b, l->docs_out);
        fmt_pct(p, sizeof p, l->docs_out, in);
        fmt_count(d, sizeof d, dropped);
        fmt_count(e, sizeof e, modified);
        putf(pg, "<p class=\"lead\"><b>%s</b> documents read \xe2\x86\x92 <b>%s</b> kept (%s) \xc2\xb7 %s "
                 "dropped \xc2\xb7 %s modified across %d steps</p>", a, b, p, d, e, c.n);
    }
    put(pg, "<nav><a href=\"#summary\">Summary</a>");
    if (r->experiment.len || r->experiment_why[0]) put(pg, "<a href=\"#experiment\">Experiment</a>");
    put(pg, "<a href=\"#funnel\">Funnel</a><a href=\"#drops\">Drops</a><a href=\"#time\">Time</a>"
            "<a href=\"#steps\">Steps</a>");
    if (r->manifest.len) put(pg, "<a href=\"#manifest\">Manifest</a>");
    put(pg, "</nav></div></header>\n<main class=\"wrap\">\n");
    section_summary(&c);
    section_experiment(&c);
    section_funnel(&c);
    section_drops(&c);
    section_time(&c);
    section_steps(&c);
    section_manifest(&c);
    put(pg, "</main>\n<footer class=\"wrap\" id=\"winnow-report-end\">Written by winnow " WN_VERSION
            " from the reports in <code>");
    esc(pg, r->run_dir);
    put(pg, "</code>. Self-contained: no scripts, fonts or network resources.</footer>\n</body></html>\n");
    wn_free(c.steps);
    wn_err e = pg->e;
    if (e) wn_fail(err, e, "out of memory while writing the HTML report");
    else e = wn_write_atomic(path, pg->out.p, pg->out.len, err);
    wn_buf_free(&pg->out);
    return e;
}
