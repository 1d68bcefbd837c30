/*
 * test_nccl.c - unit tests for nccl.c without NCCL or a GPU: a missing
 * library fails with a message that names it, and against
 * tests/unit/fake_nccl (build/san/fake_nccl.so) the version string (both of
 * NCCL's version codings), a one-rank communicator, the all-reduce's
 * arguments (in place, float32, sum, the default stream, the count), NCCL's
 * error strings in the messages of failing calls, and no communicator left
 * open (the fake counts them).
 */
#include "../test.h"
#include "nccl.h"

#include <dlfcn.h>
#include <stdint.h>
#include <stdlib.h>
#include <unistd.h>

#define FAKE_NCCL "./build/san/fake_nccl.so"

static void use_nccl(const char *lib, const char *version, const char *fail)
{
    wn_nccl_unload();
    setenv("WINNOW_TEST_NCCL_LIB", lib, 1);
    if (version) setenv("FAKE_NCCL_VERSION", version, 1);
    else unsetenv("FAKE_NCCL_VERSION");
    if (fail) setenv("FAKE_NCCL_FAIL", fail, 1);
    else unsetenv("FAKE_NCCL_FAIL");
}

static void nccl_done(void)
{
    wn_nccl_unload();
    unsetenv("WINNOW_TEST_NCCL_LIB");
    unsetenv("FAKE_NCCL_VERSION");
    unsetenv("FAKE_NCCL_FAIL");
}

typedef void (*last_fn)(const void **, void **, size_t *, int *, int *, void **, int *, int *);

/* The fake's record (the loader's handle: dlopen of a loaded library is the same one). */
static last_fn fake_last(void)
{
    void *h = dlopen(FAKE_NCCL, RTLD_NOW | RTLD_NOLOAD);
    last_fn f = h ? (last_fn)(uintptr_t)dlsym(h, "fake_nccl_last") : NULL;
    if (h) dlclose(h);
    return f;
}

TEST(nccl_missing_library)
{
    use_nccl("./build/no-such-dir/libnccl.so.2", NULL, NULL);
    wn_errbuf err = {{0}};
    CHECK(wn_nccl_load(&err) == WN_ERR_IO);
    CHECK(strstr(err.msg, "cannot load ./build/no-such-dir/libnccl.so.2") != NULL);
    CHECK_EQ_STR(wn_nccl_version(), "");
    wn_nccl *c = (wn_nccl *)&err;
    err.msg[0] = 0;
    CHECK(wn_nccl_open(&c, &err) == WN_ERR_IO && c == NULL && strstr(err.msg, "cannot load"));
    wn_nccl_close(NULL);
    nccl_done();
}

TEST(nccl_fake_library)
{
    if (access(FAKE_NCCL, R_OK)) SKIP(FAKE_NCCL " not built (make build/san/fake_nccl.so)");
    use_nccl(FAKE_NCCL, NULL, NULL);
    wn_errbuf err = {{0}};
    CHECK(wn_nccl_load(&err) == WN_OK);
    CHECK_EQ_STR(wn_nccl_version(), "2.28.9");
    wn_nccl *c = NULL;
    CHECK(wn_nccl_open(&c, &err) == WN_OK && c);
    float x[5] = {1, 2, 3, 4, 5};
    CHECK(wn_nccl_allreduce_sum_f32(c, x, 5, &err) == WN_OK);
    last_fn last = fake_last();
    CHECK(last != NULL);
    if (last) {
        const void *send;
        void *recv, *stream;
        size_t count;
        int dt, op, calls, open;
        last(&send, &recv, &count, &dt, &op, &stream, &calls, &open);
        CHECK(send == x && recv == x && count == 5 && stream == NULL && calls == 1 && open == 1);
        CHECK_EQ_INT(dt, 7); /* ncclFloat32 */
        CHECK_EQ_INT(op, 0); /* ncclSum */
    }
    CHECK(x[0] == 1 && x[4] == 5); /* one rank: the sum is the buffer itself */
    /* a failing all-reduce: NCCL's message */
    setenv("FAKE_NCCL_FAIL", "allreduce", 1);
    CHECK(wn_nccl_allreduce_sum_f32(c, x, 5, &err) == WN_ERR_IO);
    CHECK(strstr(err.msg, "ncclAllReduce of 5 floats") && strstr(err.msg, "invalid usage (fake)"));
    wn_nccl_close(c);
    if (last) {
        const void *send;
        void *recv, *stream;
        size_t count;
        int dt, op, calls, open;
        last(&send, &recv, &count, &dt, &op, &stream, &calls, &open);
        CHECK_EQ_INT(open, 0);
    }
    /* a failing init or id: no communicator, the message says which call */
    setenv("FAKE_NCCL_FAIL", "init", 1);
    c = NULL;
    CHECK(wn_nccl_open(&c, &err) == WN_ERR_IO && !c && strstr(err.msg, "ncclCommInitRank (rank 0 of 1)") &&
          strstr(err.msg, "invalid usage (fake)"));
    setenv("FAKE_NCCL_FAIL", "id", 1);
    CHECK(wn_nccl_open(&c, &err) == WN_ERR_IO && !c && strstr(err.msg, "ncclGetUniqueId on rank 0"));
    nccl_done();
}

TEST(nccl_versions)
{
    if (access(FAKE_NCCL, R_OK)) SKIP(FAKE_NCCL " not built (make build/san/fake_nccl.so)");
    wn_errbuf err = {{0}};
    use_nccl(FAKE_NCCL, "2708", NULL); /* before 2.9: major * 1000 + minor * 100 + patch */
    CHECK(wn_nccl_load(&err) == WN_OK);
    CHECK_EQ_STR(wn_nccl_version(), "2.7.8");
    use_nccl(FAKE_NCCL, "1905", NULL); /* NCCL 1: not supported */
    CHECK(wn_nccl_load(&err) == WN_ERR_IO && strstr(err.msg, "NCCL 2 expected"));
    CHECK_EQ_STR(wn_nccl_version(), "");
    nccl_done();
}
