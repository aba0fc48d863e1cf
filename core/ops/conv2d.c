/*
** conv2d.c: 2-D convolution on NCHW float32 (stride, padding, dilation, groups, optional bias)
** and its backward. OpenMP threads split the batch and run im2col + single-threaded GEMMs on
** their own images (several images per GEMM for small maps; rows of one image at a time when
** its columns outgrow L2); forward and data-gradient GEMMs are trl's own (gemm.h: bias or
** epilogue applied in registers), weight-gradient ones OpenBLAS's. 3x3 stride-1 convs go through Winograd
** (conv_winograd.h: F(4x4,3x3) with AVX2, also for the weight gradient, else F(2x2,3x3))
** for the output and the data gradient; a 1x1, stride-1, unpadded conv skips im2col; depthwise
** convs use a direct kernel (3x3, stride 1 or 2: forward on a padded plane with AVX2 or AVX-512).
** Not here: 3-D, NHWC.
*/
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "conv_internal.h"
#include "conv_winograd.h"
#include "gemm.h"
#include "mem.h"
#include "nn.h"
#include "tape.h"

#if defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>
#endif

trl_conv_params trl_conv_defaults (void) {
  return (trl_conv_params){ .stride = {1, 1}, .pad = {0, 0}, .dilation = {1, 1}, .groups = 1 };
}

/* {==================================================================
** Shape check
** =================================================================== */

trl_status conv2d_check (trl_conv_geom *g, const trl_tensor *x, const trl_tensor *w,
                         const trl_tensor *b, const trl_conv_params *p) {
  char xs[TRL_SHAPELEN], wsh[TRL_SHAPELEN], bs[TRL_SHAPELEN];
  trl_tensor_shape_str(xs, x);
  trl_tensor_shape_str(wsh, w);
  if (x->dtype != TRL_F32 || w->dtype != TRL_F32 || (b && b->dtype != TRL_F32))
    return trl_fail(TRL_ETYPE, "conv2d: expected float32 tensors, x is %s, weight is %s%s%s",
                    trl_dtype_name(x->dtype), trl_dtype_name(w->dtype), b ? ", bias is " : "",
                    b ? trl_dtype_name(b->dtype) : "");
  if (x->ndim != 4 || w->ndim != 4)
    return trl_fail(TRL_ESHAPE, "conv2d: expected 4-D x (N,C,H,W) and weight (OC,C/groups,KH,KW),"
                    " x is %s, weight is %s", xs, wsh);
  if (p->stride[0] < 1 || p->stride[1] < 1 || p->dilation[0] < 1 || p->dilation[1] < 1 ||
      p->pad[0] < 0 || p->pad[1] < 0 || p->groups < 1)
    return trl_fail(TRL_EARG, "conv2d: bad parameters stride (%d,%d), pad (%d,%d), dilation "
                    "(%d,%d), groups %d", p->stride[0], p->stride[1], p->pad[0], p->pad[1],
                    p->dilation[0], p->dilation[1], p->groups);
  int64_t C = x->shape[1], OC = w->shape[0], G = p->groups;
  if (C % G != 0 || OC % G != 0 || w->shape[1] != C / G)
    return trl_fail(TRL_ESHAPE, "conv2d: channels do not match with groups %d (weight must be "
                    "(OC,C/groups,KH,KW), OC divisible by groups), x is %s, weight is %s",
                    p->groups, xs, wsh);
  if (b && (b->ndim != 1 || b->shape[0] != OC))
    return trl_fail(TRL_ESHAPE, "conv2d: bias must be (%lld), weight is %s, bias is %s",
                    (long long)OC, wsh, trl_tensor_shape_str(bs, b));
  int64_t H = x->shape[2], W = x->shape[3], KH = w->shape[2], KW = w->shape[3];
  int64_t ekh = (int64_t)p->dilation[0] * (KH - 1) + 1;
  int64_t ekw = (int64_t)p->dilation[1] * (KW - 1) + 1;
  if (KH < 1 || KW < 1 || H + 2 * p->pad[0] < ekh || W + 2 * p->pad[1] < ekw)
    return trl_fail(TRL_ESHAPE, "conv2d: kernel (dilated %lldx%lld) larger than padded input "
                    "(pad %d,%d), x is %s, weight is %s", (long long)ekh, (long long)ekw,
                    p->pad[0], p->pad[1], xs, wsh);
  if (x->shape[0] > INT32_MAX || C > INT32_MAX || OC > INT32_MAX || H * W > INT32_MAX ||
      C * KH * KW > INT32_MAX)
    return trl_fail(TRL_ESHAPE, "conv2d: sizes too large, x is %s, weight is %s", xs, wsh);
  *g = (trl_conv_geom){
    .B = (int)x->shape[0], .C = (int)C, .H = (int)H, .W = (int)W,
    .OC = (int)OC, .KH = (int)KH, .KW = (int)KW,
    .OH = (int)((H + 2 * p->pad[0] - ekh) / p->stride[0] + 1),
    .OW = (int)((W + 2 * p->pad[1] - ekw) / p->stride[1] + 1),
    .sh = p->stride[0], .sw = p->stride[1], .ph = p->pad[0], .pw = p->pad[1],
    .dh = p->dilation[0], .dw = p->dilation[1], .G = p->groups };
  return TRL_OK;
}

/* }================================================================== */

/* {==================================================================
** Kernels
** =================================================================== */

enum { GENERAL, POINTWISE, DEPTHWISE };

static int conv_kind (const trl_conv_geom *g) {
  if (g->C == g->G && g->C > 1) return DEPTHWISE;
  if (g->KH == 1 && g->KW == 1 && g->sh == 1 && g->sw == 1 && g->ph == 0 && g->pw == 0)
    return POINTWISE;
  return GENERAL;
}

// The outputs ow in [*lo, *hi) read input column ow*s + off inside [0, W).
static void col_range (int *lo, int *hi, int off, int s, int W, int OW) {
  int l = off < 0 ? (-off + s - 1) / s : 0;
  int h = W - off <= 0 ? 0 : (W - off + s - 1) / s;
  if (l > OW) l = OW;
  if (h > OW) h = OW;
  if (h < l) h = l;
  *lo = l, *hi = h;
}

// col is (Cg*KH*KW, ld) with the OH*OW columns of this image first in each row, inp is
// (Cg,H,W): the channels of one group of one image. Serial: callers split images over threads.
// d[ow] = s[2*ow] for ow in [lo, hi); s has 'avail' readable floats (8 at a time with AVX2:
// the even floats of 16 loaded, never reading past s[avail-1]).
static void stride2_row (float *d, const float *s, int lo, int hi, int avail) {
  int ow = lo;
#if defined(__AVX2__) && defined(__FMA__)
  for (; ow + 8 <= hi && 2 * ow + 16 <= avail; ow += 8) {
    __m256 a = _mm256_loadu_ps(s + 2 * ow), b = _mm256_loadu_ps(s + 2 * ow + 8);
    __m256 e = _mm256_shuffle_ps(a, b, _MM_SHUFFLE(2, 0, 2, 0));   // a0 a2 b0 b2 | a4 a6 b4 b6
    e = _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(e), 0xd8));
    _mm256_storeu_ps(d + ow, e);
  }
#endif
  for (; ow < hi; ow++) d[ow] = s[2 * ow];
}

// The inverse of stride2_row: d[2 ow] += s[ow] for ow in [lo, hi), the odd columns unchanged
// (blended back, so -0 stays -0); 2 ow + 16 <= avail keeps the vectors inside d's row.
static void stride2_add (float *d, const float *s, int lo, int hi, int avail) {
  int ow = lo;
#if defined(__AVX2__) && defined(__FMA__)
  __m256 z = _mm256_setzero_ps();
  for (; ow + 8 <= hi && 2 * ow + 16 <= avail; ow += 8) {
    // s0 s1 s4 s5 | s2 s3 s6 s7, then s0 0 s1 0 s2 0 s3 0 and s4 0 s5 0 s6 0 s7 0
    __m256 v = _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(_mm256_loadu_ps(s + ow)), 0xd8));
    __m256 a = _mm256_loadu_ps(d + 2 * ow), b = _mm256_loadu_ps(d + 2 * ow + 8);
    a = _mm256_blend_ps(a, _mm256_add_ps(a, _mm256_unpacklo_ps(v, z)), 0x55);
    b = _mm256_blend_ps(b, _mm256_add_ps(b, _mm256_unpackhi_ps(v, z)), 0x55);
    _mm256_storeu_ps(d + 2 * ow, a);
    _mm256_storeu_ps(d + 2 * ow + 8, b);
  }
#endif
  for (; ow < hi; ow++) d[2 * ow] += s[ow];
}

// The columns of output rows [oh0, oh1) only: col is (Cg*KH*KW, ld), row oh at (oh - oh0)*OW.
static void im2col_rows (float *col, int64_t ld, const float *inp, int Cg, int oh0, int oh1,
                         const trl_conv_geom *g) {
  int rows = Cg * g->KH * g->KW;
  for (int r = 0; r < rows; r++) {
    int kw = r % g->KW, kh = (r / g->KW) % g->KH, c = r / (g->KH * g->KW);
    const float *src = inp + (size_t)c * g->H * g->W;
    int off = kw * g->dw - g->pw, lo, hi;
    col_range(&lo, &hi, off, g->sw, g->W, g->OW);
    for (int oh = oh0; oh < oh1; oh++) {
      float *d = col + (size_t)r * ld + (size_t)(oh - oh0) * g->OW;
      int ih = oh * g->sh - g->ph + kh * g->dh;
      if (ih < 0 || ih >= g->H) {
        memset(d, 0, sizeof(float) * g->OW);
        continue;
      }
      const float *s = src + (size_t)ih * g->W + off;
      for (int ow = 0; ow < lo; ow++) d[ow] = 0;
      if (g->sw == 1) memcpy(d + lo, s + lo, sizeof(float) * (hi - lo));
      else if (g->sw == 2) stride2_row(d, s, lo, hi, g->W - off);
      else for (int ow = lo; ow < hi; ow++) d[ow] = s[ow * g->sw];
      for (int ow = hi; ow < g->OW; ow++) d[ow] = 0;
    }
  }
}

static void im2col (float *col, int64_t ld, const float *inp, int Cg, const trl_conv_geom *g) {
  im2col_rows(col, ld, inp, Cg, 0, g->OH, g);
}

// dinp is (Cg,H,W), col is (Cg*KH*KW, ld) as in im2col_rows for output rows [oh0, oh1): adds
// every entry back to its pixel.
static void col2im_rows (float *dinp, const float *col, int64_t ld, int Cg, int oh0, int oh1,
                         const trl_conv_geom *g) {
  for (int c = 0; c < Cg; c++) {
    float *dst = dinp + (size_t)c * g->H * g->W;
    for (int kh = 0; kh < g->KH; kh++)
      for (int kw = 0; kw < g->KW; kw++) {
        const float *src = col + ((size_t)(c * g->KH + kh) * g->KW + kw) * ld;
        int off = kw * g->dw - g->pw, lo, hi;
        col_range(&lo, &hi, off, g->sw, g->W, g->OW);
        for (int oh = oh0; oh < oh1; oh++) {
          int ih = oh * g->sh - g->ph + kh * g->dh;
          if (ih < 0 || ih >= g->H) continue;
          float *d = dst + (size_t)ih * g->W + off;
          const float *s = src + (size_t)(oh - oh0) * g->OW;
          if (g->sw == 1) for (int ow = lo; ow < hi; ow++) d[ow] += s[ow];
          else if (g->sw == 2) stride2_add(d, s, lo, hi, g->W - off);
          else for (int ow = lo; ow < hi; ow++) d[ow * g->sw] += s[ow];
        }
      }
  }
}

// out is (B,OC,OH,OW), inp is (B,C,H,W), w is (OC,1,KH,KW), b is (OC) or NULL; OC = C*mult.
static void depthwise_forward (float *out, const float *inp, const float *w, const float *b,
                               const trl_conv_geom *g) {
  int M = g->OC / g->C, HW = g->H * g->W, L = g->OH * g->OW;
  #pragma omp parallel for schedule(static) if ((int64_t)g->B * g->OC * L * g->KH * g->KW > 32768)
  for (int64_t p = 0; p < (int64_t)g->B * g->OC; p++) {
    int n = (int)(p / g->OC), oc = (int)(p % g->OC), c = oc / M;
    const float *x = inp + ((size_t)n * g->C + c) * HW;
    float *o = out + (size_t)p * L;
    float bv = b ? b[oc] : 0.0f;
    for (int i = 0; i < L; i++) o[i] = bv;
    for (int kh = 0; kh < g->KH; kh++)
      for (int kw = 0; kw < g->KW; kw++) {
        float wv = w[((size_t)oc * g->KH + kh) * g->KW + kw];
        int off = kw * g->dw - g->pw, lo, hi;
        col_range(&lo, &hi, off, g->sw, g->W, g->OW);
        for (int oh = 0; oh < g->OH; oh++) {
          int ih = oh * g->sh - g->ph + kh * g->dh;
          if (ih < 0 || ih >= g->H) continue;
          const float *xr = x + (size_t)ih * g->W + off;
          float *orow = o + (size_t)oh * g->OW;
          if (g->sw == 1) for (int ow = lo; ow < hi; ow++) orow[ow] += wv * xr[ow];
          else for (int ow = lo; ow < hi; ow++) orow[ow] += wv * xr[ow * g->sw];
        }
      }
  }
}

// Shapes as in depthwise_forward; dinp/dw may be NULL.
static void depthwise_backward (float *dinp, float *dw, const float *dout, const float *inp,
                                const float *w, const trl_conv_geom *g) {
  int M = g->OC / g->C, HW = g->H * g->W, L = g->OH * g->OW;
  int64_t work = (int64_t)g->B * g->OC * L * g->KH * g->KW;
  if (dinp) {
    // one (image, input channel) plane per iteration: its M output channels feed only it
    #pragma omp parallel for schedule(static) if (work > 32768)
    for (int64_t p = 0; p < (int64_t)g->B * g->C; p++) {
      int n = (int)(p / g->C), c = (int)(p % g->C);
      float *dx = dinp + (size_t)p * HW;
      for (int oc = c * M; oc < (c + 1) * M; oc++) {
        const float *go = dout + ((size_t)n * g->OC + oc) * L;
        for (int kh = 0; kh < g->KH; kh++)
          for (int kw = 0; kw < g->KW; kw++) {
            float wv = w[((size_t)oc * g->KH + kh) * g->KW + kw];
            int off = kw * g->dw - g->pw, lo, hi;
            col_range(&lo, &hi, off, g->sw, g->W, g->OW);
            for (int oh = 0; oh < g->OH; oh++) {
              int ih = oh * g->sh - g->ph + kh * g->dh;
              if (ih < 0 || ih >= g->H) continue;
              float *dr = dx + (size_t)ih * g->W + off;
              const float *gr = go + (size_t)oh * g->OW;
              for (int ow = lo; ow < hi; ow++) dr[ow * g->sw] += wv * gr[ow];
            }
          }
      }
    }
  }
  if (dw) {
    // one output channel per thread, summing over the batch: no two threads share a weight
    #pragma omp parallel for schedule(static) if (work > 32768)
    for (int oc = 0; oc < g->OC; oc++) {
      int c = oc / M;
      for (int kh = 0; kh < g->KH; kh++)
        for (int kw = 0; kw < g->KW; kw++) {
          int off = kw * g->dw - g->pw, lo, hi;
          col_range(&lo, &hi, off, g->sw, g->W, g->OW);
          double s = 0;
          for (int n = 0; n < g->B; n++) {
            const float *x = inp + ((size_t)n * g->C + c) * HW;
            const float *go = dout + ((size_t)n * g->OC + oc) * L;
            for (int oh = 0; oh < g->OH; oh++) {
              int ih = oh * g->sh - g->ph + kh * g->dh;
              if (ih < 0 || ih >= g->H) continue;
              const float *xr = x + (size_t)ih * g->W + off;
              const float *gr = go + (size_t)oh * g->OW;
              float r = 0;
              for (int ow = lo; ow < hi; ow++) r += xr[ow * g->sw] * gr[ow];
              s += r;
            }
          }
          dw[((size_t)oc * g->KH + kh) * g->KW + kw] += (float)s;
        }
    }
  }
}

/* }================================================================== */

/* {==================================================================
** Depthwise 3x3 (stride 1 or 2, dilation 1, one output channel per input channel)
** =================================================================== */

// MobileNet's depthwise layers: each plane is a 3x3 stencil over one (H,W) map. With AVX2 or
// AVX-512 the forward runs on a zero-padded copy of the plane (dw3_forward_plane256/512); with
// AVX2 so do the weight gradient (the same copy of x) and the stride-1 data gradient (the
// forward over padded dout with the kernel turned). Elsewhere the interior columns (all three
// taps inside the row) run 8 outputs at a time with no bounds checks (stride 1 ends a row
// with a masked vector); the border columns and the stride-2 tails take scalar sums with
// checks. Stride 2 splits a run of 16 input columns into its even and odd columns. Sums are
// float (the '_ref' kernels sum in double); each plane's sums are exact functions of its data,
// so threads never change the bits.

static int is_dw3 (const trl_conv_geom *g) {
  return g->OC == g->C && g->KH == 3 && g->KW == 3 && g->dh == 1 && g->dw == 1 &&
         g->sh == g->sw && (g->sh == 1 || g->sh == 2);
}

// The output columns [*lo, *hi) whose three input columns ow*s - pw + 0..2 lie in [0, W).
static void dw3_inner (int *lo, int *hi, const trl_conv_geom *g) {
  col_range(lo, hi, -g->pw, g->sw, g->W - 2, g->OW);
}

#if defined(__AVX2__) && defined(__FMA__)
// The even and odd floats of p[0..15]: (p[0],p[2],..,p[14]) and (p[1],p[3],..,p[15]).
static inline void evenodd2 (__m256 *e, __m256 *o, __m256 a, __m256 b) {
  __m256 ev = _mm256_shuffle_ps(a, b, _MM_SHUFFLE(2, 0, 2, 0));   // a0 a2 b0 b2 | a4 a6 b4 b6
  __m256 od = _mm256_shuffle_ps(a, b, _MM_SHUFFLE(3, 1, 3, 1));
  *e = _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(ev), _MM_SHUFFLE(3, 1, 2, 0)));
  *o = _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(od), _MM_SHUFFLE(3, 1, 2, 0)));
}

static inline void evenodd (__m256 *e, __m256 *o, const float *p) {
  evenodd2(e, o, _mm256_loadu_ps(p), _mm256_loadu_ps(p + 8));
}

// Lanes 0 .. n-1 on: the last few interior columns of a stride-1 row (n < 8), so that only
// the true borders take the scalar path.
static inline __m256i tailmask (int n) {
  return _mm256_cmpgt_epi32(_mm256_set1_epi32(n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

// The three taps of 8 output columns, p pointing at the first one's tap 0: t[j] holds
// p[i*s + j] for i = 0..7.
static inline void taps (__m256 t[3], const float *p, int s) {
  if (s == 1) {
    t[0] = _mm256_loadu_ps(p), t[1] = _mm256_loadu_ps(p + 1), t[2] = _mm256_loadu_ps(p + 2);
  } else {
    __m256 unused;
    evenodd(&t[0], &t[1], p);       // p[0..15]
    evenodd(&unused, &t[2], p + 1); // p[1..16]: p[16] is the last tap of the 8th column
  }
}
#endif

// o is (OH,OW), x is (H,W), w is (3,3): o = bv + the stencil.
static void dw3_forward_plane (float *o, const float *x, const float *w, float bv,
                               const trl_conv_geom *g) {
  int s = g->sw, lo, hi;
  dw3_inner(&lo, &hi, g);
  for (int oh = 0; oh < g->OH; oh++) {
    const float *rows[3], *wk[3];
    int nk = 0;
    for (int kh = 0; kh < 3; kh++) {
      int ih = oh * g->sh - g->ph + kh;
      if (ih >= 0 && ih < g->H) rows[nk] = x + (size_t)ih * g->W, wk[nk++] = w + 3 * kh;
    }
    float *orow = o + (size_t)oh * g->OW;
    int ow = lo;
#if defined(__AVX2__) && defined(__FMA__)
    __m256 wv[3][3];
    for (int k = 0; k < nk; k++)
      for (int j = 0; j < 3; j++) wv[k][j] = _mm256_set1_ps(wk[k][j]);
    for (; ow + 8 <= hi; ow += 8) {
      __m256 acc = _mm256_set1_ps(bv), t[3];
      for (int k = 0; k < nk; k++) {
        taps(t, rows[k] + ow * s - g->pw, s);
        acc = _mm256_fmadd_ps(wv[k][0], t[0], acc);
        acc = _mm256_fmadd_ps(wv[k][1], t[1], acc);
        acc = _mm256_fmadd_ps(wv[k][2], t[2], acc);
      }
      _mm256_storeu_ps(orow + ow, acc);
    }
    if (s == 1 && ow < hi) {
      __m256i m = tailmask(hi - ow);
      __m256 acc = _mm256_set1_ps(bv);
      for (int k = 0; k < nk; k++) {
        const float *p = rows[k] + ow - g->pw;
        acc = _mm256_fmadd_ps(wv[k][0], _mm256_maskload_ps(p, m), acc);
        acc = _mm256_fmadd_ps(wv[k][1], _mm256_maskload_ps(p + 1, m), acc);
        acc = _mm256_fmadd_ps(wv[k][2], _mm256_maskload_ps(p + 2, m), acc);
      }
      _mm256_maskstore_ps(orow + ow, m, acc);
      ow = hi;
    }
#endif
    for (int c = 0; c < g->OW; c++) {
      if (c == lo) c = ow;   // the vectors did [lo, ow)
      if (c >= g->OW) break;
      float acc = bv;
      for (int k = 0; k < nk; k++)
        for (int j = 0; j < 3; j++) {
          int iw = c * s - g->pw + j;
          if (iw >= 0 && iw < g->W) acc += wk[k][j] * rows[k][iw];
        }
      orow[c] = acc;
    }
  }
}

// dx is (H,W), go is (OH,OW), w is (3,3): dx += the transposed stencil (with 'write', dx =),
// as a gather over the outputs that read each input, so that every input is written once.
static void dw3_backward_data_plane (float *dx, const float *go, const float *w, int write,
                                     const trl_conv_geom *g) {
  int s = g->sw;
  // input column iw reads output ow = (iw + pw - kw) / s for kw with iw + pw - kw = 0 mod s
  // interior: every such ow lies in [0, OW); stride 1 runs 8 inputs, stride 2 runs 16
  // (stride 1: iw + pw - 2 >= 0 and iw + pw < OW; stride 2: iw + pw even, (iw + pw) / 2 - 1
  // >= 0 and (iw + pw) / 2 + 7 < OW for the 16 columns from iw)
  int lo = 2 - g->pw, hi = s == 1 ? g->OW - g->pw : 2 * g->OW - g->pw;
  while (lo < 0) lo += s;   // keeps the parity of iw + pw
  if (hi > g->W) hi = g->W;
  for (int ih = 0; ih < g->H; ih++) {
    const float *rows[3], *wk[3];
    int nk = 0;
    for (int kh = 0; kh < 3; kh++) {
      int t = ih + g->ph - kh;
      if (t < 0 || t % s != 0 || t / s >= g->OH) continue;
      rows[nk] = go + (size_t)(t / s) * g->OW, wk[nk++] = w + 3 * kh;
    }
    float *drow = dx + (size_t)ih * g->W;
    int iw = lo > 0 ? lo : 0;
    if (iw > hi) iw = hi;
    int start = iw;
#if defined(__AVX2__) && defined(__FMA__)
    __m256 wv[3][3];
    for (int k = 0; k < nk; k++)
      for (int j = 0; j < 3; j++) wv[k][j] = _mm256_set1_ps(wk[k][j]);
    if (s == 1) {
      for (; iw + 8 <= hi; iw += 8) {
        __m256 acc = write ? _mm256_setzero_ps() : _mm256_loadu_ps(drow + iw);
        int q = iw + g->pw;   // ow = q - kw
        for (int k = 0; k < nk; k++) {
          acc = _mm256_fmadd_ps(wv[k][0], _mm256_loadu_ps(rows[k] + q), acc);
          acc = _mm256_fmadd_ps(wv[k][1], _mm256_loadu_ps(rows[k] + q - 1), acc);
          acc = _mm256_fmadd_ps(wv[k][2], _mm256_loadu_ps(rows[k] + q - 2), acc);
        }
        _mm256_storeu_ps(drow + iw, acc);
      }
      if (iw < hi) {
        __m256i m = tailmask(hi - iw);
        __m256 acc = write ? _mm256_setzero_ps() : _mm256_maskload_ps(drow + iw, m);
        const int q = iw + g->pw;
        for (int k = 0; k < nk; k++) {
          acc = _mm256_fmadd_ps(wv[k][0], _mm256_maskload_ps(rows[k] + q, m), acc);
          acc = _mm256_fmadd_ps(wv[k][1], _mm256_maskload_ps(rows[k] + q - 1, m), acc);
          acc = _mm256_fmadd_ps(wv[k][2], _mm256_maskload_ps(rows[k] + q - 2, m), acc);
        }
        _mm256_maskstore_ps(drow + iw, m, acc);
        iw = hi;
      }
    } else {
      for (; iw + 16 <= hi; iw += 16) {
        // even inputs iw+2j read kw 0 at q+j and kw 2 at q+j-1; odd ones kw 1 at q+j
        int q = (iw + g->pw) / 2;
        __m256 e = _mm256_setzero_ps(), od = _mm256_setzero_ps();
        for (int k = 0; k < nk; k++) {
          __m256 g0 = _mm256_loadu_ps(rows[k] + q), g1 = _mm256_loadu_ps(rows[k] + q - 1);
          e = _mm256_fmadd_ps(wv[k][0], g0, e);
          e = _mm256_fmadd_ps(wv[k][2], g1, e);
          od = _mm256_fmadd_ps(wv[k][1], g0, od);
        }
        __m256 l = _mm256_unpacklo_ps(e, od), h = _mm256_unpackhi_ps(e, od);
        __m256 a = _mm256_permute2f128_ps(l, h, 0x20), b = _mm256_permute2f128_ps(l, h, 0x31);
        __m256 d0 = write ? _mm256_setzero_ps() : _mm256_loadu_ps(drow + iw);
        __m256 d1 = write ? _mm256_setzero_ps() : _mm256_loadu_ps(drow + iw + 8);
        _mm256_storeu_ps(drow + iw, _mm256_add_ps(d0, a));   // 0 + a: as onto zeroed memory
        _mm256_storeu_ps(drow + iw + 8, _mm256_add_ps(d1, b));
      }
    }
#endif
    for (int c = 0; c < g->W; c++) {
      if (c == start) c = iw;   // the vectors did [start, iw)
      if (c >= g->W) break;
      float acc = 0;
      for (int k = 0; k < nk; k++)
        for (int j = 0; j < 3; j++) {
          int t = c + g->pw - j;
          if (t >= 0 && !(t & (s - 1)) && t >> (s - 1) < g->OW)   // s is 1 or 2
            acc += wk[k][j] * rows[k][t >> (s - 1)];
        }
      drow[c] = (write ? 0.0f : drow[c]) + acc;
    }
  }
}

// s[9] += the weight gradient of one plane: x is (H,W), go is (OH,OW).
static void dw3_backward_weight_plane (double *s9, const float *x, const float *go,
                                       const trl_conv_geom *g) {
  int s = g->sw, lo, hi;
  dw3_inner(&lo, &hi, g);
  float sc[9] = {0};
#if defined(__AVX2__) && defined(__FMA__)
  __m256 acc[9];
  for (int i = 0; i < 9; i++) acc[i] = _mm256_setzero_ps();
#endif
  for (int oh = 0; oh < g->OH; oh++) {
    const float *gr = go + (size_t)oh * g->OW;
    for (int kh = 0; kh < 3; kh++) {
      int ih = oh * g->sh - g->ph + kh;
      if (ih < 0 || ih >= g->H) continue;
      const float *r = x + (size_t)ih * g->W;
      int ow = lo;
#if defined(__AVX2__) && defined(__FMA__)
      __m256 a0 = acc[3 * kh], a1 = acc[3 * kh + 1], a2 = acc[3 * kh + 2], t[3];
      for (; ow + 8 <= hi; ow += 8) {
        __m256 gv = _mm256_loadu_ps(gr + ow);
        taps(t, r + ow * s - g->pw, s);
        a0 = _mm256_fmadd_ps(t[0], gv, a0);
        a1 = _mm256_fmadd_ps(t[1], gv, a1);
        a2 = _mm256_fmadd_ps(t[2], gv, a2);
      }
      if (s == 1 && ow < hi) {   // masked lanes load zeros and add nothing
        __m256i m = tailmask(hi - ow);
        const float *p = r + ow - g->pw;
        __m256 gv = _mm256_maskload_ps(gr + ow, m);
        a0 = _mm256_fmadd_ps(_mm256_maskload_ps(p, m), gv, a0);
        a1 = _mm256_fmadd_ps(_mm256_maskload_ps(p + 1, m), gv, a1);
        a2 = _mm256_fmadd_ps(_mm256_maskload_ps(p + 2, m), gv, a2);
        ow = hi;
      }
      acc[3 * kh] = a0, acc[3 * kh + 1] = a1, acc[3 * kh + 2] = a2;
#endif
      for (int c = 0; c < g->OW; c++) {
        if (c == lo) c = ow;
        if (c >= g->OW) break;
        for (int j = 0; j < 3; j++) {
          int iw = c * s - g->pw + j;
          if (iw >= 0 && iw < g->W) sc[3 * kh + j] += r[iw] * gr[c];
        }
      }
    }
  }
#if defined(__AVX2__) && defined(__FMA__)
  for (int i = 0; i < 9; i++) {
    float v[8];
    _mm256_storeu_ps(v, acc[i]);
    s9[i] += (double)(((v[0] + v[1]) + (v[2] + v[3])) + ((v[4] + v[5]) + (v[6] + v[7])));
  }
#endif
  for (int i = 0; i < 9; i++) s9[i] += sc[i];
}

// The padded plane: x goes first into a zero-padded copy (P: rows ih + ph, columns iw + pw;
// stride 2 keeps the even and the odd columns as two planes), so every output column runs the
// same 9 fmadds, 16 (AVX-512) or 8 (AVX2) at a time, with no bounds checks and a masked store
// at the row's end; the epilogue e (or NULL) of channel c is applied before the store.
// dw3_pad_floats(g) floats at P.
static int dw3_pad_cols (const trl_conv_geom *g) {   // floats per row of P (of each half)
  int ow16 = (g->OW + 15) / 16 * 16;
  return ow16 + 16;
}

static size_t dw3_pad_floats (const trl_conv_geom *g) {
  int rows = (g->OH - 1) * g->sh + 3;
  return (size_t)rows * dw3_pad_cols(g) * (g->sw == 1 ? 1 : 2) + 2 * (size_t)dw3_pad_cols(g) + 64;
}

// Rows of the plane x into P as above, row r of the padded map at P + r * PC (stride 2: its
// even columns there, its odd ones 'rows' rows further); the one row of 2 PC floats after
// the planes is stride 2's scratch. split(dst_even, dst_odd, src, PC) splits a row.
static inline __attribute__((always_inline))
void dw3_pad_plane (float *P, const float *x, int PC, int rows, const trl_conv_geom *g,
                    void (*split)(float *, float *, const float *, int)) {
  int s = g->sw;
  float *row = P + (size_t)rows * PC * (s == 1 ? 1 : 2);
  for (int r = 0; r < rows; r++) {
    int ih = r - g->ph;
    float *dst = s == 1 ? P + (size_t)r * PC : row;
    int width = s == 1 ? PC : 2 * PC;
    if (ih >= 0 && ih < g->H) {   // zeros, the row, zeros: each float written once
      int n = g->W < width - g->pw ? g->W : width - g->pw;
      memset(dst, 0, sizeof(float) * g->pw);
      memcpy(dst + g->pw, x + (size_t)ih * g->W, sizeof(float) * n);
      memset(dst + g->pw + n, 0, sizeof(float) * (width - g->pw - n));
    } else memset(dst, 0, sizeof(float) * width);
    if (s == 2) split(P + (size_t)r * PC, P + (size_t)(rows + r) * PC, row, PC);
  }
}

#if defined(__AVX2__) && defined(__FMA__)
// The epilogue (with 'epi': as trl_epilogue_row: fmadd, then max(v, lo) (NaN -> lo), min(v,
// hi)) and the store of 8 outputs at o: whole where 'whole' (the spill past the row stays in
// the plane and the next rows overwrite it), else the first n. 'add' (a data gradient): 1
// stores 0 + a (the bits of a sum onto zeroed memory: a sum that underflowed to -0 becomes
// +0), 2 adds a to what o holds (a whole store then puts back the spill lanes' own values:
// the next row has yet to read them).
static inline __attribute__((always_inline))
void dw3_put256 (float *o, __m256 a, int epi, int clamp, __m256 vs, __m256 vt, __m256 vl,
                 __m256 vh, int whole, int n, int add) {
  if (epi) {
    a = _mm256_fmadd_ps(a, vs, vt);
    if (clamp) a = _mm256_min_ps(_mm256_max_ps(a, vl), vh);
  }
  if (add == 1) a = _mm256_add_ps(_mm256_setzero_ps(), a);
  if (add == 2) {
    __m256 d = whole ? _mm256_loadu_ps(o) : _mm256_maskload_ps(o, tailmask(n));
    a = _mm256_add_ps(d, a);
    if (whole && n < 8) a = _mm256_blendv_ps(d, a, _mm256_castsi256_ps(tailmask(n)));
  }
  if (whole) _mm256_storeu_ps(o, a);
  else _mm256_maskstore_ps(o, tailmask(n), a);
}

// The output rows of a padded plane, 8 columns at a time, stride s (a constant after
// inlining): 9 FMAs from 3 row pointers per vector, weights and the epilogue's constants in
// registers. Measured against one plane in cache, 2x2 tiles of independent sums ran about
// twice as slow (register spills; out-of-order execution already overlaps the chains). A
// row's last vector is stored whole where the spill stays inside the plane (the next rows,
// computed later, overwrite it): masked stores, ~13 cycles each here, only at the plane's end.
static inline __attribute__((always_inline))
void dw3_rows256 (float *o, const float *P, int PC, size_t odd, int s, const __m256 wv[9],
                  __m256 bv, const trl_epilogue *e, const float *next, size_t lines,
                  const trl_conv_geom *g, int add) {
  __m256 w0 = wv[0], w1 = wv[1], w2 = wv[2], w3 = wv[3], w4 = wv[4], w5 = wv[5];
  __m256 w6 = wv[6], w7 = wv[7], w8 = wv[8];
  int clamp = e && (e->lo != -__builtin_inff() || e->hi != __builtin_inff());
  __m256 vs = _mm256_set1_ps(e && e->scale ? e->scale[0] : 1.0f);
  __m256 vt = _mm256_set1_ps(e && e->shift ? e->shift[0] : 0.0f);
  __m256 vl = _mm256_set1_ps(e ? e->lo : 0.0f), vh = _mm256_set1_ps(e ? e->hi : 0.0f);
  size_t per_row = (lines + g->OH - 1) / g->OH, pf = 0;
  int OW = g->OW;
  size_t plane = (size_t)g->OH * OW;
  for (int oh = 0; oh < g->OH; oh++) {
    for (size_t i = 0; i < per_row && pf < lines; i++, pf++)
      _mm_prefetch((const char *)next + 64 * pf, _MM_HINT_T1);
    const float *p0 = P + (size_t)oh * s * PC, *p1 = p0 + PC, *p2 = p1 + PC;
    float *orow = o + (size_t)oh * OW;
    for (int ow = 0; ow < OW; ow += 8) {
      __m256 a = bv;
      if (s == 1) {
        a = _mm256_fmadd_ps(w0, _mm256_loadu_ps(p0 + ow), a);
        a = _mm256_fmadd_ps(w1, _mm256_loadu_ps(p0 + ow + 1), a);
        a = _mm256_fmadd_ps(w2, _mm256_loadu_ps(p0 + ow + 2), a);
        a = _mm256_fmadd_ps(w3, _mm256_loadu_ps(p1 + ow), a);
        a = _mm256_fmadd_ps(w4, _mm256_loadu_ps(p1 + ow + 1), a);
        a = _mm256_fmadd_ps(w5, _mm256_loadu_ps(p1 + ow + 2), a);
        a = _mm256_fmadd_ps(w6, _mm256_loadu_ps(p2 + ow), a);
        a = _mm256_fmadd_ps(w7, _mm256_loadu_ps(p2 + ow + 1), a);
        a = _mm256_fmadd_ps(w8, _mm256_loadu_ps(p2 + ow + 2), a);
      } else {   // even columns at p, odd ones at p + odd
        a = _mm256_fmadd_ps(w0, _mm256_loadu_ps(p0 + ow), a);
        a = _mm256_fmadd_ps(w1, _mm256_loadu_ps(p0 + odd + ow), a);
        a = _mm256_fmadd_ps(w2, _mm256_loadu_ps(p0 + ow + 1), a);
        a = _mm256_fmadd_ps(w3, _mm256_loadu_ps(p1 + ow), a);
        a = _mm256_fmadd_ps(w4, _mm256_loadu_ps(p1 + odd + ow), a);
        a = _mm256_fmadd_ps(w5, _mm256_loadu_ps(p1 + ow + 1), a);
        a = _mm256_fmadd_ps(w6, _mm256_loadu_ps(p2 + ow), a);
        a = _mm256_fmadd_ps(w7, _mm256_loadu_ps(p2 + odd + ow), a);
        a = _mm256_fmadd_ps(w8, _mm256_loadu_ps(p2 + ow + 1), a);
      }
      dw3_put256(orow + ow, a, e != NULL, clamp, vs, vt, vl, vh,
                 (size_t)oh * OW + ow + 8 <= plane, OW - ow, add);
    }
  }
}

// Floats xr[j0 .. j0 + 7] of a row of W floats, zero outside [0, W): a plain load inside,
// a masked one only where the piece crosses an edge.
static inline __attribute__((always_inline))
__m256 dw3_piece (const float *xr, int j0, int W) {
  if (j0 >= 0 && j0 + 8 <= W) return _mm256_loadu_ps(xr + j0);
  if (j0 >= W || j0 + 8 <= 0) return _mm256_setzero_ps();
  __m256i idx = _mm256_add_epi32(_mm256_set1_epi32(j0), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
  __m256i m = _mm256_andnot_si256(_mm256_cmpgt_epi32(_mm256_setzero_si256(), idx),
                                  _mm256_cmpgt_epi32(_mm256_set1_epi32(W), idx));
  return _mm256_maskload_ps(xr + j0, m);
}

// dw3_pad_plane 8 columns (stride 2: 16, split as they come) at a time: no library calls,
// each float of P written once (at 7x7 and 14x14 the memset / memcpy calls per row cost more
// than the plane's arithmetic).
static void dw3_pad_plane256 (float *P, const float *x, int PC, int rows, const trl_conv_geom *g) {
  int s = g->sw, W = g->W;
  for (int r = 0; r < rows; r++) {
    int ih = r - g->ph;
    float *E = P + (size_t)r * PC, *Od = P + (size_t)(rows + r) * PC;
    if (ih < 0 || ih >= g->H) {
      for (int i = 0; i < PC; i += 8) {
        _mm256_storeu_ps(E + i, _mm256_setzero_ps());
        if (s == 2) _mm256_storeu_ps(Od + i, _mm256_setzero_ps());
      }
      continue;
    }
    const float *xr = x + (size_t)ih * W;
    if (s == 1) {
      for (int i = 0; i < PC; i += 8) _mm256_storeu_ps(E + i, dw3_piece(xr, i - g->pw, W));
    } else {
      for (int i = 0; i < PC; i += 8) {   // padded columns 2i .. 2i + 15
        __m256 ev, od;
        evenodd2(&ev, &od, dw3_piece(xr, 2 * i - g->pw, W), dw3_piece(xr, 2 * i + 8 - g->pw, W));
        _mm256_storeu_ps(E + i, ev);
        _mm256_storeu_ps(Od + i, od);
      }
    }
  }
}

// Floats per row of an AVX2 padded plane with OW outputs: the columns the last vector reads
// (<= OW rounded up to 8, + 2), to a multiple of 8 (dw3_pad_cols leaves room for 16-float
// vectors: at 7x7 twice the copying).
static int dw3_pc256 (int OW) { return (OW + 7) / 8 * 8 + 8; }

// dw3_forward_plane512 with 8 columns at a time, for CPUs without AVX-512.
static void dw3_forward_plane256 (float *o, const float *x, const float *w, float bv,
                                  const trl_epilogue *e, int c, float *P, const float *next,
                                  const trl_conv_geom *g) {
  int s = g->sw, PC = dw3_pc256(g->OW), rows = (g->OH - 1) * s + 3;
  size_t bytes = (size_t)g->H * g->W * sizeof(float);   // the next plane: as plane512
  size_t lines = next && bytes >= 2048 ? (bytes + 63) / 64 : 0;
  __m256 wv[9];
  for (int i = 0; i < 9; i++) wv[i] = _mm256_set1_ps(w[i]);
  trl_epilogue ec;   // channel c's scale and shift at index 0
  if (e) ec = (trl_epilogue){ e->scale ? e->scale + c : NULL, e->shift ? e->shift + c : NULL,
                              e->lo, e->hi };
  const trl_epilogue *ep = e ? &ec : NULL;
  dw3_pad_plane256(P, x, PC, rows, g);
  if (s == 1) dw3_rows256(o, P, PC, 0, 1, wv, _mm256_set1_ps(bv), ep, next, lines, g, 0);
  else dw3_rows256(o, P, PC, (size_t)rows * PC, 2, wv, _mm256_set1_ps(bv), ep, next, lines, g, 0);
}

// A stride-1 plane's data gradient is the forward stencil over go padded by 2 - pad with the
// kernel turned 180 degrees: dx (H,W) (+)= it, run as dw3_forward_plane256 (P: scratch of
// dw3_bwd_floats(g) floats). Pads up to 2.
static int dw3_bwd_padded (const trl_conv_geom *g) { return g->sw == 1 && g->ph <= 2 && g->pw <= 2; }

static size_t dw3_bwd_floats (const trl_conv_geom *g) {
  return (size_t)(g->H + 2) * dw3_pc256(g->W) + 64;
}

static void dw3_backward_data_plane256 (float *dx, const float *go, const float *w, int write,
                                        float *P, const trl_conv_geom *g) {
  trl_conv_geom t = *g;
  t.H = g->OH, t.W = g->OW, t.OH = g->H, t.OW = g->W, t.ph = 2 - g->ph, t.pw = 2 - g->pw;
  int PC = dw3_pc256(t.OW);
  dw3_pad_plane256(P, go, PC, t.OH + 2, &t);
  __m256 wv[9];
  for (int i = 0; i < 9; i++) wv[i] = _mm256_set1_ps(w[8 - i]);
  if (write) dw3_rows256(dx, P, PC, 0, 1, wv, _mm256_setzero_ps(), NULL, NULL, 0, &t, 1);
  else dw3_rows256(dx, P, PC, 0, 1, wv, _mm256_setzero_ps(), NULL, NULL, 0, &t, 2);
}
#endif

#if defined(TRL_AVX512) && defined(__AVX2__)
#define W5 TRL_AVX512
static int dw3_avx512 (void) { return trl_cpu_avx512(); }

W5 static void split16 (float *E, float *Od, const float *row, int PC) {
  __m512i ev = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
  __m512i od = _mm512_add_epi32(ev, _mm512_set1_epi32(1));
  for (int i = 0; i < PC; i += 16) {
    __m512 a = _mm512_loadu_ps(row + 2 * i), b = _mm512_loadu_ps(row + 2 * i + 16);
    _mm512_storeu_ps(E + i, _mm512_permutex2var_ps(a, ev, b));
    _mm512_storeu_ps(Od + i, _mm512_permutex2var_ps(a, od, b));
  }
}

W5 static void dw3_forward_plane512 (float *o, const float *x, const float *w, float bv,
                                     const trl_epilogue *e, int c, float *P, const float *next,
                                     const trl_conv_geom *g) {
  int s = g->sw, PC = dw3_pad_cols(g), rows = (g->OH - 1) * s + 3;
  // the next plane's lines, a share per output row: its first read (the copy into P) then
  // finds them in L2 instead of waiting on memory after this plane's arithmetic (planes of
  // 2 KB and up: at 7x7 and 14x14 it measured no better or slower, bench/NOTES.md 45)
  size_t bytes = (size_t)g->H * g->W * sizeof(float);
  size_t lines = next && bytes >= 2048 ? (bytes + 63) / 64 : 0;
  size_t per_row = (lines + g->OH - 1) / g->OH, pf = 0;
  dw3_pad_plane(P, x, PC, rows, g, split16);
  __m512 wv[9];
  for (int i = 0; i < 9; i++) wv[i] = _mm512_set1_ps(w[i]);
  float sc = e && e->scale ? e->scale[c] : 1.0f, sh = e && e->shift ? e->shift[c] : 0.0f;
  int clamp = e && (e->lo != -__builtin_inff() || e->hi != __builtin_inff());
  __m512 vs = _mm512_set1_ps(sc), vt = _mm512_set1_ps(sh);
  __m512 vl = _mm512_set1_ps(e ? e->lo : 0.0f), vh = _mm512_set1_ps(e ? e->hi : 0.0f);
  for (int oh = 0; oh < g->OH; oh++) {
    float *orow = o + (size_t)oh * g->OW;
    for (size_t i = 0; i < per_row && pf < lines; i++, pf++)
      _mm_prefetch((const char *)next + 64 * pf, _MM_HINT_T1);
    for (int ow = 0; ow < g->OW; ow += 16) {
      __m512 acc = _mm512_set1_ps(bv);
      for (int k = 0; k < 3; k++) {
        const float *pr = P + (size_t)(oh * s + k) * PC + ow;
        if (s == 1) {
          acc = _mm512_fmadd_ps(wv[3 * k], _mm512_loadu_ps(pr), acc);
          acc = _mm512_fmadd_ps(wv[3 * k + 1], _mm512_loadu_ps(pr + 1), acc);
          acc = _mm512_fmadd_ps(wv[3 * k + 2], _mm512_loadu_ps(pr + 2), acc);
        } else {
          const float *po = pr + (size_t)rows * PC;
          acc = _mm512_fmadd_ps(wv[3 * k], _mm512_loadu_ps(pr), acc);
          acc = _mm512_fmadd_ps(wv[3 * k + 1], _mm512_loadu_ps(po), acc);
          acc = _mm512_fmadd_ps(wv[3 * k + 2], _mm512_loadu_ps(pr + 1), acc);
        }
      }
      if (e) {   // as trl_epilogue_row: fmadd, then max(v, lo) (NaN -> lo), min(v, hi)
        acc = _mm512_fmadd_ps(acc, vs, vt);
        if (clamp) acc = _mm512_min_ps(_mm512_max_ps(acc, vl), vh);
      }
      int n = g->OW - ow < 16 ? g->OW - ow : 16;
      _mm512_mask_storeu_ps(orow + ow, (__mmask16)((1u << n) - 1), acc);
    }
  }
}
#else
static int dw3_avx512 (void) { return 0; }
static void dw3_forward_plane512 (float *o, const float *x, const float *w, float bv,
                                  const trl_epilogue *e, int c, float *P, const float *next,
                                  const trl_conv_geom *g) {
  (void)o, (void)x, (void)w, (void)bv, (void)e, (void)c, (void)P, (void)next, (void)g;
}
#endif

size_t dw3_plane_floats (const trl_conv_geom *g) { return dw3_pad_floats(g); }

void dw3_plane (float *o, const float *x, const float *w, const trl_epilogue *e, int c, float *P,
                const trl_conv_geom *g) {
  if (dw3_avx512()) {
    dw3_forward_plane512(o, x, w, 0.0f, e, c, P, NULL, g);
    return;
  }
#if defined(__AVX2__) && defined(__FMA__)
  dw3_forward_plane256(o, x, w, 0.0f, e, c, P, NULL, g);
#else
  (void)P;
  dw3_forward_plane(o, x, w, 0.0f, g);
  if (e) trl_epilogue_row(o, o, e, c, (int64_t)g->OH * g->OW);
#endif
}

// Shapes as in depthwise_forward, with OC = C and 3x3 weights; e (or NULL) is applied to each
// plane while it is in cache on the padded-plane paths (AVX2 or AVX-512), else in one pass at
// the end.
static void dw3_forward (float *out, const float *inp, const float *w, const float *b,
                         const trl_epilogue *e, const trl_conv_geom *g) {
  int HW = g->H * g->W, L = g->OH * g->OW, wide = dw3_avx512(), padded = wide;
#if defined(__AVX2__) && defined(__FMA__)
  padded = 1;
#endif
  #pragma omp parallel if ((int64_t)g->B * g->C * L > 16384)
  {
    float *P = padded ? trl_alloc(sizeof(float) * dw3_pad_floats(g)) : NULL;
    #pragma omp for schedule(static)
    for (int64_t p = 0; p < (int64_t)g->B * g->C; p++) {
      int c = (int)(p % g->C);
      const float *next = p + 1 < (int64_t)g->B * g->C ? inp + (size_t)(p + 1) * HW : NULL;
      if (P && wide)
        dw3_forward_plane512(out + (size_t)p * L, inp + (size_t)p * HW, w + 9 * c,
                             b ? b[c] : 0.0f, e, c, P, next, g);
#if defined(__AVX2__) && defined(__FMA__)
      else if (P)
        dw3_forward_plane256(out + (size_t)p * L, inp + (size_t)p * HW, w + 9 * c,
                             b ? b[c] : 0.0f, e, c, P, next, g);
#endif
      else {
        dw3_forward_plane(out + (size_t)p * L, inp + (size_t)p * HW, w + 9 * c, b ? b[c] : 0.0f, g);
        if (e) trl_epilogue_row(out + (size_t)p * L, out + (size_t)p * L, e, c, L);
      }
    }
    if (P) trl_free(P, sizeof(float) * dw3_pad_floats(g));
  }
}

// Shapes as in depthwise_backward; dinp/dw may be NULL; with 'write' dinp is written, not
// accumulated.
#if defined(__AVX2__) && defined(__FMA__)
// s9 += the weight gradient of one plane over the forward's padded copy of x (P: scratch of
// dw3_wgrad_floats(g) floats): 9 sums of taps times go, 8 output columns at a time, no border
// cases; the go lanes past a row's end are zeroed (the taps there may be real columns).
static size_t dw3_wgrad_floats (const trl_conv_geom *g) {
  return (size_t)((g->OH - 1) * g->sh + 3) * dw3_pc256(g->OW) * 2 + 64;
}

static void dw3_backward_weight_plane256 (double *s9, const float *x, const float *go, float *P,
                                          const trl_conv_geom *g) {
  int s = g->sw, OW = g->OW, PC = dw3_pc256(OW), rows = (g->OH - 1) * s + 3;
  size_t odd = s == 1 ? 1 : (size_t)rows * PC, plane = (size_t)g->OH * OW;
  int t2 = s == 1 ? 2 : 1;   // the third tap's offset (stride 2: the next even column)
  dw3_pad_plane256(P, x, PC, rows, g);
  __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0, a6 = a0;
  __m256 a7 = a0, a8 = a0;
  for (int oh = 0; oh < g->OH; oh++) {
    const float *p0 = P + (size_t)oh * s * PC, *p1 = p0 + PC, *p2 = p1 + PC;
    const float *gr = go + (size_t)oh * OW;
    for (int ow = 0; ow < OW; ow += 8) {
      __m256 gv;
      if (ow + 8 <= OW) gv = _mm256_loadu_ps(gr + ow);
      else if ((size_t)oh * OW + ow + 8 <= plane)
        gv = _mm256_and_ps(_mm256_loadu_ps(gr + ow), _mm256_castsi256_ps(tailmask(OW - ow)));
      else gv = _mm256_maskload_ps(gr + ow, tailmask(OW - ow));
      a0 = _mm256_fmadd_ps(_mm256_loadu_ps(p0 + ow), gv, a0);
      a1 = _mm256_fmadd_ps(_mm256_loadu_ps(p0 + odd + ow), gv, a1);
      a2 = _mm256_fmadd_ps(_mm256_loadu_ps(p0 + t2 + ow), gv, a2);
      a3 = _mm256_fmadd_ps(_mm256_loadu_ps(p1 + ow), gv, a3);
      a4 = _mm256_fmadd_ps(_mm256_loadu_ps(p1 + odd + ow), gv, a4);
      a5 = _mm256_fmadd_ps(_mm256_loadu_ps(p1 + t2 + ow), gv, a5);
      a6 = _mm256_fmadd_ps(_mm256_loadu_ps(p2 + ow), gv, a6);
      a7 = _mm256_fmadd_ps(_mm256_loadu_ps(p2 + odd + ow), gv, a7);
      a8 = _mm256_fmadd_ps(_mm256_loadu_ps(p2 + t2 + ow), gv, a8);
    }
  }
  __m256 acc[9] = { a0, a1, a2, a3, a4, a5, a6, a7, a8 };
  for (int i = 0; i < 9; i++) {
    float v[8];
    _mm256_storeu_ps(v, acc[i]);
    s9[i] += (double)(((v[0] + v[1]) + (v[2] + v[3])) + ((v[4] + v[5]) + (v[6] + v[7])));
  }
}
#endif

// The data gradient of plane p (channel c): stride 1 through the forward's padded plane where
// the CPU has AVX2 (P: dw3_bwd_floats scratch), else dw3_backward_data_plane.
static inline void dw3_data (float *dx, const float *go, const float *w, int write, float *P,
                             const trl_conv_geom *g) {
#if defined(__AVX2__) && defined(__FMA__)
  if (P) {
    dw3_backward_data_plane256(dx, go, w, write, P, g);
    return;
  }
#endif
  (void)P;
  dw3_backward_data_plane(dx, go, w, write, g);
}

static void dw3_backward (float *dinp, float *dw, const float *dout, const float *inp,
                          const float *w, int write, const trl_conv_geom *g) {
  int HW = g->H * g->W, L = g->OH * g->OW, padded = 0;
#if defined(__AVX2__) && defined(__FMA__)
  padded = dinp && dw3_bwd_padded(g);
#endif
  size_t pn = padded ? dw3_bwd_floats(g) : 0, wn = 0;
#if defined(__AVX2__) && defined(__FMA__)
  wn = dw ? dw3_wgrad_floats(g) : 0;
#endif
  int64_t work = (int64_t)g->B * g->C * L;
  if (dinp && !dw) {
    #pragma omp parallel if (work > 16384)
    {
      float *P = pn ? trl_alloc(sizeof(float) * pn) : NULL;
      #pragma omp for schedule(static)
      for (int64_t p = 0; p < (int64_t)g->B * g->C; p++)
        dw3_data(dinp + (size_t)p * HW, dout + (size_t)p * L, w + 9 * (p % g->C), write, P, g);
      if (P) trl_free(P, sizeof(float) * pn);
    }
  }
  if (dw) {
    // one channel per iteration, its planes summed in batch order: the bits never depend on
    // the thread count or the schedule (a resumed training run must match an unbroken one).
    // The data gradient of each plane comes first, while its 'dout' plane is in cache.
    #pragma omp parallel if (work > 16384)
    {
      float *P = pn ? trl_alloc(sizeof(float) * pn) : NULL;
      float *Q = wn ? trl_alloc(sizeof(float) * wn) : NULL;
      #pragma omp for schedule(static)
      for (int c = 0; c < g->C; c++) {
        double s9[9] = {0};
        for (int n = 0; n < g->B; n++) {
          size_t p = (size_t)n * g->C + c;
          if (dinp) dw3_data(dinp + p * HW, dout + p * L, w + 9 * c, write, P, g);
#if defined(__AVX2__) && defined(__FMA__)
          if (Q) {
            dw3_backward_weight_plane256(s9, inp + p * HW, dout + p * L, Q, g);
            continue;
          }
#endif
          dw3_backward_weight_plane(s9, inp + p * HW, dout + p * L, g);
        }
        for (int i = 0; i < 9; i++) dw[9 * c + i] += (float)s9[i];
      }
      if (P) trl_free(P, sizeof(float) * pn);
      if (Q) trl_free(Q, sizeof(float) * wn);
    }
  }
}

/* }================================================================== */

/* {==================================================================
** GEMM path (general and pointwise convs)
** =================================================================== */

// Below this many columns per GEMM (OH*OW of one image), a thread batches several images'
// columns into one GEMM: the 14x14 and 7x7 layers of a ResNet have 196 and 49. (Forward with
// trl's GEMM batches only maps under 128 outputs: see forward.)
#define MINCOLS 1024

// How the GEMM path splits work: 'nt' threads take the images 'nb' at a time (one GEMM over
// nb*OH*OW columns), each with private scratch; sizes are in floats.
typedef struct {
  int kind, nt, nb;
  size_t col;    // per thread: im2col columns (K, nb*L), also dcol in backward
  size_t tmp;    // per thread: the GEMM's (OCg, nb*L) output or gathered dout, when nb > 1
  size_t dwp;    // per thread but the first: a private weight gradient, summed at the end
  size_t wpk;    // shared, forward only: the weight packed for trl_gemm_packed, per group
  size_t wpt;    // shared, backward only: the weight transposed and packed, per group
} plan;

static plan make_plan (const trl_conv_geom *g) {
  int kind = conv_kind(g), L = g->OH * g->OW;
  int Cg = g->C / g->G, OCg = g->OC / g->G, K = Cg * g->KH * g->KW;
  int nt = trl_get_num_threads();
  int64_t flops = (int64_t)g->B * g->OC * L * K;
  if (nt > g->B) nt = g->B;
  if (nt < 1 || flops < (1 << 22)) nt = 1;   // small: one thread, OpenBLAS as it likes
  int per = (g->B + 2 * nt - 1) / (2 * nt), nb = 1;   // at least 2 chunks per thread
  if (g->G == 1 && L < MINCOLS) nb = (MINCOLS + L - 1) / L;
  if (nb > per) nb = per;
  plan p = { kind, nt, nb, 0, 0, 0, trl_gemm_packed_size(OCg, K), trl_gemm_packed_size(K, OCg) };
  if (kind == GENERAL || nb > 1) p.col = (size_t)K * nb * L;
  if (nb > 1) p.tmp = (size_t)OCg * nb * L;
  if (nt > 1) p.dwp = (size_t)g->OC * K;
  return p;
}

// The geometry of the data gradient as a conv: dout (B,OC,OH,OW) to dinp (B,C,H,W) with the
// flipped kernel and pad K-1-pad (stride 1, dilation 1 only).
static trl_conv_geom transposed (const trl_conv_geom *g) {
  trl_conv_geom t = *g;
  t.C = g->OC, t.H = g->OH, t.W = g->OW, t.OC = g->C, t.OH = g->H, t.OW = g->W;
  t.ph = g->KH - 1 - g->ph, t.pw = g->KW - 1 - g->pw;
  return t;
}

// Winograd runs the 3x3 stride-1 convs unless TRL_CONV_WINOGRAD=0 (for comparisons).
static int use_winograd (const trl_conv_geom *g) {
  const char *e = getenv("TRL_CONV_WINOGRAD");
  return !(e && e[0] == '0') && winograd_applies(g);
}

// Winograd splits tile rows, not images: all threads work even on one image.
static int wino_threads (void) {
  int nt = trl_get_num_threads();
  return nt < 1 ? 1 : nt;
}

// The weight gradient by F(4x4,3x3) too (4x fewer GEMM flops than im2col + GEMM).
static int use_wino_wgrad (const trl_conv_geom *g) {
  const char *e = getenv("TRL_CONV_WINOGRAD_WGRAD");
  return use_winograd(g) && winograd_variant(g, 0) == 4 && !(e && e[0] == '0');
}

int conv_weight_form (const trl_conv_geom *g, int packed) {
  const char *e = getenv("TRL_CONV_WINOGRAD");
  if (!(e && e[0] == '0') && winograd_variant(g, packed) == 4) return CONV_FORM_WINO4;
  if (conv_kind(g) == DEPTHWISE || use_winograd(g)) return CONV_FORM_NONE;   // F(2x2): its own
  return CONV_FORM_GEMM;
}

// Floats of scratch forward() needs; 'packed': the weight comes prepared (conv_weight_form).
static size_t forward_workspace (const trl_conv_geom *g, int packed) {
  int form = packed ? conv_weight_form(g, 1) : CONV_FORM_NONE;
  if (form == CONV_FORM_WINO4) return wino4_workspace(g, wino_threads(), 1);
  if (form == CONV_FORM_GEMM) {
    plan p = make_plan(g);
    return (size_t)p.nt * (p.col + p.tmp);
  }
  return conv2d_workspace(g);
}

size_t conv2d_workspace (const trl_conv_geom *g) {
  if (conv_kind(g) == DEPTHWISE) return 0;
  plan p = make_plan(g);
  size_t bwd = (size_t)(p.nt - 1) * p.dwp + (size_t)g->G * p.wpt, fwd = (size_t)g->G * p.wpk;
  size_t n = (size_t)p.nt * (p.col + p.tmp) + (bwd > fwd ? bwd : fwd);
  if (use_winograd(g)) {
    trl_conv_geom t = transposed(g);
    size_t f = winograd_workspace(g, wino_threads());
    size_t b = use_winograd(&t) ? winograd_workspace(&t, wino_threads()) : 0;
    if (f > n) n = f;
    if (b > n) n = b;
    if (use_wino_wgrad(g) && wino4_wgrad_workspace(g, wino_threads()) > n)
      n = wino4_wgrad_workspace(g, wino_threads());
  }
  return n;
}

// The columns of images n .. n+m-1 of group 'grp' side by side: col is (K, m*L). A pointwise
// conv with m = 1 needs no copy and returns the input itself.
static const float *gather_cols (float *col, const float *inp, int n, int m, int grp,
                                 const plan *p, const trl_conv_geom *g) {
  int Cg = g->C / g->G, HW = g->H * g->W, L = g->OH * g->OW;
  const float *x = inp + ((size_t)n * g->C + (size_t)grp * Cg) * HW;
  if (p->kind == POINTWISE && m == 1) return x;
  for (int i = 0; i < m; i++) {
    const float *xi = x + (size_t)i * g->C * HW;
    if (p->kind == POINTWISE)   // (Cg, HW) rows into the wider col
      for (int c = 0; c < Cg; c++)
        memcpy(col + (size_t)c * m * L + (size_t)i * L, xi + (size_t)c * HW, sizeof(float) * L);
    else im2col(col + (size_t)i * L, (int64_t)m * L, xi, Cg, g);
  }
  return col;
}

// Output rows per block when one image's im2col columns would outgrow the L2 cache (the
// stem of a ResNet: 147 x 12544 floats, 7.4 MB): the columns of a block of rows stay in cache
// between im2col and the GEMM instead of going out to memory and back. 0: not blocked.
#define BLOCK_FLOATS (256 * 1024)
static int block_rows (const plan *p, const trl_conv_geom *g) {
  int K = g->C / g->G * g->KH * g->KW;
  if (p->kind != GENERAL || p->nb != 1 || (int64_t)K * g->OH * g->OW <= 2 * BLOCK_FLOATS) return 0;
  int rb = BLOCK_FLOATS / K / g->OW;
  return rb < 1 ? 1 : rb;
}

// Forward for images [n0, n1): out is (B,OC,OH,OW), inp is (B,C,H,W), wp is the weight
// (OC,C/G,KH,KW) packed by group (p->wpk floats each, trl_gemm_pack), b is (OC) or NULL;
// col/tmp are this thread's scratch. With 'e' (then b is NULL) the GEMM applies the epilogue
// (or the bias) as it writes the output.
static void forward_range (float *out, const float *inp, const float *wp, const float *b,
                           const trl_epilogue *e, int n0, int n1, float *col, float *tmp,
                           const plan *p, const trl_conv_geom *g) {
  int Cg = g->C / g->G, OCg = g->OC / g->G, K = Cg * g->KH * g->KW, L = g->OH * g->OW;
  int rb = block_rows(p, g);
  for (int n = n0; n < n1; n += p->nb) {
    int m = n1 - n < p->nb ? n1 - n : p->nb;
    for (int grp = 0; rb && grp < g->G; grp++) {   // one image, rows [oh0, oh0 + nr) at a time
      const float *x = inp + ((size_t)n * g->C + (size_t)grp * Cg) * g->H * g->W;
      const float *wg = wp + (size_t)grp * p->wpk;
      float *o = out + ((size_t)n * g->OC + (size_t)grp * OCg) * L;
      for (int oh0 = 0; oh0 < g->OH; oh0 += rb) {
        int nr = g->OH - oh0 < rb ? g->OH - oh0 : rb, nc = nr * g->OW;
        im2col_rows(col, nc, x, Cg, oh0, oh0 + nr, g);
        trl_gemm_packed(OCg, nc, K, wg, col, nc, o + (size_t)oh0 * g->OW, L, b, e, grp * OCg);
      }
    }
    for (int grp = 0; !rb && grp < g->G; grp++) {
      const float *cols = gather_cols(col, inp, n, m, grp, p, g);
      const float *wg = wp + (size_t)grp * p->wpk;
      float *o = out + ((size_t)n * g->OC + (size_t)grp * OCg) * L;
      if (m == 1) {   // o (OCg, L) = w_grp (OCg, K) x col (K, L)
        trl_gemm_packed(OCg, L, K, wg, cols, L, o, L, b, e, grp * OCg);
        continue;
      }
      // tmp (OCg, m*L) = w_grp x cols, then each image's (OCg, L) block goes to its place
      trl_gemm_packed(OCg, m * L, K, wg, cols, m * L, tmp, m * L, NULL, NULL, 0);
      for (int i = 0; i < m; i++)
        for (int oc = 0; oc < OCg; oc++) {
          float *orow = o + ((size_t)i * g->OC + oc) * L;
          const float *t = tmp + (size_t)oc * m * L + (size_t)i * L;
          if (e) { trl_epilogue_row(orow, t, e, grp * OCg + oc, L); continue; }
          float bv = b ? b[grp * OCg + oc] : 0.0f;
          for (int j = 0; j < L; j++) orow[j] = t[j] + bv;
        }
    }
  }
}

// Backward for images [n0, n1): dx as in conv2d_backward, dwt (OC,C/G,KH,KW) is this thread's
// weight gradient (accumulated), both may be NULL; wpt is w_grp^T (K, OCg) packed by group
// (p->wpt floats each, trl_gemm_pack_t) for the data gradient. With 'write' (pointwise convs
// only) dx is written, not accumulated.
static void backward_range (float *dinp, float *dwt, const float *dout, const float *inp,
                            const float *wpt, int n0, int n1, float *col, float *tmp, int write,
                            const plan *p, const trl_conv_geom *g) {
  int Cg = g->C / g->G, OCg = g->OC / g->G, K = Cg * g->KH * g->KW;
  int L = g->OH * g->OW, HW = g->H * g->W;
  int rb = block_rows(p, g);
  for (int n = n0; n < n1; n += p->nb) {
    int m = n1 - n < p->nb ? n1 - n : p->nb;
    int64_t ld = (int64_t)m * L;
    for (int grp = 0; rb && grp < g->G; grp++) {   // one image, rows [oh0, oh0 + nr) at a time
      const float *x = inp + ((size_t)n * g->C + (size_t)grp * Cg) * HW;
      const float *wt = wpt + (size_t)grp * p->wpt;
      const float *go = dout + ((size_t)n * g->OC + (size_t)grp * OCg) * L;
      float *dx = dinp ? dinp + ((size_t)n * g->C + (size_t)grp * Cg) * HW : NULL;
      for (int oh0 = 0; oh0 < g->OH; oh0 += rb) {
        int nr = g->OH - oh0 < rb ? g->OH - oh0 : rb, nc = nr * g->OW;
        const float *gb = go + (size_t)oh0 * g->OW;
        if (dwt) {   // dw_grp (OCg, K) += go block (OCg, nc) x cols^T (nc, K)
          im2col_rows(col, nc, x, Cg, oh0, oh0 + nr, g);
          trl_gemm_nt(OCg, K, nc, gb, L, col, nc, dwt + (size_t)grp * OCg * K, K, 1);
        }
        if (dx) {   // dcol (K, nc) = w_grp^T x go block, then back to pixels
          trl_gemm_packed(K, nc, OCg, wt, gb, L, col, nc, NULL, NULL, 0);
          col2im_rows(dx, col, nc, Cg, oh0, oh0 + nr, g);
        }
      }
    }
    for (int grp = 0; !rb && grp < g->G; grp++) {
      const float *wt = wpt + (size_t)grp * p->wpt;
      const float *go = dout + ((size_t)n * g->OC + (size_t)grp * OCg) * L;
      float *dx = dinp ? dinp + ((size_t)n * g->C + (size_t)grp * Cg) * HW : NULL;
      if (m > 1) {   // gather the images' dout blocks: go becomes (OCg, m*L)
        for (int i = 0; i < m; i++)
          for (int oc = 0; oc < OCg; oc++)
            memcpy(tmp + (size_t)oc * ld + (size_t)i * L,
                   go + ((size_t)i * g->OC + oc) * L, sizeof(float) * L);
        go = tmp;
      }
      if (dwt) {   // dw_grp (OCg, K) += go (OCg, m*L) x cols^T (m*L, K)
        const float *cols = gather_cols(col, inp, n, m, grp, p, g);
        trl_gemm_nt(OCg, K, (int)ld, go, (int)ld, cols, (int)ld, dwt + (size_t)grp * OCg * K, K, 1);
      }
      if (!dx) continue;
      if (p->kind == POINTWISE && m == 1) {   // dx (Cg, L) (+)= w_grp^T x go
        if (write) trl_gemm_packed(Cg, L, OCg, wt, go, L, dx, L, NULL, NULL, 0);
        else trl_gemm_packed_add(Cg, L, OCg, wt, go, L, dx, L);
        continue;
      }
      // dcol (K, m*L) = w_grp^T x go, then back to pixels
      trl_gemm_packed(K, (int)ld, OCg, wt, go, (int)ld, col, (int)ld, NULL, NULL, 0);
      for (int i = 0; i < m; i++) {
        float *dxi = dx + (size_t)i * g->C * HW;
        const float *ci = col + (size_t)i * L;
        if (p->kind == GENERAL) col2im_rows(dxi, ci, ld, Cg, 0, g->OH, g);
        else
          for (int c = 0; c < Cg; c++) {
            float *d = dxi + (size_t)c * HW;
            const float *s = ci + (size_t)c * ld;
            for (int j = 0; j < L; j++) d[j] = (write ? 0.0f : d[j]) + s[j];
          }
      }
    }
  }
}

// wp (g->G * trl_gemm_packed_size(OCg, K) floats) = w (OC,C/G,KH,KW) packed by group for
// trl_gemm_packed: what forward_range reads. (trl's GEMM takes one image's 196 or 784
// columns about as fast as several images' (OpenBLAS did not), so forward writes each image's
// output in place, epilogue applied, with no copies; 7x7 maps (49 columns, a third of the last
// 32-column panel idle) stay batched.)
static void gemm_weights (float *wp, const float *w, const trl_conv_geom *g) {
  int OCg = g->OC / g->G, K = g->C / g->G * g->KH * g->KW;
  size_t wpk = trl_gemm_packed_size(OCg, K);
  for (int grp = 0; grp < g->G; grp++)
    trl_gemm_pack(wp + (size_t)grp * wpk, w + (size_t)grp * OCg * K, K, OCg, K);
}

// With fewer images than threads, a batch split leaves threads idle while one copies im2col
// columns: im2col + GEMM convs (groups 1) then split each image's output rows, rb at a time,
// rb the rows of one thread's share (or of an L2 block, when smaller). 0: not worth it, when
// a block would give the GEMM fewer than 96 columns (7x7 and 14x14 maps stay as they were).
// A thread's columns take K * rb * OW floats: the plan's p->nt * p->col hold them all.
static int row_team (const plan *p, const trl_conv_geom *g) {
  int nt = trl_get_num_threads();
  if (p->kind != GENERAL || g->G != 1 || nt < 2 || g->B >= nt || p->nt != g->B ||
      omp_get_level() > 0) return 0;   // (p->nt < B: too small to share)
  int rb = g->OH / nt, br = block_rows(p, g);
  if (br && br < rb) rb = br;
  if (rb < 1 || rb * g->OW < 96) return 0;
  return (size_t)nt * rb * g->OW <= (size_t)p->nt * (p->col / ((size_t)g->C * g->KH * g->KW)) ? rb : 0;
}

// Threads split the batch: each runs im2col and single-threaded GEMMs on its own images, so
// the copies run in parallel and no two thread pools compete for the cores (an OpenMP team
// spinning between OpenBLAS-threaded GEMMs measured 1.5-4x slower on 2 cores). Chunks of
// 'nb' images go out dynamically, so a core shared with another process does not stall the
// team. Inside: 't_' is the thread, [n0, n1) its chunk, col/tmp its scratch.
#define TEAM_BEGIN(p) int prev_ = trl_blas_threads(1); \
  _Pragma("omp parallel num_threads((p).nt)") { \
    int t_ = omp_get_thread_num(); \
    float *col = ws + (size_t)t_ * ((p).col + (p).tmp), *tmp = col + (p).col;
#define TEAM_CHUNKS(p) _Pragma("omp for schedule(dynamic, 1)") \
    for (int c_ = 0; c_ < (g->B + (p).nb - 1) / (p).nb; c_++) { \
      int n0 = c_ * (p).nb, n1 = n0 + (p).nb < g->B ? n0 + (p).nb : g->B;
#define TEAM_END } trl_blas_threads(prev_);

// out is (B,OC,OH,OW), inp is (B,C,H,W), w is (OC,C/G,KH,KW), b is (OC) or NULL, e an
// epilogue or NULL (not both); ws holds conv2d_workspace(g) floats. wpre, when not NULL, is
// w already in conv_weight_form(g, 1) (a conv pack's), and ws holds forward_workspace(g, 1).
static void forward (float *out, const float *inp, const float *w, const float *wpre,
                     const float *b, const trl_epilogue *e, float *ws, const trl_conv_geom *g) {
  int form = wpre ? conv_weight_form(g, 1) : CONV_FORM_NONE;
  if (form == CONV_FORM_WINO4) {
    wino4_conv(out, inp, w, wpre, b, e, 0, 0, ws, wino_threads(), g);
    return;
  }
  if (!wpre && use_winograd(g)) {   // the epilogue in the output transform
    winograd_conv(out, inp, w, b, e, 0, 0, ws, wino_threads(), g);
    return;
  }
  if (conv_kind(g) == DEPTHWISE) {   // 3x3: the epilogue in the kernel, else afterwards
    if (is_dw3(g)) dw3_forward(out, inp, w, b, e, g);
    else {
      depthwise_forward(out, inp, w, b, g);
      if (e) trl_epilogue_planes(out, out, e, g->B, g->OC, (int64_t)g->OH * g->OW);
    }
    return;
  }
  plan p = make_plan(g);
  if (trl_gemm_mr(g->OC / g->G) > 1 && g->OH * g->OW >= 128) p.nb = 1;
  const float *wp = wpre;
  if (!wp) {
    float *pk = ws + (size_t)p.nt * (p.col + p.tmp);
    gemm_weights(pk, w, g);
    wp = pk;
  }
  int rb = row_team(&p, g);
  if (rb) {   // fewer images than threads: blocks of rb output rows go out instead
    int K = g->C * g->KH * g->KW, L = g->OH * g->OW, per = (g->OH + rb - 1) / rb;
    int prev = trl_blas_threads(1);
    #pragma omp parallel num_threads(trl_get_num_threads())
    {
      float *col = ws + (size_t)omp_get_thread_num() * K * rb * g->OW;
      #pragma omp for schedule(dynamic, 1)
      for (int u = 0; u < g->B * per; u++) {
        int n = u / per, oh0 = u % per * rb, nr = g->OH - oh0 < rb ? g->OH - oh0 : rb;
        const float *x = inp + (size_t)n * g->C * g->H * g->W;
        im2col_rows(col, (int64_t)nr * g->OW, x, g->C, oh0, oh0 + nr, g);
        trl_gemm_packed(g->OC, nr * g->OW, K, wp, col, nr * g->OW,
                        out + (size_t)n * g->OC * L + (size_t)oh0 * g->OW, L, b, e, 0);
      }
    }
    trl_blas_threads(prev);
    return;
  }
  if (p.nt == 1) {
    forward_range(out, inp, wp, b, e, 0, g->B, ws, ws + p.col, &p, g);
    return;
  }
  TEAM_BEGIN(p)
    TEAM_CHUNKS(p)
      forward_range(out, inp, wp, b, e, n0, n1, col, tmp, &p, g);
    }
  TEAM_END
}

void conv2d_forward (float *out, const float *inp, const float *w, const float *b, float *ws,
                     const trl_conv_geom *g) {
  forward(out, inp, w, NULL, b, NULL, ws, g);
}

void conv2d_forward_epi (float *out, const float *inp, const float *w, const trl_epilogue *e,
                         float *ws, const trl_conv_geom *g) {
  forward(out, inp, w, NULL, NULL, e, ws, g);
}

// dinp is (B,C,H,W), dw is (OC,C/G,KH,KW), db is (OC), each may be NULL; dout is (B,OC,OH,OW);
// inp, w and ws as in conv2d_forward.
// As conv2d_backward; with 'fresh', dinp holds garbage and is written, not accumulated.
static void backward (float *dinp, float *dw, float *db, const float *dout, const float *inp,
                      const float *w, float *ws, int fresh, const trl_conv_geom *g) {
  int L = g->OH * g->OW;
  if (db) {
    #pragma omp parallel for schedule(static) if ((int64_t)g->B * g->OC * L > 65536)
    for (int oc = 0; oc < g->OC; oc++) {
      double s = 0;
      for (int n = 0; n < g->B; n++) {
        const float *go = dout + ((size_t)n * g->OC + oc) * L;
        float r = 0;
        for (int i = 0; i < L; i++) r += go[i];
        s += r;
      }
      db[oc] += (float)s;
    }
  }
  trl_conv_geom t = transposed(g);
  int wino_dx = dinp && conv_kind(g) != DEPTHWISE && use_winograd(g) && use_winograd(&t);
  // Winograd, pointwise and 3x3 depthwise convs write a fresh dx; the other paths accumulate
  int write = fresh && (wino_dx || conv_kind(g) == POINTWISE ||
                        (conv_kind(g) == DEPTHWISE && is_dw3(g)));
  if (dinp && fresh && !write) memset(dinp, 0, sizeof(float) * (size_t)g->B * g->C * g->H * g->W);
  if (conv_kind(g) == DEPTHWISE) {
    if (is_dw3(g)) dw3_backward(dinp, dw, dout, inp, w, write, g);
    else depthwise_backward(dinp, dw, dout, inp, w, g);
    return;
  }
  if (!dinp && !dw) return;
  plan p = make_plan(g);
  if (wino_dx) {   // dx (+)= conv(dout, flipped w)
    winograd_conv(dinp, dout, w, NULL, NULL, 1, !fresh, ws, wino_threads(), &t);
    dinp = NULL;
    if (!dw) return;
  }
  if (dw && use_wino_wgrad(g)) {
    wino4_wgrad(dw, dout, inp, ws, wino_threads(), g);
    dw = NULL;
    if (!dinp) return;
  }
  float *dwp = ws + (size_t)p.nt * (p.col + p.tmp);   // threads 1.. accumulate privately
  float *wpt = dwp + (size_t)(p.nt - 1) * p.dwp;
  int OCg = g->OC / g->G, K = g->C / g->G * g->KH * g->KW;
  for (int grp = 0; dinp && grp < g->G; grp++)
    trl_gemm_pack_t(wpt + (size_t)grp * p.wpt, w + (size_t)grp * OCg * K, K, K, OCg);
  if (p.nt == 1) {
    backward_range(dinp, dw, dout, inp, wpt, 0, g->B, ws, ws + p.col, write, &p, g);
    return;
  }
  TEAM_BEGIN(p)
    int nth = omp_get_num_threads();
    float *dwt = dw && t_ > 0 ? dwp + (size_t)(t_ - 1) * p.dwp : dw;
    if (dwt && t_ > 0) memset(dwt, 0, sizeof(float) * p.dwp);
    // a static split: which images land in which private sum must not vary from run to run,
    // or dw would differ in the last bits (a resumed training run must match an unbroken one)
    int lo = (int)((int64_t)g->B * t_ / nth), hi = (int)((int64_t)g->B * (t_ + 1) / nth);
    for (int n0 = lo; n0 < hi; n0 += p.nb)
      backward_range(dinp, dwt, dout, inp, wpt, n0, n0 + p.nb < hi ? n0 + p.nb : hi, col, tmp,
                     write, &p, g);
    _Pragma("omp barrier")   // then every thread sums a slice of the private gradients into dw
    if (dw) {
      size_t lo = p.dwp * t_ / nth, hi = p.dwp * (t_ + 1) / nth;
      for (int k = 1; k < nth; k++) {
        const float *src = dwp + (size_t)(k - 1) * p.dwp;
        for (size_t i = lo; i < hi; i++) dw[i] += src[i];
      }
    }
  TEAM_END
}

void conv2d_backward (float *dinp, float *dw, float *db, const float *dout, const float *inp,
                      const float *w, float *ws, const trl_conv_geom *g) {
  backward(dinp, dw, db, dout, inp, w, ws, 0, g);
}

/* }================================================================== */

/* {==================================================================
** Reference kernels
** =================================================================== */

// Naive references: one output (or one gradient term) at a time, sums in double; shapes as in
// conv2d_forward / conv2d_backward.
void conv2d_forward_ref (float *out, const float *inp, const float *w, const float *b,
                         const trl_conv_geom *g) {
  int Cg = g->C / g->G, OCg = g->OC / g->G;
  for (int n = 0; n < g->B; n++)
    for (int oc = 0; oc < g->OC; oc++)
      for (int oh = 0; oh < g->OH; oh++)
        for (int ow = 0; ow < g->OW; ow++) {
          double s = b ? b[oc] : 0.0;
          for (int c = 0; c < Cg; c++)
            for (int kh = 0; kh < g->KH; kh++)
              for (int kw = 0; kw < g->KW; kw++) {
                int ih = oh * g->sh - g->ph + kh * g->dh, iw = ow * g->sw - g->pw + kw * g->dw;
                if (ih < 0 || ih >= g->H || iw < 0 || iw >= g->W) continue;
                int ic = oc / OCg * Cg + c;
                s += (double)w[((oc * Cg + c) * g->KH + kh) * g->KW + kw] *
                     inp[(((size_t)n * g->C + ic) * g->H + ih) * g->W + iw];
              }
          out[(((size_t)n * g->OC + oc) * g->OH + oh) * g->OW + ow] = (float)s;
        }
}

void conv2d_backward_ref (float *dinp, float *dw, float *db, const float *dout,
                          const float *inp, const float *w, const trl_conv_geom *g) {
  int Cg = g->C / g->G, OCg = g->OC / g->G;
  for (int n = 0; n < g->B; n++)
    for (int oc = 0; oc < g->OC; oc++)
      for (int oh = 0; oh < g->OH; oh++)
        for (int ow = 0; ow < g->OW; ow++) {
          float go = dout[(((size_t)n * g->OC + oc) * g->OH + oh) * g->OW + ow];
          if (db) db[oc] += go;
          for (int c = 0; c < Cg; c++)
            for (int kh = 0; kh < g->KH; kh++)
              for (int kw = 0; kw < g->KW; kw++) {
                int ih = oh * g->sh - g->ph + kh * g->dh, iw = ow * g->sw - g->pw + kw * g->dw;
                if (ih < 0 || ih >= g->H || iw < 0 || iw >= g->W) continue;
                size_t xi = (((size_t)n * g->C + oc / OCg * Cg + c) * g->H + ih) * g->W + iw;
                size_t wi = ((size_t)(oc * Cg + c) * g->KH + kh) * g->KW + kw;
                if (dinp) dinp[xi] += w[wi] * go;
                if (dw) dw[wi] += inp[xi] * go;
              }
        }
}

/* }================================================================== */

/* {==================================================================
** Builder and tape node
** =================================================================== */

// The conv scratch of this thread: one buffer, grown to the largest workspace asked for and
// kept. Workspaces come in many sizes (one per layer shape and direction, up to ~100 MB for
// Winograd's team chunks); through the block cache each size held blocks of its own and
// pushed activations out of it.
static _Thread_local float *scratch_buf;
static _Thread_local size_t scratch_n;

static float *scratch (size_t nfloats) {
  if (nfloats <= scratch_n) return scratch_buf;
  float *p = trl_alloc(nfloats * sizeof(float));
  if (!p) return NULL;
  trl_mem_advise_huge(p, nfloats * sizeof(float));   // bench/NOTES.md 48
  trl_free(scratch_buf, scratch_n * sizeof(float));
  scratch_buf = p, scratch_n = nfloats;
  return p;
}

// saved[0] is the contiguous x, saved[1] the contiguous weight; the payload is the geometry.
static trl_status conv2d_bwd (trl_node *node, const trl_tensor *gout, trl_tensor **gin) {
  const trl_conv_geom *g = (const trl_conv_geom *)node->payload;
  trl_tensor *gc = NULL;
  trl_status st = TRL_OK;
  if (!trl_is_contiguous(gout)) TRL_TRY(trl_tensor_clone(&gc, gout, TRL_F32));
  size_t wsn = gin[0] || gin[1] ? conv2d_workspace(g) : 0;
  float *ws = wsn ? scratch(wsn) : NULL;
  if (wsn && !ws) {
    st = trl_fail(TRL_ENOMEM, "conv2d: out of memory for %zu bytes of backward scratch",
                  wsn * sizeof(float));
    goto done;
  }
  backward(gin[0] ? trl_f32(gin[0]) : NULL, gin[1] ? trl_f32(gin[1]) : NULL,
           gin[2] ? trl_f32(gin[2]) : NULL, trl_f32(gc ? gc : gout),
           trl_f32(node->saved[0]), trl_f32(node->saved[1]), ws, (int)(node->fresh & 1u), g);
done:
  trl_tensor_release(gc);
  return st;
}

trl_status trl_conv2d (trl_tensor **out, trl_tensor *x, trl_tensor *w, trl_tensor *b,
                       const trl_conv_params *p) {
  trl_conv_params dflt = trl_conv_defaults();
  trl_conv_geom g;
  TRL_TRY(conv2d_check(&g, x, w, b, p ? p : &dflt));
  trl_tensor *xc = NULL, *wc = NULL, *bc = NULL, *y = NULL;
  size_t wsn = conv2d_workspace(&g);
  float *ws = NULL;
  trl_status st;
  if ((st = trl_tensor_contiguous(&xc, x)) != TRL_OK) goto done;
  if ((st = trl_tensor_contiguous(&wc, w)) != TRL_OK) goto done;
  if (b && (st = trl_tensor_contiguous(&bc, b)) != TRL_OK) goto done;
  int64_t shape[4] = { g.B, g.OC, g.OH, g.OW };
  if ((st = trl_tensor_empty(&y, TRL_F32, 4, shape)) != TRL_OK) goto done;
  if (wsn && !(ws = scratch(wsn))) {
    st = trl_fail(TRL_ENOMEM, "conv2d: out of memory for %zu bytes of scratch",
                  wsn * sizeof(float));
    goto done;
  }
  conv2d_forward(trl_f32(y), trl_f32(xc), trl_f32(wc), bc ? trl_f32(bc) : NULL, ws, &g);
  trl_node *node;
  trl_tensor *in[3] = { x, w, b };
  if ((st = trl_tape_record(&node, y, TRL_OP_CONV2D, conv2d_bwd, 3, in, sizeof g)) != TRL_OK)
    goto done;
  if (node) {
    memcpy(node->payload, &g, sizeof g);
    node->overwrites = 1u;   // dx, when it is the first gradient of x (see backward)
    trl_node_save(node, 0, xc);
    trl_node_save(node, 1, wc);
    st = trl_node_drop_values(node, 1u);   // backward reads the saved copies, not x
  }
done:
  trl_tensor_release(xc);
  trl_tensor_release(wc);
  trl_tensor_release(bc);
  if (st != TRL_OK) trl_tensor_release(y);
  else *out = y;
  return st;
}

/* }================================================================== */

/* {==================================================================
** Prepacked weights
** =================================================================== */

// One form of one weight: the key is the weight's storage and stamp (the bytes), its view
// and the layout of the form (groups, the GEMM's panel height); the storage pointer is only
// compared, never followed.
typedef struct {
  const void *src;
  uint64_t stamp;
  int64_t off, shape[4], stride[4];
  int groups, mr;
  float *buf;
  size_t n;   // floats in buf
} pack_slot;

struct trl_conv_pack {
  pack_slot slot[2];   // CONV_FORM_GEMM - 1, CONV_FORM_WINO4 - 1
  long builds;
};

trl_conv_pack *trl_conv_pack_new (void) { return calloc(1, sizeof(trl_conv_pack)); }

void trl_conv_pack_clear (trl_conv_pack *p) {
  if (!p) return;
  for (int i = 0; i < 2; i++) {
    trl_free_direct(p->slot[i].buf, p->slot[i].n * sizeof(float));
    memset(&p->slot[i], 0, sizeof p->slot[i]);
  }
}

void trl_conv_pack_free (trl_conv_pack *p) {
  trl_conv_pack_clear(p);
  free(p);
}

size_t trl_conv_pack_bytes (const trl_conv_pack *p) {
  return p ? (p->slot[0].n + p->slot[1].n) * sizeof(float) : 0;
}

long trl_conv_pack_builds (const trl_conv_pack *p) { return p ? p->builds : 0; }

// The panel height the form's layout depends on.
static int form_mr (int form, const trl_conv_geom *g) {
  return trl_gemm_mr(form == CONV_FORM_WINO4 ? g->OC : g->OC / g->G);
}

const float *conv_pack_get (trl_conv_pack *p, const trl_tensor *w, const trl_tensor *wc,
                            int form, const trl_conv_geom *g) {
  pack_slot *s = &p->slot[form - 1];
  int mr = form_mr(form, g);
  int same = s->buf && s->src == (const void *)w->storage && s->stamp == trl_tensor_stamp(w) &&
             s->off == w->offset && s->groups == g->G && s->mr == mr &&
             memcmp(s->shape, w->shape, sizeof s->shape) == 0 &&
             memcmp(s->stride, w->stride, sizeof s->stride) == 0;
  if (same) return s->buf;
  int OCg = g->OC / g->G, K = g->C / g->G * g->KH * g->KW;
  size_t n = form == CONV_FORM_WINO4 ? wino4_weights_size(g)
                                     : (size_t)g->G * trl_gemm_packed_size(OCg, K);
  if (n != s->n) {   // pages of their own (mem.h: trl_alloc_direct)
    trl_free_direct(s->buf, s->n * sizeof(float));
    s->n = 0;
    s->src = NULL;
    if (!(s->buf = trl_alloc_direct(n * sizeof(float)))) return NULL;
    s->n = n;
  }
  if (form == CONV_FORM_WINO4) wino4_weights(s->buf, trl_f32(wc), wino_threads(), g);
  else gemm_weights(s->buf, trl_f32(wc), g);
  s->src = w->storage, s->stamp = trl_tensor_stamp(w), s->off = w->offset;
  memcpy(s->shape, w->shape, sizeof s->shape);
  memcpy(s->stride, w->stride, sizeof s->stride);
  s->groups = g->G, s->mr = mr;
  p->builds++;
  return s->buf;
}

trl_status trl_conv2d_bn_act (trl_tensor **out, trl_tensor *x, trl_tensor *w, trl_tensor *b,
                              const trl_bn_ref *bn, float lo, float hi,
                              const trl_conv_params *p, trl_conv_pack *pack) {
  char xs[TRL_SHAPELEN], wsh[TRL_SHAPELEN];
  trl_conv_params dflt = trl_conv_defaults();
  trl_conv_geom g;
  TRL_TRY(conv2d_check(&g, x, w, b, p ? p : &dflt));
  trl_tensor *in[3] = { x, w, b };
  if (trl_tape_wants(b ? 3 : 2, in))
    return trl_fail(TRL_EARG, "conv2d_bn_act: inference only, but autograd is recording "
                    "x %s or w %s", trl_tensor_shape_str(xs, x), trl_tensor_shape_str(wsh, w));
  if (!(lo <= hi)) return trl_fail(TRL_EARG, "conv2d_bn_act: clamp bounds %g > %g", lo, hi);
  int form = pack ? conv_weight_form(&g, 1) : CONV_FORM_NONE;
  size_t wsn = forward_workspace(&g, form != CONV_FORM_NONE), scn = (size_t)g.OC * 2;
  float *ws = NULL, *sc = trl_alloc(scn * sizeof(float));
  if (!sc) return trl_fail(TRL_ENOMEM, "conv2d_bn_act: out of memory for %d channels", g.OC);
  trl_tensor *xc = NULL, *wc = NULL, *y = NULL;
  const float *wpre = NULL;
  trl_status st = TRL_OK;
  st = trl_bn_fold(sc, sc + g.OC, bn, b, g.OC, "conv2d_bn_act");
  if (st == TRL_OK) st = trl_tensor_contiguous(&xc, x);
  if (st == TRL_OK) st = trl_tensor_contiguous(&wc, w);
  if (st == TRL_OK && form != CONV_FORM_NONE && !(wpre = conv_pack_get(pack, w, wc, form, &g)))
    st = trl_fail(TRL_ENOMEM, "conv2d_bn_act: out of memory prepacking weight %s",
                  trl_tensor_shape_str(wsh, w));
  int64_t shape[4] = { g.B, g.OC, g.OH, g.OW };
  if (st == TRL_OK) st = trl_tensor_empty(&y, TRL_F32, 4, shape);
  if (st == TRL_OK && wsn && !(ws = scratch(wsn)))
    st = trl_fail(TRL_ENOMEM, "conv2d_bn_act: out of memory for %zu bytes of scratch",
                  wsn * sizeof(float));
  if (st == TRL_OK) {
    trl_epilogue e = { sc, sc + g.OC, lo, hi };
    forward(trl_f32(y), trl_f32(xc), trl_f32(wc), wpre, NULL, &e, ws, &g);
  }
  trl_free(sc, scn * sizeof(float));
  trl_tensor_release(xc);
  trl_tensor_release(wc);
  if (st != TRL_OK) trl_tensor_release(y);
  else *out = y;
  return st;
}

/* }================================================================== */
