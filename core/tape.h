/*
** tape.h: reverse-mode autograd. While recording, each op whose inputs require grad makes a
** node that holds its inputs (refs), what its backward needs (saved tensors + a small payload)
** and a backward function; the output tensor keeps the node alive, so the graph is freed with
** the last tensor that can reach it. Backward kernels ACCUMULATE into the input gradients.
*/
#ifndef TRL_TAPE_H
#define TRL_TAPE_H

#include "ops.h"

#define TRL_NODE_MAXIN 8
#define TRL_NODE_MAXSAVED 6

typedef struct trl_node trl_node;

// Accumulate d(loss)/d(input i) into gin[i] (contiguous, shaped like input i, zero-filled before
// the first contribution), for every i with gin[i] != NULL, given gout = d(loss)/d(output).
// Exception: a node whose 'overwrites' has bit i may find bit i set in 'fresh': gin[i] is then
// the first contribution, NOT zero-filled, and backward must write every element of it.
// A node whose 'reuses' has bit i (a subset of 'overwrites') computes gin[i] elementwise from
// gout at the same index: backward may then hand it gout's own buffer as a fresh gin[i] (same
// shape, nobody else holding it), so BatchNorm, ReLU and a residual add pass their gradient on
// in place instead of filling a new activation-sized block. One input gets it, except those
// in 'passes' (a subset of 'reuses'): their gradient IS gout (the terms of a sum), so all of
// them may share the one buffer. A shared buffer is copied before anything adds to it.
typedef trl_status (*trl_backward_fn) (trl_node *n, const trl_tensor *gout, trl_tensor **gin);

struct trl_node {
  atomic_int refs;
  trl_op op;
  int n_in;
  trl_tensor *in[TRL_NODE_MAXIN];          // refs; NULL for an absent optional input
  trl_tensor *saved[TRL_NODE_MAXSAVED];    // refs to whatever backward needs (output, mask, ...)
  trl_backward_fn backward;
  trl_tensor *gout;                        // gradient buffer of this node's output during backward
  int64_t out_shape[TRL_MAXDIM];           // the output's shape, so backward can size 'gout'
  int out_ndim;
  uint64_t seq;                            // creation order; backward runs in decreasing seq
  uint32_t mark;                           // scratch for graph walks
  int freed;                               // saved tensors dropped by a backward without retain
  unsigned overwrites;                     // inputs whose gin backward can write when fresh
  unsigned reuses;                         // of those, inputs whose gin may BE gout (below)
  unsigned passes;                         // of those, inputs whose gin is exactly gout
  unsigned fresh;                          // during backward: gin[i] holds garbage (see above)
  size_t payload_size;
  _Alignas(16) unsigned char payload[];    // op parameters (strides, axis, ...)
};

/* {==================================================================
** Recording state (per thread)
** =================================================================== */

int trl_tape_is_recording (void);
int trl_tape_is_training (void);
// Set both flags; returns the previous state as (recording | training << 1).
int trl_tape_set (int recording, int training);
// 0 turns off 'fresh' gradient buffers (every one is zero-filled, as before they existed);
// returns the previous setting. For tests that compare both ways.
int trl_tape_set_fresh (int on);
// Gradient buffers that backward handed on in place (see 'reuses'), counted since the start.
uint64_t trl_tape_reused (void);
// Shared gradient buffers (see 'passes') copied before a node added to them, counted likewise.
uint64_t trl_tape_unshared (void);

/* }================================================================== */

/* {==================================================================
** Building nodes (called by op builders)
** =================================================================== */

// True when recording and any of the 'n' inputs (NULLs allowed) requires grad.
int trl_tape_wants (int n, trl_tensor *const *in);
// A node for 'op' with 'n' inputs (retained) and a zeroed payload of 'payload_size' bytes.
trl_status trl_node_new (trl_node **out, trl_op op, trl_backward_fn fn, int n, trl_tensor *const *in,
                         size_t payload_size);
// Keep 't' alive for backward (retained) in slot 'i'.
void trl_node_save (trl_node *n, int i, trl_tensor *t);
// Backward of 'n' needs only the shapes of the inputs in 'mask' (bit i = input i), not their
// values: computed inputs among them are replaced by storage-less stubs, so their memory can
// go as soon as nothing else holds them. Leaves are kept (their .grad lives on them).
trl_status trl_node_drop_values (trl_node *n, unsigned mask);
// Make 'node' the producer of 'out' (steals the node ref) and mark 'out' as requiring grad.
void trl_tape_attach (trl_tensor *out, trl_node *node);
void trl_node_release (trl_node *n);

// Convenience for builders: if trl_tape_wants, make + attach a node and return it in *node
// (else *node = NULL). The payload may be filled after this call.
trl_status trl_tape_record (trl_node **node, trl_tensor *out, trl_op op, trl_backward_fn fn,
                            int n, trl_tensor *const *in, size_t payload_size);

/* }================================================================== */

/* {==================================================================
** Leaves and backward
** =================================================================== */

// Mark a leaf: allocate t->grad (zeros) and set its grad_req.
trl_status trl_attach_grad (trl_tensor *t, trl_grad_req req);
// Change a leaf's grad_req ('null' stops gradients from being computed for it).
void trl_set_grad_req (trl_tensor *t, trl_grad_req req);
// Run backward from 'y' with head gradient 'head' (NULL: ones, y must have one element).
// Leaves get their gradients written or added per grad_req; 'null' leaves get nothing.
trl_status trl_backward (trl_tensor *y, const trl_tensor *head, int retain_graph);

// Sum 'g' (broadcast shape) down to 'shape' and ADD it into 'dst' (contiguous, of 'shape').
// Used by every broadcasting op's backward.
trl_status trl_sum_to_acc (trl_tensor *dst, const trl_tensor *g);

/* }================================================================== */

#endif
