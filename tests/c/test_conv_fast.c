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
    CHECK(winograd_variant(&g) == want_variant, "%s: expected Winograd F(%dx%d,3x3), got %d",
          name, want_variant, want_variant, winograd_variant(&g));
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
      // the weight gradient's chunks (4x the forward's: 4 tile rows of 50 here) accumulate
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
  }
  printf("test_conv_fast: %d passed, %d failed\n", passed, failed);
  return failed != 0;
}
