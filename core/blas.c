/*
** blas.c: the only includer of cblas.h. Row-major sgemm, and the thread count that
** OpenBLAS and our OpenMP loops share.
*/
#include <cblas.h>
#include <omp.h>

#include "ops.h"

void trl_sgemm (int transa, int transb, int M, int N, int K, float alpha,
                const float *A, int lda, const float *B, int ldb, float beta, float *C, int ldc) {
  cblas_sgemm(CblasRowMajor, transa ? CblasTrans : CblasNoTrans, transb ? CblasTrans : CblasNoTrans,
              M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

static int nthreads = 0;

void trl_set_num_threads (int n) {
  if (n < 1) n = 1;
  nthreads = n;
  openblas_set_num_threads(n);
  omp_set_num_threads(n);
}

int trl_get_num_threads (void) {
  return nthreads > 0 ? nthreads : omp_get_max_threads();
}

const char *trl_blas_config (void) {
  return openblas_get_config();
}
