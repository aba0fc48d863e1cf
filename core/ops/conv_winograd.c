/*
** conv_winograd.c: Winograd F(2x2,3x3) (Lavin & Gray, 2015) for conv2d.c, and the choice
** between it and F(4x4,3x3) (conv_winograd4.c). Each 2x2 output tile
** reads a 4x4 input patch; V = B^T d B and U = G g G^T turn the conv into 16 independent
** GEMMs M[xi] (OC,T) = U[xi] (OC,C) x V[xi] (C,T) over tiles T, and Y = A^T M A. Threads split
** the images as the im2col path does. Not here: strides, dilation, groups.
*/
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "conv_winograd.h"
#include "gemm.h"

// Tiles run 8 at a time with AVX2; the last group may spill up to 7 tiles past the row, into
// slack that every buffer has ('SLACK' floats).
#define SLACK 16

// Tile rows per GEMM: wide enough for an efficient GEMM, small enough that V and M stay near
// the cache.
static int chunk_rows (const trl_conv_geom *g) {
  int tc = 196;   // measured on 2 cores: 196 beat 384, 784 and 1568 for 56x56 .. 14x14
  int TW = (g->OW + 1) / 2, rows = (tc + TW - 1) / TW, all = g->B * ((g->OH + 1) / 2);
  return rows < all ? rows : all;
}

// Floats of a thread's row buffer: 4 padded input rows, or 2 output rows.
#define PADN(g) (4 * ((size_t)(g)->OW + 3 + 2 * SLACK))

// 4 for F(4x4,3x3), 2 for F(2x2,3x3), 0 for neither (im2col + GEMM). F(4x4) where the CPU has
// AVX2 and FMA (unless TRL_CONV_WINOGRAD=2), on maps of 7x7 and up with 64 tiles or more: with
// fewer, the weight transform and the thin GEMMs cost more than the multiplies saved (one
// 7x7 image has 4 tiles). With the transform prepacked, from 8 tiles: one 14x14 image (16)
// ran 4.2x faster than im2col, one 7x7 image (4) 0.6x, two (8) 1.3x (bench/NOTES.md 61).
// F(2x2) on maps of 100 pixels and up: on 7x7 maps it ran 0.7-0.8x im2col (the weight
// transform and the 4-tile rows).
int winograd_variant (const trl_conv_geom *g, int packed) {
  if (!(g->KH == 3 && g->KW == 3 && g->sh == 1 && g->sw == 1 && g->dh == 1 && g->dw == 1 &&
        g->G == 1 && g->ph <= 2 && g->pw <= 2 && g->C >= 8 && g->OC >= 8)) return 0;
  const char *e = getenv("TRL_CONV_WINOGRAD");
  int64_t tiles4 = (int64_t)g->B * ((g->OH + 3) / 4) * ((g->OW + 3) / 4);
  if (!(e && e[0] == '2') && wino4_cpu() && g->OH * g->OW >= 49 &&
      (tiles4 >= 64 || (packed && tiles4 >= 8)))
    return 4;
  return g->OH * g->OW >= 100 ? 2 : 0;
}

int winograd_applies (const trl_conv_geom *g) {
  return winograd_variant(g, 0) != 0;
}

size_t winograd_workspace (const trl_conv_geom *g, int nt) {
  if (winograd_variant(g, 0) == 4) return wino4_workspace(g, nt, 0);
  size_t ld = (size_t)chunk_rows(g) * ((g->OW + 1) / 2) + SLACK;
  return (size_t)16 * g->OC * g->C + (size_t)nt * (16 * (g->C + g->OC) * ld + PADN(g));
}

// U is (16,OC,C): U[.][oc][c] = G k G^T for k = w[oc][c], or w[c][oc] rotated when 'flip'.
static void weight_transform (float *U, const float *w, int flip, int oc0, int oc1,
                              const trl_conv_geom *g) {
  size_t plane = (size_t)g->OC * g->C;
  for (int oc = oc0; oc < oc1; oc++)
    for (int c = 0; c < g->C; c++) {
      float k[3][3], t[4][3];
      const float *src = flip ? w + ((size_t)c * g->OC + oc) * 9 : w + ((size_t)oc * g->C + c) * 9;
      for (int i = 0; i < 3; i++)
        for (int j = 0; j < 3; j++) k[i][j] = flip ? src[(2 - i) * 3 + (2 - j)] : src[i * 3 + j];
      for (int j = 0; j < 3; j++) {   // t = G k
        t[0][j] = k[0][j];
        t[1][j] = 0.5f * (k[0][j] + k[1][j] + k[2][j]);
        t[2][j] = 0.5f * (k[0][j] - k[1][j] + k[2][j]);
        t[3][j] = k[2][j];
      }
      float *u = U + (size_t)oc * g->C + c;
      for (int i = 0; i < 4; i++) {   // U = t G^T
        u[(i * 4 + 0) * plane] = t[i][0];
        u[(i * 4 + 1) * plane] = 0.5f * (t[i][0] + t[i][1] + t[i][2]);
        u[(i * 4 + 2) * plane] = 0.5f * (t[i][0] - t[i][1] + t[i][2]);
        u[(i * 4 + 3) * plane] = t[i][2];
      }
    }
}

#if defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>
#define VEC8 1

// The even and odd entries of the 16 floats at p: p[0], p[2], .., p[14] and p[1], .., p[15].
static inline void deinterleave (const float *p, __m256 *ev, __m256 *od) {
  __m256 a = _mm256_loadu_ps(p), b = _mm256_loadu_ps(p + 8);
  *ev = _mm256_castpd_ps(_mm256_permute4x64_pd(
      _mm256_castps_pd(_mm256_shuffle_ps(a, b, _MM_SHUFFLE(2, 0, 2, 0))), 0xd8));
  *od = _mm256_castpd_ps(_mm256_permute4x64_pd(
      _mm256_castps_pd(_mm256_shuffle_ps(a, b, _MM_SHUFFLE(3, 1, 3, 1))), 0xd8));
}
#endif

// V is (16,C,ld): the tile rows [r0, r0+nr) (row ty of image n is n*TH + ty) of inp (B,C,H,W);
// pad holds 4 rows of PW floats.
static void input_transform (float *V, int64_t ld, const float *inp, int r0, int nr,
                             float *pad, const trl_conv_geom *g) {
  int TH = (g->OH + 1) / 2, TW = (g->OW + 1) / 2, PW = 2 * TW + 2 + 2 * SLACK;
  size_t plane = (size_t)g->C * ld;
  int lo = g->pw, hi = g->pw + g->W < PW ? g->pw + g->W : PW;   // where real pixels land
  for (int c = 0; c < g->C; c++)
    for (int q = 0; q < nr; q++) {
      int n = (r0 + q) / TH, ty = (r0 + q) % TH, y0 = 2 * ty - g->ph;
      const float *x = inp + ((size_t)n * g->C + c) * g->H * g->W;
      // pad is a ring of 4 zero-padded input rows, row yy in slot yy & 3: the next tile row
      // reuses two of them and copies two
      for (int i = q == 0 || ty == 0 ? 0 : 2; i < 4; i++) {
        int yy = y0 + i;
        float *p = pad + (yy & 3) * PW;
        if (yy < 0 || yy >= g->H) {
          memset(p, 0, sizeof(float) * PW);
          continue;
        }
        memset(p, 0, sizeof(float) * lo);
        memcpy(p + lo, x + (size_t)yy * g->W, sizeof(float) * (hi - lo));
        memset(p + hi, 0, sizeof(float) * (PW - hi));
      }
      const float *pr[4];
      for (int i = 0; i < 4; i++) pr[i] = pad + ((y0 + i) & 3) * PW;
      float *v = V + (size_t)c * ld + (size_t)q * TW;
      int k = 0;
#ifdef VEC8
      for (; k < TW; k += 8) {
        __m256 d[4][4], s[4][4];
        for (int i = 0; i < 4; i++) {
          deinterleave(pr[i] + 2 * k, &d[i][0], &d[i][1]);
          deinterleave(pr[i] + 2 * k + 2, &d[i][2], &d[i][3]);
        }
        for (int j = 0; j < 4; j++) {   // s = B^T d
          s[0][j] = _mm256_sub_ps(d[0][j], d[2][j]);
          s[1][j] = _mm256_add_ps(d[1][j], d[2][j]);
          s[2][j] = _mm256_sub_ps(d[2][j], d[1][j]);
          s[3][j] = _mm256_sub_ps(d[1][j], d[3][j]);
        }
        for (int i = 0; i < 4; i++) {   // V = s B
          _mm256_storeu_ps(v + (i * 4 + 0) * plane + k, _mm256_sub_ps(s[i][0], s[i][2]));
          _mm256_storeu_ps(v + (i * 4 + 1) * plane + k, _mm256_add_ps(s[i][1], s[i][2]));
          _mm256_storeu_ps(v + (i * 4 + 2) * plane + k, _mm256_sub_ps(s[i][2], s[i][1]));
          _mm256_storeu_ps(v + (i * 4 + 3) * plane + k, _mm256_sub_ps(s[i][1], s[i][3]));
        }
      }
#endif
      for (; k < TW; k++) {
        const float *p0 = pr[0], *p1 = pr[1], *p2 = pr[2], *p3 = pr[3];
        float s[4][4];
        for (int j = 0; j < 4; j++) {   // s = B^T d
          float d0 = p0[2 * k + j], d1 = p1[2 * k + j], d2 = p2[2 * k + j], d3 = p3[2 * k + j];
          s[0][j] = d0 - d2, s[1][j] = d1 + d2, s[2][j] = d2 - d1, s[3][j] = d1 - d3;
        }
        for (int i = 0; i < 4; i++) {   // V = s B
          v[(i * 4 + 0) * plane + k] = s[i][0] - s[i][2];
          v[(i * 4 + 1) * plane + k] = s[i][1] + s[i][2];
          v[(i * 4 + 2) * plane + k] = s[i][2] - s[i][1];
          v[(i * 4 + 3) * plane + k] = s[i][1] - s[i][3];
        }
      }
    }
}

// out (B,OC,OH,OW) gets (or adds) Y = A^T M A for tile rows [r0, r0+nr); M is (16,OC,ld);
// buf holds 2 rows of 2*TW + 2*SLACK floats.
static void output_transform (float *out, const float *M, int64_t ld, const float *b,
                              const trl_epilogue *e, int acc, int r0, int nr, float *buf,
                              const trl_conv_geom *g) {
  int TH = (g->OH + 1) / 2, TW = (g->OW + 1) / 2, BW = 2 * TW + 2 * SLACK;
  size_t plane = (size_t)g->OC * ld;
  for (int q = 0; q < nr; q++) {
    int n = (r0 + q) / TH, yy = 2 * ((r0 + q) % TH);
    for (int oc = 0; oc < g->OC; oc++) {
      float bv = b ? b[oc] : 0.0f, *b0 = buf, *b1 = buf + BW;
      const float *m = M + (size_t)oc * ld + (size_t)q * TW;
      int k = 0;
#ifdef VEC8
      __m256 vb = _mm256_set1_ps(bv);
      for (; k < TW; k += 8) {
        __m256 s[2][4];
        for (int j = 0; j < 4; j++) {   // s = A^T m
          __m256 m0 = _mm256_loadu_ps(m + (0 + j) * plane + k);
          __m256 m1 = _mm256_loadu_ps(m + (4 + j) * plane + k);
          __m256 m2 = _mm256_loadu_ps(m + (8 + j) * plane + k);
          __m256 m3 = _mm256_loadu_ps(m + (12 + j) * plane + k);
          s[0][j] = _mm256_add_ps(_mm256_add_ps(m0, m1), m2);
          s[1][j] = _mm256_sub_ps(_mm256_sub_ps(m1, m2), m3);
        }
        for (int i = 0; i < 2; i++) {   // y = s A, interleaved into the output row
          __m256 e = _mm256_add_ps(_mm256_add_ps(_mm256_add_ps(s[i][0], s[i][1]), s[i][2]), vb);
          __m256 o = _mm256_add_ps(_mm256_sub_ps(_mm256_sub_ps(s[i][1], s[i][2]), s[i][3]), vb);
          __m256 l = _mm256_unpacklo_ps(e, o), h = _mm256_unpackhi_ps(e, o);
          float *dst = (i ? b1 : b0) + 2 * k;
          _mm256_storeu_ps(dst, _mm256_permute2f128_ps(l, h, 0x20));
          _mm256_storeu_ps(dst + 8, _mm256_permute2f128_ps(l, h, 0x31));
        }
      }
#endif
      for (; k < TW; k++) {
        float s[2][4];
        for (int j = 0; j < 4; j++) {   // s = A^T m
          float m0 = m[(0 + j) * plane + k], m1 = m[(4 + j) * plane + k];
          float m2 = m[(8 + j) * plane + k], m3 = m[(12 + j) * plane + k];
          s[0][j] = m0 + m1 + m2, s[1][j] = m1 - m2 - m3;
        }
        b0[2 * k] = s[0][0] + s[0][1] + s[0][2] + bv;   // y = s A
        b0[2 * k + 1] = s[0][1] - s[0][2] - s[0][3] + bv;
        b1[2 * k] = s[1][0] + s[1][1] + s[1][2] + bv;
        b1[2 * k + 1] = s[1][1] - s[1][2] - s[1][3] + bv;
      }
      float *o = out + ((size_t)n * g->OC + oc) * g->OH * g->OW + (size_t)yy * g->OW;
      for (int i = 0; i < 2 && yy + i < g->OH; i++) {
        float *row = o + (size_t)i * g->OW;
        const float *src = i ? b1 : b0;
        if (acc) for (int x = 0; x < g->OW; x++) row[x] += src[x];
        else if (e) trl_epilogue_row(row, src, e, oc, g->OW);
        else memcpy(row, src, sizeof(float) * g->OW);
      }
    }
  }
}

void winograd_conv (float *out, const float *inp, const float *w, const float *b,
                    const trl_epilogue *e, int flip, int acc, float *ws, int nt,
                    const trl_conv_geom *g) {
  if (winograd_variant(g, 0) == 4) {
    wino4_conv(out, inp, w, NULL, b, e, flip, acc, ws, nt, g);
    return;
  }
  int TH = (g->OH + 1) / 2, TW = (g->OW + 1) / 2, cr = chunk_rows(g);
  int64_t ld = (int64_t)cr * TW + SLACK;
  if (nt < 1) nt = 1;
  float *U = ws;
  size_t per = (size_t)16 * (g->C + g->OC) * ld + PADN(g);
  int prev = nt > 1 ? trl_blas_threads(1) : 0;
  #pragma omp parallel num_threads(nt)
  {
    int t = omp_get_thread_num(), nth = omp_get_num_threads();
    weight_transform(U, w, flip, g->OC * t / nth, g->OC * (t + 1) / nth, g);
    #pragma omp barrier
    float *V = U + (size_t)16 * g->OC * g->C + (size_t)t * per, *M = V + (size_t)16 * g->C * ld;
    float *pad = M + (size_t)16 * g->OC * ld;
    int rows = g->B * TH;   // chunks of 'cr' tile rows go out dynamically, as in conv2d.c
    #pragma omp for schedule(dynamic, 1)
    for (int r0 = 0; r0 < rows; r0 += cr) {
      int nr = rows - r0 < cr ? rows - r0 : cr, n = nr * TW;
      input_transform(V, ld, inp, r0, nr, pad, g);
      for (int xi = 0; xi < 16; xi++)
        trl_sgemm(0, 0, g->OC, n, g->C, 1.0f, U + (size_t)xi * g->OC * g->C, g->C,
                  V + (size_t)xi * g->C * ld, (int)ld, 0.0f, M + (size_t)xi * g->OC * ld, (int)ld);
      output_transform(out, M, ld, b, e, acc, r0, nr, pad, g);
    }
  }
  if (nt > 1) trl_blas_threads(prev);
}
