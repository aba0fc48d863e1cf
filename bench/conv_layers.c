/*
** conv_layers.c: the conv kernels alone on ResNet-18's 11 conv shapes, without Lua, autograd
** or the allocator in the way: conv2d_forward (the training form: the weight is transformed
** or packed on every call), the data gradient and the weight gradient of conv2d_backward,
** each the median of REPS calls, in ms and in GFLOP/s of direct-conv work. The last column
** weighs each shape by its count in the net (the stem has no data gradient in training), so
** the total is the conv share of one train step.
**   trl-bench-conv [BATCH=32] [REPS=9] [THREADS=2]
*/
#include <stdio.h>
#include <stdlib.h>

#include "mem.h"
#include "nn.h"
#include "timing.h"

typedef struct { int C, OC, H, k, s, n; } layer;   // n: how many the net has

static const layer layers[] = {
  { 3, 64, 224, 7, 2, 1 },                                               // stem
  { 64, 64, 56, 3, 1, 4 },
  { 64, 128, 56, 3, 2, 1 }, { 64, 128, 56, 1, 2, 1 }, { 128, 128, 28, 3, 1, 3 },
  { 128, 256, 28, 3, 2, 1 }, { 128, 256, 28, 1, 2, 1 }, { 256, 256, 14, 3, 1, 3 },
  { 256, 512, 14, 3, 2, 1 }, { 256, 512, 14, 1, 2, 1 }, { 512, 512, 7, 3, 1, 3 },
};

// Fills p with n floats in [-0.5, 0.5) from a fixed sequence.
static void fill (float *p, size_t n, unsigned seed) {
  for (size_t i = 0; i < n; i++) {
    seed = seed * 1664525u + 1013904223u;
    p[i] = (float)(seed >> 8) / 16777216.0f - 0.5f;
  }
}

int main (int argc, char **argv) {
  int B = argc > 1 ? atoi(argv[1]) : 32, reps = argc > 2 ? atoi(argv[2]) : 9;
  int nt = argc > 3 ? atoi(argv[3]) : 2;
  if (B <= 0 || reps <= 0 || reps > 1000 || nt <= 0) {
    fprintf(stderr, "usage: %s [BATCH] [REPS] [THREADS]\n", argv[0]);
    return 1;
  }
  trl_set_num_threads(nt);
  printf("conv kernels of ResNet-18, batch %d, %d threads, medians of %d calls\n", B, nt, reps);
  printf("%-22s %5s %8s %8s %8s %8s %8s %8s %10s\n", "layer", "n", "fwd ms", "GF/s", "dgrad",
         "GF/s", "wgrad", "GF/s", "step ms");
  double *t = malloc(sizeof(double) * 3 * (size_t)reps), total = 0;
  if (!t) return 1;
  for (size_t l = 0; l < sizeof layers / sizeof layers[0]; l++) {
    const layer *L = &layers[l];
    int pad = L->k / 2, OH = (L->H + 2 * pad - L->k) / L->s + 1;
    trl_conv_geom g = { B, L->C, L->H, L->H, L->OC, L->k, L->k, OH, OH,
                        L->s, L->s, pad, pad, 1, 1, 1 };
    size_t xn = (size_t)B * g.C * g.H * g.W, on = (size_t)B * g.OC * OH * OH;
    size_t wn = (size_t)g.OC * g.C * L->k * L->k, wsn = conv2d_workspace(&g);
    float *x = trl_alloc(sizeof(float) * xn), *dx = trl_alloc(sizeof(float) * xn);
    float *y = trl_alloc(sizeof(float) * on), *dy = trl_alloc(sizeof(float) * on);
    float *w = trl_alloc(sizeof(float) * wn), *dw = trl_alloc(sizeof(float) * wn);
    float *ws = wsn ? trl_alloc(sizeof(float) * wsn) : NULL;
    if (!x || !dx || !y || !dy || !w || !dw || (wsn && !ws)) {
      fprintf(stderr, "out of memory at layer %zu\n", l + 1);
      return 1;
    }
    fill(x, xn, 1), fill(dy, on, 2), fill(w, wn, 3);
    for (int r = -1; r < reps; r++) {   // one call of each to warm up
      double a = bench_now();
      conv2d_forward(y, x, w, NULL, ws, &g);
      double b = bench_now();
      conv2d_backward(dx, NULL, NULL, dy, x, w, ws, &g);
      double c = bench_now();
      conv2d_backward(NULL, dw, NULL, dy, x, w, ws, &g);
      double d = bench_now();
      if (r >= 0) t[r] = b - a, t[reps + r] = c - b, t[2 * reps + r] = d - c;
    }
    double f = bench_median(t, reps), bd = bench_median(t + reps, reps);
    double bw = bench_median(t + 2 * reps, reps);
    double gf = 2.0 * B * g.OC * g.C * L->k * L->k * OH * OH * 1e-9;
    double step = L->n * ((l == 0 ? 0 : bd) + f + bw) * 1e3;
    total += step;
    char name[32];
    snprintf(name, sizeof name, "%d->%d %dx%d s%d %dx%d", g.C, g.OC, L->k, L->k, L->s, g.H, g.W);
    printf("%-22s %5d %8.2f %8.1f %8.2f %8.1f %8.2f %8.1f %10.1f\n", name, L->n, f * 1e3, gf / f,
           bd * 1e3, gf / bd, bw * 1e3, gf / bw, step);
    trl_free(x, sizeof(float) * xn), trl_free(dx, sizeof(float) * xn);
    trl_free(y, sizeof(float) * on), trl_free(dy, sizeof(float) * on);
    trl_free(w, sizeof(float) * wn), trl_free(dw, sizeof(float) * wn);
    if (ws) trl_free(ws, sizeof(float) * wsn);
  }
  printf("%-22s %5s %8s %8s %8s %8s %8s %8s %10.1f\n", "convs of one step", "", "", "", "", "", "",
         "", total);
  free(t);
  return 0;
}
