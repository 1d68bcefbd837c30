/*
 * report.c - `winnow report RUN_DIR`: a run read back from its files (run.h,
 * wn_report_load), and three of its views: the funnel in the terminal, the
 * merged JSON (--json) and the sampled rejects of one stage (--rejects).
 * The HTML page is report_html.c.
 *
 * Reports are trusted for nothing: every file is validated before use, a
 * missing key reads as 0, and strings from reports (document ids are user
 * data) are made printable before they reach a terminal.
 */
#include <dirent.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "energy.h"
#include "fs.h"
#include "json.h"
#include "run.h"
#include "text.h"

/* ---- loading ------------------------------------------------------------- */

/* Stage directories sort by their NN prefix (so 100-x follows 99-y), then
 * by name. */
static int cmp_stage_dir(const void *a, const void *b)
{
    const wn_report_stage *x = a, *y = b;
    long nx = strtol(x->dir, NULL, 10), ny = strtol(y->dir, NULL, 10);
    if (nx != ny) return nx < ny ? -1 : 1;
    return strcmp(x->dir, y->dir);
}

/* Reads path into out when it exists and is one valid JSON object;
 * otherwise leaves out empty and says why (empty why: the file is absent). */
static void load_json(const char *path, wn_buf *out, char *why, size_t why_n)
{
    wn_errbuf e = {{0}};
    size_t off;
    const char *what;
    why[0] = 0;
    if (!wn_exists(path)) {
        snprintf(why, why_n, "missing");
        return;
    }
    if (wn_read_file(path, out, &e)) {
        snprintf(why, why_n, "unreadable: %.200s", e.msg);
    } else if (wn_json_check_object(out->p ? out->p : "", out->len, &off, &what)) {
        snprintf(why, why_n, "not a JSON object: %s at byte %zu", what, off);
    } else {
        return;
    }
    wn_buf_free(out);
}

wn_err wn_report_load(wn_report *r, const char *run_dir, wn_errbuf *err)
{
    char path[4400];
    memset(r, 0, sizeof *r);
    r->run_dir = wn_strdup(run_dir);
    if (!r->run_dir) return wn_fail(err, WN_ERR_NOMEM, "out of memory");
    snprintf(path, sizeof path, "%s/stages", run_dir);
    DIR *d = opendir(path);
    if (!d) return wn_fail(err, WN_ERR_IO, "%s: no stage reports here (is it a run directory?)", run_dir);
    struct dirent *de;
    wn_err e = WN_OK;
    while ((de = readdir(d))) {
        struct stat sb;
        if (de->d_name[0] == '.') continue;
        snprintf(path, sizeof path, "%s/stages/%s", run_dir, de->d_name);
        if (stat(path, &sb) || !S_ISDIR(sb.st_mode)) continue;
        wn_report_stage *p = wn_realloc(r->stages, (size_t)(r->n_stages + 1) * sizeof *p);
        if (!p) { e = WN_ERR_NOMEM; break; }
        r->stages = p;
        p = &r->stages[r->n_stages];
        memset(p, 0, sizeof *p);
        if (!(p->dir = wn_strdup(de->d_name))) { e = WN_ERR_NOMEM; break; }
        r->n_stages++;
    }
    closedir(d);
    if (e) return wn_fail(err, e, "out of memory");
    if (r->n_stages) qsort(r->stages, (size_t)r->n_stages, sizeof *r->stages, cmp_stage_dir);
    for (int i = 0; i < r->n_stages; i++) {
        wn_report_stage *s = &r->stages[i];
        snprintf(path, sizeof path, "%s/stages/%s/report.json", run_dir, s->dir);
        load_json(path, &s->json, s->why, sizeof s->why);
    }
    char why[256];
    snprintf(path, sizeof path, "%s/run.json", run_dir);
    load_json(path, &r->run, why, sizeof why);
    snprintf(path, sizeof path, "%s/experiment.json", run_dir);
    load_json(path, &r->experiment, r->experiment_why, sizeof r->experiment_why);
    if (!strcmp(r->experiment_why, "missing")) r->experiment_why[0] = 0;
    snprintf(path, sizeof path, "%s/manifest.resolved.yaml", run_dir);
    if (wn_exists(path) && wn_read_file(path, &r->manifest, NULL)) wn_buf_free(&r->manifest);
    return WN_OK;
}

void wn_report_free(wn_report *r)
{
    for (int i = 0; i < r->n_stages; i++) {
        wn_free(r->stages[i].dir);
        wn_buf_free(&r->stages[i].json);
    }
    wn_free(r->stages);
    wn_free(r->run_dir);
    wn_buf_free(&r->run);
    wn_buf_free(&r->manifest);
    wn_buf_free(&r->experiment);
    memset(r, 0, sizeof *r);
}

/* ---- small readers --------------------------------------------------------- */

static double num(const wn_buf *j, const char *key)
{
    wn_span v;
    double x = 0;
    if (j->len && wn_json_get(j->p, j->len, key, &v)) wn_json_to_double(v, &x);
    return x;
}

static int has(const wn_buf *j, const char *key)
{
    wn_span v;
    return j->len && wn_json_get(j->p, j->len, key, &v);
}

/* Writes s[0..n) to f with control bytes and invalid UTF-8 shown as \xNN,
 * so a hostile id cannot move the cursor or recolour the terminal. */
static void put_printable(FILE *f, const char *s, size_t n)
{
    for (size_t i = 0; i < n;) {
        size_t at = i;
        int32_t c = wn_utf8_next(s, n, &i);
        if (c < 0 || c < 0x20 || c == 0x7f || (c >= 0x80 && c < 0xa0)) {
            for (size_t k = at; k < i; k++) fprintf(f, "\\x%02x", (unsigned char)s[k]);
        } else {
            fwrite(s + at, 1, i - at, f);
        }
    }
}

/* ---- the terminal funnel --------------------------------------------------- */

/* x in a column of width w: fixed with `prec` decimals, or %g when that
 * would not fit (a damaged report must not wreck the table). */
static void cell(FILE *f, int w, int prec, double x)
{
    char b[64];
    int n = snprintf(b, sizeof b, "%.*f", prec, x);
    if (n < 0 || n > w) snprintf(b, sizeof b, "%.*g", w > 8 ? 3 : 2, x);
    fprintf(f, " %*s", w, b);
}

/* The steps that ran on a GPU, with their time and energy there, and the
 * total over them; nothing when none did. */
static void print_gpu_steps(const wn_report *r, FILE *f)
{
    double total_s = 0, total_j = 0;
    int n = 0, unmeasured = 0;
    for (int i = 0; i < r->n_stages; i++) {
        const wn_buf *j = &r->stages[i].json;
        double s, e;
        if (!j->len || !wn_energy_read_gpu(j->p, j->len, &s, &e)) continue;
        if (!n++) fprintf(f, "\non the GPU (wall seconds with work there; energy from NVML around each step's calls):\n");
        fprintf(f, "  %-18s", r->stages[i].dir);
        cell(f, 9, 3, s);
        fprintf(f, " s");
        if (e >= 0) {
            cell(f, 10, 0, e);
            fprintf(f, " J\n");
        } else {
            fprintf(f, "  energy not measured (no NVML counters)\n");
        }
        total_s += s;
        total_j += e >= 0 ? e : 0;
        unmeasured |= e < 0;
    }
    if (n > 1) {
        fprintf(f, "  %-18s", "total");
        cell(f, 9, 3, total_s);
        fprintf(f, " s");
        cell(f, 10, 0, total_j);
        fprintf(f, " J%s\n", unmeasured ? " (measured steps only)" : "");
    }
}

wn_err wn_report_print(const wn_report *r, FILE *f, wn_errbuf *err)
{
    (void)err;
    const wn_buf *run = &r->run;
    if (run->len) {
        wn_buf status = {0};
        wn_span v;
        if (wn_json_get(run->p, run->len, "status", &v)) wn_json_decode_string(v, &status);
        fprintf(f, "run %s: ", r->run_dir);
        put_printable(f, status.len ? status.p : "?", status.len ? status.len : 1);
        fprintf(f, ", %.2f s wall (last session), peak RSS %.1f MB, %d threads\n",
                num(run, "wall_seconds_last_session"), num(run, "peak_rss_bytes") / 1e6, (int)num(run, "threads"));
        wn_buf_free(&status);
        if (has(run, "input_files"))
            fprintf(f, "input: %.0f file%s, %.2f MB as stored\n", num(run, "input_files"),
                    num(run, "input_files") == 1 ? "" : "s", num(run, "input_bytes") / 1e6);
        wn_span en, m;
        if (has(run, "cpu_seconds_last_session") && wn_json_get(run->p, run->len, "energy", &en) && en.p[0] == '{') {
            double j = 0;
            wn_span jv;
            if (wn_json_get(en.p, en.n, "joules", &jv)) wn_json_to_double(jv, &j);
            int measured = wn_json_get(en.p, en.n, "method", &m) && m.n == 6 && !memcmp(m.p, "\"rapl\"", 6);
            const char *cpu_how = measured ? "measured, RAPL" : "estimated: 10 W per busy core";
            double gs, gj;
            fprintf(f, "cost: %.1f CPU-seconds, %.3g FLOPs of model work, ", num(run, "cpu_seconds_last_session"),
                    num(run, "flops"));
            if (!wn_energy_read_gpu(run->p, run->len, &gs, &gj))
                fprintf(f, "%.0f J (%s)\n", j, cpu_how);
            else if (gj >= 0) /* joules = CPU part + GPU part */
                fprintf(f, "%.0f J = CPU %.0f J (%s) + GPU %.0f J (measured, NVML) over %.1f GPU-seconds\n", j,
                        j - gj, cpu_how, gj, gs);
            else
                fprintf(f, "%.0f J (%s); GPU: %.1f GPU-seconds, energy not measured (no NVML counters)\n", j,
                        cpu_how, gs);
        }
    } else {
        fprintf(f, "run %s: not complete (no run.json); reports below are from an earlier finished run, if any\n",
                r->run_dir);
    }
    int tokens = 0;
    for (int i = 0; i < r->n_stages; i++) tokens |= has(&r->stages[i].json, "tokens_out");
    fprintf(f, "\n  %-18s %9s %9s %6s %8s %8s", "step", "docs in", "docs out", "kept%", "MB in", "MB out");
    if (tokens) fprintf(f, " %11s %11s", "tokens in", "tokens out");
    fprintf(f, " %8s %8s %8s %8s\n", "modified", "dropped", "wall s", "MB/s");

    double stage_wall = 0, dropped_total = 0;
    int first = -1, last = -1, any_drops = 0;
    for (int i = 0; i < r->n_stages; i++) {
        const wn_report_stage *s = &r->stages[i];
        const wn_buf *j = &s->json;
        if (!j->len) {
            fprintf(f, "  %-18s (report.json %s)\n", s->dir, s->why);
            continue;
        }
        if (first < 0) first = i;
        last = i;
        wn_span v, k, x;
        double dropped = 0;
        if (wn_json_get(j->p, j->len, "dropped", &v)) {
            wn_json_iter it;
            wn_json_iter_init(&it, v.p, v.n);
            while (wn_json_iter_next(&it, &k, &x)) {
                double c = 0;
                wn_json_to_double(x, &c);
                dropped += c;
                any_drops = 1;
            }
        }
        dropped_total += dropped;
        double wall = num(j, "wall_seconds"), in = num(j, "docs_in");
        stage_wall += wall;
        fprintf(f, "  %-18s", s->dir);
        cell(f, 9, 0, in);
        cell(f, 9, 0, num(j, "docs_out"));
        if (in > 0) cell(f, 6, 1, 100 * num(j, "docs_out") / in);
        else fprintf(f, " %6s", "-");
        cell(f, 8, 2, num(j, "bytes_in") / 1e6);
        cell(f, 8, 2, num(j, "bytes_out") / 1e6);
        if (tokens && has(j, "tokens_out")) {
            cell(f, 11, 0, num(j, "tokens_in"));
            cell(f, 11, 0, num(j, "tokens_out"));
        } else if (tokens) {
            fprintf(f, " %11s %11s", "", "");
        }
        cell(f, 8, 0, num(j, "modified"));
        cell(f, 8, 0, dropped);
        cell(f, 8, 3, wall);
        cell(f, 8, 1, wall > 0 ? num(j, "bytes_in") / 1e6 / wall : 0.0);
        fputc('\n', f);
    }
    if (first >= 0) {
        double in = num(&r->stages[first].json, "docs_in"), out = num(&r->stages[last].json, "docs_out");
        fprintf(f, "\n  %.0f documents read, %.0f written (%.1f%%), %.0f dropped; %.3f s in the steps\n", in, out,
                in > 0 ? 100 * out / in : 0.0, dropped_total, stage_wall);
    }
    print_gpu_steps(r, f);
    if (any_drops) {
        fprintf(f, "\ndrop reasons (sampled ids: winnow report %s --rejects STAGE):\n", r->run_dir);
        for (int i = 0; i < r->n_stages; i++) {
            const wn_buf *j = &r->stages[i].json;
            wn_span v, k, x;
            if (!j->len || !wn_json_get(j->p, j->len, "dropped", &v)) continue;
            double in = num(j, "docs_in");
            wn_json_iter it;
            wn_json_iter_init(&it, v.p, v.n);
            while (wn_json_iter_next(&it, &k, &x)) {
                double c = 0;
                wn_buf key = {0};
                wn_json_to_double(x, &c);
                wn_json_decode_string(k, &key);
                fprintf(f, "  %-18s ", r->stages[i].dir);
                put_printable(f, key.p ? key.p : "?", key.len);
                fprintf(f, "%*s %10.0f", key.len < 24 ? (int)(24 - key.len) : 0, "", c);
                if (in > 0) fprintf(f, "  %5.1f%% of its input", 100 * c / in);
                fputc('\n', f);
                wn_buf_free(&key);
            }
        }
    }
    fprintf(f, "\nbytes are UTF-8 text bytes (the reader's MB in is input as stored, the writer's MB out "
               "uncompressed JSONL); details in each report.json\n");
    return WN_OK;
}

/* ---- merged JSON ------------------------------------------------------------- */

/* Re-emits a validated value through the writer, so the merged document is
 * indented as one. Numbers and literals are copied as written. */
static void copy_value(wn_jw *w, wn_span v)
{
    wn_json_iter it;
    wn_span k, x;
    if (v.p[0] == '{' && w->depth < 60) {
        wn_jw_obj_begin(w);
        wn_json_iter_init(&it, v.p, v.n);
        while (wn_json_iter_next(&it, &k, &x)) {
            wn_buf key = {0};
            wn_json_decode_string(k, &key);
            wn_jw_key(w, key.p ? key.p : "");
            wn_buf_free(&key);
            copy_value(w, x);
        }
        wn_jw_obj_end(w);
    } else if (v.p[0] == '[' && w->depth < 60) {
        wn_jw_arr_begin(w);
        wn_json_items_init(&it, v.p, v.n);
        while (wn_json_items_next(&it, &x)) copy_value(w, x);
        wn_jw_arr_end(w);
    } else {
        wn_jw_raw(w, v.p, v.n);
    }
}

static void copy_buf(wn_jw *w, const wn_buf *b)
{
    size_t i = 0;
    while (i < b->len && (b->p[i] == ' ' || b->p[i] == '\n' || b->p[i] == '\r' || b->p[i] == '\t')) i++;
    wn_span v = {b->p + i, b->len - i};
    while (v.n && (v.p[v.n - 1] == ' ' || v.p[v.n - 1] == '\n' || v.p[v.n - 1] == '\r' || v.p[v.n - 1] == '\t'))
        v.n--;
    copy_value(w, v);
}

wn_err wn_report_json(const wn_report *r, FILE *f, wn_errbuf *err)
{
    wn_buf out = {0};
    wn_jw w;
    wn_jw_init(&w, &out, 1);
    wn_jw_obj_begin(&w);
    wn_jw_key(&w, "run_dir"); wn_jw_str(&w, r->run_dir);
    wn_jw_key(&w, "run");
    if (r->run.len) copy_buf(&w, &r->run);
    else wn_jw_null(&w);
    wn_jw_key(&w, "stages");
    wn_jw_arr_begin(&w);
    for (int i = 0; i < r->n_stages; i++) {
        const wn_report_stage *s = &r->stages[i];
        if (s->json.len) {
            copy_buf(&w, &s->json);
            continue;
        }
        wn_jw_obj_begin(&w);
        wn_jw_key(&w, "dir"); wn_jw_str(&w, s->dir);
        wn_jw_key(&w, "error"); wn_jw_str(&w, s->why);
        wn_jw_obj_end(&w);
    }
    wn_jw_arr_end(&w);
    if (r->experiment.len) {
        wn_jw_key(&w, "experiment");
        copy_buf(&w, &r->experiment);
    } else if (r->experiment_why[0]) {
        wn_jw_key(&w, "experiment_error"); wn_jw_str(&w, r->experiment_why);
    }
    wn_jw_obj_end(&w);
    wn_buf_putc(&out, '\n');
    if (!out.p) return wn_fail(err, WN_ERR_NOMEM, "out of memory");
    size_t n = fwrite(out.p, 1, out.len, f);
    wn_buf_free(&out);
    return n ? WN_OK : wn_fail(err, WN_ERR_IO, "cannot write the report");
}

/* ---- rejects ------------------------------------------------------------- */

static int find_stage(const wn_report *r, const char *want, wn_errbuf *err)
{
    char *end;
    long n = strtol(want, &end, 10);
    int numeric = end != want && !*end;
    int found = -1, matches = 0;
    for (int i = 0; i < r->n_stages; i++) {
        const char *dir = r->stages[i].dir, *dash = strchr(dir, '-');
        int hit = !strcmp(dir, want) || (numeric && strtol(dir, NULL, 10) == n) ||
                  (dash && !strcmp(dash + 1, want));
        if (hit) {
            if (!strcmp(dir, want)) return i;
            found = i;
            matches++;
        }
    }
    if (matches == 1) return found;
    wn_buf list = {0};
    for (int i = 0; i < r->n_stages; i++) wn_buf_printf(&list, "%s%s", i ? ", " : "", r->stages[i].dir);
    if (matches > 1)
        wn_fail(err, WN_ERR_USAGE, "--rejects %s: several stages match (%s); give its number", want,
                list.p ? list.p : "");
    else
        wn_fail(err, WN_ERR_USAGE, "--rejects %s: no such stage in %s (stages: %s)", want, r->run_dir,
                list.p ? list.p : "none");
    wn_buf_free(&list);
    return -1;
}

wn_err wn_report_rejects(const wn_report *r, const char *stage, FILE *f, wn_errbuf *err)
{
    int i = find_stage(r, stage, err);
    if (i < 0) return WN_ERR_USAGE;
    const wn_report_stage *s = &r->stages[i];
    const wn_buf *j = &s->json;
    if (!j->len) return wn_fail(err, WN_ERR_IO, "%s/stages/%s/report.json: %s", r->run_dir, s->dir, s->why);
    int reader = strtol(s->dir, NULL, 10) == 0;
    wn_span dropped, samples = {0}, k, x, arr, item;
    wn_json_get(j->p, j->len, "dropped_samples", &samples);
    int any = 0;
    if (wn_json_get(j->p, j->len, "dropped", &dropped)) {
        wn_json_iter it, it2;
        wn_json_iter_init(&it, dropped.p, dropped.n);
        while (wn_json_iter_next(&it, &k, &x)) {
            wn_buf key = {0};
            double c = 0;
            wn_json_decode_string(k, &key);
            wn_json_to_double(x, &c);
            if (!any) fprintf(f, "%s: %s per reason (a sample)\n", s->dir, reader ? "input errors" : "dropped ids");
            any = 1;
            put_printable(f, key.p ? key.p : "", key.len);
            fprintf(f, ": %.0f dropped\n", c);
            if (samples.p && key.p && wn_json_get(samples.p, samples.n, key.p, &arr) && arr.p[0] == '[') {
                wn_json_items_init(&it2, arr.p, arr.n);
                while (wn_json_items_next(&it2, &item)) {
                    wn_buf id = {0};
                    if (!wn_json_decode_string(item, &id) && id.p) {
                        fputs("  ", f);
                        put_printable(f, id.p, id.len);
                        fputc('\n', f);
                    }
                    wn_buf_free(&id);
                }
            }
            wn_buf_free(&key);
        }
    }
    if (!any) fprintf(f, "%s: nothing dropped\n", s->dir);
    return WN_OK;
}
