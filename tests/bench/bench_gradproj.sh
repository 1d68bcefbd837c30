#!/usr/bin/env bash
# bench_gradproj.sh - CPU throughput of the Kronecker-factored gradient projection
# (wn_kron_project, src/gradproj.c) at GPT-2 small shapes, and of per-token NLL/EL2N at
# V = 50257. Not part of `make bench` or of any test: run it by hand.
#
#   1. MLP c_fc:  in 768 -> out 3072, k 64 x 64, 4096 rows in sequences of 1024;
#   2. LM head:   in 768 -> out 50257, k 64 x 64, 1024 rows in sequences of 1024
#                 (G alone is 1024 x 50257 floats = 206 MB);
#   3. nll_el2n:  V 50257, 1024 rows;
# each at OMP_NUM_THREADS 1 and 2 (and nproc when larger), best of BENCH_GP_ITERS timed calls
# after one untimed call; the OpenBLAS path, plus the plain loops for the MLP shape. The
# output hashes must be equal across thread counts (the script fails otherwise).
#
#   BENCH_GP_ITERS   timed calls per run (default 5)
#
# Builds build/bench_gradproj from tests/bench/bench_gradproj.c, src/gradproj.c and
# src/util.c (OpenBLAS when cblas.h and -lopenblas are found, as the Makefile decides).
set -euo pipefail
cd "$(dirname "$0")/../.."

ITERS=${BENCH_GP_ITERS:-5}
source tests/bench/blas.sh
mkdir -p build
$CC -O2 -g -std=c11 -D_GNU_SOURCE -fopenmp -DWN_BLAS=$BLAS -Isrc -o build/bench_gradproj \
    tests/bench/bench_gradproj.c src/gradproj.c src/util.c -lm $BLAS_LIBS

NPROC=$(nproc)
THREADS="1 2"
((NPROC > 2)) && THREADS="$THREADS $NPROC"
echo "bench_gradproj: $(lscpu 2>/dev/null | sed -n 's/^Model name:[[:space:]]*//p' | head -1), nproc $NPROC," \
     "BLAS=$BLAS, $ITERS timed calls (best kept)"

fail=0
run() { # label, then the driver's arguments; checks the hash is the same for every thread count
    local label=$1 first="" out h
    shift
    for t in $THREADS; do
        out=$(OMP_NUM_THREADS=$t ./build/bench_gradproj "$@")
        echo "$out"
        h=${out##* }
        if [[ -z $first ]]; then first=$h; elif [[ $h != "$first" ]]; then
            echo "bench_gradproj: $label: output differs between thread counts" >&2
            fail=1
        fi
    done
}
run mlp  kron 768 3072  64 64 4096 1024 "$ITERS"
run mlp-loops kron 768 3072 64 64 4096 1024 "$ITERS" loops
run head kron 768 50257 64 64 1024 1024 "$ITERS"
run nll  nll 50257 1024 "$ITERS"
exit $fail
