/*
 * registry.c - the const table of stages, generated from stages/stages.def.
 * The core knows stages only through this table.
 */
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
