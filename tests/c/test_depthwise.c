/*
** test_depthwise.c: the depthwise conv kernels (groups == C) against the naive '_ref' kernels:
** the 3x3 path (AVX-512 on a padded copy of each plane where the CPU has it, else AVX2;
** stride 1 and 2, pads 0..2, odd and even maps, maps narrower than a vector) and the generic
** direct path (5x5, dilation 2, channel multiplier 2), forward and both gradients, on 1 and 2
** threads. Bound: normwise relative error (max|a-b| / max|b|) below 1e-5. The bits must not
** change between runs nor with the thread count, and the epilogue fused into the forward
** (conv2d_forward_epi) must give the bits of the plain forward followed by the epilogue.
*/
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "floatbuf.h"
#include "check.h"
#include "gemm.h"
#include "nn.h"

// CHECK with a message, counted like check.h's macros.
#define CHECKM(cond, ...) do { \
    if (cond) check_pass++; \
    else { check_fail++; fprintf(stderr, "%s:%d: CHECK failed: %s: ", __FILE__, __LINE__, #cond); \
           fprintf(stderr, __VA_ARGS__); fprintf(stderr, "\n"); } \
  } while (0)


// A depthwise conv: C channels, M outputs per channel, KxK kernel, stride s, pad p, dilation d.
static trl_conv_geom geom (int B, int C, int H, int W, int M, int K, int s, int p, int d) {
  trl_conv_geom g = { .B = B, .C = C, .H = H, .W = W, .OC = C * M, .KH = K, .KW = K, .sh = s,
                      .sw = s, .ph = p, .pw = p, .dh = d, .dw = d, .G = C };
  g.OH = (H + 2 * p - d * (K - 1) - 1) / s + 1;
  g.OW = (W + 2 * p - d * (K - 1) - 1) / s + 1;
  return g;
}

// out, dx, dw of one shape at 'nt' threads; backward accumulates into nonzero gradients.
typedef struct { float *y, *dx, *dw; } result;

static result run (const trl_conv_geom *g, const float *x, const float *w, const float *b,
                   const float *r, const float *dx0, const float *dw0, int nt) {
  int64_t nx = (int64_t)g->B * g->C * g->H * g->W, nw = (int64_t)g->OC * g->KH * g->KW;
  int64_t ny = (int64_t)g->B * g->OC * g->OH * g->OW;
  trl_set_num_threads(nt);
  float *ws = malloc(sizeof(float) * (conv2d_workspace(g) + 1));
  result o = { frand(ny), fcopy(dx0, nx), fcopy(dw0, nw) };
  conv2d_forward(o.y, x, w, b, ws, g);
  conv2d_backward(o.dx, o.dw, NULL, r, x, w, ws, g);
  free(ws);
  return o;
}

static double worst;

static void dw_case (trl_conv_geom g, int bias) {
  int64_t nx = (int64_t)g.B * g.C * g.H * g.W, nw = (int64_t)g.OC * g.KH * g.KW;
  int64_t ny = (int64_t)g.B * g.OC * g.OH * g.OW;
  float *x = frand(nx), *w = frand(nw), *b = bias ? frand(g.OC) : NULL, *r = frand(ny);
  float *dx0 = frand(nx), *dw0 = frand(nw);
  char name[160];
  snprintf(name, sizeof name, "B%d C%d %dx%d M%d k%d s%d p%d d%d%s", g.B, g.C, g.H, g.W,
           g.OC / g.C, g.KH, g.sh, g.ph, g.dh, bias ? " bias" : "");
  float *yr = frand(ny), *dxr = fcopy(dx0, nx), *dwr = fcopy(dw0, nw);
  conv2d_forward_ref(yr, x, w, b, &g);
  conv2d_backward_ref(dxr, dwr, NULL, r, x, w, &g);
  result o1 = run(&g, x, w, b, r, dx0, dw0, 1), o2 = run(&g, x, w, b, r, dx0, dw0, 2);
  result o3 = run(&g, x, w, b, r, dx0, dw0, 2);
  double d;
  CHECKM((d = reldiff(o2.y, yr, ny)) < 1e-5, "%s: forward differs from ref by %.3g", name, d);
  worst = fmax(worst, d);
  CHECKM((d = reldiff(o2.dx, dxr, nx)) < 1e-5, "%s: dx differs from ref by %.3g", name, d);
  worst = fmax(worst, d);
  CHECKM((d = reldiff(o2.dw, dwr, nw)) < 1e-5, "%s: dw differs from ref by %.3g", name, d);
  worst = fmax(worst, d);
  // the same bits run to run and at any thread count: a resumed training run must match
  CHECKM(!memcmp(o2.y, o3.y, sizeof(float) * ny) && !memcmp(o2.dx, o3.dx, sizeof(float) * nx) &&
         !memcmp(o2.dw, o3.dw, sizeof(float) * nw), "%s: two runs differ", name);
  CHECKM(!memcmp(o1.y, o2.y, sizeof(float) * ny) && !memcmp(o1.dx, o2.dx, sizeof(float) * nx) &&
         !memcmp(o1.dw, o2.dw, sizeof(float) * nw), "%s: 1 and 2 threads differ", name);
  // one gradient at a time: the other stays untouched
  float *dxa = fcopy(dx0, nx), *dwa = fcopy(dw0, nw);
  float *ws = malloc(sizeof(float) * (conv2d_workspace(&g) + 1));   // C = 1 runs the GEMM path
  conv2d_backward(NULL, dwa, NULL, r, x, w, ws, &g);
  conv2d_backward(dxa, NULL, NULL, r, x, w, ws, &g);
  free(ws);
  CHECKM(!memcmp(dxa, o2.dx, sizeof(float) * nx) && !memcmp(dwa, o2.dw, sizeof(float) * nw),
         "%s: dx or dw alone differ from both together", name);
  // the fused epilogue (BN scale/shift + a clamp) against the plain forward, then the epilogue
  float *sc = frand(g.OC), *sh = frand(g.OC), *yf = frand(ny), *yp = frand(ny);
  trl_epilogue e = { sc, sh, -0.25f, 0.5f };
  ws = malloc(sizeof(float) * (conv2d_workspace(&g) + 1));
  conv2d_forward(yp, x, w, NULL, ws, &g);
  trl_epilogue_planes(yp, yp, &e, g.B, g.OC, (int64_t)g.OH * g.OW);
  conv2d_forward_epi(yf, x, w, &e, ws, &g);
  free(ws);
  CHECKM(!memcmp(yf, yp, sizeof(float) * ny), "%s: fused epilogue differs from conv + epilogue", name);
  free(sc), free(sh), free(yf), free(yp);
  result os[3] = { o1, o2, o3 };
  for (int i = 0; i < 3; i++) free(os[i].y), free(os[i].dx), free(os[i].dw);
  free(x), free(w), free(b), free(r), free(dx0), free(dw0), free(yr), free(dxr), free(dwr);
  free(dxa), free(dwa);
}

static void all_cases (void) {
  frand_seed = 0x2545f4914f6cdd1dull;   // the data this test was tuned on
  int Cs[] = { 1, 7, 32 }, Bs[] = { 1, 3 };
  int sizes[][2] = { { 1, 1 }, { 5, 3 }, { 9, 7 }, { 17, 23 }, { 31, 40 }, { 56, 56 } };
  for (int ci = 0; ci < 3; ci++)
    for (int bi = 0; bi < 2; bi++)
      for (int si = 0; si < 6; si++)
        for (int s = 1; s <= 2; s++) {
          int H = sizes[si][0], W = sizes[si][1];
          if (Cs[ci] == 32 && H == 56 && Bs[bi] == 3 && s == 1) continue;   // keep it quick
          dw_case(geom(Bs[bi], Cs[ci], H, W, 1, 3, s, 1, 1), (si + s) % 2);
        }
  // other pads: the interior columns move; the odd pad flips the parity of stride 2
  for (int p = 0; p <= 2; p++)
    for (int s = 1; s <= 2; s++) {
      dw_case(geom(3, 7, 19, 45, 1, 3, s, p, 1), 1);
      dw_case(geom(1, 5, 20, 34, 1, 3, s, p, 1), 0);
    }
  // a long row: several vectors between the borders
  dw_case(geom(2, 3, 6, 150, 1, 3, 2, 1, 1), 1);
  dw_case(geom(2, 3, 6, 149, 1, 3, 1, 1, 1), 0);
  // the generic direct kernel: other sizes, dilation, channel multiplier
  dw_case(geom(3, 7, 21, 19, 1, 5, 1, 2, 1), 1);
  dw_case(geom(3, 7, 21, 19, 1, 3, 1, 2, 2), 0);
  dw_case(geom(3, 7, 21, 19, 2, 3, 2, 1, 1), 1);
  dw_case(geom(2, 6, 15, 15, 1, 3, 3, 1, 1), 0);
  printf("depthwise: worst normwise relative error %.3g (bound 1e-5)\n", worst);
}

int main (void) {
  all_cases();
  if (trl_cpu_avx512()) {   // the 3x3 path's AVX2 kernels too
    trl_cpu_no_avx512(1);
    printf("again with TRL_NO_AVX512 (the AVX2 kernels):\n");
    all_cases();
    trl_cpu_no_avx512(0);
  } else {
    printf("no AVX-512 on this CPU: the AVX2 (or portable) kernels only\n");
  }
  return check_summary();
}
