/*
** sgemm_raw.c: raw OpenBLAS sgemm timing, the baseline that bench/matmul.lua compares
** trl.nd's matmul against. Usage: trl-bench-sgemm N REPS; prints the median seconds per call.
*/
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>

#include "timing.h"

int main (int argc, char **argv) {
  int n = argc > 1 ? atoi(argv[1]) : 1024, reps = argc > 2 ? atoi(argv[2]) : 5;
  if (n <= 0 || reps <= 0 || reps > 1000) { fprintf(stderr, "usage: %s N REPS\n", argv[0]); return 1; }
  float *a = malloc(sizeof(float) * (size_t)n * n), *b = malloc(sizeof(float) * (size_t)n * n);
  float *c = malloc(sizeof(float) * (size_t)n * n);
  double *t = malloc(sizeof(double) * (size_t)reps);
  if (!a || !b || !c || !t) { fprintf(stderr, "out of memory\n"); return 1; }
  for (long i = 0; i < (long)n * n; i++) { a[i] = (float)(i % 7) * 0.1f; b[i] = (float)(i % 5) * 0.2f; }
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1, a, n, b, n, 0, c, n);  // warm-up
  for (int r = 0; r < reps; r++) {
    double t0 = bench_now();
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1, a, n, b, n, 0, c, n);
    t[r] = bench_now() - t0;
  }
  printf("%.9f\n", bench_median(t, reps));
  free(a); free(b); free(c); free(t);
  return 0;
}
