/*
** gemm.h: GEMM helpers for kernels that split work across their own OpenMP threads and want
** each thread's OpenBLAS call single-threaded (two pools on two cores fight; see conv2d.c).
*/
#ifndef TRL_GEMM_H
#define TRL_GEMM_H

// Set OpenBLAS's thread count to 'n' and return the previous count. The count is global to
// OpenBLAS: two ops running on different threads at once would both change it.
int trl_blas_threads (int n);

#endif
