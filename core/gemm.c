/*
** gemm.c: OpenBLAS thread control for kernels that run their own OpenMP team, and trl's own
** sgemm (gemm.h) for conv forwards and data gradients: C = A x B with the bias or the
** epilogue applied while the result is in registers. Declares the two OpenBLAS entry points itself: blas.c stays the
** only includer of cblas.h.
**
** Why not OpenBLAS there: with beta 0 it first zeroes all of C (sgemm_beta, a memset), then
** adds into it, and the epilogue is one more pass: three trips through memory for an output
** that a fused kernel writes once. A is packed once per conv (panels of 12 or 8 rows, k-major),
** B per block of KC rows (panels of NR columns, in L2); a tile of 12 x 32 (or 8 x 32) of C is
** held in 24 (16) registers through a block and stored once, with the epilogue on the last.
** One thread, A prepacked, M = K = 256..512: 155-165 GFLOP/s against OpenBLAS's 130-135 on
** this machine's AVX-512 cores (216 peak; the kernel alone on L1-resident panels: 181); see
** bench/NOTES.md 25 and 29. CPUs with AVX2 but not AVX-512 run tiles of 6 x 16 in ymm
** registers (NOTES 51).
*/
#include <omp.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "gemm.h"
#include "mem.h"
#include "ops.h"

void openblas_set_num_threads (int n);
int openblas_get_num_threads (void);

int trl_blas_threads (int n) {
  int prev = openblas_get_num_threads();
  if (n != prev) openblas_set_num_threads(n);
  return prev;
}

// Packing where the CPU lacks AVX-512: A row-major, from A or from its transpose.
static void pack_rows (float *Ap, const float *A, int lda, int M, int K) {
  for (int i = 0; i < M; i++) memcpy(Ap + (size_t)i * K, A + (size_t)i * lda, sizeof(float) * K);
}

static void pack_rows_t (float *Ap, const float *At, int lda, int M, int K) {
  for (int i = 0; i < M; i++)
    for (int k = 0; k < K; k++) Ap[(size_t)i * K + k] = At[(size_t)k * lda + i];
}

// The portable path: what the fused kernel computes, by OpenBLAS and a separate pass.
static void gemm_blas (int M, int N, int K, const float *A, int lda, const float *B, int ldb,
                       float *C, int ldc, const float *bias, const trl_epilogue *e, int row0) {
  if (bias)
    for (int i = 0; i < M; i++)
      for (int j = 0; j < N; j++) C[(size_t)i * ldc + j] = bias[row0 + i];
  trl_sgemm(0, 0, M, N, K, 1.0f, A, lda, B, ldb, bias ? 1.0f : 0.0f, C, ldc);
  if (e)
    for (int i = 0; i < M; i++) trl_epilogue_row(C + (size_t)i * ldc, C + (size_t)i * ldc, e, row0 + i, N);
}

static int avx512_off = -1;   // TRL_NO_AVX512=1 or trl_cpu_no_avx512(1)

int trl_cpu_avx512 (void) {
#if defined(__x86_64__) && defined(__GNUC__)
  static int ok = -1;
  if (ok < 0) {
    __builtin_cpu_init();
    ok = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl") &&
         __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  }
  if (avx512_off < 0) {
    const char *e = getenv("TRL_NO_AVX512");
    avx512_off = e && e[0] == '1';
  }
  return ok && !avx512_off;
#else
  return 0;
#endif
}

void trl_cpu_no_avx512 (int off) { avx512_off = off != 0; }

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define W5 TRL_AVX512

#define MR 12   // rows of a register tile: 12, or 8 where that pads M less (mr_for)
#define NR 32
#define KC 256

// Rows per panel for an M-row A: 12, or 8 when 12 would pad M by 5% more rows (64: 72 with
// 12). The 12-row kernel is ~5% faster where both fit (M = 512, measured).
static int mr_for (int M) {
  int w12 = (M + 11) / 12 * 12 - M, w8 = (M + 7) / 8 * 8 - M;
  return 20 * (w12 - w8) > M ? 8 : 12;
}

// A (M,K) into panels of R rows, each K x R (k-major), rows past M zero.
static void pack_a (float *Ap, const float *A, int lda, int M, int K, int R) {
  for (int i0 = 0; i0 < M; i0 += R) {
    float *p = Ap + (size_t)i0 * K;
    int mr = M - i0 < R ? M - i0 : R;
    for (int r = 0; r < R; r++) {
      const float *a = A + (size_t)(i0 + r) * lda;
      if (r < mr) for (int k = 0; k < K; k++) p[(size_t)k * R + r] = a[k];
      else for (int k = 0; k < K; k++) p[(size_t)k * R + r] = 0.0f;
    }
  }
}

// The same for A given transposed: A (M,K) is At (K,M), rows lda apart.
static void pack_at (float *Ap, const float *At, int lda, int M, int K, int R) {
  for (int i0 = 0; i0 < M; i0 += R) {
    float *p = Ap + (size_t)i0 * K;
    int mr = M - i0 < R ? M - i0 : R;
    for (int k = 0; k < K; k++) {
      memcpy(p + (size_t)k * R, At + (size_t)k * lda + i0, sizeof(float) * mr);
      for (int r = mr; r < R; r++) p[(size_t)k * R + r] = 0.0f;
    }
  }
}

// B rows [k0, k0+kc), columns [j0, j0+nr) into kc x NR, columns past nr zero.
W5 static void pack_b (float *Bp, const float *B, int ldb, int k0, int kc, int j0, int nr) {
  __mmask16 m0 = nr >= 16 ? 0xFFFF : (__mmask16)((1u << nr) - 1);
  __mmask16 m1 = nr >= 32 ? 0xFFFF : nr <= 16 ? 0 : (__mmask16)((1u << (nr - 16)) - 1);
  for (int k = 0; k < kc; k++) {
    const float *b = B + (size_t)(k0 + k) * ldb + j0;
    _mm512_store_ps(Bp + k * NR, _mm512_maskz_loadu_ps(m0, b));
    _mm512_store_ps(Bp + k * NR + 16, _mm512_maskz_loadu_ps(m1, b + 16));
  }
}

typedef struct {
  const float *bias;         // per row, or NULL
  const trl_epilogue *e;     // per row, or NULL
  int row0;                  // channel of C's row 0 (for bias and e)
  int add;                   // C += A x B: the first K block starts from C too
} tail_ops;

// C (mr x nr of R x NR) = [C +] a (kc x R) x b (kc x NR); 'first' starts from the bias or
// zero, 'last' applies the epilogue before the store. W (1 or 2) is the number of 16-float
// vectors a row computes: panels of 16 or fewer columns take W = 1. R is 12 or 8.
W5 static inline __attribute__((always_inline))
void kernel_w (const int W, const int R, int kc, const float *a, const float *b, float *c,
               int ldc, int mr, int nr, int first, int last, const tail_ops *t, int row) {
  __m512 acc[MR][2];   // R <= MR
  __mmask16 m[2];
  m[0] = nr >= 16 ? 0xFFFF : (__mmask16)((1u << nr) - 1);
  m[1] = nr >= 32 ? 0xFFFF : nr <= 16 ? 0 : (__mmask16)((1u << (nr - 16)) - 1);
  #pragma GCC unroll 12
  for (int r = 0; r < R; r++)
    for (int w = 0; w < W; w++) {
      if (!first && r < mr) acc[r][w] = _mm512_maskz_loadu_ps(m[w], c + (size_t)r * ldc + 16 * w);
      else if (first && t->bias && r < mr) acc[r][w] = _mm512_set1_ps(t->bias[t->row0 + row + r]);
      else acc[r][w] = _mm512_setzero_ps();
    }
  #pragma GCC unroll 2
  for (int k = 0; k < kc; k++) {
    __m512 bv[2];
    for (int w = 0; w < W; w++) bv[w] = _mm512_load_ps(b + k * NR + 16 * w);
    #pragma GCC unroll 12
    for (int r = 0; r < R; r++) {
      __m512 av = _mm512_set1_ps(a[k * R + r]);
      for (int w = 0; w < W; w++) acc[r][w] = _mm512_fmadd_ps(av, bv[w], acc[r][w]);
    }
  }
  const trl_epilogue *e = last ? t->e : NULL;
  int clamp = e && (e->lo != -__builtin_inff() || e->hi != __builtin_inff());
  #pragma GCC unroll 12
  for (int r = 0; r < R; r++) {
    if (r >= mr) break;
    for (int w = 0; w < W; w++) {
      __m512 v = acc[r][w];
      if (e) {   // as trl_epilogue_row: fmadd, then max(v, lo) (NaN -> lo), min(v, hi)
        int ch = t->row0 + row + r;
        v = _mm512_fmadd_ps(v, _mm512_set1_ps(e->scale ? e->scale[ch] : 1.0f),
                            _mm512_set1_ps(e->shift ? e->shift[ch] : 0.0f));
        if (clamp) v = _mm512_min_ps(_mm512_max_ps(v, _mm512_set1_ps(e->lo)), _mm512_set1_ps(e->hi));
      }
      _mm512_mask_storeu_ps(c + (size_t)r * ldc + 16 * w, m[w], v);
    }
  }
}

typedef void kernel_fn (int kc, const float *a, const float *b, float *c, int ldc, int mr,
                        int nr, int first, int last, const tail_ops *t, int row);
#define KERNEL(name, W, R) \
  W5 static void name (int kc, const float *a, const float *b, float *c, int ldc, int mr, \
                       int nr, int first, int last, const tail_ops *t, int row) { \
    kernel_w(W, R, kc, a, b, c, ldc, mr, nr, first, last, t, row); \
  }
// A register tile's kernels and its B packing, for one instruction set.
typedef void pack_b_fn (float *Bp, const float *B, int ldb, int k0, int kc, int j0, int nr);
typedef struct {
  int rows, cols;           // of a register tile
  kernel_fn *full, *half;   // 'cols' columns; cols / 2 or fewer
  pack_b_fn *pack_b;        // kc x cols panels, columns past nr zero
} gemm_isa;

KERNEL(kernel12x2, 2, 12)
KERNEL(kernel12x1, 1, 12)
KERNEL(kernel8x2, 2, 8)
KERNEL(kernel8x1, 1, 8)

#if defined(__AVX2__) && defined(__FMA__)
// Where the CPU has AVX2 and FMA but not AVX-512: tiles of 6 x 16 (12 of the 16 ymm registers
// accumulate; two hold B's row, one A's broadcast), as BLIS's Haswell kernel. Edges of C go
// through a small buffer instead of masked stores.
#define NR2 16

// B rows [k0, k0+kc), columns [j0, j0+nr) into kc x NR2, columns past nr zero.
static void pack_b2 (float *Bp, const float *B, int ldb, int k0, int kc, int j0, int nr) {
  if (nr == NR2) {
    for (int k = 0; k < kc; k++) {
      const float *b = B + (size_t)(k0 + k) * ldb + j0;
      _mm256_store_ps(Bp + k * NR2, _mm256_loadu_ps(b));
      _mm256_store_ps(Bp + k * NR2 + 8, _mm256_loadu_ps(b + 8));
    }
    return;
  }
  for (int k = 0; k < kc; k++) {
    const float *b = B + (size_t)(k0 + k) * ldb + j0;
    int j = 0;
    for (; j < nr; j++) Bp[k * NR2 + j] = b[j];
    for (; j < NR2; j++) Bp[k * NR2 + j] = 0.0f;
  }
}

// The AVX2 twin of kernel_w for full tiles: W (1 or 2) 8-float vectors per row, R <= 6 rows.
static inline __attribute__((always_inline))
void kernel2_w (const int W, const int R, int kc, const float *a, const float *b, float *c,
                int ldc, int mr, int first, int last, const tail_ops *t, int row) {
  __m256 acc[6][2];
  #pragma GCC unroll 6
  for (int r = 0; r < R; r++)
    #pragma GCC unroll 2
    for (int w = 0; w < W; w++) {
      if (!first && r < mr) acc[r][w] = _mm256_loadu_ps(c + (size_t)r * ldc + 8 * w);
      else if (first && t->bias && r < mr) acc[r][w] = _mm256_set1_ps(t->bias[t->row0 + row + r]);
      else acc[r][w] = _mm256_setzero_ps();
    }
  #pragma GCC unroll 4
  for (int k = 0; k < kc; k++) {
    __m256 bv[2];
    #pragma GCC unroll 2
    for (int w = 0; w < W; w++) bv[w] = _mm256_load_ps(b + k * NR2 + 8 * w);
    #pragma GCC unroll 6
    for (int r = 0; r < R; r++) {
      __m256 av = _mm256_broadcast_ss(a + k * R + r);
      #pragma GCC unroll 2
      for (int w = 0; w < W; w++) acc[r][w] = _mm256_fmadd_ps(av, bv[w], acc[r][w]);
    }
  }
  const trl_epilogue *e = last ? t->e : NULL;
  int clamp = e && (e->lo != -__builtin_inff() || e->hi != __builtin_inff());
  #pragma GCC unroll 6
  for (int r = 0; r < R; r++) {
    if (r >= mr) continue;   // not break: with it GCC kept acc on the stack (NOTES 51)
    #pragma GCC unroll 2
    for (int w = 0; w < W; w++) {
      __m256 v = acc[r][w];
      if (e) {   // as trl_epilogue_row: fmadd, then max(v, lo) (NaN -> lo), min(v, hi)
        int ch = t->row0 + row + r;
        v = _mm256_fmadd_ps(v, _mm256_set1_ps(e->scale ? e->scale[ch] : 1.0f),
                            _mm256_set1_ps(e->shift ? e->shift[ch] : 0.0f));
        if (clamp)
          v = _mm256_min_ps(_mm256_max_ps(v, _mm256_set1_ps(e->lo)), _mm256_set1_ps(e->hi));
      }
      _mm256_storeu_ps(c + (size_t)r * ldc + 8 * w, v);
    }
  }
}

// A tile narrower than 8 W columns runs on a copy of its nr columns of C.
#define KERNEL2(name, W, R) \
  static void name (int kc, const float *a, const float *b, float *c, int ldc, int mr, \
                    int nr, int first, int last, const tail_ops *t, int row) { \
    if (nr == 8 * W) { \
      kernel2_w(W, R, kc, a, b, c, ldc, mr, first, last, t, row); \
      return; \
    } \
    float edge[R * NR2]; \
    for (int r = 0; r < mr; r++) \
      for (int j = 0; j < 8 * W; j++) \
        edge[r * NR2 + j] = first || j >= nr ? 0.0f : c[(size_t)r * ldc + j]; \
    kernel2_w(W, R, kc, a, b, edge, NR2, mr, first, last, t, row); \
    for (int r = 0; r < mr; r++) memcpy(c + (size_t)r * ldc, edge + r * NR2, sizeof(float) * nr); \
  }
KERNEL2(kernel6x2, 2, 6)
KERNEL2(kernel6x1, 1, 6)
static const gemm_isa isa_avx2 = { 6, NR2, kernel6x2, kernel6x1, pack_b2 };
#endif

// Columns [j0, j1) of C, on this thread; Ap is A packed by pack_a. For each block of KC rows
// of B, up to bpn floats (Bp) of its columns are packed at once (panels of NR, in L2), then
// each panel of R rows of C sweeps them left to right: C is written as R sequential streams
// (the prefetchers follow them), with A's kc x R micro-panel in L1.
#define BP_FLOATS (128 * 1024)
static void gemm_cols (int M, int K, const float *Ap, const float *B, int ldb, float *C,
                       int ldc, int j0, int j1, const tail_ops *t, float *Bp, size_t bpn,
                       const gemm_isa *isa) {
  int R = isa->rows, NR_ = isa->cols;
  for (int k0 = 0; k0 < K; k0 += KC) {
    int kc = K - k0 < KC ? K - k0 : KC;
    int nc = (int)(bpn / kc / NR_ * NR_);
    for (int jc = j0; jc < j1; jc += nc) {
      int jn = j1 - jc < nc ? j1 - jc : nc;
      for (int j = 0; j < jn; j += NR_)
        isa->pack_b(Bp + (size_t)j * kc, B, ldb, k0, kc, jc + j, jn - j < NR_ ? jn - j : NR_);
      for (int i = 0; i < M; i += R)
        for (int j = 0; j < jn; j += NR_) {
          int nr = jn - j < NR_ ? jn - j : NR_;
          (nr > NR_ / 2 ? isa->full : isa->half)(kc, Ap + (size_t)i * K + (size_t)k0 * R,
                                                 Bp + (size_t)j * kc, C + (size_t)i * ldc + jc + j,
                                                 ldc, M - i < R ? M - i : R, nr,
                                                 k0 == 0 && !t->add, k0 + kc >= K, t, i);
        }
    }
  }
}

// This thread's B panels: BP_FLOATS, 64-byte aligned, kept for the thread's life.
static _Thread_local float *bp_buf;

// The floats of B a block packs: a quarter of the L2 cache (128K with 2 MiB, as measured on
// the AVX-512 host; 32K with Zen 3's 512 KiB, where a 512 KiB block filled L2 and the stem's
// forward ran 5-7% slower: bench/NOTES.md 68), at most BP_FLOATS.
static size_t bp_floats (void) {
  static _Atomic size_t n;
  size_t v = atomic_load(&n);
  if (v == 0) {
    long l2 = 0;
#ifdef _SC_LEVEL2_CACHE_SIZE
    l2 = sysconf(_SC_LEVEL2_CACHE_SIZE);
#endif
    v = l2 > 0 ? (size_t)l2 / 16 : BP_FLOATS;
    if (v > BP_FLOATS) v = BP_FLOATS;
    if (v < (size_t)KC * NR) v = (size_t)KC * NR;
    atomic_store(&n, v);
  }
  return v;
}

static float *bp_scratch (void) {
  if (!bp_buf) bp_buf = trl_alloc(sizeof(float) * BP_FLOATS);
  return bp_buf;
}

static const gemm_isa isa_12 = { 12, NR, kernel12x2, kernel12x1, pack_b };
static const gemm_isa isa_8 = { 8, NR, kernel8x2, kernel8x1, pack_b };

// The kernels for an M-row A on this CPU, or NULL (no AVX2: OpenBLAS and a separate pass).
static const gemm_isa *isa_for (int M) {
  if (trl_cpu_avx512()) return mr_for(M) == 8 ? &isa_8 : &isa_12;
#if defined(__AVX2__) && defined(__FMA__)
  return &isa_avx2;
#else
  return NULL;
#endif
}

// Thread th of nth: its share of C's column panels.
static void gemm_thread (int M, int N, int K, const float *Ap, const float *B, int ldb, float *C,
                         int ldc, const tail_ops *t, int th, int nth, const gemm_isa *isa) {
  float *Bp = bp_scratch(), small[KC * NR + 16];   // without memory, one panel at a time
  size_t bpn = bp_floats();
  if (!Bp) Bp = (float *)(((uintptr_t)small + 63) & ~(uintptr_t)63), bpn = (size_t)KC * isa->cols;
  int n = isa->cols, panels = (N + n - 1) / n, p0 = panels * th / nth, p1 = panels * (th + 1) / nth;
  int j0 = p0 * n, j1 = p1 * n < N ? p1 * n : N;
  if (p0 < p1) gemm_cols(M, K, Ap, B, ldb, C, ldc, j0, j1, t, Bp, bpn, isa);
}

// C (+)= A x B^T with A (M,K) and B (N,K) read in place, K-contiguous rows (a weight
// gradient: dout rows times im2col or Winograd rows). Each of C's tiles of 6 x 4 holds 24
// vectors of partial sums over 16 k at a time (6 + 4 loads per 24 FMAs, no packing), summed
// across lanes at the end of each block of NT_KC: A's 6 rows stay in L1 while B's rows of the
// block (NT_NB rows) stream from L2 once per tile row.
#define NT_KC 512
#define NT_NB 128   // B rows per block: 256 KB with NT_KC

// The sums of a, b, c and d in the lanes of one 4-float vector.
W5 static inline __m128 sum4 (__m512 a, __m512 b, __m512 c, __m512 d) {
  __m512 ab = _mm512_add_ps(_mm512_unpacklo_ps(a, b), _mm512_unpackhi_ps(a, b));
  __m512 cd = _mm512_add_ps(_mm512_unpacklo_ps(c, d), _mm512_unpackhi_ps(c, d));
  __m512 u = _mm512_add_ps(_mm512_shuffle_ps(ab, cd, 0x44), _mm512_shuffle_ps(ab, cd, 0xEE));
  __m256 h = _mm256_add_ps(_mm512_castps512_ps256(u),
                           _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(u), 1)));
  return _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1));
}

// C[0..R) x [0..S) (+)= A rows x B rows over kc (R <= 6, S <= 4); add: C is added to.
W5 static inline __attribute__((always_inline))
void nt_tile (const int R, const int S, int kc, const float *a, int lda, const float *b,
              int ldb, float *c, int ldc, int add) {
  __m512 acc[6][4];
  #pragma GCC unroll 6
  for (int r = 0; r < R; r++)
    #pragma GCC unroll 4
    for (int s = 0; s < S; s++) acc[r][s] = _mm512_setzero_ps();
  int k = 0;
  for (; k + 16 <= kc; k += 16) {
    __m512 bv[4];
    #pragma GCC unroll 4
    for (int s = 0; s < S; s++) bv[s] = _mm512_loadu_ps(b + (size_t)s * ldb + k);
    #pragma GCC unroll 6
    for (int r = 0; r < R; r++) {
      __m512 av = _mm512_loadu_ps(a + (size_t)r * lda + k);
      #pragma GCC unroll 4
      for (int s = 0; s < S; s++) acc[r][s] = _mm512_fmadd_ps(av, bv[s], acc[r][s]);
    }
  }
  if (k < kc) {
    __mmask16 m = (__mmask16)((1u << (kc - k)) - 1);
    __m512 bv[4];
    #pragma GCC unroll 4
    for (int s = 0; s < S; s++) bv[s] = _mm512_maskz_loadu_ps(m, b + (size_t)s * ldb + k);
    #pragma GCC unroll 6
    for (int r = 0; r < R; r++) {
      __m512 av = _mm512_maskz_loadu_ps(m, a + (size_t)r * lda + k);
      #pragma GCC unroll 4
      for (int s = 0; s < S; s++) acc[r][s] = _mm512_fmadd_ps(av, bv[s], acc[r][s]);
    }
  }
  __mmask8 cm = (__mmask8)((1u << S) - 1);
  __m512 z = _mm512_setzero_ps();
  #pragma GCC unroll 6
  for (int r = 0; r < R; r++) {
    __m128 v = sum4(acc[r][0], S > 1 ? acc[r][1] : z, S > 2 ? acc[r][2] : z, S > 3 ? acc[r][3] : z);
    if (add) v = _mm_add_ps(v, _mm_maskz_loadu_ps(cm, c + (size_t)r * ldc));
    _mm_mask_storeu_ps(c + (size_t)r * ldc, cm, v);
  }
}

typedef void nt_fn (int kc, const float *a, int lda, const float *b, int ldb, float *c, int ldc,
                    int add);
#define NT_TILE(R, S) \
  W5 static void nt_##R##x##S (int kc, const float *a, int lda, const float *b, int ldb, \
                               float *c, int ldc, int add) { \
    nt_tile(R, S, kc, a, lda, b, ldb, c, ldc, add); \
  }
#define NT_ROW(R) NT_TILE(R, 1) NT_TILE(R, 2) NT_TILE(R, 3) NT_TILE(R, 4)
NT_ROW(1) NT_ROW(2) NT_ROW(3) NT_ROW(4) NT_ROW(5) NT_ROW(6)
static nt_fn *const nt_tiles[6][4] = {
  { nt_1x1, nt_1x2, nt_1x3, nt_1x4 }, { nt_2x1, nt_2x2, nt_2x3, nt_2x4 },
  { nt_3x1, nt_3x2, nt_3x3, nt_3x4 }, { nt_4x1, nt_4x2, nt_4x3, nt_4x4 },
  { nt_5x1, nt_5x2, nt_5x3, nt_5x4 }, { nt_6x1, nt_6x2, nt_6x3, nt_6x4 } };

// Columns [j0, j1) of C on this thread. Float k of a row always goes to lane k % 16, whatever
// the rows' alignment, so the sums have the same bits for the same operands (loads across two
// cache lines cost two: callers keep rows 64-byte aligned where they can).
W5 static void gemm_nt_cols (int M, int K, const float *A, int lda, const float *B, int ldb,
                             float *C, int ldc, int add, int j0, int j1) {
  for (int k0 = 0; k0 < K; k0 += NT_KC) {
    int kc = K - k0 < NT_KC ? K - k0 : NT_KC, ad = add || k0 > 0;
    for (int jc = j0; jc < j1; jc += NT_NB) {
      int je = j1 - jc < NT_NB ? j1 : jc + NT_NB;
      for (int i = 0; i < M; i += 6) {
        int mr = M - i < 6 ? M - i : 6;
        for (int j = jc; j < je; j += 4) {
          int nr = je - j < 4 ? je - j : 4;
          nt_tiles[mr - 1][nr - 1](kc, A + (size_t)i * lda + k0, lda, B + (size_t)j * ldb + k0,
                                   ldb, C + (size_t)i * ldc + j, ldc, ad);
        }
      }
    }
  }
}

void trl_gemm_nt (int M, int N, int K, const float *A, int lda, const float *B, int ldb,
                  float *C, int ldc, int add) {
  if (M <= 0 || N <= 0) return;
  if (K <= 0) {
    if (!add) for (int i = 0; i < M; i++) memset(C + (size_t)i * ldc, 0, sizeof(float) * N);
    return;
  }
  // Each of C's floats costs the lane sums here and each of A's and B's a copy in OpenBLAS:
  // the sums win when K (1/M + 1/N) is large; past 512 rows of B, OpenBLAS's blocking does
  // (bench/NOTES.md 42)
  if (!trl_cpu_avx512() || N > 512 || K * (1.0 / M + 1.0 / N) < 2.0) {
    trl_sgemm(0, 1, M, N, K, 1.0f, A, lda, B, ldb, add ? 1.0f : 0.0f, C, ldc);
    return;
  }
  int nt = omp_get_level() > 0 ? 1 : trl_get_num_threads();
  if ((double)M * N * K < 4e6 || N < 8) nt = 1;
  if (nt == 1) {
    gemm_nt_cols(M, K, A, lda, B, ldb, C, ldc, add, 0, N);
    return;
  }
  #pragma omp parallel num_threads(nt)
  {
    int t = omp_get_thread_num(), nth = omp_get_num_threads(), q = (N + 3) / 4;
    int j0 = q * t / nth * 4, j1 = q * (t + 1) / nth * 4;
    if (j1 > N) j1 = N;
    if (j0 < j1) gemm_nt_cols(M, K, A, lda, B, ldb, C, ldc, add, j0, j1);
  }
}

int trl_gemm_mr (int M) {
  const gemm_isa *isa = isa_for(M);
  return isa ? isa->rows : 1;
}

size_t trl_gemm_packed_size (int M, int K) {
  int mr = trl_gemm_mr(M);
  return (size_t)(M + mr - 1) / mr * mr * K;
}

void trl_gemm_pack (float *Ap, const float *A, int lda, int M, int K) {
  int mr = trl_gemm_mr(M);
  if (mr > 1) pack_a(Ap, A, lda, M, K, mr);
  else pack_rows(Ap, A, lda, M, K);
}

void trl_gemm_pack_t (float *Ap, const float *At, int lda, int M, int K) {
  int mr = trl_gemm_mr(M);
  if (mr > 1) pack_at(Ap, At, lda, M, K, mr);
  else pack_rows_t(Ap, At, lda, M, K);
}

static void gemm_run (int M, int N, int K, const float *Ap, const float *B, int ldb, float *C,
                      int ldc, const tail_ops *t, const gemm_isa *isa) {
  int nt = omp_get_level() > 0 ? 1 : trl_get_num_threads();
  if ((double)M * N * K < 4e6 || N < 2 * isa->cols) nt = 1;
  if (nt == 1) {   // no parallel region: a nested one costs about a microsecond per call
    gemm_thread(M, N, K, Ap, B, ldb, C, ldc, t, 0, 1, isa);
    return;
  }
  #pragma omp parallel num_threads(nt)
  gemm_thread(M, N, K, Ap, B, ldb, C, ldc, t, omp_get_thread_num(), omp_get_num_threads(), isa);
}

void trl_gemm_packed (int M, int N, int K, const float *Ap, const float *B, int ldb, float *C,
                      int ldc, const float *bias, const trl_epilogue *e, int row0) {
  if (M <= 0 || N <= 0) return;
  const gemm_isa *isa = isa_for(M);
  if (!isa || K <= 0) { gemm_blas(M, N, K, Ap, K, B, ldb, C, ldc, bias, e, row0); return; }
  tail_ops t = { bias, e, row0, 0 };
  gemm_run(M, N, K, Ap, B, ldb, C, ldc, &t, isa);
}

void trl_gemm_packed_add (int M, int N, int K, const float *Ap, const float *B, int ldb,
                          float *C, int ldc) {
  if (M <= 0 || N <= 0 || K <= 0) return;
  const gemm_isa *isa = isa_for(M);
  if (!isa) { trl_sgemm(0, 0, M, N, K, 1.0f, Ap, K, B, ldb, 1.0f, C, ldc); return; }
  tail_ops t = { NULL, NULL, 0, 1 };
  gemm_run(M, N, K, Ap, B, ldb, C, ldc, &t, isa);
}

#else

int trl_gemm_mr (int M) { (void)M; return 1; }
size_t trl_gemm_packed_size (int M, int K) { return (size_t)M * K; }

void trl_gemm_pack (float *Ap, const float *A, int lda, int M, int K) { pack_rows(Ap, A, lda, M, K); }

void trl_gemm_pack_t (float *Ap, const float *At, int lda, int M, int K) {
  pack_rows_t(Ap, At, lda, M, K);
}

void trl_gemm_packed_add (int M, int N, int K, const float *Ap, const float *B, int ldb,
                          float *C, int ldc) {
  if (M > 0 && N > 0 && K > 0) trl_sgemm(0, 0, M, N, K, 1.0f, Ap, K, B, ldb, 1.0f, C, ldc);
}

void trl_gemm_nt (int M, int N, int K, const float *A, int lda, const float *B, int ldb,
                  float *C, int ldc, int add) {
  if (M > 0 && N > 0)
    trl_sgemm(0, 1, M, N, K, 1.0f, A, lda, B, ldb, add ? 1.0f : 0.0f, C, ldc);
}

void trl_gemm_packed (int M, int N, int K, const float *Ap, const float *B, int ldb, float *C,
                      int ldc, const float *bias, const trl_epilogue *e, int row0) {
  gemm_blas(M, N, K, Ap, K, B, ldb, C, ldc, bias, e, row0);
}

#endif
