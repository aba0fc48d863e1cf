/*
** iter.h: the strided N-d walk shared by elementwise ops. Operands are broadcast to the
** output shape (stride 0 on stretched dims) and adjacent dims are merged when every operand
** allows it, so most walks end up as one long inner loop.
*/
#ifndef TRL_ITER_H
#define TRL_ITER_H

#include "tensor.h"

#define ITER_MAXOPS 4

typedef struct {
  int ndim;
  int64_t shape[TRL_MAXDIM];
  int64_t stride[ITER_MAXOPS][TRL_MAXDIM];   // in BYTES
  char *base[ITER_MAXOPS];                   // element 0 of each operand
  int nops;
} iter_t;

// Operand 0 is the output (its shape is the walk's shape); the others are broadcast to it.
// Fails when an operand does not broadcast; 'op' names the op in the message.
trl_status iter_init (iter_t *it, const char *op, int nops, trl_tensor *const *ts);

// Calls fn(ptrs, byte strides of the inner dim, inner length, ud) for each inner row.
typedef void (*iter_fn) (char **p, const int64_t *st, int64_t n, void *ud);
void iter_run (const iter_t *it, iter_fn fn, void *ud);

#endif
