/*
 * registry.c - the const table of stages, generated from stages/stages.def.
 * The core knows stages only through this table.
 */
#include <omp.h>
#include <string.h>

#include "stage.h"

#define WN_STAGE(n) extern const wn_stage_def wn_stage_##n;
#include "../stages/stages.def"
#undef WN_STAGE

const wn_stage_def *const wn_stage_registry[] = {
#define WN_STAGE(n) &wn_stage_##n,
#include "../stages/stages.def"
#undef WN_STAGE
};

const int wn_stage_count = (int)WN_ARRAY_LEN(wn_stage_registry);

const wn_stage_def *wn_stage_find(const char *name)
{
    for (int i = 0; i < wn_stage_count; i++)
        if (!strcmp(wn_stage_registry[i]->name, name)) return wn_stage_registry[i];
    return NULL;
}

const wn_value *wn_param(const wn_stage *st, const char *name)
{
    for (int i = 0; i < st->def->n_params; i++)
        if (!strcmp(st->def->params[i].name, name)) return &st->params[i];
    WN_CHECK(!"stage asked for a parameter it did not declare");
    return NULL;
}

wn_err wn_stage_each_doc(wn_stage *st, wn_batch *b, int n_threads, wn_doc_fn fn)
{
    size_t first_bad = b->n;
    wn_err bad = WN_OK;
    int stop = 0;
#pragma omp parallel for schedule(dynamic, 16) num_threads(n_threads > 0 ? n_threads : 1)
    for (size_t i = 0; i < b->n; i++) {
        int halt;
#pragma omp atomic read
        halt = stop;
        if (halt || b->docs[i].drop) continue;
        wn_err e = fn(st, omp_get_thread_num(), &b->docs[i]);
        if (e) {
#pragma omp critical(wn_each_doc)
            if (i < first_bad) { first_bad = i; bad = e; }
#pragma omp atomic write
            stop = 1;
        }
    }
    if (bad) return wn_fail(&st->err, bad, "%s: %s", st->def->name, wn_err_name(bad));
    return WN_OK;
}
