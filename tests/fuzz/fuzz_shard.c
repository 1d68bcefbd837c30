/*
 * fuzz_shard.c - the shard reader on arbitrary files: it must accept only
 * consistent headers and never read outside the file. Input byte 0 picks
 * which of shard / weights / docs sidecar the rest is written as (with a
 * valid small shard beside the sidecars).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fs.h"
#include "shard.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    static char dir[64];
    if (!dir[0]) {
        snprintf(dir, sizeof dir, "/tmp/wn-fuzz-shard-XXXXXX");
        if (!mkdtemp(dir)) abort();
    }
    char shard[128], side[160];
    snprintf(shard, sizeof shard, "%s/s.bin", dir);
    int which = data[0] % 3;
    snprintf(side, sizeof side, "%s/s.%s.bin", dir, which == 1 ? "weights" : "docs");
    remove(side);
    if (which == 0) {
        wn_write_atomic(shard, data + 1, size - 1, NULL);
    } else {
        wn_shard_writer w;
        uint32_t t[8] = {1, 2, 3, 4, 5, 6, 7, 8};
        if (wn_shard_writer_open(&w, shard, 2, 0, NULL) || wn_shard_writer_put(&w, t, 8, NULL) ||
            wn_shard_writer_close(&w, NULL))
            abort();
        wn_write_atomic(side, data + 1, size - 1, NULL);
    }
    wn_shard s;
    wn_errbuf err;
    if (wn_shard_open(&s, shard, &err) == WN_OK) {
        uint64_t sum = 0;
        for (uint64_t i = 0; i < s.ntok; i++) sum += wn_shard_token(&s, i);
        for (uint64_t i = 0; s.weights && i < s.ntok; i++) sum += (uint64_t)(s.weights[i] != 0);
        for (uint64_t i = 0; i < s.ndocs; i++) if (s.docs[i] >= s.ntok) abort();
        (void)sum;
        wn_shard_close(&s);
    }
    return 0;
}
