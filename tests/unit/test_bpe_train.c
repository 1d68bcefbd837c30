/*
 * test_bpe_train.c - unit tests for bpe_train.c: merges worked out by hand on
 * tiny corpora (ties, overlapping pairs, min_frequency), round trips through
 * the trained tokenizer, determinism under re-training and re-chunking, the
 * vocabulary size and the special tokens, and a tinyshakespeare run
 * (compression; the time is printed, not asserted).
 */
#include "../test.h"
#include "bpe_train.h"

#include <stdlib.h>
#include <time.h>

/* Trains on text fed in chunks that end after each '\n' (lines = 1) or in
 * one call (lines = 0). NULL on failure (the message is printed). */
static wn_tokenizer *train(const char *text, size_t n, int vocab, uint64_t min_freq,
                           const char *const *specials, int n_specials, int lines)
{
    wn_bpe_train_opts o = {.vocab_size = vocab, .min_frequency = min_freq,
                           .specials = specials, .n_specials = n_specials};
    wn_bpe_trainer *tr;
    wn_tokenizer *t = NULL;
    wn_errbuf err = {{0}};
    if (wn_bpe_trainer_new(&tr, &o, &err) != WN_OK) goto fail;
    for (size_t i = 0; i < n;) {
        const char *nl = lines ? memchr(text + i, '\n', n - i) : NULL;
        size_t end = nl ? (size_t)(nl - text) + 1 : n;
        if (wn_bpe_trainer_feed(tr, text + i, end - i) != WN_OK) break;
        i = end;
    }
    if (wn_bpe_trainer_finish(tr, &t, &err) != WN_OK) t = NULL;
    wn_bpe_trainer_free(tr);
    if (!t) goto fail;
    return t;
fail:
    fprintf(stderr, "  train: %s\n", err.msg);
    return NULL;
}

static int n_merges(const wn_tokenizer *t, int n_specials)
{
    return wn_tokenizer_vocab_size(t) - 256 - n_specials;
}

/* Token id's bytes as a C string (static buffer). */
static const char *tok_str(const wn_tokenizer *t, uint32_t id)
{
    static char s[256];
    wn_span sp = wn_tokenizer_token(t, id);
    size_t n = sp.n < sizeof s - 1 ? sp.n : sizeof s - 1;
    memcpy(s, sp.p, n);
    s[n] = 0;
    return s;
}

static int encode(const wn_tokenizer *t, const char *s, size_t n, wn_ids *ids)
{
    wn_tok_ctx *c = wn_tok_ctx_new(t);
    int ok = c && wn_tokenizer_encode(c, s, n, 0, ids) == WN_OK;
    wn_tok_ctx_free(c);
    return ok;
}

/* decode(encode(s)) == s; *ntok gets the token count. */
static int round_trips(const wn_tokenizer *t, const char *s, size_t n, size_t *ntok)
{
    wn_ids ids = {0};
    wn_buf out = {0};
    int ok = encode(t, s, n, &ids) && wn_tokenizer_decode(t, ids.p, ids.n, &out) == WN_OK &&
             out.len == n && memcmp(out.p, s, n) == 0;
    if (ntok) *ntok = ids.n;
    wn_ids_free(&ids);
    wn_buf_free(&out);
    return ok;
}

/* Same vocabulary, token by token (so the same merges in the same order). */
static int same_vocab(const wn_tokenizer *x, const wn_tokenizer *y)
{
    int n = wn_tokenizer_vocab_size(x);
    if (n != wn_tokenizer_vocab_size(y)) return 0;
    for (int i = 0; i < n; i++) {
        wn_span a = wn_tokenizer_token(x, (uint32_t)i), b = wn_tokenizer_token(y, (uint32_t)i);
        if (a.n != b.n || memcmp(a.p, b.p, a.n) != 0) return 0;
    }
    return wn_tokenizer_hash(x) == wn_tokenizer_hash(y);
}

static char *read_file(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *p = malloc((size_t)len + 1);
    *n = fread(p, 1, (size_t)len, f);
    fclose(f);
    return p;
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

TEST(bpe_train_first_merges_by_hand)
{
    /* Pieces: "aaab" x1, " aaab" x2, " ab" x1. Pair counts: (a,a) 6,
     * (a,b) 4, (' ',a) 3 -> a+a first; then "aa a b" x3 and "ab" x1 give
     * (aa,a) 3, (a,b) 4 -> a+b; then (aa,ab) 3 -> aaab; then (' ',aaab) 2.
     * After that every pair is seen once: min_frequency 2 stops. */
    const char *text = "aaab aaab aaab ab";
    wn_tokenizer *t = train(text, strlen(text), 300, 2, NULL, 0, 0);
    CHECK(t != NULL);
    if (!t) return;
    CHECK_EQ_INT(n_merges(t, 0), 4);
    CHECK_EQ_STR(tok_str(t, 256), "aa");
    CHECK_EQ_STR(tok_str(t, 257), "ab");
    CHECK_EQ_STR(tok_str(t, 258), "aaab");
    CHECK_EQ_STR(tok_str(t, 259), " aaab");
    wn_ids ids = {0};
    CHECK(encode(t, text, strlen(text), &ids));
    /* "aaab" " aaab" " aaab" " " "ab" */
    static const uint32_t want[] = {258, 259, 259, 0, 257};
    CHECK_EQ_INT(ids.n, WN_ARRAY_LEN(want));
    for (size_t i = 0; i < ids.n && i < WN_ARRAY_LEN(want); i++) {
        uint32_t w = want[i] == 0 ? wn_tokenizer_byte_id(t, ' ') : want[i];
        CHECK_EQ_INT(ids.p[i], w);
    }
    wn_ids_free(&ids);
    wn_tokenizer_free(t);

    /* min_frequency 1 goes on with the pairs seen once. */
    t = train(text, strlen(text), 300, 1, NULL, 0, 0);
    CHECK(t && n_merges(t, 0) > 4);
    wn_tokenizer_free(t);
}

TEST(bpe_train_overlapping_pairs)
{
    /* "aaaa" x3: (a,a) counts 3 per word (overlapping); merging it gives
     * "XX" (left to right, no overlap), so (X,X) counts 1 per word, not
     * (X,a) or (a,X). Then "aaa" x2 -> "Xa": (X,a) 2 < (X,X) 3. */
    const char *text = "aaaa\naaaa\naaaa\naaa\naaa\n";
    wn_tokenizer *t = train(text, strlen(text), 259, 2, NULL, 0, 0);
    CHECK(t != NULL);
    if (!t) return;
    CHECK_EQ_INT(n_merges(t, 0), 3);
    CHECK_EQ_STR(tok_str(t, 256), "aa");
    CHECK_EQ_STR(tok_str(t, 257), "aaaa");
    CHECK_EQ_STR(tok_str(t, 258), "aaa");
    size_t ntok;
    CHECK(round_trips(t, text, strlen(text), &ntok));
    /* "aaaa" x3 + "aaa" x2 + "\n" x5 */
    CHECK_EQ_INT(ntok, 10);
    wn_tokenizer_free(t);
}

TEST(bpe_train_ties_go_to_the_smaller_pair)
{
    /* Pieces "xy", " pq", " xy", " pq": (x,y), (' ',p) and (p,q) are all
     * seen twice. In GPT-2 order letters keep their ASCII order and the
     * space comes after all printable Latin-1 (id 220), so (p,q) goes
     * first; then (x,y) = (87,88) beats (' ',pq) = (220,256). */
    const char *text = "xy pq xy pq";
    wn_tokenizer *t = train(text, strlen(text), 258, 2, NULL, 0, 0);
    CHECK(t != NULL);
    if (!t) return;
    CHECK_EQ_INT(wn_tokenizer_byte_id(t, ' '), 220);
    CHECK_EQ_INT(n_merges(t, 0), 2);
    CHECK_EQ_STR(tok_str(t, 256), "pq");
    CHECK_EQ_STR(tok_str(t, 257), "xy");
    wn_tokenizer_free(t);
}

static const char corpus[] =
    "First Citizen:\nBefore we proceed any further, hear me speak.\n\n"
    "All:\nSpeak, speak.\n\nFirst Citizen:\nYou are all resolved rather to die than to famish?\n\n"
    "All:\nResolved. resolved.\n\nFirst Citizen:\nFirst, you know Caius Marcius is chief enemy to the people.\n"
    "caf\xc3\xa9 na\xc3\xafve \xe2\x82\xac" "42 1234567 \xf0\x9f\x98\x80\xf0\x9f\x98\x80  tabs\t\tand   spaces  \n"
    "it's we'll they're I'd  \xff\xfe bad bytes \xc3(\n";

TEST(bpe_train_round_trip)
{
    size_t n = sizeof corpus - 1;
    wn_tokenizer *t = train(corpus, n, 400, 2, NULL, 0, 0);
    CHECK(t != NULL);
    if (!t) return;
    size_t ntok;
    CHECK(n_merges(t, 0) > 10);
    CHECK(round_trips(t, corpus, n, &ntok));
    CHECK(ntok < n);
    /* Text it was not trained on round-trips too. */
    const char *other = "Zebras \xe4\xb8\xad\xe6\x96\x87 run\r\n\x01\x02";
    CHECK(round_trips(t, other, strlen(other), NULL));
    wn_tokenizer_free(t);
}

TEST(bpe_train_deterministic)
{
    size_t n = sizeof corpus - 1;
    wn_tokenizer *a = train(corpus, n, 330, 1, NULL, 0, 0);
    wn_tokenizer *b = train(corpus, n, 330, 1, NULL, 0, 0);
    wn_tokenizer *c = train(corpus, n, 330, 1, NULL, 0, 1); /* per line */
    CHECK(a && b && c);
    if (a && b && c) {
        CHECK(same_vocab(a, b));
        CHECK(same_vocab(a, c));
    }
    wn_tokenizer_free(a);
    wn_tokenizer_free(b);
    wn_tokenizer_free(c);

    /* Feed order does not matter either: the lines reversed. */
    char *rev = malloc(n + 1);
    size_t o = 0, end = n;
    while (end > 0) {
        size_t start = end - 1;
        while (start > 0 && corpus[start - 1] != '\n') start--;
        memcpy(rev + o, corpus + start, end - start);
        o += end - start;
        end = start;
    }
    a = train(corpus, n, 330, 1, NULL, 0, 1);
    b = train(rev, n, 330, 1, NULL, 0, 1);
    CHECK(a && b && same_vocab(a, b));
    wn_tokenizer_free(a);
    wn_tokenizer_free(b);
    free(rev);
}

TEST(bpe_train_vocab_size_and_specials)
{
    static const char *const specials[] = {"<|endoftext|>", "<|pad|>"};
    size_t n = sizeof corpus - 1;
    wn_tokenizer *t = train(corpus, n, 300, 1, specials, 2, 0);
    CHECK(t != NULL);
    if (!t) return;
    CHECK_EQ_INT(wn_tokenizer_vocab_size(t), 300);
    CHECK_EQ_INT(wn_tokenizer_special(t, "<|endoftext|>"), 298);
    CHECK_EQ_INT(wn_tokenizer_special(t, "<|pad|>"), 299);
    CHECK_EQ_STR(tok_str(t, 299), "<|pad|>");
    CHECK(round_trips(t, corpus, n, NULL));
    wn_tokenizer_free(t);

    /* No merges at all: 256 + specials. */
    t = train(corpus, n, 258, 1, specials, 2, 0);
    CHECK(t && wn_tokenizer_vocab_size(t) == 258);
    wn_tokenizer_free(t);

    /* A poor corpus stops early: one distinct pair. */
    t = train("ab ab", 5, 1000, 2, specials, 1, 0);
    CHECK(t && wn_tokenizer_vocab_size(t) == 256 + 1 + 1);
    wn_tokenizer_free(t);

    /* An empty corpus, and one of single bytes and invalid UTF-8 only. */
    t = train("", 0, 1000, 1, specials, 1, 0);
    CHECK(t && wn_tokenizer_vocab_size(t) == 257);
    wn_tokenizer_free(t);
    t = train("a b\n\xff\xfe\xff\xfe", 8, 1000, 1, NULL, 0, 0);
    CHECK(t && wn_tokenizer_vocab_size(t) > 256 && round_trips(t, "\xff\xfe", 2, NULL));
    wn_tokenizer_free(t);

    /* Too small a vocabulary is a usage error. */
    wn_bpe_train_opts o = {.vocab_size = 256, .specials = specials, .n_specials = 1};
    wn_bpe_trainer *tr = (wn_bpe_trainer *)1;
    wn_errbuf err = {{0}};
    CHECK_EQ_INT(wn_bpe_trainer_new(&tr, &o, &err), WN_ERR_USAGE);
    CHECK(tr == NULL);
    CHECK(strstr(err.msg, "vocab size") != NULL);
}

TEST(bpe_train_counts_words)
{
    wn_bpe_train_opts o = {.vocab_size = 300};
    wn_bpe_trainer *tr;
    wn_errbuf err;
    CHECK_EQ_INT(wn_bpe_trainer_new(&tr, &o, &err), WN_OK);
    CHECK_EQ_INT(wn_bpe_trainer_feed(tr, "the cat the cat\n", 16), WN_OK);
    CHECK_EQ_INT(wn_bpe_trainer_feed(tr, "the dog", 7), WN_OK);
    /* "the" " cat" " the" "\n" " dog" */
    CHECK_EQ_INT(wn_bpe_trainer_words(tr), 5);
    CHECK_EQ_INT(wn_bpe_trainer_bytes(tr), 23);
    wn_bpe_trainer_free(tr);
}

TEST(bpe_train_out_of_memory)
{
    /* Every allocation failing in turn ends in an error, never a crash or
     * a leak; k grows until no allocation fails. */
    size_t n = sizeof corpus - 1;
    int failures = 0, ok = 0;
    for (long k = 0; k < 20000 && !ok; k++) {
        wn_bpe_train_opts o = {.vocab_size = 320};
        wn_bpe_trainer *tr = NULL;
        wn_tokenizer *t = NULL;
        wn_errbuf err;
        wn_alloc_fail_after(k);
        wn_err e = wn_bpe_trainer_new(&tr, &o, &err);
        if (e == WN_OK) e = wn_bpe_trainer_feed(tr, corpus, n);
        if (e == WN_OK) e = wn_bpe_trainer_finish(tr, &t, &err);
        wn_alloc_fail_after(-1);
        failures += e != WN_OK;
        ok = e == WN_OK;
        CHECK(ok == (t != NULL));
        wn_tokenizer_free(t);
        wn_bpe_trainer_free(tr);
    }
    CHECK(ok);
    CHECK(failures > 10);
}

TEST(bpe_train_tinyshakespeare)
{
    const char *shared = wn_test_shared_dir();
    if (!shared) SKIP("no ../shared");
    char path[4096];
    snprintf(path, sizeof path, "%s/corpora/text/tinyshakespeare/input.txt", shared);
    size_t n;
    char *text = read_file(path, &n);
    if (!text) SKIP("no tinyshakespeare");
    static const char *const specials[] = {"<|endoftext|>"};
    double t0 = now();
    wn_tokenizer *t = train(text, n, 1000, 2, specials, 1, 1);
    double dt = now() - t0;
    CHECK(t != NULL);
    if (t) {
        CHECK_EQ_INT(wn_tokenizer_vocab_size(t), 1000);
        size_t ntok;
        CHECK(round_trips(t, text, n, &ntok));
        fprintf(stderr, "  tinyshakespeare: vocab 1000 trained in %.2f s, %zu bytes -> %zu tokens (%.3f/byte)\n",
                dt, n, ntok, (double)ntok / (double)n);
        /* HF tokenizers' BpeTrainer, same settings: 462884 tokens, 0.415/byte. */
        CHECK((double)ntok < 0.45 * (double)n);
    }
    wn_tokenizer_free(t);
    free(text);
}
