# blas.sh - sourced by the benchmarks that compile the model themselves: sets CC (default gcc),
# BLAS (1 when OpenBLAS's cblas_sgemm links, else 0) and BLAS_LIBS (-lopenblas or nothing), the
# choice the Makefile makes for winnow.
CC=${CC:-gcc}
BLAS=0
BLAS_LIBS=
if echo 'int main(void){cblas_sgemm(CblasRowMajor,CblasNoTrans,CblasNoTrans,1,1,1,1,0,1,0,1,0,0,1);}' |
    $CC -include cblas.h -x c - -o /dev/null -lopenblas >/dev/null 2>&1; then BLAS=1 BLAS_LIBS=-lopenblas; fi
