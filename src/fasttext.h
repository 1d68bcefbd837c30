/*
 * fasttext.h - fastText supervised models (.bin, format version 12: the
 * format of lid.176.bin and the DCLM quality classifier) loaded and run
 * natively, with predictions equal to those of the `fasttext predict-prob`
 * tool.
 *
 * File layout (little-endian, float32 matrices): magic 793712314, version
 * 12; args (dim, ws, epoch, minCount, neg, wordNgrams, loss, model, bucket,
 * minn, maxn, lrUpdateRate as int32, t as float64); dictionary (size,
 * nwords, nlabels as int32, ntokens, pruneidx_size as int64; `size` entries
 * of NUL-terminated string, int64 count, int8 type; pruneidx_size int32
 * pairs); quant flag (uint8, must be 0: quantized .ftz is refused) and the
 * input matrix (int64 rows, int64 cols, rows*cols floats); qout flag and the
 * output matrix likewise. The loader checks every count against the bytes
 * left before allocating, and that every feature id a prediction can form
 * lies inside the input matrix.
 *
 * What a prediction sees: the text is one "line" as `predict-prob` reads it.
 * Tokens are split on space, \t, \n, \r, \v, \f and NUL (a newline inside the
 * text is a separator, as if replaced by a space: what pipelines such as
 * DCLM feed), then the end-of-line token "</s>" is appended. Features are the
 * in-vocabulary word ids, the character n-grams of "<word>" (minn..maxn code
 * points, FNV-1a hashed into `bucket`), and the word n-grams up to
 * wordNgrams; tokens starting with "__label__" are ignored. Hidden = mean of
 * the feature rows; the loss turns it into probabilities: softmax, hs
 * (hierarchical softmax over fastText's Huffman tree of label counts), or
 * ova / ns (independent sigmoids, from fastText's 512-entry lookup table).
 * Probabilities are reported as fastText prints them: exp(log(p + 1e-5)).
 * A text with no features has no prediction (n = 0), as in the tool. A
 * literal "</s>" token ends the line there (the tool would start a new
 * prediction after it; winnow ignores the rest).
 *
 * Ownership: a wn_ft is read-only after loading and may be shared by
 * threads; each thread passes its own wn_ft_scratch (zeroed before first
 * use, freed with wn_ft_scratch_free). Label strings belong to the model.
 */
#ifndef WN_FASTTEXT_H
#define WN_FASTTEXT_H

#include "wn.h"

typedef struct wn_ft wn_ft;

typedef struct {
    int label;  /* index into the model's labels */
    float prob; /* as printed by predict-prob */
} wn_ft_pred;

/* Per-thread buffers for wn_ft_predict; zero-initialise before first use. */
typedef struct {
    int32_t *feat;
    size_t n_feat, cap_feat;
    int32_t *hash;
    size_t n_hash, cap_hash;
    float *hidden, *out;
    size_t cap_vec;
    char *tok;
    size_t cap_tok;
    int32_t *stack_node;
    float *stack_score;
    size_t cap_stack;
} wn_ft_scratch;

/* Loads a model file. Errors name the file and what is wrong with it. */
wn_err wn_ft_load(wn_ft **out, const char *path, wn_errbuf *err);
/* The same from bytes in memory (`name` is used in messages). */
wn_err wn_ft_parse(wn_ft **out, const void *data, size_t n, const char *name, wn_errbuf *err);
void wn_ft_free(wn_ft *m);

int wn_ft_nlabels(const wn_ft *m);
const char *wn_ft_label(const wn_ft *m, int i);
int wn_ft_dim(const wn_ft *m);

/* Top-k labels of `text` (k >= 1; k larger than the label count is capped),
 * best first, into out[0..*n_out). *n_out = 0 when the text has no feature. */
wn_err wn_ft_predict(const wn_ft *m, wn_ft_scratch *s, const char *text, size_t n, int k,
                     wn_ft_pred *out, int *n_out);
void wn_ft_scratch_free(wn_ft_scratch *s);

#endif
