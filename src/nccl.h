/*
 * nccl.h - the one NCCL collective winnow uses: the in-place sum of the
 * gradients across the MPI ranks of a data-parallel `winnow train --device
 * cuda`, GPU to GPU (cmd_train.c; the host-staged alternative goes through
 * mpi.h).
 *
 * libnccl.so.2 is opened with dlopen at the first call, never linked, as
 * cuBLAS is: the build, CI and machines without NCCL need neither the library
 * nor its header (the few types and entry points used are declared in
 * nccl.c, from NCCL 2's nccl.h). The environment variable
 * WINNOW_TEST_NCCL_LIB names another library (the unit tests' stand-in,
 * tests/unit/fake_nccl).
 *
 * NCCL wants one GPU per rank (it refuses two ranks on one device), each
 * rank's CUDA device chosen before wn_nccl_open. The caller checks that
 * (cmd_train.c compares the ranks' PCI bus ids).
 *
 * Ownership: a wn_nccl is one communicator over all MPI ranks; device
 * pointers passed in are borrowed for the call. Errors: WN_ERR_IO with
 * NCCL's message (or the loader's) in *err.
 */
#ifndef WN_NCCL_H
#define WN_NCCL_H

#include <stddef.h>

#include "wn.h"

typedef struct wn_nccl wn_nccl;

/* Loads NCCL (once per process; later calls return the first answer).
 * WN_OK, or WN_ERR_IO with why ("cannot load libnccl.so.2: ...") in *err. */
wn_err wn_nccl_load(wn_errbuf *err);
/* The loaded library's version, e.g. "2.28.9" ("" before a successful load). */
const char *wn_nccl_version(void);
/* Forgets the library, so that the next wn_nccl_load tries again (for the
 * tests, which switch WINNOW_TEST_NCCL_LIB). No communicator may be open. */
void wn_nccl_unload(void);

/* A communicator over every MPI rank (mpi.h), on each rank's current CUDA
 * device: rank 0 makes NCCL's unique id, wn_mpi_bcast hands it to the
 * others, all join. A collective: every rank calls it, after wn_nccl_load
 * succeeded on every rank. With one rank (or no MPI) it makes a
 * communicator of one. On failure *out is NULL; a rank whose peers failed
 * may wait in NCCL, so the caller stops the job (wn_mpi_abort). */
wn_err wn_nccl_open(wn_nccl **out, wn_errbuf *err);
void wn_nccl_close(wn_nccl *c); /* accepts NULL */

/* x[0 .. n-1] (device memory) = its sum over all ranks, the same bits on
 * every rank (NCCL leaves identical copies), queued on the CUDA default
 * stream (kernels/gpt_kernels.h queues there too, so it runs after the
 * backward and before what follows; wn_cuda_sync waits for it). Every rank
 * calls it with the same n. */
wn_err wn_nccl_allreduce_sum_f32(wn_nccl *c, float *x, size_t n, wn_errbuf *err);

#endif
