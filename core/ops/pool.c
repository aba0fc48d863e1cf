/*
** pool.c: 2-D max and average pooling on NCHW float32 (kernel, stride, padding, floor or
** ceil output size, count_include_pad) and global average pooling, with backward. Kernels
** run one (image, channel) plane per OpenMP iteration. Not here: 1-D/3-D, lp pooling.
*/
#include <math.h>
#include <string.h>

#include "nn.h"
#include "tape.h"

trl_pool_params trl_pool_defaults (int k) {
  return (trl_pool_params){ .kernel = {k, k}, .stride = {k, k}, .pad = {0, 0},
                            .ceil_mode = 0, .count_include_pad = 1 };
}

/* {==================================================================
** Shape check
** =================================================================== */

// Floor ('valid') or ceil ('full') output size. In ceil mode the last window must start
// inside the input or its left padding, so that no window lies wholly in the right padding.
static int pool_out (int H, int k, int s, int p, int ceil_mode) {
  int span = H + 2 * p - k;
  int o = ceil_mode ? (span + s - 1) / s + 1 : span / s + 1;
  if (ceil_mode && (o - 1) * s >= H + p) o--;
  return o;
}

trl_status pool2d_check (trl_pool_geom *g, const char *op, const trl_tensor *x,
                         const trl_pool_params *p) {
  char xs[TRL_SHAPELEN];
  trl_tensor_shape_str(xs, x);
  if (x->dtype != TRL_F32)
    return trl_fail(TRL_ETYPE, "%s: expected a float32 x, got %s", op, trl_dtype_name(x->dtype));
  if (x->ndim != 4)
    return trl_fail(TRL_ESHAPE, "%s: expected a 4-D x (N,C,H,W), x is %s", op, xs);
  for (int i = 0; i < 2; i++)
    if (p->kernel[i] < 1 || p->stride[i] < 1 || p->pad[i] < 0 || 2 * p->pad[i] > p->kernel[i])
      return trl_fail(TRL_EARG, "%s: bad parameters kernel (%d,%d), stride (%d,%d), pad (%d,%d) "
                      "(need kernel, stride >= 1 and 0 <= pad <= kernel/2), x is %s", op,
                      p->kernel[0], p->kernel[1], p->stride[0], p->stride[1], p->pad[0],
                      p->pad[1], xs);
  int64_t H = x->shape[2], W = x->shape[3];
  if (H + 2 * p->pad[0] < p->kernel[0] || W + 2 * p->pad[1] < p->kernel[1])
    return trl_fail(TRL_ESHAPE, "%s: kernel (%d,%d) larger than padded input (pad %d,%d), x is %s",
                    op, p->kernel[0], p->kernel[1], p->pad[0], p->pad[1], xs);
  if (x->shape[0] * x->shape[1] > INT32_MAX || H * W > INT32_MAX)
    return trl_fail(TRL_ESHAPE, "%s: sizes too large, x is %s", op, xs);
  *g = (trl_pool_geom){
    .B = (int)x->shape[0], .C = (int)x->shape[1], .H = (int)H, .W = (int)W,
    .OH = pool_out((int)H, p->kernel[0], p->stride[0], p->pad[0], p->ceil_mode),
    .OW = pool_out((int)W, p->kernel[1], p->stride[1], p->pad[1], p->ceil_mode),
    .kh = p->kernel[0], .kw = p->kernel[1], .sh = p->stride[0], .sw = p->stride[1],
    .ph = p->pad[0], .pw = p->pad[1], .count_include_pad = p->count_include_pad };
  return TRL_OK;
}

/* }================================================================== */

/* {==================================================================
** Kernels
** =================================================================== */

#define PLANES(g) ((int64_t)(g)->B * (g)->C)
#define BIG(g) (PLANES(g) * (g)->OH * (g)->OW * (g)->kh * (g)->kw > 32768)

// Window of output (oh, ow) clipped to the input: rows [*h0, *h1), columns [*w0, *w1).
static inline void window (const trl_pool_geom *g, int oh, int ow, int *h0, int *h1, int *w0,
                           int *w1) {
  int hs = oh * g->sh - g->ph, ws = ow * g->sw - g->pw;
  *h0 = hs < 0 ? 0 : hs;
  *w0 = ws < 0 ? 0 : ws;
  *h1 = hs + g->kh < g->H ? hs + g->kh : g->H;
  *w1 = ws + g->kw < g->W ? ws + g->kw : g->W;
}

// The divisor of window (oh, ow): its size clipped to the padded input, or to the input.
static inline int avg_count (const trl_pool_geom *g, int oh, int ow, int h0, int h1, int w0,
                             int w1) {
  if (!g->count_include_pad) return (h1 - h0) * (w1 - w0);
  int hs = oh * g->sh - g->ph, ws = ow * g->sw - g->pw;
  int he = hs + g->kh < g->H + g->ph ? hs + g->kh : g->H + g->ph;
  int we = ws + g->kw < g->W + g->pw ? ws + g->kw : g->W + g->pw;
  return (he - hs) * (we - ws);
}

// Offset in the plane of the first maximum of the (non-empty) window.
static inline int argmax_window (const float *x, int W, int h0, int h1, int w0, int w1) {
  int best = h0 * W + w0;
  float m = x[best];
  for (int ih = h0; ih < h1; ih++)
    for (int iw = w0; iw < w1; iw++)
      if (x[ih * W + iw] > m) m = x[ih * W + iw], best = ih * W + iw;
  return best;
}

#if defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>

// Even and odd floats of p[0..15].
static inline void deinterleave (const float *p, __m256 *ev, __m256 *od) {
  __m256 a = _mm256_loadu_ps(p), b = _mm256_loadu_ps(p + 8);
  *ev = _mm256_castpd_ps(_mm256_permute4x64_pd(
      _mm256_castps_pd(_mm256_shuffle_ps(a, b, _MM_SHUFFLE(2, 0, 2, 0))), 0xd8));
  *od = _mm256_castpd_ps(_mm256_permute4x64_pd(
      _mm256_castps_pd(_mm256_shuffle_ps(a, b, _MM_SHUFFLE(3, 1, 3, 1))), 0xd8));
}

// Outputs [ow, ow + 8) of row oh of a 3-wide, stride-2 max pool (ResNet's 3x3/2 pool), or
// return 0 when they need columns outside the row. Same result as the scalar loop, NaNs and
// signed zeros included: max_ps(v, m) keeps m on ties and when v is NaN.
static int maxpool_3s2_row8 (float *o, const float *x, int ow, int h0, int h1,
                             const trl_pool_geom *g) {
  int base = 2 * ow - g->pw;
  if (base < 0 || base + 18 > g->W) return 0;
  __m256 m = _mm256_set1_ps(-INFINITY);
  for (int ih = h0; ih < h1; ih++) {
    __m256 e0, o0, e1, o1;
    deinterleave(x + (size_t)ih * g->W + base, &e0, &o0);       // columns 2t, 2t+1
    deinterleave(x + (size_t)ih * g->W + base + 2, &e1, &o1);   // column 2t+2
    m = _mm256_max_ps(e0, m);
    m = _mm256_max_ps(o0, m);
    m = _mm256_max_ps(e1, m);
  }
  _mm256_storeu_ps(o, m);
  return 1;
}

// maxpool_3s2_row8 that also finds each window's first maximum as maxpool_3s2_back8 does, as
// its tap (row * 3 + column, from the window's corner in the padded input) in t[0..7].
static int maxpool_3s2_row8_arg (float *o, uint8_t *t, const float *x, int oh, int ow, int h0,
                                 int h1, const trl_pool_geom *g) {
  int base = 2 * ow - g->pw, hs = oh * g->sh - g->ph;
  if (base < 0 || base + 18 > g->W) return 0;
  __m256 m = _mm256_set1_ps(-INFINITY), a = _mm256_undefined_ps();
  __m256i best = _mm256_setzero_si256();
  for (int ih = h0; ih < h1; ih++) {
    __m256 v[3], o1;
    deinterleave(x + (size_t)ih * g->W + base, &v[0], &v[1]);
    deinterleave(x + (size_t)ih * g->W + base + 2, &v[2], &o1);
    for (int dc = 0; dc < 3; dc++) {
      m = _mm256_max_ps(v[dc], m);
      __m256i here = _mm256_set1_epi32((ih - hs) * 3 + dc);
      if (ih == h0 && dc == 0) { a = v[0], best = here; continue; }
      __m256 gt = _mm256_cmp_ps(v[dc], a, _CMP_GT_OQ);
      a = _mm256_blendv_ps(a, v[dc], gt);
      best = _mm256_blendv_epi8(best, here, _mm256_castps_si256(gt));
    }
  }
  _mm256_storeu_ps(o, m);
  int at[8];
  _mm256_storeu_si256((__m256i *)at, best);
  for (int l = 0; l < 8; l++) t[l] = (uint8_t)at[l];
  return 1;
}

// The backward of maxpool_3s2_row8: each output's gradient goes to the first maximum of its
// window in argmax_window's order (rows, then columns; a NaN never replaces the running
// maximum), added in the scalar loop's order (ow ascending), so dx has the same bits.
static int maxpool_3s2_back8 (float *dx, const float *go, const float *x, int ow, int h0, int h1,
                              const trl_pool_geom *g) {
  int base = 2 * ow - g->pw;
  if (base < 0 || base + 18 > g->W) return 0;
  __m256i lane2 = _mm256_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14);
  __m256 m = _mm256_undefined_ps();
  __m256i best = _mm256_setzero_si256();
  for (int ih = h0; ih < h1; ih++) {
    __m256 v[3], o1;
    deinterleave(x + (size_t)ih * g->W + base, &v[0], &v[1]);
    deinterleave(x + (size_t)ih * g->W + base + 2, &v[2], &o1);
    __m256i row = _mm256_add_epi32(lane2, _mm256_set1_epi32(ih * g->W + base));
    for (int dc = 0; dc < 3; dc++) {
      __m256i here = _mm256_add_epi32(row, _mm256_set1_epi32(dc));
      if (ih == h0 && dc == 0) { m = v[0], best = here; continue; }
      __m256 gt = _mm256_cmp_ps(v[dc], m, _CMP_GT_OQ);
      m = _mm256_blendv_ps(m, v[dc], gt);
      best = _mm256_blendv_epi8(best, here, _mm256_castps_si256(gt));
    }
  }
  int at[8];
  _mm256_storeu_si256((__m256i *)at, best);
  for (int l = 0; l < 8; l++) dx[at[l]] += go[l];
  return 1;
}
#endif

// out is (B,C,OH,OW), inp is (B,C,H,W).
void maxpool2d_forward (float *out, const float *inp, const trl_pool_geom *g) {
  int HW = g->H * g->W, L = g->OH * g->OW;
  #pragma omp parallel for schedule(static) if (BIG(g))
  for (int64_t p = 0; p < PLANES(g); p++) {
    const float *x = inp + p * HW;
    float *o = out + p * L;
    for (int oh = 0; oh < g->OH; oh++)
      for (int ow = 0; ow < g->OW; ow++) {
        int h0, h1, w0, w1;
#if defined(__AVX2__) && defined(__FMA__)
        if (g->kw == 3 && g->sw == 2 && ow + 8 <= g->OW) {
          window(g, oh, ow, &h0, &h1, &w0, &w1);
          if (maxpool_3s2_row8(o + oh * g->OW + ow, x, ow, h0, h1, g)) {
            ow += 7;
            continue;
          }
        }
#endif
        window(g, oh, ow, &h0, &h1, &w0, &w1);
        float m = -INFINITY;
        for (int ih = h0; ih < h1; ih++)
          for (int iw = w0; iw < w1; iw++) {   // not fmaxf: a call here; NaNs lose either way
            float v = x[ih * g->W + iw];
            m = v > m ? v : m;
          }
        o[oh * g->OW + ow] = m;
      }
  }
}

// One past the last input row that output row oh's windows reach.
static inline int rows_end (const trl_pool_geom *g, int oh) {
  int hs = oh * g->sh - g->ph;
  return hs + g->kh < g->H ? hs + g->kh : g->H;
}

// Rows [*zeroed, h1) of a gradient plane set to zero (none if h1 <= *zeroed), then *zeroed = h1.
static inline void zero_rows (float *dx, int *zeroed, int h1, const trl_pool_geom *g) {
  if (h1 <= *zeroed) return;
  memset(dx + (size_t)*zeroed * g->W, 0, sizeof(float) * (size_t)(h1 - *zeroed) * g->W);
  *zeroed = h1;
}

// dinp/inp are (B,C,H,W), dout is (B,C,OH,OW); the max is found again in 'inp'.
// With 'write', dinp holds garbage: each plane's rows are zeroed just before the first window
// that reaches them (windows move down with oh), so the zeros are written in cache, not by a
// pass over the whole gradient first.
static void maxpool_back (float *dinp, const float *dout, const float *inp, int write,
                          const trl_pool_geom *g) {
  int HW = g->H * g->W, L = g->OH * g->OW;
  #pragma omp parallel for schedule(static) if (BIG(g))
  for (int64_t p = 0; p < PLANES(g); p++) {
    const float *x = inp + p * HW, *go = dout + p * L;
    float *dx = dinp + p * HW;
    int zeroed = write ? 0 : g->H;   // rows [0, zeroed) hold their starting values
    for (int oh = 0; oh < g->OH; oh++) {
      zero_rows(dx, &zeroed, rows_end(g, oh), g);
      for (int ow = 0; ow < g->OW; ow++) {
        int h0, h1, w0, w1;
        window(g, oh, ow, &h0, &h1, &w0, &w1);
#if defined(__AVX2__) && defined(__FMA__)
        if (g->kw == 3 && g->sw == 2 && ow + 8 <= g->OW &&
            maxpool_3s2_back8(dx, go + oh * g->OW + ow, x, ow, h0, h1, g)) {
          ow += 7;
          continue;
        }
#endif
        dx[argmax_window(x, g->W, h0, h1, w0, w1)] += go[oh * g->OW + ow];
      }
    }
    zero_rows(dx, &zeroed, g->H, g);   // rows below every window
  }
}

void maxpool2d_backward (float *dinp, const float *dout, const float *inp,
                         const trl_pool_geom *g) {
  maxpool_back(dinp, dout, inp, 0, g);
}

void maxpool2d_backward_write (float *dinp, const float *dout, const float *inp,
                               const trl_pool_geom *g) {
  maxpool_back(dinp, dout, inp, 1, g);
}

// maxpool2d_forward that also writes, for each output, the tap of its window's first maximum
// (the element maxpool2d_backward gives the gradient to): row * kw + column from the window's
// corner in the padded input. kh * kw <= 256.
void maxpool2d_forward_arg (float *out, uint8_t *arg, const float *inp, const trl_pool_geom *g) {
  int HW = g->H * g->W, L = g->OH * g->OW;
  #pragma omp parallel for schedule(static) if (BIG(g))
  for (int64_t p = 0; p < PLANES(g); p++) {
    const float *x = inp + p * HW;
    float *o = out + p * L;
    uint8_t *t = arg + p * L;
    for (int oh = 0; oh < g->OH; oh++)
      for (int ow = 0; ow < g->OW; ow++) {
        int h0, h1, w0, w1;
        window(g, oh, ow, &h0, &h1, &w0, &w1);
#if defined(__AVX2__) && defined(__FMA__)
        if (g->kw == 3 && g->sw == 2 && ow + 8 <= g->OW &&
            maxpool_3s2_row8_arg(o + oh * g->OW + ow, t + oh * g->OW + ow, x, oh, ow, h0, h1, g)) {
          ow += 7;
          continue;
        }
#endif
        float m = -INFINITY;
        for (int ih = h0; ih < h1; ih++)
          for (int iw = w0; iw < w1; iw++) {
            float v = x[ih * g->W + iw];
            m = v > m ? v : m;
          }
        o[oh * g->OW + ow] = m;
        int best = argmax_window(x, g->W, h0, h1, w0, w1);
        int hs = oh * g->sh - g->ph, ws = ow * g->sw - g->pw;
        t[oh * g->OW + ow] = (uint8_t)((best / g->W - hs) * g->kw + best % g->W - ws);
      }
  }
}

// maxpool2d_backward from the taps of maxpool2d_forward_arg instead of the input: the same
// elements, added in the same order (the same bits). With 'write' as maxpool_back.
void maxpool2d_backward_arg (float *dinp, const float *dout, const uint8_t *arg, int write,
                             const trl_pool_geom *g) {
  int HW = g->H * g->W, L = g->OH * g->OW, off[256];
  for (int k = 0; k < g->kh * g->kw; k++) off[k] = k / g->kw * g->W + k % g->kw;
  #pragma omp parallel for schedule(static) if (BIG(g))
  for (int64_t p = 0; p < PLANES(g); p++) {
    const float *go = dout + p * L;
    const uint8_t *t = arg + p * L;
    float *dx = dinp + p * HW;
    int zeroed = write ? 0 : g->H;   // rows [0, zeroed) hold their starting values
    for (int oh = 0; oh < g->OH; oh++) {
      zero_rows(dx, &zeroed, rows_end(g, oh), g);
      // the window's corner in the padded input, as an offset in the plane (maybe negative)
      int64_t c = (int64_t)(oh * g->sh - g->ph) * g->W - g->pw;
      for (int ow = 0; ow < g->OW; ow++)
        dx[c + ow * g->sw + off[t[oh * g->OW + ow]]] += go[oh * g->OW + ow];
    }
    zero_rows(dx, &zeroed, g->H, g);
  }
}

// out is (B,C,OH,OW), inp is (B,C,H,W).
void avgpool2d_forward (float *out, const float *inp, const trl_pool_geom *g) {
  int HW = g->H * g->W, L = g->OH * g->OW;
  #pragma omp parallel for schedule(static) if (BIG(g))
  for (int64_t p = 0; p < PLANES(g); p++) {
    const float *x = inp + p * HW;
    float *o = out + p * L;
    for (int oh = 0; oh < g->OH; oh++)
      for (int ow = 0; ow < g->OW; ow++) {
        int h0, h1, w0, w1;
        window(g, oh, ow, &h0, &h1, &w0, &w1);
        float s = 0;
        for (int ih = h0; ih < h1; ih++)
          for (int iw = w0; iw < w1; iw++) s += x[ih * g->W + iw];
        o[oh * g->OW + ow] = s / (float)avg_count(g, oh, ow, h0, h1, w0, w1);
      }
  }
}

// dinp is (B,C,H,W), dout is (B,C,OH,OW).
void avgpool2d_backward (float *dinp, const float *dout, const trl_pool_geom *g) {
  int HW = g->H * g->W, L = g->OH * g->OW;
  #pragma omp parallel for schedule(static) if (BIG(g))
  for (int64_t p = 0; p < PLANES(g); p++) {
    const float *go = dout + p * L;
    float *dx = dinp + p * HW;
    for (int oh = 0; oh < g->OH; oh++)
      for (int ow = 0; ow < g->OW; ow++) {
        int h0, h1, w0, w1;
        window(g, oh, ow, &h0, &h1, &w0, &w1);
        float v = go[oh * g->OW + ow] / (float)avg_count(g, oh, ow, h0, h1, w0, w1);
        for (int ih = h0; ih < h1; ih++)
          for (int iw = w0; iw < w1; iw++) dx[ih * g->W + iw] += v;
      }
  }
}

// Naive references: visit every kernel tap and test it against the input and padded bounds.
// out/dout are (B,C,OH,OW), inp/dinp are (B,C,H,W); NULL skips that part.
static void ref_pool (float *out, float *dinp, const float *dout, const float *inp, int is_max,
                      const trl_pool_geom *g) {
  for (int64_t p = 0; p < PLANES(g); p++)
    for (int oh = 0; oh < g->OH; oh++)
      for (int ow = 0; ow < g->OW; ow++) {
        double s = 0, m = -INFINITY;
        int n_in = 0, n_pad = 0, best = -1;
        for (int i = 0; i < g->kh; i++)
          for (int j = 0; j < g->kw; j++) {
            int ih = oh * g->sh - g->ph + i, iw = ow * g->sw - g->pw + j;
            if (ih >= -g->ph && ih < g->H + g->ph && iw >= -g->pw && iw < g->W + g->pw) n_pad++;
            if (ih < 0 || ih >= g->H || iw < 0 || iw >= g->W) continue;
            int k = ih * g->W + iw;
            n_in++;
            if (inp) {
              double v = inp[p * g->H * g->W + k];
              s += v;
              if (v > m) m = v, best = k;
            }
          }
        int cnt = g->count_include_pad ? n_pad : n_in;
        size_t o = (size_t)p * g->OH * g->OW + oh * g->OW + ow;
        if (out) out[o] = (float)(is_max ? m : s / cnt);
        if (dinp && is_max) dinp[p * g->H * g->W + best] += dout[o];
        if (dinp && !is_max)
          for (int ih = oh * g->sh - g->ph; ih < oh * g->sh - g->ph + g->kh; ih++)
            for (int iw = ow * g->sw - g->pw; iw < ow * g->sw - g->pw + g->kw; iw++)
              if (ih >= 0 && ih < g->H && iw >= 0 && iw < g->W)
                dinp[p * g->H * g->W + ih * g->W + iw] += dout[o] / cnt;
      }
}

void maxpool2d_forward_ref (float *out, const float *inp, const trl_pool_geom *g) {
  ref_pool(out, NULL, NULL, inp, 1, g);
}

void maxpool2d_backward_ref (float *dinp, const float *dout, const float *inp,
                             const trl_pool_geom *g) {
  ref_pool(NULL, dinp, dout, inp, 1, g);
}

void avgpool2d_forward_ref (float *out, const float *inp, const trl_pool_geom *g) {
  ref_pool(out, NULL, NULL, inp, 0, g);
}

void avgpool2d_backward_ref (float *dinp, const float *dout, const trl_pool_geom *g) {
  ref_pool(NULL, dinp, dout, NULL, 0, g);
}

// out is (BC), inp is (BC,HW).
void global_avgpool2d_forward (float *out, const float *inp, int BC, int HW) {
  #pragma omp parallel for schedule(static) if ((int64_t)BC * HW > 65536)
  for (int p = 0; p < BC; p++) {
    const float *x = inp + (size_t)p * HW;
    float s = 0;
    for (int i = 0; i < HW; i++) s += x[i];
    out[p] = s / (float)HW;
  }
}

// dinp is (BC,HW), dout is (BC).
void global_avgpool2d_backward (float *dinp, const float *dout, int BC, int HW) {
  #pragma omp parallel for schedule(static) if ((int64_t)BC * HW > 65536)
  for (int p = 0; p < BC; p++) {
    float v = dout[p] / (float)HW, *dx = dinp + (size_t)p * HW;
    for (int i = 0; i < HW; i++) dx[i] += v;
  }
}

/* }================================================================== */

/* {==================================================================
** Builders and tape nodes
** =================================================================== */

// The payload is the geometry; a max node saves the contiguous x in saved[0].
static trl_status pool_bwd (trl_node *node, const trl_tensor *gout, trl_tensor **gin) {
  const trl_pool_geom *g = (const trl_pool_geom *)node->payload;
  if (!gin[0]) return TRL_OK;
  trl_tensor *gc = NULL;
  if (!trl_is_contiguous(gout)) TRL_TRY(trl_tensor_clone(&gc, gout, TRL_F32));
  const float *go = trl_f32(gc ? gc : gout);
  if (node->op == TRL_OP_MAXPOOL2D && node->saved[0]->dtype == TRL_U8)   // the taps
    maxpool2d_backward_arg(trl_f32(gin[0]), go, trl_data(node->saved[0]),
                           (int)(node->fresh & 1u), g);
  else if (node->op == TRL_OP_MAXPOOL2D && (node->fresh & 1u))   // the first gradient of x
    maxpool2d_backward_write(trl_f32(gin[0]), go, trl_f32(node->saved[0]), g);
  else if (node->op == TRL_OP_MAXPOOL2D)
    maxpool2d_backward(trl_f32(gin[0]), go, trl_f32(node->saved[0]), g);
  else if (node->op == TRL_OP_AVGPOOL2D)
    avgpool2d_backward(trl_f32(gin[0]), go, g);
  else
    global_avgpool2d_backward(trl_f32(gin[0]), go, g->B * g->C, g->H * g->W);
  trl_tensor_release(gc);
  return TRL_OK;
}

// Whether x's storage is saved by the node that made x (a ReLU keeps its output): keeping x
// then costs nothing more.
static int kept_by_producer (const trl_tensor *x) {
  if (!x->node) return 0;
  for (int i = 0; i < TRL_NODE_MAXSAVED; i++)
    if (x->node->saved[i] && x->node->saved[i]->storage == x->storage) return 1;
  return 0;
}

// A max pool that will be differentiated keeps, for each output, the tap of its maximum (one
// byte) instead of its input (16 bytes per output at ResNet's 3x3/2): after a hybridized
// ResNet's stem (BatchNorm and ReLU one op, which keeps its own input) the pool's input, 411 MB
// at batch 128, is then free once the forward has read it.
static trl_status pool_build (trl_tensor **out, trl_tensor *x, trl_op op, const trl_pool_geom *g) {
  trl_tensor *xc = NULL, *y = NULL, *arg = NULL;
  trl_status st;
  if ((st = trl_tensor_contiguous(&xc, x)) != TRL_OK) return st;
  int64_t shape[4] = { g->B, g->C, g->OH, g->OW };
  if ((st = trl_tensor_empty(&y, TRL_F32, 4, shape)) != TRL_OK) goto done;
  if (op == TRL_OP_MAXPOOL2D && g->kh * g->kw <= 256 && trl_tape_wants(1, &x) &&
      !(xc->storage == x->storage && kept_by_producer(x))) {
    if ((st = trl_tensor_empty(&arg, TRL_U8, 4, shape)) != TRL_OK) goto done;
    maxpool2d_forward_arg(trl_f32(y), trl_data(arg), trl_f32(xc), g);
  } else if (op == TRL_OP_MAXPOOL2D) maxpool2d_forward(trl_f32(y), trl_f32(xc), g);
  else if (op == TRL_OP_AVGPOOL2D) avgpool2d_forward(trl_f32(y), trl_f32(xc), g);
  else global_avgpool2d_forward(trl_f32(y), trl_f32(xc), g->B * g->C, g->H * g->W);
  trl_node *node;
  if ((st = trl_tape_record(&node, y, op, pool_bwd, 1, &x, sizeof *g)) != TRL_OK) goto done;
  if (node) {
    memcpy(node->payload, g, sizeof *g);
    if (op == TRL_OP_MAXPOOL2D) {
      trl_node_save(node, 0, arg ? arg : xc);
      node->overwrites = 1u;   // writes x's first gradient (maxpool2d_backward_write)
    }
    st = trl_node_drop_values(node, 1u);   // max reads the saved taps or x; average no values
  }
done:
  trl_tensor_release(arg);
  trl_tensor_release(xc);
  if (st != TRL_OK) trl_tensor_release(y);
  else *out = y;
  return st;
}

trl_status trl_maxpool2d (trl_tensor **out, trl_tensor *x, const trl_pool_params *p) {
  trl_pool_geom g;
  TRL_TRY(pool2d_check(&g, "maxpool2d", x, p));
  return pool_build(out, x, TRL_OP_MAXPOOL2D, &g);
}

trl_status trl_avgpool2d (trl_tensor **out, trl_tensor *x, const trl_pool_params *p) {
  trl_pool_geom g;
  TRL_TRY(pool2d_check(&g, "avgpool2d", x, p));
  return pool_build(out, x, TRL_OP_AVGPOOL2D, &g);
}

trl_status trl_global_avgpool2d (trl_tensor **out, trl_tensor *x) {
  char xs[TRL_SHAPELEN];
  if (x->dtype != TRL_F32)
    return trl_fail(TRL_ETYPE, "global_avgpool2d: expected a float32 x, got %s",
                    trl_dtype_name(x->dtype));
  if (x->ndim != 4 || x->shape[2] * x->shape[3] == 0 || x->shape[0] * x->shape[1] > INT32_MAX ||
      x->shape[2] * x->shape[3] > INT32_MAX)
    return trl_fail(TRL_ESHAPE, "global_avgpool2d: expected a 4-D x (N,C,H,W) with H*W > 0, "
                    "x is %s", trl_tensor_shape_str(xs, x));
  trl_pool_geom g = { .B = (int)x->shape[0], .C = (int)x->shape[1], .H = (int)x->shape[2],
                      .W = (int)x->shape[3], .OH = 1, .OW = 1 };
  return pool_build(out, x, TRL_OP_GLOBALAVGPOOL2D, &g);
}

/* }================================================================== */
