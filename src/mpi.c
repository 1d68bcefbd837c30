/*
 * mpi.c - mpi.h: OpenMPI (or any MPI-3 library) when built with WN_MPI=1,
 * single-process stubs otherwise. The Makefile sets WN_MPI from its probe for
 * mpicc; this is the only file that includes <mpi.h>.
 */
#include "mpi.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifndef WN_MPI
#define WN_MPI 0
#endif

#if WN_MPI
/* OpenMPI's mpi.h, not src/mpi.h: the Makefile puts MPI's include directory
 * before -Isrc for this file alone. */
#include <mpi.h>

static int started; /* wn_mpi_init called MPI_Init_thread */
static int rank_, size_ = 1;

int wn_mpi_built(void) { return 1; }

/* Launched by an MPI launcher? OpenMPI's mpirun sets OMPI_COMM_WORLD_SIZE;
 * PMIx and PMI-2 launchers (srun, MPICH's hydra) set PMIX_RANK or PMI_RANK. */
static int launched(void)
{
    return getenv("OMPI_COMM_WORLD_SIZE") || getenv("PMIX_RANK") || getenv("PMI_RANK");
}

int wn_mpi_init(int *argc, char ***argv)
{
    if (started || !launched()) return 0;
    int provided;
    /* FUNNELED: OpenMP threads compute, only the main thread calls MPI */
    if (MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided) != MPI_SUCCESS) {
        fprintf(stderr, "winnow: MPI_Init failed under an MPI launcher\n");
        return -1;
    }
    started = 1;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank_);
    MPI_Comm_size(MPI_COMM_WORLD, &size_);
    return 0;
}

void wn_mpi_finalize(void)
{
    if (!started) return;
    MPI_Finalize();
    started = 0;
}

int wn_mpi_rank(void) { return rank_; }
int wn_mpi_size(void) { return size_; }

/* MPI counts are int: large arrays go in chunks. */
#define CHUNK ((size_t)1 << 30)

static void allreduce(void *x, size_t n, size_t elem, MPI_Datatype t, MPI_Op op)
{
    if (size_ == 1) return;
    for (size_t i = 0; i < n; i += CHUNK) {
        size_t k = n - i < CHUNK ? n - i : CHUNK;
        MPI_Allreduce(MPI_IN_PLACE, (char *)x + i * elem, (int)k, t, op, MPI_COMM_WORLD);
    }
}

void wn_mpi_allreduce_sum_f32(float *x, size_t n) { allreduce(x, n, sizeof *x, MPI_FLOAT, MPI_SUM); }
void wn_mpi_allreduce_sum_f64(double *x, size_t n) { allreduce(x, n, sizeof *x, MPI_DOUBLE, MPI_SUM); }
void wn_mpi_allreduce_min_i64(int64_t *x, size_t n) { allreduce(x, n, sizeof *x, MPI_INT64_T, MPI_MIN); }
void wn_mpi_allreduce_max_i64(int64_t *x, size_t n) { allreduce(x, n, sizeof *x, MPI_INT64_T, MPI_MAX); }

void wn_mpi_barrier(void)
{
    if (size_ > 1) MPI_Barrier(MPI_COMM_WORLD);
}

/* ---- the pipeline's exchanges ---- */

static uint64_t sent_bytes;
uint64_t wn_mpi_bytes_sent(void) { return sent_bytes; }

void wn_mpi_allreduce_sum_u64(uint64_t *x, size_t n)
{
    allreduce(x, n, sizeof *x, MPI_UINT64_T, MPI_SUM);
    if (size_ > 1) sent_bytes += n * sizeof *x;
}
void wn_mpi_allreduce_max_u64(uint64_t *x, size_t n)
{
    allreduce(x, n, sizeof *x, MPI_UINT64_T, MPI_MAX);
    if (size_ > 1) sent_bytes += n * sizeof *x;
}
void wn_mpi_allreduce_max_f64(double *x, size_t n)
{
    allreduce(x, n, sizeof *x, MPI_DOUBLE, MPI_MAX);
    if (size_ > 1) sent_bytes += n * sizeof *x;
}

void wn_mpi_exscan_sum_u64(uint64_t *x, size_t n)
{
    if (size_ == 1) {
        for (size_t i = 0; i < n; i++) x[i] = 0;
        return;
    }
    for (size_t i = 0; i < n; i += CHUNK) {
        size_t k = n - i < CHUNK ? n - i : CHUNK;
        MPI_Exscan(MPI_IN_PLACE, x + i, (int)k, MPI_UINT64_T, MPI_SUM, MPI_COMM_WORLD);
    }
    if (rank_ == 0) /* MPI leaves rank 0's buffer undefined */
        for (size_t i = 0; i < n; i++) x[i] = 0;
    sent_bytes += n * sizeof *x;
}

void wn_mpi_bcast(void *p, size_t n, int root)
{
    if (size_ == 1) return;
    for (size_t i = 0; i < n; i += CHUNK) {
        size_t k = n - i < CHUNK ? n - i : CHUNK;
        MPI_Bcast((char *)p + i, (int)k, MPI_BYTE, root, MPI_COMM_WORLD);
    }
    if (rank_ == root) sent_bytes += n * (size_t)(size_ - 1);
}

/* Non-blocking byte transfers in pieces of at most CHUNK (MPI counts are
 * int); the requests go to reqs. All pieces share one tag: MPI matches
 * messages between two ranks with one tag in the order they were posted. */
static int post(MPI_Request **reqs, int *nreq, int *cap, int send, int peer, char *p, uint64_t n)
{
    for (uint64_t off = 0; off < n; off += CHUNK) {
        if (*nreq == *cap) {
            int c = *cap ? 2 * *cap : 64;
            MPI_Request *r = wn_realloc(*reqs, (size_t)c * sizeof *r);
            if (!r) return -1;
            *reqs = r;
            *cap = c;
        }
        int k = (int)(n - off < CHUNK ? n - off : CHUNK);
        if (send) MPI_Isend(p + off, k, MPI_BYTE, peer, 1, MPI_COMM_WORLD, &(*reqs)[(*nreq)++]);
        else MPI_Irecv(p + off, k, MPI_BYTE, peer, 1, MPI_COMM_WORLD, &(*reqs)[(*nreq)++]);
    }
    return 0;
}

/* recv = p[0..n): the one-rank answer (MPI is not started in a plain run) */
static wn_err copy_one(wn_buf *recv, const void *p, uint64_t n)
{
    wn_buf_clear(recv);
    if (wn_buf_reserve(recv, n)) return WN_ERR_NOMEM;
    if (n) memcpy(recv->p, p, n);
    recv->len = n;
    recv->p[n] = 0;
    return WN_OK;
}

wn_err wn_mpi_alltoallv(const void *send, const uint64_t *send_n, wn_buf *recv, uint64_t *recv_n)
{
    int R = size_;
    if (R == 1) {
        recv_n[0] = send_n[0];
        return copy_one(recv, send, send_n[0]);
    }
    MPI_Alltoall((void *)send_n, 1, MPI_UINT64_T, recv_n, 1, MPI_UINT64_T, MPI_COMM_WORLD);
    uint64_t total = 0;
    for (int k = 0; k < R; k++) total += recv_n[k];
    wn_buf_clear(recv);
    if (wn_buf_reserve(recv, total)) return WN_ERR_NOMEM;
    MPI_Request *reqs = NULL;
    int nreq = 0, cap = 0, bad = 0;
    uint64_t so = 0, ro = 0;
    for (int k = 0; k < R; k++) {
        if (k == rank_) memcpy(recv->p + ro, (const char *)send + so, send_n[k]);
        else {
            bad |= post(&reqs, &nreq, &cap, 0, k, recv->p + ro, recv_n[k]);
            bad |= post(&reqs, &nreq, &cap, 1, k, (char *)send + so, send_n[k]);
            sent_bytes += send_n[k];
        }
        so += send_n[k];
        ro += recv_n[k];
    }
    if (nreq) MPI_Waitall(nreq, reqs, MPI_STATUSES_IGNORE);
    wn_free(reqs);
    recv->len = total;
    recv->p[total] = 0;
    return bad ? WN_ERR_NOMEM : WN_OK;
}

wn_err wn_mpi_allgatherv(const void *p, uint64_t n, wn_buf *recv, uint64_t *counts)
{
    int R = size_;
    if (R == 1) {
        counts[0] = n;
        return copy_one(recv, p, n);
    }
    MPI_Allgather(&n, 1, MPI_UINT64_T, counts, 1, MPI_UINT64_T, MPI_COMM_WORLD);
    uint64_t total = 0;
    for (int k = 0; k < R; k++) total += counts[k];
    wn_buf_clear(recv);
    if (wn_buf_reserve(recv, total)) return WN_ERR_NOMEM;
    MPI_Request *reqs = NULL;
    int nreq = 0, cap = 0, bad = 0;
    uint64_t ro = 0;
    for (int k = 0; k < R; k++) {
        if (k == rank_) memcpy(recv->p + ro, p, n);
        else {
            bad |= post(&reqs, &nreq, &cap, 0, k, recv->p + ro, counts[k]);
            bad |= post(&reqs, &nreq, &cap, 1, k, (char *)p, n);
            sent_bytes += n;
        }
        ro += counts[k];
    }
    if (nreq) MPI_Waitall(nreq, reqs, MPI_STATUSES_IGNORE);
    wn_free(reqs);
    recv->len = total;
    recv->p[total] = 0;
    return bad ? WN_ERR_NOMEM : WN_OK;
}

#define P2P_TAG 2 /* the collectives' pieces use 1 */

void wn_mpi_send(int to, const void *p, uint64_t n)
{
    MPI_Send(&n, 1, MPI_UINT64_T, to, P2P_TAG, MPI_COMM_WORLD);
    for (uint64_t off = 0; off < n; off += CHUNK) {
        int k = (int)(n - off < CHUNK ? n - off : CHUNK);
        MPI_Send((const char *)p + off, k, MPI_BYTE, to, P2P_TAG, MPI_COMM_WORLD);
    }
    sent_bytes += n + sizeof n;
}

wn_err wn_mpi_recv(int from, wn_buf *into)
{
    uint64_t n;
    MPI_Recv(&n, 1, MPI_UINT64_T, from, P2P_TAG, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
    wn_buf_clear(into);
    if (wn_buf_reserve(into, n)) return WN_ERR_NOMEM;
    for (uint64_t off = 0; off < n; off += CHUNK) {
        int k = (int)(n - off < CHUNK ? n - off : CHUNK);
        MPI_Recv(into->p + off, k, MPI_BYTE, from, P2P_TAG, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
    }
    into->len = n;
    into->p[n] = 0;
    return WN_OK;
}

void wn_mpi_allgather_i64(int64_t v, int64_t *all)
{
    if (size_ == 1) {
        all[0] = v;
        return;
    }
    MPI_Allgather(&v, 1, MPI_INT64_T, all, 1, MPI_INT64_T, MPI_COMM_WORLD);
}

/* A non-negative integer from the environment, or -1. */
static int env_int(const char *name)
{
    const char *v = getenv(name);
    char *end;
    if (!v || !*v) return -1;
    long x = strtol(v, &end, 10);
    return *end || x < 0 || x > 1 << 20 ? -1 : (int)x;
}

/* The launcher's local rank, or -1 (see mpi.h for the order). */
static int env_local_rank(const char **how)
{
    static const char *const names[] = {"OMPI_COMM_WORLD_LOCAL_RANK", "MPI_LOCALRANKID"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        int v = env_int(names[i]);
        if (v >= 0) {
            *how = names[i];
            return v;
        }
    }
    /* srun sets all three for the task it starts; an sbatch script's own
     * SLURM_LOCALID (0) is inherited by everything mpirun starts from it */
    if (env_int("SLURM_PROCID") == rank_ && env_int("SLURM_NTASKS") == size_) {
        *how = "SLURM_LOCALID";
        return env_int("SLURM_LOCALID");
    }
    return -1;
}

int wn_mpi_local_rank(const char **how)
{
    const char *h = "one process";
    int lr = 0;
    if (started) {
        lr = env_local_rank(&h);
        int64_t all = lr >= 0;
        wn_mpi_allreduce_min_i64(&all, 1); /* the same choice on every rank, or the split would hang */
        if (!all) {
            MPI_Comm node;
            MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, rank_, MPI_INFO_NULL, &node);
            MPI_Comm_rank(node, &lr);
            MPI_Comm_free(&node);
            h = "MPI_Comm_split_type (shared memory)";
        }
    }
    if (how) *how = h;
    return lr;
}

_Noreturn void wn_mpi_abort(int code)
{
    fflush(stdout);
    fflush(stderr);
    if (started) MPI_Abort(MPI_COMM_WORLD, code);
    exit(code);
}

#else /* !WN_MPI: one process */


int wn_mpi_built(void) { return 0; }
/* Launched by mpirun as one of several processes, this build would run each
 * as a whole job of its own, all writing the same outputs: refuse. */
int wn_mpi_init(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    const char *n = getenv("OMPI_COMM_WORLD_SIZE");
    if (!n) n = getenv("PMI_SIZE");
    if (!n || atoi(n) < 2) return 0;
    fprintf(stderr, "winnow: started as one of %s MPI processes, but this winnow was built without MPI (no "
                    "mpicc found, or make MPI=0): each would run alone over the same outputs; rebuild with MPI "
                    "(make deps && make) or run one process\n", n);
    return -1;
}
void wn_mpi_finalize(void) {}
int wn_mpi_rank(void) { return 0; }
int wn_mpi_size(void) { return 1; }
void wn_mpi_allreduce_sum_f32(float *x, size_t n) { (void)x, (void)n; }
void wn_mpi_allreduce_sum_f64(double *x, size_t n) { (void)x, (void)n; }
void wn_mpi_allreduce_min_i64(int64_t *x, size_t n) { (void)x, (void)n; }
void wn_mpi_allreduce_max_i64(int64_t *x, size_t n) { (void)x, (void)n; }
void wn_mpi_barrier(void) {}
void wn_mpi_allreduce_sum_u64(uint64_t *x, size_t n) { (void)x, (void)n; }
void wn_mpi_allreduce_max_u64(uint64_t *x, size_t n) { (void)x, (void)n; }
void wn_mpi_allreduce_max_f64(double *x, size_t n) { (void)x, (void)n; }
void wn_mpi_exscan_sum_u64(uint64_t *x, size_t n)
{
    for (size_t i = 0; i < n; i++) x[i] = 0;
}
void wn_mpi_bcast(void *p, size_t n, int root) { (void)p, (void)n, (void)root; }
static wn_err copy_to(wn_buf *b, const void *p, uint64_t n)
{
    wn_buf_clear(b);
    if (wn_buf_reserve(b, n)) return WN_ERR_NOMEM;
    if (n) memcpy(b->p, p, n);
    b->len = n;
    b->p[n] = 0;
    return WN_OK;
}
wn_err wn_mpi_alltoallv(const void *send, const uint64_t *send_n, wn_buf *recv, uint64_t *recv_n)
{
    recv_n[0] = send_n[0];
    return copy_to(recv, send, send_n[0]);
}
wn_err wn_mpi_allgatherv(const void *p, uint64_t n, wn_buf *recv, uint64_t *counts)
{
    counts[0] = n;
    return copy_to(recv, p, n);
}
/* one rank has no one to talk to: a call is a bug in the caller */
void wn_mpi_send(int to, const void *p, uint64_t n)
{
    (void)p, (void)n;
    fprintf(stderr, "winnow: internal error: wn_mpi_send to rank %d in a single process\n", to);
    abort();
}
wn_err wn_mpi_recv(int from, wn_buf *into)
{
    (void)into;
    fprintf(stderr, "winnow: internal error: wn_mpi_recv from rank %d in a single process\n", from);
    abort();
}
uint64_t wn_mpi_bytes_sent(void) { return 0; }
void wn_mpi_allgather_i64(int64_t v, int64_t *all) { all[0] = v; }
int wn_mpi_local_rank(const char **how)
{
    if (how) *how = "one process";
    return 0;
}
_Noreturn void wn_mpi_abort(int code)
{
    fflush(stdout);
    fflush(stderr);
    exit(code);
}

#endif
