/*
 * nccl.c - nccl.h: NCCL 2 through dlopen. Only the types and entry points
 * used are declared here, with NCCL 2's ABI (nccl.h: enums are ints, the
 * unique id a 128-byte struct passed by value, cudaStream_t a pointer); the
 * library's own header is not needed to build. The code touches no CUDA
 * itself: device pointers and the default stream go through as they are,
 * so the file is the same in CUDA and CPU-only builds (where nothing calls
 * it but the unit tests).
 */
#include "nccl.h"

#include <dlfcn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mpi.h"

/* ---- from NCCL 2's nccl.h -------------------------------------------------------- */
typedef struct ncclComm *nccl_comm;
typedef struct {
    char internal[128]; /* NCCL_UNIQUE_ID_BYTES */
} nccl_unique_id;
typedef int nccl_result; /* ncclResult_t: 0 ncclSuccess */
enum { NCCL_SUCCESS = 0, NCCL_FLOAT32 = 7 /* ncclFloat32 */, NCCL_SUM = 0 /* ncclSum */ };

static struct {
    int tried, ok;
    char why[600];
    char version[32];
    void *lib;
    nccl_result (*get_version)(int *version);
    nccl_result (*get_unique_id)(nccl_unique_id *id);
    nccl_result (*comm_init_rank)(nccl_comm *comm, int nranks, nccl_unique_id id, int rank);
    nccl_result (*all_reduce)(const void *send, void *recv, size_t count, int datatype, int op, nccl_comm comm,
                              void *stream);
    nccl_result (*comm_destroy)(nccl_comm comm);
    const char *(*error_string)(nccl_result r);
} nc;

struct wn_nccl {
    nccl_comm comm;
    int rank, ranks;
};

static const char *nccl_error(nccl_result r)
{
    const char *s = nc.error_string ? nc.error_string(r) : NULL;
    return s ? s : "unknown NCCL error";
}

/* The soname first (ld.so.conf, LD_LIBRARY_PATH), then where CUDA's
 * packages put it. */
static int open_lib(void)
{
    const char *name = getenv("WINNOW_TEST_NCCL_LIB");
    static const char *const names[] = {"libnccl.so.2", "/usr/local/cuda/lib/libnccl.so.2",
                                        "/usr/local/cuda/lib64/libnccl.so.2"};
    const char *first_error = NULL;
    char first[400] = "";
    if (name && *name) {
        nc.lib = dlopen(name, RTLD_NOW | RTLD_LOCAL);
        if (!nc.lib) first_error = dlerror();
    } else {
        name = names[0];
        for (size_t i = 0; i < sizeof names / sizeof names[0] && !nc.lib; i++) {
            nc.lib = dlopen(names[i], RTLD_NOW | RTLD_LOCAL);
            const char *d = nc.lib ? NULL : dlerror();
            if (i == 0 && d) snprintf(first, sizeof first, "%s", d);
        }
        if (!nc.lib) first_error = first;
    }
    if (!nc.lib) {
        snprintf(nc.why, sizeof nc.why, "cannot load %s (%s): NCCL is not installed here (Debian: libnccl2; or "
                 "NVIDIA's CUDA packages), or not on the library path", name, first_error ? first_error : "?");
        return 0;
    }
#define SYM(field, sym)                                                                          \
    if (!(*(void **)&nc.field = dlsym(nc.lib, #sym))) {                                          \
        snprintf(nc.why, sizeof nc.why, "%s has no %s: not NCCL 2", name, #sym);                 \
        return 0;                                                                                \
    }
    SYM(get_version, ncclGetVersion)
    SYM(get_unique_id, ncclGetUniqueId)
    SYM(comm_init_rank, ncclCommInitRank)
    SYM(all_reduce, ncclAllReduce)
    SYM(comm_destroy, ncclCommDestroy)
    SYM(error_string, ncclGetErrorString)
#undef SYM
    int v = 0;
    nccl_result r = nc.get_version(&v);
    if (r != NCCL_SUCCESS || v < 2000) {
        snprintf(nc.why, sizeof nc.why, "%s: ncclGetVersion: %s (version %d): NCCL 2 expected", name,
                 r ? nccl_error(r) : "ok", v);
        return 0;
    }
    /* NCCL_VERSION_CODE: major * 10000 + minor * 100 + patch since 2.9, major * 1000 + minor * 100 + patch before */
    if (v >= 10000) snprintf(nc.version, sizeof nc.version, "%d.%d.%d", v / 10000, v / 100 % 100, v % 100);
    else snprintf(nc.version, sizeof nc.version, "%d.%d.%d", v / 1000, v / 100 % 10, v % 100);
    return 1;
}

wn_err wn_nccl_load(wn_errbuf *err)
{
    if (!nc.tried) {
        nc.tried = 1;
        nc.ok = open_lib();
        if (!nc.ok && nc.lib) {
            dlclose(nc.lib);
            nc.lib = NULL;
        }
    }
    return nc.ok ? WN_OK : wn_fail(err, WN_ERR_IO, "nccl: %s", nc.why);
}

const char *wn_nccl_version(void) { return nc.ok ? nc.version : ""; }

void wn_nccl_unload(void)
{
    if (nc.lib) dlclose(nc.lib);
    memset(&nc, 0, sizeof nc);
}

wn_err wn_nccl_open(wn_nccl **out, wn_errbuf *err)
{
    *out = NULL;
    wn_err e = wn_nccl_load(err);
    if (e) return e;
    int rank = wn_mpi_rank(), ranks = wn_mpi_size();
    struct {
        int32_t rc;
        nccl_unique_id id;
    } msg;
    memset(&msg, 0, sizeof msg);
    if (rank == 0) msg.rc = nc.get_unique_id(&msg.id);
    wn_mpi_bcast(&msg, sizeof msg, 0); /* the status too: nobody joins with a bad id */
    if (msg.rc != NCCL_SUCCESS)
        return wn_fail(err, WN_ERR_IO, "nccl: ncclGetUniqueId on rank 0: %s",
                       rank == 0 ? nccl_error(msg.rc) : "failed");
    wn_nccl *c = wn_calloc(1, sizeof *c);
    if (!c) return wn_fail(err, WN_ERR_NOMEM, "out of memory");
    c->rank = rank;
    c->ranks = ranks;
    nccl_result r = nc.comm_init_rank(&c->comm, ranks, msg.id, rank);
    if (r != NCCL_SUCCESS) {
        wn_free(c);
        return wn_fail(err, WN_ERR_IO, "nccl: ncclCommInitRank (rank %d of %d): %s", rank,
                       ranks, nccl_error(r));
    }
    *out = c;
    return WN_OK;
}

void wn_nccl_close(wn_nccl *c)
{
    if (!c) return;
    if (c->comm) nc.comm_destroy(c->comm);
    wn_free(c);
}

wn_err wn_nccl_allreduce_sum_f32(wn_nccl *c, float *x, size_t n, wn_errbuf *err)
{
    nccl_result r = nc.all_reduce(x, x, n, NCCL_FLOAT32, NCCL_SUM, c->comm, NULL /* the default stream */);
    if (r != NCCL_SUCCESS)
        return wn_fail(err, WN_ERR_IO, "nccl: ncclAllReduce of %zu floats (rank %d of %d): %s", n, c->rank, c->ranks,
                       nccl_error(r));
    return WN_OK;
}
