/*
 * report.c - `winnow report RUN_DIR`: the funnel of a run in the terminal,
 * read back from the stage reports (stages/NN-<stage>/report.json) and
 * run.json.
 */
#include <dirent.h>
#include <stdlib.h>
#include <string.h>

#include "fs.h"
#include "json.h"
#include "run.h"

static int cmp_name(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static double num(const wn_buf *j, const char *key)
{
    wn_span v;
    double x = 0;
    if (wn_json_get(j->p, j->len, key, &v)) wn_json_to_double(v, &x);
    return x;
}

wn_err wn_report_print(const char *run_dir, FILE *f, wn_errbuf *err)
{
    char path[4400];
    snprintf(path, sizeof path, "%s/stages", run_dir);
    DIR *d = opendir(path);
    if (!d) return wn_fail(err, WN_ERR_IO, "%s: no stage reports here (is it a run directory?)", run_dir);
    char **names = NULL;
    int n = 0;
    struct dirent *de;
    while ((de = readdir(d))) {
        if (de->d_name[0] == '.') continue;
        char **p = wn_realloc(names, (size_t)(n + 1) * sizeof *p);
        if (!p) break;
        names = p;
        names[n++] = wn_strdup(de->d_name);
    }
    closedir(d);
    qsort(names, (size_t)n, sizeof *names, cmp_name);

    wn_buf run = {0};
    snprintf(path, sizeof path, "%s/run.json", run_dir);
    if (wn_exists(path) && !wn_read_file(path, &run, NULL) && run.len) {
        fprintf(f, "run %s: complete, %.2f s wall (last session), peak RSS %.1f MB, %d threads\n", run_dir,
                num(&run, "wall_seconds_last_session"), num(&run, "peak_rss_bytes") / 1e6,
                (int)num(&run, "threads"));
    } else {
        fprintf(f, "run %s: not complete (no run.json); reports below are from an earlier finished run, if any\n",
                run_dir);
    }
    fprintf(f, "\n  %-20s %10s %10s %10s %10s %11s %9s %9s %8s %8s\n", "step", "docs in", "docs out", "MB in",
            "MB out", "tokens out", "modified", "dropped", "time s", "MB/s");
    wn_buf drops = {0};
    wn_err e = WN_OK;
    for (int i = 0; i < n; i++) {
        wn_buf j = {0};
        snprintf(path, sizeof path, "%s/stages/%s/report.json", run_dir, names[i]);
        size_t off;
        const char *why;
        if (wn_read_file(path, &j, NULL) || wn_json_check_object(j.p, j.len, &off, &why)) {
            fprintf(f, "  %-20s (unreadable report.json)\n", names[i]);
            wn_buf_free(&j);
            continue;
        }
        wn_span v, k, x;
        uint64_t dropped = 0;
        if (wn_json_get(j.p, j.len, "dropped", &v)) {
            wn_json_iter it;
            wn_json_iter_init(&it, v.p, v.n);
            int first = 1;
            while (wn_json_iter_next(&it, &k, &x)) {
                int64_t c = 0;
                wn_json_to_i64(x, &c);
                dropped += (uint64_t)c;
                wn_buf key = {0};
                wn_json_decode_string(k, &key);
                if (first) wn_buf_printf(&drops, "  %s: ", names[i]);
                wn_buf_printf(&drops, "%s%s %lld", first ? "" : ", ", key.p ? key.p : "?", (long long)c);
                first = 0;
                wn_buf_free(&key);
            }
            if (!first) wn_buf_putc(&drops, '\n');
        }
        double wall = num(&j, "wall_seconds");
        char tokens[32] = "";
        if (wn_json_get(j.p, j.len, "tokens_out", &v)) snprintf(tokens, sizeof tokens, "%.0f", num(&j, "tokens_out"));
        fprintf(f, "  %-20s %10.0f %10.0f %10.2f %10.2f %11s %9.0f %9llu %8.2f %8.1f\n", names[i],
                num(&j, "docs_in"), num(&j, "docs_out"), num(&j, "bytes_in") / 1e6, num(&j, "bytes_out") / 1e6,
                tokens, num(&j, "modified"), (unsigned long long)dropped, wall,
                wall > 0 ? num(&j, "bytes_in") / 1e6 / wall : 0.0);
        wn_buf_free(&j);
    }
    if (drops.len) fprintf(f, "\ndrop reasons:\n%s", drops.p);
    fprintf(f, "\nbytes are UTF-8 text bytes (the writer's MB out is uncompressed JSONL); details in each report.json\n");
    for (int i = 0; i < n; i++) wn_free(names[i]);
    wn_free(names);
    wn_buf_free(&drops);
    wn_buf_free(&run);
    return e;
}
