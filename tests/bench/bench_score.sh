#!/usr/bin/env bash
# bench_score.sh - CPU throughput of the score stage's model passes at GPT-2 small's shape
# (tests/bench/bench_score.c): per-token loss and gradient features (LM head + top block,
# Kronecker-projected at k x k), in tokens/s and as a share of the machine's sgemm ceiling.
# Part of `make bench`. BENCH_SCORE_T (default 1024), BENCH_SCORE_ITERS (default 2).
set -euo pipefail
cd "$(dirname "$0")/../.."
source tests/bench/blas.sh
mkdir -p build
$CC -O2 -g -std=c11 -D_GNU_SOURCE -fopenmp -DWN_BLAS=$BLAS -Isrc -o build/bench_score \
    tests/bench/bench_score.c src/model.c src/adam8.c src/gradproj.c src/util.c -lm $BLAS_LIBS
echo "bench_score: $(lscpu 2>/dev/null | sed -n 's/^Model name:[[:space:]]*//p' | head -1), nproc $(nproc), BLAS=$BLAS"
for t in 1 $(nproc); do
    echo "threads $t:"
    OMP_NUM_THREADS=$t ./build/bench_score "${BENCH_SCORE_T:-1024}" "${BENCH_SCORE_ITERS:-2}" 16
done
