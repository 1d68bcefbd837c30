/*
 * run.h - executes a manifest: the run directory, the streaming loop,
 * checkpoints and resume, stage reports and the progress display. The run
 * directory and resume logic live here and nowhere else.
 *
 * Layout written (DESIGN.md §3):
 *   RUN_DIR/manifest.resolved.yaml
 *   RUN_DIR/stages/00-read/report.json      the readers: input errors per reason
 *   RUN_DIR/stages/NN-<stage>/report.json   one per stage
 *   RUN_DIR/stages/NN-write/report.json     the document writer (NN = stages + 1)
 *   RUN_DIR/documents/part-NNNNN.jsonl.zst
 *   RUN_DIR/state/                          checkpoint + stage spills (removed on success)
 *   RUN_DIR/run.json                        summary: status, times, peak RSS, shards
 *
 * Resume: a checkpoint is taken each time a document shard completes (at a
 * batch boundary): input position, stage states, counters. --resume restores
 * the last one and reprocesses from there; every step is deterministic, so the
 * outputs are byte-identical to an uninterrupted run.
 */
#ifndef WN_RUN_H
#define WN_RUN_H

#include "manifest.h"

typedef struct {
    int resume;
    int threads;    /* 0 = manifest / auto */
    int keep_state;
    int progress;   /* -1 = when stderr is a terminal */
    const char *cache_dir; /* NULL, or a directory shared by related runs (an
                              experiment's arms) where stages may keep
                              deterministic, content-keyed artefacts */
} wn_run_opts;

wn_err wn_run(wn_manifest *m, const wn_run_opts *o, wn_errbuf *err);

/* Prints the funnel of a finished (or interrupted) run to f. */
wn_err wn_report_print(const char *run_dir, FILE *f, wn_errbuf *err);

#endif
