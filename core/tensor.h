/*
** tensor.h: refcounted storage and strided tensors, the data model of trl.
** A tensor is a header (dtype, shape, strides, offset) over a shared storage; views
** (narrow, select, permute, expand, reshape of contiguous data) are new headers that
** retain the same storage. Dims and indices here are 0-based; bindings convert.
** Ownership: functions that return a tensor through 'out' return a NEW ref; every
** other tensor argument is borrowed.
*/
#ifndef TRL_TENSOR_H
#define TRL_TENSOR_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "err.h"

#define TRL_MAXDIM 8

typedef enum { TRL_F32, TRL_I64, TRL_U8, TRL_NDTYPE } trl_dtype;

typedef struct trl_storage {
  atomic_int refs;
  size_t nbytes;
  void *data;                  // 64-byte aligned, owned
  _Atomic uint64_t stamp;      // see trl_tensor_touch
} trl_storage;

struct trl_node;               // autograd node, see tape.h

typedef struct trl_tensor {
  atomic_int refs;
  trl_dtype dtype;
  int ndim;
  int64_t shape[TRL_MAXDIM];
  int64_t stride[TRL_MAXDIM];  // in elements; 0 for a broadcast dim
  int64_t offset;              // in elements, from storage->data
  trl_storage *storage;
  // autograd state (tape.c); all zero for plain tensors
  struct trl_tensor *grad;     // owned ref, same shape, allocated by attach_grad
  struct trl_node *node;       // owned ref to the op that produced this tensor, NULL for leaves
  uint8_t requires_grad;       // leaf marked by attach_grad, or produced from one while recording
  uint8_t grad_req;            // trl_grad_req for leaves
  uint32_t mark;               // scratch for graph walks (tape.c)
} trl_tensor;

typedef enum { TRL_GRAD_WRITE, TRL_GRAD_ADD, TRL_GRAD_NULL } trl_grad_req;

size_t trl_dtype_size (trl_dtype dt);
const char *trl_dtype_name (trl_dtype dt);
int trl_dtype_from_name (const char *name);          // -1 if unknown

/* {==================================================================
** Storage and tensor lifetime
** =================================================================== */

trl_status trl_storage_new (trl_storage **out, size_t nbytes);   // new ref, uninitialized
void trl_storage_retain (trl_storage *s);
void trl_storage_release (trl_storage *s);

// A contiguous tensor with uninitialized data.
trl_status trl_tensor_empty (trl_tensor **out, trl_dtype dt, int ndim, const int64_t *shape);
trl_status trl_tensor_zeros (trl_tensor **out, trl_dtype dt, int ndim, const int64_t *shape);
// An empty tensor shaped like 't' (contiguous, same dtype).
trl_status trl_tensor_empty_like (trl_tensor **out, const trl_tensor *t);
// Wrap a fresh contiguous tensor around a copy of 'nbytes' bytes of 'src'.
trl_status trl_tensor_from_bytes (trl_tensor **out, trl_dtype dt, int ndim, const int64_t *shape,
                                  const void *src);
void trl_tensor_retain (trl_tensor *t);
void trl_tensor_release (trl_tensor *t);              // NULL is fine

// Stamps: every storage gets one from a single counter when it is made, and a new one from
// each function that writes into a tensor it did not make (trl_copy_into, trl_fill,
// trl_random_*, BatchNorm's running statistics, backward for the leaves' gradients, the
// optimizer bindings; any code that writes through trl_data calls trl_tensor_touch). The same
// storage with the same stamp holds the same bytes, so what is derived from a tensor (a
// conv's prepacked weight) can be kept until the stamp moves. trl_set is the element loop of
// those writers and does not stamp.
uint64_t trl_tensor_stamp (const trl_tensor *t);
void trl_tensor_touch (trl_tensor *t);

// Number of tensor headers alive (for leak tests) and bytes of storage allocated.
long trl_tensor_live (void);
size_t trl_storage_bytes (void);

/* }================================================================== */

/* {==================================================================
** Inspection
** =================================================================== */

int64_t trl_numel (const trl_tensor *t);
int trl_is_contiguous (const trl_tensor *t);
int trl_same_shape (const trl_tensor *a, const trl_tensor *b);
// Pointer to element 0 of the view (storage data + offset).
static inline void *trl_data (const trl_tensor *t) {
  return (char *)t->storage->data + t->offset * (int64_t)trl_dtype_size(t->dtype);
}
static inline float *trl_f32 (const trl_tensor *t) { return (float *)trl_data(t); }
// Element at a flat row-major position 'i' of the view, as double / int64.
double trl_get (const trl_tensor *t, int64_t i);
int64_t trl_geti (const trl_tensor *t, int64_t i);
void trl_set (trl_tensor *t, int64_t i, double v);
char *trl_tensor_shape_str (char *buf, const trl_tensor *t);   // TRL_SHAPELEN bytes

/* }================================================================== */

/* {==================================================================
** Views: share storage with 't'
** =================================================================== */

// Elements start, start+step, ... below stop along 'dim' (step > 0, bounds already clamped).
trl_status trl_view_slice (trl_tensor **out, trl_tensor *t, int dim,
                           int64_t start, int64_t stop, int64_t step);
trl_status trl_view_narrow (trl_tensor **out, trl_tensor *t, int dim, int64_t start, int64_t len);
// A plain header over the same data (no autograd state).
trl_status trl_tensor_alias (trl_tensor **out, trl_tensor *t);
// A header with t's dtype, shape and autograd links but no data (an empty shared storage):
// what the tape keeps of an input whose values backward does not need.
trl_status trl_tensor_stub (trl_tensor **out, trl_tensor *t);
// Drops 'dim'.
trl_status trl_view_select (trl_tensor **out, trl_tensor *t, int dim, int64_t index);
trl_status trl_view_permute (trl_tensor **out, trl_tensor *t, const int *perm);
trl_status trl_view_transpose (trl_tensor **out, trl_tensor *t, int d0, int d1);
// Broadcast to 'shape' (NumPy rules: new leading dims, size-1 dims stretch).
trl_status trl_view_expand (trl_tensor **out, trl_tensor *t, int ndim, const int64_t *shape);
// A view when the strides allow it, else TRL_ESHAPE; one entry of 'shape' may be -1.
trl_status trl_view_reshape (trl_tensor **out, trl_tensor *t, int ndim, const int64_t *shape);
trl_status trl_view_squeeze (trl_tensor **out, trl_tensor *t, int dim);
trl_status trl_view_unsqueeze (trl_tensor **out, trl_tensor *t, int dim);

/* }================================================================== */

/* {==================================================================
** Copies
** =================================================================== */

// Copy 'src' into 'dst', broadcasting src to dst's shape and converting dtype.
trl_status trl_copy_into (trl_tensor *dst, const trl_tensor *src);
// A contiguous copy (new storage) in dtype 'dt'.
trl_status trl_tensor_clone (trl_tensor **out, const trl_tensor *t, trl_dtype dt);
// 't' itself (new ref) if contiguous, else a contiguous copy.
trl_status trl_tensor_contiguous (trl_tensor **out, trl_tensor *t);
// Reshape: a view where possible, else a copy (like torch.reshape).
trl_status trl_tensor_reshape (trl_tensor **out, trl_tensor *t, int ndim, const int64_t *shape);
// Fill every element of the view.
void trl_fill (trl_tensor *t, double v);
// start, start+step, ... below stop.
trl_status trl_arange (trl_tensor **out, double start, double stop, double step, trl_dtype dt);

/* }================================================================== */

/* {==================================================================
** Shape helpers shared by ops
** =================================================================== */

// Broadcast shape of a and b into 'shape'/'ndim'; TRL_ESHAPE names 'op' and both shapes.
trl_status trl_broadcast_shape (const char *op, const trl_tensor *a, const trl_tensor *b,
                                int64_t *shape, int *ndim);
// Normalize a possibly negative 0-based dim; TRL_EARG names 'op' when out of range.
trl_status trl_check_dim (const char *op, int *dim, int ndim);

/* }================================================================== */

#endif
