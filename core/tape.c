/*
** tape.c: autograd nodes, recording state and the backward walk (see tape.h).
** The graph lives on the tensors: an op's output owns its node, a node owns its inputs.
*/
#include <stdlib.h>
#include <string.h>

#include "mem.h"
#include "tape.h"

static _Thread_local int recording, training;
static atomic_uint_fast64_t next_seq;
static atomic_uint walk_mark;

int trl_tape_is_recording (void) { return recording; }
int trl_tape_is_training (void) { return training; }

int trl_tape_set (int rec, int train) {
  int prev = recording | (training << 1);
  recording = rec != 0;
  training = train != 0;
  trl_mem_exact(recording);   // a recorded step's tensors live to its peak: see mem.h
  return prev;
}

int trl_tape_wants (int n, trl_tensor *const *in) {
  if (!recording) return 0;
  for (int i = 0; i < n; i++)
    if (in[i] && in[i]->requires_grad) return 1;
  return 0;
}

trl_status trl_node_new (trl_node **out, trl_op op, trl_backward_fn fn, int n, trl_tensor *const *in,
                         size_t payload_size) {
  if (n > TRL_NODE_MAXIN)
    return trl_fail(TRL_EARG, "%s: %d inputs, a node holds at most %d", trl_op_name(op), n,
                    TRL_NODE_MAXIN);
  trl_node *node = calloc(1, sizeof *node + payload_size);
  if (node == NULL) return trl_fail(TRL_ENOMEM, "%s: out of memory recording the op", trl_op_name(op));
  atomic_init(&node->refs, 1);
  node->op = op;
  node->backward = fn;
  node->n_in = n;
  node->payload_size = payload_size;
  node->seq = atomic_fetch_add(&next_seq, 1);
  for (int i = 0; i < n; i++) {
    node->in[i] = in[i];
    if (in[i]) trl_tensor_retain(in[i]);
  }
  *out = node;
  return TRL_OK;
}

void trl_node_save (trl_node *n, int i, trl_tensor *t) {
  // an alias, not 't': 't' may be the node's own output, and owning it would make a cycle
  trl_tensor *a = NULL;
  if (trl_tensor_alias(&a, t) != TRL_OK) return;  // only on OOM; backward then reports it
  trl_tensor_release(n->saved[i]);
  n->saved[i] = a;
}

trl_status trl_node_drop_values (trl_node *n, unsigned mask) {
  for (int i = 0; i < n->n_in; i++) {
    trl_tensor *t = n->in[i];
    if (!(mask >> i & 1) || t == NULL || t->node == NULL) continue;
    trl_tensor *stub;
    TRL_TRY(trl_tensor_stub(&stub, t));
    trl_tensor_release(t);
    n->in[i] = stub;
  }
  return TRL_OK;
}

void trl_tape_attach (trl_tensor *out, trl_node *node) {
  if (out->node) trl_node_release(out->node);
  out->node = node;
  out->requires_grad = 1;
  node->out_ndim = out->ndim;
  memcpy(node->out_shape, out->shape, sizeof node->out_shape);
}

void trl_node_release (trl_node *n) {
  if (n && atomic_fetch_sub(&n->refs, 1) == 1) {
    for (int i = 0; i < n->n_in; i++) trl_tensor_release(n->in[i]);
    for (int i = 0; i < TRL_NODE_MAXSAVED; i++) trl_tensor_release(n->saved[i]);
    trl_tensor_release(n->gout);
    free(n);
  }
}

trl_status trl_tape_record (trl_node **node, trl_tensor *out, trl_op op, trl_backward_fn fn,
                            int n, trl_tensor *const *in, size_t payload_size) {
  *node = NULL;
  if (!trl_tape_wants(n, in)) return TRL_OK;
  TRL_TRY(trl_node_new(node, op, fn, n, in, payload_size));
  trl_tape_attach(out, *node);
  return TRL_OK;
}

trl_status trl_attach_grad (trl_tensor *t, trl_grad_req req) {
  if (t->dtype != TRL_F32)
    return trl_fail(TRL_ETYPE, "attach_grad: only float32 tensors can have gradients, got %s",
                    trl_dtype_name(t->dtype));
  trl_tensor *g;
  TRL_TRY(trl_tensor_zeros(&g, TRL_F32, t->ndim, t->shape));
  trl_tensor_release(t->grad);
  t->grad = g;
  if (t->node) { trl_node_release(t->node); t->node = NULL; }  // it becomes a leaf
  trl_set_grad_req(t, req);
  return TRL_OK;
}

void trl_set_grad_req (trl_tensor *t, trl_grad_req req) {
  t->grad_req = (uint8_t)req;
  if (t->node == NULL) t->requires_grad = req != TRL_GRAD_NULL && t->grad != NULL;
}

/* {==================================================================
** Backward
** =================================================================== */

typedef struct { trl_node **v; int n, cap; } nodelist;

static int push (nodelist *l, trl_node *x) {
  if (l->n == l->cap) {
    int cap = l->cap ? l->cap * 2 : 64;
    trl_node **v = realloc(l->v, sizeof *v * (size_t)cap);
    if (v == NULL) return 0;
    l->v = v;
    l->cap = cap;
  }
  l->v[l->n++] = x;
  return 1;
}

static int by_seq_desc (const void *a, const void *b) {
  uint64_t x = (*(trl_node *const *)a)->seq, y = (*(trl_node *const *)b)->seq;
  return x < y ? 1 : (x > y ? -1 : 0);
}

// All nodes reachable from 'root' (iterative DFS), and the leaves that will receive grads.
static trl_status collect (trl_node *root, unsigned mark, nodelist *nodes, nodelist *leaves) {
  nodelist stack = {0};
  trl_status st = TRL_OK;
  root->mark = mark;
  if (!push(&stack, root) || !push(nodes, root)) st = trl_fail(TRL_ENOMEM, "backward: out of memory");
  while (st == TRL_OK && stack.n > 0) {
    trl_node *n = stack.v[--stack.n];
    for (int i = 0; i < n->n_in; i++) {
      trl_tensor *t = n->in[i];
      if (t == NULL || !t->requires_grad) continue;
      if (t->node) {
        if (t->node->mark == mark) continue;
        t->node->mark = mark;
        if (!push(&stack, t->node) || !push(nodes, t->node)) st = trl_fail(TRL_ENOMEM, "backward: out of memory");
      } else if (t->grad && t->grad_req != TRL_GRAD_NULL && t->mark != mark) {
        t->mark = mark;
        if (!push(leaves, (trl_node *)t)) st = trl_fail(TRL_ENOMEM, "backward: out of memory");
      }
    }
  }
  free(stack.v);
  return st;
}

static atomic_int fresh_on = 1;
static _Atomic uint64_t reused_count, cow_count;   // buffers handed on; shared ones copied

uint64_t trl_tape_reused (void) { return atomic_load(&reused_count); }
uint64_t trl_tape_unshared (void) { return atomic_load(&cow_count); }

// Whether node p's gradient can live in g, the gradient of a node that p feeds: g has p's
// output shape, is contiguous, and nothing but that node and the 'shared' nodes it already
// handed g to hold it or its storage.
static int reusable (trl_tensor *g, const trl_node *p, int shared) {
  if (atomic_load(&g->refs) != 1 + shared || atomic_load(&g->storage->refs) != 1 || g->offset != 0 ||
      g->dtype != TRL_F32 || g->ndim != p->out_ndim || !trl_is_contiguous(g))
    return 0;
  for (int d = 0; d < g->ndim; d++)
    if (g->shape[d] != p->out_shape[d]) return 0;
  return 1;
}

int trl_tape_set_fresh (int on) { return atomic_exchange(&fresh_on, on != 0); }

static trl_status run_backward (trl_tensor *y, const trl_tensor *head, int retain) {
  char b1[TRL_SHAPELEN], b2[TRL_SHAPELEN];
  if (!y->requires_grad || y->node == NULL)
    return trl_fail(TRL_EARG, "backward: this tensor does not require grad; compute it inside "
                    "autograd.record from a tensor with attach_grad()");
  if (head && !trl_same_shape(head, y))
    return trl_fail(TRL_ESHAPE, "backward: head gradient is %s, output is %s",
                    trl_tensor_shape_str(b1, head), trl_tensor_shape_str(b2, y));
  unsigned mark = atomic_fetch_add(&walk_mark, 1) + 1;
  nodelist nodes = {0}, leaves = {0};
  trl_status st = collect(y->node, mark, &nodes, &leaves);
  for (int i = 0; st == TRL_OK && i < nodes.n; i++)
    if (nodes.v[i]->freed)
      st = trl_fail(TRL_EARG, "backward: the graph was already freed by an earlier backward "
                    "(%s node); pass retain_graph=true to the first backward", trl_op_name(nodes.v[i]->op));
  if (st == TRL_OK) {
    qsort(nodes.v, (size_t)nodes.n, sizeof *nodes.v, by_seq_desc);
    for (int i = 0; i < leaves.n; i++) {
      trl_tensor *t = (trl_tensor *)leaves.v[i];
      if (t->grad) trl_tensor_touch(t->grad);   // every leaf's gradient is written below
      if (t->grad_req == TRL_GRAD_WRITE) memset(trl_data(t->grad), 0, (size_t)trl_numel(t) * 4);
    }
    trl_node *root = y->node;
    st = trl_tensor_empty(&root->gout, TRL_F32, y->ndim, y->shape);
    if (st == TRL_OK) {
      if (head) st = trl_copy_into(root->gout, head);
      else trl_fill(root->gout, 1.0);
    }
  }
  for (int k = 0; st == TRL_OK && k < nodes.n; k++) {
    trl_node *n = nodes.v[k];
    if (n->gout == NULL) continue;  // no gradient flows here
    trl_tensor *gin[TRL_NODE_MAXIN] = {0};
    int reused = 0, passed = 0;   // gout's buffer went to an input already / to 'passed' of them
    n->fresh = 0;
    for (int i = 0; i < n->n_in && st == TRL_OK; i++) {
      trl_tensor *t = n->in[i];
      if (t == NULL || !t->requires_grad) continue;
      if (t->node) {
        trl_node *p = t->node;
        if (p->gout == NULL) {   // the first contribution: skip the zero-fill if n writes it
          int once = atomic_load(&fresh_on) && ((n->overwrites >> i) & 1u);
          for (int j = 0; j < n->n_in; j++) once = once && (j == i || n->in[j] != t);
          int pass = (n->passes >> i) & 1u;   // may share it with the inputs before
          if (once && ((n->reuses >> i) & 1u) && (!reused || (pass && passed == reused)) &&
              reusable(n->gout, p, reused)) {
            trl_tensor_retain(n->gout);   // gin[i] is gout's buffer (see tape.h: reuses)
            p->gout = n->gout;
            reused++;
            passed += pass;
            atomic_fetch_add(&reused_count, 1);
          } else {
            st = once ? trl_tensor_empty(&p->gout, TRL_F32, p->out_ndim, p->out_shape)
                      : trl_tensor_zeros(&p->gout, TRL_F32, p->out_ndim, p->out_shape);
          }
          if (once) n->fresh |= 1u << i;
        } else if (atomic_load(&p->gout->refs) > 1) {   // shared (passes): n adds to it, so
          trl_tensor *c = NULL;                          // p's gradient gets its own copy first
          st = trl_tensor_empty(&c, TRL_F32, p->out_ndim, p->out_shape);
          if (st == TRL_OK) st = trl_copy_into(c, p->gout);
          if (st != TRL_OK) {
            trl_tensor_release(c);
            break;
          }
          trl_tensor_release(p->gout);
          p->gout = c;
          atomic_fetch_add(&cow_count, 1);
        }
        gin[i] = p->gout;
      } else if (t->grad && t->grad_req != TRL_GRAD_NULL) {
        gin[i] = t->grad;
      }
    }
    if (st == TRL_OK) st = n->backward(n, n->gout, gin);
    n->fresh = 0;
    trl_tensor_release(n->gout);
    n->gout = NULL;
    if (!retain) {
      for (int i = 0; i < TRL_NODE_MAXSAVED; i++) { trl_tensor_release(n->saved[i]); n->saved[i] = NULL; }
      n->freed = 1;
    }
  }
  for (int k = 0; k < nodes.n; k++) {  // after a failure, drop what is left
    trl_tensor_release(nodes.v[k]->gout);
    nodes.v[k]->gout = NULL;
  }
  free(nodes.v);
  free(leaves.v);
  return st;
}

trl_status trl_backward (trl_tensor *y, const trl_tensor *head, int retain_graph) {
  int prev = trl_tape_set(0, trl_tape_is_training());  // backward itself is never recorded
  trl_mem_exact(1);
  trl_status st = run_backward(y, head, retain_graph);
  trl_tape_set(prev & 1, prev >> 1);
  return st;
}

/* }================================================================== */
