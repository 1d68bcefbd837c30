#!/usr/bin/env bash
# gpu_check.sh - every GPU test and GPU benchmark of winnow in one call, for a machine with a
# CUDA device (this project's CI has none, so nothing here runs in CI). Expects the builds to
# exist already (`make CUDA=1 && make cuda-check && make build/san/winnow`, or the same built
# elsewhere and copied over), so that it needs no compiler or -dev packages where it runs.
#
#   scripts/gpu_check.sh [LOGDIR]      (default build/gpu_check)
#
# Runs, each under a time limit and each logged: nvidia-smi, ./winnow --version,
# build/cuda/test_kernels (every kernel against its CPU reference, the GPU model against the
# CPU model), tests/e2e/test_score_device.sh and test_train_device.sh (GPU vs CPU through the
# CLI), tests/e2e/test_mpi_train_device.sh (`mpirun ... winnow train --device cuda`, host-staged and
# NCCL all-reduce, against one GPU process; needs mpirun, else it SKIPs), tests/e2e/test_energy.sh
# (NVML: `winnow train --device cuda` and a minhash_dedup run on the GPU write measured GPU joules),
# then the GPU benchmarks (tests/bench/bench_train_gpu.sh, and bench_score_gpu / bench_minhash_gpu
# when built: `make cuda-check` builds the latter).
# Prints a PASS/FAIL line per step (and the step's SKIP lines under it) and exits 1 if any failed.
set -uo pipefail
cd "$(dirname "$0")/.."
LOG=${1:-build/gpu_check}
mkdir -p "$LOG"
fails=0
step() { # name, limit in seconds, command...
    local name=$1 limit=$2; shift 2
    local t0=$SECONDS
    echo "=== $name: $*" >>"$LOG/all.log"
    timeout "$limit" "$@" >"$LOG/step.log" 2>&1
    local rc=$?
    cat "$LOG/step.log" >>"$LOG/all.log"
    if [ $rc -eq 0 ]; then echo "PASS $name ($((SECONDS - t0)) s)"; else
        echo "FAIL $name (exit $rc, $((SECONDS - t0)) s)"; fails=$((fails + 1)); fi
    grep -h "^SKIP" "$LOG/step.log" | sed 's/^/     /'
    echo "=== $name: exit $rc" >>"$LOG/all.log"
}
: >"$LOG/all.log"
step nvidia-smi 30 nvidia-smi
step version 30 ./winnow --version
step test_kernels 300 ./build/cuda/test_kernels
step test_score_device 300 env WINNOW="$PWD/winnow" bash tests/e2e/test_score_device.sh
step test_train_device 300 bash tests/e2e/test_train_device.sh
step test_mpi_train_device 300 bash tests/e2e/test_mpi_train_device.sh
step test_energy 300 bash tests/e2e/test_energy.sh
step test_synth_device 300 env WINNOW="$PWD/winnow" bash tests/e2e/test_synth_device.sh
step bench_train_gpu 400 bash tests/bench/bench_train_gpu.sh
[ -x build/bench_score_gpu ] && step bench_score_gpu 300 ./build/bench_score_gpu
[ -x build/bench_minhash_gpu ] && step bench_minhash_gpu 300 ./build/bench_minhash_gpu
echo "gpu_check: $fails step(s) failed; log in $LOG/all.log"
[ "$fails" -eq 0 ]
