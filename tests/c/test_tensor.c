/*
** test_tensor.c: storage sharing of views, strides, reshape rules, copies with broadcasting
** and dtype conversion, refcounts and the live-tensor counter.
*/
#include "check.h"
#include "ops.h"
#include "tensor.h"

static trl_tensor *seq (int nd, const int64_t *shape) {  // 0, 1, 2, ... as float32
  trl_tensor *t;
  trl_tensor_empty(&t, TRL_F32, nd, shape);
  for (int64_t i = 0; i < trl_numel(t); i++) trl_f32(t)[i] = (float)i;
  return t;
}

static void test_views (void) {
  int64_t s[2] = {3, 4};
  trl_tensor *a = seq(2, s), *v, *w, *x;
  CHECK_OK(trl_view_transpose(&v, a, 0, 1));
  CHECK(v->storage == a->storage);
  CHECK_EQ(v->shape[0], 4); CHECK_EQ(v->shape[1], 3);
  CHECK_EQ(trl_get(v, 1), 4);  // v[0][1] = a[1][0]
  CHECK(!trl_is_contiguous(v));
  CHECK_OK(trl_view_slice(&w, a, 1, 1, 4, 2));   // columns 1, 3
  CHECK_EQ(w->shape[1], 2);
  CHECK_EQ(trl_get(w, 0), 1); CHECK_EQ(trl_get(w, 1), 3); CHECK_EQ(trl_get(w, 2), 5);
  trl_set(w, 0, 100);                              // writes through to a
  CHECK_EQ(trl_f32(a)[1], 100);
  CHECK_OK(trl_view_select(&x, a, 0, 2));
  CHECK_EQ(x->ndim, 1); CHECK_EQ(trl_get(x, 3), 11);
  trl_tensor_release(x);
  // a view keeps its storage alive after the base is released
  trl_tensor_release(a);
  CHECK_EQ(trl_get(v, 11), 11);
  trl_tensor_release(v);
  trl_tensor_release(w);
}

static void test_reshape (void) {
  int64_t s[3] = {2, 3, 4}, r[2] = {6, -1}, bad[2] = {5, -1};
  trl_tensor *a = seq(3, s), *v, *t, *c;
  CHECK_OK(trl_view_reshape(&v, a, 2, r));
  CHECK_EQ(v->shape[1], 4);
  CHECK(v->storage == a->storage);
  trl_tensor_release(v);
  CHECK_FAILS(trl_view_reshape(&v, a, 2, bad), "cannot reshape [2,3,4]");
  // a transposed tensor cannot be viewed flat, but reshape copies
  int64_t flat = 24;
  CHECK_OK(trl_view_transpose(&t, a, 0, 2));
  CHECK_FAILS(trl_view_reshape(&v, t, 1, &flat), "non-contiguous");
  CHECK_OK(trl_tensor_reshape(&c, t, 1, &flat));
  CHECK(c->storage != a->storage);
  CHECK_EQ(trl_get(c, 1), 12);   // t[0][0][1] = a[1][0][0]
  trl_tensor_release(c);
  // merging dims that are contiguous among themselves stays a view
  int64_t s2[2] = {4, 6};
  trl_tensor *sl, *m;
  trl_tensor *b = seq(2, s2);
  CHECK_OK(trl_view_slice(&sl, b, 0, 0, 4, 2));    // rows 0, 2: shape (2,6), strides (12,1)
  int64_t r2[3] = {2, 2, 3};
  CHECK_OK(trl_view_reshape(&m, sl, 3, r2));
  CHECK(m->storage == b->storage);
  CHECK_EQ(trl_get(m, 6), 12);
  trl_tensor_release(m); trl_tensor_release(sl); trl_tensor_release(b);
  trl_tensor_release(t); trl_tensor_release(a);
}

static void test_expand_copy (void) {
  int64_t s[2] = {3, 1}, e[3] = {2, 3, 4}, bad[2] = {3, 5};
  trl_tensor *a = seq(2, s), *v, *d;
  CHECK_OK(trl_view_expand(&v, a, 3, e));
  CHECK_EQ(v->stride[0], 0); CHECK_EQ(v->stride[2], 0);
  CHECK_EQ(trl_get(v, 23), 2);
  trl_tensor_release(v);
  int64_t s2[2] = {3, 2};
  trl_tensor *b = seq(2, s2);
  CHECK_FAILS(trl_view_expand(&v, b, 2, bad), "cannot broadcast [3,2] to [3,5]");
  // copy with broadcasting and conversion to int64
  CHECK_OK(trl_tensor_empty(&d, TRL_I64, 3, e));
  CHECK_OK(trl_copy_into(d, a));
  CHECK_EQ(((int64_t *)trl_data(d))[4], 1);
  CHECK_FAILS(trl_copy_into(d, b), "cannot broadcast source [3,2] to destination [2,3,4]");
  trl_tensor_release(d); trl_tensor_release(a); trl_tensor_release(b);
}

static void test_lifetime (void) {
  long before = trl_tensor_live();
  int64_t s[1] = {5};
  trl_tensor *a;
  CHECK_OK(trl_tensor_zeros(&a, TRL_U8, 1, s));
  CHECK_EQ(trl_tensor_live(), before + 1);
  trl_tensor_retain(a);
  trl_tensor_release(a);
  CHECK_EQ(trl_tensor_live(), before + 1);
  trl_tensor_release(a);
  CHECK_EQ(trl_tensor_live(), before);
  int64_t neg[2] = {2, -3};
  CHECK_FAILS(trl_tensor_empty(&a, TRL_F32, 2, neg), "negative size in shape [2,-3]");
}

static void test_arange_fill (void) {
  trl_tensor *a;
  CHECK_OK(trl_arange(&a, 1, 2, 0.25, TRL_F32));
  CHECK_EQ(trl_numel(a), 4);
  CHECK_NEAR(trl_get(a, 3), 1.75, 0);
  trl_fill(a, 7);
  CHECK_NEAR(trl_get(a, 2), 7, 0);
  trl_tensor_release(a);
  CHECK_FAILS(trl_arange(&a, 0, 1, 0, TRL_F32), "arange: bad range");
}

// Random fills draw in row-major order of the view: a transposed view (element by element)
// and a contiguous tensor (straight into memory) get the same values from the same seed,
// and a contiguous view with an offset leaves the rest of its storage alone.
static void test_random_fill (void) {
  int64_t s[2] = {5, 7}, st[2] = {7, 5};
  for (int normal = 0; normal < 2; normal++) {
    trl_tensor *c, *base, *v, *row;
    trl_tensor_empty(&c, TRL_F32, 2, s);
    base = seq(2, st);
    CHECK_OK(trl_view_transpose(&v, base, 0, 1));   // (5,7), not contiguous
    trl_rng r1, r2;
    trl_rng_seed(&r1, 42), trl_rng_seed(&r2, 42);
    CHECK_OK(normal ? trl_random_normal(c, &r1, 1, 2) : trl_random_uniform(c, &r1, -3, 3));
    CHECK_OK(normal ? trl_random_normal(v, &r2, 1, 2) : trl_random_uniform(v, &r2, -3, 3));
    int same = 1;
    for (int64_t i = 0; i < 35; i++) same &= trl_get(c, i) == trl_get(v, i);
    CHECK(same);
    CHECK(normal || (trl_get(c, 0) >= -3 && trl_get(c, 0) <= 3));
    trl_tensor_release(v);
    for (int i = 0; i < 35; i++) trl_f32(base)[i] = (float)i;
    CHECK_OK(trl_view_select(&row, base, 0, 2));   // elements 10..14, contiguous
    CHECK_OK(trl_random_uniform(row, &r1, 100, 101));
    CHECK_EQ(trl_f32(base)[9], 9); CHECK_EQ(trl_f32(base)[15], 15);
    CHECK(trl_f32(base)[10] >= 100 && trl_f32(base)[14] >= 100);
    trl_tensor_release(row);
    trl_tensor_release(base);
    trl_tensor_release(c);
  }
}

int main (void) {
  test_views();
  test_random_fill();
  test_reshape();
  test_expand_copy();
  test_lifetime();
  test_arange_fill();
  CHECK_EQ(trl_tensor_live(), 0);
  return check_summary();
}
