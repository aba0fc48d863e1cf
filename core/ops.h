/*
** ops.h: the op builders of trl. Each checks shapes first, allocates its result (a new
** ref through 'out') and runs the kernel; while autograd records (tape.h) it also adds a
** node so that backward can run. Dims are 0-based and may be negative.
*/
#ifndef TRL_OPS_H
#define TRL_OPS_H

#include "tensor.h"

// Every op, as X(ENUM, name): the tape, the names and the tests all read this list.
typedef enum {
#define X(e, n) TRL_OP_##e,
#include "ops.def"
#undef X
  TRL_OP_COUNT
} trl_op;

const char *trl_op_name (trl_op op);

/* {==================================================================
** Elementwise (NumPy broadcasting; dtype promotion: f32 > i64 > u8;
** comparisons give u8 0/1; DIV of integers gives f32)
** =================================================================== */

trl_status trl_unary (trl_tensor **out, trl_op op, trl_tensor *a);
trl_status trl_binary (trl_tensor **out, trl_op op, trl_tensor *a, trl_tensor *b);
// 'a' clipped to [lo, hi] (f32).
trl_status trl_clip (trl_tensor **out, trl_tensor *a, double lo, double hi);
// cond ? a : b, broadcasting all three.
trl_status trl_where (trl_tensor **out, trl_tensor *cond, trl_tensor *a, trl_tensor *b);

/* }================================================================== */

/* {==================================================================
** Reductions: over one 'dim' or, with dim == TRL_ALLDIMS, over all
** =================================================================== */

#define TRL_ALLDIMS 1000
// SUM, MEAN, MAX, MIN (values) and ARGMAX, ARGMIN (0-based i64 indices, first on ties).
trl_status trl_reduce (trl_tensor **out, trl_op op, trl_tensor *a, int dim, int keepdim);

/* }================================================================== */

/* {==================================================================
** Linear algebra and shape ops
** =================================================================== */

// (M,K) x (K,N) -> (M,N); (B,M,K) x (B,K,N) -> (B,M,N); 1-D operands as in NumPy.
trl_status trl_matmul (trl_tensor **out, trl_tensor *a, trl_tensor *b);
// C = alpha * op(A) op(B) + beta * C on raw row-major float buffers (blas.c).
void trl_sgemm (int transa, int transb, int M, int N, int K, float alpha,
                const float *A, int lda, const float *B, int ldb, float beta, float *C, int ldc);
// Concatenate 'n' tensors along 'dim'.
trl_status trl_concat (trl_tensor **out, trl_tensor *const *ts, int n, int dim);
// The view functions of tensor.h, recorded for autograd (use these on anything that may need grad).
trl_status trl_reshape (trl_tensor **out, trl_tensor *t, int ndim, const int64_t *shape);
trl_status trl_permute (trl_tensor **out, trl_tensor *t, const int *perm);
trl_status trl_slice (trl_tensor **out, trl_tensor *t, int dim, int64_t start, int64_t stop,
                      int64_t step);
trl_status trl_expand (trl_tensor **out, trl_tensor *t, int ndim, const int64_t *shape);
// A contiguous copy in dtype 'dt' (recorded when float32).
trl_status trl_copy (trl_tensor **out, trl_tensor *t, trl_dtype dt);

/* }================================================================== */

/* {==================================================================
** Threads and random numbers
** =================================================================== */

// One setting for OpenBLAS and our own parallel loops.
void trl_set_num_threads (int n);
int trl_get_num_threads (void);
// The BLAS build in words ("OpenBLAS 0.3.21 ..."), for --version.
const char *trl_blas_config (void);

// A seedable generator (xoshiro256**); each worker thread owns its own.
typedef struct { uint64_t s[4]; } trl_rng;
void trl_rng_seed (trl_rng *r, uint64_t seed);
uint64_t trl_rng_next (trl_rng *r);
double trl_rng_uniform01 (trl_rng *r);                 // [0, 1)
double trl_rng_normal01 (trl_rng *r);
trl_rng *trl_rng_default (void);                        // the main thread's generator
// Fill 't' (any view, f32) from U(lo, hi) / N(mean, std).
trl_status trl_random_uniform (trl_tensor *t, trl_rng *r, double lo, double hi);
trl_status trl_random_normal (trl_tensor *t, trl_rng *r, double mean, double std);

/* }================================================================== */

#endif
