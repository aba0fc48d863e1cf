/*
** test_nn_ops.c: the nn ops (nn.h). For each op: fast kernels against the naive '_ref' ones
** (forward and accumulating backward), analytic gradients against central differences,
** hand-worked values, shape errors, and the builders end to end through the tape.
** Gradchecks: linear / piecewise-linear ops (conv, pooling) difference the float kernels
** themselves with a large power-of-two eps (no truncation error, so float rounding is all the
** noise); smooth nonlinear ops (batchnorm, softmax, xent) difference a double-precision
** forward written here, checked first against the float kernel, with eps 1e-4.
*/
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gradcheck.h"
#include "nn.h"
#include "tape.h"

static int passed, failed;

#define CHECK(cond, ...) do { \
    if (cond) passed++; \
    else { failed++; printf("%s:%d: FAIL %s: ", __FILE__, __LINE__, #cond); \
           printf(__VA_ARGS__); printf("\n"); } \
  } while (0)
#define CHECK_OK(e) do { trl_status s_ = (e); \
    CHECK(s_ == TRL_OK, "%s -> %d '%s'", #e, (int)s_, trl_errmsg()); } while (0)

/* {==================================================================
** Helpers
** =================================================================== */

static uint64_t seed = 88172645463325252ull;

static double urand (void) {             // [0, 1)
  seed ^= seed << 13, seed ^= seed >> 7, seed ^= seed << 17;
  return (double)(seed >> 11) * 0x1.0p-53;
}
static int irand (int lo, int hi) { return lo + (int)(urand() * (hi - lo + 1)); }   // [lo, hi]

static float *fvec (int64_t n) { return calloc((size_t)(n > 0 ? n : 1), sizeof(float)); }

static float *frand (int64_t n) {        // U(-1, 1)
  float *p = fvec(n);
  for (int64_t i = 0; i < n; i++) p[i] = (float)(2 * urand() - 1);
  return p;
}

static float *fcopy (const float *src, int64_t n) {
  float *p = fvec(n);
  memcpy(p, src, sizeof(float) * n);
  return p;
}

// Normwise relative difference max|a-b| / max(max|b|, 1e-30).
static double reldiff (const float *a, const float *b, int64_t n) {
  double d = 0, m = 1e-30;
  for (int64_t i = 0; i < n; i++) {
    d = fmax(d, fabs((double)a[i] - b[i]));
    m = fmax(m, fabs((double)b[i]));
  }
  return d / m;
}

static int contains (const char *s, const char *sub) { return strstr(s, sub) != NULL; }

/* }================================================================== */

/* {==================================================================
** conv2d kernels
** =================================================================== */

typedef struct {
  trl_conv_geom g;
  float *x, *w, *b, *y, *r, *ws, *target;
  int64_t ny;
} conv_ctx;

static double conv_loss (void *ctx, int64_t i, double delta) {
  conv_ctx *c = ctx;
  float old = gc_nudge(c->target, i, delta);
  conv2d_forward(c->y, c->x, c->w, c->b, c->ws, &c->g);
  c->target[i] = old;
  return gc_dot(c->r, c->y, c->ny);
}

// One configuration: fast vs ref forward and backward, then gradcheck when 'grad'.
static void conv_case (trl_conv_geom g, int bias, int grad) {
  char name[160];
  snprintf(name, sizeof name, "conv B%d C%d %dx%d OC%d k%dx%d s%d,%d p%d,%d d%d,%d G%d%s", g.B,
           g.C, g.H, g.W, g.OC, g.KH, g.KW, g.sh, g.sw, g.ph, g.pw, g.dh, g.dw, g.G,
           bias ? " bias" : "");
  g.OH = (g.H + 2 * g.ph - g.dh * (g.KH - 1) - 1) / g.sh + 1;
  g.OW = (g.W + 2 * g.pw - g.dw * (g.KW - 1) - 1) / g.sw + 1;
  int64_t nx = (int64_t)g.B * g.C * g.H * g.W, nw = (int64_t)g.OC * (g.C / g.G) * g.KH * g.KW;
  int64_t ny = (int64_t)g.B * g.OC * g.OH * g.OW;
  float *x = frand(nx), *w = frand(nw), *b = bias ? frand(g.OC) : NULL, *r = frand(ny);
  float *y = fvec(ny), *yr = fvec(ny), *ws = fvec((int64_t)conv2d_workspace(&g));
  conv2d_forward(y, x, w, b, ws, &g);
  conv2d_forward_ref(yr, x, w, b, &g);
  double d = reldiff(y, yr, ny);
  CHECK(d < 1e-4, "%s: forward differs from ref by %.3g", name, d);
  // Backward into gradients that already hold values: both must add to them.
  float *dx0 = frand(nx), *dw0 = frand(nw), *db0 = frand(g.OC);
  float *dx = fcopy(dx0, nx), *dw = fcopy(dw0, nw), *db = fcopy(db0, g.OC);
  float *dxr = fcopy(dx0, nx), *dwr = fcopy(dw0, nw), *dbr = fcopy(db0, g.OC);
  conv2d_backward(dx, dw, bias ? db : NULL, r, x, w, ws, &g);
  conv2d_backward_ref(dxr, dwr, bias ? dbr : NULL, r, x, w, &g);
  CHECK((d = reldiff(dx, dxr, nx)) < 1e-4, "%s: dx differs from ref by %.3g", name, d);
  CHECK((d = reldiff(dw, dwr, nw)) < 1e-4, "%s: dw differs from ref by %.3g", name, d);
  CHECK((d = reldiff(db, dbr, g.OC)) < 1e-4, "%s: db differs from ref by %.3g", name, d);
  if (grad) {
    // gradients alone (backward from zero), then central differences of the float forward;
    // conv is linear in each input, so eps = 0.5 has no truncation error
    for (int64_t i = 0; i < nx; i++) dx[i] = 0;
    for (int64_t i = 0; i < nw; i++) dw[i] = 0;
    for (int i = 0; i < g.OC; i++) db[i] = 0;
    conv2d_backward(dx, dw, bias ? db : NULL, r, x, w, ws, &g);
    conv_ctx c = { g, x, w, b, y, r, ws, x, ny };
    CHECK(gradcheck("conv dx", conv_loss, &c, nx, dx, 0.5, 1e-4, 1e-3) == 0, "%s: dx", name);
    c.target = w;
    CHECK(gradcheck("conv dw", conv_loss, &c, nw, dw, 0.5, 1e-4, 1e-3) == 0, "%s: dw", name);
    if (bias) {
      c.target = b;
      CHECK(gradcheck("conv db", conv_loss, &c, g.OC, db, 0.5, 1e-4, 1e-3) == 0, "%s: db", name);
    }
  }
  free(x), free(w), free(b), free(r), free(y), free(yr), free(ws);
  free(dx0), free(dw0), free(db0), free(dx), free(dw), free(db), free(dxr), free(dwr), free(dbr);
}

static trl_conv_geom cg (int B, int C, int H, int W, int OC, int KH, int KW, int sh, int sw,
                         int ph, int pw, int dh, int dw, int G) {
  return (trl_conv_geom){ .B = B, .C = C, .H = H, .W = W, .OC = OC, .KH = KH, .KW = KW,
                          .sh = sh, .sw = sw, .ph = ph, .pw = pw, .dh = dh, .dw = dw, .G = G };
}

static void test_conv_kernels (void) {
  conv_case(cg(2, 3, 5, 5, 4, 3, 3, 1, 1, 1, 1, 1, 1, 1), 1, 1);     // basic 3x3 pad 1
  conv_case(cg(1, 4, 7, 6, 6, 3, 2, 2, 1, 1, 0, 1, 1, 2), 0, 1);     // groups 2, stride, 3x2
  conv_case(cg(2, 4, 6, 7, 4, 3, 3, 1, 1, 2, 2, 2, 2, 1), 1, 1);     // dilation 2
  conv_case(cg(3, 6, 5, 5, 6, 3, 3, 1, 1, 1, 1, 1, 1, 6), 1, 1);     // depthwise
  conv_case(cg(2, 3, 9, 8, 6, 3, 3, 2, 2, 1, 1, 1, 1, 3), 0, 1);     // depthwise x2, stride 2
  conv_case(cg(2, 4, 7, 6, 4, 3, 3, 1, 2, 0, 2, 2, 1, 4), 1, 1);     // depthwise, dilated, pad
  conv_case(cg(2, 5, 4, 3, 7, 1, 1, 1, 1, 0, 0, 1, 1, 1), 1, 1);     // pointwise GEMM
  conv_case(cg(1, 4, 5, 5, 6, 1, 1, 1, 1, 0, 0, 1, 1, 2), 0, 1);     // pointwise, groups 2
  conv_case(cg(2, 3, 7, 7, 2, 1, 1, 2, 2, 0, 0, 1, 1, 1), 1, 1);     // 1x1 stride 2
  conv_case(cg(1, 2, 6, 5, 3, 5, 4, 3, 2, 2, 1, 1, 2, 1), 1, 1);     // odd 5x4, stride 3x2
  conv_case(cg(1, 1, 3, 3, 1, 3, 3, 1, 1, 0, 0, 1, 1, 1), 1, 1);     // one output pixel
  conv_case(cg(2, 16, 32, 32, 16, 3, 3, 1, 1, 1, 1, 1, 1, 1), 1, 0); // big: OpenMP im2col
  conv_case(cg(2, 32, 32, 32, 32, 3, 3, 2, 2, 1, 1, 1, 1, 32), 1, 0);// big depthwise
  // stride 2 wide enough for the 8-wide im2col rows, odd widths, padding (the stem's 7x7)
  conv_case(cg(2, 3, 23, 37, 5, 7, 7, 2, 2, 3, 3, 1, 1, 1), 1, 0);
  conv_case(cg(1, 3, 20, 33, 4, 3, 3, 2, 2, 1, 1, 1, 1, 1), 0, 1);
  conv_case(cg(2, 5, 9, 40, 4, 1, 1, 2, 2, 0, 0, 1, 1, 1), 1, 1);
  for (int t = 0; t < 12; t++) {                                       // random shapes
    int G = irand(1, 3), depthwise = irand(0, 3) == 0;
    int Cg = depthwise ? 1 : irand(1, 3), OCg = irand(1, 3);
    trl_conv_geom g = cg(irand(1, 3), G * Cg, irand(1, 9), irand(1, 9), G * OCg, irand(1, 4),
                         irand(1, 4), irand(1, 3), irand(1, 3), irand(0, 2), irand(0, 2),
                         irand(1, 2), irand(1, 2), G);
    if (g.H + 2 * g.ph < g.dh * (g.KH - 1) + 1 || g.W + 2 * g.pw < g.dw * (g.KW - 1) + 1) {
      t--;
      continue;
    }
    conv_case(g, irand(0, 1), 1);
  }
}

/* }================================================================== */

/* {==================================================================
** Pooling kernels
** =================================================================== */

typedef struct {
  trl_pool_geom g;
  float *x, *y, *r;
  int64_t ny;
  int is_max;
} pool_ctx;

static double pool_loss (void *ctx, int64_t i, double delta) {
  pool_ctx *c = ctx;
  float old = gc_nudge(c->x, i, delta);
  if (c->is_max) maxpool2d_forward(c->y, c->x, &c->g);
  else avgpool2d_forward(c->y, c->x, &c->g);
  c->x[i] = old;
  return gc_dot(c->r, c->y, c->ny);
}

// The taps of maxpool2d_forward_arg give the outputs and, through maxpool2d_backward_arg, the
// gradients of maxpool2d_forward / maxpool2d_backward bit for bit: added to dx0, and written
// over garbage.
static void pool_arg_same (const trl_pool_geom *g, const float *x, const float *go,
                           const float *dx0, const char *name) {
  int64_t nx = (int64_t)g->B * g->C * g->H * g->W, ny = (int64_t)g->B * g->C * g->OH * g->OW;
  float *y = fvec(ny), *ya = fvec(ny), *d1 = fcopy(dx0, nx), *d2 = fcopy(dx0, nx);
  uint8_t *arg = malloc((size_t)ny);
  maxpool2d_forward(y, x, g);
  maxpool2d_forward_arg(ya, arg, x, g);
  CHECK(memcmp(y, ya, sizeof(float) * (size_t)ny) == 0, "%s: maxpool2d_forward_arg's outputs "
        "differ from maxpool2d_forward's", name);
  int range = 1;
  for (int64_t i = 0; i < ny; i++) range &= arg[i] < g->kh * g->kw;
  CHECK(range, "%s: a tap past kh * kw", name);
  maxpool2d_backward(d1, go, x, g);
  maxpool2d_backward_arg(d2, go, arg, 0, g);
  CHECK(memcmp(d1, d2, sizeof(float) * (size_t)nx) == 0, "%s: maxpool2d_backward_arg differs "
        "from maxpool2d_backward", name);
  for (int64_t i = 0; i < nx; i++) d1[i] = 0, d2[i] = NAN;
  maxpool2d_backward(d1, go, x, g);
  maxpool2d_backward_arg(d2, go, arg, 1, g);
  CHECK(memcmp(d1, d2, sizeof(float) * (size_t)nx) == 0, "%s: maxpool2d_backward_arg writing "
        "differs from maxpool2d_backward on zeros", name);
  free(y), free(ya), free(d1), free(d2), free(arg);
}

static void pool_case (int B, int C, int H, int W, int kh, int kw, int sh, int sw, int ph, int pw,
                       int ceil_mode, int cip, int grad) {
  char name[160];
  trl_pool_params p = { {kh, kw}, {sh, sw}, {ph, pw}, ceil_mode, cip };
  trl_pool_geom g;
  trl_tensor fake = { .dtype = TRL_F32, .ndim = 4, .shape = {B, C, H, W} };
  snprintf(name, sizeof name, "pool B%d C%d %dx%d k%dx%d s%d,%d p%d,%d ceil%d cip%d", B, C, H,
           W, kh, kw, sh, sw, ph, pw, ceil_mode, cip);
  trl_status st = pool2d_check(&g, "pool", &fake, &p);
  CHECK(st == TRL_OK, "%s: check failed: %s", name, trl_errmsg());
  if (st != TRL_OK) return;
  int64_t nx = (int64_t)B * C * H * W, ny = (int64_t)B * C * g.OH * g.OW;
  // distinct values 1/32 apart so that a max never ties and eps = 1/128 never reorders them
  float *x = fvec(nx), *r = frand(ny), *y = fvec(ny), *yr = fvec(ny);
  for (int64_t i = 0; i < nx; i++) x[i] = (float)i;
  for (int64_t i = nx - 1; i > 0; i--) {
    int64_t j = (int64_t)(urand() * (i + 1));
    float t = x[i];
    x[i] = x[j], x[j] = t;
  }
  for (int64_t i = 0; i < nx; i++) x[i] = (x[i] - nx / 2) / 32;
  for (int is_max = 0; is_max < 2; is_max++) {
    const char *op = is_max ? "max" : "avg";
    if (is_max) maxpool2d_forward(y, x, &g), maxpool2d_forward_ref(yr, x, &g);
    else avgpool2d_forward(y, x, &g), avgpool2d_forward_ref(yr, x, &g);
    double d = reldiff(y, yr, ny);
    CHECK(d < 1e-4, "%s %s: forward differs from ref by %.3g", name, op, d);
    float *dx0 = frand(nx), *dx = fcopy(dx0, nx), *dxr = fcopy(dx0, nx);
    if (is_max) maxpool2d_backward(dx, r, x, &g), maxpool2d_backward_ref(dxr, r, x, &g);
    else avgpool2d_backward(dx, r, &g), avgpool2d_backward_ref(dxr, r, &g);
    CHECK((d = reldiff(dx, dxr, nx)) < 1e-4, "%s %s: dx differs from ref by %.3g", name, op, d);
    if (is_max) {   // the first gradient written over garbage equals the one added to zeros
      float *dxw = fvec(nx), *dxz = fvec(nx);
      for (int64_t i = 0; i < nx; i++) dxw[i] = NAN, dxz[i] = 0;
      maxpool2d_backward_write(dxw, r, x, &g);
      maxpool2d_backward(dxz, r, x, &g);
      CHECK(memcmp(dxw, dxz, sizeof(float) * (size_t)nx) == 0,
            "%s: maxpool2d_backward_write differs from the zero-filled backward", name);
      if (g.kh * g.kw <= 256)
        pool_arg_same(&g, x, r, dx0, name);
      free(dxw), free(dxz);
    }
    if (grad) {
      for (int64_t i = 0; i < nx; i++) dx[i] = 0;
      if (is_max) maxpool2d_backward(dx, r, x, &g);
      else avgpool2d_backward(dx, r, &g);
      pool_ctx c = { g, x, y, r, ny, is_max };
      CHECK(gradcheck(op, pool_loss, &c, nx, dx, 1.0 / 128, 1e-4, 1e-3) == 0, "%s %s", name, op);
    }
    free(dx0), free(dx), free(dxr);
  }
  free(x), free(r), free(y), free(yr);
}

static int out_size (int H, int k, int s, int p, int ceil_mode) {
  trl_pool_params pp = { {k, 1}, {s, 1}, {p, 0}, ceil_mode, 1 };
  trl_pool_geom g;
  trl_tensor fake = { .dtype = TRL_F32, .ndim = 4, .shape = {1, 1, H, 1} };
  return pool2d_check(&g, "pool", &fake, &pp) == TRL_OK ? g.OH : -1;
}

static void test_pool_kernels (void) {
  // output sizes worked by hand
  CHECK(out_size(5, 3, 2, 1, 0) == 3, "floor (5+2-3)/2+1 = 3, got %d", out_size(5, 3, 2, 1, 0));
  CHECK(out_size(6, 3, 2, 0, 0) == 2, "floor (6-3)/2+1 = 2, got %d", out_size(6, 3, 2, 0, 0));
  CHECK(out_size(6, 3, 2, 0, 1) == 3, "ceil (6-3)/2+1 = 3, got %d", out_size(6, 3, 2, 0, 1));
  CHECK(out_size(112, 3, 2, 1, 0) == 56, "resnet maxpool 112 -> 56, got %d",
        out_size(112, 3, 2, 1, 0));
  CHECK(out_size(5, 2, 2, 1, 1) == 3, "ceil gives 4 but window 4 starts in the right padding, "
        "got %d", out_size(5, 2, 2, 1, 1));
  CHECK(out_size(2, 3, 1, 2, 0) == -1, "pad 2 > kernel/2 is refused");
  // avg of ones, 3x3 pad 1 on 4x4: corners see 4 of 9 taps with padding counted, 4 of 4 without
  {
    trl_pool_geom g;
    trl_tensor fake = { .dtype = TRL_F32, .ndim = 4, .shape = {1, 1, 4, 4} };
    trl_pool_params p = { {3, 3}, {1, 1}, {1, 1}, 0, 1 };
    float x[16], y[16];
    for (int i = 0; i < 16; i++) x[i] = 1;
    pool2d_check(&g, "avgpool2d", &fake, &p);
    avgpool2d_forward(y, x, &g);
    CHECK(fabsf(y[0] - 4.0f / 9) < 1e-6 && fabsf(y[1] - 6.0f / 9) < 1e-6 && y[5] == 1,
          "count_include_pad: %g %g %g", y[0], y[1], y[5]);
    g.count_include_pad = 0;
    avgpool2d_forward(y, x, &g);
    CHECK(y[0] == 1 && y[1] == 1 && y[5] == 1, "exclude pad: %g %g %g", y[0], y[1], y[5]);
    // max: 2x2 stride 2 on 0..15 picks 5, 7, 13, 15; a tie routes to the first maximum
    for (int i = 0; i < 16; i++) x[i] = (float)i;
    trl_pool_params q = { {2, 2}, {2, 2}, {0, 0}, 0, 1 };
    pool2d_check(&g, "maxpool2d", &fake, &q);
    maxpool2d_forward(y, x, &g);
    CHECK(y[0] == 5 && y[1] == 7 && y[2] == 13 && y[3] == 15, "max %g %g %g %g", y[0], y[1],
          y[2], y[3]);
    float dx[16] = { 0 }, go[4] = { 1, 1, 1, 1 };
    for (int i = 0; i < 16; i++) x[i] = 3;
    maxpool2d_backward(dx, go, x, &g);
    CHECK(dx[0] == 1 && dx[1] == 0 && dx[4] == 0 && dx[2] == 1, "ties go to the first max");
  }
  pool_case(2, 3, 5, 5, 3, 3, 2, 2, 1, 1, 0, 1, 1);
  pool_case(1, 2, 6, 6, 3, 3, 2, 2, 0, 0, 1, 1, 1);
  pool_case(2, 2, 5, 5, 2, 2, 2, 2, 1, 1, 1, 0, 1);
  pool_case(2, 2, 5, 5, 2, 2, 2, 2, 1, 1, 1, 1, 1);
  pool_case(1, 3, 7, 6, 3, 2, 2, 1, 1, 1, 0, 0, 1);
  pool_case(2, 1, 4, 4, 2, 2, 2, 2, 0, 0, 0, 1, 1);
  pool_case(1, 2, 9, 7, 4, 3, 3, 2, 2, 1, 1, 0, 1);
  pool_case(1, 2, 8, 8, 3, 3, 1, 1, 1, 1, 1, 1, 1);
  pool_case(1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 1, 1);
  pool_case(2, 16, 32, 32, 3, 3, 2, 2, 1, 1, 0, 1, 0);    // big: OpenMP planes
  // wide 3-wide stride-2 rows (8 outputs at a time with AVX2): pad 1 and 0, ceil, 2x3
  pool_case(2, 3, 37, 41, 3, 3, 2, 2, 1, 1, 0, 1, 0);
  pool_case(1, 2, 20, 40, 3, 3, 2, 2, 0, 0, 1, 1, 0);
  pool_case(1, 2, 15, 50, 2, 3, 1, 2, 1, 1, 0, 1, 0);
  pool_case(1, 2, 7, 8, 2, 2, 3, 3, 0, 0, 0, 1, 1);   // rows and columns no window reaches
  {   // NaNs never win and ties keep the first value (here -0 before +0), as the scalar loop
    trl_pool_geom g;
    trl_tensor fake = { .dtype = TRL_F32, .ndim = 4, .shape = {1, 1, 3, 40} };
    trl_pool_params q = { {3, 3}, {2, 2}, {1, 1}, 0, 1 };
    float x[120], y[40];   // output 2 x 20
    for (int i = 0; i < 120; i++) x[i] = i % 7 == 0 ? NAN : (i % 2 ? -0.0f : 0.0f) - (i % 5);
    pool2d_check(&g, "maxpool2d", &fake, &q);
    maxpool2d_forward(y, x, &g);
    int bad = 0;
    for (int ow = 0; ow < g.OW; ow++) {   // output row 0 sees input rows 0 and 1
      float m = -INFINITY;
      for (int ih = 0; ih < 2; ih++)
        for (int iw = 2 * ow - 1; iw <= 2 * ow + 1; iw++)
          if (iw >= 0 && iw < 40 && x[ih * 40 + iw] > m) m = x[ih * 40 + iw];
      bad += memcmp(&m, &y[ow], sizeof m) != 0;
    }
    CHECK(bad == 0, "3x3/2 max pool with NaNs and signed zeros: %d outputs differ", bad);
  }
  {   // backward (8 outputs at a time with AVX2): ties go to the first maximum in row-major
      // window order, a NaN never wins unless it comes first; the same bits as one at a time
    trl_pool_geom g;
    enum { H = 9, W = 41 };
    trl_tensor fake = { .dtype = TRL_F32, .ndim = 4, .shape = {1, 1, H, W} };
    trl_pool_params q = { {3, 3}, {2, 2}, {1, 1}, 0, 1 };
    pool2d_check(&g, "maxpool2d", &fake, &q);
    float x[H * W], dx[H * W], want[H * W], *go = frand((int64_t)g.OH * g.OW);
    for (int i = 0; i < H * W; i++) {
      x[i] = i % 11 == 0 ? NAN : (float)((i * 7) % 3);   // many ties
      dx[i] = want[i] = (float)(i % 5) / 3;
    }
    maxpool2d_backward(dx, go, x, &g);
    for (int oh = 0; oh < g.OH; oh++)
      for (int ow = 0; ow < g.OW; ow++) {
        int h0 = 2 * oh - 1 < 0 ? 0 : 2 * oh - 1, w0 = 2 * ow - 1 < 0 ? 0 : 2 * ow - 1;
        int best = h0 * W + w0;
        for (int ih = h0; ih < 2 * oh + 2 && ih < H; ih++)
          for (int iw = w0; iw < 2 * ow + 2 && iw < W; iw++)
            if (x[ih * W + iw] > x[best]) best = ih * W + iw;
        want[best] += go[oh * g.OW + ow];
      }
    int bad = 0;
    for (int i = 0; i < H * W; i++) bad += memcmp(&dx[i], &want[i], sizeof(float)) != 0;
    CHECK(bad == 0, "3x3/2 max pool backward with ties and NaNs: %d of %d dx differ", bad, H * W);
    for (int i = 0; i < H * W; i++) dx[i] = (float)(i % 5) / 3;
    pool_arg_same(&g, x, go, dx, "3x3/2 max pool with ties and NaNs");
    free(go);
  }
  for (int t = 0; t < 12; t++) {
    int kh = irand(1, 4), kw = irand(1, 4), H = irand(1, 9), W = irand(1, 9);
    int ph = irand(0, kh / 2), pw = irand(0, kw / 2);
    if (H + 2 * ph < kh || W + 2 * pw < kw) {
      t--;
      continue;
    }
    pool_case(irand(1, 3), irand(1, 3), H, W, kh, kw, irand(1, 3), irand(1, 3), ph, pw,
              irand(0, 1), irand(0, 1), 1);
  }
  // global average pooling: equals avg pooling with the whole plane as the window
  {
    int B = 2, C = 3, H = 5, W = 7, n = B * C * H * W;
    float *x = frand(n), y[6], yr[6], *dx = fvec(n), *dxr = fvec(n), go[6];
    for (int i = 0; i < 6; i++) go[i] = (float)(i + 1);
    trl_pool_geom g = { .B = B, .C = C, .H = H, .W = W, .OH = 1, .OW = 1, .kh = H, .kw = W,
                        .sh = 1, .sw = 1, .count_include_pad = 1 };
    global_avgpool2d_forward(y, x, B * C, H * W);
    avgpool2d_forward_ref(yr, x, &g);
    CHECK(reldiff(y, yr, 6) < 1e-5, "global avg forward");
    global_avgpool2d_backward(dx, go, B * C, H * W);
    avgpool2d_backward_ref(dxr, go, &g);
    CHECK(reldiff(dx, dxr, n) < 1e-6 && fabsf(dx[0] - 1.0f / 35) < 1e-7, "global avg backward");
    free(x), free(dx), free(dxr);
  }
}

/* }================================================================== */

/* {==================================================================
** Batchnorm kernels
** =================================================================== */

typedef struct {
  int B, C, S, training;
  double *x, *gamma, *beta, *target;
  const float *rm, *rv, *r;
  double eps;
} bn_ctx;

// Double-precision training / inference forward; returns sum(r .* y).
static double bn_loss (void *ctx, int64_t i, double delta) {
  bn_ctx *c = ctx;
  c->target[i] += delta;
  double loss = 0, M = (double)c->B * c->S;
  for (int ch = 0; ch < c->C; ch++) {
    double mean = 0, var = 0;
    for (int n = 0; n < c->B; n++)
      for (int s = 0; s < c->S; s++) mean += c->x[((size_t)n * c->C + ch) * c->S + s] / M;
    for (int n = 0; n < c->B; n++)
      for (int s = 0; s < c->S; s++) {
        double v = c->x[((size_t)n * c->C + ch) * c->S + s] - mean;
        var += v * v / M;
      }
    if (!c->training) mean = c->rm[ch], var = c->rv[ch];
    for (int n = 0; n < c->B; n++)
      for (int s = 0; s < c->S; s++) {
        size_t k = ((size_t)n * c->C + ch) * c->S + s;
        loss += c->r[k] * (c->gamma[ch] * (c->x[k] - mean) / sqrt(var + c->eps) + c->beta[ch]);
      }
  }
  c->target[i] -= delta;
  return loss;
}

static double *dvec (const float *p, int64_t n) {
  double *d = calloc((size_t)n, sizeof(double));
  for (int64_t i = 0; i < n; i++) d[i] = p[i];
  return d;
}

static void bn_case (int B, int C, int S, int training) {
  char name[96];
  snprintf(name, sizeof name, "batchnorm B%d C%d S%d %s", B, C, S, training ? "train" : "infer");
  int64_t n = (int64_t)B * C * S;
  float eps = 1e-5f, *x = frand(n), *gamma = frand(C), *beta = frand(C), *r = frand(n);
  for (int64_t i = 0; i < n; i++) x[i] = 3 * x[i] + 2;     // a mean far from 0
  float *rm = frand(C), *rv = frand(C), *mean = fvec(C), *var = fvec(C), *is = fvec(C);
  for (int c = 0; c < C; c++) rv[c] = 1.5f + rv[c];
  if (training) {
    batchnorm_stats(mean, var, x, B, C, S);
    for (int c = 0; c < C; c++) is[c] = 1 / sqrtf(var[c] + eps);
  } else {
    for (int c = 0; c < C; c++) mean[c] = rm[c], is[c] = 1 / sqrtf(rv[c] + eps);
  }
  float *y = fvec(n), *dx = fvec(n), *dg = fvec(C), *db = fvec(C);
  batchnorm_forward(y, x, mean, is, gamma, beta, B, C, S);
  bn_ctx c = { B, C, S, training, dvec(x, n), dvec(gamma, C), dvec(beta, C), NULL, rm, rv, r, eps };
  c.target = c.x;
  // the double forward is the same function as the float kernels
  double l = bn_loss(&c, 0, 0), lf = gc_dot(r, y, n);
  CHECK(fabs(l - lf) < 1e-4 * (1 + fabs(l)), "%s: double forward %.9g vs float %.9g", name, l, lf);
  batchnorm_backward(dx, dg, db, r, x, mean, is, gamma, B, C, S, training);
  CHECK(gradcheck("bn dx", bn_loss, &c, n, dx, 1e-4, 2e-4, 2e-3) == 0, "%s: dx", name);
  c.target = c.gamma;
  CHECK(gradcheck("bn dgamma", bn_loss, &c, C, dg, 1e-4, 2e-4, 2e-3) == 0, "%s: dgamma", name);
  c.target = c.beta;
  CHECK(gradcheck("bn dbeta", bn_loss, &c, C, db, 1e-4, 2e-4, 2e-3) == 0, "%s: dbeta", name);
  if (training) {   // against the textbook chain rule, both accumulating onto 1s
    float *dx1 = fvec(n), *dg1 = fvec(C), *db1 = fvec(C), *dx2 = fvec(n), *dg2 = fvec(C),
          *db2 = fvec(C);
    for (int64_t i = 0; i < n; i++) dx1[i] = dx2[i] = 1;
    for (int i = 0; i < C; i++) dg1[i] = dg2[i] = db1[i] = db2[i] = 1;
    batchnorm_backward(dx1, dg1, db1, r, x, mean, is, gamma, B, C, S, 1);
    batchnorm_backward_ref(dx2, dg2, db2, r, x, gamma, eps, B, C, S);
    double d;
    CHECK((d = reldiff(dx1, dx2, n)) < 1e-4, "%s: dx vs ref %.3g", name, d);
    CHECK((d = reldiff(dg1, dg2, C)) < 1e-4, "%s: dgamma vs ref %.3g", name, d);
    CHECK((d = reldiff(db1, db2, C)) < 1e-4, "%s: dbeta vs ref %.3g", name, d);
    free(dx1), free(dg1), free(db1), free(dx2), free(dg2), free(db2);
  }
  free(c.x), free(c.gamma), free(c.beta);
  free(x), free(gamma), free(beta), free(r), free(rm), free(rv), free(mean), free(var), free(is);
  free(y), free(dx), free(dg), free(db);
}

static void test_bn_kernels (void) {
  // (N=2, C=2, S=2): channel 0 holds 1,2,3,4 (mean 2.5, biased var 1.25),
  // channel 1 holds -1,1,-3,3 (mean 0, var 5)
  float x[8] = { 1, 2, -1, 1, 3, 4, -3, 3 }, mean[2], var[2];
  batchnorm_stats(mean, var, x, 2, 2, 2);
  CHECK(mean[0] == 2.5f && fabsf(var[0] - 1.25f) < 1e-6 && mean[1] == 0 && var[1] == 5,
        "stats %g %g %g %g", mean[0], var[0], mean[1], var[1]);
  for (int t = 0; t < 2; t++) bn_case(3, 2, 5, t), bn_case(4, 3, 1, t), bn_case(2, 5, 12, t);
  bn_case(8, 4, 9 * 9 * 4, 1);   // big: OpenMP channels
  bn_case(1, 3, 7, 1);
}

/* }================================================================== */

/* {==================================================================
** Softmax kernels
** =================================================================== */

typedef struct {
  int O, K, I, logp;
  double *x;
  const float *r;
  const int64_t *labels;
} sm_ctx;

static double sm_loss (void *ctx, int64_t i, double delta) {
  sm_ctx *c = ctx;
  c->x[i] += delta;
  double loss = 0;
  for (int o = 0; o < c->O; o++)
    for (int j = 0; j < c->I; j++) {
      double *x = c->x + (size_t)o * c->K * c->I + j, m = -INFINITY, s = 0;
      for (int k = 0; k < c->K; k++) m = fmax(m, x[(size_t)k * c->I]);
      for (int k = 0; k < c->K; k++) s += exp(x[(size_t)k * c->I] - m);
      if (c->labels) {    // cross-entropy: logsumexp - x[label], weighted by r[o]
        loss += c->r[o] * (m + log(s) - x[c->labels[o]]);
        continue;
      }
      for (int k = 0; k < c->K; k++) {
        double v = x[(size_t)k * c->I] - m;
        size_t at = (size_t)o * c->K * c->I + (size_t)k * c->I + j;
        loss += c->r[at] * (c->logp ? v - log(s) : exp(v) / s);
      }
    }
  c->x[i] -= delta;
  return loss;
}

static void sm_case (int O, int K, int I, int logp, int grad) {
  char name[64];
  snprintf(name, sizeof name, "%s O%d K%d I%d", logp ? "log_softmax" : "softmax", O, K, I);
  int64_t n = (int64_t)O * K * I;
  float *x = frand(n), *r = frand(n), *y = fvec(n), *yr = fvec(n), *dx = fvec(n);
  for (int64_t i = 0; i < n; i++) x[i] *= 4;
  softmax_forward(y, x, O, K, I, logp);
  softmax_forward_ref(yr, x, O, K, I, logp);
  double d = reldiff(y, yr, n);
  CHECK(d < 1e-5, "%s: forward differs from ref by %.3g", name, d);
  softmax_backward(dx, r, y, O, K, I, logp);
  double *xd = dvec(x, n);
  sm_ctx c = { O, K, I, logp, xd, r, NULL };
  if (grad)
    CHECK(gradcheck(name, sm_loss, &c, n, dx, 1e-4, 1e-4, 1e-3) == 0, "%s: dx", name);
  free(x), free(r), free(y), free(yr), free(dx), free(xd);
}

static void test_softmax_kernels (void) {
  float x[4] = { 0, logf(3), 1000, 1000 }, y[4];
  softmax_forward(y, x, 2, 2, 1, 0);
  CHECK(fabsf(y[0] - 0.25f) < 1e-6 && fabsf(y[1] - 0.75f) < 1e-6 && y[2] == 0.5f && y[3] == 0.5f,
        "softmax by hand %g %g %g %g", y[0], y[1], y[2], y[3]);
  softmax_forward(y, x, 2, 2, 1, 1);
  CHECK(fabsf(y[0] - logf(0.25f)) < 1e-6 && fabsf(y[3] - logf(0.5f)) < 1e-6,
        "log_softmax by hand %g %g", y[0], y[3]);
  for (int logp = 0; logp < 2; logp++) {
    sm_case(3, 5, 1, logp, 1);
    sm_case(2, 4, 3, logp, 1);
    sm_case(1, 7, 70, logp, 1);       // crosses the 64-column strip
    sm_case(4, 1, 5, logp, 1);
    sm_case(300, 150, 1, logp, 0);    // big: OpenMP rows, forward only
  }
  // cross-entropy: zeros over 4 classes cost log 4; gradient (softmax - onehot) * dloss
  {
    float z[8] = { 0 }, loss[2], prob[8], dl[8] = { 0 }, go[2] = { 1, 2 };
    int64_t lab[2] = { 1, 3 };
    softmax_xent_forward(loss, prob, z, lab, 2, 4);
    CHECK(fabsf(loss[0] - logf(4)) < 1e-6 && fabsf(loss[1] - logf(4)) < 1e-6, "xent by hand %g",
          loss[0]);
    softmax_xent_backward(dl, go, prob, lab, 2, 4);
    CHECK(dl[0] == 0.25f && dl[1] == -0.75f && dl[4] == 0.5f && dl[7] == -1.5f,
          "xent grad by hand %g %g %g %g", dl[0], dl[1], dl[4], dl[7]);
  }
  {
    int N = 5, K = 7;
    float *x = frand(N * K), *r = frand(N), loss[5], *prob = fvec(N * K), *dx = fvec(N * K);
    float *lsm = fvec(N * K);
    int64_t lab[5] = { 0, 6, 3, 3, 1 };
    for (int i = 0; i < N * K; i++) x[i] *= 5;
    softmax_xent_forward(loss, prob, x, lab, N, K);
    softmax_forward(lsm, x, N, K, 1, 1);
    int ok = 1;
    for (int i = 0; i < N; i++) ok &= fabsf(loss[i] + lsm[i * K + lab[i]]) < 1e-5f;
    CHECK(ok, "xent equals -log_softmax at the label");
    softmax_xent_backward(dx, r, prob, lab, N, K);
    double *xd = dvec(x, N * K);
    sm_ctx c = { N, K, 1, 0, xd, r, lab };
    CHECK(gradcheck("xent", sm_loss, &c, N * K, dx, 1e-4, 1e-4, 1e-3) == 0, "xent dx");
    free(x), free(r), free(prob), free(dx), free(lsm), free(xd);
  }
}

/* }================================================================== */

/* {==================================================================
** Dropout kernels
** =================================================================== */

static void test_dropout_kernels (void) {
  int n = 20001;
  float *x = frand(n), *y = fvec(n), *y2 = fvec(n), *dx = fvec(n), *go = frand(n);
  uint8_t *mask = malloc(n), *mask2 = malloc(n);
  trl_rng r;
  trl_rng_seed(&r, 42);
  dropout_forward(y, mask, x, n, 0.3, &r);
  int kept = 0, ok = 1;
  for (int i = 0; i < n; i++) {
    kept += mask[i];
    ok &= mask[i] ? fabsf(y[i] - x[i] / 0.7f) < 1e-6f : y[i] == 0;
  }
  CHECK(fabs(kept / (double)n - 0.7) < 0.015, "kept fraction %g for p = 0.3", kept / (double)n);
  CHECK(ok, "kept elements scaled by 1/(1-p), dropped ones zero");
  trl_rng_seed(&r, 42);
  dropout_forward(y2, mask2, x, n, 0.3, &r);
  CHECK(memcmp(mask, mask2, n) == 0, "the same seed gives the same mask");
  for (int i = 0; i < n; i++) dx[i] = 1;
  dropout_backward(dx, go, mask, n, 1 / 0.7f);
  ok = 1;
  for (int i = 0; i < n; i++) ok &= fabsf(dx[i] - (1 + (mask[i] ? go[i] / 0.7f : 0))) < 1e-6f;
  CHECK(ok, "dropout backward accumulates mask * dout / (1-p)");
  dropout_forward(y, mask, x, n, 1.0, &r);
  ok = 1;
  for (int i = 0; i < n; i++) ok &= y[i] == 0 && mask[i] == 0;
  CHECK(ok, "p = 1 drops everything");
  free(x), free(y), free(y2), free(dx), free(go), free(mask), free(mask2);
}

/* }================================================================== */

/* {==================================================================
** Builders, errors and the tape
** =================================================================== */

static trl_tensor *tens (int ndim, const int64_t *shape, const float *data) {
  trl_tensor *t = NULL;
  CHECK_OK(trl_tensor_from_bytes(&t, TRL_F32, ndim, shape, data));
  return t;
}

static trl_tensor *trand (int ndim, const int64_t *shape) {
  int64_t n = 1;
  for (int i = 0; i < ndim; i++) n *= shape[i];
  float *d = frand(n);
  trl_tensor *t = tens(ndim, shape, d);
  free(d);
  return t;
}

// sum(y .* r) through the tape, then backward.
static void backward_dot (trl_tensor *y, trl_tensor *r) {
  trl_tensor *p = NULL, *l = NULL;
  CHECK_OK(trl_binary(&p, TRL_OP_MUL, y, r));
  CHECK_OK(trl_reduce(&l, TRL_OP_SUM, p, TRL_ALLDIMS, 0));
  CHECK_OK(trl_backward(l, NULL, 0));
  trl_tensor_release(p);
  trl_tensor_release(l);
}

static void test_errors (void) {
  int64_t xs[4] = { 2, 3, 5, 5 }, wsh[4] = { 4, 2, 3, 3 }, bs[1] = { 5 };
  trl_tensor *x = trand(4, xs), *w = trand(4, wsh), *b = trand(1, bs), *y = NULL;
  trl_conv_params p = trl_conv_defaults();
  CHECK(trl_conv2d(&y, x, w, NULL, &p) == TRL_ESHAPE, "conv channel mismatch");
  const char *m = trl_errmsg();
  CHECK(contains(m, "conv2d") && contains(m, "x is [2,3,5,5]") &&
        contains(m, "weight is [4,2,3,3]"), "message: %s", m);
  wsh[1] = 3;
  trl_tensor *w3 = trand(4, wsh);
  CHECK(trl_conv2d(&y, x, w3, b, &p) == TRL_ESHAPE && contains(trl_errmsg(), "bias is [5]") &&
        contains(trl_errmsg(), "[4,3,3,3]"), "bias mismatch: %s", trl_errmsg());
  p.groups = 2;
  CHECK(trl_conv2d(&y, x, w3, NULL, &p) == TRL_ESHAPE && contains(trl_errmsg(), "groups 2"),
        "groups: %s", trl_errmsg());
  p = trl_conv_defaults();
  p.dilation[0] = 3;
  CHECK(trl_conv2d(&y, x, w3, NULL, &p) == TRL_ESHAPE && contains(trl_errmsg(), "larger"),
        "dilated kernel too big: %s", trl_errmsg());
  trl_pool_params pp = trl_pool_defaults(3);
  pp.pad[0] = 2;
  CHECK(trl_maxpool2d(&y, x, &pp) == TRL_EARG && contains(trl_errmsg(), "maxpool2d") &&
        contains(trl_errmsg(), "[2,3,5,5]"), "pool pad: %s", trl_errmsg());
  CHECK(trl_avgpool2d(&y, b, &pp) == TRL_ESHAPE && contains(trl_errmsg(), "[5]"),
        "pool 1-D: %s", trl_errmsg());
  trl_bn_params bp = trl_bn_defaults();
  CHECK(trl_batchnorm(&y, x, b, NULL, b, b, &bp) == TRL_ESHAPE &&
        contains(trl_errmsg(), "gamma is [5]") && contains(trl_errmsg(), "x is [2,3,5,5]"),
        "bn gamma: %s", trl_errmsg());
  int64_t ls[2] = { 3, 4 }, ns[1] = { 3 };
  trl_tensor *logits = trand(2, ls), *lab = NULL;
  int64_t labv[3] = { 0, 7, 1 };
  CHECK_OK(trl_tensor_from_bytes(&lab, TRL_I64, 1, ns, labv));
  CHECK(trl_softmax_xent(&y, logits, lab) == TRL_EARG && contains(trl_errmsg(), "label 7") &&
        contains(trl_errmsg(), "K = 4"), "label range: %s", trl_errmsg());
  CHECK(trl_softmax_xent(&y, x, lab) == TRL_ESHAPE && contains(trl_errmsg(), "[2,3,5,5]"),
        "xent logits shape: %s", trl_errmsg());
  CHECK(trl_softmax(&y, logits, 2) == TRL_EARG, "softmax dim out of range: %s", trl_errmsg());
  CHECK(trl_dropout(&y, x, 1.5, 1, NULL) == TRL_EARG, "dropout p: %s", trl_errmsg());
  trl_tensor_release(x), trl_tensor_release(w), trl_tensor_release(b), trl_tensor_release(w3);
  trl_tensor_release(logits), trl_tensor_release(lab);
}

// Builders on a non-contiguous x, gradients through the tape, against the kernels.
static void test_tape (void) {
  long live0 = trl_tensor_live();
  int prev = trl_tape_set(1, 1);
  {   // conv2d with bias, x given as a permuted (non-contiguous) view of (N,H,C,W)
    int64_t xs[4] = { 2, 5, 3, 6 }, wsh[4] = { 4, 3, 3, 3 }, bs[1] = { 4 };
    trl_tensor *xp = trand(4, xs), *x = NULL, *w = trand(4, wsh), *b = trand(1, bs), *y = NULL;
    int perm[4] = { 0, 2, 1, 3 };
    CHECK_OK(trl_attach_grad(xp, TRL_GRAD_WRITE));
    CHECK_OK(trl_permute(&x, xp, perm));   // recorded, so the gradient reaches xp
    CHECK_OK(trl_attach_grad(w, TRL_GRAD_WRITE));
    CHECK_OK(trl_attach_grad(b, TRL_GRAD_WRITE));
    trl_conv_params p = trl_conv_defaults();
    p.stride[1] = 2, p.pad[0] = 1, p.pad[1] = 1;
    CHECK_OK(trl_conv2d(&y, x, w, b, &p));
    trl_tensor *xc = NULL;
    CHECK_OK(trl_tensor_clone(&xc, x, TRL_F32));
    trl_conv_geom g;
    CHECK_OK(conv2d_check(&g, x, w, b, &p));
    CHECK(y->shape[2] == 5 && y->shape[3] == 3, "conv out shape %lld %lld",
          (long long)y->shape[2], (long long)y->shape[3]);
    int64_t ny = trl_numel(y);
    float *yr = fvec(ny);
    conv2d_forward_ref(yr, trl_f32(xc), trl_f32(w), trl_f32(b), &g);
    CHECK(reldiff(trl_f32(y), yr, ny) < 1e-5, "conv builder forward");
    trl_tensor *r = trand(y->ndim, y->shape);
    backward_dot(y, r);
    float *dx = fvec(trl_numel(x)), *dw = fvec(trl_numel(w)), *db = fvec(4);
    conv2d_backward_ref(dx, dw, db, trl_f32(r), trl_f32(xc), trl_f32(w), &g);
    trl_tensor *gx = NULL;   // xp->grad is (N,H,C,W): view it as (N,C,H,W) like dx
    CHECK_OK(trl_view_permute(&gx, xp->grad, perm));
    trl_tensor *gxc = NULL;
    CHECK_OK(trl_tensor_clone(&gxc, gx, TRL_F32));
    CHECK(reldiff(trl_f32(gxc), dx, trl_numel(x)) < 1e-4, "conv tape dx");
    CHECK(reldiff(trl_f32(w->grad), dw, trl_numel(w)) < 1e-4, "conv tape dw");
    CHECK(reldiff(trl_f32(b->grad), db, 4) < 1e-4, "conv tape db");
    free(yr), free(dx), free(dw), free(db);
    trl_tensor *ts[] = { xp, x, w, b, y, xc, r, gx, gxc };
    for (int i = 0; i < 9; i++) trl_tensor_release(ts[i]);
  }
  {   // no bias, and batchnorm with fixed gamma/beta (NULL): absent inputs get no gradient
    int64_t xs[4] = { 2, 4, 5, 5 }, wsh[4] = { 4, 1, 3, 3 }, cs[1] = { 4 };
    float zero[4] = { 0, 0, 0, 0 }, one[4] = { 1, 1, 1, 1 };
    trl_tensor *x = trand(4, xs), *w = trand(4, wsh), *y = NULL, *z = NULL;
    trl_tensor *rm = tens(1, cs, zero), *rv = tens(1, cs, one), *r = NULL;
    CHECK_OK(trl_attach_grad(x, TRL_GRAD_WRITE));
    CHECK_OK(trl_attach_grad(w, TRL_GRAD_ADD));
    trl_conv_params p = trl_conv_defaults();
    p.groups = 4, p.pad[0] = p.pad[1] = 1;
    CHECK_OK(trl_conv2d(&y, x, w, NULL, &p));
    trl_bn_params bp = trl_bn_defaults();
    CHECK_OK(trl_batchnorm(&z, y, NULL, NULL, rm, rv, &bp));
    r = trand(z->ndim, z->shape);
    CHECK_OK(trl_backward(z, r, 0));
    // by hand through the kernels: dy from batchnorm, then the depthwise conv backward
    trl_conv_geom g;
    CHECK_OK(conv2d_check(&g, x, w, NULL, &p));
    int64_t ny = trl_numel(y), nx = trl_numel(x), nw = trl_numel(w);
    float *mean = fvec(4), *var = fvec(4), *dy = fvec(ny), *dx = fvec(nx), *dw = fvec(nw);
    batchnorm_stats(mean, var, trl_f32(y), 2, 4, 25);
    for (int c = 0; c < 4; c++) var[c] = 1 / sqrtf(var[c] + 1e-5f);
    batchnorm_backward(dy, NULL, NULL, trl_f32(r), trl_f32(y), mean, var, NULL, 2, 4, 25, 1);
    conv2d_backward_ref(dx, dw, NULL, dy, trl_f32(x), trl_f32(w), &g);
    CHECK(reldiff(trl_f32(x->grad), dx, nx) < 1e-4, "conv+bn tape dx");
    CHECK(reldiff(trl_f32(w->grad), dw, nw) < 1e-4, "conv+bn tape dw");
    free(mean), free(var), free(dy), free(dx), free(dw);
    trl_tensor *ts[] = { x, w, y, z, rm, rv, r };
    for (int i = 0; i < 7; i++) trl_tensor_release(ts[i]);
  }
  {   // maxpool -> avgpool -> global avg pool chain; checks shapes and one gradient by hand
    int64_t xs[4] = { 1, 1, 4, 4 };
    float xv[16];
    for (int i = 0; i < 16; i++) xv[i] = (float)i;
    trl_tensor *x = tens(4, xs, xv), *a = NULL, *b = NULL, *c = NULL;
    CHECK_OK(trl_attach_grad(x, TRL_GRAD_WRITE));
    trl_pool_params p = trl_pool_defaults(2);
    CHECK_OK(trl_maxpool2d(&a, x, &p));            // [[5,7],[13,15]]
    trl_pool_params q = { {2, 2}, {1, 1}, {1, 1}, 0, 0 };
    CHECK_OK(trl_avgpool2d(&b, a, &q));            // 3x3, padding excluded
    CHECK_OK(trl_global_avgpool2d(&c, b));
    CHECK(c->ndim == 4 && c->shape[2] == 1 && b->shape[2] == 3, "pool shapes");
    // every a element lands in 4 windows; a corner window averages 1 element, an edge 2, the
    // centre 4: d/da = (1 + 1/2 + 1/2 + 1/4) / 9 = 0.25 for each of the 4 elements
    CHECK(fabs(trl_get(c, 0) - (5 + 7 + 13 + 15) / 4.0) < 1e-5, "chain value %g", trl_get(c, 0));
    CHECK_OK(trl_backward(c, NULL, 0));
    CHECK(fabs(trl_get(x->grad, 5) - 0.25) < 1e-6 && trl_get(x->grad, 0) == 0 &&
          fabs(trl_get(x->grad, 15) - 0.25) < 1e-6, "pool chain grads %g %g",
          trl_get(x->grad, 5), trl_get(x->grad, 15));
    trl_tensor_release(x), trl_tensor_release(a), trl_tensor_release(b), trl_tensor_release(c);
  }
  {   // a recorded max pool keeps its input when the ReLU before it does (relu -> pool), the
      // taps of its maxima otherwise (relu -> + 0 -> pool): the same gradient bits either way
    int64_t xs[4] = { 2, 3, 13, 21 }, zs[1] = { 1 }, ms[4] = { 2, 3, 7, 11 };
    int64_t n = 2 * 3 * 13 * 21;
    float zv = 0.0f;
    trl_tensor *x = trand(4, xs), *zero = tens(1, zs, &zv), *g1 = NULL, *w = trand(4, ms);
    trl_pool_params p = { {3, 3}, {2, 2}, {1, 1}, 0, 1 };
    for (int path = 0; path < 2; path++) {
      trl_tensor *r = NULL, *r0 = NULL, *m = NULL;
      CHECK_OK(trl_attach_grad(x, TRL_GRAD_WRITE));
      CHECK_OK(trl_unary(&r, TRL_OP_RELU, x));
      if (path == 1) CHECK_OK(trl_binary(&r0, TRL_OP_ADD, r, zero));
      CHECK_OK(trl_maxpool2d(&m, path ? r0 : r, &p));
      CHECK(m->node && m->node->saved[0]->dtype == (path ? TRL_U8 : TRL_F32),
            "max pool after %s saves %s", path ? "an add" : "a relu", path ? "taps" : "x");
      CHECK_OK(trl_backward(m, w, 0));
      if (path == 0) CHECK_OK(trl_tensor_clone(&g1, x->grad, TRL_F32));
      else CHECK(memcmp(trl_data(g1), trl_data(x->grad), sizeof(float) * (size_t)n) == 0,
                 "max pool gradients through taps and through x differ");
      trl_tensor_release(r), trl_tensor_release(r0), trl_tensor_release(m);
    }
    trl_tensor_release(x), trl_tensor_release(zero), trl_tensor_release(g1), trl_tensor_release(w);
  }
  {   // batchnorm by hand: train updates running stats, inference uses them
    int64_t xs[3] = { 2, 2, 2 }, cs[1] = { 2 };
    float xv[8] = { 1, 2, -1, 1, 3, 4, -3, 3 }, gv[2] = { 2, 1 }, bv[2] = { 0.5f, -1 };
    float rmv[2] = { 0, 0 }, rvv[2] = { 1, 1 };
    trl_tensor *x = tens(3, xs, xv), *gm = tens(1, cs, gv), *bt = tens(1, cs, bv);
    trl_tensor *rm = tens(1, cs, rmv), *rv = tens(1, cs, rvv), *y = NULL, *y2 = NULL;
    CHECK_OK(trl_attach_grad(x, TRL_GRAD_WRITE));
    CHECK_OK(trl_attach_grad(gm, TRL_GRAD_WRITE));
    trl_bn_params p = trl_bn_defaults();
    CHECK(p.training == 1 && p.momentum == 0.9f && p.eps == 1e-5f, "bn defaults follow the tape");
    CHECK_OK(trl_batchnorm(&y, x, gm, bt, rm, rv, &p));
    // running = 0.9 * running + 0.1 * batch: means 0.25, 0; biased vars 1.025, 1.4
    CHECK(fabs(trl_get(rm, 0) - 0.25) < 1e-6 && trl_get(rm, 1) == 0 &&
          fabs(trl_get(rv, 0) - 1.025) < 1e-6 && fabs(trl_get(rv, 1) - 1.4) < 1e-6,
          "running stats %g %g %g %g", trl_get(rm, 0), trl_get(rm, 1), trl_get(rv, 0),
          trl_get(rv, 1));
    // y[0,0,0] = 2 * (1 - 2.5) / sqrt(1.25 + 1e-5) + 0.5; y[1,1,1] = (3 - 0) / sqrt(5 + 1e-5) - 1
    CHECK(fabs(trl_get(y, 0) - (2 * -1.5 / sqrt(1.25 + 1e-5) + 0.5)) < 1e-5 &&
          fabs(trl_get(y, 7) - (3 / sqrt(5 + 1e-5) - 1)) < 1e-5, "bn train y %g %g",
          trl_get(y, 0), trl_get(y, 7));
    trl_tensor *ones = NULL;
    CHECK_OK(trl_tensor_empty_like(&ones, y));
    trl_fill(ones, 1);
    CHECK_OK(trl_backward(y, ones, 0));
    // d(sum y)/dx = 0 in training (normalized values sum to a constant); d/dgamma = sum xhat = 0
    CHECK(fabs(trl_get(x->grad, 0)) < 1e-5 && fabs(trl_get(gm->grad, 0)) < 1e-5,
          "bn train grads %g %g", trl_get(x->grad, 0), trl_get(gm->grad, 0));
    p.training = 0;
    CHECK_OK(trl_batchnorm(&y2, x, gm, bt, rm, rv, &p));
    CHECK(fabs(trl_get(y2, 0) - (2 * (1 - 0.25) / sqrt(1.025 + 1e-5) + 0.5)) < 1e-5 &&
          fabs(trl_get(y2, 7) - (3 / sqrt(1.4 + 1e-5) - 1)) < 1e-5, "bn infer y %g %g",
          trl_get(y2, 0), trl_get(y2, 7));
    CHECK(fabs(trl_get(rm, 0) - 0.25) < 1e-6, "inference leaves running stats alone");
    CHECK_OK(trl_backward(y2, ones, 0));
    // inference is affine: dx = gamma / sqrt(rv + eps)
    CHECK(fabs(trl_get(x->grad, 0) - 2 / sqrt(1.025 + 1e-5)) < 1e-5, "bn infer dx %g",
          trl_get(x->grad, 0));
    trl_tensor *ts[] = { x, gm, bt, rm, rv, y, y2, ones };
    for (int i = 0; i < 8; i++) trl_tensor_release(ts[i]);
  }
  {   // softmax over dim 1 of (2,3,4), log_softmax, cross-entropy and dropout through the tape
    int64_t xs[3] = { 2, 3, 4 }, ls[2] = { 4, 5 }, ns[1] = { 4 };
    trl_tensor *x = trand(3, xs), *y = NULL, *z = NULL, *r = trand(3, xs);
    CHECK_OK(trl_attach_grad(x, TRL_GRAD_WRITE));
    CHECK_OK(trl_softmax(&y, x, -2));
    float *yr = fvec(24), *dx = fvec(24);
    softmax_forward_ref(yr, trl_f32(x), 2, 3, 4, 0);
    CHECK(reldiff(trl_f32(y), yr, 24) < 1e-5, "softmax builder forward");
    backward_dot(y, r);
    softmax_backward(dx, trl_f32(r), yr, 2, 3, 4, 0);
    CHECK(reldiff(trl_f32(x->grad), dx, 24) < 1e-4, "softmax tape dx");
    CHECK_OK(trl_log_softmax(&z, x, 2));
    softmax_forward_ref(yr, trl_f32(x), 6, 4, 1, 1);
    CHECK(reldiff(trl_f32(z), yr, 24) < 1e-5, "log_softmax builder forward");
    trl_tensor *logits = trand(2, ls), *lab = NULL, *loss = NULL;
    int64_t labv[4] = { 4, 0, 2, 2 };
    CHECK_OK(trl_tensor_from_bytes(&lab, TRL_I64, 1, ns, labv));
    CHECK_OK(trl_attach_grad(logits, TRL_GRAD_WRITE));
    CHECK_OK(trl_softmax_xent(&loss, logits, lab));
    CHECK(loss->ndim == 1 && loss->shape[0] == 4, "xent gives one loss per sample");
    trl_tensor *ones = NULL;
    CHECK_OK(trl_tensor_empty_like(&ones, loss));
    trl_fill(ones, 1);
    CHECK_OK(trl_backward(loss, ones, 0));   // rows of softmax - onehot sum to zero
    double rs = 0;
    for (int k = 0; k < 5; k++) rs += trl_get(logits->grad, 5 + k);
    CHECK(fabs(rs) < 1e-6 && trl_get(logits->grad, 5) < 0, "xent grad row sum %g", rs);
    trl_tensor *d = NULL, *d2 = NULL;
    trl_rng rng;
    trl_rng_seed(&rng, 7);
    CHECK_OK(trl_dropout(&d, x, 0.5, 1, &rng));
    CHECK_OK(trl_attach_grad(x, TRL_GRAD_WRITE));
    CHECK_OK(trl_backward(d, r, 0));
    int ok = 1;
    for (int i = 0; i < 24; i++) {
      double v = trl_get(d, i), gx = trl_get(x->grad, i);
      ok &= v == 0 ? gx == 0 : fabs(gx - 2 * trl_get(r, i)) < 1e-6;
    }
    CHECK(ok, "dropout tape grad follows the mask");
    CHECK_OK(trl_dropout(&d2, x, 0.5, 0, &rng));
    CHECK(d2 == x, "inference dropout is the identity");
    free(yr), free(dx);
    trl_tensor *ts[] = { x, y, z, r, logits, lab, loss, ones, d, d2 };
    for (int i = 0; i < 10; i++) trl_tensor_release(ts[i]);
  }
  trl_tape_set(prev & 1, prev >> 1 & 1);
  CHECK(trl_tensor_live() == live0, "tensors leaked: %ld live, %ld before",
        trl_tensor_live(), live0);
}

/* }================================================================== */

/* {==================================================================
** Inference fusion: conv2d + predict-mode BatchNorm + clamp, BatchNorm + clamp
** =================================================================== */

// max |a - b| over two float32 tensors of the same size
static double maxdiff (const trl_tensor *a, const trl_tensor *b, double *amax) {
  int64_t n = trl_numel(a);
  double d = 0, m = 0;
  for (int64_t i = 0; i < n; i++) {
    double u = trl_f32(a)[i], v = trl_f32(b)[i];
    if (fabs(u - v) > d || u != u || v != v) d = u != u || v != v ? INFINITY : fabs(u - v);
    if (fabs(v) > m) m = fabs(v);
  }
  if (amax) *amax = m;
  return d;
}

// clamp(t, lo, hi) in place, as relu's x > 0 ? x : 0 does
static void clamp_tensor (trl_tensor *t, float lo, float hi) {
  int64_t n = trl_numel(t);
  float *p = trl_f32(t);
  for (int64_t i = 0; i < n; i++) { float v = p[i] > lo ? p[i] : lo; p[i] = v < hi ? v : hi; }
}

// One case: fused vs conv2d -> batchnorm (predict) -> clamp; bit-identical without a bias.
static void fused_case (int B, int C, int H, int W, int OC, int K, int stride, int pad, int G,
                        int bias, int bn, int gamma, float lo, float hi) {
  int64_t xs[4] = { B, C, H, W }, wsh[4] = { OC, C / G, K, K }, cs[1] = { OC };
  trl_tensor *x = trand(4, xs), *w = trand(4, wsh), *b = bias ? trand(1, cs) : NULL;
  trl_tensor *gm = trand(1, cs), *bt = trand(1, cs), *mu = trand(1, cs), *var = trand(1, cs);
  for (int c = 0; c < OC; c++) trl_f32(var)[c] = 0.5f + fabsf(trl_f32(var)[c]);
  trl_conv_params p = trl_conv_defaults();
  p.stride[0] = p.stride[1] = stride, p.pad[0] = p.pad[1] = pad, p.groups = G;
  trl_bn_ref ref = { gamma ? gm : NULL, bt, mu, var, 1e-3f };
  trl_bn_params bp = trl_bn_defaults();
  bp.training = 0, bp.eps = 1e-3f;
  trl_tensor *y = NULL, *c = NULL, *r = NULL;
  CHECK_OK(trl_conv2d_bn_act(&y, x, w, b, bn ? &ref : NULL, lo, hi, &p, NULL));
  CHECK_OK(trl_conv2d(&c, x, w, b, &p));
  if (bn) CHECK_OK(trl_batchnorm(&r, c, gamma ? gm : NULL, bt, mu, var, &bp));
  else r = c, c = NULL;
  if (y && r) {
    clamp_tensor(r, lo, hi);
    double amax, d = maxdiff(y, r, &amax);
    if (!bias)
      CHECK(d == 0, "fused B%d C%d %dx%d OC%d k%d s%d p%d g%d bn%d: differs by %g", B, C, H, W,
            OC, K, stride, pad, G, bn, d);
    else
      CHECK(d <= 1e-5 * (amax + 1), "fused with bias B%d C%d %dx%d OC%d k%d s%d g%d: %g of %g",
            B, C, H, W, OC, K, stride, G, d, amax);
  }
  trl_tensor *t[9] = { x, w, b, gm, bt, mu, var, y, c };
  for (int i = 0; i < 9; i++) trl_tensor_release(t[i]);
  trl_tensor_release(r);
}

static void test_fused (void) {
  float inf = INFINITY;
  // im2col one image at a time and batched (small maps), pointwise, Winograd (3x3 s1,
  // >= 10x10), depthwise 3x3 and generic, grouped; odd sizes, padding, the three clamps
  fused_case(2, 3, 17, 15, 8, 7, 2, 3, 1, 0, 1, 1, 0, inf);
  fused_case(3, 16, 12, 12, 16, 3, 1, 1, 1, 0, 1, 1, 0, inf);
  fused_case(2, 8, 7, 9, 12, 3, 1, 1, 1, 0, 1, 0, -inf, inf);
  fused_case(5, 12, 6, 5, 20, 1, 1, 0, 1, 0, 1, 1, 0, 6);
  fused_case(2, 12, 33, 31, 20, 1, 1, 0, 1, 0, 1, 1, 0, inf);
  fused_case(2, 12, 11, 13, 12, 3, 1, 1, 12, 0, 1, 1, 0, 6);
  fused_case(2, 12, 11, 13, 12, 3, 2, 1, 12, 0, 1, 1, 0, 6);
  fused_case(2, 6, 9, 9, 6, 5, 1, 2, 6, 0, 1, 1, 0, inf);
  fused_case(2, 8, 10, 10, 12, 3, 2, 1, 4, 0, 1, 1, 0, inf);
  fused_case(3, 16, 12, 12, 16, 3, 1, 1, 1, 1, 1, 1, 0, inf);
  fused_case(2, 12, 6, 5, 20, 1, 1, 0, 1, 1, 1, 1, 0, inf);
  fused_case(2, 3, 9, 9, 4, 3, 2, 1, 1, 1, 0, 1, 0, inf);   // conv + bias + ReLU, no BN

  // bn_act == batchnorm then clamp, bit for bit; NaN goes to lo as relu's does
  int64_t xs[3] = { 3, 5, 37 }, cs[1] = { 5 };
  trl_tensor *x = trand(3, xs), *gm = trand(1, cs), *bt = trand(1, cs), *mu = trand(1, cs);
  trl_tensor *var = trand(1, cs), *y = NULL, *r = NULL;
  for (int c = 0; c < 5; c++) trl_f32(var)[c] = 1 + fabsf(trl_f32(var)[c]);
  trl_f32(x)[4] = NAN;
  trl_bn_ref ref = { gm, bt, mu, var, 1e-5f };
  trl_bn_params bp = trl_bn_defaults();
  bp.training = 0;
  CHECK_OK(trl_bn_act(&y, x, &ref, 0, inf));
  CHECK_OK(trl_batchnorm(&r, x, gm, bt, mu, var, &bp));
  if (y && r) {
    clamp_tensor(r, 0, inf);
    CHECK(maxdiff(y, r, NULL) == 0 && trl_f32(y)[4] == 0, "bn_act differs: %g, NaN -> %g",
          maxdiff(y, r, NULL), trl_f32(y)[4]);
  }
  trl_tensor_release(y), trl_tensor_release(r);

  // errors: a wrong-sized vector names it and both shapes; recording is refused
  int64_t bad[1] = { 4 };
  trl_tensor *v4 = trand(1, bad);
  trl_bn_ref wrong = { gm, bt, mu, v4, 1e-5f };
  CHECK(trl_bn_act(&y, x, &wrong, 0, inf) == TRL_ESHAPE && contains(trl_errmsg(), "bn_act") &&
        contains(trl_errmsg(), "running_var") && contains(trl_errmsg(), "[4]"),
        "bn_act bad var: %s", trl_errmsg());
  int64_t x4s[4] = { 1, 5, 4, 4 }, ws[4] = { 5, 5, 3, 3 };
  trl_tensor *x4 = trand(4, x4s), *w = trand(4, ws);
  int prev = trl_tape_set(1, 0);
  CHECK_OK(trl_attach_grad(x4, TRL_GRAD_WRITE));
  CHECK(trl_conv2d_bn_act(&y, x4, w, NULL, &ref, 0, inf, NULL, NULL) == TRL_EARG &&
        contains(trl_errmsg(), "inference only") && contains(trl_errmsg(), "[1,5,4,4]"),
        "conv2d_bn_act while recording: %s", trl_errmsg());
  trl_tape_set(prev & 1, (prev >> 1) & 1);
  trl_tensor *t[8] = { x, gm, bt, mu, var, v4, x4, w };
  for (int i = 0; i < 8; i++) trl_tensor_release(t[i]);
}

// A predict-mode BatchNorm over n channels with random statistics (var > 0); release with
// bn_release.
static trl_bn_ref bn_rand (int64_t n) {
  int64_t cs[1] = { n };
  trl_bn_ref r = { trand(1, cs), trand(1, cs), trand(1, cs), trand(1, cs), 1e-5f };
  for (int64_t c = 0; c < n; c++) trl_f32(r.var)[c] = 0.5f + fabsf(trl_f32(r.var)[c]);
  return r;
}

static void bn_release (trl_bn_ref *r) {
  trl_tensor_release(r->gamma), trl_tensor_release(r->beta);
  trl_tensor_release(r->mean), trl_tensor_release(r->var);
}

// trl_bottleneck against its layers one by one (conv2d_bn_act three times, then the add): the
// same bits, on 'nt' threads.
static void bottleneck_case (int B, int C, int H, int W, int E, int OC, int s, int res,
                             int bias, float lo, float hi, int nt) {
  float inf = INFINITY;
  int64_t xs[4] = { B, C, H, W }, w1s[4] = { E, C, 1, 1 }, w2s[4] = { E, 1, 3, 3 };
  int64_t w3s[4] = { OC, E, 1, 1 }, es[1] = { E };
  trl_tensor *x = trand(4, xs), *w[3] = { trand(4, w1s), trand(4, w2s), trand(4, w3s) };
  trl_tensor *b = bias ? trand(1, es) : NULL;
  trl_bn_ref bn[3] = { bn_rand(E), bn_rand(E), bn_rand(OC) };
  trl_bneck_stage st[3] = { { w[0], b, &bn[0], lo, hi, NULL },
                            { w[1], NULL, &bn[1], lo, hi, NULL },
                            { w[2], NULL, &bn[2], -inf, inf, NULL } };
  int prev = trl_get_num_threads();
  trl_set_num_threads(nt);
  trl_tensor *y = NULL, *t1 = NULL, *t2 = NULL, *t3 = NULL, *r = NULL, *yp[2] = { NULL, NULL };
  CHECK_OK(trl_bottleneck(&y, x, st, s, res));
  // with packs (the depthwise stage's is not used): the same bits, built once
  trl_conv_pack *pk[3] = { trl_conv_pack_new(), trl_conv_pack_new(), trl_conv_pack_new() };
  for (int i = 0; i < 3; i++) st[i].pack = pk[i];
  for (int k = 0; k < 2; k++) CHECK_OK(trl_bottleneck(&yp[k], x, st, s, res));
  CHECK(trl_conv_pack_builds(pk[0]) == 1 && trl_conv_pack_builds(pk[1]) == 0 &&
        trl_conv_pack_builds(pk[2]) == 1, "bottleneck packs built %ld, %ld, %ld times",
        trl_conv_pack_builds(pk[0]), trl_conv_pack_builds(pk[1]), trl_conv_pack_builds(pk[2]));
  for (int k = 0; k < 2; k++)
    if (y && yp[k]) CHECK(maxdiff(y, yp[k], NULL) == 0, "bottleneck with packs (call %d): "
                          "differs by %g", k + 1, maxdiff(y, yp[k], NULL));
  for (int i = 0; i < 3; i++) trl_conv_pack_free(pk[i]);
  trl_tensor_release(yp[0]), trl_tensor_release(yp[1]);
  trl_conv_params p1 = trl_conv_defaults(), p2 = trl_conv_defaults();
  p2.stride[0] = p2.stride[1] = s, p2.pad[0] = p2.pad[1] = 1, p2.groups = E;
  CHECK_OK(trl_conv2d_bn_act(&t1, x, w[0], b, &bn[0], lo, hi, &p1, NULL));
  if (t1) CHECK_OK(trl_conv2d_bn_act(&t2, t1, w[1], NULL, &bn[1], lo, hi, &p2, NULL));
  if (t2) CHECK_OK(trl_conv2d_bn_act(&t3, t2, w[2], NULL, &bn[2], -inf, inf, &p1, NULL));
  if (t3 && res) CHECK_OK(trl_binary(&r, TRL_OP_ADD, t3, x));
  else r = t3, t3 = NULL;
  trl_set_num_threads(prev);
  if (y && r) {
    int same = y->ndim == 4 && trl_numel(y) == trl_numel(r);
    for (int i = 0; same && i < 4; i++) same = y->shape[i] == r->shape[i];
    CHECK(same && maxdiff(y, r, NULL) == 0, "bottleneck B%d C%d %dx%d E%d OC%d s%d res%d "
          "bias%d %d threads: differs by %g", B, C, H, W, E, OC, s, res, bias, nt,
          same ? maxdiff(y, r, NULL) : -1.0);
  }
  trl_tensor *t[9] = { x, w[0], w[1], w[2], b, y, t1, t2, t3 };
  for (int i = 0; i < 9; i++) trl_tensor_release(t[i]);
  trl_tensor_release(r);
  for (int i = 0; i < 3; i++) bn_release(&bn[i]);
}

static void test_bottleneck (void) {
  float inf = INFINITY;
  for (int run = 0; run < 8; run++) {
    int nt = 1 + run % 2;
    // with the default band (a whole image here) and with bands of 5-7 rows (48K floats:
    // 96 x 64 and 144 x 56 rows past it), 1-3 rows (8K floats) and one row each (1 float)
    size_t bands[4] = { 0, 48 * 1024, 8 * 1024, 1 };
    trl_bottleneck_band(bands[run / 2]);
    // MobileNetV2's shapes (batch 2: by image), odd maps, maps narrower than a vector, one
    // row, batch 1 (bands split between threads)
    bottleneck_case(2, 16, 30, 32, 96, 24, 2, 0, 0, 0, 6, nt);
    bottleneck_case(2, 24, 56, 56, 144, 24, 1, 1, 0, 0, 6, nt);
    bottleneck_case(1, 24, 23, 64, 96, 24, 1, 1, 0, 0, 6, nt);
    bottleneck_case(1, 16, 25, 64, 96, 32, 2, 0, 0, 0, 6, nt);
    bottleneck_case(3, 160, 7, 7, 960, 160, 1, 1, 0, 0, 6, nt);
    bottleneck_case(5, 7, 13, 11, 10, 5, 2, 0, 1, 0, inf, nt);
    bottleneck_case(2, 5, 9, 3, 30, 5, 1, 1, 0, -inf, inf, nt);
    bottleneck_case(4, 8, 1, 1, 16, 8, 1, 1, 0, 0, 6, nt);
    bottleneck_case(1, 4, 2, 3, 8, 6, 2, 0, 1, 0, 6, nt);
    bottleneck_case(3, 6, 17, 2, 12, 6, 2, 0, 0, 0, 6, nt);
  }
  trl_bottleneck_band(0);
  // errors name the op and the shapes
  int64_t xs[4] = { 1, 8, 6, 6 }, w1s[4] = { 16, 8, 1, 1 }, w2s[4] = { 16, 1, 3, 3 };
  int64_t w3s[4] = { 8, 16, 1, 1 }, bad[4] = { 16, 2, 3, 3 };
  trl_tensor *x = trand(4, xs), *w1 = trand(4, w1s), *w2 = trand(4, w2s), *w3 = trand(4, w3s);
  trl_tensor *wb = trand(4, bad), *y = NULL;
  trl_bneck_stage st[3] = { { w1, NULL, NULL, 0, 6, NULL }, { wb, NULL, NULL, 0, 6, NULL },
                            { w3, NULL, NULL, -inf, inf, NULL } };
  CHECK(trl_bottleneck(&y, x, st, 1, 1) == TRL_ESHAPE && contains(trl_errmsg(), "depthwise") &&
        contains(trl_errmsg(), "[16,2,3,3]") && contains(trl_errmsg(), "[1,8,6,6]"),
        "bottleneck bad depthwise weight: %s", trl_errmsg());
  st[1].w = w2;
  CHECK(trl_bottleneck(&y, x, st, 2, 1) == TRL_EARG && contains(trl_errmsg(), "shortcut"),
        "bottleneck shortcut with stride 2: %s", trl_errmsg());
  CHECK(trl_bottleneck(&y, x, st, 3, 0) == TRL_EARG && contains(trl_errmsg(), "stride"),
        "bottleneck stride 3: %s", trl_errmsg());
  st[0].w = w3;   // (8,16,1,1) where (16,8,1,1) belongs
  CHECK(trl_bottleneck(&y, x, st, 1, 1) == TRL_ESHAPE && contains(trl_errmsg(), "expand"),
        "bottleneck bad expand weight: %s", trl_errmsg());
  st[0].w = w1;
  int64_t b5[1] = { 5 };   // a bias of 5 for 16 expanded channels, no BatchNorm
  trl_tensor *bb = trand(1, b5);
  st[0].b = bb;
  CHECK(trl_bottleneck(&y, x, st, 1, 1) == TRL_ESHAPE && contains(trl_errmsg(), "expand") &&
        contains(trl_errmsg(), "bias") && contains(trl_errmsg(), "[5]"),
        "bottleneck bad bias: %s", trl_errmsg());
  st[0].b = NULL;
  trl_tensor_release(bb);
  int64_t es[4] = { 2, 8, 0, 6 };
  trl_tensor *xe = trand(4, es);
  CHECK(trl_bottleneck(&y, xe, st, 1, 1) == TRL_ESHAPE && contains(trl_errmsg(), "empty") &&
        contains(trl_errmsg(), "[2,8,0,6]"), "bottleneck empty map: %s", trl_errmsg());
  trl_tensor_release(xe);
  int prev = trl_tape_set(1, 0);
  CHECK_OK(trl_attach_grad(x, TRL_GRAD_WRITE));
  CHECK(trl_bottleneck(&y, x, st, 1, 1) == TRL_EARG && contains(trl_errmsg(), "inference only"),
        "bottleneck while recording: %s", trl_errmsg());
  trl_tape_set(prev & 1, (prev >> 1) & 1);
  CHECK(y == NULL, "bottleneck wrote a result on failure");
  trl_tensor *t[5] = { x, w1, w2, w3, wb };
  for (int i = 0; i < 5; i++) trl_tensor_release(t[i]);
}

// trl_batchnorm in training computes the stats, the running stats and the output channel by
// channel; the same output bits as batchnorm_stats, then batchnorm_forward and the clamp.
static void bn_train_bits (int B, int C, int S, int clamp) {
  int64_t xs[3] = { B, C, S }, cs[1] = { C }, n = (int64_t)B * C * S;
  trl_tensor *x = trand(3, xs), *gm = trand(1, cs), *bt = trand(1, cs), *rm = trand(1, cs);
  trl_tensor *rv = trand(1, cs), *y = NULL;
  float *px = trl_f32(x);
  for (int64_t i = 0; i < n; i++) px[i] = 3 * px[i] + 1;
  float *rm0 = fcopy(trl_f32(rm), C), *rv0 = fcopy(trl_f32(rv), C);
  trl_bn_params bp = trl_bn_defaults();
  bp.training = 1, bp.momentum = 0.8f;
  if (clamp) bp.clamp = 1, bp.lo = 0, bp.hi = 1.5f;
  CHECK_OK(trl_batchnorm(&y, x, gm, bt, rm, rv, &bp));
  float *mean = fvec(C), *var = fvec(C), *is = fvec(C), *want = fvec(n);
  batchnorm_stats(mean, var, px, B, C, S);
  int bad = 0;
  for (int c = 0; c < C; c++) {
    float m = 0.8f * rm0[c] + (1 - 0.8f) * mean[c], v = 0.8f * rv0[c] + (1 - 0.8f) * var[c];
    // within an ulp or so: the compiler may fuse either product into an fma
    bad += fabsf(m - trl_f32(rm)[c]) > 3e-7f * (1 + fabsf(m)) ||
           fabsf(v - trl_f32(rv)[c]) > 3e-7f * (1 + fabsf(v));
    is[c] = 1.0f / sqrtf(var[c] + bp.eps);
  }
  CHECK(bad == 0, "bn train B%d C%d S%d: %d running stats differ", B, C, S, bad);
  batchnorm_forward(want, px, mean, is, trl_f32(gm), trl_f32(bt), B, C, S);
  bad = 0;
  for (int64_t i = 0; i < n; i++) {
    float w = want[i];
    if (clamp) w = w > 0 ? (w < 1.5f ? w : 1.5f) : 0;
    bad += memcmp(&w, trl_f32(y) + i, sizeof w) != 0;
  }
  CHECK(bad == 0, "bn train B%d C%d S%d clamp %d: %d of %lld outputs differ", B, C, S, clamp,
        bad, (long long)n);
  free(rm0), free(rv0), free(mean), free(var), free(is), free(want);
  trl_tensor *t[6] = { x, gm, bt, rm, rv, y };
  for (int i = 0; i < 6; i++) trl_tensor_release(t[i]);
}

static void test_bn_train (void) {
  bn_train_bits(3, 5, 37, 0);
  bn_train_bits(3, 5, 37, 1);
  bn_train_bits(8, 6, 400, 1);   // big: OpenMP channels
}

/* }================================================================== */

int main (void) {
  test_conv_kernels();
  test_pool_kernels();
  test_bn_kernels();
  test_softmax_kernels();
  test_dropout_kernels();
  test_errors();
  test_tape();
  test_fused();
  test_bottleneck();
  test_bn_train();
  printf("test_nn_ops: %d passed, %d failed\n", passed, failed);
  return failed != 0;
}
