/*
 * dataloader.h - training and validation batches from token shards.
 *
 * A loader reads every shard matching a glob (sorted by name; files named
 * *.weights.bin, *.docs.bin and *.tmp are sidecars or unfinished, not
 * shards), through shard.h: llm.c .bin files from anywhere, winnow's uint32
 * variant, and the per-token weight sidecar when one is beside a shard.
 *
 * Sequences. A sequence is T + 1 contiguous tokens of one shard: inputs are
 * the first T, targets the next T (shifted by one), and each target carries
 * the weight of its token in the weights sidecar (1 without one). Sequences
 * never cross shards. In a plain token stream (llm.c's layout, pack's
 * `concat`) sequence k of a shard starts at token k T, so consecutive
 * sequences share one token and every token after the first is a target
 * exactly once; a shard of n tokens holds (n - 1) / T sequences. When the
 * shard's directory has an index.json with "sequence_tokens": S > 0 (pack's
 * `best_fit`: documents packed into sequences of exactly S tokens), sequence
 * k starts at k S instead, so a sequence never straddles two packed bins; T +
 * 1 must then be at most S.
 *
 * Order. Sequences are numbered across shards in glob order. A training
 * loader (shuffle = 1) visits them in a fresh permutation each epoch:
 * Fisher-Yates over all sequence numbers driven by splitmix64 seeded with
 * (seed, epoch), so the order depends on the seed, the epoch and the data
 * alone. A batch takes the next B sequences and runs on into the next
 * epoch when this one ends. A validation loader (shuffle = 0) reads sequences
 * in order and stops at the end.
 *
 * Position. (epoch, next) says where the loader is; restoring it with
 * wn_loader_seek continues exactly where a saved run stopped.
 *
 * Ownership: the loader maps the shards and owns everything it allocates;
 * batch buffers are the caller's.
 */
#ifndef WN_DATALOADER_H
#define WN_DATALOADER_H

#include "wn.h"

typedef struct wn_loader wn_loader;

typedef struct {
    uint64_t epoch; /* completed passes over the data */
    uint64_t next;  /* index of the next sequence in this epoch's order */
} wn_loader_pos;

/* Opens the shards matching pattern (a glob) for sequences of T + 1 tokens.
 * Fails when nothing matches, a shard is bad, or no shard holds a sequence. */
wn_err wn_loader_open(wn_loader **l, const char *pattern, int T, int shuffle, uint64_t seed, wn_errbuf *err);
void wn_loader_free(wn_loader *l);

int wn_loader_num_shards(const wn_loader *l);
const char *wn_loader_shard_path(const wn_loader *l, int i);
uint64_t wn_loader_num_tokens(const wn_loader *l);    /* in all shards */
uint64_t wn_loader_num_sequences(const wn_loader *l);
int wn_loader_has_weights(const wn_loader *l);         /* any weights sidecar */
/* "vocab_size" of the shards' index.json (the first one found), or 0. */
int wn_loader_index_vocab(const wn_loader *l);

/* Fills up to B sequences: inputs and targets (B x T token ids) and weights
 * (B x T, may be NULL). A shuffling loader always fills B (wrapping into the
 * next epoch); an in-order loader stops at the end of the data and returns
 * how many it filled (0 at the end). */
int wn_loader_next(wn_loader *l, int B, uint32_t *inputs, uint32_t *targets, float *weights);
wn_loader_pos wn_loader_tell(const wn_loader *l);
/* Restores a position; WN_ERR_STATE when it is outside the data. */
wn_err wn_loader_seek(wn_loader *l, wn_loader_pos pos, wn_errbuf *err);
void wn_loader_rewind(wn_loader *l);

/* One pass over every token: the largest id, and the unigram entropy of the
 * ids in bits. When vocab > 0, an id >= vocab is an error naming the shard and
 * the token's index. */
wn_err wn_loader_scan(const wn_loader *l, uint32_t vocab, uint32_t *max_id, double *entropy_bits, wn_errbuf *err);

#endif
