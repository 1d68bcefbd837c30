/*
 * manifest.h - the pipeline manifest (YAML, DESIGN.md §3): parse with
 * libyaml, validate every key against the schema and every stage parameter
 * against its stage's declared table, fill in defaults, expand input globs,
 * and write the resolved copy into the run directory.
 *
 * Every error names file:line and the key, and is found before any work
 * starts. The manifest owns all strings it hands out.
 */
#ifndef WN_MANIFEST_H
#define WN_MANIFEST_H

#include "stage.h"

enum { WN_ON_ERROR_FAIL = 0, WN_ON_ERROR_SKIP = 1 };

typedef enum { WN_FMT_AUTO, WN_FMT_JSONL, WN_FMT_TEXT, WN_FMT_WET, WN_FMT_ARCHIVE } wn_format;

typedef struct {
    char *path;      /* the glob as written */
    wn_format format;
    char *text_key;
    char *id_key;
    int on_error;    /* WN_ON_ERROR_* (inherits the top level when unset) */
    int text_unit_line; /* text inputs: 1 = a line is a document, 0 = a file is */
    int utf8_pass;   /* 1 = pass invalid UTF-8 to the stages, 0 = input error */
    int line;        /* manifest line, for messages */
} wn_input_spec;

/* One concrete input file after glob expansion, in sorted order. */
typedef struct {
    char *path;
    int spec;        /* index into inputs */
    wn_format format; /* resolved: never AUTO */
    uint64_t size;
    uint64_t hash;   /* xxh3-64 of the file's bytes */
} wn_input_file;

typedef struct {
    char *name;
    char *path;
} wn_dataset;

typedef struct {
    const wn_stage_def *def;
    wn_value *values; /* def->n_params resolved values */
    int line;
} wn_stage_spec;

/* One extra arm of an experiment: overrides of the selecting stage's
 * parameters (validated against its table at load). */
typedef struct {
    char *name;
    char **keys, **vals;
    int n;
    int line;
} wn_exp_arm;

typedef struct {
    char *file;       /* the manifest's path */
    char *name;
    char *workdir;
    int on_error;
    int threads;      /* 0 = auto */
    char *device;     /* auto | cpu | cuda */
    int64_t memory;
    int64_t batch_bytes;
    wn_input_spec *inputs;
    int n_inputs;
    wn_input_file *files;
    int n_files;
    wn_dataset *datasets;
    int n_datasets;
    wn_stage_spec *stages;
    int n_stages;
    /* outputs.documents */
    int64_t shard_bytes;
    int zstd_level;
    /* experiment: (`winnow experiment`); NULL when absent, else values in
     * the order of wn_experiment_params */
    wn_value *experiment;
    int experiment_line;
    wn_exp_arm *arms;
    int n_arms;
    void *strings;    /* owned allocations */
} wn_manifest;

/* The experiment section's parameters (eval, seeds, steps, batch, context,
 * layers, dim, heads, lr, eval_every, budgets), in this order. */
extern const wn_param_def wn_experiment_params[];
extern const int wn_experiment_n_params;
enum { WN_EXP_EVAL, WN_EXP_SEEDS, WN_EXP_STEPS, WN_EXP_BATCH, WN_EXP_CONTEXT, WN_EXP_LAYERS, WN_EXP_DIM,
       WN_EXP_HEADS, WN_EXP_LR, WN_EXP_EVAL_EVERY, WN_EXP_BUDGETS };
/* The stage an experiment modifies (the first whose baseline overrides
 * parameters, stage.h), or -1. */
int wn_manifest_selecting_stage(const wn_manifest *m);
/* Sets parameter `key` of stage `stage` from manifest text, validated. */
/* Replaces the manifest's device (auto|cpu|cuda; WN_ERR_USAGE otherwise), as
 * `winnow run --device` does. */
wn_err wn_manifest_set_device(wn_manifest *m, const char *device, wn_errbuf *err);
wn_err wn_manifest_override(wn_manifest *m, int stage, const char *key, const char *value, wn_errbuf *err);
/* Points the run at another directory. */
wn_err wn_manifest_set_workdir(wn_manifest *m, const char *dir, wn_errbuf *err);
/* Takes stage `stage` out of the pipeline. */
void wn_manifest_remove_stage(wn_manifest *m, int stage);

/* Parses and validates; paths in the manifest are relative to the current
 * directory. Does not touch input files. */
wn_err wn_manifest_load(wn_manifest **m, const char *path, wn_errbuf *err);
/* Expands input globs and stats and hashes each file. */
wn_err wn_manifest_expand_inputs(wn_manifest *m, wn_errbuf *err);
/* The resolved manifest as YAML: every default filled in, plus the input
 * file list with sizes and hashes. */
wn_err wn_manifest_resolved(const wn_manifest *m, wn_buf *out);
void wn_manifest_free(wn_manifest *m);

/* "4GiB", "256MB", "64k", "1000" -> bytes. Returns 0 on success. */
int wn_parse_size(const char *s, int64_t *out);
const char *wn_format_name(wn_format f);
/* The format a file name implies (.jsonl[.gz|.zst|...], .txt, .wet, .tar,
 * .zip, ...), WN_FMT_AUTO when it implies none. */
wn_format wn_format_from_name(const char *path);

#endif
