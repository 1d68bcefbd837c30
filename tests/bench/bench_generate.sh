#!/usr/bin/env bash
# bench_generate.sh - generation with the bundled GPT (tests/bench/bench_generate.c): generated
# tokens/s with the key/value cache and without it (a forward over the window every step), greedy,
# random weights, for a small model of the size winnow trains and for GPT-2 small. Part of `make bench`.
# Exits non-zero when the two ways generate different tokens.
set -euo pipefail
cd "$(dirname "$0")/../.."
source tests/bench/blas.sh
mkdir -p build
$CC -O2 -g -std=c11 -D_GNU_SOURCE -fopenmp -DWN_BLAS=$BLAS -Isrc -o build/bench_generate \
    tests/bench/bench_generate.c src/generate.c src/model.c src/adam8.c src/util.c src/gpt_cuda.c -lm $BLAS_LIBS
echo "bench_generate: $(lscpu 2>/dev/null | sed -n 's/^Model name:[[:space:]]*//p' | head -1), nproc $(nproc), BLAS=$BLAS"
#                     L  H  C    T    V      prompt new batch
./build/bench_generate 2  4  128  256  8192   64     192 8
./build/bench_generate 12 12 768  1024 50257  32     32  1
