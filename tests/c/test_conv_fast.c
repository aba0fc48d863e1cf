/*
** test_conv_fast.c: the fast conv2d paths against the naive '_ref' kernels: the batch split
** over threads (1 and 2 threads, chunks of several images per GEMM for small maps, private
** weight gradients summed at the end), pointwise and grouped convs, and Winograd F(2x2,3x3)
** and F(4x4,3x3) for 3x3 stride-1 convs (forward and data gradient), also against the im2col
** path (TRL_CONV_WINOGRAD=0); repeated runs must give the same bits. Bounds: normwise relative
** error (max|a-b| / max|b|) below 1e-4 for im2col + GEMM (float sums of up to a few thousand
** terms), below 2e-5 for F(2x2,3x3), whose transforms add a few roundings per term (measured
** about 1e-6 on U(-1,1) data), and below 5e-5 for F(4x4,3x3), whose transforms have entries
** up to 8 and 1/24 (measured about 1e-5). With F(4x4,3x3) the weight gradient runs through
** Winograd too (36 GEMMs summing over tiles); it keeps the 1e-4 bound of im2col + GEMM.
*/
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "floatbuf.h"
#include "gemm.h"
#include "nn.h"
#include "ops/conv_internal.h"
#include "ops/conv_winograd.h"

static int passed, failed;
static double worst_dw;   // the worst weight-gradient error of the Winograd cases
static int want_variant;  // the Winograd variant the "winograd" cases must run

#define CHECK(cond, ...) do { \
    if (cond) passed++; \
    else { failed++; printf("%s:%d: FAIL %s: ", __FILE__, __LINE__, #cond); \
           printf(__VA_ARGS__); printf("\n"); } \
  } while (0)


static trl_conv_geom geom (int B, int C, int H, int W, int OC, int K, int s, int p, int G) {
  trl_conv_geom g = { .B = B, .C = C, .H = H, .W = W, .OC = OC, .KH = K, .KW = K, .sh = s,
                      .sw = s, .ph = p, .pw = p, .dh = 1, .dw = 1, .G = G };
  g.OH = (H + 2 * p - K) / s + 1;
  g.OW = (W + 2 * p - K) / s + 1;
  return g;
}

// A workspace of conv2d_workspace(g) floats full of NaNs, so that a kernel reading a float it
// did not write first shows in its results; malloc's, so not 64-byte aligned.
static float *nan_ws (const trl_conv_geom *g) {
  size_t n = conv2d_workspace(g) + 1;
  float *ws = malloc(sizeof(float) * n);
  for (size_t i = 0; i < n; i++) ws[i] = NAN;
  return ws;
}

// Fast forward and accumulating backward against the references; returns the worst error.
static double conv_case (trl_conv_geom g, int bias, double bound, const char *what) {
  int64_t nx = (int64_t)g.B * g.C * g.H * g.W, nw = (int64_t)g.OC * (g.C / g.G) * g.KH * g.KW;
  int64_t ny = (int64_t)g.B * g.OC * g.OH * g.OW;
  float *x = frand(nx), *w = frand(nw), *b = bias ? frand(g.OC) : NULL, *r = frand(ny);
  float *y = frand(ny), *yr = frand(ny);
  float *ws = nan_ws(&g);
  conv2d_forward(y, x, w, b, ws, &g);
  conv2d_forward_ref(yr, x, w, b, &g);
  double worst = reldiff(y, yr, ny), d;
  char name[200];
  snprintf(name, sizeof name, "%s: B%d C%d %dx%d OC%d k%d s%d p%d G%d%s threads %d", what, g.B,
           g.C, g.H, g.W, g.OC, g.KH, g.sh, g.ph, g.G, bias ? " bias" : "", trl_get_num_threads());
  CHECK(worst < bound, "%s: forward differs from ref by %.3g", name, worst);
  if (strncmp(what, "winograd", 8) == 0)
    CHECK(winograd_variant(&g, 0) == want_variant, "%s: expected Winograd F(%dx%d,3x3), got %d",
          name, want_variant, want_variant, winograd_variant(&g, 0));
  float *dx0 = frand(nx), *dw0 = frand(nw), *db0 = frand(g.OC);
  float *dx = fcopy(dx0, nx), *dw = fcopy(dw0, nw), *db = fcopy(db0, g.OC);
  conv2d_backward(dx, dw, bias ? db : NULL, r, x, w, ws, &g);
  conv2d_backward_ref(dx0, dw0, bias ? db0 : NULL, r, x, w, &g);
  CHECK((d = reldiff(dx, dx0, nx)) < bound, "%s: dx differs from ref by %.3g", name, d);
  worst = fmax(worst, d);
  CHECK((d = reldiff(dw, dw0, nw)) < 1e-4, "%s: dw differs from ref by %.3g", name, d);
  if (strncmp(what, "winograd", 8) == 0) worst_dw = fmax(worst_dw, d);
  CHECK((d = reldiff(db, db0, g.OC)) < 1e-4, "%s: db differs from ref by %.3g", name, d);
  // run to run the same bits: training that resumes from a checkpoint must match an unbroken run
  float *dx2 = fcopy(dx, nx), *dw2 = fcopy(dw, nw), *dx3 = fcopy(dx, nx), *dw3 = fcopy(dw, nw);
  for (int k = 0; k < 3; k++) conv2d_backward(dx2, dw2, NULL, r, x, w, ws, &g);
  for (int k = 0; k < 3; k++) conv2d_backward(dx3, dw3, NULL, r, x, w, ws, &g);
  CHECK(memcmp(dx2, dx3, sizeof(float) * nx) == 0 && memcmp(dw2, dw3, sizeof(float) * nw) == 0,
        "%s: backward is not deterministic", name);
  free(dx2), free(dw2), free(dx3), free(dw3);
  // only one gradient asked for: the others stay untouched
  float *dx1 = fcopy(dx, nx);
  conv2d_backward(NULL, dw, NULL, r, x, w, ws, &g);
  CHECK(memcmp(dx1, dx, sizeof(float) * nx) == 0, "%s: dx changed", name);
  free(x), free(w), free(b), free(r), free(y), free(yr), free(ws);
  free(dx0), free(dw0), free(db0), free(dx), free(dw), free(db), free(dx1);
  return worst;
}

// The epilogue fused into the conv (BN scale/shift, then a clamp) gives the same bits as the
// conv followed by trl_epilogue_planes.
static void epilogue_case (trl_conv_geom g) {
  int64_t nx = (int64_t)g.B * g.C * g.H * g.W, nw = (int64_t)g.OC * g.C * g.KH * g.KW;
  int64_t ny = (int64_t)g.B * g.OC * g.OH * g.OW;
  float *x = frand(nx), *w = frand(nw), *sc = frand(2 * g.OC), *y = frand(ny), *y2 = frand(ny);
  float *ws = nan_ws(&g);
  trl_epilogue e = { sc, sc + g.OC, 0.0f, 0.25f };
  conv2d_forward_epi(y, x, w, &e, ws, &g);
  conv2d_forward(y2, x, w, NULL, ws, &g);
  trl_epilogue_planes(y2, y2, &e, g.B, g.OC, (int64_t)g.OH * g.OW);
  CHECK(memcmp(y, y2, sizeof(float) * ny) == 0, "winograd %s: fused epilogue differs from conv + epilogue",
        getenv("TRL_CONV_WINOGRAD"));
  free(x), free(w), free(sc), free(y), free(y2), free(ws);
}

// A float32 tensor holding n floats of src.
static trl_tensor *tensor_of (const float *src, int ndim, const int64_t *shape) {
  trl_tensor *t = NULL;
  if (trl_tensor_from_bytes(&t, TRL_F32, ndim, shape, src) != TRL_OK) abort();
  return t;
}

// The reference for conv2d_bn_act with a bias, no BatchNorm and the clamp [lo, hi]; returns
// the largest |output| before the clamp, the scale errors are relative to (the clamp caps
// the outputs, not the rounding errors of the sums).
static double clamp_ref (float *yr, const float *x, const float *w, const float *b, float lo,
                         float hi, const trl_conv_geom *g) {
  conv2d_forward_ref(yr, x, w, b, g);
  int64_t ny = (int64_t)g->B * g->OC * g->OH * g->OW;
  double m = 1e-30;
  for (int64_t i = 0; i < ny; i++) m = fmax(m, fabs(yr[i])), yr[i] = fminf(fmaxf(yr[i], lo), hi);
  return m;
}

// max |a - b| / scale
static double diff_over (const trl_tensor *a, const float *b, int64_t n, double scale) {
  const float *p = trl_f32(a);
  double d = 0;
  for (int64_t i = 0; i < n; i++) d = fmax(d, fabs((double)p[i] - b[i]));
  return d / scale;
}

// conv2d_bn_act with a conv pack: right (against the reference, within the bound of the form
// it runs), built once and then reused with the same bits, rebuilt after every write to the
// weight (trl_fill, trl_copy_into), for another weight, and for a weight seen through a view.
static void pack_case (trl_conv_geom g, int form) {
  if (form == CONV_FORM_WINO4 && !wino4_cpu()) form = CONV_FORM_NONE;   // F(2x2): no pack
  int want_builds = form != CONV_FORM_NONE;
  int64_t xs[4] = { g.B, g.C, g.H, g.W }, wsh[4] = { g.OC, g.C / g.G, g.KH, g.KW };
  int64_t bs[1] = { g.OC }, nx = xs[0] * xs[1] * xs[2] * xs[3];
  int64_t nw = wsh[0] * wsh[1] * wsh[2] * wsh[3], ny = (int64_t)g.B * g.OC * g.OH * g.OW;
  float *xf = frand(nx), *wf = frand(nw), *bf = frand(g.OC), *yr = frand(ny);
  trl_tensor *x = tensor_of(xf, 4, xs), *w = tensor_of(wf, 4, wsh), *b = tensor_of(bf, 1, bs);
  trl_tensor *y[2] = { NULL, NULL }, *y0 = NULL;
  trl_conv_params p = trl_conv_defaults();
  p.stride[0] = g.sh, p.stride[1] = g.sw, p.pad[0] = g.ph, p.pad[1] = g.pw, p.groups = g.G;
  float lo = -0.5f, hi = 2.0f;
  int wino = form == CONV_FORM_WINO4;
  double bound = wino ? 5e-5 : 1e-4, d;
  char name[160];
  snprintf(name, sizeof name, "pack B%d C%d %dx%d OC%d k%d s%d p%d G%d (%s), %d threads", g.B,
           g.C, g.H, g.W, g.OC, g.KH, g.sh, g.ph, g.G, wino ? "F(4x4)" : want_builds ? "GEMM" :
           "none", trl_get_num_threads());
  CHECK(conv_weight_form(&g, 1) == form, "%s: runs form %d", name, conv_weight_form(&g, 1));
  trl_conv_pack *pk = trl_conv_pack_new();
  double sc = clamp_ref(yr, xf, wf, bf, lo, hi, &g);
  for (int k = 0; k < 2; k++)
    CHECK(trl_conv2d_bn_act(&y[k], x, w, b, NULL, lo, hi, &p, pk) == TRL_OK, "%s: %s", name,
          trl_errmsg());
  CHECK(trl_conv2d_bn_act(&y0, x, w, b, NULL, lo, hi, &p, NULL) == TRL_OK, "%s", trl_errmsg());
  CHECK(trl_conv_pack_builds(pk) == want_builds, "%s: built %ld times, expected %d", name,
        trl_conv_pack_builds(pk), want_builds);
  CHECK((trl_conv_pack_bytes(pk) > 0) == (want_builds > 0), "%s: holds %zu bytes", name,
        trl_conv_pack_bytes(pk));
  CHECK((d = diff_over(y[0], yr, ny, sc)) < bound, "%s: differs from ref by %.3g", name, d);
  CHECK(memcmp(trl_f32(y[0]), trl_f32(y[1]), sizeof(float) * ny) == 0,
        "%s: the second call (pack reused) differs from the first", name);
  if (!wino)   // the same kernels with the weight packed per call
    CHECK(memcmp(trl_f32(y[0]), trl_f32(y0), sizeof(float) * ny) == 0,
          "%s: differs from the call without a pack", name);
  trl_tensor_release(y[0]), trl_tensor_release(y[1]), y[0] = y[1] = NULL;
  // writes through the tensor API move the stamp: the next call rebuilds
  trl_fill(w, 0.25);
  for (int64_t i = 0; i < nw; i++) wf[i] = 0.25f;
  sc = clamp_ref(yr, xf, wf, bf, lo, hi, &g);
  CHECK(trl_conv2d_bn_act(&y[0], x, w, b, NULL, lo, hi, &p, pk) == TRL_OK, "%s", trl_errmsg());
  CHECK((d = diff_over(y[0], yr, ny, sc)) < bound, "%s after trl_fill: differs by %.3g",
        name, d);
  float *wf2 = frand(nw);
  trl_tensor *w2 = tensor_of(wf2, 4, wsh);
  CHECK(trl_copy_into(w, w2) == TRL_OK, "%s", trl_errmsg());
  sc = clamp_ref(yr, xf, wf2, bf, lo, hi, &g);
  CHECK(trl_conv2d_bn_act(&y[1], x, w, b, NULL, lo, hi, &p, pk) == TRL_OK, "%s", trl_errmsg());
  CHECK((d = diff_over(y[1], yr, ny, sc)) < bound, "%s after trl_copy_into: differs by %.3g",
        name, d);
  CHECK(trl_conv_pack_builds(pk) == 3 * want_builds, "%s: %ld builds after two writes", name,
        trl_conv_pack_builds(pk));
  trl_tensor_release(y[0]), trl_tensor_release(y[1]), y[0] = y[1] = NULL;
  // another weight (same shape, its own storage) through the same pack
  for (int64_t i = 0; i < nw; i++) wf2[i] = -wf2[i];
  trl_tensor *w3 = tensor_of(wf2, 4, wsh);
  sc = clamp_ref(yr, xf, wf2, bf, lo, hi, &g);
  CHECK(trl_conv2d_bn_act(&y[0], x, w3, b, NULL, lo, hi, &p, pk) == TRL_OK, "%s", trl_errmsg());
  CHECK((d = diff_over(y[0], yr, ny, sc)) < bound, "%s, another weight: differs by %.3g",
        name, d);
  // a view that is not contiguous: copied per call, packed once
  int64_t ts[4] = { wsh[1], wsh[0], wsh[2], wsh[3] };
  trl_tensor *wt = NULL, *wv = NULL;
  int perm[4] = { 1, 0, 2, 3 };
  if (trl_tensor_empty(&wt, TRL_F32, 4, ts) != TRL_OK || trl_view_permute(&wv, wt, perm) != TRL_OK)
    abort();
  CHECK(trl_copy_into(wv, w3) == TRL_OK, "%s", trl_errmsg());
  long before = trl_conv_pack_builds(pk);
  for (int k = 0; k < 2; k++) {
    trl_tensor_release(y[1]), y[1] = NULL;
    CHECK(trl_conv2d_bn_act(&y[1], x, wv, b, NULL, lo, hi, &p, pk) == TRL_OK, "%s", trl_errmsg());
  }
  CHECK(trl_conv_pack_builds(pk) == before + want_builds, "%s: a view built %ld times", name,
        trl_conv_pack_builds(pk) - before);
  CHECK(memcmp(trl_f32(y[0]), trl_f32(y[1]), sizeof(float) * ny) == 0,
        "%s: a permuted view of the same weight differs", name);
  // two halves of one storage (the same stamp, other offsets) through the same pack
  int64_t hs[4] = { 2 * wsh[0], wsh[1], wsh[2], wsh[3] };
  float *hf = frand(2 * nw);
  trl_tensor *wh = tensor_of(hf, 4, hs);
  for (int k = 0; k < 2; k++) {
    trl_tensor *half = NULL, *yh = NULL;
    if (trl_view_narrow(&half, wh, 0, k * wsh[0], wsh[0]) != TRL_OK) abort();
    sc = clamp_ref(yr, xf, hf + k * nw, bf, lo, hi, &g);
    CHECK(trl_conv2d_bn_act(&yh, x, half, b, NULL, lo, hi, &p, pk) == TRL_OK, "%s", trl_errmsg());
    CHECK(yh && (d = diff_over(yh, yr, ny, sc)) < bound, "%s, half %d of a storage: differs",
          name, k + 1);
    trl_tensor_release(yh), trl_tensor_release(half);
  }
  trl_tensor_release(wh);
  free(hf);
  // the GEMM's panel height is part of the layout: a CPU switch rebuilds
  if (trl_cpu_avx512() && want_builds) {
    trl_cpu_no_avx512(1);
    before = trl_conv_pack_builds(pk);
    trl_tensor *y3 = NULL;
    CHECK(trl_conv2d_bn_act(&y3, x, wv, b, NULL, lo, hi, &p, pk) == TRL_OK, "%s", trl_errmsg());
    CHECK(y3 && diff_over(y3, yr, ny, sc) < bound, "%s: after TRL_NO_AVX512, differs", name);
    CHECK(trl_conv_pack_builds(pk) == before + 1, "%s: not rebuilt for the AVX2 kernels", name);
    trl_tensor_release(y3);
    trl_cpu_no_avx512(0);
  }
  trl_conv_pack_clear(pk);
  CHECK(trl_conv_pack_bytes(pk) == 0, "%s: clear left %zu bytes", name, trl_conv_pack_bytes(pk));
  trl_conv_pack_free(pk);
  trl_tensor *all[9] = { x, w, b, y[0], y[1], y0, w2, w3, wt };
  for (int i = 0; i < 9; i++) trl_tensor_release(all[i]);
  trl_tensor_release(wv);
  free(xf), free(wf), free(bf), free(yr), free(wf2);
}

int main (void) {
  // every case with the AVX-512 kernels where the CPU has them, then with the AVX2 ones
  int isas = trl_cpu_avx512() ? 2 : 1;
  if (isas == 1) printf("no AVX-512 on this CPU: the AVX2 (or portable) kernels only\n");
  for (int run = 0; run < 2 * isas; run++) {
    int nt = run % 2 + 1;
    trl_cpu_no_avx512(run >= 2);
    if (run == 2) printf("again with TRL_NO_AVX512 (the AVX2 kernels):\n");
    trl_set_num_threads(nt);
    // im2col + GEMM: big enough for the thread team (B*OC*L*K >= 2^22)
    conv_case(geom(6, 32, 12, 12, 32, 3, 2, 1, 1), 1, 1e-4, "gemm stride 2");
    conv_case(geom(5, 16, 30, 30, 40, 5, 1, 2, 1), 0, 1e-4, "gemm 5x5");
    conv_case(geom(7, 64, 7, 7, 48, 3, 2, 1, 1), 0, 1e-4, "gemm batched columns");
    conv_case(geom(9, 96, 8, 8, 64, 1, 1, 0, 1), 1, 1e-4, "pointwise batched columns");
    conv_case(geom(3, 64, 40, 40, 32, 1, 1, 0, 1), 0, 1e-4, "pointwise");
    conv_case(geom(4, 64, 14, 14, 64, 3, 1, 1, 4), 1, 1e-4, "grouped");
    conv_case(geom(3, 8, 9, 9, 4, 3, 1, 1, 1), 1, 1e-4, "small (one thread)");
    conv_case(geom(1, 128, 12, 12, 64, 3, 2, 1, 1), 0, 1e-4, "one image");
    // one image, 2 threads: its output rows split between them (odd rows: a short last block)
    conv_case(geom(1, 16, 41, 40, 24, 3, 2, 1, 1), 1, 1e-4, "one image, rows split");
    // one image's columns past 2 x 256K floats: im2col and the GEMMs go by blocks of rows
    conv_case(geom(3, 3, 150, 150, 16, 7, 2, 3, 1), 1, 1e-4, "gemm row blocks (a stem)");
    // Winograd F(2x2,3x3) and, where the CPU has AVX2 and FMA, F(4x4,3x3) (TRL_CONV_WINOGRAD=2
    // / 4): odd and even maps, pads 0..2, bias, more channels than tiles and the reverse, rows of
    // tiles that fill 8-tile groups partly and more than one
    const char *variants[2] = { "2", "4" };
    const double bounds[2] = { 2e-5, 5e-5 };
    for (int v = 0; v < 2; v++) {
      setenv("TRL_CONV_WINOGRAD", variants[v], 1);
      double worst = 0, bd = bounds[v];
      worst_dw = 0;
      want_variant = v == 0 || !wino4_cpu() ? 2 : 4;   // shapes with >= 64 tiles of 4x4
      worst = fmax(worst, conv_case(geom(4, 32, 14, 14, 48, 3, 1, 1, 1), 1, bd, "winograd"));
      worst = fmax(worst, conv_case(geom(6, 16, 13, 11, 24, 3, 1, 1, 1), 0, bd, "winograd odd"));
      worst = fmax(worst, conv_case(geom(8, 24, 12, 12, 16, 3, 1, 0, 1), 1, bd, "winograd p0"));
      worst = fmax(worst, conv_case(geom(6, 16, 10, 12, 16, 3, 1, 2, 1), 0, bd, "winograd p2"));
      worst = fmax(worst, conv_case(geom(1, 64, 36, 36, 32, 3, 1, 1, 1), 0, bd, "winograd B1"));
      worst = fmax(worst, conv_case(geom(8, 256, 10, 10, 8, 3, 1, 1, 1), 0, bd, "winograd deep"));
      worst = fmax(worst, conv_case(geom(2, 12, 37, 45, 20, 3, 1, 1, 1), 1, bd, "winograd wide"));
      worst = fmax(worst, conv_case(geom(2, 8, 70, 9, 8, 3, 1, 0, 1), 0, bd, "winograd tall"));
      worst = fmax(worst, conv_case(geom(1, 32, 56, 56, 32, 3, 1, 1, 1), 0, bd, "winograd 56x56"));
      worst = fmax(worst, conv_case(geom(1, 8, 4, 256, 8, 3, 1, 1, 1), 1, bd, "winograd one tile row"));
      // the weight gradient's chunks (2 or 4 tile rows of 50 here, of 5) accumulate
      worst = fmax(worst, conv_case(geom(1, 16, 20, 200, 208, 3, 1, 1, 1), 0, bd,
                                    "winograd wgrad chunks"));
      // F(4x4): C + OC >= 256 runs as a team; 14x14 and 7x7 maps put 2 and 4 tile rows in a group
      worst = fmax(worst, conv_case(geom(4, 32, 14, 14, 224, 3, 1, 1, 1), 0, bd, "winograd team 14x14"));
      if (want_variant == 4)   // F(2x2) leaves 7x7 maps to im2col
        worst = fmax(worst, conv_case(geom(16, 32, 7, 7, 224, 3, 1, 1, 1), 1, bd, "winograd team 7x7"));
      printf("winograd F(%sx%s,3x3)%s: worst normwise relative error %.3g (bound %g), "
             "weight gradient %.3g (bound 1e-4), %d threads\n", variants[v], variants[v],
             v == 1 && !wino4_cpu() ? " (no AVX2: ran F(2x2))" : "", worst, bd, worst_dw, nt);
      epilogue_case(geom(3, 16, 29, 30, 24, 3, 1, 1, 1));
    }
    unsetenv("TRL_CONV_WINOGRAD");
    // the same shapes through im2col: the switch works and both agree with ref
    setenv("TRL_CONV_WINOGRAD", "0", 1);
    conv_case(geom(4, 32, 14, 14, 48, 3, 1, 1, 1), 1, 1e-4, "im2col, winograd off");
    conv_case(geom(3, 16, 13, 11, 24, 3, 1, 1, 1), 0, 1e-4, "im2col, winograd off, odd");
    unsetenv("TRL_CONV_WINOGRAD");
    // conv packs: F(4x4) where a forward without one runs F(2x2) (14x14, one image) or im2col
    // (7x7, two images), odd sizes, the GEMM forms (stride 2, 1x1, groups, a stem), none for depthwise
    enum { NONE = CONV_FORM_NONE, GEMM = CONV_FORM_GEMM, WINO4 = CONV_FORM_WINO4 };
    pack_case(geom(1, 32, 14, 14, 32, 3, 1, 1, 1), WINO4);
    pack_case(geom(2, 32, 7, 7, 48, 3, 1, 1, 1), WINO4);
    pack_case(geom(1, 32, 7, 7, 48, 3, 1, 1, 1), GEMM);   // 4 tiles: im2col
    pack_case(geom(2, 13, 9, 11, 17, 3, 1, 1, 1), WINO4);
    pack_case(geom(3, 16, 13, 11, 24, 3, 2, 1, 1), GEMM);
    pack_case(geom(2, 24, 10, 10, 40, 1, 1, 0, 1), GEMM);
    pack_case(geom(2, 32, 9, 9, 32, 3, 1, 1, 4), GEMM);
    pack_case(geom(2, 16, 12, 12, 16, 3, 1, 1, 16), NONE);
    pack_case(geom(1, 3, 120, 120, 8, 7, 2, 3, 1), GEMM);   // L2 blocks of rows, split
    pack_case(geom(1, 8, 6, 6, 8, 3, 1, 1, 1), GEMM);
    if (!wino4_cpu()) printf("no AVX2: the packs hold GEMM panels only\n");
  }
  printf("test_conv_fast: %d passed, %d failed\n", passed, failed);
  return failed != 0;
}
