/*
** shape.c: ops that move data without arithmetic, recorded for autograd: reshape, permute,
** slice, expand (views of their input) and concat, copy (new storage).
*/
#include <string.h>

#include "tape.h"

typedef struct { int dim; int64_t start, step; int perm[TRL_MAXDIM]; } shape_payload;

// gin += gout seen through the inverse of the view op.
static trl_status view_backward (trl_node *n, const trl_tensor *gout, trl_tensor **gin) {
  const shape_payload *p = (const shape_payload *)n->payload;
  trl_tensor *g = (trl_tensor *)gout, *v = NULL;
  trl_status st = TRL_OK;
  switch (n->op) {
    case TRL_OP_RESHAPE:
      st = trl_view_reshape(&v, g, gin[0]->ndim, gin[0]->shape);
      if (st == TRL_OK) st = trl_sum_to_acc(gin[0], v);
      break;
    case TRL_OP_PERMUTE: {
      int inv[TRL_MAXDIM];
      for (int i = 0; i < g->ndim; i++) inv[p->perm[i]] = i;
      st = trl_view_permute(&v, g, inv);
      if (st == TRL_OK) st = trl_sum_to_acc(gin[0], v);
      break;
    }
    case TRL_OP_SLICE: {  // the slice of gin += gout
      int64_t stop = p->start + (g->shape[p->dim] - 1) * p->step + 1;
      if (g->shape[p->dim] == 0) break;
      st = trl_view_slice(&v, gin[0], p->dim, p->start, stop, p->step);
      if (st == TRL_OK) st = trl_sum_to_acc(v, g);
      break;
    }
    case TRL_OP_EXPAND:
      st = trl_sum_to_acc(gin[0], g);
      break;
    case TRL_OP_COPY:
      st = trl_sum_to_acc(gin[0], g);
      break;
    default: break;
  }
  trl_tensor_release(v);
  return st;
}

static trl_status record_view (trl_tensor **out, trl_tensor *t, trl_op op, const shape_payload *p) {
  trl_node *node;
  if (t->dtype != TRL_F32) return TRL_OK;
  trl_status st = trl_tape_record(&node, *out, op, view_backward, 1, &t, sizeof *p);
  if (st == TRL_OK && node) st = trl_node_drop_values(node, 1);  // backward needs shapes only
  if (st != TRL_OK) { trl_tensor_release(*out); *out = NULL; return st; }
  if (node) memcpy(node->payload, p, sizeof *p);
  return TRL_OK;
}

trl_status trl_reshape (trl_tensor **out, trl_tensor *t, int ndim, const int64_t *shape) {
  TRL_TRY(trl_tensor_reshape(out, t, ndim, shape));
  shape_payload p = {0};
  return record_view(out, t, TRL_OP_RESHAPE, &p);
}

trl_status trl_permute (trl_tensor **out, trl_tensor *t, const int *perm) {
  TRL_TRY(trl_view_permute(out, t, perm));
  shape_payload p = {0};
  memcpy(p.perm, perm, sizeof(int) * (size_t)t->ndim);
  return record_view(out, t, TRL_OP_PERMUTE, &p);
}

trl_status trl_slice (trl_tensor **out, trl_tensor *t, int dim, int64_t start, int64_t stop,
                      int64_t step) {
  TRL_TRY(trl_view_slice(out, t, dim, start, stop, step));
  shape_payload p = {0};
  p.dim = dim < 0 ? dim + t->ndim : dim;
  p.start = start;
  p.step = step;
  return record_view(out, t, TRL_OP_SLICE, &p);
}

trl_status trl_expand (trl_tensor **out, trl_tensor *t, int ndim, const int64_t *shape) {
  TRL_TRY(trl_view_expand(out, t, ndim, shape));
  shape_payload p = {0};
  return record_view(out, t, TRL_OP_EXPAND, &p);
}

trl_status trl_copy (trl_tensor **out, trl_tensor *t, trl_dtype dt) {
  TRL_TRY(trl_tensor_clone(out, t, dt));
  if (dt != TRL_F32) return TRL_OK;
  shape_payload p = {0};
  return record_view(out, t, TRL_OP_COPY, &p);
}

/* {==================================================================
** concat
** =================================================================== */

typedef struct { int dim; } concat_payload;

static trl_status concat_backward (trl_node *n, const trl_tensor *gout, trl_tensor **gin) {
  int dim = ((const concat_payload *)n->payload)->dim;
  int64_t at = 0;
  for (int i = 0; i < n->n_in; i++) {
    int64_t len = n->in[i]->shape[dim];
    if (gin[i]) {
      trl_tensor *v;
      TRL_TRY(trl_view_narrow(&v, (trl_tensor *)gout, dim, at, len));
      trl_status st = trl_sum_to_acc(gin[i], v);
      trl_tensor_release(v);
      if (st != TRL_OK) return st;
    }
    at += len;
  }
  return TRL_OK;
}

trl_status trl_concat (trl_tensor **out, trl_tensor *const *ts, int n, int dim) {
  if (n < 1) return trl_fail(TRL_EARG, "concat: no tensors given");
  const trl_tensor *t0 = ts[0];
  TRL_TRY(trl_check_dim("concat", &dim, t0->ndim));
  int64_t shape[TRL_MAXDIM];
  memcpy(shape, t0->shape, sizeof shape);
  shape[dim] = 0;
  for (int i = 0; i < n; i++) {
    const trl_tensor *t = ts[i];
    int ok = t->ndim == t0->ndim && t->dtype == t0->dtype;
    for (int d = 0; ok && d < t->ndim; d++) ok = d == dim || t->shape[d] == t0->shape[d];
    if (!ok) {
      char b1[TRL_SHAPELEN], b2[TRL_SHAPELEN];
      return trl_fail(TRL_ESHAPE, "concat: tensor %d is %s %s, tensor 1 is %s %s (dim %d may differ)",
                      i + 1, trl_tensor_shape_str(b1, t), trl_dtype_name(t->dtype),
                      trl_tensor_shape_str(b2, t0), trl_dtype_name(t0->dtype), dim);
    }
    shape[dim] += t->shape[dim];
  }
  TRL_TRY(trl_tensor_empty(out, t0->dtype, t0->ndim, shape));
  int64_t at = 0;
  trl_status st = TRL_OK;
  for (int i = 0; i < n && st == TRL_OK; i++) {
    trl_tensor *v;
    st = trl_view_narrow(&v, *out, dim, at, ts[i]->shape[dim]);
    if (st == TRL_OK) { st = trl_copy_into(v, ts[i]); trl_tensor_release(v); }
    at += ts[i]->shape[dim];
  }
  if (st == TRL_OK && n <= TRL_NODE_MAXIN && t0->dtype == TRL_F32 && trl_tape_wants(n, ts)) {
    trl_node *node;
    st = trl_tape_record(&node, *out, TRL_OP_CONCAT, concat_backward, n, ts, sizeof(concat_payload));
    if (st == TRL_OK) ((concat_payload *)node->payload)->dim = dim;
    if (st == TRL_OK) st = trl_node_drop_values(node, ~0u);
  } else if (st == TRL_OK && n > TRL_NODE_MAXIN && trl_tape_wants(n, ts)) {
    st = trl_fail(TRL_EARG, "concat: at most %d inputs can be recorded for autograd, got %d",
                  TRL_NODE_MAXIN, n);
  }
  if (st != TRL_OK) { trl_tensor_release(*out); *out = NULL; }
  return st;
}

/* }================================================================== */
