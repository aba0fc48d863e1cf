/*
** conv2d.c: 2-D convolution on NCHW float32 (stride, padding, dilation, groups, optional bias)
** and its backward. Per image and group: im2col + one GEMM threaded by OpenBLAS; a 1x1,
** stride-1, unpadded conv is a plain GEMM on the input, and a depthwise conv (one input
** channel per group) uses a direct kernel threaded by OpenMP. Not here: 3-D, NHWC.
*/
#include <string.h>

#include "mem.h"
#include "nn.h"
#include "tape.h"

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

size_t conv2d_workspace (const trl_conv_geom *g) {
  if (conv_kind(g) != GENERAL) return 0;
  return (size_t)(g->C / g->G) * g->KH * g->KW * g->OH * g->OW;
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

// col is (Cg*KH*KW, OH*OW), inp is (Cg,H,W): the channels of one group of one image.
// Serial on purpose: an OpenMP team spinning between the per-image GEMMs fights OpenBLAS's
// threads for the cores (measured 1.5-4x slower on 2 cores); the copy is cheap next to the GEMM.
static void im2col (float *col, const float *inp, int Cg, const trl_conv_geom *g) {
  int L = g->OH * g->OW, rows = Cg * g->KH * g->KW;
  for (int r = 0; r < rows; r++) {
    int kw = r % g->KW, kh = (r / g->KW) % g->KH, c = r / (g->KH * g->KW);
    const float *src = inp + (size_t)c * g->H * g->W;
    int off = kw * g->dw - g->pw, lo, hi;
    col_range(&lo, &hi, off, g->sw, g->W, g->OW);
    for (int oh = 0; oh < g->OH; oh++) {
      float *d = col + (size_t)r * L + (size_t)oh * g->OW;
      int ih = oh * g->sh - g->ph + kh * g->dh;
      if (ih < 0 || ih >= g->H) {
        memset(d, 0, sizeof(float) * g->OW);
        continue;
      }
      const float *s = src + (size_t)ih * g->W + off;
      for (int ow = 0; ow < lo; ow++) d[ow] = 0;
      if (g->sw == 1) memcpy(d + lo, s + lo, sizeof(float) * (hi - lo));
      else for (int ow = lo; ow < hi; ow++) d[ow] = s[ow * g->sw];
      for (int ow = hi; ow < g->OW; ow++) d[ow] = 0;
    }
  }
}

// dinp is (Cg,H,W), col is (Cg*KH*KW, OH*OW): adds every column entry back to its pixel.
static void col2im (float *dinp, const float *col, int Cg, const trl_conv_geom *g) {
  int L = g->OH * g->OW;
  for (int c = 0; c < Cg; c++) {   // serial, as im2col
    float *dst = dinp + (size_t)c * g->H * g->W;
    for (int kh = 0; kh < g->KH; kh++)
      for (int kw = 0; kw < g->KW; kw++) {
        const float *src = col + ((size_t)(c * g->KH + kh) * g->KW + kw) * L;
        int off = kw * g->dw - g->pw, lo, hi;
        col_range(&lo, &hi, off, g->sw, g->W, g->OW);
        for (int oh = 0; oh < g->OH; oh++) {
          int ih = oh * g->sh - g->ph + kh * g->dh;
          if (ih < 0 || ih >= g->H) continue;
          float *d = dst + (size_t)ih * g->W + off;
          const float *s = src + (size_t)oh * g->OW;
          for (int ow = lo; ow < hi; ow++) d[ow * g->sw] += s[ow];
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

// out is (B,OC,OH,OW), inp is (B,C,H,W), w is (OC,C/G,KH,KW), b is (OC) or NULL,
// ws holds conv2d_workspace(g) floats.
void conv2d_forward (float *out, const float *inp, const float *w, const float *b, float *ws,
                     const trl_conv_geom *g) {
  int kind = conv_kind(g);
  if (kind == DEPTHWISE) {
    depthwise_forward(out, inp, w, b, g);
    return;
  }
  int Cg = g->C / g->G, OCg = g->OC / g->G, K = Cg * g->KH * g->KW;
  int HW = g->H * g->W, L = g->OH * g->OW;
  for (int n = 0; n < g->B; n++)
    for (int grp = 0; grp < g->G; grp++) {
      const float *x = inp + ((size_t)n * g->C + (size_t)grp * Cg) * HW;
      float *o = out + ((size_t)n * g->OC + (size_t)grp * OCg) * L;
      const float *col = x;   // a pointwise conv reads the (Cg, H*W) input as its columns
      if (kind == GENERAL) {
        im2col(ws, x, Cg, g);
        col = ws;
      }
      if (b)   // start from the bias and let the GEMM add to it (beta = 1)
        for (int oc = 0; oc < OCg; oc++) {
          float bv = b[grp * OCg + oc], *orow = o + (size_t)oc * L;
          for (int i = 0; i < L; i++) orow[i] = bv;
        }
      // o (OCg, L) = w_grp (OCg, K) x col (K, L)
      trl_sgemm(0, 0, OCg, L, K, 1.0f, w + (size_t)grp * OCg * K, K, col, L, b ? 1.0f : 0.0f, o, L);
    }
}

// dinp is (B,C,H,W), dw is (OC,C/G,KH,KW), db is (OC), each may be NULL; dout is (B,OC,OH,OW);
// inp, w and ws as in conv2d_forward.
void conv2d_backward (float *dinp, float *dw, float *db, const float *dout, const float *inp,
                      const float *w, float *ws, const trl_conv_geom *g) {
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
  int kind = conv_kind(g);
  if (kind == DEPTHWISE) {
    depthwise_backward(dinp, dw, dout, inp, w, g);
    return;
  }
  int Cg = g->C / g->G, OCg = g->OC / g->G, K = Cg * g->KH * g->KW, HW = g->H * g->W;
  for (int n = 0; n < g->B; n++)
    for (int grp = 0; grp < g->G; grp++) {
      const float *x = inp + ((size_t)n * g->C + (size_t)grp * Cg) * HW;
      const float *go = dout + ((size_t)n * g->OC + (size_t)grp * OCg) * L;
      const float *wg = w + (size_t)grp * OCg * K;
      float *dx = dinp ? dinp + ((size_t)n * g->C + (size_t)grp * Cg) * HW : NULL;
      if (kind == POINTWISE) {
        // dw_grp (OCg, Cg) += go (OCg, L) x x^T (L, Cg); dx (Cg, L) += w_grp^T x go
        if (dw) trl_sgemm(0, 1, OCg, Cg, L, 1.0f, go, L, x, L, 1.0f, dw + (size_t)grp * OCg * K, K);
        if (dx) trl_sgemm(1, 0, Cg, L, OCg, 1.0f, wg, K, go, L, 1.0f, dx, L);
        continue;
      }
      if (dw) {
        im2col(ws, x, Cg, g);
        trl_sgemm(0, 1, OCg, K, L, 1.0f, go, L, ws, L, 1.0f, dw + (size_t)grp * OCg * K, K);
      }
      if (dx) {   // the same scratch now holds dcol (K, L) = w_grp^T x go
        trl_sgemm(1, 0, K, L, OCg, 1.0f, wg, K, go, L, 0.0f, ws, L);
        col2im(dx, ws, Cg, g);
      }
    }
}

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

// saved[0] is the contiguous x, saved[1] the contiguous weight; the payload is the geometry.
static trl_status conv2d_bwd (trl_node *node, const trl_tensor *gout, trl_tensor **gin) {
  const trl_conv_geom *g = (const trl_conv_geom *)node->payload;
  trl_tensor *gc = NULL;
  trl_status st = TRL_OK;
  if (!trl_is_contiguous(gout)) TRL_TRY(trl_tensor_clone(&gc, gout, TRL_F32));
  size_t wsn = gin[0] || gin[1] ? conv2d_workspace(g) : 0;
  float *ws = wsn ? trl_alloc(wsn * sizeof(float)) : NULL;
  if (wsn && !ws) {
    st = trl_fail(TRL_ENOMEM, "conv2d: out of memory for %zu bytes of backward scratch",
                  wsn * sizeof(float));
    goto done;
  }
  conv2d_backward(gin[0] ? trl_f32(gin[0]) : NULL, gin[1] ? trl_f32(gin[1]) : NULL,
                  gin[2] ? trl_f32(gin[2]) : NULL, trl_f32(gc ? gc : gout),
                  trl_f32(node->saved[0]), trl_f32(node->saved[1]), ws, g);
done:
  trl_free(ws, wsn * sizeof(float));
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
  if (wsn && !(ws = trl_alloc(wsn * sizeof(float)))) {
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
    trl_node_save(node, 0, xc);
    trl_node_save(node, 1, wc);
  }
done:
  trl_free(ws, wsn * sizeof(float));
  trl_tensor_release(xc);
  trl_tensor_release(wc);
  trl_tensor_release(bc);
  if (st != TRL_OK) trl_tensor_release(y);
  else *out = y;
  return st;
}

/* }================================================================== */
