/*
 * fuzz_manifest.c - libFuzzer target for manifest.c. Writes the input to a
 * fixed temporary .yaml file and loads it; any error is fine, but a failed
 * load must leave a message and no manifest. A manifest that loads is
 * resolved, and the resolved YAML must load again and resolve to the same
 * text (it is the run's record of every default).
 *
 * Build and run with `make fuzz` (libFuzzer); `make test` replays the corpus
 * in tests/fuzz/corpus/manifest/.
 */
#include "manifest.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define REQUIRE(c)                                                             \
    do {                                                                       \
        if (!(c)) {                                                            \
            fprintf(stderr, "fuzz_manifest: invariant failed: %s (line %d)\n", #c, __LINE__); \
            abort();                                                           \
        }                                                                      \
    } while (0)

static char tmp_path[2][64];

static void remove_tmp(void)
{
    unlink(tmp_path[0]);
    unlink(tmp_path[1]);
}

static const char *write_tmp(int which, const void *data, size_t size)
{
    if (!tmp_path[0][0]) {
        for (int i = 0; i < 2; i++) {
            snprintf(tmp_path[i], sizeof tmp_path[i], "/tmp/wn-fuzz-manifest-XXXXXX.yaml");
            int fd = mkstemps(tmp_path[i], 5);
            REQUIRE(fd >= 0);
            close(fd);
        }
        atexit(remove_tmp);
    }
    FILE *f = fopen(tmp_path[which], "wb");
    REQUIRE(f != NULL);
    REQUIRE(fwrite(data, 1, size, f) == size);
    REQUIRE(fclose(f) == 0);
    return tmp_path[which];
}

/* The resolved text after its first line (which names the manifest file). */
static const char *body(const wn_buf *b)
{
    const char *nl = strchr(b->p, '\n');
    REQUIRE(nl != NULL);
    return nl + 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    wn_manifest *m = NULL;
    wn_errbuf err;
    err.msg[0] = 0;
    wn_err e = wn_manifest_load(&m, write_tmp(0, data, size), &err);
    if (e) {
        REQUIRE(m == NULL && err.msg[0] != 0);
        return 0;
    }
    REQUIRE(m != NULL && m->name && m->workdir && m->n_inputs > 0);

    wn_buf r1 = {0}, r2 = {0};
    REQUIRE(wn_manifest_resolved(m, &r1) == WN_OK);
    wn_manifest_free(m);
    wn_manifest *m2 = NULL;
    e = wn_manifest_load(&m2, write_tmp(1, r1.p, r1.len), &err);
    if (e) fprintf(stderr, "fuzz_manifest: resolved manifest does not load: %s\n%s", err.msg, r1.p);
    REQUIRE(e == WN_OK);
    REQUIRE(wn_manifest_resolved(m2, &r2) == WN_OK);
    if (strcmp(body(&r1), body(&r2)))
        fprintf(stderr, "fuzz_manifest: resolved twice differs:\n%s---\n%s", r1.p, r2.p);
    REQUIRE(strcmp(body(&r1), body(&r2)) == 0);
    wn_manifest_free(m2);
    wn_buf_free(&r1);
    wn_buf_free(&r2);
    return 0;
}
