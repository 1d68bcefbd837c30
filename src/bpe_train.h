/*
 * bpe_train.h - trains a byte-level BPE tokenizer (`winnow tokenizer train`).
 *
 * The corpus is streamed through feed(), which cuts it into pre-tokenization
 * pieces and counts the distinct ones; memory grows with the number of
 * distinct pieces, not with the corpus. finish() learns the merges and
 * returns a tokenizer built by wn_tokenizer_build: ids 0..255 are the bytes
 * in GPT-2 order, merge i creates id 256 + i, the specials follow.
 *
 * The merges are those of HF tokenizers' BpeTrainer with a ByteLevel
 * pre-tokenizer and the full byte alphabet: the most frequent adjacent pair
 * (counted over pieces, weighted by piece counts) is merged first, ties go to
 * the smaller (a, b) pair of ids, and a pair seen fewer than min_frequency
 * times is never merged. The result depends only on the multiset of pieces:
 * not on chunking, feed order or hash-table layout.
 *
 * Ownership: feed() copies what it keeps; finish() may be called once and
 * gives the caller the tokenizer (wn_tokenizer_free). The trainer is not
 * thread-safe.
 */
#ifndef WN_BPE_TRAIN_H
#define WN_BPE_TRAIN_H

#include "tokenizer.h"

typedef struct {
    wn_pretok pretok;            /* pre-tokenization pattern (WN_PRETOK_GPT2 default) */
    const char *pattern;         /* for WN_PRETOK_CUSTOM */
    int vocab_size;              /* total, including the 256 byte tokens and the specials */
    uint64_t min_frequency;      /* a pair seen fewer times is never merged; 0 means the default, 2 */
    const char *const *specials; /* e.g. {"<|endoftext|>"}; appended after the merges */
    int n_specials;
} wn_bpe_train_opts;

typedef struct wn_bpe_trainer wn_bpe_trainer;

/* vocab_size must be at least 256 + n_specials. */
wn_err wn_bpe_trainer_new(wn_bpe_trainer **tr, const wn_bpe_train_opts *o, wn_errbuf *err);

/* Counts the pieces of text[0..n). Text is cut into pieces within one call
 * only, so a chunk must end where a piece may end (at a line end, say, or a
 * document end); the same text in other chunks then counts the same. Special
 * tokens are not split out: their texts count as ordinary text, as in HF.
 * Fails only on out-of-memory (or a regex failure), after which the trainer
 * may only be freed. */
wn_err wn_bpe_trainer_feed(wn_bpe_trainer *tr, const char *text, size_t n);

/* Learns the merges (at most vocab_size - 256 - n_specials of them; fewer
 * when no pair reaches min_frequency) and builds the tokenizer. Frees the
 * piece counts; the trainer may only be freed afterwards. */
wn_err wn_bpe_trainer_finish(wn_bpe_trainer *tr, wn_tokenizer **out, wn_errbuf *err);

uint64_t wn_bpe_trainer_words(const wn_bpe_trainer *tr); /* distinct pieces seen */
uint64_t wn_bpe_trainer_bytes(const wn_bpe_trainer *tr); /* bytes fed */
void wn_bpe_trainer_free(wn_bpe_trainer *tr);

#endif
