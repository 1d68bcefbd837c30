/*
 * stage_harness.c - see tests/stage_harness.h.
 */
#include "../stage_harness.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fs.h"

int wn_test_stage_dir(wn_test_stage *h)
{
    if (h->dir[0]) return 1;
    snprintf(h->dir, sizeof h->dir, "/tmp/wn-stage-XXXXXX");
    return mkdtemp(h->dir) != NULL;
}

wn_err wn_test_stage_open(wn_test_stage *h, const char *name, const char *params, int threads)
{
    if (!wn_test_stage_dir(h)) return WN_ERR_IO;
    char path[128], yaml[4096];
    snprintf(path, sizeof path, "%s/m.yaml", h->dir);
    snprintf(yaml, sizeof yaml, "name: t\ninputs: [{path: x.jsonl}]\nstages:\n  - %s: {%s}\n", name, params);
    if (wn_write_atomic(path, yaml, strlen(yaml), NULL)) return WN_ERR_IO;
    wn_errbuf err;
    if (wn_manifest_load(&h->m, path, &err)) {
        fprintf(stderr, "  %s\n", err.msg);
        return WN_ERR_MANIFEST;
    }
    h->st.def = h->m->stages[0].def;
    h->st.params = h->m->stages[0].values;
    h->st.threads = threads;
    h->st.memory_budget = 1 << 20;
    h->st.state_dir = h->dir;
    h->st.state = calloc(1, h->st.def->state_size ? h->st.def->state_size : 1);
    h->opened = 1;
    return h->st.def->open ? h->st.def->open(&h->st) : WN_OK;
}

void wn_test_stage_close(wn_test_stage *h)
{
    if (h->opened && h->st.def->close) h->st.def->close(&h->st);
    free(h->st.state);
    wn_manifest_free(h->m);
    if (h->dir[0]) wn_rm_tree(h->dir, NULL);
    memset(h, 0, sizeof *h);
}
