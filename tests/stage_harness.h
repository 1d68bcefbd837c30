/*
 * stage_harness.h - drives one stage through its descriptor in unit tests,
 * with parameters resolved by the real manifest loader ("- NAME: {PARAMS}").
 */
#ifndef WN_STAGE_HARNESS_H
#define WN_STAGE_HARNESS_H

#include "manifest.h"
#include "stage.h"

typedef struct {
    wn_manifest *m;
    wn_stage st;
    char dir[64]; /* scratch directory: the manifest, list files, spills */
    int opened;   /* open was called, so close is due */
} wn_test_stage;

/* Makes h's scratch directory if it has none yet. Returns 0 on failure. */
int wn_test_stage_dir(wn_test_stage *h);
/* Loads the manifest and opens the stage with `threads` threads and a 1 MiB
 * memory budget. Returns open's result, or WN_ERR_MANIFEST (message on
 * stderr) when the manifest does not load. */
wn_err wn_test_stage_open(wn_test_stage *h, const char *name, const char *params, int threads);
/* Closes the stage (when opened) and removes everything h made. */
void wn_test_stage_close(wn_test_stage *h);

#endif
