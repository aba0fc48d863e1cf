/*
** bottleneck.c: MobileNetV2's LinearBottleneck in inference as one op: 1x1 expand + BN +
** clamp, 3x3 depthwise + BN + clamp, 1x1 project + BN, plus the input where the block has a
** shortcut.
**
** Run layer by layer at batch 32, the block writes its expanded tensor (6x the input's
** channels: 154 MB at 112x112x96) to memory and reads it back twice, and the depthwise
** output once more. Here each thread takes an image at a time and walks down it in bands of
** output rows: the band's expanded rows go to a buffer sized to stay in cache, the depthwise
** conv reads them there, and the projection writes the block's output rows, so only x and
** y cross the memory bus. Consecutive bands share one (stride 2) or two (stride 1) expanded
** rows: they are moved to the top of the buffer, not computed again.
** Each step is the kernel the unfused layers run (trl_gemm_packed with the folded BN as its
** epilogue, conv2d's depthwise plane), on the same data in the same order: the output has
** the same bits as the layers run one by one (test_nn_ops checks that they differ by 0).
*/
#include <omp.h>
#include <string.h>

#include "conv_internal.h"
#include "gemm.h"
#include "mem.h"
#include "nn.h"
#include "ops.h"
#include "tape.h"

// Floats of expanded rows each thread keeps in its band buffer at most: 4 MB, so that both
// threads' bands and depthwise outputs stay in a 32 MB L3. At batch 32 that is a whole image
// for every MobileNetV2 block but the 96-channel 112x112 one (two bands). Bands sized for a
// 512 KB L2 (48K floats) measured slower: 80-86 img/s against 97-119 (bench/NOTES.md 56).
#define BAND_FLOATS (1024 * 1024)

static size_t band_floats = BAND_FLOATS;

void trl_bottleneck_band (size_t floats) { band_floats = floats ? floats : BAND_FLOATS; }

typedef struct {
  int B, C, H, W, E, OC, OH, OW, s, R, residual;
  const float *x, *a1, *w2, *a3;   // a1, a3: the packed 1x1 weights (trl_gemm_pack)
  float *y;
  trl_epilogue e[3];
  size_t cs, dn, pn;   // floats: a channel of the band buffer, the depthwise band, the plane
} bneck;

static int imin (int a, int b) { return a < b ? a : b; }
static int imax (int a, int b) { return a > b ? a : b; }

// Units [u0, u1) of (image, band) pairs, band-major within an image; buf holds k->cs * E +
// k->dn + k->pn floats.
static void run_units (const bneck *k, int64_t u0, int64_t u1, float *buf) {
  int nb = (k->OH + k->R - 1) / k->R, s = k->s, W = k->W;
  float *Eb = buf, *D = Eb + k->cs * k->E, *P = D + k->dn;
  int64_t prev = -1;   // the unit whose rows [plo, phi] are in Eb
  int plo = 0, phi = -1;
  trl_conv_geom g = { 0 };
  g.B = g.C = g.OC = g.G = 1, g.KH = g.KW = 3, g.dh = g.dw = 1, g.sh = g.sw = s;
  g.W = W, g.OW = k->OW, g.pw = 1;
  for (int64_t u = u0; u < u1; u++) {
    int n = (int)(u / nb), oh0 = (int)(u % nb) * k->R, r = imin(k->R, k->OH - oh0);
    int lo = imax(0, oh0 * s - 1), hi = imin(k->H - 1, (oh0 + r - 1) * s + 1);
    int keep = prev == u - 1 && u % nb != 0 ? phi - lo + 1 : 0;
    const float *xn = k->x + (size_t)n * k->C * k->H * W;
    if (keep > 0)
      for (int c = 0; c < k->E; c++)
        memmove(Eb + c * k->cs, Eb + c * k->cs + (size_t)(lo - plo) * W,
                sizeof(float) * keep * W);
    else keep = 0;
    // expanded rows [lo + keep, hi] of all E channels, channel c at Eb + c * cs
    trl_gemm_packed(k->E, (hi - lo + 1 - keep) * W, k->C, k->a1, xn + (size_t)(lo + keep) * W,
                    k->H * W, Eb + (size_t)keep * W, (int)k->cs, NULL, &k->e[0], 0);
    // the band as a plane of its own: rows above the image are padding only in the first band
    g.H = hi - lo + 1, g.OH = r, g.ph = lo - (oh0 * s - 1);
    for (int c = 0; c < k->E; c++)
      dw3_plane(D + (size_t)c * r * k->OW, Eb + c * k->cs, k->w2 + 9 * c, &k->e[1], c, P, &g);
    float *yb = k->y + ((size_t)n * k->OC * k->OH + oh0) * k->OW;
    int L = r * k->OW;
    trl_gemm_packed(k->OC, L, k->E, k->a3, D, L, yb, k->OH * k->OW, NULL, &k->e[2], 0);
    if (k->residual)   // stride 1, OC = C: output rows are input rows
      for (int c = 0; c < k->OC; c++) {
        float *yr = yb + (size_t)c * k->OH * k->OW;
        const float *xr = xn + (size_t)c * k->H * W + (size_t)oh0 * W;
        for (int i = 0; i < L; i++) yr[i] += xr[i];
      }
    prev = u, plo = lo, phi = hi;
  }
}

static trl_status check_w (const trl_tensor *w, int64_t oc, int64_t c, int kh, const char *what,
                           const trl_tensor *x) {
  char ws[TRL_SHAPELEN], xs[TRL_SHAPELEN];
  if (w->dtype != TRL_F32 || w->ndim != 4 || w->shape[0] != oc || w->shape[1] != c ||
      w->shape[2] != kh || w->shape[3] != kh)
    return trl_fail(TRL_ESHAPE, "bottleneck: the %s weight must be float32 (%lld,%lld,%d,%d) "
                    "for x %s, got %s (%s)", what, (long long)oc, (long long)c, kh, kh,
                    trl_tensor_shape_str(xs, x), trl_tensor_shape_str(ws, w),
                    trl_dtype_name(w->dtype));
  return TRL_OK;
}

trl_status trl_bottleneck (trl_tensor **out, trl_tensor *x, const trl_bneck_stage st[3],
                           int stride, int residual) {
  char xs[TRL_SHAPELEN];
  if (x->dtype != TRL_F32 || x->ndim != 4)
    return trl_fail(TRL_ESHAPE, "bottleneck: expected a float32 x of (N,C,H,W), x is %s (%s)",
                    trl_tensor_shape_str(xs, x), trl_dtype_name(x->dtype));
  int64_t E = st[0].w->ndim == 4 ? st[0].w->shape[0] : -1, C = x->shape[1];
  int64_t OC = st[2].w->ndim == 4 ? st[2].w->shape[0] : -1;
  TRL_TRY(check_w(st[0].w, E, C, 1, "expand", x));
  TRL_TRY(check_w(st[1].w, E, 1, 3, "depthwise", x));
  TRL_TRY(check_w(st[2].w, OC, E, 1, "project", x));
  if (stride != 1 && stride != 2)
    return trl_fail(TRL_EARG, "bottleneck: stride must be 1 or 2, got %d", stride);
  if (residual && (stride != 1 || OC != C))
    return trl_fail(TRL_EARG, "bottleneck: a shortcut needs stride 1 and %lld output channels "
                    "(x %s), got stride %d and %lld", (long long)C, trl_tensor_shape_str(xs, x),
                    stride, (long long)OC);
  if (x->shape[0] > INT32_MAX || C * x->shape[2] * x->shape[3] > INT32_MAX || E > INT32_MAX)
    return trl_fail(TRL_ESHAPE, "bottleneck: x is too large, %s", trl_tensor_shape_str(xs, x));
  if (C < 1 || x->shape[2] < 1 || x->shape[3] < 1 || E < 1 || OC < 1)
    return trl_fail(TRL_ESHAPE, "bottleneck: empty maps or channels: x %s, %lld expanded and "
                    "%lld output channels", trl_tensor_shape_str(xs, x), (long long)E,
                    (long long)OC);
  trl_tensor *in[4] = { x, st[0].w, st[1].w, st[2].w };
  if (trl_tape_wants(4, in))
    return trl_fail(TRL_EARG, "bottleneck: inference only, but autograd is recording x %s",
                    trl_tensor_shape_str(xs, x));
  for (int i = 0; i < 3; i++)
    if (!(st[i].lo <= st[i].hi))
      return trl_fail(TRL_EARG, "bottleneck: clamp bounds %g > %g", st[i].lo, st[i].hi);

  bneck k = { 0 };
  k.B = (int)x->shape[0], k.C = (int)C, k.H = (int)x->shape[2], k.W = (int)x->shape[3];
  k.E = (int)E, k.OC = (int)OC, k.s = stride, k.residual = residual;
  k.OH = (k.H - 1) / stride + 1, k.OW = (k.W - 1) / stride + 1;
  // the largest band of output rows whose expanded rows fit band_floats (one row at least)
  k.R = 1;
  while (k.R < k.OH && (size_t)k.E * ((k.R * stride + 3) * k.W) <= band_floats) k.R++;
  // fewer than two images per thread, not a multiple of the threads (batch 1): nt bands an
  // image, so that every thread gets as many (B = 2 measured faster as one image a thread)
  int nt = trl_get_num_threads();
  if (nt > 1 && k.B < 2 * nt && k.B % nt != 0 && k.R > (k.OH + nt - 1) / nt)
    k.R = (k.OH + nt - 1) / nt;
  k.cs = (size_t)((k.R - 1) * stride + 3) * k.W;
  k.dn = (size_t)k.E * k.R * k.OW;
  trl_conv_geom pg = { 0 };
  pg.H = (k.R - 1) * stride + 3, pg.W = k.W, pg.OH = k.R, pg.OW = k.OW, pg.sh = pg.sw = stride;
  k.pn = dw3_plane_floats(&pg);

  int64_t nb = (k.OH + k.R - 1) / k.R, units = (int64_t)k.B * nb;
  if (nt > units) nt = (int)units;
  if (nt < 1) nt = 1;
  size_t per = k.cs * k.E + k.dn + k.pn + 16, fold = (size_t)(2 * E + 2 * E + 2 * OC);
  size_t a1n = trl_gemm_packed_size(k.E, k.C), a3n = trl_gemm_packed_size(k.OC, k.E);
  size_t total = per * nt + fold + a1n + a3n;
  float *ws = trl_alloc(total * sizeof(float));
  if (!ws) return trl_fail(TRL_ENOMEM, "bottleneck: out of memory for %zu bytes of scratch (x %s)",
                           total * sizeof(float), trl_tensor_shape_str(xs, x));
  float *sc = ws + per * nt, *a1 = sc + fold, *a3 = a1 + a1n;
  trl_tensor *xc = NULL, *y = NULL, *wc[3] = { NULL, NULL, NULL };
  trl_status st_ = TRL_OK;
  const char *names[3] = { "bottleneck (expand)", "bottleneck (depthwise)",
                           "bottleneck (project)" };
  float *scp = sc;
  for (int i = 0; i < 3 && st_ == TRL_OK; i++) {
    int64_t n = i == 2 ? OC : E;
    st_ = trl_bn_fold(scp, scp + n, st[i].bn, st[i].b, n, names[i]);
    k.e[i] = (trl_epilogue){ scp, scp + n, st[i].lo, st[i].hi };
    scp += 2 * n;
  }
  for (int i = 0; i < 3 && st_ == TRL_OK; i++) st_ = trl_tensor_contiguous(&wc[i], st[i].w);
  if (st_ == TRL_OK) st_ = trl_tensor_contiguous(&xc, x);
  int64_t shape[4] = { k.B, OC, k.OH, k.OW };
  if (st_ == TRL_OK) st_ = trl_tensor_empty(&y, TRL_F32, 4, shape);
  const float *ap[2] = { a1, a3 };   // the packed 1x1 weights: from the stages' packs or here
  for (int i = 0; i < 2 && st_ == TRL_OK; i++) {
    const trl_bneck_stage *q = &st[2 * i];
    trl_conv_geom pw = { 0 };
    pw.OC = i ? k.OC : k.E, pw.C = i ? k.E : k.C, pw.KH = pw.KW = 1, pw.G = 1;
    if (!q->pack) trl_gemm_pack(i ? a3 : a1, trl_f32(wc[2 * i]), pw.C, pw.OC, pw.C);
    else if (!(ap[i] = conv_pack_get(q->pack, q->w, wc[2 * i], CONV_FORM_GEMM, &pw)))
      st_ = trl_fail(TRL_ENOMEM, "%s: out of memory prepacking weight %s", names[2 * i],
                     trl_tensor_shape_str(xs, q->w));
  }
  if (st_ == TRL_OK) {
    k.x = trl_f32(xc), k.y = trl_f32(y), k.a1 = ap[0], k.a3 = ap[1], k.w2 = trl_f32(wc[1]);
    int prev = trl_blas_threads(1);
    if (nt == 1) run_units(&k, 0, units, ws);
    else {
      // whole images handed out as threads free up when there are enough of them (a core
      // shared with another process does not stall the rest), else an even split of bands
      int by_image = k.B >= 2 * nt;
      #pragma omp parallel num_threads(nt)
      {
        int t = omp_get_thread_num();
        float *buf = ws + per * t;
        if (by_image) {
          #pragma omp for schedule(dynamic, 1)
          for (int n = 0; n < k.B; n++) run_units(&k, n * nb, (n + 1) * nb, buf);
        } else run_units(&k, units * t / nt, units * (t + 1) / nt, buf);
      }
    }
    trl_blas_threads(prev);
  }
  trl_free(ws, total * sizeof(float));
  for (int i = 0; i < 3; i++) trl_tensor_release(wc[i]);
  trl_tensor_release(xc);
  if (st_ != TRL_OK) trl_tensor_release(y);
  else *out = y;
  return st_;
}
