/*
** gemm.h: GEMM helpers for kernels that split work across their own OpenMP threads and want
** each thread's OpenBLAS call single-threaded (two pools on two cores fight; see conv2d.c),
** and trl's own fused sgemm for forward convs.
*/
#ifndef TRL_GEMM_H
#define TRL_GEMM_H

#include "nn.h"

// Whether this CPU runs the AVX-512 kernels (AVX-512 F and VL, FMA); checked once. Functions
// that use them carry TRL_AVX512, so the rest of the build keeps its x86-64-v3 baseline.
// TRL_NO_AVX512=1 in the environment, or trl_cpu_no_avx512(1) (not while ops run), makes an
// AVX-512 CPU run the AVX2 kernels instead: the tests cover both sets that way.
int trl_cpu_avx512 (void);
void trl_cpu_no_avx512 (int off);
#if defined(__x86_64__) && defined(__GNUC__)
#define TRL_AVX512 __attribute__((target("avx2,fma,avx512f,avx512vl")))
#endif

// Set OpenBLAS's thread count to 'n' and return the previous count. The count is global to
// OpenBLAS: two ops running on different threads at once would both change it.
int trl_blas_threads (int n);

// Row-major C (M,N) = A (M,K) x B (K,N), then per row i either + bias[row0 + i] or the
// epilogue e of channel row0 + i (at most one of bias and e; both NULL: the plain product),
// with A packed once by trl_gemm_pack for many products (a conv's weight, all its images).
// The result is written once, the epilogue applied in registers (AVX-512 or AVX2; elsewhere
// OpenBLAS and a separate pass). Inside an OpenMP parallel region it runs on the calling thread
// only; outside, large products split their columns over trl_get_num_threads().
// Ap holds trl_gemm_packed_size(M, K) floats: row i, column k of A is at
// Ap[(i / mr) * mr * K + k * mr + i % mr] with mr = trl_gemm_mr(M) (at most 16; 1 where the
// CPU lacks AVX2: plain row-major), rows past M up to a multiple of mr zero.
int trl_gemm_mr (int M);
size_t trl_gemm_packed_size (int M, int K);
void trl_gemm_pack (float *Ap, const float *A, int lda, int M, int K);
void trl_gemm_packed (int M, int N, int K, const float *Ap, const float *B, int ldb, float *C,
                      int ldc, const float *bias, const trl_epilogue *e, int row0);
// trl_gemm_pack for A given as its transpose At (K,M), rows lda apart (a conv's data gradient
// multiplies by the weight transposed).
void trl_gemm_pack_t (float *Ap, const float *At, int lda, int M, int K);
// C += A x B, A packed.
void trl_gemm_packed_add (int M, int N, int K, const float *Ap, const float *B, int ldb,
                          float *C, int ldc);
// C (M,N) = A (M,K) x B (N,K)^T, or C += that with 'add': A's rows lda apart, B's ldb,
// both read in place (no packing). Threads as trl_gemm_packed; the shapes it leaves to
// OpenBLAS run on OpenBLAS's threads (callers inside a parallel region set those to one).
void trl_gemm_nt (int M, int N, int K, const float *A, int lda, const float *B, int ldb,
                  float *C, int ldc, int add);

#endif
