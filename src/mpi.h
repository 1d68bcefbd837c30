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

#include "wn.h"

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

/* ---- for `winnow run` across ranks (the pipeline's global stages) ----
 * Every rank calls these in the same order. Where stages may call them: in
 * open, in the FIRST finish call (every rank makes it once, in pipeline
 * order, after its whole input went through the stages before), and in
 * report (called on every rank in pipeline order; rank 0 writes the JSON).
 * Never in process: ranks see different numbers of batches. With one rank
 * every call returns at once with the single-process answer (a copy where
 * data moves), so a stage has one code path for 1 rank and N. */
void wn_mpi_allreduce_sum_u64(uint64_t *x, size_t n);
void wn_mpi_allreduce_max_u64(uint64_t *x, size_t n);
void wn_mpi_allreduce_max_f64(double *x, size_t n);
/* Exclusive prefix sum: rank r gets the element-wise sum of ranks 0..r-1's
 * values (zeros on rank 0). For global input positions: a rank's offset is
 * the exscan of its local count. */
void wn_mpi_exscan_sum_u64(uint64_t *x, size_t n);
/* n bytes from root to every rank. */
void wn_mpi_bcast(void *p, size_t n, int root);
/* All-to-all of byte blocks. send holds the block for rank 0, then rank 1,
 * ... (send_n[k] bytes for rank k, size() entries). On return recv holds the
 * blocks received from rank 0, 1, ... in that order (recv_n[k] bytes from
 * rank k), replacing what it held. Any size (sent in pieces under 1 GiB). */
wn_err wn_mpi_alltoallv(const void *send, const uint64_t *send_n, wn_buf *recv, uint64_t *recv_n);
/* Every rank's n bytes, concatenated in rank order, to every rank
 * (counts[k] = rank k's bytes, size() entries); recv is replaced. */
wn_err wn_mpi_allgatherv(const void *p, uint64_t n, wn_buf *recv, uint64_t *counts);
/* Point to point (blocking), for ordered hand-offs between neighbours:
 * recv replaces into's contents with the message (any size). */
void wn_mpi_send(int to, const void *p, uint64_t n);
wn_err wn_mpi_recv(int from, wn_buf *into);
/* Payload bytes this rank has sent to other ranks through the functions of
 * this header since the start (what the run reports as bytes exchanged per
 * stage; the MPI library's own algorithms may move more). */
uint64_t wn_mpi_bytes_sent(void);
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
