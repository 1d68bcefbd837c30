/*
 * mpi.h - the few MPI operations winnow uses, behind one small interface so
 * that callers never need #if: a build without MPI (the Makefile's MPI=0, or
 * no mpicc found) compiles the same calls to single-process stubs (rank 0 of
 * 1; reductions leave their input as it is; abort exits).
 *
 * Initialisation is lazy about launchers: wn_mpi_init starts MPI only when the
 * process was started by an MPI launcher (mpirun/mpiexec/srun set
 * OMPI_COMM_WORLD_SIZE, PMIX_RANK or PMI_RANK). A plain `./winnow ...` never
 * touches MPI, so it starts as fast as a build without MPI and behaves the
 * same.
 *
 * Every rank must call the collectives (allreduce, barrier) in the same
 * order; a rank that cannot go on must call wn_mpi_abort (after printing
 * why), never return early, or the others wait forever.
 *
 * MPI errors use MPI's default handler (MPI_ERRORS_ARE_FATAL): a broken
 * communicator stops the whole job, so these functions do not return errors.
 */
#ifndef WN_MPI_H
#define WN_MPI_H

#include <stddef.h>
#include <stdint.h>

/* 1 when this build has MPI (WN_MPI=1). */
int wn_mpi_built(void);
/* Starts MPI when launched by mpirun or srun (see above); idempotent. Returns
 * 0, or -1 (the reason printed on stderr) when MPI_Init failed, or when a
 * build without MPI was launched as one of several MPI processes (each would
 * run alone over the same outputs): the caller then stops. */
int wn_mpi_init(int *argc, char ***argv);
/* Ends MPI if wn_mpi_init started it. Every rank calls it once at exit. */
void wn_mpi_finalize(void);
int wn_mpi_rank(void); /* 0 without MPI */
int wn_mpi_size(void); /* 1 without MPI */

/* In-place reductions over all ranks: each rank passes its n values and gets
 * the element-wise result. With one rank they return at once. */
void wn_mpi_allreduce_sum_f32(float *x, size_t n);
void wn_mpi_allreduce_sum_f64(double *x, size_t n);
void wn_mpi_allreduce_min_i64(int64_t *x, size_t n);
void wn_mpi_allreduce_max_i64(int64_t *x, size_t n);
void wn_mpi_barrier(void);

/* Rank root's bytes n into buf on every rank (e.g. NCCL's unique id). */
void wn_mpi_bcast(void *buf, size_t n, int root);
/* Every rank's v into all[0 .. size-1] (all[k] = rank k's), on every rank. */
void wn_mpi_allgather_i64(int64_t v, int64_t *all);
/* This rank's index among the ranks on its node (0 without MPI), for
 * picking a GPU: from the launcher's environment when every rank has it
 * (OMPI_COMM_WORLD_LOCAL_RANK; MPICH's MPI_LOCALRANKID; SLURM_LOCALID when
 * SLURM_PROCID and SLURM_NTASKS are this job's, not inherited from an
 * enclosing batch script), else from MPI_Comm_split_type(MPI_COMM_TYPE_SHARED).
 * A collective: every rank calls it. *how (may be NULL) names the source. */
int wn_mpi_local_rank(const char **how);

/* Stops every rank of the job with exit status code (MPI_Abort); exit(code)
 * without MPI. Print the reason first: MPI_Abort says only which rank called
 * it. */
_Noreturn void wn_mpi_abort(int code);

#endif
