/*
 * test_shard.c - llm.c token shards and sidecars: write/read round trips,
 * resume by truncation, and the reader's checks on damaged files.
 */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../test.h"
#include "fs.h"
#include "shard.h"

TEST(shard_round_trip_uint16_and_uint32)
{
    char dir[] = "/tmp/wn-shard-XXXXXX", path[128];
    CHECK(mkdtemp(dir) != NULL);
    for (int tb = 2; tb <= 4; tb += 2) {
        snprintf(path, sizeof path, "%s/s%d.bin", dir, tb);
        wn_shard_writer w;
        wn_errbuf err;
        uint32_t toks[1000];
        for (int i = 0; i < 1000; i++) toks[i] = (uint32_t)(i * 7919u) % (tb == 2 ? 65536u : 1000000u);
        CHECK(wn_shard_writer_open(&w, path, tb, 0, &err) == WN_OK);
        CHECK(wn_shard_writer_put(&w, toks, 600, &err) == WN_OK);
        CHECK(wn_shard_writer_sync(&w, &err) == WN_OK);
        CHECK(wn_shard_writer_put(&w, toks + 600, 400, &err) == WN_OK);
        CHECK(wn_shard_writer_close(&w, &err) == WN_OK);
        wn_shard s;
        CHECK(wn_shard_open(&s, path, &err) == WN_OK);
        CHECK_EQ_INT(s.ntok, 1000);
        CHECK_EQ_INT(s.version, tb == 2 ? 1 : 2);
        int same = 1;
        for (int i = 0; i < 1000; i++) same &= wn_shard_token(&s, (uint64_t)i) == toks[i];
        CHECK(same);
        CHECK(s.weights == NULL && s.docs == NULL);
        wn_shard_close(&s);
    }
    wn_rm_tree(dir, NULL);
}

TEST(shard_sidecars_and_resume)
{
    char dir[] = "/tmp/wn-shard-XXXXXX", path[128], side[160];
    CHECK(mkdtemp(dir) != NULL);
    snprintf(path, sizeof path, "%s/train_000000.bin", dir);
    snprintf(side, sizeof side, "%s/train_000000.weights.bin", dir);
    wn_shard_writer w, ww;
    wn_errbuf err;
    uint32_t toks[10] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10};
    float wts[10] = {1, 1, 0, 1, 1, 1, 0.5f, 1, 1, 1};
    CHECK(wn_shard_writer_open(&w, path, 2, 0, &err) == WN_OK);
    CHECK(wn_sidecar_writer_open(&ww, side, WN_SHARD_WEIGHTS_MAGIC, 0, &err) == WN_OK);
    CHECK(wn_shard_writer_put(&w, toks, 6, &err) == WN_OK);
    CHECK(wn_shard_writer_put_raw(&ww, wts, 6, &err) == WN_OK);
    CHECK(wn_shard_writer_sync(&w, &err) == WN_OK && wn_shard_writer_sync(&ww, &err) == WN_OK);
    /* more after the "checkpoint", then a crash: the files are left open */
    CHECK(wn_shard_writer_put(&w, toks, 3, &err) == WN_OK);
    fclose(w.f);
    fclose(ww.f);
    /* resume at 6: truncate and continue */
    CHECK(wn_shard_writer_open(&w, path, 2, 6, &err) == WN_OK);
    CHECK(wn_sidecar_writer_open(&ww, side, WN_SHARD_WEIGHTS_MAGIC, 6, &err) == WN_OK);
    CHECK(wn_shard_writer_put(&w, toks + 6, 4, &err) == WN_OK);
    CHECK(wn_shard_writer_put_raw(&ww, wts + 6, 4, &err) == WN_OK);
    CHECK(wn_shard_writer_close(&w, &err) == WN_OK && wn_shard_writer_close(&ww, &err) == WN_OK);
    wn_shard s;
    CHECK(wn_shard_open(&s, path, &err) == WN_OK);
    CHECK_EQ_INT(s.ntok, 10);
    for (int i = 0; i < 10; i++) CHECK(wn_shard_token(&s, (uint64_t)i) == toks[i]);
    CHECK(s.weights && s.weights[2] == 0 && s.weights[6] == 0.5f);
    wn_shard_close(&s);
    wn_rm_tree(dir, NULL);
}

TEST(shard_rejects_damaged_files)
{
    char dir[] = "/tmp/wn-shard-XXXXXX", path[128];
    CHECK(mkdtemp(dir) != NULL);
    snprintf(path, sizeof path, "%s/x.bin", dir);
    wn_shard_writer w;
    wn_errbuf err;
    uint32_t toks[4] = {1, 2, 3, 4};
    CHECK(wn_shard_writer_open(&w, path, 2, 0, &err) == WN_OK);
    CHECK(wn_shard_writer_put(&w, toks, 4, &err) == WN_OK);
    CHECK(wn_shard_writer_close(&w, &err) == WN_OK);
    wn_shard s;
    CHECK(truncate(path, 1024 + 6) == 0); /* one token short */
    err.msg[0] = 0;
    CHECK(wn_shard_open(&s, path, &err) == WN_ERR_INPUT);
    CHECK(strstr(err.msg, "truncated") != NULL);
    CHECK(truncate(path, 100) == 0);
    CHECK(wn_shard_open(&s, path, &err) == WN_ERR_INPUT);
    static const char junk[2000] = "not a shard";
    wn_write_atomic(path, junk, sizeof junk, NULL);
    CHECK(wn_shard_open(&s, path, &err) == WN_ERR_INPUT);
    CHECK(strstr(err.msg, "magic") != NULL);
    wn_rm_tree(dir, NULL);
}
