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
 * batch boundary), and also after every shard's worth of input text
 * (outputs.documents.shard_bytes) read while nothing was written (a stage
 * holding documents back for a global decision): input position, stage
 * states, counters. --resume restores
 * the last one and reprocesses from there; every step is deterministic, so the
 * outputs are byte-identical to an uninterrupted run.
 */
#ifndef WN_RUN_H
#define WN_RUN_H

#include <stdio.h>

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

/* ---- reading a run back: `winnow report` (report.c, report_html.c) ------
 *
 * wn_report_load reads run.json, every stages/NN-<stage>/report.json (in NN
 * order), manifest.resolved.yaml and, when present, experiment/report.json.
 * A missing or invalid file is not an error (an interrupted run has no
 * run.json); it is left empty with the reason in `why`. Only a directory
 * without stages/ fails. The wn_report owns every buffer; wn_report_free
 * accepts a zeroed one. */
typedef struct {
    char *dir;     /* "02-length_filter" */
    wn_buf json;   /* the report, a validated JSON object; len 0 when unusable */
    char why[256]; /* why json is empty */
} wn_report_stage;

typedef struct {
    char *run_dir;
    wn_buf run;        /* run.json, validated; len 0 when absent or invalid */
    wn_buf manifest;   /* manifest.resolved.yaml as text; len 0 when absent */
    wn_buf experiment; /* experiment/report.json, validated; len 0 when absent or invalid */
    char experiment_why[256]; /* set when experiment/report.json exists but is unusable */
    wn_report_stage *stages;
    int n_stages;
} wn_report;

wn_err wn_report_load(wn_report *r, const char *run_dir, wn_errbuf *err);
void wn_report_free(wn_report *r);

/* The funnel in the terminal: documents, bytes and tokens in/out per step,
 * drop reasons, wall seconds and MB/s. */
wn_err wn_report_print(const wn_report *r, FILE *f, wn_errbuf *err);

/* One JSON document: {"run_dir", "run": run.json or null, "stages": [every
 * report in order], "experiment" when present}. */
wn_err wn_report_json(const wn_report *r, FILE *f, wn_errbuf *err);

/* The sampled dropped ids (input-error messages for 00-read) per reason of
 * one stage, chosen by directory name ("02-length_filter"), number ("2",
 * "02") or stage name when only one stage has it. */
wn_err wn_report_rejects(const wn_report *r, const char *stage, FILE *f, wn_errbuf *err);

/* Writes the self-contained HTML page (inline CSS and SVG, no script, no
 * network reference) to path, atomically. */
wn_err wn_report_html(const wn_report *r, const char *path, wn_errbuf *err);

#endif
