/*
** conv_winograd4.c: Winograd F(4x4,3x3) (Lavin & Gray, 2015) for conv_winograd.c, on CPUs with
** AVX2 and FMA. Each 4x4 output tile reads a 6x6 input patch; V = B^T d B and U = G g G^T
** turn the conv into 36 GEMMs M[xi] (OC,T) = U[xi] (OC,C) x V[xi] (C,T) over tiles T, and
** Y = A^T M A. 36 multiplies per 16 outputs instead of 16 per 4 (F(2x2,3x3)) or 144 (direct):
** 1.78x fewer GEMM flops than F(2x2,3x3), and V and M are 2.25x the activations, not 4x.
** The output transform writes the output rows itself, with the bias or the epilogue
** (BN scale/shift, clamp) applied on the way. Tiles of a row go 8 at a time, one per lane of
** a ymm register; only gathering the columns of 8 tiles (stride 4) from the rows and
** scattering them back depends on the instruction set: with AVX-512, 512-bit masked loads and
** two-source permutes; with AVX2, 8-float masked loads and a 4 x 8 transpose. The loops
** themselves are conv_winograd4_body.h, compiled once for each.
*/
#include <math.h>
#include <omp.h>
#include <stdint.h>
#include <string.h>

#include "conv_winograd.h"
#include "gemm.h"

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define W4 TRL_AVX512
#define W2 __attribute__((target("avx2,fma")))

// A group of 8 tiles may spill up to 7 tiles past its row into the next row's columns (which
// that row overwrites later) or into SLACK floats at the end of the buffer.
#define SLACK 16

int wino4_cpu (void) {
  static int ok = -1;
  if (ok < 0) {
    __builtin_cpu_init();
    ok = trl_cpu_avx512() || (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"));
  }
  return ok;
}

// Tile rows per group of 8 tiles: rows of 4 or 2 tiles (14x14 and 7x7 maps) share a group
// with the next rows instead of leaving lanes empty.
static int group_rows (int TW) { return TW == 4 ? 2 : TW == 2 ? 4 : 1; }

// Tiles per GEMM: V and M of a chunk, 36 * (C + OC) floats per tile, near the 2 MiB L2
// (0.4, 0.8, 1.5, 3 and 6 MB measured: 1.5 best or within noise for every ResNet-18 shape).
#define CHUNK_BYTES ((size_t)1536 * 1024)
static int chunk_rows (const trl_conv_geom *g) {
  int tc = (int)(CHUNK_BYTES / (36 * 4 * (size_t)(g->C + g->OC)));
  if (tc < 48) tc = 48;
  int TW = (g->OW + 3) / 4, S = group_rows(TW), rows = (tc + TW - 1) / TW;
  int all = g->B * ((g->OH + 3) / 4);
  rows = (rows + S - 1) / S * S;   // whole groups
  for (int r = rows; r * 4 <= rows * 5; r += S)   // a multiple of 16 tiles: no idle GEMM lanes
    if (r * TW % 16 == 0) { rows = r; break; }
  return rows < all ? rows : all;
}

// Layers with C + OC >= 256 (ResNet-18's 28x28, 14x14 and 7x7 stages) run as a team: all threads take
// one chunk of about TEAM_TILES tiles together, the input transform split by channels, the 36
// GEMMs by xi, the output transform by output channels. Chunks per thread (the other mode)
// keep V and M in L2, but with 256+ channels a chunk holds only ~50 tiles and OpenBLAS
// repacks each U[xi] (OC x C) for each of them: a quarter of the time went to packing.
#define TEAM_TILES 512
static int team_mode (const trl_conv_geom *g) { return g->C + g->OC >= 256; }

static int team_rows (const trl_conv_geom *g) {
  int TW = (g->OW + 3) / 4, S = group_rows(TW), rows = (TEAM_TILES + TW - 1) / TW;
  int all = g->B * ((g->OH + 3) / 4);
  rows = (rows + S - 1) / S * S;
  return rows < all ? rows : all;
}

// Floats between V's (and M's, D's) rows for chunks of cr tile rows: an odd multiple of 16,
// so that every row starts a cache line (the weight gradient's GEMM reads them in place) and
// the 36 rows of a channel do not crowd into a few cache sets (128 floats apart: 8 sets).
static int64_t row_ld (int cr, int TW) {
  int64_t ld = ((int64_t)cr * TW + SLACK + 15) / 16 * 16;
  return ld % 32 ? ld : ld + 16;
}

// Tile rows per chunk and the floats of a chunk's V + M: per thread, or one for the team.
static int chunk_of (const trl_conv_geom *g, int nt, size_t *vm) {
  int team = team_mode(g), cr = team ? team_rows(g) : chunk_rows(g);
  size_t ld = (size_t)row_ld(cr, (g->OW + 3) / 4);
  *vm = (size_t)(team ? 1 : nt) * 36 * (g->C + g->OC) * ld;
  return cr;
}

// Floats of one xi's U, packed for trl_gemm_packed (rows padded to the GEMM's panels).
static size_t u_plane (const trl_conv_geom *g) { return trl_gemm_packed_size(g->OC, g->C); }

size_t wino4_workspace (const trl_conv_geom *g, int nt, int packed) {
  size_t vm;
  chunk_of(g, nt, &vm);
  return (packed ? 0 : 36 * u_plane(g)) + vm;
}

size_t wino4_weights_size (const trl_conv_geom *g) { return 36 * u_plane(g); }

// B^T d for six values: the rows of B^T are (4,0,-5,0,1,0), (0,-4,-4,1,1,0), (0,4,-4,-1,1,0),
// (0,-2,-1,2,1,0), (0,2,-1,-2,1,0), (0,4,0,-5,0,1).
#define BT6(o, d) do { \
    __m256 f4_ = _mm256_set1_ps(4.0f), f5_ = _mm256_set1_ps(5.0f), f2_ = _mm256_set1_ps(2.0f); \
    __m256 a_ = _mm256_fnmadd_ps(f4_, d[2], d[4]), b_ = _mm256_fnmadd_ps(f4_, d[1], d[3]); \
    __m256 c_ = _mm256_sub_ps(d[4], d[2]), e_ = _mm256_mul_ps(f2_, _mm256_sub_ps(d[3], d[1])); \
    o[0] = _mm256_fmadd_ps(f4_, d[0], _mm256_fnmadd_ps(f5_, d[2], d[4])); \
    o[1] = _mm256_add_ps(a_, b_); \
    o[2] = _mm256_sub_ps(a_, b_); \
    o[3] = _mm256_add_ps(c_, e_); \
    o[4] = _mm256_sub_ps(c_, e_); \
    o[5] = _mm256_fmadd_ps(f4_, d[1], _mm256_fnmadd_ps(f5_, d[3], d[5])); \
  } while (0)

// A^T m for six values: the rows of A^T are (1,1,1,1,1,0), (0,1,-1,2,-2,0), (0,1,1,4,4,0),
// (0,1,-1,8,-8,1).
#define AT6(o, m) do { \
    __m256 a_ = _mm256_add_ps(m[1], m[2]), b_ = _mm256_sub_ps(m[1], m[2]); \
    __m256 c_ = _mm256_add_ps(m[3], m[4]), d_ = _mm256_sub_ps(m[3], m[4]); \
    o[0] = _mm256_add_ps(_mm256_add_ps(m[0], a_), c_); \
    o[1] = _mm256_fmadd_ps(_mm256_set1_ps(2.0f), d_, b_); \
    o[2] = _mm256_fmadd_ps(_mm256_set1_ps(4.0f), c_, a_); \
    o[3] = _mm256_add_ps(_mm256_fmadd_ps(_mm256_set1_ps(8.0f), d_, b_), m[5]); \
  } while (0)

// G k for 3 values (a column or a row of a kernel), 16 lanes each: the rows of G are
// (1/4,0,0), (-1/6,-1/6,-1/6), (-1/6,1/6,-1/6), (1/24,1/12,1/6), (1/24,-1/12,1/6), (0,0,1).
#define G3Z(o, k0, k1, k2) do { \
    __m512 p_ = _mm512_add_ps(k0, k2); \
    o[0] = _mm512_mul_ps(_mm512_set1_ps(1.0f / 4), k0); \
    o[1] = _mm512_mul_ps(_mm512_set1_ps(-1.0f / 6), _mm512_add_ps(p_, k1)); \
    o[2] = _mm512_mul_ps(_mm512_set1_ps(-1.0f / 6), _mm512_sub_ps(p_, k1)); \
    __m512 r_ = _mm512_fmadd_ps(_mm512_set1_ps(1.0f / 24), k0, _mm512_mul_ps(_mm512_set1_ps(1.0f / 6), k2)); \
    __m512 s_ = _mm512_mul_ps(_mm512_set1_ps(1.0f / 12), k1); \
    o[3] = _mm512_add_ps(r_, s_); \
    o[4] = _mm512_sub_ps(r_, s_); \
    o[5] = k2; \
  } while (0)


// U is 36 planes of u_plane(g) floats: U[xi] (OC,C) in trl_gemm_packed's layout (panels of mr
// <= 16 output channels, k-major), U[.][oc][c] = G k G^T for k = w[oc][c], or w[c][oc]
// rotated when 'flip'. Panels [p0, p1): each input channel's kernels of a panel's output
// channels go in the lanes of one vector (gathers of their 9 taps), and each xi's result is
// the panel's mr contiguous floats for that channel; lanes past OC hold zeros.
W4 static void weight_transform_512 (float *U, const float *w, int flip, int p0, int p1,
                                     const trl_conv_geom *g) {
  size_t plane = u_plane(g);
  int mr = trl_gemm_mr(g->OC);
  int os = flip ? 9 : 9 * g->C;   // floats from one output channel's kernel to the next
  __m512i vix = _mm512_mullo_epi32(_mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12,
                                                     13, 14, 15), _mm512_set1_epi32(os));
  for (int pn = p0; pn < p1; pn++) {
    int oc0 = pn * mr, nr = g->OC - oc0 < mr ? g->OC - oc0 : mr;
    __mmask16 live = (__mmask16)((1u << nr) - 1), all = (__mmask16)((1u << mr) - 1);
    float *u = U + (size_t)oc0 * g->C;
    for (int c = 0; c < g->C; c++) {
      const float *src = flip ? w + ((size_t)c * g->OC + oc0) * 9 : w + ((size_t)oc0 * g->C + c) * 9;
      __m512 k[3][3], t[6][3];
      for (int i = 0; i < 3; i++)
        for (int j = 0; j < 3; j++) {
          int at = flip ? (2 - i) * 3 + (2 - j) : i * 3 + j;
          k[i][j] = _mm512_mask_i32gather_ps(_mm512_setzero_ps(), live, vix, src + at, 4);
        }
      for (int j = 0; j < 3; j++) {   // t = G k, column by column
        __m512 o[6];
        G3Z(o, k[0][j], k[1][j], k[2][j]);
        for (int i = 0; i < 6; i++) t[i][j] = o[i];
      }
      for (int i = 0; i < 6; i++) {   // U = t G^T, row by row
        __m512 o[6];
        G3Z(o, t[i][0], t[i][1], t[i][2]);
        for (int j = 0; j < 6; j++) _mm512_mask_storeu_ps(u + (i * 6 + j) * plane + (size_t)c * mr, all, o[j]);
      }
    }
  }
}

// a in the low half, b in the high half
W4 static inline __m512 join (__m256 a, __m256 b) {
  return _mm512_castpd_ps(_mm512_insertf64x4(_mm512_castpd256_pd512(_mm256_castps_pd(a)),
                                             _mm256_castps_pd(b), 1));
}

// Lanes l of a 16-float load at column x0 whose column x0 + l lies in [0, W).
static inline __mmask16 cols_mask (int x0, int W) {
  int a = x0 < 0 ? -x0 : 0, b = W - x0 < 16 ? W - x0 : 16;   // lanes [a, b) are inside
  if (b <= a) return 0;
  return (__mmask16)(((1u << b) - 1) & ~((1u << a) - 1));
}

// p + off floats, where p + off may lie before the buffer: only masked loads and stores use it,
// and their masks keep them inside.
static inline const float *at (const float *p, int off) {
  return (const float *)((uintptr_t)p + (intptr_t)off * (intptr_t)sizeof(float));
}

// A group's 32 floats from columns off.. of its rows: one row (S = 1: columns off + [0, 32)),
// two (S = 2: off + [0, 16) of each) or four (S = 4: off + [0, 8) of each), into a (the first
// 16) and b. A NULL row reads as zeros; mA / mB mask the columns (S > 1: mA for every row).
W4 static inline void load_group (__m512 *a, __m512 *b, const float *const *p, int S, int off,
                                  __mmask16 mA, __mmask16 mB) {
  __m512 z = _mm512_setzero_ps();
  if (S == 1) {
    *a = p[0] ? _mm512_maskz_loadu_ps(mA, at(p[0], off)) : z;
    *b = p[0] ? _mm512_maskz_loadu_ps(mB, at(p[0], off + 16)) : z;
  } else if (S == 2) {
    *a = p[0] ? _mm512_maskz_loadu_ps(mA, at(p[0], off)) : z;
    *b = p[1] ? _mm512_maskz_loadu_ps(mA, at(p[1], off)) : z;
  } else {
    __m256 q[4];
    for (int i = 0; i < 4; i++)
      q[i] = p[i] ? _mm256_maskz_loadu_ps((__mmask8)mA, at(p[i], off)) : _mm256_setzero_ps();
    *a = join(q[0], q[1]), *b = join(q[2], q[3]);
  }
}

// The inverse of load_group: a and b to the group's rows (NULL: not stored).
W4 static inline void store_group (float *const *p, int S, int off, __m512 a, __m512 b,
                                   __mmask16 mA, __mmask16 mB) {
  if (S == 1) {
    if (p[0]) _mm512_mask_storeu_ps((float *)at(p[0], off), mA, a);
    if (p[0]) _mm512_mask_storeu_ps((float *)at(p[0], off + 16), mB, b);
  } else if (S == 2) {
    if (p[0]) _mm512_mask_storeu_ps((float *)at(p[0], off), mA, a);
    if (p[1]) _mm512_mask_storeu_ps((float *)at(p[1], off), mA, b);
  } else {
    __m256 q[4] = { _mm512_castps512_ps256(a), _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(a), 1)),
                    _mm512_castps512_ps256(b), _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(b), 1)) };
    for (int i = 0; i < 4; i++)
      if (p[i]) _mm256_mask_storeu_ps((float *)at(p[i], off), (__mmask8)mA, q[i]);
  }
}

// Phase j of 8 tiles (stride 4) from a|b: lanes 4t + j.
W4 static inline __m256 phase (__m512 a, __m512 b, int j) {
  __m512i ix = _mm512_add_epi32(_mm512_setr_epi32(0, 4, 8, 12, 16, 20, 24, 28, 0, 0, 0, 0, 0, 0, 0, 0),
                                _mm512_set1_epi32(j));
  return _mm512_castps512_ps256(_mm512_permutex2var_ps(a, ix, b));
}

// Tile row r0 + q of a chunk: image n, first map row 4 * ty (of the output; the input patch
// starts pad rows higher).
#define TILE_ROW(g, r, n, ty) int n = (r) / (((g)->OH + 3) / 4), ty = (r) % (((g)->OH + 3) / 4)

// The S tile rows of the group at row q of a chunk starting at tile row r0: x[s] is plane
// 'ch' of the row's image in t (B,nch,plane), NULL past the chunk's nr rows; y0[s] is the
// row's first map row, 4 * ty - off.
static inline void group_planes (const float *x[4], int y0[4], const float *t, int nch,
                                 size_t plane, int ch, int r0, int q, int nr, int S, int off,
                                 const trl_conv_geom *g) {
  for (int s = 0; s < S; s++) {
    TILE_ROW(g, r0 + q + s, n, ty);
    x[s] = q + s < nr ? t + ((size_t)n * nch + ch) * plane : NULL;
    y0[s] = 4 * ty - off;
  }
}

// load_group with S known at compile time and no branches: row s reads as zeros where its
// mask rv[s] is 0 (its pointer then only needs to be some row of the input).
W4 static inline __attribute__((always_inline))
void load_rows (const int S, __m512 *a, __m512 *b, const float *const *p, const __mmask16 *rv,
                int off, __mmask16 mA, __mmask16 mB) {
  if (S == 1) {
    *a = _mm512_maskz_loadu_ps(mA & rv[0], at(p[0], off));
    *b = _mm512_maskz_loadu_ps(mB & rv[0], at(p[0], off + 16));
  } else if (S == 2) {
    *a = _mm512_maskz_loadu_ps(mA & rv[0], at(p[0], off));
    *b = _mm512_maskz_loadu_ps(mA & rv[1], at(p[1], off));
  } else {
    __m256 q[4];
    for (int i = 0; i < 4; i++) q[i] = _mm256_maskz_loadu_ps((__mmask8)(mA & rv[i]), at(p[i], off));
    *a = join(q[0], q[1]), *b = join(q[2], q[3]);
  }
}


// The AVX-512 group helpers for conv_winograd4_body.h. Masks of a group: columns x0 + [0, 16)
// and + [16, 32) (S > 1: [0, 16) of every row), and the same 4 columns further right.
typedef struct { __mmask16 a, b, c, d; } gmask_512;

static inline void gmask_at_512 (const int S, gmask_512 *m, int x0, int W) {
  m->a = cols_mask(x0, W), m->b = S == 1 ? cols_mask(x0 + 16, W) : m->a;
  m->c = cols_mask(x0 + 4, W), m->d = S == 1 ? cols_mask(x0 + 20, W) : m->c;
}

W4 static inline __attribute__((always_inline))
void cols6_512 (const int S, __m256 d[6], const float *const *p, const int *rv, int x0,
                const gmask_512 *m) {
  __mmask16 r[4];
  for (int s = 0; s < S; s++) r[s] = rv[s] ? 0xFFFF : 0;
  __m512 a, b, c, e;
  load_rows(S, &a, &b, p, r, x0, m->a, m->b);
  load_rows(S, &c, &e, p, r, x0 + 4, m->c, m->d);
  d[0] = phase(a, b, 0), d[1] = phase(a, b, 1), d[2] = phase(a, b, 2), d[3] = phase(a, b, 3);
  d[4] = phase(c, e, 0), d[5] = phase(c, e, 1);
}

W4 static inline __attribute__((always_inline))
void cols4_512 (const int S, __m256 y[4], const float *const *p, int x0, const gmask_512 *m) {
  __m512 a, b;
  load_group(&a, &b, p, S, x0, m->a, m->b);
  for (int j = 0; j < 4; j++) y[j] = phase(a, b, j);
}

// What the output transform does with a row of 8 tiles: add to out, or the epilogue (scale,
// shift, clamp to [lo, hi]), or add a bias (shift), or store as it is.
typedef struct { int acc, ep, clamp, bias; float scale, shift, lo, hi; } tail4;

W4 static inline __attribute__((always_inline))
void put4_512 (const int S, float *const *p, int x0, int W, const gmask_512 *m, const __m256 y[4],
               const tail4 *t) {
  (void)W;
  // 4 output columns of 8 tiles back to 32 consecutive floats: y0|y1 and y2|y3 as two zmm
  __m512i lo = _mm512_setr_epi32(0, 8, 16, 24, 1, 9, 17, 25, 2, 10, 18, 26, 3, 11, 19, 27);
  __m512i hi = _mm512_setr_epi32(4, 12, 20, 28, 5, 13, 21, 29, 6, 14, 22, 30, 7, 15, 23, 31);
  __m512 z01 = join(y[0], y[1]), z23 = join(y[2], y[3]);
  __m512 a = _mm512_permutex2var_ps(z01, lo, z23), c = _mm512_permutex2var_ps(z01, hi, z23);
  if (t->acc) {
    __m512 pa, pc;
    load_group(&pa, &pc, (const float *const *)p, S, x0, m->a, m->b);
    a = _mm512_add_ps(a, pa), c = _mm512_add_ps(c, pc);
  } else if (t->ep) {   // the same fmadd-then-clamp as trl_epilogue_row (same bits)
    __m512 vs = _mm512_set1_ps(t->scale), vt = _mm512_set1_ps(t->shift);
    a = _mm512_fmadd_ps(a, vs, vt), c = _mm512_fmadd_ps(c, vs, vt);
    if (t->clamp) {
      __m512 vl = _mm512_set1_ps(t->lo), vh = _mm512_set1_ps(t->hi);
      a = _mm512_min_ps(_mm512_max_ps(a, vl), vh);
      c = _mm512_min_ps(_mm512_max_ps(c, vl), vh);
    }
  } else if (t->bias) {
    a = _mm512_add_ps(a, _mm512_set1_ps(t->shift)), c = _mm512_add_ps(c, _mm512_set1_ps(t->shift));
  }
  store_group(p, S, x0, a, c, m->a, m->b);
}


// The AVX2 group helpers. A group's 8 tiles lie in 4 segments of 8 floats, two tiles' columns
// each: segment i is columns 8i.. of the one row (S = 1), 8 (i % 2).. of row i / 2 (S = 2) or
// 0.. of row i (S = 4). Segment pairs (i, i + 2) swap halves into [tile i | tile i + 4] and a
// 4 x 8 transpose turns those into the tiles' columns, one per lane in tile order; the
// segments 4 floats further right give columns 4 and 5 the same way.
static inline int seg_row (const int S, int i) { return S == 1 ? 0 : S == 2 ? i >> 1 : i; }
static inline int seg_off (const int S, int i) { return S == 1 ? 8 * i : S == 2 ? 8 * (i & 1) : 0; }

// Lanes l with 0 <= x + l < W all ones, the others zero.
W2 static inline __m256i span8 (int x, int W) {
  __m256i i = _mm256_add_epi32(_mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7), _mm256_set1_epi32(x));
  return _mm256_andnot_si256(_mm256_cmpgt_epi32(_mm256_setzero_si256(), i),
                             _mm256_cmpgt_epi32(_mm256_set1_epi32(W), i));
}

typedef struct { __m256i z[4], y[4]; } gmask_256;   // segments, and 4 columns to their right

W2 static inline __attribute__((always_inline))
void gmask_at_256 (const int S, gmask_256 *m, int x0, int W) {
  for (int i = 0; i < 4; i++) {
    m->z[i] = span8(x0 + seg_off(S, i), W);
    m->y[i] = span8(x0 + seg_off(S, i) + 4, W);
  }
}

// Columns 0 .. n-1 (n = 2 or 4) of 8 tiles from their segments Z.
W2 static inline __attribute__((always_inline))
void seg_cols (const int n, __m256 *d, const __m256 Z[4]) {
  __m256 a0 = _mm256_permute2f128_ps(Z[0], Z[2], 0x20), a1 = _mm256_permute2f128_ps(Z[0], Z[2], 0x31);
  __m256 a2 = _mm256_permute2f128_ps(Z[1], Z[3], 0x20), a3 = _mm256_permute2f128_ps(Z[1], Z[3], 0x31);
  __m256 t0 = _mm256_unpacklo_ps(a0, a1), t2 = _mm256_unpacklo_ps(a2, a3);
  d[0] = _mm256_shuffle_ps(t0, t2, 0x44), d[1] = _mm256_shuffle_ps(t0, t2, 0xEE);
  if (n == 4) {
    __m256 t1 = _mm256_unpackhi_ps(a0, a1), t3 = _mm256_unpackhi_ps(a2, a3);
    d[2] = _mm256_shuffle_ps(t1, t3, 0x44), d[3] = _mm256_shuffle_ps(t1, t3, 0xEE);
  }
}

W2 static inline __attribute__((always_inline))
void cols6_256 (const int S, __m256 d[6], const float *const *p, const int *rv, int x0,
                const gmask_256 *m) {
  __m256 Z[4], Y[4];
  #pragma GCC unroll 4
  for (int i = 0; i < 4; i++) {
    int s = seg_row(S, i);
    __m256i r = _mm256_set1_epi32(-rv[s]);
    Z[i] = _mm256_maskload_ps(at(p[s], x0 + seg_off(S, i)), _mm256_and_si256(m->z[i], r));
    Y[i] = _mm256_maskload_ps(at(p[s], x0 + seg_off(S, i) + 4), _mm256_and_si256(m->y[i], r));
  }
  seg_cols(4, d, Z);
  seg_cols(2, d + 4, Y);
}

W2 static inline __attribute__((always_inline))
void cols4_256 (const int S, __m256 y[4], const float *const *p, int x0, const gmask_256 *m) {
  __m256 Z[4];
  #pragma GCC unroll 4
  for (int i = 0; i < 4; i++) {
    const float *r = p[seg_row(S, i)];
    Z[i] = r ? _mm256_maskload_ps(at(r, x0 + seg_off(S, i)), m->z[i]) : _mm256_setzero_ps();
  }
  seg_cols(4, y, Z);
}

W2 static inline __attribute__((always_inline))
void put4_256 (const int S, float *const *p, int x0, int W, const gmask_256 *m,
               const __m256 y[4], const tail4 *t) {
  // the inverse of seg_cols: [tile i | tile i + 4], then segments
  __m256 t0 = _mm256_unpacklo_ps(y[0], y[1]), t1 = _mm256_unpacklo_ps(y[2], y[3]);
  __m256 t2 = _mm256_unpackhi_ps(y[0], y[1]), t3 = _mm256_unpackhi_ps(y[2], y[3]);
  __m256 a0 = _mm256_shuffle_ps(t0, t1, 0x44), a1 = _mm256_shuffle_ps(t0, t1, 0xEE);
  __m256 a2 = _mm256_shuffle_ps(t2, t3, 0x44), a3 = _mm256_shuffle_ps(t2, t3, 0xEE);
  __m256 Z[4] = { _mm256_permute2f128_ps(a0, a1, 0x20), _mm256_permute2f128_ps(a2, a3, 0x20),
                  _mm256_permute2f128_ps(a0, a1, 0x31), _mm256_permute2f128_ps(a2, a3, 0x31) };
  #pragma GCC unroll 4
  for (int i = 0; i < 4; i++) {
    float *r = p[seg_row(S, i)];
    int x = x0 + seg_off(S, i);   // >= 0 here
    if (!r || x >= W) continue;
    float *dst = (float *)at(r, x);
    int full = x + 8 <= W;
    __m256 v = Z[i];
    if (t->acc) {
      v = _mm256_add_ps(v, full ? _mm256_loadu_ps(dst) : _mm256_maskload_ps(dst, m->z[i]));
    } else if (t->ep) {   // the same fmadd-then-clamp as trl_epilogue_row (same bits)
      v = _mm256_fmadd_ps(v, _mm256_set1_ps(t->scale), _mm256_set1_ps(t->shift));
      if (t->clamp) v = _mm256_min_ps(_mm256_max_ps(v, _mm256_set1_ps(t->lo)), _mm256_set1_ps(t->hi));
    } else if (t->bias) {
      v = _mm256_add_ps(v, _mm256_set1_ps(t->shift));
    }
    if (full) _mm256_storeu_ps(dst, v);
    else _mm256_maskstore_ps(dst, m->z[i], v);
  }
}

// G k for 3 values, 8 lanes each (G as in G3Z).
#define G3Y(o, k0, k1, k2) do { \
    __m256 p_ = _mm256_add_ps(k0, k2); \
    o[0] = _mm256_mul_ps(_mm256_set1_ps(1.0f / 4), k0); \
    o[1] = _mm256_mul_ps(_mm256_set1_ps(-1.0f / 6), _mm256_add_ps(p_, k1)); \
    o[2] = _mm256_mul_ps(_mm256_set1_ps(-1.0f / 6), _mm256_sub_ps(p_, k1)); \
    __m256 r_ = _mm256_fmadd_ps(_mm256_set1_ps(1.0f / 24), k0, _mm256_mul_ps(_mm256_set1_ps(1.0f / 6), k2)); \
    __m256 s_ = _mm256_mul_ps(_mm256_set1_ps(1.0f / 12), k1); \
    o[3] = _mm256_add_ps(r_, s_); \
    o[4] = _mm256_sub_ps(r_, s_); \
    o[5] = k2; \
  } while (0)

// weight_transform_512 with 8 lanes: panels of mr <= 8 output channels (trl_gemm_mr where
// the CPU lacks AVX-512).
W2 static void weight_transform_256 (float *U, const float *w, int flip, int p0, int p1,
                                     const trl_conv_geom *g) {
  size_t plane = u_plane(g);
  int mr = trl_gemm_mr(g->OC);
  int os = flip ? 9 : 9 * g->C;   // floats from one output channel's kernel to the next
  __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  __m256i vix = _mm256_mullo_epi32(lane, _mm256_set1_epi32(os));
  __m256i all = _mm256_cmpgt_epi32(_mm256_set1_epi32(mr), lane);
  for (int pn = p0; pn < p1; pn++) {
    int oc0 = pn * mr, nr = g->OC - oc0 < mr ? g->OC - oc0 : mr;
    __m256 live = _mm256_castsi256_ps(_mm256_cmpgt_epi32(_mm256_set1_epi32(nr), lane));
    float *u = U + (size_t)oc0 * g->C;
    for (int c = 0; c < g->C; c++) {
      const float *src = flip ? w + ((size_t)c * g->OC + oc0) * 9 : w + ((size_t)oc0 * g->C + c) * 9;
      __m256 k[3][3], t[6][3];
      for (int i = 0; i < 3; i++)
        for (int j = 0; j < 3; j++) {
          int a = flip ? (2 - i) * 3 + (2 - j) : i * 3 + j;
          k[i][j] = _mm256_mask_i32gather_ps(_mm256_setzero_ps(), src + a, vix, live, 4);
        }
      for (int j = 0; j < 3; j++) {   // t = G k, column by column
        __m256 o[6];
        G3Y(o, k[0][j], k[1][j], k[2][j]);
        for (int i = 0; i < 6; i++) t[i][j] = o[i];
      }
      for (int i = 0; i < 6; i++) {   // U = t G^T, row by row
        __m256 o[6];
        G3Y(o, t[i][0], t[i][1], t[i][2]);
        for (int j = 0; j < 6; j++) {   // 8 lanes: the next channel's store covers 8 - mr
          float *dst = u + (i * 6 + j) * plane + (size_t)c * mr;
          if (c + 1 < g->C) _mm256_storeu_ps(dst, o[j]);
          else _mm256_maskstore_ps(dst, all, o[j]);
        }
      }
    }
  }
}

// A y for four values: the rows of A are (1,0,0,0), (1,1,1,1), (1,-1,1,-1), (1,2,4,8),
// (1,-2,4,-8), (0,0,0,1): the transpose of the output transform, for the weight gradient.
#define A4(o, y) do { \
    __m256 p_ = _mm256_add_ps(y[0], y[2]), q_ = _mm256_add_ps(y[1], y[3]); \
    __m256 r_ = _mm256_fmadd_ps(_mm256_set1_ps(4.0f), y[2], y[0]); \
    __m256 s_ = _mm256_fmadd_ps(_mm256_set1_ps(8.0f), y[3], _mm256_add_ps(y[1], y[1])); \
    o[0] = y[0]; \
    o[1] = _mm256_add_ps(p_, q_); \
    o[2] = _mm256_sub_ps(p_, q_); \
    o[3] = _mm256_add_ps(r_, s_); \
    o[4] = _mm256_sub_ps(r_, s_); \
    o[5] = y[3]; \
  } while (0)


// dw (OC,C,3,3) += G^T dU G for output channels [oc0, oc1); dU is (36,OC,C).
W2 static void weight_grad_transform (float *dw, const float *dU, int oc0, int oc1,
                                      const trl_conv_geom *g) {
  size_t plane = (size_t)g->OC * g->C;
  // G^T u for six values: the rows of G^T are (1/4,-1/6,-1/6,1/24,1/24,0),
  // (0,-1/6,1/6,1/12,-1/12,0), (0,-1/6,-1/6,1/6,1/6,1)
#define GT6(o, u) do { \
    __m256 a_ = _mm256_add_ps(u[1], u[2]), b_ = _mm256_sub_ps(u[2], u[1]); \
    __m256 c_ = _mm256_add_ps(u[3], u[4]), d_ = _mm256_sub_ps(u[3], u[4]); \
    __m256 s6_ = _mm256_set1_ps(1.0f / 6); \
    o[0] = _mm256_fmadd_ps(_mm256_set1_ps(1.0f / 4), u[0], \
             _mm256_fmadd_ps(_mm256_set1_ps(1.0f / 24), c_, _mm256_mul_ps(_mm256_set1_ps(-1.0f / 6), a_))); \
    o[1] = _mm256_fmadd_ps(_mm256_set1_ps(1.0f / 12), d_, _mm256_mul_ps(s6_, b_)); \
    o[2] = _mm256_add_ps(_mm256_mul_ps(s6_, _mm256_sub_ps(c_, a_)), u[5]); \
  } while (0)
  for (int oc = oc0; oc < oc1; oc++)
    for (int c = 0; c < g->C; c += 8) {
      int nc = g->C - c < 8 ? g->C - c : 8;
      const float *u = dU + (size_t)oc * g->C + c;
      __m256 t[3][6];   // t = G^T dU (rows), then G^T t^T (columns)
      for (int j = 0; j < 6; j++) {
        __m256 col[6], o[3];
        for (int i = 0; i < 6; i++) {
          if (nc == 8) col[i] = _mm256_loadu_ps(u + (i * 6 + j) * plane);
          else {
            float tmp[8] = { 0 };
            memcpy(tmp, u + (i * 6 + j) * plane, sizeof(float) * nc);
            col[i] = _mm256_loadu_ps(tmp);
          }
        }
        GT6(o, col);
        for (int a = 0; a < 3; a++) t[a][j] = o[a];
      }
      float r[9][8];
      for (int a = 0; a < 3; a++) {
        __m256 o[3];
        GT6(o, t[a]);
        for (int b = 0; b < 3; b++) _mm256_storeu_ps(r[a * 3 + b], o[b]);
      }
      float *d = dw + ((size_t)oc * g->C + c) * 9;
      for (int l = 0; l < nc; l++)
        for (int ab = 0; ab < 9; ab++) d[(size_t)l * 9 + ab] += r[ab][l];
    }
#undef GT6
}

// Tile rows per chunk of the weight gradient outside team mode: 4x the forward's with
// AVX-512, 2x without. Its GEMMs' K is the chunk's tiles. With AVX-512 trl_gemm_nt sums lanes
// once per call: at 98 tiles (56x56x64) that cost more than V and D leaving L2 (32x64x56x56
// alone: about 26 -> 20 ms, bench/NOTES.md 42). Without, OpenBLAS runs them, and half those
// chunks (V and D 4.4 MB a thread, not 8.8) ran 8-11% faster on the AVX2 host (NOTES 67).
static int wgrad_rows (const trl_conv_geom *g) {
  int cr = chunk_rows(g) * (trl_cpu_avx512() ? 4 : 2), TW = (g->OW + 3) / 4, S = group_rows(TW);
  int all = g->B * ((g->OH + 3) / 4);
  cr = (cr + S - 1) / S * S;
  return cr < all ? cr : all;
}

size_t wino4_wgrad_workspace (const trl_conv_geom *g, int nt) {
  size_t vm;
  chunk_of(g, nt, &vm);
  if (!team_mode(g))
    vm = (size_t)nt * 36 * (g->C + g->OC) * row_ld(wgrad_rows(g), (g->OW + 3) / 4);
  return (size_t)(team_mode(g) ? 1 : nt) * 36 * g->OC * g->C + vm;
}

#define WI W4
#define F(name) name##_512
#define GMASK gmask_512
#include "conv_winograd4_body.h"
#undef WI
#undef F
#undef GMASK

#define WI W2
#define F(name) name##_256
#define GMASK gmask_256
#include "conv_winograd4_body.h"
#undef WI
#undef F
#undef GMASK

void wino4_conv (float *out, const float *inp, const float *w, const float *U, const float *b,
                 const trl_epilogue *e, int flip, int acc, float *ws, int nt,
                 const trl_conv_geom *g) {
  if (trl_cpu_avx512()) conv_512(out, inp, w, U, b, e, flip, acc, ws, nt, g);
  else conv_256(out, inp, w, U, b, e, flip, acc, ws, nt, g);
}

void wino4_weights (float *U, const float *w, int nt, const trl_conv_geom *g) {
  int avx512 = trl_cpu_avx512(), mr = trl_gemm_mr(g->OC), panels = (g->OC + mr - 1) / mr;
  if (nt < 1 || (int64_t)g->OC * g->C < 4096) nt = 1;
  #pragma omp parallel num_threads(nt)
  {
    int t = omp_get_thread_num(), nth = omp_get_num_threads();
    if (avx512) weight_transform_512(U, w, 0, panels * t / nth, panels * (t + 1) / nth, g);
    else weight_transform_256(U, w, 0, panels * t / nth, panels * (t + 1) / nth, g);
  }
}

void wino4_wgrad (float *dw, const float *dout, const float *inp, float *ws, int nt,
                  const trl_conv_geom *g) {
  if (trl_cpu_avx512()) wgrad_512(dw, dout, inp, ws, nt, g);
  else wgrad_256(dw, dout, inp, ws, nt, g);
}

#else

int wino4_cpu (void) { return 0; }
size_t wino4_workspace (const trl_conv_geom *g, int nt, int packed) {
  (void)g, (void)nt, (void)packed;
  return 0;
}
size_t wino4_weights_size (const trl_conv_geom *g) { (void)g; return 0; }
void wino4_weights (float *U, const float *w, int nt, const trl_conv_geom *g) {
  (void)U, (void)w, (void)nt, (void)g;
}
size_t wino4_wgrad_workspace (const trl_conv_geom *g, int nt) { (void)g, (void)nt; return 0; }
void wino4_wgrad (float *dw, const float *dout, const float *inp, float *ws, int nt,
                  const trl_conv_geom *g) {
  (void)dw, (void)dout, (void)inp, (void)ws, (void)nt, (void)g;
}
void wino4_conv (float *out, const float *inp, const float *w, const float *U, const float *b,
                 const trl_epilogue *e, int flip, int acc, float *ws, int nt,
                 const trl_conv_geom *g) {
  (void)out, (void)inp, (void)w, (void)U, (void)b, (void)e, (void)flip, (void)acc, (void)ws, (void)nt, (void)g;
}

#endif
