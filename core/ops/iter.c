/*
** iter.c: broadcasting N-d iteration (see iter.h).
*/
#include <string.h>

#include "iter.h"

trl_status iter_init (iter_t *it, const char *op, int nops, trl_tensor *const *ts) {
  const trl_tensor *o = ts[0];
  int nd = o->ndim;
  it->nops = nops;
  for (int k = 0; k < nops; k++) {
    const trl_tensor *t = ts[k];
    if (t->ndim > nd) goto bad;
    for (int i = nd - 1; i >= 0; i--) {
      int j = i - (nd - t->ndim);
      if (j >= 0 && t->shape[j] == o->shape[i])
        it->stride[k][i] = t->stride[j] * (int64_t)trl_dtype_size(t->dtype);
      else if (j < 0 || t->shape[j] == 1) it->stride[k][i] = 0;
      else goto bad;
    }
    it->base[k] = (char *)trl_data(t);
  }
  // merge dim i into i+1 when every operand is contiguous across them; drop size-1 dims
  int n = 0;
  int64_t shape[TRL_MAXDIM], stride[ITER_MAXOPS][TRL_MAXDIM];
  for (int i = 0; i < nd; i++) {
    if (o->shape[i] == 1) continue;
    int merge = n > 0;
    for (int k = 0; k < nops && merge; k++)
      merge = stride[k][n - 1] == it->stride[k][i] * o->shape[i];
    if (merge) {
      shape[n - 1] *= o->shape[i];
      for (int k = 0; k < nops; k++) stride[k][n - 1] = it->stride[k][i];
    } else {
      shape[n] = o->shape[i];
      for (int k = 0; k < nops; k++) stride[k][n] = it->stride[k][i];
      n++;
    }
  }
  if (n == 0) {  // a single element
    shape[0] = 1;
    for (int k = 0; k < nops; k++) stride[k][0] = 0;
    n = 1;
  }
  if (trl_numel(o) == 0) shape[0] = 0, n = 1;
  it->ndim = n;
  memcpy(it->shape, shape, sizeof shape);
  memcpy(it->stride, stride, sizeof stride);
  return TRL_OK;
bad: {
    char b1[TRL_SHAPELEN], b2[TRL_SHAPELEN], b3[TRL_SHAPELEN];
    if (nops >= 3)
      return trl_fail(TRL_ESHAPE, "%s: shapes do not broadcast, a is %s, b is %s", op,
                      trl_tensor_shape_str(b1, ts[1]), trl_tensor_shape_str(b2, ts[2]));
    return trl_fail(TRL_ESHAPE, "%s: cannot broadcast %s to %s", op,
                    trl_tensor_shape_str(b3, ts[1]), trl_tensor_shape_str(b1, o));
  }
}

void iter_run (const iter_t *it, iter_fn fn, void *ud) {
  int last = it->ndim - 1;
  int64_t n = it->shape[last];
  if (n == 0) return;
  int64_t outer = 1;
  for (int i = 0; i < last; i++) outer *= it->shape[i];
  int64_t inner_st[ITER_MAXOPS];
  for (int k = 0; k < it->nops; k++) inner_st[k] = it->stride[k][last];
  int64_t idx[TRL_MAXDIM] = {0};
  char *p[ITER_MAXOPS];
  for (int64_t o = 0; o < outer; o++) {
    for (int k = 0; k < it->nops; k++) {
      int64_t off = 0;
      for (int i = 0; i < last; i++) off += idx[i] * it->stride[k][i];
      p[k] = it->base[k] + off;
    }
    fn(p, inner_st, n, ud);
    for (int i = last - 1; i >= 0; i--) {
      if (++idx[i] < it->shape[i]) break;
      idx[i] = 0;
    }
  }
}
