/*
 * safetensors.h - model checkpoints in HF's safetensors format, with HF
 * GPT-2 tensor names, so winnow checkpoints load in transformers and GPT-2
 * checkpoints from elsewhere load in winnow.
 *
 * The format (docs/formats in README "Training"): a little-endian uint64 N,
 * then N bytes of JSON header, then the data section. The header is an
 * object: one member per tensor, {"dtype": "F32", "shape": [d0, ...],
 * "data_offsets": [begin, end]} with byte offsets relative to the data
 * section, plus an optional "__metadata__" object of string values. Writers
 * pad the header with spaces to a multiple of 8 bytes (so the data is
 * aligned) and list tensors sorted by name, data in the same order, as HF's
 * writer does for tensors of one dtype.
 *
 * winnow writes the model's tensors under model.h's names (no "transformer."
 * prefix, like the hub's gpt2 model.safetensors), float32, with metadata
 * {"format": "pt", "winnow_config": "{\"vocab\":..,\"context\":..,\"layers\":..,
 * \"heads\":..,\"dim\":..}"} plus any extra pairs the caller gives.
 *
 * Reading accepts names with a "transformer." prefix, ignores the
 * attention-mask buffers h.N.attn.bias / h.N.attn.masked_bias and an
 * lm_head.weight shaped like wte.weight (GPT-2 ties them), converts F16, BF16
 * and F64 to float32, and takes the configuration from winnow_config or, when
 * that is absent, from the shapes: V and C from wte, maxT from wpe, L from the
 * h.N blocks, heads from the metadata ("n_head"), else the caller's hint,
 * else C / 64 (every OpenAI GPT-2 size uses 64-wide heads).
 *
 * Ownership: a wn_st_file borrows nothing after wn_st_open (it maps the
 * file); wn_st_parse borrows the caller's bytes for the life of the struct.
 */
#ifndef WN_SAFETENSORS_H
#define WN_SAFETENSORS_H

#include "model.h"
#include "wn.h"

#define WN_ST_MAX_HEADER 100000000u /* HF's limit on the header length */
#define WN_ST_MAX_DIMS 8

typedef struct {
    char name[128];
    char dtype[12];  /* "F32", "BF16", ... */
    int dtype_bytes; /* bytes per element */
    int ndim;
    int64_t shape[WN_ST_MAX_DIMS];
    uint64_t begin, end; /* byte range in the data section */
} wn_st_entry;

typedef struct {
    char path[4096];      /* for messages */
    wn_st_entry *t;       /* sorted by name */
    int n;
    const uint8_t *data;  /* data section */
    uint64_t data_len;
    wn_buf meta;          /* raw "__metadata__" object, or empty */
    void *map;            /* wn_st_open's mapping */
    size_t map_len;
} wn_st_file;

/* Parses a whole safetensors file held in memory (p, n). `path` names it in
 * messages. Checks the header length against the size, the header JSON,
 * dtypes, shapes and offsets (every tensor inside the data section, its
 * length = elements x dtype size), and duplicate names. */
wn_err wn_st_parse(wn_st_file *f, const uint8_t *p, size_t n, const char *path, wn_errbuf *err);
/* Maps the file read-only and parses it. */
wn_err wn_st_open(wn_st_file *f, const char *path, wn_errbuf *err);
void wn_st_close(wn_st_file *f);
const wn_st_entry *wn_st_find(const wn_st_file *f, const char *name);
/* Decodes metadata string `key` into out (cleared first); returns 1 when found. */
int wn_st_meta(const wn_st_file *f, const char *key, wn_buf *out);

/* The GPT configuration a parsed file holds (see the inference rules above;
 * heads_hint 0 = none), after checking that every parameter tensor is there
 * with its exact shape and a float dtype, and that nothing else is. */
wn_err wn_st_gpt_config(const wn_st_file *f, int heads_hint, wn_gpt_config *cfg, wn_errbuf *err);
/* A new model with the file's parameters. */
wn_err wn_st_gpt_load(wn_gpt **m, const wn_st_file *f, int heads_hint, wn_errbuf *err);

/* Byte sink for the writers: returns 0 on success. */
typedef int (*wn_st_sink)(void *arg, const void *p, size_t n);
/* One tensor for wn_st_write: name, dtype (a name of the table in
 * safetensors.c: "F32", "U8", ...), shape, and its data (borrowed;
 * elements x the dtype's size bytes, little-endian). */
typedef struct {
    const char *name, *dtype;
    int ndim;
    int64_t shape[WN_ST_MAX_DIMS];
    const void *data;
} wn_st_out;
/* Writes any tensors as safetensors to a sink: tensors sorted by name, data
 * in that order, header padded with spaces to 8 bytes; meta: n_meta (key,
 * value) string pairs, in this order, as "__metadata__" (left out when
 * n_meta is 0). WN_ERR_USAGE for an unknown dtype. */
wn_err wn_st_write(const wn_st_out *t, int n, const char *const *meta, int n_meta, wn_st_sink sink, void *arg,
                   wn_errbuf *err);
/* Writes the model as safetensors to a sink. meta: n_meta (key, value)
 * string pairs added after "format" and "winnow_config". */
wn_err wn_st_gpt_write(wn_gpt *m, const char *const *meta, int n_meta, wn_st_sink sink, void *arg,
                       wn_errbuf *err);
/* Writes path atomically (path.tmp, fsync, rename). */
wn_err wn_st_gpt_save(wn_gpt *m, const char *path, const char *const *meta, int n_meta, wn_errbuf *err);
/* Opens, loads and closes: the common case. */
wn_err wn_st_gpt_load_file(wn_gpt **m, const char *path, int heads_hint, wn_errbuf *err);

#endif
