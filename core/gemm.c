/*
** gemm.c: OpenBLAS thread control for kernels that run their own OpenMP team (gemm.h).
** Declares the two OpenBLAS entry points itself: blas.c stays the only includer of cblas.h.
*/
#include "gemm.h"

void openblas_set_num_threads (int n);
int openblas_get_num_threads (void);

int trl_blas_threads (int n) {
  int prev = openblas_get_num_threads();
  if (n != prev) openblas_set_num_threads(n);
  return prev;
}
