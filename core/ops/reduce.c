/*
** reduce.c: sum, mean, max, min, argmax, argmin over one dim or all, and their backward.
** The input is viewed as (outer, n, inner) with the reduced dim in the middle.
*/
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "mem.h"
#include "tape.h"

typedef struct { int dim, keepdim; int64_t n; } reduce_payload;

static int is_arg (trl_op op) { return op == TRL_OP_ARGMAX || op == TRL_OP_ARGMIN; }

// Reduce contiguous f32 'x' viewed as (outer, n, inner) into 'o' (outer*inner), 'idx' for arg ops.
static void reduce_f32 (trl_op op, const float *x, int64_t outer, int64_t n, int64_t inner,
                        float *o, int64_t *idx) {
  #pragma omp parallel for schedule(static) if (outer * n * inner > 65536 && outer > 1)
  for (int64_t a = 0; a < outer; a++) {
    const float *xa = x + a * n * inner;
    for (int64_t c = 0; c < inner; c++) {
      if (op == TRL_OP_SUM || op == TRL_OP_MEAN) {
        double acc = 0;
        for (int64_t j = 0; j < n; j++) acc += xa[j * inner + c];
        o[a * inner + c] = (float)(op == TRL_OP_MEAN ? acc / (double)n : acc);
      } else {
        int want_max = op == TRL_OP_MAX || op == TRL_OP_ARGMAX;
        float best = xa[c];
        int64_t bi = 0;
        for (int64_t j = 1; j < n; j++) {
          float v = xa[j * inner + c];
          if (isnan(best)) break;  // NaN wins, as in NumPy
          if (isnan(v) || (want_max ? v > best : v < best)) { best = v; bi = j; }
        }
        if (idx) idx[a * inner + c] = bi;
        else o[a * inner + c] = best;
      }
    }
  }
}

static void reduce_i64 (trl_op op, const int64_t *x, int64_t outer, int64_t n, int64_t inner,
                        int64_t *o, double *mean) {
  for (int64_t a = 0; a < outer; a++) {
    const int64_t *xa = x + a * n * inner;
    for (int64_t c = 0; c < inner; c++) {
      int64_t r = op == TRL_OP_SUM || op == TRL_OP_MEAN ? 0 : xa[c], bi = 0;
      for (int64_t j = 0; j < n; j++) {
        int64_t v = xa[j * inner + c];
        switch (op) {
          case TRL_OP_SUM: case TRL_OP_MEAN: r += v; break;
          case TRL_OP_MAX: case TRL_OP_ARGMAX: if (v > r) { r = v; bi = j; } break;
          default: if (v < r) { r = v; bi = j; } break;
        }
      }
      if (mean) mean[a * inner + c] = (double)r / (double)n;
      else o[a * inner + c] = is_arg(op) ? bi : r;
    }
  }
}

static trl_status reduce_backward (trl_node *node, const trl_tensor *gout, trl_tensor **gin) {
  const reduce_payload *p = (const reduce_payload *)node->payload;
  trl_tensor *x = node->in[0], *g = (trl_tensor *)gout, *gk = NULL;
  trl_status st = TRL_OK;
  // gout with the reduced dim kept (size 1), so it broadcasts against x
  if (p->dim == TRL_ALLDIMS || p->keepdim) {
    trl_tensor_retain(g);
    gk = g;
  } else {
    TRL_TRY(trl_view_unsqueeze(&gk, g, p->dim));
  }
  if (node->op == TRL_OP_SUM || node->op == TRL_OP_MEAN) {
    float scale = node->op == TRL_OP_MEAN ? 1.0f / (float)p->n : 1.0f;
    trl_tensor *e;
    st = trl_view_expand(&e, gk, x->ndim, x->shape);
    if (st == TRL_OK) {
      int64_t cnt = trl_numel(x);
      float *d = trl_f32(gin[0]);
      for (int64_t i = 0; i < cnt; i++) d[i] += scale * (float)trl_get(e, i);
      trl_tensor_release(e);
    }
  } else {  // MAX/MIN: to the first extreme element, whose index was saved
    trl_tensor *idx = node->saved[0];
    int64_t outer = 1, n = p->n, inner = 1;
    int dim = p->dim == TRL_ALLDIMS ? 0 : p->dim;
    if (p->dim == TRL_ALLDIMS) n = trl_numel(x);
    else {
      for (int i = 0; i < dim; i++) outer *= x->shape[i];
      for (int i = dim + 1; i < x->ndim; i++) inner *= x->shape[i];
    }
    float *d = trl_f32(gin[0]);
    const int64_t *ix = (const int64_t *)trl_data(idx);
    for (int64_t a = 0; a < outer; a++)
      for (int64_t c = 0; c < inner; c++)
        d[(a * n + ix[a * inner + c]) * inner + c] += (float)trl_get(gk, a * inner + c);
  }
  trl_tensor_release(gk);
  return st;
}

trl_status trl_reduce (trl_tensor **out, trl_op op, trl_tensor *a, int dim, int keepdim) {
  const char *name = trl_op_name(op);
  if (op < TRL_OP_SUM || op > TRL_OP_ARGMIN)
    return trl_fail(TRL_EARG, "reduce: %s is not a reduction", name);
  int64_t outer = 1, n, inner = 1;
  int64_t oshape[TRL_MAXDIM];
  int ond = 0;
  if (dim == TRL_ALLDIMS) {
    n = trl_numel(a);
    if (keepdim) { ond = a->ndim; for (int i = 0; i < ond; i++) oshape[i] = 1; }
  } else {
    TRL_TRY(trl_check_dim(name, &dim, a->ndim));
    n = a->shape[dim];
    for (int i = 0; i < a->ndim; i++) {
      if (i < dim) outer *= a->shape[i];
      if (i > dim) inner *= a->shape[i];
      if (i != dim) oshape[ond++] = a->shape[i];
      else if (keepdim) oshape[ond++] = 1;
    }
  }
  if (n == 0 && op != TRL_OP_SUM) {
    char b[TRL_SHAPELEN];
    return trl_fail(TRL_ESHAPE, "%s: reduction over an empty dim of %s", name,
                    trl_tensor_shape_str(b, a));
  }
  trl_dtype odt = is_arg(op) ? TRL_I64
                : a->dtype == TRL_F32 || op == TRL_OP_MEAN ? TRL_F32
                : op == TRL_OP_SUM ? TRL_I64 : a->dtype;
  trl_tensor *x = NULL, *idx = NULL;
  trl_status st = TRL_OK;
  int fl = a->dtype == TRL_F32;
  st = fl ? trl_tensor_contiguous(&x, a) : trl_tensor_clone(&x, a, TRL_I64);
  if (st == TRL_OK) st = trl_tensor_empty(out, odt, ond, oshape);
  int want_idx = fl && (op == TRL_OP_MAX || op == TRL_OP_MIN) && trl_tape_wants(1, &a);
  if (st == TRL_OK && want_idx) st = trl_tensor_empty(&idx, TRL_I64, ond, oshape);
  if (st == TRL_OK) {
    if (fl) {
      if (is_arg(op)) {
        reduce_f32(op, trl_f32(x), outer, n, inner, NULL, (int64_t *)trl_data(*out));
      } else {
        reduce_f32(op, trl_f32(x), outer, n, inner, trl_f32(*out), NULL);
        if (idx) reduce_f32(op == TRL_OP_MAX ? TRL_OP_ARGMAX : TRL_OP_ARGMIN, trl_f32(x), outer, n,
                            inner, NULL, (int64_t *)trl_data(idx));
      }
    } else if (op == TRL_OP_MEAN) {
      double *m = malloc(sizeof(double) * (size_t)(outer * inner));
      if (m == NULL) st = trl_fail(TRL_ENOMEM, "mean: out of memory");
      else {
        reduce_i64(op, (const int64_t *)trl_data(x), outer, n, inner, NULL, m);
        for (int64_t i = 0; i < outer * inner; i++) trl_f32(*out)[i] = (float)m[i];
        free(m);
      }
    } else if (odt == TRL_I64) {
      reduce_i64(op, (const int64_t *)trl_data(x), outer, n, inner, (int64_t *)trl_data(*out), NULL);
    } else {  // MAX/MIN of uint8 stays uint8
      trl_tensor *t = NULL;
      st = trl_tensor_empty(&t, TRL_I64, ond, oshape);
      if (st == TRL_OK) {
        reduce_i64(op, (const int64_t *)trl_data(x), outer, n, inner, (int64_t *)trl_data(t), NULL);
        st = trl_copy_into(*out, t);
      }
      trl_tensor_release(t);
    }
  }
  if (st == TRL_OK && fl && !is_arg(op) && trl_tape_wants(1, &a)) {
    trl_node *node;
    st = trl_tape_record(&node, *out, op, reduce_backward, 1, &a, sizeof(reduce_payload));
    if (st == TRL_OK) {
      *(reduce_payload *)node->payload = (reduce_payload){dim, keepdim, n};
      if (idx) trl_node_save(node, 0, idx);
      st = trl_node_drop_values(node, 1);  // shapes and the saved indices suffice
    }
  }
  trl_tensor_release(idx);
  trl_tensor_release(x);
  if (st != TRL_OK) { trl_tensor_release(*out); *out = NULL; }
  return st;
}
