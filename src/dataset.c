/*
 * dataset.c - reads named datasets through the same readers as the inputs.
 */
#include "dataset.h"

#include <glob.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "reader.h"

const char *wn_run_dataset(const wn_run_info *r, const char *name)
{
    for (int i = 0; r && i < r->n_datasets; i++)
        if (!strcmp(r->dataset_names[i], name)) return r->dataset_paths[i];
    return NULL;
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

wn_err wn_dataset_each(const char *pattern, wn_dataset_fn fn, void *ctx, wn_errbuf *err)
{
    glob_t g;
    int rc = glob(pattern, 0, NULL, &g);
    if (rc == GLOB_NOMATCH || (rc == 0 && g.gl_pathc == 0)) {
        if (rc == 0) globfree(&g);
        return wn_fail(err, WN_ERR_MANIFEST, "dataset: no file matches '%s'", pattern);
    }
    if (rc) return wn_fail(err, WN_ERR_IO, "dataset: cannot expand '%s'", pattern);
    qsort(g.gl_pathv, g.gl_pathc, sizeof *g.gl_pathv, cmp_str);
    wn_input_spec spec = {.path = (char *)pattern, .format = WN_FMT_AUTO, .text_key = "text", .id_key = "id"};
    wn_batch b = {0};
    wn_err e = WN_OK;
    for (size_t k = 0; k < g.gl_pathc && !e; k++) {
        struct stat sb;
        if (stat(g.gl_pathv[k], &sb) || !S_ISREG(sb.st_mode)) continue;
        wn_input_file f = {.path = g.gl_pathv[k], .format = wn_format_from_name(g.gl_pathv[k]),
                           .size = (uint64_t)sb.st_size};
        if (f.format == WN_FMT_AUTO) {
            e = wn_fail(err, WN_ERR_MANIFEST, "dataset: cannot tell the format of '%s' from its name", f.path);
            break;
        }
        wn_reader *rd = NULL;
        if ((e = wn_reader_open(&rd, &f, &spec, (uint32_t)k, err))) break;
        for (;;) {
            wn_batch_reset(&b);
            wn_doc *d = wn_batch_push(&b);
            if (!d) { e = wn_fail(err, WN_ERR_NOMEM, "out of memory"); break; }
            int got = 0;
            const char *reason = NULL;
            if ((e = wn_reader_next(rd, d, &got, &reason, err)) || !got) break;
            if ((e = fn(ctx, d))) break;
        }
        wn_reader_close(rd);
    }
    wn_batch_free(&b);
    globfree(&g);
    return e;
}
