/*
 * dataset.h - reading the manifest's named datasets (`datasets:`), the
 * inputs that stages consult but never stream: target sets for reference
 * models, DSIR and gradient targets, pools for proxy models.
 *
 * A dataset is a glob; its files are read in sorted order with the format
 * their names imply (JSONL with the text under "text" and the id under
 * "id", plain text as one document per file, WET, archives). A bad record
 * is an error naming file and line: a dataset is small, curated input, and
 * silently skipping part of it would change what a model learns.
 */
#ifndef WN_DATASET_H
#define WN_DATASET_H

#include "doc.h"
#include "stage.h"

/* The path (glob) of dataset `name` in the run, or NULL when the manifest
 * declares no such dataset. */
const char *wn_run_dataset(const wn_run_info *r, const char *name);

/* Calls fn(ctx, d) for every document of the files matching glob. A non-OK
 * return from fn stops the walk and is returned. No match is an error. */
typedef wn_err (*wn_dataset_fn)(void *ctx, wn_doc *d);
wn_err wn_dataset_each(const char *glob, wn_dataset_fn fn, void *ctx, wn_errbuf *err);

#endif
