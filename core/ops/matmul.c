/*
** matmul.c: matrix products through sgemm: (M,K)x(K,N), batched (B,M,K)x(B,K,N) with a
** 2-D operand broadcast over the batch, and 1-D operands as in NumPy. Transposed views
** go to BLAS as transposes, without a copy.
*/
#include <string.h>

#include "tape.h"

// How a 2-D view reaches BLAS: leading dim and transpose flag; 0 if it needs a copy.
static int blas_layout (const trl_tensor *t, int d0, int d1, int *ld, int *trans) {
  int64_t r = t->shape[d0], c = t->shape[d1], s0 = t->stride[d0], s1 = t->stride[d1];
  if ((s1 == 1 || c == 1) && s0 >= (c > 1 ? c : 1) && s0 < INT32_MAX) {
    *ld = (int)(s0 > 0 ? s0 : 1); *trans = 0;
    if (r == 1) *ld = (int)(c > 0 ? c : 1);
    return 1;
  }
  if ((s0 == 1 || r == 1) && s1 >= (r > 1 ? r : 1) && s1 < INT32_MAX) {
    *ld = (int)(s1 > 0 ? s1 : 1); *trans = 1;
    if (c == 1) *ld = (int)(r > 0 ? r : 1);
    return 1;
  }
  return 0;
}

// c (M,N, contiguous rows) = a (M,K) b (K,N) + beta*c for the last two dims of 3-D batch views.
static trl_status gemm_batched (trl_tensor *c, trl_tensor *a, trl_tensor *b, float beta) {
  trl_tensor *ca = NULL, *cb = NULL;
  int lda, ta, ldb, tb;
  int na = a->ndim, nb = b->ndim;
  trl_status st = TRL_OK;
  if (!blas_layout(a, na - 2, na - 1, &lda, &ta) || (na == 3 && a->shape[0] > 1 && a->stride[0] == 0)) {
    TRL_TRY(trl_tensor_clone(&ca, a, TRL_F32));
    a = ca;
    blas_layout(a, na - 2, na - 1, &lda, &ta);
  }
  if (!blas_layout(b, nb - 2, nb - 1, &ldb, &tb)) {
    st = trl_tensor_clone(&cb, b, TRL_F32);
    if (st != TRL_OK) { trl_tensor_release(ca); return st; }
    b = cb;
    blas_layout(b, nb - 2, nb - 1, &ldb, &tb);
  }
  int M = (int)a->shape[na - 2], K = (int)a->shape[na - 1], N = (int)b->shape[nb - 1];
  int64_t B = c->ndim == 3 ? c->shape[0] : 1;
  for (int64_t i = 0; i < B; i++) {
    const float *pa = trl_f32(a) + (na == 3 ? i * a->stride[0] : 0);
    const float *pb = trl_f32(b) + (nb == 3 ? i * b->stride[0] : 0);
    float *pc = trl_f32(c) + i * M * N;
    if (M && N) trl_sgemm(ta, tb, M, N, K, 1.0f, pa, lda, pb, ldb, beta, pc, N);
  }
  trl_tensor_release(ca);
  trl_tensor_release(cb);
  return st;
}

static trl_status matmul_backward (trl_node *n, const trl_tensor *gout, trl_tensor **gin) {
  trl_tensor *a = n->in[0], *b = n->in[1], *g = (trl_tensor *)gout;
  trl_tensor *a2 = NULL, *b2 = NULL, *g2 = NULL, *bt = NULL, *at = NULL;
  trl_status st = TRL_OK;
  // work in the 2-D/3-D forms used by the forward
  int64_t s[3];
  if (a->ndim == 1) { s[0] = 1; s[1] = a->shape[0]; st = trl_view_reshape(&a2, a, 2, s); }
  else { trl_tensor_retain(a); a2 = a; }
  if (st == TRL_OK) {
    if (b->ndim == 1) { s[0] = b->shape[0]; s[1] = 1; st = trl_view_reshape(&b2, b, 2, s); }
    else { trl_tensor_retain(b); b2 = b; }
  }
  if (st == TRL_OK) {
    int nd = a2->ndim > b2->ndim ? a2->ndim : b2->ndim;
    int64_t gs[3];
    if (nd == 3) { gs[0] = a2->ndim == 3 ? a2->shape[0] : b2->shape[0]; }
    gs[nd - 2] = a2->shape[a2->ndim - 2];
    gs[nd - 1] = b2->shape[b2->ndim - 1];
    st = trl_view_reshape(&g2, g, nd, gs);
  }
  if (st == TRL_OK && gin[0]) {  // ga = g b^T, summed over a broadcast batch
    st = trl_view_transpose(&bt, b2, -1, -2);
    trl_tensor *t = NULL;
    if (st == TRL_OK) st = trl_matmul(&t, g2, bt);
    if (st == TRL_OK) {
      trl_tensor *ga = NULL;
      st = trl_view_reshape(&ga, gin[0], a2->ndim, a2->shape);
      if (st == TRL_OK) st = trl_sum_to_acc(ga, t);
      trl_tensor_release(ga);
    }
    trl_tensor_release(t);
  }
  if (st == TRL_OK && gin[1]) {  // gb = a^T g
    st = trl_view_transpose(&at, a2, -1, -2);
    trl_tensor *t = NULL;
    if (st == TRL_OK) st = trl_matmul(&t, at, g2);
    if (st == TRL_OK) {
      trl_tensor *gb = NULL;
      st = trl_view_reshape(&gb, gin[1], b2->ndim, b2->shape);
      if (st == TRL_OK) st = trl_sum_to_acc(gb, t);
      trl_tensor_release(gb);
    }
    trl_tensor_release(t);
  }
  trl_tensor_release(a2); trl_tensor_release(b2); trl_tensor_release(g2);
  trl_tensor_release(at); trl_tensor_release(bt);
  return st;
}

trl_status trl_matmul (trl_tensor **out, trl_tensor *a, trl_tensor *b) {
  char b1[TRL_SHAPELEN], b2[TRL_SHAPELEN];
  if (a->dtype != TRL_F32 || b->dtype != TRL_F32)
    return trl_fail(TRL_ETYPE, "matmul: expected float32 operands, got %s and %s",
                    trl_dtype_name(a->dtype), trl_dtype_name(b->dtype));
  if (a->ndim < 1 || a->ndim > 3 || b->ndim < 1 || b->ndim > 3)
    return trl_fail(TRL_ESHAPE, "matmul: operands must have 1 to 3 dims, a is %s, b is %s",
                    trl_tensor_shape_str(b1, a), trl_tensor_shape_str(b2, b));
  int64_t ka = a->shape[a->ndim - 1], kb = b->shape[b->ndim == 1 ? 0 : b->ndim - 2];
  int batch_ok = a->ndim < 3 || b->ndim < 3 || a->shape[0] == b->shape[0];
  if (ka != kb || !batch_ok)
    return trl_fail(TRL_ESHAPE, "matmul: size mismatch, a is %s, b is %s",
                    trl_tensor_shape_str(b1, a), trl_tensor_shape_str(b2, b));
  // promote 1-D operands to matrices, compute, then drop the added dims
  trl_tensor *a2 = NULL, *b2v = NULL, *c = NULL;
  int64_t s[3];
  trl_status st = TRL_OK;
  if (a->ndim == 1) { s[0] = 1; s[1] = ka; st = trl_view_reshape(&a2, a, 2, s); }
  else { trl_tensor_retain(a); a2 = a; }
  if (st == TRL_OK) {
    if (b->ndim == 1) { s[0] = kb; s[1] = 1; st = trl_view_reshape(&b2v, b, 2, s); }
    else { trl_tensor_retain(b); b2v = b; }
  }
  int64_t cs[3], os[3];
  int cnd = 0, ond = 0;
  if (st == TRL_OK) {
    cnd = a2->ndim > b2v->ndim ? a2->ndim : b2v->ndim;
    if (cnd == 3) cs[0] = a2->ndim == 3 ? a2->shape[0] : b2v->shape[0];
    cs[cnd - 2] = a2->shape[a2->ndim - 2];
    cs[cnd - 1] = b2v->shape[b2v->ndim - 1];
    if (cnd == 3) os[ond++] = cs[0];
    if (a->ndim > 1) os[ond++] = cs[cnd - 2];
    if (b->ndim > 1) os[ond++] = cs[cnd - 1];
    st = trl_tensor_empty(&c, TRL_F32, cnd, cs);
  }
  if (st == TRL_OK) st = gemm_batched(c, a2, b2v, 0.0f);
  if (st == TRL_OK) st = trl_view_reshape(out, c, ond, os);
  trl_tensor_release(a2); trl_tensor_release(b2v); trl_tensor_release(c);
  trl_tensor *in[2] = {a, b};
  if (st == TRL_OK && trl_tape_wants(2, in)) {
    trl_node *node;
    st = trl_tape_record(&node, *out, TRL_OP_MATMUL, matmul_backward, 2, in, 0);
    if (st != TRL_OK) { trl_tensor_release(*out); *out = NULL; }
  }
  return st;
}
