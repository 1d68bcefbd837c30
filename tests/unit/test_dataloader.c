/*
 * test_dataloader.c - unit tests for dataloader.c on shards written here
 * byte by byte in llm.c's layout (not through shard.c's writer): sequence
 * boundaries and shifted targets, weights from the sidecar, sidecars not
 * taken for shards, shards never crossed, packed-sequence strides from
 * index.json, the shuffled order (a permutation per epoch, seeded), resume
 * from a saved position, token statistics and vocabulary errors.
 */
#include "../test.h"
#include "dataloader.h"
#include "fs.h"
#include "shard.h"

#include <stdlib.h>

static char dir[64];

static void make_dir(void)
{
    snprintf(dir, sizeof dir, "/tmp/wn-dl-XXXXXX");
    if (!mkdtemp(dir)) dir[0] = 0;
}

static void rm_dir(void)
{
    wn_errbuf err;
    wn_rm_tree(dir, &err);
}

/* Writes NAME in llm.c's layout: version 1 (uint16) or 2 (uint32); token i
 * is tok(i). */
static void write_shard(const char *name, int version, uint64_t n, uint32_t (*tok)(uint64_t))
{
    char path[256];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    int32_t h[256] = {WN_SHARD_MAGIC, version, (int32_t)n};
    wn_buf b = {0};
    wn_buf_append(&b, h, sizeof h);
    for (uint64_t i = 0; i < n; i++) {
        uint32_t t = tok(i);
        if (version == 1) { uint16_t s = (uint16_t)t; wn_buf_append(&b, &s, 2); }
        else wn_buf_append(&b, &t, 4);
    }
    wn_errbuf err;
    wn_write_atomic(path, b.p, b.len, &err);
    wn_buf_free(&b);
}

static void write_weights(const char *name, uint64_t n)
{
    char path[256];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    int32_t h[256] = {WN_SHARD_WEIGHTS_MAGIC, 1, (int32_t)n};
    wn_buf b = {0};
    wn_buf_append(&b, h, sizeof h);
    for (uint64_t i = 0; i < n; i++) {
        float w = (float)i * 0.5f;
        wn_buf_append(&b, &w, 4);
    }
    wn_errbuf err;
    wn_write_atomic(path, b.p, b.len, &err);
    wn_buf_free(&b);
}

static uint32_t ident(uint64_t i) { return (uint32_t)i; }
static uint32_t plus1000(uint64_t i) { return (uint32_t)(1000 + i); }
static uint32_t big(uint64_t i) { return (uint32_t)(70000 + i); }

static wn_loader *open_glob(const char *pattern, int T, int shuffle, uint64_t seed, wn_errbuf *err)
{
    char g[256];
    snprintf(g, sizeof g, "%s/%s", dir, pattern);
    wn_loader *l = NULL;
    err->msg[0] = 0;
    if (wn_loader_open(&l, g, T, shuffle, seed, err)) return NULL;
    return l;
}

TEST(dataloader_sequences_targets_weights)
{
    make_dir();
    write_shard("a.bin", 1, 21, ident); /* T = 4: (21 - 1) / 4 = 5 sequences */
    write_weights("a.weights.bin", 21);
    wn_errbuf err;
    wn_loader *l = open_glob("*.bin", 4, 0, 0, &err); /* the glob matches the sidecar too */
    CHECK(l != NULL);
    if (!l) { fprintf(stderr, "  %s\n", err.msg); rm_dir(); return; }
    CHECK_EQ_INT(wn_loader_num_shards(l), 1);
    CHECK_EQ_INT(wn_loader_num_sequences(l), 5);
    CHECK_EQ_INT(wn_loader_num_tokens(l), 21);
    CHECK(wn_loader_has_weights(l));
    uint32_t in[8], tg[8];
    float w[8];
    CHECK_EQ_INT(wn_loader_next(l, 2, in, tg, w), 2);
    for (int j = 0; j < 8; j++) {
        CHECK_EQ_INT(in[j], j);         /* sequence k starts at token k T */
        CHECK_EQ_INT(tg[j], j + 1);     /* targets shifted by one */
        CHECK(w[j] == (float)(j + 1) * 0.5f); /* the target token's weight */
    }
    CHECK_EQ_INT(wn_loader_next(l, 2, in, tg, w), 2);
    CHECK_EQ_INT(in[0], 8);
    CHECK_EQ_INT(wn_loader_next(l, 2, in, tg, w), 1); /* in order: stops at the end */
    CHECK_EQ_INT(in[0], 16);
    CHECK_EQ_INT(tg[3], 20);                          /* the last token is a target */
    CHECK_EQ_INT(wn_loader_next(l, 2, in, tg, w), 0);
    wn_loader_rewind(l);
    CHECK_EQ_INT(wn_loader_next(l, 1, in, tg, NULL), 1);
    CHECK_EQ_INT(in[0], 0);

    uint32_t max_id;
    double H;
    CHECK_EQ_INT(wn_loader_scan(l, 0, &max_id, &H, &err), WN_OK);
    CHECK_EQ_INT(max_id, 20);
    CHECK(H > 4.39 && H < 4.40); /* 21 distinct ids: log2(21) */
    CHECK_EQ_INT(wn_loader_scan(l, 20, &max_id, &H, &err), WN_ERR_INPUT);
    CHECK(strstr(err.msg, "a.bin: token 20 has id 20, outside the model's vocabulary of 20") != NULL);
    wn_loader_free(l);
    rm_dir();
}

TEST(dataloader_shards_not_crossed_no_weights)
{
    make_dir();
    write_shard("s0.bin", 1, 10, ident);     /* (10 - 1) / 4 = 2 sequences */
    write_shard("s1.bin", 2, 13, plus1000);  /* uint32: 3 sequences */
    write_shard("s2.bin", 1, 4, ident);      /* too short for one */
    wn_errbuf err;
    wn_loader *l = open_glob("s*.bin", 4, 0, 0, &err);
    CHECK(l != NULL);
    if (!l) { fprintf(stderr, "  %s\n", err.msg); rm_dir(); return; }
    CHECK_EQ_INT(wn_loader_num_shards(l), 3);
    CHECK_EQ_INT(wn_loader_num_sequences(l), 5);
    CHECK(!wn_loader_has_weights(l));
    uint32_t in[20], tg[20];
    float w[20];
    CHECK_EQ_INT(wn_loader_next(l, 5, in, tg, w), 5);
    CHECK_EQ_INT(in[4], 4);
    CHECK_EQ_INT(tg[7], 8);     /* shard 0's second sequence ends at token 8 */
    CHECK_EQ_INT(in[8], 1000);  /* then shard 1 from its start */
    CHECK_EQ_INT(tg[19], 1012);
    for (int j = 0; j < 20; j++) CHECK(w[j] == 1.0f);
    wn_loader_free(l);

    CHECK(open_glob("none*.bin", 4, 0, 0, &err) == NULL);
    CHECK(strstr(err.msg, "no file matches") != NULL);
    CHECK(open_glob("s2.bin", 4, 0, 0, &err) == NULL);
    CHECK(strstr(err.msg, "none holds a sequence of 5 tokens") != NULL);
    rm_dir();
}

TEST(dataloader_packed_stride_from_index)
{
    make_dir();
    write_shard("p.bin", 1, 30, ident);
    char path[256];
    snprintf(path, sizeof path, "%s/index.json", dir);
    const char *idx = "{\"method\":\"best_fit\",\"seq_len\":9,\"sequence_tokens\":10,\"vocab_size\":4096}";
    wn_errbuf err;
    wn_write_atomic(path, idx, strlen(idx), &err);
    wn_loader *l = open_glob("p.bin", 9, 0, 0, &err);
    CHECK(l != NULL);
    if (!l) { fprintf(stderr, "  %s\n", err.msg); rm_dir(); return; }
    CHECK_EQ_INT(wn_loader_num_sequences(l), 3);
    CHECK_EQ_INT(wn_loader_index_vocab(l), 4096);
    uint32_t in[27], tg[27];
    CHECK_EQ_INT(wn_loader_next(l, 3, in, tg, NULL), 3);
    CHECK_EQ_INT(in[9], 10); /* sequence 1 is the second packed bin */
    CHECK_EQ_INT(tg[17], 19);
    wn_loader_free(l);
    l = open_glob("p.bin", 5, 0, 0, &err); /* a shorter context reads each bin's start */
    CHECK(l && wn_loader_num_sequences(l) == 3);
    if (l) { wn_loader_next(l, 2, in, tg, NULL); CHECK_EQ_INT(in[5], 10); }
    wn_loader_free(l);
    CHECK(open_glob("p.bin", 10, 0, 0, &err) == NULL);
    CHECK(strstr(err.msg, "use --context 9 or less") != NULL);
    rm_dir();
}

TEST(dataloader_shuffle_and_resume)
{
    make_dir();
    write_shard("a.bin", 1, 401, ident); /* T = 4: 100 sequences */
    write_shard("b.bin", 2, 30, big);    /* 7 more, ids over 65,535 */
    wn_errbuf err;
    wn_loader *l = open_glob("*.bin", 4, 1, 42, &err);
    CHECK(l != NULL);
    if (!l) { fprintf(stderr, "  %s\n", err.msg); rm_dir(); return; }
    CHECK_EQ_INT(wn_loader_num_sequences(l), 107);
    /* One epoch visits every sequence once (first input token names it). */
    int seen[107] = {0}, in_order = 1;
    uint32_t in[4 * 107], tg[4 * 107];
    CHECK_EQ_INT(wn_loader_next(l, 107, in, tg, NULL), 107);
    for (int i = 0; i < 107; i++) {
        int q = in[4 * i] >= 70000 ? 100 + (int)(in[4 * i] - 70000) / 4 : (int)in[4 * i] / 4;
        if (q >= 0 && q < 107) seen[q]++;
        if (q != i) in_order = 0;
        CHECK_EQ_INT(tg[4 * i + 3], in[4 * i + 3] + 1);
    }
    for (int i = 0; i < 107; i++) CHECK_EQ_INT(seen[i], 1);
    CHECK(!in_order);
    wn_loader_pos p = wn_loader_tell(l);
    CHECK(p.epoch == 0 && p.next == 107);

    /* Same seed, same order; another seed, another order; a new epoch, a new order. */
    wn_loader *l2 = open_glob("*.bin", 4, 1, 42, &err), *l3 = open_glob("*.bin", 4, 1, 43, &err);
    uint32_t a[4 * 107], b[4 * 107];
    wn_loader_next(l2, 107, a, b, NULL);
    CHECK(!memcmp(a, in, sizeof a));
    wn_loader_next(l3, 107, a, b, NULL);
    CHECK(memcmp(a, in, sizeof a) != 0);
    wn_loader_next(l2, 107, a, b, NULL);
    CHECK(memcmp(a, in, sizeof a) != 0);
    CHECK(wn_loader_tell(l2).epoch == 1 && wn_loader_tell(l2).next == 107);

    /* Resume: batches of 10 run across the epoch boundary; a fresh loader
     * seeked to a saved position continues identically. */
    wn_loader_free(l2);
    l2 = open_glob("*.bin", 4, 1, 42, &err);
    uint32_t x[40], y[40], xs[5][40];
    for (int k = 0; k < 9; k++) wn_loader_next(l2, 10, x, y, NULL);
    wn_loader_pos saved = wn_loader_tell(l2);
    for (int k = 0; k < 5; k++) wn_loader_next(l2, 10, xs[k], y, NULL);
    CHECK(wn_loader_tell(l2).epoch == 1);
    wn_loader_free(l3);
    l3 = open_glob("*.bin", 4, 1, 42, &err);
    CHECK_EQ_INT(wn_loader_seek(l3, saved, &err), WN_OK);
    for (int k = 0; k < 5; k++) {
        wn_loader_next(l3, 10, x, y, NULL);
        CHECK(!memcmp(x, xs[k], sizeof x));
    }
    wn_loader_pos bad = {0, 108};
    CHECK_EQ_INT(wn_loader_seek(l3, bad, &err), WN_ERR_STATE);

    uint32_t max_id;
    double H;
    CHECK_EQ_INT(wn_loader_scan(l3, 0, &max_id, &H, &err), WN_OK);
    CHECK_EQ_INT(max_id, 70029);
    wn_loader_free(l);
    wn_loader_free(l2);
    wn_loader_free(l3);
    rm_dir();
}
