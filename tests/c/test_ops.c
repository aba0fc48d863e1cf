/*
** test_ops.c: every op of ops.def has a row here: hand-worked forward values and, for the
** differentiable ones, a gradient check by central differences (computed in double from
** float32 forwards; eps 1e-2 keeps rounding noise far below the tolerance). Ops whose
** kernels live in core/ops/{conv2d,pool,...}.c are checked in test_nn_ops.c; their rows
** say so, and the test fails for any op that has no row at all.
*/
#include <stdlib.h>

#include "check.h"
#include "tape.h"

static trl_tensor *make (int nd, const int64_t *shape, const float *v) {
  trl_tensor *t;
  trl_tensor_empty(&t, TRL_F32, nd, shape);
  for (int64_t i = 0; i < trl_numel(t); i++) trl_f32(t)[i] = v ? v[i] : (float)(i + 1);
  return t;
}

static trl_tensor *rnd (int nd, const int64_t *shape, float lo, float hi) {
  trl_tensor *t;
  trl_tensor_empty(&t, TRL_F32, nd, shape);
  trl_random_uniform(t, trl_rng_default(), lo, hi);
  return t;
}

static void check_values (const trl_tensor *t, const float *want, int n, double tol, const char *what) {
  int ok = trl_numel(t) == n;
  for (int i = 0; ok && i < n; i++) ok = fabs(trl_get(t, i) - want[i]) <= tol;
  if (ok) { check_pass++; return; }
  check_fail++;
  fprintf(stderr, "%s: values differ:", what);
  for (int i = 0; i < trl_numel(t) && i < 12; i++) fprintf(stderr, " %g", trl_get(t, i));
  fprintf(stderr, "\n");
}

/* {==================================================================
** Gradient check: f maps inputs to a tensor; loss = sum(f(x) * w) for a fixed random w
** =================================================================== */

typedef trl_status (*fn_t) (trl_tensor **out, trl_tensor **in, void *ud);

static double loss_of (fn_t f, trl_tensor **in, void *ud, trl_tensor *w) {
  trl_tensor *y;
  if (f(&y, in, ud) != TRL_OK) return NAN;
  double s = 0;
  for (int64_t i = 0; i < trl_numel(y); i++) s += trl_get(y, i) * trl_get(w, i);
  trl_tensor_release(y);
  return s;
}

static void gradcheck (const char *name, fn_t f, int n, trl_tensor **in, void *ud, double tol) {
  trl_tensor *y, *w;
  for (int i = 0; i < n; i++) trl_attach_grad(in[i], TRL_GRAD_WRITE);
  int prev = trl_tape_set(1, 1);
  trl_status st = f(&y, in, ud);
  trl_tape_set(prev & 1, prev >> 1);
  if (st != TRL_OK) { check_fail++; fprintf(stderr, "%s: forward failed: %s\n", name, trl_errmsg()); return; }
  w = rnd(y->ndim, y->shape, -1, 1);
  if (trl_backward(y, w, 0) != TRL_OK) {
    check_fail++; fprintf(stderr, "%s: backward failed: %s\n", name, trl_errmsg());
    trl_tensor_release(y); trl_tensor_release(w); return;
  }
  trl_tensor_release(y);
  double worst = 0;
  for (int k = 0; k < n; k++) {
    for (int64_t i = 0; i < trl_numel(in[k]); i++) {
      float *p = trl_f32(in[k]) + i, keep = *p, eps = 1e-2f;
      *p = keep + eps; double lp = loss_of(f, in, ud, w);
      *p = keep - eps; double lm = loss_of(f, in, ud, w);
      *p = keep;
      double num = (lp - lm) / (2.0 * eps), ana = trl_get(in[k]->grad, i);
      double err = fabs(num - ana) / (1.0 + fabs(num));
      if (err > worst) worst = err;
    }
  }
  trl_tensor_release(w);
  if (worst <= tol) check_pass++;
  else { check_fail++; fprintf(stderr, "%s: gradient error %.3g > %.3g\n", name, worst, tol); }
}

/* }================================================================== */

/* {==================================================================
** Rows
** =================================================================== */

static int covered[TRL_OP_COUNT];

static trl_status f_unary (trl_tensor **o, trl_tensor **in, void *ud) { return trl_unary(o, *(trl_op *)ud, in[0]); }
static trl_status f_binary (trl_tensor **o, trl_tensor **in, void *ud) { return trl_binary(o, *(trl_op *)ud, in[0], in[1]); }

static void test_unary (void) {
  int64_t s[1] = {4};
  float x[4] = {-2, -0.5f, 0.5f, 2};
  struct { trl_op op; float want[4]; } rows[] = {
    {TRL_OP_NEG, {2, 0.5f, -0.5f, -2}}, {TRL_OP_ABS, {2, 0.5f, 0.5f, 2}},
    {TRL_OP_EXP, {0.135335283f, 0.60653066f, 1.64872127f, 7.3890561f}},
    {TRL_OP_SQUARE, {4, 0.25f, 0.25f, 4}}, {TRL_OP_RELU, {0, 0, 0.5f, 2}},
    {TRL_OP_SIGMOID, {0.119202922f, 0.377540669f, 0.622459331f, 0.880797078f}},
    {TRL_OP_TANH, {-0.96402758f, -0.46211716f, 0.46211716f, 0.96402758f}},
  };
  trl_tensor *a = make(1, s, x), *o;
  for (size_t r = 0; r < sizeof rows / sizeof rows[0]; r++) {
    CHECK_OK(trl_unary(&o, rows[r].op, a));
    check_values(o, rows[r].want, 4, 1e-6, trl_op_name(rows[r].op));
    trl_tensor_release(o);
    covered[rows[r].op] = 1;
    int64_t gs[2] = {3, 5};
    trl_tensor *g = rnd(2, gs, -2, 2);
    for (int i = 0; i < 15; i++) if (fabsf(trl_f32(g)[i]) < 0.05f) trl_f32(g)[i] = 0.3f;  // kinks
    gradcheck(trl_op_name(rows[r].op), f_unary, 1, &g, &rows[r].op, 2e-2);
    trl_tensor_release(g);
  }
  float px[4] = {0.25f, 1, 4, 9}, wl[4] = {-1.38629436f, 0, 1.38629436f, 2.19722458f}, ws[4] = {0.5f, 1, 2, 3};
  trl_tensor *p = make(1, s, px);
  trl_op logop = TRL_OP_LOG, sqop = TRL_OP_SQRT;
  CHECK_OK(trl_unary(&o, TRL_OP_LOG, p)); check_values(o, wl, 4, 1e-6, "log"); trl_tensor_release(o);
  CHECK_OK(trl_unary(&o, TRL_OP_SQRT, p)); check_values(o, ws, 4, 1e-6, "sqrt"); trl_tensor_release(o);
  gradcheck("log", f_unary, 1, &p, &logop, 2e-2);
  gradcheck("sqrt", f_unary, 1, &p, &sqop, 2e-2);
  covered[TRL_OP_LOG] = covered[TRL_OP_SQRT] = 1;
  trl_tensor_release(p); trl_tensor_release(a);
}

static void test_binary (void) {
  int64_t sa[2] = {2, 3}, sb[1] = {3};
  float va[6] = {1, 2, 3, 4, 5, 6}, vb[3] = {2, -1, 0.5f};
  trl_tensor *a = make(2, sa, va), *b = make(1, sb, vb), *o;
  struct { trl_op op; float want[6]; } rows[] = {
    {TRL_OP_ADD, {3, 1, 3.5f, 6, 4, 6.5f}}, {TRL_OP_SUB, {-1, 3, 2.5f, 2, 6, 5.5f}},
    {TRL_OP_MUL, {2, -2, 1.5f, 8, -5, 3}}, {TRL_OP_DIV, {0.5f, -2, 6, 2, -5, 12}},
    {TRL_OP_POW, {1, 0.5f, 1.7320508f, 16, 0.2f, 2.4494897f}},
    {TRL_OP_IDIV, {0, -2, 6, 2, -5, 12}}, {TRL_OP_MOD, {1, 0, 0, 0, 0, 0}},
    {TRL_OP_MAXIMUM, {2, 2, 3, 4, 5, 6}}, {TRL_OP_MINIMUM, {1, -1, 0.5f, 2, -1, 0.5f}},
    {TRL_OP_EQ, {0, 0, 0, 0, 0, 0}}, {TRL_OP_NE, {1, 1, 1, 1, 1, 1}},
    {TRL_OP_LT, {1, 0, 0, 0, 0, 0}}, {TRL_OP_LE, {1, 0, 0, 0, 0, 0}},
    {TRL_OP_GT, {0, 1, 1, 1, 1, 1}}, {TRL_OP_GE, {0, 1, 1, 1, 1, 1}},
  };
  for (size_t r = 0; r < sizeof rows / sizeof rows[0]; r++) {
    CHECK_OK(trl_binary(&o, rows[r].op, a, b));
    CHECK_EQ(o->ndim, 2);
    check_values(o, rows[r].want, 6, 1e-6, trl_op_name(rows[r].op));
    trl_tensor_release(o);
    covered[rows[r].op] = 1;
  }
  // gradients with broadcasting both ways: (4,1,3) op (2,3)
  trl_op gops[] = {TRL_OP_ADD, TRL_OP_SUB, TRL_OP_MUL, TRL_OP_DIV, TRL_OP_POW, TRL_OP_MAXIMUM, TRL_OP_MINIMUM};
  for (size_t r = 0; r < sizeof gops / sizeof gops[0]; r++) {
    int64_t s1[3] = {4, 1, 3}, s2[2] = {2, 3};
    trl_tensor *in[2] = {rnd(3, s1, 0.5f, 2), rnd(2, s2, 0.5f, 2)};
    gradcheck(trl_op_name(gops[r]), f_binary, 2, in, &gops[r], 3e-2);
    trl_tensor_release(in[0]); trl_tensor_release(in[1]);
  }
  // integer arithmetic stays integer; division of integers is float; comparisons are uint8
  trl_tensor *ia, *ib;
  int64_t s3[1] = {3};
  trl_tensor_empty(&ia, TRL_I64, 1, s3); trl_tensor_empty(&ib, TRL_I64, 1, s3);
  int64_t xa[3] = {7, -7, 9}, xb[3] = {2, 2, -4};
  for (int i = 0; i < 3; i++) { ((int64_t *)trl_data(ia))[i] = xa[i]; ((int64_t *)trl_data(ib))[i] = xb[i]; }
  CHECK_OK(trl_binary(&o, TRL_OP_IDIV, ia, ib));
  CHECK(o->dtype == TRL_I64);
  CHECK_EQ(trl_geti(o, 0), 3); CHECK_EQ(trl_geti(o, 1), -4); CHECK_EQ(trl_geti(o, 2), -3);
  trl_tensor_release(o);
  CHECK_OK(trl_binary(&o, TRL_OP_MOD, ia, ib));
  CHECK_EQ(trl_geti(o, 1), 1); CHECK_EQ(trl_geti(o, 2), -3);
  trl_tensor_release(o);
  CHECK_OK(trl_binary(&o, TRL_OP_DIV, ia, ib));
  CHECK(o->dtype == TRL_F32); CHECK_NEAR(trl_get(o, 0), 3.5, 0);
  trl_tensor_release(o);
  CHECK_OK(trl_binary(&o, TRL_OP_LT, ia, ib));
  CHECK(o->dtype == TRL_U8); CHECK_EQ(trl_geti(o, 1), 1);
  trl_tensor_release(o);
  trl_tensor_release(ia); trl_tensor_release(ib);
  int64_t bad[1] = {4};
  trl_tensor *c = make(1, bad, NULL);
  CHECK_FAILS(trl_binary(&o, TRL_OP_ADD, a, c), "add: shapes do not broadcast, a is [2,3], b is [4]");
  trl_tensor_release(c); trl_tensor_release(a); trl_tensor_release(b);
}

static trl_status f_clip (trl_tensor **o, trl_tensor **in, void *ud) { return trl_clip(o, in[0], 0, 6); }
static trl_status f_where (trl_tensor **o, trl_tensor **in, void *ud) { return trl_where(o, (trl_tensor *)ud, in[0], in[1]); }

static void test_clip_where (void) {
  int64_t s[1] = {4};
  float x[4] = {-1, 3, 6.5f, 0}, wc[4] = {0, 3, 6, 0};
  trl_tensor *a = make(1, s, x), *o;
  CHECK_OK(trl_clip(&o, a, 0, 6)); check_values(o, wc, 4, 0, "clip"); trl_tensor_release(o);
  int64_t gs[2] = {3, 4};
  trl_tensor *g = rnd(2, gs, -3, 9);
  gradcheck("clip", f_clip, 1, &g, NULL, 2e-2);
  trl_tensor_release(g);
  trl_tensor *cond, *b;
  trl_tensor_empty(&cond, TRL_U8, 1, s);
  uint8_t cv[4] = {1, 0, 1, 0};
  memcpy(trl_data(cond), cv, 4);
  b = make(1, s, NULL);
  float ww[4] = {-1, 2, 6.5f, 4};
  CHECK_OK(trl_where(&o, cond, a, b)); check_values(o, ww, 4, 0, "where"); trl_tensor_release(o);
  trl_tensor *in[2] = {rnd(1, s, -1, 1), rnd(1, s, -1, 1)};
  gradcheck("where", f_where, 2, in, cond, 2e-2);
  trl_tensor_release(in[0]); trl_tensor_release(in[1]);
  trl_tensor_release(cond); trl_tensor_release(a); trl_tensor_release(b);
  covered[TRL_OP_CLIP] = covered[TRL_OP_WHERE] = 1;
}

typedef struct { trl_op op; int dim, keep; } red_ud;
static trl_status f_reduce (trl_tensor **o, trl_tensor **in, void *ud) {
  red_ud *r = ud;
  return trl_reduce(o, r->op, in[0], r->dim, r->keep);
}

static void test_reduce (void) {
  int64_t s[2] = {2, 3};
  float v[6] = {1, 5, 3, 4, 2, 6};
  trl_tensor *a = make(2, s, v), *o;
  float sum0[3] = {5, 7, 9}, sum1[2] = {9, 12}, mean1[2] = {3, 4}, max0[3] = {4, 5, 6}, min1[2] = {1, 2};
  float amax1[2] = {1, 2}, amin0[3] = {0, 1, 0}, all[1] = {21};
  CHECK_OK(trl_reduce(&o, TRL_OP_SUM, a, 0, 0)); check_values(o, sum0, 3, 0, "sum0"); trl_tensor_release(o);
  CHECK_OK(trl_reduce(&o, TRL_OP_SUM, a, -1, 1)); check_values(o, sum1, 2, 0, "sum1");
  CHECK_EQ(o->ndim, 2); trl_tensor_release(o);
  CHECK_OK(trl_reduce(&o, TRL_OP_SUM, a, TRL_ALLDIMS, 0)); check_values(o, all, 1, 0, "sum all");
  CHECK_EQ(o->ndim, 0); trl_tensor_release(o);
  CHECK_OK(trl_reduce(&o, TRL_OP_MEAN, a, 1, 0)); check_values(o, mean1, 2, 1e-6, "mean"); trl_tensor_release(o);
  CHECK_OK(trl_reduce(&o, TRL_OP_MAX, a, 0, 0)); check_values(o, max0, 3, 0, "max"); trl_tensor_release(o);
  CHECK_OK(trl_reduce(&o, TRL_OP_MIN, a, 1, 0)); check_values(o, min1, 2, 0, "min"); trl_tensor_release(o);
  CHECK_OK(trl_reduce(&o, TRL_OP_ARGMAX, a, 1, 0)); check_values(o, amax1, 2, 0, "argmax");
  CHECK(o->dtype == TRL_I64); trl_tensor_release(o);
  CHECK_OK(trl_reduce(&o, TRL_OP_ARGMIN, a, 0, 0)); check_values(o, amin0, 3, 0, "argmin"); trl_tensor_release(o);
  CHECK_FAILS(trl_reduce(&o, TRL_OP_SUM, a, 2, 0), "sum: dim 2 out of range for a 2-dim tensor");
  trl_op ops[] = {TRL_OP_SUM, TRL_OP_MEAN, TRL_OP_MAX, TRL_OP_MIN};
  for (int k = 0; k < 4; k++) {
    for (int d = -1; d < 3; d++) {
      int64_t gs[3] = {3, 4, 5};
      trl_tensor *g = rnd(3, gs, -1, 1);
      red_ud ud = {ops[k], d < 0 ? TRL_ALLDIMS : d, d == 1};
      gradcheck(trl_op_name(ops[k]), f_reduce, 1, &g, &ud, 2e-2);
      trl_tensor_release(g);
    }
    covered[ops[k]] = 1;
  }
  covered[TRL_OP_ARGMAX] = covered[TRL_OP_ARGMIN] = 1;
  trl_tensor_release(a);
}

static trl_status f_matmul (trl_tensor **o, trl_tensor **in, void *ud) {
  if (ud) {  // through a transposed view, to exercise the BLAS transpose path
    trl_tensor *t;
    TRL_TRY(trl_permute(&t, in[1], (int[]){1, 0}));
    trl_status st = trl_matmul(o, in[0], t);
    trl_tensor_release(t);
    return st;
  }
  return trl_matmul(o, in[0], in[1]);
}

static void test_matmul (void) {
  int64_t sa[2] = {2, 3}, sb[2] = {3, 2};
  trl_tensor *a = make(2, sa, NULL), *b = make(2, sb, NULL), *o;
  float want[4] = {22, 28, 49, 64};
  CHECK_OK(trl_matmul(&o, a, b)); check_values(o, want, 4, 0, "matmul"); trl_tensor_release(o);
  int64_t sbad[2] = {4, 5};
  trl_tensor *c = make(2, sbad, NULL);
  CHECK_FAILS(trl_matmul(&o, a, c), "matmul: size mismatch, a is [2,3], b is [4,5]");
  trl_tensor_release(c);
  int64_t s1[1] = {3};
  trl_tensor *v = make(1, s1, NULL);
  float mv[2] = {14, 32};
  CHECK_OK(trl_matmul(&o, a, v)); CHECK_EQ(o->ndim, 1); check_values(o, mv, 2, 0, "matvec"); trl_tensor_release(o);
  int64_t g1[2] = {5, 7}, g2[2] = {7, 3}, g3[3] = {2, 5, 7}, g2t[2] = {3, 7};
  trl_tensor *in[2] = {rnd(2, g1, -1, 1), rnd(2, g2, -1, 1)};
  gradcheck("matmul", f_matmul, 2, in, NULL, 2e-2);
  trl_tensor_release(in[0]); trl_tensor_release(in[1]);
  trl_tensor *in2[2] = {rnd(3, g3, -1, 1), rnd(2, g2t, -1, 1)};
  gradcheck("matmul batched, transposed b", f_matmul, 2, in2, (void *)1, 2e-2);
  trl_tensor_release(in2[0]); trl_tensor_release(in2[1]);
  trl_tensor_release(v); trl_tensor_release(a); trl_tensor_release(b);
  covered[TRL_OP_MATMUL] = 1;
}

static trl_status f_concat (trl_tensor **o, trl_tensor **in, void *ud) { return trl_concat(o, in, 2, 1); }
static trl_status f_views (trl_tensor **o, trl_tensor **in, void *ud) {
  // permute -> slice -> reshape -> expand -> copy
  trl_tensor *p, *s, *r, *e;
  TRL_TRY(trl_permute(&p, in[0], (int[]){2, 0, 1}));          // (4,2,3)
  trl_status st = trl_slice(&s, p, 0, 1, 4, 2);                // (2,2,3)
  trl_tensor_release(p);
  if (st) return st;
  st = trl_reshape(&r, s, 2, (int64_t[]){1, 12});
  trl_tensor_release(s);
  if (st) return st;
  st = trl_expand(&e, r, 2, (int64_t[]){3, 12});
  trl_tensor_release(r);
  if (st) return st;
  st = trl_copy(o, e, TRL_F32);
  trl_tensor_release(e);
  return st;
}

static void test_shape_ops (void) {
  int64_t s1[2] = {2, 2}, s2[2] = {2, 1}, s3[3] = {2, 3, 4};
  trl_tensor *in[2] = {rnd(2, s1, -1, 1), rnd(2, s2, -1, 1)}, *o;
  CHECK_OK(trl_concat(&o, in, 2, 1));
  CHECK_EQ(o->shape[1], 3);
  CHECK_NEAR(trl_get(o, 2), trl_get(in[1], 0), 0);
  trl_tensor_release(o);
  gradcheck("concat", f_concat, 2, in, NULL, 2e-2);
  trl_tensor *x = make(2, s1, NULL), *y = make(1, (int64_t[]){2}, NULL);
  trl_tensor *bad[2] = {x, y};
  CHECK_FAILS(trl_concat(&o, bad, 2, 0), "concat: tensor 2 is [2]");
  trl_tensor_release(x); trl_tensor_release(y);
  trl_tensor_release(in[0]); trl_tensor_release(in[1]);
  trl_tensor *g = rnd(3, s3, -1, 1);
  gradcheck("permute/slice/reshape/expand/copy", f_views, 1, &g, NULL, 2e-2);
  trl_tensor_release(g);
  covered[TRL_OP_CONCAT] = covered[TRL_OP_RESHAPE] = covered[TRL_OP_PERMUTE] = 1;
  covered[TRL_OP_SLICE] = covered[TRL_OP_EXPAND] = covered[TRL_OP_COPY] = 1;
}

// The parallel paths (above 64K elements) against the rule, element by element.
static void test_large (void) {
  int64_t s[1] = {300001};
  trl_tensor *a = rnd(1, s, -1, 1), *b = rnd(1, s, -1, 1), *y, *z, *w = rnd(1, s, -1, 1);
  trl_attach_grad(a, TRL_GRAD_WRITE);
  trl_attach_grad(b, TRL_GRAD_WRITE);
  int prev = trl_tape_set(1, 1);
  CHECK_OK(trl_unary(&y, TRL_OP_RELU, a));
  CHECK_OK(trl_binary(&z, TRL_OP_ADD, y, b));
  trl_tape_set(prev & 1, prev >> 1);
  CHECK_OK(trl_backward(z, w, 0));
  int bad = 0;
  for (int64_t i = 0; i < s[0]; i++) {
    float x = trl_f32(a)[i], g = trl_f32(w)[i];
    bad += trl_f32(y)[i] != (x > 0 ? x : 0) || trl_f32(z)[i] != trl_f32(y)[i] + trl_f32(b)[i];
    bad += trl_f32(a->grad)[i] != (x > 0 ? g : 0) || trl_f32(b->grad)[i] != g;
  }
  CHECK_EQ(bad, 0);
  trl_tensor_release(y); trl_tensor_release(z); trl_tensor_release(w);
  trl_tensor_release(a); trl_tensor_release(b);
}

static void test_tape_rules (void) {
  int64_t s[1] = {3};
  trl_tensor *a = make(1, s, NULL), *b = make(1, s, NULL), *y, *z;
  trl_attach_grad(a, TRL_GRAD_WRITE);
  trl_attach_grad(b, TRL_GRAD_NULL);
  int prev = trl_tape_set(1, 1);
  CHECK_OK(trl_binary(&y, TRL_OP_MUL, a, b));
  trl_tape_set(prev & 1, prev >> 1);
  CHECK_OK(trl_backward(y, NULL, 1));
  CHECK_NEAR(trl_get(a->grad, 2), 3, 0);          // d(a*b)/da = b
  CHECK_NEAR(trl_get(b->grad, 2), 0, 0);          // 'null': never computed
  CHECK_OK(trl_backward(y, NULL, 0));             // 'write' overwrites
  CHECK_NEAR(trl_get(a->grad, 2), 3, 0);
  CHECK_FAILS(trl_backward(y, NULL, 0), "already freed");
  trl_tensor_release(y);
  trl_set_grad_req(a, TRL_GRAD_ADD);               // 'add' accumulates over backwards
  prev = trl_tape_set(1, 1);
  trl_binary(&y, TRL_OP_MUL, a, b);
  trl_tape_set(prev & 1, prev >> 1);
  trl_backward(y, NULL, 1);
  trl_backward(y, NULL, 0);
  CHECK_NEAR(trl_get(a->grad, 2), 9, 0);
  trl_tensor_release(y);
  CHECK_OK(trl_binary(&z, TRL_OP_MUL, a, b));      // not recording: no graph
  CHECK_FAILS(trl_backward(z, NULL, 0), "does not require grad");
  trl_tensor_release(z);
  trl_tensor_release(a); trl_tensor_release(b);
}

/* }================================================================== */

int main (void) {
  trl_rng_seed(trl_rng_default(), 42);
  test_unary();
  test_binary();
  test_clip_where();
  test_reduce();
  test_matmul();
  test_shape_ops();
  test_tape_rules();
  test_large();
  // ops whose kernels and gradient checks live in test_nn_ops.c
  trl_op nn_ops[] = {TRL_OP_CONV2D, TRL_OP_MAXPOOL2D, TRL_OP_AVGPOOL2D, TRL_OP_GLOBALAVGPOOL2D,
                     TRL_OP_BATCHNORM, TRL_OP_SOFTMAX, TRL_OP_LOG_SOFTMAX, TRL_OP_SOFTMAX_XENT,
                     TRL_OP_DROPOUT};
  for (size_t i = 0; i < sizeof nn_ops / sizeof nn_ops[0]; i++) covered[nn_ops[i]] = 1;
  for (int op = 0; op < TRL_OP_COUNT; op++)
    if (!covered[op]) { check_fail++; fprintf(stderr, "op '%s' has no test row\n", trl_op_name(op)); }
  CHECK_EQ(trl_tensor_live(), 0);
  return check_summary();
}
