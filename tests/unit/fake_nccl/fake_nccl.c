/*
 * fake_nccl.c - a stand-in for libnccl.so.2 with the entry points src/nccl.c
 * opens, so that its loader, communicator and all-reduce wrapper run on
 * machines without NCCL or a GPU (tests/unit/test_nccl.c loads it through
 * WINNOW_TEST_NCCL_LIB). Built as build/san/fake_nccl.so; not part of winnow.
 *
 * One rank only: the "all-reduce" of one rank leaves the buffer as it is
 * (host memory here) and records its arguments, which fake_nccl_last hands
 * to the test. FAKE_NCCL_VERSION sets what ncclGetVersion reports (default
 * 22809: 2.28.9); FAKE_NCCL_FAIL=id|init|allreduce makes that call fail with
 * ncclInvalidUsage (5). Read at every call.
 */
#include <stdlib.h>
#include <string.h>

typedef struct {
    char internal[128];
} id_t_;
typedef struct comm {
    int nranks, rank;
} comm;

static const char tag[] = "fake-nccl-id";
static struct {
    const void *send;
    void *recv;
    size_t count;
    int datatype, op;
    void *stream;
    int calls, destroyed, open;
} last;

static int failing(const char *what)
{
    const char *f = getenv("FAKE_NCCL_FAIL");
    return f && !strcmp(f, what);
}

int ncclGetVersion(int *v)
{
    const char *s = getenv("FAKE_NCCL_VERSION");
    *v = s ? atoi(s) : 22809;
    return 0;
}

int ncclGetUniqueId(id_t_ *id)
{
    if (failing("id")) return 5;
    memset(id, 0, sizeof *id);
    memcpy(id->internal, tag, sizeof tag);
    return 0;
}

int ncclCommInitRank(comm **c, int nranks, id_t_ id, int rank)
{
    if (failing("init") || nranks != 1 || rank != 0 || memcmp(id.internal, tag, sizeof tag)) return 5;
    *c = malloc(sizeof **c);
    if (!*c) return 2;
    (*c)->nranks = nranks;
    (*c)->rank = rank;
    last.open++;
    return 0;
}

int ncclAllReduce(const void *send, void *recv, size_t count, int datatype, int op, comm *c, void *stream)
{
    if (failing("allreduce") || !c) return 5;
    last.send = send;
    last.recv = recv;
    last.count = count;
    last.datatype = datatype;
    last.op = op;
    last.stream = stream;
    last.calls++;
    return 0;
}

int ncclCommDestroy(comm *c)
{
    free(c);
    last.destroyed++;
    last.open--;
    return 0;
}

const char *ncclGetErrorString(int r) { return r == 5 ? "invalid usage (fake)" : r ? "some error (fake)" : "no error"; }

/* For the test: the last all-reduce's arguments; open communicators. */
void fake_nccl_last(const void **send, void **recv, size_t *count, int *datatype, int *op, void **stream, int *calls,
                    int *open)
{
    *send = last.send;
    *recv = last.recv;
    *count = last.count;
    *datatype = last.datatype;
    *op = last.op;
    *stream = last.stream;
    *calls = last.calls;
    *open = last.open;
}
