/*
 * sample.c - keeps a deterministic fraction of documents: a document stays
 * when xxh3-64(id, seed) / 2^64 < rate. The decision depends on the id
 * alone, so it is the same whatever the batch, thread count or run.
 */
#include <xxhash.h>

#include "../src/stage.h"

static const wn_param_def params[] = {
    {"rate", WN_P_FLOAT, NULL, 0, 1, NULL, "fraction of documents to keep, in [0, 1]"},
    {"seed", WN_P_INT, "0", 0, 9e18, NULL, "hash seed: another seed keeps another subset"},
};

typedef struct {
    uint64_t threshold; /* keep when hash < threshold; rate 1 keeps all */
    int keep_all;
    uint64_t seed;
} sample;

static wn_err sample_open(wn_stage *st)
{
    sample *s = st->state;
    double rate = wn_param(st, "rate")->f;
    s->keep_all = rate >= 1.0;
    s->threshold = (uint64_t)(rate * 18446744073709551616.0);
    s->seed = (uint64_t)wn_param(st, "seed")->i;
    return WN_OK;
}

static wn_err sample_process(wn_stage *st, wn_batch *b)
{
    const sample *s = st->state;
    if (s->keep_all) return WN_OK;
    for (size_t i = 0; i < b->n; i++) {
        wn_doc *d = &b->docs[i];
        if (XXH3_64bits_withSeed(d->id.p, d->id.len, s->seed) >= s->threshold) d->drop = "sampled_out";
    }
    return WN_OK;
}

const wn_stage_def wn_stage_sample = {
    .name = "sample",
    .summary = "keep a deterministic fraction of documents, chosen by a hash of the id",
    .doc = "A document is kept when xxh3-64(id, seed) / 2^64 < rate, so the choice is stable\n"
           "across runs, thread counts and machines, and nested: with the same seed, the\n"
           "documents kept at rate 0.1 are a subset of those kept at 0.2. Drop reason: sampled_out.",
    .params = params,
    .n_params = WN_ARRAY_LEN(params),
    .state_size = sizeof(sample),
    .open = sample_open,
    .process = sample_process,
};
