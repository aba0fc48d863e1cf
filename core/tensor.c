/*
** tensor.c: storage and tensor headers, refcounts, views and copies.
** No arithmetic lives here (see ops/); only the bookkeeping every op shares.
*/
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "mem.h"
#include "tape.h"
#include "tensor.h"

static atomic_long live_tensors;
static atomic_size_t storage_bytes;
static _Atomic uint64_t stamps;   // the last stamp handed out

static const size_t dtype_sizes[TRL_NDTYPE] = {4, 8, 1};
static const char *const dtype_names[TRL_NDTYPE] = {"float32", "int64", "uint8"};

size_t trl_dtype_size (trl_dtype dt) { return dtype_sizes[dt]; }
const char *trl_dtype_name (trl_dtype dt) { return dtype_names[dt]; }

int trl_dtype_from_name (const char *name) {
  for (int i = 0; i < TRL_NDTYPE; i++)
    if (strcmp(name, dtype_names[i]) == 0) return i;
  return -1;
}

/* {==================================================================
** Lifetime
** =================================================================== */

trl_status trl_storage_new (trl_storage **out, size_t nbytes) {
  trl_storage *s = malloc(sizeof *s);
  if (s == NULL) return trl_fail(TRL_ENOMEM, "out of memory allocating a storage header");
  s->data = trl_alloc(nbytes);
  if (s->data == NULL) {
    free(s);
    return trl_fail(TRL_ENOMEM, "out of memory allocating %zu bytes", nbytes);
  }
  atomic_init(&s->refs, 1);
  s->nbytes = nbytes;
  atomic_init(&s->stamp, atomic_fetch_add_explicit(&stamps, 1, memory_order_relaxed) + 1);
  atomic_fetch_add(&storage_bytes, nbytes);
  *out = s;
  return TRL_OK;
}

uint64_t trl_tensor_stamp (const trl_tensor *t) {
  return atomic_load_explicit(&t->storage->stamp, memory_order_relaxed);
}

void trl_tensor_touch (trl_tensor *t) {
  uint64_t v = atomic_fetch_add_explicit(&stamps, 1, memory_order_relaxed) + 1;
  atomic_store_explicit(&t->storage->stamp, v, memory_order_relaxed);
}

void trl_storage_retain (trl_storage *s) { atomic_fetch_add(&s->refs, 1); }

void trl_storage_release (trl_storage *s) {
  if (s && atomic_fetch_sub(&s->refs, 1) == 1) {
    atomic_fetch_sub(&storage_bytes, s->nbytes);
    trl_free(s->data, s->nbytes);
    free(s);
  }
}

// A header over 's' (retained) with no shape yet.
static trl_status new_header (trl_tensor **out, trl_storage *s, trl_dtype dt) {
  trl_tensor *t = calloc(1, sizeof *t);
  if (t == NULL) return trl_fail(TRL_ENOMEM, "out of memory allocating a tensor header");
  atomic_init(&t->refs, 1);
  t->dtype = dt;
  t->storage = s;
  trl_storage_retain(s);
  atomic_fetch_add(&live_tensors, 1);
  *out = t;
  return TRL_OK;
}

static void set_contiguous_strides (trl_tensor *t) {
  int64_t st = 1;
  for (int i = t->ndim - 1; i >= 0; i--) {
    t->stride[i] = st;
    st *= t->shape[i];
  }
}

static trl_status check_shape (const char *op, int ndim, const int64_t *shape, int64_t *numel) {
  if (ndim < 0 || ndim > TRL_MAXDIM)
    return trl_fail(TRL_EARG, "%s: %d dims given, at most %d are supported", op, ndim, TRL_MAXDIM);
  int64_t n = 1;
  for (int i = 0; i < ndim; i++) {
    if (shape[i] < 0) {
      char b[TRL_SHAPELEN];
      return trl_fail(TRL_EARG, "%s: negative size in shape %s", op, trl_shape_str(b, shape, ndim));
    }
    if (shape[i] > 0 && n > INT64_MAX / 16 / shape[i]) {
      char b[TRL_SHAPELEN];
      return trl_fail(TRL_EARG, "%s: shape %s is too large", op, trl_shape_str(b, shape, ndim));
    }
    n *= shape[i];
  }
  *numel = n;
  return TRL_OK;
}

trl_status trl_tensor_empty (trl_tensor **out, trl_dtype dt, int ndim, const int64_t *shape) {
  int64_t n;
  TRL_TRY(check_shape("empty", ndim, shape, &n));
  trl_storage *s;
  TRL_TRY(trl_storage_new(&s, (size_t)n * trl_dtype_size(dt)));
  trl_status st = new_header(out, s, dt);
  trl_storage_release(s);
  if (st != TRL_OK) return st;
  (*out)->ndim = ndim;
  if (ndim > 0) memcpy((*out)->shape, shape, sizeof(int64_t) * (size_t)ndim);
  set_contiguous_strides(*out);
  return TRL_OK;
}

trl_status trl_tensor_zeros (trl_tensor **out, trl_dtype dt, int ndim, const int64_t *shape) {
  TRL_TRY(trl_tensor_empty(out, dt, ndim, shape));
  memset((*out)->storage->data, 0, (*out)->storage->nbytes);
  return TRL_OK;
}

trl_status trl_tensor_empty_like (trl_tensor **out, const trl_tensor *t) {
  return trl_tensor_empty(out, t->dtype, t->ndim, t->shape);
}

trl_status trl_tensor_from_bytes (trl_tensor **out, trl_dtype dt, int ndim, const int64_t *shape,
                                  const void *src) {
  TRL_TRY(trl_tensor_empty(out, dt, ndim, shape));
  memcpy((*out)->storage->data, src, (*out)->storage->nbytes);
  return TRL_OK;
}

void trl_tensor_retain (trl_tensor *t) { atomic_fetch_add(&t->refs, 1); }

void trl_tensor_release (trl_tensor *t) {
  if (t && atomic_fetch_sub(&t->refs, 1) == 1) {
    trl_tensor_release(t->grad);
    if (t->node) trl_node_release(t->node);
    trl_storage_release(t->storage);
    atomic_fetch_sub(&live_tensors, 1);
    free(t);
  }
}

long trl_tensor_live (void) { return atomic_load(&live_tensors); }
size_t trl_storage_bytes (void) { return atomic_load(&storage_bytes); }

/* }================================================================== */

/* {==================================================================
** Inspection
** =================================================================== */

int64_t trl_numel (const trl_tensor *t) {
  int64_t n = 1;
  for (int i = 0; i < t->ndim; i++) n *= t->shape[i];
  return n;
}

int trl_is_contiguous (const trl_tensor *t) {
  int64_t st = 1;
  for (int i = t->ndim - 1; i >= 0; i--) {
    if (t->shape[i] != 1 && t->stride[i] != st) return 0;
    st *= t->shape[i];
  }
  return 1;
}

int trl_same_shape (const trl_tensor *a, const trl_tensor *b) {
  if (a->ndim != b->ndim) return 0;
  for (int i = 0; i < a->ndim; i++)
    if (a->shape[i] != b->shape[i]) return 0;
  return 1;
}

// Storage offset (elements) of the flat row-major position 'i' of the view.
static int64_t flat_offset (const trl_tensor *t, int64_t i) {
  int64_t off = t->offset;
  for (int d = t->ndim - 1; d >= 0; d--) {
    off += (i % t->shape[d]) * t->stride[d];
    i /= t->shape[d];
  }
  return off;
}

double trl_get (const trl_tensor *t, int64_t i) {
  int64_t off = flat_offset(t, i);
  switch (t->dtype) {
    case TRL_F32: return ((float *)t->storage->data)[off];
    case TRL_I64: return (double)((int64_t *)t->storage->data)[off];
    default: return ((uint8_t *)t->storage->data)[off];
  }
}

int64_t trl_geti (const trl_tensor *t, int64_t i) {
  int64_t off = flat_offset(t, i);
  switch (t->dtype) {
    case TRL_F32: return (int64_t)((float *)t->storage->data)[off];
    case TRL_I64: return ((int64_t *)t->storage->data)[off];
    default: return ((uint8_t *)t->storage->data)[off];
  }
}

void trl_set (trl_tensor *t, int64_t i, double v) {
  int64_t off = flat_offset(t, i);
  switch (t->dtype) {
    case TRL_F32: ((float *)t->storage->data)[off] = (float)v; break;
    case TRL_I64: ((int64_t *)t->storage->data)[off] = (int64_t)v; break;
    default: ((uint8_t *)t->storage->data)[off] = (uint8_t)v; break;
  }
}

char *trl_tensor_shape_str (char *buf, const trl_tensor *t) {
  return trl_shape_str(buf, t->shape, t->ndim);
}

/* }================================================================== */

/* {==================================================================
** Views
** =================================================================== */

static trl_status view_of (trl_tensor **out, trl_tensor *t) {
  TRL_TRY(new_header(out, t->storage, t->dtype));
  trl_tensor *v = *out;
  v->ndim = t->ndim;
  memcpy(v->shape, t->shape, sizeof v->shape);
  memcpy(v->stride, t->stride, sizeof v->stride);
  v->offset = t->offset;
  return TRL_OK;
}

trl_status trl_tensor_alias (trl_tensor **out, trl_tensor *t) {
  return view_of(out, t);
}

// The storage of every stub: no bytes, never freed (its count starts at 1 and stays above 0).
static trl_storage empty_storage = {1, 0, NULL, 0};

trl_status trl_tensor_stub (trl_tensor **out, trl_tensor *t) {
  TRL_TRY(new_header(out, &empty_storage, t->dtype));
  trl_tensor *v = *out;
  v->ndim = t->ndim;
  memcpy(v->shape, t->shape, sizeof v->shape);
  memcpy(v->stride, t->stride, sizeof v->stride);
  v->requires_grad = t->requires_grad;
  if (t->node) {
    v->node = t->node;
    atomic_fetch_add(&t->node->refs, 1);
  }
  return TRL_OK;
}

trl_status trl_check_dim (const char *op, int *dim, int ndim) {
  int d = *dim < 0 ? *dim + ndim : *dim;
  if (d < 0 || d >= ndim)
    return trl_fail(TRL_EARG, "%s: dim %d out of range for a %d-dim tensor", op, *dim, ndim);
  *dim = d;
  return TRL_OK;
}

trl_status trl_view_slice (trl_tensor **out, trl_tensor *t, int dim,
                           int64_t start, int64_t stop, int64_t step) {
  TRL_TRY(trl_check_dim("slice", &dim, t->ndim));
  if (step <= 0) return trl_fail(TRL_EARG, "slice: step must be positive, got %lld", (long long)step);
  if (start < 0 || stop > t->shape[dim] || start > stop) {
    char b[TRL_SHAPELEN];
    return trl_fail(TRL_EARG, "slice: range [%lld, %lld) of dim %d out of bounds for shape %s",
                    (long long)start, (long long)stop, dim, trl_tensor_shape_str(b, t));
  }
  TRL_TRY(view_of(out, t));
  (*out)->offset += start * t->stride[dim];
  (*out)->shape[dim] = (stop - start + step - 1) / step;
  (*out)->stride[dim] *= step;
  return TRL_OK;
}

trl_status trl_view_narrow (trl_tensor **out, trl_tensor *t, int dim, int64_t start, int64_t len) {
  if (len < 0) return trl_fail(TRL_EARG, "narrow: negative length %lld", (long long)len);
  return trl_view_slice(out, t, dim, start, start + len, 1);
}

trl_status trl_view_select (trl_tensor **out, trl_tensor *t, int dim, int64_t index) {
  TRL_TRY(trl_check_dim("select", &dim, t->ndim));
  if (index < 0 || index >= t->shape[dim]) {
    char b[TRL_SHAPELEN];
    return trl_fail(TRL_EARG, "select: index %lld out of range for dim %d of shape %s",
                    (long long)index, dim, trl_tensor_shape_str(b, t));
  }
  TRL_TRY(view_of(out, t));
  trl_tensor *v = *out;
  v->offset += index * t->stride[dim];
  for (int i = dim; i < t->ndim - 1; i++) {
    v->shape[i] = t->shape[i + 1];
    v->stride[i] = t->stride[i + 1];
  }
  v->ndim--;
  return TRL_OK;
}

trl_status trl_view_permute (trl_tensor **out, trl_tensor *t, const int *perm) {
  int seen[TRL_MAXDIM] = {0};
  for (int i = 0; i < t->ndim; i++) {
    if (perm[i] < 0 || perm[i] >= t->ndim || seen[perm[i]]++) {
      char b[TRL_SHAPELEN];
      return trl_fail(TRL_EARG, "permute: not a permutation of %d dims for shape %s",
                      t->ndim, trl_tensor_shape_str(b, t));
    }
  }
  TRL_TRY(view_of(out, t));
  for (int i = 0; i < t->ndim; i++) {
    (*out)->shape[i] = t->shape[perm[i]];
    (*out)->stride[i] = t->stride[perm[i]];
  }
  return TRL_OK;
}

trl_status trl_view_transpose (trl_tensor **out, trl_tensor *t, int d0, int d1) {
  TRL_TRY(trl_check_dim("transpose", &d0, t->ndim));
  TRL_TRY(trl_check_dim("transpose", &d1, t->ndim));
  int perm[TRL_MAXDIM];
  for (int i = 0; i < t->ndim; i++) perm[i] = i;
  perm[d0] = d1;
  perm[d1] = d0;
  return trl_view_permute(out, t, perm);
}

trl_status trl_view_expand (trl_tensor **out, trl_tensor *t, int ndim, const int64_t *shape) {
  char b1[TRL_SHAPELEN], b2[TRL_SHAPELEN];
  if (ndim < t->ndim || ndim > TRL_MAXDIM)
    return trl_fail(TRL_ESHAPE, "expand: cannot broadcast %s to %s", trl_tensor_shape_str(b1, t),
                    trl_shape_str(b2, shape, ndim));
  TRL_TRY(view_of(out, t));
  trl_tensor *v = *out;
  int lead = ndim - t->ndim;
  for (int i = ndim - 1; i >= 0; i--) {
    int j = i - lead;
    if (j >= 0 && t->shape[j] == shape[i]) {
      v->shape[i] = shape[i];
      v->stride[i] = t->stride[j];
    } else if (j < 0 || t->shape[j] == 1) {
      v->shape[i] = shape[i];
      v->stride[i] = 0;
    } else {
      trl_tensor_release(v);
      *out = NULL;
      return trl_fail(TRL_ESHAPE, "expand: cannot broadcast %s to %s", trl_tensor_shape_str(b1, t),
                      trl_shape_str(b2, shape, ndim));
    }
  }
  v->ndim = ndim;
  return TRL_OK;
}

// Resolve one -1 entry of 'shape' against 'numel'.
static trl_status infer_shape (const trl_tensor *t, int ndim, const int64_t *shape, int64_t *res) {
  char b1[TRL_SHAPELEN], b2[TRL_SHAPELEN];
  if (ndim < 0 || ndim > TRL_MAXDIM)
    return trl_fail(TRL_EARG, "reshape: %d dims given, at most %d are supported", ndim, TRL_MAXDIM);
  int64_t known = 1;
  int neg = -1;
  for (int i = 0; i < ndim; i++) {
    res[i] = shape[i];
    if (shape[i] == -1 && neg < 0) neg = i;
    else if (shape[i] < 0)
      return trl_fail(TRL_EARG, "reshape: bad size %lld in %s", (long long)shape[i],
                      trl_shape_str(b2, shape, ndim));
    else known *= shape[i];
  }
  int64_t n = trl_numel(t);
  if (neg >= 0) {
    if (known == 0 || n % known != 0)
      return trl_fail(TRL_ESHAPE, "reshape: cannot reshape %s into %s", trl_tensor_shape_str(b1, t),
                      trl_shape_str(b2, shape, ndim));
    res[neg] = n / known;
    known *= res[neg];
  }
  if (known != n)
    return trl_fail(TRL_ESHAPE, "reshape: cannot reshape %s (%lld elements) into %s",
                    trl_tensor_shape_str(b1, t), (long long)n, trl_shape_str(b2, shape, ndim));
  return TRL_OK;
}

// Strides for viewing 't' as 'shape' without copying (torch's computeStride); 0 if impossible.
static int view_strides (const trl_tensor *t, int ndim, const int64_t *shape, int64_t *stride) {
  if (trl_numel(t) == 0 || trl_is_contiguous(t)) {
    int64_t st = 1;
    for (int i = ndim - 1; i >= 0; i--) { stride[i] = st; st *= shape[i]; }
    return 1;
  }
  int vi = ndim - 1;
  int64_t base = t->stride[t->ndim - 1], tn = 1, vn = 1;
  for (int ti = t->ndim - 1; ti >= 0; ti--) {
    tn *= t->shape[ti];
    if (ti == 0 || (t->shape[ti - 1] != 1 && t->stride[ti - 1] != tn * base)) {
      while (vi >= 0 && (vn < tn || shape[vi] == 1)) {  // lay view dims over this chunk
        stride[vi] = vn * base;
        vn *= shape[vi];
        vi--;
      }
      if (vn != tn) return 0;
      if (ti > 0) {
        base = t->stride[ti - 1];
        tn = vn = 1;
      }
    }
  }
  return vi == -1;
}

trl_status trl_view_reshape (trl_tensor **out, trl_tensor *t, int ndim, const int64_t *shape) {
  int64_t res[TRL_MAXDIM], stride[TRL_MAXDIM];
  TRL_TRY(infer_shape(t, ndim, shape, res));
  if (!view_strides(t, ndim, res, stride)) {
    char b1[TRL_SHAPELEN], b2[TRL_SHAPELEN];
    return trl_fail(TRL_ESHAPE, "reshape: a view of non-contiguous %s as %s is impossible; copy first",
                    trl_tensor_shape_str(b1, t), trl_shape_str(b2, res, ndim));
  }
  TRL_TRY(view_of(out, t));
  (*out)->ndim = ndim;
  if (ndim > 0) {
    memcpy((*out)->shape, res, sizeof(int64_t) * (size_t)ndim);
    memcpy((*out)->stride, stride, sizeof(int64_t) * (size_t)ndim);
  }
  return TRL_OK;
}

trl_status trl_view_squeeze (trl_tensor **out, trl_tensor *t, int dim) {
  TRL_TRY(trl_check_dim("squeeze", &dim, t->ndim));
  if (t->shape[dim] != 1) {
    char b[TRL_SHAPELEN];
    return trl_fail(TRL_ESHAPE, "squeeze: dim %d of %s is not 1", dim, trl_tensor_shape_str(b, t));
  }
  return trl_view_select(out, t, dim, 0);
}

trl_status trl_view_unsqueeze (trl_tensor **out, trl_tensor *t, int dim) {
  if (t->ndim >= TRL_MAXDIM)
    return trl_fail(TRL_EARG, "unsqueeze: tensor already has %d dims", TRL_MAXDIM);
  TRL_TRY(trl_check_dim("unsqueeze", &dim, t->ndim + 1));
  TRL_TRY(view_of(out, t));
  trl_tensor *v = *out;
  for (int i = t->ndim; i > dim; i--) {
    v->shape[i] = t->shape[i - 1];
    v->stride[i] = t->stride[i - 1];
  }
  v->shape[dim] = 1;
  v->stride[dim] = dim < t->ndim ? t->stride[dim] * t->shape[dim] : 1;
  v->ndim++;
  return TRL_OK;
}

/* }================================================================== */

/* {==================================================================
** Copies
** =================================================================== */

trl_status trl_broadcast_shape (const char *op, const trl_tensor *a, const trl_tensor *b,
                                int64_t *shape, int *ndim) {
  int n = a->ndim > b->ndim ? a->ndim : b->ndim;
  for (int i = 0; i < n; i++) {
    int ia = i - (n - a->ndim), ib = i - (n - b->ndim);
    int64_t sa = ia >= 0 ? a->shape[ia] : 1, sb = ib >= 0 ? b->shape[ib] : 1;
    if (sa != sb && sa != 1 && sb != 1) {
      char b1[TRL_SHAPELEN], b2[TRL_SHAPELEN];
      return trl_fail(TRL_ESHAPE, "%s: shapes do not broadcast, a is %s, b is %s", op,
                      trl_tensor_shape_str(b1, a), trl_tensor_shape_str(b2, b));
    }
    shape[i] = sa == 1 ? sb : sa;
  }
  *ndim = n;
  return TRL_OK;
}

#define COPY_LOOP(TD, TS)                                                        \
  do {                                                                           \
    TD *d = (TD *)dst->storage->data;                                            \
    const TS *s = (const TS *)src->storage->data;                                \
    for (int64_t i = 0; i < n; i++) {                                            \
      int64_t od = dst->offset, os = sv.offset, r = i;                           \
      for (int k = nd - 1; k >= 0; k--) {                                        \
        int64_t c = r % dst->shape[k];                                           \
        r /= dst->shape[k];                                                      \
        od += c * dst->stride[k];                                                \
        os += c * sv.stride[k];                                                  \
      }                                                                          \
      d[od] = (TD)s[os];                                                         \
    }                                                                            \
  } while (0)

trl_status trl_copy_into (trl_tensor *dst, const trl_tensor *src) {
  int64_t n = trl_numel(dst);
  int nd = dst->ndim;
  trl_tensor_touch(dst);
  if (src->dtype == dst->dtype && trl_is_contiguous(dst) && trl_is_contiguous(src) &&
      trl_same_shape(dst, src)) {
    memmove(trl_data(dst), trl_data(src), (size_t)n * trl_dtype_size(dst->dtype));
    return TRL_OK;
  }
  // broadcast src's strides to dst's shape
  trl_tensor sv = *src;
  if (src->ndim > nd) goto bad;
  for (int i = nd - 1; i >= 0; i--) {
    int j = i - (nd - src->ndim);
    if (j >= 0 && src->shape[j] == dst->shape[i]) sv.stride[i] = src->stride[j];
    else if (j < 0 || src->shape[j] == 1) sv.stride[i] = 0;
    else goto bad;
  }
  if (dst->storage == src->storage) {  // overlapping: go through a temporary
    trl_tensor *tmp;
    TRL_TRY(trl_tensor_clone(&tmp, src, src->dtype));
    trl_status st = trl_copy_into(dst, tmp);
    trl_tensor_release(tmp);
    return st;
  }
  switch (dst->dtype * TRL_NDTYPE + src->dtype) {
    case TRL_F32 * TRL_NDTYPE + TRL_F32: COPY_LOOP(float, float); break;
    case TRL_F32 * TRL_NDTYPE + TRL_I64: COPY_LOOP(float, int64_t); break;
    case TRL_F32 * TRL_NDTYPE + TRL_U8: COPY_LOOP(float, uint8_t); break;
    case TRL_I64 * TRL_NDTYPE + TRL_F32: COPY_LOOP(int64_t, float); break;
    case TRL_I64 * TRL_NDTYPE + TRL_I64: COPY_LOOP(int64_t, int64_t); break;
    case TRL_I64 * TRL_NDTYPE + TRL_U8: COPY_LOOP(int64_t, uint8_t); break;
    case TRL_U8 * TRL_NDTYPE + TRL_F32: COPY_LOOP(uint8_t, float); break;
    case TRL_U8 * TRL_NDTYPE + TRL_I64: COPY_LOOP(uint8_t, int64_t); break;
    default: COPY_LOOP(uint8_t, uint8_t); break;
  }
  return TRL_OK;
bad: {
    char b1[TRL_SHAPELEN], b2[TRL_SHAPELEN];
    return trl_fail(TRL_ESHAPE, "copy: cannot broadcast source %s to destination %s",
                    trl_tensor_shape_str(b1, src), trl_tensor_shape_str(b2, dst));
  }
}

trl_status trl_tensor_clone (trl_tensor **out, const trl_tensor *t, trl_dtype dt) {
  TRL_TRY(trl_tensor_empty(out, dt, t->ndim, t->shape));
  trl_status st = trl_copy_into(*out, t);
  if (st != TRL_OK) { trl_tensor_release(*out); *out = NULL; }
  return st;
}

trl_status trl_tensor_contiguous (trl_tensor **out, trl_tensor *t) {
  if (trl_is_contiguous(t)) {
    trl_tensor_retain(t);
    *out = t;
    return TRL_OK;
  }
  return trl_tensor_clone(out, t, t->dtype);
}

trl_status trl_tensor_reshape (trl_tensor **out, trl_tensor *t, int ndim, const int64_t *shape) {
  int64_t res[TRL_MAXDIM], stride[TRL_MAXDIM];
  TRL_TRY(infer_shape(t, ndim, shape, res));
  if (view_strides(t, ndim, res, stride)) return trl_view_reshape(out, t, ndim, res);
  trl_tensor *c;
  TRL_TRY(trl_tensor_clone(&c, t, t->dtype));
  trl_status st = trl_view_reshape(out, c, ndim, res);
  trl_tensor_release(c);
  return st;
}

void trl_fill (trl_tensor *t, double v) {
  int64_t n = trl_numel(t);
  trl_tensor_touch(t);
  if (trl_is_contiguous(t) && t->dtype == TRL_F32) {
    float *p = trl_f32(t), f = (float)v;
    for (int64_t i = 0; i < n; i++) p[i] = f;
  } else {
    for (int64_t i = 0; i < n; i++) trl_set(t, i, v);
  }
}

trl_status trl_arange (trl_tensor **out, double start, double stop, double step, trl_dtype dt) {
  if (step == 0 || !isfinite(start) || !isfinite(stop) || !isfinite(step))
    return trl_fail(TRL_EARG, "arange: bad range start=%g stop=%g step=%g", start, stop, step);
  double len = ceil((stop - start) / step);
  int64_t n = len > 0 ? (int64_t)len : 0;
  TRL_TRY(trl_tensor_empty(out, dt, 1, &n));
  for (int64_t i = 0; i < n; i++) trl_set(*out, i, start + (double)i * step);
  return TRL_OK;
}

/* }================================================================== */
