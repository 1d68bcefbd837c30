/*
 * stage.h - the stage interface. One stage = one file in stages/ = one const
 * wn_stage_def. The framework (src/run.c) owns the stage's private state
 * (state_size bytes, zeroed), validates its parameters against the declared
 * table before anything runs, and always calls close.
 *
 * Method contract (optional methods may be NULL; the default is noted):
 *   open(st)          allocate and check; parameters are resolved already.
 *   process(st, b)    required. The batch is the stage's to change in place:
 *                     modify text (set d->modified), drop (d->drop = reason,
 *                     a static string), or append documents. The framework
 *                     counts, samples dropped ids, and compacts afterwards.
 *                     Work inside the batch may run in parallel (OpenMP);
 *                     results must not depend on the thread count.
 *   finish(st, out)   default none. For stages that hold documents back:
 *                     at end of stream, called again and again with an
 *                     empty batch; each call appends the next documents
 *                     (a batch's worth, to bound memory), and a call that
 *                     appends nothing ends it. Appended documents may carry
 *                     d->drop: they count as this stage's drops.
 *   save(st, f)/load(st, f)  default stateless. Checkpoint the stage's state
 *                     at a resume point / restore it.
 *   report(st, w)     default none. Add stage-specific keys to report.json
 *                     (histograms, counts) inside the open report object.
 *   close(st)         default none. Free everything; called even after errors.
 * Stages never print and never exit: they return wn_err with a message in
 * st->err.
 */
#ifndef WN_STAGE_H
#define WN_STAGE_H

#include <stdio.h>

#include "doc.h"
#include "json.h"

typedef enum { WN_P_BOOL, WN_P_INT, WN_P_FLOAT, WN_P_STRING, WN_P_ENUM, WN_P_SIZE } wn_ptype;

/* One declared parameter. `def` is the default written as in a manifest
 * (NULL = required). For INT/FLOAT/SIZE, [min, max] is inclusive. For ENUM,
 * `choices` is "a|b|c". */
typedef struct {
    const char *name;
    wn_ptype type;
    const char *def;
    double min, max;
    const char *choices;
    const char *doc;
} wn_param_def;

typedef struct {
    int b;
    int64_t i; /* INT and SIZE (bytes) */
    double f;
    const char *s; /* STRING and ENUM; owned by the manifest */
} wn_value;

typedef struct wn_stage wn_stage;

typedef struct wn_stage_def {
    const char *name;
    const char *summary;
    const char *doc; /* a paragraph for `winnow stages NAME` */
    const wn_param_def *params;
    int n_params;
    size_t state_size;
    wn_err (*open)(wn_stage *st);
    wn_err (*process)(wn_stage *st, wn_batch *b);
    wn_err (*finish)(wn_stage *st, wn_batch *out);
    wn_err (*save)(wn_stage *st, FILE *f);
    wn_err (*load)(wn_stage *st, FILE *f);
    void (*report)(wn_stage *st, wn_jw *w);
    void (*close)(wn_stage *st);
    /* How `winnow experiment` builds its uniformly random baseline from a
     * pipeline, given the stage's resolved parameters: NULL (or no method)
     * keeps the stage as it is; "-" leaves it out (a stage
     * whose work only the selection uses); otherwise parameter overrides in
     * manifest syntax ("key: value, key: value") that turn the stage into
     * a random selection of the same size, where "{tokens}" stands for the
     * tokens the stage passed on in the experiment's selected run and
     * "{docs}" for its documents. The stage with overrides is also the one
     * whose parameters an experiment's extra arms override. */
    const char *(*baseline)(const wn_value *params);
} wn_stage_def;

/* Facts about the run shared by all stages through the core: where the run
 * lives, and what a tokenize stage announced in its open (stages open in
 * manifest order, so later stages see it). */
typedef struct {
    const char *run_dir;
    uint64_t manifest_hash;  /* xxh3-64 of the resolved manifest (without threads) */
    int vocab_size;          /* 0 until a tokenize stage opens */
    int64_t eot_id;          /* -1 when none */
    uint64_t tokenizer_hash;
    char tokenizer[4096];
    int token_weights;       /* a stage before sets per-token loss weights (d->tweight) */
    const char *device;      /* the manifest's device: auto | cpu | cuda */
    int64_t batch_bytes;     /* the manifest's batch size (text bytes): what a
                                finish call should emit at most, about */
    uint64_t reserve_bytes;  /* what the process holds outside every stage's
                                state, estimated by the run (run.c,
                                run_reserve): see wn_stage_table_budget */
    const char *cache_dir;   /* NULL, or a directory shared across related runs
                                for artefacts keyed by their content (run.h) */
    /* the manifest's named datasets (never part of the stream) */
    const char *const *dataset_names;
    const char *const *dataset_paths;
    int n_datasets;
    /* for each input file (wn_doc.file), the path of its manifest input
     * spec as written (files of one spec share it) */
    const char *const *file_inputs;
    int n_files;
} wn_run_info;

/* The run-time instance handed to every method. */
struct wn_stage {
    wn_run_info *run;
    const wn_stage_def *def;
    void *state;            /* state_size bytes, zeroed before open */
    const wn_value *params; /* in the order of def->params */
    int index;              /* position in the pipeline, 1-based */
    int threads;
    int64_t memory_budget;  /* bytes the stage's state may use before spilling */
    const char *state_dir;  /* a private directory for spills */
    uint64_t mem_peak;      /* the stage updates this: peak bytes of its state */
    char device_used[16];   /* the stage sets "cuda" when it ran there (report) */
    double flops;           /* the stage sets the FLOPs of its model work (report, run.json) */
    wn_errbuf err;
};

/* Parameter lookup by name (done in open, never per record). Aborts via
 * WN_CHECK on a name the stage did not declare: that is a bug. */
const wn_value *wn_param(const wn_stage *st, const char *name);

/* The per-document loop most stages need, written once: calls fn on every
 * document of the batch not already dropped, in parallel over n_threads
 * OpenMP threads (dynamic schedule), passing the thread index so fn can use
 * that thread's scratch. fn must touch only its document and that scratch.
 * After a failure no new document is started; the error returned is the one
 * of the first failing document in batch order, with a message naming the
 * stage. */
typedef wn_err (*wn_doc_fn)(wn_stage *st, int thread, wn_doc *d);
wn_err wn_stage_each_doc(wn_stage *st, wn_batch *b, int n_threads, wn_doc_fn fn);

/* How many text bytes a finish call should emit: the run's batch size, or
 * fallback when the stage runs outside a run (tests). */
static inline uint64_t wn_stage_emit_bytes(const wn_stage *st, uint64_t fallback)
{
    return st->run && st->run->batch_bytes > 0 ? (uint64_t)st->run->batch_bytes : fallback;
}

/* Bytes a memory-bounded stage gives its tables (the structures that grow
 * with the corpus and spill beyond the budget), so that the whole process's
 * peak RSS stays within `budget` (the stage's `memory` parameter, else the
 * manifest's): the budget less the run's reserve (st->run->reserve_bytes:
 * the binary and its libraries, the reader, the run's batch, the writer's
 * compressor) and less `own`, the stage's other buffers at their largest
 * (spill compressor, per-batch arrays, per-thread scratch). A budget below
 * twice that reserve cannot hold the process: the tables then get half the
 * budget, and the process goes over it by up to the reserve. Outside a run
 * (unit tests) only `own` is reserved. *reserve (may be NULL) gets the
 * whole reserve, for the stage's report. */
static inline uint64_t wn_stage_table_budget(const wn_stage *st, uint64_t budget, uint64_t own, uint64_t *reserve)
{
    uint64_t r = (st->run ? st->run->reserve_bytes : 0) + own;
    if (reserve) *reserve = r;
    return budget / 2 > r ? budget - r : budget / 2;
}

/* The registry: every stage, from the X-macro list in stages/stages.def. */
extern const wn_stage_def *const wn_stage_registry[];
extern const int wn_stage_count;
const wn_stage_def *wn_stage_find(const char *name);

#endif
