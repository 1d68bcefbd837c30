/*
 * mpi.c - mpi.h: OpenMPI (or any MPI-3 library) when built with WN_MPI=1,
 * single-process stubs otherwise. The Makefile sets WN_MPI from its probe for
 * mpicc; this is the only file that includes <mpi.h>.
 */
#include "mpi.h"

#include <stdio.h>
#include <stdlib.h>

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

void wn_mpi_bcast(void *buf, size_t n, int root)
{
    if (size_ == 1) return;
    for (size_t i = 0; i < n; i += CHUNK) {
        size_t k = n - i < CHUNK ? n - i : CHUNK;
        MPI_Bcast((char *)buf + i, (int)k, MPI_BYTE, root, MPI_COMM_WORLD);
    }
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
void wn_mpi_bcast(void *buf, size_t n, int root) { (void)buf, (void)n, (void)root; }
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
