/*
 * dsir.h - DSIR (Xie et al., NeurIPS 2023; p-lambda/dsir) hashed n-gram
 * importance weights: bucket counts over document sets, the log-ratio model
 * fitted from a target and a raw count vector, per-document log weights, and
 * a small file format to cache counts in a run directory.
 *
 * Features. The text is lowercased code point by code point (utf8proc's
 * simple lowercase mapping) and split like NLTK's WordPunctTokenizer, i.e.
 * Python's re.findall(r"\w+|[^\w\s]+", text.lower()) on a str:
 *   \w = general categories L* (Lu Ll Lt Lm Lo) and N* (Nd Nl No), and '_'.
 *        This is exactly CPython's str-pattern \w (isalnum() or '_'); note
 *        that combining marks (Mn Mc Me) are NOT word characters there, so
 *        "e\u0301" gives the tokens "e" and "\u0301", and Devanagari vowel
 *        signs split words, as they do in p-lambda/dsir. Superscripts, vulgar
 *        fractions and Roman numerals (No, Nl) are word characters.
 *   \s = Unicode White_Space plus U+001C..U+001F (CPython's str.isspace()).
 *   A token is a maximal run of \w, or a maximal run of characters that are
 *   neither \w nor \s.
 * Features are every token (unigram) and every pair of adjacent tokens
 * (bigram, the two tokens joined by one ' '). A feature goes to bucket
 * XXH3_64bits(its UTF-8 bytes, seed 0) % m. A document's feature vector
 * h(x) in N^m counts its features per bucket; its word count is the number
 * of tokens (a document of T >= 1 tokens has T + T - 1 features).
 *
 * Model. From a target count vector c_t and a raw count vector c_r (same m)
 * and a pseudo-count `laplace` >= 0:
 *   p_j = (c_t,j + laplace) / sum_k (c_t,k + laplace)
 *   q_j = (c_r,j + laplace) / sum_k (c_r,k + laplace)
 *   r_j = log(p_j + 1e-8) - log(q_j + 1e-8)
 * and a document's log importance weight is log w(x) = sum_j h_j(x) r_j,
 * accumulated feature by feature in text order (each token's unigram, then
 * its bigram with the previous token). An empty or all-space text has
 * weight 0 and 0 words.
 *
 * Where this differs from p-lambda/dsir (data_selection/hashed_ngram_dsir.py):
 *   - Hash: int(sha256(utf8).hexdigest(), 16) % m there, XXH3-64 % m here
 *     (sha256 of every feature dominates the reference's cost). Bucket ids,
 *     hence counts files and weights, are not interchangeable with theirs;
 *     the statistics are those of another random hash.
 *   - Smoothing: the reference adds its pseudo-count to the target counts
 *     only (target_laplace_smoothing, default 0); here `laplace` is added to
 *     both. laplace = 0 is the reference's default exactly.
 *   - Lowercasing: Python's str.lower() uses full case mappings and the
 *     Final_Sigma rule; utf8proc's simple mapping differs on U+0130 'İ'
 *     ("i" here, "i\u0307" there, which Python then splits into "i" and a
 *     mark token) and on a word-final capital sigma ('σ' here, 'ς' there).
 *     The character tables are utf8proc's Unicode version, not Python's.
 *   - Invalid UTF-8 (Python would have refused to decode it): each invalid
 *     byte is one non-word, non-space character, hashed as its raw byte.
 *   - The word count is returned as counted; the reference recovers it from
 *     the features as (sum h + 1) // 2, which is the same number.
 *   - Counts are exact uint64 (not float) and weights are summed in text
 *     order rather than as a dot product over buckets, so weights can
 *     differ from a numpy evaluation in the last bits.
 *
 * Counts file (little-endian, 48-byte header then m uint64 counts):
 *   0  char[8] magic "WNDSIRC\0"      24 uint64 docs
 *   8  uint32  version (1)            32 uint64 words (tokens over all docs)
 *   12 uint32  features (1 = the ones above)
 *   16 uint64  m                      40 uint64 checksum
 * checksum = XXH3_64bits_withSeed(counts bytes, seed = XXH3_64bits(header
 * bytes 0..40)), so a flipped byte anywhere is reported as corruption. The
 * reader checks magic, version, features, m and the exact file size before
 * trusting anything, then the checksum.
 *
 * Threads: a wn_dsir_model is read-only after wn_dsir_model_init and may be
 * shared; each thread passes its own wn_dsir_scratch. Results do not depend
 * on the thread count (a document's weight depends only on the document and
 * the model; counts are integers, so merging in any order gives the same
 * vector).
 *
 * Ownership: counts and models own their arrays (free with their _free,
 * which accept zeroed or freed structs). A scratch is zero-initialised before
 * first use, starts at 4 KiB, grows only when two adjacent tokens do not fit
 * (to a power of two times 4 KiB), keeps its size from document to document,
 * and is freed with wn_dsir_scratch_free. Texts are borrowed for the call;
 * text may be NULL when n is 0.
 */
#ifndef WN_DSIR_H
#define WN_DSIR_H

#include "wn.h"

#define WN_DSIR_BUCKETS 10000            /* p-lambda's num_buckets */
#define WN_DSIR_MAX_BUCKETS (1ull << 30) /* a sanity bound for m */
#define WN_DSIR_FEATURES 1               /* featurization id in counts files */

/* Bucket counts of the features of a set of documents. */
typedef struct {
    uint64_t m;     /* buckets */
    uint64_t docs;  /* documents added */
    uint64_t words; /* tokens over those documents */
    uint64_t *c;    /* c[m] feature counts per bucket */
} wn_dsir_counts;

/* Per-thread buffer for the lowercased current and previous token. */
typedef struct {
    char *buf;
    size_t cap;
} wn_dsir_scratch;

/* The fitted log ratios. */
typedef struct {
    uint64_t m;
    double laplace;
    double *r; /* r[m] = log(p_j + 1e-8) - log(q_j + 1e-8) */
} wn_dsir_model;

void wn_dsir_scratch_free(wn_dsir_scratch *s);

/* Zeroed counts with m buckets (1 <= m <= WN_DSIR_MAX_BUCKETS). */
wn_err wn_dsir_counts_init(wn_dsir_counts *c, uint64_t m, wn_errbuf *err);
/* Adds the features of one document and counts it in docs and words;
 * *words (optional) gets its tokens. On WN_ERR_NOMEM (the scratch could not
 * grow) the counts hold part of the document: discard them. */
wn_err wn_dsir_counts_add_text(wn_dsir_counts *c, const char *text, size_t n, wn_dsir_scratch *s,
                               uint64_t *words, wn_errbuf *err);
/* dst += src (bucket counts, docs and words); both must have the same m. */
wn_err wn_dsir_counts_merge(wn_dsir_counts *dst, const wn_dsir_counts *src, wn_errbuf *err);
void wn_dsir_counts_free(wn_dsir_counts *c);

/* The counts file described above. save writes atomically (fs.h). load
 * fills a fresh *c (freed on error); parse does the same from memory, with
 * `name` used in messages. Errors: WN_ERR_IO (open/read/write),
 * WN_ERR_INPUT (not a counts file, other version or features, truncated,
 * wrong size, checksum mismatch), WN_ERR_NOMEM. */
wn_err wn_dsir_counts_save(const wn_dsir_counts *c, const char *path, wn_errbuf *err);
wn_err wn_dsir_counts_load(wn_dsir_counts *c, const char *path, wn_errbuf *err);
wn_err wn_dsir_counts_parse(wn_dsir_counts *c, const void *data, size_t n, const char *name,
                            wn_errbuf *err);

/* Fits r from target and raw counts (same m; laplace finite and >= 0; each
 * smoothed total must be > 0). */
wn_err wn_dsir_model_init(wn_dsir_model *mdl, const wn_dsir_counts *target, const wn_dsir_counts *raw,
                          double laplace, wn_errbuf *err);
void wn_dsir_model_free(wn_dsir_model *mdl);

/* log w(text) into *logw and its token count into *words (optional). Fails
 * only when the scratch cannot grow (WN_ERR_NOMEM). */
wn_err wn_dsir_logweight(const wn_dsir_model *mdl, const char *text, size_t n, wn_dsir_scratch *s,
                         double *logw, uint64_t *words, wn_errbuf *err);

#endif
