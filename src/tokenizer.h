/*
 * tokenizer.h - byte-level BPE, identical to GPT-2 / tiktoken / HF tokenizers.
 *
 * Encoding: special tokens are split out first (when allowed), the text is
 * cut into pieces by a pre-tokenization regex (PCRE2, JIT, UTF + UCP), each
 * piece's UTF-8 bytes start as byte tokens and the adjacent pair with the
 * lowest merge rank is merged (leftmost on ties) until no pair has a merge.
 * Merges never cross pieces. Bytes that are not valid UTF-8 never match the
 * regex; each run of them is a piece of its own, so any byte string encodes
 * and decode(encode(x)) == x.
 *
 * Vocabulary layout of tokenizers winnow trains: ids 0..255 are the 256
 * bytes in GPT-2's order (printable Latin-1 first, as in encoder.json), then
 * one id per merge in rank order, then the special tokens.
 *
 * Ownership and threads: a wn_tokenizer is immutable once built and may be
 * shared by threads; each thread encodes with its own wn_tok_ctx (regex
 * match data, merge scratch, a piece cache).
 */
#ifndef WN_TOKENIZER_H
#define WN_TOKENIZER_H

#include "wn.h"

/* The pre-tokenization patterns (selection.md §C4). \s and \S are written as
 * Unicode White_Space classes, as Rust's regex and Oniguruma read them. */
typedef enum { WN_PRETOK_GPT2, WN_PRETOK_CL100K, WN_PRETOK_CUSTOM } wn_pretok;
const char *wn_pretok_name(wn_pretok p); /* "gpt2", "cl100k" */
int wn_pretok_from_name(const char *name, wn_pretok *p);

typedef struct wn_tokenizer wn_tokenizer;
typedef struct wn_tok_ctx wn_tok_ctx;

/* A merge: tokens a and b (ids) become id `id`, with priority `rank`
 * (lower merges first). */
typedef struct {
    uint32_t a, b, id, rank;
} wn_bpe_merge;

/* Loads a tokenizer: PATH is an HF tokenizer.json (byte-level BPE), or a
 * directory holding GPT-2's encoder.json + vocab.bpe. */
wn_err wn_tokenizer_load(wn_tokenizer **t, const char *path, wn_errbuf *err);

/* Builds a tokenizer from merges over the 256 byte tokens (ids 0..255 in
 * GPT-2 byte order; merge i creates id 256 + i with rank i) plus special
 * tokens appended after them. Used by the trainer. pattern is used when
 * pretok is WN_PRETOK_CUSTOM. */
wn_err wn_tokenizer_build(wn_tokenizer **t, wn_pretok pretok, const char *pattern,
                          const uint32_t (*pairs)[2], size_t n_merges,
                          const char *const *specials, int n_specials, wn_errbuf *err);

/* Writes HF tokenizer.json (loads in HF `tokenizers`). */
wn_err wn_tokenizer_save(const wn_tokenizer *t, const char *path, wn_errbuf *err);
void wn_tokenizer_free(wn_tokenizer *t);

int wn_tokenizer_vocab_size(const wn_tokenizer *t);
/* id of a special token by its text, or -1 */
int64_t wn_tokenizer_special(const wn_tokenizer *t, const char *text);
/* The bytes of token id (a special token's text for specials). */
wn_span wn_tokenizer_token(const wn_tokenizer *t, uint32_t id);
/* The id of single byte b. */
uint32_t wn_tokenizer_byte_id(const wn_tokenizer *t, unsigned char b);
/* xxh3-64 of the vocabulary, merges, specials and pattern: names the
 * tokenizer in shard indexes. */
uint64_t wn_tokenizer_hash(const wn_tokenizer *t);
wn_pretok wn_tokenizer_pretok(const wn_tokenizer *t);

wn_tok_ctx *wn_tok_ctx_new(const wn_tokenizer *t);
void wn_tok_ctx_free(wn_tok_ctx *c);

/* Appends the ids of s[0..n) to out. With allow_special, exact occurrences
 * of special-token texts become their ids; otherwise they are ordinary text. */
wn_err wn_tokenizer_encode(wn_tok_ctx *c, const char *s, size_t n, int allow_special, wn_ids *out);

/* Appends the bytes of ids to out. Unknown ids are an error. */
wn_err wn_tokenizer_decode(const wn_tokenizer *t, const uint32_t *ids, size_t n, wn_buf *out);

/* Pre-tokenization alone (the trainer counts pieces): calls fn for each
 * piece of s[0..n) in order, as encode would cut it (no special tokens). */
typedef void (*wn_piece_fn)(void *arg, const char *piece, size_t n);
wn_err wn_tokenizer_pieces(wn_tok_ctx *c, const char *s, size_t n, wn_piece_fn fn, void *arg);

/* GPT-2's printable form of a byte (bytes_to_unicode), and back. */
int32_t wn_bpe_byte_to_char(unsigned char b);
int wn_bpe_char_to_byte(int32_t c); /* -1 when c is not in the table */
/* The byte whose token has id i in the 0..255 byte block (GPT-2 order). */
unsigned char wn_bpe_byte_of_rank(int i);

#endif
