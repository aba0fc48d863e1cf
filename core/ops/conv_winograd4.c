/*
** conv_winograd4.c: Winograd F(4x4,3x3) (Lavin & Gray, 2015) for conv_winograd.c, on CPUs with
** AVX-512. Each 4x4 output tile reads a 6x6 input patch; V = B^T d B and U = G g G^T turn the
** conv into 36 GEMMs M[xi] (OC,T) = U[xi] (OC,C) x V[xi] (C,T) over tiles T, and
** Y = A^T M A. 36 multiplies per 16 outputs instead of 16 per 4 (F(2x2,3x3)) or 144 (direct):
** 1.78x fewer GEMM flops than F(2x2,3x3), and V and M are 2.25x the activations, not 4x.
** The output transform writes the output rows itself, with the bias or the epilogue
** (BN scale/shift, clamp) applied on the way. Tiles of a row go 8 at a time: 512-bit loads and
** two-source permutes gather the six columns of 8 tiles (stride 4) and scatter the four output
** columns back.
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

// A group of 8 tiles may spill up to 7 tiles past its row into the next row's columns (which
// that row overwrites later) or into SLACK floats at the end of the buffer.
#define SLACK 16

int wino4_cpu (void) { return trl_cpu_avx512(); }

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

size_t wino4_workspace (const trl_conv_geom *g, int nt) {
  size_t vm;
  chunk_of(g, nt, &vm);
  return 36 * u_plane(g) + vm;
}

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
W4 static void weight_transform (float *U, const float *w, int flip, int p0, int p1,
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

// V is (C,36,ld): tile rows [r0, r0+nr) (row ty of image n is n*TH + ty) of inp (B,C,H,W),
// input channels [c0, c1), S tile rows per group of 8 tiles (group_rows). Masked loads read
// the input rows in place: lanes outside the image (the padding) are zero and never touched.
// S is a constant in each copy, and the six rows of a group unrolled, so that the 36 values
// of 8 patches stay in registers.
W4 static inline __attribute__((always_inline))
void input_rows (const int S, float *V, int64_t ld, const float *inp, int r0, int nr, int c0,
                 int c1, const trl_conv_geom *g) {
  int TW = (g->OW + 3) / 4;
  for (int c = c0; c < c1; c++)
    for (int q = 0; q < nr; q += S) {
      const float *x[4];
      int y0[4];
      group_planes(x, y0, inp, g->C, (size_t)g->H * g->W, c, r0, q, nr, S, g->ph, g);
      const float *p[6][4];   // the six input rows of each tile row; rv: 0 where outside
      __mmask16 rv[6][4];
      for (int r = 0; r < 6; r++)
        for (int s = 0; s < S; s++) {
          int yy = y0[s] + r, in = x[s] && yy >= 0 && yy < g->H;
          p[r][s] = in ? x[s] + (size_t)yy * g->W : inp;
          rv[r][s] = in ? 0xFFFF : 0;
        }
      float *v = V + (size_t)c * 36 * ld + (size_t)q * TW;
      for (int k = 0; k < TW; k += 8) {
        // columns 4k - pw + [0, 32) and + [4, 36): the six columns of 8 tiles
        int x0 = 4 * k - g->pw;
        __mmask16 mA = cols_mask(x0, g->W), mB = S == 1 ? cols_mask(x0 + 16, g->W) : mA;
        __mmask16 mC = cols_mask(x0 + 4, g->W), mD = S == 1 ? cols_mask(x0 + 20, g->W) : mC;
        __m256 h[6][6];   // h[r] = row r of the patches times B (columns), then V = B^T h
        #pragma GCC unroll 6
        for (int r = 0; r < 6; r++) {
          __m512 a, b, cc, e;
          load_rows(S, &a, &b, p[r], rv[r], x0, mA, mB);
          load_rows(S, &cc, &e, p[r], rv[r], x0 + 4, mC, mD);
          __m256 d[6] = { phase(a, b, 0), phase(a, b, 1), phase(a, b, 2), phase(a, b, 3),
                          phase(cc, e, 0), phase(cc, e, 1) };
          BT6(h[r], d);
        }
        #pragma GCC unroll 6
        for (int j = 0; j < 6; j++) {
          __m256 col[6] = { h[0][j], h[1][j], h[2][j], h[3][j], h[4][j], h[5][j] }, o[6];
          BT6(o, col);
          #pragma GCC unroll 6
          for (int i = 0; i < 6; i++) {
            float *vx = v + (i * 6 + j) * ld + k;   // V[xi] of these tiles
            _mm256_storeu_ps(vx, o[i]);
            __builtin_prefetch(vx + 16, 1, 3);   // the row's next line (bench/NOTES.md 46)
          }
        }
      }
    }
}

W4 static void input_transform (float *V, int64_t ld, const float *inp, int r0, int nr,
                                int c0, int c1, const trl_conv_geom *g) {
  switch (group_rows((g->OW + 3) / 4)) {
    case 1: input_rows(1, V, ld, inp, r0, nr, c0, c1, g); break;
    case 2: input_rows(2, V, ld, inp, r0, nr, c0, c1, g); break;
    default: input_rows(4, V, ld, inp, r0, nr, c0, c1, g); break;
  }
}

// out (B,OC,OH,OW) gets (acc: += ) Y = A^T M A for tile rows [r0, r0+nr), plus the bias b or
// through the epilogue e, output channels [oc0, oc1); M is (OC,36,ld).
W4 static inline __attribute__((always_inline))
void output_rows (const int S, float *out, const float *M, int64_t ld, const float *b,
                  const trl_epilogue *e, int acc, int r0, int nr, int oc0, int oc1,
                  const trl_conv_geom *g) {
  int TW = (g->OW + 3) / 4;
  // 4 output columns of 8 tiles back to 32 consecutive floats: y0|y1 and y2|y3 as two zmm
  __m512i lo = _mm512_setr_epi32(0, 8, 16, 24, 1, 9, 17, 25, 2, 10, 18, 26, 3, 11, 19, 27);
  __m512i hi = _mm512_setr_epi32(4, 12, 20, 28, 5, 13, 21, 29, 6, 14, 22, 30, 7, 15, 23, 31);
  int clamp = e && (e->lo != -INFINITY || e->hi != INFINITY);
  for (int oc = oc0; oc < oc1; oc++) {
    __m512 vs = _mm512_set1_ps(e && e->scale ? e->scale[oc] : 1.0f);
    __m512 vt = _mm512_set1_ps(e ? (e->shift ? e->shift[oc] : 0.0f) : b ? b[oc] : 0.0f);
    __m512 vl = _mm512_set1_ps(e ? e->lo : 0), vh = _mm512_set1_ps(e ? e->hi : 0);
    for (int q = 0; q < nr; q += S) {
      float *o[4];
      int yy[4];
      for (int s = 0; s < S; s++) {
        TILE_ROW(g, r0 + q + s, n, ty);
        o[s] = q + s < nr ? out + ((size_t)n * g->OC + oc) * g->OH * g->OW : NULL;
        yy[s] = 4 * ty;
      }
      const float *m = M + (size_t)oc * 36 * ld + (size_t)q * TW;
      for (int k = 0; k < TW; k += 8) {
        __m256 s6[4][6];   // s = A^T m (rows), then y = s A
        #pragma GCC unroll 6
        for (int j = 0; j < 6; j++) {
          __m256 col[6];
          for (int r = 0; r < 6; r++) col[r] = _mm256_loadu_ps(m + (r * 6 + j) * ld + k);
          __m256 t[4];
          AT6(t, col);
          for (int i = 0; i < 4; i++) s6[i][j] = t[i];
        }
        int x0 = 4 * k;
        __mmask16 mA = cols_mask(x0, g->OW), mB = S == 1 ? cols_mask(x0 + 16, g->OW) : mA;
        #pragma GCC unroll 4
        for (int i = 0; i < 4; i++) {
          float *p[4];
          int any = 0;
          for (int s = 0; s < S; s++) {
            p[s] = o[s] && yy[s] + i < g->OH ? o[s] + (size_t)(yy[s] + i) * g->OW : NULL;
            any |= p[s] != NULL;
          }
          if (!any) continue;
          __m256 y[4];
          AT6(y, s6[i]);
          __m512 z01 = join(y[0], y[1]), z23 = join(y[2], y[3]);
          __m512 a = _mm512_permutex2var_ps(z01, lo, z23), c = _mm512_permutex2var_ps(z01, hi, z23);
          if (acc) {
            __m512 pa, pc;
            load_group(&pa, &pc, (const float *const *)p, S, x0, mA, mB);
            a = _mm512_add_ps(a, pa), c = _mm512_add_ps(c, pc);
          } else if (e) {   // the same fmadd-then-clamp as trl_epilogue_row (same bits)
            a = _mm512_fmadd_ps(a, vs, vt), c = _mm512_fmadd_ps(c, vs, vt);
            if (clamp) {
              a = _mm512_min_ps(_mm512_max_ps(a, vl), vh);
              c = _mm512_min_ps(_mm512_max_ps(c, vl), vh);
            }
          } else if (b) {
            a = _mm512_add_ps(a, vt), c = _mm512_add_ps(c, vt);
          }
          store_group(p, S, x0, a, c, mA, mB);
        }
      }
    }
  }
}

W4 static void output_transform (float *out, const float *M, int64_t ld, const float *b,
                                 const trl_epilogue *e, int acc, int r0, int nr, int oc0,
                                 int oc1, const trl_conv_geom *g) {
  switch (group_rows((g->OW + 3) / 4)) {
    case 1: output_rows(1, out, M, ld, b, e, acc, r0, nr, oc0, oc1, g); break;
    case 2: output_rows(2, out, M, ld, b, e, acc, r0, nr, oc0, oc1, g); break;
    default: output_rows(4, out, M, ld, b, e, acc, r0, nr, oc0, oc1, g); break;
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

// D is (OC,36,ld): A dY A^T for the 4x4 tiles of dout (B,OC,OH,OW) in tile rows [r0, r0+nr)
// (zero past the map's edge), output channels [oc0, oc1).
W4 static void dout_transform (float *D, int64_t ld, const float *dout, int r0, int nr,
                               int oc0, int oc1, const trl_conv_geom *g) {
  int TW = (g->OW + 3) / 4, S = group_rows(TW);
  for (int oc = oc0; oc < oc1; oc++)
    for (int q = 0; q < nr; q += S) {
      const float *x[4];
      int y0[4];
      group_planes(x, y0, dout, g->OC, (size_t)g->OH * g->OW, oc, r0, q, nr, S, 0, g);
      for (int k = 0; k < TW; k += 8) {
        int x0 = 4 * k;
        __mmask16 mA = cols_mask(x0, g->OW), mB = S == 1 ? cols_mask(x0 + 16, g->OW) : mA;
        __m256 y[4][4];   // y[i][j]: row i, column j of 8 tiles
        for (int i = 0; i < 4; i++) {
          const float *p[4];
          for (int s = 0; s < S; s++)
            p[s] = x[s] && y0[s] + i < g->OH ? x[s] + (size_t)(y0[s] + i) * g->OW : NULL;
          __m512 a, b;
          load_group(&a, &b, p, S, x0, mA, mB);
          for (int j = 0; j < 4; j++) y[i][j] = phase(a, b, j);
        }
        __m256 z[6][4];   // z = A y (rows), then A z^T (columns)
        for (int j = 0; j < 4; j++) {
          __m256 col[4] = { y[0][j], y[1][j], y[2][j], y[3][j] }, o[6];
          A4(o, col);
          for (int r = 0; r < 6; r++) z[r][j] = o[r];
        }
        float *d = D + (size_t)oc * 36 * ld + (size_t)q * TW + k;
        for (int r = 0; r < 6; r++) {
          __m256 o[6];
          A4(o, z[r]);
          for (int c = 0; c < 6; c++) {
            _mm256_storeu_ps(d + (r * 6 + c) * ld, o[c]);
            __builtin_prefetch(d + (r * 6 + c) * ld + 16, 1, 3);
          }
        }
      }
    }
}

// dw (OC,C,3,3) += G^T dU G for output channels [oc0, oc1); dU is (36,OC,C).
W4 static void weight_grad_transform (float *dw, const float *dU, int oc0, int oc1,
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

// Tile rows per chunk of the weight gradient outside team mode: 4x the forward's. Its GEMMs'
// K is the chunk's tiles, and trl_gemm_nt sums lanes once per call: at 98 tiles (56x56x64)
// that cost more than V and D leaving L2 (32x64x56x56 alone: about 26 -> 20 ms,
// bench/NOTES.md 42).
static int wgrad_rows (const trl_conv_geom *g) {
  int cr = chunk_rows(g) * 4, TW = (g->OW + 3) / 4, S = group_rows(TW);
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

// The team version of wino4_wgrad: each xi's dU sum belongs to one thread (the same bits
// every run), no private sums.
W4 static void wgrad_team (float *dw, const float *dout, const float *inp, float *ws, int nt,
                           const trl_conv_geom *g) {
  int TH = (g->OH + 3) / 4, TW = (g->OW + 3) / 4, cr = team_rows(g), rows = g->B * TH;
  int64_t ld = row_ld(cr, TW);
  float *dU = ws, *V = dU + (size_t)36 * g->OC * g->C, *D = V + (size_t)36 * g->C * ld;
  #pragma omp parallel num_threads(nt)
  {
    int t = omp_get_thread_num(), nth = omp_get_num_threads();
    for (int r0 = 0; r0 < rows; r0 += cr) {
      int nr = rows - r0 < cr ? rows - r0 : cr, nn = nr * TW;
      input_transform(V, ld, inp, r0, nr, g->C * t / nth, g->C * (t + 1) / nth, g);
      dout_transform(D, ld, dout, r0, nr, g->OC * t / nth, g->OC * (t + 1) / nth, g);
      #pragma omp barrier
      for (int xi = 36 * t / nth; xi < 36 * (t + 1) / nth; xi++)
        trl_gemm_nt(g->OC, g->C, nn, D + (size_t)xi * ld, (int)(36 * ld), V + (size_t)xi * ld,
                    (int)(36 * ld), dU + (size_t)xi * g->OC * g->C, g->C, r0 != 0);
      #pragma omp barrier
    }
    weight_grad_transform(dw, dU, g->OC * t / nth, g->OC * (t + 1) / nth, g);
  }
}

W4 void wino4_wgrad (float *dw, const float *dout, const float *inp, float *ws, int nt,
                     const trl_conv_geom *g) {
  int TH = (g->OH + 3) / 4, TW = (g->OW + 3) / 4, cr = wgrad_rows(g);
  int64_t ld = row_ld(cr, TW);
  if (nt < 1) nt = 1;
  int prev = nt > 1 ? trl_blas_threads(1) : 0;
  if (team_mode(g)) {
    wgrad_team(dw, dout, inp, ws, nt, g);
    if (nt > 1) trl_blas_threads(prev);
    return;
  }
  size_t uN = (size_t)36 * g->OC * g->C, per = uN + (size_t)36 * (g->C + g->OC) * ld;
  #pragma omp parallel num_threads(nt)
  {
    int t = omp_get_thread_num(), nth = omp_get_num_threads();
    float *dU = ws + (size_t)t * per, *V = dU + uN, *D = V + (size_t)36 * g->C * ld;
    // a static split of the tile rows: each thread's sum covers the same tiles in every run,
    // so dw has the same bits every time
    int rows = g->B * TH, lo = (int)((int64_t)rows * t / nth), hi = (int)((int64_t)rows * (t + 1) / nth);
    if (lo >= hi) memset(dU, 0, sizeof(float) * uN);
    for (int r0 = lo; r0 < hi; r0 += cr) {
      int nr = hi - r0 < cr ? hi - r0 : cr, nn = nr * TW;
      input_transform(V, ld, inp, r0, nr, 0, g->C, g);
      dout_transform(D, ld, dout, r0, nr, 0, g->OC, g);
      for (int xi = 0; xi < 36; xi++)   // dU[xi] (OC,C) += D[xi] (OC,T) x V[xi]^T (T,C)
        trl_gemm_nt(g->OC, g->C, nn, D + (size_t)xi * ld, (int)(36 * ld), V + (size_t)xi * ld,
                    (int)(36 * ld), dU + (size_t)xi * g->OC * g->C, g->C, r0 != lo);
    }
    #pragma omp barrier
    // thread 0's dU gets the others', each thread summing a slice; then dw += G^T dU G
    size_t s0 = uN * t / nth, s1 = uN * (t + 1) / nth;
    for (int k = 1; k < nth; k++) {
      const float *src = ws + (size_t)k * per;
      for (size_t i = s0; i < s1; i++) ws[i] += src[i];
    }
    #pragma omp barrier
    weight_grad_transform(dw, ws, g->OC * t / nth, g->OC * (t + 1) / nth, g);
  }
  if (nt > 1) trl_blas_threads(prev);
}

W4 void wino4_conv (float *out, const float *inp, const float *w, const float *b,
                    const trl_epilogue *e, int flip, int acc, float *ws, int nt,
                    const trl_conv_geom *g) {
  int TH = (g->OH + 3) / 4, TW = (g->OW + 3) / 4, team = team_mode(g), rows = g->B * TH;
  int cr = team ? team_rows(g) : chunk_rows(g);
  int64_t ld = row_ld(cr, TW);
  if (nt < 1) nt = 1;
  float *U = ws;
  size_t per = (size_t)36 * (g->C + g->OC) * ld, up = u_plane(g);
  int prev = nt > 1 ? trl_blas_threads(1) : 0;
  #pragma omp parallel num_threads(nt)
  {
    int t = omp_get_thread_num(), nth = omp_get_num_threads();
    int panels = (g->OC + trl_gemm_mr(g->OC) - 1) / trl_gemm_mr(g->OC);
    weight_transform(U, w, flip, panels * t / nth, panels * (t + 1) / nth, g);
    #pragma omp barrier
    if (team) {   // every chunk by all threads: channels, then xi, then output channels
      float *V = U + 36 * up, *M = V + (size_t)36 * g->C * ld;
      for (int r0 = 0; r0 < rows; r0 += cr) {
        int nr = rows - r0 < cr ? rows - r0 : cr, nn = nr * TW;
        input_transform(V, ld, inp, r0, nr, g->C * t / nth, g->C * (t + 1) / nth, g);
        #pragma omp barrier
        for (int xi = 36 * t / nth; xi < 36 * (t + 1) / nth; xi++)
          trl_gemm_packed(g->OC, nn, g->C, U + xi * up, V + (size_t)xi * ld, (int)(36 * ld),
                          M + (size_t)xi * ld, (int)(36 * ld), NULL, NULL, 0);
        #pragma omp barrier
        output_transform(out, M, ld, b, e, acc, r0, nr, g->OC * t / nth, g->OC * (t + 1) / nth, g);
        #pragma omp barrier
      }
    } else {   // chunks of 'cr' tile rows go out dynamically, as in conv2d.c
      float *V = U + 36 * up + (size_t)t * per, *M = V + (size_t)36 * g->C * ld;
      #pragma omp for schedule(dynamic, 1)
      for (int r0 = 0; r0 < rows; r0 += cr) {
        int nr = rows - r0 < cr ? rows - r0 : cr, nn = nr * TW;
        input_transform(V, ld, inp, r0, nr, 0, g->C, g);
        for (int xi = 0; xi < 36; xi++)   // V and M keep a channel's 36 rows together
          trl_gemm_packed(g->OC, nn, g->C, U + xi * up, V + (size_t)xi * ld, (int)(36 * ld),
                          M + (size_t)xi * ld, (int)(36 * ld), NULL, NULL, 0);
        output_transform(out, M, ld, b, e, acc, r0, nr, 0, g->OC, g);
      }
    }
  }
  if (nt > 1) trl_blas_threads(prev);
}

#else

int wino4_cpu (void) { return 0; }
size_t wino4_workspace (const trl_conv_geom *g, int nt) { (void)g, (void)nt; return 0; }
size_t wino4_wgrad_workspace (const trl_conv_geom *g, int nt) { (void)g, (void)nt; return 0; }
void wino4_wgrad (float *dw, const float *dout, const float *inp, float *ws, int nt,
                  const trl_conv_geom *g) {
  (void)dw, (void)dout, (void)inp, (void)ws, (void)nt, (void)g;
}
void wino4_conv (float *out, const float *inp, const float *w, const float *b,
                 const trl_epilogue *e, int flip, int acc, float *ws, int nt,
                 const trl_conv_geom *g) {
  (void)out, (void)inp, (void)w, (void)b, (void)e, (void)flip, (void)acc, (void)ws, (void)nt, (void)g;
}

#endif
