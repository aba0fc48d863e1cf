/*
** test_gemm.c: trl's own sgemm (gemm.h) against a double-precision reference: M, N and K on
** both sides of the register tile (12 or 8 rows, 16 or 32 columns) and of the K block (256),
** strided B and C, the bias, the epilogue (scale, shift, clamp; NaN becomes lo), C += A x B,
** the packed layout gemm.h documents (from A and from its transpose), and the column split
** over threads (outside a parallel region) against one thread (inside one): the same bits.
** trl_gemm_nt (C (+)= A x B^T, both read in place) the same way, over its 6 x 4 tiles, the
** 16-float vector and its 512-float block, and the shapes it leaves to OpenBLAS; its bits do
** not depend on the rows' alignment. Bound: |C - ref| <= 1e-5 * (1 + sum|a*b|) per element
** (float sums of up to 1100 terms; measured about 1e-7).
*/
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "gemm.h"
#include "ops.h"

static float *rnd (size_t n, unsigned *seed) {
  float *p = malloc(sizeof(float) * (n ? n : 1));
  for (size_t i = 0; i < n; i++) p[i] = (float)rand_r(seed) / RAND_MAX * 2.0f - 1.0f;
  return p;
}

// C (M,N) of trl_gemm_packed against sum_k A B in double, then + bias or the epilogue;
// mode 3: C += A x B (trl_gemm_packed_add), with A packed from its transpose.
static void one (int M, int N, int K, int ldb, int ldc, int mode, unsigned seed) {
  float *A = rnd((size_t)M * K, &seed), *B = rnd((size_t)K * ldb, &seed);
  float *C = rnd((size_t)M * ldc, &seed), *bias = rnd((size_t)M + 3, &seed);
  float *scale = rnd((size_t)M + 3, &seed), *shift = rnd((size_t)M + 3, &seed);
  float *keep = malloc(sizeof(float) * M * ldc);
  memcpy(keep, C, sizeof(float) * M * ldc);
  trl_epilogue e = { scale, shift, -0.25f, 0.5f };
  int row0 = 3;   // bias and epilogue of channel row0 + i
  float *Ap = malloc(sizeof(float) * trl_gemm_packed_size(M, K));
  if (mode == 3) {
    float *At = malloc(sizeof(float) * K * (M + 5));   // (K, M) with rows M + 5 apart
    for (int i = 0; i < M; i++)
      for (int k = 0; k < K; k++) At[(size_t)k * (M + 5) + i] = A[(size_t)i * K + k];
    trl_gemm_pack_t(Ap, At, M + 5, M, K);
    free(At);
    trl_gemm_packed_add(M, N, K, Ap, B, ldb, C, ldc);
  } else {
    trl_gemm_pack(Ap, A, K, M, K);
    trl_gemm_packed(M, N, K, Ap, B, ldb, C, ldc, mode == 1 ? bias : NULL, mode == 2 ? &e : NULL, row0);
  }
  int bad = 0;
  for (int i = 0; i < M && !bad; i++)
    for (int j = 0; j < ldc && !bad; j++) {
      float got = C[(size_t)i * ldc + j];
      if (j >= N) {   // columns past N untouched
        if (memcmp(&got, &keep[(size_t)i * ldc + j], sizeof got)) bad = 1;
        continue;
      }
      double s = 0, mag = 0;
      for (int k = 0; k < K; k++) {
        double t = (double)A[(size_t)i * K + k] * B[(size_t)k * ldb + j];
        s += t, mag += fabs(t);
      }
      if (mode == 1) s += bias[row0 + i];
      if (mode == 3) s += keep[(size_t)i * ldc + j], mag += fabs(keep[(size_t)i * ldc + j]);
      if (mode == 2) {
        s = s * scale[row0 + i] + shift[row0 + i];
        mag = mag * fabs(scale[row0 + i]) + fabs(shift[row0 + i]);
        s = s < e.lo ? e.lo : s > e.hi ? e.hi : s;
      }
      if (!(fabs(got - s) <= 1e-5 * (1 + mag))) {
        bad = 1;
        fprintf(stderr, "M %d N %d K %d ldb %d ldc %d mode %d: C[%d][%d] = %.9g, want %.9g\n",
                M, N, K, ldb, ldc, mode, i, j, got, s);
      }
    }
  CHECK(!bad);
  free(A), free(Ap), free(B), free(C), free(bias), free(scale), free(shift), free(keep);
}

// The packed layout: A[i][k] at Ap[(i / mr) * mr * K + k * mr + i % mr], pad rows zero.
static void layout (int M, int K) {
  unsigned seed = 7;
  float *A = rnd((size_t)M * K, &seed);
  int mr = trl_gemm_mr(M);
  size_t n = trl_gemm_packed_size(M, K);
  CHECK(mr >= 1 && mr <= 16);
  CHECK_EQ(n, (size_t)(M + mr - 1) / mr * mr * K);
  float *Ap = malloc(sizeof(float) * n);
  trl_gemm_pack(Ap, A, K, M, K);
  int bad = 0;
  for (int i = 0; i < (M + mr - 1) / mr * mr; i++)
    for (int k = 0; k < K; k++) {
      float v = Ap[(size_t)(i / mr) * mr * K + (size_t)k * mr + i % mr];
      if (v != (i < M ? A[(size_t)i * K + k] : 0.0f)) bad = 1;
    }
  CHECK(!bad);
  free(A), free(Ap);
}

// Outside a parallel region a large product splits its columns over two threads; inside one
// it runs on the caller: each column gets the same sums in the same order either way.
static void threads_same_bits (void) {
  int M = 70, N = 1000, K = 600;
  unsigned seed = 11;
  float *A = rnd((size_t)M * K, &seed), *B = rnd((size_t)K * N, &seed);
  float *C1 = malloc(sizeof(float) * M * N), *C2 = malloc(sizeof(float) * M * N);
  float *Ap = malloc(sizeof(float) * trl_gemm_packed_size(M, K));
  trl_gemm_pack(Ap, A, K, M, K);
  trl_set_num_threads(2);
  trl_gemm_packed(M, N, K, Ap, B, N, C1, N, NULL, NULL, 0);
  #pragma omp parallel num_threads(2)
  {
    #pragma omp single
    trl_gemm_packed(M, N, K, Ap, B, N, C2, N, NULL, NULL, 0);
  }
  CHECK(memcmp(C1, C2, sizeof(float) * M * N) == 0);
  // the fused epilogue gives the bits of the plain product followed by trl_epilogue_row
  float scale[70], shift[70];
  for (int i = 0; i < M; i++) scale[i] = 0.5f + i * 0.01f, shift[i] = -0.1f * (i % 5);
  trl_epilogue e = { scale, shift, 0.0f, 6.0f };
  trl_gemm_packed(M, N, K, Ap, B, N, C2, N, NULL, &e, 0);
  for (int i = 0; i < M; i++) trl_epilogue_row(C1 + (size_t)i * N, C1 + (size_t)i * N, &e, i, N);
  CHECK(memcmp(C1, C2, sizeof(float) * M * N) == 0);
  free(A), free(B), free(C1), free(C2), free(Ap);
}

// NaN in A: the clamp maps it to lo, as trl_epilogue_row and relu do.
static void nan_to_lo (void) {
  float A[2] = { NAN, 1.0f }, B[2] = { 1.0f, 1.0f }, C[1], s = 1.0f, t = 0.0f;
  float Ap[32];
  trl_epilogue e = { &s, &t, 0.0f, 6.0f };
  trl_gemm_pack(Ap, A, 2, 1, 2);
  trl_gemm_packed(1, 1, 2, Ap, B, 1, C, 1, NULL, &e, 0);
  CHECK(C[0] == 0.0f);
}

// trl_gemm_nt: C (M,N) (+)= A (M,K) x B (N,K)^T with rows lda, ldb, ldc apart, against the
// double sums; without 'add', C's old values (NaN here) are never read; columns past N and
// rows' floats past K are never touched or used.
static void nt_one (int M, int N, int K, int lda, int ldb, int ldc, int add, unsigned seed) {
  float *A = rnd((size_t)M * lda, &seed), *B = rnd((size_t)N * ldb, &seed);
  float *C = rnd((size_t)M * ldc, &seed), *keep = malloc(sizeof(float) * M * ldc);
  for (int i = 0; i < M; i++)
    for (int k = K; k < lda; k++) A[(size_t)i * lda + k] = NAN;
  for (int j = 0; j < N; j++)
    for (int k = K; k < ldb; k++) B[(size_t)j * ldb + k] = NAN;
  if (!add)
    for (int i = 0; i < M; i++)
      for (int j = 0; j < N; j++) C[(size_t)i * ldc + j] = NAN;
  memcpy(keep, C, sizeof(float) * M * ldc);
  trl_gemm_nt(M, N, K, A, lda, B, ldb, C, ldc, add);
  int bad = 0;
  for (int i = 0; i < M && !bad; i++)
    for (int j = 0; j < ldc && !bad; j++) {
      float got = C[(size_t)i * ldc + j];
      if (j >= N) {
        if (memcmp(&got, &keep[(size_t)i * ldc + j], sizeof got)) bad = 1;
        continue;
      }
      double s = add ? keep[(size_t)i * ldc + j] : 0, mag = fabs(s);
      for (int k = 0; k < K; k++) {
        double t = (double)A[(size_t)i * lda + k] * B[(size_t)j * ldb + k];
        s += t, mag += fabs(t);
      }
      if (!(fabs(got - s) <= 1e-5 * (1 + mag))) {
        bad = 1;
        fprintf(stderr, "gemm_nt M %d N %d K %d lda %d ldb %d ldc %d add %d: C[%d][%d] = %.9g, "
                "want %.9g\n", M, N, K, lda, ldb, ldc, add, i, j, got, s);
      }
    }
  CHECK(!bad);
  free(A), free(B), free(C), free(keep);
}

// trl_gemm_nt's sums do not depend on where the rows start (each k goes to lane k % 16), nor
// on the split of C's columns over threads.
static void nt_same_bits (void) {
  int M = 64, N = 147, K = 1000;   // the stem's shape: the lane sums, not OpenBLAS
  unsigned seed = 5;
  float *A = rnd((size_t)M * K, &seed), *B = rnd((size_t)N * K, &seed);
  float *Ab = malloc(sizeof(float) * (M * K + 16)), *Bb = malloc(sizeof(float) * (N * K + 16));
  float *C1 = malloc(sizeof(float) * M * N), *C2 = malloc(sizeof(float) * M * N);
  trl_set_num_threads(2);
  trl_gemm_nt(M, N, K, A, K, B, K, C1, N, 0);
  for (int off = 1; off < 16; off += 5) {
    memcpy(Ab + off, A, sizeof(float) * M * K);
    memcpy(Bb + 16 - off, B, sizeof(float) * N * K);
    #pragma omp parallel num_threads(2)
    {
      #pragma omp single
      trl_gemm_nt(M, N, K, Ab + off, K, Bb + 16 - off, K, C2, N, 0);
    }
    CHECK(memcmp(C1, C2, sizeof(float) * M * N) == 0);
  }
  free(A), free(B), free(Ab), free(Bb), free(C1), free(C2);
}

static void all_cases (void) {
  // M and N around the register tiles of both instruction sets (AVX-512: 12 or 8 x 32;
  // AVX2: 6 x 16, halves of 8 columns)
  int Ms[] = { 1, 7, 8, 12, 13, 16, 24, 25, 64, 70 };
  int Ns[] = { 1, 8, 15, 16, 17, 24, 31, 32, 33, 49, 100 };
  int Ks[] = { 1, 3, 64, 255, 256, 257, 513, 600, 1100 };   // 9: the modes rotate over K
  unsigned seed = 1;
  for (size_t a = 0; a < sizeof Ms / sizeof *Ms; a++)
    for (size_t b = 0; b < sizeof Ns / sizeof *Ns; b++)
      for (size_t c = 0; c < sizeof Ks / sizeof *Ks; c++) {
        int M = Ms[a], N = Ns[b], K = Ks[c];
        one(M, N, K, N, N, (int)(seed % 4), seed);
        seed++;
      }
  // strided B and C (Winograd's V and M rows are 36 * ld apart), every mode
  for (int mode = 0; mode < 4; mode++) {
    one(40, 45, 70, 101, 77, mode, 100 + mode);
    one(128, 200, 300, 230, 211, mode, 200 + mode);
  }
  for (int M = 1; M <= 30; M++) layout(M, 5);
  layout(512, 9);
  threads_same_bits();
  // trl_gemm_nt: tiles of 6 x 4 and their edges, K around the 16-float vector and the 512
  // block, B past its 128-row block; the shapes OpenBLAS takes (short K, N > 512) too
  int nM[] = { 1, 5, 6, 7, 13, 64 }, nN[] = { 1, 3, 4, 5, 9, 130, 147 };
  int nK[] = { 1, 15, 16, 17, 98, 512, 513, 1100 };
  for (size_t a = 0; a < sizeof nM / sizeof *nM; a++)
    for (size_t b = 0; b < sizeof nN / sizeof *nN; b++)
      for (size_t c = 0; c < sizeof nK / sizeof *nK; c++) {
        int M = nM[a], N = nN[b], K = nK[c];
        nt_one(M, N, K, K + (int)(seed % 3), K + (int)(seed % 5), N + (int)(seed % 2),
               (int)(seed % 2), seed);
        seed++;
      }
  nt_one(40, 600, 300, 300, 310, 601, 1, 300);   // N > 512: OpenBLAS
  nt_one(512, 512, 128, 128, 128, 512, 0, 301);  // short K: OpenBLAS
  nt_same_bits();
  nan_to_lo();
}

int main (void) {
  all_cases();
  if (trl_cpu_avx512()) {   // and the AVX2 kernels, which an AVX-512 CPU runs too
    trl_cpu_no_avx512(1);
    printf("again with TRL_NO_AVX512 (the AVX2 kernels)\n");
    all_cases();
    trl_cpu_no_avx512(0);
  } else {
    printf("no AVX-512 on this CPU: the AVX2 (or portable) kernels only\n");
  }
  return check_summary();
}
